/*
 * check_pool_stress.c — the buffer pool under pressure: eviction with concurrent optimistic
 * readers, shared readers and writers; resident memory against the budget; shrinking the
 * budget at run time; prefetch; pool exhaustion; pages damaged on disk; I/O errors on reads
 * and on eviction write-back.
 *
 * Pages used here are "counter pages": the first 8 payload bytes hold the page's own id (a
 * stamp written when the page is created), the next 8 a counter that only grows. Counters are
 * changed by mini-transactions that log a user redo record INC(delta), so recovery goes
 * through a registered handler. In the stress tests every thread writes only its own pages,
 * which makes a per-page oracle exact; readers check what holds regardless of races (the
 * stamp, and that a counter never goes back).
 *
 * The "regressions" test case holds minimal reproducers of bugs found while writing these
 * tests (in storage, and one in wal met through the store); each comment says what went
 * wrong and where.
 */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sanitizer runtimes add shadow memory that distorts RSS: the RSS bound is checked only
 * without them (the resident-page bound is checked always). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

#define DIR_ "/st"
#define PS 4096u
#define MIN_BUDGET 64u /* pages: pbox_store_open / set_budget clamp to at least this */
#define STAMP_OFF PBOX_PAGE_HDR
#define CTR_OFF (PBOX_PAGE_HDR + 8)
#define PAGE_CTR (PBOX_PAGE_TYPE_USER + 2)
#define REDO_INC (PBOX_REDO_TYPE_USER + 2)
/* Bytes of frame table per page id (struct frame in storage/src/storage_int.h). */
#define FRAME_BYTES 32u

/* INC payload: u64 delta added to the counter. */
static int redo_inc(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	if (len != 8 || ps < CTR_OFF + 8)
		return PBOX_ECORRUPT;
	uint64_t d, v;
	memcpy(&d, payload, 8);
	memcpy(&v, (unsigned char *)page + CTR_OFF, 8);
	v += d;
	memcpy((unsigned char *)page + CTR_OFF, &v, 8);
	return 0;
}

static const pbox_redo_handler handlers[] = { { REDO_INC, redo_inc, NULL } };

static pbox_store_options opts(pbox_io *io, uint64_t budget_pages)
{
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = io;
	o.create = true;
	o.page_size = PS;
	o.budget_bytes = budget_pages * PS;
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

static pbox_store *open_store(pbox_io *io, uint64_t budget_pages)
{
	pbox_store_options o = opts(io, budget_pages);
	pbox_store *st;
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	int rc = pbox_store_open(DIR_, &o, &st);
	if (rc)
		ck_abort_msg("pbox_store_open: %s: %s", pbox_strerror(rc), err);
	return st;
}

/* Allocate n counter pages (16 per mini-transaction), stamped, counters 0. */
static void create_pages(pbox_store *st, unsigned n, pbox_pid *pids)
{
	for (unsigned i = 0; i < n;) {
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		for (unsigned k = 0; k < 16 && i < n; k++, i++) {
			ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pids[i], NULL), 0);
			ck_assert_int_eq(pbox_mtr_write(m, pids[i], STAMP_OFF, &pids[i], 8), 0);
		}
		ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
	}
}

/* Add delta to the counter of a page held by m (change in place, then log it). */
static int mtr_inc(pbox_mtr *m, pbox_pid pid, uint64_t delta)
{
	void *page;
	int r = pbox_mtr_fix(m, pid, &page);
	if (r)
		return r;
	redo_inc(page, PS, &delta, 8, NULL);
	return pbox_mtr_log(m, pid, REDO_INC, &delta, 8);
}

static int inc_one(pbox_store *st, pbox_pid pid, bool durable)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	if ((r = mtr_inc(m, pid, 1))) {
		pbox_mtr_abort(m, false); /* fix failed: nothing was changed */
		return r;
	}
	return pbox_mtr_commit(m, durable, NULL);
}

/* Read a page's stamp and counter: optimistic with restarts, then the shared latch. */
static int read_page(pbox_store *st, pbox_pid pid, uint64_t *stamp, uint64_t *ctr)
{
	const unsigned char *p = pbox_page_addr(st, pid);
	for (unsigned tries = 0; tries < PBOX_LATCH_MAX_OPT_RESTARTS; tries++) {
		uint64_t v;
		int r = pbox_page_fix_opt(st, pid, &v);
		if (r)
			return r;
		uint64_t s = pbox_latch_opt_load_u64(p + STAMP_OFF);
		uint64_t c = pbox_latch_opt_load_u64(p + CTR_OFF);
		if (pbox_page_validate(st, pid, v)) {
			*stamp = s;
			*ctr = c;
			return 0;
		}
	}
	int r = pbox_page_fix_shared(st, pid);
	if (r)
		return r;
	memcpy(stamp, p + STAMP_OFF, 8);
	memcpy(ctr, p + CTR_OFF, 8);
	pbox_page_unfix_shared(st, pid);
	return 0;
}

static void check_page(pbox_store *st, pbox_pid pid, uint64_t want_ctr)
{
	uint64_t s = 0, c = 0;
	int r = read_page(st, pid, &s, &c);
	if (r)
		ck_abort_msg("page %llu: read failed: %s", (unsigned long long)pid,
			     pbox_strerror(r));
	if (s != pid || c != want_ctr)
		ck_abort_msg("page %llu: stamp %llu counter %llu, want stamp %llu counter %llu",
			     (unsigned long long)pid, (unsigned long long)s, (unsigned long long)c,
			     (unsigned long long)pid, (unsigned long long)want_ctr);
}

static pbox_store_stats stats(pbox_store *st)
{
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	return s;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- eviction stress -------------------------------------------------------------------- */

#define STRESS_PAGES 2000u
#define STRESS_HOT 16u /* pages [0, STRESS_HOT) get 30% of the accesses: contention */
#define ZERO_CHECK 1024u /* payload bytes after the counter that nobody writes */
#define STRESS_MAX_THREADS 8u

typedef struct stress {
	pbox_store *st;
	unsigned nthreads;
	pbox_pid pids[STRESS_PAGES];
	uint64_t oracle[STRESS_PAGES]; /* page i: written only by thread i % nthreads */
	uint64_t ops;                  /* per thread */
	bool multi;                    /* mtrs of 1-3 pages (else one page) */
	unsigned ckpt_every;           /* thread 0 checkpoints every this many ops (0: never) */
	uint64_t seed;
	_Atomic bool stop;
	pthread_mutex_t mu;
	char err[512]; /* first failure (mu) */
	_Atomic uint64_t n_opt, n_shared, n_mtr, n_prefetch, n_ckpt, n_restart, n_fallback;
} stress;

typedef struct stress_arg {
	stress *s;
	unsigned tid;
} stress_arg;

__attribute__((format(printf, 2, 3))) static void stress_fail(stress *s, const char *fmt, ...)
{
	pthread_mutex_lock(&s->mu);
	if (!s->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->err, sizeof(s->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_store(&s->stop, true);
}

/* What every reader may check, whatever the writers do. */
static void observe(stress *s, unsigned tid, uint64_t *seen, unsigned i, uint64_t stamp,
		    uint64_t ctr, const char *how)
{
	if (stamp != s->pids[i])
		stress_fail(s, "%s read of page %llu: stamp %llu", how,
			    (unsigned long long)s->pids[i], (unsigned long long)stamp);
	else if (ctr < seen[i])
		stress_fail(s, "%s read of page %llu: counter went back from %llu to %llu", how,
			    (unsigned long long)s->pids[i], (unsigned long long)seen[i],
			    (unsigned long long)ctr);
	else if (i % s->nthreads == tid && ctr != s->oracle[i])
		stress_fail(s, "%s read of own page %llu: counter %llu, oracle %llu", how,
			    (unsigned long long)s->pids[i], (unsigned long long)ctr,
			    (unsigned long long)s->oracle[i]);
	seen[i] = ctr;
}

static bool all_zero(const unsigned char *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (b[k])
			return false;
	return true;
}

/* An optimistic read of the stamp, the counter and the zero bytes after it. slow: yield
 * inside the read, so that writers get in between and validation fails more often (the
 * restart and fallback paths get exercised). */
static void stress_opt_read(stress *s, unsigned tid, uint64_t *seen, unsigned i, bool slow)
{
	pbox_pid pid = s->pids[i];
	const unsigned char *p = pbox_page_addr(s->st, pid);
	unsigned char rest[ZERO_CHECK];
	for (unsigned tries = 0; tries < PBOX_LATCH_MAX_OPT_RESTARTS; tries++) {
		uint64_t v;
		int r = pbox_page_fix_opt(s->st, pid, &v);
		if (r) {
			stress_fail(s, "fix_opt(%llu): %s", (unsigned long long)pid,
				    pbox_strerror(r));
			return;
		}
		uint64_t stamp = pbox_latch_opt_load_u64(p + STAMP_OFF);
		if (slow)
			sched_yield();
		uint64_t ctr = pbox_latch_opt_load_u64(p + CTR_OFF);
		pbox_latch_opt_copy(rest, p + CTR_OFF + 8, sizeof(rest));
		if (pbox_page_validate(s->st, pid, v)) {
			if (!all_zero(rest, sizeof(rest)))
				stress_fail(s, "optimistic read of page %llu: payload garbage",
					    (unsigned long long)pid);
			observe(s, tid, seen, i, stamp, ctr, "optimistic");
			return;
		}
		atomic_fetch_add_explicit(&s->n_restart, 1, memory_order_relaxed);
	}
	/* progress rule: fall back to the shared latch */
	atomic_fetch_add_explicit(&s->n_fallback, 1, memory_order_relaxed);
	int r = pbox_page_fix_shared(s->st, pid);
	if (r) {
		stress_fail(s, "fix_shared(%llu): %s", (unsigned long long)pid, pbox_strerror(r));
		return;
	}
	uint64_t stamp, ctr;
	memcpy(&stamp, p + STAMP_OFF, 8);
	memcpy(&ctr, p + CTR_OFF, 8);
	bool zero = all_zero(p + CTR_OFF + 8, ZERO_CHECK);
	pbox_page_unfix_shared(s->st, pid);
	if (!zero)
		stress_fail(s, "shared read of page %llu: payload garbage",
			    (unsigned long long)pid);
	observe(s, tid, seen, i, stamp, ctr, "fallback shared");
}

static void stress_shared_read(stress *s, unsigned tid, uint64_t *seen, unsigned i)
{
	pbox_pid pid = s->pids[i];
	int r = pbox_page_fix_shared(s->st, pid);
	if (r) {
		stress_fail(s, "fix_shared(%llu): %s", (unsigned long long)pid, pbox_strerror(r));
		return;
	}
	const unsigned char *p = pbox_page_addr(s->st, pid);
	uint64_t stamp, ctr;
	memcpy(&stamp, p + STAMP_OFF, 8);
	memcpy(&ctr, p + CTR_OFF, 8);
	bool zero = all_zero(p + CTR_OFF + 8, ZERO_CHECK);
	pbox_page_unfix_shared(s->st, pid);
	if (!zero)
		stress_fail(s, "shared read of page %llu: payload garbage",
			    (unsigned long long)pid);
	observe(s, tid, seen, i, stamp, ctr, "shared");
}

static unsigned pick_page(pbox_rng *rng)
{
	return (unsigned)pbox_rng_below(rng, pbox_rng_below(rng, 10) < 3 ? STRESS_HOT
									   : STRESS_PAGES);
}

/* Increment the counters of 1-3 of this thread's pages in one mini-transaction, latching
 * them in ascending page order. */
static void stress_mtr(stress *s, unsigned tid, pbox_rng *rng)
{
	unsigned cnt = s->multi ? 1 + (unsigned)pbox_rng_below(rng, 3) : 1;
	unsigned idx[3];
	for (unsigned k = 0; k < cnt; k++) {
		for (;;) {
			unsigned i = pick_page(rng);
			idx[k] = i - i % s->nthreads + tid; /* this thread's page near i */
			if (idx[k] >= STRESS_PAGES)
				idx[k] = tid;
			bool dup = false;
			for (unsigned j = 0; j < k; j++)
				dup |= idx[j] == idx[k];
			if (!dup)
				break;
		}
		for (unsigned j = k; j > 0 && idx[j - 1] > idx[j]; j--) {
			unsigned t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	}
	pbox_mtr *m;
	int r = pbox_mtr_begin(s->st, &m);
	if (r) {
		stress_fail(s, "mtr_begin: %s", pbox_strerror(r));
		return;
	}
	for (unsigned k = 0; k < cnt; k++) {
		if ((r = mtr_inc(m, s->pids[idx[k]], 1))) {
			stress_fail(s, "mtr fix of page %llu (%u of %u): %s",
				    (unsigned long long)s->pids[idx[k]], k + 1, cnt,
				    pbox_strerror(r));
			pbox_mtr_abort(m, k > 0);
			return;
		}
	}
	if ((r = pbox_mtr_commit(m, pbox_rng_below(rng, 16) == 0, NULL))) {
		stress_fail(s, "mtr_commit: %s", pbox_strerror(r));
		return;
	}
	for (unsigned k = 0; k < cnt; k++)
		s->oracle[idx[k]]++;
}

static void *stress_main(void *arg)
{
	stress_arg *a = arg;
	stress *s = a->s;
	unsigned tid = a->tid;
	uint64_t *seen = calloc(STRESS_PAGES, sizeof(uint64_t));
	if (!seen) {
		stress_fail(s, "out of memory");
		return NULL;
	}
	pbox_rng rng;
	pbox_rng_seed(&rng, s->seed * 31 + tid + 1);
	for (uint64_t op = 0; op < s->ops && !atomic_load(&s->stop); op++) {
		unsigned i = pick_page(&rng);
		unsigned k = (unsigned)pbox_rng_below(&rng, 100);
		if (k < 45) {
			bool slow = i < STRESS_HOT && pbox_rng_below(&rng, 4) == 0;
			stress_opt_read(s, tid, seen, i, slow);
			atomic_fetch_add_explicit(&s->n_opt, 1, memory_order_relaxed);
		} else if (k < 65) {
			stress_shared_read(s, tid, seen, i);
			atomic_fetch_add_explicit(&s->n_shared, 1, memory_order_relaxed);
		} else if (k < 95) {
			stress_mtr(s, tid, &rng);
			atomic_fetch_add_explicit(&s->n_mtr, 1, memory_order_relaxed);
		} else {
			pbox_pid list[4];
			for (unsigned j = 0; j < 4; j++)
				list[j] = s->pids[pbox_rng_below(&rng, STRESS_PAGES)];
			int r = pbox_page_prefetch(s->st, list, 4);
			if (r)
				stress_fail(s, "prefetch: %s", pbox_strerror(r));
			atomic_fetch_add_explicit(&s->n_prefetch, 1, memory_order_relaxed);
		}
		if (s->ckpt_every && tid == 0 && op % s->ckpt_every == s->ckpt_every - 1) {
			int r = pbox_store_checkpoint(s->st);
			if (r)
				stress_fail(s, "checkpoint: %s", pbox_strerror(r));
			atomic_fetch_add_explicit(&s->n_ckpt, 1, memory_order_relaxed);
		}
	}
	free(seen);
	return NULL;
}

static void run_stress(unsigned nthreads, bool multi, unsigned ckpt_every, uint64_t ops)
{
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	static stress s;
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.mu, NULL);
	s.nthreads = nthreads;
	s.multi = multi;
	s.ckpt_every = ckpt_every;
	s.ops = ops;
	s.seed = pbox_test_seed() ^ (multi ? 0x1111 : 0x2222);
	s.st = open_store(io, MIN_BUDGET);
	create_pages(s.st, STRESS_PAGES, s.pids);
	ck_assert_int_eq(pbox_store_checkpoint(s.st), 0);

	pthread_t th[STRESS_MAX_THREADS];
	stress_arg args[STRESS_MAX_THREADS];
	for (unsigned t = 0; t < nthreads; t++) {
		args[t] = (stress_arg){ &s, t };
		ck_assert_int_eq(pthread_create(&th[t], NULL, stress_main, &args[t]), 0);
	}
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	if (s.err[0])
		ck_abort_msg("eviction stress (%u threads, seed %llu): %s", nthreads,
			     (unsigned long long)pbox_test_seed(), s.err);

	pbox_store_stats st = stats(s.st);
	fprintf(stderr,
		"eviction stress (%u threads, %s mtrs%s): %llu optimistic reads (%llu restarts, "
		"%llu fell back to shared), %llu shared, %llu mtrs, %llu prefetches, %llu "
		"checkpoints; pool: "
		"%llu misses, %llu evictions, %llu writes, %llu reheats, resident %llu/%llu\n",
		nthreads, multi ? "1-3 page" : "1 page", ckpt_every ? " + checkpoints" : "",
		(unsigned long long)s.n_opt, (unsigned long long)s.n_restart,
		(unsigned long long)s.n_fallback,
		(unsigned long long)s.n_shared, (unsigned long long)s.n_mtr,
		(unsigned long long)s.n_prefetch, (unsigned long long)s.n_ckpt,
		(unsigned long long)st.misses, (unsigned long long)st.evictions,
		(unsigned long long)st.writes, (unsigned long long)st.reheats,
		(unsigned long long)st.resident_pages, (unsigned long long)(st.budget_bytes / PS));
	/* Each fault makes room before it loads, so concurrent faults (and prefetches of 4)
	 * can overshoot the budget by what they load at once; nothing more stays resident. */
	ck_assert_uint_le(st.resident_pages, MIN_BUDGET + 4 * nthreads);
#if PBOX_METRICS
	ck_assert_uint_gt(st.evictions, STRESS_PAGES);
#endif
	uint64_t total = 0;
	for (unsigned i = 0; i < STRESS_PAGES; i++) {
		check_page(s.st, s.pids[i], s.oracle[i]);
		total += s.oracle[i];
	}
	ck_assert_uint_gt(total, 0);
	ck_assert_int_eq(pbox_store_close(s.st), 0);
	/* what the clean close left on disk is the oracle too */
	s.st = open_store(io, MIN_BUDGET);
	for (unsigned i = 0; i < STRESS_PAGES; i++)
		check_page(s.st, s.pids[i], s.oracle[i]);
	ck_assert_int_eq(pbox_store_close(s.st), 0);
	pthread_mutex_destroy(&s.mu);
	pbox_io_memfs_destroy(fs);
}

/* Multi-page mtrs, 4 threads, no checkpoints. */
START_TEST(test_eviction_stress)
{
	run_stress(4, true, 0, 24000ull * pbox_test_scale());
}
END_TEST

/* Multi-page mtrs, 3 threads, checkpoints between thread 0's operations (they must not
 * deadlock with the mtrs: see test_bug_checkpoint_deadlock). */
START_TEST(test_eviction_stress_checkpoints)
{
	run_stress(3, true, 1000, 16000ull * pbox_test_scale());
}
END_TEST

/* ---- resident memory ---------------------------------------------------------------------- */

static int64_t vm_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : (int64_t)kb * 1024;
}

/*
 * With budget B, touch 4 B of pages (random order, one thread) on a real file system, and
 * sample the pool's resident pages and the process RSS as it goes.
 *
 * Bounds: resident pages <= budget (one thread: no concurrent faults can overshoot). RSS
 * growth over the RSS before the store was opened <= 1.05 B + frame table + 4 MiB:
 *   - 5% of B: the project's goal for resident memory is 1.05 x budget + frame table (the
 *     slack covers pages loaded by concurrent faults beyond the budget; none here);
 *   - the frame table: FRAME_BYTES per page id touched (every page is touched here);
 *   - 4 MiB for what does not scale with the data: the resident-set array (8 bytes per
 *     resident page, 32 KiB at B = 16 MiB), the touched part of the WAL buffer (nothing is
 *     appended while reading), io_uring rings, allocator metadata and stacks.
 * Under sanitizers the RSS part is skipped and B is smaller (speed).
 */
START_TEST(test_resident_memory)
{
	const uint64_t budget = UNDER_SANITIZER ? 256 : 4096; /* pages: 1 MiB / 16 MiB */
	const unsigned total = (unsigned)(4 * budget);
	char *dir = pbox_test_tmpdir("poolrss");
	ck_assert_ptr_nonnull(dir);
	char path[512];
	snprintf(path, sizeof(path), "%s/st", dir);
	pbox_pid *pids = calloc(total, sizeof(*pids));
	unsigned *order = calloc(total, sizeof(*order));
	ck_assert(pids && order);

	pbox_store_options o = opts(NULL, total + 256); /* commits not durable: synced by close */
	o.wal_segment_size = 16 << 20;
	pbox_store *st;
	ck_assert_int_eq(pbox_store_open(path, &o, &st), 0);
	create_pages(st, total, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);

	pbox_rng rng;
	pbox_rng_seed(&rng, pbox_test_seed() ^ 0x4e55);
	for (unsigned i = 0; i < total; i++)
		order[i] = i;
	for (unsigned i = total - 1; i > 0; i--) {
		unsigned j = (unsigned)pbox_rng_below(&rng, i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}

	int64_t rss0 = vm_rss_bytes();
	o.create = false;
	o.budget_bytes = budget * PS;
	ck_assert_int_eq(pbox_store_open(path, &o, &st), 0);
	uint64_t max_resident = 0;
	int64_t max_growth = 0;
	for (unsigned k = 0; k < total; k++) {
		check_page(st, pids[order[k]], 0);
		if (k % 64 == 63 || k == total - 1) {
			pbox_store_stats s = stats(st);
			if (s.resident_pages > max_resident)
				max_resident = s.resident_pages;
			int64_t g = vm_rss_bytes() - rss0;
			if (g > max_growth)
				max_growth = g;
		}
	}
	pbox_store_stats s = stats(st);
	uint64_t frame_table = (s.page_count * FRAME_BYTES + 4095) / 4096 * 4096;
	uint64_t bound = budget * PS + budget * PS / 20 + frame_table + (4u << 20);
	fprintf(stderr,
		"resident memory: budget %llu KiB, touched %u pages (%llu KiB); resident pages max "
		"%llu (budget %llu); RSS before open %lld KiB, max growth %lld KiB, bound %llu KiB "
		"(1.05 B + frame table %llu KiB + 4 MiB)%s\n",
		(unsigned long long)(budget * PS / 1024), total,
		(unsigned long long)((uint64_t)total * PS / 1024), (unsigned long long)max_resident,
		(unsigned long long)budget, (long long)(rss0 / 1024),
		(long long)(max_growth / 1024),
		(unsigned long long)(bound / 1024), (unsigned long long)(frame_table / 1024),
		UNDER_SANITIZER ? " [RSS not checked under sanitizers]" : "");
	ck_assert_uint_le(max_resident, budget);
	ck_assert_uint_eq(s.budget_bytes, budget * PS);
#if !UNDER_SANITIZER
	ck_assert_int_ge(rss0, 0);
	ck_assert_int_le(max_growth, (int64_t)bound);
#endif
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_test_rmtree(dir);
	free(dir);
	free(pids);
	free(order);
}
END_TEST

/* ---- budget changes ----------------------------------------------------------------------- */

START_TEST(test_set_budget_shrink)
{
	enum { N = 600 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, 1024);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], 0);
	ck_assert_uint_ge(stats(st).resident_pages, N);

	/* shrink: evicts down to the new budget at once (dirty pages written back) */
	ck_assert_uint_gt(stats(st).dirty_pages, 0);
	ck_assert_int_eq(pbox_store_set_budget(st, 100 * PS), 0);
	pbox_store_stats s = stats(st);
	ck_assert_uint_eq(s.budget_bytes, 100 * PS);
	ck_assert_uint_le(s.resident_pages, 100);
	for (unsigned i = 0; i < N; i++) {
		check_page(st, pids[i], 0);
		ck_assert_uint_le(stats(st).resident_pages, 100);
	}
	/* below the minimum: clamped to 64 pages */
	ck_assert_int_eq(pbox_store_set_budget(st, 0), 0);
	s = stats(st);
	ck_assert_uint_eq(s.budget_bytes, MIN_BUDGET * PS);
	ck_assert_uint_le(s.resident_pages, MIN_BUDGET);

	/* shrinking below what is held: PBOX_EFULL; once released, the next shrink works */
	ck_assert_int_eq(pbox_store_set_budget(st, 1024 * PS), 0);
	pbox_mtr *m[3];
	for (unsigned k = 0; k < 3; k++) {
		ck_assert_int_eq(pbox_mtr_begin(st, &m[k]), 0);
		for (unsigned j = 0; j < PBOX_MTR_MAX_PAGES; j++) {
			pbox_pid p = pids[k * PBOX_MTR_MAX_PAGES + j];
			ck_assert_int_eq(pbox_mtr_fix(m[k], p, NULL), 0);
		}
	}
	ck_assert_int_eq(pbox_store_set_budget(st, MIN_BUDGET * PS), PBOX_EFULL);
	ck_assert_uint_ge(stats(st).resident_pages, 3 * PBOX_MTR_MAX_PAGES);
	ck_assert_int_eq(mtr_inc(m[0], pids[0], 5), 0);
	ck_assert_int_eq(pbox_mtr_commit(m[0], true, NULL), 0);
	pbox_mtr_abort(m[1], false);
	pbox_mtr_abort(m[2], false);
	ck_assert_int_eq(pbox_store_set_budget(st, MIN_BUDGET * PS), 0);
	ck_assert_uint_le(stats(st).resident_pages, MIN_BUDGET);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], i == 0 ? 5 : 0);

	/* growing again: pages stay resident up to the new budget */
	ck_assert_int_eq(pbox_store_set_budget(st, 1024 * PS), 0);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], i == 0 ? 5 : 0);
	ck_assert_uint_ge(stats(st).resident_pages, N);
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- prefetch ------------------------------------------------------------------------------- */

/*
 * A list with duplicates, resident pages, a pid just past the store and one past its
 * reservation: the others are all loaded (one read each), and the first error met is the
 * bad pid's PBOX_EINVAL (pbox_page_prefetch: "Returns the first error met (the others are
 * still attempted)"; a bad pid is PBOX_EINVAL for every other page access).
 */
START_TEST(test_prefetch)
{
	enum { N = 300 };
	pbox_io *io;
	pbox_io_memfs *fs = new_fs(&io);
	pbox_store *st = open_store(io, 1024);
	static pbox_pid pids[N];
	create_pages(st, N, pids);
	ck_assert_int_eq(pbox_store_close(st), 0);
	st = open_store(io, 1024); /* cold */

	check_page(st, pids[0], 0);
	check_page(st, pids[1], 0);
	pbox_store_stats s0 = stats(st);
	pbox_pid beyond = s0.page_count, huge = (1ull << 30) / PS + 5;
	pbox_pid list[] = { pids[5], pids[6], pids[5], pids[0], beyond, pids[7], pids[6],
			    huge, pids[1], pids[8], pids[8] };
	int rc = pbox_page_prefetch(st, list, PBOX_ARRAY_LEN(list));
	pbox_store_stats s1 = stats(st);
	/* pids 5..8 were loaded, once each */
	ck_assert_uint_eq(s1.resident_pages, s0.resident_pages + 4);
#if PBOX_METRICS
	ck_assert_uint_eq(s1.reads - s0.reads, 4);
#endif
	for (unsigned i = 0; i < 9; i++)
		if (i < 2 || i > 4)
			check_page(st, pids[i], 0);
#if PBOX_METRICS
	ck_assert_uint_eq(stats(st).misses, s1.misses); /* the reads above were all hits */
#endif
	ck_assert_int_eq(pbox_page_prefetch(st, list, 0), 0);

	/* many pages at once (more than one I/O batch) */
	s0 = stats(st);
	ck_assert_int_eq(pbox_page_prefetch(st, pids + 100, 150), 0);
	ck_assert_uint_eq(stats(st).resident_pages, s0.resident_pages + 150);
	for (unsigned i = 100; i < 250; i++)
		check_page(st, pids[i], 0);

	/* more pages than the budget: the pool stays within it */
	ck_assert_int_eq(pbox_store_set_budget(st, MIN_BUDGET * PS), 0);
	ck_assert_int_eq(pbox_page_prefetch(st, pids + 10, 200), 0);
	ck_assert_uint_le(stats(st).resident_pages, MIN_BUDGET);
	for (unsigned i = 0; i < N; i++)
		check_page(st, pids[i], 0);

	/* last, so that everything above is checked even while this fails */
	ck_assert_msg(rc == PBOX_EINVAL,
		      "prefetch of a list with bad pids returned %s, want PBOX_EINVAL",
		      pbox_status_name(rc));
	ck_assert_int_eq(pbox_store_close(st), 0);
	pbox_io_memfs_destroy(fs);
}
END_TEST

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
	Suite *s = suite_create("pool_stress");
	TCase *tc = tcase_create("stress");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_eviction_stress);
	tcase_add_test(tc, test_eviction_stress_checkpoints);
	suite_add_tcase(s, tc);
	tc = tcase_create("pool");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_resident_memory);
	tcase_add_test(tc, test_set_budget_shrink);
	tcase_add_test(tc, test_prefetch);
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
