/*
 * server_int.h — what server.c (connections, framing, output) and commands.c (the
 * commands and their completions) share. Loop thread only (see server.c).
 */
#ifndef RAFTKV_SERVER_INT_H
#define RAFTKV_SERVER_INT_H

#include "node.h"

#define SCAN_LIMIT_MAX 100000u
#define MAX_FIELDS 5

enum { P_WRITE, P_GET, P_SCAN, P_BARRIER, P_ADD, P_REMOVE, P_TRANSFER };

struct rkv_conn {
	uv_pipe_t pipe;
	rkv_node *n;
	rkv_conn *next, **pprev;
	char *in;
	size_t in_len, in_cap;
	bool busy, closing;
	bool eof; /* the peer shut its side: close once the buffered commands are answered */
	uint64_t client;
	struct pending *cur; /* the request it waits for (busy) */
};

struct pending {
	union {
		struct raft_apply apply;
		struct raft_barrier barrier;
		struct raft_change change;
		struct raft_transfer transfer;
	} u;
	uv_work_t work;
	rkv_conn *conn; /* NULL once the connection closed */
	rkv_node *n;
	int kind;
	/* reads after the barrier */
	char *key, *end;
	size_t klen, elen;
	bool has_start, has_end;
	uint64_t limit;
	/* add */
	raft_id id;
	/* standalone writes */
	void *entry;
	size_t entry_len;
	int res, rc;
};
typedef struct pending pending;

/* An output buffer (NUL-terminated), sent with rkv_conn_send (which frees it). */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;
void rkv_sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rkv_sb_enc(sbuf *b, const void *buf, size_t len); /* the %HH form */
void rkv_conn_send(rkv_conn *c, sbuf *b);
void rkv_reply(rkv_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse and run the connection's buffered commands until one waits (server.c). */
void rkv_conn_process(rkv_conn *c);

/* commands.c: one command line; a txn SEQ N with its N lines (NUL-terminated in place). */
void rkv_handle_line(rkv_conn *c, char *line);
void rkv_cmd_txn(rkv_conn *c, uint64_t seq, uint64_t nops, char **lines);
int rkv_split(char *line, char **f, int max);
int rkv_parse_seq(rkv_conn *c, const char *s, uint64_t *seq);

#endif
