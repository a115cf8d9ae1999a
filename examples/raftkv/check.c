/*
 * check.c — `raftkv check`: every node reachable, all at one applied index with equal
 * digests, and the acknowledgements of `raftkv stress` (stress.c) kept by every node.
 *
 * check: after a barrier through the leader, waits until every node holds the same applied
 * index, at least the leader's after the barrier (polled with `status`, which costs a node
 * nothing, then confirmed by every `digest`, which reads the whole tree); the digests must
 * agree. With an ack file, the rules of kvstore's check-acks 1-3 (check_acks.c: MISSING,
 * WRONG, PARTIAL, CORRUPT; no transfers) hold on every node: its keys, read with `sscan` in
 * pages of 1000, merged with the acknowledgements sorted by key and with the members of the
 * acknowledged batches. The per-node line's key count is the digest's; a scan that saw
 * another count means the store changed during the check (a violation).
 *
 * Threads: single-threaded.
 */
#define _GNU_SOURCE
#include "raftkv.h"
#include "kvstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_WAIT 30.0
#define CHECK_PAGE 1000u   /* check's sscan pages */
#define MAX_REPORTS 50     /* violations printed per node */
#define MAX_NODES 256u

/* ---- check ------------------------------------------------------------------------------- */

typedef struct digest {
	bool ok;
	uint64_t applied, keys;
	char hash[24];
	char line[300]; /* the response, or why there is none */
} digest;

/* "DIGEST applied=A keys=N hash=H": fields by name, in any order. 0, or -1. */
static int parse_digest(const char *r, digest *d)
{
	bool a = false, k = false, h = false;
	rkv_shown(r, d->line, sizeof(d->line));
	if (strncmp(r, "DIGEST ", 7))
		return -1;
	for (const char *p = r + 7; *p && *p != '\n';) {
		size_t n = strcspn(p, " \n");
		if (n > 8 && !strncmp(p, "applied=", 8))
			a = !kv_parse_digits(p + 8, n - 8, &d->applied);
		else if (n > 5 && !strncmp(p, "keys=", 5))
			k = !kv_parse_digits(p + 5, n - 5, &d->keys);
		else if (n > 5 && n - 5 < sizeof(d->hash) && !strncmp(p, "hash=", 5)) {
			memcpy(d->hash, p + 5, n - 5);
			d->hash[n - 5] = 0;
			h = true;
		}
		p += n;
		if (*p == ' ')
			p++;
	}
	d->ok = a && k && h;
	return d->ok ? 0 : -1;
}

/* The applied index in node id's status: 0, or -1; line gets the status or the error. */
static int node_applied(rkv_client *c, unsigned id, double timeout, uint64_t *applied,
			char *line, size_t cap)
{
	char *r, err[1024];
	if (rkv_client_call_node(c, id, "status\n", 7, timeout, &r, err, sizeof(err))) {
		snprintf(line, cap, "unreachable: %.250s", err);
		return -1;
	}
	rkv_shown(r, line, cap);
	const char *a = strstr(r, " applied=");
	size_t n = a ? strspn(a + 9, "0123456789") : 0;
	int rc = strncmp(r, "STATUS ", 7) || !n || kv_parse_digits(a + 9, n, applied) ? -1 : 0;
	free(r);
	return rc;
}

static void get_digest(rkv_client *c, unsigned id, double timeout, digest *d)
{
	char *r, err[1024];
	memset(d, 0, sizeof(*d));
	if (rkv_client_call_node(c, id, "digest\n", 7, timeout, &r, err, sizeof(err))) {
		snprintf(d->line, sizeof(d->line), "unreachable: %.280s", err);
		return;
	}
	if (parse_digest(r, d))
		snprintf(d->line, sizeof(d->line), "malformed digest: %s", rkv_shown(r, err, 256));
	free(r);
}

typedef struct ack {
	char *key;
	size_t klen;
	uint32_t sum;
	uint64_t line;
	char bid[KV_BATCH_ID_MAX];
} ack;

static int cmp_ack(const void *x, const void *y)
{
	const ack *a = x, *b = y;
	int r = rkv_key_cmp(a->key, a->klen, b->key, b->klen);
	return r ? r : (a->line > b->line) - (a->line < b->line);
}

static int cmp_bid(const void *x, const void *y)
{
	return strcmp(((const ack *)x)->bid, ((const ack *)y)->bid);
}

/* The acknowledgements (sorted by key), the members of the acknowledged batches (sorted by
 * key, bid their batch) and the ack file's own violations. */
typedef struct acks {
	ack *a, *m;
	size_t na, nm;
	uint64_t violations, torn, batches;
} acks;

static void file_violation(acks *A, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void file_violation(acks *A, const char *fmt, ...)
{
	if (++A->violations > MAX_REPORTS)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int push(ack **v, size_t *n, size_t *cap, const ack *e)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 1024;
		ack *nv = realloc(*v, nc * sizeof(*nv));
		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = *e;
	return 0;
}

/* Read the ack file: 0, or -1 (printed). */
static int load_acks(const char *path, acks *A)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return rkv_say(-1, "check: %s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0, acap = 0, mcap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	int rc = 0;
	while (!rc && (n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n') {
			A->torn++; /* a write cut short: it acknowledged nothing */
			break;
		}
		line[--n] = 0;
		if (line[0] == '#')
			continue;
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		ack e = {.line = lineno};
		size_t bl = t2 ? strlen(t2 + 1) : 0;
		bool hex = t2 && t2 - t1 == 9;
		for (char *p = t1 + 1; hex && p < t2; p++)
			hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
		if (!hex || bl == 0 || bl >= sizeof(e.bid) || strchr(t2 + 1, '\t')) {
			file_violation(A, "MALFORMED line %" PRIu64 " of the ack file", lineno);
			continue;
		}
		*t1 = 0;
		if (kv_decode(line, &e.key, &e.klen)) {
			file_violation(A, "MALFORMED line %" PRIu64 " of the ack file", lineno);
			continue;
		}
		e.sum = (uint32_t)strtoul(t1 + 1, NULL, 16);
		memcpy(e.bid, t2 + 1, bl + 1);
		rc = push(&A->a, &A->na, &acap, &e);
		if (rc)
			free(e.key);
	}
	free(line);
	fclose(f);
	if (rc)
		return rkv_say(-1, "check: out of memory");
	/* each acknowledged batch once: its members must all be there, holding it */
	ack *byb = malloc((A->na ? A->na : 1) * sizeof(*byb));
	if (!byb)
		return rkv_say(-1, "check: out of memory");
	if (A->na) {
		memcpy(byb, A->a, A->na * sizeof(*byb));
		qsort(byb, A->na, sizeof(*byb), cmp_bid);
	}
	for (size_t i = 0; i < A->na && !rc; i++) {
		if (!strcmp(byb[i].bid, "-") || (i > 0 && !strcmp(byb[i].bid, byb[i - 1].bid)))
			continue;
		unsigned th, count;
		uint64_t first;
		A->batches++;
		if (kv_batch_id_parse(byb[i].bid, strlen(byb[i].bid), &th, &first, &count)) {
			file_violation(A, "BADBATCH %s: not a batch id", byb[i].bid);
			continue;
		}
		for (unsigned j = 0; j < count && !rc; j++) {
			char key[KV_KEY_MAX];
			ack e = {0};
			int kl = kv_stress_key(key, th, first + j);
			e.key = strdup(key);
			e.klen = (size_t)kl;
			memcpy(e.bid, byb[i].bid, sizeof(e.bid));
			rc = !e.key || push(&A->m, &A->nm, &mcap, &e);
			if (rc)
				free(e.key);
		}
	}
	free(byb);
	if (rc)
		return rkv_say(-1, "check: out of memory");
	if (A->na)
		qsort(A->a, A->na, sizeof(*A->a), cmp_ack);
	if (A->nm)
		qsort(A->m, A->nm, sizeof(*A->m), cmp_ack);
	return 0;
}

/* One node's pass: its keys in order, merged with the acknowledgements and batch members;
 * the stress keys checked as kvstore's check-acks walks the store. */
typedef struct nodecheck {
	unsigned id;
	const acks *A;
	size_t ai, mi;
	uint64_t present, violations, stress_keys;
	char run_bid[KV_BATCH_ID_MAX]; /* the batch whose members should come next */
	unsigned run_thread, run_left;
	uint64_t run_next;
} nodecheck;

static void violation(nodecheck *nc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(nodecheck *nc, const char *fmt, ...)
{
	if (++nc->violations > MAX_REPORTS) {
		if (nc->violations == MAX_REPORTS + 1)
			printf("n%u: (more violations; only counted from here on)\n", nc->id);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	printf("n%u: ", nc->id);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void end_run(nodecheck *nc)
{
	if (nc->run_left > 0)
		violation(nc, "PARTIAL %s: the store holds only part of it (seq %" PRIu64
			      " and later missing)", nc->run_bid, nc->run_next);
	nc->run_left = 0;
}

/* Acknowledgements and members below key k (NULL: all left) are missing. */
static void missing_before(nodecheck *nc, const char *k, size_t kl)
{
	const acks *A = nc->A;
	char sh[200];
	for (const ack *a; nc->ai < A->na; nc->ai++) {
		a = &A->a[nc->ai];
		if (k && rkv_key_cmp(a->key, a->klen, k, kl) >= 0)
			break;
		violation(nc, "MISSING %s: acknowledged (batch %s, line %" PRIu64 "), not in the "
			      "store", rkv_show(a->key, a->klen, sh, sizeof(sh)), a->bid, a->line);
	}
	for (const ack *m; nc->mi < A->nm; nc->mi++) {
		m = &A->m[nc->mi];
		if (k && rkv_key_cmp(m->key, m->klen, k, kl) >= 0)
			break;
		violation(nc, "PARTIAL %s: member %s is missing", m->bid, m->key);
	}
}

static int check_pair(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	nodecheck *nc = arg;
	const acks *A = nc->A;
	char bid[KV_BATCH_ID_MAX], sh[200];
	bool own = !kv_value_check(v, vl, k, kl, bid, sizeof(bid));
	uint32_t sum = kv_value_sum(v, vl);
	missing_before(nc, k, kl);
	for (const ack *a; nc->ai < A->na; nc->ai++) {
		a = &A->a[nc->ai];
		if (rkv_key_cmp(a->key, a->klen, k, kl))
			break;
		nc->present++;
		if (sum != a->sum)
			violation(nc, "WRONG %s: acknowledged value checksum %08x, the store's "
				      "value has %08x (%zu bytes)", rkv_show(k, kl, sh, sizeof(sh)),
				  a->sum, sum, vl);
	}
	for (const ack *m; nc->mi < A->nm; nc->mi++) {
		m = &A->m[nc->mi];
		if (rkv_key_cmp(m->key, m->klen, k, kl))
			break;
		if (!own || strcmp(bid, m->bid))
			violation(nc, "PARTIAL %s: member %s holds another value", m->bid, m->key);
	}
	unsigned th, bth, count;
	uint64_t seq, first;
	if (kv_stress_key_parse(k, kl, &th, &seq))
		return 0; /* not a stress key: none of check's business */
	nc->stress_keys++;
	if (!own) {
		violation(nc, "CORRUPT %.*s: the value is not a well-formed value of this key "
			      "(%zu bytes)", (int)kl, k, vl);
		end_run(nc);
		return 0;
	}
	if (nc->run_left > 0 && !strcmp(bid, nc->run_bid) && th == nc->run_thread &&
	    seq == nc->run_next) {
		nc->run_left--;
		nc->run_next++;
		return 0;
	}
	end_run(nc);
	if (!strcmp(bid, "-"))
		return 0;
	if (kv_batch_id_parse(bid, strlen(bid), &bth, &first, &count) || bth != th ||
	    seq < first || seq - first >= count) {
		violation(nc, "CORRUPT %.*s: names batch %s, which cannot hold it", (int)kl, k,
			  bid);
		return 0;
	}
	if (seq != first)
		violation(nc, "PARTIAL %s: the store holds only part of it (seq %" PRIu64
			      " missing)", bid, first);
	memcpy(nc->run_bid, bid, sizeof(bid));
	nc->run_thread = th;
	nc->run_next = seq + 1;
	nc->run_left = (unsigned)(first + count - seq - 1);
	return 0;
}

int rkv_cmd_check(const char *cluster, int argc, char **argv)
{
	const char *ackpath = NULL;
	double wait = DEFAULT_WAIT;
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = !v;
		if (!bad && !strcmp(a, "--ack-file"))
			bad = !*(ackpath = v);
		else if (!bad && !strcmp(a, "--wait"))
			bad = kv_parse_seconds(v, &wait);
		else
			bad = 1;
		if (bad)
			return rkv_say(RKV_EXIT_USAGE, "check: bad or unknown option %s (usage: check "
						   "[--ack-file FILE] [--wait S])", a);
	}
	if (!cluster)
		return rkv_say(RKV_EXIT_USAGE, "check needs the cluster directory (-c DIR)");
	rkv_client *c;
	char err[1024];
	if (rkv_client_open(cluster, NULL, 0, &c, err, sizeof(err)))
		return rkv_say(RKV_EXIT_FAIL, "check: %s", err);
	unsigned ids[MAX_NODES], n = rkv_client_nodes(c, ids, MAX_NODES);
	/* a status answers at once; a digest or a page of a big store may take a while */
	double per = 10, slow = wait > per ? wait : per;
	digest *d = calloc(n ? n : 1, sizeof(*d));
	acks A = {0};
	int code = RKV_EXIT_FAIL;
	uint64_t total = 0;
	if (!d) {
		rkv_say(RKV_EXIT_FAIL, "check: out of memory");
		goto out;
	}
	if (n == 0) {
		rkv_say(RKV_EXIT_FAIL, "check: no nodes found in %s", cluster);
		goto out;
	}
	/* (a) every node answers */
	bool down = false;
	for (unsigned i = 0; i < n; i++) {
		char *r;
		if (rkv_client_call_node(c, ids[i], "status\n", 7, per, &r, err, sizeof(err))) {
			printf("check: n%u unreachable: %s\n", ids[i], err);
			down = true;
			continue;
		}
		if (strncmp(r, "STATUS ", 7)) {
			printf("check: n%u: unexpected status response: %s\n", ids[i],
			       rkv_shown(r, err, sizeof(err)));
			down = true;
		}
		free(r);
	}
	if (down)
		goto out;
	/* (b) everything committed applied on the leader, then on every node */
	double deadline = kv_now() + wait;
	char *r;
	if (rkv_client_call(c, "barrier\n", 8, wait > 0 ? wait : per, &r, NULL, err,
			    sizeof(err))) {
		rkv_say(RKV_EXIT_FAIL, "check: barrier: %s", err);
		goto out;
	}
	bool barrier_ok = !strcmp(r, "OK\n");
	if (!barrier_ok)
		rkv_say(RKV_EXIT_FAIL, "check: barrier answered: %s", rkv_shown(r, err, sizeof(err)));
	free(r);
	if (!barrier_ok)
		goto out;
	unsigned leader = rkv_client_leader(c), li = n;
	uint64_t target, a0 = 0;
	if (node_applied(c, leader, per, &target, err, sizeof(err))) {
		rkv_say(RKV_EXIT_FAIL, "check: leader n%u: %s", leader, err);
		goto out;
	}
	for (;;) {
		/* status first, as it costs the node nothing; a digest reads the whole tree */
		bool same = true;
		for (unsigned i = 0; i < n; i++) {
			uint64_t a = 0;
			memset(&d[i], 0, sizeof(d[i]));
			same = !node_applied(c, ids[i], per, &a, d[i].line, sizeof(d[i].line)) &&
			       same && a >= target && (i == 0 || a == a0);
			a0 = i == 0 ? a : a0;
			li = ids[i] == leader ? i : li;
		}
		for (unsigned i = 0; i < n && same; i++) {
			get_digest(c, ids[i], slow, &d[i]);
			same = d[i].ok && d[i].applied == a0;
		}
		if (same)
			break;
		if (kv_now() >= deadline) {
			for (unsigned i = 0; i < n; i++)
				printf("check: n%u: %s\n", ids[i], d[i].line);
			rkv_say(RKV_EXIT_FAIL, "check: the nodes did not reach one applied index (at "
					   "least %" PRIu64 ") within %.1f s", target, wait);
			goto out;
		}
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
	const digest *ref = li < n ? &d[li] : &d[0];
	unsigned refid = li < n ? leader : ids[0];
	bool identical = true;
	for (unsigned i = 0; i < n; i++) {
		if (d[i].keys == ref->keys && !strcmp(d[i].hash, ref->hash))
			continue;
		identical = false;
		printf("DIVERGE n%u: applied %" PRIu64 " keys %" PRIu64 " hash %s; n%u: keys %"
		       PRIu64 " hash %s\n", ids[i], d[i].applied, d[i].keys, d[i].hash, refid,
		       ref->keys, ref->hash);
	}
	/* (c) the acknowledgements, on every node */
	if (ackpath && load_acks(ackpath, &A))
		goto out;
	total = A.violations;
	for (unsigned i = 0; i < n; i++) {
		nodecheck nc = {.id = ids[i], .A = &A};
		uint64_t scanned = 0;
		if (ackpath) {
			if (rkv_scan_pages(c, true, ids[i], NULL, 0, NULL, 0, UINT64_MAX,
					   CHECK_PAGE, slow, check_pair, &nc, &scanned, err,
					   sizeof(err))) {
				rkv_say(RKV_EXIT_FAIL, "check: n%u: sscan: %s", ids[i], err);
				goto out;
			}
			missing_before(&nc, NULL, 0);
			end_run(&nc);
			if (scanned != d[i].keys)
				violation(&nc, "CHANGED: the scan saw %" PRIu64 " keys, the "
					       "digest %" PRIu64 " (written to during the check?)",
					  scanned, d[i].keys);
		}
		printf("check n%u: applied %" PRIu64 ", %" PRIu64 " keys, hash %s, %" PRIu64
		       " acknowledged keys present, %" PRIu64 " violations\n", ids[i], d[i].applied,
		       d[i].keys, d[i].hash, nc.present, nc.violations);
		total += nc.violations;
	}
	printf("check: %u nodes %s, %" PRIu64 " violations%s\n", n,
	       identical ? "identical" : "DIVERGE", total,
	       A.torn ? " (a torn last line of the ack file ignored)" : "");
	code = identical && total == 0 ? RKV_EXIT_OK : RKV_EXIT_NOTFOUND;
out:
	fflush(stdout);
	for (size_t i = 0; i < A.na; i++)
		free(A.a[i].key);
	for (size_t i = 0; i < A.nm; i++)
		free(A.m[i].key);
	free(A.a);
	free(A.m);
	free(d);
	rkv_client_close(c);
	return code;
}
