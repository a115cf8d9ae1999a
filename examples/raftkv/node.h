/*
 * node.h — the state of one raftkv node process, shared by node.c (set-up, the loop, the
 * shutdown), fsm.c (the state machine on the store) and server.c (the client socket).
 *
 * Threads and locking: every field is owned by the libuv loop thread. The only other threads
 * are libuv's thread pool running a standalone node's commits (server.c), which use st,
 * data and meta (the store is thread-safe) and nothing else; a standalone node never
 * restores a snapshot, the one place st is replaced.
 */
#ifndef RAFTKV_NODE_H
#define RAFTKV_NODE_H

#include "raftkv.h"

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/txn.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <limits.h>

/* The result of applying one command entry (the raft apply callback's `result`, and what a
 * client session records for deduplication). */
enum {
	RKV_RES_NONE = 0,     /* not applied here (an index the store already holds) */
	RKV_RES_OK = 1,
	RKV_RES_NOTFOUND = 2, /* del of an absent key */
	RKV_RES_STALE = 3,    /* SEQ below the client's last: nothing applied */
	RKV_RES_BAD = 4,      /* an entry that does not decode: nothing applied */
};

typedef struct rkv_conn rkv_conn;

typedef struct rkv_node {
	uv_loop_t loop;
	char dir[PATH_MAX];
	char store_dir[PATH_MAX];
	unsigned id;
	char address[64];
	bool standalone;  /* no raft: writes commit durably on the thread pool */
	bool stopping;

	/* raft (unused when standalone) */
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	bool raft_inited, io_inited, transport_inited;

	/* the store */
	pbox_store *st;
	pbox_bt *data;    /* RKV_DATA_TREE */
	pbox_bt *meta;    /* RKV_META_TREE */
	uint64_t applied; /* raft index of the last command entry the store holds */
	uint64_t budget;
	uint64_t restores, skipped_restores, snapshots;

	/* snapshots */
	uint64_t max_snapshot;  /* an archive larger than this is refused (RAFT_TOOBIG) */

	/* the client socket */
	uv_pipe_t server;
	bool server_open;
	char sock_path[108];
	rkv_conn *conns;        /* open connections (list) */
	uv_signal_t sig_term, sig_int;
} rkv_node;

/* fsm.c */
int rkv_store_open(rkv_node *n, const char *path, char *err, size_t errlen);
void rkv_store_close(rkv_node *n);
void rkv_fsm_init(rkv_node *n);
/* Apply one command in one pbox transaction: its ops, the client's session and (index != 0)
 * the applied index. flags: PBOX_BT_DURABLE or 0. Returns 0 and *res, or a pbox status (the
 * store failed: the node stops). Retries conflicts (standalone applies in parallel). */
int rkv_apply_cmd(rkv_node *n, const rkv_cmd *c, uint64_t index, unsigned flags, int *res);
/* One read-only snapshot of the data tree: count, hash, and the applied index in it. */
int rkv_digest(rkv_node *n, uint64_t *applied, uint64_t *keys, uint64_t *hash);
/* Remove DIR/store.new and DIR/snap.tmp left by a crash. 0 or -errno. */
int rkv_store_leftovers(rkv_node *n);

/* server.c */
int rkv_server_start(rkv_node *n, char *err, size_t errlen);
void rkv_server_stop(rkv_node *n);

#endif
