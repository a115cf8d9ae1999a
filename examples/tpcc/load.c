/*
 * load.c — the parallel loader: the initial population of TPC-C clause 4.3.3.1, scaled by
 * tpcc_scale (items; customers = initial orders per district; the last 30 % of those
 * orders undelivered, as 900 of 3000 in the specification).
 *
 * Protocol: the meta row is first written with loaded = 0 (durable), then the threads fill
 * the tables through atomic write batches of a few thousand rows, then every batch is made
 * durable and the meta row is rewritten with loaded = 1. A load that was interrupted leaves
 * loaded = 0, which run and check refuse ("load incomplete"): load again into a new
 * directory.
 *
 * Work division: threads take item chunks, then whole warehouses, from atomic counters. No
 * two threads write the same key, so batches never conflict.
 *
 * Scaled amounts keep the consistency conditions true from the start: D_YTD = 10.00 per
 * customer (one 10.00 history row each), W_YTD = the sum of its districts'.
 */
#include "tpcc.h"

#include <pbox/status.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_CHUNK 5000u
#define BATCH_OPS 4096u

typedef struct load_ctx {
	tpcc_db *db;
	const tpcc_scale *sc;
	tpcc_consts k;
	uint64_t seed;
	uint32_t now;
	atomic_uint next_chunk, next_w, warehouses_done;
	atomic_int err;
	bool quiet;
} load_ctx;

typedef struct loader {
	load_ctx *c;
	unsigned id;
	tpcc_rng rng;
	pbox_bt_batch *b;
	uint32_t hist_seq;
} loader;

static int flush(loader *l)
{
	if (!pbox_bt_batch_count(l->b))
		return 0;
	return pbox_bt_batch_commit(l->b, 0);
}

static int put(loader *l, int table, const unsigned char *k, size_t kn, const unsigned char *v,
	       size_t vn)
{
	int rc = pbox_bt_batch_put(l->b, l->c->db->t[table], k, kn, v, vn);
	if (!rc && pbox_bt_batch_count(l->b) >= BATCH_OPS)
		rc = flush(l);
	return rc;
}

static const unsigned char empty_val[1] = {0};

static int load_items(loader *l, uint32_t first, uint32_t last)
{
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
	for (uint32_t i = first; i <= last; i++) {
		row_item r;
		memset(&r, 0, sizeof(r));
		r.im_id = rnd(&l->rng, 1, 10000);
		rnd_astring(&l->rng, r.name, 14, 24);
		r.price = rnd(&l->rng, 100, 10000);
		rnd_astring(&l->rng, r.data, 26, 50);
		rnd_original(&l->rng, r.data);
		int rc = put(l, T_ITEM, k, k_item(k, i), v, enc_item(v, &r));
		if (rc)
			return rc;
	}
	return 0;
}

static int load_stock(loader *l, uint32_t w)
{
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
	for (uint32_t i = 1; i <= l->c->sc->items; i++) {
		row_stock r;
		memset(&r, 0, sizeof(r));
		r.quantity = rnd(&l->rng, 10, 100);
		for (unsigned d = 0; d < TPCC_DISTRICTS; d++)
			rnd_astring(&l->rng, r.dist[d], 24, 24);
		rnd_astring(&l->rng, r.data, 26, 50);
		rnd_original(&l->rng, r.data);
		int rc = put(l, T_STOCK, k, k_stock(k, w, i), v, enc_stock(v, &r));
		if (rc)
			return rc;
	}
	return 0;
}

static int load_customers(loader *l, uint32_t w, uint32_t d)
{
	const tpcc_scale *sc = l->c->sc;
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
	int rc = 0;
	for (uint32_t c = 1; c <= sc->customers && !rc; c++) {
		row_customer r;
		memset(&r, 0, sizeof(r));
		rnd_astring(&l->rng, r.first, 8, 16);
		memcpy(r.middle, "OE", 3);
		uint32_t num = c <= l->c->k.nlast
				       ? c - 1
				       : nurand(&l->rng, l->c->k.a_last, l->c->k.c_last, 0,
						l->c->k.nlast - 1);
		tpcc_lastname(num, r.last);
		rnd_addr(&l->rng, &r.a);
		rnd_nstring(&l->rng, r.phone, 16, 16);
		r.since = l->c->now;
		memcpy(r.credit, rnd(&l->rng, 1, 100) <= 10 ? "BC" : "GC", 3);
		r.credit_lim = 5000000;
		r.discount = (uint16_t)rnd(&l->rng, 0, 5000);
		r.balance = -1000;
		r.ytd_payment = 1000;
		r.payment_cnt = 1;
		rnd_astring(&l->rng, r.data, 300, 500);
		rc = put(l, T_CUSTOMER, k, k_customer(k, w, d, c), v, enc_customer(v, &r));
		if (!rc)
			rc = put(l, T_CUST_NAME, k, k_cust_name(k, w, d, r.last, r.first, c),
				 empty_val, 0);
		row_history h;
		memset(&h, 0, sizeof(h));
		h.c_id = c;
		h.c_d_id = d;
		h.c_w_id = w;
		h.date = l->c->now;
		h.amount = 1000;
		rnd_astring(&l->rng, h.data, 12, 24);
		if (!rc)
			rc = put(l, T_HISTORY, k,
				 k_history(k, w, d, 0, (uint16_t)l->id, l->hist_seq++), v,
				 enc_history(v, &h));
	}
	return rc;
}

static int load_orders(loader *l, uint32_t w, uint32_t d)
{
	const tpcc_scale *sc = l->c->sc;
	uint32_t n = sc->customers;
	uint32_t first_new = n - n * 3 / 10 + 1; /* 2101 of 3000 */
	uint32_t *perm = malloc(sizeof(uint32_t) * n);
	if (!perm)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i + 1;
	for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates: o_c_id is a permutation */
		uint32_t j = rnd(&l->rng, 0, i);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
	int rc = 0;
	for (uint32_t o = 1; o <= n && !rc; o++) {
		bool delivered = o < first_new;
		row_order r = {.c_id = perm[o - 1],
			       .entry_d = l->c->now,
			       .carrier_id = delivered ? rnd(&l->rng, 1, 10) : 0,
			       .ol_cnt = rnd(&l->rng, 5, 15),
			       .all_local = 1};
		rc = put(l, T_ORDER, k, k_order(k, w, d, o), v, enc_order(v, &r));
		if (!rc)
			rc = put(l, T_ORDER_CUST, k, k_order_cust(k, w, d, r.c_id, o), empty_val,
				 0);
		if (!rc && !delivered)
			rc = put(l, T_NEW_ORDER, k, k_order(k, w, d, o), empty_val, 0);
		for (uint32_t ol = 1; ol <= r.ol_cnt && !rc; ol++) {
			row_order_line x;
			memset(&x, 0, sizeof(x));
			x.i_id = rnd(&l->rng, 1, sc->items);
			x.supply_w_id = w;
			x.delivery_d = delivered ? l->c->now : 0;
			x.quantity = 5;
			x.amount = delivered ? 0 : rnd(&l->rng, 1, 999999);
			rnd_astring(&l->rng, x.dist_info, 24, 24);
			rc = put(l, T_ORDER_LINE, k, k_order_line(k, w, d, o, ol), v,
				 enc_order_line(v, &x));
		}
	}
	free(perm);
	return rc;
}

static int load_warehouse(loader *l, uint32_t w)
{
	const tpcc_scale *sc = l->c->sc;
	unsigned char k[TPCC_KEY_MAX], v[TPCC_ROW_MAX];
	int64_t d_ytd = (int64_t)sc->customers * 1000;
	row_warehouse rw;
	memset(&rw, 0, sizeof(rw));
	rnd_astring(&l->rng, rw.name, 6, 10);
	rnd_addr(&l->rng, &rw.a);
	rw.tax = (uint16_t)rnd(&l->rng, 0, 2000);
	rw.ytd = d_ytd * TPCC_DISTRICTS;
	int rc = put(l, T_WAREHOUSE, k, k_warehouse(k, w), v, enc_warehouse(v, &rw));
	if (!rc)
		rc = load_stock(l, w);
	for (uint32_t d = 1; d <= TPCC_DISTRICTS && !rc; d++) {
		row_district rd;
		memset(&rd, 0, sizeof(rd));
		rnd_astring(&l->rng, rd.name, 6, 10);
		rnd_addr(&l->rng, &rd.a);
		rd.tax = (uint16_t)rnd(&l->rng, 0, 2000);
		rd.ytd = d_ytd;
		rd.next_o_id = sc->customers + 1;
		rc = put(l, T_DISTRICT, k, k_district(k, w, d), v, enc_district(v, &rd));
		if (!rc)
			rc = load_customers(l, w, d);
		if (!rc)
			rc = load_orders(l, w, d);
	}
	return rc;
}

static void *load_thread(void *arg)
{
	loader *l = arg;
	load_ctx *c = l->c;
	int rc = pbox_bt_batch_create(&l->b);
	uint32_t chunks = (c->sc->items + ITEM_CHUNK - 1) / ITEM_CHUNK;
	while (!rc && !atomic_load(&c->err)) {
		uint32_t ch = atomic_fetch_add(&c->next_chunk, 1);
		if (ch >= chunks)
			break;
		uint32_t first = ch * ITEM_CHUNK + 1;
		uint32_t last = first + ITEM_CHUNK - 1;
		if (last > c->sc->items)
			last = c->sc->items;
		rc = load_items(l, first, last);
	}
	while (!rc && !atomic_load(&c->err)) {
		uint32_t w = atomic_fetch_add(&c->next_w, 1) + 1;
		if (w > c->sc->warehouses)
			break;
		rc = load_warehouse(l, w);
		if (!rc)
			rc = flush(l);
		unsigned done = atomic_fetch_add(&c->warehouses_done, 1) + 1;
		if (!rc && !c->quiet)
			fprintf(stderr, "tpcc load: warehouse %u loaded (%u of %u)\n", w, done,
				c->sc->warehouses);
	}
	if (!rc)
		rc = flush(l);
	if (rc) {
		int zero = 0;
		atomic_compare_exchange_strong(&c->err, &zero, rc);
	}
	pbox_bt_batch_destroy(l->b);
	return NULL;
}

int tpcc_load(tpcc_db *db, const tpcc_scale *sc_in, unsigned threads, uint64_t seed, bool quiet)
{
	tpcc_scale sc = *sc_in;
	tpcc_rng r;
	rng_seed(&r, seed);
	load_ctx c;
	memset(&c, 0, sizeof(c));
	c.db = db;
	c.sc = &sc;
	c.seed = seed;
	c.now = tpcc_now();
	c.quiet = quiet;
	tpcc_consts_init(&c.k, &sc, &r, true);
	sc.c_last_load = rnd(&r, 0, c.k.a_last);
	c.k.c_last = sc.c_last_load;
	int rc = tpcc_meta_write(db, &sc, false);
	if (rc) {
		fprintf(stderr, "tpcc load: write meta: %s\n", pbox_strerror(rc));
		return rc;
	}
	if (threads < 1)
		threads = 1;
	loader *ls = calloc(threads, sizeof(*ls));
	pthread_t *th = calloc(threads, sizeof(*th));
	if (!ls || !th) {
		free(ls);
		free(th);
		return -ENOMEM;
	}
	uint64_t t0 = tpcc_nanos();
	unsigned started = 0;
	for (unsigned i = 0; i < threads; i++) {
		ls[i].c = &c;
		ls[i].id = i;
		rng_seed(&ls[i].rng, seed * 1000003u + i + 1);
		if (pthread_create(&th[i], NULL, load_thread, &ls[i])) {
			atomic_store(&c.err, -EAGAIN);
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(ls);
	free(th);
	rc = atomic_load(&c.err);
	if (!rc) /* the durable meta write is a barrier: every batch before it is on disk */
		rc = tpcc_meta_write(db, &sc, true);
	if (rc) {
		fprintf(stderr, "tpcc load: %s\n", pbox_strerror(rc));
		return rc;
	}
	db->sc = sc;
	if (!quiet) {
		double s = (double)(tpcc_nanos() - t0) / 1e9;
		printf("loaded %u warehouse%s (%u items, %u customers per district) with %u "
		       "thread%s in %.1f s\n",
		       sc.warehouses, sc.warehouses == 1 ? "" : "s", sc.items, sc.customers,
		       threads, threads == 1 ? "" : "s", s);
	}
	return 0;
}
