/* io_util.c — helpers that work over any pbox_io implementation. */
#include <pbox/io.h>
#include <pbox/status.h>

#include <errno.h>
#include <string.h>

const char *pbox_io_kind_name(pbox_io_kind kind)
{
	static const char *const names[PBOX_IO_KIND_COUNT + 1] = {
		[PBOX_IO_OPEN] = "open",         [PBOX_IO_CLOSE] = "close",
		[PBOX_IO_PREAD] = "pread",       [PBOX_IO_PWRITE] = "pwrite",
		[PBOX_IO_FSYNC] = "fsync",       [PBOX_IO_FDATASYNC] = "fdatasync",
		[PBOX_IO_FTRUNCATE] = "ftruncate", [PBOX_IO_FALLOCATE] = "fallocate",
		[PBOX_IO_FSIZE] = "fsize",       [PBOX_IO_RENAME] = "rename",
		[PBOX_IO_UNLINK] = "unlink",     [PBOX_IO_MKDIR] = "mkdir",
		[PBOX_IO_FSYNC_DIR] = "fsync_dir", [PBOX_IO_LISTDIR] = "listdir",
		[PBOX_IO_LOCK] = "lock",         [PBOX_IO_RING] = "ring_open",
		[PBOX_IO_ANY] = "any",
	};
	if ((unsigned)kind > PBOX_IO_ANY)
		return "invalid";
	return names[kind];
}

int pbox_io_pread_full(pbox_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len) {
		int64_t n = io->pread(io, fd, p, len, off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return PBOX_ECORRUPT; /* the file is shorter than its metadata says */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pbox_io_pwrite_full(pbox_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		int64_t n = io->pwrite(io, fd, p, len, off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pbox_io_fsync_parent(pbox_io *io, const char *path)
{
	char dir[4096];
	size_t n = strlen(path);
	if (n >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, n + 1);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	char *slash = strrchr(dir, '/');
	if (!slash)
		return io->fsync_dir(io, ".");
	if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	return io->fsync_dir(io, dir);
}
