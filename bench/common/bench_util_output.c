/*
 * bench_util_output.c — what the benchmark programs write: one CSV row per run (--csv),
 * the Markdown table of medians on stdout, and the progress line on stderr.
 *
 * Invariants (the schema and the rules are in bench/README.md, "Conventions"):
 *   - the CSV file always starts with exactly pbox_bench_csv_header; rows are only appended,
 *     one per run, flushed at once so an interrupted benchmark keeps what it measured;
 *   - a report never mixes a CSV file that has another header (refused at create);
 *   - "not applicable" is "-" in both the CSV and the table;
 *   - the table has one line per (workload, threads, engine), in the order first seen; its
 *     ratio column is the ratio of medians against the baseline engine of the same workload
 *     and thread count, "-" when the baseline has no run there; beside it the per-run
 *     ratios (run r against the baseline's run r of the same cell: median and min–max);
 *     optional columns appear only when some row has a value for them;
 *   - CSV columns are only ever appended at the end (engine_order and settle_seconds came
 *     after peak_rss_bytes), so a parser of the older prefix still reads its fields;
 *   - the progress line appears only when stderr is a terminal and stdout is not a pipe.
 * Single-threaded: reports are filled between measurements, by the main thread.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- report ------------------------------------------------------------------------------ */

const char pbox_bench_csv_header[] =
	"program,engine,workload,threads,keys,value_size,budget_bytes,run,ops,seconds,"
	"ops_per_sec,p50_us,p99_us,cpu_us_per_op,peak_rss_bytes,engine_order,settle_seconds";

void pbox_bench_row_init(pbox_bench_row *r)
{
	memset(r, 0, sizeof(*r));
	r->engine = "-";
	r->workload = "-";
	r->keys = r->value_size = r->budget_bytes = PBOX_BENCH_NA;
	r->run = 1;
	r->p50_us = r->p99_us = r->cpu_us_per_op = -1;
	r->peak_rss_bytes = PBOX_BENCH_NA;
	r->engine_order = PBOX_BENCH_NA;
	r->settle_s = -1;
	r->note = NULL;
}

struct stored_row {
	pbox_bench_row r;
	char *engine, *workload, *note; /* owned copies; r.engine / r.workload / r.note point
					   here (note may be NULL) */
};

struct pbox_bench_report {
	char *program;
	char *baseline; /* NULL: no ratio column */
	FILE *csv;	/* NULL: no CSV */
	struct stored_row *rows;
	size_t n, cap;
};

/* Returns 0 if the file is new/empty (header written) or starts with our header. */
static int csv_check_or_write_header(FILE *f, const char *path)
{
	struct stat st;
	if (fstat(fileno(f), &st) != 0)
		return -errno;
	if (st.st_size == 0) {
		if (fprintf(f, "%s\n", pbox_bench_csv_header) < 0 || fflush(f) != 0)
			return -EIO;
		return 0;
	}
	FILE *r = fopen(path, "r");
	if (!r)
		return -errno;
	char line[512];
	int rc = 0;
	if (!fgets(line, sizeof(line), r)) {
		rc = -EIO;
	} else {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, pbox_bench_csv_header) != 0) {
			fprintf(stderr,
				"error: %s exists with a different CSV header; refusing to mix "
				"rows.\n  found:    %s\n  expected: %s\n",
				path, line, pbox_bench_csv_header);
			rc = -EINVAL;
		}
	}
	fclose(r);
	return rc;
}

int pbox_bench_report_create(pbox_bench_report **out, const char *program,
			     const char *csv_path, const char *baseline_engine)
{
	pbox_bench_report *rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	rep->program = strdup(program);
	rep->baseline = baseline_engine ? strdup(baseline_engine) : NULL;
	if (!rep->program || (baseline_engine && !rep->baseline)) {
		pbox_bench_report_destroy(rep);
		return -ENOMEM;
	}
	if (csv_path) {
		rep->csv = fopen(csv_path, "a");
		if (!rep->csv) {
			int rc = -errno;
			fprintf(stderr, "error: cannot open %s: %s\n", csv_path, strerror(-rc));
			pbox_bench_report_destroy(rep);
			return rc;
		}
		int rc = csv_check_or_write_header(rep->csv, csv_path);
		if (rc != 0) {
			pbox_bench_report_destroy(rep);
			return rc;
		}
	}
	*out = rep;
	return 0;
}

static void csv_int(FILE *f, int64_t v)
{
	if (v < 0)
		fputs(",-", f);
	else
		fprintf(f, ",%" PRId64, v);
}

/* A fixed-point field with `prec` decimals, or with prec < 0 six significant digits. */
static void csv_double(FILE *f, double v, int prec)
{
	fputc(',', f);
	if (v < 0 || !isfinite(v))
		fputc('-', f);
	else if (prec >= 0)
		fprintf(f, "%.*f", prec, v);
	else
		fprintf(f, "%.6g", v);
}

/* CSV fields are our own identifiers; anything with a comma or quote would be quoted. */
static void csv_text(FILE *f, const char *s, bool first)
{
	if (!first)
		fputc(',', f);
	if (strpbrk(s, ",\"\n")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

static double row_ops_per_sec(const pbox_bench_row *r)
{
	return r->seconds > 0 ? (double)r->ops / r->seconds : 0;
}

int pbox_bench_report_add(pbox_bench_report *rep, const pbox_bench_row *row)
{
	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 32;
		struct stored_row *nr = realloc(rep->rows, cap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rep->rows = nr;
		rep->cap = cap;
	}
	struct stored_row *s = &rep->rows[rep->n];
	s->r = *row;
	s->engine = strdup(row->engine ? row->engine : "-");
	s->workload = strdup(row->workload ? row->workload : "-");
	s->note = row->note ? strdup(row->note) : NULL;
	if (!s->engine || !s->workload || (row->note && !s->note)) {
		free(s->engine);
		free(s->workload);
		free(s->note);
		return -ENOMEM;
	}
	s->r.engine = s->engine;
	s->r.workload = s->workload;
	s->r.note = s->note;
	rep->n++;

	if (rep->csv) {
		FILE *f = rep->csv;
		csv_text(f, rep->program, true);
		csv_text(f, s->engine, false);
		csv_text(f, s->workload, false);
		fprintf(f, ",%u", row->threads);
		csv_int(f, row->keys);
		csv_int(f, row->value_size);
		csv_int(f, row->budget_bytes);
		fprintf(f, ",%u,%" PRIu64 ",%.6f", row->run, row->ops, row->seconds);
		csv_double(f, row_ops_per_sec(row), 1);
		csv_double(f, row->p50_us, 3);
		csv_double(f, row->p99_us, 3);
		csv_double(f, row->cpu_us_per_op, -1);
		csv_int(f, row->peak_rss_bytes);
		csv_int(f, row->engine_order);
		csv_double(f, row->settle_s, 6);
		fputc('\n', f);
		if (fflush(f) != 0 || ferror(f))
			return -EIO;
	}
	return 0;
}

/* 3 significant digits with an SI suffix: "45.2 M". */
static void fmt_si(char *buf, size_t n, double v)
{
	static const char *const suffix[] = { "", " k", " M", " G", " T" };
	unsigned i = 0;
	while (fabs(v) >= 999.5 && i + 1 < sizeof(suffix) / sizeof(suffix[0])) {
		v /= 1000;
		i++;
	}
	snprintf(buf, n, "%.3g%s", v, suffix[i]);
}

/* One table line: the runs of one (workload, threads, engine). */
struct group {
	const char *workload, *engine;
	unsigned threads;
	size_t nruns;
	pbox_bench_summary ops, cpu, p50, p99;
	int64_t rss_max;
	int64_t keys, value_size, budget;
};

static bool same_cell(const pbox_bench_row *a, const char *workload, unsigned threads,
		      const char *engine)
{
	return a->threads == threads && strcmp(a->workload, workload) == 0 &&
	       (!engine || strcmp(a->engine, engine) == 0);
}

/* Summaries over the runs of a cell; fields with a negative ("n/a") value are skipped. */
static void summarize_cell(const pbox_bench_report *rep, struct group *g)
{
	double *ops = malloc(rep->n * sizeof(double) * 4);
	if (!ops) {
		g->nruns = 0;
		return;
	}
	double *cpu = ops + rep->n, *p50 = cpu + rep->n, *p99 = p50 + rep->n;
	size_t n = 0, ncpu = 0, n50 = 0, n99 = 0;
	g->rss_max = PBOX_BENCH_NA;
	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		if (!same_cell(r, g->workload, g->threads, g->engine))
			continue;
		ops[n++] = row_ops_per_sec(r);
		if (r->cpu_us_per_op >= 0)
			cpu[ncpu++] = r->cpu_us_per_op;
		if (r->p50_us >= 0)
			p50[n50++] = r->p50_us;
		if (r->p99_us >= 0)
			p99[n99++] = r->p99_us;
		if (r->peak_rss_bytes > g->rss_max)
			g->rss_max = r->peak_rss_bytes;
		g->keys = r->keys;
		g->value_size = r->value_size;
		g->budget = r->budget_bytes;
	}
	g->nruns = n;
	g->ops = pbox_bench_summarize(ops, n);
	g->cpu = pbox_bench_summarize(cpu, ncpu);
	g->p50 = pbox_bench_summarize(p50, n50);
	g->p99 = pbox_bench_summarize(p99, n99);
	free(ops);
}

/* The per-run ratios of cell g against the baseline: for each run of g, its ops/s over the
 * baseline's ops/s in the run with the same index (same workload and thread count); runs
 * without a baseline run of that index are skipped. n = 0 if there is none. */
static pbox_bench_summary per_run_ratio(const pbox_bench_report *rep, const struct group *g)
{
	pbox_bench_summary none = { 0 };
	double *v = malloc((rep->n ? rep->n : 1) * sizeof(double));
	if (!v)
		return none;
	size_t n = 0;
	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		if (!same_cell(r, g->workload, g->threads, g->engine))
			continue;
		for (size_t j = 0; j < rep->n; j++) {
			const pbox_bench_row *b = &rep->rows[j].r;
			if (b->run != r->run || !same_cell(b, g->workload, g->threads, rep->baseline))
				continue;
			double bo = row_ops_per_sec(b);
			if (bo > 0)
				v[n++] = row_ops_per_sec(r) / bo;
			break;
		}
	}
	pbox_bench_summary s = n ? pbox_bench_summarize(v, n) : none;
	free(v);
	return s;
}

static void md_int(FILE *out, int64_t v)
{
	if (v >= 0)
		fprintf(out, " %" PRId64 " |", v);
	else
		fputs(" - |", out);
}

/* `prec` decimals, or with prec < 0 four significant digits; negative values are "-". */
static void md_double(FILE *out, double v, int prec)
{
	if (v < 0 || !isfinite(v))
		fputs(" - |", out);
	else if (prec >= 0)
		fprintf(out, " %.*f |", prec, v);
	else
		fprintf(out, " %.4g |", v);
}

void pbox_bench_report_print(const pbox_bench_report *rep, FILE *out)
{
	bool any_keys = false, any_vsize = false, any_budget = false, any_cpu = false;
	bool any_p50 = false, any_p99 = false, any_rss = false, any_note = false;
	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		any_note |= r->note != NULL;
		any_keys |= r->keys >= 0;
		any_vsize |= r->value_size >= 0;
		any_budget |= r->budget_bytes >= 0;
		any_cpu |= r->cpu_us_per_op >= 0;
		any_p50 |= r->p50_us >= 0;
		any_p99 |= r->p99_us >= 0;
		any_rss |= r->peak_rss_bytes >= 0;
	}

	fprintf(out, "| workload | threads |");
	if (any_keys)
		fprintf(out, " keys |");
	if (any_vsize)
		fprintf(out, " value size |");
	if (any_budget)
		fprintf(out, " budget |");
	fprintf(out, " engine |");
	if (any_note)
		fprintf(out, " note |");
	fprintf(out, " runs | ops/s (median) | ops/s (min–max) |");
	if (rep->baseline)
		fprintf(out, " vs %s | vs %s per run: median (min–max) |", rep->baseline,
			rep->baseline);
	if (any_p50)
		fprintf(out, " p50 µs |");
	if (any_p99)
		fprintf(out, " p99 µs |");
	if (any_cpu)
		fprintf(out, " CPU µs/op |");
	if (any_rss)
		fprintf(out, " peak RSS MiB |");
	fprintf(out, "\n|---|---:|");
	if (any_keys)
		fprintf(out, "---:|");
	if (any_vsize)
		fprintf(out, "---:|");
	if (any_budget)
		fprintf(out, "---:|");
	fprintf(out, "---|");
	if (any_note)
		fprintf(out, "---|");
	fprintf(out, "---:|---:|---:|");
	if (rep->baseline)
		fprintf(out, "---:|---:|");
	if (any_p50)
		fprintf(out, "---:|");
	if (any_p99)
		fprintf(out, "---:|");
	if (any_cpu)
		fprintf(out, "---:|");
	if (any_rss)
		fprintf(out, "---:|");
	fputc('\n', out);

	for (size_t i = 0; i < rep->n; i++) {
		const pbox_bench_row *r = &rep->rows[i].r;
		/* Print each (workload, threads, engine) once, at its first run. */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = same_cell(&rep->rows[j].r, r->workload, r->threads, r->engine);
		if (seen)
			continue;
		struct group g = { .workload = r->workload, .engine = r->engine,
				   .threads = r->threads };
		summarize_cell(rep, &g);
		if (g.nruns == 0)
			continue;
		char med[32], lo[32], hi[32];
		fmt_si(med, sizeof(med), g.ops.median);
		fmt_si(lo, sizeof(lo), g.ops.min);
		fmt_si(hi, sizeof(hi), g.ops.max);

		fprintf(out, "| %s | %u |", g.workload, g.threads);
		if (any_keys)
			md_int(out, g.keys);
		if (any_vsize)
			md_int(out, g.value_size);
		if (any_budget)
			md_int(out, g.budget);
		fprintf(out, " %s |", g.engine);
		if (any_note) {
			const char *note = NULL; /* the first run's that has one */
			for (size_t j = i; j < rep->n && !note; j++)
				if (same_cell(&rep->rows[j].r, r->workload, r->threads, r->engine))
					note = rep->rows[j].r.note;
			fprintf(out, " %s |", note ? note : "-");
		}
		fprintf(out, " %zu | %s | %s – %s |", g.nruns, med, lo, hi);
		if (rep->baseline) {
			struct group b = { .workload = r->workload, .engine = rep->baseline,
					   .threads = r->threads };
			summarize_cell(rep, &b);
			if (b.nruns > 0 && b.ops.median > 0)
				fprintf(out, " %.2fx |", g.ops.median / b.ops.median);
			else
				fprintf(out, " - |");
			pbox_bench_summary pr = per_run_ratio(rep, &g);
			if (pr.n)
				fprintf(out, " %.2fx (%.2f–%.2fx) |", pr.median, pr.min, pr.max);
			else
				fprintf(out, " - |");
		}
		if (any_p50)
			md_double(out, g.p50.n ? g.p50.median : -1, 2);
		if (any_p99)
			md_double(out, g.p99.n ? g.p99.median : -1, 2);
		if (any_cpu)
			md_double(out, g.cpu.n ? g.cpu.median : -1, -1);
		if (any_rss)
			md_double(out, g.rss_max >= 0 ? (double)g.rss_max / 1048576.0 : -1, 1);
		fputc('\n', out);
	}
}

void pbox_bench_report_destroy(pbox_bench_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->rows[i].engine);
		free(rep->rows[i].workload);
		free(rep->rows[i].note);
	}
	free(rep->rows);
	if (rep->csv)
		fclose(rep->csv);
	free(rep->program);
	free(rep->baseline);
	free(rep);
}

/* ---- progress line -------------------------------------------------------------------- */

static int progress_enabled = -1; /* -1 unknown; main thread only */
static bool progress_shown;

static bool progress_ok(void)
{
	if (progress_enabled < 0) {
		struct stat st;
		bool stdout_pipe = fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
		progress_enabled = isatty(STDERR_FILENO) && !stdout_pipe;
	}
	return progress_enabled == 1;
}

void pbox_bench_progress(const char *fmt, ...)
{
	if (!progress_ok())
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("\r\033[K", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = true;
}

void pbox_bench_progress_done(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = false;
	}
}
