/* btree_node_test_util.c — see btree_node_test_util.h. */
#include "btree_node_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *page_new(uint32_t ps)
{
	void *p = aligned_alloc(ps, ps);
	REQ_T(p != NULL);
	memset(p, 0xa5, ps);
	memset(p, HDR_MARK, PBOX_PAGE_HDR);
	return p;
}

void check_hdr_untouched(const void *page)
{
	const uint8_t *p = page;
	for (uint32_t i = 0; i < PBOX_PAGE_HDR; i++)
		REQ(p[i] == HDR_MARK, "page header byte %u changed", i);
}

int kcmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	uint32_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

uint32_t lcp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	uint32_t i = 0;
	while (i < al && i < bl && a[i] == b[i])
		i++;
	return i;
}

static uint8_t *dup_bytes(const void *p, uint32_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	REQ_T(d != NULL);
	if (n)
		memcpy(d, p, n);
	return d;
}

uint32_t or_lb(const oracle *o, const uint8_t *key, uint32_t klen, bool *exact)
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

void or_insert(oracle *o, uint32_t pos, const uint8_t *key, uint32_t klen,
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

void or_set(oracle *o, uint32_t pos, const uint8_t *val, uint32_t vlen, unsigned flags)
{
	free(o->e[pos].val);
	o->e[pos].val = dup_bytes(val, vlen);
	o->e[pos].vlen = vlen;
	o->e[pos].flags = flags;
}

void or_remove(oracle *o, uint32_t pos)
{
	free(o->e[pos].key);
	free(o->e[pos].val);
	memmove(&o->e[pos], &o->e[pos + 1], (o->n - pos - 1) * sizeof(ent));
	o->n--;
}

void or_free(oracle *o)
{
	while (o->n)
		or_remove(o, o->n - 1);
	free(o->e);
	o->e = NULL;
	o->cap = 0;
}

/* The node's content as an oracle. */
void or_from_node(oracle *o, const void *page, uint32_t ps)
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

static const uint8_t special[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };

uint8_t rnd_byte(pbox_rng *r)
{
	if (pbox_rng_below(r, 2))
		return special[pbox_rng_below(r, sizeof(special))];
	return (uint8_t)pbox_rng_next(r);
}

bool ks_contains(const keyspace *ks, const uint8_t *k, uint32_t kl)
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

void ks_make(keyspace *ks, pbox_rng *r, uint32_t ps, bool inner, unsigned mode)
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

void ks_init(const keyspace *ks, void *page)
{
	const void *lo = ks->lo_fin ? ks->lo : NULL, *hi = ks->hi_fin ? ks->hi : NULL;
	if (ks->inner)
		CK_RC(pbox__bt_node_init_inner(page, ks->ps, lo, ks->lolen, hi, ks->hilen, 7), 0);
	else
		CK_RC(pbox__bt_node_init_leaf(page, ks->ps, lo, ks->lolen, hi, ks->hilen), 0);
}

uint32_t rnd_len(pbox_rng *r, uint32_t max)
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
bool gen_key(pbox_rng *r, const keyspace *ks, const oracle *o, uint8_t *k, uint32_t *kl)
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
uint32_t gen_payload(pbox_rng *r, const keyspace *ks, uint32_t klen, uint8_t *v)
{
	if (ks->inner) {
		uint64_t pid = PBOX_BT_NODE_PID_MIN + pbox_rng_below(r, 1u << 30);
		memcpy(v, &pid, 8);
		return 8;
	}
	return gen_val(r, v, PBOX_BT_ENTRY_MAX(ks->ps) - klen, ks->ps / 4096);
}

/* ---- comparing a node with the oracle -------------------------------------------------------- */

uint32_t expect_prefix(const keyspace *ks)
{
	return ks->lo_fin && ks->hi_fin ? lcp(ks->lo, ks->lolen, ks->hi, ks->hilen) : 0;
}

uint32_t expect_used(const keyspace *ks, const oracle *o)
{
	uint32_t p = expect_prefix(ks);
	uint32_t used = PBOX_BT_NODE_HDR + (ks->lo_fin ? ks->lolen : 0) + (ks->hi_fin ? ks->hilen : 0);
	for (uint32_t i = 0; i < o->n; i++)
		used += PBOX_BT_NODE_SLOT + o->e[i].klen - p + o->e[i].vlen;
	return used;
}

void check_fences(const void *page, uint32_t ps, const uint8_t *lo, uint32_t lolen,
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

void check_equal(const void *page, const keyspace *ks, const oracle *o)
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

void check_lower_bound(const void *page, uint32_t ps, const oracle *o, const uint8_t *k,
		       uint32_t kl)
{
	uint32_t pos;
	bool exact, oexact;
	CK_RC(pbox__bt_node_lower_bound(page, ps, k, kl, &pos, &exact), 0);
	uint32_t opos = or_lb(o, k, kl, &oexact);
	REQ_EQ(pos, opos);
	REQ_EQ(exact, oexact);
}
