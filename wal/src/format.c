/*
 * format.c — encoding and checking of segment headers, group headers and records (the
 * formats are tabled in wal_int.h). Checks never trust a length before bounding it: these
 * functions run on arbitrary bytes (torn writes, recycled files, corruption, fuzzing).
 * They are predicates (open probes every 8 bytes of a tail for group headers): they return
 * plain PBOX_ECORRUPT, and the callers that act on a verdict record it (PBOX_CORRUPT).
 */
#include "wal_int.h"

#include <string.h>

void pbox__wal_seg_hdr_encode(unsigned char *blk, const seg_hdr *h)
{
	memset(blk, 0, SEG_HDR);
	put32(blk, SEG_MAGIC);
	put32(blk + 4, WAL_VERSION);
	put64(blk + 8, h->log_id);
	put64(blk + 16, h->base);
	put64(blk + 24, h->seg_size);
	put32(blk + 32, pbox_crc32c(0, blk, 32));
}

int pbox__wal_seg_hdr_decode(const unsigned char *blk, seg_hdr *h)
{
	if (get32(blk) != SEG_MAGIC || get32(blk + 32) != pbox_crc32c(0, blk, 32))
		return PBOX_ECORRUPT;
	if (get32(blk + 4) != WAL_VERSION)
		return PBOX_EVERSION;
	h->log_id = get64(blk + 8);
	h->base = get64(blk + 16);
	h->seg_size = get64(blk + 24);
	if (h->seg_size < 16384 || (h->seg_size & (h->seg_size - 1)) || h->base % h->seg_size)
		return PBOX_ECORRUPT;
	return 0;
}

void pbox__wal_group_hdr_encode(unsigned char *p, uint64_t lsn, uint64_t sync_lsn,
				uint32_t total, uint32_t nrec, uint32_t flags)
{
	put32(p, GROUP_MAGIC);
	put32(p + 4, 0);
	put64(p + 8, lsn);
	put64(p + 16, sync_lsn);
	put32(p + 24, total);
	put32(p + 28, nrec);
	put32(p + 32, flags);
	put32(p + 36, 0);
	put32(p + 4, pbox_crc32c(0, p, GROUP_HDR));
}

void pbox__wal_rec_hdr_encode(unsigned char *p, uint64_t lsn, uint16_t type, const void *data,
			      uint32_t len)
{
	put32(p, len);
	put16(p + 4, type);
	put16(p + 6, 0);
	put64(p + 8, lsn);
	put32(p + 16, 0);
	put32(p + 20, 0);
	uint32_t c = pbox_crc32c(0, p, REC_HDR);
	put32(p + 16, len ? pbox_crc32c(c, data, len) : c);
}

int pbox__wal_group_hdr_check(const unsigned char *p, uint64_t pos, uint64_t seg_size,
			      uint64_t max_total, group_view *g)
{
	if (get32(p) != GROUP_MAGIC)
		return PBOX_ECORRUPT;
	unsigned char tmp[GROUP_HDR];
	memcpy(tmp, p, GROUP_HDR);
	put32(tmp + 4, 0);
	if (pbox_crc32c(0, tmp, GROUP_HDR) != get32(p + 4))
		return PBOX_ECORRUPT;
	g->lsn = get64(p + 8);
	g->sync_lsn = get64(p + 16);
	g->total = get32(p + 24);
	g->nrec = get32(p + 28);
	g->flags = get32(p + 32);
	if (g->lsn != pos || g->total < GROUP_HDR || g->total % 8 || g->total > max_total)
		return PBOX_ECORRUPT;
	uint64_t off = pos % seg_size;
	if (off < SEG_HDR || off + g->total > seg_size)
		return PBOX_ECORRUPT;
	if (g->flags & ~GF_SKIP)
		return PBOX_ECORRUPT;
	if ((g->flags & GF_SKIP) && (g->nrec != 0 || g->total != GROUP_HDR))
		return PBOX_ECORRUPT;
	if (!(g->flags & GF_SKIP) && g->nrec == 0)
		return PBOX_ECORRUPT;
	return 0;
}

int pbox__wal_group_body_check(const unsigned char *p, const group_view *g)
{
	uint64_t off = GROUP_HDR;
	for (uint32_t i = 0; i < g->nrec; i++) {
		if (g->total - off < REC_HDR)
			return PBOX_ECORRUPT;
		const unsigned char *r = p + off;
		uint32_t len = get32(r);
		if (get16(r + 4) == 0 || get64(r + 8) != g->lsn + off)
			return PBOX_ECORRUPT;
		if (len > g->total - off - REC_HDR)
			return PBOX_ECORRUPT;
		unsigned char tmp[REC_HDR];
		memcpy(tmp, r, REC_HDR);
		put32(tmp + 16, 0);
		uint32_t c = pbox_crc32c(0, tmp, REC_HDR);
		if (len)
			c = pbox_crc32c(c, r + REC_HDR, len);
		if (c != get32(r + 16))
			return PBOX_ECORRUPT;
		off += REC_HDR + align8(len);
	}
	return off == g->total ? 0 : PBOX_ECORRUPT;
}

uint64_t pbox__wal_normalize(uint64_t pos, uint64_t seg_size)
{
	uint64_t off = pos % seg_size;
	if (off < SEG_HDR)
		return pos - off + SEG_HDR;
	if (seg_size - off < GROUP_HDR)
		return pos - off + seg_size + SEG_HDR;
	return pos;
}
