/*
 * overflow.c — values too long for a leaf (over pbox__bt_inline_max), on overflow page chains.
 *
 * A long value lives on a chain of overflow pages (type OVF_PAGE_TYPE): each holds OVF_HDR
 * bytes (next page id, bytes on this page) and then data. The leaf holds an OVF_REF-byte
 * reference (first page id, value length) with slot flag PBOX_BT_SLOT_OVERFLOW.
 *
 * Invariants: chains are written before the leaf that refers to them (in mini-transactions
 * of their own, last page first so each page's next id is known) and are immutable; a
 * replaced or removed value's chain is freed after the leaf change has committed. So a
 * chain a committed leaf refers to is whole, and is freed only after no leaf refers to it.
 * A crash between writing a chain and committing its leaf leaves the chain's pages
 * allocated and unreachable (pbox_bt_reclaim frees them).
 *
 * Latching: a reader holds the live leaf shared while it reads the chain (see
 * pbox__bt_leaf_value in tree_int.h for why), and latches chain pages shared one at a time
 * after it: the top-down order, a leaf before its chain. Writing and freeing a chain hold no
 * leaf latch.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- overflow values ------------------------------------------------------------------- */

/* Write val to a new chain, last page first (each page's next id is then known), in mtrs of
 * OVF_PAGES_PER_MTR pages; *first = its first page. */
int pbox__bt_ovf_write(pbox_bt *bt, const void *val, size_t vlen, pbox_pid *first)
{
	const uint32_t per = pbox__bt_ovf_per_page(bt);
	uint64_t n = (vlen + per - 1) / per;
	pbox_pid next = 0;
	unsigned char *buf = pbox_malloc(OVF_HDR + per);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	uint64_t c = n;
	while (c > 0 && !r) {
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(bt->st, &m)))
			break;
		for (unsigned k = 0; k < OVF_PAGES_PER_MTR && c > 0 && !r; k++) {
			c--;
			uint64_t off = c * per;
			uint32_t len = (uint32_t)(vlen - off < per ? vlen - off : per);
			pbox_pid pid;
			if ((r = pbox_mtr_alloc(m, OVF_PAGE_TYPE, &pid, NULL)))
				break;
			memcpy(buf, &next, 8);
			memcpy(buf + 8, &len, 4);
			memcpy(buf + OVF_HDR, (const unsigned char *)val + off, len);
			if ((r = pbox_mtr_write(m, pid, PBOX_PAGE_HDR, buf, OVF_HDR + len)))
				break;
			next = pid;
		}
		if (r)
			pbox_mtr_abort(m, true);
		else
			r = pbox_mtr_commit(m, false, NULL);
	}
	pbox_free(buf);
	if (!r)
		*first = next;
	return r;
}

/* Free a chain (after the leaf stopped referring to it). */
int pbox__bt_ovf_free(pbox_bt *bt, pbox_pid first, uint64_t vlen)
{
	uint64_t left = (vlen + pbox__bt_ovf_per_page(bt) - 1) / pbox__bt_ovf_per_page(bt);
	pbox_pid pid = first;
	int r = 0;
	while (pid && left && !r) {
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(bt->st, &m)))
			break;
		bool changed = false;
		for (unsigned k = 0; k < OVF_PAGES_PER_MTR && pid && left && !r; k++, left--) {
			void *page;
			if ((r = pbox_mtr_fix(m, pid, &page)))
				break;
			if (pbox__bt_page_type(page) != OVF_PAGE_TYPE) {
				r = PBOX_CORRUPT();
				break;
			}
			pbox_pid next;
			memcpy(&next, (unsigned char *)page + PBOX_PAGE_HDR, 8);
			if ((r = pbox_mtr_free(m, pid)))
				break;
			changed = true;
			pid = next;
		}
		if (r)
			pbox_mtr_abort(m, changed);
		else
			r = pbox_mtr_commit(m, false, NULL);
	}
	return r;
}

/* Read a whole chain into out (vlen bytes). PBOX_ERESTART if a page is not (any more) part
 * of a chain: the caller re-validates its leaf. */
static int ovf_read(pbox_bt *bt, pbox_pid first, uint64_t vlen, void *out, void *pagebuf)
{
	const uint32_t per = pbox__bt_ovf_per_page(bt);
	uint64_t off = 0, pages = (vlen + per - 1) / per;
	pbox_pid pid = first;
	for (uint64_t i = 0; i < pages; i++) {
		/* a shared latch, not an optimistic read: under a small budget the page may be
		 * evicted while it is copied, and a failed validation must not look like damage */
		int r = pbox_page_fix_shared(bt->st, pid);
		if (r)
			return r == PBOX_EINVAL ? PBOX_ERESTART : r;
		memcpy(pagebuf, pbox_page_addr(bt->st, pid), bt->ps);
		pbox_page_unfix_shared(bt->st, pid);
		if (pbox__bt_page_type(pagebuf) != OVF_PAGE_TYPE)
			return PBOX_ERESTART;
		const unsigned char *h = (const unsigned char *)pagebuf + PBOX_PAGE_HDR;
		pbox_pid next;
		uint32_t len;
		memcpy(&next, h, 8);
		memcpy(&len, h + 8, 4);
		uint32_t want = (uint32_t)(vlen - off < per ? vlen - off : per);
		if (len != want || (i + 1 < pages && !next))
			return PBOX_ERESTART;
		memcpy((unsigned char *)out + off, h + OVF_HDR, len);
		off += len;
		pid = next;
	}
	return 0;
}

int pbox__bt_parse_ref(const uint8_t *p, uint32_t plen, pbox_pid *first, uint64_t *vlen)
{
	if (plen != OVF_REF)
		return PBOX_CORRUPT();
	memcpy(first, p, 8);
	memcpy(vlen, p + 8, 8);
	if (*first < PBOX_BT_NODE_PID_MIN || *vlen > PBOX_BT_VALUE_MAX_BYTES)
		return PBOX_CORRUPT();
	return 0;
}

/* The overflow value of key, read with the live leaf latched shared (see
 * pbox__bt_leaf_value in tree_int.h). */
int pbox__bt_ovf_value(pbox_bt *bt, pbox_pid leaf_pid, const void *key, uint32_t klen,
		       const void **val, size_t *vlen, unsigned char **heap, size_t *heap_cap)
{
	const uint8_t *p;
	uint32_t plen;
	unsigned fl;
	int r;
	if ((r = pbox_page_fix_shared(bt->st, leaf_pid)))
		return r;
	const void *live = pbox_page_addr(bt->st, leaf_pid);
	uint32_t lpos;
	bool exact;
	pbox_pid first;
	uint64_t n = 0;
	if (pbox__bt_page_type(live) != BT_PAGE_TYPE || !pbox__bt_node_is_leaf(live)) {
		r = PBOX_ERESTART; /* merged away and reused meanwhile */
		goto out;
	}
	if ((r = pbox__bt_node_lower_bound(live, bt->ps, key, klen, &lpos, &exact)))
		goto out;
	if (!exact) {
		r = PBOX_ERESTART;
		goto out;
	}
	if ((r = pbox__bt_node_payload(live, bt->ps, lpos, &p, &plen, &fl)))
		goto out;
	if (!(fl & PBOX_BT_SLOT_OVERFLOW)) { /* replaced by a short value meanwhile */
		r = PBOX_ERESTART;
		goto out;
	}
	if ((r = pbox__bt_parse_ref(p, plen, &first, &n)))
		goto out;
	if (*heap_cap < n + bt->ps) {
		unsigned char *nb = pbox_realloc(*heap, n + bt->ps);
		if (!nb) {
			r = -ENOMEM;
			goto out;
		}
		*heap = nb;
		*heap_cap = n + bt->ps;
	}
	/* the value goes into the heap's front, chain pages are copied through its tail */
	r = ovf_read(bt, first, n, *heap, *heap + n);
	if (r == PBOX_ERESTART)
		r = PBOX_CORRUPT(); /* the leaf refers to it and cannot change: a damaged chain */
out:
	pbox_page_unfix_shared(bt->st, leaf_pid);
	if (!r) {
		*val = *heap;
		*vlen = n;
	}
	return r;
}
