/*
 * recovery.c — everything a store's open does to get back to its last committed state:
 * choosing the superblock, redoing the log from its redo start, and reading the meta page.
 *
 * Superblock choice: both copies at every page size (the size is recorded inside); the
 * valid copy with the higher generation wins; a copy of another format version stops the
 * open (PBOX_EVERSION: never open through the older copy, a checkpoint would overwrite the
 * newer one).
 *
 * Redo (ARIES-style, physical and physiological): every group from the redo start, in LSN
 * order. Per page and group, the group applies iff the page's LSN is below the group's end;
 * the decision is taken at the page's first record in the group (later records would see
 * the group's own LSN stamped by the first). A page that fails verification (torn on disk)
 * is restored from the full-page image that is, by construction, its first record after the
 * redo start (or rebuilt by an INIT record); otherwise PBOX_ECORRUPT. Applying a record
 * stamps the page LSN and marks the page dirty with the group's end.
 *
 * Runs single-threaded inside pbox_store_open (st->recovering: page ids up to max_pages are
 * accepted before the meta page has been read).
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_super_copy(pbox_io *io, int fd, unsigned char *p, pbox_pid pid, uint32_t ps,
			   uint64_t *gen, pbox_lsn *redo, pbox_lsn *logical, uint64_t *ckpts)
{
	int r = pbox_io_pread_full(io, fd, p, ps, pid * ps);
	if (r)
		return r;
	if (ld64(p + SB_MAGIC) != SUPER_MAGIC || ld32(p + SB_PAGESIZE) != ps ||
	    pbox__page_verify(p, ps, pid) || ld16(p + OFF_TYPE) != PBOX_PAGE_TYPE_SUPER)
		return PBOX_ECORRUPT; /* a probe: read_super records the verdict */
	if (ld32(p + SB_FORMAT) != STORE_FORMAT)
		return PBOX_EVERSION;
	*gen = ld64(p + SB_GEN);
	*redo = ld64(p + SB_REDO);
	*logical = ld64(p + SB_LOGICAL);
	if (*logical > *redo)
		return PBOX_ECORRUPT; /* written only when it lies before the redo start */
	*ckpts = ld64(p + SB_CKPTS);
	return 0;
}

/* Both copies, every possible page size (the size is recorded inside the copy); the valid
 * copy with the higher generation wins. PBOX_ECORRUPT if neither is valid, PBOX_EVERSION if
 * either is of another format version. */
int pbox__store_read_super(pbox_io *io, int fd, uint32_t *ps_out, uint64_t *gen, pbox_lsn *redo,
			   pbox_lsn *logical, uint64_t *ckpts)
{
	unsigned char *p = pbox_aligned_alloc(4096, 65536);
	if (!p)
		return -ENOMEM;
	bool found = false;
	int err = 0;
	for (pbox_pid pid = 0; pid < 2; pid++) {
		for (uint32_t ps = 4096; ps <= 65536; ps *= 2) {
			uint64_t g, c;
			pbox_lsn rs, ls;
			int r = read_super_copy(io, fd, p, pid, ps, &g, &rs, &ls, &c);
			if (r == PBOX_EVERSION || (r && r != PBOX_ECORRUPT && !err))
				err = r;
			if (r || (found && g <= *gen))
				continue;
			found = true;
			*gen = g;
			*ps_out = ps;
			*redo = rs;
			*logical = ls;
			*ckpts = c;
		}
	}
	pbox_free(p);
	/* A copy of another format version means another version wrote to this store: never
	 * open it through the other copy (a later checkpoint would overwrite the newer one). */
	if (err == PBOX_EVERSION)
		return err;
	if (found)
		return 0;
	return PBOX_CORRUPT();
}

static const pbox_redo_handler *find_handler(pbox_store *st, uint16_t type);

int pbox__store_recover(pbox_store *st)
{
	uint64_t t0 = pbox_now_ns();
	pbox_wal_iter *it;
	int r = pbox_wal_iter_open(st->wal, atomic_load(&st->redo_start), &it);
	if (r)
		return r;
	pbox_wal_group g;
	/* per group: the pages seen so far and whether the group applies to each */
	pbox_pid seen[4 * PBOX_MTR_MAX_PAGES];
	int decision[4 * PBOX_MTR_MAX_PAGES];
	while ((r = pbox_wal_iter_next(it, &g)) == 1) {
		st->rec_groups++;
		st->rec_bytes += g.end_lsn - g.lsn;
		unsigned nseen = 0;
		pbox_wal_record rec;
		while (pbox_wal_iter_record(it, &rec) == 1) {
			if (rec.len < 8) {
				r = PBOX_CORRUPT();
				goto out;
			}
			pbox_pid pid = ld64(rec.data);
			if (pid == PBOX_PID_NONE) { /* logical: after the physical redo */
				const pbox_redo_handler *h = find_handler(st, rec.type);
				if (!h || !h->logical) {
					r = PBOX_CORRUPT(); /* nobody could replay it */
					goto out;
				}
				continue;
			}
			unsigned k = 0;
			while (k < nseen && seen[k] != pid)
				k++;
			if (k == nseen) {
				if (nseen == PBOX_ARRAY_LEN(seen)) {
					r = PBOX_CORRUPT(); /* more pages than any mtr can change */
					goto out;
				}
				seen[nseen] = pid;
				decision[nseen++] = -1;
			}
			bool restored = false;
			if ((r = pbox__redo_apply(st, rec.type, rec.data, rec.len, g.end_lsn,
						  &restored, &decision[k])))
				goto out;
			st->rec_records++;
			st->rec_restored += restored;
		}
	}
out:
	pbox_wal_iter_close(it);
	st->rec_ns = pbox_now_ns() - t0;
	return r < 0 ? r : 0;
}

/* The logical pass: from the logical start to the end of the log (the physical pass found
 * it valid), every record naming no page goes to its type's logical function. */
int pbox__store_recover_logical(pbox_store *st)
{
	bool any = false;
	for (unsigned i = 0; i < st->nredo; i++)
		any |= st->redo[i].logical || st->redo[i].recovered;
	if (!any)
		return 0; /* nothing to deliver: the physical pass refused logical records */
	pbox_wal_iter *it;
	int r = pbox_wal_iter_open(st->wal, atomic_load(&st->logical_start), &it);
	if (r)
		return r;
	pbox_wal_group g;
	while ((r = pbox_wal_iter_next(it, &g)) == 1) {
		pbox_wal_record rec;
		while (pbox_wal_iter_record(it, &rec) == 1) {
			if (rec.len < 8 || ld64(rec.data) != PBOX_PID_NONE)
				continue; /* page records: done by the physical pass */
			const pbox_redo_handler *h = find_handler(st, rec.type);
			if (!h || !h->logical) {
				r = PBOX_CORRUPT(); /* a logical record nobody can replay */
				goto out;
			}
			r = h->logical(st, (const unsigned char *)rec.data + 8, rec.len - 8, g.end_lsn, h->arg);
			if (r)
				goto out;
			st->rec_logical++;
		}
	}
out:
	pbox_wal_iter_close(it);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < st->nredo; i++)
		if (st->redo[i].recovered && (r = st->redo[i].recovered(st, st->redo[i].arg)))
			return r;
	return 0;
}

int pbox__store_read_meta(pbox_store *st)
{
	bool torn = false;
	int r = pbox__pool_fix_x(st, META_PID, false, &torn);
	if (r)
		return r;
	unsigned char *m = pbox_page_addr(st, META_PID);
	uint64_t count = ld64(m + META_COUNT);
	uint16_t type = ld16(m + OFF_TYPE);
	pbox__pool_unfix_x(st, META_PID);
	if (type != PBOX_PAGE_TYPE_META || count < FIRST_DATA_PID || count > st->max_pages)
		return PBOX_CORRUPT_PID(META_PID);
	atomic_store(&st->page_count, count);
	return 0;
}

/* ---- redo ------------------------------------------------------------------------------ */

static const pbox_redo_handler *find_handler(pbox_store *st, uint16_t type)
{
	for (unsigned i = 0; i < st->nredo; i++)
		if (st->redo[i].type == type)
			return &st->redo[i];
	return NULL;
}

int pbox__redo_check(pbox_store *st, uint16_t type, const unsigned char *payload, uint32_t len,
		     pbox_pid *pid_out)
{
	const uint32_t ps = st->pub.page_size;
	if (len < 8)
		return PBOX_CORRUPT();
	pbox_pid pid = ld64(payload);
	*pid_out = pid;
	const pbox_redo_handler *h = type >= PBOX_REDO_TYPE_USER ? find_handler(st, type) : NULL;
	if (pid == PBOX_PID_NONE)
		return h && h->logical ? 0 : PBOX_CORRUPT(); /* nobody could replay it */
	if (pid >= st->max_pages)
		return PBOX_CORRUPT_PID(pid);
	uint32_t blen = len - 8;
	switch (type) {
	case REDO_FPI:
		return blen == ps ? 0 : PBOX_CORRUPT_PID(pid);
	case REDO_INIT:
		return blen == 2 ? 0 : PBOX_CORRUPT_PID(pid);
	case REDO_WRITE: {
		uint32_t off = blen >= 4 ? ld32(payload + 8) : UINT32_MAX;
		return blen < 4 || off > ps || blen - 4 > ps - off ? PBOX_CORRUPT_PID(pid) : 0;
	}
	default:
		return h && h->fn ? 0 : PBOX_CORRUPT_PID(pid); /* a type nobody registered */
	}
}

int pbox__redo_apply(pbox_store *st, uint16_t type, const unsigned char *payload, uint32_t len,
		     pbox_lsn end, bool *restored, int *decision)
{
	pbox_pid pid;
	int r = pbox__redo_check(st, type, payload, len, &pid);
	if (r)
		return r;
	if (pid == PBOX_PID_NONE)
		return PBOX_CORRUPT(); /* callers deliver logical records elsewhere */
	bool torn = false;
	if ((r = pbox__pool_fix_x(st, pid, true, &torn)))
		return r;
	r = pbox__redo_apply_held(st, type, payload, len, end, torn, restored, decision);
	pbox__pool_unfix_x(st, pid);
	return r;
}

int pbox__redo_apply_held(pbox_store *st, uint16_t type, const unsigned char *payload,
			  uint32_t len, pbox_lsn end, bool torn, bool *restored, int *decision)
{
	const uint32_t ps = st->pub.page_size;
	pbox_pid pid;
	int r = pbox__redo_check(st, type, payload, len, &pid);
	if (r)
		return r;
	const pbox_redo_handler *h = type >= PBOX_REDO_TYPE_USER ? find_handler(st, type) : NULL;
	unsigned char *page = pbox_page_addr(st, pid);
	const unsigned char *body = payload + 8;
	uint32_t blen = len - 8;
	/* One decision per page per group, taken at its first record in the group: records
	 * after the first would otherwise see the group's own LSN and be skipped. */
	if (*decision < 0)
		*decision = torn || ld64(page + OFF_LSN) < end;
	bool apply = *decision;
	if (type == REDO_FPI) {
		if (apply) {
			memcpy(page, body, ps);
			*restored |= torn;
			torn = false;
			*decision = 0; /* the image already holds the group's other changes */
		}
	} else if (torn && type == REDO_INIT) {
		/* an INIT rebuilds the page whole: as good as an image */
		pbox__page_init(page, ps, pid, ld16(body));
		*restored = true;
		*decision = 1;
	} else if (torn) {
		r = PBOX_CORRUPT_PID(pid); /* damaged on disk and no full-page image to restore it */
	} else if (apply) {
		if (type == REDO_WRITE) {
			memcpy(page + ld32(body), body + 4, blen - 4);
		} else if (type == REDO_INIT) {
			pbox__page_init(page, ps, pid, ld16(body));
		} else {
			r = h->fn(page, ps, body, blen, h->arg);
			if (r == PBOX_ECORRUPT) /* the handler's verdict, recorded here */
				r = PBOX_CORRUPT_PID(pid);
		}
	}
	if (!r && apply) {
		st64(page + OFF_LSN, end);
		uint64_t zero = 0;
		frame *f = pbox__frame(st, pid);
		atomic_compare_exchange_strong(&f->dirty, &zero, end);
	}
	return r;
}
