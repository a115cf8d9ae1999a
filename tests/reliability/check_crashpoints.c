/*
 * check_crashpoints.c — a crash or a power cut at every state-changing system call, in the
 * manner of the ALICE study (OSDI 2014): the WAL on its own and a whole store (through the
 * btree), each run through a scenario that covers creation, appends across segments,
 * segment creation and reuse, recycling and checkpoints.
 *
 * For each n in 1..N (N = the scenario's state-changing calls, counted by a dry run):
 *   power cut at call n (a mode chosen from n): restart, reopen — it must open — and find
 *     every write acknowledged before the cut;
 *   process crash at call n (kill -9: what the kernel has stays unsynced): restart, reopen
 *     (which must make durable whatever it trusts), acknowledge more writes, then cut the
 *     power (again a mode from n), reopen, and find every write acknowledged before the
 *     crash and after it.
 * The second case is the one that finds an open trusting a name or a superblock that a
 * killed program left unsynced (issue 13, window 2).
 *
 * Sanitizer builds visit every PBOX_CRASHPOINT_STRIDE-th call (default 1; CI sets none).
 */
#define _GNU_SOURCE
#include <pbox/btree.h>
#include <pbox/frame_kernel.h>
#include <pbox/wal.h>

#include "pbox_test_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned stride(void)
{
	const char *s = getenv("PBOX_CRASHPOINT_STRIDE");
	long v = s ? strtol(s, NULL, 10) : 1;
	return v >= 1 ? (unsigned)v : 1;
}

/* The cut's mode for crash point n: every mode but KEEP_ALL, in turn. */
static pbox_powercut_mode mode_for(uint64_t n)
{
	return (pbox_powercut_mode)(n % 3);
}

/* ---- the sweep, for any scenario ------------------------------------------------------------- */

/* A scenario: its state, a fresh file system, the run, the check after a power cut, and the
 * next program's writes after a crash (reopen, acknowledge more, return with the store or
 * log open: the sweep cuts the power under it, then calls after_cut to close it). */
typedef struct scenario {
	const char *name;
	void *state;
	size_t state_size;
	pbox_io_memfs *(*new_fs)(void);
	void (*run)(pbox_io *io, void *state);
	uint64_t (*acked)(const void *state);
	void (*check)(pbox_io *io, const void *state, const char *what, uint64_t n);
	void *(*more_writes)(pbox_io *io, void *state, uint64_t n);
	void (*after_cut)(void *handle);
} scenario;

/* A dry run counts the scenario's state-changing calls; then, for every n, a power cut at
 * call n and a kill -9 at call n followed by a reopen, more writes and a power cut. */
static void sweep(const scenario *sc, uint64_t want_acked)
{
	pbox_io_memfs *fs = sc->new_fs();
	memset(sc->state, 0, sc->state_size);
	uint64_t c0 = pbox_io_memfs_changes(fs);
	sc->run(pbox_io_memfs_io(fs), sc->state);
	uint64_t total = pbox_io_memfs_changes(fs) - c0;
	ck_assert_uint_eq(sc->acked(sc->state), want_acked);
	pbox_io_memfs_destroy(fs);
	unsigned cuts = 0, crashes = 0, unreached = 0;
	for (uint64_t n = 1; n <= total; n += stride()) {
		for (int crash = 0; crash < 2; crash++) {
			fs = sc->new_fs();
			pbox_io *io = pbox_io_memfs_io(fs);
			memset(sc->state, 0, sc->state_size);
			pbox_io_memfs_arm(fs, n, crash ? PBOX_MEMFS_CRASH : (int)mode_for(n), n);
			sc->run(io, sc->state);
			if (!pbox_io_memfs_fired(fs)) {
				/* the log's background thread prepares segments when it gets to it:
				 * a run can make a few calls fewer than the dry run counted */
				unreached++;
				pbox_io_memfs_destroy(fs);
				continue;
			}
			pbox_io_memfs_restart(fs);
			if (!crash) {
				sc->check(io, sc->state, "power cut", n);
				cuts++;
			} else {
				void *h = sc->more_writes(io, sc->state, n);
				pbox_io_memfs_powercut(fs, mode_for(n), n);
				sc->after_cut(h);
				pbox_io_memfs_restart(fs);
				sc->check(io, sc->state, "crash, reopen, writes, power cut", n);
				crashes++;
			}
			pbox_io_memfs_destroy(fs);
		}
	}
	fprintf(stderr, "%s crash points: %llu calls, %u power cuts, %u crashes, %u not reached\n",
		sc->name, (unsigned long long)total, cuts, crashes, unreached);
	ck_assert_uint_gt(cuts, 0);
	ck_assert_uint_gt(crashes, 0);
	ck_assert_uint_le(unreached, total / 5 + 2);
}

/* ---- the WAL ------------------------------------------------------------------------------ */

#define WDIR "/w"
#define WSEG (16u << 10)
#define WREC 1500u /* about ten groups a segment */
#define WGROUPS 40u
#define WMORE 15u

typedef struct wstate {
	uint64_t acked;      /* groups 1..acked are acknowledged durable, in order */
	uint64_t recycle_seq; /* groups below this one may have been recycled */
	pbox_lsn ends[WGROUPS + WMORE + 2];
} wstate;

static int wal_open_opts(pbox_io *io, pbox_wal **w)
{
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = io;
	o.segment_size = WSEG;
	o.buffer_size = 64u << 10;
	o.create = true;
	o.max_spares = 1;
	return pbox_wal_open(WDIR, &o, w);
}

static int wal_put(pbox_wal *w, uint64_t seq, wstate *s)
{
	static unsigned char buf[WREC];
	memset(buf, (int)(seq & 0xff), sizeof(buf));
	memcpy(buf, &seq, 8);
	pbox_wal_rec rec = { .type = 1, .data = buf, .len = sizeof(buf) };
	pbox_lsn end;
	int r = pbox_wal_append(w, &rec, 1, &end);
	if (!r)
		r = pbox_wal_wait_durable(w, end);
	if (!r) {
		s->acked = seq;
		s->ends[seq] = end;
	}
	return r;
}

/* Groups 1..WGROUPS, recycling every 10 up to the last durable group. Stops at the first
 * error (the armed event). */
static void wal_scenario(pbox_io *io, wstate *s)
{
	pbox_wal *w;
	if (wal_open_opts(io, &w))
		return;
	for (uint64_t seq = 1; seq <= WGROUPS; seq++) {
		if (wal_put(w, seq, s))
			break;
		if (seq % 10 == 0) {
			s->recycle_seq = seq; /* groups that end at or before this one's end */
			if (pbox_wal_recycle(w, s->ends[seq]))
				break;
		}
	}
	pbox_wal_close(w);
}

/* Reopen and check: the groups found are consecutive, each exact, and include every
 * acknowledged one that no recycle may have removed; returns the last seq found. */
static uint64_t wal_check(pbox_io *io, const wstate *s, const char *what, uint64_t n)
{
	pbox_wal *w;
	int r = wal_open_opts(io, &w);
	ck_assert_msg(r == 0, "%s at call %llu: reopen: %s", what, (unsigned long long)n,
		      pbox_strerror(r));
	pbox_wal_iter *it;
	ck_assert_int_eq(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group g;
	uint64_t prev = 0, first = 0;
	while ((r = pbox_wal_iter_next(it, &g)) == 1) {
		pbox_wal_record rec;
		ck_assert_int_eq(pbox_wal_iter_record(it, &rec), 1);
		ck_assert_uint_eq(rec.len, WREC);
		uint64_t seq;
		memcpy(&seq, rec.data, 8);
		bool exact = true; /* no ck_assert per byte: Check writes a pipe message for each */
		for (uint32_t i = 8; i < WREC; i++)
			exact &= ((const unsigned char *)rec.data)[i] == (seq & 0xff);
		if (!exact)
			ck_abort_msg("%s at call %llu: group %llu damaged", what, (unsigned long long)n,
				     (unsigned long long)seq);
		if (prev)
			ck_assert_msg(seq == prev + 1, "%s at call %llu: group %llu after %llu", what,
				      (unsigned long long)n, (unsigned long long)seq,
				      (unsigned long long)prev);
		else
			first = seq;
		prev = seq;
	}
	ck_assert_int_eq(r, 0);
	pbox_wal_iter_close(it);
	if (s->acked > s->recycle_seq) {
		ck_assert_msg(first && first <= s->recycle_seq + 1 && prev >= s->acked,
			      "%s at call %llu: acknowledged groups %llu..%llu, found %llu..%llu",
			      what, (unsigned long long)n, (unsigned long long)s->recycle_seq + 1,
			      (unsigned long long)s->acked, (unsigned long long)first,
			      (unsigned long long)prev);
	}
	ck_assert_int_eq(pbox_wal_close(w), 0);
	return prev;
}

static pbox_io_memfs *wal_fs(void)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	pbox_io *io = pbox_io_memfs_io(fs);
	ck_assert_int_eq(io->mkdir(io, WDIR, 0755), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/"), 0);
	return fs;
}

static uint64_t wal_acked(const void *st)
{
	return ((const wstate *)st)->acked;
}

static void wal_check_cb(pbox_io *io, const void *st, const char *what, uint64_t n)
{
	wal_check(io, st, what, n);
}

static void wal_run(pbox_io *io, void *st)
{
	wal_scenario(io, st);
}

/* The next program after a crash: reopen (checked), then append into the next segment, but
 * not so far that the log prepares the one after it (that would sync the directory, closing
 * the window). Returns the open log. */
static void *wal_more(pbox_io *io, void *st, uint64_t n)
{
	wstate *s = st;
	uint64_t last = wal_check(io, s, "crash", n);
	pbox_wal *w;
	ck_assert_int_eq(wal_open_opts(io, &w), 0);
	uint64_t k0 = pbox_wal_end_lsn(w) / WSEG;
	for (uint64_t seq = last + 1; seq <= last + WMORE; seq++) {
		if (wal_put(w, seq, s))
			ck_abort_msg("crash at call %llu: append after reopen", (unsigned long long)n);
		pbox_lsn e = pbox_wal_end_lsn(w);
		if (e / WSEG > k0 && e % WSEG > 4096)
			break;
	}
	return w;
}

static void wal_after_cut(void *h)
{
	pbox_wal_close(h); /* fails: the machine is off */
}

START_TEST(test_wal_crashpoints)
{
	static wstate s;
	scenario sc = { "wal", &s, sizeof(s), wal_fs, wal_run, wal_acked, wal_check_cb, wal_more,
			wal_after_cut };
	sweep(&sc, WGROUPS);
}
END_TEST

/* ---- a store, through the btree ------------------------------------------------------------- */

#define SDIR "/db"
#define SKEYS 60u
#define SMORE 40u

typedef struct sstate {
	uint64_t acked[SKEYS + SMORE + 64]; /* keys acknowledged durable (ids) */
	unsigned nacked;
	uint64_t next_id;
} sstate;

static int store_open_opts(pbox_io *io, pbox_store **st)
{
	pbox_store_options o;
	pbox_test_store_options(&o, io); /* created if absent: as a program opens its store */
	o.wal_segment_size = 64u << 10;
	o.checkpoint_log_bytes = 0;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	o.redo = h;
	o.nredo = nh;
	return pbox_store_open(SDIR, &o, st);
}

static void key_of(uint64_t id, char *k)
{
	snprintf(k, 24, "key%08llu", (unsigned long long)id);
}

static void val_of(uint64_t id, unsigned char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		v[i] = (unsigned char)(id * 131 + i);
}

#define SVAL 300u

static int store_put(pbox_bt *t, sstate *s)
{
	char k[24];
	unsigned char v[SVAL];
	uint64_t id = s->next_id++;
	key_of(id, k);
	val_of(id, v, sizeof(v));
	int r = pbox_bt_upsert(t, k, strlen(k), v, sizeof(v), PBOX_BT_DURABLE);
	if (!r)
		s->acked[s->nacked++] = id;
	return r;
}

/* Create, write, checkpoint (recycling the small segments), write, checkpoint, close. */
static void store_scenario(pbox_io *io, sstate *s)
{
	pbox_store *st;
	if (store_open_opts(io, &st))
		return;
	pbox_bt *t = NULL;
	int r = pbox_bt_open_or_create(st, "t", &t);
	for (unsigned i = 0; i < SKEYS && !r; i++) {
		r = store_put(t, s);
		if (!r && i % 20 == 19)
			r = pbox_store_checkpoint(st);
	}
	if (t)
		pbox_bt_close(t);
	pbox_store_close(st);
}

static void store_check(pbox_io *io, const sstate *s, const char *what, uint64_t n)
{
	pbox_store *st;
	int r = store_open_opts(io, &st);
	ck_assert_msg(r == 0, "%s at call %llu: reopen: %s", what, (unsigned long long)n,
		      pbox_strerror(r));
	pbox_bt *t;
	r = pbox_bt_open(st, "t", &t);
	if (r == PBOX_ENOTFOUND) {
		ck_assert_msg(s->nacked == 0, "%s at call %llu: tree lost with %u acknowledged keys",
			      what, (unsigned long long)n, s->nacked);
	} else {
		ck_assert_int_eq(r, 0);
		for (unsigned i = 0; i < s->nacked; i++) {
			char k[24];
			unsigned char want[SVAL], got[SVAL];
			key_of(s->acked[i], k);
			val_of(s->acked[i], want, sizeof(want));
			size_t vl = 0;
			r = pbox_bt_lookup(t, k, strlen(k), got, sizeof(got), &vl);
			if (r || vl != SVAL || memcmp(got, want, SVAL))
				ck_abort_msg("%s at call %llu: acknowledged %s: %s", what,
					     (unsigned long long)n, k, r ? pbox_strerror(r) : "wrong value");
		}
		pbox_bt_verify_info info;
		ck_assert_int_eq(pbox_bt_verify(t, &info), 0);
		pbox_bt_close(t);
	}
	ck_assert_int_eq(pbox_store_close(st), 0);
}

static pbox_io_memfs *store_fs(void)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	return fs;
}

static uint64_t store_acked(const void *st)
{
	return ((const sstate *)st)->nacked;
}

static void store_check_cb(pbox_io *io, const void *st, const char *what, uint64_t n)
{
	store_check(io, st, what, n);
}

static void store_run(pbox_io *io, void *st)
{
	store_scenario(io, st);
}

typedef struct store_handle {
	pbox_store *st;
	pbox_bt *t;
} store_handle;

/* The next program after a crash: reopen, acknowledge more (enough log to reuse a segment).
 * No check before it: a check's close would checkpoint and sync what the window leaves
 * unsynced. */
static void *store_more(pbox_io *io, void *state, uint64_t n)
{
	sstate *s = state;
	static store_handle h;
	int r = store_open_opts(io, &h.st);
	ck_assert_msg(r == 0, "crash at call %llu: reopen: %s", (unsigned long long)n,
		      pbox_strerror(r));
	ck_assert_int_eq(pbox_bt_open_or_create(h.st, "t", &h.t), 0);
	s->next_id = SKEYS + 1000;
	for (unsigned i = 0; i < SMORE; i++)
		if ((r = store_put(h.t, s)))
			ck_abort_msg("crash at call %llu: put after reopen: %s", (unsigned long long)n,
				     pbox_strerror(r));
	return &h;
}

static void store_after_cut(void *hp)
{
	store_handle *h = hp;
	pbox_bt_close(h->t);
	pbox_store_close(h->st); /* fails: the machine is off */
}

START_TEST(test_store_crashpoints)
{
	static sstate s;
	scenario sc = { "store", &s, sizeof(s), store_fs, store_run, store_acked, store_check_cb,
			store_more, store_after_cut };
	sweep(&sc, SKEYS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crashpoints");
	TCase *tc = tcase_create("wal");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_wal_crashpoints);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_store_crashpoints);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
