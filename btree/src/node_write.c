/*
 * node_write.c — changing a node: init, insert, update, remove, compaction, and the space
 * accounting they share.
 *
 * The caller holds the page exclusively (in an mtr) or owns the buffer: optimistic readers
 * never run this code, and nothing here may run concurrently with anything else on the same
 * page. Loads still go through the ld* helpers (harmless on a held page); stores are plain.
 *
 * Invariants: a valid node stays valid (N1-N7, node_int.h) through every function here;
 * argument errors, PBOX_EEXIST and PBOX_ENOSPC are found before the first store and leave
 * the node unchanged (a corrupt node may be left differently corrupt: node.h, ERRORS).
 *
 * Space management: inserts take slot space from the bottom of the free gap and heap space
 * from its top. Removals and relocations add dead bytes (or shrink the heap when the entry
 * is the lowest one); when the gap is too small but gap + dead is enough, compaction
 * (pbox__bt_node_compact_heap) moves every live piece to the end of the node in place (no
 * scratch memory): it sorts the slots by heap offset (each slot's head field temporarily
 * holds its index), slides the pieces up in descending offset order (a piece never lands
 * on a piece not yet moved, because the pieces above it fit between it and the node end),
 * restores slot order by following the stored indices and recomputes the heads.
 */
#include "node_int.h"

#include <string.h>

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
int pbox__bt_node_compact_heap(uint8_t *n, hdr *h)
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
	return pbox__bt_node_compact_heap(wnode(page), &h);
}

/* ---- init ------------------------------------------------------------------------------------- */

int pbox__bt_node_init(void *page, uint32_t ps, uint32_t kind, const void *lower,
		       uint32_t lower_len, const void *upper, uint32_t upper_len,
		       pbox_pid upper_child)
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
	return pbox__bt_node_init(page, ps, PBOX_BT_NODE_LEAF, lower, lower_len, upper,
				  upper_len, 0);
}

int pbox__bt_node_init_inner(void *page, uint32_t ps, const void *lower, uint32_t lower_len,
			     const void *upper, uint32_t upper_len, pbox_pid upper_child)
{
	if (!pid_ok(upper_child))
		return PBOX_EINVAL;
	return pbox__bt_node_init(page, ps, PBOX_BT_NODE_INNER, lower, lower_len, upper,
				  upper_len, upper_child);
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
		if ((rc = pbox__bt_node_compact_heap(n, h)))
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
	if ((rc = pbox__bt_node_search(n, &h, key, klen, true, &pos, &exact)))
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
		if ((rc = pbox__bt_node_compact_heap(n, &h)))
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
