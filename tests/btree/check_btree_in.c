/*
 * check_btree_in.c — tree changes inside a caller's mini-transaction (pbox_bt_*_in).
 *
 *   semantics   insert / upsert / remove in an mtr of the test's own, committed with it;
 *               EEXIST / ENOTFOUND; values over pbox_bt_inline_max refused (EINVAL);
 *               PBOX_ERESTART with nothing changed when the leaf is full, then
 *               pbox_bt_make_room and a retry succeed; PBOX_EBUSY while a transaction is
 *               open on the store.
 *   atomic      a "heap": a page of the test's own holding a counter of the entries
 *               indexed; each step adds an index entry and bumps the counter in one mtr.
 *               Power cuts at random moments (memfs, every mode, no background WAL
 *               flush): after recovery the counter equals the number of index entries,
 *               every step acknowledged by a durable commit is there, and some cycles lost
 *               their last steps (the cut did something).
 */
#include "btree_test_util.h"

#include <pbox/txn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_in_semantics)
{
	env e;
	env_init(&e, 4096, 256);
	pbox_bt *bt = bt_create(e.st, "t");
	pbox_mtr *m;
	CK_RC(pbox_mtr_begin(e.st, &m), 0);
	CK_RC(pbox_bt_insert_in(m, bt, "a", 1, "1", 1), 0);
	CK_RC(pbox_bt_insert_in(m, bt, "a", 1, "2", 1), PBOX_EEXIST);
	CK_RC(pbox_bt_upsert_in(m, bt, "a", 1, "3", 1), 0);
	CK_RC(pbox_bt_upsert_in(m, bt, "b", 1, "4", 1), 0);
	CK_RC(pbox_bt_remove_in(m, bt, "zz", 2), PBOX_ENOTFOUND);
	CK_RC(pbox_mtr_commit(m, true, NULL), 0);
	char v[16];
	size_t vl;
	CK_RC(pbox_bt_lookup(bt, "a", 1, v, sizeof(v), &vl), 0);
	REQ_T(vl == 1 && v[0] == '3');
	/* a long value is refused, the inline limit is published */
	size_t im = pbox_bt_inline_max(bt, 1);
	REQ_T(im > 100 && im < 4096);
	char *big = xmalloc(im + 1);
	memset(big, 'x', im + 1);
	CK_RC(pbox_mtr_begin(e.st, &m), 0);
	CK_RC(pbox_bt_upsert_in(m, bt, "c", 1, big, im + 1), PBOX_EINVAL);
	CK_RC(pbox_bt_remove_in(m, bt, "b", 1), 0);
	CK_RC(pbox_mtr_commit(m, false, NULL), 0);
	CK_RC(pbox_bt_lookup(bt, "b", 1, v, sizeof(v), &vl), PBOX_ENOTFOUND);
	/* a full leaf: ERESTART with nothing changed, make_room, retry */
	unsigned restarts = 0, n = 0;
	for (unsigned i = 0; i < 400; i++) {
		char k[16];
		int kl = snprintf(k, sizeof(k), "k%05u", i);
		for (;;) {
			CK_RC(pbox_mtr_begin(e.st, &m), 0);
			int r = pbox_bt_insert_in(m, bt, k, (size_t)kl, big, 200);
			if (r == PBOX_ERESTART) {
				pbox_mtr_abort(m, false); /* nothing changed: not poisoned */
				restarts++;
				CK_RC(pbox_bt_make_room(bt, k, (size_t)kl, 200), 0);
				continue;
			}
			CK_RC(r, 0);
			CK_RC(pbox_mtr_commit(m, false, NULL), 0);
			n++;
			break;
		}
	}
	REQ_T(restarts > 0); /* 400 x 200 bytes cannot fit the first leaf */
	REQ_EQ(bt_count(bt), n + 1);
	bt_verify(bt);
	/* beside an open transaction: refused */
	pbox_txn *t;
	CK_RC(pbox_txn_begin(e.st, PBOX_TXN_READONLY, &t), 0);
	CK_RC(pbox_mtr_begin(e.st, &m), 0);
	CK_RC(pbox_bt_upsert_in(m, bt, "a", 1, "9", 1), PBOX_EBUSY);
	pbox_mtr_abort(m, false);
	pbox_txn_abort(t);
	CK_RC(pbox_mtr_begin(e.st, &m), 0);
	CK_RC(pbox_bt_upsert_in(m, bt, "a", 1, "9", 1), 0);
	CK_RC(pbox_mtr_commit(m, false, NULL), 0);
	free(big);
	pbox_bt_close(bt);
	env_fini(&e);
}
END_TEST

/* The heap: a page of type PBOX_PAGE_TYPE_APP holding a u64 counter at offset 32, its page
 * id in meta slot 5. Changed by pbox_mtr_write (physical redo: no handler needed). */
#define HEAP_SLOT 5u

static pbox_pid heap_create(pbox_store *st)
{
	pbox_mtr *m;
	pbox_pid pid;
	void *pg;
	CK_RC(pbox_mtr_begin(st, &m), 0);
	CK_RC(pbox_mtr_alloc(m, PBOX_PAGE_TYPE_APP, &pid, &pg), 0);
	uint64_t z = 0;
	CK_RC(pbox_mtr_write(m, pid, PBOX_PAGE_HDR, &z, 8), 0);
	CK_RC(pbox_mtr_meta_set(m, HEAP_SLOT, pid), 0);
	CK_RC(pbox_mtr_commit(m, true, NULL), 0);
	return pid;
}

static uint64_t heap_count(pbox_store *st, pbox_pid pid)
{
	CK_RC(pbox_page_fix_shared(st, pid), 0);
	uint64_t c;
	memcpy(&c, (unsigned char *)pbox_page_addr(st, pid) + PBOX_PAGE_HDR, 8);
	pbox_page_unfix_shared(st, pid);
	return c;
}

START_TEST(test_in_atomic_powercut)
{
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	unsigned cycles = pbox_test_cycles(12), cut = 0, lost = 0;
	for (unsigned c = 0; c < cycles; c++) {
		env e;
		env_init(&e, 4096, 64);
		/* no background flush: what is not durable is still pending when the power goes */
		CK_RC(pbox_store_close(e.st), 0);
		e.o.wal_flush_delay_us = 0;
		env_open(&e);
		pbox_bt *bt = bt_create(e.st, "idx");
		pbox_pid heap = heap_create(e.st);
		uint64_t acked = 0, done = 0;
		unsigned steps = 200 + (unsigned)pbox_rng_below(&r, 800);
		for (unsigned i = 0; i < steps; i++) {
			char k[16], val[120];
			int kl = snprintf(k, sizeof(k), "e%08llu",
					  (unsigned long long)(pbox_rng_next(&r) % 100000000ull));
			memset(val, 'a' + (int)(i % 26), sizeof(val));
			bool durable = pbox_rng_below(&r, 8) == 0;
			for (;;) {
				pbox_mtr *m;
				CK_RC(pbox_mtr_begin(e.st, &m), 0);
				/* the tree first: on ERESTART nothing of ours changed yet */
				int rr = pbox_bt_insert_in(m, bt, k, (size_t)kl, val, sizeof(val));
				if (rr == PBOX_ERESTART) {
					pbox_mtr_abort(m, false);
					CK_RC(pbox_bt_make_room(bt, k, (size_t)kl, sizeof(val)), 0);
					continue;
				}
				if (rr == PBOX_EEXIST) { /* a repeated random key: skip it */
					pbox_mtr_abort(m, false);
					break;
				}
				CK_RC(rr, 0);
				void *pg;
				CK_RC(pbox_mtr_fix(m, heap, &pg), 0);
				uint64_t cnt;
				memcpy(&cnt, (unsigned char *)pg + PBOX_PAGE_HDR, 8);
				cnt++;
				CK_RC(pbox_mtr_write(m, heap, PBOX_PAGE_HDR, &cnt, 8), 0);
				CK_RC(pbox_mtr_commit(m, durable, NULL), 0);
				done = cnt;
				if (durable)
					acked = cnt;
				break;
			}
		}
		pbox_powercut_mode mode = (pbox_powercut_mode)pbox_rng_below(&r, 4);
		cut += pbox_io_memfs_powercut(e.fs, mode, pbox_rng_next(&r)) > 0;
		pbox_bt_close(bt);
		(void)pbox_store_close(e.st);
		pbox_io_memfs_restart(e.fs);
		env_open(&e);
		bt = bt_open(e.st, "idx");
		heap = pbox_store_meta_get(e.st, HEAP_SLOT);
		uint64_t cnt = heap_count(e.st, heap), keys = bt_count(bt);
		REQ_EQ(cnt, keys); /* the heap and the index moved together */
		REQ_GE(cnt, acked); /* nothing acknowledged was lost */
		REQ_LE(cnt, done);
		lost += cnt < done;
		bt_verify(bt);
		pbox_bt_close(bt);
		env_fini(&e);
	}
	fprintf(stderr, "btree_in power cuts: %u cycles, %u with unsynced file writes pending, "
			"%u lost their last steps\n", cycles, cut, lost);
	/* the WAL keeps non-durable groups in memory (no background flush here), so the cut
	 * must have taken the last steps in some cycle */
	REQ(lost > 0, "no power cut lost anything in %u cycles", cycles);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("btree-in");
	TCase *tc = tcase_create("in");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_in_semantics);
	tcase_add_test(tc, test_in_atomic_powercut);
	suite_add_tcase(s, tc);
	return pbox_test_run(s);
}
