/*
 * pbox/crc32c.h — CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * pbox_crc32c() uses the SSE4.2 crc32 instruction (three interleaved streams for large
 * buffers) when the CPU has it, chosen once at first use, and a portable slicing-by-8 table
 * otherwise. Both give identical results; the test suite checks them against each other and
 * against the standard vectors ("123456789" -> 0xE3069283).
 *
 * Chaining: pass 0 to start; pass a previous result to continue over the next bytes:
 *   pbox_crc32c(pbox_crc32c(0, a, n), b, m) == pbox_crc32c(0, a||b, n + m)
 */
#ifndef PBOX_CRC32C_H
#define PBOX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint32_t pbox_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable slicing-by-8 implementation (same results, any CPU). */
uint32_t pbox_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* A byte-at-a-time table-driven implementation: the baseline of pbox-bench-crc. */
uint32_t pbox_crc32c_bytewise(uint32_t crc, const void *buf, size_t len);

/* "sse4.2" or "portable": what pbox_crc32c() uses on this CPU. */
const char *pbox_crc32c_impl(void);

#ifdef __cplusplus
}
#endif
#endif
