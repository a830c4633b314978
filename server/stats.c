/* stats.c - the counters and the lookup latency histogram. */
#include "stats.h"

struct ed_stats ed_stats;

/* From a decode step (tens of us) to a large prefill gather (seconds). */
const uint64_t ed_latency_bounds_us[ED_LATENCY_BUCKETS - 1] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000,
};

void ed_stat_answered(int status)
{
	unsigned i = status >= 0 && status < ED_STATUS_COUNT - 1 ? (unsigned)status
	                                                         : ED_STATUS_COUNT - 1;

	ed_stat_add(requests, 1);
	if (status != 0)
		ed_stat_add(errors, 1);
	ed_stat_add(by_status[i], 1);
}

static unsigned bucket(uint64_t ns)
{
	unsigned i = 0;

	while (i < ED_LATENCY_BUCKETS - 1 && ns > ed_latency_bounds_us[i] * 1000)
		i++;
	return i;
}

void ed_stat_latency(enum ed_latency_kind kind, uint64_t ns)
{
	ed_stat_add(latency[kind][bucket(ns)], 1);
	ed_stat_add(latency_sum_ns[kind], ns);
}

void ed_stat_io_latency(uint64_t ns)
{
	ed_stat_add(io_latency[bucket(ns)], 1);
	ed_stat_add(io_latency_sum_ns, ns);
}
