/*
 * latch_racy.c — the one place where protected bytes are read without a latch held.
 *
 * Optimistic readers copy bytes that a writer may be changing (ARCHITECTURE §4). To keep that
 * a well-defined hardware race instead of C11 undefined behaviour, and to keep
 * ThreadSanitizer quiet without hiding real races elsewhere:
 *   - every load here is a relaxed __atomic load (see RACY_LOAD for Clang's TSan build):
 *     8-byte loads where the source is 8-byte aligned (never torn on the architectures we
 *     support), single-byte loads elsewhere;
 *   - the functions carry no_sanitize("thread") and live in their own translation unit, so
 *     they are neither instrumented nor inlined into instrumented code;
 *   - the loops are written with atomic loads, which the compiler may not merge into a
 *     memcpy call (TSan intercepts memcpy and would report the race);
 *   - AddressSanitizer still checks every access, so an out-of-bounds optimistic read is
 *     caught in the ASan build.
 * Stores go to the caller's private destination and need no ordering.
 *
 * Invariants: none kept here; the caller validates the latch version afterwards (the acquire
 * fence in pbox_latch_opt_validate orders all loads made here before the re-read of the
 * word).
 */
#include <pbox/latch.h>

#include <stdint.h>

#define NO_TSAN __attribute__((no_sanitize("thread")))

/*
 * RACY_LOAD(p): one relaxed load of *p that ThreadSanitizer does not see. GCC leaves atomic
 * builtins uninstrumented in a no_sanitize("thread") function; Clang still instruments them
 * (and would then report the atomic load racing with the writer's plain store), but not
 * volatile accesses. So Clang's TSan build uses a volatile load, which compiles to the same
 * single machine load for the naturally aligned sizes used here.
 */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PBOX_RACY_VOLATILE 1
#endif
#endif
#ifdef PBOX_RACY_VOLATILE
#define RACY_LOAD(p) (*(const volatile __typeof__(*(p)) *)(p))
#else
#define RACY_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#endif

/* An 8-byte store to a destination of any alignment. */
typedef uint64_t u64_any_align __attribute__((aligned(1), may_alias));

static inline NO_TSAN uint8_t load8(const unsigned char *p)
{
	return RACY_LOAD(p);
}

NO_TSAN void pbox_latch_opt_copy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n > 0 && ((uintptr_t)s & 7u) != 0) {
		*d++ = load8(s++);
		n--;
	}
	while (n >= 8) {
		uint64_t v = RACY_LOAD((const uint64_t *)(const void *)s);
		*(u64_any_align *)(void *)d = v;
		d += 8;
		s += 8;
		n -= 8;
	}
	while (n > 0) {
		*d++ = load8(s++);
		n--;
	}
}

/* Assemble an unaligned value in memory order (the same bytes a plain load would see). */
#define BYTEWISE(type, p)                                                                     \
	do {                                                                                  \
		union {                                                                       \
			type v;                                                               \
			unsigned char b[sizeof(type)];                                        \
		} u_;                                                                         \
		const unsigned char *s_ = (p);                                                \
		for (size_t i_ = 0; i_ < sizeof(type); i_++)                                  \
			u_.b[i_] = load8(s_ + i_);                                            \
		return u_.v;                                                                  \
	} while (0)

NO_TSAN uint64_t pbox_latch_opt_load_u64(const void *p)
{
	if (((uintptr_t)p & 7u) == 0)
		return RACY_LOAD((const uint64_t *)p);
	BYTEWISE(uint64_t, p);
}

NO_TSAN uint32_t pbox_latch_opt_load_u32(const void *p)
{
	if (((uintptr_t)p & 3u) == 0)
		return RACY_LOAD((const uint32_t *)p);
	BYTEWISE(uint32_t, p);
}

NO_TSAN uint16_t pbox_latch_opt_load_u16(const void *p)
{
	if (((uintptr_t)p & 1u) == 0)
		return RACY_LOAD((const uint16_t *)p);
	BYTEWISE(uint16_t, p);
}

NO_TSAN uint8_t pbox_latch_opt_load_u8(const void *p)
{
	return load8(p);
}
