/*
 * check_btree_node_verify.c — the node self-check (btree/src/node_verify.c) and corruption,
 * white-box: each invariant broken on its own is caught; byte flips and random garbage in
 * the node area never make verify, lower_bound or the write paths read or write outside
 * the page, and a node that still verifies is still consistent. Shared helpers:
 * btree_node_test_util.h.
 */
#include "btree_node_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_node_verify");
	TCase *tc;
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
