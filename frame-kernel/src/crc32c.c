/*
 * crc32c.c — CRC32C, hardware-accelerated where the CPU allows.
 *
 * Three implementations with identical results:
 *   bytewise   one 256-entry table, one byte per step (the benchmark's baseline);
 *   portable   slicing-by-8: eight tables, eight bytes per step, any CPU;
 *   sse4.2     the crc32 instruction. A single crc32q chain is bound by the instruction's
 *              3-cycle latency, so long buffers run three independent chains over three
 *              adjacent blocks and merge them: the raw CRC register is linear, so
 *              reg(A||B) = reg(A) * x^(8|B|) mod P  xor  reg(B started at 0).
 *              The multipliers for the few block sizes we use are computed once.
 *
 * All tables and multipliers are built on first use under pthread_once; after that every
 * function is read-only and thread-safe. The dispatch choice is made in the same once.
 */
#include <pbox/crc32c.h>

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t tab[8][256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int have_sse42;

/* Blocks for the three-chain path, largest first; each is a multiple of 8 bytes. */
#define NBLK 4
static const size_t blk_len[NBLK] = { 4096, 1024, 256, 64 };
static uint32_t blk_shift[NBLK]; /* x^(8 * blk_len) mod P, reflected */

/* Multiply two polynomials mod P in the reflected representation (bit 31 = x^0). */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;
	for (int i = 0; i < 32; i++) {
		if (a & (0x80000000u >> i))
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ POLY : b >> 1; /* b *= x */
	}
	return prod;
}

/* x^(8n) mod P, by repeated multiplication by x^8: used only at initialisation. */
static uint32_t xpow8n(size_t n)
{
	uint32_t p = 0x80000000u; /* x^0 */
	for (size_t i = 0; i < n * 8; i++)
		p = (p & 1) ? (p >> 1) ^ POLY : p >> 1;
	return p;
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			tab[t][i] = (tab[t - 1][i] >> 8) ^ tab[0][tab[t - 1][i] & 0xff];
	for (int b = 0; b < NBLK; b++)
		blk_shift[b] = xpow8n(blk_len[b]);
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static inline void ensure_init(void)
{
	pthread_once(&init_once, crc_init);
}

static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

uint32_t pbox_crc32c_bytewise(uint32_t crc, const void *buf, size_t len)
{
	ensure_init();
	const unsigned char *p = buf;
	crc = ~crc;
	while (len--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

uint32_t pbox_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	ensure_init();
	const unsigned char *p = buf;
	crc = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w = load_le64(p) ^ crc;
		crc = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^ tab[5][(w >> 16) & 0xff] ^
		      tab[4][(w >> 24) & 0xff] ^ tab[3][(w >> 32) & 0xff] ^
		      tab[2][(w >> 40) & 0xff] ^ tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *buf,
							  size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	for (int b = 0; b < NBLK; b++) {
		const size_t bl = blk_len[b];
		while (len >= 3 * bl) {
			uint64_t c1 = 0, c2 = 0;
			const unsigned char *p1 = p + bl, *p2 = p + 2 * bl;
			for (size_t i = 0; i < bl; i += 8) {
				c = __builtin_ia32_crc32di(c, load_le64(p + i));
				c1 = __builtin_ia32_crc32di(c1, load_le64(p1 + i));
				c2 = __builtin_ia32_crc32di(c2, load_le64(p2 + i));
			}
			/* merge: reg(A||B||C) = (reg(A)*X^|B| ^ reg(B))*X^|C| ^ reg(C) */
			c = gf_mul(blk_shift[b], (uint32_t)c) ^ (uint32_t)c1;
			c = gf_mul(blk_shift[b], (uint32_t)c) ^ (uint32_t)c2;
			p += 3 * bl;
			len -= 3 * bl;
		}
	}
	while (len >= 8) {
		c = __builtin_ia32_crc32di(c, load_le64(p));
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t pbox_crc32c(uint32_t crc, const void *buf, size_t len)
{
	ensure_init();
#if defined(__x86_64__)
	if (have_sse42)
		return crc_hw(crc, buf, len);
#endif
	return pbox_crc32c_portable(crc, buf, len);
}

const char *pbox_crc32c_impl(void)
{
	ensure_init();
	return have_sse42 ? "sse4.2" : "portable";
}
