/* bench_cold.c - cold rows: 4096-row lookups of a table evicted from the
 * page cache, through engramd, against fio's 4 KiB random reads of the same
 * file in the same run.
 *
 *   bench_cold [--slots N] [--row-bytes B] [--batch K] [--rows R]
 *              [--depths 1,4,16,...] [--table DIR] [--data FILE]
 *
 * It builds a table of N (default 25,165,824) random rows of B (160) bytes,
 * 4 GB like the table the issue measured, with `engram table create` in a
 * temporary directory (removed at the end). Each run starts engramd on the
 * evicted file (posix_fadvise DONTNEED: only this file leaves the page
 * cache) and times one client doing blocking K-row lookups (one at a time)
 * of uniform random slots, R rows in all (default 102,400: under a tenth
 * of the table's pages, so nearly every row is cold; the cold share is read
 * from engramd's /metrics and printed). fio reads the same number of 4 KiB
 * random blocks of the same file after the same eviction (io_uring,
 * buffered, QD32 and QD1), so both warm the cache alike.
 *
 * With --depths it repeats the engramd run for each --io-depth and writes
 * "depth rows/s" lines to --data (for bench/plot.gp). When $BENCH_OUT is
 * set (make bench), the depths default to 1,2,4,8,16,32,64,128 and the data
 * goes to $BENCH_OUT/cold_depth.dat.
 *
 * Target (issue 9): engramd >= 0.8 x fio QD32 buffered. The ratio is last on
 * its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "engram.h"

static uint64_t n_slots = 25165824, total_rows = 102400;
static uint32_t row_bytes = 160;
static uint64_t batch = 4096;

struct result {
	double rows_per_s, cold_share, p50_ms, p99_ms;
};

static struct result run(const char *dir, unsigned depth, int cache)
{
	char table[4200], d[32];
	const char *args[] = { table, d, cache ? "--cache-bytes=256M" : NULL, NULL };
	size_t batches = (total_rows + batch - 1) / batch;
	struct bu_uniform u = { n_slots, 42 };
	struct bu_drive dr = { .table = "t", .batch = batch, .depth = 1, .row_bytes = row_bytes,
	                       .seconds = 1e9, .max_rows = batches * batch,
	                       .next = bu_uniform_next, .arg = &u,
	                       .lat = malloc(batches * sizeof(double)), .lat_cap = batches };
	struct result r;
	bu_daemon dm;
	eg_client *c;

	snprintf(table, sizeof(table), "--table=t=%s", dir);
	snprintf(d, sizeof(d), "--io-depth=%u", depth);
	bu_evict(dir);
	bu_daemon_start(&dm, args);
	if (eg_client_connect(dm.addr, 60000, &c))
		bu_die("connect %s", dm.addr);
	bu_drive(c, &dr);
	r.rows_per_s = dr.rows / dr.elapsed;
	r.cold_share = bu_metric(&dm, "engramd_rows_cold_total") / dr.rows;
	r.p50_ms = bu_percentile(dr.lat, dr.n_lat, 50);
	r.p99_ms = bu_percentile(dr.lat, dr.n_lat, 99);
	eg_client_close(c);
	bu_daemon_stop(&dm);
	free(dr.lat);
	return r;
}

/* fio reading as many 4 KiB blocks as the engramd run reads rows */
static double fio(const char *dir, unsigned qd)
{
	char file[4200];

	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	return bu_fio_randread_n(file, qd, 0, (total_rows + batch - 1) / batch * batch);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *depths = NULL, *data = NULL;
	double q32, q1;
	struct result page, rows;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "batch", BU_U64, &batch },
		{ "rows", BU_U64, &total_rows },
		{ "depths", BU_STR, &depths },
		{ "table", BU_STR, &dir },
		{ "data", BU_STR, &data },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts, "bench_cold [--slots N] [--row-bytes B] [--batch K] [--rows R] [--depths LIST] [--table DIR] [--data FILE]");
	if (getenv("BENCH_OUT") && !depths) {
		static char path[4096];

		depths = "1,2,4,8,16,32,64,128";
		snprintf(path, sizeof(path), "%s/cold_depth.dat", getenv("BENCH_OUT"));
		data = path;
	}
	if (!dir) {
		dir = bu_path("t");
		printf("building %llu x %u B rows in %s\n", (unsigned long long)n_slots, row_bytes, dir);
		fflush(stdout);
		bu_create_table(dir, n_slots, row_bytes, 1);
	}
	q32 = fio(dir, 32);
	q1 = fio(dir, 1);
	page = run(dir, 64, 0);
	rows = run(dir, 64, 1);
	printf("fio 4 KiB random reads, io_uring buffered: QD32 %.0f IOPS, QD1 %.0f IOPS\n", q32, q1);
	printf("cold %zu-row lookups, page-cache mode (%.0f%% cold): %.0f rows/s, p50 %.1f ms, "
	       "p99 %.1f ms; x fio QD1 %.2f; x fio QD32 %.2f\n",
	       batch, page.cold_share * 100, page.rows_per_s, page.p50_ms, page.p99_ms,
	       page.rows_per_s / q1, page.rows_per_s / q32);
	printf("cold %zu-row lookups, row cache (%.0f%% cold, O_DIRECT reads): %.0f rows/s, "
	       "p50 %.1f ms, p99 %.1f ms; x fio QD32 %.2f\n",
	       batch, rows.cold_share * 100, rows.rows_per_s, rows.p50_ms, rows.p99_ms,
	       rows.rows_per_s / q32);
	if (depths) {
		FILE *f = data ? fopen(data, "w") : NULL;
		char *list = strdup(depths), *save = NULL;

		if (data && !f)
			bu_die("cannot write %s", data);
		if (f)
			fprintf(f, "# io-depth  rows/s (page-cache mode)  fio QD32 buffered IOPS\n");
		for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			unsigned dep = (unsigned)strtoul(t, NULL, 0);
			struct result r = run(dir, dep, 0);

			printf("io-depth %3u: %.0f cold rows/s (%.0f%% cold), x fio QD32 %.2f\n", dep,
			       r.rows_per_s, r.cold_share * 100, r.rows_per_s / q32);
			if (f)
				fprintf(f, "%u %.0f %.0f\n", dep, r.rows_per_s, q32);
			fflush(stdout);
		}
		if (f)
			fclose(f);
		free(list);
	}
	return 0;
}
