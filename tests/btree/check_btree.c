/*
 * check_btree.c — the B+tree's tree layer through its public header pbox/btree.h (black
 * box: nothing here includes a private header): point operations against an oracle, and the
 * limits. The other tree-layer suites: check_btree_catalog.c, check_btree_scan.c,
 * check_btree_smo.c, check_btree_concurrency.c, check_btree_powercut.c (and
 * check_btree_batch.c); their shared helpers are btree_test_util.h.
 *
 *   oracle       random operations on two trees against in-memory sorted arrays: every
 *                return code, every looked-up value (copy and callback forms, ETOOSMALL),
 *                range scans forward and reverse and prefix scans with early stops, cursor
 *                walks (first / last / seek / seek_prev, next / prev) with changes to other
 *                keys between their steps; keys of every length 0..key_max with shared
 *                prefixes, 0x00 / 0xFF bytes and keys that prefix others; values from 0
 *                bytes across the inline / overflow boundary to 4 pages; 4 and 16 KiB
 *                pages, a 64-page budget (constant eviction) and a large one; verify after
 *                every phase, a store reopen in the middle, a final drain.
 *   limits       key_max / value_max, keys and values at and over the limit (values up to
 *                17 MiB), NULL arguments: PBOX_EINVAL, nothing changed, out-parameters
 *                untouched; many maximal keys with maximal inline values.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces); PBOX_STRESS_SCALE lengthens.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- differential test against a sorted-array oracle -------------------------------- */

static uint8_t rbyte(pbox_rng *r)
{
	switch (pbox_rng_below(r, 8)) {
	case 0:
		return 0x00;
	case 1:
		return 0xff;
	case 2:
	case 3:
	case 4:
		return (uint8_t)('a' + pbox_rng_below(r, 3)); /* small alphabet: shared prefixes */
	default:
		return (uint8_t)pbox_rng_next(r);
	}
}

/* A length in [0, max], mostly short. */
static uint32_t rlen(pbox_rng *r, uint32_t max)
{
	uint32_t cap;
	switch (pbox_rng_below(r, 16)) {
	case 0:
		return 0;
	case 1:
		return max;
	case 2:
	case 3:
		cap = max;
		break;
	case 4:
	case 5:
	case 6:
		cap = max < 64 ? max : 64;
		break;
	default:
		cap = max < 12 ? max : 12;
		break;
	}
	return (uint32_t)pbox_rng_below(r, (uint64_t)cap + 1);
}

/* A key: often one in the oracle (hits), a prefix or an extension or a neighbour of one, or
 * fresh. Returns its length. */
static uint32_t gen_key(pbox_rng *r, const oracle *o, uint8_t *buf, uint32_t kmax)
{
	uint32_t c = (uint32_t)pbox_rng_below(r, 16);
	if (o->n && c < 10) {
		const kv *e = &o->a[pbox_rng_below(r, o->n)];
		uint32_t kl = e->kl;
		if (kl)
			memcpy(buf, e->k, kl);
		switch (c) {
		case 6: /* a prefix of an existing key */
			return (uint32_t)pbox_rng_below(r, (uint64_t)kl + 1);
		case 7: /* an extension */
		{
			uint32_t add = 1 + (uint32_t)pbox_rng_below(r, 4);
			while (kl < kmax && add--)
				buf[kl++] = rbyte(r);
			return kl;
		}
		case 8: /* a neighbour: last byte +- 1 */
			if (kl)
				buf[kl - 1] = (uint8_t)(buf[kl - 1] + (pbox_rng_below(r, 2) ? 1 : 0xff));
			return kl;
		case 9: /* shares a prefix, then differs */
		{
			uint32_t keep = (uint32_t)pbox_rng_below(r, (uint64_t)kl + 1);
			uint32_t nl = keep + (uint32_t)pbox_rng_below(r, (uint64_t)(kmax - keep) / 4 + 2);
			if (nl > kmax)
				nl = kmax;
			for (uint32_t i = keep; i < nl; i++)
				buf[i] = rbyte(r);
			return nl;
		}
		default:
			return kl;
		}
	}
	uint32_t kl = rlen(r, kmax);
	for (uint32_t i = 0; i < kl; i++)
		buf[i] = rbyte(r);
	return kl;
}

/* A value length in [0, vmax]: mostly short, sometimes around a quarter to half a page
 * (where values move between the leaf and overflow pages), rarely up to vmax. */
static uint32_t vlen_pick(pbox_rng *r, uint32_t vmax, uint32_t ps)
{
	uint32_t cap;
	switch (pbox_rng_below(r, 64)) {
	case 0:
		return 0;
	case 1:
		return vmax;
	case 2:
	case 3:
		cap = vmax;
		break;
	case 4:
	case 5:
	case 6:
	case 7:
	case 8:
	case 9:
	case 10:
	case 11:
		cap = ps / 2;
		break;
	default:
		cap = pbox_rng_below(r, 2) ? 64 : 12;
		break;
	}
	if (cap > vmax)
		cap = vmax;
	return (uint32_t)pbox_rng_below(r, (uint64_t)cap + 1);
}

static uint32_t gen_val(pbox_rng *r, uint8_t *buf, uint32_t vmax, uint32_t ps)
{
	uint32_t vl = vlen_pick(r, vmax, ps);
	uint64_t x = pbox_rng_next(r);
	for (uint32_t i = 0; i < vl; i++) {
		if (i % 8 == 0)
			x = mix64(x + i);
		buf[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
	return vl;
}

typedef struct diff_cfg {
	uint32_t ps;
	uint64_t budget_pages;
	const char *name;
} diff_cfg;

static const diff_cfg diff_cfgs[] = {
	{ 4096, 64, "4K pages, 64-page budget" },
	{ 4096, 16384, "4K pages, large budget" },
	{ 16384, 64, "16K pages, 64-page budget" },
	{ 16384, 4096, "16K pages, large budget" },
};

typedef struct diff_state {
	pbox_bt *bt[2];
	oracle o[2];
	uint8_t *key, *key2, *key3, *val, *buf;
	uint32_t kmax, vcap, ps;
	pbox_store *st;
	uint64_t ops, hits;
} diff_state;

/* The cursor is at oracle entry i: its key and value match; the key is copied to cur. */
static uint32_t cursor_at(pbox_bt_cursor *cu, const oracle *o, size_t i, uint8_t *cur,
			  const char *how)
{
	const void *kp = NULL, *vp = NULL;
	size_t kpl = 0, vpl = 0;
	CK_RC(pbox_bt_cursor_key(cu, &kp, &kpl), 0);
	CK_RC(pbox_bt_cursor_value(cu, &vp, &vpl), 0);
	const kv *e = &o->a[i];
	REQ(beq(kp, kpl, e->k, e->kl), "cursor after %s: key (len %zu) is not the oracle's key %zu "
	    "(len %u) of %zu", how, kpl, i, e->kl, o->n);
	REQ(beq(vp, vpl, e->v, e->vl), "cursor after %s: value (len %zu) differs from the "
	    "oracle's (len %u)", how, vpl, e->vl);
	if (kpl)
		memcpy(cur, kp, kpl);
	return (uint32_t)kpl;
}

/* A cursor positioned by first / last / seek / seek_prev, then moved back and forth, with
 * changes to other keys (made through the tree) between its steps. */
static void cursor_walk(diff_state *d, pbox_rng *r, unsigned t)
{
	pbox_bt *bt = d->bt[t];
	oracle *o = &d->o[t];
	pbox_bt_cursor *cu = NULL;
	CK_RC(pbox_bt_cursor_open(bt, &cu), 0);
	REQ_T(cu != NULL);
	uint32_t kl = gen_key(r, o, d->key, d->kmax);
	bool ex;
	size_t pos = orc_lb(o, d->key, kl, &ex), want;
	const size_t NONE = (size_t)-1;
	int rc;
	const char *how;
	switch (pbox_rng_below(r, 4)) {
	case 0:
		how = "first";
		rc = pbox_bt_cursor_first(cu);
		want = o->n ? 0 : NONE;
		break;
	case 1:
		how = "last";
		rc = pbox_bt_cursor_last(cu);
		want = o->n ? o->n - 1 : NONE;
		break;
	case 2:
		how = "seek";
		rc = pbox_bt_cursor_seek(cu, d->key, kl);
		want = pos < o->n ? pos : NONE;
		break;
	default:
		how = "seek_prev";
		rc = pbox_bt_cursor_seek_prev(cu, d->key, kl);
		want = ex ? pos : pos > 0 ? pos - 1 : NONE;
		break;
	}
	if (want == NONE) { /* nothing there: unpositioned */
		CK_RC(rc, PBOX_ENOTFOUND);
		const void *kp;
		size_t kpl;
		CK_RC(pbox_bt_cursor_next(cu), PBOX_EINVAL);
		CK_RC(pbox_bt_cursor_prev(cu), PBOX_EINVAL);
		CK_RC(pbox_bt_cursor_key(cu, &kp, &kpl), PBOX_EINVAL);
		pbox_bt_cursor_close(cu);
		return;
	}
	REQ(rc == 0, "cursor %s = %s (oracle: entry %zu of %zu)", how, pbox_status_name(rc), want,
	    o->n);
	uint8_t *cur = d->key2;
	uint32_t curl = cursor_at(cu, o, want, cur, how);
	unsigned steps = 1 + (unsigned)pbox_rng_below(r, 40);
	for (unsigned i = 0; i < steps; i++) {
		if (pbox_rng_below(r, 4) == 0) { /* change another key while the cursor is open */
			uint32_t ol = gen_key(r, o, d->key3, d->kmax);
			size_t op = orc_lb(o, d->key3, ol, &ex);
			if (!beq(d->key3, ol, cur, curl)) {
				if (ex && pbox_rng_below(r, 2)) {
					CK_RC(pbox_bt_remove(bt, d->key3, ol, 0), 0);
					orc_del(o, op);
				} else {
					size_t vm = pbox_bt_value_max(d->st, ol);
					uint32_t vl = gen_val(r, d->val, vm < d->vcap ? (uint32_t)vm : d->vcap,
							      d->ps);
					CK_RC(pbox_bt_upsert(bt, d->key3, ol, d->val, vl, 0), 0);
					orc_set(o, d->key3, ol, d->val, vl);
				}
			}
		}
		bool fwd = pbox_rng_below(r, 2);
		pos = orc_lb(o, cur, curl, &ex);
		REQ_T(ex); /* the cursor's key is never changed here */
		size_t nx = fwd ? (pos + 1 < o->n ? pos + 1 : NONE) : (pos > 0 ? pos - 1 : NONE);
		rc = fwd ? pbox_bt_cursor_next(cu) : pbox_bt_cursor_prev(cu);
		how = fwd ? "next" : "prev";
		if (nx == NONE) { /* at the end: stays where it was */
			CK_RC(rc, PBOX_ENOTFOUND);
			(void)cursor_at(cu, o, pos, cur, how);
		} else {
			REQ(rc == 0, "cursor %s = %s (oracle: entry %zu of %zu)", how,
			    pbox_status_name(rc), nx, o->n);
			curl = cursor_at(cu, o, nx, cur, how);
		}
	}
	pbox_bt_cursor_close(cu);
}

/* One random operation on tree t. w_* are weights (per 100) shifting the mix per phase. */
static void diff_op(diff_state *d, pbox_rng *r, unsigned t, unsigned w_ins, unsigned w_del)
{
	pbox_bt *bt = d->bt[t];
	oracle *o = &d->o[t];
	uint32_t kl = gen_key(r, o, d->key, d->kmax);
	bool ex;
	size_t pos = orc_lb(o, d->key, kl, &ex);
	d->hits += ex;
	unsigned flags = pbox_rng_below(r, 16) == 0 ? PBOX_BT_DURABLE : 0;
	size_t vmax = pbox_bt_value_max(d->st, kl);
	uint32_t vcap = vmax < d->vcap ? (uint32_t)vmax : d->vcap;
	/* scans and cursor walks 1/64 of the time each (they read long ranges); the rest by
	 * the weights */
	unsigned sel = (unsigned)pbox_rng_below(r, 64);
	if (sel == 1) {
		d->ops++;
		cursor_walk(d, r, t);
		return;
	}
	unsigned c = sel == 0 ? ~0u : (unsigned)pbox_rng_below(r, w_ins + w_del + 45);
	d->ops++;
	if (c < w_ins) { /* insert */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_insert(bt, d->key, kl, d->val, vl, flags), ex ? PBOX_EEXIST : 0);
		if (!ex)
			orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del) { /* remove */
		CK_RC(pbox_bt_remove(bt, d->key, kl, flags), ex ? 0 : PBOX_ENOTFOUND);
		if (ex)
			orc_del(o, pos);
	} else if (c < w_ins + w_del + 15) { /* upsert */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_upsert(bt, d->key, kl, d->val, vl, flags), 0);
		orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del + 25) { /* update */
		uint32_t vl = gen_val(r, d->val, vcap, d->ps);
		CK_RC(pbox_bt_update(bt, d->key, kl, d->val, vl, flags), ex ? 0 : PBOX_ENOTFOUND);
		if (ex)
			orc_set(o, d->key, kl, d->val, vl);
	} else if (c < w_ins + w_del + 40) { /* lookup, copy form */
		size_t vl = 0xdeadbeef, cap;
		size_t want = ex ? o->a[pos].vl : 0;
		switch (pbox_rng_below(r, 4)) {
		case 0:
			cap = want;
			break;
		case 1:
			cap = want ? pbox_rng_below(r, want) : 0; /* too small when want > 0 */
			break;
		case 2:
			cap = want + pbox_rng_below(r, 8);
			break;
		default:
			cap = d->vcap;
			break;
		}
		int rc = pbox_bt_lookup(bt, d->key, kl, d->buf, cap, &vl);
		if (!ex) {
			CK_RC(rc, PBOX_ENOTFOUND);
			REQ(vl == 0xdeadbeef, "lookup of a missing key wrote *vlen");
		} else if (cap < want) {
			CK_RC(rc, PBOX_ETOOSMALL);
			REQ(vl == want, "ETOOSMALL: *vlen = %zu, want %zu (cap %zu)", vl, want, cap);
		} else {
			CK_RC(rc, 0);
			REQ(beq(d->buf, vl, o->a[pos].v, want), "lookup: value differs (len %zu, "
				"want %zu)", vl, want);
		}
	} else if (c < w_ins + w_del + 45) { /* lookup, callback form */
		cb_ctx cc = { .buf = d->buf, .cap = d->vcap, .ret = pbox_rng_below(r, 4) ? 0 : 7 };
		int rc = pbox_bt_lookup_cb(bt, d->key, kl, lookup_cb_fn, &cc);
		if (!ex) {
			CK_RC(rc, PBOX_ENOTFOUND);
			REQ(cc.calls == 0, "lookup_cb called fn for a missing key");
		} else {
			CK_RC(rc, cc.ret);
			REQ_T(cc.calls >= 1);
			REQ(beq(d->buf, cc.len, o->a[pos].v, o->a[pos].vl),
			    "lookup_cb: value differs (len %zu, want %u)", cc.len, o->a[pos].vl);
		}
	} else { /* scan */
		uint32_t kl2 = gen_key(r, o, d->key2, d->kmax);
		const uint8_t *s = d->key, *en = d->key2;
		size_t sl = kl, el = kl2;
		unsigned b = (unsigned)pbox_rng_below(r, 8);
		if (b == 0)
			s = NULL, sl = 0;
		else if (b == 1)
			en = NULL, el = 0;
		else if (b == 2)
			s = en = NULL, sl = el = 0;
		else if (b < 6 && kcmp(s, sl, en, el) > 0) { /* usually an ordered range */
			const uint8_t *tp = s;
			size_t tl = sl;
			s = en, sl = el, en = tp, el = tl;
		}
		unsigned stop = pbox_rng_below(r, 3) == 0 ? 1 + (unsigned)pbox_rng_below(r, 30) : 0;
		if (pbox_rng_below(r, 4) == 0) /* the prefix: often a prefix of an existing key */
			check_prefix_scan(bt, o, d->key, pbox_rng_below(r, (uint64_t)kl + 1),
					  pbox_rng_below(r, 2), stop, "prefix scan");
		else
			check_scan_mode(bt, o, s, sl, en, el, stop, (unsigned)pbox_rng_below(r, 3),
					"random scan");
	}
}

static void diff_open_trees(diff_state *d)
{
	d->bt[0] = bt_open(d->st, "alpha");
	d->bt[1] = bt_open(d->st, "beta");
}

static void diff_close_trees(diff_state *d)
{
	pbox_bt_close(d->bt[0]);
	pbox_bt_close(d->bt[1]);
	d->bt[0] = d->bt[1] = NULL;
}

START_TEST(test_oracle)
{
	const diff_cfg *cfg = &diff_cfgs[_i];
	uint64_t seed = pbox_test_seed() ^ (0xd1ffull * (unsigned)(_i + 1));
	fprintf(stderr, "oracle (%s): seed %llu\n", cfg->name, (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, cfg->ps, cfg->budget_pages);
	diff_state d;
	memset(&d, 0, sizeof(d));
	d.st = e.st;
	d.kmax = (uint32_t)pbox_bt_key_max(e.st);
	REQ_T(d.kmax >= 1 && d.kmax <= KBUF);
	size_t vm = pbox_bt_value_max(e.st, 0);
	d.ps = cfg->ps;
	d.vcap = vm < 4u * cfg->ps ? (uint32_t)vm : 4u * cfg->ps; /* beyond: the limits test */
	d.key = xmalloc(KBUF);
	d.key2 = xmalloc(KBUF);
	d.key3 = xmalloc(KBUF);
	d.val = xmalloc(d.vcap);
	d.buf = xmalloc(d.vcap + 8);
	pbox_bt_close(bt_create(e.st, "alpha"));
	pbox_bt_close(bt_create(e.st, "beta"));
	diff_open_trees(&d);

	/* phases: grow, mixed, reopen, shrink, grow, mixed */
	static const unsigned w_ins[] = { 45, 25, 25, 10, 45, 25 };
	static const unsigned w_del[] = { 5, 20, 20, 45, 5, 20 };
	unsigned per_phase = 5000 * pbox_test_scale();
	uint64_t max_leaves = 0, max_depth = 0;
	for (unsigned ph = 0; ph < 6; ph++) {
		for (unsigned i = 0; i < per_phase; i++)
			diff_op(&d, &r, (unsigned)pbox_rng_below(&r, 2), w_ins[ph], w_del[ph]);
		for (unsigned t = 0; t < 2; t++) {
			char what[64];
			snprintf(what, sizeof(what), "phase %u tree %u", ph, t);
			check_all(d.bt[t], &d.o[t], what);
			pbox_bt_verify_info info = bt_verify(d.bt[t]);
			max_leaves = info.leaves > max_leaves ? info.leaves : max_leaves;
			max_depth = info.depth > max_depth ? info.depth : max_depth;
		}
		CK_RC(pbox_store_checkpoint(e.st), 0); /* recycles the log */
		if (ph == 2) { /* reopen the store in the middle and continue */
			diff_close_trees(&d);
			env_reopen(&e);
			d.st = e.st;
			diff_open_trees(&d);
			for (unsigned t = 0; t < 2; t++)
				check_all(d.bt[t], &d.o[t], "after reopen");
		}
	}
	/* drain one tree completely, in random order */
	oracle *o = &d.o[0];
	while (o->n) {
		size_t pos = pbox_rng_below(&r, o->n);
		CK_RC(pbox_bt_remove(d.bt[0], o->a[pos].k, o->a[pos].kl, 0), 0);
		orc_del(o, pos);
	}
	check_all(d.bt[0], o, "drained");
	check_all(d.bt[1], &d.o[1], "other tree after drain");
	/* and it still works */
	for (unsigned i = 0; i < 200; i++)
		diff_op(&d, &r, 0, 60, 10);
	check_all(d.bt[0], o, "refilled");
	fprintf(stderr, "oracle (%s): %llu ops (%llu on present keys), up to %llu leaves, depth "
			"%llu\n", cfg->name, (unsigned long long)d.ops, (unsigned long long)d.hits,
		(unsigned long long)max_leaves, (unsigned long long)max_depth);
	REQ_GE(max_leaves, 8); /* the test made the trees split */
	diff_close_trees(&d);
	env_fini(&e);
	orc_free(&d.o[0]);
	orc_free(&d.o[1]);
	free(d.key);
	free(d.key2);
	free(d.key3);
	free(d.val);
	free(d.buf);
}
END_TEST

/* ---- limits and bad arguments -------------------------------------------------------- */

static int never_cb(const void *v, size_t vl, void *arg)
{
	(void)v;
	(void)vl;
	(*(unsigned *)arg)++;
	return 0;
}

static void limits_case(uint32_t ps)
{
	env e;
	env_init(&e, ps, 1024);
	pbox_bt *bt = bt_create(e.st, "limits");
	size_t kmax = pbox_bt_key_max(e.st);
	REQ(kmax == KEY_MAX_PS(ps), "key_max %zu at %u-byte pages, node.h documents %u", kmax, ps,
	    KEY_MAX_PS(ps));
	/* inline values always fit: the entry limit minus the key */
	size_t vm0 = pbox_bt_value_max(e.st, 0), vmk = pbox_bt_value_max(e.st, kmax);
	REQ_GE(vm0, ENTRY_MAX_PS(ps));
	REQ_GE(vmk, ENTRY_MAX_PS(ps) - kmax);
	REQ_GE(vm0, vmk);
	/* values up to 17 MiB are tested at the limit; a larger limit at 17 MiB (the required
	 * minimum is 16 MiB) */
	size_t big = vm0 < (17u << 20) ? vm0 + 1 : (17u << 20);
	uint8_t *val = xmalloc(big), *buf = xmalloc(big);
	uint8_t *key = xmalloc(kmax + 1);
	for (size_t i = 0; i < big; i++)
		val[i] = (uint8_t)mix64(i);
	for (size_t i = 0; i <= kmax; i++)
		key[i] = (uint8_t)(0xff - i % 3);
	size_t vl;

	/* a key of key_max bytes with a value of value_max(key_max) bytes (at most the 17 MiB
	 * tested here): works */
	size_t vt = vmk < big ? vmk : big;
	CK_RC(pbox_bt_insert(bt, key, kmax, val, vt, 0), 0);
	vl = 0;
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, vt, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	/* one byte more of either: EINVAL, nothing changes */
	if (vmk < big) {
		CK_RC(pbox_bt_upsert(bt, key, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_update(bt, key, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		/* another key of the same length (key + 1 differs from key in its first byte) */
		CK_RC(pbox_bt_insert(bt, key + 1, kmax, val, vmk + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_upsert(bt, key + 1, kmax, val, vmk + 1, 0), PBOX_EINVAL);
	}
	CK_RC(pbox_bt_insert(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, key, kmax + 1, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_remove(bt, key, kmax + 1, 0), PBOX_EINVAL);
	vl = 12345;
	CK_RC(pbox_bt_lookup(bt, key, kmax + 1, buf, big, &vl), PBOX_EINVAL);
	REQ_EQ(vl, 12345);
	unsigned calls = 0;
	CK_RC(pbox_bt_lookup_cb(bt, key, kmax + 1, never_cb, &calls), PBOX_EINVAL);
	REQ_EQ(calls, 0);

	/* the empty key with the largest value */
	if (vm0 + 1 <= big) {
		CK_RC(pbox_bt_insert(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
		CK_RC(pbox_bt_upsert(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
	}
	size_t vtest = vm0 < big ? vm0 : big;
	CK_RC(pbox_bt_upsert(bt, key, 0, val, vtest, 0), 0);
	CK_RC(pbox_bt_update(bt, key, 0, val, vtest, 0), 0);
	if (vm0 + 1 <= big)
		CK_RC(pbox_bt_update(bt, key, 0, val, vm0 + 1, 0), PBOX_EINVAL);
	vl = 0;
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, vtest, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	vl = 0;
	if (vtest > 0) {
		CK_RC(pbox_bt_lookup(bt, key, 0, buf, vtest - 1, &vl), PBOX_ETOOSMALL);
		REQ_EQ(vl, vtest);
	}

	/* NULL key or value with a length */
	CK_RC(pbox_bt_insert(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, NULL, 3, val, 1, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_remove(bt, NULL, 3, 0), PBOX_EINVAL);
	vl = 777;
	CK_RC(pbox_bt_lookup(bt, NULL, 3, buf, big, &vl), PBOX_EINVAL);
	REQ_EQ(vl, 777);
	CK_RC(pbox_bt_lookup_cb(bt, NULL, 3, never_cb, &calls), PBOX_EINVAL);
	REQ_EQ(calls, 0);
	CK_RC(pbox_bt_insert(bt, "nv", 2, NULL, 5, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_upsert(bt, "nv", 2, NULL, 5, 0), PBOX_EINVAL);
	CK_RC(pbox_bt_update(bt, key, 0, NULL, 5, 0), PBOX_EINVAL);

	/* none of that changed anything: exactly the two keys, with their values */
	pbox_bt_verify_info info = bt_verify(bt);
	REQ_EQ(info.keys, 2);
	REQ_EQ(bt_count(bt), 2);
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	/* and they survive a reopen */
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "limits");
	CK_RC(pbox_bt_lookup(bt, key, kmax, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vt));
	CK_RC(pbox_bt_lookup(bt, key, 0, buf, big, &vl), 0);
	REQ_T(beq(buf, vl, val, vtest));
	CK_RC(pbox_bt_remove(bt, key, 0, 0), 0);
	CK_RC(pbox_bt_remove(bt, key, kmax, 0), 0);
	REQ_EQ(bt_verify(bt).keys, 0);
	pbox_bt_close(bt);
	env_fini(&e);
	free(val);
	free(buf);
	free(key);
}

START_TEST(test_limits)
{
	static const uint32_t sizes[] = { 4096, 16384, 65536 };
	limits_case(sizes[_i]);
}
END_TEST

/* Many maximal keys with maximal values (deep trees with the fewest entries per node). */
START_TEST(test_max_entries)
{
	uint64_t seed = pbox_test_seed() ^ 0x3a3a;
	fprintf(stderr, "max entries: seed %llu\n", (unsigned long long)seed);
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	env_init(&e, 4096, 64);
	pbox_bt *bt = bt_create(e.st, "max");
	oracle o;
	memset(&o, 0, sizeof(o));
	uint32_t kmax = (uint32_t)pbox_bt_key_max(e.st);
	uint8_t key[KBUF], val[4096];
	for (unsigned i = 0; i < 600 * pbox_test_scale(); i++) {
		/* long keys that differ late: separators cannot be truncated much */
		memset(key, 0xab, kmax);
		uint32_t kl = kmax - (uint32_t)pbox_rng_below(&r, 3);
		put32(key + kl - 4, (uint32_t)pbox_rng_below(&r, 100000));
		size_t vm = pbox_bt_value_max(e.st, kl);
		uint32_t vl = (uint32_t)(vm < ENTRY_MAX_PS(4096) - kl ? vm : ENTRY_MAX_PS(4096) - kl);
		memset(val, (int)i, vl);
		CK_RC(pbox_bt_upsert(bt, key, kl, val, vl, 0), 0);
		orc_set(&o, key, kl, val, vl);
		if (pbox_rng_below(&r, 4) == 0) {
			size_t pos = pbox_rng_below(&r, o.n);
			CK_RC(pbox_bt_remove(bt, o.a[pos].k, o.a[pos].kl, 0), 0);
			orc_del(&o, pos);
		}
	}
	check_all(bt, &o, "max entries");
	fprintf(stderr, "max entries: %zu keys, depth %llu\n", o.n,
		(unsigned long long)bt_verify(bt).depth);
	pbox_bt_close(bt);
	orc_free(&o);
	env_fini(&e);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree");
	TCase *tc = tcase_create("oracle");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_oracle, 0, (int)(sizeof(diff_cfgs) / sizeof(diff_cfgs[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_limits, 0, 3);
	tcase_add_test(tc, test_max_entries);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
