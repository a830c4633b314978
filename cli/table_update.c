/* table_update.c - `engram table update`: patch rows of a live table in
 * place (one write transaction; readers keep their snapshot). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

/* The table's layout, read under a snapshot that is closed again before
 * the write: LMDB allows one open of an environment per process. */
static int read_layout(const char *dir, eg_meta *out)
{
	eg_table *t;
	eg_snapshot *s;
	int rc = cli_open_table(dir, &t, &s);

	if (rc != CLI_OK)
		return rc;
	*out = *eg_snapshot_meta(s);
	out->hash_spec = NULL;
	eg_snapshot_close(s);
	eg_table_close(t);
	return CLI_OK;
}

static int check_range(const char *dir, const uint64_t *slots, size_t n, const eg_meta *m)
{
	for (size_t i = 0; i < n; i++)
		if (slots[i] >= m->slots)
			return cli_fail("%s: slot %llu (index %zu) is out of range: the table has %llu slots",
			                dir, (unsigned long long)slots[i], i,
			                (unsigned long long)m->slots);
	return CLI_OK;
}

/* Converts rows into m's layout and writes them over slots. Exit status. */
static int patch(const char *dir, const uint64_t *slots, size_t n, const cli_rows *rows,
                 const eg_meta *m)
{
	uint64_t gen = 0;
	size_t bad = 0;
	void *buf;
	int rc;

	if (rows->n != n)
		return cli_fail("%s: %llu rows for %zu slots", rows->path,
		                (unsigned long long)rows->n, n);
	rc = cli_rows_check(rows, m);
	if (rc != CLI_OK)
		return rc;
	buf = malloc(n * m->row_bytes);
	if (!buf)
		return cli_fail("out of memory for %zu rows", n);
	rc = cli_rows_convert(rows, 0, n, m, buf);
	if (rc == 0)
		rc = eg_table_update(dir, slots, n, buf, &bad, &gen);
	free(buf);
	if (rc == EG_ERANGE)
		return cli_fail("%s: slot %llu (index %zu) is out of range", dir,
		                (unsigned long long)slots[bad], bad);
	if (rc != 0)
		return cli_fail("%s: update failed, nothing written: %s", dir, eg_strerror(rc));
	printf("%s: updated %zu rows, generation %llu\n", dir, n, (unsigned long long)gen);
	return CLI_OK;
}

int cli_table_update(struct cli_args *a)
{
	const char *dir = a->pos[0];
	eg_dtype src = a->source_dtype, raw_src;
	eg_meta m;
	cli_rows rows;
	uint64_t *slots = NULL, width;
	size_t n = 0;
	int rc;

	if (!a->rows)
		return cli_usage_error(a->cmd, "--rows ROWS is required");
	rc = cli_load_slots(a->cmd, a->slots_list, a->slots_file, &slots, &n);
	if (rc != CLI_OK)
		return rc;
	rc = read_layout(dir, &m);
	if (rc == CLI_OK)
		rc = check_range(dir, slots, n, &m);
	if (rc != CLI_OK)
		goto out;
	/* A raw file holds rows in the table's own layout unless told
	 * otherwise; raw e4m3 rows are their stored bytes. */
	raw_src = src ? src : m.dtype == EG_DTYPE_E4M3 ? EG_DTYPE_U8 : m.dtype;
	width = raw_src == EG_DTYPE_U8 && m.dtype == EG_DTYPE_E4M3 ? m.row_bytes : m.dim;
	rc = cli_rows_open(&rows, a->cmd, a->rows, src, raw_src, width);
	if (rc != CLI_OK)
		goto out;
	rc = patch(dir, slots, n, &rows, &m);
	cli_rows_close(&rows);
out:
	free(slots);
	return rc;
}
