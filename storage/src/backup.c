/*
 * backup.c — online backup of an open store (pbox_store_backup, pbox/storage.h).
 *
 * What the copy holds, and why it is consistent without freezing a page:
 *   1. under ckpt_mu (no checkpoint in flight, so both superblock copies on disk are whole
 *      and durable): read superblock pages 0 and 1 as they are; F = min(redo start, logical
 *      start); backup_floor = F (checkpoints recycle nothing at or above F until the end);
 *   2. copy the data file's pages 2.. while writers go on. Every page on disk is at least
 *      as new as its state at the redo start R (the checkpoint that wrote R wrote back every
 *      page dirtied before R first); a page written after R's superblock became durable was
 *      changed after R, so its first change after R logged a full page image. A page
 *      copied torn or newer than R is therefore repaired or overwritten by redo;
 *   3. E = the durable LSN, read after the copy: by the WAL rule every page write the copy
 *      saw was preceded by the log it needs, which lies below E. The data file's size is
 *      read after E (growth precedes the log that names a new page) and the pages past the
 *      first pass are copied too;
 *   4. the log segments from F's to E's: whole below E, E's own up to E (zeros after it,
 *      so nothing past E can validate in the copy); of F's own, its header and the bytes
 *      from F on (the copy's log is opened at F and never reads what lies before). A transaction whose commit record lies
 *      below E is re-installed by the copy's recovery; one whose commit record does not left
 *      no change on any page the copy holds (its install follows its commit record).
 * The copy's superblocks are the ones read in 1, so its recovery starts at R (and F).
 *
 * Crash safety of dest: the marker BACKUP-INCOMPLETE is durable (file and name) before
 * anything else is written into dest (then LOCK, data, wal/), and is unlinked, durably, only after every file and
 * directory of the copy is synced; pbox_store_open refuses a directory holding it.
 *
 * Locking: backup_busy admits one backup per store; ckpt_mu is held only for step 1. The
 * source is read through its own descriptors (pread, O_DIRECT where the store uses it:
 * the chunk buffer and offsets are page aligned). Nothing here writes to the source.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CHUNK (1u << 20) /* bytes per read, write and progress report */
#define WAL_HDR 4096u    /* a segment's header block (wal/README.md) */

typedef struct bk {
	pbox_store *st;
	pbox_io *io;
	const pbox_backup_options *o;
	unsigned char *buf; /* CHUNK bytes, 4096-aligned */
	uint64_t done, total, t0;
	const char *dest;
	pbox_backup_info info;
} bk;

__attribute__((format(printf, 2, 3))) static void say(const bk *b, const char *fmt, ...)
{
	if (!b->o->errbuf || !b->o->errbuf_len || b->o->errbuf[0])
		return; /* the first explanation is the one that matters */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->o->errbuf, b->o->errbuf_len, fmt, ap);
	va_end(ap);
}

void pbox_backup_options_init(pbox_backup_options *o)
{
	memset(o, 0, sizeof(*o));
}

/* Account n copied bytes: hold the rate limit, report progress (which may cancel). */
static int pace(bk *b, uint64_t n)
{
	b->done += n;
	if (b->o->rate_bytes) {
		double want = (double)b->done * 1e9 / (double)b->o->rate_bytes;
		double have = (double)(pbox_now_ns() - b->t0);
		if (want > have) {
			uint64_t ns = (uint64_t)(want - have);
			struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
					       .tv_nsec = (long)(ns % 1000000000u) };
			while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
				;
		}
	}
	if (b->o->progress) {
		int r = b->o->progress(b->done, b->total > b->done ? b->total : b->done,
				       b->o->progress_arg);
		if (r) {
			say(b, "backup cancelled by its progress callback (%d)", r);
			return r;
		}
	}
	return 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if (v)
			return false;
	}
	return true;
}

/* Copy [from, to) of src into dst at the same offsets, in chunks; all-zero chunks are not
 * written (the destination is truncated to its full size afterwards: they read as zeros). */
static int copy_range(bk *b, int src, int dst, uint64_t from, uint64_t to, uint64_t *copied,
		      const char *what)
{
	for (uint64_t off = from; off < to;) {
		size_t n = to - off < CHUNK ? (size_t)(to - off) : CHUNK;
		int r = pbox_io_pread_full(b->io, src, b->buf, n, off);
		if (r) {
			say(b, "reading %s at offset %" PRIu64 ": %s", what, off, pbox_strerror(r));
			return r;
		}
		if (!all_zero(b->buf, n) && (r = pbox_io_pwrite_full(b->io, dst, b->buf, n, off))) {
			say(b, "writing the copy of %s in %s: %s", what, b->dest, pbox_strerror(r));
			return r;
		}
		*copied += n;
		off += n;
		if ((r = pace(b, n)))
			return r;
	}
	return 0;
}

static int entry_fn(const char *name, void *arg)
{
	(void)name;
	*(bool *)arg = false;
	return 1;
}

/* dest: made (or an existing empty directory), its entry durable, the marker durable. */
static int prepare_dest(bk *b)
{
	pbox_io *io = b->io;
	int r = io->mkdir(io, b->dest, 0755);
	if (r == -EEXIST) {
		bool empty = true;
		r = io->listdir(io, b->dest, entry_fn, &empty);
		if (r > 0)
			r = 0; /* entry_fn stopped the listing at the first name */
		if (r == -ENOTDIR || r == -ENOENT || (!r && !empty)) { /* a file, or not empty */
			say(b, "%s exists and is not an empty directory", b->dest);
			return PBOX_EEXIST;
		}
	} else if (r == -ENOENT) {
		say(b, "the directory that should hold %s does not exist", b->dest);
		return PBOX_ENOTFOUND;
	}
	if (!r)
		r = pbox_io_fsync_parent(io, b->dest);
	char path[4200];
	snprintf(path, sizeof(path), "%s/" PBOX_BACKUP_MARKER, b->dest);
	int fd = r ? r : io->open(io, path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if (fd >= 0) {
		r = io->fsync(io, fd);
		io->close(io, fd);
	} else {
		r = fd;
	}
	if (!r)
		r = io->fsync_dir(io, b->dest);
	/* the lock file a store's open expects (made durable with everything else) */
	snprintf(path, sizeof(path), "%s/LOCK", b->dest);
	if (!r && (fd = io->open(io, path, O_CREAT | O_WRONLY, 0644)) >= 0)
		io->close(io, fd);
	else if (!r)
		r = fd;
	snprintf(path, sizeof(path), "%s/wal", b->dest);
	if (!r && (r = io->mkdir(io, path, 0755)) == -EEXIST)
		r = 0;
	if (r)
		say(b, "preparing %s: %s", b->dest, pbox_strerror(r));
	return r;
}

/* Step 2 and 3: the data file; *end = the durable LSN read after the copy. */
static int copy_data(bk *b, const unsigned char *super, uint32_t ps, pbox_lsn *end)
{
	pbox_store *st = b->st;
	pbox_io *io = b->io;
	char path[4200];
	snprintf(path, sizeof(path), "%s/data", b->dest);
	int out = io->open(io, path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if (out < 0) {
		say(b, "creating %s: %s", path, pbox_strerror(out));
		return out;
	}
	uint64_t size = 0, size2 = 0;
	int r = io->fsize(io, st->data_fd, &size);
	b->total += size; /* for the progress reports: the data file, then the log */
	if (!r)
		r = pbox_io_pwrite_full(io, out, super, 2 * (size_t)ps, 0);
	if (!r) {
		b->info.data_bytes += 2 * (uint64_t)ps;
		r = copy_range(b, st->data_fd, out, 2 * (uint64_t)ps, size, &b->info.data_bytes,
			       "the data file");
	}
	if (!r) {
		*end = pbox_wal_durable_lsn(st->wal);
		r = io->fsize(io, st->data_fd, &size2); /* after the end: growth precedes logging */
	}
	if (!r && size2 > size)
		r = copy_range(b, st->data_fd, out, size, size2, &b->info.data_bytes, "the data file");
	if (!r)
		r = io->ftruncate(io, out, size2 > size ? size2 : size);
	if (!r)
		r = io->fdatasync(io, out);
	io->close(io, out);
	if (r)
		say(b, "copying the data file to %s: %s", path, pbox_strerror(r));
	return r;
}

/* Step 4: the log segments holding [from, end). */
static int copy_log(bk *b, pbox_lsn from, pbox_lsn end)
{
	pbox_store *st = b->st;
	pbox_io *io = b->io;
	pbox_wal_info wi;
	pbox_wal_get_info(st->wal, &wi);
	uint64_t seg = wi.segment_size;
	for (uint64_t base = from - from % seg; base <= end; base += seg) {
		char src[4200], dst[4200];
		snprintf(src, sizeof(src), "%s/wal/wal-%016" PRIx64 ".seg", st->dir, base);
		snprintf(dst, sizeof(dst), "%s/wal/wal-%016" PRIx64 ".seg", b->dest, base);
		int in = io->open(io, src, O_RDONLY, 0);
		if (in == -ENOENT && base == end && base > from)
			break; /* the log ends exactly where this segment would begin */
		if (in < 0) {
			say(b, "opening %s: %s", src, pbox_strerror(in));
			return in == -ENOENT ? PBOX_CORRUPT() : in;
		}
		int out = io->open(io, dst, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (out < 0) {
			io->close(io, in);
			say(b, "creating %s: %s", dst, pbox_strerror(out));
			return out;
		}
		uint64_t len = end - base >= seg ? seg : end - base;
		if (len < WAL_HDR)
			len = WAL_HDR;
		/* the first segment: its header, then from F on (the log is opened at F: what
		 * lies between is never read, and stays zero) */
		uint64_t skip = 0;
		if (from > base + WAL_HDR)
			skip = (from - base) & ~(uint64_t)(WAL_HDR - 1);
		if (skip > len)
			skip = len;
		int r = copy_range(b, in, out, 0, WAL_HDR, &b->info.log_bytes, src);
		if (!r)
			r = copy_range(b, in, out, skip > WAL_HDR ? skip : WAL_HDR, len,
				       &b->info.log_bytes, src);
		if (!r)
			r = io->ftruncate(io, out, seg); /* zeros past the end: nothing validates */
		if (!r)
			r = io->fdatasync(io, out);
		io->close(io, in);
		io->close(io, out);
		if (r) {
			say(b, "copying %s: %s", src, pbox_strerror(r));
			return r;
		}
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/wal", b->dest);
	return io->fsync_dir(io, path);
}

static int unlink_fn(const char *name, void *arg)
{
	bk *b = arg;
	char path[4200];
	snprintf(path, sizeof(path), "%s/wal/%s", b->dest, name);
	b->io->unlink(b->io, path);
	return 0;
}

/* After a failure: give the space back; the marker stays (dest never opens as a store). */
static void discard(bk *b)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/wal", b->dest);
	b->io->listdir(b->io, path, unlink_fn, b);
	snprintf(path, sizeof(path), "%s/data", b->dest);
	b->io->unlink(b->io, path);
}

int pbox_store_backup(pbox_store *st, const char *dest, const pbox_backup_options *o,
		      pbox_backup_info *info)
{
	pbox_backup_options defaults;
	if (!o) {
		pbox_backup_options_init(&defaults);
		o = &defaults;
	}
	if (!st || !dest || !*dest || strlen(dest) > 4000)
		return PBOX_EINVAL;
	if (o->errbuf && o->errbuf_len)
		o->errbuf[0] = 0;
	int r = pbox__poisoned(st);
	if (r)
		return r;
	if (atomic_exchange(&st->backup_busy, true))
		return PBOX_EBUSY;
	bk b = { .st = st, .io = st->io, .o = o, .dest = dest, .t0 = pbox_now_ns() };
	uint32_t ps = st->pub.page_size;
	unsigned char *super = pbox_aligned_alloc(4096, 2 * (size_t)ps);
	b.buf = pbox_aligned_alloc(4096, CHUNK);
	bool made = false;
	if (!super || !b.buf)
		r = -ENOMEM;
	if (!r)
		r = prepare_dest(&b);
	made = !r;
	/* 1 */
	pbox_lsn from = 0, end = 0;
	if (!r) {
		pthread_mutex_lock(&st->ckpt_mu);
		pbox_lsn redo = atomic_load(&st->redo_start), logical = atomic_load(&st->logical_start);
		from = logical && logical < redo ? logical : redo;
		r = pbox_io_pread_full(st->io, st->data_fd, super, 2 * (size_t)ps, 0);
		if (!r)
			atomic_store(&st->backup_floor, from);
		pthread_mutex_unlock(&st->ckpt_mu);
		if (r)
			say(&b, "reading the superblocks: %s", pbox_strerror(r));
	}
	if (!r) {
		b.total = pbox_wal_durable_lsn(st->wal) - from + WAL_HDR; /* copy_data adds its size */
		r = copy_data(&b, super, ps, &end); /* 2, 3 */
	}
	if (!r)
		r = copy_log(&b, from, end); /* 4 */
	atomic_store(&st->backup_floor, PBOX_LSN_NONE);
	/* the last step: every file and name durable, then the marker goes, durably */
	char path[4200];
	snprintf(path, sizeof(path), "%s/" PBOX_BACKUP_MARKER, dest);
	if (!r)
		r = st->io->fsync_dir(st->io, dest);
	if (r && made)
		discard(&b); /* the marker is still there: dest never opens as a store */
	if (!r && (r = st->io->unlink(st->io, path)) == 0)
		r = st->io->fsync_dir(st->io, dest);
	if (r)
		say(&b, "finishing the backup in %s: %s", dest, pbox_strerror(r));
	else if (o->progress) /* the final report (the copy is complete: no cancelling it) */
		o->progress(b.done, b.done, o->progress_arg);
	pbox_free(super);
	pbox_free(b.buf);
	atomic_store(&st->backup_busy, false);
	if (!r && info) {
		b.info.start_lsn = from;
		b.info.end_lsn = end;
		b.info.ns = pbox_now_ns() - b.t0;
		*info = b.info;
	}
	return r;
}
