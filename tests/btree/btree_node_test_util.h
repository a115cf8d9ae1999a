/*
 * btree_node_test_util.h — helpers shared by the node-layer Check suites (check_btree_node.c,
 * check_btree_node_build.c, check_btree_node_verify.c). White box like them: they include
 * btree/src/node.h.
 *
 * Pages are allocated page-aligned and filled with a pattern before init, and the 32-byte
 * storage header carries a marker the node layer must never touch (check_hdr_untouched).
 * The oracle is a sorted array of entries; a keyspace is a pair of fences with keys to draw
 * between them; the check_* functions compare a node with an oracle.
 */
#ifndef PBOX_BTREE_NODE_TEST_UTIL_H
#define PBOX_BTREE_NODE_TEST_UTIL_H

#include "node.h"

#include "pbox_test.h"

#include <stdbool.h>
#include <stdint.h>

#define KMAX_ANY PBOX_BT_KEY_MAX_ANY
#define HDR_MARK 0x5a

/* Assertions that cost nothing when they hold (Check's own ck_assert_* record every
 * location they pass through with a write(2); the loops here make millions of checks).
 * pbox_test.h may provide the same ones; these are the fallback. */

static const uint32_t page_sizes[] = { 4096, 16384, 65536 };

/* ThreadSanitizer makes every memcpy and memcmp of these single-threaded suites slow (about
 * 10x ASan) and finds nothing in them that ASan does not: the TSan build does 1/WORK_DIV of
 * the randomized and sweeping work, the release and ASan builds all of it. */
#if defined(__SANITIZE_THREAD__)
#define WORK_DIV 8u
#else
#define WORK_DIV 1u
#endif

/* A page-aligned page of pattern bytes whose storage header is HDR_MARK. */
void *page_new(uint32_t ps);
void check_hdr_untouched(const void *page);
int kcmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl);
uint32_t lcp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl);

/* ---- the oracle ---------------------------------------------------------------------------- */

typedef struct ent {
	uint8_t *key, *val;
	uint32_t klen, vlen;
	unsigned flags;
} ent;

typedef struct oracle {
	ent *e;
	uint32_t n, cap;
} oracle;

uint32_t or_lb(const oracle *o, const uint8_t *key, uint32_t klen, bool *exact);
void or_insert(oracle *o, uint32_t pos, const uint8_t *key, uint32_t klen, const uint8_t *val,
	       uint32_t vlen, unsigned flags);
void or_set(oracle *o, uint32_t pos, const uint8_t *val, uint32_t vlen, unsigned flags);
void or_remove(oracle *o, uint32_t pos);
void or_free(oracle *o);
/* The node's content as an oracle. */
void or_from_node(oracle *o, const void *page, uint32_t ps);

/* ---- key spaces (fences) ------------------------------------------------------------------- */

typedef struct keyspace {
	uint32_t ps, kmax;
	bool inner;
	bool lo_fin, hi_fin;
	uint8_t lo[KMAX_ANY], hi[KMAX_ANY];
	uint32_t lolen, hilen;
	uint8_t pre[64]; /* common prefix of the fences, and the first byte range after it */
	uint32_t prelen;
	unsigned first_lo, first_hi;
} keyspace;

uint8_t rnd_byte(pbox_rng *r);
bool ks_contains(const keyspace *ks, const uint8_t *k, uint32_t kl);
void ks_make(keyspace *ks, pbox_rng *r, uint32_t ps, bool inner, unsigned mode);
void ks_init(const keyspace *ks, void *page);
uint32_t rnd_len(pbox_rng *r, uint32_t max);
bool gen_key(pbox_rng *r, const keyspace *ks, const oracle *o, uint8_t *k, uint32_t *kl);
uint32_t gen_payload(pbox_rng *r, const keyspace *ks, uint32_t klen, uint8_t *v);

/* ---- comparing a node with the oracle -------------------------------------------------------- */

uint32_t expect_prefix(const keyspace *ks);
uint32_t expect_used(const keyspace *ks, const oracle *o);
void check_fences(const void *page, uint32_t ps, const uint8_t *lo, uint32_t lolen,
		  const uint8_t *hi, uint32_t hilen);
void check_equal(const void *page, const keyspace *ks, const oracle *o);
void check_lower_bound(const void *page, uint32_t ps, const oracle *o, const uint8_t *k,
		       uint32_t kl);

#endif /* PBOX_BTREE_NODE_TEST_UTIL_H */
