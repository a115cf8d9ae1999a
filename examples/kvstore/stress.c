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
 * check-acks: every complete line of the ack file must name a key whose value has the
 * logged checksum, or (T lines) a transfer record with the logged content; every batch named
 * in it must be whole; every stress key found in the store must hold a well-formed value of
 * its own key whose batch is whole (so a batch that was applied in part is found even when
 * it was never acknowledged); and when the store holds accounts, their balances must sum to
 * the total and each must equal its initial balance plus what the transfer records in the
 * store moved to and from it (a transfer applied in part is found even when unacknowledged).
 * Lines starting with '#' are comments. A last line without a newline is a write cut short
 * by the kill and is ignored.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_VALUE (16u << 20)
#define MAX_BATCH 100000u
#define MAX_ACCOUNTS 1000000u
#define ACCT_INITIAL 1000u  /* each account's balance when the accounts are created */
#define XFER_MAX_AMOUNT 100 /* a transfer asks for 1..100 (capped by the payer's balance) */
#define ACCT_PREFIX "acct/"
#define ACCT_TOTAL_KEY "acct/total"
#define XFER_PREFIX "xfer/"
#define AUDIT_INTERVAL 0.1 /* seconds between the snapshot audits of a transfers run */

/* ---- the keys and values of transfers ----------------------------------------------------- */

static int acct_key(char *buf, unsigned i)
{
	return snprintf(buf, 32, ACCT_PREFIX "%08u", i);
}

static int xfer_key(char *buf, unsigned thread, uint64_t seq)
{
	return snprintf(buf, 64, XFER_PREFIX "%u/%012" PRIu64, thread, seq);
}

/* acct/<8 digits>: the account number, or -1 (acct/total and anything else). */
static int acct_key_parse(const void *key, size_t klen, unsigned *i)
{
	const size_t pl = sizeof(ACCT_PREFIX) - 1;
	uint64_t v;
	if (klen != pl + 8 || memcmp(key, ACCT_PREFIX, pl) ||
	    kv_parse_digits((const char *)key + pl, 8, &v))
		return -1;
	*i = (unsigned)v;
	return 0;
}

/* xfer/<thread>/<12 digits> */
static int xfer_key_parse(const void *key, size_t klen, unsigned *thread, uint64_t *seq)
{
	const char *k = key;
	const size_t pl = sizeof(XFER_PREFIX) - 1;
	if (klen < pl + 14 || memcmp(k, XFER_PREFIX, pl))
		return -1;
	const char *slash = memchr(k + pl, '/', klen - pl);
	uint64_t t;
	if (!slash || kv_parse_digits(k + pl, (size_t)(slash - k - pl), &t) || t > UINT32_MAX ||
	    (size_t)(k + klen - slash - 1) != 12 || kv_parse_digits(slash + 1, 12, seq))
		return -1;
	*thread = (unsigned)t;
	return 0;
}

/* Up to n space-separated decimal numbers filling all of [p, p+len): 0, or -1. */
static int parse_numbers(const void *p, size_t len, uint64_t *out, unsigned n)
{
	const char *s = p, *e = s + len;
	for (unsigned i = 0; i < n; i++) {
		const char *sp = i + 1 < n ? memchr(s, ' ', (size_t)(e - s)) : e;
		if (!sp || kv_parse_digits(s, (size_t)(sp - s), &out[i]))
			return -1;
		s = sp + 1;
	}
	return 0;
}

/* ---- stress ---------------------------------------------------------------------------- */

typedef struct stress_run {
	kv_db db;
	int ack_fd;
	unsigned batch;
	unsigned accounts; /* --transfers: the number of accounts (0: keys mode) */
	uint64_t total;    /* --transfers: what the balances sum to */
	unsigned flags;    /* commit flags: PBOX_BT_DURABLE unless --durability fast */
	size_t value_size;
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
		rc = write_all(r->ack_fd, acks, alen);
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
		rc = write_all(r->ack_fd, line, (size_t)n);
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
	"[--batch K (1..100000) [--value-size B (up to 16M)] | --transfers ACCOUNTS (2..1000000)]";

int kv_cmd_stress(const kv_opts *o, int argc, char **argv)
{
	uint64_t threads = 0, batch = 1, vsize = 100, accounts = 0;
	bool batch_set = false, vsize_set = false;
	double seconds = -1;
	const char *ack = NULL;
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
		} else if (!bad && !strcmp(a, "--transfers"))
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
		if (write_all(r->ack_fd, hdr, (size_t)hl)) {
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
	double next_audit = kv_now();
	while (transfers && atomic_load(&r->finished) < started) {
		if (kv_now() < next_audit) {
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
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		keys += ts[i].keys;
		commits += ts[i].commits;
		conflicts += ts[i].conflicts;
		retired += ts[i].retired;
	}
	double el = kv_now() - t0;
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

/* ---- check-acks ------------------------------------------------------------------------ */

#define MAX_REPORTS 50

typedef struct checker {
	pbox_store *st;
	pbox_bt *bt;
	uint64_t violations;
	char *buf;
	size_t cap;
	/* batch ids named by the ack file, checked for wholeness afterwards */
	char **batches;
	size_t nbatches, batches_cap;
	/* the store walk */
	uint64_t scanned, stress_keys;
	char cur_bid[KV_BATCH_ID_MAX];
	unsigned cur_thread, cur_left;
	uint64_t cur_next;
	int store_rc;
	/* transfers */
	uint64_t xfer_acks, xfer_records;
	bool have_accounts;
	uint64_t accounts, acct_total, acct_initial, acct_sum, acct_seen;
	uint64_t *bal;    /* per account: the balance found */
	int64_t *delta;   /* per account: what the transfer records in the store moved */
	unsigned char *seen;
} checker;

static void violation_line(checker *c, const char *line)
{
	if (++c->violations <= MAX_REPORTS)
		printf("%s\n", line);
	else if (c->violations == MAX_REPORTS + 1)
		printf("(more violations follow; only the count is reported from here on)\n");
}

/* Look a key up into c->buf: 0 and *vlen, PBOX_ENOTFOUND, or a store error. */
static int lookup(checker *c, const void *key, size_t klen, size_t *vlen)
{
	if (!c->bt)
		return PBOX_ENOTFOUND;
	int rc = pbox_bt_lookup(c->bt, key, klen, c->buf, c->cap, vlen);
	if (rc == PBOX_ETOOSMALL) {
		char *nb = realloc(c->buf, *vlen);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = *vlen;
		rc = pbox_bt_lookup(c->bt, key, klen, c->buf, c->cap, vlen);
	}
	return rc;
}

static int remember_batch(checker *c, const char *bid)
{
	if (c->nbatches > 0 && !strcmp(c->batches[c->nbatches - 1], bid))
		return 0; /* the lines of one batch are adjacent */
	if (c->nbatches == c->batches_cap) {
		size_t nc = c->batches_cap ? 2 * c->batches_cap : 256;
		char **nb = realloc(c->batches, nc * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		c->batches = nb;
		c->batches_cap = nc;
	}
	c->batches[c->nbatches] = strdup(bid);
	if (!c->batches[c->nbatches])
		return -ENOMEM;
	c->nbatches++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One acknowledged batch must be whole: every member present and belonging to it. */
static int check_batch(checker *c, const char *bid)
{
	unsigned th, count;
	uint64_t first;
	char msg[512];
	if (kv_batch_id_parse(bid, strlen(bid), &th, &first, &count)) {
		snprintf(msg, sizeof(msg), "BADBATCH %s: not a batch id", bid);
		violation_line(c, msg);
		return 0;
	}
	for (unsigned j = 0; j < count; j++) {
		char key[KV_KEY_MAX], got[KV_BATCH_ID_MAX];
		int kl = kv_stress_key(key, th, first + j);
		size_t vl;
		int rc = lookup(c, key, (size_t)kl, &vl);
		if (rc && rc != PBOX_ENOTFOUND)
			return rc;
		if (rc == PBOX_ENOTFOUND) {
			snprintf(msg, sizeof(msg), "PARTIAL %s: member %s is missing", bid, key);
			violation_line(c, msg);
		} else if (kv_value_check(c->buf, vl, key, (size_t)kl, got, sizeof(got)) ||
			   strcmp(got, bid)) {
			snprintf(msg, sizeof(msg), "PARTIAL %s: member %s holds another value", bid,
				 key);
			violation_line(c, msg);
		}
	}
	return 0;
}

static void close_run(checker *c)
{
	if (c->cur_left > 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "PARTIAL %s: the store holds only part of it (seq %" PRIu64
					   " and later missing)",
			 c->cur_bid, c->cur_next);
		violation_line(c, msg);
	}
	c->cur_left = 0;
	c->cur_bid[0] = 0;
}

/* The store walk: every stress key's value is its own and its batch is whole. */
static int walk_pair(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	checker *c = arg;
	unsigned th;
	uint64_t seq;
	c->scanned++;
	if (kv_stress_key_parse(key, klen, &th, &seq))
		return 0; /* not a stress key: none of check-acks' business */
	c->stress_keys++;
	char bid[KV_BATCH_ID_MAX], msg[256];
	if (kv_value_check(val, vlen, key, klen, bid, sizeof(bid))) {
		snprintf(msg, sizeof(msg), "CORRUPT %.*s: the value is not a well-formed value of "
					   "this key (%zu bytes)",
			 (int)klen, (const char *)key, vlen);
		violation_line(c, msg);
		close_run(c);
		return 0;
	}
	if (c->cur_left > 0 && !strcmp(bid, c->cur_bid) && th == c->cur_thread &&
	    seq == c->cur_next) {
		c->cur_left--;
		c->cur_next++;
		if (c->cur_left == 0)
			c->cur_bid[0] = 0;
		return 0;
	}
	close_run(c);
	if (!strcmp(bid, "-"))
		return 0;
	unsigned bth, count;
	uint64_t first;
	if (kv_batch_id_parse(bid, strlen(bid), &bth, &first, &count) || bth != th ||
	    seq < first || seq >= first + count) {
		snprintf(msg, sizeof(msg), "CORRUPT %.*s: names batch %s, which cannot hold it",
			 (int)klen, (const char *)key, bid);
		violation_line(c, msg);
		return 0;
	}
	if (seq != first) {
		snprintf(msg, sizeof(msg), "PARTIAL %s: the store holds only part of it (seq %" PRIu64
					   " missing)",
			 bid, first);
		violation_line(c, msg);
	}
	if (count > 1) {
		memcpy(c->cur_bid, bid, strlen(bid) + 1);
		c->cur_thread = th;
		c->cur_next = seq + 1;
		c->cur_left = (unsigned)(first + count - seq - 1);
	}
	return 0;
}

/* A line "T <thread> <seq> <from> <to> <amount>": the record must be in the store, as
 * acknowledged. */
static int check_transfer_line(checker *c, const char *line, uint64_t lineno)
{
	uint64_t v[5];
	char msg[512], key[64], want[96];
	if (parse_numbers(line + 2, strlen(line + 2), v, 5) || v[0] > UINT32_MAX ||
	    v[2] > UINT32_MAX || v[3] > UINT32_MAX) {
		snprintf(msg, sizeof(msg), "MALFORMED line %" PRIu64 " of the ack file", lineno);
		violation_line(c, msg);
		return 0;
	}
	c->xfer_acks++;
	int kl = xfer_key(key, (unsigned)v[0], v[1]);
	int wl = snprintf(want, sizeof(want), "%u %u %" PRIu64, (unsigned)v[2], (unsigned)v[3],
			  v[4]);
	size_t vl;
	int rc = lookup(c, key, (size_t)kl, &vl);
	if (rc == PBOX_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "MISSING %s: acknowledged transfer (%s) not in the store",
			 key, line);
		violation_line(c, msg);
		return 0;
	}
	if (rc)
		return rc;
	if (vl != (size_t)wl || memcmp(c->buf, want, vl)) {
		snprintf(msg, sizeof(msg), "WRONG %s: acknowledged \"%s\", the store holds \"%.*s\"%s",
			 key, want, (int)(vl < 64 ? vl : 64), c->buf, vl > 64 ? "..." : "");
		violation_line(c, msg);
	}
	return 0;
}

static int walk_account(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	checker *c = arg;
	char msg[256];
	unsigned i;
	uint64_t b;
	if (klen == sizeof(ACCT_TOTAL_KEY) - 1 && !memcmp(key, ACCT_TOTAL_KEY, klen))
		return 0;
	if (acct_key_parse(key, klen, &i) || i >= c->accounts ||
	    kv_parse_digits(val, vlen, &b)) {
		snprintf(msg, sizeof(msg), "CORRUPT %.*s: not one of the %" PRIu64
					   " accounts, or not a decimal balance",
			 (int)(klen < 64 ? klen : 64), (const char *)key, c->accounts);
		violation_line(c, msg);
		return 0;
	}
	c->bal[i] = b;
	c->seen[i] = 1;
	c->acct_seen++;
	c->acct_sum += b;
	return 0;
}

static int walk_transfer(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	checker *c = arg;
	char msg[256];
	unsigned th;
	uint64_t seq, v[3];
	if (xfer_key_parse(key, klen, &th, &seq) || parse_numbers(val, vlen, v, 3) ||
	    v[0] >= c->accounts || v[1] >= c->accounts || v[0] == v[1]) {
		snprintf(msg, sizeof(msg), "CORRUPT %.*s: not a transfer record of %" PRIu64
					   " accounts",
			 (int)(klen < 64 ? klen : 64), (const char *)key, c->accounts);
		violation_line(c, msg);
		return 0;
	}
	c->xfer_records++;
	c->delta[v[0]] -= (int64_t)v[2];
	c->delta[v[1]] += (int64_t)v[2];
	return 0;
}

/* The accounts, in one read-only snapshot: acct/total well formed; every account present;
 * each balance = the initial balance + what the transfer records in the store moved to it
 * - what they moved from it; the balances sum to the total. */
static int check_accounts(checker *c)
{
	pbox_txn *x;
	char buf[96], msg[256];
	size_t vl;
	uint64_t f[3];
	int rc = pbox_txn_begin(c->st, PBOX_TXN_READONLY, &x);
	if (rc)
		return rc;
	rc = pbox_txn_get(x, c->bt, ACCT_TOTAL_KEY, sizeof(ACCT_TOTAL_KEY) - 1, buf, sizeof(buf),
			  &vl);
	if (rc == PBOX_ENOTFOUND) {
		if (c->xfer_acks) {
			snprintf(msg, sizeof(msg), "MISSING %s: the ack file lists transfers, the "
						   "store holds no accounts",
				 ACCT_TOTAL_KEY);
			violation_line(c, msg);
		}
		rc = 0;
		goto out;
	}
	if (rc == PBOX_ETOOSMALL || (!rc && (parse_numbers(buf, vl, f, 3) || f[1] < 2 ||
					     f[1] > MAX_ACCOUNTS || f[0] != f[1] * f[2]))) {
		snprintf(msg, sizeof(msg), "CORRUPT %s: not \"<total> <accounts> <initial>\"",
			 ACCT_TOTAL_KEY);
		violation_line(c, msg);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	c->have_accounts = true;
	c->acct_total = f[0];
	c->accounts = f[1];
	c->acct_initial = f[2];
	c->bal = calloc(c->accounts, sizeof(*c->bal));
	c->delta = calloc(c->accounts, sizeof(*c->delta));
	c->seen = calloc(c->accounts, 1);
	if (!c->bal || !c->delta || !c->seen) {
		rc = -ENOMEM;
		goto out;
	}
	rc = pbox_txn_scan(x, c->bt, ACCT_PREFIX, sizeof(ACCT_PREFIX) - 1, "acct0", 5, 0,
			   walk_account, c);
	if (!rc)
		rc = pbox_txn_scan(x, c->bt, XFER_PREFIX, sizeof(XFER_PREFIX) - 1, "xfer0", 5, 0,
				   walk_transfer, c);
	if (rc)
		goto out;
	for (uint64_t i = 0; i < c->accounts; i++) {
		char key[32];
		acct_key(key, (unsigned)i);
		int64_t want = (int64_t)c->acct_initial + c->delta[i];
		if (!c->seen[i]) {
			snprintf(msg, sizeof(msg), "MISSING %s: an account of %s is absent", key,
				 ACCT_TOTAL_KEY);
			violation_line(c, msg);
		} else if (want != (int64_t)c->bal[i]) {
			snprintf(msg, sizeof(msg), "LEDGER %s: balance %" PRIu64 ", but the initial "
						   "balance and the transfer records in the store "
						   "give %" PRId64,
				 key, c->bal[i], want);
			violation_line(c, msg);
		}
	}
	if (c->acct_sum != c->acct_total) {
		snprintf(msg, sizeof(msg), "TOTAL: the %" PRIu64 " balances sum to %" PRIu64
					   ", the initial total is %" PRIu64,
			 c->acct_seen, c->acct_sum, c->acct_total);
		violation_line(c, msg);
	}
out:
	pbox_txn_abort(x);
	return rc;
}

int kv_cmd_check_acks(const kv_opts *o, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "kvstore: check-acks takes FILE (kvstore --help for usage)\n");
		return KV_EXIT_USAGE;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		fprintf(stderr, "kvstore: check-acks: %s: %s\n", argv[1], strerror(errno));
		return KV_EXIT_USAGE;
	}
	kv_db db;
	if (kv_open(o, false, &db)) {
		fclose(f);
		return KV_EXIT_STORE;
	}
	checker c = {.st = db.st, .bt = db.bt, .cap = 4096};
	c.buf = malloc(c.cap);
	int rc = c.buf ? 0 : -ENOMEM;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n;
	uint64_t lineno = 0, acks = 0, torn = 0;
	char msg[1024];
	while (!rc && (n = getline(&line, &lcap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n') {
			torn++; /* a write(2) cut short by the kill: it acknowledged nothing */
			break;
		}
		line[--n] = 0;
		if (line[0] == '#')
			continue; /* a comment */
		if (!strncmp(line, "T ", 2)) {
			rc = check_transfer_line(&c, line, lineno);
			continue;
		}
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		char *key = NULL;
		size_t kl;
		unsigned long sum = 0;
		char *end = NULL;
		if (t2) {
			*t1 = *t2 = 0;
			sum = strtoul(t1 + 1, &end, 16);
		}
		if (!t2 || t2 - t1 != 9 || *end || strchr(t2 + 1, '\t') || !t2[1] ||
		    kv_decode(line, &key, &kl)) {
			snprintf(msg, sizeof(msg), "MALFORMED line %" PRIu64 " of the ack file",
				 lineno);
			violation_line(&c, msg);
			continue;
		}
		acks++;
		size_t vl;
		rc = lookup(&c, key, kl, &vl);
		if (rc == PBOX_ENOTFOUND) {
			rc = 0;
			snprintf(msg, sizeof(msg), "MISSING %s: acknowledged (batch %s), not in the store",
				 line, t2 + 1);
			violation_line(&c, msg);
		} else if (!rc && kv_value_sum(c.buf, vl) != sum) {
			snprintf(msg, sizeof(msg), "WRONG %s: acknowledged value checksum %s, the store's "
						   "value has %08x (%zu bytes)",
				 line, t1 + 1, kv_value_sum(c.buf, vl), vl);
			violation_line(&c, msg);
		}
		if (!rc && strcmp(t2 + 1, "-"))
			rc = remember_batch(&c, t2 + 1);
		free(key);
	}
	free(line);
	fclose(f);
	size_t unique = 0;
	if (!rc && c.nbatches) {
		qsort(c.batches, c.nbatches, sizeof(*c.batches), cmp_str);
		for (size_t i = 0; i < c.nbatches && !rc; i++) {
			if (i > 0 && !strcmp(c.batches[i], c.batches[i - 1]))
				continue;
			unique++;
			rc = check_batch(&c, c.batches[i]);
		}
	}
	if (!rc && c.bt) {
		rc = pbox_bt_scan(c.bt, NULL, 0, NULL, 0, walk_pair, &c);
		if (!rc)
			close_run(&c);
	}
	if (!rc && c.bt) {
		rc = check_accounts(&c);
	} else if (!rc && c.xfer_acks) {
		violation_line(&c, "MISSING " ACCT_TOTAL_KEY ": the ack file lists transfers, the "
				   "store holds no tree");
	}
	int code;
	if (rc) {
		kv_err("check-acks", rc);
		code = KV_EXIT_STORE;
	} else {
		printf("check-acks: %" PRIu64 " acknowledged keys (%zu batches)%s, %" PRIu64
		       " keys in the store (%" PRIu64 " stress keys)",
		       acks, unique, torn ? " and a torn last line (ignored)" : "", c.scanned,
		       c.stress_keys);
		if (c.xfer_acks || c.have_accounts)
			printf(", %" PRIu64 " acknowledged transfers, %" PRIu64
			       " transfer records and %" PRIu64 " accounts in the store summing to %" PRIu64
			       " (total %" PRIu64 ")",
			       c.xfer_acks, c.xfer_records, c.acct_seen, c.acct_sum, c.acct_total);
		printf(": %" PRIu64 " violations\n", c.violations);
		code = c.violations ? KV_EXIT_NOTFOUND : KV_EXIT_OK;
	}
	for (size_t i = 0; i < c.nbatches; i++)
		free(c.batches[i]);
	free(c.batches);
	free(c.buf);
	free(c.bal);
	free(c.delta);
	free(c.seen);
	if (kv_close(&db) && code == KV_EXIT_OK)
		code = KV_EXIT_STORE;
	return code;
}
