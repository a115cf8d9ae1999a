/*
 * check_txn_bank.c — transactions under concurrency: the bank invariant (pbox/txn.h).
 *
 * 64 accounts hold 8-byte balances summing to a constant. Two writer threads move money in
 * read-write transactions (get both balances, put both; now and then a transaction that
 * moves one unit from each of 8 accounts into a ninth), retrying on PBOX_ECONFLICT; one
 * thread makes single-key changes beside them (pbox_bt_upsert/remove in another tree and of
 * a non-account key of the bank tree); two reader threads open read-only snapshots and sum
 * every balance three ways — pbox_txn_get, pbox_txn_scan (either direction) and a
 * transaction cursor (either direction) — each sum must be the constant and the three must
 * agree account by account. A small pool and frequent background checkpoints run beside
 * them. The run lasts 2 s x PBOX_STRESS_SCALE (8 s under ThreadSanitizer: time-bounded,
 * so it stays quick); it asserts that every writer committed and every reader read (counts, not rates:
 * conflicts are reported, and checked against the store's statistics, but not required).
 * Afterwards: the sum outside transactions, the tree verifies, no transaction or version is
 * left, and the sum survives a reopen. test_no_false_conflicts: two threads each updating only
 * their own key, fast then durable: not one conflict.
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

/* ThreadSanitizer slows the threads about tenfold: it runs longer, to see as many
 * interleavings (still a bound on time, not a gate on counts) */
#if defined(__SANITIZE_THREAD__)
#define RUN_MS 8000u
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RUN_MS 8000u
#endif
#endif
#ifndef RUN_MS
#define RUN_MS 2000u
#endif

#define ACCTS 64
#define START 1000
#define TOTAL ((int64_t)ACCTS * START)

typedef struct shared {
	pbox_store *st;
	pbox_bt *bank, *other;
	atomic_bool stop, bad;
} shared;

typedef struct worker {
	shared *sh;
	unsigned id;
	pbox_rng r;
	uint64_t commits, conflicts, reads, ops;
	char msg[320];
} worker;

static size_t acct_key(char *k, unsigned i)
{
	return (size_t)sprintf(k, "acct%03u", i);
}

/* Record the thread's first failure (rc 0: a wrong result, described by more). */
static void wfail(worker *w, const char *what, int rc, const char *more)
{
	if (w->msg[0])
		return;
	snprintf(w->msg, sizeof(w->msg), "%s %u: %s%s%s%s", w->id < 2 ? "writer" : w->id == 2 ?
		 "single-key writer" : "reader", w->id, what, rc ? " = " : "",
		 rc ? pbox_status_name(rc) : "", more ? more : "");
	atomic_store(&w->sh->bad, true);
}

static bool running(worker *w)
{
	return !atomic_load(&w->sh->stop) && !atomic_load(&w->sh->bad);
}

/* The balance of account i in t's view: through get, or (via_cursor) a cursor seek. */
static int balance(pbox_txn *t, pbox_bt *bt, unsigned i, bool via_cursor, int64_t *out)
{
	char k[16];
	size_t kl = acct_key(k, i), vl = 0;
	if (!via_cursor) {
		int rc = pbox_txn_get(t, bt, k, kl, out, 8, &vl);
		return rc ? rc : vl == 8 ? 0 : PBOX_ECORRUPT;
	}
	pbox_bt_cursor *c;
	int rc = pbox_txn_cursor_open(t, bt, &c);
	if (rc)
		return rc;
	rc = pbox_bt_cursor_seek(c, k, kl);
	const void *kp, *vp;
	size_t kpl;
	if (!rc)
		rc = pbox_bt_cursor_key(c, &kp, &kpl);
	if (!rc && !beq(kp, kpl, k, kl))
		rc = PBOX_ENOTFOUND;
	if (!rc)
		rc = pbox_bt_cursor_value(c, &vp, &vl);
	if (!rc && vl != 8)
		rc = PBOX_ECORRUPT;
	if (!rc)
		memcpy(out, vp, 8);
	pbox_bt_cursor_close(c);
	return rc;
}

/* One attempt of a transfer; 0, PBOX_ECONFLICT (retry) or an error (in w->msg). */
static int transfer_once(worker *w, const unsigned *from, unsigned nfrom, unsigned to,
			 int64_t amount, unsigned flags)
{
	shared *sh = w->sh;
	pbox_txn *t;
	int rc = pbox_txn_begin(sh->st, 0, &t);
	if (rc) {
		wfail(w, "begin", rc, NULL);
		return rc;
	}
	bool cur = w->id == 1 && pbox_rng_below(&w->r, 2);
	int64_t moved = 0, bal;
	for (unsigned j = 0; j < nfrom && !rc; j++) {
		rc = balance(t, sh->bank, from[j], cur, &bal);
		if (rc)
			break;
		if (bal < 0) {
			rc = PBOX_ECORRUPT;
			wfail(w, "a negative balance", rc, NULL);
			break;
		}
		int64_t a = bal < amount ? bal : amount;
		bal -= a;
		moved += a;
		char k[16];
		rc = pbox_txn_put(t, sh->bank, k, acct_key(k, from[j]), &bal, 8);
	}
	if (!rc)
		rc = balance(t, sh->bank, to, cur, &bal);
	if (!rc) {
		bal += moved;
		char k[16];
		rc = pbox_txn_put(t, sh->bank, k, acct_key(k, to), &bal, 8);
	}
	if (!rc) {
		rc = pbox_txn_commit(t, flags);
		t = NULL;
	}
	pbox_txn_abort(t);
	if (rc && rc != PBOX_ECONFLICT)
		wfail(w, "transfer", rc, NULL);
	return rc;
}

static void *writer_main(void *arg)
{
	worker *w = arg;
	while (running(w)) {
		unsigned from[8], nfrom = 1, to;
		int64_t amount;
		if (pbox_rng_below(&w->r, 20) == 0) { /* one unit from 8 distinct accounts */
			nfrom = 8;
			unsigned base = (unsigned)pbox_rng_below(&w->r, ACCTS);
			for (unsigned j = 0; j < 8; j++)
				from[j] = (base + j * 7) % ACCTS;
			to = (base + 60) % ACCTS; /* 60 is no multiple of 7 below 64 */
			amount = 1;
		} else {
			from[0] = (unsigned)pbox_rng_below(&w->r, ACCTS);
			to = (from[0] + 1 + (unsigned)pbox_rng_below(&w->r, ACCTS - 1)) % ACCTS;
			amount = 1 + (int64_t)pbox_rng_below(&w->r, 300);
		}
		unsigned flags = pbox_rng_below(&w->r, 8) == 0 ? PBOX_BT_DURABLE : 0;
		for (;;) {
			int rc = transfer_once(w, from, nfrom, to, amount, flags);
			if (rc == 0) {
				w->commits++;
				break;
			}
			if (rc != PBOX_ECONFLICT)
				return NULL;
			w->conflicts++;
			if (!running(w))
				break;
		}
	}
	return NULL;
}

static void *single_main(void *arg)
{
	worker *w = arg;
	shared *sh = w->sh;
	while (running(w)) {
		char k[16], v[40];
		size_t kl = (size_t)sprintf(k, "o%04u", (unsigned)pbox_rng_below(&w->r, 2000));
		int vl = sprintf(v, "single-%llu", (unsigned long long)w->ops);
		int rc;
		unsigned c = (unsigned)pbox_rng_below(&w->r, 8);
		if (c == 0) {
			rc = pbox_bt_upsert(sh->bank, "note", 4, v, (size_t)vl, 0);
		} else if (c == 1) {
			rc = pbox_bt_remove(sh->other, k, kl, 0);
			if (rc == PBOX_ENOTFOUND)
				rc = 0;
		} else {
			rc = pbox_bt_upsert(sh->other, k, kl, v, (size_t)vl, c == 2 ? PBOX_BT_DURABLE : 0);
		}
		if (rc) {
			wfail(w, "single-key operation", rc, NULL);
			return NULL;
		}
		w->ops++;
	}
	return NULL;
}

typedef struct sum_ctx {
	int64_t sum, bal[ACCTS];
	unsigned n;
	bool bad;
} sum_ctx;

/* Add one pair to c if it is an account ("acctNNN"; not the fillers "acctNNN.j", not
 * "note"). */
static void sum_one(sum_ctx *c, const void *k, size_t kl, const void *v, size_t vl)
{
	const char *p = k;
	if (kl != 7 || memcmp(p, "acct", 4) != 0)
		return;
	unsigned i = (unsigned)(p[4] - '0') * 100 + (unsigned)(p[5] - '0') * 10 +
		     (unsigned)(p[6] - '0');
	if (i >= ACCTS || vl != 8) {
		c->bad = true;
		return;
	}
	memcpy(&c->bal[i], v, 8);
	c->sum += c->bal[i];
	c->n++;
}

static int sum_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	sum_one(arg, k, kl, v, vl);
	return 0;
}

/* Sum the balances of one snapshot three ways; 0 or an error (in w->msg). */
static int read_once(worker *w)
{
	shared *sh = w->sh;
	pbox_txn *t;
	int rc = pbox_txn_begin(sh->st, PBOX_TXN_READONLY, &t);
	if (rc) {
		wfail(w, "begin", rc, NULL);
		return rc;
	}
	bool rev = pbox_rng_below(&w->r, 2);
	sum_ctx g = { 0 }, s = { 0 }, c = { 0 };
	const char *how = "get";
	for (unsigned i = 0; i < ACCTS && !rc; i++) {
		int64_t b;
		rc = balance(t, sh->bank, i, false, &b);
		if (!rc) {
			char k[16];
			sum_one(&g, k, acct_key(k, i), &b, 8);
		}
	}
	if (!rc) {
		how = rev ? "reverse scan" : "scan";
		rc = pbox_txn_scan(t, sh->bank, NULL, 0, NULL, 0, rev ? PBOX_BT_SCAN_REVERSE : 0,
				   sum_fn, &s);
	}
	pbox_bt_cursor *cu = NULL;
	if (!rc) {
		how = "cursor";
		rc = pbox_txn_cursor_open(t, sh->bank, &cu);
	}
	if (!rc) {
		rc = rev ? pbox_bt_cursor_last(cu) : pbox_bt_cursor_first(cu);
		while (rc == 0) {
			const void *k, *v;
			size_t kl, vl;
			rc = pbox_bt_cursor_key(cu, &k, &kl);
			if (!rc)
				rc = pbox_bt_cursor_value(cu, &v, &vl);
			if (rc)
				break;
			sum_one(&c, k, kl, v, vl);
			rc = rev ? pbox_bt_cursor_prev(cu) : pbox_bt_cursor_next(cu);
		}
		if (rc == PBOX_ENOTFOUND)
			rc = 0;
	}
	pbox_bt_cursor_close(cu);
	if (rc) {
		pbox_txn_abort(t);
		wfail(w, how, rc, NULL);
		return rc;
	}
	rc = pbox_txn_commit(t, 0);
	if (rc) {
		wfail(w, "read-only commit", rc, NULL);
		return rc;
	}
	const sum_ctx *all[3] = { &g, &s, &c };
	const char *name[3] = { "get", rev ? "reverse scan" : "scan", rev ? "reverse cursor" :
						   "cursor" };
	for (int m = 0; m < 3; m++) {
		char more[160];
		if (all[m]->bad || all[m]->n != ACCTS || all[m]->sum != TOTAL) {
			snprintf(more, sizeof(more), " (snapshot %llu: %u accounts%s, sum %lld, want "
				 "%lld)", (unsigned long long)w->reads, all[m]->n,
				 all[m]->bad ? ", a malformed one" : "", (long long)all[m]->sum,
				 (long long)TOTAL);
			wfail(w, name[m], 0, more);
			return PBOX_ECORRUPT;
		}
		for (unsigned i = 0; i < ACCTS; i++)
			if (all[m]->bal[i] != g.bal[i]) {
				snprintf(more, sizeof(more), " (snapshot %llu: account %u is %lld by %s "
					 "and %lld by get: not one snapshot)", (unsigned long long)w->reads,
					 i, (long long)all[m]->bal[i], name[m], (long long)g.bal[i]);
				wfail(w, name[m], 0, more);
				return PBOX_ECORRUPT;
			}
	}
	w->reads++;
	return 0;
}

static void *reader_main(void *arg)
{
	worker *w = arg;
	do {
		if (read_once(w))
			return NULL;
	} while (running(w));
	return NULL;
}

START_TEST(test_bank)
{
	env e;
	env_init(&e, 4096, 128); /* a 512 KiB pool */
	e.o.checkpoint_log_bytes = 1u << 20;
	e.o.wal_flush_delay_us = 200;
	env_reopen(&e);
	static shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.st = e.st;
	sh.bank = bt_create(e.st, "bank");
	sh.other = bt_create(e.st, "other");
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, 0, &t), 0); /* the accounts, in one transaction */
	for (unsigned i = 0; i < ACCTS; i++) {
		char k[16];
		int64_t b = START;
		CK_RC(pbox_txn_put(t, sh.bank, k, acct_key(k, i), &b, 8), 0);
	}
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	/* spread the accounts over several leaves: filler keys between them */
	char fill[200];
	memset(fill, 'f', sizeof(fill));
	for (unsigned i = 0; i < ACCTS * 4; i++) {
		char k[16];
		int kl = sprintf(k, "acct%03u.%u", i / 4, i % 4);
		CK_RC(pbox_bt_upsert(sh.bank, k, (size_t)kl, fill, sizeof(fill), 0), 0);
	}
	uint64_t seed = pbox_test_seed();
	static worker w[5];
	pthread_t th[5];
	void *(*fn[5])(void *) = { writer_main, writer_main, single_main, reader_main,
				   reader_main };
	for (unsigned i = 0; i < 5; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].sh = &sh;
		w[i].id = i;
		pbox_rng_seed(&w[i].r, seed + i);
		REQ_T(pthread_create(&th[i], NULL, fn[i], &w[i]) == 0);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned ms = RUN_MS * pbox_test_scale();
	for (unsigned slept = 0; slept < ms && !atomic_load(&sh.bad); slept += 10)
		usleep(10 * 1000);
	atomic_store(&sh.stop, true);
	for (unsigned i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (unsigned i = 0; i < 5; i++)
		REQ(!w[i].msg[0], "bank: %s", w[i].msg);
	uint64_t commits = w[0].commits + w[1].commits, conflicts = w[0].conflicts + w[1].conflicts;
	fprintf(stderr, "bank: %.1f s, %llu transfers committed, %llu conflicts retried, %llu "
			"single-key ops, %llu + %llu snapshots summed\n",
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		(unsigned long long)commits, (unsigned long long)conflicts,
		(unsigned long long)w[2].ops, (unsigned long long)w[3].reads,
		(unsigned long long)w[4].reads);
	REQ(w[0].commits > 0 && w[1].commits > 0, "a writer committed nothing (%llu, %llu)",
	    (unsigned long long)w[0].commits, (unsigned long long)w[1].commits);
	REQ_GT(w[2].ops, 0);
	REQ(w[3].reads > 0 && w[4].reads > 0, "a reader read nothing");

	pbox_txn_stats ts;
	pbox_txn_get_stats(e.st, &ts);
	REQ_EQ(ts.active, 0);
	REQ(ts.versions == 0 && ts.version_bytes == 0, "no snapshot open, yet %llu versions kept",
	    (unsigned long long)ts.versions);
	REQ_GE(ts.commits, commits);
	REQ_GE(ts.conflicts, conflicts ? 1 : 0);
	REQ_EQ(ts.retired, 0); /* far below the default cap */
	sum_ctx c = { 0 };
	CK_RC(pbox_bt_scan(sh.bank, NULL, 0, NULL, 0, sum_fn, &c), 0);
	REQ(!c.bad && c.n == ACCTS && c.sum == TOTAL, "after the run: %u accounts, sum %lld", c.n,
	    (long long)c.sum);
	bt_verify(sh.bank);
	bt_verify(sh.other);
	pbox_bt_close(sh.bank);
	pbox_bt_close(sh.other);
	env_reopen(&e);
	pbox_bt *bank = bt_open(e.st, "bank");
	memset(&c, 0, sizeof(c));
	CK_RC(pbox_bt_scan(bank, NULL, 0, NULL, 0, sum_fn, &c), 0);
	REQ(!c.bad && c.n == ACCTS && c.sum == TOTAL, "after a reopen: %u accounts, sum %lld", c.n,
	    (long long)c.sum);
	pbox_bt_close(bank);
	env_fini(&e);
}
END_TEST

/* ---- no false conflicts: each thread writes only its own key -------------------------------- */

typedef struct own {
	pbox_store *st;
	pbox_bt *bt;
	char key;
	unsigned flags;
	uint64_t commits, conflicts;
	int err;
} own;

static void *own_main(void *arg)
{
	own *o = arg;
	for (unsigned i = 0; i < 3000 && !o->err; i++) {
		pbox_txn *t;
		int rc = pbox_txn_begin(o->st, 0, &t);
		uint64_t v = 0;
		size_t n = 0;
		if (!rc) {
			rc = pbox_txn_get(t, o->bt, &o->key, 1, &v, 8, &n);
			if (rc == PBOX_ENOTFOUND)
				rc = 0;
		}
		v++;
		if (!rc)
			rc = pbox_txn_put(t, o->bt, &o->key, 1, &v, 8);
		if (!rc) {
			rc = pbox_txn_commit(t, o->flags);
			t = NULL;
		}
		pbox_txn_abort(t);
		if (rc == PBOX_ECONFLICT)
			o->conflicts++;
		else if (rc)
			o->err = rc;
		else
			o->commits++;
	}
	return NULL;
}

/* Two threads, each updating only its own key: a conflict is never right. (A snapshot used
 * to start below the beginning thread's own last commit whenever an older commit of the
 * other thread was still installing: its next write of its own key conflicted.) */
START_TEST(test_no_false_conflicts)
{
	env e;
	env_init(&e, 4096, 256);
	e.o.wal_flush_delay_us = 200;
	env_reopen(&e);
	pbox_bt *bt = bt_create(e.st, "own");
	for (unsigned durable = 0; durable < 2; durable++) {
		own o[2] = { { .st = e.st, .bt = bt, .key = 'a' }, { .st = e.st, .bt = bt, .key = 'b' } };
		pthread_t th[2];
		for (unsigned i = 0; i < 2; i++) {
			o[i].flags = durable ? PBOX_BT_DURABLE : 0;
			REQ_T(pthread_create(&th[i], NULL, own_main, &o[i]) == 0);
		}
		for (unsigned i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		for (unsigned i = 0; i < 2; i++) {
			CK_RC(o[i].err, 0);
			REQ(o[i].conflicts == 0, "%s: key %c: %llu false conflicts in %llu commits",
			    durable ? "durable" : "fast", o[i].key, (unsigned long long)o[i].conflicts,
			    (unsigned long long)o[i].commits);
		}
	}
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn_bank");
	TCase *tc = tcase_create("bank");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_bank);
	tcase_add_test(tc, test_no_false_conflicts);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
