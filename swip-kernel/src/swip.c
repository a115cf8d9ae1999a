/*
 * swip.c — the transition table of the swip word and the CAS-based transitions.
 *
 * What it does: pbox_swip_try() checks a requested transition against the table (the only
 * definition of legality in pagebox) and performs it with one compare-and-swap from the
 * caller's exact snapshot, bumping the transition counter; pbox_swip_finish() is the owner's
 * exit from LOADING/EVICTING; pbox__swip_reheat_slow() is the non-HOT part of the access path.
 *
 * Invariants (numbered as in pbox/swip.h): S1 only table-approved target states are stored,
 * so the state bits always hold a frame state; S2 every store is pbox_swip_next() of the
 * value it replaces; S3 finish refuses to act on anything but the exact owned snapshot.
 *
 * Memory ordering: every transition is CAS(acq_rel) with acquire on failure (pairings in
 * pbox/swip.h): release publishes what the thread did while the page was in the old state,
 * acquire gives the new state's holder what previous holders did.
 */
#include <pbox/swip.h>

/* legal[from][to], indexed by frame state (layout asserted in swip.h). */
static const bool legal[PBOX_FRAME_STATE_COUNT][PBOX_FRAME_STATE_COUNT] = {
	[PBOX_FRAME_EVICTED] = { [PBOX_FRAME_LOADING] = true },
	[PBOX_FRAME_LOADING] = { [PBOX_FRAME_HOT] = true, [PBOX_FRAME_EVICTED] = true },
	[PBOX_FRAME_HOT] = { [PBOX_FRAME_COOL] = true },
	[PBOX_FRAME_COOL] = { [PBOX_FRAME_HOT] = true, [PBOX_FRAME_EVICTING] = true },
	[PBOX_FRAME_EVICTING] = { [PBOX_FRAME_EVICTED] = true, [PBOX_FRAME_HOT] = true },
};

bool pbox_swip_transition_legal(pbox_frame_state from, pbox_frame_state to)
{
	/* Compare as unsigned so that negative values of a signed enum are rejected too. */
	if ((unsigned)from >= PBOX_FRAME_STATE_COUNT || (unsigned)to >= PBOX_FRAME_STATE_COUNT)
		return false;
	return legal[from][to];
}

int pbox_swip_try(pbox_swip *s, uint64_t expected, pbox_frame_state to)
{
	if (!pbox_swip_transition_legal(pbox_swip_state(expected), to))
		return PBOX_EINVAL;
	uint64_t seen = expected;
	if (atomic_compare_exchange_strong_explicit(&s->word, &seen, pbox_swip_next(expected, to),
						    memory_order_acq_rel, memory_order_acquire))
		return 0;
	return PBOX_ERESTART;
}

int pbox_swip_finish(pbox_swip *s, uint64_t owned, pbox_frame_state to)
{
	if (!pbox_swip_state_owned(pbox_swip_state(owned)))
		return PBOX_EINVAL;
	int rc = pbox_swip_try(s, owned, to);
	if (rc == PBOX_ERESTART)
		pbox_assert_fail("swip: an owned state (LOADING/EVICTING) was changed by a thread "
				 "other than its owner",
				 __FILE__, __LINE__);
	return rc;
}

int pbox__swip_reheat_slow(pbox_swip *s, uint64_t snap)
{
	/* Lock-free: the CAS fails only when another thread transitioned the word. */
	for (;;) {
		switch (pbox_swip_state(snap)) {
		case PBOX_FRAME_HOT:
			return 0;
		case PBOX_FRAME_COOL:
			if (atomic_compare_exchange_strong_explicit(
				    &s->word, &snap, pbox_swip_next(snap, PBOX_FRAME_HOT),
				    memory_order_acq_rel, memory_order_acquire))
				return 0;
			break; /* snap now holds the current word: decide again */
		case PBOX_FRAME_EVICTED:
			return PBOX_ENOTFOUND;
		case PBOX_FRAME_LOADING:
		case PBOX_FRAME_EVICTING:
			return PBOX_EBUSY;
		default:
			/* S1: the state bits never hold anything else. */
			pbox_assert_fail("swip: state bits hold no frame state", __FILE__,
					 __LINE__);
		}
	}
}
