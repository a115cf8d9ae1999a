/*
 * fuzz_store.c — opening a store from an arbitrary directory image (superblocks, pages and
 * WAL segments), then checking every tree in it.
 *
 * Input: byte 0 is flags (bit 0: fix the checksums of pages and of what looks like log
 * headers, groups and records; bit 1: close the store cleanly (a checkpoint) rather than
 * cutting the power; bit 2: then open it a second time); bytes 1-4 the data file's length
 * (little-endian, at most 64 pages of 4 KiB), the data file, then the log's segments of
 * 16 KiB each (wal-<LSN>.seg from LSN 0 on; an all-zero chunk is no file).
 * Checks: open returns 0 or an error; on an open store every tree the catalog lists opens or
 * reports an error, pbox_bt_verify returns 0 or an error, and on a tree that verifies a scan
 * and a cursor walk see exactly the keys verify counted, in ascending order, and every key
 * looks up; close returns; nothing crashes or leaks.
 */
#include "fuzz_util.h"

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>

#define SEG (16u << 10)
#define PS 4096u
#define MAX_PAGES 64u

typedef struct names {
	char name[8][PBOX_BT_NAME_MAX + 1];
	unsigned n;
} names;

static int list_fn(const char *name, size_t len, void *arg)
{
	names *ns = arg;
	if (ns->n < 8 && len <= PBOX_BT_NAME_MAX) {
		memcpy(ns->name[ns->n], name, len);
		ns->name[ns->n++][len] = 0;
	}
	return 0;
}

typedef struct walk {
	pbox_bt *bt;
	uint64_t n;
	uint8_t prev[8192];
	size_t plen;
	int bad;
} walk;

static int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	return c ? c : (al < bl ? -1 : al > bl);
}

static int scan_fn(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	walk *w = arg;
	(void)val;
	(void)vlen;
	if (w->n && kcmp(w->prev, w->plen, key, klen) >= 0)
		w->bad = 1;
	if (klen <= sizeof(w->prev)) {
		memcpy(w->prev, key, klen);
		w->plen = klen;
	}
	w->n++;
	return 0;
}

static void check_tree(pbox_store *st, const char *name)
{
	pbox_bt *bt;
	if (pbox_bt_open(st, name, &bt))
		return;
	pbox_bt_verify_info vi;
	int rc = pbox_bt_verify(bt, &vi);
	if (rc == 0) {
		walk w = { .bt = bt };
		rc = pbox_bt_scan(bt, NULL, 0, NULL, 0, scan_fn, &w);
		if (rc == 0) {
			FZ_CHECK(!w.bad, "tree %s: scan out of order", name);
			FZ_CHECK(w.n == vi.keys, "tree %s: scan saw %llu keys, verify %llu", name,
				 (unsigned long long)w.n, (unsigned long long)vi.keys);
		}
		pbox_bt_cursor *c;
		if (pbox_bt_cursor_open(bt, &c) == 0) {
			uint64_t n = 0;
			for (rc = pbox_bt_cursor_first(c); rc == 0; rc = pbox_bt_cursor_next(c)) {
				const void *k, *v;
				size_t kl, vl;
				if (pbox_bt_cursor_key(c, &k, &kl) || pbox_bt_cursor_value(c, &v, &vl))
					break;
				size_t got;
				static uint8_t buf[1 << 16];
				int lr = pbox_bt_lookup(bt, k, kl, buf, sizeof(buf), &got);
				FZ_CHECK(lr == 0 || lr == PBOX_ETOOSMALL || lr == PBOX_ECORRUPT || lr < 0,
					 "tree %s: a key the cursor saw looks up as %s", name,
					 pbox_status_name(lr));
				if (++n > vi.keys + 1)
					break;
			}
			if (rc == PBOX_ENOTFOUND)
				FZ_CHECK(n == vi.keys, "tree %s: cursor saw %llu keys, verify %llu", name,
					 (unsigned long long)n, (unsigned long long)vi.keys);
			pbox_bt_cursor_close(c);
		}
	}
	pbox_bt_close(bt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	unsigned flags = data[0];
	size_t dlen = fz_get32(data + 1);
	data += 5;
	size -= 5;
	if (dlen > size)
		dlen = size;
	if (dlen > (size_t)MAX_PAGES * PS)
		dlen = (size_t)MAX_PAGES * PS;
	pbox_io_memfs *fs;
	if (pbox_io_memfs_create(&fs))
		return 0;
	pbox_io *io = pbox_io_memfs_io(fs);
	FZ_CHECK(io->mkdir(io, "/st", 0755) == 0 && io->mkdir(io, "/st/wal", 0755) == 0, "mkdir");
	uint8_t *buf = malloc(dlen > SEG ? dlen : SEG);
	FZ_CHECK(buf != NULL, "out of memory");
	memcpy(buf, data, dlen);
	if (flags & 1)
		fz_fix_pages(buf, dlen, PS);
	FZ_CHECK(fz_put_file(io, "/st/data", buf, dlen) == 0, "data");
	FZ_CHECK(fz_put_file(io, "/st/LOCK", NULL, 0) == 0, "LOCK");
	data += dlen;
	size -= dlen;
	for (unsigned s = 0; size && s < 8; s++) {
		size_t n = size < SEG ? size : SEG;
		memset(buf, 0, SEG);
		memcpy(buf, data, n);
		data += n;
		size -= n;
		bool zero = true;
		for (size_t i = 0; i < n && zero; i++)
			zero = buf[i] == 0;
		if (zero)
			continue;
		if (flags & 1)
			fz_fix_segment(buf, SEG);
		char path[64];
		snprintf(path, sizeof(path), "/st/wal/wal-%016llx.seg", (unsigned long long)s * SEG);
		FZ_CHECK(fz_put_file(io, path, buf, SEG) == 0, "write %s", path);
	}
	free(buf);

	pbox_store_options o;
	pbox_store_options_init(&o);
	o.io = io;
	char err[256] = "";
	o.errbuf = err;
	o.errbuf_len = sizeof(err);
	o.page_size = PS;
	o.budget_bytes = 64 * PS;
	o.max_bytes = (uint64_t)MAX_PAGES * PS;
	o.wal_segment_size = SEG;
	o.wal_flush_delay_us = 0;
	o.no_direct_io = true;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	o.redo = h;
	o.nredo = nh;
	for (int round = 0; round < ((flags & 4) ? 2 : 1); round++) {
		pbox_store *st;
		int rc = pbox_store_open("/st", &o, &st);
		if (getenv("PBOX_FUZZ_VERBOSE"))
			fprintf(stderr, "fuzz_store: open: %s (%s)\n", pbox_status_name(rc), err);
		if (rc) {
			FZ_CHECK(rc < 0, "open returned %d", rc);
			break;
		}
		names ns = { .n = 0 };
		(void)pbox_bt_list(st, list_fn, &ns);
		for (unsigned i = 0; i < ns.n; i++)
			check_tree(st, ns.name[i]);
		if (flags & 2) {
			(void)pbox_store_close(st);
		} else {
			pbox_io_memfs_powercut(fs, PBOX_POWERCUT_KEEP_ALL, 1);
			(void)pbox_store_close(st);
			pbox_io_memfs_restart(fs);
		}
	}
	pbox_io_memfs_destroy(fs);
	return 0;
}
