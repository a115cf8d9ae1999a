/*
 * txn.c — transactions: the per-store manager, begin, put, del, commit, abort (the design
 * and the invariants are in txn_int.h).
 *
 * Commit, step by step (commit()):
 *   1. lock: every written key's entry gets t as its commit lock, in chunks under vs (no
 *      waiting: a key locked by another commit, or with a version newer than t's snapshot,
 *      is a conflict, and the locks taken so far are released);
 *   2. ts: a commit timestamp and an in-flight slot whose log floor (the log's end now)
 *      keeps checkpoints from moving the logical start past this commit's records;
 *   3. log: the write set as logical records, the last with the commit record in one group
 *      (txn_log.c) — durable on return with PBOX_BT_DURABLE: the commit point;
 *   4. install (txn_install.c): per key, its before-value pushed as a version (invariant V)
 *      and the plain tree change, a leaf's keys in one mtr;
 *   5. an end record (recovery need not install it again), locks released, ts done: the
 *      snapshot horizon moves and later snapshots see everything at once.
 * A failure in 4 or 5 leaves the outcome to recovery: the store is marked failed.
 *
 * Locking: mgr->mu for the manager's fields; vs for keys (txn_vs.c). A transaction's own
 * fields belong to the one thread using it; retired is set under mu by another thread.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#define LOCK_CHUNK 64u /* keys locked per hold of vs: short holds, small commits pass */
#define DEFAULT_CAP (1ull << 30)

/* ---- the manager --------------------------------------------------------------------------- */

static void *mgr_create(pbox_store *st, void *arg)
{
	(void)arg;
	txnmgr *m = pbox_aligned_alloc(PBOX_CACHELINE, sizeof(*m));
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->st = st;
	m->ps = pbox_store_page_size(st);
	atomic_store(&m->cap, DEFAULT_CAP);
	if (pbox__vs_init(m)) {
		pbox_free(m->tab);
		pbox_free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	return m;
}

static void mgr_destroy(void *p)
{
	txnmgr *m = p;
	pbox__txn_rec_free(m);
	pbox__vs_fini(m);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	for (commit_slot *c = m->inflight, *n; c; c = n) {
		n = c->next;
		pbox_free(c);
	}
	pbox_free(m);
}

static pbox_lsn mgr_floor(void *p)
{
	txnmgr *m = p;
	pbox_lsn f = PBOX_LSN_NONE;
	pthread_mutex_lock(&m->mu);
	for (commit_slot *c = m->inflight; c; c = c->next)
		if (c->floor != PBOX_LSN_NONE && (f == PBOX_LSN_NONE || c->floor < f))
			f = c->floor;
	pthread_mutex_unlock(&m->mu);
	return f;
}

static const pbox_store_ext_ops mgr_ops = {
	.create = mgr_create, .destroy = mgr_destroy, .log_floor = mgr_floor
};

txnmgr *pbox__txn_mgr(pbox_store *st)
{
	return pbox_store_ext(st, PBOX_STORE_EXT_TXN, &mgr_ops, NULL);
}

txnmgr *pbox__txn_mgr_peek(pbox_store *st)
{
	return pbox_store_ext(st, PBOX_STORE_EXT_TXN, NULL, NULL);
}

uint64_t pbox__txn_hash(pbox_pid tree, const void *key, uint32_t klen)
{
	uint64_t h = 0xcbf29ce484222325ull ^ tree * 0x9e3779b97f4a7c15ull;
	const unsigned char *p = key;
	for (uint32_t i = 0; i < klen; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* ---- timestamps and the horizon ------------------------------------------------------------ */

uint64_t pbox__txn_horizon(txnmgr *m)
{
	uint64_t h = atomic_load(&m->visible);
	for (pbox_txn *t = m->active; t; t = t->next)
		if (!atomic_load_explicit(&t->retired, memory_order_relaxed) &&
		    !atomic_load_explicit(&t->locked, memory_order_relaxed) && pbox__txn_low(t) < h)
			h = pbox__txn_low(t);
	return h;
}

/* Is done commit ts (of self; NULL: a single-key change) seen by every snapshot that may
 * still read? (mu held) Then its versions are needed by nobody. */
static bool unneeded(txnmgr *m, const pbox_txn *self, uint64_t ts)
{
	for (pbox_txn *t = m->active; t; t = t->next)
		if (t != self && !atomic_load_explicit(&t->retired, memory_order_relaxed) &&
		    !atomic_load_explicit(&t->locked, memory_order_relaxed) &&
		    !pbox__txn_sees(t, ts))
			return false;
	return true;
}

/* After commit ts is done and nobody needs its versions (pbox__txn_ts_done said so): free
 * them at once. Otherwise collection frees them once the horizon passes them — which a long
 * install beside holds back: small commits' versions would pile up behind it. */
static void drop_own_versions(pbox_txn *t, uint64_t ts)
{
	txnmgr *m = t->m;
	for (size_t i = 0; i < t->wn;) {
		pthread_rwlock_wrlock(&m->vs);
		for (unsigned c = 0; i < t->wn && c < LOCK_CHUNK; c++, i++) {
			const went *w = t->wvec[i];
			kent *k = pbox__vs_find(m, w->tree, w->key, w->klen, w->hash, false);
			if (k)
				pbox__vs_drop_newest(m, k, ts);
		}
		pthread_rwlock_unlock(&m->vs);
	}
}

int pbox__txn_ts_begin(txnmgr *m, bool logs, uint64_t *ts)
{
	commit_slot *c = pbox_malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&m->mu);
	c->ts = ++m->clock;
	c->floor = logs ? pbox_wal_end_lsn(pbox_store_wal(m->st)) : PBOX_LSN_NONE;
	c->next = NULL;
	commit_slot **pp = &m->inflight; /* ts ascend: append */
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
	*ts = c->ts;
	pthread_mutex_unlock(&m->mu);
	return 0;
}

void pbox__txn_ts_done(txnmgr *m, uint64_t ts, const pbox_txn *self, bool *free_own)
{
	pthread_mutex_lock(&m->mu);
	commit_slot **pp = &m->inflight;
	while (*pp && (*pp)->ts != ts)
		pp = &(*pp)->next;
	commit_slot *c = *pp;
	PBOX_ASSERT(c); /* every ts taken is done exactly once */
	if (c) {
		*pp = c->next;
		pbox_free(c);
	}
	if (ts > m->done_max)
		m->done_max = ts;
	atomic_store(&m->visible, m->inflight ? m->inflight->ts - 1 : m->clock);
	uint64_t h = pbox__txn_horizon(m);
	if (free_own) /* the same hold of mu as the one that made ts done */
		*free_own = unneeded(m, self, ts);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	pbox__vs_collect(m, h);
}

void pbox__txn_maybe_plain(txnmgr *m)
{
	int one = 1; /* never from 2: a begin is switching and will set 1 */
	if (!m->nactive && !m->inflight && !m->nsingle)
		atomic_compare_exchange_strong(&m->mode, &one, 0);
}

/* ---- begin / end --------------------------------------------------------------------------- */

/* Switch to the transactional path: wait until every single change that entered the plain
 * path before the switch is done (each stripe seen at zero once suffices: later entrants see
 * the mode and leave the plain path). */
static void enter_txn_mode(txnmgr *m)
{
	for (unsigned i = 0; i < FAST_STRIPES; i++)
		while (atomic_load(&m->fast[i].n))
			sched_yield();
}

int pbox_txn_begin(pbox_store *st, unsigned flags, pbox_txn **out)
{
	if (!st || !out || (flags & ~PBOX_TXN_READONLY))
		return PBOX_EINVAL;
	txnmgr *m = pbox__txn_mgr(st);
	pbox_txn *t = pbox_calloc(1, sizeof(*t));
	if (!m || !t) {
		pbox_free(t);
		return -ENOMEM;
	}
	t->m = m;
	t->st = st;
	t->flags = flags;
	t->begin_ns = pbox_now_ns();
	pthread_mutex_lock(&m->mu);
	while (atomic_load(&m->mode) == 2) { /* another begin is switching: wait for it */
		pthread_mutex_unlock(&m->mu);
		sched_yield();
		pthread_mutex_lock(&m->mu);
	}
	if (atomic_load(&m->mode) == 0) {
		atomic_store(&m->mode, 2);
		pthread_mutex_unlock(&m->mu);
		enter_txn_mode(m);
		pthread_mutex_lock(&m->mu);
		atomic_store(&m->mode, 1);
	}
	/* The snapshot holds every commit done before this begin (txn.h), also when an older
	 * commit is still installing (commits finish out of ts order): snap is the highest ts
	 * done, and the commits below it still in flight are excluded (txn_int.h). It used to
	 * be visible (then a thread's next transaction missed its own last commit: a false
	 * conflict), and then visible after waiting for the older installs (a 1 M-key install
	 * stalled every begin for its whole length). */
	uint64_t vis = atomic_load(&m->visible);
	t->snap = m->done_max > vis ? m->done_max : vis;
	t->xs = t->xs_in;
	uint32_t nx = 0;
	for (commit_slot *c = m->inflight; c && c->ts < t->snap; c = c->next)
		nx++;
	if (nx > PBOX_ARRAY_LEN(t->xs_in) && !(t->xs = pbox_malloc(nx * sizeof(*t->xs)))) {
		pbox__txn_maybe_plain(m); /* as an end would */
		pthread_mutex_unlock(&m->mu);
		pbox_free(t);
		return -ENOMEM;
	}
	for (commit_slot *c = m->inflight; c && c->ts < t->snap; c = c->next)
		t->xs[t->nx++] = c->ts; /* inflight ascends: so does xs */
	t->next = m->active;
	if (m->active)
		m->active->prev = t;
	m->active = t;
	m->nactive++;
	pthread_mutex_unlock(&m->mu);
	*out = t;
	return 0;
}

/* Remove t from the open transactions and free it; the last one out switches back to the
 * plain path once nothing is in flight (then no version can be needed). */
static void txn_end(pbox_txn *t, bool committed)
{
	txnmgr *m = t->m;
	pbox__txn_cursors_detach(t);
	pbox__txn_wclear(t);
	pthread_mutex_lock(&m->mu);
	if (t->prev)
		t->prev->next = t->next;
	else
		m->active = t->next;
	if (t->next)
		t->next->prev = t->prev;
	m->nactive--;
	if (committed)
		m->commits++;
	else
		m->aborts++;
	uint64_t h = pbox__txn_horizon(m);
	pbox__txn_maybe_plain(m);
	pthread_mutex_unlock(&m->mu);
	pbox__vs_collect(m, h);
	if (t->xs != t->xs_in)
		pbox_free(t->xs);
	pbox_free(t);
}

void pbox_txn_abort(pbox_txn *t)
{
	if (t)
		txn_end(t, false);
}

/* ---- the write set ------------------------------------------------------------------------- */

size_t pbox_txn_count(const pbox_txn *t)
{
	return t ? t->wn : 0;
}

size_t pbox_txn_bytes(const pbox_txn *t)
{
	return t ? t->bytes : 0;
}

/* Is there a conflict on key already (someone committing it, or a commit since t began)? */
static bool early_conflict(pbox_txn *t, pbox_pid tree, const void *key, uint32_t klen,
			   uint64_t h)
{
	txnmgr *m = t->m;
	pthread_rwlock_rdlock(&m->vs);
	kent *k = pbox__vs_find(m, tree, key, klen, h, false);
	bool c = k && pbox__vs_conflicts(k, t);
	pthread_rwlock_unlock(&m->vs);
	return c;
}

static int doom(pbox_txn *t)
{
	if (!t->doomed) {
		t->doomed = true;
		pthread_mutex_lock(&t->m->mu);
		t->m->conflicts++;
		pthread_mutex_unlock(&t->m->mu);
	}
	return PBOX_ECONFLICT;
}

static int record(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen, const void *val,
		  size_t vlen, bool del)
{
	if (!t)
		return PBOX_EINVAL;
	if (t->doomed)
		return PBOX_ECONFLICT;
	int r = pbox__bt_check_kv(bt, key, klen, val, vlen);
	if (r || bt->st != t->st || (t->flags & PBOX_TXN_READONLY))
		return r ? r : PBOX_EINVAL;
	uint32_t kl = (uint32_t)klen;
	uint64_t h = pbox__txn_hash(bt->root, key, kl);
	went *w = pbox__txn_wfind(t, bt->root, key, kl, h);
	if (atomic_load(&t->retired))
		return PBOX_ESNAPSHOT; /* its conflict check needs versions that may be gone */
	if (del && w && w->del)
		return PBOX_ENOTFOUND; /* deleted already by t */
	if (del && !w) { /* absent in t's snapshot? */
		r = pbox_txn_get(t, bt, key, klen, NULL, 0, NULL);
		if (r && r != PBOX_ETOOSMALL)
			return r; /* PBOX_ENOTFOUND among them */
	}
	if (!w && early_conflict(t, bt->root, key, kl, h))
		return doom(t);
	if (!w)
		return pbox__txn_wadd(t, bt->root, key, kl, h, val, vlen, del);
	return pbox__txn_wset_value(t, w, val, vlen, del);
}

int pbox_txn_put(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen, const void *val,
		 size_t vlen)
{
	return record(t, bt, key, klen, val, vlen, false);
}

int pbox_txn_del(pbox_txn *t, pbox_bt *bt, const void *key, size_t klen)
{
	return record(t, bt, key, klen, NULL, 0, true);
}

/* ---- commit -------------------------------------------------------------------------------- */

int pbox__txn_current(pbox_bt *bt, const void *key, uint32_t klen, unsigned char **buf,
		      size_t *cap, const unsigned char *stack, size_t *len)
{
	for (;;) {
		int r = pbox_bt_lookup(bt, key, klen, *buf, *cap, len);
		if (r != PBOX_ETOOSMALL)
			return r;
		unsigned char *nb = *buf == stack ? pbox_malloc(*len) : pbox_realloc(*buf, *len);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = *len;
	}
}

/* Release the locks of the first n entries of t's write set. */
static void unlock_keys(pbox_txn *t, size_t n)
{
	txnmgr *m = t->m;
	if (n > t->wn)
		n = t->wn;
	for (size_t i = 0; i < n;) { /* in chunks, like the locking: short holds of vs */
		pthread_rwlock_wrlock(&m->vs);
		for (unsigned c = 0; i < n && c < LOCK_CHUNK; c++, i++) {
			went *w = t->wvec[i];
			kent *k = w->k;
			w->k = NULL;
			if (k && k->lock == t) {
				k->lock = NULL;
				pbox__vs_maybe_drop(m, k);
			}
		}
		pthread_rwlock_unlock(&m->vs);
	}
}

/* Step 1: lock every key, no waiting. 0, PBOX_ECONFLICT (nothing held) or -ENOMEM. */
static int lock_keys(pbox_txn *t)
{
	txnmgr *m = t->m;
	size_t done = 0;
	int r = 0;
	size_t i = 0;
	while (i < t->wn && !r) {
		pthread_rwlock_wrlock(&m->vs);
		for (unsigned c = 0; i < t->wn && c < LOCK_CHUNK; c++, i++) {
			went *w = t->wvec[i];
			kent *k = pbox__vs_find(m, w->tree, w->key, w->klen, w->hash, true);
			if (!k) {
				r = -ENOMEM;
				break;
			}
			if (pbox__vs_conflicts(k, t)) {
				pbox__vs_maybe_drop(m, k);
				r = PBOX_ECONFLICT;
				break;
			}
			k->lock = t;
			w->k = k;
			done++;
		}
		pthread_rwlock_unlock(&m->vs);
	}
	if (r)
		unlock_keys(t, done);
	return r;
}

int pbox_txn_commit(pbox_txn *t, unsigned flags)
{
	if (!t)
		return PBOX_EINVAL;
	if (t->doomed) {
		txn_end(t, false);
		return PBOX_ECONFLICT;
	}
	if (t->wn && atomic_load(&t->retired)) {
		txn_end(t, false);
		return PBOX_ESNAPSHOT;
	}
	txnmgr *m = t->m;
	int r = 0;
	if (!t->wn) { /* read-only or empty: nothing to log; durable is a barrier */
		if (flags & PBOX_BT_DURABLE)
			r = pbox_wal_flush(pbox_store_wal(t->st));
		txn_end(t, r == 0);
		return r;
	}
	pbox__txn_wset_sort(t); /* lock, log and install in key order */
	if ((r = lock_keys(t))) {
		if (r == PBOX_ECONFLICT)
			(void)doom(t);
		txn_end(t, false);
		return r;
	}
	atomic_store(&t->locked, true); /* its conflict checks are done: it reads no more */
	uint64_t ts;
	if ((r = pbox__txn_ts_begin(m, true, &ts))) {
		unlock_keys(t, t->wn);
		txn_end(t, false);
		return r;
	}
	if ((r = pbox__txn_log_commit(t, ts, flags))) {
		/* the commit record may or may not have been appended: if the log failed the
		 * store is poisoned and recovery decides; otherwise nothing was logged */
		unlock_keys(t, t->wn);
		pbox__txn_ts_done(m, ts, t, NULL);
		txn_end(t, false);
		return r;
	}
	r = pbox__txn_install(t, ts);
	if (!r)
		r = pbox__txn_log_end(t->st, ts);
	if (r) /* committed in the log, not installed: recovery completes it after a reopen */
		pbox_store_fail(t->st, r);
	unlock_keys(t, t->wn);
	bool free_own = false;
	pbox__txn_ts_done(m, ts, t, &free_own);
	if (!r && free_own)
		drop_own_versions(t, ts);
	txn_end(t, r == 0);
	pbox__txn_enforce_cap(m);
	return r;
}

/* ---- the version cap and statistics -------------------------------------------------------- */

int pbox_txn_set_version_cap(pbox_store *st, uint64_t bytes)
{
	txnmgr *m = st ? pbox__txn_mgr(st) : NULL;
	if (!m)
		return st ? -ENOMEM : PBOX_EINVAL;
	atomic_store(&m->cap, bytes);
	return 0;
}

/* Over the cap: retire the oldest open snapshots until the versions only they need are
 * freed (called after installs; cheap when under the cap). */
void pbox__txn_enforce_cap(txnmgr *m)
{
	uint64_t cap = atomic_load_explicit(&m->cap, memory_order_relaxed);
	if (!cap || atomic_load_explicit(&m->vbytes, memory_order_relaxed) <= cap)
		return;
	pthread_mutex_lock(&m->mu);
	pbox_txn *old = NULL;
	for (pbox_txn *t = m->active; t; t = t->next)
		if (!atomic_load(&t->retired) && !atomic_load(&t->locked) &&
		    pbox__txn_low(t) < atomic_load(&m->visible) &&
		    (!old || pbox__txn_low(t) < pbox__txn_low(old)))
			old = t;
	if (old) {
		atomic_store(&old->retired, true);
		m->retired++;
	}
	uint64_t h = pbox__txn_horizon(m);
	pthread_mutex_unlock(&m->mu);
	if (old)
		pbox__vs_collect(m, h);
}

void pbox_txn_get_stats(pbox_store *st, pbox_txn_stats *s)
{
	memset(s, 0, sizeof(*s));
	txnmgr *m = st ? pbox__txn_mgr_peek(st) : NULL;
	if (!m)
		return;
	uint64_t now = pbox_now_ns();
	pthread_mutex_lock(&m->mu);
	s->active = m->nactive;
	for (pbox_txn *t = m->active; t; t = t->next)
		if (now - t->begin_ns > s->oldest_snapshot_ms * 1000000ull)
			s->oldest_snapshot_ms = (now - t->begin_ns) / 1000000ull;
	s->commits = m->commits;
	s->aborts = m->aborts;
	s->conflicts = m->conflicts;
	s->retired = m->retired;
	s->recovered = m->recovered;
	pthread_mutex_unlock(&m->mu);
	s->versions = atomic_load(&m->nversions);
	s->version_bytes = atomic_load(&m->vbytes);
}
