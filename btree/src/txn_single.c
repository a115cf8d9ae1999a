/*
 * txn_single.c — pbox_bt_insert / upsert / update / remove: single-key changes behave as
 * one-operation transactions.
 *
 * Plain path (mode 0, no transaction open): count the change in this thread's fast[]
 * stripe, check the mode, change the tree (pbox__bt_change), uncount. A begin that switches
 * the mode waits for the stripes to drain, so no plain change overlaps a snapshot.
 *
 * Transactional path (mode 1): registered in nsingle (the mode cannot go back to 0 under
 * it, so no plain change can race it on the same key), the change
 *   1. takes the key's commit lock, waiting while a commit holds it (mgr->cv);
 *   2. reads the key's current value: the before-value, and the insert/update/remove
 *      precondition (EEXIST / ENOTFOUND are decided here, nothing changes);
 *   3. takes a commit timestamp, pushes the before-value as a version (invariant V),
 *      changes the tree, releases the lock, and marks the timestamp done.
 * So a transaction that began before it and writes the key conflicts (a newer version),
 * and snapshots that began before it keep reading the old value. It never returns
 * PBOX_ECONFLICT. Not logged logically: it is one physical change, atomic by itself.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>
#include <time.h>

static _Atomic unsigned next_stripe;
static _Thread_local unsigned my_stripe = ~0u;

static fast_stripe *stripe(txnmgr *m)
{
	if (my_stripe == ~0u)
		my_stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) %
			    FAST_STRIPES;
	return &m->fast[my_stripe];
}

/* Step 1: lock key (the lock owner is the caller's marker). */
static int lock_key(txnmgr *m, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		    const void *me)
{
	for (;;) {
		pthread_rwlock_wrlock(&m->vs);
		kent *k = pbox__vs_find(m, tree, key, klen, h, true);
		bool got = k && !k->lock;
		if (got)
			k->lock = me;
		pthread_rwlock_unlock(&m->vs);
		if (!k)
			return -ENOMEM;
		if (got)
			return 0;
		/* a commit holds it: wait for a commit to end (bounded: a missed wake-up costs a
		 * millisecond) */
		pthread_mutex_lock(&m->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&m->cv, &m->mu, &ts);
		pthread_mutex_unlock(&m->mu);
	}
}

/* Release key's lock; wake waiters unless pbox__txn_ts_done is about to (it broadcasts). */
static void unlock_key(txnmgr *m, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		       const void *me, bool wake)
{
	pthread_rwlock_wrlock(&m->vs);
	kent *k = pbox__vs_find(m, tree, key, klen, h, false);
	if (k && k->lock == me) {
		k->lock = NULL;
		pbox__vs_maybe_drop(m, k);
	}
	pthread_rwlock_unlock(&m->vs);
	if (!wake)
		return;
	pthread_mutex_lock(&m->mu);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static int txn_path(txnmgr *m, pbox_bt *bt, int op, const void *key, uint32_t klen,
		    const void *val, size_t vlen, unsigned flags)
{
	const char me = 0; /* a unique lock-owner marker: this frame */
	uint64_t h = pbox__txn_hash(bt->root, key, klen);
	int r = lock_key(m, bt->root, key, klen, h, &me);
	if (r)
		return r;
	unsigned char stackbuf[512], *buf = stackbuf;
	size_t cap = sizeof(stackbuf), blen = 0;
	r = pbox__txn_current(bt, key, klen, &buf, &cap, stackbuf, &blen);
	bool absent = r == PBOX_ENOTFOUND;
	if (absent)
		r = 0;
	if (!r && op == OP_INSERT && !absent)
		r = PBOX_EEXIST;
	if (!r && (op == OP_UPDATE || op == OP_REMOVE) && absent)
		r = PBOX_ENOTFOUND;
	uint64_t ts = 0;
	if (!r)
		r = pbox__txn_ts_begin(m, false, &ts);
	if (!r) {
		pthread_rwlock_wrlock(&m->vs);
		kent *k = pbox__vs_find(m, bt->root, key, klen, h, false);
		r = k ? pbox__vs_push(m, k, ts, absent, buf, blen) : PBOX_ECORRUPT;
		pthread_rwlock_unlock(&m->vs);
		if (!r)
			r = pbox__bt_change(bt, op, key, klen, val, vlen, flags);
	}
	if (buf != stackbuf)
		pbox_free(buf);
	unlock_key(m, bt->root, key, klen, h, &me, ts == 0);
	bool free_own = false;
	if (ts)
		pbox__txn_ts_done(m, ts, NULL, &free_own);
	if (!r && free_own) { /* nobody needs its version: freed at once, as a commit's */
		pthread_rwlock_wrlock(&m->vs);
		kent *k = pbox__vs_find(m, bt->root, key, klen, h, false);
		if (k)
			pbox__vs_drop_newest(m, k, ts);
		pthread_rwlock_unlock(&m->vs);
	}
	pbox__txn_enforce_cap(m);
	return r;
}

int pbox__txn_single(pbox_bt *bt, int op, const void *key, size_t klen, const void *val,
		     size_t vlen, unsigned flags)
{
	int r = pbox__bt_check_kv(bt, key, klen, val, vlen);
	if (r)
		return r;
	txnmgr *m = pbox__txn_mgr_peek(bt->st);
	if (!m) /* no transaction was ever begun on this store */
		return pbox__bt_change(bt, op, key, klen, val, vlen, flags);
	for (;;) {
		fast_stripe *fs = stripe(m);
		atomic_fetch_add(&fs->n, 1);
		if (atomic_load(&m->mode) == 0) {
			r = pbox__bt_change(bt, op, key, klen, val, vlen, flags);
			atomic_fetch_sub(&fs->n, 1);
			return r;
		}
		atomic_fetch_sub(&fs->n, 1);
		pthread_mutex_lock(&m->mu);
		if (atomic_load(&m->mode) == 0) { /* the last transaction just ended */
			pthread_mutex_unlock(&m->mu);
			continue;
		}
		m->nsingle++;
		pthread_mutex_unlock(&m->mu);
		break;
	}
	r = txn_path(m, bt, op, key, (uint32_t)klen, val, vlen, flags);
	pthread_mutex_lock(&m->mu);
	m->nsingle--;
	pbox__txn_maybe_plain(m);
	pthread_mutex_unlock(&m->mu);
	return r;
}
