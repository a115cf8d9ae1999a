/*
 * bench_engine_run.c — pbox-bench: one engine in one run. The run's key permutation and
 * Zipfian generator, the workload workers, one measurement (threads released together,
 * stopped after --seconds, their operations, latencies and errors collected into a row),
 * and the sequence of instances and workloads for one engine (pbe__engine_run).
 *
 * Invariants:
 *   - every engine of a run sees the same operation sequence: the permutation is drawn once
 *     per run (pbe__make_perm) and each worker's random stream is a function of the run's
 *     seed, the workload and the thread number only;
 *   - a worker never trusts what it read: every value must carry its key, every scan must
 *     return exactly the consecutive loaded keys it asked for (fewer only at the end of the
 *     key space), so an adapter cannot measure nothing; a mismatch is PBE_BAD_DATA and ends
 *     the program with a message naming the engine, workload, thread and key;
 *   - fill-seq gets its own empty instance; every other workload runs on the instance
 *     fill-random built (or an identical untimed load), in a fixed order ending with
 *     ycsb-e, the only one that adds keys; each instance lives in a fresh scratch directory
 *     that is removed when the instance is closed;
 *   - `commit` is always durable: in a fast run the instance is switched to durable commits
 *     around it and back afterwards;
 *   - every cell measured on the filled instance (every workload but the fills, at every
 *     thread count) is preceded by the settle step, untimed and the same for every engine:
 *     the adapter's settle (checkpoint, flush and compaction, sync: engine.h), timed apart
 *     and reported as information, then for read cells (all but `commit`) the warm-up:
 *     --warmup pairs read on one thread with the workload's key choice, the same keys for
 *     every engine of the run. Nothing of either enters a measured rate.
 *
 * Threads: workers write only their own pbe__run.w[tid] (128-byte aligned, no shared line
 * in the hot loop) and take new ycsb-e keys with an atomic fetch_add on pbe__run.next_key;
 * everything else in pbe__run is set before the threads start. The thread runner
 * (bench_util.h) publishes the workers' results by joining them.
 */
#define _GNU_SOURCE
#include "bench_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Zipfian ranks ----------------------------------------------------------------------- */

/* Zipfian ranks in [0, n) with parameter theta, by the rejection-free method of Gray et al.
 * ("Quickly generating billion-record synthetic databases", SIGMOD 1994), as YCSB does. */
void pbe__zipf_init(zipf *z, uint64_t n, double theta)
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

/* ---- run state ----------------------------------------------------------------------------- */

pbe__run_state pbe__run;
pbe__settle_stats pbe__settle[PBE__NADAPTERS];

int pbe__dvec_push(pbe__dvec *d, double x)
{
	if (d->n == d->cap) {
		size_t nc = d->cap ? 2 * d->cap : 16;
		double *nv = realloc(d->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->v = nv;
		d->cap = nc;
	}
	d->v[d->n++] = x;
	return 0;
}

void pbe__make_perm(uint64_t seed)
{
	for (uint64_t i = 0; i < pbe__run.n; i++)
		pbe__run.perm[i] = (uint32_t)i;
	uint64_t s = rnd_seed(seed, 0xfeed, 0);
	for (uint64_t i = pbe__run.n - 1; i > 0; i--) { /* Fisher-Yates */
		uint64_t j = rnd_below(&s, i + 1);
		uint32_t t = pbe__run.perm[i];
		pbe__run.perm[i] = pbe__run.perm[j];
		pbe__run.perm[j] = t;
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

const char *pbe__rc_str(int rc)
{
	return rc == PBE_BAD_DATA ? "wrong data" : rc == PBE_PIN_FAILED ? "pinning failed" :
		pbe__run.ad->strerror(rc);
}

/* reads in percent of the YCSB mixes on existing keys (the rest: updates, or for ycsb-f
 * read-modify-writes) */
static const unsigned YCSB_READ_PCT[W_COUNT] = { [W_YCSB_A] = 50, [W_YCSB_B] = 95,
						 [W_YCSB_C] = 100, [W_YCSB_F] = 50 };

/* ---- workers ------------------------------------------------------------------------------- */

static void w_fill(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	(void)stop;
	worker *w = &pbe__run.w[tid];
	unsigned char *keys = malloc((size_t)BATCH * KEY_SIZE);
	unsigned char *vals = malloc((size_t)BATCH * pbe__run.vsize);
	pbe_kv *kv = malloc(BATCH * sizeof(*kv));
	if (!keys || !vals || !kv) {
		fail_at(w, -ENOMEM, "fill buffers");
		goto out;
	}
	for (uint64_t i = 0; i < pbe__run.n; i += BATCH) {
		size_t nb = pbe__run.n - i < BATCH ? (size_t)(pbe__run.n - i) : BATCH;
		for (size_t j = 0; j < nb; j++) {
			uint64_t k = pbe__run.seq ? i + j : pbe__run.perm[i + j];
			enc_key(keys + j * KEY_SIZE, k);
			make_value(vals + j * pbe__run.vsize, pbe__run.vsize, k, 0);
			kv[j] = (pbe_kv){ keys + j * KEY_SIZE, KEY_SIZE, vals + j * pbe__run.vsize,
					  pbe__run.vsize };
		}
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbe__run.ad->put_batch(pbe__run.th[tid], kv, nb,
					       pbe__run.seq ? PBE_BATCH_SEQUENTIAL : 0);
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
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, (uint64_t)pbe__run.workload, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	bool zipfian = pbe__run.workload == W_LOOKUP_ZIPF;
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < STOP_CHECK; i++, n++) {
			uint64_t k = zipfian ? pbe__run.perm[zipf_next(&pbe__run.z, &s)]
					     : rnd_below(&s, pbe__run.n);
			enc_key(key, k);
			bool timed = (n & LOOKUP_SAMPLE_MASK) == 0;
			uint64_t t0 = timed ? pbox_bench_now_ns() : 0;
			size_t vlen = 0;
			int r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (timed)
				pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r) {
				fail_at(w, r, "get of key %" PRIu64, k);
				goto out;
			}
			if (!value_ok(buf, vlen, pbe__run.vsize, key)) {
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
	    (c->next < pbe__run.n ? k != c->next : k < c->next)) {
		c->bad = true;
		return 1;
	}
	c->next = k + 1;
	return 0;
}

static void w_scan(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_SCAN100, tid + 1), n = 0;
	unsigned char key[KEY_SIZE];
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		scan_check c = { .next = k, .vsize = pbe__run.vsize };
		size_t got = 0;
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbe__run.ad->scan(t, key, KEY_SIZE, SCAN_LEN, scan_cb, &c, &got);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		uint64_t expect = pbe__run.n - k < SCAN_LEN ? pbe__run.n - k : SCAN_LEN;
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
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, (uint64_t)pbe__run.workload, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	unsigned read_pct = YCSB_READ_PCT[pbe__run.workload];
	bool rmw = pbe__run.workload == W_YCSB_F;
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = pbe__run.perm[zipf_next(&pbe__run.z, &s)];
		enc_key(key, k);
		bool read = rnd_below(&s, 100) < read_pct;
		int r = 0;
		const char *what = read ? "get" : "put";
		size_t vlen = pbe__run.vsize;
		uint64_t t0 = pbox_bench_now_ns();
		if (!read && rmw) { /* read, then write the next version */
			what = "read-modify-write: get";
			r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (!r && value_ok(buf, vlen, pbe__run.vsize, key)) {
				what = "read-modify-write: put";
				enc_key(buf + 8, dec_key(buf + 8) + 1);
				r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize);
			}
		} else if (!read) {
			make_value(buf, pbe__run.vsize, k, ((uint64_t)tid + 1) << 40 | n);
			r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize);
		} else {
			r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
		}
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "%s of key %" PRIu64, what, k);
			break;
		}
		if (!value_ok(buf, vlen, pbe__run.vsize, key)) {
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
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_YCSB_E, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		bool insert = rnd_below(&s, 100) < 5;
		int r;
		if (insert) {
			uint64_t k = atomic_fetch_add_explicit(&pbe__run.next_key, 1,
							       memory_order_relaxed);
			enc_key(key, k);
			make_value(buf, pbe__run.vsize, k, 0);
			uint64_t t0 = pbox_bench_now_ns();
			r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize);
			pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r) {
				fail_at(w, r, "insert of key %" PRIu64, k);
				break;
			}
		} else {
			uint64_t k = pbe__run.perm[zipf_next(&pbe__run.z, &s)];
			size_t len = 1 + (size_t)rnd_below(&s, YCSB_E_MAX_SCAN);
			enc_key(key, k);
			scan_check c = { .next = k, .vsize = pbe__run.vsize };
			size_t got = 0;
			uint64_t t0 = pbox_bench_now_ns();
			r = pbe__run.ad->scan(t, key, KEY_SIZE, len, scan_cb, &c, &got);
			pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			uint64_t least = pbe__run.n - k < len ? pbe__run.n - k : len;
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
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_COMMIT, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		make_value(buf, pbe__run.vsize, k, ((uint64_t)tid + 1) << 40 | n);
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		if (r) {
			fail_at(w, r, "put of key %" PRIu64, k);
			break;
		}
		n++;
	}
	w->ops = n;
}

/* ---- one measurement ----------------------------------------------------------------------- */

static int open_threads(unsigned nt)
{
	for (unsigned i = 0; i < nt; i++) {
		int r = pbe__run.ad->thread_open(pbe__run.e, &pbe__run.th[i]);
		if (r) {
			fprintf(stderr, "%s: %s: thread_open: %s\n", PROG, pbe__run.ad->name,
				pbe__rc_str(r));
			while (i--) {
				pbe__run.ad->thread_close(pbe__run.th[i]);
				pbe__run.th[i] = NULL;
			}
			return r;
		}
	}
	return 0;
}

static void close_threads(unsigned nt)
{
	for (unsigned i = 0; i < nt; i++) {
		pbe__run.ad->thread_close(pbe__run.th[i]);
		pbe__run.th[i] = NULL;
	}
}

/* Every worker starts here: pinned by --pin (the pinning is inside the timed interval:
 * one system call per thread), then the workload's function. */
static void w_pinned(void *arg, unsigned tid, const _Atomic bool *stop)
{
	pbox_bench_worker fn = *(const pbox_bench_worker *)arg;
	if (pbe__topo && pbe__pin_policy != PBOX_PIN_NONE) {
		int r = pbox_topo_pin_thread(pbe__topo, pbe__pin_policy, tid, NULL);
		if (r) {
			fail_at(&pbe__run.w[tid], PBE_PIN_FAILED, "pinning thread %u: %s", tid,
				strerror(-r));
			return;
		}
	}
	fn(NULL, tid, stop);
}

/* Run workload w on nt threads (fills: seconds = 0, until done) and report it (unless
 * record is false: an untimed load). settle_s: the settle step before it (< 0: none). */
static int measure(int w, unsigned nt, double seconds, unsigned run, bool record,
		   double settle_s)
{
	static const pbox_bench_worker fn[W_COUNT] = {
		[W_FILL_RANDOM] = w_fill, [W_FILL_SEQ] = w_fill, [W_LOOKUP] = w_lookup,
		[W_LOOKUP_ZIPF] = w_lookup, [W_SCAN100] = w_scan, [W_YCSB_A] = w_ycsb,
		[W_YCSB_B] = w_ycsb, [W_YCSB_C] = w_ycsb, [W_YCSB_E] = w_ycsb_e, [W_YCSB_F] = w_ycsb,
		[W_COMMIT] = w_commit,
	};
	pbe__run.workload = w;
	pbe__run.seq = w == W_FILL_SEQ;
	for (unsigned t = 0; t < nt; t++) {
		pbe__run.w[t].ops = 0;
		pbe__run.w[t].err = 0;
		pbe__run.w[t].what[0] = 0;
		pbox_bench_hist_init(&pbe__run.w[t].hist);
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
		if (pbe__run.w[t].err) {
			fprintf(stderr, "%s: %s %s thread %u: %s: %s\n", PROG, pbe__run.ad->name,
				pbe__wname[w], t, pbe__run.w[t].what,
				pbe__rc_str(pbe__run.w[t].err));
			return pbe__run.w[t].err;
		}
		row.ops += pbe__run.w[t].ops;
		pbox_bench_hist_merge(&all, &pbe__run.w[t].hist);
	}
	if (!record)
		return 0;
	pbe_info info;
	pbe__run.ad->info(pbe__run.e, &info);
	row.engine = pbe__run.ad->name;
	row.workload = pbe__wname[w];
	row.threads = nt;
	row.keys = (int64_t)pbe__run.n;
	row.value_size = pbe__run.vsize;
	row.budget_bytes = info.budget_bytes == UINT64_MAX ? PBOX_BENCH_NA : (int64_t)info.budget_bytes;
	row.run = run;
	row.seconds = tm.seconds;
	row.cpu_us_per_op = row.ops ? (double)tm.cpu_ns / 1e3 / (double)row.ops : -1;
	if (all.count) {
		row.p50_us = (double)pbox_bench_hist_quantile(&all, 0.5) / 1e3;
		row.p99_us = (double)pbox_bench_hist_quantile(&all, 0.99) / 1e3;
	}
	row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
	row.engine_order = pbe__run.order_pos;
	row.settle_s = settle_s;
	if (w == W_FILL_RANDOM || w == W_FILL_SEQ)
		row.note = pbe__batch_note(pbe__run.ad);
	return pbe__add_row(&row, pbe__run.ad->bounded_cache || !pbe__oom_run);
}

/* ---- the settle step -------------------------------------------------------------------- */

/* The untimed warm-up before read cell w: pbe__opt_warmup pairs read on one thread, with the
 * workload's key choice — gets of uniform keys (lookup) or Zipfian ones (lookup-zipf,
 * ycsb-a/b/c/f), or scans of 100 pairs from a uniform start (scan100) or a Zipfian one
 * (ycsb-e), pbe__opt_warmup / 100 of them (at least one) — from a stream of its own that
 * depends only on the run's seed and the workload, so every engine reads the same keys.
 * Checked like the measured reads. */
static int warm_up(int w)
{
	pbe_thread *t;
	int r = pbe__run.ad->thread_open(pbe__run.e, &t);
	if (r) {
		fprintf(stderr, "%s: %s: thread_open: %s\n", PROG, pbe__run.ad->name, pbe__rc_str(r));
		return r;
	}
	uint64_t s = rnd_seed(pbe__run.seed, 0x3a40u + (unsigned)w, 0);
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	bool scans = w == W_SCAN100 || w == W_YCSB_E, zipfian = w != W_LOOKUP && w != W_SCAN100;
	uint64_t ops = scans ? (pbe__opt_warmup + SCAN_LEN - 1) / SCAN_LEN : pbe__opt_warmup;
	for (uint64_t i = 0; i < ops && !r; i++) {
		uint64_t k = zipfian ? pbe__run.perm[zipf_next(&pbe__run.z, &s)]
				     : rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		if (scans) {
			scan_check c = { .next = k, .vsize = pbe__run.vsize };
			size_t got = 0;
			r = pbe__run.ad->scan(t, key, KEY_SIZE, SCAN_LEN, scan_cb, &c, &got);
			uint64_t least = pbe__run.n - k < SCAN_LEN ? pbe__run.n - k : SCAN_LEN;
			if (c.bad || (!r && (got < least || got > SCAN_LEN))) {
				fprintf(stderr, "%s: %s warm-up of %s: scan from key %" PRIu64
					": %zu pairs%s\n", PROG, pbe__run.ad->name, pbe__wname[w], k,
					got, c.bad ? " (wrong key or value)" : "");
				r = PBE_BAD_DATA;
			}
		} else {
			size_t vlen = 0;
			r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (!r && !value_ok(buf, vlen, pbe__run.vsize, key)) {
				fprintf(stderr, "%s: %s warm-up of %s: get of key %" PRIu64
					": wrong value\n", PROG, pbe__run.ad->name, pbe__wname[w], k);
				r = PBE_BAD_DATA;
			}
		}
		if (r && r != PBE_BAD_DATA)
			fprintf(stderr, "%s: %s warm-up of %s, key %" PRIu64 ": %s\n", PROG,
				pbe__run.ad->name, pbe__wname[w], k, pbe__rc_str(r));
	}
	pbe__run.ad->thread_close(t);
	return r;
}

/* The settle step before cell w of adapter a, untimed: the adapter's settle (its seconds in
 * *secs and in the engine's statistics; first: the instance's first one), then the warm-up
 * for read cells. 0, or an error after a message on stderr. */
static int settle(size_t a, int w, bool first, double *secs)
{
	char note[160] = "";
	uint64_t t0 = pbox_bench_now_ns();
	int r = pbe__run.ad->settle(pbe__run.e, note, sizeof(note));
	uint64_t t1 = pbox_bench_now_ns();
	if (r) {
		fprintf(stderr, "%s: %s: settle (%s) before %s: %s\n", PROG, pbe__run.ad->name,
			pbe__run.ad->settle_how, pbe__wname[w], pbe__rc_str(r));
		return r;
	}
	pbe__settle_stats *st = &pbe__settle[a];
	*secs = (double)(t1 - t0) / 1e9;
	if (note[0]) {
		st->incomplete++;
		snprintf(st->note, sizeof(st->note), "%s", note);
	}
	if ((r = pbe__dvec_push(first ? &st->first : &st->later, *secs)))
		return r;
	if (first) { /* the data size once the fill's memtables and caches reached the files */
		pbe_info info;
		pbe__run.ad->info(pbe__run.e, &info);
		pbe__data_bytes[a] = info.data_bytes;
		pbe__data_settled[a] = true;
	}
	if (w == W_COMMIT || pbe__opt_warmup == 0)
		return 0;
	if ((r = warm_up(w)))
		return r;
	return pbe__dvec_push(&st->warmup, (double)(pbox_bench_now_ns() - t1) / 1e9);
}

/* ---- one engine in one run ------------------------------------------------------------- */


static int open_engine(const pbox_bench_config *cfg, size_t a, char **dir)
{
	pbe__run.ad = pbe__adapters[a];
	int r = pbox_bench_scratch_create(cfg, pbe__run.ad->name, dir);
	if (r) {
		fprintf(stderr, "%s: scratch directory: %s\n", PROG, strerror(-r));
		return r;
	}
	unsigned maxt = 1;
	for (size_t i = 0; i < cfg->nthreads; i++)
		if (cfg->threads[i] > maxt)
			maxt = cfg->threads[i];
	for (size_t i = 0; pbe__want[W_COMMIT] && i < pbe__ncommit_threads; i++)
		if (pbe__commit_threads[i] > maxt)
			maxt = pbe__commit_threads[i];
	char msg[256] = "";
	pbe_open_options o = {
		.keys = pbe__run.n,
		.key_size = KEY_SIZE,
		.value_size = pbe__run.vsize,
		.budget_bytes = pbe__opt_budget,
		.durable = strcmp(pbe__opt_durability, "durable") == 0,
		.oom = pbe__oom_run,
		.log_parity = pbe__log_parity,
		.lmdb_writemap = !strcmp(pbe__opt_lmdb_writemap, "on") ||
				 (!strcmp(pbe__opt_lmdb_writemap, "auto") &&
				  strcmp(pbe__opt_durability, "fast") == 0),
		.max_threads = maxt + 1,
		.msg = msg,
		.msg_len = sizeof(msg),
	};
	(void)pbox_bench_peak_rss_reset(); /* each engine instance reports its own peak */
	if ((r = pbe__run.ad->open(*dir, &o, &pbe__run.e))) {
		fprintf(stderr, "%s: %s: open: %s%s%s\n", PROG, pbe__run.ad->name, pbe__rc_str(r),
			msg[0] ? ": " : "", msg);
		pbox_bench_scratch_remove(*dir);
		*dir = NULL;
		return r;
	}
	snprintf(pbe__open_msg[a], sizeof(pbe__open_msg[a]), "%s", msg);
	return 0;
}

static int close_engine(char *dir)
{
	int r = pbe__run.ad->close(pbe__run.e);
	pbe__run.e = NULL;
	if (r)
		fprintf(stderr, "%s: %s: close: %s\n", PROG, pbe__run.ad->name, pbe__rc_str(r));
	pbox_bench_scratch_remove(dir);
	return r;
}

int pbe__engine_run(const pbox_bench_config *cfg, size_t a, unsigned run, digests *ref)
{
	char *dir = NULL;
	int r = 0;
	const char *an = pbe__adapters[a]->name;
	if (pbe__want[W_FILL_SEQ]) { /* its own empty instance */
		pbox_bench_progress("run %u/%u %s fill-seq", run, cfg->runs, an);
		if ((r = open_engine(cfg, a, &dir)))
			return r;
		r = measure(W_FILL_SEQ, 1, 0, run, true, -1);
		int cr = close_engine(dir);
		if (r || cr)
			return r ? r : cr;
	}
	bool rest = false;
	for (int w = W_LOOKUP; w < W_COUNT; w++)
		rest |= pbe__want[w];
	if (!pbe__want[W_FILL_RANDOM] && !rest)
		return 0;
	if ((r = open_engine(cfg, a, &dir)))
		return r;
	atomic_store(&pbe__run.next_key, pbe__run.n);
	pbox_bench_progress("run %u/%u %s fill-random%s", run, cfg->runs, an,
			    pbe__want[W_FILL_RANDOM] ? "" : " (load, not measured)");
	if ((r = measure(W_FILL_RANDOM, 1, 0, run, pbe__want[W_FILL_RANDOM], -1)))
		goto out;
	pbe_info info;
	pbe__run.ad->info(pbe__run.e, &info);
	pbe__data_bytes[a] = info.data_bytes;
	if (pbe__opt_check) {
		pbox_bench_progress("run %u/%u %s check", run, cfg->runs, an);
		digests d;
		if ((r = pbe__check_contents(&d, ref)))
			goto out;
		if (!ref->set)
			*ref = d;
	}
	static const int order[] = { W_LOOKUP, W_LOOKUP_ZIPF, W_SCAN100, W_YCSB_C, W_YCSB_B,
				     W_YCSB_A, W_YCSB_F, W_COMMIT, W_YCSB_E };
	bool first = true; /* the instance's first settle: right after the fill (and check) */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int w = order[i];
		if (!pbe__want[w])
			continue;
		bool switched = false;
		if (w == W_COMMIT && strcmp(pbe__opt_durability, "durable") != 0) {
			if ((r = pbe__run.ad->set_durable(pbe__run.e, true)))
				goto out;
			switched = true;
		}
		const unsigned *tl = w == W_COMMIT ? pbe__commit_threads : cfg->threads;
		size_t ntl = w == W_COMMIT ? pbe__ncommit_threads : cfg->nthreads;
		for (size_t ti = 0; ti < ntl && !r; ti++) {
			pbox_bench_progress("run %u/%u %s settle before %s threads=%u", run,
					    cfg->runs, an, pbe__wname[w], tl[ti]);
			double settle_s = -1;
			if ((r = settle(a, w, first, &settle_s)))
				break;
			first = false;
			pbox_bench_progress("run %u/%u %s %s threads=%u", run, cfg->runs, an,
					    pbe__wname[w], tl[ti]);
			r = measure(w, tl[ti], cfg->seconds, run, true, settle_s);
		}
		if (switched) {
			int sr = pbe__run.ad->set_durable(pbe__run.e, false);
			r = r ? r : sr;
		}
		if (r)
			goto out;
	}
out:;
	int cr = close_engine(dir);
	return r ? r : cr;
}
