/*
 * counters.c — a data structure of your own on the pagebox substrate: the worked example of
 * docs/EXTENDING.md.
 *
 * The structure: one page of 64 u64 counters (page type COUNTERS_PAGE_TYPE), found through
 * store meta slot COUNTERS_META_SLOT (the btree uses slot 0). Every change is a
 * mini-transaction: latch the page, change the bytes, log a physiological redo record
 * (ADD: counter index, delta) that the registered handler re-applies after a crash, commit.
 *
 * Invariants: after any crash and reopen, the counters equal the sums of a prefix of the
 * adds made (all of them up to the last one committed with durable = true, perhaps more):
 * an add is one WAL group, applied whole or not at all, in log order.
 *
 * Usage:
 *   counters DIR add INDEX DELTA [--durable]   add DELTA to counter INDEX (0..63)
 *   counters DIR get INDEX                     print a counter
 *   counters DIR list                          print every non-zero counter
 *   counters --selftest [ROUNDS]               on the in-memory file system: random adds,
 *                                              power cuts, reopen, check the invariant
 * Exit: 0 ok, 1 error (message on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <pbox/iotest.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNTERS_PAGE_TYPE (PBOX_PAGE_TYPE_APP + 1) /* from the users' range */
#define COUNTERS_REDO_ADD (PBOX_REDO_TYPE_APP + 1)
#define COUNTERS_META_SLOT 1u
#define NCTR 64u
#define CTR_OFF PBOX_PAGE_HDR /* the counters follow the page header */

/* ---- the structure ---------------------------------------------------------------------- */

/* Redo of ADD (payload: u32 index, u64 delta). Runs during recovery on bytes from disk: it
 * checks everything and reports damage as PBOX_ECORRUPT, never crashes. Deterministic. */
static int redo_add(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t idx;
	uint64_t delta, v;
	if (len != 12)
		return PBOX_ECORRUPT;
	memcpy(&idx, payload, 4);
	memcpy(&delta, (const unsigned char *)payload + 4, 8);
	if (idx >= NCTR || CTR_OFF + 8 * (idx + 1) > ps || pbox_page_type(page) != COUNTERS_PAGE_TYPE)
		return PBOX_ECORRUPT;
	unsigned char *p = (unsigned char *)page + CTR_OFF + 8 * idx;
	memcpy(&v, p, 8);
	v += delta;
	memcpy(p, &v, 8);
	return 0;
}

static const pbox_redo_handler counters_redo[] = { { .type = COUNTERS_REDO_ADD, .fn = redo_add } };

/* The counters page: found in the meta slot, or allocated (and the slot set) in one mtr. */
static int counters_page(pbox_store *st, pbox_pid *out)
{
	uint64_t pid = pbox_store_meta_get(st, COUNTERS_META_SLOT);
	if (pid) {
		*out = pid;
		return 0;
	}
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	if ((r = pbox_mtr_alloc(m, COUNTERS_PAGE_TYPE, out, NULL)) ||
	    (r = pbox_mtr_meta_set(m, COUNTERS_META_SLOT, *out))) {
		pbox_mtr_abort(m, true); /* an allocation changed pages: the store refuses work */
		return r;
	}
	return pbox_mtr_commit(m, true, NULL);
}

/* counter idx += delta, atomically and crash-safely; durable: on disk when it returns. */
static int counters_add(pbox_store *st, pbox_pid pid, uint32_t idx, uint64_t delta, bool durable)
{
	if (idx >= NCTR)
		return PBOX_EINVAL;
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	void *page;
	if ((r = pbox_mtr_fix(m, pid, &page))) { /* exclusive latch, page resident */
		pbox_mtr_abort(m, false);
		return r;
	}
	unsigned char pl[12];
	memcpy(pl, &idx, 4);
	memcpy(pl + 4, &delta, 8);
	/* change the bytes, then log the change: the handler above redoes exactly this */
	if ((r = redo_add(page, pbox_store_page_size(st), pl, sizeof(pl), NULL)) ||
	    (r = pbox_mtr_log(m, pid, COUNTERS_REDO_ADD, pl, sizeof(pl)))) {
		pbox_mtr_abort(m, true);
		return r;
	}
	return pbox_mtr_commit(m, durable, NULL);
}

/* Read counter idx under a shared latch (readers could also go optimistic: pbox_page_fix_opt
 * and pbox_page_validate). */
static int counters_get(pbox_store *st, pbox_pid pid, uint32_t idx, uint64_t *out)
{
	if (idx >= NCTR)
		return PBOX_EINVAL;
	int r = pbox_page_fix_shared(st, pid);
	if (r)
		return r;
	const unsigned char *page = pbox_page_addr(st, pid);
	if (pbox_page_type(page) != COUNTERS_PAGE_TYPE)
		r = PBOX_ECORRUPT;
	else
		memcpy(out, page + CTR_OFF + 8 * idx, 8);
	pbox_page_unfix_shared(st, pid);
	return r;
}

static int open_store(const char *dir, pbox_io *io, pbox_store **st, char *err, size_t errlen)
{
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = io;
	o.create = true;
	o.max_bytes = 1ull << 30;
	if (io)
		o.wal_segment_size = 1u << 20; /* the self-test's memory file system: small segments */
	o.redo = counters_redo; /* recovery inside open needs the handlers */
	o.nredo = 1;
	o.errbuf = err;
	o.errbuf_len = errlen;
	return pbox_store_open(dir, &o, st);
}

/* ---- the self-test: random adds, power cuts, the invariant ------------------------------- */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define NADD 400u

static int selftest(unsigned rounds)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned applied_more = 0;
	for (unsigned round = 0; round < rounds; round++) {
		pbox_io_memfs *fs;
		if (pbox_io_memfs_create(&fs))
			return 1;
		pbox_io *io = pbox_io_memfs_io(fs);
		char err[256] = "";
		pbox_store *st;
		pbox_pid pid;
		int r = open_store("/c", io, &st, err, sizeof(err));
		if (r || (r = counters_page(st, &pid))) {
			fprintf(stderr, "selftest: create: %s %s\n", pbox_strerror(r), err);
			return 1;
		}
		static uint32_t idx[NADD];
		static uint64_t delta[NADD];
		unsigned last_durable = 0; /* adds 1..last_durable are durable */
		unsigned n = 50 + (unsigned)(rng(&seed) % (NADD - 50));
		for (unsigned i = 0; i < n; i++) {
			idx[i] = (uint32_t)(rng(&seed) % NCTR);
			delta[i] = 1 + rng(&seed) % 1000;
			bool durable = rng(&seed) % 8 == 0;
			if ((r = counters_add(st, pid, idx[i], delta[i], durable))) {
				fprintf(stderr, "selftest: add: %s\n", pbox_strerror(r));
				return 1;
			}
			if (durable)
				last_durable = i + 1;
			if (rng(&seed) % 100 == 0 && (r = pbox_store_checkpoint(st))) {
				fprintf(stderr, "selftest: checkpoint: %s\n", pbox_strerror(r));
				return 1;
			}
		}
		pbox_io_memfs_powercut(fs, (pbox_powercut_mode)(round % 3), rng(&seed));
		pbox_store_close(st); /* fails: the power is off */
		pbox_io_memfs_restart(fs);
		if ((r = open_store("/c", io, &st, err, sizeof(err))) ||
		    (r = counters_page(st, &pid))) {
			fprintf(stderr, "selftest: reopen after the power cut: %s %s\n", pbox_strerror(r),
				err);
			return 1;
		}
		uint64_t got[NCTR], sum[NCTR] = { 0 };
		for (uint32_t c = 0; c < NCTR; c++)
			if ((r = counters_get(st, pid, c, &got[c]))) {
				fprintf(stderr, "selftest: get: %s\n", pbox_strerror(r));
				return 1;
			}
		/* find the prefix k the counters equal; it must cover every durable add */
		bool found = false;
		for (unsigned k = 0; k <= n && !found; k++) {
			if (k)
				sum[idx[k - 1]] += delta[k - 1];
			if (k < last_durable)
				continue;
			found = !memcmp(sum, got, sizeof(sum));
			applied_more += found && k > last_durable;
		}
		if (!found) {
			fprintf(stderr, "selftest: round %u: the counters are no prefix of the adds made "
					"(%u adds, %u durable)\n", round, n, last_durable);
			return 1;
		}
		if ((r = pbox_store_close(st))) {
			fprintf(stderr, "selftest: close: %s\n", pbox_strerror(r));
			return 1;
		}
		pbox_io_memfs_destroy(fs);
	}
	printf("counters selftest: %u power cuts, every recovery a prefix of the adds covering the "
	       "durable ones (%u kept more than the durable prefix)\n", rounds, applied_more);
	printf("1 passed, 0 failed\n");
	return 0;
}

/* ---- command line --------------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: counters DIR add INDEX DELTA [--durable] | counters DIR get INDEX |\n"
			"       counters DIR list | counters --selftest [ROUNDS]\n"
			"A page of %u counters on the pagebox substrate (docs/EXTENDING.md).\n",
		NCTR);
	return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	*out = strtoull(s, &end, 0);
	return *end == 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--selftest")) {
		uint64_t rounds = 30;
		if (argc > 2 && (!parse_u64(argv[2], &rounds) || rounds == 0 || rounds > 100000))
			return usage();
		return selftest((unsigned)rounds);
	}
	if (argc < 3 || !strcmp(argv[1], "--help"))
		return usage();
	const char *dir = argv[1], *cmd = argv[2];
	uint64_t idx = 0, delta = 0;
	bool durable = argc == 6 && !strcmp(argv[5], "--durable");
	if (!strcmp(cmd, "add") ? (argc != 5 && !durable) || !parse_u64(argv[3], &idx) ||
					  !parse_u64(argv[4], &delta)
	    : !strcmp(cmd, "get") ? argc != 4 || !parse_u64(argv[3], &idx)
	    : strcmp(cmd, "list") || argc != 3)
		return usage();
	if (idx >= NCTR) {
		fprintf(stderr, "counters: INDEX must be below %u\n", NCTR);
		return 2;
	}
	char err[256] = "";
	pbox_store *st;
	pbox_pid pid;
	int r = open_store(dir, NULL, &st, err, sizeof(err));
	if (r) {
		fprintf(stderr, "counters: %s: %s %s\n", dir, pbox_strerror(r), err);
		return 1;
	}
	if (!(r = counters_page(st, &pid))) {
		if (!strcmp(cmd, "add")) {
			r = counters_add(st, pid, (uint32_t)idx, delta, durable);
		} else if (!strcmp(cmd, "get")) {
			uint64_t v;
			if (!(r = counters_get(st, pid, (uint32_t)idx, &v)))
				printf("%llu\n", (unsigned long long)v);
		} else {
			for (uint32_t c = 0; c < NCTR && !r; c++) {
				uint64_t v;
				if (!(r = counters_get(st, pid, c, &v)) && v)
					printf("%u %llu\n", c, (unsigned long long)v);
			}
		}
	}
	int cr = pbox_store_close(st);
	if (!r)
		r = cr;
	if (r) {
		fprintf(stderr, "counters: %s\n", pbox_strerror(r));
		return 1;
	}
	return 0;
}
