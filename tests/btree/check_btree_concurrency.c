/*
 * check_btree_concurrency.c — threads on one store through pbox/btree.h (black box).
 *
 *   concurrency  writers on disjoint, interleaved key sets with exact per-writer oracles
 *                (some values on overflow pages); readers check what holds under any
 *                interleaving: scans and cursor walks in both directions stay ordered and
 *                within their bounds, values are whole (self-validating), versions never
 *                go back, keys that are never removed are always found; verify runs
 *                while writers work.
 *   catalog      concurrent open_or_create of shared names and create races: each name
 *                is created exactly once, every thread's insert lands in the one tree; the
 *                same on two stores at once.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces); PBOX_STRESS_SCALE lengthens.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- concurrency ------------------------------------------------------------------- */

#define CC_SPAN 240u   /* value lengths VHDR .. VHDR + CC_SPAN - 1, */
#define CC_BIG 12000u  /* or 1 in 16 up to VHDR + CC_BIG - 1 (overflow pages) */
#define CC_VMAX (VHDR + CC_BIG)

static uint32_t cc_vlen(uint32_t n, uint32_t ver)
{
	uint64_t x = mix64((uint64_t)(ver ^ 0xb16b00b5u) << 32 | n);
	if (x % 16 == 0)
		return VHDR + (uint32_t)((x >> 8) % CC_BIG);
	return sv_len(n, ver, CC_SPAN);
}

typedef struct cc_shared {
	pbox_bt *bt;
	unsigned nw, nkeys; /* keys per writer; key number n = i * nw + w */
	_Atomic uint8_t *stable_in; /* [n]: a never-removed key, inserted */
	atomic_uint writers_done;
	atomic_int failed;
	char msg[512];
	pthread_mutex_t mu;
} cc_shared;

typedef struct cc_writer {
	cc_shared *sh;
	unsigned w, nops;
	uint64_t seed;
	uint32_t *ver; /* [i]: current version, 0 = absent */
	uint64_t ops;
} cc_writer;

typedef struct cc_reader {
	cc_shared *sh;
	uint64_t seed;
	unsigned id;
	uint32_t *last_ver; /* [n]: newest version this reader saw */
	uint64_t lookups, found, scans, scanned, verifies;
} cc_reader;

static void cc_fail(cc_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cc_fail(cc_shared *sh, const char *fmt, ...)
{
	pthread_mutex_lock(&sh->mu);
	if (!atomic_load(&sh->failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(sh->msg, sizeof(sh->msg), fmt, ap);
		va_end(ap);
		atomic_store(&sh->failed, 1);
	}
	pthread_mutex_unlock(&sh->mu);
}

static bool cc_stable(uint32_t i)
{
	return i % 4 == 0;
}

static void *cc_writer_main(void *arg)
{
	cc_writer *wr = arg;
	cc_shared *sh = wr->sh;
	pbox_rng r;
	pbox_rng_seed(&r, wr->seed);
	uint8_t key[32], val[CC_VMAX], buf[CC_VMAX];
	uint32_t version = 0;
	for (unsigned op = 0; op < wr->nops && !atomic_load(&sh->failed); op++) {
		uint32_t i = (uint32_t)pbox_rng_below(&r, sh->nkeys);
		uint32_t n = i * sh->nw + wr->w;
		uint32_t kl = nkey(key, n);
		uint32_t cur = wr->ver[i];
		uint32_t nv = ++version * 8 + wr->w; /* increasing per key; never 0 */
		uint32_t vl = cc_vlen(n, nv);
		sv_make(val, n, nv, vl);
		unsigned c = (unsigned)pbox_rng_below(&r, 100);
		int rc, want;
		const char *what;
		wr->ops++;
		if (cc_stable(i)) { /* inserted once, then only updated */
			if (!cur) {
				what = "insert", want = 0;
				rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
			} else if (c < 50) {
				what = "update", want = 0;
				rc = pbox_bt_update(sh->bt, key, kl, val, vl, 0);
			} else if (c < 80) {
				what = "upsert", want = 0;
				rc = pbox_bt_upsert(sh->bt, key, kl, val, vl, 0);
			} else {
				what = "insert", want = PBOX_EEXIST;
				rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
			}
		} else if (c < 25) {
			what = "insert", want = cur ? PBOX_EEXIST : 0;
			rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
		} else if (c < 45) {
			what = "remove", want = cur ? 0 : PBOX_ENOTFOUND;
			rc = pbox_bt_remove(sh->bt, key, kl, 0);
		} else if (c < 65) {
			what = "upsert", want = 0;
			rc = pbox_bt_upsert(sh->bt, key, kl, val, vl, 0);
		} else if (c < 80) {
			what = "update", want = cur ? 0 : PBOX_ENOTFOUND;
			rc = pbox_bt_update(sh->bt, key, kl, val, vl, 0);
		} else { /* read our own writes exactly */
			size_t gl = 0;
			rc = pbox_bt_lookup(sh->bt, key, kl, buf, sizeof(buf), &gl);
			if (rc != (cur ? 0 : PBOX_ENOTFOUND)) {
				cc_fail(sh, "writer %u: lookup of its key %u = %s, want %s", wr->w, n,
					pbox_status_name(rc), cur ? "OK" : "PBOX_ENOTFOUND");
				break;
			}
			uint32_t gv = 0;
			if (cur && (!sv_check(buf, gl, n, &gv) || gv != cur)) {
				cc_fail(sh, "writer %u: its key %u holds version %u, it wrote %u last",
					wr->w, n, gv, cur);
				break;
			}
			continue;
		}
		if (rc != want) {
			cc_fail(sh, "writer %u: %s of its key %u (present: %d) = %s, want %s", wr->w,
				what, n, cur != 0, pbox_status_name(rc), pbox_status_name(want));
			break;
		}
		if (rc == 0)
			wr->ver[i] = strcmp(what, "remove") == 0 ? 0 : nv;
		if (cc_stable(i) && !cur && rc == 0)
			atomic_store_explicit(&sh->stable_in[n], 1, memory_order_release);
	}
	atomic_fetch_add(&sh->writers_done, 1);
	return NULL;
}

typedef struct cc_scan_ctx {
	cc_reader *rd;
	uint32_t lo, hi; /* numbers in [lo, hi) */
	bool rev;        /* descending */
	int64_t prev;    /* last number reported; -1 (ascending) or hi (descending) at first */
	unsigned calls, stop_at;
	uint8_t *seen; /* [n - lo] */
	char msg[256];
} cc_scan_ctx;

static int cc_scan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cc_scan_ctx *c = arg;
	uint32_t n, ver;
	c->calls++;
	if (!nkey_check(k, kl, &n)) {
		snprintf(c->msg, sizeof(c->msg), "scan: malformed key (len %zu)", kl);
		return SCAN_BAD;
	}
	if (c->rev ? (int64_t)n >= c->prev : (int64_t)n <= c->prev) {
		snprintf(c->msg, sizeof(c->msg), "%s: key %u after key %lld",
			 c->rev ? "reverse scan" : "scan", n, (long long)c->prev);
		return SCAN_BAD;
	}
	if (n < c->lo || n >= c->hi) {
		snprintf(c->msg, sizeof(c->msg), "scan of [%u, %u): key %u", c->lo, c->hi, n);
		return SCAN_BAD;
	}
	if (!sv_check(v, vl, n, &ver)) {
		snprintf(c->msg, sizeof(c->msg), "scan: key %u has a malformed value (len %zu)", n, vl);
		return SCAN_BAD;
	}
	if (ver < c->rd->last_ver[n]) {
		snprintf(c->msg, sizeof(c->msg), "scan: key %u went back from version %u to %u", n,
			 c->rd->last_ver[n], ver);
		return SCAN_BAD;
	}
	c->rd->last_ver[n] = ver;
	c->prev = n;
	c->seen[n - c->lo] = 1;
	if (c->stop_at && c->calls == c->stop_at)
		return SCAN_STOP;
	return 0;
}

/* A scan of [lo, hi) done with a cursor (seek + next, or seek_prev + prev), checked by
 * cc_scan_fn. Returns like a scan: 0, SCAN_STOP, SCAN_BAD or an error. */
static int cc_cursor_walk(pbox_bt *bt, const uint8_t *skey, const uint8_t *ekey, cc_scan_ctx *sc)
{
	pbox_bt_cursor *cu = NULL;
	int rc = pbox_bt_cursor_open(bt, &cu);
	if (rc)
		return rc;
	rc = sc->rev ? pbox_bt_cursor_seek_prev(cu, ekey, 4) : pbox_bt_cursor_seek(cu, skey, 4);
	while (rc == 0) {
		const void *k, *v;
		size_t kl, vl;
		uint32_t n;
		if ((rc = pbox_bt_cursor_key(cu, &k, &kl)))
			break;
		if ((rc = pbox_bt_cursor_value(cu, &v, &vl)) == PBOX_ENOTFOUND) {
			/* a long value removed since the cursor reached its key: skip the key */
			rc = sc->rev ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu);
			continue;
		}
		if (rc)
			break;
		if (kl >= 4 && get32(k) >= sc->hi && sc->rev) { /* seek_prev may land on hi itself */
			rc = pbox_bt_cursor_prev(cu);
			continue;
		}
		if (kl >= 4 && ((n = get32(k)) >= sc->hi || n < sc->lo))
			break; /* past the range: done */
		if ((rc = cc_scan_fn(k, kl, v, vl, sc)))
			break;
		rc = sc->rev ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu);
	}
	pbox_bt_cursor_close(cu);
	return rc == PBOX_ENOTFOUND ? 0 : rc;
}

static void *cc_reader_main(void *arg)
{
	cc_reader *rd = arg;
	cc_shared *sh = rd->sh;
	pbox_rng r;
	pbox_rng_seed(&r, rd->seed);
	uint32_t total = sh->nw * sh->nkeys;
	uint8_t key[32], skey[32], ekey[32], buf[CC_VMAX];
	uint8_t *seen = xmalloc(total), *snap = xmalloc(total);
	for (uint64_t it = 0; !atomic_load(&sh->failed); it++) {
		if (atomic_load(&sh->writers_done) == sh->nw && it >= 200)
			break;
		unsigned c = (unsigned)pbox_rng_below(&r, 100);
		if (c < 70) { /* point lookups */
			uint32_t n = (uint32_t)pbox_rng_below(&r, total);
			uint32_t kl = nkey(key, n);
			bool must = atomic_load_explicit(&sh->stable_in[n], memory_order_acquire);
			size_t gl = 0;
			int rc;
			rd->lookups++;
			if (c < 50) {
				rc = pbox_bt_lookup(sh->bt, key, kl, buf, sizeof(buf), &gl);
			} else {
				cb_ctx cc = { .buf = buf, .cap = sizeof(buf) };
				rc = pbox_bt_lookup_cb(sh->bt, key, kl, lookup_cb_fn, &cc);
				gl = cc.len;
				if (rc == 0 && cc.calls == 0)
					rc = -99999;
			}
			if (rc == PBOX_ENOTFOUND && !must)
				continue;
			if (rc != 0) {
				cc_fail(sh, "reader %u: lookup (%s) of key %u = %s%s", rd->id,
					c < 50 ? "copy" : "callback", n, pbox_status_name(rc),
					must ? " (a key inserted before and never removed)" : "");
				break;
			}
			rd->found++;
			uint32_t ver;
			if (!sv_check(buf, gl, n, &ver)) {
				cc_fail(sh, "reader %u: key %u has a malformed value (len %zu)", rd->id, n,
					gl);
				break;
			}
			if (ver < rd->last_ver[n]) {
				cc_fail(sh, "reader %u: key %u went back from version %u to %u", rd->id, n,
					rd->last_ver[n], ver);
				break;
			}
			rd->last_ver[n] = ver;
		} else if (c < 99) { /* range scans */
			uint32_t lo, hi;
			unsigned b = (unsigned)pbox_rng_below(&r, 8);
			lo = (uint32_t)pbox_rng_below(&r, total);
			hi = lo + 1 + (uint32_t)pbox_rng_below(&r, 400);
			if (hi > total)
				hi = total;
			if (b == 0)
				lo = 0;
			else if (b == 1)
				hi = total;
			/* bounds: the 4-byte numbers, which sort at or before the full keys */
			put32(skey, lo);
			put32(ekey, hi);
			const uint8_t *sp = b == 0 && pbox_rng_below(&r, 2) ? NULL : skey;
			const uint8_t *ep = b == 1 && pbox_rng_below(&r, 2) ? NULL : ekey;
			for (uint32_t n = lo; n < hi; n++)
				snap[n] = atomic_load_explicit(&sh->stable_in[n], memory_order_acquire);
			memset(seen, 0, hi - lo);
			/* forward or reverse, by a scan or by a cursor */
			unsigned how = (unsigned)pbox_rng_below(&r, 4);
			bool rev = how & 1;
			cc_scan_ctx sc = { .rd = rd, .lo = lo, .hi = hi, .rev = rev,
					   .prev = rev ? (int64_t)hi : -1, .seen = seen,
					   .stop_at = pbox_rng_below(&r, 4) ? 0 :
					   1 + (unsigned)pbox_rng_below(&r, 50) };
			int rc;
			if (how < 2)
				rc = pbox_bt_scan_ex(sh->bt, sp, sp ? 4 : 0, ep, ep ? 4 : 0,
						     rev ? PBOX_BT_SCAN_REVERSE : 0, cc_scan_fn, &sc);
			else
				rc = cc_cursor_walk(sh->bt, skey, ekey, &sc);
			rd->scans++;
			rd->scanned += sc.calls;
			if (sc.msg[0]) {
				cc_fail(sh, "reader %u: %s", rd->id, sc.msg);
				break;
			}
			static const char *const hows[] = { "scan", "reverse scan", "cursor walk",
							    "reverse cursor walk" };
			if (rc != 0 && !(rc == SCAN_STOP && sc.calls == sc.stop_at)) {
				cc_fail(sh, "reader %u: %s [%u, %u) = %s after %u pairs (stop at %u)",
					rd->id, hows[how], lo, hi, pbox_status_name(rc), sc.calls,
					sc.stop_at);
				break;
			}
			/* keys inserted before the scan and never removed were reported (up to the
			 * early stop) */
			uint32_t from = lo, upto = hi;
			if (rc == SCAN_STOP) {
				if (rev)
					from = (uint32_t)sc.prev;
				else
					upto = (uint32_t)sc.prev;
			}
			for (uint32_t n = from; n < upto; n++)
				if (snap[n] && !seen[n - lo]) {
					cc_fail(sh, "reader %u: %s [%u, %u) missed key %u, inserted "
						"before it began and never removed", rd->id, hows[how], lo,
						hi, n);
					break;
				}
		} else if (rd->id == 0 && pbox_rng_below(&r, 4) == 0) {
			/* verify while writers run: the tree is consistent under its latches */
			pbox_bt_verify_info info;
			int rc = pbox_bt_verify(sh->bt, &info);
			rd->verifies++;
			if (rc) {
				cc_fail(sh, "reader %u: verify during writes = %s", rd->id,
					pbox_status_name(rc));
				break;
			}
		}
	}
	free(seen);
	free(snap);
	return NULL;
}

typedef struct cc_cfg {
	unsigned nw, nr;
	uint64_t budget_pages;
	unsigned nkeys, nops;
} cc_cfg;

static const cc_cfg cc_cfgs[] = {
	{ 1, 1, 64, 2000, 20000 },
	{ 2, 2, 16384, 1200, 12000 },
	{ 4, 4, 64, 800, 6000 },
	{ 3, 1, 128, 1000, 8000 },
};

typedef struct cc_final_ctx {
	cc_writer *ws;
	unsigned nw;
	uint64_t n;
	char msg[256];
} cc_final_ctx;

static int cc_final_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cc_final_ctx *c = arg;
	uint32_t n, ver;
	if (!nkey_check(k, kl, &n)) {
		snprintf(c->msg, sizeof(c->msg), "malformed key");
		return SCAN_BAD;
	}
	uint32_t w = n % c->nw, i = n / c->nw;
	if (!sv_check(v, vl, n, &ver) || c->ws[w].ver[i] != ver) {
		snprintf(c->msg, sizeof(c->msg), "key %u: version %u, writer %u wrote %u last", n,
			 sv_check(v, vl, n, &ver) ? ver : 0, w, c->ws[w].ver[i]);
		return SCAN_BAD;
	}
	c->n++;
	return 0;
}

START_TEST(test_concurrent)
{
	const cc_cfg *cfg = &cc_cfgs[_i];
	uint64_t seed = pbox_test_seed() ^ (0xcc00ull + (unsigned)_i);
	fprintf(stderr, "concurrent (%u writers, %u readers, %llu-page budget): seed %llu\n",
		cfg->nw, cfg->nr, (unsigned long long)cfg->budget_pages, (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, 4096, cfg->budget_pages);
	static cc_shared sh;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	sh.bt = bt_create(e.st, "cc");
	sh.nw = cfg->nw;
	sh.nkeys = cfg->nkeys;
	uint32_t total = cfg->nw * cfg->nkeys;
	sh.stable_in = xmalloc(total);
	for (uint32_t n = 0; n < total; n++)
		atomic_init(&sh.stable_in[n], 0);
	cc_writer ws[8];
	cc_reader rs[8];
	pthread_t th[16];
	unsigned nth = 0;
	for (unsigned w = 0; w < cfg->nw; w++) {
		ws[w] = (cc_writer){ .sh = &sh, .w = w, .seed = pbox_rng_next(&r),
				     .nops = cfg->nops * pbox_test_scale() };
		ws[w].ver = calloc(cfg->nkeys, sizeof(uint32_t));
		REQ_T(ws[w].ver != NULL);
	}
	for (unsigned k = 0; k < cfg->nr; k++) {
		rs[k] = (cc_reader){ .sh = &sh, .id = k, .seed = pbox_rng_next(&r) };
		rs[k].last_ver = calloc(total, sizeof(uint32_t));
		REQ_T(rs[k].last_ver != NULL);
	}
	for (unsigned w = 0; w < cfg->nw; w++)
		REQ_T(pthread_create(&th[nth++], NULL, cc_writer_main, &ws[w]) == 0);
	for (unsigned k = 0; k < cfg->nr; k++)
		REQ_T(pthread_create(&th[nth++], NULL, cc_reader_main, &rs[k]) == 0);
	for (unsigned t = 0; t < nth; t++)
		pthread_join(th[t], NULL);
	REQ(!atomic_load(&sh.failed), "%s (seed %llu)", sh.msg, (unsigned long long)seed);

	/* the tree is the union of the writers' oracles */
	uint64_t want = 0, wops = 0, lookups = 0, found = 0, scans = 0, scanned = 0, ver = 0;
	for (unsigned w = 0; w < cfg->nw; w++) {
		wops += ws[w].ops;
		for (unsigned i = 0; i < cfg->nkeys; i++)
			want += ws[w].ver[i] != 0;
	}
	for (unsigned k = 0; k < cfg->nr; k++) {
		lookups += rs[k].lookups, found += rs[k].found, scans += rs[k].scans;
		scanned += rs[k].scanned, ver += rs[k].verifies;
	}
	cc_final_ctx fc = { .ws = ws, .nw = cfg->nw };
	int rc = pbox_bt_scan(sh.bt, NULL, 0, NULL, 0, cc_final_fn, &fc);
	REQ(rc == 0 && !fc.msg[0], "final scan: %s %s (seed %llu)", pbox_status_name(rc), fc.msg,
	    (unsigned long long)seed);
	REQ_EQ(fc.n, want);
	pbox_bt_verify_info info = bt_verify(sh.bt);
	REQ_EQ(info.keys, want);
	fprintf(stderr, "concurrent: %llu writer ops, %llu keys at the end (%llu leaves, depth "
			"%llu); readers: %llu lookups (%llu found), %llu scans (%llu pairs), %llu "
			"verifies\n", (unsigned long long)wops, (unsigned long long)want,
		(unsigned long long)info.leaves, (unsigned long long)info.depth,
		(unsigned long long)lookups, (unsigned long long)found, (unsigned long long)scans,
		(unsigned long long)scanned, (unsigned long long)ver);
	/* the same after a reopen */
	pbox_bt_close(sh.bt);
	env_reopen(&e);
	sh.bt = bt_open(e.st, "cc");
	fc.n = 0;
	rc = pbox_bt_scan(sh.bt, NULL, 0, NULL, 0, cc_final_fn, &fc);
	REQ(rc == 0 && !fc.msg[0], "scan after reopen: %s %s", pbox_status_name(rc), fc.msg);
	REQ_EQ(fc.n, want);
	pbox_bt_close(sh.bt);
	env_fini(&e);
	for (unsigned w = 0; w < cfg->nw; w++)
		free(ws[w].ver);
	for (unsigned k = 0; k < cfg->nr; k++)
		free(rs[k].last_ver);
	free(sh.stable_in);
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

/* Concurrent catalog operations: open_or_create of shared names, create races. */
#define CAT_T 4
#define CAT_N 16

typedef struct cat_ctx {
	pbox_store *st;
	unsigned id;
	atomic_uint *created; /* [k]: successful creates of "excl-k" */
	cc_shared *sh;
} cat_ctx;

static void *cat_main(void *arg)
{
	cat_ctx *c = arg;
	char name[32];
	for (unsigned k = 0; k < CAT_N && !atomic_load(&c->sh->failed); k++) {
		unsigned kk = (k + c->id * 5) % CAT_N; /* different orders per thread */
		pbox_bt *bt = NULL;
		snprintf(name, sizeof(name), "shared-%02u", kk);
		int rc = pbox_bt_open_or_create(c->st, name, &bt);
		if (rc) {
			cc_fail(c->sh, "thread %u: open_or_create %s = %s", c->id, name,
				pbox_status_name(rc));
			break;
		}
		uint8_t key[1] = { (uint8_t)c->id };
		rc = pbox_bt_insert(bt, key, 1, name, strlen(name), 0);
		pbox_bt_close(bt);
		if (rc) {
			cc_fail(c->sh, "thread %u: insert into %s = %s", c->id, name,
				pbox_status_name(rc));
			break;
		}
		snprintf(name, sizeof(name), "excl-%02u", kk);
		bt = NULL;
		rc = pbox_bt_create(c->st, name, &bt);
		if (rc == 0) {
			atomic_fetch_add(&c->created[kk], 1);
			pbox_bt_close(bt);
		} else if (rc != PBOX_EEXIST) {
			cc_fail(c->sh, "thread %u: create %s = %s", c->id, name, pbox_status_name(rc));
			break;
		}
	}
	return NULL;
}

START_TEST(test_concurrent_catalog)
{
	env e;
	env_init(&e, 4096, 64);
	static cc_shared sh;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	atomic_uint created[CAT_N];
	for (unsigned k = 0; k < CAT_N; k++)
		atomic_init(&created[k], 0);
	cat_ctx cs[CAT_T];
	pthread_t th[CAT_T];
	for (unsigned t = 0; t < CAT_T; t++) {
		cs[t] = (cat_ctx){ .st = e.st, .id = t, .created = created, .sh = &sh };
		REQ_T(pthread_create(&th[t], NULL, cat_main, &cs[t]) == 0);
	}
	for (unsigned t = 0; t < CAT_T; t++)
		pthread_join(th[t], NULL);
	REQ(!atomic_load(&sh.failed), "%s", sh.msg);
	for (unsigned k = 0; k < CAT_N; k++)
		REQ(atomic_load(&created[k]) == 1, "excl-%02u was created %u times", k,
		    atomic_load(&created[k]));
	static char names[2 * CAT_N][16];
	const char *want[2 * CAT_N];
	for (unsigned k = 0; k < CAT_N; k++) {
		snprintf(names[k], sizeof(names[k]), "excl-%02u", k);
		snprintf(names[CAT_N + k], sizeof(names[k]), "shared-%02u", k);
	}
	for (unsigned i = 0; i < 2 * CAT_N; i++)
		want[i] = names[i];
	for (unsigned round = 0; round < 2; round++) {
		check_list(e.st, want, 2 * CAT_N);
		for (unsigned k = 0; k < CAT_N; k++) {
			pbox_bt *bt = bt_open(e.st, names[CAT_N + k]);
			REQ_EQ(bt_verify(bt).keys, CAT_T); /* every thread's insert, in one tree */
			pbox_bt_close(bt);
			bt = bt_open(e.st, names[k]);
			REQ_EQ(bt_verify(bt).keys, 0);
			pbox_bt_close(bt);
		}
		env_reopen(&e);
	}
	env_fini(&e);
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

/* The same races on two stores at once (each store has a catalog lock of its own): in each
 * store every name is created exactly once and holds that store's threads' inserts. */
START_TEST(test_concurrent_catalog_stores)
{
	enum { NS = 2 };
	static env e[NS];
	static cc_shared sh;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	atomic_uint created[NS][CAT_N];
	cat_ctx cs[NS][CAT_T];
	pthread_t th[NS][CAT_T];
	for (unsigned s = 0; s < NS; s++) {
		env_init(&e[s], 4096, 64);
		for (unsigned k = 0; k < CAT_N; k++)
			atomic_init(&created[s][k], 0);
	}
	for (unsigned t = 0; t < CAT_T; t++) {
		for (unsigned s = 0; s < NS; s++) {
			cs[s][t] = (cat_ctx){ .st = e[s].st, .id = t, .created = created[s], .sh = &sh };
			REQ_T(pthread_create(&th[s][t], NULL, cat_main, &cs[s][t]) == 0);
		}
	}
	for (unsigned s = 0; s < NS; s++)
		for (unsigned t = 0; t < CAT_T; t++)
			pthread_join(th[s][t], NULL);
	REQ(!atomic_load(&sh.failed), "%s", sh.msg);
	for (unsigned s = 0; s < NS; s++) {
		for (unsigned k = 0; k < CAT_N; k++) {
			char name[16];
			REQ(atomic_load(&created[s][k]) == 1, "store %u: excl-%02u was created %u times",
			    s, k, atomic_load(&created[s][k]));
			snprintf(name, sizeof(name), "shared-%02u", k);
			pbox_bt *bt = bt_open(e[s].st, name);
			REQ_EQ(bt_verify(bt).keys, CAT_T); /* every thread's insert, in one tree */
			pbox_bt_close(bt);
		}
		env_fini(&e[s]);
	}
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_concurrency");
	TCase *tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_concurrent, 0, (int)(sizeof(cc_cfgs) / sizeof(cc_cfgs[0])));
	tcase_add_test(tc, test_concurrent_catalog);
	tcase_add_test(tc, test_concurrent_catalog_stores);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
