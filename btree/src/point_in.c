/*
 * point_in.c — leaf changes inside a caller's mini-transaction (pbox_bt_*_in), so that a
 * structure of the caller's (a heap page) and a tree entry change atomically.
 *
 * The change finds the leaf optimistically (R1) and upgrades it into the caller's mtr
 * (pbox_mtr_fix_upgrade: never waits, so it cannot deadlock with the caller's own latches,
 * whatever order they were taken in). A leaf the mtr already holds needs no upgrade: nobody
 * else changed it since, and the mtr's own changes never move fences (no structure change
 * happens here), so the key is still in its range. What these calls cannot do in place
 * they refuse before changing anything, returning PBOX_ERESTART:
 *   - the leaf changed or is latched by someone else between the descent and the upgrade
 *     (after PBOX_LATCH_MAX_OPT_RESTARTS tries);
 *   - the entry does not fit (a split is needed): the caller aborts its mtr (unchanged if it
 *     called us first), calls pbox_bt_make_room, and starts over.
 * Values must fit inline in a leaf (no overflow chains: PBOX_EINVAL beyond
 * pbox_bt_inline_max). A remove leaves an underfull leaf as it is (no merge).
 * Transactions: these are physical changes beside the transaction layer (no versions, no
 * locks) and are refused (PBOX_EBUSY) while a transaction is open on the store.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

size_t pbox_bt_inline_max(pbox_bt *bt, size_t klen)
{
	if (!bt || klen > PBOX_BT_KEY_MAX(bt->ps))
		return 0;
	return pbox__bt_inline_max(bt, (uint32_t)klen);
}

/* An optimistic descent (R1, as descend.c's) that knows the pages m holds: an optimistic
 * read of a page latched exclusively would wait for its holder — m itself. A page m holds
 * is read as it is (nobody else can change it); the leaf is returned with *held set, or at
 * the version to upgrade from. A held leaf reached from a validated parent covers key: the
 * parent names it for key now, and it cannot have split since m latched it. */
static int descend_in(pbox_mtr *m, pbox_bt *bt, const void *key, uint32_t kl, pbox_pid *leaf,
		      uint64_t *version, bool *held)
{
	pbox_store *st = bt->st;
	pbox_pid pid = bt->root;
	uint64_t v = 0;
	bool mine = pbox_mtr_holds(m, pid);
	int r = mine ? 0 : pbox_page_fix_opt(st, pid, &v);
	if (r)
		return r == PBOX_EINVAL ? PBOX_ECORRUPT : r;
	for (unsigned depth = 0; depth < MAX_DEPTH; depth++) {
		const uint8_t *page = pbox_page_addr(st, pid);
		uint16_t type = pbox__bt_page_type_racy(page);
		uint8_t kind = rd8(page + PBOX_PAGE_HDR);
		if (type != BT_PAGE_TYPE || kind == DROPPED_KIND) {
			if (!mine && !pbox_page_validate(st, pid, v))
				return PBOX_ERESTART;
			return type != BT_PAGE_TYPE ? PBOX_ECORRUPT : PBOX_ECLOSED;
		}
		if (kind == PBOX_BT_NODE_LEAF) {
			*leaf = pid;
			*version = v;
			*held = mine;
			return 0;
		}
		pbox_pid child;
		uint32_t pos;
		r = pbox__bt_node_find_child(page, bt->ps, key, kl, &child, &pos);
		if (!mine && !pbox_page_validate(st, pid, v))
			return PBOX_ERESTART;
		if (r)
			return r;
		bool cmine = pbox_mtr_holds(m, child);
		uint64_t cv = 0;
		if (!cmine && (r = pbox_page_fix_opt(st, child, &cv)))
			return r == PBOX_EINVAL ? PBOX_ECORRUPT : r;
		if (!mine && !pbox_page_validate(st, pid, v))
			return PBOX_ERESTART;
		pid = child;
		v = cv;
		mine = cmine;
	}
	return PBOX_ECORRUPT;
}

/* The leaf for key, held exclusively by m: 0, PBOX_ERESTART, or an error. */
static int fix_leaf(pbox_mtr *m, pbox_bt *bt, const void *key, uint32_t kl, void **page,
		    pbox_pid *leaf_out)
{
	for (unsigned tries = 0; tries <= PBOX_LATCH_MAX_OPT_RESTARTS; tries++) {
		pbox_pid leaf;
		uint64_t v;
		bool held;
		int r = descend_in(m, bt, key, kl, &leaf, &v, &held);
		if (r == PBOX_ERESTART)
			continue;
		if (r)
			return r;
		r = held ? pbox_mtr_fix(m, leaf, page) : pbox_mtr_fix_upgrade(m, leaf, v, page);
		if (r == PBOX_ERESTART)
			continue;
		if (!r)
			*leaf_out = leaf;
		return r;
	}
	return PBOX_ERESTART;
}

static int check_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	if (!m)
		return PBOX_EINVAL;
	int r = pbox__bt_check_kv(bt, key, klen, val, vlen);
	if (r)
		return r;
	if (vlen > pbox__bt_inline_max(bt, (uint32_t)klen))
		return PBOX_EINVAL;
	txnmgr *tm = pbox__txn_mgr_peek(bt->st);
	return tm && atomic_load(&tm->mode) ? PBOX_EBUSY : 0;
}

enum { IN_INSERT, IN_UPSERT, IN_REMOVE };

static int change_in(pbox_mtr *m, pbox_bt *bt, int op, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	int r = check_in(m, bt, key, klen, val, vlen);
	if (r)
		return r;
	uint32_t kl = (uint32_t)klen;
	void *page;
	pbox_pid leaf;
	if ((r = fix_leaf(m, bt, key, kl, &page, &leaf)))
		return r;
	uint32_t pos;
	bool exact;
	if ((r = pbox__bt_node_lower_bound_in(page, bt->ps, key, kl, &pos, &exact)))
		return r;
	if (op == IN_INSERT && exact)
		return PBOX_EEXIST;
	if (op == IN_REMOVE && !exact)
		return PBOX_ENOTFOUND;
	if (exact) { /* a value on overflow pages: its chain would need freeing after commit */
		const uint8_t *p;
		uint32_t pl;
		unsigned fl;
		if ((r = pbox__bt_node_payload(page, bt->ps, pos, &p, &pl, &fl)))
			return r;
		if (fl & PBOX_BT_SLOT_OVERFLOW)
			return PBOX_EINVAL;
	}
	if (op == IN_REMOVE) {
		if ((r = pbox__bt_node_remove(page, bt->ps, pos)))
			return r;
		return pbox__bt_log_remove(m, leaf, key, kl);
	}
	unsigned f = exact ? PBOX_BT_INSERT_REPLACE : 0;
	r = pbox__bt_node_insert(page, bt->ps, key, kl, val, (uint32_t)vlen, f);
	if (r == PBOX_ENOSPC)
		return PBOX_ERESTART; /* the node refused before changing anything */
	if (r)
		return r;
	return pbox__bt_log_insert(m, leaf, key, kl, val, (uint32_t)vlen, f);
}

int pbox_bt_insert_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen, const void *val,
		      size_t vlen)
{
	return change_in(m, bt, IN_INSERT, key, klen, val, vlen);
}

int pbox_bt_upsert_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen, const void *val,
		      size_t vlen)
{
	return change_in(m, bt, IN_UPSERT, key, klen, val, vlen);
}

int pbox_bt_remove_in(pbox_mtr *m, pbox_bt *bt, const void *key, size_t klen)
{
	return change_in(m, bt, IN_REMOVE, key, klen, NULL, 0);
}

int pbox_bt_make_room(pbox_bt *bt, const void *key, size_t klen, size_t vlen)
{
	int r = pbox__bt_check_kv(bt, key, klen, NULL, 0);
	if (r)
		return r;
	if (vlen > pbox__bt_inline_max(bt, (uint32_t)klen))
		return PBOX_EINVAL;
	/* the space the entry takes in key's leaf as it is now (as point.c asks a split for) */
	void *buf = pbox_aligned_alloc(64, bt->ps);
	if (!buf)
		return -ENOMEM;
	pbox_pid leaf;
	uint64_t v;
	r = pbox__bt_descend_retry(bt, key, (uint32_t)klen, buf, &leaf, &v);
	uint32_t need = r ? 0 : pbox__bt_node_entry_space(buf, (uint32_t)klen, (uint32_t)vlen);
	pbox_free(buf);
	return r ? r : pbox__bt_split_pass(bt, key, (uint32_t)klen, need);
}
