/*
 * scan.c — range scans: forward (with read-ahead), reverse and by prefix.
 *
 * A forward scan copies one leaf at a time consistently (an R1 descent with a buffer,
 * descend.c), reports its pairs from the copy with no latch held while fn runs, and
 * continues strictly above the copy's upper fence: through the parent, when the parent has
 * not changed since the leaf was reached (pbox__bt_next_leaf), else by a new descent. So a
 * scan reports keys in ascending order, each at most once, and every key that is present
 * for the scan's whole duration. A long value is read with its live leaf latched shared
 * (overflow.c); when its key is gone from the live leaf, the scan continues from that key
 * with a new descent.
 *
 * Reverse scans run on a cursor (cursor.c), which re-seeks below its current key whenever
 * its leaf copy is stale; prefix scans are range scans from the prefix to the smallest key
 * above all its extensions.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- scans ------------------------------------------------------------------------------- */

/* Read-ahead of a forward scan (out of memory, each leaf it crosses would be one synchronous
 * read). When the scan is about to step past the leaves it already asked for under the
 * current parent, it asks for the next `window` children of that parent at once
 * (pbox_page_prefetch: many reads in flight; resident pages are skipped) and doubles the
 * window, from RA_FIRST up to RA_MAX: a short scan reads little ahead, a long one streams.
 * Children starting at or above the scan's end are not asked for. Each child is looked at
 * once, so a scan of resident leaves pays one frame check per leaf. */
enum { RA_FIRST = 2, RA_MAX = 32 };

typedef struct readahead {
	pbox_pid parent; /* the parent the window was taken under */
	uint32_t until;  /* children below this slot were asked for */
	unsigned window;
} readahead;

static void scan_readahead(pbox_bt *bt, const leaf_parent *lp, readahead *ra, const void *end,
			   size_t elen)
{
	if (lp->parent == PBOX_PID_NONE)
		return;
	if (ra->parent != lp->parent) {
		ra->parent = lp->parent;
		ra->until = 0;
	}
	uint32_t from = lp->pos + 1;
	if (from < ra->until)
		return;
	const void *page = pbox_page_addr(bt->st, lp->parent);
	/* child i holds the keys above separator i - 1, so the children below the first
	 * separator >= end are the last that can hold keys below it */
	uint32_t last = pbox__bt_node_count(page);
	bool exact;
	if (end && pbox__bt_node_lower_bound(page, bt->ps, end, (uint32_t)elen, &last, &exact))
		return;
	pbox_pid pids[RA_MAX];
	unsigned n = 0;
	uint32_t i = from;
	for (; i <= last && n < ra->window; i++) {
		if (pbox__bt_node_child(page, bt->ps, i, &pids[n]))
			break;
		n++;
	}
	/* the ids came from racy reads: use them only if the parent did not change */
	if (!n || !pbox_page_validate(bt->st, lp->parent, lp->version))
		return;
	ra->until = i;
	if (ra->window < RA_MAX)
		ra->window *= 2;
	(void)pbox_page_prefetch(bt->st, pids, n); /* a failure shows when the leaf is read */
}

int pbox_bt_scan(pbox_bt *bt, const void *start, size_t slen, const void *end, size_t elen,
		 pbox_bt_scan_fn fn, void *arg)
{
	if (!bt || !fn || (slen && !start) || (elen && !end))
		return PBOX_EINVAL;
	void *buf = pbox_aligned_alloc(64, bt->ps);
	unsigned char *cur = pbox_malloc(2 * (PBOX_BT_KEY_MAX_ANY + 1));
	if (!buf || !cur) {
		pbox_free(buf);
		pbox_free(cur);
		return -ENOMEM;
	}
	unsigned char *kbuf = cur + PBOX_BT_KEY_MAX_ANY + 1;
	unsigned char *heap = NULL;
	size_t heap_cap = 0;
	/* cur: the key to continue from; inclusive the first time, then just above a fence */
	uint32_t clen = 0;
	if (start) {
		if (slen > PBOX_BT_KEY_MAX_ANY) {
			pbox_free(buf);
			pbox_free(cur);
			return PBOX_EINVAL;
		}
		memcpy(cur, start, slen);
		clen = (uint32_t)slen;
	}
	int r;
	leaf_parent lp = { PBOX_PID_NONE, 0, 0 };
	readahead ra = { PBOX_PID_NONE, 0, RA_FIRST };
	bool stepped = false; /* buf holds the right neighbour of the last leaf: start at 0 */
	pbox_pid leaf = PBOX_PID_NONE;
	uint64_t v = 0;
	for (;;) {
		uint32_t pos, n;
		bool exact;
		if (!stepped && (r = pbox__bt_descend_retry_lp(bt, cur, clen, buf, &leaf, &v, &lp)))
			break;
		n = pbox__bt_node_count(buf);
		if (stepped)
			pos = 0;
		else if ((r = pbox__bt_node_lower_bound(buf, bt->ps, cur, clen, &pos, &exact)))
			break;
		stepped = false;
		bool again = false;
		for (; pos < n; pos++) {
			uint32_t klen;
			const void *p;
			size_t plen;
			if ((r = pbox__bt_node_key(buf, bt->ps, pos, kbuf, PBOX_BT_KEY_MAX_ANY, &klen)))
				goto out;
			if (end && pbox__bt_cmp_keys(kbuf, klen, end, elen) >= 0)
				goto out;
			r = pbox__bt_leaf_value(bt, buf, leaf, kbuf, klen, pos, &p, &plen, &heap,
						&heap_cap);
			if (r == PBOX_ERESTART) { /* the leaf changed: continue from this key */
				memcpy(cur, kbuf, klen);
				clen = klen;
				again = true;
				r = 0;
				break;
			}
			if (r || (r = fn(kbuf, klen, p, plen, arg)))
				goto out;
		}
		if (again)
			continue;
		/* continue just above this leaf's upper fence */
		const uint8_t *lo, *hi;
		uint32_t lol, hil;
		if ((r = pbox__bt_node_fences(buf, bt->ps, &lo, &lol, &hi, &hil)))
			break;
		if (!hi)
			break; /* the last leaf */
		if (end && pbox__bt_cmp_keys(hi, hil, end, elen) >= 0)
			break;
		memcpy(cur, hi, hil);
		cur[hil] = 0; /* the smallest key greater than the fence */
		clen = hil + 1;
		/* the right neighbour through the parent, else a descent to cur */
		scan_readahead(bt, &lp, &ra, end, elen);
		r = pbox__bt_next_leaf(bt, &lp, buf, &leaf, &v);
		if (r == 0)
			stepped = true;
		else if (r != PBOX_ENOTFOUND)
			break;
		r = 0;
	}
out:
	pbox_free(heap);
	pbox_free(buf);
	pbox_free(cur);
	return r;
}

/* ---- scans in both directions ------------------------------------------------------------ */

/* A reverse scan walks a cursor down from the last key below end (cursor.c). */
int pbox_bt_scan_ex(pbox_bt *bt, const void *start, size_t slen, const void *end, size_t elen,
		    unsigned flags, pbox_bt_scan_fn fn, void *arg)
{
	if (!(flags & PBOX_BT_SCAN_REVERSE))
		return pbox_bt_scan(bt, start, slen, end, elen, fn, arg);
	if (!bt || !fn || (slen && !start) || (elen && !end) ||
	    slen > PBOX_BT_KEY_MAX_ANY || elen > PBOX_BT_KEY_MAX_ANY)
		return PBOX_EINVAL;
	pbox_bt_cursor *c;
	int r = pbox_bt_cursor_open(bt, &c);
	if (r)
		return r;
	r = end ? pbox__bt_cursor_seek_below(c, end, (uint32_t)elen) : pbox_bt_cursor_last(c);
	while (r == 0) {
		const void *k, *v;
		size_t kl, vl;
		if ((r = pbox_bt_cursor_key(c, &k, &kl))) /* positioned: cannot fail */
			break;
		if (start && pbox__bt_cmp_keys(k, kl, start, slen) < 0)
			break;
		/* a value read that succeeds leaves the cursor on the same key (k stays valid) */
		r = pbox_bt_cursor_value(c, &v, &vl);
		if (r == PBOX_ENOTFOUND) { /* removed since the cursor reached it: skip it */
			r = pbox_bt_cursor_prev(c);
			continue;
		}
		if (r || (r = fn(k, kl, v, vl, arg)))
			break;
		r = pbox_bt_cursor_prev(c);
	}
	pbox_bt_cursor_close(c);
	return r == PBOX_ENOTFOUND ? 0 : r;
}

int pbox_bt_scan_prefix(pbox_bt *bt, const void *prefix, size_t plen, unsigned flags,
			pbox_bt_scan_fn fn, void *arg)
{
	if (plen && !prefix)
		return PBOX_EINVAL;
	if (plen > PBOX_BT_KEY_MAX_ANY)
		return PBOX_EINVAL;
	/* end = the smallest string above every extension of prefix: drop trailing 0xff
	 * bytes and increment the last byte; none left = no end */
	unsigned char end[PBOX_BT_KEY_MAX_ANY];
	size_t elen = plen;
	if (plen)
		memcpy(end, prefix, plen);
	while (elen && end[elen - 1] == 0xff)
		elen--;
	if (elen)
		end[elen - 1]++;
	return pbox_bt_scan_ex(bt, plen ? prefix : NULL, plen, elen ? end : NULL, elen, flags, fn,
			       arg);
}
