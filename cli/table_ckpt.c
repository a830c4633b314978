/* table_ckpt.c - `engram table import` from a safetensors checkpoint: one
 * 2-D tensor (and, for F8_E4M3 values, its block-scale tensor) converted
 * row by row from the mapped file straight into the new table. */
#include "table.h"
#include "eg_safetensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* One tensor of a checkpoint, its shard open and mapped. */
struct ckpt_tensor {
	char *path;
	eg_st *st;
	const eg_st_tensor *t;
	const unsigned char *data;
};

struct ckpt_src {
	cli_rows rows;          /* the values, as table_rows.c converts them */
	struct ckpt_tensor vals, scales;
	uint64_t scale_cols;
	char why[320];          /* a bad scale, for cli_build_table's message */
};

int cli_is_checkpoint(const struct cli_args *a)
{
	struct stat sb;

	return a->tensor || a->scale_tensor || cli_ends_with(a->from, ".safetensors") ||
	       cli_ends_with(a->from, ".json") || (stat(a->from, &sb) == 0 && S_ISDIR(sb.st_mode));
}

static void ckpt_close(struct ckpt_tensor *c)
{
	eg_st_close(c->st);
	free(c->path);
	memset(c, 0, sizeof *c);
}

/* "a, b, c, ..." : a few of st's tensor names, for a tensor not found. */
static void some_names(const eg_st *st, char *buf, size_t len)
{
	size_t n = eg_st_count(st), used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && i < 4 && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s'%s'", i ? ", " : "",
		                         eg_st_tensor_at(st, i)->name);
	if (n > 4 && used < len)
		snprintf(buf + used, len - used, ", ...");
}

/* Finds tensor name of the checkpoint ckpt, opens its shard and checks it
 * is a 2-D tensor. Returns an exit status; c is closed on failure. */
static int ckpt_open(const char *ckpt, const char *name, struct ckpt_tensor *c)
{
	char err[512], names[256];
	int rc;

	memset(c, 0, sizeof *c);
	rc = eg_st_locate(ckpt, name, &c->path, err, sizeof err);
	if (rc == EG_ECKPT)
		return cli_fail("%s: %s", ckpt, err);
	if (rc != 0)
		return cli_fail("%s: %s", ckpt, eg_strerror(rc));
	rc = eg_st_open(c->path, &c->st, err, sizeof err);
	if (rc != 0) {
		rc = cli_fail("%s: %s", c->path, err);
		goto fail;
	}
	c->t = eg_st_find(c->st, name);
	if (!c->t) {
		some_names(c->st, names, sizeof names);
		rc = cli_fail("%s: no tensor '%s' (it holds %zu: %s)", c->path, name,
		              eg_st_count(c->st), names);
		goto fail;
	}
	if (c->t->ndim != 2) {
		rc = cli_fail("%s: tensor '%s' is %d-D; a table is a 2-D tensor [rows, dim]",
		              c->path, name, c->t->ndim);
		goto fail;
	}
	c->data = eg_st_data(c->st, c->t);
	return CLI_OK;
fail:
	ckpt_close(c);
	return rc;
}

/* The table dtype of a tensor dtype engram imports, else 0. */
static eg_dtype table_dtype(eg_st_dtype t)
{
	switch (t) {
	case EG_ST_F32: return EG_DTYPE_F32;
	case EG_ST_F16: return EG_DTYPE_F16;
	case EG_ST_BF16: return EG_DTYPE_BF16;
	case EG_ST_U8: return EG_DTYPE_U8;
	case EG_ST_F8_E4M3: return EG_DTYPE_E4M3;
	default: return 0;
	}
}

/* Drops the mapping's pages of [p, p + len) from this process once read
 * (the page cache keeps them), so a tensor of any size costs little RSS. */
static void release(const unsigned char *p, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + len) & ~(page - 1);

	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ---- block scales ------------------------------------------------------ */

/* The ue8m0 byte of a scale that is exactly 2^(e - 127), e in 0..254, given
 * as F32 or BF16 bits (exponent field, mantissa field, mantissa width); -1
 * for anything else. 2^-127 is the subnormal with only the top mantissa bit. */
static int pow2_byte(uint32_t exp, uint32_t man, unsigned man_bits)
{
	if (exp >= 1 && exp <= 254 && man == 0)
		return (int)exp;
	if (exp == 0 && man == 1u << (man_bits - 1))
		return 0;
	return -1;
}

static int scale_byte(eg_st_dtype t, const unsigned char *p, float *value)
{
	uint32_t u;
	float f;

	switch (t) {
	case EG_ST_F8_E8M0:
		return p[0];
	case EG_ST_F32:
		u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		break;
	default: /* BF16 */
		u = ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16;
		break;
	}
	memcpy(&f, &u, sizeof f);
	*value = f;
	if (u >> 31)
		return -1;
	return t == EG_ST_F32 ? pow2_byte(u >> 23, u & 0x7fffff, 23)
	                      : pow2_byte(u >> 23, (u >> 16) & 0x7f, 7);
}

/* e4m3 rows: the value bytes, then each row's scales as ue8m0 bytes. */
static int fill_scaled(void *arg, const eg_meta *m, uint64_t first, uint64_t n, void *dst)
{
	struct ckpt_src *s = arg;
	const eg_st_tensor *st = s->scales.t;
	size_t esize = eg_st_dtype_size(st->dtype), nb = (size_t)s->scale_cols;
	const unsigned char *v = s->vals.data + first * m->dim;
	const unsigned char *sc = s->scales.data + first * nb * esize;
	unsigned char *out = dst;
	float f = 0;

	for (uint64_t r = 0; r < n; r++, out += m->row_bytes) {
		memcpy(out, v + r * m->dim, m->dim);
		for (size_t j = 0; j < nb; j++) {
			int e = scale_byte(st->dtype, sc + (r * nb + j) * esize, &f);

			if (e < 0) {
				snprintf(s->why, sizeof s->why,
				         "%s: scale tensor '%s': row %llu, column %zu is %.9g, not a "
				         "power of two from 2^-127 to 2^127 (engram stores ue8m0 scales "
				         "and does not requantize)", s->scales.path, st->name,
				         (unsigned long long)(first + r), j, (double)f);
				return EG_EINVAL;
			}
			out[m->dim + j] = (unsigned char)e;
		}
	}
	release(v, n * m->dim);
	release(sc, n * nb * esize);
	return 0;
}

static int fill_rows(void *arg, const eg_meta *m, uint64_t first, uint64_t n, void *dst)
{
	struct ckpt_src *s = arg;
	int rc = cli_rows_convert(&s->rows, first, n, m, dst);

	release(s->rows.data + first * s->rows.stride, n * s->rows.stride);
	return rc;
}

/* Opens and checks the scale tensor of the F8_E4M3 values: [rows, dim / B]
 * of F8_E8M0, F32 or BF16; sets a->scale_block (from its shape when not
 * given). Returns an exit status. */
static int open_scales(struct cli_args *a, struct ckpt_src *s)
{
	const eg_st_tensor *v = s->vals.t, *t;
	uint64_t cols;
	int rc = ckpt_open(a->from, a->scale_tensor, &s->scales);

	if (rc != CLI_OK)
		return rc;
	t = s->scales.t;
	cols = t->shape[1];
	if (t->dtype != EG_ST_F8_E8M0 && t->dtype != EG_ST_F32 && t->dtype != EG_ST_BF16)
		return cli_fail("%s: scale tensor '%s' is %s; block scales must be F8_E8M0, or F32 "
		                "or BF16 powers of two", s->scales.path, t->name, t->dtype_name);
	if (t->shape[0] != v->shape[0])
		return cli_fail("%s: scale tensor '%s' has %llu rows, values '%s' have %llu",
		                s->scales.path, t->name, (unsigned long long)t->shape[0], v->name,
		                (unsigned long long)v->shape[0]);
	if (!a->scale_block && cols && v->shape[1] % cols == 0)
		a->scale_block = (uint32_t)(v->shape[1] / cols);
	if (!a->scale_block || cols != v->shape[1] / a->scale_block ||
	    v->shape[1] % a->scale_block != 0)
		return cli_fail("%s: scale tensor '%s' has %llu columns, which is not dim %llu / "
		                "scale block %u", s->scales.path, t->name, (unsigned long long)cols,
		                (unsigned long long)v->shape[1], a->scale_block);
	s->scale_cols = cols;
	return CLI_OK;
}

/* Checks the values tensor and what the options ask of it; fills a's
 * slots, dim, dtype and scale_block. Returns an exit status. */
static int plan(struct cli_args *a, struct ckpt_src *s)
{
	const eg_st_tensor *t = s->vals.t;
	const char *path = s->vals.path;
	eg_dtype src = table_dtype(t->dtype);

	if (!src)
		return cli_fail("%s: tensor '%s' is %s; engram imports BF16, F16, F32, U8 and "
		                "F8_E4M3 tensors", path, t->name, t->dtype_name);
	if (t->shape[0] == 0 || t->shape[1] == 0 || t->shape[1] > UINT32_MAX)
		return cli_fail("%s: tensor '%s' of shape [%llu, %llu] has no rows to import",
		                path, t->name, (unsigned long long)t->shape[0],
		                (unsigned long long)t->shape[1]);
	if (a->dim && a->dim != t->shape[1])
		return cli_fail("%s: --dim %u, but tensor '%s' has %llu columns", path, a->dim,
		                t->name, (unsigned long long)t->shape[1]);
	if (!a->dtype)
		a->dtype = src;
	a->slots = t->shape[0];
	a->dim = (uint32_t)t->shape[1];
	if (src != EG_DTYPE_E4M3) {
		if (a->scale_tensor)
			return cli_fail("%s: --scale-tensor is for F8_E4M3 values; tensor '%s' is %s",
			                path, t->name, t->dtype_name);
		s->rows = (cli_rows){ .path = path, .type = src, .n = a->slots, .width = a->dim,
		                      .stride = a->dim * eg_st_dtype_size(t->dtype),
		                      .data = s->vals.data };
		return CLI_OK;
	}
	if (a->dtype != EG_DTYPE_E4M3)
		return cli_fail("%s: tensor '%s' is F8_E4M3: it imports into an e4m3 table only "
		                "(not --dtype %s)", path, t->name, eg_dtype_name(a->dtype));
	if (a->scale_tensor)
		return open_scales(a, s);
	if (a->scale_block)
		return cli_fail("%s: --scale-block %u needs --scale-tensor, the tensor of the "
		                "values' block scales", path, a->scale_block);
	s->rows = (cli_rows){ .path = path, .type = EG_DTYPE_E4M3, .n = a->slots, .width = a->dim,
	                      .stride = a->dim, .data = s->vals.data };
	return CLI_OK;
}

int cli_import_checkpoint(struct cli_args *a)
{
	struct ckpt_src s;
	char rows_of[320];
	eg_meta m;
	eg_hash *hash = NULL;
	int rc;

	memset(&s, 0, sizeof s);
	if (!a->tensor)
		return cli_usage_error(a->cmd, "--tensor NAME is required to import from a checkpoint");
	if (a->source_dtype)
		return cli_usage_error(a->cmd, "--source-dtype is for raw files: a checkpoint "
		                       "names its dtypes");
	rc = ckpt_open(a->from, a->tensor, &s.vals);
	if (rc == CLI_OK)
		rc = plan(a, &s);
	if (rc != CLI_OK)
		goto out;
	snprintf(rows_of, sizeof rows_of, "tensor '%s'", a->tensor);
	rc = cli_table_meta(a, &m, &hash, rows_of);
	if (rc != CLI_OK)
		goto out;
	madvise((void *)s.vals.data, s.vals.t->end - s.vals.t->begin, MADV_SEQUENTIAL);
	if (s.scales.t)
		rc = cli_build_table(a->pos[0], &m, fill_scaled, &s, "import", s.why);
	else if ((rc = cli_rows_check(&s.rows, &m)) == CLI_OK)
		rc = cli_build_table(a->pos[0], &m, fill_rows, &s, "import", NULL);
	eg_hash_free(hash);
	eg_meta_clear(&m);
out:
	ckpt_close(&s.vals);
	ckpt_close(&s.scales);
	return rc;
}
