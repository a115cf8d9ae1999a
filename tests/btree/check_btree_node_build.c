/*
 * check_btree_node_build.c — node splits and merges (btree/src/node_build.c), white-box:
 * separator truncation against an independent computation of the shortest separator,
 * fences and prefixes of both halves, the middle split's balance, ascending fills packing
 * the left node, long separators that cannot be truncated, inner-node semantics (the
 * separator moves up, the upper child moves), merges back to the original content, and the
 * merges the node refuses. Shared helpers: btree_node_test_util.h.
 */
#include "btree_node_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- split and merge ------------------------------------------------------------------------- */

/* Length of the shortest string s with a <= s < b, found differently from node_build.c: for
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

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_node_build");
	TCase *tc;
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
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
