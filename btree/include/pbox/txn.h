/*
 * pbox/txn.h — transactions over the trees of one store: snapshot isolation, any size,
 * crash-atomic.
 *
 *     pbox_txn *t;
 *     for (;;) {
 *             if ((rc = pbox_txn_begin(st, 0, &t))) return rc;
 *             rc = pbox_txn_get(t, accounts, "a", 1, buf, sizeof buf, &n);
 *             if (!rc) rc = pbox_txn_put(t, accounts, "a", 1, newbal, 8);
 *             if (!rc) rc = pbox_txn_put(t, accounts, "b", 1, other, 8);
 *             if (!rc) { rc = pbox_txn_commit(t, PBOX_BT_DURABLE); t = NULL; }
 *             if (t) pbox_txn_abort(t);
 *             if (rc != PBOX_ECONFLICT) return rc;      // retry only conflicts
 *     }
 *
 * Snapshot. A transaction reads the state left by every transaction (and single-key
 * operation) whose commit completed before it began, plus its own writes (read-your-writes
 * in get, scan and cursors). A commit becomes visible to later snapshots all at once: no
 * snapshot ever sees part of one. Plain pbox_bt_scan/cursors outside a transaction are not
 * snapshots (they are consistent per leaf, as before): use a read-only transaction for a
 * consistent read of several keys.
 *
 * Writes are buffered in the transaction (nothing reaches a page before commit). Conflicts
 * (PBOX_ECONFLICT, retryable): put/del fail at once when another transaction is committing
 * the key or committed it after this one began; commit fails when such a commit happened
 * meanwhile (first committer wins, so no update is lost). Locks are taken at commit, without
 * waiting (no deadlock; a holder that then fails its own commit may still have caused the
 * conflict). After a conflict every call on the transaction returns PBOX_ECONFLICT until it
 * is ended, and nothing of it is applied. Isolation is snapshot isolation: write skew (two
 * transactions each reading what the other writes, writing disjoint keys) is allowed.
 *
 * Single-key operations outside transactions (pbox_bt_upsert etc.) behave as one-operation
 * transactions: later snapshots see them, a transaction that began before one and writes
 * the same key conflicts, and on a key a transaction is committing they wait for that
 * commit; they never return PBOX_ECONFLICT.
 *
 * Commit. The write set is logged as logical records ending in a commit record (the
 * durability point: with PBOX_BT_DURABLE commit returns once it is on disk; otherwise once
 * the WAL's background flush reaches it), then installed through ordinary tree operations,
 * then an end record is logged. A crash after the commit record is durable re-installs the
 * write set during recovery (after the physical redo); a crash before it leaves no trace.
 * A checkpoint never moves the log's logical start past a commit whose install has not
 * ended, so recovery time is bounded by the checkpoint interval plus the largest install.
 *
 * Versions. Old values live in an in-memory version store only while a snapshot that began
 * before their replacement is open, and are freed as soon as none is. Memory: a transaction
 * holds its write set (about 64 bytes + key + value per distinct key); each installed key
 * leaves a version (about 80 bytes + key + old value) until no older snapshot is open. Over
 * the cap (pbox_txn_set_version_cap) the oldest snapshots are retired: their reads return
 * PBOX_ESNAPSHOT, and their versions are freed. After a restart no snapshot is older than
 * the data, so nothing of this is on disk.
 *
 * Threads: a transaction is used by one thread at a time; any number run concurrently.
 * Every tree a transaction touches must belong to the store it began on (PBOX_EINVAL).
 */
#ifndef PBOX_TXN_H
#define PBOX_TXN_H

#include <pbox/btree.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_txn pbox_txn;

#define PBOX_TXN_READONLY 0x1u /* a snapshot for reads only; put/del return PBOX_EINVAL */

/* Begin a transaction on st. Errors: PBOX_EINVAL (unknown flags), -ENOMEM. (A poisoned
 * store is reported by the reads and the commit.) The first begin on a store switches its
 * single-key changes to the transactional path, waiting for those in progress to finish;
 * the last transaction to end switches them back. Close the store only after every
 * transaction on it has ended. */
int pbox_txn_begin(pbox_store *st, unsigned flags, pbox_txn **out);

/* Like pbox_bt_lookup, in the transaction's view: its own writes first, then its snapshot.
 * PBOX_ENOTFOUND, PBOX_ETOOSMALL (*vlen = the length needed), PBOX_ECONFLICT (the
 * transaction already lost a conflict), PBOX_ESNAPSHOT (retired: see the version cap). */
int pbox_txn_get(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen, void *buf, size_t cap,
		 size_t *vlen);

/* Buffer a put / a delete (copied). PBOX_EINVAL (bad arguments, read-only transaction, a
 * tree of another store), PBOX_ECONFLICT (see above: the transaction is then doomed). del of
 * a key absent in the transaction's view returns PBOX_ENOTFOUND and records nothing. */
int pbox_txn_put(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen, const void *val,
		 size_t vlen);
int pbox_txn_del(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen);

/* Keys k with start <= k < end in the transaction's view, in order (PBOX_BT_SCAN_REVERSE:
 * backwards); fn as for pbox_bt_scan (non-zero stops the scan and is returned). */
int pbox_txn_scan(pbox_txn *t, pbox_bt *bt, const void *start, size_t slen, const void *end,
		  size_t elen, unsigned flags, pbox_bt_scan_fn fn, void *arg);

/* A cursor in the transaction's view, used with the usual pbox_bt_cursor_* calls (each
 * move is a seek in the view: O(log n), no leaf is held). It must be closed before the
 * transaction ends; its calls return PBOX_ECLOSED after the end. */
int pbox_txn_cursor_open(pbox_txn *t, pbox_bt *bt, pbox_bt_cursor **out);

/* Commit (flags: PBOX_BT_DURABLE) and end t, whatever the result. 0: everything applied
 * (visible to snapshots begun after the return). PBOX_ECONFLICT: nothing applied. Other
 * errors before the commit record is logged apply nothing; an error after it (an I/O error:
 * the store is then poisoned) leaves the outcome to recovery, which installs the
 * transaction iff its commit record reached the disk. A read-only or empty transaction
 * commits nothing (with PBOX_BT_DURABLE it still waits for earlier commits: a barrier). */
int pbox_txn_commit(pbox_txn *t, unsigned flags);

/* End t, discarding its writes. NULL is ignored. */
void pbox_txn_abort(pbox_txn *t);

/* Operations buffered (distinct keys written) and bytes held by t's write set. */
size_t pbox_txn_count(const pbox_txn *t);
size_t pbox_txn_bytes(const pbox_txn *t);

/* ---- the version store ------------------------------------------------------------------- */

/* Most bytes old versions may hold (default 1 GiB; 0: no cap). Beyond it the oldest open
 * snapshots are retired (PBOX_ESNAPSHOT) until their versions can be freed. */
int pbox_txn_set_version_cap(pbox_store *st, uint64_t bytes);

typedef struct pbox_txn_stats {
	uint64_t active;          /* transactions open now */
	uint64_t versions;        /* old versions kept now, and their bytes */
	uint64_t version_bytes;
	uint64_t oldest_snapshot_ms; /* age of the oldest open snapshot (0: none) */
	uint64_t commits, aborts, conflicts, retired; /* since the store was opened */
	uint64_t recovered;       /* transactions re-installed by the last recovery */
} pbox_txn_stats;

void pbox_txn_get_stats(pbox_store *st, pbox_txn_stats *s);

#ifdef __cplusplus
}
#endif
#endif
