/*
 * node_verify.c — the node self-check: N1-N7 (node_int.h), on arbitrary bytes.
 *
 * Safe on any page contents, like the read path: the header and slots are loaded through
 * hdr_load / slot_load (bounds first) and the ld* helpers, so it never reads outside the
 * page; the heap pieces are marked in a bitmap of the node to find overlaps. Run on latched
 * pages and copies (pbox_bt_verify, pbox_bt_reclaim, redo of node images) and by the tests
 * and the fuzzer; optimistic readers do not run it.
 */
#include "node_int.h"

#include <string.h>

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
