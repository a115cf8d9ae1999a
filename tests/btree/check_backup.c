/*
 * check_backup.c — online backup (pbox_store_backup, pbox/storage.h), through trees and
 * transactions on memfs.
 *
 *   quiescent    a store with inline and overflow values, checkpointed mid-way: the copy
 *                opens (a second store on the same memfs), holds every pair, verifies; the
 *                source goes on working; the report's figures are sane
 *   dest         bad destinations: a file, a non-empty directory, a missing parent
 *                (PBOX_EEXIST, PBOX_ENOTFOUND, nothing written); an empty directory is fine;
 *                a second backup while one runs is PBOX_EBUSY; a poisoned store makes none
 *   cancel       the progress callback cancels: its code is returned, the destination
 *                refuses to open (PBOX_EPARTIAL) and holds no data file
 *   concurrent   three backups (rate limited, so checkpoints land inside them) while a
 *                writer inserts keys (every eighth commit durable), a transaction thread
 *                moves money between accounts and a thread checkpoints in a loop: every
 *                key acknowledged durable before a backup began is in its copy with its
 *                value, no key the writer never wrote is, the balances add up (no partial
 *                transaction) and the trees verify; at least one checkpoint ran inside a
 *                backup (the log floor was needed)
 *   powercut     a power cut (or a kill -9) at calls spread over a whole backup: the source
 *                reopens with every pair; the destination either refuses (PBOX_EPARTIAL),
 *                is absent or empty (PBOX_ENOTFOUND), or opens with every pair
 *   faults       ENOSPC writing the copy, EIO reading the source: the error is returned,
 *                the destination refuses to open, the source is not poisoned
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACCTS 32
#define START 1000

/* A store on a fresh memfs at DIR_ (segments of seg_mb MiB: small, so checkpoints recycle). */
static void env_seg(env *e, pbox_io *io_over, unsigned seg_mb)
{
	memset(e, 0, sizeof(*e));
	CK_RC(pbox_io_memfs_create(&e->fs), 0);
	pbox_store_options_init(&e->o);
	e->o.io = io_over ? io_over : pbox_io_memfs_io(e->fs);
	e->o.create = true;
	e->o.page_size = 4096;
	e->o.budget_bytes = 256 * 4096;
	e->o.max_bytes = 1ull << 30;
	e->o.wal_segment_size = seg_mb << 20;
	e->o.wal_flush_delay_us = 0;
	const pbox_redo_handler *h;
	unsigned n;
	pbox_bt_redo_handlers(&h, &n);
	e->o.redo = h;
	e->o.nredo = n;
	e->o.errbuf = e->err;
	e->o.errbuf_len = sizeof(e->err);
	env_open(e);
}

/* 4 MiB segments: the small logs of these tests never reach half a segment, so the WAL's
 * background thread prepares no segment while a test counts a backup's calls */
static void env_small(env *e, pbox_io *io_over)
{
	env_seg(e, io_over, 4);
}

/* Open the copy at dir with the source's options (no create). */
static int open_copy(env *e, const char *dir, pbox_store **out)
{
	pbox_store_options o = e->o;
	o.create = false;
	o.checkpoint_log_bytes = 0;
	return pbox_store_open(dir, &o, out);
}

static size_t key_of(char *k, uint64_t i)
{
	return (size_t)sprintf(k, "k%08llu", (unsigned long long)i);
}

/* Value of key i: its number, then filler derived from it; every 50th is 3,000 bytes
 * (overflow pages), the rest 100. */
static size_t val_of(uint8_t *v, uint64_t i)
{
	size_t n = i % 50 == 7 ? 3000 : 100;
	uint64_t x = mix64(i + 1);
	memcpy(v, &i, 8);
	for (size_t j = 8; j < n; j++) {
		v[j] = (uint8_t)x;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	}
	return n;
}

static void put_range(pbox_bt *bt, uint64_t from, uint64_t to, unsigned flags)
{
	for (uint64_t i = from; i < to; i++) {
		char k[32];
		uint8_t v[3000];
		size_t kl = key_of(k, i), vl = val_of(v, i);
		CK_RC(pbox_bt_upsert(bt, k, kl, v, vl, i + 1 == to ? flags : 0), 0);
	}
}

/* Every key below n present with its value; keys at or above limit absent. */
static void check_keys(pbox_bt *bt, uint64_t n, uint64_t limit)
{
	static uint8_t got[4096];
	for (uint64_t i = 0; i < limit; i++) {
		char k[32];
		uint8_t v[3000];
		size_t kl = key_of(k, i), vl = val_of(v, i), gl = 0;
		int rc = pbox_bt_lookup(bt, k, kl, got, sizeof(got), &gl);
		if (i >= n && rc == PBOX_ENOTFOUND)
			continue;
		if (rc == PBOX_ECORRUPT) {
			pbox_corruption c;
			char where[200] = "";
			if (pbox_corruption_last(&c))
				pbox_corruption_format(&c, where, sizeof(where));
			fprintf(stderr, "corruption: key %llu: %s\n", (unsigned long long)i, where);
		}
		REQ(rc == 0, "key %llu (of %llu acknowledged): %s", (unsigned long long)i,
		    (unsigned long long)n, pbox_status_name(rc));
		REQ(gl == vl && !memcmp(got, v, vl), "key %llu: wrong value", (unsigned long long)i);
	}
	char k[32];
	size_t kl = key_of(k, limit), gl;
	CK_RC(pbox_bt_lookup(bt, k, kl, got, sizeof(got), &gl), PBOX_ENOTFOUND);
}

START_TEST(t_quiescent)
{
	env e;
	env_small(&e, NULL);
	pbox_bt *bt = bt_create(e.st, "t");
	put_range(bt, 0, 3000, 0);
	CK_RC(pbox_store_checkpoint(e.st), 0);
	put_range(bt, 3000, 5000, PBOX_BT_DURABLE);
	pbox_store_stats s;
	pbox_store_get_stats(e.st, &s);
	pbox_backup_info info;
	char err[256] = "";
	pbox_backup_options bo;
	pbox_backup_options_init(&bo);
	bo.errbuf = err;
	bo.errbuf_len = sizeof(err);
	CK_RC(pbox_store_backup(e.st, "/copy", &bo, &info), 0);
	REQ(err[0] == 0, "errbuf after success: %s", err);
	REQ_GE(info.end_lsn, s.wal_durable);
	REQ_LE(info.start_lsn, s.redo_start);
	REQ_GT(info.data_bytes, 0);
	REQ_GT(info.log_bytes, 0);
	/* the source goes on */
	put_range(bt, 5000, 5100, PBOX_BT_DURABLE);
	pbox_store *cp;
	CK_RC(open_copy(&e, "/copy", &cp), 0);
	pbox_bt *cbt = bt_open(cp, "t");
	check_keys(cbt, 5000, 5000);
	bt_verify(cbt);
	pbox_bt_close(cbt);
	CK_RC(pbox_store_close(cp), 0);
	check_keys(bt, 5100, 5100);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

static int nested_fn(uint64_t done, uint64_t total, void *arg)
{
	(void)done;
	(void)total;
	int *rc = arg;
	if (*rc == 1) /* once: a second backup of the same store while this one runs */
		*rc = pbox_store_backup(*(pbox_store **)(rc + 2), "/nested", NULL, NULL);
	return 0;
}

START_TEST(t_dest)
{
	env e;
	env_small(&e, NULL);
	pbox_io *io = pbox_io_memfs_io(e.fs);
	pbox_bt *bt = bt_create(e.st, "t");
	put_range(bt, 0, 200, PBOX_BT_DURABLE);
	char err[256];
	pbox_backup_options bo;
	pbox_backup_options_init(&bo);
	bo.errbuf = err;
	bo.errbuf_len = sizeof(err);
	/* a file */
	int fd = io->open(io, "/file", O_CREAT | O_WRONLY, 0644);
	REQ_T(fd >= 0);
	io->close(io, fd);
	CK_RC(pbox_store_backup(e.st, "/file", &bo, NULL), PBOX_EEXIST);
	REQ(strstr(err, "not an empty directory"), "errbuf: %s", err);
	/* a non-empty directory: untouched */
	CK_RC(io->mkdir(io, "/full", 0755), 0);
	fd = io->open(io, "/full/x", O_CREAT | O_WRONLY, 0644);
	REQ_T(fd >= 0);
	io->close(io, fd);
	CK_RC(pbox_store_backup(e.st, "/full", &bo, NULL), PBOX_EEXIST);
	fd = io->open(io, "/full/" "BACKUP-INCOMPLETE", O_RDONLY, 0);
	CK_RC(fd, -ENOENT);
	/* a missing parent */
	CK_RC(pbox_store_backup(e.st, "/no/such/dir", &bo, NULL), PBOX_ENOTFOUND);
	REQ(strstr(err, "does not exist"), "errbuf: %s", err);
	CK_RC(pbox_store_backup(e.st, "", &bo, NULL), PBOX_EINVAL);
	/* an empty directory is fine; the store itself is busy for a nested backup */
	CK_RC(io->mkdir(io, "/empty", 0755), 0);
	int state[4] = { 1 };
	memcpy(&state[2], &e.st, sizeof(e.st));
	bo.progress = nested_fn;
	bo.progress_arg = state;
	CK_RC(pbox_store_backup(e.st, "/empty", &bo, NULL), 0);
	CK_RC(state[0], PBOX_EBUSY);
	pbox_store *cp;
	CK_RC(open_copy(&e, "/empty", &cp), 0);
	pbox_bt *cbt = bt_open(cp, "t");
	check_keys(cbt, 200, 200);
	pbox_bt_close(cbt);
	CK_RC(pbox_store_close(cp), 0);
	/* a finished backup's directory is no empty directory */
	bo.progress = NULL;
	CK_RC(pbox_store_backup(e.st, "/empty", &bo, NULL), PBOX_EEXIST);
	/* a store that refuses work (after a failed sync) makes no backup */
	pbox_bt_close(bt);
	pbox_store_fail(e.st, -EIO);
	CK_RC(pbox_store_backup(e.st, "/after-fail", &bo, NULL), PBOX_EPOISONED);
	CK_RC(io->open(io, "/after-fail/" "BACKUP-INCOMPLETE", O_RDONLY, 0), -ENOENT);
	pbox_store_close(e.st); /* refuses too: the store was poisoned */
	e.st = NULL;
	env_fini(&e);
}
END_TEST

static int cancel_fn(uint64_t done, uint64_t total, void *arg)
{
	(void)total;
	(void)arg;
	return done >= (1u << 20) ? -42 : 0;
}

START_TEST(t_cancel)
{
	env e;
	env_small(&e, NULL);
	pbox_io *io = pbox_io_memfs_io(e.fs);
	pbox_bt *bt = bt_create(e.st, "t");
	put_range(bt, 0, 3000, PBOX_BT_DURABLE);
	pbox_backup_options bo;
	pbox_backup_options_init(&bo);
	bo.progress = cancel_fn;
	CK_RC(pbox_store_backup(e.st, "/copy", &bo, NULL), -42);
	pbox_store *cp;
	CK_RC(open_copy(&e, "/copy", &cp), PBOX_EPARTIAL);
	int fd = io->open(io, "/copy/data", O_RDONLY, 0);
	CK_RC(fd, -ENOENT);
	/* with create, too: an unfinished backup never becomes a store */
	pbox_store_options o = e.o;
	CK_RC(pbox_store_open("/copy", &o, &cp), PBOX_EPARTIAL);
	/* the source is fine, and a new backup elsewhere works */
	put_range(bt, 3000, 3100, PBOX_BT_DURABLE);
	CK_RC(pbox_store_backup(e.st, "/copy2", NULL, NULL), 0);
	CK_RC(open_copy(&e, "/copy2", &cp), 0);
	pbox_bt *cbt = bt_open(cp, "t");
	check_keys(cbt, 3100, 3100);
	pbox_bt_close(cbt);
	CK_RC(pbox_store_close(cp), 0);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* ---- concurrent ------------------------------------------------------------------------- */

typedef struct conc {
	pbox_store *st;
	pbox_bt *keys, *bank;
	atomic_bool stop;
	_Atomic uint64_t acked;   /* keys below it are durable */
	_Atomic uint64_t written; /* keys below it were written (or are being) */
	_Atomic int err;
	uint64_t transfers, checkpoints;
} conc;

static void *writer_main(void *arg)
{
	conc *c = arg;
	for (uint64_t i = 0; !atomic_load(&c->stop) && !atomic_load(&c->err); i++) {
		char k[32];
		uint8_t v[3000];
		size_t kl = key_of(k, i), vl = val_of(v, i);
		atomic_store(&c->written, i + 1);
		if (i >= 100000) /* bounded: a slow machine must not grow the store without end */
			usleep(1000);
		bool durable = i % 8 == 7;
		int rc = pbox_bt_upsert(c->keys, k, kl, v, vl, durable ? PBOX_BT_DURABLE : 0);
		if (rc) {
			atomic_store(&c->err, rc);
			break;
		}
		if (durable) /* the log is ordered: every earlier key is durable too */
			atomic_store(&c->acked, i + 1);
	}
	return NULL;
}

static void *bank_main(void *arg)
{
	conc *c = arg;
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 77);
	while (!atomic_load(&c->stop) && !atomic_load(&c->err)) {
		unsigned a = (unsigned)pbox_rng_below(&r, ACCTS), b = (a + 1 + (unsigned)pbox_rng_below(&r, ACCTS - 1)) % ACCTS;
		char ka[16], kb[16];
		size_t kal = (size_t)sprintf(ka, "acct%02u", a), kbl = (size_t)sprintf(kb, "acct%02u", b);
		pbox_txn *t;
		int rc = pbox_txn_begin(c->st, 0, &t);
		int64_t va = 0, vb = 0;
		size_t n = 0;
		if (!rc)
			rc = pbox_txn_get(t, c->bank, ka, kal, &va, 8, &n);
		if (!rc)
			rc = pbox_txn_get(t, c->bank, kb, kbl, &vb, 8, &n);
		int64_t amt = va > 0 ? 1 + (int64_t)pbox_rng_below(&r, (uint64_t)va) : 0;
		va -= amt;
		vb += amt;
		if (!rc)
			rc = pbox_txn_put(t, c->bank, ka, kal, &va, 8);
		if (!rc)
			rc = pbox_txn_put(t, c->bank, kb, kbl, &vb, 8);
		if (!rc) {
			rc = pbox_txn_commit(t, 0);
			t = NULL;
		}
		pbox_txn_abort(t);
		if (!rc)
			c->transfers++;
		else if (rc != PBOX_ECONFLICT) {
			atomic_store(&c->err, rc);
			break;
		}
	}
	return NULL;
}

static void *ckpt_main(void *arg)
{
	conc *c = arg;
	while (!atomic_load(&c->stop) && !atomic_load(&c->err)) {
		int rc = pbox_store_checkpoint(c->st);
		if (rc) {
			atomic_store(&c->err, rc);
			break;
		}
		c->checkpoints++;
		usleep(2000);
	}
	return NULL;
}

static void check_bank(pbox_bt *bank)
{
	int64_t sum = 0;
	for (unsigned a = 0; a < ACCTS; a++) {
		char k[16];
		int64_t v = 0;
		size_t n = 0;
		CK_RC(pbox_bt_lookup(bank, k, (size_t)sprintf(k, "acct%02u", a), &v, 8, &n), 0);
		REQ(v >= 0, "account %u: negative balance %lld", a, (long long)v);
		sum += v;
	}
	REQ(sum == (int64_t)ACCTS * START, "the balances add up to %lld, not %lld", (long long)sum,
	    (long long)ACCTS * START);
}

START_TEST(t_concurrent)
{
	env e;
	/* 4 MiB segments: the log a running backup holds back stays within memfs's descriptor
	 * limit (the WAL keeps every segment it retains open; with 1 MiB segments a fast writer
	 * ran it out: EMFILE), and checkpoints still recycle */
	env_seg(&e, NULL, 4);
	conc c = { .st = e.st };
	c.keys = bt_create(e.st, "keys");
	c.bank = bt_create(e.st, "bank");
	for (unsigned a = 0; a < ACCTS; a++) {
		char k[16];
		int64_t v = START;
		CK_RC(pbox_bt_upsert(c.bank, k, (size_t)sprintf(k, "acct%02u", a), &v, 8,
				     PBOX_BT_DURABLE), 0);
	}
	pthread_t th[3];
	REQ_T(pthread_create(&th[0], NULL, writer_main, &c) == 0);
	REQ_T(pthread_create(&th[1], NULL, bank_main, &c) == 0);
	REQ_T(pthread_create(&th[2], NULL, ckpt_main, &c) == 0);
	enum { NB = 3 };
	uint64_t acked[NB], inside = 0;
	for (unsigned b = 0; b < NB; b++) {
		usleep(100000);
		pbox_store_stats s0, s1;
		pbox_store_get_stats(e.st, &s0);
		acked[b] = atomic_load(&c.acked);
		char dest[32], err[256] = "";
		snprintf(dest, sizeof(dest), "/bk%u", b);
		pbox_backup_options bo;
		pbox_backup_options_init(&bo);
		bo.rate_bytes = 32u << 20; /* a few hundred ms: checkpoints land inside */
		bo.errbuf = err;
		bo.errbuf_len = sizeof(err);
		int rc = pbox_store_backup(e.st, dest, &bo, NULL);
		REQ(rc == 0, "backup %u: %s: %s", b, pbox_status_name(rc), err);
		pbox_store_get_stats(e.st, &s1);
		inside += s1.checkpoints - s0.checkpoints;
	}
	atomic_store(&c.stop, true);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CK_RC(atomic_load(&c.err), 0);
	REQ_GT(c.transfers, 0);
	REQ(inside > 0, "no checkpoint ran inside a backup (%llu checkpoints in all)",
	    (unsigned long long)c.checkpoints);
	uint64_t written = atomic_load(&c.written);
	for (unsigned b = 0; b < NB; b++) {
		char dest[32];
		snprintf(dest, sizeof(dest), "/bk%u", b);
		pbox_store *cp;
		int rc = open_copy(&e, dest, &cp);
		REQ(rc == 0, "open %s: %s: %s", dest, pbox_status_name(rc), e.err);
		pbox_bt *k = bt_open(cp, "keys"), *bank = bt_open(cp, "bank");
		check_keys(k, acked[b], written);
		check_bank(bank);
		bt_verify(k);
		bt_verify(bank);
		pbox_bt_close(k);
		pbox_bt_close(bank);
		CK_RC(pbox_store_close(cp), 0);
	}
	check_bank(c.bank);
	pbox_bt_close(c.keys);
	pbox_bt_close(c.bank);
	env_fini(&e);
}
END_TEST

/* ---- power cuts and crashes --------------------------------------------------------------- */

START_TEST(t_powercut)
{
	env e;
	env_small(&e, NULL);
	e.o.checkpoint_log_bytes = 0;
	env_reopen(&e);
	pbox_bt *bt = bt_create(e.st, "t");
	put_range(bt, 0, 1500, 0);
	CK_RC(pbox_store_checkpoint(e.st), 0);
	put_range(bt, 1500, 2500, PBOX_BT_DURABLE);
	pbox_bt_close(bt);
	/* calibrate: the state-changing calls of a whole backup */
	uint64_t c0 = pbox_io_memfs_changes(e.fs);
	CK_RC(pbox_store_backup(e.st, "/cal", NULL, NULL), 0);
	uint64_t span = pbox_io_memfs_changes(e.fs) - c0;
	REQ_GT(span, 10);
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed() ^ 0xbac);
	unsigned cuts = pbox_test_cycles(24), fired = 0, refused = 0, opened = 0;
	for (unsigned i = 0; i < cuts; i++) {
		uint64_t nth = 1 + (i * span) / cuts + pbox_rng_below(&r, span / cuts + 1);
		int what = i % 5 == 4 ? PBOX_MEMFS_CRASH : (int)(i % 4);
		char dest[32];
		snprintf(dest, sizeof(dest), "/pc%u", i);
		pbox_io_memfs_arm(e.fs, nth, what, pbox_rng_next(&r));
		int rc = pbox_store_backup(e.st, dest, NULL, NULL);
		if (!pbox_io_memfs_fired(e.fs)) {
			pbox_io_memfs_arm(e.fs, 0, 0, 0);
			CK_RC(rc, 0);
			continue;
		}
		REQ(rc != 0, "cut %u at call %llu: the backup reported success",
		    i, (unsigned long long)nth);
		fired++;
		pbox_store_close(e.st); /* fails: the machine is off */
		e.st = NULL;
		pbox_io_memfs_restart(e.fs);
		env_open(&e); /* the source recovers with every pair */
		bt = bt_open(e.st, "t");
		check_keys(bt, 2500, 2500);
		pbox_bt_close(bt);
		pbox_store *cp;
		rc = open_copy(&e, dest, &cp);
		if (rc == 0) {
			opened++;
			pbox_bt *cbt = bt_open(cp, "t");
			check_keys(cbt, 2500, 2500);
			bt_verify(cbt);
			pbox_bt_close(cbt);
			CK_RC(pbox_store_close(cp), 0);
		} else {
			REQ(rc == PBOX_EPARTIAL || rc == PBOX_ENOTFOUND, "cut %u at call %llu: "
			    "the copy: %s (%s)", i, (unsigned long long)nth, pbox_status_name(rc), e.err);
			refused++;
		}
	}
	REQ(fired * 2 >= cuts, "only %u of %u cuts fired (a backup makes %llu calls)", fired, cuts,
	    (unsigned long long)span);
	REQ_GT(refused, 0);
	printf("backup powercut: %u cuts over %llu calls: %u copies refused, %u opened\n", fired,
	       (unsigned long long)span, refused, opened);
	env_fini(&e);
}
END_TEST

START_TEST(t_faults)
{
	pbox_io_memfs *fs;
	CK_RC(pbox_io_memfs_create(&fs), 0);
	pbox_io_faulty *fy;
	CK_RC(pbox_io_faulty_create(pbox_io_memfs_io(fs), &fy), 0);
	env e;
	env_small(&e, pbox_io_faulty_io(fy));
	pbox_bt *bt = bt_create(e.st, "t");
	put_range(bt, 0, 2000, PBOX_BT_DURABLE);
	/* the nth call of its kind in a backup: the copy's first data chunk, the source's
	 * first data chunk, the marker's fsync, the first log segment's fdatasync */
	struct {
		pbox_io_kind kind;
		uint64_t nth;
		int err;
	} cases[] = { { PBOX_IO_PWRITE, 2, ENOSPC }, { PBOX_IO_PREAD, 2, EIO },
		      { PBOX_IO_FSYNC, 1, EIO }, { PBOX_IO_FDATASYNC, 2, EIO } };
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dest[32], err[256] = "";
		snprintf(dest, sizeof(dest), "/f%u", i);
		pbox_backup_options bo;
		pbox_backup_options_init(&bo);
		bo.errbuf = err;
		bo.errbuf_len = sizeof(err);
		pbox_io_faulty_arm(fy, cases[i].kind, cases[i].nth, cases[i].err, false);
		int rc = pbox_store_backup(e.st, dest, &bo, NULL);
		REQ(pbox_io_faulty_fired(fy), "case %u: the fault did not fire", i);
		pbox_io_faulty_disarm(fy);
		CK_RC(rc, -cases[i].err);
		REQ(err[0], "case %u: no explanation", i);
		pbox_store *cp;
		CK_RC(open_copy(&e, dest, &cp), PBOX_EPARTIAL);
		/* the source was not poisoned */
		put_range(bt, 2000 + i * 10, 2010 + i * 10, PBOX_BT_DURABLE);
		check_keys(bt, 2010 + i * 10, 2010 + i * 10);
	}
	pbox_bt_close(bt);
	CK_RC(pbox_store_close(e.st), 0);
	e.st = NULL;
	pbox_io_faulty_destroy(fy);
	pbox_io_memfs_destroy(e.fs);
	pbox_io_memfs_destroy(fs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backup");
	TCase *tc = tcase_create("backup");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, t_quiescent);
	tcase_add_test(tc, t_dest);
	tcase_add_test(tc, t_cancel);
	tcase_add_test(tc, t_concurrent);
	tcase_add_test(tc, t_powercut);
	tcase_add_test(tc, t_faults);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
