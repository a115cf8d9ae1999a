/*
 * pbox/iotest.h — test doubles of the file-I/O seam (library pagebox::iotest, separate from
 * frame-kernel so that an embedder links only what production needs):
 *   pbox_io_memfs_*   an in-memory file system that keeps written but unsynced state apart
 *                     from durable state, with power cuts, process crashes and cuts armed at
 *                     the nth state-changing call (crash and recovery tests, fuzzing);
 *   pbox_io_faulty_*  fault injection and call counting over another pbox_io.
 * Both implement pbox_io (pbox/io.h) and are thread-safe.
 */
#ifndef PBOX_IOTEST_H
#define PBOX_IOTEST_H

#include <pbox/io.h>

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
#endif /* PBOX_IOTEST_H */
