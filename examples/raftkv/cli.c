/*
 * cli.c — raftkv's one-shot client commands: put, get, del, sget, scan, sscan, barrier,
 * status, digest, add, remove, txn, help (README "The line protocol" for what each asks of
 * a node; client.c does the talking).
 *
 * Arguments are %HH text as in kvstore: each is decoded first (a bad escape is a usage
 * error) and encoded again for the wire, so what reaches the node is always the canonical
 * form and any byte string can be given. Output values are decoded from the wire and
 * printed with kv_encode, exactly as `kvstore get` / `kvstore scan` print them.
 *
 * Writes (put, del, txn) use a fresh random client id and SEQ 1: the text is built once and
 * rkv_client_call resends it unchanged after a RETRY or a lost connection, so a write that
 * outlives a leader change is applied once. Reads and administrative commands use no
 * client id (no hello).
 *
 * rkv_scan_pages (used by scan, sscan and stress.c's check) pages through a range: each
 * page restarts just after the last key received (that key + "\0", sent as %00), and the
 * pairs must come in ascending order inside the range or the paging would skip or repeat.
 * Pages shrink while responses run over PAGE_BYTES (long values), as node and client each
 * hold a whole response.
 *
 * Exit codes (raftkv.h): 0 ok, 1 not found, 2 usage, 3 error / timeout / no leader; every
 * error is one line `raftkv: ...` on stderr. Single-threaded.
 */
#define _GNU_SOURCE
#include "raftkv.h"
#include "kvstore.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT 10.0
#define SCAN_PAGE 1000u
#define PAGE_BYTES (16u << 20) /* about the largest scan response wanted */
#define MAX_NODES 256u

static const char client_usage[] =
	"client commands (raftkv -c CLUSTER | -s SOCKET COMMAND ...; each takes --timeout S,\n"
	"default 10 s; keys and values are %HH text as in kvstore):\n"
	"  put K V                 store V under K (OK once committed and applied)\n"
	"  get K                   print the value of K, linearizable (exit 1 if absent)\n"
	"  del K                   remove K (exit 1 if absent)\n"
	"  sget [--node ID] K      the value from one node's store (the first reachable, or\n"
	"                          node ID), possibly stale\n"
	"  scan [START [END]] [--limit N]\n"
	"                          print KEY<TAB>VALUE for START <= key < END through the leader\n"
	"                          (each page of 1000 linearizable on its own)\n"
	"  sscan [--node ID] [START [END]] [--limit N]\n"
	"                          the same from one node's store, possibly stale\n"
	"  barrier                 wait until everything committed is applied on the leader\n"
	"  status                  one line per node: n<ID>: STATUS ... (exit 3 without a leader)\n"
	"  digest                  one line per node: n<ID>: DIGEST applied=A keys=N hash=H\n"
	"  add ID ADDRESS          add node ID (ADDRESS 127.0.0.1:PORT) as a voter\n"
	"  remove ID               remove node ID\n"
	"  transfer [ID]           hand the leadership to node ID (none: one raft picks)\n"
	"  txn                     read `put K V` / `del K` lines from stdin and apply them as\n"
	"                          one transaction (at most 10000)\n"
	"  help                    this text\n";

/* ---- scans ------------------------------------------------------------------------------- */

/* Append a scan bound: "-" is the protocol's "unbounded", so a key that encodes to exactly
 * "-" is written %2D instead. */
static int add_bound(rkv_buf *b, const void *key, size_t n, bool unbounded)
{
	if (unbounded)
		return rkv_buf_add(b, "-", 1);
	if (n == 1 && *(const char *)key == '-')
		return rkv_buf_add(b, "%2D", 3);
	return rkv_buf_enc(b, key, n);
}

int rkv_key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r ? r : (al > bl) - (al < bl);
}

/* Split "KEY VALUE" (one field each, the value possibly empty) and decode both in place. */
static int split_pair(char *s, size_t n, char **k, size_t *kl, char **v, size_t *vl)
{
	char *sp = memchr(s, ' ', n);
	size_t klen = sp ? (size_t)(sp - s) : n;
	char *val = sp ? sp + 1 : s + n;
	size_t vlen = sp ? n - klen - 1 : 0;
	if (memchr(val, ' ', vlen) || rkv_unescape(s, klen, kl) || rkv_unescape(val, vlen, vl))
		return -1;
	*k = s;
	*v = val;
	return 0;
}

int rkv_scan_pages(rkv_client *c, bool stale, unsigned node, const void *start, size_t sl,
		   const void *end, size_t el, uint64_t limit, unsigned page, double timeout_s,
		   rkv_pair_fn fn, void *arg, uint64_t *count, char *err, size_t errlen)
{
	rkv_buf req = {0}, from = {0}, last = {0};
	char *resp = NULL, sh[200];
	int rc = 0;
	uint64_t total = 0;
	bool first_page = true;
	if (count)
		*count = 0;
	if ((end && el == 0) || limit == 0)
		return 0; /* keys below the empty key: none */
	if (page == 0 || page > 100000)
		page = 100000;
	unsigned cur = page;
	if (rkv_buf_add(&from, start, start ? sl : 0))
		goto oom;
	for (;;) {
		uint64_t want = limit - total < cur ? limit - total : cur;
		req.len = 0;
		if (rkv_buf_printf(&req, "%s ", stale ? "sscan" : "scan") ||
		    add_bound(&req, from.p, from.len, from.len == 0 && first_page) ||
		    rkv_buf_add(&req, " ", 1) || add_bound(&req, end, el, end == NULL) ||
		    rkv_buf_printf(&req, " %" PRIu64 "\n", want))
			goto oom;
		if (stale ? rkv_client_call_node(c, node, req.p, req.len, timeout_s, &resp, err,
						 errlen)
			  : rkv_client_call(c, req.p, req.len, timeout_s, &resp, NULL, err,
					    errlen)) {
			rc = -1;
			goto out;
		}
		/* KV lines, then END N */
		uint64_t got = 0, n_end;
		char *p = resp;
		for (;;) {
			char *nl = strchr(p, '\n');
			if (!nl) {
				snprintf(err, errlen, "malformed scan response (no END line)");
				rc = -1;
				goto out;
			}
			size_t ll = (size_t)(nl - p);
			if (ll > 4 && !strncmp(p, "END ", 4)) {
				if (kv_parse_digits(p + 4, ll - 4, &n_end) || n_end != got ||
				    nl[1] != 0) {
					rkv_show(p, ll, sh, sizeof(sh));
					snprintf(err, errlen, "malformed scan response: %s after "
						 "%" PRIu64 " pairs", sh, got);
					rc = -1;
					goto out;
				}
				break;
			}
			char *k, *v;
			size_t kl, vl;
			if (ll < 3 || strncmp(p, "KV ", 3) ||
			    split_pair(p + 3, ll - 3, &k, &kl, &v, &vl)) {
				bool refused = !strncmp(p, "ERR", 3) || !strncmp(p, "NOTLEADER", 9);
				snprintf(err, errlen, "%s: %s",
					 refused ? "scan refused" : "malformed scan response",
					 rkv_show(p, ll, sh, sizeof(sh)));
				rc = -1;
				goto out;
			}
			/* ascending and inside the range, or the paging would be wrong */
			if ((total + got > 0 && rkv_key_cmp(k, kl, last.p, last.len) <= 0) ||
			    (end && rkv_key_cmp(k, kl, end, el) >= 0) ||
			    rkv_key_cmp(k, kl, from.p, from.len) < 0) {
				snprintf(err, errlen, "malformed scan response: key %s out of "
					 "order or out of range", rkv_show(k, kl, sh, sizeof(sh)));
				rc = -1;
				goto out;
			}
			last.len = 0;
			if (rkv_buf_add(&last, k, kl))
				goto oom;
			got++;
			if (got > want) {
				snprintf(err, errlen, "malformed scan response: too many pairs");
				rc = -1;
				goto out;
			}
			if ((rc = fn(arg, k, kl, v, vl)))
				goto out;
			p = nl + 1;
		}
		total += got;
		if (count)
			*count = total;
		/* large values: smaller pages keep a response (held whole by node and client)
		 * near PAGE_BYTES; small ones: back to the caller's page size */
		size_t bytes = (size_t)(p - resp);
		if (bytes > PAGE_BYTES && cur > 1)
			cur = cur / 4 ? cur / 4 : 1;
		else if (bytes < PAGE_BYTES / 4 && cur < page)
			cur = 2 * cur < page ? 2 * cur : page;
		free(resp);
		resp = NULL;
		if (got < want || total >= limit)
			break;
		/* the next page starts just after the last key: last key + "\0" */
		from.len = 0;
		if (rkv_buf_add(&from, last.p, last.len) || rkv_buf_add(&from, "", 1))
			goto oom;
		first_page = false;
	}
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	rc = -1;
out:
	free(resp);
	free(req.p);
	free(from.p);
	free(last.p);
	return rc;
}

/* The options and positional arguments of one command. */
typedef struct cmdline {
	const char *name;
	double timeout;
	unsigned node;    /* --node ID, 0: not given */
	uint64_t limit;   /* --limit N */
	char *pos[4];
	int npos;
} cmdline;

/* Parse --timeout (every command), --node (sget, sscan) and --limit (scan, sscan) anywhere
 * before a "--"; the rest are positional. 0, or a usage exit code (printed). */
static int parse_cmdline(int argc, char **argv, bool node_ok, bool limit_ok, int maxpos,
			 cmdline *cl)
{
	memset(cl, 0, sizeof(*cl));
	cl->name = argv[0];
	cl->timeout = DEFAULT_TIMEOUT;
	cl->limit = UINT64_MAX;
	bool opts = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (opts && !strcmp(a, "--")) {
			opts = false;
			continue;
		}
		if (opts && a[0] == '-' && a[1] == '-') {
			const char *v = i + 1 < argc ? argv[i + 1] : NULL;
			uint64_t n;
			if (!v)
				return rkv_say(RKV_EXIT_USAGE, "%s: %s needs a value", cl->name, a);
			if (!strcmp(a, "--timeout")) {
				if (kv_parse_seconds(v, &cl->timeout) || cl->timeout <= 0)
					return rkv_say(RKV_EXIT_USAGE, "%s: --timeout takes seconds "
						   "> 0", cl->name);
			} else if (node_ok && !strcmp(a, "--node")) {
				if (kv_parse_u64(v, &n) || n == 0 || n > 0xFFFFFFFFu)
					return rkv_say(RKV_EXIT_USAGE, "%s: --node takes a node id "
						   "(1..)", cl->name);
				cl->node = (unsigned)n;
			} else if (limit_ok && !strcmp(a, "--limit")) {
				if (kv_parse_u64(v, &cl->limit))
					return rkv_say(RKV_EXIT_USAGE, "%s: --limit takes a number",
						   cl->name);
			} else {
				return rkv_say(RKV_EXIT_USAGE, "%s: unknown option %s (raftkv help)",
					   cl->name, a);
			}
			i++;
			continue;
		}
		if (cl->npos >= maxpos)
			return rkv_say(RKV_EXIT_USAGE, "%s: too many arguments (raftkv help)",
				   cl->name);
		cl->pos[cl->npos++] = argv[i];
	}
	return 0;
}

/* Decode a %HH argument; a bad escape or a key/value over the limits is a usage error. */
static int arg_decode(const cmdline *cl, const char *what, const char *s, size_t max,
		      char **out, size_t *len)
{
	if (kv_decode(s, out, len))
		return rkv_say(RKV_EXIT_USAGE, "%s: bad %%HH escape in %s: %s", cl->name, what, s);
	if (*len > max) {
		free(*out);
		*out = NULL;
		return rkv_say(RKV_EXIT_USAGE, "%s: %s too long (%zu bytes, at most %zu)", cl->name,
			   what, *len, max);
	}
	return 0;
}

static int open_client(const char *cluster, const char *sock, uint64_t id, rkv_client **c)
{
	char err[512];
	if (!cluster && !sock)
		return rkv_say(RKV_EXIT_USAGE, "no cluster (-c DIR) or node socket (-s SOCKET) given");
	if (rkv_client_open(cluster, sock, id, c, err, sizeof(err)))
		return rkv_say(RKV_EXIT_FAIL, "%s", err);
	return 0;
}

/* The first line of a response without its newline, for messages. */
static const char *shown(const char *r, char *buf, size_t cap)
{
	const char *nl = strchr(r, '\n');
	return rkv_show(r, nl ? (size_t)(nl - r) : strlen(r), buf, cap);
}

/* A response the command did not expect: ERR's message, or the response itself. */
static int bad_response(const cmdline *cl, const char *r)
{
	char sh[300];
	if (!strncmp(r, "ERR ", 4))
		return rkv_say(RKV_EXIT_FAIL, "%s: %s", cl->name, shown(r + 4, sh, sizeof(sh)));
	return rkv_say(RKV_EXIT_FAIL, "%s: unexpected response: %s", cl->name,
		   shown(r, sh, sizeof(sh)));
}

/* Print "VALUE V" as kvstore get does. 0, or an exit code. */
static int print_value(const cmdline *cl, char *r)
{
	if (!strcmp(r, "NOTFOUND\n"))
		return RKV_EXIT_NOTFOUND;
	size_t n = strlen(r), vl;
	if (n < 6 || strncmp(r, "VALUE", 5) || (r[5] != ' ' && r[5] != '\n') || r[n - 1] != '\n')
		return bad_response(cl, r);
	char *v = r[5] == ' ' ? r + 6 : r + 5, sh[300];
	size_t en = (size_t)(r + n - 1 - v);
	shown(r, sh, sizeof(sh)); /* before the decoding changes it */
	if (memchr(v, ' ', en) || rkv_unescape(v, en, &vl))
		return rkv_say(RKV_EXIT_FAIL, "%s: malformed response: %s", cl->name, sh);
	kv_encode(stdout, v, vl);
	putchar('\n');
	return RKV_EXIT_OK;
}

/* One request through the leader; the response, or NULL (printed). */
static char *leader_call(rkv_client *c, const cmdline *cl, const char *req, size_t len)
{
	char *r, err[1024];
	if (rkv_client_call(c, req, len, cl->timeout, &r, NULL, err, sizeof(err))) {
		rkv_say(RKV_EXIT_FAIL, "%s: %s", cl->name, err);
		return NULL;
	}
	return r;
}

static int cmd_write(const char *cluster, const char *sock, cmdline *cl, bool put)
{
	char *k = NULL, *v = NULL;
	size_t kl, vl;
	rkv_buf req = {0};
	rkv_client *c = NULL;
	int code;
	if (cl->npos != (put ? 2 : 1))
		return rkv_say(RKV_EXIT_USAGE, "%s takes %s (raftkv help)", cl->name,
			   put ? "KEY VALUE" : "KEY");
	if ((code = arg_decode(cl, "key", cl->pos[0], RKV_KEY_MAX, &k, &kl)) ||
	    (put && (code = arg_decode(cl, "value", cl->pos[1], RKV_VALUE_MAX, &v, &vl))))
		goto out;
	/* built once: every resend carries the same SEQ */
	if (rkv_buf_printf(&req, "%s 1 ", put ? "put" : "del") || rkv_buf_enc(&req, k, kl) ||
	    (put && (rkv_buf_add(&req, " ", 1) || rkv_buf_enc(&req, v, vl))) ||
	    rkv_buf_add(&req, "\n", 1)) {
		code = rkv_say(RKV_EXIT_FAIL, "%s: out of memory", cl->name);
		goto out;
	}
	if ((code = open_client(cluster, sock, rkv_random_id(), &c)))
		goto out;
	char *r = leader_call(c, cl, req.p, req.len);
	if (!r) {
		code = RKV_EXIT_FAIL;
	} else {
		code = !strcmp(r, "OK\n")		 ? RKV_EXIT_OK
		       : !put && !strcmp(r, "NOTFOUND\n") ? RKV_EXIT_NOTFOUND
							  : bad_response(cl, r);
		free(r);
	}
out:
	rkv_client_close(c);
	free(req.p);
	free(k);
	free(v);
	return code;
}

/* The first node (sorted ids) that answers req, or node cl->node only. 0 and *resp, or an
 * exit code (printed). *who: the node that answered. */
static int any_node_call(rkv_client *c, const cmdline *cl, const char *req, size_t len,
			 char **resp, unsigned *who)
{
	unsigned ids[MAX_NODES], n = 0;
	char err[1024] = "no nodes found";
	if (cl->node)
		ids[n++] = cl->node;
	else
		n = rkv_client_nodes(c, ids, MAX_NODES);
	for (unsigned i = 0; i < n; i++) {
		if (!rkv_client_call_node(c, ids[i], req, len, cl->timeout, resp, err,
					  sizeof(err))) {
			*who = ids[i];
			return 0;
		}
	}
	return rkv_say(RKV_EXIT_FAIL, "%s: %s%s", cl->name, n > 1 ? "no node reachable; last: " : "",
		   err);
}

static int cmd_get(const char *cluster, const char *sock, cmdline *cl, bool stale)
{
	char *k = NULL, *r = NULL;
	size_t kl;
	rkv_buf req = {0};
	rkv_client *c = NULL;
	unsigned who;
	int code;
	if (cl->npos != 1)
		return rkv_say(RKV_EXIT_USAGE, "%s takes KEY (raftkv help)", cl->name);
	if ((code = arg_decode(cl, "key", cl->pos[0], RKV_KEY_MAX, &k, &kl)))
		return code;
	if (rkv_buf_add(&req, stale ? "sget " : "get ", stale ? 5 : 4) ||
	    rkv_buf_enc(&req, k, kl) || rkv_buf_add(&req, "\n", 1))
		code = rkv_say(RKV_EXIT_FAIL, "%s: out of memory", cl->name);
	else if (!(code = open_client(cluster, sock, 0, &c))) {
		if (stale)
			code = any_node_call(c, cl, req.p, req.len, &r, &who);
		else if (!(r = leader_call(c, cl, req.p, req.len)))
			code = RKV_EXIT_FAIL;
		if (!code)
			code = print_value(cl, r);
	}
	free(r);
	rkv_client_close(c);
	free(req.p);
	free(k);
	return code;
}

typedef struct scan_print {
	uint64_t printed;
} scan_print;

static int print_pair(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	scan_print *sp = arg;
	kv_encode(stdout, k, kl);
	putchar('\t');
	kv_encode(stdout, v, vl);
	putchar('\n');
	sp->printed++;
	return 0;
}

static int cmd_scan(const char *cluster, const char *sock, cmdline *cl, bool stale)
{
	char *start = NULL, *end = NULL, err[1024];
	size_t sl = 0, el = 0;
	rkv_client *c = NULL;
	int code = 0;
	if ((cl->npos > 0 && (code = arg_decode(cl, "START", cl->pos[0], RKV_KEY_MAX, &start,
						 &sl))) ||
	    (cl->npos > 1 && (code = arg_decode(cl, "END", cl->pos[1], RKV_KEY_MAX, &end, &el))))
		goto out;
	if ((code = open_client(cluster, sock, 0, &c)))
		goto out;
	scan_print sp = {0};
	if (!stale) {
		if (rkv_scan_pages(c, false, 0, start, sl, end, el, cl->limit, SCAN_PAGE,
				   cl->timeout, print_pair, &sp, NULL, err, sizeof(err)))
			code = rkv_say(RKV_EXIT_FAIL, "%s: %s", cl->name, err);
		goto out;
	}
	/* stale: node --node, or the first node that answers (only until something was
	 * printed: the pages of one scan come from one node) */
	unsigned ids[MAX_NODES], n = 0;
	if (cl->node)
		ids[n++] = cl->node;
	else
		n = rkv_client_nodes(c, ids, MAX_NODES);
	for (unsigned i = 0; i < n; i++) {
		if (!rkv_scan_pages(c, true, ids[i], start, sl, end, el, cl->limit, SCAN_PAGE,
				    cl->timeout, print_pair, &sp, NULL, err, sizeof(err)))
			break;
		if (sp.printed > 0 || i + 1 == n) {
			code = rkv_say(RKV_EXIT_FAIL, "%s: %sn%u: %s", cl->name,
				   n > 1 && !sp.printed ? "no node reachable; last: " : "", ids[i],
				   err);
			break;
		}
	}
	if (n == 0)
		code = rkv_say(RKV_EXIT_FAIL, "%s: no nodes found", cl->name);
out:
	rkv_client_close(c);
	free(start);
	free(end);
	return code;
}

/* status / digest: the same request to every node, one line each. */
static int cmd_every_node(const char *cluster, const char *sock, cmdline *cl, bool status)
{
	rkv_client *c = NULL;
	int code;
	if (cl->npos != 0)
		return rkv_say(RKV_EXIT_USAGE, "%s takes no arguments (raftkv help)", cl->name);
	if ((code = open_client(cluster, sock, 0, &c)))
		return code;
	unsigned ids[MAX_NODES];
	unsigned n = rkv_client_nodes(c, ids, MAX_NODES);
	bool leader = false, all = n > 0;
	const char *req = status ? "status\n" : "digest\n";
	const char *want = status ? "STATUS " : "DIGEST ";
	for (unsigned i = 0; i < n; i++) {
		char *r, err[1024], name[32], sh[1024];
		if (ids[i])
			snprintf(name, sizeof(name), "n%u", ids[i]);
		else
			snprintf(name, sizeof(name), "node");
		if (rkv_client_call_node(c, ids[i], req, strlen(req), cl->timeout, &r, err,
					 sizeof(err))) {
			printf("%s: unreachable: %s\n", name, err);
			all = false;
			continue;
		}
		printf("%s: %s\n", name, shown(r, sh, sizeof(sh)));
		if (strncmp(r, want, strlen(want)))
			all = false;
		else if (status && strstr(r, " state=leader"))
			leader = true;
		free(r);
	}
	rkv_client_close(c);
	if (n == 0)
		return rkv_say(RKV_EXIT_FAIL, "%s: no nodes found in %s", cl->name,
			   cluster ? cluster : sock);
	if (status && !leader)
		return rkv_say(RKV_EXIT_FAIL, "%s: no node is the leader", cl->name);
	if (!status && !all)
		return rkv_say(RKV_EXIT_FAIL, "%s: not every node answered", cl->name);
	return RKV_EXIT_OK;
}

/* Send req through the leader; an exit code: 0 for OK, else what bad_response says. */
static int call_ok(rkv_client *c, const cmdline *cl, const rkv_buf *req)
{
	char *r = leader_call(c, cl, req->p, req->len);
	int code = !r ? RKV_EXIT_FAIL : !strcmp(r, "OK\n") ? RKV_EXIT_OK : bad_response(cl, r);
	free(r);
	return code;
}

/* barrier, add ID ADDRESS, remove ID, transfer [ID]: a request through the leader
 * answered OK. */
static int cmd_admin(const char *cluster, const char *sock, cmdline *cl)
{
	rkv_buf req = {0};
	rkv_client *c = NULL;
	uint64_t id = 0;
	int code;
	if (!strcmp(cl->name, "barrier")) {
		if (cl->npos != 0)
			return rkv_say(RKV_EXIT_USAGE, "barrier takes no arguments (raftkv help)");
		code = rkv_buf_add(&req, "barrier\n", 8);
	} else if (!strcmp(cl->name, "transfer")) {
		if (cl->npos > 1 || (cl->npos == 1 && (kv_parse_u64(cl->pos[0], &id) || id == 0 ||
						       id > 0xFFFFFFFFu)))
			return rkv_say(RKV_EXIT_USAGE, "transfer takes an optional node id (raftkv help)");
		code = rkv_buf_printf(&req, "transfer %" PRIu64 "\n", id);
	} else {
		bool add = !strcmp(cl->name, "add");
		if (cl->npos != (add ? 2 : 1))
			return rkv_say(RKV_EXIT_USAGE, "%s takes %s (raftkv help)", cl->name,
				   add ? "ID ADDRESS" : "ID");
		if (kv_parse_u64(cl->pos[0], &id) || id == 0 || id > 0xFFFFFFFFu)
			return rkv_say(RKV_EXIT_USAGE, "%s: bad node id %s", cl->name, cl->pos[0]);
		if (add) {
			const char *a = cl->pos[1];
			/* sent as it is: it must be one field of printable text */
			for (const char *p = a; *p; p++)
				if (*p <= ' ' || *p >= 0x7f || *p == '%')
					return rkv_say(RKV_EXIT_USAGE, "add: bad address %s", a);
			if (!*a)
				return rkv_say(RKV_EXIT_USAGE, "add: empty address");
			code = rkv_buf_printf(&req, "add %" PRIu64 " %s\n", id, a);
		} else {
			code = rkv_buf_printf(&req, "remove %" PRIu64 "\n", id);
		}
	}
	if (code)
		return rkv_say(RKV_EXIT_FAIL, "%s: out of memory", cl->name);
	if (!(code = open_client(cluster, sock, 0, &c)))
		code = call_ok(c, cl, &req);
	rkv_client_close(c);
	free(req.p);
	return code;
}

/* One stdin line of txn, "put K V" or "del K", appended to ops in canonical form. */
static int txn_line(const cmdline *cl, char *line, unsigned long lineno, rkv_buf *ops)
{
	char *f[4] = {NULL, NULL, NULL, NULL}; /* gcc -O3 cannot see nf guards f[2] */
	int nf = 0;
	for (char *p = line;;) { /* single-space separated: a field may be empty */
		if (nf == 4)
			return rkv_say(RKV_EXIT_USAGE, "txn: line %lu: too many fields", lineno);
		f[nf++] = p;
		char *sp = strchr(p, ' ');
		if (!sp)
			break;
		*sp = 0;
		p = sp + 1;
	}
	bool put = !strcmp(f[0], "put");
	if (!(put && nf == 3) && !(!strcmp(f[0], "del") && nf == 2))
		return rkv_say(RKV_EXIT_USAGE, "txn: line %lu: expected `put K V` or `del K`", lineno);
	char *k = NULL, *v = NULL;
	size_t kl, vl = 0;
	int code = arg_decode(cl, "key", f[1], RKV_KEY_MAX, &k, &kl);
	if (!code && put)
		code = arg_decode(cl, "value", f[2], RKV_VALUE_MAX, &v, &vl);
	if (!code && (rkv_buf_add(ops, put ? "put " : "del ", 4) || rkv_buf_enc(ops, k, kl) ||
		      (put && (rkv_buf_add(ops, " ", 1) || rkv_buf_enc(ops, v, vl))) ||
		      rkv_buf_add(ops, "\n", 1)))
		code = rkv_say(RKV_EXIT_FAIL, "txn: out of memory");
	free(k);
	free(v);
	return code;
}

static int cmd_txn(const char *cluster, const char *sock, cmdline *cl)
{
	if (cl->npos != 0)
		return rkv_say(RKV_EXIT_USAGE, "txn takes no arguments; it reads stdin (raftkv help)");
	rkv_buf ops = {0}, req = {0};
	rkv_client *c = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0, nops = 0;
	int code = 0;
	while (!code && (n = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		if (n == 0)
			continue;
		if (++nops > RKV_TXN_OPS_MAX)
			code = rkv_say(RKV_EXIT_USAGE, "txn: more than %u operations", RKV_TXN_OPS_MAX);
		else
			code = txn_line(cl, line, lineno, &ops);
	}
	free(line);
	if (!code && ferror(stdin))
		code = rkv_say(RKV_EXIT_FAIL, "txn: reading stdin failed");
	if (!code && nops == 0)
		code = rkv_say(RKV_EXIT_USAGE, "txn: no operations on stdin");
	if (!code && (rkv_buf_printf(&req, "txn 1 %lu\n", nops) ||
		      rkv_buf_add(&req, ops.p, ops.len)))
		code = rkv_say(RKV_EXIT_FAIL, "txn: out of memory");
	if (!code && !(code = open_client(cluster, sock, rkv_random_id(), &c)))
		code = call_ok(c, cl, &req);
	rkv_client_close(c);
	free(ops.p);
	free(req.p);
	return code;
}

int rkv_cmd_client(const char *cluster, const char *sock, int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "help") || !strcmp(argv[0], "--help")) {
		fputs(client_usage, stdout);
		return RKV_EXIT_OK;
	}
	const char *cmd = argv[0];
	bool node_ok = !strcmp(cmd, "sget") || !strcmp(cmd, "sscan");
	bool limit_ok = !strcmp(cmd, "scan") || !strcmp(cmd, "sscan");
	static const char *const known[] = {"put", "get", "del", "sget", "scan", "sscan",
					    "barrier", "status", "digest", "add", "remove", "txn",
					    "transfer"};
	bool found = false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		found |= !strcmp(cmd, known[i]);
	if (!found)
		return rkv_say(RKV_EXIT_USAGE, "unknown command %s (raftkv help)", cmd);
	cmdline cl;
	int code = parse_cmdline(argc, argv, node_ok, limit_ok, 4, &cl);
	if (code)
		return code;
	if (limit_ok && cl.npos > 2)
		return rkv_say(RKV_EXIT_USAGE, "%s takes at most START and END (raftkv help)", cmd);
	if (!strcmp(cmd, "put") || !strcmp(cmd, "del"))
		code = cmd_write(cluster, sock, &cl, cmd[0] == 'p');
	else if (!strcmp(cmd, "get") || !strcmp(cmd, "sget"))
		code = cmd_get(cluster, sock, &cl, cmd[0] == 's');
	else if (limit_ok)
		code = cmd_scan(cluster, sock, &cl, cmd[1] == 's');
	else if (!strcmp(cmd, "status") || !strcmp(cmd, "digest"))
		code = cmd_every_node(cluster, sock, &cl, cmd[0] == 's');
	else if (!strcmp(cmd, "txn"))
		code = cmd_txn(cluster, sock, &cl);
	else
		code = cmd_admin(cluster, sock, &cl);
	if (fflush(stdout) && code == RKV_EXIT_OK)
		code = rkv_say(RKV_EXIT_FAIL, "%s: writing the output failed", cmd);
	return code;
}
