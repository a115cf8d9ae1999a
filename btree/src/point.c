/*
 * point.c — lookups and point changes (insert, upsert, update, remove), and the key and value
 * limits.
 *
 * Concurrency (ARCHITECTURE §8):
 *   R2 A point change upgrades the leaf it read (pbox_mtr_fix_upgrade: succeeds only if the
 *      version did not move), changes it, logs one physiological record, commits.
 * The upgrade never waits: a leaf that moved restarts the change from a new descent (R1,
 * descend.c), so a point change holds one latch, the leaf's, and never waits holding it.
 * Because the version did not move, the key is still within the leaf's fences. A change
 * that does not fit aborts its mtr unchanged, makes room with a structure pass (smo.c) and
 * starts over; a remove that leaves the leaf underfull merges after its commit (an
 * optimisation: the remove is committed either way).
 *
 * A long value (over pbox__bt_inline_max) is written to an overflow chain before the leaf
 * changes, and the leaf gets a reference (overflow.c); a chain replaced or removed is freed
 * after the commit, and a chain whose change failed is freed at once.
 *
 * Lookups descend optimistically (R1) and read the leaf in place: the value is copied out
 * and the leaf validated, so only a validated read yields a result. After 64 failed
 * validations the leaf is copied consistently instead (descend.c: a validated copy, or one
 * made under shared latch coupling).
 */
#include "tree_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- limits ---------------------------------------------------------------------------- */

size_t pbox_bt_key_max(const pbox_store *st)
{
	return PBOX_BT_KEY_MAX(pbox_store_page_size(st));
}

size_t pbox_bt_value_max(const pbox_store *st, size_t klen)
{
	return klen > PBOX_BT_KEY_MAX(pbox_store_page_size(st)) ? 0 : PBOX_BT_VALUE_MAX_BYTES;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* Look key up in the leaf read in place: copy its value into dst (capacity cap) and
 * validate. 0 with *vlen; PBOX_ENOTFOUND; PBOX_ETOOSMALL (*vlen = the length, nothing
 * copied); PBOX_ERESTART (the leaf changed: descend again); 1 when the value lives on
 * overflow pages (validated: the caller reads it under a shared latch). Only a validated
 * read yields anything but PBOX_ERESTART. */
static int leaf_get(pbox_bt *bt, pbox_pid leaf, uint64_t v, const void *key, uint32_t klen,
		    void *dst, size_t cap, size_t *vlen, uint32_t *pos_out)
{
	const void *page = pbox_page_addr(bt->st, leaf);
	uint32_t pos;
	bool exact;
	const uint8_t *p = NULL;
	uint32_t plen = 0;
	unsigned fl = 0;
	int r = pbox__bt_node_find_payload(page, bt->ps, key, klen, &pos, &exact, &p, &plen, &fl);
	if (!r && exact && !(fl & PBOX_BT_SLOT_OVERFLOW) && plen <= cap)
		rdcopy(dst, p, plen);
	if (!pbox_page_validate(bt->st, leaf, v))
		return PBOX_ERESTART;
	if (r)
		return r;
	if (!exact)
		return PBOX_ENOTFOUND;
	*pos_out = pos;
	if (fl & PBOX_BT_SLOT_OVERFLOW)
		return 1;
	*vlen = plen;
	return plen <= cap ? 0 : PBOX_ETOOSMALL;
}

/* The lookup both public forms share: an inline value is copied into dst (cap bytes) and,
 * when fn is given, handed to fn from there; an overflow value is assembled in a heap
 * buffer and handed to fn (or copied into dst). With fn, an inline value longer than cap
 * sets *grow (PBOX_ETOOSMALL, *vlen its length) instead of calling fn. */
static int lookup(pbox_bt *bt, const void *key, size_t klen, void *dst, size_t cap,
		  size_t *vlen, int (*fn)(const void *val, size_t vlen, void *arg), void *arg,
		  bool *grow)
{
	int r = pbox__bt_check_kv(bt, key, klen, NULL, 0);
	if (r)
		return r;
	const uint32_t kl = (uint32_t)klen;
	unsigned char *heap = NULL;
	size_t heap_cap = 0;
	void *buf = NULL;
	for (unsigned restarts = 0;; restarts++) {
		pbox_pid leaf;
		uint64_t v;
		uint32_t pos;
		/* after many failed validations the leaf is read under a shared latch (buf) */
		if (restarts == 64 && !(buf = pbox_aligned_alloc(64, bt->ps))) {
			r = -ENOMEM;
			break;
		}
		if ((r = pbox__bt_descend_retry(bt, key, kl, buf, &leaf, &v)))
			break;
		if (!buf) {
			r = leaf_get(bt, leaf, v, key, kl, dst, cap, vlen, &pos);
			if (r == PBOX_ERESTART)
				continue;
			if (r != 1) { /* 1: an overflow value, read below */
				if (r == PBOX_ETOOSMALL && fn)
					*grow = true;
				else if (r == 0 && fn)
					r = fn(dst, *vlen, arg);
				break;
			}
		} else {
			bool exact;
			if ((r = pbox__bt_node_lower_bound(buf, bt->ps, key, kl, &pos, &exact)))
				break;
			if (!exact) {
				r = PBOX_ENOTFOUND;
				break;
			}
		}
		const void *val;
		size_t n;
		r = buf ? pbox__bt_leaf_value(bt, buf, leaf, key, kl, pos, &val, &n, &heap,
					      &heap_cap)
			: pbox__bt_ovf_value(bt, leaf, key, kl, &val, &n, &heap, &heap_cap);
		if (r == PBOX_ERESTART)
			continue;
		if (r)
			break;
		*vlen = n;
		if (fn) {
			r = fn(val, n, arg);
		} else if (n > cap) {
			r = PBOX_ETOOSMALL;
		} else if (n) {
			memcpy(dst, val, n);
		}
		break;
	}
	pbox_free(heap);
	pbox_free(buf);
	return r;
}

int pbox_bt_lookup_cb(pbox_bt *bt, const void *key, size_t klen,
		      int (*fn)(const void *val, size_t vlen, void *arg), void *arg)
{
	if (!fn)
		return PBOX_EINVAL;
	/* fn gets a validated copy: a short value is copied onto the stack; a longer inline
	 * one (grow: its size is known then) into a buffer of its size, and read again */
	unsigned char small[1024];
	size_t vlen = 0;
	bool grow = false;
	int r = lookup(bt, key, klen, small, sizeof(small), &vlen, fn, arg, &grow);
	for (unsigned tries = 0; grow && tries < 100; tries++) {
		size_t cap = vlen;
		unsigned char *big = pbox_malloc(cap);
		if (!big)
			return -ENOMEM;
		grow = false;
		r = lookup(bt, key, klen, big, cap, &vlen, fn, arg, &grow);
		pbox_free(big);
	}
	return grow ? PBOX_EBUSY : r; /* a value that kept growing while we looked */
}

int pbox_bt_lookup(pbox_bt *bt, const void *key, size_t klen, void *buf, size_t cap,
		   size_t *vlen)
{
	if (!vlen || (cap && !buf))
		return PBOX_EINVAL;
	size_t n = 0;
	bool grow = false;
	int r = lookup(bt, key, klen, buf, cap, &n, NULL, NULL, &grow);
	if (r == 0 || r == PBOX_ETOOSMALL)
		*vlen = n;
	return r;
}

/* ---- point changes (R2) ---------------------------------------------------------------- */


int pbox__bt_change(pbox_bt *bt, int op, const void *key, size_t klen, const void *val,
		    size_t vlen, unsigned flags)
{
	int r = pbox__bt_check_kv(bt, key, klen, val, vlen);
	if (r)
		return r;
	const uint32_t kl = (uint32_t)klen;
	pbox_lsn lsn = 0;
	bool underfull = false;
	/* a long value goes to a chain first; the leaf gets a reference */
	pbox_pid new_chain = 0, old_chain = 0;
	uint64_t old_len = 0;
	unsigned char ref[OVF_REF];
	unsigned vflags = 0;
	uint32_t vl = (uint32_t)vlen;
	if (op != OP_REMOVE && vlen > pbox__bt_inline_max(bt, kl)) {
		if ((r = pbox__bt_ovf_write(bt, val, vlen, &new_chain)))
			return r;
		uint64_t n = vlen;
		memcpy(ref, &new_chain, 8);
		memcpy(ref + 8, &n, 8);
		val = ref;
		vl = OVF_REF;
		vflags = PBOX_BT_SLOT_OVERFLOW;
	}
	for (;;) {
		pbox_pid leaf;
		uint64_t v;
		if ((r = pbox__bt_descend_retry(bt, key, kl, NULL, &leaf, &v)))
			break;
		pbox_mtr *m;
		if ((r = pbox_mtr_begin(bt->st, &m)))
			break;
		void *page;
		r = pbox_mtr_fix_upgrade(m, leaf, v, &page);
		if (r == PBOX_ERESTART) {
			pbox_mtr_abort(m, false);
			continue;
		}
		if (r) {
			pbox_mtr_abort(m, false);
			break;
		}
		/* the page is exactly what was read: same version, so key is in its range */
		uint32_t pos;
		bool exact;
		if ((r = pbox__bt_node_lower_bound_in(page, bt->ps, key, kl, &pos, &exact))) {
			pbox_mtr_abort(m, false);
			break;
		}
		if ((op == OP_INSERT && exact) || ((op == OP_UPDATE || op == OP_REMOVE) && !exact)) {
			pbox_mtr_abort(m, false);
			r = op == OP_INSERT ? PBOX_EEXIST : PBOX_ENOTFOUND;
			break;
		}
		old_chain = 0;
		if (exact) { /* the value being replaced or removed may own a chain */
			const uint8_t *op_;
			uint32_t opl;
			unsigned ofl;
			if ((r = pbox__bt_node_payload(page, bt->ps, pos, &op_, &opl, &ofl)) ||
			    ((ofl & PBOX_BT_SLOT_OVERFLOW) &&
			     (r = pbox__bt_parse_ref(op_, opl, &old_chain, &old_len)))) {
				pbox_mtr_abort(m, false);
				break;
			}
		}
		if (op == OP_REMOVE) {
			if ((r = pbox__bt_node_remove(page, bt->ps, pos)) ||
			    (r = pbox__bt_log_remove(m, leaf, key, kl))) {
				pbox_mtr_abort(m, true);
				break;
			}
			underfull = leaf != bt->root && pbox__bt_node_underfull(page, bt->ps);
		} else {
			unsigned f = (exact ? PBOX_BT_INSERT_REPLACE : 0) | vflags;
			r = pbox__bt_node_insert(page, bt->ps, key, kl, val, vl, f);
			if (r == PBOX_ENOSPC) {
				uint32_t need = pbox__bt_node_entry_space(page, kl, vl);
				pbox_mtr_abort(m, false); /* unchanged */
				if ((r = pbox__bt_split_pass(bt, key, kl, need)))
					break;
				continue;
			}
			if (r || (r = pbox__bt_log_insert(m, leaf, key, kl, val, vl, f))) {
				pbox_mtr_abort(m, r != PBOX_EINVAL);
				break;
			}
		}
		r = pbox_mtr_commit(m, flags & PBOX_BT_DURABLE, &lsn);
		/* a merge is an optimisation; the remove is committed either way (a failed merge
		 * poisons the store, which surfaces in the next operation) */
		if (!r && underfull)
			(void)pbox__bt_merge_pass(bt, key, kl);
		break;
	}
	if (r && new_chain) /* the change did not happen: unused */
		(void)pbox__bt_ovf_free(bt, new_chain, vlen);
	if (!r && old_chain)
		(void)pbox__bt_ovf_free(bt, old_chain, old_len);
	return r;
}

/* The public changes go through txn_single.c: outside transactions they behave as
 * one-operation transactions (a plain pbox__bt_change when no transaction is open). */
int pbox_bt_insert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return pbox__txn_single(bt, OP_INSERT, key, klen, val, vlen, flags);
}

int pbox_bt_upsert(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return pbox__txn_single(bt, OP_UPSERT, key, klen, val, vlen, flags);
}

int pbox_bt_update(pbox_bt *bt, const void *key, size_t klen, const void *val, size_t vlen,
		   unsigned flags)
{
	return pbox__txn_single(bt, OP_UPDATE, key, klen, val, vlen, flags);
}

int pbox_bt_remove(pbox_bt *bt, const void *key, size_t klen, unsigned flags)
{
	return pbox__txn_single(bt, OP_REMOVE, key, klen, NULL, 0, flags);
}
