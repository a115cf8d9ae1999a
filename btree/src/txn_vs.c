/*
 * txn_vs.c — the version store: one entry (kent) per key that has old versions or a commit
 * lock, in a hash table (open addressing over (hash, entry) slots, linear probing, at most
 * half full, shrunk again once a big commit's keys are gone); each entry's versions newest
 * first; every version also on one list in push order (ghead .. gtail), which garbage
 * collection walks from the oldest and scans walk from the newest (what was pushed since
 * they last looked).
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

#define KTAB_MIN 1024u
#define COLLECT_CHUNK 1024u /* versions freed per hold of vs */

static size_t kslot_of(const txnmgr *m, uint64_t h)
{
	return pbox__txn_slot(h, m->kshift);
}

/* A table of n slots (a power of two) holding every entry of the current one. */
static int rebuild(txnmgr *m, size_t n)
{
	kslot *t = pbox_calloc(n, sizeof(*t));
	if (!t)
		return -ENOMEM;
	kslot *old = m->tab;
	size_t on = m->nbuckets;
	m->tab = t;
	m->nbuckets = n;
	m->kshift = pbox__txn_slot_shift(n);
	for (size_t i = 0; i < on; i++) {
		if (!old[i].k)
			continue;
		size_t j = kslot_of(m, old[i].hash);
		while (t[j].k)
			j = (j + 1) & (n - 1);
		t[j] = old[i];
	}
	pbox_free(old);
	return 0;
}

int pbox__vs_init(txnmgr *m)
{
	atomic_store(&m->ghead_ts, UINT64_MAX);
	m->tab = NULL;
	m->nbuckets = 0;
	if (rebuild(m, KTAB_MIN))
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
	for (size_t b = 0; m->tab && b < m->nbuckets; b++)
		pbox_free(m->tab[b].k);
	pbox_free(m->tab);
	pthread_rwlock_destroy(&m->vs);
}

kent *pbox__vs_find(txnmgr *m, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		    bool create)
{
	size_t mask = m->nbuckets - 1, i = kslot_of(m, h);
	for (; m->tab[i].k; i = (i + 1) & mask) {
		kent *k = m->tab[i].k;
		if (m->tab[i].hash == h && k->tree == tree && k->klen == klen &&
		    !memcmp(k->key, key, klen))
			return k;
	}
	if (!create)
		return NULL;
	if (2 * (m->nkeys + 1) > m->nbuckets) {
		if (rebuild(m, 2 * m->nbuckets))
			return NULL;
		mask = m->nbuckets - 1;
		for (i = kslot_of(m, h); m->tab[i].k; i = (i + 1) & mask)
			;
	}
	kent *k = pbox_malloc(sizeof(*k) + klen);
	if (!k)
		return NULL;
	k->hash = h;
	k->tree = tree;
	k->klen = klen;
	k->newest = NULL;
	k->lock = NULL;
	memcpy(k->key, key, klen);
	m->tab[i].hash = h;
	m->tab[i].k = k;
	m->nkeys++;
	return k;
}

/* Linear probing's deletion: later entries of the run that may live in the freed slot move
 * back into it, so every lookup still finds its key before an empty slot. */
void pbox__vs_maybe_drop(txnmgr *m, kent *k)
{
	if (k->newest || k->lock)
		return;
	size_t mask = m->nbuckets - 1, i = kslot_of(m, k->hash);
	while (m->tab[i].k != k)
		i = (i + 1) & mask;
	for (size_t j = (i + 1) & mask; m->tab[j].k; j = (j + 1) & mask) {
		size_t home = kslot_of(m, m->tab[j].hash);
		/* the entry at j stays unless its home is outside (i, j] (cyclically) */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			m->tab[i] = m->tab[j];
			i = j;
		}
	}
	m->tab[i].k = NULL;
	m->nkeys--;
	pbox_free(k);
}

/* Give back the memory of a table a big commit grew, once its keys are gone (vs held). */
static void maybe_shrink(txnmgr *m)
{
	if (m->nbuckets <= KTAB_MIN || 16 * m->nkeys >= m->nbuckets)
		return;
	size_t n = KTAB_MIN;
	while (n < 4 * m->nkeys)
		n *= 2;
	(void)rebuild(m, n); /* no memory: keep the bigger one */
}

ver *pbox__vs_new(uint64_t ts, bool absent, const void *before, size_t blen)
{
	ver *v = pbox_calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (!absent && blen && !(v->val = pbox_malloc(blen))) {
		pbox_free(v);
		return NULL;
	}
	if (!absent && blen)
		memcpy(v->val, before, blen);
	v->vlen = absent ? 0 : (uint32_t)blen;
	v->absent = absent;
	v->ts = ts;
	return v;
}

void pbox__vs_discard(ver *v)
{
	if (v) {
		pbox_free(v->val);
		pbox_free(v);
	}
}

int pbox__vs_push(txnmgr *m, kent *k, uint64_t ts, bool absent, const void *before, size_t blen)
{
	ver *v = pbox__vs_new(ts, absent, before, blen);
	if (!v)
		return -ENOMEM;
	pbox__vs_link(m, k, v);
	return 0;
}

void pbox__vs_link(txnmgr *m, kent *k, ver *v)
{
	uint64_t ts = v->ts;
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
}

void pbox__vs_collect(txnmgr *m, uint64_t horizon)
{
	if (!atomic_load_explicit(&m->nversions, memory_order_acquire) ||
	    atomic_load_explicit(&m->ghead_ts, memory_order_relaxed) > horizon)
		return; /* nothing, or the oldest version is still needed: nothing to free */
	/* oldest first; a version pushed later with a smaller ts than one still needed stays
	 * until that one goes (pushes are in ts order per key, nearly so overall). In chunks:
	 * a big commit's versions go without holding vs for all of them at once (small
	 * commits wait for it). horizon stays right across the gaps: a snapshot begun
	 * meanwhile is at least as new. */
	for (bool more = true; more;) {
		pthread_rwlock_wrlock(&m->vs);
		for (unsigned c = 0; c < COLLECT_CHUNK && m->ghead && m->ghead->ts <= horizon;
		     c++) {
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
		more = m->ghead && m->ghead->ts <= horizon;
		if (!more)
			maybe_shrink(m);
		atomic_store_explicit(&m->ghead_ts, m->ghead ? m->ghead->ts : UINT64_MAX,
				      memory_order_relaxed);
		pthread_rwlock_unlock(&m->vs);
	}
}

void pbox__vs_drop_newest(txnmgr *m, kent *k, uint64_t ts)
{
	ver *v = k->newest;
	if (!v || v->ts != ts)
		return; /* a later commit wrote the key since: collection frees it in turn */
	k->newest = v->older;
	if (v->older)
		v->older->newer = NULL;
	if (v->gprev)
		v->gprev->gnext = v->gnext;
	else
		m->ghead = v->gnext;
	if (v->gnext)
		v->gnext->gprev = v->gprev;
	else
		m->gtail = v->gprev;
	atomic_store_explicit(&m->ghead_ts, m->ghead ? m->ghead->ts : UINT64_MAX,
			      memory_order_relaxed);
	free_ver(m, v);
	pbox__vs_maybe_drop(m, k);
}

int pbox__vs_at(const kent *k, const pbox_txn *t, bool *absent, const unsigned char **val,
		uint32_t *vlen)
{
	const ver *hit = NULL;
	for (const ver *v = k->newest; v && !pbox__txn_sees(t, v->ts); v = v->older)
		hit = v; /* the oldest of the newest unseen versions holds the value seen */
	if (!hit)
		return 0;
	*absent = hit->absent;
	*val = hit->val;
	*vlen = hit->vlen;
	return 1;
}

bool pbox__vs_conflicts(const kent *k, const pbox_txn *t)
{
	return (k->lock && k->lock != t) || (k->newest && !pbox__txn_sees(t, k->newest->ts));
}
