/*
 * catalog.c — named trees: create, open, list, drop.
 *
 * The catalog is a tree of the store like any other (its root id in the store meta slot
 * PBOX_BT_META_CATALOG, created on first use) mapping a name to its tree's u64 root page
 * id. A root id never changes (R4, smo.c), so a handle is just (store, root, page size):
 * after open it never consults the catalog again.
 *
 * The catalog lock serializes, per store, the steps that must not interleave: creating the
 * catalog itself (two first users would both allocate one), looking a name up and creating
 * its tree (two creators would both allocate a root), and dropping a tree (a create of the
 * same name must see it either before or after). Lists, and every operation on a tree
 * once it is open, take no catalog lock: the catalog is an ordinary tree with R1-R4.
 *
 * Which lock: the btree has no per-store object to keep one in (pbox_store is storage's
 * and opaque, handles are independent of each other), so the lock of a store is one of
 * CATALOG_LOCKS mutexes picked by a hash of the store pointer — a striped lock. The same
 * store always maps to the same mutex, which is all correctness needs; two stores wait for
 * each other only when their pointers hash alike. Nothing is registered when a store opens
 * or cleaned up when it closes (a registry keyed by pbox_store * would need both, and
 * storage tells the btree of neither). A thread takes a catalog lock holding no page latch
 * and no other catalog lock, and takes page latches under it only top-down like every
 * descent, so the stripes add no deadlock the old process-wide mutex (the one-stripe case)
 * did not have.
 *
 * Dropping a tree: (1) mark its root DROPPED_KIND, logged (every later descent through a
 * handle on it gets PBOX_ECLOSED; splits in flight hold the root and finish first), (2)
 * remove the name durably, (3) free its pages, overflow chains included, a few per mtr. A
 * crash after (2) leaks the pages until pbox_bt_reclaim frees them. The root page stays
 * behind on purpose: open handles keep reading it.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- trees and the catalog ------------------------------------------------------------- */

enum { CATALOG_LOCKS = 64 }; /* a power of two */

static pthread_mutex_t catalog_locks[CATALOG_LOCKS] = {
	[0 ... CATALOG_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER,
};

/* The catalog lock of st (see the file comment). */
static pthread_mutex_t *catalog_lock(const pbox_store *st)
{
	/* Fibonacci hashing: the top bits of the product depend on every bit of the pointer
	 * (its low bits are alignment zeros, its high ones mostly the same for every store) */
	uint64_t h = (uint64_t)(uintptr_t)st * 0x9e3779b97f4a7c15ull;
	return &catalog_locks[h >> (64 - 6)];
}
PBOX_STATIC_ASSERT(CATALOG_LOCKS == 1 << 6, "catalog_lock takes the top 6 bits of the hash");

/* Allocate and log an empty leaf with infinite fences: a new tree's root. */
static int new_root(pbox_store *st, pbox_mtr *m, pbox_pid *out)
{
	void *page;
	uint32_t ps = pbox_store_page_size(st);
	int r = pbox_mtr_alloc(m, BT_PAGE_TYPE, out, &page);
	if (!r)
		r = pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0);
	if (!r)
		r = pbox__bt_log_image(m, *out, page, ps);
	return r;
}

int pbox__bt_catalog(pbox_store *st, bool create, pbox_bt *cat)
{
	cat->st = st;
	cat->ps = pbox_store_page_size(st);
	cat->root = pbox_store_meta_get(st, PBOX_BT_META_CATALOG);
	if (cat->root)
		return 0;
	if (!create)
		return PBOX_ENOTFOUND;
	pthread_mutex_t *mu = catalog_lock(st);
	pthread_mutex_lock(mu);
	int r = 0;
	cat->root = pbox_store_meta_get(st, PBOX_BT_META_CATALOG);
	if (!cat->root) {
		pbox_mtr *m;
		pbox_pid root;
		if (!(r = pbox_mtr_begin(st, &m))) {
			if ((r = new_root(st, m, &root)) ||
			    (r = pbox_mtr_meta_set(m, PBOX_BT_META_CATALOG, root)))
				pbox_mtr_abort(m, true);
			else
				r = pbox_mtr_commit(m, true, NULL);
		}
		if (!r)
			cat->root = root;
	}
	pthread_mutex_unlock(mu);
	return r;
}

static int check_name(const char *name, size_t *len)
{
	if (!name)
		return PBOX_EINVAL;
	*len = strlen(name);
	return *len == 0 || *len > PBOX_BT_NAME_MAX ? PBOX_EINVAL : 0;
}

static int make_handle(pbox_store *st, pbox_pid root, pbox_bt **out)
{
	pbox_bt *bt = pbox_malloc(sizeof(*bt));
	if (!bt)
		return -ENOMEM;
	bt->st = st;
	bt->root = root;
	bt->ps = pbox_store_page_size(st);
	*out = bt;
	return 0;
}

static int open_named(pbox_store *st, const char *name, bool create, bool must_create,
		      pbox_bt **out)
{
	size_t len;
	int r = check_name(name, &len);
	if (r)
		return r;
	pbox_bt cat;
	if ((r = pbox__bt_catalog(st, create, &cat)))
		return r == PBOX_ENOTFOUND ? PBOX_ENOTFOUND : r;
	/* names are created under the store's catalog lock so two creators cannot both
	 * allocate a root */
	pthread_mutex_t *mu = catalog_lock(st);
	pthread_mutex_lock(mu);
	pbox_pid root = 0;
	size_t vlen;
	r = pbox_bt_lookup(&cat, name, len, &root, sizeof(root), &vlen);
	if (r == 0 && (vlen != sizeof(root) || root < PBOX_BT_NODE_PID_MIN))
		r = PBOX_CORRUPT();
	if (r == 0 && must_create)
		r = PBOX_EEXIST;
	if (r == PBOX_ENOTFOUND && create) {
		pbox_mtr *m;
		if (!(r = pbox_mtr_begin(st, &m))) {
			if ((r = new_root(st, m, &root)))
				pbox_mtr_abort(m, true);
			else
				r = pbox_mtr_commit(m, false, NULL);
		}
		if (!r)
			r = pbox_bt_insert(&cat, name, len, &root, sizeof(root), PBOX_BT_DURABLE);
	}
	pthread_mutex_unlock(mu);
	if (r)
		return r;
	return make_handle(st, root, out);
}

int pbox_bt_create(pbox_store *st, const char *name, pbox_bt **out)
{
	return open_named(st, name, true, true, out);
}

int pbox_bt_open(pbox_store *st, const char *name, pbox_bt **out)
{
	return open_named(st, name, false, false, out);
}

int pbox_bt_open_or_create(pbox_store *st, const char *name, pbox_bt **out)
{
	return open_named(st, name, true, false, out);
}

void pbox_bt_close(pbox_bt *bt)
{
	pbox_free(bt);
}

/* Every page of the tree below root (whose node kind byte was `kind` before the drop
 * marked it), overflow chains included, into *v. */
static int collect_pages(pbox_bt *bt, pbox_pid root, unsigned char kind, pbox_pid **v,
			 size_t *n)
{
	size_t cap = 64, nstack = 1;
	pbox_pid *stack = pbox_malloc(64 * sizeof(pbox_pid));
	unsigned char *buf = pbox_aligned_alloc(64, bt->ps);
	int r = 0;
	*v = pbox_malloc(cap * sizeof(pbox_pid));
	*n = 0;
	if (!stack || !buf || !*v) {
		r = -ENOMEM;
		goto out;
	}
	size_t scap = 64;
	stack[0] = root;
	while (nstack && !r) {
		pbox_pid pid = stack[--nstack];
		if ((r = pbox_page_fix_shared(bt->st, pid)))
			break;
		memcpy(buf, pbox_page_addr(bt->st, pid), bt->ps);
		pbox_page_unfix_shared(bt->st, pid);
		if (pid == root)
			buf[PBOX_PAGE_HDR] = kind;
		if (pbox__bt_page_type(buf) != BT_PAGE_TYPE) {
			r = PBOX_CORRUPT();
			break;
		}
		if (pid != root) {
			if (*n == cap) {
				pbox_pid *nv = pbox_realloc(*v, 2 * cap * sizeof(pbox_pid));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				*v = nv;
				cap *= 2;
			}
			(*v)[(*n)++] = pid;
		}
		uint32_t cnt = pbox__bt_node_count(buf);
		if (pbox__bt_node_is_leaf(buf)) {
			for (uint32_t i = 0; i < cnt && !r; i++) {
				const uint8_t *p;
				uint32_t plen;
				unsigned fl;
				pbox_pid first;
				uint64_t vlen;
				if ((r = pbox__bt_node_payload(buf, bt->ps, i, &p, &plen, &fl)) ||
				    !(fl & PBOX_BT_SLOT_OVERFLOW) ||
				    (r = pbox__bt_parse_ref(p, plen, &first, &vlen)))
					continue;
				/* the chain's pages are freed through the ordinary chain walk */
				r = pbox__bt_ovf_free(bt, first, vlen);
			}
			continue;
		}
		for (uint32_t i = 0; i <= cnt && !r; i++) {
			pbox_pid child;
			if ((r = pbox__bt_node_child(buf, bt->ps, i, &child)))
				break;
			if (nstack == scap) {
				pbox_pid *ns = pbox_realloc(stack, 2 * scap * sizeof(pbox_pid));
				if (!ns) {
					r = -ENOMEM;
					break;
				}
				stack = ns;
				scap *= 2;
			}
			stack[nstack++] = child;
		}
	}
out:
	pbox_free(stack);
	pbox_free(buf);
	return r;
}

int pbox_bt_drop(pbox_store *st, const char *name)
{
	size_t len;
	int r = check_name(name, &len);
	if (r)
		return r;
	pbox_bt cat;
	if ((r = pbox__bt_catalog(st, false, &cat)))
		return r;
	pthread_mutex_t *mu = catalog_lock(st);
	pthread_mutex_lock(mu);
	pbox_pid root = 0;
	size_t vlen;
	r = pbox_bt_lookup(&cat, name, len, &root, sizeof(root), &vlen);
	if (r == 0 && (vlen != sizeof(root) || root < PBOX_BT_NODE_PID_MIN))
		r = PBOX_CORRUPT();
	/* 1: mark the root: every later descent gets PBOX_ECLOSED; in-flight splits finish
	 * first (they hold the root) */
	unsigned char kind = 0;
	if (!r) {
		pbox_mtr *m;
		void *page;
		if (!(r = pbox_mtr_begin(st, &m))) {
			if ((r = pbox_mtr_fix(m, root, &page)) ||
			    pbox__bt_page_type(page) != BT_PAGE_TYPE ||
			    ((unsigned char *)page)[PBOX_PAGE_HDR] == DROPPED_KIND) {
				pbox_mtr_abort(m, false);
				r = r ? r : PBOX_CORRUPT();
			} else {
				kind = ((unsigned char *)page)[PBOX_PAGE_HDR];
				((unsigned char *)page)[PBOX_PAGE_HDR] = DROPPED_KIND;
				if ((r = pbox_mtr_log(m, root, REDO_DROP, NULL, 0)))
					pbox_mtr_abort(m, true);
				else
					r = pbox_mtr_commit(m, false, NULL);
			}
		}
	}
	/* 2: out of the catalog (durable); 3: free its pages (a crash here leaks them) */
	if (!r)
		r = pbox_bt_remove(&cat, name, len, PBOX_BT_DURABLE);
	pthread_mutex_unlock(mu);
	if (r)
		return r;
	pbox_bt tree = { .st = st, .root = root, .ps = pbox_store_page_size(st) };
	pbox_pid *pages = NULL;
	size_t n = 0;
	r = collect_pages(&tree, root, kind, &pages, &n);
	for (size_t i = 0; i < n && !r;) {
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(st, &m)))
			break;
		bool changed = false;
		for (unsigned k = 0; k < OVF_PAGES_PER_MTR && i < n && !r; k++, i++) {
			if (!(r = pbox_mtr_fix(m, pages[i], NULL)) && !(r = pbox_mtr_free(m, pages[i])))
				changed = true;
		}
		if (r)
			pbox_mtr_abort(m, changed);
		else
			r = pbox_mtr_commit(m, false, NULL);
	}
	pbox_free(pages);
	return r;
}

typedef struct list_ctx {
	int (*fn)(const char *name, size_t len, void *arg);
	void *arg;
} list_ctx;

static int list_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	(void)vlen;
	list_ctx *c = arg;
	char name[PBOX_BT_NAME_MAX + 1];
	if (klen > PBOX_BT_NAME_MAX)
		return PBOX_CORRUPT();
	memcpy(name, key, klen);
	name[klen] = 0;
	return c->fn(name, klen, c->arg);
}

int pbox_bt_list(pbox_store *st, int (*fn)(const char *name, size_t len, void *arg), void *arg)
{
	pbox_bt cat;
	int r = pbox__bt_catalog(st, false, &cat);
	if (r)
		return r == PBOX_ENOTFOUND ? 0 : r;
	list_ctx c = { fn, arg };
	return pbox_bt_scan(&cat, NULL, 0, NULL, 0, list_one, &c);
}
