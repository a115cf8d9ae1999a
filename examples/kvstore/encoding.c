/*
 * encoding.c — the text forms kvstore reads and writes.
 *
 * Byte strings: printable ASCII (0x21..0x7e) other than '%' is written as itself; every
 * other byte, and space, tab and '%', as %HH. So an encoded string never contains a
 * separator of the batch protocol or of the scan output, and any byte string round-trips.
 * Decoding accepts either case of hex digits and passes any other byte through unchanged
 * (a UTF-8 argument stays UTF-8); a '%' without two hex digits after it is an error.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void kv_encode(FILE *f, const void *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c > 0x20 && c < 0x7f && c != '%') {
			putc(c, f);
		} else {
			putc('%', f);
			putc(hex[c >> 4], f);
			putc(hex[c & 15], f);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kv_decode(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	if (!d)
		return -1;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(d);
			return -1;
		}
		d[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[j] = 0;
	*out = d;
	*len = j;
	return 0;
}

int kv_parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int kv_parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int kv_parse_seconds(const char *s, double *out)
{
	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -1;
	char *end;
	double v = strtod(s, &end);
	if (*end || !(v >= 0) || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

int kv_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

double kv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
