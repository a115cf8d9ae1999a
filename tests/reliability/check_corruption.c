/*
 * check_corruption.c — the corruption sweep of a whole store (data file and write-ahead log
 * together, read through the btree). tests/wal sweeps a bare log; this one asks what the
 * store's user sees.
 *
 * The image: a store on memfs with one tree of 64 keys (8 values on overflow pages: 16
 * pages), checkpointed, then a few durable puts, each its own log round, so the
 * log holds groups (with full-page images) past the checkpoint; then a crash.
 *
 * For every byte of the allocated pages of the data file and of the used part of every log
 * segment in turn: flip one bit, open the store, look every key up, verify the tree. Each
 * flip must be
 *   detected   open, a lookup or verify returns PBOX_ECORRUPT (every value a lookup did
 *              return is still exactly right), or
 *   harmless   every key has exactly its value and verify passes (the byte was not used,
 *              a second superblock stood in, recovery rewrote the page from a full-page
 *              image, ...), or
 *   a torn tail  only for flips inside the last log round: a damaged last group cannot be
 *              told from a write the power cut tore, and the log ends before it (tests/wal
 *              documents this); then the store is exactly the state before that round.
 * Never a crash, another error, a value that was not the last one written, or a key that
 * appears or disappears.
 *
 * Release builds flip every byte; ASan builds every 8th, TSan builds every 32nd (from an
 * offset the seed chooses), PBOX_STRESS_SCALE > 1 every byte there too;
 * PBOX_CORRUPTION_STRIDE=n flips every nth byte (the coverage build uses 8).
 */
#include "rel_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

typedef struct file {
	char path[128];
	uint8_t *data;
	size_t len;      /* bytes in the image */
	size_t sweep;    /* bytes to sweep: [0, sweep) */
	bool wal;
	size_t from;     /* segments: [64, from) is before the redo start, not swept */
	uint64_t base;   /* segments: LSN of byte 0 */
} file;

typedef struct image {
	pbox_io_memfs *fs;
	pbox_store_options o;
	char err[256];
	file f[16];
	int nf;
	int want[REL_NK];    /* every key's state (a version or REL_ABSENT) */
	unsigned last_key;   /* the key the last round wrote */
	int last_prev;       /* its state before that round */
	pbox_lsn last_lsn, end_lsn; /* the last round's groups */
} image;

static void opts(image *im)
{
	pbox_store_options_init(&im->o);
	im->o.io = pbox_io_memfs_io(im->fs);
	im->o.create = true;
	im->o.page_size = 4096;
	im->o.budget_bytes = 64 * 4096;
	im->o.max_bytes = 64 * 4096;     /* the smallest: the data file stays 256 KiB */
	im->o.wal_segment_size = 64u << 10;
	im->o.wal_flush_delay_us = 0;
	im->o.no_direct_io = true;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	im->o.redo = h;
	im->o.nredo = nh;
	im->o.errbuf = im->err;
	im->o.errbuf_len = sizeof(im->err);
}

static int add_file(const char *name, void *arg)
{
	image *im = arg;
	REQ(im->nf < 16, "too many files");
	file *f = &im->f[im->nf++];
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), REL_DIR "/wal/%s", name);
	return 0;
}

static void snapshot(image *im)
{
	pbox_io *io = pbox_io_memfs_io(im->fs);
	im->nf = 0;
	REQ(io->listdir(io, REL_DIR "/wal", add_file, im) == 0, "listdir");
	REQ(im->nf < 16, "too many files");
	file *d = &im->f[im->nf++];
	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), REL_DIR "/data");
	for (int i = 0; i < im->nf; i++) {
		file *f = &im->f[i];
		size_t cap = 4u << 20;
		f->data = malloc(cap);
		REQ(f->data != NULL, "malloc");
		int64_t n = pbox_io_memfs_peek(im->fs, f->path, f->data, cap, 0);
		REQ(n >= 0, "peek %s", f->path);
		f->len = (size_t)n;
	}
}

typedef struct extra {
	image *im;
	char names[16][160];
	int n;
} extra;

static int find_extra(const char *name, void *arg)
{
	extra *e = arg;
	char p[160];
	snprintf(p, sizeof(p), REL_DIR "/wal/%s", name);
	for (int i = 0; i < e->im->nf; i++)
		if (strcmp(e->im->f[i].path, p) == 0)
			return 0;
	if (e->n < 16)
		snprintf(e->names[e->n++], sizeof(e->names[0]), "%s", p);
	return 0;
}

/* Back to the image: its bytes, and no file it did not have. */
static void restore(image *im)
{
	pbox_io *io = pbox_io_memfs_io(im->fs);
	extra e = { .im = im };
	REQ(io->listdir(io, REL_DIR "/wal", find_extra, &e) == 0, "listdir");
	for (int i = 0; i < e.n; i++)
		REQ(io->unlink(io, e.names[i]) == 0, "unlink %s", e.names[i]);
	if (e.n)
		REQ(io->fsync_dir(io, REL_DIR "/wal") == 0, "fsync_dir");
	/* the log whole (open erases a torn tail); of the data file the allocated pages (a
	 * store whose power is cut before close writes nothing to it that lasts, and the rest
	 * of the file is never read) */
	for (int i = 0; i < im->nf; i++) {
		file *f = &im->f[i];
		REQ(pbox_io_memfs_poke(im->fs, f->path, f->data, f->wal ? f->len : f->sweep, 0) == 0,
		    "poke %s", f->path);
	}
}

/* Build the image; im->want describes it. */
static void build(image *im)
{
	memset(im, 0, sizeof(*im));
	REQ(pbox_io_memfs_create(&im->fs) == 0, "memfs");
	opts(im);
	pbox_store *st;
	pbox_bt *bt;
	rel_oracle or;
	rel_oracle_init(&or);
	REQ(pbox_store_open(REL_DIR, &im->o, &st) == 0, "create: %s", im->err);
	REQ(pbox_bt_create(st, REL_TREE, &bt) == 0, "tree");
	for (unsigned k = 0; k < REL_NK; k++) { /* every 8th value on an overflow page */
		while ((rel_vlen(k, or.ver + 1) >= 3000) != (k % 8 == 0))
			or.ver++;
		REQ(rel_put(bt, &or, k, 0) == 0, "put");
	}
	REQ(rel_del(bt, &or, 9, PBOX_BT_DURABLE) == 0, "del");
	REQ(pbox_store_checkpoint(st) == 0, "checkpoint");
	/* rounds past the checkpoint: each a durable write of its own */
	REQ(rel_put(bt, &or, 17, PBOX_BT_DURABLE) == 0, "put");
	REQ(rel_del(bt, &or, 33, PBOX_BT_DURABLE) == 0, "del");
	REQ(rel_put(bt, &or, 50, PBOX_BT_DURABLE) == 0, "put");
	REQ(rel_put(bt, &or, 2, PBOX_BT_DURABLE) == 0, "put");
	/* the last round: a small value over a small one (no split, no overflow page) */
	im->last_key = 20;
	im->last_prev = or.last[20];
	while (rel_vlen(20, or.ver + 1) > 100)
		or.ver++;
	im->last_lsn = pbox_wal_end_lsn(pbox_store_wal(st));
	REQ(rel_put(bt, &or, 20, PBOX_BT_DURABLE) == 0, "put");
	im->end_lsn = pbox_wal_end_lsn(pbox_store_wal(st));
	for (unsigned k = 0; k < REL_NK; k++)
		im->want[k] = or.last[k];
	pbox_store_stats ss;
	pbox_store_get_stats(st, &ss);
	/* the crash */
	pbox_io_memfs_powercut(im->fs, PBOX_POWERCUT_DROP_ALL, 1);
	pbox_bt_close(bt);
	(void)pbox_store_close(st);
	pbox_io_memfs_restart(im->fs);
	im->o.create = false;
	snapshot(im);
	for (int i = 0; i < im->nf; i++) {
		file *f = &im->f[i];
		const char *slash = strrchr(f->path, '/');
		if (strncmp(slash + 1, "wal-", 4) == 0) {
			f->wal = true;
			f->base = strtoull(slash + 5, NULL, 16);
			uint64_t used = ss.wal_end > f->base ? ss.wal_end - f->base : 0;
			f->sweep = used < f->len ? (size_t)used : f->len;
			/* from the redo start on: what recovery reads (and the header block) */
			f->from = ss.redo_start > f->base ? (size_t)(ss.redo_start - f->base) : 0;
			if (f->from < 4096) /* the header block's unused zeros are never read */
				f->from = 4096;
			if (f->from >= f->sweep)
				f->sweep = 0;
		} else if (strcmp(slash + 1, "data") == 0) {
			f->sweep = (size_t)(ss.page_count * 4096);
			if (f->sweep > f->len)
				f->sweep = f->len;
		}
	}
	fprintf(stderr, "corruption: image of %llu pages, log %llu..%llu (last round from %llu)\n",
		(unsigned long long)ss.page_count, (unsigned long long)ss.redo_start,
		(unsigned long long)ss.wal_end, (unsigned long long)im->last_lsn);
}

typedef struct tally {
	uint64_t flips, detected, harmless, torn_tail;
} tally;

/* Open, read, verify: the outcome of one damaged image. */
static void trial(image *im, const file *f, size_t off, tally *t)
{
	pbox_store *st = NULL;
	pbox_bt *bt = NULL;
	bool in_last = f->wal && f->base + off >= im->last_lsn && f->base + off < im->end_lsn;
	int rc = pbox_store_open(REL_DIR, &im->o, &st);
	t->flips++;
	if (rc == PBOX_ECORRUPT) {
		t->detected++;
		return;
	}
	REQ(rc == 0, "flip at %s+%zu: open returned %s (%s)", f->path, off, pbox_status_name(rc),
	    im->err);
	bool corrupt = false;
	rc = pbox_bt_open(st, REL_TREE, &bt);
	if (rc == PBOX_ECORRUPT) {
		corrupt = true;
	} else {
		REQ(rc == 0, "flip at %s+%zu: tree open returned %s", f->path, off,
		    pbox_status_name(rc));
		unsigned rolled = 0;
		for (unsigned k = 0; k < REL_NK; k++) {
			int s = rel_read(bt, k);
			if (s == PBOX_ECORRUPT) {
				corrupt = true;
				continue;
			}
			REQ(s >= REL_ABSENT, "flip at %s+%zu: lookup of key %u returned %s", f->path, off,
			    k, pbox_status_name(s));
			REQ(s != 0, "flip at %s+%zu: key %u holds a value that was never written",
			    f->path, off, k);
			if (s == im->want[k])
				continue;
			REQ(in_last && k == im->last_key && s == im->last_prev,
			    "flip at %s+%zu: key %u is in state %d, want %d (a wrong value)", f->path,
			    off, k, s, im->want[k]);
			rolled++;
		}
		rc = pbox_bt_verify(bt, NULL);
		REQ(rc == 0 || rc == PBOX_ECORRUPT, "flip at %s+%zu: verify returned %s", f->path, off,
		    pbox_status_name(rc));
		corrupt |= rc != 0;
		if (!corrupt && rolled)
			t->torn_tail++;
		pbox_bt_close(bt);
	}
	if (corrupt)
		t->detected++;
	else
		t->harmless++;
	/* leave without writing anything back: the machine dies */
	pbox_io_memfs_powercut(im->fs, PBOX_POWERCUT_DROP_ALL, 1);
	(void)pbox_store_close(st);
	pbox_io_memfs_restart(im->fs);
}

static void sweep_files(bool wal, unsigned stride, unsigned start)
{
	image im;
	build(&im);
	tally t = { 0 };
	for (int i = 0; i < im.nf; i++) {
		file *f = &im.f[i];
		if (f->wal != wal)
			continue;
		for (size_t off = start % stride; off < f->sweep; off += stride) {
			if (off >= 64 && off < f->from) { /* the header block's used part stays */
				off = f->from + (start % stride) - stride;
				continue;
			}
			uint8_t b = (uint8_t)(f->data[off] ^ (1u << (off % 8)));
			REQ(pbox_io_memfs_poke(im.fs, f->path, &b, 1, off) == 0, "poke");
			trial(&im, f, off, &t);
			restore(&im); /* open may have erased a torn tail or written pages */
		}
	}
	fprintf(stderr, "corruption: %s: %llu flips (every %u bytes): %llu detected, %llu harmless, "
			"%llu cut the log's last round (a torn tail)\n", wal ? "log" : "data file",
		(unsigned long long)t.flips, stride, (unsigned long long)t.detected,
		(unsigned long long)t.harmless, (unsigned long long)t.torn_tail);
	REQ(t.flips > 0, "nothing swept");
	for (int i = 0; i < im.nf; i++)
		free(im.f[i].data);
	pbox_io_memfs_destroy(im.fs);
}

static unsigned stride(void)
{
	const char *e = getenv("PBOX_CORRUPTION_STRIDE"); /* the coverage build samples */
	if (e && atoi(e) > 0)
		return (unsigned)atoi(e);
	if (pbox_test_scale() > 1)
		return 1;
	return REL_TSAN ? 32 : REL_SANITIZED ? 8 : 1;
}

START_TEST(test_data_file)
{
	sweep_files(false, stride(), (unsigned)pbox_test_seed());
}
END_TEST

START_TEST(test_log)
{
	sweep_files(true, stride(), (unsigned)pbox_test_seed());
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("corruption");
	TCase *tc = tcase_create("sweep");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_data_file);
	tcase_add_test(tc, test_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pbox_test_run(suite());
}
