/*
 * pbox/wal.h — the group-commit write-ahead log.
 *
 * A log is a directory of fixed-size segment files. An LSN is a byte offset in the log:
 * segment k covers LSNs [k * S, (k + 1) * S) for segment size S, and its first 4 KiB hold the
 * segment header, so no record ever has LSN 0. Callers append groups of records; a group is
 * the unit of atomicity: replay yields it whole or not at all. The log is a contiguous prefix
 * by construction: "durable up to L" means every group ending at or before L is on disk.
 *
 * Typical use (a storage engine's mini-transaction):
 *
 *     pbox_wal_rec recs[2] = { { .type = 7, .data = a, .len = na }, { 8, b, nb } };
 *     pbox_lsn end;
 *     int rc = pbox_wal_append(wal, recs, 2, &end);      // copies; returns at once
 *     if (rc == 0 && durable)
 *             rc = pbox_wal_wait_durable(wal, end);      // group commit
 *
 * Threads: every function may be called from any number of threads at once, except open
 * and close. Appends never block on I/O unless the in-memory log buffer is full.
 *
 * Errors: 0 on success, a negative errno from the OS, or a PBOX_E* code. After a write or
 * sync fails the log is poisoned: that call returns the OS error, every later append, wait
 * and flush returns PBOX_EPOISONED until the log is closed and reopened.
 */
#ifndef PBOX_WAL_H
#define PBOX_WAL_H

#include <pbox/io.h>
#include <pbox/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_wal pbox_wal;

/* How commits are made durable. */
typedef enum pbox_wal_sync {
	PBOX_WAL_SYNC_FDATASYNC = 0, /* write, then fdatasync (default) */
	PBOX_WAL_SYNC_FSYNC,         /* write, then fsync */
	PBOX_WAL_SYNC_DSYNC,         /* segments opened O_DSYNC: each write is synchronous */
	PBOX_WAL_SYNC_IO_URING,      /* write + fdatasync submitted together, linked */
	PBOX_WAL_SYNC_NONE,          /* UNSAFE: volatile. wait_durable only hands data to the
	                                OS; data is on disk only after pbox_wal_flush() or
	                                close. A power cut loses recent commits. Tests and
	                                benchmarks only. */
} pbox_wal_sync;

/* "fdatasync", "fsync", "dsync", "io_uring", "none". */
const char *pbox_wal_sync_name(pbox_wal_sync s);
int pbox_wal_sync_parse(const char *name, pbox_wal_sync *out); /* PBOX_EINVAL if unknown */

typedef struct pbox_wal_options {
	pbox_io *io;              /* file-I/O seam; NULL = pbox_io_posix() */
	uint64_t segment_size;    /* bytes, power of two, 16 KiB .. 1 GiB; default 64 MiB.
	                             Fixed at creation; reopening uses the log's own size. */
	uint64_t buffer_size;     /* in-memory log buffer, power of two >= 64 KiB, >= 4x the
	                             largest group; default 8 MiB */
	pbox_wal_sync sync;       /* default PBOX_WAL_SYNC_FDATASYNC */
	uint32_t flush_delay_us;  /* > 0: a background thread makes every appended group
	                             durable within about this delay, with nobody waiting
	                             ("fast" durability). 0: only waits and flushes write. */
	pbox_lsn start_lsn;       /* oldest LSN the caller still needs (a group boundary, e.g.
	                             a checkpoint's redo start); 0 = the oldest segment. Open
	                             validates the log from here to its end. */
	unsigned max_spares;      /* recycled segments kept for reuse; default 2 */
	bool create;              /* create an empty log if the directory has none */
} pbox_wal_options;

void pbox_wal_options_init(pbox_wal_options *o);

/* Largest group payload (sum of record lengths plus headers) accepted by append for a log
 * with these sizes: min(segment_size - 4 KiB, buffer_size / 4) minus the group header. */
uint64_t pbox_wal_max_group_bytes(uint64_t segment_size, uint64_t buffer_size);

/* Open (or with o->create, create) the log in directory dir (which must exist). Opening
 * validates every group from o->start_lsn to the end of the log: a torn or partial last
 * write ends the log cleanly (and is erased so that later appends cannot be confused with
 * it); a damaged group followed by groups that were written after it had been made durable
 * is PBOX_ECORRUPT and the open fails. Everything valid is made durable before return.
 * Errors: PBOX_ENOTFOUND (no log and !create), PBOX_ECORRUPT, PBOX_EVERSION, PBOX_EINVAL
 * (bad options), -errno. */
int pbox_wal_open(const char *dir, const pbox_wal_options *o, pbox_wal **out);

/* Make everything appended durable (fdatasync even for SYNC_NONE), stop the background
 * thread, close the files, free the log. Returns the first error met (the log is freed
 * regardless); PBOX_EPOISONED if it was poisoned. */
int pbox_wal_close(pbox_wal *wal);

/* One record of a group. type 0 is reserved. data may be NULL when len is 0. */
typedef struct pbox_wal_rec {
	uint16_t type;
	const void *data;
	uint32_t len;
} pbox_wal_rec;

/* Append one group of n >= 1 records atomically; *end_lsn (if non-NULL) receives the LSN
 * just past the group (use it for wait_durable and to stamp pages). The records are copied;
 * the caller's buffers may be reused at once. The group is durable only after a wait or
 * flush covers end_lsn (or the background flush gets to it).
 * Errors: PBOX_EINVAL (n == 0, type 0), PBOX_ELIMIT (group larger than
 * pbox_wal_max_group_bytes), PBOX_EPOISONED, -errno from a write made to free buffer
 * space. */
PBOX_NODISCARD int pbox_wal_append(pbox_wal *wal, const pbox_wal_rec *recs, unsigned n, pbox_lsn *end_lsn);

/* Block until every group ending at or before lsn is durable (one write + one sync serves
 * every waiting thread). lsn beyond the appended end is PBOX_EINVAL. */
PBOX_NODISCARD int pbox_wal_wait_durable(pbox_wal *wal, pbox_lsn lsn);

/* Make everything appended so far durable; with SYNC_NONE this really syncs. */
PBOX_NODISCARD int pbox_wal_flush(pbox_wal *wal);

pbox_lsn pbox_wal_end_lsn(pbox_wal *wal);     /* just past the last appended group */
pbox_lsn pbox_wal_durable_lsn(pbox_wal *wal); /* what wait_durable has guaranteed */

/* Make the segment holding lsn exist, durably (file, zeros and directory entry), so that
 * the log can be reopened with start_lsn = lsn. A caller that records lsn as a redo start
 * (a checkpoint's superblock) calls this first: at the end of the log lsn may lie exactly
 * where a segment begins that nothing was written into yet. PBOX_EINVAL for an lsn past the
 * end or already recycled. */
int pbox_wal_prepare(pbox_wal *wal, pbox_lsn lsn);

/* Segments that end at or before lsn are no longer needed (a checkpoint's redo start moved
 * past them): up to max_spares of them are kept for reuse under spare names, the rest are
 * deleted. The directory is fsynced. lsn beyond the durable LSN is clamped to it. The
 * segment holding lsn is prepared first (pbox_wal_prepare), so a reopen from lsn works. */
int pbox_wal_recycle(pbox_wal *wal, pbox_lsn lsn);

/* ---- replay ------------------------------------------------------------------------------ */

typedef struct pbox_wal_iter pbox_wal_iter;

typedef struct pbox_wal_group {
	pbox_lsn lsn;     /* where the group starts */
	pbox_lsn end_lsn; /* just past it: the LSN append returned for it */
	uint32_t nrec;
} pbox_wal_group;

typedef struct pbox_wal_record {
	pbox_lsn lsn;     /* where the record's header starts */
	uint16_t type;
	uint32_t len;
	const void *data; /* valid until the next pbox_wal_iter_next() or close */
} pbox_wal_record;

/* Iterate the groups that start at or after from (a group boundary; 0 = the start the log
 * was opened with) up to the durable end at the time of this call. Memory is bounded by the
 * largest group. Errors: PBOX_EINVAL (from outside the retained log). */
int pbox_wal_iter_open(pbox_wal *wal, pbox_lsn from, pbox_wal_iter **out);
/* 1 and the next group, 0 at the end, or an error (PBOX_ECORRUPT, -errno). */
int pbox_wal_iter_next(pbox_wal_iter *it, pbox_wal_group *g);
/* 1 and the current group's next record, 0 when the group has no more. */
int pbox_wal_iter_record(pbox_wal_iter *it, pbox_wal_record *r);
void pbox_wal_iter_close(pbox_wal_iter *it);

/* ---- introspection ----------------------------------------------------------------------- */

typedef struct pbox_wal_info {
	uint64_t segment_size, buffer_size;
	pbox_wal_sync sync;
	pbox_lsn start_lsn, end_lsn, durable_lsn;
	uint32_t segments;     /* segment files in use */
	uint32_t spares;       /* recycled segment files kept */
	int poisoned;          /* 0, or the error that poisoned the log */
	/* what open found */
	uint64_t open_groups, open_bytes;  /* groups and bytes validated */
	uint64_t open_erased_bytes;        /* torn-tail bytes erased */
	uint64_t open_ns;                  /* time open took */
	/* metrics (zero when built with PBOX_METRICS=0) */
	uint64_t appends, append_bytes, writes, syncs, sync_ns_total, wait_ns_total;
	uint64_t group_commit_p50, group_commit_p99, group_commit_max; /* groups per sync */
	uint64_t sync_us_p50, sync_us_p99, sync_us_max;                 /* sync latency */
} pbox_wal_info;

void pbox_wal_get_info(pbox_wal *wal, pbox_wal_info *info);

#ifdef __cplusplus
}
#endif
#endif
