/*
 * rel_common.h — shared by the reliability suites (tests/reliability): a btree store on
 * memfs behind the fault-injecting wrapper, self-describing values, and an oracle that knows
 * which states of every key a crash may legitimately leave.
 *
 * Values: value(k, v) starts with k and v (4 bytes each, little-endian) and every other byte
 * is a function of (k, v, i), so any value read back names the write it came from and a
 * mixed, stale or damaged value cannot pass. Lengths vary; every fifth version of a key is
 * 3000 bytes long (an overflow chain at 4 KiB pages).
 *
 * Oracle: per key, the state made durable by the last durability point (a durable write
 * that returned 0, a checkpoint or close that returned 0) and the states that may or may not
 * have reached the disk since (writes that returned 0 without PBOX_BT_DURABLE, and writes
 * that failed: a failed write may have been logged before its error). A state is a version
 * (>= 1) or REL_ABSENT.
 */
#ifndef PBOX_REL_COMMON_H
#define PBOX_REL_COMMON_H

#define _GNU_SOURCE
#include <pbox/alloc.h>
#include <pbox/btree.h>
#include <pbox/iotest.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define REL_DIR "/st"
#define REL_TREE "t"
#define REL_NK 64u       /* keys k000 .. k063 */
#define REL_MAXP 32u     /* possible states remembered per key */
#define REL_ABSENT (-1)
#define REL_VMAX 3100u   /* longest value */

/* REQ: the toolkit's (tests/common/pbox_test.h). */

/* Built with a sanitizer? (The matrices are exhaustive in every build; only the optional
 * extra sweeps scale down.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define REL_SANITIZED 1
#endif
#endif
#ifndef REL_SANITIZED
#define REL_SANITIZED 0
#endif
/* ThreadSanitizer makes these single-threaded sweeps slow and finds nothing in them that
 * ASan does not: TSan builds do a sample (PBOX_STRESS_SCALE > 1: all of it). */
#if defined(__SANITIZE_THREAD__)
#define REL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define REL_TSAN 1
#endif
#endif
#ifndef REL_TSAN
#define REL_TSAN 0
#endif

static inline uint64_t rel_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline size_t rel_key(unsigned k, char *buf)
{
	return (size_t)snprintf(buf, 8, "k%03u", k);
}

static inline size_t rel_vlen(unsigned k, unsigned v)
{
	return v % 5 == 4 ? 3000u + k : 8u + (k * 13u + v * 7u) % 120u;
}

static inline size_t rel_val(unsigned k, unsigned v, uint8_t *buf)
{
	size_t n = rel_vlen(k, v);
	for (int i = 0; i < 4; i++) {
		buf[i] = (uint8_t)(k >> (8 * i));
		buf[4 + i] = (uint8_t)(v >> (8 * i));
	}
	for (size_t i = 8; i < n; i++)
		buf[i] = (uint8_t)rel_mix(((uint64_t)k << 40) ^ ((uint64_t)v << 16) ^ i);
	return n;
}

/* The version a value read back for key k encodes, or 0 if it is no value we ever wrote. */
static inline int rel_decode(unsigned k, const uint8_t *val, size_t len)
{
	if (len < 8)
		return 0;
	unsigned kk = 0, v = 0;
	for (int i = 0; i < 4; i++) {
		kk |= (unsigned)val[i] << (8 * i);
		v |= (unsigned)val[4 + i] << (8 * i);
	}
	if (kk != k || v == 0 || v > (1u << 30) || rel_vlen(k, v) != len)
		return 0;
	uint8_t want[REL_VMAX];
	rel_val(k, v, want);
	return memcmp(want, val, len) == 0 ? (int)v : 0;
}

typedef struct rel_oracle {
	int durable[REL_NK];             /* state as of the last durability point */
	int last[REL_NK];                /* latest state a successful write produced */
	int maybe[REL_NK][REL_MAXP];     /* states that may have reached the disk since */
	unsigned nmaybe[REL_NK];
	bool fail_since_ok[REL_NK][REL_MAXP]; /* maybe[i] came from a failed write after the
					       last successful one */
	unsigned ver;                    /* last version handed out */
} rel_oracle;

static inline void rel_oracle_init(rel_oracle *o)
{
	memset(o, 0, sizeof(*o));
	for (unsigned k = 0; k < REL_NK; k++)
		o->durable[k] = o->last[k] = REL_ABSENT;
}

static inline void rel_oracle_maybe(rel_oracle *o, unsigned k, int state, bool failed)
{
	if (o->nmaybe[k] == REL_MAXP) { /* keep the newest: drop the oldest */
		memmove(&o->maybe[k][0], &o->maybe[k][1], (REL_MAXP - 1) * sizeof(int));
		memmove(&o->fail_since_ok[k][0], &o->fail_since_ok[k][1], (REL_MAXP - 1) * sizeof(bool));
		o->nmaybe[k]--;
	}
	o->maybe[k][o->nmaybe[k]] = state;
	o->fail_since_ok[k][o->nmaybe[k]++] = failed;
}

/* A write of key k to state (a version or REL_ABSENT) returned rc. */
static inline void rel_oracle_write(rel_oracle *o, unsigned k, int state, int rc)
{
	if (rc == 0) {
		o->last[k] = state;
		/* a successful write supersedes failed ones before it once it is durable */
		for (unsigned i = 0; i < o->nmaybe[k]; i++)
			o->fail_since_ok[k][i] = false;
	}
	rel_oracle_maybe(o, k, state, rc != 0);
}

/* Everything that returned 0 so far is durable. Failed writes after the last successful
 * one of a key stay possible. */
static inline void rel_oracle_durable(rel_oracle *o)
{
	for (unsigned k = 0; k < REL_NK; k++) {
		o->durable[k] = o->last[k];
		unsigned n = 0;
		for (unsigned i = 0; i < o->nmaybe[k]; i++)
			if (o->fail_since_ok[k][i]) {
				o->maybe[k][n] = o->maybe[k][i];
				o->fail_since_ok[k][n++] = true;
			}
		o->nmaybe[k] = n;
	}
}

static inline bool rel_oracle_allows(const rel_oracle *o, unsigned k, int state)
{
	if (state == o->durable[k])
		return true;
	for (unsigned i = 0; i < o->nmaybe[k]; i++)
		if (o->maybe[k][i] == state)
			return true;
	return false;
}

/* After a restart, what the disk held is the new truth. */
static inline void rel_oracle_settle(rel_oracle *o, unsigned k, int state)
{
	o->durable[k] = o->last[k] = state;
	o->nmaybe[k] = 0;
}

/* ---- writes through the oracle ---------------------------------------------------------- */

static inline int rel_put(pbox_bt *bt, rel_oracle *o, unsigned k, unsigned flags)
{
	char key[8];
	uint8_t val[REL_VMAX];
	unsigned v = ++o->ver;
	size_t kl = rel_key(k, key), vl = rel_val(k, v, val);
	int rc = pbox_bt_upsert(bt, key, kl, val, vl, flags);
	rel_oracle_write(o, k, (int)v, rc);
	if (rc == 0 && (flags & PBOX_BT_DURABLE))
		rel_oracle_durable(o);
	return rc;
}

static inline int rel_del(pbox_bt *bt, rel_oracle *o, unsigned k, unsigned flags)
{
	char key[8];
	size_t kl = rel_key(k, key);
	int rc = pbox_bt_remove(bt, key, kl, flags);
	if (rc == PBOX_ENOTFOUND) /* nothing changed, nothing logged */
		return 0;
	rel_oracle_write(o, k, REL_ABSENT, rc);
	if (rc == 0 && (flags & PBOX_BT_DURABLE))
		rel_oracle_durable(o);
	return rc;
}

/* The state of key k in the tree: a version, REL_ABSENT, 0 for a value we never wrote, or
 * an error code (< REL_ABSENT). */
static inline int rel_read(pbox_bt *bt, unsigned k)
{
	char key[8];
	static _Thread_local uint8_t buf[REL_VMAX + 16];
	size_t kl = rel_key(k, key), vl = 0;
	int rc = pbox_bt_lookup(bt, key, kl, buf, sizeof(buf), &vl);
	if (rc == PBOX_ENOTFOUND)
		return REL_ABSENT;
	if (rc)
		return rc < REL_ABSENT ? rc : -1000;
	return rel_decode(k, buf, vl);
}

#endif
