/*
 * check_errpaths.c — every error branch of the WAL and of the store's open and recovery,
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
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>
#include <pbox/wal.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- formats ------------------------------------------------------------------------------- */

/* wal/README.md, "On-disk format": segment header, group header, record header */
#define SEG_HDR 4096u
#define SEG_MAGIC 0x53574250u /* "PBWS" */
#define WAL_VERSION 1u
#define GROUP_HDR 40u
#define GROUP_MAGIC 0x47574250u /* "PBWG" */
#define REC_HDR 24u
#define GF_SKIP 1u

/* storage/README.md, "On-disk format": page header, superblock, meta page, redo records */
#define PG_TYPE 4
#define SB_FORMAT 40
#define SB_GEN 48
#define META_PID 2u
#define META_COUNT 32
#define REDO_FPI 1u
#define REDO_WRITE 2u
#define REDO_INIT 3u

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* A segment header block (its first 64 bytes; the rest is zero). */
static void seg_hdr_make(uint8_t *b, uint32_t version, uint64_t log_id, uint64_t base,
			 uint64_t size)
{
	memset(b, 0, 64);
	put32(b, SEG_MAGIC);
	put32(b + 4, version);
	put64(b + 8, log_id);
	put64(b + 16, base);
	put64(b + 24, size);
	put32(b + 32, pbox_crc32c(0, b, 32));
}

static void group_hdr_make(uint8_t *p, uint64_t lsn, uint64_t sync_lsn, uint32_t total,
			   uint32_t nrec, uint32_t flags)
{
	memset(p, 0, GROUP_HDR);
	put32(p, GROUP_MAGIC);
	put64(p + 8, lsn);
	put64(p + 16, sync_lsn);
	put32(p + 24, total);
	put32(p + 28, nrec);
	put32(p + 32, flags);
	put32(p + 4, pbox_crc32c(0, p, GROUP_HDR));
}

/* A record at lsn with its payload and zero padding; returns the bytes it takes. */
static uint32_t rec_make(uint8_t *p, uint64_t lsn, uint16_t type, const void *data, uint32_t len)
{
	memset(p, 0, REC_HDR + align8(len));
	put32(p, len);
	put16(p + 4, type);
	put64(p + 8, lsn);
	uint32_t c = pbox_crc32c(0, p, REC_HDR);
	if (len) {
		memcpy(p + REC_HDR, data, len);
		c = pbox_crc32c(c, data, len);
	}
	put32(p + 16, c);
	return REC_HDR + (uint32_t)align8(len);
}

/* A page checksum: CRC32C of bytes [4, page_size) at offset 0. */
static void page_seal(uint8_t *page, uint32_t ps)
{
	put32(page, pbox_crc32c(0, page + 4, ps - 4));
}

/* ---- memfs helpers --------------------------------------------------------------------------- */

#define EQ CK_RC /* this suite's name for it */

static void put_file(pbox_io *io, const char *path, const void *data, size_t len)
{
	int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	if (len)
		EQ(pbox_io_pwrite_full(io, fd, data, len, 0), 0);
	EQ(io->fdatasync(io, fd), 0);
	EQ(io->close(io, fd), 0);
	EQ(pbox_io_fsync_parent(io, path), 0);
}

static bool file_exists(pbox_io *io, const char *path)
{
	int fd = io->open(io, path, O_RDONLY, 0);
	if (fd < 0)
		return false;
	io->close(io, fd);
	return true;
}

static void peek(pbox_io_memfs *fs, const char *path, void *buf, size_t len, uint64_t off)
{
	REQ(pbox_io_memfs_peek(fs, path, buf, len, off) == (int64_t)len, "peek %s", path);
}

static void poke(pbox_io_memfs *fs, const char *path, const void *buf, size_t len, uint64_t off)
{
	EQ(pbox_io_memfs_poke(fs, path, buf, len, off), 0);
}

/* A directory's files and their contents, to undo what a case (or an open) changed. */
/* snapshots of the log directory: the toolkit's (tests/common) */
typedef pbox_test_snap snap;
#define snap_take pbox_test_snap_take
#define snap_restore pbox_test_snap_restore
#define snap_free pbox_test_snap_free

typedef struct names {
	int n;
	char name[64][80];
} names;

static int name_one(const char *name, void *arg)
{
	names *v = arg;
	if (v->n < 64)
		snprintf(v->name[v->n++], sizeof(v->name[0]), "%s", name);
	return 0;
}

static void list(pbox_io *io, const char *dir, names *v)
{
	v->n = 0;
	EQ(io->listdir(io, dir, name_one, v), 0);
}

static int count_prefix(pbox_io *io, const char *dir, const char *prefix)
{
	names v;
	list(io, dir, &v);
	int n = 0;
	for (int i = 0; i < v.n; i++)
		n += strncmp(v.name[i], prefix, strlen(prefix)) == 0;
	return n;
}

/* ---- WAL fixture: a log of self-describing groups ------------------------------------------- */

#define WDIR "/log"
#define MAXG 2048

typedef struct wfix {
	pbox_io_memfs *fs;
	pbox_io *mio;       /* memfs */
	pbox_io_faulty *f;  /* over memfs */
	pbox_wal_options o; /* through f */
	uint64_t S;
	unsigned n;         /* groups appended */
	pbox_lsn end[MAXG];
	uint32_t len[MAXG]; /* payload length of each group's one record */
} wfix;

static void wfix_init(wfix *x, uint64_t seg, uint64_t buf, pbox_wal_sync sync)
{
	memset(x, 0, sizeof(*x));
	EQ(pbox_io_memfs_create(&x->fs), 0);
	x->mio = pbox_io_memfs_io(x->fs);
	EQ(x->mio->mkdir(x->mio, WDIR, 0755), 0);
	EQ(x->mio->fsync_dir(x->mio, "/"), 0);
	EQ(pbox_io_faulty_create(x->mio, &x->f), 0);
	pbox_wal_options_init(&x->o);
	x->o.io = pbox_io_faulty_io(x->f);
	x->o.segment_size = seg;
	x->o.buffer_size = buf;
	x->o.sync = sync;
	x->o.create = true;
	x->S = seg;
}

static void wfix_fini(wfix *x)
{
	pbox_io_faulty_destroy(x->f);
	pbox_io_memfs_destroy(x->fs);
}

static uint8_t pat(uint32_t tag, uint32_t i)
{
	uint64_t v = ((uint64_t)tag << 24) ^ i ^ ((uint64_t)i << 9);
	v *= 0x9e3779b97f4a7c15ULL;
	return (uint8_t)(v >> 56);
}

/* A group of one record (type 10) whose payload starts with tag and is a function of it. */
static int append_tagged(pbox_wal *w, uint32_t tag, uint32_t len, pbox_lsn *end)
{
	uint8_t *b = malloc(len);
	ck_assert_ptr_nonnull(b);
	for (uint32_t i = 0; i < len; i++)
		b[i] = pat(tag, i);
	memcpy(b, &tag, 4);
	pbox_wal_rec r = { .type = 10, .data = b, .len = len };
	int rc = pbox_wal_append(w, &r, 1, end);
	free(b);
	return rc;
}

static uint32_t group_size(uint32_t len)
{
	return GROUP_HDR + REC_HDR + (uint32_t)align8(len);
}

/* Append group x->n with a payload of len bytes (>= 4); wait for it when durable. */
static int wappend(wfix *x, pbox_wal *w, uint32_t len, bool durable)
{
	ck_assert_uint_lt(x->n, MAXG);
	pbox_lsn e;
	int rc = append_tagged(w, x->n, len, &e);
	if (rc)
		return rc;
	x->len[x->n] = len;
	x->end[x->n++] = e;
	return durable ? pbox_wal_wait_durable(w, e) : 0;
}

static pbox_lsn gstart(const wfix *x, unsigned g)
{
	return x->end[g] - group_size(x->len[g]);
}

static void seg_path(const wfix *x, uint64_t k, char *buf, size_t cap)
{
	snprintf(buf, cap, WDIR "/wal-%016" PRIx64 ".seg", k * x->S);
}

/* Check that the group just read (its first record in rec) is the tagged group, exactly. */
static void check_tagged_rec(pbox_wal_iter *it, const pbox_wal_group *grp,
			     const pbox_wal_record *r, uint32_t tag, uint32_t len, pbox_lsn end)
{
	pbox_wal_record rec = *r;
	ck_assert_uint_eq(grp->nrec, 1);
	ck_assert_uint_eq(rec.type, 10);
	ck_assert_uint_eq(rec.len, len);
	uint32_t t;
	memcpy(&t, rec.data, 4);
	ck_assert_uint_eq(t, tag);
	const uint8_t *d = rec.data;
	for (uint32_t i = 4; i < len; i++)
		REQ(d[i] == pat(tag, i), "group %u byte %u damaged", tag, i);
	if (end)
		ck_assert_uint_eq(grp->end_lsn, end);
	EQ(pbox_wal_iter_record(it, &rec), 0);
}

static void check_tagged(pbox_wal_iter *it, const pbox_wal_group *grp, uint32_t tag, uint32_t len,
			 pbox_lsn end)
{
	pbox_wal_record rec;
	EQ(pbox_wal_iter_record(it, &rec), 1);
	check_tagged_rec(it, grp, &rec, tag, len, end);
}

/* Replay the whole log (from the start it was opened with): it must be groups first, first+1,
 * ... of the fixture, exactly; returns how many. */
static unsigned wreplay(const wfix *x, pbox_wal *w, unsigned first)
{
	pbox_wal_iter *it;
	EQ(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group grp;
	unsigned n = 0;
	int rc;
	while ((rc = pbox_wal_iter_next(it, &grp)) == 1) {
		unsigned g = first + n++;
		REQ(g < x->n, "replay: more groups than appended");
		check_tagged(it, &grp, g, x->len[g], x->end[g]);
	}
	EQ(rc, 0);
	pbox_wal_iter_close(it);
	return n;
}

/* Append durable groups of varied sizes until the end is in segment k, at an offset in
 * [lo, hi) of it. */
static void wfill_to(wfix *x, pbox_wal *w, uint64_t k, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0;; i++) {
		pbox_lsn e = x->n ? x->end[x->n - 1] : 0;
		if (e / x->S == k && e % x->S >= lo && e % x->S < hi)
			return;
		REQ(e / x->S <= k, "overshot segment %llu", (unsigned long long)k);
		uint32_t len = 100 + (x->n * 37) % 500;
		if (e / x->S == k && e % x->S < lo && lo - e % x->S < 700)
			len = 16; /* creep up to the window */
		EQ(wappend(x, w, len, true), 0);
	}
}

/* Wait (bounded) until the log has at least nseg segment files in use. */
static void wait_segments(pbox_wal *w, uint32_t nseg)
{
	for (int i = 0; i < 5000; i++) {
		pbox_wal_info info;
		pbox_wal_get_info(w, &info);
		if (info.segments >= nseg)
			return;
		usleep(1000);
	}
	ck_abort_msg("the background thread did not prepare segment %u", nseg - 1);
}

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

/* ==== wal/segments.c: recycling that fails half-way ========================================== */

START_TEST(test_wal_recycle_failures)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	x.o.max_spares = 2;
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	/* end in the first half of segment 8: the background thread prepares nothing now, so
	 * every call counted below is recycle's own */
	wfill_to(&x, w, 8, SEG_HDR + 500, x.S / 2 - 1000);
	pbox_wal_info info;
	char path[128];
#define SEG_START(k) ((k) * x.S + SEG_HDR) /* the first group of segment k starts here */

	/* renaming segment 0 into a spare fails: the error is returned, the file stays (and
	 * the log still reads from its old start through it) */
	pbox_io_faulty_arm(x.f, PBOX_IO_RENAME, 1, EIO, false);
	EQ(pbox_wal_recycle(w, SEG_START(1)), -EIO);
	pbox_io_faulty_disarm(x.f);
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.start_lsn, SEG_HDR);
	seg_path(&x, 0, path, sizeof(path));
	ck_assert(file_exists(x.mio, path));
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_recycle(w, SEG_START(1)), 0);

	/* no memory to remember a spare (the name, then the table): segment 1, then 2, are
	 * deleted instead */
	for (uint64_t nth = 1; nth <= 2; nth++) {
		uint64_t k = nth;
		pbox_alloc_fail_nth(nth, false);
		int rc = pbox_wal_recycle(w, SEG_START(k + 1));
		ck_assert_uint_eq(pbox_alloc_failures(), 1);
		pbox_alloc_fail_nth(0, false);
		EQ(rc, 0);
		seg_path(&x, k, path, sizeof(path));
		ck_assert(!file_exists(x.mio, path));
		pbox_wal_get_info(w, &info);
		ck_assert_uint_eq(info.spares, 0);
		ck_assert_uint_eq(info.start_lsn, SEG_START(k + 1));
	}
	/* ... and deleting it fails too: reported */
	pbox_alloc_fail_nth(1, true);
	pbox_io_faulty_arm(x.f, PBOX_IO_UNLINK, 1, EIO, false);
	int rc = pbox_wal_recycle(w, SEG_START(4));
	pbox_alloc_fail_nth(0, false);
	pbox_io_faulty_disarm(x.f);
	EQ(rc, -EIO);
	seg_path(&x, 3, path, sizeof(path));
	ck_assert(file_exists(x.mio, path));

	/* with max_spares spares kept, the next segments are deleted; that failing is reported */
	EQ(pbox_wal_recycle(w, SEG_START(6)), 0); /* 4 and 5 become spares */
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.spares, 2);
	pbox_io_faulty_arm(x.f, PBOX_IO_UNLINK, 1, EIO, false);
	EQ(pbox_wal_recycle(w, SEG_START(7)), -EIO);
	pbox_io_faulty_disarm(x.f);
	seg_path(&x, 6, path, sizeof(path));
	ck_assert(file_exists(x.mio, path));

	/* the log goes on after all that */
	EQ(wappend(&x, w, 300, true), 0);
	unsigned first = 0;
	while (gstart(&x, first) < SEG_START(7))
		first++;
	EQ(pbox_wal_recycle(w, SEG_START(7)), 0);
	ck_assert_uint_eq(wreplay(&x, w, first), x.n - first);

	/* an LSN beyond the durable end is clamped to it: only the last segment stays */
	EQ(pbox_wal_recycle(w, UINT64_MAX), 0);
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.start_lsn, pbox_wal_durable_lsn(w));
	ck_assert_uint_eq(info.segments, 1);
	ck_assert_uint_eq(wreplay(&x, w, x.n), 0);

	/* a poisoned log recycles nothing */
	pbox_lsn durable = pbox_wal_durable_lsn(w);
	pbox_io_faulty_arm(x.f, PBOX_IO_FDATASYNC, 1, EIO, false);
	EQ(wappend(&x, w, 100, true), -EIO);
	pbox_io_faulty_disarm(x.f);
	EQ(pbox_wal_recycle(w, durable), PBOX_EPOISONED);
	EQ(pbox_wal_close(w), PBOX_EPOISONED);

	/* reopened from the last start: the files left behind by the failures are spares or
	 * deleted now, and the log is whole */
	x.o.create = false;
	x.o.start_lsn = durable;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	pbox_wal_get_info(w, &info);
	ck_assert_uint_le(info.spares, 2);
	/* (a spare may keep the name of a segment whose rename failed) */
	ck_assert_int_eq(count_prefix(x.mio, WDIR, "spare-") + count_prefix(x.mio, WDIR, "wal-"),
			 (int)(info.segments + info.spares));
	unsigned n = wreplay(&x, w, x.n - 1);
	ck_assert_uint_le(n, 1); /* the failed group may or may not be there */
	EQ(pbox_wal_close(w), 0);
#undef SEG_START
	wfix_fini(&x);
}
END_TEST

/* ==== wal/commit.c: the ring ================================================================ */

/* Segments larger than the ring: groups and write pieces wrap around the ring's end. */
START_TEST(test_wal_ring_wraps)
{
	wfix x;
	wfix_init(&x, 128 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	uint64_t maxp = pbox_wal_max_group_bytes(x.S, 64 << 10) - REC_HDR;
	for (unsigned i = 0; i < 150; i++)
		EQ(wappend(&x, w, 4 + (uint32_t)pbox_rng_below(&r, maxp - 4), i % 3 == 0), 0);
	EQ(pbox_wal_flush(w), 0);
	ck_assert_uint_gt(x.end[x.n - 1], 4 * x.S);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, 0), x.n);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* Appenders that outrun the writes: they wait for ring space, writing it out themselves or
 * waiting for the leader or for an earlier copy; every group survives whole. */
typedef struct ringw {
	pbox_wal *w;
	uint32_t id;
	unsigned n;
	pbox_lsn end[200];
	uint32_t len[200];
} ringw;

static void *ring_writer(void *arg)
{
	ringw *rw = arg;
	pbox_rng r;
	pbox_rng_seed(&r, 1000 + rw->id);
	for (unsigned i = 0; i < rw->n; i++) {
		rw->len[i] = 6000 + (uint32_t)pbox_rng_below(&r, 6000);
		if (append_tagged(rw->w, rw->id << 16 | i, rw->len[i], &rw->end[i]))
			abort();
	}
	return NULL;
}

START_TEST(test_wal_ring_full)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	enum { NW = 3 };
	static ringw rw[NW];
	pthread_t th[NW];
	for (unsigned i = 0; i < NW; i++) {
		rw[i] = (ringw){ .w = w, .id = i + 1, .n = 150 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, ring_writer, &rw[i]), 0);
	}
	for (unsigned i = 0; i < NW; i++)
		pthread_join(th[i], NULL);
	EQ(pbox_wal_flush(w), 0);
	EQ(pbox_wal_close(w), 0);
	x.o.create = false;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	pbox_wal_iter *it;
	EQ(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group grp;
	unsigned seen[NW] = { 0 }, total = 0;
	int rc;
	while ((rc = pbox_wal_iter_next(it, &grp)) == 1) {
		pbox_wal_record rec;
		EQ(pbox_wal_iter_record(it, &rec), 1);
		uint32_t tag;
		memcpy(&tag, rec.data, 4);
		uint32_t id = tag >> 16, i = tag & 0xffff;
		REQ(id >= 1 && id <= NW && i == seen[id - 1], "group %x out of order", tag);
		ringw *o = &rw[id - 1];
		check_tagged_rec(it, &grp, &rec, tag, o->len[i], o->end[i]);
		seen[id - 1]++;
		total++;
	}
	EQ(rc, 0);
	pbox_wal_iter_close(it);
	ck_assert_uint_eq(total, NW * 150);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* An appender that has to write the ring out to make room, and that write fails: the
 * appender gets the error (or, if the background thread wrote first, PBOX_EPOISONED).
 * Segments of 1 MiB, so that only the ring's fill level wakes the background thread (at
 * half full); groups as large as allowed, built beforehand, so that the appender fills the
 * rest of the ring at once. Repeated until the appender itself met the error. */
START_TEST(test_wal_ring_full_write_error)
{
	unsigned direct = 0, attempts = 0;
	for (; attempts < 40 && direct < 2; attempts++) {
		wfix x;
		wfix_init(&x, 1 << 20, 64 << 10, PBOX_WAL_SYNC_FDATASYNC);
		pbox_wal *w;
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		EQ(wappend(&x, w, 100, true), 0);
		const uint32_t len = (uint32_t)pbox_wal_max_group_bytes(x.S, 64 << 10) - REC_HDR;
		enum { NB = 8 };
		static uint8_t bufs[NB][16384];
		ck_assert_uint_le(len, sizeof(bufs[0]));
		for (uint32_t i = 0; i < NB; i++) {
			uint32_t tag = x.n + i;
			for (uint32_t j = 0; j < len; j++)
				bufs[i][j] = pat(tag, j);
			memcpy(bufs[i], &tag, 4);
		}
		pbox_io_faulty_arm(x.f, PBOX_IO_PWRITE, 1, EIO, true);
		int rc = 0;
		for (uint32_t i = 0; i < NB && rc == 0; i++) {
			pbox_wal_rec r = { .type = 10, .data = bufs[i], .len = len };
			pbox_lsn e;
			rc = pbox_wal_append(w, &r, 1, &e);
			if (rc == 0) {
				x.len[x.n] = len;
				x.end[x.n++] = e;
			}
		}
		pbox_io_faulty_disarm(x.f);
		REQ(rc == -EIO || rc == PBOX_EPOISONED, "append: %s", pbox_status_name(rc));
		direct += rc == -EIO;
		EQ(pbox_wal_close(w), PBOX_EPOISONED);
		x.o.create = false;
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		ck_assert_uint_ge(wreplay(&x, w, 0), 1); /* a prefix, with the durable group */
		EQ(pbox_wal_close(w), 0);
		wfix_fini(&x);
	}
	fprintf(stderr, "errpaths: ring-full write error seen by the appender itself in %u of %u "
			"attempts\n", direct, attempts);
}
END_TEST

/* ==== wal/commit.c: io_uring rounds with a short write ======================================= */

/* One round writes two pieces (the end of segment k, the start of k + 1) and syncs both, all
 * linked. The outer fault layer makes the first write short, which cancels the rest of the
 * chain; the log completes it and redoes the cancelled requests one by one. The inner layer
 * then fails nothing (case 0), the completion (1), the redone write (2) or the redone sync
 * (3). */
START_TEST(test_wal_uring_short_write)
{
	int c = _i;
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_IO_URING);
	pbox_io_faulty *outer;
	EQ(pbox_io_faulty_create(pbox_io_faulty_io(x.f), &outer), 0);
	x.o.io = pbox_io_faulty_io(outer);
	pbox_wal *w;
	int rc = pbox_wal_open(WDIR, &x.o, &w);
	if (rc == -ENOSYS) { /* no rings in this build of memfs: nothing to test */
		pbox_io_faulty_destroy(outer);
		wfix_fini(&x);
		return;
	}
	EQ(rc, 0);
	wfill_to(&x, w, 1, x.S / 2, x.S - 3000);
	wait_segments(w, 3); /* segment 2 prepared: the round below creates no file */
	/* a group filling segment 1 to 200 bytes before its end, then one that does not fit */
	pbox_lsn e = x.end[x.n - 1];
	uint32_t room = (uint32_t)(x.S - e % x.S) - 200;
	unsigned acked = x.n;
	EQ(wappend(&x, w, room - GROUP_HDR - REC_HDR, false), 0);
	EQ(wappend(&x, w, 200 - GROUP_HDR - REC_HDR + 8, false), 0);
	ck_assert_uint_eq(gstart(&x, x.n - 1), 2 * x.S + SEG_HDR);
	pbox_io_faulty_arm(outer, PBOX_IO_PWRITE, 1, 0, false);
	if (c == 1)
		pbox_io_faulty_arm(x.f, PBOX_IO_PWRITE, 2, EIO, false);
	else if (c == 2)
		pbox_io_faulty_arm(x.f, PBOX_IO_PWRITE, 3, EIO, false);
	else if (c == 3)
		pbox_io_faulty_arm(x.f, PBOX_IO_FDATASYNC, 1, EIO, false);
	rc = pbox_wal_wait_durable(w, x.end[x.n - 1]);
	ck_assert(pbox_io_faulty_fired(outer));
	if (c)
		ck_assert(pbox_io_faulty_fired(x.f));
	pbox_io_faulty_disarm(outer);
	pbox_io_faulty_disarm(x.f);
	EQ(rc, c ? -EIO : 0);
	EQ(pbox_wal_close(w), c ? PBOX_EPOISONED : 0);
	x.o.create = false;
	x.o.io = x.mio;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	unsigned n = wreplay(&x, w, 0);
	if (c)
		ck_assert_uint_ge(n, acked);
	else
		ck_assert_uint_eq(n, x.n);
	EQ(pbox_wal_close(w), 0);
	pbox_io_faulty_destroy(outer);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/commit.c: SYNC_NONE syncs after segments it never synced were recycled ============= */

START_TEST(test_wal_none_sync_after_recycle)
{
	wfix x;
	wfix_init(&x, 16 << 10, 64 << 10, PBOX_WAL_SYNC_NONE);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	/* written, never synced (the durable mark of SYNC_NONE is what was handed to the OS) */
	wfill_to(&x, w, 4, SEG_HDR + 500, x.S / 2);
	unsigned first = 0;
	while (gstart(&x, first) < 3 * x.S)
		first++;
	EQ(pbox_wal_recycle(w, gstart(&x, first)), 0);
	/* the flush syncs from its old synced mark, which is in a recycled segment */
	EQ(pbox_wal_flush(w), 0);
	pbox_io_memfs_powercut(x.fs, PBOX_POWERCUT_DROP_ALL, 1);
	pbox_wal_close(w);
	pbox_io_memfs_restart(x.fs);
	x.o.create = false;
	x.o.start_lsn = gstart(&x, first);
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, first), x.n - first);

	/* again, with the log ending exactly at the end of a segment that is then recycled:
	 * nothing unsynced is left in any segment still kept */
	wfill_to(&x, w, 6, x.S / 2, x.S - 1000);
	wait_segments(w, 5); /* segments 3, 4, 5, 6 and the prepared 7 */
	pbox_lsn e = x.end[x.n - 1];
	uint32_t room = (uint32_t)(x.S - e % x.S);
	EQ(wappend(&x, w, room - GROUP_HDR - REC_HDR, true), 0);
	ck_assert_uint_eq(x.end[x.n - 1], 7 * x.S);
	EQ(pbox_wal_recycle(w, 7 * x.S), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.segments, 1);
	EQ(pbox_wal_flush(w), 0);
	EQ(pbox_wal_close(w), 0);
	x.o.start_lsn = 7 * x.S;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_eq(wreplay(&x, w, x.n), 0);
	EQ(wappend(&x, w, 100, true), 0);
	ck_assert_uint_eq(gstart(&x, x.n - 1), 7 * x.S + SEG_HDR);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* ==== wal/commit.c: a sync failing anywhere in a round that covers a long backlog ============ */

/* A backlog over segments 0..12, every file made beforehand (the background thread prepares
 * segment 13 once the end is past the middle of 12), so the round makes exactly 13 syncs: the
 * 8 newest segments with the writes, then the 5 older ones. Each of them fails in turn. */
START_TEST(test_wal_backlog_sync_failure)
{
	unsigned fired_runs = 0;
	for (uint64_t nth = 1;; nth++) {
		REQ(nth < 100, "syncs never end");
		wfix x;
		wfix_init(&x, 16 << 10, 1 << 20, PBOX_WAL_SYNC_FDATASYNC);
		pbox_wal *w;
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		EQ(wappend(&x, w, 100, true), 0);
		while (x.end[x.n - 1] < 12 * x.S + x.S / 2) /* nothing waited for */
			EQ(wappend(&x, w, 3000, false), 0);
		wait_segments(w, 14);
		pbox_io_faulty_arm(x.f, PBOX_IO_FDATASYNC, nth, EIO, true);
		int rc = pbox_wal_wait_durable(w, x.end[x.n - 1]);
		bool fired = pbox_io_faulty_fired(x.f);
		pbox_io_faulty_disarm(x.f);
		EQ(rc, fired ? -EIO : 0);
		EQ(pbox_wal_close(w), fired ? PBOX_EPOISONED : 0);
		fired_runs += fired;
		x.o.create = false;
		EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
		unsigned n = wreplay(&x, w, 0);
		ck_assert_uint_ge(n, fired ? 1 : x.n);
		EQ(pbox_wal_close(w), 0);
		wfix_fini(&x);
		if (!fired)
			break;
	}
	ck_assert_uint_eq(fired_runs, 13);
}
END_TEST

/* ==== wal/segments.c: the segment table cannot grow ========================================== */

START_TEST(test_wal_segment_table_enomem)
{
	/* a ring of 256 KiB: the groups below never make the background thread write */
	wfix x;
	wfix_init(&x, 16 << 10, 256 << 10, PBOX_WAL_SYNC_FDATASYNC);
	pbox_wal *w;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	/* segments 0..7 fill the table of 8; stop early in segment 7 so the background
	 * thread does not prepare segment 8 */
	wfill_to(&x, w, 7, SEG_HDR, SEG_HDR + 2000);
	unsigned acked = x.n;
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.segments, 8);
	/* from now on no allocation succeeds (appends allocate nothing); a group that does not
	 * fit in segment 7 needs segment 8: whoever makes it first — the background thread,
	 * which ignores the failure, or the leader — cannot grow the table */
	pbox_alloc_fail_nth(1, true);
	EQ(wappend(&x, w, 12000, false), 0);
	int rc = pbox_wal_wait_durable(w, x.end[x.n - 1]);
	pbox_alloc_fail_nth(0, false);
	ck_assert_uint_eq(gstart(&x, x.n - 1), 8 * x.S + SEG_HDR);
	EQ(rc, -ENOMEM);
	EQ(pbox_wal_close(w), PBOX_EPOISONED);
	x.o.create = false;
	EQ(pbox_wal_open(WDIR, &x.o, &w), 0);
	ck_assert_uint_ge(wreplay(&x, w, 0), acked);
	EQ(pbox_wal_close(w), 0);
	wfix_fini(&x);
}
END_TEST

/* ==== storage: fixture ======================================================================= */

#define SDIR "/st"
#define PS 4096u
#define REDO_SET (PBOX_REDO_TYPE_USER + 5) /* u32 offset, then bytes */
#define PAGE_T (PBOX_PAGE_TYPE_USER + 3)

static int redo_set(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t off;
	if (len < 4)
		return PBOX_ECORRUPT;
	memcpy(&off, payload, 4);
	if (off < PBOX_PAGE_HDR || off > ps || len - 4 > ps - off)
		return PBOX_ECORRUPT;
	memcpy((uint8_t *)page + off, (const uint8_t *)payload + 4, len - 4);
	return 0;
}

static const pbox_redo_handler handlers[] = { { REDO_SET, redo_set, NULL } };

typedef struct sfix {
	pbox_io_memfs *fs;
	pbox_io *mio;
	pbox_io_faulty *f;
	pbox_store_options o;
	char err[256];
	pbox_pid pid; /* a data page holding "hello" at offset 100 */
} sfix;

static void sfix_init(sfix *x)
{
	memset(x, 0, sizeof(*x));
	EQ(pbox_io_memfs_create(&x->fs), 0);
	x->mio = pbox_io_memfs_io(x->fs);
	EQ(pbox_io_faulty_create(x->mio, &x->f), 0);
	pbox_store_options_init(&x->o);
	x->o.io = pbox_io_faulty_io(x->f);
	x->o.create = true;
	x->o.page_size = PS;
	x->o.budget_bytes = 64 * PS;
	x->o.max_bytes = 1u << 20; /* 256 pages */
	x->o.wal_segment_size = 256u << 10;
	x->o.wal_flush_delay_us = 0;
	x->o.checkpoint_log_bytes = 0;
	x->o.no_direct_io = true;
	x->o.redo = handlers;
	x->o.nredo = 1;
	x->o.errbuf = x->err;
	x->o.errbuf_len = sizeof(x->err);
}

static void sfix_fini(sfix *x)
{
	pbox_io_faulty_destroy(x->f);
	pbox_io_memfs_destroy(x->fs);
}

/* A store with one data page, checkpointed and closed. */
static void sfix_build(sfix *x)
{
	sfix_init(x);
	pbox_store *st;
	EQ(pbox_store_open(SDIR, &x->o, &st), 0);
	pbox_mtr *m;
	EQ(pbox_mtr_begin(st, &m), 0);
	EQ(pbox_mtr_alloc(m, PAGE_T, &x->pid, NULL), 0);
	EQ(pbox_mtr_write(m, x->pid, 100, "hello", 5), 0);
	EQ(pbox_mtr_commit(m, true, NULL), 0);
	EQ(pbox_store_checkpoint(st), 0);
	EQ(pbox_store_close(st), 0);
	x->o.create = false;
}

static int sopen(sfix *x, pbox_store **st)
{
	x->err[0] = 0;
	return pbox_store_open(SDIR, &x->o, st);
}

static void sopen_close(sfix *x)
{
	pbox_store *st;
	int rc = sopen(x, &st);
	REQ(rc == 0, "open: %s (%s)", pbox_status_name(rc), x->err);
	EQ(pbox_store_close(st), 0);
}

/* Append one group to the closed store's log, through the WAL's own API. */
static void wal_add(sfix *x, const pbox_wal_rec *recs, unsigned n)
{
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = x->mio;
	pbox_wal *w;
	EQ(pbox_wal_open(SDIR "/wal", &o, &w), 0);
	pbox_lsn e;
	EQ(pbox_wal_append(w, recs, n, &e), 0);
	EQ(pbox_wal_wait_durable(w, e), 0);
	EQ(pbox_wal_close(w), 0);
}

static void damage_page(sfix *x, pbox_pid pid)
{
	uint8_t junk[300];
	memset(junk, 0x5A, sizeof(junk));
	poke(x->fs, SDIR "/data", junk, sizeof(junk), pid * PS + 1000);
}

/* ==== storage/store.c: superblocks ============================================================ */

static void reseal_super_version(sfix *x, pbox_pid copy, uint32_t version, const uint8_t *orig)
{
	uint8_t p[PS];
	memcpy(p, orig, PS);
	put32(p + SB_FORMAT, version);
	page_seal(p, PS);
	poke(x->fs, SDIR "/data", p, PS, copy * PS);
}

START_TEST(test_store_superblock_version)
{
	sfix x;
	sfix_build(&x);
	/* two checkpoints more: both copies hold generations of this store */
	sopen_close(&x);
	static uint8_t sb[2][PS];
	peek(x.fs, SDIR "/data", sb[0], PS, 0);
	peek(x.fs, SDIR "/data", sb[1], PS, PS);
	pbox_pid newer = get64(sb[1] + SB_GEN) > get64(sb[0] + SB_GEN);
	pbox_store *st;
	/* both copies, only the newer one, only the older one: another version wrote to this
	 * store; open refuses rather than fall back to a copy it understands (and later
	 * overwrite the other) */
	for (int which = 0; which < 3; which++) {
		for (pbox_pid c = 0; c < 2; c++)
			if (which == 0 || (which == 1) == (c == newer))
				reseal_super_version(&x, c, 2, sb[c]);
		EQ(sopen(&x, &st), PBOX_EVERSION);
		REQ(strstr(x.err, "version"), "no explanation: '%s'", x.err);
		poke(x.fs, SDIR "/data", sb[0], PS, 0);
		poke(x.fs, SDIR "/data", sb[1], PS, PS);
	}
	sopen_close(&x);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/store.c: the meta page ========================================================== */

START_TEST(test_store_meta_damaged)
{
	sfix x;
	sfix_build(&x);
	uint8_t orig[PS], p[PS];
	peek(x.fs, SDIR "/data", orig, PS, META_PID * PS);
	pbox_store *st;
	for (int c = 0; c < 4; c++) {
		memcpy(p, orig, PS);
		if (c == 0)
			put64(p + META_COUNT, 1); /* fewer pages than the store's own */
		else if (c == 1)
			put64(p + META_COUNT, 1ull << 40); /* more than max_bytes allows */
		else if (c == 2)
			put16(p + PG_TYPE, PBOX_PAGE_TYPE_FREE);
		if (c < 3)
			page_seal(p, PS); /* valid checksum, wrong contents */
		else
			p[200] ^= 1; /* plain damage */
		poke(x.fs, SDIR "/data", p, PS, META_PID * PS);
		EQ(sopen(&x, &st), PBOX_ECORRUPT);
		REQ(strstr(x.err, "meta page"), "no explanation: '%s'", x.err);
		poke(x.fs, SDIR "/data", orig, PS, META_PID * PS);
	}
	sopen_close(&x);

	/* damaged while the store is open: the meta slots and statistics read nothing (and
	 * nothing crashes), and the next open refuses */
	EQ(sopen(&x, &st), 0);
	pbox_mtr *m;
	pbox_pid last = 0;
	for (int i = 0; i < 5; i++) { /* 150 pages, more than twice the pool */
		EQ(pbox_mtr_begin(st, &m), 0);
		for (int j = 0; j < 30; j++)
			EQ(pbox_mtr_alloc(m, PAGE_T, &last, NULL), 0);
		if (i == 0)
			EQ(pbox_mtr_meta_set(m, 3, 77), 0);
		EQ(pbox_mtr_commit(m, true, NULL), 0);
	}
	EQ(pbox_store_checkpoint(st), 0);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), 77);
	ck_assert_uint_eq(pbox_store_meta_get(st, PBOX_META_SLOTS), 0); /* no such slot */
	damage_page(&x, META_PID);
	/* read other pages until the clock has evicted the (clean) meta page */
	uint64_t v;
	int rc = 0;
	for (int round = 0; round < 20 && rc == 0; round++) {
		for (pbox_pid q = META_PID + 1; q <= last; q++) {
			EQ(pbox_page_fix_shared(st, q), 0);
			pbox_page_unfix_shared(st, q);
		}
		rc = pbox_page_fix_opt(st, META_PID, &v);
	}
	EQ(rc, PBOX_ECORRUPT);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), 0);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.free_pages, 0);
	EQ(pbox_store_close(st), 0);
	EQ(sopen(&x, &st), PBOX_ECORRUPT);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/store.c: sizes, reservations, bad arguments ===================================== */

START_TEST(test_store_sizes)
{
	sfix x;
	sfix_build(&x);
	pbox_store *st;
	/* the data file (grown to max_bytes) is larger than this open allows */
	x.o.max_bytes = 512u << 10;
	EQ(sopen(&x, &st), PBOX_ENOSPC);
	/* fewer than 64 pages */
	x.o.max_bytes = 63 * PS;
	EQ(sopen(&x, &st), PBOX_EINVAL);
	x.o.max_bytes = 1u << 20;
	sopen_close(&x);
	sfix_fini(&x);

	/* 2^32 pages of 64 KiB: a reservation larger than the address space */
	sfix_init(&x);
	x.o.page_size = 65536;
	x.o.budget_bytes = 64 * 65536;
	x.o.max_bytes = 1ull << 48;
	int rc = sopen(&x, &st);
	if (rc == 0) /* a machine with a 57-bit address space */
		EQ(pbox_store_close(st), 0);
	else
		EQ(rc, -ENOMEM);
	sfix_fini(&x);

	/* bad arguments */
	pbox_store_options o;
	pbox_store_options_init(&o);
	EQ(pbox_store_open(NULL, &o, &st), PBOX_EINVAL);
	EQ(pbox_store_open(SDIR, NULL, &st), PBOX_EINVAL);
	EQ(pbox_store_open(SDIR, &o, NULL), PBOX_EINVAL);
	EQ(pbox_store_close(NULL), 0);
}
END_TEST

/* ==== storage/store.c: creation ============================================================== */

START_TEST(test_store_create_failures)
{
	/* a log left by a crashed creation cannot be cleared: reported; the next create works */
	sfix x;
	sfix_init(&x);
	EQ(x.mio->mkdir(x.mio, SDIR, 0755), 0);
	EQ(x.mio->mkdir(x.mio, SDIR "/wal", 0755), 0);
	put_file(x.mio, SDIR "/wal/wal-0000000000000000.seg", "left over", 9);
	pbox_store *st;
	pbox_io_faulty_arm(x.f, PBOX_IO_UNLINK, 1, EIO, false);
	EQ(sopen(&x, &st), -EIO);
	pbox_io_faulty_disarm(x.f);
	ck_assert(!file_exists(x.mio, SDIR "/data"));
	EQ(sopen(&x, &st), 0);
	EQ(pbox_store_close(st), 0);
	x.o.create = false;
	sopen_close(&x);
	sfix_fini(&x);

	/* a file system that refuses O_DIRECT for the new data file (open call 3: LOCK, data,
	 * data.new): buffered I/O, noted */
	sfix_init(&x);
	x.o.no_direct_io = false;
	pbox_io_faulty_arm(x.f, PBOX_IO_OPEN, 3, EINVAL, false);
	EQ(sopen(&x, &st), 0);
	ck_assert(pbox_io_faulty_fired(x.f));
	pbox_io_faulty_disarm(x.f);
	REQ(strstr(x.err, "O_DIRECT"), "no note: '%s'", x.err);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert(!s.direct_io);
	EQ(pbox_store_close(st), 0);
	x.o.create = false;
	sopen_close(&x);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/mtr.c + store.c: redo records that recovery must refuse ========================= */

typedef unsigned (*mk_fn)(pbox_pid pid, pbox_wal_rec *recs, uint8_t *buf);

static unsigned mk_rec(pbox_wal_rec *r, uint8_t *buf, uint16_t type, pbox_pid pid,
		       const void *body, uint32_t blen)
{
	put64(buf, pid);
	if (blen)
		memcpy(buf + 8, body, blen);
	*r = (pbox_wal_rec){ .type = type, .data = buf, .len = 8 + blen };
	return 1;
}

static unsigned mk_short(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	put32(buf, 3);
	r[0] = (pbox_wal_rec){ .type = REDO_WRITE, .data = buf, .len = 4 };
	return 1;
}

static unsigned mk_wide(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	const unsigned n = 4 * PBOX_MTR_MAX_PAGES + 1;
	for (unsigned i = 0; i < n; i++) {
		uint8_t body[5] = { 0 };
		put32(body, 200);
		body[4] = (uint8_t)i;
		mk_rec(&r[i], buf + 16 * i, REDO_WRITE, 3 + i, body, 5);
	}
	return n;
}

static unsigned mk_unknown_user(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_SET + 1, pid, "\x64\0\0\0x", 5);
}

static unsigned mk_reserved(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, 7, pid, "\x64\0\0\0x", 5);
}

static unsigned mk_far_page(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	return mk_rec(r, buf, REDO_WRITE, 1u << 20, "\x64\0\0\0x", 5);
}

static unsigned mk_fpi_size(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	static const uint8_t img[100];
	return mk_rec(r, buf, REDO_FPI, pid, img, sizeof(img));
}

static unsigned mk_write_tiny(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_WRITE, pid, "\x64\0", 2);
}

static unsigned mk_write_far(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t body[5];
	put32(body, PS + 1);
	body[4] = 1;
	return mk_rec(r, buf, REDO_WRITE, pid, body, 5);
}

static unsigned mk_write_past(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t body[6];
	put32(body, PS - 1);
	body[4] = body[5] = 1;
	return mk_rec(r, buf, REDO_WRITE, pid, body, 6);
}

static unsigned mk_init_size(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_INIT, pid, "\x13\0\0", 3);
}

static unsigned mk_user_rejects(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_SET, pid, "\x01\0", 2);
}

static unsigned mk_write(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_WRITE, pid, "\x64\0\0\0J", 5);
}

/* INIT rebuilds the page whole: it restores a damaged page; a write after it applies */
static unsigned mk_init_then_write(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t t[2];
	put16(t, PAGE_T + 1);
	mk_rec(&r[0], buf, REDO_INIT, pid, t, 2);
	return 1 + mk_rec(&r[1], buf + 64, REDO_WRITE, pid, "\x64\0\0\0J", 5);
}

typedef struct rcase {
	const char *what;
	mk_fn mk;
	bool damage; /* the page is damaged on disk first */
	int want;
} rcase;

static const rcase rcases[] = {
	{ "record shorter than its page id", mk_short, false, PBOX_ECORRUPT },
	{ "group naming 129 pages", mk_wide, false, PBOX_ECORRUPT },
	{ "user type nobody registered", mk_unknown_user, false, PBOX_ECORRUPT },
	{ "reserved storage type", mk_reserved, false, PBOX_ECORRUPT },
	{ "page id beyond max_bytes", mk_far_page, false, PBOX_ECORRUPT },
	{ "full-page image of the wrong size", mk_fpi_size, false, PBOX_ECORRUPT },
	{ "write without its offset", mk_write_tiny, false, PBOX_ECORRUPT },
	{ "write at an offset beyond the page", mk_write_far, false, PBOX_ECORRUPT },
	{ "write past the page end", mk_write_past, false, PBOX_ECORRUPT },
	{ "init with a payload of the wrong size", mk_init_size, false, PBOX_ECORRUPT },
	{ "user record its handler rejects", mk_user_rejects, false, PBOX_ECORRUPT },
	{ "damaged page, no full-page image", mk_write, true, PBOX_ECORRUPT },
	{ "damaged page, init of the wrong size", mk_init_size, true, PBOX_ECORRUPT },
	{ "damaged page, rebuilt by an init", mk_init_then_write, true, 0 },
	{ "intact page, a good write", mk_write, false, 0 },
};

START_TEST(test_recovery_bad_records)
{
	const rcase *c = &rcases[_i];
	sfix x;
	sfix_build(&x);
	if (c->damage)
		damage_page(&x, x.pid);
	static pbox_wal_rec recs[4 * PBOX_MTR_MAX_PAGES + 1];
	static uint8_t buf[16 * (4 * PBOX_MTR_MAX_PAGES + 1) + 256];
	unsigned n = c->mk(x.pid, recs, buf);
	wal_add(&x, recs, n);
	pbox_store *st;
	int rc = sopen(&x, &st);
	REQ(rc == c->want, "%s: open = %s, want %s (%s)", c->what, pbox_status_name(rc),
	    pbox_status_name(c->want), x.err);
	if (rc) {
		REQ(strstr(x.err, "recovery failed"), "%s: no explanation: '%s'", c->what, x.err);
		/* it keeps refusing */
		EQ(sopen(&x, &st), c->want);
	} else {
		pbox_store_stats s;
		pbox_store_get_stats(st, &s);
		ck_assert_uint_eq(s.recovery_pages_restored, c->damage ? 1 : 0);
		ck_assert_uint_eq(s.recovery_groups, 1);
		EQ(pbox_page_fix_shared(st, x.pid), 0);
		const uint8_t *p = pbox_page_addr(st, x.pid);
		ck_assert_uint_eq(p[100], 'J');
		if (c->damage)
			ck_assert_uint_eq(p[PG_TYPE], PAGE_T + 1);
		else
			ck_assert_uint_eq(p[101], 'e');
		pbox_page_unfix_shared(st, x.pid);
		EQ(pbox_store_close(st), 0);
		sopen_close(&x);
	}
	sfix_fini(&x);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("errpaths");
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
	tcase_add_test(tc, test_wal_recycle_failures);
	tcase_add_test(tc, test_wal_ring_wraps);
	tcase_add_test(tc, test_wal_ring_full);
	tcase_add_test(tc, test_wal_ring_full_write_error);
	tcase_add_loop_test(tc, test_wal_uring_short_write, 0, 4);
	tcase_add_test(tc, test_wal_none_sync_after_recycle);
	tcase_add_test(tc, test_wal_backlog_sync_failure);
	tcase_add_test(tc, test_wal_segment_table_enomem);
	suite_add_tcase(s, tc);
	tc = tcase_create("storage");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_store_superblock_version);
	tcase_add_test(tc, test_store_meta_damaged);
	tcase_add_test(tc, test_store_sizes);
	tcase_add_test(tc, test_store_create_failures);
	tcase_add_loop_test(tc, test_recovery_bad_records, 0, (int)PBOX_ARRAY_LEN(rcases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
