/*
 * bench_util_system.c — what the benchmark programs ask of the system: a scratch directory
 * per engine instance, clocks (wall, process CPU), peak resident memory, and the thread
 * runner that starts the workers together and stops them after --seconds.
 *
 * Invariants:
 *   - a scratch directory is always a new directory made by mkdtemp under --dir (or $TMPDIR,
 *     or /tmp); only that directory is ever removed, never anything the user owns;
 *   - the thread runner never leaves threads running when it returns (also when creating
 *     a thread failed: the ones started are released without running and joined);
 *   - the measured interval starts when the gate opens, after every worker is waiting at
 *     it (thread start-up is not measured), and ends when the last worker has returned;
 *     CPU time is the whole process's over that interval (engines' background threads
 *     included).
 *
 * Memory ordering: the runner's start gate is a mutex + condition variable (its unlock/lock
 * order the setup before the workers start); the stop flag is stored with release after the
 * measured interval and read relaxed by workers (they only need to see it eventually); worker
 * results are published to the caller by pthread_join.
 */
#define _GNU_SOURCE
#include "bench_util.h"
#include "bench_util_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
	const char *parent = c->dir ? c->dir : pbox__bench_default_tmp();
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
