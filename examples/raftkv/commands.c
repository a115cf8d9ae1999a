/*
 * commands.c — the commands of the line protocol (README "The line protocol") and the
 * completions of those that wait: for raft (a write's entry, the barrier before a
 * linearizable read, a membership change, a leadership transfer) or, on a standalone node,
 * for the thread pool's durable commit.
 *
 * Invariants: nothing is proposed or applied for a command that does not parse (ERR); a
 * write is encoded once (entry.c) and proposed with raft_apply, answered from the apply
 * callback's result (the session's answer for a retried SEQ); a raft error after proposing
 * answers RETRY (the outcome is unknown), NOTLEADER before. A completion whose connection
 * closed (p->conn NULL) answers nothing.
 * Threads: the loop thread, except standalone_work (thread pool: the store and its own
 * pending request only).
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "server_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reads ------------------------------------------------------------------------------ */

static void do_get(rkv_conn *c, const char *key, size_t klen)
{
	rkv_node *n = c->n;
	size_t cap = 4096, vlen = 0;
	char *buf = malloc(cap);
	int rc = buf ? pbox_bt_lookup(n->data, key, klen, buf, cap, &vlen) : -ENOMEM;
	if (rc == PBOX_ETOOSMALL) {
		free(buf);
		cap = vlen;
		buf = malloc(cap ? cap : 1);
		rc = buf ? pbox_bt_lookup(n->data, key, klen, buf, cap, &vlen) : -ENOMEM;
	}
	if (rc == PBOX_ENOTFOUND) {
		rkv_reply(c, "NOTFOUND");
	} else if (rc) {
		rkv_reply(c, "ERR get: %s", pbox_strerror(rc));
	} else {
		sbuf b = {0};
		rkv_sb_printf(&b, "VALUE ");
		rkv_sb_enc(&b, buf, vlen);
		rkv_sb_printf(&b, "\n");
		rkv_conn_send(c, &b);
	}
	free(buf);
}

typedef struct scan_acc {
	sbuf *b;
	uint64_t left, n;
} scan_acc;

static int scan_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	scan_acc *a = arg;
	if (!a->left)
		return 1;
	rkv_sb_printf(a->b, "KV ");
	rkv_sb_enc(a->b, k, kl);
	rkv_sb_printf(a->b, " ");
	rkv_sb_enc(a->b, v, vl);
	rkv_sb_printf(a->b, "\n");
	a->left--;
	a->n++;
	return 0;
}

static void do_scan(rkv_conn *c, const pending *p)
{
	pbox_txn *t;
	int rc = pbox_txn_begin(c->n->st, PBOX_TXN_READONLY, &t);
	if (rc) {
		rkv_reply(c, "ERR scan: %s", pbox_strerror(rc));
		return;
	}
	sbuf b = {0};
	scan_acc a = {&b, p->limit, 0};
	rc = pbox_txn_scan(t, c->n->data, p->has_start ? p->key : NULL, p->has_start ? p->klen : 0,
			   p->has_end ? p->end : NULL, p->has_end ? p->elen : 0, 0, scan_fn, &a);
	pbox_txn_abort(t);
	if (rc < 0) {
		free(b.p);
		rkv_reply(c, "ERR scan: %s", pbox_strerror(rc));
		return;
	}
	rkv_sb_printf(&b, "END %" PRIu64 "\n", a.n);
	rkv_conn_send(c, &b);
}

/* ---- completions ------------------------------------------------------------------------ */

static void pending_free(pending *p)
{
	free(p->key);
	free(p->end);
	free(p->entry);
	free(p);
}

static void not_leader(rkv_conn *c)
{
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader(&c->n->raft, &id, &addr);
	rkv_reply(c, "NOTLEADER %llu", (unsigned long long)id);
}

/* The request is over: answer written (or not, for a closed connection), next command. */
static void pending_done(pending *p)
{
	rkv_conn *c = p->conn;
	pending_free(p);
	if (c) {
		c->busy = false;
		c->cur = NULL;
		rkv_conn_process(c);
	}
}

static void answer_result(rkv_conn *c, int res)
{
	switch (res) {
	case RKV_RES_OK: rkv_reply(c, "OK"); break;
	case RKV_RES_NOTFOUND: rkv_reply(c, "NOTFOUND"); break;
	case RKV_RES_STALE: rkv_reply(c, "ERR stale sequence"); break;
	case RKV_RES_BAD: rkv_reply(c, "ERR malformed entry"); break;
	default: rkv_reply(c, "RETRY entry applied before this node's restart"); break;
	}
}

static void raft_failed(rkv_conn *c, int status)
{
	if (status == RAFT_NOTLEADER)
		not_leader(c);
	else /* leadership lost, shutting down, ...: the entry may or may not commit */
		rkv_reply(c, "RETRY %s", raft_strerror(status));
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	pending *p = req->data;
	if (p->conn) {
		if (status)
			raft_failed(p->conn, status);
		else
			answer_result(p->conn, (int)(uintptr_t)result);
	}
	pending_done(p);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	pending *p = req->data;
	rkv_conn *c = p->conn;
	if (c) {
		if (status)
			raft_failed(c, status);
		else if (p->kind == P_GET)
			do_get(c, p->key, p->klen);
		else if (p->kind == P_SCAN)
			do_scan(c, p);
		else
			rkv_reply(c, "OK");
	}
	pending_done(p);
}

static void assign_cb(struct raft_change *req, int status)
{
	pending *p = req->data;
	if (p->conn) {
		if (status)
			rkv_reply(p->conn, "ERR assign voter: %s", raft_strerror(status));
		else
			rkv_reply(p->conn, "OK");
	}
	pending_done(p);
}

static void change_cb(struct raft_change *req, int status)
{
	pending *p = req->data;
	if (!status && p->kind == P_ADD) {
		int rc = raft_assign(&p->n->raft, &p->u.change, p->id, RAFT_VOTER, assign_cb);
		if (!rc)
			return;
		status = rc;
	}
	if (p->conn) {
		if (status)
			rkv_reply(p->conn, "ERR %s: %s", p->kind == P_ADD ? "add" : "remove",
			      raft_strerror(status));
		else
			rkv_reply(p->conn, "OK");
	}
	pending_done(p);
}

static void standalone_work(uv_work_t *w)
{
	pending *p = w->data;
	rkv_cmd c;
	if (rkv_cmd_decode(p->entry, p->entry_len, &c)) {
		p->res = RKV_RES_BAD;
		return;
	}
	p->rc = rkv_apply_cmd(p->n, &c, 0, PBOX_BT_DURABLE, &p->res);
	free(c.ops);
}

static void standalone_done(uv_work_t *w, int status)
{
	(void)status;
	pending *p = w->data;
	if (p->rc) {
		fprintf(stderr, "raftkv: standalone node: commit: %s; stopping\n",
			pbox_strerror(p->rc));
		exit(RKV_EXIT_FAIL);
	}
	if (p->conn)
		answer_result(p->conn, p->res);
	pending_done(p);
}

/* ---- commands --------------------------------------------------------------------------- */


/* Split a line at single spaces; returns the field count (fields > max: max + 1). */
int rkv_split(char *line, char **f, int max)
{
	int nf = 0;
	char *s = line;
	for (;;) {
		if (nf == max)
			return max + 1;
		f[nf++] = s;
		char *sp = strchr(s, ' ');
		if (!sp)
			return nf;
		*sp = 0;
		s = sp + 1;
	}
}

static bool is_leader(rkv_node *n)
{
	return raft_state(&n->raft) == RAFT_LEADER;
}

static pending *pending_new(rkv_conn *c, int kind)
{
	pending *p = calloc(1, sizeof(*p));
	if (!p) {
		rkv_reply(c, "ERR out of memory");
		return NULL;
	}
	p->conn = c;
	p->n = c->n;
	p->kind = kind;
	return p;
}

static void set_busy(rkv_conn *c, pending *p)
{
	c->busy = true;
	c->cur = p;
}

/* Propose (or, standalone, queue) an encoded command. */
static void submit(rkv_conn *c, const rkv_cmd *cmd)
{
	rkv_node *n = c->n;
	size_t sz = rkv_cmd_size(cmd);
	if (!sz) {
		rkv_reply(c, "ERR request over the limits (README \"Limits\")");
		return;
	}
	pending *p = pending_new(c, P_WRITE);
	if (!p)
		return;
	if (n->standalone) {
		p->entry = malloc(sz);
		if (!p->entry || rkv_cmd_encode(cmd, p->entry, sz) != sz) {
			rkv_reply(c, "ERR encode");
			pending_free(p);
			return;
		}
		p->entry_len = sz;
		p->work.data = p;
		set_busy(c, p);
		if (uv_queue_work(&n->loop, &p->work, standalone_work, standalone_done)) {
			c->busy = false;
			c->cur = NULL;
			rkv_reply(c, "ERR queue work");
			pending_free(p);
		}
		return;
	}
	if (!is_leader(n)) {
		not_leader(c);
		pending_free(p);
		return;
	}
	struct raft_buffer rb;
	rb.base = raft_malloc(sz);
	rb.len = sz;
	if (!rb.base || rkv_cmd_encode(cmd, rb.base, sz) != sz) {
		raft_free(rb.base);
		rkv_reply(c, "ERR encode");
		pending_free(p);
		return;
	}
	p->u.apply.data = p;
	int rc = raft_apply(&n->raft, &p->u.apply, &rb, 1, apply_cb);
	if (rc) {
		raft_free(rb.base);
		raft_failed(c, rc);
		pending_free(p);
		return;
	}
	set_busy(c, p);
}

/* Decode field s into an op's key or value (malloc'd into *keep). */
static int dec(rkv_conn *c, const char *what, const char *s, char **keep, size_t *len)
{
	if (kv_decode(s, keep, len)) {
		rkv_reply(c, "ERR bad %%HH encoding in %s", what);
		return -1;
	}
	return 0;
}

/* A put/del op line (in a txn or a single write); bufs collect the decoded strings. */
static int parse_op(rkv_conn *c, char **f, int nf, int first, rkv_op *op, char **bufs)
{
	size_t kl = 0, vl = 0;
	if (!strcmp(f[0], "put") && nf == first + 2) {
		if (dec(c, "key", f[first], &bufs[0], &kl) || dec(c, "value", f[first + 1], &bufs[1], &vl))
			return -1;
		op->type = RKV_OP_PUT;
	} else if (!strcmp(f[0], "del") && nf == first + 1) {
		if (dec(c, "key", f[first], &bufs[0], &kl))
			return -1;
		op->type = RKV_OP_DEL;
	} else {
		rkv_reply(c, "ERR usage: %s", first == 1 ? "put K V | del K (in a txn)"
						     : "put SEQ K V | del SEQ K");
		return -1;
	}
	if (kl > RKV_KEY_MAX || vl > RKV_VALUE_MAX) {
		rkv_reply(c, "ERR %s longer than %u bytes", kl > RKV_KEY_MAX ? "key" : "value",
		      kl > RKV_KEY_MAX ? RKV_KEY_MAX : RKV_VALUE_MAX);
		return -1;
	}
	op->key = (const uint8_t *)bufs[0];
	op->klen = (uint32_t)kl;
	op->val = (const uint8_t *)bufs[1];
	op->vlen = (uint32_t)vl;
	return 0;
}

int rkv_parse_seq(rkv_conn *c, const char *s, uint64_t *seq)
{
	if (kv_parse_u64(s, seq) || (c->client && *seq == 0)) {
		rkv_reply(c, "ERR SEQ must be a decimal number >= 1");
		return -1;
	}
	return 0;
}

static void cmd_write(rkv_conn *c, char **f, int nf)
{
	rkv_cmd cmd = {0};
	rkv_op op = {0};
	char *bufs[2] = {NULL, NULL};
	uint64_t seq;
	if (nf < 2) {
		rkv_reply(c, "ERR usage: put SEQ K V | del SEQ K");
		goto out;
	}
	if (rkv_parse_seq(c, f[1], &seq))
		goto out;
	if (parse_op(c, f, nf, 2, &op, bufs))
		goto out;
	cmd.client = c->client;
	cmd.seq = c->client ? seq : 0;
	cmd.nops = 1;
	cmd.ops = &op;
	submit(c, &cmd);
out:
	free(bufs[0]);
	free(bufs[1]);
}

/* `txn SEQ N` and its N lines, all in the buffer: lines[i] (NUL-terminated in place). */
void rkv_cmd_txn(rkv_conn *c, uint64_t seq, uint64_t nops, char **lines)
{
	rkv_cmd cmd = {0};
	rkv_op *ops = calloc(nops, sizeof(*ops));
	char **bufs = calloc(2 * nops, sizeof(*bufs));
	if (!ops || !bufs) {
		rkv_reply(c, "ERR out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < nops; i++) {
		char *f[MAX_FIELDS];
		int nf = rkv_split(lines[i], f, 3);
		if (parse_op(c, f, nf, 1, &ops[i], &bufs[2 * i]))
			goto out;
	}
	cmd.client = c->client;
	cmd.seq = c->client ? seq : 0;
	cmd.nops = (uint32_t)nops;
	cmd.txn = true;
	cmd.ops = ops;
	submit(c, &cmd);
out:
	if (bufs)
		for (uint64_t i = 0; i < 2 * nops; i++)
			free(bufs[i]);
	free(bufs);
	free(ops);
}

static void cmd_read(rkv_conn *c, char **f, int nf, bool linear)
{
	bool scan = !strcmp(f[0], linear ? "scan" : "sscan");
	pending *p = pending_new(c, scan ? P_SCAN : P_GET);
	if (!p)
		return;
	if (!scan) {
		if (nf != 2) {
			rkv_reply(c, "ERR usage: %s K", f[0]);
			goto drop;
		}
		if (dec(c, "key", f[1], &p->key, &p->klen))
			goto drop;
	} else {
		if (nf != 4 || kv_parse_u64(f[3], &p->limit) || p->limit > SCAN_LIMIT_MAX) {
			rkv_reply(c, "ERR usage: %s START END LIMIT (- for unbounded; LIMIT <= %u)", f[0],
			      SCAN_LIMIT_MAX);
			goto drop;
		}
		p->has_start = strcmp(f[1], "-") != 0;
		p->has_end = strcmp(f[2], "-") != 0;
		if ((p->has_start && dec(c, "START", f[1], &p->key, &p->klen)) ||
		    (p->has_end && dec(c, "END", f[2], &p->end, &p->elen)))
			goto drop;
	}
	if (!linear || c->n->standalone) {
		if (scan)
			do_scan(c, p);
		else
			do_get(c, p->key, p->klen);
		goto drop;
	}
	if (!is_leader(c->n)) {
		not_leader(c);
		goto drop;
	}
	p->u.barrier.data = p;
	int rc = raft_barrier(&c->n->raft, &p->u.barrier, barrier_cb);
	if (rc) {
		raft_failed(c, rc);
		goto drop;
	}
	set_busy(c, p);
	return;
drop:
	pending_free(p);
}

static const char *state_name(rkv_node *n)
{
	if (n->standalone)
		return "standalone";
	switch (raft_state(&n->raft)) {
	case RAFT_LEADER: return "leader";
	case RAFT_FOLLOWER: return "follower";
	case RAFT_CANDIDATE: return "candidate";
	default: return "unavailable";
	}
}

static void cmd_status(rkv_conn *c)
{
	rkv_node *n = c->n;
	sbuf b = {0};
	rkv_sb_printf(&b, "STATUS id=%u state=%s", n->id, state_name(n));
	if (!n->standalone) {
		raft_id lid = 0;
		const char *addr = NULL;
		raft_leader(&n->raft, &lid, &addr);
		rkv_sb_printf(&b, " term=%llu leader=%llu", (unsigned long long)n->raft.current_term,
			  (unsigned long long)lid);
	}
	rkv_sb_printf(&b, " applied=%llu", (unsigned long long)n->applied);
	if (!n->standalone) {
		rkv_sb_printf(&b, " commit=%llu last=%llu snapshots=%llu restores=%llu voters=",
			  (unsigned long long)n->raft.commit_index,
			  (unsigned long long)raft_last_index(&n->raft),
			  (unsigned long long)__atomic_load_n(&n->snapshots, __ATOMIC_RELAXED),
			  (unsigned long long)n->restores);
		bool first = true;
		for (unsigned i = 0; i < n->raft.configuration.n; i++) {
			const struct raft_server *s = &n->raft.configuration.servers[i];
			if (s->role != RAFT_VOTER)
				continue;
			rkv_sb_printf(&b, "%s%llu", first ? "" : ",", (unsigned long long)s->id);
			first = false;
		}
		if (first)
			rkv_sb_printf(&b, "-");
	}
	rkv_sb_printf(&b, "\n");
	rkv_conn_send(c, &b);
}

/* A request only the leader takes: NULL after answering ERR (standalone) or NOTLEADER. */
static pending *leader_pending(rkv_conn *c, int kind)
{
	if (c->n->standalone) {
		rkv_reply(c, "ERR a standalone node has no membership");
		return NULL;
	}
	if (!is_leader(c->n)) {
		not_leader(c);
		return NULL;
	}
	return pending_new(c, kind);
}

static void cmd_membership(rkv_conn *c, char **f, int nf)
{
	bool add = !strcmp(f[0], "add");
	uint64_t id;
	if (nf != (add ? 3 : 2) || kv_parse_u64(f[1], &id) || id == 0 ||
	    (add && strlen(f[2]) >= 64)) {
		rkv_reply(c, "ERR usage: add ID ADDRESS | remove ID (ID >= 1)");
		return;
	}
	pending *p = leader_pending(c, add ? P_ADD : P_REMOVE);
	if (!p)
		return;
	p->id = id;
	p->u.change.data = p;
	int rc = add ? raft_add(&c->n->raft, &p->u.change, id, f[2], change_cb)
		     : raft_remove(&c->n->raft, &p->u.change, id, change_cb);
	if (rc) {
		if (rc == RAFT_NOTLEADER)
			not_leader(c);
		else
			rkv_reply(c, "ERR %s: %s", f[0], raft_strerror(rc));
		pending_free(p);
		return;
	}
	set_busy(c, p);
}

static void transfer_cb(struct raft_transfer *req)
{
	pending *p = req->data;
	if (p->conn) {
		raft_id id = 0;
		const char *addr = NULL;
		raft_leader(&p->n->raft, &id, &addr);
		if (p->id == 0 ? id != p->n->id && id != 0 : id == p->id)
			rkv_reply(p->conn, "OK");
		else
			rkv_reply(p->conn, "ERR transfer: the leader is now %llu", (unsigned long long)id);
	}
	pending_done(p);
}

/* `transfer [ID]`: hand the leadership to ID (0 or none: a voter raft picks). */
static void cmd_transfer(rkv_conn *c, char **f, int nf)
{
	uint64_t id = 0;
	if (nf > 2 || (nf == 2 && kv_parse_u64(f[1], &id))) {
		rkv_reply(c, "ERR usage: transfer [ID]");
		return;
	}
	pending *p = leader_pending(c, P_TRANSFER);
	if (!p)
		return;
	p->id = id;
	p->u.transfer.data = p;
	int rc = raft_transfer(&c->n->raft, &p->u.transfer, id, transfer_cb);
	if (rc) {
		rkv_reply(c, "ERR transfer: %s", raft_strerror(rc));
		pending_free(p);
		return;
	}
	set_busy(c, p);
}

static void cmd_barrier(rkv_conn *c)
{
	if (c->n->standalone) { /* nothing is ever pending there */
		rkv_reply(c, "OK");
		return;
	}
	pending *p = leader_pending(c, P_BARRIER);
	if (!p)
		return;
	p->u.barrier.data = p;
	int rc = raft_barrier(&c->n->raft, &p->u.barrier, barrier_cb);
	if (rc) {
		raft_failed(c, rc);
		pending_free(p);
		return;
	}
	set_busy(c, p);
}

void rkv_handle_line(rkv_conn *c, char *line)
{
	char *f[MAX_FIELDS];
	int nf = rkv_split(line, f, 4);
	const char *cmd = f[0];
	if (!strcmp(cmd, "put") || !strcmp(cmd, "del")) {
		cmd_write(c, f, nf);
	} else if (!strcmp(cmd, "get") || !strcmp(cmd, "scan")) {
		cmd_read(c, f, nf, true);
	} else if (!strcmp(cmd, "sget") || !strcmp(cmd, "sscan")) {
		cmd_read(c, f, nf, false);
	} else if (!strcmp(cmd, "hello")) {
		uint64_t id = 0;
		char *e;
		errno = 0;
		if (nf == 2 && f[1][0] && strlen(f[1]) <= 16 &&
		    strspn(f[1], "0123456789abcdefABCDEF") == strlen(f[1]))
			id = strtoull(f[1], &e, 16);
		if (!id) {
			rkv_reply(c, "ERR usage: hello CLIENT (1..16 hex digits, not 0)");
			return;
		}
		c->client = id;
		rkv_reply(c, "OK");
	} else if (!strcmp(cmd, "status") && nf == 1) {
		cmd_status(c);
	} else if (!strcmp(cmd, "digest") && nf == 1) {
		uint64_t applied, keys, hash;
		int rc = rkv_digest(c->n, &applied, &keys, &hash);
		if (rc)
			rkv_reply(c, "ERR digest: %s", pbox_strerror(rc));
		else
			rkv_reply(c, "DIGEST applied=%llu keys=%llu hash=%016llx",
			      (unsigned long long)applied, (unsigned long long)keys,
			      (unsigned long long)hash);
	} else if (!strcmp(cmd, "barrier") && nf == 1) {
		cmd_barrier(c);
	} else if (!strcmp(cmd, "add") || !strcmp(cmd, "remove")) {
		cmd_membership(c, f, nf);
	} else if (!strcmp(cmd, "transfer")) {
		cmd_transfer(c, f, nf);
	} else {
		rkv_reply(c, "ERR unknown command (hello, put, del, txn, get, scan, sget, sscan, "
			 "barrier, status, digest, add, remove, transfer)");
	}
}

