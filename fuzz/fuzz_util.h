/*
 * fuzz_util.h — shared by the libFuzzer targets: little-endian helpers, files on memfs, and
 * checksum fix-ups. Mutated bytes almost never carry a valid CRC32C, so without help the
 * fuzzer would only ever reach the checksum checks; when an input asks for it (a flag bit),
 * the harness recomputes the checksums of the structures it can find (WAL segment headers,
 * groups and records; page checksums) and the fuzzer reaches the parsing behind them.
 * The layouts restated here are those tabled in wal/src/wal_int.h and
 * storage/src/storage_int.h.
 */
#ifndef PBOX_FUZZ_UTIL_H
#define PBOX_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <pbox/crc32c.h>
#include <pbox/iotest.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the target checks failed: report and crash (libFuzzer saves the input). */
#define FZ_CHECK(cond, ...)                                                                 \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz: %s:%d: check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                                     \
			fprintf(stderr, __VA_ARGS__);                                       \
			fputc('\n', stderr);                                                \
			abort();                                                            \
		}                                                                           \
	} while (0)

static inline uint32_t fz_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void fz_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Write a file durably on memfs (creating it; parents must exist). */
static inline int fz_put_file(pbox_io *io, const char *path, const void *buf, size_t len)
{
	int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	int r = len ? pbox_io_pwrite_full(io, fd, buf, len, 0) : 0;
	if (!r)
		r = io->fsync(io, fd);
	io->close(io, fd);
	if (!r)
		r = pbox_io_fsync_parent(io, path);
	return r;
}

/* ---- the WAL's formats (wal/src/wal_int.h) ------------------------------------------------ */
#define FZ_SEG_MAGIC 0x53574250u
#define FZ_GROUP_MAGIC 0x47574250u
#define FZ_SEG_HDR 4096u
#define FZ_GROUP_HDR 40u
#define FZ_REC_HDR 24u

/* Recompute the checksums of a segment image: the header's, then each group's records' and
 * header's, walking groups from the header block for as long as they are well-formed. */
static inline void fz_fix_segment(uint8_t *seg, size_t len)
{
	if (len < FZ_SEG_HDR)
		return;
	if (fz_get32(seg) == FZ_SEG_MAGIC)
		fz_put32(seg + 32, pbox_crc32c(0, seg, 32));
	size_t pos = FZ_SEG_HDR;
	while (pos + FZ_GROUP_HDR <= len) {
		uint8_t *p = seg + pos;
		if (fz_get32(p) != FZ_GROUP_MAGIC)
			break;
		uint32_t total = fz_get32(p + 24), nrec = fz_get32(p + 28);
		if (total < FZ_GROUP_HDR || total % 8 || total > len - pos)
			break;
		uint32_t off = FZ_GROUP_HDR;
		for (uint32_t i = 0; i < nrec && total - off >= FZ_REC_HDR; i++) {
			uint8_t *r = p + off;
			uint32_t rl = fz_get32(r);
			if (rl > total - off - FZ_REC_HDR)
				break;
			fz_put32(r + 16, 0);
			uint32_t c = pbox_crc32c(0, r, FZ_REC_HDR);
			fz_put32(r + 16, rl ? pbox_crc32c(c, r + FZ_REC_HDR, rl) : c);
			off += FZ_REC_HDR + ((rl + 7u) & ~7u);
		}
		fz_put32(p + 4, 0);
		fz_put32(p + 4, pbox_crc32c(0, p, FZ_GROUP_HDR));
		pos += total;
	}
}

/* Seal every page of a data file image (checksum over the page after its first 4 bytes),
 * except all-zero pages, which are valid as they are. */
static inline void fz_fix_pages(uint8_t *d, size_t len, uint32_t ps)
{
	for (size_t off = 0; off + ps <= len; off += ps) {
		uint8_t *p = d + off;
		bool zero = true;
		for (uint32_t i = 0; i < ps && zero; i++)
			zero = p[i] == 0;
		if (!zero)
			fz_put32(p, pbox_crc32c(0, p + 4, ps - 4));
	}
}

#endif
