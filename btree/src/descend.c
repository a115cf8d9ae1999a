/*
 * descend.c — finding the leaf for a key, and stepping from a leaf to its right neighbour.
 *
 * Concurrency (ARCHITECTURE §8):
 *   R1 Readers and writers descend with optimistic lock coupling, reading each node in
 *      place: search it through racy loads (racy.h; node_read.c bounds-checks every value
 *      it loads), validate its version, fault the child in and take the child's version,
 *      validate the node again — then the child is still the one the unchanged parent
 *      names, so it covers the key at that version. Nothing is written or copied on the
 *      way down; a failed validation restarts from the root, and 64 restarts fall back to
 *      shared latch coupling (whose verdict is final). Lookups copy the value out of the
 *      leaf and validate; scans and cursors copy whole leaves and validate.
 *
 * Three descents, one latching rule — latches are taken top-down only, a parent before
 * its child, so no descent waits for another in a cycle:
 *   descend_opt     R1: holds nothing; PBOX_ERESTART when a validation fails.
 *   descend_locked  shared latch coupling (the parent held until the child is latched):
 *                   slower, but final; the fallback when optimistic descents keep
 *                   restarting.
 *   latch_path      a structure mtr's path, latched exclusively from the root (R3,
 *                   smo.c); it only latches, the caller changes.
 * A page that is not a node of the tree where one must be (merged away and reused since
 * its parent was read) restarts an optimistic descent and is PBOX_ECORRUPT to a latched
 * one; a dropped tree's root (node kind DROPPED_KIND) is PBOX_ECLOSED to all of them.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

#ifndef PREFETCH_LINES
#define PREFETCH_LINES 8u /* cache lines of a child prefetched on the way down */
#endif

/* ---- optimistic node reads (R1) ------------------------------------------------------- */

/* Copy page pid into buf consistently; *version = the latch version it was read at. */
int pbox__bt_read_node(pbox_bt *bt, pbox_pid pid, void *buf, uint64_t *version)
{
	for (unsigned tries = 0;; tries++) {
		uint64_t v;
		int r = pbox_page_fix_opt(bt->st, pid, &v);
		if (r)
			return r == PBOX_EINVAL ? PBOX_ECORRUPT : r; /* a bad child id on disk */
		rdcopy(buf, pbox_page_addr(bt->st, pid), bt->ps);
		if (pbox_page_validate(bt->st, pid, v)) {
			/* not a node (any more): merged away after its parent was read, and maybe
			 * reused (an overflow page, say). Restart; a descent that keeps meeting it
			 * ends in the latch-coupled descent, whose verdict is final. */
			if (pbox__bt_page_type(buf) != BT_PAGE_TYPE)
				return PBOX_ERESTART;
			if (((unsigned char *)buf)[PBOX_PAGE_HDR] == DROPPED_KIND)
				return PBOX_ECLOSED;
			*version = v;
			return 0;
		}
		if (tries >= PBOX_LATCH_MAX_OPT_RESTARTS) { /* progress: read under a shared latch */
			if ((r = pbox_page_fix_shared(bt->st, pid)))
				return r;
			memcpy(buf, pbox_page_addr(bt->st, pid), bt->ps);
			uint64_t vv = pbox_latch_version(pbox_page_latch(bt->st, pid));
			pbox_page_unfix_shared(bt->st, pid);
			if (pbox__bt_page_type(buf) != BT_PAGE_TYPE)
				return PBOX_ERESTART;
			if (((unsigned char *)buf)[PBOX_PAGE_HDR] == DROPPED_KIND)
				return PBOX_ECLOSED;
			*version = vv;
			return 0;
		}
	}
}

/* Is key within the node's fences (lower < key <= upper)? */
int pbox__bt_key_in_range(const void *node, uint32_t ps, const void *key, uint32_t klen,
			  bool *in)
{
	const uint8_t *lo, *hi;
	uint32_t lol, hil;
	int r = pbox__bt_node_fences(node, ps, &lo, &lol, &hi, &hil);
	if (r)
		return r;
	bool ok = true;
	if (lo) {
		int c = memcmp(key, lo, klen < lol ? klen : lol);
		ok = c > 0 || (c == 0 && klen > lol);
	}
	if (ok && hi) {
		int c = memcmp(key, hi, klen < hil ? klen : hil);
		ok = c < 0 || (c == 0 && klen <= hil);
	}
	*in = ok;
	return 0;
}

static uint8_t node_kind_racy(const void *page)
{
	return rd8((const uint8_t *)page + PBOX_PAGE_HDR);
}

static int fix_opt(pbox_bt *bt, pbox_pid pid, uint64_t *v)
{
	int r = pbox_page_fix_opt(bt->st, pid, v);
	return r == PBOX_EINVAL ? PBOX_ECORRUPT : r; /* a bad child id on disk */
}

/* One optimistic descent to the leaf for key, reading every node in place (R1): search the
 * node through racy loads, validate it, fault the child in and take its version, validate
 * the node again (lock coupling: the child is still the one the unchanged parent names, so
 * it covers key at that version). Nothing is written on the way down and nothing is copied.
 * On success the leaf is a node of this tree at *version; the caller reads it in place and
 * validates, or upgrades it from that version. PBOX_ERESTART when a validation fails. */
static int descend_opt(pbox_bt *bt, const void *key, uint32_t klen, pbox_pid *leaf,
		       uint64_t *version, leaf_parent *lp)
{
	pbox_store *st = bt->st;
	pbox_pid pid = bt->root;
	uint64_t v;
	if (lp)
		lp->parent = PBOX_PID_NONE;
	int r = fix_opt(bt, pid, &v);
	if (r)
		return r;
	for (unsigned depth = 0; depth < MAX_DEPTH; depth++) {
		const void *page = pbox_page_addr(st, pid);
		uint16_t type = pbox__bt_page_type_racy(page);
		uint8_t kind = node_kind_racy(page);
		if (type != BT_PAGE_TYPE || kind == DROPPED_KIND) {
			if (!pbox_page_validate(st, pid, v))
				return PBOX_ERESTART;
			/* not a node: the latch-coupled descent gives the final verdict */
			return type != BT_PAGE_TYPE ? PBOX_ERESTART : PBOX_ECLOSED;
		}
		if (kind == PBOX_BT_NODE_LEAF) {
			*leaf = pid;
			*version = v;
			return 0;
		}
		pbox_pid child;
		uint32_t pos;
		r = pbox__bt_node_find_child(page, bt->ps, key, klen, &child, &pos);
		/* the child id must come from a consistent read before the page is faulted in:
		 * a torn id could name any page */
		if (!pbox_page_validate(st, pid, v))
			return PBOX_ERESTART;
		if (r)
			return r;
		/* start loading the child's header, hints and first slots while its frame is
		 * looked at (a leaf's slots are mostly within its first 512 bytes) */
		const char *cp = pbox_page_addr(st, child);
		for (unsigned l = 0; l < PREFETCH_LINES; l++)
			__builtin_prefetch(cp + 64 * l);
		uint64_t cv;
		if ((r = fix_opt(bt, child, &cv)))
			return r;
		if (!pbox_page_validate(st, pid, v))
			return PBOX_ERESTART;
		if (lp)
			*lp = (leaf_parent){ pid, v, pos };
		pid = child;
		v = cv;
	}
	return PBOX_ECORRUPT; /* deeper than any tree this store can hold */
}

/* Step from the leaf at lp->pos to its right neighbour under the same parent, copying it
 * into buf: 0 (lp updated), PBOX_ENOTFOUND (it was the parent's last child, or the parent
 * changed since it was read: descend instead), or an error. The parent unchanged since
 * the previous leaf was reached means the two leaves are still adjacent. */
int pbox__bt_next_leaf(pbox_bt *bt, leaf_parent *lp, void *buf, pbox_pid *leaf,
		       uint64_t *version)
{
	if (lp->parent == PBOX_PID_NONE)
		return PBOX_ENOTFOUND;
	pbox_store *st = bt->st;
	const void *page = pbox_page_addr(st, lp->parent);
	pbox_pid child;
	if (lp->pos >= pbox__bt_node_count(page) ||
	    pbox__bt_node_child(page, bt->ps, lp->pos + 1, &child) ||
	    !pbox_page_validate(st, lp->parent, lp->version))
		return PBOX_ENOTFOUND;
	uint64_t cv;
	int r = fix_opt(bt, child, &cv);
	if (r)
		return r;
	if (!pbox_page_validate(st, lp->parent, lp->version))
		return PBOX_ENOTFOUND;
	rdcopy(buf, pbox_page_addr(st, child), bt->ps);
	if (!pbox_page_validate(st, child, cv) || pbox__bt_page_type(buf) != BT_PAGE_TYPE ||
	    !pbox__bt_node_is_leaf(buf))
		return PBOX_ENOTFOUND;
	lp->pos++;
	*leaf = child;
	*version = cv;
	return 0;
}

/* Descent with shared latch coupling (parent held until the child is latched): slower, but
 * its answer is final, so a descent that keeps restarting ends here, and a restart that
 * would never end (a damaged pointer to a free page) becomes PBOX_ECORRUPT. */
static int descend_locked(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			  pbox_pid *leaf, uint64_t *version)
{
	pbox_pid pid = bt->root, held = PBOX_PID_NONE;
	int r = 0;
	for (unsigned depth = 0;; depth++) {
		if (depth == MAX_DEPTH) {
			r = PBOX_CORRUPT();
			break;
		}
		if ((r = pbox_page_fix_shared(bt->st, pid))) {
			r = r == PBOX_EINVAL ? PBOX_CORRUPT() : r;
			break;
		}
		if (held != PBOX_PID_NONE)
			pbox_page_unfix_shared(bt->st, held);
		held = pid;
		memcpy(buf, pbox_page_addr(bt->st, pid), bt->ps);
		bool in;
		if (pbox__bt_page_type(buf) == BT_PAGE_TYPE &&
		    ((unsigned char *)buf)[PBOX_PAGE_HDR] == DROPPED_KIND) {
			r = PBOX_ECLOSED;
			break;
		}
		if (pbox__bt_page_type(buf) != BT_PAGE_TYPE ||
		    (r = pbox__bt_key_in_range(buf, bt->ps, key, klen, &in)) || !in) {
			r = r ? r : PBOX_CORRUPT();
			break;
		}
		if (pbox__bt_node_is_leaf(buf)) {
			*leaf = pid;
			*version = pbox_latch_version(pbox_page_latch(bt->st, pid));
			break;
		}
		uint32_t pos;
		if ((r = pbox__bt_node_find_child(buf, bt->ps, key, klen, &pid, &pos)))
			break;
	}
	if (held != PBOX_PID_NONE)
		pbox_page_unfix_shared(bt->st, held);
	return r;
}

/* The leaf for key, after optimistic descents and, when they keep restarting, the
 * latch-coupled one. With buf, the leaf is also copied into buf consistently (at
 * *version); without, the caller reads it in place and validates. */
int pbox__bt_descend_retry_lp(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			      pbox_pid *leaf, uint64_t *version, leaf_parent *lp)
{
	int r;
	for (unsigned restarts = 0; restarts < 64; restarts++) {
		if ((r = descend_opt(bt, key, klen, leaf, version, lp)) == PBOX_ERESTART)
			continue;
		if (r || !buf)
			return r;
		rdcopy(buf, pbox_page_addr(bt->st, *leaf), bt->ps);
		if (pbox_page_validate(bt->st, *leaf, *version))
			return 0;
	}
	if (lp)
		lp->parent = PBOX_PID_NONE;
	if (buf)
		return descend_locked(bt, key, klen, buf, leaf, version);
	void *tmp = pbox_aligned_alloc(64, bt->ps);
	if (!tmp)
		return -ENOMEM;
	r = descend_locked(bt, key, klen, tmp, leaf, version);
	pbox_free(tmp);
	return r;
}

int pbox__bt_descend_retry(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			   pbox_pid *leaf, uint64_t *version)
{
	return pbox__bt_descend_retry_lp(bt, key, klen, buf, leaf, version, NULL);
}

/* ---- the exclusive path of a structure mtr (R3) ----------------------------------------- */

/* Latch the path (at most max levels: PBOX_ELIMIT beyond). Nothing is changed here; on error
 * the caller aborts the mtr cleanly. PBOX_ECLOSED for a dropped tree. */
int pbox__bt_latch_path(pbox_bt *bt, pbox_mtr *m, const void *key, uint32_t klen, unsigned max,
			bpath *p)
{
	pbox_pid pid = bt->root;
	int r;
	if (max > MAX_DEPTH)
		max = MAX_DEPTH;
	for (p->d = 0;; p->d++) {
		if (p->d == max)
			return max == MAX_DEPTH ? PBOX_CORRUPT() : PBOX_ELIMIT;
		void **pg = &p->pg[p->d];
		if ((r = pbox_mtr_fix(m, pid, pg)))
			return r;
		if (pbox__bt_page_type(*pg) != BT_PAGE_TYPE)
			return PBOX_CORRUPT();
		if (((unsigned char *)*pg)[PBOX_PAGE_HDR] == DROPPED_KIND)
			return PBOX_ECLOSED;
		p->pid[p->d] = pid;
		if (pbox__bt_node_is_leaf(*pg)) {
			bool exact;
			if ((r = pbox__bt_node_lower_bound(*pg, bt->ps, key, klen, &p->pos[p->d],
							   &exact)))
				return r;
			p->d++;
			return 0;
		}
		if ((r = pbox__bt_node_find_child(*pg, bt->ps, key, klen, &pid, &p->pos[p->d])))
			return r;
	}
}
