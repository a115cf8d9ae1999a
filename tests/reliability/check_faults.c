/*
 * check_faults.c — the fault matrix: a small btree store on memfs behind the fault-injecting
 * wrapper; for each phase (create/open, durable puts, a durable batch commit, a checkpoint,
 * recovery at open, an online backup, a compacting copy) and each fault — the Nth call of
 * each I/O kind failing with EIO, the Nth
 * pwrite failing with ENOSPC or made short, once or from then on (sticky), the Nth
 * allocation failing, once or sticky — N runs over every call the phase makes (until the
 * armed fault no longer fires). Every run:
 *   - nothing crashes, nothing leaks (LeakSanitizer in the ASan build);
 *   - a failed write or sync reaches the caller: the phase's operation or the close after
 *     it returns an error (a failed read may be retried or worked around);
 *   - the store is closed (still faulty when sticky), the power is cut (every unsynced
 *     write dropped, or every one kept, alternately), and reopened without faults: open
 *     succeeds, pbox_bt_verify passes, every acknowledged write is there (a durable write
 *     that returned 0, or any write before a checkpoint or close that returned 0), every
 *     other key holds a state some write gave it, a failed batch is all or nothing, and the
 *     store takes a durable write again.
 *
 * ThreadSanitizer builds try every third N (PBOX_STRESS_SCALE > 1: every N).
 * PBOX_FAULT_PHASE=name limits the run to one phase; PBOX_FAULT_VERBOSE=1 prints each run.
 */
#include "rel_common.h"

#include <errno.h>
#include <stdlib.h>

enum { PH_CREATE, PH_PUT, PH_BATCH, PH_CKPT, PH_RECOVER, PH_BACKUP, PH_COMPACT, PH_COUNT };
static const char *const phase_names[PH_COUNT] = { "create", "put", "batch", "checkpoint",
						   "recovery", "backup", "compact" };
#define BACKUP_DIR "/bk"
#define COMPACT_DIR "/cp"

typedef struct fault {
	bool alloc;        /* allocation fault (kind, err unused) */
	pbox_io_kind kind;
	int err;           /* 0 with PBOX_IO_PWRITE: short write */
	bool sticky;
	uint64_t nth;
} fault;

typedef struct fx {
	pbox_io_memfs *fs;
	pbox_io_faulty *f;
	pbox_store_options o;
	pbox_store *st;
	pbox_bt *bt;
	char err[256];
	rel_oracle or;
	bool store_acked, tree_acked;
	/* the batch of the batch phase, if it failed: key -> target state */
	unsigned nbatch;
	unsigned bkey[REL_NK];
	int btarget[REL_NK], bbefore[REL_NK];
	bool op_failed; /* some operation of the phase returned an error */
	/* the backup phase: did pbox_store_backup return 0, and the states it must hold */
	bool backup_ok;
	int bk_state[REL_NK];
	/* the compact phase: did the copy (pbox_bt_copy_trees into a new store, closed) return
	 * 0; bk_state holds the source's state it copied */
	bool compact_ok;
	bool unsettled; /* recovery could not read every key: their state is unknown */
} fx;

static bool verbose;
static pbox_wal_sync wal_sync = PBOX_WAL_SYNC_FDATASYNC;

static void fx_init(fx *x)
{
	memset(x, 0, sizeof(*x));
	REQ(pbox_io_memfs_create(&x->fs) == 0, "memfs");
	REQ(pbox_io_faulty_create(pbox_io_memfs_io(x->fs), &x->f) == 0, "faulty");
	pbox_store_options_init(&x->o);
	x->o.io = pbox_io_faulty_io(x->f);
	x->o.create = true;
	x->o.page_size = 4096;
	x->o.budget_bytes = 64 * 4096;   /* the smallest pool: evictions write pages */
	x->o.max_bytes = 1ull << 20;     /* 256 pages: the data file stays small in memfs */
	x->o.wal_segment_size = 256u << 10;
	x->o.wal_flush_delay_us = 0;     /* no background thread: call counts are exact */
	x->o.wal_sync = wal_sync;
	x->o.checkpoint_log_bytes = 0;   /* no automatic checkpoints: nothing runs on its own */
	x->o.no_direct_io = true;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	x->o.redo = h;
	x->o.nredo = nh;
	x->o.errbuf = x->err;
	x->o.errbuf_len = sizeof(x->err);
	rel_oracle_init(&x->or);
}

static void fx_fini(fx *x)
{
	if (x->bt)
		pbox_bt_close(x->bt);
	if (x->st)
		pbox_store_close(x->st);
	pbox_io_faulty_destroy(x->f);
	pbox_io_memfs_destroy(x->fs);
}

#define OK(expr)                                                                            \
	do {                                                                                \
		int rc_ = (expr);                                                           \
		REQ(rc_ == 0, "%s:%d: %s = %s (%s)", __FILE__, __LINE__, #expr,              \
		    pbox_status_name(rc_), x->err);                                         \
	} while (0)

/* A store with a tree and 48 keys, some on overflow pages, part of it checkpointed. */
static void build_base(fx *x)
{
	OK(pbox_store_open(REL_DIR, &x->o, &x->st));
	OK(pbox_bt_create(x->st, REL_TREE, &x->bt));
	x->store_acked = x->tree_acked = true;
	for (unsigned k = 0; k < REL_NK; k += 2)
		OK(rel_put(x->bt, &x->or, k, k % 16 == 14 ? PBOX_BT_DURABLE : 0));
	OK(pbox_store_checkpoint(x->st));
	rel_oracle_durable(&x->or);
	for (unsigned k = 1; k < REL_NK; k += 4)
		OK(rel_put(x->bt, &x->or, k, 0));
	OK(rel_put(x->bt, &x->or, 3, PBOX_BT_DURABLE));
	x->o.create = false;
}

static void arm(fx *x, const fault *ft)
{
	if (ft->alloc)
		pbox_alloc_fail_nth(ft->nth, ft->sticky);
	else
		pbox_io_faulty_arm(x->f, ft->kind, ft->nth, ft->err, ft->sticky);
}

static bool fired(fx *x, const fault *ft)
{
	return ft->alloc ? pbox_alloc_failures() > 0 : pbox_io_faulty_fired(x->f);
}

static void note(fx *x, int rc)
{
	if (rc)
		x->op_failed = true;
}

/* The phase's work, with the fault armed at its start. */
static void run_phase(fx *x, int ph, const fault *ft)
{
	pbox_rng r;
	pbox_rng_seed(&r, 1000 + (uint64_t)ph);
	int rc;
	switch (ph) {
	case PH_CREATE:
		arm(x, ft);
		rc = pbox_store_open(REL_DIR, &x->o, &x->st);
		note(x, rc);
		if (rc)
			break;
		x->store_acked = true;
		rc = pbox_bt_create(x->st, REL_TREE, &x->bt);
		note(x, rc);
		if (rc)
			break;
		x->tree_acked = true;
		for (unsigned i = 0; i < 4; i++)
			note(x, rel_put(x->bt, &x->or, i * 5, PBOX_BT_DURABLE));
		break;
	case PH_PUT:
		arm(x, ft);
		for (unsigned i = 0; i < 12; i++) {
			unsigned k = (unsigned)pbox_rng_below(&r, REL_NK);
			if (pbox_rng_below(&r, 4) == 0)
				note(x, rel_del(x->bt, &x->or, k, PBOX_BT_DURABLE));
			else
				note(x, rel_put(x->bt, &x->or, k, PBOX_BT_DURABLE));
		}
		break;
	case PH_BATCH: {
		pbox_bt_batch *b = NULL;
		OK(pbox_bt_batch_create(&b));
		/* distinct keys, small values (a batch bounds the bytes per leaf) */
		bool used[REL_NK] = { false };
		while (x->nbatch < 16) {
			unsigned k = (unsigned)pbox_rng_below(&r, REL_NK);
			if (used[k])
				continue;
			used[k] = true;
			char key[8];
			size_t kl = rel_key(k, key);
			x->bkey[x->nbatch] = k;
			x->bbefore[x->nbatch] = x->or.last[k];
			if (pbox_rng_below(&r, 4) == 0) {
				OK(pbox_bt_batch_del(b, x->bt, key, kl));
				x->btarget[x->nbatch] = REL_ABSENT;
			} else {
				unsigned v = ++x->or.ver;
				while (rel_vlen(k, v) > 200)
					v = ++x->or.ver;
				uint8_t val[REL_VMAX];
				size_t vl = rel_val(k, v, val);
				OK(pbox_bt_batch_put(b, x->bt, key, kl, val, vl));
				x->btarget[x->nbatch] = (int)v;
			}
			x->nbatch++;
		}
		arm(x, ft);
		rc = pbox_bt_batch_commit(b, PBOX_BT_DURABLE);
		note(x, rc);
		for (unsigned i = 0; i < x->nbatch; i++)
			if (rc || x->btarget[i] != x->bbefore[i])
				rel_oracle_write(&x->or, x->bkey[i], x->btarget[i], rc);
		if (rc == 0) {
			rel_oracle_durable(&x->or);
			x->nbatch = 0; /* nothing to check for atomicity beyond the oracle */
		}
		pbox_bt_batch_destroy(b);
		/* the store after it: a durable put */
		note(x, rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), PBOX_BT_DURABLE));
		break;
	}
	case PH_CKPT:
		for (unsigned i = 0; i < 16; i++)
			OK(rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), 0));
		arm(x, ft);
		rc = pbox_store_checkpoint(x->st);
		note(x, rc);
		if (rc == 0)
			rel_oracle_durable(&x->or);
		note(x, rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), PBOX_BT_DURABLE));
		break;
	case PH_BACKUP:
		/* volatile writes, made durable by a flush: the copy must hold exactly them (no
		 * write runs during the backup) */
		for (unsigned i = 0; i < 8; i++)
			OK(rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), 0));
		OK(pbox_wal_flush(pbox_store_wal(x->st)));
		rel_oracle_durable(&x->or);
		memcpy(x->bk_state, x->or.durable, sizeof(x->bk_state));
		arm(x, ft);
		rc = pbox_store_backup(x->st, BACKUP_DIR, NULL, NULL);
		note(x, rc);
		x->backup_ok = rc == 0;
		/* the store after it: a durable put (a failed backup poisons nothing) */
		note(x, rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), PBOX_BT_DURABLE));
		break;
	case PH_COMPACT: {
		/* the rewrite behind `kvstore compact`: every tree into a new, empty store on the
		 * same (faulty) file system, from one snapshot of the source, which stays in use */
		for (unsigned i = 0; i < 8; i++)
			OK(rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), 0));
		memcpy(x->bk_state, x->or.last, sizeof(x->bk_state));
		pbox_store_options o = x->o;
		o.create = true;
		pbox_store *dst = NULL;
		arm(x, ft);
		rc = pbox_store_open(COMPACT_DIR, &o, &dst);
		note(x, rc);
		if (!rc) {
			pbox_bt_copy_info ci;
			rc = pbox_bt_copy_trees(x->st, dst, &ci);
			note(x, rc);
			REQ(rc || (ci.trees == 1 && ci.pairs > 0), "compact: copied %llu trees",
			    (unsigned long long)ci.trees);
			int c = pbox_store_close(dst);
			note(x, c);
			x->compact_ok = rc == 0 && c == 0;
		}
		/* the source after it: a durable put */
		note(x, rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), PBOX_BT_DURABLE));
		break;
	}
	case PH_RECOVER:
		arm(x, ft);
		rc = pbox_store_open(REL_DIR, &x->o, &x->st);
		note(x, rc);
		if (rc)
			break;
		rc = pbox_bt_open(x->st, REL_TREE, &x->bt);
		note(x, rc);
		if (rc)
			break;
		for (unsigned k = 0; k < REL_NK; k++) {
			int s = rel_read(x->bt, k);
			if (s < REL_ABSENT) { /* an error: reported, fine */
				note(x, s);
				x->unsettled = true;
				continue;
			}
			REQ(s != 0, "recovery: key %u holds a value never written", k);
			REQ(rel_oracle_allows(&x->or, k, s), "recovery: key %u in state %d, durable %d",
			    k, s, x->or.durable[k]);
			rel_oracle_settle(&x->or, k, s); /* what recovery found is the truth now */
		}
		note(x, pbox_bt_verify(x->bt, NULL));
		break;
	}
}

/* Before the recovery phase: more writes after the base's checkpoint, some volatile, then
 * a crash (the process dies; the OS keeps its writes). */
static void crash_after_writes(fx *x)
{
	pbox_rng r;
	pbox_rng_seed(&r, 77);
	for (unsigned i = 0; i < 24; i++)
		OK(rel_put(x->bt, &x->or, (unsigned)pbox_rng_below(&r, REL_NK), i == 19 ? PBOX_BT_DURABLE : 0));
	OK(rel_del(x->bt, &x->or, 5, 0));
	pbox_io_memfs_powercut(x->fs, PBOX_POWERCUT_KEEP_ALL, 1);
	pbox_bt_close(x->bt);
	x->bt = NULL;
	(void)pbox_store_close(x->st); /* fails: the machine is off */
	x->st = NULL;
	pbox_io_memfs_restart(x->fs);
	/* what survived is known only after recovery: until then the durable states and the
	 * possible ones stand, and no write since the crash has succeeded */
	for (unsigned k = 0; k < REL_NK; k++)
		x->or.last[k] = x->or.durable[k];
}

static const char *fault_name(const fault *ft, char *buf, size_t n)
{
	if (ft->alloc)
		snprintf(buf, n, "allocation %llu%s", (unsigned long long)ft->nth,
			 ft->sticky ? " sticky" : "");
	else
		snprintf(buf, n, "%s #%llu %s%s", pbox_io_kind_name(ft->kind),
			 (unsigned long long)ft->nth,
			 ft->err ? pbox_status_name(-ft->err) : "short", ft->sticky ? " sticky" : "");
	return buf;
}

typedef struct tally {
	uint64_t runs, fired, errors, swallowed;
} tally;

static void check_backup(fx *x, const char *fname, int mode)
{
	pbox_store_options o = x->o;
	o.io = pbox_io_memfs_io(x->fs); /* no faults */
	o.create = false;
	pbox_store *st;
	int rc = pbox_store_open(BACKUP_DIR, &o, &st);
	if (rc) {
		REQ(!x->backup_ok, "backup / %s (cut %d): the backup returned 0 but does not open: "
			"%s (%s)", fname, mode, pbox_status_name(rc), x->err);
		REQ(rc == PBOX_EPARTIAL || rc == PBOX_ENOTFOUND, "backup / %s (cut %d): a failed "
			"backup opens with %s, not PBOX_EPARTIAL", fname, mode, pbox_status_name(rc));
		return;
	}
	pbox_bt *bt;
	REQ(pbox_bt_open(st, REL_TREE, &bt) == 0, "backup / %s: no tree in the backup", fname);
	REQ(pbox_bt_verify(bt, NULL) == 0, "backup / %s: the backup does not verify", fname);
	for (unsigned k = 0; k < REL_NK; k++) {
		int s = rel_read(bt, k);
		REQ(s == x->bk_state[k], "backup / %s (cut %d, returned %d): key %u in state %d, "
			"the store's was %d", fname, mode, x->backup_ok, k, s, x->bk_state[k]);
	}
	pbox_bt_close(bt);
	REQ(pbox_store_close(st) == 0, "backup / %s: closing the backup", fname);
}

/* A copy whose open, copy and close returned 0 holds the source's state at the copy, also
 * after the power cut (close made it durable). A failed one is the caller's to discard
 * (kvstore removes it): it may or may not open, but never crashes a reader. */
static void check_compact(fx *x, const char *fname, int mode)
{
	pbox_store_options o = x->o;
	o.io = pbox_io_memfs_io(x->fs);
	o.create = false;
	pbox_store *st;
	int rc = pbox_store_open(COMPACT_DIR, &o, &st);
	REQ(rc == 0 || !x->compact_ok, "compact / %s (cut %d): the copy returned 0 but does not "
		"open: %s (%s)", fname, mode, pbox_status_name(rc), x->err);
	if (rc)
		return;
	pbox_bt *bt;
	rc = pbox_bt_open(st, REL_TREE, &bt);
	REQ(rc == 0 || !x->compact_ok, "compact / %s: no tree in the copy", fname);
	if (rc == 0) {
		int v = pbox_bt_verify(bt, NULL);
		REQ(v == 0 || !x->compact_ok, "compact / %s: the copy does not verify", fname);
		for (unsigned k = 0; x->compact_ok && k < REL_NK; k++) {
			int s = rel_read(bt, k);
			REQ(s == x->bk_state[k], "compact / %s (cut %d): key %u in state %d in the "
				"copy, the source's was %d", fname, mode, k, s, x->bk_state[k]);
		}
		pbox_bt_close(bt);
	}
	(void)pbox_store_close(st);
}

/* One run; returns whether the armed fault fired. */
static bool run_one(int ph, const fault *ft, tally *t)
{
	char fname[96];
	fault_name(ft, fname, sizeof(fname));
	fx x;
	fx_init(&x);
	if (ph != PH_CREATE)
		build_base(&x);
	if (ph == PH_RECOVER)
		crash_after_writes(&x);
	pbox_alloc_fail_nth(0, false);

	run_phase(&x, ph, ft);
	bool fi = fired(&x, ft);
	pbox_alloc_fail_nth(0, false);
	/* close, still faulty when sticky */
	if (x.bt)
		pbox_bt_close(x.bt);
	x.bt = NULL;
	bool had = x.st != NULL;
	int crc = had ? pbox_store_close(x.st) : 0;
	x.st = NULL;
	pbox_io_faulty_disarm(x.f);
	if (crc == 0 && had && !x.unsettled) /* a clean close makes every write that returned 0 durable */
		rel_oracle_durable(&x.or);
	if (crc)
		x.op_failed = true;
	t->runs++;
	t->fired += fi;
	t->errors += x.op_failed;
	/* a failed read may be retried, a failed close or ring set-up worked around (without a
	 * ring the pool writes a page per call): only writes and syncs must reach a caller */
	bool hard = fi && !ft->alloc && ft->err != 0 && ft->kind != PBOX_IO_PREAD &&
		    ft->kind != PBOX_IO_CLOSE && ft->kind != PBOX_IO_RING;
	if (hard && !x.op_failed) {
		t->swallowed++;
		if (verbose)
			fprintf(stderr, "faults: %s / %s: no error reached the caller\n",
				phase_names[ph], fname);
	}
	if (verbose)
		fprintf(stderr, "faults: %s / %s: fired %d, error %d\n", phase_names[ph], fname, fi,
			x.op_failed);

	/* power cut, restart, reopen without faults */
	pbox_powercut_mode mode = ft->nth % 2 ? PBOX_POWERCUT_KEEP_ALL : PBOX_POWERCUT_DROP_ALL;
	pbox_io_memfs_powercut(x.fs, mode, ft->nth);
	pbox_io_memfs_restart(x.fs);
	x.o.create = false;
	x.err[0] = 0;
	int rc = pbox_store_open(REL_DIR, &x.o, &x.st);
	if (!x.store_acked) {
		/* the create failed: nothing was promised. The directory opens, or reports
		 * why not; a retried create must then work or say why. */
		if (rc == 0) {
			/* a store that opens must be whole */
		} else {
			REQ(rc < 0, "%s / %s: reopen returned %d", phase_names[ph], fname, rc);
			x.st = NULL;
			fx_fini(&x);
			return fi;
		}
	}
	REQ(rc == 0, "%s / %s (cut %d): reopen without faults: %s (%s)", phase_names[ph], fname,
	    mode, pbox_status_name(rc), x.err);
	rc = pbox_bt_open(x.st, REL_TREE, &x.bt);
	if (rc == PBOX_ENOTFOUND && !x.tree_acked) {
		rc = pbox_bt_create(x.st, REL_TREE, &x.bt);
		REQ(rc == 0, "%s / %s: create the tree after reopen: %s", phase_names[ph], fname,
		    pbox_status_name(rc));
		for (unsigned k = 0; k < REL_NK; k++)
			REQ(x.or.durable[k] == REL_ABSENT, "%s / %s: acknowledged key %u without its tree",
			    phase_names[ph], fname, k);
	} else {
		REQ(rc == 0, "%s / %s: tree open after reopen: %s", phase_names[ph], fname,
		    pbox_status_name(rc));
	}
	pbox_bt_verify_info vi;
	rc = pbox_bt_verify(x.bt, &vi);
	REQ(rc == 0, "%s / %s (cut %d): verify after reopen: %s", phase_names[ph], fname, mode,
	    pbox_status_name(rc));
	int got[REL_NK];
	for (unsigned k = 0; k < REL_NK; k++) {
		int s = got[k] = rel_read(x.bt, k);
		REQ(s >= REL_ABSENT, "%s / %s: lookup of key %u after reopen: %s", phase_names[ph],
		    fname, k, pbox_status_name(s));
		REQ(s != 0, "%s / %s: key %u holds a value that was never written", phase_names[ph],
		    fname, k);
		REQ(rel_oracle_allows(&x.or, k, s),
		    "%s / %s (cut %d): key %u is in state %d; durable state %d (acknowledged write lost?)",
		    phase_names[ph], fname, mode, k, s, x.or.durable[k]);
	}
	/* a failed batch: all of it or none of it */
	if (x.nbatch) {
		unsigned applied = 0, missing = 0;
		for (unsigned i = 0; i < x.nbatch; i++) {
			if (x.btarget[i] == x.bbefore[i])
				continue;
			unsigned k = x.bkey[i];
			if (got[k] == x.btarget[i])
				applied++;
			else if (got[k] == x.bbefore[i])
				missing++;
		}
		REQ(applied == 0 || missing == 0,
		    "%s / %s: failed batch half applied (%u of its keys new, %u old)", phase_names[ph],
		    fname, applied, missing);
	}
	/* the backup, after the power cut: a backup that returned 0 opens and holds exactly the
	 * state of its call; one that failed refuses to open (or, failed after its marker went,
	 * holds that state too) */
	if (ph == PH_BACKUP)
		check_backup(&x, fname, mode);
	if (ph == PH_COMPACT)
		check_compact(&x, fname, mode);
	/* the store works again */
	for (unsigned k = 0; k < REL_NK; k++)
		rel_oracle_settle(&x.or, k, got[k]);
	rc = rel_put(x.bt, &x.or, 7, PBOX_BT_DURABLE);
	REQ(rc == 0, "%s / %s: durable put after reopen: %s", phase_names[ph], fname,
	    pbox_status_name(rc));
	pbox_bt_close(x.bt);
	x.bt = NULL;
	rc = pbox_store_close(x.st);
	x.st = NULL;
	REQ(rc == 0, "%s / %s: close after reopen: %s", phase_names[ph], fname, pbox_status_name(rc));
	fx_fini(&x);
	return fi;
}

/* Every N for one fault kind: until the fault no longer fires (the phase made fewer calls).
 * Returns how many runs it fired in (0: the phase never makes that call). */
static uint64_t sweep(int ph, fault ft, tally *t)
{
	uint64_t step = REL_TSAN && pbox_test_scale() == 1 ? 3 : 1; /* see rel_common.h */
	uint64_t before = t->fired;
	for (ft.nth = 1; ft.nth < 100000; ft.nth += step)
		if (!run_one(ph, &ft, t))
			return t->fired - before;
	ck_abort_msg("%s: the fault kept firing", phase_names[ph]);
	return 0;
}

static bool phase_selected(int ph)
{
	const char *e = getenv("PBOX_FAULT_PHASE");
	return !e || !*e || strcmp(e, phase_names[ph]) == 0;
}

/* I/O kinds: EIO on the Nth call of each kind; ENOSPC and short writes on pwrite. */
START_TEST(test_io_faults)
{
	int ph = _i / 2;
	bool sticky = _i % 2;
	if (!phase_selected(ph))
		return;
	verbose = getenv("PBOX_FAULT_VERBOSE") != NULL;
	tally t = { 0 };
	uint64_t eio_writes = 0;
	for (int kind = PBOX_IO_OPEN; kind < PBOX_IO_KIND_COUNT; kind++) {
		uint64_t f = sweep(ph, (fault){ .kind = (pbox_io_kind)kind, .err = EIO,
						.sticky = sticky }, &t);
		if (kind == PBOX_IO_PWRITE)
			eio_writes = f;
	}
	uint64_t enospc = sweep(ph, (fault){ .kind = PBOX_IO_PWRITE, .err = ENOSPC, .sticky = sticky }, &t);
	uint64_t shorts = sweep(ph, (fault){ .kind = PBOX_IO_PWRITE, .err = 0, .sticky = sticky }, &t);
	/* every phase but recovery (which only reads here: no torn tail to erase) writes: a
	 * sweep whose write faults never fired tested nothing (the backup phase too: it writes
	 * the copy, and a durable put after it) */
	REQ(t.fired > 0 && (ph == PH_RECOVER || (eio_writes > 0 && enospc > 0 && shorts > 0)),
	    "%s: write faults fired %llu (EIO), %llu (ENOSPC), %llu (short) times", phase_names[ph],
	    (unsigned long long)eio_writes, (unsigned long long)enospc, (unsigned long long)shorts);
	fprintf(stderr, "faults: %-10s I/O %-6s: %llu runs, %llu fired, %llu with an error, "
			"%llu write/sync faults that reached no caller\n",
		phase_names[ph], sticky ? "sticky" : "once", (unsigned long long)t.runs,
		(unsigned long long)t.fired, (unsigned long long)t.errors,
		(unsigned long long)t.swallowed);
	REQ(t.swallowed == 0, "%s: %llu failed writes or syncs were not reported (PBOX_FAULT_VERBOSE=1 "
			      "lists them)", phase_names[ph], (unsigned long long)t.swallowed);
}
END_TEST

/* The durable puts and the recovery again with the other sync backends (fsync, O_DSYNC
 * writes, io_uring-style linked write + fdatasync). */
START_TEST(test_io_faults_backends)
{
	static const pbox_wal_sync syncs[] = { PBOX_WAL_SYNC_FSYNC, PBOX_WAL_SYNC_DSYNC,
					       PBOX_WAL_SYNC_IO_URING };
	wal_sync = syncs[_i / 2];
	bool sticky = _i % 2;
	verbose = getenv("PBOX_FAULT_VERBOSE") != NULL;
	static const int phs[] = { PH_PUT, PH_RECOVER };
	for (unsigned p = 0; p < 2; p++) {
		int ph = phs[p];
		if (!phase_selected(ph))
			continue;
		tally t = { 0 };
		for (int kind = PBOX_IO_OPEN; kind < PBOX_IO_KIND_COUNT; kind++)
			sweep(ph, (fault){ .kind = (pbox_io_kind)kind, .err = EIO, .sticky = sticky }, &t);
		uint64_t shorts = sweep(ph, (fault){ .kind = PBOX_IO_PWRITE, .err = 0, .sticky = sticky }, &t);
		REQ(t.fired > 0 && (ph == PH_RECOVER || shorts > 0),
		    "%s (%s): faults fired %llu times, short writes %llu",
		    phase_names[ph], pbox_wal_sync_name(wal_sync), (unsigned long long)t.fired,
		    (unsigned long long)shorts);
		fprintf(stderr, "faults: %-10s I/O %-6s (%s): %llu runs, %llu fired, %llu with an "
				"error\n", phase_names[ph], sticky ? "sticky" : "once",
			pbox_wal_sync_name(wal_sync), (unsigned long long)t.runs,
			(unsigned long long)t.fired, (unsigned long long)t.errors);
		REQ(t.swallowed == 0, "%s (%s): %llu failed writes or syncs were not reported",
		    phase_names[ph], pbox_wal_sync_name(wal_sync), (unsigned long long)t.swallowed);
	}
	wal_sync = PBOX_WAL_SYNC_FDATASYNC;
}
END_TEST

START_TEST(test_alloc_faults)
{
	int ph = _i / 2;
	bool sticky = _i % 2;
	if (!phase_selected(ph))
		return;
	verbose = getenv("PBOX_FAULT_VERBOSE") != NULL;
	tally t = { 0 };
	uint64_t f = sweep(ph, (fault){ .alloc = true, .sticky = sticky }, &t);
	fprintf(stderr, "faults: %-10s alloc %-6s: %llu runs, %llu fired, %llu with an error\n",
		phase_names[ph], sticky ? "sticky" : "once", (unsigned long long)t.runs,
		(unsigned long long)f, (unsigned long long)t.errors);
	REQ(f > 0, "%s: no allocation failure ever fired", phase_names[ph]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("io");
	tcase_set_timeout(tc, 900);
	tcase_add_loop_test(tc, test_io_faults, 0, 2 * PH_COUNT);
	tcase_add_loop_test(tc, test_io_faults_backends, 0, 6);
	suite_add_tcase(s, tc);
	tc = tcase_create("alloc");
	tcase_set_timeout(tc, 900);
	tcase_add_loop_test(tc, test_alloc_faults, 0, 2 * PH_COUNT);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
