/*
 * bench_engine_check.c — pbox-bench's content check (--check, on with --quick): after the
 * fill of every engine's instance, the driver reads back what it wrote and makes every
 * engine of the run answer the same fixed sequence of reads and writes, comparing digests.
 *
 * What is checked, in order, on one pbe_thread of the freshly filled instance:
 *   1. a full scan returns exactly keys 0..N-1 in order, each with its version-0 value
 *      (compared against a digest computed from what the fill wrote);
 *   2. 1000 point reads of present keys return their values; 100 reads of absent keys
 *      return PBE_NOTFOUND;
 *   3. 200 short scans of up to 100 pairs, ten of them starting near the end of the key
 *      space, return exactly min(100, N - start) consecutive pairs;
 *   4. 200 single-key commits (updates), each read back at once;
 *   5. a second full scan.
 * Invariant: the random choices depend only on the run's seed, so every engine of a run
 * does the same operations; the first engine's digests are the reference and any later
 * engine that differs fails the run (PBE_BAD_DATA, with which digest differed).
 */
#define _GNU_SOURCE
#include "bench_engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- the content check (--check, on with --quick) ----------------------------------------- */

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
	full_check c = { .h = 0xcbf29ce484222325ull, .vsize = pbe__run.vsize };
	size_t got = 0;
	int r = pbe__run.ad->scan(t, NULL, 0, (size_t)pbe__run.n + 1, full_cb, &c, &got);
	if (c.bad || (!r && got != pbe__run.n)) {
		fprintf(stderr,
			"%s: check: %s: full scan returned %zu pairs (expected %" PRIu64
			"), %s at key %" PRIu64 "\n",
			PROG, pbe__run.ad->name, got, pbe__run.n,
			c.bad ? "wrong key or value" : "short", c.next);
		return PBE_BAD_DATA;
	}
	if (r) {
		fprintf(stderr, "%s: check: %s: full scan: %s\n", PROG, pbe__run.ad->name,
			pbe__rc_str(r));
		return r;
	}
	*digest = c.h;
	if (expect_digest) { /* the fill's contents are known: every value at version 0 */
		uint64_t h = 0xcbf29ce484222325ull;
		unsigned char k[KEY_SIZE], v[MAX_VALUE];
		for (uint64_t i = 0; i < pbe__run.n; i++) {
			enc_key(k, i);
			make_value(v, pbe__run.vsize, i, 0);
			h = mix(mix(h, k, KEY_SIZE), v, pbe__run.vsize);
		}
		*expect_digest = h;
	}
	return 0;
}

int pbe__check_contents(digests *d, const digests *ref)
{
	pbe_thread *t;
	int r = pbe__run.ad->thread_open(pbe__run.e, &t);
	if (r)
		return r;
	digests x = { .set = true };
	uint64_t expect;
	unsigned char key[KEY_SIZE], buf[MAX_VALUE];
	if ((r = full_scan(t, &x.full0, &expect)))
		goto out;
	if (x.full0 != expect) {
		fprintf(stderr, "%s: check: %s: contents after the fill differ from what was written\n",
			PROG, pbe__run.ad->name);
		r = PBE_BAD_DATA;
		goto out;
	}
	/* point reads: present keys, then absent ones */
	uint64_t s = rnd_seed(pbe__run.seed, 0xc4ec, 1), h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < 1000; i++) {
		uint64_t k = rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		size_t vlen = 0;
		if ((r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen)) ||
		    !value_ok(buf, vlen, pbe__run.vsize, key)) {
			fprintf(stderr, "%s: check: %s: get %" PRIu64 ": %s\n", PROG,
				pbe__run.ad->name, k, r ? pbe__rc_str(r) : "wrong value");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
		h = mix(h, buf, vlen);
	}
	for (unsigned i = 0; i < 100; i++) {
		uint64_t k = pbe__run.n + i * 7919u;
		enc_key(key, k);
		size_t vlen = 0;
		r = pbe__run.ad->get(t, key, KEY_SIZE, buf, sizeof(buf), &vlen);
		if (r != PBE_NOTFOUND) {
			fprintf(stderr, "%s: check: %s: get of absent key %" PRIu64 ": %s\n", PROG,
				pbe__run.ad->name, k, r ? pbe__rc_str(r) : "found");
			r = PBE_BAD_DATA;
			goto out;
		}
	}
	r = 0;
	x.gets = h;
	/* short scans, some of them running into the end of the key space */
	h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < 200; i++) {
		uint64_t k = i < 10 ? (pbe__run.n > i * 13 ? pbe__run.n - 1 - i * 13 : 0)
				    : rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		full_check c = { .next = k, .h = h, .vsize = pbe__run.vsize };
		size_t got = 0;
		r = pbe__run.ad->scan(t, key, KEY_SIZE, SCAN_LEN, full_cb, &c, &got);
		uint64_t want_n = pbe__run.n - k < SCAN_LEN ? pbe__run.n - k : SCAN_LEN;
		if (r || c.bad || got != want_n) {
			fprintf(stderr, "%s: check: %s: scan from %" PRIu64 ": %zu pairs (expected %" PRIu64
					")%s%s\n", PROG, pbe__run.ad->name, k, got, want_n,
				c.bad ? ", wrong key or value" : "", r ? pbe__rc_str(r) : "");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
		h = mix(c.h, &got, sizeof(got));
	}
	x.scans = h;
	/* updates (each its own commit), each read back */
	for (unsigned i = 0; i < CHECK_UPDATES; i++) {
		uint64_t k = rnd_below(&s, pbe__run.n);
		enc_key(key, k);
		make_value(buf, pbe__run.vsize, k, 1000 + i);
		unsigned char back[MAX_VALUE];
		size_t vlen = 0;
		if ((r = pbe__run.ad->put(t, key, KEY_SIZE, buf, pbe__run.vsize)) ||
		    (r = pbe__run.ad->get(t, key, KEY_SIZE, back, sizeof(back), &vlen)) ||
		    vlen != pbe__run.vsize || memcmp(back, buf, vlen) != 0) {
			fprintf(stderr, "%s: check: %s: update of %" PRIu64 ": %s\n", PROG,
				pbe__run.ad->name, k,
				r ? pbe__rc_str(r) : "read back a different value");
			r = r ? r : PBE_BAD_DATA;
			goto out;
		}
	}
	if ((r = full_scan(t, &x.full1, NULL)))
		goto out;
	if (ref && ref->set &&
	    (ref->full0 != x.full0 || ref->gets != x.gets || ref->scans != x.scans ||
	     ref->full1 != x.full1)) {
		fprintf(stderr,
			"%s: check: %s returned different data than the first engine "
			"(full scan %s, gets %s, scans %s, after updates %s)\n",
			PROG, pbe__run.ad->name, ref->full0 == x.full0 ? "same" : "DIFFERENT",
			ref->gets == x.gets ? "same" : "DIFFERENT",
			ref->scans == x.scans ? "same" : "DIFFERENT",
			ref->full1 == x.full1 ? "same" : "DIFFERENT");
		r = PBE_BAD_DATA;
		goto out;
	}
	*d = x;
out:
	pbe__run.ad->thread_close(t);
	return r;
}
