/*
 * run.c — the timed run: T terminal threads without keying or think times, each looping
 * over the standard mix, for S seconds, R times; then the report (text, CSV, JSON).
 *
 * Terminals: thread i's home warehouse is i mod W + 1 and its stock-level district is
 * (i / W) mod 10 + 1 (clause 2.8.1.1 fixes a terminal's district); the other districts are
 * drawn per transaction. The mix is drawn per transaction: new-order 45 %, payment 43 %,
 * order-status, delivery and stock-level 4 % each. Delivery runs in the terminal thread
 * (not deferred to a queue).
 *
 * Measurements: a transaction's latency covers its retries; the histogram has 8 buckets per
 * power of two (±6 % resolution). CPU per transaction is the process's user + system time
 * (getrusage: the store's background threads included) over the committed transactions.
 * The pool hit rate is the store's hits / (hits + misses) over the run (0 without metrics).
 *
 * Threads: each worker owns its tpcc_worker and stats; the main thread reads them only after
 * joining. The stop flag and the first error are atomics.
 */
#define _GNU_SOURCE
#include "tpcc.h"

#include <pbox/status.h>
#include <pbox/topo.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct run_shared {
	atomic_bool stop;
	atomic_int err;
	atomic_uint_fast64_t committed; /* for the progress line */
	const pbox_topo *topo;
	int pin;
} run_shared;

typedef struct thread_arg {
	tpcc_worker w;
	run_shared *sh;
	unsigned index;
} thread_arg;

static int pick_type(tpcc_rng *r)
{
	uint32_t x = rnd(r, 1, 100);
	if (x <= 45)
		return TX_NEW_ORDER;
	if (x <= 88)
		return TX_PAYMENT;
	if (x <= 92)
		return TX_ORDER_STATUS;
	if (x <= 96)
		return TX_DELIVERY;
	return TX_STOCK_LEVEL;
}

static void *worker_main(void *p)
{
	thread_arg *a = p;
	if (a->sh->topo && a->sh->pin != PBOX_PIN_NONE)
		(void)pbox_topo_pin_thread(a->sh->topo, (pbox_pin_policy)a->sh->pin, a->index,
					   NULL);
	while (!atomic_load_explicit(&a->sh->stop, memory_order_relaxed)) {
		int rc = tpcc_tx_run(&a->w, pick_type(&a->w.rng));
		if (rc) {
			int zero = 0;
			atomic_compare_exchange_strong(&a->sh->err, &zero, rc);
			atomic_store(&a->sh->stop, true);
			break;
		}
		atomic_fetch_add_explicit(&a->sh->committed, 1, memory_order_relaxed);
	}
	return NULL;
}

typedef struct run_result {
	double seconds, tps, tpmc, cpu_us, hit_rate;
	uint64_t total;
	tpcc_stats s;
	uint64_t p50[TX_NTYPES], p99[TX_NTYPES];
} run_result;

static uint64_t percentile(const uint32_t *h, uint64_t n, double q)
{
	if (!n)
		return 0;
	uint64_t want = (uint64_t)(q * (double)n), seen = 0;
	if (want >= n)
		want = n - 1;
	for (unsigned b = 0; b < TPCC_HBUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return tpcc_hvalue(b);
	}
	return tpcc_hvalue(TPCC_HBUCKETS - 1);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int one_run(tpcc_db *db, const tpcc_run_opts *o, const tpcc_consts *k,
		   const pbox_topo *topo, unsigned run_no, run_result *res)
{
	run_shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.topo = topo;
	sh.pin = o->pin;
	thread_arg *ta = calloc(o->threads, sizeof(*ta));
	pthread_t *th = calloc(o->threads, sizeof(*th));
	if (!ta || !th) {
		free(ta);
		free(th);
		return -ENOMEM;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t wall_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	for (unsigned i = 0; i < o->threads; i++) {
		tpcc_worker *w = &ta[i].w;
		w->db = db;
		w->k = k;
		rng_seed(&w->rng, o->seed * 7919u + run_no * 104729u + i + 1);
		w->home_w = i % db->sc.warehouses + 1;
		w->home_d = (i / db->sc.warehouses) % TPCC_DISTRICTS + 1;
		w->id = i;
		/* history keys: wall-clock ns of the run's start + thread + sequence, unique
		 * across runs and processes (the loader's use stamp 0) */
		w->hist_stamp = wall_ns;
		w->commit_flags = o->durable ? PBOX_BT_DURABLE : 0;
		ta[i].sh = &sh;
		ta[i].index = i;
	}
	pbox_store_stats s0, s1;
	pbox_store_get_stats(db->st, &s0);
	double cpu0 = cpu_seconds();
	uint64_t t0 = tpcc_nanos();
	unsigned started = 0;
	for (unsigned i = 0; i < o->threads; i++) {
		if (pthread_create(&th[i], NULL, worker_main, &ta[i])) {
			atomic_store(&sh.err, -EAGAIN);
			atomic_store(&sh.stop, true);
			break;
		}
		started++;
	}
	bool tty = isatty(STDOUT_FILENO);
	uint64_t end = t0 + (uint64_t)(o->seconds * 1e9), last_print = t0;
	uint64_t last_count = 0;
	while (!atomic_load(&sh.stop)) {
		uint64_t t = tpcc_nanos();
		if (t >= end)
			break;
		uint64_t left = end - t;
		struct timespec ts = {0, (long)(left < 100000000ull ? left : 100000000ull)};
		nanosleep(&ts, NULL);
		t = tpcc_nanos();
		if (tty && t - last_print >= 1000000000ull) {
			uint64_t c = atomic_load(&sh.committed);
			printf("\r  run %u: %5.1f s, %" PRIu64 " txn, %.0f txn/s   ", run_no,
			       (double)(t - t0) / 1e9, c,
			       (double)(c - last_count) * 1e9 / (double)(t - last_print));
			fflush(stdout);
			last_print = t;
			last_count = c;
		}
	}
	atomic_store(&sh.stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	uint64_t t1 = tpcc_nanos();
	double cpu1 = cpu_seconds();
	pbox_store_get_stats(db->st, &s1);
	if (tty) {
		printf("\r%60s\r", "");
		fflush(stdout);
	}
	memset(res, 0, sizeof(*res));
	for (unsigned i = 0; i < o->threads; i++) {
		const tpcc_stats *s = &ta[i].w.s;
		for (int t = 0; t < TX_NTYPES; t++) {
			res->s.done[t] += s->done[t];
			res->s.conflicts[t] += s->conflicts[t];
			res->s.retries[t] += s->retries[t];
			for (unsigned b = 0; b < TPCC_HBUCKETS; b++)
				res->s.hist[t][b] += s->hist[t][b];
		}
		res->s.rollbacks += s->rollbacks;
		res->s.remote_lines += s->remote_lines;
		res->s.remote_payments += s->remote_payments;
		res->s.by_name += s->by_name;
		res->s.delivery_skipped += s->delivery_skipped;
	}
	free(ta);
	free(th);
	int err = atomic_load(&sh.err);
	if (err) {
		fprintf(stderr, "tpcc run: stopped by an error: %s\n", pbox_strerror(err));
		return err;
	}
	res->seconds = (double)(t1 - t0) / 1e9;
	for (int t = 0; t < TX_NTYPES; t++) {
		res->total += res->s.done[t];
		res->p50[t] = percentile(res->s.hist[t], res->s.done[t], 0.50);
		res->p99[t] = percentile(res->s.hist[t], res->s.done[t], 0.99);
	}
	res->tps = (double)res->total / res->seconds;
	res->tpmc = (double)res->s.done[TX_NEW_ORDER] * 60.0 / res->seconds;
	res->cpu_us = res->total ? (cpu1 - cpu0) * 1e6 / (double)res->total : 0;
	uint64_t hits = s1.hits - s0.hits, misses = s1.misses - s0.misses;
	res->hit_rate = hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0;
	return 0;
}

static uint64_t sum64(const uint64_t *v)
{
	uint64_t n = 0;
	for (int t = 0; t < TX_NTYPES; t++)
		n += v[t];
	return n;
}

static void print_result(const tpcc_run_opts *o, unsigned run_no, const run_result *r)
{
	printf("run %u: %.1f s, %" PRIu64 " transactions committed, %.0f txn/s, %.0f "
	       "new-order/min\n",
	       run_no, r->seconds, r->total, r->tps, r->tpmc);
	printf("  rollbacks %" PRIu64 " (new-order, intended), conflicts %" PRIu64
	       ", retries %" PRIu64 "; cpu %.1f us/txn; pool hit rate %.2f %%\n",
	       r->s.rollbacks, sum64(r->s.conflicts), sum64(r->s.retries), r->cpu_us,
	       r->hit_rate);
	printf("  %-13s %10s %7s %10s %10s %10s\n", "type", "committed", "mix %", "p50 us",
	       "p99 us", "conflicts");
	for (int t = 0; t < TX_NTYPES; t++)
		printf("  %-13s %10" PRIu64 " %7.1f %10.1f %10.1f %10" PRIu64 "\n",
		       tpcc_tx_names[t], r->s.done[t],
		       r->total ? 100.0 * (double)r->s.done[t] / (double)r->total : 0.0,
		       (double)r->p50[t] / 1e3, (double)r->p99[t] / 1e3, r->s.conflicts[t]);
	(void)o;
}

static const char *const csv_names[TX_NTYPES] = {"new_order", "payment", "order_status",
						 "delivery", "stock_level"};

static void write_csv(FILE *f, const tpcc_run_opts *o, const tpcc_db *db, unsigned run_no,
		      const run_result *r, bool header)
{
	if (header) {
		fprintf(f, "run,warehouses,threads,seconds,durability,txn_per_s,new_order_per_min,"
			   "committed,rollbacks,conflicts,retries,cpu_us_per_txn,pool_hit_pct");
		for (int t = 0; t < TX_NTYPES; t++)
			fprintf(f, ",%s,%s_p50_us,%s_p99_us", csv_names[t], csv_names[t],
				csv_names[t]);
		fprintf(f, "\n");
	}
	fprintf(f, "%u,%u,%u,%.3f,%s,%.1f,%.1f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		   ",%.2f,%.3f",
		run_no, db->sc.warehouses, o->threads, r->seconds, o->durable ? "durable" : "fast",
		r->tps, r->tpmc, r->total, r->s.rollbacks, sum64(r->s.conflicts),
		sum64(r->s.retries), r->cpu_us, r->hit_rate);
	for (int t = 0; t < TX_NTYPES; t++)
		fprintf(f, ",%" PRIu64 ",%.1f,%.1f", r->s.done[t], (double)r->p50[t] / 1e3,
			(double)r->p99[t] / 1e3);
	fprintf(f, "\n");
}

static void write_json_run(FILE *f, const tpcc_run_opts *o, const tpcc_db *db, unsigned run_no,
			   const run_result *r)
{
	fprintf(f,
		"    {\"run\": %u, \"warehouses\": %u, \"threads\": %u, \"seconds\": %.3f, "
		"\"durability\": \"%s\", \"txn_per_s\": %.1f, \"new_order_per_min\": %.1f, "
		"\"committed\": %" PRIu64 ", \"rollbacks\": %" PRIu64 ", \"conflicts\": %" PRIu64
		", \"retries\": %" PRIu64 ", \"cpu_us_per_txn\": %.2f, \"pool_hit_pct\": %.3f,\n"
		"     \"types\": {",
		run_no, db->sc.warehouses, o->threads, r->seconds, o->durable ? "durable" : "fast",
		r->tps, r->tpmc, r->total, r->s.rollbacks, sum64(r->s.conflicts),
		sum64(r->s.retries), r->cpu_us, r->hit_rate);
	for (int t = 0; t < TX_NTYPES; t++)
		fprintf(f,
			"%s\"%s\": {\"committed\": %" PRIu64 ", \"p50_us\": %.1f, \"p99_us\": %.1f, "
			"\"conflicts\": %" PRIu64 "}",
			t ? ", " : "", csv_names[t], r->s.done[t], (double)r->p50[t] / 1e3,
			(double)r->p99[t] / 1e3, r->s.conflicts[t]);
	fprintf(f, "}}");
}

int tpcc_run(tpcc_db *db, const tpcc_run_opts *o)
{
	tpcc_rng r;
	rng_seed(&r, o->seed);
	tpcc_consts k;
	tpcc_consts_init(&k, &db->sc, &r, false);
	pbox_topo *topo = NULL;
	if (o->pin != PBOX_PIN_NONE) {
		int rc = pbox_topo_open(&topo);
		if (rc) {
			fprintf(stderr, "tpcc run: no CPU topology (%s): threads are not pinned\n",
				pbox_strerror(rc));
			topo = NULL;
		}
	}
	FILE *csv = NULL, *json = NULL;
	if (o->csv && !(csv = fopen(o->csv, "w")))
		perror(o->csv);
	if (o->json && !(json = fopen(o->json, "w")))
		perror(o->json);
	int rc = (o->csv && !csv) || (o->json && !json) ? -EIO : 0;
	printf("tpcc run: %u warehouse%s (%u items, %u customers per district), %u thread%s, "
	       "%.1f s x %u, durability %s, seed %" PRIu64 "\n",
	       db->sc.warehouses, db->sc.warehouses == 1 ? "" : "s", db->sc.items,
	       db->sc.customers, o->threads, o->threads == 1 ? "" : "s", o->seconds, o->runs,
	       o->durable ? "durable" : "fast", o->seed);
	if (json) {
		fprintf(json, "{\"store\": \"");
		for (const char *p = o->label ? o->label : ""; *p; p++) /* JSON string escapes */
			if (*p == '"' || *p == '\\')
				fprintf(json, "\\%c", *p);
			else if ((unsigned char)*p < 0x20)
				fprintf(json, "\\u%04x", (unsigned)(unsigned char)*p);
			else
				fputc(*p, json);
		fprintf(json, "\", \"items\": %u, \"customers\": %u, \"runs\": [\n",
			db->sc.items, db->sc.customers);
	}
	double sum_tps = 0, sum_tpmc = 0;
	unsigned done = 0;
	for (unsigned i = 1; i <= o->runs && !rc; i++) {
		run_result res;
		rc = one_run(db, o, &k, topo, i, &res);
		if (rc)
			break;
		print_result(o, i, &res);
		fflush(stdout);
		if (csv)
			write_csv(csv, o, db, i, &res, i == 1);
		if (json) {
			if (i > 1)
				fprintf(json, ",\n");
			write_json_run(json, o, db, i, &res);
		}
		sum_tps += res.tps;
		sum_tpmc += res.tpmc;
		done++;
	}
	if (done > 1)
		printf("mean of %u runs: %.0f txn/s, %.0f new-order/min\n", done, sum_tps / done,
		       sum_tpmc / done);
	if (json) {
		fprintf(json, "\n]}\n");
		if (fclose(json))
			rc = rc ? rc : -EIO;
	}
	if (csv && fclose(csv))
		rc = rc ? rc : -EIO;
	if (topo)
		pbox_topo_close(topo);
	return rc;
}
