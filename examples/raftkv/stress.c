/*
 * stress.c — `raftkv stress` (concurrent writers through whichever node leads, logging what
 * the cluster acknowledged) and `raftkv check` (every node reachable, all at one applied
 * index with equal digests, and the acknowledgements kept by every node).
 *
 * stress: thread i writes the keys t<i>-<seq> with kvstore's self-checking values
 * (value.c), one `put` or a `txn` of --batch K consecutive keys per request, each through
 * rkv_client_call with the thread's own random client id and SEQ 1, 2, ... Only after OK
 * does it append the request's ack lines to the ack file, all in ONE write(2) on an O_APPEND
 * descriptor, in kvstore's format (KEY TAB CRC32C TAB BATCH-ID), so that
 * `kvstore -d n<ID>/store check-acks FILE` holds on each stopped node; --stamp puts a comment
 * line `# at <unix ms>` in the same write. A request is built once and resent unchanged, so
 * a write that outlives a leader change is applied once (the node's session). Sequence
 * numbers continue after the largest found in the ack file for that thread and in the
 * cluster (a linearizable scan of the thread's later keys: a request abandoned unacknowledged
 * may have been applied), so runs never rewrite a key. SIGINT/SIGTERM abandon the requests
 * in flight (never acknowledged); the deadline lets them finish.
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
 * Threads: stress runs one client per writer thread; the ack file's O_APPEND writes are the
 * only shared output, the counters they share are atomics. check is single-threaded.
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

#define MAX_THREADS 64
#define DEFAULT_REQ_TIMEOUT 30.0
#define DEFAULT_WAIT 30.0
#define SEQ_PAGE 1000u     /* the scan for later keys of a thread */
#define CHECK_PAGE 1000u   /* check's sscan pages */
#define MAX_REPORTS 50     /* violations printed per node */
#define MAX_NODES 256u

static int say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int say(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("raftkv: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* The first line of a response, as text for a message. */
static const char *shown(const char *r, char *buf, size_t cap)
{
	const char *nl = strchr(r, '\n');
	return rkv_show(r, nl ? (size_t)(nl - r) : strlen(r), buf, cap);
}

/* ---- stress ------------------------------------------------------------------------------ */

typedef struct srun {
	const char *cluster;
	int ack_fd;
	unsigned batch;
	size_t vsize;
	bool stamp;
	double timeout, deadline;
	atomic_bool abort;               /* a writer failed: the others abandon */
	_Atomic uint64_t last_ack_ns;    /* monotonic time of the latest acknowledgement */
	_Atomic uint64_t max_stall_ns;   /* longest gap between two acknowledgements */
} srun;

typedef struct sthread {
	srun *r;
	pthread_t tid;
	unsigned id;
	uint64_t next_seq;  /* of the keys */
	uint64_t keys, requests;
	unsigned redirects;
	double *lat;        /* ms per acknowledged request */
	size_t nlat, caplat;
	bool failed;
	char err[1500];
} sthread;

static atomic_bool stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_signal, true);
}

static bool run_cancelled(void *arg)
{
	srun *r = arg;
	return atomic_load(&stop_signal) || atomic_load(&r->abort);
}

static uint64_t now_ns(void)
{
	return (uint64_t)(kv_now() * 1e9);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The request for the thread's next key(s), and the ack lines it will earn. */
static int build(sthread *t, uint64_t seq, char *val, rkv_buf *req, rkv_buf *acks)
{
	srun *r = t->r;
	char key[KV_KEY_MAX], bid[KV_BATCH_ID_MAX] = "-";
	req->len = acks->len = 0;
	int rc = 0;
	if (r->batch > 1) {
		kv_batch_id(bid, t->id, t->next_seq, r->batch);
		rc = rkv_buf_printf(req, "txn %" PRIu64 " %u\n", seq, r->batch);
	}
	for (unsigned j = 0; j < r->batch && !rc; j++) {
		int kl = kv_stress_key(key, t->id, t->next_seq + j);
		size_t vl = kv_value_make(val, r->vsize, key, (size_t)kl, bid);
		if (r->batch > 1)
			rc = rkv_buf_add(req, "put ", 4);
		else
			rc = rkv_buf_printf(req, "put %" PRIu64 " ", seq);
		rc = rc || rkv_buf_enc(req, key, (size_t)kl) || rkv_buf_add(req, " ", 1) ||
		     rkv_buf_enc(req, val, vl) || rkv_buf_add(req, "\n", 1) ||
		     rkv_buf_printf(acks, "%s\t%08x\t%s\n", key, kv_value_sum(val, vl), bid);
	}
	return rc;
}

static void thread_fail(sthread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void thread_fail(sthread *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	t->failed = true;
	atomic_store(&t->r->abort, true);
}

static void note_ack(srun *r)
{
	uint64_t now = now_ns();
	uint64_t prev = atomic_exchange(&r->last_ack_ns, now);
	uint64_t gap = now > prev ? now - prev : 0;
	uint64_t m = atomic_load(&r->max_stall_ns);
	while (gap > m && !atomic_compare_exchange_weak(&r->max_stall_ns, &m, gap))
		;
}

static void *stress_main(void *arg)
{
	sthread *t = arg;
	srun *r = t->r;
	rkv_client *c = NULL;
	rkv_buf req = {0}, acks = {0}, out = {0};
	char err[1024];
	char *val = malloc(r->vsize + KV_KEY_MAX + KV_BATCH_ID_MAX + 16);
	if (!val) {
		thread_fail(t, "out of memory");
		goto done;
	}
	if (rkv_client_open(r->cluster, NULL, rkv_random_id(), &c, err, sizeof(err))) {
		thread_fail(t, "%s", err);
		goto done;
	}
	rkv_client_set_cancel(c, run_cancelled, r);
	for (uint64_t seq = 1; !run_cancelled(r) && kv_now() < r->deadline; seq++) {
		if (build(t, seq, val, &req, &acks)) {
			thread_fail(t, "out of memory");
			break;
		}
		char *resp;
		double t0 = kv_now();
		if (rkv_client_call(c, req.p, req.len, r->timeout, &resp, &t->redirects, err,
				    sizeof(err))) {
			if (!run_cancelled(r)) /* else abandoned: never acknowledged */
				thread_fail(t, "thread %u: request %" PRIu64 " (key t%u-%012" PRIu64
					       "): %s", t->id, seq, t->id, t->next_seq, err);
			break;
		}
		bool ok = !strcmp(resp, "OK\n");
		if (!ok)
			thread_fail(t, "thread %u: request %" PRIu64 " answered: %s", t->id, seq,
				    shown(resp, err, sizeof(err)));
		free(resp);
		if (!ok)
			break;
		double ms = (kv_now() - t0) * 1000;
		if (t->nlat == t->caplat) {
			size_t nc = t->caplat ? 2 * t->caplat : 1024;
			double *nl = realloc(t->lat, nc * sizeof(*nl));
			if (!nl) {
				thread_fail(t, "out of memory");
				break;
			}
			t->lat = nl;
			t->caplat = nc;
		}
		t->lat[t->nlat++] = ms;
		/* acknowledged by the cluster: only now may the file say so, in one write */
		const char *w = acks.p;
		size_t wl = acks.len;
		if (r->stamp) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			out.len = 0;
			if (rkv_buf_printf(&out, "# at %lld\n",
					   (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) ||
			    rkv_buf_add(&out, acks.p, acks.len)) {
				thread_fail(t, "out of memory");
				break;
			}
			w = out.p;
			wl = out.len;
		}
		int wrc = write_all(r->ack_fd, w, wl);
		if (wrc) {
			thread_fail(t, "writing the ack file: %s", strerror(-wrc));
			break;
		}
		note_ack(r);
		t->next_seq += r->batch;
		t->keys += r->batch;
		t->requests++;
	}
done:
	rkv_client_close(c);
	free(val);
	free(req.p);
	free(acks.p);
	free(out.p);
	return NULL;
}

/* Largest sequence number per thread among the complete key lines of the ack file. */
static void ack_file_max(const char *path, uint64_t *max, unsigned nthreads)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break; /* cut short: it acknowledged nothing */
		char *tab = strchr(line, '\t');
		unsigned th;
		uint64_t seq;
		if (tab && !kv_stress_key_parse(line, (size_t)(tab - line), &th, &seq) &&
		    th < nthreads && seq > max[th])
			max[th] = seq;
	}
	free(line);
	fclose(f);
}

typedef struct seq_probe {
	unsigned thread;
	uint64_t max;
} seq_probe;

static int take_seq(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(void)v;
	(void)vl;
	seq_probe *p = arg;
	unsigned th;
	uint64_t seq;
	if (!kv_stress_key_parse(k, kl, &th, &seq) && th == p->thread && seq > p->max)
		p->max = seq;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *a, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)n + 0.999999);
	return a[i == 0 ? 0 : i > n ? n - 1 : i - 1];
}

static const char stress_usage[] =
	"usage: stress --threads N (1..64) --seconds S --ack-file FILE [--batch K (1..10000)] "
	"[--value-size B] [--stamp] [--timeout S (per request, default 30)]";

int rkv_cmd_stress(const char *cluster, int argc, char **argv)
{
	uint64_t threads = 0, batch = 1, vsize = 100;
	double seconds = -1, timeout = DEFAULT_REQ_TIMEOUT;
	const char *ack = NULL;
	bool stamp = false;
	for (int i = 1; i < argc; i += 2) { /* option, value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--stamp")) {
			stamp = true;
			i--;
			continue;
		}
		int bad = !v;
		if (!bad && !strcmp(a, "--threads"))
			bad = kv_parse_u64(v, &threads) || threads == 0 || threads > MAX_THREADS;
		else if (!bad && !strcmp(a, "--seconds"))
			bad = kv_parse_seconds(v, &seconds);
		else if (!bad && !strcmp(a, "--ack-file"))
			bad = !*(ack = v);
		else if (!bad && !strcmp(a, "--batch"))
			bad = kv_parse_u64(v, &batch) || batch == 0 || batch > RKV_TXN_OPS_MAX;
		else if (!bad && !strcmp(a, "--value-size"))
			bad = kv_parse_size(v, &vsize) || vsize > RKV_VALUE_MAX;
		else if (!bad && !strcmp(a, "--timeout"))
			bad = kv_parse_seconds(v, &timeout) || timeout <= 0;
		else
			bad = 1;
		if (bad)
			return say(RKV_EXIT_USAGE, "stress: bad or unknown option %s (%s)", a,
				   stress_usage);
	}
	if (!threads || seconds < 0 || !ack)
		return say(RKV_EXIT_USAGE, "stress needs --threads, --seconds and --ack-file (%s)",
			   stress_usage);
	if (!cluster)
		return say(RKV_EXIT_USAGE, "stress needs the cluster directory (-c DIR)");
	/* one request is one raft entry: it must stay well inside the entry limit */
	if (batch * (vsize + 2 * KV_KEY_MAX + KV_BATCH_ID_MAX + 64) > RKV_ENTRY_MAX)
		return say(RKV_EXIT_USAGE, "stress: %" PRIu64 " values of %" PRIu64
					   " bytes in one transaction exceed the entry limit (%u)",
			   batch, vsize, RKV_ENTRY_MAX);
	srun *r = calloc(1, sizeof(*r));
	sthread *ts = calloc(threads, sizeof(*ts));
	uint64_t *max = calloc(threads, sizeof(*max));
	rkv_client *probe = NULL;
	int code = RKV_EXIT_FAIL;
	char err[1024];
	if (r)
		r->ack_fd = -1;
	if (!r || !ts || !max) {
		say(RKV_EXIT_FAIL, "stress: out of memory");
		goto out;
	}
	r->ack_fd = open(ack, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (r->ack_fd < 0) {
		say(RKV_EXIT_FAIL, "stress: %s: %s", ack, strerror(errno));
		goto out;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* continue each thread's keys after the file's and the cluster's (within one timeout) */
	ack_file_max(ack, max, (unsigned)threads);
	if (rkv_client_open(cluster, NULL, 0, &probe, err, sizeof(err))) {
		say(RKV_EXIT_FAIL, "stress: %s", err);
		goto out;
	}
	rkv_client_set_cancel(probe, run_cancelled, r);
	double probe_end = kv_now() + timeout;
	for (unsigned i = 0; i < threads && !atomic_load(&stop_signal); i++) {
		char from[KV_KEY_MAX], to[KV_KEY_MAX];
		int fl = kv_stress_key(from, i, max[i] + 1);
		int tl = snprintf(to, sizeof(to), "t%u.", i); /* '.' follows '-' */
		seq_probe p = {i, max[i]};
		double left = probe_end - kv_now();
		if (rkv_scan_pages(probe, false, 0, from, (size_t)fl, to, (size_t)tl, UINT64_MAX,
				   SEQ_PAGE, left > 0.001 ? left : 0.001, take_seq, &p, NULL, err,
				   sizeof(err))) {
			if (atomic_load(&stop_signal))
				break; /* interrupted: no writers, the summary says 0 */
			say(RKV_EXIT_FAIL, "stress: finding thread %u's last key: %s", i, err);
			goto out;
		}
		ts[i].next_seq = p.max + 1;
	}
	r->cluster = cluster;
	r->batch = (unsigned)batch;
	r->vsize = vsize;
	r->stamp = stamp;
	r->timeout = timeout;
	double t0 = kv_now();
	r->deadline = t0 + seconds;
	atomic_store(&r->last_ack_ns, now_ns());
	unsigned started = 0;
	for (; started < threads && !atomic_load(&stop_signal); started++) {
		ts[started].r = r;
		ts[started].id = started;
		if (pthread_create(&ts[started].tid, NULL, stress_main, &ts[started])) {
			atomic_store(&r->abort, true);
			break;
		}
	}
	uint64_t keys = 0, reqs = 0, redirects = 0;
	size_t nlat = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		keys += ts[i].keys;
		reqs += ts[i].requests;
		redirects += ts[i].redirects;
		nlat += ts[i].nlat;
	}
	double el = kv_now() - t0;
	note_ack(r); /* a stall running into the end of the run counts too */
	double *lat = malloc((nlat ? nlat : 1) * sizeof(*lat));
	size_t m = 0;
	for (unsigned i = 0; lat && i < started; i++) {
		if (ts[i].nlat)
			memcpy(lat + m, ts[i].lat, ts[i].nlat * sizeof(*lat));
		m += ts[i].nlat;
	}
	if (lat)
		qsort(lat, m, sizeof(*lat), cmp_double);
	printf("stress: %u threads, %.1f s: %" PRIu64 " keys acknowledged in %" PRIu64
	       " requests (%.0f req/s), %" PRIu64 " redirects/retries, latency p50 %.2f ms p99 "
	       "%.2f ms, longest stall %.0f ms\n",
	       started, el, keys, reqs, el > 0 ? (double)reqs / el : 0.0, redirects,
	       lat ? pct(lat, m, 0.50) : 0, lat ? pct(lat, m, 0.99) : 0,
	       (double)atomic_load(&r->max_stall_ns) / 1e6);
	fflush(stdout);
	free(lat);
	code = RKV_EXIT_OK;
	if (started < threads && !atomic_load(&stop_signal))
		code = say(RKV_EXIT_FAIL, "stress: could not start thread %u", started);
	unsigned failed = 0;
	for (unsigned i = 0; i < started; i++)
		if (ts[i].failed && failed++ == 0) /* the first: the rest tend to share its cause */
			code = say(RKV_EXIT_FAIL, "stress: %s", ts[i].err);
	if (failed > 1)
		say(RKV_EXIT_FAIL, "stress: %u more writers failed (not shown)", failed - 1);
out:
	rkv_client_close(probe);
	if (r && r->ack_fd >= 0)
		close(r->ack_fd);
	for (unsigned i = 0; ts && i < threads; i++)
		free(ts[i].lat);
	free(ts);
	free(max);
	free(r);
	return code;
}

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
	shown(r, d->line, sizeof(d->line));
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
	shown(r, line, cap);
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
		snprintf(d->line, sizeof(d->line), "malformed digest: %s", shown(r, err, 256));
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
		return say(-1, "check: %s: %s", path, strerror(errno));
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
		return say(-1, "check: out of memory");
	/* each acknowledged batch once: its members must all be there, holding it */
	ack *byb = malloc((A->na ? A->na : 1) * sizeof(*byb));
	if (!byb)
		return say(-1, "check: out of memory");
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
		return say(-1, "check: out of memory");
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
			return say(RKV_EXIT_USAGE, "check: bad or unknown option %s (usage: check "
						   "[--ack-file FILE] [--wait S])", a);
	}
	if (!cluster)
		return say(RKV_EXIT_USAGE, "check needs the cluster directory (-c DIR)");
	rkv_client *c;
	char err[1024];
	if (rkv_client_open(cluster, NULL, 0, &c, err, sizeof(err)))
		return say(RKV_EXIT_FAIL, "check: %s", err);
	unsigned ids[MAX_NODES], n = rkv_client_nodes(c, ids, MAX_NODES);
	/* a status answers at once; a digest or a page of a big store may take a while */
	double per = 10, slow = wait > per ? wait : per;
	digest *d = calloc(n ? n : 1, sizeof(*d));
	acks A = {0};
	int code = RKV_EXIT_FAIL;
	uint64_t total = 0;
	if (!d) {
		say(RKV_EXIT_FAIL, "check: out of memory");
		goto out;
	}
	if (n == 0) {
		say(RKV_EXIT_FAIL, "check: no nodes found in %s", cluster);
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
			       shown(r, err, sizeof(err)));
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
		say(RKV_EXIT_FAIL, "check: barrier: %s", err);
		goto out;
	}
	bool barrier_ok = !strcmp(r, "OK\n");
	if (!barrier_ok)
		say(RKV_EXIT_FAIL, "check: barrier answered: %s", shown(r, err, sizeof(err)));
	free(r);
	if (!barrier_ok)
		goto out;
	unsigned leader = rkv_client_leader(c), li = n;
	uint64_t target, a0 = 0;
	if (node_applied(c, leader, per, &target, err, sizeof(err))) {
		say(RKV_EXIT_FAIL, "check: leader n%u: %s", leader, err);
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
			say(RKV_EXIT_FAIL, "check: the nodes did not reach one applied index (at "
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
				say(RKV_EXIT_FAIL, "check: n%u: sscan: %s", ids[i], err);
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
