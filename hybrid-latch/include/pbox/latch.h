/*
 * pbox/latch.h — the hybrid latch: optimistic, shared and exclusive modes on one 64-bit word.
 *
 * Glossary
 *   optimistic read  read the version, read the protected bytes without taking anything, then
 *                    validate that the version did not move; the reader writes no shared
 *                    cache line. A failed validation is not an error: the caller restarts.
 *   shared           classic reader mode (a count in the word); the progress fallback.
 *   exclusive        writer mode; every exclusive release bumps the version, so optimistic
 *                    readers that overlapped a writer fail validation.
 *   version          48-bit counter in the top of the word, bumped by every exclusive release.
 *   waiters bit      set by a thread that is about to sleep on the futex; whoever makes the
 *                    latch available again clears it and wakes the sleepers.
 *
 * Word layout (little-endian bit numbers; static assertions below)
 *
 *   BITS     MEANING
 *   0        exclusive: held by exactly one writer
 *   1        waiters: at least one thread may be parked on the futex
 *   2..15    shared-holder count (14 bits, at most PBOX_LATCH_SHARED_MAX)
 *   16..63   version (48 bits, wraps)
 *
 * The futex is the low 32 bits of the word (address &word on a little-endian machine). Every
 * change that can unblock a waiter (exclusive bit cleared, shared count changed, waiters bit
 * cleared) changes those low 32 bits, so a waiter that computed its expected value from a
 * stale word never sleeps through the change.
 *
 * Invariants
 *   L1 exclusive set => shared count == 0 (the two modes exclude each other).
 *   L2 the version changes only in an exclusive release (or downgrade), always by +1.
 *   L3 while X is held only its holder changes the X bit, the version or the shared count
 *      (which stays 0); other threads can only set the waiters bit.
 *   L4 the waiters bit is set only by a compare-and-swap from a word in which the setter is
 *      blocked: X held; or, for a writer, a shared count above 0; or, for a reader, a count
 *      of PBOX_LATCH_SHARED_MAX. Each of these ends with a release (exclusive release or
 *      downgrade; the shared release that leaves count 0 or leaves the maximum) that sees
 *      the bit, clears it and wakes every sleeper. Hence no lost wake-ups.
 *   L5 no writer preference: a stream of shared holders can delay a writer. Shared mode is the
 *      fallback path (optimistic reads never block writers), so this is accepted.
 *
 * Memory ordering (each acquire names the release it pairs with)
 *   exclusive acquire   CAS(acquire) — pairs with the previous exclusive release (exchange,
 *                       release) and with the last shared release (fetch_sub, release), so
 *                       the writer sees all earlier writes and no reader still reads.
 *                       Followed by a release fence (seqlock style): the exclusive bit is
 *                       ordered before the writer's protected stores, so a reader whose racy
 *                       load saw such a store also sees the bit when it re-reads the word
 *                       after its acquire fence (pairs with the fence in opt_validate).
 *   exclusive release   exchange(release) — publishes the protected stores to the next
 *                       exclusive/shared acquirer and to opt_begin's acquire load.
 *   shared acquire      CAS(acquire) — pairs with the exclusive release.
 *   shared release      fetch_sub(release) — pairs with the next exclusive acquire (the
 *                       readers' loads happen before the writer's stores).
 *   opt_begin           load(acquire) — pairs with the exclusive release; the protected
 *                       loads cannot be hoisted above it.
 *   opt_validate        fence(acquire) then load(relaxed) — the fence keeps every racy load
 *                       before the re-read and pairs with the writer's release fence above.
 *   try_upgrade         CAS(acquire) + release fence, like exclusive acquire.
 *   waiters bit         set with a relaxed CAS; the futex syscalls order sleep and wake.
 *
 * Racy reads (ARCHITECTURE §4)
 *   An optimistic reader reads bytes that a writer may be storing at the same time: in C11
 *   terms a data race, and ThreadSanitizer would report it on every page read. The race is
 *   confined to one place. Writers under the exclusive latch keep using ordinary stores (they
 *   are the only writer); readers read the protected bytes only through
 *   pbox_latch_opt_copy() and pbox_latch_opt_load_u*(): out-of-line functions built without
 *   TSan instrumentation that use relaxed atomic loads (8-byte words where aligned, single
 *   bytes elsewhere), which the compiler must perform once, where written, without
 *   re-loading or inventing values as it may for ordinary loads, and which never become a
 *   memcpy call (TSan intercepts memcpy). The remaining formal race (atomic load against
 *   ordinary store) is the one every seqlock written in C has; the hardware we support
 *   gives such loads a value some store wrote. Consequences for the reader:
 *     - the bytes may be anything: half of an update, or zeros of a page being evicted;
 *     - every offset, length, count or page id read optimistically is bounds-checked before
 *       it is used to address anything, and no pointer is followed outside the object;
 *     - nothing is acted upon (returned, written, used to take a decision with side
 *       effects) before pbox_latch_opt_validate() returned true.
 *
 * Progress rule
 *   Optimistic readers restart at most PBOX_LATCH_MAX_OPT_RESTARTS times, then read under the
 *   shared latch, which cannot fail: once it is granted no writer changes the data until it
 *   is released.
 *
 *	for (unsigned tries = 0;; tries++) {
 *		if (tries == PBOX_LATCH_MAX_OPT_RESTARTS) {
 *			pbox_latch_shared_acquire(&l);
 *			n = node->count;                       // ordinary loads are fine here
 *			pbox_latch_shared_release(&l);
 *			break;
 *		}
 *		uint64_t v = pbox_latch_opt_begin_wait(&l);    // or opt_begin() and restart
 *		n = pbox_latch_opt_load_u16(&node->count);     // may be any value
 *		if (n > NODE_MAX)                              // bounds-check before any use
 *			continue;                              // (validation would fail)
 *		if (pbox_latch_opt_validate(&l, v))
 *			break;                                 // n is consistent
 *	}
 *
 * The struct is exposed only so the hot paths can be inline: it is not API, never touch the
 * word directly. This header is C11 (<stdatomic.h>); it is not usable from C++.
 */
#ifndef PBOX_LATCH_H
#define PBOX_LATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pbox/config.h>

/* ---- word layout ---------------------------------------------------------------------- */
#define PBOX_LATCH_EXCLUSIVE ((uint64_t)1 << 0)
#define PBOX_LATCH_WAITERS ((uint64_t)1 << 1)
#define PBOX_LATCH_SHARED_SHIFT 2
#define PBOX_LATCH_SHARED_BITS 14
#define PBOX_LATCH_SHARED_ONE ((uint64_t)1 << PBOX_LATCH_SHARED_SHIFT)
#define PBOX_LATCH_SHARED_MAX ((1u << PBOX_LATCH_SHARED_BITS) - 1u)
#define PBOX_LATCH_SHARED_MASK ((uint64_t)PBOX_LATCH_SHARED_MAX << PBOX_LATCH_SHARED_SHIFT)
#define PBOX_LATCH_VERSION_SHIFT 16
#define PBOX_LATCH_VERSION_BITS 48
#define PBOX_LATCH_VERSION_ONE ((uint64_t)1 << PBOX_LATCH_VERSION_SHIFT)
#define PBOX_LATCH_VERSION_MASK (~(uint64_t)0 << PBOX_LATCH_VERSION_SHIFT)
/* The bits an optimistic version snapshot consists of (shared count and waiters ignored). */
#define PBOX_LATCH_OPT_MASK (PBOX_LATCH_VERSION_MASK | PBOX_LATCH_EXCLUSIVE)

_Static_assert(PBOX_LATCH_SHARED_SHIFT + PBOX_LATCH_SHARED_BITS == PBOX_LATCH_VERSION_SHIFT,
	       "latch: shared count must end where the version starts");
_Static_assert(PBOX_LATCH_VERSION_SHIFT + PBOX_LATCH_VERSION_BITS == 64,
	       "latch: version must fill the top of the 64-bit word");
_Static_assert(((PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_WAITERS) & PBOX_LATCH_SHARED_MASK) == 0 &&
		       (PBOX_LATCH_SHARED_MASK & PBOX_LATCH_VERSION_MASK) == 0 &&
		       ((PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_WAITERS | PBOX_LATCH_SHARED_MASK |
			 PBOX_LATCH_VERSION_MASK) == ~(uint64_t)0),
	       "latch: fields must partition the word");
_Static_assert(((PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_WAITERS | PBOX_LATCH_SHARED_MASK) >> 32) == 0,
	       "latch: every bit a futex waiter blocks on must lie in the low 32 bits");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "latch: the futex is the low half of the word, at its address on little-endian");

/*
 * The two seqlock fences. ThreadSanitizer does not model standalone fences and GCC refuses
 * them under -fsanitize=thread (-Wtsan). In TSan builds on x86-64 they become compiler
 * barriers, which is all these fences are there on a TSO machine anyway: the CAS before the
 * release fence is a locked instruction (a full barrier), and loads are not reordered with
 * older loads, so the compiler is the only thing that could move a racy load past the
 * re-read in opt_validate. TSan never sees the racy loads either (latch_racy.c is not
 * instrumented), so nothing is hidden from it by this substitution.
 */
#if defined(__SANITIZE_THREAD__)
#define PBOX_LATCH_TSAN_ 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PBOX_LATCH_TSAN_ 1
#endif
#endif
#if defined(PBOX_LATCH_TSAN_) && defined(__x86_64__)
#define PBOX_LATCH_FENCE_ACQUIRE_() atomic_signal_fence(memory_order_seq_cst)
#define PBOX_LATCH_FENCE_RELEASE_() atomic_signal_fence(memory_order_seq_cst)
#else
#define PBOX_LATCH_FENCE_ACQUIRE_() atomic_thread_fence(memory_order_acquire)
#define PBOX_LATCH_FENCE_RELEASE_() atomic_thread_fence(memory_order_release)
#endif

/* Optimistic restarts before a reader falls back to shared mode (see "Progress rule"). */
#define PBOX_LATCH_MAX_OPT_RESTARTS 8

/* Not API, exposed for inlining. Callers embed it by value; all access goes through the
 * functions below. The word is protected by itself (atomic operations only). */
typedef struct pbox_latch {
	_Atomic uint64_t word; /* layout above; atomic */
} pbox_latch;
_Static_assert(sizeof(pbox_latch) == 8, "latch: one 64-bit word");

/* Unlocked, version 0, nobody waiting. */
#define PBOX_LATCH_INIT { 0 }

/* Module-private slow paths (not API; called from the inline functions below). */
void pbox__latch_exclusive_wait(pbox_latch *l);
void pbox__latch_shared_wait(pbox_latch *l);
uint64_t pbox__latch_opt_wait(pbox_latch *l);
void pbox__latch_wake(pbox_latch *l);
void pbox__latch_shared_release_slow(pbox_latch *l, uint64_t old);
void pbox__latch_misuse(const char *what) __attribute__((noreturn, cold));

/* Initialize a latch in caller memory: unlocked, version 0. Not concurrent with any use. */
static inline void pbox_latch_init(pbox_latch *l)
{
	atomic_init(&l->word, 0);
}

/* ---- optimistic mode ---------------------------------------------------------------- */

/* Begin an optimistic read. Returns false (and leaves *version untouched) if a writer holds
 * the latch; the caller restarts or waits (pbox_latch_opt_begin_wait). Writes nothing. */
static inline bool pbox_latch_opt_begin(const pbox_latch *l, uint64_t *version)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_acquire);
	if (__builtin_expect((w & PBOX_LATCH_EXCLUSIVE) != 0, 0))
		return false;
	*version = w & PBOX_LATCH_OPT_MASK;
	return true;
}

/* Begin an optimistic read, waiting (bounded spin, then futex sleep) while a writer holds
 * the latch. Returns the version snapshot. Writes the word only when it has to sleep. */
static inline uint64_t pbox_latch_opt_begin_wait(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_acquire);
	if (__builtin_expect((w & PBOX_LATCH_EXCLUSIVE) == 0, 1))
		return w & PBOX_LATCH_OPT_MASK;
	return pbox__latch_opt_wait(l);
}

/* True if no writer held or released the latch since the snapshot `version` was taken: every
 * racy read made in between saw a consistent state. Writes nothing. */
static inline bool pbox_latch_opt_validate(const pbox_latch *l, uint64_t version)
{
	PBOX_LATCH_FENCE_ACQUIRE_();
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	return (w & PBOX_LATCH_OPT_MASK) == version;
}

/* ---- exclusive mode ------------------------------------------------------------------ */

/* Take the exclusive latch if it is free right now; false if anyone holds it (no waiting). */
static inline bool pbox_latch_exclusive_try(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	while ((w & (PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_SHARED_MASK)) == 0) {
		if (atomic_compare_exchange_weak_explicit(&l->word, &w, w | PBOX_LATCH_EXCLUSIVE,
							  memory_order_acquire,
							  memory_order_relaxed)) {
			PBOX_LATCH_FENCE_RELEASE_();
			return true;
		}
	}
	return false;
}

/* Take the exclusive latch, spinning boundedly and then sleeping on the futex. */
static inline void pbox_latch_exclusive_acquire(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	if (__builtin_expect((w & (PBOX_LATCH_EXCLUSIVE | PBOX_LATCH_SHARED_MASK)) == 0, 1) &&
	    atomic_compare_exchange_strong_explicit(&l->word, &w, w | PBOX_LATCH_EXCLUSIVE,
						    memory_order_acquire, memory_order_relaxed)) {
		PBOX_LATCH_FENCE_RELEASE_();
		return;
	}
	pbox__latch_exclusive_wait(l);
}

/* Release the exclusive latch: bump the version, clear the exclusive and waiters bits and
 * wake sleepers if there were any. Only the holder calls this. */
static inline void pbox_latch_exclusive_release(pbox_latch *l)
{
	/* L3: while we hold X only the waiters bit can change under us, and the exchange
	 * overwrites it (clears it) atomically, so computing `next` from a relaxed load is safe. */
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
#if PBOX_DIAGNOSTIC
	if (!(w & PBOX_LATCH_EXCLUSIVE))
		pbox__latch_misuse("exclusive release without holding the latch");
#endif
	uint64_t next = (w & PBOX_LATCH_VERSION_MASK) + PBOX_LATCH_VERSION_ONE;
	uint64_t old = atomic_exchange_explicit(&l->word, next, memory_order_release);
	if (__builtin_expect((old & PBOX_LATCH_WAITERS) != 0, 0))
		pbox__latch_wake(l);
}

/* Turn the held exclusive latch into a shared hold. The version is bumped (the writer may
 * have changed the data), and sleepers are woken since readers may now enter. */
static inline void pbox_latch_exclusive_downgrade(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
#if PBOX_DIAGNOSTIC
	if (!(w & PBOX_LATCH_EXCLUSIVE))
		pbox__latch_misuse("downgrade without holding the exclusive latch");
#endif
	uint64_t next = ((w & PBOX_LATCH_VERSION_MASK) + PBOX_LATCH_VERSION_ONE) |
			PBOX_LATCH_SHARED_ONE;
	uint64_t old = atomic_exchange_explicit(&l->word, next, memory_order_release);
	if (__builtin_expect((old & PBOX_LATCH_WAITERS) != 0, 0))
		pbox__latch_wake(l);
}

/* ---- shared mode --------------------------------------------------------------------- */

/* Take a shared hold if no writer holds the latch and the count is not saturated. */
static inline bool pbox_latch_shared_try(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	while ((w & PBOX_LATCH_EXCLUSIVE) == 0 &&
	       (w & PBOX_LATCH_SHARED_MASK) != PBOX_LATCH_SHARED_MASK) {
		if (atomic_compare_exchange_weak_explicit(&l->word, &w, w + PBOX_LATCH_SHARED_ONE,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

/* Take a shared hold, spinning boundedly and then sleeping while a writer holds the latch
 * (or, pathologically, while PBOX_LATCH_SHARED_MAX holders are inside). */
static inline void pbox_latch_shared_acquire(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	if (__builtin_expect((w & PBOX_LATCH_EXCLUSIVE) == 0 &&
				     (w & PBOX_LATCH_SHARED_MASK) != PBOX_LATCH_SHARED_MASK,
			     1) &&
	    atomic_compare_exchange_strong_explicit(&l->word, &w, w + PBOX_LATCH_SHARED_ONE,
						    memory_order_acquire, memory_order_relaxed))
		return;
	pbox__latch_shared_wait(l);
}

/* Drop one shared hold. The last holder out (or the one leaving a saturated count) wakes the
 * sleepers if the waiters bit is set. */
static inline void pbox_latch_shared_release(pbox_latch *l)
{
	uint64_t old = atomic_fetch_sub_explicit(&l->word, PBOX_LATCH_SHARED_ONE,
						 memory_order_release);
#if PBOX_DIAGNOSTIC
	if ((old & PBOX_LATCH_SHARED_MASK) == 0)
		pbox__latch_misuse("shared release without a shared hold");
#endif
	if (__builtin_expect((old & PBOX_LATCH_WAITERS) != 0, 0))
		pbox__latch_shared_release_slow(l, old);
}

/* ---- upgrades ------------------------------------------------------------------------ */

/* Optimistic -> exclusive: succeeds only if the version is still `version` and nobody holds
 * the latch in any mode; then the caller holds it exclusively and everything it read
 * optimistically since `version` is known to be current. Never waits. */
static inline bool pbox_latch_try_upgrade(pbox_latch *l, uint64_t version)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	/* version has X == 0 and no count bits: equality means same version, X free, count 0;
	 * the loop only repeats when the waiters bit alone changed. */
	while ((w & (PBOX_LATCH_OPT_MASK | PBOX_LATCH_SHARED_MASK)) == version) {
		if (atomic_compare_exchange_weak_explicit(&l->word, &w, w | PBOX_LATCH_EXCLUSIVE,
							  memory_order_acquire,
							  memory_order_relaxed)) {
			PBOX_LATCH_FENCE_RELEASE_();
			return true;
		}
	}
	return false;
}

/* Shared -> exclusive: succeeds only if the caller is the sole shared holder. On failure the
 * caller still holds its shared hold. */
static inline bool pbox_latch_shared_try_upgrade(pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	while ((w & PBOX_LATCH_SHARED_MASK) == PBOX_LATCH_SHARED_ONE) {
		uint64_t next = (w - PBOX_LATCH_SHARED_ONE) | PBOX_LATCH_EXCLUSIVE;
		if (atomic_compare_exchange_weak_explicit(&l->word, &w, next, memory_order_acquire,
							  memory_order_relaxed)) {
			PBOX_LATCH_FENCE_RELEASE_();
			return true;
		}
	}
	return false;
}

/* ---- inspection (diagnostics and tests; racy by nature) -------------------------------- */

static inline bool pbox_latch_is_exclusive(const pbox_latch *l)
{
	return (atomic_load_explicit(&l->word, memory_order_relaxed) & PBOX_LATCH_EXCLUSIVE) != 0;
}

static inline unsigned pbox_latch_shared_count(const pbox_latch *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	return (unsigned)((w & PBOX_LATCH_SHARED_MASK) >> PBOX_LATCH_SHARED_SHIFT);
}

/* The version counter now (top 48 bits as a number). */
static inline uint64_t pbox_latch_version(const pbox_latch *l)
{
	return atomic_load_explicit(&l->word, memory_order_relaxed) >> PBOX_LATCH_VERSION_SHIFT;
}

/* ---- racy reads under an optimistic latch ---------------------------------------------- */

/* Copy n bytes of protected memory into the caller's private buffer. src and dst must not
 * overlap. The copy may be torn; validate before trusting it (see "Racy reads"). */
void pbox_latch_opt_copy(void *dst, const void *src, size_t n);

/* Load one value of protected memory. Any alignment is accepted; naturally aligned values
 * are read with one relaxed atomic load (never torn), others byte by byte. */
uint64_t pbox_latch_opt_load_u64(const void *p);
uint32_t pbox_latch_opt_load_u32(const void *p);
uint16_t pbox_latch_opt_load_u16(const void *p);
uint8_t pbox_latch_opt_load_u8(const void *p);

#endif /* PBOX_LATCH_H */
