/*
 * check_storage.c — the page store, buffer pool, mini-transactions, checkpoints and
 * recovery.
 *
 * The crash tests use a small page-level structure: "counter pages", each holding 64
 * 64-bit counters, changed by mini-transactions that add deltas to counters on 1-4 pages
 * (logged with a user redo record ADD(offset, delta)). An oracle replays the acknowledged
 * mini-transactions; after every power cut the store must equal the oracle after some prefix
 * of the mini-transactions that includes every acknowledged durable one.
 */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_ "/st"
#define NCTR 64
#define CTR_OFF PBOX_PAGE_HDR
#define REDO_ADD (PBOX_REDO_TYPE_USER + 1)
#define PAGE_CTR (PBOX_PAGE_TYPE_USER + 1)

/* ADD payload: u32 counter index, u64 delta */
static int redo_add(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	if (len != 12)
		return PBOX_ECORRUPT;
	uint32_t idx;
	uint64_t delta, v;
	memcpy(&idx, payload, 4);
	memcpy(&delta, (const char *)payload + 4, 8);
	if (idx >= NCTR || CTR_OFF + 8 * (idx + 1) > ps)
		return PBOX_ECORRUPT;
	unsigned char *p = (unsigned char *)page + CTR_OFF + 8 * idx;
	memcpy(&v, p, 8);
	v += delta;
	memcpy(p, &v, 8);
	return 0;
}

static const pbox_redo_handler handlers[] = { { .type = REDO_ADD, .fn = redo_add } };

static int mtr_add(pbox_mtr *m, pbox_pid pid, uint32_t idx, uint64_t delta)
{
	void *page;
	int r = pbox_mtr_fix(m, pid, &page);
	if (r)
		return r;
	unsigned char pl[12];
	memcpy(pl, &idx, 4);
	memcpy(pl + 4, &delta, 8);
	redo_add(page, 4096, pl, 12, NULL);
	return pbox_mtr_log(m, pid, REDO_ADD, pl, 12);
}

static uint64_t read_ctr(pbox_store *st, pbox_pid pid, uint32_t idx)
{
	for (;;) {
		uint64_t v;
		int rc = pbox_page_fix_opt(st, pid, &v);
		if (rc) {
			pbox_store_stats s;
			pbox_store_get_stats(st, &s);
			ck_abort_msg("fix of page %llu: %s (page count %llu)", (unsigned long long)pid,
				     pbox_strerror(rc), (unsigned long long)s.page_count);
		}
		uint64_t x = pbox_latch_opt_load_u64((unsigned char *)pbox_page_addr(st, pid) +
						     CTR_OFF + 8 * idx);
		if (pbox_page_validate(st, pid, v))
			return x;
	}
}

static pbox_store_options opts(pbox_io *io)
{
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = io;
	o.create = true;
	o.budget_bytes = 64 * 4096;
	o.max_bytes = 1ull << 30;
	o.wal_segment_size = 1 << 20;
	o.wal_flush_delay_us = 0;
	o.redo = handlers;
	o.nredo = 1;
	return o;
}

static pbox_io_memfs *new_fs(pbox_io **io)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	*io = pbox_io_memfs_io(fs);
	return fs;
}

START_TEST(test_create_reopen)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io);
	pbox_store *st;
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	o.create = false;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_ENOTFOUND);
	o.create = true;
	/* two handlers of one record type: refused, never one silently winning */
	pbox_redo_handler twice[2] = { handlers[0], handlers[0] };
	o.redo = twice;
	o.nredo = 2;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "both claim record type"));
	o.redo = handlers;
	o.nredo = 1;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	ck_assert_uint_eq(pbox_store_page_size(st), 4096);
	/* a second open of the same store is refused, naming the lock */
	pbox_store *st2;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st2), PBOX_ELOCKED);
	ck_assert_ptr_nonnull(strstr(err, "LOCK"));

	enum { N = 200 };
	pbox_pid pids[N];
	for (int i = 0; i < N; i++) {
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		void *page;
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pids[i], &page), 0);
		ck_assert_int_eq(mtr_add(m, pids[i], (uint32_t)(i % NCTR), (uint64_t)i + 1), 0);
		ck_assert_int_eq(pbox_mtr_meta_set(m, 3, pids[0]), 0);
		ck_assert_int_eq(pbox_mtr_commit(m, i % 10 == 0, NULL), 0);
	}
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(read_ctr(st, pids[i], (uint32_t)(i % NCTR)), (uint64_t)i + 1);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert_uint_le(s.resident_pages, 64 + 8);
#if PBOX_METRICS
	ck_assert_uint_gt(s.evictions, 0);
#endif
	ck_assert_uint_eq(s.page_count, 3 + N);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), pids[0]);
	ck_assert_int_eq(pbox_store_close(st), 0);

	o.create = false;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(read_ctr(st, pids[i], (uint32_t)(i % NCTR)), (uint64_t)i + 1);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), pids[0]);
	/* free and reuse, also after restart */
	for (int i = 0; i < 10; i++) {
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_fix(m, pids[i], NULL), 0);
		ck_assert_int_eq(pbox_mtr_free(m, pids[i]), 0);
		ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	}
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.free_pages, 10);
	ck_assert_int_eq(pbox_store_close(st), 0);
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.free_pages, 10);
	for (int i = 0; i < 10; i++) {
		pbox_mtr *m;
		pbox_pid p;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &p, NULL), 0);
		ck_assert_uint_lt(p, 3 + N); /* reused */
		ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
	}
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.free_pages, 0);
	ck_assert_uint_eq(s.page_count, 3 + N);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* A creation that stops at any I/O call (the process dies: the failing call and all after
 * it do nothing) and then loses power leaves either no store or a whole one: an open without
 * create finds nothing or the empty store, never a damaged one, and an open with create
 * always succeeds. Before the fix, a data file without superblocks made every later open
 * fail with PBOX_ECORRUPT (found by kvstore's kill -9 torture). */
START_TEST(test_create_crash)
{
	uint64_t total;
	{
		pbox_io *mio;
		pbox_io_memfs *fs = new_fs(&mio);
		pbox_io_faulty *f;
		ck_assert_int_eq(pbox_io_faulty_create(mio, &f), 0);
		pbox_store_options o = opts(pbox_io_faulty_io(f));
		pbox_store *st;
		ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
		total = 0;
		for (int k = 0; k < PBOX_IO_KIND_COUNT; k++)
			total += pbox_io_faulty_count(f, (pbox_io_kind)k);
		ck_assert_int_eq(pbox_store_close(st), 0);
		pbox_io_faulty_destroy(f);
		pbox_io_memfs_destroy(fs);
	}
	ck_assert_uint_gt(total, 5);
	unsigned created = 0;
	for (uint64_t n = 1; n <= total; n++) {
		pbox_io *mio;
		pbox_io_memfs *fs = new_fs(&mio);
		pbox_io_faulty *f;
		ck_assert_int_eq(pbox_io_faulty_create(mio, &f), 0);
		pbox_store_options o = opts(pbox_io_faulty_io(f));
		pbox_store *st;
		pbox_io_faulty_arm(f, PBOX_IO_ANY, n, EIO, true);
		int r = pbox_store_open(DIR_, &o, &st);
		if (r == 0) /* the failing call was not needed to create it (close's, say) */
			(void)pbox_store_close(st);
		pbox_io_faulty_disarm(f);
		(void)pbox_io_memfs_powercut(fs, (pbox_powercut_mode)(n % 4), n);
		pbox_io_memfs_restart(fs);
		o.create = false;
		r = pbox_store_open(DIR_, &o, &st);
		ck_assert_msg(r == 0 || r == PBOX_ENOTFOUND,
			      "creation stopped at call %llu of %llu: reopen gives %s",
			      (unsigned long long)n, (unsigned long long)total, pbox_strerror(r));
		if (r == 0) {
			created++;
			ck_assert_int_eq(pbox_store_close(st), 0);
		}
		o.create = true;
		r = pbox_store_open(DIR_, &o, &st);
		ck_assert_msg(r == 0, "creation stopped at call %llu: create again gives %s",
			      (unsigned long long)n, pbox_strerror(r));
		pbox_mtr *m;
		pbox_pid pid;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pid, NULL), 0);
		ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
		ck_assert_int_eq(pbox_store_close(st), 0);
		pbox_io_faulty_destroy(f);
		pbox_io_memfs_destroy(fs);
	}
	fprintf(stderr, "create crash: %llu stopping points, %u left a whole store\n",
		(unsigned long long)total, created);
}
END_TEST

/* checkpoint_log_bytes: a thread checkpoints as the log grows, so the log since the redo
 * start stays near the threshold however long the writers run; nothing is lost. */
START_TEST(test_auto_checkpoint)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io);
	o.checkpoint_log_bytes = 512 << 10;
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	enum { NP = 32 };
	pbox_pid pids[NP];
	for (int i = 0; i < NP; i++) {
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pids[i], NULL), 0);
		ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
	}
	/* each change after a checkpoint logs a full page image: ~4 KiB a commit at first */
	uint64_t sum[NP] = { 0 }, most = 0, n = 0;
	pbox_store_stats s;
	uint64_t t0 = (pbox_now_ns() / 1000000);
	do {
		for (int k = 0; k < 200; k++, n++) {
			pbox_mtr *m;
			int i = (int)(n % NP);
			ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
			ck_assert_int_eq(pbox_mtr_fix(m, pids[i], NULL), 0);
			ck_assert_int_eq(mtr_add(m, pids[i], 0, 1), 0);
			ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
			sum[i]++;
		}
		pbox_store_get_stats(st, &s);
		if (s.wal_end - s.redo_start > most)
			most = s.wal_end - s.redo_start;
	} while (s.auto_checkpoints < 3 && (pbox_now_ns() / 1000000) - t0 < 20000);
	ck_assert_uint_ge(s.auto_checkpoints, 3);
	/* one 50 ms polling interval of writing beyond the threshold, at most */
	ck_assert_msg(most < 64ull << 20, "log since the redo start reached %llu bytes",
		      (unsigned long long)most);
	ck_assert_int_eq(pbox_store_close(st), 0);
	o.create = false;
	o.checkpoint_log_bytes = 0;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	for (int i = 0; i < NP; i++)
		ck_assert_uint_eq(read_ctr(st, pids[i], 0), sum[i]);
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.auto_checkpoints, 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- page sizes, superblocks ------------------------------------------------------------ */

START_TEST(test_page_sizes_and_superblocks)
{
	static const uint32_t sizes[] = { 4096, 16384, 65536 };
	for (size_t k = 0; k < PBOX_ARRAY_LEN(sizes); k++) {
		pbox_io *io;
		pbox_io_memfs *fs = new_fs(&io);
		pbox_store_options o = opts(io);
		o.page_size = sizes[k];
		o.budget_bytes = 64ull * sizes[k];
		pbox_store *st;
		ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
		pbox_pid pid;
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pid, NULL), 0);
		ck_assert_int_eq(mtr_add(m, pid, 5, 55), 0);
		ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
		ck_assert_int_eq(pbox_store_close(st), 0);
		/* reopening with another page size keeps the store's own */
		o.page_size = 4096;
		o.create = false;
		ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
		ck_assert_uint_eq(pbox_store_page_size(st), sizes[k]);
		ck_assert_uint_eq(read_ctr(st, pid, 5), 55);
		ck_assert_int_eq(pbox_store_close(st), 0);
		/* one damaged superblock copy: the other one serves */
		uint8_t junk[64];
		memset(junk, 0xA5, sizeof(junk));
		ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk), 100), 0);
		ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
		ck_assert_uint_eq(read_ctr(st, pid, 5), 55);
		ck_assert_int_eq(pbox_store_close(st), 0);
		/* the close wrote a fresh copy; damage both: a clear error, no crash */
		ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk), 100), 0);
		ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk),
						   (uint64_t)sizes[k] + 100), 0);
		char err[256] = "";
		o.errbuf = err;
		o.errbuf_len = sizeof(err);
		ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_ECORRUPT);
		ck_assert_ptr_nonnull(strstr(err, "superblock"));
		pbox_io_memfs_destroy(fs);
	}
	/* bad options */
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io);
	pbox_store *st;
	o.page_size = 3000;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_EINVAL);
	o.page_size = 131072;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_EINVAL);
	o = opts(io);
	pbox_redo_handler bad = { .type = 7, .fn = redo_add }; /* storage's own range */
	o.redo = &bad;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_EINVAL);
	o = opts(io);
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	uint64_t v;
	ck_assert_int_eq(pbox_page_fix_opt(st, 1u << 30, &v), PBOX_EINVAL); /* beyond the store */
	ck_assert_int_eq(pbox_page_fix_opt(st, 5000, &v), PBOX_EINVAL);     /* not allocated */
	pbox_mtr *m;
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(pbox_mtr_write(m, 2, 0, "x", 1), PBOX_EINVAL); /* header, not held */
	ck_assert_int_eq(pbox_mtr_log(m, 2, REDO_ADD, "x", 1), PBOX_EINVAL); /* not held */
	ck_assert_int_eq(pbox_mtr_meta_set(m, PBOX_META_SLOTS, 1), PBOX_EINVAL);
	pbox_mtr_abort(m, false);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- O_DIRECT and its fallback, on real files ---------------------------------------------- */

static void direct_io_case(pbox_io *io, const char *dir, bool expect_direct)
{
	pbox_store_options o = opts(io);
	char note[256];
	o.errbuf = note;
	o.errbuf_len = sizeof(note);
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(dir, &o, &st), 0);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert_int_eq(s.direct_io, expect_direct);
	if (expect_direct)
		ck_assert_str_eq(note, "");
	else
		ck_assert_ptr_nonnull(strstr(note, "O_DIRECT")); /* noted once, at open */
	pbox_pid pid;
	pbox_mtr *m;
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pid, NULL), 0);
	ck_assert_int_eq(mtr_add(m, pid, 9, 99), 0);
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	o.create = false;
	ck_assert_int_eq(pbox_store_open(dir, &o, &st), 0);
	ck_assert_uint_eq(read_ctr(st, pid, 9), 99);
	ck_assert_int_eq(pbox_store_close(st), 0);
}

START_TEST(test_direct_io_fallback)
{
	/* real files (ext4 on the machines this runs on: O_DIRECT works) */
	char *tmp = pbox_test_tmpdir("direct");
	ck_assert_ptr_nonnull(tmp);
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/st", tmp);
	direct_io_case(NULL, dir, true);
	pbox_test_rmtree(tmp);
	free(tmp);
	/* a file system that refuses O_DIRECT: the data file's first open fails with EINVAL
	 * (open call 1 looks for an unfinished backup's marker, 2 is LOCK, 3 the data file
	 * with O_DIRECT) */
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	pbox_io_faulty *f;
	ck_assert_int_eq(pbox_io_faulty_create(mio, &f), 0);
	pbox_io_faulty_arm(f, PBOX_IO_OPEN, 3, EINVAL, false);
	direct_io_case(pbox_io_faulty_io(f), DIR_, false);
	ck_assert(pbox_io_faulty_fired(f));
	pbox_io_faulty_destroy(f);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- torn pages are restored from full-page images --------------------------------------- */

START_TEST(test_torn_page_restored)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io);
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	pbox_pid pid;
	pbox_mtr *m;
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pid, NULL), 0);
	ck_assert_int_eq(mtr_add(m, pid, 1, 10), 0);
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	ck_assert_int_eq(pbox_store_checkpoint(st), 0);
	/* first change after the checkpoint: logged with a full-page image */
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(mtr_add(m, pid, 2, 20), 0);
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(mtr_add(m, pid, 3, 30), 0);
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	/* the page reaches the disk by eviction, then the crash tears it */
	ck_assert_int_eq(pbox_store_set_budget(st, 0), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 1);
	pbox_store_close(st);
	pbox_io_memfs_restart(fs);
	uint8_t junk[512];
	memset(junk, 0x5A, sizeof(junk));
	ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk), pid * 4096 + 1024),
			 0);
	o.create = false;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.recovery_pages_restored, 1);
	ck_assert_uint_ge(s.recovery_groups, 2);
	ck_assert_uint_eq(read_ctr(st, pid, 1), 10);
	ck_assert_uint_eq(read_ctr(st, pid, 2), 20);
	ck_assert_uint_eq(read_ctr(st, pid, 3), 30);
	ck_assert_int_eq(pbox_store_close(st), 0);
	/* damage that no log record covers (after a clean close): PBOX_ECORRUPT on fix */
	ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk), pid * 4096 + 1024),
			 0);
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	uint64_t v;
	ck_assert_int_eq(pbox_page_fix_opt(st, pid, &v), PBOX_ECORRUPT);
	/* the failure says where it was found: the pool's load, and the page */
	pbox_corruption c;
	ck_assert(pbox_corruption_last(&c));
	ck_assert_str_eq(c.file, "pool.c");
	ck_assert_uint_eq(c.pid, pid);
	char where[128];
	pbox_corruption_format(&c, where, sizeof(where));
	char want[64];
	snprintf(want, sizeof(want), ", page %llu", (unsigned long long)pid);
	ck_assert_ptr_nonnull(strstr(where, want));
	uint64_t seq = c.seq;
	ck_assert_int_eq(pbox_page_fix_shared(st, pid), PBOX_ECORRUPT);
	ck_assert(pbox_corruption_last_any(&c));
	ck_assert_uint_gt(c.seq, seq); /* a second detection, recorded again */
	ck_assert_int_eq(pbox_store_close(st), 0);
	/* an open that fails on corruption says where in its error buffer */
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	memset(junk, 0x5A, sizeof(junk));
	ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", junk, sizeof(junk), 2 * 4096 + 100), 0);
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), PBOX_ECORRUPT);
	ck_assert_msg(strstr(err, "(detected at ") && strstr(err, "page 2"), "errbuf: %s", err);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- power cuts against an oracle -------------------------------------------------------- */

#define CP_PAGES 160 /* more than the 64-page budget: evictions write pages all the time */
#define CP_MAX_MTR 2000

typedef struct op {
	uint32_t page, idx;
	uint64_t delta;
} op;

typedef struct mtr_rec {
	op ops[4];
	unsigned nops;
	bool acked;
} mtr_rec;

typedef struct crash_writer {
	pbox_store *st;
	pbox_pid pids[CP_PAGES];
	unsigned first, npages; /* this writer's pages: pids[first .. first+npages) */
	uint64_t seed;
	unsigned nmtr, done;
	mtr_rec m[CP_MAX_MTR];
} crash_writer;

static void *crash_writer_main(void *arg)
{
	crash_writer *w = arg;
	pbox_rng r;
	pbox_rng_seed(&r, w->seed);
	for (unsigned i = 0; i < w->nmtr; i++) {
		mtr_rec *mr = &w->m[i];
		mr->nops = 1 + (unsigned)pbox_rng_below(&r, 4);
		pbox_mtr *m;
		if (pbox_mtr_begin(w->st, &m))
			break;
		int rc = 0;
		/* pages in ascending order: no deadlock between writers sharing none anyway */
		uint32_t base = (uint32_t)pbox_rng_below(&r, w->npages);
		for (unsigned k = 0; k < mr->nops && !rc; k++) {
			op *o = &mr->ops[k];
			o->page = w->first + (base + k) % w->npages;
			o->idx = (uint32_t)pbox_rng_below(&r, NCTR);
			o->delta = 1 + pbox_rng_below(&r, 1000);
			rc = mtr_add(m, w->pids[o->page], o->idx, o->delta);
		}
		if (rc) {
			pbox_mtr_abort(m, true);
			break;
		}
		bool durable = pbox_rng_below(&r, 3) == 0;
		w->done = i + 1; /* from here on it may be in the log */
		if (pbox_mtr_commit(m, durable, NULL))
			break;
		mr->acked = durable;
	}
	return NULL;
}

static uint64_t cp_pending, cp_restored, cp_lost;

/* One cycle: set up counter pages, run writers (and maybe a checkpointer), cut the power at a
 * random moment, recover, compare with the oracle. */
static void store_powercut_cycle(uint64_t seed, unsigned nwriters, bool ckpt_thread)
{
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io);
	o.wal_flush_delay_us = pbox_rng_below(&r, 2) ? 300 : 0;
	o.background_evictor = pbox_rng_below(&r, 2);
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	static crash_writer ws[4];
	pbox_pid pids[CP_PAGES];
	pbox_mtr *m;
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	for (unsigned i = 0; i < CP_PAGES; i++) {
		if (i && i % 16 == 0) {
			ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
			ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		}
		ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pids[i], NULL), 0);
	}
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	if (pbox_rng_below(&r, 2))
		ck_assert_int_eq(pbox_store_checkpoint(st), 0);
	pthread_t th[4];
	unsigned per = CP_PAGES / nwriters;
	for (unsigned t = 0; t < nwriters; t++) {
		crash_writer *w = &ws[t];
		memset(w, 0, sizeof(*w));
		w->st = st;
		memcpy(w->pids, pids, sizeof(pids));
		w->first = t * per;
		w->npages = per;
		w->seed = pbox_rng_next(&r);
		w->nmtr = pbox_rng_below(&r, 4) ? CP_MAX_MTR : 1 + (unsigned)pbox_rng_below(&r, 50);
		pthread_create(&th[t], NULL, crash_writer_main, w);
	}
	useconds_t delay = (useconds_t)pbox_rng_below(&r, 1500);
	if (ckpt_thread) {
		unsigned nck = (unsigned)pbox_rng_below(&r, 4);
		for (unsigned k = 0; k < nck; k++) {
			usleep(delay / (nck + 1));
			if (pbox_store_checkpoint(st))
				break;
		}
	}
	usleep(delay / 2);
	pbox_powercut_mode mode = (pbox_powercut_mode)pbox_rng_below(&r, 3);
	cp_pending += pbox_io_memfs_powercut(fs, mode, pbox_rng_next(&r));
	for (unsigned t = 0; t < nwriters; t++)
		pthread_join(th[t], NULL);
	pbox_store_close(st); /* fails: the machine is off */
	pbox_io_memfs_restart(fs);

	o.create = false;
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	int rc = pbox_store_open(DIR_, &o, &st);
	if (rc)
		ck_abort_msg("reopen after power cut (seed %llu, mode %d): %s: %s",
			     (unsigned long long)seed, mode, pbox_strerror(rc), err);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	cp_restored += s.recovery_pages_restored;
	/* each writer: its pages equal the oracle after some prefix >= its last ack */
	for (unsigned t = 0; t < nwriters; t++) {
		crash_writer *w = &ws[t];
		static uint64_t want[CP_PAGES][NCTR], got[CP_PAGES][NCTR];
		memset(want, 0, sizeof(want));
		for (unsigned p = w->first; p < w->first + w->npages; p++)
			for (unsigned c = 0; c < NCTR; c++)
				got[p][c] = read_ctr(st, pids[p], c);
		unsigned last_ack = 0;
		for (unsigned i = 0; i < w->done; i++)
			if (w->m[i].acked)
				last_ack = i + 1;
		bool match = false;
		for (unsigned k = 0; k <= w->done && !match; k++) {
			if (k > 0)
				for (unsigned q = 0; q < w->m[k - 1].nops; q++) {
					op *x = &w->m[k - 1].ops[q];
					want[x->page][x->idx] += x->delta;
				}
			if (k < last_ack)
				continue;
			match = true;
			for (unsigned p = w->first; p < w->first + w->npages && match; p++)
				match = !memcmp(want[p], got[p], sizeof(want[p]));
			if (match)
				cp_lost += w->done - k;
		}
		if (!match)
			ck_abort_msg("writer %u: store is not the oracle after any prefix >= %u of %u "
				     "mtrs (seed %llu, mode %d)", t, last_ack, w->done,
				     (unsigned long long)seed, mode);
	}
	/* and it keeps working: a change, a checkpoint, a clean reopen */
	ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
	ck_assert_int_eq(mtr_add(m, pids[0], 0, 1), 0);
	ck_assert_int_eq(pbox_mtr_commit(m, true, NULL), 0);
	ck_assert_int_eq(pbox_store_checkpoint(st), 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}

START_TEST(test_powercut_single_writer)
{
	uint64_t base = pbox_test_seed();
	unsigned cycles = pbox_test_cycles(250);
	cp_pending = cp_restored = cp_lost = 0;
	for (unsigned c = 0; c < cycles; c++)
		store_powercut_cycle(base + c, 1, c % 2 == 0);
	fprintf(stderr, "store power cuts (1 writer): %u cycles, %llu unsynced writes at the cuts, "
			"%llu torn pages restored from images, %llu unacknowledged mtrs lost\n",
		cycles, (unsigned long long)cp_pending, (unsigned long long)cp_restored,
		(unsigned long long)cp_lost);
	ck_assert_uint_gt(cp_pending, 0);
}
END_TEST

START_TEST(test_powercut_concurrent)
{
	uint64_t base = pbox_test_seed() ^ 0x5eed;
	unsigned cycles = pbox_test_cycles(150);
	cp_pending = cp_restored = cp_lost = 0;
	for (unsigned c = 0; c < cycles; c++)
		store_powercut_cycle(base + c, 2 + c % 3, true);
	fprintf(stderr, "store power cuts (2-4 writers + checkpoints): %u cycles, %llu unsynced "
			"writes at the cuts, %llu torn pages restored, %llu unacknowledged mtrs lost\n",
		cycles, (unsigned long long)cp_pending, (unsigned long long)cp_restored,
		(unsigned long long)cp_lost);
	ck_assert_uint_gt(cp_pending, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage");
	TCase *tc = tcase_create("basic");
	tcase_add_test(tc, test_create_reopen);
	tcase_add_test(tc, test_create_crash);
	tcase_add_test(tc, test_auto_checkpoint);
	tcase_add_test(tc, test_page_sizes_and_superblocks);
	tcase_add_test(tc, test_torn_page_restored);
	tcase_add_test(tc, test_direct_io_fallback);
	suite_add_tcase(s, tc);
	tc = tcase_create("powercut");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_powercut_single_writer);
	tcase_add_test(tc, test_powercut_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
