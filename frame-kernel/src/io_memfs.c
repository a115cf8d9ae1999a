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
 *   - A power cut resolves the pending lists by mode: drop all, keep each write with
 *     probability 1/2, tear the last few writes of each file at 512-byte sector granularity
 *     (earlier ones survive), or keep all. The metadata journal keeps a random prefix (all
 *     or nothing for DROP_ALL/KEEP_ALL): journaling file systems commit metadata in order.
 *     Then the current state is reset to the durable one and every descriptor is closed.
 *
 * Locking: one mutex protects the whole file system; each call takes it once. Tests care
 * about semantics, not speed.
 */
#define _GNU_SOURCE
#include <pbox/alloc.h>
#include <pbox/io.h>
#include <pbox/status.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512
#define MAX_FDS 1024
#define TEAR_WRITES 3 /* how many of a file's last writes TEAR_LAST tears */

enum { OP_WRITE, OP_TRUNC, OP_ALLOC };

struct dop { /* one pending data change of an inode */
	int type;
	uint64_t off, len; /* OP_TRUNC: len is the new size */
	unsigned char *data; /* OP_WRITE */
	struct dop *next;
};

struct image {
	unsigned char *buf;
	uint64_t size, cap;
};

struct inode {
	struct image cur, dur;
	struct dop *pend_head, *pend_tail;
	uint64_t pend_bytes;
	int lock_fd; /* fd holding the advisory lock, or -1 */
	unsigned open_count;
	struct inode *next_all; /* every inode, for cleanup */
};

struct dent { /* a name in a namespace; ino == NULL for a directory */
	char *path;
	struct inode *ino;
};

struct ns {
	struct dent *v;
	size_t n, cap;
};

enum { M_CREATE, M_UNLINK, M_RENAME, M_MKDIR };
struct mop { /* one pending metadata change */
	int type;
	char *a, *b; /* path (and rename target) */
	struct inode *ino; /* M_CREATE */
	struct mop *next;
};

struct fdent {
	struct inode *ino; /* NULL: free slot */
	int flags;
};

struct pbox_io_memfs {
	pbox_io io; /* first: the seam's functions get &fs->io */
	pthread_mutex_t mu;
	struct ns cur, dur;
	struct mop *mhead, *mtail;
	struct inode *all;
	struct fdent fds[MAX_FDS];
	bool dead; /* powered off: every call fails until restart */
};

static struct pbox_io_memfs *FS(pbox_io *io)
{
	return (struct pbox_io_memfs *)io;
}

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Normalise into out: absolute, no repeated or trailing slashes, no "./" prefix. */
static int norm_path(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	if (!in || !*in)
		return -ENOENT;
	while (in[0] == '.' && in[1] == '/')
		in += 2;
	if (!strcmp(in, "."))
		in = "";
	out[o++] = '/';
	for (const char *p = in; *p; p++) {
		if (*p == '/' && out[o - 1] == '/')
			continue;
		if (o + 1 >= cap)
			return -ENAMETOOLONG;
		out[o++] = *p;
	}
	if (o > 1 && out[o - 1] == '/')
		o--;
	out[o] = 0;
	return 0;
}

static void parent_of(const char *path, char *out)
{
	strcpy(out, path);
	char *s = strrchr(out, '/');
	if (s == out)
		out[1] = 0;
	else
		*s = 0;
}

static struct dent *ns_find(struct ns *ns, const char *path)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!strcmp(ns->v[i].path, path))
			return &ns->v[i];
	return NULL;
}

static int ns_put(struct ns *ns, const char *path, struct inode *ino)
{
	struct dent *d = ns_find(ns, path);
	if (d) {
		d->ino = ino;
		return 0;
	}
	if (ns->n == ns->cap) {
		size_t nc = ns->cap ? ns->cap * 2 : 16;
		struct dent *v = pbox_realloc(ns->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = nc;
	}
	char *p = pbox_strdup(path);
	if (!p)
		return -ENOMEM;
	ns->v[ns->n].path = p;
	ns->v[ns->n].ino = ino;
	ns->n++;
	return 0;
}

static void ns_del(struct ns *ns, const char *path)
{
	struct dent *d = ns_find(ns, path);
	if (!d)
		return;
	pbox_free(d->path);
	*d = ns->v[--ns->n];
}

static void ns_clear(struct ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		pbox_free(ns->v[i].path);
	ns->n = 0;
}

static int ns_copy(struct ns *dst, const struct ns *src)
{
	ns_clear(dst);
	for (size_t i = 0; i < src->n; i++) {
		int r = ns_put(dst, src->v[i].path, src->v[i].ino);
		if (r)
			return r;
	}
	return 0;
}

static bool is_dir(struct ns *ns, const char *path)
{
	if (!strcmp(path, "/"))
		return true;
	struct dent *d = ns_find(ns, path);
	return d && !d->ino;
}

static int img_resize(struct image *im, uint64_t size)
{
	if (size > im->cap) {
		uint64_t nc = im->cap ? im->cap : 4096;
		while (nc < size)
			nc *= 2;
		unsigned char *b = pbox_realloc(im->buf, nc);
		if (!b)
			return -ENOMEM;
		im->buf = b;
		im->cap = nc;
	}
	if (size > im->size)
		memset(im->buf + im->size, 0, size - im->size);
	im->size = size;
	return 0;
}

static int img_write(struct image *im, const void *data, uint64_t off, uint64_t len)
{
	if (off + len > im->size) {
		int r = img_resize(im, off + len);
		if (r)
			return r;
	}
	memcpy(im->buf + off, data, len);
	return 0;
}

static int img_apply(struct image *im, const struct dop *op)
{
	switch (op->type) {
	case OP_WRITE:
		return img_write(im, op->data, op->off, op->len);
	case OP_TRUNC:
		return img_resize(im, op->len);
	default: /* OP_ALLOC */
		return op->off + op->len > im->size ? img_resize(im, op->off + op->len) : 0;
	}
}

static void free_dop(struct dop *op)
{
	pbox_free(op->data);
	pbox_free(op);
}

static void pend_clear(struct inode *ino)
{
	struct dop *op = ino->pend_head;
	while (op) {
		struct dop *nx = op->next;
		free_dop(op);
		op = nx;
	}
	ino->pend_head = ino->pend_tail = NULL;
	ino->pend_bytes = 0;
}

/* Apply a change to the current image and queue it (or, durable, to both images). */
static int change(struct inode *ino, int type, const void *data, uint64_t off, uint64_t len,
		  bool durable)
{
	struct dop op = { .type = type, .off = off, .len = len };
	op.data = (unsigned char *)data;
	int r = img_apply(&ino->cur, &op);
	if (r)
		return r;
	if (durable)
		return img_apply(&ino->dur, &op);
	struct dop *q = pbox_malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = op;
	q->data = NULL;
	q->next = NULL;
	if (type == OP_WRITE) {
		q->data = pbox_malloc(len ? len : 1);
		if (!q->data) {
			pbox_free(q);
			return -ENOMEM;
		}
		memcpy(q->data, data, len);
		ino->pend_bytes += len;
	}
	if (ino->pend_tail)
		ino->pend_tail->next = q;
	else
		ino->pend_head = q;
	ino->pend_tail = q;
	return 0;
}

static int sync_inode(struct inode *ino)
{
	for (struct dop *op = ino->pend_head; op; op = op->next) {
		int r = img_apply(&ino->dur, op);
		if (r)
			return r;
	}
	pend_clear(ino);
	return 0;
}

static struct inode *new_inode(struct pbox_io_memfs *fs)
{
	struct inode *ino = pbox_calloc(1, sizeof(*ino));
	if (!ino)
		return NULL;
	ino->lock_fd = -1;
	ino->next_all = fs->all;
	fs->all = ino;
	return ino;
}

static int journal(struct pbox_io_memfs *fs, int type, const char *a, const char *b,
		   struct inode *ino)
{
	struct mop *m = pbox_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->type = type;
	m->ino = ino;
	m->a = pbox_strdup(a);
	m->b = b ? pbox_strdup(b) : NULL;
	if (!m->a || (b && !m->b)) {
		pbox_free(m->a);
		pbox_free(m->b);
		pbox_free(m);
		return -ENOMEM;
	}
	if (fs->mtail)
		fs->mtail->next = m;
	else
		fs->mhead = m;
	fs->mtail = m;
	return 0;
}

static int mop_apply(struct ns *ns, const struct mop *m)
{
	switch (m->type) {
	case M_CREATE:
		return ns_put(ns, m->a, m->ino);
	case M_MKDIR:
		return ns_put(ns, m->a, NULL);
	case M_UNLINK:
		ns_del(ns, m->a);
		return 0;
	default: { /* M_RENAME */
		struct dent *d = ns_find(ns, m->a);
		if (!d)
			return 0; /* source never became durable: nothing to move */
		struct inode *ino = d->ino;
		ns_del(ns, m->a);
		return ns_put(ns, m->b, ino);
	}
	}
}

static void mop_free(struct mop *m)
{
	pbox_free(m->a);
	pbox_free(m->b);
	pbox_free(m);
}

static bool mop_touches(const struct mop *m, const char *dir)
{
	char p[4096];
	parent_of(m->a, p);
	if (!strcmp(p, dir))
		return true;
	if (m->b) {
		parent_of(m->b, p);
		if (!strcmp(p, dir))
			return true;
	}
	return false;
}

static struct fdent *get_fd(struct pbox_io_memfs *fs, int fd)
{
	if (fd < 0 || fd >= MAX_FDS || !fs->fds[fd].ino)
		return NULL;
	return &fs->fds[fd];
}

/* ---- the seam's functions -------------------------------------------------------------- */

/* Take the lock unless the power is off (between a power cut and restart): then -EIO, as
 * from a machine that is down. */
static int lock_live(struct pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	if (fs->dead) {
		pthread_mutex_unlock(&fs->mu);
		return -1;
	}
	return 0;
}


static int mf_open(pbox_io *io, const char *path, int flags, unsigned mode)
{
	(void)mode;
	struct pbox_io_memfs *fs = FS(io);
	char p[4096], par[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (flags & O_DIRECTORY)
		return -EINVAL; /* directories are addressed by path (fsync_dir, listdir) */
	if (lock_live(fs))
		return -EIO;
	struct dent *d = ns_find(&fs->cur, p);
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
		parent_of(p, par);
		if (!is_dir(&fs->cur, par)) {
			r = -ENOENT;
			goto out;
		}
		ino = new_inode(fs);
		if (!ino) {
			r = -ENOMEM;
			goto out;
		}
		if ((r = ns_put(&fs->cur, p, ino)) || (r = journal(fs, M_CREATE, p, NULL, ino)))
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
	    (r = change(ino, OP_TRUNC, NULL, 0, 0, false)))
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
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
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
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
	int64_t r = -EBADF;
	if (f) {
		struct image *im = &f->ino->cur;
		uint64_t n = off >= im->size ? 0 : im->size - off;
		if (n > len)
			n = len;
		if (n)
			memcpy(buf, im->buf + off, n);
		r = (int64_t)n;
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int64_t mf_pwrite(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
	int64_t r = -EBADF;
	if (f) {
		if ((f->flags & O_ACCMODE) == O_RDONLY)
			r = -EBADF;
		else
			r = change(f->ino, OP_WRITE, buf, off, len, (f->flags & O_DSYNC) != 0);
		if (r == 0)
			r = (int64_t)len;
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_sync(pbox_io *io, int fd)
{
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
	int r = f ? sync_inode(f->ino) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_ftruncate(pbox_io *io, int fd, uint64_t len)
{
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
	int r = f ? change(f->ino, OP_TRUNC, NULL, 0, len, false) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fallocate(pbox_io *io, int fd, uint64_t off, uint64_t len)
{
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
	int r = f ? change(f->ino, OP_ALLOC, NULL, off, len, false) : -EBADF;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fsize(pbox_io *io, int fd, uint64_t *size)
{
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
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
	struct pbox_io_memfs *fs = FS(io);
	char a[4096], b[4096], par[4096];
	int r;
	if ((r = norm_path(from, a, sizeof(a))) || (r = norm_path(to, b, sizeof(b))))
		return r;
	if (lock_live(fs))
		return -EIO;
	struct dent *d = ns_find(&fs->cur, a);
	parent_of(b, par);
	if (!d) {
		r = -ENOENT;
	} else if (!d->ino) {
		r = -EISDIR; /* renaming directories is not needed by pagebox */
	} else if (!is_dir(&fs->cur, par)) {
		r = -ENOENT;
	} else if (is_dir(&fs->cur, b)) {
		r = -EISDIR;
	} else if (strcmp(a, b) != 0) {
		struct inode *ino = d->ino;
		ns_del(&fs->cur, a);
		if (!(r = ns_put(&fs->cur, b, ino)))
			r = journal(fs, M_RENAME, a, b, NULL);
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_unlink(pbox_io *io, const char *path)
{
	struct pbox_io_memfs *fs = FS(io);
	char p[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (lock_live(fs))
		return -EIO;
	struct dent *d = ns_find(&fs->cur, p);
	if (!d)
		r = -ENOENT;
	else if (!d->ino)
		r = -EISDIR;
	else {
		ns_del(&fs->cur, p);
		r = journal(fs, M_UNLINK, p, NULL, NULL);
	}
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_mkdir(pbox_io *io, const char *path, unsigned mode)
{
	(void)mode;
	struct pbox_io_memfs *fs = FS(io);
	char p[4096], par[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (lock_live(fs))
		return -EIO;
	parent_of(p, par);
	if (!strcmp(p, "/") || ns_find(&fs->cur, p))
		r = -EEXIST;
	else if (!is_dir(&fs->cur, par))
		r = -ENOENT;
	else if (!(r = ns_put(&fs->cur, p, NULL)))
		r = journal(fs, M_MKDIR, p, NULL, NULL);
	pthread_mutex_unlock(&fs->mu);
	return r;
}

static int mf_fsync_dir(pbox_io *io, const char *path)
{
	struct pbox_io_memfs *fs = FS(io);
	char p[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (lock_live(fs))
		return -EIO;
	if (!is_dir(&fs->cur, p)) {
		r = -ENOENT;
		goto out;
	}
	struct mop **link = &fs->mhead, *prev = NULL;
	while (*link) {
		struct mop *m = *link;
		if (mop_touches(m, p)) {
			if ((r = mop_apply(&fs->dur, m)))
				goto out;
			*link = m->next;
			if (fs->mtail == m)
				fs->mtail = prev;
			mop_free(m);
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
	struct pbox_io_memfs *fs = FS(io);
	char p[4096], par[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	if (lock_live(fs))
		return -EIO;
	if (!is_dir(&fs->cur, p)) {
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
		parent_of(fs->cur.v[i].path, par);
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
	struct pbox_io_memfs *fs = FS(io);
	if (lock_live(fs))
		return -EIO;
	struct fdent *f = get_fd(fs, fd);
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

static void free_inode(struct inode *ino)
{
	pend_clear(ino);
	pbox_free(ino->cur.buf);
	pbox_free(ino->dur.buf);
	pbox_free(ino);
}

void pbox_io_memfs_destroy(pbox_io_memfs *fs)
{
	if (!fs)
		return;
	struct inode *ino = fs->all;
	while (ino) {
		struct inode *nx = ino->next_all;
		free_inode(ino);
		ino = nx;
	}
	struct mop *m = fs->mhead;
	while (m) {
		struct mop *nx = m->next;
		mop_free(m);
		m = nx;
	}
	ns_clear(&fs->cur);
	ns_clear(&fs->dur);
	pbox_free(fs->cur.v);
	pbox_free(fs->dur.v);
	pthread_mutex_destroy(&fs->mu);
	pbox_free(fs);
}

pbox_io *pbox_io_memfs_io(pbox_io_memfs *fs)
{
	return &fs->io;
}

/* Apply op to the durable image keeping each 512-byte sector of it with probability 1/2. */
static void apply_torn(struct image *im, const struct dop *op, uint64_t *rng)
{
	if (op->type != OP_WRITE) {
		if (rng_next(rng) & 1)
			img_apply(im, op);
		return;
	}
	uint64_t pos = op->off, end = op->off + op->len;
	while (pos < end) {
		uint64_t sec_end = (pos / SECTOR + 1) * SECTOR;
		if (sec_end > end)
			sec_end = end;
		if (rng_next(rng) & 1)
			img_write(im, op->data + (pos - op->off), pos, sec_end - pos);
		pos = sec_end;
	}
}

uint64_t pbox_io_memfs_powercut(pbox_io_memfs *fs, pbox_powercut_mode mode, uint64_t seed)
{
	uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
	if (!rng)
		rng = 1;
	uint64_t pending = 0;
	pthread_mutex_lock(&fs->mu);
	for (struct inode *ino = fs->all; ino; ino = ino->next_all) {
		size_t nops = 0;
		for (struct dop *op = ino->pend_head; op; op = op->next)
			nops++;
		size_t i = 0;
		for (struct dop *op = ino->pend_head; op; op = op->next, i++) {
			pending += op->type == OP_WRITE;
			switch (mode) {
			case PBOX_POWERCUT_DROP_ALL:
				break;
			case PBOX_POWERCUT_KEEP_SUBSET:
				if (rng_next(&rng) & 1)
					img_apply(&ino->dur, op);
				break;
			case PBOX_POWERCUT_TEAR_LAST:
				if (i + TEAR_WRITES < nops)
					img_apply(&ino->dur, op);
				else
					apply_torn(&ino->dur, op, &rng);
				break;
			case PBOX_POWERCUT_KEEP_ALL:
				img_apply(&ino->dur, op);
				break;
			}
		}
		pend_clear(ino);
		/* the current image becomes the durable one */
		img_resize(&ino->cur, 0);
		if (img_resize(&ino->cur, ino->dur.size) == 0 && ino->dur.size)
			memcpy(ino->cur.buf, ino->dur.buf, ino->dur.size);
		ino->lock_fd = -1;
		ino->open_count = 0;
	}
	/* metadata journal: a prefix survives */
	size_t nm = 0;
	for (struct mop *m = fs->mhead; m; m = m->next)
		nm++;
	size_t keep = mode == PBOX_POWERCUT_KEEP_ALL   ? nm
		      : mode == PBOX_POWERCUT_DROP_ALL ? 0
						       : (size_t)(rng_next(&rng) % (nm + 1));
	struct mop *m = fs->mhead;
	for (size_t i = 0; m; i++) {
		struct mop *nx = m->next;
		if (i < keep)
			mop_apply(&fs->dur, m);
		mop_free(m);
		m = nx;
	}
	fs->mhead = fs->mtail = NULL;
	ns_copy(&fs->cur, &fs->dur);
	for (int i = 0; i < MAX_FDS; i++)
		fs->fds[i].ino = NULL;
	fs->dead = true;
	/* free inodes no name reaches any more */
	struct inode **link = &fs->all;
	while (*link) {
		struct inode *ino = *link;
		bool named = false;
		for (size_t i = 0; i < fs->dur.n && !named; i++)
			named = fs->dur.v[i].ino == ino;
		if (!named) {
			*link = ino->next_all;
			free_inode(ino);
		} else {
			link = &ino->next_all;
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return pending;
}

void pbox_io_memfs_restart(pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	fs->dead = false;
	pthread_mutex_unlock(&fs->mu);
}

uint64_t pbox_io_memfs_unsynced_bytes(pbox_io_memfs *fs)
{
	uint64_t n = 0;
	pthread_mutex_lock(&fs->mu);
	for (struct inode *ino = fs->all; ino; ino = ino->next_all)
		n += ino->pend_bytes;
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int64_t pbox_io_memfs_peek(pbox_io_memfs *fs, const char *path, void *buf, size_t len,
			   uint64_t off)
{
	char p[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	pthread_mutex_lock(&fs->mu);
	struct dent *d = ns_find(&fs->cur, p);
	int64_t n = -ENOENT;
	if (d && d->ino) {
		struct image *im = &d->ino->cur;
		uint64_t avail = off >= im->size ? 0 : im->size - off;
		n = (int64_t)(avail < len ? avail : len);
		if (n)
			memcpy(buf, im->buf + off, (size_t)n);
	}
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int pbox_io_memfs_poke(pbox_io_memfs *fs, const char *path, const void *buf, size_t len,
		       uint64_t off)
{
	char p[4096];
	int r = norm_path(path, p, sizeof(p));
	if (r)
		return r;
	pthread_mutex_lock(&fs->mu);
	struct dent *d = ns_find(&fs->cur, p);
	if (!d || !d->ino)
		r = -ENOENT;
	else if (!(r = img_write(&d->ino->cur, buf, off, len)))
		r = img_write(&d->ino->dur, buf, off, len);
	pthread_mutex_unlock(&fs->mu);
	return r;
}
