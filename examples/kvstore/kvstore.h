/*
 * kvstore.h — declarations shared by the files of the kvstore example.
 *
 *   main.c      command line, options, the one-shot commands, opening the store
 *   encoding.c  the %HH text form of byte strings, sizes, small parsers
 *   value.c     self-checking stress values and the key/batch-id formats (also used by the
 *               torture test driver in tests/kvstore)
 *   batch.c     the `batch` line protocol (transactions: pbox_txn)
 *   stress.c    `stress` (concurrent writers: puts, transactions of K keys, or conflicting
 *               transfer transactions; optional backups while they run)
 *   dump.c      the dump format (its table): writer and parser, no store access
 *   ops.c       `dump`, `load`, `create-tree`, `drop-tree`; kv_dump_store (also `dump FILE`
 *               in batch)
 *   inspect_cmd.c  `inspect` (pbox_bt_inspect per tree, store figures; text or JSON)
 *   backup_cmd.c   `backup`, `compact`; kv_backup_now (also `backup DEST` in batch and
 *               `stress --backup-every`)
 *   check_acks.c   `check-acks` (the proof stress's acknowledgements were kept)
 *   xfer.c      the keys and values of `stress --transfers` (xfer.h)
 */
#ifndef KVSTORE_H
#define KVSTORE_H

#include <pbox/btree.h>
#include <pbox/status.h>
#include <pbox/storage.h>
#include <pbox/txn.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (README: "Exit codes"). */
enum {
	KV_EXIT_OK = 0,
	KV_EXIT_NOTFOUND = 1, /* get/del of a missing key; check-acks found violations */
	KV_EXIT_USAGE = 2,    /* bad command line or bad %HH encoding */
	KV_EXIT_STORE = 3,    /* corruption, I/O, store locked by another process, ... */
	KV_EXIT_EXISTS = 4,   /* create-tree of a tree that exists; load into a non-empty
			       * tree without --replace */
};

#define KV_DEFAULT_DIR "./kvstore-data"
#define KV_DEFAULT_TREE "default"
/* The virtual reservation (largest data file): far below the 1 TiB library default, which
 * some VMs and ThreadSanitizer refuse. --max-size changes it. */
#define KV_DEFAULT_MAX_BYTES (64ull << 30)
/* Written next to the store after an open whose recovery replayed something, so `stats`
 * can tell what the last real recovery did even after later clean opens. */
#define KV_RECOVERY_FILE "kvstore-last-recovery"

typedef struct kv_opts {
	const char *dir;
	const char *tree;
	uint64_t budget;    /* 0: library default */
	uint64_t page_size; /* 0: library default (only at creation) */
	uint64_t max_bytes;
	uint64_t ckpt_log;  /* --checkpoint-log: automatic checkpoint threshold, 0 = off */
	bool ckpt_log_set;
	bool durable;       /* --durability durable (default) */
	bool sync_set;
	pbox_wal_sync sync;
} kv_opts;

typedef struct kv_db {
	pbox_store *st;
	pbox_bt *bt;     /* NULL when opened without creating and the tree does not exist */
	unsigned flags;  /* PBOX_BT_DURABLE or 0 */
	const kv_opts *o;
} kv_db;

/* Open the store (running recovery). o->tree NULL: open no tree (db->bt stays NULL). create: make the directory, store and tree if missing.
 * Without create, a missing store is PBOX_ENOTFOUND and a missing tree leaves db->bt NULL.
 * On failure prints one line to stderr and returns the pbox status. */
int kv_open(const kv_opts *o, bool create, kv_db *db);
/* Close; prints and returns the first error. */
int kv_close(kv_db *db);
/* Map a pbox status to an exit code (0 -> 0, PBOX_ENOTFOUND -> 1, the rest -> 3). */
int kv_exit_of(int rc);
/* "kvstore: what: message" on stderr. */
void kv_err(const char *what, int rc);

/* ---- encoding.c ---------------------------------------------------------------------- */

/* Write bytes in the %HH form: printable ASCII other than space, tab and '%' stays, every
 * other byte becomes %HH (upper-case hex). */
void kv_encode(FILE *f, const void *buf, size_t len);
/* Decode the %HH form into a malloc'd buffer (NUL-terminated for convenience, *len excludes
 * it). Returns 0, or -1 for a '%' not followed by two hex digits (or out of memory). */
int kv_decode(const char *s, char **out, size_t *len);
/* "4096", "256M", "1G", "64KiB": a size in bytes. -1 if malformed. */
int kv_parse_size(const char *s, uint64_t *out);
/* A decimal unsigned integer. -1 if malformed. */
int kv_parse_u64(const char *s, uint64_t *out);
/* A non-negative decimal number with an optional fraction ("2", "0.5"). -1 if malformed. */
int kv_parse_seconds(const char *s, double *out);
double kv_now(void); /* CLOCK_MONOTONIC seconds */
/* write(2) all of buf (retrying short writes and EINTR): 0 or -errno. One call per ack line
 * group keeps an O_APPEND file's lines whole. */
int kv_write_all(int fd, const void *buf, size_t len);

/* ---- value.c --------------------------------------------------------------------------- */

/* Keys written by stress and the torture driver: t<thread>-<seq, 12 digits>, so that one
 * thread's keys ascend and all of them sort before thread t<thread>0's. */
#define KV_KEY_MAX 40
int kv_stress_key(char *buf, unsigned thread, uint64_t seq);
/* Parse such a key: 0, or -1 if it is not one. */
int kv_stress_key_parse(const void *key, size_t klen, unsigned *thread, uint64_t *seq);
/* Exactly the n bytes at p as a decimal number (0 < n <= 19, digits only): 0, or -1. */
int kv_parse_digits(const char *p, size_t n, uint64_t *out);

/* Batch ids: "-" for a single put; b<thread>.<first seq>.<count> for a batch (one
 * transaction) of count keys with consecutive sequence numbers of one thread. */
#define KV_BATCH_ID_MAX 48
int kv_batch_id(char *buf, unsigned thread, uint64_t first, unsigned count);
/* 0 and the parts, or -1 if it is not a batch id ("-" is not). */
int kv_batch_id_parse(const char *s, size_t len, unsigned *thread, uint64_t *first,
		      unsigned *count);

/* A self-checking value: "<key>|<batch id>|<filler>|<crc32c of what precedes, 8 hex>",
 * exactly size bytes when size is at least kv_value_min(); longer otherwise. Returns the
 * length written (buf must hold max(size, kv_value_min()) bytes). */
size_t kv_value_min(size_t klen, const char *batch_id);
size_t kv_value_make(char *buf, size_t size, const char *key, size_t klen,
		     const char *batch_id);
/* Check a value against its key: 0 and the batch id (copied, NUL-terminated, into bid of
 * capacity cap), or -1 if the value is not a well-formed value for this key. */
int kv_value_check(const void *val, size_t vlen, const void *key, size_t klen, char *bid,
		   size_t cap);
/* The checksum ack files carry: CRC32C of the whole value. */
uint32_t kv_value_sum(const void *val, size_t vlen);

/* ---- batch.c / stress.c ---------------------------------------------------------------- */

int kv_cmd_batch(const kv_opts *o, int argc, char **argv);
int kv_cmd_stress(const kv_opts *o, int argc, char **argv);
int kv_cmd_check_acks(const kv_opts *o, int argc, char **argv);

/* ---- dump.c: the dump format (table in dump.c) ----------------------------------------- */

#define KV_DUMP_VERSION 1
#define KV_DUMP_KEY_MAX 8192u           /* longest key at any page size (64 KiB / 8) */
#define KV_DUMP_VALUE_MAX (64u << 20)   /* PBOX_BT_VALUE_MAX_BYTES */
#define KV_DUMP_EBAD (-1)               /* kv_dump_parse: the input breaks the format */

/* Writer: call begin, then per tree: tree, pair... (ascending keys), end_tree; then finish.
 * Write errors stay in the FILE (check ferror after fflush). */
typedef struct kv_dump_writer {
	FILE *f;
	char name[PBOX_BT_NAME_MAX];
	size_t name_len;
	uint64_t tree_pairs, pairs, trees;
	uint32_t tree_crc, crc;
} kv_dump_writer;

void kv_dump_begin(kv_dump_writer *w, FILE *f);
void kv_dump_tree(kv_dump_writer *w, const char *name, size_t len);
void kv_dump_pair(kv_dump_writer *w, const void *k, size_t kl, const void *v, size_t vl);
void kv_dump_end_tree(kv_dump_writer *w);
void kv_dump_finish(kv_dump_writer *w);

/* Parser callbacks (any may be NULL): a non-zero return stops the parse and is returned. The
 * name is NUL-terminated; pointers are valid only during the call. */
typedef struct kv_dump_cb {
	int (*tree)(void *arg, const char *name, size_t len);
	int (*pair)(void *arg, const void *k, size_t kl, const void *v, size_t vl);
	int (*end_tree)(void *arg, uint64_t pairs);
} kv_dump_cb;

typedef struct kv_dump_result {
	uint64_t line;       /* the line being read when the parse stopped (1-based) */
	uint64_t pairs, trees; /* complete sections read */
	unsigned version;
	char msg[256];       /* for KV_DUMP_EBAD: what is wrong */
} kv_dump_result;

/* Parse a whole dump from in: 0, KV_DUMP_EBAD (res->msg, res->line) or a callback's return
 * (res->line: the line it was called for). Never crashes on any input. */
int kv_dump_parse(FILE *in, const kv_dump_cb *cb, void *arg, kv_dump_result *res);

/* ---- ops.c ------------------------------------------------------------------------------ */

/* Dump the named trees (n == 0: every tree, in catalog order) of st from one read-only
 * snapshot to out. 0, PBOX_ENOTFOUND (a named tree is missing: nothing written), a pbox
 * error, or a negative errno for a write error; err gets a one-line message on failure.
 * *pairs / *trees (may be NULL) get the counts. Safe while other threads use the store. */
int kv_dump_store(pbox_store *st, char *const *names, size_t n, FILE *out, uint64_t *pairs,
		  uint64_t *trees, char *err, size_t errlen);
int kv_cmd_dump(const kv_opts *o, int argc, char **argv);
int kv_cmd_load(const kv_opts *o, int argc, char **argv);
int kv_cmd_create_tree(const kv_opts *o, int argc, char **argv);
int kv_cmd_drop_tree(const kv_opts *o, int argc, char **argv);
/* inspect_cmd.c */
int kv_cmd_inspect(const kv_opts *o, int argc, char **argv);

/* ---- backup_cmd.c ------------------------------------------------------------------------ */

/* Flush the log, then pbox_store_backup of st into dest (rate: bytes/s, 0 = no limit; show:
 * a progress line on a terminal's stderr). 0, or the error with a one-line msg. Safe while
 * other threads use the store. */
int kv_backup_now(pbox_store *st, const char *dest, uint64_t rate, bool show,
		  pbox_backup_info *info, char *msg, size_t cap);
int kv_cmd_backup(const kv_opts *o, int argc, char **argv);
int kv_cmd_compact(const kv_opts *o, int argc, char **argv);

#endif
