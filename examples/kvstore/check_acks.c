/*
 * check_acks.c — `kvstore check-acks FILE`, the proof that `kvstore stress` (stress.c) lost
 * nothing it acknowledged.
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
#include "xfer.h"

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

#define MAX_ACCOUNTS 1000000u

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
