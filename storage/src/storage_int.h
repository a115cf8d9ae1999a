/*
 * storage_int.h — private to the storage library: the store object, the frame table, the
 * on-disk formats of the superblock and the meta page, and the redo record layout.
 *
 * ON-DISK FORMAT (little-endian)
 *
 * Every page starts with this header (PBOX_PAGE_HDR = 32 bytes):
 *   OFFSET SIZE MEANING
 *        0    4 CRC32C of bytes [4, page_size): computed at write-back, checked at every read
 *        4    2 page type (PBOX_PAGE_TYPE_*)
 *        6    2 format version of the page (1)
 *        8    8 page id (catches misdirected reads and writes)
 *       16    8 page LSN: end LSN of the last WAL group that changed the page (0: never)
 *       24    8 free-list link (FREE pages) / reserved
 * A page whose bytes are all zero is a valid page that was never written (LSN 0).
 *
 * Superblock, pages 0 and 1, written alternately (generation even -> page 0, odd -> 1),
 * each written whole and synced; the valid copy with the higher generation wins:
 *       32    8 magic "PBOXSUPR"
 *       40    4 store format version (1)
 *       44    4 page size
 *       48    8 generation
 *       56    8 redo start LSN (where recovery starts reading the WAL)
 *       64    8 checkpoints taken
 *       72    8 logical start LSN (where logical records are replayed from; 0: = redo start;
 *                written by checkpoints when an extension's log floor lies before the redo
 *                start; a store written before this field existed holds 0 there)
 *
 * Meta page, page 2, changed only through mini-transactions (logged like any page):
 *       32    8 page count: pages in use, the high-water mark (at least 3)
 *       40    8 free-list head (PBOX_PID_NONE if empty)
 *       48    8 free pages
 *       56   64 user meta slots [8]
 *
 * Redo records (WAL record type = redo type; payload starts with the page id):
 *   REDO_FPI    pid u64, page image (page_size bytes)   full page image after the mtr
 *   REDO_WRITE  pid u64, offset u32, bytes              physical change
 *   REDO_INIT   pid u64, type u16                       page zeroed, header set
 *   >= 256      pid u64, payload                        data structures' handlers
 *   >= 256      PBOX_PID_NONE u64, payload              logical records (no page)
 */
#ifndef PBOX_STORAGE_INT_H
#define PBOX_STORAGE_INT_H

#include <pbox/frame_kernel.h>
#include <pbox/latch.h>
#include <pbox/storage.h>
#include <pbox/swip.h>
#include <pbox/wal.h>

#include <pthread.h>
#include <stdatomic.h>

#define PAGE_FORMAT 1u
#define STORE_FORMAT 1u
#define SUPER_MAGIC 0x52505553584f4250ull /* "PBOXSUPR" */
#define META_PID 2u
#define FIRST_DATA_PID 3u

#define OFF_CRC 0
#define OFF_TYPE 4
#define OFF_FMT 6
#define OFF_PID 8
#define OFF_LSN 16
#define OFF_NEXT 24

#define SB_MAGIC 32
#define SB_FORMAT 40
#define SB_PAGESIZE 44
#define SB_GEN 48
#define SB_REDO 56
#define SB_CKPTS 64
#define SB_LOGICAL 72

#define META_COUNT 32
#define META_FREE_HEAD 40
#define META_FREE_COUNT 48
#define META_SLOTS 56

enum { REDO_FPI = 1, REDO_WRITE = 2, REDO_INIT = 3 };

/* the layout promises of the tables above */
PBOX_STATIC_ASSERT(OFF_NEXT + 8 == PBOX_PAGE_HDR, "the page header is 32 bytes");
PBOX_STATIC_ASSERT(OFF_TYPE == 4 && OFF_PID == 8 && OFF_LSN == 16, "page header offsets");
PBOX_STATIC_ASSERT(OFF_TYPE == PBOX_PAGE_TYPE_OFF, "the published type offset is the real one");
PBOX_STATIC_ASSERT(SB_LOGICAL + 8 <= 4096 && META_SLOTS + 8 * PBOX_META_SLOTS <= 4096,
		   "superblock and meta page fit the smallest page");

static inline uint64_t ld64(const void *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v; /* x86-64: little-endian (static assertion in page.c) */
}
static inline uint32_t ld32(const void *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}
static inline uint16_t ld16(const void *p)
{
	uint16_t v;
	__builtin_memcpy(&v, p, 2);
	return v;
}
static inline void st64(void *p, uint64_t v)
{
	__builtin_memcpy(p, &v, 8);
}
static inline void st32(void *p, uint32_t v)
{
	__builtin_memcpy(p, &v, 4);
}
static inline void st16(void *p, uint16_t v)
{
	__builtin_memcpy(p, &v, 2);
}

/* One entry of the frame table (indexed by page id, in a NORESERVE mapping: entries of
 * pages never touched cost nothing). 32 bytes, two per cache line... see DESIGN.md. */
typedef struct frame {
	pbox_latch latch;           /* protects the page's bytes */
	pbox_swip swip;             /* residency state: changed under latch X only */
	_Atomic uint64_t dirty;     /* 0: clean; else end LSN of the group that dirtied it first:
	                               set under latch X (commit), cleared under latch S or X
	                               (write-back) */
	_Atomic uint32_t res_slot;  /* index in the resident set while resident (res_mu) */
	_Atomic uint32_t fpi_epoch; /* checkpoint epoch of its last full-page image (latch X) */
} frame;
PBOX_STATIC_ASSERT(sizeof(frame) == 32, "a frame is 32 bytes: two per cache line");

/* Metrics in stripes: each thread adds to its own cache line, so counting a hit writes no
 * line another thread reads or writes. */
#define NSTRIPES 64
typedef struct stripe {
	_Atomic uint64_t hits, misses, reads, writes, evictions, reheats, prefetches;
	char pad[PBOX_CACHELINE - 7 * 8];
} stripe;

struct pbox_store {
	struct pbox_store_pub pub; /* first: pbox_page_addr() reads it */

	/* immutable after open */
	pbox_io *io;
	char *dir;
	int data_fd, lock_fd;
	bool direct;
	uint64_t max_pages;
	size_t reserve_bytes;
	frame *frames;
	pbox_wal *wal;
	const pbox_redo_handler *redo;
	unsigned nredo;
	bool recovering; /* only during open */

	/* resident set (clock): res_mu */
	pthread_mutex_t res_mu;
	pbox_pid *res; /* slots [0, res_n): the resident pages, in no particular order */
	uint32_t res_n, hand;
	_Atomic uint64_t resident;
	_Atomic uint64_t budget_pages;
	pthread_mutex_t evict_mu; /* one evictor at a time */
	/* background evictor (optional): bg_mu + bg_cv, bg_stop */
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;
	pthread_t bg;
	bool bg_running, bg_stop;
	/* automatic checkpoints (optional): ac_mu + ac_cv, ac_stop */
	pthread_mutex_t ac_mu;
	pthread_cond_t ac_cv;
	pthread_t ac;
	bool ac_running, ac_stop;
	uint64_t ac_bytes;
	_Atomic uint64_t auto_checkpoints;

	/* allocation: the meta page's latch serialises allocators; file growth under grow_mu */
	_Atomic uint64_t page_count; /* mirror of the meta page's page count */
	pthread_mutex_t grow_mu;
	_Atomic uint64_t file_pages; /* pages the data file holds: written under grow_mu, read
	                                without it (a fault only needs a recent value) */

	/* checkpoints */
	pthread_rwlock_t ckpt_lock; /* commits: shared around append + stamp; checkpoint begin:
	                               exclusive, to move the epoch and take its LSN */
	_Atomic uint32_t ckpt_epoch;
	pthread_mutex_t ckpt_mu; /* one checkpoint at a time; protects the fields below */
	uint64_t sb_gen, checkpoints;
	_Atomic pbox_lsn redo_start;
	_Atomic pbox_lsn logical_start; /* <= redo_start: where logical replay starts */
	/* online backup (backup.c): one at a time (backup_busy, exchanged atomically); while
	 * one runs, checkpoints recycle no segment at or above backup_floor (set under ckpt_mu,
	 * PBOX_LSN_NONE otherwise) */
	atomic_bool backup_busy;
	_Atomic pbox_lsn backup_floor;
	/* log tails (tail.c): the open tails, each with an atomic position that checkpoints
	 * keep the log from (unless it lags too far: then the tail is marked lagged and let
	 * go). tail_mu guards the list; taken inside ckpt_mu, never the other way round. */
	pthread_mutex_t tail_mu;
	struct pbox_tail *tails;
	/* replica mode (replica.c): immutable after open; rep is the replica's state */
	bool replica;
	struct replica *rep;

	/* extensions (pbox_store_ext): created under ext_mu, read lock-free once published */
	pthread_mutex_t ext_mu;
	void *_Atomic ext[PBOX_STORE_EXT_SLOTS];
	const pbox_store_ext_ops *ext_ops[PBOX_STORE_EXT_SLOTS];

	/* rings for batched I/O (io_uring where available), ring_mu */
	pthread_mutex_t ring_mu;
	void *rings[8];
	unsigned nrings;
	bool rings_unavailable;

	_Atomic int poison; /* 0 or the error that poisoned the store */

	/* last recovery */
	uint64_t rec_groups, rec_records, rec_bytes, rec_restored, rec_logical, rec_ns;

	stripe stripes[NSTRIPES];
};

/* ---- page.c ------------------------------------------------------------------------- */
uint32_t pbox__page_crc(const void *page, uint32_t ps);
void pbox__page_seal(void *page, uint32_t ps); /* write the checksum field */
/* 0: valid (or all zero); PBOX_ECORRUPT: checksum or page id wrong. */
int pbox__page_verify(const void *page, uint32_t ps, pbox_pid pid);
void pbox__page_init(void *page, uint32_t ps, pbox_pid pid, uint16_t type);

/* ---- pool.c ------------------------------------------------------------------------- */
static inline frame *pbox__frame(pbox_store *st, pbox_pid pid)
{
	return &st->frames[pid];
}
stripe *pbox__stripe(pbox_store *st);
int pbox__pool_init(pbox_store *st, uint64_t budget_bytes);
void pbox__pool_fini(pbox_store *st);
/* Make pid resident. With allow_torn, a page failing verification is loaded anyway and
 * *torn set (recovery restores it from a full-page image). Caller holds nothing on pid. */
int pbox__pool_fault(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn);
/* Latch pid exclusively and make sure it is resident (mtrs and recovery). */
int pbox__pool_fix_x(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn);
void pbox__pool_unfix_x(pbox_store *st, pbox_pid pid);
/* A newly allocated page: resident and zeroed without reading; caller holds it X. */
int pbox__pool_fix_new(pbox_store *st, pbox_pid pid);
/* Write pages (caller holds them latched, S or X; WAL rule already met) in one batch. */
int pbox__pool_write_pages(pbox_store *st, const pbox_pid *pids, unsigned n);
int pbox__pool_evict(pbox_store *st, uint64_t target_resident);
int pbox__pool_bg_start(pbox_store *st);
void pbox__pool_bg_stop(pbox_store *st);
void pbox__set_poison(pbox_store *st, int err);
static inline int pbox__poisoned(pbox_store *st)
{
	return atomic_load_explicit(&st->poison, memory_order_acquire) ? PBOX_EPOISONED : 0;
}

/* ---- datafile.c --------------------------------------------------------------------- */
/* Grow the data file (16 MiB chunks) to hold need_pages; PBOX_ENOSPC beyond max_pages. */
int pbox__store_grow(pbox_store *st, uint64_t need_pages);
/* Write and sync the next superblock generation with this redo start and logical start
 * (the latter recorded only when it lies before the redo start). */
int pbox__store_write_super(pbox_store *st, pbox_lsn redo_start, pbox_lsn logical_start);
/* Remove every file in dir and sync it (the log directory of a store being created). */
int pbox__store_clear_dir(pbox_io *io, const char *dir);

/* ---- recovery.c --------------------------------------------------------------------- */
/* The valid superblock copy with the higher generation (PBOX_ECORRUPT if none,
 * PBOX_EVERSION if either is of another format version). */
int pbox__store_read_super(pbox_io *io, int fd, uint32_t *ps_out, uint64_t *gen,
			   pbox_lsn *redo, pbox_lsn *logical, uint64_t *ckpts);
/* Redo every group from the redo start (skipping logical records); fills the rec_*
 * statistics. */
int pbox__store_recover(pbox_store *st);
/* After the meta page is read: deliver every logical record from the logical start to its
 * handler, in LSN order, then call every handler's recovered hook. */
int pbox__store_recover_logical(pbox_store *st);
/* The earliest extension log floor (PBOX_LSN_NONE: none); caller holds ckpt_mu. */
pbox_lsn pbox__store_ext_floor(pbox_store *st);
/* Free every extension (close, failed open). */
void pbox__store_ext_destroy(pbox_store *st);
/* Read the allocator's state from the meta page. */
int pbox__store_read_meta(pbox_store *st);
/* Apply one record of the group ending at end. *decision caches, per page and group,
 * whether the group applies to the page (-1: not decided yet). */
int pbox__redo_apply(pbox_store *st, uint16_t type, const unsigned char *payload, uint32_t len,
		     pbox_lsn end, bool *restored, int *decision);

/* ---- backup.c ---------------------------------------------------------------------- */
/* The marker an unfinished backup holds; open refuses a directory with it (PBOX_EPARTIAL). */
#define PBOX_BACKUP_MARKER "BACKUP-INCOMPLETE"

/* Recovery's record rules, without touching a page: 0 if the record could be applied by
 * pbox__redo_apply (type known, lengths right, page id in range), else PBOX_ECORRUPT.
 * *pid = its page id (PBOX_PID_NONE: logical). */
int pbox__redo_check(pbox_store *st, uint16_t type, const unsigned char *payload, uint32_t len,
		     pbox_pid *pid);
/* pbox__redo_apply on a page the caller holds exclusively and resident (replica apply). */
int pbox__redo_apply_held(pbox_store *st, uint16_t type, const unsigned char *payload,
			  uint32_t len, pbox_lsn end, bool torn, bool *restored, int *decision);

/* ---- tail.c ------------------------------------------------------------------------ */
/* The earliest position of the open tails (PBOX_LSN_NONE: none); tails more than their
 * max_lag_bytes behind end are marked lagged and not counted. Caller holds ckpt_mu. */
pbox_lsn pbox__tail_floor(pbox_store *st, pbox_lsn end);

/* ---- replica.c --------------------------------------------------------------------- */
/* After recovery of a replica: rebuild the open-transaction set from the logical start. */
int pbox__replica_init(pbox_store *st, const pbox_store_options *o);
void pbox__replica_fini(pbox_store *st);
/* A checkpoint's redo start on a replica: an epoch start of the primary at or below the
 * applied LSN (caller holds ckpt_lock exclusively). */
pbox_lsn pbox__replica_ckpt_lsn(pbox_store *st);
/* The oldest first record of a transaction not ended (PBOX_LSN_NONE: none). */
pbox_lsn pbox__replica_floor(pbox_store *st);

/* ---- checkpoint.c ------------------------------------------------------------------- */
int pbox__ac_start(pbox_store *st, uint64_t bytes);
void pbox__ac_stop(pbox_store *st);

#endif
