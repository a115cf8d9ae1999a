/*
 * replica.c — a store that follows a primary's log (pbox_store_apply, read sessions;
 * pbox/storage.h, storage/README.md "Log tailing and replicas"). The shipped-group format is
 * tabled in tail.c.
 *
 * A replica is opened (options.replica) from a backup of its primary. Its log mirrors the
 * primary's: every shipped group is verified whole, then appended to the replica's own log,
 * where the public append lays it out at the very LSN it had on the primary (same segment
 * size — a backup copies the log, and a log keeps its segment size — and the same records,
 * so the same length; where it would land is computed first, pbox_wal_append's placement
 * per wal/README.md, and a group that would land elsewhere is refused as out of order).
 * Page LSNs, full-page images and recovery therefore mean on the replica what they mean on
 * the primary, and a replica recovers like any store — except that it replays no logical
 * record (store.c): re-installing a transaction would append groups of its own.
 *
 * Whole transactions (the visibility rule). A transaction of the structure above logs OPS,
 * then COMMIT, then installs its keys through ordinary groups, then END (pbox_replica_txn
 * names the three types; each payload starts with the transaction's id). A state in which
 * some transaction has its COMMIT and not its END may show it half installed; a state with
 * none open shows every transaction whole or not at all (its install lies between the two).
 * So apply keeps a set of open transactions and, after each group, if none is committed and
 * open (a consistent point), applies every group held since to the pages, at once, inside
 * the gate (below) held exclusively; otherwise it only appends the group and holds it in
 * memory. Readers take the gate shared (read sessions), so they see the pages only at
 * consistent points. If the held groups pass replica_max_pending_bytes, apply puts them on
 * the pages anyway and leaves the gate closed: sessions wait until the next consistent point
 * (correct, less available). A replica opened in the middle of a transaction starts closed.
 *
 * Checkpoints of a replica (checkpoint.c): the redo start C must be (1) at or below the
 * applied LSN (held groups are in the log, not on the pages) and (2) an epoch start of the
 * primary: a page torn on the replica's disk is repaired by the first full-page image after
 * C, which the primary logged only after its own checkpoints' C. Each shipped group carries
 * a redo hint (a redo start of the primary at or below it); the replica keeps the largest
 * hint of an applied group (initially its own redo start: the backup's superblock). The
 * logical start also keeps the first record of every open transaction (a promotion's
 * recovery re-installs it from those records).
 *
 * Locking: mu serialises appliers and guards the set and the held groups. The gate: gmu +
 * gcv with readers, writer, wwait (an applier waiting: new sessions wait, so apply is not
 * starved) and closed. Apply: mu -> ckpt_lock (shared, around append and around each
 * group's page changes, like an mtr's commit) ; mu -> gate -> page latches (ascending page
 * id, all of a group's pages held together) -> ckpt_lock. applied and hint are atomics read
 * by checkpoints under ckpt_lock exclusively; floor is published before applied moves.
 */
#define _GNU_SOURCE
#include "storage_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHIP_MAGIC 0x47534250u
#define SHIP_VERSION 1u
#define WAL_SEG_HDR 4096u /* wal/README.md: the segment header block */
#define WAL_GROUP_HDR 40u /* group header */
#define WAL_REC_HDR 24u   /* record header; payloads padded to 8 */
#define MAX_GROUP_PAGES (4 * PBOX_MTR_MAX_PAGES) /* recovery's own limit */

typedef struct held_group {
	struct held_group *next;
	size_t len;
	unsigned char msg[];
} held_group;

typedef struct otx {
	uint64_t id;
	pbox_lsn first;
	bool committed;
} otx;

struct replica {
	pthread_mutex_t mu;
	pbox_replica_txn types;
	uint64_t max_pending, seg, max_glen;
	otx *tx;
	size_t ntx, captx, ncommitted;
	held_group *head, *tail;
	uint64_t nheld, held_bytes;
	_Atomic pbox_lsn applied, hint, floor;
	uint64_t applied_n, dups, refused;
	/* the gate */
	pthread_mutex_t gmu;
	pthread_cond_t gcv;
	unsigned readers, wwait;
	bool writer, closed;
};

typedef struct shipped {
	pbox_lsn lsn, end, hint;
	uint32_t nrec, len;
	const unsigned char *recs;
} shipped;

__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t n, const char *fmt, ...)
{
	if (!buf || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

static uint64_t align8(uint64_t x)
{
	return (x + 7) & ~7ull;
}

/* ---- the open-transaction set -------------------------------------------------------------- */

static otx *tx_find(struct replica *rp, uint64_t id)
{
	for (size_t i = 0; i < rp->ntx; i++)
		if (rp->tx[i].id == id)
			return &rp->tx[i];
	return NULL;
}

static int tx_reserve(struct replica *rp, size_t more)
{
	if (rp->ntx + more <= rp->captx)
		return 0;
	size_t nc = rp->captx ? rp->captx : 16;
	while (nc < rp->ntx + more)
		nc *= 2;
	otx *p = pbox_realloc(rp->tx, nc * sizeof(*p));
	if (!p)
		return -ENOMEM;
	rp->tx = p;
	rp->captx = nc;
	return 0;
}

/* One logical record of the group starting at lsn (capacity reserved by the caller). */
static void tx_note(struct replica *rp, uint16_t type, const unsigned char *payload, uint32_t len,
		    pbox_lsn lsn)
{
	const pbox_replica_txn *ty = &rp->types;
	if (len < 16 || !type || (type != ty->ops && type != ty->commit && type != ty->end))
		return;
	uint64_t id = ld64(payload + 8);
	otx *x = tx_find(rp, id);
	if (type == ty->end) {
		if (x) {
			rp->ncommitted -= x->committed;
			*x = rp->tx[--rp->ntx];
		}
		return; /* an end of something begun before the log the replica reads: ignored */
	}
	if (!x) {
		x = &rp->tx[rp->ntx++];
		*x = (otx){ .id = id, .first = lsn, .committed = false };
	}
	if (type == ty->commit && !x->committed) {
		x->committed = true;
		rp->ncommitted++;
	}
}

static void publish_floor(struct replica *rp)
{
	pbox_lsn f = PBOX_LSN_NONE;
	for (size_t i = 0; i < rp->ntx; i++)
		if (f == PBOX_LSN_NONE || rp->tx[i].first < f)
			f = rp->tx[i].first;
	atomic_store(&rp->floor, f);
}

/* ---- the gate ------------------------------------------------------------------------------ */

int pbox_store_read_begin(pbox_store *st, int timeout_ms)
{
	if (!st)
		return PBOX_EINVAL;
	struct replica *rp = st->rep;
	if (!rp)
		return 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms >= 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	int r = 0;
	pthread_mutex_lock(&rp->gmu);
	while (!r && (rp->writer || rp->wwait || rp->closed)) {
		if (timeout_ms < 0)
			pthread_cond_wait(&rp->gcv, &rp->gmu);
		else if (pthread_cond_timedwait(&rp->gcv, &rp->gmu, &ts) == ETIMEDOUT)
			r = PBOX_EBUSY;
	}
	if (!r)
		rp->readers++;
	pthread_mutex_unlock(&rp->gmu);
	return r;
}

void pbox_store_read_end(pbox_store *st)
{
	struct replica *rp = st ? st->rep : NULL;
	if (!rp)
		return;
	pthread_mutex_lock(&rp->gmu);
	if (rp->readers && --rp->readers == 0)
		pthread_cond_broadcast(&rp->gcv);
	pthread_mutex_unlock(&rp->gmu);
}

static void gate_enter(struct replica *rp)
{
	pthread_mutex_lock(&rp->gmu);
	rp->wwait++;
	while (rp->writer || rp->readers)
		pthread_cond_wait(&rp->gcv, &rp->gmu);
	rp->wwait--;
	rp->writer = true;
	pthread_mutex_unlock(&rp->gmu);
}

static void gate_leave(struct replica *rp, bool closed)
{
	pthread_mutex_lock(&rp->gmu);
	rp->writer = false;
	rp->closed = closed;
	pthread_cond_broadcast(&rp->gcv);
	pthread_mutex_unlock(&rp->gmu);
}

/* ---- the shipped group --------------------------------------------------------------------- */

/* Verify the message whole: format, checksum, and every record against recovery's rules
 * (pbox__redo_check). *glen = the group's length in the WAL. Nothing is changed. */
static int parse(pbox_store *st, const unsigned char *m, size_t len, shipped *s, uint64_t *glen,
		 char *eb, size_t en)
{
	if (len < PBOX_SHIP_HDR || ld32(m) != SHIP_MAGIC) {
		say(eb, en, "not a shipped group (%zu bytes, bad magic or too short)", len);
		return PBOX_ECORRUPT;
	}
	if (ld16(m + 4) != SHIP_VERSION) {
		say(eb, en, "shipped group format version %u (this library reads %u)", ld16(m + 4),
		    SHIP_VERSION);
		return PBOX_EVERSION;
	}
	s->lsn = ld64(m + 8);
	s->end = ld64(m + 16);
	s->hint = ld64(m + 24);
	s->nrec = ld32(m + 32);
	s->len = ld32(m + 36);
	if (s->len != len) {
		say(eb, en, "shipped group truncated or padded: %zu bytes, its header says %u", len,
		    s->len);
		return PBOX_ECORRUPT;
	}
	unsigned char h[PBOX_SHIP_HDR];
	memcpy(h, m, PBOX_SHIP_HDR);
	st32(h + 40, 0);
	uint32_t crc = pbox_crc32c(0, h, PBOX_SHIP_HDR);
	crc = pbox_crc32c(crc, m + PBOX_SHIP_HDR, len - PBOX_SHIP_HDR);
	if (crc != ld32(m + 40)) {
		say(eb, en, "shipped group [%" PRIu64 ", %" PRIu64 "): checksum mismatch", s->lsn,
		    s->end);
		return PBOX_ECORRUPT;
	}
	if (ld16(m + 6) || ld32(m + 44) || !s->nrec || s->end <= s->lsn || s->hint > s->lsn) {
		say(eb, en, "shipped group [%" PRIu64 ", %" PRIu64 "): bad header fields", s->lsn,
		    s->end);
		return PBOX_ECORRUPT;
	}
	s->recs = m + PBOX_SHIP_HDR;
	uint64_t body = 0;
	pbox_pid pids[MAX_GROUP_PAGES];
	unsigned npids = 0;
	size_t off = PBOX_SHIP_HDR;
	for (uint32_t i = 0; i < s->nrec; i++) {
		if (len - off < PBOX_SHIP_REC_HDR) {
			say(eb, en, "shipped group at %" PRIu64 ": record %u is cut short", s->lsn, i);
			return PBOX_ECORRUPT;
		}
		uint16_t type = ld16(m + off);
		uint32_t rl = ld32(m + off + 4);
		if (!type || ld16(m + off + 2) || rl > len - off - PBOX_SHIP_REC_HDR) {
			say(eb, en, "shipped group at %" PRIu64 ": record %u has a bad header", s->lsn,
			    i);
			return PBOX_ECORRUPT;
		}
		const unsigned char *p = m + off + PBOX_SHIP_REC_HDR;
		pbox_pid pid;
		int r = pbox__redo_check(st, type, p, rl, &pid);
		const pbox_replica_txn *ty = &st->rep->types;
		if (!r && pid == PBOX_PID_NONE && rl < 16 &&
		    (type == ty->ops || type == ty->commit || type == ty->end))
			r = PBOX_CORRUPT(); /* a transaction record without its id */
		if (r) {
			say(eb, en, "shipped group at %" PRIu64 ": record %u (type %u, %u bytes) "
				    "cannot be applied: %s", s->lsn, i, type, rl, pbox_strerror(r));
			return r;
		}
		if (pid != PBOX_PID_NONE) {
			unsigned k = 0;
			while (k < npids && pids[k] != pid)
				k++;
			if (k == npids) {
				if (npids == MAX_GROUP_PAGES) {
					say(eb, en, "shipped group at %" PRIu64 ": more pages than any "
						    "mini-transaction changes", s->lsn);
					return PBOX_CORRUPT();
				}
				pids[npids++] = pid;
			}
		}
		body += WAL_REC_HDR + align8(rl);
		off += PBOX_SHIP_REC_HDR + rl;
	}
	if (off != len) {
		say(eb, en, "shipped group at %" PRIu64 ": %zu bytes after its last record", s->lsn,
		    len - off);
		return PBOX_ECORRUPT;
	}
	*glen = WAL_GROUP_HDR + body;
	if (s->end - s->lsn != *glen) {
		say(eb, en, "shipped group [%" PRIu64 ", %" PRIu64 "): its records make a group of "
			    "%" PRIu64 " bytes", s->lsn, s->end, *glen);
		return PBOX_ECORRUPT;
	}
	return 0;
}

/* Where pbox_wal_append puts a group of glen bytes in a log ending at w (wal/README.md: a
 * group never crosses a segment; fewer than 40 bytes left start the next one). */
static pbox_lsn place(uint64_t seg, pbox_lsn w, uint64_t glen)
{
	uint64_t off = w % seg;
	if (off < WAL_SEG_HDR)
		w = w - off + WAL_SEG_HDR;
	else if (seg - off < WAL_GROUP_HDR)
		w = w - off + seg + WAL_SEG_HDR;
	if (w % seg + glen > seg)
		w = w - w % seg + seg + WAL_SEG_HDR;
	return w;
}

/* ---- applying to pages --------------------------------------------------------------------- */

static int cmp_pid(const void *a, const void *b)
{
	pbox_pid x = *(const pbox_pid *)a, y = *(const pbox_pid *)b;
	return x < y ? -1 : x > y;
}

/* One held group onto the pages: every page it names latched exclusively (ascending ids:
 * the only other multi-page latcher on a replica is the checkpoint, which blocks on no
 * second latch), then each record as recovery applies it, then the page count mirrored
 * from the meta page. The caller holds the gate exclusively. */
static int apply_pages(pbox_store *st, const held_group *hg)
{
	shipped s = { .lsn = ld64(hg->msg + 8), .end = ld64(hg->msg + 16),
		      .hint = ld64(hg->msg + 24), .nrec = ld32(hg->msg + 32) };
	const unsigned char *m = hg->msg;
	pbox_pid pids[MAX_GROUP_PAGES];
	int decision[MAX_GROUP_PAGES];
	unsigned n = 0;
	pbox_pid maxpid = 0;
	size_t off = PBOX_SHIP_HDR;
	for (uint32_t i = 0; i < s.nrec; i++) {
		uint32_t rl = ld32(m + off + 4);
		pbox_pid pid = ld64(m + off + PBOX_SHIP_REC_HDR);
		off += PBOX_SHIP_REC_HDR + rl;
		if (pid == PBOX_PID_NONE)
			continue;
		unsigned k = 0;
		while (k < n && pids[k] != pid)
			k++;
		if (k == n)
			pids[n++] = pid;
		if (pid > maxpid)
			maxpid = pid;
	}
	int r = 0;
	if (n && maxpid >= atomic_load(&st->file_pages))
		r = pbox__store_grow(st, maxpid + 1); /* the primary grew its file for it */
	if (r)
		return r;
	/* a page the primary just allocated: the meta page's count follows with the group */
	if (n && maxpid >= atomic_load(&st->page_count))
		atomic_store(&st->page_count, maxpid + 1);
	qsort(pids, n, sizeof(pids[0]), cmp_pid);
	unsigned fixed = 0;
	for (; fixed < n && !r; fixed++)
		if ((r = pbox__pool_fix_x(st, pids[fixed], false, NULL)))
			break;
	for (unsigned k = 0; k < n; k++)
		decision[k] = -1;
	pthread_rwlock_rdlock(&st->ckpt_lock);
	off = PBOX_SHIP_HDR;
	for (uint32_t i = 0; i < s.nrec && !r; i++) {
		uint16_t type = ld16(m + off);
		uint32_t rl = ld32(m + off + 4);
		const unsigned char *p = m + off + PBOX_SHIP_REC_HDR;
		off += PBOX_SHIP_REC_HDR + rl;
		pbox_pid pid = ld64(p);
		if (pid == PBOX_PID_NONE)
			continue;
		pbox_pid *at = bsearch(&pid, pids, n, sizeof(pids[0]), cmp_pid);
		bool restored = false;
		r = pbox__redo_apply_held(st, type, p, rl, s.end, false, &restored,
					  &decision[at - pids]);
	}
	if (!r && bsearch(&(pbox_pid){ META_PID }, pids, n, sizeof(pids[0]), cmp_pid))
		atomic_store(&st->page_count,
			     ld64((unsigned char *)pbox_page_addr(st, META_PID) + META_COUNT));
	if (!r) {
		struct replica *rp = st->rep;
		if (s.hint > atomic_load(&rp->hint))
			atomic_store(&rp->hint, s.hint);
		atomic_store(&rp->applied, s.end);
		rp->applied_n++;
	}
	pthread_rwlock_unlock(&st->ckpt_lock);
	for (unsigned k = 0; k < fixed; k++)
		pbox__pool_unfix_x(st, pids[k]);
	return r;
}

/* Every held group onto the pages, inside the gate; the gate stays closed after if a
 * transaction is still open. A failure poisons the replica (its log is ahead of its pages). */
static int apply_held(pbox_store *st, bool closed)
{
	struct replica *rp = st->rep;
	gate_enter(rp);
	int r = 0;
	while (rp->head && !r) {
		held_group *hg = rp->head;
		r = apply_pages(st, hg);
		rp->head = hg->next;
		rp->nheld--;
		rp->held_bytes -= hg->len;
		pbox_free(hg);
	}
	if (!rp->head)
		rp->tail = NULL;
	if (r)
		pbox__set_poison(st, r);
	gate_leave(rp, closed && !r);
	return r;
}

int pbox_store_apply(pbox_store *st, const void *group, size_t len, char *eb, size_t en)
{
	if (eb && en)
		eb[0] = 0;
	if (!st || !st->rep || (!group && len)) {
		say(eb, en, "pbox_store_apply needs a store opened with options.replica");
		return PBOX_EINVAL;
	}
	int r = pbox__poisoned(st);
	if (r)
		return r;
	struct replica *rp = st->rep;
	const unsigned char *m = group;
	shipped s;
	uint64_t glen = 0;
	pthread_mutex_lock(&rp->mu);
	if ((r = parse(st, m, len, &s, &glen, eb, en)))
		goto refuse;
	if (glen > rp->max_glen) {
		say(eb, en, "shipped group at %" PRIu64 ": %" PRIu64 " bytes, more than this log's "
			    "largest group", s.lsn, glen);
		r = PBOX_ECORRUPT;
		goto refuse;
	}
	pbox_lsn w = pbox_wal_end_lsn(st->wal);
	if (s.end <= w) { /* the replica's log holds it already */
		rp->dups++;
		pthread_mutex_unlock(&rp->mu);
		return 1;
	}
	pbox_lsn at = place(rp->seg, w, glen);
	if (s.lsn != at) {
		say(eb, en, "shipped group [%" PRIu64 ", %" PRIu64 ") out of order: the replica's "
			    "log ends at %" PRIu64 ", so the next group starts at %" PRIu64
			    "%s", s.lsn, s.end, w, at, s.lsn > at ? " (a gap)" : " (overlaps)");
		r = PBOX_EINVAL;
		goto refuse;
	}
	/* everything that could fail without harm, before the append */
	held_group *hg = pbox_malloc(sizeof(*hg) + len);
	pbox_wal_rec *recs = pbox_malloc(s.nrec * sizeof(*recs));
	if (!hg || !recs || (r = tx_reserve(rp, s.nrec))) {
		pbox_free(hg);
		pbox_free(recs);
		pthread_mutex_unlock(&rp->mu);
		return -ENOMEM;
	}
	hg->next = NULL;
	hg->len = len;
	memcpy(hg->msg, m, len);
	size_t off = PBOX_SHIP_HDR;
	for (uint32_t i = 0; i < s.nrec; i++) {
		uint32_t rl = ld32(hg->msg + off + 4);
		recs[i] = (pbox_wal_rec){ .type = ld16(hg->msg + off),
					  .data = hg->msg + off + PBOX_SHIP_REC_HDR, .len = rl };
		off += PBOX_SHIP_REC_HDR + rl;
	}
	pbox_lsn end = 0;
	pthread_rwlock_rdlock(&st->ckpt_lock);
	r = pbox_wal_append(st->wal, recs, s.nrec, &end);
	pthread_rwlock_unlock(&st->ckpt_lock);
	if (!r && end != s.end) {
		say(eb, en, "the replica's log put the group [%" PRIu64 ", %" PRIu64 ") at end "
			    "%" PRIu64 ": its log does not mirror the primary's", s.lsn, s.end, end);
		r = PBOX_CORRUPT();
	}
	if (r) {
		pbox_free(hg);
		pbox_free(recs);
		pbox__set_poison(st, r);
		pthread_mutex_unlock(&rp->mu);
		return r;
	}
	for (uint32_t i = 0; i < s.nrec; i++)
		if (ld64(recs[i].data) == PBOX_PID_NONE)
			tx_note(rp, recs[i].type, recs[i].data, recs[i].len, s.lsn);
	pbox_free(recs);
	publish_floor(rp); /* before applied can move past these records */
	if (rp->tail)
		rp->tail->next = hg;
	else
		rp->head = hg;
	rp->tail = hg;
	rp->nheld++;
	rp->held_bytes += len;
	if (!rp->ncommitted)
		r = apply_held(st, false); /* a consistent point: everything held, at once */
	else if (rp->held_bytes > rp->max_pending)
		r = apply_held(st, true); /* too much held: apply, keep sessions out meanwhile */
	if (r)
		say(eb, en, "applying the group [%" PRIu64 ", %" PRIu64 ") to the pages: %s "
			    "(the replica is poisoned)", s.lsn, s.end, pbox_strerror(r));
	pthread_mutex_unlock(&rp->mu);
	return r;
refuse:
	rp->refused++;
	pthread_mutex_unlock(&rp->mu);
	return r;
}

pbox_lsn pbox_store_replica_lsn(pbox_store *st)
{
	return st && st->rep ? pbox_wal_end_lsn(st->wal) : PBOX_LSN_NONE;
}

int pbox_store_replica_info(pbox_store *st, pbox_replica_info *info)
{
	if (!st || !st->rep || !info)
		return PBOX_EINVAL;
	struct replica *rp = st->rep;
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&rp->mu);
	info->next_lsn = pbox_wal_end_lsn(st->wal);
	info->applied_lsn = atomic_load(&rp->applied);
	info->pending_groups = rp->nheld;
	info->pending_bytes = rp->held_bytes;
	info->open_txns = rp->ncommitted;
	info->applied = rp->applied_n;
	info->duplicates = rp->dups;
	info->refused = rp->refused;
	pthread_mutex_unlock(&rp->mu);
	pthread_mutex_lock(&rp->gmu);
	info->readers_blocked = rp->closed;
	pthread_mutex_unlock(&rp->gmu);
	return 0;
}

/* ---- store hooks --------------------------------------------------------------------------- */

pbox_lsn pbox__replica_ckpt_lsn(pbox_store *st)
{
	if (!st->rep) /* not yet (or no longer) following: nothing past the redo start is safe */
		return atomic_load(&st->redo_start);
	return atomic_load(&st->rep->hint);
}

pbox_lsn pbox__replica_floor(pbox_store *st)
{
	return st->rep ? atomic_load(&st->rep->floor) : PBOX_LSN_NONE;
}

int pbox__replica_init(pbox_store *st, const pbox_store_options *o)
{
	struct replica *rp = pbox_calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	pthread_mutex_init(&rp->mu, NULL);
	pthread_mutex_init(&rp->gmu, NULL);
	pthread_cond_init(&rp->gcv, NULL);
	rp->types = o->replica_txn;
	rp->max_pending = o->replica_max_pending_bytes ? o->replica_max_pending_bytes : 64ull << 20;
	pbox_wal_info wi;
	pbox_wal_get_info(st->wal, &wi);
	rp->seg = wi.segment_size;
	rp->max_glen = pbox_wal_max_group_bytes(wi.segment_size, wi.buffer_size) + WAL_GROUP_HDR;
	atomic_store(&rp->applied, pbox_wal_end_lsn(st->wal)); /* recovery redid it all */
	atomic_store(&rp->hint, atomic_load(&st->redo_start));
	st->rep = rp;
	/* the transactions open at the log's end, from the logical start (which the checkpoint
	 * that wrote it kept below every open transaction's first record) */
	pbox_wal_iter *it;
	int r = pbox_wal_iter_open(st->wal, atomic_load(&st->logical_start), &it);
	if (r)
		return r;
	pbox_wal_group g;
	while ((r = pbox_wal_iter_next(it, &g)) == 1) {
		pbox_wal_record rec;
		while (pbox_wal_iter_record(it, &rec) == 1) {
			if (rec.len < 8 || ld64(rec.data) != PBOX_PID_NONE)
				continue;
			if ((r = tx_reserve(rp, 1)))
				break;
			tx_note(rp, rec.type, rec.data, rec.len, g.lsn);
		}
		if (r)
			break;
	}
	pbox_wal_iter_close(it);
	if (r < 0)
		return r;
	publish_floor(rp);
	rp->closed = rp->ncommitted != 0; /* opened inside a transaction: sessions wait */
	return 0;
}

void pbox__replica_fini(pbox_store *st)
{
	struct replica *rp = st->rep;
	if (!rp)
		return;
	st->rep = NULL;
	for (held_group *h = rp->head, *n; h; h = n) {
		n = h->next;
		pbox_free(h);
	}
	pbox_free(rp->tx);
	pthread_mutex_destroy(&rp->mu);
	pthread_mutex_destroy(&rp->gmu);
	pthread_cond_destroy(&rp->gcv);
	pbox_free(rp);
}
