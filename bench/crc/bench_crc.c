/*
 * pbox-bench-crc — CRC32C throughput on 4 KiB pages: pagebox's pbox_crc32c (SSE4.2 with
 * three interleaved chains where the CPU has it) against the byte-at-a-time table-driven
 * version, and the portable slicing-by-8 fallback, all in the same run.
 *
 * Each thread checksums its own 64 pages (256 KiB, cache resident) round-robin, so the figure
 * is the instruction path's, not memory's. Workload name: crc32c-4k (bench/README.md,
 * "Conventions").
 */
#include <pbox/crc32c.h>
#include <pbox/types.h>

#include "bench_util.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 4096
#define NPAGES 64

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

typedef struct ctx {
	crc_fn fn;
	unsigned char *pages[PBOX_BENCH_MAX_THREADS];
	uint64_t ops[PBOX_BENCH_MAX_THREADS];
	uint32_t sink[PBOX_BENCH_MAX_THREADS];
} ctx;

static void worker(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	const unsigned char *p = c->pages[tid];
	uint64_t n = 0;
	uint32_t acc = 0;
	while (!pbox_bench_stopped(stop)) {
		for (int i = 0; i < 64; i++) /* check the flag every 64 pages */
			acc ^= c->fn(0, p + (size_t)((n + (uint64_t)i) % NPAGES) * PAGE, PAGE);
		n += 64;
	}
	c->ops[tid] = n;
	c->sink[tid] = acc;
}

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, "pbox-bench-crc",
			       "CRC32C of 4 KiB pages: pagebox against a table-driven CRC", 1.0, "1");
	cfg.usage_extra = "Engines: pagebox (pbox_crc32c), portable (slicing-by-8 fallback), "
			  "table (byte-at-a-time baseline).\nWorkload: crc32c-4k.\n";
	int pr = pbox_bench_parse_args(&cfg, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;

	static ctx c;
	for (unsigned t = 0; t < PBOX_BENCH_MAX_THREADS; t++) {
		c.pages[t] = aligned_alloc(4096, (size_t)NPAGES * PAGE);
		if (!c.pages[t]) {
			fprintf(stderr, "pbox-bench-crc: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < (size_t)NPAGES * PAGE; i++)
			c.pages[t][i] = (unsigned char)(i * 131 + t);
	}
	pbox_bench_report *rep;
	if (pbox_bench_report_create(&rep, cfg.program, cfg.csv, "table"))
		return 2;
	static const struct {
		const char *name;
		crc_fn fn;
	} engines[] = { { "pagebox", pbox_crc32c },
			{ "portable", pbox_crc32c_portable },
			{ "table", pbox_crc32c_bytewise } };
	printf("pbox-bench-crc: pbox_crc32c uses %s\n\n", pbox_crc32c_impl());
	for (size_t ti = 0; ti < cfg.nthreads; ti++) {
		unsigned nt = cfg.threads[ti];
		for (unsigned run = 1; run <= cfg.runs; run++) {
			for (size_t e = 0; e < PBOX_ARRAY_LEN(engines); e++) { /* interleaved */
				pbox_bench_progress("crc32c-4k %s threads=%u run %u/%u", engines[e].name,
						    nt, run, cfg.runs);
				c.fn = engines[e].fn;
				memset(c.ops, 0, sizeof(c.ops));
				pbox_bench_timing tm;
				if (pbox_bench_run_threads(nt, cfg.seconds, worker, &c, &tm)) {
					fprintf(stderr, "pbox-bench-crc: cannot start threads\n");
					return 1;
				}
				pbox_bench_row row;
				pbox_bench_row_init(&row);
				row.engine = engines[e].name;
				row.workload = "crc32c-4k";
				row.threads = nt;
				row.value_size = PAGE;
				row.run = run;
				for (unsigned t = 0; t < nt; t++)
					row.ops += c.ops[t];
				row.seconds = tm.seconds;
				row.cpu_us_per_op = row.ops ? (double)tm.cpu_ns / 1e3 / (double)row.ops : -1;
				row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
				pbox_bench_report_add(rep, &row);
			}
		}
	}
	pbox_bench_progress_done();
	pbox_bench_report_print(rep, stdout);
	printf("\n(one op = one 4 KiB page; GiB/s = ops/s / 262144)\n");
	pbox_bench_report_destroy(rep);
	pbox_bench_config_fini(&cfg);
	for (unsigned t = 0; t < PBOX_BENCH_MAX_THREADS; t++)
		free(c.pages[t]);
	return 0;
}
