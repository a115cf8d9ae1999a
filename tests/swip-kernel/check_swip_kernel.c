/*
 * check_swip_kernel.c — Check suite for pagebox::swip-kernel.
 *
 * Test cases, one per concern:
 *   layout       init value, snapshot encode/decode, counter wrap.
 *   table        all 25 (from, to) pairs against an independent list of the 8 legal ones:
 *                legal ones succeed with counter + 1, illegal ones return PBOX_EINVAL and
 *                leave the word unchanged; out-of-range states are refused.
 *   stale        a snapshot that no longer matches (state or counter) gets PBOX_ERESTART and
 *                changes nothing; the ABA guard of the clock hand.
 *   reheat       the access path: HOT costs no write, COOL is re-heated, owned and evicted
 *                states are reported; concurrent re-heaters make exactly one transition.
 *   finish       the owner's exit from LOADING / EVICTING, and the abort when somebody else
 *                changed an owned word.
 *   race         2, 4 and 8 threads drive a few swip words through random legal cycles
 *                (load claims, load completion or failure, cooling, re-heating, eviction
 *                claims, write-back or abandonment). Owners are checked to be unique, the
 *                page "payload" handed from loader to evictor through the word is checked,
 *                and every word's counter must equal the transitions the threads counted.
 *
 * Threads never call ck_assert (Check is not thread-safe): failures go to an atomic flag
 * that the main thread asserts on after joining.
 */
#define _GNU_SOURCE
#include <pbox/swip.h>

#include "pbox_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pbox_frame_state all_states[] = {
	PBOX_FRAME_EVICTED, PBOX_FRAME_LOADING, PBOX_FRAME_HOT, PBOX_FRAME_COOL,
	PBOX_FRAME_EVICTING,
};

/* The legal transitions, written out independently of the library's table. */
static const struct {
	pbox_frame_state from, to;
} legal_pairs[] = {
	{ PBOX_FRAME_EVICTED, PBOX_FRAME_LOADING }, { PBOX_FRAME_LOADING, PBOX_FRAME_HOT },
	{ PBOX_FRAME_LOADING, PBOX_FRAME_EVICTED }, { PBOX_FRAME_HOT, PBOX_FRAME_COOL },
	{ PBOX_FRAME_COOL, PBOX_FRAME_HOT },	    { PBOX_FRAME_COOL, PBOX_FRAME_EVICTING },
	{ PBOX_FRAME_EVICTING, PBOX_FRAME_EVICTED }, { PBOX_FRAME_EVICTING, PBOX_FRAME_HOT },
};

static bool expect_legal(pbox_frame_state from, pbox_frame_state to)
{
	for (size_t i = 0; i < PBOX_ARRAY_LEN(legal_pairs); i++)
		if (legal_pairs[i].from == from && legal_pairs[i].to == to)
			return true;
	return false;
}

static uint64_t raw(const pbox_swip *s)
{
	return atomic_load(&s->word);
}

/* White-box: put a word into an arbitrary state for table tests. */
static void force(pbox_swip *s, pbox_frame_state st, uint64_t counter)
{
	atomic_store(&s->word, pbox_swip_make(st, counter));
}

/* ---- layout ---------------------------------------------------------------------------- */

START_TEST(test_init_and_encoding)
{
	pbox_swip a = PBOX_SWIP_INIT, b;
	pbox_swip_init(&b);
	ck_assert_uint_eq(raw(&a), 0);
	ck_assert_uint_eq(raw(&b), 0);
	ck_assert_int_eq(pbox_swip_state(pbox_swip_load(&a)), PBOX_FRAME_EVICTED);
	ck_assert_uint_eq(pbox_swip_counter(pbox_swip_load(&a)), 0);
	ck_assert(!pbox_swip_is_hot(&a));

	for (size_t i = 0; i < PBOX_ARRAY_LEN(all_states); i++) {
		uint64_t c = 0x123456789ULL * (i + 1);
		uint64_t snap = pbox_swip_make(all_states[i], c);
		ck_assert_int_eq(pbox_swip_state(snap), all_states[i]);
		ck_assert_uint_eq(pbox_swip_counter(snap), c);
		uint64_t nx = pbox_swip_next(snap, PBOX_FRAME_HOT);
		ck_assert_int_eq(pbox_swip_state(nx), PBOX_FRAME_HOT);
		ck_assert_uint_eq(pbox_swip_counter(nx), c + 1);
	}
	ck_assert(pbox_swip_state_owned(PBOX_FRAME_LOADING));
	ck_assert(pbox_swip_state_owned(PBOX_FRAME_EVICTING));
	ck_assert(!pbox_swip_state_owned(PBOX_FRAME_EVICTED));
	ck_assert(!pbox_swip_state_owned(PBOX_FRAME_HOT));
	ck_assert(!pbox_swip_state_owned(PBOX_FRAME_COOL));
}
END_TEST

START_TEST(test_counter_wraps)
{
	pbox_swip s;
	force(&s, PBOX_FRAME_COOL, PBOX_SWIP_COUNTER_MAX);
	uint64_t snap = pbox_swip_load(&s);
	ck_assert_uint_eq(pbox_swip_counter(snap), PBOX_SWIP_COUNTER_MAX);
	ck_assert_int_eq(pbox_swip_try(&s, snap, PBOX_FRAME_EVICTING), 0);
	snap = pbox_swip_load(&s);
	/* The counter wraps to 0 without disturbing the state bits. */
	ck_assert_int_eq(pbox_swip_state(snap), PBOX_FRAME_EVICTING);
	ck_assert_uint_eq(pbox_swip_counter(snap), 0);
	ck_assert_uint_eq(snap, pbox_swip_make(PBOX_FRAME_EVICTING, 0));
}
END_TEST

/* ---- table ----------------------------------------------------------------------------- */

START_TEST(test_all_pairs)
{
	unsigned legal = 0, illegal = 0;
	for (size_t i = 0; i < PBOX_ARRAY_LEN(all_states); i++) {
		for (size_t j = 0; j < PBOX_ARRAY_LEN(all_states); j++) {
			pbox_frame_state from = all_states[i], to = all_states[j];
			pbox_swip s;
			force(&s, from, 41);
			uint64_t before = raw(&s);
			bool want = expect_legal(from, to);
			ck_assert_msg(pbox_swip_transition_legal(from, to) == want,
				      "table disagrees on %s -> %s", pbox_frame_state_name(from),
				      pbox_frame_state_name(to));
			int rc = pbox_swip_try(&s, before, to);
			if (want) {
				ck_assert_msg(rc == 0, "%s -> %s: %s", pbox_frame_state_name(from),
					      pbox_frame_state_name(to), pbox_strerror(rc));
				ck_assert_uint_eq(raw(&s), pbox_swip_make(to, 42));
				legal++;
			} else {
				ck_assert_msg(rc == PBOX_EINVAL, "%s -> %s: got %d",
					      pbox_frame_state_name(from),
					      pbox_frame_state_name(to), rc);
				ck_assert_uint_eq(raw(&s), before);
				illegal++;
			}
		}
	}
	ck_assert_uint_eq(legal, 8);
	ck_assert_uint_eq(illegal, 17);
}
END_TEST

START_TEST(test_out_of_range)
{
	pbox_swip s = PBOX_SWIP_INIT;
	uint64_t snap = pbox_swip_load(&s);
	/* Targets that are no frame state. */
	ck_assert_int_eq(pbox_swip_try(&s, snap, (pbox_frame_state)5), PBOX_EINVAL);
	ck_assert_int_eq(pbox_swip_try(&s, snap, (pbox_frame_state)7), PBOX_EINVAL);
	ck_assert_int_eq(pbox_swip_try(&s, snap, (pbox_frame_state)-1), PBOX_EINVAL);
	ck_assert_uint_eq(raw(&s), 0);
	for (int from = 5; from < 8; from++) {
		for (size_t j = 0; j < PBOX_ARRAY_LEN(all_states); j++) {
			ck_assert(!pbox_swip_transition_legal((pbox_frame_state)from,
							      all_states[j]));
			/* A snapshot whose state bits are garbage is refused, not CASed. */
			ck_assert_int_eq(pbox_swip_try(&s, (uint64_t)from, all_states[j]),
					 PBOX_EINVAL);
		}
	}
	ck_assert(!pbox_swip_transition_legal((pbox_frame_state)-1, PBOX_FRAME_LOADING));
	ck_assert_uint_eq(raw(&s), 0);
}
END_TEST

/* ---- stale snapshots --------------------------------------------------------------------- */

START_TEST(test_stale_snapshot)
{
	pbox_swip s = PBOX_SWIP_INIT;
	uint64_t s0 = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_try(&s, s0, PBOX_FRAME_LOADING), 0);
	uint64_t s1 = pbox_swip_load(&s);
	ck_assert_uint_eq(s1, pbox_swip_next(s0, PBOX_FRAME_LOADING));

	/* A second fault with the old snapshot loses: exactly one loader. */
	ck_assert_int_eq(pbox_swip_try(&s, s0, PBOX_FRAME_LOADING), PBOX_ERESTART);
	ck_assert_uint_eq(raw(&s), s1);

	/* Right state, wrong counter: also stale. */
	uint64_t wrong = pbox_swip_make(PBOX_FRAME_LOADING, pbox_swip_counter(s1) + 5);
	ck_assert_int_eq(pbox_swip_try(&s, wrong, PBOX_FRAME_HOT), PBOX_ERESTART);
	ck_assert_uint_eq(raw(&s), s1);

	ck_assert_int_eq(pbox_swip_try(&s, s1, PBOX_FRAME_HOT), 0);
	ck_assert(pbox_swip_is_hot(&s));
	ck_assert_uint_eq(pbox_swip_counter(pbox_swip_load(&s)), 2);
}
END_TEST

START_TEST(test_aba_guard)
{
	/* A clock hand cools the page and remembers (COOL, c). The page is accessed and cooled
	 * again by someone else: same state, counter c + 2. The hand's eviction claim from its
	 * old snapshot must fail. */
	pbox_swip s;
	force(&s, PBOX_FRAME_HOT, 10);
	ck_assert_int_eq(pbox_swip_try(&s, pbox_swip_load(&s), PBOX_FRAME_COOL), 0);
	uint64_t hand_saw = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_reheat(&s), 0);
	ck_assert_int_eq(pbox_swip_try(&s, pbox_swip_load(&s), PBOX_FRAME_COOL), 0);
	uint64_t now = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_state(now), pbox_swip_state(hand_saw));
	ck_assert_int_eq(pbox_swip_try(&s, hand_saw, PBOX_FRAME_EVICTING), PBOX_ERESTART);
	ck_assert_uint_eq(raw(&s), now);
	/* With the fresh snapshot the claim works. */
	ck_assert_int_eq(pbox_swip_try(&s, now, PBOX_FRAME_EVICTING), 0);
	ck_assert_uint_eq(pbox_swip_counter(pbox_swip_load(&s)), 14);
}
END_TEST

/* ---- reheat ---------------------------------------------------------------------------- */

START_TEST(test_reheat_states)
{
	pbox_swip s;

	force(&s, PBOX_FRAME_HOT, 7);
	ck_assert_int_eq(pbox_swip_reheat(&s), 0);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_HOT, 7)); /* no write */
	ck_assert(pbox_swip_is_hot(&s));

	force(&s, PBOX_FRAME_COOL, 7);
	ck_assert(!pbox_swip_is_hot(&s));
	ck_assert_int_eq(pbox_swip_reheat(&s), 0);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_HOT, 8));

	force(&s, PBOX_FRAME_EVICTED, 7);
	ck_assert_int_eq(pbox_swip_reheat(&s), PBOX_ENOTFOUND);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_EVICTED, 7));

	force(&s, PBOX_FRAME_LOADING, 7);
	ck_assert_int_eq(pbox_swip_reheat(&s), PBOX_EBUSY);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_LOADING, 7));

	force(&s, PBOX_FRAME_EVICTING, 7);
	ck_assert_int_eq(pbox_swip_reheat(&s), PBOX_EBUSY);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_EVICTING, 7));
}
END_TEST

struct reheat_race {
	pbox_swip swip;
	unsigned iters;
	pthread_barrier_t start;
	_Atomic uint64_t cools; /* successful HOT -> COOL by the cooler */
	_Atomic int bad_rc;
	_Atomic int cooler_done;
};

static void *cooler_main(void *arg)
{
	struct reheat_race *r = arg;
	pthread_barrier_wait(&r->start);
	for (unsigned i = 0; i < r->iters; i++) {
		uint64_t snap = pbox_swip_load(&r->swip);
		if (pbox_swip_state(snap) == PBOX_FRAME_HOT &&
		    pbox_swip_try(&r->swip, snap, PBOX_FRAME_COOL) == 0)
			atomic_fetch_add_explicit(&r->cools, 1, memory_order_relaxed);
	}
	atomic_store(&r->cooler_done, 1);
	return NULL;
}

static void *reheater_main(void *arg)
{
	struct reheat_race *r = arg;
	pthread_barrier_wait(&r->start);
	while (!atomic_load_explicit(&r->cooler_done, memory_order_relaxed)) {
		int rc = pbox_swip_reheat(&r->swip);
		if (rc != 0)
			atomic_store(&r->bad_rc, rc);
	}
	return NULL;
}

START_TEST(test_reheat_race)
{
	/* Only HOT <-> COOL happen: the cooler counts its transitions, re-heaters cannot. Since
	 * the two alternate, the counter must be 2 * cools (ends HOT) or 2 * cools - 1 (ends
	 * COOL): a re-heat that transitioned twice, or a lost one, breaks the parity. */
	enum { REHEATERS = 3 };
	struct reheat_race r;
	memset(&r, 0, sizeof(r));
	force(&r.swip, PBOX_FRAME_HOT, 0);
	r.iters = 20000u * pbox_test_scale();
	ck_assert_int_eq(pthread_barrier_init(&r.start, NULL, REHEATERS + 1), 0);
	pthread_t th[REHEATERS + 1];
	ck_assert_int_eq(pthread_create(&th[0], NULL, cooler_main, &r), 0);
	for (unsigned i = 1; i <= REHEATERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, reheater_main, &r), 0);
	for (unsigned i = 0; i <= REHEATERS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&r.start);

	ck_assert_int_eq(atomic_load(&r.bad_rc), 0);
	uint64_t snap = pbox_swip_load(&r.swip);
	uint64_t cools = atomic_load(&r.cools);
	ck_assert_uint_gt(cools, 0);
	if (pbox_swip_state(snap) == PBOX_FRAME_HOT)
		ck_assert_uint_eq(pbox_swip_counter(snap), 2 * cools);
	else {
		ck_assert_int_eq(pbox_swip_state(snap), PBOX_FRAME_COOL);
		ck_assert_uint_eq(pbox_swip_counter(snap), 2 * cools - 1);
	}
}
END_TEST

/* ---- finish ---------------------------------------------------------------------------- */

START_TEST(test_finish)
{
	pbox_swip s = PBOX_SWIP_INIT;
	uint64_t snap = pbox_swip_load(&s);

	/* Not an owned state: refused. */
	ck_assert_int_eq(pbox_swip_finish(&s, snap, PBOX_FRAME_LOADING), PBOX_EINVAL);
	ck_assert_uint_eq(raw(&s), 0);

	ck_assert_int_eq(pbox_swip_try(&s, snap, PBOX_FRAME_LOADING), 0);
	uint64_t owned = pbox_swip_next(snap, PBOX_FRAME_LOADING);
	/* Illegal exit from an owned state: refused, still owned. */
	ck_assert_int_eq(pbox_swip_finish(&s, owned, PBOX_FRAME_COOL), PBOX_EINVAL);
	ck_assert_int_eq(pbox_swip_finish(&s, owned, PBOX_FRAME_EVICTING), PBOX_EINVAL);
	ck_assert_uint_eq(raw(&s), owned);
	/* Read failed: back to EVICTED. */
	ck_assert_int_eq(pbox_swip_finish(&s, owned, PBOX_FRAME_EVICTED), 0);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_EVICTED, 2));

	/* Full cycle with an abandoned eviction. */
	snap = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_try(&s, snap, PBOX_FRAME_LOADING), 0);
	owned = pbox_swip_next(snap, PBOX_FRAME_LOADING);
	ck_assert_int_eq(pbox_swip_finish(&s, owned, PBOX_FRAME_HOT), 0);
	ck_assert_int_eq(pbox_swip_try(&s, pbox_swip_load(&s), PBOX_FRAME_COOL), 0);
	snap = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_try(&s, snap, PBOX_FRAME_EVICTING), 0);
	owned = pbox_swip_next(snap, PBOX_FRAME_EVICTING);
	ck_assert_int_eq(pbox_swip_finish(&s, owned, PBOX_FRAME_HOT), 0);
	ck_assert_uint_eq(raw(&s), pbox_swip_make(PBOX_FRAME_HOT, 7));
}
END_TEST

START_TEST(test_finish_detects_broken_ownership)
{
	/* Somebody moved an owned word behind the owner's back: that is a bug, and finish
	 * aborts instead of silently succeeding or failing. */
	pbox_swip s;
	force(&s, PBOX_FRAME_EVICTING, 3);
	uint64_t owned = pbox_swip_load(&s);
	ck_assert_int_eq(pbox_swip_try(&s, owned, PBOX_FRAME_HOT), 0); /* the intruder */
	fprintf(stderr, "(expected) an invariant-violation message and SIGABRT follow:\n");
	(void)pbox_swip_finish(&s, owned, PBOX_FRAME_EVICTED);
	ck_abort_msg("finish returned although the owned word had been changed");
}
END_TEST

/* ---- race ------------------------------------------------------------------------------- */

#define RACE_WORDS 4

struct race_word {
	pbox_swip swip;
	_Atomic uint64_t transitions; /* successful transitions counted by the threads */
	_Atomic unsigned owner;	      /* 0 or 1 + index of the thread owning LOADING/EVICTING */
	_Atomic uint64_t loads;	      /* LOADING claims so far (each bumps payload once) */
	uint64_t payload;	      /* plain: written by the loader, read by the evictor */
} __attribute__((aligned(64)));

struct race {
	struct race_word w[RACE_WORDS];
	unsigned iters;
	pthread_barrier_t start;
	_Atomic uint64_t illegal_refused;
	_Atomic uint64_t lost_cas;
	_Atomic uint64_t owned_seen; /* times a thread met someone else's owned state */
	_Atomic int failed;
	char why[160]; /* written once by the thread that set `failed` first */
};

struct race_thread {
	struct race *r;
	unsigned id; /* 1-based */
	pbox_rng rng;
	pthread_t thread;
};

static void race_fail(struct race *r, const char *why, uint64_t a)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&r->failed, &expected, 1))
		snprintf(r->why, sizeof(r->why), "%s (%llu)", why, (unsigned long long)a);
}

static void take_ownership(struct race *r, struct race_word *w, unsigned id)
{
	unsigned prev = atomic_exchange(&w->owner, id);
	if (prev != 0)
		race_fail(r, "two owners of one owned state; previous owner", prev);
}

static void drop_ownership(struct race *r, struct race_word *w, unsigned id)
{
	unsigned prev = atomic_exchange(&w->owner, 0);
	if (prev != id)
		race_fail(r, "owner changed while owned; found", prev);
}

/* One counted transition attempt from `snap`; returns true if this thread made it. */
static bool race_try(struct race *r, struct race_word *w, uint64_t snap, pbox_frame_state to)
{
	int rc = pbox_swip_try(&w->swip, snap, to);
	if (rc == 0) {
		atomic_fetch_add_explicit(&w->transitions, 1, memory_order_relaxed);
		return true;
	}
	if (rc != PBOX_ERESTART)
		race_fail(r, "legal transition refused", (uint64_t)-rc);
	atomic_fetch_add_explicit(&r->lost_cas, 1, memory_order_relaxed);
	return false;
}

static void race_finish(struct race *r, struct race_word *w, uint64_t owned, pbox_frame_state to,
			unsigned id)
{
	drop_ownership(r, w, id);
	int rc = pbox_swip_finish(&w->swip, owned, to);
	if (rc != 0)
		race_fail(r, "owner could not leave its state", (uint64_t)-rc);
	atomic_fetch_add_explicit(&w->transitions, 1, memory_order_relaxed);
}

static void race_step(struct race_thread *t)
{
	struct race *r = t->r;
	struct race_word *w = &r->w[pbox_rng_below(&t->rng, RACE_WORDS)];
	uint64_t snap = pbox_swip_load(&w->swip);
	unsigned dice = (unsigned)pbox_rng_below(&t->rng, 8);

	/* Now and then ask for an illegal move from what we saw: always refused. */
	if (dice == 0) {
		static const pbox_frame_state bad[PBOX_FRAME_STATE_COUNT] = {
			[PBOX_FRAME_EVICTED] = PBOX_FRAME_HOT,
			[PBOX_FRAME_LOADING] = PBOX_FRAME_COOL,
			[PBOX_FRAME_HOT] = PBOX_FRAME_EVICTING,
			[PBOX_FRAME_COOL] = PBOX_FRAME_EVICTED,
			[PBOX_FRAME_EVICTING] = PBOX_FRAME_LOADING,
		};
		if (pbox_swip_try(&w->swip, snap, bad[pbox_swip_state(snap)]) != PBOX_EINVAL)
			race_fail(r, "illegal transition not refused", snap);
		atomic_fetch_add_explicit(&r->illegal_refused, 1, memory_order_relaxed);
		return;
	}

	switch (pbox_swip_state(snap)) {
	case PBOX_FRAME_EVICTED:
		/* Fault: claim the load, "read" the page, publish it (or fail the read). */
		if (race_try(r, w, snap, PBOX_FRAME_LOADING)) {
			uint64_t owned = pbox_swip_next(snap, PBOX_FRAME_LOADING);
			take_ownership(r, w, t->id);
			w->payload++;
			atomic_fetch_add_explicit(&w->loads, 1, memory_order_relaxed);
			race_finish(r, w, owned, dice < 7 ? PBOX_FRAME_HOT : PBOX_FRAME_EVICTED,
				    t->id);
		}
		break;
	case PBOX_FRAME_HOT:
		if (dice < 5) {
			(void)race_try(r, w, snap, PBOX_FRAME_COOL); /* clock sweep */
		} else {
			/* The counter only grows, so an older snapshot can never match again. */
			uint64_t stale = pbox_swip_make(PBOX_FRAME_HOT, pbox_swip_counter(snap) - 1);
			if (pbox_swip_try(&w->swip, stale, PBOX_FRAME_COOL) != PBOX_ERESTART)
				race_fail(r, "a stale snapshot was not refused", stale);
		}
		break;
	case PBOX_FRAME_COOL:
		if (dice < 4) {
			(void)race_try(r, w, snap, PBOX_FRAME_HOT); /* access */
		} else if (race_try(r, w, snap, PBOX_FRAME_EVICTING)) {
			uint64_t owned = pbox_swip_next(snap, PBOX_FRAME_EVICTING);
			take_ownership(r, w, t->id);
			/* "Write-back": the loader's payload must be visible here, handed over
			 * through the chain of transitions on the word. */
			uint64_t loads = atomic_load_explicit(&w->loads, memory_order_relaxed);
			if (w->payload != loads)
				race_fail(r, "evictor does not see the loader's payload", w->payload);
			race_finish(r, w, owned, dice < 7 ? PBOX_FRAME_EVICTED : PBOX_FRAME_HOT,
				    t->id);
		}
		break;
	case PBOX_FRAME_LOADING:
	case PBOX_FRAME_EVICTING:
		/* Someone else's (S3): a non-owner only looks; the buffer pool would wait. */
		atomic_fetch_add_explicit(&r->owned_seen, 1, memory_order_relaxed);
		break;
	default:
		race_fail(r, "state bits hold no frame state", snap);
		break;
	}
}

static void *race_main(void *arg)
{
	struct race_thread *t = arg;
	pthread_barrier_wait(&t->r->start);
	for (unsigned i = 0; i < t->r->iters; i++)
		race_step(t);
	return NULL;
}

static void run_race(unsigned nthreads)
{
	struct race *r = aligned_alloc(64, (sizeof(*r) + 63) & ~(size_t)63);
	ck_assert_ptr_nonnull(r);
	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < RACE_WORDS; i++)
		pbox_swip_init(&r->w[i].swip);
	r->iters = 40000u * pbox_test_scale() / nthreads;
	ck_assert_int_eq(pthread_barrier_init(&r->start, NULL, nthreads), 0);

	struct race_thread *th = calloc(nthreads, sizeof(*th));
	ck_assert_ptr_nonnull(th);
	uint64_t seed = pbox_test_seed();
	for (unsigned i = 0; i < nthreads; i++) {
		th[i].r = r;
		th[i].id = i + 1;
		pbox_rng_seed(&th[i].rng, seed * 31 + nthreads * 100u + i);
		ck_assert_int_eq(pthread_create(&th[i].thread, NULL, race_main, &th[i]), 0);
	}
	for (unsigned i = 0; i < nthreads; i++)
		ck_assert_int_eq(pthread_join(th[i].thread, NULL), 0);

	uint64_t total = 0;
	for (unsigned i = 0; i < RACE_WORDS; i++)
		total += atomic_load(&r->w[i].transitions);
	fprintf(stderr,
		"swip race %u threads: %llu transitions, %llu lost CAS, %llu illegal refused, "
		"%llu owned states met\n",
		nthreads, (unsigned long long)total, (unsigned long long)atomic_load(&r->lost_cas),
		(unsigned long long)atomic_load(&r->illegal_refused),
		(unsigned long long)atomic_load(&r->owned_seen));
	ck_assert_msg(!atomic_load(&r->failed), "%s", r->why);
	for (unsigned i = 0; i < RACE_WORDS; i++) {
		struct race_word *w = &r->w[i];
		uint64_t snap = pbox_swip_load(&w->swip);
		pbox_frame_state st = pbox_swip_state(snap);
		/* Every owner finished before its thread ended. */
		ck_assert_msg(!pbox_swip_state_owned(st), "word %u left in %s", i,
			      pbox_frame_state_name(st));
		ck_assert(st == PBOX_FRAME_EVICTED || st == PBOX_FRAME_HOT ||
			  st == PBOX_FRAME_COOL);
		ck_assert_uint_eq(atomic_load(&w->owner), 0);
		ck_assert_uint_eq(pbox_swip_counter(snap), atomic_load(&w->transitions));
		ck_assert_uint_eq(w->payload, atomic_load(&w->loads));
		ck_assert_uint_gt(atomic_load(&w->loads), 0);
	}
	ck_assert_uint_gt(total, 0);
	pthread_barrier_destroy(&r->start);
	free(th);
	free(r);
}

START_TEST(test_race_2)
{
	run_race(2);
}
END_TEST

START_TEST(test_race_4)
{
	run_race(4);
}
END_TEST

START_TEST(test_race_8)
{
	run_race(8);
}
END_TEST

static Suite *swip_suite(void)
{
	Suite *s = suite_create("swip_kernel");
	TCase *tc;

	tc = tcase_create("layout");
	tcase_add_test(tc, test_init_and_encoding);
	tcase_add_test(tc, test_counter_wraps);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_test(tc, test_all_pairs);
	tcase_add_test(tc, test_out_of_range);
	suite_add_tcase(s, tc);

	tc = tcase_create("stale");
	tcase_add_test(tc, test_stale_snapshot);
	tcase_add_test(tc, test_aba_guard);
	suite_add_tcase(s, tc);

	tc = tcase_create("reheat");
	tcase_add_test(tc, test_reheat_states);
	tcase_add_test(tc, test_reheat_race);
	suite_add_tcase(s, tc);

	tc = tcase_create("finish");
	tcase_add_test(tc, test_finish);
	tcase_add_test_raise_signal(tc, test_finish_detects_broken_ownership, SIGABRT);
	suite_add_tcase(s, tc);

	tc = tcase_create("race");
	tcase_add_test(tc, test_race_2);
	tcase_add_test(tc, test_race_4);
	tcase_add_test(tc, test_race_8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	(void)pbox_test_seed();
	return pbox_test_run(swip_suite());
}
