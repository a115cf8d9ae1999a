/* consumer.c — links against an installed pagebox and uses each installed library once. */
#include <pbox/crc32c.h>
#include <pbox/latch.h>
#include <pbox/status.h>
#include <pbox/swip.h>
#include <pbox/wal.h>

#include <stdio.h>

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
	printf("consumer ok: pagebox %s, %s\n", PBOX_VERSION_STRING, pbox_strerror(PBOX_ECORRUPT));
	return 0;
}
