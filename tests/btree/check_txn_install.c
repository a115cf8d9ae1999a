/*
 * check_txn_install.c — big transactions, and how a commit installs its write set
 * (btree/src/txn_install.c: sorted, a leaf's keys in one mini-transaction, the key-at-a-time
 * path for what a leaf group cannot do). Black box: public headers only.
 *
 *   mixed        one transaction over a tree that already holds short and long (overflow)
 *                values, its puts in random order: inserts, replacements that grow (splits),
 *                long values replaced by short ones and short by long, deletes that empty
 *                leaves (merges), a put then a delete of an absent key; a snapshot opened
 *                before the commit still reads the whole old state afterwards (every key
 *                got its version), the tree holds the new one (against an oracle), and
 *                again after a reopen; a second transaction whose puts arrive sorted
 *   dropped      a tree dropped between the puts and the commit: the commit succeeds, the
 *                other tree gets its keys
 *   write set    keys put ascending, then below the last (found and replaced), then a new
 *                smaller one; values grown beyond their entry and over 16 KiB (heap
 *                blocks), deletes: one entry per key, its last value, in the view and after
 *                the commit
 *   readers      a writer commits generations of 3,000 keys (random order each time, a
 *                third deleted and re-put in turn) while readers scan and get in snapshots:
 *                every snapshot sees one generation, never a mix, and generations only grow
 *   beside       small commits and snapshots in one thread while another commits one big
 *                transaction: every snapshot sees its thread's last small commit (which
 *                finished while the older big one installed; every other time a snapshot
 *                held across it keeps its versions) and all or none of the big one
 *   big          one transaction of 200,000 puts (1,000,000 with PBOX_STRESS_SCALE > 1 in
 *                release builds; 50,000 under sanitizers) with a pool smaller than its write
 *                set, readable after a reopen; the batch API without its old limits
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VBUF (64u << 10)
static uint8_t vbuf[VBUF];

/* ---- mixed ---------------------------------------------------------------------------- */

#define MN 6000u
#define SHORT 40u
#define LONG 2600u  /* over the inline maximum at 4 KiB pages: an overflow chain */
#define GROWN 900u  /* inline, but big enough that replacements split leaves */
#define VMAXB 32768u /* the longest value the tests write */

/* What the oracle holds per key: present, the value's length and tag (bytes follow). */
typedef struct mstate {
	bool present;
	uint32_t len, tag;
} mstate;

static size_t mkey(char *k, uint32_t i)
{
	return (size_t)sprintf(k, "m%06u", i);
}

static void mval(uint8_t *v, uint32_t i, uint32_t tag, uint32_t len)
{
	uint64_t x = mix64(((uint64_t)i << 20) ^ tag);
	for (uint32_t j = 0; j < len; j++)
		v[j] = (uint8_t)(x >> (8 * (j % 8))) ^ (uint8_t)(j * 7);
}

/* Every key of bt as seen by t (t NULL: the tree itself), against want[]. */
typedef struct mchk {
	const mstate *want;
	uint32_t next; /* keys below it were checked */
	uint64_t seen;
	char msg[160];
} mchk;

static int mchk_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	mchk *c = arg;
	uint32_t i;
	if (kl != 7 || sscanf((const char *)k + 1, "%6u", &i) != 1 || i >= MN || i < c->next) {
		snprintf(c->msg, sizeof(c->msg), "unexpected key %.*s", (int)kl, (const char *)k);
		return SCAN_BAD;
	}
	for (; c->next < i; c->next++)
		if (c->want[c->next].present) {
			snprintf(c->msg, sizeof(c->msg), "key %u missing", c->next);
			return SCAN_BAD;
		}
	const mstate *s = &c->want[i];
	static uint8_t w[VMAXB];
	if (!s->present || vl != s->len) {
		snprintf(c->msg, sizeof(c->msg), "key %u: present %d, length %zu, want %u", i,
			 s->present, vl, s->len);
		return SCAN_BAD;
	}
	mval(w, i, s->tag, s->len);
	if (memcmp(v, w, vl)) {
		snprintf(c->msg, sizeof(c->msg), "key %u: wrong bytes (tag %u)", i, s->tag);
		return SCAN_BAD;
	}
	c->next = i + 1;
	c->seen++;
	return 0;
}

static void mcheck(pbox_txn *t, pbox_bt *bt, const mstate *want, const char *what)
{
	mchk c = { .want = want };
	int r = t ? pbox_txn_scan(t, bt, NULL, 0, NULL, 0, 0, mchk_fn, &c)
		  : pbox_bt_scan(bt, NULL, 0, NULL, 0, mchk_fn, &c);
	REQ(r == 0, "%s: %s (%d)", what, c.msg, r);
	for (; c.next < MN; c.next++)
		REQ(!want[c.next].present, "%s: key %u missing at the end", what, c.next);
	/* point reads too, for a sample */
	for (uint32_t i = 0; i < MN; i += 37) {
		char k[16];
		size_t vl = 0;
		size_t kl = mkey(k, i);
		r = t ? pbox_txn_get(t, bt, k, kl, vbuf, VBUF, &vl)
		      : pbox_bt_lookup(bt, k, kl, vbuf, VBUF, &vl);
		if (!want[i].present) {
			REQ(r == PBOX_ENOTFOUND, "%s: get of deleted key %u: %d", what, i, r);
			continue;
		}
		static uint8_t w[VMAXB];
		mval(w, i, want[i].tag, want[i].len);
		REQ(r == 0 && vl == want[i].len && !memcmp(vbuf, w, vl),
		    "%s: get of key %u: %d, length %zu (want %u)", what, i, r, vl, want[i].len);
	}
}

static void mput(pbox_txn *t, pbox_bt *bt, mstate *s, uint32_t i, uint32_t tag, uint32_t len)
{
	char k[16];
	static uint8_t v[VMAXB];
	mval(v, i, tag, len);
	size_t kl = mkey(k, i);
	if (t)
		CK_RC(pbox_txn_put(t, bt, k, kl, v, len), 0);
	else
		CK_RC(pbox_bt_upsert(bt, k, kl, v, len, 0), 0);
	s[i] = (mstate){ true, len, tag };
}

static void mdel(pbox_txn *t, pbox_bt *bt, mstate *s, uint32_t i)
{
	char k[16];
	CK_RC(pbox_txn_del(t, bt, k, mkey(k, i)), 0);
	s[i].present = false;
}

START_TEST(test_mixed)
{
	env e;
	env_init(&e, 4096, 512);
	pbox_bt *bt = bt_create(e.st, "mixed");
	static mstate before[MN], after[MN];
	memset(before, 0, sizeof(before));
	for (uint32_t i = 0; i < MN; i++)
		if (i % 3)
			mput(NULL, bt, before, i, 0, i % 50 == 1 ? LONG : SHORT);
	mcheck(NULL, bt, before, "base");
	memcpy(after, before, sizeof(after));
	pbox_txn *old, *t;
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &old), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	uint32_t p = 4099; /* a permutation of 0..MN-1: random order */
	for (uint32_t j = 0; j < MN; j++) {
		uint32_t i = (uint32_t)(((uint64_t)j * p) % MN);
		if (i % 3 == 0) { /* absent before */
			if (i % 13 == 0) { /* put, then delete: a delete of an absent key */
				mput(t, bt, after, i, 1, SHORT);
				mdel(t, bt, after, i);
			} else {
				mput(t, bt, after, i, 1, i % 30 == 0 ? LONG : SHORT);
			}
		} else if (i % 3 == 1) {
			if (i % 7 == 0)
				mdel(t, bt, after, i);
			else if (i % 11 == 0)
				mput(t, bt, after, i, 1, GROWN);
			else if (i % 50 == 1)
				mput(t, bt, after, i, 1, 30); /* a long value replaced by a short one */
			else if (i % 17 == 0)
				mput(t, bt, after, i, 1, LONG); /* a short value replaced by a long one */
			else
				mput(t, bt, after, i, 1, SHORT);
		} else if (i < MN / 2 && i % 10) {
			mdel(t, bt, after, i); /* most of the first half's i%3==2 keys: merges */
		}
	}
	CK_RC(pbox_txn_commit(t, 0), 0);
	mcheck(old, bt, before, "the snapshot begun before the commit");
	mcheck(NULL, bt, after, "the tree after the commit");
	pbox_txn *nw;
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &nw), 0);
	mcheck(nw, bt, after, "a snapshot begun after the commit");
	pbox_txn_abort(nw);
	pbox_txn_abort(old);
	pbox_txn_stats s;
	pbox_txn_get_stats(e.st, &s);
	REQ_EQ(s.versions, 0);
	bt_verify(bt);
	/* sorted: every present key replaced, in key order (the write set needs no sort) */
	memcpy(before, after, sizeof(before));
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &old), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	for (uint32_t i = 0; i < MN; i++)
		if (after[i].present)
			mput(t, bt, after, i, 2, i % 5 ? SHORT : 300);
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	mcheck(old, bt, before, "the snapshot begun before the sorted commit");
	pbox_txn_abort(old);
	mcheck(NULL, bt, after, "after the sorted commit");
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "mixed");
	mcheck(NULL, bt, after, "after a reopen");
	bt_verify(bt);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* Two trees "a" and "b" in a fresh store, and their (empty) oracles. */
static mstate sa[MN], sb[MN];

static void two_trees(env *e, pbox_bt **a, pbox_bt **b)
{
	env_init(e, 4096, 256);
	*a = bt_create(e->st, "a");
	*b = bt_create(e->st, "b");
	memset(sa, 0, sizeof(sa));
	memset(sb, 0, sizeof(sb));
}

START_TEST(test_dropped)
{
	env e;
	pbox_bt *a, *b;
	two_trees(&e, &a, &b);
	for (uint32_t i = 0; i < 500; i++)
		mput(NULL, b, sb, i, 0, SHORT);
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	for (uint32_t i = 0; i < 2000; i++) {
		mput(t, a, sa, i, 1, SHORT);
		mput(t, b, sb, i, 1, i % 9 ? SHORT : LONG);
	}
	pbox_bt_close(b);
	CK_RC(pbox_bt_drop(e.st, "b"), 0);
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	mcheck(NULL, a, sa, "the tree not dropped");
	REQ(pbox_bt_open(e.st, "b", &b) == PBOX_ENOTFOUND, "the dropped tree is back");
	bt_verify(a);
	pbox_bt_close(a);
	env_fini(&e);
}
END_TEST

/* ---- the write set ----------------------------------------------------------------------- */

/* Puts that ascend, then a put and a get below the last key (the index is built then), a
 * put of a smaller new key (no longer ascending), replacements that grow a value beyond its
 * entry (a heap block), a value over 16 KiB, and deletes — the write set must hold each key
 * once with its last value, in every view and after the commit. */
START_TEST(test_wset)
{
	env e;
	pbox_bt *a, *b;
	two_trees(&e, &a, &b);
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	for (uint32_t i = 100; i < 1100; i++)
		mput(t, a, sa, i, 1, SHORT); /* ascending: no index */
	REQ_EQ(pbox_txn_count(t), 1000);
	mput(t, a, sa, 500, 2, SHORT);        /* below the last: found, replaced */
	REQ_EQ(pbox_txn_count(t), 1000);
	mput(t, a, sa, 1099, 3, GROWN);       /* the last one, grown: a heap value */
	mput(t, a, sa, 1099, 4, SHORT);       /* and back to a short one */
	mput(t, a, sa, 50, 1, SHORT);         /* a new key below: not ascending any more */
	mput(t, b, sb, 7, 1, 20000);          /* a value over the entry limit: heap at once */
	mput(t, b, sb, 7, 2, 30);
	mput(t, b, sb, 8, 1, 20000);
	mdel(t, a, sa, 700);
	mdel(t, a, sa, 100);
	REQ_EQ(pbox_txn_count(t), 1003);
	for (uint32_t i = 1100; i < 3000; i += 3)
		mput(t, a, sa, i, 5, i % 2 ? SHORT : GROWN);
	mcheck(t, a, sa, "tree a in the transaction's view");
	mcheck(t, b, sb, "tree b in the transaction's view");
	CK_RC(pbox_txn_commit(t, 0), 0);
	mcheck(NULL, a, sa, "tree a after the commit");
	mcheck(NULL, b, sb, "tree b after the commit");
	bt_verify(a);
	bt_verify(b);
	pbox_bt_close(a);
	pbox_bt_close(b);
	env_fini(&e);
}
END_TEST

/* ---- a big commit beside small ones ------------------------------------------------------ */

#define XN (TXN_SANITIZED ? 20000u : 150000u)

typedef struct xshared {
	pbox_store *st;
	pbox_bt *big, *small;
	atomic_bool big_running, big_done, bad;
	char msg[200];
	_Atomic uint64_t snapshots;
	uint64_t saw_old_while_running, saw_new, maxv; /* read after the join */
} xshared;

static int xgen_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	uint64_t *g = arg; /* g[0]: generation seen, g[1]: count, g[2]: mixed */
	(void)k;
	(void)kl;
	uint64_t x;
	if (vl != 8)
		return SCAN_BAD;
	memcpy(&x, v, 8);
	if (g[1] && x != g[0])
		g[2] = 1;
	g[0] = x;
	g[1]++;
	return g[2] ? SCAN_BAD : 0;
}

/* Small commits and snapshots while the main thread commits one transaction over every key
 * of "big": each snapshot sees this thread's last small commit (commits finish out of
 * timestamp order: the small ones finish while the big one, older, installs), and all of
 * the big commit or none of it. */
static void *xsmall_main(void *arg)
{
	xshared *x = arg;
	uint64_t i = 0;
	while (!atomic_load(&x->big_done) && !atomic_load(&x->bad)) {
		bool running = atomic_load(&x->big_running);
		pbox_txn *t, *hold = NULL;
		i++;
		/* every other time a snapshot stays open across the small commit, so that its
		 * versions are kept and the next snapshot's read goes through them (otherwise
		 * they are freed at once and the tree's value is the only one left) */
		if (i % 2 && pbox_txn_begin(x->st, PBOX_TXN_READONLY, &hold)) {
			atomic_store(&x->bad, true);
			break;
		}
		if (pbox_txn_begin(x->st, 0, &t) || pbox_txn_put(t, x->small, "s", 1, &i, 8) ||
		    pbox_txn_commit(t, 0)) {
			pbox_txn_abort(hold);
			snprintf(x->msg, sizeof(x->msg), "small commit %llu failed",
				 (unsigned long long)i);
			atomic_store(&x->bad, true);
			break;
		}
		if (pbox_txn_begin(x->st, PBOX_TXN_READONLY, &t)) {
			pbox_txn_abort(hold);
			atomic_store(&x->bad, true);
			break;
		}
		uint64_t got = 0, g[3] = { 0 }, want = XN;
		size_t vl = 0;
		int r1 = pbox_txn_get(t, x->small, "s", 1, &got, 8, &vl);
		pbox_txn_abort(hold); /* NULL: nothing */
		int r2 = 0;
		if (i % 128 == 0) { /* a whole scan now and then */
			r2 = pbox_txn_scan(t, x->big, NULL, 0, NULL, 0, 0, xgen_fn, g);
		} else { /* else 32 keys spread over the tree */
			want = 32;
			for (uint32_t j = 0; j < 32 && !r2; j++) {
				char k[16];
				uint64_t v = 0;
				uint32_t key = (uint32_t)((i * 7919 + j * (XN / 32)) % XN);
				r2 = pbox_txn_get(t, x->big, k, mkey(k, key), &v, 8, &vl);
				(void)xgen_fn(k, 7, &v, 8, g);
			}
		}
		pbox_txn_abort(t);
		if (r1 || got != i) {
			snprintf(x->msg, sizeof(x->msg), "a snapshot missed its thread's last commit "
				 "(%llu, saw %llu, rc %d)", (unsigned long long)i,
				 (unsigned long long)got, r1);
			atomic_store(&x->bad, true);
		} else if (r2 || g[2] || g[1] != want) {
			snprintf(x->msg, sizeof(x->msg), "a snapshot saw part of the big commit "
				 "(%llu keys, mixed %llu, rc %d)", (unsigned long long)g[1],
				 (unsigned long long)g[2], r2);
			atomic_store(&x->bad, true);
		}
		x->snapshots++;
		if (g[0] == 0 && running && atomic_load(&x->big_running))
			x->saw_old_while_running++;
		if (g[0] == 1)
			x->saw_new++;
		for (uint64_t u = 0; u < 64; u++) /* single-key changes: one-operation commits */
			if (pbox_bt_upsert(x->small, "u", 1, &u, 8, 0)) {
				atomic_store(&x->bad, true);
				break;
			}
		/* no snapshot that could need the single-key changes' versions is open (the big
		 * transaction is past its conflict checks): they are freed at once, not kept
		 * until the big install ends — at most the big commit's are kept, and one per
		 * small commit (those a held snapshot needed) */
		pbox_txn_stats vs;
		pbox_txn_get_stats(x->st, &vs);
		if (vs.versions > x->maxv)
			x->maxv = vs.versions;
		if (vs.versions > XN + i + 1) {
			snprintf(x->msg, sizeof(x->msg), "%llu versions kept after %llu small commits "
				 "and their single-key changes (the big commit has %u keys)",
				 (unsigned long long)vs.versions, (unsigned long long)i, XN);
			atomic_store(&x->bad, true);
			break;
		}
	}
	return NULL;
}

START_TEST(test_big_beside_small)
{
	env e;
	env_init(&e, 4096, 2048);
	xshared x = { .st = e.st };
	x.big = bt_create(e.st, "big");
	x.small = bt_create(e.st, "small");
	uint64_t g = 0;
	for (uint32_t i = 0; i < XN; i++) {
		char k[16];
		CK_RC(pbox_bt_upsert(x.big, k, mkey(k, i), &g, 8, 0), 0);
	}
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	g = 1;
	uint32_t p = 7919;
	for (uint32_t j = 0; j < XN; j++) {
		char k[16];
		uint32_t i = (uint32_t)(((uint64_t)j * p) % XN);
		CK_RC(pbox_txn_put(t, x.big, k, mkey(k, i), &g, 8), 0);
	}
	pthread_t th;
	REQ_EQ(pthread_create(&th, NULL, xsmall_main, &x), 0);
	struct timespec ts = { 0, 20 * 1000000 };
	nanosleep(&ts, NULL); /* let the small commits start */
	atomic_store(&x.big_running, true);
	CK_RC(pbox_txn_commit(t, 0), 0);
	atomic_store(&x.big_running, false);
	/* a few snapshots after it (bounded: 10 s) */
	uint64_t after = atomic_load(&x.snapshots) + 3;
	struct timespec ms = { 0, 1000000 };
	for (unsigned w = 0; w < 10000 && atomic_load(&x.snapshots) < after && !atomic_load(&x.bad); w++)
		nanosleep(&ms, NULL);
	atomic_store(&x.big_done, true);
	REQ_EQ(pthread_join(th, NULL), 0);
	REQ(!atomic_load(&x.bad), "%s", x.msg);
	/* a snapshot begun after the commit returned sees all of it */
	uint64_t gg[3] = { 0 };
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &t), 0);
	CK_RC(pbox_txn_scan(t, x.big, NULL, 0, NULL, 0, 0, xgen_fn, gg), 0);
	pbox_txn_abort(t);
	REQ(gg[0] == 1 && gg[1] == XN && !gg[2], "after the big commit: generation %llu, %llu keys",
	    (unsigned long long)gg[0], (unsigned long long)gg[1]);
	REQ(x.snapshots > 0, "no snapshot was taken");
	fprintf(stderr, "big beside small: %llu snapshots, %llu saw the old state while the big "
			"commit ran, %llu the new; at most %llu versions kept\n",
		(unsigned long long)atomic_load(&x.snapshots),
		(unsigned long long)x.saw_old_while_running, (unsigned long long)x.saw_new,
		(unsigned long long)x.maxv);
	bt_verify(x.big);
	pbox_bt_close(x.big);
	pbox_bt_close(x.small);
	env_fini(&e);
}
END_TEST

/* ---- readers ---------------------------------------------------------------------------- */

#define RK 3000u
#define RGENS (TXN_SANITIZED ? 8u : 30u)

typedef struct rshared {
	pbox_store *st;
	pbox_bt *bt;
	atomic_bool stop, bad;
	atomic_uint gen; /* the last generation committed */
	char msg[200];
	pthread_mutex_t mu;
} rshared;

typedef struct rscan {
	uint32_t gen, n, present;
	bool mixed;
} rscan;

/* Generation g: key i holds g unless (i + g) % 3 == 0, where it is deleted (re-put later). */
static bool rpresent(uint32_t i, uint32_t g)
{
	return g == 0 || (i + g) % 3 != 0;
}

static int rscan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	rscan *s = arg;
	(void)k;
	(void)kl;
	uint32_t g;
	if (vl != 64) {
		s->mixed = true;
		return SCAN_BAD;
	}
	memcpy(&g, v, 4);
	if (s->n && g != s->gen) {
		s->mixed = true;
		return SCAN_BAD;
	}
	s->gen = g;
	s->n++;
	return 0;
}

static void rfail(rshared *sh, const char *msg, unsigned a, unsigned b)
{
	pthread_mutex_lock(&sh->mu);
	if (!atomic_load(&sh->bad))
		snprintf(sh->msg, sizeof(sh->msg), "%s (%u, %u)", msg, a, b);
	atomic_store(&sh->bad, true);
	atomic_store(&sh->stop, true);
	pthread_mutex_unlock(&sh->mu);
}

static void *reader_main(void *arg)
{
	rshared *sh = arg;
	uint32_t last = 0;
	uintptr_t reads = 0;
	while (!atomic_load(&sh->stop)) {
		pbox_txn *t;
		if (pbox_txn_begin(sh->st, PBOX_TXN_READONLY, &t)) {
			rfail(sh, "begin failed", 0, 0);
			break;
		}
		rscan s = { 0 };
		int r = pbox_txn_scan(t, sh->bt, NULL, 0, NULL, 0, 0, rscan_fn, &s);
		if (r || s.mixed) {
			rfail(sh, "a snapshot scan saw two generations, or failed", s.gen, (unsigned)r);
		} else {
			uint32_t want = 0;
			for (uint32_t i = 0; i < RK; i++)
				want += rpresent(i, s.gen);
			if (s.n != want || s.gen < last)
				rfail(sh, "a snapshot saw a wrong count or went back", s.n, s.gen);
			last = s.gen;
			/* a point read in the same snapshot agrees */
			char k[16];
			uint32_t i = (uint32_t)(reads * 7919 % RK);
			size_t vl = 0;
			r = pbox_txn_get(t, sh->bt, k, mkey(k, i), NULL, 0, &vl); /* presence */
			bool present = r == PBOX_ETOOSMALL || r == 0;
			if (present != rpresent(i, s.gen))
				rfail(sh, "a snapshot get disagreed with its scan", i, s.gen);
		}
		pbox_txn_abort(t);
		reads++;
	}
	return (void *)reads;
}

START_TEST(test_readers)
{
	env e;
	env_init(&e, 4096, 256);
	rshared sh = { .st = e.st };
	pthread_mutex_init(&sh.mu, NULL);
	sh.bt = bt_create(e.st, "gen");
	uint8_t v[64] = { 0 };
	for (uint32_t i = 0; i < RK; i++) {
		char k[16];
		CK_RC(pbox_bt_upsert(sh.bt, k, mkey(k, i), v, sizeof(v), 0), 0);
	}
	pthread_t rd[2];
	for (int i = 0; i < 2; i++)
		REQ_EQ(pthread_create(&rd[i], NULL, reader_main, &sh), 0);
	pbox_rng rng;
	pbox_rng_seed(&rng, pbox_test_seed());
	uint32_t committed = 0;
	for (uint32_t g = 1; g <= RGENS && !atomic_load(&sh.stop); g++) {
		pbox_txn *t;
		CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
		uint32_t p = 1 + 2 * (uint32_t)pbox_rng_below(&rng, RK / 2); /* odd: RK is not */
		while (RK % p == 0 || p % 3 == 0 || p % 5 == 0)
			p += 2;
		memcpy(v, &g, 4);
		for (uint32_t j = 0; j < RK; j++) {
			uint32_t i = (uint32_t)(((uint64_t)j * p) % RK);
			char k[16];
			size_t kl = mkey(k, i);
			if (rpresent(i, g))
				CK_RC(pbox_txn_put(t, sh.bt, k, kl, v, sizeof(v)), 0);
			else
				CK_RC(pbox_txn_del(t, sh.bt, k, kl), 0);
		}
		CK_RC(pbox_txn_commit(t, 0), 0);
		committed = g;
	}
	atomic_store(&sh.stop, true);
	uintptr_t reads[2];
	for (int i = 0; i < 2; i++)
		REQ_EQ(pthread_join(rd[i], (void **)&reads[i]), 0);
	REQ(!atomic_load(&sh.bad), "%s", sh.msg);
	REQ_EQ(committed, RGENS);
	REQ(reads[0] > 0 && reads[1] > 0, "readers read %lu and %lu snapshots",
	    (unsigned long)reads[0], (unsigned long)reads[1]);
	fprintf(stderr, "readers: %u generations of %u keys; %lu + %lu snapshots read\n", RGENS,
		RK, (unsigned long)reads[0], (unsigned long)reads[1]);
	bt_verify(sh.bt);
	pbox_bt_close(sh.bt);
	pthread_mutex_destroy(&sh.mu);
	env_fini(&e);
}
END_TEST

/* ---- big ------------------------------------------------------------------------------ */

static size_t big_key(char *k, uint32_t i)
{
	return (size_t)sprintf(k, "big%08u", i);
}

static void big_val(uint8_t *v, uint32_t i)
{
	for (unsigned j = 0; j < 100; j++)
		v[j] = (uint8_t)(mix64(i) >> (8 * (j % 8))) ^ (uint8_t)j;
}

typedef struct big_chk {
	uint32_t next;
	bool bad;
} big_chk;

static int big_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	big_chk *c = arg;
	char want[32];
	uint8_t wv[100];
	size_t wl = big_key(want, c->next);
	big_val(wv, c->next);
	if (!beq(k, kl, want, wl) || !beq(v, vl, wv, 100)) {
		c->bad = true;
		return SCAN_BAD;
	}
	c->next++;
	return 0;
}

START_TEST(test_big_txn)
{
	uint32_t n = TXN_SANITIZED ? 50000 : pbox_test_scale() > 1 ? 1000000 : 200000;
	uint64_t budget = TXN_SANITIZED ? (2u << 20) : (8u << 20);
	env e;
	env_init(&e, 4096, budget / 4096);
	pbox_bt *bt = bt_create(e.st, "big");
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	char k[32];
	uint8_t v[100];
	uint32_t p = 7919; /* a permutation of 0..n-1: the puts arrive in random order */
	while (n % p == 0)
		p += 2;
	for (uint32_t j = 0; j < n; j++) {
		uint32_t i = (uint32_t)(((uint64_t)j * p) % n);
		big_val(v, i);
		CK_RC(pbox_txn_put(t, bt, k, big_key(k, i), v, sizeof(v)), 0);
	}
	REQ_EQ(pbox_txn_count(t), n);
	REQ_GT(pbox_txn_bytes(t), (uint64_t)n * 100);
	REQ_GT(pbox_txn_bytes(t), budget); /* the write set does not fit in the pool */
	fprintf(stderr, "big transaction: %u puts, %zu bytes of write set, pool %llu bytes\n", n,
		pbox_txn_bytes(t), (unsigned long long)budget);
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "big");
	big_chk c = { 0 };
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, big_fn, &c), 0);
	REQ(!c.bad && c.next == n, "after a reopen: %u keys in order before a difference (of %u)",
	    c.next, n);
	REQ_EQ(bt_verify(bt).keys, n);
	/* and through a snapshot */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &t), 0);
	c.next = 0;
	CK_RC(pbox_txn_scan(t, bt, NULL, 0, NULL, 0, 0, big_fn, &c), 0);
	REQ(!c.bad && c.next == n, "snapshot scan: %u keys of %u", c.next, n);
	pbox_txn_abort(t);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

START_TEST(test_batch_unlimited)
{
	env e;
	env_init(&e, 4096, 1024); /* a 4 MiB pool, 10 MB of values */
	pbox_bt *bt = bt_create(e.st, "t");
	pbox_bt_batch *b;
	CK_RC(pbox_bt_batch_create(&b), 0);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	static uint64_t keys[5000];
	static uint8_t v[2000];
	for (unsigned i = 0; i < 5000; i++) {
		keys[i] = pbox_rng_next(&r) | 1; /* distinct with near certainty; checked below */
		memset(v, (int)(keys[i] & 0xff), sizeof(v));
		CK_RC(pbox_bt_batch_put(b, bt, &keys[i], 8, v, sizeof(v)), 0);
	}
	REQ_EQ(pbox_bt_batch_count(b), 5000);
	CK_RC(pbox_bt_batch_commit(b, PBOX_BT_DURABLE), 0);
	for (unsigned i = 0; i < 5000; i++) {
		size_t vl;
		CK_RC(pbox_bt_lookup(bt, &keys[i], 8, vbuf, VBUF, &vl), 0);
		REQ(vl == sizeof(v) && vbuf[0] == (uint8_t)(keys[i] & 0xff) &&
			    vbuf[sizeof(v) - 1] == (uint8_t)(keys[i] & 0xff),
		    "batch key %u: wrong value", i);
	}
	uint64_t nk = bt_verify(bt).keys;
	REQ(nk <= 5000 && nk >= 4990, "%llu keys after the batch", (unsigned long long)nk);
	pbox_bt_batch_destroy(b);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn_install");
	TCase *tc = tcase_create("install");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_mixed);
	tcase_add_test(tc, test_dropped);
	tcase_add_test(tc, test_wset);
	tcase_add_test(tc, test_readers);
	tcase_add_test(tc, test_big_beside_small);
	suite_add_tcase(s, tc);
	tc = tcase_create("big");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_big_txn);
	tcase_add_test(tc, test_batch_unlimited);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
