/* output.c - rows to a .npy file or as text lines (see output.h). */
#include "output.h"
#include "cli.h"
#include "eg_dtype.h"
#include "eg_npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cli_npy_descr(const struct cli_layout *l, uint64_t *cols)
{
	*cols = l->dim;
	switch (l->dtype) {
	case EG_DTYPE_F32: return "<f4";
	case EG_DTYPE_F16: return "<f2";
	case EG_DTYPE_BF16: return "<u2";
	default:
		*cols = l->row_bytes;
		return "|u1";
	}
}

struct npy_rows {
	const struct cli_layout *l;
	uint64_t n;
	const void *rows;
};

static int write_npy(FILE *f, void *arg)
{
	const struct npy_rows *r = arg;
	uint64_t cols;
	const char *descr = cli_npy_descr(r->l, &cols);

	if (eg_npy_write_header(f, descr, 2, r->n, cols) < 0)
		return -1;
	if (r->n && fwrite(r->rows, r->l->row_bytes, r->n, f) != r->n)
		return -1;
	return 0;
}

int cli_save_rows(const char *who, const char *path, const struct cli_layout *l,
                  uint64_t n, const void *rows)
{
	struct npy_rows r = { l, n, rows };

	return cli_save_file(who, path, write_npy, &r);
}

int cli_save_file(const char *who, const char *path, int (*put)(FILE *f, void *arg),
                  void *arg)
{
	struct stat st;
	char tmp[4096];
	FILE *f;
	int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode), e;

	if (in_place)
		snprintf(tmp, sizeof tmp, "%s", path);
	else if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
		return cli_fail("%s%s: path too long", who, path);
	f = fopen(tmp, "wb");
	if (!f)
		return cli_fail("%s%s: %s", who, path, strerror(errno));
	if (put(f, arg) < 0 || fflush(f) != 0 ||
	    (!in_place && fsync(fileno(f)) != 0)) {
		e = errno;
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0 || (!in_place && rename(tmp, path) != 0)) {
		e = errno;
		goto fail;
	}
	return CLI_OK;
fail:
	if (!in_place)
		unlink(tmp);
	return cli_fail("%swriting %s: %s", who, path, strerror(e));
}

void cli_print_row(const struct cli_layout *l, const unsigned char *row, float *vals)
{
	if (!vals) {
		for (uint32_t j = 0; j < l->row_bytes; j++)
			printf(" %u", row[j]);
	} else {
		eg_rows_to_f32(l->dtype, l->dim, l->scale_block, row, 1, vals);
		for (uint32_t j = 0; j < l->dim; j++)
			printf(" %.9g", (double)vals[j]);
	}
	putchar('\n');
}

float *cli_values_buf(const struct cli_layout *l)
{
	if (l->dtype == EG_DTYPE_U8)
		return NULL;
	return malloc((size_t)(l->dim ? l->dim : 1) * sizeof(float));
}

int cli_print_rows(const struct cli_layout *l, const uint64_t *slots, size_t n,
                   const unsigned char *rows)
{
	float *vals = cli_values_buf(l);

	if (!vals && l->dtype != EG_DTYPE_U8)
		return cli_fail("out of memory");
	for (size_t i = 0; i < n; i++) {
		printf("%llu:", (unsigned long long)slots[i]);
		cli_print_row(l, rows + i * l->row_bytes, vals);
	}
	free(vals);
	return CLI_OK;
}
