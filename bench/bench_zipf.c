/* bench_zipf.c - Zipf traffic over a table four times larger than the DRAM
 * given to it: the row cache against the page cache alone, at the same DRAM.
 *
 *   bench_zipf [--slots N] [--row-bytes B] [--budget BYTES] [--seconds S]
 *              [--batch K] [--table DIR]
 *
 * The table (default 6,710,886 rows x 160 B = 1 GiB, built with `engram
 * table create`) is served twice, each time from an evicted file:
 *   - row cache:  engramd --cache-bytes BUDGET (default a quarter of the table)
 *   - page cache: engramd --page-budget BUDGET, the page-cache mode held to
 *     the same DRAM (engramd drops its least recently used pages past it;
 *     without it the kernel would keep the whole table, as this machine has
 *     the RAM).
 * Rows are drawn from Zipf(s = 1.0) over the table's rows, ranks scattered
 * over the slots (as hashed n-grams are), in K-row lookups (default 4096),
 * two in flight. Each run warms up until its hit ratio settles (at most 180
 * s), then is measured for S seconds (default 20): rows/s, and the hit
 * ratio of that window from engramd's /metrics (row cache hits, or rows
 * found on resident pages).
 *
 * Target (issue 9): row cache rows/s >= 1.6 x page cache. The ratio is last
 * on its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "engram.h"

static uint64_t n_slots = 6710886;
static uint32_t row_bytes = 160;
static uint64_t budget;
static double seconds = 20;
static uint64_t batch = 4096;

struct window {
	double t, rows, hits, misses;
};

static void sample(const bu_daemon *d, int cache, struct window *w, double rows)
{
	w->t = bu_now();
	w->rows = rows;
	w->hits = bu_metric(d, cache ? "engramd_cache_hits_total" : "engramd_rows_warm_total");
	w->misses = bu_metric(d, cache ? "engramd_cache_misses_total" : "engramd_rows_cold_total");
}

static double hit_ratio(const struct window *a, const struct window *b)
{
	double h = b->hits - a->hits, m = b->misses - a->misses;

	return h + m > 0 ? h / (h + m) : 0;
}

struct result {
	double rows_per_s, hit_ratio, warmup_s;
};

static struct result run(const char *dir, int cache)
{
	char table[4200], b[64];
	const char *args[] = { table, b, NULL };
	struct window w0, w1, prev;
	bu_zipf z;
	struct bu_drive dr = { .table = "t", .batch = batch, .depth = 2, .row_bytes = row_bytes,
	                       .seconds = 5, .next = bu_zipf_scattered, .arg = &z };
	double rows = 0, t_start;
	struct result r;
	bu_daemon d;
	eg_client *c;

	snprintf(table, sizeof(table), "--table=t=%s", dir);
	snprintf(b, sizeof(b), "--%s=%llu", cache ? "cache-bytes" : "page-budget",
	         (unsigned long long)budget);
	bu_evict(dir);
	bu_daemon_start(&d, args);
	if (eg_client_connect(d.addr, 60000, &c))
		bu_die("connect");
	bu_zipf_init(&z, n_slots, 1.0, 7);
	/* warm up: 5 s windows until the hit ratio moves by under half a point */
	t_start = bu_now();
	sample(&d, cache, &prev, 0);
	for (double last = -1;;) {
		double h;

		bu_drive(c, &dr);
		rows += dr.rows;
		sample(&d, cache, &w0, rows);
		h = hit_ratio(&prev, &w0);
		prev = w0;
		if ((last >= 0 && h - last < 0.005 && last - h < 0.005) || bu_now() - t_start > 180)
			break;
		last = h;
	}
	r.warmup_s = bu_now() - t_start;
	dr.seconds = seconds;
	bu_drive(c, &dr);
	rows += dr.rows;
	sample(&d, cache, &w1, rows);
	r.rows_per_s = (w1.rows - w0.rows) / (w1.t - w0.t);
	r.hit_ratio = hit_ratio(&w0, &w1);
	eg_client_close(c);
	bu_daemon_stop(&d);
	return r;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	struct result rc, pc;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "budget", BU_U64, &budget },
		{ "seconds", BU_DOUBLE, &seconds },
		{ "batch", BU_U64, &batch },
		{ "table", BU_STR, &dir },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts, "bench_zipf [--slots N] [--row-bytes B] [--budget BYTES] [--seconds S] [--batch K] [--table DIR]");
	if (!budget)
		budget = n_slots * row_bytes / 4;
	if (!dir) {
		dir = bu_path("t");
		printf("building %llu x %u B rows in %s\n", (unsigned long long)n_slots, row_bytes, dir);
		fflush(stdout);
		bu_create_table(dir, n_slots, row_bytes, 2);
	}
	pc = run(dir, 0);
	rc = run(dir, 1);
	printf("Zipf s=1.0 over %llu rows of %u B (%.0f MiB), DRAM %.0f MiB (1/%.1f of the table), "
	       "%zu-row lookups x2 in flight\n",
	       (unsigned long long)n_slots, row_bytes, (double)n_slots * row_bytes / 1048576.0,
	       (double)budget / 1048576.0, (double)n_slots * row_bytes / (double)budget, batch);
	printf("page cache (--page-budget): hit ratio %.3f, %.0f rows/s (warm-up %.0f s)\n",
	       pc.hit_ratio, pc.rows_per_s, pc.warmup_s);
	printf("row cache (--cache-bytes): hit ratio %.3f, %.0f rows/s (warm-up %.0f s); "
	       "x page cache %.2f\n",
	       rc.hit_ratio, rc.rows_per_s, rc.warmup_s, rc.rows_per_s / pc.rows_per_s);
	return 0;
}
