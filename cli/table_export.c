/* table_export.c - `engram table export`: chosen rows to .npy or text. */
#include "table.h"
#include "eg_dtype.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { O_SLOTS = 256, O_SLOTS_FILE, O_OUT, O_HELP };

/* f32 -> <f4, f16 -> <f2, bf16 -> <u2 (raw bits), e4m3 and u8 -> |u1 of
 * row_bytes columns (the stored bytes, scales included). */
static const char *descr_of(const eg_meta *m, uint64_t *cols)
{
	*cols = m->dim;
	switch (m->dtype) {
	case EG_DTYPE_F32: return "<f4";
	case EG_DTYPE_F16: return "<f2";
	case EG_DTYPE_BF16: return "<u2";
	default:
		*cols = m->row_bytes;
		return "|u1";
	}
}

static int write_npy(FILE *f, const eg_meta *m, size_t n, const void *rows)
{
	uint64_t cols;
	const char *descr = descr_of(m, &cols);

	if (eg_npy_write_header(f, descr, 2, n, cols) < 0)
		return -1;
	if (n && fwrite(rows, m->row_bytes, n, f) != n)
		return -1;
	return 0;
}

/* Writes to a temporary file renamed over path, so a failed export leaves
 * no half file; a path that is not a regular file (a pipe, /dev/...) is
 * written in place. */
static int save(const char *path, const eg_meta *m, size_t n, const void *rows)
{
	struct stat st;
	char tmp[4096];
	FILE *f;
	int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode), e;

	if (in_place)
		snprintf(tmp, sizeof tmp, "%s", path);
	else if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
		return eg_cli_fail("%s: path too long", path);
	f = fopen(tmp, "wb");
	if (!f)
		return eg_cli_fail("%s: %s", path, strerror(errno));
	if (write_npy(f, m, n, rows) < 0 || fflush(f) != 0 ||
	    (!in_place && fsync(fileno(f)) != 0)) {
		e = errno;
		fclose(f);
		if (!in_place)
			unlink(tmp);
		return eg_cli_fail("writing %s: %s", path, strerror(e));
	}
	if (fclose(f) != 0 || (!in_place && rename(tmp, path) != 0)) {
		e = errno;
		if (!in_place)
			unlink(tmp);
		return eg_cli_fail("writing %s: %s", path, strerror(e));
	}
	return EG_CLI_OK;
}

static int print_rows(const eg_meta *m, const uint64_t *slots, size_t n,
                      const unsigned char *rows)
{
	float *vals = NULL;

	if (m->dtype != EG_DTYPE_U8) {
		vals = malloc((size_t)m->dim * sizeof *vals);
		if (!vals)
			return eg_cli_fail("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *row = rows + i * m->row_bytes;

		printf("%llu:", (unsigned long long)slots[i]);
		if (!vals) {
			for (uint32_t j = 0; j < m->dim; j++)
				printf(" %u", row[j]);
		} else {
			eg_rows_to_f32(m->dtype, m->dim, m->scale_block, row, 1, vals);
			for (uint32_t j = 0; j < m->dim; j++)
				printf(" %.9g", (double)vals[j]);
		}
		putchar('\n');
	}
	free(vals);
	return EG_CLI_OK;
}

int eg_cli_table_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{"slots", required_argument, NULL, O_SLOTS},
		{"slots-file", required_argument, NULL, O_SLOTS_FILE},
		{"out", required_argument, NULL, O_OUT},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *list = NULL, *file = NULL, *out = NULL, *dir;
	eg_table *t;
	eg_snapshot *s;
	const eg_meta *m;
	uint64_t *slots = NULL;
	size_t n = 0, bad = 0;
	void *rows = NULL;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SLOTS: list = optarg; break;
		case O_SLOTS_FILE: file = optarg; break;
		case O_OUT: out = optarg; break;
		case 'h':
		case O_HELP: eg_cli_table_usage(stdout); return EG_CLI_OK;
		default: return eg_cli_bad_option(cmd, argv, optind, optopt);
		}
	}
	if (optind != argc - 1)
		return eg_cli_usage_error(cmd, optind >= argc ? "DIR is required"
		                                               : "exactly one DIR expected");
	dir = argv[optind];
	rc = eg_cli_load_slots(cmd, list, file, &slots, &n);
	if (rc != EG_CLI_OK)
		return rc;
	rc = eg_cli_open_table(dir, &t, &s);
	if (rc != EG_CLI_OK) {
		free(slots);
		return rc;
	}
	m = eg_snapshot_meta(s);
	if (n > SIZE_MAX / m->row_bytes || !(rows = malloc(n * m->row_bytes))) {
		rc = eg_cli_fail("out of memory for %zu rows", n);
		goto out;
	}
	rc = eg_snapshot_gather(s, slots, n, rows, &bad);
	if (rc == EG_ERANGE) {
		rc = eg_cli_fail("%s: slot %llu (index %zu) is out of range: the table has %llu slots",
		                 dir, (unsigned long long)slots[bad], bad,
		                 (unsigned long long)m->slots);
		goto out;
	}
	if (rc != 0) {
		rc = eg_cli_fail("%s: %s", dir, eg_strerror(rc));
		goto out;
	}
	rc = out ? save(out, m, n, rows) : print_rows(m, slots, n, rows);
out:
	free(rows);
	free(slots);
	eg_snapshot_close(s);
	eg_table_close(t);
	return rc;
}
