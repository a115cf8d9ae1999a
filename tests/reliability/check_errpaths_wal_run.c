/*
 * check_errpaths_wal_run.c — every error branch of a running WAL, driven on purpose:
 * recycling that fails half-way, the ring wrapping and filling with failing writes, short
 * io_uring writes, a sync that fails in a long backlog, a segment table that cannot grow.
 * Each case asserts the exact status, that nothing leaks, and that the log opens again with
 * every acknowledged group. Fixture: errpaths_wal_fixture.h.
 */
#include "errpaths_wal_fixture.h"

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


static Suite *suite(void)
{
	Suite *s = suite_create("errpaths_wal_run");
	TCase *tc = tcase_create("wal");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_wal_recycle_failures);
	tcase_add_test(tc, test_wal_ring_wraps);
	tcase_add_test(tc, test_wal_ring_full);
	tcase_add_test(tc, test_wal_ring_full_write_error);
	tcase_add_loop_test(tc, test_wal_uring_short_write, 0, 4);
	tcase_add_test(tc, test_wal_none_sync_after_recycle);
	tcase_add_test(tc, test_wal_backlog_sync_failure);
	tcase_add_test(tc, test_wal_segment_table_enomem);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
