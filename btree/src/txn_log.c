/*
 * txn_log.c — a commit's logical log records, and their recovery.
 *
 * RECORD FORMATS (logical records: no page; little-endian)
 *   TXN_OPS     u64 ts, then operations until the payload ends, each:
 *                 u8 kind (0 put, 1 del), u64 tree (its root page id), u32 klen,
 *                 u32 vtotal (the whole value's length), u32 voff, u32 vchunk, key,
 *                 vchunk bytes of the value from voff
 *               a value longer than one record continues in the next records (same key,
 *               voff = the bytes before it), so no record exceeds LOG_CHUNK
 *   TXN_COMMIT  u64 ts, u64 nops (keys in the write set)   in one group with the last OPS
 *   TXN_END     u64 ts                                      the install is complete
 *
 * A transaction's records are appended after its in-flight slot published a log floor (so a
 * checkpoint keeps them) and before it installs anything. Recovery (after the physical redo)
 * collects OPS per ts; COMMIT marks one committed, END forgets it; at the end (the recovered
 * hook) every committed transaction without END is installed again — idempotent: the keys
 * were locked until END, so nothing after it in the log touched them — and END records are
 * logged for them, durably, before the store opens (a second recovery must not install them
 * over later changes). Transactions without COMMIT are dropped: they never happened.
 * Memory during recovery: the write sets of the transactions cut short.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

#define LOG_CHUNK (512u << 10)
#define OP_HDR (1u + 8 + 4 + 4 + 4 + 4)

static inline void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static inline void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline uint64_t get64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline uint32_t get32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* ---- logging ------------------------------------------------------------------------------- */

typedef struct logbuf {
	pbox_store *st;
	unsigned char *b;
	size_t len;
	uint64_t ts;
} logbuf;

static int flush_ops(logbuf *lb, bool last, uint64_t nops, unsigned flags)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(lb->st, &m);
	if (r)
		return r;
	if (lb->len > 8)
		r = pbox_mtr_log_logical(m, REDO_TXN_OPS, lb->b, (uint32_t)lb->len);
	if (!r && last) {
		unsigned char c[16];
		put64(c, lb->ts);
		put64(c + 8, nops);
		r = pbox_mtr_log_logical(m, REDO_TXN_COMMIT, c, sizeof(c));
	}
	if (r) {
		pbox_mtr_abort(m, false);
		return r;
	}
	r = pbox_mtr_commit(m, last && (flags & PBOX_BT_DURABLE), NULL);
	lb->len = 8;
	return r;
}

int pbox__txn_log_commit(pbox_txn *t, uint64_t ts, unsigned flags)
{
	logbuf lb = { .st = t->st, .b = pbox_malloc(LOG_CHUNK), .len = 8, .ts = ts };
	if (!lb.b)
		return -ENOMEM;
	put64(lb.b, ts);
	int r = 0;
	for (size_t i = 0; i < t->wn && !r; i++) {
		const went *w = t->wvec[i];
		uint32_t off = 0;
		do { /* one piece of the value per pass (a short value: one pass) */
			if (lb.len + OP_HDR + w->klen + 1 > LOG_CHUNK &&
			    (r = flush_ops(&lb, false, 0, 0)))
				break;
			uint32_t room = (uint32_t)(LOG_CHUNK - lb.len - OP_HDR - w->klen);
			uint32_t piece = w->vlen - off < room ? w->vlen - off : room;
			unsigned char *p = lb.b + lb.len;
			p[0] = w->del ? 1 : 0;
			put64(p + 1, w->tree);
			put32(p + 9, w->klen);
			put32(p + 13, w->vlen);
			put32(p + 17, off);
			put32(p + 21, piece);
			memcpy(p + OP_HDR, w->key, w->klen);
			if (piece)
				memcpy(p + OP_HDR + w->klen, w->val + off, piece);
			lb.len += OP_HDR + w->klen + piece;
			off += piece;
		} while (off < w->vlen);
	}
	if (!r)
		r = flush_ops(&lb, true, t->wn, flags);
	pbox_free(lb.b);
	return r;
}

int pbox__txn_log_end(pbox_store *st, uint64_t ts)
{
	unsigned char e[8];
	put64(e, ts);
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	if ((r = pbox_mtr_log_logical(m, REDO_TXN_END, e, sizeof(e)))) {
		pbox_mtr_abort(m, false);
		return r;
	}
	return pbox_mtr_commit(m, false, NULL);
}

/* ---- recovery ------------------------------------------------------------------------------ */

typedef struct rec_op {
	bool del;
	pbox_pid tree;
	uint32_t klen, vlen, filled;
	unsigned char *key, *val;
} rec_op;

struct rec_txn {
	uint64_t ts;
	bool committed;
	rec_op *ops;
	size_t n, cap;
	rec_txn *next;
};

static void rec_txn_free(rec_txn *x)
{
	for (size_t i = 0; i < x->n; i++) {
		pbox_free(x->ops[i].key);
		pbox_free(x->ops[i].val);
	}
	pbox_free(x->ops);
	pbox_free(x);
}

void pbox__txn_rec_free(txnmgr *m)
{
	for (rec_txn *x = m->rec, *n; x; x = n) {
		n = x->next;
		rec_txn_free(x);
	}
	m->rec = NULL;
}

static rec_txn **rec_find(txnmgr *m, uint64_t ts)
{
	rec_txn **pp = &m->rec;
	while (*pp && (*pp)->ts != ts)
		pp = &(*pp)->next;
	return pp;
}

static int rec_ops(txnmgr *m, const unsigned char *p, uint32_t len)
{
	if (len < 8)
		return PBOX_ECORRUPT;
	uint64_t ts = get64(p);
	rec_txn **pp = rec_find(m, ts);
	if (!*pp) {
		if (!(*pp = pbox_calloc(1, sizeof(rec_txn))))
			return -ENOMEM;
		(*pp)->ts = ts;
	}
	rec_txn *x = *pp;
	if (x->committed)
		return PBOX_ECORRUPT; /* operations after the commit record */
	for (uint32_t off = 8; off < len;) {
		if (len - off < OP_HDR)
			return PBOX_ECORRUPT;
		const unsigned char *o = p + off;
		uint32_t klen = get32(o + 9), vtotal = get32(o + 13), voff = get32(o + 17),
			 piece = get32(o + 21);
		if (o[0] > 1 || klen > PBOX_BT_KEY_MAX_ANY || vtotal > PBOX_BT_VALUE_MAX_BYTES ||
		    voff > vtotal || piece > vtotal - voff || (o[0] && vtotal) ||
		    (uint64_t)klen + piece > len - off - OP_HDR)
			return PBOX_ECORRUPT;
		const unsigned char *key = o + OP_HDR;
		rec_op *op;
		if (voff) { /* the continuation of the last operation's value */
			op = x->n ? &x->ops[x->n - 1] : NULL;
			if (!op || op->filled != voff || op->vlen != vtotal || op->klen != klen ||
			    memcmp(op->key, key, klen))
				return PBOX_ECORRUPT;
		} else {
			if (x->n && x->ops[x->n - 1].filled != x->ops[x->n - 1].vlen)
				return PBOX_ECORRUPT; /* the previous value was left incomplete */
			if (x->n == x->cap) {
				size_t nc = x->cap ? 2 * x->cap : 64;
				rec_op *v = pbox_realloc(x->ops, nc * sizeof(*v));
				if (!v)
					return -ENOMEM;
				x->ops = v;
				x->cap = nc;
			}
			op = &x->ops[x->n];
			memset(op, 0, sizeof(*op));
			op->key = pbox_malloc(klen ? klen : 1);
			op->val = vtotal ? pbox_malloc(vtotal) : NULL;
			if (!op->key || (vtotal && !op->val)) {
				pbox_free(op->key);
				pbox_free(op->val);
				return -ENOMEM;
			}
			x->n++;
			op->del = o[0];
			op->tree = get64(o + 1);
			op->klen = klen;
			op->vlen = vtotal;
			memcpy(op->key, key, klen);
		}
		if (piece)
			memcpy(op->val + voff, key + klen, piece);
		op->filled += piece;
		off += OP_HDR + klen + piece;
	}
	return 0;
}

int pbox__txn_rec_logical(pbox_store *st, const void *payload, uint32_t len, pbox_lsn lsn,
			  void *arg)
{
	(void)lsn;
	uintptr_t type = (uintptr_t)arg;
	txnmgr *m = pbox__txn_mgr(st);
	if (!m)
		return -ENOMEM;
	const unsigned char *p = payload;
	if (len >= 8 && get64(p) > m->rec_maxts)
		m->rec_maxts = get64(p);
	if (type == REDO_TXN_OPS)
		return rec_ops(m, p, len);
	if (len != (type == REDO_TXN_COMMIT ? 16u : 8u))
		return PBOX_ECORRUPT;
	rec_txn **pp = rec_find(m, get64(p));
	if (type == REDO_TXN_END) {
		if (*pp) { /* installed: forget it */
			rec_txn *x = *pp;
			*pp = x->next;
			rec_txn_free(x);
		}
		return 0;
	}
	rec_txn *x = *pp;
	if (!x || x->committed || x->n != get64(p + 8) ||
	    (x->n && x->ops[x->n - 1].filled != x->ops[x->n - 1].vlen))
		return PBOX_ECORRUPT; /* a commit of operations the log does not hold whole */
	x->committed = true;
	return 0;
}

/* The post-recovery hook: install what was committed and not installed, then log its end. */
int pbox__txn_rec_done(pbox_store *st, void *arg)
{
	(void)arg;
	txnmgr *m = pbox__txn_mgr_peek(st);
	if (!m)
		return 0;
	int r = 0;
	uint64_t n = 0;
	for (rec_txn *x = m->rec; x && !r; x = x->next) {
		if (!x->committed)
			continue;
		for (size_t i = 0; i < x->n && !r; i++) {
			rec_op *op = &x->ops[i];
			pbox_bt bt = { .st = st, .root = op->tree, .ps = m->ps };
			r = op->del ? pbox__bt_change(&bt, OP_REMOVE, op->key, op->klen, NULL, 0, 0)
				    : pbox__bt_change(&bt, OP_UPSERT, op->key, op->klen, op->val,
						      op->vlen, 0);
			if (r == PBOX_ECLOSED || (r == PBOX_ENOTFOUND && op->del))
				r = 0; /* dropped tree; a delete already done */
		}
		if (!r)
			r = pbox__txn_log_end(st, x->ts);
		n++;
	}
	if (!r && n)
		r = pbox_wal_flush(pbox_store_wal(st));
	m->recovered = n;
	/* timestamps go on above every one in the log: the next recovery reads this open's
	 * records after the previous opens' (from the same logical start), and must not
	 * mistake one transaction for another */
	m->clock = m->rec_maxts;
	atomic_store(&m->visible, m->rec_maxts);
	pbox__txn_rec_free(m);
	return r;
}
