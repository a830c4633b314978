/* bench_fleet.c - what the way to a daemon costs: 4096-row lookups through
 * HAProxy (examples/haproxy/haproxy.cfg, TCP mode) against direct TCP and
 * the Unix socket, to the same engramd and table, side by side; and the
 * client of an address list (libengram's failover client, over TCP).
 *
 *   bench_fleet [--slots N] [--row-bytes B] [--batch K] [--seconds S] [--rounds R]
 *
 * It builds a table of N (default 4 Mi) random rows of B (160) bytes with
 * `engram table create`, starts one engramd on a Unix socket, a loopback
 * TCP port and its HTTP port, and haproxy in front of it (both of the
 * config's servers are that daemon). Each round times one blocking client
 * per way for S seconds (default 2) of K-row lookups of uniform random
 * slots, page cache warm, the ways one after the other, so drift on a
 * shared machine touches them all; the best round of each is reported:
 * rows/s, p50 and p99 of one lookup, and each way's rate over the Unix
 * socket's. Without haproxy (not installed) its line says so. Run from the
 * source tree, or name the config in $EGT_HAPROXY_CFG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "egtest_haproxy.h"
#include "engram.h"

enum { UNIX, TCP, HAPROXY, LIST, NWAYS };
static const char *const way_name[NWAYS] = { "unix socket", "direct TCP", "HAProxy (TCP)",
                                             "address list (TCP)" };

static uint64_t n_slots = 4u << 20, batch = 4096;
static uint32_t row_bytes = 160, rounds = 3;
static double seconds = 2;

struct result {
	double rows_per_s, p50_ms, p99_ms;
};

static struct result measure(const char *spec, uint64_t seed)
{
	size_t cap = 1 << 20;
	struct bu_uniform u = { n_slots, seed };
	struct bu_drive d = { .table = "t", .batch = batch, .depth = 1, .row_bytes = row_bytes,
	                      .seconds = seconds, .next = bu_uniform_next, .arg = &u,
	                      .lat = malloc(cap * sizeof(double)), .lat_cap = cap };
	struct result r;
	eg_client *c;
	int err;

	if (!d.lat)
		bu_die("out of memory");
	err = eg_client_connect(spec, 60000, &c);
	if (err)
		bu_die("connect %s: %s", spec, eg_client_strerror(err));
	bu_drive(c, &d);
	r.rows_per_s = d.rows / d.elapsed;
	r.p50_ms = bu_percentile(d.lat, d.n_lat, 50);
	r.p99_ms = bu_percentile(d.lat, d.n_lat, 99);
	eg_client_close(c);
	free(d.lat);
	return r;
}

int main(int argc, char **argv)
{
	char *dir, table[4200], listen[64], spec[NWAYS][400], err[300];
	const char *args[] = { table, listen, NULL }, *servers[2];
	struct result best[NWAYS] = { 0 };
	egt_haproxy lb = { 0 };
	int tcp_port, https[2], have_lb;
	bu_daemon dm;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "batch", BU_U64, &batch },
		{ "seconds", BU_DOUBLE, &seconds },
		{ "rounds", BU_U32, &rounds },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts, "bench_fleet [--slots N] [--row-bytes B] [--batch K] "
	           "[--seconds S] [--rounds R]");
	if (!n_slots || !row_bytes || !batch || seconds <= 0 || !rounds)
		bu_die("bad option value");
	dir = bu_path("t");
	bu_create_table(dir, n_slots, row_bytes, 7);
	tcp_port = bu_free_port();
	snprintf(table, sizeof(table), "--table=t=%s", dir);
	snprintf(listen, sizeof(listen), "--listen=tcp:127.0.0.1:%d", tcp_port);
	bu_daemon_start(&dm, args);
	snprintf(spec[UNIX], sizeof(spec[UNIX]), "%s", dm.addr);
	snprintf(spec[TCP], sizeof(spec[TCP]), "tcp:127.0.0.1:%d", tcp_port);
	snprintf(spec[LIST], sizeof(spec[LIST]), "tcp:127.0.0.1:%d,tcp:127.0.0.1:%d", tcp_port, tcp_port);
	servers[0] = servers[1] = spec[TCP] + 4;
	https[0] = https[1] = dm.http_port;
	have_lb = egt_haproxy_start(&lb, bu_tmpdir(), bu_free_port(), servers, https, err,
	                            sizeof(err)) == 0;
	if (have_lb)
		snprintf(spec[HAPROXY], sizeof(spec[HAPROXY]), "tcp:%s", lb.bind);
	printf("table %llu slots x %u B (%.0f MiB), %llu-row lookups, one blocking client, "
	       "%.1f s per way, best of %u rounds\n", (unsigned long long)n_slots, row_bytes,
	       (double)n_slots * row_bytes / (1 << 20), (unsigned long long)batch, seconds, rounds);
	measure(spec[UNIX], 1); /* warms the page cache */
	for (uint32_t r = 0; r < rounds; r++) {
		for (int w = 0; w < NWAYS; w++) {
			struct result x;

			if (w == HAPROXY && !have_lb)
				continue;
			x = measure(spec[w], (uint64_t)r * NWAYS + (uint64_t)w + 2);
			if (x.rows_per_s > best[w].rows_per_s)
				best[w] = x;
		}
	}
	printf("%-20s %14s %10s %10s %9s\n", "way", "rows/s", "p50 ms", "p99 ms", "vs unix");
	for (int w = 0; w < NWAYS; w++) {
		if (w == HAPROXY && !have_lb) {
			printf("%-20s not measured: %s\n", way_name[w], err);
			continue;
		}
		printf("%-20s %14.0f %10.3f %10.3f %9.3f\n", way_name[w], best[w].rows_per_s,
		       best[w].p50_ms, best[w].p99_ms, best[w].rows_per_s / best[UNIX].rows_per_s);
	}
	egt_haproxy_stop(&lb);
	bu_daemon_stop(&dm);
	return 0;
}
