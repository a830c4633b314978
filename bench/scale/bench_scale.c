/* bench_scale.c - more than 2^31 slots, larger than RAM (make bench-scale).
 *
 *   bench_scale [--slots N] [--row-bytes B] [--dir DIR]
 *
 * Builds a table of 2^31 + 12345 slots x 16 B (32 GiB: more than this
 * machine's 24 GiB of RAM) with `engram table create` in a temporary
 * directory under $BENCH_DIR (default /var/tmp; it needs 33 GiB free and is
 * removed at the end), then starts engramd on it and checks:
 *   - the daemon answers within 2 s of its start;
 *   - its anonymous RSS (RssAnon) stays under 64 MiB;
 *   - rows of slots 0, 2^31 - 1, 2^31 and the last, looked up through the
 *     daemon, are byte for byte what `engram table export` reads;
 * and reports the build time, cold 4096-row lookups (file evicted first)
 * and Zipf(1.0) 4096-row lookups, two in flight, in rows/s.
 * Exits 1 when a check fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "engram.h"

static uint64_t n_slots = (UINT64_C(1) << 31) + 12345;
static uint32_t row_bytes = 16;

static int same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, same = fa && fb;

	while (same && (ca = fgetc(fa)) != EOF) {
		cb = fgetc(fb);
		same = ca == cb;
	}
	if (same)
		same = fgetc(fb) == EOF;
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int check_rows(const bu_daemon *d, const char *dir)
{
	char slots[128];
	char *via_daemon = bu_path("daemon.npy"), *via_export = bu_path("export.npy");
	const char *lookup[] = { bu_engram(), "lookup", "--connect", d->addr, "--table", "t",
	                         "--slots", slots, "--out", via_daemon, NULL };
	const char *export[] = { bu_engram(), "table", "export", dir, "--slots", slots, "--out",
	                         via_export, NULL };

	uint64_t a = (1ull << 31) - 1, b = 1ull << 31, last = n_slots - 1;

	/* a smaller --slots (a trial run) keeps the same shape of list */
	snprintf(slots, sizeof(slots), "0,%llu,%llu,%llu", (unsigned long long)(a < last ? a : last / 2),
	         (unsigned long long)(b < last ? b : last / 2 + 1), (unsigned long long)last);
	bu_run(lookup);
	bu_run(export);
	return same_file(via_daemon, via_export);
}

static double rate(const bu_daemon *d, unsigned depth, int zipf, uint64_t max_rows,
                   double secs)
{
	struct bu_uniform u = { n_slots, 77 };
	bu_zipf z;
	struct bu_drive dr = { .table = "t", .batch = 4096, .depth = depth,
	                       .row_bytes = row_bytes, .seconds = secs, .max_rows = max_rows,
	                       .next = zipf ? bu_zipf_scattered : bu_uniform_next,
	                       .arg = zipf ? (void *)&z : (void *)&u };
	eg_client *c;

	bu_zipf_init(&z, n_slots, 1.0, 3);
	if (eg_client_connect(d->addr, 60000, &c))
		bu_die("connect");
	bu_drive(c, &dr);
	eg_client_close(c);
	return dr.rows / dr.elapsed;
}

int main(int argc, char **argv)
{
	char table[4200];
	const char *args[] = { table, NULL };
	const char *dir = NULL;
	double t0, build_s, ready_s, cold, zipf;
	uint64_t rss;
	int ok, exact;
	bu_daemon d;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "dir", BU_STR, &dir },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts, "bench_scale [--slots N] [--row-bytes B] [--dir DIR]");
	if (!dir) {
		dir = bu_path("t");
		printf("building %llu x %u B rows (%.1f GiB) in %s\n", (unsigned long long)n_slots,
		       row_bytes, (double)n_slots * row_bytes / (1u << 30), dir);
		fflush(stdout);
		t0 = bu_now();
		bu_create_table(dir, n_slots, row_bytes, 5);
		build_s = bu_now() - t0;
	} else {
		build_s = 0;
	}
	bu_evict(dir);
	snprintf(table, sizeof(table), "--table=t=%s", dir);
	t0 = bu_now();
	bu_daemon_start(&d, args);
	ready_s = bu_now() - t0;
	exact = check_rows(&d, dir);
	cold = rate(&d, 1, 0, 102400, 1e9);
	zipf = rate(&d, 2, 1, 0, 30);
	rss = bu_rss_anon(d.pid);
	bu_daemon_stop(&d);
	ok = ready_s < 2 && rss < (64u << 20) && exact;
	printf("build %.0f s (%.0f MB/s)\n", build_s,
	       build_s > 0 ? (double)n_slots * row_bytes / build_s / 1e6 : 0);
	printf("ready in %.2f s (limit 2 s): %s\n", ready_s, ready_s < 2 ? "ok" : "MISSED");
	printf("anonymous RSS %.1f MiB (limit 64 MiB): %s\n", (double)rss / 1048576,
	       rss < (64u << 20) ? "ok" : "MISSED");
	printf("rows of slots 0, 2^31-1, 2^31 and %llu equal engram table export: %s\n",
	       (unsigned long long)n_slots - 1, exact ? "ok" : "FAILED");
	printf("cold 4096-row lookups (evicted file, one at a time): %.0f rows/s\n", cold);
	printf("Zipf(1.0) 4096-row lookups, 2 in flight, page cache only: %.0f rows/s\n", zipf);
	printf("bench-scale: %s\n", ok ? "all checks passed" : "a check FAILED");
	return ok ? 0 : 1;
}
