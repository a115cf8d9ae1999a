/*
 * kvstore_torture.c — kill -9 torture of the kvstore binary: crash safety end to end.
 *
 *   kvstore_torture KVSTORE CYCLES
 *
 * CYCLES x PBOX_STRESS_SCALE cycles, EPOCH of them on each store. Each cycle starts a writer on the store —
 * `kvstore stress` (1–3 threads, single puts or transactions of up to 64 keys — now and then
 * up to 2000 —, small or overflow values, a roomy or a tiny pool; or, one stress cycle in
 * five, `--transfers` between TORTURE_ACCOUNTS accounts: conflicting transactions) or
 * `kvstore batch` driven from here (begin/put/commit transactions of 1–6 keys, now and then
 * up to 300, and single puts, durable, or fast followed by `sync`, now and then a
 * checkpoint) — and kills it with
 * SIGKILL at a random moment: sometimes during its open (while recovery runs), mostly in the
 * middle of the write stream, sometimes between sending a commit and reading its OK. Then
 * `kvstore check-acks` on that cycle's ack file and `kvstore verify` must both succeed: no
 * acknowledged key lost or changed, no batch in part, every tree well formed, and every
 * open (the writer's, the checker's) must succeed; with transfers, check-acks also requires the
 * balances to add up and to match the transfer records in the store. Acknowledgements of every cycle are also
 * kept in one cumulative file, checked every 5 cycles and before the store is replaced, so
 * a later crash that damaged earlier data is caught too. Every EPOCH cycles the test starts
 * on a fresh store (so the full checks stay cheap while the number of crashes grows).
 *
 * The acknowledgement rule for the batch writer is the same as stress's: an ack line is
 * written only after the OK that promised durability was read (durable mode), or after the
 * OK of a later `sync` (fast mode).
 *
 * Prints its seed (PBOX_SEED reproduces the choices; the kill moments depend on timing).
 * Exit 0 on success, 1 on any violation; the scratch directory is kept on failure.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "pbox_test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Cycles per store: every full check reads the whole store cold (O_DIRECT), so one store
 * that grew for hundreds of cycles would make the checks dominate the run. */
#define EPOCH 15
/* Accounts of `stress --transfers` (fixed per store: the store records its count). */
#define TORTURE_ACCOUNTS "50"

static const char *kvbin;
static char *work, store[4096], acks[4096], all_acks[4096], logpath[4096];
static pbox_rng rng;

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(((uint64_t)(ms * 1e6)) % 1000000000)};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* fork + exec kvstore with argv; stdin from in_fd (or /dev/null), stdout to out_fd (or
 * the log), stderr to the log. */
static pid_t spawn(char **argv, int in_fd, int out_fd)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int log = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
	int null = open("/dev/null", O_RDONLY);
	dup2(in_fd >= 0 ? in_fd : null, 0);
	dup2(out_fd >= 0 ? out_fd : log, 1);
	dup2(log, 2);
	execv(kvbin, argv);
	_exit(127);
}

/* Run kvstore to completion; its exit code (or 128 + signal). */
static int run(char **argv)
{
	pid_t pid = spawn(argv, -1, -1);
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return 126;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void log_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_note(const char *fmt, ...)
{
	FILE *f = fopen(logpath, "a");
	if (!f)
		return;
	static double t0;
	if (t0 == 0)
		t0 = kv_now();
	fprintf(f, "[%8.3f] ", kv_now() - t0);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static int append_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "r"), *b = fopen(to, "a");
	int rc = a && b ? 0 : -1;
	char buf[65536];
	size_t n;
	while (!rc && (n = fread(buf, 1, sizeof(buf), a)) > 0) {
		/* a torn last line of this cycle must not glue onto the next cycle's first */
		if (fwrite(buf, 1, n, b) != n)
			rc = -1;
	}
	if (a)
		fclose(a);
	if (b)
		fclose(b);
	return rc;
}

/* Drop a torn last line (no newline) so the cumulative file stays line-aligned. */
static void trim_torn(const char *path)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END), p = end;
	char c = '\n';
	while (p > 0) {
		if (pread(fd, &c, 1, p - 1) != 1 || c == '\n')
			break;
		p--;
	}
	if (p != end && ftruncate(fd, p) == 0)
		log_note("torture: trimmed a torn ack line (%lld bytes)\n", (long long)(end - p));
	close(fd);
}

/* Complete lines, not counting comments (lines starting with '#'). */
static uint64_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	uint64_t n = 0;
	int c;
	bool start = true, comment = false;
	if (!f)
		return 0;
	while ((c = getc(f)) != EOF) {
		if (start)
			comment = c == '#';
		start = c == '\n';
		n += c == '\n' && !comment;
	}
	fclose(f);
	return n;
}

/* ---- the batch-protocol writer ---------------------------------------------------------- */

typedef struct bw {
	FILE *to, *from;
	int ack_fd;
	char *pending;     /* fast mode: ack lines waiting for a sync */
	size_t plen, pcap;
	uint64_t pkeys;    /* keys in pending */
	bool fast;
} bw;

static int pend(bw *w, const char *s, size_t n)
{
	if (w->plen + n > w->pcap) {
		size_t nc = (w->plen + n) * 2;
		char *p = realloc(w->pending, nc);
		if (!p)
			return -1;
		w->pending = p;
		w->pcap = nc;
	}
	memcpy(w->pending + w->plen, s, n);
	w->plen += n;
	return 0;
}

/* Read one response line; 0, or -1 when the writer is gone. */
static int response(bw *w, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, w->from))
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int flush_acks(bw *w)
{
	size_t off = 0;
	while (off < w->plen) {
		ssize_t n = write(w->ack_fd, w->pending + off, w->plen - off);
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	w->plen = 0;
	return 0;
}

/* Drive `kvstore batch` until kill_at (monotonic seconds); returns the number of keys
 * acknowledged, or -1 on a protocol violation (the writer said something unexpected). */
static int64_t batch_writer(pid_t pid, bw *w, double kill_at, unsigned thread)
{
	uint64_t seq = 1;
	int64_t acked = 0;
	char line[256], val[512], key[KV_KEY_MAX], bid[KV_BATCH_ID_MAX];
	while (kv_now() < kill_at) {
		unsigned r = (unsigned)pbox_rng_below(&rng, 100);
		if (r < 2) {
			fputs("checkpoint\n", w->to);
			fflush(w->to);
			if (response(w, line, sizeof(line)))
				break;
			if (strcmp(line, "OK"))
				goto bad;
			continue;
		}
		if (r < 10 && w->fast) {
			fputs("sync\n", w->to);
			fflush(w->to);
			if (response(w, line, sizeof(line)))
				break;
			if (strcmp(line, "OK"))
				goto bad;
			acked += (int64_t)w->pkeys;
			w->pkeys = 0;
			if (flush_acks(w))
				return -1;
			continue;
		}
		/* a transaction of 1..6 keys (one in ten: 7..300) with values of 30..200 bytes */
		unsigned n = r < 40	 ? 1
			     : r < 90 ? 1 + (unsigned)pbox_rng_below(&rng, 6)
				      : 7 + (unsigned)pbox_rng_below(&rng, 294);
		size_t vs = 30 + pbox_rng_below(&rng, 170);
		bool txn = n > 1 || r < 25;
		if (txn) {
			kv_batch_id(bid, thread, seq, n);
			fputs("begin\n", w->to);
		} else {
			strcpy(bid, "-");
		}
		size_t alen = 0;
		char acks_buf[300 * 128];
		for (unsigned j = 0; j < n; j++) {
			int kl = kv_stress_key(key, thread, seq + j);
			size_t vl = kv_value_make(val, vs, key, (size_t)kl, bid);
			/* stress keys and values are printable with no space or '%': no %HH needed */
			fprintf(w->to, "put %s %.*s\n", key, (int)vl, val);
			alen += (size_t)snprintf(acks_buf + alen, sizeof(acks_buf) - alen,
						 "%s\t%08x\t%s\n", key, kv_value_sum(val, vl), bid);
		}
		if (txn)
			fputs("commit\n", w->to);
		fflush(w->to);
		seq += n;
		/* sometimes kill right after the commit went out, before its OK is read */
		if (pbox_rng_below(&rng, 400) == 0) {
			sleep_ms((double)pbox_rng_below(&rng, 3000) / 1000.0);
			break;
		}
		unsigned expect = txn ? n + 2 : 1;
		bool ok = true;
		for (unsigned j = 0; j < expect; j++) {
			if (response(w, line, sizeof(line)))
				return acked; /* killed (cannot happen before kill_at) */
			if (strcmp(line, "OK"))
				ok = false;
		}
		if (!ok)
			goto bad;
		if (w->fast) {
			if (pend(w, acks_buf, alen))
				return -1;
			w->pkeys += n;
		} else {
			if (write(w->ack_fd, acks_buf, alen) != (ssize_t)alen)
				return -1;
			acked += n;
		}
	}
	(void)pid;
	return acked;
bad:
	fprintf(stderr, "torture: batch writer answered '%s' unexpectedly\n", line);
	return -1;
}

/* ---- one cycle -------------------------------------------------------------------------- */

typedef struct totals {
	uint64_t stress_cycles, transfer_cycles, batch_cycles, early_kills, writer_exits, acked,
		stores;
} totals;

static int cycle(unsigned c, totals *t)
{
	char budget[32], threads[8], bsz[8], vsz[16];
	const char *vbudget = pbox_rng_below(&rng, 4) == 0 ? "1M" : "64M";
	snprintf(budget, sizeof(budget), "%s", vbudget);
	unlink(acks);
	int ack_fd = open(acks, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
	if (ack_fd < 0)
		return -1;
	/* kill moment: 10% early (during open and recovery), else in the write stream */
	bool early = pbox_rng_below(&rng, 10) == 0;
	double delay_ms = early ? (double)pbox_rng_below(&rng, 40)
				: 40.0 + (double)pbox_rng_below(&rng, 300);
	bool use_stress = pbox_rng_below(&rng, 10) < 6;
	log_note("--- cycle %u: %s, budget %s, kill after %.0f ms\n", c,
		 use_stress ? "stress" : "batch", budget, delay_ms);
	pid_t pid;
	int status = 0;
	double t0 = kv_now();
	if (use_stress) {
		t->stress_cycles++;
		snprintf(threads, sizeof(threads), "%u", 1 + (unsigned)pbox_rng_below(&rng, 3));
		/* value sizes: small, medium, overflow; transactions of up to 64 keys (32 of
		 * overflow values), one in ten up to 2000 (small values) */
		static const unsigned vs[] = {40, 100, 300, 3000};
		static const unsigned maxb[] = {64, 64, 64, 32};
		/* overflow values (3000 bytes) one cycle in eight: they fill the store fastest */
		unsigned vi = pbox_rng_below(&rng, 8) ? (unsigned)pbox_rng_below(&rng, 3) : 3;
		unsigned b = pbox_rng_below(&rng, 2) ? 1 : 1 + (unsigned)pbox_rng_below(&rng, maxb[vi]);
		if (vi < 3 && b > 1 && pbox_rng_below(&rng, 10) == 0)
			b = 2 + (unsigned)pbox_rng_below(&rng, 1999);
		snprintf(bsz, sizeof(bsz), "%u", b);
		snprintf(vsz, sizeof(vsz), "%u", vs[vi]);
		bool transfers = pbox_rng_below(&rng, 5) == 0;
		char *argv[] = {(char *)kvbin, "-d", store, "--budget", budget, "stress",
				"--threads", threads, "--seconds", "60", "--ack-file", acks,
				"--batch", bsz, "--value-size", vsz, NULL};
		if (transfers) { /* --transfers ACCOUNTS instead of --batch and --value-size */
			t->transfer_cycles++;
			argv[12] = "--transfers";
			argv[13] = TORTURE_ACCOUNTS;
			argv[14] = NULL;
			log_note("torture: stress --threads %s --transfers %s\n", threads,
				 TORTURE_ACCOUNTS);
		} else {
			log_note("torture: stress --threads %s --batch %s --value-size %s\n",
				 threads, bsz, vsz);
		}
		pid = spawn(argv, -1, -1);
		if (pid < 0)
			return -1;
		sleep_ms(delay_ms);
		if (waitpid(pid, &status, WNOHANG) == pid) {
			t->writer_exits++;
			fprintf(stderr, "torture: cycle %u: stress exited by itself (status %d)\n", c,
				status);
			close(ack_fd);
			return -1;
		}
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	} else {
		t->batch_cycles++;
		bool fast = pbox_rng_below(&rng, 3) == 0;
		int in[2], out[2];
		if (pipe(in) || pipe(out))
			return -1;
		char *argv[] = {(char *)kvbin, "-d", store, "--budget", budget, "--durability",
				fast ? "fast" : "durable", "batch", NULL};
		log_note("torture: batch --durability %s\n", fast ? "fast" : "durable");
		pid = spawn(argv, in[0], out[1]);
		close(in[0]);
		close(out[1]);
		fcntl(in[1], F_SETFD, FD_CLOEXEC);
		fcntl(out[0], F_SETFD, FD_CLOEXEC);
		bw w = {fdopen(in[1], "w"), fdopen(out[0], "r"), ack_fd, NULL, 0, 0, 0, fast};
		int64_t a = early ? 0 : batch_writer(pid, &w, t0 + delay_ms / 1000.0, 1000000 + c);
		if (early)
			sleep_ms(delay_ms);
		if (waitpid(pid, &status, WNOHANG) == pid) {
			t->writer_exits++;
			fprintf(stderr, "torture: cycle %u: batch exited by itself (status %d)\n", c,
				status);
			a = -1;
		} else {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
		fclose(w.to);
		fclose(w.from);
		free(w.pending);
		if (a < 0) {
			close(ack_fd);
			return -1;
		}
	}
	close(ack_fd);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		fprintf(stderr, "torture: cycle %u: writer ended with status %d, not by the kill\n",
			c, status);
		return -1;
	}
	if (early)
		t->early_kills++;
	trim_torn(acks);
	uint64_t n = count_lines(acks);
	t->acked += n;
	log_note("torture: %" PRIu64 " keys or transfers acknowledged this cycle\n", n);
	log_note("torture: check-acks\n");
	char *ca[] = {(char *)kvbin, "-d", store, "check-acks", acks, NULL};
	int rc = run(ca);
	if (rc) {
		fprintf(stderr, "torture: cycle %u: check-acks exit %d\n", c, rc);
		return -1;
	}
	log_note("torture: verify\n");
	char *va[] = {(char *)kvbin, "-d", store, "verify", NULL};
	rc = run(va);
	if (rc) {
		fprintf(stderr, "torture: cycle %u: verify exit %d\n", c, rc);
		return -1;
	}
	if (append_file(acks, all_acks))
		return -1;
	return 0;
}

/* Create a store, first killing a creation at a random moment (most of a creation's
 * ~40 ms is zero-filling the first log segment): a crashed creation must leave no store or
 * a whole one, and the next creation must succeed (storage builds data.new and renames it
 * once its superblocks are durable). */
static uint64_t creation_kills;

static int create_store(void)
{
	char *pa[] = {(char *)kvbin, "-d", store, "put", "torture-store", "1", NULL};
	pid_t pid = spawn(pa, -1, -1);
	if (pid > 0) {
		sleep_ms((double)pbox_rng_below(&rng, 40000) / 1000.0);
		kill(pid, SIGKILL);
		int st;
		(void)waitpid(pid, &st, 0);
		creation_kills++;
	}
	int rc = run(pa);
	if (rc)
		fprintf(stderr, "torture: creating the store after a killed creation: exit %d\n", rc);
	return rc ? -1 : 0;
}

static int check_all(unsigned c)
{
	char *ca[] = {(char *)kvbin, "-d", store, "check-acks", all_acks, NULL};
	int rc = run(ca);
	if (rc)
		fprintf(stderr, "torture: after cycle %u: check-acks of all acknowledgements: exit %d\n",
			c, rc);
	return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: kvstore_torture KVSTORE CYCLES\n");
		return 2;
	}
	kvbin = argv[1];
	unsigned cycles = (unsigned)strtoul(argv[2], NULL, 10) * pbox_test_scale();
	uint64_t seed = pbox_test_seed();
	pbox_rng_seed(&rng, seed);
	signal(SIGPIPE, SIG_IGN);
	work = pbox_test_tmpdir("kvtorture");
	snprintf(store, sizeof(store), "%s/store", work);
	snprintf(acks, sizeof(acks), "%s/acks", work);
	snprintf(all_acks, sizeof(all_acks), "%s/acks-all", work);
	snprintf(logpath, sizeof(logpath), "%s/log", work);
	printf("kvstore_torture: seed %" PRIu64 ", %u cycles, scratch %s\n", seed, cycles, work);
	fflush(stdout);
	totals t = {.stores = 1};
	double t0 = kv_now();
	int failed = create_store();
	unsigned c = 0;
	for (; c < cycles && !failed; c++) {
		if (cycle(c, &t) || ((c + 1) % 5 == 0 && check_all(c))) {
			failed = 1;
		} else if ((c + 1) % EPOCH == 0 && c + 1 < cycles) {
			/* a fresh store: a full check reads the whole store cold, and a store
			 * that grew for hundreds of cycles would make them slow */
			pbox_test_rmtree(store);
			unlink(all_acks);
			t.stores++;
			failed = create_store();
		}
	}
	if (!failed && check_all(c))
		failed = 1;
	/* a store that never acknowledged anything would pass every check: require writes (a
	 * count over the whole run, not a rate: sanitizer builds on a loaded machine
	 * acknowledge few, and no timing may gate the run) */
	if (!failed && t.acked == 0) {
		printf("kvstore_torture: no key acknowledged in %u cycles: nothing was tested\n", c);
		failed = 1;
	}
	printf("kvstore_torture: %u cycles on %" PRIu64 " stores (%" PRIu64 " stress of which %" PRIu64
	       " transfers, %" PRIu64 " batch, %" PRIu64 " killed during open, %" PRIu64
	       " creations killed), %" PRIu64 " ack lines, %.1f s: %s\n",
	       c, t.stores, t.stress_cycles, t.transfer_cycles, t.batch_cycles, t.early_kills,
	       creation_kills, t.acked,
	       kv_now() - t0,
	       failed ? "FAILED" : "no acknowledged write lost, every open succeeded");
	if (failed) {
		printf("kvstore_torture: seed %" PRIu64 "; the store, ack files and the log of every "
		       "command are kept in %s\n",
		       seed, work);
		FILE *f = fopen(logpath, "r");
		if (f) { /* the tail of the log: the failing cycle */
			fseek(f, 0, SEEK_END);
			long sz = ftell(f);
			fseek(f, sz > 8000 ? sz - 8000 : 0, SEEK_SET);
			char buf[8001];
			size_t n = fread(buf, 1, 8000, f);
			buf[n] = 0;
			printf("--- log tail ---\n%s\n", buf);
			fclose(f);
		}
		printf("0 passed, 1 failed\n");
		return 1;
	}
	if (!getenv("KV_TORTURE_KEEP"))
		pbox_test_rmtree(work);
	free(work);
	printf("1 passed, 0 failed\n");
	return 0;
}
