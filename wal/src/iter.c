/*
 * iter.c — reading the log back: a streaming reader that validates one group at a time
 * through a window of bounded size (max(1 MiB, the largest group)), and the public replay
 * iterator built on it. Readers open segment files by path, read-only, so they never share
 * descriptors with the writer.
 */
#define _GNU_SOURCE
#include "wal_int.h"

#include <errno.h>
#include <fcntl.h>

int pbox__wal_reader_init(wal_reader *rd, pbox_wal *wal, uint64_t from, uint64_t limit,
			  uint64_t last_k)
{
	*rd = (wal_reader){ .wal = wal, .pos = from, .limit = limit, .last_k = last_k, .fd = -1 };
	size_t cap = 1u << 20;
	if (wal->max_group + GROUP_HDR > cap)
		cap = (size_t)(wal->max_group + GROUP_HDR);
	rd->win = pbox_malloc(cap);
	if (!rd->win)
		return -ENOMEM;
	rd->win_cap = cap;
	return 0;
}

void pbox__wal_reader_fini(wal_reader *rd)
{
	if (rd->fd >= 0)
		rd->wal->io->close(rd->wal->io, rd->fd);
	pbox_free(rd->win);
	rd->win = NULL;
	rd->fd = -1;
}

int pbox__wal_reader_pread(wal_reader *rd, uint64_t k, void *buf, size_t len, uint64_t off)
{
	pbox_io *io = rd->wal->io;
	if (rd->fd < 0 || rd->fd_k != k) {
		char path[4096];
		int r = pbox__wal_seg_path(rd->wal, k, path, sizeof(path));
		if (r)
			return r;
		if (rd->fd >= 0)
			io->close(io, rd->fd);
		rd->fd = io->open(io, path, O_RDONLY, 0);
		if (rd->fd < 0) {
			int e = rd->fd;
			rd->fd = -1;
			return e == -ENOENT ? PBOX_ECORRUPT : e;
		}
		rd->fd_k = k;
	}
	return pbox_io_pread_full(io, rd->fd, buf, len, off);
}

/* Make the window hold [lsn, lsn + need) (all inside one segment). */
static int window(wal_reader *rd, uint64_t lsn, size_t need)
{
	if (lsn >= rd->win_lsn && lsn + need <= rd->win_lsn + rd->win_len)
		return 0;
	const uint64_t S = rd->wal->seg_size;
	uint64_t k = lsn / S, off = lsn % S;
	size_t len = rd->win_cap;
	if (S - off < len)
		len = (size_t)(S - off);
	if (len < need)
		return PBOX_CORRUPT();
	rd->win_len = 0;
	int r = pbox__wal_reader_pread(rd, k, rd->win, len, off);
	if (r)
		return r;
	rd->win_lsn = lsn;
	rd->win_len = len;
	return 0;
}

int pbox__wal_reader_next(wal_reader *rd)
{
	pbox_wal *wal = rd->wal;
	const uint64_t S = wal->seg_size;
	for (;;) {
		/* pos stays where the last group ended; at stops, bad is where reading stopped */
		uint64_t p = pbox__wal_normalize(rd->pos, S);
		rd->bad = p;
		if (p >= rd->limit || p / S > rd->last_k)
			return RD_END;
		int r = window(rd, p, GROUP_HDR);
		if (r)
			return r;
		const unsigned char *gp = rd->win + (p - rd->win_lsn);
		if (pbox__wal_group_hdr_check(gp, p, S, wal->max_group + GROUP_HDR, &rd->g))
			return RD_INVALID;
		if (rd->g.flags & GF_SKIP) {
			rd->pos = p - p % S + S;
			continue;
		}
		if ((r = window(rd, p, rd->g.total)))
			return r;
		gp = rd->win + (p - rd->win_lsn);
		if (pbox__wal_group_body_check(gp, &rd->g))
			return RD_INVALID;
		if (p + rd->g.total > rd->limit)
			return RD_END; /* ends beyond what the caller may see */
		rd->gp = gp;
		rd->rec_off = GROUP_HDR;
		rd->rec_i = 0;
		rd->pos = p + rd->g.total;
		return RD_GROUP;
	}
}

/* ---- the public iterator ------------------------------------------------------------------ */

struct pbox_wal_iter {
	wal_reader rd;
	bool have_group;
};

int pbox_wal_iter_open(pbox_wal *wal, pbox_lsn from, pbox_wal_iter **out)
{
	if (!wal || !out)
		return PBOX_EINVAL;
	pthread_mutex_lock(&wal->seg_mu);
	uint64_t start = wal->start_lsn;
	uint64_t last_k = wal->nsegs ? wal->segs[0].k + wal->nsegs - 1 : 0;
	pthread_mutex_unlock(&wal->seg_mu);
	if (from == 0)
		from = start;
	uint64_t limit = atomic_load_explicit(&wal->durable, memory_order_acquire);
	if (from < start || from > limit)
		return PBOX_EINVAL;
	pbox_wal_iter *it = pbox_calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	int r = pbox__wal_reader_init(&it->rd, wal, from, limit, last_k);
	if (r) {
		pbox_free(it);
		return r;
	}
	*out = it;
	return 0;
}

int pbox_wal_iter_next(pbox_wal_iter *it, pbox_wal_group *g)
{
	int r = pbox__wal_reader_next(&it->rd);
	it->have_group = r == RD_GROUP;
	if (r == RD_INVALID)
		return PBOX_CORRUPT(); /* open validated this range: it changed under us */
	if (r != RD_GROUP)
		return r; /* RD_END (0) or an error */
	g->lsn = it->rd.g.lsn;
	g->end_lsn = it->rd.g.lsn + it->rd.g.total;
	g->nrec = it->rd.g.nrec;
	return 1;
}

int pbox_wal_iter_record(pbox_wal_iter *it, pbox_wal_record *rec)
{
	wal_reader *rd = &it->rd;
	if (!it->have_group || rd->rec_i >= rd->g.nrec)
		return 0;
	const unsigned char *p = rd->gp + rd->rec_off;
	rec->len = get32(p);
	rec->type = get16(p + 4);
	rec->lsn = get64(p + 8);
	rec->data = p + REC_HDR;
	rd->rec_off += REC_HDR + (uint32_t)align8(rec->len);
	rd->rec_i++;
	return 1;
}

void pbox_wal_iter_close(pbox_wal_iter *it)
{
	if (!it)
		return;
	pbox__wal_reader_fini(&it->rd);
	pbox_free(it);
}
