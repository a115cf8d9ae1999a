/*
 * copy.c — pbox_bt_copy_trees: every tree of one store, as one snapshot, into another
 * store, in key order (the compacting rewrite behind `kvstore compact`).
 *
 * Why a rewrite and not moving pages inside the file: a page can only move with its parent's
 * child pointer, the allocator hands out free pages in free-list order (not the lowest ids),
 * and the free list is a chain through the free pages themselves, so shrinking a file in
 * place means rebuilding that chain under crash safety, page by page. A rewrite in key order
 * gets the same result with the code every store already trusts: appends into each tree (a
 * leaf split at its end keeps the left page full, node_build.c's split choice), so the
 * copy's leaves and inner nodes are nearly full and its file holds about the live data.
 *
 * Consistency: the source is read through one read-only transaction (all trees at one
 * snapshot); concurrent writers on the source go on, and the copy holds the state their
 * commits left before the snapshot. While the copy runs, that snapshot keeps the source's
 * versions of keys changed meanwhile in memory (pbox/txn.h, "Versions").
 *
 * The destination: an open, empty store (no tree, and no other data structure: every meta
 * slot but the catalog's zero). Its changes are not durable until the caller closes or
 * checkpoints it; a crash midway leaves a store the caller discards (kvstore builds it
 * beside the source and swaps the directories only once it is closed).
 *
 * Threads: the call uses the caller's thread; the two stores may be used by others.
 */
#include "tree_int.h"

#include <pbox/alloc.h>
#include <pbox/txn.h>

#include <errno.h>
#include <string.h>

typedef struct copy_ctx {
	pbox_store *src, *dst;
	pbox_txn *snap;
	pbox_bt_copy_info *info;
	int err;
} copy_ctx;

typedef struct tree_copy {
	copy_ctx *c;
	pbox_bt *to;
} tree_copy;

static int pair_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	tree_copy *tc = arg;
	int r = pbox_bt_upsert(tc->to, k, kl, v, vl, 0);
	if (r)
		return r;
	tc->c->info->pairs++;
	tc->c->info->bytes += kl + vl;
	return 0;
}

/* Copy one tree (name NUL-terminated). */
static int copy_tree(copy_ctx *c, const char *nm)
{
	pbox_bt *from = NULL;
	tree_copy tc = { .c = c };
	int r = pbox_bt_open(c->src, nm, &from);
	if (!r)
		r = pbox_bt_create(c->dst, nm, &tc.to);
	if (!r)
		r = pbox_txn_scan(c->snap, from, NULL, 0, NULL, 0, 0, pair_fn, &tc);
	if (!r)
		c->info->trees++;
	pbox_bt_close(tc.to);
	pbox_bt_close(from);
	return r;
}

/* The names, collected first: no tree is opened while the catalog is being listed. */
typedef struct names {
	char (*v)[PBOX_BT_NAME_MAX + 1];
	size_t n, cap;
} names;

static int name_fn(const char *name, size_t len, void *arg)
{
	names *ns = arg;
	if (len > PBOX_BT_NAME_MAX)
		return PBOX_CORRUPT();
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 16;
		void *v = pbox_realloc(ns->v, cap * sizeof(*ns->v));
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	memcpy(ns->v[ns->n], name, len);
	ns->v[ns->n++][len] = 0;
	return 0;
}

static int has_tree(const char *name, size_t len, void *arg)
{
	(void)name;
	(void)len;
	(void)arg;
	return 1;
}

int pbox_bt_copy_trees(pbox_store *src, pbox_store *dst, pbox_bt_copy_info *info)
{
	if (!src || !dst || src == dst)
		return PBOX_EINVAL;
	for (unsigned s = 0; s < PBOX_META_SLOTS; s++)
		if (s != PBOX_BT_META_CATALOG && (pbox_store_meta_get(src, s) || pbox_store_meta_get(dst, s)))
			return PBOX_ENOTSUP; /* another data structure's pages: not ours to copy */
	int r = pbox_bt_list(dst, has_tree, NULL);
	if (r)
		return r == 1 ? PBOX_EEXIST : r;
	pbox_bt_copy_info local;
	memset(&local, 0, sizeof(local));
	copy_ctx c = { .src = src, .dst = dst, .info = &local };
	if ((r = pbox_txn_begin(src, PBOX_TXN_READONLY, &c.snap)))
		return r;
	names ns = { 0 };
	r = pbox_bt_list(src, name_fn, &ns);
	for (size_t i = 0; i < ns.n && !r; i++)
		r = copy_tree(&c, ns.v[i]);
	pbox_free(ns.v);
	pbox_txn_abort(c.snap);
	if (!r && info)
		*info = local;
	return r;
}
