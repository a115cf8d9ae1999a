/*
 * engine_pagebox.c — the pagebox adapter of pbox-bench.
 *
 * Settings (written down in bench/README.md too):
 *   - one store in the scratch directory, page size 4 KiB, WAL sync fdatasync (the default),
 *     background WAL flush delay 1000 us (the default): "fast" commits become durable within
 *     about a millisecond without anybody waiting;
 *   - data file opened with O_DIRECT (the store's default; if the file system refuses it the
 *     store falls back to buffered I/O and says so: the driver prints that notice);
 *   - budget: --budget, or by default 3 x keys x (key + value + 24 bytes) + 64 MiB (at least
 *     256 MiB, the store's own default), enough to keep a whole randomly filled tree resident;
 *   - no background evictor (the store's default; faulting threads evict);
 *   - max_bytes (the virtual reservation and the largest the data file may grow)
 *     4 x keys x (key + value + 32 bytes) + 1 GiB instead of the 1 TiB default, as the
 *     project's tests do: under TSan a 1 TiB reservation intermittently fails (ENOMEM);
 *   - one tree named "bench" (pbox_bt_open_or_create).
 *
 * Operations:
 *   put        pbox_bt_upsert, flags PBOX_BT_DURABLE in durable mode, else 0;
 *   put_batch  one atomic write batch (pbox_bt_batch_put of the n keys, then
 *              pbox_bt_batch_commit with PBOX_BT_DURABLE in durable mode, else 0): a
 *              write-only transaction (pbox/txn.h), all or nothing after a crash, of any
 *              size. Blind writes, like the LSM engines' write batches: a present key is
 *              replaced, not reported (PBE_EXISTS never comes back). One pbox_bt_batch per
 *              pbe_thread, reused (commit empties it);
 *   snap_begin pbox_txn_begin(st, PBOX_TXN_READONLY): a snapshot; until snap_end (which
 *              aborts it: nothing to commit) get is pbox_txn_get and scan pbox_txn_scan;
 *   txn_rw     pbox_txn_begin(st, 0), pbox_txn_get of each read key, then pbox_txn_get +
 *              pbox_txn_put of each write key, pbox_txn_commit (PBOX_BT_DURABLE in durable
 *              mode). Snapshot isolation, first committer wins: PBOX_ECONFLICT (at a put
 *              or at the commit) and PBOX_ESNAPSHOT (the snapshot retired by the version
 *              cap) restart the whole transaction, counted as retries, after the driver's
 *              back-off (pbe_txn_backoff);
 *   txn_bulk   one pbox_txn of n pbox_txn_put, one commit (the transaction API, not the
 *              write-only batch, so the cell measures a transaction's write set);
 *   settle     pbox_store_checkpoint: every page dirtied so far written back (the WAL rule
 *              respected), the superblock's redo start moved, the log recycled;
 *   get        pbox_bt_lookup into the caller's buffer (in a snapshot: pbox_txn_get);
 *   scan       pbox_bt_scan from start with no end key (in a snapshot: pbox_txn_scan); the
 *              callback stops it (returns a private non-zero code, which the adapter turns
 *              back into success) after `count` pairs.
 * Threads share one pbox_bt handle (the tree is safe for any number of threads); a
 * pbe_thread holds its batch, its open snapshot and txn_rw's value buffers.
 * The open option txn changes nothing here: every instance can run transactions.
 */
#include "engine.h"

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/txn.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_PAGE_SIZE 4096u
#define PB_SCAN_DONE 0x5ca9 /* private: the callback has seen `count` pairs */
#define PB_VAL_MAX 65536u   /* txn_rw's value buffers (the driver's largest value) */

struct pbe_engine {
	pbox_store *st;
	pbox_bt *bt;
	unsigned durable; /* PBOX_BT_DURABLE or 0 */
};

struct pbe_thread {
	pbe_engine *e;
	pbox_bt_batch *batch; /* put_batch's, reused */
	pbox_txn *snap;	      /* snap_begin's read-only transaction, or NULL */
	unsigned char *buf;   /* txn_rw: values read (PB_VAL_MAX) and written */
};

static int map_rc(int r)
{
	switch (r) {
	case PBOX_ENOTFOUND:
		return PBE_NOTFOUND;
	case PBOX_EEXIST:
		return PBE_EXISTS;
	case PBOX_ETOOSMALL:
		return PBE_TOOSMALL;
	default:
		return r;
	}
}

static const char *pb_strerror(int rc)
{
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	default:
		return pbox_strerror(rc);
	}
}

static int pb_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pbox_store_options so;
	pbox_store_options_init(&so);
	so.create = true;
	so.page_size = PB_PAGE_SIZE;
	uint64_t budget = o->budget_bytes;
	if (!budget) {
		budget = 3 * o->keys * ((uint64_t)o->key_size + o->value_size + 24) + (64ull << 20);
		if (budget < (256ull << 20))
			budget = 256ull << 20;
	}
	so.budget_bytes = budget;
	/* the virtual reservation: several times the data, not the 1 TiB default (under TSan
	 * a 1 TiB reservation sometimes does not fit: pbox_store_open fails with ENOMEM) */
	so.max_bytes = 4 * o->keys * ((uint64_t)o->key_size + o->value_size + 32) + (1ull << 30);
	char err[256] = "";
	so.errbuf = err;
	so.errbuf_len = sizeof(err);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	so.redo = h;
	so.nredo = nh;
	int r = pbox_store_open(dir, &so, &e->st);
	if (r) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "pbox_store_open: %s%s%s", pbox_strerror(r),
				 err[0] ? ": " : "", err);
		free(e);
		return r;
	}
	if ((r = pbox_bt_open_or_create(e->st, "bench", &e->bt))) {
		(void)pbox_store_close(e->st);
		free(e);
		return r;
	}
	e->durable = o->durable ? PBOX_BT_DURABLE : 0;
	if (o->msg && o->msg_len) {
		pbox_store_stats s;
		pbox_store_get_stats(e->st, &s);
		snprintf(o->msg, o->msg_len, "page %u B, budget %.0f MiB, %s%s%s",
			 s.page_size, (double)s.budget_bytes / 1048576.0,
			 s.direct_io ? "O_DIRECT" : "buffered I/O (no O_DIRECT)",
			 err[0] ? "; " : "", err);
	}
	*out = e;
	return 0;
}

static int pb_close(pbe_engine *e)
{
	pbox_bt_close(e->bt);
	int r = pbox_store_close(e->st);
	free(e);
	return r;
}

static int pb_set_durable(pbe_engine *e, bool durable)
{
	e->durable = durable ? PBOX_BT_DURABLE : 0;
	return durable ? pbox_wal_flush(pbox_store_wal(e->st)) : 0;
}

static int pb_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	int r = pbox_bt_batch_create(&t->batch);
	if (r) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

static void pb_thread_close(pbe_thread *t)
{
	pbox_txn_abort(t->snap);
	pbox_bt_batch_destroy(t->batch);
	free(t->buf);
	free(t);
}

static int pb_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	return map_rc(pbox_bt_upsert(t->e->bt, key, klen, val, vlen, t->e->durable));
}

static int pb_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	(void)flags; /* no append path: sequential keys take the same batch */
	int cr;
	if (!t->batch && (cr = pbox_bt_batch_create(&t->batch))) /* lost after a failure */
		return cr;
	for (size_t i = 0; i < n; i++) {
		int r = pbox_bt_batch_put(t->batch, t->e->bt, kv[i].key, kv[i].klen, kv[i].val,
					  kv[i].vlen);
		if (r) {
			/* the batch holds this call's keys so far: start a new one, so that
			 * none of them is committed with a later batch */
			pbox_bt_batch_destroy(t->batch);
			t->batch = NULL;
			cr = pbox_bt_batch_create(&t->batch);
			return cr ? cr : map_rc(r);
		}
	}
	return map_rc(pbox_bt_batch_commit(t->batch, t->e->durable));
}

static int pb_snap_begin(pbe_thread *t)
{
	if (t->snap)
		return PBOX_EINVAL;
	return pbox_txn_begin(t->e->st, PBOX_TXN_READONLY, &t->snap);
}

static int pb_snap_end(pbe_thread *t)
{
	pbox_txn_abort(t->snap); /* read-only: nothing to commit */
	t->snap = NULL;
	return 0;
}

/* A conflict or a retired snapshot: the transaction is run again. */
static inline bool pb_retry(int r)
{
	return r == PBOX_ECONFLICT || r == PBOX_ESNAPSHOT;
}

static int pb_txn_rw(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries)
{
	if (!t->buf && !(t->buf = malloc(2 * (size_t)PB_VAL_MAX)))
		return -ENOMEM;
	unsigned char *in = t->buf, *out = t->buf + PB_VAL_MAX;
	for (unsigned n = 0;;) {
		pbox_txn *x;
		int r = pbox_txn_begin(t->e->st, 0, &x);
		if (r)
			return r;
		size_t vlen = 0, olen = 0;
		for (unsigned i = 0; i < op->nread && !r; i++) {
			r = pbox_txn_get(x, t->e->bt, op->read_keys[i], op->klen, in, PB_VAL_MAX,
					 &vlen);
			if (!r)
				r = op->fn(op->read_keys[i], op->klen, in, vlen, NULL, 0, NULL, op->arg);
		}
		for (unsigned i = 0; i < op->nwrite && !r; i++) {
			r = pbox_txn_get(x, t->e->bt, op->write_keys[i], op->klen, in, PB_VAL_MAX,
					 &vlen);
			if (!r)
				r = op->fn(op->write_keys[i], op->klen, in, vlen, out, PB_VAL_MAX, &olen,
					   op->arg);
			if (!r)
				r = pbox_txn_put(x, t->e->bt, op->write_keys[i], op->klen, out, olen);
		}
		if (!r)
			r = pbox_txn_commit(x, t->e->durable); /* ends x whatever the result */
		else
			pbox_txn_abort(x);
		if (!pb_retry(r))
			return map_rc(r);
		pbe_txn_backoff(++n);
		++*retries;
	}
}

static int pb_txn_bulk(pbe_thread *t, const pbe_kv *kv, size_t n)
{
	pbox_txn *x;
	int r = pbox_txn_begin(t->e->st, 0, &x);
	if (r)
		return r;
	for (size_t i = 0; i < n && !r; i++)
		r = pbox_txn_put(x, t->e->bt, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	if (r) {
		pbox_txn_abort(x);
		return map_rc(r);
	}
	return map_rc(pbox_txn_commit(x, t->e->durable));
}

static int pb_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	if (t->snap)
		return map_rc(pbox_txn_get(t->snap, t->e->bt, key, klen, buf, cap, vlen));
	return map_rc(pbox_bt_lookup(t->e->bt, key, klen, buf, cap, vlen));
}

typedef struct scan_state {
	size_t want, n;
	pbe_scan_fn fn;
	void *arg;
	int user_rc;
} scan_state;

static int scan_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_state *s = arg;
	int r = s->fn(key, klen, val, vlen, s->arg);
	s->n++;
	if (r) {
		s->user_rc = r;
		return PB_SCAN_DONE;
	}
	return s->n >= s->want ? PB_SCAN_DONE : 0;
}

static int pb_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	scan_state s = { .want = count, .fn = fn, .arg = arg };
	*n = 0;
	if (count == 0)
		return 0;
	int r = t->snap ? pbox_txn_scan(t->snap, t->e->bt, start, slen, NULL, 0, 0, scan_one, &s)
			: pbox_bt_scan(t->e->bt, start, slen, NULL, 0, scan_one, &s);
	*n = s.n;
	if (r == PB_SCAN_DONE)
		return s.user_rc;
	return map_rc(r);
}

static int pb_settle(pbe_engine *e, char *note, size_t note_len)
{
	(void)note;
	(void)note_len;
	return pbox_store_checkpoint(e->st);
}

static void pb_info(pbe_engine *e, pbe_info *out)
{
	pbox_store_stats s;
	pbox_store_get_stats(e->st, &s);
	out->data_bytes = (s.page_count - s.free_pages) * s.page_size;
	out->resident_bytes = s.resident_bytes;
	out->budget_bytes = s.budget_bytes;
}

const pbe_adapter pbe_pagebox_adapter = {
	.name = "pagebox",
	.version = PBOX_VERSION_STRING,
	.bounded_cache = true,
	.settle_how = "pbox_store_checkpoint",
	.batch_durable = "atomic (1 pbox_bt_batch, synced)",
	.batch_fast = "atomic (1 pbox_bt_batch, unsynced)",
	.txn_how = "pbox_txn: snapshot isolation, first committer wins (conflicts at put/commit, "
		   "no locks held while running)",
	.snap_how = "read-only pbox_txn (PBOX_TXN_READONLY)",
	.open = pb_open,
	.close = pb_close,
	.set_durable = pb_set_durable,
	.thread_open = pb_thread_open,
	.thread_close = pb_thread_close,
	.put = pb_put,
	.put_batch = pb_put_batch,
	.get = pb_get,
	.scan = pb_scan,
	.snap_begin = pb_snap_begin,
	.snap_end = pb_snap_end,
	.txn_rw = pb_txn_rw,
	.txn_bulk = pb_txn_bulk,
	.settle = pb_settle,
	.info = pb_info,
	.strerror = pb_strerror,
};
