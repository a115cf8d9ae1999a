/*
 * pbox/btree.h — a concurrent B+tree on a pagebox store.
 *
 * Keys and values are byte strings; keys compare with memcmp, a shorter key before its
 * extensions. Many named trees share one store through a catalog (itself a tree, rooted in
 * the store's meta slot PBOX_BT_META_CATALOG). A tree's root page id never changes: a root
 * split moves the root's contents into two new children.
 *
 * Every change is a mini-transaction with physiological redo records, so a crash never
 * leaves half an insert or half a split. Stores that hold trees must be opened with the
 * tree's redo handlers:
 *
 *     const pbox_redo_handler *h; unsigned n;
 *     pbox_bt_redo_handlers(&h, &n);
 *     opts.redo = h; opts.nredo = n;
 *     pbox_store_open(dir, &opts, &st);
 *
 * Concurrency: no tree-wide lock. Readers descend with optimistic lock coupling (no writes to
 * shared cache lines on the way down); writers descend the same way and latch exclusively
 * only the pages they change. Any number of threads may use one pbox_bt handle.
 *
 * Return codes: 0, a negative errno from the OS, or PBOX_E*: PBOX_EINVAL (bad argument, key
 * or value over the limit), PBOX_ENOTFOUND, PBOX_EEXIST, PBOX_ETOOSMALL (lookup buffer too
 * small: *vlen holds the size needed), PBOX_ECORRUPT, PBOX_EPOISONED (the store refuses
 * work after a failed write or sync), PBOX_ECLOSED (the tree was dropped), -ENOMEM.
 * Out-parameters are written only on success (and *vlen on PBOX_ETOOSMALL).
 *
 * Durability: by default an operation is "fast": it returns once its log group is appended
 * and becomes durable within the store's WAL flush delay. With PBOX_BT_DURABLE it returns
 * only once the change is on disk.
 */
#ifndef PBOX_BTREE_H
#define PBOX_BTREE_H

#include <pbox/storage.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_bt pbox_bt;

#define PBOX_BT_META_CATALOG 0u /* the store meta slot holding the catalog's root page id */

/* The btree's types, published so that structures built beside it never collide (ranges in
 * pbox/storage.h): its page types, and the range of redo record types it logs (handlers
 * from pbox_bt_redo_handlers). */
#define PBOX_BT_PAGE_TYPE_NODE (PBOX_PAGE_TYPE_USER + 2)     /* inner and leaf nodes */
#define PBOX_BT_PAGE_TYPE_OVERFLOW (PBOX_PAGE_TYPE_USER + 3) /* long values' chains */
#define PBOX_BT_REDO_TYPE_FIRST (PBOX_REDO_TYPE_USER + 0x10)
#define PBOX_BT_REDO_TYPE_LAST (PBOX_REDO_TYPE_USER + 0x1f)
#define PBOX_BT_NAME_MAX 255u   /* longest tree name */

/* Flags of the changing operations. */
#define PBOX_BT_DURABLE 0x1u /* return only when the change is durable */

/* The redo handlers every store holding trees must be opened with (static storage). */
void pbox_bt_redo_handlers(const pbox_redo_handler **handlers, unsigned *n);

/* ---- trees ------------------------------------------------------------------------------- */

/* Create the tree called name (1..PBOX_BT_NAME_MAX bytes) and open it. PBOX_EEXIST if it
 * exists. The creation is durable on return. */
int pbox_bt_create(pbox_store *st, const char *name, pbox_bt **out);
/* Open an existing tree. PBOX_ENOTFOUND if there is none of that name. */
int pbox_bt_open(pbox_store *st, const char *name, pbox_bt **out);
/* Open, creating it if needed. */
int pbox_bt_open_or_create(pbox_store *st, const char *name, pbox_bt **out);
/* Call fn for every tree name in order; a non-zero return from fn stops and is returned. */
int pbox_bt_list(pbox_store *st, int (*fn)(const char *name, size_t len, void *arg), void *arg);
/* Remove the tree called name and free its pages. Handles still open on it get
 * PBOX_ECLOSED from then on (its root page stays as a tombstone so they can tell). */
int pbox_bt_drop(pbox_store *st, const char *name);
/* Free the handle (the tree stays in the store). */
void pbox_bt_close(pbox_bt *bt);

/* Longest value (any page size); values longer than about a quarter of a page are kept on
 * chains of overflow pages. */
#define PBOX_BT_VALUE_MAX_BYTES (64u << 20)

/* Limits for this store's page size: longest key, longest value (0 if klen is over the key
 * limit). */
size_t pbox_bt_key_max(const pbox_store *st);
size_t pbox_bt_value_max(const pbox_store *st, size_t klen);

/* ---- point operations -------------------------------------------------------------------- */

/* Copy the value of key into buf (capacity cap); *vlen = its length. PBOX_ETOOSMALL (and
 * *vlen = the length needed) when cap is too small; PBOX_ENOTFOUND. */
int pbox_bt_lookup(pbox_bt *bt, const void *key, size_t klen, void *buf, size_t cap,
		   size_t *vlen);
/* Zero-copy lookup: fn sees the value in place (valid only during the call). fn may run more
 * than once for one lookup when a concurrent change forces a restart; only its last run
 * counts, and it must not have side effects that cannot be repeated. Its return value is
 * returned when non-zero. */
int pbox_bt_lookup_cb(pbox_bt *bt, const void *key, size_t klen,
		      int (*fn)(const void *val, size_t vlen, void *arg), void *arg);

/* Insert a new key: PBOX_EEXIST if present. */
int pbox_bt_insert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags);
/* Insert or replace. */
int pbox_bt_upsert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags);
/* Replace the value of an existing key: PBOX_ENOTFOUND if absent. */
int pbox_bt_update(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags);
/* Remove a key: PBOX_ENOTFOUND if absent. */
int pbox_bt_remove(pbox_bt *bt, const void *key, size_t klen, unsigned flags);

/* ---- scans ------------------------------------------------------------------------------- */

/* Called for each pair in order; key and value are valid only during the call. Non-zero
 * stops the scan and is returned by it. */
typedef int (*pbox_bt_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen,
			       void *arg);

/* Forward scan of the keys k with start <= k < end (start NULL: from the first key; end
 * NULL: to the last). Each leaf is read consistently; a concurrent change between leaves is
 * seen or not, but no key is reported twice or out of order. */
int pbox_bt_scan(pbox_bt *bt, const void *start, size_t slen, const void *end, size_t elen,
		 pbox_bt_scan_fn fn, void *arg);

/* Scan flags. */
#define PBOX_BT_SCAN_REVERSE 0x1u /* from the last key below end down to start */

/* Like pbox_bt_scan, in either direction: keys k with start <= k < end. */
int pbox_bt_scan_ex(pbox_bt *bt, const void *start, size_t slen, const void *end, size_t elen,
		    unsigned flags, pbox_bt_scan_fn fn, void *arg);
/* Every key that starts with prefix, in order (PBOX_BT_SCAN_REVERSE: backwards). */
int pbox_bt_scan_prefix(pbox_bt *bt, const void *prefix, size_t plen, unsigned flags,
			pbox_bt_scan_fn fn, void *arg);

/* ---- cursors ----------------------------------------------------------------------------- */

/* A position in a tree. It reads one leaf at a time (a consistent copy); moving past that
 * leaf, or moving after the leaf changed, re-seeks from the current key, so a cursor survives
 * concurrent changes: it never returns a key twice or out of order, and it sees every key
 * that was present and unchanged throughout. A cursor is used by one thread at a time. */
typedef struct pbox_bt_cursor pbox_bt_cursor;

int pbox_bt_cursor_open(pbox_bt *bt, pbox_bt_cursor **out);
void pbox_bt_cursor_close(pbox_bt_cursor *c);
/* Position at the first key >= key (seek) or the last key <= key (seek_prev), the first or
 * the last key. PBOX_ENOTFOUND if there is none (the cursor is then unpositioned). */
int pbox_bt_cursor_seek(pbox_bt_cursor *c, const void *key, size_t klen);
int pbox_bt_cursor_seek_prev(pbox_bt_cursor *c, const void *key, size_t klen);
int pbox_bt_cursor_first(pbox_bt_cursor *c);
int pbox_bt_cursor_last(pbox_bt_cursor *c);
/* Move to the next / previous key: PBOX_ENOTFOUND at the end (the cursor stays where it
 * was); PBOX_EINVAL if unpositioned. After any other error the cursor also stays, and the
 * next call searches from its key again. */
int pbox_bt_cursor_next(pbox_bt_cursor *c);
int pbox_bt_cursor_prev(pbox_bt_cursor *c);
/* The current key and value: pointers valid until the cursor moves or closes. PBOX_EINVAL
 * if unpositioned. A value that fits in the leaf is the one the cursor saw when it reached
 * the key; a long one (on overflow pages) is read when asked for, and if the key was removed
 * meanwhile the value call returns PBOX_ENOTFOUND and the cursor stays on the removed key:
 * next and prev continue from it as usual. */
int pbox_bt_cursor_key(pbox_bt_cursor *c, const void **key, size_t *klen);
int pbox_bt_cursor_value(pbox_bt_cursor *c, const void **val, size_t *vlen);

/* ---- atomic write batches ---------------------------------------------------------------- */

/* A batch of puts and deletes over one or more trees of one store, applied atomically: after
 * a crash either all of it is there or none of it. A batch is a write-only transaction
 * (pbox/txn.h): snapshots see all of it or none of it; plain readers outside transactions
 * may see part of it while it is installed (key by key); once pbox_bt_batch_commit returns,
 * all of it is visible. A key given twice takes its last operation. Deleting an absent key
 * is not an error. No size limit but memory and the log (a batch holds its operations, and
 * its commit a copy of each key's old value while snapshots are open: see pbox/txn.h). */
typedef struct pbox_bt_batch pbox_bt_batch;

int pbox_bt_batch_create(pbox_bt_batch **out);
void pbox_bt_batch_destroy(pbox_bt_batch *b);
/* Record a put / delete (copied). PBOX_EINVAL for bad arguments or a tree of another store. */
int pbox_bt_batch_put(pbox_bt_batch *b, pbox_bt *bt, const void *key, size_t klen,
		      const void *val, size_t vlen);
int pbox_bt_batch_del(pbox_bt_batch *b, pbox_bt *bt, const void *key, size_t klen);
/* Number of operations recorded. */
size_t pbox_bt_batch_count(const pbox_bt_batch *b);
/* Apply atomically (flags: PBOX_BT_DURABLE); the batch is empty afterwards, whatever the
 * result. A durable commit returns once the batch and every change committed before it are
 * on disk — also when the batch changes nothing (deletes of absent keys); an empty batch
 * names no store and does nothing. A write-write conflict with a concurrent transaction is
 * retried (a batch reads nothing, so its operations simply apply after the other's);
 * PBOX_EBUSY (nothing applied; retryable) after 10,000 conflicts in a row. */
int pbox_bt_batch_commit(pbox_bt_batch *b, unsigned flags);

/* ---- changes inside a caller's mini-transaction ---------------------------------------
 * For structures built beside a tree (a heap page and its index entry changing atomically):
 * the leaf change joins the caller's mtr m and commits (or is logged) with it. Only changes
 * that need no structure change: when the entry does not fit, or the leaf is busy, the call
 * returns PBOX_ERESTART having changed nothing — abort m (unchanged, if the tree change was
 * the first thing it did), call pbox_bt_make_room for a missing fit, and start over.
 * Values must fit inline (at most pbox_bt_inline_max bytes; no overflow chains: PBOX_EINVAL)
 * and an existing value on overflow pages is not replaced here (PBOX_EINVAL). A remove does
 * not merge an underfull leaf. The leaf is upgraded without waiting, so the caller may hold
 * its own pages in any order. These are physical changes beside the transaction layer:
 * while a transaction is open on the store they return PBOX_EBUSY. Otherwise as
 * pbox_bt_insert / upsert / remove (PBOX_EEXIST, PBOX_ENOTFOUND). */
int pbox_bt_insert_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen, const void *val,
		      size_t vlen);
int pbox_bt_upsert_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen, const void *val,
		      size_t vlen);
int pbox_bt_remove_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen);
/* Split key's leaf if an entry of klen + vlen bytes would not fit (its own mtrs). */
int pbox_bt_make_room(pbox_bt *bt, const void *key, size_t klen, size_t vlen);
/* Longest value kept inline in a leaf for a key of klen bytes (0: klen over the limit). */
size_t pbox_bt_inline_max(pbox_bt *bt, size_t klen);

/* ---- checking ---------------------------------------------------------------------------- */

typedef struct pbox_bt_verify_info {
	uint64_t keys, leaves, inner, depth;
} pbox_bt_verify_info;

/* Check the whole tree: every node verifies, keys ascend across leaves, every child lies
 * within its parent's separators, fences chain, all leaves at one depth. Takes shared
 * latches top-down (concurrent writers wait). 0 or PBOX_ECORRUPT (or an I/O error). */
int pbox_bt_verify(pbox_bt *bt, pbox_bt_verify_info *info);

/* ---- space left behind by crashes ------------------------------------------------------- */

/* Pages of the btree's types that no tree reaches: an overflow chain written just before a
 * crash whose leaf change never committed, or the pages of a tree whose drop was cut short.
 * Walks the catalog, every tree and every overflow chain, then reads the type of every page
 * of the store (a full pass over the data file: a maintenance call, e.g. after a crash).
 * *leaked receives their number; with reclaim they are also freed for reuse. Pages of other
 * types (free pages, other data structures') are never touched, nor the root page a drop
 * leaves behind (one page per dropped tree: handles still open on the dropped tree read it
 * and get PBOX_ECLOSED; were it reused they could reach another tree). Must not run concurrently
 * with changes to any tree of the store (an in-flight change's new chain is not reachable
 * yet). 0, PBOX_ECORRUPT (a page reachable twice, a broken chain), or an I/O error. */
int pbox_bt_reclaim(pbox_store *st, bool reclaim, uint64_t *leaked);

/* ---- inspection -------------------------------------------------------------------------- */

#define PBOX_BT_INSPECT_LEVELS 24u /* deepest tree the walk reports (deeper is PBOX_ECORRUPT) */
#define PBOX_BT_INSPECT_FILL_BUCKETS 10u

/* What pbox_bt_inspect found. Level 0 is the root; level depth - 1 the leaves. Fill: the
 * bytes of a node in use (header, slots, fences, keys, inline values) over the node size
 * (page size - 32); bucket i counts nodes with i*10% <= fill < (i+1)*10% (100% in bucket 9).
 * Overflow pages are counted from the leaves' references (ceil(length / data bytes per
 * page)), not by walking the chains. Value sizes count a long value's full length. */
typedef struct pbox_bt_inspect_info {
	uint64_t depth;                                      /* levels (1: the root is a leaf) */
	uint64_t pages[PBOX_BT_INSPECT_LEVELS];              /* nodes per level */
	uint64_t leaves, inner;
	uint64_t leaf_fill[PBOX_BT_INSPECT_FILL_BUCKETS];    /* histogram of leaf fill */
	uint64_t inner_fill[PBOX_BT_INSPECT_FILL_BUCKETS];   /* histogram of inner-node fill */
	uint64_t node_bytes_used;                            /* sum over all nodes */
	uint64_t overflow_values, overflow_pages, overflow_bytes;
	uint64_t keys;                                       /* = values */
	uint64_t key_min, key_max, key_sum;                  /* 0 when there are no keys */
	uint64_t val_min, val_max, val_sum;
	uint32_t page_size;
} pbox_bt_inspect_info;

/* Walk the whole tree and fill *info. Latching as pbox_bt_verify: shared latches top-down,
 * the root held for the whole walk (splits and merges wait; point changes to leaves off the
 * current path go on, so the figures are those of one structure with each leaf as it was
 * when visited). Each node passes the node self-check first. 0, PBOX_ECORRUPT, PBOX_EINVAL,
 * -ENOMEM or an I/O error. */
int pbox_bt_inspect(pbox_bt *bt, pbox_bt_inspect_info *info);

/* ---- compacting copy --------------------------------------------------------------------
 * Copy every tree of src into dst (an open, empty store: no tree, PBOX_EEXIST otherwise), as
 * one snapshot of src (a read-only transaction: writers on src go on), each tree in key
 * order so the copy's nodes are nearly full: a store rewritten this way holds about its live
 * data (`kvstore compact` builds one beside the source and swaps the directories). dst's
 * changes are durable once the caller closes or checkpoints it. A store with another data
 * structure (a meta slot other than the catalog's in use, in either store) is refused with
 * PBOX_ENOTSUP. On an error dst holds part of the data: discard it. */
typedef struct pbox_bt_copy_info {
	uint64_t trees, pairs, bytes; /* bytes: keys + values */
} pbox_bt_copy_info;
int pbox_bt_copy_trees(pbox_store *src, pbox_store *dst, pbox_bt_copy_info *info);

#ifdef __cplusplus
}
#endif
#endif
