/*
 * batch.c — `kvstore batch`: one command per line on stdin, exactly one response per
 * command on stdout, flushed after each response (README: "The batch protocol").
 *
 * Lines are split at single spaces, so every field is one %HH-encoded token and a field may
 * be empty ("put k " stores an empty value). A response is never written before the change
 * it reports is done; with --durability durable the OK of put, del and commit is written
 * only once the change is on disk, which is what the torture test relies on.
 *
 * `begin` starts a pbox_txn (`begin ro`: a read-only snapshot). Inside it put and del are
 * buffered in the transaction, get and scan read its snapshot plus its own writes, and
 * commit applies everything at once (crash-atomic) or answers CONFLICT with nothing
 * applied. A put or del that meets a conflict ends the transaction (aborted: nothing
 * applied) and answers CONFLICT; the session then stays in a "dead" transaction until the
 * client's next begin, commit or abort, answering CONFLICT to put/del/get/scan, so that
 * commands a client pipelined behind the conflicting one are not applied on their own.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FIELDS 5

typedef struct session {
	kv_db db;
	pbox_txn *txn;      /* non-NULL between begin and commit/abort */
	bool ro;            /* txn is read-only (begin ro) */
	bool dead;          /* a conflict ended the transaction; until begin/commit/abort */
	bool store_error;   /* a store error (not bad input) happened: exit 3 */
} session;

static void respond_err(const char *fmt_what, int rc)
{
	if (rc)
		printf("ERR %s: %s\n", fmt_what, pbox_strerror(rc));
	else
		printf("ERR %s\n", fmt_what);
}

/* A store error: report it and remember it for the exit code. */
static void store_err(session *s, const char *what, int rc)
{
	s->store_error = true;
	respond_err(what, rc);
}

static void bad_size(session *s, const char *what)
{
	printf("ERR %s: key or value too long (keys up to %zu bytes, values up to %u)\n", what,
	       pbox_bt_key_max(s->db.st), PBOX_BT_VALUE_MAX_BYTES);
}

/* The transaction lost a conflict: end it (nothing applied) and answer CONFLICT. */
static void conflict(session *s)
{
	pbox_txn_abort(s->txn);
	s->txn = NULL;
	s->ro = false;
	s->dead = true;
	puts("CONFLICT");
}

/* An error of a read or write inside a transaction that is neither a conflict nor bad
 * input: a retired snapshot is the client's business (ERR, the session goes on), anything
 * else is a store error. */
static void txn_err(session *s, const char *what, int rc)
{
	if (rc == PBOX_ESNAPSHOT)
		respond_err(what, rc);
	else
		store_err(s, what, rc);
}

typedef struct scan_state {
	uint64_t limit, n;
} scan_state;

static int scan_kv(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_state *ss = arg;
	if (ss->n >= ss->limit)
		return 1;
	fputs("KV ", stdout);
	kv_encode(stdout, key, klen);
	putchar(' ');
	kv_encode(stdout, val, vlen);
	putchar('\n');
	ss->n++;
	return ss->n >= ss->limit ? 1 : 0;
}

static void do_scan(session *s, char **f)
{
	char *start = NULL, *end = NULL;
	size_t sl = 0, el = 0;
	uint64_t limit;
	if (kv_parse_u64(f[3], &limit)) {
		printf("ERR scan: LIMIT must be a number\n");
		return;
	}
	/* "-" is unbounded; a key that is a single dash is written %2D */
	if ((strcmp(f[1], "-") && kv_decode(f[1], &start, &sl)) ||
	    (strcmp(f[2], "-") && kv_decode(f[2], &end, &el))) {
		printf("ERR scan: bad %%HH encoding\n");
		free(start);
		return;
	}
	scan_state ss = {limit, 0};
	int rc = 0;
	if (limit > 0)
		rc = s->txn ? pbox_txn_scan(s->txn, s->db.bt, start, sl, end, el, 0, scan_kv, &ss)
			    : pbox_bt_scan(s->db.bt, start, sl, end, el, scan_kv, &ss);
	if (rc < 0 && ss.n == 0 && s->txn && rc == PBOX_ECONFLICT) {
		conflict(s); /* not expected: a transaction that lost one is ended at once */
	} else if (rc < 0 && ss.n == 0 && s->txn && rc == PBOX_ESNAPSHOT) {
		respond_err("scan", rc);
	} else if (rc < 0) {
		/* KV lines may already be out: END is still written so the reader stays in step */
		printf("END %" PRIu64 "\n", ss.n);
		fprintf(stderr, "kvstore: batch: scan failed after %" PRIu64 " pairs: %s\n", ss.n,
			pbox_strerror(rc));
		if (rc != PBOX_ESNAPSHOT) /* a retired snapshot is no store error */
			s->store_error = true;
	} else {
		printf("END %" PRIu64 "\n", ss.n);
	}
	free(start);
	free(end);
}

static int get_value(session *s, const char *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	return s->txn ? pbox_txn_get(s->txn, s->db.bt, k, kl, buf, cap, vl)
		      : pbox_bt_lookup(s->db.bt, k, kl, buf, cap, vl);
}

static void do_get(session *s, const char *k, size_t kl)
{
	size_t cap = 4096, vl = 0;
	char *buf = malloc(cap);
	int rc = buf ? get_value(s, k, kl, buf, cap, &vl) : -ENOMEM;
	if (rc == PBOX_ETOOSMALL) {
		free(buf);
		cap = vl;
		buf = malloc(cap ? cap : 1);
		rc = buf ? get_value(s, k, kl, buf, cap, &vl) : -ENOMEM;
	}
	if (rc == 0) {
		fputs("VALUE ", stdout);
		kv_encode(stdout, buf, vl);
		putchar('\n');
	} else if (rc == PBOX_ENOTFOUND) {
		puts("NOTFOUND");
	} else if (rc == PBOX_EINVAL) {
		bad_size(s, "get");
	} else if (rc == PBOX_ECONFLICT && s->txn) {
		conflict(s);
	} else if (s->txn) {
		txn_err(s, "get", rc);
	} else {
		store_err(s, "get", rc);
	}
	free(buf);
}

static void do_commit(session *s)
{
	pbox_txn *t = s->txn;
	bool ro = s->ro;
	s->txn = NULL;
	s->ro = false;
	if (ro) { /* a snapshot only: nothing to apply */
		pbox_txn_abort(t);
		puts("OK");
		return;
	}
	int rc = pbox_txn_commit(t, s->db.flags);
	if (rc == 0)
		puts("OK");
	else if (rc == PBOX_ECONFLICT)
		puts("CONFLICT");
	else if (rc == PBOX_EINVAL || rc == PBOX_ESNAPSHOT)
		printf("ERR commit: %s\n", pbox_strerror(rc));
	else
		store_err(s, "commit", rc);
}

/* `dump FILE`: every tree, from one snapshot (kv_dump_store), into FILE; a failed dump
 * removes the file rather than leave part of one. A write error is the client's (ERR), a
 * store error makes the exit code 3. */
static void do_dump(session *s, const char *path)
{
	if (!*path) {
		puts("ERR dump: empty file name");
		return;
	}
	FILE *f = fopen(path, "w");
	if (!f) {
		printf("ERR dump: %s\n", strerror(errno));
		return;
	}
	char err[512] = "";
	uint64_t pairs = 0, trees = 0;
	int rc = kv_dump_store(s->db.st, NULL, 0, f, &pairs, &trees, err, sizeof(err));
	if (fclose(f) && !rc) {
		rc = -EIO;
		snprintf(err, sizeof(err), "write: %s", strerror(errno));
	}
	if (rc) {
		unlink(path);
		if (rc >= PBOX_STATUS_MIN && rc <= PBOX_STATUS_MAX && rc != PBOX_ENOTFOUND)
			s->store_error = true;
		printf("ERR dump: %s\n", err);
		return;
	}
	puts("OK");
}

/* backup DEST: everything acknowledged before it is in the copy (kv_backup_now flushes the
 * log first). A bad destination is the caller's error, not the store's. */
static void do_backup(session *s, const char *dest)
{
	char msg[512];
	int rc = kv_backup_now(s->db.st, dest, 0, false, NULL, msg, sizeof(msg));
	if (!rc) {
		puts("OK");
		return;
	}
	if (rc != PBOX_EEXIST && rc != PBOX_ENOTFOUND && rc != PBOX_EINVAL && rc != PBOX_EBUSY &&
	    (rc >= PBOX_STATUS_MIN && rc <= PBOX_STATUS_MAX))
		s->store_error = true;
	printf("ERR backup: %s\n", msg);
}

/* One command line (already split into fields); writes exactly one response. */
static void run_line(session *s, char **f, int nf)
{
	const char *c = f[0];
	char *k = NULL, *v = NULL;
	size_t kl = 0, vl = 0;
	int rc;
#define NEED(n, form)                                                                        \
	do {                                                                                 \
		if (nf != (n)) {                                                             \
			printf("ERR usage: %s\n", form);                                     \
			goto out;                                                            \
		}                                                                            \
	} while (0)
#define DECODE(i, p, l)                                                                      \
	do {                                                                                 \
		if (kv_decode(f[i], p, l)) {                                                 \
			printf("ERR bad %%HH encoding in field %d\n", i + 1);                 \
			goto out;                                                            \
		}                                                                            \
	} while (0)
/* inside a transaction a conflict ended: the command belongs to it and is dropped */
#define DEAD()                                                                               \
	do {                                                                                 \
		if (s->dead) {                                                               \
			puts("CONFLICT");                                                    \
			goto out;                                                            \
		}                                                                            \
	} while (0)

	if (!strcmp(c, "put")) {
		NEED(3, "put KEY VALUE");
		DECODE(1, &k, &kl);
		DECODE(2, &v, &vl);
		DEAD();
		if (s->txn && s->ro) {
			puts("ERR read-only transaction");
		} else if (s->txn) {
			rc = pbox_txn_put(s->txn, s->db.bt, k, kl, v, vl);
			if (rc == 0)
				puts("OK");
			else if (rc == PBOX_ECONFLICT)
				conflict(s);
			else if (rc == PBOX_EINVAL)
				bad_size(s, "put");
			else
				txn_err(s, "put", rc);
		} else {
			rc = pbox_bt_upsert(s->db.bt, k, kl, v, vl, s->db.flags);
			if (rc == PBOX_EINVAL)
				bad_size(s, "put");
			else if (rc)
				store_err(s, "put", rc);
			else
				puts("OK");
		}
	} else if (!strcmp(c, "del")) {
		NEED(2, "del KEY");
		DECODE(1, &k, &kl);
		DEAD();
		if (s->txn && s->ro) {
			puts("ERR read-only transaction");
			goto out;
		}
		rc = s->txn ? pbox_txn_del(s->txn, s->db.bt, k, kl)
			    : pbox_bt_remove(s->db.bt, k, kl, s->db.flags);
		if (rc == 0)
			puts("OK");
		else if (rc == PBOX_ENOTFOUND)
			puts("NOTFOUND");
		else if (rc == PBOX_ECONFLICT && s->txn)
			conflict(s);
		else if (rc == PBOX_EINVAL)
			bad_size(s, "del");
		else if (s->txn)
			txn_err(s, "del", rc);
		else
			store_err(s, "del", rc);
	} else if (!strcmp(c, "get")) {
		NEED(2, "get KEY");
		DECODE(1, &k, &kl);
		DEAD();
		do_get(s, k, kl);
	} else if (!strcmp(c, "scan")) {
		NEED(4, "scan START END LIMIT (- for an unbounded START or END)");
		DEAD();
		do_scan(s, f);
	} else if (!strcmp(c, "begin")) {
		if (nf > 2 || (nf == 2 && strcmp(f[1], "ro"))) {
			puts("ERR usage: begin [ro]");
		} else if (s->txn) {
			puts("ERR begin: a transaction is already open");
		} else if ((rc = pbox_txn_begin(s->db.st, nf == 2 ? PBOX_TXN_READONLY : 0,
						&s->txn))) {
			s->txn = NULL;
			store_err(s, "begin", rc);
		} else {
			s->dead = false; /* a conflict's dead transaction ends here */
			s->ro = nf == 2;
			puts("OK");
		}
	} else if (!strcmp(c, "commit")) {
		NEED(1, "commit");
		if (s->dead) {
			s->dead = false;
			puts("CONFLICT");
		} else if (!s->txn) {
			puts("ERR commit: no transaction (begin first)");
		} else {
			do_commit(s);
		}
	} else if (!strcmp(c, "abort")) {
		NEED(1, "abort");
		if (s->dead) {
			s->dead = false;
			puts("OK");
		} else if (!s->txn) {
			puts("ERR abort: no transaction (begin first)");
		} else {
			pbox_txn_abort(s->txn);
			s->txn = NULL;
			s->ro = false;
			puts("OK");
		}
	} else if (!strcmp(c, "sync")) {
		NEED(1, "sync");
		rc = pbox_wal_flush(pbox_store_wal(s->db.st));
		if (rc)
			store_err(s, "sync", rc);
		else
			puts("OK");
	} else if (!strcmp(c, "checkpoint")) {
		NEED(1, "checkpoint");
		rc = pbox_store_checkpoint(s->db.st);
		if (rc)
			store_err(s, "checkpoint", rc);
		else
			puts("OK");
	} else if (!strcmp(c, "dump")) {
		NEED(2, "dump FILE");
		DECODE(1, &k, &kl);
		if (s->txn || s->dead) /* the dump is its own snapshot: not part of a transaction */
			puts("ERR dump: not inside a transaction (commit or abort first)");
		else
			do_dump(s, k);
	} else if (!strcmp(c, "backup")) {
		NEED(2, "backup DEST");
		DECODE(1, &k, &kl);
		if (s->txn || s->dead) /* a backup is no part of a transaction */
			puts("ERR backup: not inside a transaction (commit or abort first)");
		else if (!*k)
			puts("ERR backup: empty destination");
		else
			do_backup(s, k);
	} else if (!*c) {
		puts("ERR empty command");
	} else {
		puts("ERR unknown command (put, del, get, scan, begin [ro], commit, abort, sync, "
		     "checkpoint, dump, backup)");
	}
out:
#undef NEED
#undef DECODE
#undef DEAD
	free(k);
	free(v);
}

int kv_cmd_batch(const kv_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "kvstore: batch takes no arguments (kvstore --help for usage)\n");
		return KV_EXIT_USAGE;
	}
	session s = {0};
	if (kv_open(o, true, &s.db))
		return KV_EXIT_STORE;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		char *f[MAX_FIELDS] = { NULL }; /* all set: the compiler cannot see the field count check */
		int nf = 0;
		char *p = line;
		bool too_many = false;
		for (;;) {
			if (nf == MAX_FIELDS) {
				too_many = true;
				break;
			}
			f[nf++] = p;
			char *sp = strchr(p, ' ');
			if (!sp)
				break;
			*sp = 0;
			p = sp + 1;
		}
		if (too_many)
			puts("ERR too many fields");
		else
			run_line(&s, f, nf);
		fflush(stdout);
	}
	free(line);
	pbox_txn_abort(s.txn); /* end of input inside begin ... commit: nothing applied */
	int rc = kv_close(&s.db);
	return rc || s.store_error ? KV_EXIT_STORE : KV_EXIT_OK;
}
