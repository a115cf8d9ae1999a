/*
 * check_errpaths_wal.c — every error branch of the WAL's open path (formats, the directory,
 * faults while opening; the running log's: check_errpaths_wal_run.c; the store's:
 * check_errpaths_store.c),
 * driven on purpose (issue 8):
 *   - crafted log segments, superblocks, meta pages and redo records whose checksums are
 *     valid but whose contents are wrong (another version, an impossible size or offset, a
 *     length past the end, a missing segment, a record shorter than its header, a group that
 *     names more pages than any mtr can, an unknown record type, a damaged page without a
 *     full-page image);
 *   - I/O faults and failed allocations at chosen calls (pbox_io_faulty, two of them stacked
 *     where one call must succeed short and a later one fail; pbox_alloc_fail_nth).
 * Every case asserts the exact status, that nothing crashes or leaks (LeakSanitizer in the
 * ASan build), and where it matters that the log or store still opens afterwards with all
 * of its acknowledged contents, or keeps refusing clearly.
 *
 * Formats come from the READMEs ("On-disk format" in wal/README.md and storage/README.md);
 * no library's src/ header is included. Everything runs on memfs.
 * PBOX_ERRPATHS_VERBOSE=1 prints each run of the open fault sweep.
 */
#include "errpaths_wal_fixture.h"

/* ==== wal/format.c and open: segment headers ================================================ */

START_TEST(test_wal_segment_headers)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	wfill_to(&x, w, 2, SEG_HDR + 2000, x.S / 2);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	char p0[128], p1[128];
	seg_path(&x, 0, p0, sizeof(p0));
	seg_path(&x, 1, p1, sizeof(p1));
	uint8_t h0[64], h1[64], h[64];
	peek(x.fs, p0, h0, 64, 0);
	peek(x.fs, p1, h1, 64, 0);
	uint64_t id = get64(h0 + 8);

	/* the oldest segment written by another format version: refused, not skipped */
	seg_hdr_make(h, WAL_VERSION + 1, id, 0, x.S);
	poke(x.fs, p0, h, 64, 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_EVERSION);
	poke(x.fs, p0, h0, 64, 0);
	/* a later segment of another version */
	seg_hdr_make(h, WAL_VERSION + 1, id, x.S, x.S);
	poke(x.fs, p1, h, 64, 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_EVERSION);
	poke(x.fs, p1, h1, 64, 0);

	/* checksummed headers of impossible segments: a size that is not a power of two on the
	 * oldest segment (with the start given, and with "start at the oldest segment", which
	 * must not quietly skip it and lose its groups), a base that is not a multiple of the
	 * size on a later one */
	seg_hdr_make(h, WAL_VERSION, id, 0, x.S + 8);
	poke(x.fs, p0, h, 64, 0);
	x.o.start_lsn = SEG_HDR;
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	x.o.start_lsn = 0;
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	/* the same for a header that is plain damage (bad checksum) */
	memcpy(h, h0, 64);
	h[20] ^= 1;
	poke(x.fs, p0, h, 64, 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	poke(x.fs, p0, h0, 64, 0);
	seg_hdr_make(h, WAL_VERSION, id, x.S, 2 * x.S);
	poke(x.fs, p1, h, 64, 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	/* a segment of another log in the chain */
	seg_hdr_make(h, WAL_VERSION, id ^ 1, x.S, x.S);
	poke(x.fs, p1, h, 64, 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	poke(x.fs, p1, h1, 64, 0);

	/* repaired: everything is there */
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/format.c: group headers that check out but cannot be ================================ */

enum { BAD_PAST_SEGMENT, BAD_FLAGS, BAD_SKIP_WITH_RECORDS, BAD_NO_RECORDS, BAD_KINDS };

/* A checksummed group header at p that the log can never have written. */
static void bad_group_hdr(uint8_t *h, int kind, uint64_t p, uint64_t S)
{
	switch (kind) {
	case BAD_PAST_SEGMENT: /* its length is allowed, but it would end in the next segment */
		group_hdr_make(h, p, 0, (uint32_t)(S - p % S + 8), 1, 0);
		break;
	case BAD_FLAGS:
		group_hdr_make(h, p, 0, 64, 1, 2);
		break;
	case BAD_SKIP_WITH_RECORDS:
		group_hdr_make(h, p, 0, 64, 1, GF_SKIP);
		break;
	default: /* BAD_NO_RECORDS */
		group_hdr_make(h, p, 0, 64, 0, 0);
		break;
	}
}

START_TEST(test_wal_group_headers)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	/* the log ends where a group as long as allowed would cross the segment end */
	uint64_t max_total = pbox_wal_max_group_bytes(x.S, 64 << 10) + GROUP_HDR;
	wfill_to(&x, w, 2, x.S - max_total + 64, x.S - 200);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	snap sn;
	snap_take(&sn, x.mio, WDIR);
	/* a group in segment 1 far enough into it, with durable groups after it */
	unsigned mid = 0;
	while (gstart(&x, mid) / x.S < 1 || gstart(&x, mid) % x.S < x.S - max_total + 64)
		mid++;
	ck_assert_uint_lt(mid + 3, x.n);
	for (int kind = 0; kind < BAD_KINDS; kind++) {
		uint8_t h[GROUP_HDR];
		char path[128];
		/* at the end of the log: the log ends before it, clean (it cannot validate, so
		 * there is nothing to erase) */
		pbox_lsn p = x.end[x.n - 1];
		bad_group_hdr(h, kind, p, x.S);
		seg_path(&x, p / x.S, path, sizeof(path));
		poke(x.fs, path, h, sizeof(h), p % x.S);
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		pbox_wal_info info;
		pbox_wal_get_info(w, &info);
		ck_assert_uint_eq(info.end_lsn, p);
		ck_assert_uint_eq(info.open_erased_bytes, 0);
		ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
		EQ(pbox_wal_close(w), 0);
		snap_restore(&sn, x.mio, WDIR);
		/* in place of a group that later groups prove durable: corruption */
		p = gstart(&x, mid);
		bad_group_hdr(h, kind, p, x.S);
		seg_path(&x, p / x.S, path, sizeof(path));
		poke(x.fs, path, h, sizeof(h), p % x.S);
		EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
		snap_restore(&sn, x.mio, WDIR);
	}
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);
	snap_free(&sn);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/open.c: what the directory holds ==================================================== */

START_TEST(test_wal_directory)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	x.o.max_spares = 1;
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	wfill_to(&x, w, 3, SEG_HDR + 1000, x.S / 2);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;

	/* files that are not the log's are left alone; spares beyond max_spares are deleted */
	static const char *const junk[] = {
		WDIR "/README",
		WDIR "/wal-00000000000zz000.seg",
		WDIR "/a-file-name-much-longer-than-any-segment-or-spare-the-log-would-make.seg",
	};
	uint8_t z[4096] = { 0 };
	for (size_t i = 0; i < PBOX_ARRAY_LEN(junk); i++)
		put_file(x.mio, junk[i], "junk", 4);
	for (int i = 0; i < 3; i++) {
		char path[128];
		snprintf(path, sizeof(path), WDIR "/spare-%016x.seg", 0x100 + i);
		put_file(x.mio, path, z, sizeof(z));
	}
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.spares, 1);
	ck_assert_uint_eq(info.segments, 4);
	ck_assert_int_eq(count_prefix(x.mio, WDIR, "spare-"), 1);
	for (size_t i = 0; i < PBOX_ARRAY_LEN(junk); i++)
		ck_assert(file_exists(x.mio, junk[i]));
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);

	/* a segment missing inside the log: corruption, from either start */
	char p1[128];
	seg_path(&x, 1, p1, sizeof(p1));
	uint8_t *s1 = malloc(x.S);
	peek(x.fs, p1, s1, x.S, 0);
	EQ(x.mio->unlink(x.mio, p1), 0);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	x.o.start_lsn = SEG_HDR;
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	put_file(x.mio, p1, s1, x.S);
	free(s1);
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);

	/* bad arguments */
	pbox_wal_iter *it;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	EQ(pbox_wal_iter_open(NULL, 0, &it), PBOX_EINVAL);
	EQ(pbox_wal_iter_open(w, 0, NULL), PBOX_EINVAL);
	pbox_wal_iter_close(NULL);
	EQ(pbox_wal_close(w), 0);
	EQ(pbox_wal_open(NULL, &x.o, &w), PBOX_EINVAL);
	EQ(pbox_wal_open(WDIR, NULL, &w), PBOX_EINVAL);
	EQ(pbox_wal_open(WDIR, &x.o, NULL), PBOX_EINVAL);
	EQ(pbox_wal_close(NULL), 0);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/iter.c: a segment cut short; the log changing under an iterator ==================== */

START_TEST(test_wal_short_segment)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	wfill_to(&x, w, 2, SEG_HDR + 3000, x.S / 2);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	/* segments are made full size before use: a short one is damage, not a torn write */
	char p2[128];
	seg_path(&x, 2, p2, sizeof(p2));
	int fd = x.mio->open(x.mio, p2, O_RDWR, 0);
	ck_assert_int_ge(fd, 0);
	EQ(x.mio->ftruncate(x.mio, fd, 8192), 0);
	EQ(x.mio->fsync(x.mio, fd), 0);
	x.mio->close(x.mio, fd);
	EQ(pbox_wal_open(WDIR, &x.o, &w), PBOX_ECORRUPT);
	wfix_fini(&x);
}
END_TEST

START_TEST(test_wal_changes_under_iterator)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	wfill_to(&x, w, 1, SEG_HDR + 3000, x.S - 1000);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	char path[128];

	/* a durable group damaged after open validated it: the iterator says so */
	unsigned g = x.n / 2;
	pbox_lsn p = gstart(&x, g) + GROUP_HDR + REC_HDR + 6;
	seg_path(&x, p / x.S, path, sizeof(path));
	uint8_t b, nb;
	peek(x.fs, path, &b, 1, p % x.S);
	nb = (uint8_t)(b ^ 0x10);
	poke(x.fs, path, &nb, 1, p % x.S);
	pbox_wal_iter *it;
	EQ(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group grp;
	for (unsigned i = 0; i < g; i++)
		EQ(pbox_wal_iter_next(it, &grp), 1);
	EQ(pbox_wal_iter_next(it, &grp), PBOX_ECORRUPT);
	pbox_wal_iter_close(it);
	poke(x.fs, path, &b, 1, p % x.S);

	/* the last durable group replaced by a valid one that ends past the durable end: the
	 * iterator never hands out bytes beyond it */
	g = x.n - 1;
	p = gstart(&x, g);
	uint32_t total = group_size(x.len[g]) + 8;
	ck_assert_uint_le(p % x.S + total, x.S);
	uint8_t *grpb = calloc(1, total), *keep = malloc(total), *pl = calloc(1, total);
	rec_make(grpb + GROUP_HDR, p + GROUP_HDR, 10, pl, total - GROUP_HDR - REC_HDR);
	group_hdr_make(grpb, p, 0, total, 1, 0);
	seg_path(&x, p / x.S, path, sizeof(path));
	peek(x.fs, path, keep, total, p % x.S);
	poke(x.fs, path, grpb, total, p % x.S);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n - 1);
	poke(x.fs, path, keep, total, p % x.S);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	free(grpb);
	free(keep);
	free(pl);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/open.c: faults and failed allocations while opening a log with everything in it ===== */

/* A log with more than 8 segments (the segment table grows), spares on disk (more than the
 * open keeps), and a torn tail to erase: groups a, b, c written in one go, b's header lost. */
typedef struct rich {
	wfix x;
	snap sn;
	unsigned keep_from, keep_to; /* groups [keep_from, keep_to) survive the open */
} rich;

static void rich_build(rich *r)
{
	wfix *x = &r->x;
	wfix_init(x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	x->o.max_spares = 4;
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x->o, &w), 0);
	wfill_to(x, w, 11, SEG_HDR + 500, x->S / 2);
	/* segments 0 and 1 become spares */
	unsigned first = 0;
	while (gstart(x, first) < 2 * x->S)
		first++;
	EQ(pbox_wal_recycle(w, gstart(x, first)), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.spares, 2);
	unsigned a = x->n;
	for (int i = 0; i < 3; i++)
		EQ(wappend(x, w, 200, false), 0);
	EQ(pbox_wal_flush(w), 0);
	EQ(pbox_wal_close(w), 0);
	uint8_t z[GROUP_HDR] = { 0 };
	char path[128];
	pbox_lsn pb = gstart(x, a + 1);
	seg_path(x, pb / x->S, path, sizeof(path));
	poke(x->fs, path, z, sizeof(z), pb % x->S);
	uint8_t zs[4096] = { 0 };
	put_file(x->mio, WDIR "/spare-00000000000000aa.seg", zs, sizeof(zs));
	put_file(x->mio, WDIR "/spare-00000000000000bb.seg", zs, sizeof(zs));
	x->o.max_spares = 3;
	x->o.create = false;
	r->keep_from = first;
	r->keep_to = a + 1;
	snap_take(&r->sn, x->mio, WDIR);
}

/* Open the rich log without faults and check it: the kept groups exactly, the tail erased. */
static void rich_check(rich *r)
{
	wfix *x = &r->x;
	pbox_wal *w;
	pbox_io *io = x->o.io;
	x->o.io = x->mio;
	EQ(pbox_wal_open(WDIR, &x->o, &w), 0);
	x->o.io = io;
	ck_assert_uint_eq(wreplay(x, w, r->keep_from), r->keep_to - r->keep_from);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.end_lsn, x->end[r->keep_to - 1]);
	ck_assert_uint_le(info.spares, 3);
	EQ(pbox_wal_close(w), 0);
}

static void rich_fini(rich *r)
{
	snap_free(&r->sn);
	wfix_fini(&r->x);
}

START_TEST(test_wal_open_alloc_faults)
{
	rich r;
	rich_build(&r);
	/* first, the log as it is: the tail is erased and the surplus spare deleted */
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &r.x.o, &w), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_gt(info.open_erased_bytes, 0);
	ck_assert_uint_eq(info.spares, 3);
	ck_assert_uint_gt(info.segments, 8);
	EQ(pbox_wal_close(w), 0);
	ck_assert_int_eq(count_prefix(r.x.mio, WDIR, "spare-"), 3);
	rich_check(&r);
	unsigned failed = 0;
	for (uint64_t n = 1;; n++) {
		REQ(n < 500, "allocations during open never end");
		snap_restore(&r.sn, r.x.mio, WDIR);
		pbox_alloc_fail_nth(n, false);
		int rc = pbox_wal_open(WDIR, &r.x.o, &w);
		bool fired = pbox_alloc_failures() > 0;
		pbox_alloc_fail_nth(0, false);
		if (rc == 0) {
			EQ(pbox_wal_close(w), 0);
		} else {
			EQ(rc, -ENOMEM);
			failed++;
		}
		/* a failed open changed nothing that a later one needs */
		rich_check(&r);
		if (!fired)
			break;
	}
	ck_assert_uint_gt(failed, 10);
	rich_fini(&r);
}
END_TEST

START_TEST(test_wal_open_io_faults)
{
	rich r;
	rich_build(&r);
	unsigned runs = 0, failed = 0;
	for (int kind = PBOX_IO_OPEN; kind < PBOX_IO_KIND_COUNT; kind++) {
		for (uint64_t n = 1;; n++) {
			REQ(n < 500, "%s: calls during open never end",
			    pbox_io_kind_name((pbox_io_kind)kind));
			snap_restore(&r.sn, r.x.mio, WDIR);
			pbox_io_faulty_arm(r.x.f, (pbox_io_kind)kind, n, EIO, false);
			pbox_wal *w;
			int rc = pbox_wal_open(WDIR, &r.x.o, &w);
			bool fired = pbox_io_faulty_fired(r.x.f);
			pbox_io_faulty_disarm(r.x.f);
			runs++;
			if (rc == 0) {
				EQ(pbox_wal_close(w), 0);
			} else {
				REQ(fired && rc < 0, "%s #%llu: open returned %s",
				    pbox_io_kind_name((pbox_io_kind)kind),
				    (unsigned long long)n, pbox_status_name(rc));
				failed++;
			}
			if (getenv("PBOX_ERRPATHS_VERBOSE"))
				fprintf(stderr, "%s #%llu: %s\n", pbox_io_kind_name((pbox_io_kind)kind),
					(unsigned long long)n, pbox_status_name(rc));
			rich_check(&r);
			if (!fired)
				break;
		}
	}
	fprintf(stderr, "errpaths: open of a rich log, EIO on each call: %u runs, %u failed\n", runs,
		failed);
	ck_assert_uint_gt(failed, 20);
	rich_fini(&r);
}
END_TEST

/* ==== wal/segments.c: making a new log's first segment ======================================== */

START_TEST(test_wal_new_log)
{
	/* a directory that holds only a spare: the new log makes its first segment of it */
	uint8_t *junk = malloc(16 << 10);
	memset(junk, 0xEE, 16 << 10);
	for (int fail = 0; fail < 3; fail++) {
		wfix x;
		wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
		put_file(x.mio, WDIR "/spare-0000000000000007.seg", junk, 16 << 10);
		pbox_wal *w;
		if (fail) { /* opening it or rewriting its header fails: reported; the spare is
			     * still there */
			pbox_io_faulty_arm(x.f, fail == 1 ? PBOX_IO_OPEN : PBOX_IO_PWRITE, 1, EIO,
					   false);
			EQ(pbox_wal_open(WDIR, &x.o, &w), -EIO);
			pbox_io_faulty_disarm(x.f);
			ck_assert(file_exists(x.mio, WDIR "/spare-0000000000000007.seg"));
			ck_assert_int_eq(count_prefix(x.mio, WDIR, "wal-"), 0);
		}
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		pbox_wal_info info;
		pbox_wal_get_info(w, &info);
		ck_assert_uint_eq(info.spares, 0);
		ck_assert_int_eq(count_prefix(x.mio, WDIR, "spare-"), 0);
		ck_assert(file_exists(x.mio, WDIR "/wal-0000000000000000.seg"));
		wfill_to(&x, w, 1, SEG_HDR, x.S / 2);
		EQ(pbox_wal_close(w), 0);
		x.o.create = false;
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
		EQ(pbox_wal_close(w), 0);
		wfix_fini(&x);
	}
	free(junk);

	/* spares beyond max_spares in a new log's directory are deleted; that failing is
	 * reported */
	{
		wfix y;
		wfix_init(&y, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
		y.o.max_spares = 1;
		uint8_t z[4096] = { 0 };
		put_file(y.mio, WDIR "/spare-0000000000000001.seg", z, sizeof(z));
		put_file(y.mio, WDIR "/spare-0000000000000002.seg", z, sizeof(z));
		pbox_wal *w;
		pbox_io_faulty_arm(y.f, PBOX_IO_UNLINK, 1, EIO, false);
		EQ(pbox_wal_open(WDIR, &y.o, &w), -EIO);
		pbox_io_faulty_disarm(y.f);
		EQ(pbox_wal_open(WDIR, &y.o, &w), 0);
		ck_assert_int_eq(count_prefix(y.mio, WDIR, "spare-"), 0); /* one deleted, one used */
		EQ(pbox_wal_close(w), 0);
		wfix_fini(&y);
	}

	/* O_DSYNC: the new segment is reopened with O_DSYNC after its rename (open call 2);
	 * that failing is reported, and the next open finds an empty log */
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_DSYNC);
	pbox_wal *w;
	pbox_io_faulty_arm(x.f, PBOX_IO_OPEN, 2, EIO, false);
	EQ(pbox_wal_open(WDIR, &x.o, &w), -EIO);
	ck_assert(pbox_io_faulty_fired(x.f));
	pbox_io_faulty_disarm(x.f);
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	EQ(wappend(&x, w, 100, true), 0);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, 0), 1);
	EQ(pbox_wal_close(w), 0);

	/* a directory whose segment paths would be too long */
	char *dir = malloc(4096);
	dir[0] = '/';
	memset(dir + 1, 'd', 4079);
	dir[4080] = 0;
	EQ(x.mio->mkdir(x.mio, dir, 0755), 0);
	x.o.create = true;
	EQ(pbox_wal_open(dir, &x.o, &w), -ENAMETOOLONG);
	free(dir);
	wfix_fini(&x);
}
END_TEST


static Suite *suite(void)
{
	Suite *s = suite_create("errpaths_wal");
	TCase *tc = tcase_create("wal");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_wal_segment_headers);
	tcase_add_test(tc, test_wal_group_headers);
	tcase_add_test(tc, test_wal_directory);
	tcase_add_test(tc, test_wal_short_segment);
	tcase_add_test(tc, test_wal_changes_under_iterator);
	tcase_add_test(tc, test_wal_open_alloc_faults);
	tcase_add_test(tc, test_wal_open_io_faults);
	tcase_add_test(tc, test_wal_new_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
