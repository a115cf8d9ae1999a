/*
 * check_replica.c — log tailing and replicas (pbox_store_tail_*, pbox_store_apply, read
 * sessions; pbox/storage.h), through trees and transactions. The primary lives on one memfs,
 * the replica on another (a copy of a backup), so a power cut of the primary leaves the
 * replica running.
 *
 *   ship      a writer (every eighth commit durable) and a transfer thread on the primary,
 *             automatic checkpoints recycling its log; a shipper tails it into the replica;
 *             two readers check the bank invariant in read sessions on the replica (no
 *             partial transaction ever shows). At the end the replica equals the primary
 *             (lockstep scans of both trees); promoted (reopened writable), it takes writes
 *             and keeps them across a reopen
 *   powercut  the same load, the primary's power cut at a random moment, several rounds:
 *             the replica is a prefix of the primary's durable history (every key acked
 *             durable at an LSN the replica received is there, every key there is on the
 *             recovered primary with the same value), the bank adds up in a session and after
 *             promotion, and the promoted replica accepts writes and reopens
 *   lag       a tail that falls more than max_lag_bytes behind gets PBOX_ELAGGED and the
 *             primary recycles its log; a tail within its bound holds the log back
 *   refuse    damaged, truncated, out-of-order and foreign groups are refused with the
 *             right code and an explanation, nothing applied; duplicates are ignored;
 *             writes to a replica are PBOX_ENOTSUP; the good sequence then applies
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/iotest.h>
#include <pbox/txn.h>
#include <pbox/wal.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCTS 16
#define START 1000
#define MSG_CAP (4u << 20)

static const pbox_replica_txn BT_TXN = { PBOX_REDO_TYPE_USER + 0x18, PBOX_REDO_TYPE_USER + 0x19,
					 PBOX_REDO_TYPE_USER + 0x1a };

static void opts(pbox_store_options *o, pbox_io *io, char *err, size_t errlen)
{
	pbox_store_options_init(o);
	o->io = io;
	o->page_size = 4096;
	o->budget_bytes = 512 * 4096;
	o->max_bytes = 1ull << 30;
	o->wal_segment_size = 1u << 20;
	o->wal_flush_delay_us = 200;
	o->checkpoint_log_bytes = 3u << 20;
	const pbox_redo_handler *h;
	unsigned n;
	pbox_bt_redo_handlers(&h, &n);
	o->redo = h;
	o->nredo = n;
	o->errbuf = err;
	o->errbuf_len = errlen;
}

typedef struct node {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	char err[256];
} node;

static void node_open(node *n, const char *dir)
{
	int rc = pbox_store_open(dir, &n->o, &n->st);
	REQ(rc == 0, "open %s: %s: %s", dir, pbox_status_name(rc), n->err);
}

/* Copy dir (data, LOCK, wal/ *) from one memfs to another, durably. */
typedef struct cp_ctx {
	pbox_io *from, *to;
	char src[128], dst[128];
} cp_ctx;

static void copy_file(pbox_io *from, const char *src, pbox_io *to, const char *dst)
{
	int in = from->open(from, src, O_RDONLY, 0);
	REQ(in >= 0, "open %s: %d", src, in);
	uint64_t size = 0;
	CK_RC(from->fsize(from, in, &size), 0);
	int out = to->open(to, dst, O_CREAT | O_TRUNC | O_RDWR, 0644);
	REQ(out >= 0, "create %s: %d", dst, out);
	static unsigned char buf[1 << 20];
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		CK_RC(pbox_io_pread_full(from, in, buf, n, off), 0);
		CK_RC(pbox_io_pwrite_full(to, out, buf, n, off), 0);
		off += n;
	}
	CK_RC(to->fsync(to, out), 0);
	from->close(from, in);
	to->close(to, out);
}

static int copy_fn(const char *name, void *arg)
{
	cp_ctx *c = arg;
	char s[300], d[300];
	snprintf(s, sizeof(s), "%s/%s", c->src, name);
	snprintf(d, sizeof(d), "%s/%s", c->dst, name);
	copy_file(c->from, s, c->to, d);
	return 0;
}

static void copy_store(pbox_io *from, const char *src, pbox_io *to, const char *dst)
{
	char s[300], d[300];
	CK_RC(to->mkdir(to, dst, 0755), 0);
	snprintf(s, sizeof(s), "%s/data", src);
	snprintf(d, sizeof(d), "%s/data", dst);
	copy_file(from, s, to, d);
	snprintf(s, sizeof(s), "%s/LOCK", src);
	snprintf(d, sizeof(d), "%s/LOCK", dst);
	copy_file(from, s, to, d);
	cp_ctx c = { .from = from, .to = to };
	snprintf(c.src, sizeof(c.src), "%s/wal", src);
	snprintf(c.dst, sizeof(c.dst), "%s/wal", dst);
	CK_RC(to->mkdir(to, c.dst, 0755), 0);
	CK_RC(from->listdir(from, c.src, copy_fn, &c), 0);
	CK_RC(to->fsync_dir(to, c.dst), 0);
	CK_RC(to->fsync_dir(to, dst), 0);
}

/* A primary at /p with trees keys and bank, and a replica at /r on its own memfs made from
 * a backup of it. */
typedef struct pair {
	node p, r;
	pbox_bt *keys, *bank;     /* the primary's */
	pbox_bt *rkeys, *rbank;   /* the replica's */
} pair;

static void pair_init(pair *x)
{
	memset(x, 0, sizeof(*x));
	CK_RC(pbox_io_memfs_create(&x->p.fs), 0);
	CK_RC(pbox_io_memfs_create(&x->r.fs), 0);
	opts(&x->p.o, pbox_io_memfs_io(x->p.fs), x->p.err, sizeof(x->p.err));
	x->p.o.create = true;
	node_open(&x->p, "/p");
	x->p.o.create = false;
	x->keys = bt_create(x->p.st, "keys");
	x->bank = bt_create(x->p.st, "bank");
	for (unsigned a = 0; a < ACCTS; a++) {
		char k[16];
		int64_t v = START;
		CK_RC(pbox_bt_upsert(x->bank, k, (size_t)sprintf(k, "acct%02u", a), &v, 8,
				     PBOX_BT_DURABLE), 0);
	}
	CK_RC(pbox_store_backup(x->p.st, "/bk", NULL, NULL), 0);
	copy_store(pbox_io_memfs_io(x->p.fs), "/bk", pbox_io_memfs_io(x->r.fs), "/r");
	opts(&x->r.o, pbox_io_memfs_io(x->r.fs), x->r.err, sizeof(x->r.err));
	x->r.o.replica = true;
	x->r.o.replica_txn = BT_TXN;
	node_open(&x->r, "/r");
	x->rkeys = bt_open(x->r.st, "keys");
	x->rbank = bt_open(x->r.st, "bank");
}

static size_t key_of(char *k, uint64_t i)
{
	return (size_t)sprintf(k, "k%08llu", (unsigned long long)i);
}

static size_t val_of(uint8_t *v, uint64_t i)
{
	size_t n = i % 40 == 7 ? 2500 : 80;
	uint64_t x = mix64(i + 1);
	memcpy(v, &i, 8);
	for (size_t j = 8; j < n; j++) {
		v[j] = (uint8_t)x;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	}
	return n;
}

/* The bank on bt adds up (0) or not; lookups fail: their status. */
static int bank_sum(pbox_bt *bank, int64_t *sum)
{
	*sum = 0;
	for (unsigned a = 0; a < ACCTS; a++) {
		char k[16];
		int64_t v = 0;
		size_t n = 0;
		int rc = pbox_bt_lookup(bank, k, (size_t)sprintf(k, "acct%02u", a), &v, 8, &n);
		if (rc)
			return rc;
		*sum += v;
	}
	return 0;
}

static void check_bank(pbox_bt *bank, const char *what)
{
	int64_t sum;
	CK_RC(bank_sum(bank, &sum), 0);
	REQ(sum == (int64_t)ACCTS * START, "%s: the balances add up to %lld", what, (long long)sum);
}

/* ---- the load ------------------------------------------------------------------------------ */

#define MAXACK (1u << 18)
typedef struct load {
	pair *x;
	atomic_bool stop, stop_ship;
	_Atomic uint64_t written, nack;
	uint64_t ack_n[MAXACK];   /* after ack i, keys below ack_n[i] are durable ... */
	pbox_lsn ack_lsn[MAXACK]; /* ... at or below this LSN */
	_Atomic int err;          /* the first failure of a thread that must not fail */
	_Atomic pbox_lsn shipped; /* the replica holds every group below it */
	_Atomic uint64_t transfers, sessions, busy;
	bool cut;                 /* a power cut will stop the primary: its errors are expected */
} load;

static void *writer_main(void *arg)
{
	load *l = arg;
	for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
		char k[32];
		uint8_t v[3000];
		size_t kl = key_of(k, i), vl = val_of(v, i);
		atomic_store(&l->written, i + 1);
		bool durable = i % 8 == 7;
		int rc = pbox_bt_upsert(l->x->keys, k, kl, v, vl, durable ? PBOX_BT_DURABLE : 0);
		if (rc) {
			if (!l->cut)
				atomic_store(&l->err, rc);
			break;
		}
		uint64_t n = atomic_load(&l->nack);
		if (durable && n < MAXACK) {
			l->ack_n[n] = i + 1;
			l->ack_lsn[n] = pbox_wal_durable_lsn(pbox_store_wal(l->x->p.st));
			atomic_store(&l->nack, n + 1);
		}
	}
	return NULL;
}

static void *bank_main(void *arg)
{
	load *l = arg;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 77);
	while (!atomic_load(&l->stop)) {
		unsigned a = (unsigned)pbox_rng_below(&r, ACCTS);
		unsigned b = (a + 1 + (unsigned)pbox_rng_below(&r, ACCTS - 1)) % ACCTS;
		char ka[16], kb[16];
		size_t kal = (size_t)sprintf(ka, "acct%02u", a), kbl = (size_t)sprintf(kb, "acct%02u", b);
		pbox_txn *t = NULL;
		int rc = pbox_txn_begin(l->x->p.st, 0, &t);
		int64_t va = 0, vb = 0;
		size_t n = 0;
		if (!rc)
			rc = pbox_txn_get(t, l->x->bank, ka, kal, &va, 8, &n);
		if (!rc)
			rc = pbox_txn_get(t, l->x->bank, kb, kbl, &vb, 8, &n);
		int64_t amt = va > 0 ? 1 + (int64_t)pbox_rng_below(&r, (uint64_t)va) : 0;
		va -= amt;
		vb += amt;
		if (!rc)
			rc = pbox_txn_put(t, l->x->bank, ka, kal, &va, 8);
		if (!rc)
			rc = pbox_txn_put(t, l->x->bank, kb, kbl, &vb, 8);
		if (!rc) {
			rc = pbox_txn_commit(t, pbox_rng_below(&r, 4) ? 0 : PBOX_BT_DURABLE);
			t = NULL;
		}
		pbox_txn_abort(t);
		if (!rc)
			atomic_fetch_add(&l->transfers, 1);
		else if (rc != PBOX_ECONFLICT) {
			if (!l->cut)
				atomic_store(&l->err, rc);
			break;
		}
	}
	return NULL;
}

static void *ship_main(void *arg)
{
	load *l = arg;
	pbox_tail *t;
	char err[256] = "", aerr[256] = "";
	pbox_tail_options to;
	pbox_tail_options_init(&to);
	to.errbuf = err;
	to.errbuf_len = sizeof(err);
	int rc = pbox_store_tail_open(l->x->p.st, pbox_store_replica_lsn(l->x->r.st), &to, &t);
	if (rc) {
		fprintf(stderr, "tail_open: %s: %s\n", pbox_status_name(rc), err);
		atomic_store(&l->err, rc);
		return NULL;
	}
	unsigned char *buf = xmalloc(MSG_CAP);
	while (!atomic_load(&l->stop_ship)) {
		size_t len = 0;
		pbox_lsn lsn, end;
		rc = pbox_store_tail_next(t, buf, MSG_CAP, &len, &lsn, &end, 20);
		if (rc == 0)
			continue;
		if (rc != 1) {
			if (!l->cut) {
				fprintf(stderr, "tail_next: %s: %s\n", pbox_status_name(rc), err);
				atomic_store(&l->err, rc);
			}
			break;
		}
		rc = pbox_store_apply(l->x->r.st, buf, len, aerr, sizeof(aerr));
		if (rc) {
			fprintf(stderr, "apply [%llu, %llu): %s: %s\n", (unsigned long long)lsn,
				(unsigned long long)end, pbox_status_name(rc), aerr);
			atomic_store(&l->err, rc ? rc : -1);
			break;
		}
		atomic_store(&l->shipped, end);
	}
	free(buf);
	pbox_store_tail_close(t);
	return NULL;
}

/* Read sessions on the replica: the bank adds up every time. */
static void *reader_main(void *arg)
{
	load *l = arg;
	while (!atomic_load(&l->stop_ship)) {
		int rc = pbox_store_read_begin(l->x->r.st, 50);
		if (rc == PBOX_EBUSY) {
			atomic_fetch_add(&l->busy, 1);
			continue;
		}
		int64_t sum = 0;
		if (!rc)
			rc = bank_sum(l->x->rbank, &sum);
		pbox_store_read_end(l->x->r.st);
		if (rc || sum != (int64_t)ACCTS * START) {
			fprintf(stderr, "replica session: %s, sum %lld\n", pbox_status_name(rc),
				(long long)sum);
			atomic_store(&l->err, rc ? rc : -2);
			break;
		}
		atomic_fetch_add(&l->sessions, 1);
	}
	return NULL;
}

/* Hash of a whole tree's pairs in order, and their count. */
typedef struct th {
	uint64_t h, n;
} th;

static int hash_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	th *t = arg;
	t->h = mix64(t->h ^ fnv64(k, kl)) ^ fnv64(v, vl);
	t->n++;
	return 0;
}

static th tree_hash(pbox_bt *bt)
{
	th t = { 0, 0 };
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, hash_fn, &t), 0);
	return t;
}

/* ---- ship -------------------------------------------------------------------------------- */

START_TEST(t_ship)
{
	pair x;
	pair_init(&x);
	load *l = xmalloc(sizeof(*l));
	memset(l, 0, sizeof(*l));
	l->x = &x;
	pthread_t th_[5];
	REQ_T(pthread_create(&th_[0], NULL, writer_main, l) == 0);
	REQ_T(pthread_create(&th_[1], NULL, bank_main, l) == 0);
	REQ_T(pthread_create(&th_[2], NULL, ship_main, l) == 0);
	REQ_T(pthread_create(&th_[3], NULL, reader_main, l) == 0);
	REQ_T(pthread_create(&th_[4], NULL, reader_main, l) == 0);
	usleep(1500000);
	/* at least one automatic checkpoint of the primary while shipping (a slow build, e.g.
	 * ThreadSanitizer's, writes less log per second): a bound on time, not a gate on rate */
	for (unsigned i = 0; i < 300 && !atomic_load(&l->err); i++) {
		pbox_store_stats s0;
		pbox_store_get_stats(x.p.st, &s0);
		if (s0.auto_checkpoints > 0)
			break;
		usleep(100000);
	}
	atomic_store(&l->stop, true);
	pthread_join(th_[0], NULL);
	pthread_join(th_[1], NULL);
	CK_RC(pbox_wal_flush(pbox_store_wal(x.p.st)), 0);
	pbox_lsn want = pbox_wal_durable_lsn(pbox_store_wal(x.p.st));
	for (int i = 0; i < 2000 && atomic_load(&l->shipped) < want && !atomic_load(&l->err); i++)
		usleep(5000);
	atomic_store(&l->stop_ship, true);
	for (unsigned i = 2; i < 5; i++)
		pthread_join(th_[i], NULL);
	CK_RC(atomic_load(&l->err), 0);
	REQ(atomic_load(&l->shipped) == want, "shipped up to %llu of %llu",
	    (unsigned long long)atomic_load(&l->shipped), (unsigned long long)want);
	REQ_GT(atomic_load(&l->transfers), 10);
	REQ_GT(atomic_load(&l->sessions), 10);
	pbox_store_stats ps;
	pbox_store_get_stats(x.p.st, &ps);
	REQ_GT(ps.auto_checkpoints, 0);
	pbox_replica_info ri;
	CK_RC(pbox_store_replica_info(x.r.st, &ri), 0);
	REQ(ri.open_txns == 0 && ri.pending_groups == 0 && !ri.readers_blocked,
	    "replica at the end: %llu open, %llu held", (unsigned long long)ri.open_txns,
	    (unsigned long long)ri.pending_groups);
	REQ_EQ(ri.next_lsn, want);
	/* lockstep: the same pairs on both */
	CK_RC(pbox_store_read_begin(x.r.st, -1), 0);
	th a = tree_hash(x.keys), b = tree_hash(x.rkeys);
	REQ(a.n == b.n && a.h == b.h, "keys: primary %llu pairs, replica %llu",
	    (unsigned long long)a.n, (unsigned long long)b.n);
	REQ_EQ(a.n, atomic_load(&l->written));
	uint64_t nkeys = a.n;
	a = tree_hash(x.bank);
	b = tree_hash(x.rbank);
	REQ(a.n == b.n && a.h == b.h, "bank differs");
	check_bank(x.rbank, "replica");
	bt_verify(x.rkeys);
	pbox_store_read_end(x.r.st);
	fprintf(stderr, "ship: %llu keys, %llu transfers, %llu sessions (%llu busy), %llu "
			"groups applied, %llu primary checkpoints\n",
		(unsigned long long)nkeys, (unsigned long long)atomic_load(&l->transfers),
		(unsigned long long)atomic_load(&l->sessions),
		(unsigned long long)atomic_load(&l->busy), (unsigned long long)ri.applied,
		(unsigned long long)ps.auto_checkpoints);
	/* promotion: reopen writable; it takes writes and keeps them */
	uint64_t n = atomic_load(&l->written);
	pbox_bt_close(x.rkeys);
	pbox_bt_close(x.rbank);
	CK_RC(pbox_store_close(x.r.st), 0);
	x.r.o.replica = false;
	node_open(&x.r, "/r");
	pbox_bt *k = bt_open(x.r.st, "keys");
	char kk[32];
	uint8_t v[3000];
	size_t kl = key_of(kk, n), vl = val_of(v, n);
	CK_RC(pbox_bt_upsert(k, kk, kl, v, vl, PBOX_BT_DURABLE), 0);
	pbox_bt_close(k);
	CK_RC(pbox_store_close(x.r.st), 0);
	node_open(&x.r, "/r");
	k = bt_open(x.r.st, "keys");
	REQ_EQ(bt_count(k), n + 1);
	pbox_bt_close(k);
	CK_RC(pbox_store_close(x.r.st), 0);
	pbox_bt_close(x.keys);
	pbox_bt_close(x.bank);
	CK_RC(pbox_store_close(x.p.st), 0);
	pbox_io_memfs_destroy(x.p.fs);
	pbox_io_memfs_destroy(x.r.fs);
	free(l);
}
END_TEST

/* ---- power cuts of the primary ----------------------------------------------------------- */

static void powercut_round(unsigned round, pbox_rng *rng)
{
	pair x;
	pair_init(&x);
	load *l = xmalloc(sizeof(*l));
	memset(l, 0, sizeof(*l));
	l->x = &x;
	l->cut = true;
	pthread_t th_[4];
	REQ_T(pthread_create(&th_[0], NULL, writer_main, l) == 0);
	REQ_T(pthread_create(&th_[1], NULL, bank_main, l) == 0);
	REQ_T(pthread_create(&th_[2], NULL, ship_main, l) == 0);
	REQ_T(pthread_create(&th_[3], NULL, reader_main, l) == 0);
	usleep(20000 + (useconds_t)pbox_rng_below(rng, 200000));
	pbox_io_memfs_arm(x.p.fs, 1 + pbox_rng_below(rng, 50), (int)(round % 4), pbox_rng_next(rng));
	for (int i = 0; i < 400 && !pbox_io_memfs_fired(x.p.fs); i++)
		usleep(5000);
	REQ(pbox_io_memfs_fired(x.p.fs), "round %u: the cut never fired", round);
	usleep(20000); /* let the shipper drain what it can still read */
	atomic_store(&l->stop, true);
	pthread_join(th_[0], NULL);
	pthread_join(th_[1], NULL);
	atomic_store(&l->stop_ship, true);
	for (unsigned i = 2; i < 4; i++)
		pthread_join(th_[i], NULL);
	CK_RC(atomic_load(&l->err), 0);
	pbox_lsn shipped = atomic_load(&l->shipped);
	uint64_t written = atomic_load(&l->written), must = 0;
	for (uint64_t i = 0; i < atomic_load(&l->nack); i++)
		if (l->ack_lsn[i] <= shipped && l->ack_n[i] > must)
			must = l->ack_n[i];
	/* the replica, before promotion: whole transactions, if it is at a consistent point */
	int rc = pbox_store_read_begin(x.r.st, 0);
	if (rc == 0) {
		check_bank(x.rbank, "replica after the cut");
		pbox_store_read_end(x.r.st);
	} else {
		CK_RC(rc, PBOX_EBUSY); /* the primary died inside a transaction */
	}
	/* the primary recovers */
	pbox_bt_close(x.keys);
	pbox_bt_close(x.bank);
	pbox_store_close(x.p.st); /* fails: the machine is off */
	pbox_io_memfs_restart(x.p.fs);
	node_open(&x.p, "/p");
	x.keys = bt_open(x.p.st, "keys");
	x.bank = bt_open(x.p.st, "bank");
	check_bank(x.bank, "primary after recovery");
	/* promotion */
	pbox_bt_close(x.rkeys);
	pbox_bt_close(x.rbank);
	CK_RC(pbox_store_close(x.r.st), 0);
	x.r.o.replica = false;
	node_open(&x.r, "/r");
	pbox_bt *k = bt_open(x.r.st, "keys"), *b = bt_open(x.r.st, "bank");
	check_bank(b, "promoted replica");
	static uint8_t got[4096], pv[4096];
	uint64_t present = 0;
	for (uint64_t i = 0; i < written + 10; i++) {
		char kk[32];
		uint8_t v[3000];
		size_t kl = key_of(kk, i), vl = val_of(v, i), gl = 0, pl = 0;
		rc = pbox_bt_lookup(k, kk, kl, got, sizeof(got), &gl);
		if (rc == PBOX_ENOTFOUND) {
			REQ(i >= must, "round %u: key %llu acked durable at or below the shipped LSN "
				       "%llu is missing on the replica", round, (unsigned long long)i,
			    (unsigned long long)shipped);
			continue;
		}
		CK_RC(rc, 0);
		present++;
		REQ(i < written && gl == vl && !memcmp(got, v, vl), "round %u: key %llu wrong",
		    round, (unsigned long long)i);
		/* a prefix of the primary's durable history: the recovered primary has it too */
		CK_RC(pbox_bt_lookup(x.keys, kk, kl, pv, sizeof(pv), &pl), 0);
	}
	bt_verify(k);
	/* the promoted replica takes writes and keeps them */
	char kk[32];
	size_t kl = (size_t)sprintf(kk, "after-promotion");
	CK_RC(pbox_bt_upsert(k, kk, kl, "x", 1, PBOX_BT_DURABLE), 0);
	pbox_bt_close(k);
	pbox_bt_close(b);
	CK_RC(pbox_store_close(x.r.st), 0);
	node_open(&x.r, "/r");
	k = bt_open(x.r.st, "keys");
	size_t gl = 0;
	CK_RC(pbox_bt_lookup(k, kk, kl, got, sizeof(got), &gl), 0);
	REQ_EQ(bt_count(k), present + 1);
	pbox_bt_close(k);
	CK_RC(pbox_store_close(x.r.st), 0);
	pbox_bt_close(x.keys);
	pbox_bt_close(x.bank);
	CK_RC(pbox_store_close(x.p.st), 0);
	pbox_io_memfs_destroy(x.p.fs);
	pbox_io_memfs_destroy(x.r.fs);
	fprintf(stderr, "powercut %u: %llu written, %llu on the replica (%llu required)\n", round,
		(unsigned long long)written, (unsigned long long)present, (unsigned long long)must);
	free(l);
}

START_TEST(t_powercut)
{
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0x5eed);
	unsigned rounds = pbox_test_cycles(8);
	for (unsigned i = 0; i < rounds; i++)
		powercut_round(i, &r);
}
END_TEST

/* ---- the lag bound ----------------------------------------------------------------------- */

static void fill(pbox_bt *bt, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++) {
		char k[32];
		uint8_t v[3000];
		size_t kl = key_of(k, i), vl = val_of(v, i);
		CK_RC(pbox_bt_upsert(bt, k, kl, v, vl, i + 1 == to ? PBOX_BT_DURABLE : 0), 0);
	}
}

START_TEST(t_lag)
{
	node p = { 0 };
	CK_RC(pbox_io_memfs_create(&p.fs), 0);
	opts(&p.o, pbox_io_memfs_io(p.fs), p.err, sizeof(p.err));
	p.o.create = true;
	p.o.checkpoint_log_bytes = 0;
	node_open(&p, "/p");
	pbox_bt *bt = bt_create(p.st, "keys");
	fill(bt, 0, 100);
	pbox_lsn from = pbox_wal_durable_lsn(pbox_store_wal(p.st));
	char err[256] = "";
	pbox_tail_options to;
	pbox_tail_options_init(&to);
	to.errbuf = err;
	to.errbuf_len = sizeof(err);
	to.max_lag_bytes = 100; /* less than a segment */
	pbox_tail *near, *far;
	CK_RC(pbox_store_tail_open(p.st, from, &to, &near), PBOX_EINVAL);
	REQ(err[0], "no explanation");
	to.max_lag_bytes = 2u << 20;
	CK_RC(pbox_store_tail_open(p.st, from, &to, &near), 0);
	CK_RC(pbox_store_tail_open(p.st, pbox_wal_end_lsn(pbox_store_wal(p.st)) + 4096, &to, &far),
	      PBOX_EINVAL);
	pbox_tail_options tf;
	pbox_tail_options_init(&tf); /* 256 MiB: holds the log back */
	CK_RC(pbox_store_tail_open(p.st, from, &tf, &far), 0);
	unsigned char *buf = xmalloc(MSG_CAP);
	size_t len = 0;
	pbox_lsn lsn = 0, end = 0;
	CK_RC(pbox_store_tail_next(near, buf, MSG_CAP, &len, &lsn, &end, 0), 0); /* nothing yet */
	uint64_t n = 100;
	while (pbox_wal_end_lsn(pbox_store_wal(p.st)) - from < (6u << 20)) { /* 6 MiB of log */
		fill(bt, n, n + 1000);
		n += 1000;
	}
	CK_RC(pbox_store_checkpoint(p.st), 0);
	pbox_wal_info wi;
	pbox_wal_get_info(pbox_store_wal(p.st), &wi);
	REQ_GT(wi.segments, 4); /* far holds the log */
	/* a buffer too small: the size needed, nothing consumed */
	CK_RC(pbox_store_tail_next(far, buf, 10, &len, &lsn, &end, 0), PBOX_ETOOSMALL);
	REQ_GT(len, 10);
	CK_RC(pbox_store_tail_next(far, buf, MSG_CAP, &len, &lsn, &end, 0), 1);
	REQ_EQ(lsn >= from && lsn < from + 4096, 1);
	err[0] = 0;
	CK_RC(pbox_store_tail_next(near, buf, MSG_CAP, &len, &lsn, &end, 0), PBOX_ELAGGED);
	REQ(strstr(err, "resynchronise"), "explanation: %s", err);
	CK_RC(pbox_store_tail_next(near, buf, MSG_CAP, &len, &lsn, &end, 0), PBOX_ELAGGED);
	pbox_store_tail_close(far);
	CK_RC(pbox_store_checkpoint(p.st), 0);
	pbox_wal_get_info(pbox_store_wal(p.st), &wi);
	REQ(wi.segments <= 2, "%u segments after the tails let go", wi.segments);
	/* a tail from a recycled LSN: lagged at once */
	CK_RC(pbox_store_tail_open(p.st, from, &to, &far), PBOX_ELAGGED);
	pbox_store_tail_close(near);
	/* the lag is also enforced by checkpoints for a tail nobody reads */
	CK_RC(pbox_store_tail_open(p.st, pbox_wal_durable_lsn(pbox_store_wal(p.st)), &to, &near), 0);
	fill(bt, n, 3 * n);
	CK_RC(pbox_store_checkpoint(p.st), 0);
	pbox_wal_get_info(pbox_store_wal(p.st), &wi);
	REQ(wi.segments <= 2, "%u segments: the idle tail held the log", wi.segments);
	CK_RC(pbox_store_tail_next(near, buf, MSG_CAP, &len, &lsn, &end, 0), PBOX_ELAGGED);
	pbox_store_tail_close(near);
	free(buf);
	pbox_bt_close(bt);
	CK_RC(pbox_store_close(p.st), 0);
	pbox_io_memfs_destroy(p.fs);
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------------ */

/* Bad arguments everywhere: PBOX_EINVAL, nothing changed (and read sessions on a normal
 * store are no-ops). */
START_TEST(t_args)
{
	pair x;
	pair_init(&x);
	pbox_tail *tl = NULL;
	CK_RC(pbox_store_tail_open(NULL, 0, NULL, &tl), PBOX_EINVAL);
	CK_RC(pbox_store_tail_open(x.p.st, 0, NULL, NULL), PBOX_EINVAL);
	CK_RC(pbox_store_tail_open(x.p.st, pbox_store_replica_lsn(x.r.st), NULL, &tl), 0);
	REQ_EQ(pbox_store_tail_pos(tl), pbox_store_replica_lsn(x.r.st));
	size_t len = 0;
	unsigned char small[8];
	CK_RC(pbox_store_tail_next(NULL, small, sizeof(small), &len, NULL, NULL, 0), PBOX_EINVAL);
	CK_RC(pbox_store_tail_next(tl, small, sizeof(small), NULL, NULL, NULL, 0), PBOX_EINVAL);
	CK_RC(pbox_store_tail_next(tl, NULL, 8, &len, NULL, NULL, 0), PBOX_EINVAL);
	pbox_store_tail_close(NULL);
	pbox_store_tail_close(tl);
	char err[256];
	CK_RC(pbox_store_apply(NULL, small, sizeof(small), err, sizeof(err)), PBOX_EINVAL);
	CK_RC(pbox_store_apply(x.p.st, small, sizeof(small), err, sizeof(err)), PBOX_EINVAL);
	CK_RC(pbox_store_apply(x.r.st, NULL, 8, err, sizeof(err)), PBOX_EINVAL);
	CK_RC(pbox_store_apply(x.r.st, small, 0, NULL, 0), PBOX_ECORRUPT);
	pbox_replica_info ri;
	CK_RC(pbox_store_replica_info(x.p.st, &ri), PBOX_EINVAL);
	CK_RC(pbox_store_replica_info(NULL, &ri), PBOX_EINVAL);
	CK_RC(pbox_store_replica_info(x.r.st, NULL), PBOX_EINVAL);
	CK_RC(pbox_store_read_begin(NULL, 0), PBOX_EINVAL);
	CK_RC(pbox_store_read_begin(x.p.st, 0), 0); /* a normal store: no-op */
	pbox_store_read_end(x.p.st);
	/* the other new calls' argument checks */
	pbox_bt_inspect_info ii;
	CK_RC(pbox_bt_inspect(NULL, &ii), PBOX_EINVAL);
	CK_RC(pbox_bt_inspect(x.keys, NULL), PBOX_EINVAL);
	CK_RC(pbox_store_backup(NULL, "/b", NULL, NULL), PBOX_EINVAL);
	CK_RC(pbox_store_backup(x.p.st, NULL, NULL, NULL), PBOX_EINVAL);
	char longname[4100];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = 0;
	CK_RC(pbox_store_backup(x.p.st, longname, NULL, NULL), PBOX_EINVAL);
	CK_RC(pbox_bt_copy_trees(x.p.st, NULL, NULL), PBOX_EINVAL);
	/* the replica still follows after all that */
	pbox_replica_info r0;
	CK_RC(pbox_store_replica_info(x.r.st, &r0), 0);
	REQ_EQ(r0.refused, 1); /* the empty group */
	if (x.rkeys)
		pbox_bt_close(x.rkeys);
	if (x.rbank)
		pbox_bt_close(x.rbank);
	CK_RC(pbox_store_close(x.r.st), 0);
	pbox_bt_close(x.keys);
	pbox_bt_close(x.bank);
	CK_RC(pbox_store_close(x.p.st), 0);
	pbox_io_memfs_destroy(x.p.fs);
	pbox_io_memfs_destroy(x.r.fs);
}
END_TEST

START_TEST(t_refuse)
{
	pair x;
	pair_init(&x);
	fill(x.keys, 0, 200);
	pbox_txn *t;
	CK_RC(pbox_txn_begin(x.p.st, 0, &t), 0);
	int64_t v = START;
	CK_RC(pbox_txn_put(t, x.bank, "acct00", 6, &v, 8), 0);
	CK_RC(pbox_txn_commit(t, PBOX_BT_DURABLE), 0);
	pbox_tail *tl;
	CK_RC(pbox_store_tail_open(x.p.st, pbox_store_replica_lsn(x.r.st), NULL, &tl), 0);
	enum { N = 4 };
	unsigned char *g[N];
	size_t gl[N];
	for (unsigned i = 0; i < N; i++) {
		g[i] = xmalloc(MSG_CAP);
		CK_RC(pbox_store_tail_next(tl, g[i], MSG_CAP, &gl[i], NULL, NULL, 1000), 1);
	}
	pbox_lsn start = pbox_store_replica_lsn(x.r.st);
	char err[256];
	unsigned char *bad = xmalloc(MSG_CAP);
	/* damaged anywhere: header, record header, payload, checksum */
	size_t at[] = { 0, 9, 17, 33, 37, 41, PBOX_SHIP_HDR, PBOX_SHIP_HDR + 5, gl[0] / 2, gl[0] - 1 };
	for (unsigned i = 0; i < PBOX_ARRAY_LEN(at); i++) {
		memcpy(bad, g[0], gl[0]);
		bad[at[i]] ^= 0x40;
		err[0] = 0;
		int rc = pbox_store_apply(x.r.st, bad, gl[0], err, sizeof(err));
		REQ(rc == PBOX_ECORRUPT || rc == PBOX_EVERSION, "flip at %zu: %s", at[i],
		    pbox_status_name(rc));
		REQ(err[0], "flip at %zu: no explanation", at[i]);
	}
	/* truncated, padded, empty, garbage */
	CK_RC(pbox_store_apply(x.r.st, g[0], gl[0] - 1, err, sizeof(err)), PBOX_ECORRUPT);
	REQ(strstr(err, "truncated"), "%s", err);
	memcpy(bad, g[0], gl[0]);
	bad[gl[0]] = 0;
	CK_RC(pbox_store_apply(x.r.st, bad, gl[0] + 1, err, sizeof(err)), PBOX_ECORRUPT);
	CK_RC(pbox_store_apply(x.r.st, g[0], 10, err, sizeof(err)), PBOX_ECORRUPT);
	CK_RC(pbox_store_apply(x.r.st, "", 0, err, sizeof(err)), PBOX_ECORRUPT);
	/* out of order: a gap */
	err[0] = 0;
	CK_RC(pbox_store_apply(x.r.st, g[1], gl[1], err, sizeof(err)), PBOX_EINVAL);
	REQ(strstr(err, "gap"), "%s", err);
	/* not a replica */
	CK_RC(pbox_store_apply(x.p.st, g[0], gl[0], err, sizeof(err)), PBOX_EINVAL);
	pbox_replica_info ri;
	CK_RC(pbox_store_replica_info(x.r.st, &ri), 0);
	REQ_EQ(ri.applied, 0);
	REQ_EQ(pbox_store_replica_lsn(x.r.st), start);
	CK_RC(pbox_store_replica_info(x.p.st, &ri), PBOX_EINVAL);
	/* writes to a replica */
	CK_RC(pbox_bt_upsert(x.rkeys, "zz", 2, "v", 1, 0), PBOX_ENOTSUP);
	/* the good sequence; duplicates ignored */
	CK_RC(pbox_store_apply(x.r.st, g[0], gl[0], err, sizeof(err)), 0);
	CK_RC(pbox_store_apply(x.r.st, g[0], gl[0], err, sizeof(err)), 1);
	for (unsigned i = 1; i < N; i++)
		CK_RC(pbox_store_apply(x.r.st, g[i], gl[i], err, sizeof(err)), 0);
	CK_RC(pbox_store_apply(x.r.st, g[2], gl[2], err, sizeof(err)), 1);
	/* and the rest */
	for (;;) {
		size_t len;
		int rc = pbox_store_tail_next(tl, bad, MSG_CAP, &len, NULL, NULL, 0);
		if (rc == 0)
			break;
		CK_RC(rc, 1);
		CK_RC(pbox_store_apply(x.r.st, bad, len, err, sizeof(err)), 0);
	}
	CK_RC(pbox_store_read_begin(x.r.st, 1000), 0);
	th a = tree_hash(x.keys), b = tree_hash(x.rkeys);
	REQ(a.n == b.n && a.h == b.h, "keys differ: %llu vs %llu", (unsigned long long)a.n,
	    (unsigned long long)b.n);
	check_bank(x.rbank, "replica");
	pbox_store_read_end(x.r.st);
	/* a replica reopens (recovery, not promotion) and follows on */
	pbox_bt_close(x.rkeys);
	pbox_bt_close(x.rbank);
	CK_RC(pbox_store_close(x.r.st), 0);
	node_open(&x.r, "/r");
	fill(x.keys, 200, 400);
	for (;;) {
		size_t len;
		int rc = pbox_store_tail_next(tl, bad, MSG_CAP, &len, NULL, NULL, 0);
		if (rc == 0)
			break;
		CK_RC(rc, 1);
		CK_RC(pbox_store_apply(x.r.st, bad, len, err, sizeof(err)), 0);
	}
	x.rkeys = bt_open(x.r.st, "keys");
	REQ_EQ(bt_count(x.rkeys), 400);
	pbox_bt_close(x.rkeys);
	pbox_store_tail_close(tl);
	for (unsigned i = 0; i < N; i++)
		free(g[i]);
	free(bad);
	CK_RC(pbox_store_close(x.r.st), 0);
	pbox_bt_close(x.keys);
	pbox_bt_close(x.bank);
	CK_RC(pbox_store_close(x.p.st), 0);
	pbox_io_memfs_destroy(x.p.fs);
	pbox_io_memfs_destroy(x.r.fs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("replica");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, t_args);
	tcase_add_test(tc, t_refuse);
	tcase_add_test(tc, t_lag);
	tcase_add_test(tc, t_ship);
	tcase_add_test(tc, t_powercut);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
