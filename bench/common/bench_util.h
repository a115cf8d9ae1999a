/*
 * bench_util.h — shared machinery of the pagebox benchmark programs (their conventions:
 * bench/README.md, "Conventions").
 *
 * Every pbox-bench-* program uses this to behave the same way:
 *   - the common options (--runs, --seconds, --threads, --dir, --csv, --quick, --help), plus
 *     program-specific options declared as a table (pbox_bench_option);
 *   - timing: wall clock (CLOCK_MONOTONIC), process CPU time (getrusage), peak RSS;
 *   - a thread runner: N threads released together from a start gate, stopped by a flag after
 *     --seconds, each counting its own operations (no shared counter in the hot loop);
 *   - a report: one CSV row per run appended to --csv (header written when the file is new
 *     or empty), and a Markdown table of medians, min–max and the ratio to a baseline
 *     engine measured in the same process run;
 *   - a log-linear latency histogram for p50/p99;
 *   - a progress line on stderr, shown only when stderr is a terminal and stdout is not a
 *     pipe.
 *
 * Conventions: functions return 0 or a negative errno; "not applicable" is PBOX_BENCH_NA for
 * integer fields and any negative value for floating-point fields (written as "-").
 * Nothing here is thread-safe unless it says so; the thread runner and the histogram record
 * function are used from worker threads as documented.
 */
#ifndef PBOX_BENCH_UTIL_H
#define PBOX_BENCH_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PBOX_BENCH_NA (-1)

/* ---- options ------------------------------------------------------------------------- */

#define PBOX_BENCH_MAX_THREADS 64  /* entries in a --threads list */
#define PBOX_BENCH_MAX_LIST 32	   /* words in a list option */

/* A comma-separated list of words (e.g. --engines a,b). Items point into `storage`. */
typedef struct pbox_bench_list {
	size_t n;
	const char *item[PBOX_BENCH_MAX_LIST];
	char *storage; /* owned; freed by pbox_bench_config_fini */
} pbox_bench_list;

/* True if `word` is one of the list's items. */
bool pbox_bench_list_has(const pbox_bench_list *l, const char *word);

typedef enum pbox_bench_opt_kind {
	PBOX_BENCH_OPT_FLAG,   /* bool *: set to true, takes no value */
	PBOX_BENCH_OPT_UINT,   /* uint64_t *: decimal or 0x hex */
	PBOX_BENCH_OPT_SIZE,   /* uint64_t *: integer with optional K, M, G, T (powers of 1024) */
	PBOX_BENCH_OPT_DOUBLE, /* double * */
	PBOX_BENCH_OPT_STRING, /* const char **: points into argv */
	PBOX_BENCH_OPT_LIST,   /* pbox_bench_list *: comma-separated words */
} pbox_bench_opt_kind;

/* A program-specific option: --name VALUE or --name=VALUE (flags take no value). The value
 * is stored into *dest, which the program initializes with its default beforehand. A LIST
 * dest starts zeroed or holds a default made with pbox_bench_parse_list; a value given on
 * the command line replaces it, and pbox_bench_config_fini frees its storage. */
typedef struct pbox_bench_option {
	const char *name;    /* without the leading dashes, e.g. "keys" */
	pbox_bench_opt_kind kind;
	void *dest;
	const char *metavar; /* shown in --help, e.g. "N" (ignored for flags) */
	const char *help;    /* one line */
} pbox_bench_option;

/* The common options and the program's description. Fill with pbox_bench_config_init, set
 * the extra fields, then pbox_bench_parse_args. */
typedef struct pbox_bench_config {
	/* program description (set by the program) */
	const char *program;	   /* e.g. "pbox-bench-latch": the CSV `program` column too */
	const char *summary;	   /* one line for --help */
	const char *usage_extra;   /* free text appended to --help (engines, workloads), or NULL */
	const pbox_bench_option *extra; /* program options, or NULL */
	size_t nextra;

	/* common options (defaults set by config_init, then by the program, then parsed) */
	unsigned runs;		/* --runs R (default 3) */
	double seconds;		/* --seconds S */
	double quick_seconds;	/* what --quick sets seconds to (default 0.2) */
	unsigned threads[PBOX_BENCH_MAX_THREADS]; /* --threads LIST */
	size_t nthreads;
	const char *dir;	/* --dir DIR: parent of the scratch directory (NULL: $TMPDIR, /tmp) */
	const char *csv;	/* --csv FILE, or NULL */
	bool quick;		/* --quick: runs = 1 and seconds = quick_seconds unless given */

	/* which common options appeared on the command line */
	bool runs_set, seconds_set, threads_set;
} pbox_bench_config;

/* Defaults: runs 3, the given seconds, quick_seconds 0.2, threads parsed from
 * default_threads ("1,2"). */
void pbox_bench_config_init(pbox_bench_config *c, const char *program, const char *summary,
			    double default_seconds, const char *default_threads);
/* Frees the storage of every LIST option in c->extra. */
void pbox_bench_config_fini(pbox_bench_config *c);

/* Parse argv. Returns 0 to run, 1 if --help was printed (exit 0), -1 after printing a usage
 * error to stderr (exit 2). Applies --quick after all options are read. */
int pbox_bench_parse_args(pbox_bench_config *c, int argc, char **argv);

/* The --help text. */
void pbox_bench_usage(const pbox_bench_config *c, FILE *out);

/* Parse helpers (also used for the common options). Return 0 or -EINVAL. */
int pbox_bench_parse_u64(const char *s, uint64_t *out);
int pbox_bench_parse_size(const char *s, uint64_t *out);
int pbox_bench_parse_threads(const char *s, unsigned *out, size_t max, size_t *n);
int pbox_bench_parse_list(const char *s, pbox_bench_list *out); /* caller frees storage */

/* ---- scratch directory ----------------------------------------------------------------- */

/* Create a fresh directory <--dir or $TMPDIR or /tmp>/<program>-<tag>-XXXXXX (the parent is
 * created if missing). *path_out is malloc'ed. Never removes anything the user owns: only
 * this new directory is removed by pbox_bench_scratch_remove. */
int pbox_bench_scratch_create(const pbox_bench_config *c, const char *tag, char **path_out);
/* Remove the scratch directory tree and free the path (NULL is a no-op). */
void pbox_bench_scratch_remove(char *path);

/* ---- time and resources ------------------------------------------------------------ */

uint64_t pbox_bench_now_ns(void);	   /* CLOCK_MONOTONIC */
uint64_t pbox_bench_cpu_ns(void);	   /* user + system time of the process (getrusage) */
int64_t pbox_bench_peak_rss_bytes(void);   /* VmHWM, else ru_maxrss; PBOX_BENCH_NA if unknown */
/* Reset the peak RSS watermark to the current RSS (/proc/self/clear_refs), so that each run
 * reports its own peak. Returns 0 or -errno (then peaks are cumulative: say so). */
int pbox_bench_peak_rss_reset(void);

/* ---- thread runner --------------------------------------------------------------------- */

/* A worker: runs until *stop becomes true (check it with pbox_bench_stopped every few
 * hundred operations), or returns on its own when the run is operation-bounded. */
typedef void (*pbox_bench_worker)(void *ctx, unsigned tid, const _Atomic bool *stop);

static inline bool pbox_bench_stopped(const _Atomic bool *stop)
{
	return atomic_load_explicit(stop, memory_order_relaxed);
}

typedef struct pbox_bench_timing {
	double seconds;	 /* wall time from the common start to the last worker's return */
	uint64_t cpu_ns; /* process CPU time over the same interval */
} pbox_bench_timing;

/* Start nthreads workers (tid 0..nthreads-1), release them together from a start gate once
 * all are ready, and stop them after `seconds` (if seconds > 0; otherwise wait for them to
 * return). Returns 0 or -errno (thread creation failed; nothing left running). */
int pbox_bench_run_threads(unsigned nthreads, double seconds, pbox_bench_worker worker,
			   void *ctx, pbox_bench_timing *out);

/* ---- statistics ------------------------------------------------------------------------ */

typedef struct pbox_bench_summary {
	size_t n;
	double median, min, max; /* median of an even count: mean of the two middle values */
} pbox_bench_summary;

pbox_bench_summary pbox_bench_summarize(const double *v, size_t n);

/* Log-linear latency histogram: values below 32 exact, above that 32 buckets per power of
 * two (relative error below 1/64 at the bucket midpoint), the full uint64 range. Record from
 * one thread per histogram; merge afterwards. About 15 KiB: keep one per thread. */
#define PBOX_BENCH_HIST_SUB_BITS 5
#define PBOX_BENCH_HIST_SUB (1u << PBOX_BENCH_HIST_SUB_BITS)
#define PBOX_BENCH_HIST_BUCKETS ((64u - PBOX_BENCH_HIST_SUB_BITS + 1u) * PBOX_BENCH_HIST_SUB)

typedef struct pbox_bench_hist {
	uint64_t count, sum, min, max; /* owned by the recording thread */
	uint64_t bucket[PBOX_BENCH_HIST_BUCKETS];
} pbox_bench_hist;

void pbox_bench_hist_init(pbox_bench_hist *h);

static inline unsigned pbox_bench_hist_index(uint64_t v)
{
	if (v < PBOX_BENCH_HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - PBOX_BENCH_HIST_SUB_BITS;
	return ((shift + 1u) << PBOX_BENCH_HIST_SUB_BITS) +
	       (unsigned)((v >> shift) - PBOX_BENCH_HIST_SUB);
}

static inline void pbox_bench_hist_record(pbox_bench_hist *h, uint64_t v)
{
	h->bucket[pbox_bench_hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void pbox_bench_hist_merge(pbox_bench_hist *dst, const pbox_bench_hist *src);
/* The q-quantile (0 <= q <= 1) as a bucket midpoint clamped to [min, max]; 0 if empty. */
uint64_t pbox_bench_hist_quantile(const pbox_bench_hist *h, double q);

/* ---- report: CSV rows and the Markdown table ------------------------------------------ */

/* One measured run. Strings are copied by pbox_bench_report_add. */
typedef struct pbox_bench_row {
	const char *engine;   /* system measured: "pagebox", "pthread-rwlock", ... */
	const char *workload; /* workload name (bench/README.md) */
	unsigned threads;
	int64_t keys;	      /* PBOX_BENCH_NA if not applicable */
	int64_t value_size;   /* PBOX_BENCH_NA if not applicable */
	int64_t budget_bytes; /* PBOX_BENCH_NA if not applicable */
	unsigned run;	      /* 1-based */
	uint64_t ops;
	double seconds;
	double p50_us, p99_us; /* < 0: not applicable */
	double cpu_us_per_op;  /* < 0: not applicable */
	int64_t peak_rss_bytes; /* PBOX_BENCH_NA if not applicable */
	/* appended to the schema later (CSV columns after peak_rss_bytes): */
	int64_t engine_order;	/* 1-based position of the engine in its run's engine order;
				   PBOX_BENCH_NA where the order is fixed or not recorded */
	double settle_s;	/* seconds of the untimed settle step before this measurement
				   (pbox-bench); < 0: none */
	const char *note;	/* table only (not in the CSV): a short qualifier of the cell,
				   e.g. what a fill batch means for this engine; NULL: none */
} pbox_bench_row;

/* The CSV header line (without newline). */
extern const char pbox_bench_csv_header[];

/* Every field "not applicable", run 1. */
void pbox_bench_row_init(pbox_bench_row *r);

typedef struct pbox_bench_report pbox_bench_report;

/* A report for `program`. csv_path NULL: no CSV. baseline_engine NULL: no ratio column.
 * Fails with -EINVAL (message on stderr) if the CSV file exists with a different header. */
int pbox_bench_report_create(pbox_bench_report **out, const char *program,
			     const char *csv_path, const char *baseline_engine);
/* Record a run: appended to the CSV at once (flushed) and kept for the table. */
int pbox_bench_report_add(pbox_bench_report *rep, const pbox_bench_row *row);
/* The Markdown table: one line per (workload, threads, engine) in first-seen order, with
 * the median and min–max of ops/s over its runs, the ratio of medians to the baseline
 * engine of the same workload and threads, and the per-run ratios (each run's ops/s over
 * the baseline's ops/s in the run of the same index: their median and min–max); optional
 * columns appear when any row has them. */
void pbox_bench_report_print(const pbox_bench_report *rep, FILE *out);
void pbox_bench_report_destroy(pbox_bench_report *rep);

/* ---- progress line -------------------------------------------------------------------- */

/* "\r<text>" on stderr, only when stderr is a terminal and stdout is not a pipe. */
void pbox_bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Clear the progress line (if one was shown). */
void pbox_bench_progress_done(void);

#endif /* PBOX_BENCH_UTIL_H */
