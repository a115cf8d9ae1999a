/*
 * inspect_cmd.c — `kvstore inspect [--tree T] [--json]`: the shape and space use of each
 * tree (pbox_bt_inspect: depth, nodes per level, fill histograms, overflow values, key and
 * value sizes) and of the store (page counts and free pages from pbox_store_get_stats, the
 * data file and log sizes from the files themselves).
 *
 * Output: text as `name value` lines under `# tree NAME` / `# store` headings (like
 * `stats`), or one JSON object (--json) with "trees" (an array) and "store". Tree names
 * appear %HH-encoded in both, so the JSON holds ASCII only (no escapes but '"' and '\').
 * Exit: 0; 1 if --tree names a missing tree; 3 on a store error (a tree that fails the walk,
 * e.g. corruption, is reported and makes the exit code 3 after the others are printed).
 *
 * Threading: single-threaded; the walk latches like verify (see btree/src/inspect.c).
 */
#define _GNU_SOURCE
#include "kvstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct insp {
	pbox_store *st;
	bool json;
	unsigned trees, bad;
} insp;

/* The %HH form of a name into out (JSON-safe: '"' and '\' escaped as well). */
static void name_form(char *out, size_t cap, const char *name, size_t len, bool json)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c > 0x20 && c < 0x7f && c != '%') {
			if (json && (c == '"' || c == '\\'))
				out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
}

static double avg(uint64_t sum, uint64_t n)
{
	return n ? (double)sum / (double)n : 0.0;
}

static void print_hist(const char *label, const uint64_t *h, bool json)
{
	if (json) {
		printf("\"%s\": [", label);
		for (unsigned i = 0; i < PBOX_BT_INSPECT_FILL_BUCKETS; i++)
			printf("%s%" PRIu64, i ? ", " : "", h[i]);
		printf("]");
		return;
	}
	printf("%-26s", label);
	for (unsigned i = 0; i < PBOX_BT_INSPECT_FILL_BUCKETS; i++)
		printf(" %" PRIu64, h[i]);
	printf("\n");
}

static void print_tree(const char *en, const pbox_bt_inspect_info *in, bool json, bool first)
{
	uint64_t nodes = in->leaves + in->inner;
	double fill = nodes ? 100.0 * (double)in->node_bytes_used /
				      ((double)nodes * (double)(in->page_size - 32u))
			    : 0.0;
	if (json) {
		printf("%s\n    {\"name\": \"%s\", \"depth\": %" PRIu64 ", \"pages_per_level\": [",
		       first ? "" : ",", en, in->depth);
		for (uint64_t l = 0; l < in->depth && l < PBOX_BT_INSPECT_LEVELS; l++)
			printf("%s%" PRIu64, l ? ", " : "", in->pages[l]);
		printf("], \"leaves\": %" PRIu64 ", \"inner\": %" PRIu64 ", ", in->leaves, in->inner);
		print_hist("leaf_fill_histogram", in->leaf_fill, true);
		printf(", ");
		print_hist("inner_fill_histogram", in->inner_fill, true);
		printf(", \"fill_pct\": %.1f, \"overflow\": {\"values\": %" PRIu64 ", \"pages\": %" PRIu64
		       ", \"bytes\": %" PRIu64 "}, ",
		       fill, in->overflow_values, in->overflow_pages, in->overflow_bytes);
		printf("\"keys\": {\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"max\": %" PRIu64
		       ", \"sum\": %" PRIu64 ", \"avg\": %.1f}, ",
		       in->keys, in->key_min, in->key_max, in->key_sum, avg(in->key_sum, in->keys));
		printf("\"values\": {\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"max\": %" PRIu64
		       ", \"sum\": %" PRIu64 ", \"avg\": %.1f}}",
		       in->keys, in->val_min, in->val_max, in->val_sum, avg(in->val_sum, in->keys));
		return;
	}
	printf("# tree %s\n", en);
	printf("%-26s %" PRIu64 "\n", "depth", in->depth);
	for (uint64_t l = 0; l < in->depth && l < PBOX_BT_INSPECT_LEVELS; l++) {
		char lab[32];
		snprintf(lab, sizeof(lab), "pages_level_%" PRIu64, l);
		printf("%-26s %" PRIu64 "%s\n", lab, in->pages[l],
		       l == 0 ? " (root)" : l + 1 == in->depth ? " (leaves)" : "");
	}
	printf("%-26s %" PRIu64 "\n", "leaves", in->leaves);
	printf("%-26s %" PRIu64 "\n", "inner", in->inner);
	printf("%-26s %.1f%%\n", "fill", fill);
	print_hist("leaf_fill_histogram", in->leaf_fill, false);
	print_hist("inner_fill_histogram", in->inner_fill, false);
	printf("%-26s %" PRIu64 "\n", "overflow_values", in->overflow_values);
	printf("%-26s %" PRIu64 "\n", "overflow_pages", in->overflow_pages);
	printf("%-26s %" PRIu64 "\n", "overflow_bytes", in->overflow_bytes);
	printf("%-26s %" PRIu64 "\n", "keys", in->keys);
	printf("%-26s %" PRIu64 " / %" PRIu64 " / %.1f\n", "key_bytes_min/max/avg", in->key_min,
	       in->key_max, avg(in->key_sum, in->keys));
	printf("%-26s %" PRIu64 " / %" PRIu64 " / %.1f\n", "value_bytes_min/max/avg", in->val_min,
	       in->val_max, avg(in->val_sum, in->keys));
	printf("%-26s %" PRIu64 "\n", "key_bytes", in->key_sum);
	printf("%-26s %" PRIu64 "\n", "value_bytes", in->val_sum);
}

static int inspect_one(insp *is, const char *name, size_t len)
{
	char en[3 * PBOX_BT_NAME_MAX + 8];
	name_form(en, sizeof(en), name, len, is->json);
	char nm[PBOX_BT_NAME_MAX + 1];
	memcpy(nm, name, len);
	nm[len] = 0;
	pbox_bt *bt;
	int rc = pbox_bt_open(is->st, nm, &bt);
	if (rc)
		return rc;
	pbox_bt_inspect_info in;
	rc = pbox_bt_inspect(bt, &in);
	pbox_bt_close(bt);
	if (rc) {
		/* report and go on with the other trees: a damaged tree must not hide the rest */
		char tn[3 * PBOX_BT_NAME_MAX + 8];
		name_form(tn, sizeof(tn), name, len, false);
		fprintf(stderr, "kvstore: inspect: tree %s: %s\n", tn, pbox_strerror(rc));
		is->bad++;
		return 0;
	}
	print_tree(en, &in, is->json, is->trees == 0);
	is->trees++;
	return 0;
}

static int inspect_listed(const char *name, size_t len, void *arg)
{
	return inspect_one(arg, name, len);
}

/* Bytes of the regular files in dir (the log's segments). */
static uint64_t dir_bytes(const char *dir, unsigned *files)
{
	uint64_t sum = 0;
	*files = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat sb;
		if (fstatat(dirfd(d), e->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode)) {
			sum += (uint64_t)sb.st_size;
			(*files)++;
		}
	}
	closedir(d);
	return sum;
}

static void print_store(const kv_opts *o, pbox_store *st, bool json)
{
	pbox_store_stats s;
	pbox_store_get_stats(st, &s);
	char p[4096];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/data", o->dir);
	uint64_t data = stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	uint64_t data_alloc = stat(p, &sb) == 0 ? (uint64_t)sb.st_blocks * 512u : 0;
	snprintf(p, sizeof(p), "%s/wal", o->dir);
	unsigned segs;
	uint64_t log = dir_bytes(p, &segs);
	uint64_t used = s.page_count * s.page_size;
	if (json) {
		printf("\"store\": {\"page_size\": %u, \"pages\": %" PRIu64 ", \"free_pages\": %" PRIu64
		       ", \"used_bytes\": %" PRIu64 ", \"data_file_bytes\": %" PRIu64
		       ", \"data_file_allocated_bytes\": %" PRIu64 ", \"log_files\": %u"
		       ", \"log_bytes\": %" PRIu64 ", \"log_bytes_since_ckpt\": %" PRIu64 "}",
		       (unsigned)s.page_size, s.page_count, s.free_pages, used, data, data_alloc, segs,
		       log, (uint64_t)(s.wal_end - s.redo_start));
		return;
	}
	printf("# store %s\n", o->dir);
	printf("%-26s %u\n", "page_size", (unsigned)s.page_size);
	printf("%-26s %" PRIu64 "\n", "pages", s.page_count);
	printf("%-26s %" PRIu64 "\n", "free_pages", s.free_pages);
	printf("%-26s %" PRIu64 "\n", "used_bytes", used);
	printf("%-26s %" PRIu64 "\n", "data_file_bytes", data);
	printf("%-26s %" PRIu64 "\n", "data_file_allocated_bytes", data_alloc);
	printf("%-26s %u\n", "log_files", segs);
	printf("%-26s %" PRIu64 "\n", "log_bytes", log);
	printf("%-26s %" PRIu64 "\n", "log_bytes_since_ckpt", (uint64_t)(s.wal_end - s.redo_start));
}

int kv_cmd_inspect(const kv_opts *o, int argc, char **argv)
{
	const char *tree = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--tree")) {
			if (i + 1 >= argc || !*argv[i + 1] || strlen(argv[i + 1]) > PBOX_BT_NAME_MAX) {
				fprintf(stderr, "kvstore: inspect --tree needs a name of 1..255 bytes "
						"(kvstore --help for usage)\n");
				return KV_EXIT_USAGE;
			}
			tree = argv[++i];
		} else {
			fprintf(stderr, "kvstore: inspect takes [--tree T] [--json] (kvstore --help "
					"for usage)\n");
			return KV_EXIT_USAGE;
		}
	}
	kv_opts so = *o;
	so.tree = NULL;
	kv_db db;
	if (kv_open(&so, false, &db))
		return KV_EXIT_STORE;
	insp is = { .st = db.st, .json = json };
	if (json)
		printf("{\"trees\": [");
	int rc = tree ? inspect_one(&is, tree, strlen(tree))
		      : pbox_bt_list(db.st, inspect_listed, &is);
	int code = KV_EXIT_OK;
	if (rc == PBOX_ENOTFOUND && tree) {
		char en[3 * PBOX_BT_NAME_MAX + 8];
		name_form(en, sizeof(en), tree, strlen(tree), false);
		fprintf(stderr, "kvstore: inspect: no tree %s\n", en);
		code = KV_EXIT_NOTFOUND;
	} else if (rc) {
		kv_err("inspect", rc);
		code = KV_EXIT_STORE;
	} else if (is.bad) {
		code = KV_EXIT_STORE;
	}
	if (json) {
		printf("%s],\n  ", is.trees ? "\n  " : "");
		print_store(o, db.st, true);
		printf("}\n");
	} else {
		print_store(o, db.st, false);
	}
	int crc = kv_close(&db);
	return crc && code == KV_EXIT_OK ? KV_EXIT_STORE : code;
}
