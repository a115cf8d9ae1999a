/*
 * reclaim.c — pbox_bt_reclaim: btree pages no tree reaches, found and freed.
 *
 * A crash can leave pages of the btree's types allocated but unreachable: an overflow chain
 * written before its leaf change committed, the pages of a tree whose drop was cut short.
 * (1) Mark every page the catalog reaches: the catalog tree, each tree in it, and every
 * overflow chain of their leaves — a page reached twice is PBOX_ECORRUPT. (2) Read the type
 * of every other page of the store; btree pages (nodes and overflow pages) are leaked, and
 * with reclaim freed, a few per durable mtr. Never freed: pages of other types, and a
 * dropped tree's root (open handles on that tree still read it for PBOX_ECLOSED).
 *
 * Latching: each page is read under a shared latch, one at a time. Reclaim must not run
 * concurrently with changes to the store's trees (an in-flight change's new chain is not
 * reachable yet); the free pass fixes each page exclusively and checks its type again.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

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
		return PBOX_CORRUPT();
	uint64_t bit = 1ull << (pid & 63);
	if (rc->bits[pid >> 6] & bit)
		return PBOX_CORRUPT();
	rc->bits[pid >> 6] |= bit;
	return 0;
}

/* Copy page pid into dst under a shared latch. */
static int read_shared(reach *rc, pbox_pid pid, unsigned char *dst)
{
	int r = pbox_page_fix_shared(rc->st, pid);
	if (r)
		return r == PBOX_EINVAL ? PBOX_CORRUPT() : r;
	memcpy(dst, pbox_page_addr(rc->st, pid), rc->ps);
	pbox_page_unfix_shared(rc->st, pid);
	return 0;
}

static int mark_chain(reach *rc, pbox_pid first, uint64_t vlen)
{
	pbox_bt tmp = { .st = rc->st, .root = 0, .ps = rc->ps };
	const uint32_t per = pbox__bt_ovf_per_page(&tmp);
	uint64_t pages = (vlen + per - 1) / per;
	pbox_pid pid = first;
	for (uint64_t i = 0; i < pages; i++) {
		int r = mark_page(rc, pid);
		if (r || (r = read_shared(rc, pid, rc->cbuf)))
			return r;
		if (pbox__bt_page_type(rc->cbuf) != OVF_PAGE_TYPE)
			return PBOX_CORRUPT();
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
		if (pbox__bt_page_type(rc->buf) != BT_PAGE_TYPE)
			return PBOX_CORRUPT();
		if (pbox__bt_node_verify(rc->buf, rc->ps))
			return PBOX_CORRUPT();
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
				if (!(r = pbox__bt_parse_ref(p, plen, &first, &vlen)))
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
		rs->r = PBOX_CORRUPT();
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
		uint16_t t = pbox__bt_page_type(page);
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
	r = pbox__bt_catalog(st, false, &cat);
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
		uint16_t t = pbox__bt_page_type(rc.buf);
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
