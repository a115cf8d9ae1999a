/*
 * value.c — the keys, batch ids and self-checking values of `stress`, shared with the
 * torture test driver (tests/kvstore), which writes the same values through `batch`.
 *
 * A value names its key and its batch and ends with a CRC32C of everything before it, so
 * check-acks can tell a value that belongs to a key from a stale, foreign or damaged one
 * without remembering what was written, and can find the other members of its batch.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <pbox/crc32c.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int kv_stress_key(char *buf, unsigned thread, uint64_t seq)
{
	return snprintf(buf, KV_KEY_MAX, "t%u-%012" PRIu64, thread, seq);
}

int kv_parse_digits(const char *p, size_t n, uint64_t *out)
{
	if (n == 0 || n > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

int kv_stress_key_parse(const void *key, size_t klen, unsigned *thread, uint64_t *seq)
{
	const char *k = key;
	if (klen < 4 || k[0] != 't')
		return -1;
	const char *dash = memchr(k, '-', klen);
	uint64_t t, s;
	if (!dash || kv_parse_digits(k + 1, (size_t)(dash - k - 1), &t) || t > UINT32_MAX)
		return -1;
	size_t rest = klen - (size_t)(dash + 1 - k);
	if (rest != 12 || kv_parse_digits(dash + 1, rest, &s))
		return -1;
	*thread = (unsigned)t;
	*seq = s;
	return 0;
}

int kv_batch_id(char *buf, unsigned thread, uint64_t first, unsigned count)
{
	return snprintf(buf, KV_BATCH_ID_MAX, "b%u.%" PRIu64 ".%u", thread, first, count);
}

int kv_batch_id_parse(const char *s, size_t len, unsigned *thread, uint64_t *first,
		      unsigned *count)
{
	if (len < 6 || s[0] != 'b')
		return -1;
	const char *end = s + len;
	const char *d1 = memchr(s, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
	uint64_t t, f, c;
	if (!d2 || kv_parse_digits(s + 1, (size_t)(d1 - s - 1), &t) ||
	    kv_parse_digits(d1 + 1, (size_t)(d2 - d1 - 1), &f) ||
	    kv_parse_digits(d2 + 1, (size_t)(end - d2 - 1), &c) || t > UINT32_MAX || c == 0 ||
	    c > UINT32_MAX)
		return -1;
	*thread = (unsigned)t;
	*first = f;
	*count = (unsigned)c;
	return 0;
}

size_t kv_value_min(size_t klen, const char *batch_id)
{
	return klen + 1 + strlen(batch_id) + 1 + 1 + 8;
}

size_t kv_value_make(char *buf, size_t size, const char *key, size_t klen,
		     const char *batch_id)
{
	size_t min = kv_value_min(klen, batch_id);
	if (size < min)
		size = min;
	size_t bl = strlen(batch_id), p = 0;
	memcpy(buf, key, klen);
	p += klen;
	buf[p++] = '|';
	memcpy(buf + p, batch_id, bl);
	p += bl;
	buf[p++] = '|';
	/* filler: letters from a generator seeded by the key, so equal keys get equal values */
	uint64_t x = pbox_crc32c(0, key, klen) | 0x100000000ull;
	size_t fill_end = size - 9;
	while (p < fill_end) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[p++] = (char)('a' + x % 26);
	}
	buf[p++] = '|';
	uint32_t c = pbox_crc32c(0, buf, p);
	static const char hex[] = "0123456789abcdef";
	for (int i = 7; i >= 0; i--)
		buf[p++] = hex[(c >> (4 * i)) & 15];
	return p;
}

int kv_value_check(const void *val, size_t vlen, const void *key, size_t klen, char *bid,
		   size_t cap)
{
	const char *v = val;
	if (vlen < klen + 12 || memcmp(v, key, klen) || v[klen] != '|' || v[vlen - 9] != '|')
		return -1;
	uint32_t c = pbox_crc32c(0, v, vlen - 8), got = 0;
	for (size_t i = vlen - 8; i < vlen; i++) {
		char h = v[i];
		unsigned d = h >= '0' && h <= '9' ? (unsigned)(h - '0')
			   : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10) : 16;
		if (d > 15)
			return -1;
		got = got << 4 | d;
	}
	if (got != c)
		return -1;
	const char *b = v + klen + 1;
	const char *e = memchr(b, '|', (size_t)(v + vlen - 9 - b) + 1);
	if (!e || (size_t)(e - b) + 1 > cap)
		return -1;
	memcpy(bid, b, (size_t)(e - b));
	bid[e - b] = 0;
	return 0;
}

uint32_t kv_value_sum(const void *val, size_t vlen)
{
	return pbox_crc32c(0, val, vlen);
}
