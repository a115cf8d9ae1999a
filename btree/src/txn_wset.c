/*
 * txn_wset.c — a transaction's write set: its entries (went, txn_int.h), their index and
 * their memory.
 *
 * Memory: entries are carved from chunks owned by the transaction (4 KiB first, doubling to
 * 1 MiB; an entry bigger than a chunk gets a chunk of its own) and freed all at once when it
 * ends — a transaction of a million puts frees a few hundred chunks, not two million blocks,
 * and its entries lie in memory in the order they were put. An entry's value is stored
 * right after its key when the entry is made (WINLINE_MAX at most); a later put of a longer
 * value, or a first value over WINLINE_MAX, goes to a heap block of its own (vheap), freed
 * when replaced and at the end (nheap counts them, so the end walks the entries only when
 * some exist).
 *
 * Order: wvec lists the entries in insertion order until commit sorts them; wunsorted is
 * false while they ascend in (tree, key) order (the order of the commit: txn.c locks, logs
 * and installs in it). While they do, a lookup of a key above the last one (every put of a
 * sorted load) is answered without any index, and the commit needs no sort. Sorting at the
 * start of the commit also lays the version store's key entries (allocated as the keys are
 * locked) out in the order the install visits them.
 *
 * Index: built on the first lookup that needs it (a key not above the last, or any key once
 * the entries stopped ascending), then kept up to date. Open addressing over (hash, entry)
 * pairs, linear probing, at most half full (pbox__txn_slot, as the version store's). A
 * lookup compares stored hashes and touches an entry only when the hash matches, so a put
 * of a new key reads one cache line of the index; growing rehashes from the stored hashes
 * without touching the entries. Entries are never removed
 * before the end (a delete is an entry with del set). Without memory for an index, a lookup
 * searches the entries one by one (slow, still right).
 *
 * Threading: a write set belongs to the one thread using its transaction.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_FIRST 4096u
#define CHUNK_MAX (1u << 20)
#define WINLINE_MAX (16u << 10) /* longer values get a heap block of their own */

typedef struct wchunk {
	struct wchunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char mem[];
} wchunk;

static void *walloc(pbox_txn *t, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	wchunk *c = t->chunks;
	if (!c || c->cap - c->used < n) {
		size_t cap = c ? (c->cap * 2 > CHUNK_MAX ? CHUNK_MAX : c->cap * 2) : CHUNK_FIRST;
		if (cap < n)
			cap = n;
		wchunk *nc = pbox_malloc(sizeof(*nc) + cap);
		if (!nc)
			return NULL;
		nc->used = 0;
		nc->cap = cap;
		if (c && c->cap - c->used >= CHUNK_FIRST && cap == n) {
			/* a one-entry chunk: keep filling the current one afterwards */
			nc->next = c->next;
			c->next = nc;
			nc->used = n;
			return nc->mem;
		}
		nc->next = c;
		t->chunks = c = nc;
	}
	void *p = c->mem + c->used;
	c->used += n;
	return p;
}

static size_t slot_of(const pbox_txn *t, uint64_t h)
{
	return pbox__txn_slot(h, t->wshift);
}

/* (tree, key) against entry b: the order of the install (tree, then memcmp order). */
static int wcmp(pbox_pid tree, const void *key, uint32_t klen, const went *b)
{
	if (tree != b->tree)
		return tree < b->tree ? -1 : 1;
	return pbox__bt_cmp_keys(key, klen, b->key, b->klen);
}

static void slot_put(pbox_txn *t, uint64_t h, went *w)
{
	size_t mask = t->wcap - 1;
	size_t i = slot_of(t, h);
	while (t->wtab[i].w)
		i = (i + 1) & mask;
	t->wtab[i].hash = h;
	t->wtab[i].w = w;
}

/* An index with room for n entries (at most half full): built from the entries the first
 * time, grown from its stored hashes afterwards. */
static int index_reserve(pbox_txn *t, size_t n)
{
	if (t->wtab && 2 * n <= t->wcap)
		return 0;
	size_t nc = t->wcap ? t->wcap : 64;
	while (2 * n > nc)
		nc *= 2;
	wslot *old = t->wtab, *tab = pbox_calloc(nc, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	size_t oc = t->wcap;
	t->wtab = tab;
	t->wcap = nc;
	t->wshift = pbox__txn_slot_shift(nc);
	if (old) {
		for (size_t i = 0; i < oc; i++)
			if (old[i].w)
				slot_put(t, old[i].hash, old[i].w);
		pbox_free(old);
	} else {
		for (size_t i = 0; i < t->wn; i++)
			slot_put(t, t->wvec[i]->hash, t->wvec[i]);
	}
	return 0;
}

went *pbox__txn_wfind(pbox_txn *t, pbox_pid tree, const void *key, uint32_t klen, uint64_t h)
{
	if (!t->wn)
		return NULL;
	if (!t->wunsorted) { /* ascending so far: the last entry is the greatest */
		int c = wcmp(tree, key, klen, t->wvec[t->wn - 1]);
		if (c >= 0)
			return c ? NULL : t->wvec[t->wn - 1];
	}
	if (!t->wtab && index_reserve(t, t->wn)) { /* no memory for an index: search */
		for (size_t i = 0; i < t->wn; i++)
			if (!wcmp(tree, key, klen, t->wvec[i]))
				return t->wvec[i];
		return NULL;
	}
	size_t mask = t->wcap - 1;
	for (size_t i = slot_of(t, h);; i = (i + 1) & mask) {
		const wslot *s = &t->wtab[i];
		if (!s->w)
			return NULL;
		if (s->hash == h && s->w->tree == tree && s->w->klen == klen &&
		    !memcmp(s->w->key, key, klen))
			return s->w;
	}
}

int pbox__txn_wadd(pbox_txn *t, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		   const void *val, size_t vlen, bool del)
{
	if (t->wn == t->wvcap) {
		size_t nc = t->wvcap ? 2 * t->wvcap : 16;
		went **nv = pbox_realloc(t->wvec, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->wvec = nv;
		t->wvcap = nc;
	}
	if (t->wtab && index_reserve(t, t->wn + 1))
		return -ENOMEM;
	if (del)
		vlen = 0;
	bool heap = vlen > WINLINE_MAX;
	unsigned char *hv = heap ? pbox_malloc(vlen) : NULL;
	went *w = heap && !hv ? NULL : walloc(t, sizeof(*w) + klen + (heap ? 0 : vlen));
	if (!w) {
		pbox_free(hv);
		return -ENOMEM;
	}
	w->hash = h;
	w->tree = tree;
	w->klen = klen;
	memcpy(w->key, key, klen);
	w->icap = heap ? 0 : (uint32_t)vlen;
	w->vheap = heap;
	t->nheap += heap;
	w->val = heap ? hv : w->key + klen;
	if (vlen)
		memcpy(w->val, val, vlen);
	w->vlen = (uint32_t)vlen;
	w->del = del;
	w->k = NULL;
	if (!t->wunsorted && t->wn && wcmp(tree, key, klen, t->wvec[t->wn - 1]) <= 0)
		t->wunsorted = true;
	t->wvec[t->wn++] = w;
	if (t->wtab)
		slot_put(t, h, w);
	t->bytes += sizeof(*w) + klen + vlen;
	return 0;
}

int pbox__txn_wset_value(pbox_txn *t, went *w, const void *val, size_t vlen, bool del)
{
	unsigned char *nv = w->key + w->klen;
	bool heap = !del && vlen > w->icap;
	if (heap && !(nv = pbox_malloc(vlen)))
		return -ENOMEM;
	if (w->vheap) {
		pbox_free(w->val);
		t->nheap--;
	}
	if (!del && vlen)
		memcpy(nv, val, vlen);
	t->bytes -= w->vlen;
	w->val = nv;
	w->vheap = heap;
	t->nheap += heap;
	w->vlen = del ? 0 : (uint32_t)vlen;
	w->del = del;
	t->bytes += w->vlen;
	return 0;
}

void pbox__txn_wclear(pbox_txn *t)
{
	for (size_t i = 0; t->nheap && i < t->wn; i++)
		if (t->wvec[i]->vheap)
			pbox_free(t->wvec[i]->val);
	for (wchunk *c = t->chunks, *n; c; c = n) {
		n = c->next;
		pbox_free(c);
	}
	t->chunks = NULL;
	pbox_free(t->wtab);
	pbox_free(t->wvec);
	t->wtab = NULL;
	t->wvec = NULL;
	t->wn = t->wcap = t->wvcap = t->bytes = t->nheap = 0;
	t->wunsorted = false;
}

/* ---- sorting ---------------------------------------------------------------------------- */

/* A sort record: the entry's tree and its key's first 8 bytes (big-endian, zero-padded), so
 * most comparisons never touch the entries: padded prefixes order like the keys (a shorter
 * key's padding is below any byte a longer one has there, as a prefix sorts first), and only
 * equal ones fall back to the whole keys. */
typedef struct wkey {
	pbox_pid tree;
	uint64_t pfx;
	went *w;
} wkey;

static int wkey_cmp(const void *a, const void *b)
{
	const wkey *x = a, *y = b;
	if (x->tree != y->tree)
		return x->tree < y->tree ? -1 : 1;
	if (x->pfx != y->pfx)
		return x->pfx < y->pfx ? -1 : 1;
	return pbox__bt_cmp_keys(x->w->key, x->w->klen, y->w->key, y->w->klen);
}

static int went_cmp(const void *a, const void *b)
{
	const went *x = *(went *const *)a;
	return wcmp(x->tree, x->key, x->klen, *(went *const *)b);
}

static inline bool wkey_lt(const wkey *x, const wkey *y)
{
	return wkey_cmp(x, y) < 0;
}

static void wkey_swap(wkey *a, wkey *b)
{
	wkey t = *a;
	*a = *b;
	*b = t;
}

/* An introsort on sort records with the comparison inlined (glibc's qsort spends most of its
 * time calling through a pointer and moving records): quicksort with a median of three,
 * recursion on the smaller side, insertion sort below 16 records, and qsort for a range that
 * went past its depth budget (adversarial orders), so the worst case stays n log n. */
static void wkey_sort(wkey *a, size_t n, unsigned depth)
{
	while (n > 16) {
		if (!depth--) {
			qsort(a, n, sizeof(*a), wkey_cmp);
			return;
		}
		size_t m = n / 2;
		if (wkey_lt(&a[m], &a[0]))
			wkey_swap(&a[m], &a[0]);
		if (wkey_lt(&a[n - 1], &a[m])) {
			wkey_swap(&a[n - 1], &a[m]);
			if (wkey_lt(&a[m], &a[0]))
				wkey_swap(&a[m], &a[0]);
		}
		wkey pv = a[m];
		size_t i = 0, j = n - 1;
		for (;;) { /* Hoare partition: a[0..j] <= pivot <= a[j+1..] */
			while (wkey_lt(&a[i], &pv))
				i++;
			while (wkey_lt(&pv, &a[j]))
				j--;
			if (i >= j)
				break;
			wkey_swap(&a[i], &a[j]);
			i++;
			j--;
		}
		size_t left = j + 1;
		if (left < n - left) {
			wkey_sort(a, left, depth);
			a += left;
			n -= left;
		} else {
			wkey_sort(a + left, n - left, depth);
			n = left;
		}
	}
	for (size_t i = 1; i < n; i++) {
		wkey x = a[i];
		size_t j = i;
		for (; j > 0 && wkey_lt(&x, &a[j - 1]); j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

void pbox__txn_wset_sort(pbox_txn *t)
{
	if (!t->wunsorted)
		return;
	size_t n = t->wn;
	wkey *a = pbox_malloc(n * sizeof(*a));
	if (!a) { /* no memory for the records: the same order, comparing the entries */
		qsort(t->wvec, n, sizeof(*t->wvec), went_cmp);
	} else {
		for (size_t i = 0; i < n; i++) {
			went *w = t->wvec[i];
			uint64_t p = 0;
			for (uint32_t j = 0; j < 8 && j < w->klen; j++)
				p |= (uint64_t)w->key[j] << (56 - 8 * j);
			a[i] = (wkey){ w->tree, p, w };
		}
		unsigned depth = 0;
		for (size_t x = n; x; x >>= 1)
			depth += 2;
		wkey_sort(a, n, depth);
		for (size_t i = 0; i < n; i++)
			t->wvec[i] = a[i].w;
		pbox_free(a);
	}
#if PBOX_DIAGNOSTIC
	for (size_t i = 1; i < n; i++) /* keys are distinct: strictly ascending */
		PBOX_ASSERT(went_cmp(&t->wvec[i - 1], &t->wvec[i]) < 0);
#endif
	t->wunsorted = false; /* ascending now: the index stays valid (it maps hashes) */
}
