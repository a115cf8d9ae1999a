/*
 * pbox/types.h — the vocabulary every pagebox library shares.
 *
 * Page ids, log sequence numbers, the frame (residency) states of the buffer pool, and the
 * small set of compiler helpers the libraries use. Nothing here allocates or blocks.
 */
#ifndef PBOX_TYPES_H
#define PBOX_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <pbox/config.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A page id: page p of a store lives at byte offset p * page_size of its data file and at
 * base + p * page_size of the buffer pool's reservation. Pages 0 and 1 are the superblocks. */
typedef uint64_t pbox_pid;
#define PBOX_PID_NONE UINT64_MAX

/* A log sequence number: a byte offset in the write-ahead log. 0 means "no LSN" (the log
 * starts at a positive offset), so a page stamped 0 has never been logged. */
typedef uint64_t pbox_lsn;
#define PBOX_LSN_NONE ((pbox_lsn)0)

/* Residency of one page in the buffer pool (the swip states of ARCHITECTURE §5):
 *
 *   EVICTED --fault: LOADING, read + verify--> HOT --clock sweep--> COOL --access--> HOT
 *   COOL --sweep again: EVICTING, written back if dirty, memory released--> EVICTED
 *
 * LOADING and EVICTING are owned by exactly one thread (the faulting thread, the evictor);
 * every other thread that meets them waits or restarts. The swip-kernel encodes these values
 * in its swip word; they must stay below 8. */
typedef enum pbox_frame_state {
	PBOX_FRAME_EVICTED = 0,
	PBOX_FRAME_LOADING = 1,
	PBOX_FRAME_HOT = 2,
	PBOX_FRAME_COOL = 3,
	PBOX_FRAME_EVICTING = 4,
} pbox_frame_state;
#define PBOX_FRAME_STATE_COUNT 5

/* The name of a frame state ("HOT", ...), or "INVALID" for a value outside the enum. */
const char *pbox_frame_state_name(int state);

/* ---- compiler helpers --------------------------------------------------------------- */
#define PBOX_LIKELY(x) __builtin_expect(!!(x), 1)
#define PBOX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PBOX_CACHELINE 64
/* on public functions whose ignored result loses an error (a commit, a sync) */
#define PBOX_NODISCARD __attribute__((warn_unused_result))
#define PBOX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PBOX_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

/* Internal invariant checks: compiled in by the diagnostic build (PBOX_DIAGNOSTIC=ON) only.
 * They never guard against bad input — that is an error code — only against our own bugs. */
void pbox_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#if PBOX_DIAGNOSTIC
#define PBOX_ASSERT(x) ((x) ? (void)0 : pbox_assert_fail(#x, __FILE__, __LINE__))
#else
#define PBOX_ASSERT(x) ((void)0)
#endif

/* A monotonic clock in nanoseconds (CLOCK_MONOTONIC), for durations and deadlines. */
static inline uint64_t pbox_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifdef __cplusplus
}
#endif
#endif /* PBOX_TYPES_H */
