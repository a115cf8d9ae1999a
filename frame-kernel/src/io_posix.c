/*
 * io_posix.c — the real implementation of the I/O seam: POSIX calls, and io_uring through
 * liburing for batches. Every function returns -errno on failure. EINTR is retried here so
 * callers never see it.
 */
#define _GNU_SOURCE
#include <pbox/alloc.h>
#include <pbox/io.h>
#include <pbox/status.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int px_open(pbox_io *io, const char *path, int flags, unsigned mode)
{
	(void)io;
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int px_close(pbox_io *io, int fd)
{
	(void)io;
	/* close() must not be retried on EINTR on Linux: the fd is gone either way. */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static int64_t px_pread(pbox_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	(void)io;
	ssize_t n;
	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int64_t px_pwrite(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	(void)io;
	ssize_t n;
	do
		n = pwrite(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int px_fsync(pbox_io *io, int fd)
{
	(void)io;
	/* No retry on failure: after a failed fsync the kernel may have dropped the dirty
	 * pages, and a second fsync can falsely succeed. The caller poisons instead. */
	return fsync(fd) < 0 ? -errno : 0;
}

static int px_fdatasync(pbox_io *io, int fd)
{
	(void)io;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(pbox_io *io, int fd, uint64_t len)
{
	(void)io;
	int r;
	do
		r = ftruncate(fd, (off_t)len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int px_fallocate(pbox_io *io, int fd, uint64_t off, uint64_t len)
{
	(void)io;
	int r;
	do
		r = fallocate(fd, 0, (off_t)off, (off_t)len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
		/* File systems without fallocate: extend with ftruncate (no reservation). */
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -errno;
		if ((uint64_t)st.st_size < off + len && ftruncate(fd, (off_t)(off + len)) < 0)
			return -errno;
		return 0;
	}
	return r < 0 ? -errno : 0;
}

static int px_fsize(pbox_io *io, int fd, uint64_t *size)
{
	(void)io;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int px_rename(pbox_io *io, const char *from, const char *to)
{
	(void)io;
	return rename(from, to) < 0 ? -errno : 0;
}

static int px_unlink(pbox_io *io, const char *path)
{
	(void)io;
	return unlink(path) < 0 ? -errno : 0;
}

static int px_mkdir(pbox_io *io, const char *path, unsigned mode)
{
	(void)io;
	return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

static int px_fsync_dir(pbox_io *io, const char *path)
{
	(void)io;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int px_listdir(pbox_io *io, const char *path, pbox_io_listdir_fn fn, void *arg)
{
	(void)io;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if ((r = fn(e->d_name, arg)) != 0)
			break;
		errno = 0;
	}
	if (!e && errno)
		r = -errno;
	closedir(d);
	return r;
}

static int px_lock(pbox_io *io, int fd)
{
	(void)io;
	/* flock locks belong to the open file description, so a second open() of the same
	 * file in this process conflicts too — exactly what "one writer" needs. */
	return flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
}

static int px_ring_open(pbox_io *io, unsigned depth, void **ring)
{
	(void)io;
	if (depth == 0 || depth > 4096)
		return PBOX_EINVAL;
	struct io_uring *r = pbox_malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	int e = io_uring_queue_init(depth, r, 0);
	if (e < 0) {
		pbox_free(r);
		return e;
	}
	*ring = r;
	return 0;
}

/* Submit reqs[0..n) and wait for all. Chains never straddle a submission: a batch is cut
 * only after a request without PBOX_IO_LINK. */
static int px_ring_submit(pbox_io *io, void *ring, pbox_io_req *reqs, unsigned n)
{
	(void)io;
	struct io_uring *r = ring;
	unsigned cap = r->sq.ring_entries;
	unsigned i = 0;
	while (i < n) {
		unsigned end = i, last_break = i;
		while (end < n && end - i < cap) {
			end++;
			if (!(reqs[end - 1].flags & PBOX_IO_LINK))
				last_break = end;
		}
		if (end < n || (reqs[end - 1].flags & PBOX_IO_LINK))
			end = last_break;
		if (end == i)
			return PBOX_EINVAL; /* a chain longer than the ring, or a dangling link */
		for (unsigned k = i; k < end; k++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(r);
			pbox_io_req *q = &reqs[k];
			switch (q->op) {
			case PBOX_IO_OP_READ:
				io_uring_prep_read(sqe, q->fd, q->buf, q->len, q->off);
				break;
			case PBOX_IO_OP_WRITE:
				io_uring_prep_write(sqe, q->fd, q->buf, q->len, q->off);
				break;
			case PBOX_IO_OP_FSYNC:
				io_uring_prep_fsync(sqe, q->fd, 0);
				break;
			case PBOX_IO_OP_FDATASYNC:
				io_uring_prep_fsync(sqe, q->fd, IORING_FSYNC_DATASYNC);
				break;
			default:
				io_uring_prep_nop(sqe);
				break;
			}
			if (q->flags & PBOX_IO_LINK)
				sqe->flags |= IOSQE_IO_LINK;
			io_uring_sqe_set_data64(sqe, k);
			q->res = q->op >= PBOX_IO_OP_READ && q->op <= PBOX_IO_OP_FDATASYNC
					 ? 0
					 : PBOX_EINVAL;
		}
		unsigned want = end - i;
		int s;
		do
			s = io_uring_submit_and_wait(r, want);
		while (s == -EINTR);
		if (s < 0)
			return s;
		unsigned got = 0;
		while (got < want) {
			struct io_uring_cqe *cqe;
			int w = io_uring_wait_cqe(r, &cqe);
			if (w == -EINTR)
				continue;
			if (w < 0)
				return w;
			uint64_t k = io_uring_cqe_get_data64(cqe);
			if (k < n && reqs[k].res == 0)
				reqs[k].res = cqe->res;
			io_uring_cqe_seen(r, cqe);
			got++;
		}
		i = end;
	}
	return 0;
}

static void px_ring_close(pbox_io *io, void *ring)
{
	(void)io;
	if (!ring)
		return;
	io_uring_queue_exit(ring);
	pbox_free(ring);
}

static pbox_io posix_io = {
	.open = px_open,
	.close = px_close,
	.pread = px_pread,
	.pwrite = px_pwrite,
	.fsync = px_fsync,
	.fdatasync = px_fdatasync,
	.ftruncate = px_ftruncate,
	.fallocate = px_fallocate,
	.fsize = px_fsize,
	.rename = px_rename,
	.unlink = px_unlink,
	.mkdir = px_mkdir,
	.fsync_dir = px_fsync_dir,
	.listdir = px_listdir,
	.lock = px_lock,
	.ring_open = px_ring_open,
	.ring_submit = px_ring_submit,
	.ring_close = px_ring_close,
	.name = "posix",
};

pbox_io *pbox_io_posix(void)
{
	return &posix_io;
}
