/* consumer.c — links against an installed pagebox and uses each of its six libraries once:
 * a CRC, a latch, a swip, a WAL option, and a store with a B+tree in a scratch directory. */
#define _GNU_SOURCE
#include <pbox/btree.h>
#include <pbox/crc32c.h>
#include <pbox/latch.h>
#include <pbox/status.h>
#include <pbox/swip.h>
#include <pbox/wal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	if (pbox_crc32c(0, "123456789", 9) != 0xE3069283u) {
		fprintf(stderr, "consumer: wrong CRC32C\n");
		return 1;
	}
	pbox_latch l;
	pbox_latch_init(&l);
	uint64_t v;
	if (!pbox_latch_opt_begin(&l, &v) || !pbox_latch_opt_validate(&l, v)) {
		fprintf(stderr, "consumer: latch\n");
		return 1;
	}
	pbox_swip s;
	pbox_swip_init(&s);
	if (pbox_swip_state(pbox_swip_load(&s)) != PBOX_FRAME_EVICTED) {
		fprintf(stderr, "consumer: swip\n");
		return 1;
	}
	pbox_wal_sync sync;
	if (pbox_wal_sync_parse("io_uring", &sync) != 0 || sync != PBOX_WAL_SYNC_IO_URING) {
		fprintf(stderr, "consumer: wal\n");
		return 1;
	}
	char dir[] = "/tmp/pbox-consumer-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char store_dir[64];
	snprintf(store_dir, sizeof(store_dir), "%s/db", dir);
	pbox_store_options o;
	pbox_store_options_init(&o);
	o.create = true;
	o.max_bytes = 1ull << 30;
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	o.redo = h;
	o.nredo = nh;
	pbox_store *st = NULL;
	pbox_bt *bt;
	char val[8];
	size_t vl = 0;
	int r = pbox_store_open(store_dir, &o, &st);
	if (!r && !(r = pbox_bt_open_or_create(st, "t", &bt))) {
		if (!(r = pbox_bt_upsert(bt, "k", 1, "value", 5, PBOX_BT_DURABLE)))
			r = pbox_bt_lookup(bt, "k", 1, val, sizeof(val), &vl);
		pbox_bt_close(bt);
	}
	if (st) {
		int c = pbox_store_close(st);
		if (!r)
			r = c;
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "consumer: could not remove %s\n", dir);
	if (r || vl != 5 || memcmp(val, "value", 5)) {
		fprintf(stderr, "consumer: store/btree: %s\n", pbox_strerror(r));
		return 1;
	}
	printf("consumer ok: pagebox %s, %s\n", PBOX_VERSION_STRING, pbox_strerror(PBOX_ECORRUPT));
	return 0;
}
