/*
 * main.c — the tpcc command line: load, run, check, and the one-shot form.
 *
 * Exit codes: 0 success; 1 check found a violated consistency condition; 2 bad arguments
 * (a message names the problem); 3 the store failed (open, I/O, corruption, an incomplete
 * load). Every option is checked against the command it is given to: an option that does
 * not apply is an error, not silently ignored.
 *
 * Threads: the main thread parses, opens the store and hands it to load/run/check, which
 * start their own threads and join them before returning.
 */
#define _GNU_SOURCE
#include "tpcc.h"

#include <pbox/status.h>
#include <pbox/topo.h>

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_VIOLATION 1
#define EXIT_USAGE 2
#define EXIT_STORE 3

static const char usage_text[] =
	"usage:\n"
	"  tpcc load  --dir D --warehouses W [--items N] [--customers N] [--scale-down]\n"
	"             [--threads T] [--budget SIZE] [--seed N]\n"
	"  tpcc run   --dir D [--threads T] [--seconds S] [--durability durable|fast]\n"
	"             [--budget SIZE] [--pin none|compact|scatter] [--runs R] [--seed N]\n"
	"             [--csv F] [--json F]\n"
	"  tpcc check --dir D [--budget SIZE] [--verbose]\n"
	"  tpcc --warehouses W [--threads T] [--seconds S] [--check] [run and load options]\n"
	"  tpcc --help\n"
	"\n"
	"TPC-C (revision 5.11 transactions and mix) on pagebox transactions (snapshot\n"
	"isolation). `load` creates the database in the store directory D, `run` drives it for\n"
	"S seconds (R times), `check` tests consistency conditions 1-9 and 12. The one-shot\n"
	"form loads into a scratch directory (removed afterwards; --dir D keeps it in D), runs,\n"
	"and with --check checks.\n"
	"\n"
	"options:\n"
	"  --dir D              store directory (load creates it)\n"
	"  --warehouses W       warehouses to load, 1..10000\n"
	"  --items N            scale-down: items (and stock rows per warehouse), 100..100000\n"
	"                       (default 100000, the specification's)\n"
	"  --customers N        scale-down: customers and initial orders per district,\n"
	"                       10..3000 (default 3000, the specification's)\n"
	"  --scale-down         shorthand for --items 1000 --customers 300 (for tests)\n"
	"  --threads T          load: loader threads (default min(W, CPUs));\n"
	"                       run: terminal threads, 1..1024 (default 1)\n"
	"  --seconds S          length of a run (default 10; decimals allowed)\n"
	"  --runs R             timed runs one after another (default 1)\n"
	"  --durability MODE    durable: a commit returns once on disk (default);\n"
	"                       fast: once in the log buffer, on disk within about 1 ms\n"
	"  --budget SIZE        buffer pool budget, e.g. 512M (default 256M)\n"
	"  --pin POLICY         pin terminal threads: none (default), compact, scatter\n"
	"  --seed N             random seed (default: from the clock; printed)\n"
	"  --csv F, --json F    also write the results to F\n"
	"  --check              one-shot: run the consistency check after the run\n"
	"  --verbose            check: print every tree's key count\n"
	"\n"
	"exit status: 0 ok, 1 a consistency condition is violated, 2 bad arguments,\n"
	"3 store error (open, I/O, corruption, incomplete load)\n";

enum { C_LOAD = 1, C_RUN = 2, C_CHECK = 4, C_ONESHOT = 8 };

typedef struct opts {
	int cmd;
	const char *dir;
	unsigned warehouses, threads, runs;
	uint32_t items, customers;
	bool threads_set, check, verbose;
	double seconds;
	bool durable;
	uint64_t budget, seed;
	int pin;
	const char *csv, *json;
} opts;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "tpcc: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(tpcc --help for usage)\n");
	return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
	int i = 1;
	if (argc < 2)
		return usage_error("%s", "no command (load, run, check, or --warehouses W)");
	const char *c = argv[1];
	if (!strcmp(c, "load"))
		o->cmd = C_LOAD, i = 2;
	else if (!strcmp(c, "run"))
		o->cmd = C_RUN, i = 2;
	else if (!strcmp(c, "check"))
		o->cmd = C_CHECK, i = 2;
	else if (!strncmp(c, "--", 2))
		o->cmd = C_ONESHOT;
	else
		return usage_error("unknown command '%s'", c);
	bool scale_down = false, items_set = false, cust_set = false;
	for (; i < argc; i++) {
		const char *a = argv[i];
		/* flags without a value */
		if (!strcmp(a, "--check") || !strcmp(a, "--verbose") ||
		    !strcmp(a, "--scale-down")) {
			int ok = !strcmp(a, "--check")     ? C_ONESHOT
				 : !strcmp(a, "--verbose") ? C_CHECK
							   : C_LOAD | C_ONESHOT;
			if (!(ok & o->cmd))
				return usage_error("%s does not apply to this command", a);
			if (!strcmp(a, "--check"))
				o->check = true;
			else if (!strcmp(a, "--verbose"))
				o->verbose = true;
			else
				scale_down = true;
			continue;
		}
		static const struct {
			const char *name;
			int cmds;
		} vopts[] = {
			{"--dir", C_LOAD | C_RUN | C_CHECK | C_ONESHOT},
			{"--warehouses", C_LOAD | C_ONESHOT},
			{"--items", C_LOAD | C_ONESHOT},
			{"--customers", C_LOAD | C_ONESHOT},
			{"--threads", C_LOAD | C_RUN | C_ONESHOT},
			{"--seconds", C_RUN | C_ONESHOT},
			{"--runs", C_RUN | C_ONESHOT},
			{"--durability", C_RUN | C_ONESHOT},
			{"--budget", C_LOAD | C_RUN | C_CHECK | C_ONESHOT},
			{"--pin", C_RUN | C_ONESHOT},
			{"--seed", C_LOAD | C_RUN | C_ONESHOT},
			{"--csv", C_RUN | C_ONESHOT},
			{"--json", C_RUN | C_ONESHOT},
		};
		int which = -1;
		for (unsigned j = 0; j < sizeof(vopts) / sizeof(vopts[0]); j++)
			if (!strcmp(a, vopts[j].name))
				which = (int)j;
		if (which < 0)
			return usage_error("unknown option '%s'", a);
		if (!(vopts[which].cmds & o->cmd))
			return usage_error("%s does not apply to this command", a);
		if (i + 1 >= argc)
			return usage_error("%s needs a value", a);
		const char *v = argv[++i];
		uint64_t n = 0;
		if (!strcmp(a, "--dir")) {
			if (!*v)
				return usage_error("%s", "--dir needs a non-empty path");
			o->dir = v;
		} else if (!strcmp(a, "--warehouses")) {
			if (parse_u64(v, 1, TPCC_MAX_WAREHOUSES, &n))
				return usage_error("bad --warehouses '%s' (1..10000)", v);
			o->warehouses = (unsigned)n;
		} else if (!strcmp(a, "--items")) {
			if (parse_u64(v, TPCC_MIN_ITEMS, TPCC_ITEMS_SPEC, &n))
				return usage_error("bad --items '%s' (100..100000)", v);
			o->items = (uint32_t)n;
			items_set = true;
		} else if (!strcmp(a, "--customers")) {
			if (parse_u64(v, TPCC_MIN_CUSTOMERS, TPCC_CUSTOMERS_SPEC, &n))
				return usage_error("bad --customers '%s' (10..3000)", v);
			o->customers = (uint32_t)n;
			cust_set = true;
		} else if (!strcmp(a, "--threads")) {
			if (parse_u64(v, 1, 1024, &n))
				return usage_error("bad --threads '%s' (1..1024)", v);
			o->threads = (unsigned)n;
			o->threads_set = true;
		} else if (!strcmp(a, "--seconds")) {
			char *end;
			errno = 0;
			double s = strtod(v, &end);
			if (errno || end == v || *end || !(s > 0) || s > 1e6)
				return usage_error("bad --seconds '%s' (a positive number)", v);
			o->seconds = s;
		} else if (!strcmp(a, "--runs")) {
			if (parse_u64(v, 1, 1000, &n))
				return usage_error("bad --runs '%s' (1..1000)", v);
			o->runs = (unsigned)n;
		} else if (!strcmp(a, "--durability")) {
			if (!strcmp(v, "durable"))
				o->durable = true;
			else if (!strcmp(v, "fast"))
				o->durable = false;
			else
				return usage_error("bad --durability '%s' (durable or fast)", v);
		} else if (!strcmp(a, "--budget")) {
			if (parse_size(v, &o->budget) || o->budget < (1u << 20))
				return usage_error("bad --budget '%s' (a size, at least 1M)", v);
		} else if (!strcmp(a, "--pin")) {
			pbox_pin_policy p;
			if (pbox_pin_policy_parse(v, &p))
				return usage_error("bad --pin '%s' (none, compact or scatter)", v);
			o->pin = (int)p;
		} else if (!strcmp(a, "--seed")) {
			if (parse_u64(v, 0, UINT64_MAX, &n))
				return usage_error("bad --seed '%s' (a non-negative integer)", v);
			o->seed = n;
		} else if (!strcmp(a, "--csv")) {
			o->csv = v;
		} else if (!strcmp(a, "--json")) {
			o->json = v;
		}
	}
	if (scale_down) {
		if (!items_set)
			o->items = 1000;
		if (!cust_set)
			o->customers = 300;
	}
	if (o->cmd != C_ONESHOT && !o->dir)
		return usage_error("%s", "--dir D is required");
	if ((o->cmd & (C_LOAD | C_ONESHOT)) && !o->warehouses)
		return usage_error("%s", "--warehouses W is required");
	return 0;
}

static int open_loaded(const opts *o, tpcc_db *db)
{
	if (tpcc_db_open(o->dir, false, o->budget, db))
		return EXIT_STORE;
	bool loaded = false;
	int rc = tpcc_meta_read(db, &db->sc, &loaded);
	if (rc || !loaded) {
		if (rc == PBOX_ENOTFOUND)
			fprintf(stderr, "tpcc: %s holds no TPC-C database (run `tpcc load`)\n",
				o->dir);
		else if (!rc)
			fprintf(stderr, "tpcc: the load into %s did not finish; load again into "
					"a new directory\n", o->dir);
		else
			fprintf(stderr, "tpcc: read meta: %s\n", pbox_strerror(rc));
		tpcc_db_close(db);
		return EXIT_STORE;
	}
	return 0;
}

static int cmd_load(const opts *o)
{
	tpcc_db db;
	if (tpcc_db_open(o->dir, true, o->budget, &db))
		return EXIT_STORE;
	tpcc_scale sc;
	bool loaded = false;
	int rc = tpcc_meta_read(&db, &sc, &loaded);
	if (rc != PBOX_ENOTFOUND) {
		if (!rc)
			fprintf(stderr, "tpcc load: %s already holds a TPC-C database%s\n", o->dir,
				loaded ? "" : " (an unfinished load)");
		tpcc_db_close(&db);
		return EXIT_STORE;
	}
	sc.warehouses = o->warehouses;
	sc.items = o->items;
	sc.customers = o->customers;
	sc.c_last_load = 0; /* drawn by the loader */
	unsigned threads = o->threads;
	if (!o->threads_set) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cpus < 1 ? 1 : (unsigned)cpus;
		if (threads > o->warehouses)
			threads = o->warehouses;
	}
	rc = tpcc_load(&db, &sc, threads, o->seed, false);
	int crc = tpcc_db_close(&db);
	return rc || crc ? EXIT_STORE : 0;
}

static int cmd_run(const opts *o)
{
	tpcc_db db;
	int e = open_loaded(o, &db);
	if (e)
		return e;
	tpcc_run_opts ro = {.threads = o->threads,
			    .runs = o->runs,
			    .seconds = o->seconds,
			    .durable = o->durable,
			    .pin = o->pin,
			    .seed = o->seed,
			    .csv = o->csv,
			    .json = o->json,
			    .label = o->dir};
	int rc = tpcc_run(&db, &ro);
	int crc = tpcc_db_close(&db);
	return rc || crc ? EXIT_STORE : 0;
}

static int cmd_check(const opts *o)
{
	tpcc_db db;
	int e = open_loaded(o, &db);
	if (e)
		return e;
	tpcc_check_result r;
	uint64_t t0 = tpcc_nanos();
	int rc = tpcc_check(&db, o->verbose, &r);
	tpcc_scale sc = db.sc; /* close clears db */
	int crc = tpcc_db_close(&db);
	if (rc || crc) {
		fprintf(stderr, "tpcc check: %s\n", pbox_strerror(rc ? rc : crc));
		return EXIT_STORE;
	}
	printf("check: %u warehouse%s, %" PRIu64 " orders, %" PRIu64 " order lines, %" PRIu64
	       " new-orders, %" PRIu64 " history rows: %" PRIu64 " violation%s (%.1f s)\n",
	       sc.warehouses, sc.warehouses == 1 ? "" : "s", r.orders, r.order_lines,
	       r.new_orders, r.history, r.violations, r.violations == 1 ? "" : "s",
	       (double)(tpcc_nanos() - t0) / 1e9);
	return r.violations ? EXIT_VIOLATION : 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int cmd_oneshot(opts *o)
{
	char scratch[4096] = "";
	bool keep = o->dir != NULL;
	if (!keep) {
		const char *tmp = getenv("TMPDIR");
		snprintf(scratch, sizeof(scratch), "%s/tpcc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(scratch)) {
			fprintf(stderr, "tpcc: mkdtemp %s: %s\n", scratch, strerror(errno));
			return EXIT_STORE;
		}
		o->dir = scratch;
	}
	opts lo = *o;
	lo.threads_set = false; /* --threads is the run's; the loader uses the CPUs */
	int rc = cmd_load(&lo);
	if (!rc)
		rc = cmd_run(o);
	if (!rc && o->check)
		rc = cmd_check(o);
	if (!keep)
		nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
		    (i == 1 && !strcmp(argv[i], "help"))) {
			fputs(usage_text, stdout);
			return 0;
		}
	opts o = {.threads = 1,
		  .runs = 1,
		  .seconds = 10,
		  .durable = true,
		  .items = TPCC_ITEMS_SPEC,
		  .customers = TPCC_CUSTOMERS_SPEC,
		  .pin = PBOX_PIN_NONE};
	o.seed = (uint64_t)tpcc_nanos() ^ ((uint64_t)getpid() << 32);
	int e = parse_args(argc, argv, &o);
	if (e)
		return e;
	switch (o.cmd) {
	case C_LOAD: return cmd_load(&o);
	case C_RUN: return cmd_run(&o);
	case C_CHECK: return cmd_check(&o);
	default: return cmd_oneshot(&o);
	}
}
