/*
 * pbox-bench — the engine comparison driver (../../shared/BENCH.md, "pbox-bench"): the same
 * key-value workloads on pagebox and on its peers (LMDB, RocksDB, WiredTiger, SQLite,
 * LevelDB: engine.h, one adapter each), engines interleaved within each run (run 1: every
 * engine, run 2: every engine, ...), the Markdown table with medians, min–max and the ratio
 * to a baseline engine (--baseline), one CSV row per run, a JSON file, SVG plots (gnuplot).
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
 *   lookup-zipf  lookup with keys by Zipfian(0.99) rank mapped through the run's permutation
 *                (so hot keys are scattered over the key space); every 16th op timed.
 *   ycsb-a       50% reads / 50% updates (put of a new version of the value, its own commit
 *                in the run's commit mode), keys Zipfian(0.99) as in lookup-zipf.
 *   ycsb-b       95% reads / 5% updates; ycsb-c 100% reads; ycsb-f 50% reads / 50%
 *                read-modify-writes (get, then put of the next version; one op); Zipfian keys.
 *   ycsb-e       95% short scans (start key Zipfian, length uniform in 1..100) / 5% inserts of
 *                new keys. The new keys are N, N+1, ... (YCSB's "ordered" insert order: they
 *                go above the loaded keys); scans check the loaded keys exactly and that any
 *                new keys come in ascending order.
 *   commit       single-key durable commits per thread (uniform keys, updates), always
 *                durable whatever --durability says; thread counts from --commit-threads.
 * The others run on the instance the fill-random built (or, when fill-random is not
 * measured, on one loaded the same way without timing), in the order lookup, lookup-zipf,
 * scan100, ycsb-c, ycsb-b, ycsb-a, ycsb-f, commit, ycsb-e (last: it adds keys).
 *
 * Zipfian ranks: the rejection-free generator of Gray et al. (as YCSB uses), theta 0.99,
 * ranks scrambled over the key space by the run's random permutation.
 *
 * Threads: --pin compact|scatter|none pins every worker (pbox/topo.h) when it starts; the
 * topology is printed first. --numa-node N binds the memory of the whole process (every
 * engine alike) to node N with hwloc before any engine starts, where the machine has more
 * than one node; with one node it says so and binds nothing. Engines' own background
 * threads are not pinned.
 *
 * Out-of-memory runs: --budget below the data (N x (8 + value size) bytes). Engines that can
 * keep their reads out of the OS page cache (bounded_cache: pagebox, RocksDB with direct
 * reads, WiredTiger with direct I/O for data) are ranked; the others (LMDB, LevelDB, SQLite)
 * are printed in a separate table marked "not ranked". The driver prints each engine's data
 * size after the fill and says when the data is less than 4x the budget.
 *
 * Sanitizer builds: under ThreadSanitizer the engines whose adapter sets tsan_skip are left
 * out of the default engine list, with the reason printed (their uninstrumented internals
 * synchronise through atomics TSan cannot see); naming one in --engines runs it anyway.
 */
#define _GNU_SOURCE
#include "engine.h"

#include "bench_util.h"

#include <pbox/topo.h>

#include <hwloc.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define PBE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PBE_TSAN 1
#endif
#endif
#ifndef PBE_TSAN
#define PBE_TSAN 0
#endif

extern char **environ;

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
#define YCSB_E_MAX_SCAN 100u	/* ycsb-e: scan lengths uniform in 1..100 */
#define DEFAULT_COMMIT_THREADS "1,2,4,8,16,32"
#define NO_NUMA UINT64_MAX

/* ---- options ------------------------------------------------------------------------------ */

static uint64_t opt_keys, opt_value = 100, opt_budget, opt_seed = 42, opt_numa = NO_NUMA;
static const char *opt_durability = "durable", *opt_json, *opt_lmdb_writemap = "auto";
static const char *opt_baseline, *opt_pin = "none", *opt_plot, *opt_commit_threads;
static pbox_bench_list opt_engines, opt_workloads;
static bool opt_check;

static const pbox_bench_option extra[] = {
	{ "engines", PBOX_BENCH_OPT_LIST, &opt_engines, "LIST",
	  "engines to run, in this order (default: every engine built in; list below)" },
	{ "workloads", PBOX_BENCH_OPT_LIST, &opt_workloads, "LIST",
	  "fill-random,fill-seq,lookup,lookup-zipf,scan100,ycsb-a,ycsb-b,ycsb-c,ycsb-e,ycsb-f,commit "
	  "(default: all)" },
	{ "commit-threads", PBOX_BENCH_OPT_STRING, &opt_commit_threads, "LIST",
	  "thread counts of the commit workload (default " DEFAULT_COMMIT_THREADS ")" },
	{ "baseline", PBOX_BENCH_OPT_STRING, &opt_baseline, "ENGINE",
	  "engine the ratio column compares with (default lmdb; pagebox in out-of-memory runs)" },
	{ "pin", PBOX_BENCH_OPT_STRING, &opt_pin, "compact|scatter|none",
	  "pin worker threads to processing units with hwloc (default none)" },
	{ "numa-node", PBOX_BENCH_OPT_UINT, &opt_numa, "N",
	  "bind the process's memory (every engine's) to NUMA node N (machines with several)" },
	{ "plot", PBOX_BENCH_OPT_STRING, &opt_plot, "DIR",
	  "write SVG plots (gnuplot) and their data into DIR" },
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

enum {
	W_FILL_RANDOM, W_FILL_SEQ, W_LOOKUP, W_LOOKUP_ZIPF, W_SCAN100, W_YCSB_A, W_YCSB_B,
	W_YCSB_C, W_YCSB_E, W_YCSB_F, W_COMMIT, W_COUNT
};
static const char *const WNAME[W_COUNT] = { "fill-random", "fill-seq", "lookup", "lookup-zipf",
					    "scan100", "ycsb-a", "ycsb-b", "ycsb-c", "ycsb-e",
					    "ycsb-f", "commit" };
/* reads in percent of the YCSB mixes on existing keys (the rest: updates, or for ycsb-f
 * read-modify-writes) */
static const unsigned YCSB_READ_PCT[W_COUNT] = { [W_YCSB_A] = 50, [W_YCSB_B] = 95,
						 [W_YCSB_C] = 100, [W_YCSB_F] = 50 };
static bool want[W_COUNT];

static const pbe_adapter *const ADAPTERS[] = {
	&pbe_pagebox_adapter, &pbe_lmdb_adapter,
#ifdef PBE_HAVE_ROCKSDB
	&pbe_rocksdb_adapter,
#endif
#ifdef PBE_HAVE_WIREDTIGER
	&pbe_wiredtiger_adapter,
#endif
#ifdef PBE_HAVE_SQLITE
	&pbe_sqlite_adapter,
#endif
#ifdef PBE_HAVE_LEVELDB
	&pbe_leveldb_adapter,
#endif
};
#define NADAPTERS (sizeof(ADAPTERS) / sizeof(ADAPTERS[0]))
static const char *baseline; /* the ratio column's engine, or NULL */
static unsigned commit_threads[PBOX_BENCH_MAX_THREADS];
static size_t ncommit_threads;
static pbox_topo *topo;
static pbox_pin_policy pin_policy;
static size_t sel[NADAPTERS], nsel;    /* the engines run, in --engines order */
static char open_msg[NADAPTERS][256];  /* each engine's settings line from open */
static uint64_t data_bytes[NADAPTERS]; /* each engine's data after the last fill */

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
#define PBE_PIN_FAILED (-49998) /* --pin: the OS refused (the driver's own code) */

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
	_Atomic uint64_t next_key; /* ycsb-e: the next new key (N, N+1, ... per instance) */
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
	return rc == PBE_BAD_DATA ? "wrong data" : rc == PBE_PIN_FAILED ? "pinning failed" :
		G.ad->strerror(rc);
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
	uint64_t s = rnd_seed(G.seed, (uint64_t)G.workload, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	bool zipfian = G.workload == W_LOOKUP_ZIPF;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK; i++, n++) {
			uint64_t k = zipfian ? G.perm[zipf_next(&G.z, &s)] : rnd_below(&s, G.n);
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
	uint64_t next; /* the key expected next (past the loaded keys: the least allowed) */
	uint32_t vsize;
	bool bad;
} scan_check;

/* Loaded keys [0, N) must come exactly in order; keys ycsb-e added (N and above) only in
 * ascending order (another thread's insert may be in flight). */
static int scan_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_check *c = arg;
	uint64_t k = klen == KEY_SIZE ? dec_key(key) : 0;
	if (klen != KEY_SIZE || !value_ok(val, vlen, c->vsize, key) ||
	    (c->next < G.n ? k != c->next : k < c->next)) {
		c->bad = true;
		return 1;
	}
	c->next = k + 1;
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

/* ycsb-a, -b, -c, -f: Zipfian keys; reads, updates or read-modify-writes by the mix. */
static void w_ycsb(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, (uint64_t)G.workload, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	unsigned read_pct = YCSB_READ_PCT[G.workload];
	bool rmw = G.workload == W_YCSB_F;
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = G.perm[zipf_next(&G.z, &s)];
		enc_key(key, k);
		bool read = rnd_below(&s, 100) < read_pct;
		int r = 0;
		const char *what = read ? "get" : "put";
		size_t vlen = G.vsize;
		uint64_t t0 = pbox_bench_now_ns();
		if (!read && rmw) { /* read, then write the next version */
			what = "read-modify-write: get";
			r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (!r && value_ok(buf, vlen, G.vsize, key)) {
				what = "read-modify-write: put";
				enc_key(buf + 8, dec_key(buf + 8) + 1);
				r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize);
			}
		} else if (!read) {
			make_value(buf, G.vsize, k, ((uint64_t)tid + 1) << 40 | n);
			r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize);
		} else {
			r = G.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
		}
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "%s of key %" PRIu64, what, k);
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

/* ycsb-e: 95% scans of 1..100 pairs from a Zipfian key, 5% inserts of new keys. */
static void w_ycsb_e(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &G.w[tid];
	pbe_thread *t = G.th[tid];
	uint64_t s = rnd_seed(G.seed, W_YCSB_E, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		bool insert = rnd_below(&s, 100) < 5;
		int r;
		if (insert) {
			uint64_t k = atomic_fetch_add_explicit(&G.next_key, 1, memory_order_relaxed);
			enc_key(key, k);
			make_value(buf, G.vsize, k, 0);
			uint64_t t0 = pbox_bench_now_ns();
			r = G.ad->put(t, key, KEY_SIZE, buf, G.vsize);
			pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r) {
				fail_at(w, r, "insert of key %" PRIu64, k);
				break;
			}
		} else {
			uint64_t k = G.perm[zipf_next(&G.z, &s)];
			size_t len = 1 + (size_t)rnd_below(&s, YCSB_E_MAX_SCAN);
			enc_key(key, k);
			scan_check c = { .next = k, .vsize = G.vsize };
			size_t got = 0;
			uint64_t t0 = pbox_bench_now_ns();
			r = G.ad->scan(t, key, KEY_SIZE, len, scan_cb, &c, &got);
			pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			uint64_t least = G.n - k < len ? G.n - k : len;
			if (r && !c.bad) {
				fail_at(w, r, "scan from key %" PRIu64, k);
				break;
			}
			if (c.bad || got < least || got > len) {
				fail_at(w, PBE_BAD_DATA, "scan of %zu from key %" PRIu64 ": %zu pairs%s",
					len, k, got, c.bad ? " (wrong key or value)" : "");
				break;
			}
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
static int fill_print_reports(void)
{
	static const int worder[W_COUNT] = { W_FILL_RANDOM, W_FILL_SEQ, W_LOOKUP, W_LOOKUP_ZIPF,
					     W_SCAN100, W_YCSB_A, W_YCSB_B, W_YCSB_C, W_YCSB_E,
					     W_YCSB_F, W_COMMIT };
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
		   ", \"out_of_memory\": %s, \"runs\": %u, \"seconds\": %g,\n",
		PROG, date, G.n, G.vsize, opt_durability, opt_budget, oom_run ? "true" : "false",
		cfg->runs, cfg->seconds);
	char topo_desc[256] = "unknown";
	if (topo)
		pbox_topo_describe(topo, topo_desc, sizeof(topo_desc));
	fprintf(f, "  \"baseline\": %s%s%s, \"pin\": \"%s\", \"topology\": \"%s\",\n",
		baseline ? "\"" : "", baseline ? baseline : "null", baseline ? "\"" : "", opt_pin,
		topo_desc);
	fprintf(f, "  \"engines\": [");
	for (size_t i = 0; i < nsel; i++) {
		size_t a = sel[i];
		fprintf(f, "%s{\"name\": \"%s\", \"version\": \"%s\", \"bounded_cache\": %s, "
			   "\"settings\": \"", i ? ", " : "", ADAPTERS[a]->name, ADAPTERS[a]->version,
			ADAPTERS[a]->bounded_cache ? "true" : "false");
		for (const char *c = open_msg[a]; *c; c++) /* JSON string escapes */
			if (*c == '"' || *c == '\\')
				fprintf(f, "\\%c", *c);
			else if ((unsigned char)*c >= 0x20)
				fputc(*c, f);
		fprintf(f, "\", \"data_bytes\": %" PRIu64 "}", data_bytes[a]);
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

/* Every worker starts here: pinned by --pin (the pinning is inside the timed interval:
 * one system call per thread), then the workload's function. */
static void w_pinned(void *arg, unsigned tid, const _Atomic bool *stop)
{
	pbox_bench_worker fn = *(const pbox_bench_worker *)arg;
	if (topo && pin_policy != PBOX_PIN_NONE) {
		int r = pbox_topo_pin_thread(topo, pin_policy, tid, NULL);
		if (r) {
			fail_at(&G.w[tid], PBE_PIN_FAILED, "pinning thread %u: %s", tid, strerror(-r));
			return;
		}
	}
	fn(NULL, tid, stop);
}

/* Run workload w on nt threads (fills: seconds = 0, until done) and report it (unless
 * record is false: an untimed load). */
static int measure(int w, unsigned nt, double seconds, unsigned run, bool record)
{
	static const pbox_bench_worker fn[W_COUNT] = {
		[W_FILL_RANDOM] = w_fill, [W_FILL_SEQ] = w_fill, [W_LOOKUP] = w_lookup,
		[W_LOOKUP_ZIPF] = w_lookup, [W_SCAN100] = w_scan, [W_YCSB_A] = w_ycsb,
		[W_YCSB_B] = w_ycsb, [W_YCSB_C] = w_ycsb, [W_YCSB_E] = w_ycsb_e, [W_YCSB_F] = w_ycsb,
		[W_COMMIT] = w_commit,
	};
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
	r = pbox_bench_run_threads(nt, seconds, w_pinned, (void *)&fn[w], &tm);
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
	for (size_t i = 0; want[W_COMMIT] && i < ncommit_threads; i++)
		if (commit_threads[i] > maxt)
			maxt = commit_threads[i];
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
	bool rest = false;
	for (int w = W_LOOKUP; w < W_COUNT; w++)
		rest |= want[w];
	if (!want[W_FILL_RANDOM] && !rest)
		return 0;
	if ((r = open_engine(cfg, a, &dir)))
		return r;
	atomic_store(&G.next_key, G.n);
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
	static const int order[] = { W_LOOKUP, W_LOOKUP_ZIPF, W_SCAN100, W_YCSB_C, W_YCSB_B,
				     W_YCSB_A, W_YCSB_F, W_COMMIT, W_YCSB_E };
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
		const unsigned *tl = w == W_COMMIT ? commit_threads : cfg->threads;
		size_t ntl = w == W_COMMIT ? ncommit_threads : cfg->nthreads;
		for (size_t ti = 0; ti < ntl && !r; ti++) {
			pbox_bench_progress("run %u/%u %s %s threads=%u", run, cfg->runs, an, WNAME[w],
					    tl[ti]);
			r = measure(w, tl[ti], cfg->seconds, run, true);
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

/* ---- plots (gnuplot) ------------------------------------------------------------------ */

/* The median ops/s of (workload, threads, engine) over its runs; < 0 if not measured. */
static double median_ops(int w, unsigned threads, const char *engine)
{
	double v[256];
	size_t n = 0;
	for (size_t i = 0; i < R.nj && n < sizeof(v) / sizeof(v[0]); i++) {
		const jrow *j = &R.j[i];
		if (j->workload == w && j->r.threads == threads && !strcmp(j->r.engine, engine) &&
		    j->r.seconds > 0)
			v[n++] = (double)j->r.ops / j->r.seconds;
	}
	return n ? pbox_bench_summarize(v, n).median : -1;
}

static bool measured_at(int w, unsigned threads)
{
	for (size_t i = 0; i < R.nj; i++)
		if (R.j[i].workload == w && R.j[i].r.threads == threads)
			return true;
	return false;
}

static void dat_header(FILE *f, const char *first)
{
	fprintf(f, "%s", first);
	for (size_t e = 0; e < nsel; e++) {
		const pbe_adapter *ad = ADAPTERS[sel[e]];
		/* gnuplot's columnheader: one word; unranked engines marked */
		fprintf(f, " %s%s", ad->name, oom_run && !ad->bounded_cache ? "(OS-cache)" : "");
	}
	fprintf(f, "\n");
}

static void dat_row(FILE *f, int w, unsigned threads)
{
	for (size_t e = 0; e < nsel; e++) {
		double m = median_ops(w, threads, ADAPTERS[sel[e]]->name);
		if (m < 0)
			fprintf(f, " -");
		else
			fprintf(f, " %.1f", m);
	}
	fprintf(f, "\n");
}

static FILE *plot_open(const char *dir, const char *name, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
	return f;
}

/* A lines plot of one workload's median ops/s against thread counts, one line per engine. */
static int plot_threads(FILE *gp, const char *dir, int w, const unsigned *tl, size_t ntl,
			const char *name, const char *title)
{
	bool any = false;
	for (size_t i = 0; i < ntl; i++)
		any |= measured_at(w, tl[i]);
	if (!any)
		return 0;
	char path[4096], file[256];
	snprintf(file, sizeof(file), "%s.dat", name);
	FILE *f = plot_open(dir, file, path, sizeof(path));
	if (!f)
		return -errno;
	dat_header(f, "threads");
	for (size_t i = 0; i < ntl; i++) {
		if (!measured_at(w, tl[i]))
			continue;
		fprintf(f, "%u", tl[i]);
		dat_row(f, w, tl[i]);
	}
	if (fclose(f))
		return -errno;
	fprintf(gp, "reset\nset terminal svg size 900,520 dynamic font 'sans,11'\n"
		    "set datafile missing '-'\nset key outside right top\nset grid\n"
		    "set logscale y\nset logscale x 2\nset xlabel 'threads'\n"
		    "set ylabel 'operations/s (median)'\nset title '%s'\n"
		    "set output '%s/%s.svg'\n"
		    "plot for [i=2:%zu] '%s' using 1:i title columnheader(i) with linespoints lw 2\n",
		    title, dir, name, nsel + 1, path);
	return 0;
}

static int write_plots(const char *dir, const pbox_bench_config *cfg)
{
	if (strchr(dir, '\'') || strchr(dir, '\n')) {
		fprintf(stderr, "%s: --plot: the directory name may not contain ' or a newline\n", PROG);
		return -EINVAL;
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		fprintf(stderr, "%s: --plot %s: %s\n", PROG, dir, strerror(errno));
		return -errno;
	}
	char gpath[4096], path[4096];
	FILE *gp = plot_open(dir, "plots.gp", gpath, sizeof(gpath));
	if (!gp)
		return -errno;
	int r = 0;
	/* throughput per engine per workload, one plot per thread count */
	unsigned tl[2 * PBOX_BENCH_MAX_THREADS + 1];
	size_t ntl = 0;
	tl[ntl++] = 1;
	for (size_t i = 0; i < cfg->nthreads; i++)
		tl[ntl++] = cfg->threads[i];
	for (size_t ti = 0; ti < ntl && !r; ti++) {
		bool dup = false;
		for (size_t k = 0; k < ti; k++)
			dup |= tl[k] == tl[ti];
		bool any = false;
		for (int w = 0; w < W_COUNT; w++)
			any |= w != W_COMMIT && measured_at(w, tl[ti]);
		if (dup || !any)
			continue;
		char name[64];
		snprintf(name, sizeof(name), "throughput-t%u.dat", tl[ti]);
		FILE *f = plot_open(dir, name, path, sizeof(path));
		if (!f) {
			r = -errno;
			break;
		}
		dat_header(f, "workload");
		for (int w = 0; w < W_COUNT; w++) {
			if (w == W_COMMIT || !measured_at(w, tl[ti]))
				continue;
			fprintf(f, "%s", WNAME[w]);
			dat_row(f, w, tl[ti]);
		}
		if (fclose(f)) {
			r = -errno;
			break;
		}
		fprintf(gp, "reset\nset terminal svg size 1000,520 dynamic font 'sans,11'\n"
			    "set datafile missing '-'\nset key outside right top\nset grid ytics\n"
			    "set style data histograms\nset style histogram clustered gap 1\n"
			    "set style fill solid 0.85 border -1\nset logscale y\nset yrange [1:*]\n"
			    "set xtics rotate by -30\nset ylabel 'operations/s (median, log scale)'\n"
			    "set title 'Throughput per workload, %u thread%s, %" PRIu64 " keys, %s%s'\n"
			    "set output '%s/throughput-t%u.svg'\n"
			    "plot for [i=2:%zu] '%s' using i:xtic(1) title columnheader(i)\n",
			    tl[ti], tl[ti] == 1 ? "" : "s", G.n, opt_durability,
			    oom_run ? ", out of memory" : "", dir, tl[ti], nsel + 1, path);
	}
	if (!r)
		r = plot_threads(gp, dir, W_COMMIT, commit_threads, ncommit_threads, "commit-threads",
				 "Durable single-key commits against threads");
	if (!r)
		r = plot_threads(gp, dir, W_LOOKUP, cfg->threads, cfg->nthreads, "lookup-threads",
				 "Uniform lookups against threads");
	if (fclose(gp) && !r)
		r = -errno;
	if (r) {
		fprintf(stderr, "%s: --plot: %s\n", PROG, strerror(-r));
		return r;
	}
	/* gnuplot itself */
	char *argv[] = { "gnuplot", gpath, NULL };
	pid_t pid;
	int e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
	if (e) {
		printf("\nPlots skipped: gnuplot %s (install gnuplot-nox; the data and the script "
		       "are in %s: run gnuplot %s).\n",
		       e == ENOENT ? "is not installed" : strerror(e), dir, gpath);
		return 0;
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: --plot: gnuplot %s failed\n", PROG, gpath);
		return -EIO;
	}
	printf("\nPlots: %s/*.svg (gnuplot script %s).\n", dir, gpath);
	return 0;
}

/* ---- topology, pinning, NUMA ---------------------------------------------------------- */

/* Print the topology; set up pinning and the NUMA binding. Returns 0 or 2 (usage). */
static int setup_topology(void)
{
	if (pbox_pin_policy_parse(opt_pin, &pin_policy)) {
		fprintf(stderr, "%s: --pin must be compact, scatter or none\n", PROG);
		return 2;
	}
	int r = pbox_topo_open(&topo);
	if (r) {
		topo = NULL;
		printf("Topology: not available (hwloc: %d)%s\n", r,
		       pin_policy != PBOX_PIN_NONE ? "; threads not pinned" : "");
		pin_policy = PBOX_PIN_NONE;
		if (opt_numa != NO_NUMA) {
			fprintf(stderr, "%s: --numa-node needs the topology\n", PROG);
			return 2;
		}
		return 0;
	}
	char d[256];
	pbox_topo_describe(topo, d, sizeof(d));
	printf("Topology: %s; threads %s\n", d,
	       pin_policy == PBOX_PIN_COMPACT ? "pinned compact (thread i on PU i, logical order)" :
	       pin_policy == PBOX_PIN_SCATTER ? "pinned scatter (spread over nodes, sockets, cores)" :
						"not pinned");
	if (opt_numa == NO_NUMA)
		return 0;
	unsigned nodes = pbox_topo_numa_nodes(topo);
	if (nodes <= 1) {
		printf("NUMA: this machine has one NUMA node; --numa-node %" PRIu64 " binds nothing.\n",
		       opt_numa);
		if (opt_numa != 0) {
			fprintf(stderr, "%s: --numa-node %" PRIu64 ": the only node is 0\n", PROG, opt_numa);
			return 2;
		}
		return 0;
	}
	if (opt_numa >= nodes) {
		fprintf(stderr, "%s: --numa-node %" PRIu64 ": the machine has nodes 0..%u\n", PROG,
			opt_numa, nodes - 1);
		return 2;
	}
	/* Bind the main thread's memory policy before any engine or worker thread exists: Linux
	 * threads inherit it, so every engine's memory (pagebox's pool included) comes from the
	 * node. */
	hwloc_topology_t ht;
	int ok = hwloc_topology_init(&ht) == 0;
	if (ok && hwloc_topology_load(ht) != 0) {
		hwloc_topology_destroy(ht);
		ok = 0;
	}
	hwloc_obj_t node = ok ? hwloc_get_obj_by_type(ht, HWLOC_OBJ_NUMANODE, (unsigned)opt_numa)
			      : NULL;
	if (!node || hwloc_set_membind(ht, node->nodeset, HWLOC_MEMBIND_BIND,
				       HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
		fprintf(stderr, "%s: --numa-node %" PRIu64 ": binding memory failed: %s\n", PROG,
			opt_numa, strerror(errno));
		if (ok)
			hwloc_topology_destroy(ht);
		return 2;
	}
	hwloc_topology_destroy(ht);
	printf("NUMA: %u nodes; the memory of every engine is bound to node %" PRIu64 ".\n", nodes,
	       opt_numa);
	return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void fmt_mib(char *b, size_t n, uint64_t bytes)
{
	snprintf(b, n, "%.1f MiB", (double)bytes / 1048576.0);
}

static int find_adapter(const char *name)
{
	for (size_t a = 0; a < NADAPTERS; a++)
		if (!strcmp(name, ADAPTERS[a]->name))
			return (int)a;
	return -1;
}

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, PROG,
			       "engine comparison: pagebox against LMDB, RocksDB, WiredTiger, SQLite "
			       "and LevelDB",
			       2.0, "1,2");
	cfg.extra = extra;
	cfg.nextra = sizeof(extra) / sizeof(extra[0]);
	char usage[2048], names[256] = "";
	for (size_t a = 0; a < NADAPTERS; a++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 a ? ", " : "", ADAPTERS[a]->name);
	snprintf(usage, sizeof(usage),
		 "Engines built in: %s.\n"
		 "Workloads: fill-random, fill-seq (N inserts in batches of 1000, one thread), lookup,\n"
		 "lookup-zipf, scan100, ycsb-a (50%% reads/50%% updates), ycsb-b (95/5), ycsb-c (reads),\n"
		 "ycsb-e (95%% scans of 1..100 / 5%% inserts), ycsb-f (50%% reads/50%% read-modify-write)\n"
		 "(each --seconds per thread count of --threads), commit (single-key durable commits,\n"
		 "per thread count of --commit-threads). YCSB and lookup-zipf keys: Zipfian 0.99.\n"
		 "Keys: 8-byte big-endian integers, a random permutation of [0, N).\n"
		 "--budget below the data makes an out-of-memory run: engines that read through the OS\n"
		 "page cache (lmdb, sqlite, leveldb) are then reported apart, not ranked.\n"
		 "Output: a Markdown table on stdout; --csv (BENCH.md schema), --json, --plot.\n"
		 "Engine settings: bench/README.md.\n", names);
	cfg.usage_extra = usage;
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
	if (pbox_bench_parse_threads(opt_commit_threads ? opt_commit_threads : DEFAULT_COMMIT_THREADS,
				     commit_threads, PBOX_BENCH_MAX_THREADS, &ncommit_threads)) {
		fprintf(stderr, "%s: --commit-threads: a list of thread counts, e.g. 1,2,4\n", PROG);
		return 2;
	}
	for (size_t i = 0; i < cfg.nthreads + ncommit_threads; i++) {
		unsigned t = i < cfg.nthreads ? cfg.threads[i] : commit_threads[i - cfg.nthreads];
		if (t > PBOX_BENCH_MAX_THREADS) {
			fprintf(stderr, "%s: at most %u threads\n", PROG, PBOX_BENCH_MAX_THREADS);
			return 2;
		}
	}
	for (size_t i = 0; i < opt_engines.n; i++) {
		int a = find_adapter(opt_engines.item[i]);
		if (a < 0) {
			fprintf(stderr, "%s: unknown engine '%s' (this build has %s)\n", PROG,
				opt_engines.item[i], names);
			return 2;
		}
		bool dup = false;
		for (size_t k = 0; k < nsel; k++)
			dup |= sel[k] == (size_t)a;
		if (!dup)
			sel[nsel++] = (size_t)a;
	}
	if (!opt_engines.n) {
		for (size_t a = 0; a < NADAPTERS; a++) {
			if (PBE_TSAN && ADAPTERS[a]->tsan_skip) {
				printf("Skipping %s in this ThreadSanitizer build: %s (name it in --engines "
				       "to run it anyway).\n", ADAPTERS[a]->name, ADAPTERS[a]->tsan_skip);
				continue;
			}
			sel[nsel++] = a;
		}
	}
	if (!opt_workloads.n) {
		for (int w = 0; w < W_COUNT; w++)
			want[w] = true;
	} else {
		for (size_t i = 0; i < opt_workloads.n; i++) {
			int w = -1;
			for (int k = 0; k < W_COUNT; k++)
				if (!strcmp(opt_workloads.item[i], WNAME[k]))
					w = k;
			if (w < 0) {
				fprintf(stderr, "%s: unknown workload '%s' (see --help)\n", PROG,
					opt_workloads.item[i]);
				return 2;
			}
			want[w] = true;
		}
	}
	G.n = opt_keys;
	G.vsize = (uint32_t)opt_value;
	oom_run = opt_budget && opt_budget < G.n * (KEY_SIZE + G.vsize);
	/* the baseline: --baseline, else lmdb (in memory) or pagebox (out of memory, where
	 * lmdb is not ranked); no ratio column when it is not among the engines run */
	const char *bl = opt_baseline ? opt_baseline : oom_run ? "pagebox" : "lmdb";
	int bla = find_adapter(bl);
	if (opt_baseline && bla < 0) {
		fprintf(stderr, "%s: --baseline: unknown engine '%s'\n", PROG, opt_baseline);
		return 2;
	}
	for (size_t i = 0; i < nsel && bla >= 0; i++)
		if (sel[i] == (size_t)bla)
			baseline = bl;
	if (baseline && oom_run && !ADAPTERS[bla]->bounded_cache) {
		fprintf(stderr, "%s: --baseline %s: not ranked in an out-of-memory run (it reads "
				"through the OS page cache); no ratio column\n", PROG, bl);
		baseline = NULL;
	}
	if (pbox_bench_report_create(&R.csv, PROG, cfg.csv, NULL) ||
	    pbox_bench_report_create(&R.ranked, PROG, NULL, baseline) ||
	    pbox_bench_report_create(&R.unranked, PROG, NULL, NULL))
		return 2;
	int tr = setup_topology();
	if (tr)
		return tr;
	fflush(stdout);
	G.perm = malloc(G.n * sizeof(*G.perm));
	if (!G.perm) {
		fprintf(stderr, "%s: out of memory for %" PRIu64 " keys\n", PROG, G.n);
		return 1;
	}
	if (want[W_LOOKUP_ZIPF] || want[W_YCSB_A] || want[W_YCSB_B] || want[W_YCSB_C] ||
	    want[W_YCSB_E] || want[W_YCSB_F])
		zipf_init(&G.z, G.n, ZIPF_THETA);

	char date[32];
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M", localtime(&now));

	int status = 0;
	digests ref; /* the first engine's, per run */
	for (unsigned run = 1; run <= cfg.runs && !status; run++) {
		G.seed = opt_seed + run;
		make_perm(G.seed);
		digests *rf = &ref;
		memset(rf, 0, sizeof(*rf));
		/* engines interleaved; the order alternates between runs */
		for (size_t i = 0; i < nsel && !status; i++) {
			size_t a = sel[(run % 2 == 1) ? i : nsel - 1 - i];
			if (engine_run(&cfg, a, run, rf))
				status = 1;
		}
	}
	pbox_bench_progress_done();

	printf("\npbox-bench %s: keys %" PRIu64 ", value size %u, durability %s, %u run(s), %g s per "
	       "timed cell%s; ratios against %s\n\n", date, G.n, G.vsize, opt_durability, cfg.runs,
	       cfg.seconds, opt_check ? ", contents checked" : "",
	       baseline ? baseline : "no engine (the baseline was not run)");
	for (size_t i = 0; i < nsel; i++) {
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
		for (size_t i = 0; i < nsel; i++) {
			size_t a = sel[i];
			if (ADAPTERS[a]->bounded_cache && data_bytes[a] &&
			    data_bytes[a] < 4 * opt_budget)
				printf("Note: %s's data is only %.1fx the budget (BENCH.md asks for >= 4x).\n\n",
				       ADAPTERS[a]->name, (double)data_bytes[a] / (double)opt_budget);
		}
	}
	if (fill_print_reports())
		status = 1;
	pbox_bench_report_print(R.ranked, stdout);
	if (oom_run) {
		bool any = false;
		for (size_t i = 0; i < nsel; i++)
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
	if (want[W_YCSB_E])
		printf("\nycsb-e: ops = scans of 1..%u pairs and inserts.", YCSB_E_MAX_SCAN);
	if (want[W_YCSB_F])
		printf("\nycsb-f: a read-modify-write (get, then put) is one op.");
	if (want[W_LOOKUP] || want[W_LOOKUP_ZIPF])
		printf("\nlookup, lookup-zipf: latency sampled on one operation in %u.",
		       LOOKUP_SAMPLE_MASK + 1);
	printf("\n");
	if (opt_json && write_json(opt_json, &cfg, date))
		status = 1;
	if (opt_plot && !status && write_plots(opt_plot, &cfg))
		status = 1;
	pbox_bench_report_destroy(R.csv);
	pbox_bench_report_destroy(R.ranked);
	pbox_bench_report_destroy(R.unranked);
	free(R.j);
	free(G.perm);
	if (topo)
		pbox_topo_close(topo);
	pbox_bench_config_fini(&cfg);
	return status;
}
