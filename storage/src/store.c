/*
 * store.c — opening, creating and closing a store; the superblock; the data file; recovery;
 * checkpoints; statistics.
 *
 * Open:
 *   1. take the directory lock (LOCK, flock): a second process gets PBOX_ELOCKED;
 *   2. read both superblocks, take the valid one with the higher generation;
 *   3. reserve virtual memory, open the WAL from the superblock's redo start;
 *   4. recovery: redo every complete group from the redo start (mtr.c), then read the meta
 *      page for the allocator's state.
 * Create builds the data file as data.new (meta page, both superblocks, synced) and renames
 * it to data, then syncs the directory: a crash while creating leaves no data file, and the
 * next create starts over (also emptying a log the crashed creation left).
 *
 * Checkpoint (fuzzy; writers continue):
 *   1. under ckpt_lock exclusive: epoch + 1 (the next change of every page logs a full image)
 *      and C = the WAL's end: every group below C is stamped on its pages;
 *   2. write back every page whose dirty LSN is at most C (shared latch held across the
 *      write so no older image can land after a newer one; WAL rule first);
 *   3. fdatasync the data file, make the WAL segment holding C exist (durably), write the
 *      next superblock with redo start C, fdatasync;
 *   4. recycle the WAL before C.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define GROW_CHUNK_BYTES (16ull << 20)

void pbox_store_options_init(pbox_store_options *o)
{
	memset(o, 0, sizeof(*o));
	o->page_size = 4096;
	o->budget_bytes = 256ull << 20;
	o->max_bytes = 1ull << 40;
	o->wal_sync = PBOX_WAL_SYNC_FDATASYNC;
	o->wal_flush_delay_us = 1000;
	o->wal_segment_size = 64ull << 20;
	o->checkpoint_log_bytes = 256ull << 20;
}

uint32_t pbox_store_page_size(const pbox_store *st)
{
	return st->pub.page_size;
}

pbox_wal *pbox_store_wal(pbox_store *st)
{
	return st->wal;
}

__attribute__((format(printf, 2, 3))) static void explain(const pbox_store_options *o,
							    const char *fmt, ...)
{
	if (!o->errbuf || !o->errbuf_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
	va_end(ap);
}

/* ---- data file ----------------------------------------------------------------------- */

int pbox__store_grow(pbox_store *st, uint64_t need_pages)
{
	int r = 0;
	pthread_mutex_lock(&st->grow_mu);
	if (need_pages > st->file_pages) {
		uint64_t chunk = GROW_CHUNK_BYTES / st->pub.page_size;
		uint64_t target = (need_pages + chunk - 1) / chunk * chunk;
		if (target > st->max_pages)
			target = st->max_pages;
		if (target < need_pages)
			r = PBOX_ENOSPC;
		else if (!(r = st->io->fallocate(st->io, st->data_fd, 0,
						 target * st->pub.page_size)))
			atomic_store_explicit(&st->file_pages, target, memory_order_release);
	}
	pthread_mutex_unlock(&st->grow_mu);
	return r;
}

typedef struct clear_ctx {
	pbox_io *io;
	const char *dir;
	int r;
} clear_ctx;

static int clear_one(const char *name, void *arg)
{
	clear_ctx *c = arg;
	char path[4400];
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	int r = c->io->unlink(c->io, path);
	if (r && r != -ENOENT && !c->r)
		c->r = r;
	return 0;
}

/* Remove every file in dir (the WAL directory of a store being created). */
static int clear_dir(pbox_io *io, const char *dir)
{
	clear_ctx c = { io, dir, 0 };
	int r = io->listdir(io, dir, clear_one, &c);
	if (!r)
		r = c.r;
	return r ? r : io->fsync_dir(io, dir);
}

/* ---- superblock ------------------------------------------------------------------------ */

static int write_super(pbox_store *st, pbox_lsn redo_start)
{
	uint32_t ps = st->pub.page_size;
	unsigned char *p = pbox_aligned_alloc(4096, ps);
	if (!p)
		return -ENOMEM;
	uint64_t gen = st->sb_gen + 1;
	pbox__page_init(p, ps, gen % 2, PBOX_PAGE_TYPE_SUPER);
	st64(p + SB_MAGIC, SUPER_MAGIC);
	st32(p + SB_FORMAT, STORE_FORMAT);
	st32(p + SB_PAGESIZE, ps);
	st64(p + SB_GEN, gen);
	st64(p + SB_REDO, redo_start);
	st64(p + SB_CKPTS, st->checkpoints);
	pbox__page_seal(p, ps);
	int r = pbox_io_pwrite_full(st->io, st->data_fd, p, ps, (gen % 2) * ps);
	if (!r)
		r = st->io->fdatasync(st->io, st->data_fd);
	pbox_free(p);
	if (r)
		return r;
	st->sb_gen = gen;
	atomic_store(&st->redo_start, redo_start);
	return 0;
}

/* One superblock candidate of page size ps at page pid: 0 and its fields, or an error. */
static int read_super_copy(pbox_io *io, int fd, unsigned char *p, pbox_pid pid, uint32_t ps,
			   uint64_t *gen, pbox_lsn *redo, uint64_t *ckpts)
{
	int r = pbox_io_pread_full(io, fd, p, ps, pid * ps);
	if (r)
		return r;
	if (ld64(p + SB_MAGIC) != SUPER_MAGIC || ld32(p + SB_PAGESIZE) != ps ||
	    pbox__page_verify(p, ps, pid) || ld16(p + OFF_TYPE) != PBOX_PAGE_TYPE_SUPER)
		return PBOX_ECORRUPT;
	if (ld32(p + SB_FORMAT) != STORE_FORMAT)
		return PBOX_EVERSION;
	*gen = ld64(p + SB_GEN);
	*redo = ld64(p + SB_REDO);
	*ckpts = ld64(p + SB_CKPTS);
	return 0;
}

/* Both copies, every possible page size (the size is recorded inside the copy); the valid
 * copy with the higher generation wins. PBOX_ECORRUPT if neither is valid, PBOX_EVERSION if
 * either is of another format version. */
static int read_super(pbox_io *io, int fd, uint32_t *ps_out, uint64_t *gen, pbox_lsn *redo,
		      uint64_t *ckpts)
{
	unsigned char *p = pbox_aligned_alloc(4096, 65536);
	if (!p)
		return -ENOMEM;
	bool found = false;
	int err = 0;
	for (pbox_pid pid = 0; pid < 2; pid++) {
		for (uint32_t ps = 4096; ps <= 65536; ps *= 2) {
			uint64_t g, c;
			pbox_lsn rs;
			int r = read_super_copy(io, fd, p, pid, ps, &g, &rs, &c);
			if (r == PBOX_EVERSION || (r && r != PBOX_ECORRUPT && !err))
				err = r;
			if (r || (found && g <= *gen))
				continue;
			found = true;
			*gen = g;
			*ps_out = ps;
			*redo = rs;
			*ckpts = c;
		}
	}
	pbox_free(p);
	/* A copy of another format version means another version wrote to this store: never
	 * open it through the other copy (a later checkpoint would overwrite the newer one). */
	if (err == PBOX_EVERSION)
		return err;
	if (found)
		return 0;
	return PBOX_ECORRUPT;
}

/* ---- automatic checkpoints ------------------------------------------------------------------
 * A thread looks at the log every 50 ms and checkpoints once ac_bytes have accumulated past
 * the redo start. A failed checkpoint poisons the store (pbox_store_checkpoint), after which
 * the thread only waits for close. */

static void *ac_main(void *arg)
{
	pbox_store *st = arg;
	pthread_mutex_lock(&st->ac_mu);
	while (!st->ac_stop) {
		pbox_lsn end = pbox_wal_end_lsn(st->wal);
		pbox_lsn start = atomic_load(&st->redo_start);
		if (!pbox__poisoned(st) && end > start && end - start >= st->ac_bytes) {
			pthread_mutex_unlock(&st->ac_mu);
			if (pbox_store_checkpoint(st) == 0)
				atomic_fetch_add(&st->auto_checkpoints, 1);
			pthread_mutex_lock(&st->ac_mu);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&st->ac_cv, &st->ac_mu, &ts);
	}
	pthread_mutex_unlock(&st->ac_mu);
	return NULL;
}

static int ac_start(pbox_store *st, uint64_t bytes)
{
	st->ac_bytes = bytes;
	int r = pthread_create(&st->ac, NULL, ac_main, st);
	if (r)
		return -r;
	st->ac_running = true;
	return 0;
}

static void ac_stop(pbox_store *st)
{
	if (!st->ac_running)
		return;
	pthread_mutex_lock(&st->ac_mu);
	st->ac_stop = true;
	pthread_cond_signal(&st->ac_cv);
	pthread_mutex_unlock(&st->ac_mu);
	pthread_join(st->ac, NULL);
	st->ac_running = false;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void destroy(pbox_store *st)
{
	ac_stop(st);
	pbox__pool_bg_stop(st);
	if (st->wal)
		pbox_wal_close(st->wal);
	pbox__pool_fini(st);
	if (st->data_fd >= 0)
		st->io->close(st->io, st->data_fd);
	if (st->lock_fd >= 0)
		st->io->close(st->io, st->lock_fd);
	pthread_mutex_destroy(&st->res_mu);
	pthread_mutex_destroy(&st->evict_mu);
	pthread_mutex_destroy(&st->grow_mu);
	pthread_mutex_destroy(&st->ckpt_mu);
	pthread_mutex_destroy(&st->ring_mu);
	pthread_mutex_destroy(&st->bg_mu);
	pthread_cond_destroy(&st->bg_cv);
	pthread_mutex_destroy(&st->ac_mu);
	pthread_cond_destroy(&st->ac_cv);
	pthread_rwlock_destroy(&st->ckpt_lock);
	pbox_free(st->dir);
	pbox_free(st);
}

static int recover(pbox_store *st)
{
	uint64_t t0 = pbox_now_ns();
	pbox_wal_iter *it;
	int r = pbox_wal_iter_open(st->wal, atomic_load(&st->redo_start), &it);
	if (r)
		return r;
	pbox_wal_group g;
	/* per group: the pages seen so far and whether the group applies to each */
	pbox_pid seen[4 * PBOX_MTR_MAX_PAGES];
	int decision[4 * PBOX_MTR_MAX_PAGES];
	while ((r = pbox_wal_iter_next(it, &g)) == 1) {
		st->rec_groups++;
		st->rec_bytes += g.end_lsn - g.lsn;
		unsigned nseen = 0;
		pbox_wal_record rec;
		while (pbox_wal_iter_record(it, &rec) == 1) {
			if (rec.len < 8) {
				r = PBOX_ECORRUPT;
				goto out;
			}
			pbox_pid pid = ld64(rec.data);
			unsigned k = 0;
			while (k < nseen && seen[k] != pid)
				k++;
			if (k == nseen) {
				if (nseen == PBOX_ARRAY_LEN(seen)) {
					r = PBOX_ECORRUPT; /* more pages than any mtr can change */
					goto out;
				}
				seen[nseen] = pid;
				decision[nseen++] = -1;
			}
			bool restored = false;
			if ((r = pbox__redo_apply(st, rec.type, rec.data, rec.len, g.end_lsn,
						  &restored, &decision[k])))
				goto out;
			st->rec_records++;
			st->rec_restored += restored;
		}
	}
out:
	pbox_wal_iter_close(it);
	st->rec_ns = pbox_now_ns() - t0;
	return r < 0 ? r : 0;
}

static int read_meta(pbox_store *st)
{
	bool torn = false;
	int r = pbox__pool_fix_x(st, META_PID, false, &torn);
	if (r)
		return r;
	unsigned char *m = pbox_page_addr(st, META_PID);
	uint64_t count = ld64(m + META_COUNT);
	uint16_t type = ld16(m + OFF_TYPE);
	pbox__pool_unfix_x(st, META_PID);
	if (type != PBOX_PAGE_TYPE_META || count < FIRST_DATA_PID || count > st->max_pages)
		return PBOX_ECORRUPT;
	atomic_store(&st->page_count, count);
	return 0;
}

int pbox_store_open(const char *dir, const pbox_store_options *o, pbox_store **out)
{
	if (!dir || !o || !out)
		return PBOX_EINVAL;
	if (o->create && (o->page_size < 4096 || o->page_size > 65536 ||
			  (o->page_size & (o->page_size - 1))))
		return PBOX_EINVAL;
	for (unsigned i = 0; i < o->nredo; i++)
		if (o->redo[i].type < PBOX_REDO_TYPE_USER || !o->redo[i].fn)
			return PBOX_EINVAL;
	if (o->errbuf && o->errbuf_len)
		o->errbuf[0] = 0;
	pbox_store *st = pbox_aligned_alloc(PBOX_CACHELINE, sizeof(*st));
	if (!st)
		return -ENOMEM;
	memset(st, 0, sizeof(*st));
	st->io = o->io ? o->io : pbox_io_posix();
	st->data_fd = st->lock_fd = -1;
	st->redo = o->redo;
	st->nredo = o->nredo;
	pthread_mutex_init(&st->res_mu, NULL);
	pthread_mutex_init(&st->evict_mu, NULL);
	pthread_mutex_init(&st->grow_mu, NULL);
	pthread_mutex_init(&st->ckpt_mu, NULL);
	pthread_mutex_init(&st->ring_mu, NULL);
	pthread_mutex_init(&st->bg_mu, NULL);
	pthread_cond_init(&st->bg_cv, NULL);
	pthread_mutex_init(&st->ac_mu, NULL);
	pthread_cond_init(&st->ac_cv, NULL);
	pthread_rwlock_init(&st->ckpt_lock, NULL);
	atomic_store(&st->ckpt_epoch, 1);
	pbox_io *io = st->io;
	int r;
	char path[4200];
	if (!(st->dir = pbox_strdup(dir))) {
		r = -ENOMEM;
		goto fail;
	}
	if (o->create) {
		/* the directory's own entry is durable before anything in it can be (a crashed
		 * creation may have left it unsynced: sync it whether or not it is new) */
		r = io->mkdir(io, dir, 0755);
		if ((r && r != -EEXIST) || (r = pbox_io_fsync_parent(io, dir)))
			goto fail;
	}
	/* 1: the lock */
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	st->lock_fd = io->open(io, path, O_RDWR | (o->create ? O_CREAT : 0), 0644);
	if (st->lock_fd < 0) {
		r = st->lock_fd == -ENOENT ? PBOX_ENOTFOUND : st->lock_fd;
		goto fail;
	}
	if ((r = io->lock(io, st->lock_fd))) {
		if (r == -EWOULDBLOCK) {
			r = PBOX_ELOCKED;
			explain(o, "%s is locked by another process (lock file %s)", dir, path);
		}
		goto fail;
	}
	/* 2: the data file and its superblock */
	snprintf(path, sizeof(path), "%s/data", dir);
	bool creating = false;
	int flags = O_RDWR | (o->no_direct_io ? 0 : O_DIRECT);
	st->data_fd = io->open(io, path, flags, 0644);
	if (st->data_fd == -EINVAL && !o->no_direct_io) { /* no O_DIRECT on this file system */
		flags &= ~O_DIRECT;
		st->data_fd = io->open(io, path, flags, 0644);
	}
	if (st->data_fd == -ENOENT && o->create) {
		/* built as data.new and renamed to data once its superblocks are durable, so a
		 * crash while creating leaves no store (the next create starts over), never a
		 * data file without a valid superblock */
		snprintf(path, sizeof(path), "%s/data.new", dir);
		st->data_fd = io->open(io, path, flags | O_CREAT | O_TRUNC, 0644);
		if (st->data_fd == -EINVAL && (flags & O_DIRECT)) {
			flags &= ~O_DIRECT;
			st->data_fd = io->open(io, path, flags | O_CREAT | O_TRUNC, 0644);
		}
		creating = true;
	}
	if (st->data_fd < 0) {
		r = st->data_fd == -ENOENT ? PBOX_ENOTFOUND : st->data_fd;
		goto fail;
	}
	st->direct = (flags & O_DIRECT) != 0;
	if (!st->direct && !o->no_direct_io) /* the fallback is noted once, here */
		explain(o, "note: the file system of %s refuses O_DIRECT; using buffered I/O", path);
	uint32_t ps = o->page_size;
	uint64_t ckpts = 0;
	pbox_lsn redo = 0;
	if (!creating) {
		/* A killed program may have left names (the creation's data.new -> data, the
		 * log's directory) and a superblock written but not synced: make them durable
		 * before trusting them, since this open acknowledges writes and recycles the log
		 * on their strength. */
		if ((r = io->fsync_dir(io, dir)) || (r = io->fdatasync(io, st->data_fd)))
			goto fail;
		uint64_t gen = 0;
		if ((r = read_super(io, st->data_fd, &ps, &gen, &redo, &ckpts))) {
			explain(o, "%s/data: %s", dir,
				r == PBOX_ECORRUPT ? "no valid superblock (both copies damaged)"
						   : pbox_strerror(r));
			goto fail;
		}
		st->sb_gen = gen;
		st->checkpoints = ckpts;
	}
	st->pub.page_size = ps;
	st->pub.page_shift = (uint32_t)__builtin_ctz(ps);
	uint64_t fsize = 0;
	if ((r = io->fsize(io, st->data_fd, &fsize)))
		goto fail;
	st->file_pages = fsize / ps;
	st->max_pages = (o->max_bytes ? o->max_bytes : (1ull << 40)) / ps;
	if (st->max_pages < 64 || st->max_pages > (1ull << 32)) {
		r = PBOX_EINVAL;
		goto fail;
	}
	if (st->file_pages > st->max_pages) {
		r = PBOX_ENOSPC; /* the file is larger than this open allows */
		goto fail;
	}
	/* 3: memory and log */
	if ((r = pbox__pool_init(st, o->budget_bytes ? o->budget_bytes : (256ull << 20))))
		goto fail;
	snprintf(path, sizeof(path), "%s/wal", dir);
	if (creating && (r = io->mkdir(io, path, 0755)) && r != -EEXIST)
		goto fail;
	/* a log left by a creation that crashed belongs to no store: start it afresh */
	if (creating && (r = clear_dir(io, path)))
		goto fail;
	pbox_wal_options wo;
	pbox_wal_options_init(&wo);
	wo.io = io;
	wo.sync = o->wal_sync;
	wo.flush_delay_us = o->wal_flush_delay_us;
	wo.segment_size = o->wal_segment_size ? o->wal_segment_size : (64ull << 20);
	/* room for an mtr of PBOX_MTR_MAX_PAGES full-page images and its records */
	uint64_t need = 4ull * (2 * PBOX_MTR_MAX_PAGES * (uint64_t)(ps + 64) + (1u << 20));
	wo.buffer_size = 8ull << 20;
	while (wo.buffer_size < need)
		wo.buffer_size *= 2;
	wo.start_lsn = creating ? 0 : redo;
	wo.create = creating;
	if ((r = pbox_wal_open(path, &wo, &st->wal))) {
		explain(o, "%s: cannot open the write-ahead log: %s", path, pbox_strerror(r));
		goto fail;
	}
	if (creating) {
		/* meta page, then both superblocks, then make it all durable */
		if ((r = pbox__store_grow(st, FIRST_DATA_PID)))
			goto fail;
		unsigned char *p = pbox_aligned_alloc(4096, ps);
		if (!p) {
			r = -ENOMEM;
			goto fail;
		}
		pbox__page_init(p, ps, META_PID, PBOX_PAGE_TYPE_META);
		st64(p + META_COUNT, FIRST_DATA_PID);
		st64(p + META_FREE_HEAD, PBOX_PID_NONE);
		pbox__page_seal(p, ps);
		r = pbox_io_pwrite_full(io, st->data_fd, p, ps, (uint64_t)META_PID * ps);
		pbox_free(p);
		redo = pbox_wal_end_lsn(st->wal);
		char from[4200];
		snprintf(from, sizeof(from), "%s/data.new", dir);
		snprintf(path, sizeof(path), "%s/data", dir);
		if (r || (r = write_super(st, redo)) || (r = write_super(st, redo)) ||
		    (r = io->rename(io, from, path)) || (r = io->fsync_dir(io, dir)))
			goto fail;
	}
	atomic_store(&st->redo_start, redo);
	/* 4: recovery */
	st->recovering = true;
	r = recover(st);
	if (r)
		explain(o, "%s: recovery failed after %llu groups: %s", dir,
			(unsigned long long)st->rec_groups, pbox_strerror(r));
	if (!r && (r = read_meta(st)))
		explain(o, "%s: the allocator's meta page is damaged: %s", dir, pbox_strerror(r));
	st->recovering = false;
	if (r)
		goto fail;
	if (o->background_evictor && (r = pbox__pool_bg_start(st)))
		goto fail;
	if (o->checkpoint_log_bytes && (r = ac_start(st, o->checkpoint_log_bytes)))
		goto fail;
	*out = st;
	return 0;
fail:
	destroy(st);
	return r;
}

/* ---- checkpoint ---------------------------------------------------------------------------- */

#define CKPT_BATCH 64u

/* Write pages the checkpoint holds shared (WAL rule first), mark them clean, release them.
 * Sealing writes the checksum field in place: the shared latch keeps writers out, and
 * readers never look at the checksum. */
static int ckpt_write(pbox_store *st, const pbox_pid *w, unsigned nw, pbox_lsn max_lsn)
{
	int r = max_lsn ? pbox_wal_wait_durable(st->wal, max_lsn) : 0;
	if (!r)
		r = pbox__pool_write_pages(st, w, nw);
	for (unsigned i = 0; i < nw; i++) {
		frame *f = pbox__frame(st, w[i]);
		if (!r)
			atomic_store_explicit(&f->dirty, 0, memory_order_relaxed);
		pbox_latch_shared_release(&f->latch);
	}
	return r;
}

int pbox_store_checkpoint(pbox_store *st)
{
	int r = pbox__poisoned(st);
	if (r)
		return r;
	pthread_mutex_lock(&st->ckpt_mu);
	/* 1 */
	pthread_rwlock_wrlock(&st->ckpt_lock);
	atomic_fetch_add(&st->ckpt_epoch, 1);
	pbox_lsn c = pbox_wal_end_lsn(st->wal);
	pthread_rwlock_unlock(&st->ckpt_lock);
	/* 2: snapshot the resident set, then write from the snapshot. (Scanning the live set
	 * in slices would miss pages that a concurrent eviction's swap-remove moves into an
	 * already scanned slot.) A dirty page is always resident; a page loaded after the
	 * snapshot was clean then, so any change to it has a dirty LSN above c. */
	pthread_mutex_lock(&st->res_mu);
	uint32_t nsnap = st->res_n;
	pbox_pid *snap = pbox_malloc((nsnap ? nsnap : 1) * sizeof(*snap));
	if (snap)
		memcpy(snap, st->res, nsnap * sizeof(*snap));
	pthread_mutex_unlock(&st->res_mu);
	if (!snap) {
		pthread_mutex_unlock(&st->ckpt_mu);
		return -ENOMEM;
	}
	uint32_t slot = 0;
	for (;;) {
		pbox_pid cand[CKPT_BATCH];
		unsigned n = 0;
		while (slot < nsnap && n < CKPT_BATCH) {
			pbox_pid pid = snap[slot++];
			uint64_t d = atomic_load_explicit(&pbox__frame(st, pid)->dirty,
							  memory_order_relaxed);
			if (d && d <= c)
				cand[n++] = pid;
		}
		bool more = slot < nsnap;
		/* latch shared, re-check; hold across the write. Only the first latch of a batch
		 * may block: a checkpoint that waited for a latch while holding others could
		 * deadlock with an mtr holding that one and waiting for one of ours. */
		pbox_pid w[CKPT_BATCH];
		unsigned nw = 0;
		pbox_lsn max_lsn = 0;
		for (unsigned i = 0; i <= n && !r; i++) {
			frame *f = i < n ? pbox__frame(st, cand[i]) : NULL;
			bool got = f && (nw == 0 ? (pbox_latch_shared_acquire(&f->latch), true)
						 : pbox_latch_shared_try(&f->latch));
			if (!got && nw) { /* write what we hold, then retry this page */
				r = ckpt_write(st, w, nw, max_lsn);
				nw = 0;
				max_lsn = 0;
				if (f && !r) {
					pbox_latch_shared_acquire(&f->latch);
					got = true;
				}
			}
			if (!got)
				continue;
			pbox_frame_state fs = pbox_swip_state(pbox_swip_load(&f->swip));
			uint64_t d = atomic_load_explicit(&f->dirty, memory_order_relaxed);
			if ((fs != PBOX_FRAME_HOT && fs != PBOX_FRAME_COOL) || !d || d > c) {
				pbox_latch_shared_release(&f->latch); /* evicted (and written) meanwhile */
				continue;
			}
			pbox_lsn l = ld64((unsigned char *)pbox_page_addr(st, cand[i]) + OFF_LSN);
			if (l > max_lsn)
				max_lsn = l;
			w[nw++] = cand[i];
		}
		if (nw && !r)
			r = ckpt_write(st, w, nw, max_lsn);
		if (r)
			break;
		if (!more)
			break;
	}
	pbox_free(snap);
	/* 3, 4 */
	if (!r)
		r = st->io->fdatasync(st->io, st->data_fd);
	/* the segment holding C exists, durably, before a superblock names C (C may be
	 * exactly where a segment begins, before anything was written into it) */
	if (!r)
		r = pbox_wal_prepare(st->wal, c);
	if (!r) {
		st->checkpoints++;
		r = write_super(st, c);
	}
	if (!r)
		r = pbox_wal_recycle(st->wal, c);
	if (r)
		pbox__set_poison(st, r);
	pthread_mutex_unlock(&st->ckpt_mu);
	return r;
}

int pbox_store_close(pbox_store *st)
{
	if (!st)
		return 0;
	ac_stop(st);
	pbox__pool_bg_stop(st);
	int r = pbox__poisoned(st);
	if (!r)
		r = pbox_wal_flush(st->wal);
	if (!r)
		r = pbox_store_checkpoint(st);
	int wr = pbox_wal_close(st->wal);
	st->wal = NULL;
	if (!r && wr)
		r = wr;
	destroy(st);
	return r;
}

/* ---- meta slots and statistics ----------------------------------------------------------- */

uint64_t pbox_store_meta_get(pbox_store *st, unsigned slot)
{
	if (slot >= PBOX_META_SLOTS)
		return 0;
	for (;;) {
		uint64_t v;
		if (pbox_page_fix_opt(st, META_PID, &v))
			return 0;
		uint64_t val = pbox_latch_opt_load_u64((unsigned char *)pbox_page_addr(st, META_PID) +
						       META_SLOTS + 8 * slot);
		if (pbox_page_validate(st, META_PID, v))
			return val;
	}
}

void pbox_store_get_stats(pbox_store *st, pbox_store_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->page_size = st->pub.page_size;
	s->page_count = atomic_load(&st->page_count);
	for (;;) {
		uint64_t v;
		if (pbox_page_fix_opt(st, META_PID, &v))
			break;
		s->free_pages = pbox_latch_opt_load_u64(
			(unsigned char *)pbox_page_addr(st, META_PID) + META_FREE_COUNT);
		if (pbox_page_validate(st, META_PID, v))
			break;
	}
	s->budget_bytes = atomic_load(&st->budget_pages) * st->pub.page_size;
	s->resident_pages = atomic_load(&st->resident);
	s->resident_bytes = s->resident_pages * st->pub.page_size;
	pthread_mutex_lock(&st->res_mu);
	for (uint32_t i = 0; i < st->res_n; i++)
		s->dirty_pages += atomic_load_explicit(&pbox__frame(st, st->res[i])->dirty,
						       memory_order_relaxed) != 0;
	pthread_mutex_unlock(&st->res_mu);
	s->direct_io = st->direct;
	s->redo_start = atomic_load(&st->redo_start);
	s->wal_end = pbox_wal_end_lsn(st->wal);
	s->wal_durable = pbox_wal_durable_lsn(st->wal);
	pthread_mutex_lock(&st->ckpt_mu);
	s->checkpoints = st->checkpoints;
	s->auto_checkpoints = atomic_load(&st->auto_checkpoints);
	pthread_mutex_unlock(&st->ckpt_mu);
	s->recovery_groups = st->rec_groups;
	s->recovery_records = st->rec_records;
	s->recovery_bytes = st->rec_bytes;
	s->recovery_pages_restored = st->rec_restored;
	s->recovery_ns = st->rec_ns;
	for (unsigned i = 0; i < NSTRIPES; i++) {
		stripe *p = &st->stripes[i];
		s->hits += atomic_load_explicit(&p->hits, memory_order_relaxed);
		s->misses += atomic_load_explicit(&p->misses, memory_order_relaxed);
		s->reads += atomic_load_explicit(&p->reads, memory_order_relaxed);
		s->writes += atomic_load_explicit(&p->writes, memory_order_relaxed);
		s->evictions += atomic_load_explicit(&p->evictions, memory_order_relaxed);
		s->reheats += atomic_load_explicit(&p->reheats, memory_order_relaxed);
		s->prefetches += atomic_load_explicit(&p->prefetches, memory_order_relaxed);
	}
}
