/*
 * check.c — the consistency conditions of TPC-C clause 3.3.2, checked in one read-only
 * pagebox transaction (one snapshot of the whole database), plus a structural verify of
 * every tree.
 *
 * Checked, per warehouse and district:
 *   1  W_YTD = sum(D_YTD)
 *   2  D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID)
 *   3  max(NO_O_ID) - min(NO_O_ID) + 1 = number of new-order rows
 *   4  sum(O_OL_CNT) = number of order-line rows
 *   5  O_CARRIER_ID is null iff the order has a new-order row
 *   6  O_OL_CNT = the number of the order's lines (and no line without its order)
 *   7  OL_DELIVERY_D is null iff the order's O_CARRIER_ID is null
 *   8  W_YTD = sum(H_AMOUNT) of the warehouse's history
 *   9  D_YTD = sum(H_AMOUNT) of the district's history
 *  12  C_BALANCE + C_YTD_PAYMENT = sum(OL_AMOUNT) of the customer's delivered lines
 * (10 and 11 are not checked: 10 needs history per customer across warehouses, 11 only
 * holds right after the load.) Each violation prints the condition, the warehouse and the
 * district; the first 10 of each condition are printed, all are counted.
 *
 * Threads: single-threaded; run it on a store no one else changes for a meaningful result
 * (a snapshot makes it correct under concurrent runs too, but `check` opens the store
 * itself, which excludes other processes).
 */
#include "tpcc.h"

#include <pbox/status.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCOND 13

typedef struct ord {
	uint32_t o_id, c_id, ol_cnt, carrier, lines;
	bool has_no;
} ord;

typedef struct chk {
	tpcc_db *db;
	pbox_txn *t;
	bool verbose;
	uint64_t per_cond[NCOND];
	tpcc_check_result *res;
	/* the district being checked */
	uint32_t w, d;
	ord *o;
	size_t no, ocap;
	size_t last_hit;
	int64_t *cust_sum;
	uint64_t sum_ol_cnt, ol_rows, no_rows;
	uint32_t no_min, no_max;
	int64_t hist_sum;
} chk;

static void violation(chk *c, int cond, const char *fmt, ...)
{
	c->res->violations++;
	if (c->per_cond[cond]++ >= 10)
		return;
	printf("VIOLATION condition %d, warehouse %u district %u: ", cond, c->w, c->d);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static ord *find_order(chk *c, uint32_t o_id)
{
	if (c->last_hit < c->no && c->o[c->last_hit].o_id == o_id)
		return &c->o[c->last_hit];
	size_t lo = 0, hi = c->no;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->o[mid].o_id < o_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->no && c->o[lo].o_id == o_id) {
		c->last_hit = lo;
		return &c->o[lo];
	}
	return NULL;
}

static int orders_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	chk *c = arg;
	row_order r;
	if (klen != 7 || dec_order(val, vlen, &r))
		return PBOX_ECORRUPT;
	if (c->no == c->ocap) {
		size_t cap = c->ocap ? c->ocap * 2 : 4096;
		ord *p = realloc(c->o, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->o = p;
		c->ocap = cap;
	}
	c->o[c->no++] = (ord){.o_id = be32((const unsigned char *)key + 3),
			      .c_id = r.c_id,
			      .ol_cnt = r.ol_cnt,
			      .carrier = r.carrier_id};
	c->sum_ol_cnt += r.ol_cnt;
	return 0;
}

static int new_orders_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	(void)vlen;
	chk *c = arg;
	if (klen != 7)
		return PBOX_ECORRUPT;
	uint32_t o_id = be32((const unsigned char *)key + 3);
	if (!c->no_rows || o_id < c->no_min)
		c->no_min = o_id;
	if (!c->no_rows || o_id > c->no_max)
		c->no_max = o_id;
	c->no_rows++;
	ord *o = find_order(c, o_id);
	if (!o)
		violation(c, 5, "new-order %u has no order row", o_id);
	else
		o->has_no = true;
	return 0;
}

static int lines_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	chk *c = arg;
	row_order_line r;
	if (klen != 8 || dec_order_line(val, vlen, &r))
		return PBOX_ECORRUPT;
	c->ol_rows++;
	uint32_t o_id = be32((const unsigned char *)key + 3);
	ord *o = find_order(c, o_id);
	if (!o) {
		violation(c, 6, "order line %u of order %u without its order",
			  ((const unsigned char *)key)[7], o_id);
		return 0;
	}
	o->lines++;
	if ((r.delivery_d != 0) != (o->carrier != 0))
		violation(c, 7, "order %u line %u: OL_DELIVERY_D %s but O_CARRIER_ID %s", o_id,
			  ((const unsigned char *)key)[7], r.delivery_d ? "set" : "null",
			  o->carrier ? "set" : "null");
	if (r.delivery_d && o->c_id <= c->db->sc.customers)
		c->cust_sum[o->c_id] += r.amount;
	return 0;
}

static int history_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	chk *c = arg;
	row_history h;
	if (dec_history(val, vlen, &h))
		return PBOX_ECORRUPT;
	c->hist_sum += h.amount;
	c->res->history++;
	return 0;
}

static int customers_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	chk *c = arg;
	row_customer r;
	if (klen != 7 || dec_customer(val, vlen, &r))
		return PBOX_ECORRUPT;
	uint32_t c_id = be32((const unsigned char *)key + 3);
	int64_t want = c_id <= c->db->sc.customers ? c->cust_sum[c_id] : 0;
	if (r.balance + r.ytd_payment != want)
		violation(c, 12,
			  "customer %u: C_BALANCE + C_YTD_PAYMENT = %" PRId64
			  " cents, delivered OL_AMOUNT sum = %" PRId64 " cents",
			  c_id, r.balance + r.ytd_payment, want);
	return 0;
}

static int scan_range(chk *c, int table, const unsigned char *lo, size_t lon,
		      const unsigned char *hi, size_t hin, pbox_bt_scan_fn fn)
{
	int rc = pbox_txn_scan(c->t, c->db->t[table], lo, lon, hi, hin, 0, fn, c);
	if (rc)
		fprintf(stderr, "tpcc check: scan %s (warehouse %u district %u): %s\n",
			tpcc_table_names[table], c->w, c->d, pbox_strerror(rc));
	return rc;
}

static int check_district(chk *c, int64_t *d_ytd, int64_t *h_sum)
{
	uint32_t w = c->w, d = c->d;
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX], hi[TPCC_KEY_MAX];
	size_t kn = k_district(k, w, d), vn = 0;
	row_district di;
	int rc = pbox_txn_get(c->t, c->db->t[T_DISTRICT], k, kn, v, sizeof(v), &vn);
	if (rc || dec_district(v, vn, &di)) {
		fprintf(stderr, "tpcc check: district %u/%u: %s\n", w, d,
			rc ? pbox_strerror(rc) : "bad row");
		return rc ? rc : PBOX_ECORRUPT;
	}
	*d_ytd = di.ytd;
	c->no = c->last_hit = 0;
	c->sum_ol_cnt = c->ol_rows = c->no_rows = 0;
	c->no_min = c->no_max = 0;
	c->hist_sum = 0;
	memset(c->cust_sum, 0, sizeof(int64_t) * (c->db->sc.customers + 1));

	size_t lon = k_order(k, w, d, 0), hin = k_order(hi, w, d + 1, 0);
	if ((rc = scan_range(c, T_ORDER, k, lon, hi, hin, orders_cb)) ||
	    (rc = scan_range(c, T_NEW_ORDER, k, lon, hi, hin, new_orders_cb)) ||
	    (rc = scan_range(c, T_ORDER_LINE, k, lon, hi, hin, lines_cb)))
		return rc;
	lon = k_district(k, w, d);
	hin = k_district(hi, w, d + 1);
	if ((rc = scan_range(c, T_HISTORY, k, lon, hi, hin, history_cb)) ||
	    (rc = scan_range(c, T_CUSTOMER, k, lon, hi, hin, customers_cb)))
		return rc;
	*h_sum = c->hist_sum;

	uint32_t max_o = c->no ? c->o[c->no - 1].o_id : 0;
	if (di.next_o_id - 1 != max_o || (c->no_rows && c->no_max != max_o))
		violation(c, 2, "D_NEXT_O_ID - 1 = %u, max(O_ID) = %u, max(NO_O_ID) = %u",
			  di.next_o_id - 1, max_o, c->no_max);
	if (c->no_rows && c->no_max - c->no_min + 1 != c->no_rows)
		violation(c, 3, "max(NO_O_ID) - min(NO_O_ID) + 1 = %u, new-order rows = %" PRIu64,
			  c->no_max - c->no_min + 1, c->no_rows);
	if (c->sum_ol_cnt != c->ol_rows)
		violation(c, 4, "sum(O_OL_CNT) = %" PRIu64 ", order-line rows = %" PRIu64,
			  c->sum_ol_cnt, c->ol_rows);
	for (size_t i = 0; i < c->no; i++) {
		const ord *o = &c->o[i];
		if ((o->carrier == 0) != o->has_no)
			violation(c, 5, "order %u: O_CARRIER_ID %s but %s new-order row", o->o_id,
				  o->carrier ? "set" : "null", o->has_no ? "a" : "no");
		if (o->ol_cnt != o->lines)
			violation(c, 6, "order %u: O_OL_CNT = %u, %u order lines", o->o_id,
				  o->ol_cnt, o->lines);
	}
	if (di.ytd != c->hist_sum)
		violation(c, 9, "D_YTD = %" PRId64 " cents, sum(H_AMOUNT) = %" PRId64 " cents",
			  di.ytd, c->hist_sum);
	c->res->orders += c->no;
	c->res->order_lines += c->ol_rows;
	c->res->new_orders += c->no_rows;
	return 0;
}

int tpcc_check(tpcc_db *db, bool verbose, tpcc_check_result *res)
{
	memset(res, 0, sizeof(*res));
	chk c;
	memset(&c, 0, sizeof(c));
	c.db = db;
	c.verbose = verbose;
	c.res = res;
	int rc = 0;
	/* the trees themselves first: a broken tree makes every condition meaningless */
	for (unsigned i = 0; i < T_NTABLES; i++) {
		pbox_bt_verify_info vi;
		rc = pbox_bt_verify(db->t[i], &vi);
		if (rc) {
			printf("VIOLATION tree %s: pbox_bt_verify: %s\n", tpcc_table_names[i],
			       pbox_strerror(rc));
			res->violations++;
			rc = 0;
		} else if (verbose) {
			printf("  tree %-15s %10" PRIu64 " keys, depth %" PRIu64 "\n",
			       tpcc_table_names[i], vi.keys, vi.depth);
		}
	}
	c.cust_sum = calloc(db->sc.customers + 1, sizeof(int64_t));
	if (!c.cust_sum)
		return -ENOMEM;
	if ((rc = pbox_txn_begin(db->st, PBOX_TXN_READONLY, &c.t))) {
		free(c.cust_sum);
		return rc;
	}
	for (uint32_t w = 1; w <= db->sc.warehouses && !rc; w++) {
		c.w = w;
		c.d = 0;
		unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
		size_t kn = k_warehouse(k, w), vn = 0;
		row_warehouse wh;
		rc = pbox_txn_get(c.t, db->t[T_WAREHOUSE], k, kn, v, sizeof(v), &vn);
		if (rc || (rc = dec_warehouse(v, vn, &wh))) {
			fprintf(stderr, "tpcc check: warehouse %u: %s\n", w, pbox_strerror(rc));
			break;
		}
		int64_t sum_d = 0, sum_h = 0;
		for (uint32_t d = 1; d <= TPCC_DISTRICTS && !rc; d++) {
			int64_t d_ytd = 0, h = 0;
			c.d = d;
			rc = check_district(&c, &d_ytd, &h);
			sum_d += d_ytd;
			sum_h += h;
		}
		if (rc)
			break;
		c.d = 0;
		if (wh.ytd != sum_d)
			violation(&c, 1, "W_YTD = %" PRId64 " cents, sum(D_YTD) = %" PRId64 " cents",
				  wh.ytd, sum_d);
		if (wh.ytd != sum_h)
			violation(&c, 8, "W_YTD = %" PRId64 " cents, sum(H_AMOUNT) = %" PRId64
				  " cents", wh.ytd, sum_h);
	}
	pbox_txn_abort(c.t);
	free(c.o);
	free(c.cust_sum);
	for (int i = 0; i < NCOND; i++)
		if (c.per_cond[i] > 10)
			printf("condition %d: %" PRIu64 " violations (first 10 printed)\n", i,
			       c.per_cond[i]);
	return rc;
}
