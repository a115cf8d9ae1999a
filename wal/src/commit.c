/*
 * commit.c — appending groups and making them durable (group commit).
 *
 * LSN watermarks, always reserved >= filled >= written >= synced:
 *   reserved  next LSN to hand out (append takes [pos, end) under mu)
 *   filled    every reservation below it has been copied into the ring
 *   written   everything below it has been handed to the OS
 *   synced    everything below it is on disk
 *   durable   what wait_durable promises: synced (written for SYNC_NONE)
 *
 * Append:   under mu reserve [pos, end) and a slot; copy the group into the ring without
 *           the lock; then mark the slot done (store-release).
 * Retire:   under mu, walk slots from the head while done (load-acquire, pairs with the
 *           appender's store-release): filled = that slot's end. This is what keeps the
 *           durable LSN a contiguous prefix: it can never pass a reservation whose copy is
 *           not finished.
 * Leader:   one thread at a time (flushing = true) writes [written, filled) and syncs with
 *           mu released, then publishes written/synced/durable and broadcasts cv. Waiters
 *           that find a leader busy sleep on cv; the next one up leads the next round, so
 *           one write + one sync serves everyone that appended meanwhile.
 * Ring:     LSN x lives at buf[x % buf_size]; an append waits (by writing itself if it can
 *           lead) while end - written > buf_size.
 * Failures: the first failed write or sync sets poison (under mu, mirrored in an atomic);
 *           the thread that hit it gets the OS error, everyone after PBOX_EPOISONED.
 */
#define _GNU_SOURCE
#include "wal_int.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

static void ring_put(pbox_wal *wal, uint64_t lsn, const void *src, size_t len)
{
	uint64_t off = lsn & (wal->buf_size - 1);
	size_t first = wal->buf_size - off < len ? (size_t)(wal->buf_size - off) : len;
	memcpy(wal->buf + off, src, first);
	if (first < len)
		memcpy(wal->buf, (const unsigned char *)src + first, len - first);
}

static void ring_zero(pbox_wal *wal, uint64_t lsn, size_t len)
{
	uint64_t off = lsn & (wal->buf_size - 1);
	size_t first = wal->buf_size - off < len ? (size_t)(wal->buf_size - off) : len;
	memset(wal->buf + off, 0, first);
	if (first < len)
		memset(wal->buf, 0, len - first);
}

/* Advance filled over finished reservations. mu held. */
static void retire(pbox_wal *wal)
{
	while (wal->slot_head < wal->slot_tail) {
		wal_slot *s = &wal->slots[wal->slot_head % NSLOTS];
		if (!atomic_load_explicit(&s->done, memory_order_acquire))
			break;
		atomic_store_explicit(&s->done, 0, memory_order_relaxed);
		wal->filled = s->end;
		wal->slot_head++;
		wal->groups_filled++;
	}
	if (wal->slot_head == wal->slot_tail)
		wal->filled = wal->reserved;
	PBOX_ASSERT(wal->reserved >= wal->filled && wal->filled >= wal->written); /* invariant 1 */
}

static void set_poison(pbox_wal *wal, int err)
{
	if (!wal->poison) {
		wal->poison = err;
		atomic_store_explicit(&wal->poisoned, err, memory_order_release);
	}
	pthread_cond_broadcast(&wal->cv);
}

/* One piece of the ring to write: [lsn, lsn + len) of segment k (never crosses the ring's
 * end or a segment boundary). */
typedef struct piece {
	uint64_t k, lsn;
	uint32_t len;
	int fd;
} piece;

#define MAX_PIECES 64

/* Write [a, b) (and sync when do_sync) without mu. */
static int write_range(pbox_wal *wal, uint64_t a, uint64_t b, uint64_t sync_from, bool do_sync)
{
	pbox_io *io = wal->io;
	const uint64_t S = wal->seg_size, B = wal->buf_size;
	int r = 0;
	while (a < b || do_sync) {
		piece pc[MAX_PIECES];
		unsigned np = 0;
		uint64_t pos = a;
		while (pos < b && np < MAX_PIECES) {
			uint64_t k = pos / S, seg_end = (k + 1) * S;
			uint64_t start = pos % S < SEG_HDR ? k * S + SEG_HDR : pos;
			uint64_t end = b < seg_end ? b : seg_end;
			if (start < end) {
				uint64_t ring_end = start - (start & (B - 1)) + B;
				if (end > ring_end)
					end = ring_end;
				int fd;
				if ((r = pbox__wal_seg_fd(wal, k, &fd)))
					return r;
				pc[np++] = (piece){ .k = k, .lsn = start, .len = (uint32_t)(end - start),
						    .fd = fd };
			}
			pos = end;
		}
		bool last = pos >= b;
		bool sync_now = do_sync && last;
		/* segments to sync: every one touched since sync_from */
		int sfd[8];
		unsigned ns = 0;
		uint64_t k0_all = 0, k1_all = 0;
		if (sync_now) {
			uint64_t k0 = sync_from / S, k1 = (b ? b - 1 : 0) / S;
			/* segments below the first one kept were recycled: nothing left to sync
			 * there (possible with SYNC_NONE, whose synced mark lags) */
			pthread_mutex_lock(&wal->seg_mu);
			uint64_t first = wal->nsegs ? wal->segs[0].k : k0;
			pthread_mutex_unlock(&wal->seg_mu);
			if (k0 < first)
				k0 = first;
			if (k1 < k0)
				k1 = k0;
			if (b <= sync_from)
				k1 = k0;
			k0_all = k0;
			k1_all = k1;
			/* the newest (at most 8) go with this round's writes; older ones are
			 * synced after the writes too (below) — never before: a sync issued before
			 * a write does not cover it */
			for (uint64_t k = k1 >= k0 + 8 ? k1 - 7 : k0; k <= k1; k++) {
				int fd;
				if ((r = pbox__wal_seg_fd(wal, k, &fd)))
					return r;
				sfd[ns++] = fd;
			}
		}
		uint64_t t0 = pbox_now_ns();
		if (wal->sync == PBOX_WAL_SYNC_IO_URING && wal->ring) {
			pbox_io_req req[MAX_PIECES + 8];
			unsigned n = 0;
			for (unsigned i = 0; i < np; i++)
				req[n++] = (pbox_io_req){ .op = PBOX_IO_OP_WRITE, .flags = PBOX_IO_LINK,
							  .fd = pc[i].fd,
							  .buf = wal->buf + (pc[i].lsn & (B - 1)),
							  .len = pc[i].len, .off = pc[i].lsn % S };
			for (unsigned i = 0; i < ns; i++)
				req[n++] = (pbox_io_req){ .op = PBOX_IO_OP_FDATASYNC,
							  .flags = PBOX_IO_LINK, .fd = sfd[i] };
			if (n) {
				req[n - 1].flags = 0;
				if ((r = io->ring_submit(io, wal->ring, req, n)))
					return r;
				for (unsigned i = 0; i < n; i++) {
					if (req[i].res < 0 && req[i].res != -ECANCELED)
						return (int)req[i].res;
					if (req[i].op == PBOX_IO_OP_WRITE && req[i].res >= 0 &&
					    req[i].res != (int64_t)req[i].len) {
						/* short write: finish it, then sync the slow way */
						const unsigned char *p = req[i].buf;
						uint64_t done = (uint64_t)req[i].res;
						if ((r = pbox_io_pwrite_full(io, req[i].fd, p + done,
									     req[i].len - done,
									     req[i].off + done)))
							return r;
						req[i].res = req[i].len;
					}
				}
				for (unsigned i = 0; i < n; i++)
					if (req[i].res == -ECANCELED) { /* after a short write */
						if (req[i].op == PBOX_IO_OP_WRITE)
							r = pbox_io_pwrite_full(io, req[i].fd,
										req[i].buf,
										req[i].len,
										req[i].off);
						else
							r = io->fdatasync(io, req[i].fd);
						if (r)
							return r;
					}
			}
		} else {
			for (unsigned i = 0; i < np; i++)
				if ((r = pbox_io_pwrite_full(io, pc[i].fd,
							     wal->buf + (pc[i].lsn & (B - 1)),
							     pc[i].len, pc[i].lsn % S)))
					return r;
			for (unsigned i = 0; i < ns; i++) {
				r = wal->sync == PBOX_WAL_SYNC_FSYNC ? io->fsync(io, sfd[i])
								     : io->fdatasync(io, sfd[i]);
				if (r)
					return r;
			}
		}
		if (sync_now && k1_all >= k0_all + 8) {
			/* segments older than the 8 synced with the writes (a long backlog) */
			for (uint64_t k = k0_all; k + 8 <= k1_all; k++) {
				int fd;
				if ((r = pbox__wal_seg_fd(wal, k, &fd)) ||
				    (r = wal->sync == PBOX_WAL_SYNC_FSYNC ? io->fsync(io, fd)
									   : io->fdatasync(io, fd)))
					return r;
			}
		}
		PBOX_M_ADD(wal->m.writes, np);
		if (sync_now) {
			uint64_t dt = pbox_now_ns() - t0;
			/* racy update by the single leader; read by waiters under mu: a hint only */
			atomic_store_explicit(&wal->sync_ns_ema,
					      (atomic_load_explicit(&wal->sync_ns_ema,
								    memory_order_relaxed) * 7 + dt) / 8,
					      memory_order_relaxed);
			PBOX_M_ADD(wal->m.syncs, 1);
			PBOX_M_ADD(wal->m.sync_ns, dt);
			PBOX_M_HIST(wal->m.sync_us, dt / 1000);
			(void)dt;
		}
		a = pos;
		if (last)
			break;
	}
	return 0;
}

/* Lead one round: write [written, filled) and sync if asked. mu held on entry and exit;
 * released during I/O. Returns 0 or the error that poisoned the log. */
static int lead(pbox_wal *wal, bool want_sync, bool force_sync)
{
	wal->flushing = true;
	retire(wal);
	uint64_t a = wal->written, b = wal->filled, sync_from = wal->synced;
	wal->round_seq = wal->slot_head; /* groups after this one wait for the next round */
	bool sync_writes = wal->sync == PBOX_WAL_SYNC_DSYNC;
	bool do_sync = !sync_writes && want_sync &&
		       (wal->sync != PBOX_WAL_SYNC_NONE || force_sync) && wal->synced < b;
	uint64_t groups = wal->groups_filled;
	int r = 0;
	if (a < b || do_sync) {
		pthread_mutex_unlock(&wal->mu);
		r = write_range(wal, a, b, sync_from, do_sync);
		pthread_mutex_lock(&wal->mu);
	}
	if (r) {
		set_poison(wal, r);
	} else {
		wal->written = b;
		if (do_sync || sync_writes) {
			if (b > wal->synced)
				wal->synced = b;
			PBOX_M_HIST(wal->m.groups_per_sync, groups - wal->groups_synced);
			wal->groups_synced = groups;
		}
		uint64_t d = wal->sync == PBOX_WAL_SYNC_NONE ? wal->written : wal->synced;
		PBOX_ASSERT(wal->filled >= wal->written && wal->written >= wal->synced &&
			    d <= wal->filled); /* invariant 1: durable never covers unfilled bytes */
		if (d > atomic_load_explicit(&wal->durable, memory_order_relaxed))
			atomic_store_explicit(&wal->durable, d, memory_order_release);
	}
	wal->gather_target = wal->nwaiting;
	wal->flushing = false;
	pthread_cond_broadcast(&wal->cv);
	return r;
}

int pbox_wal_append(pbox_wal *wal, const pbox_wal_rec *recs, unsigned n, pbox_lsn *end_lsn)
{
	if (!wal || !recs || n == 0)
		return PBOX_EINVAL;
	uint64_t body = 0;
	for (unsigned i = 0; i < n; i++) {
		if (recs[i].type == 0 || (recs[i].len && !recs[i].data))
			return PBOX_EINVAL;
		body += REC_HDR + align8(recs[i].len);
		if (body > wal->max_group)
			return PBOX_ELIMIT;
	}
	const uint64_t glen = GROUP_HDR + body, S = wal->seg_size;
	if (glen > wal->max_group + GROUP_HDR)
		return PBOX_ELIMIT;

	pthread_mutex_lock(&wal->mu);
	uint64_t pos, gstart, end, seq, sync_lsn;
	for (;;) {
		if (wal->poison) {
			pthread_mutex_unlock(&wal->mu);
			return PBOX_EPOISONED;
		}
		pos = pbox__wal_normalize(wal->reserved, S);
		gstart = pos;
		if (pos % S + glen > S)
			gstart = pos - pos % S + S + SEG_HDR;
		end = gstart + glen;
		if (end - wal->written <= wal->buf_size && wal->slot_tail - wal->slot_head < NSLOTS)
			break;
		retire(wal);
		if (end - wal->written <= wal->buf_size && wal->slot_tail - wal->slot_head < NSLOTS)
			break;
		/* out of ring space or slots: write some out ourselves, or wait for the leader */
		if (!wal->flushing && wal->written < wal->filled) {
			int r = lead(wal, false, false);
			if (r) {
				pthread_mutex_unlock(&wal->mu);
				return r;
			}
		} else if (wal->flushing) {
			pthread_cond_wait(&wal->cv, &wal->mu);
		} else { /* earlier copies still running */
			pthread_mutex_unlock(&wal->mu);
			sched_yield();
			pthread_mutex_lock(&wal->mu);
		}
	}
	seq = wal->slot_tail++;
	wal->slots[seq % NSLOTS].end = end;
	uint64_t prev_seg = wal->reserved / S;
	PBOX_ASSERT(end > wal->reserved);
	wal->reserved = end;
	atomic_store_explicit(&wal->reserved_a, end, memory_order_relaxed);
	sync_lsn = wal->synced;
	bool kick = (end % S >= S / 2 && (end - glen) % S < S / 2) || end / S != prev_seg ||
		    end - wal->written > wal->buf_size / 2;
	if (kick && !wal->bg_kick) {
		wal->bg_kick = true;
		pthread_cond_signal(&wal->cv_bg);
	}
	pthread_mutex_unlock(&wal->mu);

	/* copy without the lock */
	unsigned char hdr[GROUP_HDR];
	if (gstart != pos) { /* the rest of this segment is unused */
		uint64_t seg_end = pos - pos % S + S;
		if (seg_end - pos >= GROUP_HDR) {
			pbox__wal_group_hdr_encode(hdr, pos, sync_lsn, GROUP_HDR, 0, GF_SKIP);
			ring_put(wal, pos, hdr, GROUP_HDR);
			ring_zero(wal, pos + GROUP_HDR, seg_end - pos - GROUP_HDR);
		} else {
			ring_zero(wal, pos, seg_end - pos);
		}
	}
	pbox__wal_group_hdr_encode(hdr, gstart, sync_lsn, (uint32_t)glen, n, 0);
	ring_put(wal, gstart, hdr, GROUP_HDR);
	uint64_t at = gstart + GROUP_HDR;
	static const unsigned char zeros[8];
	for (unsigned i = 0; i < n; i++) {
		unsigned char rh[REC_HDR];
		pbox__wal_rec_hdr_encode(rh, at, recs[i].type, recs[i].data, recs[i].len);
		ring_put(wal, at, rh, REC_HDR);
		if (recs[i].len)
			ring_put(wal, at + REC_HDR, recs[i].data, recs[i].len);
		uint64_t pad = align8(recs[i].len) - recs[i].len;
		if (pad)
			ring_put(wal, at + REC_HDR + recs[i].len, zeros, pad);
		at += REC_HDR + align8(recs[i].len);
	}
	atomic_store_explicit(&wal->slots[seq % NSLOTS].done, 1, memory_order_release);
	PBOX_M_ADD(wal->m.appends, 1);
	PBOX_M_ADD(wal->m.append_bytes, glen);
	if (end_lsn)
		*end_lsn = end;
	return 0;
}

/* Wait until durable >= lsn, leading rounds when nobody else does. */
static int wait_for(pbox_wal *wal, uint64_t lsn, bool force_sync)
{
	int r = 0;
	uint64_t gather_until = 0;
	pthread_mutex_lock(&wal->mu);
	if (lsn > wal->reserved) {
		pthread_mutex_unlock(&wal->mu);
		return PBOX_EINVAL;
	}
	wal->nwaiting++;
	for (;;) {
		if (wal->poison) {
			r = PBOX_EPOISONED;
			break;
		}
		uint64_t have = force_sync ? wal->synced
					   : atomic_load_explicit(&wal->durable, memory_order_relaxed);
		if (have >= lsn)
			break;
		if (wal->flushing) {
			pthread_cond_wait(&wal->cv, &wal->mu);
			continue;
		}
		retire(wal);
		bool can_write = wal->written < wal->filled;
		bool can_sync = wal->sync != PBOX_WAL_SYNC_DSYNC &&
				(wal->sync != PBOX_WAL_SYNC_NONE || force_sync) &&
				wal->synced < wal->filled;
		if (!can_write && !can_sync) {
			/* an earlier append is still copying: let it finish */
			pthread_mutex_unlock(&wal->mu);
			sched_yield();
			pthread_mutex_lock(&wal->mu);
			continue;
		}
		/* Batching: every thread that was waiting when the last round ended (served
		 * or not) is probably about to append again. While fewer groups are pending
		 * than that, give them up to half a typical sync (yielding the CPU) so that
		 * one sync serves them all; otherwise rounds settle at a fraction of the
		 * committers. A lone committer never waits here (target 1, pending 1). */
		if (wal->slot_tail - wal->round_seq < wal->gather_target) {
			uint64_t now = pbox_now_ns();
			if (!gather_until)
				gather_until = now + atomic_load_explicit(&wal->sync_ns_ema,
								   memory_order_relaxed) / 2;
			if (now < gather_until) {
				pthread_mutex_unlock(&wal->mu);
				sched_yield();
				pthread_mutex_lock(&wal->mu);
				continue;
			}
		}
		gather_until = 0;
		if ((r = lead(wal, true, force_sync)))
			break;
	}
	wal->nwaiting--;
	pthread_mutex_unlock(&wal->mu);
	return r;
}

int pbox_wal_wait_durable(pbox_wal *wal, pbox_lsn lsn)
{
	if (atomic_load_explicit(&wal->poisoned, memory_order_acquire))
		return PBOX_EPOISONED;
	if (atomic_load_explicit(&wal->durable, memory_order_acquire) >= lsn)
		return 0;
#if PBOX_METRICS
	uint64_t t0 = pbox_now_ns();
	int r = wait_for(wal, lsn, false);
	PBOX_M_ADD(wal->m.wait_ns, pbox_now_ns() - t0);
	return r;
#else
	return wait_for(wal, lsn, false);
#endif
}

int pbox_wal_flush(pbox_wal *wal)
{
	if (atomic_load_explicit(&wal->poisoned, memory_order_acquire))
		return PBOX_EPOISONED;
	pthread_mutex_lock(&wal->mu);
	uint64_t target = wal->reserved;
	pthread_mutex_unlock(&wal->mu);
	return wait_for(wal, target, true);
}

pbox_lsn pbox_wal_end_lsn(pbox_wal *wal)
{
	return atomic_load_explicit(&wal->reserved_a, memory_order_relaxed);
}

pbox_lsn pbox_wal_durable_lsn(pbox_wal *wal)
{
	return atomic_load_explicit(&wal->durable, memory_order_acquire);
}

/* The background thread: flushes within flush_delay_us when asked to, writes out the ring
 * when it is half full, and prepares the next segment before the log needs it. */
void *pbox__wal_bg_main(void *arg)
{
	pbox_wal *wal = arg;
	pthread_mutex_lock(&wal->mu);
	while (!wal->bg_stop) {
		if (!wal->bg_kick) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t delay_ns = wal->flush_delay_us ? wal->flush_delay_us * 1000ull
								: 100000000ull;
			uint64_t t = (uint64_t)ts.tv_nsec + delay_ns;
			ts.tv_sec += (time_t)(t / 1000000000ull);
			ts.tv_nsec = (long)(t % 1000000000ull);
			pthread_cond_timedwait(&wal->cv_bg, &wal->mu, &ts);
		}
		wal->bg_kick = false;
		if (wal->bg_stop)
			break;
		if (wal->poison)
			continue;
		retire(wal);
		bool pressure = wal->filled - wal->written > wal->buf_size / 4;
		bool due = wal->flush_delay_us && atomic_load_explicit(&wal->durable,
								       memory_order_relaxed) <
								  wal->filled;
		if (!wal->flushing && (pressure || due))
			lead(wal, due, false);
		/* prepare the next segment once the current one is half used, so the leader
		 * rarely has to create one (a zero-filled file) in a commit's path */
		uint64_t in_seg = wal->reserved % wal->seg_size;
		if (in_seg == 0 || in_seg >= wal->seg_size / 2) {
			/* at a boundary exactly, the segment beginning there is the one needed */
			uint64_t next = wal->reserved / wal->seg_size + (in_seg != 0);
			pthread_mutex_unlock(&wal->mu);
			int fd;
			(void)pbox__wal_seg_fd(wal, next, &fd); /* failures resurface in the leader */
			pthread_mutex_lock(&wal->mu);
		}
	}
	pthread_mutex_unlock(&wal->mu);
	return NULL;
}
