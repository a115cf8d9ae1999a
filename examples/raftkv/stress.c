/*
 * stress.c — `raftkv stress`: concurrent writers through whichever node leads (or the one
 * node of -s SOCKET), logging what the cluster acknowledged; check.c proves it was kept.
 *
 * stress: thread i writes the keys t<i>-<seq> with kvstore's self-checking values
 * (value.c), one `put` or a `txn` of --batch K consecutive keys per request, each through
 * rkv_client_call with the thread's own random client id and SEQ 1, 2, ... Only after OK
 * does it append the request's ack lines to the ack file, all in ONE write(2) on an O_APPEND
 * descriptor, in kvstore's format (KEY TAB CRC32C TAB BATCH-ID), so that
 * `kvstore -d n<ID>/store check-acks FILE` holds on each stopped node; --stamp puts a comment
 * line `# at <unix ms> n<ID of the node that answered>` in the same write. A request is built once and resent unchanged, so
 * a write that outlives a leader change is applied once (the node's session). Sequence
 * numbers continue after the largest found in the ack file for that thread and in the
 * cluster (a linearizable scan of the thread's later keys: a request abandoned unacknowledged
 * may have been applied), so runs never rewrite a key. SIGINT/SIGTERM abandon the requests
 * in flight (never acknowledged); the deadline lets them finish.
 *
 * Threads: stress runs one client per writer thread; the ack file's O_APPEND writes are the
 * only shared output, the counters they share are atomics.
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
#define SEQ_PAGE 1000u     /* the scan for later keys of a thread */

int rkv_say(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("raftkv: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

const char *rkv_shown(const char *r, char *buf, size_t cap)
{
	const char *nl = strchr(r, '\n');
	return rkv_show(r, nl ? (size_t)(nl - r) : strlen(r), buf, cap);
}

/* ---- stress ------------------------------------------------------------------------------ */

typedef struct srun {
	const char *cluster, *sock; /* one of them */
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
	if (rkv_client_open(r->cluster, r->sock, rkv_random_id(), &c, err, sizeof(err))) {
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
				    rkv_shown(resp, err, sizeof(err)));
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
			if (rkv_buf_printf(&out, "# at %lld n%u\n",
					   (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
					   rkv_client_leader(c)) ||
			    rkv_buf_add(&out, acks.p, acks.len)) {
				thread_fail(t, "out of memory");
				break;
			}
			w = out.p;
			wl = out.len;
		}
		int wrc = kv_write_all(r->ack_fd, w, wl);
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

int rkv_cmd_stress(const char *cluster, const char *sock, int argc, char **argv)
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
			return rkv_say(RKV_EXIT_USAGE, "stress: bad or unknown option %s (%s)", a,
				   stress_usage);
	}
	if (!threads || seconds < 0 || !ack)
		return rkv_say(RKV_EXIT_USAGE, "stress needs --threads, --seconds and --ack-file (%s)",
			   stress_usage);
	if (!cluster && !sock)
		return rkv_say(RKV_EXIT_USAGE, "stress needs a cluster (-c DIR) or a node (-s SOCKET)");
	/* one request is one raft entry: it must stay well inside the entry limit */
	if (batch * (vsize + 2 * KV_KEY_MAX + KV_BATCH_ID_MAX + 64) > RKV_ENTRY_MAX)
		return rkv_say(RKV_EXIT_USAGE, "stress: %" PRIu64 " values of %" PRIu64
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
		rkv_say(RKV_EXIT_FAIL, "stress: out of memory");
		goto out;
	}
	r->ack_fd = open(ack, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (r->ack_fd < 0) {
		rkv_say(RKV_EXIT_FAIL, "stress: %s: %s", ack, strerror(errno));
		goto out;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* continue each thread's keys after the file's and the cluster's (within one timeout) */
	ack_file_max(ack, max, (unsigned)threads);
	if (rkv_client_open(cluster, sock, 0, &probe, err, sizeof(err))) {
		rkv_say(RKV_EXIT_FAIL, "stress: %s", err);
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
			rkv_say(RKV_EXIT_FAIL, "stress: finding thread %u's last key: %s", i, err);
			goto out;
		}
		ts[i].next_seq = p.max + 1;
	}
	r->cluster = cluster;
	r->sock = sock;
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
		code = rkv_say(RKV_EXIT_FAIL, "stress: could not start thread %u", started);
	unsigned failed = 0;
	for (unsigned i = 0; i < started; i++)
		if (ts[i].failed && failed++ == 0) /* the first: the rest tend to share its cause */
			code = rkv_say(RKV_EXIT_FAIL, "stress: %s", ts[i].err);
	if (failed > 1)
		rkv_say(RKV_EXIT_FAIL, "stress: %u more writers failed (not shown)", failed - 1);
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

