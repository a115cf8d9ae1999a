/* check_frame_kernel.c — status codes, CRC32C, allocation hooks and the I/O seam. */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>

#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- status -------------------------------------------------------------------------- */

START_TEST(test_status_messages)
{
	static const int codes[] = {
#define X_(name, value, msg) name,
		PBOX_STATUS_LIST(X_)
#undef X_
	};
	for (size_t i = 0; i < PBOX_ARRAY_LEN(codes); i++) {
		ck_assert_int_le(codes[i], PBOX_STATUS_MAX);
		ck_assert_int_ge(codes[i], PBOX_STATUS_MIN);
		ck_assert_str_ne(pbox_strerror(codes[i]), "unknown status");
		ck_assert_ptr_eq(strstr(pbox_status_name(codes[i]), "PBOX_E"),
				 pbox_status_name(codes[i]));
		for (size_t j = 0; j < i; j++)
			ck_assert_int_ne(codes[i], codes[j]);
	}
	ck_assert_str_eq(pbox_strerror(0), "success");
	ck_assert_str_eq(pbox_status_name(PBOX_ECORRUPT), "PBOX_ECORRUPT");
	ck_assert_str_eq(pbox_status_name(-EIO), "EIO");
	ck_assert_str_eq(pbox_strerror(-ENOSPC), "No space left on device");
	ck_assert_str_eq(pbox_strerror(-29999), "unknown status");
	ck_assert_str_eq(pbox_strerror(12345), "unknown status");
	ck_assert_str_eq(pbox_frame_state_name(PBOX_FRAME_COOL), "COOL");
	ck_assert_str_eq(pbox_frame_state_name(99), "INVALID");
}
END_TEST

/* ---- CRC32C ----------------------------------------------------------------------------- */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static const crc_fn crc_impls[] = { pbox_crc32c, pbox_crc32c_portable, pbox_crc32c_bytewise };

START_TEST(test_crc_vectors)
{
	unsigned char buf[32];
	for (size_t k = 0; k < PBOX_ARRAY_LEN(crc_impls); k++) {
		crc_fn f = crc_impls[k];
		ck_assert_uint_eq(f(0, "123456789", 9), 0xE3069283u);
		ck_assert_uint_eq(f(0, "", 0), 0);
		memset(buf, 0, sizeof(buf)); /* RFC 3720 B.4 vectors */
		ck_assert_uint_eq(f(0, buf, 32), 0x8A9136AAu);
		memset(buf, 0xff, sizeof(buf));
		ck_assert_uint_eq(f(0, buf, 32), 0x62A8AB43u);
		for (int i = 0; i < 32; i++)
			buf[i] = (unsigned char)i;
		ck_assert_uint_eq(f(0, buf, 32), 0x46DD794Eu);
		for (int i = 0; i < 32; i++)
			buf[i] = (unsigned char)(31 - i);
		ck_assert_uint_eq(f(0, buf, 32), 0x113FDB5Cu);
	}
	const char *impl = pbox_crc32c_impl();
	ck_assert(!strcmp(impl, "sse4.2") || !strcmp(impl, "portable"));
}
END_TEST

START_TEST(test_crc_agree_and_chain)
{
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	enum { MAX = 70000 };
	unsigned char *buf = malloc(MAX + 16);
	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < MAX + 16; i++)
		buf[i] = (unsigned char)pbox_rng_next(&r);
	/* every length up to 300 at every alignment, then long random ones (the 3-chain path) */
	for (size_t len = 0; len < 300; len++)
		for (size_t a = 0; a < 8; a++) {
			uint32_t want = pbox_crc32c_bytewise(0, buf + a, len);
			ck_assert_uint_eq(pbox_crc32c(0, buf + a, len), want);
			ck_assert_uint_eq(pbox_crc32c_portable(0, buf + a, len), want);
		}
	for (int it = 0; it < 200; it++) {
		size_t a = pbox_rng_below(&r, 16), len = pbox_rng_below(&r, MAX);
		uint32_t want = pbox_crc32c_bytewise(0, buf + a, len);
		ck_assert_uint_eq(pbox_crc32c(0, buf + a, len), want);
		ck_assert_uint_eq(pbox_crc32c_portable(0, buf + a, len), want);
		size_t cut = len ? pbox_rng_below(&r, len + 1) : 0;
		uint32_t c = pbox_crc32c(pbox_crc32c(0, buf + a, cut), buf + a + cut, len - cut);
		ck_assert_uint_eq(c, want);
	}
	/* a flipped bit always changes a 4 KiB page's checksum */
	uint32_t base = pbox_crc32c(0, buf, 4096);
	for (int bit = 0; bit < 4096 * 8; bit += 97) {
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		ck_assert_uint_ne(pbox_crc32c(0, buf, 4096), base);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	free(buf);
}
END_TEST

/* ---- allocation hooks ------------------------------------------------------------------- */

START_TEST(test_alloc_fail_nth)
{
	ck_assert(!strcmp(pbox_alloc_backend(), "jemalloc") || !strcmp(pbox_alloc_backend(), "libc"));
	void *p[6];
	pbox_alloc_fail_nth(3, false);
	for (int i = 0; i < 6; i++) {
		p[i] = pbox_malloc(100);
		if (i == 2)
			ck_assert_ptr_null(p[i]);
		else
			ck_assert_ptr_nonnull(p[i]);
	}
	ck_assert_uint_eq(pbox_alloc_failures(), 1);
	for (int i = 0; i < 6; i++)
		pbox_free(p[i]);
	pbox_alloc_fail_nth(2, true);
	void *a = pbox_malloc(10);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(pbox_malloc(10));
	ck_assert_ptr_null(pbox_aligned_alloc(4096, 10));
	ck_assert_ptr_null(pbox_realloc(a, 20));
	ck_assert_uint_eq(pbox_alloc_failures(), 3);
	pbox_alloc_fail_nth(0, false);
	void *b = pbox_aligned_alloc(4096, 8192);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq((uintptr_t)b % 4096, 0);
	pbox_free(b);
	pbox_free(a);
	ck_assert_ptr_null(pbox_calloc(SIZE_MAX / 2, 4)); /* overflow refused */
	ck_assert_ptr_null(pbox_aligned_alloc(3000, 10));  /* not a power of two */
	char *s = pbox_strdup("pagebox");
	ck_assert_str_eq(s, "pagebox");
	pbox_free(s);
}
END_TEST

static int hook_calls;
static void *h_malloc(size_t n, void *ctx)
{
	(*(int *)ctx)++;
	return malloc(n);
}
static void *h_aligned(size_t a, size_t n, void *ctx)
{
	(*(int *)ctx)++;
	return aligned_alloc(a, (n + a - 1) / a * a);
}
static void *h_realloc(void *p, size_t n, void *ctx)
{
	(*(int *)ctx)++;
	return realloc(p, n);
}
static void h_free(void *p, void *ctx)
{
	(*(int *)ctx)++;
	free(p);
}

START_TEST(test_alloc_custom_hooks)
{
	pbox_alloc_hooks h = { h_malloc, h_aligned, h_realloc, h_free, &hook_calls };
	hook_calls = 0;
	pbox_alloc_set_hooks(&h);
	void *p = pbox_malloc(10);
	p = pbox_realloc(p, 100);
	void *q = pbox_aligned_alloc(64, 64);
	pbox_free(p);
	pbox_free(q);
	pbox_alloc_set_hooks(NULL);
	ck_assert_int_eq(hook_calls, 5);
	p = pbox_malloc(1);
	pbox_free(p);
	ck_assert_int_eq(hook_calls, 5);
}
END_TEST

/* ---- I/O seam: behaviour every implementation shares ------------------------------------ */

static int list_count(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

/* Exercise the common contract on io rooted at dir. */
static void seam_contract(pbox_io *io, const char *dir)
{
	char a[512], b[512], sub[512];
	snprintf(a, sizeof(a), "%s/a.dat", dir);
	snprintf(b, sizeof(b), "%s/b.dat", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);

	ck_assert_int_eq(io->open(io, a, O_RDWR, 0644), -ENOENT);
	int fd = io->open(io, a, O_RDWR | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(io->open(io, a, O_RDWR | O_CREAT | O_EXCL, 0644), -EEXIST);
	char buf[8192], out[8192];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, buf, sizeof(buf), 4096), 0);
	uint64_t size = 0;
	ck_assert_int_eq(io->fsize(io, fd, &size), 0);
	ck_assert_uint_eq(size, 4096 + sizeof(buf));
	ck_assert_int_eq(pbox_io_pread_full(io, fd, out, sizeof(out), 4096), 0);
	ck_assert_mem_eq(out, buf, sizeof(buf));
	ck_assert_int_eq(pbox_io_pread_full(io, fd, out, 16, 0), 0); /* hole reads zeros */
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(out[i], 0);
	ck_assert_int_eq(pbox_io_pread_full(io, fd, out, 100, size - 50), PBOX_ECORRUPT);
	ck_assert_int_eq(io->pread(io, fd, out, 100, size + 10), 0);
	ck_assert_int_eq(io->fdatasync(io, fd), 0);
	ck_assert_int_eq(io->fsync(io, fd), 0);
	ck_assert_int_eq(io->fallocate(io, fd, 0, 65536), 0);
	ck_assert_int_eq(io->fsize(io, fd, &size), 0);
	ck_assert_uint_eq(size, 65536);
	ck_assert_int_eq(io->ftruncate(io, fd, 100), 0);
	ck_assert_int_eq(io->fsize(io, fd, &size), 0);
	ck_assert_uint_eq(size, 100);

	/* advisory lock: a second open of the same file cannot take it */
	ck_assert_int_eq(io->lock(io, fd), 0);
	int fd2 = io->open(io, a, O_RDWR, 0);
	ck_assert_int_ge(fd2, 0);
	ck_assert_int_eq(io->lock(io, fd2), -EWOULDBLOCK);
	ck_assert_int_eq(io->close(io, fd), 0);
	ck_assert_int_eq(io->lock(io, fd2), 0);
	fd = fd2;

	/* io_uring-style batch: write + linked fdatasync, then read back */
	void *ring = NULL;
	int rr = io->ring_open(io, 8, &ring);
	if (rr == 0) {
		char w[4096];
		memset(w, 'x', sizeof(w));
		pbox_io_req reqs[3] = {
			{ .op = PBOX_IO_OP_WRITE, .flags = PBOX_IO_LINK, .fd = fd, .buf = w,
			  .len = sizeof(w), .off = 8192 },
			{ .op = PBOX_IO_OP_FDATASYNC, .fd = fd },
			{ .op = PBOX_IO_OP_READ, .fd = fd, .buf = out, .len = 4096, .off = 8192 },
		};
		ck_assert_int_eq(io->ring_submit(io, ring, reqs, 2), 0);
		ck_assert_int_eq(reqs[0].res, 4096);
		ck_assert_int_eq(reqs[1].res, 0);
		ck_assert_int_eq(io->ring_submit(io, ring, &reqs[2], 1), 0);
		ck_assert_int_eq(reqs[2].res, 4096);
		ck_assert_mem_eq(out, w, 4096);
		/* a failing link cancels the rest of its chain, not the next chain */
		pbox_io_req bad[3] = {
			{ .op = PBOX_IO_OP_WRITE, .flags = PBOX_IO_LINK, .fd = 999, .buf = w,
			  .len = 10, .off = 0 },
			{ .op = PBOX_IO_OP_FDATASYNC, .fd = fd },
			{ .op = PBOX_IO_OP_FDATASYNC, .fd = fd },
		};
		ck_assert_int_eq(io->ring_submit(io, ring, bad, 3), 0);
		ck_assert_int_eq(bad[0].res, -EBADF);
		ck_assert_int_eq(bad[1].res, -ECANCELED);
		ck_assert_int_eq(bad[2].res, 0);
		io->ring_close(io, ring);
	} else {
		ck_assert_int_lt(rr, 0); /* unavailable is an error, not a crash */
	}

	/* names */
	ck_assert_int_eq(io->rename(io, a, b), 0);
	ck_assert_int_eq(io->open(io, a, O_RDONLY, 0), -ENOENT);
	ck_assert_int_eq(io->mkdir(io, sub, 0755), 0);
	ck_assert_int_eq(io->mkdir(io, sub, 0755), -EEXIST);
	ck_assert_int_eq(io->fsync_dir(io, dir), 0);
	ck_assert_int_eq(pbox_io_fsync_parent(io, b), 0);
	int n = 0;
	ck_assert_int_eq(io->listdir(io, dir, list_count, &n), 0);
	ck_assert_int_eq(n, 2); /* b.dat and sub */
	ck_assert_int_eq(io->close(io, fd), 0);
	ck_assert_int_eq(io->unlink(io, b), 0);
	ck_assert_int_eq(io->unlink(io, b), -ENOENT);
	ck_assert_int_eq(io->close(io, fd), -EBADF);
	n = 0;
	ck_assert_int_eq(io->listdir(io, dir, list_count, &n), 0);
	ck_assert_int_eq(n, 1);
}

START_TEST(test_io_posix_contract)
{
	char *dir = pbox_test_tmpdir("io");
	ck_assert_ptr_nonnull(dir);
	seam_contract(pbox_io_posix(), dir);
	pbox_test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_io_memfs_contract)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	pbox_io *io = pbox_io_memfs_io(fs);
	ck_assert_int_eq(io->mkdir(io, "/d", 0755), 0);
	seam_contract(io, "/d");
	ck_assert_int_eq(io->open(io, "/d", O_RDONLY, 0), -EISDIR);
	ck_assert_int_eq(io->open(io, "/nodir/x", O_RDWR | O_CREAT, 0644), -ENOENT);
	pbox_io_memfs_destroy(fs);
}
END_TEST

START_TEST(test_io_faulty_contract)
{
	pbox_io_memfs *fs;
	pbox_io_faulty *f;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	ck_assert_int_eq(pbox_io_faulty_create(pbox_io_memfs_io(fs), &f), 0);
	pbox_io *io = pbox_io_faulty_io(f);
	ck_assert_int_eq(io->mkdir(io, "d", 0755), 0);
	seam_contract(io, "d");
	ck_assert_uint_ge(pbox_io_faulty_count(f, PBOX_IO_PWRITE), 2);
	ck_assert_uint_eq(pbox_io_faulty_count(f, PBOX_IO_MKDIR), 3); /* d, sub, sub again */
	pbox_io_faulty_destroy(f);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- memfs power cuts ----------------------------------------------------------------- */

static pbox_io_memfs *mk_fs(pbox_io **io)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	*io = pbox_io_memfs_io(fs);
	ck_assert_int_eq((*io)->mkdir(*io, "/s", 0755), 0);
	ck_assert_int_eq((*io)->fsync_dir(*io, "/"), 0);
	return fs;
}

static uint64_t file_size(pbox_io *io, const char *path)
{
	int fd = io->open(io, path, O_RDONLY, 0);
	if (fd < 0)
		return UINT64_MAX;
	uint64_t s = 0;
	ck_assert_int_eq(io->fsize(io, fd, &s), 0);
	io->close(io, fd);
	return s;
}

START_TEST(test_memfs_drop_and_sync)
{
	pbox_io *io;
	pbox_io_memfs *fs = mk_fs(&io);
	int fd = io->open(io, "/s/f", O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	char one[1024], two[1024], out[1024];
	memset(one, 1, sizeof(one));
	memset(two, 2, sizeof(two));
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, one, sizeof(one), 0), 0);
	ck_assert_uint_eq(pbox_io_memfs_unsynced_bytes(fs), 1024);
	/* not even the name survives: no directory fsync yet */
	ck_assert_uint_eq(pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 1), 1);
	ck_assert_int_eq(io->pwrite(io, fd, one, 10, 0), -EIO); /* the machine is off */
	ck_assert_int_eq(io->open(io, "/s/g", O_RDWR | O_CREAT, 0644), -EIO);
	pbox_io_memfs_restart(fs);
	ck_assert_int_eq(io->pwrite(io, fd, one, 10, 0), -EBADF);
	ck_assert_int_eq(io->open(io, "/s/f", O_RDWR, 0), -ENOENT);

	fd = io->open(io, "/s/f", O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, one, sizeof(one), 0), 0);
	ck_assert_int_eq(io->fdatasync(io, fd), 0);
	ck_assert_uint_eq(pbox_io_memfs_unsynced_bytes(fs), 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, two, sizeof(two), 512), 0);
	ck_assert_int_eq(pbox_io_pread_full(io, fd, out, 512, 512), 0); /* reads see it */
	ck_assert_mem_eq(out, two, 512);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 2);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 1024);
	fd = io->open(io, "/s/f", O_RDWR, 0);
	ck_assert_int_eq(pbox_io_pread_full(io, fd, out, 1024, 0), 0);
	ck_assert_mem_eq(out, one, 1024);

	/* O_DSYNC writes are durable at once */
	int fd2 = io->open(io, "/s/f", O_RDWR | O_DSYNC, 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd2, two, 100, 0), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 3);
	pbox_io_memfs_restart(fs);
	ck_assert_int_eq(pbox_io_memfs_peek(fs, "/s/f", out, 100, 0), 100);
	ck_assert_mem_eq(out, two, 100);

	/* rename becomes durable only with the directory fsync */
	ck_assert_int_eq(io->rename(io, "/s/f", "/s/g"), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 4);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 1024);
	ck_assert_uint_eq(file_size(io, "/s/g"), UINT64_MAX);
	ck_assert_int_eq(io->rename(io, "/s/f", "/s/g"), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 5);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/g"), 1024);
	ck_assert_uint_eq(file_size(io, "/s/f"), UINT64_MAX);

	/* KEEP_ALL: the disk got everything before the power went */
	fd = io->open(io, "/s/g", O_RDWR, 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, two, 1024, 1024), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 6);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/g"), 2048);
	pbox_io_memfs_destroy(fs);
}
END_TEST

START_TEST(test_memfs_subset_and_tear)
{
	pbox_rng r;
	pbox_rng_seed(&r, pbox_test_seed());
	unsigned rounds = 50 * pbox_test_scale();
	unsigned saw_partial_sector_mix = 0, saw_kept = 0, saw_dropped = 0, saw_early_torn[2] = { 0 };
	for (unsigned round = 0; round < rounds; round++) {
		pbox_io *io;
		pbox_io_memfs *fs = mk_fs(&io);
		int fd = io->open(io, "/s/f", O_RDWR | O_CREAT, 0644);
		ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
		enum { NW = 8, WLEN = 2048 };
		unsigned char base[NW * WLEN], w[WLEN], got[NW * WLEN];
		memset(base, 0xEE, sizeof(base));
		ck_assert_int_eq(pbox_io_pwrite_full(io, fd, base, sizeof(base), 0), 0);
		ck_assert_int_eq(io->fsync(io, fd), 0);
		for (int i = 0; i < NW; i++) { /* disjoint unsynced writes, one value each */
			memset(w, i + 1, sizeof(w));
			ck_assert_int_eq(pbox_io_pwrite_full(io, fd, w, WLEN, (uint64_t)i * WLEN), 0);
		}
		bool tear = round % 2;
		pbox_io_memfs_powercut(fs, tear ? PBOX_POWERCUT_TEAR_LAST : PBOX_POWERCUT_KEEP_SUBSET,
				       pbox_rng_next(&r));
		pbox_io_memfs_restart(fs);
		ck_assert_int_eq(pbox_io_memfs_peek(fs, "/s/f", got, sizeof(got), 0), sizeof(got));
		for (int i = 0; i < NW; i++) {
			unsigned char *g = got + i * WLEN;
			unsigned newsec = 0;
			for (int s = 0; s < WLEN / 512; s++) {
				unsigned char v = g[s * 512];
				ck_assert(v == 0xEE || v == i + 1);
				for (int k = 1; k < 512; k++) /* a sector is atomic */
					ck_assert_uint_eq(g[s * 512 + k], v);
				newsec += v == (unsigned char)(i + 1);
			}
			if (newsec > 0 && newsec < WLEN / 512) {
				saw_partial_sector_mix++;
				/* any write may be torn, in either mode, not only the last ones */
				saw_early_torn[tear] += i < NW - 3;
			}
			if (newsec == WLEN / 512)
				saw_kept++;
			if (newsec == 0)
				saw_dropped++;
		}
		pbox_io_memfs_destroy(fs);
	}
	ck_assert_uint_gt(saw_partial_sector_mix, 0);
	ck_assert_uint_gt(saw_kept, 0);
	ck_assert_uint_gt(saw_dropped, 0);
	ck_assert_uint_gt(saw_early_torn[0], 0);
	ck_assert_uint_gt(saw_early_torn[1], 0);
}
END_TEST

/* A process crash leaves unsynced state pending: the next program sees it, and a power cut
 * after that can still lose it — unless the next program synced it. */
START_TEST(test_memfs_crash_keeps_pending)
{
	pbox_io *io;
	pbox_io_memfs *fs = mk_fs(&io);
	unsigned char one[1024];
	memset(one, 1, sizeof(one));
	int fd = io->open(io, "/s/a.tmp", O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, one, sizeof(one), 0), 0);
	ck_assert_int_eq(io->fsync(io, fd), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	ck_assert_int_eq(io->rename(io, "/s/a.tmp", "/s/a"), 0);
	ck_assert_int_eq(io->lock(io, fd), 0);
	pbox_io_memfs_crash(fs);
	ck_assert_int_eq(io->open(io, "/s/a", O_RDWR, 0), -EIO); /* off until restart */
	pbox_io_memfs_restart(fs);
	ck_assert_int_eq(io->close(io, fd), -EBADF); /* the dead program's descriptors are gone */
	ck_assert_uint_eq(file_size(io, "/s/a"), 1024); /* the next program sees the rename */
	int fd2 = io->open(io, "/s/a", O_RDWR, 0);
	ck_assert_int_eq(io->lock(io, fd2), 0); /* and the lock was released */
	io->close(io, fd2);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 1);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/a"), UINT64_MAX); /* nobody synced /s: lost */
	ck_assert_uint_eq(file_size(io, "/s/a.tmp"), 1024);
	/* the same, with the next program syncing the directory */
	ck_assert_int_eq(io->rename(io, "/s/a.tmp", "/s/a"), 0);
	pbox_io_memfs_crash(fs);
	pbox_io_memfs_restart(fs);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 2);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/a"), 1024);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* A child made durable by syncing its directory is lost when the directory's own entry was
 * never synced in its parent. */
START_TEST(test_memfs_orphan_lost)
{
	pbox_io_memfs *fs;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	pbox_io *io = pbox_io_memfs_io(fs);
	ck_assert_int_eq(io->mkdir(io, "/d", 0755), 0);
	ck_assert_int_eq(io->mkdir(io, "/d/e", 0755), 0);
	int fd = io->open(io, "/d/e/f", O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(io->fsync(io, fd), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/d/e"), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/d"), 0); /* /d/e is durable in /d, /d is not in / */
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 1);
	pbox_io_memfs_restart(fs);
	ck_assert_int_eq(io->open(io, "/d/e/f", O_RDWR, 0), -ENOENT);
	ck_assert_int_eq(io->mkdir(io, "/d", 0755), 0); /* /d itself is gone too */
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* A kept write inside room made by a lost fallocate does not bring the size with it; a write
 * that extended the file does. */
START_TEST(test_memfs_size_not_from_lost_alloc)
{
	pbox_io *io;
	pbox_io_memfs *fs = mk_fs(&io);
	unsigned char x[512];
	memset(x, 7, sizeof(x));
	int fd = io->open(io, "/s/f", O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(io->fsync(io, fd), 0);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	ck_assert_int_eq(io->fallocate(io, fd, 0, 8192), 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, x, sizeof(x), 4096), 0); /* within the room */
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, x, sizeof(x), 8192), 0); /* extends */
	/* KEEP_SUBSET until the fallocate was lost and the first write kept */
	bool seen = false;
	for (uint64_t seed = 1; seed < 400 && !seen; seed++) {
		pbox_io_memfs *f2;
		ck_assert_int_eq(pbox_io_memfs_create(&f2), 0);
		pbox_io *i2 = pbox_io_memfs_io(f2);
		int d = i2->open(i2, "/f", O_RDWR | O_CREAT, 0644);
		ck_assert_int_eq(i2->fsync(i2, d), 0);
		ck_assert_int_eq(i2->fsync_dir(i2, "/"), 0);
		ck_assert_int_eq(i2->fallocate(i2, d, 0, 8192), 0);
		ck_assert_int_eq(pbox_io_pwrite_full(i2, d, x, sizeof(x), 4096), 0);
		pbox_io_memfs_powercut(f2, PBOX_POWERCUT_KEEP_SUBSET, seed);
		pbox_io_memfs_restart(f2);
		unsigned char b[8192];
		int64_t n = pbox_io_memfs_peek(f2, "/f", b, sizeof(b), 0);
		ck_assert(n == 0 || n == 8192); /* never 4608: the write alone brings no size */
		seen = n == 0;
		pbox_io_memfs_destroy(f2);
	}
	ck_assert(seen);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 1);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 8192 + 512);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* An armed crash or power cut happens exactly at the nth state-changing call. */
START_TEST(test_memfs_arm)
{
	pbox_io *io;
	pbox_io_memfs *fs = mk_fs(&io);
	unsigned char x[512];
	memset(x, 3, sizeof(x));
	int fd = io->open(io, "/s/f", O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(io->fsync_dir(io, "/s"), 0);
	uint64_t c0 = pbox_io_memfs_changes(fs);
	pbox_io_memfs_arm(fs, 3, PBOX_POWERCUT_DROP_ALL, 1);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, x, sizeof(x), 0), 0); /* 1 */
	ck_assert_int_eq(io->fsync(io, fd), 0);                             /* 2 */
	char buf[8];
	ck_assert_int_eq(io->pread(io, fd, buf, 1, 0), 1); /* reads do not count */
	ck_assert(!pbox_io_memfs_fired(fs));
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, x, sizeof(x), 512), -EIO); /* 3: the cut */
	ck_assert(pbox_io_memfs_fired(fs));
	ck_assert_uint_eq(pbox_io_memfs_changes(fs), c0 + 3);
	ck_assert_int_eq(io->fsync(io, fd), -EIO);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 512);
	/* a crash armed the same way keeps the unsynced write */
	fd = io->open(io, "/s/f", O_RDWR, 0);
	pbox_io_memfs_arm(fs, 2, PBOX_MEMFS_CRASH, 0);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, x, sizeof(x), 512), 0);
	ck_assert_int_eq(io->fsync(io, fd), -EIO);
	ck_assert(pbox_io_memfs_fired(fs));
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 1024);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_DROP_ALL, 2);
	pbox_io_memfs_restart(fs);
	ck_assert_uint_eq(file_size(io, "/s/f"), 512);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- fault injection -------------------------------------------------------------------- */

START_TEST(test_faulty_nth)
{
	pbox_io_memfs *fs;
	pbox_io_faulty *f;
	ck_assert_int_eq(pbox_io_memfs_create(&fs), 0);
	ck_assert_int_eq(pbox_io_faulty_create(pbox_io_memfs_io(fs), &f), 0);
	pbox_io *io = pbox_io_faulty_io(f);
	int fd = io->open(io, "/x", O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	char buf[100] = { 0 };

	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 3, EIO, false);
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), 100);
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), 100);
	ck_assert(!pbox_io_faulty_fired(f));
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), -EIO);
	ck_assert(pbox_io_faulty_fired(f));
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), 100);
	ck_assert_int_eq(io->fdatasync(io, fd), 0);

	pbox_io_faulty_arm(f, PBOX_IO_FDATASYNC, 1, EIO, true);
	ck_assert_int_eq(io->fdatasync(io, fd), -EIO);
	ck_assert_int_eq(io->fdatasync(io, fd), -EIO);
	ck_assert_int_eq(io->fsync(io, fd), 0); /* other kinds unaffected */
	pbox_io_faulty_disarm(f);
	ck_assert_int_eq(io->fdatasync(io, fd), 0);

	/* short writes: pwrite_full completes them */
	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 1, 0, false);
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), 50);
	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 1, 0, true);
	ck_assert_int_eq(pbox_io_pwrite_full(io, fd, buf, 100, 0), 0);
	ck_assert(pbox_io_faulty_fired(f));

	/* ENOSPC through ANY */
	pbox_io_faulty_arm(f, PBOX_IO_ANY, 2, ENOSPC, false);
	ck_assert_int_eq(io->fsync(io, fd), 0);
	ck_assert_int_eq(io->pwrite(io, fd, buf, 100, 0), -ENOSPC);

	/* faults inside rings: the failing request breaks its chain */
	void *ring;
	ck_assert_int_eq(io->ring_open(io, 4, &ring), 0);
	pbox_io_req reqs[3] = {
		{ .op = PBOX_IO_OP_WRITE, .flags = PBOX_IO_LINK, .fd = fd, .buf = buf, .len = 100 },
		{ .op = PBOX_IO_OP_FDATASYNC, .flags = PBOX_IO_LINK, .fd = fd },
		{ .op = PBOX_IO_OP_WRITE, .fd = fd, .buf = buf, .len = 100 },
	};
	pbox_io_faulty_arm(f, PBOX_IO_FDATASYNC, 1, EIO, false);
	ck_assert_int_eq(io->ring_submit(io, ring, reqs, 3), 0);
	ck_assert_int_eq(reqs[0].res, 100);
	ck_assert_int_eq(reqs[1].res, -EIO);
	ck_assert_int_eq(reqs[2].res, -ECANCELED);
	pbox_io_faulty_arm(f, PBOX_IO_PWRITE, 1, 0, false); /* short write breaks a chain */
	ck_assert_int_eq(io->ring_submit(io, ring, reqs, 3), 0);
	ck_assert_int_eq(reqs[0].res, 50);
	ck_assert_int_eq(reqs[1].res, -ECANCELED);
	io->ring_close(io, ring);
	ck_assert_uint_eq(pbox_io_faulty_count(f, PBOX_IO_FDATASYNC), 5); /* cancelled ones do not count */
	io->close(io, fd);
	pbox_io_faulty_destroy(f);
	pbox_io_memfs_destroy(fs);
}
END_TEST

/* ---- metrics ---------------------------------------------------------------------------- */

START_TEST(test_hist)
{
	static pbox_hist h; /* zero-initialised */
	pbox_hist_snap s;
	pbox_hist_snapshot(&h, &s);
	ck_assert_uint_eq(pbox_hist_quantile(&s, 0.5), 0);
	ck_assert_uint_eq(pbox_hist_bucket_of(0), 0);
	ck_assert_uint_eq(pbox_hist_bucket_of(1), 1);
	ck_assert_uint_eq(pbox_hist_bucket_of(1023), 10);
	ck_assert_uint_eq(pbox_hist_bucket_of(1024), 11);
	for (uint64_t v = 1; v <= 1000; v++)
		pbox_hist_add(&h, v);
	pbox_hist_snapshot(&h, &s);
	ck_assert_uint_eq(s.count, 1000);
	ck_assert_uint_eq(s.sum, 500500);
	ck_assert_uint_eq(s.max, 1000);
	uint64_t p50 = pbox_hist_quantile(&s, 0.5), p99 = pbox_hist_quantile(&s, 0.99);
	ck_assert_uint_ge(p50, 500); /* bucket upper bounds: within a factor of two */
	ck_assert_uint_le(p50, 1000);
	ck_assert_uint_eq(p99, 1000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("frame-kernel");
	TCase *tc;
	tc = tcase_create("status");
	tcase_add_test(tc, test_status_messages);
	suite_add_tcase(s, tc);
	tc = tcase_create("crc32c");
	tcase_add_test(tc, test_crc_vectors);
	tcase_add_test(tc, test_crc_agree_and_chain);
	suite_add_tcase(s, tc);
	tc = tcase_create("alloc");
	tcase_add_test(tc, test_alloc_fail_nth);
	tcase_add_test(tc, test_alloc_custom_hooks);
	suite_add_tcase(s, tc);
	tc = tcase_create("io-seam");
	tcase_add_test(tc, test_io_posix_contract);
	tcase_add_test(tc, test_io_memfs_contract);
	tcase_add_test(tc, test_io_faulty_contract);
	suite_add_tcase(s, tc);
	tc = tcase_create("memfs-powercut");
	tcase_add_test(tc, test_memfs_drop_and_sync);
	tcase_add_test(tc, test_memfs_subset_and_tear);
	tcase_add_test(tc, test_memfs_crash_keeps_pending);
	tcase_add_test(tc, test_memfs_orphan_lost);
	tcase_add_test(tc, test_memfs_size_not_from_lost_alloc);
	tcase_add_test(tc, test_memfs_arm);
	suite_add_tcase(s, tc);
	tc = tcase_create("metrics");
	tcase_add_test(tc, test_hist);
	suite_add_tcase(s, tc);
	tc = tcase_create("faulty");
	tcase_add_test(tc, test_faulty_nth);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
