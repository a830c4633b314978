/* bench_prefill.c - decode steps next to a prefill: latency of 4096-row
 * lookups alone, and while another client streams 1M-row lookups, from one
 * engramd in the same run.
 *
 *   bench_prefill [--slots N] [--row-bytes B] [--seconds S] [--data PREFIX]
 *                 [--busy-poll USEC]
 *
 * The table (default 4 Mi rows x 160 B, in the page cache: this measures
 * scheduling, not the disk) is built with `engram table create`. The decode
 * client sends blocking 4096-row lookups of random slots for S seconds
 * (default 10) alone, then again while a second client, on its own
 * connection, sends blocking 1,048,576-row lookups back to back. With
 * --data, the sorted latencies go to PREFIX.alone and PREFIX.prefill (one
 * value in ms per line, for bench/plot.gp); $BENCH_OUT (make bench) sets
 * PREFIX to $BENCH_OUT/decode_latency. --busy-poll starts engramd with
 * that flag (default 0, its default).
 *
 * Targets (issue 9): p99 under prefill <= 4 x p99 alone and <= 10 ms. The
 * ratio is last on its line. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "engram.h"

#define DECODE_ROWS 4096
#define PREFILL_ROWS 1048576

static uint64_t n_slots = 4194304;
static uint32_t row_bytes = 160;
static double seconds = 10;
static uint32_t busy_poll;
static atomic_int prefill_stop;
static atomic_ulong prefill_rows;

struct lat {
	double *v;
	size_t n;
};

static void decode(const char *addr, struct lat *l)
{
	struct bu_uniform u = { n_slots, 99 };
	size_t cap = 1 << 20;
	struct bu_drive dr = { .table = "t", .batch = DECODE_ROWS, .depth = 1,
	                       .row_bytes = row_bytes, .seconds = seconds,
	                       .next = bu_uniform_next, .arg = &u, .lat_cap = cap };
	eg_client *c;

	if (eg_client_connect(addr, 60000, &c))
		bu_die("connect %s", addr);
	free(l->v);
	dr.lat = l->v = malloc(cap * sizeof(double));
	bu_drive(c, &dr);
	l->n = dr.n_lat;
	eg_client_close(c);
}

static void *prefill(void *arg)
{
	const char *addr = arg;
	struct bu_uniform u = { n_slots, 5 };
	struct bu_drive dr = { .table = "t", .batch = PREFILL_ROWS, .depth = 1,
	                       .row_bytes = row_bytes, .seconds = 1e9, .max_rows = PREFILL_ROWS,
	                       .next = bu_uniform_next, .arg = &u };
	eg_client *c;

	if (eg_client_connect(addr, 60000, &c))
		bu_die("connect %s", addr);
	while (!atomic_load(&prefill_stop)) {
		bu_drive(c, &dr); /* one request */
		atomic_fetch_add(&prefill_rows, PREFILL_ROWS);
	}
	eg_client_close(c);
	return NULL;
}

static void dump(const char *prefix, const char *suffix, struct lat *l)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s.%s", prefix, suffix);
	if (!(f = fopen(path, "w")))
		bu_die("cannot write %s", path);
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%.4f\n", l->v[i]);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *data = NULL;
	char table[4200], poll_arg[40];
	const char *args[] = { table, poll_arg, NULL };
	struct lat alone = { 0 }, busy = { 0 };
	double a50, a99, b50, b99, t0, pf_rate;
	pthread_t th;
	bu_daemon d;
	char *dir;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "seconds", BU_DOUBLE, &seconds },
		{ "data", BU_STR, &data },
		{ "busy-poll", BU_U32, &busy_poll },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts,
	           "bench_prefill [--slots N] [--row-bytes B] [--seconds S] [--data PREFIX] "
	           "[--busy-poll USEC]");
	if (!data && getenv("BENCH_OUT")) {
		static char prefix[4096];

		snprintf(prefix, sizeof(prefix), "%s/decode_latency", getenv("BENCH_OUT"));
		data = prefix;
	}
	dir = bu_path("t");
	bu_create_table(dir, n_slots, row_bytes, 3);
	snprintf(table, sizeof(table), "--table=t=%s", dir);
	snprintf(poll_arg, sizeof(poll_arg), "--busy-poll=%u", busy_poll);
	bu_daemon_start(&d, args);
	decode(d.addr, &alone); /* also pages the table in */
	decode(d.addr, &alone);
	atomic_store(&prefill_stop, 0);
	if (pthread_create(&th, NULL, prefill, d.addr))
		bu_die("pthread_create");
	while (atomic_load(&prefill_rows) == 0)
		; /* the first prefill is done: the stream runs */
	t0 = bu_now();
	pf_rate = (double)atomic_load(&prefill_rows);
	decode(d.addr, &busy);
	pf_rate = ((double)atomic_load(&prefill_rows) - pf_rate) / (bu_now() - t0);
	atomic_store(&prefill_stop, 1);
	pthread_join(th, NULL);
	bu_daemon_stop(&d);
	a50 = bu_percentile(alone.v, alone.n, 50);
	a99 = bu_percentile(alone.v, alone.n, 99);
	b50 = bu_percentile(busy.v, busy.n, 50);
	b99 = bu_percentile(busy.v, busy.n, 99);
	if (data) {
		dump(data, "alone", &alone);
		dump(data, "prefill", &busy);
	}
	printf("4096-row lookups alone: %zu in %.0f s, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	       alone.n, seconds, a50, a99, alone.v[alone.n - 1]);
	printf("4096-row lookups under a 1M-row prefill stream (%.1f M rows/s): %zu, p50 %.2f ms, "
	       "p99 %.2f ms, max %.2f ms; p99 x alone %.2f\n",
	       pf_rate * 1e-6, busy.n, b50, b99, busy.v[busy.n - 1], b99 / a99);
	return 0;
}
