/*
 * open.c — options, opening (find the segments, validate the log from the start LSN to its
 * end, erase a torn tail, make everything valid durable), closing and introspection.
 *
 * Open, step by step:
 *   0. fsync the directory: names a killed program left unsynced are durable from now on.
 *   1. List the directory. "wal-<lsn>.seg" files with a valid header whose base matches
 *      their name are segments; "*.tmp" files are half-made segments and are removed;
 *      "spare-*.seg" files and segments below the start are spares for reuse. Without a start
 *      LSN the log starts at the oldest "wal-*.seg", which must be good (PBOX_ECORRUPT).
 *      A header that cannot be read is the read's error, never a reason to skip the file.
 *   2. The chain is the run of consecutive segments from the one holding the start LSN. A
 *      valid segment beyond a gap in the chain means a segment is missing: PBOX_ECORRUPT.
 *   3. Read groups from the start LSN until the first position p that holds no valid group.
 *   4. Scan the chain after p for groups with a correct header at their own LSN. If one has
 *      a sync LSN above p, p was durable before that group was appended: PBOX_ECORRUPT.
 *      Otherwise they are leftovers of the last, torn write: zero them.
 *   5. fdatasync every chain segment (a process crash may have left the valid prefix in the
 *      page cache only), then start appending at p.
 *   6. the ring and the background thread.
 * Functions: new_wal (0), list_log (0-1), find_first (1), create_log (a new log),
 * open_chain (2), validate_log (3-5), start_log (6).
 */
#define _GNU_SOURCE
#include "wal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const sync_names[] = { "fdatasync", "fsync", "dsync", "io_uring", "none" };

const char *pbox_wal_sync_name(pbox_wal_sync s)
{
	return (unsigned)s < PBOX_ARRAY_LEN(sync_names) ? sync_names[s] : "invalid";
}

int pbox_wal_sync_parse(const char *name, pbox_wal_sync *out)
{
	for (unsigned i = 0; name && i < PBOX_ARRAY_LEN(sync_names); i++)
		if (!strcmp(name, sync_names[i])) {
			*out = (pbox_wal_sync)i;
			return 0;
		}
	return PBOX_EINVAL;
}

void pbox_wal_options_init(pbox_wal_options *o)
{
	memset(o, 0, sizeof(*o));
	o->segment_size = 64ull << 20;
	o->buffer_size = 8ull << 20;
	o->sync = PBOX_WAL_SYNC_FDATASYNC;
	o->max_spares = 2;
}

uint64_t pbox_wal_max_group_bytes(uint64_t segment_size, uint64_t buffer_size)
{
	uint64_t a = segment_size - SEG_HDR, b = buffer_size / 4;
	return (a < b ? a : b) - GROUP_HDR;
}

static bool pow2_in(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

/* ---- directory listing ------------------------------------------------------------------- */

typedef struct found {
	uint64_t base;
	char name[64];
	bool is_seg; /* "wal-*.seg" (else a spare) */
} found;

typedef struct listing {
	found *v;
	size_t n, cap;
	int err;
	pbox_wal *wal;
} listing;

static int list_cb(const char *name, void *arg)
{
	listing *l = arg;
	size_t len = strlen(name);
	found f = { 0 };
	if (len >= sizeof(f.name))
		return 0;
	if (len > 4 && !strcmp(name + len - 4, ".tmp")) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", l->wal->dir, name);
		l->wal->io->unlink(l->wal->io, path); /* a segment that was never finished */
		return 0;
	}
	char *end;
	if (len == 4 + 16 + 4 && !strncmp(name, "wal-", 4) && !strcmp(name + 20, ".seg")) {
		f.base = strtoull(name + 4, &end, 16);
		if (end != name + 20)
			return 0;
		f.is_seg = true;
	} else if (len == 6 + 16 + 4 && !strncmp(name, "spare-", 6) && !strcmp(name + 22, ".seg")) {
		f.is_seg = false;
	} else {
		return 0;
	}
	memcpy(f.name, name, len + 1);
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		found *v = pbox_realloc(l->v, nc * sizeof(*v));
		if (!v) {
			l->err = -ENOMEM;
			return 1;
		}
		l->v = v;
		l->cap = nc;
	}
	l->v[l->n++] = f;
	return 0;
}

static int cmp_found(const void *a, const void *b)
{
	const found *x = a, *y = b;
	return x->base < y->base ? -1 : x->base > y->base;
}

static int read_seg_hdr(pbox_wal *wal, const char *name, seg_hdr *h)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", wal->dir, name);
	int fd = wal->io->open(wal->io, path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	unsigned char blk[64];
	int r = pbox_io_pread_full(wal->io, fd, blk, sizeof(blk), 0);
	wal->io->close(wal->io, fd);
	if (r)
		return r == PBOX_ECORRUPT ? PBOX_ECORRUPT : r;
	unsigned char full[SEG_HDR];
	memset(full, 0, sizeof(full));
	memcpy(full, blk, sizeof(blk));
	return pbox__wal_seg_hdr_decode(full, h);
}

static int add_spare(pbox_wal *wal, const char *name)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", wal->dir, name);
	if (wal->nspares >= wal->max_spares)
		return wal->io->unlink(wal->io, path);
	wal_spare *v = pbox_realloc(wal->spares, (wal->nspares + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	wal->spares = v;
	if (!(v[wal->nspares].path = pbox_strdup(path)))
		return -ENOMEM;
	wal->nspares++;
	return 0;
}

/* ---- tail handling ------------------------------------------------------------------------- */

/* Step 4: look for groups after p; ECORRUPT if one proves p was durable, else *erase_end is
 * just past the last leftover group (p if none). */
static int scan_after(pbox_wal *wal, wal_reader *rd, uint64_t p, uint64_t last_k,
		      uint64_t *erase_end)
{
	const uint64_t S = wal->seg_size;
	const size_t chunk = rd->win_cap;
	*erase_end = p;
	for (uint64_t k = p / S; k <= last_k; k++) {
		uint64_t off = k == p / S ? (p % S) & ~(uint64_t)7 : SEG_HDR;
		if (off < SEG_HDR)
			off = SEG_HDR;
		while (off + GROUP_HDR <= S) {
			size_t len = S - off < chunk ? (size_t)(S - off) : chunk;
			int r = pbox__wal_reader_pread(rd, k, rd->win, len, off);
			if (r)
				return r;
			rd->win_len = 0; /* the window no longer holds what the reader thinks */
			for (size_t i = 0; i + GROUP_HDR <= len; i += 8) {
				if (get32(rd->win + i) != GROUP_MAGIC)
					continue;
				uint64_t q = k * S + off + i;
				group_view g;
				if (q < p ||
				    pbox__wal_group_hdr_check(rd->win + i, q, S,
							      wal->max_group + GROUP_HDR, &g))
					continue;
				if (g.sync_lsn > p)
					return PBOX_CORRUPT();
				if (q + g.total > *erase_end)
					*erase_end = q + g.total;
			}
			if (len < chunk)
				break;
			/* next chunk starts just after the last position checked, so a header
			 * that straddles the chunk edge is checked in the next one */
			off += (len - GROUP_HDR) / 8 * 8 + 8;
		}
	}
	return 0;
}

/* Zero [a, b) in the chain (skipping header blocks) and sync what was touched. */
static int erase_range(pbox_wal *wal, uint64_t a, uint64_t b)
{
	const uint64_t S = wal->seg_size;
	size_t zlen = 1u << 20;
	unsigned char *z = pbox_calloc(1, zlen);
	if (!z)
		return -ENOMEM;
	int r = 0;
	while (a < b && !r) {
		uint64_t k = a / S, start = a % S < SEG_HDR ? k * S + SEG_HDR : a;
		uint64_t end = b < (k + 1) * S ? b : (k + 1) * S;
		int fd;
		if ((r = pbox__wal_seg_fd(wal, k, &fd)))
			break;
		for (uint64_t x = start; x < end && !r; x += zlen) {
			uint64_t n = end - x < zlen ? end - x : zlen;
			r = pbox_io_pwrite_full(wal->io, fd, z, n, x % S);
		}
		if (!r && start < end)
			r = wal->io->fdatasync(wal->io, fd);
		wal->open_erased += end > start ? end - start : 0;
		a = end;
	}
	pbox_free(z);
	return r;
}

static void free_wal(pbox_wal *wal)
{
	for (size_t i = 0; i < wal->nsegs; i++)
		wal->io->close(wal->io, wal->segs[i].fd);
	for (size_t i = 0; i < wal->nspares; i++)
		pbox_free(wal->spares[i].path);
	if (wal->ring)
		wal->io->ring_close(wal->io, wal->ring);
	pbox_free(wal->spares);
	pbox_free(wal->segs);
	pbox_free(wal->buf);
	pbox_free(wal->dir);
	pthread_mutex_destroy(&wal->mu);
	pthread_mutex_destroy(&wal->seg_mu);
	pthread_cond_destroy(&wal->cv);
	pthread_cond_destroy(&wal->cv_bg);
	pbox_free(wal);
}

static bool has_segments(const listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].is_seg)
			return true;
	return false;
}

/* Step 0: the log object from the options; nothing opened yet. */
static pbox_wal *new_wal(const char *dir, const pbox_wal_options *o)
{
	pbox_wal *wal = pbox_aligned_alloc(PBOX_CACHELINE, sizeof(*wal));
	if (!wal)
		return NULL;
	memset(wal, 0, sizeof(*wal));
	pthread_mutex_init(&wal->mu, NULL);
	pthread_mutex_init(&wal->seg_mu, NULL);
	pthread_cond_init(&wal->cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&wal->cv_bg, &ca);
	pthread_condattr_destroy(&ca);
	wal->io = o->io ? o->io : pbox_io_posix();
	wal->sync = o->sync;
	wal->flush_delay_us = o->flush_delay_us;
	wal->max_spares = o->max_spares;
	wal->buf_size = o->buffer_size;
	wal->seg_size = o->segment_size;
	wal->dir = pbox_strdup(dir);
	wal->segs = pbox_calloc(8, sizeof(wal_seg));
	wal->segs_cap = 8;
	if (!wal->dir || !wal->segs) {
		free_wal(wal);
		return NULL;
	}
	return wal;
}

/* Steps 0-1: sync the directory (names a killed program left unsynced are durable from now
 * on, before open trusts them and appends after them), list it, sorted by base. */
static int list_log(pbox_wal *wal, listing *l)
{
	int r = wal->io->fsync_dir(wal->io, wal->dir);
	if (!r)
		r = wal->io->listdir(wal->io, wal->dir, list_cb, l);
	if (l->err)
		r = l->err;
	if (!r && l->n)
		qsort(l->v, l->n, sizeof(found), cmp_found);
	return r;
}

/* Step 1: the segment holding the start (or, without one, the oldest, which must be good).
 * 0 and *have = false when the directory holds no segment of the log. */
static int find_first(pbox_wal *wal, const listing *l, pbox_lsn start_lsn, seg_hdr *first,
		      bool *have)
{
	*have = false;
	for (size_t i = 0; i < l->n && !*have; i++) {
		if (!l->v[i].is_seg)
			continue;
		seg_hdr h;
		int hr = read_seg_hdr(wal, l->v[i].name, &h);
		if (hr && hr != PBOX_ECORRUPT) /* another version, or an I/O error */
			return hr;
		bool good = hr == 0 && h.base == l->v[i].base;
		if (good && (!start_lsn || h.base / h.seg_size == start_lsn / h.seg_size)) {
			*first = h;
			*have = true;
		} else if (!start_lsn) {
			/* "from the oldest segment": a damaged oldest segment is never skipped (the
			 * log would silently lose its groups, and the file become a spare) */
			return PBOX_CORRUPT();
		}
	}
	return 0;
}

/* A new, empty log: a fresh id, every file found becomes a spare, segment 0 made. */
static int create_log(pbox_wal *wal, const listing *l)
{
	if (getrandom(&wal->log_id, sizeof(wal->log_id), 0) != sizeof(wal->log_id))
		wal->log_id = pbox_now_ns() ^ ((uint64_t)(uintptr_t)wal << 16);
	int r;
	for (size_t i = 0; i < l->n; i++)
		if ((r = add_spare(wal, l->v[i].name)))
			return r;
	wal->max_group = pbox_wal_max_group_bytes(wal->seg_size, wal->buf_size);
	int fd;
	if ((r = pbox__wal_seg_fd(wal, 0, &fd)))
		return r;
	wal->start_lsn = SEG_HDR;
	wal->reserved = wal->filled = wal->written = wal->synced = SEG_HDR;
	return 0;
}

/* Step 2: the chain of consecutive segments from the first; files below it become spares;
 * a good segment beyond a gap means one is missing (PBOX_ECORRUPT). *last_k is the last. */
static int open_chain(pbox_wal *wal, const listing *l, const seg_hdr *first, uint64_t *last_k)
{
	const uint64_t S = wal->seg_size;
	uint64_t k0 = first->base / S;
	*last_k = k0;
	int r;
	for (size_t i = 0; i < l->n; i++) {
		const found *f = &l->v[i];
		if (!f->is_seg || f->base < first->base) {
			if ((r = add_spare(wal, f->name)))
				return r;
			continue;
		}
		/* every file in the log's range must be a good segment of this log, in sequence */
		seg_hdr h;
		int hr = read_seg_hdr(wal, f->name, &h);
		if (hr && hr != PBOX_ECORRUPT) /* another version, or an I/O error */
			return hr;
		if (hr || h.base != f->base || h.seg_size != S || h.log_id != wal->log_id ||
		    f->base % S)
			return PBOX_CORRUPT();
		if (f->base / S == k0)
			continue;
		if (f->base / S != *last_k + 1)
			return PBOX_CORRUPT(); /* segment(s) missing inside the log */
		(*last_k)++;
	}
	for (uint64_t k = k0; k <= *last_k; k++) {
		char path[4096];
		if ((r = pbox__wal_seg_path(wal, k, path, sizeof(path))))
			return r;
		int fd = wal->io->open(wal->io, path, pbox__wal_seg_flags(wal), 0);
		if (fd < 0)
			return fd;
		if (wal->nsegs == wal->segs_cap) {
			wal_seg *v = pbox_realloc(wal->segs, wal->segs_cap * 2 * sizeof(*v));
			if (!v) {
				wal->io->close(wal->io, fd);
				return -ENOMEM;
			}
			wal->segs = v;
			wal->segs_cap *= 2;
		}
		wal->segs[wal->nsegs++] = (wal_seg){ .k = k, .fd = fd };
	}
	return 0;
}

/* Steps 3-5: validate groups from the start to the first position p without one, erase the
 * leftovers of a torn write after p (or fail if a later group proves p was durable), make
 * the valid prefix durable; appending starts at p. */
static int validate_log(pbox_wal *wal, wal_reader *rd, uint64_t last_k)
{
	int r = pbox__wal_reader_init(rd, wal, wal->start_lsn, UINT64_MAX, last_k);
	if (r)
		return r;
	for (;;) { /* 3 */
		r = pbox__wal_reader_next(rd);
		if (r == RD_GROUP) {
			wal->open_groups++;
			wal->open_bytes += rd->g.total;
			continue;
		}
		if (r < 0)
			return r;
		break;
	}
	uint64_t end = rd->pos, stop = rd->bad, erase_end;
	if ((r = scan_after(wal, rd, stop, last_k, &erase_end))) /* 4 */
		return r;
	if (erase_end > stop && (r = erase_range(wal, stop, erase_end)))
		return r;
	for (size_t i = 0; i < wal->nsegs; i++) /* 5 */
		if ((r = wal->io->fdatasync(wal->io, wal->segs[i].fd)))
			return r;
	wal->reserved = wal->filled = wal->written = wal->synced = end;
	return 0;
}

/* Step 6: the ring, the io_uring ring if asked for, the background thread. */
static int start_log(pbox_wal *wal)
{
	atomic_store(&wal->durable, wal->synced);
	atomic_store(&wal->reserved_a, wal->reserved);
	wal->buf = pbox_aligned_alloc(4096, wal->buf_size);
	if (!wal->buf)
		return -ENOMEM;
	int r;
	if (wal->sync == PBOX_WAL_SYNC_IO_URING &&
	    (r = wal->io->ring_open(wal->io, 64, &wal->ring)))
		return r;
	if ((r = pthread_create(&wal->bg, NULL, pbox__wal_bg_main, wal)))
		return -r;
	wal->bg_running = true;
	return 0;
}

int pbox_wal_open(const char *dir, const pbox_wal_options *o, pbox_wal **out)
{
	if (!dir || !o || !out)
		return PBOX_EINVAL;
	if (!pow2_in(o->segment_size, 16 << 10, 1ull << 30) ||
	    !pow2_in(o->buffer_size, 64 << 10, 1ull << 30) || (unsigned)o->sync > PBOX_WAL_SYNC_NONE)
		return PBOX_EINVAL;
	uint64_t t0 = pbox_now_ns();
	pbox_wal *wal = new_wal(dir, o);
	if (!wal)
		return -ENOMEM;
	listing l = { .wal = wal };
	wal_reader rd = { .fd = -1 };
	seg_hdr first = { 0 };
	bool have_first = false;
	uint64_t last_k = 0;
	int r = list_log(wal, &l); /* 0-1 */
	if (!r)
		r = find_first(wal, &l, o->start_lsn, &first, &have_first);
	if (!r && !have_first) {
		if (o->start_lsn || has_segments(&l))
			r = PBOX_CORRUPT(); /* the log the caller needs is not (all) here */
		else if (!o->create)
			r = PBOX_ENOTFOUND;
		else
			r = create_log(wal, &l);
	} else if (!r) {
		wal->seg_size = first.seg_size;
		wal->log_id = first.log_id;
		wal->max_group = pbox_wal_max_group_bytes(wal->seg_size, wal->buf_size);
		wal->start_lsn = o->start_lsn ? o->start_lsn : first.base + SEG_HDR;
		r = open_chain(wal, &l, &first, &last_k); /* 2 */
		if (!r)
			r = validate_log(wal, &rd, last_k); /* 3-5 */
	}
	if (!r)
		r = start_log(wal); /* 6 */
	pbox__wal_reader_fini(&rd);
	pbox_free(l.v);
	if (r) {
		free_wal(wal);
		return r;
	}
	wal->open_ns = pbox_now_ns() - t0;
	*out = wal;
	return 0;
}

int pbox_wal_close(pbox_wal *wal)
{
	if (!wal)
		return 0;
	int r = 0;
	if (!atomic_load(&wal->poisoned))
		r = pbox_wal_flush(wal);
	if (wal->bg_running) {
		pthread_mutex_lock(&wal->mu);
		wal->bg_stop = true;
		pthread_cond_signal(&wal->cv_bg);
		pthread_mutex_unlock(&wal->mu);
		pthread_join(wal->bg, NULL);
	}
	if (!r && wal->poison)
		r = PBOX_EPOISONED;
	free_wal(wal);
	return r;
}

void pbox_wal_get_info(pbox_wal *wal, pbox_wal_info *info)
{
	memset(info, 0, sizeof(*info));
	info->segment_size = wal->seg_size;
	info->buffer_size = wal->buf_size;
	info->sync = wal->sync;
	pthread_mutex_lock(&wal->mu);
	info->end_lsn = wal->reserved;
	info->poisoned = wal->poison;
	pthread_mutex_unlock(&wal->mu);
	info->durable_lsn = atomic_load(&wal->durable);
	pthread_mutex_lock(&wal->seg_mu);
	info->start_lsn = wal->start_lsn;
	info->segments = (uint32_t)wal->nsegs;
	info->spares = (uint32_t)wal->nspares;
	pthread_mutex_unlock(&wal->seg_mu);
	info->open_groups = wal->open_groups;
	info->open_bytes = wal->open_bytes;
	info->open_erased_bytes = wal->open_erased;
	info->open_ns = wal->open_ns;
	info->appends = atomic_load(&wal->m.appends);
	info->append_bytes = atomic_load(&wal->m.append_bytes);
	info->writes = atomic_load(&wal->m.writes);
	info->syncs = atomic_load(&wal->m.syncs);
	info->sync_ns_total = atomic_load(&wal->m.sync_ns);
	info->wait_ns_total = atomic_load(&wal->m.wait_ns);
	pbox_hist_snap s;
	pbox_hist_snapshot(&wal->m.groups_per_sync, &s);
	info->group_commit_p50 = pbox_hist_quantile(&s, 0.5);
	info->group_commit_p99 = pbox_hist_quantile(&s, 0.99);
	info->group_commit_max = s.max;
	pbox_hist_snapshot(&wal->m.sync_us, &s);
	info->sync_us_p50 = pbox_hist_quantile(&s, 0.5);
	info->sync_us_p99 = pbox_hist_quantile(&s, 0.99);
	info->sync_us_max = s.max;
}
