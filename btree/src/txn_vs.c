/*
 * txn_vs.c — the version store: one entry (kent) per key that has old versions or a commit
 * lock, in a hash table; each entry's versions newest first; every version also on one list
 * in push order (ghead .. gtail), which garbage collection walks from the oldest and scans
 * walk from the newest (what was pushed since they last looked).
 *
 * Locking: everything here under mgr->vs — exclusively to change, shared to read. Version
 * values are copied out under it (a reader never keeps a pointer past its unlock).
 * Invariants: a key's versions have ascending ts from oldest to newest (pushes to one key
 * are serialised by its commit lock and take ts after it); an entry with no version and no
 * lock is removed; nversions / vbytes count what is on the list.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

int pbox__vs_init(txnmgr *m)
{
	m->nbuckets = 1024;
	atomic_store(&m->ghead_ts, UINT64_MAX);
	m->tab = pbox_calloc(m->nbuckets, sizeof(*m->tab));
	if (!m->tab)
		return -ENOMEM;
	return pthread_rwlock_init(&m->vs, NULL) ? -ENOMEM : 0;
}

static void free_ver(txnmgr *m, ver *v)
{
	atomic_fetch_sub_explicit(&m->nversions, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&m->vbytes, sizeof(*v) + v->vlen, memory_order_relaxed);
	pbox_free(v->val);
	pbox_free(v);
}

void pbox__vs_fini(txnmgr *m)
{
	for (ver *v = m->ghead, *n; v; v = n) {
		n = v->gnext;
		free_ver(m, v);
	}
	for (size_t b = 0; b < m->nbuckets; b++)
		for (kent *k = m->tab ? m->tab[b] : NULL, *n; k; k = n) {
			n = k->hnext;
			pbox_free(k);
		}
	pbox_free(m->tab);
	pthread_rwlock_destroy(&m->vs);
}

static void grow(txnmgr *m)
{
	size_t nb = m->nbuckets * 2;
	kent **t = pbox_calloc(nb, sizeof(*t));
	if (!t)
		return; /* keep the old table: longer chains, still correct */
	for (size_t b = 0; b < m->nbuckets; b++)
		for (kent *k = m->tab[b], *n; k; k = n) {
			n = k->hnext;
			k->hnext = t[k->hash & (nb - 1)];
			t[k->hash & (nb - 1)] = k;
		}
	pbox_free(m->tab);
	m->tab = t;
	m->nbuckets = nb;
}

kent *pbox__vs_find(txnmgr *m, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		    bool create)
{
	for (kent *k = m->tab[h & (m->nbuckets - 1)]; k; k = k->hnext)
		if (k->hash == h && k->tree == tree && k->klen == klen &&
		    !memcmp(k->key, key, klen))
			return k;
	if (!create)
		return NULL;
	if (m->nkeys >= 2 * m->nbuckets)
		grow(m);
	kent *k = pbox_malloc(sizeof(*k) + klen);
	if (!k)
		return NULL;
	k->hash = h;
	k->tree = tree;
	k->klen = klen;
	k->newest = NULL;
	k->lock = NULL;
	memcpy(k->key, key, klen);
	k->hnext = m->tab[h & (m->nbuckets - 1)];
	m->tab[h & (m->nbuckets - 1)] = k;
	m->nkeys++;
	return k;
}

void pbox__vs_maybe_drop(txnmgr *m, kent *k)
{
	if (k->newest || k->lock)
		return;
	kent **pp = &m->tab[k->hash & (m->nbuckets - 1)];
	while (*pp != k)
		pp = &(*pp)->hnext;
	*pp = k->hnext;
	m->nkeys--;
	pbox_free(k);
}

int pbox__vs_push(txnmgr *m, kent *k, uint64_t ts, bool absent, const void *before, size_t blen)
{
	ver *v = pbox_calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!absent && blen && !(v->val = pbox_malloc(blen))) {
		pbox_free(v);
		return -ENOMEM;
	}
	if (!absent && blen)
		memcpy(v->val, before, blen);
	v->vlen = absent ? 0 : (uint32_t)blen;
	v->absent = absent;
	v->ts = ts;
	v->k = k;
	v->older = k->newest;
	if (k->newest)
		k->newest->newer = v;
	k->newest = v;
	v->gprev = m->gtail;
	if (m->gtail) {
		m->gtail->gnext = v;
	} else {
		m->ghead = v;
		atomic_store_explicit(&m->ghead_ts, ts, memory_order_relaxed);
	}
	m->gtail = v;
	v->seq = atomic_fetch_add_explicit(&m->push_seq, 1, memory_order_relaxed) + 1;
	atomic_fetch_add_explicit(&m->nversions, 1, memory_order_release);
	atomic_fetch_add_explicit(&m->vbytes, sizeof(*v) + v->vlen, memory_order_relaxed);
	return 0;
}

void pbox__vs_collect(txnmgr *m, uint64_t horizon)
{
	if (!atomic_load_explicit(&m->nversions, memory_order_acquire) ||
	    atomic_load_explicit(&m->ghead_ts, memory_order_relaxed) > horizon)
		return; /* nothing, or the oldest version is still needed: nothing to free */
	pthread_rwlock_wrlock(&m->vs);
	/* oldest first; a version pushed later with a smaller ts than one still needed stays
	 * until that one goes (pushes are in ts order per key, nearly so overall) */
	while (m->ghead && m->ghead->ts <= horizon) {
		ver *v = m->ghead;
		m->ghead = v->gnext;
		if (m->ghead)
			m->ghead->gprev = NULL;
		else
			m->gtail = NULL;
		kent *k = v->k;
		/* the oldest of its key's versions (per-key ts ascend in push order) */
		if (v->newer)
			v->newer->older = NULL;
		else
			k->newest = NULL;
		free_ver(m, v);
		pbox__vs_maybe_drop(m, k);
	}
	atomic_store_explicit(&m->ghead_ts, m->ghead ? m->ghead->ts : UINT64_MAX,
			      memory_order_relaxed);
	pthread_rwlock_unlock(&m->vs);
}

int pbox__vs_at(const kent *k, uint64_t s, bool *absent, const unsigned char **val,
		uint32_t *vlen)
{
	const ver *hit = NULL;
	for (const ver *v = k->newest; v && v->ts > s; v = v->older)
		hit = v; /* the oldest version newer than s holds the value at s */
	if (!hit)
		return 0;
	*absent = hit->absent;
	*val = hit->val;
	*vlen = hit->vlen;
	return 1;
}

bool pbox__vs_conflicts(const kent *k, uint64_t s, const void *me)
{
	return (k->lock && k->lock != me) || (k->newest && k->newest->ts > s);
}
