/*
 * pbox-bench-txn-stall — does a huge transaction's commit stall small commits? (issue:
 * "report small-commit p99 latency while a 1 M-key transaction commits; goal <= 2x without
 * it").
 *
 * Per run, on one store: phase "alone": one thread commits small transactions (one put of
 * a random key into tree "small") for --seconds and records each commit's latency; phase
 * "beside": the same thread runs while the main thread commits one transaction of --keys
 * random puts into tree "big" (built before the clock starts; only the commit is timed), and
 * the small commits that start while that commit is in progress are recorded. The two
 * phases alternate (which one goes first is decided per run by the seed), --runs times.
 * Output: one CSV line per run and phase (run,phase,commits,p50_us,p99_us,max_us,
 * big_commit_s), then per-run p99 ratios (beside / alone) and their median.
 */
#define _GNU_SOURCE
#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/txn.h>

#include "bench_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
	const char *dir;
	uint64_t keys, value_size, runs, seed;
	double seconds;
	bool durable;
} opts;

typedef struct small_ctx {
	pbox_store *st;
	pbox_bt *bt;
	unsigned flags;
	_Atomic bool stop;
	_Atomic bool record; /* record latencies only while set */
	pbox_bench_hist hist;
	uint64_t n;
	int err;
	uint64_t rng;
} small_ctx;

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *small_main(void *arg)
{
	small_ctx *c = arg;
	unsigned char v[100];
	memset(v, 's', sizeof(v));
	while (!atomic_load(&c->stop)) {
		uint64_t k = next_rand(&c->rng);
		bool rec = atomic_load(&c->record);
		uint64_t t0 = pbox_bench_now_ns();
		pbox_txn *t;
		int r = pbox_txn_begin(c->st, 0, &t);
		if (!r && (r = pbox_txn_put(t, c->bt, &k, 8, v, sizeof(v))))
			pbox_txn_abort(t);
		else if (!r)
			r = pbox_txn_commit(t, c->flags);
		if (r && r != PBOX_ECONFLICT) {
			c->err = r;
			break;
		}
		if (rec && atomic_load(&c->record)) {
			pbox_bench_hist_record(&c->hist, pbox_bench_now_ns() - t0);
			c->n++;
		}
	}
	return NULL;
}

static int run_phase(const opts *o, pbox_store *st, pbox_bt *small, pbox_bt *big, bool beside,
		     uint64_t run, double *p99_us)
{
	small_ctx c;
	memset(&c, 0, sizeof(c));
	c.st = st;
	c.bt = small;
	c.flags = o->durable ? PBOX_BT_DURABLE : 0;
	c.rng = o->seed * 2654435761u + run * 2 + beside + 1;
	pbox_bench_hist_init(&c.hist);
	pbox_txn *t = NULL;
	double big_s = 0;
	int r = 0;
	if (beside) { /* build the big write set before anything is timed */
		unsigned char *v = malloc(o->value_size);
		if (!v)
			return -1;
		memset(v, 'b', o->value_size);
		uint64_t s = c.rng ^ 0x9e3779b97f4a7c15ull;
		if ((r = pbox_txn_begin(st, 0, &t)))
			return r;
		for (uint64_t i = 0; i < o->keys && !r; i++) {
			uint64_t k = next_rand(&s);
			r = pbox_txn_put(t, big, &k, 8, v, o->value_size);
		}
		free(v);
		if (r) {
			pbox_txn_abort(t);
			return r;
		}
	}
	pthread_t th;
	if (pthread_create(&th, NULL, small_main, &c))
		return -1;
	atomic_store(&c.record, true);
	if (beside) {
		uint64_t t0 = pbox_bench_now_ns();
		r = pbox_txn_commit(t, c.flags);
		big_s = (double)(pbox_bench_now_ns() - t0) / 1e9;
	} else {
		struct timespec ts = { (time_t)o->seconds,
				       (long)((o->seconds - (double)(time_t)o->seconds) * 1e9) };
		nanosleep(&ts, NULL);
	}
	atomic_store(&c.record, false);
	atomic_store(&c.stop, true);
	pthread_join(th, NULL);
	if (!r)
		r = c.err;
	if (r)
		return r;
	*p99_us = (double)pbox_bench_hist_quantile(&c.hist, 0.99) / 1e3;
	printf("%llu,%s,%llu,%.1f,%.1f,%.1f,%.3f\n", (unsigned long long)run,
	       beside ? "beside" : "alone", (unsigned long long)c.n,
	       (double)pbox_bench_hist_quantile(&c.hist, 0.5) / 1e3, *p99_us,
	       (double)pbox_bench_hist_quantile(&c.hist, 1.0) / 1e3, big_s);
	fflush(stdout);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pbox-bench-txn-stall --dir DIR [--keys N (1000000)] [--value-size B (100)]\n"
		   "         [--seconds S (3): the 'alone' phase] [--runs R (5)] [--seed N]\n"
		   "         [--durability fast|durable (fast)]\n"
		   "Small-commit latency alone and while one transaction of N puts commits (see the\n"
		   "file's top comment). DIR is created and must not hold a store.\n");
}

int main(int argc, char **argv)
{
	opts o = { .keys = 1000000, .value_size = 100, .runs = 5, .seconds = 3, .seed = 1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--dir"))
			o.dir = v;
		else if (!strcmp(a, "--keys") && !pbox_bench_parse_u64(v, &o.keys) && o.keys)
			;
		else if (!strcmp(a, "--value-size") && !pbox_bench_parse_u64(v, &o.value_size) &&
			 o.value_size && o.value_size <= 4096)
			;
		else if (!strcmp(a, "--runs") && !pbox_bench_parse_u64(v, &o.runs) && o.runs)
			;
		else if (!strcmp(a, "--seed") && !pbox_bench_parse_u64(v, &o.seed))
			;
		else if (!strcmp(a, "--seconds") && (o.seconds = atof(v)) > 0)
			;
		else if (!strcmp(a, "--durability") && (!strcmp(v, "fast") || !strcmp(v, "durable")))
			o.durable = !strcmp(v, "durable");
		else {
			fprintf(stderr, "pbox-bench-txn-stall: bad option or value: %s %s\n", a, v);
			usage(stderr);
			return 2;
		}
	}
	if (!o.dir) {
		usage(stderr);
		return 2;
	}
	pbox_store_options so;
	pbox_store_options_init(&so);
	so.create = true;
	so.budget_bytes = 1ull << 30;
	char err[256];
	so.errbuf = err;
	so.errbuf_len = sizeof(err);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	so.redo = h;
	so.nredo = nh;
	pbox_store *st;
	int r = pbox_store_open(o.dir, &so, &st);
	if (r) {
		fprintf(stderr, "pbox-bench-txn-stall: %s: %s (%s)\n", o.dir, pbox_strerror(r), err);
		return 1;
	}
	pbox_bt *small, *big;
	if ((r = pbox_bt_open_or_create(st, "small", &small)) ||
	    (r = pbox_bt_open_or_create(st, "big", &big))) {
		fprintf(stderr, "pbox-bench-txn-stall: trees: %s\n", pbox_strerror(r));
		return 1;
	}
	printf("# pbox-bench-txn-stall keys=%llu value_size=%llu durability=%s seconds=%.1f\n",
	       (unsigned long long)o.keys, (unsigned long long)o.value_size,
	       o.durable ? "durable" : "fast", o.seconds);
	printf("run,phase,commits,p50_us,p99_us,max_us,big_commit_s\n");
	double *ratio = calloc(o.runs, sizeof(double));
	for (uint64_t run = 0; run < o.runs && !r; run++) {
		double pa = 0, pb = 0;
		bool beside_first = ((o.seed + run) * 0x9e3779b97f4a7c15ull) >> 63;
		for (int k = 0; k < 2 && !r; k++) {
			bool beside = (k == 0) == beside_first;
			r = run_phase(&o, st, small, big, beside, run, beside ? &pb : &pa);
		}
		ratio[run] = pa > 0 ? pb / pa : 0;
	}
	if (!r) {
		printf("# p99 beside / alone per run:");
		for (uint64_t i = 0; i < o.runs; i++)
			printf(" %.2f", ratio[i]);
		qsort(ratio, o.runs, sizeof(double), cmp_d);
		printf("\n# median %.2f (goal <= 2.00: %s)\n", ratio[o.runs / 2],
		       ratio[o.runs / 2] <= 2.0 ? "met" : "NOT met");
	} else {
		fprintf(stderr, "pbox-bench-txn-stall: %s\n", pbox_strerror(r));
	}
	free(ratio);
	pbox_bt_close(small);
	pbox_bt_close(big);
	int cr = pbox_store_close(st);
	return r || cr ? 1 : 0;
}
