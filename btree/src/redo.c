/*
 * redo.c — the tree layer's redo records (table in tree_int.h): the handlers recovery
 * replays, and the logging helpers that write the records.
 *
 * Invariants: each change to a node page is logged as one of these records in the mtr that
 * makes it, after the page is changed and before the mtr commits; replaying a record on the
 * page as it was before the change gives the page after it. Handlers see bytes from disk:
 * they check lengths before reading, turn anything the node layer refuses into
 * PBOX_ECORRUPT, and are deterministic (a split replays with the same nl, so it picks the
 * same separator).
 *
 * Latching: none here. Recovery replays single-threaded; the logging helpers run inside an
 * mtr that already holds the page exclusively.
 */
#include "txn_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- redo ------------------------------------------------------------------------------- */

static int redo_image(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	if (len != ps - PBOX_PAGE_HDR)
		return PBOX_CORRUPT();
	memcpy((unsigned char *)page + PBOX_PAGE_HDR, p, len);
	return pbox__bt_node_verify(page, ps) ? PBOX_CORRUPT() : 0;
}

static int redo_insert(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t flags, klen;
	if (len < 8)
		return PBOX_CORRUPT();
	memcpy(&flags, p, 4);
	memcpy(&klen, (const char *)p + 4, 4);
	if (klen > len - 8)
		return PBOX_CORRUPT();
	const char *k = (const char *)p + 8;
	int r = pbox__bt_node_insert(page, ps, k, klen, k + klen, len - 8 - klen, flags);
	return r ? PBOX_CORRUPT() : 0;
}

static int redo_remove(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t klen;
	if (len < 4)
		return PBOX_CORRUPT();
	memcpy(&klen, p, 4);
	if (klen != len - 4)
		return PBOX_CORRUPT();
	uint32_t pos;
	bool exact;
	int r = pbox__bt_node_lower_bound(page, ps, (const char *)p + 4, klen, &pos, &exact);
	if (r || !exact)
		return PBOX_CORRUPT();
	return pbox__bt_node_remove(page, ps, pos) ? PBOX_CORRUPT() : 0;
}

static int redo_split_right(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	uint32_t nl;
	if (len != 4)
		return PBOX_CORRUPT();
	memcpy(&nl, p, 4);
	void *scratch = pbox_aligned_alloc(4096, ps);
	if (!scratch)
		return -ENOMEM;
	memcpy(scratch, page, ps);
	unsigned char sep[PBOX_BT_KEY_MAX_ANY];
	uint32_t sep_len;
	int r = pbox__bt_node_split(scratch, page, ps, nl, sep, &sep_len);
	pbox_free(scratch);
	return r ? PBOX_CORRUPT() : 0;
}

static int redo_drop(void *page, uint32_t ps, const void *p, uint32_t len, void *arg)
{
	(void)arg;
	(void)p;
	if (len != 0 || ps <= PBOX_PAGE_HDR)
		return PBOX_CORRUPT();
	((unsigned char *)page)[PBOX_PAGE_HDR] = DROPPED_KIND;
	return 0;
}

static const pbox_redo_handler handlers[] = {
	{ .type = REDO_DROP, .fn = redo_drop },
	{ .type = REDO_IMAGE, .fn = redo_image },
	{ .type = REDO_INSERT, .fn = redo_insert },
	{ .type = REDO_REMOVE, .fn = redo_remove },
	{ .type = REDO_SPLIT_RIGHT, .fn = redo_split_right },
	/* transactions' logical records (txn_log.c) */
	{ .type = REDO_TXN_OPS, .logical = pbox__txn_rec_logical,
	  .arg = (void *)(uintptr_t)REDO_TXN_OPS, .recovered = pbox__txn_rec_done },
	{ .type = REDO_TXN_COMMIT, .logical = pbox__txn_rec_logical,
	  .arg = (void *)(uintptr_t)REDO_TXN_COMMIT },
	{ .type = REDO_TXN_END, .logical = pbox__txn_rec_logical,
	  .arg = (void *)(uintptr_t)REDO_TXN_END },
};

void pbox_bt_redo_handlers(const pbox_redo_handler **h, unsigned *n)
{
	*h = handlers;
	*n = PBOX_ARRAY_LEN(handlers);
}

/* ---- logging helpers (inside an mtr; the page is already changed) ---------------------- */

int pbox__bt_log_image(pbox_mtr *m, pbox_pid pid, const void *page, uint32_t ps)
{
	return pbox_mtr_log(m, pid, REDO_IMAGE, (const unsigned char *)page + PBOX_PAGE_HDR,
			    ps - PBOX_PAGE_HDR);
}

int pbox__bt_log_insert(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen,
			const void *val, uint32_t vlen, uint32_t flags)
{
	size_t n = 8 + (size_t)klen + vlen;
	unsigned char stackbuf[1024];
	unsigned char *b = n <= sizeof(stackbuf) ? stackbuf : pbox_malloc(n);
	if (!b)
		return -ENOMEM;
	memcpy(b, &flags, 4);
	memcpy(b + 4, &klen, 4);
	if (klen)
		memcpy(b + 8, key, klen);
	if (vlen)
		memcpy(b + 8 + klen, val, vlen);
	int r = pbox_mtr_log(m, pid, REDO_INSERT, b, (uint32_t)n);
	if (b != stackbuf)
		pbox_free(b);
	return r;
}

int pbox__bt_log_remove(pbox_mtr *m, pbox_pid pid, const void *key, uint32_t klen)
{
	unsigned char b[4 + PBOX_BT_KEY_MAX_ANY];
	memcpy(b, &klen, 4);
	if (klen)
		memcpy(b + 4, key, klen);
	return pbox_mtr_log(m, pid, REDO_REMOVE, b, 4 + klen);
}
