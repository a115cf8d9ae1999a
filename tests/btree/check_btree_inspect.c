/*
 * check_btree_inspect.c — pbox_bt_inspect through pbox/btree.h (black box), against what
 * the test wrote and what pbox_bt_verify counts.
 *
 *   empty        a new tree: depth 1, one leaf, no keys, zero sizes
 *   shape        ascending and random fills at 4 and 16 KiB pages: keys, leaves, inner
 *                nodes and depth equal verify's; pages per level add up and the root level
 *                holds one node; histograms hold every node; key/value min/max/sum exact
 *   overflow     long values: overflow values, bytes and pages (ceil(len / data per page))
 *                exact; removing them zeroes the figures
 *   dropped      a handle on a dropped tree gets PBOX_ECLOSED; bad arguments PBOX_EINVAL
 *
 * Single-threaded: the walk's latching is verify's (btree/src/inspect.c).
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <stdio.h>
#include <string.h>

static void check_shape(pbox_bt *bt, const pbox_bt_inspect_info *in)
{
	pbox_bt_verify_info v = bt_verify(bt);
	REQ_EQ(in->keys, v.keys);
	REQ_EQ(in->leaves, v.leaves);
	REQ_EQ(in->inner, v.inner);
	REQ_EQ(in->depth, v.depth);
	REQ_EQ(in->pages[0], 1);
	uint64_t sum = 0, lf = 0, inf = 0;
	for (unsigned l = 0; l < PBOX_BT_INSPECT_LEVELS; l++) {
		if (l < in->depth)
			REQ(in->pages[l] > 0, "level %u of %llu is empty", l,
			    (unsigned long long)in->depth);
		else
			REQ_EQ(in->pages[l], 0);
		sum += in->pages[l];
	}
	for (unsigned b = 0; b < PBOX_BT_INSPECT_FILL_BUCKETS; b++) {
		lf += in->leaf_fill[b];
		inf += in->inner_fill[b];
	}
	REQ_EQ(sum, in->leaves + in->inner);
	REQ_EQ(lf, in->leaves);
	REQ_EQ(inf, in->inner);
	REQ_EQ(in->pages[in->depth - 1], in->leaves);
	REQ(in->node_bytes_used <= (in->leaves + in->inner) * (in->page_size - 32u),
	    "more bytes used than the nodes hold");
}

START_TEST(test_empty)
{
	env e;
	env_init(&e, 4096, 64);
	pbox_bt *bt = bt_create(e.st, "t");
	pbox_bt_inspect_info in;
	memset(&in, 0xab, sizeof(in));
	CK_RC(pbox_bt_inspect(bt, &in), 0);
	REQ_EQ(in.depth, 1);
	REQ_EQ(in.leaves, 1);
	REQ_EQ(in.inner, 0);
	REQ_EQ(in.keys, 0);
	REQ_EQ(in.key_min, 0);
	REQ_EQ(in.val_max, 0);
	REQ_EQ(in.overflow_pages, 0);
	REQ_EQ(in.leaf_fill[0], 1);
	REQ_EQ(in.page_size, 4096);
	check_shape(bt, &in);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

static const uint32_t page_sizes[] = { 4096, 16384 };

START_TEST(test_shape)
{
	uint32_t ps = page_sizes[_i / 2];
	bool random_order = _i % 2;
	env e;
	env_init(&e, ps, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	const uint64_t n = 20000;
	uint64_t ksum = 0, vsum = 0, kmin = UINT64_MAX, kmax = 0, vmin = UINT64_MAX, vmax = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t x = random_order ? mix64(i) : i;
		uint8_t key[24], val[200];
		size_t kl = 4 + (size_t)(x % 17), vl = (size_t)(mix64(x) % sizeof(val));
		memset(key, 'k', sizeof(key));
		put32(key, (uint32_t)x); /* big-endian: ascending when x is i */
		memset(val, (int)(x & 0xff), vl);
		int rc = pbox_bt_insert(bt, key, kl, val, vl, 0);
		if (rc == PBOX_EEXIST)
			continue;
		CK_RC(rc, 0);
		ksum += kl, vsum += vl;
		kmin = kl < kmin ? kl : kmin, kmax = kl > kmax ? kl : kmax;
		vmin = vl < vmin ? vl : vmin, vmax = vl > vmax ? vl : vmax;
	}
	pbox_bt_inspect_info in;
	CK_RC(pbox_bt_inspect(bt, &in), 0);
	check_shape(bt, &in);
	REQ(in.depth >= 2, "20000 keys in one leaf?");
	REQ_EQ(in.key_sum, ksum);
	REQ_EQ(in.val_sum, vsum);
	REQ_EQ(in.key_min, kmin);
	REQ_EQ(in.key_max, kmax);
	REQ_EQ(in.val_min, vmin);
	REQ_EQ(in.val_max, vmax);
	REQ_EQ(in.overflow_values, 0);
	/* ascending fills leave leaves full: most of them in the top buckets */
	if (!random_order)
		REQ(in.leaf_fill[8] + in.leaf_fill[9] >= in.leaves * 9 / 10,
		    "ascending fill: only %llu of %llu leaves are 80%% full or more",
		    (unsigned long long)(in.leaf_fill[8] + in.leaf_fill[9]),
		    (unsigned long long)in.leaves);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

START_TEST(test_overflow)
{
	env e;
	env_init(&e, 4096, 128);
	pbox_bt *bt = bt_create(e.st, "t");
	static uint8_t big[300000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13);
	const size_t lens[] = { 2000, 4052, 4053, 100000, 300000 };
	const uint64_t per = 4096 - 32 - 12; /* data bytes per overflow page (btree.h) */
	uint64_t pages = 0, bytes = 0;
	for (unsigned i = 0; i < 5; i++) {
		char k[8];
		snprintf(k, sizeof(k), "big%u", i);
		CK_RC(pbox_bt_upsert(bt, k, strlen(k), big, lens[i], 0), 0);
		pages += (lens[i] + per - 1) / per;
		bytes += lens[i];
	}
	CK_RC(pbox_bt_upsert(bt, "small", 5, "x", 1, 0), 0);
	pbox_bt_inspect_info in;
	CK_RC(pbox_bt_inspect(bt, &in), 0);
	check_shape(bt, &in);
	REQ_EQ(in.overflow_values, 5);
	REQ_EQ(in.overflow_bytes, bytes);
	REQ_EQ(in.overflow_pages, pages);
	REQ_EQ(in.val_max, 300000);
	REQ_EQ(in.val_min, 1);
	REQ_EQ(in.keys, 6);
	for (unsigned i = 0; i < 5; i++) {
		char k[8];
		snprintf(k, sizeof(k), "big%u", i);
		CK_RC(pbox_bt_remove(bt, k, strlen(k), 0), 0);
	}
	CK_RC(pbox_bt_inspect(bt, &in), 0);
	REQ_EQ(in.overflow_values, 0);
	REQ_EQ(in.overflow_pages, 0);
	REQ_EQ(in.overflow_bytes, 0);
	REQ_EQ(in.keys, 1);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

START_TEST(test_dropped)
{
	env e;
	env_init(&e, 4096, 64);
	pbox_bt *bt = bt_create(e.st, "t");
	pbox_bt_inspect_info in;
	CK_RC(pbox_bt_inspect(NULL, &in), PBOX_EINVAL);
	CK_RC(pbox_bt_inspect(bt, NULL), PBOX_EINVAL);
	CK_RC(pbox_bt_drop(e.st, "t"), 0);
	CK_RC(pbox_bt_inspect(bt, &in), PBOX_ECLOSED);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("btree_inspect");
	TCase *tc = tcase_create("inspect");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_empty);
	tcase_add_loop_test(tc, test_shape, 0, 4);
	tcase_add_test(tc, test_overflow);
	tcase_add_test(tc, test_dropped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
