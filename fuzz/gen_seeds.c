/*
 * gen_seeds.c — writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from
 * real structures made by the libraries: btree nodes (leaves and inner nodes, 4 and 16 KiB),
 * WAL segments holding groups, small store images (crashed before a checkpoint, and after
 * one), operation sequences, and raftkv's command entries and snapshot archives (made by
 * examples/raftkv's own encoder and packer, the archives from a small tree on the real file
 * system under /tmp). Rerunning it gives equivalent files (logs get a random id).
 *
 *     fuzz_gen_seeds <fuzz/corpus directory>      (scripts: fuzz/gen-corpus.sh)
 */
#include "fuzz_util.h"
#include "node.h"
#include "raftkv.h"

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/wal.h>

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *outdir;

static void out(const char *target, const char *name, const void *a, size_t al, const void *b,
		size_t bl)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", outdir, target);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(p, "wb");
	FZ_CHECK(f != NULL, "%s", p);
	FZ_CHECK(fwrite(a, 1, al, f) == al && (!bl || fwrite(b, 1, bl, f) == bl), "write %s", p);
	fclose(f);
}

/* ---- node ---------------------------------------------------------------------------------- */

static void node_seed(const char *name, uint32_t ps, unsigned sel, bool inner, unsigned nkeys,
		      unsigned vlen, bool fences)
{
	uint8_t *p = aligned_alloc(4096, ps);
	FZ_CHECK(p != NULL, "memory");
	memset(p, 0, ps);
	const char *lo = fences ? "key-0000" : NULL, *hi = fences ? "key-9999" : NULL;
	uint32_t ll = fences ? 8 : 0;
	int rc = inner ? pbox__bt_node_init_inner(p, ps, lo, ll, hi, ll, 100)
		       : pbox__bt_node_init_leaf(p, ps, lo, ll, hi, ll);
	FZ_CHECK(rc == 0, "init");
	uint8_t val[512];
	memset(val, 0xab, sizeof(val));
	for (unsigned i = 0; i < nkeys; i++) {
		char k[16];
		snprintf(k, sizeof(k), "key-%04u", 1 + i * 7);
		if (inner) {
			uint8_t c[8] = { (uint8_t)(200 + i) };
			rc = pbox__bt_node_insert(p, ps, k, 8, c, 8, 0);
		} else {
			rc = pbox__bt_node_insert(p, ps, k, 8, val, vlen, 0);
		}
		if (rc)
			break;
	}
	if (!inner && nkeys > 4) /* dead bytes */
		(void)pbox__bt_node_remove(p, ps, 1);
	FZ_CHECK(pbox__bt_node_verify(p, ps) == 0, "seed node does not verify");
	uint8_t s = (uint8_t)sel;
	/* the used part of the page: the heap sits at its end, so the whole page */
	out("node", name, &s, 1, p, ps);
	free(p);
}

/* ---- wal ----------------------------------------------------------------------------------- */

static void wal_seed(void)
{
	pbox_io_memfs *fs;
	FZ_CHECK(pbox_io_memfs_create(&fs) == 0, "memfs");
	pbox_io *io = pbox_io_memfs_io(fs);
	FZ_CHECK(io->mkdir(io, "/log", 0755) == 0, "mkdir");
	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = io;
	o.segment_size = 16u << 10;
	o.buffer_size = 64u << 10;
	o.create = true;
	o.max_spares = 0;
	pbox_wal *w;
	FZ_CHECK(pbox_wal_open("/log", &o, &w) == 0, "wal open");
	uint8_t buf[700];
	for (unsigned g = 0; g < 30; g++) {
		pbox_wal_rec r[3];
		unsigned n = 1 + g % 3;
		for (unsigned i = 0; i < n; i++) {
			memset(buf, (int)(g * 3 + i), sizeof(buf));
			r[i] = (pbox_wal_rec){ .type = (uint16_t)(5 + i), .data = buf,
					       .len = (uint32_t)((g * 37 + i * 11) % 700) };
		}
		pbox_lsn end;
		FZ_CHECK(pbox_wal_append(w, r, n, &end) == 0, "append");
		if (g % 4 == 3)
			FZ_CHECK(pbox_wal_wait_durable(w, end) == 0, "sync");
	}
	FZ_CHECK(pbox_wal_close(w) == 0, "close");
	static uint8_t seg[2][16u << 10];
	int64_t n0 = pbox_io_memfs_peek(fs, "/log/wal-0000000000000000.seg", seg[0], sizeof(seg[0]), 0);
	int64_t n1 = pbox_io_memfs_peek(fs, "/log/wal-0000000000004000.seg", seg[1], sizeof(seg[1]), 0);
	FZ_CHECK(n0 == (int64_t)sizeof(seg[0]), "segment 0");
	/* one segment, then both; plain and with checksum fix-ups; a short one */
	uint8_t f0 = 0, f1 = 1, f3 = 3, f6 = 6 | 1;
	out("wal", "one-segment", &f0, 1, seg[0], sizeof(seg[0]));
	out("wal", "one-segment-fix", &f1, 1, seg[0], sizeof(seg[0]));
	out("wal", "short-fix-append", &f3, 1, seg[0], 6000);
	if (n1 == (int64_t)sizeof(seg[1]))
		out("wal", "two-segments-fsync", &f6, 1, seg, sizeof(seg));
	pbox_io_memfs_destroy(fs);
}

/* ---- store --------------------------------------------------------------------------------- */

static void store_seed(const char *name, bool checkpoint, unsigned flags)
{
	pbox_io_memfs *fs;
	FZ_CHECK(pbox_io_memfs_create(&fs) == 0, "memfs");
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = pbox_io_memfs_io(fs);
	o.create = true;
	o.page_size = 4096;
	o.budget_bytes = 64 * 4096;
	o.max_bytes = 64 * 4096;
	o.wal_segment_size = 16u << 10;
	o.wal_flush_delay_us = 0;
	o.no_direct_io = true;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	o.redo = h;
	o.nredo = nh;
	pbox_store *st;
	FZ_CHECK(pbox_store_open("/st", &o, &st) == 0, "store");
	pbox_bt *a, *b;
	FZ_CHECK(pbox_bt_create(st, "a", &a) == 0 && pbox_bt_create(st, "b", &b) == 0, "trees");
	uint8_t val[1500];
	for (unsigned i = 0; i < 24; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%02u", i);
		memset(val, (int)i, sizeof(val));
		size_t vl = i % 8 == 5 ? 1500 : 20 + i;
		FZ_CHECK(pbox_bt_upsert(i % 3 ? a : b, k, 3, val, vl, 0) == 0, "put");
		if (checkpoint && i == 15)
			FZ_CHECK(pbox_store_checkpoint(st) == 0, "checkpoint");
	}
	FZ_CHECK(pbox_bt_remove(a, "k01", 3, PBOX_BT_DURABLE) == 0, "remove");
	pbox_bt_close(a);
	pbox_bt_close(b);
	pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 1);
	(void)pbox_store_close(st);
	pbox_io_memfs_restart(fs);
	/* the image: flags, data length, data, segments from LSN 0 */
	static uint8_t img[5 + 64 * 4096 + 8 * (16u << 10)];
	size_t n = 5;
	int64_t dl = pbox_io_memfs_peek(fs, "/st/data", img + 5, 64 * 4096, 0);
	FZ_CHECK(dl > 0, "data");
	/* keep the allocated pages only (the rest of the file is zeros) */
	size_t used = (size_t)dl;
	while (used > 4096 && img[5 + used - 1] == 0)
		used--;
	used = (used + 4095) / 4096 * 4096;
	img[0] = (uint8_t)flags;
	fz_put32(img + 1, (uint32_t)used);
	n += used;
	unsigned last = 0;
	for (unsigned s = 0; s < 8; s++) {
		char p[64];
		snprintf(p, sizeof(p), "/st/wal/wal-%016llx.seg", (unsigned long long)s * (16u << 10));
		int64_t sl = pbox_io_memfs_peek(fs, p, img + n + (size_t)s * (16u << 10), 16u << 10, 0);
		if (sl > 0)
			last = s + 1;
		else
			memset(img + n + (size_t)s * (16u << 10), 0, 16u << 10);
	}
	n += (size_t)last * (16u << 10);
	out("store", name, img, n, NULL, 0);
	pbox_io_memfs_destroy(fs);
}

/* ---- ops ----------------------------------------------------------------------------------- */

static void ops_seeds(void)
{
	/* inserts, upserts (some overflow), lookups, a scan, a cursor walk, a batch, a
	 * checkpoint, removes, a durable op, a power cut, a reopen, verify */
	static const uint8_t a[] = {
		0x00, 1, 3, 0x00, 2, 4, 0x01, 3, 7, 0x01, 9, 15, 0x81, 17, 2, 0x00, 25, 6,
		0x04, 3, 255, 0x04, 9, 1, 0x05, 0, 32, 0x05, 0x83, 20, 0x06, 2, 0xf5,
		0x06, 0x91, 0x37, 0x07, 4, 5, 1, 0x86, 0, 12, 9, 31, 3, 0x08, 0x03, 2,
		0x02, 9, 40, 0x83, 3, 0, 0x0a, 2, 0x04, 17, 255, 0x09, 0x0b, 0x01, 30, 23,
		0x0a, 1, 0x0b,
	};
	out("ops", "mixed", a, sizeof(a), NULL, 0);
	uint8_t b[600];
	size_t n = 0;
	for (unsigned i = 0; i < 64 && n + 3 <= sizeof(b); i++) { /* a fill, some durable */
		b[n++] = (uint8_t)(0x01 | (i % 9 == 8 ? 0x80 : 0));
		b[n++] = (uint8_t)i;
		b[n++] = (uint8_t)(i * 5);
	}
	b[n++] = 0x0a;
	b[n++] = 3; /* a torn-tail cut */
	for (unsigned i = 0; i < 40 && n + 2 <= sizeof(b); i++) {
		b[n++] = 0x03;
		b[n++] = (uint8_t)(i * 3);
	}
	b[n++] = 0x0b;
	out("ops", "fill-cut-drain", b, n, NULL, 0);
	/* kill -9 in a fill, reopen, more writes (some durable), then the power goes */
	n = 0;
	for (unsigned i = 0; i < 40; i++) {
		b[n++] = 0x01;
		b[n++] = (uint8_t)i;
		b[n++] = (uint8_t)(i * 7);
	}
	b[n++] = 0x0c;
	b[n++] = 0;
	for (unsigned i = 0; i < 30; i++) {
		b[n++] = (uint8_t)(0x01 | (i % 5 == 4 ? 0x80 : 0));
		b[n++] = (uint8_t)(i + 3);
		b[n++] = (uint8_t)(i * 11);
	}
	b[n++] = 0x0a;
	b[n++] = 0; /* DROP_ALL */
	b[n++] = 0x0b;
	out("ops", "crash-reopen-write-cut", b, n, NULL, 0);
	/* transactions: a held snapshot, commits (one durable, one with a conflicting
	 * outside change, one aborted), the snapshot checked, a commit cut by a power cut */
	static const uint8_t t[] = {
		0x01, 1, 3, 0x01, 2, 4, 0x01, 5, 0x0f, 0x0e,
		0x0d, 4, 0x00, 1, 9, 0x82, 0, 5, 7, 3, 0x17,
		0x8d, 3, 0x01, 6, 2, 7, 3, 8, 4,
		0x0d, 2, 0x44 | (6 << 1), 6, 5, 9, 9,
		0x0d, 2, 0x80, 10, 1, 11, 2,
		0x0e, 0x03, 1, 0x0e,
		0x0d, 5, 0x01, 12, 7, 13, 0x0f, 14, 1, 0x81, 0, 15, 2,
		0x0a, 2, 0x0b,
		0x0d, 3, 0x00, 20, 1, 21, 2, 22, 3, 0x0c, 0, 0x0b,
	};
	out("ops", "txn-mixed", t, sizeof(t), NULL, 0);
}

/* ---- raftkv: command entries and snapshot archives ---------------------------------------- */

/* A seed is a mode byte (bit 0: the harness fixes the checksums) and the bytes. */
static void raft_cmd_seed(const char *name, uint8_t mode, const rkv_cmd *c, size_t cut)
{
	static uint8_t buf[8192];
	size_t n = rkv_cmd_encode(c, buf, sizeof(buf));
	FZ_CHECK(n > 0, "encode %s", name);
	out("raftcmd", name, &mode, 1, buf, n - cut);
}

static void raftcmd_seeds(void)
{
	rkv_op put = { RKV_OP_PUT, (const uint8_t *)"user:1", 6, (const uint8_t *)"alice", 5 };
	rkv_op del = { RKV_OP_DEL, (const uint8_t *)"user:2", 6, NULL, 0 };
	rkv_op empty = { RKV_OP_PUT, NULL, 0, NULL, 0 };
	rkv_op txn[6] = { put, del, empty, put, del, put };
	rkv_cmd c = { .client = 0x1234, .seq = 1, .nops = 1, .ops = &put };
	raft_cmd_seed("put", 0, &c, 0);
	c = (rkv_cmd){ .nops = 1, .ops = &del };
	raft_cmd_seed("del-no-session", 0, &c, 0);
	c = (rkv_cmd){ .client = 7, .seq = 42, .nops = 1, .txn = true, .ops = &empty };
	raft_cmd_seed("txn-empty-key-fix", 1, &c, 0);
	c = (rkv_cmd){ .client = 7, .seq = 43, .nops = 6, .txn = true, .ops = txn };
	raft_cmd_seed("txn-6", 0, &c, 0);
	raft_cmd_seed("txn-6-fix", 1, &c, 0);
	raft_cmd_seed("txn-6-cut", 0, &c, 7);
}

static void put_tree_file(const char *dir, const char *name, size_t size, size_t off,
			  size_t n, uint8_t seed)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FZ_CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "%s", p);
	uint8_t b[6000];
	FZ_CHECK(n <= sizeof(b), "seed file chunk");
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
	FZ_CHECK(pwrite(fd, b, n, (off_t)off) == (ssize_t)n && close(fd) == 0, "write %s", p);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void raftsnap_seeds(void)
{
	char dir[] = "/tmp/pbox-gen-raftsnap-XXXXXX", p[4096];
	FZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	/* a store's shape: a data file with holes, a log segment mostly zeros, small files */
	put_tree_file(dir, "data", 64u << 10, 8192, 5000, 1);
	put_tree_file(dir, "odd", 700, 0, 700, 2);
	put_tree_file(dir, "empty", 0, 0, 0, 0);
	put_tree_file(dir, "LOCK", 0, 0, 0, 0);
	snprintf(p, sizeof(p), "%s/wal", dir);
	FZ_CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
	put_tree_file(dir, "wal/wal-0000000000000000.seg", 16u << 10, 0, 300, 3);
	void *a;
	size_t n;
	char err[256];
	FZ_CHECK(rkv_snap_pack(dir, 1234, &a, &n, err, sizeof(err)) == 0, "pack: %s", err);
	uint8_t m0 = 0, m1 = 1;
	out("raftsnap", "store", &m0, 1, a, n);
	out("raftsnap", "store-fix", &m1, 1, a, n);
	out("raftsnap", "store-cut", &m0, 1, a, n / 2);
	free(a);
	FZ_CHECK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 && mkdir(dir, 0755) == 0,
		 "empty %s", dir);
	put_tree_file(dir, "only", 100, 0, 100, 4);
	FZ_CHECK(rkv_snap_pack(dir, 1, &a, &n, err, sizeof(err)) == 0, "pack: %s", err);
	out("raftsnap", "one-file-fix", &m1, 1, a, n);
	free(a);
	FZ_CHECK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 && mkdir(dir, 0755) == 0,
		 "empty %s", dir);
	FZ_CHECK(rkv_snap_pack(dir, 0, &a, &n, err, sizeof(err)) == 0, "pack: %s", err);
	out("raftsnap", "no-file", &m0, 1, a, n);
	free(a);
	FZ_CHECK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "remove %s", dir);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);
	node_seed("leaf-4k", 4096, 0, false, 20, 40, true);
	node_seed("leaf-4k-inf", 4096, 0, false, 6, 300, false);
	node_seed("leaf-4k-empty", 4096, 0, false, 0, 0, true);
	node_seed("inner-4k", 4096, 0, true, 30, 8, true);
	node_seed("leaf-16k", 16384, 2, false, 60, 100, true);
	wal_seed();
	store_seed("crashed", false, 0);
	store_seed("checkpointed-clean-close", true, 2 | 4);
	store_seed("crashed-fix", false, 1);
	ops_seeds();
	raftcmd_seeds();
	raftsnap_seeds();
	return 0;
}
