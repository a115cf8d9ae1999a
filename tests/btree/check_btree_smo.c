/*
 * check_btree_smo.c — structure changes and space through pbox/btree.h (black box).
 *
 *   fill         ascending inserts pack leaves: fewer than 1.2x the minimum leaf count
 *                computed from the node format's limits.
 *   merge        removing every key gives pages back: the tree shrinks and refilling it
 *                reuses the freed pages (ARCHITECTURE §8: deletes merge and free pages).
 *   reclaim      orphaned btree pages (as a crash leaves them) are found and freed, pages
 *                of other types and everything reachable are left alone.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces); PBOX_STRESS_SCALE lengthens.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <stdio.h>
#include <string.h>

/* ---- ascending fill ------------------------------------------------------------------ */

typedef struct fill_cfg {
	uint32_t ps, klen, vlen;
} fill_cfg;

static const fill_cfg fill_cfgs[] = {
	{ 4096, 8, 8 }, { 4096, 16, 100 }, { 4096, 64, 300 }, { 16384, 12, 40 }, { 16384, 200, 1000 },
};

START_TEST(test_ascending_fill)
{
	const fill_cfg *cfg = &fill_cfgs[_i];
	env e;
	env_init(&e, cfg->ps, 64);
	pbox_bt *bt = bt_create(e.st, "fill");
	REQ_LE(cfg->klen, pbox_bt_key_max(e.st));
	REQ_LE(cfg->vlen, pbox_bt_value_max(e.st, cfg->klen));
	/* Upper bound on the node bytes a leaf needs per entry: a slot and the whole key and
	 * value (prefix truncation only makes it smaller); the room for entries in a leaf is
	 * at least the node minus its header and two fences no longer than a key. */
	uint64_t entry = NODE_SLOT + cfg->klen + cfg->vlen;
	uint64_t room = cfg->ps - PBOX_PAGE_HDR - NODE_HDR - 2ull * cfg->klen;
	uint64_t n = 200 * room / entry * pbox_test_scale(); /* about 200 leaves */
	uint8_t key[256], val[1024];
	memset(key, 'k', sizeof(key));
	for (uint64_t i = 0; i < n; i++) {
		for (unsigned b = 0; b < 8; b++) /* big-endian counter in the last 8 bytes */
			key[cfg->klen - 8 + b] = (uint8_t)(i >> (56 - 8 * b));
		memset(val, (int)(i & 0xff), cfg->vlen);
		CK_RC(pbox_bt_insert(bt, key, cfg->klen, val, cfg->vlen, 0), 0);
	}
	pbox_bt_verify_info info = bt_verify(bt);
	REQ_EQ(info.keys, n);
	REQ_EQ(bt_count(bt), n);
	uint64_t min_leaves = (n * entry + room - 1) / room;
	fprintf(stderr, "ascending fill (%u-byte pages, %u-byte keys, %u-byte values): %llu keys "
			"in %llu leaves (bound from the limits: %llu), %llu inner, depth %llu\n",
		cfg->ps, cfg->klen, cfg->vlen, (unsigned long long)n,
		(unsigned long long)info.leaves, (unsigned long long)min_leaves,
		(unsigned long long)info.inner, (unsigned long long)info.depth);
	REQ(info.leaves * 10 < min_leaves * 12 + 10,
	    "ascending inserts left leaves half empty: %llu leaves for %llu keys, at most %llu "
	    "are needed", (unsigned long long)info.leaves, (unsigned long long)n,
	    (unsigned long long)min_leaves);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- reclaiming unreachable pages ------------------------------------------------------------ */

START_TEST(test_reclaim)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *a = bt_create(e.st, "a"), *b = bt_create(e.st, "b");
	static unsigned char big[20000];
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	char key[16];
	for (unsigned i = 0; i < 400; i++) {
		snprintf(key, sizeof(key), "k%05u", i);
		CK_RC(pbox_bt_insert(a, key, strlen(key), big, i % 10 == 0 ? sizeof(big) : 50, 0), 0);
		CK_RC(pbox_bt_insert(b, key, strlen(key), big, 30, 0), 0);
	}
	uint64_t leaked = 99;
	CK_RC(pbox_bt_reclaim(e.st, false, &leaked), 0);
	REQ_EQ(leaked, 0);
	/* orphans of both btree page types, as a crash can leave them (the type values are
	 * tree.c's: PBOX_PAGE_TYPE_USER + 2 nodes, + 3 overflow pages), and one page of
	 * someone else's type that must be left alone */
	const uint16_t types[] = { PBOX_PAGE_TYPE_USER + 2, PBOX_PAGE_TYPE_USER + 3,
				   PBOX_PAGE_TYPE_USER + 3, PBOX_PAGE_TYPE_USER + 40 };
	pbox_pid foreign = 0;
	for (unsigned i = 0; i < 4; i++) {
		pbox_mtr *m;
		pbox_pid pid;
		CK_RC(pbox_mtr_begin(e.st, &m), 0);
		CK_RC(pbox_mtr_alloc(m, types[i], &pid, NULL), 0);
		CK_RC(pbox_mtr_commit(m, true, NULL), 0);
		if (i == 3)
			foreign = pid;
	}
	pbox_store_stats s0, s1;
	pbox_store_get_stats(e.st, &s0);
	CK_RC(pbox_bt_reclaim(e.st, false, &leaked), 0);
	REQ_EQ(leaked, 3);
	CK_RC(pbox_bt_reclaim(e.st, true, &leaked), 0);
	REQ_EQ(leaked, 3);
	pbox_store_get_stats(e.st, &s1);
	REQ_EQ(s1.free_pages, s0.free_pages + 3);
	CK_RC(pbox_bt_reclaim(e.st, false, &leaked), 0);
	REQ_EQ(leaked, 0);
	/* the foreign page is still allocated: freeing it is legal only if it was never freed */
	{
		pbox_mtr *m;
		CK_RC(pbox_mtr_begin(e.st, &m), 0);
		void *page;
		CK_RC(pbox_mtr_fix(m, foreign, &page), 0);
		uint16_t t;
		t = pbox_page_type(page);
		REQ_EQ(t, PBOX_PAGE_TYPE_USER + 40);
		pbox_mtr_abort(m, false);
	}
	/* everything reachable survived, also across a reopen */
	pbox_bt_close(a);
	pbox_bt_close(b);
	env_reopen(&e);
	a = bt_open(e.st, "a");
	b = bt_open(e.st, "b");
	REQ_EQ(bt_verify(a).keys, 400);
	REQ_EQ(bt_verify(b).keys, 400);
	static unsigned char out[20000];
	for (unsigned i = 0; i < 400; i += 10) {
		size_t vl = 0;
		snprintf(key, sizeof(key), "k%05u", i);
		CK_RC(pbox_bt_lookup(a, key, strlen(key), out, sizeof(out), &vl), 0);
		REQ_EQ(vl, sizeof(big));
		REQ(memcmp(out, big, vl) == 0, "value of %s", key);
	}
	/* a dropped tree's pages are freed by the drop; nothing is left to reclaim */
	pbox_bt_close(b);
	CK_RC(pbox_bt_drop(e.st, "b"), 0);
	CK_RC(pbox_bt_reclaim(e.st, false, &leaked), 0);
	REQ_EQ(leaked, 0);
	pbox_bt_close(a);
	env_fini(&e);
}
END_TEST

/* ---- merges give pages back -------------------------------------------------------------- */

START_TEST(test_remove_frees_pages)
{
	uint64_t seed = pbox_test_seed() ^ 0x3e4e;
	fprintf(stderr, "remove frees pages: seed %llu\n", (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, 4096, 128);
	pbox_bt *bt = bt_create(e.st, "shrink");
	enum { N = 6000 };
	static uint32_t perm[N];
	for (uint32_t i = 0; i < N; i++)
		perm[i] = i;
	uint8_t key[24], val[100];
	pbox_store_stats s0, s1, s2, s3;
	pbox_bt_verify_info i1, i2, i3;
	for (unsigned round = 0; round < 2; round++) {
		if (round == 0)
			pbox_store_get_stats(e.st, &s0);
		for (uint32_t i = N - 1; i > 0; i--) { /* random insertion order */
			uint32_t j = (uint32_t)pbox_rng_below(&r, i + 1), t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		for (uint32_t i = 0; i < N; i++) {
			memset(key, 'p', sizeof(key));
			put32(key + 10, perm[i]);
			memset(val, (int)perm[i], sizeof(val));
			CK_RC(pbox_bt_insert(bt, key, 10 + 4 + perm[i] % 10, val, 20 + perm[i] % 80, 0), 0);
		}
		if (round == 0) {
			i1 = bt_verify(bt);
			pbox_store_get_stats(e.st, &s1);
		} else {
			i3 = bt_verify(bt);
			pbox_store_get_stats(e.st, &s3);
			break;
		}
		for (uint32_t i = N - 1; i > 0; i--) { /* random removal order */
			uint32_t j = (uint32_t)pbox_rng_below(&r, i + 1), t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		for (uint32_t i = 0; i < N; i++) {
			memset(key, 'p', sizeof(key));
			put32(key + 10, perm[i]);
			CK_RC(pbox_bt_remove(bt, key, 10 + 4 + perm[i] % 10, 0), 0);
			if (i == N / 2)
				REQ_EQ(bt_verify(bt).keys, N - N / 2 - 1);
		}
		i2 = bt_verify(bt);
		pbox_store_get_stats(e.st, &s2);
		REQ_EQ(i2.keys, 0);
		REQ_EQ(bt_count(bt), 0);
	}
	uint64_t nodes1 = i1.leaves + i1.inner, nodes2 = i2.leaves + i2.inner;
	fprintf(stderr, "remove frees pages: %u keys in %llu nodes (file %llu pages); empty: %llu "
			"nodes, %llu free pages; refilled: %llu nodes, file %llu pages\n",
		N, (unsigned long long)nodes1, (unsigned long long)s1.page_count,
		(unsigned long long)nodes2, (unsigned long long)s2.free_pages,
		(unsigned long long)(i3.leaves + i3.inner), (unsigned long long)s3.page_count);
	/* the empty tree collapsed (merges), its pages went to the free list, and the second
	 * fill reused them instead of growing the file by another tree's worth */
	/* leaf merges empty the leaves, inner merges cascade up, the root collapses: an
	 * empty tree is one leaf again, whatever its depth was */
	REQ(nodes2 == 1 && i2.depth == 1, "an empty tree still has %llu of its %llu nodes, depth %llu",
	    (unsigned long long)nodes2, (unsigned long long)nodes1, (unsigned long long)i2.depth);
	REQ(i1.depth >= 3, "the test wants inner levels to merge: depth %llu",
	    (unsigned long long)i1.depth);
	REQ(s2.free_pages >= s0.free_pages + (nodes1 - nodes2) / 2,
	    "removing everything freed %llu pages of %llu nodes",
	    (unsigned long long)(s2.free_pages - s0.free_pages), (unsigned long long)nodes1);
	REQ(s3.page_count <= s1.page_count + nodes1 / 4,
	    "refill grew the file from %llu to %llu pages (%llu nodes)",
	    (unsigned long long)s1.page_count, (unsigned long long)s3.page_count,
	    (unsigned long long)nodes1);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_smo");
	TCase *tc = tcase_create("fill");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_ascending_fill, 0,
			    (int)(sizeof(fill_cfgs) / sizeof(fill_cfgs[0])));
	tcase_add_test(tc, test_remove_frees_pages);
	tcase_add_test(tc, test_reclaim);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
