/*
 * check_btree_node.c — the B+tree node layer (btree/src/node.c), white-box: random
 * operations against a sorted-array oracle on 4, 16 and 64 KiB pages (contents, space
 * accounting, lower_bound), splits (separator truncation, fences, ascending fill packing,
 * inner semantics) and merges back, the documented limits, and corruption: byte flips and
 * random garbage in the node area never make verify, lower_bound or the write paths read or
 * write outside the page, and a node that still verifies is still consistent.
 *
 * Pages are allocated page-aligned and filled with a pattern before init, and the 32-byte
 * storage header carries a marker the node layer must never touch.
 */
#include "node.h"

#include "pbox_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KMAX_ANY PBOX_BT_KEY_MAX_ANY
#define HDR_MARK 0x5a

/* Assertions that cost nothing when they hold (Check's own ck_assert_* record every
 * location they pass through with a write(2); the loops here make millions of checks). */
#define REQ(cond, ...)                                                                      \
	do {                                                                                \
		if (!(cond))                                                                \
			ck_abort_msg(__VA_ARGS__);                                          \
	} while (0)
#define REQ_T(cond) REQ(cond, "%s:%d: %s", __FILE__, __LINE__, #cond)
#define REQ_CMP_(a, op, b)                                                                  \
	do {                                                                                \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
		REQ(a_ op b_, "%s:%d: %s (%llu) %s %s (%llu)", __FILE__, __LINE__, #a, a_, #op,  \
		    #b, b_);                                                                \
	} while (0)
#define REQ_EQ(a, b) REQ_CMP_(a, ==, b)
#define REQ_LE(a, b) REQ_CMP_(a, <=, b)
#define REQ_GE(a, b) REQ_CMP_(a, >=, b)
#define REQ_GT(a, b) REQ_CMP_(a, >, b)
#define CK_RC(expr, want)                                                                   \
	do {                                                                                \
		int rc_ = (expr);                                                           \
		REQ(rc_ == (want), "%s:%d: %s = %s, want %s", __FILE__, __LINE__, #expr,     \
		    pbox_status_name(rc_), pbox_status_name(want));                         \
	} while (0)

static const uint32_t page_sizes[] = { 4096, 16384, 65536 };

/* ThreadSanitizer makes every memcpy and memcmp of this single-threaded suite slow (about
 * 10x ASan) and finds nothing in it that ASan does not: the TSan build does 1/WORK_DIV of
 * the randomized and sweeping work, the release and ASan builds all of it. */
#if defined(__SANITIZE_THREAD__)
#define WORK_DIV 8u
#else
#define WORK_DIV 1u
#endif

static void *page_new(uint32_t ps)
{
	void *p = aligned_alloc(ps, ps);
	REQ_T(p != NULL);
	memset(p, 0xa5, ps);
	memset(p, HDR_MARK, PBOX_PAGE_HDR);
	return p;
}

static void check_hdr_untouched(const void *page)
{
	const uint8_t *p = page;
	for (uint32_t i = 0; i < PBOX_PAGE_HDR; i++)
		REQ(p[i] == HDR_MARK, "page header byte %u changed", i);
}

static int kcmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	uint32_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

static uint32_t lcp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	uint32_t i = 0;
	while (i < al && i < bl && a[i] == b[i])
		i++;
	return i;
}


/* ---- the oracle ---------------------------------------------------------------------------- */

typedef struct ent {
	uint8_t *key, *val;
	uint32_t klen, vlen;
	unsigned flags;
} ent;

typedef struct oracle {
	ent *e;
	uint32_t n, cap;
} oracle;

static uint8_t *dup_bytes(const void *p, uint32_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	REQ_T(d != NULL);
	if (n)
		memcpy(d, p, n);
	return d;
}

static uint32_t or_lb(const oracle *o, const uint8_t *key, uint32_t klen, bool *exact)
{
	uint32_t lo = 0, hi = o->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (kcmp(o->e[mid].key, o->e[mid].klen, key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*exact = lo < o->n && kcmp(o->e[lo].key, o->e[lo].klen, key, klen) == 0;
	return lo;
}

static void or_insert(oracle *o, uint32_t pos, const uint8_t *key, uint32_t klen,
		      const uint8_t *val, uint32_t vlen, unsigned flags)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->e = realloc(o->e, o->cap * sizeof(ent));
		REQ_T(o->e != NULL);
	}
	memmove(&o->e[pos + 1], &o->e[pos], (o->n - pos) * sizeof(ent));
	o->e[pos] = (ent){ dup_bytes(key, klen), dup_bytes(val, vlen), klen, vlen, flags };
	o->n++;
}

static void or_set(oracle *o, uint32_t pos, const uint8_t *val, uint32_t vlen, unsigned flags)
{
	free(o->e[pos].val);
	o->e[pos].val = dup_bytes(val, vlen);
	o->e[pos].vlen = vlen;
	o->e[pos].flags = flags;
}

static void or_remove(oracle *o, uint32_t pos)
{
	free(o->e[pos].key);
	free(o->e[pos].val);
	memmove(&o->e[pos], &o->e[pos + 1], (o->n - pos - 1) * sizeof(ent));
	o->n--;
}

static void or_free(oracle *o)
{
	while (o->n)
		or_remove(o, o->n - 1);
	free(o->e);
	o->e = NULL;
	o->cap = 0;
}

/* The node's content as an oracle. */
static void or_from_node(oracle *o, const void *page, uint32_t ps)
{
	uint8_t kb[KMAX_ANY];
	uint32_t n = pbox__bt_node_count(page);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kl, vl;
		const uint8_t *v;
		unsigned fl;
		CK_RC(pbox__bt_node_key(page, ps, i, kb, sizeof(kb), &kl), 0);
		CK_RC(pbox__bt_node_payload(page, ps, i, &v, &vl, &fl), 0);
		or_insert(o, o->n, kb, kl, v, vl, fl);
	}
}

/* ---- key spaces (fences) ------------------------------------------------------------------- */

typedef struct keyspace {
	uint32_t ps, kmax;
	bool inner;
	bool lo_fin, hi_fin;
	uint8_t lo[KMAX_ANY], hi[KMAX_ANY];
	uint32_t lolen, hilen;
	uint8_t pre[64]; /* common prefix of the fences, and the first byte range after it */
	uint32_t prelen;
	unsigned first_lo, first_hi;
} keyspace;

static const uint8_t special[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };

static uint8_t rnd_byte(pbox_rng *r)
{
	if (pbox_rng_below(r, 2))
		return special[pbox_rng_below(r, sizeof(special))];
	return (uint8_t)pbox_rng_next(r);
}

static bool ks_contains(const keyspace *ks, const uint8_t *k, uint32_t kl)
{
	if (kl > ks->kmax)
		return false;
	if (ks->lo_fin && kcmp(k, kl, ks->lo, ks->lolen) <= 0)
		return false;
	if (ks->hi_fin) {
		int c = kcmp(k, kl, ks->hi, ks->hilen);
		if (c > 0 || (c == 0 && ks->inner))
			return false;
	}
	return true;
}

static void ks_make(keyspace *ks, pbox_rng *r, uint32_t ps, bool inner, unsigned mode)
{
	memset(ks, 0, sizeof(*ks));
	ks->ps = ps;
	ks->kmax = PBOX_BT_KEY_MAX(ps);
	ks->inner = inner;
	ks->first_lo = 0;
	ks->first_hi = 255;
	switch (mode) {
	case 0: /* (-inf, +inf) */
		break;
	case 1: /* (lower, +inf) */
		ks->lo_fin = true;
		ks->lolen = (uint32_t)pbox_rng_below(r, 3);
		for (uint32_t i = 0; i < ks->lolen; i++)
			ks->lo[i] = rnd_byte(r);
		break;
	case 2: /* (-inf, upper] */
		ks->hi_fin = true;
		ks->hilen = 1 + (uint32_t)pbox_rng_below(r, 3);
		for (uint32_t i = 0; i < ks->hilen; i++)
			ks->hi[i] = (uint8_t)(0x80 | pbox_rng_next(r));
		break;
	default: { /* (P + a..., P + b...] with a shared prefix P */
		ks->lo_fin = ks->hi_fin = true;
		ks->prelen = (uint32_t)pbox_rng_below(r, 41);
		for (uint32_t i = 0; i < ks->prelen; i++)
			ks->pre[i] = rnd_byte(r);
		memcpy(ks->lo, ks->pre, ks->prelen);
		memcpy(ks->hi, ks->pre, ks->prelen);
		unsigned a = (unsigned)pbox_rng_below(r, 200), b = a + 1 + (unsigned)pbox_rng_below(r, 255 - a);
		bool lo_is_prefix = pbox_rng_below(r, 4) == 0; /* lower = P exactly */
		ks->lolen = ks->prelen;
		if (!lo_is_prefix) {
			ks->lo[ks->lolen++] = (uint8_t)a;
			for (uint32_t t = (uint32_t)pbox_rng_below(r, 3); t; t--)
				ks->lo[ks->lolen++] = rnd_byte(r);
		}
		ks->hilen = ks->prelen;
		ks->hi[ks->hilen++] = (uint8_t)b;
		for (uint32_t t = (uint32_t)pbox_rng_below(r, 3); t; t--)
			ks->hi[ks->hilen++] = rnd_byte(r);
		ks->first_lo = lo_is_prefix ? 0 : a;
		ks->first_hi = b;
		break;
	}
	}
}

static void ks_init(const keyspace *ks, void *page)
{
	const void *lo = ks->lo_fin ? ks->lo : NULL, *hi = ks->hi_fin ? ks->hi : NULL;
	if (ks->inner)
		CK_RC(pbox__bt_node_init_inner(page, ks->ps, lo, ks->lolen, hi, ks->hilen, 7), 0);
	else
		CK_RC(pbox__bt_node_init_leaf(page, ks->ps, lo, ks->lolen, hi, ks->hilen), 0);
}

static uint32_t rnd_len(pbox_rng *r, uint32_t max)
{
	uint64_t c = pbox_rng_below(r, 100);
	uint32_t l;
	if (c < 60)
		l = (uint32_t)pbox_rng_below(r, 7);
	else if (c < 92)
		l = 7 + (uint32_t)pbox_rng_below(r, 34);
	else
		l = (uint32_t)pbox_rng_below(r, (uint64_t)max + 1);
	return l > max ? max : l;
}

/* A random key inside the key space: fresh, or derived from a key of the oracle (extended,
 * truncated, last byte moved), so that shared prefixes and length-only differences occur. */
static bool gen_key(pbox_rng *r, const keyspace *ks, const oracle *o, uint8_t *k, uint32_t *kl)
{
	for (int attempt = 0; attempt < 64; attempt++) {
		uint32_t len = 0;
		if (o->n && pbox_rng_below(r, 100) < 45) {
			const ent *e = &o->e[pbox_rng_below(r, o->n)];
			memcpy(k, e->key, e->klen);
			len = e->klen;
			switch (pbox_rng_below(r, 4)) {
			case 0:
				for (uint32_t t = 1 + (uint32_t)pbox_rng_below(r, 3); t && len < ks->kmax; t--)
					k[len++] = rnd_byte(r);
				break;
			case 1:
				len = (uint32_t)pbox_rng_below(r, (uint64_t)len + 1);
				break;
			case 2:
				if (len)
					k[len - 1] = (uint8_t)(k[len - 1] + (pbox_rng_below(r, 2) ? 1 : 0xff));
				break;
			default:
				if (len && len < ks->kmax)
					k[len++] = 0x00;
				break;
			}
		} else {
			if (ks->prelen || (ks->lo_fin && ks->hi_fin)) {
				memcpy(k, ks->pre, ks->prelen);
				len = ks->prelen;
				k[len++] = (uint8_t)(ks->first_lo +
						     pbox_rng_below(r, ks->first_hi - ks->first_lo + 1));
			}
			uint32_t tail = rnd_len(r, ks->kmax - len);
			for (uint32_t i = 0; i < tail; i++)
				k[len++] = rnd_byte(r);
		}
		if (ks_contains(ks, k, len)) {
			*kl = len;
			return true;
		}
	}
	return false;
}

static uint32_t gen_val(pbox_rng *r, uint8_t *v, uint32_t max, uint32_t scale)
{
	uint64_t c = pbox_rng_below(r, 100);
	uint32_t l;
	if (c < 45)
		l = (uint32_t)pbox_rng_below(r, 9);
	else if (c < 90)
		l = (uint32_t)pbox_rng_below(r, 24 * (uint64_t)scale + 1);
	else
		l = (uint32_t)pbox_rng_below(r, (uint64_t)max + 1);
	if (l > max)
		l = max;
	for (uint32_t i = 0; i < l; i++)
		v[i] = (uint8_t)pbox_rng_next(r);
	return l;
}

/* Payload for a key: a child id for inner nodes. */
static uint32_t gen_payload(pbox_rng *r, const keyspace *ks, uint32_t klen, uint8_t *v)
{
	if (ks->inner) {
		uint64_t pid = PBOX_BT_NODE_PID_MIN + pbox_rng_below(r, 1u << 30);
		memcpy(v, &pid, 8);
		return 8;
	}
	return gen_val(r, v, PBOX_BT_ENTRY_MAX(ks->ps) - klen, ks->ps / 4096);
}

/* ---- comparing a node with the oracle -------------------------------------------------------- */

static uint32_t expect_prefix(const keyspace *ks)
{
	return ks->lo_fin && ks->hi_fin ? lcp(ks->lo, ks->lolen, ks->hi, ks->hilen) : 0;
}

static uint32_t expect_used(const keyspace *ks, const oracle *o)
{
	uint32_t p = expect_prefix(ks);
	uint32_t used = PBOX_BT_NODE_HDR + (ks->lo_fin ? ks->lolen : 0) + (ks->hi_fin ? ks->hilen : 0);
	for (uint32_t i = 0; i < o->n; i++)
		used += PBOX_BT_NODE_SLOT + o->e[i].klen - p + o->e[i].vlen;
	return used;
}

static void check_fences(const void *page, uint32_t ps, const uint8_t *lo, uint32_t lolen,
			 const uint8_t *hi, uint32_t hilen)
{
	const uint8_t *a, *b;
	uint32_t al, bl;
	CK_RC(pbox__bt_node_fences(page, ps, &a, &al, &b, &bl), 0);
	REQ((a == NULL) == (lo == NULL), "lower fence finiteness");
	REQ((b == NULL) == (hi == NULL), "upper fence finiteness");
	if (lo)
		REQ(kcmp(a, al, lo, lolen) == 0, "lower fence bytes");
	if (hi)
		REQ(kcmp(b, bl, hi, hilen) == 0, "upper fence bytes");
}

static void check_equal(const void *page, const keyspace *ks, const oracle *o)
{
	uint32_t ps = ks->ps;
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	check_hdr_untouched(page);
	REQ_EQ(pbox__bt_node_count(page), o->n);
	REQ_EQ(pbox__bt_node_prefix_len(page), expect_prefix(ks));
	REQ_EQ(pbox__bt_node_used_bytes(page, ps), expect_used(ks, o));
	REQ_EQ(pbox__bt_node_used_bytes(page, ps) + pbox__bt_node_free_bytes(page, ps),
			  ps - PBOX_PAGE_HDR);
	check_fences(page, ps, ks->lo_fin ? ks->lo : NULL, ks->lolen, ks->hi_fin ? ks->hi : NULL,
		     ks->hilen);
	uint8_t kb[KMAX_ANY];
	for (uint32_t i = 0; i < o->n; i++) {
		uint32_t kl, vl;
		const uint8_t *v;
		unsigned fl;
		CK_RC(pbox__bt_node_key(page, ps, i, kb, sizeof(kb), &kl), 0);
		REQ(kcmp(kb, kl, o->e[i].key, o->e[i].klen) == 0, "key %u differs", i);
		CK_RC(pbox__bt_node_payload(page, ps, i, &v, &vl, &fl), 0);
		REQ_EQ(vl, o->e[i].vlen);
		REQ(vl == 0 || memcmp(v, o->e[i].val, vl) == 0, "payload %u differs", i);
		REQ_EQ(fl, o->e[i].flags);
	}
}

static void check_lower_bound(const void *page, uint32_t ps, const oracle *o, const uint8_t *k,
			      uint32_t kl)
{
	uint32_t pos;
	bool exact, oexact;
	CK_RC(pbox__bt_node_lower_bound(page, ps, k, kl, &pos, &exact), 0);
	uint32_t opos = or_lb(o, k, kl, &oexact);
	REQ_EQ(pos, opos);
	REQ_EQ(exact, oexact);
}

/* ---- randomized differential test ------------------------------------------------------------ */

typedef struct run_stats {
	unsigned ins, enospc, eexist, rem, upd, upd_enospc, replace, compacts;
} run_stats;

static void diff_run(uint32_t ps, bool inner, pbox_rng *r, unsigned ops, run_stats *st)
{
	keyspace ks;
	ks_make(&ks, r, ps, inner, (unsigned)pbox_rng_below(r, 5));
	void *page = page_new(ps);
	ks_init(&ks, page);
	oracle o = { 0 };
	uint32_t ns = ps - PBOX_PAGE_HDR, p = expect_prefix(&ks);
	uint8_t k[KMAX_ANY], v[PBOX_BT_ENTRY_MAX(65536)];
	unsigned grow = 1; /* phases: 1 grow, 0 shrink, 2 mixed */
	check_equal(page, &ks, &o);
	for (unsigned step = 0; step < ops; step++) {
		if (step % 400 == 399)
			grow = (unsigned)pbox_rng_below(r, 3);
		unsigned ins_pct = grow == 1 ? 75 : grow == 0 ? 25 : 50;
		uint64_t c = pbox_rng_below(r, 100);
		uint32_t kl, vl;
		bool exact;
		if (c < ins_pct || o.n == 0) {
			if (!gen_key(r, &ks, &o, k, &kl))
				continue;
			vl = gen_payload(r, &ks, kl, v);
			unsigned fl = !inner && pbox_rng_below(r, 8) == 0 ? PBOX_BT_SLOT_OVERFLOW : 0;
			bool replace = pbox_rng_below(r, 10) == 0;
			uint32_t pos = or_lb(&o, k, kl, &exact);
			uint32_t used = expect_used(&ks, &o);
			int want;
			if (exact && !replace)
				want = PBOX_EEXIST;
			else if (exact)
				want = used - o.e[pos].vlen + vl <= ns ? 0 : PBOX_ENOSPC;
			else
				want = used + PBOX_BT_NODE_SLOT + (kl - p) + vl <= ns ? 0 : PBOX_ENOSPC;
			int rc = pbox__bt_node_insert(page, ps, k, kl, v, vl,
						      fl | (replace ? PBOX_BT_INSERT_REPLACE : 0));
			REQ(rc == want, "step %u: insert (klen %u vlen %u exact %d) = %s, want %s",
				      step, kl, vl, exact, pbox_status_name(rc), pbox_status_name(want));
			if (rc == 0 && exact) {
				or_set(&o, pos, v, vl, fl);
				st->replace++;
			} else if (rc == 0) {
				or_insert(&o, pos, k, kl, v, vl, fl);
				st->ins++;
			} else if (rc == PBOX_ENOSPC) {
				st->enospc++;
			} else {
				st->eexist++;
			}
		} else if (c < ins_pct + 15) {
			uint32_t i = (uint32_t)pbox_rng_below(r, o.n);
			CK_RC(pbox__bt_node_remove(page, ps, i), 0);
			or_remove(&o, i);
			st->rem++;
		} else if (c < 97) {
			uint32_t i = (uint32_t)pbox_rng_below(r, o.n);
			vl = gen_payload(r, &ks, o.e[i].klen, v);
			unsigned fl = !inner && pbox_rng_below(r, 8) == 0 ? PBOX_BT_SLOT_OVERFLOW : 0;
			int want = expect_used(&ks, &o) - o.e[i].vlen + vl <= ns ? 0 : PBOX_ENOSPC;
			int rc = pbox__bt_node_update(page, ps, i, v, vl, fl);
			REQ(rc == want, "step %u: update = %s, want %s", step,
				      pbox_status_name(rc), pbox_status_name(want));
			if (rc == 0)
				or_set(&o, i, v, vl, fl);
			else
				st->upd_enospc++;
			st->upd++;
		} else {
			uint32_t used = pbox__bt_node_used_bytes(page, ps);
			CK_RC(pbox__bt_node_compact(page, ps), 0);
			REQ_EQ(pbox__bt_node_used_bytes(page, ps), used);
			st->compacts++;
		}
		check_equal(page, &ks, &o);
		for (int t = 0; t < 3; t++) {
			if (pbox_rng_below(r, 4) == 0) { /* anything, also outside the fences */
				kl = rnd_len(r, ks.kmax);
				for (uint32_t i = 0; i < kl; i++)
					k[i] = rnd_byte(r);
			} else if (!gen_key(r, &ks, &o, k, &kl)) {
				continue;
			}
			check_lower_bound(page, ps, &o, k, kl);
		}
		for (uint32_t i = 0; i < o.n && pbox_rng_below(r, 2); i += 1 + (uint32_t)pbox_rng_below(r, 8))
			check_lower_bound(page, ps, &o, o.e[i].key, o.e[i].klen);
	}
	or_free(&o);
	free(page);
}

START_TEST(test_differential)
{
	uint32_t ps = page_sizes[_i];
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ (0x1000u + ps));
	run_stats st = { 0 };
	unsigned runs = ps == 4096 ? 24 : ps == 16384 ? 8 : 4;
	unsigned ops = ps == 4096 ? 1500 : ps == 16384 ? 3000 : 4000;
	runs = (runs + WORK_DIV - 1) / WORK_DIV * pbox_test_scale();
	ops = WORK_DIV > 1 ? ops / 2 : ops;
	for (unsigned i = 0; i < runs; i++)
		diff_run(ps, i % 4 == 3, &r, ops, &st);
	fprintf(stderr,
		"differential %u: %u inserts, %u ENOSPC, %u EEXIST, %u replaces, %u removes, "
		"%u updates (%u ENOSPC), %u compactions\n",
		ps, st.ins, st.enospc, st.eexist, st.replace, st.rem, st.upd, st.upd_enospc,
		st.compacts);
	REQ_GT(st.enospc, 0); /* the node was filled */
	REQ_GT(st.eexist, 0);
}
END_TEST

/* Dead space is reused: fill, remove every other entry, refill — inserts must succeed
 * through compaction although the free gap alone is too small. */
START_TEST(test_compaction_reuse)
{
	uint32_t ps = page_sizes[_i];
	void *page = page_new(ps);
	CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
	char k[32];
	uint8_t v[40];
	memset(v, 0x33, sizeof(v));
	uint32_t n = 0;
	for (;; n++) {
		int len = snprintf(k, sizeof(k), "k%07u", n * 2);
		int rc = pbox__bt_node_insert(page, ps, k, (uint32_t)len, v, sizeof(v), 0);
		if (rc == PBOX_ENOSPC)
			break;
		CK_RC(rc, 0);
	}
	REQ_GT(n, 10);
	for (uint32_t i = 0; i < n / 2; i++)
		CK_RC(pbox__bt_node_remove(page, ps, i), 0); /* removes slots 0, 2, 4, ... shifted */
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	uint32_t freed = pbox__bt_node_free_bytes(page, ps);
	uint32_t added = 0;
	for (uint32_t i = 0;; i++) {
		int len = snprintf(k, sizeof(k), "k%07u", i * 2 + 1);
		uint32_t need = pbox__bt_node_entry_space(page, (uint32_t)len, sizeof(v));
		uint32_t avail = pbox__bt_node_free_bytes(page, ps);
		int rc = pbox__bt_node_insert(page, ps, k, (uint32_t)len, v, sizeof(v), 0);
		if (need > avail) {
			CK_RC(rc, PBOX_ENOSPC);
			break;
		}
		CK_RC(rc, 0);
		added++;
		CK_RC(pbox__bt_node_verify(page, ps), 0);
	}
	REQ_GE(added, (freed / (PBOX_BT_NODE_SLOT + 8 + sizeof(v))) - 1);
	free(page);
}
END_TEST

/* ---- split and merge ------------------------------------------------------------------------- */

/* Length of the shortest string s with a <= s < b, found differently from node.c: for
 * L = 0, 1, ... the smallest string of length <= L that is >= a is a itself when |a| <= L,
 * else a[0, i) + (a[i] + 1) for the last i < L with a[i] != 0xff (if any); the first L for
 * which that string is below b is the answer. */
static uint32_t shortest_sep_len(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	static uint8_t t[KMAX_ANY];
	for (uint32_t L = 0;; L++) {
		uint32_t tl;
		if (al <= L) {
			memcpy(t, a, al);
			tl = al;
		} else {
			int i = (int)L - 1;
			while (i >= 0 && a[i] == 0xff)
				i--;
			if (i < 0)
				continue;
			memcpy(t, a, (size_t)i);
			t[i] = (uint8_t)(a[i] + 1);
			tl = (uint32_t)i + 1;
		}
		if (kcmp(t, tl, b, bl) < 0) {
			REQ_EQ(tl, L);
			return L;
		}
	}
}

/* Check a leaf separator for keys a < b: in [a, b), as short as possible, and at most the
 * distinguishing prefix + 1 long unless no such string exists (b is c+1 bytes, a longer,
 * and b[c] == a[c] + 1). */
static void check_separator(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl,
			    const uint8_t *s, uint32_t sl)
{
	REQ(kcmp(a, al, s, sl) <= 0, "separator below the left key");
	REQ(kcmp(s, sl, b, bl) < 0, "separator not below the right key");
	REQ_EQ(sl, shortest_sep_len(a, al, b, bl));
	uint32_t c = lcp(a, al, b, bl);
	if (!(bl == c + 1 && al > c + 1 && b[c] == a[c] + 1))
		REQ_LE(sl, c + 1);
}

static void node_fence_copy(const void *page, uint32_t ps, bool upper, uint8_t *buf,
			    uint32_t *len, bool *fin)
{
	const uint8_t *a, *b;
	uint32_t al, bl;
	CK_RC(pbox__bt_node_fences(page, ps, &a, &al, &b, &bl), 0);
	const uint8_t *f = upper ? b : a;
	*fin = f != NULL;
	*len = upper ? bl : al;
	if (f)
		memcpy(buf, f, *len);
}

/* Split orig (a copy of page) at nl, check both halves, merge back, compare. */
/* Split page at nl, check both halves, merge back, compare with the original. With
 * may_refuse, PBOX_ENOSPC (this nl cannot hold a separator) is accepted if the node is
 * unchanged; returns whether it split. */
static bool split_and_check(void *page, uint32_t ps, uint32_t nl, void *right, const uint8_t *pend,
			    uint32_t pendlen, unsigned *pend_ok, bool may_refuse)
{
	bool leaf = pbox__bt_node_is_leaf(page);
	oracle o = { 0 }, lo = { 0 }, ro = { 0 };
	or_from_node(&o, page, ps);
	uint8_t flo[KMAX_ANY], fhi[KMAX_ANY], sep[KMAX_ANY];
	uint32_t flol, fhil, sl;
	bool flof, fhif;
	node_fence_copy(page, ps, false, flo, &flol, &flof);
	node_fence_copy(page, ps, true, fhi, &fhil, &fhif);
	pbox_pid up = 0, mid_child = 0;
	if (!leaf) {
		CK_RC(pbox__bt_node_child(page, ps, o.n, &up), 0);
		CK_RC(pbox__bt_node_child(page, ps, nl, &mid_child), 0);
	}
	uint32_t used = pbox__bt_node_used_bytes(page, ps);

	static uint8_t before[PBOX_BT_PAGE_MAX];
	memcpy(before, page, ps);
	int rc = pbox__bt_node_split(page, right, ps, nl, sep, &sl);
	if (rc == PBOX_ENOSPC && may_refuse) {
		REQ(memcmp(before, page, ps) == 0, "refused split changed the node");
		or_free(&o);
		return false;
	}
	CK_RC(rc, 0);
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	CK_RC(pbox__bt_node_verify(right, ps), 0);
	check_hdr_untouched(page);
	check_hdr_untouched(right);
	/* fences chain: left = (lower, sep], right = (sep, upper] */
	check_fences(page, ps, flof ? flo : NULL, flol, sep, sl);
	check_fences(right, ps, sep, sl, fhif ? fhi : NULL, fhil);
	or_from_node(&lo, page, ps);
	or_from_node(&ro, right, ps);
	if (leaf) {
		REQ_EQ(lo.n, nl);
		REQ_EQ(ro.n, o.n - nl);
		check_separator(o.e[nl - 1].key, o.e[nl - 1].klen, o.e[nl].key, o.e[nl].klen, sep, sl);
	} else {
		REQ_EQ(lo.n, nl);
		REQ_EQ(ro.n, o.n - nl - 1);
		REQ(kcmp(sep, sl, o.e[nl].key, o.e[nl].klen) == 0,
			      "inner separator is the middle key, unchanged");
		pbox_pid c;
		CK_RC(pbox__bt_node_child(page, ps, nl, &c), 0);
		REQ_EQ(c, mid_child);
		CK_RC(pbox__bt_node_child(right, ps, ro.n, &c), 0);
		REQ_EQ(c, up);
	}
	uint32_t skip = leaf ? 0 : 1;
	for (uint32_t i = 0; i < lo.n; i++) {
		REQ_T(kcmp(lo.e[i].key, lo.e[i].klen, o.e[i].key, o.e[i].klen) == 0);
		REQ_T(lo.e[i].vlen == o.e[i].vlen && !memcmp(lo.e[i].val, o.e[i].val, o.e[i].vlen));
		REQ_EQ(lo.e[i].flags, o.e[i].flags);
		REQ_T(kcmp(lo.e[i].key, lo.e[i].klen, sep, sl) <= 0);
	}
	for (uint32_t i = 0; i < ro.n; i++) {
		const ent *e = &o.e[nl + skip + i];
		REQ_T(kcmp(ro.e[i].key, ro.e[i].klen, e->key, e->klen) == 0);
		REQ_T(ro.e[i].vlen == e->vlen && !memcmp(ro.e[i].val, e->val, e->vlen));
		REQ_EQ(ro.e[i].flags, e->flags);
		REQ_T(kcmp(ro.e[i].key, ro.e[i].klen, sep, sl) > 0);
	}

	/* The pending insert goes to its side; it must fit there unless the space says no. */
	if (pend && leaf) {
		bool left_side = kcmp(pend, pendlen, sep, sl) <= 0;
		void *t = left_side ? page : right;
		uint8_t val[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
		uint32_t need = pbox__bt_node_entry_space(t, pendlen, sizeof(val));
		uint32_t avail = pbox__bt_node_free_bytes(t, ps);
		int irc = pbox__bt_node_insert(t, ps, pend, pendlen, val, sizeof(val), 0);
		if (need <= avail) {
			CK_RC(irc, 0);
			(*pend_ok)++;
			uint32_t pos;
			bool exact;
			CK_RC(pbox__bt_node_lower_bound(t, ps, pend, pendlen, &pos, &exact), 0);
			REQ_T(exact);
			CK_RC(pbox__bt_node_remove(t, ps, pos), 0);
		} else {
			CK_RC(irc, PBOX_ENOSPC);
		}
	}

	/* Merge back: the original content, fences and space use. */
	CK_RC(pbox__bt_node_merge_check(page, right, ps), 0);
	CK_RC(pbox__bt_node_merge(page, right, ps), 0);
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	check_hdr_untouched(page);
	check_fences(page, ps, flof ? flo : NULL, flol, fhif ? fhi : NULL, fhil);
	oracle mo = { 0 };
	or_from_node(&mo, page, ps);
	REQ_EQ(mo.n, o.n);
	for (uint32_t i = 0; i < o.n; i++) {
		REQ_T(kcmp(mo.e[i].key, mo.e[i].klen, o.e[i].key, o.e[i].klen) == 0);
		REQ_T(mo.e[i].vlen == o.e[i].vlen && !memcmp(mo.e[i].val, o.e[i].val, o.e[i].vlen));
		REQ_EQ(mo.e[i].flags, o.e[i].flags);
	}
	if (!leaf) {
		pbox_pid c;
		CK_RC(pbox__bt_node_child(page, ps, o.n, &c), 0);
		REQ_EQ(c, up);
	}
	REQ_EQ(pbox__bt_node_used_bytes(page, ps), used);
	or_free(&o);
	or_free(&lo);
	or_free(&ro);
	or_free(&mo);
	return true;
}

/* Fill a node with random keys of its key space until an insert returns ENOSPC; the key
 * that did not fit is returned in pend. */
static void fill_node(void *page, const keyspace *ks, pbox_rng *r, uint8_t *pend, uint32_t *pendlen)
{
	oracle o = { 0 };
	uint8_t k[KMAX_ANY], v[PBOX_BT_ENTRY_MAX(65536)];
	uint32_t kl, vl;
	for (;;) {
		if (!gen_key(r, ks, &o, k, &kl))
			continue;
		bool exact;
		uint32_t pos = or_lb(&o, k, kl, &exact);
		if (exact)
			continue;
		vl = gen_payload(r, ks, kl, v);
		int rc = pbox__bt_node_insert(page, ks->ps, k, kl, v, vl, 0);
		if (rc == PBOX_ENOSPC) {
			memcpy(pend, k, kl);
			*pendlen = kl;
			break;
		}
		CK_RC(rc, 0);
		or_insert(&o, pos, k, kl, v, vl, 0);
		if (pbox_rng_below(r, 10) == 0) { /* leave some dead space behind */
			uint32_t i = (uint32_t)pbox_rng_below(r, o.n);
			CK_RC(pbox__bt_node_remove(page, ks->ps, i), 0);
			or_remove(&o, i);
		}
	}
	or_free(&o);
}

START_TEST(test_split_merge_leaf)
{
	uint32_t ps = page_sizes[_i];
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ (0x2000u + ps));
	void *page = page_new(ps), *right = page_new(ps);
	unsigned trials = (ps == 4096 ? 60 : ps == 16384 ? 20 : 8) * pbox_test_scale();
	unsigned pend_ok = 0, pend_total = 0, refused = 0;
	uint8_t pend[KMAX_ANY];
	uint32_t pendlen;
	for (unsigned t = 0; t < trials; t++) {
		keyspace ks;
		ks_make(&ks, &r, ps, false, (unsigned)pbox_rng_below(&r, 5));
		ks_init(&ks, page);
		fill_node(page, &ks, &r, pend, &pendlen);
		uint32_t n = pbox__bt_node_count(page);
		REQ_GE(n, 4);
		uint32_t pos;
		bool exact;
		CK_RC(pbox__bt_node_lower_bound(page, ps, pend, pendlen, &pos, &exact), 0);
		REQ_T(!exact);
		uint32_t nl = pbox__bt_node_split_choose(page, ps, pos);
		REQ_T(nl >= 1 && nl < n);
		split_and_check(page, ps, nl, right, pend, pendlen, &pend_ok, false);
		pend_total++;
		/* and a split at a random point, also the extremes */
		nl = 1 + (uint32_t)pbox_rng_below(&r, n - 1);
		if (t % 3 == 0)
			nl = t % 2 ? 1 : n - 1;
		refused += !split_and_check(page, ps, nl, right, NULL, 0, NULL, true);
	}
	fprintf(stderr, "split %u: the pending insert fitted after %u of %u splits; %u random "
		"split points refused\n", ps, pend_ok, pend_total, refused);
	REQ_GE(pend_ok * 10, pend_total * 9);
	/* invalid split points */
	uint8_t sep[KMAX_ANY];
	uint32_t sl, n = pbox__bt_node_count(page);
	CK_RC(pbox__bt_node_split(page, right, ps, 0, sep, &sl), PBOX_EINVAL);
	CK_RC(pbox__bt_node_split(page, right, ps, n, sep, &sl), PBOX_EINVAL);
	CK_RC(pbox__bt_node_split(page, page, ps, 1, sep, &sl), PBOX_EINVAL);
	free(page);
	free(right);
}
END_TEST

/* Middle splits by bytes give halves of similar size for equal-size entries. */
START_TEST(test_split_middle_balance)
{
	uint32_t ps = page_sizes[_i];
	void *page = page_new(ps), *right = page_new(ps);
	CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
	char k[32];
	uint8_t v[20] = { 0 };
	for (uint32_t i = 0;; i++) {
		int len = snprintf(k, sizeof(k), "m%09u", i * 7);
		int rc = pbox__bt_node_insert(page, ps, k, (uint32_t)len, v, sizeof(v), 0);
		if (rc == PBOX_ENOSPC)
			break;
		CK_RC(rc, 0);
	}
	uint32_t n = pbox__bt_node_count(page);
	uint32_t nl = pbox__bt_node_split_choose(page, ps, n / 3);
	REQ_GE(nl, n / 2 - 1);
	REQ_LE(nl, n / 2 + 1);
	uint8_t sep[KMAX_ANY];
	uint32_t sl;
	CK_RC(pbox__bt_node_split(page, right, ps, nl, sep, &sl), 0);
	uint32_t ns = ps - PBOX_PAGE_HDR;
	REQ_GE(pbox__bt_node_used_bytes(page, ps), ns * 4 / 10);
	REQ_GE(pbox__bt_node_used_bytes(right, ps), ns * 4 / 10);
	REQ_T(!pbox__bt_node_underfull(page, ps));
	free(page);
	free(right);
}
END_TEST

/* Ascending inserts at the right end: every split keeps the left node nearly full. */
START_TEST(test_split_ascending)
{
	uint32_t ps = page_sizes[_i];
	void *cur = page_new(ps), *next = page_new(ps);
	CK_RC(pbox__bt_node_init_leaf(cur, ps, NULL, 0, NULL, 0), 0);
	uint32_t ns = ps - PBOX_PAGE_HDR, splits = 0;
	char k[32];
	uint8_t v[16];
	memset(v, 0x42, sizeof(v));
	for (uint32_t i = 0; splits < 6; i++) {
		int len = snprintf(k, sizeof(k), "user%010u", i);
		int rc = pbox__bt_node_insert(cur, ps, k, (uint32_t)len, v, sizeof(v), 0);
		if (rc == 0)
			continue;
		CK_RC(rc, PBOX_ENOSPC);
		uint32_t n = pbox__bt_node_count(cur), pos;
		bool exact;
		CK_RC(pbox__bt_node_lower_bound(cur, ps, k, (uint32_t)len, &pos, &exact), 0);
		REQ_EQ(pos, n);
		uint32_t nl = pbox__bt_node_split_choose(cur, ps, pos);
		REQ_EQ(nl, n - 1);
		uint8_t sep[KMAX_ANY];
		uint32_t sl;
		CK_RC(pbox__bt_node_split(cur, next, ps, nl, sep, &sl), 0);
		CK_RC(pbox__bt_node_verify(cur, ps), 0);
		CK_RC(pbox__bt_node_verify(next, ps), 0);
		/* The left node keeps all but the last entry. Its new upper fence gives it a
		 * longer prefix, so its entries take less room than when they were inserted:
		 * count their bytes as inserted (full keys), which is how full the node was
		 * packed. */
		REQ_EQ(pbox__bt_node_count(cur), n - 1);
		uint32_t packed = PBOX_BT_NODE_HDR;
		for (uint32_t j = 0; j + 1 < n; j++)
			packed += PBOX_BT_NODE_SLOT + (uint32_t)len + sizeof(v);
		REQ(packed * 10 >= ns * 9, "left node packed with only %u of %u bytes", packed, ns);
		REQ_GE(pbox__bt_node_used_bytes(cur, ps) * 10, ns * 7);
		REQ_LE(sl, (uint32_t)len); /* truncated */
		splits++;
		void *t = cur;
		cur = next;
		next = t;
		CK_RC(pbox__bt_node_insert(cur, ps, k, (uint32_t)len, v, sizeof(v), 0), 0);
	}
	free(cur);
	free(next);
}
END_TEST

START_TEST(test_separator_truncation)
{
	const uint32_t ps = 4096;
	void *page = page_new(ps), *right = page_new(ps);
	static const struct {
		const char *a, *b;
		uint32_t al, bl;
		const char *want;
		uint32_t wl;
	} cases[] = {
		{ "apple", "banana", 5, 6, "b", 1 },            /* first byte of b */
		{ "ab", "abcdef", 2, 6, "ab", 2 },              /* a is a prefix of b */
		{ "abc", "abd", 3, 3, "abc", 3 },               /* a is c+1 long */
		{ "abcx", "abd", 4, 3, "abcx", 4 },             /* b is c+1 long: fallback a */
		{ "abcx", "abdy", 4, 4, "abd", 3 },
		{ "a\0\0", "a\0\1", 3, 3, "a\0\0", 3 },
		{ "", "\0", 0, 1, "", 0 },                        /* empty left key */
		{ "\xff\xff", "\xff\xff\x00", 2, 3, "\xff\xff", 2 },
		{ "abbx", "abd", 4, 3, "abc", 3 },               /* a byte between */
		{ "abcxyz", "abd", 6, 3, "abcy", 4 },            /* adjacent: increment after c */
		{ "abc\xff\x10z", "abd", 6, 3, "abc\xff\x11", 5 }, /* skipping 0xff */
		{ "abc\xff\xffz", "abd", 6, 3, "abc\xff\xffz", 6 }, /* nothing shorter */
	};
	for (unsigned c = 0; c < PBOX_ARRAY_LEN(cases); c++) {
		CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
		CK_RC(pbox__bt_node_insert(page, ps, cases[c].a, cases[c].al, "x", 1, 0), 0);
		CK_RC(pbox__bt_node_insert(page, ps, cases[c].b, cases[c].bl, "y", 1, 0), 0);
		uint8_t sep[KMAX_ANY];
		uint32_t sl;
		CK_RC(pbox__bt_node_split(page, right, ps, 1, sep, &sl), 0);
		REQ(sl == cases[c].wl && memcmp(sep, cases[c].want, sl) == 0,
			      "case %u: separator of length %u", c, sl);
		check_separator((const uint8_t *)cases[c].a, cases[c].al, (const uint8_t *)cases[c].b,
				cases[c].bl, sep, sl);
		CK_RC(pbox__bt_node_verify(page, ps), 0);
		CK_RC(pbox__bt_node_verify(right, ps), 0);
	}
	free(page);
	free(right);
}
END_TEST

/* A separator that cannot be truncated (a long key ending in 0xff bytes before a short key
 * one byte above it) does not fit the left node at the end split: split refuses that point
 * without changing anything and split_choose picks one that works. */
START_TEST(test_split_long_separator)
{
	const uint32_t ps = 4096;
	void *page = page_new(ps), *right = page_new(ps);
	static uint8_t before[4096];
	CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
	uint8_t a[403], v[40];
	memcpy(a, "abc", 3);
	memset(a + 3, 0xff, 400);
	memset(v, 7, sizeof(v));
	CK_RC(pbox__bt_node_insert(page, ps, "abd", 3, v, 8, 0), 0);
	CK_RC(pbox__bt_node_insert(page, ps, a, sizeof(a), v, 8, 0), 0);
	for (uint32_t i = 0;; i++) {
		uint8_t k[4] = { 'a', 0, (uint8_t)(i >> 8), (uint8_t)i };
		int rc = pbox__bt_node_insert(page, ps, k, 4, v, sizeof(v), 0);
		if (rc == PBOX_ENOSPC)
			break;
		CK_RC(rc, 0);
	}
	uint32_t n = pbox__bt_node_count(page);
	memcpy(before, page, ps);
	uint8_t sep[KMAX_ANY];
	uint32_t sl;
	CK_RC(pbox__bt_node_split(page, right, ps, n - 1, sep, &sl), PBOX_ENOSPC);
	REQ(memcmp(before, page, ps) == 0, "refused split changed the node");
	uint32_t nl = pbox__bt_node_split_choose(page, ps, n);
	REQ(nl >= 1 && nl < n - 1, "split_choose returned %u of %u", nl, n);
	REQ(split_and_check(page, ps, nl, right, NULL, 0, NULL, false), "split");
	free(page);
	free(right);
}
END_TEST

START_TEST(test_split_merge_inner)
{
	uint32_t ps = page_sizes[_i];
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ (0x3000u + ps));
	void *page = page_new(ps), *right = page_new(ps), *orig = page_new(ps);
	unsigned trials = (ps == 4096 ? 30 : ps == 16384 ? 10 : 4) * pbox_test_scale();
	uint8_t pend[KMAX_ANY], k[KMAX_ANY];
	uint32_t pendlen, kl;
	for (unsigned t = 0; t < trials; t++) {
		keyspace ks;
		ks_make(&ks, &r, ps, true, (unsigned)pbox_rng_below(&r, 5));
		ks_init(&ks, page);
		CK_RC(pbox__bt_node_set_upper_child(page, ps, 1000 + t), 0);
		fill_node(page, &ks, &r, pend, &pendlen);
		uint32_t n = pbox__bt_node_count(page), pos;
		bool exact;
		CK_RC(pbox__bt_node_lower_bound(page, ps, pend, pendlen, &pos, &exact), 0);
		uint32_t nl = pbox__bt_node_split_choose(page, ps, t % 4 == 0 ? n : pos);
		REQ_T(nl < n);
		if (t % 4 == 0)
			REQ_EQ(nl, n - 1); /* ascending: right keeps only the upper child */
		memcpy(orig, page, ps);
		/* routing before and after the split agree for keys of the key space */
		oracle o = { 0 };
		or_from_node(&o, orig, ps);
		uint8_t sep[KMAX_ANY];
		uint32_t sl;
		CK_RC(pbox__bt_node_split(page, right, ps, nl, sep, &sl), 0);
		for (int q = 0; q < 200; q++) {
			if (q < (int)o.n) {
				memcpy(k, o.e[q].key, o.e[q].klen);
				kl = o.e[q].klen;
			} else if (!gen_key(&r, &ks, &o, k, &kl)) {
				continue;
			}
			pbox_pid want, got;
			uint32_t p1, p2;
			CK_RC(pbox__bt_node_find_child(orig, ps, k, kl, &want, &p1), 0);
			void *side = kcmp(k, kl, sep, sl) <= 0 ? page : right;
			CK_RC(pbox__bt_node_find_child(side, ps, k, kl, &got, &p2), 0);
			REQ_EQ(got, want);
		}
		or_free(&o);
		memcpy(page, orig, ps);
		split_and_check(page, ps, nl, right, NULL, 0, NULL, false);
		REQ(memcmp(page, orig, PBOX_PAGE_HDR) == 0, "page header");
	}
	/* an inner node with one slot splits at 0: both halves have only an upper child */
	keyspace ks;
	ks_make(&ks, &r, ps, true, 0);
	ks_init(&ks, page);
	uint64_t c = 55;
	CK_RC(pbox__bt_node_insert(page, ps, "m", 1, &c, 8, 0), 0);
	REQ_EQ(pbox__bt_node_split_choose(page, ps, 1), 0);
	split_and_check(page, ps, 0, right, NULL, 0, NULL, false);
	free(page);
	free(right);
	free(orig);
}
END_TEST

START_TEST(test_merge_refusals)
{
	const uint32_t ps = 4096;
	void *a = page_new(ps), *b = page_new(ps), *c = page_new(ps);
	CK_RC(pbox__bt_node_init_leaf(a, ps, NULL, 0, "m", 1), 0);
	CK_RC(pbox__bt_node_init_leaf(b, ps, "m", 1, NULL, 0), 0);
	CK_RC(pbox__bt_node_init_leaf(c, ps, "n", 1, NULL, 0), 0);
	CK_RC(pbox__bt_node_merge_check(a, c, ps), PBOX_EINVAL); /* not adjacent */
	CK_RC(pbox__bt_node_merge_check(b, a, ps), PBOX_EINVAL); /* wrong order */
	CK_RC(pbox__bt_node_init_inner(c, ps, "m", 1, NULL, 0, 9), 0);
	CK_RC(pbox__bt_node_merge_check(a, c, ps), PBOX_EINVAL); /* kinds differ */
	/* too full to merge */
	uint8_t v[600];
	memset(v, 1, sizeof(v));
	char k[8];
	for (int i = 0; i < 4; i++) {
		k[0] = (char)('a' + i);
		CK_RC(pbox__bt_node_insert(a, ps, k, 1, v, sizeof(v), 0), 0);
		k[0] = (char)('n' + i);
		CK_RC(pbox__bt_node_insert(b, ps, k, 1, v, sizeof(v), 0), 0);
	}
	CK_RC(pbox__bt_node_merge_check(a, b, ps), PBOX_ENOSPC);
	CK_RC(pbox__bt_node_merge(a, b, ps), PBOX_ENOSPC);
	CK_RC(pbox__bt_node_verify(a, ps), 0);
	REQ_EQ(pbox__bt_node_count(a), 4);
	CK_RC(pbox__bt_node_remove(b, ps, 0), 0);
	CK_RC(pbox__bt_node_remove(b, ps, 0), 0);
	CK_RC(pbox__bt_node_merge(a, b, ps), 0);
	CK_RC(pbox__bt_node_verify(a, ps), 0);
	REQ_EQ(pbox__bt_node_count(a), 6);
	check_fences(a, ps, NULL, 0, NULL, 0);
	free(a);
	free(b);
	free(c);
}
END_TEST

/* ---- limits and argument checks ---------------------------------------------------------------- */

START_TEST(test_limits)
{
	uint32_t ps = page_sizes[_i];
	uint32_t kmax = PBOX_BT_KEY_MAX(ps), emax = PBOX_BT_ENTRY_MAX(ps);
	void *page = page_new(ps);
	static uint8_t k[KMAX_ANY + 1], v[PBOX_BT_ENTRY_MAX(65536) + 1];
	memset(k, 'k', sizeof(k));
	memset(v, 'v', sizeof(v));
	CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
	CK_RC(pbox__bt_node_insert(page, ps, k, kmax + 1, v, 0, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_insert(page, ps, k, kmax, v, emax - kmax + 1, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_insert(page, ps, k, 1, v, emax, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_insert(page, ps, k, 0, v, emax + 1, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_insert(page, ps, k, 1, v, 1, 0x80), PBOX_EINVAL); /* unknown flag */
	CK_RC(pbox__bt_node_insert(page, ps, k, 0, v, emax, 0), 0);
	CK_RC(pbox__bt_node_insert(page, ps, k, kmax, v, emax - kmax, 0), 0);
	CK_RC(pbox__bt_node_insert(page, ps, k, kmax, v, 1, 0), PBOX_EEXIST);
	CK_RC(pbox__bt_node_update(page, ps, 1, v, emax - kmax + 1, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_update(page, ps, 2, v, 1, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_remove(page, ps, 2), PBOX_EINVAL);
	uint8_t kb[KMAX_ANY];
	uint32_t kl;
	CK_RC(pbox__bt_node_key(page, ps, 1, kb, kmax - 1, &kl), PBOX_ETOOSMALL);
	CK_RC(pbox__bt_node_key(page, ps, 1, kb, kmax, &kl), 0);
	REQ_EQ(kl, kmax);
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	pbox_pid pid;
	CK_RC(pbox__bt_node_child(page, ps, 0, &pid), PBOX_EINVAL); /* a leaf */

	/* Two maximal fences and four maximal entries fit (the guarantee behind the limits). */
	uint8_t lo[KMAX_ANY], hi[KMAX_ANY];
	memset(lo, 0x01, kmax);
	memset(hi, 0xfe, kmax);
	CK_RC(pbox__bt_node_init_leaf(page, ps, lo, kmax + 1, hi, kmax), PBOX_EINVAL);
	CK_RC(pbox__bt_node_init_leaf(page, ps, lo, kmax, hi, kmax + 1), PBOX_EINVAL);
	CK_RC(pbox__bt_node_init_leaf(page, ps, lo, kmax, hi, kmax), 0);
	for (int i = 0; i < 4; i++) {
		memset(k, 0x10 * (i + 1), kmax);
		CK_RC(pbox__bt_node_insert(page, ps, k, kmax, v, emax - kmax, 0), 0);
	}
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	REQ_LE(pbox__bt_node_free_bytes(page, ps), PBOX_BT_NODE_SLOT + emax);
	/* inner: the same with maximal separators and 8-byte child ids */
	CK_RC(pbox__bt_node_init_inner(page, ps, lo, kmax, hi, kmax, 3), 0);
	uint64_t child = 77;
	for (int i = 0; i < 4; i++) {
		memset(k, 0x10 * (i + 1), kmax);
		CK_RC(pbox__bt_node_insert(page, ps, k, kmax, &child, 8, 0), 0);
	}
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "\x50", 1, &child, 7, 0), PBOX_EINVAL);
	CK_RC(pbox__bt_node_insert(page, ps, "\x50", 1, &child, 8, PBOX_BT_SLOT_OVERFLOW),
	      PBOX_EINVAL);

	/* fences */
	CK_RC(pbox__bt_node_init_leaf(page, ps, "b", 1, "b", 1), PBOX_EINVAL);
	CK_RC(pbox__bt_node_init_leaf(page, ps, "c", 1, "b", 1), PBOX_EINVAL);
	CK_RC(pbox__bt_node_init_inner(page, ps, NULL, 0, NULL, 0, 2), PBOX_EINVAL); /* pid */
	CK_RC(pbox__bt_node_init_leaf(page, ps, "", 0, "b", 1), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "", 0, "v", 1, 0), PBOX_EINVAL); /* == lower */
	CK_RC(pbox__bt_node_insert(page, ps, "b\0", 2, "v", 1, 0), PBOX_EINVAL); /* > upper */
	CK_RC(pbox__bt_node_insert(page, ps, "b", 1, "v", 1, 0), 0);            /* == upper */
	CK_RC(pbox__bt_node_insert(page, ps, "\0", 1, "v", 1, 0), 0);
	CK_RC(pbox__bt_node_verify(page, ps), 0);
	CK_RC(pbox__bt_node_init_inner(page, ps, "a", 1, "b", 1, 3), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "b", 1, &child, 8, 0), PBOX_EINVAL); /* inner: < upper */
	CK_RC(pbox__bt_node_insert(page, ps, "a\xff", 2, &child, 8, 0), 0);
	CK_RC(pbox__bt_node_set_upper_child(page, ps, 1), PBOX_EINVAL);
	CK_RC(pbox__bt_node_set_upper_child(page, ps, PBOX_PID_NONE), PBOX_EINVAL);

	/* overflow flag round trip and replace */
	CK_RC(pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "key", 3, "ref", 3, PBOX_BT_SLOT_OVERFLOW), 0);
	const uint8_t *p;
	uint32_t pl;
	unsigned fl;
	CK_RC(pbox__bt_node_payload(page, ps, 0, &p, &pl, &fl), 0);
	REQ_T(pl == 3 && memcmp(p, "ref", 3) == 0 && fl == PBOX_BT_SLOT_OVERFLOW);
	CK_RC(pbox__bt_node_insert(page, ps, "key", 3, "value", 5, PBOX_BT_INSERT_REPLACE), 0);
	CK_RC(pbox__bt_node_payload(page, ps, 0, &p, &pl, &fl), 0);
	REQ_T(pl == 5 && memcmp(p, "value", 5) == 0 && fl == 0);

	/* page sizes */
	static const uint32_t bad[] = { 0, 2048, 3000, 4097, 12288, 131072 };
	for (unsigned i = 0; i < PBOX_ARRAY_LEN(bad); i++) {
		CK_RC(pbox__bt_node_init_leaf(page, bad[i], NULL, 0, NULL, 0), PBOX_EINVAL);
		CK_RC(pbox__bt_node_verify(page, bad[i]), PBOX_EINVAL);
	}
	check_hdr_untouched(page);
	free(page);
}
END_TEST

/* ---- verify: each invariant on its own ------------------------------------------------------ */

/* Node-relative header fields and slot layout, as documented in node.h. */
static uint8_t *nodep(void *page)
{
	return (uint8_t *)page + PBOX_PAGE_HDR;
}

static uint16_t get16(void *page, uint32_t off)
{
	uint16_t v;
	memcpy(&v, nodep(page) + off, 2);
	return v;
}

static void put16(void *page, uint32_t off, uint32_t v)
{
	uint16_t x = (uint16_t)v;
	memcpy(nodep(page) + off, &x, 2);
}

static uint32_t slot_at(uint32_t i)
{
	return PBOX_BT_NODE_HDR + PBOX_BT_NODE_SLOT * i;
}

/* A leaf ("b", "t"] with keys c0..c9 and payloads, and an inner twin; both verify. */
static void make_small(void *page, uint32_t ps, bool inner)
{
	if (inner)
		CK_RC(pbox__bt_node_init_inner(page, ps, "b", 1, "t", 1, 3), 0);
	else
		CK_RC(pbox__bt_node_init_leaf(page, ps, "b", 1, "t", 1), 0);
	for (int i = 0; i < 40; i++) {
		char k[4] = { 'c', (char)('0' + i / 10), (char)('0' + i % 10), 0 };
		uint64_t v = 10 + (uint64_t)i;
		CK_RC(pbox__bt_node_insert(page, ps, k, 3, &v, 8, 0), 0);
	}
	CK_RC(pbox__bt_node_verify(page, ps), 0);
}

START_TEST(test_verify_invariants)
{
	const uint32_t ps = 4096;
	void *page = page_new(ps);
	const uint8_t *lo, *hi;
	uint32_t lol, hil;
	uint8_t t[PBOX_BT_NODE_SLOT];
#define EXPECT_CORRUPT(what)                                                                    \
	REQ(pbox__bt_node_verify(page, ps) == PBOX_ECORRUPT, "verify accepted: %s", what)

	make_small(page, ps, false); /* lower fence == first key */
	CK_RC(pbox__bt_node_init_leaf(page, ps, "c00", 3, "t", 1), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "c01", 3, "x", 1, 0), 0);
	CK_RC(pbox__bt_node_fences(page, ps, &lo, &lol, &hi, &hil), 0);
	((uint8_t *)lo)[2] = '1';
	EXPECT_CORRUPT("first key == lower fence");

	make_small(page, ps, false); /* last key above the upper fence */
	CK_RC(pbox__bt_node_fences(page, ps, &lo, &lol, &hi, &hil), 0);
	((uint8_t *)hi)[0] = 'c';
	EXPECT_CORRUPT("last key > upper fence");

	make_small(page, ps, true); /* inner: last separator == upper fence */
	CK_RC(pbox__bt_node_init_inner(page, ps, "b", 1, "c40", 3, 3), 0);
	uint64_t v = 9;
	CK_RC(pbox__bt_node_insert(page, ps, "c39", 3, &v, 8, 0), 0);
	CK_RC(pbox__bt_node_fences(page, ps, &lo, &lol, &hi, &hil), 0);
	((uint8_t *)hi)[1] = '3';
	((uint8_t *)hi)[2] = '9';
	EXPECT_CORRUPT("inner separator == upper fence");

	make_small(page, ps, false); /* two slots swapped */
	memcpy(t, nodep(page) + slot_at(3), sizeof(t));
	memcpy(nodep(page) + slot_at(3), nodep(page) + slot_at(4), sizeof(t));
	memcpy(nodep(page) + slot_at(4), t, sizeof(t));
	EXPECT_CORRUPT("keys out of order");

	make_small(page, ps, false); /* dead bytes one short / one over */
	put16(page, 6, get16(page, 6) + 1);
	EXPECT_CORRUPT("dead + 1");
	make_small(page, ps, false);
	CK_RC(pbox__bt_node_remove(page, ps, 5), 0);
	REQ_GT(get16(page, 6), 0);
	put16(page, 6, get16(page, 6) - 1);
	EXPECT_CORRUPT("dead - 1");

	make_small(page, ps, false); /* entries overlapping: slot 2's entry moved onto slot 1's */
	put16(page, slot_at(2) + 4, get16(page, slot_at(1) + 4) + 1);
	EXPECT_CORRUPT("overlapping entries");

	make_small(page, ps, false); /* prefix length */
	CK_RC(pbox__bt_node_init_leaf(page, ps, "ab", 2, "ac", 2), 0);
	CK_RC(pbox__bt_node_insert(page, ps, "ab1", 3, "x", 1, 0), 0);
	REQ_EQ(get16(page, 16), 1);
	put16(page, 16, 0);
	EXPECT_CORRUPT("prefix shorter than the fences' common prefix");

	make_small(page, ps, false); /* a head */
	nodep(page)[slot_at(7)] ^= 1;
	EXPECT_CORRUPT("head");
	make_small(page, ps, false); /* a hint */
	nodep(page)[32 + 4 * 1] ^= 1;
	EXPECT_CORRUPT("hint");

	make_small(page, ps, false); /* a leaf with an upper child */
	nodep(page)[24] = 5;
	EXPECT_CORRUPT("leaf upper child");
	make_small(page, ps, true); /* inner child ids */
	memset(nodep(page) + 24, 0, 8);
	EXPECT_CORRUPT("inner upper child 0");
	make_small(page, ps, true);
	const uint8_t *pl;
	uint32_t len;
	unsigned fl;
	CK_RC(pbox__bt_node_payload(page, ps, 4, &pl, &len, &fl), 0);
	memset((uint8_t *)pl, 0xff, 8);
	EXPECT_CORRUPT("inner child PBOX_PID_NONE");
	make_small(page, ps, true);
	nodep(page)[slot_at(4) + 10] = PBOX_BT_SLOT_OVERFLOW;
	EXPECT_CORRUPT("overflow flag in an inner node");

	make_small(page, ps, false); /* reserved bytes, unknown flags, kind */
	nodep(page)[20] = 1;
	EXPECT_CORRUPT("reserved byte");
	make_small(page, ps, false);
	nodep(page)[1] |= 4;
	EXPECT_CORRUPT("unknown fence flag");
	make_small(page, ps, false);
	nodep(page)[0] = 0;
	EXPECT_CORRUPT("kind");
	make_small(page, ps, false); /* fences out of order */
	CK_RC(pbox__bt_node_fences(page, ps, &lo, &lol, &hi, &hil), 0);
	((uint8_t *)lo)[0] = 'u';
	EXPECT_CORRUPT("lower fence above upper fence");
#undef EXPECT_CORRUPT
	free(page);
}
END_TEST

/* ---- corruption ------------------------------------------------------------------------------- */

/* Valid nodes to damage: a leaf with a prefix, dead space and mixed lengths; a leaf without
 * fences; an inner node. */
static void make_victims(uint32_t ps, pbox_rng *r, void *v[3])
{
	for (int i = 0; i < 3; i++) {
		keyspace ks;
		do /* the first leaf has a fence prefix of a few bytes */
			ks_make(&ks, r, ps, i == 2, i == 1 ? 0 : 3);
		while (i == 0 && ks.prelen < 3);
		v[i] = page_new(ps);
		ks_init(&ks, v[i]);
		oracle o = { 0 };
		uint8_t k[KMAX_ANY], val[256];
		uint32_t kl;
		for (int t = 0; t < 4000; t++) {
			if (!gen_key(r, &ks, &o, k, &kl) || kl > 96)
				continue;
			bool exact;
			uint32_t pos = or_lb(&o, k, kl, &exact);
			if (exact)
				continue;
			uint32_t vl = ks.inner ? 8 : (uint32_t)pbox_rng_below(r, 24);
			if (ks.inner) {
				uint64_t pid = 100 + (uint64_t)t;
				memcpy(val, &pid, 8);
			} else {
				memset(val, t, vl);
			}
			if (pbox__bt_node_free_bytes(v[i], ps) < ps / 4)
				break;
			CK_RC(pbox__bt_node_insert(v[i], ps, k, kl, val, vl, t % 5 == 0 && !ks.inner), 0);
			or_insert(&o, pos, k, kl, val, vl, 0);
			if (t % 7 == 0) {
				uint32_t j = (uint32_t)pbox_rng_below(r, o.n);
				CK_RC(pbox__bt_node_remove(v[i], ps, j), 0);
				or_remove(&o, j);
			}
		}
		CK_RC(pbox__bt_node_verify(v[i], ps), 0);
		REQ_GT(pbox__bt_node_count(v[i]), 20);
		or_free(&o);
	}
}

/* A node that verify accepted must be usable: keys ascend, each is found where it is, the
 * space accounting adds up, and the write paths keep it valid. */
static void check_consistent(void *page, uint32_t ps, void *scratch, void *right)
{
	uint32_t n = pbox__bt_node_count(page);
	const uint8_t *flo, *fhi;
	uint32_t flol, fhil, prefix = pbox__bt_node_prefix_len(page);
	CK_RC(pbox__bt_node_fences(page, ps, &flo, &flol, &fhi, &fhil), 0);
	uint32_t used = PBOX_BT_NODE_HDR + flol + fhil;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t kb[KMAX_ANY];
		uint32_t kl, vl;
		const uint8_t *vp;
		unsigned fl;
		CK_RC(pbox__bt_node_key(page, ps, i, kb, sizeof(kb), &kl), 0);
		CK_RC(pbox__bt_node_payload(page, ps, i, &vp, &vl, &fl), 0);
		used += PBOX_BT_NODE_SLOT + kl - prefix + vl;
	}
	REQ_EQ(pbox__bt_node_used_bytes(page, ps), used);
	uint8_t a[KMAX_ANY], b[KMAX_ANY];
	uint32_t al = 0, bl;
	for (uint32_t i = 0; i < n; i++) {
		CK_RC(pbox__bt_node_key(page, ps, i, b, sizeof(b), &bl), 0);
		if (i)
			REQ(kcmp(a, al, b, bl) < 0, "verified node: keys not ascending");
		uint32_t pos;
		bool exact;
		CK_RC(pbox__bt_node_lower_bound(page, ps, b, bl, &pos, &exact), 0);
		REQ(pos == i && exact, "verified node: key %u not found by lower_bound", i);
		memcpy(a, b, bl);
		al = bl;
	}
	/* write paths on a copy keep it valid */
	memcpy(scratch, page, ps);
	CK_RC(pbox__bt_node_compact(scratch, ps), 0);
	CK_RC(pbox__bt_node_verify(scratch, ps), 0);
	if (n >= 2) {
		memcpy(scratch, page, ps);
		CK_RC(pbox__bt_node_remove(scratch, ps, n / 2), 0);
		CK_RC(pbox__bt_node_verify(scratch, ps), 0);
		memcpy(scratch, page, ps);
		uint8_t sep[KMAX_ANY];
		uint32_t sl, nl = pbox__bt_node_split_choose(scratch, ps, n / 2);
		CK_RC(pbox__bt_node_split(scratch, right, ps, nl, sep, &sl), 0);
		CK_RC(pbox__bt_node_verify(scratch, ps), 0);
		CK_RC(pbox__bt_node_verify(right, ps), 0);
		CK_RC(pbox__bt_node_merge(scratch, right, ps), 0);
		CK_RC(pbox__bt_node_verify(scratch, ps), 0);
	}
}

/* Whatever the bytes: read and write paths return a status and stay inside the page. */
static void poke_everything(void *page, uint32_t ps, void *scratch, void *right, pbox_rng *r)
{
	uint8_t k[KMAX_ANY];
	uint32_t kl = (uint32_t)pbox_rng_below(r, 12), pos;
	for (uint32_t i = 0; i < kl; i++)
		k[i] = rnd_byte(r);
	bool exact;
	int rc = pbox__bt_node_lower_bound(page, ps, k, kl, &pos, &exact);
	REQ_T(rc == 0 || rc == PBOX_ECORRUPT);
	if (rc == 0)
		REQ_LE(pos, pbox__bt_node_count(page));
	uint32_t n = pbox__bt_node_count(page);
	for (uint32_t i = 0; i < n && i < 64; i++) {
		uint32_t len;
		const uint8_t *p;
		unsigned fl;
		pbox_pid c;
		(void)pbox__bt_node_key(page, ps, i, k, sizeof(k), &len);
		if (pbox__bt_node_payload(page, ps, i, &p, &len, &fl) == 0 && len)
			REQ_T(p >= (const uint8_t *)page && p + len <= (const uint8_t *)page + ps);
		(void)pbox__bt_node_child(page, ps, i, &c);
	}
	(void)pbox__bt_node_free_bytes(page, ps);
	(void)pbox__bt_node_underfull(page, ps);
	memcpy(scratch, page, ps);
	uint64_t v = 1234;
	(void)pbox__bt_node_insert(scratch, ps, k, kl, &v, 8, 0);
	memcpy(scratch, page, ps);
	(void)pbox__bt_node_compact(scratch, ps);
	memcpy(scratch, page, ps);
	if (n)
		(void)pbox__bt_node_update(scratch, ps, 0, k, 40, 0);
	memcpy(scratch, page, ps);
	if (n)
		(void)pbox__bt_node_remove(scratch, ps, n - 1);
	memcpy(scratch, page, ps);
	uint8_t sep[KMAX_ANY];
	uint32_t sl;
	(void)pbox__bt_node_split(scratch, right, ps, pbox__bt_node_split_choose(scratch, ps, 0), sep,
				  &sl);
	(void)pbox__bt_node_merge(scratch, right, ps);
}

static void damaged(void *page, uint32_t ps, void *scratch, void *right, pbox_rng *r,
		    unsigned *ok, unsigned *corrupt)
{
	int rc = pbox__bt_node_verify(page, ps);
	REQ(rc == 0 || rc == PBOX_ECORRUPT, "verify = %s", pbox_status_name(rc));
	if (rc == 0) {
		(*ok)++;
		check_consistent(page, ps, scratch, right);
	} else {
		(*corrupt)++;
	}
	poke_everything(page, ps, scratch, right, r);
	check_hdr_untouched(page);
}

START_TEST(test_corruption_flips)
{
	const uint32_t ps = 4096;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0x4000u);
	void *victims[3];
	make_victims(ps, &r, victims);
	void *page = page_new(ps), *scratch = page_new(ps), *right = page_new(ps);
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	unsigned ok = 0, corrupt = 0;
	for (int vi = 0; vi < 3; vi++) {
		for (uint32_t off = PBOX_PAGE_HDR; off < ps; off++) {
			for (unsigned m = 0; m < PBOX_ARRAY_LEN(masks); m++) {
				if ((off * PBOX_ARRAY_LEN(masks) + m) % WORK_DIV != (unsigned)vi % WORK_DIV)
					continue;
				memcpy(page, victims[vi], ps);
				((uint8_t *)page)[off] ^= masks[m];
				damaged(page, ps, scratch, right, &r, &ok, &corrupt);
			}
		}
	}
	fprintf(stderr, "corruption flips: %u still valid, %u reported corrupt\n", ok, corrupt);
	REQ_GT(corrupt, 1000 / WORK_DIV);
	REQ_GT(ok, 1000 / WORK_DIV); /* free gap, dead bytes and payloads */
	for (int vi = 0; vi < 3; vi++)
		free(victims[vi]);
	free(page);
	free(scratch);
	free(right);
}
END_TEST

START_TEST(test_corruption_random)
{
	const uint32_t ps = 4096;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0x5000u);
	void *victims[3];
	make_victims(ps, &r, victims);
	void *page = page_new(ps), *scratch = page_new(ps), *right = page_new(ps);
	unsigned ok = 0, corrupt = 0, trials = 20000 / WORK_DIV * pbox_test_scale();
	for (unsigned t = 0; t < trials; t++) {
		memcpy(page, victims[t % 3], ps);
		uint8_t *n = (uint8_t *)page + PBOX_PAGE_HDR;
		uint32_t nslots = pbox__bt_node_count(page);
		unsigned nb = 1 + (unsigned)pbox_rng_below(&r, 8);
		for (unsigned b = 0; b < nb; b++) {
			uint32_t off;
			uint64_t where = pbox_rng_below(&r, 3);
			if (where == 0) /* the header */
				off = (uint32_t)pbox_rng_below(&r, PBOX_BT_NODE_HDR);
			else if (where == 1) /* the slots */
				off = PBOX_BT_NODE_HDR + (uint32_t)pbox_rng_below(&r, nslots * PBOX_BT_NODE_SLOT);
			else
				off = (uint32_t)pbox_rng_below(&r, ps - PBOX_PAGE_HDR);
			n[off] = (uint8_t)pbox_rng_next(&r);
		}
		damaged(page, ps, scratch, right, &r, &ok, &corrupt);
	}
	/* whole nodes of garbage, and of zeros */
	for (unsigned t = 0; t < 300; t++) {
		uint8_t *n = (uint8_t *)page + PBOX_PAGE_HDR;
		for (uint32_t i = 0; i < ps - PBOX_PAGE_HDR; i++)
			n[i] = t == 0 ? 0 : (uint8_t)pbox_rng_next(&r);
		if (t % 2) { /* plausible header, garbage elsewhere */
			n[0] = t % 4 == 1 ? PBOX_BT_NODE_LEAF : PBOX_BT_NODE_INNER;
			n[1] = (uint8_t)(t & 3);
		}
		damaged(page, ps, scratch, right, &r, &ok, &corrupt);
	}
	memset((uint8_t *)page + PBOX_PAGE_HDR, 0, ps - PBOX_PAGE_HDR);
	CK_RC(pbox__bt_node_verify(page, ps), PBOX_ECORRUPT);
	fprintf(stderr, "corruption random: %u still valid, %u reported corrupt\n", ok, corrupt);
	REQ_GT(corrupt, trials / 2);
	for (int vi = 0; vi < 3; vi++)
		free(victims[vi]);
	free(page);
	free(scratch);
	free(right);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("btree_node");
	TCase *tc;
	tc = tcase_create("differential");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_differential, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_loop_test(tc, test_compaction_reuse, 0, PBOX_ARRAY_LEN(page_sizes));
	suite_add_tcase(s, tc);
	tc = tcase_create("split_merge");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_split_merge_leaf, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_loop_test(tc, test_split_middle_balance, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_loop_test(tc, test_split_ascending, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_test(tc, test_separator_truncation);
	tcase_add_test(tc, test_split_long_separator);
	tcase_add_loop_test(tc, test_split_merge_inner, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_test(tc, test_merge_refusals);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_limits, 0, PBOX_ARRAY_LEN(page_sizes));
	suite_add_tcase(s, tc);
	tc = tcase_create("corruption");
	tcase_add_test(tc, test_verify_invariants);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_corruption_flips);
	tcase_add_test(tc, test_corruption_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
