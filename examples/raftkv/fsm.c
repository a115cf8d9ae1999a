/*
 * fsm.c — the raft state machine of a raftkv node: a pagebox store.
 *
 * How a raft entry maps to a pagebox transaction. Each committed command entry (entry.c's
 * format: a client id, its SEQ and 1..10000 puts/deletes) is applied as ONE pbox
 * transaction that also writes, in the tree RKV_META_TREE,
 *   "applied"          -> u64le: the raft index of this entry
 *   "c/<client, hex>"  -> u64le SEQ, u8 result: the client's last write and its answer
 * so the data, the applied index and the session commit together: after a crash the store
 * holds every entry through its applied index and nothing after it. raft (0.15) does not pass
 * the index to apply; it applies entries in order and sets its last applied index after each
 * command, barrier and configuration entry, so the entry being applied is
 * raft_last_applied() + 1.
 *
 * Exactly once. On start raft replays its log from its last snapshot; an entry whose index
 * is at or below the store's applied index is skipped (RKV_RES_NONE). A client's SEQ equal to
 * its session's is a retry of a write already applied: nothing is applied and the recorded
 * result is answered; a lower SEQ is stale (answered, nothing applied).
 *
 * Durability. The store's commits are not synced (flags 0): the raft log, synced by raft on
 * a quorum before an entry commits, is what makes an acknowledged write durable; a crash
 * loses at most the store's unsynced tail, which raft re-applies from its log. The log is
 * truncated only behind a snapshot, and a snapshot first syncs the store through its index.
 *
 * Snapshots (fsm version 2: raft 0.15's libuv I/O has no asynchronous snapshot). snapshot()
 * runs on the loop thread, so no entry is applied while it runs: it syncs the store's log
 * (the store then durably holds everything through the snapshot's index i = raft's last
 * applied), checkpoints (so the copy carries pages, not a long log), takes
 * pbox_store_backup into DIR/snap.tmp and packs it into one buffer (snap.c)
 * with i in its header. The loop is held for the backup's time (logged per snapshot): a
 * store whose backup takes longer than the election timeout makes followers elect another
 * leader during it (README "Limits"). restore(): a snapshot at i is installed only if the store
 * holds less than i (a lagging or new follower; at start-up raft restores its own last
 * snapshot, which the store already holds: skipped). Installing unpacks into DIR/store.new,
 * opens it (recovery) to check that it holds at least i, then swaps it with DIR/store
 * (renameat2 RENAME_EXCHANGE, the directory synced) and removes the old one; a crash leaves
 * either store whole and raft installs the snapshot again on restart.
 * Memory: raft 0.15 passes snapshots as single in-memory buffers (taken, sent, received and
 * installed whole), so one archive — the store's live pages and log tail — must fit in memory
 * a few times over; --max-snapshot refuses larger ones (README "Limits").
 *
 * A store error in apply leaves the node's state behind raft's: the node stops (exit 3, fail
 * stop) and on restart recovery plus raft's replay bring it back. So does an entry that does
 * not decode (its copy here was damaged): skipping it would make this node differ.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define APPLIED_KEY "applied"

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) ? -errno : 0;
}

/* Remove a directory tree; a missing one is fine. */
static int rm_rf(const char *path)
{
	if (access(path, F_OK) && errno == ENOENT)
		return 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

typedef struct store_handles {
	pbox_store *st;
	pbox_bt *data, *meta;
	uint64_t applied;
} store_handles;

static int read_applied(pbox_bt *meta, uint64_t *applied)
{
	uint8_t b[8];
	size_t vlen = 0;
	int rc = pbox_bt_lookup(meta, APPLIED_KEY, strlen(APPLIED_KEY), b, sizeof(b), &vlen);
	if (rc == PBOX_ENOTFOUND) {
		*applied = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (vlen != 8)
		return PBOX_ECORRUPT;
	*applied = get_le64(b);
	return 0;
}

static int open_at(const char *path, uint64_t budget, store_handles *h, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	pbox_store_options so;
	pbox_store_options_init(&so);
	so.create = true;
	if (budget)
		so.budget_bytes = budget;
	so.max_bytes = 16ull << 30; /* a virtual reservation per node; three share the machine */
	char e[256] = "";
	so.errbuf = e;
	so.errbuf_len = sizeof(e);
	const pbox_redo_handler *hd;
	unsigned nh;
	pbox_bt_redo_handlers(&hd, &nh);
	so.redo = hd;
	so.nredo = nh;
	int rc = pbox_store_open(path, &so, &h->st);
	if (rc) {
		snprintf(err, errlen, "open store %s: %s%s%s", path, pbox_strerror(rc),
			 e[0] ? ": " : "", e);
		h->st = NULL;
		return rc;
	}
	const char *what = RKV_DATA_TREE;
	rc = pbox_bt_open_or_create(h->st, RKV_DATA_TREE, &h->data);
	if (!rc) {
		what = RKV_META_TREE;
		rc = pbox_bt_open_or_create(h->st, RKV_META_TREE, &h->meta);
	}
	if (!rc) {
		what = "applied index";
		rc = read_applied(h->meta, &h->applied);
	}
	if (rc) {
		snprintf(err, errlen, "store %s: %s: %s", path, what, pbox_strerror(rc));
		if (h->meta)
			pbox_bt_close(h->meta);
		if (h->data)
			pbox_bt_close(h->data);
		(void)pbox_store_close(h->st);
		memset(h, 0, sizeof(*h));
		return rc;
	}
	return 0;
}

static int close_handles(store_handles *h)
{
	if (h->meta)
		pbox_bt_close(h->meta);
	if (h->data)
		pbox_bt_close(h->data);
	int rc = h->st ? pbox_store_close(h->st) : 0;
	memset(h, 0, sizeof(*h));
	return rc;
}

int rkv_store_open(rkv_node *n, const char *path, char *err, size_t errlen)
{
	store_handles h;
	int rc = open_at(path, n->budget, &h, err, errlen);
	if (rc)
		return rc;
	n->st = h.st;
	n->data = h.data;
	n->meta = h.meta;
	n->applied = h.applied;
	return 0;
}

void rkv_store_close(rkv_node *n)
{
	store_handles h = {n->st, n->data, n->meta, n->applied};
	int rc = close_handles(&h);
	if (rc)
		fprintf(stderr, "raftkv: node %u: close store: %s\n", n->id, pbox_strerror(rc));
	n->st = NULL;
	n->data = n->meta = NULL;
}

static void session_key(char *k, uint64_t client)
{
	snprintf(k, 20, "c/%016llx", (unsigned long long)client);
}

/* One attempt; PBOX_ECONFLICT makes the caller retry. */
static int apply_once(rkv_node *n, const rkv_cmd *c, uint64_t index, unsigned flags, int *res)
{
	pbox_txn *t;
	int rc = pbox_txn_begin(n->st, 0, &t);
	if (rc)
		return rc;
	int r = c ? RKV_RES_OK : RKV_RES_BAD;
	bool apply = c != NULL;
	char sk[20];
	if (c && c->client) {
		session_key(sk, c->client);
		uint8_t b[9];
		size_t vlen = 0;
		rc = pbox_txn_get(t, n->meta, sk, strlen(sk), b, sizeof(b), &vlen);
		if (rc == 0 && vlen == 9) {
			uint64_t last = get_le64(b);
			if (c->seq == last) { /* a retry of the write already applied */
				r = b[8];
				apply = false;
			} else if (c->seq < last) {
				r = RKV_RES_STALE;
				apply = false;
			}
		} else if (rc == 0) {
			rc = PBOX_ECORRUPT;
			goto fail;
		} else if (rc != PBOX_ENOTFOUND) {
			goto fail;
		}
	}
	if (apply) {
		for (uint32_t i = 0; i < c->nops; i++) {
			const rkv_op *op = &c->ops[i];
			if (op->type == RKV_OP_PUT) {
				rc = pbox_txn_put(t, n->data, op->key, op->klen, op->val, op->vlen);
			} else {
				rc = pbox_txn_del(t, n->data, op->key, op->klen);
				if (rc == PBOX_ENOTFOUND) {
					rc = 0;
					if (!c->txn)
						r = RKV_RES_NOTFOUND;
				}
			}
			if (rc)
				goto fail;
		}
		if (c->client) {
			uint8_t b[9];
			put_le64(b, c->seq);
			b[8] = (uint8_t)r;
			rc = pbox_txn_put(t, n->meta, sk, strlen(sk), b, sizeof(b));
			if (rc)
				goto fail;
		}
	}
	if (index) {
		uint8_t b[8];
		put_le64(b, index);
		rc = pbox_txn_put(t, n->meta, APPLIED_KEY, strlen(APPLIED_KEY), b, sizeof(b));
		if (rc)
			goto fail;
	}
	rc = pbox_txn_commit(t, flags);
	if (rc == 0)
		*res = r;
	return rc;
fail:
	pbox_txn_abort(t);
	return rc;
}

int rkv_apply_cmd(rkv_node *n, const rkv_cmd *c, uint64_t index, unsigned flags, int *res)
{
	for (unsigned attempt = 0;; attempt++) {
		int rc = apply_once(n, c, index, flags, res);
		if (rc != PBOX_ECONFLICT)
			return rc;
		/* standalone only: two clients' writes to one key; the loser runs again */
		usleep(attempt < 10 ? 10u << attempt : 10000);
	}
}

/* ---- the digest --------------------------------------------------------------------------- */

typedef struct digest_acc {
	uint64_t keys, hash;
} digest_acc;

static void fnv(uint64_t *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= 0x100000001b3ull;
	}
}

static int digest_fn(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	digest_acc *d = arg;
	uint8_t l[8];
	put_le64(l, klen);
	fnv(&d->hash, l, 8);
	fnv(&d->hash, key, klen);
	put_le64(l, vlen);
	fnv(&d->hash, l, 8);
	fnv(&d->hash, val, vlen);
	d->keys++;
	return 0;
}

int rkv_digest(rkv_node *n, uint64_t *applied, uint64_t *keys, uint64_t *hash)
{
	pbox_txn *t;
	int rc = pbox_txn_begin(n->st, PBOX_TXN_READONLY, &t);
	if (rc)
		return rc;
	uint8_t b[8];
	size_t vlen = 0;
	rc = pbox_txn_get(t, n->meta, APPLIED_KEY, strlen(APPLIED_KEY), b, sizeof(b), &vlen);
	*applied = 0;
	if (rc == 0 && vlen == 8)
		*applied = get_le64(b);
	else if (rc == 0)
		rc = PBOX_ECORRUPT;
	if (rc == PBOX_ENOTFOUND)
		rc = 0;
	digest_acc d = {0, 0xcbf29ce484222325ull};
	if (!rc)
		rc = pbox_txn_scan(t, n->data, NULL, 0, NULL, 0, 0, digest_fn, &d);
	pbox_txn_abort(t);
	*keys = d.keys;
	*hash = d.hash;
	return rc;
}

/* ---- the raft fsm ------------------------------------------------------------------------- */

static void fatal(rkv_node *n, const char *what, int rc)
{
	fprintf(stderr, "raftkv: node %u: %s: %s; stopping (restart recovers from the store and "
		"raft's log)\n", n->id, what, pbox_strerror(rc));
	exit(RKV_EXIT_FAIL);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	rkv_node *n = fsm->data;
	uint64_t index = raft_last_applied(&n->raft) + 1;
	if (index <= n->applied) { /* replayed after a restart: the store has it */
		*result = (void *)(uintptr_t)RKV_RES_NONE;
		return 0;
	}
	rkv_cmd c;
	if (rkv_cmd_decode(buf->base, buf->len, &c)) {
		/* The leader encoded it, so this copy was damaged (raft's log, the wire): applying
		 * "nothing" here would make this node differ from the others. */
		fprintf(stderr, "raftkv: node %u: entry %llu (%zu bytes) does not decode; stopping\n",
			n->id, (unsigned long long)index, buf->len);
		exit(RKV_EXIT_FAIL);
	}
	int res = RKV_RES_BAD;
	int rc = rkv_apply_cmd(n, &c, index, 0, &res);
	free(c.ops);
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "apply entry %llu", (unsigned long long)index);
		fatal(n, what, rc);
	}
	n->applied = index;
	*result = (void *)(uintptr_t)res;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	rkv_node *n = fsm->data;
	double t0 = kv_now();
	/* everything through the snapshot's index durable in the store before raft may drop
	 * those entries from its log */
	int rc = pbox_wal_flush(pbox_store_wal(n->st));
	if (rc) {
		fprintf(stderr, "raftkv: node %u: snapshot: sync the store: %s\n", n->id,
			pbox_strerror(rc));
		return RAFT_IOERR;
	}
	/* A checkpoint first: the backup then copies the pages and almost no log (without it,
	 * every snapshot carried all the log since the store's last checkpoint — 30 MiB after a
	 * few seconds of writes here — and held the loop the longer). */
	rc = pbox_store_checkpoint(n->st);
	if (rc) {
		fprintf(stderr, "raftkv: node %u: snapshot: checkpoint: %s\n", n->id,
			pbox_strerror(rc));
		return RAFT_IOERR;
	}
	uint64_t index = raft_last_applied(&n->raft);
	char tmp[PATH_MAX + 16], err[256] = "";
	snprintf(tmp, sizeof(tmp), "%s/snap.tmp", n->dir);
	if (rm_rf(tmp)) {
		fprintf(stderr, "raftkv: node %u: snapshot: remove %s: %s\n", n->id, tmp,
			strerror(errno));
		return RAFT_IOERR;
	}
	pbox_backup_options bo;
	pbox_backup_options_init(&bo);
	bo.errbuf = err;
	bo.errbuf_len = sizeof(err);
	pbox_backup_info bi;
	rc = pbox_store_backup(n->st, tmp, &bo, &bi);
	if (rc) {
		fprintf(stderr, "raftkv: node %u: snapshot: backup: %s%s%s\n", n->id,
			pbox_strerror(rc), err[0] ? ": " : "", err);
		(void)rm_rf(tmp);
		return RAFT_IOERR;
	}
	void *buf = NULL;
	size_t len = 0;
	rc = rkv_snap_pack(tmp, index, &buf, &len, err, sizeof(err));
	(void)rm_rf(tmp);
	if (rc) {
		fprintf(stderr, "raftkv: node %u: snapshot: %s\n", n->id, err);
		return RAFT_IOERR;
	}
	if (n->max_snapshot && len > n->max_snapshot) {
		fprintf(stderr, "raftkv: node %u: snapshot of %zu bytes is over --max-snapshot "
			"(%llu): not taken; raft's log is not truncated\n", n->id, len,
			(unsigned long long)n->max_snapshot);
		free(buf);
		return RAFT_TOOBIG;
	}
	struct raft_buffer *b = raft_malloc(sizeof(*b));
	if (!b) {
		free(buf);
		return RAFT_NOMEM;
	}
	b->base = buf;
	b->len = len;
	*bufs = b;
	*n_bufs = 1;
	n->snapshots++;
	fprintf(stderr, "raftkv: node %u: snapshot at entry %llu: %.1f MiB (data %.1f MiB, log "
		"%.1f MiB copied), %.0f ms with the loop held\n", n->id, (unsigned long long)index,
		(double)len / 1048576.0, (double)bi.data_bytes / 1048576.0,
		(double)bi.log_bytes / 1048576.0, (kv_now() - t0) * 1000.0);
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
				 unsigned *n_bufs)
{
	(void)fsm;
	if (*bufs) {
		for (unsigned i = 0; i < *n_bufs; i++)
			free((*bufs)[i].base);
		raft_free(*bufs);
	}
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	rkv_node *n = fsm->data;
	uint64_t idx;
	if (rkv_snap_index(buf->base, buf->len, &idx)) {
		fprintf(stderr, "raftkv: node %u: restore: not a raftkv snapshot\n", n->id);
		return RAFT_MALFORMED;
	}
	if (n->applied >= idx) { /* the store already holds it (raft's start-up restore) */
		n->skipped_restores++;
		raft_free(buf->base);
		return 0;
	}
	char fresh[PATH_MAX + 8], err[512] = "";
	snprintf(fresh, sizeof(fresh), "%s.new", n->store_dir);
	if (rm_rf(fresh) || rkv_snap_unpack(buf->base, buf->len, fresh, err, sizeof(err))) {
		fprintf(stderr, "raftkv: node %u: restore snapshot %llu: %s\n", n->id,
			(unsigned long long)idx, err[0] ? err : strerror(errno));
		(void)rm_rf(fresh);
		return RAFT_CORRUPT;
	}
	store_handles h;
	int rc = open_at(fresh, n->budget, &h, err, sizeof(err));
	uint64_t j = h.applied;
	if (!rc)
		rc = close_handles(&h);
	if (rc || j < idx) {
		fprintf(stderr, "raftkv: node %u: restore snapshot %llu: %s\n", n->id,
			(unsigned long long)idx,
			rc ? err : "its store holds less than the snapshot's index");
		(void)rm_rf(fresh);
		return RAFT_CORRUPT;
	}
	rkv_store_close(n);
	if (renameat2(AT_FDCWD, fresh, AT_FDCWD, n->store_dir, RENAME_EXCHANGE) ||
	    fsync_dir(n->dir)) {
		fprintf(stderr, "raftkv: node %u: restore: swap %s and %s: %s; stopping\n", n->id,
			fresh, n->store_dir, strerror(errno));
		exit(RKV_EXIT_FAIL);
	}
	if (rm_rf(fresh)) /* the old store; a leftover is removed at the next start */
		fprintf(stderr, "raftkv: node %u: restore: remove the old store %s: %s\n", n->id,
			fresh, strerror(errno));
	rc = rkv_store_open(n, n->store_dir, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "raftkv: node %u: restore: %s; stopping\n", n->id, err);
		exit(RKV_EXIT_FAIL);
	}
	n->restores++;
	fprintf(stderr, "raftkv: node %u: installed snapshot %llu (store at entry %llu)\n", n->id,
		(unsigned long long)idx, (unsigned long long)n->applied);
	raft_free(buf->base);
	return 0;
}

void rkv_fsm_init(rkv_node *n)
{
	memset(&n->fsm, 0, sizeof(n->fsm));
	n->fsm.version = 2; /* 3 (asynchronous snapshots) needs an io that raft_uv 0.15 lacks */
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.snapshot_finalize = fsm_snapshot_finalize;
	n->fsm.restore = fsm_restore;
}

/* Remove what a crash may have left beside the store (an unfinished install or backup). */
int rkv_store_leftovers(rkv_node *n)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s.new", n->store_dir);
	int rc = rm_rf(p);
	snprintf(p, sizeof(p), "%s/snap.tmp", n->dir);
	return rc ? rc : rm_rf(p);
}
