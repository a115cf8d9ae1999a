/*
 * engine_rocksdb.c — the RocksDB adapter of pbox-bench, through RocksDB's C API (Debian's
 * librocksdb-dev, 7.8).
 *
 * Settings a competent RocksDB user would choose for this benchmark (also in
 * bench/README.md):
 *   - one DB in the scratch directory, the default column family and bytewise comparator
 *     (the driver's big-endian keys sort numerically);
 *   - rocksdb_options_increase_parallelism(cores) (background flush and compaction threads
 *     as many as cores), level_compaction_dynamic_level_bytes = true (the recommended level
 *     sizing), bytes_per_sync = 1 MiB (smooth write-back of SST files);
 *   - no compression: the driver's values are a repeated filler byte, which any compressor
 *     shrinks to nothing; every engine stores the same bytes (LevelDB and WiredTiger
 *     likewise run without compression);
 *   - block-based tables, 4 KiB blocks (the default), a full Bloom filter of 10 bits per key,
 *     an LRU block cache of the budget (in-memory runs: the common default of
 *     pbe_default_budget, enough for all data);
 *   - memtables: in-memory runs the defaults (64 MiB write buffer, two of them); in
 *     out-of-memory runs write_buffer_size = budget / 8 and the block cache gets the budget
 *     less two write buffers, so that memtables and cache together stay within the budget;
 *   - out-of-memory runs: use_direct_reads and use_direct_io_for_flush_and_compaction
 *     (reads and compactions bypass the OS page cache), and cache_index_and_filter_blocks
 *     with pin_l0_filter_and_index_blocks_in_cache (index and filter blocks count against
 *     the block cache instead of growing outside it). Hence bounded_cache = true;
 *   - commit mode: durable = WriteOptions.sync (each write batch's WAL record is synced
 *     before it returns; concurrent writers share syncs through RocksDB's write groups);
 *     fast = sync off, the WAL still written (to the OS page cache) on every write.
 *     Switching to durable first calls rocksdb_flush_wal(db, sync = 1);
 *   - put = rocksdb_put; put_batch = one WriteBatch of the n keys (blind writes: an LSM
 *     does not look for an existing key, so PBE_EXISTS is not reported); get =
 *     rocksdb_get_pinned (no copy into a malloc'ed string); scan = a new iterator per scan
 *     (Seek, then Next), default ReadOptions (checksums verified, RocksDB's default);
 *   - --log-parity on (the default): recycle_log_file_num = RD_RECYCLE_LOGS (2), so WAL files
 *     whose memtables were flushed are reused (overwritten in place: blocks already
 *     allocated, no inode update per sync) instead of created anew — the counterpart of
 *     pagebox's pre-zeroed segments, of which it keeps 2 spares for reuse. Off: 0 (RocksDB's
 *     default);
 *   - settle (before each measured cell on the filled instance): rocksdb_flush of the
 *     memtables (wait = true), then polling every 10 ms until rocksdb.num-running-flushes,
 *     rocksdb.mem-table-flush-pending, rocksdb.num-running-compactions and
 *     rocksdb.compaction-pending are all 0, for at most RD_SETTLE_MAX_S (120) seconds (the
 *     note says so if the bound was hit). No manual full compaction: the LSM tree keeps the
 *     shape RocksDB's own compactions give it.
 *   - transactions (txn-rw, txn-bulk) need a TransactionDB, which the C API can open but
 *     not unwrap into its base DB. So an instance opened with the txn option (the driver's
 *     transaction instance, which runs only txn-bulk and txn-rw) is a pessimistic
 *     TransactionDB (rocksdb_transactiondb_open, default TransactionDBOptions: lock
 *     timeout 1 s, 16 lock stripes), and every operation on it goes through the
 *     rocksdb_transactiondb_* calls (its plain puts and batches take the key locks too);
 *     every other instance stays a plain DB, as users who need no transactions open it;
 *   - txn_rw: one rocksdb_transaction_t per pbe_thread, reused (rocksdb_transaction_begin
 *     with old_txn), TransactionOptions.set_snapshot = true, so the reads see the
 *     transaction's snapshot (ReadOptions.snapshot = rocksdb_transaction_get_snapshot) and
 *     a GetForUpdate of a key written since then fails (Busy): snapshot isolation like
 *     WiredTiger's and pagebox's. Read keys: rocksdb_transaction_get_pinned; write keys:
 *     rocksdb_transaction_get_pinned_for_update (exclusive lock, held to the commit), then
 *     rocksdb_transaction_put, taken in key order (the locks always in the same order:
 *     no deadlock between two transactions, the standard practice with pessimistic
 *     locks); commit with the commit mode's WriteOptions (sync in durable mode). A Busy,
 *     TimedOut (lock wait over 1 s) or TryAgain status rolls back and runs the whole
 *     transaction again (a retry) after the driver's back-off (pbe_txn_backoff);
 *   - txn_bulk: one transaction (no snapshot: blind writes) of n rocksdb_transaction_put,
 *     one commit (each put locks its key until the commit, as pessimistic transactions do);
 *   - snapshots (snapshot-get, snapshot-scan, on the plain DB): rocksdb_create_snapshot,
 *     the pbe_thread's own ReadOptions with that snapshot for get (get_pinned) and scan
 *     (an iterator), rocksdb_release_snapshot at the end.
 * Errors: the C API reports strings; the adapter keeps the latest one for strerror.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <rocksdb/c.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef PBE_ROCKSDB_VERSION /* from pkg-config (rocksdb/version.h is C++) */
#define PBE_ROCKSDB_VERSION "7.x"
#endif
#define RD_ERR (-41001) /* the message is in rd_errmsg */
#define RD_RECYCLE_LOGS 2  /* --log-parity on: WAL files kept for reuse */
#define RD_SETTLE_MAX_S 120 /* settle: the longest wait for background work to finish */
#define RD_RETRY (-41002) /* txn_rw: a retryable status (Busy, TimedOut, TryAgain) */
#define RD_VAL_MAX 65536u /* txn_rw's value buffer (the driver's largest value) */

struct pbe_engine {
	rocksdb_t *db;		    /* a plain DB, or */
	rocksdb_transactiondb_t *tdb; /* a TransactionDB (opened with the txn option) */
	rocksdb_transactiondb_options_t *tdbopt;
	rocksdb_transaction_options_t *topt_si, *topt_bulk; /* set_snapshot on / off */
	rocksdb_options_t *opt;
	rocksdb_block_based_table_options_t *bbt;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wsync, *wfast;
	rocksdb_readoptions_t *ropt;
	bool durable;
	uint64_t cache_bytes, budget;
};

struct pbe_thread {
	pbe_engine *e;
	rocksdb_writebatch_t *wb;
	rocksdb_readoptions_t *sro;	 /* snapshot reads: snap_begin's or the transaction's */
	const rocksdb_snapshot_t *snap; /* snap_begin's, or NULL */
	rocksdb_transaction_t *txn;	 /* txn_rw's and txn_bulk's, reused */
	unsigned char *buf;		 /* txn_rw: the new value */
	const uint8_t **wk;		 /* txn_rw: the write keys in key order */
	unsigned nwk;			 /* wk's capacity */
};

static pthread_mutex_t rd_errmu = PTHREAD_MUTEX_INITIALIZER;
static char rd_errmsg[256] = "no error";

/* Take the C API's error string (freeing it); RD_ERR. */
static int rd_err(char *err)
{
	pthread_mutex_lock(&rd_errmu);
	snprintf(rd_errmsg, sizeof(rd_errmsg), "%s", err);
	pthread_mutex_unlock(&rd_errmu);
	rocksdb_free(err);
	return RD_ERR;
}

/* Like rd_err, but a status that asks for the transaction to be run again (Busy: a write
 * conflict or a deadlock; TimedOut: a lock wait over the timeout; TryAgain) is RD_RETRY. */
static int rd_txn_err(char *err)
{
	static const char *const retry[] = { "Resource busy", "Operation timed out",
					     "Operation failed. Try again" };
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		if (!strncmp(err, retry[i], strlen(retry[i]))) {
			rocksdb_free(err);
			return RD_RETRY;
		}
	return rd_err(err);
}

static const char *rd_strerror(int rc)
{
	static char buf[256];
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	case RD_RETRY:
		return "transaction conflict (retryable)";
	case RD_ERR:
		pthread_mutex_lock(&rd_errmu);
		snprintf(buf, sizeof(buf), "%s", rd_errmsg);
		pthread_mutex_unlock(&rd_errmu);
		return buf;
	default:
		return rc < 0 ? strerror(-rc) : "unknown error";
	}
}

static void rd_free(pbe_engine *e)
{
	if (e->db)
		rocksdb_close(e->db);
	if (e->tdb)
		rocksdb_transactiondb_close(e->tdb);
	if (e->tdbopt)
		rocksdb_transactiondb_options_destroy(e->tdbopt);
	if (e->topt_si)
		rocksdb_transaction_options_destroy(e->topt_si);
	if (e->topt_bulk)
		rocksdb_transaction_options_destroy(e->topt_bulk);
	if (e->wsync)
		rocksdb_writeoptions_destroy(e->wsync);
	if (e->wfast)
		rocksdb_writeoptions_destroy(e->wfast);
	if (e->ropt)
		rocksdb_readoptions_destroy(e->ropt);
	if (e->opt)
		rocksdb_options_destroy(e->opt);
	if (e->bbt)
		rocksdb_block_based_options_destroy(e->bbt);
	if (e->cache)
		rocksdb_cache_destroy(e->cache);
	free(e);
}

static int rd_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	uint64_t budget = o->budget_bytes ? o->budget_bytes : pbe_default_budget(o);
	uint64_t wbs = 64ull << 20;
	uint64_t cache = budget;
	if (o->oom) {
		wbs = budget / 8 < (1ull << 20) ? 1ull << 20 : budget / 8;
		cache = budget > 2 * wbs + (1ull << 20) ? budget - 2 * wbs : 1ull << 20;
	}
	e->cache_bytes = cache;
	e->budget = budget;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	e->cache = rocksdb_cache_create_lru((size_t)cache);
	e->bbt = rocksdb_block_based_options_create();
	e->opt = rocksdb_options_create();
	e->wsync = rocksdb_writeoptions_create();
	e->wfast = rocksdb_writeoptions_create();
	e->ropt = rocksdb_readoptions_create();
	if (!e->cache || !e->bbt || !e->opt || !e->wsync || !e->wfast || !e->ropt) {
		rd_free(e);
		return -ENOMEM;
	}
	rocksdb_block_based_options_set_block_cache(e->bbt, e->cache);
	/* the table options take ownership of the filter policy */
	rocksdb_block_based_options_set_filter_policy(e->bbt,
						      rocksdb_filterpolicy_create_bloom_full(10));
	if (o->oom) {
		rocksdb_block_based_options_set_cache_index_and_filter_blocks(e->bbt, 1);
		rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(e->bbt, 1);
	}
	rocksdb_options_set_block_based_table_factory(e->opt, e->bbt);
	rocksdb_options_set_create_if_missing(e->opt, 1);
	rocksdb_options_increase_parallelism(e->opt, ncpu > 0 ? (int)ncpu : 2);
	rocksdb_options_set_level_compaction_dynamic_level_bytes(e->opt, 1);
	rocksdb_options_set_bytes_per_sync(e->opt, 1ull << 20);
	rocksdb_options_set_compression(e->opt, rocksdb_no_compression);
	rocksdb_options_set_write_buffer_size(e->opt, (size_t)wbs);
	rocksdb_options_set_max_write_buffer_number(e->opt, 2);
	if (o->log_parity)
		rocksdb_options_set_recycle_log_file_num(e->opt, RD_RECYCLE_LOGS);
	if (o->oom) {
		rocksdb_options_set_use_direct_reads(e->opt, 1);
		rocksdb_options_set_use_direct_io_for_flush_and_compaction(e->opt, 1);
	}
	rocksdb_writeoptions_set_sync(e->wsync, 1);
	rocksdb_writeoptions_set_sync(e->wfast, 0);
	char *err = NULL;
	if (o->txn) {
		e->tdbopt = rocksdb_transactiondb_options_create();
		e->topt_si = rocksdb_transaction_options_create();
		e->topt_bulk = rocksdb_transaction_options_create();
		if (!e->tdbopt || !e->topt_si || !e->topt_bulk) {
			rd_free(e);
			return -ENOMEM;
		}
		rocksdb_transaction_options_set_set_snapshot(e->topt_si, 1);
		e->tdb = rocksdb_transactiondb_open(e->opt, e->tdbopt, dir, &err);
	} else {
		e->db = rocksdb_open(e->opt, dir, &err);
	}
	if (err) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "%s: %s",
				 o->txn ? "rocksdb_transactiondb_open" : "rocksdb_open", err);
		int r = rd_err(err);
		e->db = NULL;
		e->tdb = NULL;
		rd_free(e);
		return r;
	}
	e->durable = o->durable;
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len,
			 "block cache %.0f MiB, write buffer %.0f MiB x 2, bloom 10 bits/key, no "
			 "compression%s, recycle_log_file_num %d (%s writes)%s",
			 (double)cache / 1048576.0, (double)wbs / 1048576.0,
			 o->oom ? ", direct reads and compaction I/O, index/filter blocks in the cache"
				: "",
			 o->log_parity ? RD_RECYCLE_LOGS : 0, o->durable ? "synced" : "unsynced",
			 o->txn ? "; pessimistic TransactionDB" : "");
	*out = e;
	return 0;
}

static void rd_flush_wal(pbe_engine *e, char **err)
{
	if (e->tdb)
		rocksdb_transactiondb_flush_wal(e->tdb, 1, err);
	else
		rocksdb_flush_wal(e->db, 1, err);
}

static int rd_property_int(pbe_engine *e, const char *name, uint64_t *v)
{
	return e->tdb ? rocksdb_transactiondb_property_int(e->tdb, name, v)
		      : rocksdb_property_int(e->db, name, v);
}

static int rd_close(pbe_engine *e)
{
	char *err = NULL;
	int r = 0;
	rd_flush_wal(e, &err); /* fast-mode writes become durable, as elsewhere */
	if (err)
		r = rd_err(err);
	rd_free(e);
	return r;
}

static int rd_set_durable(pbe_engine *e, bool durable)
{
	if (durable) {
		char *err = NULL;
		rd_flush_wal(e, &err);
		if (err)
			return rd_err(err);
	}
	e->durable = durable;
	return 0;
}

static int rd_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	t->wb = rocksdb_writebatch_create();
	t->sro = rocksdb_readoptions_create();
	if (!t->wb || !t->sro) {
		if (t->wb)
			rocksdb_writebatch_destroy(t->wb);
		if (t->sro)
			rocksdb_readoptions_destroy(t->sro);
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

static void rd_thread_close(pbe_thread *t)
{
	if (t->snap) {
		if (t->e->tdb)
			rocksdb_transactiondb_release_snapshot(t->e->tdb, t->snap);
		else
			rocksdb_release_snapshot(t->e->db, t->snap);
	}
	if (t->txn)
		rocksdb_transaction_destroy(t->txn);
	if (t->sro)
		rocksdb_readoptions_destroy(t->sro);
	rocksdb_writebatch_destroy(t->wb);
	free(t->buf);
	free(t->wk);
	free(t);
}

static inline const rocksdb_writeoptions_t *wopt(const pbe_engine *e)
{
	return e->durable ? e->wsync : e->wfast;
}

static int rd_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	char *err = NULL;
	if (t->e->tdb)
		rocksdb_transactiondb_put(t->e->tdb, wopt(t->e), key, klen, val, vlen, &err);
	else
		rocksdb_put(t->e->db, wopt(t->e), key, klen, val, vlen, &err);
	return err ? rd_err(err) : 0;
}

static int rd_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	(void)flags;
	rocksdb_writebatch_clear(t->wb);
	for (size_t i = 0; i < n; i++)
		rocksdb_writebatch_put(t->wb, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	char *err = NULL;
	if (t->e->tdb)
		rocksdb_transactiondb_write(t->e->tdb, wopt(t->e), t->wb, &err);
	else
		rocksdb_write(t->e->db, wopt(t->e), t->wb, &err);
	return err ? rd_err(err) : 0;
}

static int rd_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	char *err = NULL;
	const rocksdb_readoptions_t *ro = t->snap ? t->sro : t->e->ropt;
	rocksdb_pinnableslice_t *p =
		t->e->tdb ? rocksdb_transactiondb_get_pinned(t->e->tdb, ro, key, klen, &err)
			  : rocksdb_get_pinned(t->e->db, ro, key, klen, &err);
	if (err)
		return rd_err(err);
	if (!p)
		return PBE_NOTFOUND;
	size_t n;
	const char *v = rocksdb_pinnableslice_value(p, &n);
	int r = 0;
	*vlen = n;
	if (n > cap)
		r = PBE_TOOSMALL;
	else if (n)
		memcpy(buf, v, n);
	rocksdb_pinnableslice_destroy(p);
	return r;
}

static int rd_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	*n = 0;
	if (count == 0)
		return 0;
	const rocksdb_readoptions_t *ro = t->snap ? t->sro : t->e->ropt;
	rocksdb_iterator_t *it = t->e->tdb ? rocksdb_transactiondb_create_iterator(t->e->tdb, ro)
					   : rocksdb_create_iterator(t->e->db, ro);
	if (!it)
		return -ENOMEM;
	if (slen)
		rocksdb_iter_seek(it, start, slen);
	else
		rocksdb_iter_seek_to_first(it);
	size_t got = 0;
	int r = 0;
	while (got < count && rocksdb_iter_valid(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		const char *v = rocksdb_iter_value(it, &vl);
		got++;
		if ((r = fn(k, kl, v, vl, arg)))
			break;
		if (got < count)
			rocksdb_iter_next(it);
	}
	if (!r) {
		char *err = NULL;
		rocksdb_iter_get_error(it, &err);
		if (err)
			r = rd_err(err);
	}
	rocksdb_iter_destroy(it);
	*n = got;
	return r;
}

static int rd_snap_begin(pbe_thread *t)
{
	if (t->snap)
		return -EINVAL;
	t->snap = t->e->tdb ? rocksdb_transactiondb_create_snapshot(t->e->tdb)
			    : rocksdb_create_snapshot(t->e->db);
	if (!t->snap)
		return -ENOMEM;
	rocksdb_readoptions_set_snapshot(t->sro, t->snap);
	return 0;
}

static int rd_snap_end(pbe_thread *t)
{
	rocksdb_readoptions_set_snapshot(t->sro, NULL);
	if (t->e->tdb)
		rocksdb_transactiondb_release_snapshot(t->e->tdb, t->snap);
	else
		rocksdb_release_snapshot(t->e->db, t->snap);
	t->snap = NULL;
	return 0;
}

/* Begin t's transaction (reused) with options o; -ENOMEM, or 0. */
static int rd_txn_begin(pbe_thread *t, const rocksdb_transaction_options_t *o)
{
	rocksdb_transaction_t *x = rocksdb_transaction_begin(t->e->tdb, wopt(t->e), o, t->txn);
	if (!x)
		return -ENOMEM;
	t->txn = x;
	return 0;
}

/* Read key in t's transaction (for update: locked), pass it to fn; for an update, put the
 * new value. */
static int rd_rmw_one(pbe_thread *t, const pbe_txn_rw *op, const uint8_t *key, bool write)
{
	char *err = NULL;
	rocksdb_pinnableslice_t *p =
		write ? rocksdb_transaction_get_pinned_for_update(t->txn, t->sro, (const char *)key,
								  op->klen, 1, &err)
		      : rocksdb_transaction_get_pinned(t->txn, t->sro, (const char *)key, op->klen,
						       &err);
	if (err)
		return rd_txn_err(err);
	if (!p)
		return PBE_NOTFOUND;
	size_t vlen, olen = 0;
	const char *v = rocksdb_pinnableslice_value(p, &vlen);
	int r = op->fn(key, op->klen, v, vlen, write ? t->buf : NULL, write ? RD_VAL_MAX : 0,
		       write ? &olen : NULL, op->arg);
	rocksdb_pinnableslice_destroy(p);
	if (r || !write)
		return r;
	rocksdb_transaction_put(t->txn, (const char *)key, op->klen, (const char *)t->buf, olen,
				&err);
	return err ? rd_txn_err(err) : 0;
}

static int rd_txn_rw(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries)
{
	if (!t->e->tdb)
		return -ENOTSUP; /* only on the transaction instance */
	if (!t->buf && !(t->buf = malloc(RD_VAL_MAX)))
		return -ENOMEM;
	/* the write keys in key order: locks always taken in the same order */
	if (op->nwrite > t->nwk) {
		const uint8_t **nw = realloc(t->wk, op->nwrite * sizeof(*nw));
		if (!nw)
			return -ENOMEM;
		t->wk = nw;
		t->nwk = op->nwrite;
	}
	const uint8_t **wk = t->wk;
	for (unsigned i = 0; i < op->nwrite; i++) {
		unsigned j = i;
		for (; j > 0 && memcmp(wk[j - 1], op->write_keys[i], op->klen) > 0; j--)
			wk[j] = wk[j - 1];
		wk[j] = op->write_keys[i];
	}
	for (unsigned n = 0;;) {
		int r = rd_txn_begin(t, t->e->topt_si);
		if (r)
			return r;
		const rocksdb_snapshot_t *snap = rocksdb_transaction_get_snapshot(t->txn);
		rocksdb_readoptions_set_snapshot(t->sro, snap);
		for (unsigned i = 0; i < op->nread && !r; i++)
			r = rd_rmw_one(t, op, op->read_keys[i], false);
		for (unsigned i = 0; i < op->nwrite && !r; i++)
			r = rd_rmw_one(t, op, wk[i], true);
		char *err = NULL;
		if (!r) {
			rocksdb_transaction_commit(t->txn, &err);
			if (err)
				r = rd_txn_err(err);
		}
		if (r) {
			char *rerr = NULL;
			rocksdb_transaction_rollback(t->txn, &rerr);
			if (rerr)
				rocksdb_free(rerr);
		}
		rocksdb_readoptions_set_snapshot(t->sro, NULL);
		rocksdb_free((void *)snap); /* the wrapper only (rocksdb/c.h) */
		if (r != RD_RETRY)
			return r;
		pbe_txn_backoff(++n);
		++*retries;
	}
}

static int rd_txn_bulk(pbe_thread *t, const pbe_kv *kv, size_t n)
{
	if (!t->e->tdb)
		return -ENOTSUP;
	int r = rd_txn_begin(t, t->e->topt_bulk);
	if (r)
		return r;
	char *err = NULL;
	for (size_t i = 0; i < n && !err; i++)
		rocksdb_transaction_put(t->txn, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen, &err);
	if (!err)
		rocksdb_transaction_commit(t->txn, &err);
	if (err) {
		r = rd_err(err);
		char *rerr = NULL;
		rocksdb_transaction_rollback(t->txn, &rerr);
		if (rerr)
			rocksdb_free(rerr);
	}
	return r;
}

/* Memtables flushed, then no flush or compaction running or pending (bounded wait). */
static int rd_settle(pbe_engine *e, char *note, size_t note_len)
{
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	if (!fo)
		return -ENOMEM;
	rocksdb_flushoptions_set_wait(fo, 1);
	char *err = NULL;
	if (e->tdb)
		rocksdb_transactiondb_flush(e->tdb, fo, &err);
	else
		rocksdb_flush(e->db, fo, &err);
	rocksdb_flushoptions_destroy(fo);
	if (err)
		return rd_err(err);
	static const char *const props[] = { "rocksdb.num-running-flushes",
					     "rocksdb.mem-table-flush-pending",
					     "rocksdb.num-running-compactions",
					     "rocksdb.compaction-pending" };
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint64_t busy = 0;
		for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
			uint64_t v = 0;
			if (rd_property_int(e, props[i], &v) != 0) {
				snprintf(note, note_len, "property %s unavailable", props[i]);
				return 0;
			}
			busy += v;
		}
		if (!busy)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= RD_SETTLE_MAX_S) {
			snprintf(note, note_len, "background work still pending after %d s",
				 RD_SETTLE_MAX_S);
			return 0;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

static void rd_info(pbe_engine *e, pbe_info *out)
{
	uint64_t sst = 0, mem = 0;
	(void)rd_property_int(e, "rocksdb.total-sst-files-size", &sst);
	(void)rd_property_int(e, "rocksdb.cur-size-all-mem-tables", &mem);
	out->data_bytes = sst + mem;
	out->resident_bytes = rocksdb_cache_get_usage(e->cache) + mem;
	out->budget_bytes = e->budget; /* block cache plus memtables */
}

const pbe_adapter pbe_rocksdb_adapter = {
	.name = "rocksdb",
	.version = PBE_ROCKSDB_VERSION,
	.bounded_cache = true,
	.settle_how = "rocksdb_flush(wait) + wait for no pending flush/compaction",
	.batch_durable = "atomic (1 WriteBatch, synced)",
	.batch_fast = "atomic (1 WriteBatch, unsynced)",
	.txn_how = "pessimistic TransactionDB, set_snapshot: snapshot isolation, GetForUpdate "
		   "locks (key order) held to the commit",
	.snap_how = "rocksdb_create_snapshot + ReadOptions.snapshot",
	.tsan_skip = "librocksdb is not built with TSan: its lock-free memtable publishes entries with atomics TSan cannot see, so reads of fresh entries are reported as races",
	.open = rd_open,
	.close = rd_close,
	.set_durable = rd_set_durable,
	.thread_open = rd_thread_open,
	.thread_close = rd_thread_close,
	.put = rd_put,
	.put_batch = rd_put_batch,
	.get = rd_get,
	.scan = rd_scan,
	.snap_begin = rd_snap_begin,
	.snap_end = rd_snap_end,
	.txn_rw = rd_txn_rw,
	.txn_bulk = rd_txn_bulk,
	.settle = rd_settle,
	.info = rd_info,
	.strerror = rd_strerror,
};
