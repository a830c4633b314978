/* table_export.c - `engram table export`: chosen rows, or every row, to a
 * .npy, a safetensors file or text. Rows are streamed from the table's
 * map to the file: no copy of the table in memory, whatever its size. */
#include "table.h"
#include "eg_safetensors.h"
#include "output.h"
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows flushed to the file between progress updates. */
#define STEP_ROWS 65536

struct export {
	const eg_snapshot *s;
	const eg_meta *m;
	struct cli_layout l;
	const uint64_t *slots; /* NULL: every slot, in order */
	uint64_t n;
	const char *tensor, *scale_tensor;
	cli_progress bar;
	uint64_t done, total;  /* rows written, over every pass */
	int show;              /* a progress bar (whole tables) */
};

static const unsigned char *row(const struct export *e, uint64_t i)
{
	return eg_snapshot_row(e->s, e->slots ? e->slots[i] : i);
}

/* Writes bytes [off, off + len) of every row, back to back. */
static int put_columns(FILE *f, struct export *e, uint32_t off, uint32_t len)
{
	for (uint64_t i = 0; i < e->n; i++) {
		if (fwrite_unlocked(row(e, i) + off, len, 1, f) != 1)
			return -1;
		if (e->show && (++e->done % STEP_ROWS) == 0)
			cli_progress_update(&e->bar, e->done);
	}
	return 0;
}

static int put_npy(FILE *f, void *arg)
{
	struct export *e = arg;
	uint64_t cols;
	const char *descr = cli_npy_descr(&e->l, &cols);

	if (eg_npy_write_header(f, descr, 2, e->n, cols) < 0)
		return -1;
	return put_columns(f, e, 0, e->m->row_bytes);
}

static eg_st_dtype st_dtype(eg_dtype t)
{
	switch (t) {
	case EG_DTYPE_F32: return EG_ST_F32;
	case EG_DTYPE_F16: return EG_ST_F16;
	case EG_DTYPE_BF16: return EG_ST_BF16;
	case EG_DTYPE_E4M3: return EG_ST_F8_E4M3;
	default: return EG_ST_U8;
	}
}

/* The values tensor [n, dim] and, for scaled e4m3, the scales [n, dim / B]
 * as F8_E8M0: the ue8m0 bytes the rows end in. */
static int put_safetensors(FILE *f, void *arg)
{
	struct export *e = arg;
	const eg_meta *m = e->m;
	eg_st_spec t[2] = {
		{ e->tensor, st_dtype(m->dtype), 2, { e->n, m->dim } },
		{ e->scale_tensor, EG_ST_F8_E8M0, 2, { e->n, m->scale_block ? m->dim / m->scale_block : 0 } },
	};
	const char *meta[] = { "format", "pt", "engram_table", m->name };
	uint32_t vbytes = m->dim * (uint32_t)eg_st_dtype_size(t[0].dtype);
	size_t nt = m->scale_block ? 2 : 1, len;
	unsigned char *hdr;
	int rc;

	rc = eg_st_header(t, nt, meta, 2, &hdr, &len);
	if (rc != 0) {
		errno = rc == -ENOMEM ? ENOMEM : EINVAL;
		return -1;
	}
	rc = fwrite(hdr, len, 1, f) == 1 ? 0 : -1;
	free(hdr);
	if (rc == 0)
		rc = put_columns(f, e, 0, vbytes);
	if (rc == 0 && nt == 2)
		rc = put_columns(f, e, vbytes, m->row_bytes - vbytes);
	return rc;
}

static int put_text(struct export *e)
{
	float *vals = cli_values_buf(&e->l);

	if (!vals && e->l.dtype != EG_DTYPE_U8)
		return cli_fail("out of memory");
	for (uint64_t i = 0; i < e->n; i++) {
		printf("%llu:", (unsigned long long)(e->slots ? e->slots[i] : i));
		cli_print_row(&e->l, row(e, i), vals);
	}
	free(vals);
	return fflush(stdout) == 0 ? CLI_OK : cli_fail("writing the rows: %s", strerror(errno));
}

static int write_out(const struct cli_args *a, struct export *e)
{
	int st = a->out && cli_ends_with(a->out, ".safetensors"), rc;
	char scale_name[512];

	if (!a->out)
		return put_text(e);
	if (!st && (a->tensor || a->scale_tensor))
		return cli_usage_error(a->cmd, "--tensor and --scale-tensor name the tensors of a "
		                       ".safetensors --out");
	e->tensor = a->tensor ? a->tensor : e->m->name;
	snprintf(scale_name, sizeof scale_name, "%s_scale_inv", e->tensor);
	e->scale_tensor = a->scale_tensor ? a->scale_tensor : scale_name;
	if (st && e->m->scale_block && strcmp(e->tensor, e->scale_tensor) == 0)
		return cli_usage_error(a->cmd, "--tensor and --scale-tensor must differ");
	e->total = st && e->m->scale_block ? 2 * e->n : e->n;
	if (e->show)
		cli_progress_init(&e->bar, "export", e->total, e->m->row_bytes);
	rc = cli_save_file("", a->out, st ? put_safetensors : put_npy, e);
	if (e->show)
		cli_progress_end(&e->bar, rc == CLI_OK);
	return rc;
}

int cli_table_export(struct cli_args *a)
{
	const char *dir = a->pos[0];
	struct export e = { 0 };
	uint64_t *slots = NULL;
	size_t n = 0;
	eg_table *t;
	eg_snapshot *s;
	int rc;

	if (a->all && (a->slots_list || a->slots_file))
		return cli_usage_error(a->cmd, "give --all or the slots, not both");
	if (!a->all && (rc = cli_load_slots(a->cmd, a->slots_list, a->slots_file, &slots, &n)))
		return rc;
	if ((rc = cli_open_table(dir, &t, &s)) != CLI_OK)
		goto out;
	e.s = s;
	e.m = eg_snapshot_meta(s);
	e.l = (struct cli_layout){ e.m->dtype, e.m->dim, e.m->scale_block, e.m->row_bytes };
	e.slots = slots;
	e.n = a->all ? e.m->slots : n;
	e.show = a->all;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= e.m->slots) {
			rc = cli_fail("%s: slot %llu (index %zu) is out of range: the table has %llu slots",
			              dir, (unsigned long long)slots[i], i,
			              (unsigned long long)e.m->slots);
			goto close;
		}
	}
	rc = write_out(a, &e);
close:
	eg_snapshot_close(s);
	eg_table_close(t);
out:
	free(slots);
	return rc;
}
