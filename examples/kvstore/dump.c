/*
 * dump.c — the kvstore dump format: a versioned, portable text form of the trees of a store
 * (its writer and its parser). `kvstore dump` / `load` (ops.c) and the batch command `dump
 * FILE` use it; fuzz/fuzz_dump.c feeds the parser arbitrary bytes.
 *
 * FORMAT, version 1 (every line ends with '\n'; fields are separated by exactly one space)
 *
 *   LINE                          MEANING
 *   pagebox-dump 1                header: the format name and version; always the first line
 *   tree NAME                     a tree section starts; NAME: the tree's name, %HH-encoded,
 *                                 1..255 bytes decoded, no 0x00 byte
 *   KEY VALUE                     one pair (inside a section only): both %HH-encoded; keys
 *                                 strictly ascending (memcmp order, a prefix first) within
 *                                 the section; key at most 8192 bytes, value at most 64 MiB
 *   end-tree PAIRS CRC            the section ends: PAIRS pairs, CRC its checksum (below)
 *   end PAIRS TREES CRC           trailer: all pairs, the number of sections, the dump's
 *                                 checksum; nothing may follow it
 *
 * %HH encoding: bytes 0x21..0x7e other than '%' stand for themselves; every other byte is
 * '%' and two hex digits (written upper case, read in either case). So a field never holds
 * a space, tab, CR or LF, and any byte string round-trips. A pair line has exactly one space;
 * `end-tree` lines have two, so no pair line is ever read as one (a pair whose key is
 * "end-tree" is still a pair); `tree` and `end` appear only outside sections.
 * Numbers: decimal, no sign, no leading zero (except "0"). CRC: 8 hex digits (written lower
 * case), a CRC-32C (Castagnoli, reflected, init and final xor 0xffffffff: pbox_crc32c with
 * seed 0; "123456789" gives e3069283) of:
 *   section CRC  for each pair in order: u64le(key length) key u64le(value length) value
 *   dump CRC     for each section in order: u64le(name length) name u64le(PAIRS) u32le(CRC)
 * (u64le / u32le: little-endian integers of 8 / 4 bytes; names and pairs decoded.)
 * A reader refuses a file that breaks any rule — a version other than 1, a malformed line, a
 * count or checksum that disagrees, keys out of order, a missing trailer (a truncated file),
 * a last line without '\n', anything after the trailer — naming the line (1-based).
 *
 * Invariants: the parser never trusts a length it has not checked: it decodes one line at a
 * time into buffers it grows, rejects a field over the format's limits before keeping it,
 * and stops at the first error. It calls back only for lines that are well-formed so far,
 * so a consumer that buffers (ops.c: a transaction) applies nothing of a damaged dump.
 * Threading: no shared state; a writer or a parse is used by one thread.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <pbox/crc32c.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_MAGIC "pagebox-dump"

static void put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc_len(uint32_t crc, uint64_t len)
{
	uint8_t b[8];
	put_u64le(b, len);
	return pbox_crc32c(crc, b, 8);
}

/* The section CRC after one more pair. */
static uint32_t crc_pair(uint32_t crc, const void *k, size_t kl, const void *v, size_t vl)
{
	crc = crc_len(crc, kl);
	crc = pbox_crc32c(crc, k, kl);
	crc = crc_len(crc, vl);
	return pbox_crc32c(crc, v, vl);
}

/* The dump CRC after one more section. */
static uint32_t crc_section(uint32_t crc, const void *name, size_t nl, uint64_t pairs,
			    uint32_t scrc)
{
	uint8_t b[4] = { (uint8_t)scrc, (uint8_t)(scrc >> 8), (uint8_t)(scrc >> 16),
			 (uint8_t)(scrc >> 24) };
	crc = crc_len(crc, nl);
	crc = pbox_crc32c(crc, name, nl);
	crc = crc_len(crc, pairs);
	return pbox_crc32c(crc, b, 4);
}

/* ---- writer ---------------------------------------------------------------------------- */

/* Encode in chunks through a stack buffer: fwrite of runs is much faster than putc per byte
 * on values of megabytes. */
static void write_enc(FILE *f, const void *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = buf;
	char out[3 * 1024];
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c > 0x20 && c < 0x7f && c != '%') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
		if (o > sizeof(out) - 3) {
			fwrite(out, 1, o, f);
			o = 0;
		}
	}
	if (o)
		fwrite(out, 1, o, f);
}

void kv_dump_begin(kv_dump_writer *w, FILE *f)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
	fprintf(f, DUMP_MAGIC " %d\n", KV_DUMP_VERSION);
}

void kv_dump_tree(kv_dump_writer *w, const char *name, size_t len)
{
	fputs("tree ", w->f);
	write_enc(w->f, name, len);
	putc('\n', w->f);
	w->name_len = len < sizeof(w->name) ? len : sizeof(w->name);
	memcpy(w->name, name, w->name_len);
	w->tree_pairs = 0;
	w->tree_crc = 0;
}

void kv_dump_pair(kv_dump_writer *w, const void *k, size_t kl, const void *v, size_t vl)
{
	write_enc(w->f, k, kl);
	putc(' ', w->f);
	write_enc(w->f, v, vl);
	putc('\n', w->f);
	w->tree_crc = crc_pair(w->tree_crc, k, kl, v, vl);
	w->tree_pairs++;
}

void kv_dump_end_tree(kv_dump_writer *w)
{
	fprintf(w->f, "end-tree %llu %08x\n", (unsigned long long)w->tree_pairs,
		(unsigned)w->tree_crc);
	w->crc = crc_section(w->crc, w->name, w->name_len, w->tree_pairs, w->tree_crc);
	w->pairs += w->tree_pairs;
	w->trees++;
}

void kv_dump_finish(kv_dump_writer *w)
{
	fprintf(w->f, "end %llu %llu %08x\n", (unsigned long long)w->pairs,
		(unsigned long long)w->trees, (unsigned)w->crc);
}

/* ---- parser ----------------------------------------------------------------------------- */

typedef struct buf {
	unsigned char *p;
	size_t len, cap;
} buf;

typedef struct parser {
	kv_dump_result *res;
	buf key, val, prev, name;
	bool have_prev;
} parser;

static int fail(parser *ps, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->res->msg, sizeof(ps->res->msg), fmt, ap);
	va_end(ap);
	return KV_DUMP_EBAD;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int grow(buf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	unsigned char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Decode the n bytes at s (one field) into b, at most max bytes decoded. */
static int decode(parser *ps, const char *what, const char *s, size_t n, size_t max, buf *b)
{
	/* every decoded byte takes at least one character: n bounds the result */
	if (grow(b, n + 1))
		return fail(ps, "out of memory");
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return fail(ps, "bad %%HH escape in the %s", what);
			b->p[j++] = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c > 0x20 && c < 0x7f) {
			b->p[j++] = c;
		} else {
			return fail(ps, "byte 0x%02x in the %s must be written %%%02X", c, what, c);
		}
		if (j > max)
			return fail(ps, "%s longer than %zu bytes", what, max);
	}
	b->len = j;
	return 0;
}

/* A decimal number: no sign, no leading zero, no overflow. */
static int parse_num(parser *ps, const char *what, const char *s, uint64_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return fail(ps, "bad %s count '%.24s'", what, s);
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return fail(ps, "bad %s count '%.24s'", what, s);
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int parse_crc(parser *ps, const char *s, uint32_t *out)
{
	if (strlen(s) != 8)
		return fail(ps, "bad checksum '%.24s' (8 hex digits)", s);
	uint32_t v = 0;
	for (int i = 0; i < 8; i++) {
		int h = hexval((unsigned char)s[i]);
		if (h < 0)
			return fail(ps, "bad checksum '%.24s' (8 hex digits)", s);
		v = v << 4 | (uint32_t)h;
	}
	*out = v;
	return 0;
}

/* Split line at single spaces into at most max fields; the count, or max + 1 if more. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;
	for (;;) {
		if (n == max)
			return max + 1;
		f[n++] = p;
		char *sp = strchr(p, ' ');
		if (!sp)
			return n;
		*sp = 0;
		p = sp + 1;
	}
}

static int cmp_bytes(const buf *a, const buf *b)
{
	size_t m = a->len < b->len ? a->len : b->len;
	int c = m ? memcmp(a->p, b->p, m) : 0;
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

enum { S_HEADER, S_OUTSIDE, S_INSIDE, S_DONE };

static int parse_lines(parser *ps, FILE *in, const kv_dump_cb *cb, void *arg)
{
	kv_dump_result *res = ps->res;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int state = S_HEADER, r = 0;
	uint64_t tree_pairs = 0;
	uint32_t tree_crc = 0, crc = 0;
	while ((n = getline(&line, &cap, in)) >= 0) {
		res->line++;
		if (n == 0 || line[n - 1] != '\n') {
			r = fail(ps, "the last line has no newline (a truncated dump?)");
			break;
		}
		line[--n] = 0;
		if ((size_t)n != strlen(line)) {
			r = fail(ps, "a 0x00 byte in the line (write it %%00)");
			break;
		}
		char *f[5] = { NULL };
		int nf;
		if (state == S_HEADER) {
			nf = split(line, f, 2);
			if (nf != 2 || strcmp(f[0], DUMP_MAGIC)) {
				r = fail(ps, "not a pagebox dump (the first line must be '" DUMP_MAGIC
					     " %d')", KV_DUMP_VERSION);
				break;
			}
			uint64_t v;
			if (parse_num(ps, "version", f[1], &v) || v != KV_DUMP_VERSION) {
				r = fail(ps, "unsupported dump version '%.24s' (this kvstore reads %d)",
					 f[1], KV_DUMP_VERSION);
				break;
			}
			res->version = (unsigned)v;
			state = S_OUTSIDE;
			continue;
		}
		if (state == S_DONE) {
			r = fail(ps, "text after the trailer");
			break;
		}
		if (state == S_INSIDE) {
			nf = split(line, f, 3);
			if (nf == 2) { /* a pair */
				if ((r = decode(ps, "key", f[0], strlen(f[0]), KV_DUMP_KEY_MAX,
						&ps->key)) ||
				    (r = decode(ps, "value", f[1], strlen(f[1]), KV_DUMP_VALUE_MAX,
						&ps->val)))
					break;
				if (ps->have_prev && cmp_bytes(&ps->prev, &ps->key) >= 0) {
					r = fail(ps, "key not above the previous key (keys ascend "
						     "strictly within a tree)");
					break;
				}
				tree_crc = crc_pair(tree_crc, ps->key.p, ps->key.len, ps->val.p,
						    ps->val.len);
				tree_pairs++;
				if (cb && cb->pair &&
				    (r = cb->pair(arg, ps->key.p, ps->key.len, ps->val.p, ps->val.len)))
					break;
				/* keep the key: swap buffers instead of copying */
				buf t = ps->prev;
				ps->prev = ps->key;
				ps->key = t;
				ps->have_prev = true;
				continue;
			}
			if (nf == 3 && !strcmp(f[0], "end-tree")) {
				uint64_t cnt;
				uint32_t c;
				if ((r = parse_num(ps, "pair", f[1], &cnt)) ||
				    (r = parse_crc(ps, f[2], &c)))
					break;
				if (cnt != tree_pairs) {
					r = fail(ps, "end-tree says %llu pairs, the section holds %llu",
						 (unsigned long long)cnt, (unsigned long long)tree_pairs);
					break;
				}
				if (c != tree_crc) {
					r = fail(ps, "checksum mismatch for the tree (end-tree says %08x, "
						     "the pairs give %08x)",
						 (unsigned)c, (unsigned)tree_crc);
					break;
				}
				crc = crc_section(crc, ps->name.p, ps->name.len, tree_pairs, tree_crc);
				res->pairs += tree_pairs;
				res->trees++;
				if (cb && cb->end_tree && (r = cb->end_tree(arg, tree_pairs)))
					break;
				state = S_OUTSIDE;
				continue;
			}
			r = fail(ps, "expected 'KEY VALUE' (one space) or 'end-tree PAIRS CRC'");
			break;
		}
		/* S_OUTSIDE */
		nf = split(line, f, 4);
		if (nf == 2 && !strcmp(f[0], "tree")) {
			if ((r = decode(ps, "tree name", f[1], strlen(f[1]), PBOX_BT_NAME_MAX,
					&ps->name)))
				break;
			if (ps->name.len == 0 || memchr(ps->name.p, 0, ps->name.len)) {
				r = fail(ps, "bad tree name (1..%u bytes, no 0x00)", PBOX_BT_NAME_MAX);
				break;
			}
			ps->name.p[ps->name.len] = 0; /* decode left room: callbacks get a C string */
			tree_pairs = 0;
			tree_crc = 0;
			ps->have_prev = false;
			if (cb && cb->tree && (r = cb->tree(arg, (const char *)ps->name.p, ps->name.len)))
				break;
			state = S_INSIDE;
			continue;
		}
		if (nf == 4 && !strcmp(f[0], "end")) {
			uint64_t pairs, trees;
			uint32_t c;
			if ((r = parse_num(ps, "pair", f[1], &pairs)) ||
			    (r = parse_num(ps, "tree", f[2], &trees)) || (r = parse_crc(ps, f[3], &c)))
				break;
			if (pairs != res->pairs || trees != res->trees) {
				r = fail(ps, "the trailer says %llu pairs in %llu trees, the dump holds "
					     "%llu in %llu",
					 (unsigned long long)pairs, (unsigned long long)trees,
					 (unsigned long long)res->pairs, (unsigned long long)res->trees);
				break;
			}
			if (c != crc) {
				r = fail(ps, "checksum mismatch for the dump (the trailer says %08x, the "
					     "trees give %08x)",
					 (unsigned)c, (unsigned)crc);
				break;
			}
			state = S_DONE;
			continue;
		}
		r = fail(ps, "expected 'tree NAME' or the trailer 'end PAIRS TREES CRC'");
		break;
	}
	if (!r && ferror(in)) {
		r = fail(ps, "read error: %s", strerror(errno ? errno : EIO));
	} else if (!r && state != S_DONE) {
		res->line++; /* the line that is missing */
		r = fail(ps, state == S_HEADER ? "empty input: not a pagebox dump"
					       : "the dump ends before its trailer (truncated?)");
	}
	free(line);
	return r;
}

int kv_dump_parse(FILE *in, const kv_dump_cb *cb, void *arg, kv_dump_result *res)
{
	memset(res, 0, sizeof(*res));
	parser ps;
	memset(&ps, 0, sizeof(ps));
	ps.res = res;
	int r = parse_lines(&ps, in, cb, arg);
	free(ps.key.p);
	free(ps.val.p);
	free(ps.prev.p);
	free(ps.name.p);
	return r;
}
