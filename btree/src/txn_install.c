/*
 * txn_install.c — step 4 of a commit (txn.c): the logged write set installed into the trees,
 * a leaf at a time.
 *
 * The write set is installed in (tree, key) order — the commit sorts it first unless it
 * already is (a load of sorted input, or keys put in order: txn_wset.c keeps track) — so
 * that the entries falling into one leaf are consecutive. They are applied in ONE
 * mini-transaction holding that leaf exclusively: one descent, one latch, one vs hold and
 * one log group per leaf, where a key at a time costs a lookup descent, a change descent,
 * two vs holds and a log group per key. Per entry, under the leaf latch: a version holding
 * the value it replaces is made (copied from the leaf, no lock held), and the leaf is changed
 * and logged (the same physiological records as point.c's); then the leaf's versions are
 * linked onto their keys' entries in one short hold of vs, and the mtr commits.
 *
 * Invariant V (txn_int.h: the version is pushed before a reader can see the change) holds
 * although the link follows the change: the leaf is latched exclusively until the mtr
 * commits, so no reader sees it in between (optimistic reads fail their validation and
 * retry), and both are in place when the latch goes. Making the versions outside vs keeps
 * its holds short: small commits beside a big one take vs several times each.
 *
 * What a leaf group cannot do, the key-at-a-time path (install_one) does: a value on
 * overflow pages (a new long value needs its chain written before the leaf changes, an old
 * one is read from its chain and freed after), a dropped tree. A group stops at the first
 * such entry, at the leaf's upper fence, at a change of tree, and at a change that does not
 * fit — then the leaf is split by a structure pass (smo.c, as point.c does) and the next
 * group starts with that entry. A remove that leaves the leaf underfull is merged after the
 * group commits, as point.c merges after a single remove.
 *
 * Lock order: the leaf latch, then vs (nobody waits for a page while holding vs). The keys'
 * commit locks are held by the committing transaction throughout (lock_keys, txn.c), and
 * w->k is the locked key's entry (it cannot be dropped while locked).
 *
 * Errors: an error after the commit record is logged poisons the store (txn.c), and recovery
 * installs the whole write set again: an entry installed twice is harmless (upsert/remove).
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

#define GROUP_MAX 256u /* entries per leaf group (a leaf of 4 KiB holds fewer) */

/* One key at a time: its before-value becomes a version, then the tree changes. */
static int install_one(pbox_txn *t, uint64_t ts, went *w, unsigned char **buf, size_t *cap)
{
	txnmgr *m = t->m;
	pbox_bt bt = { .st = t->st, .root = w->tree, .ps = m->ps };
	size_t blen = 0;
	int r = pbox__txn_current(&bt, w->key, w->klen, buf, cap, NULL, &blen);
	if (r == PBOX_ECLOSED)
		return 0; /* the tree was dropped meanwhile: nothing to install */
	if (r && r != PBOX_ENOTFOUND)
		return r;
	bool absent = r == PBOX_ENOTFOUND;
	if (absent && w->del)
		return 0;
	pthread_rwlock_wrlock(&m->vs);
	r = w->k ? pbox__vs_push(m, w->k, ts, absent, *buf, blen) : PBOX_ECORRUPT;
	pthread_rwlock_unlock(&m->vs);
	if (r)
		return r;
	r = w->del ? pbox__bt_change(&bt, OP_REMOVE, w->key, w->klen, NULL, 0, 0)
		   : pbox__bt_change(&bt, OP_UPSERT, w->key, w->klen, w->val, w->vlen, 0);
	if (r == PBOX_ECLOSED || (r == PBOX_ENOTFOUND && w->del))
		r = 0;
	return r;
}

/*
 * Apply v[0], v[1], ... to the leaf holding v[0]'s key while they fall into it. *used = the
 * entries done (installed, or nothing to install). An entry that does not fit ends the
 * group, and the leaf is split before returning (the next call finds room). 0 with *used ==
 * 0 and no split means v[0] needs the key-at-a-time path.
 */
static int install_leaf(pbox_txn *t, uint64_t ts, went **v, size_t n, size_t *used,
			bool *split)
{
	txnmgr *m = t->m;
	const pbox_pid tree = v[0]->tree;
	pbox_bt bt = { .st = t->st, .root = tree, .ps = m->ps };
	*used = 0;
	*split = false;
	if (!v[0]->del && v[0]->vlen > pbox__bt_inline_max(&bt, v[0]->klen))
		return 0;
	for (;;) {
		pbox_pid leaf;
		uint64_t lv;
		int r = pbox__bt_descend_retry(&bt, v[0]->key, v[0]->klen, NULL, &leaf, &lv);
		if (r)
			return r == PBOX_ECLOSED ? 0 : r; /* dropped: the slow path skips it */
		pbox_mtr *mt;
		if ((r = pbox_mtr_begin(t->st, &mt)))
			return r;
		void *page;
		r = pbox_mtr_fix_upgrade(mt, leaf, lv, &page);
		if (r == PBOX_ERESTART) {
			pbox_mtr_abort(mt, false);
			continue;
		}
		if (r) {
			pbox_mtr_abort(mt, false);
			return r;
		}
		size_t i = 0;
		bool changed = false;
		const went *last_rm = NULL, *full = NULL;
		uint32_t need = 0;
		ver *pv[GROUP_MAX]; /* versions made for this leaf, linked before the commit */
		kent *pk[GROUP_MAX];
		unsigned np = 0;
		for (; i < n && np < GROUP_MAX; i++) {
			went *w = v[i];
			if (w->tree != tree)
				break;
			if (!w->del && w->vlen > pbox__bt_inline_max(&bt, w->klen))
				break;
			if (i) { /* v[0] is in the leaf (the descent's); the next ones ascend */
				bool in;
				if ((r = pbox__bt_key_in_range(page, bt.ps, w->key, w->klen, &in)))
					break;
				if (!in)
					break;
			}
			uint32_t pos;
			bool exact;
			if ((r = pbox__bt_node_lower_bound_in(page, bt.ps, w->key, w->klen, &pos,
							      &exact)))
				break;
			const uint8_t *op = NULL;
			uint32_t ol = 0;
			if (exact) {
				unsigned ofl;
				if ((r = pbox__bt_node_payload(page, bt.ps, pos, &op, &ol, &ofl)))
					break;
				if (ofl & PBOX_BT_SLOT_OVERFLOW)
					break; /* its chain: the slow path */
			} else if (w->del) {
				continue; /* absent: nothing to delete, no version (as install_one) */
			}
			if (!w->k) {
				r = PBOX_ECORRUPT;
				break;
			}
			ver *nv = pbox__vs_new(ts, !exact, op, ol); /* the before-value, copied */
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			if (w->del) {
				if ((r = pbox__bt_node_remove(page, bt.ps, pos))) {
					pbox__vs_discard(nv);
					break;
				}
				changed = true;
				last_rm = w;
				r = pbox__bt_log_remove(mt, leaf, w->key, w->klen);
			} else {
				unsigned f = exact ? PBOX_BT_INSERT_REPLACE : 0;
				r = pbox__bt_node_insert(page, bt.ps, w->key, w->klen, w->val, w->vlen,
							 f);
				if (r == PBOX_ENOSPC) { /* unchanged: split, then go on */
					pbox__vs_discard(nv);
					need = pbox__bt_node_entry_space(page, w->klen, w->vlen);
					full = w;
					r = 0;
					break;
				}
				if (r) {
					pbox__vs_discard(nv);
					break;
				}
				changed = true;
				r = pbox__bt_log_insert(mt, leaf, w->key, w->klen, w->val, w->vlen, f);
			}
			pv[np] = nv;
			pk[np++] = w->k;
			if (r)
				break;
		}
		if (r) { /* the leaf may be changed without its versions: nothing commits */
			for (unsigned j = 0; j < np; j++)
				pbox__vs_discard(pv[j]);
			pbox_mtr_abort(mt, changed);
			return r;
		}
		if (np) { /* one short hold of vs for the leaf, before its latch goes (V) */
			pthread_rwlock_wrlock(&m->vs);
			for (unsigned j = 0; j < np; j++)
				pbox__vs_link(m, pk[j], pv[j]);
			pthread_rwlock_unlock(&m->vs);
		}
		bool underfull = last_rm && leaf != bt.root && pbox__bt_node_underfull(page, bt.ps);
		if (!changed)
			pbox_mtr_abort(mt, false);
		else if ((r = pbox_mtr_commit(mt, false, NULL)))
			return r;
		*used = i;
		if (underfull) /* an optimisation, as after a single remove */
			(void)pbox__bt_merge_pass(&bt, last_rm->key, last_rm->klen);
		if (full) { /* as point.c: a structure pass makes room for it */
			*split = true;
			return pbox__bt_split_pass(&bt, full->key, full->klen, need);
		}
		return 0;
	}
}

int pbox__txn_install(pbox_txn *t, uint64_t ts)
{
	unsigned char *buf = NULL;
	size_t cap = 0;
	int r = 0;
	went **v = t->wvec; /* in (tree, key) order: the commit sorted it before locking */
	size_t n = t->wn;
	for (size_t i = 0; i < n && !r;) {
		size_t used;
		bool split;
		r = install_leaf(t, ts, v + i, n - i, &used, &split);
		if (!r && !used && !split)
			r = install_one(t, ts, v[i], &buf, &cap), used = 1;
		i += used;
	}
	pbox_free(buf);
	return r;
}
