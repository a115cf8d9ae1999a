/*
 * wal_int.h — private to the wal library: on-disk formats, the log object, and the helpers
 * shared by its source files.
 *
 * ON-DISK FORMAT (all integers little-endian)
 *
 * Segment file "wal-<first LSN, 16 hex digits>.seg", S bytes (S a power of two). Segment k
 * holds LSNs [k*S, (k+1)*S); file offset = LSN - k*S. Bytes [0, 4096) are the header block:
 *
 *   OFFSET SIZE MEANING
 *        0    4 magic "PBWS" (0x53574250)
 *        4    4 format version (1)
 *        8    8 log id: random, chosen at creation, the same in every segment of a log
 *       16    8 base LSN = k * S (must match the file name)
 *       24    8 segment size S
 *       32    4 CRC32C of bytes [0, 32)
 *       36 4060 zero
 *
 * From offset 4096 on: groups, each starting at an 8-byte aligned LSN, back to back.
 * Group header (40 bytes):
 *
 *   OFFSET SIZE MEANING
 *        0    4 magic "PBWG" (0x47574250)
 *        4    4 CRC32C of the 40 header bytes with this field zero
 *        8    8 LSN of this header (a copy elsewhere — a recycled file — never matches)
 *       16    8 sync LSN: everything below it was on disk when this group was appended
 *       24    4 total length: header + records, a multiple of 8
 *       28    4 number of records (0 for a skip marker)
 *       32    4 flags: 1 = skip marker (the rest of this segment is unused)
 *       36    4 zero
 *
 * Record (24-byte header, then the payload, then zero padding to a multiple of 8):
 *
 *   OFFSET SIZE MEANING
 *        0    4 payload length
 *        4    2 type (never 0)
 *        6    2 zero
 *        8    8 LSN of this record header
 *       16    4 CRC32C of the 24 header bytes with this field zero, then the payload
 *       20    4 zero
 *
 * A group is valid when its header and every record check out and the records fill exactly
 * its total length. Replay takes groups while they are valid; the first invalid position p
 * is the end of the log, unless a valid group with the right LSN exists after p whose sync
 * LSN is above p: then p had been made durable before that later group was appended, so the
 * damage at p is not a torn tail but corruption (PBOX_ECORRUPT). Leftover valid groups after
 * a torn tail (parts of the last, unsynced write) are zeroed at open, so later appends can
 * never be followed by them.
 *
 * A group never crosses a segment boundary: an append that does not fit in the rest of a
 * segment writes a skip marker (when 40 bytes remain) and starts at the next segment's
 * first group position.
 */
#ifndef PBOX_WAL_INT_H
#define PBOX_WAL_INT_H

#include <pbox/frame_kernel.h>
#include <pbox/wal.h>

#include <pthread.h>
#include <stdatomic.h>

#define SEG_MAGIC 0x53574250u
#define GROUP_MAGIC 0x47574250u
#define WAL_VERSION 1u
#define SEG_HDR 4096u
#define GROUP_HDR 40u
#define REC_HDR 24u
#define GF_SKIP 1u
#define NSLOTS 4096u /* in-flight reservations */

static inline uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

static inline void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}
static inline uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
static inline uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- format.c ------------------------------------------------------------------------ */

typedef struct seg_hdr {
	uint64_t log_id, base, seg_size;
} seg_hdr;

void pbox__wal_seg_hdr_encode(unsigned char *blk, const seg_hdr *h);
int pbox__wal_seg_hdr_decode(const unsigned char *blk, seg_hdr *h); /* 0 or PBOX_ECORRUPT */

void pbox__wal_group_hdr_encode(unsigned char *p, uint64_t lsn, uint64_t sync_lsn,
				uint32_t total, uint32_t nrec, uint32_t flags);
/* Encode a record header for payload (len bytes) at lsn. */
void pbox__wal_rec_hdr_encode(unsigned char *p, uint64_t lsn, uint16_t type, const void *data,
			      uint32_t len);

typedef struct group_view {
	uint64_t lsn, sync_lsn;
	uint32_t total, nrec, flags;
} group_view;

/* Check a group header at LSN pos: 0 and *g, or PBOX_ECORRUPT. Needs GROUP_HDR bytes. */
int pbox__wal_group_hdr_check(const unsigned char *p, uint64_t pos, uint64_t seg_size,
			      uint64_t max_total, group_view *g);
/* Check the records of a group whose header passed (p points at the header, g->total bytes
 * available): 0 or PBOX_ECORRUPT. */
int pbox__wal_group_body_check(const unsigned char *p, const group_view *g);

/* Where the next group at or after pos may start: skips a segment's header block and a
 * segment tail too short for a group header. */
uint64_t pbox__wal_normalize(uint64_t pos, uint64_t seg_size);

/* ---- the log object -------------------------------------------------------------------- */

typedef struct wal_slot {
	uint64_t end;        /* written under mu when reserved */
	_Atomic uint32_t done; /* set (release) by the appender when its copy is complete */
} wal_slot;

typedef struct wal_seg {
	uint64_t k; /* segment number: base LSN / S */
	int fd;
} wal_seg;

typedef struct wal_spare {
	char *path;
} wal_spare;

typedef struct wal_metrics {
	_Atomic uint64_t appends, append_bytes, writes, syncs, sync_ns, wait_ns;
	pbox_hist groups_per_sync, sync_us;
} wal_metrics;

struct pbox_wal {
	/* immutable after open */
	pbox_io *io;
	char *dir;
	uint64_t seg_size, buf_size, max_group, log_id;
	pbox_wal_sync sync;
	uint32_t flush_delay_us;
	unsigned max_spares;
	unsigned char *buf; /* ring: LSN x lives at buf[x % buf_size] */
	pbox_lsn start_lsn;

	/* mu protects everything down to 'groups_flushed' */
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* broadcast when written/durable advance or the log is poisoned */
	pthread_cond_t cv_bg; /* wakes the background thread */
	uint64_t reserved;    /* next LSN to hand out */
	uint64_t filled;      /* every reservation below it has been copied */
	uint64_t written;     /* handed to the OS (pwrite) */
	uint64_t synced;      /* on disk */
	uint64_t slot_head, slot_tail; /* reservations [head, tail) not yet retired */
	bool flushing;        /* a thread is writing/syncing (the leader) */
	bool bg_stop, bg_kick;
	int poison;           /* 0 or the error that poisoned the log */
	uint64_t groups_filled, groups_synced;
	uint64_t round_seq;      /* slot sequence where the last leader's round began */
	uint64_t nwaiting;       /* threads inside wait_durable/flush */
	uint64_t gather_target;  /* nwaiting when the last round ended: the next round's goal */
	_Atomic uint64_t sync_ns_ema; /* moving average of a sync's duration (a hint) */
	wal_slot slots[NSLOTS];

	_Atomic uint64_t durable;   /* what wait_durable guarantees; readable without mu */
	_Atomic int poisoned;       /* mirror of poison for lock-free checks */
	_Atomic uint64_t reserved_a; /* mirror of reserved for lock-free reads */

	/* seg_mu protects the segment table and spares; never held together with mu */
	pthread_mutex_t seg_mu;
	wal_seg *segs; /* contiguous segment numbers segs[0].k .. segs[nsegs-1].k */
	size_t nsegs, segs_cap;
	wal_spare *spares;
	size_t nspares;
	void *ring; /* io_uring context of the leader (SYNC_IO_URING) */

	pthread_t bg;
	bool bg_running;

	/* what open found */
	uint64_t open_groups, open_bytes, open_erased, open_ns;
	wal_metrics m;
};

/* ---- segments.c ---------------------------------------------------------------------- */
int pbox__wal_seg_path(const pbox_wal *wal, uint64_t k, char *buf, size_t cap);
/* fd of segment k, creating (from a spare or zero-filled) it and any missing one before it
 * after the last segment. Takes seg_mu. */
int pbox__wal_seg_fd(pbox_wal *wal, uint64_t k, int *fd);
/* Open flags for segment files under this log's sync mode. */
int pbox__wal_seg_flags(const pbox_wal *wal);

/* ---- commit.c ------------------------------------------------------------------------ */
void *pbox__wal_bg_main(void *arg);

#endif

/* ---- iter.c: a streaming reader of groups, shared by open's scan and by iterators ---- */
typedef struct wal_reader {
	pbox_wal *wal;
	uint64_t pos;    /* LSN just past the last group read (or the start) */
	uint64_t bad;    /* after RD_END/RD_INVALID: the position where reading stopped */
	uint64_t limit;  /* stop before this LSN (UINT64_MAX: until the first invalid group) */
	uint64_t last_k; /* highest segment number that exists */
	unsigned char *win;
	size_t win_cap, win_len;
	uint64_t win_lsn; /* the window holds [win_lsn, win_lsn + win_len) of one segment */
	int fd;
	uint64_t fd_k;
	group_view g;      /* the current group */
	const unsigned char *gp; /* its bytes (inside win) */
	uint32_t rec_off;  /* next record inside it */
	uint32_t rec_i;
} wal_reader;

enum { RD_END = 0, RD_GROUP = 1, RD_INVALID = 2 };

int pbox__wal_reader_init(wal_reader *rd, pbox_wal *wal, uint64_t from, uint64_t limit,
			  uint64_t last_k);
/* RD_GROUP (rd->g, rd->gp set; pos advanced), RD_END, RD_INVALID (rd->bad is where the
 * invalid bytes start), or a negative error. */
int pbox__wal_reader_next(wal_reader *rd);
/* Read [off, off+len) of segment k into buf: 0, or an error. */
int pbox__wal_reader_pread(wal_reader *rd, uint64_t k, void *buf, size_t len, uint64_t off);
void pbox__wal_reader_fini(wal_reader *rd);
