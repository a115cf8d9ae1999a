/*
 * node_int.h — private to the node layer (node_read.c, node_write.c, node_build.c,
 * node_verify.c): the field offsets of the node format tabled in node.h, the byte access
 * helpers, and the header and slot helpers all four use. The tree layer and the tests use
 * node.h only.
 *
 * Invariants of a valid node (pbox__bt_node_verify, node_verify.c, checks all of them):
 *   N1 header: kind is leaf or inner; only known flag bits; reserved bytes zero;
 *      96 + 12 * count <= heap start <= NS; dead <= NS - heap start.
 *   N2 every fence and entry lies in [heap start, NS); entries of length 0 sit at NS;
 *      no two overlap; fence bytes + entry bytes + dead = NS - heap start.
 *   N3 keys (prefix + suffix) strictly ascend with the slot index and lie in
 *      (lower, upper] — in (lower, upper) in an inner node, so that the upper child's
 *      range is never empty; the finite fences satisfy lower < upper.
 *   N4 prefix = longest common prefix of the fences when both are finite, else 0; it is
 *      read from the first bytes of the lower fence.
 *   N5 each head equals the head of its suffix; the hints equal the sampled heads.
 *   N6 keys are at most PBOX_BT_KEY_MAX(ps) bytes; leaf key + payload at most
 *      PBOX_BT_ENTRY_MAX(ps); inner payloads are 8-byte child ids >= PBOX_BT_NODE_PID_MIN,
 *      and the upper child of an inner node is one too; a leaf's upper child field is 0.
 *   N7 only leaf slots carry PBOX_BT_SLOT_OVERFLOW.
 *
 * Robustness: hdr_load() checks the header fields (N1, fence bounds, prefix <= fence
 * lengths) before anything uses them and slot_load() checks a slot's entry bounds and key
 * length, so no path reads or writes outside the page whatever its bytes. Every page byte
 * is loaded through the ld* helpers below (racy.h's race-tolerant loads), which is what
 * lets optimistic readers run the read path (node_read.c) on live pages.
 *
 * The helpers are static: each node_*.c gets its own copy, as the single node.c had them.
 * The small ones are static inline (unused ones then cost nothing); hdr_load, slot_load and
 * cmp_page stay plain static, every node file uses them, so the compiler keeps them out of
 * line where it did before the split (the read path's code is unchanged by it).
  *
 * Corruption: the node functions are checks on bytes (they also run on racy copies, in
 * fuzzing and in verification): they return plain PBOX_ECORRUPT. The tree-layer code that
 * acts on a verdict records where (PBOX_CORRUPT, pbox/status.h).
 */
#ifndef PBOX_BT_NODE_INT_H
#define PBOX_BT_NODE_INT_H

#include "node.h"
#include "racy.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

PBOX_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
		   "btree node: the format is little-endian and read with plain loads");

/* Header fields (node-relative offsets; table in node.h). */
#define H_KIND 0u
#define H_FLAGS 1u
#define H_COUNT 2u
#define H_HEAP 4u
#define H_DEAD 6u
#define H_LO_OFF 8u
#define H_LO_LEN 10u
#define H_HI_OFF 12u
#define H_HI_LEN 14u
#define H_PREFIX 16u
#define H_RSV 18u /* 6 bytes */
#define H_UPPER 24u
#define H_HINTS 32u
/* Slot fields. */
#define S_HEAD 0u
#define S_OFF 4u
#define S_KLEN 6u
#define S_PLEN 8u
#define S_FLAGS 10u

#define F_LO_INF 0x1u
#define F_HI_INF 0x2u

#define HDR PBOX_BT_NODE_HDR
#define SLOT PBOX_BT_NODE_SLOT
#define HINTS PBOX_BT_NODE_HINTS

PBOX_STATIC_ASSERT(H_HINTS + 4u * HINTS == HDR, "btree node: hints end the header");
PBOX_STATIC_ASSERT(H_RSV + 6u == H_UPPER && H_UPPER % 8u == 0,
		   "btree node: reserved bytes fill up to the 8-byte upper child");
PBOX_STATIC_ASSERT(S_FLAGS + 2u == SLOT, "btree node: slot fields fill the slot");

/* ---- byte access -------------------------------------------------------------------------
 * The read path touches page bytes only through ld8..ld64, ldcmp and ldcopy, which are the
 * race-tolerant loads of racy.h: optimistic readers run this code on live pages that a
 * writer may be changing (descend.c, R1), and every value loaded is pinned, then checked.
 * Stores (st16..st64, memcpy, memmove) are for writers, who hold the page exclusively. */

#define ld8 rd8
#define ld16 rd16
#define ld32 rd32
#define ld64 rd64
#define ldcmp rdcmp
#define ldcopy rdcopy

static inline void st16(uint8_t *p, uint32_t v)
{
	uint16_t x = (uint16_t)v;
	memcpy(p, &x, sizeof(x));
}

static inline void st32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void st64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline const uint8_t *cnode(const void *page)
{
	return (const uint8_t *)page + PBOX_PAGE_HDR;
}

static inline uint8_t *wnode(void *page)
{
	return (uint8_t *)page + PBOX_PAGE_HDR;
}

static inline uint32_t slot_pos(uint32_t i)
{
	return HDR + SLOT * i;
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Head of a suffix in caller memory. */
static inline uint32_t head_mem(const uint8_t *s, uint32_t len)
{
	if (len >= 4) {
		uint32_t v;
		memcpy(&v, s, 4);
		return __builtin_bswap32(v);
	}
	uint32_t h = 0;
	for (uint32_t i = 0; i < 4; i++)
		h = (h << 8) | (i < len ? s[i] : 0u);
	return h;
}

/* Head of a suffix in the page. */
static inline uint32_t head_page(const uint8_t *s, uint32_t len)
{
	if (len >= 4)
		return __builtin_bswap32(ld32(s));
	uint32_t h = 0;
	for (uint32_t i = 0; i < 4; i++)
		h = (h << 8) | (i < len ? ld8(s + i) : 0u);
	return h;
}

/* Sign of (a, alen) - (b, blen) for caller memory: memcmp, then the shorter is smaller. */
static inline int cmp_mem(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
	uint32_t m = min_u32(alen, blen);
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/* The same with a in the page. */
static int cmp_page(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
	int c = ldcmp(a, b, min_u32(alen, blen));
	if (c)
		return c < 0 ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/* Longest common prefix of a (page bytes) and b. */
static inline uint32_t lcp_page(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
	uint32_t m = min_u32(alen, blen), i = 0;
	while (i < m && ld8(a + i) == b[i])
		i++;
	return i;
}

/* ---- header and slots ------------------------------------------------------------------- */

typedef struct hdr {
	uint32_t ns; /* node size: ps - PBOX_PAGE_HDR */
	uint32_t kind, flags, count, heap, dead;
	uint32_t lo_off, lo_len, hi_off, hi_len, prefix;
	uint32_t key_max;
} hdr;

typedef struct slot {
	uint32_t head, off, klen, plen, flags;
} slot;

static inline bool lo_inf(const hdr *h)
{
	return (h->flags & F_LO_INF) != 0;
}

static inline bool hi_inf(const hdr *h)
{
	return (h->flags & F_HI_INF) != 0;
}

static inline uint32_t slot_end(const hdr *h)
{
	return slot_pos(h->count);
}

/* A fence field pair is sane: infinite = (0, 0); finite = within [heap, ns), length within
 * the key limit, a length-0 fence at ns. */
static inline bool fence_ok(const hdr *h, bool inf, uint32_t off, uint32_t len)
{
	if (inf)
		return off == 0 && len == 0;
	if (len == 0)
		return off == h->ns;
	return len <= h->key_max && off >= h->heap && off + len <= h->ns;
}

/* Read and sanity-check the header (N1, fence bounds, prefix within the fences). */
static int hdr_load(const void *page, uint32_t ps, hdr *h)
{
	if (!page || !pbox__bt_node_page_size_ok(ps))
		return PBOX_EINVAL;
	const uint8_t *n = cnode(page);
	h->ns = ps - PBOX_PAGE_HDR;
	h->key_max = PBOX_BT_KEY_MAX(ps);
	h->kind = ld8(n + H_KIND);
	h->flags = ld8(n + H_FLAGS);
	h->count = ld16(n + H_COUNT);
	h->heap = ld16(n + H_HEAP);
	h->dead = ld16(n + H_DEAD);
	h->lo_off = ld16(n + H_LO_OFF);
	h->lo_len = ld16(n + H_LO_LEN);
	h->hi_off = ld16(n + H_HI_OFF);
	h->hi_len = ld16(n + H_HI_LEN);
	h->prefix = ld16(n + H_PREFIX);
	if (h->kind != PBOX_BT_NODE_LEAF && h->kind != PBOX_BT_NODE_INNER)
		return PBOX_ECORRUPT;
	if (h->flags & ~(F_LO_INF | F_HI_INF))
		return PBOX_ECORRUPT;
	if (h->count > (h->ns - HDR) / SLOT || h->heap < slot_end(h) || h->heap > h->ns ||
	    h->dead > h->ns - h->heap)
		return PBOX_ECORRUPT;
	if (!fence_ok(h, lo_inf(h), h->lo_off, h->lo_len) ||
	    !fence_ok(h, hi_inf(h), h->hi_off, h->hi_len))
		return PBOX_ECORRUPT;
	if (lo_inf(h) || hi_inf(h)) {
		if (h->prefix != 0)
			return PBOX_ECORRUPT;
	} else if (h->prefix > h->lo_len || h->prefix > h->hi_len) {
		return PBOX_ECORRUPT;
	}
	return 0;
}

static inline void hdr_store(uint8_t *n, const hdr *h)
{
	n[H_KIND] = (uint8_t)h->kind;
	n[H_FLAGS] = (uint8_t)h->flags;
	st16(n + H_COUNT, h->count);
	st16(n + H_HEAP, h->heap);
	st16(n + H_DEAD, h->dead);
	st16(n + H_LO_OFF, h->lo_off);
	st16(n + H_LO_LEN, h->lo_len);
	st16(n + H_HI_OFF, h->hi_off);
	st16(n + H_HI_LEN, h->hi_len);
	st16(n + H_PREFIX, h->prefix);
}

/* Read slot i (i < count) and check its entry bounds and key length. */
static int slot_load(const uint8_t *n, const hdr *h, uint32_t i, slot *s)
{
	const uint8_t *p = n + slot_pos(i);
	s->head = ld32(p + S_HEAD);
	s->off = ld16(p + S_OFF);
	s->klen = ld16(p + S_KLEN);
	s->plen = ld16(p + S_PLEN);
	s->flags = ld16(p + S_FLAGS);
	uint32_t len = s->klen + s->plen;
	if (len == 0 ? s->off != h->ns : (s->off < h->heap || s->off + len > h->ns))
		return PBOX_ECORRUPT;
	if (h->prefix + s->klen > h->key_max)
		return PBOX_ECORRUPT;
	return 0;
}

static inline void slot_store(uint8_t *n, uint32_t i, const slot *s)
{
	uint8_t *p = n + slot_pos(i);
	st32(p + S_HEAD, s->head);
	st16(p + S_OFF, s->off);
	st16(p + S_KLEN, s->klen);
	st16(p + S_PLEN, s->plen);
	st16(p + S_FLAGS, s->flags);
}

/* The prefix bytes (the start of the lower fence; any pointer when the prefix is empty). */
static inline const uint8_t *prefix_bytes(const uint8_t *n, const hdr *h)
{
	return n + h->lo_off;
}

static inline void hints_rebuild(uint8_t *n, uint32_t count)
{
	uint32_t d = count / (HINTS + 1);
	for (uint32_t i = 0; i < HINTS; i++)
		st32(n + H_HINTS + 4 * i, d ? ld32(n + slot_pos(d * (i + 1)) + S_HEAD) : 0);
}

/* Compare key (caller memory) with a finite fence. */
static inline int cmp_key_fence(const uint8_t *n, const uint8_t *key, uint32_t klen, uint32_t off,
				uint32_t len)
{
	return -cmp_page(n + off, len, key, klen);
}

/* lower < key <= upper; for an inner node key < upper (a separator equal to the upper
 * fence would leave the upper child an empty range). */
static inline bool in_fences(const uint8_t *n, const hdr *h, const uint8_t *key, uint32_t klen)
{
	if (!lo_inf(h) && cmp_key_fence(n, key, klen, h->lo_off, h->lo_len) <= 0)
		return false;
	if (!hi_inf(h)) {
		int c = cmp_key_fence(n, key, klen, h->hi_off, h->hi_len);
		if (c > 0 || (c == 0 && h->kind == PBOX_BT_NODE_INNER))
			return false;
	}
	return true;
}
/* A child page id a node may hold (N6). */
static inline bool pid_ok(pbox_pid pid)
{
	return pid >= PBOX_BT_NODE_PID_MIN && pid != PBOX_PID_NONE;
}

/* Take len bytes from the top of the free gap (caller checked the room). */
static inline uint32_t heap_alloc(hdr *h, uint32_t len)
{
	if (len == 0)
		return h->ns;
	h->heap -= len;
	return h->heap;
}

/* ---- shared functions (out of line, as they were in node.c) ------------------------------ */

/* node_read.c: lower bound of key among the slots of a node whose header h loaded; robust on
 * arbitrary bytes (every offset checked). in_range: the caller knows lower < key <= upper,
 * so the prefix is not compared. */
int pbox__bt_node_search(const uint8_t *n, const hdr *h, const uint8_t *key, uint32_t klen,
			 bool in_range, uint32_t *pos, bool *exact);
/* node_write.c: compact the heap of n in place; h is updated and stored. */
int pbox__bt_node_compact_heap(uint8_t *n, hdr *h);
/* node_write.c: make the node area of page an empty node of kind with these fences. */
int pbox__bt_node_init(void *page, uint32_t ps, uint32_t kind, const void *lower,
		       uint32_t lower_len, const void *upper, uint32_t upper_len,
		       pbox_pid upper_child);

#endif /* PBOX_BT_NODE_INT_H */
