/*
 * pbox/io.h — the file-I/O seam.
 *
 * Every file operation of wal and storage goes through a pbox_io: a table of function
 * pointers. frame-kernel ships the real one:
 *
 *   pbox_io_posix()        POSIX calls and io_uring (liburing).
 *
 * and the library pagebox::iotest (header pbox/iotest.h) two test doubles: an in-memory file
 * system with power cuts and process crashes (pbox_io_memfs_*), and a fault-injecting
 * wrapper around any pbox_io (pbox_io_faulty_*).
 *
 * Conventions: every function returns a negative errno on failure (never sets errno for the
 * caller); sizes and offsets are 64-bit. A pbox_io is shared by all threads of a store:
 * implementations are thread-safe. Paths are ordinary strings; memfs treats them literally
 * (no "..", no symlinks) after collapsing repeated and trailing slashes.
 *
 * io_uring goes through the seam as "rings": ring_open creates one submission context (not
 * thread-safe: one ring per thread or per owner), ring_submit submits a batch and waits for
 * every request of it. A request flagged PBOX_IO_LINK makes the next one depend on it: if it
 * fails (or a write is short) the rest of its chain completes with -ECANCELED, exactly as
 * io_uring's IOSQE_IO_LINK does. memfs and faulty execute rings in order, synchronously.
 */
#ifndef PBOX_IO_H
#define PBOX_IO_H

#include <pbox/types.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kinds of calls, for fault injection and counting. */
typedef enum pbox_io_kind {
	PBOX_IO_OPEN = 0,
	PBOX_IO_CLOSE,
	PBOX_IO_PREAD,
	PBOX_IO_PWRITE,
	PBOX_IO_FSYNC,
	PBOX_IO_FDATASYNC,
	PBOX_IO_FTRUNCATE,
	PBOX_IO_FALLOCATE,
	PBOX_IO_FSIZE,
	PBOX_IO_RENAME,
	PBOX_IO_UNLINK,
	PBOX_IO_MKDIR,
	PBOX_IO_FSYNC_DIR,
	PBOX_IO_LISTDIR,
	PBOX_IO_LOCK,
	PBOX_IO_RING, /* ring_open; requests inside rings count under their own kind */
	PBOX_IO_KIND_COUNT,
	PBOX_IO_ANY = PBOX_IO_KIND_COUNT /* for fault injection: match every kind */
} pbox_io_kind;

const char *pbox_io_kind_name(pbox_io_kind kind);

/* One request of an io_uring-style batch. */
enum { PBOX_IO_OP_READ = 1, PBOX_IO_OP_WRITE, PBOX_IO_OP_FSYNC, PBOX_IO_OP_FDATASYNC };
#define PBOX_IO_LINK 0x1u /* the next request runs only if this one fully succeeds */

typedef struct pbox_io_req {
	uint8_t op;     /* PBOX_IO_OP_* */
	uint8_t flags;  /* PBOX_IO_LINK */
	int fd;
	void *buf;      /* read target / write source; unused for syncs */
	uint32_t len;
	uint64_t off;
	int64_t res;    /* out: bytes transferred, 0 for syncs, or -errno (-ECANCELED) */
} pbox_io_req;

/* Callback of listdir: one call per entry name (not "." or ".."); return non-zero to stop. */
typedef int (*pbox_io_listdir_fn)(const char *name, void *arg);

typedef struct pbox_io pbox_io;
struct pbox_io {
	/* open(2) flags: O_RDONLY/O_RDWR/O_CREAT/O_EXCL/O_TRUNC/O_DIRECT/O_DSYNC/O_DIRECTORY.
	 * Returns an fd (>= 0) or -errno. */
	int (*open)(pbox_io *io, const char *path, int flags, unsigned mode);
	int (*close)(pbox_io *io, int fd);
	/* Returns bytes transferred (possibly short) or -errno. */
	int64_t (*pread)(pbox_io *io, int fd, void *buf, size_t len, uint64_t off);
	int64_t (*pwrite)(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off);
	int (*fsync)(pbox_io *io, int fd);
	int (*fdatasync)(pbox_io *io, int fd);
	int (*ftruncate)(pbox_io *io, int fd, uint64_t len);
	/* Reserve [off, off+len) (mode 0: extends the file; reads as zeros). */
	int (*fallocate)(pbox_io *io, int fd, uint64_t off, uint64_t len);
	int (*fsize)(pbox_io *io, int fd, uint64_t *size);
	int (*rename)(pbox_io *io, const char *from, const char *to);
	int (*unlink)(pbox_io *io, const char *path);
	int (*mkdir)(pbox_io *io, const char *path, unsigned mode); /* -EEXIST if present */
	/* Make the directory's entries (creates, renames, unlinks) durable. */
	int (*fsync_dir)(pbox_io *io, const char *path);
	int (*listdir)(pbox_io *io, const char *path, pbox_io_listdir_fn fn, void *arg);
	/* Exclusive advisory lock on an open file, non-blocking: 0, or -EWOULDBLOCK when another
	 * process (or, in memfs, another open file) holds it. Released by close. */
	int (*lock)(pbox_io *io, int fd);
	/* io_uring-style batches; see the file comment. ring_open returns -ENOSYS (or the
	 * kernel's error) where io_uring is unavailable. */
	int (*ring_open)(pbox_io *io, unsigned depth, void **ring);
	int (*ring_submit)(pbox_io *io, void *ring, pbox_io_req *reqs, unsigned n);
	void (*ring_close)(pbox_io *io, void *ring);
	/* Human-readable name of the implementation ("posix", "memfs", "faulty(posix)"). */
	const char *name;
};

/* ---- the POSIX implementation ------------------------------------------------------- */
pbox_io *pbox_io_posix(void);

/* ---- helpers over any pbox_io -------------------------------------------------------- */
/* Read exactly len bytes: 0, -errno, or PBOX_ECORRUPT if the file ends first (short file). */
int pbox_io_pread_full(pbox_io *io, int fd, void *buf, size_t len, uint64_t off);
/* Write exactly len bytes, completing short writes: 0 or -errno (a write that makes no
 * progress is reported as -EIO). */
int pbox_io_pwrite_full(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off);
/* fsync_dir of the directory that contains path. */
int pbox_io_fsync_parent(pbox_io *io, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* PBOX_IO_H */
