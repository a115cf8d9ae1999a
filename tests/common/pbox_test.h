/*
 * pbox_test.h — the test toolkit shared by the Check suites (tests/README.md says where a
 * new test goes):
 *   - seeds, the stress scale and one PRNG (below);
 *   - assertions that cost nothing when they hold and print status names (REQ, REQ_EQ...,
 *     CK_RC): Check's own ck_assert_* write a pipe message for every assertion that passes,
 *     which the loops of these suites cannot afford;
 *   - a memfs store fixture (pbox_test_store_options) and a snapshot/restore of a memfs
 *     directory (pbox_test_snap_*), for crash, corruption and error-path tests;
 *   - scratch directories on the real file system.
 *
 * Randomized tests take their seed from PBOX_SEED (or the clock), print it, and use the
 * xorshift generator below so that a failing seed reproduces exactly. Iteration counts are
 * multiplied by PBOX_STRESS_SCALE (default 1; nightly runs use more).
 */
#ifndef PBOX_TEST_H
#define PBOX_TEST_H

#include <pbox/iotest.h>

#include <pbox/status.h>

#include <check.h>
#include <stdint.h>

/* The run's base seed: PBOX_SEED if set, else derived from the clock; printed once. */
uint64_t pbox_test_seed(void);

/* PBOX_STRESS_SCALE as an integer >= 1. */
unsigned pbox_test_scale(void);

/* Cycles of a randomised crash or stress loop: n x PBOX_STRESS_SCALE, sampled to a third
 * (at least 1) under ThreadSanitizer, which slows these single-process loops ten- to
 * twentyfold while their concurrency is exercised as well by fewer cycles; the release and
 * ASan builds run them all. Say so when printing the count. */
unsigned pbox_test_cycles(unsigned n);

/* Small, fast, reproducible PRNG (xorshift64*). Never seed with 0. */
typedef struct pbox_rng {
	uint64_t s;
} pbox_rng;
void pbox_rng_seed(pbox_rng *r, uint64_t seed);
uint64_t pbox_rng_next(pbox_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t pbox_rng_below(pbox_rng *r, uint64_t n);

/* Run a Check suite: CK_NORMAL output (the summary line appears in the test log); returns the
 * process exit code (0 when every test passed). */
int pbox_test_run(Suite *s);

/* ---- assertions that cost nothing when they hold -------------------------------------------- */
#define REQ(cond, ...)                                                                      \
	do {                                                                                \
		if (!(cond))                                                                \
			ck_abort_msg(__VA_ARGS__);                                          \
	} while (0)
#define REQ_T(cond) REQ(cond, "%s:%d: %s", __FILE__, __LINE__, #cond)
#define REQ_CMP_(a, op, b)                                                                  \
	do {                                                                                \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
		REQ(a_ op b_, "%s:%d: %s (%llu) %s %s (%llu)", __FILE__, __LINE__, #a, a_, #op,  \
		    #b, b_);                                                                \
	} while (0)
#define REQ_EQ(a, b) REQ_CMP_(a, ==, b)
#define REQ_LE(a, b) REQ_CMP_(a, <=, b)
#define REQ_GE(a, b) REQ_CMP_(a, >=, b)
#define REQ_GT(a, b) REQ_CMP_(a, >, b)
/* A status equal to want; the failure names both ("PBOX_ECORRUPT", "EIO", ...). */
#define CK_RC(expr, want)                                                                   \
	do {                                                                                \
		int rc_ = (expr);                                                           \
		REQ(rc_ == (want), "%s:%d: %s = %s, want %s", __FILE__, __LINE__, #expr,     \
		    pbox_status_name(rc_), pbox_status_name(want));                         \
	} while (0)

/* ---- memfs fixtures ---------------------------------------------------------------------------- */
/* The store fixture (pbox_test_store_options) is in pbox_test_store.h: it needs storage. */

/* A snapshot of the files of one memfs directory (not its subdirectories). */
#define PBOX_TEST_SNAP_MAX 64
typedef struct pbox_test_snap {
	int n;
	char name[PBOX_TEST_SNAP_MAX][96];
	uint8_t *data[PBOX_TEST_SNAP_MAX];
	uint64_t len[PBOX_TEST_SNAP_MAX];
} pbox_test_snap;
void pbox_test_snap_take(pbox_test_snap *s, pbox_io *io, const char *dir);
/* Make the directory hold exactly the snapshot again (extra files removed; each file
 * rewritten and synced, the directory synced). */
void pbox_test_snap_restore(const pbox_test_snap *s, pbox_io *io, const char *dir);
void pbox_test_snap_free(pbox_test_snap *s);

/* A fresh scratch directory under $TMPDIR (or /tmp), created; caller frees the string and
 * removes the directory with pbox_test_rmtree. */
char *pbox_test_tmpdir(const char *tag);
void pbox_test_rmtree(const char *path);

#endif
