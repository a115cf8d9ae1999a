/*
 * racy.h — private to the btree library: loads of page bytes that a writer may be changing.
 *
 * Optimistic readers (descend.c, R1) search nodes in place, without a latch, and validate the
 * page's latch version afterwards. Every value such a reader loads is bounds-checked before
 * it is used (node_read.c), but that only helps if the value checked is the value used: the
 * compiler, entitled to assume nobody else writes the page, could otherwise load a field
 * again after the check. These helpers pin each loaded value in a register (an empty asm
 * that "changes" it), so a checked value cannot be re-read, at no run-time cost.
 *
 * Under ThreadSanitizer the loads go through hybrid-latch's uninstrumented helpers
 * (pbox_latch_opt_load_u*, pbox_latch_opt_copy): TSan would otherwise report every
 * optimistic read as a race with the writer it is designed to tolerate. Writers' plain
 * stores stay instrumented. Comparisons copy through a small local buffer there.
 */
#ifndef PBOX_BT_RACY_H
#define PBOX_BT_RACY_H

#include <pbox/latch.h>

#include <stdint.h>
#include <string.h>

#ifdef PBOX_LATCH_TSAN_

static inline uint8_t rd8(const uint8_t *p)
{
	return pbox_latch_opt_load_u8(p);
}

static inline uint16_t rd16(const uint8_t *p)
{
	return pbox_latch_opt_load_u16(p);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return pbox_latch_opt_load_u32(p);
}

static inline uint64_t rd64(const uint8_t *p)
{
	return pbox_latch_opt_load_u64(p);
}

static inline void rdcopy(void *dst, const uint8_t *page_bytes, uint32_t n)
{
	if (n)
		pbox_latch_opt_copy(dst, page_bytes, n);
}

/* memcmp of n page bytes against caller memory. */
static inline int rdcmp(const uint8_t *page_bytes, const uint8_t *mem, uint32_t n)
{
	uint8_t tmp[64];
	while (n) {
		uint32_t k = n < sizeof(tmp) ? n : (uint32_t)sizeof(tmp);
		pbox_latch_opt_copy(tmp, page_bytes, k);
		int c = memcmp(tmp, mem, k);
		if (c)
			return c;
		page_bytes += k;
		mem += k;
		n -= k;
	}
	return 0;
}

#else /* !PBOX_LATCH_TSAN_ */

#define PBOX_BT_RACY_PIN_(v) __asm__("" : "+r"(v))

static inline uint8_t rd8(const uint8_t *p)
{
	uint8_t v = *(const volatile uint8_t *)p;
	return v;
}

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	PBOX_BT_RACY_PIN_(v);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	PBOX_BT_RACY_PIN_(v);
	return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	PBOX_BT_RACY_PIN_(v);
	return v;
}

static inline void rdcopy(void *dst, const uint8_t *page_bytes, uint32_t n)
{
	if (n)
		memcpy(dst, page_bytes, n);
}

/* memcmp of n page bytes against caller memory; short runs (the common case with prefix
 * truncation and heads) are compared inline, 8 bytes at a time, without a call. */
static inline int rdcmp(const uint8_t *page_bytes, const uint8_t *mem, uint32_t n)
{
	if (n > 32)
		return memcmp(page_bytes, mem, n);
	while (n >= 8) {
		uint64_t a, b;
		memcpy(&a, page_bytes, 8);
		memcpy(&b, mem, 8);
		if (a != b) {
			a = __builtin_bswap64(a);
			b = __builtin_bswap64(b);
			return a < b ? -1 : 1;
		}
		page_bytes += 8;
		mem += 8;
		n -= 8;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t a = page_bytes[i], b = mem[i];
		if (a != b)
			return a < b ? -1 : 1;
	}
	return 0;
}

#endif /* PBOX_LATCH_TSAN_ */

#endif /* PBOX_BT_RACY_H */
