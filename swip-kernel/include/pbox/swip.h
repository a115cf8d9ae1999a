/*
 * pbox/swip.h — the swip word: residency state of one page and its atomic transitions.
 *
 * Every page id has one swip word in the buffer pool's frame table. It says whether the page
 * is in memory and who may change that, using the frame states of <pbox/types.h> (LeanStore's
 * swizzled / cooling / unswizzled states, kept per page instead of per parent pointer):
 *
 *   EVICTED --(fault claims the read)--> LOADING --(read verified)--> HOT
 *   LOADING --(read failed)--> EVICTED
 *   HOT --(clock sweep)--> COOL --(access re-heats)--> HOT
 *   COOL --(sweep again: evictor claims)--> EVICTING --(written back, memory released)--> EVICTED
 *   EVICTING --(eviction abandoned: write-back failed or page became busy)--> HOT
 *
 * Every other pair (including X -> X) is illegal and refused with PBOX_EINVAL.
 *
 * Word layout (static assertions below)
 *
 *   BITS     MEANING
 *   0..2     state: a pbox_frame_state value (EVICTED=0 LOADING=1 HOT=2 COOL=3 EVICTING=4)
 *   3..63    transition counter: +1 on every successful transition (wraps after 2^61)
 *
 * The counter is the ABA guard: a clock hand that saw (COOL, c) on its previous pass claims
 * the page for eviction with a CAS from exactly (COOL, c), so it fails if the page was
 * re-heated and cooled again in between (the counter moved even though the state is COOL
 * again).
 *
 * Invariants
 *   S1 the state bits always hold one of the five frame states.
 *   S2 the counter changes only with a transition and always by exactly +1 (mod 2^61).
 *   S3 LOADING and EVICTING are owned by exactly one thread: the one whose pbox_swip_try()
 *      entered that state. Only the owner leaves it (pbox_swip_finish). Everyone else who
 *      meets an owned state waits or restarts.
 *   S4 HOT and COOL pages are resident; EVICTED pages are not; an owned page's memory belongs
 *      to its owner.
 *
 * Memory ordering
 *   pbox_swip_load, pbox_swip_is_hot   load(acquire): pairs with the release half of the CAS
 *                                      that stored the state, so a thread that sees HOT also
 *                                      sees the page bytes the loader wrote before LOADING->HOT.
 *   pbox_swip_try / finish / reheat    CAS(acq_rel; acquire on failure): the release half
 *                                      publishes the work done in the previous state (page
 *                                      read, write-back, release of memory) to the next
 *                                      thread that reads this word; the acquire half makes the
 *                                      new owner see the previous owner's work. Successive
 *                                      CASes on the word form one release sequence, so the
 *                                      chain LOADING -> HOT -> COOL -> EVICTING hands the
 *                                      loader's writes to the evictor.
 *
 * The struct is exposed only so the hot paths can be inline; it is not API: never touch the
 * word directly. This header is C11 (<stdatomic.h>).
 */
#ifndef PBOX_SWIP_H
#define PBOX_SWIP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <pbox/status.h>
#include <pbox/types.h>

/* ---- word layout ---------------------------------------------------------------------- */
#define PBOX_SWIP_STATE_BITS 3
#define PBOX_SWIP_STATE_MASK ((UINT64_C(1) << PBOX_SWIP_STATE_BITS) - 1)
#define PBOX_SWIP_COUNTER_SHIFT PBOX_SWIP_STATE_BITS
#define PBOX_SWIP_COUNTER_BITS (64 - PBOX_SWIP_COUNTER_SHIFT)
#define PBOX_SWIP_COUNTER_ONE (UINT64_C(1) << PBOX_SWIP_COUNTER_SHIFT)
#define PBOX_SWIP_COUNTER_MAX ((UINT64_C(1) << PBOX_SWIP_COUNTER_BITS) - 1)

_Static_assert(PBOX_FRAME_STATE_COUNT <= (1 << PBOX_SWIP_STATE_BITS),
	       "swip: every frame state must fit in the state bits");
_Static_assert(PBOX_FRAME_EVICTED == 0 && PBOX_FRAME_LOADING == 1 && PBOX_FRAME_HOT == 2 &&
		       PBOX_FRAME_COOL == 3 && PBOX_FRAME_EVICTING == 4,
	       "swip: the transition table is indexed by these frame state values");
_Static_assert(PBOX_SWIP_COUNTER_SHIFT + PBOX_SWIP_COUNTER_BITS == 64,
	       "swip: state and counter must fill the 64-bit word");

/* Not API, exposed for inlining. One per page; the word is protected by itself (atomic
 * operations only) and, for owned states, by the ownership rule S3. */
typedef struct pbox_swip {
	_Atomic uint64_t word; /* layout above; atomic */
} pbox_swip;
_Static_assert(sizeof(pbox_swip) == 8, "swip: one 64-bit word");

/* EVICTED, counter 0. */
#define PBOX_SWIP_INIT { 0 }

/* Module-private slow path (not API). */
int pbox__swip_reheat_slow(pbox_swip *s, uint64_t snapshot);

/* Initialize a swip in caller memory to (EVICTED, 0). Not concurrent with any use. */
static inline void pbox_swip_init(pbox_swip *s)
{
	atomic_init(&s->word, 0);
}

/* ---- snapshots (plain values, no memory access) ----------------------------------------- */

/* The snapshot value for (state, counter); counter is taken modulo 2^61. */
static inline uint64_t pbox_swip_make(pbox_frame_state state, uint64_t counter)
{
	return (counter << PBOX_SWIP_COUNTER_SHIFT) | ((uint64_t)state & PBOX_SWIP_STATE_MASK);
}

static inline pbox_frame_state pbox_swip_state(uint64_t snapshot)
{
	return (pbox_frame_state)(snapshot & PBOX_SWIP_STATE_MASK);
}

static inline uint64_t pbox_swip_counter(uint64_t snapshot)
{
	return snapshot >> PBOX_SWIP_COUNTER_SHIFT;
}

/* The word a successful transition from `snapshot` to `to` stores: (to, counter + 1). */
static inline uint64_t pbox_swip_next(uint64_t snapshot, pbox_frame_state to)
{
	return ((snapshot & ~PBOX_SWIP_STATE_MASK) + PBOX_SWIP_COUNTER_ONE) |
	       ((uint64_t)to & PBOX_SWIP_STATE_MASK);
}

/* LOADING and EVICTING belong to one thread (invariant S3). */
static inline bool pbox_swip_state_owned(pbox_frame_state state)
{
	return state == PBOX_FRAME_LOADING || state == PBOX_FRAME_EVICTING;
}

/* ---- reading the word ---------------------------------------------------------------- */

/* A snapshot of the word (acquire). */
static inline uint64_t pbox_swip_load(const pbox_swip *s)
{
	return atomic_load_explicit(&s->word, memory_order_acquire);
}

/* The hot-path residency check: one acquire load, no write. */
static inline bool pbox_swip_is_hot(const pbox_swip *s)
{
	return pbox_swip_state(pbox_swip_load(s)) == PBOX_FRAME_HOT;
}

/* ---- transitions --------------------------------------------------------------------- */

/* True if from -> to is one of the eight legal transitions (diagram above). Values outside
 * the enum are never legal. */
bool pbox_swip_transition_legal(pbox_frame_state from, pbox_frame_state to);

/*
 * Move the word from exactly `expected` (a snapshot) to (to, counter + 1) with one CAS.
 * Returns
 *   0              done; the word was pbox_swip_next(expected, to) at that moment. If `to`
 *                  is LOADING or EVICTING the caller now owns the page (S3).
 *   PBOX_ERESTART  the word no longer equals `expected` (another thread transitioned it, or
 *                  the snapshot is stale); nothing changed: reload and decide again.
 *   PBOX_EINVAL    state(expected) -> to is not a legal transition (or `to` is no frame
 *                  state); refused, the word is not touched.
 * Leaving an owned state should go through pbox_swip_finish, which checks ownership.
 */
int pbox_swip_try(pbox_swip *s, uint64_t expected, pbox_frame_state to);

/*
 * The owner of a LOADING or EVICTING page leaves that state: `owned` is the snapshot
 * pbox_swip_next() returned for the claim (the word cannot have changed since, by S3).
 * Returns 0, or PBOX_EINVAL if `owned` is not an owned state or the transition is illegal
 * (word untouched). If the word differs from `owned`, invariant S3 was broken by some other
 * thread: that is a bug, reported with pbox_assert_fail (always on, abort()).
 */
int pbox_swip_finish(pbox_swip *s, uint64_t owned, pbox_frame_state to);

/*
 * Access path: make sure the page is HOT. A HOT page costs one acquire load and no write; a
 * COOL page is re-heated (COOL -> HOT by CAS; losing the CAS to another re-heater is fine).
 * Returns
 *   0              the page was or is now HOT.
 *   PBOX_EBUSY     LOADING or EVICTING: an owner is working on the page; wait and retry.
 *   PBOX_ENOTFOUND EVICTED: not resident; the caller faults it in (EVICTED -> LOADING).
 */
static inline int pbox_swip_reheat(pbox_swip *s)
{
	uint64_t snap = pbox_swip_load(s);
	if (__builtin_expect(pbox_swip_state(snap) == PBOX_FRAME_HOT, 1))
		return 0;
	return pbox__swip_reheat_slow(s, snap);
}

#endif /* PBOX_SWIP_H */
