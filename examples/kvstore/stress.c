/*
 * stress.c — `kvstore stress` (concurrent writers that log what was acknowledged) and
 * `kvstore check-acks` (the proof that nothing acknowledged was lost).
 *
 * stress, keys mode: thread i writes keys t<i>-<seq> with ascending seq, each as an upsert
 * or in transactions of K consecutive keys (--batch K, any size), and after each
 * acknowledgement appends one line per key to the ack file with a single write(2)
 * (O_APPEND, no user-space buffer):
 *
 *     KEY <TAB> CRC32C of the value, 8 hex digits <TAB> BATCH-ID <LF>
 *
 * so the file only ever claims what the store already promised. Sequence numbers continue
 * after the largest one found in the store or in the ack file, so runs on one store never
 * rewrite a key (a rewritten key could hold a newer, unacknowledged value legitimately).
 *
 * stress, transfers mode (--transfers N): N accounts acct/<8 digits> holding decimal
 * balances, created once (ACCT_INITIAL each; acct/total records "<total> <N> <initial>").
 * Each thread repeatedly moves an amount between two accounts in one transaction that also
 * writes a record xfer/<thread>/<seq, 12 digits> = "<from> <to> <amount>", retrying on
 * PBOX_ECONFLICT after a short random backoff, and after each commit appends "T <thread> <seq> <from> <to> <amount>".
 * Meanwhile the main thread sums the balances in read-only snapshots (each must see the
 * total exactly: a snapshot never sees part of a commit).
 *
 * With --backup-every S --backup-dir DIR the main thread also takes a backup every S seconds
 * into DIR/backup-<n> (kv_backup_now), between ack-file comment lines "# backup PATH begin"
 * and "# backup PATH end": every acknowledgement above the begin line must be in that copy.
 *
 * check-acks, the proof, is check_acks.c; the transfer keys and values are xfer.c.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_VALUE (16u << 20)
#define MAX_BATCH 100000u
#define MAX_ACCOUNTS 1000000u
#define AUDIT_INTERVAL 0.1 /* seconds between the snapshot audits of a transfers run */

/* ---- stress ---------------------------------------------------------------------------- */

typedef struct stress_run {
	kv_db db;
	int ack_fd;
	unsigned batch;
	unsigned accounts; /* --transfers: the number of accounts (0: keys mode) */
	uint64_t total;    /* --transfers: what the balances sum to */
	unsigned flags;    /* commit flags: PBOX_BT_DURABLE unless --durability fast */
	size_t value_size;
	uint64_t backup_rate; /* --backup-rate: bytes per second for each backup (0: no limit) */
	double deadline;
	atomic_bool stop;
	atomic_int error;        /* first store error */
	atomic_uint finished;    /* threads that returned */
} stress_run;

typedef struct stress_thread {
	stress_run *run;
	pthread_t tid;
	unsigned id;
	uint64_t next_seq;
	uint64_t keys, commits;
	uint64_t conflicts, retired; /* retries after PBOX_ECONFLICT / PBOX_ESNAPSHOT */
	uint64_t rng;
	double t_end; /* when it stopped writing (a backup in progress may outlast it) */
} stress_thread;

static atomic_bool stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_signal, true);
}

static bool stopping(stress_run *r)
{
	return atomic_load(&r->stop) || atomic_load(&stop_signal) || kv_now() >= r->deadline;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Before retry number n (1, 2, ...) of a transaction that lost a conflict: sleep a random
 * time below 50 us x 2^(n-1), at most 5 ms. Without it a loser spins through thousands of
 * doomed attempts while the winner's durable commit waits for the disk. */
static void backoff(uint64_t *rng, unsigned n)
{
	double cap = 50e-6 * (double)(1u << (n < 8 ? n - 1 : 7));
	if (cap > 5e-3)
		cap = 5e-3;
	sleep_s(cap * (double)(rng_next(rng) % 1024) / 1024.0);
}

static int ack_line(char *out, const char *key, const char *val, size_t vlen, const char *bid)
{
	return sprintf(out, "%s\t%08x\t%s\n", key, kv_value_sum(val, vlen), bid);
}

/* One transaction of r->batch consecutive keys, retried on a conflict (none is expected:
 * a thread's keys are its own). 0, 1 when stopped while retrying, or an error. The ack
 * lines are left in acks. */
static int put_batch(stress_thread *t, char *val, char *acks, size_t *alen)
{
	stress_run *r = t->run;
	char key[KV_KEY_MAX], bid[KV_BATCH_ID_MAX];
	kv_batch_id(bid, t->id, t->next_seq, r->batch);
	for (unsigned attempt = 1;; attempt++) {
		pbox_txn *x;
		int rc = pbox_txn_begin(r->db.st, 0, &x);
		if (rc)
			return rc;
		*alen = 0;
		for (unsigned j = 0; j < r->batch && !rc; j++) {
			int kl = kv_stress_key(key, t->id, t->next_seq + j);
			size_t vl = kv_value_make(val, r->value_size, key, (size_t)kl, bid);
			rc = pbox_txn_put(x, r->db.bt, key, (size_t)kl, val, vl);
			*alen += (size_t)ack_line(acks + *alen, key, val, vl, bid);
		}
		if (!rc)
			rc = pbox_txn_commit(x, r->flags);
		else
			pbox_txn_abort(x);
		if (rc != PBOX_ECONFLICT && rc != PBOX_ESNAPSHOT)
			return rc;
		if (rc == PBOX_ECONFLICT)
			t->conflicts++;
		else
			t->retired++;
		if (stopping(r))
			return 1;
		backoff(&t->rng, attempt);
	}
}

static void *stress_main(void *arg)
{
	stress_thread *t = arg;
	stress_run *r = t->run;
	size_t vcap = r->value_size + KV_KEY_MAX + KV_BATCH_ID_MAX + 16;
	char *val = malloc(vcap);
	char *acks = malloc((size_t)r->batch * (KV_KEY_MAX + KV_BATCH_ID_MAX + 16));
	int rc = !val || !acks ? -ENOMEM : 0;
	while (!rc && !stopping(r)) {
		char key[KV_KEY_MAX];
		size_t alen = 0;
		if (r->batch == 1) {
			int kl = kv_stress_key(key, t->id, t->next_seq);
			size_t vl = kv_value_make(val, r->value_size, key, (size_t)kl, "-");
			rc = pbox_bt_upsert(r->db.bt, key, (size_t)kl, val, vl, r->flags);
			if (!rc)
				alen = (size_t)ack_line(acks, key, val, vl, "-");
		} else {
			rc = put_batch(t, val, acks, &alen);
		}
		if (rc)
			break;
		/* committed (durable unless --durability fast): only now may the file say so */
		rc = kv_write_all(r->ack_fd, acks, alen);
		if (rc)
			break;
		t->next_seq += r->batch;
		t->keys += r->batch;
		t->commits++;
	}
	if (rc < 0) {
		int expected = 0;
		atomic_compare_exchange_strong(&r->error, &expected, rc);
		atomic_store(&r->stop, true);
	}
	free(val);
	free(acks);
	t->t_end = kv_now();
	atomic_fetch_add(&r->finished, 1);
	return NULL;
}

/* A balance: the decimal value of key in x. PBOX_ECORRUPT (with a message) if it is not
 * one, PBOX_ENOTFOUND likewise for a missing account. */
static int read_balance(pbox_txn *x, pbox_bt *bt, const char *key, uint64_t *bal)
{
	char buf[32];
	size_t n;
	int rc = pbox_txn_get(x, bt, key, strlen(key), buf, sizeof(buf), &n);
	if (rc == PBOX_ENOTFOUND || rc == PBOX_ETOOSMALL || (!rc && kv_parse_digits(buf, n, bal))) {
		fprintf(stderr, "kvstore: stress: %s %s\n", key,
			rc == PBOX_ENOTFOUND ? "is missing" : "does not hold a decimal balance");
		return rc == PBOX_ENOTFOUND ? rc : PBOX_ECORRUPT;
	}
	return rc;
}

/* One transfer attempt: read both balances, move min(want, payer's balance), write the
 * record; commit. 0 (*moved: the amount), PBOX_ECONFLICT, PBOX_ESNAPSHOT or an error. */
static int transfer_once(stress_run *r, unsigned th, uint64_t seq, unsigned from, unsigned to,
			 uint64_t want, uint64_t *moved)
{
	pbox_txn *x;
	int rc = pbox_txn_begin(r->db.st, 0, &x);
	if (rc)
		return rc;
	char kf[32], kt[32], kx[64], vf[24], vt[24], rec[64];
	uint64_t bf = 0, bt = 0;
	acct_key(kf, from);
	acct_key(kt, to);
	rc = read_balance(x, r->db.bt, kf, &bf);
	if (!rc)
		rc = read_balance(x, r->db.bt, kt, &bt);
	uint64_t amount = want < bf ? want : bf;
	if (!rc) {
		int n = snprintf(vf, sizeof(vf), "%" PRIu64, bf - amount);
		rc = pbox_txn_put(x, r->db.bt, kf, strlen(kf), vf, (size_t)n);
	}
	if (!rc) {
		int n = snprintf(vt, sizeof(vt), "%" PRIu64, bt + amount);
		rc = pbox_txn_put(x, r->db.bt, kt, strlen(kt), vt, (size_t)n);
	}
	if (!rc) {
		int kl = xfer_key(kx, th, seq);
		int n = snprintf(rec, sizeof(rec), "%u %u %" PRIu64, from, to, amount);
		rc = pbox_txn_put(x, r->db.bt, kx, (size_t)kl, rec, (size_t)n);
	}
	if (rc) {
		pbox_txn_abort(x);
		return rc;
	}
	*moved = amount;
	return pbox_txn_commit(x, r->flags);
}

static void *transfer_main(void *arg)
{
	stress_thread *t = arg;
	stress_run *r = t->run;
	int rc = 0;
	while (!rc && !stopping(r)) {
		unsigned from = (unsigned)(rng_next(&t->rng) % r->accounts);
		unsigned to = (unsigned)(rng_next(&t->rng) % (r->accounts - 1));
		if (to >= from)
			to++;
		uint64_t want = 1 + rng_next(&t->rng) % XFER_MAX_AMOUNT, moved = 0;
		for (unsigned attempt = 1;; attempt++) {
			rc = transfer_once(r, t->id, t->next_seq, from, to, want, &moved);
			if (rc != PBOX_ECONFLICT && rc != PBOX_ESNAPSHOT)
				break;
			if (rc == PBOX_ECONFLICT)
				t->conflicts++;
			else
				t->retired++;
			if (stopping(r)) {
				rc = 1; /* abandoned: nothing of it was applied */
				break;
			}
			backoff(&t->rng, attempt);
		}
		if (rc)
			break;
		char line[128];
		int n = snprintf(line, sizeof(line), "T %u %" PRIu64 " %u %u %" PRIu64 "\n", t->id,
				 t->next_seq, from, to, moved);
		rc = kv_write_all(r->ack_fd, line, (size_t)n);
		if (rc)
			break;
		t->next_seq++;
		t->commits++;
	}
	if (rc < 0) {
		int expected = 0;
		atomic_compare_exchange_strong(&r->error, &expected, rc);
		atomic_store(&r->stop, true);
	}
	t->t_end = kv_now();
	atomic_fetch_add(&r->finished, 1);
	return NULL;
}

/* ---- the accounts ------------------------------------------------------------------------ */

typedef struct acct_sum {
	unsigned accounts;
	uint64_t sum, count, bad;
} acct_sum;

static int sum_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	acct_sum *as = arg;
	unsigned i;
	uint64_t b;
	if (acct_key_parse(key, klen, &i))
		return 0; /* acct/total */
	if (i >= as->accounts || kv_parse_digits(val, vlen, &b)) {
		as->bad++;
		return 0;
	}
	as->sum += b;
	as->count++;
	return 0;
}

/* Sum the balances in one read-only snapshot. */
static int audit(stress_run *r, acct_sum *as)
{
	pbox_txn *x;
	memset(as, 0, sizeof(*as));
	as->accounts = r->accounts;
	int rc = pbox_txn_begin(r->db.st, PBOX_TXN_READONLY, &x);
	if (rc)
		return rc;
	rc = pbox_txn_scan(x, r->db.bt, ACCT_PREFIX, sizeof(ACCT_PREFIX) - 1, "acct0", 5, 0,
			   sum_one, as);
	pbox_txn_abort(x);
	return rc;
}

/* Create the accounts once (one durable transaction), or find them. 0, or an exit code. */
static int setup_accounts(stress_run *r, unsigned n)
{
	char buf[96], key[32], val[24];
	size_t vl;
	uint64_t f[3];
	int rc = pbox_bt_lookup(r->db.bt, ACCT_TOTAL_KEY, sizeof(ACCT_TOTAL_KEY) - 1, buf,
				sizeof(buf), &vl);
	if (rc == 0) {
		if (parse_numbers(buf, vl, f, 3) || f[1] < 2 || f[1] > MAX_ACCOUNTS ||
		    f[0] != f[1] * f[2]) {
			fprintf(stderr, "kvstore: stress: %s does not hold \"<total> <accounts> "
					"<initial balance>\"\n",
				ACCT_TOTAL_KEY);
			return KV_EXIT_STORE;
		}
		if (f[1] != n) {
			fprintf(stderr, "kvstore: stress: the store already holds %" PRIu64
					" accounts (%s): use --transfers %" PRIu64 "\n",
				f[1], ACCT_TOTAL_KEY, f[1]);
			return KV_EXIT_USAGE;
		}
		r->total = f[0];
		return 0;
	}
	if (rc != PBOX_ENOTFOUND && rc != PBOX_ETOOSMALL) {
		kv_err("stress: reading " ACCT_TOTAL_KEY, rc);
		return KV_EXIT_STORE;
	}
	if (rc == PBOX_ETOOSMALL) {
		fprintf(stderr, "kvstore: stress: %s is malformed\n", ACCT_TOTAL_KEY);
		return KV_EXIT_STORE;
	}
	pbox_txn *x;
	if ((rc = pbox_txn_begin(r->db.st, 0, &x))) {
		kv_err("stress: creating the accounts", rc);
		return KV_EXIT_STORE;
	}
	int vn = snprintf(val, sizeof(val), "%u", ACCT_INITIAL);
	for (unsigned i = 0; i < n && !rc; i++) {
		int kl = acct_key(key, i);
		rc = pbox_txn_put(x, r->db.bt, key, (size_t)kl, val, (size_t)vn);
	}
	r->total = (uint64_t)n * ACCT_INITIAL;
	int tl = snprintf(buf, sizeof(buf), "%" PRIu64 " %u %u", r->total, n, ACCT_INITIAL);
	if (!rc)
		rc = pbox_txn_put(x, r->db.bt, ACCT_TOTAL_KEY, sizeof(ACCT_TOTAL_KEY) - 1, buf,
				  (size_t)tl);
	if (!rc)
		rc = pbox_txn_commit(x, PBOX_BT_DURABLE);
	else
		pbox_txn_abort(x);
	if (rc) {
		kv_err("stress: creating the accounts", rc);
		return KV_EXIT_STORE;
	}
	return 0;
}

/* ---- sequence numbers continue ------------------------------------------------------------ */

/* Largest sequence number per thread in the ack file (complete lines only): of the key lines
 * (keys mode) or of the T lines (transfers). */
static void ack_file_max(const char *path, uint64_t *max, unsigned nthreads, bool transfers)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break;
		unsigned th;
		uint64_t seq;
		if (transfers) {
			uint64_t v[2];
			char *sp = line + 2;
			char *e1 = strchr(sp, ' '), *e2 = e1 ? strchr(e1 + 1, ' ') : NULL;
			if (strncmp(line, "T ", 2) || !e2 ||
			    parse_numbers(sp, (size_t)(e2 - sp), v, 2) || v[0] >= nthreads)
				continue;
			th = (unsigned)v[0];
			seq = v[1];
		} else {
			char *tab = strchr(line, '\t');
			if (!tab || kv_stress_key_parse(line, (size_t)(tab - line), &th, &seq) ||
			    th >= nthreads)
				continue;
		}
		if (seq > max[th])
			max[th] = seq;
	}
	free(line);
	fclose(f);
}

typedef struct last_key {
	unsigned thread;
	uint64_t seq;
	bool found, transfers;
} last_key;

static int take_last(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	(void)vlen;
	last_key *lk = arg;
	unsigned th;
	uint64_t seq;
	int rc = lk->transfers ? xfer_key_parse(key, klen, &th, &seq)
			       : kv_stress_key_parse(key, klen, &th, &seq);
	if (!rc && th == lk->thread) {
		lk->seq = seq;
		lk->found = true;
		return 1;
	}
	return 0;
}

static const char stress_usage[] =
	"usage: stress --threads N (1..256) --seconds S --ack-file FILE "
	"[--batch K (1..100000) [--value-size B (up to 16M)] | --transfers ACCOUNTS (2..1000000)] "
	"[--backup-every SECONDS --backup-dir DIR [--backup-rate R]]";

/* A backup into dir/backup-<n> (the first n not taken), between ack-file lines
 * "# backup PATH begin" and "# backup PATH end": every acknowledgement before the begin line
 * was written after its commit, and kv_backup_now flushes the log first, so the copy holds
 * all of them. 0, or a pbox error (printed). */
static int stress_backup(stress_run *r, const char *dir, unsigned *n)
{
	char path[4200], line[4300], msg[512];
	do
		snprintf(path, sizeof(path), "%s/backup-%u", dir, ++*n);
	while (access(path, F_OK) == 0);
	int ll = snprintf(line, sizeof(line), "# backup %s begin\n", path);
	if (kv_write_all(r->ack_fd, line, (size_t)ll)) {
		fprintf(stderr, "kvstore: stress: writing the ack file: %s\n", strerror(errno));
		return -EIO;
	}
	int rc = kv_backup_now(r->db.st, path, r->backup_rate, false, NULL, msg, sizeof(msg));
	if (rc) {
		fprintf(stderr, "kvstore: stress: backup %s: %s\n", path, msg);
		return rc;
	}
	ll = snprintf(line, sizeof(line), "# backup %s end\n", path);
	if (kv_write_all(r->ack_fd, line, (size_t)ll)) {
		fprintf(stderr, "kvstore: stress: writing the ack file: %s\n", strerror(errno));
		return -EIO;
	}
	return 0;
}

int kv_cmd_stress(const kv_opts *o, int argc, char **argv)
{
	uint64_t threads = 0, batch = 1, vsize = 100, accounts = 0;
	bool batch_set = false, vsize_set = false;
	double seconds = -1, backup_every = 0;
	uint64_t backup_rate = 0; /* bytes per second, 0: no limit */
	const char *ack = NULL, *backup_dir = NULL;
	for (int i = 1; i < argc; i += 2) { /* option, value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = !v;
		if (!bad && !strcmp(a, "--threads"))
			bad = kv_parse_u64(v, &threads) || threads == 0 || threads > MAX_THREADS;
		else if (!bad && !strcmp(a, "--seconds"))
			bad = kv_parse_seconds(v, &seconds);
		else if (!bad && !strcmp(a, "--ack-file"))
			ack = v;
		else if (!bad && !strcmp(a, "--batch")) {
			bad = kv_parse_u64(v, &batch) || batch == 0 || batch > MAX_BATCH;
			batch_set = true;
		} else if (!bad && !strcmp(a, "--value-size")) {
			bad = kv_parse_size(v, &vsize) || vsize > MAX_VALUE;
			vsize_set = true;
		} else if (!bad && !strcmp(a, "--backup-every"))
			bad = kv_parse_seconds(v, &backup_every) || backup_every <= 0;
		else if (!bad && !strcmp(a, "--backup-rate"))
			bad = kv_parse_size(v, &backup_rate) || backup_rate == 0;
		else if (!bad && !strcmp(a, "--backup-dir"))
			bad = !*(backup_dir = v);
		else if (!bad && !strcmp(a, "--transfers"))
			bad = kv_parse_u64(v, &accounts) || accounts < 2 || accounts > MAX_ACCOUNTS;
		else
			bad = 1;
		if (bad) {
			fprintf(stderr, "kvstore: stress: bad or unknown option %s (%s)\n", a,
				stress_usage);
			return KV_EXIT_USAGE;
		}
	}
	if (!threads || seconds < 0 || !ack) {
		fprintf(stderr, "kvstore: stress needs --threads, --seconds and --ack-file (%s)\n",
			stress_usage);
		return KV_EXIT_USAGE;
	}
	if (accounts && (batch_set || vsize_set)) {
		fprintf(stderr, "kvstore: stress: --transfers takes no --batch or --value-size (%s)\n",
			stress_usage);
		return KV_EXIT_USAGE;
	}
	if ((backup_every > 0) != (backup_dir != NULL) || (backup_rate && !backup_dir)) {
		fprintf(stderr, "kvstore: stress: --backup-every and --backup-dir go together (%s)\n",
			stress_usage);
		return KV_EXIT_USAGE;
	}
	if (backup_dir && mkdir(backup_dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "kvstore: stress: %s: %s\n", backup_dir, strerror(errno));
		return KV_EXIT_STORE;
	}
	bool transfers = accounts > 0;
	stress_run *r = calloc(1, sizeof(*r));
	stress_thread *ts = calloc(threads, sizeof(*ts));
	if (!r || !ts) {
		free(r);
		free(ts);
		return KV_EXIT_STORE;
	}
	int code = KV_EXIT_STORE;
	r->ack_fd = open(ack, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (r->ack_fd < 0) {
		fprintf(stderr, "kvstore: stress: %s: %s\n", ack, strerror(errno));
		goto out;
	}
	if (kv_open(o, true, &r->db))
		goto out;
	r->flags = r->db.flags;
	r->accounts = (unsigned)accounts;
	if (transfers) {
		int c = setup_accounts(r, (unsigned)accounts);
		if (c) {
			code = c;
			goto out_close;
		}
		char hdr[160];
		int hl = snprintf(hdr, sizeof(hdr),
				  "# stress --transfers: %u accounts, total %" PRIu64
				  "; lines: T thread seq from to amount\n",
				  r->accounts, r->total);
		if (kv_write_all(r->ack_fd, hdr, (size_t)hl)) {
			fprintf(stderr, "kvstore: stress: %s: %s\n", ack, strerror(errno));
			goto out_close;
		}
	}
	/* continue every thread's sequence after what the store and the ack file hold */
	uint64_t *max = calloc(threads, sizeof(*max));
	if (!max)
		goto out_close;
	ack_file_max(ack, max, (unsigned)threads, transfers);
	for (unsigned i = 0; i < threads; i++) {
		char prefix[KV_KEY_MAX];
		int pl = transfers ? snprintf(prefix, sizeof(prefix), XFER_PREFIX "%u/", i)
				   : snprintf(prefix, sizeof(prefix), "t%u-", i);
		last_key lk = {i, 0, false, transfers};
		int rc = pbox_bt_scan_prefix(r->db.bt, prefix, (size_t)pl, PBOX_BT_SCAN_REVERSE,
					     take_last, &lk);
		if (rc < 0) {
			kv_err("stress: scanning existing keys", rc);
			free(max);
			goto out_close;
		}
		if (lk.found && lk.seq > max[i])
			max[i] = lk.seq;
		ts[i].next_seq = max[i] + 1;
		ts[i].rng = (((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 8) ^
			     (0x9E3779B97F4A7C15ull * (i + 1))) | 1;
	}
	free(max);
	r->batch = (unsigned)batch;
	r->backup_rate = backup_rate;
	r->value_size = vsize;
	r->deadline = kv_now() + seconds;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	double t0 = kv_now();
	unsigned started = 0;
	for (; started < threads; started++) {
		ts[started].run = r;
		ts[started].id = started;
		if (pthread_create(&ts[started].tid, NULL, transfers ? transfer_main : stress_main,
				   &ts[started])) {
			atomic_store(&r->stop, true);
			break;
		}
	}
	/* transfers: audit the balances in snapshots while the threads run, and once after */
	uint64_t audits = 0, audits_retired = 0;
	acct_sum as = {0};
	int audit_rc = 0;
	bool audit_bad = false;
	double next_audit = kv_now(), next_backup = kv_now() + backup_every;
	unsigned backup_n = 0, backups = 0;
	int backup_rc = 0;
	while ((transfers || backup_dir) && atomic_load(&r->finished) < started) {
		if (backup_dir && kv_now() >= next_backup) {
			if ((backup_rc = stress_backup(r, backup_dir, &backup_n))) {
				atomic_store(&r->stop, true);
				break;
			}
			backups++;
			next_backup = kv_now() + backup_every;
		}
		if (!transfers || kv_now() < next_audit) {
			sleep_s(0.01);
			continue;
		}
		next_audit = kv_now() + AUDIT_INTERVAL;
		int rc = audit(r, &as);
		if (rc == PBOX_ESNAPSHOT) {
			audits_retired++;
		} else if (rc) {
			audit_rc = rc;
			atomic_store(&r->stop, true);
			break;
		} else if (as.sum != r->total || as.count != r->accounts || as.bad) {
			audit_bad = true;
			atomic_store(&r->stop, true);
			break;
		} else {
			audits++;
		}
	}
	uint64_t keys = 0, commits = 0, conflicts = 0, retired = 0;
	double t_end = t0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		if (ts[i].t_end > t_end)
			t_end = ts[i].t_end;
		keys += ts[i].keys;
		commits += ts[i].commits;
		conflicts += ts[i].conflicts;
		retired += ts[i].retired;
	}
	double el = t_end - t0; /* the writers' time: rates are theirs */
	if (transfers && !audit_rc && !audit_bad) {
		audit_rc = audit(r, &as);
		if (!audit_rc && (as.sum != r->total || as.count != r->accounts || as.bad))
			audit_bad = true;
		else if (!audit_rc)
			audits++;
	}
	int err = atomic_load(&r->error);
	if (started < threads) {
		fprintf(stderr, "kvstore: stress: could not start thread %u\n", started);
	} else if (err) {
		kv_err("stress", err);
	} else if (backup_rc) {
		; /* printed by stress_backup */
	} else if (audit_rc) {
		kv_err("stress: summing the balances in a snapshot", audit_rc);
	} else if (audit_bad) {
		fprintf(stderr,
			"kvstore: stress: a snapshot saw %" PRIu64 " accounts (%" PRIu64
			" malformed) summing to %" PRIu64 ", expected %u summing to %" PRIu64 "\n",
			as.count, as.bad, as.sum, r->accounts, r->total);
	} else {
		code = KV_EXIT_OK;
	}
	const char *how = r->flags & PBOX_BT_DURABLE ? "durable" : "fast";
	if (transfers)
		printf("stress: %u threads, %.2f s: %" PRIu64 " transfers committed (%s), %" PRIu64
		       " conflict retries, %.0f txn/s; %" PRIu64
		       " snapshot audits, balances of %u accounts sum to %" PRIu64
		       " (expected %" PRIu64 ")\n",
		       started, el, commits, how, conflicts, el > 0 ? (double)commits / el : 0.0,
		       audits, r->accounts, as.sum, r->total);
	else
		printf("stress: %u threads, %.2f s: %" PRIu64 " keys acknowledged in %" PRIu64
		       " %s %s (%.0f keys/s, %.0f commits/s)\n",
		       started, el, keys, commits, how,
		       r->batch > 1 ? "transactions" : "puts", el > 0 ? (double)keys / el : 0.0,
		       el > 0 ? (double)commits / el : 0.0);
	if (retired || audits_retired)
		printf("stress: %" PRIu64 " transactions and %" PRIu64
		       " audits found their snapshot retired (version cap)\n",
		       retired, audits_retired);
	if (backup_dir)
		printf("stress: %u backups into %s\n", backups, backup_dir);
	if (!transfers && conflicts)
		printf("stress: %" PRIu64 " conflict retries\n", conflicts);
out_close:
	if (kv_close(&r->db))
		code = KV_EXIT_STORE;
out:
	if (r->ack_fd >= 0)
		close(r->ack_fd);
	free(r);
	free(ts);
	return code;
}

