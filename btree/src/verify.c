/*
 * verify.c — pbox_bt_verify: the whole tree, checked.
 *
 * Checks: every node passes the node self-check (node_verify.c) and has BT_PAGE_TYPE; each
 * node's fences equal the range its parent gives it (child i covers (sep_(i-1), sep_i], the
 * upper child (sep_(n-1), upper]); all leaves are at one depth; keys ascend strictly across
 * leaves. Counts keys, leaves and inner nodes.
 *
 * Latching: a depth-first walk holding shared latches on the path from the root to the
 * node being checked, children latched after their parent (top-down, as every descent, so
 * it deadlocks with none). The root stays latched for the whole walk, so no split or merge
 * (both latch the root exclusively) runs meanwhile: the structure checked is one. Point
 * changes to leaves off the current path go on; each leaf is checked as it is while
 * latched, and a writer that wants it meanwhile waits or restarts.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- verification ------------------------------------------------------------------------ */

typedef struct vstate {
	pbox_bt *bt;
	pbox_bt_verify_info *info;
	uint64_t leaf_depth;
	unsigned char *last;
	uint32_t last_len;
	bool have_last;
} vstate;

/* Check pid (shared-latched here) and its subtree; lower/upper: the range the parent gives
 * it (NULL = infinite). */
static int verify_node(vstate *vs, pbox_pid pid, unsigned depth, const uint8_t *plo,
		       uint32_t plol, const uint8_t *phi, uint32_t phil)
{
	pbox_bt *bt = vs->bt;
	if (depth >= MAX_DEPTH)
		return PBOX_CORRUPT();
	int r = pbox_page_fix_shared(bt->st, pid);
	if (r)
		return r == PBOX_EINVAL ? PBOX_CORRUPT() : r;
	void *page = pbox_page_addr(bt->st, pid);
	const uint8_t *lo, *hi;
	uint32_t lol, hil;
	if (pbox__bt_page_type(page) != BT_PAGE_TYPE) { /* (this used to return 0: verified) */
		r = PBOX_CORRUPT();
		goto out;
	}
	/* a dropped tree's root keeps its page with this kind byte: the handle is stale */
	if (depth == 0 && ((const uint8_t *)page)[PBOX_PAGE_HDR] == DROPPED_KIND) {
		r = PBOX_ECLOSED;
		goto out;
	}
	if ((r = pbox__bt_node_verify(page, bt->ps)) ||
	    (r = pbox__bt_node_fences(page, bt->ps, &lo, &lol, &hi, &hil)))
		goto out;
	/* the node's fences equal the range its parent gives it */
	if ((!lo) != (!plo) || (!hi) != (!phi) ||
	    (lo && pbox__bt_cmp_keys(lo, lol, plo, plol)) ||
	    (hi && pbox__bt_cmp_keys(hi, hil, phi, phil))) {
		r = PBOX_CORRUPT();
		goto out;
	}
	uint32_t n = pbox__bt_node_count(page);
	if (pbox__bt_node_is_leaf(page)) {
		if (vs->leaf_depth == UINT64_MAX)
			vs->leaf_depth = depth;
		if (vs->leaf_depth != depth) {
			r = PBOX_CORRUPT();
			goto out;
		}
		vs->info->leaves++;
		for (uint32_t i = 0; i < n; i++) {
			unsigned char k[PBOX_BT_KEY_MAX_ANY];
			uint32_t kl;
			if ((r = pbox__bt_node_key(page, bt->ps, i, k, sizeof(k), &kl)))
				goto out;
			if (vs->have_last &&
			    pbox__bt_cmp_keys(vs->last, vs->last_len, k, kl) >= 0) {
				r = PBOX_CORRUPT();
				goto out;
			}
			memcpy(vs->last, k, kl);
			vs->last_len = kl;
			vs->have_last = true;
			vs->info->keys++;
		}
		goto out;
	}
	vs->info->inner++;
	/* children: child i covers (sep_(i-1), sep_i], the upper child (sep_(n-1), hi] */
	unsigned char *seps = pbox_malloc(2 * (size_t)PBOX_BT_KEY_MAX_ANY);
	if (!seps) {
		r = -ENOMEM;
		goto out;
	}
	unsigned char *prev = seps, *curk = seps + PBOX_BT_KEY_MAX_ANY;
	uint32_t prevl = 0;
	bool have_prev = false;
	for (uint32_t i = 0; i <= n && !r; i++) {
		pbox_pid child;
		uint32_t cl = 0;
		if ((r = pbox__bt_node_child(page, bt->ps, i, &child)))
			break;
		if (i < n && (r = pbox__bt_node_key(page, bt->ps, i, curk, PBOX_BT_KEY_MAX_ANY, &cl)))
			break;
		const uint8_t *clo = have_prev ? prev : lo;
		uint32_t clol = have_prev ? prevl : lol;
		const uint8_t *chi = i < n ? curk : hi;
		uint32_t chil = i < n ? cl : hil;
		/* release our latch? no: top-down shared latches, children after parents */
		r = verify_node(vs, child, depth + 1, clo, clol, chi, chil);
		if (i < n) {
			unsigned char *t = prev;
			prev = curk;
			curk = t;
			prevl = cl;
			have_prev = true;
		}
	}
	pbox_free(seps);
out:
	pbox_page_unfix_shared(bt->st, pid);
	return r;
}

int pbox_bt_verify(pbox_bt *bt, pbox_bt_verify_info *info)
{
	if (!bt)
		return PBOX_EINVAL;
	pbox_bt_verify_info tmp = { 0 };
	vstate vs = { .bt = bt, .info = &tmp, .leaf_depth = UINT64_MAX };
	vs.last = pbox_malloc(PBOX_BT_KEY_MAX_ANY);
	if (!vs.last)
		return -ENOMEM;
	int r = verify_node(&vs, bt->root, 0, NULL, 0, NULL, 0);
	pbox_free(vs.last);
	if (!r) {
		tmp.depth = vs.leaf_depth == UINT64_MAX ? 0 : vs.leaf_depth + 1;
		if (info)
			*info = tmp;
	}
	return r;
}
