/*
 * fuzz_raftcmd.c — the raftkv command entry decoder (examples/raftkv/entry.c, linked into
 * this target only) on arbitrary bytes.
 *
 * Input: byte 0 is a mode; the rest is the would-be entry. Mode bit 0: the harness first
 * rewrites the entry's last 4 bytes as the CRC-32C of the bytes before them, so mutations
 * get past the checksum to the field and length checks behind it (without it, almost every
 * mutated input stops at the checksum).
 * Checks: the decode returns 0 or -1 (never crashes, never reads outside the entry: the
 * harness decodes a copy of exactly its length, so ASan sees any overread) and leaves ops
 * NULL on -1. On 0: the fields are within the limits of raftkv.h, every key and value lies
 * inside the entry, rkv_cmd_size gives the entry's length, and encoding the decoded command
 * gives the same bytes (the format is canonical).
 */
#define _GNU_SOURCE
#include "fuzz_util.h"
#include "raftkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t len = size - 1;
	uint8_t *e = malloc(len ? len : 1);
	FZ_CHECK(e != NULL, "out of memory");
	memcpy(e, data + 1, len);
	if ((mode & 1) && len >= 4)
		fz_put32(e + len - 4, pbox_crc32c(0, e, len - 4));
	rkv_cmd c;
	int rc = rkv_cmd_decode(e, len, &c);
	if (rc) {
		FZ_CHECK(rc == -1, "decode returned %d", rc);
		FZ_CHECK(c.ops == NULL, "ops left after a failed decode");
		free(e);
		return 0;
	}
	FZ_CHECK(c.nops >= 1 && c.nops <= RKV_TXN_OPS_MAX && (c.nops == 1 || c.txn),
		 "decoded %u ops (txn %d)", c.nops, c.txn);
	FZ_CHECK(c.client ? c.seq != 0 : c.seq == 0, "client %llu with seq %llu",
		 (unsigned long long)c.client, (unsigned long long)c.seq);
	for (uint32_t i = 0; i < c.nops; i++) {
		const rkv_op *o = &c.ops[i];
		FZ_CHECK(o->type == RKV_OP_PUT || (o->type == RKV_OP_DEL && !o->vlen && !o->val),
			 "op %u: type %u vlen %u", i, o->type, o->vlen);
		FZ_CHECK(o->klen <= RKV_KEY_MAX && o->vlen <= RKV_VALUE_MAX, "op %u over limits", i);
		FZ_CHECK(o->key >= e && o->key + o->klen <= e + len, "op %u: key outside", i);
		FZ_CHECK(!o->val || (o->val >= e && o->val + o->vlen <= e + len),
			 "op %u: value outside", i);
	}
	FZ_CHECK(rkv_cmd_size(&c) == len, "size %zu of an entry of %zu bytes", rkv_cmd_size(&c),
		 len);
	uint8_t *again = malloc(len);
	FZ_CHECK(again != NULL, "out of memory");
	FZ_CHECK(rkv_cmd_encode(&c, again, len) == len && !memcmp(again, e, len),
		 "the re-encoding differs");
	free(again);
	free(c.ops);
	free(e);
	return 0;
}
