/*
 * io_memfs.c — an in-memory file system implementing the I/O seam, for crash tests.
 *
 * Model (what a disk with a volatile write cache and a journaling file system may do):
 *   - Each file (inode) has a durable image and a current image. Reads see the current
 *     image. Every data change (pwrite, ftruncate, fallocate, O_TRUNC) is applied to the
 *     current image at once and also queued, in order, on the inode's pending list.
 *     fsync/fdatasync replays the pending list onto the durable image and empties it.
 *     A write through an O_DSYNC descriptor is durable at once.
 *   - Names (create, rename, unlink, mkdir) change the current namespace at once and are
 *     queued, in order, on one global metadata journal. fsync_dir(D) makes durable every
 *     queued change that touches D (as parent of any path involved), in order.
 *   - A power cut resolves the pending lists by mode (pbox_powercut_mode): drop all; keep,
 *     lose or tear each write; tear the last few writes of each file and some earlier ones;
 *     or keep all. Tearing keeps each 512-byte sector or not. A kept write that did not
 *     extend the file when made never extends the durable size (the truncate or fallocate
 *     that made room may be the part that was lost). The metadata journal keeps a random
 *     prefix (all or nothing for DROP_ALL/KEEP_ALL): journaling file systems commit metadata
 *     in order; then names whose directory is not durable are dropped. The current state is
 *     reset to the durable one and every descriptor is closed.
 *   - A process crash (pbox_io_memfs_crash, or armed) closes every descriptor and lock and
 *     leaves all of it pending: the next program sees everything, durable or not, and a
 *     later power cut can still lose what nobody synced.
 *   - Either can be armed to happen at the nth state-changing call (pbox_io_memfs_arm), so
 *     tests can cut at every step of an operation.
 *
 * Locking: one mutex (fs->mu) protects the whole file system; each call takes it once.
 * Tests care about semantics, not speed. Files: io_memfs.c (the seam's functions),
 * io_memfs_model.c (images, journal, cuts and crashes), io_memfs_int.h (their types).
 */
#define _GNU_SOURCE
#include "io_memfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static int mf_open(pbox_io *io, const char *path, int flags, unsigned mode)
{
	(void)mode;
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char p[4096], par[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (flags & O_DIRECTORY)
		return -EINVAL; /* directories are addressed by path (fsync_dir, listdir) */
	if ((flags & (O_CREAT | O_TRUNC)) ? pbox__mfs_lock_change(fs) : pbox__mfs_lock_live(fs))
		return -EIO;
	struct dent *d = pbox__mfs_ns_find(&fs->cur, p);
	struct inode *ino = NULL;
	if (d && !d->ino) {
		r = -EISDIR;
		goto out;
	}
	if (d) {
		if ((flags & O_CREAT) && (flags & O_EXCL)) {
			r = -EEXIST;
			goto out;
		}
		ino = d->ino;
	} else {
		if (!(flags & O_CREAT)) {
			r = -ENOENT;
			goto out;
		}
		pbox__mfs_parent_of(p, par);
		if (!pbox__mfs_is_dir(&fs->cur, par)) {
			r = -ENOENT;
			goto out;
		}
		ino = pbox__mfs_new_inode(fs);
		if (!ino) {
			r = -ENOMEM;
			goto out;
		}
		if ((r = pbox__mfs_ns_put(&fs->cur, p, ino)) || (r = pbox__mfs_journal(fs, M_CREATE, p, NULL, ino)))
			goto out;
	}
	int fd = -1;
	for (int i = 0; i < MAX_FDS; i++)
		if (!fs->fds[i].ino) {
			fd = i;
			break;
		}
	if (fd < 0) {
		r = -EMFILE;
		goto out;
	}
	if ((flags & O_TRUNC) && ino->cur.size &&
	    (r = pbox__mfs_change(ino, OP_TRUNC, NULL, 0, 0, false)))
		goto out;
	fs->fds[fd].ino = ino;
	fs->fds[fd].flags = flags;
	ino->open_count++;
	r = fd;
out:
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_close(pbox_io *io, int fd)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_live(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = -EBADF;
	if (f) {
		if (f->ino->lock_fd == fd)
			f->ino->lock_fd = -1;
		f->ino->open_count--;
		f->ino = NULL;
		r = 0;
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int64_t mf_pread(pbox_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_live(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int64_t r = -EBADF;
	if (f) {
		r = (int64_t)pbox__mfs_img_read(&f->ino->cur, buf, len, off);
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int64_t mf_pwrite(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int64_t r = -EBADF;
	if (f) {
		if ((f->flags & O_ACCMODE) == O_RDONLY)
			r = -EBADF;
		else
			r = pbox__mfs_change(f->ino, OP_WRITE, buf, off, len, (f->flags & O_DSYNC) != 0);
		if (r == 0)
			r = (int64_t)len;
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_sync(pbox_io *io, int fd)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = f ? pbox__mfs_sync_inode(f->ino) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_ftruncate(pbox_io *io, int fd, uint64_t len)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = f ? pbox__mfs_change(f->ino, OP_TRUNC, NULL, 0, len, false) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fallocate(pbox_io *io, int fd, uint64_t off, uint64_t len)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = f ? pbox__mfs_change(f->ino, OP_ALLOC, NULL, off, len, false) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fsize(pbox_io *io, int fd, uint64_t *size)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_live(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = -EBADF;
	if (f) {
		*size = f->ino->cur.size;
		r = 0;
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_rename(pbox_io *io, const char *from, const char *to)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char a[4096], b[4096], par[4096];
	int r;
	if ((r = pbox__mfs_norm_path(from, a, sizeof(a))) || (r = pbox__mfs_norm_path(to, b, sizeof(b))))
		return r;
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct dent *d = pbox__mfs_ns_find(&fs->cur, a);
	pbox__mfs_parent_of(b, par);
	if (!d) {
		r = -ENOENT;
	} else if (!d->ino) {
		r = -EISDIR; /* renaming directories is not needed by pagebox */
	} else if (!pbox__mfs_is_dir(&fs->cur, par)) {
		r = -ENOENT;
	} else if (pbox__mfs_is_dir(&fs->cur, b)) {
		r = -EISDIR;
	} else if (strcmp(a, b) != 0) {
		struct inode *ino = d->ino;
		pbox__mfs_ns_del(&fs->cur, a);
		if (!(r = pbox__mfs_ns_put(&fs->cur, b, ino)))
			r = pbox__mfs_journal(fs, M_RENAME, a, b, NULL);
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_unlink(pbox_io *io, const char *path)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char p[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	struct dent *d = pbox__mfs_ns_find(&fs->cur, p);
	if (!d)
		r = -ENOENT;
	else if (!d->ino)
		r = -EISDIR;
	else {
		pbox__mfs_ns_del(&fs->cur, p);
		r = pbox__mfs_journal(fs, M_UNLINK, p, NULL, NULL);
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_mkdir(pbox_io *io, const char *path, unsigned mode)
{
	(void)mode;
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char p[4096], par[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	pbox__mfs_parent_of(p, par);
	if (!strcmp(p, "/") || pbox__mfs_ns_find(&fs->cur, p))
		r = -EEXIST;
	else if (!pbox__mfs_is_dir(&fs->cur, par))
		r = -ENOENT;
	else if (!(r = pbox__mfs_ns_put(&fs->cur, p, NULL)))
		r = pbox__mfs_journal(fs, M_MKDIR, p, NULL, NULL);
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fsync_dir(pbox_io *io, const char *path)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char p[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (pbox__mfs_lock_change(fs))
		return -EIO;
	if (!pbox__mfs_is_dir(&fs->cur, p)) {
		r = -ENOENT;
		goto out;
	}
	struct mop **link = &fs->mhead, *prev = NULL;
	while (*link) {
		struct mop *m = *link;
		if (pbox__mfs_mop_touches(m, p)) {
			if ((r = pbox__mfs_mop_apply(&fs->dur, m)))
				goto out;
			*link = m->next;
			if (fs->mtail == m)
				fs->mtail = prev;
			pbox__mfs_mop_free(m);
		} else {
			prev = m;
			link = &m->next;
		}
	}
out:
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_listdir(pbox_io *io, const char *path, pbox_io_listdir_fn fn, void *arg)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	char p[4096], par[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (pbox__mfs_lock_live(fs))
		return -EIO;
	if (!pbox__mfs_is_dir(&fs->cur, p)) {
		pthread_mutex_unlock(&fs->mu);
		return -ENOENT;
	}
	/* Snapshot the names so the callback may call back into the file system. */
	size_t n = 0;
	char **names = pbox_calloc(fs->cur.n ? fs->cur.n : 1, sizeof(char *));
	if (!names) {
		pthread_mutex_unlock(&fs->mu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < fs->cur.n; i++) {
		pbox__mfs_parent_of(fs->cur.v[i].path, par);
		if (!strcmp(par, p) && strcmp(fs->cur.v[i].path, "/")) {
			const char *base = strrchr(fs->cur.v[i].path, '/') + 1;
			if (!(names[n] = pbox_strdup(base))) {
				r = -ENOMEM;
				break;
			}
			n++;
		}
	}
	pthread_mutex_unlock(&fs->mu);
	for (size_t i = 0; i < n && r == 0; i++)
		r = fn(names[i], arg);
	for (size_t i = 0; i < n; i++)
		pbox_free(names[i]);
	pbox_free(names);
	return r;
}

static int mf_lock(pbox_io *io, int fd)
{
	struct pbox_io_memfs *fs = pbox__mfs_fs(io);
	if (pbox__mfs_lock_live(fs))
		return -EIO;
	struct fdent *f = pbox__mfs_get_fd(fs, fd);
	int r = -EBADF;
	if (f) {
		if (f->ino->lock_fd >= 0 && f->ino->lock_fd != fd)
			r = -EWOULDBLOCK;
		else {
			f->ino->lock_fd = fd;
			r = 0;
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_ring_open(pbox_io *io, unsigned depth, void **ring)
{
	(void)io;
	if (depth == 0 || depth > 4096)
		return PBOX_EINVAL;
	*ring = pbox_malloc(1); /* a token: memfs rings have no state */
	return *ring ? 0 : -ENOMEM;
}

/* Run one request synchronously through io's own functions. */
static int64_t run_req(pbox_io *io, pbox_io_req *q)
{
	switch (q->op) {
	case PBOX_IO_OP_READ:
		return io->pread(io, q->fd, q->buf, q->len, q->off);
	case PBOX_IO_OP_WRITE:
		return io->pwrite(io, q->fd, q->buf, q->len, q->off);
	case PBOX_IO_OP_FSYNC:
		return io->fsync(io, q->fd);
	case PBOX_IO_OP_FDATASYNC:
		return io->fdatasync(io, q->fd);
	default:
		return PBOX_EINVAL;
	}
}

static int mf_ring_submit(pbox_io *io, void *ring, pbox_io_req *reqs, unsigned n)
{
	(void)ring;
	bool cancel = false;
	for (unsigned k = 0; k < n; k++) {
		pbox_io_req *q = &reqs[k];
		q->res = cancel ? -ECANCELED : run_req(io, q);
		bool broken = q->res < 0 ||
			      ((q->op == PBOX_IO_OP_READ || q->op == PBOX_IO_OP_WRITE) &&
			       q->res != (int64_t)q->len);
		cancel = (q->flags & PBOX_IO_LINK) && (cancel || broken);
	}
	return 0;
}

static void mf_ring_close(pbox_io *io, void *ring)
{
	(void)io;
	pbox_free(ring);
}

/* ---- public functions -------------------------------------------------------------------- */

int pbox_io_memfs_create(pbox_io_memfs **out)
{
	struct pbox_io_memfs *fs = pbox_calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->mu, NULL);
	fs->io = (pbox_io){
		.open = mf_open,
		.close = mf_close,
		.pread = mf_pread,
		.pwrite = mf_pwrite,
		.fsync = mf_sync,
		.fdatasync = mf_sync,
		.ftruncate = mf_ftruncate,
		.fallocate = mf_fallocate,
		.fsize = mf_fsize,
		.rename = mf_rename,
		.unlink = mf_unlink,
		.mkdir = mf_mkdir,
		.fsync_dir = mf_fsync_dir,
		.listdir = mf_listdir,
		.lock = mf_lock,
		.ring_open = mf_ring_open,
		.ring_submit = mf_ring_submit,
		.ring_close = mf_ring_close,
		.name = "memfs",
	};
	*out = fs;
	return 0;
}


void pbox_io_memfs_destroy(pbox_io_memfs *fs)
{
	if (!fs)
		return;
	struct inode *ino = fs->all;
	while (ino) {
		struct inode *nx = ino->next_all;
		pbox__mfs_free_inode(ino);
		ino = nx;
	}
	struct mop *m = fs->mhead;
	while (m) {
		struct mop *nx = m->next;
		pbox__mfs_mop_free(m);
		m = nx;
	}
	pbox__mfs_ns_clear(&fs->cur);
	pbox__mfs_ns_clear(&fs->dur);
	pbox_free(fs->cur.v);
	pbox_free(fs->dur.v);
	pthread_mutex_destroy(&fs->mu);
	pbox_free(fs);
}

pbox_io *pbox_io_memfs_io(pbox_io_memfs *fs)
{
	return &fs->io;
}

