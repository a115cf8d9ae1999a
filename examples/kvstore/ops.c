/*
 * ops.c — store-wide kvstore commands: `dump`, `load`, `create-tree`, `drop-tree`, and
 * kv_dump_store, the in-process dump that `dump` and the batch command `dump FILE` share.
 * The format itself (and its table) is dump.c's.
 *
 * Dump: one read-only transaction (pbox_txn, PBOX_TXN_READONLY) is the snapshot: every tree
 * is read through pbox_txn_scan in it, so the dump is consistent across trees even while
 * other threads write (the version store keeps what they replace until the dump ends). The
 * list of trees comes from the catalog, which is not transactional: a tree created or
 * dropped during a dump may or may not be in it.
 *
 * Load: ONE transaction for the whole dump. Every pair is pbox_txn_put into it as the parser
 * reads it (the write set is buffered in memory: about 64 bytes + key + value per pair, so a
 * load needs memory proportional to the dump, and the log must hold it); --replace deletes
 * the tree's existing keys in the same transaction. It commits only after the parser has
 * read the trailer and every count and checksum agreed, so a damaged dump applies nothing.
 * Trees the dump names that do not exist are created when their section starts (creation
 * is not transactional) and dropped again if the load fails; a crash in the middle of a
 * load can therefore leave such a tree empty, never partly filled. The commit installs the
 * keys a leaf at a time in key order (btree/src/txn_install.c), and splits at a leaf's end
 * keep ascending fills dense; there is no separate append path.
 *
 * Tree names on the command line are taken as given (like --tree), not %HH-decoded; in
 * messages they are printed %HH-encoded. Threading: the commands are single-threaded;
 * kv_dump_store may run beside other threads using the store.
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP 1 /* private: a callback stopped a scan or a parse (its reason is recorded) */

/* The %HH form of a name, for messages (truncated to fit). */
static const char *enc_name(char *out, size_t cap, const char *name, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len && o + 4 < cap; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c > 0x20 && c < 0x7f && c != '%') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
	return out;
}

static int cmd_usage(const char *msg)
{
	fprintf(stderr, "kvstore: %s (kvstore --help for usage)\n", msg);
	return KV_EXIT_USAGE;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	return n >= 1 && n <= PBOX_BT_NAME_MAX;
}

/* Open the store alone (no tree): create it when asked. */
static int open_store(const kv_opts *o, bool create, kv_db *db)
{
	kv_opts so = *o;
	so.tree = NULL;
	int rc = kv_open(&so, create, db);
	db->o = o; /* so.o would dangle after return */
	return rc;
}

/* ---- dump --------------------------------------------------------------------------------- */

typedef struct name_vec {
	char **v;
	size_t n, cap;
} name_vec;

static int name_push(name_vec *nv, const char *name, size_t len)
{
	if (nv->n == nv->cap) {
		size_t cap = nv->cap ? 2 * nv->cap : 16;
		char **v = realloc(nv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		nv->v = v;
		nv->cap = cap;
	}
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, name, len);
	s[len] = 0;
	nv->v[nv->n++] = s;
	return 0;
}

static int list_push(const char *name, size_t len, void *arg)
{
	return name_push(arg, name, len);
}

static void name_vec_free(name_vec *nv)
{
	for (size_t i = 0; i < nv->n; i++)
		free(nv->v[i]);
	free(nv->v);
}

static int dump_pair(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	kv_dump_writer *w = arg;
	kv_dump_pair(w, k, kl, v, vl);
	return ferror(w->f) ? STOP : 0;
}

int kv_dump_store(pbox_store *st, char *const *names, size_t n, FILE *out, uint64_t *pairs,
		  uint64_t *trees, char *err, size_t errlen)
{
	name_vec nv = { 0 };
	pbox_bt **bts = NULL;
	pbox_txn *t = NULL;
	char en[3 * PBOX_BT_NAME_MAX + 1];
	int rc = 0;
	if (n == 0) {
		if ((rc = pbox_bt_list(st, list_push, &nv))) {
			snprintf(err, errlen, "listing trees: %s", pbox_strerror(rc));
			goto out;
		}
		names = nv.v;
		n = nv.n;
	}
	bts = calloc(n ? n : 1, sizeof(*bts));
	if (!bts) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s", pbox_strerror(rc));
		goto out;
	}
	/* every tree is opened before a byte is written: a missing one writes nothing */
	for (size_t i = 0; i < n; i++) {
		if ((rc = pbox_bt_open(st, names[i], &bts[i]))) {
			bts[i] = NULL;
			snprintf(err, errlen, rc == PBOX_ENOTFOUND ? "no tree %s" : "open tree %s: %s",
				 enc_name(en, sizeof(en), names[i], strlen(names[i])),
				 pbox_strerror(rc));
			goto out;
		}
	}
	if ((rc = pbox_txn_begin(st, PBOX_TXN_READONLY, &t))) {
		t = NULL;
		snprintf(err, errlen, "begin snapshot: %s", pbox_strerror(rc));
		goto out;
	}
	kv_dump_writer w;
	kv_dump_begin(&w, out);
	for (size_t i = 0; i < n && !rc; i++) {
		kv_dump_tree(&w, names[i], strlen(names[i]));
		rc = pbox_txn_scan(t, bts[i], NULL, 0, NULL, 0, 0, dump_pair, &w);
		if (rc == STOP || (!rc && ferror(out))) {
			rc = -(errno ? errno : EIO);
			snprintf(err, errlen, "write: %s", strerror(-rc));
		} else if (rc) {
			snprintf(err, errlen, "reading tree %s: %s",
				 enc_name(en, sizeof(en), names[i], strlen(names[i])),
				 pbox_strerror(rc));
		} else {
			kv_dump_end_tree(&w);
		}
	}
	if (!rc) {
		kv_dump_finish(&w);
		if (fflush(out) || ferror(out)) {
			rc = -(errno ? errno : EIO);
			snprintf(err, errlen, "write: %s", strerror(-rc));
		} else {
			if (pairs)
				*pairs = w.pairs;
			if (trees)
				*trees = w.trees;
		}
	}
out:
	pbox_txn_abort(t); /* read-only: nothing to commit */
	if (bts)
		for (size_t i = 0; i < n; i++)
			if (bts[i])
				pbox_bt_close(bts[i]);
	free(bts);
	name_vec_free(&nv);
	return rc;
}

int kv_cmd_dump(const kv_opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] == '-')
			return cmd_usage("dump takes tree names only (the global --tree is not used)");
		if (!name_ok(argv[i]))
			return cmd_usage("dump: a tree name has 1..255 bytes");
		for (int j = 1; j < i; j++)
			if (!strcmp(argv[i], argv[j]))
				return cmd_usage("dump: a tree is named twice");
	}
	kv_db db;
	if (open_store(o, false, &db))
		return KV_EXIT_STORE;
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	char err[512] = "";
	int rc = kv_dump_store(db.st, argv + 1, (size_t)(argc - 1), stdout, NULL, NULL, err,
			       sizeof(err));
	if (rc)
		fprintf(stderr, "kvstore: dump: %s\n", err);
	int code = rc == 0 ? KV_EXIT_OK : rc == PBOX_ENOTFOUND ? KV_EXIT_NOTFOUND : KV_EXIT_STORE;
	int crc = kv_close(&db);
	return crc && code == KV_EXIT_OK ? KV_EXIT_STORE : code;
}

/* ---- load --------------------------------------------------------------------------------- */

typedef struct key_list {
	unsigned char *p; /* u32 length, bytes; ... */
	size_t len, cap, n;
} key_list;

static int key_push(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)v;
	(void)vl;
	key_list *kl_ = arg;
	size_t need = kl_->len + 4 + kl;
	if (need > kl_->cap) {
		size_t cap = kl_->cap ? kl_->cap : 4096;
		while (cap < need)
			cap *= 2;
		unsigned char *p = realloc(kl_->p, cap);
		if (!p)
			return -ENOMEM;
		kl_->p = p;
		kl_->cap = cap;
	}
	uint32_t l = (uint32_t)kl;
	memcpy(kl_->p + kl_->len, &l, 4);
	memcpy(kl_->p + kl_->len + 4, k, kl);
	kl_->len = need;
	kl_->n++;
	return 0;
}

static int any_key(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)k, (void)kl, (void)v, (void)vl;
	*(bool *)arg = true;
	return STOP;
}

typedef struct load_ctx {
	pbox_store *st;
	pbox_txn *t;
	const char *into;
	bool replace;
	name_vec names;   /* target trees, in dump order */
	pbox_bt **bts;    /* their handles (names.n of them) */
	bool *created;    /* created by this load: dropped again if it fails */
	pbox_bt *cur;
	uint64_t replaced; /* keys --replace deleted */
	int code;         /* exit code when a callback stopped the parse */
	char msg[512];
} load_ctx;

/* Record why the load stops (exit code and message) and stop the parse. */
__attribute__((format(printf, 3, 4))) static int load_fail(load_ctx *lc, int code,
							   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lc->msg, sizeof(lc->msg), fmt, ap);
	va_end(ap);
	lc->code = code;
	return STOP;
}

static int load_tree(void *arg, const char *name, size_t len)
{
	(void)len;
	load_ctx *lc = arg;
	char en[3 * PBOX_BT_NAME_MAX + 1];
	if (lc->into && lc->names.n > 0)
		return load_fail(lc, KV_EXIT_USAGE, "--into takes a dump of one tree");
	const char *target = lc->into ? lc->into : name;
	for (size_t i = 0; i < lc->names.n; i++)
		if (!strcmp(lc->names.v[i], target))
			return load_fail(lc, KV_EXIT_USAGE, "tree %s appears twice in the dump",
					 enc_name(en, sizeof(en), target, strlen(target)));
	if (name_push(&lc->names, target, strlen(target)))
		return load_fail(lc, KV_EXIT_STORE, "out of memory");
	size_t i = lc->names.n - 1;
	pbox_bt **bts = realloc(lc->bts, lc->names.n * sizeof(*bts));
	bool *cr = bts ? realloc(lc->created, lc->names.n * sizeof(*cr)) : NULL;
	if (bts)
		lc->bts = bts;
	if (cr)
		lc->created = cr;
	if (!bts || !cr) {
		lc->names.n--;
		free(lc->names.v[i]);
		return load_fail(lc, KV_EXIT_STORE, "out of memory");
	}
	lc->bts[i] = NULL;
	lc->created[i] = false;
	int rc = pbox_bt_open(lc->st, target, &lc->bts[i]);
	if (rc == PBOX_ENOTFOUND) {
		rc = pbox_bt_create(lc->st, target, &lc->bts[i]);
		lc->created[i] = rc == 0;
	}
	if (rc) {
		lc->bts[i] = NULL;
		return load_fail(lc, rc == PBOX_EINVAL ? KV_EXIT_USAGE : KV_EXIT_STORE,
				 "open tree %s: %s", enc_name(en, sizeof(en), target, strlen(target)),
				 pbox_strerror(rc));
	}
	lc->cur = lc->bts[i];
	if (lc->created[i])
		return 0;
	bool nonempty = false;
	rc = pbox_txn_scan(lc->t, lc->cur, NULL, 0, NULL, 0, 0, any_key, &nonempty);
	if (rc && rc != STOP)
		goto store_err;
	if (!nonempty)
		return 0;
	if (!lc->replace)
		return load_fail(lc, KV_EXIT_EXISTS,
				 "tree %s is not empty (--replace empties it first, in the same "
				 "transaction)",
				 enc_name(en, sizeof(en), target, strlen(target)));
	key_list kl = { 0 };
	rc = pbox_txn_scan(lc->t, lc->cur, NULL, 0, NULL, 0, 0, key_push, &kl);
	for (size_t off = 0; !rc && off < kl.len;) {
		uint32_t l;
		memcpy(&l, kl.p + off, 4);
		rc = pbox_txn_del(lc->t, lc->cur, kl.p + off + 4, l);
		off += 4 + (size_t)l;
		lc->replaced++;
	}
	free(kl.p);
	if (!rc)
		return 0;
store_err:
	return load_fail(lc, KV_EXIT_STORE, "tree %s: %s",
			 enc_name(en, sizeof(en), target, strlen(target)), pbox_strerror(rc));
}

static int load_pair(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	load_ctx *lc = arg;
	int rc = pbox_txn_put(lc->t, lc->cur, k, kl, v, vl);
	if (rc == 0)
		return 0;
	if (rc == PBOX_EINVAL)
		return load_fail(lc, KV_EXIT_USAGE,
				 "key or value over this store's limits (keys up to %zu bytes, "
				 "values up to %u)",
				 pbox_bt_key_max(lc->st), PBOX_BT_VALUE_MAX_BYTES);
	return load_fail(lc, KV_EXIT_STORE, "put: %s", pbox_strerror(rc));
}

int kv_cmd_load(const kv_opts *o, int argc, char **argv)
{
	const char *into = NULL, *path = NULL;
	bool replace = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--replace")) {
			replace = true;
		} else if (!strcmp(argv[i], "--into")) {
			if (i + 1 >= argc || !name_ok(argv[i + 1]))
				return cmd_usage("--into needs a tree name of 1..255 bytes");
			into = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			return cmd_usage("unknown load option");
		} else if (!path) {
			path = argv[i];
		} else {
			return cmd_usage("load takes at most one FILE");
		}
	}
	FILE *in = stdin;
	if (path && strcmp(path, "-")) {
		in = fopen(path, "r");
		if (!in) {
			fprintf(stderr, "kvstore: load: %s: %s\n", path, strerror(errno));
			return KV_EXIT_USAGE;
		}
	}
	static char ibuf[1 << 16];
	setvbuf(in, ibuf, _IOFBF, sizeof(ibuf));
	double t0 = kv_now();
	kv_db db;
	if (open_store(o, true, &db)) {
		if (in != stdin)
			fclose(in);
		return KV_EXIT_STORE;
	}
	load_ctx lc;
	memset(&lc, 0, sizeof(lc));
	lc.st = db.st;
	lc.into = into;
	lc.replace = replace;
	int code = KV_EXIT_OK;
	kv_dump_result res;
	memset(&res, 0, sizeof(res));
	int rc = pbox_txn_begin(db.st, 0, &lc.t);
	if (rc) {
		lc.t = NULL;
		kv_err("load: begin", rc);
		code = KV_EXIT_STORE;
		goto out;
	}
	static const kv_dump_cb cb = { load_tree, load_pair, NULL };
	rc = kv_dump_parse(in, &cb, &lc, &res);
	if (rc == KV_DUMP_EBAD) {
		fprintf(stderr, "kvstore: load: line %" PRIu64 ": %s; nothing loaded\n", res.line,
			res.msg);
		code = KV_EXIT_USAGE;
	} else if (rc) {
		fprintf(stderr, "kvstore: load: line %" PRIu64 ": %s; nothing loaded\n", res.line,
			lc.msg);
		code = lc.code;
	} else if (into && res.trees != 1) {
		fprintf(stderr, "kvstore: load: --into takes a dump of one tree (this one has %" PRIu64
				"); nothing loaded\n",
			res.trees);
		code = KV_EXIT_USAGE;
	}
	if (code != KV_EXIT_OK) {
		pbox_txn_abort(lc.t);
	} else {
		uint64_t ops = pbox_txn_count(lc.t);
		double t1 = kv_now();
		rc = pbox_txn_commit(lc.t, db.flags);
		if (rc) {
			kv_err("load: commit", rc);
			code = KV_EXIT_STORE;
		} else {
			printf("load: %" PRIu64 " pairs into %" PRIu64 " trees (%" PRIu64
			       " keys replaced, %" PRIu64 " operations) in %.3f s (read %.3f s, "
			       "commit %.3f s)\n",
			       res.pairs, res.trees, lc.replaced, (uint64_t)ops, kv_now() - t0,
			       t1 - t0, kv_now() - t1);
		}
	}
	lc.t = NULL;
out:
	for (size_t i = 0; i < lc.names.n; i++) {
		if (lc.bts[i])
			pbox_bt_close(lc.bts[i]);
		/* a failed load leaves no tree it created (their pairs were never applied) */
		if (code != KV_EXIT_OK && lc.created[i]) {
			int d = pbox_bt_drop(db.st, lc.names.v[i]);
			if (d)
				kv_err("load: dropping a tree it created", d);
		}
	}
	free(lc.bts);
	free(lc.created);
	name_vec_free(&lc.names);
	if (in != stdin)
		fclose(in);
	int crc = kv_close(&db);
	return crc && code == KV_EXIT_OK ? KV_EXIT_STORE : code;
}

/* ---- create-tree, drop-tree -------------------------------------------------------------- */

int kv_cmd_create_tree(const kv_opts *o, int argc, char **argv)
{
	if (argc != 2)
		return cmd_usage("create-tree takes NAME");
	if (!name_ok(argv[1]))
		return cmd_usage("create-tree: a tree name has 1..255 bytes");
	kv_db db;
	if (open_store(o, true, &db))
		return KV_EXIT_STORE;
	pbox_bt *bt;
	int rc = pbox_bt_create(db.st, argv[1], &bt);
	char en[3 * PBOX_BT_NAME_MAX + 1];
	int code = KV_EXIT_OK;
	if (rc == 0) {
		pbox_bt_close(bt);
	} else if (rc == PBOX_EEXIST) {
		fprintf(stderr, "kvstore: create-tree: tree %s exists\n",
			enc_name(en, sizeof(en), argv[1], strlen(argv[1])));
		code = KV_EXIT_EXISTS;
	} else {
		kv_err("create-tree", rc);
		code = rc == PBOX_EINVAL ? KV_EXIT_USAGE : KV_EXIT_STORE;
	}
	int crc = kv_close(&db);
	return crc && code == KV_EXIT_OK ? KV_EXIT_STORE : code;
}

int kv_cmd_drop_tree(const kv_opts *o, int argc, char **argv)
{
	if (argc != 2)
		return cmd_usage("drop-tree takes NAME");
	if (!name_ok(argv[1]))
		return cmd_usage("drop-tree: a tree name has 1..255 bytes");
	char en[3 * PBOX_BT_NAME_MAX + 1];
	enc_name(en, sizeof(en), argv[1], strlen(argv[1]));
	/* like del: a directory without a store has no such tree, and nothing is created */
	struct stat sb;
	if (stat(o->dir, &sb) != 0 && errno == ENOENT) {
		fprintf(stderr, "kvstore: drop-tree: no tree %s\n", en);
		return KV_EXIT_NOTFOUND;
	}
	kv_db db;
	int rc = open_store(o, false, &db);
	if (rc == PBOX_ENOTFOUND)
		return KV_EXIT_NOTFOUND;
	if (rc)
		return KV_EXIT_STORE;
	rc = pbox_bt_drop(db.st, argv[1]);
	int code = KV_EXIT_OK;
	if (rc == PBOX_ENOTFOUND) {
		fprintf(stderr, "kvstore: drop-tree: no tree %s\n", en);
		code = KV_EXIT_NOTFOUND;
	} else if (rc) {
		kv_err("drop-tree", rc);
		code = KV_EXIT_STORE;
	}
	int crc = kv_close(&db);
	return crc && code == KV_EXIT_OK ? KV_EXIT_STORE : code;
}
