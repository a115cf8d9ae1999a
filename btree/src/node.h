/*
 * node.h — private to the btree library: the B+tree node, a slotted page, and the
 * operations on one node (single-threaded, pure functions on a page buffer; not API).
 *
 * Glossary
 *   node         the bytes of a page after the 32-byte storage header (PBOX_PAGE_HDR).
 *                Every offset below is node-relative: node byte x is page byte 32 + x. The
 *                node size NS = page_size - 32 is at most 65504, so every offset, including
 *                the node end NS itself, fits in a u16.
 *   fences       the lower and upper fence keys: every key k in the node satisfies
 *                lower < k <= upper (k < upper in an inner node, whose upper child's
 *                range (last separator, upper] is then never empty). A NULL (infinite) lower fence is -infinity (leftmost
 *                node), a NULL upper fence +infinity (rightmost node). A finite fence may be
 *                the empty key, which is different from an infinite one: a lower fence ""
 *                excludes the key "". When both are finite, lower < upper.
 *   prefix       the longest common prefix of the two fences (0 if either is infinite).
 *                Every key between the fences starts with it, so it is stored once (as the
 *                first bytes of the lower fence) and slots store only the key's suffix.
 *   head         the first 4 bytes of a key suffix as a big-endian number, zero-padded: for
 *                keys a < b, head(a) <= head(b), so unequal heads decide a comparison without
 *                touching the heap; equal heads fall back to the suffix bytes.
 *   hints        16 heads sampled from the slots (slot d, 2d, ..., 16d with d = count / 17;
 *                all zero when d = 0) that narrow the binary search; rebuilt on every change.
 *   entry        key suffix followed by payload, contiguous in the heap.
 *   dead bytes   heap bytes no entry or fence references any more (left by removals and
 *                relocations); compaction reclaims them.
 *   leaf         payload = the value bytes (inline), or an overflow reference written by the
 *                upper layer (slot flag PBOX_BT_SLOT_OVERFLOW; this layer does not read it).
 *   inner        payload = an 8-byte little-endian child page id. Slot i's key is the
 *                separator s_i, the upper bound of child i: child i holds keys k with
 *                s_(i-1) < k <= s_i (s_(-1) = the lower fence). Keys above the last
 *                separator (up to the upper fence) go to the "upper" child in the header.
 *
 * NODE FORMAT (little-endian; offsets node-relative)
 *
 *   OFFSET SIZE MEANING
 *        0    1 kind: 'L' (0x4c) leaf, 'I' (0x49) inner; anything else is corrupt
 *        1    1 fence flags: bit 0 lower fence is -infinity, bit 1 upper fence is +infinity
 *        2    2 count: number of slots
 *        4    2 heap start: lowest heap byte in use; the heap is [heap start, NS). The free
 *               gap is [96 + 12 * count, heap start)
 *        6    2 dead bytes inside the heap
 *        8    2 lower fence offset  \ a fence is len bytes at offset in the heap; an
 *       10    2 lower fence length   | infinite fence has offset 0 and length 0; a finite
 *       12    2 upper fence offset   | fence of length 0 has offset NS
 *       14    2 upper fence length  /
 *       16    2 prefix length (= LCP of the finite fences, else 0)
 *       18    6 reserved, zero
 *       24    8 upper child page id (inner); 0 in a leaf
 *       32   64 hints: 16 u32 heads
 *       96 12*n slots, in ascending key order
 *
 *   Slot (12 bytes, 4-byte aligned in a page-aligned buffer):
 *   OFFSET SIZE MEANING
 *        0    4 head of the key suffix: a u32 (little-endian like every field) whose value
 *               is its first 4 bytes read big-endian, zero-padded
 *        4    2 entry offset in the heap (NS for an entry of length 0)
 *        6    2 key suffix length (the key is prefix + suffix)
 *        8    2 payload length
 *       10    2 flags: bit 0 PBOX_BT_SLOT_OVERFLOW (leaf only); other bits zero
 *
 *   Heap: entries and the two fences, anywhere in [heap start, NS), never overlapping.
 *   Accounting invariant: fence bytes + entry bytes + dead bytes = NS - heap start.
 *
 * LIMITS (per page size ps; functions of ps, the same at every level of the tree)
 *   key      at most PBOX_BT_KEY_MAX(ps) = ps / 8 bytes (512 at 4 KiB, 8 KiB at 64 KiB).
 *   entry    key length + payload length at most PBOX_BT_ENTRY_MAX(ps) =
 *            (ps - 32 - 96 - 2 * PBOX_BT_KEY_MAX(ps)) / 4 - 12   (724 at 4 KiB, 12244 at
 *            64 KiB). So a node with two fences of the largest size holds at least four
 *            entries of the largest size (asserted below), and the inline value limit for a
 *            key of length k is PBOX_BT_ENTRY_MAX(ps) - k. Larger values are the upper layer's
 *            to put on overflow pages: PBOX_BT_ENTRY_MAX - PBOX_BT_KEY_MAX >= 212 bytes always
 *            remain for an overflow reference next to the largest key, and inner entries
 *            (key + 8-byte child id) always fit the entry limit.
 *   Why ps / 8: a node must hold its two fences (each up to a key in size: a separator can
 *   be as long as a key) and still four entries. At 4 KiB with 1 KiB keys the two fences
 *   alone would take half the node and not even two 1 KiB-key entries would fit beside them.
 *
 * ERRORS
 *   0 or a negative PBOX_E* code; out-parameters are written only on success.
 *   PBOX_EINVAL   bad arguments: page size, limits, slot index, a key outside the fences,
 *                 a payload of the wrong size for an inner node.
 *   PBOX_ECORRUPT the node's bytes are inconsistent (detected before anything is read out
 *                 of bounds). Every function bounds-checks what it reads from the page, so
 *                 arbitrary bytes never make it read or write outside the page; the write
 *                 paths may leave a corrupt node differently corrupt.
 *   PBOX_ENOSPC   the node has no room for the change even after compaction; unchanged.
 *   PBOX_EEXIST   insert of a key that is present (without PBOX_BT_INSERT_REPLACE).
 *   -ENOMEM       merge only (it builds the result in a scratch page); nothing changed.
 *
 * Reading under optimistic latches: the read path (node_read.c: lower_bound, find_child,
 * key, payload; and node_verify.c) reaches page bytes only through a handful of load helpers
 * (node_int.h: ld8/ld16/ld32/ld64, ldcmp, ldcopy), which are racy.h's race-tolerant loads
 * (built on pbox_latch_opt_load_u*() and pbox_latch_opt_copy() under ThreadSanitizer);
 * since every offset and length it reads is already bounds-checked before use, it cannot
 * address outside the page whatever bytes it sees. Writers (node_write.c, node_build.c)
 * store with ordinary stores under the exclusive latch.
 *
 * Files: node_read.c (search, reading), node_write.c (init, changing, compaction, space),
 * node_build.c (split, merge), node_verify.c (the self-check); node_int.h is their shared
 * private header (field offsets, byte access, header and slot helpers).
 *
 * Ownership: key, payload and fence arguments are caller memory and must not point into
 * the node being changed (compaction moves heap bytes). Pointers returned into a page
 * (fences, payload) are valid until the node is next changed.
 */
#ifndef PBOX_BT_NODE_H
#define PBOX_BT_NODE_H

#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/types.h>

#include <stdbool.h>
#include <stdint.h>

#define PBOX_BT_NODE_HDR 96u    /* node header, hints included */
#define PBOX_BT_NODE_SLOT 12u   /* one slot */
#define PBOX_BT_NODE_HINTS 16u  /* hint heads */
#define PBOX_BT_NODE_LEAF 0x4cu /* 'L' */
#define PBOX_BT_NODE_INNER 0x49u /* 'I' */

#define PBOX_BT_PAGE_MIN 4096u
#define PBOX_BT_PAGE_MAX 65536u

#define PBOX_BT_KEY_MAX(ps) ((uint32_t)(ps) / 8u)
#define PBOX_BT_ENTRY_MAX(ps)                                                                   \
	(((uint32_t)(ps) - PBOX_PAGE_HDR - PBOX_BT_NODE_HDR - 2u * PBOX_BT_KEY_MAX(ps)) / 4u -  \
	 PBOX_BT_NODE_SLOT)
/* Longest key at any page size (buffers that must hold any key or separator). */
#define PBOX_BT_KEY_MAX_ANY PBOX_BT_KEY_MAX(PBOX_BT_PAGE_MAX)
/* Smallest valid child page id: pages 0 and 1 are the superblocks, 2 the allocator's meta
 * page (pbox/storage.h). */
#define PBOX_BT_NODE_PID_MIN 3u

/* Slot flags. */
#define PBOX_BT_SLOT_OVERFLOW 0x1u /* leaf payload is an overflow reference */
/* Insert flags (besides PBOX_BT_SLOT_OVERFLOW, which is stored in the slot). */
#define PBOX_BT_INSERT_REPLACE 0x100u /* an existing key gets the new payload */

/* Four largest entries beside two largest fences fit, at the smallest and largest page. */
#define PBOX_BT_NODE_FITS4_(ps)                                                                 \
	(PBOX_BT_NODE_HDR + 2u * PBOX_BT_KEY_MAX(ps) +                                          \
		 4u * (PBOX_BT_NODE_SLOT + PBOX_BT_ENTRY_MAX(ps)) <=                            \
	 (ps) - PBOX_PAGE_HDR)
PBOX_STATIC_ASSERT(PBOX_BT_NODE_FITS4_(PBOX_BT_PAGE_MIN) && PBOX_BT_NODE_FITS4_(PBOX_BT_PAGE_MAX),
		   "btree node: four maximal entries and two maximal fences must fit");
PBOX_STATIC_ASSERT(PBOX_BT_ENTRY_MAX(PBOX_BT_PAGE_MIN) >= PBOX_BT_KEY_MAX(PBOX_BT_PAGE_MIN) + 64u,
		   "btree node: a maximal key must leave room for a child id or overflow reference");
PBOX_STATIC_ASSERT(PBOX_BT_PAGE_MAX - PBOX_PAGE_HDR <= UINT16_MAX,
		   "btree node: node-relative offsets, including the node end, fit in a u16");
PBOX_STATIC_ASSERT(PBOX_BT_ENTRY_MAX(PBOX_BT_PAGE_MAX) <= UINT16_MAX &&
			   PBOX_BT_KEY_MAX(PBOX_BT_PAGE_MAX) <= UINT16_MAX,
		   "btree node: slot lengths are u16");
PBOX_STATIC_ASSERT(PBOX_PAGE_HDR % 4 == 0 && PBOX_BT_NODE_HDR % 4 == 0 && PBOX_BT_NODE_SLOT % 4 == 0,
		   "btree node: slot heads are 4-byte aligned in a page-aligned buffer");

/* True for a power of two in [PBOX_BT_PAGE_MIN, PBOX_BT_PAGE_MAX]. */
static inline bool pbox__bt_node_page_size_ok(uint32_t ps)
{
	return ps >= PBOX_BT_PAGE_MIN && ps <= PBOX_BT_PAGE_MAX && (ps & (ps - 1)) == 0;
}

/* ---- creating -------------------------------------------------------------------------- */

/* Make the node area of page an empty leaf / inner node with the given fences (NULL = the
 * infinite fence; a finite fence is at most PBOX_BT_KEY_MAX(ps) bytes; lower < upper).
 * The page header (first 32 bytes) is not touched. An inner node starts with no slots and
 * upper_child (>= PBOX_BT_NODE_PID_MIN) as its only child. Errors: PBOX_EINVAL. */
int pbox__bt_node_init_leaf(void *page, uint32_t ps, const void *lower, uint32_t lower_len,
			    const void *upper, uint32_t upper_len);
int pbox__bt_node_init_inner(void *page, uint32_t ps, const void *lower, uint32_t lower_len,
			     const void *upper, uint32_t upper_len, pbox_pid upper_child);

/* ---- reading (robust on arbitrary bytes) -------------------------------------------------- */

/* Raw header fields, for a node the caller trusts (latched and once verified). */
bool pbox__bt_node_is_leaf(const void *page);
uint32_t pbox__bt_node_count(const void *page);
uint32_t pbox__bt_node_prefix_len(const void *page);

/* The fences: *lower / *upper point into the page, NULL when infinite. */
int pbox__bt_node_fences(const void *page, uint32_t ps, const uint8_t **lower,
			 uint32_t *lower_len, const uint8_t **upper, uint32_t *upper_len);

/* Key of slot i reassembled (prefix + suffix) into buf; *len = its length.
 * Errors: PBOX_EINVAL (i >= count), PBOX_ETOOSMALL (cap < length; cap >= PBOX_BT_KEY_MAX(ps)
 * always suffices), PBOX_ECORRUPT. */
int pbox__bt_node_key(const void *page, uint32_t ps, uint32_t i, void *buf, uint32_t cap,
		      uint32_t *len);

/* Payload of slot i: pointer into the page, its length and the slot flags. */
int pbox__bt_node_payload(const void *page, uint32_t ps, uint32_t i, const uint8_t **p,
			  uint32_t *len, unsigned *flags);

/* First slot whose key is >= key (count if none); *exact when that key equals key. A key
 * below the lower fence gives 0, above the upper fence count. Errors: PBOX_ECORRUPT. */
int pbox__bt_node_lower_bound(const void *page, uint32_t ps, const void *key, uint32_t klen,
			      uint32_t *pos, bool *exact);

/* The same for a key the caller knows to lie within the node's fences (a descent reached
 * the node by key): the prefix is not compared. A key outside the fences gives some
 * position in [0, count], never an out-of-bounds read. */
int pbox__bt_node_lower_bound_in(const void *page, uint32_t ps, const void *key,
				 uint32_t klen, uint32_t *pos, bool *exact);

/* _lower_bound_in and, when the key is present, _payload of its slot, in one pass over
 * the header (the optimistic lookup's leaf step). */
int pbox__bt_node_find_payload(const void *page, uint32_t ps, const void *key, uint32_t klen,
			       uint32_t *pos, bool *exact, const uint8_t **p, uint32_t *len,
			       unsigned *flags);

/* Inner nodes: the child id of slot i, or the upper child for i == count. */
int pbox__bt_node_child(const void *page, uint32_t ps, uint32_t i, pbox_pid *child);
/* Inner nodes: the child whose key range holds key, and its slot index (count = upper).
 * key must lie within the node's fences (as for _lower_bound_in). */
int pbox__bt_node_find_child(const void *page, uint32_t ps, const void *key, uint32_t klen,
			     pbox_pid *child, uint32_t *pos);

/* ---- space ------------------------------------------------------------------------------- */

/* Bytes an insert could use after compaction (free gap + dead bytes). 0 on a bad header. */
uint32_t pbox__bt_node_free_bytes(const void *page, uint32_t ps);
/* Bytes of node in use: header, slots, fences, entries (NS - free). */
uint32_t pbox__bt_node_used_bytes(const void *page, uint32_t ps);
/* Bytes a new entry of this key and payload length takes in this node (slot included). */
uint32_t pbox__bt_node_entry_space(const void *page, uint32_t klen, uint32_t plen);
/* True if less than a quarter of the node is in use: a candidate for merging. */
bool pbox__bt_node_underfull(const void *page, uint32_t ps);

/* ---- changing ------------------------------------------------------------------------------ */

/* Insert key with payload at its position. flags: PBOX_BT_SLOT_OVERFLOW (leaf), and
 * PBOX_BT_INSERT_REPLACE to overwrite the payload of an existing key (as _update). An inner
 * payload is the 8-byte little-endian child id. Compacts when dead bytes make it fit.
 * Errors: PBOX_EINVAL (limits, key outside the fences; in an inner node also a key equal to
 * the upper fence, whose child range would be empty), PBOX_EEXIST, PBOX_ENOSPC,
 * PBOX_ECORRUPT. */
int pbox__bt_node_insert(void *page, uint32_t ps, const void *key, uint32_t klen,
			 const void *payload, uint32_t plen, unsigned flags);
/* Remove slot i. */
int pbox__bt_node_remove(void *page, uint32_t ps, uint32_t i);
/* Replace the payload (and flags) of slot i: in place when it is not larger, else in a new
 * heap entry (compacting if needed). PBOX_ENOSPC leaves the node unchanged. */
int pbox__bt_node_update(void *page, uint32_t ps, uint32_t i, const void *payload,
			 uint32_t plen, unsigned flags);
/* Inner nodes: set the upper child. */
int pbox__bt_node_set_upper_child(void *page, uint32_t ps, pbox_pid child);
/* Move every live heap byte to the end of the node: dead bytes become free gap. */
int pbox__bt_node_compact(void *page, uint32_t ps);

/* ---- split and merge ---------------------------------------------------------------------- */

/* Where to split a full node: returns nl, the number of slots the left node keeps.
 * insert_pos is where the pending insert would go (lower_bound); insert_pos >= count means
 * an append at the right end (ascending fill): the node is split at its end (nl = count-1)
 * so the left node stays full. Otherwise, or if the end split is not possible, the split
 * is in the middle by bytes (left holds half of the slot + entry bytes), which is always
 * possible within the limits. Returns a point _split accepts when the node can be split
 * (leaf: count >= 2, inner: count >= 1), else 0. */
uint32_t pbox__bt_node_split_choose(const void *page, uint32_t ps, uint32_t insert_pos);

/* Split left at nl into left and right (a buffer whose node area is overwritten; its page
 * header is not touched). sep (capacity >= PBOX_BT_KEY_MAX(ps)) receives the separator that
 * goes into the parent; afterwards left = (lower, sep], right = (sep, upper].
 *   leaf:  left keeps slots [0, nl), right gets [nl, count); 1 <= nl < count. The separator
 *          is the shortest string s with a <= s < b for a = key(nl-1), b = key(nl). With c
 *          = their common prefix length that is a itself if |a| <= c+1, else b's first c+1
 *          bytes if |b| > c+1 — so at most c+1 bytes — else (|b| = c+1 < |a|) a's first c
 *          bytes and a[c]+1 when b[c] > a[c]+1, else the shortest string >= a starting with
 *          a's first c+1 bytes (a[0..j) + a[j]+1 for the first j > c with a[j] != 0xff,
 *          or a).
 *   inner: the separator key(nl) moves up: left keeps [0, nl) with child(nl) as its upper
 *          child, right gets [nl+1, count) and the old upper child; 0 <= nl < count.
 *          Inner separators are never shortened (only the child's fence bounds them).
 * Both nodes get their prefix recomputed from the new fences. Errors: PBOX_EINVAL (nl),
 * PBOX_ENOSPC (a half would not hold its entries and fences at this nl: only possible
 * when a separator cannot be truncated, e.g. a long key followed by a short one; take
 * the point split_choose gives), PBOX_ECORRUPT. The whole split is planned and checked
 * before anything is written, so on a node that verifies an error leaves left unchanged
 * (right may have been overwritten). */
int pbox__bt_node_split(void *left, void *right, uint32_t ps, uint32_t nl, void *sep,
			uint32_t *sep_len);

/* Whether right's entries fit into left (0) or not (PBOX_ENOSPC); right must be left's
 * right neighbour: same kind, left's upper fence == right's lower fence (else PBOX_EINVAL). */
int pbox__bt_node_merge_check(const void *left, const void *right, uint32_t ps);
/* Merge right into left: left = (left.lower, right.upper] with all entries, prefix
 * recomputed. Inner nodes: the separator between them (left's upper fence) moves down as a
 * slot whose child is left's upper child; left's upper child becomes right's. right is
 * not changed (the caller frees its page). Errors: as _merge_check, -ENOMEM. */
int pbox__bt_node_merge(void *left, const void *right, uint32_t ps);

/* ---- checking ------------------------------------------------------------------------------ */

/* Full self-check of one node: header, slot and heap bounds, heap entries not overlapping,
 * byte accounting, keys strictly ascending and within the fences, heads, hints, prefix,
 * limits, child ids. 0 or PBOX_ECORRUPT (PBOX_EINVAL for a bad page size). Never reads
 * outside the page. */
int pbox__bt_node_verify(const void *page, uint32_t ps);

#endif /* PBOX_BT_NODE_H */
