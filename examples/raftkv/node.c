/*
 * node.c — `raftkv node`: one server process. It opens the node's pagebox store (fsm.c),
 * starts canonical raft on it (raft_uv: the node's raft directory and TCP on its address),
 * bootstraps the initial configuration the first time, serves the line protocol on the
 * node's unix socket (server.c) and runs the libuv loop until SIGTERM/SIGINT, then closes
 * raft, the socket and the store cleanly. `--standalone`: the same protocol and store without
 * raft (the benchmarks' denominator): writes commit durably on libuv's thread pool, so
 * concurrent clients share log syncs (group commit).
 *
 * Invariants: the store is opened before raft starts (raft's start-up restore and replay
 * apply to it) and closed after raft's close callback (no apply after it). One process per
 * node directory: the store's lock refuses a second (after 10 s of waiting: a killed
 * predecessor releases it only when its last thread has exited). A pid file is written once serving and
 * removed at a clean exit.
 * Threads: the loop thread; fsm.c's snapshot work on the thread pool.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "node.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: raftkv node --dir DIR --id ID --address 127.0.0.1:PORT [options]\n"
	"       raftkv node --dir DIR --standalone [options]\n"
	"  --bootstrap FILE       first start only: the initial configuration, one `ID ADDRESS`\n"
	"                         line per voter (raftkv cluster start writes it)\n"
	"  --standalone           no raft: the same protocol on one store, durable commits\n"
	"  --budget SIZE          the store's resident page memory (default 64M)\n"
	"  --election-timeout MS  raft's election timeout (default 1000; heartbeat: a tenth)\n"
	"  --snapshot-every N     take a snapshot every N entries (default 65536)\n"
	"  --snapshot-trailing N  entries kept in raft's log behind a snapshot (default 8192)\n"
	"  --max-snapshot SIZE    refuse snapshots larger than this (default 1G)\n";

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void raft_closed(struct raft *r)
{
	rkv_node *n = r->data;
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	n->io_inited = n->transport_inited = false;
	uv_walk(&n->loop, walk_close, NULL);
}

static void node_stop(rkv_node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	rkv_server_stop(n);
	uv_signal_stop(&n->sig_term);
	uv_signal_stop(&n->sig_int);
	if (n->raft_inited)
		raft_close(&n->raft, raft_closed);
	else
		uv_walk(&n->loop, walk_close, NULL);
}

static void on_signal(uv_signal_t *s, int sig)
{
	(void)sig;
	node_stop(s->data);
}

/* The `ID ADDRESS` lines of a bootstrap file into a configuration. */
static int read_bootstrap(const char *path, struct raft_configuration *conf, char *err,
			  size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[256];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		unsigned long long id;
		char addr[128];
		if (sscanf(line, "%llu %127s", &id, addr) != 2 || id == 0) {
			snprintf(err, errlen, "%s:%u: expected `ID ADDRESS`", path, lineno);
			rc = -1;
			break;
		}
		int r = raft_configuration_add(conf, id, addr, RAFT_VOTER);
		if (r) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, raft_strerror(r));
			rc = -1;
			break;
		}
	}
	fclose(f);
	if (!rc && conf->n == 0) {
		snprintf(err, errlen, "%s: no servers", path);
		rc = -1;
	}
	return rc;
}

static int write_pid(rkv_node *n)
{
	char p[PATH_MAX + 8], tmp[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/pid", n->dir);
	snprintf(tmp, sizeof(tmp), "%s/pid.tmp", n->dir);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) || rename(tmp, p))
		return -1;
	return 0;
}

static int start_raft(rkv_node *n, const char *bootstrap, unsigned election_ms,
		      unsigned snap_every, unsigned snap_trailing, char *err, size_t errlen)
{
	char raft_dir[PATH_MAX + 8];
	snprintf(raft_dir, sizeof(raft_dir), "%s/%s", n->dir, RKV_RAFT_DIR);
	if (mkdir(raft_dir, 0755) && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %.400s: %s", raft_dir, strerror(errno));
		return -1;
	}
	int rc = raft_uv_tcp_init(&n->transport, &n->loop);
	if (rc) {
		snprintf(err, errlen, "raft transport: %s", raft_strerror(rc));
		return -1;
	}
	n->transport_inited = true;
	rc = raft_uv_init(&n->io, &n->loop, raft_dir, &n->transport);
	if (rc) {
		snprintf(err, errlen, "raft I/O in %.400s: %s", raft_dir, raft_strerror(rc));
		return -1;
	}
	n->io_inited = true;
	rkv_fsm_init(n);
	rc = raft_init(&n->raft, &n->io, &n->fsm, n->id, n->address);
	if (rc) {
		snprintf(err, errlen, "raft init: %s", raft_errmsg(&n->raft));
		return -1;
	}
	n->raft_inited = true;
	n->raft.data = n;
	raft_set_election_timeout(&n->raft, election_ms);
	raft_set_heartbeat_timeout(&n->raft, election_ms / 10 ? election_ms / 10 : 1);
	raft_set_snapshot_threshold(&n->raft, snap_every);
	raft_set_snapshot_trailing(&n->raft, snap_trailing);
	raft_set_pre_vote(&n->raft, true); /* a node back from a pause does not depose a leader */
	if (bootstrap) {
		struct raft_configuration conf;
		raft_configuration_init(&conf);
		if (read_bootstrap(bootstrap, &conf, err, errlen)) {
			raft_configuration_close(&conf);
			return -1;
		}
		rc = raft_bootstrap(&n->raft, &conf);
		raft_configuration_close(&conf);
		if (rc && rc != RAFT_CANTBOOTSTRAP) { /* CANTBOOTSTRAP: not the first start */
			snprintf(err, errlen, "raft bootstrap: %s", raft_errmsg(&n->raft));
			return -1;
		}
	}
	rc = raft_start(&n->raft);
	if (rc) {
		snprintf(err, errlen, "raft start: %s", raft_errmsg(&n->raft));
		return -1;
	}
	return 0;
}

static int parse_uint(const char *what, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;
	if (kv_parse_u64(s, &v) || v < lo || v > hi) {
		fprintf(stderr, "raftkv node: %s must be a number in %u..%u\n", what, lo, hi);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int rkv_cmd_node(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dir", required_argument, 0, 'd'},
		{"id", required_argument, 0, 'i'},
		{"address", required_argument, 0, 'a'},
		{"bootstrap", required_argument, 0, 'b'},
		{"standalone", no_argument, 0, 's'},
		{"budget", required_argument, 0, 'B'},
		{"election-timeout", required_argument, 0, 'e'},
		{"snapshot-every", required_argument, 0, 'S'},
		{"snapshot-trailing", required_argument, 0, 'T'},
		{"max-snapshot", required_argument, 0, 'M'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	static rkv_node node;
	rkv_node *n = &node;
	memset(n, 0, sizeof(*n));
	const char *dir = NULL, *bootstrap = NULL;
	unsigned election_ms = 1000, snap_every = 65536, snap_trailing = 8192;
	n->budget = 64ull << 20;
	n->max_snapshot = 1ull << 30;
	optind = 1;
	int o;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'd': dir = optarg; break;
		case 'i':
			if (parse_uint("--id", optarg, 1, 1000000, &n->id))
				return RKV_EXIT_USAGE;
			break;
		case 'a':
			if (strlen(optarg) >= sizeof(n->address)) {
				fprintf(stderr, "raftkv node: --address is too long\n");
				return RKV_EXIT_USAGE;
			}
			strcpy(n->address, optarg);
			break;
		case 'b': bootstrap = optarg; break;
		case 's': n->standalone = true; break;
		case 'B':
			if (kv_parse_size(optarg, &n->budget)) {
				fprintf(stderr, "raftkv node: bad --budget %s\n", optarg);
				return RKV_EXIT_USAGE;
			}
			break;
		case 'e':
			if (parse_uint("--election-timeout", optarg, 50, 600000, &election_ms))
				return RKV_EXIT_USAGE;
			break;
		case 'S':
			if (parse_uint("--snapshot-every", optarg, 2, 100000000, &snap_every))
				return RKV_EXIT_USAGE;
			break;
		case 'T':
			if (parse_uint("--snapshot-trailing", optarg, 0, 100000000, &snap_trailing))
				return RKV_EXIT_USAGE;
			break;
		case 'M':
			if (kv_parse_size(optarg, &n->max_snapshot)) {
				fprintf(stderr, "raftkv node: bad --max-snapshot %s\n", optarg);
				return RKV_EXIT_USAGE;
			}
			break;
		case 'h': fputs(usage_text, stdout); return RKV_EXIT_OK;
		default: fputs(usage_text, stderr); return RKV_EXIT_USAGE;
		}
	}
	if (optind != argc || !dir || (!n->standalone && (!n->id || !n->address[0]))) {
		fprintf(stderr, "raftkv node: %s\n%s",
			optind != argc ? "unexpected arguments" : "--dir, and --id and --address "
			"(or --standalone), are required", usage_text);
		return RKV_EXIT_USAGE;
	}
	if (n->standalone && bootstrap) {
		fprintf(stderr, "raftkv node: --bootstrap makes no sense with --standalone\n");
		return RKV_EXIT_USAGE;
	}
	if (strlen(dir) >= sizeof(n->dir) - 32) {
		fprintf(stderr, "raftkv node: --dir is too long\n");
		return RKV_EXIT_USAGE;
	}
	strcpy(n->dir, dir);
	snprintf(n->store_dir, sizeof(n->store_dir), "%s/%s", dir, RKV_STORE_DIR);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "raftkv node: mkdir %s: %s\n", dir, strerror(errno));
		return RKV_EXIT_FAIL;
	}
	char err[512] = "";
	int rc = 0;
	if (uv_loop_init(&n->loop)) {
		fprintf(stderr, "raftkv node: uv_loop_init failed\n");
		return RKV_EXIT_FAIL;
	}
	if (rkv_store_leftovers(n)) {
		fprintf(stderr, "raftkv node: remove leftovers in %s: %s\n", dir, strerror(errno));
		return RKV_EXIT_FAIL;
	}
	/* A previous run of this node killed a moment ago may still hold the store's lock: its
	 * threads leave one by one (the last one, in an fsync, closes the lock), so wait for it
	 * a while before calling the store taken. */
	for (unsigned waited = 0;; waited++) {
		rc = rkv_store_open(n, n->store_dir, err, sizeof(err));
		if (rc != PBOX_ELOCKED || waited == 100)
			break;
		if (waited == 0)
			fprintf(stderr, "raftkv node: %s; waiting up to 10 s\n", err);
		usleep(100 * 1000);
	}
	if (rc) {
		fprintf(stderr, "raftkv node: %s\n", err);
		return RKV_EXIT_FAIL;
	}
	uv_signal_init(&n->loop, &n->sig_term);
	uv_signal_init(&n->loop, &n->sig_int);
	n->sig_term.data = n->sig_int.data = n;
	uv_signal_start(&n->sig_term, on_signal, SIGTERM);
	uv_signal_start(&n->sig_int, on_signal, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	if (!n->standalone &&
	    start_raft(n, bootstrap, election_ms, snap_every, snap_trailing, err, sizeof(err)))
		rc = -1;
	if (!rc && rkv_server_start(n, err, sizeof(err)))
		rc = -1;
	if (!rc && write_pid(n)) {
		snprintf(err, sizeof(err), "write %s/pid: %s", dir, strerror(errno));
		rc = -1;
	}
	if (rc) {
		fprintf(stderr, "raftkv node: %s\n", err);
		node_stop(n);
	} else {
		fprintf(stderr, "raftkv: node %u serving on %s (%s), store at entry %llu\n", n->id,
			n->sock_path, n->standalone ? "standalone" : n->address,
			(unsigned long long)n->applied);
	}
	uv_run(&n->loop, UV_RUN_DEFAULT);
	if (n->io_inited)
		raft_uv_close(&n->io);
	if (n->transport_inited)
		raft_uv_tcp_close(&n->transport);
	(void)uv_loop_close(&n->loop);
	rkv_store_close(n);
	if (!rc) {
		char p[PATH_MAX + 8];
		snprintf(p, sizeof(p), "%s/pid", dir);
		(void)unlink(p);
		fprintf(stderr, "raftkv: node %u stopped\n", n->id);
	}
	return rc ? RKV_EXIT_FAIL : RKV_EXIT_OK;
}
