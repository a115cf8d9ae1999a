/*
 * check_btree_catalog.c — named trees through pbox/btree.h (black box): create / open /
 * open_or_create / list / drop, their errors, bad names, many independent trees in one
 * store (the catalog over several pages), handles on a dropped tree (PBOX_ECLOSED), the
 * pages a drop frees and their reuse, names and contents across a reopen. Concurrent
 * open_or_create / create races are in check_btree_concurrency.c.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces).
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- catalog ------------------------------------------------------------------------- */

START_TEST(test_catalog_basic)
{
	env e;
	env_init(&e, 4096, 256);
	static name_list l;
	memset(&l, 0, sizeof(l));
	CK_RC(pbox_bt_list(e.st, list_fn, &l), 0); /* a fresh store has no trees */
	REQ_EQ(l.n, 0);

	pbox_bt *sentinel = (pbox_bt *)(uintptr_t)0x10, *bt = sentinel;
	CK_RC(pbox_bt_open(e.st, "a", &bt), PBOX_ENOTFOUND);
	REQ_T(bt == sentinel); /* out-parameters are written only on success */

	/* bad names */
	char longname[PBOX_BT_NAME_MAX + 2];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[PBOX_BT_NAME_MAX + 1] = 0;
	CK_RC(pbox_bt_create(e.st, "", &bt), PBOX_EINVAL);
	CK_RC(pbox_bt_open(e.st, "", &bt), PBOX_EINVAL);
	CK_RC(pbox_bt_open_or_create(e.st, "", &bt), PBOX_EINVAL);
	CK_RC(pbox_bt_create(e.st, longname, &bt), PBOX_EINVAL);
	CK_RC(pbox_bt_open(e.st, longname, &bt), PBOX_EINVAL);
	CK_RC(pbox_bt_open_or_create(e.st, longname, &bt), PBOX_EINVAL);
	REQ_T(bt == sentinel);
	memset(&l, 0, sizeof(l));
	CK_RC(pbox_bt_list(e.st, list_fn, &l), 0);
	REQ_EQ(l.n, 0);

	/* the longest name is fine */
	longname[PBOX_BT_NAME_MAX] = 0;
	pbox_bt *lb = bt_create(e.st, longname);

	pbox_bt *a = bt_create(e.st, "a");
	CK_RC(pbox_bt_create(e.st, "a", &bt), PBOX_EEXIST);
	REQ_T(bt == sentinel);
	CK_RC(pbox_bt_insert(a, "k", 1, "from-a", 6, 0), 0);
	/* a second handle on the same tree sees the same contents */
	pbox_bt *a2 = bt_open(e.st, "a");
	char buf[64];
	size_t vl = 0;
	CK_RC(pbox_bt_lookup(a2, "k", 1, buf, sizeof(buf), &vl), 0);
	REQ_T(beq(buf, vl, "from-a", 6));
	CK_RC(pbox_bt_upsert(a2, "k2", 2, "x", 1, 0), 0);
	CK_RC(pbox_bt_lookup(a, "k2", 2, buf, sizeof(buf), &vl), 0);
	REQ_T(beq(buf, vl, "x", 1));
	pbox_bt_close(a2);
	/* open_or_create opens an existing tree... */
	pbox_bt *a3 = NULL;
	CK_RC(pbox_bt_open_or_create(e.st, "a", &a3), 0);
	REQ_EQ(bt_count(a3), 2);
	pbox_bt_close(a3);
	/* ...and creates a missing one, which then exists */
	pbox_bt *b = NULL;
	CK_RC(pbox_bt_open_or_create(e.st, "b", &b), 0);
	REQ_EQ(bt_count(b), 0);
	CK_RC(pbox_bt_create(e.st, "b", &bt), PBOX_EEXIST);
	/* names that prefix each other, with odd bytes */
	pbox_bt *ab = bt_create(e.st, "ab");
	pbox_bt *aff = bt_create(e.st, "a\xff");
	pbox_bt *a01 = bt_create(e.st, "a\x01");
	CK_RC(pbox_bt_open(e.st, "A", &bt), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_open(e.st, "a\x02", &bt), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_open(e.st, "abc", &bt), PBOX_ENOTFOUND);
	REQ_T(bt == sentinel);

	/* trees are independent: the same key in each holds its own value */
	pbox_bt *all[] = { a, b, ab, aff, a01, lb };
	for (unsigned i = 0; i < 6; i++) {
		char v[8];
		snprintf(v, sizeof(v), "t%u", i);
		CK_RC(pbox_bt_upsert(all[i], "same", 4, v, strlen(v), 0), 0);
	}
	for (unsigned i = 0; i < 6; i++) {
		char v[8];
		snprintf(v, sizeof(v), "t%u", i);
		CK_RC(pbox_bt_lookup(all[i], "same", 4, buf, sizeof(buf), &vl), 0);
		REQ(beq(buf, vl, v, strlen(v)), "tree %u sees another tree's value", i);
	}
	CK_RC(pbox_bt_remove(b, "same", 4, 0), 0);
	CK_RC(pbox_bt_lookup(a, "same", 4, buf, sizeof(buf), &vl), 0);
	CK_RC(pbox_bt_lookup(b, "k", 1, buf, sizeof(buf), &vl), PBOX_ENOTFOUND);

	const char *want[] = { "a", "a\x01", "ab", "a\xff", "b", longname };
	qsort(want, 6, sizeof(want[0]), name_cmp);
	check_list(e.st, want, 6);
	for (unsigned i = 0; i < 6; i++) {
		bt_verify(all[i]);
		pbox_bt_close(all[i]);
	}

	/* names and contents survive a reopen */
	env_reopen(&e);
	check_list(e.st, want, 6);
	a = bt_open(e.st, "a");
	REQ_EQ(bt_count(a), 3);
	CK_RC(pbox_bt_lookup(a, "k", 1, buf, sizeof(buf), &vl), 0);
	REQ_T(beq(buf, vl, "from-a", 6));
	pbox_bt_close(a);
	b = bt_open(e.st, "b");
	REQ_EQ(bt_count(b), 0);
	pbox_bt_close(b);
	lb = bt_open(e.st, longname);
	CK_RC(pbox_bt_lookup(lb, "same", 4, buf, sizeof(buf), &vl), 0);
	REQ_T(beq(buf, vl, "t5", 2));
	pbox_bt_close(lb);
	CK_RC(pbox_bt_create(e.st, "a", &bt), PBOX_EEXIST);
	REQ_T(bt == sentinel);
	env_fini(&e);
}
END_TEST

/* Dropping a tree: its name goes, its pages are freed, open handles get PBOX_ECLOSED. */
START_TEST(test_catalog_drop)
{
	env e;
	env_init(&e, 4096, 64);
	CK_RC(pbox_bt_drop(e.st, "missing"), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_drop(e.st, ""), PBOX_EINVAL);
	pbox_bt *keep = bt_create(e.st, "keep");
	pbox_bt *bt = bt_create(e.st, "victim");
	uint8_t key[8], val[6000];
	memset(val, 0x11, sizeof(val));
	for (uint32_t i = 0; i < 3000; i++) {
		put32(key, i);
		put32(key + 4, i * 7);
		size_t vl = i % 50 == 0 ? 2000 + i % 4000 : 20 + i % 80; /* some overflow chains */
		CK_RC(pbox_bt_insert(bt, key, 8, val, vl, 0), 0);
		if (i % 3 == 0)
			CK_RC(pbox_bt_insert(keep, key, 8, val, 10, 0), 0);
	}
	pbox_bt_verify_info info = bt_verify(bt);
	REQ_EQ(info.keys, 3000);
	pbox_bt *other = bt_open(e.st, "victim"); /* a second handle */
	pbox_store_stats s0, s1;
	pbox_store_get_stats(e.st, &s0);
	CK_RC(pbox_bt_drop(e.st, "victim"), 0);
	pbox_store_get_stats(e.st, &s1);
	/* every node but the root (kept as a tombstone) and the chains are free again */
	REQ(s1.free_pages >= s0.free_pages + info.leaves + info.inner - 1,
	    "drop freed %llu pages of a tree with %llu nodes",
	    (unsigned long long)(s1.free_pages - s0.free_pages),
	    (unsigned long long)(info.leaves + info.inner));
	pbox_bt *x = (pbox_bt *)(uintptr_t)0x10;
	CK_RC(pbox_bt_open(e.st, "victim", &x), PBOX_ENOTFOUND);
	REQ_T(x == (pbox_bt *)(uintptr_t)0x10);
	CK_RC(pbox_bt_drop(e.st, "victim"), PBOX_ENOTFOUND);
	const char *want1[] = { "keep" };
	check_list(e.st, want1, 1);
	/* both handles on the dropped tree refuse work */
	pbox_bt *hs[] = { bt, other };
	for (unsigned h = 0; h < 2; h++) {
		size_t vl;
		uint64_t n = 0;
		put32(key, 5);
		put32(key + 4, 35);
		CK_RC(pbox_bt_lookup(hs[h], key, 8, val, sizeof(val), &vl), PBOX_ECLOSED);
		CK_RC(pbox_bt_insert(hs[h], "new", 3, "v", 1, 0), PBOX_ECLOSED);
		CK_RC(pbox_bt_upsert(hs[h], key, 8, "v", 1, 0), PBOX_ECLOSED);
		CK_RC(pbox_bt_remove(hs[h], key, 8, 0), PBOX_ECLOSED);
		CK_RC(pbox_bt_scan(hs[h], NULL, 0, NULL, 0, count_fn, &n), PBOX_ECLOSED);
		REQ_EQ(n, 0);
		pbox_bt_verify_info vi;
		CK_RC(pbox_bt_verify(hs[h], &vi), PBOX_ECLOSED); /* was PBOX_ECORRUPT */
	}
	/* the name can be used again: a new, empty tree; the old handles stay closed */
	pbox_bt *again = bt_create(e.st, "victim");
	REQ_EQ(bt_count(again), 0);
	CK_RC(pbox_bt_insert(bt, "k", 1, "v", 1, 0), PBOX_ECLOSED);
	pbox_bt_close(bt);
	REQ_EQ(bt_verify(keep).keys, 1000);
	/* the freed pages are reused instead of growing the file (the same ascending fill) */
	pbox_store_get_stats(e.st, &s0);
	for (uint32_t i = 0; i < 3000; i++) {
		put32(key, i);
		put32(key + 4, i * 7);
		CK_RC(pbox_bt_insert(again, key, 8, val, i % 50 == 0 ? 2000 + i % 4000 : 20 + i % 80,
				     0), 0);
	}
	pbox_store_get_stats(e.st, &s1);
	REQ(s1.page_count <= s0.page_count + 8, "refilling after a drop grew the file from %llu to "
	    "%llu pages (free pages %llu before, %llu after)", (unsigned long long)s0.page_count,
	    (unsigned long long)s1.page_count, (unsigned long long)s0.free_pages,
	    (unsigned long long)s1.free_pages);
	CK_RC(pbox_bt_insert(again, "k", 1, "v", 1, 0), 0);
	CK_RC(pbox_bt_insert(other, "k", 1, "v", 1, 0), PBOX_ECLOSED);
	pbox_bt_close(other);
	pbox_bt_close(again);
	pbox_bt_close(keep);
	/* all of it across a reopen */
	env_reopen(&e);
	const char *want2[] = { "keep", "victim" };
	check_list(e.st, want2, 2);
	again = bt_open(e.st, "victim");
	REQ_EQ(bt_verify(again).keys, 3001);
	pbox_bt_close(again);
	keep = bt_open(e.st, "keep");
	REQ_EQ(bt_verify(keep).keys, 1000);
	pbox_bt_close(keep);
	env_fini(&e);
}
END_TEST

/* Many trees: the catalog grows over several pages; each tree keeps its own keys. */
START_TEST(test_catalog_many)
{
	env e;
	env_init(&e, 4096, 64);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0xca7a);
	enum { NT = 300 };
	static char names[NT][PBOX_BT_NAME_MAX + 1];
	static const char *sorted[NT];
	for (unsigned i = 0; i < NT; i++) {
		/* long names with a shared prefix: the catalog needs many leaves */
		size_t len = 8 + pbox_rng_below(&r, 200);
		int p = snprintf(names[i], sizeof(names[i]), "tree-%05u-", i);
		for (size_t j = (size_t)p; j < len; j++)
			names[i][j] = (char)('a' + (i * 7 + j) % 26);
		names[i][len > (size_t)p ? len : (size_t)p] = 0;
		sorted[i] = names[i];
	}
	qsort(sorted, NT, sizeof(sorted[0]), name_cmp);
	for (unsigned i = 0; i < NT; i++) {
		pbox_bt *bt;
		if (i % 2)
			bt = bt_create(e.st, names[i]);
		else
			CK_RC(pbox_bt_open_or_create(e.st, names[i], &bt), 0);
		/* tree i holds keys 0..i%7 with values naming the tree */
		for (unsigned k = 0; k <= i % 7; k++) {
			uint8_t key[4], val[8];
			put32(key, k);
			put32(val, i);
			put32(val + 4, k);
			CK_RC(pbox_bt_insert(bt, key, 4, val, 8, 0), 0);
		}
		pbox_bt_close(bt);
	}
	for (unsigned round = 0; round < 2; round++) {
		check_list(e.st, sorted, NT);
		for (unsigned i = 0; i < NT; i++) {
			pbox_bt *bt = bt_open(e.st, names[i]);
			REQ_EQ(bt_count(bt), i % 7 + 1);
			for (unsigned k = 0; k <= i % 7; k++) {
				uint8_t key[4], val[8], want[8];
				size_t vl;
				put32(key, k);
				put32(want, i);
				put32(want + 4, k);
				CK_RC(pbox_bt_lookup(bt, key, 4, val, sizeof(val), &vl), 0);
				REQ(beq(val, vl, want, 8), "tree %u key %u: wrong value", i, k);
			}
			pbox_bt *dup = NULL;
			CK_RC(pbox_bt_create(e.st, names[i], &dup), PBOX_EEXIST);
			pbox_bt_close(bt);
		}
		env_reopen(&e);
	}
	env_fini(&e);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_catalog");
	TCase *tc = tcase_create("catalog");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_catalog_basic);
	tcase_add_test(tc, test_catalog_many);
	tcase_add_test(tc, test_catalog_drop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
