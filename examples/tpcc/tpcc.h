/*
 * tpcc.h — the TPC-C example: declarations shared by its files.
 *
 * The engine keeps the nine TPC-C tables (plus two secondary indexes and a meta table) as
 * pagebox trees of one store. Keys are order-preserving: fixed-width big-endian integers
 * (and, in the last-name index, fixed-width NUL-padded names), so memcmp order is the
 * tables' natural order and a district's rows, an order's lines or a customer's orders
 * are one contiguous key range. Rows are compact binary records (schema.c documents the
 * layout; README.md has the table). Every TPC-C transaction runs as one pagebox
 * transaction (pbox/txn.h: snapshot isolation); a PBOX_ECONFLICT is retried with the same
 * input and counted.
 *
 * Files: schema.c (keys, rows, random data, opening the store), load.c (the parallel
 * loader), txns.c (the five transactions), check.c (consistency conditions), run.c (the
 * timed run and its report), main.c (the command line).
 *
 * Threads: a tpcc_db is shared by all threads (pagebox trees and stores are thread-safe);
 * a tpcc_worker, its random generator and its statistics belong to one thread.
 */
#ifndef TPCC_H
#define TPCC_H

#include <pbox/btree.h>
#include <pbox/txn.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- scale ----------------------------------------------------------------------------- */

#define TPCC_DISTRICTS 10u          /* per warehouse (fixed by the specification) */
#define TPCC_ITEMS_SPEC 100000u     /* items, and stock rows per warehouse */
#define TPCC_CUSTOMERS_SPEC 3000u   /* customers (and initial orders) per district */
#define TPCC_MAX_WAREHOUSES 10000u  /* the keys hold u16 warehouse ids; this is a sane cap */
#define TPCC_MIN_ITEMS 100u         /* scale-down floors: enough rows for the mix to work */
#define TPCC_MIN_CUSTOMERS 10u
#define TPCC_MAX_OL 15u             /* order lines per order: 5..15 */

/* What `load` wrote into the meta table; run and check read it back. */
typedef struct tpcc_scale {
	uint32_t warehouses;
	uint32_t items;      /* items, and stock rows per warehouse */
	uint32_t customers;  /* customers and initial orders per district */
	uint32_t c_last_load; /* NURand's C for C_LAST used by the loader (0..255) */
} tpcc_scale;

/* The NURand constants of one process (spec 2.1.6): A scaled with the ranges (README). */
typedef struct tpcc_consts {
	uint32_t a_last, a_cust, a_item;
	uint32_t c_last, c_cust, c_item;
	uint32_t nlast; /* last names in use: min(1000, customers) */
} tpcc_consts;

/* ---- tables -------------------------------------------------------------------------- */

enum {
	T_WAREHOUSE,
	T_DISTRICT,
	T_CUSTOMER,
	T_CUST_NAME, /* secondary index: (w, d, c_last, c_first, c) -> "" */
	T_HISTORY,
	T_NEW_ORDER,
	T_ORDER,
	T_ORDER_CUST, /* secondary index: (w, d, c, o) -> "" */
	T_ORDER_LINE,
	T_ITEM,
	T_STOCK,
	T_META,
	T_NTABLES
};
extern const char *const tpcc_table_names[T_NTABLES];

typedef struct tpcc_db {
	pbox_store *st;
	pbox_bt *t[T_NTABLES];
	tpcc_scale sc;
} tpcc_db;

/* Open (or with create, create) the store in dir and every table. budget 0: the default.
 * Prints a message and returns a pbox code on failure. */
int tpcc_db_open(const char *dir, bool create, uint64_t budget, tpcc_db *db);
int tpcc_db_close(tpcc_db *db);
/* Read the meta table: 0 and *loaded; PBOX_ENOTFOUND when nothing was ever loaded. */
int tpcc_meta_read(tpcc_db *db, tpcc_scale *sc, bool *loaded);
int tpcc_meta_write(tpcc_db *db, const tpcc_scale *sc, bool loaded);

/* ---- keys (big-endian, fixed width) ------------------------------------------------ */

#define TPCC_KEY_MAX 48u
#define TPCC_NAME_LEN 16u /* c_last and c_first in the name index: NUL-padded to 16 bytes */

size_t k_warehouse(unsigned char *k, uint32_t w);
size_t k_district(unsigned char *k, uint32_t w, uint32_t d);
size_t k_customer(unsigned char *k, uint32_t w, uint32_t d, uint32_t c);
size_t k_cust_name(unsigned char *k, uint32_t w, uint32_t d, const char *last,
		   const char *first, uint32_t c);
size_t k_cust_name_prefix(unsigned char *k, uint32_t w, uint32_t d, const char *last);
size_t k_history(unsigned char *k, uint32_t w, uint32_t d, uint64_t stamp, uint32_t thread,
		 uint32_t seq);
size_t k_order(unsigned char *k, uint32_t w, uint32_t d, uint32_t o); /* also new_order */
size_t k_order_cust(unsigned char *k, uint32_t w, uint32_t d, uint32_t c, uint32_t o);
size_t k_order_line(unsigned char *k, uint32_t w, uint32_t d, uint32_t o, uint32_t ol);
size_t k_item(unsigned char *k, uint32_t i);
size_t k_stock(unsigned char *k, uint32_t w, uint32_t i);
uint32_t be32(const unsigned char *p);
uint16_t be16(const unsigned char *p);

/* ---- rows -------------------------------------------------------------------------------
 * Money is int64 cents; rates (tax, discount) are uint16 ten-thousandths; dates are uint32
 * seconds since 1970, 0 = null; carrier 0 = null. Strings are NUL-terminated here, stored
 * with a one-byte length. Key columns are in the key, not repeated in the row. */

typedef struct tpcc_addr {
	char street1[21], street2[21], city[21], state[3], zip[10];
} tpcc_addr;

typedef struct row_warehouse {
	char name[11];
	tpcc_addr a;
	uint16_t tax;
	int64_t ytd;
} row_warehouse;

typedef struct row_district {
	char name[11];
	tpcc_addr a;
	uint16_t tax;
	int64_t ytd;
	uint32_t next_o_id;
} row_district;

typedef struct row_customer {
	char first[17], middle[3], last[17];
	tpcc_addr a;
	char phone[17], credit[3];
	uint32_t since;
	int64_t credit_lim;
	uint16_t discount;
	int64_t balance, ytd_payment;
	uint32_t payment_cnt, delivery_cnt;
	char data[501];
} row_customer;

typedef struct row_history {
	uint32_t c_id, c_d_id, c_w_id;
	uint32_t date;
	int64_t amount;
	char data[25];
} row_history;

typedef struct row_order {
	uint32_t c_id, entry_d, carrier_id, ol_cnt, all_local;
} row_order;

typedef struct row_order_line {
	uint32_t i_id, supply_w_id, delivery_d, quantity;
	int64_t amount;
	char dist_info[25];
} row_order_line;

typedef struct row_item {
	uint32_t im_id;
	char name[25];
	int64_t price;
	char data[51];
} row_item;

typedef struct row_stock {
	uint32_t quantity;
	char dist[TPCC_DISTRICTS][25];
	uint32_t ytd, order_cnt, remote_cnt;
	char data[51];
} row_stock;

#define TPCC_ROW_MAX 1024u /* every encoded row fits */

/* Encoders return the length written (at most TPCC_ROW_MAX); decoders 0 or PBOX_ECORRUPT
 * (a short, long or malformed record). */
size_t enc_warehouse(unsigned char *b, const row_warehouse *r);
int dec_warehouse(const unsigned char *b, size_t n, row_warehouse *r);
size_t enc_district(unsigned char *b, const row_district *r);
int dec_district(const unsigned char *b, size_t n, row_district *r);
size_t enc_customer(unsigned char *b, const row_customer *r);
int dec_customer(const unsigned char *b, size_t n, row_customer *r);
size_t enc_history(unsigned char *b, const row_history *r);
int dec_history(const unsigned char *b, size_t n, row_history *r);
size_t enc_order(unsigned char *b, const row_order *r);
int dec_order(const unsigned char *b, size_t n, row_order *r);
size_t enc_order_line(unsigned char *b, const row_order_line *r);
int dec_order_line(const unsigned char *b, size_t n, row_order_line *r);
size_t enc_item(unsigned char *b, const row_item *r);
int dec_item(const unsigned char *b, size_t n, row_item *r);
size_t enc_stock(unsigned char *b, const row_stock *r);
int dec_stock(const unsigned char *b, size_t n, row_stock *r);

/* ---- random data (spec 4.3.2 and 2.1.6) ------------------------------------------------ */

typedef struct tpcc_rng {
	uint64_t s;
} tpcc_rng;

void rng_seed(tpcc_rng *r, uint64_t seed);
uint64_t rng_next(tpcc_rng *r);
uint32_t rnd(tpcc_rng *r, uint32_t lo, uint32_t hi); /* uniform in [lo, hi] */
uint32_t nurand(tpcc_rng *r, uint32_t a, uint32_t c, uint32_t x, uint32_t y);
void rnd_astring(tpcc_rng *r, char *dst, unsigned lo, unsigned hi);
void rnd_nstring(tpcc_rng *r, char *dst, unsigned lo, unsigned hi);
void rnd_addr(tpcc_rng *r, tpcc_addr *a);
void rnd_original(tpcc_rng *r, char *data); /* 10 %: put "ORIGINAL" somewhere in data */
void tpcc_lastname(uint32_t num, char *out);  /* num 0..999; out holds 16 + 1 bytes */
/* A for a scaled range: the spec's A when the range has its full size, else the smallest
 * 2^k-1 at least A * range / spec_range (so the skew keeps its shape). */
uint32_t tpcc_scaled_a(uint32_t spec_a, uint32_t spec_range, uint32_t range);
/* Constants for this process; the run's C_LAST obeys the spec's delta rule (2.1.6.1). */
void tpcc_consts_init(tpcc_consts *k, const tpcc_scale *sc, tpcc_rng *r, bool for_load);
uint32_t tpcc_now(void);
uint64_t tpcc_nanos(void); /* CLOCK_MONOTONIC */

/* ---- transactions (txns.c) ------------------------------------------------------------- */

enum { TX_NEW_ORDER, TX_PAYMENT, TX_ORDER_STATUS, TX_DELIVERY, TX_STOCK_LEVEL, TX_NTYPES };
extern const char *const tpcc_tx_names[TX_NTYPES];

#define TPCC_HBUCKETS 496u /* latency histogram: 8 sub-buckets per power of two of ns */

typedef struct tpcc_stats {
	uint64_t done[TX_NTYPES];      /* committed (new-order rollbacks included) */
	uint64_t conflicts[TX_NTYPES]; /* PBOX_ECONFLICT, each followed by a retry */
	uint64_t retries[TX_NTYPES];   /* every re-execution (conflicts and retired snapshots) */
	uint64_t rollbacks;            /* new-orders rolled back by the 1 % unused item */
	uint64_t remote_lines, remote_payments, by_name, delivery_skipped;
	uint32_t hist[TX_NTYPES][TPCC_HBUCKETS];
} tpcc_stats;

typedef struct tpcc_worker {
	tpcc_db *db;
	const tpcc_consts *k;
	tpcc_rng rng;
	uint32_t home_w, home_d; /* the terminal's warehouse; its district for stock-level */
	uint32_t id;             /* thread number: part of history keys */
	uint32_t hist_seq;
	uint64_t hist_stamp;     /* wall-clock ns at the worker's start: history keys */
	unsigned commit_flags;   /* PBOX_BT_DURABLE or 0 */
	int64_t last_output;     /* the terminal output of the last transaction (kept so the
				    work that computes it is not optimised away) */
	tpcc_stats s;
} tpcc_worker;

#define TPCC_ROLLBACK 1  /* positive: the new-order's intended rollback */
#define TPCC_EMISSING 2  /* positive: a row the schema guarantees is absent (corruption) */

/* Generate the input of one transaction of type, run it (retrying conflicts), count it.
 * 0, or an error (the run stops). */
int tpcc_tx_run(tpcc_worker *w, int type);
unsigned tpcc_hbucket(uint64_t ns);
uint64_t tpcc_hvalue(unsigned bucket);

/* ---- loader, check, run ------------------------------------------------------------ */

int tpcc_load(tpcc_db *db, const tpcc_scale *sc, unsigned threads, uint64_t seed, bool quiet);

typedef struct tpcc_check_result {
	uint64_t violations, orders, order_lines, new_orders, history;
} tpcc_check_result;
/* Run the consistency conditions in one snapshot; prints violations. 0 or an error code. */
int tpcc_check(tpcc_db *db, bool verbose, tpcc_check_result *res);

typedef struct tpcc_run_opts {
	unsigned threads, runs;
	double seconds;
	bool durable;
	int pin; /* pbox_pin_policy */
	uint64_t seed;
	const char *csv, *json;
	const char *label; /* e.g. the store directory, for the reports */
} tpcc_run_opts;
int tpcc_run(tpcc_db *db, const tpcc_run_opts *o);

#endif
