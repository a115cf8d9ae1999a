/*
 * bench_util_options.c — the command line of every pagebox benchmark program: the common
 * options (--runs, --seconds, --threads, --dir, --csv, --quick, --help), the program's own
 * options declared as a table (pbox_bench_option), and the --help text.
 *
 * Rules (bench/README.md, "Conventions"):
 *   - options are "--name VALUE" or "--name=VALUE"; flags take no value; anything else on
 *     the command line is a usage error (message on stderr, parse returns -1: exit 2);
 *   - a value given on the command line replaces the program's default; a LIST value
 *     replaces a default list and its storage is freed by pbox_bench_config_fini;
 *   - --quick is applied after every option is read: one run of quick_seconds, unless
 *     --runs or --seconds was given explicitly;
 *   - parsing never writes an out-parameter on failure.
 * Single-threaded (called from main before any benchmark thread exists).
 */
#define _GNU_SOURCE
#include "bench_util.h"
#include "bench_util_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ------------------------------------------------------------------------- */

bool pbox_bench_list_has(const pbox_bench_list *l, const char *word)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->item[i], word) == 0)
			return true;
	return false;
}

int pbox_bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int pbox_bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end != '\0') {
		end++;
		/* accept "64M", "64MB", "64MiB" */
		if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int pbox_bench_parse_threads(const char *s, unsigned *out, size_t max, size_t *n)
{
	size_t count = 0;
	const char *p = s;
	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		char *end;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (errno != 0 || v == 0 || v > 4096 || count == max)
			return -EINVAL;
		out[count++] = (unsigned)v;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -EINVAL;
		p = end + 1;
	}
	*n = count;
	return 0;
}

int pbox_bench_parse_list(const char *s, pbox_bench_list *out)
{
	pbox_bench_list l = { 0 };
	if (!s || !*s)
		return -EINVAL;
	l.storage = strdup(s);
	if (!l.storage)
		return -ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(l.storage, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (l.n == PBOX_BENCH_MAX_LIST) {
			free(l.storage);
			return -EINVAL;
		}
		l.item[l.n++] = tok;
	}
	if (l.n == 0) {
		free(l.storage);
		return -EINVAL;
	}
	*out = l;
	return 0;
}

void pbox_bench_config_init(pbox_bench_config *c, const char *program, const char *summary,
			    double default_seconds, const char *default_threads)
{
	memset(c, 0, sizeof(*c));
	c->program = program;
	c->summary = summary;
	c->runs = 3;
	c->seconds = default_seconds;
	c->quick_seconds = 0.2;
	if (pbox_bench_parse_threads(default_threads, c->threads, PBOX_BENCH_MAX_THREADS,
				     &c->nthreads) != 0) {
		c->threads[0] = 1;
		c->nthreads = 1;
	}
}

void pbox_bench_config_fini(pbox_bench_config *c)
{
	for (size_t i = 0; i < c->nextra; i++) {
		if (c->extra[i].kind == PBOX_BENCH_OPT_LIST) {
			pbox_bench_list *l = c->extra[i].dest;
			free(l->storage);
			memset(l, 0, sizeof(*l));
		}
	}
}

void pbox_bench_usage(const pbox_bench_config *c, FILE *out)
{
	fprintf(out, "usage: %s [options]\n", c->program);
	if (c->summary)
		fprintf(out, "%s\n", c->summary);
	fprintf(out,
		"\nCommon options (bench/README.md, \"Conventions\"):\n"
		"  --runs R           runs per measurement; tables show median and min-max "
		"(default %u)\n"
		"  --seconds S        seconds per run (default %g)\n"
		"  --threads LIST     comma-separated thread counts (default ",
		c->runs, c->seconds);
	for (size_t i = 0; i < c->nthreads; i++)
		fprintf(out, "%s%u", i ? "," : "", c->threads[i]);
	fprintf(out,
		")\n"
		"  --dir DIR          parent of the scratch directory (default %s); the scratch\n"
		"                     directory is removed afterwards\n"
		"  --csv FILE         append one CSV row per run to FILE\n"
		"  --quick            smoke test: 1 run of %g s (unless --runs/--seconds given)\n"
		"  --help             this text\n",
		pbox__bench_default_tmp(), c->quick_seconds);
	if (c->nextra) {
		fprintf(out, "\nProgram options:\n");
		for (size_t i = 0; i < c->nextra; i++) {
			const pbox_bench_option *o = &c->extra[i];
			char left[64];
			if (o->kind == PBOX_BENCH_OPT_FLAG)
				snprintf(left, sizeof(left), "--%s", o->name);
			else
				snprintf(left, sizeof(left), "--%s %s", o->name,
					 o->metavar ? o->metavar : "VALUE");
			fprintf(out, "  %-18s %s\n", left, o->help ? o->help : "");
		}
	}
	if (c->usage_extra)
		fprintf(out, "\n%s\n", c->usage_extra);
}

static int usage_error(const pbox_bench_config *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const pbox_bench_config *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", c->program);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	return -1;
}

static int set_extra(pbox_bench_config *c, const pbox_bench_option *o, const char *val)
{
	int rc = 0;
	switch (o->kind) {
	case PBOX_BENCH_OPT_FLAG:
		*(bool *)o->dest = true;
		break;
	case PBOX_BENCH_OPT_UINT:
		rc = pbox_bench_parse_u64(val, o->dest);
		break;
	case PBOX_BENCH_OPT_SIZE:
		rc = pbox_bench_parse_size(val, o->dest);
		break;
	case PBOX_BENCH_OPT_DOUBLE: {
		char *end;
		errno = 0;
		double d = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || !isfinite(d))
			rc = -EINVAL;
		else
			*(double *)o->dest = d;
		break;
	}
	case PBOX_BENCH_OPT_STRING:
		*(const char **)o->dest = val;
		break;
	case PBOX_BENCH_OPT_LIST: {
		pbox_bench_list l;
		rc = pbox_bench_parse_list(val, &l);
		if (rc == 0) {
			pbox_bench_list *dst = o->dest;
			free(dst->storage);
			*dst = l;
		}
		break;
	}
	}
	if (rc != 0)
		return usage_error(c, "bad value for --%s", o->name);
	return 0;
}

int pbox_bench_parse_args(pbox_bench_config *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0)
			return usage_error(c, "unexpected argument '%s'", arg);
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const char *inline_val = eq ? eq + 1 : NULL;
		bool flag = false;

#define IS(opt) (len == strlen(opt) && strncmp(name, opt, len) == 0)
		if (IS("help")) {
			pbox_bench_usage(c, stdout);
			return 1;
		}
		if (IS("quick")) {
			flag = true;
			c->quick = true;
		}
		const pbox_bench_option *extra = NULL;
		for (size_t k = 0; k < c->nextra && !flag; k++) {
			if (IS(c->extra[k].name)) {
				extra = &c->extra[k];
				flag = extra->kind == PBOX_BENCH_OPT_FLAG;
			}
		}
		if (flag) {
			if (inline_val)
				return usage_error(c, "option '%s' takes no value", arg);
			if (extra)
				(void)set_extra(c, extra, NULL);
			continue;
		}
		if (!extra && !IS("runs") && !IS("seconds") && !IS("threads") && !IS("dir") &&
		    !IS("csv"))
			return usage_error(c, "unknown option '%s'", arg);
		const char *val = inline_val;
		if (!val) {
			if (i + 1 >= argc)
				return usage_error(c, "option '%s' needs a value", arg);
			val = argv[++i];
		}
		if (extra) {
			if (set_extra(c, extra, val) != 0)
				return -1;
		} else if (IS("runs")) {
			uint64_t v;
			if (pbox_bench_parse_u64(val, &v) != 0 || v == 0 || v > 1000)
				return usage_error(c, "bad --runs '%s' (1..1000)", val);
			c->runs = (unsigned)v;
			c->runs_set = true;
		} else if (IS("seconds")) {
			char *end;
			errno = 0;
			double d = strtod(val, &end);
			if (errno != 0 || end == val || *end != '\0' || !(d > 0) || !isfinite(d))
				return usage_error(c, "bad --seconds '%s' (a positive number)", val);
			c->seconds = d;
			c->seconds_set = true;
		} else if (IS("threads")) {
			if (pbox_bench_parse_threads(val, c->threads, PBOX_BENCH_MAX_THREADS,
						     &c->nthreads) != 0)
				return usage_error(c, "bad --threads '%s' (e.g. 1,2,4)", val);
			c->threads_set = true;
		} else if (IS("dir")) {
			c->dir = val;
		} else {
			c->csv = val;
		}
#undef IS
	}
	if (c->quick) {
		if (!c->runs_set)
			c->runs = 1;
		if (!c->seconds_set)
			c->seconds = c->quick_seconds;
	}
	return 0;
}
