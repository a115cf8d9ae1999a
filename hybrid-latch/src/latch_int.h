/*
 * latch_int.h — hybrid-latch internals shared by the .c files: the futex calls on the low half
 * of the latch word and the spin/backoff policy. Not installed.
 */
#ifndef PBOX_LATCH_INT_H
#define PBOX_LATCH_INT_H

#include <pbox/latch.h>

#include <stdint.h>

/* Bounded spinning before a waiter sleeps: round k executes 2^k pause instructions, so
 * PBOX_LATCH_SPIN_ROUNDS = 7 spins for at most 1 + 2 + ... + 64 = 127 pauses (a few
 * microseconds) and then parks on the futex. */
#define PBOX_LATCH_SPIN_ROUNDS 7u

/* After a wake-up a thread spins again, but only PBOX_LATCH_RESPIN_ROUNDS rounds (at most
 * 1 + 2 + 4 + 8 = 15 pauses): it was woken because the latch was released, so it usually
 * gets it on the first re-read; if another thread was faster, it sleeps again soon instead
 * of burning a core that the holder may need. */
#define PBOX_LATCH_RESPIN_ROUNDS 4u

static inline void pbox__latch_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* The 32-bit futex word: the low half of the latch word (little-endian, asserted in latch.h).
 * Only the kernel reads through this pointer. */
static inline uint32_t *pbox__latch_futex_addr(pbox_latch *l)
{
	return (uint32_t *)(void *)&l->word;
}

#endif /* PBOX_LATCH_INT_H */
