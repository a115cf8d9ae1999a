/*
 * bench_util_stats.c — statistics of the benchmark programs: the median and min–max of a
 * set of runs, and the log-linear latency histogram (p50, p99).
 *
 * Invariants:
 *   - a summary never changes its input (it sorts a copy); the median of an even count is
 *     the mean of the two middle values; without memory for the copy the median is NaN
 *     (printed as "-") and min and max are still exact;
 *   - a histogram bucket i holds the values v with pbox_bench_hist_index(v) == i: values
 *     below 32 exactly, above that 32 buckets per power of two; a quantile is the midpoint of
 *     the bucket holding its rank, clamped to the exact [min, max], and the 1.0 quantile is
 *     the exact maximum.
 * A histogram is written by one thread only; merging happens after the workers are joined.
 */
#include "bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- statistics ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

pbox_bench_summary pbox_bench_summarize(const double *v, size_t n)
{
	pbox_bench_summary s = { .n = n };
	if (n == 0)
		return s;
	double *t = malloc(n * sizeof(*t));
	if (!t) {
		/* No memory for a sorted copy: min and max still, median unknown. */
		s.min = s.max = v[0];
		for (size_t i = 1; i < n; i++) {
			s.min = fmin(s.min, v[i]);
			s.max = fmax(s.max, v[i]);
		}
		s.median = NAN;
		return s;
	}
	memcpy(t, v, n * sizeof(*t));
	qsort(t, n, sizeof(*t), cmp_double);
	s.min = t[0];
	s.max = t[n - 1];
	s.median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return s;
}

void pbox_bench_hist_init(pbox_bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void pbox_bench_hist_merge(pbox_bench_hist *dst, const pbox_bench_hist *src)
{
	for (unsigned i = 0; i < PBOX_BENCH_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Smallest value of bucket i and the bucket's width. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
	if (i < PBOX_BENCH_HIST_SUB) {
		*lo = i;
		*width = 1;
		return;
	}
	unsigned shift = (i >> PBOX_BENCH_HIST_SUB_BITS) - 1u;
	uint64_t mant = (uint64_t)(i & (PBOX_BENCH_HIST_SUB - 1u)) + PBOX_BENCH_HIST_SUB;
	*lo = mant << shift;
	*width = (uint64_t)1 << shift;
}

uint64_t pbox_bench_hist_quantile(const pbox_bench_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* rank: the smallest value with at least ceil(q * count) values at or below it */
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	if (rank >= h->count)
		return h->max; /* the largest value is known exactly */
	uint64_t seen = 0;
	for (unsigned i = 0; i < PBOX_BENCH_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t lo, width;
			bucket_range(i, &lo, &width);
			uint64_t mid = lo + (width - 1) / 2;
			if (mid < h->min)
				mid = h->min;
			if (mid > h->max)
				mid = h->max;
			return mid;
		}
	}
	return h->max;
}
