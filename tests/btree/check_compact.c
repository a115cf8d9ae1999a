/*
 * check_compact.c — the compacting copy (pbox_bt_copy_trees, pbox/btree.h) on memfs.
 *
 *   shrink      two trees (one with overflow values), 90 % of the keys deleted at random:
 *               the copy holds exactly the remaining pairs (lockstep scans of both stores
 *               after the copy is reopened), verifies, and uses at most 1.3x the pages of a
 *               fresh load of the remaining keys in random order (it is far smaller than
 *               the source)
 *   errors      a destination holding a tree (PBOX_EEXIST), the same store (PBOX_EINVAL),
 *               a store with another structure's meta slot in use (PBOX_ENOTSUP)
 *   snapshot    a copy taken while transactions move money between accounts: the copy's
 *               balances add up (one snapshot over the whole store)
 *   powercut    a power cut at calls spread over a copy: the source reopens with every pair
 *               (the copy only reads it)
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 20000u

static void opts(env *e, pbox_store_options *o)
{
	*o = e->o;
	o->create = true;
	o->checkpoint_log_bytes = 0;
}

static int open_at(env *e, const char *dir, bool create, pbox_store **st)
{
	pbox_store_options o;
	opts(e, &o);
	o.create = create;
	return pbox_store_open(dir, &o, st);
}

static size_t kvgen(uint64_t i, char *k, uint8_t *v, bool big)
{
	sprintf(k, "key%010llu", (unsigned long long)mix64(i) % 10000000000ull);
	size_t n = big && i % 10 == 3 ? 2500 : 60;
	uint64_t x = mix64(i ^ 0x5a5a);
	for (size_t j = 0; j < n; j++, x = x * 6364136223846793005ull + 1)
		v[j] = (uint8_t)(x >> 56);
	return n;
}

/* Load NKEYS keys into tree name (random order by construction), remove those with
 * keep(i) false. */
static void load(pbox_store *st, const char *name, bool big, bool only_kept)
{
	pbox_bt *bt = bt_create(st, name);
	for (uint64_t i = 0; i < NKEYS; i++) {
		char k[32];
		uint8_t v[2500];
		if (only_kept && mix64(i * 7 + 1) % 10 != 0)
			continue;
		size_t vl = kvgen(i, k, v, big);
		CK_RC(pbox_bt_upsert(bt, k, strlen(k), v, vl, 0), 0);
	}
	if (!only_kept)
		for (uint64_t i = 0; i < NKEYS; i++) {
			char k[32];
			uint8_t v[2500];
			kvgen(i, k, v, big);
			if (mix64(i * 7 + 1) % 10 != 0)
				CK_RC(pbox_bt_remove(bt, k, strlen(k), 0), 0);
		}
	pbox_bt_close(bt);
}

typedef struct pairs {
	uint8_t *buf;
	size_t len, cap;
	uint64_t n;
} pairs;

static int collect_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	pairs *p = arg;
	size_t need = 16 + kl + vl;
	if (p->len + need > p->cap) {
		p->cap = (p->cap + need) * 2;
		p->buf = realloc(p->buf, p->cap);
		REQ_T(p->buf != NULL);
	}
	uint64_t l[2] = { kl, vl };
	memcpy(p->buf + p->len, l, 16);
	memcpy(p->buf + p->len + 16, k, kl);
	memcpy(p->buf + p->len + 16 + kl, v, vl);
	p->len += need;
	p->n++;
	return 0;
}

static pairs dump_tree(pbox_store *st, const char *name)
{
	pairs p = { 0 };
	pbox_bt *bt = bt_open(st, name);
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, collect_fn, &p), 0);
	pbox_bt_close(bt);
	return p;
}

static void same_tree(pbox_store *a, pbox_store *b, const char *name, uint64_t want)
{
	pairs x = dump_tree(a, name), y = dump_tree(b, name);
	REQ(x.n == y.n && x.len == y.len && !memcmp(x.buf, y.buf, x.len),
	    "tree %s: %llu pairs in the source, %llu in the copy, or different bytes", name,
	    (unsigned long long)x.n, (unsigned long long)y.n);
	REQ_EQ(x.n, want);
	free(x.buf);
	free(y.buf);
}

static uint64_t pages_of(pbox_store *st)
{
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	return s.page_count - s.free_pages;
}

static uint64_t high_water(pbox_store *st)
{
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	return s.page_count;
}

START_TEST(t_shrink)
{
	env e;
	env_init(&e, 4096, 4096);
	load(e.st, "small", false, false);
	load(e.st, "big", true, false);
	uint64_t kept = 0;
	for (uint64_t i = 0; i < NKEYS; i++)
		kept += mix64(i * 7 + 1) % 10 == 0;
	/* the copy */
	pbox_store *cp;
	CK_RC(open_at(&e, "/copy", true, &cp), 0);
	pbox_bt_copy_info info;
	CK_RC(pbox_bt_copy_trees(e.st, cp, &info), 0);
	REQ_EQ(info.trees, 2);
	REQ_EQ(info.pairs, 2 * kept);
	CK_RC(pbox_store_close(cp), 0);
	CK_RC(open_at(&e, "/copy", false, &cp), 0);
	same_tree(e.st, cp, "small", kept);
	same_tree(e.st, cp, "big", kept);
	pbox_bt *t = bt_open(cp, "small");
	bt_verify(t);
	pbox_bt_close(t);
	t = bt_open(cp, "big");
	bt_verify(t);
	pbox_bt_close(t);
	/* a fresh load of the remaining keys, in random order */
	pbox_store *fresh;
	CK_RC(open_at(&e, "/fresh", true, &fresh), 0);
	load(fresh, "small", false, true);
	load(fresh, "big", true, true);
	same_tree(e.st, fresh, "small", kept);
	uint64_t src = high_water(e.st), live = pages_of(e.st), copy = high_water(cp),
		 fr = high_water(fresh);
	printf("compact: source %llu pages (%llu live), copy %llu, fresh load %llu\n",
	       (unsigned long long)src, (unsigned long long)live, (unsigned long long)copy,
	       (unsigned long long)fr);
	REQ(copy * 10 <= fr * 13, "the copy takes %llu pages, a fresh load %llu (> 1.3x)",
	    (unsigned long long)copy, (unsigned long long)fr);
	REQ(copy * 3 < src, "the copy (%llu pages) is not much smaller than the source (%llu)",
	    (unsigned long long)copy, (unsigned long long)src);
	CK_RC(pbox_store_close(fresh), 0);
	CK_RC(pbox_store_close(cp), 0);
	env_fini(&e);
}
END_TEST

START_TEST(t_errors)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	CK_RC(pbox_bt_upsert(bt, "a", 1, "1", 1, 0), 0);
	pbox_bt_close(bt);
	CK_RC(pbox_bt_copy_trees(e.st, e.st, NULL), PBOX_EINVAL);
	CK_RC(pbox_bt_copy_trees(NULL, e.st, NULL), PBOX_EINVAL);
	pbox_store *cp;
	CK_RC(open_at(&e, "/copy", true, &cp), 0);
	bt = bt_create(cp, "other");
	pbox_bt_close(bt);
	CK_RC(pbox_bt_copy_trees(e.st, cp, NULL), PBOX_EEXIST);
	CK_RC(pbox_store_close(cp), 0);
	/* another structure's meta slot in use */
	CK_RC(open_at(&e, "/copy2", true, &cp), 0);
	pbox_mtr *m;
	CK_RC(pbox_mtr_begin(e.st, &m), 0);
	CK_RC(pbox_mtr_meta_set(m, 5, 1234), 0);
	CK_RC(pbox_mtr_commit(m, false, NULL), 0);
	CK_RC(pbox_bt_copy_trees(e.st, cp, NULL), PBOX_ENOTSUP);
	CK_RC(pbox_store_close(cp), 0);
	env_fini(&e);
}
END_TEST

/* ---- snapshot ------------------------------------------------------------------------------ */

#define ACCTS 40
typedef struct bank {
	pbox_store *st;
	pbox_bt *bt;
	atomic_bool stop;
	_Atomic int err;
	uint64_t commits;
} bank;

static void *mover(void *arg)
{
	bank *b = arg;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() | 1);
	while (!atomic_load(&b->stop)) {
		unsigned x = (unsigned)pbox_rng_below(&r, ACCTS), y = (x + 1) % ACCTS;
		char kx[16], ky[16];
		sprintf(kx, "acct%02u", x);
		sprintf(ky, "acct%02u", y);
		pbox_txn *t;
		int64_t vx = 0, vy = 0;
		size_t n;
		int rc = pbox_txn_begin(b->st, 0, &t);
		if (!rc)
			rc = pbox_txn_get(t, b->bt, kx, 6, &vx, 8, &n);
		if (!rc)
			rc = pbox_txn_get(t, b->bt, ky, 6, &vy, 8, &n);
		vx -= 3;
		vy += 3;
		if (!rc)
			rc = pbox_txn_put(t, b->bt, kx, 6, &vx, 8);
		if (!rc)
			rc = pbox_txn_put(t, b->bt, ky, 6, &vy, 8);
		if (!rc) {
			rc = pbox_txn_commit(t, 0);
			t = NULL;
		}
		pbox_txn_abort(t);
		if (!rc)
			b->commits++;
		else if (rc != PBOX_ECONFLICT) {
			atomic_store(&b->err, rc);
			break;
		}
	}
	return NULL;
}

START_TEST(t_snapshot)
{
	env e;
	env_init(&e, 4096, 1024);
	bank b = { .st = e.st };
	b.bt = bt_create(e.st, "bank");
	for (unsigned a = 0; a < ACCTS; a++) {
		char k[16];
		int64_t v = 100;
		sprintf(k, "acct%02u", a);
		CK_RC(pbox_bt_upsert(b.bt, k, 6, &v, 8, 0), 0);
	}
	load(e.st, "filler", false, false); /* so the copy takes a while */
	pthread_t th;
	REQ_T(pthread_create(&th, NULL, mover, &b) == 0);
	for (unsigned round = 0; round < 3; round++) {
		char dir[32];
		snprintf(dir, sizeof(dir), "/snap%u", round);
		pbox_store *cp;
		CK_RC(open_at(&e, dir, true, &cp), 0);
		CK_RC(pbox_bt_copy_trees(e.st, cp, NULL), 0);
		pbox_bt *cb = bt_open(cp, "bank");
		int64_t sum = 0;
		for (unsigned a = 0; a < ACCTS; a++) {
			char k[16];
			int64_t v = 0;
			size_t n;
			sprintf(k, "acct%02u", a);
			CK_RC(pbox_bt_lookup(cb, k, 6, &v, 8, &n), 0);
			sum += v;
		}
		REQ(sum == 100 * ACCTS, "copy %u: the balances add up to %lld", round, (long long)sum);
		pbox_bt_close(cb);
		CK_RC(pbox_store_close(cp), 0);
	}
	atomic_store(&b.stop, true);
	pthread_join(th, NULL);
	CK_RC(atomic_load(&b.err), 0);
	REQ_GT(b.commits, 0);
	pbox_bt_close(b.bt);
	env_fini(&e);
}
END_TEST

START_TEST(t_powercut)
{
	env e;
	env_init(&e, 4096, 512);
	load(e.st, "t", true, false);
	CK_RC(pbox_store_checkpoint(e.st), 0);
	pairs want = dump_tree(e.st, "t");
	uint64_t c0 = pbox_io_memfs_changes(e.fs);
	pbox_store *cp;
	CK_RC(open_at(&e, "/cal", true, &cp), 0);
	CK_RC(pbox_bt_copy_trees(e.st, cp, NULL), 0);
	CK_RC(pbox_store_close(cp), 0);
	uint64_t span = pbox_io_memfs_changes(e.fs) - c0;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0xc0);
	unsigned cuts = pbox_test_cycles(8), fired = 0;
	for (unsigned i = 0; i < cuts; i++) {
		char dir[32];
		snprintf(dir, sizeof(dir), "/pc%u", i);
		pbox_io_memfs_arm(e.fs, 1 + pbox_rng_below(&r, span), (int)(i % 4), pbox_rng_next(&r));
		int rc = open_at(&e, dir, true, &cp);
		if (!rc) {
			rc = pbox_bt_copy_trees(e.st, cp, NULL);
			int rc2 = pbox_store_close(cp);
			if (!rc)
				rc = rc2;
		}
		if (!pbox_io_memfs_fired(e.fs)) {
			pbox_io_memfs_arm(e.fs, 0, 0, 0);
			CK_RC(rc, 0);
			continue;
		}
		REQ_T(rc != 0);
		fired++;
		pbox_store_close(e.st); /* fails: the machine is off */
		e.st = NULL;
		pbox_io_memfs_restart(e.fs);
		env_open(&e);
		pairs got = dump_tree(e.st, "t");
		REQ(got.n == want.n && got.len == want.len && !memcmp(got.buf, want.buf, got.len),
		    "cut %u: the source changed", i);
		free(got.buf);
	}
	REQ_GT(fired, 0);
	free(want.buf);
	env_fini(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("compact");
	TCase *tc = tcase_create("compact");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, t_shrink);
	tcase_add_test(tc, t_errors);
	tcase_add_test(tc, t_snapshot);
	tcase_add_test(tc, t_powercut);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
