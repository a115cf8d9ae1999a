/*
 * batch.c — atomic write batches over several trees of one store, on transactions
 * (txn.c): a batch records its operations, and commit applies them as one transaction —
 * crash-atomic, visible to snapshots all at once, with no size limit but memory and the
 * log. A batch does not read, so a conflict with a concurrent transaction only means
 * another writer got to a key first: commit retries (each retry a fresh transaction), and
 * the batch's operations win, as if applied after the other's.
 *
 * Threads: a batch is used by one thread at a time.
 */
#include "tree_int.h"

#include <pbox/txn.h>

#include <pbox/alloc.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- atomic write batches ------------------------------------------------------------- */

typedef struct bop {
	pbox_bt *bt;
	unsigned char *key, *val; /* one allocation: key then value */
	uint32_t klen, vlen;
	bool del;
	uint64_t seq;
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

#define MAX_RETRIES 10000u

int pbox_bt_batch_commit(pbox_bt_batch *b, unsigned flags)
{
	if (!b)
		return PBOX_EINVAL;
	if (!b->n)
		return 0;
	int r = 0;
	for (unsigned tries = 0;; tries++) {
		pbox_txn *t;
		if ((r = pbox_txn_begin(b->st, 0, &t)))
			break;
		for (size_t i = 0; i < b->n && !r; i++) {
			bop *o = &b->ops[i];
			r = o->del ? pbox_txn_del(t, o->bt, o->key, o->klen)
				   : pbox_txn_put(t, o->bt, o->key, o->klen, o->val, o->vlen);
			if (r == PBOX_ENOTFOUND && o->del)
				r = 0; /* deleting an absent key is not an error in a batch */
		}
		if (r) {
			pbox_txn_abort(t);
		} else if (pbox_txn_count(t) == 0) { /* only deletes of absent keys */
			r = pbox_txn_commit(t, flags);
			break;
		} else {
			r = pbox_txn_commit(t, flags);
		}
		if (r != PBOX_ECONFLICT)
			break;
		if (tries >= MAX_RETRIES) {
			r = PBOX_EBUSY;
			break;
		}
	}
	batch_clear(b);
	return r;
}
