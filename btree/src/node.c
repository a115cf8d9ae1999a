/*
 * node.c — the B+tree node: a slotted page with fence keys, prefix truncation, key heads
 * and search hints (format, glossary and limits in node.h). Single-threaded: the caller
 * holds the page (exclusively to change it).
 *
 * Invariants of a valid node (pbox__bt_node_verify checks all of them):
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
 * length, so no path reads or writes outside the page whatever its bytes. The read path
 * (search, key, payload, verify) loads page bytes only through the ld* helpers below; see
 * node.h for how they become racy-read helpers for optimistic readers.
 *
 * Space management: inserts take slot space from the bottom of the free gap and heap space
 * from its top. Removals and relocations add dead bytes (or shrink the heap when the entry
 * is the lowest one); when the gap is too small but gap + dead is enough, compact() moves
 * every live piece to the end of the node in place (no scratch memory): it sorts the slots
 * by heap offset (each slot's head field temporarily holds its index), slides the pieces
 * up in descending offset order (a piece never lands on a piece not yet moved, because
 * the pieces above it fit between it and the node end), restores slot order by following
 * the stored indices and recomputes the heads. Split shrinks the left node in place too;
 * merge builds the result in a scratch page, because a shorter common prefix makes every
 * left suffix longer.
 */
#include "node.h"
#include "racy.h"

#include <pbox/alloc.h>

#include <errno.h>
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
 * writer may be changing (tree.c, R1), and every value loaded is pinned, then checked. */

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
static uint32_t head_mem(const uint8_t *s, uint32_t len)
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
static uint32_t head_page(const uint8_t *s, uint32_t len)
{
	if (len >= 4)
		return __builtin_bswap32(ld32(s));
	uint32_t h = 0;
	for (uint32_t i = 0; i < 4; i++)
		h = (h << 8) | (i < len ? ld8(s + i) : 0u);
	return h;
}

/* Sign of (a, alen) - (b, blen) for caller memory: memcmp, then the shorter is smaller. */
static int cmp_mem(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
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
static uint32_t lcp_page(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
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
static bool fence_ok(const hdr *h, bool inf, uint32_t off, uint32_t len)
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

static void hdr_store(uint8_t *n, const hdr *h)
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

static void slot_store(uint8_t *n, uint32_t i, const slot *s)
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

static void hints_rebuild(uint8_t *n, uint32_t count)
{
	uint32_t d = count / (HINTS + 1);
	for (uint32_t i = 0; i < HINTS; i++)
		st32(n + H_HINTS + 4 * i, d ? ld32(n + slot_pos(d * (i + 1)) + S_HEAD) : 0);
}

/* Compare key (caller memory) with a finite fence. */
static int cmp_key_fence(const uint8_t *n, const uint8_t *key, uint32_t klen, uint32_t off,
			 uint32_t len)
{
	return -cmp_page(n + off, len, key, klen);
}

/* lower < key <= upper; for an inner node key < upper (a separator equal to the upper
 * fence would leave the upper child an empty range). */
static bool in_fences(const uint8_t *n, const hdr *h, const uint8_t *key, uint32_t klen)
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

/* ---- search -------------------------------------------------------------------------------- */

/* Lower bound of key among the slots; robust on arbitrary bytes (every offset checked). */
static int search(const uint8_t *n, const hdr *h, const uint8_t *key, uint32_t klen,
		  bool in_range, uint32_t *pos, bool *exact)
{
	uint32_t p = h->prefix;
	if (p && in_range) {
		/* the caller knows lower < key <= upper, so key starts with the prefix: skip
		 * comparing it (the fence bytes are usually a cache line of their own). A key
		 * too short for that comes only from a racing writer's bytes. */
		if (klen < p) {
			*pos = 0;
			*exact = false;
			return 0;
		}
	} else if (p) {
		int c = cmp_page(prefix_bytes(n, h), p, key, min_u32(klen, p));
		if (c > 0 || (c == 0 && klen < p)) { /* key below every key with this prefix */
			*pos = 0;
			*exact = false;
			return 0;
		}
		if (c < 0) { /* above */
			*pos = h->count;
			*exact = false;
			return 0;
		}
	}
	const uint8_t *sfx = key + p;
	uint32_t slen = klen - p;
	uint32_t kh = head_mem(sfx, slen);
	uint32_t lo = 0, hi = h->count;

	uint32_t d = h->count / (HINTS + 1);
	if (d) {
		/* slot d*(i+1) has head hints[i]; heads ascend weakly with the keys, so the
		 * hints below kh come first (i of them), then those equal to it (up to j).
		 * Counted without branches on one private copy of the hint line. */
		uint32_t hint[HINTS], i = 0, j = 0;
		ldcopy(hint, n + H_HINTS, sizeof(hint));
		for (uint32_t x = 0; x < HINTS; x++) {
			i += hint[x] < kh;
			j += hint[x] <= kh;
		}
		lo = i ? d * i + 1 : 0; /* slot d*i is below key */
		if (j < HINTS)
			hi = d * (j + 1); /* slot d*(j+1) is above key */
		if (lo > hi)  /* only with inconsistent hints */
			lo = hi;
	}
	/* the binary search's probes depend on each other; load the few lines of slots it
	 * can touch in parallel instead (node bytes only: hi <= count) */
	if (hi - lo <= 32) {
		uintptr_t a = (uintptr_t)(n + slot_pos(lo)) & ~(uintptr_t)63;
		uintptr_t b = (uintptr_t)(n + slot_pos(hi));
		for (; a < b; a += 64)
			__builtin_prefetch((const void *)a);
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *sp = n + slot_pos(mid);
		uint32_t sh = ld32(sp + S_HEAD);
		int c;
		if (sh != kh) {
			c = sh < kh ? -1 : 1;
		} else {
			uint32_t off = ld16(sp + S_OFF), kl = ld16(sp + S_KLEN);
			if (kl != 0 && (off < h->heap || off + kl > h->ns))
				return PBOX_ECORRUPT;
			/* equal heads: the first min(4, lengths) bytes are equal */
			uint32_t skip = min_u32(4, min_u32(kl, slen));
			c = cmp_page(n + off + skip, kl - skip, sfx + skip, slen - skip);
		}
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			*pos = mid;
			*exact = true;
			return 0;
		}
	}
	*pos = lo;
	*exact = false;
	return 0;
}

static int lower_bound(const void *page, uint32_t ps, const void *key, uint32_t klen,
		       bool in_range, uint32_t *pos, bool *exact)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (!key && klen)
		return PBOX_EINVAL;
	return search(cnode(page), &h, key, klen, in_range, pos, exact);
}

int pbox__bt_node_lower_bound(const void *page, uint32_t ps, const void *key, uint32_t klen,
			      uint32_t *pos, bool *exact)
{
	return lower_bound(page, ps, key, klen, false, pos, exact);
}

int pbox__bt_node_lower_bound_in(const void *page, uint32_t ps, const void *key,
				 uint32_t klen, uint32_t *pos, bool *exact)
{
	return lower_bound(page, ps, key, klen, true, pos, exact);
}

/* ---- reading --------------------------------------------------------------------------------- */

bool pbox__bt_node_is_leaf(const void *page)
{
	return ld8(cnode(page) + H_KIND) == PBOX_BT_NODE_LEAF;
}

uint32_t pbox__bt_node_count(const void *page)
{
	return ld16(cnode(page) + H_COUNT);
}

uint32_t pbox__bt_node_prefix_len(const void *page)
{
	return ld16(cnode(page) + H_PREFIX);
}

int pbox__bt_node_fences(const void *page, uint32_t ps, const uint8_t **lower,
			 uint32_t *lower_len, const uint8_t **upper, uint32_t *upper_len)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	const uint8_t *n = cnode(page);
	*lower = lo_inf(&h) ? NULL : n + h.lo_off;
	*lower_len = h.lo_len;
	*upper = hi_inf(&h) ? NULL : n + h.hi_off;
	*upper_len = h.hi_len;
	return 0;
}

int pbox__bt_node_key(const void *page, uint32_t ps, uint32_t i, void *buf, uint32_t cap,
		      uint32_t *len)
{
	hdr h;
	slot s;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (i >= h.count)
		return PBOX_EINVAL;
	const uint8_t *n = cnode(page);
	if ((rc = slot_load(n, &h, i, &s)))
		return rc;
	uint32_t total = h.prefix + s.klen;
	if (cap < total)
		return PBOX_ETOOSMALL;
	ldcopy(buf, prefix_bytes(n, &h), h.prefix);
	ldcopy((uint8_t *)buf + h.prefix, n + s.off, s.klen);
	*len = total;
	return 0;
}

int pbox__bt_node_payload(const void *page, uint32_t ps, uint32_t i, const uint8_t **p,
			  uint32_t *len, unsigned *flags)
{
	hdr h;
	slot s;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (i >= h.count)
		return PBOX_EINVAL;
	const uint8_t *n = cnode(page);
	if ((rc = slot_load(n, &h, i, &s)))
		return rc;
	*p = n + s.off + s.klen;
	*len = s.plen;
	*flags = s.flags;
	return 0;
}

static bool pid_ok(pbox_pid pid)
{
	return pid >= PBOX_BT_NODE_PID_MIN && pid != PBOX_PID_NONE;
}

/* Child i (i == count: the upper child) of an inner node whose header is h. */
static int child_at(const uint8_t *n, const hdr *h, uint32_t i, pbox_pid *child)
{
	slot s;
	pbox_pid pid;
	if (i == h->count) {
		pid = ld64(n + H_UPPER);
	} else {
		int rc = slot_load(n, h, i, &s);
		if (rc)
			return rc;
		if (s.plen != 8)
			return PBOX_ECORRUPT;
		pid = ld64(n + s.off + s.klen);
	}
	if (!pid_ok(pid))
		return PBOX_ECORRUPT;
	*child = pid;
	return 0;
}

int pbox__bt_node_child(const void *page, uint32_t ps, uint32_t i, pbox_pid *child)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (h.kind != PBOX_BT_NODE_INNER || i > h.count)
		return PBOX_EINVAL;
	return child_at(cnode(page), &h, i, child);
}

int pbox__bt_node_find_child(const void *page, uint32_t ps, const void *key, uint32_t klen,
			     pbox_pid *child, uint32_t *pos)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (h.kind != PBOX_BT_NODE_INNER || (!key && klen))
		return PBOX_EINVAL;
	const uint8_t *n = cnode(page);
	uint32_t p;
	bool exact;
	if ((rc = search(n, &h, key, klen, true, &p, &exact)) || (rc = child_at(n, &h, p, child)))
		return rc;
	*pos = p;
	return 0;
}

int pbox__bt_node_find_payload(const void *page, uint32_t ps, const void *key, uint32_t klen,
			       uint32_t *pos, bool *exact, const uint8_t **p, uint32_t *len,
			       unsigned *flags)
{
	hdr h;
	slot s;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (!key && klen)
		return PBOX_EINVAL;
	const uint8_t *n = cnode(page);
	if ((rc = search(n, &h, key, klen, true, pos, exact)) || !*exact)
		return rc;
	if ((rc = slot_load(n, &h, *pos, &s)))
		return rc;
	*p = n + s.off + s.klen;
	*len = s.plen;
	*flags = s.flags;
	return 0;
}

/* ---- space ----------------------------------------------------------------------------------- */

uint32_t pbox__bt_node_free_bytes(const void *page, uint32_t ps)
{
	hdr h;
	if (hdr_load(page, ps, &h))
		return 0;
	return h.heap - slot_end(&h) + h.dead;
}

uint32_t pbox__bt_node_used_bytes(const void *page, uint32_t ps)
{
	hdr h;
	if (hdr_load(page, ps, &h))
		return 0;
	return h.ns - (h.heap - slot_end(&h) + h.dead);
}

uint32_t pbox__bt_node_entry_space(const void *page, uint32_t klen, uint32_t plen)
{
	uint32_t p = ld16(cnode(page) + H_PREFIX);
	return SLOT + (klen - min_u32(p, klen)) + plen;
}

bool pbox__bt_node_underfull(const void *page, uint32_t ps)
{
	hdr h;
	if (hdr_load(page, ps, &h))
		return false;
	return pbox__bt_node_used_bytes(page, ps) < h.ns / 4;
}

/* ---- compaction -------------------------------------------------------------------------------- */

static inline uint32_t soff(const uint8_t *n, uint32_t i)
{
	return ld16(n + slot_pos(i) + S_OFF);
}

static void sswap(uint8_t *n, uint32_t a, uint32_t b)
{
	uint8_t t[SLOT];
	memcpy(t, n + slot_pos(a), SLOT);
	memcpy(n + slot_pos(a), n + slot_pos(b), SLOT);
	memcpy(n + slot_pos(b), t, SLOT);
}

static void sift_down(uint8_t *n, uint32_t root, uint32_t end)
{
	for (;;) {
		uint32_t c = 2 * root + 1;
		if (c >= end)
			return;
		if (c + 1 < end && soff(n, c + 1) > soff(n, c))
			c++;
		if (soff(n, root) >= soff(n, c))
			return;
		sswap(n, root, c);
		root = c;
	}
}

/* Move one heap piece to just below the cursor; returns its new offset. */
static uint32_t slide(uint8_t *n, uint32_t *cursor, uint32_t off, uint32_t len, uint32_t ns)
{
	if (len == 0)
		return ns;
	*cursor -= len;
	if (*cursor != off)
		memmove(n + *cursor, n + off, len);
	return *cursor;
}

/* Compact the heap of n in place (see the file comment); h is updated and stored. */
static int compact(uint8_t *n, hdr *h)
{
	uint32_t cnt = h->count;
	uint64_t live = (uint64_t)h->lo_len + h->hi_len;
	for (uint32_t i = 0; i < cnt; i++) {
		slot s;
		int rc = slot_load(n, h, i, &s);
		if (rc)
			return rc;
		live += s.klen + s.plen;
	}
	/* With overlapping pieces (corruption) the total could exceed the heap: the cursor
	 * must never pass below the slot array. */
	if (live > h->ns - slot_end(h))
		return PBOX_ECORRUPT;

	for (uint32_t i = 0; i < cnt; i++)
		st32(n + slot_pos(i) + S_HEAD, i);
	for (uint32_t i = cnt / 2; i-- > 0;)
		sift_down(n, i, cnt);
	for (uint32_t end = cnt; end > 1; end--) {
		sswap(n, 0, end - 1);
		sift_down(n, 0, end - 1);
	}

	/* The finite fences as pieces, highest offset first. */
	uint32_t *foff[2], flen[2], fo[2], nf = 0;
	if (!lo_inf(h)) {
		foff[nf] = &h->lo_off;
		flen[nf] = h->lo_len;
		fo[nf++] = h->lo_off;
	}
	if (!hi_inf(h)) {
		foff[nf] = &h->hi_off;
		flen[nf] = h->hi_len;
		fo[nf++] = h->hi_off;
	}
	if (nf == 2 && fo[1] > fo[0]) {
		uint32_t *tp = foff[0];
		foff[0] = foff[1];
		foff[1] = tp;
		uint32_t t = flen[0];
		flen[0] = flen[1];
		flen[1] = t;
		t = fo[0];
		fo[0] = fo[1];
		fo[1] = t;
	}

	uint32_t cursor = h->ns, fi = 0, si = cnt;
	while (si > 0) {
		uint8_t *sp = n + slot_pos(si - 1);
		uint32_t so = ld16(sp + S_OFF);
		if (fi < nf && fo[fi] >= so) {
			*foff[fi] = slide(n, &cursor, fo[fi], flen[fi], h->ns);
			fi++;
			continue;
		}
		uint32_t sl = ld16(sp + S_KLEN) + (uint32_t)ld16(sp + S_PLEN);
		st16(sp + S_OFF, slide(n, &cursor, so, sl, h->ns));
		si--;
	}
	for (; fi < nf; fi++)
		*foff[fi] = slide(n, &cursor, fo[fi], flen[fi], h->ns);

	/* Back to key order: slot i's head field names its original index. */
	for (uint32_t i = 0; i < cnt; i++) {
		uint32_t t;
		while ((t = ld32(n + slot_pos(i) + S_HEAD)) != i)
			sswap(n, i, t);
	}
	for (uint32_t i = 0; i < cnt; i++) {
		uint8_t *sp = n + slot_pos(i);
		st32(sp + S_HEAD, head_page(n + ld16(sp + S_OFF), ld16(sp + S_KLEN)));
	}
	h->heap = cursor;
	h->dead = 0;
	hdr_store(n, h);
	hints_rebuild(n, cnt);
	return 0;
}

int pbox__bt_node_compact(void *page, uint32_t ps)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	return compact(wnode(page), &h);
}

/* ---- init ------------------------------------------------------------------------------------- */

/* Take len bytes from the top of the free gap (caller checked the room). */
static uint32_t heap_alloc(hdr *h, uint32_t len)
{
	if (len == 0)
		return h->ns;
	h->heap -= len;
	return h->heap;
}

static int node_init(void *page, uint32_t ps, uint32_t kind, const void *lower,
		     uint32_t lower_len, const void *upper, uint32_t upper_len, pbox_pid upper_child)
{
	if (!page || !pbox__bt_node_page_size_ok(ps))
		return PBOX_EINVAL;
	uint32_t kmax = PBOX_BT_KEY_MAX(ps);
	if ((lower && lower_len > kmax) || (upper && upper_len > kmax))
		return PBOX_EINVAL;
	if (lower && upper && cmp_mem(lower, lower_len, upper, upper_len) >= 0)
		return PBOX_EINVAL;
	uint8_t *n = wnode(page);
	hdr h = { .ns = ps - PBOX_PAGE_HDR, .kind = kind, .key_max = kmax };
	h.heap = h.ns;
	memset(n, 0, HDR);
	if (upper) {
		h.hi_len = upper_len;
		h.hi_off = heap_alloc(&h, upper_len);
		memcpy(n + h.hi_off, upper, upper_len);
	} else {
		h.flags |= F_HI_INF;
	}
	if (lower) {
		h.lo_len = lower_len;
		h.lo_off = heap_alloc(&h, lower_len);
		memcpy(n + h.lo_off, lower, lower_len);
	} else {
		h.flags |= F_LO_INF;
	}
	if (lower && upper) {
		const uint8_t *a = lower, *b = upper;
		uint32_t m = min_u32(lower_len, upper_len), i = 0;
		while (i < m && a[i] == b[i])
			i++;
		h.prefix = i;
	}
	hdr_store(n, &h);
	st64(n + H_UPPER, upper_child);
	return 0;
}

int pbox__bt_node_init_leaf(void *page, uint32_t ps, const void *lower, uint32_t lower_len,
			    const void *upper, uint32_t upper_len)
{
	return node_init(page, ps, PBOX_BT_NODE_LEAF, lower, lower_len, upper, upper_len, 0);
}

int pbox__bt_node_init_inner(void *page, uint32_t ps, const void *lower, uint32_t lower_len,
			     const void *upper, uint32_t upper_len, pbox_pid upper_child)
{
	if (!pid_ok(upper_child))
		return PBOX_EINVAL;
	return node_init(page, ps, PBOX_BT_NODE_INNER, lower, lower_len, upper, upper_len,
			 upper_child);
}

/* ---- changing ---------------------------------------------------------------------------------- */

/* Check payload length and flags against the node kind and the limits. */
static int payload_ok(const hdr *h, uint32_t klen, uint32_t plen, unsigned sflags)
{
	if (h->kind == PBOX_BT_NODE_INNER)
		return plen == 8 && sflags == 0 ? 0 : PBOX_EINVAL;
	if (sflags & ~PBOX_BT_SLOT_OVERFLOW)
		return PBOX_EINVAL;
	uint32_t ps = h->ns + PBOX_PAGE_HDR;
	return klen <= PBOX_BT_ENTRY_MAX(ps) && plen <= PBOX_BT_ENTRY_MAX(ps) - klen ? 0
										       : PBOX_EINVAL;
}

static int update_slot(uint8_t *n, hdr *h, uint32_t i, const uint8_t *payload, uint32_t plen,
		       unsigned sflags)
{
	slot s;
	int rc = slot_load(n, h, i, &s);
	if (rc)
		return rc;
	if ((rc = payload_ok(h, h->prefix + s.klen, plen, sflags)))
		return rc;
	uint32_t old = s.klen + s.plen, neu = s.klen + plen;
	if (plen <= s.plen) { /* in place; the tail becomes dead */
		if (plen)
			memcpy(n + s.off + s.klen, payload, plen);
		h->dead += s.plen - plen;
		if (neu == 0)
			s.off = h->ns;
		s.plen = plen;
		s.flags = sflags;
		slot_store(n, i, &s);
		hdr_store(n, h);
		return 0;
	}
	uint32_t gap = h->heap - slot_end(h);
	if (gap < neu) {
		if (gap + h->dead + old < neu)
			return PBOX_ENOSPC;
		/* Free the old entry first (keeping its suffix aside), then compact. */
		uint8_t kbuf[PBOX_BT_KEY_MAX_ANY];
		memcpy(kbuf, n + s.off, s.klen);
		slot z = s;
		z.off = h->ns;
		z.klen = 0;
		z.plen = 0;
		slot_store(n, i, &z);
		h->dead += old;
		if ((rc = compact(n, h)))
			return rc;
		s.off = heap_alloc(h, neu);
		memcpy(n + s.off, kbuf, s.klen);
	} else {
		uint32_t noff = heap_alloc(h, neu);
		memmove(n + noff, n + s.off, s.klen);
		h->dead += old;
		s.off = noff;
	}
	memcpy(n + s.off + s.klen, payload, plen);
	s.plen = plen;
	s.flags = sflags;
	s.head = head_page(n + s.off, s.klen);
	slot_store(n, i, &s);
	hdr_store(n, h);
	hints_rebuild(n, h->count);
	return 0;
}

int pbox__bt_node_update(void *page, uint32_t ps, uint32_t i, const void *payload,
			 uint32_t plen, unsigned flags)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (i >= h.count || (!payload && plen))
		return PBOX_EINVAL;
	return update_slot(wnode(page), &h, i, payload, plen, flags);
}

int pbox__bt_node_insert(void *page, uint32_t ps, const void *key, uint32_t klen,
			 const void *payload, uint32_t plen, unsigned flags)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if ((!key && klen) || (!payload && plen) ||
	    (flags & ~(PBOX_BT_SLOT_OVERFLOW | PBOX_BT_INSERT_REPLACE)))
		return PBOX_EINVAL;
	unsigned sflags = flags & PBOX_BT_SLOT_OVERFLOW;
	if (klen > h.key_max)
		return PBOX_EINVAL;
	if ((rc = payload_ok(&h, klen, plen, sflags)))
		return rc;
	uint8_t *n = wnode(page);
	if (!in_fences(n, &h, key, klen))
		return PBOX_EINVAL;
	/* Keys inside the fences carry the prefix (N4); one that does not means a bad node. */
	if (klen < h.prefix || ldcmp(prefix_bytes(n, &h), key, h.prefix) != 0)
		return PBOX_ECORRUPT;
	uint32_t pos;
	bool exact;
	if ((rc = search(n, &h, key, klen, true, &pos, &exact)))
		return rc;
	if (exact) {
		if (!(flags & PBOX_BT_INSERT_REPLACE))
			return PBOX_EEXIST;
		return update_slot(n, &h, pos, payload, plen, sflags);
	}
	uint32_t slen = klen - h.prefix, elen = slen + plen, need = SLOT + elen;
	uint32_t gap = h.heap - slot_end(&h);
	if (gap < need) {
		if (gap + h.dead < need)
			return PBOX_ENOSPC;
		if ((rc = compact(n, &h)))
			return rc;
	}
	slot s = { .klen = slen, .plen = plen, .flags = sflags };
	s.off = heap_alloc(&h, elen);
	memcpy(n + s.off, (const uint8_t *)key + h.prefix, slen);
	if (plen)
		memcpy(n + s.off + slen, payload, plen);
	s.head = head_mem((const uint8_t *)key + h.prefix, slen);
	memmove(n + slot_pos(pos + 1), n + slot_pos(pos), (h.count - pos) * SLOT);
	slot_store(n, pos, &s);
	h.count++;
	hdr_store(n, &h);
	hints_rebuild(n, h.count);
	return 0;
}

int pbox__bt_node_remove(void *page, uint32_t ps, uint32_t i)
{
	hdr h;
	slot s;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (i >= h.count)
		return PBOX_EINVAL;
	uint8_t *n = wnode(page);
	if ((rc = slot_load(n, &h, i, &s)))
		return rc;
	uint32_t len = s.klen + s.plen;
	if (len && s.off == h.heap)
		h.heap += len; /* the lowest piece: give it back to the gap */
	else
		h.dead += len;
	memmove(n + slot_pos(i), n + slot_pos(i + 1), (h.count - i - 1) * SLOT);
	h.count--;
	hdr_store(n, &h);
	hints_rebuild(n, h.count);
	return 0;
}

int pbox__bt_node_set_upper_child(void *page, uint32_t ps, pbox_pid child)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	if (h.kind != PBOX_BT_NODE_INNER || !pid_ok(child))
		return PBOX_EINVAL;
	st64(wnode(page) + H_UPPER, child);
	return 0;
}

/* ---- building (split, merge) ------------------------------------------------------------------- */

/* Append an entry after the last slot of a node being built (keys arrive in order). The key
 * is pre ++ sfx; the node's prefix is dropped from its front. */
static int append(uint8_t *n, hdr *h, const uint8_t *pre, uint32_t prelen, const uint8_t *sfx,
		  uint32_t sfxlen, const uint8_t *pl, uint32_t plen, uint32_t sflags)
{
	uint32_t p = h->prefix, a_len, b_len;
	const uint8_t *a, *b;
	if (p <= prelen) {
		a = pre + p;
		a_len = prelen - p;
		b = sfx;
		b_len = sfxlen;
	} else {
		if (p - prelen > sfxlen)
			return PBOX_ECORRUPT;
		a = NULL;
		a_len = 0;
		b = sfx + (p - prelen);
		b_len = sfxlen - (p - prelen);
	}
	uint32_t klen = a_len + b_len, elen = klen + plen;
	if (h->heap - slot_end(h) < SLOT + elen || h->count >= UINT16_MAX)
		return PBOX_ENOSPC;
	slot s = { .klen = klen, .plen = plen, .flags = sflags };
	s.off = heap_alloc(h, elen);
	uint8_t *e = n + s.off;
	ldcopy(e, a, a_len);
	ldcopy(e + a_len, b, b_len);
	ldcopy(e + klen, pl, plen);
	s.head = head_page(e, klen);
	slot_store(n, h->count, &s);
	h->count++;
	return 0;
}

/* Write the separator for a leaf split between keys a < b (given as the node prefix pre[0..p)
 * followed by their suffixes) into sep; returns its length: the shortest s with a <= s < b.
 * With c = the length of their common prefix (rules of pbox__bt_node_split in node.h):
 *   1. |a| <= c + 1: s = a (no shorter string is >= a and < b);
 *   2. |b| >  c + 1: s = b[0, c+1);
 *   3. |b| == c + 1 < |a|, so b = a[0, c) + b[c] with b[c] > a[c]:
 *      a. b[c] >= a[c] + 2: s = a[0, c) + (a[c] + 1);
 *      b. otherwise s starts with a[0, c+1) and is the shortest string >= a with that start:
 *         a[0, j) + (a[j] + 1) for the first j > c with a[j] != 0xff and j + 1 < |a|,
 *         else a itself.
 * The result is at most max(|a|, |b|) <= the key limit bytes long. */
static uint32_t make_sep(const uint8_t *pre, uint32_t p, const uint8_t *as, uint32_t al,
			 const uint8_t *bs, uint32_t bl, uint8_t *sep)
{
	uint32_t c = p + lcp_page(as, al, bs, bl);
	uint32_t alen = p + al, blen = p + bl, len;
	ldcopy(sep, pre, p);
	if (alen <= c + 1 || blen > c + 1) {
		const uint8_t *src = alen <= c + 1 ? as : bs;
		len = alen <= c + 1 ? alen : c + 1;
		ldcopy(sep + p, src, len - p);
		return len;
	}
	ldcopy(sep + p, as, al); /* a, then shortened below */
	if (sep[c] + 2u <= ld8(bs + (c - p))) {
		sep[c]++;
		return c + 1;
	}
	for (uint32_t j = c + 1; j + 1 < alen; j++) {
		if (sep[j] != 0xff) {
			sep[j]++;
			return j + 1;
		}
	}
	return alen;
}

/* A split of a node at nl, worked out before anything changes: the separator, the new
 * prefixes, and the bytes each half will need. */
typedef struct split_plan {
	uint32_t slen;        /* separator length (bytes in the caller's buffer) */
	uint32_t first_right; /* first slot that moves right: nl (leaf) or nl + 1 (inner) */
	uint32_t pl, pr;      /* new prefix of the left and of the right node */
	uint64_t lneed, rneed;
	pbox_pid left_upper;  /* inner: the left node's new upper child */
} split_plan;

static int split_prepare(const uint8_t *n, const hdr *h, uint32_t nl, uint8_t *sep,
			 split_plan *sp)
{
	bool leaf = h->kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h->count, P = h->prefix;
	const uint8_t *pre = prefix_bytes(n, h);
	int rc;
	if (leaf ? (nl < 1 || nl >= cnt) : nl >= cnt)
		return PBOX_EINVAL;
	sp->left_upper = 0;
	if (leaf) {
		slot a, b;
		if ((rc = slot_load(n, h, nl - 1, &a)) || (rc = slot_load(n, h, nl, &b)))
			return rc;
		sp->slen = make_sep(pre, P, n + a.off, a.klen, n + b.off, b.klen, sep);
		sp->first_right = nl;
	} else {
		slot m;
		if ((rc = slot_load(n, h, nl, &m)))
			return rc;
		if (m.plen != 8)
			return PBOX_ECORRUPT;
		sp->slen = P + m.klen;
		ldcopy(sep, pre, P);
		ldcopy(sep + P, n + m.off, m.klen);
		sp->left_upper = ld64(n + m.off + m.klen);
		if (!pid_ok(sp->left_upper))
			return PBOX_ECORRUPT;
		sp->first_right = nl + 1;
	}
	uint32_t slen = sp->slen;
	/* The separator lies strictly inside the fences: lower < sep < upper (on a valid node
	 * it does: a leaf separator is >= key(nl-1) and < key(nl), an inner one is a key). */
	if ((!lo_inf(h) && cmp_key_fence(n, sep, slen, h->lo_off, h->lo_len) <= 0) ||
	    (!hi_inf(h) && cmp_key_fence(n, sep, slen, h->hi_off, h->hi_len) >= 0))
		return PBOX_ECORRUPT;
	/* Prefixes: both new fence pairs lie within the old ones, so they only grow. */
	sp->pl = lo_inf(h) ? 0 : lcp_page(n + h->lo_off, h->lo_len, sep, slen);
	sp->pr = hi_inf(h) ? 0 : lcp_page(n + h->hi_off, h->hi_len, sep, slen);
	if (sp->pl < P || sp->pr < P)
		return PBOX_ECORRUPT;
	sp->lneed = HDR + (uint64_t)h->lo_len + slen;
	sp->rneed = HDR + (uint64_t)slen + h->hi_len;
	for (uint32_t i = 0; i < cnt; i++) {
		slot s;
		if ((rc = slot_load(n, h, i, &s)))
			return rc;
		if (i < nl) {
			if (s.klen < sp->pl - P)
				return PBOX_ECORRUPT;
			sp->lneed += SLOT + s.klen - (sp->pl - P) + s.plen;
		} else if (i >= sp->first_right) {
			if (s.klen < sp->pr - P)
				return PBOX_ECORRUPT;
			sp->rneed += SLOT + s.klen - (sp->pr - P) + s.plen;
		}
	}
	if (sp->lneed > h->ns || sp->rneed > h->ns)
		return PBOX_ENOSPC;
	return 0;
}

/* Can the node be split at nl (on a node whose header loaded)? */
static bool split_feasible(const uint8_t *n, const hdr *h, uint32_t nl)
{
	uint8_t sep[PBOX_BT_KEY_MAX_ANY];
	split_plan sp;
	return split_prepare(n, h, nl, sep, &sp) == 0;
}

uint32_t pbox__bt_node_split_choose(const void *page, uint32_t ps, uint32_t insert_pos)
{
	hdr h;
	if (hdr_load(page, ps, &h))
		return 0;
	const uint8_t *n = cnode(page);
	bool leaf = h.kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h.count;
	if (cnt < (leaf ? 2u : 1u))
		return 0;
	uint32_t lo = leaf ? 1 : 0, hi = cnt - 1; /* valid nl range */
	if (insert_pos >= cnt && split_feasible(n, &h, hi))
		return hi;
	/* The middle by bytes: the first nl whose left part holds half of the entry bytes. */
	uint64_t total = 0, acc = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		slot s;
		if (slot_load(n, &h, i, &s))
			return 0;
		total += SLOT + s.klen + s.plen;
	}
	uint32_t mid = cnt;
	for (uint32_t i = 0; i < cnt && mid == cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		acc += SLOT + s.klen + s.plen;
		if (2 * acc >= total)
			mid = i + 1;
	}
	if (mid < lo)
		mid = lo;
	if (mid > hi)
		mid = hi;
	/* Within the limits the middle always fits (each half at most half the entries plus
	 * one entry, and two fences: see the limits in node.h); look around it anyway. */
	for (uint32_t dist = 0; dist <= hi - lo; dist++) {
		if (mid >= lo + dist && split_feasible(n, &h, mid - dist))
			return mid - dist;
		if (mid + dist <= hi && split_feasible(n, &h, mid + dist))
			return mid + dist;
	}
	return mid;
}

int pbox__bt_node_split(void *left, void *right, uint32_t ps, uint32_t nl, void *sep,
			uint32_t *sep_len)
{
	hdr h;
	int rc = hdr_load(left, ps, &h);
	if (rc)
		return rc;
	if (!right || right == left || !sep || !sep_len)
		return PBOX_EINVAL;
	uint8_t *n = wnode(left);
	uint8_t *sb = sep;
	split_plan sp;
	if ((rc = split_prepare(n, &h, nl, sb, &sp)))
		return rc;
	bool leaf = h.kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h.count, P = h.prefix, slen = sp.slen;
	const uint8_t *pre = prefix_bytes(n, &h);

	/* 1. The right node: (sep, upper], slots [first_right, cnt). */
	rc = node_init(right, ps, h.kind, sb, slen, hi_inf(&h) ? NULL : n + h.hi_off, h.hi_len,
		       leaf ? 0 : ld64(n + H_UPPER));
	if (rc)
		return rc == PBOX_EINVAL ? PBOX_ECORRUPT : rc;
	uint8_t *rn = wnode(right);
	hdr rh;
	if ((rc = hdr_load(right, ps, &rh)))
		return rc;
	for (uint32_t i = sp.first_right; i < cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s); /* checked by split_prepare */
		rc = append(rn, &rh, pre, P, n + s.off, s.klen, n + s.off + s.klen, s.plen,
			    s.flags);
		if (rc)
			return rc == PBOX_ENOSPC ? PBOX_ECORRUPT : rc;
	}
	hdr_store(rn, &rh);
	hints_rebuild(rn, rh.count);

	/* 2. Shrink the left node in place to (lower, sep], slots [0, nl): the moved entries
	 * and the old upper fence become dead, the longer prefix is cut off the front of
	 * every remaining suffix (offset + d, length - d), then the new upper fence goes in. */
	uint32_t d = sp.pl - P;
	for (uint32_t i = nl; i < cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		h.dead += s.klen + s.plen;
	}
	if (!leaf)
		st64(n + H_UPPER, sp.left_upper);
	h.dead += h.hi_len;
	h.hi_off = 0;
	h.hi_len = 0;
	h.flags |= F_HI_INF; /* for compaction: no upper fence piece until the new one */
	h.count = nl;
	for (uint32_t i = 0; i < nl && d; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		s.klen -= d;
		h.dead += d;
		s.off = s.klen + s.plen ? s.off + d : h.ns;
		s.head = head_page(n + s.off, s.klen);
		slot_store(n, i, &s);
	}
	h.prefix = sp.pl;
	if (h.heap - slot_end(&h) < slen) {
		if ((rc = compact(n, &h)))
			return rc;
		if (h.heap - slot_end(&h) < slen) /* lneed <= NS says it cannot happen */
			return PBOX_ECORRUPT;
	}
	h.flags &= ~F_HI_INF;
	h.hi_len = slen;
	h.hi_off = heap_alloc(&h, slen);
	memcpy(n + h.hi_off, sb, slen);
	hdr_store(n, &h);
	hints_rebuild(n, nl);
	*sep_len = slen;
	return 0;
}

/* Everything merge needs: both headers and the size of the result. */
typedef struct merge_plan {
	hdr l, r;
	uint32_t prefix; /* of the result */
} merge_plan;

static int merge_prepare(const void *left, const void *right, uint32_t ps, merge_plan *m)
{
	int rc = hdr_load(left, ps, &m->l);
	if (rc)
		return rc;
	if ((rc = hdr_load(right, ps, &m->r)))
		return rc;
	if (left == right || m->l.kind != m->r.kind || hi_inf(&m->l) || lo_inf(&m->r))
		return PBOX_EINVAL;
	const uint8_t *ln = cnode(left), *rn = cnode(right);
	if (m->l.hi_len != m->r.lo_len ||
	    ldcmp(ln + m->l.hi_off, rn + m->r.lo_off, m->l.hi_len) != 0)
		return PBOX_EINVAL;
	uint32_t p = 0;
	if (!lo_inf(&m->l) && !hi_inf(&m->r)) {
		const uint8_t *a = ln + m->l.lo_off, *b = rn + m->r.hi_off;
		uint32_t mm = min_u32(m->l.lo_len, m->r.hi_len);
		while (p < mm && ld8(a + p) == ld8(b + p))
			p++;
		if (cmp_page(a, m->l.lo_len, b, m->r.hi_len) >= 0)
			return PBOX_ECORRUPT;
	}
	/* lower(l) <= upper(l) = lower(r) <= upper(r): the LCP can only shrink. */
	if (p > m->l.prefix || p > m->r.prefix)
		return PBOX_ECORRUPT;
	m->prefix = p;

	uint64_t need = HDR + (uint64_t)m->l.lo_len + m->r.hi_len;
	uint32_t nslots = m->l.count + m->r.count;
	const hdr *hs[2] = { &m->l, &m->r };
	const uint8_t *ns[2] = { ln, rn };
	for (int k = 0; k < 2; k++) {
		for (uint32_t i = 0; i < hs[k]->count; i++) {
			slot s;
			if ((rc = slot_load(ns[k], hs[k], i, &s)))
				return rc;
			need += SLOT + (hs[k]->prefix - p) + s.klen + s.plen;
		}
	}
	if (m->l.kind == PBOX_BT_NODE_INNER) { /* the separator slot */
		if (m->l.hi_len < p)
			return PBOX_ECORRUPT;
		need += SLOT + (m->l.hi_len - p) + 8;
		nslots++;
	}
	if (need > m->l.ns || nslots > UINT16_MAX)
		return PBOX_ENOSPC;
	return 0;
}

int pbox__bt_node_merge_check(const void *left, const void *right, uint32_t ps)
{
	merge_plan m;
	return merge_prepare(left, right, ps, &m);
}

/* Append every slot of a source node to the node being built. */
static int append_all(uint8_t *dn, hdr *dh, const uint8_t *sn, const hdr *sh)
{
	for (uint32_t i = 0; i < sh->count; i++) {
		slot s;
		int rc = slot_load(sn, sh, i, &s);
		if (rc)
			return rc;
		rc = append(dn, dh, prefix_bytes(sn, sh), sh->prefix, sn + s.off, s.klen,
			    sn + s.off + s.klen, s.plen, s.flags);
		if (rc)
			return rc == PBOX_ENOSPC ? PBOX_ECORRUPT : rc;
	}
	return 0;
}

int pbox__bt_node_merge(void *left, const void *right, uint32_t ps)
{
	merge_plan m;
	int rc = merge_prepare(left, right, ps, &m);
	if (rc)
		return rc;
	const uint8_t *ln = cnode(left), *rn = cnode(right);
	bool inner = m.l.kind == PBOX_BT_NODE_INNER;
	uint8_t *tmp = pbox_malloc(ps);
	if (!tmp)
		return -ENOMEM;
	rc = node_init(tmp, ps, m.l.kind, lo_inf(&m.l) ? NULL : ln + m.l.lo_off, m.l.lo_len,
		       hi_inf(&m.r) ? NULL : rn + m.r.hi_off, m.r.hi_len,
		       inner ? ld64(rn + H_UPPER) : 0);
	uint8_t *tn = wnode(tmp);
	hdr th;
	if (!rc)
		rc = hdr_load(tmp, ps, &th);
	if (!rc && th.prefix != m.prefix)
		rc = PBOX_ECORRUPT;
	if (!rc)
		rc = append_all(tn, &th, ln, &m.l);
	if (!rc && inner) {
		uint8_t child[8];
		memcpy(child, ln + H_UPPER, 8);
		rc = append(tn, &th, ln + m.l.hi_off, m.l.hi_len, NULL, 0, child, 8, 0);
		if (rc == PBOX_ENOSPC)
			rc = PBOX_ECORRUPT;
	}
	if (!rc)
		rc = append_all(tn, &th, rn, &m.r);
	if (!rc) {
		hdr_store(tn, &th);
		hints_rebuild(tn, th.count);
		memcpy(wnode(left), tn, m.l.ns);
	}
	pbox_free(tmp);
	return rc == PBOX_EINVAL ? PBOX_ECORRUPT : rc;
}

/* ---- verify ----------------------------------------------------------------------------------- */

/* Mark [off, off + len) in the bitmap; false if any byte was already marked. */
static bool mark(uint64_t *bm, uint32_t off, uint32_t len)
{
	uint32_t end = off + len;
	while (off < end) {
		uint32_t w = off / 64, b = off % 64;
		uint32_t nb = min_u32(64 - b, end - off);
		uint64_t mask = (nb == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nb) - 1)) << b;
		if (bm[w] & mask)
			return false;
		bm[w] |= mask;
		off += nb;
	}
	return true;
}

int pbox__bt_node_verify(const void *page, uint32_t ps)
{
	hdr h;
	int rc = hdr_load(page, ps, &h);
	if (rc)
		return rc;
	const uint8_t *n = cnode(page);
	bool leaf = h.kind == PBOX_BT_NODE_LEAF;
	for (uint32_t i = 0; i < 6; i++)
		if (ld8(n + H_RSV + i))
			return PBOX_ECORRUPT;
	pbox_pid up = ld64(n + H_UPPER);
	if (leaf ? up != 0 : !pid_ok(up))
		return PBOX_ECORRUPT;

	/* Fences: ordered, prefix = their LCP (hdr_load: 0 when one is infinite). */
	if (!lo_inf(&h) && !hi_inf(&h)) {
		const uint8_t *a = n + h.lo_off, *b = n + h.hi_off;
		uint32_t m = min_u32(h.lo_len, h.hi_len), c = 0;
		while (c < m && ld8(a + c) == ld8(b + c))
			c++;
		if (c != h.prefix)
			return PBOX_ECORRUPT;
		/* lower < upper: lower is a proper prefix of upper, or smaller where they differ */
		bool less = c == h.lo_len ? h.lo_len < h.hi_len
					  : (c < h.hi_len && ld8(a + c) < ld8(b + c));
		if (!less)
			return PBOX_ECORRUPT;
	}

	uint64_t bm[(PBOX_BT_PAGE_MAX - PBOX_PAGE_HDR + 63) / 64];
	memset(bm, 0, (h.ns + 63) / 64 * sizeof(bm[0]));
	if (!mark(bm, h.lo_off, h.lo_len) || !mark(bm, h.hi_off, h.hi_len))
		return PBOX_ECORRUPT;
	uint64_t live = (uint64_t)h.lo_len + h.hi_len;
	uint32_t P = h.prefix, emax = PBOX_BT_ENTRY_MAX(ps);
	slot prev = { 0 };
	for (uint32_t i = 0; i < h.count; i++) {
		slot s;
		if ((rc = slot_load(n, &h, i, &s)))
			return rc;
		if (leaf) {
			if ((s.flags & ~PBOX_BT_SLOT_OVERFLOW) || P + s.klen + s.plen > emax)
				return PBOX_ECORRUPT;
		} else {
			if (s.flags || s.plen != 8 || !pid_ok(ld64(n + s.off + s.klen)))
				return PBOX_ECORRUPT;
		}
		if (s.head != head_page(n + s.off, s.klen))
			return PBOX_ECORRUPT;
		if (!mark(bm, s.off, s.klen + s.plen))
			return PBOX_ECORRUPT;
		live += s.klen + s.plen;
		if (i > 0) { /* strictly ascending: compare the suffixes (same prefix) */
			int c = ldcmp(n + prev.off, n + s.off, min_u32(prev.klen, s.klen));
			if (c > 0 || (c == 0 && prev.klen >= s.klen))
				return PBOX_ECORRUPT;
		}
		prev = s;
	}
	if (live + h.dead != h.ns - h.heap)
		return PBOX_ECORRUPT;

	/* Keys within the fences: lower < first, last <= upper. Both fences start with the
	 * prefix, so compare the fence's bytes after it with the suffix. */
	if (h.count) {
		slot f, l;
		(void)slot_load(n, &h, 0, &f);
		(void)slot_load(n, &h, h.count - 1, &l);
		if (!lo_inf(&h)) {
			uint32_t fl = h.lo_len - P, m = min_u32(fl, f.klen);
			int c = ldcmp(n + h.lo_off + P, n + f.off, m);
			if (c > 0 || (c == 0 && fl >= f.klen))
				return PBOX_ECORRUPT;
		}
		if (!hi_inf(&h)) { /* inner: strictly below (the upper child's range is not empty) */
			uint32_t ul = h.hi_len - P, m = min_u32(ul, l.klen);
			int c = ldcmp(n + l.off, n + h.hi_off + P, m);
			if (c > 0 || (c == 0 && (leaf ? l.klen > ul : l.klen >= ul)))
				return PBOX_ECORRUPT;
		}
	}

	uint32_t d = h.count / (HINTS + 1);
	for (uint32_t i = 0; i < HINTS; i++) {
		uint32_t want = d ? ld32(n + slot_pos(d * (i + 1)) + S_HEAD) : 0;
		if (ld32(n + H_HINTS + 4 * i) != want)
			return PBOX_ECORRUPT;
	}
	return 0;
}
