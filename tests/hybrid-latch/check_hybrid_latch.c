/*
 * check_hybrid_latch.c — Check suite for pagebox::hybrid-latch.
 *
 * Test cases, one per concern:
 *   transitions  every mode change on one thread: optimistic begin/validate against
 *                exclusive and shared holds, version bumps and wrap, try variants, both
 *                upgrades, downgrade, shared-count saturation.
 *   racy_reads   pbox_latch_opt_copy / opt_load_* return exactly the bytes a plain copy
 *                returns, for every small size and alignment, without touching bytes
 *                outside the destination.
 *   parking      a thread blocked in each mode sleeps on the futex (waiters bit set, almost
 *                no CPU used) and is woken by the matching release; timed, so a lost wake-up
 *                fails the test instead of hanging it.
 *   stress       writers update a 9-word record under the exclusive latch with ordinary
 *                stores (also via optimistic upgrade and shared upgrade); optimistic readers
 *                copy it racily and validate, shared readers read it plainly. Every validated
 *                copy must be consistent and no update may be lost; 2, 4 and 8 threads.
 *                Under ThreadSanitizer this also proves the latch orders the plain accesses.
 *
 * Threads never call ck_assert (Check is not thread-safe): they record the first failure in
 * an atomic flag and a message that the main thread asserts on after joining.
 */
#define _GNU_SOURCE
#include <pbox/latch.h>

#include "pbox_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static uint64_t raw_word(const pbox_latch *l)
{
	return atomic_load(&l->word);
}

/* Poll until *flag becomes nonzero or timeout_ms passes; returns the final flag. */
static int wait_flag(_Atomic int *flag, unsigned timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!atomic_load(flag) && now_ns() < deadline)
		sleep_ms(1);
	return atomic_load(flag);
}

/* Poll until the latch's waiters bit is set (someone is about to sleep or sleeping). */
static bool wait_waiters_bit(const pbox_latch *l, unsigned timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!(raw_word(l) & PBOX_LATCH_WAITERS) && now_ns() < deadline)
		sleep_ms(1);
	return (raw_word(l) & PBOX_LATCH_WAITERS) != 0;
}

/* ---- transitions --------------------------------------------------------------------- */

START_TEST(test_init_state)
{
	pbox_latch a = PBOX_LATCH_INIT, b;
	pbox_latch_init(&b);
	ck_assert_uint_eq(raw_word(&a), 0);
	ck_assert_uint_eq(raw_word(&b), 0);
	ck_assert(!pbox_latch_is_exclusive(&a));
	ck_assert_uint_eq(pbox_latch_shared_count(&a), 0);
	ck_assert_uint_eq(pbox_latch_version(&a), 0);

	uint64_t v = 12345;
	ck_assert(pbox_latch_opt_begin(&a, &v));
	ck_assert_uint_eq(v, 0);
	ck_assert(pbox_latch_opt_validate(&a, v));
	/* Optimistic reads write nothing. */
	ck_assert_uint_eq(raw_word(&a), 0);
}
END_TEST

START_TEST(test_opt_vs_exclusive)
{
	pbox_latch l = PBOX_LATCH_INIT;
	uint64_t v0, v1, untouched = 777;

	ck_assert(pbox_latch_opt_begin(&l, &v0));
	pbox_latch_exclusive_acquire(&l);
	ck_assert(pbox_latch_is_exclusive(&l));
	/* A writer inside: begin refuses and leaves the out-parameter alone; the old snapshot
	 * no longer validates. */
	ck_assert(!pbox_latch_opt_begin(&l, &untouched));
	ck_assert_uint_eq(untouched, 777);
	ck_assert(!pbox_latch_opt_validate(&l, v0));
	pbox_latch_exclusive_release(&l);

	/* After the release the version moved by exactly one; the old snapshot stays invalid. */
	ck_assert(!pbox_latch_is_exclusive(&l));
	ck_assert_uint_eq(pbox_latch_version(&l), 1);
	ck_assert(!pbox_latch_opt_validate(&l, v0));
	ck_assert(pbox_latch_opt_begin(&l, &v1));
	ck_assert_uint_ne(v0, v1);
	ck_assert(pbox_latch_opt_validate(&l, v1));
	ck_assert_uint_eq(pbox_latch_opt_begin_wait(&l), v1);

	/* Every release bumps once more. */
	for (unsigned i = 0; i < 10; i++) {
		ck_assert(pbox_latch_exclusive_try(&l));
		pbox_latch_exclusive_release(&l);
	}
	ck_assert_uint_eq(pbox_latch_version(&l), 11);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)11 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_opt_vs_shared)
{
	pbox_latch l = PBOX_LATCH_INIT;
	uint64_t v, v2;

	ck_assert(pbox_latch_opt_begin(&l, &v));
	pbox_latch_shared_acquire(&l);
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 1);
	/* Shared holders do not disturb optimistic readers... */
	ck_assert(pbox_latch_opt_validate(&l, v));
	ck_assert(pbox_latch_opt_begin(&l, &v2));
	ck_assert_uint_eq(v2, v);
	ck_assert(pbox_latch_shared_try(&l));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 2);
	/* ...but exclude writers. */
	ck_assert(!pbox_latch_exclusive_try(&l));
	ck_assert(!pbox_latch_try_upgrade(&l, v));
	pbox_latch_shared_release(&l);
	pbox_latch_shared_release(&l);
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 0);
	/* Shared holds never bump the version. */
	ck_assert(pbox_latch_opt_validate(&l, v));
	ck_assert_uint_eq(pbox_latch_version(&l), 0);
	ck_assert_uint_eq(raw_word(&l), 0);
}
END_TEST

START_TEST(test_exclusive_excludes)
{
	pbox_latch l = PBOX_LATCH_INIT;
	pbox_latch_exclusive_acquire(&l);
	ck_assert(!pbox_latch_exclusive_try(&l));
	ck_assert(!pbox_latch_shared_try(&l));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 0);
	pbox_latch_exclusive_release(&l);
	ck_assert(pbox_latch_shared_try(&l));
	pbox_latch_shared_release(&l);
	ck_assert(pbox_latch_exclusive_try(&l));
	pbox_latch_exclusive_release(&l);
	ck_assert_uint_eq(pbox_latch_version(&l), 2);
}
END_TEST

START_TEST(test_try_upgrade)
{
	pbox_latch l = PBOX_LATCH_INIT;
	uint64_t v, stale;

	/* Succeeds from the current version; the holder is then exclusive. */
	ck_assert(pbox_latch_opt_begin(&l, &v));
	ck_assert(pbox_latch_try_upgrade(&l, v));
	ck_assert(pbox_latch_is_exclusive(&l));
	ck_assert(!pbox_latch_try_upgrade(&l, v)); /* held exclusively */
	pbox_latch_exclusive_release(&l);
	ck_assert_uint_eq(pbox_latch_version(&l), 1);

	/* Fails once the version moved. */
	stale = v;
	ck_assert(!pbox_latch_try_upgrade(&l, stale));
	ck_assert(!pbox_latch_is_exclusive(&l));

	/* Fails while someone holds it shared, succeeds after. */
	ck_assert(pbox_latch_opt_begin(&l, &v));
	pbox_latch_shared_acquire(&l);
	ck_assert(!pbox_latch_try_upgrade(&l, v));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 1);
	pbox_latch_shared_release(&l);
	ck_assert(pbox_latch_try_upgrade(&l, v));
	pbox_latch_exclusive_release(&l);

	/* The waiters bit does not make an upgrade fail (it is not part of the snapshot). */
	ck_assert(pbox_latch_opt_begin(&l, &v));
	atomic_fetch_or(&l.word, PBOX_LATCH_WAITERS);
	ck_assert(pbox_latch_opt_validate(&l, v));
	ck_assert(pbox_latch_try_upgrade(&l, v));
	pbox_latch_exclusive_release(&l); /* wakes nobody, clears the bit */
	ck_assert_uint_eq(raw_word(&l) & PBOX_LATCH_WAITERS, 0);
}
END_TEST

START_TEST(test_shared_try_upgrade)
{
	pbox_latch l = PBOX_LATCH_INIT;
	pbox_latch_shared_acquire(&l);
	pbox_latch_shared_acquire(&l);
	ck_assert(!pbox_latch_shared_try_upgrade(&l)); /* two holders */
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 2);
	pbox_latch_shared_release(&l);
	ck_assert(pbox_latch_shared_try_upgrade(&l));
	ck_assert(pbox_latch_is_exclusive(&l));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 0);
	pbox_latch_exclusive_release(&l);
	ck_assert_uint_eq(pbox_latch_version(&l), 1);
	ck_assert(!pbox_latch_shared_try_upgrade(&l)); /* no holder at all */
	ck_assert_uint_eq(raw_word(&l), (uint64_t)1 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_downgrade)
{
	pbox_latch l = PBOX_LATCH_INIT;
	uint64_t v0, v1;
	ck_assert(pbox_latch_opt_begin(&l, &v0));
	pbox_latch_exclusive_acquire(&l);
	pbox_latch_exclusive_downgrade(&l);
	ck_assert(!pbox_latch_is_exclusive(&l));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 1);
	ck_assert_uint_eq(pbox_latch_version(&l), 1);
	ck_assert(!pbox_latch_opt_validate(&l, v0)); /* the writer may have changed data */
	ck_assert(pbox_latch_opt_begin(&l, &v1));
	ck_assert(!pbox_latch_exclusive_try(&l));
	ck_assert(pbox_latch_shared_try(&l));
	pbox_latch_shared_release(&l);
	pbox_latch_shared_release(&l);
	ck_assert(pbox_latch_opt_validate(&l, v1));
	ck_assert(pbox_latch_exclusive_try(&l));
	pbox_latch_exclusive_release(&l);
}
END_TEST

START_TEST(test_version_wraps)
{
	pbox_latch l;
	/* Largest version: the next release wraps the 48-bit counter to 0 and must not spill
	 * into the flag bits. */
	atomic_init(&l.word, PBOX_LATCH_VERSION_MASK);
	ck_assert_uint_eq(pbox_latch_version(&l), (UINT64_C(1) << 48) - 1);
	uint64_t v;
	ck_assert(pbox_latch_opt_begin(&l, &v));
	pbox_latch_exclusive_acquire(&l);
	pbox_latch_exclusive_release(&l);
	ck_assert_uint_eq(raw_word(&l), 0);
	ck_assert(!pbox_latch_opt_validate(&l, v));
	ck_assert(pbox_latch_shared_try(&l));
	pbox_latch_shared_release(&l);
	ck_assert_uint_eq(raw_word(&l), 0);
}
END_TEST

START_TEST(test_shared_saturation)
{
	pbox_latch l = PBOX_LATCH_INIT;
	for (unsigned i = 0; i < PBOX_LATCH_SHARED_MAX; i++)
		pbox_latch_shared_acquire(&l);
	ck_assert_uint_eq(pbox_latch_shared_count(&l), PBOX_LATCH_SHARED_MAX);
	/* The count never overflows into the version. */
	ck_assert(!pbox_latch_shared_try(&l));
	ck_assert_uint_eq(pbox_latch_version(&l), 0);
	pbox_latch_shared_release(&l);
	ck_assert(pbox_latch_shared_try(&l));
	for (unsigned i = 0; i < PBOX_LATCH_SHARED_MAX; i++)
		pbox_latch_shared_release(&l);
	ck_assert_uint_eq(raw_word(&l), 0);
}
END_TEST

/* ---- racy reads ---------------------------------------------------------------------- */

START_TEST(test_opt_copy_matches_memcpy)
{
	unsigned char src[96] __attribute__((aligned(16)));
	unsigned char dst[96 + 16] __attribute__((aligned(16)));
	unsigned char want[96 + 16];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 37 + 11);

	for (size_t so = 0; so < 8; so++) {
		for (size_t dof = 0; dof < 8; dof++) {
			for (size_t n = 0; n <= 80; n++) {
				memset(dst, 0xA5, sizeof(dst));
				memset(want, 0xA5, sizeof(want));
				memcpy(want + dof, src + so, n);
				pbox_latch_opt_copy(dst + dof, src + so, n);
				if (memcmp(dst, want, sizeof(dst)) != 0)
					ck_abort_msg("opt_copy mismatch: src+%zu dst+%zu n=%zu", so,
						     dof, n);
			}
		}
	}
}
END_TEST

START_TEST(test_opt_loads)
{
	unsigned char buf[32] __attribute__((aligned(16)));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(0xF1 - i * 7);
	for (size_t off = 0; off < 16; off++) {
		uint64_t w64;
		uint32_t w32;
		uint16_t w16;
		memcpy(&w64, buf + off, 8);
		memcpy(&w32, buf + off, 4);
		memcpy(&w16, buf + off, 2);
		ck_assert_uint_eq(pbox_latch_opt_load_u64(buf + off), w64);
		ck_assert_uint_eq(pbox_latch_opt_load_u32(buf + off), w32);
		ck_assert_uint_eq(pbox_latch_opt_load_u16(buf + off), w16);
		ck_assert_uint_eq(pbox_latch_opt_load_u8(buf + off), buf[off]);
	}
}
END_TEST

/* ---- parking ------------------------------------------------------------------------- */

enum wait_kind { WAIT_EXCLUSIVE, WAIT_SHARED, WAIT_OPT };

struct waiter {
	pbox_latch *latch;
	enum wait_kind kind;
	_Atomic int acquired;
	uint64_t opt_version; /* written by the waiter before `acquired` (release) */
	pthread_t thread;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	switch (w->kind) {
	case WAIT_EXCLUSIVE:
		pbox_latch_exclusive_acquire(w->latch);
		atomic_store(&w->acquired, 1);
		pbox_latch_exclusive_release(w->latch);
		break;
	case WAIT_SHARED:
		pbox_latch_shared_acquire(w->latch);
		atomic_store(&w->acquired, 1);
		pbox_latch_shared_release(w->latch);
		break;
	case WAIT_OPT:
		w->opt_version = pbox_latch_opt_begin_wait(w->latch);
		atomic_store(&w->acquired, 1);
		break;
	}
	return NULL;
}

static void waiter_start(struct waiter *w, pbox_latch *l, enum wait_kind kind)
{
	w->latch = l;
	w->kind = kind;
	atomic_init(&w->acquired, 0);
	w->opt_version = ~(uint64_t)0;
	ck_assert_int_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static uint64_t thread_cpu_ns(pthread_t t)
{
	clockid_t cid;
	struct timespec ts;
	ck_assert_int_eq(pthread_getcpuclockid(t, &cid), 0);
	ck_assert_int_eq(clock_gettime(cid, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The waiter is blocked: the waiters bit appears, it has not acquired, and while it waits it
 * burns (almost) no CPU, i.e. it sleeps in the kernel instead of spinning. */
static void assert_parked(struct waiter *w)
{
	ck_assert_msg(wait_waiters_bit(w->latch, 5000), "waiter never set the waiters bit");
	sleep_ms(20);
	uint64_t c0 = thread_cpu_ns(w->thread);
	sleep_ms(200);
	uint64_t c1 = thread_cpu_ns(w->thread);
	ck_assert_msg(!atomic_load(&w->acquired), "waiter got through a held latch");
	ck_assert_msg(c1 - c0 < 40u * 1000000u, "blocked waiter used %llu ms of CPU in 200 ms",
		      (unsigned long long)((c1 - c0) / 1000000u));
}

static void assert_woken(struct waiter *w)
{
	ck_assert_msg(wait_flag(&w->acquired, 10000), "waiter was not woken within 10 s");
	ck_assert_int_eq(pthread_join(w->thread, NULL), 0);
}

START_TEST(test_park_exclusive_on_exclusive)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	pbox_latch_exclusive_acquire(&l);
	waiter_start(&w, &l, WAIT_EXCLUSIVE);
	assert_parked(&w);
	pbox_latch_exclusive_release(&l);
	assert_woken(&w);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)2 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_park_shared_on_exclusive)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	pbox_latch_exclusive_acquire(&l);
	waiter_start(&w, &l, WAIT_SHARED);
	assert_parked(&w);
	pbox_latch_exclusive_release(&l);
	assert_woken(&w);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)1 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_park_opt_on_exclusive)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	pbox_latch_exclusive_acquire(&l);
	waiter_start(&w, &l, WAIT_OPT);
	assert_parked(&w);
	pbox_latch_exclusive_release(&l);
	assert_woken(&w);
	ck_assert_uint_eq(w.opt_version, (uint64_t)1 << PBOX_LATCH_VERSION_SHIFT);
	ck_assert(pbox_latch_opt_validate(&l, w.opt_version));
	ck_assert_uint_eq(raw_word(&l) & PBOX_LATCH_WAITERS, 0);
}
END_TEST

START_TEST(test_park_exclusive_on_shared)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	pbox_latch_shared_acquire(&l);
	pbox_latch_shared_acquire(&l);
	waiter_start(&w, &l, WAIT_EXCLUSIVE);
	assert_parked(&w);
	/* Not the last holder: the writer must stay blocked. */
	pbox_latch_shared_release(&l);
	sleep_ms(50);
	ck_assert(!atomic_load(&w.acquired));
	pbox_latch_shared_release(&l);
	assert_woken(&w);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)1 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_park_shared_on_saturation)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	for (unsigned i = 0; i < PBOX_LATCH_SHARED_MAX; i++)
		pbox_latch_shared_acquire(&l);
	waiter_start(&w, &l, WAIT_SHARED);
	assert_parked(&w);
	pbox_latch_shared_release(&l);
	assert_woken(&w);
	for (unsigned i = 1; i < PBOX_LATCH_SHARED_MAX; i++)
		pbox_latch_shared_release(&l);
	ck_assert_uint_eq(raw_word(&l), 0);
}
END_TEST

START_TEST(test_park_downgrade_wakes_readers)
{
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w;
	pbox_latch_exclusive_acquire(&l);
	waiter_start(&w, &l, WAIT_SHARED);
	assert_parked(&w);
	pbox_latch_exclusive_downgrade(&l);
	assert_woken(&w);
	pbox_latch_shared_release(&l);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)1 << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

START_TEST(test_park_herd)
{
	/* Several sleepers of mixed kinds behind one writer: one release must let all of them
	 * through eventually (the exclusive ones one after another). */
	enum { N = 6 };
	pbox_latch l = PBOX_LATCH_INIT;
	struct waiter w[N];
	pbox_latch_exclusive_acquire(&l);
	for (unsigned i = 0; i < N; i++)
		waiter_start(&w[i], &l, (enum wait_kind)(i % 3));
	ck_assert(wait_waiters_bit(&l, 5000));
	sleep_ms(100);
	for (unsigned i = 0; i < N; i++)
		ck_assert(!atomic_load(&w[i].acquired));
	pbox_latch_exclusive_release(&l);
	for (unsigned i = 0; i < N; i++)
		assert_woken(&w[i]);
	ck_assert(!pbox_latch_is_exclusive(&l));
	ck_assert_uint_eq(pbox_latch_shared_count(&l), 0);
	unsigned writers = 0;
	for (unsigned i = 0; i < N; i++)
		writers += w[i].kind == WAIT_EXCLUSIVE;
	/* Our release plus one per exclusive waiter; nobody else touched the version. */
	ck_assert_uint_eq(pbox_latch_version(&l), 1 + writers);
	ck_assert_uint_eq(raw_word(&l), (uint64_t)(1 + writers) << PBOX_LATCH_VERSION_SHIFT);
}
END_TEST

/* ---- stress -------------------------------------------------------------------------- */

#define REC_WORDS 8

/* The protected record: all words equal the update count, `check` is derived from it. */
struct record {
	uint64_t w[REC_WORDS];
	uint64_t check;
};

static uint64_t rec_check(uint64_t c)
{
	return (c * 0x9E3779B97F4A7C15ULL) ^ 0x5DEECE66DULL;
}

static bool rec_consistent(const struct record *r)
{
	for (unsigned i = 1; i < REC_WORDS; i++)
		if (r->w[i] != r->w[0])
			return false;
	return r->check == rec_check(r->w[0]);
}

struct stress {
	/* The latch and the record it protects share a cache line on purpose (worst case for
	 * readers: every writer store invalidates the line they validate against). */
	pbox_latch latch;
	struct record rec; /* protected by latch */
	unsigned writer_iters;	/* minimum updates per writer */
	uint64_t busy_target;	/* writers go on until readers validated this many... */
	uint64_t deadline_ns;	/* ...or until this time (a slow machine stays bounded) */
	unsigned min_reads;
	pthread_barrier_t start;
	_Atomic unsigned writers_left;
	_Atomic uint64_t updates;	  /* successful record updates, all writers */
	_Atomic uint64_t validated;	  /* validated optimistic copies, all readers */
	_Atomic uint64_t validated_busy;  /* ...of which while writers were still running */
	_Atomic uint64_t failed_validate; /* optimistic attempts that had to restart */
	_Atomic uint64_t shared_reads;
	_Atomic uint64_t upgrades;	  /* updates done through try_upgrade / shared upgrade */
	_Atomic int failed;
	char why[160]; /* written once by the thread that set `failed` first */
};

struct stress_thread {
	struct stress *st;
	unsigned index;
	pbox_rng rng;
	pthread_t thread;
};

static void stress_fail(struct stress *st, const char *why, uint64_t a, uint64_t b)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&st->failed, &expected, 1))
		snprintf(st->why, sizeof(st->why), "%s (%llu vs %llu)", why,
			 (unsigned long long)a, (unsigned long long)b);
}

/* Under the exclusive latch: check and advance the record with ordinary loads/stores. */
static void rec_advance(struct stress *st, uint64_t expect_count, bool check_expect)
{
	struct record *r = &st->rec;
	if (!rec_consistent(r))
		stress_fail(st, "writer found a torn record", r->w[0], r->check);
	if (check_expect && r->w[0] != expect_count)
		stress_fail(st, "upgrade succeeded but the record moved", r->w[0], expect_count);
	uint64_t c = r->w[0] + 1;
	for (unsigned i = 0; i < REC_WORDS; i++)
		r->w[i] = c;
	r->check = rec_check(c);
	atomic_fetch_add_explicit(&st->updates, 1, memory_order_relaxed);
}

static void *writer_main(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *st = t->st;
	pthread_barrier_wait(&st->start);
	/* At least writer_iters updates; then continue until the readers have validated enough
	 * copies while writes were going on (so the test really exercises overlap), bounded by
	 * the deadline. */
	for (unsigned it = 0;; it++) {
		if (it >= st->writer_iters &&
		    (atomic_load_explicit(&st->validated_busy, memory_order_relaxed) >=
			     st->busy_target ||
		     (it % 64 == 0 && now_ns() > st->deadline_ns)))
			break;
		switch (pbox_rng_below(&t->rng, 4)) {
		case 0: /* plain exclusive */
			pbox_latch_exclusive_acquire(&st->latch);
			rec_advance(st, 0, false);
			pbox_latch_exclusive_release(&st->latch);
			break;
		case 1: { /* optimistic read, then upgrade if nothing changed */
			bool done = false;
			for (unsigned r = 0; r < PBOX_LATCH_MAX_OPT_RESTARTS && !done; r++) {
				uint64_t v = pbox_latch_opt_begin_wait(&st->latch);
				uint64_t c = pbox_latch_opt_load_u64(&st->rec.w[0]);
				if (pbox_latch_try_upgrade(&st->latch, v)) {
					rec_advance(st, c, true);
					pbox_latch_exclusive_release(&st->latch);
					atomic_fetch_add_explicit(&st->upgrades, 1,
								  memory_order_relaxed);
					done = true;
				}
			}
			if (!done) {
				pbox_latch_exclusive_acquire(&st->latch);
				rec_advance(st, 0, false);
				pbox_latch_exclusive_release(&st->latch);
			}
			break;
		}
		case 2: /* shared read, upgrade if alone */
			pbox_latch_shared_acquire(&st->latch);
			if (!rec_consistent(&st->rec))
				stress_fail(st, "torn record under shared latch", st->rec.w[0],
					    st->rec.check);
			if (pbox_latch_shared_try_upgrade(&st->latch)) {
				rec_advance(st, 0, false);
				pbox_latch_exclusive_release(&st->latch);
				atomic_fetch_add_explicit(&st->upgrades, 1, memory_order_relaxed);
			} else {
				pbox_latch_shared_release(&st->latch);
				pbox_latch_exclusive_acquire(&st->latch);
				rec_advance(st, 0, false);
				pbox_latch_exclusive_release(&st->latch);
			}
			break;
		default: /* try, else wait */
			if (!pbox_latch_exclusive_try(&st->latch))
				pbox_latch_exclusive_acquire(&st->latch);
			rec_advance(st, 0, false);
			pbox_latch_exclusive_release(&st->latch);
			break;
		}
	}
	atomic_fetch_sub(&st->writers_left, 1);
	return NULL;
}

/* One read following the progress rule; returns the count it read (consistent). */
static uint64_t read_once(struct stress *st, pbox_rng *rng, bool shared_only)
{
	struct record copy;
	if (!shared_only) {
		for (unsigned r = 0; r < PBOX_LATCH_MAX_OPT_RESTARTS; r++) {
			uint64_t v;
			if (pbox_rng_below(rng, 2)) {
				v = pbox_latch_opt_begin_wait(&st->latch);
			} else if (!pbox_latch_opt_begin(&st->latch, &v)) {
				atomic_fetch_add_explicit(&st->failed_validate, 1,
							  memory_order_relaxed);
				continue;
			}
			pbox_latch_opt_copy(&copy, &st->rec, sizeof(copy));
			if (pbox_latch_opt_validate(&st->latch, v)) {
				bool busy = atomic_load_explicit(&st->writers_left,
								 memory_order_relaxed) != 0;
				if (!rec_consistent(&copy))
					stress_fail(st, "validated optimistic copy is torn",
						    copy.w[0], copy.w[REC_WORDS - 1]);
				atomic_fetch_add_explicit(&st->validated, 1, memory_order_relaxed);
				if (busy)
					atomic_fetch_add_explicit(&st->validated_busy, 1,
								  memory_order_relaxed);
				return copy.w[0];
			}
			atomic_fetch_add_explicit(&st->failed_validate, 1, memory_order_relaxed);
		}
	}
	/* Progress fallback: shared mode, ordinary loads. */
	pbox_latch_shared_acquire(&st->latch);
	copy = st->rec;
	pbox_latch_shared_release(&st->latch);
	if (!rec_consistent(&copy))
		stress_fail(st, "record torn under shared latch", copy.w[0], copy.check);
	atomic_fetch_add_explicit(&st->shared_reads, 1, memory_order_relaxed);
	return copy.w[0];
}

static void *reader_main(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *st = t->st;
	bool shared_only = t->index % 3 == 2;
	uint64_t last = 0;
	pthread_barrier_wait(&st->start);
	for (unsigned n = 0;; n++) {
		/* Every 16th read goes through shared mode even for optimistic readers. */
		uint64_t c = read_once(st, &t->rng, shared_only || n % 16 == 15);
		/* Linearizability: validated values never go backwards for one reader. */
		if (c < last)
			stress_fail(st, "reader saw the record go backwards", c, last);
		last = c;
		if (n >= st->min_reads && atomic_load(&st->writers_left) == 0)
			break;
	}
	return NULL;
}

static void run_stress(unsigned nthreads)
{
	unsigned scale = pbox_test_scale();
	unsigned nwriters = nthreads / 3 > 0 ? nthreads / 3 : 1;
	struct stress *st = aligned_alloc(64, (sizeof(*st) + 63) & ~(size_t)63);
	ck_assert_ptr_nonnull(st);
	memset(st, 0, sizeof(*st));
	pbox_latch_init(&st->latch);
	st->rec.check = rec_check(0);
	st->writer_iters = 10000u * scale / nwriters;
	st->busy_target = 2000u * scale;
	st->deadline_ns = now_ns() + 3000000000ull * scale;
	st->min_reads = 500;
	atomic_init(&st->writers_left, nwriters);
	ck_assert_int_eq(pthread_barrier_init(&st->start, NULL, nthreads), 0);

	struct stress_thread *th = calloc(nthreads, sizeof(*th));
	ck_assert_ptr_nonnull(th);
	uint64_t seed = pbox_test_seed();
	for (unsigned i = 0; i < nthreads; i++) {
		th[i].st = st;
		th[i].index = i;
		pbox_rng_seed(&th[i].rng, seed + nthreads * 1000u + i);
		ck_assert_int_eq(pthread_create(&th[i].thread, NULL,
						i < nwriters ? writer_main : reader_main, &th[i]),
				 0);
	}
	for (unsigned i = 0; i < nthreads; i++)
		ck_assert_int_eq(pthread_join(th[i].thread, NULL), 0);

	fprintf(stderr,
		"latch stress %u threads (%u writers): updates %llu (upgrades %llu), validated "
		"%llu (%llu during writes), restarts %llu, shared reads %llu\n",
		nthreads, nwriters, (unsigned long long)atomic_load(&st->updates),
		(unsigned long long)atomic_load(&st->upgrades),
		(unsigned long long)atomic_load(&st->validated),
		(unsigned long long)atomic_load(&st->validated_busy),
		(unsigned long long)atomic_load(&st->failed_validate),
		(unsigned long long)atomic_load(&st->shared_reads));
	ck_assert_msg(!atomic_load(&st->failed), "%s", st->why);
	/* No lost update: mutual exclusion held for every path into exclusive mode. */
	uint64_t updates = atomic_load(&st->updates);
	ck_assert_uint_ge(updates, (uint64_t)nwriters * st->writer_iters);
	ck_assert_uint_eq(st->rec.w[0], updates);
	ck_assert(rec_consistent(&st->rec));
	/* The version counted every exclusive release. */
	ck_assert_uint_eq(pbox_latch_version(&st->latch), updates);
	ck_assert_uint_eq(raw_word(&st->latch) & ~PBOX_LATCH_VERSION_MASK, 0);
	/* Optimistic reads did validate, also while writers were active. */
	ck_assert_uint_gt(atomic_load(&st->validated), 0);
	ck_assert_uint_gt(atomic_load(&st->validated_busy), 0);
	ck_assert_uint_gt(atomic_load(&st->shared_reads), 0);
	pthread_barrier_destroy(&st->start);
	free(th);
	free(st);
}

START_TEST(test_stress_2)
{
	run_stress(2);
}
END_TEST

START_TEST(test_stress_4)
{
	run_stress(4);
}
END_TEST

START_TEST(test_stress_8)
{
	run_stress(8);
}
END_TEST

static Suite *latch_suite(void)
{
	Suite *s = suite_create("hybrid_latch");
	TCase *tc;

	tc = tcase_create("transitions");
	tcase_add_test(tc, test_init_state);
	tcase_add_test(tc, test_opt_vs_exclusive);
	tcase_add_test(tc, test_opt_vs_shared);
	tcase_add_test(tc, test_exclusive_excludes);
	tcase_add_test(tc, test_try_upgrade);
	tcase_add_test(tc, test_shared_try_upgrade);
	tcase_add_test(tc, test_downgrade);
	tcase_add_test(tc, test_version_wraps);
	tcase_add_test(tc, test_shared_saturation);
	suite_add_tcase(s, tc);

	tc = tcase_create("racy_reads");
	tcase_add_test(tc, test_opt_copy_matches_memcpy);
	tcase_add_test(tc, test_opt_loads);
	suite_add_tcase(s, tc);

	tc = tcase_create("parking");
	tcase_add_test(tc, test_park_exclusive_on_exclusive);
	tcase_add_test(tc, test_park_shared_on_exclusive);
	tcase_add_test(tc, test_park_opt_on_exclusive);
	tcase_add_test(tc, test_park_exclusive_on_shared);
	tcase_add_test(tc, test_park_shared_on_saturation);
	tcase_add_test(tc, test_park_downgrade_wakes_readers);
	tcase_add_test(tc, test_park_herd);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	tcase_add_test(tc, test_stress_2);
	tcase_add_test(tc, test_stress_4);
	tcase_add_test(tc, test_stress_8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	(void)pbox_test_seed();
	return pbox_test_run(latch_suite());
}
