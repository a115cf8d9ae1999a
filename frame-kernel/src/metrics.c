/* metrics.c — histogram snapshots and quantiles (see pbox/metrics.h). */
#include <pbox/metrics.h>

void pbox_hist_snapshot(const pbox_hist *h, pbox_hist_snap *out)
{
	for (int i = 0; i < PBOX_HIST_BUCKETS; i++)
		out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
	out->count = atomic_load_explicit(&h->count, memory_order_relaxed);
	out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
	out->max = atomic_load_explicit(&h->max, memory_order_relaxed);
}

uint64_t pbox_hist_quantile(const pbox_hist_snap *s, double q)
{
	uint64_t total = 0;
	for (int i = 0; i < PBOX_HIST_BUCKETS; i++)
		total += s->bucket[i];
	if (total == 0)
		return 0;
	uint64_t want = (uint64_t)(q * (double)total + 0.999999);
	if (want == 0)
		want = 1;
	uint64_t seen = 0;
	for (int i = 0; i < PBOX_HIST_BUCKETS; i++) {
		seen += s->bucket[i];
		if (seen >= want) {
			uint64_t hi = i == 0 ? 0 : (i >= 64 ? UINT64_MAX : (1ULL << i) - 1);
			return hi < s->max ? hi : s->max;
		}
	}
	return s->max;
}
