/* stats.h - daemon-wide counters, updated from every loop thread with
 * relaxed atomics (a reader may see one counter a moment ahead of another). */
#ifndef ED_STATS_H
#define ED_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define ED_STATUS_COUNT 8         /* Engram__V1__Status values 0..6, 7 = other */
#define ED_LATENCY_BUCKETS 16     /* upper bounds in ed_latency_bounds_us; last = +Inf */

/* What a timed request asked for: slot ids (LookupRequest) or token ids
 * (TokensRequest, hashed here). */
enum ed_latency_kind { ED_LATENCY_SLOTS, ED_LATENCY_TOKENS, ED_LATENCY_KINDS };

struct ed_stats {
	atomic_uint_fast64_t connections;        /* open now */
	atomic_uint_fast64_t connections_total;  /* accepted since start */
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t by_status[ED_STATUS_COUNT];
	atomic_uint_fast64_t rows;
	atomic_uint_fast64_t bytes_out;          /* response bytes written */
	atomic_uint_fast64_t reloads;
	atomic_uint_fast64_t reload_failures;
	/* lookup and tokens requests (by ed_latency_kind), frame complete to
	 * response written */
	atomic_uint_fast64_t latency[ED_LATENCY_KINDS][ED_LATENCY_BUCKETS];
	atomic_uint_fast64_t latency_sum_ns[ED_LATENCY_KINDS];
	/* the I/O path (gather.c, io.c) */
	atomic_uint_fast64_t warm_rows;          /* found in memory (page or row cache) */
	atomic_uint_fast64_t cold_rows;          /* read from disk first */
	atomic_uint_fast64_t disk_reads;
	atomic_uint_fast64_t disk_read_bytes;
	atomic_uint_fast64_t io_inflight;        /* reads in the kernel now */
	atomic_uint_fast64_t io_latency[ED_LATENCY_BUCKETS];   /* one read, submit to completion */
	atomic_uint_fast64_t io_latency_sum_ns;
	uint64_t started;                        /* unix seconds, set once at start */
};

extern struct ed_stats ed_stats;
/* Bucket upper bounds in microseconds; the last bucket has none (+Inf). */
extern const uint64_t ed_latency_bounds_us[ED_LATENCY_BUCKETS - 1];

#define ed_stat_add(field, n) \
	atomic_fetch_add_explicit(&ed_stats.field, (n), memory_order_relaxed)
#define ed_stat_get(field) \
	atomic_load_explicit(&ed_stats.field, memory_order_relaxed)

/* Counts one answered request by its status. */
void ed_stat_answered(int status);
/* Counts one lookup (kind ED_LATENCY_SLOTS) or tokens request's latency. */
void ed_stat_latency(enum ed_latency_kind kind, uint64_t ns);
/* Counts one disk read's latency (same buckets). */
void ed_stat_io_latency(uint64_t ns);

#endif
