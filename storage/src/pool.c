/*
 * pool.c — the buffer pool: virtual-memory addressing, faults, the resident set and clock
 * eviction, batched write-back and prefetch.
 *
 * Addressing (vmcache): one PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE
 * reservation of max_pages pages; page p at base + p * page_size. A second NORESERVE
 * mapping is the frame table (latch, swip word, dirty LSN per page id). Only touched parts
 * of either cost memory.
 *
 * Access rules (numbered; every function below says which it follows):
 *   A1 A page's bytes change only under its exclusive latch; residency changes (LOADING,
 *      EVICTING and back) happen only under it too, so an optimistic reader that validates
 *      saw a resident page: an eviction in between bumps the version.
 *   A2 Faults take the exclusive latch, re-check the swip and load only from EVICTED:
 *      concurrent faults of one page read it once.
 *   A3 The evictor never blocks on a page latch: it takes victims with exclusive_try, so
 *      readers and writers of other pages never wait for it, and it never waits for them.
 *   A4 A dirty page is written only after the WAL is durable up to its page LSN.
 *   A5 res_mu protects the resident set (array of pids, swap-remove, frame->res_slot);
 *      evict_mu makes one evictor at a time. Order: a page latch may be held when taking
 *      evict_mu or res_mu; nothing takes a page latch while holding res_mu except
 *      exclusive_try.
 *
 * Memory ordering (what protects each field of a frame: storage_int.h):
 *   - page bytes: the page latch (hybrid-latch's orderings: exclusive release publishes a
 *     writer's stores; optimistic readers validate after an acquire fence);
 *   - swip (residency): changed only under the page's exclusive latch (A1); read racily by
 *     the evictor's first pass (HOT -> COOL is a CAS that an access may win) — a stale
 *     read only delays a decision;
 *   - dirty: set (CAS 0 -> LSN) by an mtr commit under the exclusive latch, cleared by
 *     write-back under at least the shared latch; relaxed, since the latch orders it;
 *   - res_slot: only under res_mu (relaxed atomics so racy diagnostic reads are defined);
 *   - resident / budget_pages: relaxed counters; make_room reads them as hints and the
 *     evictor re-checks under evict_mu;
 *   - file_pages: release store under grow_mu after the fallocate succeeded, acquire load
 *     by faults (a fault must not read beyond what the file holds).
 *
 * Replacement (clock with a COOL stage), per step of the hand over the resident set:
 *   1. HOT page: mark COOL (CAS; an access in between wins and keeps it HOT).
 *   2. COOL page: try its exclusive latch; if free and still COOL, claim it (EVICTING).
 *   3. Claimed victims: wait for the WAL (A4), write the dirty ones in one batch, release
 *      their memory with madvise(MADV_DONTNEED) in contiguous ranges, mark EVICTED, unlatch.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define EVICT_BATCH 64u

static _Atomic unsigned stripe_next;
static _Thread_local unsigned my_stripe = ~0u;

stripe *pbox__stripe(pbox_store *st)
{
	if (my_stripe == ~0u)
		my_stripe = atomic_fetch_add(&stripe_next, 1) % NSTRIPES;
	return &st->stripes[my_stripe];
}

#define COUNT(st, field, n) PBOX_M_ADD(pbox__stripe(st)->field, (n))

void pbox__set_poison(pbox_store *st, int err)
{
	int zero = 0;
	atomic_compare_exchange_strong(&st->poison, &zero, err ? err : PBOX_EPOISONED);
}

int pbox__pool_init(pbox_store *st, uint64_t budget_bytes)
{
	uint32_t ps = st->pub.page_size;
	st->reserve_bytes = (size_t)st->max_pages * ps;
	void *base = mmap(NULL, st->reserve_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	st->pub.base = base;
	void *fr = mmap(NULL, st->max_pages * sizeof(frame), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (fr == MAP_FAILED) {
		int e = -errno;
		munmap(base, st->reserve_bytes);
		st->pub.base = NULL;
		return e;
	}
	st->frames = fr; /* zero: latch free, swip EVICTED, clean */
	void *res = mmap(NULL, st->max_pages * sizeof(pbox_pid), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		int e = -errno;
		munmap(fr, st->max_pages * sizeof(frame));
		munmap(base, st->reserve_bytes);
		st->pub.base = NULL;
		st->frames = NULL;
		return e;
	}
	st->res = res;
	uint64_t b = budget_bytes / ps;
	atomic_store(&st->budget_pages, b < 64 ? 64 : b);
	return 0;
}

void pbox__pool_fini(pbox_store *st)
{
	if (st->res)
		munmap(st->res, st->max_pages * sizeof(pbox_pid));
	if (st->frames)
		munmap(st->frames, st->max_pages * sizeof(frame));
	if (st->pub.base)
		munmap(st->pub.base, st->reserve_bytes);
	for (unsigned i = 0; i < st->nrings; i++)
		st->io->ring_close(st->io, st->rings[i]);
	st->nrings = 0;
}

/* ---- resident set (res_mu) ----------------------------------------------------------- */

static void res_add(pbox_store *st, pbox_pid pid)
{
	pthread_mutex_lock(&st->res_mu);
	PBOX_ASSERT(st->res_n < st->max_pages); /* a page is in the set at most once */
	uint32_t slot = st->res_n++;
	st->res[slot] = pid;
	atomic_store_explicit(&pbox__frame(st, pid)->res_slot, slot, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->resident, 1, memory_order_relaxed);
	pthread_mutex_unlock(&st->res_mu);
}

static void res_remove_locked(pbox_store *st, pbox_pid pid)
{
	uint32_t slot = atomic_load_explicit(&pbox__frame(st, pid)->res_slot, memory_order_relaxed);
	PBOX_ASSERT(st->res_n > 0 && slot < st->res_n && st->res[slot] == pid);
	uint32_t last = --st->res_n;
	if (slot != last) {
		pbox_pid moved = st->res[last];
		st->res[slot] = moved;
		atomic_store_explicit(&pbox__frame(st, moved)->res_slot, slot, memory_order_relaxed);
	}
	atomic_fetch_sub_explicit(&st->resident, 1, memory_order_relaxed);
}

/* ---- batched I/O ------------------------------------------------------------------------ */

static void *ring_get(pbox_store *st)
{
	void *r = NULL;
	pthread_mutex_lock(&st->ring_mu);
	if (st->nrings)
		r = st->rings[--st->nrings];
	bool unavailable = st->rings_unavailable;
	pthread_mutex_unlock(&st->ring_mu);
	if (!r && !unavailable && st->io->ring_open(st->io, EVICT_BATCH, &r) != 0) {
		r = NULL;
		pthread_mutex_lock(&st->ring_mu);
		st->rings_unavailable = true; /* fall back to one call per page */
		pthread_mutex_unlock(&st->ring_mu);
	}
	return r;
}

static void ring_put(pbox_store *st, void *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&st->ring_mu);
	if (st->nrings < PBOX_ARRAY_LEN(st->rings)) {
		st->rings[st->nrings++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&st->ring_mu);
	if (r)
		st->io->ring_close(st->io, r);
}

/* Read or write n whole pages at their own offsets; res[i] gets 0 or an error. */
static int page_io(pbox_store *st, bool write, void *const *bufs, const pbox_pid *pids,
		   unsigned n, int *res)
{
	uint32_t ps = st->pub.page_size;
	void *ring = n > 1 ? ring_get(st) : NULL;
	int first = 0;
	unsigned i = 0;
	while (i < n) {
		unsigned k = n - i < EVICT_BATCH ? n - i : EVICT_BATCH;
		if (ring) {
			pbox_io_req req[EVICT_BATCH];
			for (unsigned j = 0; j < k; j++)
				req[j] = (pbox_io_req){ .op = write ? PBOX_IO_OP_WRITE : PBOX_IO_OP_READ,
							.fd = st->data_fd, .buf = bufs[i + j],
							.len = ps, .off = pids[i + j] * ps };
			int r = st->io->ring_submit(st->io, ring, req, k);
			for (unsigned j = 0; j < k; j++) {
				int e = r ? r : req[j].res == (int64_t)ps ? 0 : req[j].res < 0 ? (int)req[j].res : -EIO;
				if (e && req[j].res >= 0 && req[j].res != (int64_t)ps) {
					/* short transfer: finish it synchronously */
					uint64_t done = (uint64_t)req[j].res;
					unsigned char *b = bufs[i + j];
					e = write ? pbox_io_pwrite_full(st->io, st->data_fd, b + done,
									 ps - done, pids[i + j] * ps + done)
						  : pbox_io_pread_full(st->io, st->data_fd, b + done,
									ps - done, pids[i + j] * ps + done);
				}
				res[i + j] = e;
				if (e && !first)
					first = e;
			}
		} else {
			for (unsigned j = 0; j < k; j++) {
				int e = write ? pbox_io_pwrite_full(st->io, st->data_fd, bufs[i + j], ps,
								    pids[i + j] * ps)
					      : pbox_io_pread_full(st->io, st->data_fd, bufs[i + j], ps,
								   pids[i + j] * ps);
				res[i + j] = e;
				if (e && !first)
					first = e;
			}
		}
		i += k;
	}
	ring_put(st, ring);
	if (write)
		COUNT(st, writes, n);
	else
		COUNT(st, reads, n);
	return first;
}

int pbox__pool_write_pages(pbox_store *st, const pbox_pid *pids, unsigned n)
{
	void *bufs[EVICT_BATCH];
	int res[EVICT_BATCH];
	int first = 0;
	for (unsigned i = 0; i < n; i += EVICT_BATCH) {
		unsigned k = n - i < EVICT_BATCH ? n - i : EVICT_BATCH;
		for (unsigned j = 0; j < k; j++) {
			bufs[j] = pbox_page_addr(st, pids[i + j]);
			pbox__page_seal(bufs[j], st->pub.page_size);
		}
		int r = page_io(st, true, bufs, pids + i, k, res);
		if (r && !first)
			first = r;
	}
	return first;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* With a background evictor: it keeps the pool between these marks. */
static uint64_t bg_low(uint64_t budget)
{
	uint64_t gap = budget / 16 < EVICT_BATCH ? budget / 16 : EVICT_BATCH;
	return budget - (gap ? gap : 1);
}

static void bg_kick(pbox_store *st)
{
	pthread_mutex_lock(&st->bg_mu);
	pthread_cond_signal(&st->bg_cv);
	pthread_mutex_unlock(&st->bg_mu);
}

static void *bg_main(void *arg)
{
	pbox_store *st = arg;
	pthread_mutex_lock(&st->bg_mu);
	while (!st->bg_stop) {
		uint64_t budget = atomic_load_explicit(&st->budget_pages, memory_order_relaxed);
		uint64_t low = bg_low(budget);
		if (atomic_load_explicit(&st->resident, memory_order_relaxed) <= low ||
		    pbox__poisoned(st)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000; /* 10 ms: a budget change is noticed soon */
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&st->bg_cv, &st->bg_mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&st->bg_mu);
		(void)pbox__pool_evict(st, low); /* errors poison or resurface in faults */
		pthread_mutex_lock(&st->bg_mu);
	}
	pthread_mutex_unlock(&st->bg_mu);
	return NULL;
}

int pbox__pool_bg_start(pbox_store *st)
{
	int r = pthread_create(&st->bg, NULL, bg_main, st);
	if (r)
		return -r;
	st->bg_running = true;
	return 0;
}

void pbox__pool_bg_stop(pbox_store *st)
{
	if (!st->bg_running)
		return;
	pthread_mutex_lock(&st->bg_mu);
	st->bg_stop = true;
	pthread_cond_signal(&st->bg_cv);
	pthread_mutex_unlock(&st->bg_mu);
	pthread_join(st->bg, NULL);
	st->bg_running = false;
}

static int make_room(pbox_store *st)
{
	uint64_t budget = atomic_load_explicit(&st->budget_pages, memory_order_relaxed);
	uint64_t resident = atomic_load_explicit(&st->resident, memory_order_relaxed);
	if (st->bg_running && resident > bg_low(budget))
		bg_kick(st); /* below the budget still: the fault need not wait */
	if (resident < budget)
		return 0;
	uint64_t batch = budget / 16 < EVICT_BATCH ? budget / 16 : EVICT_BATCH;
	int r = pbox__pool_evict(st, budget - (batch ? batch : 1));
	/* evicting a whole batch may be impossible while one page still fits */
	if (r == PBOX_EFULL && atomic_load_explicit(&st->resident, memory_order_relaxed) < budget)
		r = 0;
	return r;
}

/* Load pid, whose exclusive latch the caller holds and which is EVICTED (A1, A2). */
static int load_locked(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn, bool fresh)
{
	frame *f = pbox__frame(st, pid);
	uint32_t ps = st->pub.page_size;
	int r = make_room(st);
	if (r)
		return r;
	uint64_t snap = pbox_swip_load(&f->swip);
	if ((r = pbox_swip_try(&f->swip, snap, PBOX_FRAME_LOADING)))
		return r == PBOX_EINVAL ? PBOX_EBUSY : r;
	uint64_t owned = pbox_swip_next(snap, PBOX_FRAME_LOADING);
	unsigned char *p = pbox_page_addr(st, pid);
	bool on_disk = !fresh && pid < atomic_load_explicit(&st->file_pages, memory_order_acquire);
	if (on_disk) {
		void *b = p;
		int res;
		r = page_io(st, false, &b, &pid, 1, &res);
		if (!r) {
			r = pbox__page_verify(p, ps, pid);
			if (r && allow_torn) {
				*torn = true; /* recovery restores it from an image, or reports it */
				r = 0;
			} else if (r) {
				r = PBOX_CORRUPT_PID(pid);
			}
		}
		COUNT(st, misses, 1);
	} else {
		memset(p, 0, ps);
	}
	if (r) {
		madvise(p, ps, MADV_DONTNEED);
		pbox_swip_finish(&f->swip, owned, PBOX_FRAME_EVICTED);
		return r;
	}
	res_add(st, pid);
	pbox_swip_finish(&f->swip, owned, PBOX_FRAME_HOT);
	return 0;
}

/* With the exclusive latch held: make the page resident (HOT). */
static int ensure_resident_x(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn)
{
	frame *f = pbox__frame(st, pid);
	pbox_frame_state s = pbox_swip_state(pbox_swip_load(&f->swip));
	if (s == PBOX_FRAME_HOT)
		return 0;
	if (s == PBOX_FRAME_COOL) {
		(void)pbox_swip_reheat(&f->swip);
		COUNT(st, reheats, 1);
		return 0;
	}
	if (s != PBOX_FRAME_EVICTED)
		return PBOX_EBUSY; /* LOADING/EVICTING are held under this latch: cannot be */
	return load_locked(st, pid, allow_torn, torn, false);
}

static int check_pid(pbox_store *st, pbox_pid pid)
{
	if (pid >= st->max_pages)
		return PBOX_EINVAL;
	if (!st->recovering && pid >= atomic_load_explicit(&st->page_count, memory_order_acquire))
		return PBOX_EINVAL;
	return pbox__poisoned(st);
}

int pbox__pool_fault(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn)
{
	frame *f = pbox__frame(st, pid);
	pbox_latch_exclusive_acquire(&f->latch);
	int r = ensure_resident_x(st, pid, allow_torn, torn);
	pbox_latch_exclusive_release(&f->latch);
	return r;
}

int pbox__pool_fix_x(pbox_store *st, pbox_pid pid, bool allow_torn, bool *torn)
{
	int r = check_pid(st, pid);
	if (r)
		return r;
	frame *f = pbox__frame(st, pid);
	pbox_latch_exclusive_acquire(&f->latch);
	if ((r = ensure_resident_x(st, pid, allow_torn, torn)))
		pbox_latch_exclusive_release(&f->latch);
	return r;
}

void pbox__pool_unfix_x(pbox_store *st, pbox_pid pid)
{
	pbox_latch_exclusive_release(&pbox__frame(st, pid)->latch);
}

int pbox__pool_fix_new(pbox_store *st, pbox_pid pid)
{
	if (pid >= st->max_pages)
		return PBOX_ENOSPC;
	frame *f = pbox__frame(st, pid);
	pbox_latch_exclusive_acquire(&f->latch);
	pbox_frame_state s = pbox_swip_state(pbox_swip_load(&f->swip));
	int r = 0;
	if (s == PBOX_FRAME_EVICTED) {
		r = load_locked(st, pid, false, NULL, true);
	} else {
		if (s == PBOX_FRAME_COOL)
			(void)pbox_swip_reheat(&f->swip);
		memset(pbox_page_addr(st, pid), 0, st->pub.page_size);
	}
	if (r)
		pbox_latch_exclusive_release(&f->latch);
	return r;
}

/* ---- public page access ------------------------------------------------------------------- */

pbox_latch *pbox_page_latch(pbox_store *st, pbox_pid pid)
{
	return &pbox__frame(st, pid)->latch;
}

int pbox_page_fix_opt(pbox_store *st, pbox_pid pid, uint64_t *version)
{
	int r = check_pid(st, pid);
	if (r)
		return r;
	frame *f = pbox__frame(st, pid);
	for (;;) {
		uint64_t v;
		if (!pbox_latch_opt_begin(&f->latch, &v))
			v = pbox_latch_opt_begin_wait(&f->latch);
		uint64_t snap = pbox_swip_load(&f->swip);
		pbox_frame_state s = pbox_swip_state(snap);
		if (PBOX_LIKELY(s == PBOX_FRAME_HOT)) {
			COUNT(st, hits, 1);
			*version = v;
			return 0;
		}
		if (s == PBOX_FRAME_COOL) {
			(void)pbox_swip_reheat(&f->swip);
			COUNT(st, reheats, 1);
			*version = v;
			return 0;
		}
		bool torn = false;
		if ((r = pbox__pool_fault(st, pid, false, &torn)))
			return r;
	}
}

bool pbox_page_validate(pbox_store *st, pbox_pid pid, uint64_t version)
{
	return pbox_latch_opt_validate(&pbox__frame(st, pid)->latch, version);
}

int pbox_page_fix_shared(pbox_store *st, pbox_pid pid)
{
	int r = check_pid(st, pid);
	if (r)
		return r;
	frame *f = pbox__frame(st, pid);
	for (;;) {
		pbox_latch_shared_acquire(&f->latch);
		pbox_frame_state s = pbox_swip_state(pbox_swip_load(&f->swip));
		if (s == PBOX_FRAME_HOT || s == PBOX_FRAME_COOL) {
			if (s == PBOX_FRAME_COOL)
				(void)pbox_swip_reheat(&f->swip);
			COUNT(st, hits, 1);
			return 0;
		}
		pbox_latch_shared_release(&f->latch);
		bool torn = false;
		if ((r = pbox__pool_fault(st, pid, false, &torn)))
			return r;
	}
}

void pbox_page_unfix_shared(pbox_store *st, pbox_pid pid)
{
	pbox_latch_shared_release(&pbox__frame(st, pid)->latch);
}

int pbox_page_prefetch(pbox_store *st, const pbox_pid *pids, unsigned n)
{
	int first = 0;
	for (unsigned i = 0; i < n;) {
		pbox_pid claimed[EVICT_BATCH];
		uint64_t owned[EVICT_BATCH];
		void *bufs[EVICT_BATCH];
		int res[EVICT_BATCH];
		unsigned k = 0;
		for (; i < n && k < EVICT_BATCH; i++) {
			pbox_pid pid = pids[i];
			int e = check_pid(st, pid);
			if (e) {
				if (!first)
					first = e;
				continue;
			}
			frame *f = pbox__frame(st, pid);
			if (pbox_swip_state(pbox_swip_load(&f->swip)) != PBOX_FRAME_EVICTED ||
			    !pbox_latch_exclusive_try(&f->latch))
				continue; /* resident, or someone else is on it */
			uint64_t snap = pbox_swip_load(&f->swip);
			bool dup = false;
			for (unsigned j = 0; j < k; j++)
				dup |= claimed[j] == pid;
			if (dup || pbox_swip_state(snap) != PBOX_FRAME_EVICTED ||
			    pbox_swip_try(&f->swip, snap, PBOX_FRAME_LOADING)) {
				if (!dup)
					pbox_latch_exclusive_release(&f->latch);
				continue;
			}
			owned[k] = pbox_swip_next(snap, PBOX_FRAME_LOADING);
			claimed[k] = pid;
			bufs[k] = pbox_page_addr(st, pid);
			k++;
		}
		if (!k)
			continue;
		/* room for all of them (A3: the claimed pages are not in the resident set yet) */
		uint64_t budget = atomic_load_explicit(&st->budget_pages, memory_order_relaxed);
		int r = 0;
		if (atomic_load_explicit(&st->resident, memory_order_relaxed) + k > budget)
			r = pbox__pool_evict(st, budget > k ? budget - k : 0);
		uint64_t fp = atomic_load_explicit(&st->file_pages, memory_order_acquire);
		if (!r) {
			/* pages beyond the file's end were never written: zero, no read */
			pbox_pid rp[EVICT_BATCH];
			void *rb[EVICT_BATCH];
			int rr[EVICT_BATCH];
			unsigned nr = 0;
			for (unsigned j = 0; j < k; j++) {
				res[j] = 0;
				if (claimed[j] < fp) {
					rp[nr] = claimed[j];
					rb[nr++] = bufs[j];
				} else {
					memset(bufs[j], 0, st->pub.page_size);
				}
			}
			page_io(st, false, rb, rp, nr, rr);
			for (unsigned j = 0, q = 0; j < k; j++)
				if (claimed[j] < fp)
					res[j] = rr[q++];
		}
		for (unsigned j = 0; j < k; j++) {
			frame *f = pbox__frame(st, claimed[j]);
			int e = r ? r : res[j];
			if (!e && pbox__page_verify(bufs[j], st->pub.page_size, claimed[j]))
				e = PBOX_CORRUPT_PID(claimed[j]);
			if (e) {
				madvise(bufs[j], st->pub.page_size, MADV_DONTNEED);
				pbox_swip_finish(&f->swip, owned[j], PBOX_FRAME_EVICTED);
				if (!first)
					first = e;
			} else {
				res_add(st, claimed[j]);
				pbox_swip_finish(&f->swip, owned[j], PBOX_FRAME_HOT);
			}
			pbox_latch_exclusive_release(&f->latch);
		}
		COUNT(st, prefetches, k);
	}
	return first;
}

/* ---- eviction ---------------------------------------------------------------------------- */

static int cmp_pid(const void *a, const void *b)
{
	pbox_pid x = *(const pbox_pid *)a, y = *(const pbox_pid *)b;
	return x < y ? -1 : x > y;
}

/* Claim up to want victims (steps 1-2 of the replacement). res_mu held. */
static unsigned claim_victims(pbox_store *st, unsigned want, pbox_pid *v, uint64_t *owned)
{
	unsigned n = 0;
	uint64_t steps = 0, limit = 2ull * st->res_n + 2;
	while (n < want && st->res_n && steps++ < limit) {
		uint32_t slot = st->hand++ % st->res_n;
		pbox_pid pid = st->res[slot];
		frame *f = pbox__frame(st, pid);
		uint64_t snap = pbox_swip_load(&f->swip);
		pbox_frame_state s = pbox_swip_state(snap);
		if (s == PBOX_FRAME_HOT) {
			(void)pbox_swip_try(&f->swip, snap, PBOX_FRAME_COOL);
		} else if (s == PBOX_FRAME_COOL && pbox_latch_exclusive_try(&f->latch)) {
			snap = pbox_swip_load(&f->swip);
			if (pbox_swip_state(snap) == PBOX_FRAME_COOL &&
			    pbox_swip_try(&f->swip, snap, PBOX_FRAME_EVICTING) == 0) {
				owned[n] = pbox_swip_next(snap, PBOX_FRAME_EVICTING);
				v[n++] = pid;
			} else {
				pbox_latch_exclusive_release(&f->latch);
			}
		}
	}
	return n;
}

int pbox__pool_evict(pbox_store *st, uint64_t target)
{
	const uint32_t ps = st->pub.page_size;
	unsigned empty_sweeps = 0;
	int r = 0;
	pthread_mutex_lock(&st->evict_mu);
	while (atomic_load_explicit(&st->resident, memory_order_relaxed) > target) {
		uint64_t over = atomic_load_explicit(&st->resident, memory_order_relaxed) - target;
		unsigned want = over < EVICT_BATCH ? (unsigned)over : EVICT_BATCH;
		pbox_pid v[EVICT_BATCH], dirty[EVICT_BATCH];
		uint64_t owned[EVICT_BATCH];
		pthread_mutex_lock(&st->res_mu);
		unsigned n = claim_victims(st, want, v, owned);
		pthread_mutex_unlock(&st->res_mu);
		if (!n) {
			/* Every page was latched or re-heated during two sweeps. Latches are held
			 * briefly (an mtr, a checkpoint batch): give their holders a moment before
			 * calling the pool exhausted. */
			if (++empty_sweeps < 64) {
				sched_yield();
				continue;
			}
			r = PBOX_EFULL; /* every resident page stays latched */
			break;
		}
		empty_sweeps = 0;
		/* step 3: WAL rule, then write the dirty ones */
		unsigned nd = 0;
		pbox_lsn max_lsn = 0;
		for (unsigned i = 0; i < n; i++) {
			if (atomic_load_explicit(&pbox__frame(st, v[i])->dirty, memory_order_relaxed)) {
				pbox_lsn l = ld64((unsigned char *)pbox_page_addr(st, v[i]) + OFF_LSN);
				if (l > max_lsn)
					max_lsn = l;
				dirty[nd++] = v[i];
			}
		}
		if (nd && max_lsn)
			r = pbox_wal_wait_durable(st->wal, max_lsn);
		if (!r && nd)
			r = pbox__pool_write_pages(st, dirty, nd);
		if (r) {
			pbox__set_poison(st, r);
			for (unsigned i = 0; i < n; i++) {
				frame *f = pbox__frame(st, v[i]);
				pbox_swip_finish(&f->swip, owned[i], PBOX_FRAME_HOT);
				pbox_latch_exclusive_release(&f->latch);
			}
			break;
		}
		/* release memory in contiguous ranges */
		pbox_pid sorted[EVICT_BATCH];
		memcpy(sorted, v, n * sizeof(*v));
		qsort(sorted, n, sizeof(*sorted), cmp_pid);
		for (unsigned i = 0; i < n;) {
			unsigned j = i + 1;
			while (j < n && sorted[j] == sorted[j - 1] + 1)
				j++;
			madvise(pbox_page_addr(st, sorted[i]), (size_t)(j - i) * ps, MADV_DONTNEED);
			i = j;
		}
		pthread_mutex_lock(&st->res_mu);
		for (unsigned i = 0; i < n; i++)
			res_remove_locked(st, v[i]);
		pthread_mutex_unlock(&st->res_mu);
		for (unsigned i = 0; i < n; i++) {
			frame *f = pbox__frame(st, v[i]);
			atomic_store_explicit(&f->dirty, 0, memory_order_relaxed);
			pbox_swip_finish(&f->swip, owned[i], PBOX_FRAME_EVICTED);
			pbox_latch_exclusive_release(&f->latch);
		}
		COUNT(st, evictions, n);
	}
	pthread_mutex_unlock(&st->evict_mu);
	return r;
}

int pbox_store_set_budget(pbox_store *st, uint64_t budget_bytes)
{
	uint64_t b = budget_bytes / st->pub.page_size;
	if (b < 64)
		b = 64;
	atomic_store(&st->budget_pages, b);
	if (atomic_load(&st->resident) > b)
		return pbox__pool_evict(st, b);
	return 0;
}
