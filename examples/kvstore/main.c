/*
 * main.c — kvstore: a command-line key-value store on the pagebox btree.
 *
 *   kvstore [-d DIR] [options] COMMAND [ARGS]
 *
 * Every command opens the store (which runs recovery), does its work and closes it, so each
 * invocation is a complete open/recover/close cycle; `batch` and `stress` keep it open for a
 * session. The store directory is created only by commands that write. See README.md for
 * the commands, the output formats and the exit codes.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: kvstore [-d DIR] [options] COMMAND [ARGS]\n"
	"\n"
	"options (before the command):\n"
	"  -d DIR                  store directory (default ./kvstore-data; created on the first write)\n"
	"  --budget SIZE           resident page memory, e.g. 256M (default 256M)\n"
	"  --page-size SIZE        page size when the store is created (4K..64K, default 4K)\n"
	"  --durability MODE       durable (default: acknowledged writes and commits are on\n"
	"                          disk) or fast (on disk within about 1 ms)\n"
	"  --wal-sync MODE         fdatasync (default), fsync, dsync or io_uring\n"
	"  --tree NAME             tree to use (default \"default\")\n"
	"  --max-size SIZE         largest the data file may grow (default 64G)\n"
	"  --checkpoint-log SIZE   checkpoint automatically after this much log (default 256M;\n"
	"                          0: only on `checkpoint` and at a clean close)\n"
	"\n"
	"commands:\n"
	"  put K V                 store V under K\n"
	"  get K                   print the value of K (exit 1 if absent)\n"
	"  del K                   remove K (exit 1 if absent)\n"
	"  scan [START [END]] [--prefix P] [--reverse] [--limit N]\n"
	"                          print KEY<TAB>VALUE for keys >= START and < END\n"
	"  checkpoint              write back dirty pages and trim the log\n"
	"  stats                   store, pool, WAL and recovery figures\n"
	"  verify [--reclaim]      check every tree; exit 3 on any problem; --reclaim frees\n"
	"                          pages a crash left unreachable\n"
	"  trees                   list the trees\n"
	"  batch                   line protocol on stdin/stdout (see README): put K V, del K,\n"
	"                          get K, scan START END LIMIT, begin [ro] (a transaction; ro: a\n"
	"                          read-only snapshot), commit (OK, CONFLICT: nothing applied, or\n"
	"                          ERR), abort, sync, checkpoint, dump FILE (all trees, not in\n"
	"                          a transaction), backup DEST (the same); in a transaction\n"
	"                          get/scan/del see its own writes (del of an absent key:\n"
	"                          NOTFOUND)\n"
	"  stress --threads N --seconds S --ack-file FILE [--batch K] [--value-size B]\n"
	"         [--backup-every S --backup-dir DIR]\n"
	"                          concurrent writers of new keys, each a put or (K > 1) a\n"
	"                          transaction of K keys, logging every acknowledged key; with\n"
	"                          --backup-every, a backup every S seconds into\n"
	"                          DIR/backup-N, between ack-file lines \"# backup PATH begin\"\n"
	"                          and \"# backup PATH end\" (also with --transfers)\n"
	"  stress --threads N --seconds S --ack-file FILE --transfers ACCOUNTS\n"
	"                          concurrent conflicting transactions moving amounts between\n"
	"                          ACCOUNTS accounts acct/NNNNNNNN (1000 each when created;\n"
	"                          acct/total = \"TOTAL ACCOUNTS 1000\"), retried on conflict; each\n"
	"                          also writes xfer/THREAD/SEQ = \"FROM TO AMOUNT\", and once\n"
	"                          committed is logged as: T THREAD SEQ FROM TO AMOUNT\n"
	"  check-acks FILE         check every acknowledged key, batch and transfer, and that the\n"
	"                          account balances add up (exit 1 on violations)\n"
	"  dump [TREE...]          write the trees (default: all) from one snapshot to stdout in\n"
	"                          the versioned dump format (README: \"dump format\")\n"
	"  load [--into NAME] [--replace] [FILE]\n"
	"                          load a dump (stdin, or FILE) in one transaction: creates its\n"
	"                          trees; --into: a one-tree dump under NAME; a non-empty tree\n"
	"                          is refused (exit 4) unless --replace (emptied first, same\n"
	"                          transaction); a damaged dump loads nothing (exit 2, its line)\n"
	"  inspect [--tree T] [--json]\n"
	"                          per tree: depth, pages per level, fill histograms, overflow\n"
	"                          pages and bytes, key/value sizes; store: free pages, data\n"
	"                          file and log sizes\n"
	"  create-tree NAME        create an empty tree (exit 4 if it exists)\n"
	"  drop-tree NAME          remove a tree and free its pages (exit 1 if absent)\n"
	"  backup [--rate R] DEST  copy the store (nobody else may have it open) into DEST (new\n"
	"                          or empty; exit 4 otherwise); R: bytes per second, e.g. 50M\n"
	"  compact                 rewrite the store beside itself (DIR.compact) in key order and\n"
	"                          swap the directories: the data file shrinks to about the live\n"
	"                          data (needs room for a copy; nobody else may have it open)\n"
	"  help                    this text\n"
	"\n"
	"Keys and values are byte strings: bytes that are not printable ASCII, and space, tab\n"
	"and %, are written %HH. Exit codes: 0 ok, 1 not found, 2 usage error or damaged\n"
	"dump, 3 store error, 4 refused (tree exists / not empty).\n";

static int usage_error(const char *msg)
{
	fprintf(stderr, "kvstore: %s (kvstore --help for usage)\n", msg);
	return KV_EXIT_USAGE;
}

void kv_err(const char *what, int rc)
{
	fprintf(stderr, "kvstore: %s: %s\n", what, pbox_strerror(rc));
}

int kv_exit_of(int rc)
{
	if (rc == 0)
		return KV_EXIT_OK;
	if (rc == PBOX_ENOTFOUND)
		return KV_EXIT_NOTFOUND;
	return KV_EXIT_STORE;
}

/* Remember a recovery that replayed something (best effort: the file is informational). */
static void note_recovery(const kv_opts *o, const pbox_store_stats *s, const pbox_wal_info *w)
{
	if (s->recovery_groups == 0 && w->open_erased_bytes == 0)
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", o->dir, KV_RECOVERY_FILE);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "%lld %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		   " %" PRIu64 "\n",
		(long long)time(NULL), s->recovery_groups, s->recovery_records, s->recovery_bytes,
		s->recovery_pages_restored, s->recovery_ns, w->open_erased_bytes, w->open_ns);
	fclose(f);
}

int kv_open(const kv_opts *o, bool create, kv_db *db)
{
	memset(db, 0, sizeof(*db));
	db->o = o;
	db->flags = o->durable ? PBOX_BT_DURABLE : 0;
	pbox_store_options so;
	pbox_store_options_init(&so);
	so.create = create;
	if (o->page_size)
		so.page_size = (uint32_t)o->page_size;
	if (o->budget)
		so.budget_bytes = o->budget;
	so.max_bytes = o->max_bytes;
	if (o->ckpt_log_set)
		so.checkpoint_log_bytes = o->ckpt_log;
	if (o->sync_set)
		so.wal_sync = o->sync;
	char err[512] = "";
	so.errbuf = err;
	so.errbuf_len = sizeof(err);
	const pbox_redo_handler *h;
	unsigned nh;
	pbox_bt_redo_handlers(&h, &nh);
	so.redo = h;
	so.nredo = nh;
	int rc = pbox_store_open(o->dir, &so, &db->st);
	if (rc) {
		if (rc == PBOX_ENOTFOUND)
			fprintf(stderr, "kvstore: no store in %s\n", o->dir);
		else if (rc == PBOX_ELOCKED && err[0]) /* the message says it all */
			fprintf(stderr, "kvstore: open %s: %s\n", o->dir, err);
		else
			fprintf(stderr, "kvstore: open %s: %s%s%s\n", o->dir, pbox_strerror(rc),
				err[0] ? ": " : "", err);
		db->st = NULL;
		return rc;
	}
	pbox_store_stats s;
	pbox_wal_info w;
	pbox_store_get_stats(db->st, &s);
	pbox_wal_get_info(pbox_store_wal(db->st), &w);
	note_recovery(o, &s, &w);
	if (!o->tree) /* store-wide commands (dump, load, inspect, ...) open their own trees */
		return 0;
	rc = create ? pbox_bt_open_or_create(db->st, o->tree, &db->bt)
		    : pbox_bt_open(db->st, o->tree, &db->bt);
	if (rc == PBOX_ENOTFOUND && !create) {
		db->bt = NULL;
		return 0;
	}
	if (rc) {
		fprintf(stderr, "kvstore: open tree %s: %s\n", o->tree, pbox_strerror(rc));
		(void)pbox_store_close(db->st);
		db->st = NULL;
		return rc;
	}
	return 0;
}

int kv_close(kv_db *db)
{
	if (db->bt)
		pbox_bt_close(db->bt);
	db->bt = NULL;
	int rc = 0;
	if (db->st) {
		rc = pbox_store_close(db->st);
		if (rc)
			kv_err("close", rc);
	}
	db->st = NULL;
	return rc;
}

/* Decode a command-line argument; prints the usage error itself. */
static int arg_decode(const char *what, const char *s, char **out, size_t *len)
{
	if (kv_decode(s, out, len)) {
		fprintf(stderr, "kvstore: bad %%HH encoding in %s: %s (kvstore --help for usage)\n",
			what, s);
		return -1;
	}
	return 0;
}

/* Open for a read-only command: a missing store or tree reads as empty (*empty = true). */
static int open_for_read(const kv_opts *o, kv_db *db, bool *empty)
{
	struct stat sb;
	memset(db, 0, sizeof(*db));
	*empty = false;
	if (stat(o->dir, &sb) != 0 && errno == ENOENT) {
		*empty = true;
		return 0;
	}
	int rc = kv_open(o, false, db);
	if (rc == PBOX_ENOTFOUND) {
		*empty = true;
		return 0;
	}
	if (rc)
		return rc;
	if (!db->bt)
		*empty = true;
	return 0;
}

/* Finish a command: close, and let a close error turn success into a store error. */
static int finish(kv_db *db, int code)
{
	int rc = kv_close(db);
	if (rc && code == KV_EXIT_OK)
		return KV_EXIT_STORE;
	return code;
}

static int cmd_put(const kv_opts *o, int argc, char **argv)
{
	if (argc != 3)
		return usage_error("put takes KEY VALUE");
	char *k, *v;
	size_t kl, vl;
	if (arg_decode("key", argv[1], &k, &kl))
		return KV_EXIT_USAGE;
	if (arg_decode("value", argv[2], &v, &vl)) {
		free(k);
		return KV_EXIT_USAGE;
	}
	kv_db db;
	int rc = kv_open(o, true, &db);
	int code = KV_EXIT_STORE;
	if (!rc) {
		rc = pbox_bt_upsert(db.bt, k, kl, v, vl, db.flags);
		if (rc == PBOX_EINVAL) {
			fprintf(stderr,
				"kvstore: put: key or value too long (keys up to %zu bytes, values "
				"up to %u)\n",
				pbox_bt_key_max(db.st), PBOX_BT_VALUE_MAX_BYTES);
			code = KV_EXIT_USAGE;
		} else if (rc) {
			kv_err("put", rc);
		} else {
			code = KV_EXIT_OK;
		}
		code = finish(&db, code);
	}
	free(k);
	free(v);
	return code;
}

static int cmd_get(const kv_opts *o, int argc, char **argv)
{
	if (argc != 2)
		return usage_error("get takes KEY");
	char *k;
	size_t kl;
	if (arg_decode("key", argv[1], &k, &kl))
		return KV_EXIT_USAGE;
	kv_db db;
	bool empty;
	int rc = open_for_read(o, &db, &empty);
	if (rc) {
		free(k);
		return KV_EXIT_STORE;
	}
	int code = KV_EXIT_NOTFOUND;
	if (!empty) {
		size_t cap = 4096, vl = 0;
		char *buf = malloc(cap);
		rc = buf ? pbox_bt_lookup(db.bt, k, kl, buf, cap, &vl) : -ENOMEM;
		if (rc == PBOX_ETOOSMALL) {
			free(buf);
			cap = vl;
			buf = malloc(cap ? cap : 1);
			rc = buf ? pbox_bt_lookup(db.bt, k, kl, buf, cap, &vl) : -ENOMEM;
		}
		if (rc == 0) {
			kv_encode(stdout, buf, vl);
			putchar('\n');
			code = KV_EXIT_OK;
		} else if (rc != PBOX_ENOTFOUND) {
			kv_err("get", rc);
			code = KV_EXIT_STORE;
		}
		free(buf);
		code = finish(&db, code);
	}
	free(k);
	return code;
}

static int cmd_del(const kv_opts *o, int argc, char **argv)
{
	if (argc != 2)
		return usage_error("del takes KEY");
	char *k;
	size_t kl;
	if (arg_decode("key", argv[1], &k, &kl))
		return KV_EXIT_USAGE;
	kv_db db;
	bool empty;
	/* deleting from a store that does not exist creates nothing */
	int rc = open_for_read(o, &db, &empty);
	int code = KV_EXIT_NOTFOUND;
	if (rc) {
		code = KV_EXIT_STORE;
	} else if (!empty) {
		rc = pbox_bt_remove(db.bt, k, kl, db.flags);
		if (rc == 0)
			code = KV_EXIT_OK;
		else if (rc != PBOX_ENOTFOUND) {
			kv_err("del", rc);
			code = rc == PBOX_EINVAL ? KV_EXIT_USAGE : KV_EXIT_STORE;
		}
		code = finish(&db, code);
	}
	free(k);
	return code;
}

typedef struct scan_out {
	uint64_t limit, n;
} scan_out;

#define SCAN_STOP 1 /* private: the limit was reached */

static int scan_print(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	scan_out *so = arg;
	if (so->n >= so->limit)
		return SCAN_STOP;
	kv_encode(stdout, key, klen);
	putchar('\t');
	kv_encode(stdout, val, vlen);
	putchar('\n');
	so->n++;
	return so->n >= so->limit ? SCAN_STOP : 0;
}

/* The smallest key above every key that starts with p: p with its last byte below 0xff
 * incremented and what follows dropped; none (false) if p is all 0xff. */
static bool prefix_end(const char *p, size_t pl, size_t *el)
{
	while (pl > 0 && (unsigned char)p[pl - 1] == 0xff)
		pl--;
	*el = pl;
	return pl > 0;
}

static int cmd_scan(const kv_opts *o, int argc, char **argv)
{
	char *start = NULL, *end = NULL, *prefix = NULL;
	size_t sl = 0, el = 0, pl = 0;
	bool reverse = false;
	uint64_t limit = UINT64_MAX;
	int npos = 0, code = KV_EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reverse")) {
			reverse = true;
		} else if (!strcmp(argv[i], "--limit") || !strcmp(argv[i], "--prefix")) {
			if (i + 1 >= argc) {
				usage_error("option needs an argument");
				goto out;
			}
			if (argv[i][2] == 'l') {
				if (kv_parse_u64(argv[++i], &limit)) {
					usage_error("--limit takes a number");
					goto out;
				}
			} else {
				free(prefix);
				prefix = NULL;
				if (arg_decode("prefix", argv[++i], &prefix, &pl))
					goto out;
			}
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			usage_error("unknown scan option");
			goto out;
		} else if (npos == 0) {
			if (arg_decode("START", argv[i], &start, &sl))
				goto out;
			npos++;
		} else if (npos == 1) {
			if (arg_decode("END", argv[i], &end, &el))
				goto out;
			npos++;
		} else {
			usage_error("scan takes at most START and END");
			goto out;
		}
	}
	/* a prefix narrows [START, END) to the keys that start with it */
	bool has_end = end != NULL;
	if (prefix) {
		if (!start || memcmp(start, prefix, sl < pl ? sl : pl) < 0 ||
		    (memcmp(start, prefix, sl < pl ? sl : pl) == 0 && sl < pl)) {
			free(start);
			start = malloc(pl + 1);
			if (!start)
				goto out;
			memcpy(start, prefix, pl);
			sl = pl;
		}
		size_t pel;
		if (prefix_end(prefix, pl, &pel)) {
			char *pe = malloc(pel);
			if (!pe)
				goto out;
			memcpy(pe, prefix, pel);
			pe[pel - 1]++;
			size_t m = el < pel ? el : pel;
			int c = has_end ? memcmp(pe, end, m) : -1;
			if (!has_end || c < 0 || (c == 0 && pel < el)) {
				free(end);
				end = pe;
				el = pel;
				has_end = true;
			} else {
				free(pe);
			}
		}
	}
	kv_db db;
	bool empty;
	if (open_for_read(o, &db, &empty)) {
		code = KV_EXIT_STORE;
		goto out;
	}
	code = KV_EXIT_OK;
	if (!empty) {
		scan_out so = {limit, 0};
		int rc = limit == 0 ? 0
				    : pbox_bt_scan_ex(db.bt, start, sl, has_end ? end : NULL, el,
						      reverse ? PBOX_BT_SCAN_REVERSE : 0, scan_print,
						      &so);
		if (rc && rc != SCAN_STOP) {
			kv_err("scan", rc);
			code = KV_EXIT_STORE;
		}
		code = finish(&db, code);
	}
out:
	free(start);
	free(end);
	free(prefix);
	return code;
}

static int cmd_checkpoint(const kv_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage_error("checkpoint takes no arguments");
	kv_db db;
	if (kv_open(o, true, &db))
		return KV_EXIT_STORE;
	int rc = pbox_store_checkpoint(db.st);
	if (rc)
		kv_err("checkpoint", rc);
	return finish(&db, rc ? KV_EXIT_STORE : KV_EXIT_OK);
}

static int list_one(const char *name, size_t len, void *arg)
{
	(void)arg;
	kv_encode(stdout, name, len);
	putchar('\n');
	return 0;
}

static int cmd_trees(const kv_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage_error("trees takes no arguments");
	kv_db db;
	bool empty;
	if (open_for_read(o, &db, &empty))
		return KV_EXIT_STORE;
	if (!db.st)
		return KV_EXIT_OK;
	int rc = pbox_bt_list(db.st, list_one, NULL);
	if (rc)
		kv_err("trees", rc);
	return finish(&db, rc ? KV_EXIT_STORE : KV_EXIT_OK);
}

static void print_ms(const char *name, uint64_t ns)
{
	printf("%-26s %.3f ms\n", name, (double)ns / 1e6);
}

#define ROW(name, v) printf("%-26s %" PRIu64 "\n", name, (uint64_t)(v))

static int cmd_stats(const kv_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage_error("stats takes no arguments");
	kv_db db;
	if (kv_open(o, false, &db))
		return KV_EXIT_STORE;
	pbox_store_stats s;
	pbox_wal_info w;
	pbox_store_get_stats(db.st, &s);
	pbox_wal_get_info(pbox_store_wal(db.st), &w);
	printf("# store %s\n", o->dir);
	ROW("page_size", s.page_size);
	ROW("pages", s.page_count);
	ROW("free_pages", s.free_pages);
	printf("%-26s %s\n", "direct_io", s.direct_io ? "yes" : "no");
	ROW("checkpoints", s.checkpoints);
	ROW("auto_checkpoints", s.auto_checkpoints);
	printf("# pool\n");
	ROW("budget_bytes", s.budget_bytes);
	ROW("resident_pages", s.resident_pages);
	ROW("dirty_pages", s.dirty_pages);
	ROW("hits", s.hits);
	ROW("misses", s.misses);
	ROW("reads", s.reads);
	ROW("writes", s.writes);
	ROW("evictions", s.evictions);
	printf("# wal\n");
	printf("%-26s %s\n", "sync", pbox_wal_sync_name(w.sync));
	ROW("segment_size", w.segment_size);
	ROW("segments", w.segments);
	ROW("redo_start_lsn", s.redo_start);
	ROW("logical_start_lsn", s.logical_start);
	ROW("end_lsn", s.wal_end);
	ROW("durable_lsn", s.wal_durable);
	ROW("log_bytes_since_ckpt", s.wal_end - s.redo_start);
	printf("# recovery at this open\n");
	ROW("wal_groups_validated", w.open_groups);
	ROW("wal_bytes_validated", w.open_bytes);
	ROW("wal_torn_bytes_erased", w.open_erased_bytes);
	print_ms("wal_open_time", w.open_ns);
	ROW("redo_groups", s.recovery_groups);
	ROW("redo_records", s.recovery_records);
	ROW("redo_bytes", s.recovery_bytes);
	ROW("pages_restored", s.recovery_pages_restored);
	print_ms("redo_time", s.recovery_ns);
	pbox_txn_stats ts;
	pbox_txn_get_stats(db.st, &ts);
	ROW("logical_records", s.recovery_logical);
	ROW("txn_reinstalled", ts.recovered);
	/* the last open that had something to recover (kept by kv_open) */
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", o->dir, KV_RECOVERY_FILE);
	FILE *f = fopen(path, "r");
	long long when;
	uint64_t g, r, b, p, ns, er, wns;
	if (f && fscanf(f, "%lld %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			   " %" SCNu64 " %" SCNu64,
			&when, &g, &r, &b, &p, &ns, &er, &wns) == 8) {
		char tbuf[64];
		time_t t = (time_t)when;
		struct tm tm;
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		printf("# last recovery that replayed anything (%s)\n", tbuf);
		ROW("last_redo_groups", g);
		ROW("last_redo_records", r);
		ROW("last_redo_bytes", b);
		ROW("last_pages_restored", p);
		ROW("last_wal_torn_bytes", er);
		print_ms("last_wal_open_time", wns);
		print_ms("last_redo_time", ns);
	} else {
		printf("# no recovery has replayed anything in this store yet\n");
	}
	if (f)
		fclose(f);
	return finish(&db, KV_EXIT_OK);
}

typedef struct verify_walk {
	uint64_t keys, bytes;
	size_t plen;
	char prev[8192]; /* longest key: page_size / 8 at 64 KiB pages */
	int bad;
} verify_walk;

/* Read every pair (overflow chains included) and check the order independently of verify. */
static int verify_pair(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(void)val;
	verify_walk *vw = arg;
	if (vw->keys > 0) {
		size_t m = klen < vw->plen ? klen : vw->plen;
		int c = memcmp(vw->prev, key, m);
		if (c > 0 || (c == 0 && klen <= vw->plen))
			vw->bad = 1;
	}
	if (klen <= sizeof(vw->prev)) {
		memcpy(vw->prev, key, klen);
		vw->plen = klen;
	}
	vw->keys++;
	vw->bytes += klen + vlen;
	return 0;
}

typedef struct verify_ctx {
	pbox_store *st;
	unsigned trees, bad;
} verify_ctx;

static int verify_tree(const char *name, size_t len, void *arg)
{
	verify_ctx *vc = arg;
	char nm[PBOX_BT_NAME_MAX + 1];
	memcpy(nm, name, len);
	nm[len] = 0;
	vc->trees++;
	printf("tree ");
	kv_encode(stdout, name, len);
	pbox_bt *bt;
	int rc = pbox_bt_open(vc->st, nm, &bt);
	if (rc) {
		printf(": FAILED to open: %s\n", pbox_strerror(rc));
		vc->bad++;
		return 0;
	}
	pbox_bt_verify_info vi;
	rc = pbox_bt_verify(bt, &vi);
	if (rc) {
		printf(": FAILED: %s\n", pbox_strerror(rc));
		vc->bad++;
	} else {
		verify_walk *vw = calloc(1, sizeof(*vw));
		rc = vw ? pbox_bt_scan(bt, NULL, 0, NULL, 0, verify_pair, vw) : -ENOMEM;
		if (rc || vw->bad || vw->keys != vi.keys) {
			printf(": FAILED: full scan %s (%" PRIu64 " keys read, verify counted %" PRIu64
			       ")\n",
			       rc ? pbox_strerror(rc) : vw->bad ? "saw keys out of order" : "disagrees",
			       vw ? vw->keys : 0, vi.keys);
			vc->bad++;
		} else {
			printf(": ok, %" PRIu64 " keys, %" PRIu64 " bytes, %" PRIu64 " leaves, %" PRIu64
			       " inner nodes, depth %" PRIu64 "\n",
			       vi.keys, vw->bytes, vi.leaves, vi.inner, vi.depth);
		}
		free(vw);
	}
	pbox_bt_close(bt);
	fflush(stdout);
	return 0;
}

static int cmd_verify(const kv_opts *o, int argc, char **argv)
{
	bool reclaim = argc == 2 && !strcmp(argv[1], "--reclaim");
	if (argc != 1 && !reclaim)
		return usage_error("verify takes no arguments but --reclaim");
	kv_db db;
	if (kv_open(o, false, &db))
		return KV_EXIT_STORE;
	verify_ctx vc = {db.st, 0, 0};
	int rc = pbox_bt_list(db.st, verify_tree, &vc);
	if (rc) {
		kv_err("verify: listing trees", rc);
		vc.bad++;
	}
	/* pages a crash left unreachable are no error (space, not data); --reclaim frees them.
	 * The walk also fails on a page that two places reach. */
	uint64_t leaked = 0;
	if ((rc = pbox_bt_reclaim(db.st, reclaim, &leaked))) {
		kv_err("verify: reachability walk", rc);
		vc.bad++;
	} else if (leaked) {
		printf("unreachable pages: %" PRIu64 " %s\n", leaked,
		       reclaim ? "freed" : "(left by a crash; verify --reclaim frees them)");
	}
	pbox_store_stats s;
	pbox_store_get_stats(db.st, &s);
	if (s.free_pages >= s.page_count) {
		printf("store: FAILED: %" PRIu64 " free pages of %" PRIu64 "\n", s.free_pages,
		       s.page_count);
		vc.bad++;
	}
	int code = finish(&db, vc.bad ? KV_EXIT_STORE : KV_EXIT_OK);
	if (code == KV_EXIT_OK)
		printf("verify: ok (%u trees, %" PRIu64 " pages, %" PRIu64 " free)\n", vc.trees,
		       s.page_count, s.free_pages);
	else
		fprintf(stderr, "kvstore: verify: %u problems found\n", vc.bad ? vc.bad : 1);
	return code;
}

static int parse_global(kv_opts *o, int argc, char **argv, int *next)
{
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !strcmp(a, "-") || !strcmp(a, "--help") || !strcmp(a, "-h"))
			break;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (i + 1 >= argc)
			return usage_error("option needs an argument");
		const char *v = argv[++i];
		if (!strcmp(a, "-d") || !strcmp(a, "--dir")) {
			if (!*v)
				return usage_error("-d needs a directory");
			o->dir = v;
		} else if (!strcmp(a, "--budget")) {
			if (kv_parse_size(v, &o->budget) || o->budget == 0)
				return usage_error("bad --budget size");
		} else if (!strcmp(a, "--page-size")) {
			if (kv_parse_size(v, &o->page_size) || o->page_size < 4096 ||
			    o->page_size > 65536 || (o->page_size & (o->page_size - 1)))
				return usage_error("--page-size must be a power of two, 4K..64K");
		} else if (!strcmp(a, "--max-size")) {
			if (kv_parse_size(v, &o->max_bytes) || o->max_bytes < (1u << 20))
				return usage_error("bad --max-size (at least 1M)");
		} else if (!strcmp(a, "--checkpoint-log")) {
			if (kv_parse_size(v, &o->ckpt_log))
				return usage_error("bad --checkpoint-log size");
			o->ckpt_log_set = true;
		} else if (!strcmp(a, "--durability")) {
			if (!strcmp(v, "durable"))
				o->durable = true;
			else if (!strcmp(v, "fast"))
				o->durable = false;
			else
				return usage_error("--durability is durable or fast");
		} else if (!strcmp(a, "--wal-sync")) {
			if (!strcmp(v, "none") || pbox_wal_sync_parse(v, &o->sync))
				return usage_error("--wal-sync is fdatasync, fsync, dsync or io_uring");
			o->sync_set = true;
		} else if (!strcmp(a, "--tree")) {
			if (!*v || strlen(v) > PBOX_BT_NAME_MAX)
				return usage_error("--tree needs a name of 1..255 bytes");
			o->tree = v;
		} else {
			return usage_error("unknown option");
		}
	}
	*next = i;
	return 0;
}

int main(int argc, char **argv)
{
	kv_opts o = {.dir = KV_DEFAULT_DIR,
		     .tree = KV_DEFAULT_TREE,
		     .max_bytes = KV_DEFAULT_MAX_BYTES,
		     .durable = true};
	int i;
	int rc = parse_global(&o, argc, argv, &i);
	if (rc)
		return rc;
	if (i >= argc)
		return usage_error("no command");
	const char *cmd = argv[i];
	int cargc = argc - i;
	char **cargv = argv + i;
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_text, stdout);
		return KV_EXIT_OK;
	}
	if (!strcmp(cmd, "put"))
		return cmd_put(&o, cargc, cargv);
	if (!strcmp(cmd, "get"))
		return cmd_get(&o, cargc, cargv);
	if (!strcmp(cmd, "del"))
		return cmd_del(&o, cargc, cargv);
	if (!strcmp(cmd, "scan"))
		return cmd_scan(&o, cargc, cargv);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(&o, cargc, cargv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(&o, cargc, cargv);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(&o, cargc, cargv);
	if (!strcmp(cmd, "trees"))
		return cmd_trees(&o, cargc, cargv);
	if (!strcmp(cmd, "batch"))
		return kv_cmd_batch(&o, cargc, cargv);
	if (!strcmp(cmd, "stress"))
		return kv_cmd_stress(&o, cargc, cargv);
	if (!strcmp(cmd, "check-acks"))
		return kv_cmd_check_acks(&o, cargc, cargv);
	if (!strcmp(cmd, "dump"))
		return kv_cmd_dump(&o, cargc, cargv);
	if (!strcmp(cmd, "load"))
		return kv_cmd_load(&o, cargc, cargv);
	if (!strcmp(cmd, "inspect"))
		return kv_cmd_inspect(&o, cargc, cargv);
	if (!strcmp(cmd, "create-tree"))
		return kv_cmd_create_tree(&o, cargc, cargv);
	if (!strcmp(cmd, "drop-tree"))
		return kv_cmd_drop_tree(&o, cargc, cargv);
	if (!strcmp(cmd, "backup"))
		return kv_cmd_backup(&o, cargc, cargv);
	if (!strcmp(cmd, "compact"))
		return kv_cmd_compact(&o, cargc, cargv);
	return usage_error("unknown command");
}
