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

struct pbe_engine {
	rocksdb_t *db;
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
	e->db = rocksdb_open(e->opt, dir, &err);
	if (err) {
		if (o->msg && o->msg_len)
			snprintf(o->msg, o->msg_len, "rocksdb_open: %s", err);
		int r = rd_err(err);
		e->db = NULL;
		rd_free(e);
		return r;
	}
	e->durable = o->durable;
	if (o->msg && o->msg_len)
		snprintf(o->msg, o->msg_len,
			 "block cache %.0f MiB, write buffer %.0f MiB x 2, bloom 10 bits/key, no "
			 "compression%s, recycle_log_file_num %d (%s writes)",
			 (double)cache / 1048576.0, (double)wbs / 1048576.0,
			 o->oom ? ", direct reads and compaction I/O, index/filter blocks in the cache"
				: "",
			 o->log_parity ? RD_RECYCLE_LOGS : 0, o->durable ? "synced" : "unsynced");
	*out = e;
	return 0;
}

static int rd_close(pbe_engine *e)
{
	char *err = NULL;
	int r = 0;
	rocksdb_flush_wal(e->db, 1, &err); /* fast-mode writes become durable, as elsewhere */
	if (err)
		r = rd_err(err);
	rd_free(e);
	return r;
}

static int rd_set_durable(pbe_engine *e, bool durable)
{
	if (durable) {
		char *err = NULL;
		rocksdb_flush_wal(e->db, 1, &err);
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
	if (!(t->wb = rocksdb_writebatch_create())) {
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

static void rd_thread_close(pbe_thread *t)
{
	rocksdb_writebatch_destroy(t->wb);
	free(t);
}

static inline const rocksdb_writeoptions_t *wopt(const pbe_engine *e)
{
	return e->durable ? e->wsync : e->wfast;
}

static int rd_put(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	char *err = NULL;
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
	rocksdb_write(t->e->db, wopt(t->e), t->wb, &err);
	return err ? rd_err(err) : 0;
}

static int rd_get(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		  size_t *vlen)
{
	char *err = NULL;
	rocksdb_pinnableslice_t *p = rocksdb_get_pinned(t->e->db, t->e->ropt, key, klen, &err);
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
	rocksdb_iterator_t *it = rocksdb_create_iterator(t->e->db, t->e->ropt);
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

/* Memtables flushed, then no flush or compaction running or pending (bounded wait). */
static int rd_settle(pbe_engine *e, char *note, size_t note_len)
{
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	if (!fo)
		return -ENOMEM;
	rocksdb_flushoptions_set_wait(fo, 1);
	char *err = NULL;
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
			if (rocksdb_property_int(e->db, props[i], &v) != 0) {
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
	(void)rocksdb_property_int(e->db, "rocksdb.total-sst-files-size", &sst);
	(void)rocksdb_property_int(e->db, "rocksdb.cur-size-all-mem-tables", &mem);
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
	.settle = rd_settle,
	.info = rd_info,
	.strerror = rd_strerror,
};
