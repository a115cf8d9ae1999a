/*
 * check_errpaths_store.c — every error branch of the store's open and recovery, driven on
 * purpose (the WAL's: check_errpaths_wal.c): superblocks of another version, damaged meta
 * pages, impossible sizes, failures at every step of creation, redo records shorter than
 * their page id, groups naming more pages than any mtr can, unknown record types, a damaged
 * page without a full-page image. Every case asserts the exact status, that nothing crashes
 * or leaks (LeakSanitizer in the ASan build), and that the store opens again or keeps
 * refusing clearly. Formats: errpaths_common.h. Everything runs on memfs.
 */
#include "errpaths_common.h"


/* ==== storage: fixture ======================================================================= */

#define SDIR "/st"
#define PS 4096u
#define REDO_SET (PBOX_REDO_TYPE_USER + 5) /* u32 offset, then bytes */
#define PAGE_T (PBOX_PAGE_TYPE_USER + 3)

static int redo_set(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t off;
	if (len < 4)
		return PBOX_ECORRUPT;
	memcpy(&off, payload, 4);
	if (off < PBOX_PAGE_HDR || off > ps || len - 4 > ps - off)
		return PBOX_ECORRUPT;
	memcpy((uint8_t *)page + off, (const uint8_t *)payload + 4, len - 4);
	return 0;
}

static const pbox_redo_handler handlers[] = { { .type = REDO_SET, .fn = redo_set } };

typedef struct sfix {
	pbox_io_memfs *fs;
	pbox_io *mio;
	pbox_io_faulty *f;
	pbox_store_options o;
	char err[256];
	pbox_pid pid; /* a data page holding "hello" at offset 100 */
} sfix;

static void sfix_init(sfix *x)
{
	memset(x, 0, sizeof(*x));
	EQ(pbox_io_memfs_create(&x->fs), 0);
	x->mio = pbox_io_memfs_io(x->fs);
	EQ(pbox_io_faulty_create(x->mio, &x->f), 0);
	pbox_store_options_init(&x->o);
	x->o.io = pbox_io_faulty_io(x->f);
	x->o.create = true;
	x->o.page_size = PS;
	x->o.budget_bytes = 64 * PS;
	x->o.max_bytes = 1u << 20; /* 256 pages */
	x->o.wal_segment_size = 256u << 10;
	x->o.wal_flush_delay_us = 0;
	x->o.checkpoint_log_bytes = 0;
	x->o.no_direct_io = true;
	x->o.redo = handlers;
	x->o.nredo = 1;
	x->o.errbuf = x->err;
	x->o.errbuf_len = sizeof(x->err);
}

static void sfix_fini(sfix *x)
{
	pbox_io_faulty_destroy(x->f);
	pbox_io_memfs_destroy(x->fs);
}

/* A store with one data page, checkpointed and closed. */
static void sfix_build(sfix *x)
{
	sfix_init(x);
	pbox_store *st;
	EQ(pbox_store_open(SDIR, &x->o, &st), 0);
	pbox_mtr *m;
	EQ(pbox_mtr_begin(st, &m), 0);
	EQ(pbox_mtr_alloc(m, PAGE_T, &x->pid, NULL), 0);
	EQ(pbox_mtr_write(m, x->pid, 100, "hello", 5), 0);
	EQ(pbox_mtr_commit(m, true, NULL), 0);
	EQ(pbox_store_checkpoint(st), 0);
	EQ(pbox_store_close(st), 0);
	x->o.create = false;
}

static int sopen(sfix *x, pbox_store **st)
{
	x->err[0] = 0;
	return pbox_store_open(SDIR, &x->o, st);
}

static void sopen_close(sfix *x)
{
	pbox_store *st;
	int rc = sopen(x, &st);
	REQ(rc == 0, "open: %s (%s)", pbox_status_name(rc), x->err);
	EQ(pbox_store_close(st), 0);
}

/* Append one group to the closed store's log, through the WAL's own API. */
static void wal_add(sfix *x, const pbox_wal_rec *recs, unsigned n)
{
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = x->mio;
	pbox_wal *w;
	EQ(pbox_wal_open(SDIR "/wal", &o, &w), 0);
	pbox_lsn e;
	EQ(pbox_wal_append(w, recs, n, &e), 0);
	EQ(pbox_wal_wait_durable(w, e), 0);
	EQ(pbox_wal_close(w), 0);
}

static void damage_page(sfix *x, pbox_pid pid)
{
	uint8_t junk[300];
	memset(junk, 0x5A, sizeof(junk));
	poke(x->fs, SDIR "/data", junk, sizeof(junk), pid * PS + 1000);
}

/* ==== storage/store.c: superblocks ============================================================ */

static void reseal_super_version(sfix *x, pbox_pid copy, uint32_t version, const uint8_t *orig)
{
	uint8_t p[PS];
	memcpy(p, orig, PS);
	put32(p + SB_FORMAT, version);
	page_seal(p, PS);
	poke(x->fs, SDIR "/data", p, PS, copy * PS);
}

START_TEST(test_store_superblock_version)
{
	sfix x;
	sfix_build(&x);
	/* two checkpoints more: both copies hold generations of this store */
	sopen_close(&x);
	static uint8_t sb[2][PS];
	peek(x.fs, SDIR "/data", sb[0], PS, 0);
	peek(x.fs, SDIR "/data", sb[1], PS, PS);
	pbox_pid newer = get64(sb[1] + SB_GEN) > get64(sb[0] + SB_GEN);
	pbox_store *st;
	/* both copies, only the newer one, only the older one: another version wrote to this
	 * store; open refuses rather than fall back to a copy it understands (and later
	 * overwrite the other) */
	for (int which = 0; which < 3; which++) {
		for (pbox_pid c = 0; c < 2; c++)
			if (which == 0 || (which == 1) == (c == newer))
				reseal_super_version(&x, c, 2, sb[c]);
		EQ(sopen(&x, &st), PBOX_EVERSION);
		REQ(strstr(x.err, "version"), "no explanation: '%s'", x.err);
		poke(x.fs, SDIR "/data", sb[0], PS, 0);
		poke(x.fs, SDIR "/data", sb[1], PS, PS);
	}
	sopen_close(&x);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/store.c: the meta page ========================================================== */

START_TEST(test_store_meta_damaged)
{
	sfix x;
	sfix_build(&x);
	uint8_t orig[PS], p[PS];
	peek(x.fs, SDIR "/data", orig, PS, META_PID * PS);
	pbox_store *st;
	for (int c = 0; c < 4; c++) {
		memcpy(p, orig, PS);
		if (c == 0)
			put64(p + META_COUNT, 1); /* fewer pages than the store's own */
		else if (c == 1)
			put64(p + META_COUNT, 1ull << 40); /* more than max_bytes allows */
		else if (c == 2)
			put16(p + PG_TYPE, PBOX_PAGE_TYPE_FREE);
		if (c < 3)
			page_seal(p, PS); /* valid checksum, wrong contents */
		else
			p[200] ^= 1; /* plain damage */
		poke(x.fs, SDIR "/data", p, PS, META_PID * PS);
		EQ(sopen(&x, &st), PBOX_ECORRUPT);
		REQ(strstr(x.err, "meta page"), "no explanation: '%s'", x.err);
		poke(x.fs, SDIR "/data", orig, PS, META_PID * PS);
	}
	sopen_close(&x);

	/* damaged while the store is open: the meta slots and statistics read nothing (and
	 * nothing crashes), and the next open refuses */
	EQ(sopen(&x, &st), 0);
	pbox_mtr *m;
	pbox_pid last = 0;
	for (int i = 0; i < 5; i++) { /* 150 pages, more than twice the pool */
		EQ(pbox_mtr_begin(st, &m), 0);
		for (int j = 0; j < 30; j++)
			EQ(pbox_mtr_alloc(m, PAGE_T, &last, NULL), 0);
		if (i == 0)
			EQ(pbox_mtr_meta_set(m, 3, 77), 0);
		EQ(pbox_mtr_commit(m, true, NULL), 0);
	}
	EQ(pbox_store_checkpoint(st), 0);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), 77);
	ck_assert_uint_eq(pbox_store_meta_get(st, PBOX_META_SLOTS), 0); /* no such slot */
	damage_page(&x, META_PID);
	/* read other pages until the clock has evicted the (clean) meta page */
	uint64_t v;
	int rc = 0;
	for (int round = 0; round < 20 && rc == 0; round++) {
		for (pbox_pid q = META_PID + 1; q <= last; q++) {
			EQ(pbox_page_fix_shared(st, q), 0);
			pbox_page_unfix_shared(st, q);
		}
		rc = pbox_page_fix_opt(st, META_PID, &v);
	}
	EQ(rc, PBOX_ECORRUPT);
	ck_assert_uint_eq(pbox_store_meta_get(st, 3), 0);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert_uint_eq(s.free_pages, 0);
	EQ(pbox_store_close(st), 0);
	EQ(sopen(&x, &st), PBOX_ECORRUPT);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/store.c: sizes, reservations, bad arguments ===================================== */

START_TEST(test_store_sizes)
{
	sfix x;
	sfix_build(&x);
	pbox_store *st;
	/* the data file (grown to max_bytes) is larger than this open allows */
	x.o.max_bytes = 512u << 10;
	EQ(sopen(&x, &st), PBOX_ENOSPC);
	/* fewer than 64 pages */
	x.o.max_bytes = 63 * PS;
	EQ(sopen(&x, &st), PBOX_EINVAL);
	x.o.max_bytes = 1u << 20;
	sopen_close(&x);
	sfix_fini(&x);

	/* 2^32 pages of 64 KiB: a reservation larger than the address space */
	sfix_init(&x);
	x.o.page_size = 65536;
	x.o.budget_bytes = 64 * 65536;
	x.o.max_bytes = 1ull << 48;
	int rc = sopen(&x, &st);
	if (rc == 0) /* a machine with a 57-bit address space */
		EQ(pbox_store_close(st), 0);
	else
		EQ(rc, -ENOMEM);
	sfix_fini(&x);

	/* bad arguments */
	pbox_store_options o;
	pbox_store_options_init(&o);
	EQ(pbox_store_open(NULL, &o, &st), PBOX_EINVAL);
	EQ(pbox_store_open(SDIR, NULL, &st), PBOX_EINVAL);
	EQ(pbox_store_open(SDIR, &o, NULL), PBOX_EINVAL);
	EQ(pbox_store_close(NULL), 0);
}
END_TEST

/* ==== storage/store.c: creation ============================================================== */

START_TEST(test_store_create_failures)
{
	/* a log left by a crashed creation cannot be cleared: reported; the next create works */
	sfix x;
	sfix_init(&x);
	EQ(x.mio->mkdir(x.mio, SDIR, 0755), 0);
	EQ(x.mio->mkdir(x.mio, SDIR "/wal", 0755), 0);
	put_file(x.mio, SDIR "/wal/wal-0000000000000000.seg", "left over", 9);
	pbox_store *st;
	pbox_io_faulty_arm(x.f, PBOX_IO_UNLINK, 1, EIO, false);
	EQ(sopen(&x, &st), -EIO);
	pbox_io_faulty_disarm(x.f);
	ck_assert(!file_exists(x.mio, SDIR "/data"));
	EQ(sopen(&x, &st), 0);
	EQ(pbox_store_close(st), 0);
	x.o.create = false;
	sopen_close(&x);
	sfix_fini(&x);

	/* a file system that refuses O_DIRECT for the new data file (open call 4: the unfinished
	 * backup's marker, LOCK, data, data.new): buffered I/O, noted */
	sfix_init(&x);
	x.o.no_direct_io = false;
	pbox_io_faulty_arm(x.f, PBOX_IO_OPEN, 4, EINVAL, false);
	EQ(sopen(&x, &st), 0);
	ck_assert(pbox_io_faulty_fired(x.f));
	pbox_io_faulty_disarm(x.f);
	REQ(strstr(x.err, "O_DIRECT"), "no note: '%s'", x.err);
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	ck_assert(!s.direct_io);
	EQ(pbox_store_close(st), 0);
	x.o.create = false;
	sopen_close(&x);
	sfix_fini(&x);
}
END_TEST

/* ==== storage/mtr.c + store.c: redo records that recovery must refuse ========================= */

typedef unsigned (*mk_fn)(pbox_pid pid, pbox_wal_rec *recs, uint8_t *buf);

static unsigned mk_rec(pbox_wal_rec *r, uint8_t *buf, uint16_t type, pbox_pid pid,
		       const void *body, uint32_t blen)
{
	put64(buf, pid);
	if (blen)
		memcpy(buf + 8, body, blen);
	*r = (pbox_wal_rec){ .type = type, .data = buf, .len = 8 + blen };
	return 1;
}

static unsigned mk_short(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	put32(buf, 3);
	r[0] = (pbox_wal_rec){ .type = REDO_WRITE, .data = buf, .len = 4 };
	return 1;
}

static unsigned mk_wide(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	const unsigned n = 4 * PBOX_MTR_MAX_PAGES + 1;
	for (unsigned i = 0; i < n; i++) {
		uint8_t body[5] = { 0 };
		put32(body, 200);
		body[4] = (uint8_t)i;
		mk_rec(&r[i], buf + 16 * i, REDO_WRITE, 3 + i, body, 5);
	}
	return n;
}

static unsigned mk_unknown_user(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_SET + 1, pid, "\x64\0\0\0x", 5);
}

static unsigned mk_reserved(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, 7, pid, "\x64\0\0\0x", 5);
}

static unsigned mk_far_page(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	(void)pid;
	return mk_rec(r, buf, REDO_WRITE, 1u << 20, "\x64\0\0\0x", 5);
}

static unsigned mk_fpi_size(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	static const uint8_t img[100];
	return mk_rec(r, buf, REDO_FPI, pid, img, sizeof(img));
}

static unsigned mk_write_tiny(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_WRITE, pid, "\x64\0", 2);
}

static unsigned mk_write_far(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t body[5];
	put32(body, PS + 1);
	body[4] = 1;
	return mk_rec(r, buf, REDO_WRITE, pid, body, 5);
}

static unsigned mk_write_past(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t body[6];
	put32(body, PS - 1);
	body[4] = body[5] = 1;
	return mk_rec(r, buf, REDO_WRITE, pid, body, 6);
}

static unsigned mk_init_size(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_INIT, pid, "\x13\0\0", 3);
}

static unsigned mk_user_rejects(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_SET, pid, "\x01\0", 2);
}

static unsigned mk_write(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	return mk_rec(r, buf, REDO_WRITE, pid, "\x64\0\0\0J", 5);
}

/* INIT rebuilds the page whole: it restores a damaged page; a write after it applies */
static unsigned mk_init_then_write(pbox_pid pid, pbox_wal_rec *r, uint8_t *buf)
{
	uint8_t t[2];
	put16(t, PAGE_T + 1);
	mk_rec(&r[0], buf, REDO_INIT, pid, t, 2);
	return 1 + mk_rec(&r[1], buf + 64, REDO_WRITE, pid, "\x64\0\0\0J", 5);
}

typedef struct rcase {
	const char *what;
	mk_fn mk;
	bool damage; /* the page is damaged on disk first */
	int want;
} rcase;

static const rcase rcases[] = {
	{ "record shorter than its page id", mk_short, false, PBOX_ECORRUPT },
	{ "group naming 129 pages", mk_wide, false, PBOX_ECORRUPT },
	{ "user type nobody registered", mk_unknown_user, false, PBOX_ECORRUPT },
	{ "reserved storage type", mk_reserved, false, PBOX_ECORRUPT },
	{ "page id beyond max_bytes", mk_far_page, false, PBOX_ECORRUPT },
	{ "full-page image of the wrong size", mk_fpi_size, false, PBOX_ECORRUPT },
	{ "write without its offset", mk_write_tiny, false, PBOX_ECORRUPT },
	{ "write at an offset beyond the page", mk_write_far, false, PBOX_ECORRUPT },
	{ "write past the page end", mk_write_past, false, PBOX_ECORRUPT },
	{ "init with a payload of the wrong size", mk_init_size, false, PBOX_ECORRUPT },
	{ "user record its handler rejects", mk_user_rejects, false, PBOX_ECORRUPT },
	{ "damaged page, no full-page image", mk_write, true, PBOX_ECORRUPT },
	{ "damaged page, init of the wrong size", mk_init_size, true, PBOX_ECORRUPT },
	{ "damaged page, rebuilt by an init", mk_init_then_write, true, 0 },
	{ "intact page, a good write", mk_write, false, 0 },
};

START_TEST(test_recovery_bad_records)
{
	const rcase *c = &rcases[_i];
	sfix x;
	sfix_build(&x);
	if (c->damage)
		damage_page(&x, x.pid);
	static pbox_wal_rec recs[4 * PBOX_MTR_MAX_PAGES + 1];
	static uint8_t buf[16 * (4 * PBOX_MTR_MAX_PAGES + 1) + 256];
	unsigned n = c->mk(x.pid, recs, buf);
	wal_add(&x, recs, n);
	pbox_store *st;
	int rc = sopen(&x, &st);
	REQ(rc == c->want, "%s: open = %s, want %s (%s)", c->what, pbox_status_name(rc),
	    pbox_status_name(c->want), x.err);
	if (rc) {
		REQ(strstr(x.err, "recovery failed"), "%s: no explanation: '%s'", c->what, x.err);
		/* it keeps refusing */
		EQ(sopen(&x, &st), c->want);
	} else {
		pbox_store_stats s;
		pbox_store_get_stats(st, &s);
		ck_assert_uint_eq(s.recovery_pages_restored, c->damage ? 1 : 0);
		ck_assert_uint_eq(s.recovery_groups, 1);
		EQ(pbox_page_fix_shared(st, x.pid), 0);
		const uint8_t *p = pbox_page_addr(st, x.pid);
		ck_assert_uint_eq(p[100], 'J');
		if (c->damage)
			ck_assert_uint_eq(p[PG_TYPE], PAGE_T + 1);
		else
			ck_assert_uint_eq(p[101], 'e');
		pbox_page_unfix_shared(st, x.pid);
		EQ(pbox_store_close(st), 0);
		sopen_close(&x);
	}
	sfix_fini(&x);
}
END_TEST


static Suite *suite(void)
{
	Suite *s = suite_create("errpaths_store");
	TCase *tc = tcase_create("storage");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_store_superblock_version);
	tcase_add_test(tc, test_store_meta_damaged);
	tcase_add_test(tc, test_store_sizes);
	tcase_add_test(tc, test_store_create_failures);
	tcase_add_loop_test(tc, test_recovery_bad_records, 0, (int)PBOX_ARRAY_LEN(rcases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
