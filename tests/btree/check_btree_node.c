/*
 * check_btree_node.c — the B+tree node layer (btree/src/node_read.c, node_write.c),
 * white-box: random operations against a sorted-array oracle on 4, 16 and 64 KiB pages
 * (contents, space accounting, lower_bound, compaction reusing dead space), and the
 * documented limits and argument checks. Splits and merges are in check_btree_node_build.c,
 * the self-check and corruption in check_btree_node_verify.c; the shared helpers are
 * btree_node_test_util.h.
 *
 * Pages are allocated page-aligned and filled with a pattern before init, and the 32-byte
 * storage header carries a marker the node layer must never touch.
 */
#include "btree_node_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_node");
	TCase *tc;
	tc = tcase_create("differential");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_differential, 0, PBOX_ARRAY_LEN(page_sizes));
	tcase_add_loop_test(tc, test_compaction_reuse, 0, PBOX_ARRAY_LEN(page_sizes));
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_limits, 0, PBOX_ARRAY_LEN(page_sizes));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
