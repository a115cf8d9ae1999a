/*
 * io_memfs_model.c — the in-memory file system's durability model (see io_memfs.c for the
 * model in words): namespaces, file images, pending changes, the metadata journal, and what
 * a power cut or a process crash leaves of them.
 *
 * Locking: fs->mu (io_memfs_int.h); the public functions here take it themselves.
 */
#define _GNU_SOURCE
#include "io_memfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512
#define TEAR_WRITES 3 /* how many of a file's last writes TEAR_LAST always tears */

/* ---- small helpers ------------------------------------------------------------------- */

uint64_t pbox__mfs_rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Normalise into out: absolute, no repeated or trailing slashes, no "./" prefix. */
int pbox__mfs_norm_path(const char *in, char *out, size_t cap)
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

void pbox__mfs_parent_of(const char *path, char *out)
{
	strcpy(out, path);
	char *s = strrchr(out, '/');
	if (s == out)
		out[1] = 0;
	else
		*s = 0;
}

struct dent *pbox__mfs_ns_find(struct ns *ns, const char *path)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!strcmp(ns->v[i].path, path))
			return &ns->v[i];
	return NULL;
}

int pbox__mfs_ns_put(struct ns *ns, const char *path, struct inode *ino)
{
	struct dent *d = pbox__mfs_ns_find(ns, path);
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

void pbox__mfs_ns_del(struct ns *ns, const char *path)
{
	struct dent *d = pbox__mfs_ns_find(ns, path);
	if (!d)
		return;
	pbox_free(d->path);
	*d = ns->v[--ns->n];
}

void pbox__mfs_ns_clear(struct ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		pbox_free(ns->v[i].path);
	ns->n = 0;
}

int pbox__mfs_ns_copy(struct ns *dst, const struct ns *src)
{
	pbox__mfs_ns_clear(dst);
	for (size_t i = 0; i < src->n; i++) {
		int r = pbox__mfs_ns_put(dst, src->v[i].path, src->v[i].ino);
		if (r)
			return r;
	}
	return 0;
}

bool pbox__mfs_is_dir(struct ns *ns, const char *path)
{
	if (!strcmp(path, "/"))
		return true;
	struct dent *d = pbox__mfs_ns_find(ns, path);
	return d && !d->ino;
}

int pbox__mfs_img_resize(struct image *im, uint64_t size)
{
	/* growing costs nothing: the new bytes are an unmaterialised zero tail */
	if (size < im->mat)
		im->mat = size;
	im->size = size;
	return 0;
}

/* Materialise bytes up to end (zeroing what lay beyond the materialised part). */
static int img_materialise(struct image *im, uint64_t end)
{
	if (end <= im->mat)
		return 0;
	if (end > im->cap) {
		uint64_t nc = im->cap ? im->cap : 4096;
		while (nc < end)
			nc *= 2;
		unsigned char *b = pbox_realloc(im->buf, nc);
		if (!b)
			return -ENOMEM;
		im->buf = b;
		im->cap = nc;
	}
	memset(im->buf + im->mat, 0, end - im->mat);
	im->mat = end;
	return 0;
}

int pbox__mfs_img_write(struct image *im, const void *data, uint64_t off, uint64_t len)
{
	int r = img_materialise(im, off + len);
	if (r)
		return r;
	memcpy(im->buf + off, data, len);
	if (off + len > im->size)
		im->size = off + len;
	return 0;
}

uint64_t pbox__mfs_img_read(const struct image *im, void *buf, uint64_t len, uint64_t off)
{
	uint64_t n = off >= im->size ? 0 : im->size - off;
	if (n > len)
		n = len;
	uint64_t stored = off >= im->mat ? 0 : im->mat - off;
	if (stored > n)
		stored = n;
	if (stored)
		memcpy(buf, im->buf + off, stored);
	if (n > stored)
		memset((unsigned char *)buf + stored, 0, n - stored);
	return n;
}

int pbox__mfs_img_copy(struct image *dst, const struct image *src)
{
	dst->mat = 0;
	int r = img_materialise(dst, src->mat);
	if (r)
		return r;
	if (src->mat)
		memcpy(dst->buf, src->buf, src->mat);
	dst->size = src->size;
	return 0;
}

int pbox__mfs_img_apply(struct image *im, const struct dop *op)
{
	switch (op->type) {
	case OP_WRITE: {
		/* A write that did not extend the file when it was made lands inside a size that
		 * a truncate or fallocate made; if that change was lost, the bytes past the
		 * durable size are lost with it (the file keeps its old size). */
		uint64_t len = op->len;
		if (!op->grow && op->off + len > im->size)
			len = op->off >= im->size ? 0 : im->size - op->off;
		return len ? pbox__mfs_img_write(im, op->data, op->off, len) : 0;
	}
	case OP_TRUNC:
		return pbox__mfs_img_resize(im, op->len);
	default: /* OP_ALLOC */
		return op->off + op->len > im->size ? pbox__mfs_img_resize(im, op->off + op->len) : 0;
	}
}

static void pbox__mfs_free_dop(struct dop *op)
{
	pbox_free(op->data);
	pbox_free(op);
}

void pbox__mfs_pend_clear(struct inode *ino)
{
	struct dop *op = ino->pend_head;
	while (op) {
		struct dop *nx = op->next;
		pbox__mfs_free_dop(op);
		op = nx;
	}
	ino->pend_head = ino->pend_tail = NULL;
	ino->pend_bytes = 0;
}

/* Apply a change to the current image and queue it (or, durable, to both images). */
int pbox__mfs_change(struct inode *ino, int type, const void *data, uint64_t off, uint64_t len,
		  bool durable)
{
	struct dop op = { .type = type, .off = off, .len = len };
	op.data = (unsigned char *)data;
	/* an O_DSYNC write also makes the size it needs durable */
	op.grow = type == OP_WRITE && (durable || off + len > ino->cur.size);
	int r = pbox__mfs_img_apply(&ino->cur, &op);
	if (r)
		return r;
	if (durable)
		return pbox__mfs_img_apply(&ino->dur, &op);
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

int pbox__mfs_sync_inode(struct inode *ino)
{
	for (struct dop *op = ino->pend_head; op; op = op->next) {
		int r = pbox__mfs_img_apply(&ino->dur, op);
		if (r)
			return r;
	}
	pbox__mfs_pend_clear(ino);
	return 0;
}

struct inode *pbox__mfs_new_inode(struct pbox_io_memfs *fs)
{
	struct inode *ino = pbox_calloc(1, sizeof(*ino));
	if (!ino)
		return NULL;
	ino->lock_fd = -1;
	ino->next_all = fs->all;
	fs->all = ino;
	return ino;
}

int pbox__mfs_journal(struct pbox_io_memfs *fs, int type, const char *a, const char *b,
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

int pbox__mfs_mop_apply(struct ns *ns, const struct mop *m)
{
	switch (m->type) {
	case M_CREATE:
		return pbox__mfs_ns_put(ns, m->a, m->ino);
	case M_MKDIR:
		return pbox__mfs_ns_put(ns, m->a, NULL);
	case M_UNLINK:
		pbox__mfs_ns_del(ns, m->a);
		return 0;
	default: { /* M_RENAME */
		struct dent *d = pbox__mfs_ns_find(ns, m->a);
		if (!d)
			return 0; /* source never became durable: nothing to move */
		struct inode *ino = d->ino;
		pbox__mfs_ns_del(ns, m->a);
		return pbox__mfs_ns_put(ns, m->b, ino);
	}
	}
}

void pbox__mfs_mop_free(struct mop *m)
{
	pbox_free(m->a);
	pbox_free(m->b);
	pbox_free(m);
}

bool pbox__mfs_mop_touches(const struct mop *m, const char *dir)
{
	char p[4096];
	pbox__mfs_parent_of(m->a, p);
	if (!strcmp(p, dir))
		return true;
	if (m->b) {
		pbox__mfs_parent_of(m->b, p);
		if (!strcmp(p, dir))
			return true;
	}
	return false;
}

struct fdent *pbox__mfs_get_fd(struct pbox_io_memfs *fs, int fd)
{
	if (fd < 0 || fd >= MAX_FDS || !fs->fds[fd].ino)
		return NULL;
	return &fs->fds[fd];
}

/* Take the lock unless the power is off (between a power cut and restart): then -EIO, as
 * from a machine that is down. */
int pbox__mfs_lock_live(struct pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	if (fs->dead) {
		pthread_mutex_unlock(&fs->mu);
		return -1;
	}
	return 0;
}



void pbox__mfs_free_inode(struct inode *ino)
{
	pbox__mfs_pend_clear(ino);
	pbox_free(ino->cur.buf);
	pbox_free(ino->dur.buf);
	pbox_free(ino);
}


/* Apply a write to the durable image keeping each 512-byte sector of it with probability 1/2
 * (a torn write: disks persist whole sectors, in any order). Other changes: all or none. */
static void apply_torn(struct image *im, const struct dop *op, uint64_t *rng)
{
	if (op->type != OP_WRITE) {
		if (pbox__mfs_rng_next(rng) & 1)
			pbox__mfs_img_apply(im, op);
		return;
	}
	uint64_t pos = op->off, end = op->off + op->len;
	while (pos < end) {
		uint64_t sec_end = (pos / SECTOR + 1) * SECTOR;
		if (sec_end > end)
			sec_end = end;
		if (pbox__mfs_rng_next(rng) & 1) {
			struct dop part = *op;
			part.data = op->data + (pos - op->off);
			part.off = pos;
			part.len = sec_end - pos;
			pbox__mfs_img_apply(im, &part);
		}
		pos = sec_end;
	}
}

/* What a power cut leaves of one pending change (see pbox_powercut_mode). */
static void resolve_op(struct image *dur, const struct dop *op, pbox_powercut_mode mode,
		       bool last, uint64_t *rng)
{
	switch (mode) {
	case PBOX_POWERCUT_DROP_ALL:
		break;
	case PBOX_POWERCUT_KEEP_SUBSET: /* kept, lost or (a write) torn, a third each */
		switch (pbox__mfs_rng_next(rng) % 3) {
		case 0:
			pbox__mfs_img_apply(dur, op);
			break;
		case 1:
			break;
		default:
			apply_torn(dur, op, rng);
		}
		break;
	case PBOX_POWERCUT_TEAR_LAST: /* the last few torn, any earlier one torn at 1/4 */
		if (!last && pbox__mfs_rng_next(rng) % 4)
			pbox__mfs_img_apply(dur, op);
		else
			apply_torn(dur, op, rng);
		break;
	case PBOX_POWERCUT_KEEP_ALL:
		pbox__mfs_img_apply(dur, op);
		break;
	}
}

/* Drop every durable name whose directory is not durable itself: a child made durable by
 * syncing its directory is still lost when that directory's own entry was not. */
static void prune_orphans(struct ns *ns)
{
	for (bool again = true; again;) {
		again = false;
		for (size_t i = 0; i < ns->n; i++) {
			char par[4096];
			pbox__mfs_parent_of(ns->v[i].path, par);
			if (strcmp(ns->v[i].path, "/") && !pbox__mfs_is_dir(ns, par)) {
				pbox__mfs_ns_del(ns, ns->v[i].path);
				again = true;
				break;
			}
		}
	}
}

/* Close every descriptor and release every lock, as the kernel does for a process that
 * dies; the machine is "off" for the caller until pbox_io_memfs_restart. */
static void close_all(struct pbox_io_memfs *fs)
{
	for (struct inode *ino = fs->all; ino; ino = ino->next_all) {
		ino->lock_fd = -1;
		ino->open_count = 0;
	}
	for (int i = 0; i < MAX_FDS; i++)
		fs->fds[i].ino = NULL;
	fs->dead = true;
}

static uint64_t powercut_locked(struct pbox_io_memfs *fs, pbox_powercut_mode mode, uint64_t seed)
{
	uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
	if (!rng)
		rng = 1;
	uint64_t pending = 0;
	for (struct inode *ino = fs->all; ino; ino = ino->next_all) {
		size_t nops = 0;
		for (struct dop *op = ino->pend_head; op; op = op->next)
			nops++;
		size_t i = 0;
		for (struct dop *op = ino->pend_head; op; op = op->next, i++) {
			pending += op->type == OP_WRITE;
			resolve_op(&ino->dur, op, mode, i + TEAR_WRITES >= nops, &rng);
		}
		pbox__mfs_pend_clear(ino);
		/* the current image becomes the durable one */
		pbox__mfs_img_copy(&ino->cur, &ino->dur);
	}
	/* metadata journal: a prefix survives */
	size_t nm = 0;
	for (struct mop *m = fs->mhead; m; m = m->next)
		nm++;
	size_t keep = mode == PBOX_POWERCUT_KEEP_ALL   ? nm
		      : mode == PBOX_POWERCUT_DROP_ALL ? 0
						       : (size_t)(pbox__mfs_rng_next(&rng) % (nm + 1));
	struct mop *m = fs->mhead;
	for (size_t i = 0; m; i++) {
		struct mop *nx = m->next;
		if (i < keep)
			pbox__mfs_mop_apply(&fs->dur, m);
		pbox__mfs_mop_free(m);
		m = nx;
	}
	fs->mhead = fs->mtail = NULL;
	prune_orphans(&fs->dur);
	pbox__mfs_ns_copy(&fs->cur, &fs->dur);
	close_all(fs);
	/* free inodes no name reaches any more */
	struct inode **link = &fs->all;
	while (*link) {
		struct inode *ino = *link;
		bool named = false;
		for (size_t i = 0; i < fs->dur.n && !named; i++)
			named = fs->dur.v[i].ino == ino;
		if (!named) {
			*link = ino->next_all;
			pbox__mfs_free_inode(ino);
		} else {
			link = &ino->next_all;
		}
	}
	return pending;
}

uint64_t pbox_io_memfs_powercut(pbox_io_memfs *fs, pbox_powercut_mode mode, uint64_t seed)
{
	pthread_mutex_lock(&fs->mu);
	uint64_t n = powercut_locked(fs, mode, seed);
	pthread_mutex_unlock(&fs->mu);
	return n;
}

void pbox_io_memfs_crash(pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	close_all(fs); /* names and data stay as they are: current, and as unsynced as before */
	pthread_mutex_unlock(&fs->mu);
}

void pbox_io_memfs_arm(pbox_io_memfs *fs, uint64_t nth, int what, uint64_t seed)
{
	pthread_mutex_lock(&fs->mu);
	fs->arm_at = nth ? fs->changes + nth : 0;
	fs->arm_what = what;
	fs->arm_seed = seed;
	fs->fired = false;
	pthread_mutex_unlock(&fs->mu);
}

bool pbox_io_memfs_fired(pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	bool f = fs->fired;
	pthread_mutex_unlock(&fs->mu);
	return f;
}

uint64_t pbox_io_memfs_changes(pbox_io_memfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	uint64_t n = fs->changes;
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int pbox__mfs_lock_change(struct pbox_io_memfs *fs)
{
	if (pbox__mfs_lock_live(fs))
		return -1;
	fs->changes++;
	if (!fs->arm_at || fs->changes != fs->arm_at)
		return 0;
	fs->arm_at = 0;
	fs->fired = true;
	if (fs->arm_what == PBOX_MEMFS_CRASH)
		close_all(fs);
	else
		powercut_locked(fs, (pbox_powercut_mode)fs->arm_what, fs->arm_seed);
	pthread_mutex_unlock(&fs->mu);
	return -1;
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
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	pthread_mutex_lock(&fs->mu);
	struct dent *d = pbox__mfs_ns_find(&fs->cur, p);
	int64_t n = -ENOENT;
	if (d && d->ino) {
		n = (int64_t)pbox__mfs_img_read(&d->ino->cur, buf, len, off);
	}
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int pbox_io_memfs_poke(pbox_io_memfs *fs, const char *path, const void *buf, size_t len,
		       uint64_t off)
{
	char p[4096];
	int r = pbox__mfs_norm_path(path, p, sizeof(p));
	if (r)
		return r;
	pthread_mutex_lock(&fs->mu);
	struct dent *d = pbox__mfs_ns_find(&fs->cur, p);
	if (!d || !d->ino)
		r = -ENOENT;
	else if (!(r = pbox__mfs_img_write(&d->ino->cur, buf, off, len)))
		r = pbox__mfs_img_write(&d->ino->dur, buf, off, len);
	pthread_mutex_unlock(&fs->mu);
	return r;
}

