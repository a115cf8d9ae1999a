/*
 * fuzz_dump.c — the kvstore dump parser (examples/kvstore/dump.c, linked into this target
 * only) on arbitrary bytes.
 *
 * Input: the bytes of a would-be dump file, as they are.
 * Checks: the parse returns 0 or KV_DUMP_EBAD (never crashes, never reads out of bounds:
 * ASan), with a line number within the input's line count + 1 and a message on failure;
 * callbacks see names of 1..255 bytes without 0x00 and keys ascending strictly within a
 * tree. On a dump that parses, the canonical rewrite of what the callbacks saw (through the
 * writer) parses again to the same counts, and rewriting that gives the same bytes (the
 * format round-trips). A callback that stops the parse (every 7th pair when the input's
 * length is odd) makes the parse return the callback's value.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"
#include "kvstore.h"

typedef struct rec {
	unsigned char *p; /* records: kind byte ('T' or 'P'), u32 len, bytes [, u32 len, bytes] */
	size_t len, cap;
	uint64_t pairs;
	unsigned char prev[KV_DUMP_KEY_MAX];
	size_t prev_len;
	bool have_prev, stop_some;
} rec;

static void rec_put(rec *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		r->p = realloc(r->p, cap);
		FZ_CHECK(r->p, "out of memory");
		r->cap = cap;
	}
	memcpy(r->p + r->len, p, n);
	r->len += n;
}

static void rec_bytes(rec *r, const void *p, size_t n)
{
	uint32_t l = (uint32_t)n;
	rec_put(r, &l, 4);
	rec_put(r, p, n);
}

#define STOPPED 77

static int on_tree(void *arg, const char *name, size_t len)
{
	rec *r = arg;
	FZ_CHECK(len >= 1 && len <= PBOX_BT_NAME_MAX && !memchr(name, 0, len) && !name[len],
		 "bad tree name of %zu bytes", len);
	rec_put(r, "T", 1);
	rec_bytes(r, name, len);
	r->have_prev = false;
	return 0;
}

static int on_pair(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	rec *r = arg;
	FZ_CHECK(kl <= KV_DUMP_KEY_MAX && vl <= KV_DUMP_VALUE_MAX, "pair over the limits");
	if (r->have_prev) {
		size_t m = kl < r->prev_len ? kl : r->prev_len;
		int c = m ? memcmp(r->prev, k, m) : 0;
		FZ_CHECK(c < 0 || (c == 0 && r->prev_len < kl), "keys out of order");
	}
	memcpy(r->prev, k, kl);
	r->prev_len = kl;
	r->have_prev = true;
	rec_put(r, "P", 1);
	rec_bytes(r, k, kl);
	rec_bytes(r, v, vl);
	r->pairs++;
	return r->stop_some && r->pairs % 7 == 0 ? STOPPED : 0;
}

static const kv_dump_cb cbs = { on_tree, on_pair, NULL };

static int parse_buf(const uint8_t *data, size_t size, rec *r, kv_dump_result *res)
{
	/* fmemopen refuses a 0-byte buffer: give it one byte and read none of it */
	static const uint8_t empty[1] = { 0 };
	FILE *f = fmemopen((void *)(size ? data : empty), size ? size : 1, "r");
	FZ_CHECK(f, "fmemopen failed");
	if (!size)
		(void)fgetc(f);
	int rc = kv_dump_parse(f, &cbs, r, res);
	fclose(f);
	return rc;
}

/* Rewrite what the callbacks recorded through the writer. */
static char *rewrite(const rec *r, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);
	FZ_CHECK(f, "open_memstream failed");
	kv_dump_writer w;
	kv_dump_begin(&w, f);
	bool in_tree = false;
	for (size_t o = 0; o < r->len;) {
		char kind = (char)r->p[o++];
		uint32_t l1, l2;
		memcpy(&l1, r->p + o, 4);
		const unsigned char *b1 = r->p + o + 4;
		o += 4 + l1;
		if (kind == 'T') {
			if (in_tree)
				kv_dump_end_tree(&w);
			kv_dump_tree(&w, (const char *)b1, l1);
			in_tree = true;
			continue;
		}
		memcpy(&l2, r->p + o, 4);
		kv_dump_pair(&w, b1, l1, r->p + o + 4, l2);
		o += 4 + l2;
	}
	if (in_tree)
		kv_dump_end_tree(&w);
	kv_dump_finish(&w);
	fclose(f);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rec r;
	memset(&r, 0, sizeof(r));
	r.stop_some = size % 2 == 1;
	kv_dump_result res;
	int rc = parse_buf(data, size, &r, &res);
	uint64_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (rc == STOPPED) {
		FZ_CHECK(r.stop_some && r.pairs % 7 == 0, "a stop nobody asked for");
	} else if (rc) {
		FZ_CHECK(rc == KV_DUMP_EBAD, "parse returned %d", rc);
		FZ_CHECK(res.msg[0] && res.line >= 1 && res.line <= lines + 1,
			 "error without a message or at line %llu of %llu",
			 (unsigned long long)res.line, (unsigned long long)lines);
	} else {
		size_t l1, l2;
		char *w1 = rewrite(&r, &l1);
		rec r2;
		memset(&r2, 0, sizeof(r2));
		kv_dump_result res2;
		rc = parse_buf((const uint8_t *)w1, l1, &r2, &res2);
		FZ_CHECK(rc == 0, "the rewrite does not parse: line %llu: %s",
			 (unsigned long long)res2.line, res2.msg);
		FZ_CHECK(res2.pairs == res.pairs && res2.trees == res.trees, "counts differ");
		char *w2 = rewrite(&r2, &l2);
		FZ_CHECK(l1 == l2 && !memcmp(w1, w2, l1), "the rewrite is not canonical");
		free(w1);
		free(w2);
		free(r2.p);
	}
	free(r.p);
	return 0;
}
