/*
 * txns.c — the five TPC-C transactions (clauses 2.4 to 2.8 of revision 5.11), each one
 * pagebox transaction.
 *
 * A transaction's input is generated once (clause 2.x.1), then its body runs in a pagebox
 * transaction; PBOX_ECONFLICT (another transaction committed a key this one writes: first
 * committer wins) and PBOX_ESNAPSHOT (the snapshot was retired) re-run the body with the
 * same input in a new transaction. The latency measured covers all attempts. Order-status
 * and stock-level run in read-only transactions (PBOX_TXN_READONLY); the other three write
 * and commit with the run's durability. The new-order's intended 1 % rollback (an unused
 * item number on the last line) is an abort of the pagebox transaction: nothing of it is
 * applied, and it counts as a completed new-order, as the specification counts it.
 *
 * Invariants: a body only reads through the transaction (its snapshot plus its own writes)
 * and returns 0, TPCC_ROLLBACK, TPCC_EMISSING (a row the schema guarantees is absent) or a
 * pbox code; it never commits or aborts itself.
 *
 * Threads: one worker per thread; the store and trees are shared.
 */
#include "tpcc.h"

#include <pbox/status.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const tpcc_tx_names[TX_NTYPES] = {"new-order", "payment", "order-status",
					      "delivery", "stock-level"};

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct rowbuf {
	unsigned char k[TPCC_KEY_MAX];
	size_t kn;
	unsigned char v[TPCC_ROW_MAX];
	size_t vn;
} rowbuf;

/* Read the row at r->k into r->v. */
static int tget(pbox_txn *t, pbox_bt *bt, rowbuf *r)
{
	int rc = pbox_txn_get(t, bt, r->k, r->kn, r->v, sizeof(r->v), &r->vn);
	if (rc == PBOX_ENOTFOUND)
		return TPCC_EMISSING;
	if (rc == PBOX_ETOOSMALL)
		return PBOX_ECORRUPT;
	return rc;
}

static int tput(pbox_txn *t, pbox_bt *bt, const rowbuf *r)
{
	return pbox_txn_put(t, bt, r->k, r->kn, r->v, r->vn);
}

static const unsigned char empty_val[1] = {0};

/* The first key (in scan direction) of a range, with its value. */
typedef struct first_ctx {
	rowbuf r;
	bool found;
} first_ctx;

static int first_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	first_ctx *f = arg;
	if (klen > sizeof(f->r.k) || vlen > sizeof(f->r.v))
		return PBOX_ECORRUPT;
	memcpy(f->r.k, key, klen);
	f->r.kn = klen;
	memcpy(f->r.v, val, vlen);
	f->r.vn = vlen;
	f->found = true;
	return 1; /* stop */
}

static int scan_first(pbox_txn *t, pbox_bt *bt, const unsigned char *lo, size_t lon,
		      const unsigned char *hi, size_t hin, unsigned flags, first_ctx *f)
{
	f->found = false;
	int rc = pbox_txn_scan(t, bt, lo, lon, hi, hin, flags, first_cb, f);
	return rc == 1 ? 0 : rc;
}

/* Customer ids of one last name, in c_first order (the index's key order). */
typedef struct ids_ctx {
	uint32_t *ids;
	size_t n, cap;
} ids_ctx;

static int ids_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	(void)vlen;
	ids_ctx *c = arg;
	if (klen < 4)
		return PBOX_ECORRUPT;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		uint32_t *p = realloc(c->ids, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->ids = p;
		c->cap = cap;
	}
	c->ids[c->n++] = be32((const unsigned char *)key + klen - 4);
	return 0;
}

/* Clause 2.5.2.2 / 2.6.2.2: the customer at position ceil(n / 2) of those with last name
 * last, sorted by c_first. */
static int customer_by_name(tpcc_worker *w, pbox_txn *t, uint32_t cw, uint32_t cd,
			    const char *last, uint32_t *c_id)
{
	unsigned char lo[TPCC_KEY_MAX], hi[TPCC_KEY_MAX];
	size_t lon = k_cust_name_prefix(lo, cw, cd, last);
	memcpy(hi, lo, lon);
	size_t hin = lon;
	hi[hin++] = 0xff; /* every full key continues with c_first bytes below 0xff */
	ids_ctx ids = {0};
	int rc = pbox_txn_scan(t, w->db->t[T_CUST_NAME], lo, lon, hi, hin, 0, ids_cb, &ids);
	if (!rc && ids.n == 0)
		rc = TPCC_EMISSING;
	if (!rc)
		*c_id = ids.ids[(ids.n + 1) / 2 - 1];
	free(ids.ids);
	w->s.by_name++;
	return rc;
}

/* ---- new-order (2.4) ------------------------------------------------------------------ */

typedef struct no_in {
	uint32_t w, d, c, ol_cnt, date;
	uint32_t i[TPCC_MAX_OL], sw[TPCC_MAX_OL], q[TPCC_MAX_OL];
} no_in;

static void gen_new_order(tpcc_worker *w, no_in *in)
{
	const tpcc_consts *k = w->k;
	const tpcc_scale *sc = &w->db->sc;
	memset(in, 0, sizeof(*in));
	in->w = w->home_w;
	in->d = rnd(&w->rng, 1, TPCC_DISTRICTS);
	in->c = nurand(&w->rng, k->a_cust, k->c_cust, 1, sc->customers);
	in->ol_cnt = rnd(&w->rng, 5, 15);
	bool rollback = rnd(&w->rng, 1, 100) == 1;
	for (uint32_t l = 0; l < in->ol_cnt; l++) {
		in->i[l] = nurand(&w->rng, k->a_item, k->c_item, 1, sc->items);
		in->sw[l] = in->w;
		if (sc->warehouses > 1 && rnd(&w->rng, 1, 100) == 1) {
			uint32_t o = rnd(&w->rng, 1, sc->warehouses - 1);
			in->sw[l] = o >= in->w ? o + 1 : o;
		}
		in->q[l] = rnd(&w->rng, 1, 10);
	}
	if (rollback)
		in->i[in->ol_cnt - 1] = sc->items + 1; /* unused: "Item number is not valid" */
	in->date = tpcc_now();
}

static int do_new_order(tpcc_worker *w, pbox_txn *t, const no_in *in)
{
	pbox_bt **T = w->db->t;
	rowbuf r;
	row_warehouse wh;
	row_district di;
	row_customer cu;
	r.kn = k_warehouse(r.k, in->w);
	int rc = tget(t, T[T_WAREHOUSE], &r);
	if (!rc)
		rc = dec_warehouse(r.v, r.vn, &wh);
	if (rc)
		return rc;
	r.kn = k_district(r.k, in->w, in->d);
	if ((rc = tget(t, T[T_DISTRICT], &r)) || (rc = dec_district(r.v, r.vn, &di)))
		return rc;
	uint32_t o_id = di.next_o_id;
	di.next_o_id++;
	r.vn = enc_district(r.v, &di);
	if ((rc = tput(t, T[T_DISTRICT], &r)))
		return rc;
	r.kn = k_customer(r.k, in->w, in->d, in->c);
	if ((rc = tget(t, T[T_CUSTOMER], &r)) || (rc = dec_customer(r.v, r.vn, &cu)))
		return rc;

	row_order o = {.c_id = in->c, .entry_d = in->date, .carrier_id = 0,
		       .ol_cnt = in->ol_cnt, .all_local = 1};
	for (uint32_t l = 0; l < in->ol_cnt; l++)
		if (in->sw[l] != in->w)
			o.all_local = 0;
	r.kn = k_order(r.k, in->w, in->d, o_id);
	r.vn = enc_order(r.v, &o);
	if ((rc = tput(t, T[T_ORDER], &r)))
		return rc;
	if ((rc = pbox_txn_put(t, T[T_NEW_ORDER], r.k, r.kn, empty_val, 0)))
		return rc;
	r.kn = k_order_cust(r.k, in->w, in->d, in->c, o_id);
	if ((rc = pbox_txn_put(t, T[T_ORDER_CUST], r.k, r.kn, empty_val, 0)))
		return rc;

	int64_t sum = 0;
	unsigned brand_generic = 0;
	for (uint32_t l = 0; l < in->ol_cnt; l++) {
		row_item it;
		row_stock s;
		r.kn = k_item(r.k, in->i[l]);
		rc = pbox_txn_get(t, T[T_ITEM], r.k, r.kn, r.v, sizeof(r.v), &r.vn);
		if (rc == PBOX_ENOTFOUND)
			return TPCC_ROLLBACK;
		if (rc || (rc = dec_item(r.v, r.vn, &it)))
			return rc == PBOX_ETOOSMALL ? PBOX_ECORRUPT : rc;
		r.kn = k_stock(r.k, in->sw[l], in->i[l]);
		if ((rc = tget(t, T[T_STOCK], &r)) || (rc = dec_stock(r.v, r.vn, &s)))
			return rc;
		if (s.quantity >= in->q[l] + 10)
			s.quantity -= in->q[l];
		else
			s.quantity = s.quantity + 91 - in->q[l];
		s.ytd += in->q[l];
		s.order_cnt++;
		if (in->sw[l] != in->w) {
			s.remote_cnt++;
			w->s.remote_lines++;
		}
		/* brand-generic: both data fields contain "ORIGINAL" (an output only) */
		if (strstr(it.data, "ORIGINAL") && strstr(s.data, "ORIGINAL"))
			brand_generic++;
		r.vn = enc_stock(r.v, &s);
		if ((rc = tput(t, T[T_STOCK], &r)))
			return rc;
		row_order_line ol;
		memset(&ol, 0, sizeof(ol));
		ol.i_id = in->i[l];
		ol.supply_w_id = in->sw[l];
		ol.delivery_d = 0;
		ol.quantity = in->q[l];
		ol.amount = (int64_t)in->q[l] * it.price;
		memcpy(ol.dist_info, s.dist[in->d - 1], sizeof(ol.dist_info));
		sum += ol.amount;
		r.kn = k_order_line(r.k, in->w, in->d, o_id, l + 1);
		r.vn = enc_order_line(r.v, &ol);
		if ((rc = tput(t, T[T_ORDER_LINE], &r)))
			return rc;
	}
	/* total = sum * (1 - c_discount) * (1 + w_tax + d_tax): the terminal's output */
	w->last_output = sum * (10000 - cu.discount) / 10000 * (10000 + wh.tax + di.tax) / 10000 +
			 brand_generic;
	return 0;
}

/* ---- payment (2.5) ------------------------------------------------------------------- */

typedef struct pay_in {
	uint32_t w, d, cw, cd, c_id, date;
	bool by_name;
	char last[17];
	int64_t amount;
} pay_in;

static void gen_payment(tpcc_worker *w, pay_in *in)
{
	const tpcc_consts *k = w->k;
	const tpcc_scale *sc = &w->db->sc;
	memset(in, 0, sizeof(*in));
	in->w = w->home_w;
	in->d = rnd(&w->rng, 1, TPCC_DISTRICTS);
	in->cw = in->w;
	in->cd = in->d;
	if (sc->warehouses > 1 && rnd(&w->rng, 1, 100) > 85) {
		uint32_t o = rnd(&w->rng, 1, sc->warehouses - 1);
		in->cw = o >= in->w ? o + 1 : o;
		in->cd = rnd(&w->rng, 1, TPCC_DISTRICTS);
		w->s.remote_payments++;
	}
	in->by_name = rnd(&w->rng, 1, 100) <= 60;
	if (in->by_name)
		tpcc_lastname(nurand(&w->rng, k->a_last, k->c_last, 0, k->nlast - 1), in->last);
	else
		in->c_id = nurand(&w->rng, k->a_cust, k->c_cust, 1, sc->customers);
	in->amount = rnd(&w->rng, 100, 500000);
	in->date = tpcc_now();
}

static int do_payment(tpcc_worker *w, pbox_txn *t, const pay_in *in)
{
	pbox_bt **T = w->db->t;
	rowbuf r;
	row_warehouse wh;
	row_district di;
	row_customer cu;
	int rc;
	r.kn = k_warehouse(r.k, in->w);
	if ((rc = tget(t, T[T_WAREHOUSE], &r)) || (rc = dec_warehouse(r.v, r.vn, &wh)))
		return rc;
	wh.ytd += in->amount;
	r.vn = enc_warehouse(r.v, &wh);
	if ((rc = tput(t, T[T_WAREHOUSE], &r)))
		return rc;
	r.kn = k_district(r.k, in->w, in->d);
	if ((rc = tget(t, T[T_DISTRICT], &r)) || (rc = dec_district(r.v, r.vn, &di)))
		return rc;
	di.ytd += in->amount;
	r.vn = enc_district(r.v, &di);
	if ((rc = tput(t, T[T_DISTRICT], &r)))
		return rc;
	uint32_t c_id = in->c_id;
	if (in->by_name && (rc = customer_by_name(w, t, in->cw, in->cd, in->last, &c_id)))
		return rc;
	r.kn = k_customer(r.k, in->cw, in->cd, c_id);
	if ((rc = tget(t, T[T_CUSTOMER], &r)) || (rc = dec_customer(r.v, r.vn, &cu)))
		return rc;
	cu.balance -= in->amount;
	cu.ytd_payment += in->amount;
	cu.payment_cnt++;
	if (!strcmp(cu.credit, "BC")) { /* 2.5.2.2: prepend the payment to c_data, keep 500 */
		char nd[1100];
		snprintf(nd, sizeof(nd), "%u %u %u %u %u %lld.%02lld|%s", c_id, in->cd, in->cw,
			 in->d, in->w, (long long)(in->amount / 100),
			 (long long)(in->amount % 100), cu.data);
		memcpy(cu.data, nd, 500);
		cu.data[500] = 0;
	}
	r.vn = enc_customer(r.v, &cu);
	if ((rc = tput(t, T[T_CUSTOMER], &r)))
		return rc;
	row_history h;
	memset(&h, 0, sizeof(h));
	h.c_id = c_id;
	h.c_d_id = in->cd;
	h.c_w_id = in->cw;
	h.date = in->date;
	h.amount = in->amount;
	snprintf(h.data, sizeof(h.data), "%.10s    %.10s", wh.name, di.name);
	r.kn = k_history(r.k, in->w, in->d, w->hist_stamp, w->id, w->hist_seq);
	r.vn = enc_history(r.v, &h);
	if ((rc = tput(t, T[T_HISTORY], &r)))
		return rc;
	w->last_output = cu.balance;
	return 0;
}

/* ---- order-status (2.6) ------------------------------------------------------------- */

typedef struct os_in {
	uint32_t w, d, c_id;
	bool by_name;
	char last[17];
} os_in;

static void gen_order_status(tpcc_worker *w, os_in *in)
{
	const tpcc_consts *k = w->k;
	memset(in, 0, sizeof(*in));
	in->w = w->home_w;
	in->d = rnd(&w->rng, 1, TPCC_DISTRICTS);
	in->by_name = rnd(&w->rng, 1, 100) <= 60;
	if (in->by_name)
		tpcc_lastname(nurand(&w->rng, k->a_last, k->c_last, 0, k->nlast - 1), in->last);
	else
		in->c_id = nurand(&w->rng, k->a_cust, k->c_cust, 1, w->db->sc.customers);
}

typedef struct lines_ctx {
	uint32_t n;
	uint32_t number[TPCC_MAX_OL];
	row_order_line ol[TPCC_MAX_OL];
} lines_ctx;

static int lines_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	lines_ctx *c = arg;
	if (c->n >= TPCC_MAX_OL || klen < 1)
		return PBOX_ECORRUPT;
	c->number[c->n] = ((const unsigned char *)key)[klen - 1];
	int rc = dec_order_line(val, vlen, &c->ol[c->n]);
	c->n++;
	return rc;
}

static int order_lines(pbox_txn *t, pbox_bt *bt, uint32_t w, uint32_t d, uint32_t o,
		       lines_ctx *c)
{
	unsigned char lo[TPCC_KEY_MAX], hi[TPCC_KEY_MAX];
	size_t lon = k_order_line(lo, w, d, o, 0), hin = k_order_line(hi, w, d, o + 1, 0);
	c->n = 0;
	return pbox_txn_scan(t, bt, lo, lon, hi, hin, 0, lines_cb, c);
}

static int do_order_status(tpcc_worker *w, pbox_txn *t, const os_in *in)
{
	pbox_bt **T = w->db->t;
	rowbuf r;
	row_customer cu;
	int rc;
	uint32_t c_id = in->c_id;
	if (in->by_name && (rc = customer_by_name(w, t, in->w, in->d, in->last, &c_id)))
		return rc;
	r.kn = k_customer(r.k, in->w, in->d, c_id);
	if ((rc = tget(t, T[T_CUSTOMER], &r)) || (rc = dec_customer(r.v, r.vn, &cu)))
		return rc;
	/* the customer's most recent order: the last key of its range in order_customer */
	unsigned char lo[TPCC_KEY_MAX], hi[TPCC_KEY_MAX];
	size_t lon = k_order_cust(lo, in->w, in->d, c_id, 0);
	size_t hin = k_order_cust(hi, in->w, in->d, c_id + 1, 0);
	first_ctx f;
	if ((rc = scan_first(t, T[T_ORDER_CUST], lo, lon, hi, hin, PBOX_BT_SCAN_REVERSE, &f)))
		return rc;
	if (!f.found) /* every loaded customer has an order */
		return TPCC_EMISSING;
	uint32_t o_id = be32(f.r.k + f.r.kn - 4);
	row_order o;
	r.kn = k_order(r.k, in->w, in->d, o_id);
	if ((rc = tget(t, T[T_ORDER], &r)) || (rc = dec_order(r.v, r.vn, &o)))
		return rc;
	lines_ctx lc;
	if ((rc = order_lines(t, T[T_ORDER_LINE], in->w, in->d, o_id, &lc)))
		return rc;
	int64_t sum = 0;
	for (uint32_t i = 0; i < lc.n; i++)
		sum += lc.ol[i].amount;
	w->last_output = cu.balance + sum + o.carrier_id;
	return 0;
}

/* ---- delivery (2.7) --------------------------------------------------------------------
 * All ten districts in one transaction (the specification allows one business transaction
 * per district or one for all; one keeps "each is one pagebox transaction"). A district
 * without an undelivered order is skipped and counted. */

typedef struct del_in {
	uint32_t w, carrier, date;
} del_in;

static int do_delivery(tpcc_worker *w, pbox_txn *t, const del_in *in, uint64_t *skipped)
{
	pbox_bt **T = w->db->t;
	rowbuf r;
	int rc;
	*skipped = 0;
	for (uint32_t d = 1; d <= TPCC_DISTRICTS; d++) {
		unsigned char lo[TPCC_KEY_MAX], hi[TPCC_KEY_MAX];
		size_t lon = k_order(lo, in->w, d, 0), hin = k_order(hi, in->w, d + 1, 0);
		first_ctx f;
		if ((rc = scan_first(t, T[T_NEW_ORDER], lo, lon, hi, hin, 0, &f)))
			return rc;
		if (!f.found) {
			(*skipped)++;
			continue;
		}
		uint32_t o_id = be32(f.r.k + f.r.kn - 4);
		if ((rc = pbox_txn_del(t, T[T_NEW_ORDER], f.r.k, f.r.kn)))
			return rc;
		row_order o;
		r.kn = k_order(r.k, in->w, d, o_id);
		if ((rc = tget(t, T[T_ORDER], &r)) || (rc = dec_order(r.v, r.vn, &o)))
			return rc;
		o.carrier_id = in->carrier;
		r.vn = enc_order(r.v, &o);
		if ((rc = tput(t, T[T_ORDER], &r)))
			return rc;
		lines_ctx lc;
		if ((rc = order_lines(t, T[T_ORDER_LINE], in->w, d, o_id, &lc)))
			return rc;
		int64_t sum = 0;
		for (uint32_t i = 0; i < lc.n; i++) {
			lc.ol[i].delivery_d = in->date;
			sum += lc.ol[i].amount;
			r.kn = k_order_line(r.k, in->w, d, o_id, lc.number[i]);
			r.vn = enc_order_line(r.v, &lc.ol[i]);
			if ((rc = tput(t, T[T_ORDER_LINE], &r)))
				return rc;
		}
		row_customer cu;
		r.kn = k_customer(r.k, in->w, d, o.c_id);
		if ((rc = tget(t, T[T_CUSTOMER], &r)) || (rc = dec_customer(r.v, r.vn, &cu)))
			return rc;
		cu.balance += sum;
		cu.delivery_cnt++;
		r.vn = enc_customer(r.v, &cu);
		if ((rc = tput(t, T[T_CUSTOMER], &r)))
			return rc;
	}
	return 0;
}

/* ---- stock-level (2.8) ------------------------------------------------------------------ */

typedef struct sl_in {
	uint32_t w, d, threshold;
} sl_in;

typedef struct items_ctx {
	uint32_t n;
	uint32_t i[20 * TPCC_MAX_OL];
} items_ctx;

static int items_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	items_ctx *c = arg;
	row_order_line ol;
	int rc = dec_order_line(val, vlen, &ol);
	if (rc)
		return rc;
	if (c->n >= sizeof(c->i) / sizeof(c->i[0]))
		return PBOX_ECORRUPT; /* more than 20 orders of at most 15 lines */
	c->i[c->n++] = ol.i_id;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int do_stock_level(tpcc_worker *w, pbox_txn *t, const sl_in *in)
{
	pbox_bt **T = w->db->t;
	rowbuf r;
	row_district di;
	int rc;
	r.kn = k_district(r.k, in->w, in->d);
	if ((rc = tget(t, T[T_DISTRICT], &r)) || (rc = dec_district(r.v, r.vn, &di)))
		return rc;
	uint32_t hi_o = di.next_o_id, lo_o = hi_o > 20 ? hi_o - 20 : 1;
	unsigned char lo[TPCC_KEY_MAX], hi[TPCC_KEY_MAX];
	size_t lon = k_order_line(lo, in->w, in->d, lo_o, 0);
	size_t hin = k_order_line(hi, in->w, in->d, hi_o, 0);
	items_ctx ic;
	ic.n = 0;
	if ((rc = pbox_txn_scan(t, T[T_ORDER_LINE], lo, lon, hi, hin, 0, items_cb, &ic)))
		return rc;
	qsort(ic.i, ic.n, sizeof(ic.i[0]), cmp_u32);
	uint32_t low = 0;
	for (uint32_t j = 0; j < ic.n; j++) {
		if (j && ic.i[j] == ic.i[j - 1])
			continue; /* COUNT(DISTINCT s_i_id) */
		row_stock s;
		r.kn = k_stock(r.k, in->w, ic.i[j]);
		if ((rc = tget(t, T[T_STOCK], &r)) || (rc = dec_stock(r.v, r.vn, &s)))
			return rc;
		if (s.quantity < in->threshold)
			low++;
	}
	w->last_output = low;
	return 0;
}

/* ---- driving one transaction ------------------------------------------------------------ */

unsigned tpcc_hbucket(uint64_t v)
{
	if (v < 8)
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v);
	return (m - 2) * 8 + (unsigned)((v >> (m - 3)) & 7);
}

uint64_t tpcc_hvalue(unsigned b)
{
	if (b < 8)
		return b;
	unsigned m = b / 8 + 2, sub = b % 8;
	uint64_t lo = (uint64_t)(8 + sub) << (m - 3);
	return lo + ((1ull << (m - 3)) >> 1); /* the middle of the bucket */
}

int tpcc_tx_run(tpcc_worker *w, int type)
{
	union {
		no_in no;
		pay_in pay;
		os_in os;
		del_in del;
		sl_in sl;
	} in;
	memset(&in, 0, sizeof(in));
	switch (type) {
	case TX_NEW_ORDER: gen_new_order(w, &in.no); break;
	case TX_PAYMENT: gen_payment(w, &in.pay); break;
	case TX_ORDER_STATUS: gen_order_status(w, &in.os); break;
	case TX_DELIVERY:
		in.del.w = w->home_w;
		in.del.carrier = rnd(&w->rng, 1, 10);
		in.del.date = tpcc_now();
		break;
	case TX_STOCK_LEVEL:
		in.sl.w = w->home_w;
		in.sl.d = w->home_d;
		in.sl.threshold = rnd(&w->rng, 10, 20);
		break;
	default: return PBOX_EINVAL;
	}
	bool ro = type == TX_ORDER_STATUS || type == TX_STOCK_LEVEL;
	uint64_t t0 = tpcc_nanos(), skipped = 0;
	unsigned attempt = 0;
	int rc;
	for (;; attempt++) {
		pbox_txn *t;
		if ((rc = pbox_txn_begin(w->db->st, ro ? PBOX_TXN_READONLY : 0, &t)))
			return rc;
		switch (type) {
		case TX_NEW_ORDER: rc = do_new_order(w, t, &in.no); break;
		case TX_PAYMENT: rc = do_payment(w, t, &in.pay); break;
		case TX_ORDER_STATUS: rc = do_order_status(w, t, &in.os); break;
		case TX_DELIVERY: rc = do_delivery(w, t, &in.del, &skipped); break;
		default: rc = do_stock_level(w, t, &in.sl); break;
		}
		if (!rc) {
			rc = pbox_txn_commit(t, ro ? 0 : w->commit_flags);
			t = NULL;
		}
		if (t)
			pbox_txn_abort(t);
		if (rc == PBOX_ECONFLICT || rc == PBOX_ESNAPSHOT) {
			if (rc == PBOX_ECONFLICT)
				w->s.conflicts[type]++;
			w->s.retries[type]++;
			/* let the winner finish its commit: yield first, then back off
			 * exponentially (1 us .. 256 us) so that terminals contending for one
			 * warehouse row do not spin on each other */
			if (attempt < 2) {
				sched_yield();
			} else {
				unsigned sh = attempt - 2 < 8 ? attempt - 2 : 8;
				struct timespec ts = {0, 1000L << sh};
				nanosleep(&ts, NULL);
			}
			continue;
		}
		break;
	}
	if (rc == TPCC_ROLLBACK) {
		w->s.rollbacks++;
		rc = 0;
	}
	if (rc == TPCC_EMISSING) {
		fprintf(stderr, "tpcc: %s: a row the schema guarantees is missing\n",
			tpcc_tx_names[type]);
		return PBOX_ECORRUPT;
	}
	if (rc)
		return rc;
	if (type == TX_PAYMENT)
		w->hist_seq++; /* only a committed payment consumes its history key */
	w->s.delivery_skipped += skipped;
	w->s.done[type]++;
	w->s.hist[type][tpcc_hbucket(tpcc_nanos() - t0)]++;
	return 0;
}
