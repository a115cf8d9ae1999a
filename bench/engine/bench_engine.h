/*
 * bench_engine.h — private to pbox-bench (the engine comparison driver): what the driver's
 * source files share. Not an adapter interface (that is engine.h) and not installed.
 *
 * The driver's files:
 *   bench_engine.c         options, engine selection, topology/pinning/NUMA, the run loop
 *                          (engines interleaved within each run), the summary on stdout
 *   bench_engine_run.c     one engine in one run: the key permutation, the Zipfian
 *                          generator, the workload workers, measure(), fresh instances
 *   bench_engine_check.c   the content check (--check, on with --quick)
 *   bench_engine_output.c  collected rows, the printed tables' order, JSON, gnuplot plots
 *
 * Shared state and who writes it (the driver is single-threaded except inside a
 * measurement, where workers only touch their own pbe__run.w[tid] slot, read-only shared
 * fields of pbe__run, and pbe__run.next_key atomically):
 *   options (pbe__opt_*)            main, before the first run; read-only afterwards
 *   pbe__want, pbe__sel, pbe__nsel  main, before the first run
 *   pbe__baseline, pbe__commit_threads, pbe__topo, pbe__pin_policy
 *                                   main, before the first run
 *   pbe__run                        bench_engine_run.c (per engine instance and measurement)
 *   pbe__open_msg, pbe__open_msg_txn, pbe__data_bytes
 *                                   bench_engine_run.c, read by the output
 *   pbe__oom_run                    main, before the first run
 *   pbe__order                      main, before each run (the run's shuffled engine order)
 *   pbe__settle                     bench_engine_run.c (between measurements), read by the
 *                                   output
 *
 * Cross-file names carry the pbe__ prefix (the adapters' public names are pbe_).
 */
#ifndef PBOX_BENCH_ENGINE_DRIVER_H
#define PBOX_BENCH_ENGINE_DRIVER_H

#include "engine.h"

#include "bench_util.h"

#include <pbox/topo.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PROG "pbox-bench"
#define KEY_SIZE 8u
#define BATCH 1000u
#define SCAN_LEN 100u
#define STOP_CHECK 16u		/* operations between looks at the stop flag */
#define LOOKUP_SAMPLE_MASK 15u	/* lookup: time one operation in 16 */
#define ZIPF_THETA 0.99
#define DEFAULT_KEYS 1000000ull
#define QUICK_KEYS 20000ull
#define MAX_VALUE 65536u
#define CHECK_UPDATES 200u	/* --check: single-key commits, each read back */
#define YCSB_E_MAX_SCAN 100u	/* ycsb-e: scan lengths uniform in 1..100 */
#define DEFAULT_COMMIT_THREADS "1,2,4,8,16,32"
#define NO_NUMA UINT64_MAX
#define WARMUP_MAX 100000ull	/* default warm-up: min(keys / 10, this) pairs read */
#define SNAP_GETS 100u		/* snapshot-get: gets per read-only snapshot */
#define SNAP_SCAN_LEN 10000u	/* snapshot-scan: pairs per scan (one snapshot each) */
#define TXN_READS 8u		/* txn-rw: keys read per transaction */
#define TXN_WRITES 2u		/* txn-rw: keys read, then updated, per transaction */

#define PBE_BAD_DATA (-49999) /* a read returned wrong data (the driver's own code) */
#define PBE_PIN_FAILED (-49998) /* --pin: the OS refused (the driver's own code) */

/* ---- options (bench_engine.c) ------------------------------------------------------------ */

extern uint64_t pbe__opt_budget;
extern const char *pbe__opt_durability, *pbe__opt_lmdb_writemap, *pbe__opt_pin;
extern bool pbe__opt_check;
extern bool pbe__log_parity;	  /* --log-parity on|off (default on) */
extern uint64_t pbe__opt_warmup;  /* --warmup: pairs read untimed before each read cell */
extern uint64_t pbe__opt_seed;	  /* --seed: run r uses seed + r (keys and engine order) */

/* ---- workloads ---------------------------------------------------------------------------- */

enum {
	W_FILL_RANDOM, W_FILL_SEQ, W_LOOKUP, W_LOOKUP_ZIPF, W_SCAN100, W_YCSB_A, W_YCSB_B,
	W_YCSB_C, W_YCSB_E, W_YCSB_F, W_COMMIT, W_SNAPSHOT_GET, W_SNAPSHOT_SCAN, W_TXN_RW,
	W_TXN_BULK, W_COUNT
};
extern const char *const pbe__wname[W_COUNT]; /* the workload names of the reports */
extern bool pbe__want[W_COUNT];		     /* the workloads asked for */

/* ---- engines ------------------------------------------------------------------------------ */

/* The adapters built in (bench_engine.c), in the default order. */
enum {
	PBE__NADAPTERS = 2
#ifdef PBE_HAVE_ROCKSDB
			 + 1
#endif
#ifdef PBE_HAVE_WIREDTIGER
			 + 1
#endif
#ifdef PBE_HAVE_SQLITE
			 + 1
#endif
#ifdef PBE_HAVE_LEVELDB
			 + 1
#endif
};
extern const pbe_adapter *const pbe__adapters[PBE__NADAPTERS];
extern size_t pbe__sel[PBE__NADAPTERS], pbe__nsel; /* the engines run, in --engines order */
extern char pbe__open_msg[PBE__NADAPTERS][256];	    /* each engine's settings line from open */
extern char pbe__open_msg_txn[PBE__NADAPTERS][256]; /* the same for its transaction instance
							(txn-bulk, txn-rw), or "" */
extern uint64_t pbe__data_bytes[PBE__NADAPTERS];    /* each engine's data after the last fill,
							or after its first settle if any */
extern bool pbe__data_settled[PBE__NADAPTERS];	    /* pbe__data_bytes is after a settle */
extern const char *pbe__baseline; /* the ratio column's engine, or NULL */
extern unsigned pbe__commit_threads[PBOX_BENCH_MAX_THREADS];
extern size_t pbe__ncommit_threads;
extern pbox_topo *pbe__topo;
extern pbox_pin_policy pbe__pin_policy;
extern bool pbe__oom_run; /* --budget below the raw data */
/* The engine order of each run: run r (1-based) ran pbe__adapters[pbe__order[(r - 1) *
 * pbe__nsel + i]] as its (i + 1)-th engine; pbe__order_runs runs recorded. */
extern size_t *pbe__order;
extern unsigned pbe__order_runs;

/* ---- settle statistics (bench_engine_run.c) ---------------------------------------------- */

typedef struct pbe__dvec {
	double *v;
	size_t n, cap;
} pbe__dvec;

/* Appends x (0, or -ENOMEM). */
int pbe__dvec_push(pbe__dvec *d, double x);

/* What the settle step cost each engine: informational, never part of a rate. */
typedef struct pbe__settle_stats {
	pbe__dvec first;  /* seconds of the first settle of an instance (after the fill and
			     --check), one per run and instance (main; transaction, for txn-rw) */
	pbe__dvec later;  /* seconds of the settles before the later cells */
	pbe__dvec warmup; /* seconds of each warm-up */
	unsigned incomplete; /* settles that reported a note (a bound hit) */
	char note[160];	  /* the last such note */
} pbe__settle_stats;

extern pbe__settle_stats pbe__settle[PBE__NADAPTERS];

/* ---- random numbers ------------------------------------------------------------------------ */

static inline uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xoshiro-style state would do too; a 64-bit xorshift* is enough for key choice */
static inline uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline uint64_t rnd_seed(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = a * 0x100000001b3ull ^ (b << 32) ^ c;
	uint64_t r = splitmix(&s);
	return r ? r : 1;
}

/* uniform in [0, n) (Lemire's multiply-shift; the bias is negligible for n << 2^64) */
static inline uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rnd(s) * n) >> 64);
}

static inline double rnd_unit(uint64_t *s)
{
	return (double)(rnd(s) >> 11) * 0x1.0p-53;
}

/* Zipfian ranks in [0, n) with parameter theta (bench_engine_run.c). */
typedef struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
} zipf;

void pbe__zipf_init(zipf *z, uint64_t n, double theta);

/* ---- keys and values ----------------------------------------------------------------------- */

static inline void enc_key(unsigned char *k, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (unsigned char)v;
}

static inline uint64_t dec_key(const unsigned char *k)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | k[i];
	return v;
}

/* value: key (big-endian), version (big-endian), filler derived from both */
static inline void make_value(unsigned char *v, uint32_t vsize, uint64_t key, uint64_t version)
{
	enc_key(v, key);
	enc_key(v + 8, version);
	memset(v + 16, (int)((key * 131u + version * 7u) & 0xffu), vsize - 16);
}

static inline bool value_ok(const unsigned char *v, size_t vlen, uint32_t vsize,
			    const unsigned char *key)
{
	return vlen == vsize && memcmp(v, key, KEY_SIZE) == 0;
}

/* ---- run state (bench_engine_run.c) --------------------------------------------------------- */

typedef struct worker {
	uint64_t ops;
	uint64_t retries; /* txn-rw: transactions run again after a conflict */
	uint64_t aux_ops; /* snapshot-scan's writer thread: its updates (not in ops) */
	int err;	/* adapter return code, or PBE_BAD_DATA */
	char what[160]; /* what went wrong */
	pbox_bench_hist hist;
} __attribute__((aligned(128))) worker;

typedef struct pbe__run_state {
	const pbe_adapter *ad;
	pbe_engine *e;
	pbe_thread *th[PBOX_BENCH_MAX_THREADS];
	uint64_t n;	  /* keys */
	uint32_t vsize;
	uint32_t *perm;	  /* the run's permutation of [0, n) */
	zipf z;
	uint64_t seed;	  /* the run's seed */
	int workload;
	bool seq;	  /* fill order */
	unsigned order_pos; /* the engine's 1-based position in this run's engine order */
	_Atomic uint64_t next_key; /* ycsb-e: the next new key (N, N+1, ... per instance) */
	pbe_kv *bulk;	  /* txn-bulk: the n pairs of its one transaction, built untimed */
	bool txn_inst;	  /* the transaction instance is open (not the main one) */
	worker w[PBOX_BENCH_MAX_THREADS];
} pbe__run_state;

extern pbe__run_state pbe__run;

/* Fill pbe__run.perm with a random permutation of [0, n) drawn from seed. */
void pbe__make_perm(uint64_t seed);

/* The name of a return code of the current adapter or of the driver. */
const char *pbe__rc_str(int rc);

/* ---- content check (bench_engine_check.c) ------------------------------------------------- */

/* Digests of what an engine returned for a fixed operation sequence; engines must agree. */
typedef struct digests {
	uint64_t full0, gets, scans, full1;
	bool set;
} digests;

/* Check the freshly filled instance of pbe__run.ad (full scans, point reads of present and
 * absent keys, short scans, updates read back) and compare with ref, the first engine's
 * digests of the run (unless !ref->set). 0, or an error after a message on stderr. */
int pbe__check_contents(digests *d, const digests *ref);

/* ---- one engine in one run (bench_engine_run.c) -------------------------------------------- */

/* Adapter a, run `run`: fill-seq on its own instance, then fill-random and every other
 * workload asked for on a second one. 0, or an error after a message on stderr. */
int pbe__engine_run(const pbox_bench_config *cfg, size_t a, unsigned run, digests *ref);

/* ---- output (bench_engine_output.c) -------------------------------------------------------- */

/* The reports: CSV rows as they are measured, and the printed tables. */
typedef struct pbe__reports {
	pbox_bench_report *csv;	     /* every row as it is measured, CSV only (never printed) */
	pbox_bench_report *ranked;   /* printed: the compared engines */
	pbox_bench_report *unranked; /* printed: OOM runs, engines bound to the OS page cache */
} pbe__reports;

extern pbe__reports pbe__rep;

/* What a row has beyond the CSV schema (JSON and the printed summaries only); -1: n/a. */
typedef struct pbe__row_extra {
	int64_t retries;    /* txn-rw: transactions run again after a conflict */
	int64_t writer_ops; /* snapshot-scan: the writer thread's updates */
} pbe__row_extra;

/* Record a measured row of the current workload (pbe__run.workload): to the CSV at once,
 * and kept (row->note copied) for the printed tables, the JSON file and the plots. */
int pbe__add_row(const pbox_bench_row *row, bool ranked, pbe__row_extra x);
/* After the table: txn-rw retries, snapshot-scan's writer rate, snapshot-get against
 * lookup (per-run ratios; pagebox's goal), and the n/a cells (engines without
 * transactions or snapshots). */
void pbe__print_txn_summary(void);
/* Move the kept rows into the printed tables, ordered by workload, then thread count, then
 * engine (as selected), whatever order they were measured in. */
int pbe__fill_print_reports(void);
int pbe__write_json(const char *path, const pbox_bench_config *cfg, const char *date);
int pbe__write_plots(const char *dir, const pbox_bench_config *cfg);
/* Free the kept rows. */
void pbe__output_fini(void);
/* What a fill batch means for adapter a in this run's commit mode (the table's note). */
const char *pbe__batch_note(const pbe_adapter *a);

#endif /* PBOX_BENCH_ENGINE_DRIVER_H */
