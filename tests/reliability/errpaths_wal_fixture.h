/*
 * errpaths_wal_fixture.h — the WAL fixture of check_errpaths_wal*.c: a log on memfs under a
 * fault wrapper, filled with self-describing groups that replay checks exactly.
 */
#ifndef PBOX_ERRPATHS_WAL_FIXTURE_H
#define PBOX_ERRPATHS_WAL_FIXTURE_H

#include "errpaths_common.h"

/* ---- WAL fixture: a log of self-describing groups ------------------------------------------- */

#define WDIR "/log"
#define MAXG 2048

typedef struct wfix {
	pbox_io_memfs *fs;
	pbox_io *mio;       /* memfs */
	pbox_io_faulty *f;  /* over memfs */
	pbox_wal_options o; /* through f */
	uint64_t S;
	unsigned n;         /* groups appended */
	pbox_lsn end[MAXG];
	uint32_t len[MAXG]; /* payload length of each group's one record */
} wfix;

static inline void wfix_init(wfix *x, uint64_t seg, uint64_t buf, pbox_wal_sync sync)
{
	memset(x, 0, sizeof(*x));
	EQ(pbox_io_memfs_create(&x->fs), 0);
	x->mio = pbox_io_memfs_io(x->fs);
	EQ(x->mio->mkdir(x->mio, WDIR, 0755), 0);
	EQ(x->mio->fsync_dir(x->mio, "/"), 0);
	EQ(pbox_io_faulty_create(x->mio, &x->f), 0);
	pbox_wal_options_init(&x->o);
	x->o.io = pbox_io_faulty_io(x->f);
	x->o.segment_size = seg;
	x->o.buffer_size = buf;
	x->o.sync = sync;
	x->o.create = true;
	x->S = seg;
}

static inline void wfix_fini(wfix *x)
{
	pbox_io_faulty_destroy(x->f);
	pbox_io_memfs_destroy(x->fs);
}

static inline uint8_t pat(uint32_t tag, uint32_t i)
{
	uint64_t v = ((uint64_t)tag << 24) ^ i ^ ((uint64_t)i << 9);
	v *= 0x9e3779b97f4a7c15ULL;
	return (uint8_t)(v >> 56);
}

/* A group of one record (type 10) whose payload starts with tag and is a function of it. */
static inline int append_tagged(pbox_wal *w, uint32_t tag, uint32_t len, pbox_lsn *end)
{
	uint8_t *b = malloc(len);
	ck_assert_ptr_nonnull(b);
	for (uint32_t i = 0; i < len; i++)
		b[i] = pat(tag, i);
	memcpy(b, &tag, 4);
	pbox_wal_rec r = { .type = 10, .data = b, .len = len };
	int rc = pbox_wal_append(w, &r, 1, end);
	free(b);
	return rc;
}

static inline uint32_t group_size(uint32_t len)
{
	return GROUP_HDR + REC_HDR + (uint32_t)align8(len);
}

/* Append group x->n with a payload of len bytes (>= 4); wait for it when durable. */
static inline int wappend(wfix *x, pbox_wal *w, uint32_t len, bool durable)
{
	ck_assert_uint_lt(x->n, MAXG);
	pbox_lsn e;
	int rc = append_tagged(w, x->n, len, &e);
	if (rc)
		return rc;
	x->len[x->n] = len;
	x->end[x->n++] = e;
	return durable ? pbox_wal_wait_durable(w, e) : 0;
}

static inline pbox_lsn gstart(const wfix *x, unsigned g)
{
	return x->end[g] - group_size(x->len[g]);
}

static inline void seg_path(const wfix *x, uint64_t k, char *buf, size_t cap)
{
	snprintf(buf, cap, WDIR "/wal-%016" PRIx64 ".seg", k * x->S);
}

/* Check that the group just read (its first record in rec) is the tagged group, exactly. */
static inline void check_tagged_rec(pbox_wal_iter *it, const pbox_wal_group *grp,
			     const pbox_wal_record *r, uint32_t tag, uint32_t len, pbox_lsn end)
{
	pbox_wal_record rec = *r;
	ck_assert_uint_eq(grp->nrec, 1);
	ck_assert_uint_eq(rec.type, 10);
	ck_assert_uint_eq(rec.len, len);
	uint32_t t;
	memcpy(&t, rec.data, 4);
	ck_assert_uint_eq(t, tag);
	const uint8_t *d = rec.data;
	for (uint32_t i = 4; i < len; i++)
		REQ(d[i] == pat(tag, i), "group %u byte %u damaged", tag, i);
	if (end)
		ck_assert_uint_eq(grp->end_lsn, end);
	EQ(pbox_wal_iter_record(it, &rec), 0);
}

static inline void check_tagged(pbox_wal_iter *it, const pbox_wal_group *grp, uint32_t tag, uint32_t len,
			 pbox_lsn end)
{
	pbox_wal_record rec;
	EQ(pbox_wal_iter_record(it, &rec), 1);
	check_tagged_rec(it, grp, &rec, tag, len, end);
}

/* Replay the whole log (from the start it was opened with): it must be groups first, first+1,
 * ... of the fixture, exactly; returns how many. */
static inline unsigned wreplay(const wfix *x, pbox_wal *w, unsigned first)
{
	pbox_wal_iter *it;
	EQ(pbox_wal_iter_open(w, 0, &it), 0);
	pbox_wal_group grp;
	unsigned n = 0;
	int rc;
	while ((rc = pbox_wal_iter_next(it, &grp)) == 1) {
		unsigned g = first + n++;
		REQ(g < x->n, "replay: more groups than appended");
		check_tagged(it, &grp, g, x->len[g], x->end[g]);
	}
	EQ(rc, 0);
	pbox_wal_iter_close(it);
	return n;
}

/* Append durable groups of varied sizes until the end is in segment k, at an offset in
 * [lo, hi) of it. */
static inline void wfill_to(wfix *x, pbox_wal *w, uint64_t k, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0;; i++) {
		pbox_lsn e = x->n ? x->end[x->n - 1] : 0;
		if (e / x->S == k && e % x->S >= lo && e % x->S < hi)
			return;
		REQ(e / x->S <= k, "overshot segment %llu", (unsigned long long)k);
		uint32_t len = 100 + (x->n * 37) % 500;
		if (e / x->S == k && e % x->S < lo && lo - e % x->S < 700)
			len = 16; /* creep up to the window */
		EQ(wappend(x, w, len, true), 0);
	}
}

/* Wait (bounded) until the log has at least nseg segment files in use. */
static inline void wait_segments(pbox_wal *w, uint32_t nseg)
{
	for (int i = 0; i < 5000; i++) {
		pbox_wal_info info;
		pbox_wal_get_info(w, &info);
		if (info.segments >= nseg)
			return;
		usleep(1000);
	}
	ck_abort_msg("the background thread did not prepare segment %u", nseg - 1);
}


#endif
