/*
 * pbox_test_store.h — the memfs store fixture of the test toolkit (pbox_test.h), for suites
 * that link storage.
 */
#ifndef PBOX_TEST_STORE_H
#define PBOX_TEST_STORE_H

#include <pbox/storage.h>

#include "pbox_test.h"

/* Options for a small store on io, created if absent: a 64-page pool (evictions), a 1 GiB
 * reservation (the default 1 TiB is refused under TSan at times), 1 MiB log segments, no
 * flush delay. The caller adds its redo handlers (and changes what its test needs). */
static inline void pbox_test_store_options(pbox_store_options *o, pbox_io *io)
{
	pbox_store_options_init(o);
	o->io = io;
	o->create = true;
	o->budget_bytes = 64 * 4096;
	o->max_bytes = 1ull << 30;
	o->wal_segment_size = 1 << 20;
	o->wal_flush_delay_us = 0;
}

/* A fresh memfs (and its pbox_io in *io). */
static inline pbox_io_memfs *pbox_test_memfs(pbox_io **io)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	*io = pbox_io_memfs_io(fs);
	return fs;
}

#endif
