/*
 * fuzz_raftsnap.c — the raftkv snapshot archive (examples/raftkv/snap.c, linked into this
 * target only) on arbitrary bytes: rkv_snap_index, and rkv_snap_unpack into a fresh
 * directory under $TMPDIR (or /tmp), removed afterwards.
 *
 * Input: byte 0 is a mode; the rest is the would-be archive. Mode bit 0: the harness first
 * recomputes the checksums it can find — the header's, each file entry's (walking the
 * entries for as long as their lengths fit) and the trailer's — so mutations get past the
 * checksums to the name, size and extent rules behind them.
 * Checks: both calls return 0 or -1 (never crash, never read outside the archive: the
 * harness passes a copy of exactly its length). A failed unpack explains itself in one line
 * and creates nothing. An unpack that succeeds implies a valid header (rkv_snap_index gives
 * its index); the directory it made packs again, that archive unpacks too, and packing
 * the second copy gives the same bytes as the first (pack depends on contents only).
 */
#define _GNU_SOURCE
#include "fuzz_util.h"
#include "raftkv.h"

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The checksum fix-ups of mode bit 0; the layout is snap.c's table. */
static void fix_crcs(uint8_t *p, size_t len)
{
	if (len < 28)
		return;
	fz_put32(p + 24, pbox_crc32c(0, p, 24));
	size_t end = len >= 40 ? len - 12 : len, o = 28;
	uint32_t n = fz_get32(p + 16);
	for (uint32_t i = 0; i < n && end - o >= 2; i++) {
		size_t start = o, nl = (size_t)get_le(p + o, 2);
		o += 2;
		if (nl > end - o || end - o - nl < 12)
			break;
		o += nl;
		uint32_t ne = fz_get32(p + o + 8);
		o += 12;
		for (uint32_t e = 0; e < ne && end - o >= 12; e++) {
			uint32_t el = fz_get32(p + o + 8);
			o += 12;
			o += el < end - o ? el : end - o;
		}
		if (end - o < 4)
			break;
		fz_put32(p + o, pbox_crc32c(0, p + start, o - start));
		o += 4;
	}
	if (len >= 40)
		fz_put32(p + len - 4, pbox_crc32c(0, p, len - 12));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len = size - 1;
	uint8_t *a = malloc(len ? len : 1);
	FZ_CHECK(a != NULL, "out of memory");
	memcpy(a, data + 1, len);
	if (data[0] & 1)
		fix_crcs(a, len);
	uint64_t idx = 0;
	int irc = rkv_snap_index(a, len, &idx);
	FZ_CHECK(irc == 0 || irc == -1, "index returned %d", irc);

	const char *tmp = getenv("TMPDIR");
	char base[4096], u[4200], v[4200];
	snprintf(base, sizeof(base), "%s/fuzz-raftsnap-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	FZ_CHECK(mkdtemp(base) != NULL, "mkdtemp %s: %s", base, strerror(errno));
	snprintf(u, sizeof(u), "%s/u", base);
	snprintf(v, sizeof(v), "%s/v", base);
	char err[512] = "";
	int rc = rkv_snap_unpack(a, len, u, err, sizeof(err));
	struct stat st;
	if (rc) {
		FZ_CHECK(rc == -1, "unpack returned %d", rc);
		FZ_CHECK(err[0] && !strchr(err, '\n'), "message '%s'", err);
		FZ_CHECK(lstat(u, &st) == -1 && errno == ENOENT, "a failed unpack left %s", u);
	} else {
		FZ_CHECK(irc == 0, "unpacked an archive whose header rkv_snap_index refuses");
		void *b1, *b2;
		size_t l1, l2;
		FZ_CHECK(rkv_snap_pack(u, idx, &b1, &l1, err, sizeof(err)) == 0, "pack: %s", err);
		FZ_CHECK(rkv_snap_unpack(b1, l1, v, err, sizeof(err)) == 0, "unpack again: %s", err);
		FZ_CHECK(rkv_snap_pack(v, idx, &b2, &l2, err, sizeof(err)) == 0, "pack: %s", err);
		FZ_CHECK(l1 == l2 && !memcmp(b1, b2, l1), "pack is not deterministic");
		uint64_t i2 = 0;
		FZ_CHECK(rkv_snap_index(b1, l1, &i2) == 0 && i2 == idx, "index not kept");
		free(b1);
		free(b2);
	}
	FZ_CHECK(nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "remove %s", base);
	free(a);
	return 0;
}
