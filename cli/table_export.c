/* table_export.c - `engram table export`: chosen rows to .npy or text. */
#include "table.h"
#include "output.h"

#include <stdlib.h>

static void layout_of(const eg_meta *m, struct cli_layout *l)
{
	l->dtype = m->dtype;
	l->dim = m->dim;
	l->scale_block = m->scale_block;
	l->row_bytes = m->row_bytes;
}

/* Reads the rows of slots from the table in dir, then writes them out. */
static int export(const struct cli_args *a, const uint64_t *slots, size_t n)
{
	const char *dir = a->pos[0];
	struct cli_layout l;
	eg_table *t;
	eg_snapshot *s;
	const eg_meta *m;
	size_t bad = 0;
	void *rows = NULL;
	int rc = cli_open_table(dir, &t, &s);

	if (rc != CLI_OK)
		return rc;
	m = eg_snapshot_meta(s);
	layout_of(m, &l);
	if (n > SIZE_MAX / m->row_bytes || !(rows = malloc(n * m->row_bytes))) {
		rc = cli_fail("out of memory for %zu rows", n);
		goto out;
	}
	rc = eg_snapshot_gather(s, slots, n, rows, &bad);
	if (rc == EG_ERANGE)
		rc = cli_fail("%s: slot %llu (index %zu) is out of range: the table has %llu slots",
		              dir, (unsigned long long)slots[bad], bad,
		              (unsigned long long)m->slots);
	else if (rc != 0)
		rc = cli_fail("%s: %s", dir, eg_strerror(rc));
	else
		rc = a->out ? cli_save_rows("", a->out, &l, n, rows) : cli_print_rows(&l, slots, n, rows);
out:
	free(rows);
	eg_snapshot_close(s);
	eg_table_close(t);
	return rc;
}

int cli_table_export(struct cli_args *a)
{
	uint64_t *slots = NULL;
	size_t n = 0;
	int rc = cli_load_slots(a->cmd, a->slots_list, a->slots_file, &slots, &n);

	if (rc != CLI_OK)
		return rc;
	rc = export(a, slots, n);
	free(slots);
	return rc;
}
