/*
 * fuzz_wal.c — opening and replaying a log whose segments are arbitrary bytes.
 *
 * Input: byte 0 is flags (bit 0: fix the checksums of what looks like headers, groups and
 * records, so that the fuzzer gets past them; bit 1: append and sync a group after open;
 * bits 2-3: the sync backend), then the image of segment 0 and, past 16 KiB, of segment 1
 * (16 KiB segments; short images are zero-padded, longer ones cut).
 * Checks: open returns 0 or an error (never crashes); an open log replays as a sequence of
 * well-formed groups (LSNs ascending, every record within its group) that ends in 0 or an
 * error code, and still takes an append; close returns.
 */
#include "fuzz_util.h"

#include <pbox/status.h>
#include <pbox/wal.h>

#define SEG (16u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0];
	data++;
	size--;
	pbox_io_memfs *fs;
	if (pbox_io_memfs_create(&fs))
		return 0;
	pbox_io *io = pbox_io_memfs_io(fs);
	FZ_CHECK(io->mkdir(io, "/log", 0755) == 0, "mkdir");
	uint8_t *seg = calloc(1, SEG);
	FZ_CHECK(seg != NULL, "out of memory");
	for (unsigned s = 0; s < 2 && (s == 0 || size > SEG); s++) {
		size_t off = (size_t)s * SEG, n = size - off < SEG ? size - off : SEG;
		memset(seg, 0, SEG);
		memcpy(seg, data + off, n);
		if (flags & 1)
			fz_fix_segment(seg, SEG);
		char path[64];
		snprintf(path, sizeof(path), "/log/wal-%016llx.seg", (unsigned long long)s * SEG);
		FZ_CHECK(fz_put_file(io, path, seg, SEG) == 0, "write %s", path);
	}
	free(seg);

	pbox_wal_options o;
	pbox_wal_options_init(&o);
	o.io = io;
	o.segment_size = SEG;
	o.buffer_size = 64u << 10;
	o.sync = (pbox_wal_sync)((flags >> 2) & 3);
	pbox_wal *w;
	int rc = pbox_wal_open("/log", &o, &w);
	if (rc == 0) {
		pbox_wal_iter *it;
		rc = pbox_wal_iter_open(w, 0, &it);
		FZ_CHECK(rc == 0, "iter_open from the start: %s", pbox_status_name(rc));
		pbox_wal_group g;
		pbox_lsn last = 0;
		while ((rc = pbox_wal_iter_next(it, &g)) == 1) {
			FZ_CHECK(g.lsn >= last && g.end_lsn > g.lsn, "group LSNs out of order");
			last = g.end_lsn;
			pbox_wal_record r;
			uint32_t nrec = 0;
			volatile uint8_t sink = 0;
			while (pbox_wal_iter_record(it, &r) == 1) {
				FZ_CHECK(r.lsn >= g.lsn && r.lsn + r.len <= g.end_lsn, "record outside its group");
				for (uint32_t i = 0; i < r.len; i += 64)
					sink ^= ((const uint8_t *)r.data)[i];
				nrec++;
			}
			(void)sink;
			FZ_CHECK(nrec == g.nrec, "group of %u records replayed %u", g.nrec, nrec);
		}
		FZ_CHECK(rc == 0 || rc < 0, "iter_next returned %d", rc);
		pbox_wal_iter_close(it);
		if (flags & 2) {
			pbox_wal_rec rec = { .type = 9, .data = "fuzz", .len = 4 };
			pbox_lsn end;
			rc = pbox_wal_append(w, &rec, 1, &end);
			if (rc == 0)
				rc = pbox_wal_wait_durable(w, end);
			FZ_CHECK(rc == 0 || rc < 0, "append/wait returned %d", rc); /* any error is fine */
		}
		(void)pbox_wal_close(w);
	} else {
		FZ_CHECK(rc < 0, "open returned %d", rc);
	}
	pbox_io_memfs_destroy(fs);
	return 0;
}
