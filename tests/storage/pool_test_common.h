/*
 * pool_test_common.h — the counter pages shared by check_pool_stress.c and
 * check_pool_errors.c: the first 8 payload bytes hold the page's own id (a stamp written when
 * the page is created), the next 8 a counter that only grows, changed by mini-transactions
 * that log a user redo record INC(delta), so recovery goes through a registered handler.
 */
#ifndef PBOX_POOL_TEST_COMMON_H
#define PBOX_POOL_TEST_COMMON_H

#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sanitizer runtimes add shadow memory that distorts RSS: the RSS bound is checked only
 * without them (the resident-page bound is checked always). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

#define DIR_ "/st"
#define PS 4096u
#define MIN_BUDGET 64u /* pages: pbox_store_open / set_budget clamp to at least this */
#define STAMP_OFF PBOX_PAGE_HDR
#define CTR_OFF (PBOX_PAGE_HDR + 8)
#define PAGE_CTR (PBOX_PAGE_TYPE_USER + 2)
#define REDO_INC (PBOX_REDO_TYPE_USER + 2)
/* Bytes of frame table per page id (struct frame in storage/src/storage_int.h). */
#define FRAME_BYTES 32u

/* INC payload: u64 delta added to the counter. */
static inline int redo_inc(void *page, uint32_t ps, const void *payload, uint32_t len, void *arg)
{
	(void)arg;
	if (len != 8 || ps < CTR_OFF + 8)
		return PBOX_ECORRUPT;
	uint64_t d, v;
	memcpy(&d, payload, 8);
	memcpy(&v, (unsigned char *)page + CTR_OFF, 8);
	v += d;
	memcpy((unsigned char *)page + CTR_OFF, &v, 8);
	return 0;
}

static const pbox_redo_handler handlers[] = { { .type = REDO_INC, .fn = redo_inc } };

static inline pbox_store_options opts(pbox_io *io, uint64_t budget_pages)
{
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = io;
	o.create = true;
	o.page_size = PS;
	o.budget_bytes = budget_pages * PS;
	o.max_bytes = 1ull << 30;
	o.wal_segment_size = 1 << 20;
	o.wal_flush_delay_us = 0;
	o.redo = handlers;
	o.nredo = 1;
	return o;
}

static inline pbox_io_memfs *new_fs(pbox_io **io)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	*io = pbox_io_memfs_io(fs);
	return fs;
}

static inline pbox_store *open_store(pbox_io *io, uint64_t budget_pages)
{
	pbox_store_options o = opts(io, budget_pages);
	pbox_store *st;
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	int rc = pbox_store_open(DIR_, &o, &st);
	if (rc)
		ck_abort_msg("pbox_store_open: %s: %s", pbox_strerror(rc), err);
	return st;
}

/* Allocate n counter pages (16 per mini-transaction), stamped, counters 0. */
static inline void create_pages(pbox_store *st, unsigned n, pbox_pid *pids)
{
	for (unsigned i = 0; i < n;) {
		pbox_mtr *m;
		ck_assert_int_eq(pbox_mtr_begin(st, &m), 0);
		for (unsigned k = 0; k < 16 && i < n; k++, i++) {
			ck_assert_int_eq(pbox_mtr_alloc(m, PAGE_CTR, &pids[i], NULL), 0);
			ck_assert_int_eq(pbox_mtr_write(m, pids[i], STAMP_OFF, &pids[i], 8), 0);
		}
		ck_assert_int_eq(pbox_mtr_commit(m, false, NULL), 0);
	}
}

/* Add delta to the counter of a page held by m (change in place, then log it). */
static inline int mtr_inc(pbox_mtr *m, pbox_pid pid, uint64_t delta)
{
	void *page;
	int r = pbox_mtr_fix(m, pid, &page);
	if (r)
		return r;
	redo_inc(page, PS, &delta, 8, NULL);
	return pbox_mtr_log(m, pid, REDO_INC, &delta, 8);
}

static inline int inc_one(pbox_store *st, pbox_pid pid, bool durable)
{
	pbox_mtr *m;
	int r = pbox_mtr_begin(st, &m);
	if (r)
		return r;
	if ((r = mtr_inc(m, pid, 1))) {
		pbox_mtr_abort(m, false); /* fix failed: nothing was changed */
		return r;
	}
	return pbox_mtr_commit(m, durable, NULL);
}

/* Read a page's stamp and counter: optimistic with restarts, then the shared latch. */
static inline int read_page(pbox_store *st, pbox_pid pid, uint64_t *stamp, uint64_t *ctr)
{
	const unsigned char *p = pbox_page_addr(st, pid);
	for (unsigned tries = 0; tries < PBOX_LATCH_MAX_OPT_RESTARTS; tries++) {
		uint64_t v;
		int r = pbox_page_fix_opt(st, pid, &v);
		if (r)
			return r;
		uint64_t s = pbox_latch_opt_load_u64(p + STAMP_OFF);
		uint64_t c = pbox_latch_opt_load_u64(p + CTR_OFF);
		if (pbox_page_validate(st, pid, v)) {
			*stamp = s;
			*ctr = c;
			return 0;
		}
	}
	int r = pbox_page_fix_shared(st, pid);
	if (r)
		return r;
	memcpy(stamp, p + STAMP_OFF, 8);
	memcpy(ctr, p + CTR_OFF, 8);
	pbox_page_unfix_shared(st, pid);
	return 0;
}

static inline void check_page(pbox_store *st, pbox_pid pid, uint64_t want_ctr)
{
	uint64_t s = 0, c = 0;
	int r = read_page(st, pid, &s, &c);
	if (r)
		ck_abort_msg("page %llu: read failed: %s", (unsigned long long)pid,
			     pbox_strerror(r));
	if (s != pid || c != want_ctr)
		ck_abort_msg("page %llu: stamp %llu counter %llu, want stamp %llu counter %llu",
			     (unsigned long long)pid, (unsigned long long)s, (unsigned long long)c,
			     (unsigned long long)pid, (unsigned long long)want_ctr);
}

static inline pbox_store_stats stats(pbox_store *st)
{
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	return s;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}


#endif
