/*
 * pbox/storage.h — the page store, the buffer pool and mini-transactions.
 *
 * A store is a directory: "data" (the page file), "wal/" (the write-ahead log) and "LOCK"
 * (held with an exclusive flock while the store is open: one process at a time).
 *
 * Pages. Page p lives at byte p * page_size of the data file and, when resident, at
 * base + p * page_size of one virtual-memory reservation, so a page id is always a valid
 * address and finding a page is arithmetic. Pages 0 and 1 are the two superblock copies,
 * page 2 is the allocator's meta page; data structures get pages from pbox_mtr_alloc().
 * Every page starts with a 32-byte header (PBOX_PAGE_HDR): checksum, type, format version,
 * page id, page LSN. Data structures own the bytes after it.
 *
 * Reading pages (data structures):
 *
 *     uint64_t v;
 *     for (unsigned tries = 0;; tries++) {
 *             rc = pbox_page_fix_opt(st, pid, &v);        // faults the page in if needed
 *             if (rc) return rc;                          // I/O error, corruption, bad pid
 *             const unsigned char *p = pbox_page_addr(st, pid);
 *             ... read through pbox_latch_opt_load_*() / pbox_latch_opt_copy(),
 *                 bounds-check everything, act on nothing ...
 *             if (pbox_page_validate(st, pid, v)) break;  // consistent: use what was read
 *             if (tries >= PBOX_LATCH_MAX_OPT_RESTARTS) { shared fix instead }
 *     }
 *
 * Changing pages: only inside a mini-transaction (pbox_mtr). It latches pages exclusively,
 * the caller changes their bytes in place and logs a redo record describing each change
 * (pbox_mtr_log, or pbox_mtr_write which does both), and commit appends one WAL group,
 * stamps the pages with its LSN and releases them. Recovery replays the records through the
 * redo handlers data structures register for their record types, so a crash never leaves
 * half of a mini-transaction.
 *
 * Errors: 0, a negative errno from the OS, or PBOX_E*. After a failed write or sync of the
 * log or of a page the store is poisoned: every later operation returns PBOX_EPOISONED
 * until it is closed and opened again (which runs recovery).
 */
#ifndef PBOX_STORAGE_H
#define PBOX_STORAGE_H

#include <pbox/io.h>
#include <pbox/latch.h>
#include <pbox/types.h>
#include <pbox/wal.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_store pbox_store;

/* ---- page layout ------------------------------------------------------------------------- */

#define PBOX_PAGE_HDR 32u

/* Page types (u16, in every page's header). Ranges:
 *   0 .. 15                          storage's own (below);
 *   PBOX_PAGE_TYPE_USER .. 31        pagebox's data structures (the btree publishes its
 *                                    types in pbox/btree.h: 18 and 19);
 *   PBOX_PAGE_TYPE_APP and above     yours: a structure built on the substrate picks its
 *                                    types here, and no pagebox structure ever will. */
enum {
	PBOX_PAGE_TYPE_ZERO = 0, /* never written */
	PBOX_PAGE_TYPE_SUPER = 1,
	PBOX_PAGE_TYPE_META = 2,
	PBOX_PAGE_TYPE_FREE = 3,
	PBOX_PAGE_TYPE_USER = 16,
	PBOX_PAGE_TYPE_APP = 32,
};

/* ---- redo handlers --------------------------------------------------------------------- */

/* Re-apply one logged change to a page during recovery. page is the page's memory (page_size
 * bytes, header included); payload is what pbox_mtr_log recorded. Must be deterministic and
 * must check the payload and page bytes (they come from disk): return 0 or PBOX_ECORRUPT. */
typedef int (*pbox_redo_fn)(void *page, uint32_t page_size, const void *payload, uint32_t len,
			    void *arg);

/* Redo record types (u16). Ranges:
 *   below PBOX_REDO_TYPE_USER            storage's own (full-page images, writes, inits);
 *   PBOX_REDO_TYPE_USER .. 511           pagebox's data structures (the btree publishes its
 *                                        range in pbox/btree.h: 0x110 .. 0x11f);
 *   PBOX_REDO_TYPE_APP and above         yours.
 * A store is opened with every handler its log may need (all structures' together); open
 * refuses two handlers of one type (PBOX_EINVAL, explained in errbuf) rather than letting one
 * silently win. */
#define PBOX_REDO_TYPE_USER 256u
#define PBOX_REDO_TYPE_APP 512u

/* Replay one logical record (pbox_mtr_log_logical: a record naming no page) during recovery.
 * Logical records are delivered after the physical redo is complete, in LSN order, from the
 * store's logical start (see checkpoints below); lsn is the end of the record's group. The
 * store is fully usable (pages can be read and changed through mtrs). Return 0, or an error
 * that fails the open (PBOX_ECORRUPT for a damaged payload). */
typedef int (*pbox_logical_fn)(pbox_store *st, const void *payload, uint32_t len, pbox_lsn lsn,
			       void *arg);
/* Called once when recovery is complete (after every logical record was delivered), before
 * pbox_store_open returns: the post-recovery hook. May change pages through mtrs and log. */
typedef int (*pbox_recovered_fn)(pbox_store *st, void *arg);

typedef struct pbox_redo_handler {
	uint16_t type; /* >= PBOX_REDO_TYPE_USER */
	pbox_redo_fn fn;           /* page records of this type (or NULL) */
	void *arg;                 /* passed to all three functions */
	pbox_logical_fn logical;   /* logical records of this type (or NULL); not both */
	pbox_recovered_fn recovered; /* optional; called after recovery */
} pbox_redo_handler;

/* ---- opening ----------------------------------------------------------------------------- */

/* The logical records by which a structure brackets a transaction, for a replica: OPS
 * (its writes, before its commit), COMMIT (the durability point: its changes follow as
 * ordinary groups) and END (its changes are all in the log). Each payload starts with the
 * transaction's u64 id. A type of 0 is not used; all three 0: no transactions (every
 * group is a consistent point). The btree's transactions: { PBOX_REDO_TYPE_USER + 0x18,
 * + 0x19, + 0x1a } (btree/src/txn_log.c; restated in storage/README.md). */
typedef struct pbox_replica_txn {
	uint16_t ops, commit, end;
} pbox_replica_txn;

typedef struct pbox_store_options {
	pbox_io *io;               /* NULL: pbox_io_posix() */
	bool create;               /* create the store if dir holds none (dir is created too) */
	uint32_t page_size;        /* at creation: power of two, 4 KiB .. 64 KiB (default 4 KiB);
	                              an existing store keeps its own */
	uint64_t budget_bytes;     /* resident page memory (default 256 MiB, at least 64 pages);
	                              change it later with pbox_store_set_budget */
	uint64_t max_bytes;        /* largest the data file may grow (default 1 TiB): sizes the
	                              virtual reservation; beyond it allocation is PBOX_ENOSPC */
	bool no_direct_io;         /* use buffered I/O for the data file even where O_DIRECT works */
	bool background_evictor;   /* a thread keeps the pool a little below its budget so that
	                              faults rarely evict; off: faulting threads evict (see
	                              docs/DESIGN.md for the measurement behind the default) */
	pbox_wal_sync wal_sync;    /* default fdatasync */
	uint32_t wal_flush_delay_us; /* background WAL flush ("fast" durability); default 1000 */
	uint64_t wal_segment_size; /* default 64 MiB */
	uint64_t checkpoint_log_bytes; /* a background thread checkpoints once this much log has
	                              accumulated since the last checkpoint, which bounds the
	                              log's disk use and recovery time (default 256 MiB: about
	                              half a second of recovery here); 0: never automatically */
	char *errbuf;              /* if non-NULL: on failure, a one-line explanation; on success
	                              a notice, if any (e.g. the O_DIRECT fallback), else "" */
	size_t errbuf_len;
	/* Redo handlers of the data structures that log into this store: recovery (at open)
	 * needs every type the log may contain; an unknown type is PBOX_ECORRUPT. The array
	 * must stay valid while the store is open. */
	const pbox_redo_handler *redo;
	unsigned nredo;
	/* Replica mode (see "log tailing and replicas" below): the store applies groups shipped
	 * from a primary (pbox_store_apply) and accepts no mini-transaction of its own
	 * (PBOX_ENOTSUP). Recovery redoes its log but replays no logical record: transactions
	 * a replica holds half installed are finished by the primary's groups, or by the
	 * recovery of a normal open (promotion). */
	bool replica;
	pbox_replica_txn replica_txn; /* the transaction records to keep readers out of */
	uint64_t replica_max_pending_bytes; /* default 64 MiB (see pbox_store_apply) */
} pbox_store_options;

void pbox_store_options_init(pbox_store_options *o);

/* Open (and recover) or create a store. Errors: PBOX_ELOCKED (another process has it open:
 * the message names the LOCK file), PBOX_ENOTFOUND (no store and !create), PBOX_ECORRUPT
 * (no valid superblock, a damaged page recovery cannot repair, a damaged log),
 * PBOX_EVERSION, PBOX_EINVAL (bad options), -errno. */
int pbox_store_open(const char *dir, const pbox_store_options *o, pbox_store **out);

/* Close: stop the background threads, make the log durable, take a checkpoint (write back
 * every dirty page, write a superblock, recycle the log: the next open redoes nothing),
 * release everything. Returns the first error (the store is freed regardless); a poisoned
 * store skips the checkpoint and returns PBOX_EPOISONED (the next open recovers). */
int pbox_store_close(pbox_store *st);

uint32_t pbox_store_page_size(const pbox_store *st);
pbox_wal *pbox_store_wal(pbox_store *st);

/* Change the resident budget while running; shrinking evicts down to it (returns
 * PBOX_EFULL if pages are held so that it cannot). */
int pbox_store_set_budget(pbox_store *st, uint64_t budget_bytes);

/* ---- page access ------------------------------------------------------------------------- */

static inline void *pbox_page_addr(pbox_store *st, pbox_pid pid);
pbox_latch *pbox_page_latch(pbox_store *st, pbox_pid pid);

/* Make the page resident (reading and verifying it if needed) and begin an optimistic read:
 * *version is the latch version to validate against. Errors: PBOX_EINVAL (pid beyond the
 * store), PBOX_ECORRUPT (bad checksum or page id on disk), PBOX_EFULL, PBOX_EPOISONED,
 * -errno. */
int pbox_page_fix_opt(pbox_store *st, pbox_pid pid, uint64_t *version);
bool pbox_page_validate(pbox_store *st, pbox_pid pid, uint64_t version);
/* Shared and exclusive fixes: the page stays resident and latched until unfix. */
int pbox_page_fix_shared(pbox_store *st, pbox_pid pid);
void pbox_page_unfix_shared(pbox_store *st, pbox_pid pid);

/* Fault in a list of pages with many reads in flight (io_uring); pages already resident are
 * skipped. Returns the first error met (the others are still attempted). */
int pbox_page_prefetch(pbox_store *st, const pbox_pid *pids, unsigned n);

/* ---- mini-transactions ------------------------------------------------------------------- */

#define PBOX_MTR_MAX_PAGES 32

typedef struct pbox_mtr pbox_mtr;

/* Begin a mini-transaction (allocated; never fails except -ENOMEM / PBOX_EPOISONED). */
int pbox_mtr_begin(pbox_store *st, pbox_mtr **out);
/* Latch pid exclusively for this mtr (no-op if it already holds it) and return its memory.
 * Pages must be latched in an order that cannot deadlock with other mtrs (the caller's
 * protocol: e.g. top-down in a tree). PBOX_ELIMIT beyond PBOX_MTR_MAX_PAGES. */
int pbox_mtr_fix(pbox_mtr *m, pbox_pid pid, void **page);
/* Upgrade an optimistic read of pid (version) to an exclusive latch held by the mtr;
 * PBOX_ERESTART if the page changed since. */
int pbox_mtr_fix_upgrade(pbox_mtr *m, pbox_pid pid, uint64_t version, void **page);
/* Does m hold pid (latched exclusively)? */
bool pbox_mtr_holds(const pbox_mtr *m, pbox_pid pid);
/* Allocate a page (reusing a freed one if any), latched, zeroed, header set to type. */
int pbox_mtr_alloc(pbox_mtr *m, uint16_t type, pbox_pid *pid, void **page);
/* Free a page held by this mtr; it is reused by later allocations, also after restart. */
int pbox_mtr_free(pbox_mtr *m, pbox_pid pid);
/* Log a redo record for a page held by this mtr: the caller has already made the change in
 * memory; recovery re-applies it with the handler registered for type. */
int pbox_mtr_log(pbox_mtr *m, pbox_pid pid, uint16_t type, const void *payload, uint32_t len);
/* Log a logical record: no page, replayed by the handler's logical function after the
 * physical redo (an mtr may hold only logical records: it still commits one group). len
 * at most PBOX_MTR_LOGICAL_MAX. */
#define PBOX_MTR_LOGICAL_MAX (1u << 20)
int pbox_mtr_log_logical(pbox_mtr *m, uint16_t type, const void *payload, uint32_t len);
/* Copy len bytes to offset off of a page held by this mtr and log it (physical redo). */
int pbox_mtr_write(pbox_mtr *m, pbox_pid pid, uint32_t off, const void *src, uint32_t len);
/* Commit: one WAL group (with full-page images where a page changes for the first time
 * since the last checkpoint), page LSNs stamped, latches released, the mtr freed. With
 * durable, returns once the group — and so every group committed before it — is on disk;
 * an mtr that logged nothing commits no group, and with durable it still waits until every
 * earlier group is on disk (a barrier). *lsn (if non-NULL) gets the group's LSN.
 * A commit that fails poisons the store (its changes are in memory but not in the log). */
PBOX_NODISCARD int pbox_mtr_commit(pbox_mtr *m, bool durable, pbox_lsn *lsn);
/* Release everything without logging. Only valid if no page was changed (e.g. after a
 * PBOX_ERESTART from fix_upgrade); otherwise the store is poisoned. */
void pbox_mtr_abort(pbox_mtr *m, bool changed);

/* Mark the store failed with err (a structure found its in-memory state ahead of what it
 * could make durable, e.g. a commit logged but not installed): from now on every operation
 * returns PBOX_EPOISONED until the store is closed and opened again (recovery decides). */
void pbox_store_fail(pbox_store *st, int err);

/* ---- meta slots -------------------------------------------------------------------------- */

#define PBOX_META_SLOTS 8
/* Read a user meta slot (e.g. the btree's catalog root). Set it inside an mtr: logged and
 * atomic with the mtr's other changes. */
uint64_t pbox_store_meta_get(pbox_store *st, unsigned slot);
int pbox_mtr_meta_set(pbox_mtr *m, unsigned slot, uint64_t value);

/* ---- checkpoints and introspection ------------------------------------------------------- */

/* Fuzzy checkpoint (writers continue): write back every page dirtied before it began
 * (WAL rule respected), write the superblock with the new redo start, recycle the log.
 * The superblock also records the logical start: the oldest log floor of the store's
 * extensions (below) if it lies before the redo start. Recovery redoes pages from the redo
 * start and replays logical records from the logical start; the log is kept from the
 * earlier of the two. */
PBOX_NODISCARD int pbox_store_checkpoint(pbox_store *st);

/* ---- online backup ---------------------------------------------------------------------
 * pbox_store_backup copies the open store into dest while readers and writers go on. dest
 * must not exist or be an empty directory (else PBOX_EEXIST; a missing parent:
 * PBOX_ENOTFOUND). The copy opens as a store (pbox_store_open, same redo handlers) holding
 * every change that was durable when the call began, possibly more, and never part of a
 * transaction or mini-transaction: it is the current superblock, the data file (pages may be
 * torn or newer while copied: recovery repairs them from the full-page images that follow
 * the redo start) and the log from the earlier of the redo and logical starts up to the
 * durable end taken after the data file was copied. Log recycling is held back from that
 * start while the call runs, nothing longer; one backup of a store at a time (PBOX_EBUSY).
 *
 * Crash safety: dest first gets a marker file (BACKUP-INCOMPLETE, durable before anything
 * else is written) that is removed, durably, as the last step; pbox_store_open refuses a
 * directory holding it with PBOX_EPARTIAL. A failure (I/O error, ENOSPC, a cancel from the
 * progress callback) returns the error and leaves dest with the marker and nothing else of
 * size; the source store is untouched (a failed read of it is returned, it does not poison
 * the store). Not to be called concurrently with pbox_store_close. */
typedef struct pbox_backup_options {
	uint64_t rate_bytes;  /* copy at most this many bytes per second (0: no limit) */
	/* called after every chunk (1 MiB) and at the end; a non-zero return cancels the
	 * backup and is returned by pbox_store_backup */
	int (*progress)(uint64_t done_bytes, uint64_t total_bytes, void *arg);
	void *progress_arg;
	char *errbuf;         /* if non-NULL: a one-line explanation on failure */
	size_t errbuf_len;
} pbox_backup_options;

typedef struct pbox_backup_info {
	uint64_t data_bytes;  /* data file bytes copied (all-zero chunks are left sparse) */
	uint64_t log_bytes;   /* log bytes copied */
	pbox_lsn start_lsn;   /* the copy's log starts here (its redo or logical start) */
	pbox_lsn end_lsn;     /* and ends here: every change durable before it is in the copy */
	uint64_t ns;          /* time the call took */
} pbox_backup_info;

void pbox_backup_options_init(pbox_backup_options *o);
/* o and info may be NULL (defaults; no report). */
PBOX_NODISCARD int pbox_store_backup(pbox_store *st, const char *dest,
				     const pbox_backup_options *o, pbox_backup_info *info);

/* ---- extensions: per-store state of the structures built on the store ------------------
 * A structure that keeps per-store state in memory (the btree's transaction manager) hangs
 * it on the store in a slot; the store frees it at close. Slots 0..3 are pagebox's
 * (PBOX_STORE_EXT_TXN = 0), 4..7 yours. */
#define PBOX_STORE_EXT_SLOTS 8u
#define PBOX_STORE_EXT_TXN 0u
typedef struct pbox_store_ext_ops {
	/* Create the state (called at most once per open, under the store's extension lock). */
	void *(*create)(pbox_store *st, void *arg);
	/* Free it: at close (after the final checkpoint) or when the open fails. */
	void (*destroy)(void *ext);
	/* Optional: the oldest LSN whose logical records recovery would still need for this
	 * extension (PBOX_LSN_NONE: none). Checkpoints call it after taking their redo start;
	 * an extension must publish a floor no later than it appends the records it covers. */
	pbox_lsn (*log_floor)(void *ext);
} pbox_store_ext_ops;
/* The state in slot (created with ops->create on first use): NULL if creation failed. The
 * same ops must be passed for one slot every time. ops NULL: only a look (NULL if none). */
void *pbox_store_ext(pbox_store *st, unsigned slot, const pbox_store_ext_ops *ops, void *arg);

typedef struct pbox_store_stats {
	uint32_t page_size;
	uint64_t page_count;          /* pages in the data file (high-water mark) */
	uint64_t free_pages;          /* on the free list */
	uint64_t budget_bytes, resident_pages, resident_bytes, dirty_pages;
	bool direct_io;
	pbox_lsn redo_start, logical_start, wal_end, wal_durable;
	uint64_t checkpoints;         /* since the store was created (all of them) */
	uint64_t auto_checkpoints;    /* since this open, by the checkpoint_log_bytes thread */
	/* last recovery */
	uint64_t recovery_groups, recovery_records, recovery_bytes, recovery_pages_restored,
		recovery_logical, recovery_ns;
	/* pool metrics (zero with PBOX_METRICS=0) */
	uint64_t hits, misses, reads, writes, evictions, reheats, prefetches;
} pbox_store_stats;

void pbox_store_get_stats(pbox_store *st, pbox_store_stats *s);

/* ---- log tailing and replicas (src/tail.c, src/replica.c; storage/README.md) -----------
 *
 * A tail ships a store's log as it becomes durable: pbox_store_tail_next returns one whole,
 * durable group at a time, encoded as a self-describing "shipped group" (format tabled in
 * storage/README.md: header with magic, version, group LSN, end LSN, a redo hint, CRC32C,
 * then the records). While the tail is open, checkpoints recycle no segment at or above its
 * position, unless the log's end runs more than max_lag_bytes past it: then the tail lets
 * go and its next call returns PBOX_ELAGGED (the receiver must start again from a backup).
 * Close every tail before its store. One thread per tail at a time. */
typedef struct pbox_tail pbox_tail;
typedef struct pbox_tail_options {
	uint64_t max_lag_bytes; /* default 256 MiB; at least one WAL segment */
	char *errbuf;           /* if non-NULL: a one-line explanation of the last error */
	size_t errbuf_len;
} pbox_tail_options;

/* Bytes of a shipped group's header, and of each record's header in it. */
#define PBOX_SHIP_HDR 48u
#define PBOX_SHIP_REC_HDR 8u

void pbox_tail_options_init(pbox_tail_options *o);
/* Tail st's log from from: the end of the last group the receiver holds (for a replica,
 * pbox_store_replica_lsn). PBOX_EINVAL: from lies beyond the log's end; PBOX_ELAGGED: the
 * log no longer holds from (recycled). o may be NULL. */
int pbox_store_tail_open(pbox_store *st, pbox_lsn from, const pbox_tail_options *o,
			 pbox_tail **out);
/* The next durable group, waiting up to timeout_ms (negative: forever) for one: 1 with the
 * shipped group in buf (*len bytes) and its LSN range; 0 if none came in time;
 * PBOX_ETOOSMALL with *len = the size needed (nothing consumed); PBOX_ELAGGED; or an
 * error reading the log. lsn and end may be NULL. */
int pbox_store_tail_next(pbox_tail *t, void *buf, size_t cap, size_t *len, pbox_lsn *lsn,
			 pbox_lsn *end, int timeout_ms);
/* The LSN the tail ships next from (the end of the last group it returned). */
pbox_lsn pbox_store_tail_pos(const pbox_tail *t);
void pbox_store_tail_close(pbox_tail *t);

/* Apply one shipped group to a replica (a store opened with options.replica): the group is
 * verified whole (format, checksum, every record against the store's rules) before
 * anything is done, and must be the next one: its LSN the replica's next expected LSN
 * (pbox_store_replica_lsn). It is appended to the replica's own log at the same LSN (the
 * replica's log mirrors the primary's, so it recovers like a store) and applied to the
 * pages as recovery would. Readers see whole transactions only: while the replica holds a
 * transaction between its COMMIT and END records, new groups wait in memory (up to
 * replica_max_pending_bytes; beyond it they are applied and read sessions wait instead)
 * and are applied together once no transaction is open. Returns 0 (applied or held), 1
 * (an old group the replica already holds: ignored), PBOX_ECORRUPT (damaged or truncated:
 * nothing done), PBOX_EINVAL (not a replica, or a group out of order: nothing done),
 * PBOX_EPOISONED; an error after the group was appended (I/O, a record a handler refused)
 * poisons the replica. errbuf (may be NULL) gets a one-line explanation. One applier at a
 * time (calls are serialised). */
PBOX_NODISCARD int pbox_store_apply(pbox_store *replica, const void *group, size_t len,
				    char *errbuf, size_t errbuf_len);
/* The replica's next expected LSN (its log's end). */
pbox_lsn pbox_store_replica_lsn(pbox_store *replica);

/* Read sessions: on a replica every lookup, scan or snapshot must run inside one to see a
 * transaction-consistent state; a session excludes pbox_store_apply's page changes (it
 * waits for sessions to end, and new sessions wait for it), so keep them short. begin
 * waits up to timeout_ms (negative: forever) and returns PBOX_EBUSY if the replica stays
 * inside a transaction that long (e.g. its primary died between a commit and its end:
 * promote it). On a normal store both are no-ops. Sessions do not nest. */
int pbox_store_read_begin(pbox_store *st, int timeout_ms);
void pbox_store_read_end(pbox_store *st);

typedef struct pbox_replica_info {
	pbox_lsn next_lsn;      /* the next group's LSN (the replica's log end) */
	pbox_lsn applied_lsn;   /* groups below it are on the pages */
	uint64_t pending_groups, pending_bytes; /* appended, waiting for a transaction's end */
	uint64_t open_txns;     /* committed and not ended (as far as the log goes) */
	bool readers_blocked;   /* past replica_max_pending_bytes inside a transaction */
	uint64_t applied, duplicates, refused; /* groups since open */
} pbox_replica_info;
/* PBOX_EINVAL if st is no replica. */
int pbox_store_replica_info(pbox_store *st, pbox_replica_info *info);

/* ---- the page header's type field ---------------------------------------------------------
 * Every page starts with PBOX_PAGE_HDR bytes of header; its u16 page type sits at
 * PBOX_PAGE_TYPE_OFF. Data structures read the type of a page they hold latched (or of a
 * consistent copy) with pbox_page_type; optimistic readers, whose loads may race a writer,
 * with pbox_page_type_opt (validate the version before acting on it). */
#define PBOX_PAGE_TYPE_OFF 4u
static inline uint16_t pbox_page_type(const void *page)
{
	uint16_t t;
	__builtin_memcpy(&t, (const unsigned char *)page + PBOX_PAGE_TYPE_OFF, 2);
	return t;
}
static inline uint16_t pbox_page_type_opt(const void *page)
{
	return pbox_latch_opt_load_u16((const unsigned char *)page + PBOX_PAGE_TYPE_OFF);
}

/* ---- inline helpers (not API: layout exposed for speed) -------------------------------- */
struct pbox_store_pub {
	unsigned char *base;
	uint32_t page_size;
	uint32_t page_shift;
};

static inline void *pbox_page_addr(pbox_store *st, pbox_pid pid)
{
	const struct pbox_store_pub *p = (const struct pbox_store_pub *)st;
	return p->base + ((size_t)pid << p->page_shift);
}

#ifdef __cplusplus
}
#endif
#endif
