/*
 * mtr.c — mini-transactions: the unit of atomic change, and their redo in recovery.
 *
 * Protocol (ARCHITECTURE §7):
 *   1. fix the pages to change, exclusively (held until commit: strict two-phase latching
 *      inside the mtr; the caller's latch order prevents deadlock);
 *   2. change page bytes in place and log a redo record per change;
 *   3. commit: one WAL group — full-page images first for pages changed for the first time
 *      since the last checkpoint (epoch check), then the records — then stamp every changed
 *      page with the group's end LSN and mark it dirty, then release the latches.
 * Step 3's append and stamping run under ckpt_lock (shared) so a checkpoint's begin
 * (exclusive: new epoch, redo start = WAL end) sees every group below its LSN stamped, and
 * every group above it sees the new epoch.
 *
 * Redo (recovery): a record applies to its page only when the page LSN is below the
 * group's end LSN (ARIES). A page that fails verification can be restored only by a
 * full-page image, and the first record of such a page after the redo start is one by
 * construction (step 3): otherwise the damage is reported as PBOX_ECORRUPT.
 */
#include "storage_int.h"

#include <errno.h>
#include <string.h>

struct pbox_mtr {
	pbox_store *st;
	unsigned npages;
	struct {
		pbox_pid pid;
		bool logged;
	} pages[PBOX_MTR_MAX_PAGES];
	unsigned char *log; /* records: u16 type, u16 0, u32 payload length, payload */
	size_t len, cap;
	unsigned nrec;
};

#define REC_HDR 8u

int pbox_mtr_begin(pbox_store *st, pbox_mtr **out)
{
	int r = pbox__poisoned(st);
	if (r)
		return r;
	if (st->replica)
		return PBOX_ENOTSUP; /* a replica changes only through pbox_store_apply */
	pbox_mtr *m = pbox_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->st = st;
	*out = m;
	return 0;
}

static int held(const pbox_mtr *m, pbox_pid pid)
{
	for (unsigned i = 0; i < m->npages; i++)
		if (m->pages[i].pid == pid)
			return (int)i;
	return -1;
}

bool pbox_mtr_holds(const pbox_mtr *m, pbox_pid pid)
{
	return m && held(m, pid) >= 0;
}

int pbox_mtr_fix(pbox_mtr *m, pbox_pid pid, void **page)
{
	if (held(m, pid) < 0) {
		if (m->npages == PBOX_MTR_MAX_PAGES)
			return PBOX_ELIMIT;
		int r = pbox__pool_fix_x(m->st, pid, false, NULL);
		if (r)
			return r;
		m->pages[m->npages].pid = pid;
		m->pages[m->npages++].logged = false;
	}
	if (page)
		*page = pbox_page_addr(m->st, pid);
	return 0;
}

int pbox_mtr_fix_upgrade(pbox_mtr *m, pbox_pid pid, uint64_t version, void **page)
{
	if (held(m, pid) < 0) {
		if (m->npages == PBOX_MTR_MAX_PAGES)
			return PBOX_ELIMIT;
		if (pid >= m->st->max_pages)
			return PBOX_EINVAL;
		/* an unchanged version means the page is still resident (evictions bump it) */
		if (!pbox_latch_try_upgrade(pbox_page_latch(m->st, pid), version))
			return PBOX_ERESTART;
		m->pages[m->npages].pid = pid;
		m->pages[m->npages++].logged = false;
	}
	if (page)
		*page = pbox_page_addr(m->st, pid);
	return 0;
}

static int log_rec(pbox_mtr *m, pbox_pid pid, uint16_t type, const void *a, uint32_t alen,
		   const void *b, uint32_t blen)
{
	int i = pid == PBOX_PID_NONE ? -2 : held(m, pid);
	if (i == -1)
		return PBOX_EINVAL; /* a change to a page the mtr does not hold */
	size_t need = REC_HDR + 8 + (size_t)alen + blen;
	if (m->len + need > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 1024;
		while (nc < m->len + need)
			nc *= 2;
		unsigned char *p = pbox_realloc(m->log, nc);
		if (!p)
			return -ENOMEM;
		m->log = p;
		m->cap = nc;
	}
	unsigned char *r = m->log + m->len;
	st16(r, type);
	st16(r + 2, 0);
	st32(r + 4, (uint32_t)(8 + alen + blen));
	st64(r + 8, pid);
	if (alen)
		memcpy(r + 16, a, alen);
	if (blen)
		memcpy(r + 16 + alen, b, blen);
	m->len += need;
	m->nrec++;
	if (i >= 0)
		m->pages[i].logged = true;
	return 0;
}

int pbox_mtr_log(pbox_mtr *m, pbox_pid pid, uint16_t type, const void *payload, uint32_t len)
{
	if (type < PBOX_REDO_TYPE_USER || (len && !payload))
		return PBOX_EINVAL;
	return log_rec(m, pid, type, payload, len, NULL, 0);
}

int pbox_mtr_log_logical(pbox_mtr *m, uint16_t type, const void *payload, uint32_t len)
{
	if (type < PBOX_REDO_TYPE_USER || (len && !payload) || len > PBOX_MTR_LOGICAL_MAX)
		return PBOX_EINVAL;
	return log_rec(m, PBOX_PID_NONE, type, payload, len, NULL, 0);
}

/* Physical change; the header (first 32 bytes) only for storage itself. */
static int write_any(pbox_mtr *m, pbox_pid pid, uint32_t off, const void *src, uint32_t len)
{
	uint32_t ps = m->st->pub.page_size;
	if (off > ps || len > ps - off || held(m, pid) < 0)
		return PBOX_EINVAL;
	unsigned char hdr[4];
	st32(hdr, off);
	int r = log_rec(m, pid, REDO_WRITE, hdr, 4, src, len);
	if (!r)
		memmove((unsigned char *)pbox_page_addr(m->st, pid) + off, src, len);
	return r;
}

int pbox_mtr_write(pbox_mtr *m, pbox_pid pid, uint32_t off, const void *src, uint32_t len)
{
	if (off < PBOX_PAGE_HDR || (len && !src))
		return PBOX_EINVAL;
	return write_any(m, pid, off, src, len);
}

static int init_page(pbox_mtr *m, pbox_pid pid, uint16_t type)
{
	unsigned char t[2];
	st16(t, type);
	int r = log_rec(m, pid, REDO_INIT, t, 2, NULL, 0);
	if (!r)
		pbox__page_init(pbox_page_addr(m->st, pid), m->st->pub.page_size, pid, type);
	return r;
}

int pbox_mtr_alloc(pbox_mtr *m, uint16_t type, pbox_pid *out, void **page)
{
	pbox_store *st = m->st;
	if (type < PBOX_PAGE_TYPE_USER)
		return PBOX_EINVAL;
	if (m->npages + 2 > PBOX_MTR_MAX_PAGES)
		return PBOX_ELIMIT;
	unsigned char *meta;
	int r = pbox_mtr_fix(m, META_PID, (void **)&meta);
	if (r)
		return r;
	uint64_t count = ld64(meta + META_COUNT), head = ld64(meta + META_FREE_HEAD);
	uint64_t nfree = ld64(meta + META_FREE_COUNT);
	pbox_pid pid;
	if (head != PBOX_PID_NONE) {
		if (head < FIRST_DATA_PID || head >= count || !nfree)
			return PBOX_CORRUPT_PID(META_PID);
		unsigned char *fp;
		if ((r = pbox_mtr_fix(m, head, (void **)&fp)))
			return r;
		if (ld16(fp + OFF_TYPE) != PBOX_PAGE_TYPE_FREE)
			return PBOX_CORRUPT_PID(head);
		unsigned char upd[16];
		st64(upd, ld64(fp + OFF_NEXT));
		st64(upd + 8, nfree - 1);
		if ((r = write_any(m, META_PID, META_FREE_HEAD, upd, 16)))
			return r;
		pid = head;
	} else {
		pid = count;
		if (pid >= st->max_pages)
			return PBOX_ENOSPC;
		if ((r = pbox__store_grow(st, pid + 1)))
			return r;
		if ((r = pbox__pool_fix_new(st, pid)))
			return r;
		m->pages[m->npages].pid = pid;
		m->pages[m->npages++].logged = false;
		unsigned char c[8];
		st64(c, pid + 1);
		if ((r = write_any(m, META_PID, META_COUNT, c, 8)))
			return r;
		atomic_store_explicit(&st->page_count, pid + 1, memory_order_release);
	}
	if ((r = init_page(m, pid, type)))
		return r;
	/* An INIT record rebuilds the whole page, torn or not: no full-page image needed for
	 * the rest of this epoch (a checkpoint between here and commit makes commit log one) */
	atomic_store_explicit(&pbox__frame(st, pid)->fpi_epoch,
			      atomic_load_explicit(&st->ckpt_epoch, memory_order_relaxed),
			      memory_order_relaxed);
	*out = pid;
	if (page)
		*page = pbox_page_addr(st, pid);
	return 0;
}

int pbox_mtr_free(pbox_mtr *m, pbox_pid pid)
{
	if (pid < FIRST_DATA_PID || held(m, pid) < 0)
		return PBOX_EINVAL;
	unsigned char *meta;
	int r = pbox_mtr_fix(m, META_PID, (void **)&meta);
	if (r)
		return r;
	uint64_t head = ld64(meta + META_FREE_HEAD), nfree = ld64(meta + META_FREE_COUNT);
	unsigned char link[8], upd[16];
	st64(link, head);
	st64(upd, pid);
	st64(upd + 8, nfree + 1);
	if ((r = init_page(m, pid, PBOX_PAGE_TYPE_FREE)) ||
	    (r = write_any(m, pid, OFF_NEXT, link, 8)) ||
	    (r = write_any(m, META_PID, META_FREE_HEAD, upd, 16)))
		return r;
	return 0;
}

int pbox_mtr_meta_set(pbox_mtr *m, unsigned slot, uint64_t value)
{
	if (slot >= PBOX_META_SLOTS)
		return PBOX_EINVAL;
	int r = pbox_mtr_fix(m, META_PID, NULL);
	if (r)
		return r;
	unsigned char v[8];
	st64(v, value);
	return write_any(m, META_PID, META_SLOTS + 8 * slot, v, 8);
}

static void release_all(pbox_mtr *m)
{
	PBOX_ASSERT(m->npages <= PBOX_MTR_MAX_PAGES);
	for (unsigned i = 0; i < m->npages; i++) {
		/* every page an mtr holds, it holds exclusively and resident */
		PBOX_ASSERT(pbox_latch_is_exclusive(pbox_page_latch(m->st, m->pages[i].pid)));
		pbox__pool_unfix_x(m->st, m->pages[i].pid);
	}
	pbox_free(m->log);
	pbox_free(m);
}

void pbox_mtr_abort(pbox_mtr *m, bool changed)
{
	if (!m)
		return;
	if (changed || m->nrec)
		pbox__set_poison(m->st, PBOX_EPOISONED); /* memory is ahead of the log */
	release_all(m);
}

int pbox_mtr_commit(pbox_mtr *m, bool durable, pbox_lsn *lsn_out)
{
	pbox_store *st = m->st;
	if (m->nrec == 0) {
		/* nothing to log; a durable commit still promises that everything committed
		 * before it is durable (a barrier) */
		release_all(m);
		return durable ? pbox_wal_flush(st->wal) : 0;
	}
	const uint32_t ps = st->pub.page_size;
	int r = 0;
	pthread_rwlock_rdlock(&st->ckpt_lock);
	uint32_t epoch = atomic_load_explicit(&st->ckpt_epoch, memory_order_relaxed);
	unsigned nfpi = 0;
	for (unsigned i = 0; i < m->npages; i++)
		nfpi += m->pages[i].logged &&
			atomic_load_explicit(&pbox__frame(st, m->pages[i].pid)->fpi_epoch,
					     memory_order_relaxed) != epoch;
	pbox_wal_rec *recs = pbox_malloc((nfpi + m->nrec) * sizeof(*recs));
	unsigned char *images = nfpi ? pbox_malloc((size_t)nfpi * (8 + ps)) : NULL;
	pbox_lsn end = 0;
	if (!recs || (nfpi && !images)) {
		r = -ENOMEM;
		goto out;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < m->npages; i++) {
		pbox_pid pid = m->pages[i].pid;
		if (!m->pages[i].logged ||
		    atomic_load_explicit(&pbox__frame(st, pid)->fpi_epoch, memory_order_relaxed) ==
			    epoch)
			continue;
		unsigned char *img = images + (size_t)n * (8 + ps);
		st64(img, pid);
		memcpy(img + 8, pbox_page_addr(st, pid), ps);
		recs[n++] = (pbox_wal_rec){ .type = REDO_FPI, .data = img, .len = 8 + ps };
	}
	for (size_t off = 0; off < m->len;) {
		const unsigned char *rec = m->log + off;
		uint32_t len = ld32(rec + 4);
		recs[n++] = (pbox_wal_rec){ .type = ld16(rec), .data = rec + REC_HDR, .len = len };
		off += REC_HDR + len;
	}
	r = pbox_wal_append(st->wal, recs, n, &end);
	if (!r) {
		for (unsigned i = 0; i < m->npages; i++) {
			if (!m->pages[i].logged)
				continue;
			frame *f = pbox__frame(st, m->pages[i].pid);
			st64((unsigned char *)pbox_page_addr(st, m->pages[i].pid) + OFF_LSN, end);
			uint64_t zero = 0;
			atomic_compare_exchange_strong_explicit(&f->dirty, &zero, end,
								memory_order_relaxed,
								memory_order_relaxed);
			atomic_store_explicit(&f->fpi_epoch, epoch, memory_order_relaxed);
		}
	}
out:
	pthread_rwlock_unlock(&st->ckpt_lock);
	pbox_free(recs);
	pbox_free(images);
	if (r) {
		pbox__set_poison(st, r); /* pages are ahead of the log: never write them back */
		release_all(m);
		return r;
	}
	release_all(m);
	if (durable && (r = pbox_wal_wait_durable(st->wal, end)))
		pbox__set_poison(st, r);
	if (!r && lsn_out)
		*lsn_out = end;
	return r;
}
