/* table_update.c - `engram table update`: patch rows of a live table in
 * place (one write transaction; readers keep their snapshot). */
#include "table.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { O_SLOTS = 256, O_SLOTS_FILE, O_ROWS, O_SRC, O_HELP };

/* The table's layout, read under a snapshot that is closed again before
 * the write: LMDB allows one open of an environment per process. */
static int read_layout(const char *dir, eg_meta *out)
{
	eg_table *t;
	eg_snapshot *s;
	int rc = eg_cli_open_table(dir, &t, &s);

	if (rc != EG_CLI_OK)
		return rc;
	*out = *eg_snapshot_meta(s);
	out->hash_spec = NULL;
	eg_snapshot_close(s);
	eg_table_close(t);
	return EG_CLI_OK;
}

int eg_cli_table_update(int argc, char **argv)
{
	static const struct option opts[] = {
		{"slots", required_argument, NULL, O_SLOTS},
		{"slots-file", required_argument, NULL, O_SLOTS_FILE},
		{"rows", required_argument, NULL, O_ROWS},
		{"source-dtype", required_argument, NULL, O_SRC},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *list = NULL, *file = NULL, *rows_path = NULL, *dir;
	eg_dtype src = 0, raw_src;
	eg_meta m;
	eg_cli_rows rows;
	uint64_t *slots = NULL, gen = 0, width;
	size_t n = 0, bad = 0;
	void *buf = NULL;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SLOTS: list = optarg; break;
		case O_SLOTS_FILE: file = optarg; break;
		case O_ROWS: rows_path = optarg; break;
		case O_SRC:
			if (eg_dtype_parse(optarg, &src) != 0 || src == EG_DTYPE_E4M3)
				return eg_cli_usage_error(cmd, "--source-dtype must be f32, f16, bf16 or u8, not '%s'", optarg);
			break;
		case 'h':
		case O_HELP: eg_cli_table_usage(stdout); return EG_CLI_OK;
		default: return eg_cli_bad_option(cmd, argv, optind, optopt);
		}
	}
	if (optind != argc - 1)
		return eg_cli_usage_error(cmd, optind >= argc ? "DIR is required"
		                                               : "exactly one DIR expected");
	dir = argv[optind];
	if (!rows_path)
		return eg_cli_usage_error(cmd, "--rows ROWS is required");
	rc = eg_cli_load_slots(cmd, list, file, &slots, &n);
	if (rc != EG_CLI_OK)
		return rc;
	rc = read_layout(dir, &m);
	if (rc != EG_CLI_OK)
		goto out_slots;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= m.slots) {
			rc = eg_cli_fail("%s: slot %llu (index %zu) is out of range: the table has %llu slots",
			                 dir, (unsigned long long)slots[i], i,
			                 (unsigned long long)m.slots);
			goto out_slots;
		}
	}
	/* A raw file holds rows in the table's own layout unless told
	 * otherwise; raw e4m3 rows are their stored bytes. */
	raw_src = src ? src : m.dtype == EG_DTYPE_E4M3 ? EG_DTYPE_U8 : m.dtype;
	width = raw_src == EG_DTYPE_U8 && m.dtype == EG_DTYPE_E4M3 ? m.row_bytes : m.dim;
	rc = eg_cli_rows_open(&rows, cmd, rows_path, src, raw_src, width);
	if (rc != EG_CLI_OK)
		goto out_slots;
	if (rows.n != n) {
		rc = eg_cli_fail("%s: %llu rows for %zu slots", rows_path,
		                 (unsigned long long)rows.n, n);
		goto out;
	}
	rc = eg_cli_rows_check(&rows, &m);
	if (rc != EG_CLI_OK)
		goto out;
	buf = malloc(n * m.row_bytes);
	if (!buf) {
		rc = eg_cli_fail("out of memory for %zu rows", n);
		goto out;
	}
	rc = eg_cli_rows_convert(&rows, 0, n, &m, buf);
	if (rc == 0)
		rc = eg_table_update(dir, slots, n, buf, &bad, &gen);
	if (rc == EG_ERANGE)
		rc = eg_cli_fail("%s: slot %llu (index %zu) is out of range", dir,
		                 (unsigned long long)slots[bad], bad);
	else if (rc != 0)
		rc = eg_cli_fail("%s: update failed, nothing written: %s", dir, eg_strerror(rc));
	else
		printf("%s: updated %zu rows, generation %llu\n", dir, n,
		       (unsigned long long)gen);
out:
	free(buf);
	eg_cli_rows_close(&rows);
out_slots:
	free(slots);
	return rc;
}
