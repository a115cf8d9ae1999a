/*
 * pbox/metrics.h — counters and log2 histograms for library metrics.
 *
 * Libraries keep their metrics in these types and update them with the PBOX_M_* macros,
 * which compile to nothing when the build has PBOX_METRICS=0. Updates are relaxed atomic
 * adds: metrics are statistics, never used for synchronisation. Readers may see a counter
 * and a histogram from slightly different instants.
 *
 * Histogram bucket b (0..63) counts values v with 2^(b-1) <= v < 2^b (bucket 0: v == 0).
 */
#ifndef PBOX_METRICS_H
#define PBOX_METRICS_H

#include <pbox/types.h>

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PBOX_HIST_BUCKETS 64

typedef struct pbox_hist {
	_Atomic uint64_t bucket[PBOX_HIST_BUCKETS];
	_Atomic uint64_t count;
	_Atomic uint64_t sum;
	_Atomic uint64_t max;
} pbox_hist;

static inline unsigned pbox_hist_bucket_of(uint64_t v)
{
	return v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
}

static inline void pbox_hist_add(pbox_hist *h, uint64_t v)
{
	unsigned b = pbox_hist_bucket_of(v);
	atomic_fetch_add_explicit(&h->bucket[b < PBOX_HIST_BUCKETS ? b : PBOX_HIST_BUCKETS - 1], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (v > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, v, memory_order_relaxed,
							       memory_order_relaxed))
		;
}

/* A plain snapshot of a histogram, for reporting. */
typedef struct pbox_hist_snap {
	uint64_t bucket[PBOX_HIST_BUCKETS];
	uint64_t count, sum, max;
} pbox_hist_snap;

void pbox_hist_snapshot(const pbox_hist *h, pbox_hist_snap *out);
/* Upper bound of the bucket holding the q-quantile (0 < q <= 1); 0 for an empty histogram. */
uint64_t pbox_hist_quantile(const pbox_hist_snap *s, double q);

#if PBOX_METRICS
#define PBOX_M_ADD(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)
#define PBOX_M_HIST(hist, v) pbox_hist_add(&(hist), (v))
#else
/* Not evaluated (sizeof), but referenced, so variables used only for metrics do not
 * warn as unused. Guard expensive measurements with #if PBOX_METRICS. */
#define PBOX_M_ADD(counter, n) ((void)sizeof(counter), (void)sizeof(n))
#define PBOX_M_HIST(hist, v) ((void)sizeof(hist), (void)sizeof(v))
#endif

#ifdef __cplusplus
}
#endif
#endif
