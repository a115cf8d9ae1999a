/*
 * check_pool_stress.c — the buffer pool under pressure: eviction with concurrent optimistic
 * readers, shared readers and writers; resident memory against the budget; shrinking the
 * budget at run time; prefetch. (Exhaustion, damage, I/O errors and the regressions:
 * check_pool_errors.c; the counter pages: pool_test_common.h.)
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
#include "pool_test_common.h"

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
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
