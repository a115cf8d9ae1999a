/*
 * pbox-bench — the engine comparison driver (bench/README.md: "pbox-bench";
 * conventions shared with the other benchmark programs: "Conventions"): the same
 * key-value workloads on pagebox and on its peers (LMDB, RocksDB, WiredTiger, SQLite,
 * LevelDB: engine.h, one adapter each), engines interleaved within each run (run 1: every
 * engine, run 2: every engine, ...) in an order shuffled per run (seeded by --seed + run,
 * printed), the Markdown table with medians, min–max, the ratio of medians to a baseline
 * engine (--baseline) and the per-run ratios' median and min–max, one CSV row per run, a
 * JSON file, SVG plots (gnuplot).
 *
 * Settle step (bench_engine_run.c): before every cell measured on the filled instance the
 * adapter's settle (pagebox checkpoint, RocksDB flush + no pending compaction, LevelDB
 * compact range, WiredTiger checkpoint, LMDB env sync, SQLite WAL checkpoint(TRUNCATE)) and,
 * for read cells, an equal untimed warm-up (--warmup pairs read); its time is reported
 * apart, never in a rate. --log-parity on (default) gives the peers that can have them
 * reused or zero-filled log files, as pagebox's WAL segments are.
 *
 * Data: keys are 8-byte big-endian integers, N of them, a random permutation of [0, N)
 * (a new permutation each run, the same for every engine within the run); values are
 * --value-size bytes: the key (8 bytes), a version (8 bytes, 0 after the fill), then a filler
 * byte. Every read checks that the value it got carries its key, every scan that it got the
 * consecutive keys it must (the key set is dense), so an adapter cannot measure nothing.
 *
 * Workloads (the names of bench/README.md; "threads" from --threads unless said otherwise):
 *   fill-random  N inserts in random order, 1000 per commit (adapter put_batch), 1 thread,
 *                into an empty instance. Latency columns: per batch of 1000 (with its commit).
 *   fill-seq     the same in ascending key order, into its own empty instance.
 *   lookup       uniform random existing keys, value copied out (every 16th op timed).
 *   scan100      seek to a uniform random key, read the next 100 pairs (fewer at the end of
 *                the key space: exactly min(100, N - start)); ops = scans.
 *   lookup-zipf  lookup with keys by Zipfian(0.99) rank mapped through the run's permutation
 *                (so hot keys are scattered over the key space); every 16th op timed.
 *   ycsb-a       50% reads / 50% updates (put of a new version of the value, its own commit
 *                in the run's commit mode), keys Zipfian(0.99) as in lookup-zipf.
 *   ycsb-b       95% reads / 5% updates; ycsb-c 100% reads; ycsb-f 50% reads / 50%
 *                read-modify-writes (get, then put of the next version; one op); Zipfian keys.
 *   ycsb-e       95% short scans (start key Zipfian, length uniform in 1..100) / 5% inserts of
 *                new keys. The new keys are N, N+1, ... (YCSB's "ordered" insert order: they
 *                go above the loaded keys); scans check the loaded keys exactly and that any
 *                new keys come in ascending order.
 *   commit       single-key durable commits per thread (uniform keys, updates), always
 *                durable whatever --durability says; thread counts from --commit-threads.
 *   snapshot-get lookup inside read-only snapshots (adapter snap_begin/snap_end), one
 *                snapshot per 100 gets; compared with lookup per run (pagebox's goal: at
 *                least 0.9x).
 *   snapshot-scan 2 threads: one scans 10 000 pairs from a uniform start, each scan in a
 *                snapshot of its own (ops = pairs scanned), while the other updates uniform
 *                keys, each put its own commit (its rate printed apart).
 *   txn-rw       transactions (adapter txn_rw) of 8 reads and 2 read-modify-writes of
 *                distinct uniform keys; ops = transactions; retries after conflicts printed
 *                apart (and in the JSON).
 *   txn-bulk     one transaction (adapter txn_bulk) of N puts: the fill as one transaction,
 *                into an empty instance; ops = keys.
 * The others run on the instance the fill-random built (or, when fill-random is not
 * measured, on one loaded the same way without timing), in the order lookup, snapshot-get,
 * lookup-zipf, scan100, ycsb-c, ycsb-b, ycsb-a, ycsb-f, snapshot-scan, commit, ycsb-e (last:
 * it adds keys). txn-bulk and txn-rw run on a third instance per engine and run, the
 * transaction instance (RocksDB: a TransactionDB; bench_engine_run.c). LevelDB has no
 * transactions: its txn-rw and txn-bulk are n/a (said after the table).
 *
 * Zipfian ranks: the rejection-free generator of Gray et al. (as YCSB uses), theta 0.99,
 * ranks scrambled over the key space by the run's random permutation.
 *
 * Threads: --pin compact|scatter|none pins every worker (pbox/topo.h) when it starts; the
 * topology is printed first. --numa-node N binds the memory of the whole process (every
 * engine alike) to node N with hwloc before any engine starts, where the machine has more
 * than one node; with one node it says so and binds nothing. Engines' own background
 * threads are not pinned.
 *
 * Out-of-memory runs: --budget below the data (N x (8 + value size) bytes). Engines that can
 * keep their reads out of the OS page cache (bounded_cache: pagebox, RocksDB with direct
 * reads, WiredTiger with direct I/O for data) are ranked; the others (LMDB, LevelDB, SQLite)
 * are printed in a separate table marked "not ranked". The driver prints each engine's data
 * size after the fill and says when the data is less than 4x the budget.
 *
 * Sanitizer builds: under ThreadSanitizer the engines whose adapter sets tsan_skip are left
 * out of the default engine list, with the reason printed (their uninstrumented internals
 * synchronise through atomics TSan cannot see); naming one in --engines runs it anyway.
 *
 * Files: this one (options, engine selection, topology/pinning/NUMA, the run loop with the
 * engines interleaved and their order shuffled per run, the summary on stdout);
 * bench_engine_run.c (the workers, one measurement, one engine in one run);
 * bench_engine_check.c (--check); bench_engine_output.c (CSV rows, printed tables, JSON,
 * plots); bench_engine.h (what they share, and who writes it).
 */
#define _GNU_SOURCE
#include "bench_engine.h"

#include <hwloc.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define PBE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PBE_TSAN 1
#endif
#endif
#ifndef PBE_TSAN
#define PBE_TSAN 0
#endif

/* ---- options ------------------------------------------------------------------------------ */

static uint64_t opt_keys, opt_value = 100, opt_numa = NO_NUMA;
static const char *opt_json, *opt_baseline, *opt_plot, *opt_commit_threads;
static const char *opt_log_parity = "on";
static pbox_bench_list opt_engines, opt_workloads;
/* shared with the other files (bench_engine.h) */
uint64_t pbe__opt_budget;
const char *pbe__opt_durability = "durable", *pbe__opt_lmdb_writemap = "auto";
const char *pbe__opt_pin = "none";
bool pbe__opt_check;
bool pbe__log_parity = true;
uint64_t pbe__opt_warmup = UINT64_MAX; /* not given: min(keys / 10, WARMUP_MAX) */
uint64_t pbe__opt_seed = 42;

static const pbox_bench_option extra[] = {
	{ "engines", PBOX_BENCH_OPT_LIST, &opt_engines, "LIST",
	  "engines to run, in this order (default: every engine built in; list below)" },
	{ "workloads", PBOX_BENCH_OPT_LIST, &opt_workloads, "LIST",
	  "fill-random,fill-seq,lookup,lookup-zipf,scan100,ycsb-a,ycsb-b,ycsb-c,ycsb-e,ycsb-f,commit,"
	  "snapshot-get,snapshot-scan,txn-rw,txn-bulk (default: all)" },
	{ "commit-threads", PBOX_BENCH_OPT_STRING, &opt_commit_threads, "LIST",
	  "thread counts of the commit workload (default " DEFAULT_COMMIT_THREADS ")" },
	{ "baseline", PBOX_BENCH_OPT_STRING, &opt_baseline, "ENGINE",
	  "engine the ratio column compares with (default lmdb; pagebox in out-of-memory runs)" },
	{ "pin", PBOX_BENCH_OPT_STRING, &pbe__opt_pin, "compact|scatter|none",
	  "pin worker threads to processing units with hwloc (default none)" },
	{ "numa-node", PBOX_BENCH_OPT_UINT, &opt_numa, "N",
	  "bind the process's memory (every engine's) to NUMA node N (machines with several)" },
	{ "plot", PBOX_BENCH_OPT_STRING, &opt_plot, "DIR",
	  "write SVG plots (gnuplot) and their data into DIR" },
	{ "keys", PBOX_BENCH_OPT_UINT, &opt_keys, "N", "keys (default 1000000; --quick 20000)" },
	{ "value-size", PBOX_BENCH_OPT_SIZE, &opt_value, "B", "value bytes, 16..65536 (default 100)" },
	{ "budget", PBOX_BENCH_OPT_SIZE, &pbe__opt_budget, "SIZE",
	  "cache budget (default: enough for all data; below the data: out-of-memory run)" },
	{ "durability", PBOX_BENCH_OPT_STRING, &pbe__opt_durability, "durable|fast",
	  "commit mode of fills and updates (default durable)" },
	{ "json", PBOX_BENCH_OPT_STRING, &opt_json, "FILE", "also write all runs as JSON" },
	{ "check", PBOX_BENCH_OPT_FLAG, &pbe__opt_check, NULL,
	  "after each fill, check the contents and compare engines (on with --quick)" },
	{ "seed", PBOX_BENCH_OPT_UINT, &pbe__opt_seed, "S",
	  "random seed (default 42): run r uses S + r for its keys and its shuffled engine order" },
	{ "warmup", PBOX_BENCH_OPT_UINT, &pbe__opt_warmup, "N",
	  "pairs read untimed before each read cell, after the settle step (N gets or N/100 "
	  "scans; default min(keys/10, 100000); 0: none)" },
	{ "log-parity", PBOX_BENCH_OPT_STRING, &opt_log_parity, "on|off",
	  "on (default): reused/zero-filled logs for the peers that offer them, like pagebox's "
	  "pre-zeroed WAL segments (RocksDB recycle_log_file_num 2, WiredTiger log zero_fill)" },
	{ "lmdb-writemap", PBOX_BENCH_OPT_STRING, &pbe__opt_lmdb_writemap, "auto|on|off",
	  "LMDB's MDB_WRITEMAP (auto: on with --durability fast, off with durable)" },
};

/* ---- workloads and engines ------------------------------------------------------------------ */

const char *const pbe__wname[W_COUNT] = { "fill-random", "fill-seq", "lookup", "lookup-zipf",
					  "scan100", "ycsb-a", "ycsb-b", "ycsb-c", "ycsb-e",
					  "ycsb-f", "commit", "snapshot-get", "snapshot-scan",
					  "txn-rw", "txn-bulk" };
bool pbe__want[W_COUNT];

const pbe_adapter *const pbe__adapters[PBE__NADAPTERS] = {
	&pbe_pagebox_adapter, &pbe_lmdb_adapter,
#ifdef PBE_HAVE_ROCKSDB
	&pbe_rocksdb_adapter,
#endif
#ifdef PBE_HAVE_WIREDTIGER
	&pbe_wiredtiger_adapter,
#endif
#ifdef PBE_HAVE_SQLITE
	&pbe_sqlite_adapter,
#endif
#ifdef PBE_HAVE_LEVELDB
	&pbe_leveldb_adapter,
#endif
};
const char *pbe__baseline;
unsigned pbe__commit_threads[PBOX_BENCH_MAX_THREADS];
size_t pbe__ncommit_threads;
pbox_topo *pbe__topo;
pbox_pin_policy pbe__pin_policy;
size_t pbe__sel[PBE__NADAPTERS], pbe__nsel;
size_t *pbe__order;
unsigned pbe__order_runs;
char pbe__open_msg[PBE__NADAPTERS][256];
char pbe__open_msg_txn[PBE__NADAPTERS][256];
uint64_t pbe__data_bytes[PBE__NADAPTERS];
bool pbe__data_settled[PBE__NADAPTERS];
bool pbe__oom_run;

/* ---- topology, pinning, NUMA ---------------------------------------------------------- */

/* Print the topology; set up pinning and the NUMA binding. Returns 0 or 2 (usage). */
static int setup_topology(void)
{
	if (pbox_pin_policy_parse(pbe__opt_pin, &pbe__pin_policy)) {
		fprintf(stderr, "%s: --pin must be compact, scatter or none\n", PROG);
		return 2;
	}
	int r = pbox_topo_open(&pbe__topo);
	if (r) {
		pbe__topo = NULL;
		printf("Topology: not available (hwloc: %d)%s\n", r,
		       pbe__pin_policy != PBOX_PIN_NONE ? "; threads not pinned" : "");
		pbe__pin_policy = PBOX_PIN_NONE;
		if (opt_numa != NO_NUMA) {
			fprintf(stderr, "%s: --numa-node needs the topology\n", PROG);
			return 2;
		}
		return 0;
	}
	char d[256];
	pbox_topo_describe(pbe__topo, d, sizeof(d));
	printf("Topology: %s; threads %s\n", d,
	       pbe__pin_policy == PBOX_PIN_COMPACT
		       ? "pinned compact (thread i on PU i, logical order)"
	       : pbe__pin_policy == PBOX_PIN_SCATTER
		       ? "pinned scatter (spread over nodes, sockets, cores)"
		       : "not pinned");
	if (opt_numa == NO_NUMA)
		return 0;
	unsigned nodes = pbox_topo_numa_nodes(pbe__topo);
	if (nodes <= 1) {
		printf("NUMA: this machine has one NUMA node; --numa-node %" PRIu64 " binds nothing.\n",
		       opt_numa);
		if (opt_numa != 0) {
			fprintf(stderr, "%s: --numa-node %" PRIu64 ": the only node is 0\n", PROG, opt_numa);
			return 2;
		}
		return 0;
	}
	if (opt_numa >= nodes) {
		fprintf(stderr, "%s: --numa-node %" PRIu64 ": the machine has nodes 0..%u\n", PROG,
			opt_numa, nodes - 1);
		return 2;
	}
	/* Bind the main thread's memory policy before any engine or worker thread exists: Linux
	 * threads inherit it, so every engine's memory (pagebox's pool included) comes from the
	 * node. */
	hwloc_topology_t ht;
	int ok = hwloc_topology_init(&ht) == 0;
	if (ok && hwloc_topology_load(ht) != 0) {
		hwloc_topology_destroy(ht);
		ok = 0;
	}
	hwloc_obj_t node = ok ? hwloc_get_obj_by_type(ht, HWLOC_OBJ_NUMANODE, (unsigned)opt_numa)
			      : NULL;
	if (!node || hwloc_set_membind(ht, node->nodeset, HWLOC_MEMBIND_BIND,
				       HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
		fprintf(stderr, "%s: --numa-node %" PRIu64 ": binding memory failed: %s\n", PROG,
			opt_numa, strerror(errno));
		if (ok)
			hwloc_topology_destroy(ht);
		return 2;
	}
	hwloc_topology_destroy(ht);
	printf("NUMA: %u nodes; the memory of every engine is bound to node %" PRIu64 ".\n", nodes,
	       opt_numa);
	return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void fmt_mib(char *b, size_t n, uint64_t bytes)
{
	snprintf(b, n, "%.1f MiB", (double)bytes / 1048576.0);
}

/* "0.012 s (0.010–0.015)" or "-" */
static void fmt_secs(char *b, size_t n, const pbe__dvec *d)
{
	if (!d->n) {
		snprintf(b, n, "-");
		return;
	}
	pbox_bench_summary s = pbox_bench_summarize(d->v, d->n);
	if (d->n == 1)
		snprintf(b, n, "%.3f s", s.median);
	else
		snprintf(b, n, "median %.3f s (%.3f–%.3f)", s.median, s.min, s.max);
}

/* The run protocol: engine order per run, log parity, the settle step per engine. */
static void print_protocol(void)
{
	printf("Engine order (shuffled per run, seed %" PRIu64 " + run):", pbe__opt_seed);
	for (unsigned r = 1; r <= pbe__order_runs; r++) {
		printf("%s run %u (seed %" PRIu64 "):", r > 1 ? ";" : "", r, pbe__opt_seed + r);
		for (size_t i = 0; i < pbe__nsel; i++)
			printf("%s %s", i ? "," : "",
			       pbe__adapters[pbe__order[(size_t)(r - 1) * pbe__nsel + i]]->name);
	}
	printf(".\n");
	printf("Log parity %s: %s.\n", pbe__log_parity ? "on" : "off",
	       pbe__log_parity
		       ? "rocksdb recycle_log_file_num 2, wiredtiger log zero_fill (plus its default "
			 "prealloc); pagebox's WAL segments are always pre-zeroed and 2 spares "
			 "reused; lmdb (no log), sqlite (WAL file reused by default), leveldb "
			 "(reuse_logs not in its C API): nothing to set"
		       : "rocksdb recycle_log_file_num 0, wiredtiger zero_fill off (their defaults); "
			 "pagebox's WAL segments are pre-zeroed regardless");
	bool any = false;
	for (size_t i = 0; i < pbe__nsel; i++)
		any |= pbe__settle[pbe__sel[i]].first.n > 0;
	if (!any) {
		printf("\n");
		return;
	}
	printf("Settle step before every cell on the filled instance (untimed, in no rate), "
	       "then before read cells a warm-up of %" PRIu64 " pairs read on one thread:\n",
	       pbe__opt_warmup);
	for (size_t i = 0; i < pbe__nsel; i++) {
		size_t a = pbe__sel[i];
		const pbe__settle_stats *st = &pbe__settle[a];
		if (!st->first.n)
			continue;
		char f[64], l[64], w[64];
		fmt_secs(f, sizeof(f), &st->first);
		fmt_secs(l, sizeof(l), &st->later);
		fmt_secs(w, sizeof(w), &st->warmup);
		printf("- settle %s (%s): after the fill %s; before later cells %s; warm-up %s",
		       pbe__adapters[a]->name, pbe__adapters[a]->settle_how, f, l, w);
		if (st->incomplete)
			printf("; INCOMPLETE %u time(s): %s", st->incomplete, st->note);
		printf("\n");
	}
	printf("\n");
}

static int find_adapter(const char *name)
{
	for (size_t a = 0; a < PBE__NADAPTERS; a++)
		if (!strcmp(name, pbe__adapters[a]->name))
			return (int)a;
	return -1;
}

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, PROG,
			       "engine comparison: pagebox against LMDB, RocksDB, WiredTiger, SQLite "
			       "and LevelDB",
			       2.0, "1,2");
	cfg.extra = extra;
	cfg.nextra = sizeof(extra) / sizeof(extra[0]);
	char usage[8192], names[256] = "";
	for (size_t a = 0; a < PBE__NADAPTERS; a++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 a ? ", " : "", pbe__adapters[a]->name);
	snprintf(usage, sizeof(usage),
		 "Engines built in: %s.\n"
		 "Workloads: fill-random, fill-seq (N inserts in batches of 1000, one thread), lookup,\n"
		 "lookup-zipf, scan100, ycsb-a (50%% reads/50%% updates), ycsb-b (95/5), ycsb-c (reads),\n"
		 "ycsb-e (95%% scans of 1..100 / 5%% inserts), ycsb-f (50%% reads/50%% read-modify-write)\n"
		 "(each --seconds per thread count of --threads), commit (single-key durable commits,\n"
		 "per thread count of --commit-threads), snapshot-get (lookups, 100 per read-only\n"
		 "snapshot), snapshot-scan (1 thread scanning 10000 pairs per snapshot, 1 thread\n"
		 "updating), txn-rw (transactions of 8 reads + 2 read-modify-writes, retried on\n"
		 "conflicts), txn-bulk (the fill as one transaction). YCSB and lookup-zipf keys:\n"
		 "Zipfian 0.99; the others uniform. LevelDB: no transactions (txn-* n/a).\n"
		 "Keys: 8-byte big-endian integers, a random permutation of [0, N).\n"
		 "Fill batches: one atomic write transaction, write batch or pbox_bt_batch of 1000\n"
		 "in every engine. The table's note column says what each engine's is.\n"
		 "Runs: every engine once per run, in an order shuffled per run (seed --seed + run,\n"
		 "printed); the table gives the ratio of medians to the baseline and the median and\n"
		 "min-max of the per-run ratios.\n"
		 "Settle step, before every cell on the filled instance (untimed, reported apart):\n"
		 "pagebox checkpoint, RocksDB flush + wait for no pending flush/compaction, LevelDB\n"
		 "compact range, WiredTiger checkpoint, LMDB env sync, SQLite wal_checkpoint(TRUNCATE);\n"
		 "then, before read cells, the warm-up (--warmup). LMDB reads share one read txn\n"
		 "per 100 reads (reset before the thread's own writes).\n"
		 "--budget below the data makes an out-of-memory run: engines that read through the OS\n"
		 "page cache (lmdb, sqlite, leveldb) are then reported apart, not ranked.\n"
		 "Output: a Markdown table on stdout; --csv, --json, --plot (bench/README.md).\n"
		 "Publishing figures: at least --runs 5 and --check (bench/README.md).\n"
		 "Engine settings: bench/README.md.\n", names);
	cfg.usage_extra = usage;
	int pr = pbox_bench_parse_args(&cfg, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;
	if (cfg.quick)
		pbe__opt_check = true;
	if (!opt_keys)
		opt_keys = cfg.quick ? QUICK_KEYS : DEFAULT_KEYS;
	if (opt_keys > UINT32_MAX) {
		fprintf(stderr, "%s: --keys must be 1..%u\n", PROG, UINT32_MAX);
		return 2;
	}
	if (opt_value < 16 || opt_value > MAX_VALUE) {
		fprintf(stderr, "%s: --value-size must be 16..%u\n", PROG, MAX_VALUE);
		return 2;
	}
	if (strcmp(pbe__opt_durability, "durable") != 0 &&
	    strcmp(pbe__opt_durability, "fast") != 0) {
		fprintf(stderr, "%s: --durability must be durable or fast\n", PROG);
		return 2;
	}
	if (strcmp(opt_log_parity, "on") && strcmp(opt_log_parity, "off")) {
		fprintf(stderr, "%s: --log-parity must be on or off\n", PROG);
		return 2;
	}
	pbe__log_parity = strcmp(opt_log_parity, "on") == 0;
	if (pbe__opt_warmup == UINT64_MAX)
		pbe__opt_warmup = opt_keys / 10 < WARMUP_MAX ? opt_keys / 10 : WARMUP_MAX;
	if (strcmp(pbe__opt_lmdb_writemap, "auto") && strcmp(pbe__opt_lmdb_writemap, "on") &&
	    strcmp(pbe__opt_lmdb_writemap, "off")) {
		fprintf(stderr, "%s: --lmdb-writemap must be auto, on or off\n", PROG);
		return 2;
	}
	if (pbox_bench_parse_threads(
		    opt_commit_threads ? opt_commit_threads : DEFAULT_COMMIT_THREADS,
		    pbe__commit_threads, PBOX_BENCH_MAX_THREADS, &pbe__ncommit_threads)) {
		fprintf(stderr, "%s: --commit-threads: a list of thread counts, e.g. 1,2,4\n", PROG);
		return 2;
	}
	for (size_t i = 0; i < cfg.nthreads + pbe__ncommit_threads; i++) {
		unsigned t =
			i < cfg.nthreads ? cfg.threads[i] : pbe__commit_threads[i - cfg.nthreads];
		if (t > PBOX_BENCH_MAX_THREADS) {
			fprintf(stderr, "%s: at most %u threads\n", PROG, PBOX_BENCH_MAX_THREADS);
			return 2;
		}
	}
	for (size_t i = 0; i < opt_engines.n; i++) {
		int a = find_adapter(opt_engines.item[i]);
		if (a < 0) {
			fprintf(stderr, "%s: unknown engine '%s' (this build has %s)\n", PROG,
				opt_engines.item[i], names);
			return 2;
		}
		bool dup = false;
		for (size_t k = 0; k < pbe__nsel; k++)
			dup |= pbe__sel[k] == (size_t)a;
		if (!dup)
			pbe__sel[pbe__nsel++] = (size_t)a;
	}
	if (!opt_engines.n) {
		for (size_t a = 0; a < PBE__NADAPTERS; a++) {
			if (PBE_TSAN && pbe__adapters[a]->tsan_skip) {
				printf("Skipping %s in this ThreadSanitizer build: %s (name it in "
				       "--engines "
				       "to run it anyway).\n",
				       pbe__adapters[a]->name, pbe__adapters[a]->tsan_skip);
				continue;
			}
			pbe__sel[pbe__nsel++] = a;
		}
	}
	if (!opt_workloads.n) {
		for (int w = 0; w < W_COUNT; w++)
			pbe__want[w] = true;
	} else {
		for (size_t i = 0; i < opt_workloads.n; i++) {
			int w = -1;
			for (int k = 0; k < W_COUNT; k++)
				if (!strcmp(opt_workloads.item[i], pbe__wname[k]))
					w = k;
			if (w < 0) {
				fprintf(stderr, "%s: unknown workload '%s' (see --help)\n", PROG,
					opt_workloads.item[i]);
				return 2;
			}
			pbe__want[w] = true;
		}
	}
	pbe__run.n = opt_keys;
	pbe__run.vsize = (uint32_t)opt_value;
	pbe__oom_run =
		pbe__opt_budget && pbe__opt_budget < pbe__run.n * (KEY_SIZE + pbe__run.vsize);
	/* the baseline: --baseline, else lmdb (in memory) or pagebox (out of memory, where
	 * lmdb is not ranked); no ratio column when it is not among the engines run */
	const char *bl = opt_baseline ? opt_baseline : pbe__oom_run ? "pagebox" : "lmdb";
	int bla = find_adapter(bl);
	if (opt_baseline && bla < 0) {
		fprintf(stderr, "%s: --baseline: unknown engine '%s'\n", PROG, opt_baseline);
		return 2;
	}
	for (size_t i = 0; i < pbe__nsel && bla >= 0; i++)
		if (pbe__sel[i] == (size_t)bla)
			pbe__baseline = bl;
	if (pbe__baseline && pbe__oom_run && !pbe__adapters[bla]->bounded_cache) {
		fprintf(stderr, "%s: --baseline %s: not ranked in an out-of-memory run (it reads "
				"through the OS page cache); no ratio column\n", PROG, bl);
		pbe__baseline = NULL;
	}
	if (pbox_bench_report_create(&pbe__rep.csv, PROG, cfg.csv, NULL) ||
	    pbox_bench_report_create(&pbe__rep.ranked, PROG, NULL, pbe__baseline) ||
	    pbox_bench_report_create(&pbe__rep.unranked, PROG, NULL, NULL))
		return 2;
	int tr = setup_topology();
	if (tr)
		return tr;
	fflush(stdout);
	pbe__run.perm = malloc(pbe__run.n * sizeof(*pbe__run.perm));
	if (!pbe__run.perm) {
		fprintf(stderr, "%s: out of memory for %" PRIu64 " keys\n", PROG, pbe__run.n);
		return 1;
	}
	if (pbe__want[W_LOOKUP_ZIPF] || pbe__want[W_YCSB_A] || pbe__want[W_YCSB_B] ||
	    pbe__want[W_YCSB_C] || pbe__want[W_YCSB_E] || pbe__want[W_YCSB_F])
		pbe__zipf_init(&pbe__run.z, pbe__run.n, ZIPF_THETA);

	char date[32];
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M", localtime(&now));

	pbe__order = malloc((size_t)cfg.runs * pbe__nsel * sizeof(*pbe__order));
	if (!pbe__order) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		return 1;
	}
	int status = 0;
	digests ref; /* the first engine's, per run */
	for (unsigned run = 1; run <= cfg.runs && !status; run++) {
		pbe__run.seed = pbe__opt_seed + run;
		pbe__make_perm(pbe__run.seed);
		digests *rf = &ref;
		memset(rf, 0, sizeof(*rf));
		/* engines interleaved, in an order shuffled per run (Fisher-Yates, seeded by the
		 * run's seed): no engine always runs first on a cold machine, or last after the
		 * others' write-back */
		size_t *ord = pbe__order + (size_t)(run - 1) * pbe__nsel;
		memcpy(ord, pbe__sel, pbe__nsel * sizeof(*ord));
		uint64_t os = rnd_seed(pbe__run.seed, 0x0de7, 0);
		for (size_t i = pbe__nsel; i > 1; i--) {
			size_t j = (size_t)rnd_below(&os, i), t = ord[i - 1];
			ord[i - 1] = ord[j];
			ord[j] = t;
		}
		/* balanced first slot: over n runs every engine goes first once (the first slot
		 * is the cold one), in an order drawn once from --seed; the rest stay shuffled */
		size_t first = pbe__sel[0];
		{
			size_t base[64];
			size_t nb = pbe__nsel < 64 ? pbe__nsel : 64;
			memcpy(base, pbe__sel, nb * sizeof(*base));
			uint64_t bs = rnd_seed(pbe__opt_seed, 0xba5e, 0);
			for (size_t i = nb; i > 1; i--) {
				size_t j = (size_t)rnd_below(&bs, i), t = base[i - 1];
				base[i - 1] = base[j];
				base[j] = t;
			}
			first = base[(run - 1) % nb];
		}
		for (size_t i = 0; i < pbe__nsel; i++)
			if (ord[i] == first) {
				ord[i] = ord[0];
				ord[0] = first;
				break;
			}
		pbe__order_runs = run;
		for (size_t i = 0; i < pbe__nsel && !status; i++) {
			pbe__run.order_pos = (unsigned)i + 1;
			if (pbe__engine_run(&cfg, ord[i], run, rf))
				status = 1;
		}
	}
	pbox_bench_progress_done();

	printf("\npbox-bench %s: keys %" PRIu64
	       ", value size %u, durability %s, log parity %s, %u run(s), %g s per "
	       "timed cell%s; engine order shuffled per run; ratios against %s\n\n",
	       date, pbe__run.n, pbe__run.vsize, pbe__opt_durability,
	       pbe__log_parity ? "on" : "off", cfg.runs, cfg.seconds,
	       pbe__opt_check ? ", contents checked" : "",
	       pbe__baseline ? pbe__baseline : "no engine (the baseline was not run)");
	print_protocol();
	for (size_t i = 0; i < pbe__nsel; i++) {
		size_t a = pbe__sel[i];
		char db[32];
		fmt_mib(db, sizeof(db), pbe__data_bytes[a]);
		if (!pbe__open_msg[a][0]) { /* only the transaction instance ran */
			printf("- %s %s: transaction instance: %s\n", pbe__adapters[a]->name,
			       pbe__adapters[a]->version,
			       pbe__open_msg_txn[a][0] ? pbe__open_msg_txn[a] : "not opened");
			continue;
		}
		printf("- %s %s: %s; data after the fill%s: %s", pbe__adapters[a]->name,
		       pbe__adapters[a]->version, pbe__open_msg[a],
		       pbe__data_settled[a] ? " and its settle" : "", db);
		if (pbe__oom_run && pbe__data_bytes[a])
			printf(" (%.1fx the budget)",
			       (double)pbe__data_bytes[a] / (double)pbe__opt_budget);
		size_t ml = strlen(pbe__open_msg[a]);
		if (pbe__open_msg_txn[a][0] && strcmp(pbe__open_msg_txn[a], pbe__open_msg[a])) {
			if (!strncmp(pbe__open_msg_txn[a], pbe__open_msg[a], ml))
				printf("; transaction instance: the same, plus \"%s\"",
				       pbe__open_msg_txn[a] + ml);
			else
				printf("; transaction instance: %s", pbe__open_msg_txn[a]);
		}
		printf("\n");
	}
	printf("\n");
	if (pbe__oom_run) {
		char b[32];
		fmt_mib(b, sizeof(b), pbe__opt_budget);
		printf("Out-of-memory run: budget %s. Ranked: engines that keep their data within it.\n\n", b);
		for (size_t i = 0; i < pbe__nsel; i++) {
			size_t a = pbe__sel[i];
			if (pbe__adapters[a]->bounded_cache && pbe__data_bytes[a] &&
			    pbe__data_bytes[a] < 4 * pbe__opt_budget)
				printf("Note: %s's data is only %.1fx the budget (bench/README.md "
				       "asks for >= 4x).\n\n",
				       pbe__adapters[a]->name,
				       (double)pbe__data_bytes[a] / (double)pbe__opt_budget);
		}
	}
	if (pbe__fill_print_reports())
		status = 1;
	pbox_bench_report_print(pbe__rep.ranked, stdout);
	if (pbe__oom_run) {
		bool any = false;
		for (size_t i = 0; i < pbe__nsel; i++)
			any |= !pbe__adapters[pbe__sel[i]]->bounded_cache;
		if (any) {
			printf("\nNot ranked — uses the OS page cache, not bounded by --budget:\n\n");
			pbox_bench_report_print(pbe__rep.unranked, stdout);
		}
	}
	if (pbe__want[W_FILL_RANDOM] || pbe__want[W_FILL_SEQ])
		printf("\nfill-*: ops = keys inserted, latency = one batch of %u inserts with its "
		       "commit; the note column says what the engine's atomic batch is.", BATCH);
	if (pbe__want[W_TXN_BULK])
		printf("\ntxn-bulk: ops = keys put in one transaction (ops/s = keys / time to "
		       "commit), into an empty instance; latency = that transaction.");
	if (pbe__want[W_TXN_RW])
		printf("\ntxn-rw: ops = transactions of %u reads + %u read-modify-writes (uniform "
		       "keys); latency = one transaction with its retries.", TXN_READS, TXN_WRITES);
	if (pbe__want[W_SNAPSHOT_GET])
		printf("\nsnapshot-get: ops = gets, %u per read-only snapshot (its begin and end "
		       "counted); latency sampled on one get in %u.", SNAP_GETS,
		       LOOKUP_SAMPLE_MASK + 1);
	if (pbe__want[W_SNAPSHOT_SCAN])
		printf("\nsnapshot-scan: ops = pairs scanned by 1 thread, %u per snapshot, while 1 "
		       "writer thread updates; latency = one scan with its snapshot; CPU per pair "
		       "includes the writer's.", SNAP_SCAN_LEN);
	if (pbe__want[W_SCAN100])
		printf("\nscan100: ops = scans of %u pairs.", SCAN_LEN);
	if (pbe__want[W_YCSB_E])
		printf("\nycsb-e: ops = scans of 1..%u pairs and inserts.", YCSB_E_MAX_SCAN);
	if (pbe__want[W_YCSB_F])
		printf("\nycsb-f: a read-modify-write (get, then put) is one op.");
	if (pbe__want[W_LOOKUP] || pbe__want[W_LOOKUP_ZIPF])
		printf("\nlookup, lookup-zipf: latency sampled on one operation in %u.",
		       LOOKUP_SAMPLE_MASK + 1);
	printf("\n");
	pbe__print_txn_summary();
	if (opt_json && pbe__write_json(opt_json, &cfg, date))
		status = 1;
	if (opt_plot && !status && pbe__write_plots(opt_plot, &cfg))
		status = 1;
	pbox_bench_report_destroy(pbe__rep.csv);
	pbox_bench_report_destroy(pbe__rep.ranked);
	pbox_bench_report_destroy(pbe__rep.unranked);
	pbe__output_fini();
	for (size_t a = 0; a < PBE__NADAPTERS; a++) {
		free(pbe__settle[a].first.v);
		free(pbe__settle[a].later.v);
		free(pbe__settle[a].warmup.v);
	}
	free(pbe__order);
	free(pbe__run.perm);
	if (pbe__topo)
		pbox_topo_close(pbe__topo);
	pbox_bench_config_fini(&cfg);
	return status;
}
