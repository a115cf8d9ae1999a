/*
 * errpaths_common.h — shared by check_errpaths_wal.c and check_errpaths_store.c: the
 * on-disk formats restated from the READMEs ("On-disk format" in wal/README.md and
 * storage/README.md; no library's src/ header is included), builders of crafted segments,
 * groups and records, and memfs file helpers.
 */
#ifndef PBOX_ERRPATHS_COMMON_H
#define PBOX_ERRPATHS_COMMON_H

#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/storage.h>
#include <pbox/wal.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- formats ------------------------------------------------------------------------------- */

/* wal/README.md, "On-disk format": segment header, group header, record header */
#define SEG_HDR 4096u
#define SEG_MAGIC 0x53574250u /* "PBWS" */
#define WAL_VERSION 1u
#define GROUP_HDR 40u
#define GROUP_MAGIC 0x47574250u /* "PBWG" */
#define REC_HDR 24u
#define GF_SKIP 1u

/* storage/README.md, "On-disk format": page header, superblock, meta page, redo records */
#define PG_TYPE 4
#define SB_FORMAT 40
#define SB_GEN 48
#define META_PID 2u
#define META_COUNT 32
#define REDO_FPI 1u
#define REDO_WRITE 2u
#define REDO_INIT 3u

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* A segment header block (its first 64 bytes; the rest is zero). */
static inline void seg_hdr_make(uint8_t *b, uint32_t version, uint64_t log_id, uint64_t base,
			 uint64_t size)
{
	memset(b, 0, 64);
	put32(b, SEG_MAGIC);
	put32(b + 4, version);
	put64(b + 8, log_id);
	put64(b + 16, base);
	put64(b + 24, size);
	put32(b + 32, pbox_crc32c(0, b, 32));
}

static inline void group_hdr_make(uint8_t *p, uint64_t lsn, uint64_t sync_lsn, uint32_t total,
			   uint32_t nrec, uint32_t flags)
{
	memset(p, 0, GROUP_HDR);
	put32(p, GROUP_MAGIC);
	put64(p + 8, lsn);
	put64(p + 16, sync_lsn);
	put32(p + 24, total);
	put32(p + 28, nrec);
	put32(p + 32, flags);
	put32(p + 4, pbox_crc32c(0, p, GROUP_HDR));
}

/* A record at lsn with its payload and zero padding; returns the bytes it takes. */
static inline uint32_t rec_make(uint8_t *p, uint64_t lsn, uint16_t type, const void *data, uint32_t len)
{
	memset(p, 0, REC_HDR + align8(len));
	put32(p, len);
	put16(p + 4, type);
	put64(p + 8, lsn);
	uint32_t c = pbox_crc32c(0, p, REC_HDR);
	if (len) {
		memcpy(p + REC_HDR, data, len);
		c = pbox_crc32c(c, data, len);
	}
	put32(p + 16, c);
	return REC_HDR + (uint32_t)align8(len);
}

/* A page checksum: CRC32C of bytes [4, page_size) at offset 0. */
static inline void page_seal(uint8_t *page, uint32_t ps)
{
	put32(page, pbox_crc32c(0, page + 4, ps - 4));
}

/* ---- memfs helpers --------------------------------------------------------------------------- */

#define EQ CK_RC /* this suite's name for it */

static inline void put_file(pbox_io *io, const char *path, const void *data, size_t len)
{
	int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	if (len)
		EQ(pbox_io_pwrite_full(io, fd, data, len, 0), 0);
	EQ(io->fdatasync(io, fd), 0);
	EQ(io->close(io, fd), 0);
	EQ(pbox_io_fsync_parent(io, path), 0);
}

static inline bool file_exists(pbox_io *io, const char *path)
{
	int fd = io->open(io, path, O_RDONLY, 0);
	if (fd < 0)
		return false;
	io->close(io, fd);
	return true;
}

static inline void peek(pbox_io_memfs *fs, const char *path, void *buf, size_t len, uint64_t off)
{
	REQ(pbox_io_memfs_peek(fs, path, buf, len, off) == (int64_t)len, "peek %s", path);
}

static inline void poke(pbox_io_memfs *fs, const char *path, const void *buf, size_t len, uint64_t off)
{
	EQ(pbox_io_memfs_poke(fs, path, buf, len, off), 0);
}

/* A directory's files and their contents, to undo what a case (or an open) changed. */
/* snapshots of the log directory: the toolkit's (tests/common) */
typedef pbox_test_snap snap;
#define snap_take pbox_test_snap_take
#define snap_restore pbox_test_snap_restore
#define snap_free pbox_test_snap_free

typedef struct names {
	int n;
	char name[64][80];
} names;

static inline int name_one(const char *name, void *arg)
{
	names *v = arg;
	if (v->n < 64)
		snprintf(v->name[v->n++], sizeof(v->name[0]), "%s", name);
	return 0;
}

static inline void list(pbox_io *io, const char *dir, names *v)
{
	v->n = 0;
	EQ(io->listdir(io, dir, name_one, v), 0);
}

static inline int count_prefix(pbox_io *io, const char *dir, const char *prefix)
{
	names v;
	list(io, dir, &v);
	int n = 0;
	for (int i = 0; i < v.n; i++)
		n += strncmp(v.name[i], prefix, strlen(prefix)) == 0;
	return n;
}


#endif
