/*
 * server.c — a node's unix socket: connections, framing of the line protocol, output
 * (the commands themselves are in commands.c; README "The line protocol").
 *
 * Each connection is served in order: one command at a time. A command that waits for raft
 * (a write's entry, the barrier before a linearizable read, a membership change) or for the
 * thread pool (a standalone node's durable commit) marks the connection busy; its input is
 * buffered meanwhile and parsed again once the answer is written, so responses keep the
 * order of the commands. A `txn` header is taken only when all of its N lines have arrived.
 *
 * Invariants: nothing is proposed to raft or applied for a command that does not parse
 * (ERR, connection goes on); a line longer than RKV_LINE_MAX, or a txn whose lines exceed
 * RKV_ENTRY_MAX when encoded, is refused (the connection is closed after the ERR, as its
 * input can no longer be framed). A pending request whose connection closed is completed
 * without an answer (p->conn is cleared by the close).
 * Threads: the loop thread only, except standalone_work (thread pool), which touches the
 * store and its own pending request.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "server_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INPUT_MAX (4u * RKV_ENTRY_MAX) /* bytes buffered while a txn's lines arrive */

static void conn_close(rkv_conn *c);

/* ---- output ----------------------------------------------------------------------------- */

static void sb_grow(sbuf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		fprintf(stderr, "raftkv: out of memory\n");
		exit(RKV_EXIT_FAIL);
	}
	b->p = p;
	b->cap = cap;
}

void rkv_sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The %HH form (kvstore's encoding). */
void rkv_sb_enc(sbuf *b, const void *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = buf;
	sb_grow(b, 3 * len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c > 0x20 && c < 0x7f && c != '%') {
			b->p[b->len++] = (char)c;
		} else {
			b->p[b->len++] = '%';
			b->p[b->len++] = hex[c >> 4];
			b->p[b->len++] = hex[c & 15];
		}
	}
	b->p[b->len] = 0;
}

static void write_cb(uv_write_t *w, int status)
{
	(void)status; /* a closed peer: nothing to do */
	free(w->data);
	free(w);
}

void rkv_conn_send(rkv_conn *c, sbuf *b)
{
	if (c->closing || !b->len) {
		free(b->p);
		return;
	}
	uv_write_t *w = malloc(sizeof(*w));
	if (!w) {
		free(b->p);
		return;
	}
	w->data = b->p;
	uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->len);
	if (uv_write(w, (uv_stream_t *)&c->pipe, &ub, 1, write_cb)) {
		free(b->p);
		free(w);
	}
}

void rkv_reply(rkv_conn *c, const char *fmt, ...)
{
	sbuf b = {0};
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_grow(&b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b.p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b.len = (size_t)n;
	b.p[b.len++] = '\n';
	rkv_conn_send(c, &b);
}


void rkv_conn_process(rkv_conn *c)
{
	size_t off = 0;
	while (!c->busy && !c->closing && off < c->in_len) {
		char *line = c->in + off;
		char *nl = memchr(line, '\n', c->in_len - off);
		if (!nl)
			break;
		size_t ll = (size_t)(nl - line);
		*nl = 0;
		if (ll && line[ll - 1] == '\r')
			line[ll - 1] = 0;
		uint64_t seq, nops;
		char *f[MAX_FIELDS];
		char copy[64];
		if (!strncmp(line, "txn ", 4) && ll < sizeof(copy)) {
			memcpy(copy, line, ll + 1);
			int nf = rkv_split(copy, f, 3);
			if (nf != 3 || kv_parse_u64(f[2], &nops) || nops == 0 || nops > RKV_TXN_OPS_MAX) {
				rkv_reply(c, "ERR usage: txn SEQ N (N in 1..%u), then N lines", RKV_TXN_OPS_MAX);
				off += ll + 1;
				continue;
			}
			/* wait until all N lines are here */
			char **lines = malloc(nops * sizeof(*lines));
			if (!lines) {
				rkv_reply(c, "ERR out of memory");
				conn_close(c);
				return;
			}
			size_t p = off + ll + 1;
			uint64_t got = 0;
			while (got < nops && p < c->in_len) {
				char *e = memchr(c->in + p, '\n', c->in_len - p);
				if (!e)
					break;
				lines[got++] = c->in + p;
				p = (size_t)(e - c->in) + 1;
			}
			if (got < nops) {
				free(lines);
				*nl = '\n'; /* parsed again when more arrives */
				break;
			}
			for (uint64_t i = 0; i < nops; i++) {
				char *e = strchr(lines[i], '\n');
				*e = 0;
				if (e > lines[i] && e[-1] == '\r')
					e[-1] = 0;
			}
			if (rkv_parse_seq(c, f[1], &seq) == 0)
				rkv_cmd_txn(c, seq, nops, lines);
			free(lines);
			off = p;
			continue;
		}
		off += ll + 1;
		rkv_handle_line(c, line);
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (!c->closing && !memchr(c->in, '\n', c->in_len) && c->in_len > RKV_LINE_MAX) {
		rkv_reply(c, "ERR line longer than %u bytes", RKV_LINE_MAX);
		conn_close(c);
	} else if (!c->closing && c->in_len > INPUT_MAX) {
		rkv_reply(c, "ERR request longer than %u bytes", INPUT_MAX);
		conn_close(c);
	} else if (!c->closing && c->eof && !c->busy) {
		if (c->in_len) /* a last line without '\n', or a txn cut short */
			rkv_reply(c, "ERR incomplete request at end of input");
		conn_close(c);
	}
}


/* ---- connections ------------------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	rkv_conn *c = h->data;
	(void)hint;
	size_t want = 64 * 1024;
	if (c->in_cap - c->in_len < want) {
		size_t cap = c->in_cap ? c->in_cap : want;
		while (cap - c->in_len < want)
			cap *= 2;
		char *p = realloc(c->in, cap);
		if (!p) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		c->in = p;
		c->in_cap = cap;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void closed_cb(uv_handle_t *h)
{
	rkv_conn *c = h->data;
	free(c->in);
	free(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, closed_cb);
	free(req);
}

static void conn_close(rkv_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->cur) /* it completes later, without an answer */
		c->cur->conn = NULL;
	c->cur = NULL;
	if (c->next)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	c->next = NULL;
	c->pprev = &c->next;
	uv_read_stop((uv_stream_t *)&c->pipe);
	/* the answers already queued go out first (uv_close alone would cancel them) */
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (!req || uv_shutdown(req, (uv_stream_t *)&c->pipe, shutdown_cb)) {
		free(req);
		uv_close((uv_handle_t *)&c->pipe, closed_cb);
	}
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	rkv_conn *c = s->data;
	(void)buf;
	if (nread == UV_EOF) {
		c->eof = true;
		uv_read_stop(s);
		rkv_conn_process(c);
		return;
	}
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->in_len += (size_t)nread;
	rkv_conn_process(c);
}

static void accept_cb(uv_stream_t *server, int status)
{
	rkv_node *n = server->data;
	if (status < 0)
		return;
	rkv_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->n = n;
	uv_pipe_init(&n->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe)) {
		uv_close((uv_handle_t *)&c->pipe, closed_cb);
		return;
	}
	c->next = n->conns;
	if (n->conns)
		n->conns->pprev = &c->next;
	n->conns = c;
	c->pprev = &n->conns;
	uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

int rkv_server_start(rkv_node *n, char *err, size_t errlen)
{
	int w = snprintf(n->sock_path, sizeof(n->sock_path), "%s/%s", n->dir, RKV_SOCK_NAME);
	if (w < 0 || (size_t)w >= sizeof(n->sock_path)) {
		snprintf(err, errlen, "socket path %s/%s is longer than %zu bytes", n->dir,
			 RKV_SOCK_NAME, sizeof(n->sock_path) - 1);
		return -1;
	}
	(void)unlink(n->sock_path); /* a stale socket of a crashed run; the store lock is ours */
	uv_pipe_init(&n->loop, &n->server, 0);
	n->server.data = n;
	n->server_open = true;
	int rc = uv_pipe_bind(&n->server, n->sock_path);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&n->server, 128, accept_cb);
	if (rc) {
		snprintf(err, errlen, "listen on %s: %s", n->sock_path, uv_strerror(rc));
		return -1;
	}
	return 0;
}

void rkv_server_stop(rkv_node *n)
{
	if (n->server_open) {
		uv_close((uv_handle_t *)&n->server, NULL);
		n->server_open = false;
		(void)unlink(n->sock_path);
	}
	while (n->conns)
		conn_close(n->conns);
}
