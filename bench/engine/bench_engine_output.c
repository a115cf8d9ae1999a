/*
 * bench_engine_output.c — pbox-bench's results: every measured row is appended to the CSV
 * file at once (--csv) and kept; at the end the kept rows go into the printed Markdown
 * tables (ranked engines, and in out-of-memory runs the engines bound to the OS page cache
 * apart), the JSON file (--json) and the gnuplot data, script and SVGs (--plot).
 *
 * Invariants:
 *   - a row reaches the CSV file when it is measured (flushed), so an interrupted run keeps
 *     what it measured; the printed tables are filled only at the end, ordered by workload,
 *     then thread count, then engine in --engines order, whatever order the runs took;
 *   - fill rows carry a note (pbe__batch_note: what the engine's atomic batch of 1000 is in
 *     this run's commit mode), txn-bulk, txn-rw and snapshot-* rows one saying what the
 *     engine's transaction or snapshot is; printed in the table's note column and in the
 *     JSON (each kept row owns a copy);
 *   - what a row has beyond the CSV schema (txn-rw's retries, snapshot-scan's writer
 *     updates) goes to the JSON and to the summary printed after the table, never to the
 *     CSV (its schema is fixed: bench/README.md);
 *   - in an out-of-memory run an engine without a bounded cache is never in the ranked
 *     table, never the baseline of a ratio, and is marked "(OS-cache)" in the plots;
 *   - plots are made from the medians of the kept rows; without gnuplot the data and the
 *     script stay in the plot directory and the program still succeeds.
 * Single-threaded: called between measurements and after the last run.
 */
#define _GNU_SOURCE
#include "bench_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

/* ---- reports --------------------------------------------------------------------------- */

typedef struct jrow {
	pbox_bench_row r; /* engine and workload point to static strings, note to an owned
			     copy (or NULL) */
	int workload;
	bool ranked;
	pbe__row_extra x;
} jrow;

pbe__reports pbe__rep;

static struct {
	jrow *j; /* every row, for the printed tables, the JSON file and the plots */
	size_t nj, capj;
} R;

int pbe__add_row(const pbox_bench_row *row, bool ranked, pbe__row_extra x)
{
	int r = pbox_bench_report_add(pbe__rep.csv, row);
	if (r)
		return r;
	if (R.nj == R.capj) {
		size_t nc = R.capj ? 2 * R.capj : 64;
		jrow *nj = realloc(R.j, nc * sizeof(*nj));
		if (!nj)
			return -ENOMEM;
		R.j = nj;
		R.capj = nc;
	}
	jrow j = { .r = *row, .workload = pbe__run.workload, .ranked = ranked, .x = x };
	if (row->note && !(j.r.note = strdup(row->note)))
		return -ENOMEM;
	R.j[R.nj++] = j;
	return 0;
}

const char *pbe__batch_note(const pbe_adapter *a)
{
	return strcmp(pbe__opt_durability, "durable") == 0 ? a->batch_durable : a->batch_fast;
}

int pbe__fill_print_reports(void)
{
	static const int worder[W_COUNT] = { W_FILL_RANDOM, W_FILL_SEQ, W_TXN_BULK, W_LOOKUP,
					     W_SNAPSHOT_GET, W_LOOKUP_ZIPF, W_SCAN100,
					     W_SNAPSHOT_SCAN, W_YCSB_A, W_YCSB_B, W_YCSB_C,
					     W_YCSB_E, W_YCSB_F, W_COMMIT, W_TXN_RW };
	for (int wi = 0; wi < W_COUNT; wi++) {
		unsigned last_t = 0;
		for (;;) { /* thread counts in ascending order */
			unsigned t = UINT32_MAX;
			for (size_t i = 0; i < R.nj; i++)
				if (R.j[i].workload == worder[wi] && R.j[i].r.threads > last_t &&
				    R.j[i].r.threads < t)
					t = R.j[i].r.threads;
			if (t == UINT32_MAX)
				break;
			for (size_t e = 0; e < pbe__nsel; e++)
				for (size_t i = 0; i < R.nj; i++) {
					const jrow *j = &R.j[i];
					if (j->workload != worder[wi] || j->r.threads != t ||
					    strcmp(j->r.engine, pbe__adapters[pbe__sel[e]]->name) !=
						    0)
						continue;
					int r = pbox_bench_report_add(j->ranked ? pbe__rep.ranked
										: pbe__rep.unranked,
								      &j->r);
					if (r)
						return r;
				}
			last_t = t;
		}
	}
	return 0;
}

static void json_num(FILE *f, const char *name, double v, bool last)
{
	if (v < 0)
		fprintf(f, "\"%s\": null%s", name, last ? "" : ", ");
	else
		fprintf(f, "\"%s\": %.6g%s", name, v, last ? "" : ", ");
}

static void json_int(FILE *f, const char *name, int64_t v, bool last)
{
	if (v < 0)
		fprintf(f, "\"%s\": null%s", name, last ? "" : ", ");
	else
		fprintf(f, "\"%s\": %" PRId64 "%s", name, v, last ? "" : ", ");
}

int pbe__write_json(const char *path, const pbox_bench_config *cfg, const char *date)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
		return -errno;
	}
	fprintf(f,
		"{\n  \"program\": \"%s\", \"date\": \"%s\", \"keys\": %" PRIu64
		", \"value_size\": %u, \"durability\": \"%s\", \"budget_bytes\": %" PRIu64
		", \"out_of_memory\": %s, \"runs\": %u, \"seconds\": %g,\n",
		PROG, date, pbe__run.n, pbe__run.vsize, pbe__opt_durability, pbe__opt_budget,
		pbe__oom_run ? "true" : "false", cfg->runs, cfg->seconds);
	fprintf(f, "  \"seed\": %" PRIu64 ", \"log_parity\": %s, \"warmup_pairs\": %" PRIu64
		   ", \"engine_order\": [", pbe__opt_seed, pbe__log_parity ? "true" : "false",
		pbe__opt_warmup);
	for (unsigned r = 0; r < pbe__order_runs; r++) {
		fprintf(f, "%s[", r ? ", " : "");
		for (size_t i = 0; i < pbe__nsel; i++)
			fprintf(f, "%s\"%s\"", i ? ", " : "",
				pbe__adapters[pbe__order[(size_t)r * pbe__nsel + i]]->name);
		fprintf(f, "]");
	}
	fprintf(f, "],\n");
	char topo_desc[256] = "unknown";
	if (pbe__topo)
		pbox_topo_describe(pbe__topo, topo_desc, sizeof(topo_desc));
	fprintf(f, "  \"baseline\": %s%s%s, \"pin\": \"%s\", \"topology\": \"%s\",\n",
		pbe__baseline ? "\"" : "", pbe__baseline ? pbe__baseline : "null",
		pbe__baseline ? "\"" : "", pbe__opt_pin, topo_desc);
	fprintf(f, "  \"engines\": [");
	for (size_t i = 0; i < pbe__nsel; i++) {
		size_t a = pbe__sel[i];
		fprintf(f,
			"%s{\"name\": \"%s\", \"version\": \"%s\", \"bounded_cache\": %s, "
			"\"settings\": \"",
			i ? ", " : "", pbe__adapters[a]->name, pbe__adapters[a]->version,
			pbe__adapters[a]->bounded_cache ? "true" : "false");
		for (const char *c = pbe__open_msg[a]; *c; c++) /* JSON string escapes */
			if (*c == '"' || *c == '\\')
				fprintf(f, "\\%c", *c);
			else if ((unsigned char)*c >= 0x20)
				fputc(*c, f);
		fprintf(f, "\", \"transaction_instance_settings\": \"");
		for (const char *c = pbe__open_msg_txn[a]; *c; c++)
			if (*c == '"' || *c == '\\')
				fprintf(f, "\\%c", *c);
			else if ((unsigned char)*c >= 0x20)
				fputc(*c, f);
		fprintf(f, "\", \"data_bytes\": %" PRIu64 ", \"fill_batch\": \"%s\", "
			   "\"transactions\": %s%s%s, \"snapshots\": %s%s%s, "
			   "\"settle\": \"%s\", \"settle_after_fill_s\": [",
			pbe__data_bytes[a], pbe__batch_note(pbe__adapters[a]),
			pbe__adapters[a]->txn_how ? "\"" : "",
			pbe__adapters[a]->txn_how ? pbe__adapters[a]->txn_how : "null",
			pbe__adapters[a]->txn_how ? "\"" : "",
			pbe__adapters[a]->snap_how ? "\"" : "",
			pbe__adapters[a]->snap_how ? pbe__adapters[a]->snap_how : "null",
			pbe__adapters[a]->snap_how ? "\"" : "",
			pbe__adapters[a]->settle_how);
		const pbe__settle_stats *st = &pbe__settle[a];
		for (size_t k = 0; k < st->first.n; k++)
			fprintf(f, "%s%.6f", k ? ", " : "", st->first.v[k]);
		fprintf(f, "], \"settle_incomplete\": %u}", st->incomplete);
	}
	fprintf(f, "],\n  \"rows\": [\n");
	for (size_t i = 0; i < R.nj; i++) {
		const jrow *j = &R.j[i];
		fprintf(f, "    {\"engine\": \"%s\", \"workload\": \"%s\", \"threads\": %u, \"run\": %u, ",
			j->r.engine, pbe__wname[j->workload], j->r.threads, j->r.run);
		fprintf(f, "\"ranked\": %s, ", j->ranked ? "true" : "false");
		json_int(f, "budget_bytes", j->r.budget_bytes, false);
		fprintf(f, "\"ops\": %" PRIu64 ", ", j->r.ops);
		json_num(f, "seconds", j->r.seconds, false);
		json_num(f, "ops_per_sec", j->r.seconds > 0 ? (double)j->r.ops / j->r.seconds : -1,
			 false);
		json_num(f, "p50_us", j->r.p50_us, false);
		json_num(f, "p99_us", j->r.p99_us, false);
		json_num(f, "cpu_us_per_op", j->r.cpu_us_per_op, false);
		json_int(f, "peak_rss_bytes", j->r.peak_rss_bytes, false);
		json_int(f, "engine_order", j->r.engine_order, false);
		json_num(f, "settle_seconds", j->r.settle_s, false);
		json_int(f, "retries", j->x.retries, false);
		json_int(f, "writer_ops", j->x.writer_ops, false);
		fprintf(f, "\"note\": ");
		if (j->r.note)
			fprintf(f, "\"%s\"", j->r.note); /* static adapter strings: no escapes */
		else
			fprintf(f, "null");
		fprintf(f, "}%s\n", i + 1 < R.nj ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	int r = ferror(f) ? -EIO : 0;
	if (fclose(f) && !r)
		r = -errno;
	return r;
}

void pbe__output_fini(void)
{
	for (size_t i = 0; i < R.nj; i++)
		free((char *)R.j[i].r.note);
	free(R.j);
	R.j = NULL;
	R.nj = R.capj = 0;
}

/* ---- the summary after the table -------------------------------------------------------- */

static const jrow *find_row(int w, unsigned threads, const char *engine, unsigned run)
{
	for (size_t i = 0; i < R.nj; i++) {
		const jrow *j = &R.j[i];
		if (j->workload == w && j->r.threads == threads && j->r.run == run &&
		    !strcmp(j->r.engine, engine))
			return j;
	}
	return NULL;
}

static double row_rate(const jrow *j, uint64_t count)
{
	return j->r.seconds > 0 ? (double)count / j->r.seconds : 0;
}

/* The thread counts workload w was measured at, ascending (at most cap). */
static size_t thread_counts(int w, unsigned *out, size_t cap)
{
	size_t n = 0;
	unsigned last = 0;
	for (;;) {
		unsigned t = UINT32_MAX;
		for (size_t i = 0; i < R.nj; i++)
			if (R.j[i].workload == w && R.j[i].r.threads > last && R.j[i].r.threads < t)
				t = R.j[i].r.threads;
		if (t == UINT32_MAX || n == cap)
			return n;
		out[n++] = last = t;
	}
}

/* "median (min–max)" of v[0..n), each number with dec decimals and the suffix. */
static void print_spread(const double *v, size_t n, int dec, const char *suffix)
{
	pbox_bench_summary s = pbox_bench_summarize(v, n);
	printf("%.*f%s", dec, s.median, suffix);
	if (n > 1)
		printf(" (%.*f%s–%.*f%s)", dec, s.min, suffix, dec, s.max, suffix);
}

void pbe__print_txn_summary(void)
{
	unsigned runs = 0;
	for (size_t i = 0; i < R.nj; i++)
		if (R.j[i].r.run > runs)
			runs = R.j[i].r.run;
	double *v = runs ? malloc(runs * sizeof(*v)) : NULL;
	if (runs && !v)
		return;
	unsigned tl[PBOX_BENCH_MAX_THREADS];
	/* n/a cells */
	for (size_t e = 0; e < pbe__nsel; e++) {
		const pbe_adapter *ad = pbe__adapters[pbe__sel[e]];
		bool no_txn = (pbe__want[W_TXN_RW] && !ad->txn_rw) ||
			      (pbe__want[W_TXN_BULK] && !ad->txn_bulk);
		bool no_snap = (pbe__want[W_SNAPSHOT_GET] || pbe__want[W_SNAPSHOT_SCAN]) &&
			       !ad->snap_begin;
		if (no_txn)
			printf("\nn/a: %s has no transactions: %s%s%s not measured.", ad->name,
			       pbe__want[W_TXN_BULK] ? "txn-bulk" : "",
			       pbe__want[W_TXN_BULK] && pbe__want[W_TXN_RW] ? ", " : "",
			       pbe__want[W_TXN_RW] ? "txn-rw" : "");
		if (no_snap)
			printf("\nn/a: %s has no snapshots: snapshot-get, snapshot-scan not measured.",
			       ad->name);
	}
	/* txn-rw retries per 1000 transactions, per run */
	size_t ntl = thread_counts(W_TXN_RW, tl, PBOX_BENCH_MAX_THREADS);
	if (ntl)
		printf("\ntxn-rw retries (transactions run again after a conflict) per 1000 "
		       "transactions, median (min–max) over runs:");
	for (size_t ti = 0; ti < ntl; ti++) {
		printf("\n- threads=%u:", tl[ti]);
		for (size_t e = 0; e < pbe__nsel; e++) {
			const char *en = pbe__adapters[pbe__sel[e]]->name;
			size_t n = 0;
			for (unsigned r = 1; r <= runs; r++) {
				const jrow *j = find_row(W_TXN_RW, tl[ti], en, r);
				if (j && j->r.ops && j->x.retries >= 0)
					v[n++] = 1000.0 * (double)j->x.retries / (double)j->r.ops;
			}
			if (!n)
				continue;
			printf(" %s ", en);
			print_spread(v, n, 2, "");
			printf(";");
		}
	}
	/* snapshot-scan: the writer's rate */
	ntl = thread_counts(W_SNAPSHOT_SCAN, tl, PBOX_BENCH_MAX_THREADS);
	for (size_t ti = 0; ti < ntl; ti++) {
		printf("\nsnapshot-scan, the writer thread's single-key updates/s (%s commits), "
		       "median (min–max) over runs:", pbe__opt_durability);
		for (size_t e = 0; e < pbe__nsel; e++) {
			const char *en = pbe__adapters[pbe__sel[e]]->name;
			size_t n = 0;
			for (unsigned r = 1; r <= runs; r++) {
				const jrow *j = find_row(W_SNAPSHOT_SCAN, tl[ti], en, r);
				if (j && j->x.writer_ops >= 0)
					v[n++] = row_rate(j, (uint64_t)j->x.writer_ops);
			}
			if (!n)
				continue;
			printf(" %s ", en);
			print_spread(v, n, 0, "");
			printf(";");
		}
	}
	/* snapshot-get against lookup: per-run ratios (same instance, same run) */
	ntl = thread_counts(W_SNAPSHOT_GET, tl, PBOX_BENCH_MAX_THREADS);
	if (ntl && pbe__want[W_LOOKUP])
		printf("\nsnapshot-get / lookup (each run's snapshot-get ops/s over its lookup "
		       "ops/s, same instance), median (min–max) over runs; pagebox's goal >= 0.9x:");
	for (size_t ti = 0; ti < ntl && pbe__want[W_LOOKUP]; ti++) {
		printf("\n- threads=%u:", tl[ti]);
		for (size_t e = 0; e < pbe__nsel; e++) {
			const char *en = pbe__adapters[pbe__sel[e]]->name;
			size_t n = 0;
			for (unsigned r = 1; r <= runs; r++) {
				const jrow *sg = find_row(W_SNAPSHOT_GET, tl[ti], en, r);
				const jrow *lk = find_row(W_LOOKUP, tl[ti], en, r);
				if (sg && lk && lk->r.ops && row_rate(lk, lk->r.ops) > 0)
					v[n++] = row_rate(sg, sg->r.ops) / row_rate(lk, lk->r.ops);
			}
			if (!n)
				continue;
			printf(" %s ", en);
			print_spread(v, n, 2, "x");
			if (!strcmp(en, "pagebox")) {
				pbox_bench_summary sm = pbox_bench_summarize(v, n);
				printf(" [goal >= 0.9x: %s%s]", sm.median >= 0.9 ? "met" : "NOT met",
				       n < 5 ? ", fewer than 5 runs: indicative" : "");
			}
			printf(";");
		}
	}
	printf("\n");
	free(v);
}

/* ---- plots (gnuplot) ------------------------------------------------------------------ */

/* The median ops/s of (workload, threads, engine) over its runs; < 0 if not measured. */
static double median_ops(int w, unsigned threads, const char *engine)
{
	double v[256];
	size_t n = 0;
	for (size_t i = 0; i < R.nj && n < sizeof(v) / sizeof(v[0]); i++) {
		const jrow *j = &R.j[i];
		if (j->workload == w && j->r.threads == threads && !strcmp(j->r.engine, engine) &&
		    j->r.seconds > 0)
			v[n++] = (double)j->r.ops / j->r.seconds;
	}
	return n ? pbox_bench_summarize(v, n).median : -1;
}

static bool measured_at(int w, unsigned threads)
{
	for (size_t i = 0; i < R.nj; i++)
		if (R.j[i].workload == w && R.j[i].r.threads == threads)
			return true;
	return false;
}

static void dat_header(FILE *f, const char *first)
{
	fprintf(f, "%s", first);
	for (size_t e = 0; e < pbe__nsel; e++) {
		const pbe_adapter *ad = pbe__adapters[pbe__sel[e]];
		/* gnuplot's columnheader: one word; unranked engines marked */
		fprintf(f, " %s%s", ad->name,
			pbe__oom_run && !ad->bounded_cache ? "(OS-cache)" : "");
	}
	fprintf(f, "\n");
}

static void dat_row(FILE *f, int w, unsigned threads)
{
	for (size_t e = 0; e < pbe__nsel; e++) {
		double m = median_ops(w, threads, pbe__adapters[pbe__sel[e]]->name);
		if (m < 0)
			fprintf(f, " -");
		else
			fprintf(f, " %.1f", m);
	}
	fprintf(f, "\n");
}

static FILE *plot_open(const char *dir, const char *name, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
	return f;
}

/* A lines plot of one workload's median ops/s against thread counts, one line per engine. */
static int plot_threads(FILE *gp, const char *dir, int w, const unsigned *tl, size_t ntl,
			const char *name, const char *title)
{
	bool any = false;
	for (size_t i = 0; i < ntl; i++)
		any |= measured_at(w, tl[i]);
	if (!any)
		return 0;
	char path[4096], file[256];
	snprintf(file, sizeof(file), "%s.dat", name);
	FILE *f = plot_open(dir, file, path, sizeof(path));
	if (!f)
		return -errno;
	dat_header(f, "threads");
	for (size_t i = 0; i < ntl; i++) {
		if (!measured_at(w, tl[i]))
			continue;
		fprintf(f, "%u", tl[i]);
		dat_row(f, w, tl[i]);
	}
	if (fclose(f))
		return -errno;
	fprintf(gp, "reset\nset terminal svg size 900,520 dynamic font 'sans,11'\n"
		    "set datafile missing '-'\nset key outside right top\nset grid\n"
		    "set logscale y\nset logscale x 2\nset xlabel 'threads'\n"
		    "set ylabel 'operations/s (median)'\nset title '%s'\n"
		    "set output '%s/%s.svg'\n"
		    "plot for [i=2:%zu] '%s' using 1:i title columnheader(i) with linespoints lw 2\n",
		    title, dir, name, pbe__nsel + 1, path);
	return 0;
}

int pbe__write_plots(const char *dir, const pbox_bench_config *cfg)
{
	if (strchr(dir, '\'') || strchr(dir, '\n')) {
		fprintf(stderr, "%s: --plot: the directory name may not contain ' or a newline\n", PROG);
		return -EINVAL;
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		fprintf(stderr, "%s: --plot %s: %s\n", PROG, dir, strerror(errno));
		return -errno;
	}
	char gpath[4096], path[4096];
	FILE *gp = plot_open(dir, "plots.gp", gpath, sizeof(gpath));
	if (!gp)
		return -errno;
	int r = 0;
	/* throughput per engine per workload, one plot per thread count */
	unsigned tl[2 * PBOX_BENCH_MAX_THREADS + 1];
	size_t ntl = 0;
	tl[ntl++] = 1;
	for (size_t i = 0; i < cfg->nthreads; i++)
		tl[ntl++] = cfg->threads[i];
	for (size_t ti = 0; ti < ntl && !r; ti++) {
		bool dup = false;
		for (size_t k = 0; k < ti; k++)
			dup |= tl[k] == tl[ti];
		bool any = false;
		for (int w = 0; w < W_COUNT; w++)
			any |= w != W_COMMIT && measured_at(w, tl[ti]);
		if (dup || !any)
			continue;
		char name[64];
		snprintf(name, sizeof(name), "throughput-t%u.dat", tl[ti]);
		FILE *f = plot_open(dir, name, path, sizeof(path));
		if (!f) {
			r = -errno;
			break;
		}
		dat_header(f, "workload");
		for (int w = 0; w < W_COUNT; w++) {
			if (w == W_COMMIT || !measured_at(w, tl[ti]))
				continue;
			fprintf(f, "%s", pbe__wname[w]);
			dat_row(f, w, tl[ti]);
		}
		if (fclose(f)) {
			r = -errno;
			break;
		}
		fprintf(gp,
			"reset\nset terminal svg size 1000,520 dynamic font 'sans,11'\n"
			"set datafile missing '-'\nset key outside right top\nset grid ytics\n"
			"set style data histograms\nset style histogram clustered gap 1\n"
			"set style fill solid 0.85 border -1\nset logscale y\nset yrange [1:*]\n"
			"set xtics rotate by -30\nset ylabel 'operations/s (median, log scale)'\n"
			"set title 'Throughput per workload, %u thread%s, %" PRIu64 " keys, %s%s'\n"
			"set output '%s/throughput-t%u.svg'\n"
			"plot for [i=2:%zu] '%s' using i:xtic(1) title columnheader(i)\n",
			tl[ti], tl[ti] == 1 ? "" : "s", pbe__run.n, pbe__opt_durability,
			pbe__oom_run ? ", out of memory" : "", dir, tl[ti], pbe__nsel + 1, path);
	}
	if (!r)
		r = plot_threads(gp, dir, W_COMMIT, pbe__commit_threads, pbe__ncommit_threads,
				 "commit-threads", "Durable single-key commits against threads");
	if (!r)
		r = plot_threads(gp, dir, W_LOOKUP, cfg->threads, cfg->nthreads, "lookup-threads",
				 "Uniform lookups against threads");
	if (fclose(gp) && !r)
		r = -errno;
	if (r) {
		fprintf(stderr, "%s: --plot: %s\n", PROG, strerror(-r));
		return r;
	}
	/* gnuplot itself */
	char *argv[] = { "gnuplot", gpath, NULL };
	pid_t pid;
	int e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
	if (e) {
		printf("\nPlots skipped: gnuplot %s (install gnuplot-nox; the data and the script "
		       "are in %s: run gnuplot %s).\n",
		       e == ENOENT ? "is not installed" : strerror(e), dir, gpath);
		return 0;
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: --plot: gnuplot %s failed\n", PROG, gpath);
		return -EIO;
	}
	printf("\nPlots: %s/*.svg (gnuplot script %s).\n", dir, gpath);
	return 0;
}
