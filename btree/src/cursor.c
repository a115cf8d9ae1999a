/*
 * cursor.c — cursors: seek, seek_prev, first, last, next, prev, key, value.
 *
 * A cursor holds a validated copy of one leaf (read by an R1 descent, descend.c) and no
 * latch between calls. A step inside a copy whose leaf is unchanged (same version) is a
 * slot move; otherwise the cursor searches again from its current key (for the key above or
 * below it), so it never repeats a key or goes back. A value that fits in the leaf comes
 * from the copy; a long one is read from its chain with the live leaf latched shared
 * (overflow.c), and when its key was removed meanwhile pbox_bt_cursor_value returns
 * PBOX_ENOTFOUND and the cursor stays on the removed key, from which next and prev
 * continue. A move that finds nothing leaves the cursor on its key as well.
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

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
	struct txn_cur *tc;  /* a transaction's cursor: every call goes to txn_read.c */
};

void pbox__bt_cursor_set_txn(pbox_bt_cursor *c, struct txn_cur *tc)
{
	c->tc = tc;
}

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
	if (c->tc)
		pbox__txn_cursor_close(c->tc);
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
	return pbox__bt_descend_retry(c->bt, key, klen, c->leaf, &c->leaf_pid, &c->version);
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
					return PBOX_CORRUPT();
				r = pbox__bt_read_node(bt, pid, c->leaf, &c->version);
				if (r == PBOX_ERESTART) {
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

/* The reverse scan's start (scan.c): the last key below key. */
int pbox__bt_cursor_seek_below(pbox_bt_cursor *c, const void *key, uint32_t klen)
{
	return seek_le(c, key, klen, true, false);
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
	if (c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_SEEK, key, klen);
	c->positioned = false;
	return seek_ge(c, key, (uint32_t)klen, false);
}

int pbox_bt_cursor_seek_prev(pbox_bt_cursor *c, const void *key, size_t klen)
{
	int r = check_cursor_key(c, key, klen);
	if (r)
		return r;
	if (c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_SEEK_PREV, key, klen);
	c->positioned = false;
	return seek_le(c, key, (uint32_t)klen, false, false);
}

int pbox_bt_cursor_first(pbox_bt_cursor *c)
{
	if (!c)
		return PBOX_EINVAL;
	if (c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_FIRST, NULL, 0);
	c->positioned = false;
	return seek_ge(c, "", 0, false);
}

int pbox_bt_cursor_last(pbox_bt_cursor *c)
{
	if (!c)
		return PBOX_EINVAL;
	if (c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_LAST, NULL, 0);
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
	if (c && c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_NEXT, NULL, 0);
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
	if (c && c->tc)
		return pbox__txn_cursor_move(c->tc, CUR_PREV, NULL, 0);
	if (!c || !c->positioned)
		return PBOX_EINVAL;
	if (fresh(c) && c->pos > 0)
		return settle(c, c->pos - 1);
	int r = seek_le(c, c->key, c->klen, true, false);
	return r ? stay(c, r) : 0;
}

int pbox_bt_cursor_key(pbox_bt_cursor *c, const void **key, size_t *klen)
{
	if (c && c->tc && key && klen)
		return pbox__txn_cursor_key(c->tc, key, klen);
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
	if (pbox__bt_cmp_keys(c->key, c->klen, k, kl) != 0) { /* landed above it: put it back */
		memcpy(c->key, k, kl);
		c->klen = kl;
		return stay(c, PBOX_ENOTFOUND);
	}
	return 0;
}

int pbox_bt_cursor_value(pbox_bt_cursor *c, const void **val, size_t *vlen)
{
	if (c && c->tc && val && vlen)
		return pbox__txn_cursor_value(c->tc, val, vlen);
	if (!c || !c->positioned || !val || !vlen)
		return PBOX_EINVAL;
	for (unsigned tries = 0;; tries++) {
		int r;
		if (c->reseek && (r = refind(c)))
			return r;
		r = pbox__bt_leaf_value(c->bt, c->leaf, c->leaf_pid, c->key, c->klen, c->pos, val,
					vlen, &c->heap, &c->heap_cap);
		if (r != PBOX_ERESTART)
			return r;
		if (tries > 1000)
			return PBOX_EBUSY;
		c->reseek = true; /* the leaf changed under a long value: find the key again */
	}
}
