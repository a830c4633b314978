/* query.c - the commands of `engram` that talk to a running engramd:
 * connecting, finding tables, and the small ones (info, stats, ping,
 * reload). query_rows.c has lookup and tokens, query_bench.c the load
 * generator. */
#include "query.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_query_fail(const struct cli_args *a, eg_client *c, int err)
{
	const char *detail = c ? eg_client_errmsg(c) : "";

	cli_error("%s: %s", a->cmd, detail && *detail ? detail : eg_client_strerror(err));
	return CLI_FAIL;
}

int cli_query_connect(const struct cli_args *a, eg_client **c)
{
	int err = eg_client_connect(a->connect, (int)a->timeout_ms, c);

	if (err < 0) {
		cli_error("%s: cannot connect to %s: %s", a->cmd, a->connect,
		          eg_client_strerror(err));
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_query_tables(const struct cli_args *a, eg_client *c, eg_client_table **all,
                     size_t *nall)
{
	int err = eg_client_info(c, all, nall);

	return err < 0 ? cli_query_fail(a, c, err) : CLI_OK;
}

int cli_query_pick(const struct cli_args *a, const eg_client_table *all, size_t nall,
                   const char *name, const eg_client_table **out)
{
	for (size_t i = 0; i < nall; i++) {
		if (strcmp(all[i].name, name) == 0) {
			*out = &all[i];
			return CLI_OK;
		}
	}
	cli_error("%s: the daemon at %s serves no table '%s'", a->cmd, a->connect, name);
	return CLI_FAIL;
}

int cli_query_find_table(const struct cli_args *a, eg_client *c, const char *name,
                         eg_client_table **all, size_t *nall, const eg_client_table **out)
{
	int rc = cli_query_tables(a, c, all, nall);

	return rc != CLI_OK ? rc : cli_query_pick(a, *all, *nall, name, out);
}

/* ---- commands ----------------------------------------------------------- */

static int print_info_json(const struct cli_args *a, const eg_client_table *t, size_t n)
{
	json_t *arr = json_array();
	char *s;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack(
			"{s:s, s:I, s:i, s:s, s:i, s:i, s:I, s:I, s:s, s:i, s:s}",
			"name", t[i].name, "slots", (json_int_t)t[i].slots,
			"dim", (int)t[i].dim, "dtype", t[i].dtype,
			"scale_block", (int)t[i].scale_block, "row_bytes", (int)t[i].row_bytes,
			"chunk_slots", (json_int_t)t[i].chunk_slots,
			"generation", (json_int_t)t[i].generation, "hash_kind", t[i].hash_kind,
			"rows_per_token", (int)t[i].rows_per_token, "path", t[i].path));
	s = json_dumps(arr, JSON_INDENT(2));
	json_decref(arr);
	if (!s) {
		cli_error("%s: out of memory", a->cmd);
		return CLI_FAIL;
	}
	puts(s);
	free(s);
	return CLI_OK;
}

static void print_info_lines(const eg_client_table *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%s: slots=%llu dim=%u dtype=%s scale_block=%u row_bytes=%u "
		       "chunk_slots=%llu generation=%llu hash=%s rows_per_token=%u path=%s\n",
		       t[i].name, (unsigned long long)t[i].slots, t[i].dim, t[i].dtype,
		       t[i].scale_block, t[i].row_bytes,
		       (unsigned long long)t[i].chunk_slots,
		       (unsigned long long)t[i].generation,
		       *t[i].hash_kind ? t[i].hash_kind : "none", t[i].rows_per_token,
		       t[i].path);
}

int cli_query_info(struct cli_args *a)
{
	eg_client *c = NULL;
	eg_client_table *t = NULL;
	size_t n = 0;
	int rc = cli_query_connect(a, &c);

	if (rc != CLI_OK)
		return rc;
	rc = cli_query_tables(a, c, &t, &n);
	if (rc == CLI_OK && a->json)
		rc = print_info_json(a, t, n);
	else if (rc == CLI_OK)
		print_info_lines(t, n);
	eg_client_info_free(t, n);
	eg_client_close(c);
	return rc;
}

int cli_query_stats(struct cli_args *a)
{
	eg_client *c = NULL;
	eg_client_stats s;
	int rc = cli_query_connect(a, &c), err;

	if (rc != CLI_OK)
		return rc;
	err = eg_client_stats_get(c, &s);
	if (err < 0) {
		rc = cli_query_fail(a, c, err);
	} else {
		const char *names[] = { "uptime_seconds", "connections", "requests", "errors",
		                        "rows", "bytes_out", "reloads", "reload_failures",
		                        "rows_warm", "rows_cold", "disk_reads", "disk_read_bytes",
		                        "disk_reads_inflight", "disk_read_p50_us", "disk_read_p99_us",
		                        "cache_hits", "cache_misses", "cache_evictions", "cache_rows",
		                        "cache_bytes" };
		const uint64_t vals[] = { s.uptime_seconds, s.connections, s.requests, s.errors,
		                          s.rows, s.bytes_out, s.reloads, s.reload_failures,
		                          s.rows_warm, s.rows_cold, s.disk_reads, s.disk_read_bytes,
		                          s.disk_reads_inflight, s.disk_read_p50_us, s.disk_read_p99_us,
		                          s.cache_hits, s.cache_misses, s.cache_evictions, s.cache_rows,
		                          s.cache_bytes };

		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			if (a->json)
				printf("%s\"%s\": %llu", i ? ", " : "{", names[i],
				       (unsigned long long)vals[i]);
			else
				printf("%s %llu\n", names[i], (unsigned long long)vals[i]);
		}
		if (a->json)
			puts("}");
	}
	eg_client_close(c);
	return rc;
}

int cli_query_ping(struct cli_args *a)
{
	eg_client *c = NULL;
	struct timespec t0, t1;
	int rc = cli_query_connect(a, &c), err;

	if (rc != CLI_OK)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = eg_client_ping(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (err < 0)
		rc = cli_query_fail(a, c, err);
	else
		printf("pong from %s in %.3f ms\n", a->connect,
		       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	eg_client_close(c);
	return rc;
}

/* `engram reload`: asks the daemon to reopen one table or all. */
int cli_query_reload(struct cli_args *a)
{
	eg_client *c = NULL;
	eg_client_reload res[256];
	size_t n = 0, i;
	const char *failed = NULL, *why = NULL;
	int rc = cli_query_connect(a, &c), err;

	if (rc != CLI_OK)
		return rc;
	err = eg_client_reload_tables(c, a->table, res, 256, &n);
	if (err < 0) {
		rc = cli_query_fail(a, c, err);
		goto out;
	}
	for (i = 0; i < n && i < 256; i++) {
		if (res[i].error[0]) {
			if (!failed) {
				failed = res[i].table;
				why = res[i].error;
			}
			continue;
		}
		printf("%s: generation %llu -> %llu%s\n", res[i].table,
		       (unsigned long long)res[i].old_generation,
		       (unsigned long long)res[i].new_generation,
		       res[i].reloaded ? "" : " (unchanged)");
	}
	if (failed) {
		cli_error("%s: table '%s' was not reloaded (the old version keeps serving): %s",
		          a->cmd, failed, why);
		rc = CLI_FAIL;
	}
out:
	eg_client_close(c);
	return rc;
}
