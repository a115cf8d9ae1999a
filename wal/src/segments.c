/*
 * segments.c — segment files: naming, creation (zero-filled, or reusing a recycled spare),
 * and recycling.
 *
 * A new segment is made durable before any group is written into it:
 *   fresh:  write header + zeros to "wal-<lsn>.seg.tmp", fdatasync, rename to its name,
 *           fsync the directory;
 *   spare:  overwrite the header block of a recycled file, fdatasync, rename, fsync dir.
 * A recycled file keeps its old groups; their LSN fields name the old position, so they
 * never validate at the new one.
 *
 * Locking: seg_mu protects segs[] and spares[]; it is never held together with mu. Segment
 * creation happens under seg_mu, so the leader and the background thread never create the
 * same segment twice.
 */
#define _GNU_SOURCE
#include "wal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int pbox__wal_seg_path(const pbox_wal *wal, uint64_t k, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/wal-%016" PRIx64 ".seg", wal->dir, k * wal->seg_size);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int pbox__wal_seg_flags(const pbox_wal *wal)
{
	return O_RDWR | (wal->sync == PBOX_WAL_SYNC_DSYNC ? O_DSYNC : 0);
}

/* Make segment k durable on disk and return an open descriptor. Called with seg_mu. */
static int create_segment(pbox_wal *wal, uint64_t k, int *out_fd)
{
	pbox_io *io = wal->io;
	char path[4096], tmp[4200];
	int r = pbox__wal_seg_path(wal, k, path, sizeof(path));
	if (r)
		return r;
	unsigned char *blk = pbox_aligned_alloc(4096, SEG_HDR);
	if (!blk)
		return -ENOMEM;
	seg_hdr h = { .log_id = wal->log_id, .base = k * wal->seg_size, .seg_size = wal->seg_size };
	pbox__wal_seg_hdr_encode(blk, &h);
	int fd = -1;
	const char *from;
	if (wal->nspares > 0) {
		from = wal->spares[wal->nspares - 1].path;
		fd = io->open(io, from, O_RDWR, 0);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		if ((r = pbox_io_pwrite_full(io, fd, blk, SEG_HDR, 0)))
			goto out;
	} else {
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		from = tmp;
		fd = io->open(io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		if ((r = io->fallocate(io, fd, 0, wal->seg_size)) ||
		    (r = pbox_io_pwrite_full(io, fd, blk, SEG_HDR, 0)))
			goto out;
		/* Real zeros: writing into unwritten extents would make every later
		 * fdatasync also commit extent conversions. */
		size_t zlen = 1u << 20;
		unsigned char *z = pbox_calloc(1, zlen);
		if (!z) {
			r = -ENOMEM;
			goto out;
		}
		for (uint64_t off = SEG_HDR; off < wal->seg_size && !r; off += zlen) {
			uint64_t n = wal->seg_size - off < zlen ? wal->seg_size - off : zlen;
			r = pbox_io_pwrite_full(io, fd, z, n, off);
		}
		pbox_free(z);
		if (r)
			goto out;
	}
	if ((r = io->fdatasync(io, fd)) || (r = io->rename(io, from, path)) ||
	    (r = io->fsync_dir(io, wal->dir)))
		goto out;
	if (wal->nspares > 0 && from == wal->spares[wal->nspares - 1].path) {
		pbox_free(wal->spares[wal->nspares - 1].path);
		wal->nspares--;
	}
	if (wal->sync == PBOX_WAL_SYNC_DSYNC) { /* reopen with O_DSYNC */
		int fd2 = io->open(io, path, pbox__wal_seg_flags(wal), 0);
		if (fd2 < 0) {
			r = fd2;
			goto out;
		}
		io->close(io, fd);
		fd = fd2;
	}
	*out_fd = fd;
	fd = -1;
out:
	if (fd >= 0)
		io->close(io, fd);
	pbox_free(blk);
	return r;
}

int pbox__wal_seg_fd(pbox_wal *wal, uint64_t k, int *fd)
{
	int r = 0;
	pthread_mutex_lock(&wal->seg_mu);
	if (wal->nsegs && k >= wal->segs[0].k && k < wal->segs[0].k + wal->nsegs) {
		*fd = wal->segs[k - wal->segs[0].k].fd;
		goto out;
	}
	if (wal->nsegs == 0) { /* a new log: its first segment */
		int nfd;
		if ((r = create_segment(wal, k, &nfd)))
			goto out;
		wal->segs[0] = (wal_seg){ .k = k, .fd = nfd };
		wal->nsegs = 1;
	}
	if (k < wal->segs[0].k) {
		r = PBOX_EINVAL; /* asked for a recycled segment: a bug in the caller */
		goto out;
	}
	while (wal->segs[0].k + wal->nsegs <= k) {
		uint64_t next = wal->segs[0].k + wal->nsegs;
		if (wal->nsegs == wal->segs_cap) {
			size_t nc = wal->segs_cap * 2;
			wal_seg *v = pbox_realloc(wal->segs, nc * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				goto out;
			}
			wal->segs = v;
			wal->segs_cap = nc;
		}
		int nfd;
		if ((r = create_segment(wal, next, &nfd)))
			goto out;
		wal->segs[wal->nsegs].k = next;
		wal->segs[wal->nsegs].fd = nfd;
		wal->nsegs++;
	}
	*fd = wal->segs[k - wal->segs[0].k].fd;
out:
	pthread_mutex_unlock(&wal->seg_mu);
	return r;
}

int pbox_wal_prepare(pbox_wal *wal, pbox_lsn lsn)
{
	if (atomic_load_explicit(&wal->poisoned, memory_order_acquire))
		return PBOX_EPOISONED;
	if (lsn > atomic_load_explicit(&wal->reserved_a, memory_order_relaxed))
		return PBOX_EINVAL; /* past the end: no reopen can start there */
	int fd; /* an already recycled segment is PBOX_EINVAL there */
	return pbox__wal_seg_fd(wal, lsn / wal->seg_size, &fd);
}

int pbox_wal_recycle(pbox_wal *wal, pbox_lsn lsn)
{
	uint64_t durable = atomic_load_explicit(&wal->durable, memory_order_acquire);
	if (lsn > durable)
		lsn = durable;
	if (atomic_load_explicit(&wal->poisoned, memory_order_acquire))
		return PBOX_EPOISONED;
	/* a reopen from lsn needs the segment holding it: when lsn is exactly where a segment
	 * begins, that segment may not exist yet (nothing was written into it) */
	int r = pbox_wal_prepare(wal, lsn);
	if (r)
		return r;
	pbox_io *io = wal->io;
	bool changed = false;
	pthread_mutex_lock(&wal->seg_mu);
	/* keep the segment holding lsn (and always the last one) */
	while (wal->nsegs > 1 && (wal->segs[0].k + 1) * wal->seg_size <= lsn) {
		char path[4096];
		uint64_t k = wal->segs[0].k;
		if ((r = pbox__wal_seg_path(wal, k, path, sizeof(path))))
			break;
		io->close(io, wal->segs[0].fd);
		memmove(wal->segs, wal->segs + 1, (wal->nsegs - 1) * sizeof(*wal->segs));
		wal->nsegs--;
		changed = true;
		if (wal->nspares < wal->max_spares) {
			char spare[4200];
			snprintf(spare, sizeof(spare), "%s/spare-%016" PRIx64 ".seg", wal->dir, k);
			char *p = pbox_strdup(spare);
			wal_spare *v = p ? pbox_realloc(wal->spares, (wal->nspares + 1) * sizeof(*v))
					 : NULL;
			if (!v) {
				pbox_free(p);
				r = io->unlink(io, path);
				if (r)
					break;
				continue;
			}
			wal->spares = v;
			if ((r = io->rename(io, path, spare))) {
				pbox_free(p);
				break;
			}
			wal->spares[wal->nspares++].path = p;
		} else if ((r = io->unlink(io, path))) {
			break;
		}
	}
	if (changed) {
		int r2 = io->fsync_dir(io, wal->dir);
		if (!r)
			r = r2;
	}
	if (!r && lsn > wal->start_lsn)
		wal->start_lsn = lsn;
	pthread_mutex_unlock(&wal->seg_mu);
	return r;
}
