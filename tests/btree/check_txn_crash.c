/*
 * check_txn_crash.c — transactions are crash-atomic and durable (pbox/txn.h), on the
 * in-memory file system with power cuts and process crashes (pbox/iotest.h).
 *
 *   cycles      per cycle (pbox_test_cycles(40), seed printed): a store with a bank of 64
 *               accounts, a "generation" tree of 3000 keys and a log tree; one thread runs a
 *               random sequence of operations — transfers (a transaction: both balances and
 *               a unique log key), generation transactions (all 3000 keys set to the next
 *               generation, plus a log key) and single-key upserts of a log key — some with
 *               PBOX_BT_DURABLE, under a small pool and frequent background checkpoints. A
 *               power cut (random mode) or a process crash is armed at a random
 *               state-changing call (pbox_io_memfs_arm; the count of an uncut run bounds
 *               it). After recovery: the log keys present are exactly those of operations
 *               1..m for some m covering every acknowledged durable operation (the WAL
 *               keeps a prefix); every balance equals the replay of the transfers among
 *               them (so the sum is conserved); all generation keys hold the generation of
 *               the last generation transaction among them (all or nothing); every tree
 *               verifies; the store keeps working. The cut must have fired in some cycles.
 *   big commit  one transaction of 100,000 keys (20,000 under sanitizers: puts updating and
 *               inserting, deletes) with a pool smaller than its write set; an uncut run
 *               counts the state-changing calls of its commit, then the commit is cut at 10
 *               points spread over them (6 under sanitizers) and at geometric ones in their
 *               first tenth (power cuts of every mode, process crashes): after recovery the
 *               tree holds all of it or none of it, never a mix; a commit that returned 0
 *               is all there. Both outcomes must occur
 *               (the sweep straddles the durability point).
 *
 * PBOX_SEED reproduces a run; PBOX_STRESS_SCALE lengthens the cycles.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCTS 64
#define START 1000
#define GKEYS 3000
#define GVAL 48
#define NOPS 240

static const char *mode_name(int what)
{
	static const char *n[] = { "drop-all", "keep-subset", "tear-last", "keep-all" };
	return what == PBOX_MEMFS_CRASH ? "process crash" : n[what];
}

/* ---- the cycles ------------------------------------------------------------------------ */

enum { OP_XFER = 1, OP_GEN, OP_SINGLE };

typedef struct op {
	uint8_t kind, a, b;
	int32_t amount;
	uint32_t gen;
} op;

typedef struct cyc {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	pbox_bt *bank, *gen, *log;
	op ops[NOPS + 1];
	unsigned done;  /* operations 1..done were attempted */
	unsigned acked; /* the last one acknowledged durable (0: none) */
	char err[256];
} cyc;

static size_t acct_key(char *k, unsigned i)
{
	return (size_t)sprintf(k, "acct%03u", i);
}

static size_t log_key(char *k, unsigned seq)
{
	return (size_t)sprintf(k, "L%06u", seq);
}

static void gen_val(uint8_t *v, unsigned i, uint32_t gen)
{
	memcpy(v, &gen, 4);
	for (unsigned j = 4; j < GVAL; j++)
		v[j] = (uint8_t)(mix64((uint64_t)gen << 32 | i) >> (8 * (j % 8)));
}

static void log_val(uint8_t *v, unsigned seq, const op *o)
{
	memset(v, 0, 16);
	memcpy(v, &seq, 4);
	v[4] = o->kind;
	v[5] = o->a;
	v[6] = o->b;
	memcpy(v + 8, &o->amount, 4);
	memcpy(v + 12, &o->gen, 4);
}

static void cyc_open(cyc *c, bool create)
{
	c->o.create = create;
	int rc = pbox_store_open("/x", &c->o, &c->st);
	REQ(rc == 0, "store open: %s: %s", pbox_status_name(rc), c->err);
	int (*get)(pbox_store *, const char *, pbox_bt **) = create ? pbox_bt_create : pbox_bt_open;
	CK_RC(get(c->st, "bank", &c->bank), 0);
	CK_RC(get(c->st, "gen", &c->gen), 0);
	CK_RC(get(c->st, "log", &c->log), 0);
}

static void cyc_close_trees(cyc *c)
{
	pbox_bt_close(c->bank);
	pbox_bt_close(c->gen);
	pbox_bt_close(c->log);
}

/* A fresh store: the accounts and generation 0, durable. */
static void cyc_setup(cyc *c, pbox_rng *r)
{
	memset(c, 0, sizeof(*c));
	CK_RC(pbox_io_memfs_create(&c->fs), 0);
	pbox_store_options_init(&c->o);
	c->o.io = pbox_io_memfs_io(c->fs);
	c->o.page_size = 4096;
	c->o.budget_bytes = (pbox_rng_below(r, 2) ? 64 : 256) * 4096ull;
	c->o.max_bytes = 256ull << 20;
	c->o.wal_segment_size = pbox_rng_below(r, 2) ? (256u << 10) : (1u << 20);
	c->o.wal_flush_delay_us = pbox_rng_below(r, 2) ? 300 : 0;
	c->o.checkpoint_log_bytes = pbox_rng_below(r, 3) ? (512u << 10) : 0;
	c->o.background_evictor = pbox_rng_below(r, 2);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	c->o.redo = h;
	c->o.nredo = nh;
	c->o.errbuf = c->err;
	c->o.errbuf_len = sizeof(c->err);
	cyc_open(c, true);
	pbox_txn *t;
	CK_RC(pbox_txn_begin(c->st, 0, &t), 0);
	char k[16];
	uint8_t v[GVAL];
	for (unsigned i = 0; i < ACCTS; i++) {
		int64_t b = START;
		CK_RC(pbox_txn_put(t, c->bank, k, acct_key(k, i), &b, 8), 0);
	}
	for (unsigned i = 0; i < GKEYS; i++) {
		gen_val(v, i, 0);
		CK_RC(pbox_txn_put(t, c->gen, k, (size_t)sprintf(k, "g%05u", i), v, GVAL), 0);
	}
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	if (pbox_rng_below(r, 2))
		CK_RC(pbox_store_checkpoint(c->st), 0);
}

/* Run one operation; its result. */
static int cyc_op(cyc *c, unsigned seq, unsigned flags)
{
	const op *o = &c->ops[seq];
	char k[16];
	uint8_t lv[16], v[GVAL];
	log_val(lv, seq, o);
	if (o->kind == OP_SINGLE)
		return pbox_bt_upsert(c->log, k, log_key(k, seq), lv, sizeof(lv), flags);
	pbox_txn *t;
	int rc = pbox_txn_begin(c->st, 0, &t);
	if (rc)
		return rc;
	if (o->kind == OP_XFER) {
		int64_t a = 0, b = 0;
		size_t vl;
		rc = pbox_txn_get(t, c->bank, k, acct_key(k, o->a), &a, 8, &vl);
		if (!rc)
			rc = pbox_txn_get(t, c->bank, k, acct_key(k, o->b), &b, 8, &vl);
		a -= o->amount;
		b += o->amount;
		if (!rc)
			rc = pbox_txn_put(t, c->bank, k, acct_key(k, o->a), &a, 8);
		if (!rc)
			rc = pbox_txn_put(t, c->bank, k, acct_key(k, o->b), &b, 8);
	} else {
		for (unsigned i = 0; i < GKEYS && !rc; i++) {
			gen_val(v, i, o->gen);
			rc = pbox_txn_put(t, c->gen, k, (size_t)sprintf(k, "g%05u", i), v, GVAL);
		}
	}
	if (!rc)
		rc = pbox_txn_put(t, c->log, k, log_key(k, seq), lv, sizeof(lv));
	if (!rc) {
		rc = pbox_txn_commit(t, flags);
		t = NULL;
	}
	pbox_txn_abort(t);
	return rc;
}

/* The workload: NOPS operations (a generation transaction every 40), stopping at the first
 * error, which must come after the cut. */
static void cyc_run(cyc *c, pbox_rng *r, uint64_t seed)
{
	uint32_t gen = 0;
	for (unsigned seq = 1; seq <= NOPS; seq++) {
		op *o = &c->ops[seq];
		memset(o, 0, sizeof(*o));
		unsigned x = (unsigned)pbox_rng_below(r, 10);
		if (seq % 40 == 20) {
			o->kind = OP_GEN;
			o->gen = ++gen;
		} else if (x == 0) {
			o->kind = OP_SINGLE;
		} else {
			o->kind = OP_XFER;
			o->a = (uint8_t)pbox_rng_below(r, ACCTS);
			o->b = (uint8_t)((o->a + 1 + pbox_rng_below(r, ACCTS - 1)) % ACCTS);
			o->amount = 1 + (int32_t)pbox_rng_below(r, 100);
		}
		unsigned flags = pbox_rng_below(r, 3) == 0 ? PBOX_BT_DURABLE : 0;
		c->done = seq;
		int rc = cyc_op(c, seq, flags);
		if (rc) {
			REQ(pbox_io_memfs_fired(c->fs), "cycle %llu: operation %u (kind %u) = %s before "
			    "any cut", (unsigned long long)seed, seq, o->kind, pbox_status_name(rc));
			return;
		}
		if (flags & PBOX_BT_DURABLE)
			c->acked = seq;
	}
}

typedef struct log_chk {
	const cyc *c;
	unsigned n; /* keys seen: they must be L000001 .. L<n> */
	char msg[200];
} log_chk;

static int log_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	log_chk *lc = arg;
	char want[16];
	uint8_t wv[16];
	unsigned seq = lc->n + 1;
	size_t wl = log_key(want, seq);
	if (seq > lc->c->done || !beq(k, kl, want, wl)) {
		snprintf(lc->msg, sizeof(lc->msg), "log key %u is \"%.*s\": operations present are "
			 "not a prefix 1..m of the %u attempted", seq, (int)kl, (const char *)k,
			 lc->c->done);
		return SCAN_BAD;
	}
	log_val(wv, seq, &lc->c->ops[seq]);
	if (!beq(v, vl, wv, sizeof(wv))) {
		snprintf(lc->msg, sizeof(lc->msg), "log key %u: a value never written", seq);
		return SCAN_BAD;
	}
	lc->n = seq;
	return 0;
}

typedef struct cyc_stats {
	unsigned cycles, fired, ops, acked, lost, gens_checked;
	uint64_t recovered;
} cyc_stats;

/* After the cut: recover and check. */
static void cyc_check(cyc *c, uint64_t seed, int what, cyc_stats *s)
{
	cyc_open(c, false);
	pbox_txn_stats ts;
	pbox_txn_get_stats(c->st, &ts);
	s->recovered += ts.recovered;
	log_chk lc = { .c = c };
	int rc = pbox_bt_scan(c->log, NULL, 0, NULL, 0, log_fn, &lc);
	REQ(rc == 0 && !lc.msg[0], "cycle %llu (%s): %s %s", (unsigned long long)seed,
	    mode_name(what), pbox_status_name(rc), lc.msg);
	unsigned m = lc.n;
	REQ(m >= c->acked, "cycle %llu (%s): operation %u was acknowledged durable, only 1..%u "
	    "recovered (of %u attempted)", (unsigned long long)seed, mode_name(what), c->acked, m,
	    c->done);
	/* replay 1..m */
	int64_t want[ACCTS];
	uint32_t gen = 0;
	for (unsigned i = 0; i < ACCTS; i++)
		want[i] = START;
	for (unsigned seq = 1; seq <= m; seq++) {
		const op *o = &c->ops[seq];
		if (o->kind == OP_XFER) {
			want[o->a] -= o->amount;
			want[o->b] += o->amount;
		} else if (o->kind == OP_GEN) {
			gen = o->gen;
		}
	}
	int64_t sum = 0;
	unsigned bad = ACCTS;
	int64_t got[ACCTS];
	for (unsigned i = 0; i < ACCTS; i++) {
		char k[16];
		size_t vl;
		CK_RC(pbox_bt_lookup(c->bank, k, acct_key(k, i), &got[i], 8, &vl), 0);
		sum += got[i];
		if (got[i] != want[i] && bad == ACCTS)
			bad = i;
	}
	REQ(sum == (int64_t)ACCTS * START, "cycle %llu (%s): the balances sum to %lld, not %lld",
	    (unsigned long long)seed, mode_name(what), (long long)sum, (long long)ACCTS * START);
	REQ(bad == ACCTS, "cycle %llu (%s): account %u holds %lld, the replay of operations 1..%u "
	    "(those whose log keys survived) gives %lld", (unsigned long long)seed,
	    mode_name(what), bad, bad < ACCTS ? (long long)got[bad] : 0, m,
	    bad < ACCTS ? (long long)want[bad] : 0);
	/* the generation keys: all one generation, the last one among 1..m */
	uint32_t first = UINT32_MAX;
	for (unsigned i = 0; i < GKEYS; i++) {
		char k[16];
		uint8_t v[GVAL + 1], wv[GVAL];
		size_t vl;
		CK_RC(pbox_bt_lookup(c->gen, k, (size_t)sprintf(k, "g%05u", i), v, sizeof(v), &vl), 0);
		uint32_t g;
		memcpy(&g, v, 4);
		gen_val(wv, i, g);
		REQ(vl == GVAL && memcmp(v, wv, GVAL) == 0, "cycle %llu (%s): generation key %u: a "
		    "value never written", (unsigned long long)seed, mode_name(what), i);
		if (first == UINT32_MAX)
			first = g;
		REQ(g == first, "cycle %llu (%s): a generation transaction applied in part: key 0 "
		    "holds generation %u, key %u generation %u", (unsigned long long)seed,
		    mode_name(what), first, i, g);
	}
	REQ(first == gen, "cycle %llu (%s): the generation keys hold generation %u, operations "
	    "1..%u end with generation %u", (unsigned long long)seed, mode_name(what), first, m,
	    gen);
	s->gens_checked += gen > 0;
	bt_verify(c->bank);
	bt_verify(c->gen);
	REQ_EQ(bt_verify(c->log).keys, m);
	s->ops += c->done;
	s->acked += c->acked;
	s->lost += c->done - m;
	/* it keeps working */
	c->ops[0] = (op){ .kind = OP_XFER, .a = 0, .b = 1, .amount = 5 };
	CK_RC(cyc_op(c, 0, PBOX_BT_DURABLE), 0);
	cyc_close_trees(c);
	CK_RC(pbox_store_close(c->st), 0);
	c->st = NULL;
}

START_TEST(test_crash_cycles)
{
	uint64_t base = pbox_test_seed() ^ 0x7c7c;
	unsigned cycles = pbox_test_cycles(40);
	static cyc c;
	pbox_rng r;
	/* an uncut run bounds the cut's position */
	pbox_rng_seed(&r, base);
	cyc_setup(&c, &r);
	uint64_t c0 = pbox_io_memfs_changes(c.fs);
	cyc_run(&c, &r, base);
	REQ_EQ(c.done, NOPS);
	uint64_t span = pbox_io_memfs_changes(c.fs) - c0;
	cyc_close_trees(&c);
	CK_RC(pbox_store_close(c.st), 0);
	pbox_io_memfs_destroy(c.fs);
	fprintf(stderr, "txn crash cycles: base seed %llu (cycle i uses base + 1 + i), %u cycles%s, "
			"%llu state-changing calls in an uncut run\n", (unsigned long long)base,
		cycles, cycles < 40 ? " (a third: ThreadSanitizer)" : "",
		(unsigned long long)span);
	REQ_GT(span, 0);
	cyc_stats s = { 0 };
	for (unsigned i = 0; i < cycles; i++) {
		uint64_t seed = base + 1 + i;
		pbox_rng_seed(&r, seed);
		cyc_setup(&c, &r);
		unsigned x = (unsigned)pbox_rng_below(&r, 5);
		int what = x == 4 ? PBOX_MEMFS_CRASH : (int)x;
		pbox_io_memfs_arm(c.fs, 1 + pbox_rng_below(&r, span), what, pbox_rng_next(&r));
		cyc_run(&c, &r, seed);
		bool fired = pbox_io_memfs_fired(c.fs);
		if (!fired) { /* the run made fewer calls than the uncut one: cut at its end */
			pbox_io_memfs_arm(c.fs, 0, 0, 0);
			if (what == PBOX_MEMFS_CRASH)
				pbox_io_memfs_crash(c.fs);
			else
				pbox_io_memfs_powercut(c.fs, (pbox_powercut_mode)what, seed);
		}
		s.fired += fired;
		cyc_close_trees(&c);
		pbox_store_close(c.st); /* fails: the machine is off */
		c.st = NULL;
		pbox_io_memfs_restart(c.fs);
		cyc_check(&c, seed, what, &s);
		pbox_io_memfs_destroy(c.fs);
		s.cycles++;
	}
	fprintf(stderr, "txn crash cycles: %u cycles, the armed cut fired in %u; %u operations "
			"(%u up to the last durable ack), %u unacknowledged lost, %llu transactions "
			"re-installed by recovery, %u cycles with a generation to check\n", s.cycles,
		s.fired, s.ops, s.acked, s.lost, (unsigned long long)s.recovered, s.gens_checked);
	REQ_GT(s.fired, 0);
	REQ_GT(s.acked, 0);
}
END_TEST

/* ---- one big commit, cut at many points ------------------------------------------------ */

enum { ST_OLD = 1, ST_NEW = 2 };

static size_t bk(char *k, uint32_t i)
{
	return (size_t)sprintf(k, "b%07u", i);
}

static void bv(uint8_t *v, uint32_t i, bool new_)
{
	for (unsigned j = 0; j < 40; j++)
		v[j] = (uint8_t)(mix64((uint64_t)i << 1 | new_) >> (8 * (j % 8))) ^ (uint8_t)j;
}

typedef struct big_chk {
	uint32_t n;
	uint64_t keys, old_ev, new_ev; /* keys only the old / only the new state has */
	bool bad;
	char msg[160];
} big_chk;

/* Keys [0, n/2) exist before (old values); the transaction deletes [0, n/8), puts new values
 * into [n/4, n). */
static int big_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	big_chk *c = arg;
	const char *p = k;
	uint32_t i = 0;
	for (size_t j = 1; j < kl && j < 8; j++)
		i = i * 10 + (uint32_t)(p[j] - '0');
	if (kl != 8 || p[0] != 'b' || i >= c->n) {
		snprintf(c->msg, sizeof(c->msg), "a key never written (len %zu)", kl);
		c->bad = true;
		return SCAN_BAD;
	}
	uint8_t o[40], nw[40];
	bv(o, i, false);
	bv(nw, i, true);
	bool is_old = beq(v, vl, o, 40), is_new = beq(v, vl, nw, 40);
	c->keys++;
	if (i < c->n / 8 && is_old)
		c->old_ev++; /* deleted by the transaction */
	else if (i >= c->n / 8 && i < c->n / 4 && is_old)
		; /* untouched */
	else if (i >= c->n / 4 && i < c->n / 2 && (is_old || is_new))
		(*(is_old ? &c->old_ev : &c->new_ev))++;
	else if (i >= c->n / 2 && is_new)
		c->new_ev++; /* inserted */
	else {
		snprintf(c->msg, sizeof(c->msg), "key %u: a value never written there", i);
		c->bad = true;
		return SCAN_BAD;
	}
	return 0;
}

typedef struct big_run {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	pbox_bt *bt;
	pbox_txn *t;
	char err[256];
} big_run;

/* A store holding the old state and the open transaction, ready to commit. */
static void big_prepare(big_run *b, uint32_t n)
{
	memset(b, 0, sizeof(*b));
	CK_RC(pbox_io_memfs_create(&b->fs), 0);
	pbox_store_options_init(&b->o);
	b->o.io = pbox_io_memfs_io(b->fs);
	b->o.create = true;
	b->o.budget_bytes = 1u << 20; /* 256 pages: well below the write set */
	b->o.max_bytes = 1ull << 30;
	b->o.wal_segment_size = 4u << 20;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	b->o.redo = h;
	b->o.nredo = nh;
	b->o.errbuf = b->err;
	b->o.errbuf_len = sizeof(b->err);
	int rc = pbox_store_open("/big", &b->o, &b->st);
	REQ(rc == 0, "open: %s: %s", pbox_status_name(rc), b->err);
	b->bt = bt_create(b->st, "big");
	char k[16];
	uint8_t v[40];
	CK_RC(pbox_txn_begin(b->st, 0, &b->t), 0);
	for (uint32_t i = 0; i < n / 2; i++) {
		bv(v, i, false);
		CK_RC(pbox_txn_put(b->t, b->bt, k, bk(k, i), v, 40), 0);
	}
	CK_RC(pbox_txn_commit(b->t, PBOX_BT_DURABLE), 0);
	CK_RC(pbox_store_checkpoint(b->st), 0);
	CK_RC(pbox_txn_begin(b->st, 0, &b->t), 0);
	for (uint32_t i = 0; i < n / 8; i++)
		CK_RC(pbox_txn_del(b->t, b->bt, k, bk(k, i)), 0);
	for (uint32_t i = n / 4; i < n; i++) {
		bv(v, i, true);
		CK_RC(pbox_txn_put(b->t, b->bt, k, bk(k, i), v, 40), 0);
	}
	REQ_GT(pbox_txn_bytes(b->t), b->o.budget_bytes);
}

/* Recover and classify: ST_OLD or ST_NEW (a mix fails). */
static int big_check(big_run *b, uint32_t n, const char *what)
{
	b->o.create = false;
	int rc = pbox_store_open("/big", &b->o, &b->st);
	REQ(rc == 0, "%s: reopen: %s: %s", what, pbox_status_name(rc), b->err);
	b->bt = bt_open(b->st, "big");
	big_chk c = { .n = n };
	rc = pbox_bt_scan(b->bt, NULL, 0, NULL, 0, big_fn, &c);
	REQ(rc == 0 && !c.bad, "%s: %s %s", what, pbox_status_name(rc), c.msg);
	int state = 0;
	if (c.new_ev == 0 && c.keys == n / 2)
		state = ST_OLD;
	else if (c.old_ev == 0 && c.keys == n - n / 8)
		state = ST_NEW;
	REQ(state, "%s: the transaction applied in part: %llu keys (old state %u, new %u), %llu "
	    "only the old state has, %llu only the new one", what, (unsigned long long)c.keys,
	    n / 2, n - n / 8, (unsigned long long)c.old_ev, (unsigned long long)c.new_ev);
	REQ_EQ(bt_verify(b->bt).keys, c.keys);
	pbox_bt_close(b->bt);
	CK_RC(pbox_store_close(b->st), 0);
	return state;
}

START_TEST(test_big_commit_cut)
{
	uint32_t n = TXN_SANITIZED ? 20000 : 100000;
	unsigned points = TXN_SANITIZED ? 6 : 10;
	static big_run b;
	/* the uncut run: how many state-changing calls the commit makes */
	big_prepare(&b, n);
	uint64_t c0 = pbox_io_memfs_changes(b.fs);
	CK_RC(pbox_txn_commit(b.t, PBOX_BT_DURABLE), 0);
	uint64_t span = pbox_io_memfs_changes(b.fs) - c0;
	pbox_bt_close(b.bt);
	CK_RC(pbox_store_close(b.st), 0);
	REQ_EQ(big_check(&b, n, "uncut"), ST_NEW);
	pbox_io_memfs_destroy(b.fs);
	REQ_GT(span, 1);
	/* evenly spread points, then geometric ones (2, 3, 4, 6, 9, ...; doubling under
	 * sanitizers) within the first tenth of the calls, where the write set is logged before
	 * its commit record: the durability point comes early, most calls are the install.
	 * The count varies with timing (the WAL's background flush syncs every millisecond the
	 * commit lasts): a spread point that a run does not reach is retried once, placed
	 * within the calls that run made. */
	uint64_t at[64];
	unsigned np = points, retried = 0;
	for (uint64_t x = 2; x < span / 10 && np < 64; x = TXN_SANITIZED ? 2 * x : x + (x + 1) / 2)
		at[np++] = x;
	fprintf(stderr, "big commit: %u keys, %llu state-changing calls in its commit, cut at %u "
			"points%s\n", n, (unsigned long long)span, np,
		TXN_SANITIZED ? " (fewer keys and points under sanitizers)" : "");
	unsigned outcome[3] = { 0 }, fired = 0;
	for (unsigned p = 0; p < np; p++) {
		if (p < points)
			at[p] = 1 + (span - 1) * p / (points - 1);
		uint64_t nth = at[p];
		int what = p % 5 == 4 ? PBOX_MEMFS_CRASH : (int)(p % 4);
		char desc[96];
		snprintf(desc, sizeof(desc), "cut at call %llu of %llu (%s)", (unsigned long long)nth,
			 (unsigned long long)span, mode_name(what));
		big_prepare(&b, n);
		uint64_t c1 = pbox_io_memfs_changes(b.fs);
		pbox_io_memfs_arm(b.fs, nth, what, nth);
		int rc = pbox_txn_commit(b.t, PBOX_BT_DURABLE);
		bool f = pbox_io_memfs_fired(b.fs);
		REQ(rc == 0 || f, "%s: commit = %s without the cut", desc, pbox_status_name(rc));
		bool retry = false;
		if (!f) {
			uint64_t made = pbox_io_memfs_changes(b.fs) - c1;
			pbox_io_memfs_arm(b.fs, 0, 0, 0);
			pbox_io_memfs_powercut(b.fs, PBOX_POWERCUT_DROP_ALL, nth);
			if (p < points && made > 1 && made < span && retried < points) {
				span = made; /* this point again, within this run's calls */
				retry = true;
				retried++;
			}
		}
		fired += f;
		pbox_bt_close(b.bt);
		pbox_store_close(b.st); /* fails: the machine is off */
		pbox_io_memfs_restart(b.fs);
		int st = big_check(&b, n, desc);
		REQ(rc != 0 || st == ST_NEW, "%s: the commit returned 0 (durable), recovery has the "
		    "old state", desc);
		fprintf(stderr, "  %s: commit %s, recovered %s\n", desc, pbox_status_name(rc),
			st == ST_NEW ? "all of it" : "none of it");
		outcome[st]++;
		pbox_io_memfs_destroy(b.fs);
		if (retry)
			p--;
	}
	fprintf(stderr, "big commit: %u of %u runs cut (%u spread points retried closer)\n", fired,
		np + retried, retried);
	REQ(fired + 2 >= np, "the cut fired at only %u of %u points", fired, np);
	REQ(outcome[ST_OLD] > 0 && outcome[ST_NEW] > 0, "the sweep saw only one outcome (%u none, "
	    "%u all): it did not straddle the commit's durability point", outcome[ST_OLD],
	    outcome[ST_NEW]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn_crash");
	TCase *tc = tcase_create("crash");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_crash_cycles);
	tcase_add_test(tc, test_big_commit_cut);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
