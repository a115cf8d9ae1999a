/*
 * xfer.c — the keys and values of `stress --transfers` (xfer.h): shared by stress.c, which
 * writes them, and check_acks.c, which checks them. Pure functions, no state.
 */
#include "kvstore.h"
#include "xfer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int acct_key(char *buf, unsigned i)
{
	return snprintf(buf, 32, ACCT_PREFIX "%08u", i);
}

int xfer_key(char *buf, unsigned thread, uint64_t seq)
{
	return snprintf(buf, 64, XFER_PREFIX "%u/%012" PRIu64, thread, seq);
}

/* acct/<8 digits>: the account number, or -1 (acct/total and anything else). */
int acct_key_parse(const void *key, size_t klen, unsigned *i)
{
	const size_t pl = sizeof(ACCT_PREFIX) - 1;
	uint64_t v;
	if (klen != pl + 8 || memcmp(key, ACCT_PREFIX, pl) ||
	    kv_parse_digits((const char *)key + pl, 8, &v))
		return -1;
	*i = (unsigned)v;
	return 0;
}

/* xfer/<thread>/<12 digits> */
int xfer_key_parse(const void *key, size_t klen, unsigned *thread, uint64_t *seq)
{
	const char *k = key;
	const size_t pl = sizeof(XFER_PREFIX) - 1;
	if (klen < pl + 14 || memcmp(k, XFER_PREFIX, pl))
		return -1;
	const char *slash = memchr(k + pl, '/', klen - pl);
	uint64_t t;
	if (!slash || kv_parse_digits(k + pl, (size_t)(slash - k - pl), &t) || t > UINT32_MAX ||
	    (size_t)(k + klen - slash - 1) != 12 || kv_parse_digits(slash + 1, 12, seq))
		return -1;
	*thread = (unsigned)t;
	return 0;
}

/* Up to n space-separated decimal numbers filling all of [p, p+len): 0, or -1. */
int parse_numbers(const void *p, size_t len, uint64_t *out, unsigned n)
{
	const char *s = p, *e = s + len;
	for (unsigned i = 0; i < n; i++) {
		const char *sp = i + 1 < n ? memchr(s, ' ', (size_t)(e - s)) : e;
		if (!sp || kv_parse_digits(s, (size_t)(sp - s), &out[i]))
			return -1;
		s = sp + 1;
	}
	return 0;
}

