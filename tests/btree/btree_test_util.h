/*
 * btree_test_util.h — helpers shared by the tree-layer Check suites (check_btree.c,
 * check_btree_catalog.c, check_btree_scan.c, check_btree_smo.c, check_btree_concurrency.c,
 * check_btree_powercut.c). Black box like them: public headers only.
 *
 *   assertions   REQ, REQ_EQ..., CK_RC: cost nothing when they hold (Check's ck_assert_*
 *                log every location they pass through; the loops make millions of checks)
 *   bytes        key comparison, big-endian numbers, hashes
 *   stores       a store on memfs with the btree's redo handlers (env_*), tree helpers
 *   catalog      listing names (list_fn, check_list)
 *   oracle       a sorted array of (key, value) and checkers of scans against it
 *   values       self-validating values and keys for concurrency and power-cut tests
 */
#ifndef PBOX_BTREE_TEST_UTIL_H
#define PBOX_BTREE_TEST_UTIL_H

#include <pbox/btree.h>
#include <pbox/io.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIR_ "/bt"

/* 1 in ASan and TSan builds (gcc's and clang's ways of saying so): suites shrink their sizes
 * there (ten times slower, and CI's time is bounded). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TXN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TXN_SANITIZED 1
#endif
#endif
#ifndef TXN_SANITIZED
#define TXN_SANITIZED 0
#endif

/* REQ, REQ_EQ..., CK_RC: the toolkit's (tests/common/pbox_test.h). */

/* The node format's documented limits (btree/src/node.h), restated from its comment. */
#define NODE_HDR 96u
#define NODE_SLOT 12u
#define KEY_MAX_PS(ps) ((uint32_t)(ps) / 8u)
#define ENTRY_MAX_PS(ps) (((uint32_t)(ps) - PBOX_PAGE_HDR - NODE_HDR - 2u * KEY_MAX_PS(ps)) / 4u - NODE_SLOT)
#define KBUF 8192u /* any key at any page size */

/* ---- small helpers ---------------------------------------------------------------------- */

/* memcmp order, a proper prefix first; -1, 0 or 1. */
int kcmp(const void *a, size_t al, const void *b, size_t bl);
bool beq(const void *a, size_t al, const void *b, size_t bl);
void *xmalloc(size_t n);
/* Big-endian: keys sort by number. */
void put32(uint8_t *p, uint32_t v);
uint32_t get32(const uint8_t *p);
uint64_t mix64(uint64_t x);
uint64_t fnv64(const uint8_t *p, size_t n);

/* ---- stores on memfs -------------------------------------------------------------------- */

typedef struct env {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	char err[256];
} env;

/* Open e->st at DIR_ with e->o (which names the btree's redo handlers). */
void env_open(env *e);
/* A fresh memfs and a new store on it: page size ps, a budget of budget_pages. */
void env_init(env *e, uint32_t ps, uint64_t budget_pages);
/* Close and open the store again (recovery runs). */
void env_reopen(env *e);
void env_fini(env *e);
pbox_bt *bt_create(pbox_store *st, const char *name);
pbox_bt *bt_open(pbox_store *st, const char *name);
/* pbox_bt_verify, which must pass; its counts. */
pbox_bt_verify_info bt_verify(pbox_bt *bt);
/* Scan callback that counts pairs (arg: uint64_t *). */
int count_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg);
uint64_t bt_count(pbox_bt *bt);

/* ---- catalog listings ------------------------------------------------------------------- */

typedef struct name_list {
	char names[400][PBOX_BT_NAME_MAX + 1];
	size_t lens[400];
	unsigned n, stop_after;
	int bad;
} name_list;

/* pbox_bt_list callback collecting into a name_list (returns 99 at stop_after). */
int list_fn(const char *name, size_t len, void *arg);
/* qsort comparator of C strings in key order. */
int name_cmp(const void *a, const void *b);
/* The store lists exactly want (sorted), and an early stop of the callback works. */
void check_list(pbox_store *st, const char **want, unsigned n);

/* ---- a sorted-array oracle -------------------------------------------------------------- */

typedef struct kv {
	uint8_t *k, *v;
	uint32_t kl, vl;
} kv;

typedef struct oracle {
	kv *a;
	size_t n, cap;
} oracle;

size_t orc_lb(const oracle *o, const void *k, size_t kl, bool *exact);
void orc_set(oracle *o, const void *k, size_t kl, const void *v, size_t vl);
void orc_del(oracle *o, size_t pos);
void orc_free(oracle *o);

/* Scan callback results besides 0 (an early stop, a mismatch). */
#define SCAN_STOP 42
#define SCAN_BAD 0x5bad

/* Scan [start, end) (NULL = open) with an optional stop and compare with the oracle.
 * mode 0: pbox_bt_scan; 1: pbox_bt_scan_ex forward; 2: pbox_bt_scan_ex reverse. */
void check_scan_mode(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl,
		     const uint8_t *en, size_t el, unsigned stop_at, unsigned mode,
		     const char *what);
/* All three modes. */
void check_scan(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl, const uint8_t *en,
		size_t el, unsigned stop_at, const char *what);
/* Every key starting with prefix, either direction. */
void check_prefix_scan(pbox_bt *bt, const oracle *o, const uint8_t *p, size_t pl, bool rev,
		       unsigned stop_at, const char *what);
/* verify counts the oracle's keys and a full scan (every mode) returns them. */
void check_all(pbox_bt *bt, const oracle *o, const char *what);

/* pbox_bt_lookup_cb callback: copies the value into buf (up to cap), returns ret. */
typedef struct cb_ctx {
	uint8_t *buf;
	size_t cap, len;
	unsigned calls;
	int ret;
} cb_ctx;

int lookup_cb_fn(const void *v, size_t vl, void *arg);

/* ---- self-validating values (concurrency and power cuts) ------------------------------ */

/* value: n (4, big-endian), version (4), length (4), filler, FNV-64 of all before it (8) */
#define VHDR 20u

uint32_t sv_len(uint32_t n, uint32_t ver, uint32_t span);
void sv_make(uint8_t *b, uint32_t n, uint32_t ver, uint32_t len);
/* Whether b is a whole value written for n; *ver = its version. */
bool sv_check(const uint8_t *b, size_t len, uint32_t n, uint32_t *ver);
/* key of number n: n big-endian, then 0..12 filler bytes depending on n */
uint32_t nkey(uint8_t *k, uint32_t n);
bool nkey_check(const uint8_t *k, size_t kl, uint32_t *n);

#endif /* PBOX_BTREE_TEST_UTIL_H */
