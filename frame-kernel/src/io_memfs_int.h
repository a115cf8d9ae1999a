/*
 * io_memfs_int.h — the in-memory file system's private types, shared by io_memfs.c (the
 * seam's functions) and io_memfs_model.c (the durability model: images, pending changes,
 * the metadata journal, power cuts and process crashes). Not installed.
 *
 * Locking: fs->mu protects every field of struct pbox_io_memfs and everything reachable
 * from it; every function below except pbox__mfs_lock_live expects it held.
 */
#ifndef PBOX_IO_MEMFS_INT_H
#define PBOX_IO_MEMFS_INT_H

#include <pbox/alloc.h>
#include <pbox/iotest.h>
#include <pbox/status.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_FDS 1024

enum { OP_WRITE, OP_TRUNC, OP_ALLOC };

struct dop { /* one pending data change of an inode */
	int type;
	uint64_t off, len; /* OP_TRUNC: len is the new size */
	unsigned char *data; /* OP_WRITE */
	bool grow;           /* OP_WRITE: it extended the file when it was made */
	struct dop *next;
};

struct image { /* bytes [mat, size) are zeros that were never stored (sparse tail) */
	unsigned char *buf;
	uint64_t size, cap, mat; /* logical size, allocation, materialised bytes (<= size) */
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
	bool dead; /* powered off or crashed: every call fails until restart */
	uint64_t changes;  /* state-changing calls so far (pbox_io_memfs_changes) */
	uint64_t arm_at;   /* 0, or the value of changes at which the armed event happens */
	int arm_what;      /* PBOX_MEMFS_CRASH or a pbox_powercut_mode */
	uint64_t arm_seed;
	bool fired;        /* the armed event happened */
};

static inline struct pbox_io_memfs *pbox__mfs_fs(pbox_io *io)
{
	return (struct pbox_io_memfs *)io;
}

uint64_t pbox__mfs_rng_next(uint64_t *s);
int pbox__mfs_norm_path(const char *in, char *out, size_t cap);
void pbox__mfs_parent_of(const char *path, char *out);
struct dent *pbox__mfs_ns_find(struct ns *ns, const char *path);
int pbox__mfs_ns_put(struct ns *ns, const char *path, struct inode *ino);
void pbox__mfs_ns_del(struct ns *ns, const char *path);
void pbox__mfs_ns_clear(struct ns *ns);
int pbox__mfs_ns_copy(struct ns *dst, const struct ns *src);
bool pbox__mfs_is_dir(struct ns *ns, const char *path);
int pbox__mfs_img_resize(struct image *im, uint64_t size);
int pbox__mfs_img_write(struct image *im, const void *data, uint64_t off, uint64_t len);
int pbox__mfs_img_apply(struct image *im, const struct dop *op);
/* Copy up to len bytes at off (zeros past the materialised part); returns the count. */
uint64_t pbox__mfs_img_read(const struct image *im, void *buf, uint64_t len, uint64_t off);
/* Make dst a copy of src. */
int pbox__mfs_img_copy(struct image *dst, const struct image *src);
void pbox__mfs_pend_clear(struct inode *ino);
/* Apply a change to the current image and queue it (or, durable, to both images). */
int pbox__mfs_change(struct inode *ino, int type, const void *data, uint64_t off, uint64_t len,
		     bool durable);
int pbox__mfs_sync_inode(struct inode *ino);
struct inode *pbox__mfs_new_inode(struct pbox_io_memfs *fs);
void pbox__mfs_free_inode(struct inode *ino);
int pbox__mfs_journal(struct pbox_io_memfs *fs, int type, const char *a, const char *b,
		      struct inode *ino);
int pbox__mfs_mop_apply(struct ns *ns, const struct mop *m);
void pbox__mfs_mop_free(struct mop *m);
bool pbox__mfs_mop_touches(const struct mop *m, const char *dir);
struct fdent *pbox__mfs_get_fd(struct pbox_io_memfs *fs, int fd);
/* Take fs->mu unless the machine is off (0), else -1 with the lock not held. */
int pbox__mfs_lock_live(struct pbox_io_memfs *fs);
/* The same for a call that changes state: counts it, and performs an armed crash or power
 * cut when its turn has come (then -1: the call fails with -EIO and changes nothing). */
int pbox__mfs_lock_change(struct pbox_io_memfs *fs);

#endif
