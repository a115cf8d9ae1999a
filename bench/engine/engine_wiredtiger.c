/*
 * engine_wiredtiger.c — the WiredTiger adapter of pbox-bench (Debian's libwiredtiger-dev,
 * 3.2.1: header <wiredtiger.h>, library libwiredtiger).
 *
 * Settings a competent WiredTiger user would choose for this benchmark (also in
 * bench/README.md):
 *   - one connection in the scratch directory, one table "table:bench" with key_format=u and
 *     value_format=u (raw byte strings, compared with memcmp), the default row-store B-tree
 *     (4 KiB internal pages, 32 KiB leaf pages), no block compression (the driver's values are
 *     a repeated filler byte; every engine stores the same bytes);
 *   - cache_size = the budget (in-memory runs: the common default of pbe_default_budget);
 *   - out-of-memory runs: direct_io=[data] (table files bypass the OS page cache; the log
 *     stays buffered), so bounded_cache = true;
 *   - log=(enabled=true) (write-ahead log: durable commits without a checkpoint each), and
 *     checkpoint=(wait=60) (a checkpoint a minute bounds the log and recovery time);
 *   - commit mode: durable = transaction_sync=(enabled=true,method=fsync) at open and each
 *     commit_transaction with "sync=on" (the log is synced before the commit returns;
 *     concurrent commits share syncs through WiredTiger's log slots); fast = commits with the
 *     connection's default of transaction_sync disabled (the log record is written, not
 *     synced). Switching to durable first calls WT_SESSION::log_flush("sync=on");
 *   - session_max = threads + 20; one session per pbe_thread with two cursors opened once: an
 *     overwrite cursor for puts and an overwrite=false cursor for the fills' inserts (a
 *     present key is WT_DUPLICATE_KEY: PBE_EXISTS);
 *   - put = one explicit transaction around cursor->insert; put_batch = one transaction for
 *     the n inserts; a write conflict (WT_ROLLBACK, possible when threads update the same hot
 *     key) rolls back and retries, as WiredTiger asks its users to. get = cursor search, the
 *     value copied, then cursor reset (releases the page and the snapshot); scan =
 *     search_near, then next, then reset;
 *   - snapshots (snapshot-get, snapshot-scan): snap_begin = begin_transaction
 *     ("isolation=snapshot"); get and scan then read that snapshot (a cursor reset inside a
 *     transaction keeps it); snap_end = rollback_transaction (a read-only transaction has
 *     nothing to commit; WiredTiger documents the two as equivalent for readers);
 *   - transactions (txn-rw): begin_transaction("isolation=snapshot"), search of the read keys
 *     (values copied to the callback), search + insert (overwrite cursor: an update) of
 *     the write keys, commit_transaction with the commit mode's sync ("sync=on" durable,
 *     the connection's default otherwise). Snapshot isolation: an update of a key another
 *     transaction changed since this one's snapshot fails with WT_ROLLBACK (first updater
 *     wins), and the whole transaction is rolled back and run again (a retry) after the
 *     driver's back-off (pbe_txn_backoff, the same for every engine);
 *   - txn_bulk: one transaction of n overwrite-cursor inserts (puts), one commit. Its
 *     uncommitted updates must fit in the cache, which cannot evict them: the adapter's
 *     cache (the budget, by default 3 x the raw data + 64 MiB) holds them. For the
 *     transaction's duration WT_CONNECTION::reconfigure raises eviction_dirty_target and
 *     eviction_dirty_trigger to 80 % and 90 % of the cache (then restores the defaults,
 *     5 % and 20 %): with the defaults the application thread is made to evict dirty pages
 *     it cannot evict (its own uncommitted updates), which at 400 000 keys of 100 B in a
 *     256 MiB cache halved the load's rate (98 k against 183 k keys/s, measured here);
 *     nothing else changes for the engine (the open option txn is not used);
 *   - --log-parity on (the default): log=(enabled=true,zero_fill=true), so log files are
 *     zero-filled when created (as pagebox's segments are) on top of WiredTiger's default
 *     log pre-allocation (prealloc=true); off: zero_fill left at its default, false;
 *   - settle (before each measured cell on the filled instance): WT_SESSION::checkpoint on
 *     a session of its own (every dirty page written, the log recycled up to it).
 */
#define _GNU_SOURCE
#include "engine.h"

#include <wiredtiger.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WT_TABLE "table:bench"
#define WT_STR_(x) #x
#define WT_STR(x) WT_STR_(x)
#define WT_VAL_MAX 65536u /* txn_rw's value buffer (the driver's largest value) */

struct pbe_engine {
	WT_CONNECTION *conn;
	char *file; /* the table's data file, for info */
	bool durable;
	uint64_t budget;
};

struct pbe_thread {
	pbe_engine *e;
	WT_SESSION *s;
	WT_CURSOR *put; /* overwrite=true (the default) */
	WT_CURSOR *ins; /* overwrite=false */
	unsigned char *buf; /* txn_rw: the new value */
};

static int map_rc(int r)
{
	switch (r) {
	case WT_NOTFOUND:
		return PBE_NOTFOUND;
	case WT_DUPLICATE_KEY:
		return PBE_EXISTS;
	default:
		return r;
	}
}

static const char *wt_strerror(int rc)
{
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	default:
		return wiredtiger_strerror(rc);
	}
}

static int wt_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t fl = strlen(dir) + sizeof("/bench.wt");
	if (!(e->file = malloc(fl))) {
		free(e);
		return -ENOMEM;
	}
	snprintf(e->file, fl, "%s/bench.wt", dir);
	e->budget = o->budget_bytes ? o->budget_bytes : pbe_default_budget(o);
	if (e->budget < (1u << 20))
		e->budget = 1u << 20; /* WiredTiger's minimum cache */
	e->durable = o->durable;
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "create,cache_size=%llu,session_max=%u,log=(enabled=true%s),"
		 "transaction_sync=(enabled=%s,method=fsync),checkpoint=(wait=60)%s",
		 (unsigned long long)e->budget, o->max_threads + 20,
		 o->log_parity ? ",zero_fill=true" : "", o->durable ? "true" : "false",
		 o->oom ? ",direct_io=[data]" : "");
	int r = wiredtiger_open(dir, NULL, cfg, &e->conn);
	const char *what = "wiredtiger_open";
	if (!r) {
		WT_SESSION *s;
		what = "create table";
		if (!(r = e->conn->open_session(e->conn, NULL, NULL, &s))) {
			r = s->create(s, WT_TABLE, "key_format=u,value_format=u");
			s->close(s, NULL);
		}
	}
	if (r) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "%s: %s", what, wiredtiger_strerror(r));
		if (e->conn)
			e->conn->close(e->conn, NULL);
		free(e->file);
		free(e);
		return r;
	}
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len, "cache %.0f MiB, log on (prealloc%s), checkpoint every "
			 "60 s, no compression%s (%s commits)", (double)e->budget / 1048576.0,
			 o->log_parity ? ", zero_fill" : "", o->oom ? ", direct I/O for data" : "",
			 o->durable ? "synced" : "unsynced");
	*out = e;
	return 0;
}

static int wt_close(pbe_engine *e)
{
	int r = e->conn->close(e->conn, NULL); /* a final checkpoint */
	free(e->file);
	free(e);
	return r;
}

static int wt_set_durable(pbe_engine *e, bool durable)
{
	if (durable) {
		WT_SESSION *s;
		int r = e->conn->open_session(e->conn, NULL, NULL, &s);
		if (r)
			return r;
		r = s->log_flush(s, "sync=on");
		s->close(s, NULL);
		if (r)
			return r;
	}
	e->durable = durable;
	return 0;
}

static void wt_thread_close(pbe_thread *t)
{
	t->s->close(t->s, NULL); /* closes its cursors (and rolls back an open transaction) */
	free(t->buf);
	free(t);
}

static int wt_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	int r = e->conn->open_session(e->conn, NULL, NULL, &t->s);
	if (r) {
		free(t);
		return r;
	}
	if ((r = t->s->open_cursor(t->s, WT_TABLE, NULL, NULL, &t->put)) ||
	    (r = t->s->open_cursor(t->s, WT_TABLE, NULL, "overwrite=false", &t->ins))) {
		wt_thread_close(t);
		return r;
	}
	*out = t;
	return 0;
}

static inline const char *commit_cfg(const pbe_thread *t)
{
	return t->e->durable ? "sync=on" : NULL;
}

static int wt_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	WT_ITEM k = { .data = key, .size = klen }, v = { .data = val, .size = vlen };
	for (;;) {
		int r = t->s->begin_transaction(t->s, NULL);
		if (r)
			return r;
		t->put->set_key(t->put, &k);
		t->put->set_value(t->put, &v);
		r = t->put->insert(t->put);
		if (!r) {
			r = t->s->commit_transaction(t->s, commit_cfg(t)); /* rolls back on failure */
		} else {
			t->put->reset(t->put);
			t->s->rollback_transaction(t->s, NULL);
		}
		if (r != WT_ROLLBACK)
			return map_rc(r);
		sched_yield(); /* a write conflict on a hot key: try again */
	}
}

static int wt_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	(void)flags;
	for (;;) {
		int r = t->s->begin_transaction(t->s, NULL);
		if (r)
			return r;
		for (size_t i = 0; i < n && !r; i++) {
			WT_ITEM k = { .data = kv[i].key, .size = kv[i].klen };
			WT_ITEM v = { .data = kv[i].val, .size = kv[i].vlen };
			t->ins->set_key(t->ins, &k);
			t->ins->set_value(t->ins, &v);
			r = t->ins->insert(t->ins);
		}
		t->ins->reset(t->ins);
		if (!r) {
			r = t->s->commit_transaction(t->s, commit_cfg(t));
		} else {
			t->s->rollback_transaction(t->s, NULL);
		}
		if (r != WT_ROLLBACK)
			return map_rc(r);
		sched_yield();
	}
}

static int wt_snap_begin(pbe_thread *t)
{
	return t->s->begin_transaction(t->s, "isolation=snapshot");
}

static int wt_snap_end(pbe_thread *t)
{
	return t->s->rollback_transaction(t->s, NULL); /* read-only: nothing to commit */
}

/* The value under c's key (searched), passed to fn; for an update the new value put. */
static int wt_rmw_one(pbe_thread *t, const pbe_txn_rw *op, const uint8_t *key, bool write)
{
	WT_CURSOR *c = t->put;
	WT_ITEM k = { .data = key, .size = op->klen }, v;
	c->set_key(c, &k);
	int r = c->search(c);
	if (!r)
		r = c->get_value(c, &v);
	if (r)
		return map_rc(r);
	size_t olen = 0;
	r = op->fn(key, op->klen, v.data, v.size, write ? t->buf : NULL, write ? WT_VAL_MAX : 0,
		   write ? &olen : NULL, op->arg);
	if (r || !write)
		return r;
	WT_ITEM nv = { .data = t->buf, .size = olen };
	c->set_key(c, &k);
	c->set_value(c, &nv);
	return c->insert(c); /* WT_ROLLBACK on a conflict */
}

static int wt_txn_rw(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries)
{
	if (!t->buf && !(t->buf = malloc(WT_VAL_MAX)))
		return -ENOMEM;
	for (unsigned n = 0;;) {
		int r = t->s->begin_transaction(t->s, "isolation=snapshot");
		if (r)
			return r;
		for (unsigned i = 0; i < op->nread && !r; i++)
			r = wt_rmw_one(t, op, op->read_keys[i], false);
		for (unsigned i = 0; i < op->nwrite && !r; i++)
			r = wt_rmw_one(t, op, op->write_keys[i], true);
		t->put->reset(t->put);
		if (!r)
			r = t->s->commit_transaction(t->s, commit_cfg(t)); /* rolls back on failure */
		else
			t->s->rollback_transaction(t->s, NULL);
		if (r != WT_ROLLBACK)
			return map_rc(r);
		pbe_txn_backoff(++n); /* let the winner finish */
		++*retries;
	}
}

#define WT_DIRTY_BULK "eviction_dirty_target=80,eviction_dirty_trigger=90"
#define WT_DIRTY_DEFAULT "eviction_dirty_target=5,eviction_dirty_trigger=20"

static int wt_txn_bulk(pbe_thread *t, const pbe_kv *kv, size_t n)
{
	WT_CONNECTION *conn = t->e->conn;
	int r = conn->reconfigure(conn, WT_DIRTY_BULK);
	if (r)
		return r;
	r = t->s->begin_transaction(t->s, NULL);
	if (r) {
		(void)conn->reconfigure(conn, WT_DIRTY_DEFAULT);
		return r;
	}
	for (size_t i = 0; i < n && !r; i++) {
		WT_ITEM k = { .data = kv[i].key, .size = kv[i].klen };
		WT_ITEM v = { .data = kv[i].val, .size = kv[i].vlen };
		t->put->set_key(t->put, &k);
		t->put->set_value(t->put, &v);
		r = t->put->insert(t->put);
	}
	t->put->reset(t->put);
	if (!r)
		r = t->s->commit_transaction(t->s, commit_cfg(t));
	else
		t->s->rollback_transaction(t->s, NULL);
	int cr = conn->reconfigure(conn, WT_DIRTY_DEFAULT);
	return map_rc(r ? r : cr);
}

static int wt_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	WT_CURSOR *c = t->put;
	WT_ITEM k = { .data = key, .size = klen }, v;
	c->set_key(c, &k);
	int r = c->search(c);
	if (!r && !(r = c->get_value(c, &v))) {
		*vlen = v.size;
		if (v.size > cap)
			r = PBE_TOOSMALL;
		else if (v.size)
			memcpy(buf, v.data, v.size);
	}
	c->reset(c);
	return map_rc(r);
}

static int wt_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	*n = 0;
	if (count == 0)
		return 0;
	WT_CURSOR *c = t->put;
	int r;
	if (slen) {
		WT_ITEM k = { .data = start, .size = slen };
		int exact = 0;
		c->set_key(c, &k);
		r = c->search_near(c, &exact);
		if (!r && exact < 0)
			r = c->next(c);
	} else {
		r = c->next(c); /* a reset cursor's next is the first pair */
	}
	size_t got = 0;
	while (!r) {
		WT_ITEM k, v;
		if ((r = c->get_key(c, &k)) || (r = c->get_value(c, &v)))
			break;
		got++;
		int ur = fn(k.data, k.size, v.data, v.size, arg);
		if (ur) {
			r = ur;
			break;
		}
		if (got >= count)
			break;
		r = c->next(c);
	}
	if (r == WT_NOTFOUND)
		r = 0;
	c->reset(c);
	*n = got;
	return r;
}

static int wt_settle(pbe_engine *e, char *note, size_t note_len)
{
	(void)note;
	(void)note_len;
	WT_SESSION *s;
	int r = e->conn->open_session(e->conn, NULL, NULL, &s);
	if (r)
		return r;
	r = s->checkpoint(s, NULL);
	int cr = s->close(s, NULL);
	return r ? r : cr;
}

static void wt_info(pbe_engine *e, pbe_info *out)
{
	struct stat st;
	out->data_bytes = stat(e->file, &st) == 0 ? (uint64_t)st.st_size : 0;
	out->resident_bytes = UINT64_MAX; /* not tracked here (statistics are off) */
	out->budget_bytes = e->budget;
}

const pbe_adapter pbe_wiredtiger_adapter = {
	.name = "wiredtiger",
	.version = WT_STR(WIREDTIGER_VERSION_MAJOR) "." WT_STR(WIREDTIGER_VERSION_MINOR) "."
		   WT_STR(WIREDTIGER_VERSION_PATCH),
	.bounded_cache = true,
	.settle_how = "WT_SESSION::checkpoint",
	.batch_durable = "atomic (1 txn, synced)",
	.batch_fast = "atomic (1 txn, unsynced)",
	.txn_how = "isolation=snapshot txn: snapshot isolation, first updater wins (WT_ROLLBACK "
		   "at the update)",
	.snap_how = "begin_transaction(isolation=snapshot), rolled back at the end",
	.tsan_skip = "libwiredtiger is not built with TSan: updates are published through its uninstrumented atomics, so reading a fresh value is reported as a race",
	.open = wt_open,
	.close = wt_close,
	.set_durable = wt_set_durable,
	.thread_open = wt_thread_open,
	.thread_close = wt_thread_close,
	.put = wt_put,
	.put_batch = wt_put_batch,
	.get = wt_get,
	.scan = wt_scan,
	.snap_begin = wt_snap_begin,
	.snap_end = wt_snap_end,
	.txn_rw = wt_txn_rw,
	.txn_bulk = wt_txn_bulk,
	.settle = wt_settle,
	.info = wt_info,
	.strerror = wt_strerror,
};
