/*
 * engine_leveldb.c — the LevelDB adapter of pbox-bench, through LevelDB's C API (Debian's
 * libleveldb-dev, 1.23).
 *
 * Settings a competent LevelDB user would choose for this benchmark (also in
 * bench/README.md):
 *   - one DB in the scratch directory, the bytewise comparator (the driver's big-endian keys
 *     sort numerically);
 *   - an LRU block cache of the budget (in-memory runs: the common default of
 *     pbe_default_budget); a Bloom filter of 10 bits per key (leveldb_filterpolicy_create_bloom);
 *   - no compression (the driver's values are a repeated filler byte; every engine stores
 *     the same bytes);
 *   - write_buffer_size 64 MiB instead of the 4 MiB default (the usual first tuning: fewer
 *     level-0 files and compactions during fills); in out-of-memory runs budget / 8;
 *     other options at their defaults (max_open_files 1000, 2 MiB table files, 4 KiB blocks);
 *   - commit mode: durable = WriteOptions.sync (the log record of each write is synced;
 *     concurrent writers are grouped by LevelDB's writer queue); fast = sync off (the log is
 *     written to the OS page cache on every write). Switching to durable writes one empty
 *     batch with sync, which syncs the log and so every earlier write;
 *   - put = leveldb_put; put_batch = one WriteBatch of the n keys (blind writes: PBE_EXISTS
 *     is not reported); get = leveldb_get (returns a malloc'ed copy, which the adapter copies
 *     and frees: the C API has no pinned read); scan = a new iterator per scan.
 * Snapshots (snapshot-get, snapshot-scan): leveldb_create_snapshot, the pbe_thread's own
 * ReadOptions with that snapshot for get and scan, leveldb_release_snapshot at the end.
 * Transactions: none in LevelDB (a WriteBatch is atomic but reads nothing and isolates
 * nothing), so txn_rw and txn_bulk are NULL and the driver reports txn-rw and txn-bulk as
 * n/a for LevelDB.
 * Settle (before each measured cell on the filled instance): leveldb_compact_range over the
 * whole key space (NULL, NULL): the memtable flushed and every level compacted, waited for.
 * The C API has neither a memtable flush nor a property that says whether a compaction is
 * pending, so a manual full compaction is the only way it offers to leave no background
 * work behind; it also leaves LevelDB with fewer files than RocksDB's natural shape, which
 * favours its reads (the direction that does not flatter pagebox). --log-parity: nothing to
 * set (the C API does not expose reuse_logs).
 * bounded_cache = false: LevelDB has no direct I/O; table files are read through mmap (up
 * to 1000 of them on 64-bit Linux) or pread, so the OS page cache holds the data whatever
 * the block cache's size. Out-of-memory runs list it as not ranked.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <leveldb/c.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LD_ERR (-41101) /* the message is in ld_errmsg */

struct pbe_engine {
	leveldb_t *db;
	leveldb_options_t *opt;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *filter;
	leveldb_writeoptions_t *wsync, *wfast;
	leveldb_readoptions_t *ropt;
	bool durable;
	uint64_t budget;
};

struct pbe_thread {
	pbe_engine *e;
	leveldb_writebatch_t *wb;
	leveldb_readoptions_t *sro;	 /* reads inside snap_begin .. snap_end */
	const leveldb_snapshot_t *snap; /* snap_begin's, or NULL */
};

static pthread_mutex_t ld_errmu = PTHREAD_MUTEX_INITIALIZER;
static char ld_errmsg[256] = "no error";
static char ld_version[32] = "1.x";

__attribute__((constructor)) static void ld_version_init(void)
{
	snprintf(ld_version, sizeof(ld_version), "%d.%d", leveldb_major_version(),
		 leveldb_minor_version());
}

static int ld_err(char *err)
{
	pthread_mutex_lock(&ld_errmu);
	snprintf(ld_errmsg, sizeof(ld_errmsg), "%s", err);
	pthread_mutex_unlock(&ld_errmu);
	leveldb_free(err);
	return LD_ERR;
}

static const char *ld_strerror(int rc)
{
	static char buf[256];
	switch (rc) {
	case PBE_NOTFOUND:
		return "not found";
	case PBE_EXISTS:
		return "already exists";
	case PBE_TOOSMALL:
		return "buffer too small";
	case LD_ERR:
		pthread_mutex_lock(&ld_errmu);
		snprintf(buf, sizeof(buf), "%s", ld_errmsg);
		pthread_mutex_unlock(&ld_errmu);
		return buf;
	default:
		return rc < 0 ? strerror(-rc) : "unknown error";
	}
}

static void ld_free(pbe_engine *e)
{
	if (e->db)
		leveldb_close(e->db);
	if (e->wsync)
		leveldb_writeoptions_destroy(e->wsync);
	if (e->wfast)
		leveldb_writeoptions_destroy(e->wfast);
	if (e->ropt)
		leveldb_readoptions_destroy(e->ropt);
	if (e->opt)
		leveldb_options_destroy(e->opt);
	if (e->filter)
		leveldb_filterpolicy_destroy(e->filter);
	if (e->cache)
		leveldb_cache_destroy(e->cache);
	free(e);
}

static int ld_open(const char *dir, pbe_open_options *o, pbe_engine **out)
{
	pbe_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	uint64_t budget = o->budget_bytes ? o->budget_bytes : pbe_default_budget(o);
	uint64_t wbs = 64ull << 20;
	if (o->oom)
		wbs = budget / 8 < (1ull << 20) ? 1ull << 20 : budget / 8;
	e->budget = budget;
	e->cache = leveldb_cache_create_lru((size_t)budget);
	e->filter = leveldb_filterpolicy_create_bloom(10);
	e->opt = leveldb_options_create();
	e->wsync = leveldb_writeoptions_create();
	e->wfast = leveldb_writeoptions_create();
	e->ropt = leveldb_readoptions_create();
	if (!e->cache || !e->filter || !e->opt || !e->wsync || !e->wfast || !e->ropt) {
		ld_free(e);
		return -ENOMEM;
	}
	leveldb_options_set_create_if_missing(e->opt, 1);
	leveldb_options_set_cache(e->opt, e->cache);
	leveldb_options_set_filter_policy(e->opt, e->filter);
	leveldb_options_set_compression(e->opt, leveldb_no_compression);
	leveldb_options_set_write_buffer_size(e->opt, (size_t)wbs);
	leveldb_writeoptions_set_sync(e->wsync, 1);
	leveldb_writeoptions_set_sync(e->wfast, 0);
	char *err = NULL;
	e->db = leveldb_open(e->opt, dir, &err);
	if (err) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "leveldb_open: %s", err);
		int r = ld_err(err);
		e->db = NULL;
		ld_free(e);
		return r;
	}
	e->durable = o->durable;
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len,
			 "block cache %.0f MiB, write buffer %.0f MiB, bloom 10 bits/key, no "
			 "compression, reads through the OS page cache (%s writes)",
			 (double)budget / 1048576.0, (double)wbs / 1048576.0,
			 o->durable ? "synced" : "unsynced");
	*out = e;
	return 0;
}

/* An empty batch written with sync: LevelDB appends its record to the log and syncs the
 * log, so every earlier write is durable once it returns. */
static int ld_sync_log(pbe_engine *e)
{
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	char *err = NULL;
	leveldb_write(e->db, e->wsync, wb, &err);
	leveldb_writebatch_destroy(wb);
	return err ? ld_err(err) : 0;
}

static int ld_close(pbe_engine *e)
{
	int r = ld_sync_log(e);
	ld_free(e);
	return r;
}

static int ld_set_durable(pbe_engine *e, bool durable)
{
	if (durable) {
		int r = ld_sync_log(e);
		if (r)
			return r;
	}
	e->durable = durable;
	return 0;
}

static int ld_thread_open(pbe_engine *e, pbe_thread **out)
{
	pbe_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = e;
	t->wb = leveldb_writebatch_create();
	t->sro = leveldb_readoptions_create();
	if (!t->wb || !t->sro) {
		if (t->wb)
			leveldb_writebatch_destroy(t->wb);
		if (t->sro)
			leveldb_readoptions_destroy(t->sro);
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

static void ld_thread_close(pbe_thread *t)
{
	if (t->snap)
		leveldb_release_snapshot(t->e->db, t->snap);
	leveldb_readoptions_destroy(t->sro);
	leveldb_writebatch_destroy(t->wb);
	free(t);
}

static int ld_snap_begin(pbe_thread *t)
{
	if (t->snap)
		return -EINVAL;
	if (!(t->snap = leveldb_create_snapshot(t->e->db)))
		return -ENOMEM;
	leveldb_readoptions_set_snapshot(t->sro, t->snap);
	return 0;
}

static int ld_snap_end(pbe_thread *t)
{
	leveldb_readoptions_set_snapshot(t->sro, NULL);
	leveldb_release_snapshot(t->e->db, t->snap);
	t->snap = NULL;
	return 0;
}

static inline const leveldb_writeoptions_t *wopt(const pbe_engine *e)
{
	return e->durable ? e->wsync : e->wfast;
}

static int ld_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	char *err = NULL;
	leveldb_put(t->e->db, wopt(t->e), key, klen, val, vlen, &err);
	return err ? ld_err(err) : 0;
}

static int ld_put_batch(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags)
{
	(void)flags;
	leveldb_writebatch_clear(t->wb);
	for (size_t i = 0; i < n; i++)
		leveldb_writebatch_put(t->wb, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
	char *err = NULL;
	leveldb_write(t->e->db, wopt(t->e), t->wb, &err);
	return err ? ld_err(err) : 0;
}

static int ld_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	char *err = NULL;
	size_t n = 0;
	char *v = leveldb_get(t->e->db, t->snap ? t->sro : t->e->ropt, key, klen, &n, &err);
	if (err)
		return ld_err(err);
	if (!v)
		return PBE_NOTFOUND;
	int r = 0;
	*vlen = n;
	if (n > cap)
		r = PBE_TOOSMALL;
	else if (n)
		memcpy(buf, v, n);
	leveldb_free(v);
	return r;
}

static int ld_scan(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		   void *arg, size_t *n)
{
	*n = 0;
	if (count == 0)
		return 0;
	leveldb_iterator_t *it = leveldb_create_iterator(t->e->db, t->snap ? t->sro : t->e->ropt);
	if (!it)
		return -ENOMEM;
	if (slen)
		leveldb_iter_seek(it, start, slen);
	else
		leveldb_iter_seek_to_first(it);
	size_t got = 0;
	int r = 0;
	while (got < count && leveldb_iter_valid(it)) {
		size_t kl, vl;
		const char *k = leveldb_iter_key(it, &kl);
		const char *v = leveldb_iter_value(it, &vl);
		got++;
		if ((r = fn(k, kl, v, vl, arg)))
			break;
		if (got < count)
			leveldb_iter_next(it);
	}
	if (!r) {
		char *err = NULL;
		leveldb_iter_get_error(it, &err);
		if (err)
			r = ld_err(err);
	}
	leveldb_iter_destroy(it);
	*n = got;
	return r;
}

static int ld_settle(pbe_engine *e, char *note, size_t note_len)
{
	(void)note;
	(void)note_len;
	leveldb_compact_range(e->db, NULL, 0, NULL, 0);
	return 0;
}

static void ld_info(pbe_engine *e, pbe_info *out)
{
	static const char lo[1] = { 0 };
	static const char hi[9] = { '\xff', '\xff', '\xff', '\xff', '\xff',
				    '\xff', '\xff', '\xff', '\xff' };
	const char *start = lo, *limit = hi;
	size_t slen = 0, llen = sizeof(hi);
	uint64_t size = 0;
	leveldb_approximate_sizes(e->db, 1, &start, &slen, &limit, &llen, &size);
	out->data_bytes = size; /* table files only: the memtable is not counted */
	out->resident_bytes = UINT64_MAX;
	out->budget_bytes = e->budget;
}

const pbe_adapter pbe_leveldb_adapter = {
	.name = "leveldb",
	.version = ld_version,
	.bounded_cache = false,
	.settle_how = "leveldb_compact_range(whole key space)",
	.batch_durable = "atomic (1 WriteBatch, synced)",
	.batch_fast = "atomic (1 WriteBatch, unsynced)",
	.snap_how = "leveldb_create_snapshot + ReadOptions.snapshot",
	.tsan_skip = "libleveldb is not built with TSan: its lock-free memtable skip list publishes entries with atomics TSan cannot see, so reads of fresh entries are reported as races",
	.open = ld_open,
	.close = ld_close,
	.set_durable = ld_set_durable,
	.thread_open = ld_thread_open,
	.thread_close = ld_thread_close,
	.put = ld_put,
	.put_batch = ld_put_batch,
	.get = ld_get,
	.scan = ld_scan,
	.snap_begin = ld_snap_begin,
	.snap_end = ld_snap_end,
	.settle = ld_settle,
	.info = ld_info,
	.strerror = ld_strerror,
};
