/* btree_test_util.c — see btree_test_util.h. */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------------------------- */

int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

bool beq(const void *a, size_t al, const void *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	REQ_T(p != NULL);
	return p;
}

void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i)); /* big-endian: keys sort by number */
}

uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t fnv64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* ---- stores on memfs -------------------------------------------------------------------- */

void env_open(env *e)
{
	int rc = pbox_store_open(DIR_, &e->o, &e->st);
	REQ(rc == 0, "store open: %s: %s", pbox_status_name(rc), e->err);
}

void env_init(env *e, uint32_t ps, uint64_t budget_pages)
{
	memset(e, 0, sizeof(*e));
	CK_RC(pbox_io_memfs_create(&e->fs), 0);
	pbox_store_options_init(&e->o);
	e->o.io = pbox_io_memfs_io(e->fs);
	e->o.create = true;
	e->o.page_size = ps;
	e->o.budget_bytes = budget_pages * ps;
	e->o.max_bytes = 1ull << 30;
	e->o.wal_segment_size = 4u << 20;
	const pbox_redo_handler *h;
	unsigned n;
	pbox_bt_redo_handlers(&h, &n);
	REQ_T(h != NULL && n > 0);
	e->o.redo = h;
	e->o.nredo = n;
	e->o.errbuf = e->err;
	e->o.errbuf_len = sizeof(e->err);
	env_open(e);
}

void env_reopen(env *e)
{
	CK_RC(pbox_store_close(e->st), 0);
	e->st = NULL;
	env_open(e);
}

void env_fini(env *e)
{
	if (e->st)
		CK_RC(pbox_store_close(e->st), 0);
	e->st = NULL;
	pbox_io_memfs_destroy(e->fs);
}

pbox_bt *bt_create(pbox_store *st, const char *name)
{
	pbox_bt *bt = NULL;
	CK_RC(pbox_bt_create(st, name, &bt), 0);
	REQ_T(bt != NULL);
	return bt;
}

pbox_bt *bt_open(pbox_store *st, const char *name)
{
	pbox_bt *bt = NULL;
	CK_RC(pbox_bt_open(st, name, &bt), 0);
	REQ_T(bt != NULL);
	return bt;
}

pbox_bt_verify_info bt_verify(pbox_bt *bt)
{
	pbox_bt_verify_info info;
	memset(&info, 0xee, sizeof(info));
	CK_RC(pbox_bt_verify(bt, &info), 0);
	REQ(info.leaves >= 1, "verify: %llu leaves", (unsigned long long)info.leaves);
	REQ(info.depth < 64, "verify: depth %llu", (unsigned long long)info.depth);
	return info;
}

/* Scan callback that counts pairs. */
int count_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(uint64_t *)arg)++;
	return 0;
}

uint64_t bt_count(pbox_bt *bt)
{
	uint64_t n = 0;
	CK_RC(pbox_bt_scan(bt, NULL, 0, NULL, 0, count_fn, &n), 0);
	return n;
}

/* ---- catalog listings ------------------------------------------------------------------- */

int list_fn(const char *name, size_t len, void *arg)
{
	name_list *l = arg;
	if (l->n >= 400 || len > PBOX_BT_NAME_MAX || len == 0 || name == NULL) {
		l->bad = 1;
		return -77;
	}
	memcpy(l->names[l->n], name, len);
	l->names[l->n][len] = 0;
	l->lens[l->n] = len;
	l->n++;
	if (l->stop_after && l->n == l->stop_after)
		return 99;
	return 0;
}

int name_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	return kcmp(x, strlen(x), y, strlen(y));
}

/* want: sorted names (strcmp-able C strings) */
void check_list(pbox_store *st, const char **want, unsigned n)
{
	static name_list l;
	memset(&l, 0, sizeof(l));
	CK_RC(pbox_bt_list(st, list_fn, &l), 0);
	REQ(!l.bad, "list: bad callback arguments");
	REQ_EQ(l.n, n);
	for (unsigned i = 0; i < n; i++)
		REQ(beq(l.names[i], l.lens[i], want[i], strlen(want[i])),
		    "list: name %u is \"%s\", want \"%s\"", i, l.names[i], want[i]);
	if (n >= 2) {
		memset(&l, 0, sizeof(l));
		l.stop_after = 2;
		CK_RC(pbox_bt_list(st, list_fn, &l), 99);
		REQ_EQ(l.n, 2);
	}
}
/* ---- a sorted-array oracle -------------------------------------------------------------- */

size_t orc_lb(const oracle *o, const void *k, size_t kl, bool *exact)
{
	size_t lo = 0, hi = o->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (kcmp(o->a[mid].k, o->a[mid].kl, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (exact)
		*exact = lo < o->n && kcmp(o->a[lo].k, o->a[lo].kl, k, kl) == 0;
	return lo;
}

void orc_set(oracle *o, const void *k, size_t kl, const void *v, size_t vl)
{
	bool ex;
	size_t pos = orc_lb(o, k, kl, &ex);
	uint8_t *nv = xmalloc(vl);
	if (vl)
		memcpy(nv, v, vl);
	if (ex) {
		free(o->a[pos].v);
		o->a[pos].v = nv;
		o->a[pos].vl = (uint32_t)vl;
		return;
	}
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 256;
		o->a = realloc(o->a, o->cap * sizeof(kv));
		REQ_T(o->a != NULL);
	}
	memmove(&o->a[pos + 1], &o->a[pos], (o->n - pos) * sizeof(kv));
	o->a[pos].k = xmalloc(kl);
	if (kl)
		memcpy(o->a[pos].k, k, kl);
	o->a[pos].kl = (uint32_t)kl;
	o->a[pos].v = nv;
	o->a[pos].vl = (uint32_t)vl;
	o->n++;
}

void orc_del(oracle *o, size_t pos)
{
	free(o->a[pos].k);
	free(o->a[pos].v);
	memmove(&o->a[pos], &o->a[pos + 1], (o->n - pos - 1) * sizeof(kv));
	o->n--;
}

void orc_free(oracle *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->a[i].k);
		free(o->a[i].v);
	}
	free(o->a);
	memset(o, 0, sizeof(*o));
}
typedef struct scan_ctx {
	const oracle *o;
	size_t lo, hi; /* expected: oracle entries [lo, hi), ascending or (rev) descending */
	bool rev;
	unsigned calls, stop_at;
	char msg[256];
} scan_ctx;

static int scan_cmp_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	scan_ctx *c = arg;
	c->calls++;
	if (c->calls > c->hi - c->lo) {
		snprintf(c->msg, sizeof(c->msg), "scan reports a key (len %zu) beyond the range "
			 "(after %u pairs)", kl, c->calls - 1);
		return SCAN_BAD;
	}
	size_t pos = c->rev ? c->hi - c->calls : c->lo + c->calls - 1;
	const kv *e = &c->o->a[pos];
	if (!beq(k, kl, e->k, e->kl)) {
		snprintf(c->msg, sizeof(c->msg), "scan pair %u: key (len %zu) is not the oracle's "
			 "key %zu (len %u)", c->calls - 1, kl, pos, e->kl);
		return SCAN_BAD;
	}
	if (!beq(v, vl, e->v, e->vl)) {
		snprintf(c->msg, sizeof(c->msg), "scan pair %u: value (len %zu) differs from the "
			 "oracle's (len %u)", c->calls - 1, vl, e->vl);
		return SCAN_BAD;
	}
	if (c->stop_at && c->calls == c->stop_at)
		return SCAN_STOP;
	return 0;
}

static void scan_result(const scan_ctx *c, int rc, const char *what)
{
	REQ(!c->msg[0], "%s%s: %s (range [%zu, %zu) of %zu)", what, c->rev ? " (reverse)" : "",
	    c->msg, c->lo, c->hi, c->o->n);
	size_t total = c->hi - c->lo;
	if (c->stop_at && c->stop_at <= total) {
		REQ(rc == SCAN_STOP, "%s: scan stopped at %u returned %s", what, c->stop_at,
		    pbox_status_name(rc));
		REQ_EQ(c->calls, c->stop_at);
	} else {
		REQ(rc == 0, "%s: scan returned %s", what, pbox_status_name(rc));
		REQ(c->calls == total, "%s%s: scan reported %u pairs, oracle has %zu (range [%zu, "
			"%zu) of %zu)", what, c->rev ? " (reverse)" : "", c->calls, total, c->lo,
		    c->hi, c->o->n);
	}
}

/* Scan [start, end) (NULL = open) with an optional stop and compare with the oracle.
 * mode 0: pbox_bt_scan; 1: pbox_bt_scan_ex forward; 2: pbox_bt_scan_ex reverse. */
void check_scan_mode(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl,
		     const uint8_t *en, size_t el, unsigned stop_at, unsigned mode,
		     const char *what)
{
	size_t lo = s ? orc_lb(o, s, sl, NULL) : 0;
	size_t hi = en ? orc_lb(o, en, el, NULL) : o->n;
	if (hi < lo)
		hi = lo;
	scan_ctx c = { .o = o, .lo = lo, .hi = hi, .rev = mode == 2, .stop_at = stop_at };
	int rc = mode == 0 ? pbox_bt_scan(bt, s, sl, en, el, scan_cmp_fn, &c) :
			     pbox_bt_scan_ex(bt, s, sl, en, el, mode == 2 ? PBOX_BT_SCAN_REVERSE : 0,
					     scan_cmp_fn, &c);
	scan_result(&c, rc, what);
}

void check_scan(pbox_bt *bt, const oracle *o, const uint8_t *s, size_t sl,
		const uint8_t *en, size_t el, unsigned stop_at, const char *what)
{
	for (unsigned mode = 0; mode < 3; mode++)
		check_scan_mode(bt, o, s, sl, en, el, stop_at, mode, what);
}

/* Every key starting with prefix, either direction. */
void check_prefix_scan(pbox_bt *bt, const oracle *o, const uint8_t *p, size_t pl,
		       bool rev, unsigned stop_at, const char *what)
{
	size_t lo = orc_lb(o, p, pl, NULL), hi = lo;
	while (hi < o->n && o->a[hi].kl >= pl && (pl == 0 || memcmp(o->a[hi].k, p, pl) == 0))
		hi++;
	scan_ctx c = { .o = o, .lo = lo, .hi = hi, .rev = rev, .stop_at = stop_at };
	int rc = pbox_bt_scan_prefix(bt, p, pl, rev ? PBOX_BT_SCAN_REVERSE : 0, scan_cmp_fn, &c);
	scan_result(&c, rc, what);
}

int lookup_cb_fn(const void *v, size_t vl, void *arg)
{
	cb_ctx *c = arg;
	c->calls++;
	c->len = vl;
	if (vl)
		memcpy(c->buf, v, vl < c->cap ? vl : c->cap);
	return c->ret;
}

void check_all(pbox_bt *bt, const oracle *o, const char *what)
{
	pbox_bt_verify_info info = bt_verify(bt);
	REQ(info.keys == o->n, "%s: verify counts %llu keys, oracle has %zu", what,
	    (unsigned long long)info.keys, o->n);
	check_scan(bt, o, NULL, 0, NULL, 0, 0, what);
}
/* ---- self-validating values (concurrency and power cuts) ------------------------------ */

uint32_t sv_len(uint32_t n, uint32_t ver, uint32_t span)
{
	return VHDR + (uint32_t)(mix64((uint64_t)n << 32 | ver) % span);
}

void sv_make(uint8_t *b, uint32_t n, uint32_t ver, uint32_t len)
{
	put32(b, n);
	put32(b + 4, ver);
	put32(b + 8, len);
	uint64_t x = mix64((uint64_t)ver << 32 | n);
	for (uint32_t i = 12; i < len - 8; i++)
		b[i] = (uint8_t)((x >> (8 * (i % 8))) ^ i);
	uint64_t h = fnv64(b, len - 8);
	memcpy(b + len - 8, &h, 8);
}

/* Whether b is a whole value written for n; *ver = its version. */
bool sv_check(const uint8_t *b, size_t len, uint32_t n, uint32_t *ver)
{
	if (len < VHDR || len > 1u << 20 || get32(b) != n || get32(b + 8) != len)
		return false;
	uint64_t h = fnv64(b, len - 8), s;
	memcpy(&s, b + len - 8, 8);
	if (h != s)
		return false;
	/* and exactly the bytes sv_make writes for this n and version */
	uint32_t v = get32(b + 4);
	uint64_t x = mix64((uint64_t)v << 32 | n);
	for (uint32_t i = 12; i < len - 8; i++)
		if (b[i] != (uint8_t)((x >> (8 * (i % 8))) ^ i))
			return false;
	*ver = v;
	return true;
}

/* key of number n: n big-endian, then 0..12 filler bytes depending on n */
uint32_t nkey(uint8_t *k, uint32_t n)
{
	put32(k, n);
	uint32_t f = (n * 7u) % 13u;
	for (uint32_t i = 0; i < f; i++)
		k[4 + i] = (uint8_t)(n * 31u + i * 17u);
	return 4 + f;
}

bool nkey_check(const uint8_t *k, size_t kl, uint32_t *n)
{
	if (kl < 4)
		return false;
	uint8_t want[32];
	*n = get32(k);
	return beq(k, kl, want, nkey(want, *n));
}
