/*
 * raftkv.h — declarations shared by the files of the raftkv example: a replicated key-value
 * service whose nodes are pagebox stores under canonical raft (libraft, libuv I/O and TCP
 * transport on 127.0.0.1). README.md describes the commands, the line protocol and how a raft
 * entry maps to a pagebox transaction.
 *
 *   main.c     command line: global options, dispatch, usage
 *   cli.c      the one-shot client commands (put, get, del, sget, scan, status, add, ...)
 *   node.c     `node`: one server process (raft, its libuv loop, the client socket)
 *   fsm.c      the state machine: apply (one pbox transaction per entry, applied index and
 *              client sessions in the same commit), snapshot (online backup), restore
 *   server.c   the node's unix socket: connections, framing, output
 *   commands.c the protocol's commands and their completions
 *   entry.c    the command entry format (its table): encoder and decoder, no store access
 *   snap.c     the snapshot archive format (its table): a directory <-> one buffer
 *   client.c   the client side: connecting to a cluster, following NOTLEADER, retrying
 *   stress.c   `stress` (writers through whichever node leads)
 *   check.c    `check` (every node identical, every acknowledged write on every node)
 *   cluster.c  `cluster start|stop|status`
 *   raw.c      `raw`: stdin to one node's socket, its answers to stdout
 *
 * Threads: a node runs everything on its libuv loop thread (raft, apply, snapshots, the
 * client socket); a standalone node's durable commits run on libuv's thread pool.
 */
#ifndef RAFTKV_H
#define RAFTKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, as kvstore's. */
enum {
	RKV_EXIT_OK = 0,
	RKV_EXIT_NOTFOUND = 1, /* get/del of a missing key; check found violations */
	RKV_EXIT_USAGE = 2,    /* bad command line */
	RKV_EXIT_FAIL = 3,     /* store error, no leader reachable, protocol error */
};

/* The node's files inside its directory. */
#define RKV_SOCK_NAME "sock"    /* the client socket (unix stream) */
#define RKV_RAFT_DIR "raft"     /* raft_uv's log, metadata and snapshots */
#define RKV_STORE_DIR "store"   /* the pagebox store */
#define RKV_DATA_TREE "default" /* the users' keys (kvstore's tools read it) */
#define RKV_META_TREE "raftkv"  /* "applied" and the client sessions */

/* Limits (README "Limits"). */
#define RKV_KEY_MAX 4096u
#define RKV_VALUE_MAX (1u << 20)
#define RKV_TXN_OPS_MAX 10000u
#define RKV_ENTRY_MAX (16u << 20)   /* one command entry (a transaction's encoding) */
#define RKV_LINE_MAX (3u * RKV_VALUE_MAX + 2 * 3 * RKV_KEY_MAX + 64)

/* ---- entry.c: the command entry (format table in entry.c) ----------------------------- */

enum { RKV_OP_PUT = 1, RKV_OP_DEL = 2 };

typedef struct rkv_op {
	uint8_t type;
	const uint8_t *key;
	uint32_t klen;
	const uint8_t *val; /* PUT only */
	uint32_t vlen;
} rkv_op;

typedef struct rkv_cmd {
	uint64_t client; /* 0: no session (no deduplication) */
	uint64_t seq;    /* the client's request number, >= 1 when client != 0 */
	uint32_t nops;   /* 1..RKV_TXN_OPS_MAX */
	bool txn;        /* a `txn` (del of an absent key is not NOTFOUND) */
	rkv_op *ops;     /* points into the decoded buffer */
} rkv_cmd;

/* Encoded size of c (0 if it breaks a limit). */
size_t rkv_cmd_size(const rkv_cmd *c);
/* Encode into buf (cap >= rkv_cmd_size). Returns the length, 0 on a broken limit. */
size_t rkv_cmd_encode(const rkv_cmd *c, void *buf, size_t cap);
/* Decode buf; ops is malloc'd (free(c->ops)), pointing into buf. 0, or -1 for any breach of
 * the format (bad magic/version/checksum/lengths/op type, trailing bytes). */
int rkv_cmd_decode(const void *buf, size_t len, rkv_cmd *c);

/* ---- snap.c: the snapshot archive (format table in snap.c) ----------------------------- */

/* Pack the regular files of dir (one level, plus one level of subdirectories, e.g. the
 * store's wal/) into one malloc'd buffer, leaving out blocks that are all zero; index is
 * the raft index the snapshot is taken at (recorded in the header). The LOCK file is left
 * out. 0, or -errno / -1 with a message in err. */
int rkv_snap_pack(const char *dir, uint64_t index, void **out, size_t *len, char *err,
		  size_t errlen);
/* The header's index without unpacking: 0, or -1 if the header is malformed. */
int rkv_snap_index(const void *buf, size_t len, uint64_t *index);
/* Check the whole archive (checksums, lengths, names) and write its files under dir, which
 * must not exist (created; files fsync'd, then the directories). 0, or -1 with a message. */
int rkv_snap_unpack(const void *buf, size_t len, const char *dir, char *err, size_t errlen);

/* ---- client.c: talking to a cluster ------------------------------------------------------ */

typedef struct rkv_client rkv_client;

/* A client of the cluster in directory cluster (nodes found as cluster/n<ID>/sock), or of
 * the single node socket `sock` when cluster is NULL. client_id 0: no `hello` is sent (no
 * deduplication). 0, or -1 with a message in err. */
int rkv_client_open(const char *cluster, const char *sock, uint64_t client_id,
		    rkv_client **out, char *err, size_t errlen);
void rkv_client_close(rkv_client *c);
/* Send one request (req: complete lines, each ending with '\n'; a txn is its header line
 * and its op lines) to the leader: follows NOTLEADER, and on RETRY, a refused or dropped
 * connection or a node without a leader, waits briefly and sends it again (to the leader it
 * then finds) until timeout_s has passed. *resp: the response (malloc'd, NUL-terminated,
 * lines each ending with '\n'; a scan's KV lines through END). 0, or -1 (timeout: err
 * says what was last seen). *redirects counts the NOTLEADER / RETRY / reconnects (may be
 * NULL). */
int rkv_client_call(rkv_client *c, const char *req, size_t len, double timeout_s,
		    char **resp, unsigned *redirects, char *err, size_t errlen);
/* The same to node id only (no redirect, no retry). */
int rkv_client_call_node(rkv_client *c, unsigned id, const char *req, size_t len,
			 double timeout_s, char **resp, char *err, size_t errlen);
/* The node ids found (sorted); returns how many (at most cap). */
unsigned rkv_client_nodes(rkv_client *c, unsigned *ids, unsigned cap);

/* ---- the commands (argv[0] is the command name) ---------------------------------------- */

int rkv_cmd_node(int argc, char **argv);     /* node.c */
int rkv_cmd_cluster(int argc, char **argv);  /* cluster.c */
int rkv_cmd_client(const char *cluster, const char *sock, int argc, char **argv); /* cli.c */
int rkv_cmd_stress(const char *cluster, const char *sock, int argc, char **argv); /* stress.c */
int rkv_cmd_check(const char *cluster, int argc, char **argv);  /* check.c */
int rkv_cmd_raw(const char *cluster, const char *sock, int argc, char **argv); /* raw.c */

/* ---- client side: helpers shared by client.c, cli.c and stress.c (client.c; the scans in
 * cli.c) ------------------------------------------------------------------------------------ */
/* Added by the client files; the server side does not use them. */

/* Calls on c abandon their request (return -1, "cancelled", the connection closed) once
 * cancelled(arg) returns true; it is asked at least every 100 ms while a call waits. */
void rkv_client_set_cancel(rkv_client *c, bool (*cancelled)(void *arg), void *arg);
/* The node that answered the last successful rkv_client_call (the leader then), 0: none. */
unsigned rkv_client_leader(const rkv_client *c);
/* A random non-zero 64-bit client id (getrandom). */
uint64_t rkv_random_id(void);

/* A growing byte buffer, NUL-terminated after every append (free(p) when done). 0 or -1
 * (out of memory). rkv_buf_add with s NULL only makes room: len grows by n, bytes unset. */
typedef struct rkv_buf {
	char *p;
	size_t len, cap;
} rkv_buf;
int rkv_buf_add(rkv_buf *b, const void *s, size_t n);
int rkv_buf_printf(rkv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0..n) in the %HH form (kv_encode's rule). */
int rkv_buf_enc(rkv_buf *b, const void *s, size_t n);
/* Decode the %HH form of s[0..n) in place: 0 and *outlen, or -1 for a bad escape. */
int rkv_unescape(char *s, size_t n, size_t *outlen);
/* s[0..n) as text for a message in buf (truncated to cap): bytes outside 0x20..0x7e as %HH. */
const char *rkv_show(const void *s, size_t n, char *buf, size_t cap);

/* One pair of a scan (decoded; valid only during the call): 0 to go on, non-zero to stop
 * (returned by rkv_scan_pages). */
typedef int (*rkv_pair_fn)(void *arg, const char *key, size_t klen, const char *val,
			   size_t vlen);
/* The pairs with start <= key < end (start NULL: from the first key; end NULL: to the
 * last), at most limit, in requests of up to page pairs (fewer while responses are over
 * 16 MiB; each restarting after the last key): `scan`
 * through the leader (rkv_client_call), or with stale `sscan` to node `node` only. Checks
 * the response (ascending keys inside the range, END's count). 0, -1 with err, or fn's
 * non-zero return. *count (may be NULL): pairs passed to fn. */
int rkv_scan_pages(rkv_client *c, bool stale, unsigned node, const void *start, size_t sl,
		   const void *end, size_t el, uint64_t limit, unsigned page, double timeout_s,
		   rkv_pair_fn fn, void *arg, uint64_t *count, char *err, size_t errlen);
/* "raftkv: " and the message on stderr; returns code. (stress.c) */
int rkv_say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first line of a response r, as text for a message, in buf. (stress.c) */
const char *rkv_shown(const char *r, char *buf, size_t cap);
/* Byte order of keys, a prefix first (the btree's order): <0, 0, >0. */
int rkv_key_cmp(const void *a, size_t al, const void *b, size_t bl);

#endif
