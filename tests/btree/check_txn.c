/*
 * check_txn.c — transactions (pbox/txn.h): semantics, through the public API (black box).
 *
 *   view         read-your-writes in pbox_txn_get, pbox_txn_scan (both directions, ranges,
 *                early stop) and the transaction cursor (first/last/next/prev/seek/
 *                seek_prev/key/value), long values on overflow pages included, checked
 *                against an oracle; uncommitted writes are invisible to others; a cursor's
 *                moves are seeks in the view (it sees the transaction's later writes)
 *   snapshot     a snapshot never sees commits made after it began (transactions and the
 *                single-key upsert/insert/update/remove): no non-repeatable read, no
 *                phantom; keys deleted after it still show in its scans and cursors,
 *                keys inserted after it do not
 *   conflicts    lost update prevented (first committer wins; the loser gets PBOX_ECONFLICT
 *                from put or commit and from every call until it ends; nothing of it is
 *                applied); write skew allowed (snapshot isolation); a single-key operation
 *                on a key an open transaction wrote does not block and makes its commit
 *                conflict
 *   api          del of an absent key, del then get, put after del, read-only transactions,
 *                abort, bad arguments, a tree of another store, counts, a cursor used
 *                after its transaction ended (PBOX_ECLOSED)
 *   two trees    one transaction over two trees: a concurrent snapshot sees all or nothing
 *   versions     pbox_txn_get_stats: versions kept while an old snapshot is open under
 *                writes, none after it ends; the version cap retires old snapshots
 *                (PBOX_ESNAPSHOT)
 * Big transactions and how a commit installs its write set: check_txn_install.c.
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
#include <unistd.h>

#define VBUF (64u << 10)
static uint8_t vbuf[VBUF];

static size_t sk(char *k, const char *p, unsigned i)
{
	return (size_t)sprintf(k, "%s%03u", p, i);
}

/* Get through t and compare with want (NULL: want PBOX_ENOTFOUND). */
static void tget_eq(pbox_txn *t, pbox_bt *bt, const char *k, size_t kl, const void *want,
		    size_t wl, const char *what)
{
	size_t vl = 0;
	int rc = pbox_txn_get(t, bt, k, kl, vbuf, VBUF, &vl);
	if (!want) {
		REQ(rc == PBOX_ENOTFOUND, "%s: get %.*s = %s, want PBOX_ENOTFOUND", what, (int)kl, k,
		    pbox_status_name(rc));
		return;
	}
	REQ(rc == 0, "%s: get %.*s = %s, want OK", what, (int)kl, k, pbox_status_name(rc));
	REQ(beq(vbuf, vl, want, wl), "%s: get %.*s: value (len %zu) differs (want len %zu)", what,
	    (int)kl, k, vl, wl);
}

static void tgets(pbox_txn *t, pbox_bt *bt, const char *k, const char *want, const char *what)
{
	tget_eq(t, bt, k, strlen(k), want, want ? strlen(want) : 0, what);
}

static void lookup_eq(pbox_bt *bt, const char *k, const char *want, const char *what)
{
	size_t vl = 0;
	int rc = pbox_bt_lookup(bt, k, strlen(k), vbuf, VBUF, &vl);
	if (!want) {
		REQ(rc == PBOX_ENOTFOUND, "%s: lookup %s = %s, want PBOX_ENOTFOUND", what, k,
		    pbox_status_name(rc));
		return;
	}
	REQ(rc == 0, "%s: lookup %s = %s", what, k, pbox_status_name(rc));
	REQ(beq(vbuf, vl, want, strlen(want)), "%s: lookup %s = \"%.*s\", want \"%s\"", what, k,
	    (int)vl, (char *)vbuf, want);
}

static void long_val(uint8_t *b, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(mix64(tag * 1000003ull + i / 8) >> (8 * (i % 8)));
}

/* ---- checking a transaction's view against an oracle ---------------------------------- */

typedef struct vscan {
	const oracle *o;
	size_t lo, hi, calls, stop_at;
	bool rev;
	char msg[200];
} vscan;

static int vscan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	vscan *c = arg;
	c->calls++;
	if (c->calls > c->hi - c->lo) {
		snprintf(c->msg, sizeof(c->msg), "a pair beyond the view's %zu", c->hi - c->lo);
		return SCAN_BAD;
	}
	const kv *e = &c->o->a[c->rev ? c->hi - c->calls : c->lo + c->calls - 1];
	if (!beq(k, kl, e->k, e->kl) || !beq(v, vl, e->v, e->vl)) {
		snprintf(c->msg, sizeof(c->msg), "pair %zu is \"%.*s\" (value len %zu), want \"%.*s\" "
			 "(len %u)", c->calls - 1, (int)kl, (const char *)k, vl, (int)e->kl,
			 (const char *)e->k, e->vl);
		return SCAN_BAD;
	}
	return c->stop_at && c->calls == c->stop_at ? SCAN_STOP : 0;
}

static void vscan_check(pbox_txn *t, pbox_bt *bt, const oracle *o, const char *s, const char *e,
			bool rev, size_t stop_at, const char *what)
{
	size_t sl = s ? strlen(s) : 0, el = e ? strlen(e) : 0;
	vscan c = { .o = o, .rev = rev, .stop_at = stop_at };
	c.lo = s ? orc_lb(o, s, sl, NULL) : 0;
	c.hi = e ? orc_lb(o, e, el, NULL) : o->n;
	if (c.hi < c.lo)
		c.hi = c.lo;
	int rc = pbox_txn_scan(t, bt, s, sl, e, el, rev ? PBOX_BT_SCAN_REVERSE : 0, vscan_fn, &c);
	bool stopped = stop_at && stop_at <= c.hi - c.lo;
	REQ(!c.msg[0] && rc == (stopped ? SCAN_STOP : 0) &&
		    c.calls == (stopped ? stop_at : c.hi - c.lo),
	    "%s: scan [%s, %s)%s (stop at %zu) = %s after %zu pairs, the view has %zu: %s", what,
	    s ? s : "-", e ? e : "-", rev ? " reverse" : "", stop_at, pbox_status_name(rc), c.calls,
	    c.hi - c.lo, c.msg);
}

static void cur_is(pbox_bt_cursor *c, const oracle *o, size_t pos, const char *what)
{
	const void *k, *v;
	size_t kl, vl;
	CK_RC(pbox_bt_cursor_key(c, &k, &kl), 0);
	const kv *e = &o->a[pos];
	REQ(beq(k, kl, e->k, e->kl), "%s: cursor at \"%.*s\", want \"%.*s\"", what, (int)kl,
	    (const char *)k, (int)e->kl, (const char *)e->k);
	CK_RC(pbox_bt_cursor_value(c, &v, &vl), 0);
	REQ(beq(v, vl, e->v, e->vl), "%s: cursor value of \"%.*s\" (len %zu) differs, want len %u",
	    what, (int)kl, (const char *)k, vl, e->vl);
}

/* Everything a transaction can read of bt equals the oracle (keys in o are strings). */
static void check_view(pbox_txn *t, pbox_bt *bt, const oracle *o, const char *what)
{
	char k[64];
	for (size_t i = 0; i < o->n; i++) {
		tget_eq(t, bt, (const char *)o->a[i].k, o->a[i].kl, o->a[i].v, o->a[i].vl, what);
		memcpy(k, o->a[i].k, o->a[i].kl);
		memcpy(k + o->a[i].kl, "~", 2); /* not a key of the view (none ends with ~) */
		tget_eq(t, bt, k, o->a[i].kl + 1, NULL, 0, what);
	}
	for (int rev = 0; rev < 2; rev++) {
		vscan_check(t, bt, o, NULL, NULL, rev, 0, what);
		vscan_check(t, bt, o, NULL, NULL, rev, 3, what);
		vscan_check(t, bt, o, "k050", "k120", rev, 0, what);
		vscan_check(t, bt, o, "k0505", "k1205", rev, 0, what);
		vscan_check(t, bt, o, "big", NULL, rev, 0, what);
		vscan_check(t, bt, o, NULL, "k010", rev, 0, what);
		vscan_check(t, bt, o, "k090", "k090", rev, 0, what);
	}
	pbox_bt_cursor *c;
	CK_RC(pbox_txn_cursor_open(t, bt, &c), 0);
	CK_RC(pbox_bt_cursor_first(c), 0); /* o is never empty here */
	for (size_t i = 0; i < o->n; i++) {
		cur_is(c, o, i, what);
		CK_RC(pbox_bt_cursor_next(c), i + 1 < o->n ? 0 : PBOX_ENOTFOUND);
	}
	cur_is(c, o, o->n - 1, what); /* stays on the last key */
	CK_RC(pbox_bt_cursor_last(c), 0);
	for (size_t i = o->n; i-- > 0;) {
		cur_is(c, o, i, what);
		CK_RC(pbox_bt_cursor_prev(c), i > 0 ? 0 : PBOX_ENOTFOUND);
	}
	cur_is(c, o, 0, what);
	for (size_t i = 0; i < o->n; i++) {
		const kv *e = &o->a[i];
		CK_RC(pbox_bt_cursor_seek(c, e->k, e->kl), 0);
		cur_is(c, o, i, what);
		CK_RC(pbox_bt_cursor_seek_prev(c, e->k, e->kl), 0);
		cur_is(c, o, i, what);
		memcpy(k, e->k, e->kl);
		memcpy(k + e->kl, "~", 2); /* absent; after key and some of its extensions */
		size_t lb = orc_lb(o, k, e->kl + 1, NULL);
		int rc = pbox_bt_cursor_seek(c, k, e->kl + 1);
		REQ(rc == (lb < o->n ? 0 : PBOX_ENOTFOUND), "%s: seek %s = %s", what, k,
		    pbox_status_name(rc));
		if (lb < o->n)
			cur_is(c, o, lb, what);
		CK_RC(pbox_bt_cursor_seek_prev(c, k, e->kl + 1), 0);
		cur_is(c, o, lb - 1, what);
	}
	CK_RC(pbox_bt_cursor_seek(c, "zzz", 3), PBOX_ENOTFOUND);     /* after every key */
	CK_RC(pbox_bt_cursor_seek_prev(c, "a", 1), PBOX_ENOTFOUND); /* before every key */
	const void *kp;
	size_t kl;
	CK_RC(pbox_bt_cursor_key(c, &kp, &kl), PBOX_EINVAL); /* unpositioned */
	CK_RC(pbox_bt_cursor_next(c), PBOX_EINVAL);
	pbox_bt_cursor_close(c);
}

static void view_add(oracle *o, const char *k, const void *v, size_t vl)
{
	orc_set(o, k, strlen(k), v, vl);
}

static void view_del(oracle *o, const char *k)
{
	bool ex;
	size_t pos = orc_lb(o, k, strlen(k), &ex);
	REQ(ex, "oracle: %s absent", k);
	orc_del(o, pos);
}

/* A tree "t" of the even keys k000..k198 ("base-i") and big0 (a 20 KiB value). */
static pbox_bt *base_tree(env *e, oracle *o, uint8_t *big)
{
	pbox_bt *bt = bt_create(e->st, "t");
	char k[32], v[32];
	for (unsigned i = 0; i < 200; i += 2) {
		sk(k, "k", i);
		int vl = sprintf(v, "base-%u", i);
		CK_RC(pbox_bt_upsert(bt, k, strlen(k), v, (size_t)vl, 0), 0);
		view_add(o, k, v, (size_t)vl);
	}
	long_val(big, 20480, 1);
	CK_RC(pbox_bt_upsert(bt, "big0", 4, big, 20480, 0), 0);
	view_add(o, "big0", big, 20480);
	return bt;
}

START_TEST(test_view)
{
	env e;
	env_init(&e, 4096, 256);
	static uint8_t big[3][32768];
	oracle base = { 0 }, mine = { 0 };
	pbox_bt *bt = base_tree(&e, &base, big[0]);
	for (size_t i = 0; i < base.n; i++)
		orc_set(&mine, base.a[i].k, base.a[i].kl, base.a[i].v, base.a[i].vl);

	pbox_txn *t, *s;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	check_view(t, bt, &mine, "fresh transaction");
	char k[32], v[32];
	for (unsigned i = 1; i < 100; i += 2) { /* new keys between the committed ones */
		sk(k, "k", i);
		int vl = sprintf(v, "txn-%u", i);
		CK_RC(pbox_txn_put(t, bt, k, strlen(k), v, (size_t)vl), 0);
		view_add(&mine, k, v, (size_t)vl);
	}
	for (unsigned i = 10; i <= 50; i += 10) { /* overwrites, twice (the last one counts) */
		sk(k, "k", i);
		CK_RC(pbox_txn_put(t, bt, k, strlen(k), "first", 5), 0);
		CK_RC(pbox_txn_put(t, bt, k, strlen(k), "over", 4), 0);
		view_add(&mine, k, "over", 4);
	}
	for (unsigned i = 100; i <= 120; i += 2) { /* deletes of committed keys */
		sk(k, "k", i);
		CK_RC(pbox_txn_del(t, bt, k, strlen(k)), 0);
		view_del(&mine, k);
	}
	long_val(big[1], 20480, 2); /* a new long value, and a longer one replacing big0 */
	CK_RC(pbox_txn_put(t, bt, "big1", 4, big[1], 20480), 0);
	view_add(&mine, "big1", big[1], 20480);
	long_val(big[2], 30000, 3);
	CK_RC(pbox_txn_put(t, bt, "big0", 4, big[2], 30000), 0);
	view_add(&mine, "big0", big[2], 30000);
	size_t vl = 0;
	CK_RC(pbox_txn_get(t, bt, "big1", 4, vbuf, 10, &vl), PBOX_ETOOSMALL);
	REQ_EQ(vl, 20480);
	vl = 0;
	CK_RC(pbox_txn_get(t, bt, "k002", 4, vbuf, 2, &vl), PBOX_ETOOSMALL);
	REQ_EQ(vl, 6);
	/* 50 new + 5 overwritten + 11 deleted + big1 + big0 */
	REQ_EQ(pbox_txn_count(t), 50 + 5 + 11 + 2);
	REQ_GT(pbox_txn_bytes(t), 20480 + 30000);
	check_view(t, bt, &mine, "transaction after its writes");

	/* others see none of it before the commit */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &s), 0);
	check_view(s, bt, &base, "another snapshot before the commit");
	lookup_eq(bt, "k001", NULL, "lookup before the commit");
	lookup_eq(bt, "k100", "base-100", "lookup before the commit");

	/* a cursor's moves are seeks in the current view: a key the transaction adds or
	 * deletes after the cursor was positioned is seen by the next move */
	pbox_bt_cursor *c;
	CK_RC(pbox_txn_cursor_open(t, bt, &c), 0);
	CK_RC(pbox_bt_cursor_seek(c, "k010", 4), 0);
	CK_RC(pbox_txn_put(t, bt, "k010a", 5, "mid", 3), 0);
	view_add(&mine, "k010a", "mid", 3);
	CK_RC(pbox_bt_cursor_next(c), 0);
	const void *kp, *vp;
	size_t kl;
	CK_RC(pbox_bt_cursor_key(c, &kp, &kl), 0);
	REQ(beq(kp, kl, "k010a", 5), "next after a put between: \"%.*s\", want k010a", (int)kl,
	    (const char *)kp);
	CK_RC(pbox_txn_del(t, bt, "k011", 4), 0);
	view_del(&mine, "k011");
	CK_RC(pbox_bt_cursor_next(c), 0);
	CK_RC(pbox_bt_cursor_key(c, &kp, &kl), 0);
	REQ(beq(kp, kl, "k012", 4), "next after deleting the next key: \"%.*s\", want k012",
	    (int)kl, (const char *)kp);
	CK_RC(pbox_txn_del(t, bt, "k012", 4), 0); /* the cursor's own key */
	view_del(&mine, "k012");
	CK_RC(pbox_bt_cursor_prev(c), 0);
	CK_RC(pbox_bt_cursor_key(c, &kp, &kl), 0);
	REQ(beq(kp, kl, "k010a", 5), "prev from a deleted key: \"%.*s\", want k010a", (int)kl,
	    (const char *)kp);
	CK_RC(pbox_bt_cursor_seek(c, "big1", 4), 0);
	CK_RC(pbox_bt_cursor_value(c, &vp, &vl), 0);
	REQ(beq(vp, vl, big[1], 20480), "cursor: long value of big1 (len %zu) differs", vl);
	pbox_bt_cursor_close(c);
	check_view(t, bt, &mine, "transaction after cursor moves");

	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	check_view(s, bt, &base, "a snapshot begun before the commit, after it");
	CK_RC(pbox_txn_commit(s, 0), 0);
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &s), 0);
	check_view(s, bt, &mine, "a snapshot after the commit");
	pbox_txn_abort(s);
	check_all(bt, &mine, "the tree after the commit");
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "t");
	check_all(bt, &mine, "the tree after a reopen");
	pbox_bt_close(bt);
	orc_free(&base);
	orc_free(&mine);
	env_fini(&e);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------------------- */

/* A snapshot's scan of the whole tree as "key=value;..." */
typedef struct sbuf {
	char s[16384];
	size_t n;
} sbuf;

static int str_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	sbuf *b = arg;
	b->n += (size_t)snprintf(b->s + b->n, sizeof(b->s) - b->n, "%.*s=%.*s;", (int)kl,
				 (const char *)k, (int)vl, (const char *)v);
	return b->n + 1 >= sizeof(b->s) ? SCAN_BAD : 0;
}

static void snap_str(pbox_txn *t, pbox_bt *bt, bool rev, sbuf *b)
{
	b->n = 0;
	b->s[0] = 0;
	CK_RC(pbox_txn_scan(t, bt, NULL, 0, NULL, 0, rev ? PBOX_BT_SCAN_REVERSE : 0, str_fn, b), 0);
}

static void cursor_str(pbox_txn *t, pbox_bt *bt, sbuf *b)
{
	b->n = 0;
	b->s[0] = 0;
	pbox_bt_cursor *c;
	CK_RC(pbox_txn_cursor_open(t, bt, &c), 0);
	for (int rc = pbox_bt_cursor_first(c); rc != PBOX_ENOTFOUND; rc = pbox_bt_cursor_next(c)) {
		CK_RC(rc, 0);
		const void *k, *v;
		size_t kl, vl;
		CK_RC(pbox_bt_cursor_key(c, &k, &kl), 0);
		CK_RC(pbox_bt_cursor_value(c, &v, &vl), 0);
		REQ_EQ(str_fn(k, kl, v, vl, b), 0);
	}
	pbox_bt_cursor_close(c);
}

static void same_view(pbox_txn *t, pbox_bt *bt, const sbuf *fwd, const sbuf *rev,
		      const char *what)
{
	static sbuf b;
	snap_str(t, bt, false, &b);
	REQ(strcmp(b.s, fwd->s) == 0, "%s: the snapshot's scan changed:\n was %s\n now %s", what,
	    fwd->s, b.s);
	snap_str(t, bt, true, &b);
	REQ(strcmp(b.s, rev->s) == 0, "%s: the snapshot's reverse scan changed", what);
	cursor_str(t, bt, &b);
	REQ(strcmp(b.s, fwd->s) == 0, "%s: the snapshot's cursor differs from its scan:\n scan "
	    "%s\n cursor %s", what, fwd->s, b.s);
	tgets(t, bt, "k005", "v0", what);
	tgets(t, bt, "k006", "v0", what);
	tgets(t, bt, "k010", "v0", what);
	tgets(t, bt, "k011", "v0", what);
	tgets(t, bt, "k012", "v0", what);
	tgets(t, bt, "n1", NULL, what);
	tgets(t, bt, "n2", NULL, what);
	tgets(t, bt, "n3", NULL, what);
}

START_TEST(test_snapshot)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	char k[32];
	for (unsigned i = 0; i < 40; i++)
		CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), "v0", 2, 0), 0);
	pbox_txn *s1, *s2, *w, *s3;
	/* s1 reads at once; s2 begins now and reads only after the changes below: the
	 * snapshot is taken at begin, not at the first read */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &s1), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &s2), 0);
	static sbuf fwd, rev;
	snap_str(s1, bt, false, &fwd);
	snap_str(s1, bt, true, &rev);
	REQ_GT(fwd.n, 0);
	same_view(s1, bt, &fwd, &rev, "snapshot before any change");

	CK_RC(pbox_txn_begin(e.st, 0, &w), 0);
	CK_RC(pbox_txn_put(w, bt, "k005", 4, "w", 1), 0);
	CK_RC(pbox_txn_del(w, bt, "k010", 4), 0);
	CK_RC(pbox_txn_put(w, bt, "n1", 2, "w", 1), 0);
	CK_RC(pbox_txn_commit(w, 0), 0);
	same_view(s1, bt, &fwd, &rev, "after a transaction's commit");
	CK_RC(pbox_bt_upsert(bt, "k006", 4, "u", 1, 0), 0);
	same_view(s1, bt, &fwd, &rev, "after pbox_bt_upsert");
	CK_RC(pbox_bt_remove(bt, "k011", 4, PBOX_BT_DURABLE), 0);
	same_view(s1, bt, &fwd, &rev, "after pbox_bt_remove");
	CK_RC(pbox_bt_insert(bt, "n2", 2, "i", 1, 0), 0);
	same_view(s1, bt, &fwd, &rev, "after pbox_bt_insert");
	CK_RC(pbox_bt_update(bt, "k012", 4, "up", 2, 0), 0);
	same_view(s1, bt, &fwd, &rev, "after pbox_bt_update");
	CK_RC(pbox_bt_upsert(bt, "n3", 2, "u", 1, 0), 0);
	CK_RC(pbox_bt_remove(bt, "n3", 2, 0), 0); /* a key born and gone after the snapshot */
	same_view(s1, bt, &fwd, &rev, "after an insert and remove of a new key");
	same_view(s2, bt, &fwd, &rev, "a snapshot begun before the changes, first read after");

	/* a snapshot begun now sees all of them */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &s3), 0);
	tgets(s3, bt, "k005", "w", "new snapshot");
	tgets(s3, bt, "k006", "u", "new snapshot");
	tgets(s3, bt, "k010", NULL, "new snapshot");
	tgets(s3, bt, "k011", NULL, "new snapshot");
	tgets(s3, bt, "k012", "up", "new snapshot");
	tgets(s3, bt, "n1", "w", "new snapshot");
	tgets(s3, bt, "n2", "i", "new snapshot");
	tgets(s3, bt, "n3", NULL, "new snapshot");
	static sbuf now;
	snap_str(s3, bt, false, &now);
	REQ(strstr(now.s, "k010=") == NULL && strstr(now.s, "n1=w;") != NULL,
	    "new snapshot's scan: %s", now.s);
	CK_RC(pbox_txn_commit(s3, 0), 0);
	/* s2 is read-write: its own writes on top of its old snapshot */
	CK_RC(pbox_txn_put(s2, bt, "k020", 4, "s2", 2), 0);
	tgets(s2, bt, "k020", "s2", "s2 after its put");
	tgets(s2, bt, "k005", "v0", "s2 after its put");
	CK_RC(pbox_txn_commit(s2, 0), 0); /* k020 was not written by anyone else */
	lookup_eq(bt, "k020", "s2", "after s2's commit");
	same_view(s1, bt, &fwd, &rev, "after s2's commit");
	CK_RC(pbox_txn_commit(s1, 0), 0);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- conflicts ------------------------------------------------------------------------- */

static uint64_t get_u64(pbox_txn *t, pbox_bt *bt, const char *k)
{
	uint64_t x = 0;
	size_t vl = 0;
	CK_RC(pbox_txn_get(t, bt, k, strlen(k), &x, sizeof(x), &vl), 0);
	REQ_EQ(vl, 8);
	return x;
}

static void put_u64(pbox_txn *t, pbox_bt *bt, const char *k, uint64_t x)
{
	CK_RC(pbox_txn_put(t, bt, k, strlen(k), &x, sizeof(x)), 0);
}

/* Every call on a transaction that lost a conflict returns PBOX_ECONFLICT. */
static void all_conflict(pbox_txn *t, pbox_bt *bt)
{
	size_t vl;
	uint64_t x = 9;
	pbox_bt_cursor *c = NULL;
	CK_RC(pbox_txn_get(t, bt, "ctr", 3, vbuf, VBUF, &vl), PBOX_ECONFLICT);
	CK_RC(pbox_txn_get(t, bt, "zz", 2, vbuf, VBUF, &vl), PBOX_ECONFLICT);
	CK_RC(pbox_txn_put(t, bt, "zz", 2, &x, 8), PBOX_ECONFLICT);
	CK_RC(pbox_txn_del(t, bt, "other", 5), PBOX_ECONFLICT);
	CK_RC(pbox_txn_scan(t, bt, NULL, 0, NULL, 0, 0, count_fn, &x), PBOX_ECONFLICT);
	CK_RC(pbox_txn_cursor_open(t, bt, &c), PBOX_ECONFLICT);
}

START_TEST(test_lost_update)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	uint64_t zero = 0;
	CK_RC(pbox_bt_upsert(bt, "ctr", 3, &zero, 8, 0), 0);
	pbox_txn_stats st0, st1;
	pbox_txn_get_stats(e.st, &st0);

	/* both read-modify-write before either commits: the puts succeed, the first commit
	 * wins, the second conflicts and applies nothing */
	pbox_txn *a, *b;
	CK_RC(pbox_txn_begin(e.st, 0, &a), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &b), 0);
	put_u64(a, bt, "ctr", get_u64(a, bt, "ctr") + 1);
	put_u64(b, bt, "ctr", get_u64(b, bt, "ctr") + 1);
	put_u64(b, bt, "other", 7);
	CK_RC(pbox_txn_commit(a, 0), 0);
	CK_RC(pbox_txn_commit(b, 0), PBOX_ECONFLICT);
	lookup_eq(bt, "other", NULL, "the loser's other key");
	uint64_t x = 0;
	size_t vl;
	CK_RC(pbox_bt_lookup(bt, "ctr", 3, &x, 8, &vl), 0);
	REQ_EQ(x, 1);

	/* the winner committed before the loser's put: the put fails at once, and every call
	 * after it too, until the end (commit reports the conflict, nothing applied) */
	CK_RC(pbox_txn_begin(e.st, 0, &a), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &b), 0);
	x = get_u64(b, bt, "ctr");
	put_u64(b, bt, "other", 7);
	put_u64(a, bt, "ctr", get_u64(a, bt, "ctr") + 1);
	CK_RC(pbox_txn_commit(a, PBOX_BT_DURABLE), 0);
	uint64_t y = x + 1;
	CK_RC(pbox_txn_put(b, bt, "ctr", 3, &y, 8), PBOX_ECONFLICT);
	all_conflict(b, bt);
	CK_RC(pbox_txn_commit(b, 0), PBOX_ECONFLICT);
	lookup_eq(bt, "other", NULL, "the doomed transaction's earlier put");
	CK_RC(pbox_bt_lookup(bt, "ctr", 3, &x, 8, &vl), 0);
	REQ_EQ(x, 2);

	/* the same, ended by abort; a delete of a key written meanwhile conflicts too */
	CK_RC(pbox_txn_begin(e.st, 0, &a), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &b), 0);
	put_u64(a, bt, "ctr", 3);
	CK_RC(pbox_txn_commit(a, 0), 0);
	CK_RC(pbox_txn_del(b, bt, "ctr", 3), PBOX_ECONFLICT);
	all_conflict(b, bt);
	pbox_txn_abort(b);

	/* the retry loop of the header converges: each of 50 rounds has an interfering commit
	 * between the read and the write of the first attempt */
	for (unsigned i = 0; i < 50; i++) {
		for (unsigned attempt = 0;; attempt++) {
			REQ(attempt < 3, "round %u: no progress after %u attempts", i, attempt);
			CK_RC(pbox_txn_begin(e.st, 0, &a), 0);
			x = get_u64(a, bt, "ctr");
			if (attempt == 0) { /* someone else increments meanwhile */
				CK_RC(pbox_txn_begin(e.st, 0, &b), 0);
				put_u64(b, bt, "ctr", get_u64(b, bt, "ctr") + 1);
				CK_RC(pbox_txn_commit(b, 0), 0);
			}
			y = x + 1;
			int rc = pbox_txn_put(a, bt, "ctr", 3, &y, 8);
			if (!rc) {
				rc = pbox_txn_commit(a, 0);
				a = NULL;
			}
			pbox_txn_abort(a);
			if (rc == PBOX_ECONFLICT)
				continue;
			CK_RC(rc, 0);
			break;
		}
	}
	CK_RC(pbox_bt_lookup(bt, "ctr", 3, &x, 8, &vl), 0);
	REQ_EQ(x, 3 + 100); /* every increment counted once */
	pbox_txn_get_stats(e.st, &st1);
	REQ_GE(st1.conflicts - st0.conflicts, 3 + 50);
	REQ_GE(st1.commits - st0.commits, 3 + 100);
	REQ_GE(st1.aborts - st0.aborts, 1);
	REQ_EQ(st1.active, 0);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* Write skew: two on-call doctors x and y, each transaction checks that the other is on call
 * and takes itself off. Serializable isolation would refuse one of them; snapshot isolation
 * (pbox/txn.h: "write skew ... is allowed") lets both commit because their write sets are
 * disjoint, leaving nobody on call. The test pins that documented behaviour. */
START_TEST(test_write_skew)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	uint64_t one = 1;
	CK_RC(pbox_bt_upsert(bt, "x", 1, &one, 8, 0), 0);
	CK_RC(pbox_bt_upsert(bt, "y", 1, &one, 8, 0), 0);
	pbox_txn *a, *b;
	CK_RC(pbox_txn_begin(e.st, 0, &a), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &b), 0);
	REQ_EQ(get_u64(a, bt, "x") + get_u64(a, bt, "y"), 2);
	REQ_EQ(get_u64(b, bt, "x") + get_u64(b, bt, "y"), 2);
	put_u64(a, bt, "x", 0);
	put_u64(b, bt, "y", 0);
	CK_RC(pbox_txn_commit(a, 0), 0);
	CK_RC(pbox_txn_commit(b, 0), 0);
	uint64_t x = 9, y = 9;
	size_t vl;
	CK_RC(pbox_bt_lookup(bt, "x", 1, &x, 8, &vl), 0);
	CK_RC(pbox_bt_lookup(bt, "y", 1, &y, 8, &vl), 0);
	REQ(x == 0 && y == 0, "write skew: x %llu y %llu", (unsigned long long)x,
	    (unsigned long long)y);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- a single-key operation against an open transaction's key -------------------------- */

typedef struct sk_op {
	pbox_bt *bt;
	const char *key;
	int kind; /* 0 upsert, 1 remove, 2 insert */
	atomic_int done;
	int rc;
} sk_op;

static void *sk_main(void *arg)
{
	sk_op *o = arg;
	size_t kl = strlen(o->key);
	o->rc = o->kind == 0 ? pbox_bt_upsert(o->bt, o->key, kl, "single", 6, 0) :
		o->kind == 1 ? pbox_bt_remove(o->bt, o->key, kl, 0) :
			       pbox_bt_insert(o->bt, o->key, kl, "single", 6, 0);
	atomic_store(&o->done, 1);
	return NULL;
}

/* Run the single-key operation on another thread: it must finish within 10 s although the
 * transaction that wrote the key is open. */
static int sk_run(pbox_bt *bt, const char *key, int kind)
{
	static sk_op o;
	memset(&o, 0, sizeof(o));
	o.bt = bt;
	o.key = key;
	o.kind = kind;
	pthread_t th;
	REQ_T(pthread_create(&th, NULL, sk_main, &o) == 0);
	for (unsigned ms = 0; !atomic_load(&o.done); ms++) {
		REQ(ms < 10000, "a single-key operation on %s blocks behind an open transaction "
		    "(waited 10 s)", key);
		usleep(1000);
	}
	pthread_join(th, NULL);
	return o.rc;
}

START_TEST(test_single_key_vs_txn)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	CK_RC(pbox_bt_upsert(bt, "a", 1, "0", 1, 0), 0);
	CK_RC(pbox_bt_upsert(bt, "b", 1, "0", 1, 0), 0);
	const char *keys[3] = { "a", "b", "new" };
	for (int kind = 0; kind < 3; kind++) {
		pbox_txn *t;
		CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
		CK_RC(pbox_txn_put(t, bt, keys[kind], strlen(keys[kind]), "txn", 3), 0);
		CK_RC(pbox_txn_put(t, bt, "side", 4, "txn", 3), 0);
		CK_RC(sk_run(bt, keys[kind], kind), 0);
		CK_RC(pbox_txn_commit(t, 0), PBOX_ECONFLICT);
		lookup_eq(bt, keys[kind], kind == 1 ? NULL : "single", "after the single-key op");
		lookup_eq(bt, "side", NULL, "the conflicting transaction's other key");
	}
	/* a single-key change after the transaction began, then its put: conflict at once */
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	CK_RC(pbox_bt_upsert(bt, "a", 1, "s2", 2, 0), 0);
	CK_RC(pbox_txn_put(t, bt, "a", 1, "txn", 3), PBOX_ECONFLICT);
	CK_RC(pbox_txn_commit(t, 0), PBOX_ECONFLICT);
	lookup_eq(bt, "a", "s2", "after the conflict");
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- the API's small rules ------------------------------------------------------------- */

START_TEST(test_api)
{
	env e, e2;
	env_init(&e, 4096, 256);
	env_init(&e2, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t"), *other = bt_create(e2.st, "t");
	CK_RC(pbox_bt_upsert(bt, "p", 1, "1", 1, 0), 0);
	pbox_txn *t = NULL;
	CK_RC(pbox_txn_begin(e.st, 0x80, &t), PBOX_EINVAL);
	REQ_T(t == NULL);

	/* del of an absent key: ENOTFOUND, nothing recorded; del then get; put after del */
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	CK_RC(pbox_txn_del(t, bt, "absent", 6), PBOX_ENOTFOUND);
	REQ_EQ(pbox_txn_count(t), 0);
	CK_RC(pbox_txn_del(t, bt, "p", 1), 0);
	tgets(t, bt, "p", NULL, "del then get");
	CK_RC(pbox_txn_del(t, bt, "p", 1), PBOX_ENOTFOUND);
	CK_RC(pbox_txn_put(t, bt, "q", 1, "q", 1), 0);
	CK_RC(pbox_txn_del(t, bt, "q", 1), 0); /* its own put */
	tgets(t, bt, "q", NULL, "put, del, get");
	CK_RC(pbox_txn_put(t, bt, "p", 1, "2", 1), 0);
	tgets(t, bt, "p", "2", "put after del");
	/* bad arguments */
	size_t cnt = pbox_txn_count(t), kmax = pbox_bt_key_max(e.st);
	size_t vmax = pbox_bt_value_max(e.st, 1);
	char *bigk = calloc(1, kmax + 2), *bigv = calloc(1, vmax + 1);
	REQ_T(bigk && bigv);
	CK_RC(pbox_txn_put(t, bt, bigk, kmax + 1, "v", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_put(t, bt, NULL, 3, "v", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_put(t, NULL, "k", 1, "v", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_put(t, bt, "k", 1, bigv, vmax + 1), PBOX_EINVAL);
	/* a tree of another store */
	size_t vl;
	pbox_bt_cursor *c = NULL;
	uint64_t n = 0;
	CK_RC(pbox_txn_put(t, other, "k", 1, "v", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_del(t, other, "k", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_get(t, other, "k", 1, vbuf, VBUF, &vl), PBOX_EINVAL);
	CK_RC(pbox_txn_scan(t, other, NULL, 0, NULL, 0, 0, count_fn, &n), PBOX_EINVAL);
	CK_RC(pbox_txn_cursor_open(t, other, &c), PBOX_EINVAL);
	REQ_T(c == NULL);
	/* bad arguments record nothing and leave the transaction usable */
	REQ_EQ(pbox_txn_count(t), cnt);
	CK_RC(pbox_txn_commit(t, 0), 0);
	lookup_eq(bt, "p", "2", "after the commit");
	lookup_eq(bt, "q", NULL, "after the commit");
	lookup_eq(bt, "absent", NULL, "after the commit");
	CK_RC(pbox_bt_lookup(other, "k", 1, vbuf, VBUF, &vl), PBOX_ENOTFOUND);

	/* read-only */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &t), 0);
	CK_RC(pbox_txn_put(t, bt, "r", 1, "v", 1), PBOX_EINVAL);
	CK_RC(pbox_txn_del(t, bt, "p", 1), PBOX_EINVAL);
	tgets(t, bt, "p", "2", "read-only");
	CK_RC(pbox_txn_commit(t, 0), 0);
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &t), 0);
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0); /* empty read-write */
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	lookup_eq(bt, "r", NULL, "read-only put");

	/* abort discards */
	pbox_txn_stats s0, s1;
	pbox_txn_get_stats(e.st, &s0);
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	CK_RC(pbox_txn_put(t, bt, "ab", 2, "v", 1), 0);
	CK_RC(pbox_txn_del(t, bt, "p", 1), 0);
	pbox_txn_get_stats(e.st, &s1);
	REQ_EQ(s1.active, s0.active + 1);
	pbox_txn_abort(t);
	pbox_txn_abort(NULL);
	pbox_txn_get_stats(e.st, &s1);
	REQ_EQ(s1.aborts, s0.aborts + 1);
	REQ_EQ(s1.active, s0.active);
	lookup_eq(bt, "ab", NULL, "after abort");
	lookup_eq(bt, "p", "2", "after abort");

	/* a cursor used after its transaction ended: PBOX_ECLOSED, then it can be closed */
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
	CK_RC(pbox_txn_cursor_open(t, bt, &c), 0);
	CK_RC(pbox_bt_cursor_first(c), 0);
	CK_RC(pbox_txn_commit(t, 0), 0);
	const void *kp;
	size_t kl;
	CK_RC(pbox_bt_cursor_next(c), PBOX_ECLOSED);
	CK_RC(pbox_bt_cursor_first(c), PBOX_ECLOSED);
	CK_RC(pbox_bt_cursor_key(c, &kp, &kl), PBOX_ECLOSED);
	pbox_bt_cursor_close(c);
	free(bigk);
	free(bigv);
	pbox_bt_close(bt);
	pbox_bt_close(other);
	env_fini(&e);
	env_fini(&e2);
}
END_TEST

/* ---- one transaction over two trees, read concurrently ------------------------------- */

#define TT_KEYS 60

typedef struct tt {
	pbox_store *st;
	pbox_bt *a, *b;
	atomic_bool *stop, *bad;
	uint64_t snaps, nonzero; /* this reader's */
	char msg[256];
} tt;

static int tt_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	uint64_t *g = arg, x;
	(void)k;
	if (vl != 8 || kl == 0)
		return SCAN_BAD;
	memcpy(&x, v, 8);
	if (*g == UINT64_MAX)
		*g = x;
	return x == *g ? 0 : SCAN_BAD;
}

static void *tt_reader(void *arg)
{
	tt *r = arg;
	uint64_t last = 0;
	while (!atomic_load(r->stop) && !r->msg[0]) {
		pbox_txn *t;
		int rc = pbox_txn_begin(r->st, PBOX_TXN_READONLY, &t);
		if (rc) {
			snprintf(r->msg, sizeof(r->msg), "begin: %s", pbox_status_name(rc));
			break;
		}
		uint64_t ga = UINT64_MAX, gb = UINT64_MAX;
		int ra = pbox_txn_scan(t, r->a, NULL, 0, NULL, 0, 0, tt_fn, &ga);
		int rb = pbox_txn_scan(t, r->b, NULL, 0, NULL, 0, PBOX_BT_SCAN_REVERSE, tt_fn, &gb);
		uint64_t x = 0;
		size_t vl = 0;
		int rg = pbox_txn_get(t, r->a, "x000", 4, &x, 8, &vl);
		pbox_txn_abort(t);
		if (ra || rb || rg)
			snprintf(r->msg, sizeof(r->msg), "snapshot %llu: scans %s / %s, get %s (a part "
				 "of one commit seen?)", (unsigned long long)r->snaps,
				 pbox_status_name(ra), pbox_status_name(rb), pbox_status_name(rg));
		else if (ga != gb || x != ga)
			snprintf(r->msg, sizeof(r->msg), "snapshot %llu sees generation %llu in tree a "
				 "and %llu in tree b (get: %llu)", (unsigned long long)r->snaps,
				 (unsigned long long)ga, (unsigned long long)gb, (unsigned long long)x);
		else if (ga < last)
			snprintf(r->msg, sizeof(r->msg), "a later snapshot sees generation %llu after "
				 "%llu", (unsigned long long)ga, (unsigned long long)last);
		last = ga;
		r->snaps++;
		r->nonzero += ga != 0;
	}
	if (r->msg[0])
		atomic_store(r->bad, true);
	return NULL;
}

START_TEST(test_two_trees)
{
	env e;
	env_init(&e, 4096, 256);
	static tt r[2];
	atomic_bool stop, bad;
	atomic_init(&stop, false);
	atomic_init(&bad, false);
	pbox_bt *a = bt_create(e.st, "a"), *b = bt_create(e.st, "b");
	char k[16];
	uint64_t g = 0;
	for (unsigned i = 0; i < TT_KEYS; i++) {
		CK_RC(pbox_bt_upsert(a, k, sk(k, "x", i), &g, 8, 0), 0);
		CK_RC(pbox_bt_upsert(b, k, sk(k, "x", i), &g, 8, 0), 0);
	}
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].st = e.st;
		r[i].a = a;
		r[i].b = b;
		r[i].stop = &stop;
		r[i].bad = &bad;
		REQ_T(pthread_create(&th[i], NULL, tt_reader, &r[i]) == 0);
	}
	unsigned gens = TXN_SANITIZED ? 150 : 600;
	for (g = 1; g <= gens && !atomic_load(&bad); g++) {
		pbox_txn *t;
		CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
		for (unsigned i = 0; i < TT_KEYS; i++) {
			CK_RC(pbox_txn_put(t, a, k, sk(k, "x", i), &g, 8), 0);
			CK_RC(pbox_txn_put(t, b, k, sk(k, "x", i), &g, 8), 0);
		}
		CK_RC(pbox_txn_commit(t, g % 16 == 0 ? PBOX_BT_DURABLE : 0), 0);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		REQ(!r[i].msg[0], "two trees, reader %d: %s", i, r[i].msg);
		REQ_GT(r[i].snaps, 0);
	}
	fprintf(stderr, "two trees: %u commits, %llu + %llu snapshots read (%llu + %llu after "
			"the first commit)\n", gens, (unsigned long long)r[0].snaps,
		(unsigned long long)r[1].snaps, (unsigned long long)r[0].nonzero,
		(unsigned long long)r[1].nonzero);
	pbox_bt_close(a);
	pbox_bt_close(b);
	env_fini(&e);
}
END_TEST

/* ---- versions ------------------------------------------------------------------------- */

START_TEST(test_versions)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	char k[16], v[100];
	memset(v, 'a', sizeof(v));
	for (unsigned i = 0; i < 100; i++)
		CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), v, sizeof(v), 0), 0);
	pbox_txn_stats s;
	pbox_txn_get_stats(e.st, &s);
	REQ_EQ(s.versions, 0);
	REQ_EQ(s.active, 0);
	REQ_EQ(s.oldest_snapshot_ms, 0);
	pbox_txn *old;
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &old), 0);
	usleep(60 * 1000);
	memset(v, 'b', sizeof(v));
	for (unsigned i = 0; i < 100; i++) {
		if (i % 2) {
			CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), v, sizeof(v), 0), 0);
		} else {
			pbox_txn *t;
			CK_RC(pbox_txn_begin(e.st, 0, &t), 0);
			CK_RC(pbox_txn_put(t, bt, k, sk(k, "k", i), v, sizeof(v)), 0);
			CK_RC(pbox_txn_commit(t, 0), 0);
		}
	}
	pbox_txn_get_stats(e.st, &s);
	REQ_EQ(s.active, 1);
	REQ(s.versions >= 100 && s.version_bytes >= 100 * sizeof(v),
	    "an old snapshot under 100 writes: %llu versions, %llu bytes",
	    (unsigned long long)s.versions, (unsigned long long)s.version_bytes);
	REQ_GE(s.oldest_snapshot_ms, 50);
	memset(v, 'a', sizeof(v));
	tget_eq(old, bt, "k007", 4, v, sizeof(v), "old snapshot");
	CK_RC(pbox_txn_commit(old, 0), 0);
	pbox_txn_get_stats(e.st, &s);
	REQ(s.versions == 0 && s.version_bytes == 0 && s.active == 0 && s.oldest_snapshot_ms == 0,
	    "after the last snapshot ended: %llu versions (%llu bytes), %llu active, oldest %llu "
	    "ms", (unsigned long long)s.versions, (unsigned long long)s.version_bytes,
	    (unsigned long long)s.active, (unsigned long long)s.oldest_snapshot_ms);
	/* no snapshot open: writes keep no versions */
	for (unsigned i = 0; i < 100; i++)
		CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), v, sizeof(v), 0), 0);
	pbox_txn_get_stats(e.st, &s);
	REQ_EQ(s.versions, 0);

	/* the cap: an old snapshot under many writes is retired. 1000 distinct keys each
	 * replaced once: the old snapshot needs every old value (about 190 KB of versions by
	 * the header's estimate), three times the cap */
	const uint64_t cap = 64u << 10;
	for (unsigned i = 100; i < 1000; i++)
		CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), v, sizeof(v), 0), 0);
	CK_RC(pbox_txn_set_version_cap(e.st, cap), 0);
	pbox_txn_stats s0;
	pbox_txn_get_stats(e.st, &s0);
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &old), 0);
	tget_eq(old, bt, "k007", 4, v, sizeof(v), "old snapshot under the cap");
	v[0] = 'c';
	for (unsigned i = 0; i < 1000; i++) {
		CK_RC(pbox_bt_upsert(bt, k, sk(k, "k", i), v, sizeof(v), 0), 0);
		pbox_txn_get_stats(e.st, &s);
		REQ(s.version_bytes <= cap, "after %u writes: %llu version bytes over the cap %llu",
		    i + 1, (unsigned long long)s.version_bytes, (unsigned long long)cap);
	}
	size_t vl;
	CK_RC(pbox_txn_get(old, bt, "k007", 4, vbuf, VBUF, &vl), PBOX_ESNAPSHOT);
	uint64_t n = 0;
	CK_RC(pbox_txn_scan(old, bt, NULL, 0, NULL, 0, 0, count_fn, &n), PBOX_ESNAPSHOT);
	pbox_txn_get_stats(e.st, &s);
	REQ_GT(s.retired, s0.retired);
	pbox_txn_abort(old);
	pbox_txn_get_stats(e.st, &s);
	REQ_EQ(s.versions, 0);
	REQ_EQ(s.active, 0);
	/* a snapshot begun now works */
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &old), 0);
	tget_eq(old, bt, "k007", 4, v, sizeof(v), "new snapshot after the retirement");
	pbox_txn_abort(old);
	CK_RC(pbox_txn_set_version_cap(e.st, 0), 0);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn");
	TCase *tc = tcase_create("semantics");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_view);
	tcase_add_test(tc, test_snapshot);
	tcase_add_test(tc, test_lost_update);
	tcase_add_test(tc, test_write_skew);
	tcase_add_test(tc, test_single_key_vs_txn);
	tcase_add_test(tc, test_api);
	tcase_add_test(tc, test_two_trees);
	tcase_add_test(tc, test_versions);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
