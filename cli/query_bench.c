/* query_bench.c - `engram bench`: random lookups against a running daemon,
 * rows/s and latency as a client sees them. */
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Random lookups for a while; latency is send to collected, per batch. */
int eg_query_bench(int argc, char **argv)
{
	static const int allowed[] = { O_TABLE, O_BATCH, O_SECONDS, O_DEPTH, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	const eg_client_table *t;
	size_t nall = 0, nlat = 0, latcap = 1u << 20, k;
	uint64_t *slots = NULL, tk[64], x = 0x9E3779B97F4A7C15ull, calls = 0, done = 0;
	unsigned char *rows = NULL;
	double *lat = NULL, sent_at[64], t0, end, el;
	int rc, err;

	rc = eg_query_parse(argc, argv, &o, allowed);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	if (!o.table)
		return eg_cli_usage_error(o.cmd, "--table NAME is required");
	rc = eg_query_connect(&o, &c);
	if (rc != EG_CLI_OK)
		return rc;
	rc = eg_query_find_table(&o, c, o.table, &all, &nall, &t);
	if (rc != EG_CLI_OK)
		goto out;
	slots = malloc((size_t)o.batch * o.depth * sizeof(*slots));
	rows = malloc((size_t)o.batch * o.depth * t->row_bytes);
	lat = malloc(latcap * sizeof(*lat));
	if (!slots || !rows || !lat || !t->slots) {
		eg_cli_error("%s: out of memory (or the table is empty)", o.cmd);
		rc = EG_CLI_FAIL;
		goto out;
	}
	t0 = mono_s();
	end = t0 + o.seconds;
	while (done < calls || mono_s() < end) {
		if (calls - done < o.depth && mono_s() < end) {
			k = calls % o.depth;
			for (size_t i = 0; i < o.batch; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				slots[k * o.batch + i] = x % t->slots;
			}
			sent_at[k] = mono_s();
			err = eg_client_send_lookup(c, t->name, slots + k * o.batch, o.batch,
			                            rows + k * o.batch * t->row_bytes,
			                            (size_t)o.batch * t->row_bytes, &tk[k]);
			calls++;
		} else {
			k = done % o.depth;
			err = eg_client_wait(c, tk[k], NULL);
			if (nlat < latcap)
				lat[nlat++] = mono_s() - sent_at[k];
			done++;
		}
		if (err < 0) {
			rc = eg_query_fail(&o, c, err);
			goto out;
		}
	}
	el = mono_s() - t0;
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	printf("%s: %llu lookups of %u slots (depth %u) in %.2f s: %.0f rows/s, %.1f MB/s; "
	       "latency p50 %.1f us, p99 %.1f us\n",
	       t->name, (unsigned long long)done, o.batch, o.depth, el,
	       (double)done * o.batch / el, (double)done * o.batch * t->row_bytes / el / 1e6,
	       nlat ? lat[nlat / 2] * 1e6 : 0.0, nlat ? lat[(size_t)((double)nlat * 0.99)] * 1e6 : 0.0);
out:
	free(lat);
	free(rows);
	free(slots);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}

