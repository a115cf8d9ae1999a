/*
 * txn_int.h — private to the btree library: transactions (pbox/txn.h).
 *
 * Files:
 *   txn.c         the per-store manager (timestamps, open transactions, in-flight commits,
 *                 the switch between the plain and the transactional single-key path),
 *                 begin / put / del / commit / abort
 *   txn_vs.c      the version store: key entries with commit locks and old versions, and
 *                 their garbage collection
 *   txn_read.c    reads in a snapshot: get, scan (merging the tree, the versions and the
 *                 transaction's own writes), cursors
 *   txn_log.c     the logical log records of a commit and their recovery
 *   txn_install.c a commit's install into the trees, a leaf at a time
 *   txn_wset.c    a transaction's write set: entries, index, memory
 *   txn_single.c  single-key changes outside transactions
 *
 * Timestamps. clock counts commits (transactions and, while transactions are open,
 * single-key changes): a commit takes ts = ++clock once it holds its keys' locks, and is in
 * flight (m->inflight) until its install is done. visible is the highest ts such that every
 * commit with ts <= visible has been installed completely. A snapshot is (snap, xs): snap =
 * the highest ts done when its transaction began (done_max, or visible if higher), xs = the
 * commits in flight then with ts < snap (commits finish out of ts order: a small commit may
 * be done while a big one with a smaller ts still installs). It sees exactly the commits with
 * ts <= snap not in xs (pbox__txn_sees) — every commit done before it began, and nothing of
 * one still installing, without waiting for it. A commit a snapshot sees never read one it
 * excludes: it began after the excluded one was done, so after the snapshot began.
 *
 * Versions (invariant V): before a commit with ts T changes key k in the tree, it pushes a
 * version (T, the value k had before) onto k's entry, holding k's commit lock. So a reader
 * whose snapshot does not see the newest versions of k, reading k in the tree and then k's
 * entry, finds the value it must see: the before-value of the oldest of the newest run of
 * versions it does not see, or (it sees the newest) the tree's value. A version it sees may
 * lie above one it does not (an excluded commit released k's lock, another wrote k and was
 * done before the snapshot began): then the tree's value is the seen one's, which is right.
 * Versions with ts <= horizon (the lowest of every open snapshot's low: its smallest
 * excluded ts - 1, else its snap; visible when none is open) are never needed again and
 * are freed, oldest first.
 *
 * Locks: a key's commit lock is held from a commit's validation to the end of its install;
 * other commits conflict on it (no waiting), single-key changes wait for it.
 *
 * The plain path (mode 0): while no transaction is open, single-key changes skip all of this
 * (no version can be needed: no snapshot exists). The first begin switches to mode 1 and
 * waits until the single-key changes that entered the plain path before the switch are done
 * (they count themselves in fast[] stripes). The last transaction to end switches back.
 *
 * Lock order: mgr->mu, then mgr->vs; the store's extension lock before mgr->mu (log floor).
 */
#ifndef PBOX_BT_TXN_INT_H
#define PBOX_BT_TXN_INT_H

#include <pbox/txn.h>

#include "tree_int.h"

#include <pthread.h>
#include <stdatomic.h>

/* Logical record types (in the btree's published range). Payloads in txn_log.c. */
#define REDO_TXN_OPS (PBOX_REDO_TYPE_USER + 0x18)
#define REDO_TXN_COMMIT (PBOX_REDO_TYPE_USER + 0x19)
#define REDO_TXN_END (PBOX_REDO_TYPE_USER + 0x1a)
PBOX_STATIC_ASSERT(REDO_TXN_END <= PBOX_BT_REDO_TYPE_LAST, "in the btree's range");

/* an old version of a key: its value before the commit with timestamp ts */
typedef struct ver {
	struct ver *older, *newer; /* the key's chain, newest first */
	struct ver *gnext, *gprev; /* every version, in the order pushed (GC, scans) */
	struct kent *k;
	uint64_t ts;
	uint64_t seq;              /* push order */
	uint32_t vlen;
	bool absent;               /* the key did not exist before ts */
	unsigned char *val;
} ver;

/* a key with versions or a commit lock (in mgr->tab) */
typedef struct kent {
	uint64_t hash;
	pbox_pid tree;
	uint32_t klen;
	ver *newest;
	const void *lock; /* the committing transaction (or single change) holding it */
	unsigned char key[];
} kent;

/* Open-addressing tables of (hash, entry) slots (the version store's keys, txn_vs.c; a
 * write set's index, txn_wset.c): n slots, a power of two, addressed by Fibonacci hashing —
 * the top bits of hash * 2^64/phi, so the slot depends on every bit of the hash. */
static inline unsigned pbox__txn_slot_shift(size_t n)
{
	unsigned bits = 0;
	while (((size_t)1 << bits) < n)
		bits++;
	return 64 - bits;
}

static inline size_t pbox__txn_slot(uint64_t h, unsigned shift)
{
	return (size_t)((h * 0x9e3779b97f4a7c15ull) >> shift);
}

typedef struct kslot {
	uint64_t hash;
	kent *k; /* NULL: empty */
} kslot;

typedef struct commit_slot {
	uint64_t ts;
	pbox_lsn floor;  /* log end before its first record (PBOX_LSN_NONE: logs nothing) */
	struct commit_slot *next;
} commit_slot;

#define FAST_STRIPES 32
typedef struct fast_stripe {
	_Atomic uint64_t n;
	char pad[PBOX_CACHELINE - 8];
} fast_stripe;

typedef struct rec_txn rec_txn; /* recovery's view of a logged transaction (txn_log.c) */

typedef struct txnmgr {
	pbox_store *st;
	uint32_t ps;
	/* mu: clock, the open transactions, the in-flight commits, mode changes, stats */
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a commit ended (single changes wait for locks on it) */
	uint64_t clock;
	uint64_t done_max;         /* the highest ts whose commit is done: a snapshot's snap, so
	                              it sees every commit done before it (the older ones still
	                              in flight excluded: see the top comment) */
	_Atomic uint64_t visible;
	pbox_txn *active;          /* open transactions (doubly linked through prev/next) */
	uint64_t nactive;
	uint64_t nsingle;          /* single changes on the transactional path now */
	commit_slot *inflight;     /* ascending ts */
	uint64_t commits, aborts, conflicts, retired, recovered;
	/* mode: 0 plain, 2 switching, 1 transactional (see the top comment) */
	_Atomic int mode;
	fast_stripe fast[FAST_STRIPES];
	/* vs: the key table, every version, every lock */
	pthread_rwlock_t vs;
	struct kslot *tab;         /* nbuckets slots, a power of two (txn_vs.c) */
	size_t nbuckets, nkeys;
	unsigned kshift;
	ver *ghead, *gtail;
	uint64_t pushes;
	_Atomic uint64_t nversions, vbytes, push_seq;
	_Atomic uint64_t ghead_ts;  /* ts of the oldest version (UINT64_MAX: none): lets a
	                               collection that would free nothing skip the lock */
	_Atomic uint64_t cap;
	/* recovery only (single-threaded, during open) */
	rec_txn *rec;
	uint64_t rec_maxts;
} txnmgr;

struct pbox_txn {
	txnmgr *m;
	pbox_store *st;
	unsigned flags;
	uint64_t snap;             /* the snapshot: (snap, xs[0..nx)), see the top comment */
	uint64_t *xs;              /* ascending; points to xs_in when nx <= 4 */
	uint32_t nx;
	uint64_t xs_in[4];
	uint64_t begin_ns;
	bool doomed;
	_Atomic bool retired;
	_Atomic bool locked;       /* committing, past its conflict checks: reads nothing more */
	pbox_txn *prev, *next;     /* mgr->active */
	/* the write set (txn_wset.c): an index of went, and a list in insertion order */
	struct wslot *wtab;        /* the index (NULL until a lookup needs it) */
	struct went **wvec;        /* the entries (insertion order until commit sorts them) */
	size_t wcap, wvcap, wn, bytes, nheap;
	unsigned wshift;
	bool wunsorted;            /* the entries stopped ascending in (tree, key) order */
	struct wchunk *chunks;
	struct txn_cur *cursors;   /* open on this transaction (txn_read.c) */
};

typedef struct went {
	uint64_t hash;
	pbox_pid tree;
	uint32_t klen, vlen;
	uint32_t icap;             /* value bytes stored after the key (txn_wset.c) */
	bool del, vheap;           /* vheap: val is a heap block of its own */
	unsigned char *val;
	kent *k;                   /* the key's entry while t holds its commit lock */
	unsigned char key[];
} went;

typedef struct wslot {
	uint64_t hash;
	went *w; /* NULL: empty */
} wslot;

/* ---- txn_wset.c (the write set) --------------------------------------------------------- */
/* The entry of key, or NULL. */
went *pbox__txn_wfind(pbox_txn *t, pbox_pid tree, const void *key, uint32_t klen, uint64_t h);
/* A new entry for key (not in the set yet): a put of val, or a delete. 0 or -ENOMEM
 * (nothing added). */
int pbox__txn_wadd(pbox_txn *t, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		   const void *val, size_t vlen, bool del);
/* Set w's value (copied) or make it a delete. 0 or -ENOMEM (w unchanged). */
int pbox__txn_wset_value(pbox_txn *t, went *w, const void *val, size_t vlen, bool del);
/* Free every entry and the index. */
void pbox__txn_wclear(pbox_txn *t);
/* Order wvec by (tree, key) if it is not already (commit, before locking). */
void pbox__txn_wset_sort(pbox_txn *t);

/* ---- txn.c ---------------------------------------------------------------------------- */
/* The manager of st (created on first use); NULL on -ENOMEM. */
txnmgr *pbox__txn_mgr(pbox_store *st);
/* The manager if one exists (no creation). */
txnmgr *pbox__txn_mgr_peek(pbox_store *st);
uint64_t pbox__txn_hash(pbox_pid tree, const void *key, uint32_t klen);
/* Take a commit timestamp and an in-flight slot (mu). logs: the change logs logical records
 * (a transaction's commit), so the slot's log floor is the log's end now; otherwise none. */
int pbox__txn_ts_begin(txnmgr *m, bool logs, uint64_t *ts);
/* The current value of key in bt into *buf (capacity *cap), grown as needed: a *buf equal
 * to stack is not freed but replaced by a heap buffer, which the caller frees. *len = its
 * length. 0, PBOX_ENOTFOUND, or an error. */
int pbox__txn_current(pbox_bt *bt, const void *key, uint32_t klen, unsigned char **buf,
		      size_t *cap, const unsigned char *stack, size_t *len);
/* The commit ts (of self; NULL: a single-key change) is installed: advance visible, wake
 * waiters, collect versions. free_own (may be NULL): set when every snapshot that may still
 * read sees ts (transactions past their commit's conflict checks and retired ones read
 * nothing more), so nobody needs the commit's own versions. */
void pbox__txn_ts_done(txnmgr *m, uint64_t ts, const pbox_txn *self, bool *free_own);
/* Back to the plain path if nothing transactional is left (mu held). */
void pbox__txn_maybe_plain(txnmgr *m);
/* Oldest open snapshot's low (mu held), or visible when none. Transactions past their
 * commit's conflict checks (locked) and retired ones need no version and do not count. */
uint64_t pbox__txn_horizon(txnmgr *m);

/* Does t's snapshot see the commit with timestamp ts? */
static inline bool pbox__txn_sees(const pbox_txn *t, uint64_t ts)
{
	if (ts > t->snap)
		return false;
	for (uint32_t i = 0; i < t->nx; i++)
		if (t->xs[i] == ts)
			return false;
	return true;
}

/* The lowest ts whose versions t may need, minus one. */
static inline uint64_t pbox__txn_low(const pbox_txn *t)
{
	return t->nx ? t->xs[0] - 1 : t->snap;
}

/* ---- txn_install.c --------------------------------------------------------------------- */
/* Step 4 of a commit: install t's write set as commit ts (every key locked by t). */
int pbox__txn_install(pbox_txn *t, uint64_t ts);

/* ---- txn_vs.c ------------------------------------------------------------------------- */
int pbox__vs_init(txnmgr *m);
void pbox__vs_fini(txnmgr *m);
/* Under vs held exclusively: the entry of key, created when create. */
kent *pbox__vs_find(txnmgr *m, pbox_pid tree, const void *key, uint32_t klen, uint64_t h,
		    bool create);
/* Under vs exclusively: drop k if it holds nothing. */
void pbox__vs_maybe_drop(txnmgr *m, kent *k);
/* Under vs exclusively: push (ts, before) onto k. before NULL with absent. */
int pbox__vs_push(txnmgr *m, kent *k, uint64_t ts, bool absent, const void *before,
		  size_t blen);
/* The same in two steps, so that the allocation and the copy happen without vs: a version
 * made (no lock; NULL: no memory), then linked onto k (vs exclusively), or discarded. */
ver *pbox__vs_new(uint64_t ts, bool absent, const void *before, size_t blen);
void pbox__vs_link(txnmgr *m, kent *k, ver *v);
void pbox__vs_discard(ver *v);
/* Free versions no snapshot needs (ts <= horizon). Takes vs. */
void pbox__vs_collect(txnmgr *m, uint64_t horizon);
/* Under vs exclusively: free k's newest version if it is commit ts's (a commit whose
 * versions nobody needs: pbox__txn_ts_done's free_own), and k if it then holds nothing. */
void pbox__vs_drop_newest(txnmgr *m, kent *k, uint64_t ts);
/* The value key had in t's snapshot, from its versions (vs held, shared or exclusive):
 * 1 with *absent / *val / *vlen set when a version decides, 0 when the tree's value is the
 * one (the snapshot sees the newest version, or there is none). */
int pbox__vs_at(const kent *k, const pbox_txn *t, bool *absent, const unsigned char **val,
		uint32_t *vlen);
/* Is there a committed version t's snapshot does not see, or a lock by someone else other
 * than t? (vs held) */
bool pbox__vs_conflicts(const kent *k, const pbox_txn *t);

/* ---- txn_log.c ------------------------------------------------------------------------ */
/* Log t's write set and its commit record as commit ts; durable per flags. */
int pbox__txn_log_commit(pbox_txn *t, uint64_t ts, unsigned flags);
int pbox__txn_log_end(pbox_store *st, uint64_t ts);
void pbox__txn_rec_free(txnmgr *m);
/* The logical handler (arg: the record type) and the post-recovery hook, in
 * pbox_bt_redo_handlers (redo.c). */
int pbox__txn_rec_logical(pbox_store *st, const void *payload, uint32_t len, pbox_lsn lsn,
			  void *arg);
int pbox__txn_rec_done(pbox_store *st, void *arg);
/* Over the version cap: retire the oldest snapshot (txn.c). */
void pbox__txn_enforce_cap(txnmgr *m);

/* ---- txn_read.c ----------------------------------------------------------------------- */
/* Close t's cursors' link to it (the transaction ends). */
void pbox__txn_cursors_detach(pbox_txn *t);
/* Cursor calls on a transaction's cursor: declared in tree_int.h (cursor.c delegates). */

#endif
