/*
 * inspect.c — pbox_bt_inspect: the shape and space use of one tree, for tools (kvstore
 * inspect) and capacity questions: nodes per level, how full they are, long values on
 * overflow chains, key and value sizes.
 *
 * Walk: depth-first from the root, modelled on verify.c and latched the same way — shared
 * latches on the path from the root to the node being read, children after their parent
 * (top-down, as every descent, so it deadlocks with none). The root stays latched for the
 * whole walk, so no split or merge runs meanwhile (both latch the root exclusively) and the
 * levels counted belong to one structure; point changes to leaves off the current path go
 * on and each leaf is counted as it is while latched. Writers that need the root wait for
 * the walk: it is a maintenance call, like verify.
 *
 * Invariants relied on: every node passes pbox__bt_node_verify before anything else of it is
 * read (so the bytes of a damaged page are never trusted); depth is bounded by MAX_DEPTH,
 * which equals PBOX_BT_INSPECT_LEVELS; all leaves are at one depth (else PBOX_ECORRUPT).
 * Overflow chains are not read: a reference gives the value length and the page count
 * follows from the data bytes per page (pbox__bt_ovf_per_page), chains being immutable and
 * written whole before their leaf refers to them (overflow.c).
 *
 * Threads: any thread, any number at once; the handle may be shared.
 */
#include "tree_int.h"

#include <errno.h>
#include <string.h>

PBOX_STATIC_ASSERT(MAX_DEPTH == PBOX_BT_INSPECT_LEVELS,
		   "inspect: the public level array covers every depth a tree may have");

typedef struct istate {
	pbox_bt *bt;
	pbox_bt_inspect_info *info;
	uint64_t leaf_depth;
} istate;

static unsigned fill_bucket(uint32_t used, uint32_t ns)
{
	uint64_t b = (uint64_t)used * PBOX_BT_INSPECT_FILL_BUCKETS / (ns ? ns : 1);
	return b >= PBOX_BT_INSPECT_FILL_BUCKETS ? PBOX_BT_INSPECT_FILL_BUCKETS - 1 : (unsigned)b;
}

static void size_seen(uint64_t v, uint64_t *mn, uint64_t *mx, uint64_t *sum, bool first)
{
	if (first || v < *mn)
		*mn = v;
	if (first || v > *mx)
		*mx = v;
	*sum += v;
}

/* Count the leaf's entries (page shared-latched and verified by the caller). */
static int inspect_leaf(istate *is, const void *page)
{
	pbox_bt *bt = is->bt;
	pbox_bt_inspect_info *in = is->info;
	uint32_t n = pbox__bt_node_count(page);
	uint32_t per = pbox__bt_ovf_per_page(bt);
	for (uint32_t i = 0; i < n; i++) {
		unsigned char k[PBOX_BT_KEY_MAX_ANY];
		uint32_t kl;
		const uint8_t *p;
		uint32_t pl;
		unsigned fl;
		int r = pbox__bt_node_key(page, bt->ps, i, k, sizeof(k), &kl);
		if (!r)
			r = pbox__bt_node_payload(page, bt->ps, i, &p, &pl, &fl);
		if (r)
			return r;
		uint64_t vlen = pl;
		if (fl & PBOX_BT_SLOT_OVERFLOW) {
			pbox_pid first;
			if ((r = pbox__bt_parse_ref(p, pl, &first, &vlen)))
				return r;
			in->overflow_values++;
			in->overflow_bytes += vlen;
			in->overflow_pages += (vlen + per - 1) / per;
		}
		bool first = in->keys == 0;
		size_seen(kl, &in->key_min, &in->key_max, &in->key_sum, first);
		size_seen(vlen, &in->val_min, &in->val_max, &in->val_sum, first);
		in->keys++;
	}
	return 0;
}

/* Count pid (shared-latched here) and its subtree. */
static int inspect_node(istate *is, pbox_pid pid, unsigned depth)
{
	pbox_bt *bt = is->bt;
	pbox_bt_inspect_info *in = is->info;
	if (depth >= MAX_DEPTH)
		return PBOX_CORRUPT();
	int r = pbox_page_fix_shared(bt->st, pid);
	if (r)
		return r == PBOX_EINVAL ? PBOX_CORRUPT() : r;
	const void *page = pbox_page_addr(bt->st, pid);
	if (pbox__bt_page_type(page) != BT_PAGE_TYPE) {
		r = PBOX_CORRUPT();
		goto out;
	}
	/* a dropped tree's root keeps its page with this kind byte: the handle is stale */
	if (depth == 0 && ((const uint8_t *)page)[PBOX_PAGE_HDR] == DROPPED_KIND) {
		r = PBOX_ECLOSED;
		goto out;
	}
	if ((r = pbox__bt_node_verify(page, bt->ps)))
		goto out;
	uint32_t ns = bt->ps - PBOX_PAGE_HDR;
	uint32_t used = pbox__bt_node_used_bytes(page, bt->ps);
	in->pages[depth]++;
	in->node_bytes_used += used;
	if (pbox__bt_node_is_leaf(page)) {
		if (is->leaf_depth == UINT64_MAX)
			is->leaf_depth = depth;
		if (is->leaf_depth != depth) {
			r = PBOX_CORRUPT();
			goto out;
		}
		in->leaves++;
		in->leaf_fill[fill_bucket(used, ns)]++;
		r = inspect_leaf(is, page);
		goto out;
	}
	in->inner++;
	in->inner_fill[fill_bucket(used, ns)]++;
	uint32_t n = pbox__bt_node_count(page);
	for (uint32_t i = 0; i <= n && !r; i++) {
		pbox_pid child;
		if (!(r = pbox__bt_node_child(page, bt->ps, i, &child)))
			r = inspect_node(is, child, depth + 1);
	}
out:
	pbox_page_unfix_shared(bt->st, pid);
	return r;
}

int pbox_bt_inspect(pbox_bt *bt, pbox_bt_inspect_info *info)
{
	if (!bt || !info)
		return PBOX_EINVAL;
	pbox_bt_inspect_info tmp;
	memset(&tmp, 0, sizeof(tmp));
	tmp.page_size = bt->ps;
	istate is = { .bt = bt, .info = &tmp, .leaf_depth = UINT64_MAX };
	int r = inspect_node(&is, bt->root, 0);
	if (r)
		return r;
	tmp.depth = is.leaf_depth == UINT64_MAX ? 0 : is.leaf_depth + 1;
	*info = tmp;
	return 0;
}
