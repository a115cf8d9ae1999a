/*
 * txn_read.c — reading in a transaction's view: its own writes, else its snapshot (the
 * tree corrected by the version store, invariant V of txn_int.h).
 *
 * get: own write; else the tree's value, then the key's versions (read after the tree: a
 * commit pushes the version before it changes the tree, so whichever tree value was seen,
 * the versions then correct it to the snapshot's).
 *
 * scan: the tree is read in chunks (pbox_bt_scan_ex, up to CHUNK keys); after each chunk
 * the versions pushed since the last look (the push-order list, from its newest end) are
 * added to V, the sorted set of keys of this tree and range whose value at the snapshot a
 * version decides (collected once, in full, when the scan starts). Then the chunk's key range
 * is merged from three sorted sources — own writes (W) over versions (V) over the tree —
 * and handed to the callback. A key removed by a later commit while the scan runs is in V
 * before the chunk that would have held it is read (the version precedes the removal), so
 * nothing of the snapshot is missed, and nothing newer is shown.
 *
 * Cursors: each move is a scan of the view for one key (O(log n), no leaf kept), so they
 * see exactly what get and scan see. A cursor is detached when its transaction ends.
 *
 * Retired snapshots (the version cap): checked after the versions were consulted, under
 * vs — the versions a retired snapshot needed may be gone, but retirement is flagged before
 * they are freed (txn.c), so a read that saw the flag clear used a complete store.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256u

static int check_read(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen)
{
	if (!t || !bt || bt->st != t->st)
		return PBOX_EINVAL;
	int r = pbox__bt_check_kv(bt, key, klen, NULL, 0);
	if (r)
		return r;
	if (t->doomed)
		return PBOX_ECONFLICT;
	return atomic_load(&t->retired) ? PBOX_ESNAPSHOT : 0;
}

static int give(const void *v, size_t n, void *buf, size_t cap, size_t *vlen)
{
	if (vlen)
		*vlen = n;
	if (n > cap)
		return PBOX_ETOOSMALL;
	if (n)
		memcpy(buf, v, n);
	return 0;
}

int pbox_txn_get(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen, void *buf, size_t cap,
		 size_t *vlen)
{
	int r = check_read(t, bt, key, klen);
	if (r)
		return r;
	if (cap && !buf)
		return PBOX_EINVAL;
	uint32_t kl = (uint32_t)klen;
	uint64_t h = 0; /* hashed only when there is somewhere to look it up */
	if (t->wn) {
		h = pbox__txn_hash(bt->root, key, kl);
		went *w = pbox__txn_wfind(t, bt->root, key, kl, h);
		if (w)
			return w->del ? PBOX_ENOTFOUND : give(w->val, w->vlen, buf, cap, vlen);
	}
	size_t tl = 0;
	r = pbox_bt_lookup(bt, key, klen, buf, cap, &tl);
	if (r && r != PBOX_ENOTFOUND && r != PBOX_ETOOSMALL)
		return r;
	txnmgr *m = t->m;
	if (atomic_load_explicit(&m->nversions, memory_order_acquire)) {
		if (!t->wn)
			h = pbox__txn_hash(bt->root, key, kl);
		pthread_rwlock_rdlock(&m->vs);
		kent *k = pbox__vs_find(m, bt->root, key, kl, h, false);
		bool absent = false;
		const unsigned char *v = NULL;
		uint32_t vl = 0;
		int at = k ? pbox__vs_at(k, t, &absent, &v, &vl) : 0;
		int vr = absent ? PBOX_ENOTFOUND : at ? give(v, vl, buf, cap, vlen) : 0;
		bool retired = atomic_load(&t->retired);
		pthread_rwlock_unlock(&m->vs);
		if (retired)
			return PBOX_ESNAPSHOT;
		if (at)
			return vr;
	} else if (atomic_load(&t->retired)) {
		return PBOX_ESNAPSHOT;
	}
	if (vlen && (!r || r == PBOX_ETOOSMALL))
		*vlen = tl;
	return r;
}

/* ---- scans --------------------------------------------------------------------------------- */

typedef struct item {
	unsigned char *key, *val; /* one allocation: key, then value */
	uint32_t klen, vlen;
	bool absent;
} item;

typedef struct ilist {
	item *v;
	size_t n, cap, at;
} ilist;

static int ipush(ilist *l, const void *k, uint32_t kl, const void *v, uint32_t vl, bool absent)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		item *x = pbox_realloc(l->v, nc * sizeof(*x));
		if (!x)
			return -ENOMEM;
		l->v = x;
		l->cap = nc;
	}
	item *it = &l->v[l->n];
	if (!(it->key = pbox_malloc((size_t)kl + vl + 1)))
		return -ENOMEM;
	memcpy(it->key, k, kl);
	it->val = it->key + kl;
	if (vl)
		memcpy(it->val, v, vl);
	it->klen = kl;
	it->vlen = vl;
	it->absent = absent;
	l->n++;
	return 0;
}

static void iclear(ilist *l)
{
	for (size_t i = 0; i < l->n; i++)
		pbox_free(l->v[i].key);
	l->n = l->at = 0;
}

static void ifree(ilist *l)
{
	iclear(l);
	pbox_free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static int item_cmp(const void *a, const void *b)
{
	const item *x = a, *y = b;
	return pbox__bt_cmp_keys(x->key, x->klen, y->key, y->klen);
}

typedef struct view_scan {
	pbox_txn *t;
	pbox_bt *bt;
	bool rev;
	/* the range: lo (excl when lo_excl) .. hi (exclusive); NULL: open */
	const void *lo, *hi;
	size_t lol, hil;
	bool lo_excl;
	ilist w, v, tree;
	uint64_t vseq;        /* V holds every version pushed up to this sequence number */
	unsigned chunk;
	unsigned char *cur;   /* the chunk boundary (a key copy) */
	uint32_t curl;
	bool have_cur;
} view_scan;

static bool in_range(const view_scan *s, const void *k, uint32_t kl)
{
	if (s->lo) {
		int c = pbox__bt_cmp_keys(k, kl, s->lo, s->lol);
		if (c < 0 || (c == 0 && s->lo_excl))
			return false;
	}
	return !s->hi || pbox__bt_cmp_keys(k, kl, s->hi, s->hil) < 0;
}

/* Is k's key in V already? V is sorted up to sorted, unsorted (this refresh's) after. */
static bool v_has(const view_scan *s, const kent *k, size_t sorted)
{
	size_t lo = 0, hi = sorted;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = pbox__bt_cmp_keys(s->v.v[mid].key, s->v.v[mid].klen, k->key, k->klen);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = sorted; i < s->v.n; i++)
		if (s->v.v[i].klen == k->klen && !memcmp(s->v.v[i].key, k->key, k->klen))
			return true;
	return false;
}

/* Add k to V if it is of this tree and range and a version decides its value at the
 * snapshot (once: the value at the snapshot never changes). sorted: as for v_has, or
 * SIZE_MAX when k cannot be in V (the first, full collection visits each key once). */
static int v_add(view_scan *s, const kent *k, size_t sorted)
{
	if (k->tree != s->bt->root || !in_range(s, k->key, k->klen))
		return 0;
	bool absent = false;
	const unsigned char *val = NULL;
	uint32_t vl = 0;
	if (!pbox__vs_at(k, s->t, &absent, &val, &vl))
		return 0;
	if (sorted != SIZE_MAX && v_has(s, k, sorted))
		return 0;
	return ipush(&s->v, k->key, k->klen, val, vl, absent);
}

/* V: in full at the start (all = true), then what was pushed since. Sorted afterwards. */
static int v_refresh(view_scan *s, bool all)
{
	txnmgr *m = s->t->m;
	if (!atomic_load_explicit(&m->nversions, memory_order_acquire) && !all)
		return atomic_load(&s->t->retired) ? PBOX_ESNAPSHOT : 0;
	int r = 0;
	size_t before = s->v.n;
	pthread_rwlock_rdlock(&m->vs);
	if (all) {
		for (size_t b = 0; b < m->nbuckets && !r; b++)
			if (m->tab[b].k)
				r = v_add(s, m->tab[b].k, SIZE_MAX);
	} else {
		for (ver *x = m->gtail; x && x->seq > s->vseq && !r; x = x->gprev)
			r = v_add(s, x->k, before);
	}
	s->vseq = atomic_load(&m->push_seq);
	bool retired = atomic_load(&s->t->retired);
	pthread_rwlock_unlock(&m->vs);
	if (!r && retired)
		r = PBOX_ESNAPSHOT;
	if (!r && s->v.n > 1 && s->v.n != before)
		qsort(s->v.v, s->v.n, sizeof(item), item_cmp);
	return r;
}

typedef struct chunk_arg {
	view_scan *s;
	int r;
} chunk_arg;

#define CHUNK_FULL 0x7fff0001

static int chunk_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	chunk_arg *a = arg;
	view_scan *s = a->s;
	if (s->have_cur && !s->rev &&
	    !pbox__bt_cmp_keys(key, klen, s->cur, s->curl)) /* the boundary, already merged */
		return 0;
	if (!s->have_cur && s->lo_excl && s->lo && !pbox__bt_cmp_keys(key, klen, s->lo, s->lol))
		return 0;
	if ((a->r = ipush(&s->tree, key, (uint32_t)klen, val, (uint32_t)vlen, false)))
		return a->r;
	return s->tree.n >= s->chunk ? CHUNK_FULL : 0;
}

/* Position of the first item of l at or beyond key in the scan's direction. */
static size_t seek_list(const view_scan *s, const ilist *l, const void *key, uint32_t kl,
			bool excl)
{
	size_t lo = 0, hi = l->n; /* l is ascending: binary search for the boundary */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = pbox__bt_cmp_keys(l->v[mid].key, l->v[mid].klen, key, kl);
		bool before = s->rev ? false : (c < 0 || (c == 0 && excl));
		if (s->rev)
			before = c < 0 || (c == 0 && !excl);
		if (before)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Merge and emit the items of W, V and the chunk within the covered range. For a forward
 * scan the range ends at (and includes) bound when bounded; for a reverse one it starts
 * there. Returns the callback's non-zero value, or 0. */
static int emit_range(view_scan *s, const void *bound, uint32_t bl, bool bounded,
		      pbox_bt_scan_fn fn, void *arg)
{
	/* iterate indices in the scan's direction; ascending arrays: forward from .at, or
	 * backward from .at - 1 */
	ilist *src[3] = { &s->w, &s->v, &s->tree };
	for (;;) {
		item *best = NULL;
		int bi = -1;
		for (int i = 0; i < 3; i++) {
			ilist *l = src[i];
			item *it;
			if (!s->rev) {
				if (l->at >= l->n)
					continue;
				it = &l->v[l->at];
			} else {
				if (l->at == 0)
					continue;
				it = &l->v[l->at - 1];
			}
			if (bounded) {
				int c = pbox__bt_cmp_keys(it->key, it->klen, bound, bl);
				if (s->rev ? c < 0 : c > 0)
					continue; /* beyond the covered range: a later chunk's */
			}
			if (!in_range(s, it->key, it->klen))
				continue;
			int c = best ? pbox__bt_cmp_keys(it->key, it->klen, best->key, best->klen) : 0;
			if (!best || (s->rev ? c > 0 : c < 0)) {
				best = it;
				bi = i;
			}
		}
		if (!best)
			return 0;
		/* the same key in several sources: the first (W, then V, then tree) decides */
		item pick = *best;
		for (int i = 2; i >= 0; i--) {
			ilist *l = src[i];
			item *it = !s->rev ? (l->at < l->n ? &l->v[l->at] : NULL)
					   : (l->at ? &l->v[l->at - 1] : NULL);
			if (it && !pbox__bt_cmp_keys(it->key, it->klen, pick.key, pick.klen)) {
				if (i <= bi)
					pick = *it;
				if (!s->rev)
					l->at++;
				else
					l->at--;
			}
		}
		if (!pick.absent) {
			int r = fn(pick.key, pick.klen, pick.val, pick.vlen, arg);
			if (r)
				return r;
		}
	}
}

/* The fast path: nothing of the transaction's own and no version in the range when the
 * scan began — the tree's pairs are the snapshot's, and go to the callback as the tree scan
 * delivers them (no copy), for as long as no version has been pushed since: a commit pushes
 * its version before it changes the tree, so a leaf read while the push count is unchanged
 * holds nothing newer than the snapshot. At the first push the scan stops, remembers the
 * last key delivered, and the merging path goes on from there. */
typedef struct stream_arg {
	view_scan *s;
	pbox_bt_scan_fn fn;
	void *arg;
	int user; /* the callback's non-zero return */
	bool any;
} stream_arg;

#define STREAM_PUSHED 0x7fff0002

static int stream_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	stream_arg *a = arg;
	view_scan *s = a->s;
	if (atomic_load_explicit(&s->t->m->push_seq, memory_order_acquire) != s->vseq)
		return STREAM_PUSHED;
	if (s->lo_excl && s->lo && !pbox__bt_cmp_keys(key, klen, s->lo, s->lol))
		return 0;
	memcpy(s->cur, key, klen);
	s->curl = (uint32_t)klen;
	a->any = true;
	int r = a->fn(key, klen, val, vlen, a->arg);
	if (r)
		a->user = r;
	return r;
}

static int view_scan_run(view_scan *s, pbox_bt_scan_fn fn, void *arg)
{
	pbox_txn *t = s->t;
	int r = 0;
	/* W: own writes of this tree in range, ascending */
	for (size_t i = 0; i < t->wn && !r; i++) {
		const went *w = t->wvec[i];
		if (w->tree == s->bt->root && in_range(s, w->key, w->klen))
			r = ipush(&s->w, w->key, w->klen, w->val, w->vlen, w->del);
	}
	if (r)
		return r;
	if (s->w.n > 1)
		qsort(s->w.v, s->w.n, sizeof(item), item_cmp);
	if ((r = v_refresh(s, true)))
		return r;
	s->w.at = s->rev ? s->w.n : 0;
	s->cur = pbox_malloc(PBOX_BT_KEY_MAX_ANY + 1);
	if (!s->cur)
		return -ENOMEM;
	if (!s->w.n && !s->v.n) {
		stream_arg a = { .s = s, .fn = fn, .arg = arg };
		r = pbox_bt_scan_ex(s->bt, s->lo, s->lol, s->hi, s->hil,
				    s->rev ? PBOX_BT_SCAN_REVERSE : 0, stream_cb, &a);
		if (a.user)
			return a.user;
		if (r != STREAM_PUSHED)
			return r == 0 && atomic_load(&s->t->retired) ? PBOX_ESNAPSHOT : r;
		/* a version was pushed: merge from the last key delivered on */
		s->have_cur = a.any;
		if ((r = v_refresh(s, false)))
			return r;
	}
	for (;;) {
		iclear(&s->tree);
		chunk_arg a = { .s = s, .r = 0 };
		const void *from = s->have_cur ? s->cur : s->lo;
		size_t froml = s->have_cur ? s->curl : s->lol;
		if (s->rev) {
			const void *to = s->have_cur ? s->cur : s->hi;
			size_t tol = s->have_cur ? s->curl : s->hil;
			r = pbox_bt_scan_ex(s->bt, s->lo, s->lol, to, tol, PBOX_BT_SCAN_REVERSE,
					    chunk_cb, &a);
		} else {
			r = pbox_bt_scan_ex(s->bt, from, froml, s->hi, s->hil, 0, chunk_cb, &a);
		}
		bool full = r == CHUNK_FULL;
		if (full)
			r = 0;
		if (!r && a.r)
			r = a.r;
		if (r)
			return r;
		/* after the chunk was read: the versions pushed meanwhile */
		if ((r = v_refresh(s, false)))
			return r;
		/* positions in W and V: from the previous boundary on */
		const void *pb = s->have_cur ? s->cur : (s->rev ? s->hi : s->lo);
		uint32_t pbl = (uint32_t)(s->have_cur ? s->curl : (s->rev ? s->hil : s->lol));
		bool pexcl = s->have_cur || (!s->rev && s->lo_excl);
		if (pb) {
			s->w.at = seek_list(s, &s->w, pb, pbl, pexcl);
			s->v.at = seek_list(s, &s->v, pb, pbl, pexcl);
		} else {
			s->w.at = s->rev ? s->w.n : 0;
			s->v.at = s->rev ? s->v.n : 0;
		}
		s->tree.at = s->rev ? s->tree.n : 0;
		/* the tree chunk is in scan order; make it ascending like the others */
		if (s->rev)
			for (size_t i = 0; i < s->tree.n / 2; i++) {
				item x = s->tree.v[i];
				s->tree.v[i] = s->tree.v[s->tree.n - 1 - i];
				s->tree.v[s->tree.n - 1 - i] = x;
			}
		const item *last = NULL;
		if (full)
			last = s->rev ? &s->tree.v[0] : &s->tree.v[s->tree.n - 1];
		if ((r = emit_range(s, last ? last->key : NULL, last ? last->klen : 0, full, fn,
				    arg)))
			return r;
		if (!full)
			return 0;
		memcpy(s->cur, last->key, last->klen);
		s->curl = last->klen;
		s->have_cur = true;
	}
}

static int view_scan_do(pbox_txn *t, pbox_bt *bt, const void *lo, size_t lol, bool lo_excl,
			const void *hi, size_t hil, bool rev, unsigned chunk, pbox_bt_scan_fn fn,
			void *arg)
{
	view_scan s = { .t = t, .bt = bt, .rev = rev, .lo = lo, .lol = lol, .lo_excl = lo_excl,
			.hi = hi, .hil = hil, .chunk = chunk };
	int r = view_scan_run(&s, fn, arg);
	ifree(&s.w);
	ifree(&s.v);
	ifree(&s.tree);
	pbox_free(s.cur);
	return r;
}

int pbox_txn_scan(pbox_txn *t, pbox_bt *bt, const void *start, size_t slen, const void *end,
		  size_t elen, unsigned flags, pbox_bt_scan_fn fn, void *arg)
{
	int r = check_read(t, bt, NULL, 0);
	if (r)
		return r;
	if (!fn || (flags & ~PBOX_BT_SCAN_REVERSE) || (slen && !start) || (elen && !end) ||
	    slen > PBOX_BT_KEY_MAX(bt->ps) || elen > PBOX_BT_KEY_MAX(bt->ps))
		return PBOX_EINVAL;
	return view_scan_do(t, bt, start, slen, false, end, elen,
			    (flags & PBOX_BT_SCAN_REVERSE) != 0, CHUNK, fn, arg);
}

/* ---- cursors ------------------------------------------------------------------------------- */

struct txn_cur {
	pbox_txn *t; /* NULL once the transaction ended */
	pbox_bt *bt;
	struct txn_cur *next;
	unsigned char *key, *val;
	uint32_t klen;
	size_t vlen, vcap;
	bool positioned;
};

int pbox_txn_cursor_open(pbox_txn *t, pbox_bt *bt, pbox_bt_cursor **out)
{
	int r = check_read(t, bt, NULL, 0);
	if (r)
		return r;
	if (!out)
		return PBOX_EINVAL;
	struct txn_cur *tc = pbox_calloc(1, sizeof(*tc));
	if (!tc || !(tc->key = pbox_malloc(PBOX_BT_KEY_MAX_ANY + 1))) {
		pbox_free(tc);
		return -ENOMEM;
	}
	if ((r = pbox_bt_cursor_open(bt, out))) {
		pbox_free(tc->key);
		pbox_free(tc);
		return r;
	}
	tc->t = t;
	tc->bt = bt;
	tc->next = t->cursors;
	t->cursors = tc;
	pbox__bt_cursor_set_txn(*out, tc);
	return 0;
}

void pbox__txn_cursors_detach(pbox_txn *t)
{
	for (struct txn_cur *c = t->cursors; c; c = c->next)
		c->t = NULL;
	t->cursors = NULL;
}

void pbox__txn_cursor_close(struct txn_cur *tc)
{
	if (tc->t) { /* unlink from its transaction */
		struct txn_cur **pp = &tc->t->cursors;
		while (*pp && *pp != tc)
			pp = &(*pp)->next;
		if (*pp)
			*pp = tc->next;
	}
	pbox_free(tc->key);
	pbox_free(tc->val);
	pbox_free(tc);
}

/* the first key of a one-key scan lands here */
static int take_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct txn_cur *tc = arg;
	if (vlen > tc->vcap) {
		unsigned char *nv = pbox_realloc(tc->val, vlen);
		if (!nv)
			return -ENOMEM;
		tc->val = nv;
		tc->vcap = vlen;
	}
	memcpy(tc->key, key, klen);
	tc->klen = (uint32_t)klen;
	if (vlen)
		memcpy(tc->val, val, vlen);
	tc->vlen = vlen;
	return 1; /* found: stop */
}

int pbox__txn_cursor_move(struct txn_cur *tc, int how, const void *key, size_t klen)
{
	if (!tc->t)
		return PBOX_ECLOSED;
	int r = check_read(tc->t, tc->bt, NULL, 0);
	if (r)
		return r;
	if ((how == CUR_NEXT || how == CUR_PREV) && !tc->positioned)
		return PBOX_EINVAL;
	/* the current key, for next/prev (take_one overwrites tc->key only when it lands) */
	unsigned char cur[PBOX_BT_KEY_MAX_ANY + 1];
	uint32_t cl = tc->klen;
	if (tc->positioned)
		memcpy(cur, tc->key, cl);
	pbox_txn *t = tc->t;
	switch (how) {
	case CUR_SEEK:
		r = view_scan_do(t, tc->bt, key, klen, false, NULL, 0, false, 8, take_one, tc);
		break;
	case CUR_FIRST:
		r = view_scan_do(t, tc->bt, NULL, 0, false, NULL, 0, false, 8, take_one, tc);
		break;
	case CUR_NEXT:
		r = view_scan_do(t, tc->bt, cur, cl, true, NULL, 0, false, 8, take_one, tc);
		break;
	case CUR_LAST:
		r = view_scan_do(t, tc->bt, NULL, 0, false, NULL, 0, true, 8, take_one, tc);
		break;
	case CUR_PREV:
		r = view_scan_do(t, tc->bt, NULL, 0, false, cur, cl, true, 8, take_one, tc);
		break;
	case CUR_SEEK_PREV: { /* the key itself if present, else the last one below it */
		size_t vl = 0;
		r = pbox_txn_get(t, tc->bt, key, klen, NULL, 0, &vl);
		if (r == PBOX_ETOOSMALL || (!r && vl == 0)) {
			unsigned char *v = vl ? pbox_malloc(vl) : NULL;
			if (vl && !v)
				return -ENOMEM;
			r = pbox_txn_get(t, tc->bt, key, klen, v, vl, &vl);
			if (!r)
				r = take_one(key, klen, v, vl, tc);
			pbox_free(v);
			if (r != PBOX_ETOOSMALL)
				break;
		}
		if (r && r != PBOX_ENOTFOUND)
			return r;
		r = view_scan_do(t, tc->bt, NULL, 0, false, key, klen, true, 8, take_one, tc);
		break;
	}
	default:
		return PBOX_EINVAL;
	}
	if (r == 1) {
		tc->positioned = true;
		return 0;
	}
	if (r == 0)
		r = PBOX_ENOTFOUND;
	if (how != CUR_NEXT && how != CUR_PREV)
		tc->positioned = false;
	return r;
}

int pbox__txn_cursor_key(struct txn_cur *tc, const void **key, size_t *klen)
{
	if (!tc->t)
		return PBOX_ECLOSED;
	if (!tc->positioned)
		return PBOX_EINVAL;
	*key = tc->key;
	*klen = tc->klen;
	return 0;
}

int pbox__txn_cursor_value(struct txn_cur *tc, const void **val, size_t *vlen)
{
	if (!tc->t)
		return PBOX_ECLOSED;
	if (!tc->positioned)
		return PBOX_EINVAL;
	*val = tc->vlen ? tc->val : (const void *)"";
	*vlen = tc->vlen;
	return 0;
}
