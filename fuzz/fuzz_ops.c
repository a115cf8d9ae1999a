/*
 * fuzz_ops.c — sequences of btree operations decoded from the input, checked against an
 * in-memory oracle, on a store in memfs with a 64-page pool (evictions), occasional
 * checkpoints, clean reopens, power cuts and process crashes (kill -9, then reopen, more
 * writes and maybe a power cut) with recovery.
 *
 * Keys: 32 fixed keys of 1 to 8 bytes (shared prefixes, 0x00 and 0xff bytes, keys that
 * prefix others). Values: self-describing (key, version, length, then bytes that are a
 * function of all three), 0 to 9000 bytes (the longer ones on overflow pages).
 * Input: a sequence of operations, each an opcode byte (low 4 bits: the operation; bit 7:
 * PBOX_BT_DURABLE) and its argument bytes. Running out of bytes ends the run.
 * Checks: every return code and every value read equals the oracle's; scans and cursor walks
 * (both directions, from a bound) see exactly the oracle's keys; a batch is applied whole;
 * after a clean reopen everything is there; after a power cut each key holds its state of the
 * last durability point (a durable operation, checkpoint or close that returned 0) or one it
 * took since, and never a value that was never written; pbox_bt_verify passes.
 * Transactions (op 13): every read inside sees its snapshot plus its own writes (get, and a
 * full scan in either direction); a single-key change made outside it meanwhile makes its
 * commit return PBOX_ECONFLICT exactly when it wrote that key, and is invisible to it; an
 * aborted or conflicting one changes nothing; after a power cut or crash that directly
 * follows a commit, it is there whole or not at all. Op 14 holds a read-only snapshot
 * across later operations and checks, when it ends, that it still sees its state.
 */
#include "fuzz_util.h"

#include <pbox/btree.h>
#include <pbox/txn.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#define NK 32u
#define VMAX 9000u
#define NHIST 64u
#define ABSENT 0u /* a state: 0 = absent, else (length << 20 | version) */

typedef struct cur {
	const uint8_t *p;
	size_t n;
} cur;

static bool take(cur *c, unsigned *out)
{
	if (!c->n)
		return false;
	*out = *c->p++;
	c->n--;
	return true;
}

static uint8_t keys[NK][8];
static size_t klens[NK];
static unsigned order[NK]; /* key indices in ascending key order */

static int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	return c ? (c < 0 ? -1 : 1) : (al < bl ? -1 : al > bl);
}

static void keys_init(void)
{
	if (klens[0])
		return;
	for (unsigned k = 0; k < NK; k++) {
		keys[k][0] = (uint8_t)(0x40 + k / 8);
		uint8_t b = k % 8 == 7 ? 0xff : (uint8_t)((k % 8) * 0x10);
		klens[k] = 1 + k % 8;
		memset(keys[k] + 1, b, klens[k] - 1);
		order[k] = k;
	}
	for (unsigned i = 1; i < NK; i++) /* insertion sort by key */
		for (unsigned j = i; j > 0 &&
		     kcmp(keys[order[j]], klens[order[j]], keys[order[j - 1]], klens[order[j - 1]]) < 0;
		     j--) {
			unsigned t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
}

static size_t vlen_of(uint32_t s)
{
	return s >> 20;
}

static void val_make(unsigned k, uint32_t s, uint8_t *buf)
{
	size_t n = vlen_of(s);
	uint8_t hdr[8];
	fz_put32(hdr, (uint32_t)k);
	fz_put32(hdr + 4, s);
	for (size_t i = 0; i < n; i++)
		buf[i] = i < 8 ? hdr[i] : (uint8_t)((k * 131u + s * 7u + i * 13u) ^ (i >> 5));
}

typedef struct state {
	uint32_t cur[NK];            /* the tree now */
	uint32_t dur[NK];            /* at the last durability point */
	uint32_t hist[NK][NHIST];    /* states taken since */
	unsigned nhist[NK];
	bool overflow[NK];           /* history too long: any state seen is fine */
	uint32_t ver;
} state;

static void st_set(state *s, unsigned k, uint32_t v)
{
	s->cur[k] = v;
	if (s->nhist[k] < NHIST)
		s->hist[k][s->nhist[k]++] = v;
	else
		s->overflow[k] = true;
}

static void st_durable(state *s)
{
	for (unsigned k = 0; k < NK; k++) {
		s->dur[k] = s->cur[k];
		s->nhist[k] = 0;
		s->overflow[k] = false;
	}
}

typedef struct env {
	pbox_io_memfs *fs;
	pbox_store_options o;
	pbox_store *st;
	pbox_bt *bt;
	char err[256];
} env;

static void env_open(env *e)
{
	int rc = pbox_store_open("/st", &e->o, &e->st);
	FZ_CHECK(rc == 0, "store open: %s (%s)", pbox_status_name(rc), e->err);
	rc = pbox_bt_open_or_create(e->st, "t", &e->bt);
	FZ_CHECK(rc == 0, "tree open: %s", pbox_status_name(rc));
}

static void env_close(env *e)
{
	pbox_bt_close(e->bt);
	int rc = pbox_store_close(e->st);
	FZ_CHECK(rc == 0, "store close: %s", pbox_status_name(rc));
	e->bt = NULL;
	e->st = NULL;
}

static uint8_t vbuf[VMAX + 64];

/* The state key k is in, read from the tree. */
static uint32_t read_state(env *e, unsigned k)
{
	size_t vl = 0;
	int rc = pbox_bt_lookup(e->bt, keys[k], klens[k], vbuf, sizeof(vbuf), &vl);
	if (rc == PBOX_ENOTFOUND)
		return ABSENT;
	FZ_CHECK(rc == 0, "lookup of key %u: %s", k, pbox_status_name(rc));
	FZ_CHECK(vl >= 8, "key %u: a value of %zu bytes was never written", k, vl);
	uint32_t s = fz_get32(vbuf + 4);
	FZ_CHECK(fz_get32(vbuf) == k && vlen_of(s) == vl, "key %u: a value that was never written", k);
	static uint8_t want[VMAX + 64];
	val_make(k, s, want);
	FZ_CHECK(memcmp(want, vbuf, vl) == 0, "key %u: value damaged", k);
	return s;
}

static void check_all(env *e, state *s)
{
	for (unsigned k = 0; k < NK; k++) {
		uint32_t got = read_state(e, k);
		FZ_CHECK(got == s->cur[k], "key %u: state %x, want %x", k, got, s->cur[k]);
	}
	pbox_bt_verify_info vi;
	int rc = pbox_bt_verify(e->bt, &vi);
	FZ_CHECK(rc == 0, "verify: %s", pbox_status_name(rc));
}

typedef struct scan_ck {
	state *s;
	unsigned pos[NK + 1], n, i;
	int bad;
} scan_ck;

static int scan_fn(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_ck *c = arg;
	if (c->i >= c->n) {
		c->bad = 1;
		return 1;
	}
	unsigned k = c->pos[c->i++];
	if (kcmp(key, klen, keys[k], klens[k]) != 0 || vlen != vlen_of(c->s->cur[k]))
		c->bad = 2;
	else if (vlen) {
		val_make(k, c->s->cur[k], vbuf);
		if (memcmp(vbuf, val, vlen))
			c->bad = 3;
	}
	return 0;
}

/* Compare a transaction's full scan with the states it must see. */
typedef struct view_ck {
	const uint32_t *want;
	unsigned i, n; /* position in the wanted sequence (order[] filtered), its length */
	unsigned seq[NK];
	int bad;
} view_ck;

static int view_fn(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	view_ck *c = arg;
	if (c->i >= c->n) {
		c->bad = 1;
		return 1;
	}
	unsigned k = c->seq[c->i++];
	if (kcmp(key, klen, keys[k], klens[k]) != 0 || vlen != vlen_of(c->want[k])) {
		c->bad = 2;
		return 1;
	}
	if (vlen) {
		val_make(k, c->want[k], vbuf);
		if (memcmp(vbuf, val, vlen))
			c->bad = 3;
	}
	return 0;
}

static int view_scan(pbox_txn *t, pbox_bt *bt, const uint32_t *want, bool rev)
{
	view_ck c = { .want = want };
	for (unsigned i = 0; i < NK; i++) {
		unsigned k = order[rev ? NK - 1 - i : i];
		if (want[k] != ABSENT)
			c.seq[c.n++] = k;
	}
	int rc = pbox_txn_scan(t, bt, NULL, 0, NULL, 0, rev ? PBOX_BT_SCAN_REVERSE : 0, view_fn, &c);
	if (rc)
		return rc;
	return c.bad ? 1000 + c.bad : c.i == c.n ? 0 : 999;
}

/* The state of k in a transaction's view (get), checked like read_state. */
static uint32_t txn_state(pbox_txn *t, pbox_bt *bt, unsigned k)
{
	size_t vl = 0;
	int rc = pbox_txn_get(t, bt, keys[k], klens[k], vbuf, sizeof(vbuf), &vl);
	if (rc == PBOX_ENOTFOUND)
		return ABSENT;
	FZ_CHECK(rc == 0 && vl >= 8, "txn get of key %u: %s", k, pbox_status_name(rc));
	uint32_t s = fz_get32(vbuf + 4);
	FZ_CHECK(fz_get32(vbuf) == k && vlen_of(s) == vl, "txn get key %u: never written", k);
	return s;
}

/* The last committed transaction, for the all-or-nothing check after a crash. */
typedef struct last_txn {
	bool valid;
	unsigned n;
	unsigned k[NK];
	uint32_t st[NK];
} last_txn;

static uint32_t new_state(state *s, unsigned lsel)
{
	size_t len = (lsel & 7) == 7 ? 3000 + (lsel >> 3) * 180 : 8 + (lsel >> 3) * 6;
	if (len > VMAX)
		len = VMAX;
	uint32_t v = ++s->ver & 0xfffff;
	if (!v)
		v = ++s->ver & 0xfffff;
	return (uint32_t)len << 20 | v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	keys_init();
	cur in = { data, size };
	static state s;
	memset(&s, 0, sizeof(s));
	env e;
	memset(&e, 0, sizeof(e));
	if (pbox_io_memfs_create(&e.fs))
		return 0;
	pbox_store_options_init(&e.o);
	e.o.io = pbox_io_memfs_io(e.fs);
	e.o.create = true;
	e.o.page_size = 4096;
	e.o.budget_bytes = 64 * 4096;
	e.o.max_bytes = 1u << 20;
	e.o.wal_segment_size = 256u << 10;
	e.o.wal_flush_delay_us = 0;
	e.o.no_direct_io = true;
	e.o.errbuf = e.err;
	e.o.errbuf_len = sizeof(e.err);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	e.o.redo = h;
	e.o.nredo = nh;
	env_open(&e);
	e.o.create = false;
	st_durable(&s); /* the tree's creation is durable */
	pbox_bt_batch *batch = NULL;
	FZ_CHECK(pbox_bt_batch_create(&batch) == 0, "batch");
	pbox_txn *held = NULL;  /* op 14's snapshot */
	static uint32_t held_state[NK];
	static last_txn lt;
	memset(&lt, 0, sizeof(lt));

	unsigned op, a, b;
	unsigned steps = 0;
	while (take(&in, &op) && steps++ < 400) {
		unsigned flags = (op & 0x80) ? PBOX_BT_DURABLE : 0;
		int rc;
		if ((op & 15) <= 3 || (op & 15) == 7 || (op & 15) == 13)
			lt.valid = false; /* a later write: the check is about the last one only */
		if (held && ((op & 15) == 9 || (op & 15) == 10 || (op & 15) == 12)) {
			pbox_txn_abort(held); /* the store closes: snapshots end first */
			held = NULL;
		}
		switch (op & 15) {
		case 0: /* insert */
		case 1: /* upsert */
		case 2: /* update */
		{
			if (!take(&in, &a) || !take(&in, &b))
				goto end;
			unsigned k = a % NK;
			uint32_t ns = new_state(&s, b);
			val_make(k, ns, vbuf);
			int want = 0;
			if ((op & 15) == 0) {
				rc = pbox_bt_insert(e.bt, keys[k], klens[k], vbuf, vlen_of(ns), flags);
				want = s.cur[k] ? PBOX_EEXIST : 0;
			} else if ((op & 15) == 1) {
				rc = pbox_bt_upsert(e.bt, keys[k], klens[k], vbuf, vlen_of(ns), flags);
			} else {
				rc = pbox_bt_update(e.bt, keys[k], klens[k], vbuf, vlen_of(ns), flags);
				want = s.cur[k] ? 0 : PBOX_ENOTFOUND;
			}
			FZ_CHECK(rc == want, "op %u on key %u: %s, want %s", op & 15, k,
				 pbox_status_name(rc), pbox_status_name(want));
			if (rc == 0)
				st_set(&s, k, ns);
			if (rc == 0 && flags)
				st_durable(&s);
			break;
		}
		case 3: /* remove */
			if (!take(&in, &a))
				goto end;
			rc = pbox_bt_remove(e.bt, keys[a % NK], klens[a % NK], flags);
			FZ_CHECK(rc == (s.cur[a % NK] ? 0 : PBOX_ENOTFOUND), "remove: %s",
				 pbox_status_name(rc));
			if (rc == 0)
				st_set(&s, a % NK, ABSENT);
			if (rc == 0 && flags)
				st_durable(&s);
			break;
		case 4: { /* lookup, with a buffer that may be too small */
			if (!take(&in, &a) || !take(&in, &b))
				goto end;
			unsigned k = a % NK;
			size_t cap = b < 200 ? b * 8 : sizeof(vbuf), vl = 0;
			rc = pbox_bt_lookup(e.bt, keys[k], klens[k], vbuf, cap, &vl);
			size_t want = vlen_of(s.cur[k]);
			if (!s.cur[k])
				FZ_CHECK(rc == PBOX_ENOTFOUND, "lookup absent key %u: %s", k, pbox_status_name(rc));
			else if (want > cap)
				FZ_CHECK(rc == PBOX_ETOOSMALL && vl == want, "lookup key %u cap %zu: %s", k,
					 cap, pbox_status_name(rc));
			else
				FZ_CHECK(rc == 0 && read_state(&e, k) == s.cur[k], "lookup key %u: %s", k,
					 pbox_status_name(rc));
			break;
		}
		case 5: { /* range scan [lo, hi) forward or reverse */
			if (!take(&in, &a) || !take(&in, &b))
				goto end;
			unsigned lo = a % (NK + 1), hi = b % (NK + 1); /* positions in key order */
			bool rev = a & 0x80;
			scan_ck c = { .s = &s };
			for (unsigned i = lo; i < hi; i++)
				if (s.cur[order[i]])
					c.pos[c.n++] = order[i];
			if (rev)
				for (unsigned i = 0; i < c.n / 2; i++) {
					unsigned t = c.pos[i];
					c.pos[i] = c.pos[c.n - 1 - i];
					c.pos[c.n - 1 - i] = t;
				}
			const uint8_t *sk = lo < NK ? keys[order[lo]] : NULL;
			const uint8_t *ek = hi < NK ? keys[order[hi]] : NULL;
			size_t sl = lo < NK ? klens[order[lo]] : 0, el = hi < NK ? klens[order[hi]] : 0;
			if (lo == NK) { /* start past the last key: an empty range unless hi = end */
				c.n = 0;
				sk = (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff";
				sl = 9;
			}
			rc = pbox_bt_scan_ex(e.bt, sk, sl, ek, el, rev ? PBOX_BT_SCAN_REVERSE : 0,
					     scan_fn, &c);
			FZ_CHECK(rc == 0 && !c.bad && c.i == c.n, "scan [%u, %u)%s: %s, bad %d, %u of %u",
				 lo, hi, rev ? " reverse" : "", pbox_status_name(rc), c.bad, c.i, c.n);
			break;
		}
		case 6: { /* cursor: seek or seek_prev, then steps */
			if (!take(&in, &a) || !take(&in, &b))
				goto end;
			pbox_bt_cursor *c;
			FZ_CHECK(pbox_bt_cursor_open(e.bt, &c) == 0, "cursor");
			unsigned k = a % NK;
			int pos = -1; /* position in order[] */
			unsigned ki = 0;
			while (order[ki] != k)
				ki++;
			if (a & 0x80) { /* seek_prev: last key <= k */
				rc = pbox_bt_cursor_seek_prev(c, keys[k], klens[k]);
				for (int i = (int)ki; i >= 0; i--)
					if (s.cur[order[i]]) {
						pos = i;
						break;
					}
			} else {
				rc = pbox_bt_cursor_seek(c, keys[k], klens[k]);
				for (unsigned i = ki; i < NK; i++)
					if (s.cur[order[i]]) {
						pos = (int)i;
						break;
					}
			}
			FZ_CHECK(rc == (pos < 0 ? PBOX_ENOTFOUND : 0), "cursor seek: %s",
				 pbox_status_name(rc));
			for (unsigned st = 0; pos >= 0 && st < (b & 15); st++) {
				const void *kp, *vp;
				size_t kl, vl;
				FZ_CHECK(pbox_bt_cursor_key(c, &kp, &kl) == 0 &&
						 pbox_bt_cursor_value(c, &vp, &vl) == 0, "cursor key/value");
				unsigned kk = order[pos];
				FZ_CHECK(kcmp(kp, kl, keys[kk], klens[kk]) == 0 && vl == vlen_of(s.cur[kk]),
					 "cursor at the wrong key or value");
				bool back = (b >> (4 + st % 4)) & 1;
				int np = -1;
				if (back) {
					for (int i = pos - 1; i >= 0; i--)
						if (s.cur[order[i]]) {
							np = i;
							break;
						}
					rc = pbox_bt_cursor_prev(c);
				} else {
					for (unsigned i = (unsigned)pos + 1; i < NK; i++)
						if (s.cur[order[i]]) {
							np = (int)i;
							break;
						}
					rc = pbox_bt_cursor_next(c);
				}
				FZ_CHECK(rc == (np < 0 ? PBOX_ENOTFOUND : 0), "cursor step: %s",
					 pbox_status_name(rc));
				if (np >= 0)
					pos = np;
			}
			pbox_bt_cursor_close(c);
			break;
		}
		case 7: { /* a batch of up to 16 puts and deletes */
			if (!take(&in, &a))
				goto end;
			unsigned n = a % 17;
			uint32_t after[NK];
			memcpy(after, s.cur, sizeof(after));
			for (unsigned i = 0; i < n; i++) {
				unsigned kb, lb;
				if (!take(&in, &kb) || !take(&in, &lb))
					goto end;
				unsigned k = kb % NK;
				if (kb & 0x80) {
					FZ_CHECK(pbox_bt_batch_del(batch, e.bt, keys[k], klens[k]) == 0, "batch del");
					after[k] = ABSENT;
				} else {
					uint32_t ns = new_state(&s, lb & 0x7f); /* no overflow values */
					if (vlen_of(ns) > 400)
						ns = (uint32_t)(8 + lb) << 20 | (ns & 0xfffff);
					val_make(k, ns, vbuf);
					FZ_CHECK(pbox_bt_batch_put(batch, e.bt, keys[k], klens[k], vbuf,
								   vlen_of(ns)) == 0, "batch put");
					after[k] = ns;
				}
			}
			rc = pbox_bt_batch_commit(batch, flags);
			FZ_CHECK(rc == 0, "batch commit: %s", pbox_status_name(rc));
			if (rc == 0) {
				bool changed = false;
				for (unsigned k = 0; k < NK; k++)
					if (after[k] != s.cur[k]) {
						st_set(&s, k, after[k]);
						changed = true;
					}
				/* a batch that changes nothing logs nothing: durable or not, it
				 * promises nothing about earlier writes (regress/ops/empty-durable-batch) */
				if (flags && changed)
					st_durable(&s);
			}
			break;
		}
		case 8:
			rc = pbox_store_checkpoint(e.st);
			FZ_CHECK(rc == 0, "checkpoint: %s", pbox_status_name(rc));
			st_durable(&s);
			break;
		case 9: /* clean reopen */
			env_close(&e);
			st_durable(&s);
			env_open(&e);
			check_all(&e, &s);
			break;
		case 10:   /* power cut and recovery */
		case 12: { /* process crash (kill -9: unsynced state stays pending) and recovery;
			    * a later power cut then finds what the reopen failed to make durable */
			if (!take(&in, &a))
				goto end;
			if ((op & 15) == 12)
				pbox_io_memfs_crash(e.fs);
			else
				pbox_io_memfs_powercut(e.fs, (pbox_powercut_mode)(a % 4), a);
			pbox_bt_close(e.bt);
			(void)pbox_store_close(e.st); /* fails: the machine is off */
			pbox_io_memfs_restart(e.fs);
			env_open(&e);
			for (unsigned k = 0; k < NK; k++) {
				uint32_t got = read_state(&e, k);
				bool ok = got == s.dur[k] || s.overflow[k];
				for (unsigned i = 0; i < s.nhist[k] && !ok; i++)
					ok = got == s.hist[k][i];
				FZ_CHECK(ok, "after the %s key %u is in state %x, durable %x",
					 (op & 15) == 12 ? "crash" : "power cut", k, got, s.dur[k]);
				s.cur[k] = got;
			}
			if (lt.valid) { /* the last commit: whole or not at all */
				unsigned hit = 0;
				for (unsigned i = 0; i < lt.n; i++)
					hit += s.cur[lt.k[i]] == lt.st[i];
				FZ_CHECK(hit == 0 || hit == lt.n,
					 "a transaction of %u keys is partly there (%u) after the %s",
					 lt.n, hit, (op & 15) == 12 ? "crash" : "power cut");
				lt.valid = false;
			}
			st_durable(&s);
			pbox_bt_verify_info vi;
			rc = pbox_bt_verify(e.bt, &vi);
			FZ_CHECK(rc == 0, "verify after recovery: %s", pbox_status_name(rc));
			break;
		}
		case 11: { /* verify */
			pbox_bt_verify_info vi;
			rc = pbox_bt_verify(e.bt, &vi);
			unsigned n = 0;
			for (unsigned k = 0; k < NK; k++)
				n += s.cur[k] != ABSENT;
			FZ_CHECK(rc == 0 && vi.keys == n, "verify: %s, %llu keys, want %u",
				 pbox_status_name(rc), (unsigned long long)vi.keys, n);
			break;
		}
		case 13: { /* a transaction: reads, writes, maybe a conflicting outside change */
			if (!take(&in, &a) || !take(&in, &b))
				goto end;
			unsigned n = a % 9;
			pbox_txn *t;
			rc = pbox_txn_begin(e.st, 0, &t);
			FZ_CHECK(rc == 0, "txn begin: %s", pbox_status_name(rc));
			uint32_t view[NK], snap[NK];
			memcpy(view, s.cur, sizeof(view));
			memcpy(snap, s.cur, sizeof(snap));
			bool wrote[NK] = { false };
			for (unsigned i = 0; i < n; i++) {
				unsigned kb, lb;
				if (!take(&in, &kb) || !take(&in, &lb)) {
					pbox_txn_abort(t);
					goto end;
				}
				unsigned k = kb % NK;
				FZ_CHECK(txn_state(t, e.bt, k) == view[k], "txn view of key %u", k);
				if (kb & 0x80) {
					rc = pbox_txn_del(t, e.bt, keys[k], klens[k]);
					FZ_CHECK(rc == (view[k] ? 0 : PBOX_ENOTFOUND), "txn del: %s",
						 pbox_status_name(rc));
					if (!rc) {
						view[k] = ABSENT;
						wrote[k] = true;
					}
				} else {
					uint32_t ns = new_state(&s, lb);
					val_make(k, ns, vbuf);
					rc = pbox_txn_put(t, e.bt, keys[k], klens[k], vbuf, vlen_of(ns));
					FZ_CHECK(rc == 0, "txn put: %s", pbox_status_name(rc));
					view[k] = ns;
					wrote[k] = true;
				}
			}
			int vr = view_scan(t, e.bt, view, b & 1);
			FZ_CHECK(vr == 0, "txn scan (%s): %d", b & 1 ? "reverse" : "forward", vr);
			int want = 0;
			if (b & 0x40) { /* a single-key change outside, after the transaction began */
				unsigned k = (b >> 1) % NK;
				uint32_t ns = new_state(&s, b);
				val_make(k, ns, vbuf);
				rc = pbox_bt_upsert(e.bt, keys[k], klens[k], vbuf, vlen_of(ns), 0);
				FZ_CHECK(rc == 0, "upsert beside a txn: %s", pbox_status_name(rc));
				st_set(&s, k, ns);
				FZ_CHECK(txn_state(t, e.bt, k) == view[k], "the txn saw a later change");
				want = wrote[k] ? PBOX_ECONFLICT : 0;
			}
			if (b & 0x80) {
				pbox_txn_abort(t);
				break;
			}
			rc = pbox_txn_commit(t, flags);
			FZ_CHECK(rc == want, "txn commit: %s, want %s", pbox_status_name(rc),
				 pbox_status_name(want));
			if (rc)
				break;
			bool changed = false;
			lt.n = 0;
			for (unsigned k = 0; k < NK; k++)
				if (wrote[k]) {
					st_set(&s, k, view[k]);
					changed = true;
					if (view[k] != ABSENT) {
						lt.k[lt.n] = k;
						lt.st[lt.n++] = view[k];
					}
				}
			lt.valid = lt.n > 0;
			if (flags && changed)
				st_durable(&s);
			(void)snap;
			break;
		}
		case 14: /* hold a snapshot, or check and end the one held */
			if (!held) {
				rc = pbox_txn_begin(e.st, PBOX_TXN_READONLY, &held);
				FZ_CHECK(rc == 0, "snapshot begin: %s", pbox_status_name(rc));
				memcpy(held_state, s.cur, sizeof(held_state));
			} else {
				for (unsigned k = 0; k < NK; k++)
					FZ_CHECK(txn_state(held, e.bt, k) == held_state[k],
						 "the held snapshot changed at key %u", k);
				int vr = view_scan(held, e.bt, held_state, op & 0x40);
				FZ_CHECK(vr == 0, "held snapshot scan: %d", vr);
				pbox_txn_abort(held);
				held = NULL;
			}
			break;
		default:
			break;
		}
	}
end:
	if (held)
		pbox_txn_abort(held);
	pbox_bt_batch_destroy(batch);
	check_all(&e, &s);
	env_close(&e);
	pbox_io_memfs_destroy(e.fs);
	return 0;
}
