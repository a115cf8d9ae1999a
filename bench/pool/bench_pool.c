/*
 * pbox-bench-pool — page reads through the buffer pool against reads of the same data file
 * straight from the device, measured in the same run (bench/README.md, "Conventions").
 *
 * Engines and workloads (names from bench/README.md, "Conventions"):
 *   pagebox         read-inmem           every page resident (budget above the data): random
 *                                        optimistic reads of 8 bytes (fix_opt, load, validate)
 *                   read-oom-sync        data 4x the budget: the same reads, misses fault the
 *                                        page in synchronously (one read at a time per thread)
 *                   read-oom-prefetch32  the same data: each thread picks 32 random pages,
 *                                        pbox_page_prefetch()es them, then reads each one;
 *                                        ops = pages read
 *   raw-pread-qd1   read-oom-sync        random 4 KiB pread()s of the store's data file,
 *                                        O_DIRECT, one at a time per thread
 *   raw-pread-qd32  read-oom-prefetch32  random 4 KiB reads of the same file, O_DIRECT, through
 *                                        io_uring (liburing) with 32 in flight per thread
 * The raw engines bound what the device gives; pagebox opens its data file with O_DIRECT too
 * (when the file system allows it; the output says so otherwise), so neither side is served
 * by the OS page cache. The out-of-memory (OOM) pool is brought to its steady state (full to
 * the budget) before the first measured run; with uniform reads over 4x the budget about a
 * quarter of pagebox's reads are hits, which the table's ops/s include: the goal lines after
 * the tables compare device reads (misses) per second instead.
 *
 * Every read checks what it got: each page carries its own page id in its first 8 payload
 * bytes (stamped at setup); a mismatch or an error ends the program with exit status 1.
 *
 * Latency: read-inmem times every 16th operation (timing each would add a clock read to an
 * operation of a few hundred ns); the OOM workloads time every operation. For
 * read-oom-prefetch32 the latency of a page is the time from the prefetch call until it has
 * been read, i.e. the batch's time (the same for all 32 pages of a batch); for raw-pread-qd32
 * it is each read's submission-to-completion time.
 *
 * Setup (not timed): a store in a scratch directory with a budget that holds all of it and
 * non-durable commits; pages allocated 16 per mini-transaction and stamped with
 * pbox_mtr_write; checkpoints every 64 Ki pages and at the end, so every page is on disk.
 * Setup writes every page twice (log and data file): read-inmem's default of 1 Mi pages
 * (4 GiB of memory while it runs) takes about 30 s to set up on the development machine, and
 * the whole default run (3 runs of 2 s per cell) about 2 minutes; --pages picks another size.
 *
 * Resident memory: after the OOM runs the program prints the store's resident bytes against
 * the budget and the process RSS (VmRSS) against its value before the store was opened, with
 * the frame table's size (32 bytes per page id, storage_int.h) for comparison.
 */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>

#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096u
#define QD 32u			  /* raw-pread-qd32 depth and prefetch batch */
#define PAGES_PER_MTR 16u
#define CKPT_EVERY (64u << 10)	  /* pages between checkpoints during setup */
#define STOP_CHECK 64u		  /* operations between looks at the stop flag */
#define INMEM_SAMPLE_MASK 15u	  /* read-inmem: time one operation in 16 */
#define FRAME_BYTES 32u		  /* frame table bytes per page id (storage_int.h) */
#define DEFAULT_INMEM_PAGES (1u << 20)
#define QUICK_INMEM_PAGES (64u << 10)
#define DEFAULT_BUDGET (64ull << 20)
#define QUICK_BUDGET (16ull << 20)

static const char *const PROG = "pbox-bench-pool";

/* ---- options ----------------------------------------------------------------------------- */

static uint64_t opt_pages, opt_budget, opt_oom_pages;
static bool opt_bg_evict;
static pbox_bench_list opt_workloads, opt_engines;

static const pbox_bench_option extra[] = {
	{ "pages", PBOX_BENCH_OPT_UINT, &opt_pages, "N",
	  "read-inmem: pages in the store (default 1048576 = 4 GiB; --quick 65536)" },
	{ "budget", PBOX_BENCH_OPT_SIZE, &opt_budget, "SIZE",
	  "OOM workloads: the pool's budget (default 64M; --quick 16M)" },
	{ "oom-pages", PBOX_BENCH_OPT_UINT, &opt_oom_pages, "N",
	  "OOM workloads: pages of data (default 4x the budget)" },
	{ "workloads", PBOX_BENCH_OPT_LIST, &opt_workloads, "LIST",
	  "read-inmem,read-oom-sync,read-oom-prefetch32 (default: all)" },
	{ "engines", PBOX_BENCH_OPT_LIST, &opt_engines, "LIST",
	  "pagebox,raw-pread-qd1,raw-pread-qd32 (default: all)" },
	{ "bg-evict", PBOX_BENCH_OPT_FLAG, &opt_bg_evict, NULL,
	  "open the store with a background evictor (default: faulting threads evict)" },
};

static bool want_workload(const char *w)
{
	return !opt_workloads.n || pbox_bench_list_has(&opt_workloads, w);
}

static bool want_engine(const char *e)
{
	return !opt_engines.n || pbox_bench_list_has(&opt_engines, e);
}

/* ---- per-thread state and the shared context --------------------------------------------- */

typedef struct worker_state {
	uint64_t ops;
	uint64_t mismatches; /* pages whose stamp was not their page id */
	int err;
	pbox_bench_hist hist;
} __attribute__((aligned(128))) worker_state;

typedef struct ctx {
	pbox_store *st;
	pbox_pid first;	  /* the data pages are [first, first + npages) */
	uint64_t npages;
	int raw_fd;	  /* O_DIRECT descriptor of the data file (raw engines) */
	unsigned sample_mask; /* time operations whose index & mask == 0 */
	uint64_t seed;
	worker_state w[PBOX_BENCH_MAX_THREADS];
} ctx;

static ctx C;

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_init(uint64_t seed, unsigned tid)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + tid + 1; /* splitmix64 finaliser */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

static inline pbox_pid random_pid(uint64_t *s)
{
	return C.first + rng_next(s) % C.npages;
}

static inline uint64_t ld64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Read the stamp of pid through the pool: optimistic, restarting on failed validation, then
 * under the shared latch after PBOX_LATCH_MAX_OPT_RESTARTS (the documented protocol). */
static inline int pool_read(pbox_store *st, pbox_pid pid, uint64_t *out)
{
	const unsigned char *p = (const unsigned char *)pbox_page_addr(st, pid) + PBOX_PAGE_HDR;
	for (unsigned tries = 0; tries < PBOX_LATCH_MAX_OPT_RESTARTS; tries++) {
		uint64_t v;
		int r = pbox_page_fix_opt(st, pid, &v);
		if (r)
			return r;
		uint64_t x = pbox_latch_opt_load_u64(p);
		if (pbox_page_validate(st, pid, v)) {
			*out = x;
			return 0;
		}
	}
	int r = pbox_page_fix_shared(st, pid);
	if (r)
		return r;
	*out = ld64(p);
	pbox_page_unfix_shared(st, pid);
	return 0;
}

/* ---- workers ------------------------------------------------------------------------------ */

/* read-inmem and read-oom-sync */
static void w_pool_read(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	worker_state *w = &c->w[tid];
	uint64_t s = rng_init(c->seed, tid), n = 0, bad = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned k = 0; k < STOP_CHECK; k++, n++) {
			pbox_pid pid = random_pid(&s);
			bool timed = (n & c->sample_mask) == 0;
			uint64_t t0 = timed ? pbox_bench_now_ns() : 0, v = 0;
			int r = pool_read(c->st, pid, &v);
			if (timed)
				pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r) {
				w->err = r;
				goto out;
			}
			bad += v != pid;
		}
	}
out:
	w->ops = n;
	w->mismatches = bad;
}

/* read-oom-prefetch32 */
static void w_pool_prefetch(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	worker_state *w = &c->w[tid];
	uint64_t s = rng_init(c->seed, tid), n = 0, bad = 0;
	pbox_pid pids[QD];
	while (!pbox_bench_stopped(stop)) {
		for (unsigned k = 0; k < QD; k++)
			pids[k] = random_pid(&s);
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbox_page_prefetch(c->st, pids, QD);
		for (unsigned k = 0; k < QD && !r; k++) {
			uint64_t v = 0;
			r = pool_read(c->st, pids[k], &v);
			bad += v != pids[k];
		}
		if (r) {
			w->err = r;
			break;
		}
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		n += QD;
	}
	w->ops = n;
	w->mismatches = bad;
}

/* raw-pread-qd1 */
static void w_raw_qd1(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	worker_state *w = &c->w[tid];
	unsigned char *buf = aligned_alloc(PAGE, PAGE);
	if (!buf) {
		w->err = -ENOMEM;
		return;
	}
	uint64_t s = rng_init(c->seed, tid), n = 0, bad = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned k = 0; k < STOP_CHECK; k++, n++) {
			pbox_pid pid = random_pid(&s);
			uint64_t t0 = pbox_bench_now_ns();
			ssize_t got = pread(c->raw_fd, buf, PAGE, (off_t)(pid * PAGE));
			pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (got != (ssize_t)PAGE) {
				w->err = got < 0 ? -errno : -EIO;
				goto out;
			}
			bad += ld64(buf + PBOX_PAGE_HDR) != pid;
		}
	}
out:
	free(buf);
	w->ops = n;
	w->mismatches = bad;
}

/* raw-pread-qd32: QD reads always in flight; each completion is checked and replaced by a
 * read of another random page until the stop flag (or an error), then the rest are drained
 * (and counted: they complete within the measured time, which ends when the worker
 * returns). Buffers are freed only once nothing is in flight. */
static void w_raw_qd32(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	worker_state *w = &c->w[tid];
	struct io_uring ring;
	int e = io_uring_queue_init(QD, &ring, 0);
	if (e < 0) {
		w->err = e;
		return;
	}
	unsigned char *bufs = aligned_alloc(PAGE, (size_t)QD * PAGE);
	pbox_pid pid[QD];
	uint64_t t0[QD];
	uint64_t s = rng_init(c->seed, tid), n = 0, bad = 0;
	unsigned inflight = 0;
	if (!bufs) {
		w->err = -ENOMEM;
		goto out;
	}
	for (unsigned k = 0; k < QD; k++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			break; /* cannot happen: the ring has QD entries */
		pid[k] = random_pid(&s);
		io_uring_prep_read(sqe, c->raw_fd, bufs + (size_t)k * PAGE, PAGE, pid[k] * PAGE);
		io_uring_sqe_set_data64(sqe, k);
		t0[k] = pbox_bench_now_ns();
	}
	e = io_uring_submit(&ring);
	if (e < 0) {
		w->err = e;
		goto out;
	}
	inflight = (unsigned)e;
	if (inflight != QD)
		w->err = -EIO;
	while (inflight) {
		struct io_uring_cqe *cqe;
		if ((e = io_uring_wait_cqe(&ring, &cqe)) < 0) {
			if (e == -EINTR)
				continue;
			w->err = e;
			bufs = NULL; /* reads may still land in them: never free */
			break;
		}
		unsigned resubmit = 0;
		do {
			unsigned k = (unsigned)io_uring_cqe_get_data64(cqe);
			uint64_t now = pbox_bench_now_ns();
			if (cqe->res != (int)PAGE) {
				if (!w->err)
					w->err = cqe->res < 0 ? cqe->res : -EIO;
			} else {
				pbox_bench_hist_record(&w->hist, now - t0[k]);
				bad += ld64(bufs + (size_t)k * PAGE + PBOX_PAGE_HDR) != pid[k];
				n++;
			}
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			struct io_uring_sqe *sqe = NULL;
			if (!pbox_bench_stopped(stop) && !w->err &&
			    !(sqe = io_uring_get_sqe(&ring)))
				w->err = -EBUSY; /* cannot happen: at most QD in flight */
			if (sqe) {
				pid[k] = random_pid(&s);
				io_uring_prep_read(sqe, c->raw_fd, bufs + (size_t)k * PAGE, PAGE,
						   pid[k] * PAGE);
				io_uring_sqe_set_data64(sqe, k);
				t0[k] = now;
				resubmit++;
			}
		} while (io_uring_peek_cqe(&ring, &cqe) == 0);
		if (resubmit) {
			e = io_uring_submit(&ring);
			if (e >= 0)
				inflight += (unsigned)e;
			if (e != (int)resubmit && !w->err)
				w->err = e < 0 ? e : -EIO;
		}
	}
out:
	io_uring_queue_exit(&ring);
	free(bufs);
	w->ops = n;
	w->mismatches = bad;
}

/* ---- setup ------------------------------------------------------------------------------- */

static pbox_store_options store_opts(uint64_t budget_bytes)
{
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.page_size = PAGE;
	o.budget_bytes = budget_bytes;
	/* Commits are not durable and nothing flushes in the background: the log is synced
	 * only when a checkpoint needs it. (Not SYNC_NONE: with it, a log flush after a
	 * checkpoint recycled a segment fails with PBOX_EINVAL, so close would fail.) */
	o.wal_sync = PBOX_WAL_SYNC_FDATASYNC;
	o.wal_flush_delay_us = 0;
	o.background_evictor = opt_bg_evict;
	return o;
}

static int open_store(const char *dir, bool create, uint64_t budget_bytes, pbox_store **st)
{
	pbox_store_options o = store_opts(budget_bytes);
	char err[512] = "";
	o.create = create;
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	int r = pbox_store_open(dir, &o, st);
	if (r)
		fprintf(stderr, "%s: cannot open the store in %s: %s%s%s\n", PROG, dir,
			pbox_strerror(r), err[0] ? ": " : "", err);
	return r;
}

/* Create a store of npages stamped pages in dir; it stays open (budget holds all of it). */
static int load_store(const char *dir, uint64_t npages, pbox_store **out, pbox_pid *first)
{
	pbox_store *st;
	uint64_t t0 = pbox_bench_now_ns();
	int r = open_store(dir, true, (npages + 4096) * PAGE, &st);
	if (r)
		return r;
	for (uint64_t i = 0; i < npages && !r;) {
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(st, &m)))
			break;
		for (unsigned k = 0; k < PAGES_PER_MTR && i < npages && !r; k++, i++) {
			pbox_pid pid;
			if (!(r = pbox_mtr_alloc(m, PBOX_PAGE_TYPE_USER, &pid, NULL)))
				r = pbox_mtr_write(m, pid, PBOX_PAGE_HDR, &pid, 8);
			if (!r && i == 0)
				*first = pid;
			if (!r && pid != *first + i)
				r = PBOX_ECORRUPT; /* a fresh store allocates consecutive pages */
		}
		if (r) {
			pbox_mtr_abort(m, true);
			break;
		}
		r = pbox_mtr_commit(m, false, NULL);
		if (!r && i % CKPT_EVERY == 0) {
			r = pbox_store_checkpoint(st);
			pbox_bench_progress("setup: %" PRIu64 "/%" PRIu64 " pages", i, npages);
		}
	}
	if (!r)
		r = pbox_store_checkpoint(st);
	pbox_bench_progress_done();
	if (r) {
		fprintf(stderr, "%s: setup of %" PRIu64 " pages failed: %s\n", PROG, npages,
			pbox_strerror(r));
		pbox_store_close(st);
		return r;
	}
	fprintf(stderr, "%s: setup: %" PRIu64 " pages (%.0f MiB) written in %.1f s\n", PROG, npages,
		(double)npages * PAGE / 1048576.0, (double)(pbox_bench_now_ns() - t0) / 1e9);
	*out = st;
	return 0;
}

/* ---- measuring --------------------------------------------------------------------------- */

static int64_t vm_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return PBOX_BENCH_NA;
	char line[256];
	long long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? PBOX_BENCH_NA : (int64_t)kb * 1024;
}

static double mib(double bytes)
{
	return bytes / 1048576.0;
}

/* Results kept for the goal lines: per OOM workload and thread-list index, per run. */
#define MAX_RUNS 64
typedef struct goal_cell {
	size_t n;
	double ops_ps[MAX_RUNS];  /* table ops/s */
	double dev_ps[MAX_RUNS];  /* device page reads/s (pagebox: from the pool's counters) */
	double hit[MAX_RUNS];     /* pagebox: fraction of page reads needing no device read */
} goal_cell;

enum { G_SYNC_POOL, G_SYNC_RAW, G_PF_POOL, G_PF_RAW, G_COUNT };
static goal_cell goals[G_COUNT][PBOX_BENCH_MAX_THREADS];

typedef struct run_desc {
	const char *engine, *workload;
	pbox_bench_worker fn;
	unsigned sample_mask;
	int64_t keys, budget;
	goal_cell *goal;
} run_desc;

/* One measured run: workers for cfg->seconds, a table row, the goal figures. */
static int one_run(const pbox_bench_config *cfg, pbox_bench_report *rep, const run_desc *d,
		   unsigned nt, unsigned run)
{
	memset(C.w, 0, sizeof(C.w));
	for (unsigned t = 0; t < nt; t++)
		pbox_bench_hist_init(&C.w[t].hist);
	C.sample_mask = d->sample_mask;
	C.seed = pbox_bench_now_ns() ^ ((uint64_t)run << 32);
	pbox_store_stats s0, s1;
	bool pool = C.st && strcmp(d->engine, "pagebox") == 0;
	if (pool)
		pbox_store_get_stats(C.st, &s0);
	(void)pbox_bench_peak_rss_reset();
	pbox_bench_progress("%s %s threads=%u run %u/%u", d->workload, d->engine, nt, run,
			    cfg->runs);
	pbox_bench_timing tm;
	int r = pbox_bench_run_threads(nt, cfg->seconds, d->fn, &C, &tm);
	if (r) {
		fprintf(stderr, "%s: cannot start threads: %s\n", PROG, strerror(-r));
		return r;
	}
	if (pool)
		pbox_store_get_stats(C.st, &s1);
	pbox_bench_row row;
	pbox_bench_row_init(&row);
	row.engine = d->engine;
	row.workload = d->workload;
	row.threads = nt;
	row.keys = d->keys;
	row.value_size = PAGE;
	row.budget_bytes = d->budget;
	row.run = run;
	row.seconds = tm.seconds;
	pbox_bench_hist all;
	pbox_bench_hist_init(&all);
	uint64_t bad = 0;
	for (unsigned t = 0; t < nt; t++) {
		row.ops += C.w[t].ops;
		bad += C.w[t].mismatches;
		pbox_bench_hist_merge(&all, &C.w[t].hist);
		if (C.w[t].err && !r)
			r = C.w[t].err;
	}
	if (r || bad) {
		pbox_bench_progress_done();
		fprintf(stderr, "%s: %s %s threads=%u: %s\n", PROG, d->engine, d->workload, nt,
			r ? pbox_strerror(r) : "");
		if (bad)
			fprintf(stderr, "%s: %s %s threads=%u: %" PRIu64
				" pages had the wrong stamp\n",
				PROG, d->engine, d->workload, nt, bad);
		return r ? r : PBOX_ECORRUPT;
	}
	row.cpu_us_per_op = row.ops ? (double)tm.cpu_ns / 1e3 / (double)row.ops : -1;
	if (all.count) {
		row.p50_us = (double)pbox_bench_hist_quantile(&all, 0.5) / 1e3;
		row.p99_us = (double)pbox_bench_hist_quantile(&all, 0.99) / 1e3;
	}
	row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
	if ((r = pbox_bench_report_add(rep, &row)))
		return r;
	goal_cell *g = d->goal;
	if (g && g->n < MAX_RUNS && tm.seconds > 0) {
		double dev = pool ? (double)(s1.reads - s0.reads) : (double)row.ops;
		g->ops_ps[g->n] = (double)row.ops / tm.seconds;
		g->dev_ps[g->n] = dev / tm.seconds;
		/* pages found resident: read without a device read of their own */
		g->hit[g->n] = row.ops ? 1.0 - dev / (double)row.ops : -1;
		g->n++;
	}
	return 0;
}

/* ---- the two phases -------------------------------------------------------------------------- */

static int phase_inmem(const pbox_bench_config *cfg, pbox_bench_report *rep)
{
	char *dir = NULL;
	int r = pbox_bench_scratch_create(cfg, "inmem", &dir);
	if (r) {
		fprintf(stderr, "%s: cannot create a scratch directory: %s\n", PROG, strerror(-r));
		return r;
	}
	uint64_t budget = (opt_pages + 4096) * PAGE;
	if ((r = load_store(dir, opt_pages, &C.st, &C.first)))
		goto out;
	C.npages = opt_pages;
	/* warm-up: read every page once (all of them are resident from the setup) */
	for (uint64_t i = 0; i < opt_pages && !r; i++) {
		uint64_t v = 0;
		if (!(r = pool_read(C.st, C.first + i, &v)) && v != C.first + i)
			r = PBOX_ECORRUPT;
		if (r)
			fprintf(stderr, "%s: read-inmem warm-up, page %" PRIu64 ": %s\n", PROG,
				C.first + i, pbox_strerror(r));
	}
	pbox_store_stats s;
	pbox_store_get_stats(C.st, &s);
	if (!r && s.resident_pages < opt_pages) {
		fprintf(stderr, "%s: read-inmem: only %" PRIu64 " of %" PRIu64 " pages resident\n",
			PROG, s.resident_pages, opt_pages);
		r = PBOX_EFULL;
	}
	run_desc d = { .engine = "pagebox", .workload = "read-inmem", .fn = w_pool_read,
		       .sample_mask = INMEM_SAMPLE_MASK, .keys = (int64_t)opt_pages,
		       .budget = (int64_t)budget };
	for (size_t ti = 0; ti < cfg->nthreads && !r; ti++)
		for (unsigned run = 1; run <= cfg->runs && !r; run++)
			r = one_run(cfg, rep, &d, cfg->threads[ti], run);
out:
	if (C.st) {
		int cr = pbox_store_close(C.st);
		if (cr)
			fprintf(stderr, "%s: read-inmem: closing the store: %s\n", PROG,
				pbox_strerror(cr));
		if (!r)
			r = cr;
		C.st = NULL;
	}
	pbox_bench_scratch_remove(dir);
	return r;
}

typedef struct oom_report {
	bool ran;
	bool direct;
	uint64_t resident_bytes, budget_bytes, page_count, wal_buffer;
	int64_t rss_before, rss_after;
} oom_report;

static int phase_oom(const pbox_bench_config *cfg, pbox_bench_report *rep_sync,
		     pbox_bench_report *rep_pf, oom_report *out)
{
	char *dir = NULL;
	int r = pbox_bench_scratch_create(cfg, "oom", &dir);
	if (r) {
		fprintf(stderr, "%s: cannot create a scratch directory: %s\n", PROG, strerror(-r));
		return r;
	}
	bool sync = want_workload("read-oom-sync"), pf = want_workload("read-oom-prefetch32");
	bool pool = want_engine("pagebox");
	bool qd1 = sync && want_engine("raw-pread-qd1"), qd32 = pf && want_engine("raw-pread-qd32");
	char path[4200];
	C.raw_fd = -1;
	if ((r = load_store(dir, opt_oom_pages, &C.st, &C.first)))
		goto out;
	C.npages = opt_oom_pages;
	r = pbox_store_close(C.st);
	C.st = NULL;
	if (r) {
		fprintf(stderr, "%s: closing the loaded store: %s\n", PROG, pbox_strerror(r));
		goto out;
	}
	if (qd1 || qd32) {
		snprintf(path, sizeof(path), "%s/data", dir);
		C.raw_fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (C.raw_fd < 0) {
			r = -errno;
			fprintf(stderr, "%s: %s: cannot open with O_DIRECT (%s): the raw baselines "
					"would read the page cache; not running them\n",
				PROG, path, strerror(errno));
			goto out;
		}
	}
	out->rss_before = vm_rss_bytes();
	if (pool) {
		if ((r = open_store(dir, false, opt_budget, &C.st)))
			goto out;
		pbox_store_stats s;
		pbox_store_get_stats(C.st, &s);
		out->direct = s.direct_io;
		if (!s.direct_io)
			fprintf(stderr, "%s: pagebox could not open its data file with O_DIRECT: "
					"its misses may be served by the OS page cache\n", PROG);
		/* steady state: fill the pool to its budget */
		uint64_t seed = rng_init(pbox_bench_now_ns(), 99);
		pbox_pid pids[QD];
		uint64_t budget_pages = opt_budget / PAGE;
		for (uint64_t k = 0; !r && k < 4 * budget_pages / QD; k++) {
			pbox_store_get_stats(C.st, &s);
			if (s.resident_pages + QD >= budget_pages)
				break;
			for (unsigned j = 0; j < QD; j++)
				pids[j] = C.first + rng_next(&seed) % C.npages;
			r = pbox_page_prefetch(C.st, pids, QD);
		}
		if (r) {
			fprintf(stderr, "%s: warm-up: %s\n", PROG, pbox_strerror(r));
			goto out;
		}
	}
	const int64_t keys = (int64_t)opt_oom_pages, budget = (int64_t)opt_budget;
	run_desc rd[4] = {
		{ "raw-pread-qd1", "read-oom-sync", w_raw_qd1, 0, keys, -1, NULL },
		{ "pagebox", "read-oom-sync", w_pool_read, 0, keys, budget, NULL },
		{ "raw-pread-qd32", "read-oom-prefetch32", w_raw_qd32, 0, keys, -1, NULL },
		{ "pagebox", "read-oom-prefetch32", w_pool_prefetch, 0, keys, budget, NULL },
	};
	const bool on[4] = { qd1, sync && pool, qd32, pf && pool };
	const int gi[4] = { G_SYNC_RAW, G_SYNC_POOL, G_PF_RAW, G_PF_POOL };
	/* engines interleaved within each run, so that drift hits them alike */
	for (size_t ti = 0; ti < cfg->nthreads && !r; ti++) {
		for (unsigned run = 1; run <= cfg->runs && !r; run++) {
			for (unsigned k = 0; k < 4 && !r; k++) {
				if (!on[k])
					continue;
				rd[k].goal = &goals[gi[k]][ti];
				r = one_run(cfg, k < 2 ? rep_sync : rep_pf, &rd[k],
					    cfg->threads[ti], run);
			}
		}
	}
	if (!r && C.st) {
		pbox_store_stats s;
		pbox_store_get_stats(C.st, &s);
		pbox_wal_info wi;
		pbox_wal_get_info(pbox_store_wal(C.st), &wi);
		out->ran = true;
		out->resident_bytes = s.resident_bytes;
		out->budget_bytes = s.budget_bytes;
		out->page_count = s.page_count;
		out->wal_buffer = wi.buffer_size;
		out->rss_after = vm_rss_bytes();
	}
out:
	pbox_bench_progress_done();
	if (C.raw_fd >= 0)
		close(C.raw_fd);
	C.raw_fd = -1;
	if (C.st) {
		int cr = pbox_store_close(C.st);
		if (cr)
			fprintf(stderr, "%s: OOM: closing the store: %s\n", PROG,
				pbox_strerror(cr));
		if (!r)
			r = cr;
		C.st = NULL;
	}
	pbox_bench_scratch_remove(dir);
	return r;
}

/* ---- goal lines ------------------------------------------------------------------------------ */

static double median(const double *v, size_t n)
{
	return n ? pbox_bench_summarize(v, n).median : -1;
}

/* One goal line: pagebox's device reads/s against the raw engine's reads/s. */
static void goal_line(const char *what, unsigned nt, const goal_cell *pool,
		      const goal_cell *raw, const char *raw_name, double goal)
{
	if (!pool->n || !raw->n)
		return;
	double dev = median(pool->dev_ps, pool->n), ops = median(pool->ops_ps, pool->n);
	double base = median(raw->ops_ps, raw->n);
	if (dev <= 0) {
		printf("- %s, %u thread(s): no device read counts (metrics compiled out); page "
		       "reads/s vs %s: %.2fx\n", what, nt, raw_name, ops / base);
		return;
	}
	printf("- %s, %u thread(s): pagebox %.0f device reads/s (%.0f page reads/s, %.0f%% "
	       "already resident) vs %s %.0f reads/s = %.2fx (goal >= %.2fx: %s)\n",
	       what, nt, dev, ops, median(pool->hit, pool->n) * 100, raw_name, base, dev / base,
	       goal, dev / base >= goal ? "met" : "NOT met");
}

static void print_goals(const pbox_bench_config *cfg, const oom_report *o)
{
	printf("\n### Goals (medians over runs)\n\n");
	for (size_t ti = 0; ti < cfg->nthreads; ti++) {
		unsigned nt = cfg->threads[ti];
		goal_line("synchronous misses", nt, &goals[G_SYNC_POOL][ti], &goals[G_SYNC_RAW][ti],
			  "raw-pread-qd1", 0.8);
		goal_line("prefetch", nt, &goals[G_PF_POOL][ti], &goals[G_PF_RAW][ti],
			  "raw-pread-qd32", 0.5);
	}
	if (!o->ran)
		return;
	double frames = (double)o->page_count * FRAME_BYTES;
	double limit = 1.05 * (double)o->budget_bytes + frames;
	printf("- resident memory after the OOM runs: store resident %.1f MiB of budget %.1f "
	       "MiB; frame table %.1f MiB (%" PRIu64 " page ids x %u B); WAL buffer %.1f MiB "
	       "allocated (touched only by appends)\n",
	       mib((double)o->resident_bytes), mib((double)o->budget_bytes), mib(frames),
	       o->page_count, FRAME_BYTES, mib((double)o->wal_buffer));
	if (o->rss_before >= 0 && o->rss_after >= 0) {
		double growth = (double)(o->rss_after - o->rss_before);
		printf("- process RSS (VmRSS) %.1f MiB, %.1f MiB before the store was opened: "
		       "growth %.1f MiB vs 1.05 x budget + frame table = %.1f MiB (goal: %s)\n",
		       mib((double)o->rss_after), mib((double)o->rss_before), mib(growth),
		       mib(limit), growth <= limit ? "met" : "NOT met");
	}
	if (!o->direct)
		printf("- pagebox ran WITHOUT O_DIRECT (the file system refused it)\n");
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, PROG,
			       "buffer-pool page reads (in memory, out of memory, prefetch) "
			       "against raw O_DIRECT reads of the same file",
			       2.0, "1,2");
	cfg.extra = extra;
	cfg.nextra = PBOX_ARRAY_LEN(extra);
	cfg.usage_extra =
		"Engines: pagebox; raw-pread-qd1 (pread, O_DIRECT) and raw-pread-qd32\n"
		"(io_uring, 32 in flight per thread) as the baselines of read-oom-sync and\n"
		"read-oom-prefetch32.\n"
		"Workloads: read-inmem (all resident), read-oom-sync (data 4x the budget,\n"
		"synchronous faults), read-oom-prefetch32 (pbox_page_prefetch of 32 random\n"
		"pages, then reading them). Setup writes the data twice (log + data file); it\n"
		"is not timed.\n";
	int pr = pbox_bench_parse_args(&cfg, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;
	if (!opt_pages)
		opt_pages = cfg.quick ? QUICK_INMEM_PAGES : DEFAULT_INMEM_PAGES;
	if (!opt_budget)
		opt_budget = cfg.quick ? QUICK_BUDGET : DEFAULT_BUDGET;
	opt_budget = opt_budget / PAGE * PAGE;
	if (!opt_oom_pages)
		opt_oom_pages = 4 * (opt_budget / PAGE);
	if (opt_budget < 64 * PAGE || opt_oom_pages < 64 || opt_pages < 64 ||
	    opt_pages > (1ull << 28) || opt_oom_pages > (1ull << 28) || cfg.runs > MAX_RUNS) {
		fprintf(stderr, "%s: --budget must be at least 256K, --pages and --oom-pages 64 .. "
				"2^28, --runs at most %u\n", PROG, MAX_RUNS);
		return 2;
	}
	static const char *const workloads[] = { "read-inmem", "read-oom-sync",
						 "read-oom-prefetch32" };
	static const char *const engines[] = { "pagebox", "raw-pread-qd1", "raw-pread-qd32" };
	for (size_t i = 0; i < opt_workloads.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < PBOX_ARRAY_LEN(workloads); k++)
			ok |= !strcmp(opt_workloads.item[i], workloads[k]);
		if (!ok) {
			fprintf(stderr, "%s: unknown workload %s\n", PROG, opt_workloads.item[i]);
			return 2;
		}
	}
	for (size_t i = 0; i < opt_engines.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < PBOX_ARRAY_LEN(engines); k++)
			ok |= !strcmp(opt_engines.item[i], engines[k]);
		if (!ok) {
			fprintf(stderr, "%s: unknown engine %s\n", PROG, opt_engines.item[i]);
			return 2;
		}
	}
	if (opt_oom_pages < 4 * (opt_budget / PAGE))
		fprintf(stderr, "%s: note: OOM data (%" PRIu64
				" pages) is less than 4x the budget\n",
			PROG, opt_oom_pages);

	/* two tables: each workload's ratio is to its own raw baseline */
	pbox_bench_report *rep_sync = NULL, *rep_pf = NULL;
	if (pbox_bench_report_create(&rep_sync, PROG, cfg.csv, "raw-pread-qd1") ||
	    pbox_bench_report_create(&rep_pf, PROG, cfg.csv, "raw-pread-qd32")) {
		pbox_bench_report_destroy(rep_sync);
		pbox_bench_config_fini(&cfg);
		return 2;
	}
	int status = 0;
	oom_report oom = { .direct = true, .rss_before = PBOX_BENCH_NA,
			   .rss_after = PBOX_BENCH_NA };
	if (want_workload("read-inmem") && want_engine("pagebox") && phase_inmem(&cfg, rep_sync))
		status = 1;
	if (!status && (want_workload("read-oom-sync") || want_workload("read-oom-prefetch32")) &&
	    phase_oom(&cfg, rep_sync, rep_pf, &oom))
		status = 1;
	pbox_bench_progress_done();

	printf("## %s: read-inmem and read-oom-sync (ratio to raw-pread-qd1)\n\n", PROG);
	pbox_bench_report_print(rep_sync, stdout);
	printf("\n## %s: read-oom-prefetch32 (ratio to raw-pread-qd32)\n\n", PROG);
	pbox_bench_report_print(rep_pf, stdout);
	printf("\nread-inmem: %" PRIu64 " pages (%.0f MiB), all resident. OOM: budget %.0f MiB, "
	       "data %" PRIu64 " pages (%.0f MiB), O_DIRECT for pagebox: %s, for raw: yes. "
	       "%.1f s per run.\n",
	       opt_pages, mib((double)opt_pages * PAGE), mib((double)opt_budget), opt_oom_pages,
	       mib((double)opt_oom_pages * PAGE), oom.direct ? "yes" : "NO", cfg.seconds);
	print_goals(&cfg, &oom);
	pbox_bench_report_destroy(rep_sync);
	pbox_bench_report_destroy(rep_pf);
	pbox_bench_config_fini(&cfg);
	return status;
}
