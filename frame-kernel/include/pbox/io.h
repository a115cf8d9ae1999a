/*
 * pbox/io.h — the file-I/O seam.
 *
 * Every file operation of wal and storage goes through a pbox_io: a table of function
 * pointers. Three implementations ship with frame-kernel:
 *
 *   pbox_io_posix()        the real thing: POSIX calls and io_uring (liburing).
 *   pbox_io_memfs_*        an in-memory file system for crash tests. It keeps written but
 *                          unsynced data apart from durable data, so a test can "cut the
 *                          power": drop all unsynced writes, keep a random subset, or tear the
 *                          last writes at 512-byte sector granularity. Metadata (create,
 *                          rename, unlink) becomes durable only with a directory fsync.
 *   pbox_io_faulty_*       a wrapper around any pbox_io that fails the Nth call of a chosen
 *                          kind with a chosen errno (once, or from then on), can make writes
 *                          short, and counts calls per kind.
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

/* ---- memfs: an in-memory file system with power cuts -------------------------------- */
typedef struct pbox_io_memfs pbox_io_memfs;

/* What a power cut leaves of the changes not yet synced. In every mode a torn write keeps
 * each of its 512-byte sectors or not, independently; a kept write that did not extend the
 * file when it was made never extends the durable size (if the truncate or fallocate that
 * made room was lost, so are the bytes past the old end). Metadata (create, rename, unlink,
 * mkdir) survives as a prefix of its journal (all of it or none in KEEP_ALL / DROP_ALL), and
 * a name whose directory's own entry is not durable is lost with it. */
typedef enum pbox_powercut_mode {
	PBOX_POWERCUT_DROP_ALL = 0, /* every unsynced write and metadata change is lost */
	PBOX_POWERCUT_KEEP_SUBSET,  /* each unsynced write is kept, lost or torn (1/3 each) */
	PBOX_POWERCUT_TEAR_LAST,    /* the last few writes of each file are torn; each earlier
	                               one survives, or is torn with probability 1/4 */
	PBOX_POWERCUT_KEEP_ALL,     /* the disk got everything just before the power went */
} pbox_powercut_mode;

/* pbox_io_memfs_arm's "what" for a process crash instead of a power cut. */
#define PBOX_MEMFS_CRASH (-1)

/* Returns 0 and the file system (and its pbox_io through pbox_io_memfs_io), or -ENOMEM. The
 * file system starts empty except for the root "/". */
int pbox_io_memfs_create(pbox_io_memfs **out);
void pbox_io_memfs_destroy(pbox_io_memfs *fs);
pbox_io *pbox_io_memfs_io(pbox_io_memfs *fs);

/* Cut the power: unsynced state is resolved according to mode (seed drives the random
 * choices) and the file system holds exactly what a disk would after the crash. Until
 * pbox_io_memfs_restart() the machine is "off": every call fails with -EIO, so threads still
 * running in the crashed program can write nothing more. After the restart every descriptor
 * from before the cut is invalid (-EBADF). Returns the number of unsynced writes that were
 * pending. peek/poke work in either state. */
uint64_t pbox_io_memfs_powercut(pbox_io_memfs *fs, pbox_powercut_mode mode, uint64_t seed);
void pbox_io_memfs_restart(pbox_io_memfs *fs);

/* A process crash (kill -9): every descriptor is closed and every lock released, but the
 * kernel keeps what was written and named, unsynced as before — a later power cut can still
 * lose it, unless the next program syncs it. Until pbox_io_memfs_restart() every call fails
 * with -EIO, as after a power cut, so threads of the crashed program change nothing more. */
void pbox_io_memfs_crash(pbox_io_memfs *fs);

/* Arm a crash (what = PBOX_MEMFS_CRASH) or a power cut (what = a pbox_powercut_mode, seed as
 * for pbox_io_memfs_powercut) at the nth state-changing call from now (1 = the next one;
 * 0 disarms). State-changing calls: open with O_CREAT or O_TRUNC, pwrite, fsync, fdatasync,
 * ftruncate, fallocate, rename, unlink, mkdir, fsync_dir. The nth call fails with -EIO and
 * changes nothing; so does every call after it until pbox_io_memfs_restart(). Lets a test
 * place a cut exactly, anywhere in an operation (creation, recycling, a checkpoint). */
void pbox_io_memfs_arm(pbox_io_memfs *fs, uint64_t nth, int what, uint64_t seed);
/* Did the armed crash or power cut happen? */
bool pbox_io_memfs_fired(pbox_io_memfs *fs);
/* State-changing calls so far (to choose an nth for pbox_io_memfs_arm). */
uint64_t pbox_io_memfs_changes(pbox_io_memfs *fs);

/* Bytes written but not yet synced, over all files (for tests). */
uint64_t pbox_io_memfs_unsynced_bytes(pbox_io_memfs *fs);

/* Direct access to a file's current content for corruption tests: copies up to len bytes
 * at off into buf (returns bytes copied or -ENOENT), or overwrites them durably. */
int64_t pbox_io_memfs_peek(pbox_io_memfs *fs, const char *path, void *buf, size_t len,
			   uint64_t off);
int pbox_io_memfs_poke(pbox_io_memfs *fs, const char *path, const void *buf, size_t len,
		       uint64_t off);

/* ---- faulty: fault injection and call counting over another pbox_io ------------------ */
typedef struct pbox_io_faulty pbox_io_faulty;

int pbox_io_faulty_create(pbox_io *inner, pbox_io_faulty **out);
void pbox_io_faulty_destroy(pbox_io_faulty *f);
pbox_io *pbox_io_faulty_io(pbox_io_faulty *f);

/* Fail the nth call (1-based, counted from this call on) of kind (or PBOX_IO_ANY) with
 * -err. sticky: that call and every later call of the kind fail. For PBOX_IO_PWRITE, err 0
 * means "short write": the call writes half of its bytes (at least 1 if len > 1) and returns
 * that count. Replaces any previous arming. */
void pbox_io_faulty_arm(pbox_io_faulty *f, pbox_io_kind kind, uint64_t nth, int err,
			bool sticky);
void pbox_io_faulty_disarm(pbox_io_faulty *f);
/* Did an armed fault fire since the last arm? */
bool pbox_io_faulty_fired(pbox_io_faulty *f);
/* Calls of kind since creation (requests inside rings count under their op's kind). */
uint64_t pbox_io_faulty_count(pbox_io_faulty *f, pbox_io_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* PBOX_IO_H */
