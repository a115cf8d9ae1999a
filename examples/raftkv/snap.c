/*
 * snap.c — the raftkv snapshot archive: the files of a pagebox store backup (fsm.c takes one
 * with pbox_store_backup) as one buffer, which raft stores and ships to followers, and back.
 * fuzz/fuzz_raftsnap.c feeds rkv_snap_index and rkv_snap_unpack arbitrary bytes.
 *
 * FORMAT, version 1 (integers little-endian; sizes in bytes)
 *
 *   SIZE   FIELD      MEANING
 *   header (28 bytes)
 *   8      magic      "RKVSNAP1"
 *   8      index      the raft index the snapshot was taken at
 *   4      nfiles     how many file entries follow (0 is allowed: an empty directory)
 *   4      reserved   0
 *   4      hcrc       CRC-32C of the 24 bytes above
 *   nfiles file entries, names strictly ascending (memcmp order, a prefix first):
 *   2      nlen       1..255
 *   nlen   name       the path relative to the directory: "data", "wal/wal-0000...0.seg"
 *   8      size       the file's size, at most 1 TiB
 *   4      nextents   the stored extents; every byte outside them is zero
 *          extents    nextents times, ascending, not overlapping, inside the file:
 *   8        offset   a multiple of 4096
 *   4        length   1..1 MiB, a multiple of 4096 unless the extent ends at `size`
 *   length   bytes    the file's bytes at offset
 *   4      fcrc       CRC-32C of the entry from nlen through the last extent's bytes
 *   trailer (12 bytes)
 *   8      magic      "RKVEND01"
 *   4      crc        CRC-32C of every byte of the archive before the trailer
 *
 * Names: no NUL, at most one '/' (files at the top level and in one level of subdirectories,
 * as a store has: data, wal/), no empty, "." or ".." component (so no leading '/' and no way
 * out of the directory), not "LOCK" at the top level (pack leaves the store's lock file
 * out), and no subdirectory named like a top-level file. Directories are not recorded: a
 * subdirectory exists when a file in it does (a store's wal/ always holds a segment).
 * CRC-32C: pbox_crc32c with seed 0. All checksums are computed over the bytes as stored.
 *
 * Pack reads each file by its data ranges (SEEK_DATA / SEEK_HOLE, or all of it where the
 * file system has no holes) and stores only the 4096-byte blocks that are not all zero,
 * merged into runs of at most 1 MiB: a preallocated log segment or a mostly empty data file
 * costs what it holds. Files are sorted by name, so the same directory gives the same bytes.
 *
 * Invariants: unpack verifies the whole archive (every checksum, name, length and extent,
 * and that nothing follows the last file) before it creates anything, so a damaged archive
 * leaves no trace; if a system call fails once writing has begun, it removes what it made.
 * No length is used before it is checked against the bytes that remain (size_t, compared as
 * "length <= remaining": no sum can overflow); a count is checked against the smallest
 * bytes it needs before anything is allocated for it. The new files are fsync'd, then their
 * directories, then the parent of the new directory, so after a 0 return the tree is durable.
 * Threading: no shared state; concurrent calls on different directories are independent.
 */
#define _GNU_SOURCE
#include "raftkv.h"

#include <pbox/crc32c.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC "RKVSNAP1"
#define SNAP_END "RKVEND01"
#define SNAP_HDR 28u
#define SNAP_TRAILER 12u
#define SNAP_EXT_HDR 12u
#define SNAP_FILE_MIN (2u + 1u + 12u + 4u) /* the smallest file entry: 1-byte name, no extent */
#define SNAP_BLOCK 4096u
#define SNAP_EXTENT_MAX (1u << 20)
#define SNAP_NAME_MAX 255u
/* A bound on the size a file claims: unpack ftruncates to it, so a forged size must not
 * make a file system fail (EFBIG) or the re-pack walk holes forever; a store file this
 * large would not fit an in-memory archive anyway. */
#define SNAP_FILE_MAX (1ull << 40)
#define SNAP_LOCK "LOCK"

/* Little-endian fields of n bytes. */
static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define put16(p, v) put_le(p, v, 2)
#define put32(p, v) put_le(p, v, 4)
#define put64(p, v) put_le(p, v, 8)
#define get16(p) ((uint16_t)get_le(p, 2))
#define get32(p) ((uint32_t)get_le(p, 4))
#define get64(p) get_le(p, 8)

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen,
							 const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A name from an archive, printable in a one-line message whatever its bytes. */
static const char *shown(const uint8_t *n, size_t len, char out[SNAP_NAME_MAX + 1])
{
	size_t i;
	for (i = 0; i < len && i < SNAP_NAME_MAX; i++)
		out[i] = n[i] >= 0x20 && n[i] < 0x7f ? (char)n[i] : '?';
	out[i] = 0;
	return out;
}

static int name_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static const char *component_problem(const uint8_t *c, size_t len)
{
	if (len == 0)
		return "an empty path component";
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return "a . or .. component";
	return NULL;
}

/* Why a name breaks the rules of the table, or NULL. */
static const char *name_problem(const uint8_t *n, size_t len)
{
	if (len == 0 || len > SNAP_NAME_MAX)
		return "a name of 0 or more than 255 bytes";
	if (memchr(n, 0, len))
		return "a NUL byte in the name";
	const uint8_t *slash = memchr(n, '/', len);
	size_t first = slash ? (size_t)(slash - n) : len;
	if (!slash)
		return len == 4 && !memcmp(n, SNAP_LOCK, 4) ? "the LOCK file" : component_problem(n, len);
	if (memchr(slash + 1, '/', len - first - 1))
		return "more than one level of directories";
	const char *why = component_problem(n, first);
	return why ? why : component_problem(slash + 1, len - first - 1);
}

/* ---- verification ------------------------------------------------------------------------ */

typedef struct sfile {
	const uint8_t *name;
	size_t nlen;
	size_t dlen; /* the directory part's length (0: top level) */
	uint64_t size;
	uint32_t nextents;
	const uint8_t *ext; /* the first extent's header */
} sfile;

static bool header_ok(const uint8_t *p, size_t len)
{
	return len >= SNAP_HDR + SNAP_TRAILER && !memcmp(p, SNAP_MAGIC, 8) && get32(p + 20) == 0 &&
	       pbox_crc32c(0, p, 24) == get32(p + 24);
}

int rkv_snap_index(const void *buf, size_t len, uint64_t *index)
{
	if (!buf || !header_ok(buf, len))
		return -1;
	*index = get64((const uint8_t *)buf + 8);
	return 0;
}

/* Check one file entry starting at *o (end: where the trailer starts); fills f. */
static const char *check_file(const uint8_t *p, size_t end, size_t *o, sfile *f)
{
	size_t at = *o, start = at;
	if (end - at < 2 || get16(p + at) > end - at - 2)
		return "the entry is cut short";
	f->nlen = get16(p + at);
	f->name = p + at + 2;
	at += 2 + f->nlen;
	const char *why = name_problem(f->name, f->nlen);
	if (why)
		return why;
	const uint8_t *slash = memchr(f->name, '/', f->nlen);
	f->dlen = slash ? (size_t)(slash - f->name) : 0;
	if (end - at < 12)
		return "the entry is cut short";
	f->size = get64(p + at);
	f->nextents = get32(p + at + 8);
	at += 12;
	if (f->size > SNAP_FILE_MAX)
		return "a file size over 1 TiB";
	if (f->nextents > (end - at) / SNAP_EXT_HDR)
		return "more extents than the archive holds";
	f->ext = p + at;
	uint64_t pos = 0; /* where the previous extent ended */
	for (uint32_t i = 0; i < f->nextents; i++) {
		if (end - at < SNAP_EXT_HDR)
			return "the entry is cut short";
		uint64_t off = get64(p + at);
		uint32_t len = get32(p + at + 8);
		at += SNAP_EXT_HDR;
		if (len == 0 || len > SNAP_EXTENT_MAX)
			return "an extent of 0 or more than 1 MiB";
		if (off % SNAP_BLOCK)
			return "an extent not at a multiple of 4096";
		if (off < pos)
			return "extents overlapping or out of order";
		if (off > f->size || len > f->size - off)
			return "extent beyond the file size";
		if (len % SNAP_BLOCK && off + len != f->size)
			return "a partial block before the end of the file";
		if (len > end - at)
			return "the entry is cut short";
		at += len;
		pos = off + len;
	}
	if (end - at < 4)
		return "the entry is cut short";
	if (pbox_crc32c(0, p + start, at - start) != get32(p + at))
		return "checksum mismatch";
	*o = at + 4;
	return NULL;
}

/* Is the name (the directory part of a file) also a top-level file? Binary search: the
 * files are sorted. */
static bool is_file(const sfile *f, uint32_t n, const uint8_t *name, size_t len)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(f[mid].name, f[mid].nlen, name, len);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The whole archive, before anything is written; the parsed files in *out (malloc'd). */
static int verify(const uint8_t *p, size_t len, sfile **out, uint32_t *nout, char *err,
		  size_t errlen)
{
	char nb[SNAP_NAME_MAX + 1];
	const char *why = NULL;
	sfile *f = NULL;
	uint32_t n = 0, i = 0;
	size_t end = len - SNAP_TRAILER, o = SNAP_HDR;
	if (!p || len < SNAP_HDR + SNAP_TRAILER)
		why = "too short for an archive";
	else if (!header_ok(p, len))
		why = "bad header (magic, reserved field or checksum)";
	else if (memcmp(p + end, SNAP_END, 8))
		why = "no trailer (a truncated archive?)";
	else if (pbox_crc32c(0, p, end) != get32(p + end + 8))
		why = "archive checksum mismatch";
	else if ((n = get32(p + 16)) > (end - SNAP_HDR) / SNAP_FILE_MIN)
		why = "more files than the archive can hold";
	else if (!(f = calloc(n ? n : 1, sizeof(*f))))
		why = "out of memory";
	if (why) {
		seterr(err, errlen, "snapshot: %s", why);
		return -1;
	}
	for (i = 0; i < n && !why; i++) {
		why = check_file(p, end, &o, &f[i]);
		if (!why && i && name_cmp(f[i - 1].name, f[i - 1].nlen, f[i].name, f[i].nlen) >= 0)
			why = "names out of order or repeated";
	}
	for (uint32_t k = 0; k < n && !why; k++) /* after the loop above: all names known */
		if (f[k].dlen && is_file(f, n, f[k].name, f[k].dlen)) {
			why = "its directory is also a file";
			i = k + 1;
		}
	if (why) {
		seterr(err, errlen, "snapshot: file %u (%s): %s", i,
		       f[i - 1].name ? shown(f[i - 1].name, f[i - 1].nlen, nb) : "?", why);
	} else if (o != end) {
		why = "bytes after the last file";
		seterr(err, errlen, "snapshot: %zu %s", end - o, why);
	}
	if (why) {
		free(f);
		return -1;
	}
	*out = f;
	*nout = n;
	return 0;
}

/* ---- unpack -------------------------------------------------------------------------------- */

static bool same_dir(const sfile *a, const sfile *b)
{
	return a->dlen == b->dlen && !memcmp(a->name, b->name, a->dlen);
}

/* f's name, or its directory part, as a string */
static const char *cpath(char out[SNAP_NAME_MAX + 1], const sfile *f, bool dir_part)
{
	size_t n = dir_part ? f->dlen : f->nlen;
	memcpy(out, f->name, n);
	out[n] = 0;
	return out;
}

static int pwrite_full(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int fsync_at(int dfd, const char *path)
{
	int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

static int write_file(int dfd, const char *path, const sfile *f)
{
	int fd = openat(dfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = ftruncate(fd, (off_t)f->size) ? -errno : 0;
	const uint8_t *e = f->ext;
	for (uint32_t i = 0; i < f->nextents && !rc; i++) {
		uint32_t len = get32(e + 8);
		rc = pwrite_full(fd, e + SNAP_EXT_HDR, len, get64(e));
		e += SNAP_EXT_HDR + len;
	}
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

/* Undo a failed unpack: everything in dir was made by it. Best effort: the first error is
 * what the caller reports. */
static void remove_made(int dfd, const char *dir, const sfile *f, uint32_t n)
{
	char path[SNAP_NAME_MAX + 1];
	for (uint32_t i = 0; i < n; i++)
		(void)unlinkat(dfd, cpath(path, &f[i], false), 0);
	for (uint32_t i = 0; i < n; i++)
		if (f[i].dlen)
			(void)unlinkat(dfd, cpath(path, &f[i], true), AT_REMOVEDIR);
	close(dfd);
	(void)rmdir(dir);
}

int rkv_snap_unpack(const void *buf, size_t len, const char *dir, char *err, size_t errlen)
{
	sfile *f;
	uint32_t n;
	if (verify(buf, len, &f, &n, err, errlen))
		return -1;
	if (mkdir(dir, 0755)) {
		if (errno == EEXIST)
			seterr(err, errlen, "snapshot: %s already exists", dir);
		else
			seterr(err, errlen, "snapshot: mkdir %s: %s", dir, strerror(errno));
		free(f);
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		seterr(err, errlen, "snapshot: open %s: %s", dir, strerror(errno));
		(void)rmdir(dir);
		free(f);
		return -1;
	}
	char path[SNAP_NAME_MAX + 1] = "";
	const char *what = "";
	int rc = 0;
	for (uint32_t i = 0; i < n && !rc; i++) {
		/* files of one directory are adjacent in name order: a new directory part is a
		 * directory not made yet, and after the last file in it, it can be synced */
		if (f[i].dlen && (!i || !same_dir(&f[i - 1], &f[i]))) {
			what = "mkdir";
			rc = mkdirat(dfd, cpath(path, &f[i], true), 0755) ? -errno : 0;
		}
		if (!rc) {
			what = "write";
			rc = write_file(dfd, cpath(path, &f[i], false), &f[i]);
		}
		if (!rc && f[i].dlen && (i + 1 == n || !same_dir(&f[i], &f[i + 1]))) {
			what = "fsync";
			rc = fsync_at(dfd, cpath(path, &f[i], true));
		}
	}
	/* then dir itself, and its parent, which holds the new directory's entry */
	for (int k = 0; k < 2 && !rc; k++) {
		what = "fsync";
		snprintf(path, sizeof(path), k ? ".." : ".");
		rc = fsync_at(dfd, path);
	}
	if (rc) {
		seterr(err, errlen, "snapshot: %s %s/%s: %s", what, dir, path, strerror(-rc));
		remove_made(dfd, dir, f, n);
	} else if (close(dfd)) {
		rc = -errno;
		seterr(err, errlen, "snapshot: close %s: %s", dir, strerror(errno));
	}
	free(f);
	return rc ? -1 : 0;
}

/* ---- pack -------------------------------------------------------------------------------- */

typedef struct obuf {
	uint8_t *p;
	size_t len, cap;
} obuf;

static int ob_room(obuf *b, size_t n)
{
	if (n <= b->cap - b->len)
		return 0;
	size_t cap = b->cap ? b->cap : 64u << 10;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* The names to pack: an obuf of malloc'd strings. */
static void names_free(obuf *l)
{
	char **v = (char **)(void *)l->p;
	for (size_t i = 0; i < l->len / sizeof(*v); i++)
		free(v[i]);
	free(l->p);
}

static int cmp_names(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: the archive's memcmp order */
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect the regular files of dir/sub (sub NULL: the top level, recursing once). */
static int list_files(int dfd, const char *dir, const char *sub, obuf *l, char *err,
		      size_t errlen)
{
	int fd = openat(dfd, sub ? sub : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		seterr(err, errlen, "snapshot: open %s/%s: %s", dir, sub ? sub : "", strerror(e));
		return -e;
	}
	int rc = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				rc = -errno;
				seterr(err, errlen, "snapshot: readdir %s: %s", dir, strerror(errno));
			}
			break;
		}
		const char *nm = de->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, "..") || (!sub && !strcmp(nm, SNAP_LOCK)))
			continue;
		char rel[2 * SNAP_NAME_MAX + 2];
		snprintf(rel, sizeof(rel), "%s%s%s", sub ? sub : "", sub ? "/" : "", nm);
		struct stat st;
		if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = -errno;
			seterr(err, errlen, "snapshot: stat %s/%s: %s", dir, rel, strerror(errno));
			break;
		}
		if (S_ISDIR(st.st_mode) && !sub) {
			rc = list_files(dfd, dir, nm, l, err, errlen);
			if (rc)
				break;
			continue;
		}
		const char *why = S_ISDIR(st.st_mode) ? "a directory two levels down"
				  : !S_ISREG(st.st_mode) ? "not a regular file (a link, device, fifo...)"
				  : name_problem((const uint8_t *)rel, strlen(rel));
		if (why) {
			rc = -1;
			seterr(err, errlen, "snapshot: %s/%s: %s", dir, rel, why);
			break;
		}
		char *cp = strdup(rel);
		if (!cp || ob_room(l, sizeof(cp))) {
			free(cp);
			rc = -ENOMEM;
			break;
		}
		memcpy(l->p + l->len, &cp, sizeof(cp));
		l->len += sizeof(cp);
	}
	closedir(d);
	return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return !n || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* The next range from pos that may hold data: [*s, *e), block-aligned except at size. 1, or
 * 0 when only a hole remains, or -errno. Without hole support everything is data. */
static int data_range(int fd, uint64_t pos, uint64_t size, uint64_t *s, uint64_t *e)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h = (off_t)size;
	if (d < 0) {
		if (errno == ENXIO)
			return 0;
		if (errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		d = (off_t)pos;
	} else {
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
	}
	/* out to whole blocks: the archive's extents are block-aligned */
	uint64_t a = (uint64_t)d / SNAP_BLOCK * SNAP_BLOCK;
	uint64_t b = ((uint64_t)h + SNAP_BLOCK - 1) / SNAP_BLOCK * SNAP_BLOCK;
	*s = a < pos ? pos : a;
	*e = b > size ? size : b;
	if (*s >= size)
		return 0; /* the file grew after its fstat: the archive keeps the size it saw */
	if (*e <= *s)
		*e = size;
	return 1;
}

static int read_full(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ENODATA; /* shrank while being packed */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Append one file's entry; chunk: a SNAP_EXTENT_MAX read buffer. */
static int pack_file(int dfd, const char *rel, obuf *b, uint8_t *chunk)
{
	int fd = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SNAP_FILE_MAX))
		rc = -EINVAL; /* replaced since listed, or too big for the format */
	size_t nlen = strlen(rel), start = b->len, cnt = 0;
	uint64_t size = rc ? 0 : (uint64_t)st.st_size;
	if (!rc)
		rc = ob_room(b, 2 + nlen + 12);
	if (!rc) {
		put16(b->p + b->len, (uint16_t)nlen);
		memcpy(b->p + b->len + 2, rel, nlen);
		put64(b->p + b->len + 2 + nlen, size);
		cnt = b->len + 2 + nlen + 8; /* nextents, written at the end */
		b->len += 2 + nlen + 12;
	}
	uint32_t next = 0, elen = 0;
	uint64_t eoff = 0, pos = 0, s = 0, e = 0;
	size_t ehdr = 0; /* the open extent's header, if elen */
	while (!rc && pos < size) {
		rc = data_range(fd, pos, size, &s, &e);
		if (rc <= 0)
			break;
		rc = 0;
		for (uint64_t off = s; off < e && !rc; off += SNAP_EXTENT_MAX) {
			size_t n = e - off < SNAP_EXTENT_MAX ? (size_t)(e - off) : SNAP_EXTENT_MAX;
			rc = read_full(fd, chunk, n, off);
			for (size_t k = 0; k < n && !rc; k += SNAP_BLOCK) {
				size_t bl = n - k < SNAP_BLOCK ? n - k : SNAP_BLOCK;
				if (all_zero(chunk + k, bl))
					continue;
				bool extend = elen && eoff + elen == off + k &&
					      elen + bl <= SNAP_EXTENT_MAX;
				rc = ob_room(b, SNAP_EXT_HDR + bl);
				if (rc)
					break;
				if (!extend) {
					if (elen)
						put32(b->p + ehdr + 8, elen);
					ehdr = b->len;
					eoff = off + k;
					elen = 0;
					put64(b->p + ehdr, eoff);
					b->len += SNAP_EXT_HDR;
					next++;
				}
				memcpy(b->p + b->len, chunk + k, bl);
				b->len += bl;
				elen += (uint32_t)bl;
			}
		}
		pos = e;
	}
	if (!rc && elen)
		put32(b->p + ehdr + 8, elen);
	if (!rc)
		rc = ob_room(b, 4);
	if (!rc) {
		put32(b->p + cnt, next);
		put32(b->p + b->len, pbox_crc32c(0, b->p + start, b->len - start));
		b->len += 4;
	}
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

int rkv_snap_pack(const char *dir, uint64_t index, void **out, size_t *len, char *err,
		  size_t errlen)
{
	*out = NULL;
	*len = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		seterr(err, errlen, "snapshot: open %s: %s", dir, strerror(e));
		return -e;
	}
	obuf l = { 0 }, b = { 0 };
	uint8_t *chunk = NULL;
	int rc = list_files(dfd, dir, NULL, &l, err, errlen);
	if (rc)
		goto done;
	char **v = (char **)(void *)l.p; /* the names, from malloc: aligned for pointers */
	size_t nf = l.len / sizeof(*v);
	if (nf > UINT32_MAX) {
		rc = -1;
		seterr(err, errlen, "snapshot: %s: too many files", dir);
		goto done;
	}
	if (nf)
		qsort(v, nf, sizeof(*v), cmp_names);
	chunk = malloc(SNAP_EXTENT_MAX);
	rc = chunk ? ob_room(&b, SNAP_HDR) : -ENOMEM;
	if (rc)
		goto done;
	memcpy(b.p, SNAP_MAGIC, 8);
	put64(b.p + 8, index);
	put32(b.p + 16, (uint32_t)nf);
	put32(b.p + 20, 0);
	put32(b.p + 24, pbox_crc32c(0, b.p, 24));
	b.len = SNAP_HDR;
	for (size_t i = 0; i < nf; i++) {
		rc = pack_file(dfd, v[i], &b, chunk);
		if (rc) {
			seterr(err, errlen, "snapshot: %s/%s: %s", dir, v[i],
			       rc == -EINVAL	? "no longer a regular file, or over 1 TiB"
			       : rc == -ENODATA ? "shrank while being packed"
						: strerror(-rc));
			goto done;
		}
	}
	rc = ob_room(&b, SNAP_TRAILER);
	if (rc)
		goto done;
	memcpy(b.p + b.len, SNAP_END, 8);
	put32(b.p + b.len + 8, pbox_crc32c(0, b.p, b.len));
	b.len += SNAP_TRAILER;
	*out = b.p;
	*len = b.len;
	b.p = NULL;
done:
	if (rc == -ENOMEM)
		seterr(err, errlen, "snapshot: out of memory");
	if (close(dfd) && !rc) {
		rc = -errno;
		seterr(err, errlen, "snapshot: close %s: %s", dir, strerror(errno));
		free(*out);
		*out = NULL;
		*len = 0;
	}
	free(chunk);
	free(b.p);
	names_free(&l);
	return rc;
}
