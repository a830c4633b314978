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

struct bench {
	uint64_t *slots, tickets[64], calls, done, x;
	unsigned char *rows;
	double *lat, sent_at[64];
	size_t nlat, latcap;
};

/* Sends one batch of random slots (slot k of the window). */
static int send_one(const struct cli_args *a, eg_client *c, const eg_client_table *t,
                    struct bench *b)
{
	size_t k = b->calls % a->depth;
	uint64_t *slots = b->slots + k * a->batch;

	for (size_t i = 0; i < a->batch; i++) {
		b->x ^= b->x << 13;
		b->x ^= b->x >> 7;
		b->x ^= b->x << 17;
		slots[i] = b->x % t->slots;
	}
	b->sent_at[k] = mono_s();
	b->calls++;
	return eg_client_send_lookup(c, t->name, slots, a->batch,
	                             b->rows + k * a->batch * t->row_bytes,
	                             (size_t)a->batch * t->row_bytes, &b->tickets[k]);
}

/* Collects the oldest batch in flight; latency is send to collected. */
static int collect_one(const struct cli_args *a, eg_client *c, struct bench *b)
{
	size_t k = b->done % a->depth;
	int err = eg_client_wait(c, b->tickets[k], NULL);

	if (b->nlat < b->latcap)
		b->lat[b->nlat++] = mono_s() - b->sent_at[k];
	b->done++;
	return err;
}

/* Random lookups for a.seconds, a.depth batches in flight. */
static int run_bench(const struct cli_args *a, eg_client *c, const eg_client_table *t,
                     struct bench *b)
{
	double t0 = mono_s(), end = t0 + a->seconds, el;
	int err;

	while (b->done < b->calls || mono_s() < end) {
		if (b->calls - b->done < a->depth && mono_s() < end)
			err = send_one(a, c, t, b);
		else
			err = collect_one(a, c, b);
		if (err < 0)
			return cli_query_fail(a, c, err);
	}
	el = mono_s() - t0;
	qsort(b->lat, b->nlat, sizeof(*b->lat), cmp_double);
	printf("%s: %llu lookups of %u slots (depth %u) in %.2f s: %.0f rows/s, %.1f MB/s; "
	       "latency p50 %.1f us, p99 %.1f us\n",
	       t->name, (unsigned long long)b->done, a->batch, a->depth, el,
	       (double)b->done * a->batch / el,
	       (double)b->done * a->batch * t->row_bytes / el / 1e6,
	       b->nlat ? b->lat[b->nlat / 2] * 1e6 : 0.0,
	       b->nlat ? b->lat[(size_t)((double)b->nlat * 0.99)] * 1e6 : 0.0);
	return CLI_OK;
}

int cli_query_bench(struct cli_args *a)
{
	struct bench b = { .x = 0x9E3779B97F4A7C15ull, .latcap = 1u << 20 };
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	const eg_client_table *t;
	size_t nall = 0;
	int rc;

	if (!a->table)
		return cli_usage_error(a->cmd, "--table NAME is required");
	rc = cli_query_connect(a, &c);
	if (rc == CLI_OK)
		rc = cli_query_find_table(a, c, a->table, &all, &nall, &t);
	if (rc != CLI_OK)
		goto out;
	b.slots = malloc((size_t)a->batch * a->depth * sizeof(*b.slots));
	b.rows = malloc((size_t)a->batch * a->depth * t->row_bytes);
	b.lat = malloc(b.latcap * sizeof(*b.lat));
	if (!b.slots || !b.rows || !b.lat || !t->slots) {
		cli_error("%s: out of memory (or the table is empty)", a->cmd);
		rc = CLI_FAIL;
		goto out;
	}
	rc = run_bench(a, c, t, &b);
out:
	free(b.lat);
	free(b.rows);
	free(b.slots);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}
