/*
 * bench_latch.c — pbox-bench-latch: the hybrid latch against pthread_rwlock_t, measured in
 * the same process run (bench/README.md, "Conventions").
 *
 * Workloads (names from bench/README.md, "Conventions"):
 *   read          all threads read one value protected by one shared latch: pagebox does
 *                 optimistic begin + racy load + validate (no write to the latch's line),
 *                 pthread-rwlock does rdlock + load + unlock (two atomic RMWs on the lock).
 *   read-private  the same with one latch (and one value) per thread, each on its own cache
 *                 lines: the uncontended cost of a read.
 *   write         all threads increment one value under one latch: exclusive acquire +
 *                 release vs wrlock + unlock.
 * Engines run interleaved within each run (run 1 of every engine, then run 2, ...), threads
 * start together, and every thread counts its own operations in its own cache line.
 *
 * Each run checks its own result: readers accumulate the value they read (which the
 * compiler cannot drop, and which must equal ops * value), writers' final value must equal
 * the total operation count. A mismatch aborts the benchmark with exit status 1.
 *
 * Invariants: slots and per-thread counters are 128-byte aligned so no two threads'
 * hot data and no two engines' locks share a cache line (or an adjacent-line prefetch pair).
 */
#define _GNU_SOURCE
#include <pbox/latch.h>

#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE 128
#define READ_VALUE 42u	     /* the value readers find behind the latch */
#define STOP_CHECK_EVERY 256 /* operations between looks at the stop flag */

/* One latch and the value it protects. Written only by the write workload's holders. */
struct latch_slot {
	pbox_latch latch;
	uint64_t value; /* protected by latch */
} __attribute__((aligned(LINE)));

/* One rwlock and the value it protects. */
struct rw_slot {
	pthread_rwlock_t lock;
	uint64_t value; /* protected by lock */
} __attribute__((aligned(LINE)));

/* What one worker reports; written only by its own thread. */
struct thread_out {
	uint64_t ops;
	uint64_t sum; /* accumulated read values (read workloads) */
} __attribute__((aligned(LINE)));

enum engine { ENGINE_PAGEBOX, ENGINE_RWLOCK };
enum workload { WL_READ, WL_READ_PRIVATE, WL_WRITE };

static const char *const engine_name[] = { "pagebox", "pthread-rwlock" };
static const char *const workload_name[] = { "read", "read-private", "write" };

struct ctx {
	enum engine engine;
	enum workload workload;
	struct latch_slot *latch_slots; /* [0] shared; [1 + tid] private */
	struct rw_slot *rw_slots;	/* same indexing */
	struct thread_out *out;		/* [tid] */
};

static size_t slot_index(const struct ctx *c, unsigned tid)
{
	return c->workload == WL_READ_PRIVATE ? 1u + tid : 0u;
}

static void latch_read(struct latch_slot *s, struct thread_out *o, const _Atomic bool *stop)
{
	uint64_t ops = 0, sum = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK_EVERY; i++) {
			uint64_t v;
			if (!pbox_latch_opt_begin(&s->latch, &v))
				continue;
			uint64_t x = pbox_latch_opt_load_u64(&s->value);
			if (pbox_latch_opt_validate(&s->latch, v)) {
				sum += x;
				ops++;
			}
		}
	}
	o->ops = ops;
	o->sum = sum;
}

static void rw_read(struct rw_slot *s, struct thread_out *o, const _Atomic bool *stop)
{
	uint64_t ops = 0, sum = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK_EVERY; i++) {
			pthread_rwlock_rdlock(&s->lock);
			sum += *(volatile uint64_t *)&s->value;
			pthread_rwlock_unlock(&s->lock);
			ops++;
		}
	}
	o->ops = ops;
	o->sum = sum;
}

static void latch_write(struct latch_slot *s, struct thread_out *o, const _Atomic bool *stop)
{
	uint64_t ops = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK_EVERY; i++) {
			pbox_latch_exclusive_acquire(&s->latch);
			s->value++;
			pbox_latch_exclusive_release(&s->latch);
			ops++;
		}
	}
	o->ops = ops;
}

static void rw_write(struct rw_slot *s, struct thread_out *o, const _Atomic bool *stop)
{
	uint64_t ops = 0;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK_EVERY; i++) {
			pthread_rwlock_wrlock(&s->lock);
			s->value++;
			pthread_rwlock_unlock(&s->lock);
			ops++;
		}
	}
	o->ops = ops;
}

static void worker(void *arg, unsigned tid, const _Atomic bool *stop)
{
	struct ctx *c = arg;
	size_t k = slot_index(c, tid);
	struct thread_out *o = &c->out[tid];
	bool write = c->workload == WL_WRITE;
	if (c->engine == ENGINE_PAGEBOX) {
		if (write)
			latch_write(&c->latch_slots[k], o, stop);
		else
			latch_read(&c->latch_slots[k], o, stop);
	} else {
		if (write)
			rw_write(&c->rw_slots[k], o, stop);
		else
			rw_read(&c->rw_slots[k], o, stop);
	}
}

/* Fresh slots for one run: every value set for the workload, every lock initialized. */
static void reset_slots(struct ctx *c, unsigned nslots)
{
	uint64_t v = c->workload == WL_WRITE ? 0 : READ_VALUE;
	for (unsigned i = 0; i < nslots; i++) {
		pbox_latch_init(&c->latch_slots[i].latch);
		c->latch_slots[i].value = v;
		pthread_rwlock_init(&c->rw_slots[i].lock, NULL);
		c->rw_slots[i].value = v;
	}
}

static void destroy_slots(struct ctx *c, unsigned nslots)
{
	for (unsigned i = 0; i < nslots; i++)
		pthread_rwlock_destroy(&c->rw_slots[i].lock);
}

/* The run's self-check; returns false (after a message) if the result is impossible. */
static bool check_run(const struct ctx *c, unsigned nthreads, uint64_t ops)
{
	if (c->workload == WL_WRITE) {
		uint64_t final = c->engine == ENGINE_PAGEBOX ? c->latch_slots[0].value
							     : c->rw_slots[0].value;
		if (final != ops) {
			fprintf(stderr, "error: %s write: value %" PRIu64 " after %" PRIu64
					" increments (lost updates)\n",
				engine_name[c->engine], final, ops);
			return false;
		}
		return true;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		if (c->out[t].sum != c->out[t].ops * READ_VALUE) {
			fprintf(stderr, "error: %s %s: thread %u read a wrong value\n",
				engine_name[c->engine], workload_name[c->workload], t);
			return false;
		}
	}
	return true;
}

static const char usage_text[] =
	"Engines:   pagebox (hybrid latch), pthread-rwlock (baseline)\n"
	"Workloads: read (optimistic read of one shared latch vs rdlock/unlock),\n"
	"           read-private (one latch per thread), write (exclusive vs wrlock)\n"
	"Output: a Markdown table on stdout (median ops/s, min-max, ratio to pthread-rwlock);\n"
	"        with --csv, one row per run (bench/README.md schema).";

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_list engines = { 0 }, workloads = { 0 };
	const pbox_bench_option extra[] = {
		{ "engines", PBOX_BENCH_OPT_LIST, &engines, "LIST",
		  "engines to run (default pagebox,pthread-rwlock)" },
		{ "workloads", PBOX_BENCH_OPT_LIST, &workloads, "LIST",
		  "workloads to run (default read,read-private,write)" },
	};
	int status = 1;
	struct ctx c;
	pbox_bench_report *rep = NULL;

	memset(&c, 0, sizeof(c));
	pbox_bench_config_init(&cfg, "pbox-bench-latch",
			       "Hybrid latch (optimistic/exclusive) against pthread_rwlock_t.", 1.0,
			       "1,2");
	cfg.extra = extra;
	cfg.nextra = sizeof(extra) / sizeof(extra[0]);
	cfg.usage_extra = usage_text;
	if (pbox_bench_parse_list("pagebox,pthread-rwlock", &engines) != 0 ||
	    pbox_bench_parse_list("read,read-private,write", &workloads) != 0) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	int prc = pbox_bench_parse_args(&cfg, argc, argv);
	if (prc != 0) {
		status = prc > 0 ? 0 : 2;
		goto out;
	}
	for (size_t i = 0; i < engines.n; i++) {
		if (strcmp(engines.item[i], engine_name[0]) != 0 &&
		    strcmp(engines.item[i], engine_name[1]) != 0) {
			fprintf(stderr, "pbox-bench-latch: unknown engine '%s'\n", engines.item[i]);
			status = 2;
			goto out;
		}
	}
	for (size_t i = 0; i < workloads.n; i++) {
		bool known = false;
		for (unsigned w = 0; w < 3; w++)
			known |= strcmp(workloads.item[i], workload_name[w]) == 0;
		if (!known) {
			fprintf(stderr, "pbox-bench-latch: unknown workload '%s'\n",
				workloads.item[i]);
			status = 2;
			goto out;
		}
	}

	unsigned max_threads = 0;
	for (size_t i = 0; i < cfg.nthreads; i++)
		if (cfg.threads[i] > max_threads)
			max_threads = cfg.threads[i];
	unsigned nslots = max_threads + 1;
	c.latch_slots = aligned_alloc(LINE, nslots * sizeof(*c.latch_slots));
	c.rw_slots = aligned_alloc(LINE, nslots * sizeof(*c.rw_slots));
	c.out = aligned_alloc(LINE, max_threads * sizeof(*c.out));
	if (!c.latch_slots || !c.rw_slots || !c.out) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	int rc = pbox_bench_report_create(&rep, cfg.program, cfg.csv, engine_name[ENGINE_RWLOCK]);
	if (rc != 0) {
		fprintf(stderr, "pbox-bench-latch: cannot start the report: %s\n", strerror(-rc));
		goto out;
	}

	for (unsigned run = 1; run <= cfg.runs; run++) {
		for (unsigned w = 0; w < 3; w++) {
			if (!pbox_bench_list_has(&workloads, workload_name[w]))
				continue;
			for (size_t ti = 0; ti < cfg.nthreads; ti++) {
				unsigned nt = cfg.threads[ti];
				for (unsigned e = 0; e < 2; e++) {
					if (!pbox_bench_list_has(&engines, engine_name[e]))
						continue;
					c.engine = (enum engine)e;
					c.workload = (enum workload)w;
					reset_slots(&c, nslots);
					memset(c.out, 0, max_threads * sizeof(*c.out));
					pbox_bench_progress("run %u/%u  %-12s threads=%-3u %s", run,
							    cfg.runs, workload_name[w], nt,
							    engine_name[e]);
					(void)pbox_bench_peak_rss_reset();
					pbox_bench_timing tm;
					rc = pbox_bench_run_threads(nt, cfg.seconds, worker, &c, &tm);
					if (rc != 0) {
						pbox_bench_progress_done();
						fprintf(stderr, "cannot start %u threads: %s\n", nt,
							strerror(-rc));
						destroy_slots(&c, nslots);
						goto out;
					}
					uint64_t ops = 0;
					for (unsigned t = 0; t < nt; t++)
						ops += c.out[t].ops;
					bool ok = check_run(&c, nt, ops);
					destroy_slots(&c, nslots);
					if (!ok) {
						pbox_bench_progress_done();
						goto out;
					}
					pbox_bench_row row;
					pbox_bench_row_init(&row);
					row.engine = engine_name[e];
					row.workload = workload_name[w];
					row.threads = nt;
					row.run = run;
					row.ops = ops;
					row.seconds = tm.seconds;
					row.cpu_us_per_op =
						ops ? (double)tm.cpu_ns / 1000.0 / (double)ops : -1;
					row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
					rc = pbox_bench_report_add(rep, &row);
					if (rc != 0) {
						pbox_bench_progress_done();
						fprintf(stderr, "cannot record the run: %s\n",
							strerror(-rc));
						goto out;
					}
				}
			}
		}
	}
	pbox_bench_progress_done();
	printf("pbox-bench-latch: %u run(s) of %g s each, median and min–max of ops/s; the "
	       "ratio compares medians with pthread-rwlock at the same workload and threads.\n\n",
	       cfg.runs, cfg.seconds);
	pbox_bench_report_print(rep, stdout);
	status = 0;
out:
	pbox_bench_report_destroy(rep);
	free(c.latch_slots);
	free(c.rw_slots);
	free(c.out);
	pbox_bench_config_fini(&cfg);
	return status;
}
