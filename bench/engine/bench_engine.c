/*
 * pbox-bench — the engine comparison driver (../../shared/BENCH.md, "pbox-bench"): the same
 * key-value workloads on pagebox and on peer engines (LMDB), engines interleaved within each
 * run, the Markdown table with the ratio to the baseline engine (LMDB), one CSV row per run.
 *
 * Data: keys are 8-byte big-endian integers, N of them, a random permutation of [0, N)
 * (a new permutation each run, the same for every engine within the run); values are
 * --value-size bytes: the key (8 bytes), a version (8 bytes, 0 after the fill), then a filler
 * byte. Every read checks that the value it got carries its key, every scan that it got the
 * consecutive keys it must (the key set is dense), so an adapter cannot measure nothing.
 *
 * Workloads (BENCH.md names; "threads" from --threads unless said otherwise):
 *   fill-random  N inserts in random order, 1000 per commit (adapter put_batch), 1 thread,
 *                into an empty instance. Latency columns: per batch of 1000 (with its commit).
 *   fill-seq     the same in ascending key order, into its own empty instance.
 *   lookup       uniform random existing keys, value copied out (every 16th op timed).
 *   scan100      seek to a uniform random key, read the next 100 pairs (fewer at the end of
 *                the key space: exactly min(100, N - start)); ops = scans.
 *   ycsb-a       50% reads / 50% updates (put of a new version of the value, its own commit
 *                in the run's commit mode), keys by Zipfian(0.99) rank mapped through the
 *                run's permutation (so hot keys are scattered over the key space).
 *   commit       single-key durable commits per thread (uniform keys, updates), always
 *                durable whatever --durability says.
 * lookup, scan100, ycsb-a and commit run on the instance the fill-random built (or, when
 * fill-random is not measured, on one loaded the same way without timing), in that order.
 *
 * Out-of-memory runs: --budget below the data (N x (8 + value size) bytes). pagebox keeps
 * its cache within the budget (O_DIRECT data file); LMDB cannot be bounded (it reads through
 * the OS page cache), so its rows are printed in a separate table marked "not ranked" and the
 * ranked table has no ratio column. The driver prints each engine's data size after the fill
 * and says when the data is less than 4x the budget.
 */
#define _GNU_SOURCE
#include "engine.h"

#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "pbox-bench"
#define KEY_SIZE 8u
#define BATCH 1000u
#define SCAN_LEN 100u
#define STOP_CHECK 16u		/* operations between looks at the stop flag */
#define LOOKUP_SAMPLE_MASK 15u	/* lookup: time one operation in 16 */
#define ZIPF_THETA 0.99
#define DEFAULT_KEYS 1000000ull
#define QUICK_KEYS 20000ull
#define MAX_VALUE 65536u
#define CHECK_UPDATES 200u	/* --check: single-key commits, each read back */

/* ---- options ------------------------------------------------------------------------------ */

static uint64_t opt_keys, opt_value = 100, opt_budget, opt_seed = 42;
static const char *opt_durability = "durable", *opt_json, *opt_lmdb_writemap = "auto";
static pbox_bench_list opt_engines, opt_workloads;
static bool opt_check;

static const pbox_bench_option extra[] = {
	{ "engines", PBOX_BENCH_OPT_LIST, &opt_engines, "LIST", "pagebox,lmdb (default: both)" },
	{ "workloads", PBOX_BENCH_OPT_LIST, &opt_workloads, "LIST",
	  "fill-random,fill-seq,lookup,scan100,ycsb-a,commit (default: fill-random,lookup,scan100,ycsb-a)" },
	{ "keys", PBOX_BENCH_OPT_UINT, &opt_keys, "N", "keys (default 1000000; --quick 20000)" },
	{ "value-size", PBOX_BENCH_OPT_SIZE, &opt_value, "B", "value bytes, 16..65536 (default 100)" },
	{ "budget", PBOX_BENCH_OPT_SIZE, &opt_budget, "SIZE",
	  "cache budget (default: enough for all data; below the data: out-of-memory run)" },
	{ "durability", PBOX_BENCH_OPT_STRING, &opt_durability, "durable|fast",
	  "commit mode of fills and updates (default durable)" },
	{ "json", PBOX_BENCH_OPT_STRING, &opt_json, "FILE", "also write all runs as JSON" },
	{ "check", PBOX_BENCH_OPT_FLAG, &opt_check, NULL,
	  "after each fill, check the contents and compare engines (on with --quick)" },
	{ "seed", PBOX_BENCH_OPT_UINT, &opt_seed, "S", "random seed (default 42; run r uses S + r)" },
	{ "lmdb-writemap", PBOX_BENCH_OPT_STRING, &opt_lmdb_writemap, "auto|on|off",
	  "LMDB's MDB_WRITEMAP (auto: on with --durability fast, off with durable)" },
};

enum { W_FILL_RANDOM, W_FILL_SEQ, W_LOOKUP, W_SCAN100, W_YCSB_A, W_COMMIT, W_COUNT };
static const char *const WNAME[W_COUNT] = { "fill-random", "fill-seq", "lookup",
					    "scan100", "ycsb-a", "commit" };
static bool want[W_COUNT];

static const pbe_adapter *const ADAPTERS[] = { &pbe_pagebox_adapter, &pbe_lmdb_adapter };
#define NADAPTERS (sizeof(ADAPTERS) / sizeof(ADAPTERS[0]))
#define BASELINE "lmdb"

/* ---- random numbers -------------------------------------------------------------------- */

static inline uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xoshiro-style state would do too; a 64-bit xorshift* is enough for key choice */
static inline uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_seed(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = a * 0x100000001b3ull ^ (b << 32) ^ c;
	uint64_t r = splitmix(&s);
	return r ? r : 1;
}

/* uniform in [0, n) (Lemire's multiply-shift; the bias is negligible for n << 2^64) */
static inline uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rnd(s) * n) >> 64);
}

static inline double rnd_unit(uint64_t *s)
{
	return (double)(rnd(s) >> 11) * 0x1.0p-53;
}

/* Zipfian ranks in [0, n) with parameter theta, by the rejection-free method of Gray et al.
 * ("Quickly generating billion-record synthetic databases", SIGMOD 1994), as YCSB does. */
typedef struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
} zipf;

static void zipf_init(zipf *z, uint64_t n, double theta)
{
	double zetan = 0, zeta2 = 1.0 + pow(0.5, theta);
	for (uint64_t i = 1; i <= n; i++)
		zetan += pow((double)i, -theta);
	z->n = n;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zetan;
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
	z->half_pow_theta = pow(0.5, theta);
}

static inline uint64_t zipf_next(const zipf *z, uint64_t *s)
{
	double u = rnd_unit(s), uz = u * z->zetan;
	if (uz < 1.0)
		return 0;
	if (uz < 1.0 + z->half_pow_theta)
		return z->n > 1 ? 1 : 0;
	uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return r < z->n ? r : z->n - 1;
}

/* ---- keys and values ----------------------------------------------------------------------- */

static inline void enc_key(unsigned char *k, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (unsigned char)v;
}

static inline uint64_t dec_key(const unsigned char *k)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | k[i];
	return v;
}

/* value: key (big-endian), version (big-endian), filler derived from both */
static inline void make_value(unsigned char *v, uint32_t vsize, uint64_t key, uint64_t version)
{
	enc_key(v, key);
	enc_key(v + 8, version);
	memset(v + 16, (int)((key * 131u + version * 7u) & 0xffu), vsize - 16);
}

static inline bool value_ok(const unsigned char *v, size_t vlen, uint32_t vsize,
			    const unsigned char *key)
{
	return vlen == vsize && memcmp(v, key, KEY_SIZE) == 0;
}

/* ---- run state ----------------------------------------------------------------------------- */

typedef struct worker {
	uint64_t ops;
	int err;	/* adapter return code, or PBE_BAD_DATA */
	char what[160]; /* what went wrong */
	pbox_bench_hist hist;
} __attribute__((aligned(128))) worker;

#define PBE_BAD_DATA (-49999) /* a read returned wrong data (the driver's own code) */

static struct {
	const pbe_adapter *ad;
	pbe_engine *e;
	pbe_thread *th[PBOX_BENCH_MAX_THREADS];
	uint64_t n;	  /* keys */
	uint32_t vsize;
	uint32_t *perm;	  /* the run's permutation of [0, n) */
	zipf z;
	uint64_t seed;	  /* the run's seed */
	int workload;
	bool seq;	  /* fill order */
	worker w[PBOX_BENCH_MAX_THREADS];
} G;

static void make_perm(uint64_t seed)
{
	for (uint64_t i = 0; i < G.n; i++)
		G.perm[i] = (uint32_t)i;
	uint64_t s = rnd_seed(seed, 0xfeed, 0);
	for (uint64_t i = G.n - 1; i > 0; i--) { /* Fisher-Yates */
		uint64_t j = rnd_below(&s, i + 1);
		uint32_t t = G.perm[i];
		G.perm[i] = G.perm[j];
		G.perm[j] = t;
	}
}

static void fail_at(worker *w, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(worker *w, int rc, const char *fmt, ...)
{
	w->err = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->what, sizeof(w->what), fmt, ap);
	va_end(ap);
}

static const char *rc_str(int rc)
{
	return rc == PBE_BAD_DATA ? "wrong data" : G.ad->strerror(rc);
}

/* ---- workers ------------------------------------------------------------------------------- */

static void w_fill(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	(void)stop;
	worker *w = &G.w[tid];
	unsigned char *keys = malloc((size_t)BATCH * KEY_SIZE);
	unsigned char *vals = malloc((size_t)BATCH * G.vsize);
	pbe_kv *kv = malloc(BATCH * sizeof(*kv));
	if (!keys || !vals || !kv) {
		fail_at(w, -ENOMEM, "fill buffers");
		goto out;
	}
	for (uint64_t i = 0; i < G.n; i += BATCH) {
		size_t nb = G.n - i < BATCH ? (size_t)(G.n - i) : BATCH;
		for (size_t j = 0; j < nb; j++) {
			uint64_t k = G.seq ? i + j : G.perm[i + j];
			enc_key(keys + j * KEY_SIZE, k);
			make_value(vals + j * G.vsize, G.vsize, k, 0);
			kv[j] = (pbe_kv){ keys + j * KEY_SIZE, KEY_SIZE, vals + j * G.vsize, G.vsize };
		}
		uint64_t t0 = pbox_bench_now_ns();
		int r = G.ad->put_batch(G.th[tid], kv, nb, G.seq ? PBE_BATCH_SEQUENTIAL : 0);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "put_batch of keys %" PRIu64 "..%" PRIu64, i, i + nb - 1);
			goto out;
		}
		w->ops += nb;
	}
out:
	free(keys);
	free(vals);
	free(kv);
}

static void w_lookup(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, W_LOOKUP, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK; i++, n++) {
			uint64_t k = rnd_below(&s, G.n);
			enc_key(key, k);
			bool timed = (n & LOOKUP_SAMPLE_MASK) == 0;
			uint64_t t0 = timed ? pbox_bench_now_ns() : 0;
			size_t vlen = 0;
			int r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (timed)
				pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r) {
				fail_at(w, r, "get of key %" PRIu64, k);
				goto out;
			}
			if (!value_ok(buf, vlen, G.vsize, key)) {
				fail_at(w, PBE_BAD_DATA, "get of key %" PRIu64 ": wrong value", k);
				goto out;
			}
		}
	}
out:
	w->ops = n;
}

typedef struct scan_check {
	uint64_t next; /* the key expected next */
	uint32_t vsize;
	bool bad;
} scan_check;

static int scan_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_check *c = arg;
	if (klen != KEY_SIZE || dec_key(key) != c->next || !value_ok(val, vlen, c->vsize, key)) {
		c->bad = true;
		return 1;
	}
	c->next++;
	return 0;
}

static void w_scan(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, W_SCAN100, tid + 1), n = 0;
	unsigned char key[KEY_SIZE];
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = rnd_below(&s, G.n);
		enc_key(key, k);
		scan_check c = { .next = k, .vsize = G.vsize };
		size_t got = 0;
		uint64_t t0 = pbox_bench_now_ns();
		int r = G.ad->scan(t, key, KEY_SIZE, SCAN_LEN, scan_cb, &c, &got);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		uint64_t expect = G.n - k < SCAN_LEN ? G.n - k : SCAN_LEN;
		if (r && !c.bad) {
			fail_at(w, r, "scan from key %" PRIu64, k);
			break;
		}
		if (c.bad || got != expect) {
			fail_at(w, PBE_BAD_DATA, "scan from key %" PRIu64 ": %zu pairs, expected %" PRIu64
				"%s", k, got, expect, c.bad ? " (wrong key or value)" : "");
			break;
		}
		n++;
	}
	w->ops = n;
}

static void w_ycsb_a(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, W_YCSB_A, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = G.perm[zipf_next(&G.z, &s)];
		enc_key(key, k);
		bool update = rnd(&s) >> 63;
		int r;
		size_t vlen = G.vsize;
		uint64_t t0 = pbox_bench_now_ns();
		if (update) {
			make_value(buf, G.vsize, k, ((uint64_t)tid + 1) << 40 | n);
			r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize);
		} else {
			r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
		}
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "%s of key %" PRIu64, update ? "put" : "get", k);
			break;
		}
		if (!value_ok(buf, vlen, G.vsize, key)) {
			fail_at(w, PBE_BAD_DATA, "get of key %" PRIu64 ": wrong value", k);
			break;
		}
		n++;
	}
	w->ops = n;
}

static void w_commit(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, W_COMMIT, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = rnd_below(&s, G.n);
		enc_key(key, k);
		make_value(buf, G.vsize, k, ((uint64_t)tid + 1) << 40 | n);
		uint64_t t0 = pbox_bench_now_ns();
		int r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "put of key %" PRIu64, k);
			break;
		}
		n++;
	}
	w->ops = n;
}

/* ---- reports --------------------------------------------------------------------------- */

typedef struct jrow {
	pbox_bench_row r; /* engine and workload point to static strings */
	int workload;
	bool ranked;
} jrow;

static struct {
	pbox_bench_report *csv;	     /* every row as it is measured, CSV only (never printed) */
	pbox_bench_report *ranked;   /* printed: the compared engines */
	pbox_bench_report *unranked; /* printed: OOM runs, engines bound to the OS page cache */
	jrow *j;		     /* every row, for the printed tables and the JSON file */
	size_t nj, capj;
} R;

static bool oom_run;

static int add_row(const pbox_bench_row *row, bool ranked)
{
	int r = pbox_bench_report_add(R.csv, row);
	if (r)
		return r;
	if (R.nj == R.capj) {
		size_t nc = R.capj ? 2 * R.capj : 64;
		jrow *nj = realloc(R.j, nc * sizeof(*nj));
		if (!nj)
			return -ENOMEM;
		R.j = nj;
		R.capj = nc;
	}
	R.j[R.nj++] = (jrow){ .r = *row, .workload = G.workload, .ranked = ranked };
	return 0;
}

/* The printed tables list rows by workload, then thread count, then engine (as selected),
 * whatever order they were measured in. */
static int fill_print_reports(const size_t *sel, size_t nsel)
{
	static const int worder[W_COUNT] = { W_FILL_RANDOM, W_FILL_SEQ, W_LOOKUP,
					     W_SCAN100, W_YCSB_A, W_COMMIT };
	for (int wi = 0; wi < W_COUNT; wi++) {
		unsigned last_t = 0;
		for (;;) { /* thread counts in ascending order */
			unsigned t = UINT32_MAX;
			for (size_t i = 0; i < R.nj; i++)
				if (R.j[i].workload == worder[wi] && R.j[i].r.threads > last_t &&
				    R.j[i].r.threads < t)
					t = R.j[i].r.threads;
			if (t == UINT32_MAX)
				break;
			for (size_t e = 0; e < nsel; e++)
				for (size_t i = 0; i < R.nj; i++) {
					const jrow *j = &R.j[i];
					if (j->workload != worder[wi] || j->r.threads != t ||
					    strcmp(j->r.engine, ADAPTERS[sel[e]]->name) != 0)
						continue;
					int r = pbox_bench_report_add(j->ranked ? R.ranked : R.unranked,
								      &j->r);
					if (r)
						return r;
				}
			last_t = t;
		}
	}
	return 0;
}

static void json_num(FILE *f, const char *name, double v, bool last)
{
	if (v < 0)
		fprintf(f, "\"%s\": null%s", name, last ? "" : ", ");
	else
		fprintf(f, "\"%s\": %.6g%s", name, v, last ? "" : ", ");
}

static void json_int(FILE *f, const char *name, int64_t v, bool last)
{
	if (v < 0)
		fprintf(f, "\"%s\": null%s", name, last ? "" : ", ");
	else
		fprintf(f, "\"%s\": %" PRId64 "%s", name, v, last ? "" : ", ");
}

static int write_json(const char *path, const pbox_bench_config *cfg, const char *date)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
		return -errno;
	}
	fprintf(f, "{\n  \"program\": \"%s\", \"date\": \"%s\", \"keys\": %" PRIu64
		   ", \"value_size\": %u, \"durability\": \"%s\", \"budget_bytes\": %" PRIu64
		   ", \"out_of_memory\": %s, \"runs\": %u, \"seconds\": %g,\n  \"engines\": [",
		PROG, date, G.n, G.vsize, opt_durability, opt_budget, oom_run ? "true" : "false",
		cfg->runs, cfg->seconds);
	bool first = true;
	for (size_t a = 0; a < NADAPTERS; a++) {
		if (opt_engines.n && !pbox_bench_list_has(&opt_engines, ADAPTERS[a]->name))
			continue;
		fprintf(f, "%s{\"name\": \"%s\", \"version\": \"%s\"}", first ? "" : ", ",
			ADAPTERS[a]->name, ADAPTERS[a]->version);
		first = false;
	}
	fprintf(f, "],\n  \"rows\": [\n");
	for (size_t i = 0; i < R.nj; i++) {
		const jrow *j = &R.j[i];
		fprintf(f, "    {\"engine\": \"%s\", \"workload\": \"%s\", \"threads\": %u, \"run\": %u, ",
			j->r.engine, WNAME[j->workload], j->r.threads, j->r.run);
		fprintf(f, "\"ranked\": %s, ", j->ranked ? "true" : "false");
		json_int(f, "budget_bytes", j->r.budget_bytes, false);
		fprintf(f, "\"ops\": %" PRIu64 ", ", j->r.ops);
		json_num(f, "seconds", j->r.seconds, false);
		json_num(f, "ops_per_sec", j->r.seconds > 0 ? (double)j->r.ops / j->r.seconds : -1,
			 false);
		json_num(f, "p50_us", j->r.p50_us, false);
		json_num(f, "p99_us", j->r.p99_us, false);
		json_num(f, "cpu_us_per_op", j->r.cpu_us_per_op, false);
		json_int(f, "peak_rss_bytes", j->r.peak_rss_bytes, true);
		fprintf(f, "}%s\n", i + 1 < R.nj ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	int r = ferror(f) ? -EIO : 0;
	if (fclose(f) && !r)
		r = -errno;
	return r;
}

/* ---- one measurement ----------------------------------------------------------------------- */

static int open_threads(unsigned nt)
{
	for (unsigned i = 0; i < nt; i++) {
		int r = G.ad->thread_open(G.e, &G.th[i]);
		if (r) {
			fprintf(stderr, "%s: %s: thread_open: %s\n", PROG, G.ad->name, rc_str(r));
			while (i--) {
				G.ad->thread_close(G.th[i]);
				G.th[i] = NULL;
			}
			return r;
		}
	}
	return 0;
}

static void close_threads(unsigned nt)
{
	for (unsigned i = 0; i < nt; i++) {
		G.ad->thread_close(G.th[i]);
		G.th[i] = NULL;
	}
}

/* Run workload w on nt threads (fills: seconds = 0, until done) and report it (unless
 * record is false: an untimed load). */
static int measure(int w, unsigned nt, double seconds, unsigned run, bool record)
{
	static const pbox_bench_worker fn[W_COUNT] = { w_fill, w_fill, w_lookup,
							w_scan, w_ycsb_a, w_commit };
	G.workload = w;
	G.seq = w == W_FILL_SEQ;
	for (unsigned t = 0; t < nt; t++) {
		G.w[t].ops = 0;
		G.w[t].err = 0;
		G.w[t].what[0] = 0;
		pbox_bench_hist_init(&G.w[t].hist);
	}
	int r = open_threads(nt);
	if (r)
		return r;
	pbox_bench_timing tm;
	r = pbox_bench_run_threads(nt, seconds, fn[w], NULL, &tm);
	close_threads(nt);
	if (r) {
		fprintf(stderr, "%s: starting threads: %s\n", PROG, strerror(-r));
		return r;
	}
	pbox_bench_row row;
	pbox_bench_row_init(&row);
	pbox_bench_hist all;
	pbox_bench_hist_init(&all);
	for (unsigned t = 0; t < nt; t++) {
		if (G.w[t].err) {
			fprintf(stderr, "%s: %s %s thread %u: %s: %s\n", PROG, G.ad->name, WNAME[w], t,
				G.w[t].what, rc_str(G.w[t].err));
			return G.w[t].err;
		}
		row.ops += G.w[t].ops;
		pbox_bench_hist_merge(&all, &G.w[t].hist);
	}
	if (!record)
		return 0;
	pbe_info info;
	G.ad->info(G.e, &info);
	row.engine = G.ad->name;
	row.workload = WNAME[w];
	row.threads = nt;
	row.keys = (int64_t)G.n;
	row.value_size = G.vsize;
	row.budget_bytes = info.budget_bytes == UINT64_MAX ? PBOX_BENCH_NA : (int64_t)info.budget_bytes;
	row.run = run;
	row.seconds = tm.seconds;
	row.cpu_us_per_op = row.ops ? (double)tm.cpu_ns / 1e3 / (double)row.ops : -1;
	if (all.count) {
		row.p50_us = (double)pbox_bench_hist_quantile(&all, 0.5) / 1e3;
		row.p99_us = (double)pbox_bench_hist_quantile(&all, 0.99) / 1e3;
	}
	row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
	return add_row(&row, G.ad->bounded_cache || !oom_run);
}

/* ---- the content check (--check, on with --quick) ----------------------------------------- */

/* Digests of what an engine returned for a fixed operation sequence; engines must agree. */
typedef struct digests {
	uint64_t full0, gets, scans, full1;
	bool set;
} digests;

static inline uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
	return h;
}

typedef struct full_check {
	uint64_t next, h;
	uint32_t vsize;
	bool bad;
} full_check;

static int full_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	full_check *c = arg;
	if (klen != KEY_SIZE || dec_key(key) != c->next || !value_ok(val, vlen, c->vsize, key)) {
		c->bad = true;
		return 1;
	}
	c->next++;
	c->h = mix(mix(c->h, key, klen), val, vlen);
	return 0;
}

static int full_scan(pbe_thread *t, uint64_t *digest, uint64_t *expect_digest)
{
	full_check c = { .h = 0xcbf29ce484222325ull, .vsize = G.vsize };
	size_t got = 0;
	int r = G.ad->scan(t, NULL, 0, (size_t)G.n + 1, full_cb, &c, &got);
	if (c.bad || (!r && got != G.n)) {
		fprintf(stderr, "%s: check: %s: full scan returned %zu pairs (expected %" PRIu64
				"), %s at key %" PRIu64 "\n",
			PROG, G.ad->name, got, G.n, c.bad ? "wrong key or value" : "short", c.next);
		return PBE_BAD_DATA;
	}
	if (r) {
		fprintf(stderr, "%s: check: %s: full scan: %s\n", PROG, G.ad->name, rc_str(r));
		return r;
	}
	*digest = c.h;
	if (expect_digest) { /* the fill's contents are known: every value at version 0 */
		uint64_t h = 0xcbf29ce484222325ull;
		unsigned char k[KEY_SIZE], v[MAX_VALUE];
		for (uint64_t i = 0; i < G.n; i++) {
			enc_key(k, i);
			make_value(v, G.vsize, i, 0);
			h = mix(mix(h, k, KEY_SIZE), v, G.vsize);
		}
		*expect_digest = h;
	}
	return 0;
}

static int check_contents(digests *d, const digests *ref)
{
	pbe_thread *t;
	int r = G.ad->thread_open(G.e, &t);
	if (r)
		return r;
	digests x = { .set = true };
	uint64_t expect;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	if ((r = full_scan(t, &x.full0, &expect)))
		goto out;
	if (x.full0 != expect) {
		fprintf(stderr, "%s: check: %s: contents after the fill differ from what was written\n",
			PROG, G.ad->name);
		r = PBE_BAD_DATA;
		goto out;
	}
	/* point reads: present keys, then absent ones */
	uint64_t s = rnd_seed(G.seed, 0xc4ec, 1), h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < 1000; i++) {
		uint64_t k = rnd_below(&s, G.n);
		enc_key(key, k);
		size_t vlen = 0;
		if ((r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen)) ||
		    !value_ok(buf, vlen, G.vsize, key)) {
			fprintf(stderr, "%s: check: %s: get %" PRIu64 ": %s\n", PROG, G.ad->name, k,
				r ? rc_str(r) : "wrong value");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
		h = mix(h, buf, vlen);
	}
	for (unsigned i = 0; i < 100; i++) {
		uint64_t k = G.n + i * 7919u;
		enc_key(key, k);
		size_t vlen = 0;
		r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
		if (r != PBE_NOTFOUND) {
			fprintf(stderr, "%s: check: %s: get of absent key %" PRIu64 ": %s\n", PROG,
				G.ad->name, k, r ? rc_str(r) : "found");
			r = PBE_BAD_DATA;
			goto out;
		}
	}
	r = 0;
	x.gets = h;
	/* short scans, some of them running into the end of the key space */
	h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < 200; i++) {
		uint64_t k = i < 10 ? (G.n > i * 13 ? G.n - 1 - i * 13 : 0) : rnd_below(&s, G.n);
		enc_key(key, k);
		full_check c = { .next = k, .h = h, .vsize = G.vsize };
		size_t got = 0;
		r = G.ad->scan(t, key, KEY_SIZE, SCAN_LEN, full_cb, &c, &got);
		uint64_t want_n = G.n - k < SCAN_LEN ? G.n - k : SCAN_LEN;
		if (r || c.bad || got != want_n) {
			fprintf(stderr, "%s: check: %s: scan from %" PRIu64 ": %zu pairs (expected %" PRIu64
					")%s%s\n", PROG, G.ad->name, k, got, want_n,
				c.bad ? ", wrong key or value" : "", r ? rc_str(r) : "");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
		h = mix(c.h, &got, sizeof(got));
	}
	x.scans = h;
	/* updates (each its own commit), each read back */
	for (unsigned i = 0; i < CHECK_UPDATES; i++) {
		uint64_t k = rnd_below(&s, G.n);
		enc_key(key, k);
		make_value(buf, G.vsize, k, 1000 + i);
		unsigned char back[MAX_VALUE];
		size_t vlen = 0;
		if ((r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize)) ||
		    (r = G.ad->get(t, key, KEY_SIZE, back, sizeof(back), &vlen)) ||
		    vlen != G.vsize || memcmp(back, buf, vlen) != 0) {
			fprintf(stderr, "%s: check: %s: update of %" PRIu64 ": %s\n", PROG, G.ad->name,
				k, r ? rc_str(r) : "read back a different value");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
	}
	if ((r = full_scan(t, &x.full1, NULL)))
		goto out;
	if (ref && ref->set &&
	    (ref->full0 != x.full0 || ref->gets != x.gets || ref->scans != x.scans ||
	     ref->full1 != x.full1)) {
		fprintf(stderr, "%s: check: %s returned different data than the first engine "
				"(full scan %s, gets %s, scans %s, after updates %s)\n", PROG, G.ad->name,
			ref->full0 == x.full0 ? "same" : "DIFFERENT", ref->gets == x.gets ? "same" : "DIFFERENT",
			ref->scans == x.scans ? "same" : "DIFFERENT",
			ref->full1 == x.full1 ? "same" : "DIFFERENT");
		r = PBE_BAD_DATA;
		goto out;
	}
	*d = x;
out:
	G.ad->thread_close(t);
	return r;
}

/* ---- one engine in one run ------------------------------------------------------------- */

static char open_msg[NADAPTERS][256];
static uint64_t data_bytes[NADAPTERS];

static int open_engine(const pbox_bench_config *cfg, size_t a, char **dir)
{
	G.ad = ADAPTERS[a];
	int r = pbox_bench_scratch_create(cfg, G.ad->name, dir);
	if (r) {
		fprintf(stderr, "%s: scratch directory: %s\n", PROG, strerror(-r));
		return r;
	}
	unsigned maxt = 1;
	for (size_t i = 0; i < cfg->nthreads; i++)
		if (cfg->threads[i] > maxt)
			maxt = cfg->threads[i];
	char msg[256] = "";
	pbe_open_options o = {
		.keys = G.n,
		.key_size = KEY_SIZE,
		.value_size = G.vsize,
		.budget_bytes = opt_budget,
		.durable = strcmp(opt_durability, "durable") == 0,
		.oom = oom_run,
		.lmdb_writemap = !strcmp(opt_lmdb_writemap, "on") ||
				 (!strcmp(opt_lmdb_writemap, "auto") &&
				  strcmp(opt_durability, "fast") == 0),
		.max_threads = maxt + 1,
		.msg = msg,
		.msg_len = sizeof(msg),
	};
	(void)pbox_bench_peak_rss_reset(); /* each engine instance reports its own peak */
	if ((r = G.ad->open(*dir, &o, &G.e))) {
		fprintf(stderr, "%s: %s: open: %s%s%s\n", PROG, G.ad->name, rc_str(r),
			msg[0] ? ": " : "", msg);
		pbox_bench_scratch_remove(*dir);
		*dir = NULL;
		return r;
	}
	snprintf(open_msg[a], sizeof(open_msg[a]), "%s", msg);
	return 0;
}

static int close_engine(char *dir)
{
	int r = G.ad->close(G.e);
	G.e = NULL;
	if (r)
		fprintf(stderr, "%s: %s: close: %s\n", PROG, G.ad->name, rc_str(r));
	pbox_bench_scratch_remove(dir);
	return r;
}

static int engine_run(const pbox_bench_config *cfg, size_t a, unsigned run, digests *ref)
{
	char *dir = NULL;
	int r = 0;
	const char *an = ADAPTERS[a]->name;
	if (want[W_FILL_SEQ]) { /* its own empty instance */
		pbox_bench_progress("run %u/%u %s fill-seq", run, cfg->runs, an);
		if ((r = open_engine(cfg, a, &dir)))
			return r;
		r = measure(W_FILL_SEQ, 1, 0, run, true);
		int cr = close_engine(dir);
		if (r || cr)
			return r ? r : cr;
	}
	bool rest = want[W_LOOKUP] || want[W_SCAN100] || want[W_YCSB_A] || want[W_COMMIT];
	if (!want[W_FILL_RANDOM] && !rest)
		return 0;
	if ((r = open_engine(cfg, a, &dir)))
		return r;
	pbox_bench_progress("run %u/%u %s fill-random%s", run, cfg->runs, an,
			    want[W_FILL_RANDOM] ? "" : " (load, not measured)");
	if ((r = measure(W_FILL_RANDOM, 1, 0, run, want[W_FILL_RANDOM])))
		goto out;
	pbe_info info;
	G.ad->info(G.e, &info);
	data_bytes[a] = info.data_bytes;
	if (opt_check) {
		pbox_bench_progress("run %u/%u %s check", run, cfg->runs, an);
		digests d;
		if ((r = check_contents(&d, ref)))
			goto out;
		if (!ref->set)
			*ref = d;
	}
	static const int order[] = { W_LOOKUP, W_SCAN100, W_YCSB_A, W_COMMIT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int w = order[i];
		if (!want[w])
			continue;
		bool switched = false;
		if (w == W_COMMIT && strcmp(opt_durability, "durable") != 0) {
			if ((r = G.ad->set_durable(G.e, true)))
				goto out;
			switched = true;
		}
		for (size_t ti = 0; ti < cfg->nthreads && !r; ti++) {
			pbox_bench_progress("run %u/%u %s %s threads=%u", run, cfg->runs, an, WNAME[w],
					    cfg->threads[ti]);
			r = measure(w, cfg->threads[ti], cfg->seconds, run, true);
		}
		if (switched) {
			int sr = G.ad->set_durable(G.e, false);
			r = r ? r : sr;
		}
		if (r)
			goto out;
	}
out:;
	int cr = close_engine(dir);
	return r ? r : cr;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void fmt_mib(char *b, size_t n, uint64_t bytes)
{
	snprintf(b, n, "%.1f MiB", (double)bytes / 1048576.0);
}

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, PROG,
			       "engine comparison: pagebox against LMDB on fills, lookups, scans, YCSB-A",
			       2.0, "1,2");
	cfg.extra = extra;
	cfg.nextra = sizeof(extra) / sizeof(extra[0]);
	cfg.usage_extra =
		"Engines: pagebox, lmdb (the baseline). Workloads: fill-random, fill-seq (N inserts in\n"
		"batches of 1000, one thread), lookup, scan100, ycsb-a, commit (each --seconds per\n"
		"thread count). Keys: 8-byte big-endian integers, a random permutation of [0, N).\n"
		"--budget below the data makes an out-of-memory run: LMDB (OS page cache) is then\n"
		"reported apart, not ranked. Settings of both engines: bench/README.md.\n";
	int pr = pbox_bench_parse_args(&cfg, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;
	if (cfg.quick)
		opt_check = true;
	if (!opt_keys)
		opt_keys = cfg.quick ? QUICK_KEYS : DEFAULT_KEYS;
	if (opt_keys > UINT32_MAX) {
		fprintf(stderr, "%s: --keys must be 1..%u\n", PROG, UINT32_MAX);
		return 2;
	}
	if (opt_value < 16 || opt_value > MAX_VALUE) {
		fprintf(stderr, "%s: --value-size must be 16..%u\n", PROG, MAX_VALUE);
		return 2;
	}
	if (strcmp(opt_durability, "durable") != 0 && strcmp(opt_durability, "fast") != 0) {
		fprintf(stderr, "%s: --durability must be durable or fast\n", PROG);
		return 2;
	}
	if (strcmp(opt_lmdb_writemap, "auto") && strcmp(opt_lmdb_writemap, "on") &&
	    strcmp(opt_lmdb_writemap, "off")) {
		fprintf(stderr, "%s: --lmdb-writemap must be auto, on or off\n", PROG);
		return 2;
	}
	for (size_t i = 0; i < opt_engines.n; i++) {
		bool known = false;
		for (size_t a = 0; a < NADAPTERS; a++)
			known |= strcmp(opt_engines.item[i], ADAPTERS[a]->name) == 0;
		if (!known) {
			fprintf(stderr, "%s: unknown engine '%s' (this build has pagebox, lmdb)\n", PROG,
				opt_engines.item[i]);
			return 2;
		}
	}
	if (!opt_workloads.n) {
		want[W_FILL_RANDOM] = want[W_LOOKUP] = want[W_SCAN100] = want[W_YCSB_A] = true;
	} else {
		for (size_t i = 0; i < opt_workloads.n; i++) {
			int w = -1;
			for (int k = 0; k < W_COUNT; k++)
				if (!strcmp(opt_workloads.item[i], WNAME[k]))
					w = k;
			if (w < 0) {
				fprintf(stderr, "%s: unknown workload '%s' (fill-random, fill-seq, lookup, "
						"scan100, ycsb-a, commit)\n", PROG, opt_workloads.item[i]);
				return 2;
			}
			want[w] = true;
		}
	}
	G.n = opt_keys;
	G.vsize = (uint32_t)opt_value;
	oom_run = opt_budget && opt_budget < G.n * (KEY_SIZE + G.vsize);
	bool have_lmdb = !opt_engines.n || pbox_bench_list_has(&opt_engines, BASELINE);
	if (pbox_bench_report_create(&R.csv, PROG, cfg.csv, NULL) ||
	    pbox_bench_report_create(&R.ranked, PROG, NULL, oom_run || !have_lmdb ? NULL : BASELINE) ||
	    pbox_bench_report_create(&R.unranked, PROG, NULL, NULL))
		return 2;
	G.perm = malloc(G.n * sizeof(*G.perm));
	if (!G.perm) {
		fprintf(stderr, "%s: out of memory for %" PRIu64 " keys\n", PROG, G.n);
		return 1;
	}
	if (want[W_YCSB_A])
		zipf_init(&G.z, G.n, ZIPF_THETA);

	char date[32];
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M", localtime(&now));

	int status = 0;
	digests ref; /* the first engine's, per run */
	size_t nselected = 0;
	size_t sel[NADAPTERS];
	for (size_t a = 0; a < NADAPTERS; a++)
		if (!opt_engines.n || pbox_bench_list_has(&opt_engines, ADAPTERS[a]->name))
			sel[nselected++] = a;
	for (unsigned run = 1; run <= cfg.runs && !status; run++) {
		G.seed = opt_seed + run;
		make_perm(G.seed);
		digests *rf = &ref;
		memset(rf, 0, sizeof(*rf));
		/* engines interleaved; the order alternates between runs */
		for (size_t i = 0; i < nselected && !status; i++) {
			size_t a = sel[(run % 2 == 1) ? i : nselected - 1 - i];
			if (engine_run(&cfg, a, run, rf))
				status = 1;
		}
	}
	pbox_bench_progress_done();

	printf("pbox-bench %s: keys %" PRIu64 ", value size %u, durability %s, %u run(s), %g s per "
	       "timed cell%s\n\n", date, G.n, G.vsize, opt_durability, cfg.runs, cfg.seconds,
	       opt_check ? ", contents checked" : "");
	for (size_t i = 0; i < nselected; i++) {
		size_t a = sel[i];
		char db[32];
		fmt_mib(db, sizeof(db), data_bytes[a]);
		printf("- %s %s: %s; data after the fill: %s", ADAPTERS[a]->name, ADAPTERS[a]->version,
		       open_msg[a], db);
		if (oom_run && data_bytes[a])
			printf(" (%.1fx the budget)", (double)data_bytes[a] / (double)opt_budget);
		printf("\n");
	}
	printf("\n");
	if (oom_run) {
		char b[32];
		fmt_mib(b, sizeof(b), opt_budget);
		printf("Out-of-memory run: budget %s. Ranked: engines that keep their data within it.\n\n", b);
		for (size_t i = 0; i < nselected; i++) {
			size_t a = sel[i];
			if (ADAPTERS[a]->bounded_cache && data_bytes[a] &&
			    data_bytes[a] < 4 * opt_budget)
				printf("Note: %s's data is only %.1fx the budget (BENCH.md asks for >= 4x).\n\n",
				       ADAPTERS[a]->name, (double)data_bytes[a] / (double)opt_budget);
		}
	}
	if (fill_print_reports(sel, nselected))
		status = 1;
	pbox_bench_report_print(R.ranked, stdout);
	if (oom_run) {
		bool any = false;
		for (size_t i = 0; i < nselected; i++)
			any |= !ADAPTERS[sel[i]]->bounded_cache;
		if (any) {
			printf("\nNot ranked — uses the OS page cache, not bounded by --budget:\n\n");
			pbox_bench_report_print(R.unranked, stdout);
		}
	}
	if (want[W_FILL_RANDOM] || want[W_FILL_SEQ])
		printf("\nfill-*: ops = keys inserted, latency = one batch of %u inserts with its "
		       "commit.", BATCH);
	if (want[W_SCAN100])
		printf("\nscan100: ops = scans of %u pairs.", SCAN_LEN);
	if (want[W_LOOKUP])
		printf("\nlookup: latency sampled on one operation in %u.", LOOKUP_SAMPLE_MASK + 1);
	printf("\n");
	if (opt_json && write_json(opt_json, &cfg, date))
		status = 1;
	pbox_bench_report_destroy(R.csv);
	pbox_bench_report_destroy(R.ranked);
	pbox_bench_report_destroy(R.unranked);
	free(R.j);
	free(G.perm);
	pbox_bench_config_fini(&cfg);
	return status;
}
