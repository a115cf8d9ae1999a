/*
 * tree_int.h — private to the btree library: the tree layer's shared types, constants and
 * the pbox__bt_* functions its files call in each other. The node layer (one page) is
 * node.h; this is everything above it.
 *
 * Files (each one's top comment states its invariants and latching rules):
 *   redo.c      redo handlers and the logging helpers that write their records
 *   descend.c   finding a leaf: optimistic lock coupling (R1), shared latch coupling, the
 *               exclusive path of a structure mtr, stepping to a right neighbour
 *   catalog.c   named trees: create, open, list, drop; the per-store catalog lock
 *   overflow.c  long values on chains of overflow pages
 *   point.c     lookups and point changes (R2); key and value limits
 *   smo.c       structure changes: splits (R3, R4) and merges
 *   scan.c      forward scans with read-ahead, reverse and prefix scans
 *   cursor.c    cursors over validated leaf copies
 *   batch.c     atomic write batches over several trees
 *   verify.c    pbox_bt_verify
 *   reclaim.c   pbox_bt_reclaim: pages a crash left unreachable
 *   inspect.c   pbox_bt_inspect: the shape and space use of a tree
 *   copy.c      pbox_bt_copy_trees: the compacting copy of every tree (one snapshot)
 *
 * Concurrency in one paragraph (ARCHITECTURE §8; the rules in full live with their code):
 * readers and writers find leaves by optimistic lock coupling, reading nodes in place
 * through racy loads and validating versions (R1, descend.c); a point change upgrades only
 * the leaf it read and logs one record (R2, point.c); a leaf without room is split by a
 * separate structure mtr that latches the path exclusively from the root down (R3, smo.c),
 * keeping the right half in place so the parent gains one separator and the root id never
 * changes (R4, smo.c). Latches are always taken top-down, and an upgrade never waits, so no
 * two of these can deadlock.
 *
 * Page types: BT_PAGE_TYPE (nodes, node.h's format after the storage header) and
 * OVF_PAGE_TYPE (overflow pages, overflow.c). A dropped tree's root keeps BT_PAGE_TYPE with
 * the node kind byte DROPPED_KIND, so handles still open on it get PBOX_ECLOSED.
 *
 * Redo records (physiological, types from PBOX_REDO_TYPE_USER + 0x10; handlers in redo.c):
 *   IMAGE        node area (page_size - 32 bytes): new pages, the root after a root split,
 *                merged nodes
 *   INSERT       u32 flags, u32 klen, key, payload          node_insert
 *   REMOVE       u32 klen, key                              lower_bound + node_remove
 *   SPLIT_RIGHT  u32 nl                                     the page keeps the right half
 *   DROP         (empty)                                    node kind byte = DROPPED_KIND
 */
#ifndef PBOX_BT_TREE_INT_H
#define PBOX_BT_TREE_INT_H

#include <pbox/btree.h>

#include "node.h"
#include "racy.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define BT_PAGE_TYPE PBOX_BT_PAGE_TYPE_NODE
#define OVF_PAGE_TYPE PBOX_BT_PAGE_TYPE_OVERFLOW
#define REDO_IMAGE (PBOX_REDO_TYPE_USER + 0x10)
#define REDO_INSERT (PBOX_REDO_TYPE_USER + 0x11)
#define REDO_REMOVE (PBOX_REDO_TYPE_USER + 0x12)
#define REDO_SPLIT_RIGHT (PBOX_REDO_TYPE_USER + 0x13)
#define REDO_DROP (PBOX_REDO_TYPE_USER + 0x14)
PBOX_STATIC_ASSERT(REDO_IMAGE >= PBOX_BT_REDO_TYPE_FIRST && REDO_DROP <= PBOX_BT_REDO_TYPE_LAST,
		   "the btree logs only inside its published range");
#define MAX_DEPTH 24
#define OVF_HDR 12u /* at PBOX_PAGE_HDR: u64 next page id (0: last), u32 bytes here */
#define OVF_REF 16u /* a leaf's overflow payload: u64 first page id, u64 value length */
#define OVF_PAGES_PER_MTR 24u
#define DROPPED_KIND 0x44u /* 'D': the node kind byte of a dropped tree's root */

/* A tree handle: the root page id never changes (R4), so this is all a handle needs. */
struct pbox_bt {
	pbox_store *st;
	pbox_pid root;
	uint32_t ps;
};

/* ---- the page type: read through storage's accessors (pbox/storage.h) ------------------ */

/* The type of a page the caller holds latched, or a consistent copy of one. */
static inline uint16_t pbox__bt_page_type(const void *page)
{
	return pbox_page_type(page);
}

/* The same through a racy load, for optimistic readers (R1: validated afterwards). */
static inline uint16_t pbox__bt_page_type_racy(const void *page)
{
	return pbox_page_type_opt(page);
}

/* ---- small shared helpers ---------------------------------------------------------------- */

/* memcmp order, a proper prefix first. */
static inline int pbox__bt_cmp_keys(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* Arguments of a change (or a lookup, with val NULL and vlen 0) within the limits. */
static inline int pbox__bt_check_kv(pbox_bt *bt, const void *key, size_t klen, const void *val,
				    size_t vlen)
{
	if (!bt || (klen && !key) || (vlen && !val))
		return PBOX_EINVAL;
	if (klen > PBOX_BT_KEY_MAX(bt->ps) || vlen > pbox_bt_value_max(bt->st, klen))
		return PBOX_EINVAL;
	return 0;
}

/* Longest value stored inline in a leaf for a key of klen bytes; longer ones go to overflow
 * pages (the leaf then holds a 16-byte reference). */
static inline uint32_t pbox__bt_inline_max(const pbox_bt *bt, uint32_t klen)
{
	uint32_t e = PBOX_BT_ENTRY_MAX(bt->ps) - klen;
	/* keep leaves dense: at most a quarter of a node inline */
	uint32_t q = (bt->ps - PBOX_PAGE_HDR) / 4 - klen;
	return e < q ? e : q;
}

/* Data bytes one overflow page holds. */
static inline uint32_t pbox__bt_ovf_per_page(const pbox_bt *bt)
{
	return bt->ps - PBOX_PAGE_HDR - OVF_HDR;
}

/* ---- redo.c: logging (inside an mtr; the page is already changed) ------------------------ */

int pbox__bt_log_image(pbox_mtr *m, pbox_pid pid, const void *page, uint32_t ps);
int pbox__bt_log_insert(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen,
			const void *val, uint32_t vlen, uint32_t flags);
int pbox__bt_log_remove(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen);

/* ---- descend.c: finding leaves ------------------------------------------------------------ */

/* Where a leaf hangs: its parent, the parent's version and the leaf's slot there (for
 * stepping to a neighbour without a descent); parent PBOX_PID_NONE when unknown. */
typedef struct leaf_parent {
	pbox_pid parent;
	uint64_t version;
	uint32_t pos;
} leaf_parent;

/* The path of a structure mtr: key's root-to-leaf pages, latched exclusively by m, top-down.
 * pos[i] is the child slot taken at inner level i, and at the leaf key's lower bound. */
typedef struct bpath {
	pbox_pid pid[MAX_DEPTH];
	void *pg[MAX_DEPTH];
	uint32_t pos[MAX_DEPTH];
	unsigned d;
} bpath;

/* Copy page pid into buf consistently; *version = the latch version it was read at. */
int pbox__bt_read_node(pbox_bt *bt, pbox_pid pid, void *buf, uint64_t *version);
/* Is key within the node's fences (lower < key <= upper)? */
int pbox__bt_key_in_range(const void *node, uint32_t ps, const void *key, uint32_t klen,
			  bool *in);
/* The leaf for key, after optimistic descents and, when they keep restarting, the
 * latch-coupled one. With buf, the leaf is also copied into buf consistently (at
 * *version); without, the caller reads it in place and validates. lp (may be NULL) gets
 * where the leaf hangs. */
int pbox__bt_descend_retry_lp(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			      pbox_pid *leaf, uint64_t *version, leaf_parent *lp);
int pbox__bt_descend_retry(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			   pbox_pid *leaf, uint64_t *version);
/* Step from the leaf at lp->pos to its right neighbour under the same parent, copying it
 * into buf: 0 (lp updated), PBOX_ENOTFOUND (descend instead), or an error. */
int pbox__bt_next_leaf(pbox_bt *bt, leaf_parent *lp, void *buf, pbox_pid *leaf,
		       uint64_t *version);
/* Latch key's path exclusively in m (at most max levels: PBOX_ELIMIT beyond). */
int pbox__bt_latch_path(pbox_bt *bt, pbox_mtr *m, const void *key, uint32_t klen,
			unsigned max, bpath *p);

/* ---- point.c: changes --------------------------------------------------------------------- */

enum { OP_INSERT, OP_UPSERT, OP_UPDATE, OP_REMOVE };
/* One point change (R2) with no transaction bookkeeping: what the public changes do when
 * no transaction is open, and what commits install with. */
int pbox__bt_change(pbox_bt *bt, int op, const void *key, size_t klen, const void *val,
		    size_t vlen, unsigned flags);
/* The public changes (txn_single.c): a one-operation transaction while transactions are
 * open, otherwise pbox__bt_change. */
int pbox__txn_single(pbox_bt *bt, int op, const void *key, size_t klen, const void *val,
		     size_t vlen, unsigned flags);

/* ---- cursors of transactions (txn_read.c): cursor.c delegates to these when set --------- */

struct txn_cur;
void pbox__bt_cursor_set_txn(pbox_bt_cursor *c, struct txn_cur *tc);
enum { CUR_SEEK, CUR_SEEK_PREV, CUR_FIRST, CUR_LAST, CUR_NEXT, CUR_PREV };
int pbox__txn_cursor_move(struct txn_cur *tc, int how, const void *key, size_t klen);
int pbox__txn_cursor_key(struct txn_cur *tc, const void **key, size_t *klen);
int pbox__txn_cursor_value(struct txn_cur *tc, const void **val, size_t *vlen);
void pbox__txn_cursor_close(struct txn_cur *tc);

/* ---- catalog.c ---------------------------------------------------------------------------- */

/* The catalog tree of st (a handle on the stack), created first when create is set;
 * PBOX_ENOTFOUND when there is none and create is not. */
int pbox__bt_catalog(pbox_store *st, bool create, pbox_bt *cat);

/* ---- overflow.c --------------------------------------------------------------------------- */

/* Write val to a new chain (mtrs of its own); *first = its first page. */
int pbox__bt_ovf_write(pbox_bt *bt, const void *val, size_t vlen, pbox_pid *first);
/* Free a chain (after the leaf stopped referring to it). */
int pbox__bt_ovf_free(pbox_bt *bt, pbox_pid first, uint64_t vlen);
/* Decode a leaf's overflow reference. */
int pbox__bt_parse_ref(const uint8_t *p, uint32_t plen, pbox_pid *first, uint64_t *vlen);
/* The overflow value of key, read with the live leaf latched shared (below). */
int pbox__bt_ovf_value(pbox_bt *bt, pbox_pid leaf_pid, const void *key, uint32_t klen,
		       const void **val, size_t *vlen, unsigned char **heap, size_t *heap_cap);

/* The value of slot pos of a leaf copy: inline, or read from its chain into *heap (grown as
 * needed). For a chain, the live leaf is latched shared while the chain is read: the key's
 * reference is looked up again in it (the copy may be stale), and the chain cannot be freed
 * meanwhile (that needs the leaf exclusively first). Eviction cannot disturb it either (a
 * version check would: the leaf may be evicted while a long chain is read under a small
 * budget). PBOX_ERESTART when the key is gone from the live leaf. Inline: scans and cursors
 * call it for every key, and almost every value is inline. */
static inline int pbox__bt_leaf_value(pbox_bt *bt, const void *leaf, pbox_pid leaf_pid,
				      const void *key, uint32_t klen, uint32_t pos,
				      const void **val, size_t *vlen, unsigned char **heap,
				      size_t *heap_cap)
{
	const uint8_t *p;
	uint32_t plen;
	unsigned fl;
	int r = pbox__bt_node_payload(leaf, bt->ps, pos, &p, &plen, &fl);
	if (r)
		return r;
	if (!(fl & PBOX_BT_SLOT_OVERFLOW)) {
		*val = p;
		*vlen = plen;
		return 0;
	}
	return pbox__bt_ovf_value(bt, leaf_pid, key, klen, val, vlen, heap, heap_cap);
}

/* ---- smo.c -------------------------------------------------------------------------------- */

/* Make room for an entry of need bytes in key's leaf: one structure pass (R3). */
int pbox__bt_split_pass(pbox_bt *bt, const void *key, uint32_t klen, uint32_t need);
/* Merge key's underfull leaf (and then its ancestors) with a sibling: one structure pass. */
int pbox__bt_merge_pass(pbox_bt *bt, const void *key, uint32_t klen);

/* ---- cursor.c ----------------------------------------------------------------------------- */

/* Position c on the last key < key (a reverse scan's start below its end bound). */
int pbox__bt_cursor_seek_below(pbox_bt_cursor *c, const void *key, uint32_t klen);

#endif /* PBOX_BT_TREE_INT_H */
