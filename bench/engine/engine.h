/*
 * engine.h — the adapter interface of pbox-bench, the engine comparison driver
 * (bench/README.md, section "pbox-bench").
 *
 * An adapter wraps one key-value engine behind a table of function pointers so that the
 * driver runs exactly the same operation sequence on every engine. Keys and values are byte
 * strings; keys compare with memcmp (the driver's keys are 8-byte big-endian integers, so
 * memcmp order is numeric order).
 *
 * Objects:
 *   pbe_engine  one open instance (a scratch directory), created by open, freed by close.
 *   pbe_thread  a per-thread context: whatever the engine needs per thread (LMDB: a read
 *               transaction handle and a cursor). Created by thread_open on any thread,
 *               then used by one thread at a time (the driver creates them before a
 *               measurement and hands one to each worker). Closed before the engine.
 *
 * Operations (all on a pbe_thread; any number of threads at once unless noted):
 *   put        insert or replace one key, committed alone (its own transaction) in the
 *              engine's current commit mode.
 *   put_batch  insert n new keys, committed together and atomically (fills: batches of
 *              1000) in every engine: one write transaction, write batch or pbox_bt_batch
 *              (batch_durable/batch_fast say which, and the report prints it). With
 *              PBE_BATCH_SEQUENTIAL the keys ascend and are above every key present.
 *              An existing key is an error (PBE_EXISTS) where the engine can tell without
 *              an extra read; the LSM engines (RocksDB, LevelDB) and pagebox's batches
 *              (write-only transactions) write blindly, as their users do for a bulk load.
 *              The fills insert distinct keys, and the content check (--check) finds any
 *              key that went missing or was doubled.
 *   get        copy the value of a key into buf (capacity cap); *vlen = its length.
 *   scan       from the first key >= start, call fn on up to `count` pairs in order;
 *              *n = pairs delivered. A non-zero return from fn stops the scan early and is
 *              returned.
 *   snap_begin / snap_end  (optional: NULL where the engine has no snapshots) open, then
 *              close, a read-only snapshot on this pbe_thread: between the two, get and scan
 *              read that snapshot (one consistent state, whatever other threads commit
 *              meanwhile); the thread does no writes in between.
 *   txn_rw     (optional: NULL where the engine has no transactions) ONE transaction:
 *              get every op->read_keys[i] (each value passed to op->fn with out = NULL),
 *              then for every op->write_keys[j] get it (locking it for update where the
 *              engine's transactions lock: RocksDB GetForUpdate), pass the value to op->fn,
 *              which writes the new value into out, and put that; commit in the engine's
 *              commit mode. On a conflict (another transaction won: PBOX_ECONFLICT,
 *              WT_ROLLBACK, RocksDB Busy/TimedOut/TryAgain, SQLITE_BUSY) the whole
 *              transaction is rolled back and run again, fn included, and *retries counts
 *              it. fn returning non-zero rolls back and returns that.
 *   txn_bulk   (optional, like txn_rw) ONE transaction of n blind puts (insert or
 *              replace), committed in the commit mode: the fill as a single transaction.
 *              Only on an instance opened with txn (the RocksDB adapter opens a
 *              TransactionDB then).
 *   settle     (on the engine, no pbe_thread open, nothing else running) bring the
 *              instance to a quiescent state before a measured cell: whatever the fill or
 *              the previous cell left to do in the background (write-back, memtable flush,
 *              compaction, log checkpoint) done now, untimed. Each adapter does what its
 *              engine offers for that (settle_how). note (capacity note_len) gets a short
 *              remark when the settle was incomplete (a bound hit), else stays "".
 * Fill batches (put_batch with n = 1000): batch_durable / batch_fast say in the report what
 * one means for the engine (one transaction / write batch / pbox_bt_batch, synced or not) in
 * each commit mode, so that no table pretends two different things are the same; txn_how
 * says what isolation its transactions give (the report prints it beside txn-rw).
 * Commit mode: durable (a commit returns once it is on disk) or fast (the engine's own
 * non-durable commit). Chosen at open, changed between measurements with set_durable (never
 * while other operations run); switching to durable first makes earlier commits durable.
 *
 * Return codes: 0, PBE_NOTFOUND (get: no such key), PBE_EXISTS (put_batch: key present),
 * PBE_TOOSMALL (get: cap too small; *vlen = the length needed), or another non-zero
 * engine-specific code that the adapter's strerror names.
 */
#ifndef PBOX_BENCH_ENGINE_H
#define PBOX_BENCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Outside the ranges of errno values (either sign), pagebox (-30999..-30900), LMDB
 * (-30799..-30780), WiredTiger (-31800..-31999) and SQLite (positive). */
#define PBE_NOTFOUND (-40001)
#define PBE_EXISTS (-40002)
#define PBE_TOOSMALL (-40003)

#define PBE_BATCH_SEQUENTIAL 0x1u

typedef struct pbe_engine pbe_engine;
typedef struct pbe_thread pbe_thread;

typedef struct pbe_open_options {
	uint64_t keys;	     /* keys the run will hold (sizing hints: map size, budget) */
	uint32_t key_size;   /* bytes per key */
	uint32_t value_size; /* bytes per value */
	uint64_t budget_bytes; /* cache cap; 0: the adapter's default, large enough to hold
				  the whole data set in memory */
	bool durable;	     /* initial commit mode */
	bool oom;	     /* an out-of-memory run: the data exceeds the budget (LMDB: turn
				off OS read-ahead) */
	bool lmdb_writemap;  /* LMDB only: MDB_WRITEMAP (see engine_lmdb.c) */
	bool log_parity;     /* pre-allocated / reused / zeroed log files where the engine
				can do that, as pagebox's pre-zeroed, recycled WAL segments
				(RocksDB: recycle_log_file_num; WiredTiger: log zero_fill) */
	bool txn;	     /* the instance runs txn_rw and txn_bulk (RocksDB: opened as a
				TransactionDB, whose plain writes then take its locks too) */
	unsigned max_threads; /* most pbe_threads open at once */
	char *msg;	     /* a one-line notice from open (settings, fallbacks), or "" */
	size_t msg_len;
} pbe_open_options;

typedef struct pbe_kv {
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
} pbe_kv;

typedef int (*pbe_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen,
			   void *arg);

/* txn_rw's callback: the value read for key. For a read, out is NULL; for an update, fn
 * writes the new value into out (capacity cap) and sets *outlen. Non-zero: abort. */
typedef int (*pbe_txn_fn)(const void *key, size_t klen, const void *val, size_t vlen,
			  void *out, size_t cap, size_t *outlen, void *arg);

/* One read-modify-write transaction for txn_rw: nread keys read, then nwrite keys read and
 * rewritten (all klen bytes long). */
typedef struct pbe_txn_rw {
	const uint8_t *const *read_keys;
	unsigned nread;
	const uint8_t *const *write_keys;
	unsigned nwrite;
	size_t klen;
	pbe_txn_fn fn;
	void *arg;
} pbe_txn_rw;

typedef struct pbe_info {
	uint64_t data_bytes;	 /* bytes the engine's data structures occupy (pages in use) */
	uint64_t resident_bytes; /* engine-managed resident cache bytes; UINT64_MAX: the OS
				    page cache holds them (not bounded by the engine) */
	uint64_t budget_bytes;	 /* the cache cap in force; UINT64_MAX: none */
} pbe_info;

typedef struct pbe_adapter {
	const char *name;	/* engine name in the report: "pagebox", "lmdb" */
	const char *version;	/* library version string */
	bool bounded_cache;	/* can keep its data within budget_bytes without the OS page
				   cache (O_DIRECT); false: not ranked in out-of-memory runs */
	const char *tsan_skip;	/* non-NULL: why the engine is left out of ThreadSanitizer
				   builds by default (its uninstrumented internals make TSan
				   report races that are not ours) */
	const char *settle_how;	/* what settle does, for the report: "pbox_store_checkpoint" */
	const char *batch_durable; /* what a fill batch of 1000 is in durable mode, for the */
	const char *batch_fast;	   /* report: "atomic (one write transaction)"; fast mode */
	const char *txn_how;	/* what txn_rw's transactions are and the isolation they give,
				   for the report ("snapshot isolation, ..."); NULL: none */
	const char *snap_how;	/* what snap_begin opens ("read-only pbox_txn"); NULL: none */

	int (*open)(const char *dir, pbe_open_options *o, pbe_engine **out);
	int (*close)(pbe_engine *e);
	int (*set_durable)(pbe_engine *e, bool durable);
	int (*thread_open)(pbe_engine *e, pbe_thread **out);
	void (*thread_close)(pbe_thread *t);

	int (*put)(pbe_thread *t, const void *key, size_t klen, const void *val, size_t vlen);
	int (*put_batch)(pbe_thread *t, const pbe_kv *kv, size_t n, unsigned flags);
	int (*get)(pbe_thread *t, const void *key, size_t klen, void *buf, size_t cap,
		   size_t *vlen);
	int (*scan)(pbe_thread *t, const void *start, size_t slen, size_t count, pbe_scan_fn fn,
		    void *arg, size_t *n);

	int (*snap_begin)(pbe_thread *t);
	int (*snap_end)(pbe_thread *t);
	int (*txn_rw)(pbe_thread *t, const pbe_txn_rw *op, unsigned *retries);
	int (*txn_bulk)(pbe_thread *t, const pbe_kv *kv, size_t n);

	int (*settle)(pbe_engine *e, char *note, size_t note_len);

	void (*info)(pbe_engine *e, pbe_info *out);
	const char *(*strerror)(int rc);
} pbe_adapter;

/* Before running a transaction again after its n-th conflict in a row (n >= 1), an
 * adapter's txn_rw calls this (the driver's, bench_engine_run.c): the same back-off for
 * every engine that retries. The first retry only yields the processor; from the second on it sleeps
 * 2^(n-2) us, at most 1 ms, so that the transaction that won can finish its commit instead
 * of being raced by immediate retries that fail again (on a machine with few cores a
 * spinning retrier also takes the winner's processor). */
void pbe_txn_backoff(unsigned n);

/* The cache size an adapter uses when budget_bytes is 0 (an in-memory run): three times the
 * raw data plus 64 MiB, at least 256 MiB; the same for every engine, so none is starved. */
static inline uint64_t pbe_default_budget(const pbe_open_options *o)
{
	uint64_t b = 3 * o->keys * ((uint64_t)o->key_size + o->value_size + 24) + (64ull << 20);
	return b < (256ull << 20) ? 256ull << 20 : b;
}

extern const pbe_adapter pbe_pagebox_adapter;
extern const pbe_adapter pbe_lmdb_adapter;
#ifdef PBE_HAVE_ROCKSDB
extern const pbe_adapter pbe_rocksdb_adapter;
#endif
#ifdef PBE_HAVE_LEVELDB
extern const pbe_adapter pbe_leveldb_adapter;
#endif
#ifdef PBE_HAVE_SQLITE
extern const pbe_adapter pbe_sqlite_adapter;
#endif
#ifdef PBE_HAVE_WIREDTIGER
extern const pbe_adapter pbe_wiredtiger_adapter;
#endif

#endif /* PBOX_BENCH_ENGINE_H */
