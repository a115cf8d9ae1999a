/*
 * bench_util.c — option parsing, timing, thread runner, statistics, histogram, CSV and
 * Markdown report, progress line for the pagebox benchmarks (see bench_util.h, BENCH.md).
 *
 * Invariants:
 *   - the CSV file always starts with exactly pbox_bench_csv_header; rows are only appended,
 *     one per run, flushed at once so an interrupted benchmark keeps what it measured;
 *   - a report never mixes a CSV file that has another header (refused at create);
 *   - the thread runner never leaves threads running when it returns.
 *
 * Memory ordering: the runner's start gate is a mutex + condition variable (its unlock/lock
 * order the setup before the workers start); the stop flag is stored with release after the
 * measured interval and read relaxed by workers (they only need to see it eventually); worker
 * results are published to the caller by pthread_join. Everything else is single-threaded.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------------- */

bool pbox_bench_list_has(const pbox_bench_list *l, const char *word)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->item[i], word) == 0)
			return true;
	return false;
}

int pbox_bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int pbox_bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end != '\0') {
		end++;
		/* accept "64M", "64MB", "64MiB" */
		if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int pbox_bench_parse_threads(const char *s, unsigned *out, size_t max, size_t *n)
{
	size_t count = 0;
	const char *p = s;
	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		char *end;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (errno != 0 || v == 0 || v > 4096 || count == max)
			return -EINVAL;
		out[count++] = (unsigned)v;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -EINVAL;
		p = end + 1;
	}
	*n = count;
	return 0;
}

int pbox_bench_parse_list(const char *s, pbox_bench_list *out)
{
	pbox_bench_list l = { 0 };
	if (!s || !*s)
		return -EINVAL;
	l.storage = strdup(s);
	if (!l.storage)
		return -ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(l.storage, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (l.n == PBOX_BENCH_MAX_LIST) {
			free(l.storage);
			return -EINVAL;
		}
		l.item[l.n++] = tok;
	}
	if (l.n == 0) {
		free(l.storage);
		return -EINVAL;
	}
	*out = l;
	return 0;
}

void pbox_bench_config_init(pbox_bench_config *c, const char *program, const char *summary,
			    double default_seconds, const char *default_threads)
{
	memset(c, 0, sizeof(*c));
	c->program = program;
	c->summary = summary;
	c->runs = 3;
	c->seconds = default_seconds;
	c->quick_seconds = 0.2;
	if (pbox_bench_parse_threads(default_threads, c->threads, PBOX_BENCH_MAX_THREADS,
				     &c->nthreads) != 0) {
		c->threads[0] = 1;
		c->nthreads = 1;
	}
}

void pbox_bench_config_fini(pbox_bench_config *c)
{
	for (size_t i = 0; i < c->nextra; i++) {
		if (c->extra[i].kind == PBOX_BENCH_OPT_LIST) {
			pbox_bench_list *l = c->extra[i].dest;
			free(l->storage);
			memset(l, 0, sizeof(*l));
		}
	}
}

static const char *default_tmp(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

void pbox_bench_usage(const pbox_bench_config *c, FILE *out)
{
	fprintf(out, "usage: %s [options]\n", c->program);
	if (c->summary)
		fprintf(out, "%s\n", c->summary);
	fprintf(out,
		"\nCommon options (../shared/BENCH.md):\n"
		"  --runs R           runs per measurement; tables show median and min-max "
		"(default %u)\n"
		"  --seconds S        seconds per run (default %g)\n"
		"  --threads LIST     comma-separated thread counts (default ",
		c->runs, c->seconds);
	for (size_t i = 0; i < c->nthreads; i++)
		fprintf(out, "%s%u", i ? "," : "", c->threads[i]);
	fprintf(out,
		")\n"
		"  --dir DIR          parent of the scratch directory (default %s); the scratch\n"
		"                     directory is removed afterwards\n"
		"  --csv FILE         append one CSV row per run to FILE\n"
		"  --quick            smoke test: 1 run of %g s (unless --runs/--seconds given)\n"
		"  --help             this text\n",
		default_tmp(), c->quick_seconds);
	if (c->nextra) {
		fprintf(out, "\nProgram options:\n");
		for (size_t i = 0; i < c->nextra; i++) {
			const pbox_bench_option *o = &c->extra[i];
			char left[64];
			if (o->kind == PBOX_BENCH_OPT_FLAG)
				snprintf(left, sizeof(left), "--%s", o->name);
			else
				snprintf(left, sizeof(left), "--%s %s", o->name,
					 o->metavar ? o->metavar : "VALUE");
			fprintf(out, "  %-18s %s\n", left, o->help ? o->help : "");
		}
	}
	if (c->usage_extra)
		fprintf(out, "\n%s\n", c->usage_extra);
}

static int usage_error(const pbox_bench_config *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const pbox_bench_config *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", c->program);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	return -1;
}

static int set_extra(pbox_bench_config *c, const pbox_bench_option *o, const char *val)
{
	int rc = 0;
	switch (o->kind) {
	case PBOX_BENCH_OPT_FLAG:
		*(bool *)o->dest = true;
		break;
	case PBOX_BENCH_OPT_UINT:
		rc = pbox_bench_parse_u64(val, o->dest);
		break;
	case PBOX_BENCH_OPT_SIZE:
		rc = pbox_bench_parse_size(val, o->dest);
		break;
	case PBOX_BENCH_OPT_DOUBLE: {
		char *end;
		errno = 0;
		double d = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || !isfinite(d))
			rc = -EINVAL;
		else
			*(double *)o->dest = d;
		break;
	}
	case PBOX_BENCH_OPT_STRING:
		*(const char **)o->dest = val;
		break;
	case PBOX_BENCH_OPT_LIST: {
		pbox_bench_list l;
		rc = pbox_bench_parse_list(val, &l);
		if (rc == 0) {
			pbox_bench_list *dst = o->dest;
			free(dst->storage);
			*dst = l;
		}
		break;
	}
	}
	if (rc != 0)
		return usage_error(c, "bad value for --%s", o->name);
	return 0;
}

int pbox_bench_parse_args(pbox_bench_config *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0)
			return usage_error(c, "unexpected argument '%s'", arg);
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const char *inline_val = eq ? eq + 1 : NULL;
		bool flag = false;

#define IS(opt) (len == strlen(opt) && strncmp(name, opt, len) == 0)
		if (IS("help")) {
			pbox_bench_usage(c, stdout);
			return 1;
		}
		if (IS("quick")) {
			flag = true;
			c->quick = true;
		}
		const pbox_bench_option *extra = NULL;
		for (size_t k = 0; k < c->nextra && !flag; k++) {
			if (IS(c->extra[k].name)) {
				extra = &c->extra[k];
				flag = extra->kind == PBOX_BENCH_OPT_FLAG;
			}
		}
		if (flag) {
			if (inline_val)
				return usage_error(c, "option '%s' takes no value", arg);
			if (extra)
				(void)set_extra(c, extra, NULL);
			continue;
		}
		if (!extra && !IS("runs") && !IS("seconds") && !IS("threads") && !IS("dir") &&
		    !IS("csv"))
			return usage_error(c, "unknown option '%s'", arg);
		const char *val = inline_val;
		if (!val) {
			if (i + 1 >= argc)
				return usage_error(c, "option '%s' needs a value", arg);
			val = argv[++i];
		}
		if (extra) {
			if (set_extra(c, extra, val) != 0)
				return -1;
		} else if (IS("runs")) {
			uint64_t v;
			if (pbox_bench_parse_u64(val, &v) != 0 || v == 0 || v > 1000)
				return usage_error(c, "bad --runs '%s' (1..1000)", val);
			c->runs = (unsigned)v;
			c->runs_set = true;
		} else if (IS("seconds")) {
			char *end;
			errno = 0;
			double d = strtod(val, &end);
			if (errno != 0 || end == val || *end != '\0' || !(d > 0) || !isfinite(d))
				return usage_error(c, "bad --seconds '%s' (a positive number)", val);
			c->seconds = d;
			c->seconds_set = true;
		} else if (IS("threads")) {
			if (pbox_bench_parse_threads(val, c->threads, PBOX_BENCH_MAX_THREADS,
						     &c->nthreads) != 0)
				return usage_error(c, "bad --threads '%s' (e.g. 1,2,4)", val);
			c->threads_set = true;
		} else if (IS("dir")) {
			c->dir = val;
		} else {
			c->csv = val;
		}
#undef IS
	}
	if (c->quick) {
		if (!c->runs_set)
			c->runs = 1;
		if (!c->seconds_set)
			c->seconds = c->quick_seconds;
	}
	return 0;
}

/* ---- scratch directory ----------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	int rc = 0;
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';
		if (*s == '/' || end) {
			*s = '\0';
			if (mkdir(p, 0777) != 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			if (end)
				break;
			*s = '/';
		}
	}
	free(p);
	return rc;
}

int pbox_bench_scratch_create(const pbox_bench_config *c, const char *tag, char **path_out)
{
	const char *parent = c->dir ? c->dir : default_tmp();
	int rc = mkdir_p(parent);
	if (rc != 0)
		return rc;
	size_t n = strlen(parent) + strlen(c->program) + strlen(tag) + 16;
	char *p = malloc(n);
	if (!p)
		return -ENOMEM;
	snprintf(p, n, "%s/%s-%s-XXXXXX", parent, c->program, tag);
	if (!mkdtemp(p)) {
		rc = -errno;
		free(p);
		return rc;
	}
	*path_out = p;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void pbox_bench_scratch_remove(char *path)
{
	if (!path)
		return;
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "warning: could not remove scratch directory %s\n", path);
	free(path);
}

/* ---- time and resources ------------------------------------------------------------ */

uint64_t pbox_bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pbox_bench_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

int64_t pbox_bench_peak_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f) {
		char line[256];
		long long kb = -1;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
				break;
		fclose(f);
		if (kb >= 0)
			return (int64_t)kb * 1024;
	}
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0)
		return (int64_t)ru.ru_maxrss * 1024; /* Linux: kilobytes */
	return PBOX_BENCH_NA;
}

int pbox_bench_peak_rss_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, "5", 1) == 1 ? 0 : -errno;
	close(fd);
	return rc;
}

/* ---- thread runner --------------------------------------------------------------------- */

struct runner {
	pbox_bench_worker worker;
	void *ctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready; /* workers waiting at the gate; protected by mu */
	bool go;	/* the gate is open; protected by mu */
	_Atomic bool stop;
};

struct runner_arg {
	struct runner *r;
	unsigned tid;
};

static void *runner_main(void *p)
{
	struct runner_arg *a = p;
	struct runner *r = a->r;
	pthread_mutex_lock(&r->mu);
	r->ready++;
	pthread_cond_broadcast(&r->cv);
	while (!r->go)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	if (!atomic_load_explicit(&r->stop, memory_order_relaxed))
		r->worker(r->ctx, a->tid, &r->stop);
	return NULL;
}

static void sleep_until(uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = pbox_bench_now_ns();
		if (now >= deadline_ns)
			return;
		uint64_t left = deadline_ns - now;
		struct timespec ts = { .tv_sec = (time_t)(left / 1000000000u),
				       .tv_nsec = (long)(left % 1000000000u) };
		nanosleep(&ts, NULL);
	}
}

/* Open the gate (all workers released at once by one broadcast). */
static void runner_open(struct runner *r)
{
	pthread_mutex_lock(&r->mu);
	r->go = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

int pbox_bench_run_threads(unsigned nthreads, double seconds, pbox_bench_worker worker,
			   void *ctx, pbox_bench_timing *out)
{
	if (nthreads == 0)
		return -EINVAL;
	struct runner r = { .worker = worker, .ctx = ctx };
	struct runner_arg *args = calloc(nthreads, sizeof(*args));
	pthread_t *th = calloc(nthreads, sizeof(*th));
	int rc = 0;
	unsigned started = 0;

	if (!args || !th) {
		free(args);
		free(th);
		return -ENOMEM;
	}
	atomic_init(&r.stop, false);
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	for (; started < nthreads; started++) {
		args[started].r = &r;
		args[started].tid = started;
		int e = pthread_create(&th[started], NULL, runner_main, &args[started]);
		if (e != 0) {
			rc = -e;
			break;
		}
	}
	if (rc != 0) {
		/* Let the workers already started leave without running, and reap them. */
		atomic_store_explicit(&r.stop, true, memory_order_release);
		runner_open(&r);
		for (unsigned i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		goto out;
	}

	/* Wait until every worker is at the gate, so thread start-up is not measured. */
	pthread_mutex_lock(&r.mu);
	while (r.ready < nthreads)
		pthread_cond_wait(&r.cv, &r.mu);
	pthread_mutex_unlock(&r.mu);

	uint64_t t0 = pbox_bench_now_ns();
	uint64_t c0 = pbox_bench_cpu_ns();
	runner_open(&r);
	if (seconds > 0) {
		sleep_until(t0 + (uint64_t)(seconds * 1e9));
		atomic_store_explicit(&r.stop, true, memory_order_release);
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	uint64_t t1 = pbox_bench_now_ns();
	uint64_t c1 = pbox_bench_cpu_ns();
	out->seconds = (double)(t1 - t0) / 1e9;
	out->cpu_ns = c1 - c0;
out:
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	free(args);
	free(th);
	return rc;
}

/* ---- statistics ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

pbox_bench_summary pbox_bench_summarize(const double *v, size_t n)
{
	pbox_bench_summary s = { .n = n };
	if (n == 0)
		return s;
	double *t = malloc(n * sizeof(*t));
	if (!t) {
		/* No memory for a sorted copy: min and max still, median unknown. */
		s.min = s.max = v[0];
		for (size_t i = 1; i < n; i++) {
			s.min = fmin(s.min, v[i]);
			s.max = fmax(s.max, v[i]);
		}
		s.median = NAN;
		return s;
	}
	memcpy(t, v, n * sizeof(*t));
	qsort(t, n, sizeof(*t), cmp_double);
	s.min = t[0];
	s.max = t[n - 1];
	s.median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return s;
}

void pbox_bench_hist_init(pbox_bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void pbox_bench_hist_merge(pbox_bench_hist *dst, const pbox_bench_hist *src)
{
	for (unsigned i = 0; i < PBOX_BENCH_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Smallest value of bucket i and the bucket's width. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
	if (i < PBOX_BENCH_HIST_SUB) {
		*lo = i;
		*width = 1;
		return;
	}
	unsigned shift = (i >> PBOX_BENCH_HIST_SUB_BITS) - 1u;
	uint64_t mant = (uint64_t)(i & (PBOX_BENCH_HIST_SUB - 1u)) + PBOX_BENCH_HIST_SUB;
	*lo = mant << shift;
	*width = (uint64_t)1 << shift;
}

uint64_t pbox_bench_hist_quantile(const pbox_bench_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* rank: the smallest value with at least ceil(q * count) values at or below it */
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	if (rank >= h->count)
		return h->max; /* the largest value is known exactly */
	uint64_t seen = 0;
	for (unsigned i = 0; i < PBOX_BENCH_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t lo, width;
			bucket_range(i, &lo, &width);
			uint64_t mid = lo + (width - 1) / 2;
			if (mid < h->min)
				mid = h->min;
			if (mid > h->max)
				mid = h->max;
			return mid;
		}
	}
	return h->max;
}

/* ---- report ------------------------------------------------------------------------------ */

const char pbox_bench_csv_header[] =
	"program,engine,workload,threads,keys,value_size,budget_bytes,run,ops,seconds,"
	"ops_per_sec,p50_us,p99_us,cpu_us_per_op,peak_rss_bytes";

void pbox_bench_row_init(pbox_bench_row *r)
{
	memset(r, 0, sizeof(*r));
	r->engine = "-";
	r->workload = "-";
	r->keys = r->value_size = r->budget_bytes = PBOX_BENCH_NA;
	r->run = 1;
	r->p50_us = r->p99_us = r->cpu_us_per_op = -1;
	r->peak_rss_bytes = PBOX_BENCH_NA;
}

struct stored_row {
	pbox_bench_row r;
	char *engine, *workload; /* owned copies; r.engine / r.workload point here */
};

struct pbox_bench_report {
	char *program;
	char *baseline; /* NULL: no ratio column */
	FILE *csv;	/* NULL: no CSV */
	struct stored_row *rows;
	size_t n, cap;
};

/* Returns 0 if the file is new/empty (header written) or starts with our header. */
static int csv_check_or_write_header(FILE *f, const char *path)
{
	struct stat st;
	if (fstat(fileno(f), &st) != 0)
		return -errno;
	if (st.st_size == 0) {
		if (fprintf(f, "%s\n", pbox_bench_csv_header) < 0 || fflush(f) != 0)
			return -EIO;
		return 0;
	}
	FILE *r = fopen(path, "r");
	if (!r)
		return -errno;
	char line[512];
	int rc = 0;
	if (!fgets(line, sizeof(line), r)) {
		rc = -EIO;
	} else {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, pbox_bench_csv_header) != 0) {
			fprintf(stderr,
				"error: %s exists with a different CSV header; refusing to mix "
				"rows.\n  found:    %s\n  expected: %s\n",
				path, line, pbox_bench_csv_header);
			rc = -EINVAL;
		}
	}
	fclose(r);
	return rc;
}

int pbox_bench_report_create(pbox_bench_report **out, const char *program,
			     const char *csv_path, const char *baseline_engine)
{
	pbox_bench_report *rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	rep->program = strdup(program);
	rep->baseline = baseline_engine ? strdup(baseline_engine) : NULL;
	if (!rep->program || (baseline_engine && !rep->baseline)) {
		pbox_bench_report_destroy(rep);
		return -ENOMEM;
	}
	if (csv_path) {
		rep->csv = fopen(csv_path, "a");
		if (!rep->csv) {
			int rc = -errno;
			fprintf(stderr, "error: cannot open %s: %s\n", csv_path, strerror(-rc));
			pbox_bench_report_destroy(rep);
			return rc;
		}
		int rc = csv_check_or_write_header(rep->csv, csv_path);
		if (rc != 0) {
			pbox_bench_report_destroy(rep);
			return rc;
		}
	}
	*out = rep;
	return 0;
}

static void csv_int(FILE *f, int64_t v)
{
	if (v < 0)
		fputs(",-", f);
	else
		fprintf(f, ",%" PRId64, v);
}

/* A fixed-point field with `prec` decimals, or with prec < 0 six significant digits. */
static void csv_double(FILE *f, double v, int prec)
{
	fputc(',', f);
	if (v < 0 || !isfinite(v))
		fputc('-', f);
	else if (prec >= 0)
		fprintf(f, "%.*f", prec, v);
	else
		fprintf(f, "%.6g", v);
}

/* CSV fields are our own identifiers; anything with a comma or quote would be quoted. */
static void csv_text(FILE *f, const char *s, bool first)
{
	if (!first)
		fputc(',', f);
	if (strpbrk(s, ",\"\n")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

static double row_ops_per_sec(const pbox_bench_row *r)
{
	return r->seconds > 0 ? (double)r->ops / r->seconds : 0;
}

int pbox_bench_report_add(pbox_bench_report *rep, const pbox_bench_row *row)
{
	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 32;
		struct stored_row *nr = realloc(rep->rows, cap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rep->rows = nr;
		rep->cap = cap;
	}
	struct stored_row *s = &rep->rows[rep->n];
	s->r = *row;
	s->engine = strdup(row->engine ? row->engine : "-");
	s->workload = strdup(row->workload ? row->workload : "-");
	if (!s->engine || !s->workload) {
		free(s->engine);
		free(s->workload);
		return -ENOMEM;
	}
	s->r.engine = s->engine;
	s->r.workload = s->workload;
	rep->n++;

	if (rep->csv) {
		FILE *f = rep->csv;
		csv_text(f, rep->program, true);
		csv_text(f, s->engine, false);
		csv_text(f, s->workload, false);
		fprintf(f, ",%u", row->threads);
		csv_int(f, row->keys);
		csv_int(f, row->value_size);
		csv_int(f, row->budget_bytes);
		fprintf(f, ",%u,%" PRIu64 ",%.6f", row->run, row->ops, row->seconds);
		csv_double(f, row_ops_per_sec(row), 1);
		csv_double(f, row->p50_us, 3);
		csv_double(f, row->p99_us, 3);
		csv_double(f, row->cpu_us_per_op, -1);
		csv_int(f, row->peak_rss_bytes);
		fputc('\n', f);
		if (fflush(f) != 0 || ferror(f))
			return -EIO;
	}
	return 0;
}

/* 3 significant digits with an SI suffix: "45.2 M". */
static void fmt_si(char *buf, size_t n, double v)
{
	static const char *const suffix[] = { "", " k", " M", " G", " T" };
	unsigned i = 0;
	while (fabs(v) >= 999.5 && i + 1 < sizeof(suffix) / sizeof(suffix[0])) {
		v /= 1000;
		i++;
	}
	snprintf(buf, n, "%.3g%s", v, suffix[i]);
}

/* One table line: the runs of one (workload, threads, engine). */
struct group {
	const char *workload, *engine;
	unsigned threads;
	size_t nruns;
	pbox_bench_summary ops, cpu, p50, p99;
	int64_t rss_max;
	int64_t keys, value_size, budget;
};

static bool same_cell(const pbox_bench_row *a, const char *workload, unsigned threads,
		      const char *engine)
{
	return a->threads == threads && strcmp(a->workload, workload) == 0 &&
	       (!engine || strcmp(a->engine, engine) == 0);
}

/* Summaries over the runs of a cell; fields with a negative ("n/a") value are skipped. */
static void summarize_cell(const pbox_bench_report *rep, struct group *g)
{
	double *ops = malloc(rep->n * sizeof(double) * 4);
	if (!ops) {
		g->nruns = 0;
		return;
	}
	double *cpu = ops + rep->n, *p50 = cpu + rep->n, *p99 = p50 + rep->n;
	size_t n = 0, ncpu = 0, n50 = 0, n99 = 0;
	g->rss_max = PBOX_BENCH_NA;
	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		if (!same_cell(r, g->workload, g->threads, g->engine))
			continue;
		ops[n++] = row_ops_per_sec(r);
		if (r->cpu_us_per_op >= 0)
			cpu[ncpu++] = r->cpu_us_per_op;
		if (r->p50_us >= 0)
			p50[n50++] = r->p50_us;
		if (r->p99_us >= 0)
			p99[n99++] = r->p99_us;
		if (r->peak_rss_bytes > g->rss_max)
			g->rss_max = r->peak_rss_bytes;
		g->keys = r->keys;
		g->value_size = r->value_size;
		g->budget = r->budget_bytes;
	}
	g->nruns = n;
	g->ops = pbox_bench_summarize(ops, n);
	g->cpu = pbox_bench_summarize(cpu, ncpu);
	g->p50 = pbox_bench_summarize(p50, n50);
	g->p99 = pbox_bench_summarize(p99, n99);
	free(ops);
}

static void md_int(FILE *out, int64_t v)
{
	if (v >= 0)
		fprintf(out, " %" PRId64 " |", v);
	else
		fputs(" - |", out);
}

/* `prec` decimals, or with prec < 0 four significant digits; negative values are "-". */
static void md_double(FILE *out, double v, int prec)
{
	if (v < 0 || !isfinite(v))
		fputs(" - |", out);
	else if (prec >= 0)
		fprintf(out, " %.*f |", prec, v);
	else
		fprintf(out, " %.4g |", v);
}

void pbox_bench_report_print(const pbox_bench_report *rep, FILE *out)
{
	bool any_keys = false, any_vsize = false, any_budget = false, any_cpu = false;
	bool any_p50 = false, any_p99 = false, any_rss = false;
	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		any_keys |= r->keys >= 0;
		any_vsize |= r->value_size >= 0;
		any_budget |= r->budget_bytes >= 0;
		any_cpu |= r->cpu_us_per_op >= 0;
		any_p50 |= r->p50_us >= 0;
		any_p99 |= r->p99_us >= 0;
		any_rss |= r->peak_rss_bytes >= 0;
	}

	fprintf(out, "| workload | threads |");
	if (any_keys)
		fprintf(out, " keys |");
	if (any_vsize)
		fprintf(out, " value size |");
	if (any_budget)
		fprintf(out, " budget |");
	fprintf(out, " engine | runs | ops/s (median) | ops/s (min–max) |");
	if (rep->baseline)
		fprintf(out, " vs %s |", rep->baseline);
	if (any_p50)
		fprintf(out, " p50 µs |");
	if (any_p99)
		fprintf(out, " p99 µs |");
	if (any_cpu)
		fprintf(out, " CPU µs/op |");
	if (any_rss)
		fprintf(out, " peak RSS MiB |");
	fprintf(out, "\n|---|---:|");
	if (any_keys)
		fprintf(out, "---:|");
	if (any_vsize)
		fprintf(out, "---:|");
	if (any_budget)
		fprintf(out, "---:|");
	fprintf(out, "---|---:|---:|---:|");
	if (rep->baseline)
		fprintf(out, "---:|");
	if (any_p50)
		fprintf(out, "---:|");
	if (any_p99)
		fprintf(out, "---:|");
	if (any_cpu)
		fprintf(out, "---:|");
	if (any_rss)
		fprintf(out, "---:|");
	fputc('\n', out);

	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		/* Print each (workload, threads, engine) once, at its first run. */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = same_cell(&rep->rows[j].r, r->workload, r->threads, r->engine);
		if (seen)
			continue;
		struct group g = { .workload = r->workload, .engine = r->engine,
				   .threads = r->threads };
		summarize_cell(rep, &g);
		if (g.nruns == 0)
			continue;
		char med[32], lo[32], hi[32];
		fmt_si(med, sizeof(med), g.ops.median);
		fmt_si(lo, sizeof(lo), g.ops.min);
		fmt_si(hi, sizeof(hi), g.ops.max);

		fprintf(out, "| %s | %u |", g.workload, g.threads);
		if (any_keys)
			md_int(out, g.keys);
		if (any_vsize)
			md_int(out, g.value_size);
		if (any_budget)
			md_int(out, g.budget);
		fprintf(out, " %s | %zu | %s | %s – %s |", g.engine, g.nruns, med, lo, hi);
		if (rep->baseline) {
			struct group b = { .workload = r->workload, .engine = rep->baseline,
					   .threads = r->threads };
			summarize_cell(rep, &b);
			if (b.nruns > 0 && b.ops.median > 0)
				fprintf(out, " %.2fx |", g.ops.median / b.ops.median);
			else
				fprintf(out, " - |");
		}
		if (any_p50)
			md_double(out, g.p50.n ? g.p50.median : -1, 2);
		if (any_p99)
			md_double(out, g.p99.n ? g.p99.median : -1, 2);
		if (any_cpu)
			md_double(out, g.cpu.n ? g.cpu.median : -1, -1);
		if (any_rss)
			md_double(out, g.rss_max >= 0 ? (double)g.rss_max / 1048576.0 : -1, 1);
		fputc('\n', out);
	}
}

void pbox_bench_report_destroy(pbox_bench_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->rows[i].engine);
		free(rep->rows[i].workload);
	}
	free(rep->rows);
	if (rep->csv)
		fclose(rep->csv);
	free(rep->program);
	free(rep->baseline);
	free(rep);
}

/* ---- progress line -------------------------------------------------------------------- */

static int progress_enabled = -1; /* -1 unknown; main thread only */
static bool progress_shown;

static bool progress_ok(void)
{
	if (progress_enabled < 0) {
		struct stat st;
		bool stdout_pipe = fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
		progress_enabled = isatty(STDERR_FILENO) && !stdout_pipe;
	}
	return progress_enabled == 1;
}

void pbox_bench_progress(const char *fmt, ...)
{
	if (!progress_ok())
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("\r\033[K", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = true;
}

void pbox_bench_progress_done(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = false;
	}
}
