/*
 * engine_sqlite.c — the SQLite adapter of pbox-bench (Debian's libsqlite3-dev, 3.40).
 *
 * Settings a competent SQLite user would choose for this benchmark (also in
 * bench/README.md):
 *   - one database file, one table `kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID` (the
 *     table is the primary key's B-tree: one search per read, no separate rowid tree); keys
 *     and values bound as blobs, so keys compare with memcmp;
 *   - journal_mode = WAL (readers never block the writer or each other), 4 KiB pages (the
 *     default), wal_autocheckpoint at its default (1000 pages);
 *   - commit mode: durable = synchronous FULL (the WAL is synced at every commit); fast =
 *     synchronous NORMAL, the setting SQLite recommends with WAL: commits are not synced
 *     (the WAL is synced at checkpoints), a crash may lose the last commits but never
 *     corrupts the database. OFF would skip the checkpoint syncs too and could corrupt the
 *     file on a power cut, which no competent user accepts. Switching to durable sets FULL
 *     on every open connection and runs a passive checkpoint, which syncs the WAL;
 *   - one connection per pbe_thread, opened with SQLITE_OPEN_NOMUTEX (each connection is
 *     used by one thread at a time), every statement prepared once per connection;
 *   - memory: in-memory runs set mmap_size to the budget (reads come straight from the
 *     shared mapping instead of each connection's private page cache) and keep the default
 *     per-connection cache (2000 KiB); out-of-memory runs turn mmap off and give each
 *     connection cache_size = budget / connections, so the caches together stay within the
 *     budget. The OS page cache holds the file either way (no direct I/O): bounded_cache =
 *     false, not ranked in out-of-memory runs;
 *   - writers: SQLite allows one writer at a time and lets the others poll through the busy
 *     handler, which sleeps in steps of milliseconds. Within one process a competent user
 *     serialises the writers with a mutex instead; the adapter does (one mutex per engine
 *     around each write transaction). busy_timeout 10 s stays as a safety net (checkpoints);
 *   - put = BEGIN IMMEDIATE; INSERT ... ON CONFLICT(k) DO UPDATE (an upsert: updates in
 *     place, unlike REPLACE which deletes and inserts); COMMIT. put_batch = one BEGIN
 *     IMMEDIATE ... COMMIT around n plain INSERTs (a present key fails the primary key
 *     constraint: PBE_EXISTS, the transaction rolled back). get = SELECT v FROM kv WHERE k =
 *     ?. scan = SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ? (an empty start blob
 *     is below every key);
 *   - snapshots (snapshot-get, snapshot-scan): BEGIN (deferred) on the thread's connection;
 *     the first SELECT starts a read transaction, which in WAL mode reads one snapshot (the
 *     WAL up to its end mark) until COMMIT, whatever other connections commit meanwhile;
 *   - transactions (txn-rw): under the writer mutex, BEGIN IMMEDIATE (the write lock taken
 *     at once), SELECT of the read keys, SELECT + upsert of the write keys, COMMIT (synced
 *     per synchronous). One writer at a time: serializable, and no transaction ever
 *     conflicts with another in this process; SQLITE_BUSY (a checkpoint outlasting the
 *     busy timeout) would roll back and run it again (a retry). txn_bulk: BEGIN IMMEDIATE,
 *     n upserts, COMMIT;
 *   - settle (before each measured cell on the filled instance; the database is in WAL
 *     mode, set at open): PRAGMA wal_checkpoint(TRUNCATE) on the main connection, with no
 *     other connection open — every WAL frame copied into the database, synced, and the
 *     WAL file truncated to zero bytes. If the checkpoint reports it could not finish
 *     (busy), the note says so;
 *   - --log-parity: nothing to set. SQLite already rewinds and reuses its WAL file after
 *     a checkpoint (journal_size_limit left at its default).
 */
#define _GNU_SOURCE
#include "engine.h"

#include <sqlite3.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_BEGIN, S_COMMIT, S_ROLLBACK, S_GET, S_PUT, S_INSERT, S_SCAN, S_BEGIN_READ, S_COUNT };

static const char *const SQL[S_COUNT] = {
	"BEGIN IMMEDIATE",
	"COMMIT",
	"ROLLBACK",
	"SELECT v FROM kv WHERE k = ?1",
	"INSERT INTO kv(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
	"INSERT INTO kv(k, v) VALUES (?1, ?2)",
	"SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2",
	"BEGIN",
};

struct pbe_thread {
	pbe_engine *e;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	pbe_thread *next; /* the engine's list of open connections */
	unsigned char *buf; /* txn_rw: the new value */
};

struct pbe_engine {
	char *path;
	pthread_mutex_t wmu; /* one writer at a time */
	pthread_mutex_t lmu; /* the list of connections */
	pbe_thread *conns;
	sqlite3 *main; /* the connection that created the table; kept for info and close */
	bool durable, oom;
	unsigned max_threads;
	uint64_t budget;
};

static int sq_rc(int r)
{
	return r == SQLITE_OK || r == SQLITE_DONE || r == SQLITE_ROW ? 0 : r;
}

static const char *sq_strerror(int rc)
{
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	default:
		return rc < 0 ? strerror(-rc) : sqlite3_errstr(rc);
	}
}

/* Run a statement without results on a connection. */
static int sq_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int sq_set_sync(sqlite3 *db, bool durable)
{
	return sq_exec(db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

/* Open a connection with the per-connection settings. */
static int sq_connect(pbe_engine *e, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int r = sqlite3_open_v2(e->path, &db,
				SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (r) {
		sqlite3_close(db);
		return r;
	}
	char sql[128];
	if ((r = sqlite3_busy_timeout(db, 10000)) || (r = sq_set_sync(db, e->durable)))
		goto fail;
	if (e->oom) {
		uint64_t kib = e->budget / 1024 / (e->max_threads ? e->max_threads : 1);
		snprintf(sql, sizeof(sql), "PRAGMA mmap_size = 0; PRAGMA cache_size = -%llu",
			 (unsigned long long)(kib ? kib : 1));
	} else {
		snprintf(sql, sizeof(sql), "PRAGMA mmap_size = %llu",
			 (unsigned long long)e->budget);
	}
	if ((r = sq_exec(db, sql)))
		goto fail;
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return r;
}

static void sq_free(pbe_engine *e)
{
	if (e->main)
		sqlite3_close(e->main);
	pthread_mutex_destroy(&e->wmu);
	pthread_mutex_destroy(&e->lmu);
	free(e->path);
	free(e);
}

static int sq_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_mutex_init(&e->wmu, NULL);
	pthread_mutex_init(&e->lmu, NULL);
	size_t n = strlen(dir) + sizeof("/bench.sqlite");
	if (!(e->path = malloc(n))) {
		sq_free(e);
		return -ENOMEM;
	}
	snprintf(e->path, n, "%s/bench.sqlite", dir);
	e->durable = o->durable;
	e->oom = o->oom;
	e->max_threads = o->max_threads;
	e->budget = o->budget_bytes ? o->budget_bytes : pbe_default_budget(o);
	const char *what = "open";
	int r = sq_connect(e, &e->main);
	if (!r) {
		what = "WAL mode";
		r = sq_exec(e->main, "PRAGMA journal_mode = WAL");
	}
	if (!r) {
		what = "CREATE TABLE";
		r = sq_exec(e->main, "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) "
				     "WITHOUT ROWID");
	}
	if (r) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "%s: %s", what,
				 e->main ? sqlite3_errmsg(e->main) : sqlite3_errstr(r));
		sq_free(e);
		return r;
	}
	if (o->msg && o->msg_len) {
		if (e->oom)
			snprintf(o->msg, o->msg_len, "WITHOUT ROWID, WAL, synchronous %s, no mmap, "
				 "cache %.1f MiB per connection, reads through the OS page cache",
				 o->durable ? "FULL" : "NORMAL",
				 (double)e->budget / 1048576.0 / (e->max_threads ? e->max_threads : 1));
		else
			snprintf(o->msg, o->msg_len, "WITHOUT ROWID, WAL, synchronous %s, mmap %.0f MiB",
				 o->durable ? "FULL" : "NORMAL", (double)e->budget / 1048576.0);
	}
	*out = e;
	return 0;
}

static int sq_close(pbe_engine *e)
{
	/* fast-mode commits: a checkpoint syncs the WAL (and the database) */
	int r = sq_exec(e->main, "PRAGMA wal_checkpoint(PASSIVE)");
	sq_free(e);
	return r;
}

static int sq_set_durable(pbe_engine *e, bool durable)
{
	int r = 0;
	pthread_mutex_lock(&e->lmu);
	e->durable = durable;
	for (pbe_thread *t = e->conns; t && !r; t = t->next)
		r = sq_set_sync(t->db, durable);
	pthread_mutex_unlock(&e->lmu);
	if (!r)
		r = sq_set_sync(e->main, durable);
	if (!r && durable)
		r = sq_exec(e->main, "PRAGMA wal_checkpoint(PASSIVE)");
	return r;
}

static void sq_thread_close(pbe_thread *t)
{
	pbe_engine *e = t->e;
	pthread_mutex_lock(&e->lmu);
	for (pbe_thread **p = &e->conns; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	pthread_mutex_unlock(&e->lmu);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(t->st[i]);
	sqlite3_close(t->db);
	free(t->buf);
	free(t);
}

static int sq_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	pthread_mutex_lock(&e->lmu); /* e->durable is read by sq_connect */
	int r = sq_connect(e, &t->db);
	if (!r) {
		t->next = e->conns;
		e->conns = t;
	}
	pthread_mutex_unlock(&e->lmu);
	if (r) {
		free(t);
		return r;
	}
	for (int i = 0; i < S_COUNT; i++)
		if ((r = sqlite3_prepare_v3(t->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &t->st[i],
					    NULL))) {
			sq_thread_close(t);
			return r;
		}
	*out = t;
	return 0;
}

static int step_reset(sqlite3_stmt *s)
{
	int r = sqlite3_step(s);
	sqlite3_reset(s);
	return sq_rc(r);
}

static int bind_kv(sqlite3_stmt *s, const void *key, size_t klen, const void *val, size_t vlen)
{
	int r = sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
	if (!r)
		r = sqlite3_bind_blob(s, 2, val, (int)vlen, SQLITE_STATIC);
	return r;
}

static int sq_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	pthread_mutex_lock(&t->e->wmu);
	int r = step_reset(t->st[S_BEGIN]);
	if (!r) {
		sqlite3_stmt *s = t->st[S_PUT];
		if (!(r = bind_kv(s, key, klen, val, vlen)))
			r = step_reset(s);
		sqlite3_clear_bindings(s);
		r = r ? r : step_reset(t->st[S_COMMIT]);
		if (r)
			(void)step_reset(t->st[S_ROLLBACK]);
	}
	pthread_mutex_unlock(&t->e->wmu);
	return r;
}

static int sq_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	(void)flags;
	pthread_mutex_lock(&t->e->wmu);
	int r = step_reset(t->st[S_BEGIN]);
	if (!r) {
		sqlite3_stmt *s = t->st[S_INSERT];
		for (size_t i = 0; i < n && !r; i++) {
			if (!(r = bind_kv(s, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen)))
				r = step_reset(s);
			if (r == SQLITE_CONSTRAINT)
				r = PBE_EXISTS; /* the primary key is the only constraint */
		}
		sqlite3_clear_bindings(s);
		r = r ? r : step_reset(t->st[S_COMMIT]);
		if (r)
			(void)step_reset(t->st[S_ROLLBACK]);
	}
	pthread_mutex_unlock(&t->e->wmu);
	return r;
}

static int sq_snap_begin(pbe_thread *t)
{
	return step_reset(t->st[S_BEGIN_READ]);
}

static int sq_snap_end(pbe_thread *t)
{
	return step_reset(t->st[S_COMMIT]);
}

/* SELECT key's value, pass it to fn; for an update, upsert the new value. */
static int sq_rmw_one(pbe_thread *t, const pbe_txn_rw *op, const uint8_t *key, bool write,
		      unsigned char *out, size_t cap)
{
	sqlite3_stmt *s = t->st[S_GET];
	int r = sqlite3_bind_blob(s, 1, key, (int)op->klen, SQLITE_STATIC);
	if (r)
		return r;
	size_t olen = 0;
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		r = op->fn(key, op->klen, sqlite3_column_blob(s, 0),
			   (size_t)sqlite3_column_bytes(s, 0), write ? out : NULL, write ? cap : 0,
			   write ? &olen : NULL, op->arg);
	else if (r == SQLITE_DONE)
		r = PBE_NOTFOUND;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (r || !write)
		return r;
	s = t->st[S_PUT];
	if (!(r = bind_kv(s, key, op->klen, out, olen)))
		r = step_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

#define SQ_VAL_MAX 65536u /* txn_rw's value buffer (the driver's largest value) */

static int sq_txn_rw(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries)
{
	if (!t->buf && !(t->buf = malloc(SQ_VAL_MAX)))
		return -ENOMEM;
	for (unsigned n = 0;;) {
		pthread_mutex_lock(&t->e->wmu);
		int r = step_reset(t->st[S_BEGIN]);
		for (unsigned i = 0; i < op->nread && !r; i++)
			r = sq_rmw_one(t, op, op->read_keys[i], false, NULL, 0);
		for (unsigned i = 0; i < op->nwrite && !r; i++)
			r = sq_rmw_one(t, op, op->write_keys[i], true, t->buf, SQ_VAL_MAX);
		if (!r)
			r = step_reset(t->st[S_COMMIT]);
		if (r)
			(void)step_reset(t->st[S_ROLLBACK]);
		pthread_mutex_unlock(&t->e->wmu);
		if (r != SQLITE_BUSY)
			return r;
		pbe_txn_backoff(++n);
		++*retries;
	}
}

static int sq_txn_bulk(pbe_thread *t, const pbe_kv *kv, size_t n)
{
	pthread_mutex_lock(&t->e->wmu);
	int r = step_reset(t->st[S_BEGIN]);
	if (!r) {
		sqlite3_stmt *s = t->st[S_PUT];
		for (size_t i = 0; i < n && !r; i++)
			if (!(r = bind_kv(s, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen)))
				r = step_reset(s);
		sqlite3_clear_bindings(s);
		r = r ? r : step_reset(t->st[S_COMMIT]);
		if (r)
			(void)step_reset(t->st[S_ROLLBACK]);
	}
	pthread_mutex_unlock(&t->e->wmu);
	return r;
}

static int sq_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	sqlite3_stmt *s = t->st[S_GET];
	int r = sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
	if (r)
		return r;
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(s, 0);
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		*vlen = n;
		if (n > cap)
			r = PBE_TOOSMALL;
		else {
			if (n)
				memcpy(buf, v, n);
			r = 0;
		}
	} else if (r == SQLITE_DONE) {
		r = PBE_NOTFOUND;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

static int sq_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	*n = 0;
	if (count == 0)
		return 0;
	sqlite3_stmt *s = t->st[S_SCAN];
	static const char empty[1] = { 0 };
	int r = sqlite3_bind_blob(s, 1, slen ? start : empty, (int)slen, SQLITE_STATIC);
	if (!r)
		r = sqlite3_bind_int64(s, 2, count > (size_t)INT64_MAX ? INT64_MAX : (int64_t)count);
	if (r)
		return r;
	size_t got = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(s, 0);
		size_t kl = (size_t)sqlite3_column_bytes(s, 0);
		const void *v = sqlite3_column_blob(s, 1);
		size_t vl = (size_t)sqlite3_column_bytes(s, 1);
		got++;
		int ur = fn(k, kl, v, vl, arg);
		if (ur) {
			r = ur;
			break;
		}
	}
	if (r == SQLITE_DONE)
		r = 0;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	*n = got;
	return r;
}

static int sq_settle(pbe_engine *e, char *note, size_t note_len)
{
	sqlite3_stmt *s;
	int r = sqlite3_prepare_v2(e->main, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &s, NULL);
	if (r)
		return r;
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		/* (busy, WAL frames, frames checkpointed) */
		if (sqlite3_column_int(s, 0) != 0)
			snprintf(note, note_len, "wal_checkpoint(TRUNCATE) busy: %d of %d frames",
				 sqlite3_column_int(s, 2), sqlite3_column_int(s, 1));
		r = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return sq_rc(r);
}

static void sq_info(pbe_engine *e, pbe_info *out)
{
	out->data_bytes = 0;
	sqlite3_stmt *s;
	if (!sqlite3_prepare_v2(e->main, "SELECT page_count * page_size FROM pragma_page_count, "
					 "pragma_page_size", -1, &s, NULL)) {
		if (sqlite3_step(s) == SQLITE_ROW)
			out->data_bytes = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	out->resident_bytes = UINT64_MAX;
	out->budget_bytes = e->budget;
}

const pbe_adapter pbe_sqlite_adapter = {
	.name = "sqlite",
	.version = SQLITE_VERSION,
	.bounded_cache = false,
	.settle_how = "PRAGMA wal_checkpoint(TRUNCATE)",
	.batch_durable = "atomic (1 txn, synced)",
	.batch_fast = "atomic (1 txn, unsynced)",
	.txn_how = "BEGIN IMMEDIATE under one writer mutex: serial writers, serializable",
	.snap_how = "BEGIN (deferred) ... COMMIT: a WAL read transaction",
	.open = sq_open,
	.close = sq_close,
	.set_durable = sq_set_durable,
	.thread_open = sq_thread_open,
	.thread_close = sq_thread_close,
	.put = sq_put,
	.put_batch = sq_put_batch,
	.get = sq_get,
	.scan = sq_scan,
	.snap_begin = sq_snap_begin,
	.snap_end = sq_snap_end,
	.txn_rw = sq_txn_rw,
	.txn_bulk = sq_txn_bulk,
	.settle = sq_settle,
	.info = sq_info,
	.strerror = sq_strerror,
};
