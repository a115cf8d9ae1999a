/*
 * datafile.c — the data file: growth in 16 MiB chunks, the superblock writes, and emptying
 * the log directory of a creation that crashed.
 *
 * Invariants:
 *   - file_pages only grows, and only under grow_mu, after the fallocate succeeded; readers
 *     (faults) load it without the lock (acquire) and need only a recent value.
 *   - A superblock is written whole into the copy its generation selects (even -> page 0,
 *     odd -> page 1) and fdatasynced before sb_gen and redo_start move: the other copy is
 *     never touched, so a torn write leaves the previous generation valid.
 * Locking: grow_mu for growth; write_super runs under ckpt_mu (checkpoints) or before the
 * store is shared (creation).
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROW_CHUNK_BYTES (16ull << 20)

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
int pbox__store_clear_dir(pbox_io *io, const char *dir)
{
	clear_ctx c = { io, dir, 0 };
	int r = io->listdir(io, dir, clear_one, &c);
	if (!r)
		r = c.r;
	return r ? r : io->fsync_dir(io, dir);
}

/* ---- superblock ------------------------------------------------------------------------ */

int pbox__store_write_super(pbox_store *st, pbox_lsn redo_start, pbox_lsn logical_start)
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
	st64(p + SB_LOGICAL, logical_start < redo_start ? logical_start : 0);
	pbox__page_seal(p, ps);
	int r = pbox_io_pwrite_full(st->io, st->data_fd, p, ps, (gen % 2) * ps);
	if (!r)
		r = st->io->fdatasync(st->io, st->data_fd);
	pbox_free(p);
	if (r)
		return r;
	st->sb_gen = gen;
	atomic_store(&st->redo_start, redo_start);
	atomic_store(&st->logical_start, logical_start < redo_start ? logical_start : redo_start);
	return 0;
}
