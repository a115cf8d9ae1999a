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
 *   - fill-seq gets its own empty instance; txn-bulk and txn-rw get a third one, the
 *     transaction instance (opened with the txn option: RocksDB is a TransactionDB there),
 *     which txn-bulk fills as one transaction (or, when txn-bulk is not asked for, an
 *     untimed load like fill-random's) and on which txn-rw then runs; every other workload
 *     runs on the instance fill-random built (or an identical untimed load), in a fixed
 *     order ending with ycsb-e, the only one that adds keys; each instance lives in a
 *     fresh scratch directory that is removed when the instance is closed;
 *   - an engine without snapshots or transactions (a NULL adapter operation: LevelDB has no
 *     transactions) is skipped for those cells, and the output says n/a;
 *   - `commit` is always durable: in a fast run the instance is switched to durable commits
 *     around it and back afterwards;
 *   - every cell measured on the filled instance (every workload but the fills, at every
 *     thread count) is preceded by the settle step, untimed and the same for every engine:
 *     the adapter's settle (checkpoint, flush and compaction, sync: engine.h), timed apart
 *     and reported as information, then for read cells (all but `commit`; txn-rw reads
 *     too) the warm-up:
 *     --warmup pairs read on one thread with the workload's key choice, the same keys for
 *     every engine of the run. Nothing of either enters a measured rate.
 *
 * Threads: workers write only their own pbe__run.w[tid] (128-byte aligned, no shared line
 * in the hot loop) and take new ycsb-e keys with an atomic fetch_add on pbe__run.next_key;
 * everything else in pbe__run (txn-bulk's pairs included) is set before the threads start. The thread runner
 * (bench_util.h) publishes the workers' results by joining them.
 */
#define _GNU_SOURCE
#include "bench_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void pbe_txn_backoff(unsigned n)
{
	if (n <= 1) {
		sched_yield();
		return;
	}
	unsigned us = n - 2 >= 10 ? 1000u : 1u << (n - 2);
	if (us > 1000u)
		us = 1000u;
	nanosleep(&(struct timespec){ .tv_nsec = (long)us * 1000 }, NULL);
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

/* snapshot-get: uniform gets, SNAP_GETS per read-only snapshot (snap_begin .. snap_end,
 * inside the timed loop); ops = gets, every 16th timed as in lookup. */
static void w_snap_get(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_SNAPSHOT_GET, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	while (!pbox_bench_stopped(stop)) {
		int r = pbe__run.ad->snap_begin(t);
		if (r) {
			fail_at(w, r, "snapshot begin");
			break;
		}
		for (unsigned i = 0; i < SNAP_GETS && !r; i++, n++) {
			uint64_t k = rnd_below(&s, pbe__run.n);
			enc_key(key, k);
			bool timed = (n & LOOKUP_SAMPLE_MASK) == 0;
			uint64_t t0 = timed ? pbox_bench_now_ns() : 0;
			size_t vlen = 0;
			r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
			if (timed)
				pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
			if (r)
				fail_at(w, r, "get of key %" PRIu64 " in a snapshot", k);
			else if (!value_ok(buf, vlen, pbe__run.vsize, key))
				fail_at(w, r = PBE_BAD_DATA, "get of key %" PRIu64
					" in a snapshot: wrong value", k);
		}
		int er = pbe__run.ad->snap_end(t);
		if (r)
			break;
		if (er) {
			fail_at(w, er, "snapshot end");
			break;
		}
	}
	w->ops = n;
}

/* snapshot-scan: thread 0 scans SNAP_SCAN_LEN pairs from a uniform start, each scan in a
 * read-only snapshot of its own (ops = pairs scanned, latency per scan with its snapshot);
 * thread 1 updates uniform random keys meanwhile, each put its own commit in the run's
 * commit mode (counted apart: aux_ops). */
static void w_snap_scan(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_SNAPSHOT_SCAN, tid + 1), n = 0;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	if (tid != 0) { /* the writer */
		while (!pbox_bench_stopped(stop)) {
			uint64_t k = rnd_below(&s, pbe__run.n);
			enc_key(key, k);
			make_value(buf, pbe__run.vsize, k, ((uint64_t)tid + 1) << 40 | n);
			int r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize);
			if (r) {
				fail_at(w, r, "put of key %" PRIu64 " (the writer)", k);
				break;
			}
			n++;
		}
		w->aux_ops = n;
		return;
	}
	while (!pbox_bench_stopped(stop)) {
		uint64_t k = rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		scan_check c = { .next = k, .vsize = pbe__run.vsize };
		size_t got = 0;
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbe__run.ad->snap_begin(t);
		if (r) {
			fail_at(w, r, "snapshot begin");
			break;
		}
		r = pbe__run.ad->scan(t, key, KEY_SIZE, SNAP_SCAN_LEN, scan_cb, &c, &got);
		int er = pbe__run.ad->snap_end(t);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		uint64_t expect = pbe__run.n - k < SNAP_SCAN_LEN ? pbe__run.n - k : SNAP_SCAN_LEN;
		if (r && !c.bad) {
			fail_at(w, r, "scan from key %" PRIu64 " in a snapshot", k);
			break;
		}
		if (c.bad || got != expect) {
			fail_at(w, PBE_BAD_DATA, "scan from key %" PRIu64 " in a snapshot: %zu pairs, "
				"expected %" PRIu64 "%s", k, got, expect,
				c.bad ? " (wrong key or value)" : "");
			break;
		}
		if (er) {
			fail_at(w, er, "snapshot end");
			break;
		}
		n += got;
	}
	w->ops = n;
}

/* txn-rw's callback: every value must carry its key; an update writes the next version. */
static int txn_cb(const void *key, size_t klen, const void *val, size_t vlen, void *out,
		  size_t cap, size_t *outlen, void *arg)
{
	(void)arg;
	if (klen != KEY_SIZE || !value_ok(val, vlen, pbe__run.vsize, key))
		return PBE_BAD_DATA;
	if (!out)
		return 0;
	if (vlen > cap)
		return PBE_TOOSMALL;
	memcpy(out, val, vlen);
	enc_key((unsigned char *)out + 8, dec_key((const unsigned char *)val + 8) + 1);
	*outlen = vlen;
	return 0;
}

/* txn-rw: transactions of TXN_READS reads and TXN_WRITES read-modify-writes of distinct
 * uniform keys (distinct when there are enough keys); ops = transactions, each timed. */
static void w_txn_rw(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	enum { NK = TXN_READS + TXN_WRITES };
	worker *w = &pbe__run.w[tid];
	pbe_thread *t = pbe__run.th[tid];
	uint64_t s = rnd_seed(pbe__run.seed, W_TXN_RW, tid + 1), n = 0;
	unsigned char keys[NK][KEY_SIZE];
	const uint8_t *kp[NK];
	uint64_t kv[NK];
	for (unsigned i = 0; i < NK; i++)
		kp[i] = keys[i];
	pbe_txn_rw op = { .read_keys = kp, .nread = TXN_READS, .write_keys = kp + TXN_READS,
			  .nwrite = TXN_WRITES, .klen = KEY_SIZE, .fn = txn_cb };
	while (!pbox_bench_stopped(stop)) {
		for (unsigned i = 0; i < NK; i++) {
			bool dup;
			do {
				kv[i] = rnd_below(&s, pbe__run.n);
				dup = false;
				for (unsigned j = 0; j < i && pbe__run.n >= NK; j++)
					dup |= kv[j] == kv[i];
			} while (dup);
			enc_key(keys[i], kv[i]);
		}
		unsigned retries = 0;
		uint64_t t0 = pbox_bench_now_ns();
		int r = pbe__run.ad->txn_rw(t, &op, &retries);
		pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
		w->retries += retries;
		if (r) {
			fail_at(w, r, "transaction on keys %" PRIu64 ", ... (writes %" PRIu64 ", %" PRIu64
				")%s", kv[0], kv[TXN_READS], kv[TXN_READS + 1],
				r == PBE_BAD_DATA ? ": a value without its key" : "");
			break;
		}
		n++;
	}
	w->ops = n;
}

/* txn-bulk: the pairs built beforehand (pbe__run.bulk), one transaction; ops = pairs. */
static void w_txn_bulk(void *arg, unsigned tid, const _Atomic bool *stop)
{
	(void)arg;
	(void)stop;
	worker *w = &pbe__run.w[tid];
	uint64_t t0 = pbox_bench_now_ns();
	int r = pbe__run.ad->txn_bulk(pbe__run.th[tid], pbe__run.bulk, (size_t)pbe__run.n);
	pbox_bench_hist_record(&w->hist, pbox_bench_now_ns() - t0);
	if (r) {
		fail_at(w, r, "one transaction of %" PRIu64 " puts", pbe__run.n);
		return;
	}
	w->ops = pbe__run.n;
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
		[W_COMMIT] = w_commit, [W_SNAPSHOT_GET] = w_snap_get,
		[W_SNAPSHOT_SCAN] = w_snap_scan, [W_TXN_RW] = w_txn_rw, [W_TXN_BULK] = w_txn_bulk,
	};
	pbe__run.workload = w;
	pbe__run.seq = w == W_FILL_SEQ;
	for (unsigned t = 0; t < nt; t++) {
		pbe__run.w[t].ops = 0;
		pbe__run.w[t].retries = 0;
		pbe__run.w[t].aux_ops = 0;
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
	pbe__row_extra x = { -1, -1 };
	if (w == W_TXN_RW || w == W_SNAPSHOT_SCAN) {
		x.retries = w == W_TXN_RW ? 0 : -1;
		x.writer_ops = w == W_SNAPSHOT_SCAN ? 0 : -1;
		for (unsigned t = 0; t < nt; t++) {
			if (w == W_TXN_RW)
				x.retries += (int64_t)pbe__run.w[t].retries;
			else
				x.writer_ops += (int64_t)pbe__run.w[t].aux_ops;
		}
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
	else if (w == W_TXN_BULK)
		row.note = strcmp(pbe__opt_durability, "durable") == 0
				   ? "atomic (1 txn of all keys, synced)"
				   : "atomic (1 txn of all keys, unsynced)";
	else if (w == W_TXN_RW)
		row.note = pbe__run.ad->txn_how;
	else if (w == W_SNAPSHOT_GET || w == W_SNAPSHOT_SCAN)
		row.note = pbe__run.ad->snap_how;
	return pbe__add_row(&row, pbe__run.ad->bounded_cache || !pbe__oom_run, x);
}

/* ---- the settle step -------------------------------------------------------------------- */

/* The untimed warm-up before read cell w: pbe__opt_warmup pairs read on one thread, with the
 * workload's key choice — gets of uniform keys (lookup, snapshot-get, txn-rw) or Zipfian
 * ones (lookup-zipf, ycsb-a/b/c/f), or scans of 100 pairs from a uniform start (scan100,
 * snapshot-scan) or a Zipfian one (ycsb-e), pbe__opt_warmup / 100 of them (at least one) —
 * plain reads outside any snapshot, from a stream of its own that depends only on the
 * run's seed and the workload, so every engine reads the same keys. Checked like the
 * measured reads. */
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
	bool scans = w == W_SCAN100 || w == W_YCSB_E || w == W_SNAPSHOT_SCAN;
	bool zipfian = w == W_LOOKUP_ZIPF || w == W_YCSB_A || w == W_YCSB_B || w == W_YCSB_C ||
		       w == W_YCSB_E || w == W_YCSB_F;
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
	if (first && !pbe__run.txn_inst) { /* the data size once the fill's memtables and
					       caches reached the files (the main instance) */
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


/* Open adapter a's instance in a fresh scratch directory; txn: the transaction instance. */
static int open_engine(const pbox_bench_config *cfg, size_t a, bool txn, char **dir)
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
	if (pbe__want[W_SNAPSHOT_SCAN] && maxt < 2)
		maxt = 2; /* a scanner and a writer */
	char msg[256] = "";
	pbe_open_options o = {
		.keys = pbe__run.n,
		.key_size = KEY_SIZE,
		.value_size = pbe__run.vsize,
		.budget_bytes = pbe__opt_budget,
		.durable = strcmp(pbe__opt_durability, "durable") == 0,
		.oom = pbe__oom_run,
		.log_parity = pbe__log_parity,
		.txn = txn,
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
	if (txn)
		snprintf(pbe__open_msg_txn[a], sizeof(pbe__open_msg_txn[a]), "%s", msg);
	else
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

/* The settled cells of workload w on the open instance: at each thread count (threads
 * from --threads, commit from --commit-threads, snapshot-scan 2: a scanner and a writer)
 * the settle step, then the measurement. *first: the instance's first settle is still to
 * come. */
static int settled_cells(const pbox_bench_config *cfg, size_t a, unsigned run, int w,
			 bool *first)
{
	static const unsigned two[] = { 2 };
	const char *an = pbe__adapters[a]->name;
	int r = 0;
	bool switched = false;
	if (w == W_COMMIT && strcmp(pbe__opt_durability, "durable") != 0) {
		if ((r = pbe__run.ad->set_durable(pbe__run.e, true)))
			return r;
		switched = true;
	}
	const unsigned *tl = w == W_COMMIT ? pbe__commit_threads
			     : w == W_SNAPSHOT_SCAN ? two : cfg->threads;
	size_t ntl = w == W_COMMIT ? pbe__ncommit_threads : w == W_SNAPSHOT_SCAN ? 1 : cfg->nthreads;
	for (size_t ti = 0; ti < ntl && !r; ti++) {
		pbox_bench_progress("run %u/%u %s settle before %s threads=%u", run, cfg->runs, an,
				    pbe__wname[w], tl[ti]);
		double settle_s = -1;
		if ((r = settle(a, w, *first, &settle_s)))
			break;
		*first = false;
		pbox_bench_progress("run %u/%u %s %s threads=%u", run, cfg->runs, an, pbe__wname[w],
				    tl[ti]);
		r = measure(w, tl[ti], cfg->seconds, run, true, settle_s);
	}
	if (switched) {
		int sr = pbe__run.ad->set_durable(pbe__run.e, false);
		r = r ? r : sr;
	}
	return r;
}

/* The check of a freshly filled instance (--check), against the run's reference digests. */
static int check_instance(const pbox_bench_config *cfg, unsigned run, digests *ref)
{
	pbox_bench_progress("run %u/%u %s check", run, cfg->runs, pbe__run.ad->name);
	digests d;
	int r = pbe__check_contents(&d, ref);
	if (!r && !ref->set)
		*ref = d;
	return r;
}

/* txn-bulk's pairs: the run's permutation, every value at version 0 (what a fill writes),
 * built untimed before the measurement. */
static int build_bulk(unsigned char **mem)
{
	size_t n = (size_t)pbe__run.n, vs = pbe__run.vsize;
	unsigned char *m = malloc(n * (KEY_SIZE + vs));
	pbe_kv *kv = malloc(n * sizeof(*kv));
	if (!m || !kv) {
		free(m);
		free(kv);
		fprintf(stderr, "%s: txn-bulk: out of memory for %zu pairs\n", PROG, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char *k = m + i * (KEY_SIZE + vs), *v = k + KEY_SIZE;
		enc_key(k, pbe__run.perm[i]);
		make_value(v, pbe__run.vsize, pbe__run.perm[i], 0);
		kv[i] = (pbe_kv){ k, KEY_SIZE, v, vs };
	}
	*mem = m;
	pbe__run.bulk = kv;
	return 0;
}

/* The transaction instance of adapter a: txn-bulk (or an untimed load), --check, txn-rw. */
static int txn_instance(const pbox_bench_config *cfg, size_t a, unsigned run, digests *ref)
{
	const char *an = pbe__adapters[a]->name;
	char *dir = NULL;
	const pbe_adapter *ad = pbe__adapters[a];
	int r = open_engine(cfg, a, true, &dir);
	if (r)
		return r;
	pbe__run.txn_inst = true;
	if (pbe__want[W_TXN_BULK] && ad->txn_bulk) {
		unsigned char *mem = NULL;
		if (!(r = build_bulk(&mem))) {
			pbox_bench_progress("run %u/%u %s txn-bulk", run, cfg->runs, an);
			r = measure(W_TXN_BULK, 1, 0, run, true, -1);
		}
		free(mem);
		free(pbe__run.bulk);
		pbe__run.bulk = NULL;
	} else {
		pbox_bench_progress("run %u/%u %s load for txn-rw (not measured)", run, cfg->runs, an);
		r = measure(W_FILL_RANDOM, 1, 0, run, false, -1);
	}
	if (!r && pbe__opt_check)
		r = check_instance(cfg, run, ref);
	bool first = true;
	if (!r && pbe__want[W_TXN_RW] && ad->txn_rw)
		r = settled_cells(cfg, a, run, W_TXN_RW, &first);
	pbe__run.txn_inst = false;
	int cr = close_engine(dir);
	return r ? r : cr;
}

int pbe__engine_run(const pbox_bench_config *cfg, size_t a, unsigned run, digests *ref)
{
	char *dir = NULL;
	int r = 0;
	const char *an = pbe__adapters[a]->name;
	const pbe_adapter *ad = pbe__adapters[a];
	if (pbe__want[W_FILL_SEQ]) { /* its own empty instance */
		pbox_bench_progress("run %u/%u %s fill-seq", run, cfg->runs, an);
		if ((r = open_engine(cfg, a, false, &dir)))
			return r;
		r = measure(W_FILL_SEQ, 1, 0, run, true, -1);
		int cr = close_engine(dir);
		if (r || cr)
			return r ? r : cr;
	}
	/* the main instance's cells, in this order (ycsb-e last: it adds keys) */
	static const int order[] = { W_LOOKUP, W_SNAPSHOT_GET, W_LOOKUP_ZIPF, W_SCAN100,
				     W_YCSB_C, W_YCSB_B, W_YCSB_A, W_YCSB_F, W_SNAPSHOT_SCAN,
				     W_COMMIT, W_YCSB_E };
	bool rest = false;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		rest |= pbe__want[order[i]] &&
			(ad->snap_begin || (order[i] != W_SNAPSHOT_GET && order[i] != W_SNAPSHOT_SCAN));
	if (pbe__want[W_FILL_RANDOM] || rest) {
		if ((r = open_engine(cfg, a, false, &dir)))
			return r;
		atomic_store(&pbe__run.next_key, pbe__run.n);
		pbox_bench_progress("run %u/%u %s fill-random%s", run, cfg->runs, an,
				    pbe__want[W_FILL_RANDOM] ? "" : " (load, not measured)");
		if ((r = measure(W_FILL_RANDOM, 1, 0, run, pbe__want[W_FILL_RANDOM], -1)))
			goto out;
		pbe_info info;
		pbe__run.ad->info(pbe__run.e, &info);
		pbe__data_bytes[a] = info.data_bytes;
		if (pbe__opt_check && (r = check_instance(cfg, run, ref)))
			goto out;
		bool first = true; /* the instance's first settle: right after the fill (and check) */
		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !r; i++) {
			int w = order[i];
			if (!pbe__want[w] ||
			    ((w == W_SNAPSHOT_GET || w == W_SNAPSHOT_SCAN) && !ad->snap_begin))
				continue; /* n/a: no snapshots (the summary says so) */
			r = settled_cells(cfg, a, run, w, &first);
		}
	out:;
		int cr = close_engine(dir);
		if (r || cr)
			return r ? r : cr;
	}
	if ((pbe__want[W_TXN_BULK] && ad->txn_bulk) || (pbe__want[W_TXN_RW] && ad->txn_rw))
		r = txn_instance(cfg, a, run, ref);
	return r;
}
