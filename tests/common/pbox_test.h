/*
 * pbox_test.h — helpers shared by the Check suites.
 *
 * Randomized tests take their seed from PBOX_SEED (or the clock), print it, and use the
 * xorshift generator below so that a failing seed reproduces exactly. Iteration counts are
 * multiplied by PBOX_STRESS_SCALE (default 1; nightly runs use more).
 */
#ifndef PBOX_TEST_H
#define PBOX_TEST_H

#include <pbox/iotest.h>

#include <check.h>
#include <stdint.h>

/* The run's base seed: PBOX_SEED if set, else derived from the clock; printed once. */
uint64_t pbox_test_seed(void);

/* PBOX_STRESS_SCALE as an integer >= 1. */
unsigned pbox_test_scale(void);

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

/* A fresh scratch directory under $TMPDIR (or /tmp), created; caller frees the string and
 * removes the directory with pbox_test_rmtree. */
char *pbox_test_tmpdir(const char *tag);
void pbox_test_rmtree(const char *path);

#endif
