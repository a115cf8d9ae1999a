/*
 * client.c — the client side of raftkv: connecting to a cluster's nodes, sending one request
 * at a time in the line protocol (README "The line protocol"), following NOTLEADER and
 * retrying until a deadline; plus the small helpers cli.c and stress.c share (a growing
 * buffer, %HH in and out, a random client id; the paged scan is in cli.c).
 *
 * Connections: one unix stream socket per node, opened on first use and kept (a node is
 * asked again over the same connection), non-blocking with poll(2) so that every wait has
 * a deadline and notices cancellation within 100 ms. After connecting, a client with an id
 * sends `hello ID` and expects OK before anything else, so every write it sends carries
 * its session. A connection is closed after any failure — a timeout, an abandoned request,
 * a malformed response — because a late response would otherwise be read as the answer to
 * the next request.
 *
 * Exactly once: rkv_client_call sends the caller's text unchanged on every attempt, so a
 * write keeps its SEQ however often it is resent (after RETRY, a dropped connection, a
 * NOTLEADER); the nodes' sessions turn the repeats into one application.
 *
 * Retry policy of rkv_client_call: NOTLEADER ID sends to node ID next (at once the first
 * time; after a backoff if the node that hint led to also redirects, so that two nodes with
 * stale views cannot make it spin); NOTLEADER 0, RETRY, a refused or dropped connection and
 * an attempt that timed out back off (20 ms doubling to 200 ms) and try the next node in
 * turn. A stopped (not dead) leader still accepts connections, so waits are bounded: hello
 * HELLO_WAIT, an attempt ATTEMPT_MAX; and while an answer is late the other nodes are asked
 * every PROBE_EVERY who leads — once they name another node the request goes there at once
 * (same text). The directory is scanned again each time the turn wraps around, so nodes
 * added later are found.
 *
 * Threads: an rkv_client is used by one thread at a time; separate clients are independent.
 */
#define _GNU_SOURCE
#include "raftkv.h"
#include "kvstore.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ATTEMPT_MAX 5.0     /* seconds one attempt of rkv_client_call waits for its answer */
#define HELLO_WAIT 1.0      /* for the answer to hello */
#define PROBE_EVERY 0.5     /* a late answer: ask the other nodes who leads this often */
#define PROBE_WAIT 0.3      /* for a probe's status answer */
#define BACKOFF_FIRST 0.020
#define BACKOFF_MAX 0.200
#define POLL_SLICE_MS 100   /* how often a wait checks for cancellation */
#define LINE_CAP (RKV_LINE_MAX + 256u)

enum {
	IO_OK = 0,
	IO_FAIL = -1,
	IO_EOF = -2,     /* refused, dropped or closed: the node may be gone */
	IO_TIMEOUT = -3,
	IO_CANCEL = -4,
	IO_PROTO = -5,   /* a malformed response */
	IO_MOVED = -6,   /* abandoned: another node leads now */
};

typedef struct conn {
	unsigned id;   /* node id; 0 is the single socket of a client without a cluster */
	int fd;        /* -1: not connected */
	bool used;     /* answered a request: a failure before any byte may mean it went stale */
	char *in;      /* received bytes in[off..len) not consumed yet */
	size_t off, len, cap;
} conn;

struct rkv_client {
	char *cluster, *sock;
	uint64_t client_id;
	unsigned *ids, nids, rr; /* discovered node ids (sorted); rr: the next in turn */
	conn **conns;            /* each allocated once: a conn never moves while in use */
	unsigned nconns;
	unsigned leader;         /* the leader as last heard of, 0: unknown */
	unsigned answered;       /* the node of the last successful rkv_client_call */
	bool (*cancelled)(void *);
	void *cancel_arg;
};

/* ---- small shared helpers ---------------------------------------------------------------- */

int rkv_buf_add(rkv_buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	if (n && s) /* s NULL: only make room (the caller fills it) */
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int rkv_buf_printf(rkv_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return rkv_buf_add(b, small, (size_t)n);
	if (rkv_buf_add(b, NULL, (size_t)n)) /* make room, then print into it */
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len - (size_t)n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return 0;
}

int rkv_buf_enc(rkv_buf *b, const void *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = s;
	if (rkv_buf_add(b, NULL, 3 * n)) /* the worst case, trimmed below */
		return -1;
	char *d = b->p + b->len - 3 * n;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		if (ch > 0x20 && ch < 0x7f && ch != '%') { /* the rule of kv_encode */
			*d++ = (char)ch;
		} else {
			*d++ = '%';
			*d++ = hex[ch >> 4];
			*d++ = hex[ch & 15];
		}
	}
	b->len = (size_t)(d - b->p);
	b->p[b->len] = 0;
	return 0;
}

static int hexdig(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int rkv_unescape(char *s, size_t n, size_t *outlen)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			s[j++] = s[i];
			continue;
		}
		int hi = i + 1 < n ? hexdig(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexdig(s[i + 2]) : -1;
		if (hi < 0 || lo < 0)
			return -1;
		s[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	*outlen = j;
	return 0;
}

const char *rkv_show(const void *s, size_t n, char *buf, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = s;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 4 <= cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			buf[j++] = (char)p[i];
		} else { /* a message must not carry control bytes to the terminal */
			buf[j++] = '%';
			buf[j++] = hex[p[i] >> 4];
			buf[j++] = hex[p[i] & 15];
		}
	}
	if (cap)
		buf[j < cap ? j : cap - 1] = 0;
	return buf;
}

/* The first line of a response (without its newline) for a message. */
static const char *show_line(const char *r, size_t len, char *buf, size_t cap)
{
	const char *nl = memchr(r, '\n', len);
	return rkv_show(r, nl ? (size_t)(nl - r) : len, buf, cap);
}

uint64_t rkv_random_id(void)
{
	uint64_t v = 0;
	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
			/* no entropy source: time and pid still separate concurrent clients */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
			    ((uint64_t)getpid() * 0x9E3779B97F4A7C15ull);
		}
	}
	return v;
}

static void sleep_for(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static bool is_cancelled(const rkv_client *c)
{
	return c->cancelled && c->cancelled(c->cancel_arg);
}

/* Sleep s seconds in slices, returning early (true) on cancellation. */
static bool nap(const rkv_client *c, double s)
{
	double until = kv_now() + s;
	for (;;) {
		if (is_cancelled(c))
			return true;
		double rem = until - kv_now();
		if (rem <= 0)
			return false;
		sleep_for(rem < POLL_SLICE_MS / 1000.0 ? rem : POLL_SLICE_MS / 1000.0);
	}
}

/* ---- nodes and connections ----------------------------------------------------------------- */

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* Scan the cluster directory for n<ID>/sock. Keeps the old list if the directory cannot be
 * read (a transient error should not forget the nodes). */
static void discover(rkv_client *c)
{
	if (!c->cluster)
		return;
	DIR *d = opendir(c->cluster);
	if (!d)
		return;
	unsigned *ids = NULL, n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		uint64_t id;
		if (nm[0] != 'n' || nm[1] == '0' || kv_parse_digits(nm + 1, strlen(nm + 1), &id) ||
		    id == 0 || id > 0xFFFFFFFFu)
			continue;
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s/%s", c->cluster, nm, RKV_SOCK_NAME);
		if (access(path, F_OK))
			continue;
		if (n == cap) {
			unsigned nc = cap ? 2 * cap : 8;
			unsigned *ni = realloc(ids, nc * sizeof(*ni));
			if (!ni)
				break;
			ids = ni;
			cap = nc;
		}
		ids[n++] = (unsigned)id;
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_unsigned);
	free(c->ids);
	c->ids = ids;
	c->nids = n;
}

static int node_path(const rkv_client *c, unsigned id, char *path, size_t cap, char *err,
		     size_t errlen);

int rkv_client_open(const char *cluster, const char *sock, uint64_t client_id,
		    rkv_client **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!cluster && !sock) {
		snprintf(err, errlen, "no cluster directory or node socket given");
		return -1;
	}
	if (cluster) {
		DIR *d = opendir(cluster);
		if (!d) {
			snprintf(err, errlen, "%s: %s", cluster, strerror(errno));
			return -1;
		}
		closedir(d);
	}
	rkv_client *c = calloc(1, sizeof(*c));
	if (!c || (cluster && !(c->cluster = strdup(cluster))) ||
	    (!cluster && !(c->sock = strdup(sock)))) {
		rkv_client_close(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->client_id = client_id;
	if (cluster) {
		discover(c);
	} else {
		c->ids = malloc(sizeof(*c->ids));
		if (!c->ids) {
			rkv_client_close(c);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		c->ids[0] = 0;
		c->nids = 1;
	}
	/* a path that cannot fit sockaddr_un fails every time: say so now, not at the timeout */
	char path[4200];
	if (node_path(c, c->nids ? c->ids[c->nids - 1] : c->cluster ? 1 : 0, path, sizeof(path),
		      err, errlen)) {
		rkv_client_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

static void conn_close(conn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->off = k->len = 0;
	k->used = false;
}

void rkv_client_close(rkv_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nconns; i++) {
		conn_close(c->conns[i]);
		free(c->conns[i]->in);
		free(c->conns[i]);
	}
	free(c->conns);
	free(c->ids);
	free(c->cluster);
	free(c->sock);
	free(c);
}

void rkv_client_set_cancel(rkv_client *c, bool (*cancelled)(void *arg), void *arg)
{
	c->cancelled = cancelled;
	c->cancel_arg = arg;
}

unsigned rkv_client_leader(const rkv_client *c)
{
	return c->answered;
}

unsigned rkv_client_nodes(rkv_client *c, unsigned *ids, unsigned cap)
{
	discover(c);
	unsigned n = c->nids < cap ? c->nids : cap;
	if (n)
		memcpy(ids, c->ids, n * sizeof(*ids));
	return n;
}

static conn *get_conn(rkv_client *c, unsigned id)
{
	for (unsigned i = 0; i < c->nconns; i++)
		if (c->conns[i]->id == id)
			return c->conns[i];
	conn **nc = realloc(c->conns, (c->nconns + 1) * sizeof(*nc));
	if (!nc)
		return NULL;
	c->conns = nc;
	conn *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->id = id;
	k->fd = -1;
	nc[c->nconns++] = k;
	return k;
}

/* Wait until fd is ready for events: IO_OK, IO_TIMEOUT or IO_CANCEL. */
static int wait_fd(const rkv_client *c, int fd, short events, double deadline)
{
	for (;;) {
		if (is_cancelled(c))
			return IO_CANCEL;
		double rem = deadline - kv_now();
		if (rem <= 0)
			return IO_TIMEOUT;
		int ms = rem * 1000 < POLL_SLICE_MS ? (int)ceil(rem * 1000) : POLL_SLICE_MS;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, ms);
		if (r > 0)
			return IO_OK;
		if (r < 0 && errno != EINTR)
			return IO_FAIL;
	}
}

static int io_error(int rc, int e, char *err, size_t errlen)
{
	switch (rc) {
	case IO_EOF:
		snprintf(err, errlen, "connection closed by the node");
		break;
	case IO_TIMEOUT:
		snprintf(err, errlen, "no answer in time");
		break;
	case IO_CANCEL:
		snprintf(err, errlen, "cancelled");
		break;
	default:
		snprintf(err, errlen, "%s", strerror(e));
		break;
	}
	return rc;
}

static int send_all(const rkv_client *c, conn *k, const char *buf, size_t len, double deadline,
		    char *err, size_t errlen)
{
	while (len > 0) {
		ssize_t n = send(k->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(c, k->fd, POLLOUT, deadline);
			if (rc)
				return io_error(rc, errno, err, errlen);
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return io_error(IO_EOF, 0, err, errlen);
		return io_error(IO_FAIL, errno, err, errlen);
	}
	return IO_OK;
}

/* Read one line (through its '\n') and append it to out; *got is set once any byte of the
 * response arrived. */
static int read_line(const rkv_client *c, conn *k, double deadline, rkv_buf *out, bool *got,
		     char *err, size_t errlen)
{
	size_t scanned = k->off;
	for (;;) {
		char *nl = k->len > scanned ? memchr(k->in + scanned, '\n', k->len - scanned)
					    : NULL;
		if (nl) {
			size_t n = (size_t)(nl + 1 - (k->in + k->off));
			if (rkv_buf_add(out, k->in + k->off, n))
				return io_error(IO_FAIL, ENOMEM, err, errlen);
			k->off += n;
			if (k->off == k->len)
				k->off = k->len = 0;
			return IO_OK;
		}
		scanned = k->len;
		if (k->len - k->off > LINE_CAP) {
			snprintf(err, errlen, "malformed response: a line longer than %u bytes",
				 LINE_CAP);
			return IO_PROTO;
		}
		if (k->off > 0) { /* keep the partial line at the start */
			memmove(k->in, k->in + k->off, k->len - k->off);
			k->len -= k->off;
			scanned -= k->off;
			k->off = 0;
		}
		if (k->cap - k->len < 4096) {
			size_t nc = k->cap ? 2 * k->cap : 16384;
			char *ni = realloc(k->in, nc);
			if (!ni)
				return io_error(IO_FAIL, ENOMEM, err, errlen);
			k->in = ni;
			k->cap = nc;
		}
		ssize_t n = recv(k->fd, k->in + k->len, k->cap - k->len, 0);
		if (n > 0) {
			k->len += (size_t)n;
			*got = true;
			continue;
		}
		if (n == 0)
			return io_error(IO_EOF, 0, err, errlen);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return io_error(errno == ECONNRESET ? IO_EOF : IO_FAIL, errno, err, errlen);
		int rc = wait_fd(c, k->fd, POLLIN, deadline);
		if (rc)
			return io_error(rc, errno, err, errlen);
	}
}

/* One response: a line, or for a scan its KV lines through the END line. Resumable after
 * IO_TIMEOUT: it goes on from what out already holds (a partial line stays in k->in). */
static int read_response(const rkv_client *c, conn *k, double deadline, rkv_buf *out,
			 bool *got, char *err, size_t errlen)
{
	int rc = out->len ? IO_OK : read_line(c, k, deadline, out, got, err, errlen);
	if (rc || strncmp(out->p, "KV ", 3))
		return rc;
	for (;;) {
		size_t at = out->len - 1; /* the start of the last line */
		while (at > 0 && out->p[at - 1] != '\n')
			at--;
		/* ERR is accepted as an end too: a node that fails mid-scan must not hang us */
		if (at > 0 && (!strncmp(out->p + at, "END ", 4) || !strncmp(out->p + at, "ERR", 3)))
			return IO_OK;
		if ((rc = read_line(c, k, deadline, out, got, err, errlen)))
			return rc;
	}
}

static int node_path(const rkv_client *c, unsigned id, char *path, size_t cap, char *err,
		     size_t errlen)
{
	int n;
	if (c->cluster && id > 0)
		n = snprintf(path, cap, "%s/n%u/%s", c->cluster, id, RKV_SOCK_NAME);
	else if (!c->cluster && id == 0)
		n = snprintf(path, cap, "%s", c->sock);
	else {
		snprintf(err, errlen, "no node %u %s", id,
			 c->cluster ? "(ids start at 1)" : "(no cluster directory given)");
		return -1;
	}
	struct sockaddr_un sa;
	if (n < 0 || (size_t)n >= cap || (size_t)n > sizeof(sa.sun_path) - 1) {
		snprintf(err, errlen, "socket path too long (%d bytes, at most %zu): %.200s", n,
			 sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	return 0;
}

/* Connect to k's node and, with a client id, say hello. */
static int conn_open(rkv_client *c, conn *k, double deadline, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[4200];
	if (node_path(c, k->id, path, sizeof(path), err, errlen))
		return IO_FAIL;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	k->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (k->fd < 0)
		return io_error(IO_FAIL, errno, err, errlen);
	if (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;
		conn_close(k);
		if (e == ENOENT)
			snprintf(err, errlen, "%s: no socket (node not running?)", path);
		else if (e == ECONNREFUSED)
			snprintf(err, errlen, "%s: connection refused (node not running?)", path);
		else if (e == EAGAIN)
			snprintf(err, errlen, "%s: node busy (connection backlog full)", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		return IO_EOF; /* like a dropped connection: the caller may try elsewhere */
	}
	if (!c->client_id)
		return IO_OK;
	char hello[40];
	int hl = snprintf(hello, sizeof(hello), "hello %" PRIx64 "\n", c->client_id);
	rkv_buf line = {0};
	bool got = false;
	int rc = send_all(c, k, hello, (size_t)hl, deadline, err, errlen);
	if (!rc)
		rc = read_line(c, k, deadline, &line, &got, err, errlen);
	if (!rc && strcmp(line.p, "OK\n")) {
		char sh[200];
		snprintf(err, errlen, "hello answered: %s",
			 show_line(line.p, line.len, sh, sizeof(sh)));
		rc = IO_PROTO;
	}
	free(line.p);
	if (rc)
		conn_close(k);
	return rc;
}

static int exchange(rkv_client *c, unsigned id, const char *req, size_t len, double deadline,
		    bool probe, unsigned *moved, rkv_buf *out, char *err, size_t errlen);

/* Whether another node knows a leader other than node id (its id), asking each briefly. */
static unsigned probe_leader(rkv_client *c, unsigned id)
{
	rkv_buf st = {0};
	unsigned found = 0;
	char err[256];
	for (unsigned i = 0; i < c->nids && !found; i++) {
		if (c->ids[i] == id || exchange(c, c->ids[i], "status\n", 7, kv_now() + PROBE_WAIT,
						false, NULL, &st, err, sizeof(err)))
			continue;
		const char *l = strstr(st.p, " leader=");
		uint64_t y;
		size_t n = l ? strspn(l + 8, "0123456789") : 0;
		if (!strncmp(st.p, "STATUS ", 7) && n && !kv_parse_digits(l + 8, n, &y) &&
		    y != id && y <= 0xFFFFFFFFu)
			found = (unsigned)y;
	}
	free(st.p);
	return found;
}

/* Send req to node id and read its response into out. A connection that already served a
 * request and fails before any byte of the answer arrived may just have gone stale (the
 * node restarted): it is reopened and the request sent once more — safe, as writes carry
 * their SEQ and reads change nothing. With probe, an answer that is late (PROBE_EVERY) makes
 * it ask the other nodes who leads: if they name another node, the request is abandoned
 * (IO_MOVED, *moved that node) — a stopped leader must not hold the caller until the
 * deadline while a new one serves. */
static int exchange(rkv_client *c, unsigned id, const char *req, size_t len, double deadline,
		    bool probe, unsigned *moved, rkv_buf *out, char *err, size_t errlen)
{
	conn *k = get_conn(c, id);
	if (!k)
		return io_error(IO_FAIL, ENOMEM, err, errlen);
	for (int attempt = 0;; attempt++) {
		bool reused = k->fd >= 0 && k->used;
		if (k->fd < 0) {
			/* a live node answers hello at once */
			double h = kv_now() + HELLO_WAIT;
			int rc = conn_open(c, k, h < deadline ? h : deadline, err, errlen);
			if (rc)
				return rc;
		}
		bool got = false;
		out->len = 0;
		int rc = send_all(c, k, req, len, deadline, err, errlen);
		while (!rc) {
			double stage = probe ? kv_now() + PROBE_EVERY : deadline;
			double until = stage < deadline ? stage : deadline;
			rc = read_response(c, k, until, out, &got, err, errlen);
			if (rc != IO_TIMEOUT || kv_now() >= deadline)
				break;
			unsigned y = probe_leader(c, id);
			if (y && moved) { /* (moved is NULL only without probe, never here) */
				*moved = y;
				snprintf(err, errlen, "no answer; n%u leads now", y);
				rc = IO_MOVED;
			} else {
				rc = IO_OK; /* wait on */
			}
		}
		if (!rc) {
			k->used = true;
			if (k->len > k->off) /* bytes nobody asked for: resynchronise */
				conn_close(k);
			return IO_OK;
		}
		conn_close(k);
		if (!(reused && attempt == 0 && !got && rc == IO_EOF))
			return rc;
	}
}

int rkv_client_call_node(rkv_client *c, unsigned id, const char *req, size_t len,
			 double timeout_s, char **resp, char *err, size_t errlen)
{
	rkv_buf out = {0};
	*resp = NULL;
	int rc = exchange(c, id, req, len, kv_now() + timeout_s, false, NULL, &out, err, errlen);
	if (rc) {
		free(out.p);
		return -1;
	}
	*resp = out.p;
	return 0;
}

/* The next node in turn (0 when there is none); the directory is scanned again whenever the
 * turn wraps around. */
static unsigned next_node(rkv_client *c)
{
	if (!c->cluster)
		return 0;
	if (c->nids == 0 || c->rr >= c->nids) {
		discover(c);
		c->rr = 0;
	}
	if (c->nids == 0)
		return 0;
	return c->ids[c->rr++];
}

/* "NOTLEADER ID": the id (0 when unknown or malformed). */
static unsigned notleader_id(const char *line)
{
	uint64_t id;
	const char *nl = strchr(line, '\n');
	size_t n = nl ? (size_t)(nl - line) : strlen(line);
	if (n <= 10 || kv_parse_digits(line + 10, n - 10, &id) || id > 0xFFFFFFFFu)
		return 0;
	return (unsigned)id;
}

int rkv_client_call(rkv_client *c, const char *req, size_t len, double timeout_s,
		    char **resp, unsigned *redirects, char *err, size_t errlen)
{
	double deadline = kv_now() + timeout_s, backoff = BACKOFF_FIRST;
	bool need_backoff = false, via_hint = false;
	char last[512] = "no node was asked";
	rkv_buf out = {0};
	*resp = NULL;
	for (;;) {
		if (is_cancelled(c)) {
			snprintf(err, errlen, "cancelled (last: %s)", last);
			break;
		}
		if (need_backoff) {
			if (kv_now() + backoff >= deadline) {
				snprintf(err, errlen, "timed out after %.1f s (last: %s)",
					 timeout_s, last);
				break;
			}
			if (nap(c, backoff))
				continue; /* reports the cancellation above */
			backoff = backoff * 2 < BACKOFF_MAX ? backoff * 2 : BACKOFF_MAX;
			need_backoff = false;
		}
		double now = kv_now();
		if (now >= deadline) {
			snprintf(err, errlen, "timed out after %.1f s (last: %s)", timeout_s, last);
			break;
		}
		unsigned id = c->leader ? c->leader : next_node(c);
		if (c->cluster && id == 0) {
			snprintf(last, sizeof(last), "no node sockets found in %s", c->cluster);
			need_backoff = true;
			continue;
		}
		char msg[400], sh[200];
		double until = now + ATTEMPT_MAX < deadline ? now + ATTEMPT_MAX : deadline;
		unsigned moved = 0;
		int rc = exchange(c, id, req, len, until, c->cluster != NULL, &moved, &out, msg,
				  sizeof(msg));
		if (rc == IO_CANCEL) {
			snprintf(err, errlen, "cancelled");
			break;
		}
		if (rc == IO_MOVED) { /* resent to the new leader at once */
			snprintf(last, sizeof(last), "n%u: %s", id, msg);
			c->leader = moved;
			via_hint = true;
			if (redirects)
				++*redirects;
			continue;
		}
		if (rc) {
			snprintf(last, sizeof(last), "n%u: %s", id, msg);
			c->leader = 0;
			via_hint = false;
			need_backoff = true;
			if (redirects)
				++*redirects;
			continue;
		}
		if (!strncmp(out.p, "NOTLEADER", 9) && (out.p[9] == ' ' || out.p[9] == '\n')) {
			unsigned hint = notleader_id(out.p);
			snprintf(last, sizeof(last), "n%u: %s", id,
				 show_line(out.p, out.len, sh, sizeof(sh)));
			if (redirects)
				++*redirects;
			if (!c->cluster && hint) {
				snprintf(err, errlen, "the node is not the leader (n%u is; give "
					 "the cluster directory to follow it)", hint);
				break;
			}
			need_backoff = hint == 0 || hint == id || via_hint;
			c->leader = hint == id ? 0 : hint;
			via_hint = c->leader != 0;
			continue;
		}
		if (!strncmp(out.p, "RETRY", 5) && (out.p[5] == ' ' || out.p[5] == '\n')) {
			snprintf(last, sizeof(last), "n%u: %s", id,
				 show_line(out.p, out.len, sh, sizeof(sh)));
			if (redirects)
				++*redirects;
			c->leader = 0;
			via_hint = false;
			need_backoff = true;
			continue;
		}
		c->leader = id;
		c->answered = id;
		*resp = out.p;
		return 0;
	}
	free(out.p);
	return -1;
}
