/*
 * batch.c — atomic write batches over several trees of one store (ARCHITECTURE §7).
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
 * 4. Chains of replaced or deleted long values are freed afterwards.
 *
 * Latching: step 3 holds up to PBOX_BT_BATCH_MAX_LEAVES leaves exclusively, all taken by
 * upgrades that fail instead of waiting. A failed upgrade because someone holds the latch
 * (a checkpoint writing the page back, a scan) waits for that latch holding nothing, then
 * starts over, so the batch neither deadlocks nor spins.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- atomic write batches ------------------------------------------------------------- */

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
	int r = pbox__bt_check_kv(bt, key, klen, val, vlen);
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
	int c = pbox__bt_cmp_keys(a->key, a->klen, b->key, b->klen);
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
		    !pbox__bt_cmp_keys(b->ops[w - 1].key, b->ops[w - 1].klen, b->ops[i].key,
				       b->ops[i].klen)) {
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
		if (!o->del && o->vlen > pbox__bt_inline_max(o->bt, o->klen)) {
			if ((r = pbox__bt_ovf_write(o->bt, o->val, o->vlen, &o->chain)))
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
			if ((r = pbox__bt_descend_retry(o->bt, o->key, o->klen, buf, &o->leaf,
							&o->version)))
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
				if ((r = pbox__bt_key_in_range(buf, ps, b->ops[j].key,
							       b->ops[j].klen, &in)))
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
				if ((r = pbox__bt_split_pass(o->bt, o->key, o->klen, need)))
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
			    (r = pbox__bt_parse_ref(p, plen, &old_chain[i], &old_len[i])))
				break;
			if (o->del) {
				if (!exact)
					continue;
				changed = true;
				if ((r = pbox__bt_node_remove(page, ps, pos)) ||
				    (r = pbox__bt_log_remove(m, o->leaf, o->key, o->klen)))
					break;
			} else {
				unsigned f = (exact ? PBOX_BT_INSERT_REPLACE : 0) | o->vflags;
				changed = true;
				if ((r = pbox__bt_node_insert(page, ps, o->key, o->klen, o->val, o->vlen,
							      f)) ||
				    (r = pbox__bt_log_insert(m, o->leaf, o->key, o->klen, o->val,
							     o->vlen, f)))
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
			(void)pbox__bt_ovf_free(b->ops[i].bt, b->ops[i].chain, b->ops[i].chain_len);
		if (!r && old_chain && old_chain[i])
			(void)pbox__bt_ovf_free(b->ops[i].bt, old_chain[i], old_len[i]);
	}
	pbox_free(old_chain);
	pbox_free(old_len);
	pbox_free(buf);
	batch_clear(b);
	return r;
}
