/*
 * stress.c — `kvstore stress` (concurrent durable writers that log what was acknowledged)
 * and `kvstore check-acks` (the proof that nothing acknowledged was lost).
 *
 * stress: thread i writes keys t<i>-<seq> with ascending seq, each as a durable upsert or
 * as a durable atomic batch of K consecutive keys, and after each acknowledgement appends
 * one line per key to the ack file with a single write(2) (O_APPEND, no user-space buffer):
 *
 *     KEY <TAB> CRC32C of the value, 8 hex digits <TAB> BATCH-ID <LF>
 *
 * so the file only ever claims what the store already promised. Sequence numbers continue
 * after the largest one found in the store or in the ack file, so runs on one store never
 * rewrite a key (a rewritten key could hold a newer, unacknowledged value legitimately).
 * Ascending keys make a batch land in the last leaf of its thread's key range, which keeps
 * it within the btree's batch limits for small K (README: "stress").
 *
 * check-acks: every complete line of the ack file must name a key whose value has the
 * logged checksum; every batch named in it must be whole; and every stress key found in the
 * store must hold a well-formed value of its own key whose batch is whole (so a batch that
 * was applied in part is found even when it was never acknowledged). A last line without a
 * newline is a write cut short by the kill and is ignored.
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
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_VALUE (16u << 20)

/* ---- stress ---------------------------------------------------------------------------- */

typedef struct stress_run {
	kv_db db;
	int ack_fd;
	unsigned batch;
	size_t value_size;
	double deadline;
	atomic_bool stop;
	atomic_int error; /* first store error */
} stress_run;

typedef struct stress_thread {
	stress_run *run;
	pthread_t tid;
	unsigned id;
	uint64_t next_seq;
	uint64_t keys, commits;
} stress_thread;

static atomic_bool stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_signal, true);
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

static void *stress_main(void *arg)
{
	stress_thread *t = arg;
	stress_run *r = t->run;
	size_t vcap = r->value_size + KV_KEY_MAX + KV_BATCH_ID_MAX + 16;
	char *val = malloc(vcap);
	char *acks = malloc((size_t)r->batch * (KV_KEY_MAX + KV_BATCH_ID_MAX + 16));
	pbox_bt_batch *b = NULL;
	int rc = !val || !acks ? -ENOMEM : r->batch > 1 ? pbox_bt_batch_create(&b) : 0;
	while (!rc && !atomic_load(&r->stop) && !atomic_load(&stop_signal) &&
	       kv_now() < r->deadline) {
		char key[KV_KEY_MAX], bid[KV_BATCH_ID_MAX];
		size_t alen = 0;
		if (r->batch == 1) {
			int kl = kv_stress_key(key, t->id, t->next_seq);
			size_t vl = kv_value_make(val, r->value_size, key, (size_t)kl, "-");
			rc = pbox_bt_upsert(r->db.bt, key, (size_t)kl, val, vl, PBOX_BT_DURABLE);
			if (!rc)
				alen = (size_t)ack_line(acks, key, val, vl, "-");
		} else {
			kv_batch_id(bid, t->id, t->next_seq, r->batch);
			for (unsigned j = 0; j < r->batch && !rc; j++) {
				int kl = kv_stress_key(key, t->id, t->next_seq + j);
				size_t vl = kv_value_make(val, r->value_size, key, (size_t)kl, bid);
				rc = pbox_bt_batch_put(b, r->db.bt, key, (size_t)kl, val, vl);
				alen += (size_t)ack_line(acks + alen, key, val, vl, bid);
			}
			if (!rc)
				rc = pbox_bt_batch_commit(b, PBOX_BT_DURABLE);
		}
		if (rc)
			break;
		/* durable now: only now may the ack file say so */
		rc = write_all(r->ack_fd, acks, alen);
		if (rc)
			break;
		t->next_seq += r->batch;
		t->keys += r->batch;
		t->commits++;
	}
	if (rc) {
		int expected = 0;
		atomic_compare_exchange_strong(&r->error, &expected, rc);
		atomic_store(&r->stop, true);
	}
	pbox_bt_batch_destroy(b);
	free(val);
	free(acks);
	return NULL;
}

/* Largest sequence number per thread in the ack file (complete lines only). */
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
			break;
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

typedef struct last_key {
	unsigned thread;
	uint64_t seq;
	bool found;
} last_key;

static int take_last(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	(void)vlen;
	last_key *lk = arg;
	unsigned th;
	uint64_t seq;
	if (!kv_stress_key_parse(key, klen, &th, &seq) && th == lk->thread) {
		lk->seq = seq;
		lk->found = true;
		return 1;
	}
	return 0;
}

int kv_cmd_stress(const kv_opts *o, int argc, char **argv)
{
	uint64_t threads = 0, batch = 1, vsize = 100;
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
		else if (!bad && !strcmp(a, "--batch"))
			bad = kv_parse_u64(v, &batch) || batch == 0 || batch > 100000;
		else if (!bad && !strcmp(a, "--value-size"))
			bad = kv_parse_size(v, &vsize) || vsize > MAX_VALUE;
		else
			bad = 1;
		if (bad) {
			fprintf(stderr, "kvstore: stress: bad or unknown option %s (usage: stress "
					"--threads N (1..256) --seconds S --ack-file FILE [--batch K] "
					"[--value-size B (up to 16M)])\n",
				a);
			return KV_EXIT_USAGE;
		}
	}
	if (!threads || seconds < 0 || !ack) {
		fprintf(stderr, "kvstore: stress needs --threads, --seconds and --ack-file\n");
		return KV_EXIT_USAGE;
	}
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
	/* continue every thread's sequence after what the store and the ack file hold */
	uint64_t *max = calloc(threads, sizeof(*max));
	if (!max)
		goto out_close;
	ack_file_max(ack, max, (unsigned)threads);
	for (unsigned i = 0; i < threads; i++) {
		char prefix[KV_KEY_MAX];
		int pl = snprintf(prefix, sizeof(prefix), "t%u-", i);
		last_key lk = {i, 0, false};
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
		if (pthread_create(&ts[started].tid, NULL, stress_main, &ts[started])) {
			atomic_store(&r->stop, true);
			break;
		}
	}
	uint64_t keys = 0, commits = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		keys += ts[i].keys;
		commits += ts[i].commits;
	}
	double el = kv_now() - t0;
	int err = atomic_load(&r->error);
	if (started < threads) {
		fprintf(stderr, "kvstore: stress: could not start thread %u\n", started);
	} else if (err == PBOX_ELIMIT) {
		fprintf(stderr,
			"kvstore: stress: a batch of %u keys of %" PRIu64 " bytes was refused: %s "
			"(at most %u leaves, half a node of new entries per leaf, %u bytes of "
			"log): use a smaller --batch\n",
			r->batch, vsize, pbox_strerror(err), PBOX_BT_BATCH_MAX_LEAVES,
			PBOX_BT_BATCH_MAX_BYTES);
	} else if (err) {
		kv_err("stress", err);
	} else {
		code = KV_EXIT_OK;
	}
	printf("stress: %u threads, %.2f s: %" PRIu64 " keys acknowledged in %" PRIu64
	       " durable %s (%.0f keys/s, %.0f commits/s)\n",
	       started, el, keys, commits, r->batch > 1 ? "batches" : "puts",
	       el > 0 ? (double)keys / el : 0.0, el > 0 ? (double)commits / el : 0.0);
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
	checker c = {.bt = db.bt, .cap = 4096};
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
	int code;
	if (rc) {
		kv_err("check-acks", rc);
		code = KV_EXIT_STORE;
	} else {
		printf("check-acks: %" PRIu64 " acknowledged keys (%zu batches)%s, %" PRIu64
		       " keys in the store (%" PRIu64 " stress keys): %" PRIu64 " violations\n",
		       acks, unique, torn ? " and a torn last line (ignored)" : "", c.scanned,
		       c.stress_keys, c.violations);
		code = c.violations ? KV_EXIT_NOTFOUND : KV_EXIT_OK;
	}
	for (size_t i = 0; i < c.nbatches; i++)
		free(c.batches[i]);
	free(c.batches);
	free(c.buf);
	if (kv_close(&db) && code == KV_EXIT_OK)
		code = KV_EXIT_STORE;
	return code;
}
