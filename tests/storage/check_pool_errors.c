/*
 * check_pool_errors.c — the buffer pool when things go wrong: pool exhaustion, pages damaged
 * on disk, I/O errors on reads and on eviction write-back, prefetch on a poisoned store; and
 * the "regressions" case: minimal reproducers of bugs found while writing these tests (in
 * storage, and one in wal met through the store), each comment saying what went wrong and
 * where. Counter pages: pool_test_common.h.
 */
#include "pool_test_common.h"

/* ---- pool exhaustion --------------------------------------------------------------------- */

/*
 * Hold the exclusive latch of a budget's worth of pages (64, in two mtrs of 32): nothing can
 * be evicted, so faulting another page is PBOX_EFULL through every access path, without a
 * hang. Releasing the pages makes the pool usable again.
 */
START_TEST(test_pool_exhaustion)
{
	enum { N = 200 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, MIN_BUDGET);
	/* some unrelated resident pages first, so that the holds have to evict */
	for (unsigned i = 100; i < 100 + MIN_BUDGET; i++)
		check_page(st, pids[i], 0);

	pbox_mtr *m[2];
	for (unsigned k = 0; k < 2; k++) {
		ck_assert_int_eq(pbox_mtr_begin(st, &m[k]), 0);
		for (unsigned j = 0; j < PBOX_MTR_MAX_PAGES; j++) {
			unsigned i = k * PBOX_MTR_MAX_PAGES + j;
			int rc = pbox_mtr_fix(m[k], pids[i], NULL);
			if (rc) {
				int again = pbox_mtr_fix(m[k], pids[i], NULL);
				ck_abort_msg("holding page %u of %u: %s; the same fix again: %s "
					     "(see test_bug_spurious_efull)",
					     i + 1, 2 * PBOX_MTR_MAX_PAGES, pbox_status_name(rc),
					     pbox_status_name(again));
			}
		}
	}
	ck_assert_uint_eq(stats(st).resident_pages, MIN_BUDGET);
	uint64_t v;
	pbox_pid other = pids[N - 1];
	ck_assert_int_eq(pbox_page_fix_opt(st, other, &v), PBOX_EFULL);
	ck_assert_int_eq(pbox_page_fix_shared(st, other), PBOX_EFULL);
	ck_assert_int_eq(pbox_page_prefetch(st, &other, 1), PBOX_EFULL);
	pbox_mtr *m3;
	ck_assert_int_eq(pbox_mtr_begin(st, &m3), 0);
	ck_assert_int_eq(pbox_mtr_fix(m3, other, NULL), PBOX_EFULL);
	pbox_mtr_abort(m3, false);
	/* held pages are still usable: change one and commit */
	ck_assert_int_eq(mtr_inc(m[0], pids[3], 7), 0);
	ck_assert_int_eq(pbox_mtr_commit(m[0], true, NULL), 0);
	pbox_mtr_abort(m[1], false);
	/* normal operation resumes */
	check_page(st, other, 0);
	ck_assert_int_eq(inc_one(st, other, true), 0);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], i == 3 ? 7 : i == N - 1 ? 1 : 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- damage on disk --------------------------------------------------------------------- */

/* A byte flipped in a page of a cleanly closed store (no log record covers it) and a page
 * overwritten with another page's valid image (a misdirected write): PBOX_ECORRUPT from
 * every access path, every time; the other pages and the store keep working. */
START_TEST(test_corrupt_page)
{
	enum { N = 100 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(inc_one(st, pids[i], false), 0);
	ck_assert_int_eq(pbox_store_close(st), 0);

	pbox_pid bad = pids[40], moved = pids[41];
	unsigned char b;
	ck_assert_int_eq(pbox_io_memfs_peek(fs, DIR_ "/data", &b, 1, bad * PS + 100), 1);
	b ^= 0xff;
	ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", &b, 1, bad * PS + 100), 0);
	static unsigned char img[PS];
	ck_assert_int_eq(pbox_io_memfs_peek(fs, DIR_ "/data", img, PS, pids[42] * PS), PS);
	ck_assert_int_eq(pbox_io_memfs_poke(fs, DIR_ "/data", img, PS, moved * PS), 0);

	st = open_store(io, MIN_BUDGET);
	for (unsigned rep = 0; rep < 2; rep++) {
		pbox_pid p = rep ? moved : bad;
		uint64_t v;
		ck_assert_int_eq(pbox_page_fix_opt(st, p, &v), PBOX_ECORRUPT);
		ck_assert_int_eq(pbox_page_fix_opt(st, p, &v), PBOX_ECORRUPT); /* not cached */
		ck_assert_int_eq(pbox_page_fix_shared(st, p), PBOX_ECORRUPT);
		ck_assert_int_eq(pbox_page_prefetch(st, &p, 1), PBOX_ECORRUPT);
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		ck_assert_int_eq(pbox_mtr_fix(m, p, NULL), PBOX_ECORRUPT);
		pbox_mtr_abort(m, false);
	}
	/* everything else reads (with evictions in between) and the store still commits */
	for (unsigned i = 0; i < N; i++)
		if (pids[i] != bad && pids[i] != moved)
			check_page(st, pids[i], 1);
	ck_assert_int_eq(inc_one(st, pids[0], true), 0);
	check_page(st, pids[0], 2);
	ck_assert_int_eq(pbox_store_checkpoint(st), 0);
	uint64_t v;
	ck_assert_int_eq(pbox_page_fix_opt(st, bad, &v), PBOX_ECORRUPT);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- I/O errors ------------------------------------------------------------------------- */

/* EIO on the read of a fault: that fix fails with -EIO, nothing is poisoned, the next fix
 * reads the page. The same inside a prefetch batch: the failed page is reported and left out,
 * the others are loaded. */
START_TEST(test_read_error)
{
	enum { N = 200 };
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	pbox_io_faulty *fy;
	ck_assert_int_eq(pbox_io_faulty_create(mio, &fy), 0);
	pbox_io *io = pbox_io_faulty_io(fy);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, MIN_BUDGET);

	uint64_t v;
	pbox_io_faulty_arm(fy, PBOX_IO_PREAD, 1, EIO, false);
	ck_assert_int_eq(pbox_page_fix_opt(st, pids[50], &v), -EIO);
	ck_assert(pbox_io_faulty_fired(fy));
	check_page(st, pids[50], 0);
	pbox_io_faulty_arm(fy, PBOX_IO_PREAD, 1, EIO, false);
	ck_assert_int_eq(pbox_page_fix_shared(st, pids[51]), -EIO);
	check_page(st, pids[51], 0);

	pbox_io_faulty_arm(fy, PBOX_IO_PREAD, 2, EIO, false);
	pbox_store_stats s0 = stats(st);
	ck_assert_int_eq(pbox_page_prefetch(st, pids + 60, 5), -EIO);
	ck_assert(pbox_io_faulty_fired(fy));
	ck_assert_uint_eq(stats(st).resident_pages, s0.resident_pages + 4);
	pbox_io_faulty_disarm(fy);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], 0);
	ck_assert_int_eq(inc_one(st, pids[0], true), 0); /* not poisoned */
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_faulty_destroy(fy);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* EIO on a page write during eviction: the fault that needed the room gets -EIO and the
 * store is poisoned; after reopening without faults every durable commit is there. */
START_TEST(test_writeback_error)
{
	enum { N = 200 };
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	pbox_io_faulty *fy;
	ck_assert_int_eq(pbox_io_faulty_create(mio, &fy), 0);
	pbox_io *io = pbox_io_faulty_io(fy);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	static uint64_t oracle[N];
	memset(oracle, 0, sizeof(oracle));
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, MIN_BUDGET);

	/* every resident page dirty, every change durable */
	for (unsigned round = 0; round < 2; round++)
		for (unsigned i = 0; i < MIN_BUDGET; i++) {
			ck_assert_int_eq(inc_one(st, pids[i], true), 0);
			oracle[i]++;
		}
	pbox_store_stats s = stats(st);
	ck_assert_uint_ge(s.dirty_pages + 1, s.resident_pages); /* all but the meta page */
	ck_assert_uint_eq(s.wal_durable, s.wal_end);
	uint64_t writes0 = pbox_io_faulty_count(fy, PBOX_IO_PWRITE);

	/* fault pages in until an eviction has to write one back */
	pbox_io_faulty_arm(fy, PBOX_IO_PWRITE, 1, EIO, false);
	uint64_t v;
	int rc = 0;
	for (unsigned i = 150; i < N && !rc; i++)
		rc = pbox_page_fix_opt(st, pids[i], &v);
	ck_assert_int_eq(rc, -EIO);
	ck_assert(pbox_io_faulty_fired(fy));
	ck_assert_uint_gt(pbox_io_faulty_count(fy, PBOX_IO_PWRITE), writes0);
	pbox_io_faulty_disarm(fy);

	/* poisoned: every later operation refuses */
	pbox_mtr *m;
	ck_assert_int_eq(pbox_mtr_begin(st, &m), PBOX_EPOISONED);
	ck_assert_int_eq(pbox_page_fix_opt(st, pids[0], &v), PBOX_EPOISONED); /* resident too */
	ck_assert_int_eq(pbox_page_fix_opt(st, pids[151], &v), PBOX_EPOISONED);
	ck_assert_int_eq(pbox_page_fix_shared(st, pids[1]), PBOX_EPOISONED);
	ck_assert_int_eq(pbox_store_checkpoint(st), PBOX_EPOISONED);
	ck_assert_int_eq(pbox_store_close(st), PBOX_EPOISONED);

	st = open_store(mio, MIN_BUDGET);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], oracle[i]);
	ck_assert_int_eq(inc_one(st, pids[0], true), 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_faulty_destroy(fy);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* A poisoned store refuses prefetches too (kept apart from test_writeback_error so that the
 * pool-level behaviour above is checked independently of this). */
START_TEST(test_prefetch_poisoned)
{
	enum { N = 200 };
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	pbox_io_faulty *fy;
	ck_assert_int_eq(pbox_io_faulty_create(mio, &fy), 0);
	pbox_io *io = pbox_io_faulty_io(fy);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, MIN_BUDGET);
	for (unsigned i = 0; i < MIN_BUDGET; i++)
		ck_assert_int_eq(inc_one(st, pids[i], true), 0);
	pbox_io_faulty_arm(fy, PBOX_IO_PWRITE, 1, EIO, false);
	uint64_t v;
	int rc = 0;
	for (unsigned i = 150; i < N && !rc; i++)
		rc = pbox_page_fix_opt(st, pids[i], &v);
	ck_assert_int_eq(rc, -EIO);
	pbox_io_faulty_disarm(fy);
	pbox_store_stats s0 = stats(st);
	rc = pbox_page_prefetch(st, pids + 100, 8);
	ck_assert_uint_eq(stats(st).resident_pages, s0.resident_pages); /* nothing loaded */
	ck_assert_msg(rc == PBOX_EPOISONED, "prefetch on a poisoned store returned %s",
		      pbox_status_name(rc));
	pbox_store_close(st);
	pbox_io_faulty_destroy(fy);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- regressions: reproducers of bugs found with these tests ------------------------------ */

/*
 * A fault must not fail with PBOX_EFULL when eviction freed room for it ("no frame can be
 * evicted" is what PBOX_EFULL says).
 *
 * Bug: make_room() (pool.c) asks pbox__pool_evict() for a whole batch (resident down to
 * budget - max(1, min(64, budget / 16)); 4 pages at budget 64) and returns its PBOX_EFULL
 * when fewer than a batch are evictable, even if it evicted some and resident is now below
 * the budget. Budget 64, 61 pages held: the third unheld page read fills the pool, the fault
 * evicts the unheld pages and then fails; the same read right after succeeds.
 */
START_TEST(test_bug_spurious_efull)
{
	enum { N = 100, HOLD = 61 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, MIN_BUDGET);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, MIN_BUDGET);
	pbox_mtr *m[2];
	for (unsigned i = 0; i < HOLD; i++) {
		if (i % PBOX_MTR_MAX_PAGES == 0)
			ck_assert_int_eq(pbox_mtr_begin(st, &m[i / PBOX_MTR_MAX_PAGES]), 0);
		ck_assert_int_eq(pbox_mtr_fix(m[i / PBOX_MTR_MAX_PAGES], pids[i], NULL), 0);
	}
	for (unsigned i = HOLD; i < HOLD + 3; i++) {
		uint64_t v;
		int rc = pbox_page_fix_opt(st, pids[i], &v);
		if (rc) {
			int again = pbox_page_fix_opt(st, pids[i], &v);
			pbox_store_stats s = stats(st);
			ck_abort_msg("fault %u with %u pages held: %s; the same fault again: %s; "
				     "now %llu pages are resident, budget %u",
				     i - HOLD + 1, HOLD, pbox_status_name(rc),
				     pbox_status_name(again), (unsigned long long)s.resident_pages,
				     MIN_BUDGET);
		}
	}
	pbox_mtr_abort(m[0], false);
	pbox_mtr_abort(m[1], false);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

typedef struct deadlock_ctx {
	pbox_store *st;
	pbox_pid a, b; /* a < b; b became resident first */
	_Atomic int stage;   /* 1: writer holds a */
	_Atomic int w_done, c_done, w_rc, c_rc;
} deadlock_ctx;

static void *dl_writer(void *arg)
{
	deadlock_ctx *c = arg;
	pbox_mtr *m;
	int rc = pbox_mtr_begin(c->st, &m);
	if (!rc)
		rc = mtr_inc(m, c->a, 1);
	atomic_store(&c->stage, 1);
	/* wait until the checkpoint holds b shared (the faulty one does, forever; a correct one
	 * may hold it only briefly or not at all: then go on after 1 s) */
	for (unsigned k = 0; k < 1000 && !rc; k++) {
		if (pbox_latch_shared_count(pbox_page_latch(c->st, c->b)) > 0)
			break;
		sleep_ms(1);
	}
	if (!rc)
		rc = mtr_inc(m, c->b, 1); /* a < b: the mtr latches in ascending order */
	if (!rc)
		rc = pbox_mtr_commit(m, true, NULL);
	atomic_store(&c->w_rc, rc);
	atomic_store(&c->w_done, 1);
	return NULL;
}

static void *dl_checkpoint(void *arg)
{
	deadlock_ctx *c = arg;
	atomic_store(&c->c_rc, pbox_store_checkpoint(c->st));
	atomic_store(&c->c_done, 1);
	return NULL;
}

/*
 * A checkpoint must not deadlock with a mini-transaction that latches two dirty pages.
 *
 * Bug this reproduces: checkpoint step 2 (store.c) took blocking shared latches on a batch
 * of up to 64 dirty pages in resident-set order (the order pages were loaded, shuffled by
 * swap-removes) and held them all until the batch was written, while an mtr holds its
 * exclusive latches until commit. Dirty pages a < b, b loaded first: the mtr holds a and
 * waits for b; the checkpoint holds b and waits for a. The mtr's order is ascending, as a
 * caller's protocol must be; the checkpoint followed no order. (pbox_mtr_alloc from the free
 * list, which holds the meta page and then fixes the list head, is such an mtr too.)
 */
START_TEST(test_bug_checkpoint_deadlock)
{
	enum { N = 10 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, 1024);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, 1024); /* cold: residency order is the order of the faults below */
	static deadlock_ctx c;
	memset(&c, 0, sizeof(c));
	c.st = st;
	c.a = pids[2];
	c.b = pids[7];
	ck_assert_int_eq(inc_one(st, c.b, true), 0); /* resident (and dirty) first */
	ck_assert_int_eq(inc_one(st, c.a, true), 0);
	pthread_t w, k;
	ck_assert_int_eq(pthread_create(&w, NULL, dl_writer, &c), 0);
	while (atomic_load(&c.stage) < 1)
		sleep_ms(1);
	ck_assert_int_eq(pthread_create(&k, NULL, dl_checkpoint, &c), 0);
	for (unsigned ms = 0; ms < 8000 && !(atomic_load(&c.w_done) && atomic_load(&c.c_done));
	     ms += 5)
		sleep_ms(5);
	if (!atomic_load(&c.w_done) || !atomic_load(&c.c_done))
		ck_abort_msg("deadlock: after 8 s the mtr (holds page %llu X, wants %llu) %s and "
			     "the checkpoint (holds %u shared latch on %llu) %s",
			     (unsigned long long)c.a, (unsigned long long)c.b,
			     atomic_load(&c.w_done) ? "returned" : "is blocked",
			     pbox_latch_shared_count(pbox_page_latch(st, c.b)),
			     (unsigned long long)c.b,
			     atomic_load(&c.c_done) ? "returned" : "is blocked");
	pthread_join(w, NULL);
	pthread_join(k, NULL);
	ck_assert_int_eq(atomic_load(&c.w_rc), 0);
	ck_assert_int_eq(atomic_load(&c.c_rc), 0);
	check_page(st, c.a, 2);
	check_page(st, c.b, 2);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* A pass-through pbox_io that can stop the next write to the data file until released. */
typedef struct gate_io {
	pbox_io io; /* first */
	pbox_io *inner;
	_Atomic int data_fd;
	_Atomic bool armed;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool blocked, released; /* mu */
} gate_io;

static gate_io *G(pbox_io *io)
{
	return (gate_io *)(void *)io;
}

static void gate_maybe_block(gate_io *g, int fd)
{
	bool t = true;
	if (fd != atomic_load(&g->data_fd) || !atomic_compare_exchange_strong(&g->armed, &t, false))
		return;
	pthread_mutex_lock(&g->mu);
	g->blocked = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->released)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static int gate_open(pbox_io *io, const char *path, int flags, unsigned mode)
{
	int fd = G(io)->inner->open(G(io)->inner, path, flags, mode);
	size_t n = strlen(path);
	if (fd >= 0 && n >= 5 && !strcmp(path + n - 5, "/data"))
		atomic_store(&G(io)->data_fd, fd);
	return fd;
}
static int gate_close(pbox_io *io, int fd)
{
	return G(io)->inner->close(G(io)->inner, fd);
}
static int64_t gate_pread(pbox_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	return G(io)->inner->pread(G(io)->inner, fd, buf, len, off);
}
static int64_t gate_pwrite(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	gate_maybe_block(G(io), fd);
	return G(io)->inner->pwrite(G(io)->inner, fd, buf, len, off);
}
static int gate_fsync(pbox_io *io, int fd)
{
	return G(io)->inner->fsync(G(io)->inner, fd);
}
static int gate_fdatasync(pbox_io *io, int fd)
{
	return G(io)->inner->fdatasync(G(io)->inner, fd);
}
static int gate_ftruncate(pbox_io *io, int fd, uint64_t len)
{
	return G(io)->inner->ftruncate(G(io)->inner, fd, len);
}
static int gate_fallocate(pbox_io *io, int fd, uint64_t off, uint64_t len)
{
	return G(io)->inner->fallocate(G(io)->inner, fd, off, len);
}
static int gate_fsize(pbox_io *io, int fd, uint64_t *size)
{
	return G(io)->inner->fsize(G(io)->inner, fd, size);
}
static int gate_rename(pbox_io *io, const char *from, const char *to)
{
	return G(io)->inner->rename(G(io)->inner, from, to);
}
static int gate_unlink(pbox_io *io, const char *path)
{
	return G(io)->inner->unlink(G(io)->inner, path);
}
static int gate_mkdir(pbox_io *io, const char *path, unsigned mode)
{
	return G(io)->inner->mkdir(G(io)->inner, path, mode);
}
static int gate_fsync_dir(pbox_io *io, const char *path)
{
	return G(io)->inner->fsync_dir(G(io)->inner, path);
}
static int gate_listdir(pbox_io *io, const char *path, pbox_io_listdir_fn fn, void *arg)
{
	return G(io)->inner->listdir(G(io)->inner, path, fn, arg);
}
static int gate_lock(pbox_io *io, int fd)
{
	return G(io)->inner->lock(G(io)->inner, fd);
}
static int gate_ring_open(pbox_io *io, unsigned depth, void **ring)
{
	return G(io)->inner->ring_open(G(io)->inner, depth, ring);
}
static int gate_ring_submit(pbox_io *io, void *ring, pbox_io_req *reqs, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (reqs[k].op == PBOX_IO_OP_WRITE) {
			gate_maybe_block(G(io), reqs[k].fd);
			break;
		}
	return G(io)->inner->ring_submit(G(io)->inner, ring, reqs, n);
}
static void gate_ring_close(pbox_io *io, void *ring)
{
	G(io)->inner->ring_close(G(io)->inner, ring);
}

static void gate_init(gate_io *g, pbox_io *inner)
{
	memset(g, 0, sizeof(*g));
	g->inner = inner;
	atomic_init(&g->data_fd, -1);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->io = (pbox_io){ .open = gate_open,         .close = gate_close,
			   .pread = gate_pread,       .pwrite = gate_pwrite,
			   .fsync = gate_fsync,       .fdatasync = gate_fdatasync,
			   .ftruncate = gate_ftruncate, .fallocate = gate_fallocate,
			   .fsize = gate_fsize,       .rename = gate_rename,
			   .unlink = gate_unlink,     .mkdir = gate_mkdir,
			   .fsync_dir = gate_fsync_dir, .listdir = gate_listdir,
			   .lock = gate_lock,         .ring_open = gate_ring_open,
			   .ring_submit = gate_ring_submit, .ring_close = gate_ring_close,
			   .name = "gate" };
}

static void *ckpt_thread(void *arg)
{
	pbox_store *st = arg;
	return (void *)(intptr_t)pbox_store_checkpoint(st);
}

/*
 * A checkpoint that runs while pages are evicted must not skip a dirty page: it moves the
 * redo start past the page's changes, so a crash would lose durable commits.
 *
 * Bug this reproduces: checkpoint step 2 (store.c) walked the live resident set by slot
 * index in slices of 64 dirty candidates and dropped res_mu while it wrote a slice. An
 * eviction in that window removes a page from an already scanned slot by swap-remove
 * (pool.c res_remove_locked), which moves the page in the last slot, not scanned yet, into
 * the scanned part. The checkpoint never saw it, wrote the superblock with redo start C and
 * recycled the log, although that page's change below C was neither on disk nor replayable.
 *
 * Here: resident set [meta, 10 clean pages, 64 dirty pages D, dirty page X last]. The
 * checkpoint's first slice is D; while it is being written (held at the data-file write by a
 * gate in the I/O seam) a budget cut evicts one clean page, so X moves into slot 0. The
 * checkpoint then finds nothing left to scan. A crash (process crash: the OS keeps every
 * write) and recovery give X without its durable increment.
 */
START_TEST(test_bug_checkpoint_skips_page)
{
	enum { NCLEAN = 10, NDIRTY = 64, N = NCLEAN + NDIRTY + 1 };
	pbox_io *mio;
	pbox_io_memfs *fs = new_fs(&mio);
	static gate_io g;
	gate_init(&g, mio);
	pbox_store *st = open_store(&g.io, 1024);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(&g.io, 1024); /* cold: slot 0 is the meta page */
	for (unsigned i = 0; i < NCLEAN; i++)
		check_page(st, pids[i], 0);
	for (unsigned i = NCLEAN; i < N; i++)
		ck_assert_int_eq(inc_one(st, pids[i], true), 0);
	pbox_pid x = pids[N - 1];
	pbox_store_stats s0 = stats(st);
	ck_assert_uint_eq(s0.resident_pages, 1 + N);
	ck_assert_uint_eq(s0.dirty_pages, NDIRTY + 1);

	atomic_store(&g.armed, true);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, ckpt_thread, st), 0);
	pthread_mutex_lock(&g.mu);
	while (!g.blocked)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	/* the checkpoint is writing its first slice: evict one page */
	ck_assert_int_eq(pbox_store_set_budget(st, (uint64_t)N * PS), 0);
	pthread_mutex_lock(&g.mu);
	g.released = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	void *ret;
	pthread_join(th, &ret);
	ck_assert_int_eq((int)(intptr_t)ret, 0);
	pbox_store_stats s1 = stats(st);

	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 1);
	pbox_store_close(st); /* fails: the machine is off */
	pbox_io_memfs_restart(fs);
	st = open_store(mio, 1024);
	uint64_t stamp = 0, ctr = 0;
	ck_assert_int_eq(read_page(st, x, &stamp, &ctr), 0);
	ck_assert_uint_eq(stamp, x);
	ck_assert_msg(ctr == 1,
		      "page %llu lost its durable increment (counter %llu after recovery); the "
		      "checkpoint left %llu dirty page(s) behind (dirty before it: %llu)",
		      (unsigned long long)x, (unsigned long long)ctr,
		      (unsigned long long)s1.dirty_pages, (unsigned long long)s0.dirty_pages);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], i < NCLEAN ? 0 : 1);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/*
 * With PBOX_WAL_SYNC_NONE, closing a store whose checkpoint recycled a log segment must
 * work.
 *
 * Bug (wal library, met through the store): it fails with PBOX_EINVAL and poisons the log.
 * With SYNC_NONE the log's `synced` watermark never moves (wait_durable only writes), so a
 * forced sync (pbox_wal_flush, which pbox_store_close calls) syncs every segment from the
 * stale `synced` on (commit.c write_range). After pbox_wal_recycle dropped the first segment,
 * pbox__wal_seg_fd() is asked for it and returns PBOX_EINVAL ("asked for a recycled segment:
 * a bug in the caller"); the flush fails and poisons the log. Here: 1 MiB segments, 400
 * pages of full-page images (about 1.6 MiB of log), a checkpoint, a close.
 */
START_TEST(test_bug_wal_none_close_after_checkpoint)
{
	enum { N = 400 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store_options o = opts(io, 1024);
	o.wal_sync = PBOX_WAL_SYNC_NONE;
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_checkpoint(st), 0);
	int rc = pbox_store_close(st);
	ck_assert_msg(rc == 0, "close after a checkpoint with WAL sync none: %s",
		      pbox_status_name(rc));
	o.create = false;
	ck_assert_int_eq(pbox_store_open(DIR_, &o, &st), 0);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], 0);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pool_errors");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pool_exhaustion);
	tcase_add_test(tc, test_corrupt_page);
	tcase_add_test(tc, test_read_error);
	tcase_add_test(tc, test_writeback_error);
	tcase_add_test(tc, test_prefetch_poisoned);
	suite_add_tcase(s, tc);
	tc = tcase_create("regressions");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bug_spurious_efull);
	tcase_add_test(tc, test_bug_checkpoint_deadlock);
	tcase_add_test(tc, test_bug_checkpoint_skips_page);
	tcase_add_test(tc, test_bug_wal_none_close_after_checkpoint);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
