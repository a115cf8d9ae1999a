/*
 * fuzz_node.c — the btree node layer (btree/src/node.h, private: included like
 * tests/btree/check_btree_node.c does) on arbitrary page bytes.
 *
 * Input: byte 0 chooses the page size (4, 8, 16 or 64 KiB: bits 0-1), then the page's bytes
 * (zero-padded), then probe keys as (length byte, bytes) pairs.
 * Checks: verify returns 0 or PBOX_ECORRUPT; every read function (fences, key, payload,
 * child, lower_bound, find_child, space accounting) stays inside the page whatever the bytes
 * (the page is its own heap allocation: ASan sees any stray byte); on a node that verifies,
 * keys ascend strictly, lower_bound finds each key at its slot, find_child agrees with the
 * separators, and compaction and a split give nodes that verify again.
 */
#include "fuzz_util.h"
#include "node.h"

static const uint32_t sizes[4] = { 4096, 8192, 16384, 65536 };

static int kcmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	uint32_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	return c ? c : (al < bl ? -1 : al > bl);
}

static void read_all(const uint8_t *page, uint32_t ps, const uint8_t *probes, size_t np)
{
	const uint8_t *lo, *hi;
	uint32_t lol, hil;
	(void)pbox__bt_node_fences(page, ps, &lo, &lol, &hi, &hil);
	uint32_t n = pbox__bt_node_count(page);
	if (n > 2048)
		n = 2048;
	static uint8_t kbuf[PBOX_BT_KEY_MAX_ANY];
	for (uint32_t i = 0; i <= n; i++) {
		uint32_t kl;
		const uint8_t *p;
		uint32_t pl;
		unsigned fl;
		pbox_pid c;
		(void)pbox__bt_node_key(page, ps, i, kbuf, sizeof(kbuf), &kl);
		(void)pbox__bt_node_key(page, ps, i, kbuf, 3, &kl); /* too small a buffer */
		if (pbox__bt_node_payload(page, ps, i, &p, &pl, &fl) == 0)
			FZ_CHECK(p >= page && p + pl <= page + ps, "payload outside the page");
		(void)pbox__bt_node_child(page, ps, i, &c);
	}
	for (size_t off = 0; off < np;) {
		uint32_t kl = probes[off++];
		if (kl > np - off)
			kl = (uint32_t)(np - off);
		uint32_t pos;
		bool exact;
		pbox_pid c;
		(void)pbox__bt_node_lower_bound(page, ps, probes + off, kl, &pos, &exact);
		(void)pbox__bt_node_find_child(page, ps, probes + off, kl, &c, &pos);
		off += kl;
	}
	(void)pbox__bt_node_free_bytes(page, ps);
	(void)pbox__bt_node_used_bytes(page, ps);
	(void)pbox__bt_node_underfull(page, ps);
	(void)pbox__bt_node_split_choose(page, ps, 0);
}

/* A node that verifies is consistent. */
static void check_valid(const uint8_t *page, uint32_t ps)
{
	static uint8_t prev[PBOX_BT_KEY_MAX_ANY], cur[PBOX_BT_KEY_MAX_ANY];
	uint32_t n = pbox__bt_node_count(page), pl = 0;
	bool leaf = pbox__bt_node_is_leaf(page);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kl;
		FZ_CHECK(pbox__bt_node_key(page, ps, i, cur, sizeof(cur), &kl) == 0, "key %u", i);
		FZ_CHECK(i == 0 || kcmp(prev, pl, cur, kl) < 0, "keys not ascending at %u", i);
		uint32_t pos;
		bool exact;
		FZ_CHECK(pbox__bt_node_lower_bound(page, ps, cur, kl, &pos, &exact) == 0 && pos == i &&
				 exact, "lower_bound of key %u gave %u", i, pos);
		if (!leaf) {
			pbox_pid c, c2;
			FZ_CHECK(pbox__bt_node_child(page, ps, i, &c) == 0 && c >= PBOX_BT_NODE_PID_MIN,
				 "child %u", i);
			FZ_CHECK(pbox__bt_node_find_child(page, ps, cur, kl, &c2, &pos) == 0 && pos == i &&
					 c2 == c, "find_child of separator %u", i);
		}
		memcpy(prev, cur, kl);
		pl = kl;
	}
	uint8_t *a = aligned_alloc(4096, ps), *b = aligned_alloc(4096, ps);
	FZ_CHECK(a && b, "out of memory");
	memcpy(a, page, ps);
	FZ_CHECK(pbox__bt_node_compact(a, ps) == 0 && pbox__bt_node_verify(a, ps) == 0,
		 "compaction broke a valid node");
	FZ_CHECK(pbox__bt_node_count(a) == n, "compaction lost slots");
	uint32_t nl = pbox__bt_node_split_choose(a, ps, n / 2);
	if (nl) {
		uint8_t sep[PBOX_BT_KEY_MAX_ANY];
		uint32_t sl;
		memset(b, 0, ps);
		int rc = pbox__bt_node_split(a, b, ps, nl, sep, &sl);
		FZ_CHECK(rc == 0, "split at the chosen point failed: %s", pbox_status_name(rc));
		FZ_CHECK(pbox__bt_node_verify(a, ps) == 0 && pbox__bt_node_verify(b, ps) == 0,
			 "a split half does not verify");
		FZ_CHECK(pbox__bt_node_merge_check(a, b, ps) != PBOX_EINVAL, "split halves are not "
			 "neighbours");
	}
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t ps = sizes[data[0] & 3];
	data++;
	size--;
	uint8_t *page = malloc(ps); /* exactly the page: ASan guards both ends */
	if (!page)
		return 0;
	size_t n = size < ps ? size : ps;
	memcpy(page, data, n);
	memset(page + n, 0, ps - n);
	int rc = pbox__bt_node_verify(page, ps);
	FZ_CHECK(rc == 0 || rc == PBOX_ECORRUPT, "verify returned %s", pbox_status_name(rc));
	read_all(page, ps, data + n, size - n);
	if (rc == 0)
		check_valid(page, ps);
	free(page);
	return 0;
}
