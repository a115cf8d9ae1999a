/*
 * tree.c — the B+tree over node.c's slotted pages: catalog, optimistic descent, point
 * operations, splits (a root id that never changes), scans, verification, redo.
 *
 * Concurrency (ARCHITECTURE §8):
 *   R1 Readers and writers descend with optimistic lock coupling, reading each node in
 *      place: search it through racy loads (racy.h; node.c bounds-checks every value it
 *      loads), validate its version, fault the child in and take the child's version,
 *      validate the node again — then the child is still the one the unchanged parent
 *      names, so it covers the key at that version. Nothing is written or copied on the
 *      way down; a failed validation restarts from the root, and 64 restarts fall back to
 *      shared latch coupling (whose verdict is final). Lookups copy the value out of the
 *      leaf and validate; scans and cursors copy whole leaves and validate.
 *   R2 A point change upgrades the leaf it read (pbox_mtr_fix_upgrade: succeeds only if the
 *      version did not move), changes it, logs one physiological record, commits.
 *   R3 A leaf without room is split by a separate structure mtr that latches the path
 *      exclusively from the root down (top-down order: no deadlock with other structure
 *      mtrs, R2 writers hold a single leaf, readers hold nothing), splits the topmost node
 *      of the chain of full nodes ending at the leaf, and commits; the change restarts.
 *   R4 A split keeps the right half in the old page and moves the left half to a new page,
 *      so the parent only gains one separator (sep -> new page). The root splits into two
 *      new children and stays where it is.
 *
 * Redo records (physiological, types from PBOX_REDO_TYPE_USER + 0x10):
 *   IMAGE        node area (page_size - 32 bytes): new pages, the root after a root split
 *   INSERT       u32 flags, u32 klen, key, payload          node_insert
 *   REMOVE       u32 klen, key                              lower_bound + node_remove
 *   SPLIT_RIGHT  u32 nl                                     the page keeps the right half
 */
#define _GNU_SOURCE
#include <pbox/btree.h>

#include "node.h"
#include "racy.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BT_PAGE_TYPE (PBOX_PAGE_TYPE_USER + 2)
#define REDO_IMAGE (PBOX_REDO_TYPE_USER + 0x10)
#define REDO_INSERT (PBOX_REDO_TYPE_USER + 0x11)
#define REDO_REMOVE (PBOX_REDO_TYPE_USER + 0x12)
#define REDO_SPLIT_RIGHT (PBOX_REDO_TYPE_USER + 0x13)
#define REDO_DROP (PBOX_REDO_TYPE_USER + 0x14)
#define MAX_DEPTH 24
#ifndef PREFETCH_LINES
#define PREFETCH_LINES 8u
#endif
#define OVF_PAGE_TYPE (PBOX_PAGE_TYPE_USER + 3)
#define OVF_HDR 12u /* at PBOX_PAGE_HDR: u64 next page id (0: last), u32 bytes here */
#define OVF_REF 16u /* a leaf's overflow payload: u64 first page id, u64 value length */
#define OVF_PAGES_PER_MTR 24u
#define DROPPED_KIND 0x44u /* 'D': the node kind byte of a dropped tree's root */

struct pbox_bt {
	pbox_store *st;
	pbox_pid root;
	uint32_t ps;
};

static uint16_t page_type(const void *page)
{
	uint16_t t;
	memcpy(&t, (const unsigned char *)page + 4, 2);
	return t;
}

/* ---- redo ------------------------------------------------------------------------------- */

static int redo_image(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	if (len != ps - PBOX_PAGE_HDR)
		return PBOX_ECORRUPT;
	memcpy((unsigned char *)page + PBOX_PAGE_HDR, p, len);
	return pbox__bt_node_verify(page, ps) ? PBOX_ECORRUPT : 0;
}

static int redo_insert(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t flags, klen;
	if (len < 8)
		return PBOX_ECORRUPT;
	memcpy(&flags, p, 4);
	memcpy(&klen, (const char *)p + 4, 4);
	if (klen > len - 8)
		return PBOX_ECORRUPT;
	const char *k = (const char *)p + 8;
	int r = pbox__bt_node_insert(page, ps, k, klen, k + klen, len - 8 - klen, flags);
	return r ? PBOX_ECORRUPT : 0;
}

static int redo_remove(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t klen;
	if (len < 4)
		return PBOX_ECORRUPT;
	memcpy(&klen, p, 4);
	if (klen != len - 4)
		return PBOX_ECORRUPT;
	uint32_t pos;
	bool exact;
	int r = pbox__bt_node_lower_bound(page, ps, (const char *)p + 4, klen, &pos, &exact);
	if (r || !exact)
		return PBOX_ECORRUPT;
	return pbox__bt_node_remove(page, ps, pos) ? PBOX_ECORRUPT : 0;
}

static int redo_split_right(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t nl;
	if (len != 4)
		return PBOX_ECORRUPT;
	memcpy(&nl, p, 4);
	void *scratch = pbox_aligned_alloc(4096, ps);
	if (!scratch)
		return -ENOMEM;
	memcpy(scratch, page, ps);
	unsigned char sep[PBOX_BT_KEY_MAX_ANY];
	uint32_t sep_len;
	int r = pbox__bt_node_split(scratch, page, ps, nl, sep, &sep_len);
	pbox_free(scratch);
	return r ? PBOX_ECORRUPT : 0;
}

static int redo_drop(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	(void)p;
	if (len != 0 || ps <= PBOX_PAGE_HDR)
		return PBOX_ECORRUPT;
	((unsigned char *)page)[PBOX_PAGE_HDR] = DROPPED_KIND;
	return 0;
}

static const pbox_redo_handler handlers[] = {
	{ REDO_DROP, redo_drop, NULL },
	{ REDO_IMAGE, redo_image, NULL },
	{ REDO_INSERT, redo_insert, NULL },
	{ REDO_REMOVE, redo_remove, NULL },
	{ REDO_SPLIT_RIGHT, redo_split_right, NULL },
};

void pbox_bt_redo_handlers(const pbox_redo_handler **h, unsigned *n)
{
	*h = handlers;
	*n = PBOX_ARRAY_LEN(handlers);
}

/* ---- logging helpers (inside an mtr; the page is already changed) ---------------------- */

static int log_image(pbox_mtr *m, pbox_pid pid, const void *page, uint32_t ps)
{
	return pbox_mtr_log(m, pid, REDO_IMAGE, (const unsigned char *)page + PBOX_PAGE_HDR,
			    ps - PBOX_PAGE_HDR);
}

static int log_insert(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen,
		      const void *val, uint32_t vlen, uint32_t flags)
{
	size_t n = 8 + (size_t)klen + vlen;
	unsigned char stackbuf[1024];
	unsigned char *b = n <= sizeof(stackbuf) ? stackbuf : pbox_malloc(n);
	if (!b)
		return -ENOMEM;
	memcpy(b, &flags, 4);
	memcpy(b + 4, &klen, 4);
	if (klen)
		memcpy(b + 8, key, klen);
	if (vlen)
		memcpy(b + 8 + klen, val, vlen);
	int r = pbox_mtr_log(m, pid, REDO_INSERT, b, (uint32_t)n);
	if (b != stackbuf)
		pbox_free(b);
	return r;
}

static int log_remove(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen)
{
	unsigned char b[4 + PBOX_BT_KEY_MAX_ANY];
	memcpy(b, &klen, 4);
	if (klen)
		memcpy(b + 4, key, klen);
	return pbox_mtr_log(m, pid, REDO_REMOVE, b, 4 + klen);
}

/* ---- optimistic node reads (R1) ------------------------------------------------------- */

/* Copy page pid into buf consistently; *version = the latch version it was read at. */
static int read_node(pbox_bt *bt, pbox_pid pid, void *buf, uint64_t *version)
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
			if (page_type(buf) != BT_PAGE_TYPE)
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
			if (page_type(buf) != BT_PAGE_TYPE)
				return PBOX_ERESTART;
			if (((unsigned char *)buf)[PBOX_PAGE_HDR] == DROPPED_KIND)
				return PBOX_ECLOSED;
			*version = vv;
			return 0;
		}
	}
}

/* Is key within the node's fences (lower < key <= upper)? */
static int key_in_range(const void *node, uint32_t ps, const void *key, uint32_t klen, bool *in)
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

/* Racy reads of a page's type and node kind (R1). */
static uint16_t page_type_racy(const void *page)
{
	return rd16((const uint8_t *)page + 4);
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
/* Where a leaf hangs: its parent, the parent's version and the leaf's slot there (for
 * stepping to a neighbour without a descent); parent PBOX_PID_NONE when unknown. */
typedef struct leaf_parent {
	pbox_pid parent;
	uint64_t version;
	uint32_t pos;
} leaf_parent;

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
		uint16_t type = page_type_racy(page);
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
static int next_leaf(pbox_bt *bt, leaf_parent *lp, void *buf, pbox_pid *leaf, uint64_t *version)
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
	if (!pbox_page_validate(st, child, cv) || page_type(buf) != BT_PAGE_TYPE ||
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
			r = PBOX_ECORRUPT;
			break;
		}
		if ((r = pbox_page_fix_shared(bt->st, pid))) {
			r = r == PBOX_EINVAL ? PBOX_ECORRUPT : r;
			break;
		}
		if (held != PBOX_PID_NONE)
			pbox_page_unfix_shared(bt->st, held);
		held = pid;
		memcpy(buf, pbox_page_addr(bt->st, pid), bt->ps);
		bool in;
		if (page_type(buf) == BT_PAGE_TYPE &&
		    ((unsigned char *)buf)[PBOX_PAGE_HDR] == DROPPED_KIND) {
			r = PBOX_ECLOSED;
			break;
		}
		if (page_type(buf) != BT_PAGE_TYPE ||
		    (r = key_in_range(buf, bt->ps, key, klen, &in)) || !in) {
			r = r ? r : PBOX_ECORRUPT;
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
static int descend_retry_lp(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
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

static int descend_retry(pbox_bt *bt, const void *key, uint32_t klen, void *buf,
			 pbox_pid *leaf, uint64_t *version)
{
	return descend_retry_lp(bt, key, klen, buf, leaf, version, NULL);
}

/* ---- trees and the catalog ------------------------------------------------------------- */

static pthread_mutex_t catalog_mu = PTHREAD_MUTEX_INITIALIZER;

/* Allocate and log an empty leaf with infinite fences: a new tree's root. */
static int new_root(pbox_store *st, pbox_mtr *m, pbox_pid *out)
{
	void *page;
	uint32_t ps = pbox_store_page_size(st);
	int r = pbox_mtr_alloc(m, BT_PAGE_TYPE, out, &page);
	if (!r)
		r = pbox__bt_node_init_leaf(page, ps, NULL, 0, NULL, 0);
	if (!r)
		r = log_image(m, *out, page, ps);
	return r;
}

static int catalog(pbox_store *st, bool create, pbox_bt *cat)
{
	cat->st = st;
	cat->ps = pbox_store_page_size(st);
	cat->root = pbox_store_meta_get(st, PBOX_BT_META_CATALOG);
	if (cat->root)
		return 0;
	if (!create)
		return PBOX_ENOTFOUND;
	pthread_mutex_lock(&catalog_mu);
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
	pthread_mutex_unlock(&catalog_mu);
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
	if ((r = catalog(st, create, &cat)))
		return r == PBOX_ENOTFOUND ? PBOX_ENOTFOUND : r;
	/* names are created under catalog_mu so two creators cannot both allocate a root */
	pthread_mutex_lock(&catalog_mu);
	pbox_pid root = 0;
	size_t vlen;
	r = pbox_bt_lookup(&cat, name, len, &root, sizeof(root), &vlen);
	if (r == 0 && (vlen != sizeof(root) || root < PBOX_BT_NODE_PID_MIN))
		r = PBOX_ECORRUPT;
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
	pthread_mutex_unlock(&catalog_mu);
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

static int ovf_free(pbox_bt *bt, pbox_pid first, uint64_t vlen);
static int parse_ref(const uint8_t *p, uint32_t plen, pbox_pid *first, uint64_t *vlen);

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
		if (page_type(buf) != BT_PAGE_TYPE) {
			r = PBOX_ECORRUPT;
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
				    !(fl & PBOX_BT_SLOT_OVERFLOW) || (r = parse_ref(p, plen, &first, &vlen)))
					continue;
				/* the chain's pages are freed through the ordinary chain walk */
				r = ovf_free(bt, first, vlen);
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
	if ((r = catalog(st, false, &cat)))
		return r;
	pthread_mutex_lock(&catalog_mu);
	pbox_pid root = 0;
	size_t vlen;
	r = pbox_bt_lookup(&cat, name, len, &root, sizeof(root), &vlen);
	if (r == 0 && (vlen != sizeof(root) || root < PBOX_BT_NODE_PID_MIN))
		r = PBOX_ECORRUPT;
	/* 1: mark the root: every later descent gets PBOX_ECLOSED; in-flight splits finish
	 * first (they hold the root) */
	unsigned char kind = 0;
	if (!r) {
		pbox_mtr *m;
		void *page;
		if (!(r = pbox_mtr_begin(st, &m))) {
			if ((r = pbox_mtr_fix(m, root, &page)) || page_type(page) != BT_PAGE_TYPE ||
			    ((unsigned char *)page)[PBOX_PAGE_HDR] == DROPPED_KIND) {
				pbox_mtr_abort(m, false);
				r = r ? r : PBOX_ECORRUPT;
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
	pthread_mutex_unlock(&catalog_mu);
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
		return PBOX_ECORRUPT;
	memcpy(name, key, klen);
	name[klen] = 0;
	return c->fn(name, klen, c->arg);
}

int pbox_bt_list(pbox_store *st, int (*fn)(const char *name, size_t len, void *arg), void *arg)
{
	pbox_bt cat;
	int r = catalog(st, false, &cat);
	if (r)
		return r == PBOX_ENOTFOUND ? 0 : r;
	list_ctx c = { fn, arg };
	return pbox_bt_scan(&cat, NULL, 0, NULL, 0, list_one, &c);
}

size_t pbox_bt_key_max(const pbox_store *st)
{
	return PBOX_BT_KEY_MAX(pbox_store_page_size(st));
}

size_t pbox_bt_value_max(const pbox_store *st, size_t klen)
{
	return klen > PBOX_BT_KEY_MAX(pbox_store_page_size(st)) ? 0 : PBOX_BT_VALUE_MAX_BYTES;
}

/* Longest value stored inline in a leaf for a key of klen bytes; longer ones go to overflow
 * pages (the leaf then holds a 16-byte reference). */
static uint32_t inline_max(const pbox_bt *bt, uint32_t klen)
{
	uint32_t e = PBOX_BT_ENTRY_MAX(bt->ps) - klen;
	/* keep leaves dense: at most a quarter of a node inline */
	uint32_t q = (bt->ps - PBOX_PAGE_HDR) / 4 - klen;
	return e < q ? e : q;
}

static int check_kv(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (!bt || (klen && !key) || (vlen && !val))
		return PBOX_EINVAL;
	if (klen > PBOX_BT_KEY_MAX(bt->ps) || vlen > pbox_bt_value_max(bt->st, klen))
		return PBOX_EINVAL;
	return 0;
}

/* ---- overflow values ------------------------------------------------------------------------
 *
 * A long value lives on a chain of overflow pages (type OVF_PAGE_TYPE): each holds OVF_HDR
 * bytes (next page id, bytes on this page) and then data. Chains are written before the leaf
 * that refers to them (in mini-transactions of their own, last page first so each page's next
 * id is known) and are immutable; a replaced or removed value's chain is freed after the leaf
 * change has committed. A reader that followed a reference re-validates the leaf copy it came
 * from afterwards: an unchanged leaf means the chain was not freed meanwhile. A crash between
 * writing a chain and committing its leaf leaves the chain's pages allocated and unreachable
 * (not reclaimed yet). */

static uint32_t ovf_per_page(const pbox_bt *bt)
{
	return bt->ps - PBOX_PAGE_HDR - OVF_HDR;
}

static int ovf_write(pbox_bt *bt, const void *val, size_t vlen, pbox_pid *first)
{
	const uint32_t per = ovf_per_page(bt);
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
static int ovf_free(pbox_bt *bt, pbox_pid first, uint64_t vlen)
{
	uint64_t left = (vlen + ovf_per_page(bt) - 1) / ovf_per_page(bt);
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
			if (page_type(page) != OVF_PAGE_TYPE) {
				r = PBOX_ECORRUPT;
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
	const uint32_t per = ovf_per_page(bt);
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
		if (page_type(pagebuf) != OVF_PAGE_TYPE)
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

static int parse_ref(const uint8_t *p, uint32_t plen, pbox_pid *first, uint64_t *vlen)
{
	if (plen != OVF_REF)
		return PBOX_ECORRUPT;
	memcpy(first, p, 8);
	memcpy(vlen, p + 8, 8);
	return *first >= PBOX_BT_NODE_PID_MIN && *vlen <= PBOX_BT_VALUE_MAX_BYTES ? 0
										    : PBOX_ECORRUPT;
}

/* The value of slot pos of a leaf copy: inline, or read from its chain into *heap (grown as
 * needed). For a chain, the live leaf is latched shared while the chain is read: the key's
 * reference is looked up again in it (the copy may be stale), and the chain cannot be freed
 * meanwhile (that needs the leaf exclusively first). Eviction cannot disturb it either (a
 * version check would: the leaf may be evicted while a long chain is read under a small
 * budget). PBOX_ERESTART when the key is gone from the live leaf. */
static int ovf_value(pbox_bt *bt, pbox_pid leaf_pid, const void *key, uint32_t klen,
		     const void **val, size_t *vlen, unsigned char **heap, size_t *heap_cap);

static int leaf_value(pbox_bt *bt, const void *leaf, pbox_pid leaf_pid, const void *key,
		      uint32_t klen, uint32_t pos, const void **val, size_t *vlen,
		      unsigned char **heap, size_t *heap_cap)
{
	const uint8_t *p;
	uint32_t plen;
	unsigned fl;
	int r = pbox__bt_node_payload(leaf, bt->ps, pos, &p, &plen, &fl);
	if (r)
		return r;
	if (!(fl & PBOX_BT_SLOT_OVERFLOW)) {
		*val = p;
		*vlen = plen;
		return 0;
	}
	return ovf_value(bt, leaf_pid, key, klen, val, vlen, heap, heap_cap);
}

/* The overflow value of key, read with the live leaf latched shared (see above). */
static int ovf_value(pbox_bt *bt, pbox_pid leaf_pid, const void *key, uint32_t klen,
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
	if (page_type(live) != BT_PAGE_TYPE || !pbox__bt_node_is_leaf(live)) {
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
	if ((r = parse_ref(p, plen, &first, &n)))
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
		r = PBOX_ECORRUPT; /* the leaf refers to it and cannot change: a damaged chain */
out:
	pbox_page_unfix_shared(bt->st, leaf_pid);
	if (!r) {
		*val = *heap;
		*vlen = n;
	}
	return r;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* Look key up in the leaf read in place: copy its value into dst (capacity cap) and
 * validate. 0 with *vlen; PBOX_ENOTFOUND; PBOX_ETOOSMALL (*vlen = the length, nothing
 * copied); PBOX_ERESTART (the leaf changed: descend again); 1 when the value lives on
 * overflow pages (validated: the caller reads it under a shared latch). Only a validated
 * read yields anything but PBOX_ERESTART. */
static int leaf_get(pbox_bt *bt, pbox_pid leaf, uint64_t v, const void *key, uint32_t klen,
		    void *dst, size_t cap, size_t *vlen, uint32_t *pos_out)
{
	const void *page = pbox_page_addr(bt->st, leaf);
	uint32_t pos;
	bool exact;
	const uint8_t *p = NULL;
	uint32_t plen = 0;
	unsigned fl = 0;
	int r = pbox__bt_node_find_payload(page, bt->ps, key, klen, &pos, &exact, &p, &plen, &fl);
	if (!r && exact && !(fl & PBOX_BT_SLOT_OVERFLOW) && plen <= cap)
		rdcopy(dst, p, plen);
	if (!pbox_page_validate(bt->st, leaf, v))
		return PBOX_ERESTART;
	if (r)
		return r;
	if (!exact)
		return PBOX_ENOTFOUND;
	*pos_out = pos;
	if (fl & PBOX_BT_SLOT_OVERFLOW)
		return 1;
	*vlen = plen;
	return plen <= cap ? 0 : PBOX_ETOOSMALL;
}

/* The lookup both public forms share: an inline value is copied into dst (cap bytes) and,
 * when fn is given, handed to fn from there; an overflow value is assembled in a heap
 * buffer and handed to fn (or copied into dst). With fn, an inline value longer than cap
 * sets *grow (PBOX_ETOOSMALL, *vlen its length) instead of calling fn. */
static int lookup(pbox_bt *bt, const void *key, size_t klen, void *dst, size_t cap,
		  size_t *vlen, int (*fn)(const void *val, size_t vlen, void *arg), void *arg,
		  bool *grow)
{
	int r = check_kv(bt, key, klen, NULL, 0);
	if (r)
		return r;
	const uint32_t kl = (uint32_t)klen;
	unsigned char *heap = NULL;
	size_t heap_cap = 0;
	void *buf = NULL;
	for (unsigned restarts = 0;; restarts++) {
		pbox_pid leaf;
		uint64_t v;
		uint32_t pos;
		/* after many failed validations the leaf is read under a shared latch (buf) */
		if (restarts == 64 && !(buf = pbox_aligned_alloc(64, bt->ps))) {
			r = -ENOMEM;
			break;
		}
		if ((r = descend_retry(bt, key, kl, buf, &leaf, &v)))
			break;
		if (!buf) {
			r = leaf_get(bt, leaf, v, key, kl, dst, cap, vlen, &pos);
			if (r == PBOX_ERESTART)
				continue;
			if (r != 1) { /* 1: an overflow value, read below */
				if (r == PBOX_ETOOSMALL && fn)
					*grow = true;
				else if (r == 0 && fn)
					r = fn(dst, *vlen, arg);
				break;
			}
		} else {
			bool exact;
			if ((r = pbox__bt_node_lower_bound(buf, bt->ps, key, kl, &pos, &exact)))
				break;
			if (!exact) {
				r = PBOX_ENOTFOUND;
				break;
			}
		}
		const void *val;
		size_t n;
		r = buf ? leaf_value(bt, buf, leaf, key, kl, pos, &val, &n, &heap, &heap_cap)
			: ovf_value(bt, leaf, key, kl, &val, &n, &heap, &heap_cap);
		if (r == PBOX_ERESTART)
			continue;
		if (r)
			break;
		*vlen = n;
		if (fn) {
			r = fn(val, n, arg);
		} else if (n > cap) {
			r = PBOX_ETOOSMALL;
		} else if (n) {
			memcpy(dst, val, n);
		}
		break;
	}
	pbox_free(heap);
	pbox_free(buf);
	return r;
}

int pbox_bt_lookup_cb(pbox_bt *bt, const void *key, size_t klen,
		      int (*fn)(const void *val, size_t vlen, void *arg), void *arg)
{
	if (!fn)
		return PBOX_EINVAL;
	/* fn gets a validated copy: a short value is copied onto the stack; a longer inline
	 * one (grow: its size is known then) into a buffer of its size, and read again */
	unsigned char small[1024];
	size_t vlen = 0;
	bool grow = false;
	int r = lookup(bt, key, klen, small, sizeof(small), &vlen, fn, arg, &grow);
	for (unsigned tries = 0; grow && tries < 100; tries++) {
		size_t cap = vlen;
		unsigned char *big = pbox_malloc(cap);
		if (!big)
			return -ENOMEM;
		grow = false;
		r = lookup(bt, key, klen, big, cap, &vlen, fn, arg, &grow);
		pbox_free(big);
	}
	return grow ? PBOX_EBUSY : r; /* a value that kept growing while we looked */
}

int pbox_bt_lookup(pbox_bt *bt, const void *key, size_t klen, void *buf, size_t cap,
		   size_t *vlen)
{
	if (!vlen || (cap && !buf))
		return PBOX_EINVAL;
	size_t n = 0;
	bool grow = false;
	int r = lookup(bt, key, klen, buf, cap, &n, NULL, NULL, &grow);
	if (r == 0 || r == PBOX_ETOOSMALL)
		*vlen = n;
	return r;
}

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
		return PBOX_ECORRUPT;
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
	if ((r = log_image(m, npid, n, ps)) ||
	    (r = pbox_mtr_log(m, pid, REDO_SPLIT_RIGHT, &nlv, 4)))
		return r;
	void *p;
	if ((r = pbox_mtr_fix(m, parent, &p)))
		return r;
	uint64_t child = npid;
	if ((r = pbox__bt_node_insert(p, ps, sep, sep_len, &child, 8, 0)))
		return r;
	return log_insert(m, parent, sep, sep_len, &child, 8, 0);
}

/* The root splits into two new children; the root page stays the root. */
static int split_root(pbox_bt *bt, pbox_mtr *m, void *root, uint32_t insert_pos)
{
	uint32_t ps = bt->ps;
	uint32_t nl = pbox__bt_node_split_choose(root, ps, insert_pos);
	if (!nl && pbox__bt_node_is_leaf(root))
		return PBOX_ECORRUPT;
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
	if ((r = log_image(m, apid, a, ps)) || (r = log_image(m, bpid, b, ps)) ||
	    (r = log_image(m, bt->root, root, ps)))
		return r;
	return 0;
}

/* The path of a structure mtr: key's root-to-leaf pages, latched exclusively by m, top-down.
 * pos[i] is the child slot taken at inner level i, and at the leaf key's lower bound. */
typedef struct bpath {
	pbox_pid pid[MAX_DEPTH];
	void *pg[MAX_DEPTH];
	uint32_t pos[MAX_DEPTH];
	unsigned d;
} bpath;

/* Latch the path (at most max levels: PBOX_ELIMIT beyond). Nothing is changed here; on error
 * the caller aborts the mtr cleanly. PBOX_ECLOSED for a dropped tree. */
static int latch_path(pbox_bt *bt, pbox_mtr *m, const void *key, uint32_t klen, unsigned max,
		      bpath *p)
{
	pbox_pid pid = bt->root;
	int r;
	if (max > MAX_DEPTH)
		max = MAX_DEPTH;
	for (p->d = 0;; p->d++) {
		if (p->d == max)
			return max == MAX_DEPTH ? PBOX_ECORRUPT : PBOX_ELIMIT;
		void **pg = &p->pg[p->d];
		if ((r = pbox_mtr_fix(m, pid, pg)))
			return r;
		if (page_type(*pg) != BT_PAGE_TYPE)
			return PBOX_ECORRUPT;
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

/* One structure pass for an entry of `need` bytes going to key's leaf: latch the path from
 * the root exclusively, split the topmost node of the chain of full nodes ending at the
 * leaf (if the leaf is full at all), commit. */
static int split_pass(pbox_bt *bt, const void *key, uint32_t klen, uint32_t need)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(bt->st, &m);
	if (r)
		return r;
	bpath p;
	if ((r = latch_path(bt, m, key, klen, MAX_DEPTH, &p))) {
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

/* One merge pass after a remove left key's leaf underfull: latch the path from the root
 * exclusively; merge the leaf with a sibling under the same parent when both fit in one
 * node (the left page is freed, the right one keeps the merged node, the parent loses the
 * separator between them); when the root is left with a single child, that child's node
 * moves into the root page (the root id never changes) and the child is freed. */
static int merge_pass(pbox_bt *bt, const void *key, uint32_t klen)
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
	if ((r = latch_path(bt, m, key, klen, MAX_DEPTH, &pa)))
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
		if (page_type(left) != BT_PAGE_TYPE || page_type(right) != BT_PAGE_TYPE ||
		    pbox__bt_node_is_leaf(left) != leaf || pbox__bt_node_is_leaf(right) != leaf) {
			r = PBOX_ECORRUPT;
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
		if ((r = log_image(m, rpid, right, ps)) ||
		    (r = pbox__bt_node_remove(parent, ps, i)) ||
		    (r = log_remove(m, ppid, sep, sl)) || (r = pbox_mtr_free(m, lpid)))
			goto done;
		if (ppid == bt->root && pbox__bt_node_count(parent) == 0) {
			/* the root has one child left: take its node, free it (the tree loses
			 * a level; the root id stays) */
			memcpy((unsigned char *)parent + PBOX_PAGE_HDR,
			       (unsigned char *)right + PBOX_PAGE_HDR, ps - PBOX_PAGE_HDR);
			if ((r = log_image(m, ppid, parent, ps)) || (r = pbox_mtr_free(m, rpid)))
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

/* ---- point changes (R2) ---------------------------------------------------------------- */

enum { OP_INSERT, OP_UPSERT, OP_UPDATE, OP_REMOVE };

static int change(pbox_bt *bt, int op, const void *key, size_t klen, const void *val,
		  size_t vlen, unsigned flags)
{
	int r = check_kv(bt, key, klen, val, vlen);
	if (r)
		return r;
	const uint32_t kl = (uint32_t)klen;
	pbox_lsn lsn = 0;
	bool underfull = false;
	/* a long value goes to a chain first; the leaf gets a reference */
	pbox_pid new_chain = 0, old_chain = 0;
	uint64_t old_len = 0;
	unsigned char ref[OVF_REF];
	unsigned vflags = 0;
	uint32_t vl = (uint32_t)vlen;
	if (op != OP_REMOVE && vlen > inline_max(bt, kl)) {
		if ((r = ovf_write(bt, val, vlen, &new_chain)))
			return r;
		uint64_t n = vlen;
		memcpy(ref, &new_chain, 8);
		memcpy(ref + 8, &n, 8);
		val = ref;
		vl = OVF_REF;
		vflags = PBOX_BT_SLOT_OVERFLOW;
	}
	for (;;) {
		pbox_pid leaf;
		uint64_t v;
		if ((r = descend_retry(bt, key, kl, NULL, &leaf, &v)))
			break;
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(bt->st, &m)))
			break;
		void *page;
		r = pbox_mtr_fix_upgrade(m, leaf, v, &page);
		if (r == PBOX_ERESTART) {
			pbox_mtr_abort(m, false);
			continue;
		}
		if (r) {
			pbox_mtr_abort(m, false);
			break;
		}
		/* the page is exactly what was read: same version, so key is in its range */
		uint32_t pos;
		bool exact;
		if ((r = pbox__bt_node_lower_bound_in(page, bt->ps, key, kl, &pos, &exact))) {
			pbox_mtr_abort(m, false);
			break;
		}
		if ((op == OP_INSERT && exact) || ((op == OP_UPDATE || op == OP_REMOVE) && !exact)) {
			pbox_mtr_abort(m, false);
			r = op == OP_INSERT ? PBOX_EEXIST : PBOX_ENOTFOUND;
			break;
		}
		old_chain = 0;
		if (exact) { /* the value being replaced or removed may own a chain */
			const uint8_t *op_;
			uint32_t opl;
			unsigned ofl;
			if ((r = pbox__bt_node_payload(page, bt->ps, pos, &op_, &opl, &ofl)) ||
			    ((ofl & PBOX_BT_SLOT_OVERFLOW) &&
			     (r = parse_ref(op_, opl, &old_chain, &old_len)))) {
				pbox_mtr_abort(m, false);
				break;
			}
		}
		if (op == OP_REMOVE) {
			if ((r = pbox__bt_node_remove(page, bt->ps, pos)) ||
			    (r = log_remove(m, leaf, key, kl))) {
				pbox_mtr_abort(m, true);
				break;
			}
			underfull = leaf != bt->root && pbox__bt_node_underfull(page, bt->ps);
		} else {
			unsigned f = (exact ? PBOX_BT_INSERT_REPLACE : 0) | vflags;
			r = pbox__bt_node_insert(page, bt->ps, key, kl, val, vl, f);
			if (r == PBOX_ENOSPC) {
				uint32_t need = pbox__bt_node_entry_space(page, kl, vl);
				pbox_mtr_abort(m, false); /* unchanged */
				if ((r = split_pass(bt, key, kl, need)))
					break;
				continue;
			}
			if (r || (r = log_insert(m, leaf, key, kl, val, vl, f))) {
				pbox_mtr_abort(m, r != PBOX_EINVAL);
				break;
			}
		}
		r = pbox_mtr_commit(m, flags & PBOX_BT_DURABLE, &lsn);
		/* a merge is an optimisation; the remove is committed either way */
		if (!r && underfull)
			(void)merge_pass(bt, key, kl); /* failures poison the store; they surface
							  in the next operation */
		break;
	}
	if (r && new_chain)
		(void)ovf_free(bt, new_chain, vlen); /* the change did not happen: unused */
	if (!r && old_chain)
		(void)ovf_free(bt, old_chain, old_len);
	return r;
}

int pbox_bt_insert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return change(bt, OP_INSERT, key, klen, val, vlen, flags);
}

int pbox_bt_upsert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return change(bt, OP_UPSERT, key, klen, val, vlen, flags);
}

int pbox_bt_update(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return change(bt, OP_UPDATE, key, klen, val, vlen, flags);
}

int pbox_bt_remove(pbox_bt *bt, const void *key, size_t klen, unsigned flags)
{
	return change(bt, OP_REMOVE, key, klen, NULL, 0, flags);
}

/* ---- scans ------------------------------------------------------------------------------- */

static int cmp_keys(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

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
		if (!stepped && (r = descend_retry_lp(bt, cur, clen, buf, &leaf, &v, &lp)))
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
			if (end && cmp_keys(kbuf, klen, end, elen) >= 0)
				goto out;
			r = leaf_value(bt, buf, leaf, kbuf, klen, pos, &p, &plen, &heap, &heap_cap);
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
		if (end && cmp_keys(hi, hil, end, elen) >= 0)
			break;
		memcpy(cur, hi, hil);
		cur[hil] = 0; /* the smallest key greater than the fence */
		clen = hil + 1;
		/* the right neighbour through the parent, else a descent to cur */
		scan_readahead(bt, &lp, &ra, end, elen);
		r = next_leaf(bt, &lp, buf, &leaf, &v);
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
		return PBOX_ECORRUPT;
	int r = pbox_page_fix_shared(bt->st, pid);
	if (r)
		return r == PBOX_EINVAL ? PBOX_ECORRUPT : r;
	void *page = pbox_page_addr(bt->st, pid);
	const uint8_t *lo, *hi;
	uint32_t lol, hil;
	if (page_type(page) != BT_PAGE_TYPE || (r = pbox__bt_node_verify(page, bt->ps)) ||
	    (r = pbox__bt_node_fences(page, bt->ps, &lo, &lol, &hi, &hil)))
		goto out;
	/* the node's fences equal the range its parent gives it */
	if ((!lo) != (!plo) || (!hi) != (!phi) ||
	    (lo && cmp_keys(lo, lol, plo, plol)) || (hi && cmp_keys(hi, hil, phi, phil))) {
		r = PBOX_ECORRUPT;
		goto out;
	}
	uint32_t n = pbox__bt_node_count(page);
	if (pbox__bt_node_is_leaf(page)) {
		if (vs->leaf_depth == UINT64_MAX)
			vs->leaf_depth = depth;
		if (vs->leaf_depth != depth) {
			r = PBOX_ECORRUPT;
			goto out;
		}
		vs->info->leaves++;
		for (uint32_t i = 0; i < n; i++) {
			unsigned char k[PBOX_BT_KEY_MAX_ANY];
			uint32_t kl;
			if ((r = pbox__bt_node_key(page, bt->ps, i, k, sizeof(k), &kl)))
				goto out;
			if (vs->have_last && cmp_keys(vs->last, vs->last_len, k, kl) >= 0) {
				r = PBOX_ECORRUPT;
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

/* ---- cursors ------------------------------------------------------------------------------ */

struct pbox_bt_cursor {
	pbox_bt *bt;
	void *leaf;         /* consistent copy of the current leaf */
	pbox_pid leaf_pid;
	uint64_t version;   /* the leaf's latch version when copied */
	uint32_t pos;       /* current slot in the copy */
	bool positioned;
	bool reseek;        /* key is current but the copy is not about it: find it again */
	unsigned char *key; /* current key (PBOX_BT_KEY_MAX_ANY + 1 bytes) */
	uint32_t klen;
	unsigned char *tmp; /* a search key */
	unsigned char *heap; /* the current value when it lives on overflow pages */
	size_t heap_cap;
};

int pbox_bt_cursor_open(pbox_bt *bt, pbox_bt_cursor **out)
{
	if (!bt || !out)
		return PBOX_EINVAL;
	pbox_bt_cursor *c = pbox_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bt = bt;
	c->leaf = pbox_aligned_alloc(64, bt->ps);
	c->key = pbox_malloc(2 * (PBOX_BT_KEY_MAX_ANY + 2));
	if (!c->leaf || !c->key) {
		pbox_free(c->leaf);
		pbox_free(c->key);
		pbox_free(c);
		return -ENOMEM;
	}
	c->tmp = c->key + PBOX_BT_KEY_MAX_ANY + 2;
	*out = c;
	return 0;
}

void pbox_bt_cursor_close(pbox_bt_cursor *c)
{
	if (!c)
		return;
	pbox_free(c->leaf);
	pbox_free(c->key);
	pbox_free(c->heap);
	pbox_free(c);
}

/* Make slot pos of the copy current (remember its key for re-seeks). */
static int settle(pbox_bt_cursor *c, uint32_t pos)
{
	int r = pbox__bt_node_key(c->leaf, c->bt->ps, pos, c->key, PBOX_BT_KEY_MAX_ANY, &c->klen);
	if (r)
		return r;
	c->pos = pos;
	c->positioned = true;
	c->reseek = false;
	return 0;
}

/* Load the leaf for key into the cursor. */
static int load_leaf(pbox_bt_cursor *c, const void *key, uint32_t klen)
{
	return descend_retry(c->bt, key, klen, c->leaf, &c->leaf_pid, &c->version);
}

/* First key >= key (strict: > key), following right neighbours past empty leaves. */
static int seek_ge(pbox_bt_cursor *c, const void *key, uint32_t klen, bool strict)
{
	pbox_bt *bt = c->bt;
	unsigned char *k = c->tmp;
	if (klen > PBOX_BT_KEY_MAX_ANY)
		return PBOX_EINVAL;
	memmove(k, key, klen);
	if (strict) { /* the smallest key greater than key */
		k[klen++] = 0;
	}
	for (;;) {
		int r = load_leaf(c, k, klen);
		if (r)
			return r;
		uint32_t pos;
		bool exact;
		if ((r = pbox__bt_node_lower_bound(c->leaf, bt->ps, k, klen, &pos, &exact)))
			return r;
		if (pos < pbox__bt_node_count(c->leaf))
			return settle(c, pos);
		const uint8_t *lo, *hi;
		uint32_t lol, hil;
		if ((r = pbox__bt_node_fences(c->leaf, bt->ps, &lo, &lol, &hi, &hil)))
			return r;
		if (!hi)
			return PBOX_ENOTFOUND;
		memcpy(k, hi, hil);
		k[hil] = 0;
		klen = hil + 1;
	}
}

/* Last key <= key (strict: < key), following left neighbours past empty leaves. */
static int seek_le(pbox_bt_cursor *c, const void *key, uint32_t klen, bool strict, bool last)
{
	pbox_bt *bt = c->bt;
	unsigned char *k = c->tmp;
	if (klen > PBOX_BT_KEY_MAX_ANY)
		return PBOX_EINVAL;
	memmove(k, key, klen);
	for (;;) {
		int r;
		if (last) { /* the rightmost leaf: descend by a key above every key */
			pbox_pid pid = bt->root;
			for (unsigned depth = 0;; depth++) {
				if (depth == MAX_DEPTH)
					return PBOX_ECORRUPT;
				if ((r = read_node(bt, pid, c->leaf, &c->version)) == PBOX_ERESTART) {
					pid = bt->root;
					depth = 0;
					continue;
				}
				if (r)
					return r;
				if (pbox__bt_node_is_leaf(c->leaf))
					break;
				if ((r = pbox__bt_node_child(c->leaf, bt->ps,
							     pbox__bt_node_count(c->leaf), &pid)))
					return r;
			}
			const uint8_t *lo, *hi;
			uint32_t lol, hil;
			if ((r = pbox__bt_node_fences(c->leaf, bt->ps, &lo, &lol, &hi, &hil)))
				return r;
			if (hi) /* not the rightmost any more: a split raced us */
				continue;
			c->leaf_pid = pid;
		} else if ((r = load_leaf(c, k, klen))) {
			return r;
		}
		uint32_t n = pbox__bt_node_count(c->leaf), pos = n;
		if (!last) {
			bool exact;
			if ((r = pbox__bt_node_lower_bound(c->leaf, bt->ps, k, klen, &pos, &exact)))
				return r;
			if (exact && !strict)
				return settle(c, pos);
		}
		if (pos > 0)
			return settle(c, pos - 1);
		/* nothing here below key: the left neighbour holds keys <= our lower fence */
		const uint8_t *lo, *hi;
		uint32_t lol, hil;
		if ((r = pbox__bt_node_fences(c->leaf, bt->ps, &lo, &lol, &hi, &hil)))
			return r;
		if (!lo)
			return PBOX_ENOTFOUND;
		memcpy(k, lo, lol);
		klen = lol;
		strict = false;
		last = false;
	}
}

static int check_cursor_key(pbox_bt_cursor *c, const void *key, size_t klen)
{
	if (!c || (klen && !key) || klen > PBOX_BT_KEY_MAX(c->bt->ps))
		return PBOX_EINVAL;
	return 0;
}

int pbox_bt_cursor_seek(pbox_bt_cursor *c, const void *key, size_t klen)
{
	int r = check_cursor_key(c, key, klen);
	if (r)
		return r;
	c->positioned = false;
	return seek_ge(c, key, (uint32_t)klen, false);
}

int pbox_bt_cursor_seek_prev(pbox_bt_cursor *c, const void *key, size_t klen)
{
	int r = check_cursor_key(c, key, klen);
	if (r)
		return r;
	c->positioned = false;
	return seek_le(c, key, (uint32_t)klen, false, false);
}

int pbox_bt_cursor_first(pbox_bt_cursor *c)
{
	if (!c)
		return PBOX_EINVAL;
	c->positioned = false;
	return seek_ge(c, "", 0, false);
}

int pbox_bt_cursor_last(pbox_bt_cursor *c)
{
	if (!c)
		return PBOX_EINVAL;
	c->positioned = false;
	return seek_le(c, "", 0, false, true);
}

/* Is the copy about the current key and still what the leaf holds? */
static bool fresh(pbox_bt_cursor *c)
{
	return !c->reseek && pbox_page_validate(c->bt->st, c->leaf_pid, c->version);
}

/* A move found nothing (or failed) after the search overwrote the copy: the cursor stays on
 * its key (the search never changes c->key unless it lands), and the next move or value
 * read searches from that key again. */
static int stay(pbox_bt_cursor *c, int r)
{
	c->reseek = true;
	return r;
}

int pbox_bt_cursor_next(pbox_bt_cursor *c)
{
	if (!c || !c->positioned)
		return PBOX_EINVAL;
	if (fresh(c) && c->pos + 1 < pbox__bt_node_count(c->leaf))
		return settle(c, c->pos + 1);
	/* past this leaf, or it changed: the first key above the current one */
	int r = seek_ge(c, c->key, c->klen, true);
	return r ? stay(c, r) : 0;
}

int pbox_bt_cursor_prev(pbox_bt_cursor *c)
{
	if (!c || !c->positioned)
		return PBOX_EINVAL;
	if (fresh(c) && c->pos > 0)
		return settle(c, c->pos - 1);
	int r = seek_le(c, c->key, c->klen, true, false);
	return r ? stay(c, r) : 0;
}

int pbox_bt_cursor_key(pbox_bt_cursor *c, const void **key, size_t *klen)
{
	if (!c || !c->positioned || !key || !klen)
		return PBOX_EINVAL;
	*key = c->key;
	*klen = c->klen;
	return 0;
}

/* Bring the copy back to the current key after a move or a value read lost it: 0, or
 * PBOX_ENOTFOUND when the key was removed meanwhile (the cursor stays on it). */
static int refind(pbox_bt_cursor *c)
{
	unsigned char k[PBOX_BT_KEY_MAX_ANY];
	uint32_t kl = c->klen;
	memcpy(k, c->key, kl);
	int r = seek_ge(c, k, kl, false);
	if (r)
		return stay(c, r);
	if (cmp_keys(c->key, c->klen, k, kl) != 0) { /* landed above it: put the key back */
		memcpy(c->key, k, kl);
		c->klen = kl;
		return stay(c, PBOX_ENOTFOUND);
	}
	return 0;
}

int pbox_bt_cursor_value(pbox_bt_cursor *c, const void **val, size_t *vlen)
{
	if (!c || !c->positioned || !val || !vlen)
		return PBOX_EINVAL;
	for (unsigned tries = 0;; tries++) {
		int r;
		if (c->reseek && (r = refind(c)))
			return r;
		r = leaf_value(c->bt, c->leaf, c->leaf_pid, c->key, c->klen, c->pos, val, vlen,
			       &c->heap, &c->heap_cap);
		if (r != PBOX_ERESTART)
			return r;
		if (tries > 1000)
			return PBOX_EBUSY;
		c->reseek = true; /* the leaf changed under a long value: find the key again */
	}
}

/* ---- scans in both directions ------------------------------------------------------------ */

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
	r = end ? seek_le(c, end, (uint32_t)elen, true, false) : pbox_bt_cursor_last(c);
	while (r == 0) {
		if (start && cmp_keys(c->key, c->klen, start, slen) < 0)
			break;
		const void *v;
		size_t vl;
		r = pbox_bt_cursor_value(c, &v, &vl);
		if (r == PBOX_ENOTFOUND) { /* removed since the cursor reached it: skip it */
			r = pbox_bt_cursor_prev(c);
			continue;
		}
		if (r || (r = fn(c->key, c->klen, v, vl, arg)))
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

/* ---- atomic write batches (ARCHITECTURE §7) ------------------------------------------------
 *
 * 1. Sort the operations by (tree, key); a repeated key keeps its last operation. Long values
 *    go to overflow chains first.
 * 2. Find each operation's leaf with optimistic descents; if a leaf lacks room for all the
 *    entries that go to it, split it (a structure mtr of its own: splits change no logical
 *    content) and start over.
 * 3. One mtr upgrades every target leaf from the version it was read at, in (tree, key) order
 *    — an upgrade never waits, so a conflict releases everything and starts over (no deadlock
 *    with other batches, structure passes or merges) — applies every operation, and commits
 *    one WAL group: all or nothing after a crash.
 * 4. Chains of replaced or deleted long values are freed afterwards. */

typedef struct bop {
	pbox_bt *bt;
	unsigned char *key, *val; /* one allocation: key then value (or reference) */
	uint32_t klen, vlen;
	unsigned vflags;          /* PBOX_BT_SLOT_OVERFLOW: val is a chain reference */
	bool del;
	uint64_t seq;
	pbox_pid chain;           /* chain written for this op (freed if the batch fails) */
	uint64_t chain_len;
	pbox_pid leaf;            /* step 2 */
	uint64_t version;
} bop;

struct pbox_bt_batch {
	bop *ops;
	size_t n, cap;
	pbox_store *st;
};

int pbox_bt_batch_create(pbox_bt_batch **out)
{
	if (!out)
		return PBOX_EINVAL;
	pbox_bt_batch *b = pbox_calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	*out = b;
	return 0;
}

static void batch_clear(pbox_bt_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		pbox_free(b->ops[i].key);
	b->n = 0;
	b->st = NULL;
}

void pbox_bt_batch_destroy(pbox_bt_batch *b)
{
	if (!b)
		return;
	batch_clear(b);
	pbox_free(b->ops);
	pbox_free(b);
}

size_t pbox_bt_batch_count(const pbox_bt_batch *b)
{
	return b ? b->n : 0;
}

static int batch_add(pbox_bt_batch *b, pbox_bt *bt, const void *key, size_t klen, const void *val,
		     size_t vlen, bool del)
{
	if (!b)
		return PBOX_EINVAL;
	int r = check_kv(bt, key, klen, val, vlen);
	if (r)
		return r;
	if (b->st && b->st != bt->st)
		return PBOX_EINVAL;
	if (b->n == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 16;
		bop *v = pbox_realloc(b->ops, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->ops = v;
		b->cap = nc;
	}
	bop *o = &b->ops[b->n];
	memset(o, 0, sizeof(*o));
	o->key = pbox_malloc(klen + vlen + 1);
	if (!o->key)
		return -ENOMEM;
	if (klen)
		memcpy(o->key, key, klen);
	o->val = o->key + klen;
	if (vlen)
		memcpy(o->val, val, vlen);
	o->bt = bt;
	o->klen = (uint32_t)klen;
	o->vlen = (uint32_t)vlen;
	o->del = del;
	o->seq = b->n;
	b->st = bt->st;
	b->n++;
	return 0;
}

int pbox_bt_batch_put(pbox_bt_batch *b, pbox_bt *bt, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	return batch_add(b, bt, key, klen, val, vlen, false);
}

int pbox_bt_batch_del(pbox_bt_batch *b, pbox_bt *bt, const void *key, size_t klen)
{
	return batch_add(b, bt, key, klen, NULL, 0, true);
}

static int bop_cmp(const void *x, const void *y)
{
	const bop *a = x, *b = y;
	if (a->bt->root != b->bt->root)
		return a->bt->root < b->bt->root ? -1 : 1;
	int c = cmp_keys(a->key, a->klen, b->key, b->klen);
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Wait until nobody holds pid's latch, holding no other latch (so no deadlock is
 * possible): fix it exclusively in an mtr of its own and let it go. Only a wait: the
 * leaf may have been freed meanwhile, so a failure here is not the batch's error (the
 * next descent reports a real one). */
static void wait_leaf(pbox_store *st, pbox_pid pid)
{
	pbox_mtr *m;
	if (pbox_mtr_begin(st, &m))
		return;
	(void)pbox_mtr_fix(m, pid, NULL);
	pbox_mtr_abort(m, false);
}

int pbox_bt_batch_commit(pbox_bt_batch *b, unsigned flags)
{
	if (!b)
		return PBOX_EINVAL;
	if (!b->n)
		return 0;
	int r = 0;
	/* 1: sort, keep the last operation of a repeated key (and of the same tree) */
	qsort(b->ops, b->n, sizeof(bop), bop_cmp);
	size_t w = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (w && b->ops[w - 1].bt->root == b->ops[i].bt->root &&
		    !cmp_keys(b->ops[w - 1].key, b->ops[w - 1].klen, b->ops[i].key, b->ops[i].klen)) {
			pbox_free(b->ops[w - 1].key);
			b->ops[w - 1] = b->ops[i];
		} else {
			b->ops[w++] = b->ops[i];
		}
	}
	b->n = w;
	uint64_t bytes = 0;
	for (size_t i = 0; i < b->n && !r; i++) {
		bop *o = &b->ops[i];
		if (!o->del && o->vlen > inline_max(o->bt, o->klen)) {
			if ((r = ovf_write(o->bt, o->val, o->vlen, &o->chain)))
				break;
			o->chain_len = o->vlen;
			uint64_t n = o->vlen;
			memcpy(o->val, &o->chain, 8); /* vlen > OVF_REF: the buffer has room */
			memcpy(o->val + 8, &n, 8);
			o->vlen = OVF_REF;
			o->vflags = PBOX_BT_SLOT_OVERFLOW;
		}
		bytes += 32 + o->klen + o->vlen;
	}
	if (!r && bytes > PBOX_BT_BATCH_MAX_BYTES)
		r = PBOX_ELIMIT;
	uint32_t ps = b->n ? b->ops[0].bt->ps : 0;
	void *buf = r ? NULL : pbox_aligned_alloc(64, ps);
	if (!r && !buf)
		r = -ENOMEM;
	pbox_pid *old_chain = r ? NULL : pbox_calloc(b->n, sizeof(pbox_pid));
	uint64_t *old_len = r ? NULL : pbox_calloc(b->n, sizeof(uint64_t));
	if (!r && (!old_chain || !old_len))
		r = -ENOMEM;
	for (unsigned attempt = 0; !r; attempt++) {
		if (attempt > 10000) {
			r = PBOX_EBUSY; /* the leaves never held still */
			break;
		}
		/* 2: leaves, room */
		bool again = false;
		unsigned nleaves = 0;
		for (size_t i = 0; i < b->n && !r && !again;) {
			bop *o = &b->ops[i];
			if ((r = descend_retry(o->bt, o->key, o->klen, buf, &o->leaf, &o->version)))
				break;
			if (++nleaves > PBOX_BT_BATCH_MAX_LEAVES) {
				r = PBOX_ELIMIT;
				break;
			}
			/* the operations that go to this leaf: consecutive ones in its range */
			uint32_t need = 0;
			size_t j = i;
			for (; j < b->n && b->ops[j].bt->root == o->bt->root; j++) {
				bool in;
				if ((r = key_in_range(buf, ps, b->ops[j].key, b->ops[j].klen, &in)))
					break;
				if (!in)
					break;
				b->ops[j].leaf = o->leaf;
				b->ops[j].version = o->version;
				if (!b->ops[j].del)
					need += pbox__bt_node_entry_space(buf, b->ops[j].klen,
									  b->ops[j].vlen);
			}
			if (r)
				break;
			if (pbox__bt_node_free_bytes(buf, ps) < need) {
				/* make room: one structure pass, then look again. A split frees at
				 * least half a node for the range; more than that for one leaf's
				 * range is beyond what a batch can do (PBOX_ELIMIT). */
				uint32_t cap = ps - PBOX_PAGE_HDR - PBOX_BT_NODE_HDR - 2 * PBOX_BT_KEY_MAX(ps);
				if (need > cap / 2) {
					r = PBOX_ELIMIT;
					break;
				}
				if ((r = split_pass(o->bt, o->key, o->klen, need)))
					break;
				again = true;
				break;
			}
			i = j;
		}
		if (r)
			break;
		if (again)
			continue;
		/* 3: upgrade every leaf, apply, one group */
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(b->st, &m)))
			break;
		pbox_pid contended = PBOX_PID_NONE;
		for (size_t i = 0; i < b->n && !r; i++) {
			void *page;
			r = pbox_mtr_fix_upgrade(m, b->ops[i].leaf, b->ops[i].version, &page);
			if (r == PBOX_ERESTART) {
				contended = b->ops[i].leaf;
				r = 0;
				break;
			}
		}
		if (r || contended != PBOX_PID_NONE) {
			pbox_mtr_abort(m, false);
			if (r)
				break;
			/* The upgrade fails on a changed version or on a latch held right now
			 * (a checkpoint holds pages shared across its write-back, for tens of
			 * ms). Retrying at once would spin through the attempts while the
			 * holder works; holding nothing, wait for the holder instead (an
			 * exclusive fix waits out shared holders too), then start over. */
			wait_leaf(b->st, contended);
			continue;
		}
		bool changed = false;
		for (size_t i = 0; i < b->n && !r; i++) {
			bop *o = &b->ops[i];
			void *page = pbox_page_addr(b->st, o->leaf);
			uint32_t pos;
			bool exact;
			const uint8_t *p;
			uint32_t plen;
			unsigned fl;
			if ((r = pbox__bt_node_lower_bound(page, ps, o->key, o->klen, &pos, &exact)))
				break;
			old_chain[i] = 0;
			if (exact && (r = pbox__bt_node_payload(page, ps, pos, &p, &plen, &fl)))
				break;
			if (exact && (fl & PBOX_BT_SLOT_OVERFLOW) &&
			    (r = parse_ref(p, plen, &old_chain[i], &old_len[i])))
				break;
			if (o->del) {
				if (!exact)
					continue;
				changed = true;
				if ((r = pbox__bt_node_remove(page, ps, pos)) ||
				    (r = log_remove(m, o->leaf, o->key, o->klen)))
					break;
			} else {
				unsigned f = (exact ? PBOX_BT_INSERT_REPLACE : 0) | o->vflags;
				changed = true;
				if ((r = pbox__bt_node_insert(page, ps, o->key, o->klen, o->val, o->vlen,
							      f)) ||
				    (r = log_insert(m, o->leaf, o->key, o->klen, o->val, o->vlen, f)))
					break;
			}
		}
		if (r) {
			pbox_mtr_abort(m, changed); /* a partial batch in memory poisons the store */
			break;
		}
		r = pbox_mtr_commit(m, flags & PBOX_BT_DURABLE, NULL);
		break;
	}
	/* 4 */
	for (size_t i = 0; i < b->n; i++) {
		if (r && b->ops[i].chain)
			(void)ovf_free(b->ops[i].bt, b->ops[i].chain, b->ops[i].chain_len);
		if (!r && old_chain && old_chain[i])
			(void)ovf_free(b->ops[i].bt, old_chain[i], old_len[i]);
	}
	pbox_free(old_chain);
	pbox_free(old_len);
	pbox_free(buf);
	batch_clear(b);
	return r;
}

/* ---- reclaiming unreachable pages ------------------------------------------------------------ */

typedef struct reach {
	pbox_store *st;
	uint32_t ps;
	uint64_t npages;
	uint64_t *bits;    /* one bit a page: reached */
	unsigned char *buf;  /* the node being walked */
	unsigned char *cbuf; /* an overflow page of one of its chains */
	pbox_pid *stack;
	size_t nstack, cap;
} reach;

/* Mark pid reached; PBOX_ECORRUPT if it already was (a page in two places: a cycle). */
static int mark_page(reach *rc, pbox_pid pid)
{
	if (pid < PBOX_BT_NODE_PID_MIN || pid >= rc->npages)
		return PBOX_ECORRUPT;
	uint64_t bit = 1ull << (pid & 63);
	if (rc->bits[pid >> 6] & bit)
		return PBOX_ECORRUPT;
	rc->bits[pid >> 6] |= bit;
	return 0;
}

/* Copy page pid into dst under a shared latch. */
static int read_shared(reach *rc, pbox_pid pid, unsigned char *dst)
{
	int r = pbox_page_fix_shared(rc->st, pid);
	if (r)
		return r == PBOX_EINVAL ? PBOX_ECORRUPT : r;
	memcpy(dst, pbox_page_addr(rc->st, pid), rc->ps);
	pbox_page_unfix_shared(rc->st, pid);
	return 0;
}

static int mark_chain(reach *rc, pbox_pid first, uint64_t vlen)
{
	pbox_bt tmp = { .st = rc->st, .root = 0, .ps = rc->ps };
	const uint32_t per = ovf_per_page(&tmp);
	uint64_t pages = (vlen + per - 1) / per;
	pbox_pid pid = first;
	for (uint64_t i = 0; i < pages; i++) {
		int r = mark_page(rc, pid);
		if (r || (r = read_shared(rc, pid, rc->cbuf)))
			return r;
		if (page_type(rc->cbuf) != OVF_PAGE_TYPE)
			return PBOX_ECORRUPT;
		memcpy(&pid, rc->cbuf + PBOX_PAGE_HDR, 8);
	}
	return 0;
}

/* Mark every node and overflow page of the tree rooted at root. */
static int mark_tree(reach *rc, pbox_pid root)
{
	int r = 0;
	rc->nstack = 0;
	rc->stack[rc->nstack++] = root;
	while (rc->nstack && !r) {
		pbox_pid pid = rc->stack[--rc->nstack];
		if ((r = mark_page(rc, pid)) || (r = read_shared(rc, pid, rc->buf)))
			break;
		if (page_type(rc->buf) != BT_PAGE_TYPE)
			return PBOX_ECORRUPT;
		if (pbox__bt_node_verify(rc->buf, rc->ps))
			return PBOX_ECORRUPT;
		uint32_t cnt = pbox__bt_node_count(rc->buf);
		if (pbox__bt_node_is_leaf(rc->buf)) {
			for (uint32_t i = 0; i < cnt && !r; i++) {
				const uint8_t *p;
				uint32_t plen;
				unsigned fl;
				pbox_pid first;
				uint64_t vlen;
				if ((r = pbox__bt_node_payload(rc->buf, rc->ps, i, &p, &plen, &fl)) ||
				    !(fl & PBOX_BT_SLOT_OVERFLOW))
					continue;
				if (!(r = parse_ref(p, plen, &first, &vlen)))
					r = mark_chain(rc, first, vlen);
			}
			continue;
		}
		for (uint32_t i = 0; i <= cnt && !r; i++) {
			pbox_pid child;
			if ((r = pbox__bt_node_child(rc->buf, rc->ps, i, &child)))
				break;
			if (rc->nstack == rc->cap) {
				pbox_pid *ns = pbox_realloc(rc->stack, 2 * rc->cap * sizeof(pbox_pid));
				if (!ns)
					return -ENOMEM;
				rc->stack = ns;
				rc->cap *= 2;
			}
			rc->stack[rc->nstack++] = child;
		}
	}
	return r;
}

typedef struct roots {
	pbox_pid *v;
	size_t n, cap;
	int r;
} roots;

static int collect_root(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	roots *rs = arg;
	pbox_pid root;
	if (vlen != sizeof(root)) {
		rs->r = PBOX_ECORRUPT;
		return 1;
	}
	memcpy(&root, val, sizeof(root));
	if (rs->n == rs->cap) {
		size_t nc = rs->cap ? 2 * rs->cap : 16;
		pbox_pid *nv = pbox_realloc(rs->v, nc * sizeof(pbox_pid));
		if (!nv) {
			rs->r = -ENOMEM;
			return 1;
		}
		rs->v = nv;
		rs->cap = nc;
	}
	rs->v[rs->n++] = root;
	return 0;
}

/* Free unreachable btree pages in one mtr (durable: a reclaim is a maintenance step). */
static int free_pages(pbox_store *st, const pbox_pid *v, unsigned n)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	bool changed = false;
	for (unsigned i = 0; i < n && !r; i++) {
		void *page;
		if ((r = pbox_mtr_fix(m, v[i], &page)))
			break;
		uint16_t t = page_type(page);
		if ((t == BT_PAGE_TYPE && ((unsigned char *)page)[PBOX_PAGE_HDR] != DROPPED_KIND) ||
		    t == OVF_PAGE_TYPE) {
			r = pbox_mtr_free(m, v[i]);
			changed = true;
		}
	}
	if (r) {
		pbox_mtr_abort(m, changed);
		return r;
	}
	return pbox_mtr_commit(m, true, NULL);
}

int pbox_bt_reclaim(pbox_store *st, bool reclaim, uint64_t *leaked)
{
	if (!st || !leaked)
		return PBOX_EINVAL;
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	reach rc = { .st = st, .ps = s.page_size, .npages = s.page_count, .cap = 64 };
	roots rs = { 0 };
	rc.bits = pbox_calloc((rc.npages + 63) / 64, 8);
	rc.buf = pbox_aligned_alloc(64, rc.ps);
	rc.cbuf = pbox_aligned_alloc(64, rc.ps);
	rc.stack = pbox_malloc(rc.cap * sizeof(pbox_pid));
	int r = 0;
	uint64_t n = 0;
	if (!rc.bits || !rc.buf || !rc.cbuf || !rc.stack) {
		r = -ENOMEM;
		goto out;
	}
	/* 1: what the catalog reaches */
	pbox_bt cat;
	r = catalog(st, false, &cat);
	if (r == PBOX_ENOTFOUND) {
		r = 0; /* no trees: every btree page is unreachable */
	} else if (!r) {
		if ((r = pbox_bt_scan(&cat, NULL, 0, NULL, 0, collect_root, &rs)) == 1)
			r = rs.r;
		if (!r)
			r = mark_tree(&rc, cat.root);
		for (size_t i = 0; i < rs.n && !r; i++)
			r = mark_tree(&rc, rs.v[i]);
	}
	/* 2: btree pages nothing reaches, freed a few per mtr */
	pbox_pid batch[16];
	unsigned nb = 0;
	for (pbox_pid pid = PBOX_BT_NODE_PID_MIN; pid < rc.npages && !r; pid++) {
		if (rc.bits[pid >> 6] & (1ull << (pid & 63)))
			continue;
		if ((r = read_shared(&rc, pid, rc.buf)))
			break;
		uint16_t t = page_type(rc.buf);
		if (t != BT_PAGE_TYPE && t != OVF_PAGE_TYPE)
			continue;
		/* a dropped tree's root stays behind on purpose: handles still open on that
		 * tree read it and get PBOX_ECLOSED (reused, it could be another tree's node) */
		if (t == BT_PAGE_TYPE && rc.buf[PBOX_PAGE_HDR] == DROPPED_KIND)
			continue;
		n++;
		if (reclaim && (batch[nb++] = pid, nb == 16)) {
			r = free_pages(st, batch, nb);
			nb = 0;
		}
	}
	if (!r && nb)
		r = free_pages(st, batch, nb);
out:
	if (!r)
		*leaked = n;
	pbox_free(rs.v);
	pbox_free(rc.bits);
	pbox_free(rc.buf);
	pbox_free(rc.cbuf);
	pbox_free(rc.stack);
	return r;
}
