/*
 * check_raftkv_formats.c — the two byte formats of examples/raftkv (tables in entry.c and
 * snap.c), through raftkv.h; no raft, no store.
 *
 *   entry_roundtrip   a put, a del, a txn of 1000 ops, an empty key, a key and a value at
 *                     their limits: encode, decode, same fields, the same bytes again
 *   entry_limits      the encoder refuses every broken limit (size 0, encode 0)
 *   entry_reject      each rule of the decoder on an entry built by hand with a correct
 *                     checksum, so the rule and not the CRC refuses it
 *   entry_damage      every truncation, every bit flip and an extra byte of a small entry
 *   snap_roundtrip    a sparse 16 MiB file, an odd-sized one, an empty one, a preallocated
 *                     log segment in wal/, a LOCK file (left out): pack, unpack, identical
 *                     files, an archive much smaller than the files, the same archive again
 *                     from the copy; unpack refuses an existing directory
 *   snap_damage       every truncation and every byte flip of a small archive, a sample of
 *                     flips of the big one: refused, nothing created; rkv_snap_index
 *   snap_rules        archives built by hand with correct checksums breaking one rule each
 *   snap_pack_refuse  a symlink, a fifo, a directory two levels down
 */
#define _GNU_SOURCE
#include "pbox_test.h"
#include "raftkv.h"

#include <pbox/crc32c.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a little-endian writer for entries and archives built by hand ------------------------- */

typedef struct wbuf {
	uint8_t *p;
	size_t n, cap;
} wbuf;

static void w_bytes(wbuf *w, const void *b, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2 + 64;
		w->p = realloc(w->p, w->cap);
		REQ_T(w->p);
	}
	if (n)
		memcpy(w->p + w->n, b, n);
	w->n += n;
}

static void w_le(wbuf *w, uint64_t v, int bytes)
{
	uint8_t b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w_bytes(w, b, (size_t)bytes);
}

static void w_crc(wbuf *w, size_t from)
{
	w_le(w, pbox_crc32c(0, w->p + from, w->n - from), 4);
}

/* ---- entries --------------------------------------------------------------------------------- */

static void roundtrip(const rkv_cmd *c)
{
	size_t n = rkv_cmd_size(c);
	REQ(n > 0, "size 0 for a valid command");
	uint8_t *buf = malloc(n), *again = malloc(n);
	REQ_T(buf && again);
	REQ_EQ(rkv_cmd_encode(c, buf, n - 1), 0);
	REQ_EQ(rkv_cmd_encode(c, buf, n), n);
	rkv_cmd d;
	REQ_EQ(rkv_cmd_decode(buf, n, &d), 0);
	REQ_EQ(d.client, c->client);
	REQ_EQ(d.seq, c->seq);
	REQ_EQ(d.nops, c->nops);
	REQ_EQ(d.txn, c->txn);
	for (uint32_t i = 0; i < c->nops; i++) {
		const rkv_op *a = &c->ops[i], *b = &d.ops[i];
		REQ_EQ(a->type, b->type);
		REQ_EQ(a->klen, b->klen);
		REQ_EQ(a->vlen, b->vlen);
		REQ_T(!a->klen || !memcmp(a->key, b->key, a->klen));
		REQ_T(!a->vlen || !memcmp(a->val, b->val, a->vlen));
		REQ_T(b->type == RKV_OP_PUT || b->val == NULL);
	}
	REQ_EQ(rkv_cmd_encode(&d, again, n), n);
	REQ_T(!memcmp(buf, again, n));
	free(d.ops);
	free(buf);
	free(again);
}

START_TEST(test_entry_roundtrip)
{
	rkv_op put = { RKV_OP_PUT, (const uint8_t *)"key", 3, (const uint8_t *)"value", 5 };
	rkv_cmd c = { .client = 7, .seq = 1, .nops = 1, .ops = &put };
	roundtrip(&c);
	rkv_op del = { RKV_OP_DEL, (const uint8_t *)"key", 3, NULL, 0 };
	c = (rkv_cmd){ .nops = 1, .ops = &del };
	roundtrip(&c);
	rkv_op empty[2] = { { RKV_OP_PUT, NULL, 0, NULL, 0 }, { RKV_OP_DEL, NULL, 0, NULL, 0 } };
	c = (rkv_cmd){ .client = UINT64_MAX, .seq = UINT64_MAX, .nops = 2, .txn = true,
		       .ops = empty };
	roundtrip(&c);

	static rkv_op ops[1000];
	uint8_t keys[1000][8];
	for (unsigned i = 0; i < 1000; i++) {
		memcpy(keys[i], &i, sizeof(i));
		memcpy(keys[i] + 4, "kkkk", 4);
		ops[i] = (rkv_op){ i % 3 ? RKV_OP_PUT : RKV_OP_DEL, keys[i], 1 + i % 8,
				   i % 3 ? keys[i] : NULL, i % 3 ? i % 7 : 0 };
	}
	c = (rkv_cmd){ .client = 3, .seq = 99, .nops = 1000, .txn = true, .ops = ops };
	roundtrip(&c);

	uint8_t *k = malloc(RKV_KEY_MAX), *v = malloc(RKV_VALUE_MAX);
	REQ_T(k && v);
	for (size_t i = 0; i < RKV_VALUE_MAX; i++)
		v[i] = (uint8_t)(i * 31 + 7);
	memset(k, 0xa5, RKV_KEY_MAX);
	rkv_op big = { RKV_OP_PUT, k, RKV_KEY_MAX, v, RKV_VALUE_MAX };
	c = (rkv_cmd){ .nops = 1, .ops = &big };
	roundtrip(&c);
	free(k);
	free(v);
}
END_TEST

START_TEST(test_entry_limits)
{
	static uint8_t v[RKV_VALUE_MAX + 1], buf[1 << 16];
	rkv_op put = { RKV_OP_PUT, (const uint8_t *)"k", 1, v, 1 };
	rkv_op two[2] = { put, put };
	static rkv_op many[RKV_TXN_OPS_MAX + 1];
	for (unsigned i = 0; i <= RKV_TXN_OPS_MAX; i++)
		many[i] = put;
	rkv_cmd ok = { .client = 1, .seq = 1, .nops = 1, .ops = &put };
	REQ_GT(rkv_cmd_size(&ok), 0);
	rkv_cmd bad[12];
	int n = 0;
	bad[n++] = (rkv_cmd){ .nops = 0, .txn = true, .ops = &put };
	bad[n++] = (rkv_cmd){ .nops = RKV_TXN_OPS_MAX + 1, .txn = true, .ops = many };
	bad[n++] = (rkv_cmd){ .nops = 2, .ops = two };                 /* 2 ops, no txn */
	bad[n++] = (rkv_cmd){ .seq = 1, .nops = 1, .ops = &put };     /* no client, a seq */
	bad[n++] = (rkv_cmd){ .client = 1, .nops = 1, .ops = &put };  /* a client, seq 0 */
	bad[n++] = (rkv_cmd){ .nops = 1, .ops = NULL };
	rkv_op o[6] = {
		{ RKV_OP_PUT, v, RKV_KEY_MAX + 1, v, 1 },
		{ RKV_OP_PUT, v, 1, v, RKV_VALUE_MAX + 1 },
		{ RKV_OP_DEL, v, 1, v, 1 },
		{ 3, v, 1, v, 1 },
		{ RKV_OP_PUT, NULL, 1, v, 1 },
		{ RKV_OP_PUT, v, 1, NULL, 1 },
	};
	for (int i = 0; i < 6; i++)
		bad[n++] = (rkv_cmd){ .nops = 1, .ops = &o[i] };
	for (int i = 0; i < n; i++) {
		REQ(rkv_cmd_size(&bad[i]) == 0, "case %d: size of a broken command", i);
		REQ(rkv_cmd_encode(&bad[i], buf, sizeof(buf)) == 0, "case %d: encoded", i);
	}
	/* over RKV_ENTRY_MAX: 16 values of 1 MiB and their headers */
	rkv_op full = { RKV_OP_PUT, v, 1, v, RKV_VALUE_MAX };
	for (unsigned i = 0; i < 16; i++)
		many[i] = full;
	rkv_cmd huge = { .nops = 16, .txn = true, .ops = many };
	REQ_EQ(rkv_cmd_size(&huge), 0);
	huge.nops = 15;
	REQ_GT(rkv_cmd_size(&huge), 15u * RKV_VALUE_MAX);
}
END_TEST

/* One entry written field by field, so any field can be wrong; the CRC is always right. */
typedef struct rawop {
	uint8_t type;
	uint32_t klen, vlen, kbytes, vbytes; /* the lengths written, the bytes that follow */
} rawop;

typedef struct raw {
	const char *magic;
	uint8_t version, flags;
	uint16_t reserved;
	uint64_t client, seq;
	uint32_t nops;
	int nop;         /* ops actually written */
	rawop op[17];
	size_t extra;    /* bytes after the last op */
} raw;

static void w_fill(wbuf *w, size_t n)
{
	static uint8_t pat[4096];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)('a' + i % 26);
	for (size_t k; n; n -= k) {
		k = n < sizeof(pat) ? n : sizeof(pat);
		w_bytes(w, pat, k);
	}
}

static wbuf raw_build(const raw *r)
{
	wbuf w = { 0 };
	w_bytes(&w, r->magic, 4);
	w_le(&w, r->version, 1);
	w_le(&w, r->flags, 1);
	w_le(&w, r->reserved, 2);
	w_le(&w, r->client, 8);
	w_le(&w, r->seq, 8);
	w_le(&w, r->nops, 4);
	for (int i = 0; i < r->nop; i++) {
		w_le(&w, r->op[i].type, 1);
		w_le(&w, r->op[i].klen, 4);
		w_le(&w, r->op[i].vlen, 4);
		w_fill(&w, (size_t)r->op[i].kbytes + r->op[i].vbytes);
	}
	w_fill(&w, r->extra);
	while ((w.n + 4) % 8) /* the padding: every case fails its own rule, not the length's */
		w_le(&w, 0, 1);
	w_crc(&w, 0);
	return w;
}

START_TEST(test_entry_reject)
{
	const raw good = { "RKV1", 1, 1, 0, 5, 9, 2, 2,
			   { { RKV_OP_PUT, 2, 3, 2, 3 }, { RKV_OP_DEL, 1, 0, 1, 0 } }, 0 };
	wbuf w = raw_build(&good);
	rkv_cmd c;
	REQ_EQ(rkv_cmd_decode(w.p, w.n, &c), 0);
	REQ_T(c.nops == 2 && c.txn && c.client == 5 && c.seq == 9);
	free(c.ops);
	free(w.p);
	raw r[24];
	int n = 0;
	for (int i = 0; i < 24; i++)
		r[i] = good;
	r[n++].magic = "RKV2";
	r[n++].version = 2;
	r[n++].reserved = 1;
	r[n++].flags = 3;                 /* an unknown flag */
	r[n].nops = 0, r[n++].nop = 0;    /* no op */
	r[n++].nops = RKV_TXN_OPS_MAX + 1;
	r[n++].flags = 0;                 /* 2 ops without the txn flag */
	r[n++].client = 0;                /* no client, a seq */
	r[n++].seq = 0;                   /* a client, seq 0 */
	r[n].op[0].klen = r[n].op[0].kbytes = RKV_KEY_MAX + 1, n++;
	r[n].op[0].vlen = r[n].op[0].vbytes = RKV_VALUE_MAX + 1, n++;
	r[n].op[1].vlen = r[n].op[1].vbytes = 1, n++; /* a del with a value */
	r[n++].op[1].type = 3;
	r[n++].op[1].type = 0;
	r[n++].op[1].klen = 2;            /* the key runs into the checksum */
	r[n++].op[1].klen = 1000;         /* ... past the end */
	r[n++].op[0].vlen = 0xffffffffu;
	r[n++].nops = 3;                  /* an op missing */
	r[n++].nops = 1;                  /* an op too many: trailing bytes */
	r[n++].extra = 1;
	for (int i = 0; i < n; i++) {
		w = raw_build(&r[i]);
		REQ(rkv_cmd_decode(w.p, w.n, &c) == -1, "case %d decoded", i);
		REQ(c.ops == NULL, "case %d left ops", i);
		free(w.p);
	}
	/* the padding: a put whose entry needs 4 pad bytes; each changed and re-checksummed */
	rkv_op pop = { RKV_OP_PUT, (const uint8_t *)"k", 1, (const uint8_t *)"vv", 2 };
	rkv_cmd pc = { .client = 1, .seq = 1, .nops = 1, .ops = &pop };
	uint8_t pb[64];
	size_t pn = rkv_cmd_encode(&pc, pb, sizeof(pb));
	REQ_EQ(pn, 48); /* header 28, op 9 + 1 + 2, 4 pad bytes, checksum 4 */
	REQ_EQ(pn % 8, 0);
	REQ_EQ(rkv_cmd_decode(pb, pn, &c), 0);
	free(c.ops);
	size_t body = pn - 4, ops_end = 28 + 9 + 1 + 2;
	REQ_GT(body, ops_end);
	for (size_t i = ops_end; i < body; i++) { /* a non-zero pad byte */
		uint8_t d[64];
		memcpy(d, pb, pn);
		d[i] = 0x20;
		uint32_t crc = pbox_crc32c(0, d, body);
		for (int k = 0; k < 4; k++)
			d[body + k] = (uint8_t)(crc >> (8 * k));
		REQ(rkv_cmd_decode(d, pn, &c) == -1, "pad byte %zu", i);
	}
	{ /* no padding (length not a multiple of 8), and 8 more zero bytes of it */
		wbuf nw = { 0 };
		w_bytes(&nw, pb, ops_end);
		w_crc(&nw, 0);
		REQ_EQ(rkv_cmd_decode(nw.p, nw.n, &c), -1);
		free(nw.p);
		nw = (wbuf){ 0 };
		w_bytes(&nw, pb, body);
		for (int k = 0; k < 8; k++)
			w_le(&nw, 0, 1);
		w_crc(&nw, 0);
		REQ_EQ(nw.n % 8, 0);
		REQ_EQ(rkv_cmd_decode(nw.p, nw.n, &c), -1);
		free(nw.p);
	}
	/* short buffers, a bad checksum, an entry over RKV_ENTRY_MAX */
	w = raw_build(&good);
	REQ_EQ(rkv_cmd_decode(w.p, 0, &c), -1);
	REQ_EQ(rkv_cmd_decode(NULL, 0, &c), -1);
	w.p[w.n - 1] ^= 1;
	REQ_EQ(rkv_cmd_decode(w.p, w.n, &c), -1);
	free(w.p);
	raw big = good; /* 16 values of 1 MiB: consistent, over RKV_ENTRY_MAX */
	big.nop = 16;
	big.nops = 16;
	for (int i = 0; i < 16; i++)
		big.op[i] = (rawop){ RKV_OP_PUT, 1, RKV_VALUE_MAX, 1, RKV_VALUE_MAX };
	w = raw_build(&big);
	REQ_GT(w.n, RKV_ENTRY_MAX);
	REQ_EQ(rkv_cmd_decode(w.p, w.n, &c), -1);
	free(w.p);
}
END_TEST

START_TEST(test_entry_damage)
{
	rkv_op ops[2] = { { RKV_OP_PUT, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1 },
			  { RKV_OP_DEL, (const uint8_t *)"key2", 4, NULL, 0 } };
	rkv_cmd c = { .client = 1, .seq = 2, .nops = 2, .txn = true, .ops = ops }, d;
	uint8_t buf[128];
	size_t n = rkv_cmd_encode(&c, buf, sizeof(buf) - 1);
	REQ_GT(n, 0);
	for (size_t l = 0; l < n; l++)
		REQ(rkv_cmd_decode(buf, l, &d) == -1, "truncated to %zu decoded", l);
	buf[n] = 0;
	REQ_EQ(rkv_cmd_decode(buf, n + 1, &d), -1);
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1u << bit);
			REQ(rkv_cmd_decode(buf, n, &d) == -1, "flip of byte %zu bit %d", i, bit);
			buf[i] ^= (uint8_t)(1u << bit);
		}
		buf[i] ^= 0xff;
		REQ(rkv_cmd_decode(buf, n, &d) == -1, "flip of byte %zu", i);
		buf[i] ^= 0xff;
	}
	REQ_EQ(rkv_cmd_decode(buf, n, &d), 0);
	free(d.ops);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------------------------ */

static void put_file(const char *dir, const char *name, uint64_t size)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQ(fd >= 0, "create %s: %s", p, strerror(errno));
	REQ_EQ(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void put_bytes(const char *dir, const char *name, uint64_t off, size_t n, uint8_t seed)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	uint8_t *b = malloc(n);
	REQ_T(b);
	for (size_t i = 0; i < n; i++)
		b[i] = seed ? (uint8_t)(seed + i * 13) : 0;
	int fd = open(p, O_WRONLY);
	REQ(fd >= 0 && pwrite(fd, b, n, (off_t)off) == (ssize_t)n, "write %s", p);
	close(fd);
	free(b);
}

static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDONLY);
	REQ(fd >= 0, "open %s: %s", p, strerror(errno));
	struct stat st;
	REQ_EQ(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	uint8_t *b = malloc(*len + 1);
	REQ_T(b);
	REQ(pread(fd, b, *len, 0) == (ssize_t)*len, "read %s", p);
	close(fd);
	return b;
}

static bool exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

static char *path2(const char *a, const char *b)
{
	char *p;
	REQ_T(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

static const char *const files[] = { "data", "odd", "empty", "wal/wal-0000000000000000.seg" };

/* The store-like source tree of the round trip; returns the sum of the apparent sizes. */
static uint64_t make_tree(const char *src)
{
	REQ_EQ(mkdir(src, 0755), 0);
	put_file(src, "data", 16u << 20); /* sparse, a few blocks written */
	put_bytes(src, "data", 0, 4096, 1);
	put_bytes(src, "data", 5 * 4096 + 100, 10, 2);
	put_bytes(src, "data", (8u << 20) - 50, 100, 3); /* across two blocks */
	put_bytes(src, "data", (9u << 20), 3u << 20, 4);   /* a run over the 1 MiB extent limit */
	put_bytes(src, "data", (12u << 20), 1u << 20, 0);  /* zeros written: data, all zero */
	put_bytes(src, "data", (16u << 20) - 1, 1, 5);
	put_file(src, "odd", 10000);
	put_bytes(src, "odd", 0, 10000, 6);
	put_file(src, "empty", 0);
	put_file(src, "LOCK", 0);
	put_bytes(src, "LOCK", 0, 100, 7);
	char *wal = path2(src, "wal");
	REQ_EQ(mkdir(wal, 0755), 0);
	free(wal);
	put_file(src, files[3], 0);
	char *seg = path2(src, files[3]);
	int fd = open(seg, O_WRONLY);
	REQ_T(fd >= 0 && posix_fallocate(fd, 0, 8u << 20) == 0); /* a preallocated segment */
	close(fd);
	free(seg);
	put_bytes(src, files[3], 0, 4096, 8);
	put_bytes(src, files[3], 3 * 4096, 300, 9);
	return (16u << 20) + 10000 + (8u << 20);
}

START_TEST(test_snap_roundtrip)
{
	char *tmp = pbox_test_tmpdir("raftkv-snap");
	REQ_T(tmp);
	char *src = path2(tmp, "src"), *dst = path2(tmp, "dst"), *dst2 = path2(tmp, "dst2");
	uint64_t apparent = make_tree(src);
	void *a;
	size_t alen;
	char err[256] = "";
	REQ(rkv_snap_pack(src, 1234, &a, &alen, err, sizeof(err)) == 0, "pack: %s", err);
	/* 3 MiB + 4 KiB + a few blocks of data, against 24 MiB of files */
	REQ_LE(alen, (3u << 20) + 64 * 4096);
	REQ_LE(alen * 6, apparent);
	uint64_t idx = 0;
	REQ_EQ(rkv_snap_index(a, alen, &idx), 0);
	REQ_EQ(idx, 1234);
	REQ(rkv_snap_unpack(a, alen, dst, err, sizeof(err)) == 0, "unpack: %s", err);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t l1, l2;
		uint8_t *b1 = slurp(src, files[i], &l1), *b2 = slurp(dst, files[i], &l2);
		REQ(l1 == l2 && !memcmp(b1, b2, l1), "%s differs", files[i]);
		free(b1);
		free(b2);
	}
	REQ_T(!exists(dst, "LOCK"));
	/* the copy packs to the same bytes: the archive depends on the contents only */
	void *b;
	size_t blen;
	REQ(rkv_snap_pack(dst, 1234, &b, &blen, err, sizeof(err)) == 0, "pack: %s", err);
	REQ_T(blen == alen && !memcmp(a, b, alen));
	free(b);
	/* an existing directory is refused, and left as it was */
	REQ_EQ(rkv_snap_unpack(a, alen, dst, err, sizeof(err)), -1);
	REQ(strstr(err, "exists"), "message: %s", err);
	REQ_T(!exists(dst, "LOCK"));
	/* an empty directory gives an archive of no file, which unpacks to one */
	REQ_EQ(mkdir(dst2, 0755), 0);
	REQ_EQ(rkv_snap_pack(dst2, 1, &b, &blen, err, sizeof(err)), 0);
	REQ_EQ(blen, 40);
	REQ_EQ(rmdir(dst2), 0);
	REQ(rkv_snap_unpack(b, blen, dst2, err, sizeof(err)) == 0, "unpack: %s", err);
	REQ_T(exists(dst2, "."));
	free(b);
	free(a);
	pbox_test_rmtree(tmp);
	free(src);
	free(dst);
	free(dst2);
	free(tmp);
}
END_TEST

/* unpack must refuse the archive and create nothing */
static void refused(const void *a, size_t len, const char *dst, const char *what, size_t i)
{
	char err[256] = "";
	REQ(rkv_snap_unpack(a, len, dst, err, sizeof(err)) == -1, "%s %zu unpacked", what, i);
	REQ(err[0] && !strchr(err, '\n'), "%s %zu: message '%s'", what, i, err);
	struct stat st;
	REQ(lstat(dst, &st) == -1 && errno == ENOENT, "%s %zu: left %s", what, i, dst);
}

START_TEST(test_snap_damage)
{
	char *tmp = pbox_test_tmpdir("raftkv-snapd");
	REQ_T(tmp);
	char *src = path2(tmp, "src"), *dst = path2(tmp, "dst");
	REQ_EQ(mkdir(src, 0755), 0);
	put_file(src, "a", 5000);
	put_bytes(src, "a", 0, 5000, 1);
	char *sub = path2(src, "d");
	REQ_EQ(mkdir(sub, 0755), 0);
	put_file(src, "d/b", 100);
	put_bytes(src, "d/b", 0, 100, 2);
	void *a;
	size_t len;
	char err[256];
	REQ(rkv_snap_pack(src, 77, &a, &len, err, sizeof(err)) == 0, "pack: %s", err);
	uint8_t *p = a;
	for (size_t l = 0; l < len; l++)
		refused(p, l, dst, "truncation to", l);
	for (size_t i = 0; i < len; i++) {
		p[i] ^= 0xff;
		refused(p, len, dst, "flip of byte", i);
		p[i] ^= 0x01 ^ 0xff;
		refused(p, len, dst, "bit flip of byte", i);
		p[i] ^= 0x01;
	}
	/* the index is read from the header alone; anything else is refused */
	uint64_t idx;
	REQ_EQ(rkv_snap_index(p, len, &idx), 0);
	REQ_EQ(idx, 77);
	REQ_EQ(rkv_snap_index(p, 39, &idx), -1);
	REQ_EQ(rkv_snap_index(NULL, 0, &idx), -1);
	for (size_t i = 0; i < 28; i++) {
		p[i] ^= 0x10;
		REQ(rkv_snap_index(p, len, &idx) == -1, "header flip %zu", i);
		p[i] ^= 0x10;
	}
	uint8_t junk[256];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	REQ_EQ(rkv_snap_index(junk, sizeof(junk), &idx), -1);
	REQ_EQ(rkv_snap_unpack(p, len, dst, err, sizeof(err)), 0);
	free(a);
	free(sub);

	/* a sample of the flips of the big archive */
	char *big = path2(tmp, "big"), *bdst = path2(tmp, "bdst");
	make_tree(big);
	REQ(rkv_snap_pack(big, 5, &a, &len, err, sizeof(err)) == 0, "pack: %s", err);
	p = a;
	pbox_rng rng;
	pbox_rng_seed(&rng, pbox_test_seed());
	for (unsigned i = 0; i < 300; i++) {
		size_t at = (size_t)pbox_rng_below(&rng, len);
		uint8_t x = (uint8_t)(1 + pbox_rng_below(&rng, 255));
		p[at] ^= x;
		refused(p, len, bdst, "flip in the big archive at", at);
		p[at] ^= x;
	}
	free(a);
	pbox_test_rmtree(tmp);
	free(big);
	free(bdst);
	free(src);
	free(dst);
	free(tmp);
}
END_TEST

/* An archive built by hand: files of (name, size, extents (offset, length)) */
typedef struct hfile {
	const char *name;
	size_t nlen; /* 0: strlen(name) */
	uint64_t size;
	uint32_t next;
	uint64_t ext[3][2];
} hfile;

static wbuf hand(const hfile *f, uint32_t nf, uint32_t nfiles, uint32_t reserved, size_t extra)
{
	wbuf w = { 0 };
	w_bytes(&w, "RKVSNAP1", 8);
	w_le(&w, 42, 8);
	w_le(&w, nfiles, 4);
	w_le(&w, reserved, 4);
	w_crc(&w, 0);
	for (uint32_t i = 0; i < nf; i++) {
		size_t start = w.n, nl = f[i].nlen ? f[i].nlen : strlen(f[i].name);
		w_le(&w, nl, 2);
		w_bytes(&w, f[i].name, nl);
		w_le(&w, f[i].size, 8);
		w_le(&w, f[i].next, 4);
		for (uint32_t e = 0; e < f[i].next; e++) {
			w_le(&w, f[i].ext[e][0], 8);
			w_le(&w, f[i].ext[e][1], 4);
			for (uint64_t j = 0; j < f[i].ext[e][1]; j++)
				w_le(&w, 0x5a, 1);
		}
		w_crc(&w, start);
	}
	for (size_t i = 0; i < extra; i++)
		w_le(&w, 0, 1);
	uint32_t crc = pbox_crc32c(0, w.p, w.n); /* of the bytes before the trailer */
	w_bytes(&w, "RKVEND01", 8);
	w_le(&w, crc, 4);
	return w;
}

START_TEST(test_snap_rules)
{
	char *tmp = pbox_test_tmpdir("raftkv-snapr");
	REQ_T(tmp);
	char *dst = path2(tmp, "dst");
	char err[256];
	const hfile ok[2] = { { "a", 0, 5000, 2, { { 0, 4096 }, { 4096, 904 } } },
			      { "w/x", 0, 1u << 30, 1, { { 1u << 29, 1u << 20 } } } };
	wbuf w = hand(ok, 2, 2, 0, 0);
	REQ(rkv_snap_unpack(w.p, w.n, dst, err, sizeof(err)) == 0, "unpack: %s", err);
	free(w.p);
	pbox_test_rmtree(dst);
	static const struct { hfile f[2]; uint32_t nf; const char *msg; } c[] = {
		{ { { "../x", 0, 0, 0, { { 0 } } } }, 1, ".." },
		{ { { "/x", 0, 0, 0, { { 0 } } } }, 1, "empty" },
		{ { { "a//b", 0, 0, 0, { { 0 } } } }, 1, "more than one" },
		{ { { "a/b/c", 0, 0, 0, { { 0 } } } }, 1, "more than one" },
		{ { { "a/", 0, 0, 0, { { 0 } } } }, 1, "empty" },
		{ { { "./a", 0, 0, 0, { { 0 } } } }, 1, "." },
		{ { { "LOCK", 0, 0, 0, { { 0 } } } }, 1, "LOCK" },
		{ { { "a\0b", 3, 0, 0, { { 0 } } } }, 1, "NUL" },
		{ { { "", 0, 4096, 1, { { 0, 4096 } } } }, 1, "0 or more" },
		{ { { "b", 0, 0, 0, { { 0 } } }, { "a", 0, 0, 0, { { 0 } } } }, 2, "order" },
		{ { { "a", 0, 0, 0, { { 0 } } }, { "a", 0, 0, 0, { { 0 } } } }, 2, "repeated" },
		{ { { "w", 0, 0, 0, { { 0 } } }, { "w/x", 0, 0, 0, { { 0 } } } }, 2, "also a file" },
		{ { { "a", 0, 8192, 1, { { 100, 4096 } } } }, 1, "multiple of 4096" },
		{ { { "a", 0, 8192, 1, { { 0, 0 } } } }, 1, "0 or more than 1 MiB" },
		{ { { "a", 0, 4u << 20, 1, { { 0, (1u << 20) + 4096 } } } }, 1, "1 MiB" },
		{ { { "a", 0, 8192, 2, { { 0, 8192 }, { 4096, 4096 } } } }, 1, "overlapping" },
		{ { { "a", 0, 8192, 2, { { 4096, 4096 }, { 0, 4096 } } } }, 1, "order" },
		{ { { "a", 0, 8192, 1, { { 4096, 8192 } } } }, 1, "beyond the file size" },
		{ { { "a", 0, 8192, 1, { { 16384, 4096 } } } }, 1, "beyond the file size" },
		{ { { "a", 0, 8192, 2, { { 0, 100 }, { 4096, 100 } } } }, 1, "partial block" },
		{ { { "a", 0, (1ull << 40) + 1, 0, { { 0 } } } }, 1, "1 TiB" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		w = hand(c[i].f, c[i].nf, c[i].nf, 0, 0);
		REQ(rkv_snap_unpack(w.p, w.n, dst, err, sizeof(err)) == -1, "case %zu", i);
		REQ(strstr(err, c[i].msg), "case %zu: '%s' without '%s'", i, err, c[i].msg);
		REQ(!exists(tmp, "dst"), "case %zu left the directory", i);
		free(w.p);
	}
	const struct { uint32_t nfiles, reserved; size_t extra; const char *msg; } h[] = {
		{ 3, 0, 0, "cut short" },           /* a file missing */
		{ 1, 0, 0, "after the last file" }, /* a file too many */
		{ UINT32_MAX, 0, 0, "more files than" },
		{ 2, 1, 0, "header" },
		{ 2, 0, 1, "after the last file" },
		{ 3, 0, 1, "cut short" },           /* half a name length */
		{ 3, 0, 30, "0 or more" },          /* a name length of 0 */
	};
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
		w = hand(ok, 2, h[i].nfiles, h[i].reserved, h[i].extra);
		REQ(rkv_snap_unpack(w.p, w.n, dst, err, sizeof(err)) == -1, "header case %zu", i);
		REQ(strstr(err, h[i].msg), "header case %zu: '%s' without '%s'", i, err, h[i].msg);
		REQ(!exists(tmp, "dst"), "header case %zu left the directory", i);
		free(w.p);
	}
	/* the message names the file, counted from 1 */
	const hfile two[2] = { ok[0], { "w/x", 0, 8192, 1, { { 8192, 4096 } } } };
	w = hand(two, 2, 2, 0, 0);
	REQ_EQ(rkv_snap_unpack(w.p, w.n, dst, err, sizeof(err)), -1);
	REQ(!strcmp(err, "snapshot: file 2 (w/x): extent beyond the file size"), "'%s'", err);
	free(w.p);
	pbox_test_rmtree(tmp);
	free(dst);
	free(tmp);
}
END_TEST

static const char *pj(char buf[512], const char *a, const char *b)
{
	snprintf(buf, 512, "%s/%s", a, b);
	return buf;
}

START_TEST(test_snap_pack_refuse)
{
	char *tmp = pbox_test_tmpdir("raftkv-snapp");
	REQ_T(tmp);
	char err[256], p[512];
	void *a;
	size_t len;
	put_file(tmp, "data", 100);
	REQ_EQ(symlink("data", pj(p, tmp, "link")), 0);
	REQ_T(rkv_snap_pack(tmp, 1, &a, &len, err, sizeof(err)) != 0);
	REQ(strstr(err, "/link: not a regular file") && a == NULL && len == 0, "'%s'", err);
	REQ_EQ(unlink(pj(p, tmp, "link")), 0);
	REQ_EQ(mkfifo(pj(p, tmp, "fifo"), 0644), 0);
	REQ_T(rkv_snap_pack(tmp, 1, &a, &len, err, sizeof(err)) != 0);
	REQ(strstr(err, "/fifo: not a regular file") && a == NULL, "'%s'", err);
	REQ_EQ(unlink(pj(p, tmp, "fifo")), 0);
	REQ_EQ(mkdir(pj(p, tmp, "d"), 0755), 0);
	REQ_EQ(mkdir(pj(p, tmp, "d/e"), 0755), 0);
	REQ_T(rkv_snap_pack(tmp, 1, &a, &len, err, sizeof(err)) != 0);
	REQ(strstr(err, "/d/e: a directory two levels down"), "'%s'", err);
	REQ_EQ(rmdir(pj(p, tmp, "d/e")), 0);
	REQ(rkv_snap_pack(tmp, 1, &a, &len, err, sizeof(err)) == 0, "pack: %s", err);
	free(a);
	REQ_T(rkv_snap_pack("/nonexistent/raftkv", 1, &a, &len, err, sizeof(err)) == -ENOENT);
	pbox_test_rmtree(tmp);
	free(tmp);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raftkv-formats");
	TCase *tc = tcase_create("formats");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_entry_roundtrip);
	tcase_add_test(tc, test_entry_limits);
	tcase_add_test(tc, test_entry_reject);
	tcase_add_test(tc, test_entry_damage);
	tcase_add_test(tc, test_snap_roundtrip);
	tcase_add_test(tc, test_snap_damage);
	tcase_add_test(tc, test_snap_rules);
	tcase_add_test(tc, test_snap_pack_refuse);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
