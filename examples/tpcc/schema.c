/*
 * schema.c — the TPC-C engine's schema: table names, order-preserving keys, the compact row
 * format, the random data generators of the specification, and opening the store.
 *
 * Keys. Integers are big-endian (warehouse u16, district u8, customer/order/item u32,
 * order-line number u8), so memcmp order is numeric order and every prefix (a district, a
 * customer, an order) is one contiguous range. The name index pads c_last and c_first with
 * NULs to 16 bytes each: names are upper/lower-case letters, so padding sorts a shorter name
 * before its extensions exactly as the specification's ORDER BY does.
 *
 * Rows. A row is its non-key columns in a fixed order: integers little-endian in fixed
 * width (u8/u16/u32/i64), strings as a one-byte length and the bytes (no NUL). There is no
 * per-row tag: the table determines the layout, and the meta table's format number
 * (TPCC_FORMAT) guards a store written by another layout. Decoders check every length and
 * reject trailing bytes (PBOX_ECORRUPT): rows come from disk.
 *
 * Threads: everything here is reentrant; an rng belongs to one thread.
 */
#define _GNU_SOURCE
#include "tpcc.h"

#include <pbox/status.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const tpcc_table_names[T_NTABLES] = {
	"warehouse", "district", "customer", "customer_name", "history", "new_order",
	"order", "order_customer", "order_line", "item", "stock", "tpcc_meta",
};

/* ---- keys -------------------------------------------------------------------------------- */

static unsigned char *p16(unsigned char *k, uint32_t v)
{
	k[0] = (unsigned char)(v >> 8);
	k[1] = (unsigned char)v;
	return k + 2;
}
static unsigned char *p32(unsigned char *k, uint32_t v)
{
	k[0] = (unsigned char)(v >> 24);
	k[1] = (unsigned char)(v >> 16);
	k[2] = (unsigned char)(v >> 8);
	k[3] = (unsigned char)v;
	return k + 4;
}
static unsigned char *p64(unsigned char *k, uint64_t v)
{
	return p32(p32(k, (uint32_t)(v >> 32)), (uint32_t)v);
}
static unsigned char *pname(unsigned char *k, const char *s)
{
	size_t n = strnlen(s, TPCC_NAME_LEN);
	memset(k, 0, TPCC_NAME_LEN);
	memcpy(k, s, n);
	return k + TPCC_NAME_LEN;
}

uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
uint16_t be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

size_t k_warehouse(unsigned char *k, uint32_t w)
{
	return (size_t)(p16(k, w) - k);
}
size_t k_district(unsigned char *k, uint32_t w, uint32_t d)
{
	unsigned char *p = p16(k, w);
	*p++ = (unsigned char)d;
	return (size_t)(p - k);
}
size_t k_customer(unsigned char *k, uint32_t w, uint32_t d, uint32_t c)
{
	size_t n = k_district(k, w, d);
	return (size_t)(p32(k + n, c) - k);
}
size_t k_cust_name_prefix(unsigned char *k, uint32_t w, uint32_t d, const char *last)
{
	size_t n = k_district(k, w, d);
	return (size_t)(pname(k + n, last) - k);
}
size_t k_cust_name(unsigned char *k, uint32_t w, uint32_t d, const char *last,
		   const char *first, uint32_t c)
{
	size_t n = k_cust_name_prefix(k, w, d, last);
	return (size_t)(p32(pname(k + n, first), c) - k);
}
size_t k_history(unsigned char *k, uint32_t w, uint32_t d, uint64_t stamp, uint32_t thread,
		 uint32_t seq)
{
	size_t n = k_district(k, w, d);
	return (size_t)(p32(p16(p64(k + n, stamp), thread), seq) - k);
}
size_t k_order(unsigned char *k, uint32_t w, uint32_t d, uint32_t o)
{
	size_t n = k_district(k, w, d);
	return (size_t)(p32(k + n, o) - k);
}
size_t k_order_cust(unsigned char *k, uint32_t w, uint32_t d, uint32_t c, uint32_t o)
{
	size_t n = k_customer(k, w, d, c);
	return (size_t)(p32(k + n, o) - k);
}
size_t k_order_line(unsigned char *k, uint32_t w, uint32_t d, uint32_t o, uint32_t ol)
{
	size_t n = k_order(k, w, d, o);
	k[n] = (unsigned char)ol;
	return n + 1;
}
size_t k_item(unsigned char *k, uint32_t i)
{
	return (size_t)(p32(k, i) - k);
}
size_t k_stock(unsigned char *k, uint32_t w, uint32_t i)
{
	return (size_t)(p32(p16(k, w), i) - k);
}

/* ---- rows -------------------------------------------------------------------------------- */

typedef struct wbuf {
	unsigned char *p;
	size_t n;
} wbuf;

static void w_u8(wbuf *b, uint32_t v)
{
	b->p[b->n++] = (unsigned char)v;
}
static void w_u16(wbuf *b, uint32_t v)
{
	w_u8(b, v);
	w_u8(b, v >> 8);
}
static void w_u32(wbuf *b, uint32_t v)
{
	w_u16(b, v);
	w_u16(b, v >> 16);
}
static void w_i64(wbuf *b, int64_t v)
{
	uint64_t u = (uint64_t)v;
	w_u32(b, (uint32_t)u);
	w_u32(b, (uint32_t)(u >> 32));
}
/* cap: the column's width in the specification (the struct's array holds cap + 1) */
static void w_str(wbuf *b, const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	w_u8(b, (uint32_t)n);
	memcpy(b->p + b->n, s, n);
	b->n += n;
}
static void w_addr(wbuf *b, const tpcc_addr *a)
{
	w_str(b, a->street1, 20);
	w_str(b, a->street2, 20);
	w_str(b, a->city, 20);
	w_str(b, a->state, 2);
	w_str(b, a->zip, 9);
}

typedef struct rbuf {
	const unsigned char *p;
	size_t n, off;
	bool bad;
} rbuf;

static bool r_need(rbuf *b, size_t n)
{
	if (b->bad || b->n - b->off < n) {
		b->bad = true;
		return false;
	}
	return true;
}
static uint32_t r_u8(rbuf *b)
{
	return r_need(b, 1) ? b->p[b->off++] : 0;
}
static uint32_t r_u16(rbuf *b)
{
	uint32_t lo = r_u8(b);
	return lo | r_u8(b) << 8;
}
static uint32_t r_u32(rbuf *b)
{
	uint32_t lo = r_u16(b);
	return lo | r_u16(b) << 16;
}
static int64_t r_i64(rbuf *b)
{
	uint64_t lo = r_u32(b);
	return (int64_t)(lo | (uint64_t)r_u32(b) << 32);
}
static void r_str(rbuf *b, char *dst, size_t cap)
{
	size_t n = r_u8(b);
	dst[0] = 0;
	if (n > cap) {
		b->bad = true;
		return;
	}
	if (!r_need(b, n))
		return;
	memcpy(dst, b->p + b->off, n);
	dst[n] = 0;
	b->off += n;
}
static void r_addr(rbuf *b, tpcc_addr *a)
{
	r_str(b, a->street1, 20);
	r_str(b, a->street2, 20);
	r_str(b, a->city, 20);
	r_str(b, a->state, 2);
	r_str(b, a->zip, 9);
}
static int r_end(const rbuf *b)
{
	return (b->bad || b->off != b->n) ? PBOX_ECORRUPT : 0;
}

#define ENC_BEGIN wbuf B = {b, 0}
#define DEC_BEGIN rbuf B = {b, n, 0, false}

size_t enc_warehouse(unsigned char *b, const row_warehouse *r)
{
	ENC_BEGIN;
	w_str(&B, r->name, 10);
	w_addr(&B, &r->a);
	w_u16(&B, r->tax);
	w_i64(&B, r->ytd);
	return B.n;
}
int dec_warehouse(const unsigned char *b, size_t n, row_warehouse *r)
{
	DEC_BEGIN;
	r_str(&B, r->name, 10);
	r_addr(&B, &r->a);
	r->tax = (uint16_t)r_u16(&B);
	r->ytd = r_i64(&B);
	return r_end(&B);
}

size_t enc_district(unsigned char *b, const row_district *r)
{
	ENC_BEGIN;
	w_str(&B, r->name, 10);
	w_addr(&B, &r->a);
	w_u16(&B, r->tax);
	w_i64(&B, r->ytd);
	w_u32(&B, r->next_o_id);
	return B.n;
}
int dec_district(const unsigned char *b, size_t n, row_district *r)
{
	DEC_BEGIN;
	r_str(&B, r->name, 10);
	r_addr(&B, &r->a);
	r->tax = (uint16_t)r_u16(&B);
	r->ytd = r_i64(&B);
	r->next_o_id = r_u32(&B);
	return r_end(&B);
}

size_t enc_customer(unsigned char *b, const row_customer *r)
{
	ENC_BEGIN;
	w_str(&B, r->first, 16);
	w_str(&B, r->middle, 2);
	w_str(&B, r->last, 16);
	w_addr(&B, &r->a);
	w_str(&B, r->phone, 16);
	w_u32(&B, r->since);
	w_str(&B, r->credit, 2);
	w_i64(&B, r->credit_lim);
	w_u16(&B, r->discount);
	w_i64(&B, r->balance);
	w_i64(&B, r->ytd_payment);
	w_u32(&B, r->payment_cnt);
	w_u32(&B, r->delivery_cnt);
	/* c_data is up to 500 bytes: a u16 length */
	size_t dn = strnlen(r->data, 500);
	w_u16(&B, (uint32_t)dn);
	memcpy(B.p + B.n, r->data, dn);
	B.n += dn;
	return B.n;
}
int dec_customer(const unsigned char *b, size_t n, row_customer *r)
{
	DEC_BEGIN;
	r_str(&B, r->first, 16);
	r_str(&B, r->middle, 2);
	r_str(&B, r->last, 16);
	r_addr(&B, &r->a);
	r_str(&B, r->phone, 16);
	r->since = r_u32(&B);
	r_str(&B, r->credit, 2);
	r->credit_lim = r_i64(&B);
	r->discount = (uint16_t)r_u16(&B);
	r->balance = r_i64(&B);
	r->ytd_payment = r_i64(&B);
	r->payment_cnt = r_u32(&B);
	r->delivery_cnt = r_u32(&B);
	size_t dn = r_u16(&B);
	r->data[0] = 0;
	if (dn > 500 || !r_need(&B, dn))
		return PBOX_ECORRUPT;
	memcpy(r->data, B.p + B.off, dn);
	r->data[dn] = 0;
	B.off += dn;
	return r_end(&B);
}

size_t enc_history(unsigned char *b, const row_history *r)
{
	ENC_BEGIN;
	w_u32(&B, r->c_id);
	w_u8(&B, r->c_d_id);
	w_u16(&B, r->c_w_id);
	w_u32(&B, r->date);
	w_i64(&B, r->amount);
	w_str(&B, r->data, 24);
	return B.n;
}
int dec_history(const unsigned char *b, size_t n, row_history *r)
{
	DEC_BEGIN;
	r->c_id = r_u32(&B);
	r->c_d_id = r_u8(&B);
	r->c_w_id = r_u16(&B);
	r->date = r_u32(&B);
	r->amount = r_i64(&B);
	r_str(&B, r->data, 24);
	return r_end(&B);
}

size_t enc_order(unsigned char *b, const row_order *r)
{
	ENC_BEGIN;
	w_u32(&B, r->c_id);
	w_u32(&B, r->entry_d);
	w_u8(&B, r->carrier_id);
	w_u8(&B, r->ol_cnt);
	w_u8(&B, r->all_local);
	return B.n;
}
int dec_order(const unsigned char *b, size_t n, row_order *r)
{
	DEC_BEGIN;
	r->c_id = r_u32(&B);
	r->entry_d = r_u32(&B);
	r->carrier_id = r_u8(&B);
	r->ol_cnt = r_u8(&B);
	r->all_local = r_u8(&B);
	return r_end(&B);
}

size_t enc_order_line(unsigned char *b, const row_order_line *r)
{
	ENC_BEGIN;
	w_u32(&B, r->i_id);
	w_u16(&B, r->supply_w_id);
	w_u32(&B, r->delivery_d);
	w_u8(&B, r->quantity);
	w_i64(&B, r->amount);
	w_str(&B, r->dist_info, 24);
	return B.n;
}
int dec_order_line(const unsigned char *b, size_t n, row_order_line *r)
{
	DEC_BEGIN;
	r->i_id = r_u32(&B);
	r->supply_w_id = r_u16(&B);
	r->delivery_d = r_u32(&B);
	r->quantity = r_u8(&B);
	r->amount = r_i64(&B);
	r_str(&B, r->dist_info, 24);
	return r_end(&B);
}

size_t enc_item(unsigned char *b, const row_item *r)
{
	ENC_BEGIN;
	w_u32(&B, r->im_id);
	w_str(&B, r->name, 24);
	w_i64(&B, r->price);
	w_str(&B, r->data, 50);
	return B.n;
}
int dec_item(const unsigned char *b, size_t n, row_item *r)
{
	DEC_BEGIN;
	r->im_id = r_u32(&B);
	r_str(&B, r->name, 24);
	r->price = r_i64(&B);
	r_str(&B, r->data, 50);
	return r_end(&B);
}

size_t enc_stock(unsigned char *b, const row_stock *r)
{
	ENC_BEGIN;
	w_u16(&B, r->quantity);
	for (unsigned i = 0; i < TPCC_DISTRICTS; i++)
		w_str(&B, r->dist[i], 24);
	w_u32(&B, r->ytd);
	w_u32(&B, r->order_cnt);
	w_u32(&B, r->remote_cnt);
	w_str(&B, r->data, 50);
	return B.n;
}
int dec_stock(const unsigned char *b, size_t n, row_stock *r)
{
	DEC_BEGIN;
	r->quantity = r_u16(&B);
	for (unsigned i = 0; i < TPCC_DISTRICTS; i++)
		r_str(&B, r->dist[i], 24);
	r->ytd = r_u32(&B);
	r->order_cnt = r_u32(&B);
	r->remote_cnt = r_u32(&B);
	r_str(&B, r->data, 50);
	return r_end(&B);
}

/* ---- random data ------------------------------------------------------------------------ */

void rng_seed(tpcc_rng *r, uint64_t seed)
{
	r->s = seed ^ 0x9e3779b97f4a7c15ull;
}

/* splitmix64: small, fast, and every seed (0 included) gives a full-period stream */
uint64_t rng_next(tpcc_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint32_t rnd(tpcc_rng *r, uint32_t lo, uint32_t hi)
{
	uint64_t span = (uint64_t)hi - lo + 1;
	return lo + (uint32_t)(rng_next(r) % span);
}

uint32_t nurand(tpcc_rng *r, uint32_t a, uint32_t c, uint32_t x, uint32_t y)
{
	return (((rnd(r, 0, a) | rnd(r, x, y)) + c) % (y - x + 1)) + x;
}

void rnd_astring(tpcc_rng *r, char *dst, unsigned lo, unsigned hi)
{
	static const char set[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned n = rnd(r, lo, hi);
	for (unsigned i = 0; i < n; i++)
		dst[i] = set[rnd(r, 0, sizeof(set) - 2)];
	dst[n] = 0;
}

void rnd_nstring(tpcc_rng *r, char *dst, unsigned lo, unsigned hi)
{
	unsigned n = rnd(r, lo, hi);
	for (unsigned i = 0; i < n; i++)
		dst[i] = (char)('0' + rnd(r, 0, 9));
	dst[n] = 0;
}

void rnd_addr(tpcc_rng *r, tpcc_addr *a)
{
	rnd_astring(r, a->street1, 10, 20);
	rnd_astring(r, a->street2, 10, 20);
	rnd_astring(r, a->city, 10, 20);
	a->state[0] = (char)('A' + rnd(r, 0, 25));
	a->state[1] = (char)('A' + rnd(r, 0, 25));
	a->state[2] = 0;
	rnd_nstring(r, a->zip, 4, 4);
	memcpy(a->zip + 4, "11111", 6);
}

void rnd_original(tpcc_rng *r, char *data)
{
	size_t n = strlen(data);
	if (rnd(r, 1, 100) > 10 || n < 8)
		return;
	memcpy(data + rnd(r, 0, (uint32_t)(n - 8)), "ORIGINAL", 8);
}

void tpcc_lastname(uint32_t num, char *out)
{
	static const char *const syl[10] = {"BAR", "OUGHT", "ABLE", "PRI", "PRES",
					     "ESE", "ANTI", "CALLY", "ATION", "EING"};
	num %= 1000;
	snprintf(out, 17, "%s%s%s", syl[num / 100], syl[num / 10 % 10], syl[num % 10]);
}

uint32_t tpcc_scaled_a(uint32_t spec_a, uint32_t spec_range, uint32_t range)
{
	if (range >= spec_range)
		return spec_a;
	uint64_t want = (uint64_t)spec_a * range / spec_range;
	uint32_t a = 1;
	while (a < want)
		a = a * 2 + 1;
	return a;
}

void tpcc_consts_init(tpcc_consts *k, const tpcc_scale *sc, tpcc_rng *r, bool for_load)
{
	k->nlast = sc->customers < 1000 ? sc->customers : 1000;
	k->a_last = tpcc_scaled_a(255, 1000, k->nlast);
	k->a_cust = tpcc_scaled_a(1023, TPCC_CUSTOMERS_SPEC, sc->customers);
	k->a_item = tpcc_scaled_a(8191, TPCC_ITEMS_SPEC, sc->items);
	k->c_cust = rnd(r, 0, k->a_cust);
	k->c_item = rnd(r, 0, k->a_item);
	if (for_load) {
		k->c_last = sc->c_last_load;
		return;
	}
	/* 2.1.6.1: C_run - C_load in [65, 119], but not 96 or 112 (mod 256) */
	uint32_t delta;
	do
		delta = rnd(r, 65, 119);
	while (delta == 96 || delta == 112);
	k->c_last = (sc->c_last_load + delta) % 256;
	if (k->c_last > k->a_last)
		k->c_last %= k->a_last + 1; /* a scaled-down A is smaller than 255 */
}

uint32_t tpcc_now(void)
{
	return (uint32_t)time(NULL);
}

uint64_t tpcc_nanos(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the store and the meta table ------------------------------------------------------- */

#define TPCC_FORMAT 1u /* bump when a key or row layout changes */
#define TPCC_MAX_BYTES (64ull << 30) /* virtual reservation; the 1 TiB default is refused
					 on some VMs and under ThreadSanitizer */

int tpcc_db_open(const char *dir, bool create, uint64_t budget, tpcc_db *db)
{
	memset(db, 0, sizeof(*db));
	pbox_store_options so;
	pbox_store_options_init(&so);
	so.create = create;
	if (budget)
		so.budget_bytes = budget;
	so.max_bytes = TPCC_MAX_BYTES;
	char err[512] = "";
	so.errbuf = err;
	so.errbuf_len = sizeof(err);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	so.redo = h;
	so.nredo = nh;
	int rc = pbox_store_open(dir, &so, &db->st);
	if (rc) {
		db->st = NULL;
		if (rc == PBOX_ENOTFOUND)
			fprintf(stderr, "tpcc: no store in %s (run `tpcc load` first)\n", dir);
		else
			fprintf(stderr, "tpcc: open %s: %s%s%s\n", dir, pbox_strerror(rc),
				err[0] ? ": " : "", err);
		return rc;
	}
	for (unsigned i = 0; i < T_NTABLES; i++) {
		rc = create ? pbox_bt_open_or_create(db->st, tpcc_table_names[i], &db->t[i])
			    : pbox_bt_open(db->st, tpcc_table_names[i], &db->t[i]);
		if (rc) {
			if (rc == PBOX_ENOTFOUND)
				fprintf(stderr, "tpcc: %s holds no TPC-C database (no table %s)\n",
					dir, tpcc_table_names[i]);
			else
				fprintf(stderr, "tpcc: open table %s: %s\n", tpcc_table_names[i],
					pbox_strerror(rc));
			tpcc_db_close(db);
			return rc;
		}
	}
	return 0;
}

int tpcc_db_close(tpcc_db *db)
{
	for (unsigned i = 0; i < T_NTABLES; i++)
		if (db->t[i])
			pbox_bt_close(db->t[i]);
	int rc = 0;
	if (db->st)
		rc = pbox_store_close(db->st);
	memset(db, 0, sizeof(*db));
	if (rc)
		fprintf(stderr, "tpcc: close: %s\n", pbox_strerror(rc));
	return rc;
}

/* The meta row "scale": format u32, warehouses u32, items u32, customers u32, c_last_load
 * u32, loaded u8 (little-endian). */
int tpcc_meta_read(tpcc_db *db, tpcc_scale *sc, bool *loaded)
{
	unsigned char v[64];
	size_t n = 0;
	int rc = pbox_bt_lookup(db->t[T_META], "scale", 5, v, sizeof(v), &n);
	if (rc)
		return rc == PBOX_ETOOSMALL ? PBOX_ECORRUPT : rc;
	rbuf B = {v, n, 0, false};
	uint32_t fmt = r_u32(&B);
	tpcc_scale s;
	s.warehouses = r_u32(&B);
	s.items = r_u32(&B);
	s.customers = r_u32(&B);
	s.c_last_load = r_u32(&B);
	bool l = r_u8(&B) != 0;
	if (r_end(&B) || fmt != TPCC_FORMAT || !s.warehouses ||
	    s.warehouses > TPCC_MAX_WAREHOUSES || s.items < TPCC_MIN_ITEMS ||
	    s.items > TPCC_ITEMS_SPEC || s.customers < TPCC_MIN_CUSTOMERS ||
	    s.customers > TPCC_CUSTOMERS_SPEC || s.c_last_load > 255) {
		fprintf(stderr, "tpcc: the meta table holds an unknown format\n");
		return PBOX_ECORRUPT;
	}
	*sc = s;
	*loaded = l;
	return 0;
}

int tpcc_meta_write(tpcc_db *db, const tpcc_scale *sc, bool loaded)
{
	unsigned char v[64];
	wbuf B = {v, 0};
	w_u32(&B, TPCC_FORMAT);
	w_u32(&B, sc->warehouses);
	w_u32(&B, sc->items);
	w_u32(&B, sc->customers);
	w_u32(&B, sc->c_last_load);
	w_u8(&B, loaded);
	return pbox_bt_upsert(db->t[T_META], "scale", 5, v, B.n, PBOX_BT_DURABLE);
}
