/*
 * fuzz_ship.c — pbox_store_apply fed arbitrary bytes on a small replica.
 *
 * Setup (once per process, deterministic: one thread, no background flush or checkpoint):
 * a primary on memfs with a tree of 300 keys (some overflow values), a backup of it, then
 * 200 more keys and a transaction, durable. The backup's files are kept in memory.
 * Each input: a fresh memfs gets the backup's files, the replica opens from them, and the
 * input is applied: byte 0 is flags (bit 0: recompute the shipped group's CRC32C so the
 * fuzzer gets past it), the rest is the shipped group. Checks: apply returns 0, 1 or an
 * error, never crashes; a refused group (an error other than PBOX_EPOISONED) leaves the
 * replica's log where it was; on a replica that is not poisoned a read session sees the
 * tree verify or report an error; close returns.
 *
 * Seeds: with PBOX_FUZZ_SHIP_SEEDS=<dir> set, the first call writes the first groups a tail
 * ships after the backup (valid seeds: the first applies) and damaged copies of them to dir.
 */
#include "fuzz_util.h"

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/txn.h>
#include <pbox/wal.h>

#define SHIP_CRC_OFF 40u
#define NFILES 16

typedef struct file {
	char name[64];
	unsigned char *data;
	size_t len;
} file;

static file files[NFILES];
static unsigned nfiles;
static const pbox_redo_handler *handlers;
static unsigned nhandlers;

static void opts(pbox_store_options *o, pbox_io *io)
{
	pbox_store_options_init(o);
	o->io = io;
	o->page_size = 4096;
	o->budget_bytes = 128 * 4096;
	o->max_bytes = 64ull << 20;
	o->wal_segment_size = 1u << 20;
	o->wal_flush_delay_us = 0;
	o->wal_sync = PBOX_WAL_SYNC_NONE;
	o->checkpoint_log_bytes = 0;
	o->redo = handlers;
	o->nredo = nhandlers;
}

static void keep(pbox_io *io, const char *path, const char *name)
{
	int fd = io->open(io, path, O_RDONLY, 0);
	FZ_CHECK(fd >= 0 && nfiles < NFILES, "reading %s", path);
	uint64_t size = 0;
	FZ_CHECK(io->fsize(io, fd, &size) == 0, "size of %s", path);
	file *f = &files[nfiles++];
	snprintf(f->name, sizeof(f->name), "%.60s", name);
	f->len = (size_t)size;
	f->data = malloc(f->len ? f->len : 1);
	FZ_CHECK(f->data && pbox_io_pread_full(io, fd, f->data, f->len, 0) == 0, "%s", path);
	io->close(io, fd);
}

static int list_wal(const char *name, void *arg)
{
	char path[128], rel[64];
	snprintf(path, sizeof(path), "/bk/wal/%.48s", name);
	snprintf(rel, sizeof(rel), "wal/%.48s", name);
	keep(arg, path, rel);
	return 0;
}

static void put_keys(pbox_bt *bt, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		char k[16], v[1500];
		size_t vl = i % 50 == 3 ? sizeof(v) : 40;
		memset(v, 'a' + (int)(i % 26), vl);
		FZ_CHECK(pbox_bt_upsert(bt, k, (size_t)snprintf(k, sizeof(k), "k%05u", i), v, vl,
					0) == 0, "upsert");
	}
}

static void write_seed(const char *dir, const char *name, unsigned char flags,
		       const unsigned char *g, size_t len)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(&flags, 1, 1, f);
	fwrite(g, 1, len, f);
	fclose(f);
}

static void setup(void)
{
	pbox_bt_redo_handlers(&handlers, &nhandlers);
	pbox_io_memfs *fs;
	FZ_CHECK(pbox_io_memfs_create(&fs) == 0, "memfs");
	pbox_io *io = pbox_io_memfs_io(fs);
	pbox_store_options o;
	opts(&o, io);
	o.create = true;
	pbox_store *st;
	FZ_CHECK(pbox_store_open("/p", &o, &st) == 0, "primary");
	pbox_bt *bt;
	FZ_CHECK(pbox_bt_create(st, "t", &bt) == 0, "create");
	put_keys(bt, 0, 300);
	FZ_CHECK(pbox_wal_flush(pbox_store_wal(st)) == 0, "flush");
	FZ_CHECK(pbox_store_backup(st, "/bk", NULL, NULL) == 0, "backup");
	keep(io, "/bk/data", "data");
	keep(io, "/bk/LOCK", "LOCK");
	FZ_CHECK(io->listdir(io, "/bk/wal", list_wal, io) == 0, "list");
	const char *dir = getenv("PBOX_FUZZ_SHIP_SEEDS");
	if (dir) {
		pbox_lsn from = pbox_wal_durable_lsn(pbox_store_wal(st));
		put_keys(bt, 300, 500);
		pbox_txn *t;
		FZ_CHECK(pbox_txn_begin(st, 0, &t) == 0, "begin");
		FZ_CHECK(pbox_txn_put(t, bt, "k00001", 6, "txn", 3) == 0, "put");
		FZ_CHECK(pbox_txn_commit(t, PBOX_BT_DURABLE) == 0, "commit");
		pbox_tail *tl;
		FZ_CHECK(pbox_store_tail_open(st, from, NULL, &tl) == 0, "tail");
		static unsigned char g[1 << 20], d[1 << 20];
		for (unsigned i = 0; i < 6; i++) {
			size_t len = 0;
			if (pbox_store_tail_next(tl, g, sizeof(g), &len, NULL, NULL, 0) != 1)
				break;
			char name[32];
			snprintf(name, sizeof(name), "valid-%u", i);
			write_seed(dir, name, 0, g, len);
			if (i > 1)
				continue;
			memcpy(d, g, len); /* a flipped payload byte, the CRC fixed by the flag */
			d[len / 2] ^= 0x10;
			snprintf(name, sizeof(name), "flip-%u", i);
			write_seed(dir, name, 1, d, len);
			snprintf(name, sizeof(name), "cut-%u", i);
			write_seed(dir, name, 0, g, len - 3);
		}
		pbox_store_tail_close(tl);
	}
	pbox_bt_close(bt);
	FZ_CHECK(pbox_store_close(st) == 0, "close");
	pbox_io_memfs_destroy(fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	pbox_io_memfs *fs;
	FZ_CHECK(pbox_io_memfs_create(&fs) == 0, "memfs");
	pbox_io *io = pbox_io_memfs_io(fs);
	io->mkdir(io, "/r", 0755);
	io->mkdir(io, "/r/wal", 0755);
	for (unsigned i = 0; i < nfiles; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/r/%.63s", files[i].name);
		FZ_CHECK(fz_put_file(io, path, files[i].data, files[i].len) == 0, "%s", path);
	}
	pbox_store_options o;
	opts(&o, io);
	o.replica = true;
	o.replica_txn = (pbox_replica_txn){ PBOX_REDO_TYPE_USER + 0x18, PBOX_REDO_TYPE_USER + 0x19,
					    PBOX_REDO_TYPE_USER + 0x1a };
	pbox_store *st;
	FZ_CHECK(pbox_store_open("/r", &o, &st) == 0, "replica");
	size_t len = size - 1;
	unsigned char *g = malloc(len ? len : 1);
	FZ_CHECK(g, "malloc");
	if (len)
		memcpy(g, data + 1, len);
	if ((data[0] & 1) && len >= SHIP_CRC_OFF + 4) {
		fz_put32(g + SHIP_CRC_OFF, 0);
		fz_put32(g + SHIP_CRC_OFF, pbox_crc32c(0, g, len));
	}
	pbox_lsn before = pbox_store_replica_lsn(st);
	char err[256];
	int rc = pbox_store_apply(st, g, len, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 1 || rc < 0, "apply returned %d", rc);
	/* a replica refuses work only once poisoned (mtr_begin says which) */
	pbox_mtr *m = NULL;
	bool poisoned = pbox_mtr_begin(st, &m) == PBOX_EPOISONED;
	FZ_CHECK(!m, "a replica began a mini-transaction");
	if (rc < 0 && !poisoned)
		FZ_CHECK(pbox_store_replica_lsn(st) == before, "a refused group moved the log");
	if (!poisoned) {
		pbox_bt *bt;
		if (pbox_store_read_begin(st, 0) == 0) {
			if (pbox_bt_open(st, "t", &bt) == 0) {
				pbox_bt_verify_info vi;
				(void)pbox_bt_verify(bt, &vi);
				pbox_bt_close(bt);
			}
			pbox_store_read_end(st);
		}
	}
	(void)pbox_store_close(st);
	free(g);
	pbox_io_memfs_destroy(fs);
	return 0;
}
