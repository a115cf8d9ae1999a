/*
 * node_read.c — searching and reading a node: the only node code optimistic readers run.
 *
 * Optimistic readers (R1, descend.c) call these functions on live pages a writer may be
 * changing, without a latch, and validate the page's version afterwards; their result
 * counts only if that validation succeeds. So everything here (with the node_int.h
 * helpers it uses) reads page bytes through racy loads only (ld*, ldcmp, ldcopy: racy.h),
 * bounds-checks every offset and length it loads before using it, and stores nothing into
 * the page: whatever bytes a race shows it, it returns a result or PBOX_ECORRUPT and never
 * reads outside the page. Callers that hold a latch or a copy run the same code.
 *
 * Search: a binary search of the slots by key head (the first 4 suffix bytes, big-endian),
 * narrowed first by the 16 hint heads; equal heads fall back to the suffix bytes. A key the
 * caller knows to lie within the fences (_lower_bound_in, _find_child, _find_payload: a
 * descent reached the node by that key) skips comparing the prefix.
 */
#include "node_int.h"

/* ---- search -------------------------------------------------------------------------------- */

/* Lower bound of key among the slots; robust on arbitrary bytes (every offset checked). */
int pbox__bt_node_search(const uint8_t *n, const hdr *h, const uint8_t *key, uint32_t klen,
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
	return pbox__bt_node_search(cnode(page), &h, key, klen, in_range, pos, exact);
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
	if ((rc = pbox__bt_node_search(n, &h, key, klen, true, &p, &exact)) ||
	    (rc = child_at(n, &h, p, child)))
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
	if ((rc = pbox__bt_node_search(n, &h, key, klen, true, pos, exact)) || !*exact)
		return rc;
	if ((rc = slot_load(n, &h, *pos, &s)))
		return rc;
	*p = n + s.off + s.klen;
	*len = s.plen;
	*flags = s.flags;
	return 0;
}
