/*
 * engine_lmdb.c — the LMDB adapter of pbox-bench (Debian's liblmdb, 0.9.x).
 *
 * Settings a competent LMDB user would choose for this benchmark (also in bench/README.md):
 *   - one environment in the scratch directory, the unnamed main database, default key
 *     order (memcmp: the driver's big-endian keys sort numerically; MDB_INTEGERKEY would
 *     need native-endian keys);
 *   - map size 4 x keys x (key + value + 32 bytes) + 256 MiB: several times the data, so
 *     updates and copy-on-write never hit MDB_MAP_FULL; address space only;
 *   - commit mode: durable = LMDB's default (every commit syncs data, then the meta page);
 *     fast = MDB_NOSYNC | MDB_NOMETASYNC (commits reach the OS page cache only; nothing
 *     syncs until the environment is synced or closed — weaker than pagebox's fast mode,
 *     which syncs within about 1 ms). Switched with mdb_env_set_flags, which LMDB allows at
 *     any time; switching to durable first calls mdb_env_sync(env, 1);
 *   - MDB_NORDAHEAD in out-of-memory runs (random reads: read-ahead would only fill the page
 *     cache with neighbours); off otherwise (the data is in the page cache after the fill);
 *   - MDB_WRITEMAP (dirty pages written in place through a shared writable map instead of
 *     malloc'ed copies written back with pwrite) chosen by measurement, per commit mode:
 *     on in fast mode, off in durable mode (the driver's --lmdb-writemap auto; on/off force
 *     it). Measured on this machine (bench/README.md, 1 M keys): with synced commits
 *     WRITEMAP made fill-random 2.9x slower (22 k against 66 k keys/s) and ycsb-a 5x slower
 *     (a synced commit then msyncs the whole map instead of one fdatasync); without syncs it
 *     made fill-random 2.9x and ycsb-a 5.9x faster (no write system calls at all). Its cost
 *     is LMDB's documented one: no protection against stray writes into the map;
 *   - MDB_NOTLS: reader slots belong to transaction objects, not threads. Each pbe_thread
 *     owns one read-only transaction and one cursor, created once. Reads share a snapshot,
 *     as LMDB users do: the first read renews the transaction (mdb_txn_renew: a fresh
 *     snapshot, no malloc; the cursor renewed with it) and it stays open for
 *     LM_READS_PER_TXN (100) reads — gets and scans count one each — after which it is
 *     reset (mdb_txn_reset) and the next read renews it. A snapshot therefore lags other
 *     threads' commits by at most 100 of this thread's reads, and pins old pages for only
 *     that long (a reader held for a whole ycsb-a cell would make the file grow). A write
 *     by the same pbe_thread (put, put_batch) first resets its read transaction, so the
 *     thread's next read sees its own commit (read-your-writes: ycsb-f's
 *     read-modify-write and the content check depend on it); the write itself is
 *     unchanged, one write transaction with the commit mode's sync. NOTLS permits a
 *     read-only transaction and a write transaction on one thread at once, and lets the
 *     driver create contexts on one thread and use them on another;
 *   - writes: one write transaction per put, and one per batch of 1000 in the fills (LMDB
 *     serialises writers with its own mutex); MDB_NOOVERWRITE for fill-random (insert
 *     semantics, like pagebox's insert), MDB_APPEND for fill-seq (keys arrive in order: no
 *     search, full pages); puts are plain mdb_put (insert or replace);
 *   - snapshots (snapshot-get, snapshot-scan): snap_begin drops the thread's read
 *     transaction and renews it (a fresh snapshot), which then serves every read until
 *     snap_end resets it (no 100-read limit inside a snapshot): LMDB's own model, a read
 *     transaction is a snapshot;
 *   - transactions (txn-rw): one write transaction (mdb_txn_begin(env, NULL, 0)) holding
 *     LMDB's writer mutex: mdb_get of the read keys, mdb_get + mdb_put of the write keys,
 *     mdb_txn_commit (synced per the commit mode). Writers are serial, so nothing ever
 *     conflicts (no retries) and the transactions are serializable; concurrent threads wait
 *     for the mutex. txn_bulk: one write transaction of n plain mdb_put, one commit (LMDB
 *     spills dirty pages of a large transaction to the file itself);
 *   - maxreaders: threads + 4;
 *   - settle (before each measured cell on the filled instance): mdb_env_sync(env, 1), which
 *     in durable mode finds nothing to do and in fast mode writes the map's dirty pages.
 *     There is no log; --log-parity changes nothing here.
 */
#include "engine.h"

#include <lmdb.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LM_STR_(x) #x
#define LM_STR(x) LM_STR_(x)
#define LM_READS_PER_TXN 100u /* reads served by one snapshot before it is reset */
#define LM_VAL_MAX 65536u     /* txn_rw's value buffer (the driver's largest value) */

struct pbe_engine {
	MDB_env *env;
	MDB_dbi dbi;
};

struct pbe_thread {
	pbe_engine *e;
	MDB_txn *rtxn;	   /* read-only; live for up to LM_READS_PER_TXN reads, else reset */
	MDB_cursor *cur;   /* bound to rtxn, renewed with it */
	unsigned reads;	   /* reads served by the live snapshot; 0: rtxn is reset */
	bool snap;	   /* inside snap_begin .. snap_end: rtxn stays live */
	unsigned char *buf; /* txn_rw: the new value (LM_VAL_MAX) */
};

/* The thread's snapshot for the next read: renewed if it is reset. */
static int lm_read_begin(pbe_thread *t)
{
	if (t->reads)
		return 0;
	int r = mdb_txn_renew(t->rtxn);
	if (r)
		return r;
	if ((r = mdb_cursor_renew(t->rtxn, t->cur))) {
		mdb_txn_reset(t->rtxn);
		return r;
	}
	return 0;
}

/* One read done: reset the snapshot after LM_READS_PER_TXN of them. */
static void lm_read_end(pbe_thread *t)
{
	if (t->snap)
		return; /* an explicit snapshot: live until snap_end */
	if (++t->reads >= LM_READS_PER_TXN) {
		mdb_txn_reset(t->rtxn);
		t->reads = 0;
	}
}

/* Before a write by this thread: drop the snapshot, so its next read sees the write. */
static void lm_read_drop(pbe_thread *t)
{
	if (t->reads) {
		mdb_txn_reset(t->rtxn);
		t->reads = 0;
	}
}

static int map_rc(int r)
{
	switch (r) {
	case MDB_NOTFOUND:
		return PBE_NOTFOUND;
	case MDB_KEYEXIST:
		return PBE_EXISTS;
	default:
		return r;
	}
}

static const char *lm_strerror(int rc)
{
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	default:
		return mdb_strerror(rc);
	}
}

static int lm_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t mapsize = (size_t)(4 * o->keys * ((uint64_t)o->key_size + o->value_size + 32) +
				  (256ull << 20));
	mapsize = (mapsize + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
	unsigned flags = MDB_NOTLS;
	if (!o->durable)
		flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	if (o->oom)
		flags |= MDB_NORDAHEAD;
	if (o->lmdb_writemap)
		flags |= MDB_WRITEMAP;
	int r;
	const char *what = "mdb_env_create";
	if ((r = mdb_env_create(&e->env)))
		goto fail;
	what = "mdb_env_set_mapsize";
	if ((r = mdb_env_set_mapsize(e->env, mapsize)))
		goto fail;
	what = "mdb_env_set_maxreaders";
	if ((r = mdb_env_set_maxreaders(e->env, o->max_threads + 4)))
		goto fail;
	what = "mdb_env_open";
	if ((r = mdb_env_open(e->env, dir, flags, 0644)))
		goto fail;
	MDB_txn *txn;
	what = "mdb_txn_begin";
	if ((r = mdb_txn_begin(e->env, NULL, 0, &txn)))
		goto fail;
	what = "mdb_dbi_open";
	if ((r = mdb_dbi_open(txn, NULL, 0, &e->dbi))) {
		mdb_txn_abort(txn);
		goto fail;
	}
	what = "mdb_txn_commit";
	if ((r = mdb_txn_commit(txn)))
		goto fail;
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len,
			 "map %.0f MiB, flags MDB_NOTLS%s%s%s (%s commits), one read txn per %u "
			 "reads", (double)mapsize / 1048576.0,
			 o->durable ? "" : "|MDB_NOSYNC|MDB_NOMETASYNC",
			 o->oom ? "|MDB_NORDAHEAD" : "", o->lmdb_writemap ? "|MDB_WRITEMAP" : "",
			 o->durable ? "synced" : "unsynced", LM_READS_PER_TXN);
	*out = e;
	return 0;
fail:
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len, "%s: %s", what, mdb_strerror(r));
	if (e->env)
		mdb_env_close(e->env);
	free(e);
	return r;
}

static int lm_close(pbe_engine *e)
{
	/* commits in fast mode are only in the page cache: make them durable, like pagebox's
	 * close does */
	int r = mdb_env_sync(e->env, 1);
	mdb_env_close(e->env);
	free(e);
	return r;
}

static int lm_set_durable(pbe_engine *e, bool durable)
{
	int r = mdb_env_set_flags(e->env, MDB_NOSYNC | MDB_NOMETASYNC, durable ? 0 : 1);
	if (!r && durable)
		r = mdb_env_sync(e->env, 1);
	return r;
}

static int lm_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	int r = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &t->rtxn);
	if (r) {
		free(t);
		return r;
	}
	if ((r = mdb_cursor_open(t->rtxn, e->dbi, &t->cur))) {
		mdb_txn_abort(t->rtxn);
		free(t);
		return r;
	}
	mdb_txn_reset(t->rtxn);
	*out = t;
	return 0;
}

static void lm_thread_close(pbe_thread *t)
{
	mdb_cursor_close(t->cur);
	mdb_txn_abort(t->rtxn);
	free(t->buf);
	free(t);
}

static int lm_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	lm_read_drop(t);
	MDB_txn *w;
	int r = mdb_txn_begin(t->e->env, NULL, 0, &w);
	if (r)
		return r;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	if ((r = mdb_put(w, t->e->dbi, &k, &v, 0))) {
		mdb_txn_abort(w);
		return map_rc(r);
	}
	return mdb_txn_commit(w);
}

static int lm_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	lm_read_drop(t);
	MDB_txn *w;
	int r = mdb_txn_begin(t->e->env, NULL, 0, &w);
	if (r)
		return r;
	unsigned pf = (flags & PBE_BATCH_SEQUENTIAL) ? MDB_APPEND : MDB_NOOVERWRITE;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = { kv[i].klen, (void *)kv[i].key }, v = { kv[i].vlen, (void *)kv[i].val };
		if ((r = mdb_put(w, t->e->dbi, &k, &v, pf))) {
			mdb_txn_abort(w);
			return map_rc(r);
		}
	}
	return mdb_txn_commit(w);
}

static int lm_snap_begin(pbe_thread *t)
{
	lm_read_drop(t); /* a fresh snapshot, not the one serving the last reads */
	int r = lm_read_begin(t);
	if (r)
		return r;
	t->reads = 1; /* live */
	t->snap = true;
	return 0;
}

static int lm_snap_end(pbe_thread *t)
{
	t->snap = false;
	lm_read_drop(t);
	return 0;
}

static int lm_txn_rw(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries)
{
	(void)retries; /* one writer at a time: nothing to conflict with */
	if (!t->buf && !(t->buf = malloc(LM_VAL_MAX)))
		return -ENOMEM;
	lm_read_drop(t);
	MDB_txn *w;
	int r = mdb_txn_begin(t->e->env, NULL, 0, &w);
	if (r)
		return r;
	for (unsigned i = 0; i < op->nread && !r; i++) {
		MDB_val k = { op->klen, (void *)op->read_keys[i] }, v;
		if (!(r = map_rc(mdb_get(w, t->e->dbi, &k, &v))))
			r = op->fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, NULL, 0, NULL, op->arg);
	}
	for (unsigned i = 0; i < op->nwrite && !r; i++) {
		MDB_val k = { op->klen, (void *)op->write_keys[i] }, v;
		size_t olen = 0;
		if (!(r = map_rc(mdb_get(w, t->e->dbi, &k, &v))))
			r = op->fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, t->buf, LM_VAL_MAX,
				   &olen, op->arg);
		if (!r) {
			MDB_val nv = { olen, t->buf };
			r = map_rc(mdb_put(w, t->e->dbi, &k, &nv, 0));
		}
	}
	if (r) {
		mdb_txn_abort(w);
		return r;
	}
	return mdb_txn_commit(w);
}

static int lm_txn_bulk(pbe_thread *t, const pbe_kv *kv, size_t n)
{
	lm_read_drop(t);
	MDB_txn *w;
	int r = mdb_txn_begin(t->e->env, NULL, 0, &w);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = { kv[i].klen, (void *)kv[i].key }, v = { kv[i].vlen, (void *)kv[i].val };
		if ((r = mdb_put(w, t->e->dbi, &k, &v, 0))) {
			mdb_txn_abort(w);
			return map_rc(r);
		}
	}
	return mdb_txn_commit(w);
}

static int lm_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	int r = lm_read_begin(t);
	if (r)
		return r;
	MDB_val k = { klen, (void *)key }, v;
	r = mdb_get(t->rtxn, t->e->dbi, &k, &v);
	if (!r) {
		*vlen = v.mv_size;
		if (v.mv_size > cap)
			r = PBE_TOOSMALL;
		else if (v.mv_size)
			memcpy(buf, v.mv_data, v.mv_size);
	}
	lm_read_end(t);
	return map_rc(r);
}

static int lm_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	*n = 0;
	if (count == 0)
		return 0;
	int r = lm_read_begin(t);
	if (r)
		return r;
	MDB_val k = { slen, (void *)start }, v;
	size_t got = 0;
	r = mdb_cursor_get(t->cur, &k, &v, slen ? MDB_SET_RANGE : MDB_FIRST);
	while (!r) {
		int ur = fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		got++;
		if (ur) {
			r = ur;
			break;
		}
		if (got >= count)
			break;
		r = mdb_cursor_get(t->cur, &k, &v, MDB_NEXT);
	}
	if (r == MDB_NOTFOUND) /* the end of the database */
		r = 0;
	lm_read_end(t);
	*n = got;
	return r;
}

static int lm_settle(pbe_engine *e, char *note, size_t note_len)
{
	(void)note;
	(void)note_len;
	return mdb_env_sync(e->env, 1);
}

static void lm_info(pbe_engine *e, pbe_info *out)
{
	out->data_bytes = 0;
	out->resident_bytes = UINT64_MAX;
	out->budget_bytes = UINT64_MAX;
	MDB_txn *txn;
	if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn))
		return;
	MDB_stat s;
	if (!mdb_stat(txn, e->dbi, &s))
		out->data_bytes = (uint64_t)(s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages) *
				  s.ms_psize;
	mdb_txn_abort(txn);
}

const pbe_adapter pbe_lmdb_adapter = {
	.name = "lmdb",
	.version = LM_STR(MDB_VERSION_MAJOR) "." LM_STR(MDB_VERSION_MINOR) "." LM_STR(MDB_VERSION_PATCH),
	.bounded_cache = false,
	.settle_how = "mdb_env_sync(force)",
	.batch_durable = "atomic (1 write txn, synced)",
	.batch_fast = "atomic (1 write txn, unsynced)",
	.txn_how = "1 write txn at a time (LMDB's writer mutex): serializable, never a conflict",
	.snap_how = "read-only txn (mdb_txn_renew) held for the snapshot",
	.open = lm_open,
	.close = lm_close,
	.set_durable = lm_set_durable,
	.thread_open = lm_thread_open,
	.thread_close = lm_thread_close,
	.put = lm_put,
	.put_batch = lm_put_batch,
	.get = lm_get,
	.scan = lm_scan,
	.snap_begin = lm_snap_begin,
	.snap_end = lm_snap_end,
	.txn_rw = lm_txn_rw,
	.txn_bulk = lm_txn_bulk,
	.settle = lm_settle,
	.info = lm_info,
	.strerror = lm_strerror,
};
