/*
 * check_btree_powercut.c — power cuts under running writers, through pbox/btree.h (black box).
 *
 *   powercut     writers running (some values on overflow pages, tree creations), the
 *                power cut at a random moment while they work (memfs, every cut mode),
 *                recovery: each writer's keys equal its oracle after some prefix of its
 *                operations that includes every acknowledged durable one; no value that
 *                was never written; every created tree exists; verify passes; unreachable
 *                pages are reclaimed and nothing reachable is; the store keeps working.
 *                PBOX_BT_CYCLE=seed:writers replays one cycle verbosely.
 *
 * Randomized tests print their seed (PBOX_SEED reproduces); PBOX_STRESS_SCALE lengthens.
 */
#define _GNU_SOURCE
#include "btree_test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- power cuts ------------------------------------------------------------------------ */

#define CR_MAXW 3
#define CR_KEYS 500 /* keys per writer */
#define CR_MAXOPS 1500
#define CR_VMIN 300u /* values of 320 .. 699 bytes: few per leaf, many leaves; */
#define CR_SPAN 380u
#define CR_BIG 10000u /* 1 in 8 up to about 10 KB (overflow pages) */
#define CR_VMAX (CR_VMIN + VHDR + CR_BIG)

enum { CR_PUT = 1, CR_DEL = 2, CR_NOP = 3 };

typedef struct cr_op {
	uint32_t idx;
	uint8_t effect; /* CR_PUT: value version = op index + 1; CR_DEL; CR_NOP */
	bool acked;     /* returned 0 with PBOX_BT_DURABLE */
} cr_op;

typedef struct cr_writer {
	pbox_bt *bt;
	pbox_store *st;
	unsigned w, nw, nops;
	uint64_t seed;
	pbox_rng r;
	unsigned done; /* ops[0, done) may have happened */
	uint32_t ver[CR_KEYS]; /* writer's view: current version, 0 = absent */
	atomic_bool *cut;
	atomic_uint progress; /* ops finished (for the main thread's timing) */
	atomic_bool finished;
	bool bug;
	char msg[256];
	/* tree creations (writer 0) */
	unsigned ncreate;
	bool create_ok[64];
	cr_op ops[CR_MAXOPS];
} cr_writer;

static uint32_t cr_vlen(uint32_t n, uint32_t ver)
{
	uint64_t x = mix64((uint64_t)(ver ^ 0x0c0ffee0u) << 32 | n);
	if (x % 8 == 0)
		return CR_VMIN + VHDR + (uint32_t)((x >> 8) % CR_BIG);
	return CR_VMIN + sv_len(n, ver, CR_SPAN);
}

/* Run ops [done, upto) of writer w. Stops at the first error (expected after the cut).
 * fill: inserts and upserts only (the preload). */
static void cr_run(cr_writer *wr, unsigned upto, unsigned durable_per16, bool fill)
{
	uint8_t key[32], val[CR_VMAX];
	while (wr->done < upto) {
		unsigned i = wr->done;
		if (wr->w == 0 && wr->ncreate < 64 && pbox_rng_below(&wr->r, 150) == 0) {
			char name[16];
			snprintf(name, sizeof(name), "c%02u", wr->ncreate);
			pbox_bt *t = NULL;
			unsigned k = wr->ncreate++;
			int rc = pbox_bt_create(wr->st, name, &t);
			if (rc) {
				if (!atomic_load(wr->cut)) {
					wr->bug = true;
					snprintf(wr->msg, sizeof(wr->msg), "create %s = %s before the cut",
						 name, pbox_status_name(rc));
				}
				return;
			}
			wr->create_ok[k] = true;
			pbox_bt_close(t);
		}
		cr_op *o = &wr->ops[i];
		o->idx = (uint32_t)pbox_rng_below(&wr->r, CR_KEYS);
		o->acked = false;
		uint32_t n = o->idx * wr->nw + wr->w, cur = wr->ver[o->idx];
		uint32_t kl = nkey(key, n);
		uint32_t vl = cr_vlen(n, i + 1);
		sv_make(val, n, i + 1, vl);
		unsigned flags = pbox_rng_below(&wr->r, 16) < durable_per16 ? PBOX_BT_DURABLE : 0;
		unsigned c = (unsigned)pbox_rng_below(&wr->r, fill ? 55 : 100);
		int rc, want;
		if (c < 30) {
			o->effect = cur ? CR_NOP : CR_PUT;
			want = cur ? PBOX_EEXIST : 0;
			wr->done = i + 1;
			rc = pbox_bt_insert(wr->bt, key, kl, val, vl, flags);
		} else if (c < 55) {
			o->effect = CR_PUT, want = 0;
			wr->done = i + 1;
			rc = pbox_bt_upsert(wr->bt, key, kl, val, vl, flags);
		} else if (c < 70) {
			o->effect = cur ? CR_PUT : CR_NOP;
			want = cur ? 0 : PBOX_ENOTFOUND;
			wr->done = i + 1;
			rc = pbox_bt_update(wr->bt, key, kl, val, vl, flags);
		} else {
			o->effect = cur ? CR_DEL : CR_NOP;
			want = cur ? 0 : PBOX_ENOTFOUND;
			wr->done = i + 1;
			rc = pbox_bt_remove(wr->bt, key, kl, flags);
		}
		if (rc != want) {
			if (!atomic_load(wr->cut)) {
				wr->bug = true;
				snprintf(wr->msg, sizeof(wr->msg), "writer %u op %u on key %u = %s, want "
					 "%s, before the cut", wr->w, i, n, pbox_status_name(rc),
					 pbox_status_name(want));
			}
			return;
		}
		o->acked = rc == 0 && (flags & PBOX_BT_DURABLE) && o->effect != CR_NOP;
		if (o->effect == CR_PUT)
			wr->ver[o->idx] = i + 1;
		else if (o->effect == CR_DEL)
			wr->ver[o->idx] = 0;
		atomic_store_explicit(&wr->progress, wr->done, memory_order_relaxed);
	}
}

static void *cr_writer_main(void *arg)
{
	cr_writer *wr = arg;
	cr_run(wr, wr->nops, 4, false);
	atomic_store(&wr->finished, true);
	return NULL;
}

typedef struct cr_check_ctx {
	cr_writer **ws;
	unsigned nw;
	uint32_t (*got)[CR_KEYS]; /* recovered version per writer and key, 0 = absent */
	char msg[256];
} cr_check_ctx;

static int cr_scan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	cr_check_ctx *c = arg;
	uint32_t n, ver;
	if (!nkey_check(k, kl, &n) || n / c->nw >= CR_KEYS) {
		snprintf(c->msg, sizeof(c->msg), "a key (len %zu) that was never written", kl);
		return SCAN_BAD;
	}
	uint32_t w = n % c->nw, idx = n / c->nw;
	if (!sv_check(v, vl, n, &ver)) {
		snprintf(c->msg, sizeof(c->msg), "key %u: a value (len %zu) that was never written",
			 n, vl);
		return SCAN_BAD;
	}
	const cr_writer *wr = c->ws[w];
	if (ver == 0 || ver > wr->done || wr->ops[ver - 1].idx != idx ||
	    wr->ops[ver - 1].effect != CR_PUT || vl != cr_vlen(n, ver)) {
		snprintf(c->msg, sizeof(c->msg), "key %u: version %u is not from its history "
			 "(writer %u, %u ops attempted)", n, ver, w, wr->done);
		return SCAN_BAD;
	}
	c->got[w][idx] = ver;
	return 0;
}

typedef struct cr_stats {
	uint64_t cycles, pending, restored, lost, acked, ops, leaked;
} cr_stats;

static bool cr_verbose; /* PBOX_BT_CYCLE: describe the cycle */

static void cr_cycle(uint64_t seed, unsigned nw, cr_stats *stats)
{
	pbox_rng r;
	pbox_rng_seed(&r, seed);
	env e;
	pbox_io_memfs *fs;
	CK_RC(pbox_io_memfs_create(&fs), 0);
	memset(&e, 0, sizeof(e));
	e.fs = fs;
	pbox_store_options_init(&e.o);
	e.o.io = pbox_io_memfs_io(fs);
	e.o.create = true;
	e.o.page_size = 4096;
	e.o.budget_bytes = (pbox_rng_below(&r, 2) ? 64 : 1024) * 4096ull;
	e.o.max_bytes = 4ull << 20; /* 1024 pages: a small file (memfs copies it at a cut) */
	e.o.wal_segment_size = 256u << 10; /* segment switches happen too */
	e.o.wal_flush_delay_us = pbox_rng_below(&r, 2) ? 300 : 0;
	e.o.background_evictor = pbox_rng_below(&r, 2);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	e.o.redo = h;
	e.o.nredo = nh;
	e.o.errbuf = e.err;
	e.o.errbuf_len = sizeof(e.err);
	env_open(&e);
	pbox_bt *bt = bt_create(e.st, "main");

	static cr_writer wsto[CR_MAXW];
	cr_writer *ws[CR_MAXW];
	atomic_bool cut;
	atomic_init(&cut, false);
	unsigned preload = (unsigned)pbox_rng_below(&r, 3) * 400; /* 0, 400 or 800 ops each */
	for (unsigned w = 0; w < nw; w++) {
		ws[w] = &wsto[w];
		cr_writer *wr = ws[w];
		memset(wr, 0, sizeof(*wr));
		atomic_init(&wr->progress, 0);
		atomic_init(&wr->finished, false);
		wr->bt = bt;
		wr->st = e.st;
		wr->w = w;
		wr->nw = nw;
		wr->cut = &cut;
		wr->seed = pbox_rng_next(&r);
		pbox_rng_seed(&wr->r, wr->seed);
		wr->nops = pbox_rng_below(&r, 4) ? CR_MAXOPS : preload + 1 + (unsigned)pbox_rng_below(&r, 40);
		/* before the threads start: a preload with few syncs, made durable by its last op */
		cr_run(wr, preload, 0, true);
		REQ(!wr->bug, "%s (cycle %llu:%u)", wr->msg, (unsigned long long)seed, nw);
	}
	if (preload) {
		CK_RC(pbox_bt_upsert(bt, "sync", 4, "x", 1, PBOX_BT_DURABLE), 0);
		for (unsigned w = 0; w < nw; w++)
			for (unsigned i = 0; i < ws[w]->done; i++)
				ws[w]->ops[i].acked = ws[w]->ops[i].effect != CR_NOP;
		if (pbox_rng_below(&r, 2))
			CK_RC(pbox_store_checkpoint(e.st), 0);
	}
	pthread_t th[CR_MAXW];
	for (unsigned w = 0; w < nw; w++)
		REQ_T(pthread_create(&th[w], NULL, cr_writer_main, ws[w]) == 0);
	if (cr_verbose)
		fprintf(stderr, "cycle %llu:%u: budget %llu pages, flush delay %u us, %s evictor, "
				"preload %u ops per writer, writer 0 runs %u ops\n",
			(unsigned long long)seed, nw,
			(unsigned long long)(e.o.budget_bytes / 4096), e.o.wal_flush_delay_us,
			e.o.background_evictor ? "background" : "no", preload, ws[0]->nops);
	/* cut while the writers work: once writer 0 has done a random number of its ops
	 * (checkpoints on the way, sometimes), then after a random short delay */
	unsigned target = preload + (unsigned)pbox_rng_below(&r, ws[0]->nops - preload + 1);
	unsigned ck_at = pbox_rng_below(&r, 2) ? preload + (target - preload) / 2 : ~0u;
	for (;;) {
		unsigned p = atomic_load_explicit(&ws[0]->progress, memory_order_relaxed);
		if (p >= target || atomic_load(&ws[0]->finished))
			break;
		if (p >= ck_at) {
			ck_at = ~0u;
			if (pbox_store_checkpoint(e.st))
				break;
		}
		usleep(20);
	}
	usleep((useconds_t)pbox_rng_below(&r, 300));
	if (cr_verbose) {
		pbox_store_stats ss0;
		pbox_store_get_stats(e.st, &ss0);
		fprintf(stderr, "cycle %llu:%u: cut after writer 0 did %u ops (target %u), %llu "
				"checkpoints; wal end %llu, durable %llu\n", (unsigned long long)seed, nw,
			atomic_load(&ws[0]->progress), target, (unsigned long long)ss0.checkpoints,
			(unsigned long long)ss0.wal_end, (unsigned long long)ss0.wal_durable);
	}
	pbox_powercut_mode mode = (pbox_powercut_mode)pbox_rng_below(&r, 4);
	atomic_store(&cut, true);
	stats->pending += pbox_io_memfs_powercut(fs, mode, pbox_rng_next(&r));
	for (unsigned w = 0; w < nw; w++)
		pthread_join(th[w], NULL);
	for (unsigned w = 0; w < nw; w++)
		REQ(!ws[w]->bug, "%s (cycle %llu:%u)", ws[w]->msg, (unsigned long long)seed, nw);
	pbox_bt_close(bt);
	pbox_store_close(e.st); /* fails: the machine is off */
	e.st = NULL;
	pbox_io_memfs_restart(fs);

	/* recovery */
	e.o.create = false;
	int rc = pbox_store_open(DIR_, &e.o, &e.st);
	REQ(rc == 0, "reopen after the power cut (cycle %llu:%u, mode %d): %s: %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc), e.err);
	pbox_store_stats ss;
	pbox_store_get_stats(e.st, &ss);
	stats->restored += ss.recovery_pages_restored;
	bt = NULL;
	rc = pbox_bt_open(e.st, "main", &bt);
	REQ(rc == 0, "tree lost in the power cut (cycle %llu:%u, mode %d): %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc));
	pbox_bt_verify_info info;
	rc = pbox_bt_verify(bt, &info);
	REQ(rc == 0, "verify after the power cut (cycle %llu:%u, mode %d): %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc));
	static uint32_t got[CR_MAXW][CR_KEYS];
	memset(got, 0, sizeof(got));
	cr_check_ctx cc = { .ws = ws, .nw = nw, .got = got };
	uint8_t sbuf[8];
	size_t sl;
	bool has_sync = pbox_bt_lookup(bt, "sync", 4, sbuf, sizeof(sbuf), &sl) == 0;
	REQ(!preload || has_sync, "durable marker lost (cycle %llu:%u, mode %d)",
	    (unsigned long long)seed, nw, mode);
	/* everything but the marker is a writer key: scan past it */
	uint8_t lo[4] = { 0, 0, 0, 0 }, hi[4];
	put32(hi, nw * CR_KEYS);
	rc = pbox_bt_scan(bt, lo, 4, hi, 4, cr_scan_fn, &cc);
	REQ(rc == 0 && !cc.msg[0], "after the power cut (cycle %llu:%u, mode %d): %s %s",
	    (unsigned long long)seed, nw, mode, pbox_status_name(rc), cc.msg);
	uint64_t nkeys = 0;
	for (unsigned w = 0; w < nw; w++)
		for (unsigned i = 0; i < CR_KEYS; i++)
			nkeys += got[w][i] != 0;
	REQ(info.keys == nkeys + has_sync, "verify counts %llu keys, a scan finds %llu (cycle %llu:%u)",
	    (unsigned long long)info.keys, (unsigned long long)(nkeys + has_sync),
	    (unsigned long long)seed, nw);

	/* each writer's keys equal its oracle after some prefix of its ops that includes every
	 * acknowledged durable op */
	for (unsigned w = 0; w < nw; w++) {
		cr_writer *wr = ws[w];
		unsigned last_ack = 0;
		for (unsigned i = 0; i < wr->done; i++)
			if (wr->ops[i].acked)
				last_ack = i + 1;
		static uint32_t want[CR_KEYS];
		memset(want, 0, sizeof(want));
		unsigned mism = 0;
		for (unsigned k = 0; k < CR_KEYS; k++)
			mism += got[w][k] != 0;
		int match = -1;
		for (unsigned k = 0; k <= wr->done; k++) {
			if (k > 0) {
				const cr_op *o = &wr->ops[k - 1];
				uint32_t nv = o->effect == CR_PUT ? k : o->effect == CR_DEL ? 0 :
									   want[o->idx];
				mism -= want[o->idx] != got[w][o->idx];
				want[o->idx] = nv;
				mism += want[o->idx] != got[w][o->idx];
			}
			if (k >= last_ack && mism == 0) {
				match = (int)k;
				break;
			}
		}
		if (match < 0) {
			/* the first key that differs from the oracle after the last durable ack */
			memset(want, 0, sizeof(want));
			for (unsigned k = 0; k < last_ack; k++) {
				const cr_op *o = &wr->ops[k];
				if (o->effect == CR_PUT)
					want[o->idx] = k + 1;
				else if (o->effect == CR_DEL)
					want[o->idx] = 0;
			}
			unsigned bad = 0;
			while (bad < CR_KEYS && want[bad] == got[w][bad])
				bad++;
			ck_abort_msg("power cut (cycle %llu:%u, mode %d): writer %u's keys are not its "
				     "oracle after any prefix >= %u of %u ops; e.g. key %u holds "
				     "version %u, %u after the last durable op", (unsigned long long)seed,
				     nw, mode, w, last_ack, wr->done, bad < CR_KEYS ? bad * nw + w : 0,
				     bad < CR_KEYS ? got[w][bad] : 0, bad < CR_KEYS ? want[bad] : 0);
		}
		stats->lost += wr->done - (unsigned)match;
		stats->acked += last_ack;
		stats->ops += wr->done;
	}
	/* every tree whose creation returned 0 exists; no other names */
	for (unsigned k = 0; k < ws[0]->ncreate; k++) {
		char name[16];
		snprintf(name, sizeof(name), "c%02u", k);
		pbox_bt *t = NULL;
		rc = pbox_bt_open(e.st, name, &t);
		if (ws[0]->create_ok[k])
			REQ(rc == 0, "tree %s created before the cut is gone (cycle %llu:%u): %s",
			    name, (unsigned long long)seed, nw, pbox_status_name(rc));
		else
			REQ(rc == 0 || rc == PBOX_ENOTFOUND, "open %s = %s", name,
			    pbox_status_name(rc));
		if (rc == 0) {
			REQ_EQ(bt_verify(t).keys, 0);
			pbox_bt_close(t);
		}
	}
	static name_list nl;
	memset(&nl, 0, sizeof(nl));
	CK_RC(pbox_bt_list(e.st, list_fn, &nl), 0);
	for (unsigned i = 0; i < nl.n; i++) {
		unsigned k = 99;
		REQ(strcmp(nl.names[i], "main") == 0 ||
			    (sscanf(nl.names[i], "c%02u", &k) == 1 && k < ws[0]->ncreate),
		    "after the power cut a tree \"%s\" exists that was never created", nl.names[i]);
	}

	/* pages the crash left unreachable (a chain written before its leaf committed, a drop
	 * cut short) are found and freed, and nothing reachable is: the trees verify with the
	 * same keys, and a second pass finds nothing */
	uint64_t leaked = 0, again = 1;
	CK_RC(pbox_bt_reclaim(e.st, true, &leaked), 0);
	stats->leaked += leaked;
	REQ_EQ(bt_verify(bt).keys, info.keys);
	CK_RC(pbox_bt_reclaim(e.st, false, &again), 0);
	REQ_EQ(again, 0);

	/* and it keeps working: changes, a checkpoint, a clean reopen */
	CK_RC(pbox_bt_upsert(bt, "after", 5, "crash", 5, PBOX_BT_DURABLE), 0);
	CK_RC(pbox_bt_remove(bt, "after", 5, 0), 0);
	CK_RC(pbox_bt_upsert(bt, "after", 5, "again", 5, 0), 0);
	CK_RC(pbox_store_checkpoint(e.st), 0);
	pbox_bt_close(bt);
	env_reopen(&e);
	bt = bt_open(e.st, "main");
	REQ_EQ(bt_verify(bt).keys, nkeys + has_sync + 1);
	char vb[8];
	CK_RC(pbox_bt_lookup(bt, "after", 5, vb, sizeof(vb), &sl), 0);
	REQ_T(beq(vb, sl, "again", 5));
	pbox_bt_close(bt);
	env_fini(&e);
	stats->cycles++;
}

static void cr_report(const char *what, const cr_stats *s)
{
	fprintf(stderr, "%s: %llu cycles, %llu ops (%llu up to the last durable ack), %llu "
			"unsynced writes at the cuts, %llu torn pages restored, %llu unacknowledged "
			"ops lost, %llu unreachable pages reclaimed\n", what,
		(unsigned long long)s->cycles, (unsigned long long)s->ops,
		(unsigned long long)s->acked, (unsigned long long)s->pending,
		(unsigned long long)s->restored, (unsigned long long)s->lost,
		(unsigned long long)s->leaked);
}

#define CR_CYCLES_1 50 /* per loop iteration; 2 iterations */
#define CR_CYCLES_N 50 /* per loop iteration; 2 iterations */

/* PBOX_BT_CYCLE=seed:writers runs just that cycle (as a failure message names it). */
static bool cr_single_cycle(void)
{
	const char *e = getenv("PBOX_BT_CYCLE");
	if (!e || !*e)
		return false;
	char *end;
	unsigned long long seed = strtoull(e, &end, 0);
	unsigned nw = *end == ':' ? (unsigned)strtoul(end + 1, NULL, 0) : 1;
	REQ(nw >= 1 && nw <= CR_MAXW, "PBOX_BT_CYCLE: 1..%u writers", CR_MAXW);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	cr_verbose = true;
	cr_cycle(seed, nw, &s);
	cr_report("powercut (one cycle)", &s);
	return true;
}

START_TEST(test_powercut_single_writer)
{
	if (cr_single_cycle())
		return;
	uint64_t base = pbox_test_seed() ^ 0xc0ffee ^ ((uint64_t)_i << 32);
	fprintf(stderr, "powercut (1 writer): base seed %llu (cycle c uses base + c)\n",
		(unsigned long long)base);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	unsigned cycles = pbox_test_cycles(CR_CYCLES_1);
	for (unsigned c = 0; c < cycles; c++)
		cr_cycle(base + c, 1, &s);
	cr_report("powercut (1 writer)", &s);
	REQ_GT(s.pending, 0);
	REQ_GT(s.acked, 0);
}
END_TEST

START_TEST(test_powercut_concurrent)
{
	if (cr_single_cycle())
		return;
	uint64_t base = pbox_test_seed() ^ 0xc0c0a ^ ((uint64_t)_i << 32);
	fprintf(stderr, "powercut (2-3 writers): base seed %llu (cycle c uses base + c)\n",
		(unsigned long long)base);
	cr_stats s;
	memset(&s, 0, sizeof(s));
	unsigned cycles = pbox_test_cycles(CR_CYCLES_N);
	for (unsigned c = 0; c < cycles; c++)
		cr_cycle(base + c, 2 + c % 2, &s);
	cr_report("powercut (2-3 writers)", &s);
	REQ_GT(s.pending, 0);
	REQ_GT(s.acked, 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("btree_powercut");
	TCase *tc = tcase_create("powercut");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_powercut_single_writer, 0, 2);
	tcase_add_loop_test(tc, test_powercut_concurrent, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
