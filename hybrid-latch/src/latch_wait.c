/*
 * latch_wait.c — the slow paths of the hybrid latch: bounded spinning, parking on the futex,
 * and waking parked threads. The fast paths are the inline functions in pbox/latch.h.
 *
 * Waiting protocol (one loop per mode):
 *   1. Re-read the word. If the wanted mode is available, take it with a CAS (acquire) and
 *      return; a lost CAS just re-reads.
 *   2. Otherwise spin: round k issues 2^k pause instructions, PBOX_LATCH_SPIN_ROUNDS rounds.
 *   3. Then park: set the waiters bit with a CAS from the word just read (only while still
 *      blocked, invariant L4 of latch.h), then FUTEX_WAIT on the low 32 bits expecting that
 *      exact value. If the word changed in between, the CAS fails or the kernel returns
 *      EAGAIN, and the loop re-reads: no wake-up can be missed, because every change that
 *      unblocks a waiter alters the low 32 bits and is followed by FUTEX_WAKE if the waiters
 *      bit was set.
 *   4. After any return from the futex (wake, EAGAIN, EINTR) go to 1 with a small spin
 *      budget (PBOX_LATCH_RESPIN_ROUNDS rounds).
 *
 * Waking: the releaser that clears the waiters bit wakes every sleeper (FUTEX_WAKE, INT_MAX).
 * Those that still cannot proceed set the bit again and sleep; latches are held briefly, so
 * the occasional herd is cheaper than tracking waiter kinds.
 *
 * Nothing here spins without bound: a blocked thread sleeps in the kernel after at most
 * 127 pauses, and after at most 15 more per wake-up.
 *
 * Memory ordering: acquisitions use CAS(acquire) followed, for exclusive mode, by a release
 * fence, exactly as the inline fast paths (the pairings are listed in latch.h). Setting and
 * clearing the waiters bit is relaxed: it protects no data, and the futex syscalls order the
 * sleep against the wake.
 */
#define _GNU_SOURCE
#include "latch_int.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void futex_wait(pbox_latch *l, uint32_t expected)
{
	/* EAGAIN (value changed), EINTR (signal) and spurious returns all mean "re-read". */
	(void)syscall(SYS_futex, pbox__latch_futex_addr(l), FUTEX_WAIT_PRIVATE, expected, NULL,
		      NULL, 0);
}

void pbox__latch_wake(pbox_latch *l)
{
	(void)syscall(SYS_futex, pbox__latch_futex_addr(l), FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		      NULL, 0);
}

static void backoff(unsigned round)
{
	for (unsigned i = 0; i < (1u << round); i++)
		pbox__latch_cpu_relax();
}

/* Step 3 of the protocol: announce ourselves and sleep while the word still equals w (a word
 * in which the caller is blocked). Returns when the word changed or we were woken. */
static void park(pbox_latch *l, uint64_t w)
{
	if (!(w & PBOX_LATCH_WAITERS)) {
		if (!atomic_compare_exchange_strong_explicit(&l->word, &w, w | PBOX_LATCH_WAITERS,
							     memory_order_relaxed,
							     memory_order_relaxed))
			return;
		w |= PBOX_LATCH_WAITERS;
	}
	futex_wait(l, (uint32_t)w);
}

void pbox__latch_exclusive_wait(pbox_latch *l)
{
	unsigned round = 0, limit = PBOX_LATCH_SPIN_ROUNDS;
	for (;;) {
		uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
		if ((w & (PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_SHARED_MASK)) == 0) {
			if (atomic_compare_exchange_strong_explicit(
				    &l->word, &w, w | PBOX_LATCH_EXCLUSIVE, memory_order_acquire,
				    memory_order_relaxed)) {
				PBOX_LATCH_FENCE_RELEASE_();
				return;
			}
			continue;
		}
		if (round < limit) {
			backoff(round++);
			continue;
		}
		park(l, w);
		round = 0;
		limit = PBOX_LATCH_RESPIN_ROUNDS;
	}
}

void pbox__latch_shared_wait(pbox_latch *l)
{
	unsigned round = 0, limit = PBOX_LATCH_SPIN_ROUNDS;
	for (;;) {
		uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
		if ((w & PBOX_LATCH_EXCLUSIVE) == 0 &&
		    (w & PBOX_LATCH_SHARED_MASK) != PBOX_LATCH_SHARED_MASK) {
			if (atomic_compare_exchange_strong_explicit(
				    &l->word, &w, w + PBOX_LATCH_SHARED_ONE, memory_order_acquire,
				    memory_order_relaxed))
				return;
			continue;
		}
		if (round < limit) {
			backoff(round++);
			continue;
		}
		park(l, w);
		round = 0;
		limit = PBOX_LATCH_RESPIN_ROUNDS;
	}
}

uint64_t pbox__latch_opt_wait(pbox_latch *l)
{
	unsigned round = 0, limit = PBOX_LATCH_SPIN_ROUNDS;
	for (;;) {
		uint64_t w = atomic_load_explicit(&l->word, memory_order_acquire);
		if ((w & PBOX_LATCH_EXCLUSIVE) == 0)
			return w & PBOX_LATCH_OPT_MASK;
		if (round < limit) {
			backoff(round++);
			continue;
		}
		park(l, w);
		round = 0;
		limit = PBOX_LATCH_RESPIN_ROUNDS;
	}
}

void pbox__latch_shared_release_slow(pbox_latch *l, uint64_t old)
{
	uint64_t count = (old & PBOX_LATCH_SHARED_MASK) >> PBOX_LATCH_SHARED_SHIFT;
	/* Only two releases unblock anyone: the last holder out (writers wait for count 0) and
	 * the one leaving a saturated count (readers wait for room). Other releases leave the
	 * bit for whoever is last. */
	if (count != 1 && count != PBOX_LATCH_SHARED_MAX)
		return;
	atomic_fetch_and_explicit(&l->word, ~PBOX_LATCH_WAITERS, memory_order_relaxed);
	pbox__latch_wake(l);
}

void pbox__latch_misuse(const char *what)
{
	fprintf(stderr, "pbox hybrid-latch: %s\n", what);
	abort();
}
