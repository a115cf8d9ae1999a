/*
 * backup_cmd.c — `kvstore backup`, `kvstore compact`, and kv_backup_now (the in-process
 * backup that the batch command `backup DEST` and `stress --backup-every` share).
 *
 * backup: pbox_store_backup (pbox/storage.h) of the open store into DEST, after the log is
 * flushed (like `sync`), so the copy holds every change acknowledged before the command, in
 * either durability mode. The library does the consistency work: the copy opens as a store
 * holding at least that, never part of a transaction; an unfinished copy never opens
 * (PBOX_EPARTIAL). `kvstore -d DIR backup DEST` opens DIR (nobody else may have it open).
 *
 * compact (offline: the store's lock is held throughout, so nobody else writes; the copy
 * needs room for the live data beside the old store):
 *   1. remove DIR.compact if a crashed compact left one (it is either an unfinished new
 *      store, or the old store after the swap: disposable either way);
 *   2. create a new store DIR.compact (same page size), copy every tree into it in key order
 *      from one snapshot (pbox_bt_copy_trees), close it (the close's checkpoint makes it
 *      durable);
 *   3. close the old store (its close recycles log segments by path: it must not run after
 *      the swap), flock its LOCK file again (an open by anyone else in between makes
 *      compact give up, changing nothing), swap the two directories with one
 *      renameat2(RENAME_EXCHANGE) and fsync the parent: DIR is the compacted store from
 *      then on; a crash before the swap leaves DIR as it was, a crash after it leaves the
 *      old store in DIR.compact;
 *   4. release the lock and delete the old store (now DIR.compact).
 * RENAME_EXCHANGE needs Linux 3.15 and a file system that supports it (ext4, XFS, btrfs,
 * tmpfs); elsewhere compact refuses before changing anything.
 *
 * Threads: the commands are single-threaded; kv_backup_now may run beside writers.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <pbox/io.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

typedef struct progress {
	bool tty;
	double t0, last;
} progress;

static int progress_fn(uint64_t done, uint64_t total, void *arg)
{
	progress *p = arg;
	double now = kv_now();
	if (p->tty && (now - p->last >= 0.2 || done == total)) {
		p->last = now;
		fprintf(stderr, "\rbackup: %6.1f of %.1f MiB (%3.0f%%)", (double)done / 1048576.0,
			(double)total / 1048576.0, total ? 100.0 * (double)done / (double)total : 100.0);
		if (done == total)
			fputc('\n', stderr);
	}
	return 0;
}

int kv_backup_now(pbox_store *st, const char *dest, uint64_t rate, bool show,
		  pbox_backup_info *info, char *msg, size_t cap)
{
	msg[0] = 0;
	int rc = pbox_wal_flush(pbox_store_wal(st)); /* what was acknowledged is durable */
	if (rc) {
		snprintf(msg, cap, "flushing the log: %s", pbox_strerror(rc));
		return rc;
	}
	pbox_backup_options bo;
	pbox_backup_options_init(&bo);
	progress p = { .tty = show && isatty(2), .t0 = kv_now() };
	bo.rate_bytes = rate;
	bo.progress = progress_fn;
	bo.progress_arg = &p;
	bo.errbuf = msg;
	bo.errbuf_len = cap;
	rc = pbox_store_backup(st, dest, &bo, info);
	if (rc && !msg[0])
		snprintf(msg, cap, "%s", pbox_strerror(rc));
	return rc;
}

static int usage(const char *msg)
{
	fprintf(stderr, "kvstore: %s (kvstore --help for usage)\n", msg);
	return KV_EXIT_USAGE;
}

int kv_cmd_backup(const kv_opts *o, int argc, char **argv)
{
	uint64_t rate = 0;
	const char *dest = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rate")) {
			if (i + 1 >= argc || kv_parse_size(argv[++i], &rate) || rate == 0)
				return usage("backup: --rate needs bytes per second (e.g. 50M)");
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage("backup: unknown option");
		} else if (dest) {
			return usage("backup takes one destination");
		} else {
			dest = argv[i];
		}
	}
	if (!dest || !*dest)
		return usage("backup needs a destination directory (backup [--rate R] DEST)");
	kv_opts oo = *o;
	oo.tree = NULL;
	kv_db db;
	int rc = kv_open(&oo, false, &db);
	if (rc)
		return rc == PBOX_ENOTFOUND ? KV_EXIT_NOTFOUND : KV_EXIT_STORE;
	char msg[512];
	pbox_backup_info info;
	double t0 = kv_now();
	rc = kv_backup_now(db.st, dest, rate, true, &info, msg, sizeof(msg));
	double el = kv_now() - t0;
	int code = rc == 0 ? KV_EXIT_OK : rc == PBOX_EEXIST ? KV_EXIT_EXISTS : KV_EXIT_STORE;
	if (rc)
		fprintf(stderr, "kvstore: backup %s: %s\n", dest, msg);
	if (kv_close(&db) && code == KV_EXIT_OK)
		code = KV_EXIT_STORE;
	if (!rc) {
		uint64_t bytes = info.data_bytes + info.log_bytes;
		printf("backup: %s: %.1f MiB of data file, %.1f MiB of log (LSN %" PRIu64
		       "..%" PRIu64 "), %.2f s, %.0f MiB/s\n",
		       dest, (double)info.data_bytes / 1048576.0, (double)info.log_bytes / 1048576.0,
		       info.start_lsn, info.end_lsn, el,
		       el > 0 ? (double)bytes / 1048576.0 / el : 0.0);
	}
	return code;
}

/* ---- compact -------------------------------------------------------------------------- */

/* A test hook (tests/kvstore/compact_cut_test.sh): KVSTORE_COMPACT_PAUSE=N stops the process
 * (SIGSTOP) at step boundary N — 1 before the copy, 2 after the copy is durable, 3 just
 * before the swap, 4 after the swap, 5 after the swap is durable, 6 after the old store is
 * removed — so that a test can cut the power exactly there. Unset: nothing happens. */
static void pause_at(int n)
{
	const char *e = getenv("KVSTORE_COMPACT_PAUSE");
	if (e && atoi(e) == n)
		raise(SIGSTOP);
}

static int rm_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int rm_tree(const char *path)
{
	struct stat sb;
	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_fn, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t file_size(const char *dir, const char *name)
{
	char path[4200];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_blocks * 512u : 0;
}

int kv_cmd_compact(const kv_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage("compact takes no arguments");
	char dir[4096], tmp[4200];
	size_t dl = strlen(o->dir);
	while (dl > 1 && o->dir[dl - 1] == '/')
		dl--;
	if (dl >= sizeof(dir))
		return usage("compact: directory name too long");
	memcpy(dir, o->dir, dl);
	dir[dl] = 0;
	snprintf(tmp, sizeof(tmp), "%s.compact", dir);
	kv_opts src_o = *o, dst_o = *o;
	src_o.dir = dir;
	src_o.tree = dst_o.tree = NULL;
	dst_o.dir = tmp;
	kv_db src, dst;
	int rc = kv_open(&src_o, false, &src); /* 1: the lock, held to the end */
	if (rc)
		return rc == PBOX_ENOTFOUND ? KV_EXIT_NOTFOUND : KV_EXIT_STORE;
	pbox_store_stats s0;
	pbox_store_get_stats(src.st, &s0);
	uint64_t before = file_size(dir, "data");
	if (rm_tree(tmp)) {
		fprintf(stderr, "kvstore: compact: removing %s (left by an earlier compact): %s\n",
			tmp, strerror(errno));
		kv_close(&src);
		return KV_EXIT_STORE;
	}
	dst_o.page_size = s0.page_size;
	pause_at(1);
	double t0 = kv_now();
	pbox_bt_copy_info ci;
	if ((rc = kv_open(&dst_o, true, &dst))) { /* 2 */
		kv_close(&src);
		return KV_EXIT_STORE;
	}
	rc = pbox_bt_copy_trees(src.st, dst.st, &ci);
	if (rc)
		kv_err("compact: copying the trees", rc);
	int crc = kv_close(&dst);
	if (!rc)
		rc = crc;
	if (!rc)
		pause_at(2);
	/* the old store is closed before the swap (its close recycles log segments by path);
	 * its lock file is then held by flock here, so nobody opens it until the swap is done */
	int lfd = -1;
	if (kv_close(&src) && !rc)
		rc = PBOX_EPOISONED;
	if (!rc) {
		char lock[4200];
		snprintf(lock, sizeof(lock), "%s/LOCK", dir);
		lfd = open(lock, O_RDWR | O_CLOEXEC);
		if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
			fprintf(stderr, "kvstore: compact: %s was opened by another process meanwhile; "
					"nothing changed\n", dir);
			rc = PBOX_ELOCKED;
		}
	}
	/* 3 */
	if (!rc)
		pause_at(3);
	if (!rc && syscall(SYS_renameat2, AT_FDCWD, dir, AT_FDCWD, tmp, RENAME_EXCHANGE) != 0) {
		fprintf(stderr, "kvstore: compact: swapping %s and %s: %s; nothing changed\n", dir,
			tmp, strerror(errno));
		rc = -errno;
	}
	if (rc) {
		if (lfd >= 0)
			close(lfd);
		rm_tree(tmp); /* the unfinished copy (the swap did not happen) */
		return KV_EXIT_STORE;
	}
	int code = KV_EXIT_OK;
	pause_at(4);
	int fr = pbox_io_fsync_parent(pbox_io_posix(), dir);
	if (fr) { /* the swap happened, but may not be durable */
		fprintf(stderr, "kvstore: compact: syncing the directory that holds %s: %s\n", dir,
			pbox_strerror(fr));
		code = KV_EXIT_STORE;
	}
	/* 4: the old store, now at tmp */
	pause_at(5);
	close(lfd);
	if (code == KV_EXIT_OK && rm_tree(tmp))
		fprintf(stderr, "kvstore: compact: could not remove the old store %s: %s\n", tmp,
			strerror(errno));
	pause_at(6);
	uint64_t after = file_size(dir, "data");
	printf("compact: %" PRIu64 " trees, %" PRIu64 " pairs (%.1f MiB) copied in %.2f s; data "
	       "file %.1f MiB -> %.1f MiB on disk\n",
	       ci.trees, ci.pairs, (double)ci.bytes / 1048576.0, kv_now() - t0,
	       (double)before / 1048576.0, (double)after / 1048576.0);
	return code;
}
