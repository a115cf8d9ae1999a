/*
 * page.c — the page header: checksum, verification, initialisation (format in
 * storage_int.h). The checksum covers every byte of the page after the checksum field, so a
 * torn write, a flipped bit or a misdirected write (page id mismatch) are all detected.
 * pbox__page_verify is a predicate (superblock probing and recovery call it expecting
 * failures): it returns plain PBOX_ECORRUPT; callers that act on the verdict record it
 * with PBOX_CORRUPT_PID.
 */
#include "storage_int.h"

#include <string.h>

PBOX_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
		   "page formats are little-endian and read with plain loads");

uint32_t pbox__page_crc(const void *page, uint32_t ps)
{
	return pbox_crc32c(0, (const unsigned char *)page + 4, ps - 4);
}

void pbox__page_seal(void *page, uint32_t ps)
{
	st32(page, pbox__page_crc(page, ps));
}

static bool all_zero(const unsigned char *p, uint32_t n)
{
	static const unsigned char z[256];
	for (uint32_t off = 0; off < n; off += sizeof(z))
		if (memcmp(p + off, z, n - off < sizeof(z) ? n - off : sizeof(z)))
			return false;
	return true;
}

int pbox__page_verify(const void *page, uint32_t ps, pbox_pid pid)
{
	const unsigned char *p = page;
	if (ld32(p) == pbox__page_crc(p, ps))
		return ld64(p + OFF_PID) == pid && ld16(p + OFF_FMT) == PAGE_FORMAT ? 0
										   : PBOX_ECORRUPT;
	return all_zero(p, ps) ? 0 : PBOX_ECORRUPT;
}

void pbox__page_init(void *page, uint32_t ps, pbox_pid pid, uint16_t type)
{
	memset(page, 0, ps);
	unsigned char *p = page;
	st16(p + OFF_TYPE, type);
	st16(p + OFF_FMT, PAGE_FORMAT);
	st64(p + OFF_PID, pid);
}
