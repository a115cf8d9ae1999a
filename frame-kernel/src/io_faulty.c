/*
 * io_faulty.c — fault injection and call counting around another pbox_io.
 *
 * Every call is counted under its kind (requests inside rings under their op's kind), then
 * checked against the armed fault: the nth matching call since arming fails with -err, and
 * with sticky every later matching call too. A pwrite armed with err 0 is made short (half
 * of its bytes are written) instead of failing.
 *
 * All state is atomic; arming while other threads issue calls is allowed, but which call is
 * "the nth" is then decided by the race (tests that need an exact call arm before starting).
 */
#include <pbox/alloc.h>
#include <pbox/iotest.h>
#include <pbox/status.h>

#include <errno.h>
#include <stdatomic.h>

struct pbox_io_faulty {
	pbox_io io; /* first: the seam's functions get &f->io */
	pbox_io *inner;
	_Atomic uint64_t counts[PBOX_IO_KIND_COUNT];
	_Atomic int armed_kind; /* -1: disarmed */
	_Atomic uint64_t nth;
	_Atomic uint64_t seen; /* matching calls since arming */
	_Atomic int err;
	_Atomic bool sticky;
	_Atomic bool fired;
};

static struct pbox_io_faulty *F(pbox_io *io)
{
	return (struct pbox_io_faulty *)io;
}

/* Count the call; return 1 if it must fail (and *err the error, 0 = short write). */
static bool hit(struct pbox_io_faulty *f, pbox_io_kind kind, int *err)
{
	atomic_fetch_add_explicit(&f->counts[kind], 1, memory_order_relaxed);
	int ak = atomic_load_explicit(&f->armed_kind, memory_order_acquire);
	if (ak < 0 || (ak != (int)kind && ak != PBOX_IO_ANY))
		return false;
	uint64_t n = atomic_fetch_add_explicit(&f->seen, 1, memory_order_relaxed) + 1;
	uint64_t want = atomic_load_explicit(&f->nth, memory_order_relaxed);
	if (n == want || (n > want && atomic_load_explicit(&f->sticky, memory_order_relaxed))) {
		*err = atomic_load_explicit(&f->err, memory_order_relaxed);
		atomic_store_explicit(&f->fired, true, memory_order_relaxed);
		return true;
	}
	return false;
}

#define INNER (F(io)->inner)
#define FAULT(kind)                                                                            \
	int err_;                                                                              \
	if (hit(F(io), kind, &err_) && err_ != 0)                                              \
		return -err_;

static int fy_open(pbox_io *io, const char *path, int flags, unsigned mode)
{
	FAULT(PBOX_IO_OPEN);
	return INNER->open(INNER, path, flags, mode);
}

static int fy_close(pbox_io *io, int fd)
{
	int err_;
	/* A failed close still releases the descriptor (as on Linux). */
	if (hit(F(io), PBOX_IO_CLOSE, &err_) && err_ != 0) {
		INNER->close(INNER, fd);
		return -err_;
	}
	return INNER->close(INNER, fd);
}

static int64_t fy_pread(pbox_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	FAULT(PBOX_IO_PREAD);
	return INNER->pread(INNER, fd, buf, len, off);
}

static size_t short_len(size_t len)
{
	return len > 1 ? len / 2 : len;
}

static int64_t fy_pwrite(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	int err;
	if (hit(F(io), PBOX_IO_PWRITE, &err)) {
		if (err)
			return -err;
		len = short_len(len);
	}
	return INNER->pwrite(INNER, fd, buf, len, off);
}

static int fy_fsync(pbox_io *io, int fd)
{
	FAULT(PBOX_IO_FSYNC);
	return INNER->fsync(INNER, fd);
}

static int fy_fdatasync(pbox_io *io, int fd)
{
	FAULT(PBOX_IO_FDATASYNC);
	return INNER->fdatasync(INNER, fd);
}

static int fy_ftruncate(pbox_io *io, int fd, uint64_t len)
{
	FAULT(PBOX_IO_FTRUNCATE);
	return INNER->ftruncate(INNER, fd, len);
}

static int fy_fallocate(pbox_io *io, int fd, uint64_t off, uint64_t len)
{
	FAULT(PBOX_IO_FALLOCATE);
	return INNER->fallocate(INNER, fd, off, len);
}

static int fy_fsize(pbox_io *io, int fd, uint64_t *size)
{
	FAULT(PBOX_IO_FSIZE);
	return INNER->fsize(INNER, fd, size);
}

static int fy_rename(pbox_io *io, const char *from, const char *to)
{
	FAULT(PBOX_IO_RENAME);
	return INNER->rename(INNER, from, to);
}

static int fy_unlink(pbox_io *io, const char *path)
{
	FAULT(PBOX_IO_UNLINK);
	return INNER->unlink(INNER, path);
}

static int fy_mkdir(pbox_io *io, const char *path, unsigned mode)
{
	FAULT(PBOX_IO_MKDIR);
	return INNER->mkdir(INNER, path, mode);
}

static int fy_fsync_dir(pbox_io *io, const char *path)
{
	FAULT(PBOX_IO_FSYNC_DIR);
	return INNER->fsync_dir(INNER, path);
}

static int fy_listdir(pbox_io *io, const char *path, pbox_io_listdir_fn fn, void *arg)
{
	FAULT(PBOX_IO_LISTDIR);
	return INNER->listdir(INNER, path, fn, arg);
}

static int fy_lock(pbox_io *io, int fd)
{
	FAULT(PBOX_IO_LOCK);
	return INNER->lock(INNER, fd);
}

static int fy_ring_open(pbox_io *io, unsigned depth, void **ring)
{
	FAULT(PBOX_IO_RING);
	return INNER->ring_open(INNER, depth, ring);
}

static pbox_io_kind op_kind(uint8_t op)
{
	switch (op) {
	case PBOX_IO_OP_READ:
		return PBOX_IO_PREAD;
	case PBOX_IO_OP_WRITE:
		return PBOX_IO_PWRITE;
	case PBOX_IO_OP_FSYNC:
		return PBOX_IO_FSYNC;
	default:
		return PBOX_IO_FDATASYNC;
	}
}

/* Requests run one at a time through the inner ring so that a fault hits exactly one of
 * them; chains are honoured here (a broken link cancels the rest of its chain). */
static int fy_ring_submit(pbox_io *io, void *ring, pbox_io_req *reqs, unsigned n)
{
	bool cancel = false;
	for (unsigned k = 0; k < n; k++) {
		pbox_io_req *q = &reqs[k];
		if (q->op < PBOX_IO_OP_READ || q->op > PBOX_IO_OP_FDATASYNC) {
			q->res = PBOX_EINVAL;
		} else if (cancel) {
			q->res = -ECANCELED;
		} else {
			int err;
			pbox_io_req one = *q;
			one.flags = 0;
			if (hit(F(io), op_kind(q->op), &err)) {
				if (err || q->op != PBOX_IO_OP_WRITE) {
					q->res = -(err ? err : EIO);
					goto chain;
				}
				one.len = (uint32_t)short_len(one.len);
			}
			int r = INNER->ring_submit(INNER, ring, &one, 1);
			q->res = r < 0 ? r : one.res;
		}
chain:;
		bool broken = q->res < 0 ||
			      ((q->op == PBOX_IO_OP_READ || q->op == PBOX_IO_OP_WRITE) &&
			       q->res != (int64_t)q->len);
		cancel = (q->flags & PBOX_IO_LINK) && (cancel || broken);
	}
	return 0;
}

static void fy_ring_close(pbox_io *io, void *ring)
{
	INNER->ring_close(INNER, ring);
}

int pbox_io_faulty_create(pbox_io *inner, pbox_io_faulty **out)
{
	if (!inner)
		return PBOX_EINVAL;
	struct pbox_io_faulty *f = pbox_calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->inner = inner;
	atomic_init(&f->armed_kind, -1);
	f->io = (pbox_io){
		.open = fy_open,
		.close = fy_close,
		.pread = fy_pread,
		.pwrite = fy_pwrite,
		.fsync = fy_fsync,
		.fdatasync = fy_fdatasync,
		.ftruncate = fy_ftruncate,
		.fallocate = fy_fallocate,
		.fsize = fy_fsize,
		.rename = fy_rename,
		.unlink = fy_unlink,
		.mkdir = fy_mkdir,
		.fsync_dir = fy_fsync_dir,
		.listdir = fy_listdir,
		.lock = fy_lock,
		.ring_open = fy_ring_open,
		.ring_submit = fy_ring_submit,
		.ring_close = fy_ring_close,
		.name = "faulty",
	};
	*out = f;
	return 0;
}

void pbox_io_faulty_destroy(pbox_io_faulty *f)
{
	pbox_free(f);
}

pbox_io *pbox_io_faulty_io(pbox_io_faulty *f)
{
	return &f->io;
}

void pbox_io_faulty_arm(pbox_io_faulty *f, pbox_io_kind kind, uint64_t nth, int err,
			bool sticky)
{
	atomic_store(&f->armed_kind, -1);
	atomic_store(&f->seen, 0);
	atomic_store(&f->nth, nth);
	atomic_store(&f->err, err < 0 ? -err : err);
	atomic_store(&f->sticky, sticky);
	atomic_store(&f->fired, false);
	atomic_store_explicit(&f->armed_kind, nth ? (int)kind : -1, memory_order_release);
}

void pbox_io_faulty_disarm(pbox_io_faulty *f)
{
	atomic_store(&f->armed_kind, -1);
}

bool pbox_io_faulty_fired(pbox_io_faulty *f)
{
	return atomic_load(&f->fired);
}

uint64_t pbox_io_faulty_count(pbox_io_faulty *f, pbox_io_kind kind)
{
	if ((unsigned)kind >= PBOX_IO_KIND_COUNT)
		return 0;
	return atomic_load(&f->counts[kind]);
}
