/*
 * entry.c — the raftkv command entry: the bytes of one raft log entry, which the state machine
 * (fsm.c) applies as one pagebox transaction. Its encoder and its decoder; no store access.
 * fuzz/fuzz_raftcmd.c feeds the decoder arbitrary bytes.
 *
 * FORMAT, version 1 (integers little-endian; offsets in bytes)
 *
 *   OFFSET  SIZE   FIELD     MEANING
 *   0       4      magic     "RKV1"
 *   4       1      version   1
 *   5       1      flags     bit 0: txn (a `txn` command); the other bits are 0
 *   6       2      reserved  0
 *   8       8      client    the client's session id; 0: no session
 *   16      8      seq       the client's request number: >= 1 with a session, 0 without
 *   24      4      nops      1..RKV_TXN_OPS_MAX; more than 1 only with the txn flag
 *   28      ...    ops       nops times:
 *                              1     type   1 put, 2 del
 *                              4     klen   0..RKV_KEY_MAX (an empty key is a key)
 *                              4     vlen   0..RKV_VALUE_MAX; 0 for a del
 *                              klen  key
 *                              vlen  value
 *   ...     0..7   pad       zero bytes: the fewest that make the entry's length a
 *                            multiple of 8
 *   end-4   4      crc       CRC-32C (pbox_crc32c, seed 0) of every byte before it
 *
 * The whole entry is at most RKV_ENTRY_MAX bytes; the smallest is 48 (one del, empty key).
 * Why the padding: canonical raft 0.15's libuv I/O assumes entry payloads whose length is a
 * multiple of 8 — it lays batches out padded to 8 but describes them with the unpadded
 * length, so a follower that receives an entry of another length after a restart was seen to
 * apply bytes shifted from the entry's start (canonical/raft issues 180 and 304 report the
 * same assumption on load). The checksum catches such a shift; the padding avoids it.
 *
 * Invariants: the format is canonical — a command has exactly one encoding, so a decoded
 * entry re-encodes to the same bytes (fuzz_raftcmd checks it): flags, reserved bits and the
 * value length of a del are pinned, and nothing may follow the checksum. The decoder checks
 * the size and the checksum first (a torn or flipped entry is refused whatever it says),
 * then every field against its limit and every length against the bytes that remain before
 * using it; offsets are size_t and only ever compared as "length <= remaining", so no sum
 * can overflow. Sizes on the encoding side are summed in uint64_t (10000 ops of 1 MiB
 * overflow 32 bits). A decoded command points into the caller's buffer: only ops is
 * allocated.
 * Threading: no shared state; any thread may encode or decode.
 */
#define _GNU_SOURCE
#include "raftkv.h"

#include <pbox/crc32c.h>

#include <stdlib.h>
#include <string.h>

#define CMD_MAGIC "RKV1"
#define CMD_VERSION 1u
#define CMD_FLAG_TXN 0x01u
#define CMD_HDR 28u    /* magic .. nops */
#define CMD_OP_HDR 9u  /* type, klen, vlen */
#define CMD_CRC 4u

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The rules shared by both sides for the command's header fields. */
static bool header_ok(uint64_t client, uint64_t seq, uint32_t nops, bool txn)
{
	if (nops == 0 || nops > RKV_TXN_OPS_MAX || (nops > 1 && !txn))
		return false;
	/* a session names every request; a request outside one has no number to deduplicate */
	return client ? seq != 0 : seq == 0;
}

/* The rules shared by both sides for one operation. */
static bool op_ok(uint8_t type, uint32_t klen, uint32_t vlen)
{
	if (type != RKV_OP_PUT && type != RKV_OP_DEL)
		return false;
	if (klen > RKV_KEY_MAX || vlen > RKV_VALUE_MAX)
		return false;
	return type == RKV_OP_PUT || vlen == 0;
}

size_t rkv_cmd_size(const rkv_cmd *c)
{
	if (!c || !c->ops || !header_ok(c->client, c->seq, c->nops, c->txn))
		return 0;
	uint64_t n = CMD_HDR + CMD_CRC;
	for (uint32_t i = 0; i < c->nops; i++) {
		const rkv_op *o = &c->ops[i];
		if (!op_ok(o->type, o->klen, o->vlen))
			return 0;
		/* a length without its bytes would make the encoder read through NULL */
		if ((o->klen && !o->key) || (o->vlen && !o->val))
			return 0;
		n += CMD_OP_HDR + (uint64_t)o->klen + o->vlen;
		if (n > RKV_ENTRY_MAX) /* checked as it grows: the sum stays far below 2^64 */
			return 0;
	}
	n = (n + 7) & ~(uint64_t)7; /* the padding */
	return n > RKV_ENTRY_MAX ? 0 : (size_t)n;
}

size_t rkv_cmd_encode(const rkv_cmd *c, void *buf, size_t cap)
{
	size_t n = rkv_cmd_size(c);
	if (!n || !buf || cap < n)
		return 0;
	uint8_t *p = buf;
	memcpy(p, CMD_MAGIC, 4);
	p[4] = CMD_VERSION;
	p[5] = c->txn ? CMD_FLAG_TXN : 0;
	put16(p + 6, 0);
	put64(p + 8, c->client);
	put64(p + 16, c->seq);
	put32(p + 24, c->nops);
	size_t o = CMD_HDR;
	for (uint32_t i = 0; i < c->nops; i++) {
		const rkv_op *op = &c->ops[i];
		p[o] = op->type;
		put32(p + o + 1, op->klen);
		put32(p + o + 5, op->vlen);
		o += CMD_OP_HDR;
		if (op->klen) /* memcpy from NULL is undefined even for 0 bytes */
			memcpy(p + o, op->key, op->klen);
		o += op->klen;
		if (op->vlen)
			memcpy(p + o, op->val, op->vlen);
		o += op->vlen;
	}
	while ((o + CMD_CRC) % 8)
		p[o++] = 0;
	put32(p + o, pbox_crc32c(0, p, o));
	return o + CMD_CRC;
}

int rkv_cmd_decode(const void *buf, size_t len, rkv_cmd *c)
{
	const uint8_t *p = buf;
	memset(c, 0, sizeof(*c));
	if (!p || len < CMD_HDR + CMD_OP_HDR + CMD_CRC || len > RKV_ENTRY_MAX || len % 8)
		return -1;
	/* the checksum first: a damaged entry is refused before any of its fields is read */
	size_t body = len - CMD_CRC;
	if (pbox_crc32c(0, p, body) != get32(p + body))
		return -1;
	if (memcmp(p, CMD_MAGIC, 4) || p[4] != CMD_VERSION || (p[5] & ~CMD_FLAG_TXN) ||
	    get16(p + 6) != 0)
		return -1;
	uint64_t client = get64(p + 8), seq = get64(p + 16);
	uint32_t nops = get32(p + 24);
	bool txn = p[5] & CMD_FLAG_TXN;
	if (!header_ok(client, seq, nops, txn))
		return -1;
	/* every op takes at least its header: refuse a count the bytes cannot hold before
	 * allocating for it */
	if (nops > (body - CMD_HDR) / CMD_OP_HDR)
		return -1;
	rkv_op *ops = calloc(nops, sizeof(*ops));
	if (!ops)
		return -1;
	size_t o = CMD_HDR;
	for (uint32_t i = 0; i < nops; i++) {
		if (body - o < CMD_OP_HDR)
			goto bad;
		uint8_t type = p[o];
		uint32_t klen = get32(p + o + 1), vlen = get32(p + o + 5);
		o += CMD_OP_HDR;
		if (!op_ok(type, klen, vlen))
			goto bad;
		if (klen > body - o)
			goto bad;
		ops[i].type = type;
		ops[i].key = p + o;
		ops[i].klen = klen;
		o += klen;
		if (vlen > body - o)
			goto bad;
		ops[i].val = type == RKV_OP_PUT ? p + o : NULL;
		ops[i].vlen = vlen;
		o += vlen;
	}
	/* between the last op and the checksum: exactly the padding, all zero */
	if (body - o >= 8 || (o + CMD_CRC + 7) / 8 * 8 != len)
		goto bad;
	for (; o < body; o++)
		if (p[o])
			goto bad;
	c->client = client;
	c->seq = seq;
	c->nops = nops;
	c->txn = txn;
	c->ops = ops;
	return 0;
bad:
	free(ops);
	return -1;
}
