/*
 * check_btree.c — the B+tree's tree layer through its public header pbox/btree.h (black
 * box: nothing here includes a private header).
 *
 *   catalog      create / open / open_or_create / list / drop, their errors, bad names,
 *                many independent trees in one store (the catalog over several pages),
 *                handles on a dropped tree (PBOX_ECLOSED), names and contents across a
 *                reopen; concurrent open_or_create / create races.
 *   oracle       random operations on two trees against in-memory sorted arrays: every
 *                return code, every looked-up value (copy and callback forms, ETOOSMALL),
 *                range scans forward and reverse and prefix scans with early stops, cursor
 *                walks (first / last / seek / seek_prev, next / prev) with changes to other
 *                keys between their steps; keys of every length 0..key_max with shared
 *                prefixes, 0x00 / 0xFF bytes and keys that prefix others; values from 0
 *                bytes across the inline / overflow boundary to 4 pages; 4 and 16 KiB
 *                pages, a 64-page budget (constant eviction) and a large one; verify after
 *                every phase, a store reopen in the middle, a final drain.
 *   fill         ascending inserts pack leaves: fewer than 1.2x the minimum leaf count
 *                computed from the node format's limits.
 *   merge        removing every key gives pages back: the tree shrinks and refilling it
 *                reuses the freed pages (ARCHITECTURE §8: deletes merge and free pages).
 *   limits       key_max / value_max, keys and values at and over the limit (values up to
 *                17 MiB), NULL arguments: PBOX_EINVAL, nothing changed, out-parameters
 *                untouched; many maximal keys with maximal inline values.
 *   concurrency  writers on disjoint, interleaved key sets with exact per-writer oracles
 *                (some values on overflow pages); readers check what holds under any
 *                interleaving: scans and cursor walks in both directions stay ordered and
 *                within their bounds, values are whole (self-validating), versions never
 *                go back, keys that are never removed are always found; verify runs
 *                while writers work.
 *   powercut     writers running (some values on overflow pages, tree creations), the
 *                power cut at a random moment while they work (memfs, every cut mode),
 *                recovery: each writer's keys equal its oracle after some prefix of its
 *                operations that includes every acknowledged durable one; no value that
 *                was never written; every created tree exists; verify passes; the store
 *                keeps working. PBOX_BT_CYCLE=seed:writers replays one cycle verbosely.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces); PBOX_STRESS_SCALE lengthens.
 */
#define _GNU_SOURCE
#include <pbox/btree.h>
#include <pbox/io.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_ "/bt"

/* Assertions that cost nothing when they hold (Check's ck_assert_* log every location they
 * pass through; the loops here make millions of checks). */
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
		int want_ = (want);                                                         \
		REQ(rc_ == want_, "%s:%d: %s = %s, want %s", __FILE__, __LINE__, #expr,      \
		    pbox_status_name(rc_), pbox_status_name(want_));                        \
	} while (0)

/* The node format's documented limits (btree/src/node.h), restated from its comment. */
#define NODE_HDR 96u
#define NODE_SLOT 12u
#define KEY_MAX_PS(ps) ((uint32_t)(ps) / 8u)
#define ENTRY_MAX_PS(ps) (((uint32_t)(ps) - PBOX_PAGE_HDR - NODE_HDR - 2u * KEY_MAX_PS(ps)) / 4u - NODE_SLOT)
#define KBUF 8192u /* any key at any page size */

/* ---- small helpers ---------------------------------------------------------------------- */

static int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

static bool beq(const void *a, size_t al, const void *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	REQ_T(p != NULL);
	return p;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i)); /* big-endian: keys sort by number */
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t fnv64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* ---- stores on memfs -------------------------------------------------------------------- */

typedef struct env {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	char err[256];
} env;

static void env_open(env *e)
{
	int rc = pbox_store_open(DIR_, &e->o, &e->st);
	REQ(rc == 0, "store open: %s: %s", pbox_status_name(rc), e->err);
}

static void env_init(env *e, uint32_t ps, uint64_t budget_pages)
{
	memset(e, 0, sizeof(*e));
	CK_RC(pbox_io_memfs_create(&e->fs), 0);
	pbox_store_options_init(&e->o);
	e->o.io = pbox_io_memfs_io(e->fs);
	e->o.create = true;
	e->o.page_size = ps;
	e->o.budget_bytes = budget_pages * ps;
	e->o.max_bytes = 1ull << 30;
	e->o.wal_segment_size = 4u << 20;
	const pbox_redo_handler *h;
	unsigned n;
	pbox_bt_redo_handlers(&h, &n);
	REQ_T(h != NULL && n > 0);
	e->o.redo = h;
	e->o.nredo = n;
	e->o.errbuf = e->err;
	e->o.errbuf_len = sizeof(e->err);
	env_open(e);
}

static void env_reopen(env *e)
{
	CK_RC(pbox_store_close(e->st), 0);
	e->st = NULL;
	env_open(e);
}

static void env_fini(env *e)
{
	if (e->st)
		CK_RC(pbox_store_close(e->st), 0);
	e->st = NULL;
	pbox_io_memfs_destroy(e->fs);
}

static pbox_bt *bt_create(pbox_store *st, const char *name)
{
	pbox_bt *bt = NULL;
	CK_RC(pbox_bt_create(st, name, &bt), 0);
	REQ_T(bt != NULL);
	return bt;
}

static pbox_bt *bt_open(pbox_store *st, const char *name)
{
	pbox_bt *bt = NULL;
	CK_RC(pbox_bt_open(st, name, &bt), 0);
	REQ_T(bt != NULL);
	return bt;
}

static pbox_bt_verify_info bt_verify(pbox_bt *bt)
{
	pbox_bt_verify_info info;
	memset(&info, 0xee, sizeof(info));
	CK_RC(pbox_bt_verify(bt, &info), 0);
	REQ(info.leaves >= 1, "verify: %llu leaves", (unsigned long long)info.leaves);
	REQ(info.depth < 64, "verify: depth %llu", (unsigned long long)info.depth);
	return info;
}

/* Scan callback that counts pairs. */
static int count_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t bt_count(pbox_bt *bt)
{
	uint64_t n = 0;
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, count_fn, &n), 0);
	return n;
}

/* ---- 1. catalog ------------------------------------------------------------------------- */

typedef struct name_list {
	char names[400][PBOX_BT_NAME_MAX + 1];
	size_t lens[400];
	unsigned n, stop_after;
	int bad;
} name_list;

static int list_fn(const char *name, size_t len, void *arg)
{
	name_list *l = arg;
	if (l->n >= 400 || len > PBOX_BT_NAME_MAX || len == 0 || name == NULL) {
		l->bad = 1;
		return -77;
	}
	memcpy(l->names[l->n], name, len);
	l->names[l->n][len] = 0;
	l->lens[l->n] = len;
	l->n++;
	if (l->stop_after && l->n == l->stop_after)
		return 99;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	return kcmp(x, strlen(x), y, strlen(y));
}

/* want: sorted names (strcmp-able C strings) */
static void check_list(pbox_store *st, const char **want, unsigned n)
{
	static name_list l;
	memset(&l, 0, sizeof(l));
	CK_RC(pbox_bt_list(st, list_fn, &l), 0);
	REQ(!l.bad, "list: bad callback arguments");
	REQ_EQ(l.n, n);
	for (unsigned i = 0; i < n; i++)
		REQ(beq(l.names[i], l.lens[i], want[i], strlen(want[i])),
		    "list: name %u is \"%s\", want \"%s\"", i, l.names[i], want[i]);
	if (n >= 2) {
		memset(&l, 0, sizeof(l));
		l.stop_after = 2;
		CK_RC(pbox_bt_list(st, list_fn, &l), 99);
		REQ_EQ(l.n, 2);
	}
}

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

/* ---- 2. differential test against a sorted-array oracle -------------------------------- */

typedef struct kv {
	uint8_t *k, *v;
	uint32_t kl, vl;
} kv;

typedef struct oracle {
	kv *a;
	size_t n, cap;
} oracle;

static size_t orc_lb(const oracle *o, const void *k, size_t kl, bool *exact)
{
	size_t lo = 0, hi = o->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (kcmp(o->a[mid].k, o->a[mid].kl, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (exact)
		*exact = lo < o->n && kcmp(o->a[lo].k, o->a[lo].kl, k, kl) == 0;
	return lo;
}

static void orc_set(oracle *o, const void *k, size_t kl, const void *v, size_t vl)
{
	bool ex;
	size_t pos = orc_lb(o, k, kl, &ex);
	uint8_t *nv = xmalloc(vl);
	if (vl)
		memcpy(nv, v, vl);
	if (ex) {
		free(o->a[pos].v);
		o->a[pos].v = nv;
		o->a[pos].vl = (uint32_t)vl;
		return;
	}
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 256;
		o->a = realloc(o->a, o->cap * sizeof(kv));
		REQ_T(o->a != NULL);
	}
	memmove(&o->a[pos + 1], &o->a[pos], (o->n - pos) * sizeof(kv));
	o->a[pos].k = xmalloc(kl);
	if (kl)
		memcpy(o->a[pos].k, k, kl);
	o->a[pos].kl = (uint32_t)kl;
	o->a[pos].v = nv;
	o->a[pos].vl = (uint32_t)vl;
	o->n++;
}

static void orc_del(oracle *o, size_t pos)
{
	free(o->a[pos].k);
	free(o->a[pos].v);
	memmove(&o->a[pos], &o->a[pos + 1], (o->n - pos - 1) * sizeof(kv));
	o->n--;
}

static void orc_free(oracle *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->a[i].k);
		free(o->a[i].v);
	}
	free(o->a);
	memset(o, 0, sizeof(*o));
}

static uint8_t rbyte(pbox_rng *r)
{
	switch (pbox_rng_below(r, 8)) {
	case 0:
		return 0x00;
	case 1:
		return 0xff;
	case 2:
	case 3:
	case 4:
		return (uint8_t)('a' + pbox_rng_below(r, 3)); /* small alphabet: shared prefixes */
	default:
		return (uint8_t)pbox_rng_next(r);
	}
}

/* A length in [0, max], mostly short. */
static uint32_t rlen(pbox_rng *r, uint32_t max)
{
	uint32_t cap;
	switch (pbox_rng_below(r, 16)) {
	case 0:
		return 0;
	case 1:
		return max;
	case 2:
	case 3:
		cap = max;
		break;
	case 4:
	case 5:
	case 6:
		cap = max < 64 ? max : 64;
		break;
	default:
		cap = max < 12 ? max : 12;
		break;
	}
	return (uint32_t)pbox_rng_below(r, (uint64_t)cap + 1);
}

/* A key: often one in the oracle (hits), a prefix or an extension or a neighbour of one, or
 * fresh. Returns its length. */
static uint32_t gen_key(pbox_rng *r, const oracle *o, uint8_t *buf, uint32_t kmax)
{
	uint32_t c = (uint32_t)pbox_rng_below(r, 16);
	if (o->n && c < 10) {
		const kv *e = &o->a[pbox_rng_below(r, o->n)];
		uint32_t kl = e->kl;
		if (kl)
			memcpy(buf, e->k, kl);
		switch (c) {
		case 6: /* a prefix of an existing key */
			return (uint32_t)pbox_rng_below(r, (uint64_t)kl + 1);
		case 7: /* an extension */
		{
			uint32_t add = 1 + (uint32_t)pbox_rng_below(r, 4);
			while (kl < kmax && add--)
				buf[kl++] = rbyte(r);
			return kl;
		}
		case 8: /* a neighbour: last byte +- 1 */
			if (kl)
				buf[kl - 1] = (uint8_t)(buf[kl - 1] + (pbox_rng_below(r, 2) ? 1 : 0xff));
			return kl;
		case 9: /* shares a prefix, then differs */
		{
			uint32_t keep = (uint32_t)pbox_rng_below(r, (uint64_t)kl + 1);
			uint32_t nl = keep + (uint32_t)pbox_rng_below(r, (uint64_t)(kmax - keep) / 4 + 2);
			if (nl > kmax)
				nl = kmax;
			for (uint32_t i = keep; i < nl; i++)
				buf[i] = rbyte(r);
			return nl;
		}
		default:
			return kl;
		}
	}
	uint32_t kl = rlen(r, kmax);
	for (uint32_t i = 0; i < kl; i++)
		buf[i] = rbyte(r);
	return kl;
}

/* A value length in [0, vmax]: mostly short, sometimes around a quarter to half a page
 * (where values move between the leaf and overflow pages), rarely up to vmax. */
static uint32_t vlen_pick(pbox_rng *r, uint32_t vmax, uint32_t ps)
{
	uint32_t cap;
	switch (pbox_rng_below(r, 64)) {
	case 0:
		return 0;
	case 1:
		return vmax;
	case 2:
	case 3:
		cap = vmax;
		break;
	case 4:
	case 5:
	case 6:
	case 7:
	case 8:
	case 9:
	case 10:
	case 11:
		cap = ps / 2;
		break;
	default:
		cap = pbox_rng_below(r, 2) ? 64 : 12;
		break;
	}
	if (cap > vmax)
		cap = vmax;
	return (uint32_t)pbox_rng_below(r, (uint64_t)cap + 1);
}

static uint32_t gen_val(pbox_rng *r, uint8_t *buf, uint32_t vmax, uint32_t ps)
{
	uint32_t vl = vlen_pick(r, vmax, ps);
	uint64_t x = pbox_rng_next(r);
	for (uint32_t i = 0; i < vl; i++) {
		if (i % 8 == 0)
			x = mix64(x + i);
		buf[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
	return vl;
}

#define SCAN_STOP 42
#define SCAN_BAD 0x5bad

typedef struct scan_ctx {
	const oracle *o;
	size_t lo, hi; /* expected: oracle entries [lo, hi), ascending or (rev) descending */
	bool rev;
	unsigned calls, stop_at;
	char msg[256];
} scan_ctx;

static int scan_cmp_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	scan_ctx *c = arg;
	c->calls++;
	if (c->calls > c->hi - c->lo) {
		snprintf(c->msg, sizeof(c->msg), "scan reports a key (len %zu) beyond the range "
			 "(after %u pairs)", kl, c->calls - 1);
		return SCAN_BAD;
	}
	size_t pos = c->rev ? c->hi - c->calls : c->lo + c->calls - 1;
	const kv *e = &c->o->a[pos];
	if (!beq(k, kl, e->k, e->kl)) {
		snprintf(c->msg, sizeof(c->msg), "scan pair %u: key (len %zu) is not the oracle's "
			 "key %zu (len %u)", c->calls - 1, kl, pos, e->kl);
		return SCAN_BAD;
	}
	if (!beq(v, vl, e->v, e->vl)) {
		snprintf(c->msg, sizeof(c->msg), "scan pair %u: value (len %zu) differs from the "
			 "oracle's (len %u)", c->calls - 1, vl, e->vl);
		return SCAN_BAD;
	}
	if (c->stop_at && c->calls == c->stop_at)
		return SCAN_STOP;
	return 0;
}

static void scan_result(const scan_ctx *c, int rc, const char *what)
{
	REQ(!c->msg[0], "%s%s: %s (range [%zu, %zu) of %zu)", what, c->rev ? " (reverse)" : "",
	    c->msg, c->lo, c->hi, c->o->n);
	size_t total = c->hi - c->lo;
	if (c->stop_at && c->stop_at <= total) {
		REQ(rc == SCAN_STOP, "%s: scan stopped at %u returned %s", what, c->stop_at,
		    pbox_status_name(rc));
		REQ_EQ(c->calls, c->stop_at);
	} else {
		REQ(rc == 0, "%s: scan returned %s", what, pbox_status_name(rc));
		REQ(c->calls == total, "%s%s: scan reported %u pairs, oracle has %zu (range [%zu, "
			"%zu) of %zu)", what, c->rev ? " (reverse)" : "", c->calls, total, c->lo,
		    c->hi, c->o->n);
	}
}

/* Scan [start, end) (NULL = open) with an optional stop and compare with the oracle.
 * mode 0: pbox_bt_scan; 1: pbox_bt_scan_ex forward; 2: pbox_bt_scan_ex reverse. */
static void check_scan_mode(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl,
			    const uint8_t *en, size_t el, unsigned stop_at, unsigned mode,
			    const char *what)
{
	size_t lo = s ? orc_lb(o, s, sl, NULL) : 0;
	size_t hi = en ? orc_lb(o, en, el, NULL) : o->n;
	if (hi < lo)
		hi = lo;
	scan_ctx c = { .o = o, .lo = lo, .hi = hi, .rev = mode == 2, .stop_at = stop_at };
	int rc = mode == 0 ? pbox_bt_scan(bt, s, sl, en, el, scan_cmp_fn, &c) :
			     pbox_bt_scan_ex(bt, s, sl, en, el, mode == 2 ? PBOX_BT_SCAN_REVERSE : 0,
					     scan_cmp_fn, &c);
	scan_result(&c, rc, what);
}

static void check_scan(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl,
		       const uint8_t *en, size_t el, unsigned stop_at, const char *what)
{
	for (unsigned mode = 0; mode < 3; mode++)
		check_scan_mode(bt, o, s, sl, en, el, stop_at, mode, what);
}

/* Every key starting with prefix, either direction. */
static void check_prefix_scan(pbox_bt *bt, const oracle *o, const uint8_t *p, size_t pl,
			      bool rev, unsigned stop_at, const char *what)
{
	size_t lo = orc_lb(o, p, pl, NULL), hi = lo;
	while (hi < o->n && o->a[hi].kl >= pl && (pl == 0 || memcmp(o->a[hi].k, p, pl) == 0))
		hi++;
	scan_ctx c = { .o = o, .lo = lo, .hi = hi, .rev = rev, .stop_at = stop_at };
	int rc = pbox_bt_scan_prefix(bt, p, pl, rev ? PBOX_BT_SCAN_REVERSE : 0, scan_cmp_fn, &c);
	scan_result(&c, rc, what);
}

typedef struct cb_ctx {
	uint8_t *buf;
	size_t cap, len;
	unsigned calls;
	int ret;
} cb_ctx;

static int lookup_cb_fn(const void *v, size_t vl, void *arg)
{
	cb_ctx *c = arg;
	c->calls++;
	c->len = vl;
	if (vl)
		memcpy(c->buf, v, vl < c->cap ? vl : c->cap);
	return c->ret;
}

static void check_all(pbox_bt *bt, const oracle *o, const char *what)
{
	pbox_bt_verify_info info = bt_verify(bt);
	REQ(info.keys == o->n, "%s: verify counts %llu keys, oracle has %zu", what,
	    (unsigned long long)info.keys, o->n);
	check_scan(bt, o, NULL, 0, NULL, 0, 0, what);
}

typedef struct diff_cfg {
	uint32_t ps;
	uint64_t budget_pages;
	const char *name;
} diff_cfg;

static const diff_cfg diff_cfgs[] = {
	{ 4096, 64, "4K pages, 64-page budget" },
	{ 4096, 16384, "4K pages, large budget" },
	{ 16384, 64, "16K pages, 64-page budget" },
	{ 16384, 4096, "16K pages, large budget" },
};

typedef struct diff_state {
	pbox_bt *bt[2];
	oracle o[2];
	uint8_t *key, *key2, *key3, *val, *buf;
	uint32_t kmax, vcap, ps;
	pbox_store *st;
	uint64_t ops, hits;
} diff_state;

/* The cursor is at oracle entry i: its key and value match; the key is copied to cur. */
static uint32_t cursor_at(pbox_bt_cursor *cu, const oracle *o, size_t i, uint8_t *cur,
			  const char *how)
{
	const void *kp = NULL, *vp = NULL;
	size_t kpl = 0, vpl = 0;
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kpl), 0);
	CK_RC(pbox_bt_cursor_value(cu, &vp, &vpl), 0);
	const kv *e = &o->a[i];
	REQ(beq(kp, kpl, e->k, e->kl), "cursor after %s: key (len %zu) is not the oracle's key %zu "
	    "(len %u) of %zu", how, kpl, i, e->kl, o->n);
	REQ(beq(vp, vpl, e->v, e->vl), "cursor after %s: value (len %zu) differs from the "
	    "oracle's (len %u)", how, vpl, e->vl);
	if (kpl)
		memcpy(cur, kp, kpl);
	return (uint32_t)kpl;
}

/* A cursor positioned by first / last / seek / seek_prev, then moved back and forth, with
 * changes to other keys (made through the tree) between its steps. */
static void cursor_walk(diff_state *d, pbox_rng *r, unsigned t)
{
	pbox_bt *bt = d->bt[t];
	oracle *o = &d->o[t];
	pbox_bt_cursor *cu = NULL;
	CK_RC(pbox_bt_cursor_open(bt, &cu), 0);
	REQ_T(cu != NULL);
	uint32_t kl = gen_key(r, o, d->key, d->kmax);
	bool ex;
	size_t pos = orc_lb(o, d->key, kl, &ex), want;
	const size_t NONE = (size_t)-1;
	int rc;
	const char *how;
	switch (pbox_rng_below(r, 4)) {
	case 0:
		how = "first";
		rc = pbox_bt_cursor_first(cu);
		want = o->n ? 0 : NONE;
		break;
	case 1:
		how = "last";
		rc = pbox_bt_cursor_last(cu);
		want = o->n ? o->n - 1 : NONE;
		break;
	case 2:
		how = "seek";
		rc = pbox_bt_cursor_seek(cu, d->key, kl);
		want = pos < o->n ? pos : NONE;
		break;
	default:
		how = "seek_prev";
		rc = pbox_bt_cursor_seek_prev(cu, d->key, kl);
		want = ex ? pos : pos > 0 ? pos - 1 : NONE;
		break;
	}
	if (want == NONE) { /* nothing there: unpositioned */
		CK_RC(rc, PBOX_ENOTFOUND);
		const void *kp;
		size_t kpl;
		CK_RC(pbox_bt_cursor_next(cu), PBOX_EINVAL);
		CK_RC(pbox_bt_cursor_prev(cu), PBOX_EINVAL);
		CK_RC(pbox_bt_cursor_key(cu, &kp, &kpl), PBOX_EINVAL);
		pbox_bt_cursor_close(cu);
		return;
	}
	REQ(rc == 0, "cursor %s = %s (oracle: entry %zu of %zu)", how, pbox_status_name(rc), want,
	    o->n);
	uint8_t *cur = d->key2;
	uint32_t curl = cursor_at(cu, o, want, cur, how);
	unsigned steps = 1 + (unsigned)pbox_rng_below(r, 40);
	for (unsigned i = 0; i < steps; i++) {
		if (pbox_rng_below(r, 4) == 0) { /* change another key while the cursor is open */
			uint32_t ol = gen_key(r, o, d->key3, d->kmax);
			size_t op = orc_lb(o, d->key3, ol, &ex);
			if (!beq(d->key3, ol, cur, curl)) {
				if (ex && pbox_rng_below(r, 2)) {
					CK_RC(pbox_bt_remove(bt, d->key3, ol, 0), 0);
					orc_del(o, op);
				} else {
					size_t vm = pbox_bt_value_max(d->st, ol);
					uint32_t vl = gen_val(r, d->val, vm < d->vcap ? (uint32_t)vm : d->vcap,
							      d->ps);
					CK_RC(pbox_bt_upsert(bt, d->key3, ol, d->val, vl, 0), 0);
					orc_set(o, d->key3, ol, d->val, vl);
				}
			}
		}
		bool fwd = pbox_rng_below(r, 2);
		pos = orc_lb(o, cur, curl, &ex);
		REQ_T(ex); /* the cursor's key is never changed here */
		size_t nx = fwd ? (pos + 1 < o->n ? pos + 1 : NONE) : (pos > 0 ? pos - 1 : NONE);
		rc = fwd ? pbox_bt_cursor_next(cu) : pbox_bt_cursor_prev(cu);
		how = fwd ? "next" : "prev";
		if (nx == NONE) { /* at the end: stays where it was */
			CK_RC(rc, PBOX_ENOTFOUND);
			(void)cursor_at(cu, o, pos, cur, how);
		} else {
			REQ(rc == 0, "cursor %s = %s (oracle: entry %zu of %zu)", how,
			    pbox_status_name(rc), nx, o->n);
			curl = cursor_at(cu, o, nx, cur, how);
		}
	}
	pbox_bt_cursor_close(cu);
}

/* One random operation on tree t. w_* are weights (per 100) shifting the mix per phase. */
static void diff_op(diff_state *d, pbox_rng *r, unsigned t, unsigned w_ins, unsigned w_del)
{
	pbox_bt *bt = d->bt[t];
	oracle *o = &d->o[t];
	uint32_t kl = gen_key(r, o, d->key, d->kmax);
	bool ex;
	size_t pos = orc_lb(o, d->key, kl, &ex);
	d->hits += ex;
	unsigned flags = pbox_rng_below(r, 16) == 0 ? PBOX_BT_DURABLE : 0;
	size_t vmax = pbox_bt_value_max(d->st, kl);
	uint32_t vcap = vmax < d->vcap ? (uint32_t)vmax : d->vcap;
	/* scans and cursor walks 1/64 of the time each (they read long ranges); the rest by
	 * the weights */
	unsigned sel = (unsigned)pbox_rng_below(r, 64);
	if (sel == 1) {
		d->ops++;
		cursor_walk(d, r, t);
		return;
	}
	unsigned c = sel == 0 ? ~0u : (unsigned)pbox_rng_below(r, w_ins + w_del + 45);
	d->ops++;
	if (c < w_ins) { /* insert */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_insert(bt, d->key, kl, d->val, vl, flags), ex ? PBOX_EEXIST : 0);
		if (!ex)
			orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del) { /* remove */
		CK_RC(pbox_bt_remove(bt, d->key, kl, flags), ex ? 0 : PBOX_ENOTFOUND);
		if (ex)
			orc_del(o, pos);
	} else if (c < w_ins + w_del + 15) { /* upsert */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_upsert(bt, d->key, kl, d->val, vl, flags), 0);
		orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del + 25) { /* update */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_update(bt, d->key, kl, d->val, vl, flags), ex ? 0 : PBOX_ENOTFOUND);
		if (ex)
			orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del + 40) { /* lookup, copy form */
		size_t vl = 0xdeadbeef, cap;
		size_t want = ex ? o->a[pos].vl : 0;
		switch (pbox_rng_below(r, 4)) {
		case 0:
			cap = want;
			break;
		case 1:
			cap = want ? pbox_rng_below(r, want) : 0; /* too small when want > 0 */
			break;
		case 2:
			cap = want + pbox_rng_below(r, 8);
			break;
		default:
			cap = d->vcap;
			break;
		}
		int rc = pbox_bt_lookup(bt, d->key, kl, d->buf, cap, &vl);
		if (!ex) {
			CK_RC(rc, PBOX_ENOTFOUND);
			REQ(vl == 0xdeadbeef, "lookup of a missing key wrote *vlen");
		} else if (cap < want) {
			CK_RC(rc, PBOX_ETOOSMALL);
			REQ(vl == want, "ETOOSMALL: *vlen = %zu, want %zu (cap %zu)", vl, want, cap);
		} else {
			CK_RC(rc, 0);
			REQ(beq(d->buf, vl, o->a[pos].v, want), "lookup: value differs (len %zu, "
				"want %zu)", vl, want);
		}
	} else if (c < w_ins + w_del + 45) { /* lookup, callback form */
		cb_ctx cc = { .buf = d->buf, .cap = d->vcap, .ret = pbox_rng_below(r, 4) ? 0 : 7 };
		int rc = pbox_bt_lookup_cb(bt, d->key, kl, lookup_cb_fn, &cc);
		if (!ex) {
			CK_RC(rc, PBOX_ENOTFOUND);
			REQ(cc.calls == 0, "lookup_cb called fn for a missing key");
		} else {
			CK_RC(rc, cc.ret);
			REQ_T(cc.calls >= 1);
			REQ(beq(d->buf, cc.len, o->a[pos].v, o->a[pos].vl),
			    "lookup_cb: value differs (len %zu, want %u)", cc.len, o->a[pos].vl);
		}
	} else { /* scan */
		uint32_t kl2 = gen_key(r, o, d->key2, d->kmax);
		const uint8_t *s = d->key, *en = d->key2;
		size_t sl = kl, el = kl2;
		unsigned b = (unsigned)pbox_rng_below(r, 8);
		if (b == 0)
			s = NULL, sl = 0;
		else if (b == 1)
			en = NULL, el = 0;
		else if (b == 2)
			s = en = NULL, sl = el = 0;
		else if (b < 6 && kcmp(s, sl, en, el) > 0) { /* usually an ordered range */
			const uint8_t *tp = s;
			size_t tl = sl;
			s = en, sl = el, en = tp, el = tl;
		}
		unsigned stop = pbox_rng_below(r, 3) == 0 ? 1 + (unsigned)pbox_rng_below(r, 30) : 0;
		if (pbox_rng_below(r, 4) == 0) /* the prefix: often a prefix of an existing key */
			check_prefix_scan(bt, o, d->key, pbox_rng_below(r, (uint64_t)kl + 1),
					  pbox_rng_below(r, 2), stop, "prefix scan");
		else
			check_scan_mode(bt, o, s, sl, en, el, stop, (unsigned)pbox_rng_below(r, 3),
					"random scan");
	}
}

static void diff_open_trees(diff_state *d)
{
	d->bt[0] = bt_open(d->st, "alpha");
	d->bt[1] = bt_open(d->st, "beta");
}

static void diff_close_trees(diff_state *d)
{
	pbox_bt_close(d->bt[0]);
	pbox_bt_close(d->bt[1]);
	d->bt[0] = d->bt[1] = NULL;
}

START_TEST(test_oracle)
{
	const diff_cfg *cfg = &diff_cfgs[_i];
	uint64_t seed = pbox_test_seed() ^ (0xd1ffull * (unsigned)(_i + 1));
	fprintf(stderr, "oracle (%s): seed %llu\n", cfg->name, (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, cfg->ps, cfg->budget_pages);
	diff_state d;
	memset(&d, 0, sizeof(d));
	d.st = e.st;
	d.kmax = (uint32_t)pbox_bt_key_max(e.st);
	REQ_T(d.kmax >= 1 && d.kmax <= KBUF);
	size_t vm = pbox_bt_value_max(e.st, 0);
	d.ps = cfg->ps;
	d.vcap = vm < 4u * cfg->ps ? (uint32_t)vm : 4u * cfg->ps; /* beyond: the limits test */
	d.key = xmalloc(KBUF);
	d.key2 = xmalloc(KBUF);
	d.key3 = xmalloc(KBUF);
	d.val = xmalloc(d.vcap);
	d.buf = xmalloc(d.vcap + 8);
	pbox_bt_close(bt_create(e.st, "alpha"));
	pbox_bt_close(bt_create(e.st, "beta"));
	diff_open_trees(&d);

	/* phases: grow, mixed, reopen, shrink, grow, mixed */
	static const unsigned w_ins[] = { 45, 25, 25, 10, 45, 25 };
	static const unsigned w_del[] = { 5, 20, 20, 45, 5, 20 };
	unsigned per_phase = 5000 * pbox_test_scale();
	uint64_t max_leaves = 0, max_depth = 0;
	for (unsigned ph = 0; ph < 6; ph++) {
		for (unsigned i = 0; i < per_phase; i++)
			diff_op(&d, &r, (unsigned)pbox_rng_below(&r, 2), w_ins[ph], w_del[ph]);
		for (unsigned t = 0; t < 2; t++) {
			char what[64];
			snprintf(what, sizeof(what), "phase %u tree %u", ph, t);
			check_all(d.bt[t], &d.o[t], what);
			pbox_bt_verify_info info = bt_verify(d.bt[t]);
			max_leaves = info.leaves > max_leaves ? info.leaves : max_leaves;
			max_depth = info.depth > max_depth ? info.depth : max_depth;
		}
		CK_RC(pbox_store_checkpoint(e.st), 0); /* recycles the log */
		if (ph == 2) { /* reopen the store in the middle and continue */
			diff_close_trees(&d);
			env_reopen(&e);
			d.st = e.st;
			diff_open_trees(&d);
			for (unsigned t = 0; t < 2; t++)
				check_all(d.bt[t], &d.o[t], "after reopen");
		}
	}
	/* drain one tree completely, in random order */
	oracle *o = &d.o[0];
	while (o->n) {
		size_t pos = pbox_rng_below(&r, o->n);
		CK_RC(pbox_bt_remove(d.bt[0], o->a[pos].k, o->a[pos].kl, 0), 0);
		orc_del(o, pos);
	}
	check_all(d.bt[0], o, "drained");
	check_all(d.bt[1], &d.o[1], "other tree after drain");
	/* and it still works */
	for (unsigned i = 0; i < 200; i++)
		diff_op(&d, &r, 0, 60, 10);
	check_all(d.bt[0], o, "refilled");
	fprintf(stderr, "oracle (%s): %llu ops (%llu on present keys), up to %llu leaves, depth "
			"%llu\n", cfg->name, (unsigned long long)d.ops, (unsigned long long)d.hits,
		(unsigned long long)max_leaves, (unsigned long long)max_depth);
	REQ_GE(max_leaves, 8); /* the test made the trees split */
	diff_close_trees(&d);
	env_fini(&e);
	orc_free(&d.o[0]);
	orc_free(&d.o[1]);
	free(d.key);
	free(d.key2);
	free(d.key3);
	free(d.val);
	free(d.buf);
}
END_TEST

/* Edge cases of scan bounds around the empty key and keys that prefix each other. */
START_TEST(test_scan_bounds)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "bounds");
	oracle o;
	memset(&o, 0, sizeof(o));
	static const char *keys[] = { "", "\x00", "\x00\x00", "a", "a\x00", "a\x01", "ab",
				      "abc", "b", "\xff", "\xff\xff", "\xff\xff\xff" };
	static const size_t lens[] = { 0, 1, 2, 1, 2, 2, 2, 3, 1, 1, 2, 3 };
	for (unsigned i = 0; i < 12; i++) {
		char v[4] = { 'v', (char)i, 0, 0 };
		CK_RC(pbox_bt_insert(bt, keys[i], lens[i], v, 2 + i % 3, 0), 0);
		orc_set(&o, keys[i], lens[i], v, 2 + i % 3);
	}
	CK_RC(pbox_bt_insert(bt, "", 0, "x", 1, 0), PBOX_EEXIST);
	check_all(bt, &o, "bounds");
	/* every pair of bounds (including the empty key, which differs from NULL) */
	for (int i = -1; i < 12; i++)
		for (int j = -1; j < 12; j++)
			for (unsigned stop = 0; stop < 3; stop++)
				check_scan(bt, &o, i < 0 ? NULL : (const uint8_t *)keys[i],
					   i < 0 ? 0 : lens[i], j < 0 ? NULL : (const uint8_t *)keys[j],
					   j < 0 ? 0 : lens[j], stop, "bounds");
	/* prefixes around 0x00 / 0xff and the empty key, both directions */
	static const char *pfx[] = { "", "\x00", "\x00\x00\x00", "a", "ab", "abcd", "b", "c",
				     "\xff", "\xff\xff", "\xff\xff\xff\xff" };
	static const size_t plens[] = { 0, 1, 3, 1, 2, 4, 1, 1, 1, 2, 4 };
	for (unsigned i = 0; i < 11; i++)
		for (unsigned stop = 0; stop < 3; stop++)
			for (unsigned rev = 0; rev < 2; rev++)
				check_prefix_scan(bt, &o, (const uint8_t *)pfx[i], plens[i], rev, stop,
						  "prefix bounds");
	/* the empty key as an end bound excludes everything */
	uint64_t n = 0;
	CK_RC(pbox_bt_scan(bt, NULL, 0, "", 0, count_fn, &n), 0);
	REQ_EQ(n, 0);
	CK_RC(pbox_bt_scan(bt, "", 0, NULL, 0, count_fn, &n), 0);
	REQ_EQ(n, 12);
	/* removing the empty key leaves its extensions */
	CK_RC(pbox_bt_remove(bt, "", 0, 0), 0);
	CK_RC(pbox_bt_remove(bt, "", 0, 0), PBOX_ENOTFOUND);
	bool ex;
	orc_del(&o, orc_lb(&o, "", 0, &ex));
	REQ_T(ex);
	check_all(bt, &o, "bounds after remove");
	char buf[8];
	size_t vl = 99;
	CK_RC(pbox_bt_lookup(bt, "", 0, buf, sizeof(buf), &vl), PBOX_ENOTFOUND);
	REQ_EQ(vl, 99);
	CK_RC(pbox_bt_lookup(bt, "\x00", 1, buf, sizeof(buf), &vl), 0);
	REQ_EQ(vl, 3);
	pbox_bt_close(bt);
	orc_free(&o);
	env_fini(&e);
}
END_TEST

/* A cursor whose key is removed under it: a long value read afterwards says
 * PBOX_ENOTFOUND and the cursor stays on the removed key, so next and prev still step to
 * its neighbours (a reverse scan once took that answer for its end). A move that finds
 * nothing leaves the cursor on its key, even when that key is gone. */
START_TEST(test_cursor_removed_key)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "cur");
	static uint8_t big[3 * 4096];
	memset(big, 'v', sizeof(big));
	char k[8];
	for (unsigned i = 0; i < 600; i++) { /* several leaves; every 10th value is long */
		snprintf(k, sizeof(k), "k%04u", i);
		CK_RC(pbox_bt_insert(bt, k, 5, big, i % 10 ? 20 : sizeof(big), 0), 0);
	}
	pbox_bt_cursor *cu = NULL;
	CK_RC(pbox_bt_cursor_open(bt, &cu), 0);
	const void *kp, *vp;
	size_t kl, vl;
	for (unsigned dir = 0; dir < 2; dir++) {
		unsigned at = dir ? 300 : 200; /* a long value each */
		snprintf(k, sizeof(k), "k%04u", at);
		CK_RC(pbox_bt_cursor_seek(cu, k, 5), 0);
		CK_RC(pbox_bt_remove(bt, k, 5, 0), 0);
		CK_RC(pbox_bt_cursor_value(cu, &vp, &vl), PBOX_ENOTFOUND);
		CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
		REQ_T(beq(kp, kl, k, 5)); /* still on the removed key */
		CK_RC(pbox_bt_cursor_value(cu, &vp, &vl), PBOX_ENOTFOUND);
		CK_RC(dir ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu), 0);
		snprintf(k, sizeof(k), "k%04u", dir ? at - 1 : at + 1);
		CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
		REQ_T(beq(kp, kl, k, 5));
		CK_RC(pbox_bt_cursor_value(cu, &vp, &vl), 0);
		REQ_EQ(vl, 20);
	}
	/* at the last key, removed: next finds nothing and the cursor stays; prev still works */
	CK_RC(pbox_bt_cursor_last(cu), 0);
	CK_RC(pbox_bt_remove(bt, "k0599", 5, 0), 0);
	CK_RC(pbox_bt_cursor_next(cu), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
	REQ_T(beq(kp, kl, "k0599", 5));
	CK_RC(pbox_bt_cursor_value(cu, &vp, &vl), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_cursor_prev(cu), 0);
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
	REQ_T(beq(kp, kl, "k0598", 5));
	/* at the first key, unchanged: prev finds nothing, the cursor and its value stay */
	CK_RC(pbox_bt_cursor_first(cu), 0);
	CK_RC(pbox_bt_cursor_prev(cu), PBOX_ENOTFOUND);
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
	REQ_T(beq(kp, kl, "k0000", 5));
	CK_RC(pbox_bt_cursor_value(cu, &vp, &vl), 0);
	REQ_EQ(vl, sizeof(big));
	CK_RC(pbox_bt_cursor_next(cu), 0);
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kl), 0);
	REQ_T(beq(kp, kl, "k0001", 5));
	pbox_bt_cursor_close(cu);
	/* a reverse scan over the whole tree sees every remaining key once */
	uint64_t n = 0;
	CK_RC(pbox_bt_scan_ex(bt, NULL, 0, NULL, 0, PBOX_BT_SCAN_REVERSE, count_fn, &n), 0);
	REQ_EQ(n, 597);
	REQ_EQ(bt_verify(bt).keys, 597);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* Forward scans read ahead out of memory: with a budget far below the tree, a full scan and
 * a bounded one return exactly the keys (the read-ahead never changes what is seen) and,
 * with metrics built in, most leaves arrive through prefetches; a bounded scan asks for
 * nothing past its end. */
typedef struct ra_ctx {
	uint32_t next, n;
	bool bad;
} ra_ctx;

static int ra_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	ra_ctx *c = arg;
	char want[8];
	snprintf(want, sizeof(want), "r%05u", c->next);
	if (!beq(k, kl, want, 6) || vl != 200 || ((const uint8_t *)v)[0] != (uint8_t)c->next)
		c->bad = true;
	c->next++;
	c->n++;
	return 0;
}

START_TEST(test_scan_readahead)
{
	env e;
	env_init(&e, 4096, 4096);
	pbox_bt *bt = bt_create(e.st, "ra");
	uint8_t v[200];
	char k[8];
	const uint32_t N = 20000; /* ~1100 leaves of 18 entries */
	for (uint32_t i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "r%05u", i);
		memset(v, (uint8_t)i, sizeof(v));
		CK_RC(pbox_bt_insert(bt, k, 6, v, sizeof(v), 0), 0);
	}
	CK_RC(pbox_store_checkpoint(e.st), 0);
	CK_RC(pbox_store_set_budget(e.st, 64 * 4096), 0); /* evicts down to 64 pages */
	pbox_store_stats s0, s1;
	pbox_store_get_stats(e.st, &s0);
	ra_ctx c = { 0 };
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, ra_fn, &c), 0);
	pbox_store_get_stats(e.st, &s1);
	REQ(!c.bad && c.n == N, "full scan: %u keys, in order and whole: %d", c.n, !c.bad);
#if PBOX_METRICS
	uint64_t pf = s1.prefetches - s0.prefetches, rd = s1.reads - s0.reads;
	fprintf(stderr, "scan read-ahead: %u keys, %llu page reads, %llu of them prefetched\n", N,
		(unsigned long long)rd, (unsigned long long)pf);
	REQ(pf * 10 >= rd * 8, "only %llu of %llu reads were prefetches", (unsigned long long)pf,
	    (unsigned long long)rd);
#endif
	/* a bounded scan: exactly its keys, and no more than a leaf or two past its end read */
	CK_RC(pbox_store_set_budget(e.st, 4096 * 4096), 0);
	CK_RC(pbox_store_set_budget(e.st, 64 * 4096), 0);
	pbox_store_get_stats(e.st, &s0);
	c = (ra_ctx){ .next = 5000 };
	CK_RC(pbox_bt_scan(bt, "r05000", 6, "r05400", 6, ra_fn, &c), 0);
	pbox_store_get_stats(e.st, &s1);
	REQ(!c.bad && c.n == 400, "bounded scan: %u keys", c.n);
#if PBOX_METRICS
	/* 400 keys span 23 leaves, and the descent reads up to 3 inner nodes (measured: 25
	 * reads; 32 when the read-ahead ignores the end) */
	REQ_LE(s1.reads - s0.reads, 23 + 3);
#endif
	REQ_EQ(bt_verify(bt).keys, N);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- 3. ascending fill ------------------------------------------------------------------ */

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
		memcpy(&t, (unsigned char *)page + 4, 2);
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

/* ---- 4. limits and bad arguments -------------------------------------------------------- */

static int never_cb(const void *v, size_t vl, void *arg)
{
	(void)v;
	(void)vl;
	(*(unsigned *)arg)++;
	return 0;
}

static void limits_case(uint32_t ps)
{
	env e;
	env_init(&e, ps, 1024);
	pbox_bt *bt = bt_create(e.st, "limits");
	size_t kmax = pbox_bt_key_max(e.st);
	REQ(kmax == KEY_MAX_PS(ps), "key_max %zu at %u-byte pages, node.h documents %u", kmax, ps,
	    KEY_MAX_PS(ps));
	/* inline values always fit: the entry limit minus the key */
	size_t vm0 = pbox_bt_value_max(e.st, 0), vmk = pbox_bt_value_max(e.st, kmax);
	REQ_GE(vm0, ENTRY_MAX_PS(ps));
	REQ_GE(vmk, ENTRY_MAX_PS(ps) - kmax);
	REQ_GE(vm0, vmk);
	/* values up to 17 MiB are tested at the limit; a larger limit at 17 MiB (the required
	 * minimum is 16 MiB) */
	size_t big = vm0 < (17u << 20) ? vm0 + 1 : (17u << 20);
	uint8_t *val = xmalloc(big), *buf = xmalloc(big);
	uint8_t *key = xmalloc(kmax + 1);
	for (size_t i = 0; i < big; i++)
		val[i] = (uint8_t)mix64(i);
	for (size_t i = 0; i <= kmax; i++)
		key[i] = (uint8_t)(0xff - i % 3);
	size_t vl;

	/* a key of key_max bytes with a value of value_max(key_max) bytes (at most the 17 MiB
	 * tested here): works */
	size_t vt = vmk < big ? vmk : big;
	CK_RC(pbox_bt_insert(bt, key, kmax, val, vt, 0), 0);
	vl = 0;
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, vt, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	/* one byte more of either: EINVAL, nothing changes */
	if (vmk < big) {
		CK_RC(pbox_bt_upsert(bt, key, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_update(bt, key, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		/* another key of the same length (key + 1 differs from key in its first byte) */
		CK_RC(pbox_bt_insert(bt, key + 1, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_upsert(bt, key + 1, kmax, val, vmk + 1, 0), PBOX_EINVAL);
	}
	CK_RC(pbox_bt_insert(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_remove(bt, key, kmax + 1, 0), PBOX_EINVAL);
	vl = 12345;
	CK_RC(pbox_bt_lookup(bt, key, kmax + 1, buf, big, &vl), PBOX_EINVAL);
	REQ_EQ(vl, 12345);
	unsigned calls = 0;
	CK_RC(pbox_bt_lookup_cb(bt, key, kmax + 1, never_cb, &calls), PBOX_EINVAL);
	REQ_EQ(calls, 0);

	/* the empty key with the largest value */
	if (vm0 + 1 <= big) {
		CK_RC(pbox_bt_insert(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_upsert(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
	}
	size_t vtest = vm0 < big ? vm0 : big;
	CK_RC(pbox_bt_upsert(bt, key, 0, val, vtest, 0), 0);
	CK_RC(pbox_bt_update(bt, key, 0, val, vtest, 0), 0);
	if (vm0 + 1 <= big)
		CK_RC(pbox_bt_update(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
	vl = 0;
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, vtest, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	vl = 0;
	if (vtest > 0) {
		CK_RC(pbox_bt_lookup(bt, key, 0, buf, vtest - 1, &vl), PBOX_ETOOSMALL);
		REQ_EQ(vl, vtest);
	}

	/* NULL key or value with a length */
	CK_RC(pbox_bt_insert(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_remove(bt, NULL, 3, 0), PBOX_EINVAL);
	vl = 777;
	CK_RC(pbox_bt_lookup(bt, NULL, 3, buf, big, &vl), PBOX_EINVAL);
	REQ_EQ(vl, 777);
	CK_RC(pbox_bt_lookup_cb(bt, NULL, 3, never_cb, &calls), PBOX_EINVAL);
	REQ_EQ(calls, 0);
	CK_RC(pbox_bt_insert(bt, "nv", 2, NULL, 5, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, "nv", 2, NULL, 5, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, key, 0, NULL, 5, 0), PBOX_EINVAL);

	/* none of that changed anything: exactly the two keys, with their values */
	pbox_bt_verify_info info = bt_verify(bt);
	REQ_EQ(info.keys, 2);
	REQ_EQ(bt_count(bt), 2);
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	/* and they survive a reopen */
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "limits");
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	CK_RC(pbox_bt_remove(bt, key, 0, 0), 0);
	CK_RC(pbox_bt_remove(bt, key, kmax, 0), 0);
	REQ_EQ(bt_verify(bt).keys, 0);
	pbox_bt_close(bt);
	env_fini(&e);
	free(val);
	free(buf);
	free(key);
}

START_TEST(test_limits)
{
	static const uint32_t sizes[] = { 4096, 16384, 65536 };
	limits_case(sizes[_i]);
}
END_TEST

/* Many maximal keys with maximal values (deep trees with the fewest entries per node). */
START_TEST(test_max_entries)
{
	uint64_t seed = pbox_test_seed() ^ 0x3a3a;
	fprintf(stderr, "max entries: seed %llu\n", (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, 4096, 64);
	pbox_bt *bt = bt_create(e.st, "max");
	oracle o;
	memset(&o, 0, sizeof(o));
	uint32_t kmax = (uint32_t)pbox_bt_key_max(e.st);
	uint8_t key[KBUF], val[4096];
	for (unsigned i = 0; i < 600 * pbox_test_scale(); i++) {
		/* long keys that differ late: separators cannot be truncated much */
		memset(key, 0xab, kmax);
		uint32_t kl = kmax - (uint32_t)pbox_rng_below(&r, 3);
		put32(key + kl - 4, (uint32_t)pbox_rng_below(&r, 100000));
		size_t vm = pbox_bt_value_max(e.st, kl);
		uint32_t vl = (uint32_t)(vm < ENTRY_MAX_PS(4096) - kl ? vm : ENTRY_MAX_PS(4096) - kl);
		memset(val, (int)i, vl);
		CK_RC(pbox_bt_upsert(bt, key, kl, val, vl, 0), 0);
		orc_set(&o, key, kl, val, vl);
		if (pbox_rng_below(&r, 4) == 0) {
			size_t pos = pbox_rng_below(&r, o.n);
			CK_RC(pbox_bt_remove(bt, o.a[pos].k, o.a[pos].kl, 0), 0);
			orc_del(&o, pos);
		}
	}
	check_all(bt, &o, "max entries");
	fprintf(stderr, "max entries: %zu keys, depth %llu\n", o.n,
		(unsigned long long)bt_verify(bt).depth);
	pbox_bt_close(bt);
	orc_free(&o);
	env_fini(&e);
}
END_TEST

/* ---- self-validating values (concurrency and power cuts) ------------------------------ */

/* value: n (4, big-endian), version (4), length (4), filler, FNV-64 of all before it (8) */
#define VHDR 20u

static uint32_t sv_len(uint32_t n, uint32_t ver, uint32_t span)
{
	return VHDR + (uint32_t)(mix64((uint64_t)n << 32 | ver) % span);
}

static void sv_make(uint8_t *b, uint32_t n, uint32_t ver, uint32_t len)
{
	put32(b, n);
	put32(b + 4, ver);
	put32(b + 8, len);
	uint64_t x = mix64((uint64_t)ver << 32 | n);
	for (uint32_t i = 12; i < len - 8; i++)
		b[i] = (uint8_t)((x >> (8 * (i % 8))) ^ i);
	uint64_t h = fnv64(b, len - 8);
	memcpy(b + len - 8, &h, 8);
}

/* Whether b is a whole value written for n; *ver = its version. */
static bool sv_check(const uint8_t *b, size_t len, uint32_t n, uint32_t *ver)
{
	if (len < VHDR || len > 1u << 20 || get32(b) != n || get32(b + 8) != len)
		return false;
	uint64_t h = fnv64(b, len - 8), s;
	memcpy(&s, b + len - 8, 8);
	if (h != s)
		return false;
	/* and exactly the bytes sv_make writes for this n and version */
	uint32_t v = get32(b + 4);
	uint64_t x = mix64((uint64_t)v << 32 | n);
	for (uint32_t i = 12; i < len - 8; i++)
		if (b[i] != (uint8_t)((x >> (8 * (i % 8))) ^ i))
			return false;
	*ver = v;
	return true;
}

/* key of number n: n big-endian, then 0..12 filler bytes depending on n */
static uint32_t nkey(uint8_t *k, uint32_t n)
{
	put32(k, n);
	uint32_t f = (n * 7u) % 13u;
	for (uint32_t i = 0; i < f; i++)
		k[4 + i] = (uint8_t)(n * 31u + i * 17u);
	return 4 + f;
}

static bool nkey_check(const uint8_t *k, size_t kl, uint32_t *n)
{
	if (kl < 4)
		return false;
	uint8_t want[32];
	*n = get32(k);
	return beq(k, kl, want, nkey(want, *n));
}

/* ---- 5. concurrency ------------------------------------------------------------------- */

#define CC_SPAN 240u   /* value lengths VHDR .. VHDR + CC_SPAN - 1, */
#define CC_BIG 12000u  /* or 1 in 16 up to VHDR + CC_BIG - 1 (overflow pages) */
#define CC_VMAX (VHDR + CC_BIG)

static uint32_t cc_vlen(uint32_t n, uint32_t ver)
{
	uint64_t x = mix64((uint64_t)(ver ^ 0xb16b00b5u) << 32 | n);
	if (x % 16 == 0)
		return VHDR + (uint32_t)((x >> 8) % CC_BIG);
	return sv_len(n, ver, CC_SPAN);
}

typedef struct cc_shared {
	pbox_bt *bt;
	unsigned nw, nkeys; /* keys per writer; key number n = i * nw + w */
	_Atomic uint8_t *stable_in; /* [n]: a never-removed key, inserted */
	atomic_uint writers_done;
	atomic_int failed;
	char msg[512];
	pthread_mutex_t mu;
} cc_shared;

typedef struct cc_writer {
	cc_shared *sh;
	unsigned w, nops;
	uint64_t seed;
	uint32_t *ver; /* [i]: current version, 0 = absent */
	uint64_t ops;
} cc_writer;

typedef struct cc_reader {
	cc_shared *sh;
	uint64_t seed;
	unsigned id;
	uint32_t *last_ver; /* [n]: newest version this reader saw */
	uint64_t lookups, found, scans, scanned, verifies;
} cc_reader;

static void cc_fail(cc_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cc_fail(cc_shared *sh, const char *fmt, ...)
{
	pthread_mutex_lock(&sh->mu);
	if (!atomic_load(&sh->failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(sh->msg, sizeof(sh->msg), fmt, ap);
		va_end(ap);
		atomic_store(&sh->failed, 1);
	}
	pthread_mutex_unlock(&sh->mu);
}

static bool cc_stable(uint32_t i)
{
	return i % 4 == 0;
}

static void *cc_writer_main(void *arg)
{
	cc_writer *wr = arg;
	cc_shared *sh = wr->sh;
	pbox_rng r;
	pbox_rng_seed(&r, wr->seed);
	uint8_t key[32], val[CC_VMAX], buf[CC_VMAX];
	uint32_t version = 0;
	for (unsigned op = 0; op < wr->nops && !atomic_load(&sh->failed); op++) {
		uint32_t i = (uint32_t)pbox_rng_below(&r, sh->nkeys);
		uint32_t n = i * sh->nw + wr->w;
		uint32_t kl = nkey(key, n);
		uint32_t cur = wr->ver[i];
		uint32_t nv = ++version * 8 + wr->w; /* increasing per key; never 0 */
		uint32_t vl = cc_vlen(n, nv);
		sv_make(val, n, nv, vl);
		unsigned c = (unsigned)pbox_rng_below(&r, 100);
		int rc, want;
		const char *what;
		wr->ops++;
		if (cc_stable(i)) { /* inserted once, then only updated */
			if (!cur) {
				what = "insert", want = 0;
				rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
			} else if (c < 50) {
				what = "update", want = 0;
				rc = pbox_bt_update(sh->bt, key, kl, val, vl, 0);
			} else if (c < 80) {
				what = "upsert", want = 0;
				rc = pbox_bt_upsert(sh->bt, key, kl, val, vl, 0);
			} else {
				what = "insert", want = PBOX_EEXIST;
				rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
			}
		} else if (c < 25) {
			what = "insert", want = cur ? PBOX_EEXIST : 0;
			rc = pbox_bt_insert(sh->bt, key, kl, val, vl, 0);
		} else if (c < 45) {
			what = "remove", want = cur ? 0 : PBOX_ENOTFOUND;
			rc = pbox_bt_remove(sh->bt, key, kl, 0);
		} else if (c < 65) {
			what = "upsert", want = 0;
			rc = pbox_bt_upsert(sh->bt, key, kl, val, vl, 0);
		} else if (c < 80) {
			what = "update", want = cur ? 0 : PBOX_ENOTFOUND;
			rc = pbox_bt_update(sh->bt, key, kl, val, vl, 0);
		} else { /* read our own writes exactly */
			size_t gl = 0;
			rc = pbox_bt_lookup(sh->bt, key, kl, buf, sizeof(buf), &gl);
			if (rc != (cur ? 0 : PBOX_ENOTFOUND)) {
				cc_fail(sh, "writer %u: lookup of its key %u = %s, want %s", wr->w, n,
					pbox_status_name(rc), cur ? "OK" : "PBOX_ENOTFOUND");
				break;
			}
			uint32_t gv = 0;
			if (cur && (!sv_check(buf, gl, n, &gv) || gv != cur)) {
				cc_fail(sh, "writer %u: its key %u holds version %u, it wrote %u last",
					wr->w, n, gv, cur);
				break;
			}
			continue;
		}
		if (rc != want) {
			cc_fail(sh, "writer %u: %s of its key %u (present: %d) = %s, want %s", wr->w,
				what, n, cur != 0, pbox_status_name(rc), pbox_status_name(want));
			break;
		}
		if (rc == 0)
			wr->ver[i] = strcmp(what, "remove") == 0 ? 0 : nv;
		if (cc_stable(i) && !cur && rc == 0)
			atomic_store_explicit(&sh->stable_in[n], 1, memory_order_release);
	}
	atomic_fetch_add(&sh->writers_done, 1);
	return NULL;
}

typedef struct cc_scan_ctx {
	cc_reader *rd;
	uint32_t lo, hi; /* numbers in [lo, hi) */
	bool rev;        /* descending */
	int64_t prev;    /* last number reported; -1 (ascending) or hi (descending) at first */
	unsigned calls, stop_at;
	uint8_t *seen; /* [n - lo] */
	char msg[256];
} cc_scan_ctx;

static int cc_scan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cc_scan_ctx *c = arg;
	uint32_t n, ver;
	c->calls++;
	if (!nkey_check(k, kl, &n)) {
		snprintf(c->msg, sizeof(c->msg), "scan: malformed key (len %zu)", kl);
		return SCAN_BAD;
	}
	if (c->rev ? (int64_t)n >= c->prev : (int64_t)n <= c->prev) {
		snprintf(c->msg, sizeof(c->msg), "%s: key %u after key %lld",
			 c->rev ? "reverse scan" : "scan", n, (long long)c->prev);
		return SCAN_BAD;
	}
	if (n < c->lo || n >= c->hi) {
		snprintf(c->msg, sizeof(c->msg), "scan of [%u, %u): key %u", c->lo, c->hi, n);
		return SCAN_BAD;
	}
	if (!sv_check(v, vl, n, &ver)) {
		snprintf(c->msg, sizeof(c->msg), "scan: key %u has a malformed value (len %zu)", n, vl);
		return SCAN_BAD;
	}
	if (ver < c->rd->last_ver[n]) {
		snprintf(c->msg, sizeof(c->msg), "scan: key %u went back from version %u to %u", n,
			 c->rd->last_ver[n], ver);
		return SCAN_BAD;
	}
	c->rd->last_ver[n] = ver;
	c->prev = n;
	c->seen[n - c->lo] = 1;
	if (c->stop_at && c->calls == c->stop_at)
		return SCAN_STOP;
	return 0;
}

/* A scan of [lo, hi) done with a cursor (seek + next, or seek_prev + prev), checked by
 * cc_scan_fn. Returns like a scan: 0, SCAN_STOP, SCAN_BAD or an error. */
static int cc_cursor_walk(pbox_bt *bt, const uint8_t *skey, const uint8_t *ekey, cc_scan_ctx *sc)
{
	pbox_bt_cursor *cu = NULL;
	int rc = pbox_bt_cursor_open(bt, &cu);
	if (rc)
		return rc;
	rc = sc->rev ? pbox_bt_cursor_seek_prev(cu, ekey, 4) : pbox_bt_cursor_seek(cu, skey, 4);
	while (rc == 0) {
		const void *k, *v;
		size_t kl, vl;
		uint32_t n;
		if ((rc = pbox_bt_cursor_key(cu, &k, &kl)))
			break;
		if ((rc = pbox_bt_cursor_value(cu, &v, &vl)) == PBOX_ENOTFOUND) {
			/* a long value removed since the cursor reached its key: skip the key */
			rc = sc->rev ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu);
			continue;
		}
		if (rc)
			break;
		if (kl >= 4 && get32(k) >= sc->hi && sc->rev) { /* seek_prev may land on hi itself */
			rc = pbox_bt_cursor_prev(cu);
			continue;
		}
		if (kl >= 4 && ((n = get32(k)) >= sc->hi || n < sc->lo))
			break; /* past the range: done */
		if ((rc = cc_scan_fn(k, kl, v, vl, sc)))
			break;
		rc = sc->rev ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu);
	}
	pbox_bt_cursor_close(cu);
	return rc == PBOX_ENOTFOUND ? 0 : rc;
}

static void *cc_reader_main(void *arg)
{
	cc_reader *rd = arg;
	cc_shared *sh = rd->sh;
	pbox_rng r;
	pbox_rng_seed(&r, rd->seed);
	uint32_t total = sh->nw * sh->nkeys;
	uint8_t key[32], skey[32], ekey[32], buf[CC_VMAX];
	uint8_t *seen = xmalloc(total), *snap = xmalloc(total);
	for (uint64_t it = 0; !atomic_load(&sh->failed); it++) {
		if (atomic_load(&sh->writers_done) == sh->nw && it >= 200)
			break;
		unsigned c = (unsigned)pbox_rng_below(&r, 100);
		if (c < 70) { /* point lookups */
			uint32_t n = (uint32_t)pbox_rng_below(&r, total);
			uint32_t kl = nkey(key, n);
			bool must = atomic_load_explicit(&sh->stable_in[n], memory_order_acquire);
			size_t gl = 0;
			int rc;
			rd->lookups++;
			if (c < 50) {
				rc = pbox_bt_lookup(sh->bt, key, kl, buf, sizeof(buf), &gl);
			} else {
				cb_ctx cc = { .buf = buf, .cap = sizeof(buf) };
				rc = pbox_bt_lookup_cb(sh->bt, key, kl, lookup_cb_fn, &cc);
				gl = cc.len;
				if (rc == 0 && cc.calls == 0)
					rc = -99999;
			}
			if (rc == PBOX_ENOTFOUND && !must)
				continue;
			if (rc != 0) {
				cc_fail(sh, "reader %u: lookup (%s) of key %u = %s%s", rd->id,
					c < 50 ? "copy" : "callback", n, pbox_status_name(rc),
					must ? " (a key inserted before and never removed)" : "");
				break;
			}
			rd->found++;
			uint32_t ver;
			if (!sv_check(buf, gl, n, &ver)) {
				cc_fail(sh, "reader %u: key %u has a malformed value (len %zu)", rd->id, n,
					gl);
				break;
			}
			if (ver < rd->last_ver[n]) {
				cc_fail(sh, "reader %u: key %u went back from version %u to %u", rd->id, n,
					rd->last_ver[n], ver);
				break;
			}
			rd->last_ver[n] = ver;
		} else if (c < 99) { /* range scans */
			uint32_t lo, hi;
			unsigned b = (unsigned)pbox_rng_below(&r, 8);
			lo = (uint32_t)pbox_rng_below(&r, total);
			hi = lo + 1 + (uint32_t)pbox_rng_below(&r, 400);
			if (hi > total)
				hi = total;
			if (b == 0)
				lo = 0;
			else if (b == 1)
				hi = total;
			/* bounds: the 4-byte numbers, which sort at or before the full keys */
			put32(skey, lo);
			put32(ekey, hi);
			const uint8_t *sp = b == 0 && pbox_rng_below(&r, 2) ? NULL : skey;
			const uint8_t *ep = b == 1 && pbox_rng_below(&r, 2) ? NULL : ekey;
			for (uint32_t n = lo; n < hi; n++)
				snap[n] = atomic_load_explicit(&sh->stable_in[n], memory_order_acquire);
			memset(seen, 0, hi - lo);
			/* forward or reverse, by a scan or by a cursor */
			unsigned how = (unsigned)pbox_rng_below(&r, 4);
			bool rev = how & 1;
			cc_scan_ctx sc = { .rd = rd, .lo = lo, .hi = hi, .rev = rev,
					   .prev = rev ? (int64_t)hi : -1, .seen = seen,
					   .stop_at = pbox_rng_below(&r, 4) ? 0 :
					   1 + (unsigned)pbox_rng_below(&r, 50) };
			int rc;
			if (how < 2)
				rc = pbox_bt_scan_ex(sh->bt, sp, sp ? 4 : 0, ep, ep ? 4 : 0,
						     rev ? PBOX_BT_SCAN_REVERSE : 0, cc_scan_fn, &sc);
			else
				rc = cc_cursor_walk(sh->bt, skey, ekey, &sc);
			rd->scans++;
			rd->scanned += sc.calls;
			if (sc.msg[0]) {
				cc_fail(sh, "reader %u: %s", rd->id, sc.msg);
				break;
			}
			static const char *const hows[] = { "scan", "reverse scan", "cursor walk",
							    "reverse cursor walk" };
			if (rc != 0 && !(rc == SCAN_STOP && sc.calls == sc.stop_at)) {
				cc_fail(sh, "reader %u: %s [%u, %u) = %s after %u pairs (stop at %u)",
					rd->id, hows[how], lo, hi, pbox_status_name(rc), sc.calls,
					sc.stop_at);
				break;
			}
			/* keys inserted before the scan and never removed were reported (up to the
			 * early stop) */
			uint32_t from = lo, upto = hi;
			if (rc == SCAN_STOP) {
				if (rev)
					from = (uint32_t)sc.prev;
				else
					upto = (uint32_t)sc.prev;
			}
			for (uint32_t n = from; n < upto; n++)
				if (snap[n] && !seen[n - lo]) {
					cc_fail(sh, "reader %u: %s [%u, %u) missed key %u, inserted "
						"before it began and never removed", rd->id, hows[how], lo,
						hi, n);
					break;
				}
		} else if (rd->id == 0 && pbox_rng_below(&r, 4) == 0) {
			/* verify while writers run: the tree is consistent under its latches */
			pbox_bt_verify_info info;
			int rc = pbox_bt_verify(sh->bt, &info);
			rd->verifies++;
			if (rc) {
				cc_fail(sh, "reader %u: verify during writes = %s", rd->id,
					pbox_status_name(rc));
				break;
			}
		}
	}
	free(seen);
	free(snap);
	return NULL;
}

typedef struct cc_cfg {
	unsigned nw, nr;
	uint64_t budget_pages;
	unsigned nkeys, nops;
} cc_cfg;

static const cc_cfg cc_cfgs[] = {
	{ 1, 1, 64, 2000, 20000 },
	{ 2, 2, 16384, 1200, 12000 },
	{ 4, 4, 64, 800, 6000 },
	{ 3, 1, 128, 1000, 8000 },
};

typedef struct cc_final_ctx {
	cc_writer *ws;
	unsigned nw;
	uint64_t n;
	char msg[256];
} cc_final_ctx;

static int cc_final_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cc_final_ctx *c = arg;
	uint32_t n, ver;
	if (!nkey_check(k, kl, &n)) {
		snprintf(c->msg, sizeof(c->msg), "malformed key");
		return SCAN_BAD;
	}
	uint32_t w = n % c->nw, i = n / c->nw;
	if (!sv_check(v, vl, n, &ver) || c->ws[w].ver[i] != ver) {
		snprintf(c->msg, sizeof(c->msg), "key %u: version %u, writer %u wrote %u last", n,
			 sv_check(v, vl, n, &ver) ? ver : 0, w, c->ws[w].ver[i]);
		return SCAN_BAD;
	}
	c->n++;
	return 0;
}

START_TEST(test_concurrent)
{
	const cc_cfg *cfg = &cc_cfgs[_i];
	uint64_t seed = pbox_test_seed() ^ (0xcc00ull + (unsigned)_i);
	fprintf(stderr, "concurrent (%u writers, %u readers, %llu-page budget): seed %llu\n",
		cfg->nw, cfg->nr, (unsigned long long)cfg->budget_pages, (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, 4096, cfg->budget_pages);
	static cc_shared sh;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	sh.bt = bt_create(e.st, "cc");
	sh.nw = cfg->nw;
	sh.nkeys = cfg->nkeys;
	uint32_t total = cfg->nw * cfg->nkeys;
	sh.stable_in = xmalloc(total);
	for (uint32_t n = 0; n < total; n++)
		atomic_init(&sh.stable_in[n], 0);
	cc_writer ws[8];
	cc_reader rs[8];
	pthread_t th[16];
	unsigned nth = 0;
	for (unsigned w = 0; w < cfg->nw; w++) {
		ws[w] = (cc_writer){ .sh = &sh, .w = w, .seed = pbox_rng_next(&r),
				     .nops = cfg->nops * pbox_test_scale() };
		ws[w].ver = calloc(cfg->nkeys, sizeof(uint32_t));
		REQ_T(ws[w].ver != NULL);
	}
	for (unsigned k = 0; k < cfg->nr; k++) {
		rs[k] = (cc_reader){ .sh = &sh, .id = k, .seed = pbox_rng_next(&r) };
		rs[k].last_ver = calloc(total, sizeof(uint32_t));
		REQ_T(rs[k].last_ver != NULL);
	}
	for (unsigned w = 0; w < cfg->nw; w++)
		REQ_T(pthread_create(&th[nth++], NULL, cc_writer_main, &ws[w]) == 0);
	for (unsigned k = 0; k < cfg->nr; k++)
		REQ_T(pthread_create(&th[nth++], NULL, cc_reader_main, &rs[k]) == 0);
	for (unsigned t = 0; t < nth; t++)
		pthread_join(th[t], NULL);
	REQ(!atomic_load(&sh.failed), "%s (seed %llu)", sh.msg, (unsigned long long)seed);

	/* the tree is the union of the writers' oracles */
	uint64_t want = 0, wops = 0, lookups = 0, found = 0, scans = 0, scanned = 0, ver = 0;
	for (unsigned w = 0; w < cfg->nw; w++) {
		wops += ws[w].ops;
		for (unsigned i = 0; i < cfg->nkeys; i++)
			want += ws[w].ver[i] != 0;
	}
	for (unsigned k = 0; k < cfg->nr; k++) {
		lookups += rs[k].lookups, found += rs[k].found, scans += rs[k].scans;
		scanned += rs[k].scanned, ver += rs[k].verifies;
	}
	cc_final_ctx fc = { .ws = ws, .nw = cfg->nw };
	int rc = pbox_bt_scan(sh.bt, NULL, 0, NULL, 0, cc_final_fn, &fc);
	REQ(rc == 0 && !fc.msg[0], "final scan: %s %s (seed %llu)", pbox_status_name(rc), fc.msg,
	    (unsigned long long)seed);
	REQ_EQ(fc.n, want);
	pbox_bt_verify_info info = bt_verify(sh.bt);
	REQ_EQ(info.keys, want);
	fprintf(stderr, "concurrent: %llu writer ops, %llu keys at the end (%llu leaves, depth "
			"%llu); readers: %llu lookups (%llu found), %llu scans (%llu pairs), %llu "
			"verifies\n", (unsigned long long)wops, (unsigned long long)want,
		(unsigned long long)info.leaves, (unsigned long long)info.depth,
		(unsigned long long)lookups, (unsigned long long)found, (unsigned long long)scans,
		(unsigned long long)scanned, (unsigned long long)ver);
	/* the same after a reopen */
	pbox_bt_close(sh.bt);
	env_reopen(&e);
	sh.bt = bt_open(e.st, "cc");
	fc.n = 0;
	rc = pbox_bt_scan(sh.bt, NULL, 0, NULL, 0, cc_final_fn, &fc);
	REQ(rc == 0 && !fc.msg[0], "scan after reopen: %s %s", pbox_status_name(rc), fc.msg);
	REQ_EQ(fc.n, want);
	pbox_bt_close(sh.bt);
	env_fini(&e);
	for (unsigned w = 0; w < cfg->nw; w++)
		free(ws[w].ver);
	for (unsigned k = 0; k < cfg->nr; k++)
		free(rs[k].last_ver);
	free(sh.stable_in);
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

/* Concurrent catalog operations: open_or_create of shared names, create races. */
#define CAT_T 4
#define CAT_N 16

typedef struct cat_ctx {
	pbox_store *st;
	unsigned id;
	atomic_uint *created; /* [k]: successful creates of "excl-k" */
	cc_shared *sh;
} cat_ctx;

static void *cat_main(void *arg)
{
	cat_ctx *c = arg;
	char name[32];
	for (unsigned k = 0; k < CAT_N && !atomic_load(&c->sh->failed); k++) {
		unsigned kk = (k + c->id * 5) % CAT_N; /* different orders per thread */
		pbox_bt *bt = NULL;
		snprintf(name, sizeof(name), "shared-%02u", kk);
		int rc = pbox_bt_open_or_create(c->st, name, &bt);
		if (rc) {
			cc_fail(c->sh, "thread %u: open_or_create %s = %s", c->id, name,
				pbox_status_name(rc));
			break;
		}
		uint8_t key[1] = { (uint8_t)c->id };
		rc = pbox_bt_insert(bt, key, 1, name, strlen(name), 0);
		pbox_bt_close(bt);
		if (rc) {
			cc_fail(c->sh, "thread %u: insert into %s = %s", c->id, name,
				pbox_status_name(rc));
			break;
		}
		snprintf(name, sizeof(name), "excl-%02u", kk);
		bt = NULL;
		rc = pbox_bt_create(c->st, name, &bt);
		if (rc == 0) {
			atomic_fetch_add(&c->created[kk], 1);
			pbox_bt_close(bt);
		} else if (rc != PBOX_EEXIST) {
			cc_fail(c->sh, "thread %u: create %s = %s", c->id, name, pbox_status_name(rc));
			break;
		}
	}
	return NULL;
}

START_TEST(test_concurrent_catalog)
{
	env e;
	env_init(&e, 4096, 64);
	static cc_shared sh;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	atomic_uint created[CAT_N];
	for (unsigned k = 0; k < CAT_N; k++)
		atomic_init(&created[k], 0);
	cat_ctx cs[CAT_T];
	pthread_t th[CAT_T];
	for (unsigned t = 0; t < CAT_T; t++) {
		cs[t] = (cat_ctx){ .st = e.st, .id = t, .created = created, .sh = &sh };
		REQ_T(pthread_create(&th[t], NULL, cat_main, &cs[t]) == 0);
	}
	for (unsigned t = 0; t < CAT_T; t++)
		pthread_join(th[t], NULL);
	REQ(!atomic_load(&sh.failed), "%s", sh.msg);
	for (unsigned k = 0; k < CAT_N; k++)
		REQ(atomic_load(&created[k]) == 1, "excl-%02u was created %u times", k,
		    atomic_load(&created[k]));
	static char names[2 * CAT_N][16];
	const char *want[2 * CAT_N];
	for (unsigned k = 0; k < CAT_N; k++) {
		snprintf(names[k], sizeof(names[k]), "excl-%02u", k);
		snprintf(names[CAT_N + k], sizeof(names[k]), "shared-%02u", k);
	}
	for (unsigned i = 0; i < 2 * CAT_N; i++)
		want[i] = names[i];
	for (unsigned round = 0; round < 2; round++) {
		check_list(e.st, want, 2 * CAT_N);
		for (unsigned k = 0; k < CAT_N; k++) {
			pbox_bt *bt = bt_open(e.st, names[CAT_N + k]);
			REQ_EQ(bt_verify(bt).keys, CAT_T); /* every thread's insert, in one tree */
			pbox_bt_close(bt);
			bt = bt_open(e.st, names[k]);
			REQ_EQ(bt_verify(bt).keys, 0);
			pbox_bt_close(bt);
		}
		env_reopen(&e);
	}
	env_fini(&e);
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

/* ---- 6. power cuts ------------------------------------------------------------------------ */

#define CR_MAXW 3
#define CR_KEYS 500 /* keys per writer */
#define CR_MAXOPS 1500
#define CR_VMIN 300u /* values of 320 .. 699 bytes: few per leaf, many leaves; */
#define CR_SPAN 380u
#define CR_BIG 10000u /* 1 in 8 up to about 10 KB (overflow pages) */
#define CR_VMAX (CR_VMIN + VHDR + CR_BIG)

enum { CR_PUT = 1, CR_DEL = 2, CR_NOP = 3 };

typedef struct cr_op {
	uint32_t idx;
	uint8_t effect; /* CR_PUT: value version = op index + 1; CR_DEL; CR_NOP */
	bool acked;     /* returned 0 with PBOX_BT_DURABLE */
} cr_op;

typedef struct cr_writer {
	pbox_bt *bt;
	pbox_store *st;
	unsigned w, nw, nops;
	uint64_t seed;
	pbox_rng r;
	unsigned done; /* ops[0, done) may have happened */
	uint32_t ver[CR_KEYS]; /* writer's view: current version, 0 = absent */
	atomic_bool *cut;
	atomic_uint progress; /* ops finished (for the main thread's timing) */
	atomic_bool finished;
	bool bug;
	char msg[256];
	/* tree creations (writer 0) */
	unsigned ncreate;
	bool create_ok[64];
	cr_op ops[CR_MAXOPS];
} cr_writer;

static uint32_t cr_vlen(uint32_t n, uint32_t ver)
{
	uint64_t x = mix64((uint64_t)(ver ^ 0x0c0ffee0u) << 32 | n);
	if (x % 8 == 0)
		return CR_VMIN + VHDR + (uint32_t)((x >> 8) % CR_BIG);
	return CR_VMIN + sv_len(n, ver, CR_SPAN);
}

/* Run ops [done, upto) of writer w. Stops at the first error (expected after the cut).
 * fill: inserts and upserts only (the preload). */
static void cr_run(cr_writer *wr, unsigned upto, unsigned durable_per16, bool fill)
{
	uint8_t key[32], val[CR_VMAX];
	while (wr->done < upto) {
		unsigned i = wr->done;
		if (wr->w == 0 && wr->ncreate < 64 && pbox_rng_below(&wr->r, 150) == 0) {
			char name[16];
			snprintf(name, sizeof(name), "c%02u", wr->ncreate);
			pbox_bt *t = NULL;
			unsigned k = wr->ncreate++;
			int rc = pbox_bt_create(wr->st, name, &t);
			if (rc) {
				if (!atomic_load(wr->cut)) {
					wr->bug = true;
					snprintf(wr->msg, sizeof(wr->msg), "create %s = %s before the cut",
						 name, pbox_status_name(rc));
				}
				return;
			}
			wr->create_ok[k] = true;
			pbox_bt_close(t);
		}
		cr_op *o = &wr->ops[i];
		o->idx = (uint32_t)pbox_rng_below(&wr->r, CR_KEYS);
		o->acked = false;
		uint32_t n = o->idx * wr->nw + wr->w, cur = wr->ver[o->idx];
		uint32_t kl = nkey(key, n);
		uint32_t vl = cr_vlen(n, i + 1);
		sv_make(val, n, i + 1, vl);
		unsigned flags = pbox_rng_below(&wr->r, 16) < durable_per16 ? PBOX_BT_DURABLE : 0;
		unsigned c = (unsigned)pbox_rng_below(&wr->r, fill ? 55 : 100);
		int rc, want;
		if (c < 30) {
			o->effect = cur ? CR_NOP : CR_PUT;
			want = cur ? PBOX_EEXIST : 0;
			wr->done = i + 1;
			rc = pbox_bt_insert(wr->bt, key, kl, val, vl, flags);
		} else if (c < 55) {
			o->effect = CR_PUT, want = 0;
			wr->done = i + 1;
			rc = pbox_bt_upsert(wr->bt, key, kl, val, vl, flags);
		} else if (c < 70) {
			o->effect = cur ? CR_PUT : CR_NOP;
			want = cur ? 0 : PBOX_ENOTFOUND;
			wr->done = i + 1;
			rc = pbox_bt_update(wr->bt, key, kl, val, vl, flags);
		} else {
			o->effect = cur ? CR_DEL : CR_NOP;
			want = cur ? 0 : PBOX_ENOTFOUND;
			wr->done = i + 1;
			rc = pbox_bt_remove(wr->bt, key, kl, flags);
		}
		if (rc != want) {
			if (!atomic_load(wr->cut)) {
				wr->bug = true;
				snprintf(wr->msg, sizeof(wr->msg), "writer %u op %u on key %u = %s, want "
					 "%s, before the cut", wr->w, i, n, pbox_status_name(rc),
					 pbox_status_name(want));
			}
			return;
		}
		o->acked = rc == 0 && (flags & PBOX_BT_DURABLE) && o->effect != CR_NOP;
		if (o->effect == CR_PUT)
			wr->ver[o->idx] = i + 1;
		else if (o->effect == CR_DEL)
			wr->ver[o->idx] = 0;
		atomic_store_explicit(&wr->progress, wr->done, memory_order_relaxed);
	}
}

static void *cr_writer_main(void *arg)
{
	cr_writer *wr = arg;
	cr_run(wr, wr->nops, 4, false);
	atomic_store(&wr->finished, true);
	return NULL;
}

typedef struct cr_check_ctx {
	cr_writer **ws;
	unsigned nw;
	uint32_t (*got)[CR_KEYS]; /* recovered version per writer and key, 0 = absent */
	char msg[256];
} cr_check_ctx;

static int cr_scan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cr_check_ctx *c = arg;
	uint32_t n, ver;
	if (!nkey_check(k, kl, &n) || n / c->nw >= CR_KEYS) {
		snprintf(c->msg, sizeof(c->msg), "a key (len %zu) that was never written", kl);
		return SCAN_BAD;
	}
	uint32_t w = n % c->nw, idx = n / c->nw;
	if (!sv_check(v, vl, n, &ver)) {
		snprintf(c->msg, sizeof(c->msg), "key %u: a value (len %zu) that was never written",
			 n, vl);
		return SCAN_BAD;
	}
	const cr_writer *wr = c->ws[w];
	if (ver == 0 || ver > wr->done || wr->ops[ver - 1].idx != idx ||
	    wr->ops[ver - 1].effect != CR_PUT || vl != cr_vlen(n, ver)) {
		snprintf(c->msg, sizeof(c->msg), "key %u: version %u is not from its history "
			 "(writer %u, %u ops attempted)", n, ver, w, wr->done);
		return SCAN_BAD;
	}
	c->got[w][idx] = ver;
	return 0;
}

typedef struct cr_stats {
	uint64_t cycles, pending, restored, lost, acked, ops, leaked;
} cr_stats;

static bool cr_verbose; /* PBOX_BT_CYCLE: describe the cycle */

static void cr_cycle(uint64_t seed, unsigned nw, cr_stats *stats)
{
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	pbox_io_memfs *fs;
	CK_RC(pbox_io_memfs_create(&fs), 0);
	memset(&e, 0, sizeof(e));
	e.fs = fs;
	pbox_store_options_init(&e.o);
	e.o.io = pbox_io_memfs_io(fs);
	e.o.create = true;
	e.o.page_size = 4096;
	e.o.budget_bytes = (pbox_rng_below(&r, 2) ? 64 : 1024) * 4096ull;
	e.o.max_bytes = 4ull << 20; /* 1024 pages: a small file (memfs copies it at a cut) */
	e.o.wal_segment_size = 256u << 10; /* segment switches happen too */
	e.o.wal_flush_delay_us = pbox_rng_below(&r, 2) ? 300 : 0;
	e.o.background_evictor = pbox_rng_below(&r, 2);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	e.o.redo = h;
	e.o.nredo = nh;
	e.o.errbuf = e.err;
	e.o.errbuf_len = sizeof(e.err);
	env_open(&e);
	pbox_bt *bt = bt_create(e.st, "main");

	static cr_writer wsto[CR_MAXW];
	cr_writer *ws[CR_MAXW];
	atomic_bool cut;
	atomic_init(&cut, false);
	unsigned preload = (unsigned)pbox_rng_below(&r, 3) * 400; /* 0, 400 or 800 ops each */
	for (unsigned w = 0; w < nw; w++) {
		ws[w] = &wsto[w];
		cr_writer *wr = ws[w];
		memset(wr, 0, sizeof(*wr));
		atomic_init(&wr->progress, 0);
		atomic_init(&wr->finished, false);
		wr->bt = bt;
		wr->st = e.st;
		wr->w = w;
		wr->nw = nw;
		wr->cut = &cut;
		wr->seed = pbox_rng_next(&r);
		pbox_rng_seed(&wr->r, wr->seed);
		wr->nops = pbox_rng_below(&r, 4) ? CR_MAXOPS : preload + 1 + (unsigned)pbox_rng_below(&r, 40);
		/* before the threads start: a preload with few syncs, made durable by its last op */
		cr_run(wr, preload, 0, true);
		REQ(!wr->bug, "%s (cycle %llu:%u)", wr->msg, (unsigned long long)seed, nw);
	}
	if (preload) {
		CK_RC(pbox_bt_upsert(bt, "sync", 4, "x", 1, PBOX_BT_DURABLE), 0);
		for (unsigned w = 0; w < nw; w++)
			for (unsigned i = 0; i < ws[w]->done; i++)
				ws[w]->ops[i].acked = ws[w]->ops[i].effect != CR_NOP;
		if (pbox_rng_below(&r, 2))
			CK_RC(pbox_store_checkpoint(e.st), 0);
	}
	pthread_t th[CR_MAXW];
	for (unsigned w = 0; w < nw; w++)
		REQ_T(pthread_create(&th[w], NULL, cr_writer_main, ws[w]) == 0);
	if (cr_verbose)
		fprintf(stderr, "cycle %llu:%u: budget %llu pages, flush delay %u us, %s evictor, "
				"preload %u ops per writer, writer 0 runs %u ops\n",
			(unsigned long long)seed, nw,
			(unsigned long long)(e.o.budget_bytes / 4096), e.o.wal_flush_delay_us,
			e.o.background_evictor ? "background" : "no", preload, ws[0]->nops);
	/* cut while the writers work: once writer 0 has done a random number of its ops
	 * (checkpoints on the way, sometimes), then after a random short delay */
	unsigned target = preload + (unsigned)pbox_rng_below(&r, ws[0]->nops - preload + 1);
	unsigned ck_at = pbox_rng_below(&r, 2) ? preload + (target - preload) / 2 : ~0u;
	for (;;) {
		unsigned p = atomic_load_explicit(&ws[0]->progress, memory_order_relaxed);
		if (p >= target || atomic_load(&ws[0]->finished))
			break;
		if (p >= ck_at) {
			ck_at = ~0u;
			if (pbox_store_checkpoint(e.st))
				break;
		}
		usleep(20);
	}
	usleep((useconds_t)pbox_rng_below(&r, 300));
	if (cr_verbose) {
		pbox_store_stats ss0;
		pbox_store_get_stats(e.st, &ss0);
		fprintf(stderr, "cycle %llu:%u: cut after writer 0 did %u ops (target %u), %llu "
				"checkpoints; wal end %llu, durable %llu\n", (unsigned long long)seed, nw,
			atomic_load(&ws[0]->progress), target, (unsigned long long)ss0.checkpoints,
			(unsigned long long)ss0.wal_end, (unsigned long long)ss0.wal_durable);
	}
	pbox_powercut_mode mode = (pbox_powercut_mode)pbox_rng_below(&r, 4);
	atomic_store(&cut, true);
	stats->pending += pbox_io_memfs_powercut(fs, mode, pbox_rng_next(&r));
	for (unsigned w = 0; w < nw; w++)
		pthread_join(th[w], NULL);
	for (unsigned w = 0; w < nw; w++)
		REQ(!ws[w]->bug, "%s (cycle %llu:%u)", ws[w]->msg, (unsigned long long)seed, nw);
	pbox_bt_close(bt);
	pbox_store_close(e.st); /* fails: the machine is off */
	e.st = NULL;
	pbox_io_memfs_restart(fs);

	/* recovery */
	e.o.create = false;
	int rc = pbox_store_open(DIR_, &e.o, &e.st);
	REQ(rc == 0, "reopen after the power cut (cycle %llu:%u, mode %d): %s: %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc), e.err);
	pbox_store_stats ss;
	pbox_store_get_stats(e.st, &ss);
	stats->restored += ss.recovery_pages_restored;
	bt = NULL;
	rc = pbox_bt_open(e.st, "main", &bt);
	REQ(rc == 0, "tree lost in the power cut (cycle %llu:%u, mode %d): %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc));
	pbox_bt_verify_info info;
	rc = pbox_bt_verify(bt, &info);
	REQ(rc == 0, "verify after the power cut (cycle %llu:%u, mode %d): %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc));
	static uint32_t got[CR_MAXW][CR_KEYS];
	memset(got, 0, sizeof(got));
	cr_check_ctx cc = { .ws = ws, .nw = nw, .got = got };
	uint8_t sbuf[8];
	size_t sl;
	bool has_sync = pbox_bt_lookup(bt, "sync", 4, sbuf, sizeof(sbuf), &sl) == 0;
	REQ(!preload || has_sync, "durable marker lost (cycle %llu:%u, mode %d)",
	    (unsigned long long)seed, nw, mode);
	/* everything but the marker is a writer key: scan past it */
	uint8_t lo[4] = { 0, 0, 0, 0 }, hi[4];
	put32(hi, nw * CR_KEYS);
	rc = pbox_bt_scan(bt, lo, 4, hi, 4, cr_scan_fn, &cc);
	REQ(rc == 0 && !cc.msg[0], "after the power cut (cycle %llu:%u, mode %d): %s %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc), cc.msg);
	uint64_t nkeys = 0;
	for (unsigned w = 0; w < nw; w++)
		for (unsigned i = 0; i < CR_KEYS; i++)
			nkeys += got[w][i] != 0;
	REQ(info.keys == nkeys + has_sync, "verify counts %llu keys, a scan finds %llu (cycle %llu:%u)",
	    (unsigned long long)info.keys, (unsigned long long)(nkeys + has_sync),
	    (unsigned long long)seed, nw);

	/* each writer's keys equal its oracle after some prefix of its ops that includes every
	 * acknowledged durable op */
	for (unsigned w = 0; w < nw; w++) {
		cr_writer *wr = ws[w];
		unsigned last_ack = 0;
		for (unsigned i = 0; i < wr->done; i++)
			if (wr->ops[i].acked)
				last_ack = i + 1;
		static uint32_t want[CR_KEYS];
		memset(want, 0, sizeof(want));
		unsigned mism = 0;
		for (unsigned k = 0; k < CR_KEYS; k++)
			mism += got[w][k] != 0;
		int match = -1;
		for (unsigned k = 0; k <= wr->done; k++) {
			if (k > 0) {
				const cr_op *o = &wr->ops[k - 1];
				uint32_t nv = o->effect == CR_PUT ? k : o->effect == CR_DEL ? 0 :
									   want[o->idx];
				mism -= want[o->idx] != got[w][o->idx];
				want[o->idx] = nv;
				mism += want[o->idx] != got[w][o->idx];
			}
			if (k >= last_ack && mism == 0) {
				match = (int)k;
				break;
			}
		}
		if (match < 0) {
			/* the first key that differs from the oracle after the last durable ack */
			memset(want, 0, sizeof(want));
			for (unsigned k = 0; k < last_ack; k++) {
				const cr_op *o = &wr->ops[k];
				if (o->effect == CR_PUT)
					want[o->idx] = k + 1;
				else if (o->effect == CR_DEL)
					want[o->idx] = 0;
			}
			unsigned bad = 0;
			while (bad < CR_KEYS && want[bad] == got[w][bad])
				bad++;
			ck_abort_msg("power cut (cycle %llu:%u, mode %d): writer %u's keys are not its "
				     "oracle after any prefix >= %u of %u ops; e.g. key %u holds "
				     "version %u, %u after the last durable op", (unsigned long long)seed,
				     nw, mode, w, last_ack, wr->done, bad < CR_KEYS ? bad * nw + w : 0,
				     bad < CR_KEYS ? got[w][bad] : 0, bad < CR_KEYS ? want[bad] : 0);
		}
		stats->lost += wr->done - (unsigned)match;
		stats->acked += last_ack;
		stats->ops += wr->done;
	}
	/* every tree whose creation returned 0 exists; no other names */
	for (unsigned k = 0; k < ws[0]->ncreate; k++) {
		char name[16];
		snprintf(name, sizeof(name), "c%02u", k);
		pbox_bt *t = NULL;
		rc = pbox_bt_open(e.st, name, &t);
		if (ws[0]->create_ok[k])
			REQ(rc == 0, "tree %s created before the cut is gone (cycle %llu:%u): %s",
			    name, (unsigned long long)seed, nw, pbox_status_name(rc));
		else
			REQ(rc == 0 || rc == PBOX_ENOTFOUND, "open %s = %s", name,
			    pbox_status_name(rc));
		if (rc == 0) {
			REQ_EQ(bt_verify(t).keys, 0);
			pbox_bt_close(t);
		}
	}
	static name_list nl;
	memset(&nl, 0, sizeof(nl));
	CK_RC(pbox_bt_list(e.st, list_fn, &nl), 0);
	for (unsigned i = 0; i < nl.n; i++) {
		unsigned k = 99;
		REQ(strcmp(nl.names[i], "main") == 0 ||
			    (sscanf(nl.names[i], "c%02u", &k) == 1 && k < ws[0]->ncreate),
		    "after the power cut a tree \"%s\" exists that was never created", nl.names[i]);
	}

	/* pages the crash left unreachable (a chain written before its leaf committed, a drop
	 * cut short) are found and freed, and nothing reachable is: the trees verify with the
	 * same keys, and a second pass finds nothing */
	uint64_t leaked = 0, again = 1;
	CK_RC(pbox_bt_reclaim(e.st, true, &leaked), 0);
	stats->leaked += leaked;
	REQ_EQ(bt_verify(bt).keys, info.keys);
	CK_RC(pbox_bt_reclaim(e.st, false, &again), 0);
	REQ_EQ(again, 0);

	/* and it keeps working: changes, a checkpoint, a clean reopen */
	CK_RC(pbox_bt_upsert(bt, "after", 5, "crash", 5, PBOX_BT_DURABLE), 0);
	CK_RC(pbox_bt_remove(bt, "after", 5, 0), 0);
	CK_RC(pbox_bt_upsert(bt, "after", 5, "again", 5, 0), 0);
	CK_RC(pbox_store_checkpoint(e.st), 0);
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "main");
	REQ_EQ(bt_verify(bt).keys, nkeys + has_sync + 1);
	char vb[8];
	CK_RC(pbox_bt_lookup(bt, "after", 5, vb, sizeof(vb), &sl), 0);
	REQ_T(beq(vb, sl, "again", 5));
	pbox_bt_close(bt);
	env_fini(&e);
	stats->cycles++;
}

static void cr_report(const char *what, const cr_stats *s)
{
	fprintf(stderr, "%s: %llu cycles, %llu ops (%llu up to the last durable ack), %llu "
			"unsynced writes at the cuts, %llu torn pages restored, %llu unacknowledged "
			"ops lost, %llu unreachable pages reclaimed\n", what,
		(unsigned long long)s->cycles, (unsigned long long)s->ops,
		(unsigned long long)s->acked, (unsigned long long)s->pending,
		(unsigned long long)s->restored, (unsigned long long)s->lost,
		(unsigned long long)s->leaked);
}

#define CR_CYCLES_1 50 /* per loop iteration; 2 iterations */
#define CR_CYCLES_N 50 /* per loop iteration; 2 iterations */

/* PBOX_BT_CYCLE=seed:writers runs just that cycle (as a failure message names it). */
static bool cr_single_cycle(void)
{
	const char *e = getenv("PBOX_BT_CYCLE");
	if (!e || !*e)
		return false;
	char *end;
	unsigned long long seed = strtoull(e, &end, 0);
	unsigned nw = *end == ':' ? (unsigned)strtoul(end + 1, NULL, 0) : 1;
	REQ(nw >= 1 && nw <= CR_MAXW, "PBOX_BT_CYCLE: 1..%u writers", CR_MAXW);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	cr_verbose = true;
	cr_cycle(seed, nw, &s);
	cr_report("powercut (one cycle)", &s);
	return true;
}

START_TEST(test_powercut_single_writer)
{
	if (cr_single_cycle())
		return;
	uint64_t base = pbox_test_seed() ^ 0xc0ffee ^ ((uint64_t)_i << 32);
	fprintf(stderr, "powercut (1 writer): base seed %llu (cycle c uses base + c)\n",
		(unsigned long long)base);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	unsigned cycles = CR_CYCLES_1 * pbox_test_scale();
	for (unsigned c = 0; c < cycles; c++)
		cr_cycle(base + c, 1, &s);
	cr_report("powercut (1 writer)", &s);
	REQ_GT(s.pending, 0);
	REQ_GT(s.acked, 0);
}
END_TEST

START_TEST(test_powercut_concurrent)
{
	if (cr_single_cycle())
		return;
	uint64_t base = pbox_test_seed() ^ 0xc0c0a ^ ((uint64_t)_i << 32);
	fprintf(stderr, "powercut (2-3 writers): base seed %llu (cycle c uses base + c)\n",
		(unsigned long long)base);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	unsigned cycles = CR_CYCLES_N * pbox_test_scale();
	for (unsigned c = 0; c < cycles; c++)
		cr_cycle(base + c, 2 + c % 2, &s);
	cr_report("powercut (2-3 writers)", &s);
	REQ_GT(s.pending, 0);
	REQ_GT(s.acked, 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree");
	TCase *tc = tcase_create("catalog");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_catalog_basic);
	tcase_add_test(tc, test_catalog_many);
	tcase_add_test(tc, test_catalog_drop);
	suite_add_tcase(s, tc);

	tc = tcase_create("oracle");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_oracle, 0, (int)(sizeof(diff_cfgs) / sizeof(diff_cfgs[0])));
	tcase_add_test(tc, test_scan_bounds);
	tcase_add_test(tc, test_cursor_removed_key);
	tcase_add_test(tc, test_scan_readahead);
	suite_add_tcase(s, tc);

	tc = tcase_create("fill");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_ascending_fill, 0,
			    (int)(sizeof(fill_cfgs) / sizeof(fill_cfgs[0])));
	tcase_add_test(tc, test_remove_frees_pages);
	tcase_add_test(tc, test_reclaim);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_limits, 0, 3);
	tcase_add_test(tc, test_max_entries);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_concurrent, 0, (int)(sizeof(cc_cfgs) / sizeof(cc_cfgs[0])));
	tcase_add_test(tc, test_concurrent_catalog);
	suite_add_tcase(s, tc);

	tc = tcase_create("powercut");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_powercut_single_writer, 0, 2);
	tcase_add_loop_test(tc, test_powercut_concurrent, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
