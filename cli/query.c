/* query.c - the commands of `engram` that talk to a running engramd:
 * options, connecting, and the small ones (info, stats, ping, reload).
 * query_rows.c has lookup and tokens, query_bench.c the load generator. */
#include "query.h"
#include "table.h"

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000

void eg_cli_query_usage(FILE *f)
{
	fputs("Query a running engramd (ADDR: unix:PATH or tcp:HOST:PORT; default $ENGRAM_CONNECT):\n"
	      "  engram info    --connect ADDR [--json]        tables served\n"
	      "  engram stats   --connect ADDR [--json]        daemon counters\n"
	      "  engram ping    --connect ADDR                 round trip\n"
	      "  engram lookup  --connect ADDR --table NAME (--slots 1,2,5-9 | --slots-file S.npy)\n"
	      "                 [--out ROWS.npy]               rows, as `engram table export` writes them\n"
	      "  engram tokens  --connect ADDR --tables a,b --tokens 1,2,3 [--seq-lens 2,1]\n"
	      "                 [--context 0,0] [--out PREFIX] rows of token n-grams hashed by the\n"
	      "                                                daemon; --out writes PREFIX.TABLE.npy of\n"
	      "                                                [tokens * rows_per_token, width]\n"
	      "  engram reload  --connect ADDR [--table NAME]  reopen tables from disk\n"
	      "  engram bench   --connect ADDR --table NAME [--batch 4096] [--seconds 3]\n"
	      "                 [--depth 1]                    random lookups: rows/s, latency;\n"
	      "                                                --depth lookups in flight at once\n"
	      "Every query takes --timeout MS (default 30000; 0 = none).\n", f);
}

/* One error line for a failed client call. */

int eg_query_fail(const struct eg_query_opts *o, eg_client *c, int err)
{
	const char *detail = c ? eg_client_errmsg(c) : "";

	eg_cli_error("%s: %s", o->cmd, detail && *detail ? detail : eg_client_strerror(err));
	return EG_CLI_FAIL;
}

/* Parses the options of o->cmd; allowed lists the option codes it takes.
 * Returns EG_CLI_OK, an exit status, or -1 after printing --help. */
int eg_query_parse(int argc, char **argv, struct eg_query_opts *o, const int *allowed)
{
	static const struct option opts[] = {
		{"connect", required_argument, NULL, O_CONNECT},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"json", no_argument, NULL, O_JSON},
		{"table", required_argument, NULL, O_TABLE},
		{"tables", required_argument, NULL, O_TABLES},
		{"slots", required_argument, NULL, O_SLOTS},
		{"slots-file", required_argument, NULL, O_SLOTS_FILE},
		{"out", required_argument, NULL, O_OUT},
		{"tokens", required_argument, NULL, O_TOKENS},
		{"seq-lens", required_argument, NULL, O_SEQ_LENS},
		{"context", required_argument, NULL, O_CONTEXT},
		{"batch", required_argument, NULL, O_BATCH},
		{"seconds", required_argument, NULL, O_SECONDS},
		{"depth", required_argument, NULL, O_DEPTH},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	uint32_t ms;
	int c, ok;

	memset(o, 0, sizeof(*o));
	o->cmd = argv[0];
	o->connect = getenv("ENGRAM_CONNECT");
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->batch = 4096;
	o->depth = 1;
	o->seconds = 3;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == O_HELP) {
			eg_cli_query_usage(stdout);
			return -1;
		}
		ok = c == O_CONNECT || c == O_TIMEOUT;
		for (const int *a = allowed; !ok && *a; a++)
			ok = *a == c;
		if (!ok || c == '?' || c == ':')
			return eg_cli_usage_error(o->cmd, "unknown option or missing value: '%s'",
			                   argv[optind - 1]);
		switch (c) {
		case O_CONNECT: o->connect = optarg; break;
		case O_TIMEOUT:
			if (eg_cli_parse_u32(optarg, &ms) < 0 || ms > 0x7fffffff)
				return eg_cli_usage_error(o->cmd, "bad --timeout '%s' (milliseconds)", optarg);
			o->timeout_ms = (int)ms;
			break;
		case O_JSON: o->json = 1; break;
		case O_TABLE: o->table = optarg; break;
		case O_TABLES: o->tables = optarg; break;
		case O_SLOTS: o->slots = optarg; break;
		case O_SLOTS_FILE: o->slots_file = optarg; break;
		case O_OUT: o->out = optarg; break;
		case O_TOKENS: o->tokens = optarg; break;
		case O_SEQ_LENS: o->seq_lens = optarg; break;
		case O_CONTEXT: o->context = optarg; break;
		case O_BATCH:
			if (eg_cli_parse_u32(optarg, &o->batch) < 0 || o->batch == 0)
				return eg_cli_usage_error(o->cmd, "bad --batch '%s'", optarg);
			break;
		case O_DEPTH:
			if (eg_cli_parse_u32(optarg, &o->depth) < 0 || !o->depth || o->depth > 64)
				return eg_cli_usage_error(o->cmd, "bad --depth '%s' (1..64)", optarg);
			break;
		case O_SECONDS: {
			char *end;

			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 3600))
				return eg_cli_usage_error(o->cmd, "bad --seconds '%s'", optarg);
			break;
		}
		}
	}
	if (optind != argc)
		return eg_cli_usage_error(o->cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->connect || !*o->connect)
		return eg_cli_usage_error(o->cmd, "--connect ADDR is required");
	return EG_CLI_OK;
}

int eg_query_connect(const struct eg_query_opts *o, eg_client **c)
{
	int err = eg_client_connect(o->connect, o->timeout_ms, c);

	if (err < 0) {
		eg_cli_error("%s: cannot connect to %s: %s", o->cmd, o->connect,
		             eg_client_strerror(err));
		return EG_CLI_FAIL;
	}
	return EG_CLI_OK;
}

/* The served table called name, copied into *out (strings owned by *all). */
int eg_query_find_table(const struct eg_query_opts *o, eg_client *c, const char *name,
                      eg_client_table **all, size_t *nall, const eg_client_table **out)
{
	int err = eg_client_info(c, all, nall);

	if (err < 0)
		return eg_query_fail(o, c, err);
	for (size_t i = 0; i < *nall; i++) {
		if (strcmp((*all)[i].name, name) == 0) {
			*out = &(*all)[i];
			return EG_CLI_OK;
		}
	}
	eg_cli_error("%s: the daemon at %s serves no table '%s'", o->cmd, o->connect, name);
	return EG_CLI_FAIL;
}

/* ---- commands ----------------------------------------------------------- */

/* eg_query_parse, then eg_query_connect: EG_CLI_OK with *c connected, -1
 * after --help, or an exit status. */
static int query_open(int argc, char **argv, struct eg_query_opts *o, const int *allowed,
                      eg_client **c)
{
	int rc = eg_query_parse(argc, argv, o, allowed);

	return rc != EG_CLI_OK ? rc : eg_query_connect(o, c);
}

int eg_query_info(int argc, char **argv)
{
	static const int allowed[] = { O_JSON, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_table *t = NULL;
	size_t n = 0;
	int rc, err;

	rc = query_open(argc, argv, &o, allowed, &c);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	err = eg_client_info(c, &t, &n);
	if (err < 0) {
		rc = eg_query_fail(&o, c, err);
		goto out;
	}
	if (o.json) {
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
			eg_cli_error("%s: out of memory", o.cmd);
			rc = EG_CLI_FAIL;
			goto out;
		}
		puts(s);
		free(s);
	} else {
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
out:
	eg_client_info_free(t, n);
	eg_client_close(c);
	return rc;
}

int eg_query_stats(int argc, char **argv)
{
	static const int allowed[] = { O_JSON, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_stats s;
	int rc, err;

	rc = query_open(argc, argv, &o, allowed, &c);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	err = eg_client_stats_get(c, &s);
	if (err < 0) {
		rc = eg_query_fail(&o, c, err);
	} else {
		const char *names[] = { "uptime_seconds", "connections", "requests", "errors",
		                        "rows", "bytes_out", "reloads", "reload_failures" };
		const uint64_t vals[] = { s.uptime_seconds, s.connections, s.requests, s.errors,
		                          s.rows, s.bytes_out, s.reloads, s.reload_failures };

		for (size_t i = 0; i < 8; i++) {
			if (o.json)
				printf("%s\"%s\": %llu", i ? ", " : "{", names[i],
				       (unsigned long long)vals[i]);
			else
				printf("%s %llu\n", names[i], (unsigned long long)vals[i]);
		}
		if (o.json)
			puts("}");
	}
	eg_client_close(c);
	return rc;
}

int eg_query_ping(int argc, char **argv)
{
	static const int allowed[] = { 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	struct timespec a, b;
	int rc, err;

	rc = query_open(argc, argv, &o, allowed, &c);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	clock_gettime(CLOCK_MONOTONIC, &a);
	err = eg_client_ping(c);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (err < 0)
		rc = eg_query_fail(&o, c, err);
	else
		printf("pong from %s in %.3f ms\n", o.connect,
		       (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
	eg_client_close(c);
	return rc;
}

/* `engram reload`: asks the daemon to reopen one table or all. */
int eg_query_reload(int argc, char **argv)
{
	static const int allowed[] = { O_TABLE, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_reload res[256];
	size_t n = 0, i;
	const char *failed = NULL, *why = NULL;
	int rc, err;

	rc = query_open(argc, argv, &o, allowed, &c);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	err = eg_client_reload_tables(c, o.table, res, 256, &n);
	if (err < 0) {
		rc = eg_query_fail(&o, c, err);
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
		eg_cli_error("%s: table '%s' was not reloaded (the old version keeps serving): %s",
		             o.cmd, failed, why);
		rc = EG_CLI_FAIL;
	}
out:
	eg_client_close(c);
	return rc;
}

int eg_cli_query(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"info", eg_query_info}, {"stats", eg_query_stats}, {"ping", eg_query_ping},
		{"lookup", eg_query_lookup}, {"tokens", eg_query_tokens}, {"reload", eg_query_reload},
		{"bench", eg_query_bench},
	};

	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			return cmds[i].fn(argc, argv);
	eg_cli_error("unknown command '%s'", argv[0]);
	return EG_CLI_USAGE;
}

