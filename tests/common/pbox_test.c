/* pbox_test.c — see pbox_test.h. */
#define _GNU_SOURCE
#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define PBOX_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PBOX_TEST_TSAN 1
#endif
#endif
#ifndef PBOX_TEST_TSAN
#define PBOX_TEST_TSAN 0
#endif

unsigned pbox_test_cycles(unsigned n)
{
	unsigned c = n * pbox_test_scale();
	if (PBOX_TEST_TSAN && pbox_test_scale() == 1) {
		c /= 3;
		if (!c)
			c = 1;
	}
	return c;
}

uint64_t pbox_test_seed(void)
{
	static uint64_t seed;
	if (seed == 0) {
		const char *e = getenv("PBOX_SEED");
		if (e && *e) {
			seed = strtoull(e, NULL, 0);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
			       ((uint64_t)getpid() << 32);
		}
		if (seed == 0)
			seed = 1;
		fprintf(stderr, "pbox-test: seed %" PRIu64 " (rerun with PBOX_SEED=%" PRIu64 ")\n",
			seed, seed);
	}
	return seed;
}

unsigned pbox_test_scale(void)
{
	const char *e = getenv("PBOX_STRESS_SCALE");
	long v = e ? strtol(e, NULL, 10) : 1;
	return v >= 1 ? (unsigned)v : 1;
}

void pbox_rng_seed(pbox_rng *r, uint64_t seed)
{
	/* splitmix64 step so that nearby seeds give unrelated streams */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	r->s = z ? z : 0x2545f4914f6cdd1dULL;
}

uint64_t pbox_rng_next(pbox_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

uint64_t pbox_rng_below(pbox_rng *r, uint64_t n)
{
	return pbox_rng_next(r) % n;
}

int pbox_test_run(Suite *s)
{
	(void)pbox_test_seed(); /* decided (and printed) once, inherited by forked tests */
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

char *pbox_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	size_t n = strlen(base) + strlen(tag) + 32;
	char *p = malloc(n);
	if (!p)
		return NULL;
	snprintf(p, n, "%s/pbox-%s-XXXXXX", base, tag);
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void pbox_test_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- memfs fixtures ---------------------------------------------------------------------------- */

typedef struct snap_ctx {
	pbox_test_snap *s;
	pbox_io *io;
	const char *dir;
} snap_ctx;

static int snap_one(const char *name, void *arg)
{
	snap_ctx *c = arg;
	pbox_test_snap *s = c->s;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	int fd = c->io->open(c->io, path, O_RDONLY, 0);
	if (fd == -EISDIR)
		return 0; /* a subdirectory: not part of this snapshot */
	REQ(s->n < PBOX_TEST_SNAP_MAX, "snapshot of %s: too many files", c->dir);
	REQ(fd >= 0, "snapshot: open %s: %s", path, pbox_status_name(fd));
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
	uint64_t len = 0;
	CK_RC(c->io->fsize(c->io, fd, &len), 0);
	s->data[s->n] = malloc(len ? len : 1);
	REQ(s->data[s->n] != NULL, "snapshot: malloc");
	if (len)
		CK_RC(pbox_io_pread_full(c->io, fd, s->data[s->n], len, 0), 0);
	c->io->close(c->io, fd);
	s->len[s->n++] = len;
	return 0;
}

void pbox_test_snap_take(pbox_test_snap *s, pbox_io *io, const char *dir)
{
	memset(s, 0, sizeof(*s));
	snap_ctx c = { s, io, dir };
	CK_RC(io->listdir(io, dir, snap_one, &c), 0);
}

typedef struct names {
	int n;
	char name[PBOX_TEST_SNAP_MAX * 2][96];
} names;

static int name_one(const char *name, void *arg)
{
	names *v = arg;
	REQ(v->n < PBOX_TEST_SNAP_MAX * 2, "restore: too many files");
	snprintf(v->name[v->n++], sizeof(v->name[0]), "%s", name);
	return 0;
}

void pbox_test_snap_restore(const pbox_test_snap *s, pbox_io *io, const char *dir)
{
	static names v;
	v.n = 0;
	CK_RC(io->listdir(io, dir, name_one, &v), 0);
	char path[512];
	for (int i = 0; i < v.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, v.name[i]);
		int r = io->unlink(io, path);
		REQ(r == 0 || r == -EISDIR, "restore: unlink %s: %s", path, pbox_status_name(r));
	}
	for (int i = 0; i < s->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, s->name[i]);
		int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		REQ(fd >= 0, "restore: create %s: %s", path, pbox_status_name(fd));
		if (s->len[i])
			CK_RC(pbox_io_pwrite_full(io, fd, s->data[i], s->len[i], 0), 0);
		CK_RC(io->fsync(io, fd), 0);
		io->close(io, fd);
	}
	CK_RC(io->fsync_dir(io, dir), 0);
}

void pbox_test_snap_free(pbox_test_snap *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->data[i]);
	s->n = 0;
}
