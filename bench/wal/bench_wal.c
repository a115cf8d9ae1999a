/*
 * pbox-bench-wal — durable commits per second of the write-ahead log for each sync backend
 * and thread count, against the raw limit of one committer: a loop of pwrite + fdatasync of
 * the same record size on a pre-allocated, zero-filled file, measured in the same run. Also
 * non-durable appends per second (backend none).
 *
 * Workloads (names from bench/README.md): commit-<backend> (each thread: append a
 * one-record group, wait until it is durable, repeat), append-none (append only). Engine
 * "pagebox" and, for commit-fdatasync at one thread, "raw-fdatasync".
 */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>
#include <pbox/wal.h>

#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ctx {
	pbox_wal *wal;
	bool durable;
	uint32_t value_size;
	int raw_fd;
	uint64_t ops[PBOX_BENCH_MAX_THREADS];
	int err[PBOX_BENCH_MAX_THREADS];
	pbox_bench_hist *hist; /* one per thread */
} ctx;

static void wal_worker(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	unsigned char rec[65536];
	memset(rec, (int)tid, sizeof(rec));
	pbox_wal_rec r = { .type = 1, .data = rec, .len = c->value_size };
	uint64_t n = 0;
	while (!pbox_bench_stopped(stop)) {
		uint64_t t0 = c->durable ? pbox_bench_now_ns() : 0;
		pbox_lsn end;
		int e = pbox_wal_append(c->wal, &r, 1, &end);
		if (!e && c->durable)
			e = pbox_wal_wait_durable(c->wal, end);
		if (e) {
			c->err[tid] = e;
			break;
		}
		if (c->durable)
			pbox_bench_hist_record(&c->hist[tid], pbox_bench_now_ns() - t0);
		n++;
	}
	c->ops[tid] = n;
}

static void raw_worker(void *arg, unsigned tid, const _Atomic bool *stop)
{
	ctx *c = arg;
	unsigned char rec[65536];
	memset(rec, 7, sizeof(rec));
	uint64_t n = 0, off = 0;
	while (!pbox_bench_stopped(stop)) {
		uint64_t t0 = pbox_bench_now_ns();
		if (pwrite(c->raw_fd, rec, c->value_size, (off_t)off) != (ssize_t)c->value_size ||
		    fdatasync(c->raw_fd) != 0) {
			c->err[tid] = -errno;
			break;
		}
		pbox_bench_hist_record(&c->hist[tid], pbox_bench_now_ns() - t0);
		off += c->value_size;
		n++;
	}
	c->ops[tid] = n;
}

static uint64_t opt_value = 100, opt_segment = 64 << 20;
static pbox_bench_list opt_backends;
static bool opt_no_raw;

static const pbox_bench_option extra[] = {
	{ "value-size", PBOX_BENCH_OPT_SIZE, &opt_value, "B", "record payload bytes (default 100)" },
	{ "backends", PBOX_BENCH_OPT_LIST, &opt_backends, "LIST",
	  "fdatasync,fsync,dsync,io_uring,none (default: all)" },
	{ "segment-size", PBOX_BENCH_OPT_SIZE, &opt_segment, "SIZE", "WAL segment size (default 64M)" },
	{ "no-raw", PBOX_BENCH_OPT_FLAG, &opt_no_raw, NULL, "skip the raw pwrite+fdatasync baseline" },
};

static int one_run(pbox_bench_config *cfg, pbox_bench_report *rep, const char *engine,
		   const char *workload, pbox_wal_sync sync, unsigned nt, unsigned run)
{
	char *dir = NULL;
	int r = pbox_bench_scratch_create(cfg, workload, &dir);
	if (r)
		return r;
	static ctx c;
	static pbox_bench_hist hists[PBOX_BENCH_MAX_THREADS];
	c.hist = hists;
	c.raw_fd = -1;
	memset(c.ops, 0, sizeof(c.ops));
	memset(c.err, 0, sizeof(c.err));
	c.value_size = (uint32_t)opt_value;
	c.durable = strcmp(workload, "append-none") != 0;
	for (unsigned t = 0; t < nt; t++)
		pbox_bench_hist_init(&c.hist[t]);
	bool raw = !strcmp(engine, "raw-fdatasync");
	pbox_bench_worker fn = wal_worker;
	if (raw) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/raw.dat", dir);
		c.raw_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		/* pre-allocated and zero-filled, like a WAL segment */
		static unsigned char z[1 << 20];
		for (uint64_t off = 0; c.raw_fd >= 0 && off < opt_segment; off += sizeof(z))
			if (pwrite(c.raw_fd, z, sizeof(z), (off_t)off) != (ssize_t)sizeof(z))
				r = -errno;
		if (c.raw_fd < 0 || r || fdatasync(c.raw_fd)) {
			fprintf(stderr, "pbox-bench-wal: cannot prepare %s\n", path);
			r = -EIO;
			goto out;
		}
		fn = raw_worker;
	} else {
		pbox_wal_options o;
		pbox_wal_options_init(&o);
		o.segment_size = opt_segment;
		o.sync = sync;
		o.create = true;
		if ((r = pbox_wal_open(dir, &o, &c.wal))) {
			fprintf(stderr, "pbox-bench-wal: %s: open: %s\n", workload, pbox_strerror(r));
			goto out;
		}
	}
	pbox_bench_timing tm;
	if ((r = pbox_bench_run_threads(nt, cfg->seconds, fn, &c, &tm)))
		goto out;
	pbox_bench_row row;
	pbox_bench_row_init(&row);
	row.engine = engine;
	row.workload = workload;
	row.threads = nt;
	row.value_size = (int64_t)opt_value;
	row.run = run;
	pbox_bench_hist all;
	pbox_bench_hist_init(&all);
	for (unsigned t = 0; t < nt; t++) {
		row.ops += c.ops[t];
		pbox_bench_hist_merge(&all, &c.hist[t]);
		if (c.err[t] && !r)
			r = c.err[t];
	}
	if (r) {
		fprintf(stderr, "pbox-bench-wal: %s %s: %s\n", engine, workload, pbox_strerror(r));
		goto out;
	}
	row.seconds = tm.seconds;
	row.cpu_us_per_op = row.ops ? (double)tm.cpu_ns / 1e3 / (double)row.ops : -1;
	if (all.count) {
		row.p50_us = (double)pbox_bench_hist_quantile(&all, 0.5) / 1e3;
		row.p99_us = (double)pbox_bench_hist_quantile(&all, 0.99) / 1e3;
	}
	row.peak_rss_bytes = pbox_bench_peak_rss_bytes();
	if (c.wal && !raw) {
		pbox_wal_info info;
		pbox_wal_get_info(c.wal, &info);
		if (c.durable && info.syncs)
			fprintf(stderr, "  %s threads=%u: %.1f commits per sync (p50 %llu, p99 %llu groups), sync p50 %llu us\n",
				workload, nt, (double)row.ops / (double)info.syncs,
				(unsigned long long)info.group_commit_p50,
				(unsigned long long)info.group_commit_p99,
				(unsigned long long)info.sync_us_p50);
	}
	pbox_bench_report_add(rep, &row);
out:
	if (c.wal) {
		int cr = pbox_wal_close(c.wal);
		if (!r)
			r = cr;
		c.wal = NULL;
	}
	if (raw && c.raw_fd >= 0)
		close(c.raw_fd);
	pbox_bench_scratch_remove(dir);
	return r;
}

int main(int argc, char **argv)
{
	pbox_bench_config cfg;
	pbox_bench_config_init(&cfg, "pbox-bench-wal",
			       "WAL durable commits/s per backend and thread count, and non-durable appends/s",
			       2.0, "1,2,4,8,16,32");
	cfg.extra = extra;
	cfg.nextra = PBOX_ARRAY_LEN(extra);
	cfg.usage_extra =
		"Workloads: commit-<backend> (append + wait_durable per op), append-none (append only,\n"
		"1 and 2 threads). Baseline: raw-fdatasync (pwrite + fdatasync loop, one thread).\n";
	int pr = pbox_bench_parse_args(&cfg, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;
	if (opt_value == 0 || opt_value > 65536) {
		fprintf(stderr, "pbox-bench-wal: --value-size must be 1..65536\n");
		return 2;
	}
	pbox_bench_report *rep;
	if (pbox_bench_report_create(&rep, cfg.program, cfg.csv, "raw-fdatasync"))
		return 2;
	static const pbox_wal_sync order[] = { PBOX_WAL_SYNC_FDATASYNC, PBOX_WAL_SYNC_FSYNC,
					       PBOX_WAL_SYNC_DSYNC, PBOX_WAL_SYNC_IO_URING,
					       PBOX_WAL_SYNC_NONE };
	int status = 0;
	for (size_t b = 0; b < PBOX_ARRAY_LEN(order); b++) {
		const char *bn = pbox_wal_sync_name(order[b]);
		if (opt_backends.n && !pbox_bench_list_has(&opt_backends, bn))
			continue;
		char workload[64];
		bool none = order[b] == PBOX_WAL_SYNC_NONE;
		snprintf(workload, sizeof(workload), none ? "append-none" : "commit-%s", bn);
		for (size_t ti = 0; ti < cfg.nthreads; ti++) {
			unsigned nt = cfg.threads[ti];
			if (none && nt > 2 && !cfg.threads_set)
				continue;
			for (unsigned run = 1; run <= cfg.runs; run++) {
				pbox_bench_progress("%s threads=%u run %u/%u", workload, nt, run, cfg.runs);
				if (order[b] == PBOX_WAL_SYNC_FDATASYNC && nt == 1 && !opt_no_raw &&
				    one_run(&cfg, rep, "raw-fdatasync", workload, order[b], 1, run))
					status = 1;
				if (one_run(&cfg, rep, "pagebox", workload, order[b], nt, run))
					status = 1;
			}
		}
	}
	pbox_bench_progress_done();
	pbox_bench_report_print(rep, stdout);
	pbox_bench_report_destroy(rep);
	pbox_bench_config_fini(&cfg);
	return status;
}
