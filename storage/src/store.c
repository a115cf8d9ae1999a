/*
 * store.c — opening and closing a store, meta slots, statistics.
 *
 * Open, step by step (one function each):
 *   0. new_store: the object and its locks;
 *   1. open_lock: the directory (with create: made, and its entry synced in its parent), the
 *      LOCK file and its flock (a second process gets PBOX_ELOCKED); a directory holding an
 *      unfinished backup's marker is refused (PBOX_EPARTIAL);
 *   2. open_data: the data file; for an existing store the directory and data are synced
 *      (a killed program may have left them unsynced) before the superblock is chosen;
 *   3. open_log: the pool's memory, the WAL from the superblock's redo start;
 *   3b. create_data (creation only): meta page and both superblocks synced in data.new, then
 *      renamed to data and the directory synced — a crash leaves no data file and the next
 *      create starts over (emptying the log the crashed creation left);
 *   4. open_recover: redo from the redo start (recovery.c), then the meta page;
 *   5. the optional background evictor and automatic-checkpoint threads.
 * Any failure undoes everything (destroy) and, for PBOX_ECORRUPT, the error buffer says
 * where the corruption was detected.
 * Other files: datafile.c (growth, superblock writes), recovery.c, checkpoint.c, pool.c,
 * mtr.c, page.c. Close: stop the threads, flush the log, checkpoint, close the log.
 *
 * Memory ordering: the fields marked "immutable after open" in storage_int.h are written
 * before pbox_store_open returns the pointer and only read afterwards; the caller's handing
 * of the pointer to other threads (a pthread_create, a mutex) orders them. Everything else
 * says in storage_int.h what protects it.
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

/* ---- open / close ------------------------------------------------------------------------ */

static void destroy(pbox_store *st)
{
	pbox__ac_stop(st);
	pbox__pool_bg_stop(st);
	pbox__store_ext_destroy(st);
	pbox__replica_fini(st);
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
	pthread_mutex_destroy(&st->ext_mu);
	pthread_mutex_destroy(&st->tail_mu);
	pbox_free(st->dir);
	pbox_free(st);
}

/* Step 0: a store object with its locks initialised, nothing opened. */
static pbox_store *new_store(const pbox_store_options *o)
{
	pbox_store *st = pbox_aligned_alloc(PBOX_CACHELINE, sizeof(*st));
	if (!st)
		return NULL;
	memset(st, 0, sizeof(*st));
	st->io = o->io ? o->io : pbox_io_posix();
	st->data_fd = st->lock_fd = -1;
	st->redo = o->redo;
	st->nredo = o->nredo;
	atomic_store(&st->backup_floor, PBOX_LSN_NONE);
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
	pthread_mutex_init(&st->ext_mu, NULL);
	pthread_mutex_init(&st->tail_mu, NULL);
	st->replica = o->replica;
	atomic_store(&st->ckpt_epoch, 1);
	return st;
}

/* Step 1: the directory (created, its own entry durable) and its lock. */
static int open_lock(pbox_store *st, const char *dir, const pbox_store_options *o)
{
	pbox_io *io = st->io;
	int r;
	if (o->create) {
		/* the directory's own entry is durable before anything in it can be (a crashed
		 * creation may have left it unsynced: sync it whether or not it is new) */
		r = io->mkdir(io, dir, 0755);
		if ((r && r != -EEXIST) || (r = pbox_io_fsync_parent(io, dir)))
			return r;
	}
	/* a backup cut short (backup.c) is no store, whatever files it holds: refused before
	 * anything (even the lock file) is made in it */
	char path[4200];
	snprintf(path, sizeof(path), "%s/" PBOX_BACKUP_MARKER, dir);
	int fd = io->open(io, path, O_RDONLY, 0);
	if (fd >= 0) {
		io->close(io, fd);
		explain(o, "%s holds an unfinished backup (%s): not a store; take the backup again",
			dir, path);
		return PBOX_EPARTIAL;
	}
	if (fd != -ENOENT && fd != -ENOTDIR)
		return fd;
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	st->lock_fd = io->open(io, path, O_RDWR | (o->create ? O_CREAT : 0), 0644);
	if (st->lock_fd < 0)
		return st->lock_fd == -ENOENT ? PBOX_ENOTFOUND : st->lock_fd;
	if ((r = io->lock(io, st->lock_fd)) == -EWOULDBLOCK) {
		explain(o, "%s is locked by another process (lock file %s)", dir, path);
		return PBOX_ELOCKED;
	}
	return r;
}

/* Step 2: the data file (data, or data.new when creating) and, for an existing store, its
 * superblock: *creating and *redo are set, and the page size (the store's own, or the
 * option's when creating). */
static int open_data(pbox_store *st, const char *dir, const pbox_store_options *o,
		     bool *creating, pbox_lsn *redo)
{
	pbox_io *io = st->io;
	char path[4200];
	snprintf(path, sizeof(path), "%s/data", dir);
	int flags = O_RDWR | (o->no_direct_io ? 0 : O_DIRECT);
	st->data_fd = io->open(io, path, flags, 0644);
	if (st->data_fd == -EINVAL && !o->no_direct_io) { /* no O_DIRECT on this file system */
		flags &= ~O_DIRECT;
		st->data_fd = io->open(io, path, flags, 0644);
	}
	*creating = false;
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
		*creating = true;
	}
	if (st->data_fd < 0)
		return st->data_fd == -ENOENT ? PBOX_ENOTFOUND : st->data_fd;
	st->direct = (flags & O_DIRECT) != 0;
	if (!st->direct && !o->no_direct_io) /* the fallback is noted once, here */
		explain(o, "note: the file system of %s refuses O_DIRECT; using buffered I/O", path);
	uint32_t ps = o->page_size;
	*redo = 0;
	int r;
	if (!*creating) {
		/* A killed program may have left names (the creation's data.new -> data, the
		 * log's directory) and a superblock written but not synced: make them durable
		 * before trusting them, since this open acknowledges writes and recycles the log
		 * on their strength. */
		if ((r = io->fsync_dir(io, dir)) || (r = io->fdatasync(io, st->data_fd)))
			return r;
		uint64_t gen = 0, ckpts = 0;
		pbox_lsn logical = 0;
		if ((r = pbox__store_read_super(io, st->data_fd, &ps, &gen, redo, &logical,
						&ckpts))) {
			explain(o, "%s/data: %s", dir,
				r == PBOX_ECORRUPT ? "no valid superblock (both copies damaged)"
						   : pbox_strerror(r));
			return r;
		}
		st->sb_gen = gen;
		st->checkpoints = ckpts;
		atomic_store(&st->logical_start, logical && logical < *redo ? logical : *redo);
	}
	st->pub.page_size = ps;
	st->pub.page_shift = (uint32_t)__builtin_ctz(ps);
	uint64_t fsize = 0;
	if ((r = io->fsize(io, st->data_fd, &fsize)))
		return r;
	st->file_pages = fsize / ps;
	st->max_pages = (o->max_bytes ? o->max_bytes : (1ull << 40)) / ps;
	if (st->max_pages < 64 || st->max_pages > (1ull << 32))
		return PBOX_EINVAL;
	if (st->file_pages > st->max_pages)
		return PBOX_ENOSPC; /* the file is larger than this open allows */
	return 0;
}

/* Step 3: the pool's memory and the log (emptied first when creating: a log left by a
 * creation that crashed belongs to no store). */
static int open_log(pbox_store *st, const char *dir, const pbox_store_options *o,
		    bool creating, pbox_lsn redo)
{
	pbox_io *io = st->io;
	uint32_t ps = st->pub.page_size;
	int r;
	if ((r = pbox__pool_init(st, o->budget_bytes ? o->budget_bytes : (256ull << 20))))
		return r;
	char path[4200];
	snprintf(path, sizeof(path), "%s/wal", dir);
	if (creating && (r = io->mkdir(io, path, 0755)) && r != -EEXIST)
		return r;
	if (creating && (r = pbox__store_clear_dir(io, path)))
		return r;
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
	pbox_lsn logical = atomic_load(&st->logical_start);
	wo.start_lsn = creating ? 0 : logical && logical < redo ? logical : redo;
	wo.create = creating;
	if ((r = pbox_wal_open(path, &wo, &st->wal)))
		explain(o, "%s: cannot open the write-ahead log: %s", path, pbox_strerror(r));
	return r;
}

/* Step 3b (creation only): meta page, both superblocks (synced), then data.new -> data and
 * the directory synced. *redo = the new log's start. */
static int create_data(pbox_store *st, const char *dir, pbox_lsn *redo)
{
	pbox_io *io = st->io;
	uint32_t ps = st->pub.page_size;
	int r;
	if ((r = pbox__store_grow(st, FIRST_DATA_PID)))
		return r;
	unsigned char *p = pbox_aligned_alloc(4096, ps);
	if (!p)
		return -ENOMEM;
	pbox__page_init(p, ps, META_PID, PBOX_PAGE_TYPE_META);
	st64(p + META_COUNT, FIRST_DATA_PID);
	st64(p + META_FREE_HEAD, PBOX_PID_NONE);
	pbox__page_seal(p, ps);
	r = pbox_io_pwrite_full(io, st->data_fd, p, ps, (uint64_t)META_PID * ps);
	pbox_free(p);
	*redo = pbox_wal_end_lsn(st->wal);
	char from[4200], to[4200];
	snprintf(from, sizeof(from), "%s/data.new", dir);
	snprintf(to, sizeof(to), "%s/data", dir);
	if (r || (r = pbox__store_write_super(st, *redo, *redo)) ||
	    (r = pbox__store_write_super(st, *redo, *redo)) || (r = io->rename(io, from, to)))
		return r;
	return io->fsync_dir(io, dir);
}

/* Step 4: recovery, then the allocator's state from the meta page. */
static int open_recover(pbox_store *st, const char *dir, const pbox_store_options *o)
{
	st->recovering = true;
	int r = pbox__store_recover(st);
	if (r)
		explain(o, "%s: recovery failed after %llu groups: %s", dir,
			(unsigned long long)st->rec_groups, pbox_strerror(r));
	if (!r && (r = pbox__store_read_meta(st)))
		explain(o, "%s: the allocator's meta page is damaged: %s", dir, pbox_strerror(r));
	st->recovering = false;
	/* logical records and the recovered hooks, on a store that is now fully usable; a
	 * replica replays none (re-installing a transaction would append groups of its own to
	 * a log that must mirror its primary's): it only learns which transactions are open */
	if (!r && !st->replica && (r = pbox__store_recover_logical(st)))
		explain(o, "%s: replaying logical records failed: %s", dir, pbox_strerror(r));
	if (!r && st->replica && (r = pbox__replica_init(st, o)))
		explain(o, "%s: reading the replica's open transactions failed: %s", dir,
			pbox_strerror(r));
	return r;
}

int pbox_store_open(const char *dir, const pbox_store_options *o, pbox_store **out)
{
	if (!dir || !o || !out)
		return PBOX_EINVAL;
	if (o->create && (o->page_size < 4096 || o->page_size > 65536 ||
			  (o->page_size & (o->page_size - 1))))
		return PBOX_EINVAL;
	if (o->errbuf && o->errbuf_len)
		o->errbuf[0] = 0;
	if (o->nredo && !o->redo)
		return PBOX_EINVAL;
	if (o->replica && o->create) {
		explain(o, "a replica is opened from a backup of its primary, never created");
		return PBOX_EINVAL;
	}
	for (unsigned i = 0; i < o->nredo; i++) {
		const pbox_redo_handler *h = &o->redo[i];
		if (h->type < PBOX_REDO_TYPE_USER || (!h->fn && !h->logical) ||
		    (h->fn && h->logical)) {
			explain(o, "redo handler %u: type %u is storage's own, or it has no function "
				   "or both a page and a logical function", i, h->type);
			return PBOX_EINVAL;
		}
		for (unsigned j = 0; j < i; j++)
			if (o->redo[j].type == o->redo[i].type) { /* never let one silently win */
				explain(o, "redo handlers %u and %u both claim record type %u (0x%x)", j,
					i, o->redo[i].type, o->redo[i].type);
				return PBOX_EINVAL;
			}
	}
	pbox_store *st = new_store(o);
	if (!st)
		return -ENOMEM;
	int r = 0;
	bool creating = false;
	pbox_lsn redo = 0;
	if (!(st->dir = pbox_strdup(dir)))
		r = -ENOMEM;
	if (!r)
		r = open_lock(st, dir, o); /* 1 */
	if (!r)
		r = open_data(st, dir, o, &creating, &redo); /* 2 */
	if (!r)
		r = open_log(st, dir, o, creating, redo); /* 3 */
	if (!r && creating)
		r = create_data(st, dir, &redo); /* 3b */
	if (!r) {
		atomic_store(&st->redo_start, redo);
		if (creating || !atomic_load(&st->logical_start))
			atomic_store(&st->logical_start, redo);
		r = open_recover(st, dir, o); /* 4 */
	}
	if (!r && o->background_evictor) /* 5: background threads */
		r = pbox__pool_bg_start(st);
	if (!r && o->checkpoint_log_bytes)
		r = pbox__ac_start(st, o->checkpoint_log_bytes);
	if (!r) {
		*out = st;
		return 0;
	}
	if (r == PBOX_ECORRUPT && o->errbuf && o->errbuf_len) { /* say where it was found */
		pbox_corruption c;
		char where[160];
		pbox_corruption_last(&c);
		pbox_corruption_format(&c, where, sizeof(where));
		size_t n = strlen(o->errbuf);
		if (n + 1 < o->errbuf_len)
			snprintf(o->errbuf + n, o->errbuf_len - n, "%s(detected at %s)", n ? " " : "",
				 where);
	}
	destroy(st);
	return r;
}

int pbox_store_close(pbox_store *st)
{
	if (!st)
		return 0;
	pbox__ac_stop(st);
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
	s->logical_start = atomic_load(&st->logical_start);
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
	s->recovery_logical = st->rec_logical;
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

/* ---- extensions ------------------------------------------------------------------------ */

void *pbox_store_ext(pbox_store *st, unsigned slot, const pbox_store_ext_ops *ops, void *arg)
{
	if (!st || slot >= PBOX_STORE_EXT_SLOTS)
		return NULL;
	void *e = atomic_load_explicit(&st->ext[slot], memory_order_acquire);
	if (e || !ops || !ops->create || !ops->destroy)
		return e; /* without ops: a peek */
	pthread_mutex_lock(&st->ext_mu);
	if (!(e = atomic_load_explicit(&st->ext[slot], memory_order_relaxed)) &&
	    (e = ops->create(st, arg))) {
		st->ext_ops[slot] = ops;
		atomic_store_explicit(&st->ext[slot], e, memory_order_release);
	}
	pthread_mutex_unlock(&st->ext_mu);
	return e;
}

pbox_lsn pbox__store_ext_floor(pbox_store *st)
{
	pbox_lsn floor = PBOX_LSN_NONE;
	pthread_mutex_lock(&st->ext_mu);
	for (unsigned i = 0; i < PBOX_STORE_EXT_SLOTS; i++) {
		void *e = atomic_load_explicit(&st->ext[i], memory_order_relaxed);
		if (!e || !st->ext_ops[i]->log_floor)
			continue;
		pbox_lsn f = st->ext_ops[i]->log_floor(e);
		if (f != PBOX_LSN_NONE && (floor == PBOX_LSN_NONE || f < floor))
			floor = f;
	}
	pthread_mutex_unlock(&st->ext_mu);
	return floor;
}

void pbox__store_ext_destroy(pbox_store *st)
{
	for (unsigned i = 0; i < PBOX_STORE_EXT_SLOTS; i++) {
		void *e = atomic_exchange(&st->ext[i], NULL);
		if (e)
			st->ext_ops[i]->destroy(e);
	}
}

void pbox_store_fail(pbox_store *st, int err)
{
	if (st)
		pbox__set_poison(st, err ? err : PBOX_EPOISONED);
}
