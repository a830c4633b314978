/* table_rows.c - rows to import or patch, from a .npy or a raw file, and
 * their conversion into a table's row layout. */
#include "table.h"
#include "eg_dtype.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Values converted per step through the float buffer. */
#define BATCH_VALUES 65536

static size_t type_size(eg_dtype t)
{
	switch (t) {
	case EG_DTYPE_F32: return 4;
	case EG_DTYPE_F16:
	case EG_DTYPE_BF16: return 2;
	default: return 1;
	}
}

static int is_npy(const char *path, int *yes)
{
	unsigned char magic[6];
	size_t len = strlen(path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -1;
	got = read(fd, magic, sizeof magic);
	close(fd);
	*yes = (got == 6 && memcmp(magic, "\x93NUMPY", 6) == 0) ||
	       (len >= 4 && strcmp(path + len - 4, ".npy") == 0);
	return 0;
}

static int open_npy(cli_rows *r, const char *path, eg_dtype src)
{
	char err[256];
	eg_dtype t;

	if (eg_npy_open(path, &r->npy, err, sizeof err) < 0)
		return cli_fail("%s: %s", path, err);
	switch (r->npy.type) {
	case EG_NPY_F4: t = EG_DTYPE_F32; break;
	case EG_NPY_F2: t = EG_DTYPE_F16; break;
	case EG_NPY_U1: t = EG_DTYPE_U8; break;
	case EG_NPY_U2:
		if (src != EG_DTYPE_F16 && src != EG_DTYPE_BF16)
			return cli_fail("%s: <u2 rows: say what the 16-bit values are with --source-dtype bf16 or f16", path);
		t = src;
		break;
	default:
		return cli_fail("%s: rows must be <f4, <f2 or |u1 (or <u2 with --source-dtype), not %s",
		                path, eg_npy_descr(r->npy.type));
	}
	if (src && src != t)
		return cli_fail("%s: holds %s values, not %s as --source-dtype says",
		                path, eg_npy_descr(r->npy.type), eg_dtype_name(src));
	if (r->npy.ndim != 2)
		return cli_fail("%s: rows must be a 2-D array (rows, dim), not 1-D", path);
	r->type = t;
	r->n = r->npy.rows;
	r->width = r->npy.cols;
	r->data = r->npy.data;
	return CLI_OK;
}

static int open_raw(cli_rows *r, const char *cmd, const char *path,
                    eg_dtype src, uint64_t width)
{
	struct stat st;
	uint64_t stride;
	int fd;

	if (!src || !width)
		return cli_usage_error(cmd, "%s is not a .npy file: raw rows need --source-dtype and the row width (--dim)", path);
	if (src == EG_DTYPE_E4M3)
		return cli_usage_error(cmd, "--source-dtype must be f32, f16, bf16 or u8 (fp8 rows: give them as u8 bytes)");
	stride = width * type_size(src);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return cli_fail("%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size % stride != 0) {
		close(fd);
		return cli_fail("%s: %lld bytes is not a whole number of %llu-byte rows (%llu %s values)",
		                path, (long long)st.st_size, (unsigned long long)stride,
		                (unsigned long long)width, eg_dtype_name(src));
	}
	if (st.st_size > 0) {
		r->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (r->map == MAP_FAILED) {
			int e = errno;

			r->map = NULL;
			close(fd);
			return cli_fail("%s: %s", path, strerror(e));
		}
		r->map_len = (size_t)st.st_size;
	}
	close(fd);
	r->type = src;
	r->n = (uint64_t)st.st_size / stride;
	r->width = width;
	r->data = r->map;
	return CLI_OK;
}

int cli_rows_open(cli_rows *r, const char *cmd, const char *path,
                  eg_dtype src, eg_dtype raw_src, uint64_t bin_width)
{
	int npy, rc;

	memset(r, 0, sizeof *r);
	r->path = path;
	if (is_npy(path, &npy) < 0)
		return cli_fail("%s: %s", path, strerror(errno));
	rc = npy ? open_npy(r, path, src) : open_raw(r, cmd, path, raw_src, bin_width);
	if (rc != CLI_OK) {
		cli_rows_close(r);
		return rc;
	}
	r->stride = (size_t)(r->width * type_size(r->type));
	return CLI_OK;
}

void cli_rows_close(cli_rows *r)
{
	eg_npy_close(&r->npy);
	if (r->map)
		munmap(r->map, r->map_len);
	r->map = NULL;
}

int cli_rows_check(const cli_rows *r, const eg_meta *m)
{
	const char *want = eg_dtype_name(m->dtype);

	if (r->type == EG_DTYPE_U8) {
		if (m->dtype == EG_DTYPE_U8 && r->width != m->dim)
			return cli_fail("%s: rows are %llu bytes wide; the table's u8 rows are %u",
			                r->path, (unsigned long long)r->width, m->dim);
		if (m->dtype == EG_DTYPE_E4M3 && r->width != m->row_bytes)
			return cli_fail("%s: raw e4m3 rows are %llu bytes wide; the table's rows are %u bytes (dim %u%s)",
			                r->path, (unsigned long long)r->width, m->row_bytes, m->dim,
			                m->scale_block ? " plus scales" : "");
		if (m->dtype != EG_DTYPE_U8 && m->dtype != EG_DTYPE_E4M3)
			return cli_fail("%s: u8 rows are raw bytes and are not converted to %s values",
			                r->path, want);
		return CLI_OK;
	}
	if (m->dtype == EG_DTYPE_U8)
		return cli_fail("%s: refusing to convert %s values to u8 (u8 rows are opaque bytes; import u8 data)",
		                r->path, eg_dtype_name(r->type));
	if (r->width != m->dim)
		return cli_fail("%s: rows have %llu values; the table's dim is %u",
		                r->path, (unsigned long long)r->width, m->dim);
	return CLI_OK;
}

static float load_f32(const unsigned char *p)
{
	float f;

	memcpy(&f, p, 4);
	return f;
}

static uint16_t load_u16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int cli_rows_convert(const cli_rows *r, uint64_t first, uint64_t n,
                     const eg_meta *m, void *dst)
{
	const unsigned char *src = r->data + first * r->stride;
	unsigned char *out = dst;
	uint64_t step;
	float *buf;
	int rc = 0;

	/* Same layout (or raw bytes): copy, which also keeps NaN payloads. */
	if (r->type == m->dtype || r->type == EG_DTYPE_U8) {
		memcpy(dst, src, n * r->stride);
		return 0;
	}
	step = BATCH_VALUES / r->width ? BATCH_VALUES / r->width : 1;
	buf = malloc(step * r->width * sizeof *buf);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < n && rc == 0; i += step) {
		uint64_t k = n - i < step ? n - i : step, vals = k * r->width;
		const unsigned char *p = src + i * r->stride;

		for (uint64_t j = 0; j < vals; j++) {
			switch (r->type) {
			case EG_DTYPE_F32: buf[j] = load_f32(p + 4 * j); break;
			case EG_DTYPE_F16: buf[j] = eg_f16_to_f32(load_u16(p + 2 * j)); break;
			default: buf[j] = eg_bf16_to_f32(load_u16(p + 2 * j)); break;
			}
		}
		rc = eg_rows_from_f32(m->dtype, m->dim, m->scale_block, buf, k,
		                      out + i * m->row_bytes);
	}
	free(buf);
	return rc;
}
