/* table_create.c - `engram table create` (zero or random rows) and
 * `engram table import` (rows from a .npy or raw file): both build a new
 * table chunk by chunk straight into the LMDB map. */
#include "table.h"
#include "eg_dtype.h"
#include "progress.h"

#include <errno.h>
#include <libgen.h>
#include <lmdb.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- the build loop --------------------------------------------------- */

static int enough_space(const char *dir, int existed, const eg_meta *m)
{
	struct statvfs sv;
	char *copy = strdup(dir);
	uint64_t need = m->slots * m->row_bytes, avail;
	int rc;

	if (!copy)
		return CLI_OK;
	rc = statvfs(existed ? dir : dirname(copy), &sv);
	free(copy);
	if (rc != 0 || sv.f_blocks == 0)
		return CLI_OK; /* cannot tell: let the writes find out */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* LMDB adds a page header per chunk, the checksums and the B+tree. */
	need += need / 128 + (1u << 20);
	if (avail < need)
		return cli_fail("%s: not enough free space: the table needs %.2f GB, the filesystem has %.2f GB",
		                dir, (double)need / 1e9, (double)avail / 1e9);
	return CLI_OK;
}

/* After a failed build in a directory we created, leave nothing behind. */
static void remove_partial(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

int cli_build_table(const char *dir, eg_meta *m, cli_fill_fn fill, void *arg,
                    const char *label, const char *why)
{
	struct stat st;
	cli_progress bar;
	eg_builder *b = NULL;
	uint64_t chunks, first = 0;
	int existed = stat(dir, &st) == 0, rc, full;
	const char *what = "building";

	if (enough_space(dir, existed, m) != CLI_OK)
		return CLI_FAIL;
	rc = eg_builder_open(dir, m, &b);
	if (rc != 0) {
		b = NULL;
		what = "cannot create the table";
		goto fail;
	}
	chunks = eg_builder_chunks(b);
	cli_progress_init(&bar, label, m->slots, m->row_bytes);
	for (uint64_t c = 0; c < chunks; c++) {
		uint64_t n = eg_builder_chunk_rows(b, c);
		void *mem;

		rc = eg_builder_next_chunk(b, &mem);
		if (rc == 0)
			rc = fill(arg, m, first, n, mem);
		if (rc != 0) {
			cli_progress_end(&bar, 0);
			goto fail;
		}
		first += n;
		cli_progress_update(&bar, first);
	}
	cli_progress_note(&bar, "writing checksums and committing...");
	rc = eg_builder_finish(b);
	b = NULL;
	cli_progress_end(&bar, rc == 0);
	if (rc != 0)
		goto fail;
	printf("%s: %llu slots x %u %s (%u bytes per row), %llu chunks of %llu slots\n",
	       dir, (unsigned long long)m->slots, m->dim, eg_dtype_name(m->dtype),
	       eg_row_bytes(m->dtype, m->dim, m->scale_block),
	       (unsigned long long)chunks, (unsigned long long)m->chunk_slots);
	return CLI_OK;
fail:
	/* A full disk is -ENOSPC, MDB_MAP_FULL or, from a failed flush, -EIO
	 * (storage errors are never positive); the builder has released the
	 * space by now. */
	full = rc == -ENOSPC || rc == -EIO || rc == MDB_MAP_FULL;
	if (b)
		eg_builder_abort(b);
	if (!existed)
		remove_partial(dir);
	if (rc == EG_EEXIST)
		return cli_fail("%s: already holds a table (build into a new directory, then publish it)", dir);
	if (why && *why)
		return cli_fail("%s", why);
	if (full)
		return cli_fail("%s: %s: %s (is the disk full?)", dir, what,
		                eg_strerror(rc));
	return cli_fail("%s: %s: %s", dir, what, eg_strerror(rc));
}

int cli_table_meta(const struct cli_args *a, eg_meta *m, eg_hash **hash,
                   const char *rows_of)
{
	const char *dir = a->pos[0], *base;

	memset(m, 0, sizeof *m);
	base = strrchr(dir, '/');
	base = base && base[1] ? base + 1 : dir;
	snprintf(m->name, sizeof m->name, "%s", a->name ? a->name : base);
	m->slots = a->slots;
	m->dim = a->dim;
	m->dtype = a->dtype;
	m->scale_block = a->scale_block;
	m->chunk_slots = a->chunk_slots;
	m->generation = a->generation; /* 0: the builder starts at 1 */
	m->row_bytes = eg_row_bytes(m->dtype, m->dim, m->scale_block);
	if (m->row_bytes == 0) {
		if (m->scale_block && m->dtype != EG_DTYPE_E4M3)
			return cli_usage_error(a->cmd, "--scale-block is only for e4m3 tables");
		return cli_usage_error(a->cmd, "--scale-block %u does not divide dim %u",
		                       m->scale_block, m->dim);
	}
	*hash = NULL;
	if (a->hash) {
		uint64_t want;
		int rc = cli_load_hash(a->hash, hash);

		if (rc != CLI_OK)
			return rc;
		want = eg_hash_table_slots(*hash);
		if (want != m->slots) {
			rc = cli_fail("%s: the hash spec needs %llu slots (the sum of its %u "
			              "per-head moduli), but %s has %llu", a->hash,
			              (unsigned long long)want, eg_hash_rows_per_token(*hash),
			              rows_of, (unsigned long long)m->slots);
			eg_hash_free(*hash);
			*hash = NULL;
			return rc;
		}
		m->hash_spec = eg_hash_to_json(*hash);
		if (!m->hash_spec) {
			eg_hash_free(*hash);
			*hash = NULL;
			return cli_fail("out of memory");
		}
	}
	return CLI_OK;
}

/* ---- create ----------------------------------------------------------- */

struct fill {
	int random;
	uint64_t seed;
};

static uint64_t splitmix(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Value j of slot s: a sum of four 16-bit uniforms, centred and scaled to
 * unit variance (a cheap bell curve), the same whatever the chunk size. */
static float random_value(uint64_t seed, uint64_t idx)
{
	uint64_t h = splitmix(seed, idx);
	double sum = 0;

	for (int k = 0; k < 4; k++)
		sum += ((double)((h >> (16 * k)) & 0xffff) + 0.5) / 65536.0;
	return (float)((sum - 2.0) * sqrt(3.0));
}

static int fill_rows(void *arg, const eg_meta *m, uint64_t first, uint64_t n,
                     void *dst)
{
	const struct fill *f = arg;
	unsigned char *out = dst;
	uint64_t step = 65536 / m->dim ? 65536 / m->dim : 1;
	float *buf;
	int rc = 0;

	if (!f->random) {
		memset(dst, 0, n * m->row_bytes);
		return 0;
	}
	if (m->dtype == EG_DTYPE_U8) {
		for (uint64_t i = 0; i < n * m->dim; i++)
			out[i] = (unsigned char)splitmix(f->seed, first * m->dim + i);
		return 0;
	}
	buf = malloc(step * m->dim * sizeof *buf);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < n && rc == 0; i += step) {
		uint64_t k = n - i < step ? n - i : step;
		uint64_t base = (first + i) * m->dim;

		for (uint64_t j = 0; j < k * m->dim; j++)
			buf[j] = random_value(f->seed, base + j);
		rc = eg_rows_from_f32(m->dtype, m->dim, m->scale_block, buf, k,
		                      out + i * m->row_bytes);
	}
	free(buf);
	return rc;
}

static int parse_fill(const char *cmd, const char *s, struct fill *f)
{
	memset(f, 0, sizeof *f);
	if (!s || strcmp(s, "zero") == 0)
		return CLI_OK;
	if (strcmp(s, "random") == 0) {
		f->random = 1;
		return CLI_OK;
	}
	if (strncmp(s, "random:", 7) == 0 && cli_parse_u64(s + 7, &f->seed) == 0) {
		f->random = 1;
		return CLI_OK;
	}
	return cli_usage_error(cmd, "--fill must be zero, random or random:SEED, not '%s'", s);
}

int cli_table_create(struct cli_args *a)
{
	struct fill f;
	eg_meta m;
	eg_hash *hash = NULL;
	int rc;

	if (!a->dim)
		return cli_usage_error(a->cmd, "--dim is required");
	if (!a->dtype)
		a->dtype = EG_DTYPE_F32;
	rc = parse_fill(a->cmd, a->fill, &f);
	if (rc != CLI_OK)
		return rc;
	if (!a->slots && !a->hash)
		return cli_usage_error(a->cmd, "--slots is required (or --hash, which sets it)");
	if (!a->slots) {
		/* The spec decides the slot count. */
		rc = cli_load_hash(a->hash, &hash);
		if (rc != CLI_OK)
			return rc;
		a->slots = eg_hash_table_slots(hash);
		eg_hash_free(hash);
		hash = NULL;
	}
	rc = cli_table_meta(a, &m, &hash, "--slots");
	if (rc != CLI_OK)
		return rc;
	rc = cli_build_table(a->pos[0], &m, fill_rows, &f, "create", NULL);
	eg_hash_free(hash);
	eg_meta_clear(&m);
	return rc;
}

/* ---- import ----------------------------------------------------------- */

static int fill_from(void *arg, const eg_meta *m, uint64_t first, uint64_t n,
                     void *dst)
{
	return cli_rows_convert(arg, first, n, m, dst);
}

int cli_table_import(struct cli_args *a)
{
	cli_rows rows;
	eg_meta m;
	eg_hash *hash = NULL;
	uint64_t width = 0;
	eg_dtype src = a->source_dtype, target = a->dtype ? a->dtype : src;
	int rc;

	if (!a->from)
		return cli_usage_error(a->cmd, "--from ROWS is required");
	if (cli_is_checkpoint(a))
		return cli_import_checkpoint(a);
	/* A raw file's row width follows from --dim and the target layout:
	 * raw u8 into e4m3 is the stored bytes, scales included. */
	if (a->dim)
		width = src == EG_DTYPE_U8 && target == EG_DTYPE_E4M3
		            ? eg_row_bytes(target, a->dim, a->scale_block) : a->dim;
	rc = cli_rows_open(&rows, a->cmd, a->from, src, src, width);
	if (rc != CLI_OK)
		return rc;
	if (!a->dtype)
		a->dtype = rows.type;
	if (!a->dim) {
		a->dim = (uint32_t)rows.width;
		if (rows.type == EG_DTYPE_U8 && a->dtype == EG_DTYPE_E4M3 && a->scale_block)
			a->dim = (uint32_t)(rows.width * a->scale_block / (a->scale_block + 1));
	}
	a->slots = rows.n;
	if (rows.n == 0 || rows.width == 0 || rows.width > UINT32_MAX) {
		rc = cli_fail("%s: no rows to import (shape %llu x %llu)", a->from,
		              (unsigned long long)rows.n, (unsigned long long)rows.width);
		goto out;
	}
	rc = cli_table_meta(a, &m, &hash, a->from);
	if (rc != CLI_OK)
		goto out;
	rc = cli_rows_check(&rows, &m);
	if (rc == CLI_OK)
		rc = cli_build_table(a->pos[0], &m, fill_from, &rows, "import", NULL);
	eg_hash_free(hash);
	eg_meta_clear(&m);
out:
	cli_rows_close(&rows);
	return rc;
}
