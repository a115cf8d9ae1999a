/*
 * tail.c — log tailing (pbox_store_tail_*, pbox/storage.h): a store's durable log, one whole
 * group at a time, encoded as a "shipped group" for a replica (replica.c applies it).
 *
 * SHIPPED GROUP (little-endian; the same table is in storage/README.md):
 *   OFFSET SIZE MEANING
 *        0    4 magic "PBSG" (0x47534250)
 *        4    2 format version (1)
 *        6    2 flags (0)
 *        8    8 group LSN: where the group starts in the primary's log
 *       16    8 end LSN: just past it (the LSN the primary stamped on its pages)
 *       24    8 redo hint: a redo start of the primary (a checkpoint's C: every page changed
 *                after it logged a full-page image or an INIT at its first change) at or
 *                below the group LSN; 0 if the tail knows none
 *       32    4 number of records (at least 1)
 *       36    4 total length: this header and every record
 *       40    4 CRC32C of the whole message with this field zero
 *       44    4 zero
 *       48      records, back to back, each: u16 type (not 0), u16 zero, u32 payload
 *                length, the payload (the WAL record's, unchanged)
 * Why not the WAL's own group bytes: they hold the primary's sync LSN and a layout private
 * to the wal library; the tail reads through the public iterator and the replica appends
 * through the public append, which lays the group out again at the same LSN.
 *
 * Invariants:
 *   - only durable groups are shipped: the public iterator stops at the durable end as of
 *     its opening, and a new one is opened from the tail's position once the durable LSN
 *     has moved past it. A replica therefore never holds a group its primary could lose.
 *   - pos (the end of the last group returned) is the tail's floor: checkpoints recycle
 *     no segment at or above it (pbox__tail_floor, called under ckpt_mu) unless the log's
 *     end is more than max_lag_bytes past it; then the checkpoint marks the tail lagged and
 *     ignores it, and every later call returns PBOX_ELAGGED. A group read from a segment
 *     being recycled is still a real group (the iterator checks its CRC and its own LSN);
 *     the read fails or yields it, and the lagged flag, checked after every read, decides.
 *   - a group that did not fit the caller's buffer stays encoded in msg until delivered.
 *
 * Locking: the tail itself is one thread's at a time. st->tail_mu guards the list of tails
 * (registration, and the floor's walk, which runs under ckpt_mu: ckpt_mu -> tail_mu). A
 * tail registers under ckpt_mu, so no checkpoint is between reading floors and recycling
 * while its position becomes a floor; it then checks, through an iterator, that the log
 * still holds its start.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SHIP_MAGIC 0x47534250u /* "PBSG" */
#define SHIP_VERSION 1u
#define NHINTS 16u

struct pbox_tail {
	pbox_store *st;
	struct pbox_tail *next; /* st->tails (tail_mu) */
	bool registered;        /* in st->tails (tail_mu) */
	_Atomic pbox_lsn pos;
	_Atomic bool lagged;
	uint64_t max_lag;
	char *errbuf;
	size_t errbuf_len;
	pbox_wal_iter *it;
	pbox_lsn it_limit; /* the durable LSN read before the iterator was opened: it yields at
	                      least everything below it */
	pbox_lsn drained;  /* it_limit of the last iterator that ran dry */
	/* redo starts of the store seen so far, ascending (a checkpoint's C only grows) */
	pbox_lsn hints[NHINTS];
	unsigned nhints;
	/* the encoded group not yet handed over (ETOOSMALL), and its range */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	bool held;
	pbox_lsn held_lsn, held_end;
};

__attribute__((format(printf, 2, 3))) static void say(pbox_tail *t, const char *fmt, ...)
{
	if (!t->errbuf || !t->errbuf_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->errbuf, t->errbuf_len, fmt, ap);
	va_end(ap);
}

void pbox_tail_options_init(pbox_tail_options *o)
{
	memset(o, 0, sizeof(*o));
	o->max_lag_bytes = 256ull << 20;
}

static void unregister(pbox_tail *t)
{
	pbox_store *st = t->st;
	pthread_mutex_lock(&st->tail_mu);
	if (t->registered) {
		pbox_tail **pp = &st->tails;
		while (*pp != t)
			pp = &(*pp)->next;
		*pp = t->next;
		t->registered = false;
	}
	pthread_mutex_unlock(&st->tail_mu);
}

pbox_lsn pbox__tail_floor(pbox_store *st, pbox_lsn end)
{
	pbox_lsn floor = PBOX_LSN_NONE;
	pthread_mutex_lock(&st->tail_mu);
	for (pbox_tail *t = st->tails; t; t = t->next) {
		pbox_lsn p = atomic_load(&t->pos);
		if (atomic_load(&t->lagged))
			continue;
		if (end > p && end - p > t->max_lag) {
			atomic_store(&t->lagged, true); /* let go: it resynchronises from a backup */
			continue;
		}
		if (floor == PBOX_LSN_NONE || p < floor)
			floor = p;
	}
	pthread_mutex_unlock(&st->tail_mu);
	return floor;
}

static int lagged(pbox_tail *t)
{
	say(t, "the tail at LSN %" PRIu64 " fell more than %" PRIu64 " bytes behind the log's "
	       "end (%" PRIu64 "): its log may be recycled; resynchronise from a backup",
	    atomic_load(&t->pos), t->max_lag, pbox_wal_end_lsn(t->st->wal));
	return PBOX_ELAGGED;
}

int pbox_store_tail_open(pbox_store *st, pbox_lsn from, const pbox_tail_options *o,
			 pbox_tail **out)
{
	pbox_tail_options defaults;
	if (!o) {
		pbox_tail_options_init(&defaults);
		o = &defaults;
	}
	if (!st || !out)
		return PBOX_EINVAL;
	if (o->errbuf && o->errbuf_len)
		o->errbuf[0] = 0;
	pbox_wal_info wi;
	pbox_wal_get_info(st->wal, &wi);
	if (o->max_lag_bytes < wi.segment_size) {
		if (o->errbuf && o->errbuf_len)
			snprintf(o->errbuf, o->errbuf_len, "max_lag_bytes (%" PRIu64 ") is less than "
				 "one log segment (%" PRIu64 ")", o->max_lag_bytes, wi.segment_size);
		return PBOX_EINVAL;
	}
	int r = pbox__poisoned(st);
	if (r)
		return r;
	pbox_tail *t = pbox_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->st = st;
	t->max_lag = o->max_lag_bytes;
	t->errbuf = o->errbuf;
	t->errbuf_len = o->errbuf_len;
	atomic_store(&t->pos, from);
	/* under ckpt_mu: no checkpoint between its floor walk and its recycling */
	pthread_mutex_lock(&st->ckpt_mu);
	pthread_mutex_lock(&st->tail_mu);
	t->next = st->tails;
	st->tails = t;
	t->registered = true;
	pthread_mutex_unlock(&st->tail_mu);
	pthread_mutex_unlock(&st->ckpt_mu);
	pbox_lsn end = pbox_wal_end_lsn(st->wal);
	if (from > end) {
		say(t, "LSN %" PRIu64 " lies beyond the log's end (%" PRIu64 "): the receiver is "
		       "ahead of this store (not its primary?)", from, end);
		r = PBOX_EINVAL;
	} else if (end - from > t->max_lag) {
		r = lagged(t);
	} else if (from <= pbox_wal_durable_lsn(st->wal)) {
		/* the log still holds from (else it was recycled: the receiver is too old) */
		r = pbox_wal_iter_open(st->wal, from, &t->it);
		if (r == PBOX_EINVAL) {
			say(t, "the log no longer holds LSN %" PRIu64 ": resynchronise from a backup",
			    from);
			r = PBOX_ELAGGED;
		}
	}
	if (r) {
		pbox_store_tail_close(t);
		return r;
	}
	*out = t;
	return 0;
}

pbox_lsn pbox_store_tail_pos(const pbox_tail *t)
{
	return atomic_load(&((pbox_tail *)t)->pos);
}

void pbox_store_tail_close(pbox_tail *t)
{
	if (!t)
		return;
	unregister(t);
	if (t->it)
		pbox_wal_iter_close(t->it);
	pbox_free(t->msg);
	pbox_free(t);
}

static int grow(pbox_tail *t, size_t need)
{
	if (need <= t->msg_cap)
		return 0;
	size_t nc = t->msg_cap ? t->msg_cap : 64 << 10;
	while (nc < need)
		nc *= 2;
	unsigned char *p = pbox_realloc(t->msg, nc);
	if (!p)
		return -ENOMEM;
	t->msg = p;
	t->msg_cap = nc;
	return 0;
}

/* Remember the store's current redo start; the largest known one at or below lsn. */
static pbox_lsn hint_for(pbox_tail *t, pbox_lsn lsn)
{
	pbox_lsn rs = atomic_load(&t->st->redo_start);
	if (!t->nhints || t->hints[t->nhints - 1] < rs) {
		if (t->nhints == NHINTS) {
			memmove(t->hints, t->hints + 1, (NHINTS - 1) * sizeof(t->hints[0]));
			t->nhints--;
		}
		t->hints[t->nhints++] = rs;
	}
	pbox_lsn best = 0;
	for (unsigned i = 0; i < t->nhints; i++)
		if (t->hints[i] <= lsn)
			best = t->hints[i];
	return best;
}

/* Encode the iterator's current group g into msg. */
static int encode(pbox_tail *t, const pbox_wal_group *g)
{
	size_t len = PBOX_SHIP_HDR;
	int r = grow(t, len);
	pbox_wal_record rec;
	uint32_t n = 0;
	while (!r && pbox_wal_iter_record(t->it, &rec) == 1) {
		if ((r = grow(t, len + PBOX_SHIP_REC_HDR + rec.len)))
			break;
		unsigned char *p = t->msg + len;
		st16(p, rec.type);
		st16(p + 2, 0);
		st32(p + 4, rec.len);
		if (rec.len)
			memcpy(p + PBOX_SHIP_REC_HDR, rec.data, rec.len);
		len += PBOX_SHIP_REC_HDR + rec.len;
		n++;
	}
	if (r)
		return r;
	if (!n || len > UINT32_MAX)
		return PBOX_CORRUPT(); /* the iterator yields no empty group */
	unsigned char *h = t->msg;
	memset(h, 0, PBOX_SHIP_HDR);
	st32(h, SHIP_MAGIC);
	st16(h + 4, SHIP_VERSION);
	st64(h + 8, g->lsn);
	st64(h + 16, g->end_lsn);
	st64(h + 24, hint_for(t, g->lsn));
	st32(h + 32, n);
	st32(h + 36, (uint32_t)len);
	st32(h + 40, pbox_crc32c(0, h, len));
	t->msg_len = len;
	t->held = true;
	t->held_lsn = g->lsn;
	t->held_end = g->end_lsn;
	return 0;
}

static int deliver(pbox_tail *t, void *buf, size_t cap, size_t *len, pbox_lsn *lsn,
		   pbox_lsn *end)
{
	*len = t->msg_len;
	if (cap < t->msg_len) {
		say(t, "the next group needs %zu bytes, the buffer holds %zu", t->msg_len, cap);
		return PBOX_ETOOSMALL;
	}
	memcpy(buf, t->msg, t->msg_len);
	if (lsn)
		*lsn = t->held_lsn;
	if (end)
		*end = t->held_end;
	t->held = false;
	return 1;
}

static void nap_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int pbox_store_tail_next(pbox_tail *t, void *buf, size_t cap, size_t *len, pbox_lsn *lsn,
			 pbox_lsn *end, int timeout_ms)
{
	if (!t || !len || (cap && !buf))
		return PBOX_EINVAL;
	pbox_store *st = t->st;
	if (atomic_load(&t->lagged))
		return lagged(t);
	if (t->held)
		return deliver(t, buf, cap, len, lsn, end);
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : pbox_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		pbox_lsn pos = atomic_load(&t->pos), wend = pbox_wal_end_lsn(st->wal);
		if (wend > pos && wend - pos > t->max_lag) {
			atomic_store(&t->lagged, true);
			unregister(t);
		}
		if (atomic_load(&t->lagged))
			return lagged(t);
		int r = pbox__poisoned(st);
		if (r)
			return r;
		pbox_lsn durable = pbox_wal_durable_lsn(st->wal);
		if (!t->it && durable > pos && durable > t->drained) {
			r = pbox_wal_iter_open(st->wal, pos, &t->it);
			t->it_limit = durable;
			if (r) {
				t->it = NULL;
				if (atomic_load(&t->lagged) || r == PBOX_EINVAL)
					return lagged(t);
				say(t, "reading the log at LSN %" PRIu64 ": %s", pos, pbox_strerror(r));
				return r;
			}
		}
		if (t->it) {
			pbox_wal_group g;
			r = pbox_wal_iter_next(t->it, &g);
			if (r == 1 && (r = encode(t, &g)) == 0)
				r = 1;
			if (r <= 0) { /* dry, or failed: the next iterator starts again at pos */
				pbox_wal_iter_close(t->it);
				t->it = NULL;
				if (r == 0)
					t->drained = t->it_limit;
			}
			if (atomic_load(&t->lagged)) /* its segments may have gone meanwhile */
				return lagged(t);
			if (r < 0) {
				say(t, "reading the log at LSN %" PRIu64 ": %s", pos, pbox_strerror(r));
				return r;
			}
			if (t->held) {
				if (g.lsn < pos) { /* the iterator started at pos: cannot be */
					t->held = false;
					return PBOX_CORRUPT();
				}
				atomic_store(&t->pos, g.end_lsn);
				return deliver(t, buf, cap, len, lsn, end);
			}
			continue; /* dry: a new iterator at once if the log grew since this one */
		}
		if (pbox_now_ns() >= deadline)
			return 0;
		nap_us(200);
	}
}
