/*
 * smo.c — structure changes: splits and merges, each in a structure mtr of its own.
 *
 * Concurrency (ARCHITECTURE §8):
 *   R3 A leaf without room is split by a separate structure mtr that latches the path
 *      exclusively from the root down (top-down order: no deadlock with other structure
 *      mtrs, R2 writers hold a single leaf, readers hold nothing), splits the topmost node
 *      of the chain of full nodes ending at the leaf, and commits; the change restarts.
 *   R4 A split keeps the right half in the old page and moves the left half to a new page,
 *      so the parent only gains one separator (sep -> new page). The root splits into two
 *      new children and stays where it is.
 * A merge is a structure mtr too: the same exclusive path from the root, then the sibling
 * beside the underfull node, latched under their parent which the mtr already holds. It
 * runs after the remove that left the leaf underfull has committed, so it changes no
 * logical content, only where keys live.
 *
 * Invariants: a split or merge changes no key's presence or value; the root id never
 * changes (a root split moves both halves to new pages, a root with one child left takes
 * that child's node); a pass that finds nothing to do (someone split or merged first)
 * aborts unchanged. A pass that fails after changing a page aborts with changed set, which
 * poisons the store: the page images in memory are ahead of the log.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- splits (R3, R4) ------------------------------------------------------------------------ */

/* Room for one more separator of any length in an inner node? */
static bool inner_has_room(const void *page, uint32_t ps)
{
	return pbox__bt_node_free_bytes(page, ps) >=
	       pbox__bt_node_entry_space(page, PBOX_BT_KEY_MAX(ps), 8);
}

/* Split the node `pid` (page `o`, held by m) into a new left page and itself (right),
 * adding the separator to `parent` (held by m). */
static int split_child(pbox_bt *bt, pbox_mtr *m, pbox_pid parent, pbox_pid pid, void *o,
		       uint32_t insert_pos)
{
	uint32_t ps = bt->ps;
	uint32_t nl = pbox__bt_node_split_choose(o, ps, insert_pos);
	if (!nl && pbox__bt_node_is_leaf(o))
		return PBOX_CORRUPT();
	pbox_pid npid;
	void *n;
	int r = pbox_mtr_alloc(m, BT_PAGE_TYPE, &npid, &n);
	if (r)
		return r;
	memcpy((unsigned char *)n + PBOX_PAGE_HDR, (unsigned char *)o + PBOX_PAGE_HDR,
	       ps - PBOX_PAGE_HDR);
	unsigned char sep[PBOX_BT_KEY_MAX_ANY];
	uint32_t sep_len;
	if ((r = pbox__bt_node_split(n, o, ps, nl, sep, &sep_len)))
		return r;
	uint32_t nlv = nl;
	if ((r = pbox__bt_log_image(m, npid, n, ps)) ||
	    (r = pbox_mtr_log(m, pid, REDO_SPLIT_RIGHT, &nlv, 4)))
		return r;
	void *p;
	if ((r = pbox_mtr_fix(m, parent, &p)))
		return r;
	uint64_t child = npid;
	if ((r = pbox__bt_node_insert(p, ps, sep, sep_len, &child, 8, 0)))
		return r;
	return pbox__bt_log_insert(m, parent, sep, sep_len, &child, 8, 0);
}

/* The root splits into two new children; the root page stays the root. */
static int split_root(pbox_bt *bt, pbox_mtr *m, void *root, uint32_t insert_pos)
{
	uint32_t ps = bt->ps;
	uint32_t nl = pbox__bt_node_split_choose(root, ps, insert_pos);
	if (!nl && pbox__bt_node_is_leaf(root))
		return PBOX_CORRUPT();
	pbox_pid apid, bpid;
	void *a, *b;
	int r;
	if ((r = pbox_mtr_alloc(m, BT_PAGE_TYPE, &apid, &a)) ||
	    (r = pbox_mtr_alloc(m, BT_PAGE_TYPE, &bpid, &b)))
		return r;
	memcpy((unsigned char *)a + PBOX_PAGE_HDR, (unsigned char *)root + PBOX_PAGE_HDR,
	       ps - PBOX_PAGE_HDR);
	unsigned char sep[PBOX_BT_KEY_MAX_ANY];
	uint32_t sep_len;
	if ((r = pbox__bt_node_split(a, b, ps, nl, sep, &sep_len)))
		return r;
	uint64_t child = apid;
	if ((r = pbox__bt_node_init_inner(root, ps, NULL, 0, NULL, 0, bpid)) ||
	    (r = pbox__bt_node_insert(root, ps, sep, sep_len, &child, 8, 0)))
		return r;
	if ((r = pbox__bt_log_image(m, apid, a, ps)) || (r = pbox__bt_log_image(m, bpid, b, ps)) ||
	    (r = pbox__bt_log_image(m, bt->root, root, ps)))
		return r;
	return 0;
}

/* One structure pass for an entry of `need` bytes going to key's leaf: latch the path from
 * the root exclusively, split the topmost node of the chain of full nodes ending at the
 * leaf (if the leaf is full at all), commit. */
int pbox__bt_split_pass(pbox_bt *bt, const void *key, uint32_t klen, uint32_t need)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(bt->st, &m);
	if (r)
		return r;
	bpath p;
	if ((r = pbox__bt_latch_path(bt, m, key, klen, MAX_DEPTH, &p))) {
		pbox_mtr_abort(m, false);
		return r;
	}
	unsigned leaf = p.d - 1;
	if (pbox__bt_node_free_bytes(p.pg[leaf], bt->ps) >= need) {
		pbox_mtr_abort(m, false); /* someone split it meanwhile */
		return 0;
	}
	unsigned t = leaf;
	while (t > 0 && !inner_has_room(p.pg[t - 1], bt->ps))
		t--;
	if (t == 0)
		r = split_root(bt, m, p.pg[0], p.pos[0]);
	else
		r = split_child(bt, m, p.pid[t - 1], p.pid[t], p.pg[t], p.pos[t]);
	if (r) {
		/* a split that failed midway left pages ahead of the log: the store is
		 * poisoned by the abort */
		pbox_mtr_abort(m, true);
		return r;
	}
	return pbox_mtr_commit(m, false, NULL);
}

/* ---- merges ------------------------------------------------------------------------------- */

/* One merge pass after a remove left key's leaf underfull: latch the path from the root
 * exclusively; merge the leaf with a sibling under the same parent when both fit in one
 * node (the left page is freed, the right one keeps the merged node, the parent loses the
 * separator between them); when the root is left with a single child, that child's node
 * moves into the root page (the root id never changes) and the child is freed. */
int pbox__bt_merge_pass(pbox_bt *bt, const void *key, uint32_t klen)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(bt->st, &m);
	if (r)
		return r;
	const uint32_t ps = bt->ps;
	bool changed = false;
	void *scratch = NULL;
	bpath pa;
	/* the mtr holds the path, one sibling per merged level and the allocator's pages */
	PBOX_STATIC_ASSERT(MAX_DEPTH + 4 <= PBOX_MTR_MAX_PAGES, "a merge fits in one mtr");
	if ((r = pbox__bt_latch_path(bt, m, key, klen, MAX_DEPTH, &pa)))
		goto done;
	unsigned d = pa.d, merged = 0;
	void **pg = pa.pg;
	pbox_pid *path = pa.pid;
	uint32_t *pos = pa.pos;
	/* merge the underfull node at level lvl (the leaf first) with a neighbour, then its
	 * parent if that became underfull, and so on below the root */
	for (unsigned lvl = d - 1; lvl >= 1; lvl--) {
		if (!pbox__bt_node_underfull(pg[lvl], ps) ||
		    d + merged + 4 >= PBOX_MTR_MAX_PAGES)
			break;
		void *parent = pg[lvl - 1];
		pbox_pid ppid = path[lvl - 1];
		uint32_t count = pbox__bt_node_count(parent), at = pos[lvl - 1];
		if (count == 0)
			break;
		uint32_t i = at < count ? at : count - 1; /* merge children i and i + 1 */
		pbox_pid lpid, rpid;
		if ((r = pbox__bt_node_child(parent, ps, i, &lpid)) ||
		    (r = pbox__bt_node_child(parent, ps, i + 1, &rpid)))
			goto done;
		void *left, *right;
		if ((r = pbox_mtr_fix(m, lpid, &left)) || (r = pbox_mtr_fix(m, rpid, &right)))
			goto done;
		bool leaf = pbox__bt_node_is_leaf(pg[lvl]);
		if (pbox__bt_page_type(left) != BT_PAGE_TYPE ||
		    pbox__bt_page_type(right) != BT_PAGE_TYPE ||
		    pbox__bt_node_is_leaf(left) != leaf || pbox__bt_node_is_leaf(right) != leaf) {
			r = PBOX_CORRUPT();
			goto done;
		}
		if (pbox__bt_node_merge_check(left, right, ps))
			break; /* too full together: fine as it is */
		if (!scratch && !(scratch = pbox_aligned_alloc(64, ps))) {
			r = -ENOMEM;
			goto done;
		}
		memcpy(scratch, left, ps);
		if ((r = pbox__bt_node_merge(scratch, right, ps)))
			goto done;
		unsigned char sep[PBOX_BT_KEY_MAX_ANY];
		uint32_t sl;
		if ((r = pbox__bt_node_key(parent, ps, i, sep, sizeof(sep), &sl)))
			goto done;
		changed = true;
		merged++;
		memcpy((unsigned char *)right + PBOX_PAGE_HDR,
		       (unsigned char *)scratch + PBOX_PAGE_HDR, ps - PBOX_PAGE_HDR);
		if ((r = pbox__bt_log_image(m, rpid, right, ps)) ||
		    (r = pbox__bt_node_remove(parent, ps, i)) ||
		    (r = pbox__bt_log_remove(m, ppid, sep, sl)) || (r = pbox_mtr_free(m, lpid)))
			goto done;
		if (ppid == bt->root && pbox__bt_node_count(parent) == 0) {
			/* the root has one child left: take its node, free it (the tree loses
			 * a level; the root id stays) */
			memcpy((unsigned char *)parent + PBOX_PAGE_HDR,
			       (unsigned char *)right + PBOX_PAGE_HDR, ps - PBOX_PAGE_HDR);
			if ((r = pbox__bt_log_image(m, ppid, parent, ps)) ||
			    (r = pbox_mtr_free(m, rpid)))
				goto done;
			break;
		}
	}
	pbox_free(scratch);
	if (!changed) {
		pbox_mtr_abort(m, false);
		return 0;
	}
	return pbox_mtr_commit(m, false, NULL);
done:
	pbox_free(scratch);
	pbox_mtr_abort(m, changed); /* changed and failed: the store is poisoned */
	return r;
}
