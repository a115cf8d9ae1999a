/*
 * check_txn_format.c — the transactions' logical log records (format table in
 * btree/src/txn_log.c, restated below) as recovery reads them from disk.
 *
 *   replay      records written by hand through pbox_mtr_log_logical, then a crash and a
 *               reopen: a committed transaction without an end record is installed (values
 *               split over several records reassembled, deletes applied, a key of a dropped
 *               tree skipped); one without a commit record leaves no trace; one with an end
 *               record is not installed again; recovery logs end records, so a second
 *               crash and recovery changes nothing; the transaction stats count it.
 *   corrupt     every malformed record recovery must refuse (PBOX_ECORRUPT, the open fails
 *               with an explanation, nothing crashes): short payloads, an unknown kind, a key
 *               or value over the limits, a piece beyond the record or beyond its value, a
 *               continuation that does not continue, a delete with a value, operations after
 *               the commit record, a commit naming more operations than logged or of an
 *               unknown transaction, a commit or end record of the wrong length.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the format (btree/src/txn_log.c) */
#define T_OPS (PBOX_BT_REDO_TYPE_FIRST + 8)
#define T_COMMIT (PBOX_BT_REDO_TYPE_FIRST + 9)
#define T_END (PBOX_BT_REDO_TYPE_FIRST + 10)
#define OP_HDR 25u

typedef struct rec {
	uint8_t b[8192];
	size_t n;
} rec;

static void r_u64(rec *r, uint64_t v)
{
	memcpy(r->b + r->n, &v, 8);
	r->n += 8;
}
static void r_u32(rec *r, uint32_t v)
{
	memcpy(r->b + r->n, &v, 4);
	r->n += 4;
}
static void r_op(rec *r, uint8_t kind, uint64_t tree, const char *key, uint32_t vtotal,
		 uint32_t voff, const void *piece, uint32_t plen)
{
	r->b[r->n++] = kind;
	r_u64(r, tree);
	r_u32(r, (uint32_t)strlen(key));
	r_u32(r, vtotal);
	r_u32(r, voff);
	r_u32(r, plen);
	memcpy(r->b + r->n, key, strlen(key));
	r->n += strlen(key);
	if (plen)
		memcpy(r->b + r->n, piece, plen);
	r->n += plen;
}

static void log1(pbox_store *st, uint16_t type, const rec *r)
{
	pbox_mtr *m;
	CK_RC(pbox_mtr_begin(st, &m), 0);
	CK_RC(pbox_mtr_log_logical(m, type, r->b, (uint32_t)r->n), 0);
	CK_RC(pbox_mtr_commit(m, true, NULL), 0);
}

static void commit_rec(pbox_store *st, uint64_t ts, uint64_t nops, size_t len)
{
	rec r = { .n = 0 };
	r_u64(&r, ts);
	r_u64(&r, nops);
	r.n = len;
	log1(st, T_COMMIT, &r);
}

static void end_rec(pbox_store *st, uint64_t ts)
{
	rec r = { .n = 0 };
	r_u64(&r, ts);
	log1(st, T_END, &r);
}

/* Crash (kill -9: what was synced stays) and reopen; the open's status. */
static int crash_reopen(env *e)
{
	pbox_io_memfs_crash(e->fs);
	(void)pbox_store_close(e->st);
	e->st = NULL;
	pbox_io_memfs_restart(e->fs);
	return pbox_store_open(DIR_, &e->o, &e->st);
}

/* The root page id of the tree whose only leaf holds the bytes marker (records name a tree
 * by its root, which the API does not publish: the tests' trees are tiny, root = leaf). */
static pbox_pid find_root(env *e, const char *marker, pbox_pid not)
{
	for (pbox_pid p = 3; p < 128; p++) {
		if (p == not)
			continue;
		void *pg;
		pbox_mtr *m;
		CK_RC(pbox_mtr_begin(e->st, &m), 0);
		int r = pbox_mtr_fix(m, p, &pg);
		bool hit = !r && pbox_page_type(pg) == PBOX_BT_PAGE_TYPE_NODE &&
			   memmem(pg, 4096, marker, strlen(marker)) != NULL;
		pbox_mtr_abort(m, false);
		if (hit)
			return p;
	}
	return PBOX_PID_NONE;
}

START_TEST(test_replay)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	CK_RC(pbox_bt_upsert(bt, "old", 3, "1", 1, PBOX_BT_DURABLE), 0);
	CK_RC(pbox_bt_upsert(bt, "gone", 4, "x", 1, PBOX_BT_DURABLE), 0);
	pbox_pid root = find_root(&e, "gone", PBOX_PID_NONE);
	REQ(root != PBOX_PID_NONE, "t's root page not found");
	char big[9000];
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	/* ts 901: committed, not ended: a put split over two records, a delete, a put */
	rec r = { .n = 0 };
	r_u64(&r, 901);
	r_op(&r, 0, root, "big", sizeof(big), 0, big, 5000);
	log1(e.st, T_OPS, &r);
	r.n = 0;
	r_u64(&r, 901);
	r_op(&r, 0, root, "big", sizeof(big), 5000, big + 5000, sizeof(big) - 5000);
	r_op(&r, 1, root, "gone", 0, 0, NULL, 0);
	r_op(&r, 0, root, "new", 2, 0, "nv", 2);
	log1(e.st, T_OPS, &r);
	commit_rec(e.st, 901, 3, 16);
	/* ts 902: never committed */
	r.n = 0;
	r_u64(&r, 902);
	r_op(&r, 0, root, "uncommitted", 1, 0, "u", 1);
	log1(e.st, T_OPS, &r);
	/* ts 903: committed and ended: not installed again */
	r.n = 0;
	r_u64(&r, 903);
	r_op(&r, 0, root, "ended", 1, 0, "e", 1);
	log1(e.st, T_OPS, &r);
	commit_rec(e.st, 903, 1, 16);
	end_rec(e.st, 903);
	pbox_bt_close(bt);
	CK_RC(crash_reopen(&e), 0);
	pbox_txn_stats ts;
	pbox_txn_get_stats(e.st, &ts);
	REQ_EQ(ts.recovered, 1);
	bt = bt_open(e.st, "t");
	static char got[16384];
	size_t vl;
	CK_RC(pbox_bt_lookup(bt, "big", 3, got, sizeof(got), &vl), 0);
	REQ(vl == sizeof(big) && !memcmp(got, big, vl), "the split value was not reassembled");
	CK_RC(pbox_bt_lookup(bt, "gone", 4, got, sizeof(got), &vl), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_lookup(bt, "new", 3, got, sizeof(got), &vl), 0);
	CK_RC(pbox_bt_lookup(bt, "uncommitted", 11, got, sizeof(got), &vl), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_lookup(bt, "ended", 5, got, sizeof(got), &vl), PBOX_ENOTFOUND);
	/* a later change to a re-installed key survives a second crash: the end record that
	 * recovery logged keeps 901 from being installed over it */
	CK_RC(pbox_bt_upsert(bt, "new", 3, "later", 5, PBOX_BT_DURABLE), 0);
	pbox_bt_close(bt);
	CK_RC(crash_reopen(&e), 0);
	pbox_txn_get_stats(e.st, &ts);
	REQ_EQ(ts.recovered, 0);
	bt = bt_open(e.st, "t");
	CK_RC(pbox_bt_lookup(bt, "new", 3, got, sizeof(got), &vl), 0);
	REQ(vl == 5 && !memcmp(got, "later", 5), "a recovered transaction was installed twice");
	/* a dropped tree's key in a committed transaction is skipped */
	pbox_bt *d = bt_create(e.st, "d");
	CK_RC(pbox_bt_upsert(d, "dkey", 4, "v", 1, PBOX_BT_DURABLE), 0);
	pbox_pid droot = find_root(&e, "dkey", root);
	REQ(droot != PBOX_PID_NONE, "d's root not found");
	pbox_bt_close(d);
	CK_RC(pbox_bt_drop(e.st, "d"), 0);
	r.n = 0;
	r_u64(&r, 5000);
	r_op(&r, 0, droot, "dkey", 1, 0, "w", 1);
	r_op(&r, 0, root, "after-drop", 1, 0, "a", 1);
	log1(e.st, T_OPS, &r);
	commit_rec(e.st, 5000, 2, 16);
	pbox_bt_close(bt);
	CK_RC(crash_reopen(&e), 0);
	bt = bt_open(e.st, "t");
	CK_RC(pbox_bt_lookup(bt, "after-drop", 10, got, sizeof(got), &vl), 0);
	bt_verify(bt);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* Each malformed record: written after a valid prefix, then a crash: the open refuses. */
static void corrupt_case(unsigned which)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	pbox_bt_close(bt);
	rec r = { .n = 0 };
	r_u64(&r, 77);
	uint16_t type = T_OPS;
	const char *what = "";
	switch (which) {
	case 0: r.n = 4; what = "ops shorter than its ts"; break;
	case 1: r_op(&r, 0, 3, "k", 1, 0, "v", 1); r.n -= 3; what = "op beyond the record"; break;
	case 2: r_op(&r, 2, 3, "k", 1, 0, "v", 1); what = "unknown kind"; break;
	case 3: r_op(&r, 0, 3, "k", 1, 0, "v", 1); memcpy(r.b + 8 + 9, &(uint32_t){ 70000 }, 4);
		what = "key over the limit"; break;
	case 4: r_op(&r, 0, 3, "k", 1, 0, "v", 1);
		memcpy(r.b + 8 + 13, &(uint32_t){ PBOX_BT_VALUE_MAX_BYTES + 1 }, 4);
		what = "value over the limit"; break;
	case 5: r_op(&r, 0, 3, "k", 1, 2, "v", 1); what = "offset beyond the value"; break;
	case 6: r_op(&r, 0, 3, "k", 4, 0, "vvvv", 4); memcpy(r.b + 8 + 21, &(uint32_t){ 9 }, 4);
		what = "piece beyond the value"; break;
	case 7: r_op(&r, 0, 3, "k", 4, 2, "vv", 2); what = "continuation of nothing"; break;
	case 8: r_op(&r, 0, 3, "k", 4, 0, "vv", 2); r_op(&r, 0, 3, "j", 4, 2, "vv", 2);
		what = "continuation of another key"; break;
	case 9: r_op(&r, 0, 3, "k", 4, 0, "vv", 2); r_op(&r, 0, 3, "j", 1, 0, "v", 1);
		what = "a value left incomplete"; break;
	case 10: r_op(&r, 1, 3, "k", 3, 0, "vvv", 3); what = "a delete with a value"; break;
	case 11: type = T_COMMIT; r_u64(&r, 1); what = "commit of an unknown transaction"; break;
	case 12: type = T_COMMIT; r.n = 12; what = "commit of the wrong length"; break;
	case 13: type = T_END; r.n = 7; what = "end of the wrong length"; break;
	case 14: r_op(&r, 0, 3, "k", 1, 0, "v", 1); log1(e.st, T_OPS, &r); commit_rec(e.st, 77, 2, 16);
		 r.n = 0; type = 0; what = "commit of more operations than logged"; break;
	case 15: r_op(&r, 0, 3, "k", 1, 0, "v", 1); log1(e.st, T_OPS, &r); commit_rec(e.st, 77, 1, 16);
		 r.n = 8; what = "operations after the commit"; break;
	case 16: r_op(&r, 0, 3, "k", 4, 0, "vv", 2); log1(e.st, T_OPS, &r);
		 commit_rec(e.st, 77, 1, 16); r.n = 0; type = 0; what = "commit of a half value"; break;
	default: break;
	}
	if (type)
		log1(e.st, type, &r);
	int rc = crash_reopen(&e);
	REQ(rc == PBOX_ECORRUPT, "case %u (%s): open returned %s", which, what,
	    pbox_status_name(rc));
	REQ(strstr(e.err, "logical") != NULL, "case %u: the error says %s", which, e.err);
	e.st = NULL;
	pbox_io_memfs_destroy(e.fs);
}

START_TEST(test_corrupt)
{
	corrupt_case((unsigned)_i);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn-format");
	TCase *tc = tcase_create("format");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_replay);
	tcase_add_loop_test(tc, test_corrupt, 0, 17);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
