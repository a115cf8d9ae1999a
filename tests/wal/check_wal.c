/*
 * check_wal.c — the write-ahead log: format and replay, segments and recycling, every sync
 * backend, background flush, poisoning and I/O faults, power cuts under concurrent group
 * commit, and a byte-by-byte corruption sweep.
 *
 * Groups carry self-describing content: record 0 starts with (writer, seq, nrec) and every
 * byte of every record is a function of (writer, seq, record index), so a replayed group is
 * checked exactly, and a group that was mixed, torn or damaged cannot pass.
 */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/wal.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_ "/log"

/* ---- self-describing groups ---------------------------------------------------------------- */

typedef struct gspec {
	uint32_t writer, seq, nrec;
	uint32_t len[4];
} gspec;

static uint8_t content_byte(const gspec *g, uint32_t rec, uint32_t i)
{
	uint64_t x = ((uint64_t)g->writer << 40) ^ ((uint64_t)g->seq << 8) ^ rec ^ ((uint64_t)i << 20);
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return (uint8_t)x;
}

/* Sizes chosen from the rng; big = allow records of a few KiB. */
static void gspec_make(gspec *g, uint32_t writer, uint32_t seq, pbox_rng *r, uint32_t maxlen)
{
	g->writer = writer;
	g->seq = seq;
	g->nrec = 1 + (uint32_t)pbox_rng_below(r, 4);
	for (uint32_t i = 0; i < g->nrec; i++)
		g->len[i] = (uint32_t)pbox_rng_below(r, maxlen + 1);
	if (g->len[0] < 12)
		g->len[0] = 12;
}

static int append_spec(pbox_wal *w, const gspec *g, pbox_lsn *end)
{
	uint8_t *bufs[4];
	pbox_wal_rec recs[4];
	for (uint32_t i = 0; i < g->nrec; i++) {
		bufs[i] = malloc(g->len[i] ? g->len[i] : 1);
		ck_assert_ptr_nonnull(bufs[i]);
		for (uint32_t b = 0; b < g->len[i]; b++)
			bufs[i][b] = content_byte(g, i, b);
		recs[i] = (pbox_wal_rec){ .type = (uint16_t)(10 + i), .data = bufs[i], .len = g->len[i] };
	}
	memcpy(bufs[0], &g->writer, 4);
	memcpy(bufs[0] + 4, &g->seq, 4);
	memcpy(bufs[0] + 8, &g->nrec, 4);
	int r = pbox_wal_append(w, recs, g->nrec, end);
	for (uint32_t i = 0; i < g->nrec; i++)
		free(bufs[i]);
	return r;
}

/* Read the current group of it and check it is exactly a self-describing group; returns
 * its spec through *g. */
static void check_group(pbox_wal_iter *it, const pbox_wal_group *grp, gspec *g)
{
	pbox_wal_record rec;
	ck_assert_int_eq(pbox_wal_iter_record(it, &rec), 1);
	ck_assert_uint_ge(rec.len, 12);
	memcpy(&g->writer, rec.data, 4);
	memcpy(&g->seq, (const uint8_t *)rec.data + 4, 4);
	memcpy(&g->nrec, (const uint8_t *)rec.data + 8, 4);
	ck_assert_uint_eq(g->nrec, grp->nrec);
	ck_assert_uint_le(g->nrec, 4);
	for (uint32_t i = 0; i < g->nrec; i++) {
		if (i > 0)
			ck_assert_int_eq(pbox_wal_iter_record(it, &rec), 1);
		ck_assert_uint_eq(rec.type, 10 + i);
		g->len[i] = rec.len;
		const uint8_t *d = rec.data;
		for (uint32_t b = (i == 0 ? 12 : 0); b < rec.len; b++)
			if (d[b] != content_byte(g, i, b))
				ck_abort_msg("group %u/%u record %u byte %u damaged", g->writer, g->seq, i, b);
		ck_assert_uint_ge(rec.lsn, grp->lsn);
		ck_assert_uint_lt(rec.lsn, grp->end_lsn);
	}
	ck_assert_int_eq(pbox_wal_iter_record(it, &rec), 0);
}

static pbox_wal_options small_opts(pbox_io *io)
{
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = io;
	o.segment_size = 16 << 10;
	o.buffer_size = 64 << 10;
	o.create = true;
	return o;
}

static pbox_io_memfs *new_fs(pbox_io **io)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	*io = pbox_io_memfs_io(fs);
	ck_assert_int_eq((*io)->mkdir(*io, DIR_, 0755), 0);
	ck_assert_int_eq((*io)->fsync_dir(*io, "/"), 0);
	return fs;
}

/* Replay everything from `from` and return the number of groups; each must equal
 * want[i] (if want) in order. */
static unsigned replay_all(pbox_wal *w, pbox_lsn from, const gspec *want, unsigned nwant,
			   pbox_lsn *ends)
{
	pbox_wal_iter *it;
	ck_assert_int_eq(pbox_wal_iter_open(w, from, &it), 0);
	pbox_wal_group grp;
	unsigned n = 0;
	int r;
	while ((r = pbox_wal_iter_next(it, &grp)) == 1) {
		gspec g;
		check_group(it, &grp, &g);
		if (want) {
			ck_assert_uint_lt(n, nwant);
			ck_assert_uint_eq(g.writer, want[n].writer);
			ck_assert_uint_eq(g.seq, want[n].seq);
			for (uint32_t i = 0; i < g.nrec; i++)
				ck_assert_uint_eq(g.len[i], want[n].len[i]);
		}
		if (ends)
			ck_assert_uint_eq(grp.end_lsn, ends[n]);
		n++;
	}
	ck_assert_int_eq(r, 0);
	pbox_wal_iter_close(it);
	return n;
}

/* ---- format, append, replay, reopen -------------------------------------------------------- */

START_TEST(test_basic_roundtrip)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	pbox_wal *w;
	o.create = false;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), PBOX_ENOTFOUND);
	o.create = true;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.start_lsn, 4096);
	ck_assert_uint_eq(info.end_lsn, 4096);
	ck_assert_str_eq(pbox_wal_sync_name(info.sync), "fdatasync");

	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	enum { N = 300 };
	gspec *g = calloc(N, sizeof(*g));
	pbox_lsn *ends = calloc(N, sizeof(*ends));
	pbox_lsn prev = 4096;
	for (unsigned i = 0; i < N; i++) {
		gspec_make(&g[i], 1, i, &r, i % 17 == 0 ? 3000 : 200);
		ck_assert_int_eq(append_spec(w, &g[i], &ends[i]), 0);
		ck_assert_uint_gt(ends[i], prev);
		ck_assert_uint_eq(ends[i] % 8, 0);
		prev = ends[i];
		if (i % 50 == 0)
			ck_assert_int_eq(pbox_wal_wait_durable(w, ends[i]), 0);
	}
	ck_assert_uint_eq(pbox_wal_end_lsn(w), ends[N - 1]);
	ck_assert_int_eq(pbox_wal_flush(w), 0);
	ck_assert_uint_eq(pbox_wal_durable_lsn(w), ends[N - 1]);
	ck_assert_uint_eq(replay_all(w, 0, g, N, ends), N);
	/* iteration from a group boundary in the middle */
	ck_assert_uint_eq(replay_all(w, ends[99], g + 100, N - 100, ends + 100), N - 100);
	pbox_wal_get_info(w, &info);
	ck_assert_uint_gt(info.segments, 3); /* the log crossed several segments */
	ck_assert_int_eq(pbox_wal_close(w), 0);

	/* reopen: same content, appends continue at the end */
	o.create = false;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.end_lsn, ends[N - 1]);
	ck_assert_uint_eq(info.open_groups, N);
	ck_assert_uint_eq(info.open_erased_bytes, 0);
	gspec extra;
	gspec_make(&extra, 2, 0, &r, 100);
	pbox_lsn e;
	ck_assert_int_eq(append_spec(w, &extra, &e), 0);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e), 0);
	ck_assert_uint_eq(replay_all(w, 0, NULL, 0, NULL), N + 1);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	free(g);
	free(ends);
	pbox_io_memfs_destroy(fs);
}
END_TEST

START_TEST(test_bad_input)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	pbox_wal *w;
	o.segment_size = 3 << 14; /* not a power of two */
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), PBOX_EINVAL);
	o = small_opts(io);
	o.buffer_size = 1024;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), PBOX_EINVAL);
	o = small_opts(io);
	o.sync = (pbox_wal_sync)42;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), PBOX_EINVAL);
	o = small_opts(io);
	ck_assert_int_eq(pbox_wal_open("/missing", &o, &w), -ENOENT);
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);

	char buf[64] = "x";
	pbox_wal_rec ok = { .type = 1, .data = buf, .len = 1 };
	pbox_wal_rec zero_type = { .type = 0, .data = buf, .len = 1 };
	pbox_wal_rec null_data = { .type = 1, .data = NULL, .len = 5 };
	pbox_wal_rec empty = { .type = 1, .data = NULL, .len = 0 };
	pbox_lsn e;
	ck_assert_int_eq(pbox_wal_append(w, &ok, 0, &e), PBOX_EINVAL);
	ck_assert_int_eq(pbox_wal_append(w, &zero_type, 1, &e), PBOX_EINVAL);
	ck_assert_int_eq(pbox_wal_append(w, &null_data, 1, &e), PBOX_EINVAL);
	uint64_t maxg = pbox_wal_max_group_bytes(o.segment_size, o.buffer_size);
	char *big = calloc(1, maxg + 1);
	pbox_wal_rec huge = { .type = 1, .data = big, .len = (uint32_t)maxg };
	ck_assert_int_eq(pbox_wal_append(w, &huge, 1, &e), PBOX_ELIMIT);
	huge.len = (uint32_t)(maxg - 24); /* exactly the limit with its record header */
	ck_assert_int_eq(pbox_wal_append(w, &huge, 1, &e), 0);
	ck_assert_int_eq(pbox_wal_append(w, &empty, 1, &e), 0);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e + 8), PBOX_EINVAL);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e), 0);
	pbox_wal_iter *it;
	ck_assert_int_eq(pbox_wal_iter_open(w, 8, &it), PBOX_EINVAL); /* before the log */
	ck_assert_int_eq(pbox_wal_close(w), 0);
	free(big);

	pbox_wal_sync s;
	ck_assert_int_eq(pbox_wal_sync_parse("io_uring", &s), 0);
	ck_assert_int_eq(s, PBOX_WAL_SYNC_IO_URING);
	ck_assert_int_eq(pbox_wal_sync_parse("sometimes", &s), PBOX_EINVAL);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- recycling --------------------------------------------------------------------------- */

static int count_files(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

START_TEST(test_recycle)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	o.max_spares = 2;
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() + 1);
	enum { N = 400 };
	gspec *g = calloc(N, sizeof(*g));
	pbox_lsn *ends = calloc(N, sizeof(*ends));
	int max_files = 0;
	for (unsigned i = 0; i < N; i++) {
		gspec_make(&g[i], 3, i, &r, 400);
		ck_assert_int_eq(append_spec(w, &g[i], &ends[i]), 0);
		ck_assert_int_eq(pbox_wal_wait_durable(w, ends[i]), 0);
		if (i >= 100 && i % 20 == 0) /* a checkpoint moved the redo start to 80 groups ago */
			ck_assert_int_eq(pbox_wal_recycle(w, ends[i - 80]), 0);
		int nf = 0;
		ck_assert_int_eq(io->listdir(io, DIR_, count_files, &nf), 0);
		if (nf > max_files)
			max_files = nf;
	}
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_le(info.spares, 2);
	ck_assert_uint_eq(info.start_lsn, ends[N - 1 - 19 - 80]);
	/* the directory stays bounded: live segments + spares + one being prepared */
	ck_assert_int_le(max_files, (int)(info.segments + 2 + 2));
	unsigned first = N - 19 - 80; /* the group after ends[i - 80] of the last recycle */
	ck_assert_uint_eq(replay_all(w, 0, g + first, N - first, ends + first), N - first);
	ck_assert_int_eq(pbox_wal_close(w), 0);

	/* reopen from the redo start: everything after it is there */
	o.create = false;
	o.start_lsn = ends[first - 1];
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	ck_assert_uint_eq(replay_all(w, 0, g + first, N - first, ends + first), N - first);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	/* a start whose segment was recycled is an error, not an empty log */
	o.start_lsn = ends[0];
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), PBOX_ECORRUPT);
	free(g);
	free(ends);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- backends on real files ----------------------------------------------------------------- */

static void backend_roundtrip(pbox_wal_sync sync)
{
	char *dir = pbox_test_tmpdir("wal");
	ck_assert_ptr_nonnull(dir);
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.segment_size = 64 << 10;
	o.buffer_size = 256 << 10;
	o.sync = sync;
	o.create = true;
	pbox_wal *w;
	int rc = pbox_wal_open(dir, &o, &w);
	/* only the kernel's own "not supported / not allowed" answers to io_uring_setup mean the
	 * backend cannot run here; any other failure of the open is a failure */
	if (sync == PBOX_WAL_SYNC_IO_URING &&
	    (rc == -ENOSYS || rc == -EPERM || rc == -EOPNOTSUPP || rc == -EACCES)) {
		fprintf(stderr, "SKIP: io_uring WAL backend: the kernel refuses io_uring here (%s)\n",
			pbox_status_name(rc));
		pbox_test_rmtree(dir);
		free(dir);
		return;
	}
	ck_assert_int_eq(rc, 0);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() + sync);
	enum { N = 200 };
	gspec g[N];
	pbox_lsn ends[N];
	for (unsigned i = 0; i < N; i++) {
		gspec_make(&g[i], 4, i, &r, 1000);
		ck_assert_int_eq(append_spec(w, &g[i], &ends[i]), 0);
		if (i % 3 == 0)
			ck_assert_int_eq(pbox_wal_wait_durable(w, ends[i]), 0);
	}
	ck_assert_int_eq(pbox_wal_wait_durable(w, ends[N - 1]), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_str_eq(pbox_wal_sync_name(info.sync), pbox_wal_sync_name(sync));
#if PBOX_METRICS
	ck_assert_uint_eq(info.appends, N);
	if (sync != PBOX_WAL_SYNC_NONE && sync != PBOX_WAL_SYNC_DSYNC)
		ck_assert_uint_ge(info.syncs, 1);
#endif
	ck_assert_int_eq(pbox_wal_close(w), 0);
	o.create = false;
	ck_assert_int_eq(pbox_wal_open(dir, &o, &w), 0);
	ck_assert_uint_eq(replay_all(w, 0, g, N, ends), N);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	pbox_test_rmtree(dir);
	free(dir);
}

START_TEST(test_backends)
{
	for (int s = PBOX_WAL_SYNC_FDATASYNC; s <= PBOX_WAL_SYNC_NONE; s++)
		backend_roundtrip((pbox_wal_sync)s);
}
END_TEST

START_TEST(test_background_flush)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	o.flush_delay_us = 2000;
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_rng r;
	pbox_rng_seed(&r, 7);
	gspec g;
	pbox_lsn e;
	gspec_make(&g, 5, 0, &r, 100);
	ck_assert_int_eq(append_spec(w, &g, &e), 0);
	/* nobody waits; the background thread makes it durable within the delay */
	int waited_ms = 0;
	while (pbox_wal_durable_lsn(w) < e && waited_ms < 5000) {
		usleep(1000);
		waited_ms++;
	}
	ck_assert_uint_ge(pbox_wal_durable_lsn(w), e);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- faults ------------------------------------------------------------------------------ */

START_TEST(test_poison_on_sync_failure)
{
	for (int sync = PBOX_WAL_SYNC_FDATASYNC; sync <= PBOX_WAL_SYNC_IO_URING; sync++) {
		if (sync == PBOX_WAL_SYNC_DSYNC)
			continue; /* no separate sync call: covered by the write faults */
		pbox_io *mio;
		pbox_io_memfs *fs = new_fs(&mio);
		pbox_io_faulty *f;
		ck_assert_int_eq(pbox_io_faulty_create(mio, &f), 0);
		pbox_wal_options o = small_opts(pbox_io_faulty_io(f));
		o.sync = (pbox_wal_sync)sync;
		pbox_wal *w;
		ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
		pbox_rng r;
		pbox_rng_seed(&r, 11);
		gspec g[3];
		pbox_lsn e[3];
		gspec_make(&g[0], 6, 0, &r, 100);
		ck_assert_int_eq(append_spec(w, &g[0], &e[0]), 0);
		ck_assert_int_eq(pbox_wal_wait_durable(w, e[0]), 0);
		pbox_io_faulty_arm(f, sync == PBOX_WAL_SYNC_FSYNC ? PBOX_IO_FSYNC : PBOX_IO_FDATASYNC,
				   1, EIO, false);
		gspec_make(&g[1], 6, 1, &r, 100);
		ck_assert_int_eq(append_spec(w, &g[1], &e[1]), 0);
		ck_assert_int_eq(pbox_wal_wait_durable(w, e[1]), -EIO);
		ck_assert(pbox_io_faulty_fired(f));
		pbox_io_faulty_disarm(f);
		/* the retry would succeed now, but the log refuses: the kernel may have dropped
		 * the data it failed to write */
		ck_assert_int_eq(pbox_wal_wait_durable(w, e[1]), PBOX_EPOISONED);
		ck_assert_int_eq(pbox_wal_wait_durable(w, e[0]), PBOX_EPOISONED);
		gspec_make(&g[2], 6, 2, &r, 100);
		ck_assert_int_eq(append_spec(w, &g[2], &e[2]), PBOX_EPOISONED);
		ck_assert_int_eq(pbox_wal_flush(w), PBOX_EPOISONED);
		pbox_wal_info info;
		pbox_wal_get_info(w, &info);
		ck_assert_int_eq(info.poisoned, -EIO);
		ck_assert_int_eq(pbox_wal_close(w), PBOX_EPOISONED);
		/* reopened: the durable group is there; the failed one may or may not be */
		o.create = false;
		ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
		unsigned n = replay_all(w, 0, g, 2, NULL);
		ck_assert(n == 1 || n == 2);
		ck_assert_int_eq(append_spec(w, &g[2], &e[2]), 0);
		ck_assert_int_eq(pbox_wal_wait_durable(w, e[2]), 0);
		ck_assert_int_eq(pbox_wal_close(w), 0);
		pbox_io_faulty_destroy(f);
		pbox_io_memfs_destroy(fs);
	}
}
END_TEST

START_TEST(test_write_faults)
{
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	pbox_io_faulty *f;
	ck_assert_int_eq(pbox_io_faulty_create(mio, &f), 0);
	pbox_wal_options o = small_opts(pbox_io_faulty_io(f));
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_rng r;
	pbox_rng_seed(&r, 12);
	gspec g[4];
	pbox_lsn e[4];

	/* short writes are completed */
	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 1, 0, false);
	gspec_make(&g[0], 7, 0, &r, 2000);
	ck_assert_int_eq(append_spec(w, &g[0], &e[0]), 0);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e[0]), 0);
	ck_assert(pbox_io_faulty_fired(f));

	/* a full disk is reported, then the log is poisoned (never retried blindly) */
	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 1, ENOSPC, true);
	gspec_make(&g[1], 7, 1, &r, 100);
	ck_assert_int_eq(append_spec(w, &g[1], &e[1]), 0);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e[1]), -ENOSPC);
	uint64_t writes = pbox_io_faulty_count(f, PBOX_IO_PWRITE);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e[1]), PBOX_EPOISONED);
	ck_assert_uint_eq(pbox_io_faulty_count(f, PBOX_IO_PWRITE), writes);
	pbox_io_faulty_disarm(f);
	ck_assert_int_eq(pbox_wal_close(w), PBOX_EPOISONED);

	o.create = false;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	ck_assert_uint_eq(replay_all(w, 0, g, 1, e), 1);
	ck_assert_int_eq(pbox_wal_close(w), 0);

	/* failures while opening are returned, not crashed on */
	for (int kind = PBOX_IO_OPEN; kind <= PBOX_IO_LISTDIR; kind++) {
		pbox_io_faulty_arm(f, (pbox_io_kind)kind, 1, EIO, true);
		int rc = pbox_wal_open(DIR_, &o, &w);
		pbox_io_faulty_disarm(f);
		if (rc == 0) /* that kind of call is not made by open */
			ck_assert_int_eq(pbox_wal_close(w), 0);
		else
			ck_assert_int_lt(rc, 0);
	}
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	ck_assert_uint_eq(replay_all(w, 0, g, 1, e), 1);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	pbox_io_faulty_destroy(f);
	pbox_io_memfs_destroy(fs);
}
END_TEST

START_TEST(test_alloc_faults)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	o.create = false;
	for (uint64_t n = 1; n < 40; n++) {
		pbox_alloc_fail_nth(n, false);
		int rc = pbox_wal_open(DIR_, &o, &w);
		pbox_alloc_fail_nth(0, false);
		if (rc == 0)
			ck_assert_int_eq(pbox_wal_close(w), 0);
		else
			ck_assert_int_eq(rc, -ENOMEM);
	}
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* One round that covers many segments (a backlog written in one go): every segment it wrote
 * is synced after its write, so all of it survives a power cut once wait_durable returned. */
START_TEST(test_sync_covers_long_backlog)
{
	for (int sync = PBOX_WAL_SYNC_FDATASYNC; sync <= PBOX_WAL_SYNC_IO_URING; sync++) {
		if (sync == PBOX_WAL_SYNC_DSYNC)
			continue;
		pbox_io *io;
		pbox_io_memfs *fs = new_fs(&io);
		pbox_wal_options o = small_opts(io);
		o.sync = (pbox_wal_sync)sync;
		o.buffer_size = 1 << 20; /* room for a backlog of ~20 segments of 16 KiB */
		pbox_wal *w;
		ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
		pbox_rng r;
		pbox_rng_seed(&r, 21);
		enum { N = 120 };
		gspec g[N];
		pbox_lsn ends[N];
		for (unsigned i = 0; i < N; i++) {
			gspec_make(&g[i], 11, i, &r, 3000);
			ck_assert_int_eq(append_spec(w, &g[i], &ends[i]), 0);
		}
		ck_assert_uint_gt(ends[N - 1] / (16 << 10), 12); /* more than 8 segments */
		ck_assert_int_eq(pbox_wal_wait_durable(w, ends[N - 1]), 0);
		pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 1);
		pbox_wal_close(w);
		pbox_io_memfs_restart(fs);
		o.create = false;
		ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
		ck_assert_uint_eq(replay_all(w, 0, g, N, ends), N);
		ck_assert_int_eq(pbox_wal_close(w), 0);
		pbox_io_memfs_destroy(fs);
	}
}
END_TEST

/* ---- power cuts ------------------------------------------------------------------------------ */

#define MAXW 4
#define MAXG 400

typedef struct writer {
	pbox_wal *w;
	uint32_t id;
	uint64_t seed;
	unsigned ngroups;
	gspec g[MAXG];
	pbox_lsn end[MAXG];
	bool appended[MAXG];
	bool acked[MAXG];
} writer;

static void *writer_main(void *arg)
{
	writer *wr = arg;
	pbox_rng r;
	pbox_rng_seed(&r, wr->seed);
	for (unsigned i = 0; i < wr->ngroups; i++) {
		gspec_make(&wr->g[i], wr->id, i, &r, pbox_rng_below(&r, 8) == 0 ? 2500 : 150);
		if (append_spec(wr->w, &wr->g[i], &wr->end[i]) != 0)
			break;
		wr->appended[i] = true;
		if (pbox_rng_below(&r, 3) == 0) {
			if (pbox_wal_wait_durable(wr->w, wr->end[i]) != 0)
				break;
			for (unsigned j = 0; j <= i; j++) /* everything before is durable too */
				wr->acked[j] = wr->appended[j] && wr->end[j] <= wr->end[i] ? true
											 : wr->acked[j];
		}
	}
	return NULL;
}

static unsigned long pc_acked, pc_lost_unacked, pc_pending_writes, pc_erased_cycles;

/* One cycle: nw writers append concurrently; the power is cut at a random moment; the log
 * is reopened and must hold exactly a prefix of whole groups, including every acked one. */
static void powercut_cycle(uint64_t seed, unsigned nw, pbox_wal_sync sync)
{
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	o.sync = sync;
	o.flush_delay_us = pbox_rng_below(&r, 2) ? 500 : 0;
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	/* some history before the run, possibly with a torn tail of its own */
	static writer ws[MAXW];
	pthread_t th[MAXW];
	for (unsigned i = 0; i < nw; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].w = w;
		ws[i].id = i + 1;
		ws[i].seed = pbox_rng_next(&r);
		ws[i].ngroups = 1 + (unsigned)pbox_rng_below(&r, MAXG);
		pthread_create(&th[i], NULL, writer_main, &ws[i]);
	}
	usleep((useconds_t)pbox_rng_below(&r, 3000));
	pbox_powercut_mode mode = (pbox_powercut_mode)pbox_rng_below(&r, 3);
	pc_pending_writes += pbox_io_memfs_powercut(fs, mode, pbox_rng_next(&r));
	for (unsigned i = 0; i < nw; i++)
		pthread_join(th[i], NULL);
	pbox_wal_close(w); /* fails: the machine is off; frees the crashed log */
	pbox_io_memfs_restart(fs);

	o.create = false;
	o.flush_delay_us = 0;
	int rc = pbox_wal_open(DIR_, &o, &w);
	if (rc != 0)
		ck_abort_msg("reopen after power cut (mode %d, seed %llu): %s", mode,
			     (unsigned long long)seed, pbox_strerror(rc));
	/* replay: a prefix (by LSN) of everything appended, whole groups, all acked ones */
	pbox_wal_iter *it;
	ck_assert_int_eq(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group grp;
	pbox_lsn last_end = 0;
	unsigned seen[MAXW] = { 0 };
	while ((rc = pbox_wal_iter_next(it, &grp)) == 1) {
		gspec g;
		check_group(it, &grp, &g);
		ck_assert(g.writer >= 1 && g.writer <= nw);
		writer *wr = &ws[g.writer - 1];
		ck_assert_uint_lt(g.seq, wr->ngroups);
		ck_assert(wr->appended[g.seq]);
		ck_assert_uint_eq(wr->end[g.seq], grp.end_lsn); /* the same group, same place */
		ck_assert_uint_eq(g.seq, seen[g.writer - 1]);   /* each writer's groups in order */
		seen[g.writer - 1]++;
		last_end = grp.end_lsn;
	}
	ck_assert_int_eq(rc, 0);
	pbox_wal_iter_close(it);
	for (unsigned i = 0; i < nw; i++) {
		writer *wr = &ws[i];
		for (unsigned j = 0; j < wr->ngroups; j++) {
			if (wr->acked[j] && j >= seen[i])
				ck_abort_msg("acked group %u/%u lost (mode %d, seed %llu)", i + 1, j,
					     mode, (unsigned long long)seed);
			/* prefix: every appended group below the last replayed one is there */
			if (wr->appended[j] && wr->end[j] <= last_end)
				ck_assert_uint_lt(j, seen[i]);
			pc_acked += wr->acked[j];
			pc_lost_unacked += wr->appended[j] && j >= seen[i];
		}
	}
	pbox_wal_info oi;
	pbox_wal_get_info(w, &oi);
	pc_erased_cycles += oi.open_erased_bytes > 0;
	/* the log goes on after recovery, and again survives a reopen */
	gspec extra;
	pbox_lsn e;
	gspec_make(&extra, 9, 0, &r, 100);
	ck_assert_int_eq(append_spec(w, &extra, &e), 0);
	ck_assert_int_eq(pbox_wal_wait_durable(w, e), 0);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.end_lsn, e);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	pbox_io_memfs_destroy(fs);
}

START_TEST(test_powercut_single)
{
	uint64_t base = pbox_test_seed();
	unsigned cycles = pbox_test_cycles(300);
	pc_acked = pc_lost_unacked = pc_pending_writes = pc_erased_cycles = 0;
	for (unsigned c = 0; c < cycles; c++)
		powercut_cycle(base + c, 1, c % 3 == 0 ? PBOX_WAL_SYNC_IO_URING : PBOX_WAL_SYNC_FDATASYNC);
	fprintf(stderr, "power cuts (1 writer): %u cycles, %lu acked groups kept, %lu unacked lost, "
			"%lu unsynced writes at the cuts, %lu torn tails erased\n",
		cycles, pc_acked, pc_lost_unacked, pc_pending_writes, pc_erased_cycles);
	ck_assert_uint_gt(pc_acked, 0);
	ck_assert_uint_gt(pc_lost_unacked, 0); /* cuts did hit unsynced work */
}
END_TEST

START_TEST(test_powercut_concurrent)
{
	uint64_t base = pbox_test_seed() ^ 0xabcdef;
	unsigned cycles = pbox_test_cycles(300);
	pc_acked = pc_lost_unacked = pc_pending_writes = pc_erased_cycles = 0;
	for (unsigned c = 0; c < cycles; c++)
		powercut_cycle(base + c, 2 + c % 3, c % 4 == 0 ? PBOX_WAL_SYNC_IO_URING
							 : PBOX_WAL_SYNC_FDATASYNC);
	fprintf(stderr, "power cuts (2-4 writers): %u cycles, %lu acked groups kept, %lu unacked "
			"lost, %lu unsynced writes at the cuts, %lu torn tails erased\n",
		cycles, pc_acked, pc_lost_unacked, pc_pending_writes, pc_erased_cycles);
	ck_assert_uint_gt(pc_acked, 0);
	ck_assert_uint_gt(pc_lost_unacked, 0);
}
END_TEST

/* ---- corruption sweep ------------------------------------------------------------------------- */

typedef struct snapfile {
	char path[96];
	uint8_t *data;
	int64_t len;
} snapfile;

typedef struct snapshot {
	snapfile f[8];
	int n;
	pbox_io_memfs *fs;
} snapshot;

static int snap_one(const char *name, void *arg)
{
	snapshot *sn = arg;
	ck_assert_int_lt(sn->n, 8);
	snapfile *f = &sn->f[sn->n++];
	snprintf(f->path, sizeof(f->path), DIR_ "/%s", name);
	f->data = malloc(1 << 16);
	f->len = pbox_io_memfs_peek(sn->fs, f->path, f->data, 1 << 16, 0);
	ck_assert_int_ge(f->len, 0);
	return 0;
}

START_TEST(test_corruption_sweep)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_wal_options o = small_opts(io);
	o.max_spares = 0;
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open(DIR_, &o, &w), 0);
	pbox_rng r;
	pbox_rng_seed(&r, 99);
	enum { N = 48 };
	gspec g[N];
	pbox_lsn ends[N];
	for (unsigned i = 0; i < N; i++) {
		gspec_make(&g[i], 8, i, &r, 250);
		ck_assert_int_eq(append_spec(w, &g[i], &ends[i]), 0);
		ck_assert_int_eq(pbox_wal_wait_durable(w, ends[i]), 0); /* one sync per group */
	}
	ck_assert_int_eq(pbox_wal_close(w), 0);
	ck_assert_uint_ge(ends[N - 1] / (16 << 10), 1); /* two segments at least */
	snapshot sn = { .fs = fs };
	ck_assert_int_eq(io->listdir(io, DIR_, snap_one, &sn), 0);
	o.create = false;
	o.start_lsn = 4096;
	unsigned flips = 0, corrupt = 0, shorter = 0;
	for (int s = 0; s < sn.n; s++) {
		snapfile *f = &sn.f[s];
		uint64_t base = strtoull(strrchr(f->path, '/') + 5, NULL, 16);
		if (base > ends[N - 1])
			continue; /* a prepared, empty segment */
		uint64_t used = ends[N - 1] - base < (uint64_t)f->len ? ends[N - 1] - base
								    : (uint64_t)f->len;
		for (uint64_t off = 0; off < used; off++) {
			if (off >= 64 && off < 4096)
				continue; /* unused zero bytes of the header block */
			uint8_t x = (uint8_t)(f->data[off] ^ (1u << (off % 8)));
			ck_assert_int_eq(pbox_io_memfs_poke(fs, f->path, &x, 1, off), 0);
			flips++;
			int rc = pbox_wal_open(DIR_, &o, &w);
			if (rc == PBOX_ECORRUPT) {
				corrupt++;
			} else {
				if (rc != 0)
					ck_abort_msg("flip at %s+%llu: %s", f->path,
						     (unsigned long long)off, pbox_strerror(rc));
				unsigned n = replay_all(w, 0, g, N, ends); /* a clean prefix */
				shorter += n < N;
				ck_assert_int_eq(pbox_wal_close(w), 0);
			}
			/* open may have erased what it took for a torn tail: restore everything */
			for (int t = 0; t < sn.n; t++)
				ck_assert_int_eq(pbox_io_memfs_poke(fs, sn.f[t].path, sn.f[t].data,
								    (size_t)sn.f[t].len, 0), 0);
		}
	}
	fprintf(stderr, "corruption sweep: %u flips, %u reported corrupt, %u gave a shorter log\n",
		flips, corrupt, shorter);
	ck_assert_uint_gt(flips, 10000);
	ck_assert_uint_gt(corrupt, flips / 2); /* most damage is followed by durable groups */
	for (int t = 0; t < sn.n; t++)
		free(sn.f[t].data);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* Issue 13, window 1: a group that ends exactly where a segment begins, a recycle up to that
 * end, and a reopen from it. The segment holding the start did not exist: PBOX_ECORRUPT. */
START_TEST(test_reopen_at_segment_boundary)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	pbox_io *io = pbox_io_memfs_io(fs);
	ck_assert_int_eq(io->mkdir(io, "/w", 0755), 0);
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = io;
	o.segment_size = 16 << 10;
	o.buffer_size = 64 << 10;
	o.create = true;
	pbox_wal *w;
	ck_assert_int_eq(pbox_wal_open("/w", &o, &w), 0);
	static unsigned char buf[12224];
	memset(buf, 7, sizeof(buf));
	pbox_wal_rec rec = { .type = 1, .data = buf, .len = sizeof(buf) };
	pbox_lsn end;
	ck_assert_int_eq(pbox_wal_append(w, &rec, 1, &end), 0);
	ck_assert_uint_eq(end, 16384); /* the premise: exactly at the boundary */
	ck_assert_int_eq(pbox_wal_wait_durable(w, end), 0);
	pbox_lsn c = pbox_wal_end_lsn(w);
	ck_assert_int_eq(pbox_wal_recycle(w, c), 0);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	o.start_lsn = c;
	o.create = false;
	int r = pbox_wal_open("/w", &o, &w);
	ck_assert_msg(r == 0, "reopen from a segment boundary: %s", pbox_status_name(r));
	/* and it goes on: an append, a close, a reopen that finds it */
	ck_assert_int_eq(pbox_wal_append(w, &rec, 1, &end), 0);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	ck_assert_int_eq(pbox_wal_open("/w", &o, &w), 0);
	pbox_wal_info info;
	pbox_wal_get_info(w, &info);
	ck_assert_uint_eq(info.end_lsn, end);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	/* pbox_wal_prepare refuses an LSN past the end */
	ck_assert_int_eq(pbox_wal_open("/w", &o, &w), 0);
	ck_assert_int_eq(pbox_wal_prepare(w, end + 1), PBOX_EINVAL);
	ck_assert_int_eq(pbox_wal_prepare(w, 4096), PBOX_EINVAL); /* segment 0: recycled */
	ck_assert_int_eq(pbox_wal_prepare(w, end), 0);
	ck_assert_int_eq(pbox_wal_close(w), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("wal");
	TCase *tc;
	tc = tcase_create("format");
	tcase_add_test(tc, test_basic_roundtrip);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_recycle);
	tcase_add_test(tc, test_reopen_at_segment_boundary);
	suite_add_tcase(s, tc);
	tc = tcase_create("backends");
	tcase_add_test(tc, test_backends);
	tcase_add_test(tc, test_background_flush);
	tcase_add_test(tc, test_sync_covers_long_backlog);
	suite_add_tcase(s, tc);
	tc = tcase_create("faults");
	tcase_add_test(tc, test_poison_on_sync_failure);
	tcase_add_test(tc, test_write_faults);
	tcase_add_test(tc, test_alloc_faults);
	suite_add_tcase(s, tc);
	tc = tcase_create("powercut");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_powercut_single);
	tcase_add_test(tc, test_powercut_concurrent);
	suite_add_tcase(s, tc);
	tc = tcase_create("corruption");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_corruption_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
