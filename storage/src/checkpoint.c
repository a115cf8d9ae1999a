/*
 * checkpoint.c — fuzzy checkpoints and the automatic-checkpoint thread.
 *
 * Checkpoint (writers continue):
 *   1. under ckpt_lock exclusive: epoch + 1 (the next change of every page logs a full
 *      image) and C = the WAL's end: every group below C is stamped on its pages;
 *   2. write back every page whose dirty LSN is at most C, from a snapshot of the resident
 *      set, holding each page's latch shared across its write (no older image can land after
 *      a newer one) and waiting for the WAL first (the WAL rule);
 *   3. fdatasync the data file; make the WAL segment holding C exist, durably; read the
 *      extensions' log floors (after C was taken); make the log durable to its current end
 *      (what settled a floor dropped before the read is in it); write the next superblock
 *      with redo start C and logical start L = min(C, the floors) (fdatasynced);
 *   4. recycle the WAL below L (or below a running backup's floor or an open tail's
 *      position, if earlier: tail.c).
 * On a replica (replica.c) C is not the WAL's end but the latest epoch start of the primary
 * at or below the applied LSN (groups past the applied LSN may be in the log and not on the
 * pages yet; a torn page is repaired only by the primary's full-page images, which follow
 * the primary's epoch starts), and L also respects the replica's open transactions.
 * A failed checkpoint poisons the store (pages may be half written; the log still has them).
 *
 * Locking: ckpt_mu makes one checkpoint at a time. Only the first page latch of a batch may
 * block (a checkpoint waiting for a latch while holding others could deadlock with an mtr
 * holding that one and waiting for one of ours). ac_mu + ac_cv drive the automatic thread.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checkpoint ---------------------------------------------------------------------------- */

#define CKPT_BATCH 64u

/* Write pages the checkpoint holds shared (WAL rule first), mark them clean, release them.
 * Sealing writes the checksum field in place: the shared latch keeps writers out, and
 * readers never look at the checksum. */
static int ckpt_write(pbox_store *st, const pbox_pid *w, unsigned nw, pbox_lsn max_lsn)
{
	int r = max_lsn ? pbox_wal_wait_durable(st->wal, max_lsn) : 0;
	if (!r)
		r = pbox__pool_write_pages(st, w, nw);
	for (unsigned i = 0; i < nw; i++) {
		frame *f = pbox__frame(st, w[i]);
		if (!r)
			atomic_store_explicit(&f->dirty, 0, memory_order_relaxed);
		pbox_latch_shared_release(&f->latch);
	}
	return r;
}

int pbox_store_checkpoint(pbox_store *st)
{
	int r = pbox__poisoned(st);
	if (r)
		return r;
	pthread_mutex_lock(&st->ckpt_mu);
	/* 1 */
	pthread_rwlock_wrlock(&st->ckpt_lock);
	atomic_fetch_add(&st->ckpt_epoch, 1);
	pbox_lsn c = st->replica ? pbox__replica_ckpt_lsn(st) : pbox_wal_end_lsn(st->wal);
	pthread_rwlock_unlock(&st->ckpt_lock);
	/* 2: snapshot the resident set, then write from the snapshot. (Scanning the live set
	 * in slices would miss pages that a concurrent eviction's swap-remove moves into an
	 * already scanned slot.) A dirty page is always resident; a page loaded after the
	 * snapshot was clean then, so any change to it has a dirty LSN above c. */
	pthread_mutex_lock(&st->res_mu);
	uint32_t nsnap = st->res_n;
	pbox_pid *snap = pbox_malloc((nsnap ? nsnap : 1) * sizeof(*snap));
	if (snap)
		memcpy(snap, st->res, nsnap * sizeof(*snap));
	pthread_mutex_unlock(&st->res_mu);
	if (!snap) {
		pthread_mutex_unlock(&st->ckpt_mu);
		return -ENOMEM;
	}
	uint32_t slot = 0;
	for (;;) {
		pbox_pid cand[CKPT_BATCH];
		unsigned n = 0;
		while (slot < nsnap && n < CKPT_BATCH) {
			pbox_pid pid = snap[slot++];
			uint64_t d = atomic_load_explicit(&pbox__frame(st, pid)->dirty,
							  memory_order_relaxed);
			if (d && d <= c)
				cand[n++] = pid;
		}
		bool more = slot < nsnap;
		/* latch shared, re-check; hold across the write. Only the first latch of a batch
		 * may block: a checkpoint that waited for a latch while holding others could
		 * deadlock with an mtr holding that one and waiting for one of ours. */
		pbox_pid w[CKPT_BATCH];
		unsigned nw = 0;
		pbox_lsn max_lsn = 0;
		for (unsigned i = 0; i <= n && !r; i++) {
			frame *f = i < n ? pbox__frame(st, cand[i]) : NULL;
			bool got = f && (nw == 0 ? (pbox_latch_shared_acquire(&f->latch), true)
						 : pbox_latch_shared_try(&f->latch));
			if (!got && nw) { /* write what we hold, then retry this page */
				r = ckpt_write(st, w, nw, max_lsn);
				nw = 0;
				max_lsn = 0;
				if (f && !r) {
					pbox_latch_shared_acquire(&f->latch);
					got = true;
				}
			}
			if (!got)
				continue;
			pbox_frame_state fs = pbox_swip_state(pbox_swip_load(&f->swip));
			uint64_t d = atomic_load_explicit(&f->dirty, memory_order_relaxed);
			if ((fs != PBOX_FRAME_HOT && fs != PBOX_FRAME_COOL) || !d || d > c) {
				pbox_latch_shared_release(&f->latch); /* evicted (and written) meanwhile */
				continue;
			}
			pbox_lsn l = ld64((unsigned char *)pbox_page_addr(st, cand[i]) + OFF_LSN);
			if (l > max_lsn)
				max_lsn = l;
			w[nw++] = cand[i];
		}
		if (nw && !r)
			r = ckpt_write(st, w, nw, max_lsn);
		if (r)
			break;
		if (!more)
			break;
	}
	pbox_free(snap);
	/* 3, 4 */
	if (!r)
		r = st->io->fdatasync(st->io, st->data_fd);
	/* the segment holding C exists, durably, before a superblock names C (C may be
	 * exactly where a segment begins, before anything was written into it) */
	if (!r)
		r = pbox_wal_prepare(st->wal, c);
	/* the logical start: no later than any extension's floor (a transaction whose commit
	 * is logged but not yet installed), which is read after c was taken: an extension
	 * publishes its floor before appending what it covers (pbox_store_ext_ops) */
	pbox_lsn logical = c;
	if (!r) {
		pbox_lsn f = pbox__store_ext_floor(st);
		if (f != PBOX_LSN_NONE && f < c)
			logical = f;
		f = st->replica ? pbox__replica_floor(st) : PBOX_LSN_NONE;
		if (f != PBOX_LSN_NONE && f < logical)
			logical = f;
	}
	/* An extension that dropped its floor before the walk above logged, before dropping
	 * it, what settles it (a transaction's install and end record), possibly above C and
	 * not yet durable: were the superblock to name a logical start past that commit and
	 * the power then fail, recovery would neither redo the install (lost with the log's
	 * tail) nor replay the commit (below the logical start). So the log is made durable up
	 * to its end as of now first. */
	if (!r)
		r = pbox_wal_wait_durable(st->wal, pbox_wal_end_lsn(st->wal));
	if (!r) {
		st->checkpoints++;
		r = pbox__store_write_super(st, c, logical);
	}
	/* a running backup (backup.c) still copies segments from its floor on */
	pbox_lsn recycle = logical, bf = atomic_load(&st->backup_floor);
	if (bf != PBOX_LSN_NONE && bf < recycle)
		recycle = bf;
	bf = pbox__tail_floor(st, pbox_wal_end_lsn(st->wal)); /* tails still shipping */
	if (bf != PBOX_LSN_NONE && bf < recycle)
		recycle = bf;
	if (!r)
		r = pbox_wal_recycle(st->wal, recycle);
	if (r)
		pbox__set_poison(st, r);
	pthread_mutex_unlock(&st->ckpt_mu);
	return r;
}

/* ---- automatic checkpoints ------------------------------------------------------------------
 * A thread looks at the log every 50 ms and checkpoints once ac_bytes have accumulated past
 * the redo start. A failed checkpoint poisons the store (pbox_store_checkpoint), after which
 * the thread only waits for close. */

static void *ac_main(void *arg)
{
	pbox_store *st = arg;
	pthread_mutex_lock(&st->ac_mu);
	while (!st->ac_stop) {
		/* a replica can checkpoint only up to its primary's latest known epoch start */
		pbox_lsn end = st->replica ? pbox__replica_ckpt_lsn(st) : pbox_wal_end_lsn(st->wal);
		pbox_lsn start = atomic_load(&st->redo_start);
		if (!pbox__poisoned(st) && end > start && end - start >= st->ac_bytes) {
			pthread_mutex_unlock(&st->ac_mu);
			if (pbox_store_checkpoint(st) == 0)
				atomic_fetch_add(&st->auto_checkpoints, 1);
			pthread_mutex_lock(&st->ac_mu);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&st->ac_cv, &st->ac_mu, &ts);
	}
	pthread_mutex_unlock(&st->ac_mu);
	return NULL;
}

int pbox__ac_start(pbox_store *st, uint64_t bytes)
{
	st->ac_bytes = bytes;
	int r = pthread_create(&st->ac, NULL, ac_main, st);
	if (r)
		return -r;
	st->ac_running = true;
	return 0;
}

void pbox__ac_stop(pbox_store *st)
{
	if (!st->ac_running)
		return;
	pthread_mutex_lock(&st->ac_mu);
	st->ac_stop = true;
	pthread_cond_signal(&st->ac_cv);
	pthread_mutex_unlock(&st->ac_mu);
	pthread_join(st->ac, NULL);
	st->ac_running = false;
}

