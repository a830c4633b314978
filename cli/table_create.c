/* table_create.c - `engram table create` (zero or random rows) and
 * `engram table import` (rows from a .npy or raw file): both build a new
 * table chunk by chunk straight into the LMDB map. */
#include "table.h"
#include "eg_dtype.h"
#include "progress.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <lmdb.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Options common to create and import. */
struct opts {
	const char *cmd, *dir, *name, *hash_path, *fill, *from;
	uint64_t slots;
	uint32_t dim, scale_block;
	uint64_t chunk_slots, generation;
	int have_slots, have_dim, have_dtype, have_src;
	eg_dtype dtype, src;
};

enum { O_SLOTS = 256, O_DIM, O_DTYPE, O_CHUNK, O_FILL, O_NAME, O_SCALE, O_HASH,
       O_FROM, O_SRC, O_GEN, O_HELP };

static const struct option long_opts[] = {
	{"slots", required_argument, NULL, O_SLOTS},
	{"dim", required_argument, NULL, O_DIM},
	{"dtype", required_argument, NULL, O_DTYPE},
	{"chunk-slots", required_argument, NULL, O_CHUNK},
	{"fill", required_argument, NULL, O_FILL},
	{"name", required_argument, NULL, O_NAME},
	{"scale-block", required_argument, NULL, O_SCALE},
	{"hash", required_argument, NULL, O_HASH},
	{"from", required_argument, NULL, O_FROM},
	{"source-dtype", required_argument, NULL, O_SRC},
	{"generation", required_argument, NULL, O_GEN},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

static const char *opt_name(int c)
{
	for (const struct option *p = long_opts; p->name; p++)
		if (p->val == c)
			return p->name;
	return "?";
}

static int parse_opts(int argc, char **argv, struct opts *o, int import)
{
	int c;

	memset(o, 0, sizeof *o);
	o->cmd = argv[0];
	o->chunk_slots = EG_DEFAULT_CHUNK_SLOTS;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		const char *a = optarg;
		int ok = 1;

		/* Options that belong only to the other subcommand. */
		if ((import && (c == O_SLOTS || c == O_FILL)) ||
		    (!import && (c == O_FROM || c == O_SRC)))
			return eg_cli_usage_error(o->cmd, "option '%s' is not for table %s",
			                          argv[optind - 1], o->cmd);
		switch (c) {
		case O_SLOTS: ok = eg_cli_parse_u64(a, &o->slots) == 0 && o->slots > 0; o->have_slots = 1; break;
		case O_DIM: ok = eg_cli_parse_u32(a, &o->dim) == 0 && o->dim > 0; o->have_dim = 1; break;
		case O_DTYPE: ok = eg_dtype_parse(a, &o->dtype) == 0; o->have_dtype = 1; break;
		case O_SRC: ok = eg_dtype_parse(a, &o->src) == 0; o->have_src = 1; break;
		case O_CHUNK:
			ok = eg_cli_parse_u64(a, &o->chunk_slots) == 0 && o->chunk_slots > 0 &&
			     (o->chunk_slots & (o->chunk_slots - 1)) == 0;
			break;
		case O_SCALE: ok = eg_cli_parse_u32(a, &o->scale_block) == 0; break;
		case O_GEN: ok = eg_cli_parse_u64(a, &o->generation) == 0 && o->generation > 0; break;
		case O_FILL: o->fill = a; break;
		case O_NAME: o->name = a; ok = strlen(a) > 0 && strlen(a) <= EG_NAME_MAX; break;
		case O_HASH: o->hash_path = a; break;
		case O_FROM: o->from = a; break;
		case 'h':
		case O_HELP: eg_cli_table_usage(stdout); return -1;
		default: return eg_cli_bad_option(o->cmd, argv, optind, optopt);
		}
		if (!ok) {
			if (c == O_CHUNK)
				return eg_cli_usage_error(o->cmd, "--chunk-slots must be a power of two, not '%s'", a);
			if (c == O_NAME)
				return eg_cli_usage_error(o->cmd, "--name must be 1 to %d bytes", EG_NAME_MAX);
			return eg_cli_usage_error(o->cmd, "bad value '%s' for --%s", a, opt_name(c));
		}
	}
	if (optind != argc - 1)
		return eg_cli_usage_error(o->cmd, optind >= argc ? "DIR is required"
		                                                   : "exactly one DIR expected");
	o->dir = argv[optind];
	return EG_CLI_OK;
}

/* ---- the build loop --------------------------------------------------- */

typedef int (*fill_fn)(void *arg, const eg_meta *m, uint64_t first,
                       uint64_t n, void *dst);

static int enough_space(const char *dir, int existed, const eg_meta *m)
{
	struct statvfs sv;
	char *copy = strdup(dir);
	uint64_t need = m->slots * m->row_bytes, avail;
	int rc;

	if (!copy)
		return EG_CLI_OK;
	rc = statvfs(existed ? dir : dirname(copy), &sv);
	free(copy);
	if (rc != 0 || sv.f_blocks == 0)
		return EG_CLI_OK; /* cannot tell: let the writes find out */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* LMDB adds a page header per chunk, the checksums and the B+tree. */
	need += need / 128 + (1u << 20);
	if (avail < need)
		return eg_cli_fail("%s: not enough free space: the table needs %.2f GB, the filesystem has %.2f GB",
		                   dir, (double)need / 1e9, (double)avail / 1e9);
	return EG_CLI_OK;
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

static int build(const char *dir, eg_meta *m, fill_fn fill, void *arg,
                 const char *label)
{
	struct stat st;
	eg_cli_progress bar;
	eg_builder *b = NULL;
	uint64_t chunks, first = 0;
	int existed = stat(dir, &st) == 0, rc, full;
	const char *what = "building";

	if (enough_space(dir, existed, m) != EG_CLI_OK)
		return EG_CLI_FAIL;
	rc = eg_builder_open(dir, m, &b);
	if (rc != 0) {
		b = NULL;
		what = "cannot create the table";
		goto fail;
	}
	chunks = eg_builder_chunks(b);
	eg_cli_progress_init(&bar, label, m->slots, m->row_bytes);
	for (uint64_t c = 0; c < chunks; c++) {
		uint64_t n = eg_builder_chunk_rows(b, c);
		void *mem;

		rc = eg_builder_next_chunk(b, &mem);
		if (rc == 0)
			rc = fill(arg, m, first, n, mem);
		if (rc != 0) {
			eg_cli_progress_end(&bar, 0);
			goto fail;
		}
		first += n;
		eg_cli_progress_update(&bar, first);
	}
	eg_cli_progress_note(&bar, "writing checksums and committing...");
	rc = eg_builder_finish(b);
	b = NULL;
	eg_cli_progress_end(&bar, rc == 0);
	if (rc != 0)
		goto fail;
	printf("%s: %llu slots x %u %s (%u bytes per row), %llu chunks of %llu slots\n",
	       dir, (unsigned long long)m->slots, m->dim, eg_dtype_name(m->dtype),
	       eg_row_bytes(m->dtype, m->dim, m->scale_block),
	       (unsigned long long)chunks, (unsigned long long)m->chunk_slots);
	return EG_CLI_OK;
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
		return eg_cli_fail("%s: already holds a table (build into a new directory, then publish it)", dir);
	if (full)
		return eg_cli_fail("%s: %s: %s (is the disk full?)", dir, what,
		                   eg_strerror(rc));
	return eg_cli_fail("%s: %s: %s", dir, what, eg_strerror(rc));
}

/* Fills in what both commands share and checks the layout; exit status. */
static int make_meta(const struct opts *o, eg_meta *m, eg_hash **hash)
{
	const char *base;

	memset(m, 0, sizeof *m);
	base = strrchr(o->dir, '/');
	base = base && base[1] ? base + 1 : o->dir;
	snprintf(m->name, sizeof m->name, "%s", o->name ? o->name : base);
	m->slots = o->slots;
	m->dim = o->dim;
	m->dtype = o->dtype;
	m->scale_block = o->scale_block;
	m->chunk_slots = o->chunk_slots;
	m->generation = o->generation; /* 0: the builder starts at 1 */
	m->row_bytes = eg_row_bytes(m->dtype, m->dim, m->scale_block);
	if (m->row_bytes == 0) {
		if (m->scale_block && m->dtype != EG_DTYPE_E4M3)
			return eg_cli_usage_error(o->cmd, "--scale-block is only for e4m3 tables");
		return eg_cli_usage_error(o->cmd, "--scale-block %u does not divide dim %u",
		                          m->scale_block, m->dim);
	}
	*hash = NULL;
	if (o->hash_path) {
		uint64_t want;
		int rc = eg_cli_load_hash(o->hash_path, hash);

		if (rc != EG_CLI_OK)
			return rc;
		want = eg_hash_table_slots(*hash);
		if (want != m->slots) {
			eg_hash_free(*hash);
			*hash = NULL;
			return eg_cli_fail("%s: the hash spec needs a table of %llu slots, not %llu",
			                   o->hash_path, (unsigned long long)want,
			                   (unsigned long long)m->slots);
		}
		m->hash_spec = eg_hash_to_json(*hash);
		if (!m->hash_spec) {
			eg_hash_free(*hash);
			*hash = NULL;
			return eg_cli_fail("out of memory");
		}
	}
	return EG_CLI_OK;
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
		return EG_CLI_OK;
	if (strcmp(s, "random") == 0) {
		f->random = 1;
		return EG_CLI_OK;
	}
	if (strncmp(s, "random:", 7) == 0 && eg_cli_parse_u64(s + 7, &f->seed) == 0) {
		f->random = 1;
		return EG_CLI_OK;
	}
	return eg_cli_usage_error(cmd, "--fill must be zero, random or random:SEED, not '%s'", s);
}

int eg_cli_table_create(int argc, char **argv)
{
	struct opts o;
	struct fill f;
	eg_meta m;
	eg_hash *hash = NULL;
	int rc = parse_opts(argc, argv, &o, 0);

	if (rc < 0)
		return EG_CLI_OK; /* --help */
	if (rc != EG_CLI_OK)
		return rc;
	if (!o.have_dim)
		return eg_cli_usage_error(o.cmd, "--dim is required");
	if (!o.have_dtype)
		o.dtype = EG_DTYPE_F32;
	rc = parse_fill(o.cmd, o.fill, &f);
	if (rc != EG_CLI_OK)
		return rc;
	if (!o.have_slots && !o.hash_path)
		return eg_cli_usage_error(o.cmd, "--slots is required (or --hash, which sets it)");
	if (!o.have_slots) {
		/* The spec decides the slot count. */
		rc = eg_cli_load_hash(o.hash_path, &hash);
		if (rc != EG_CLI_OK)
			return rc;
		o.slots = eg_hash_table_slots(hash);
		eg_hash_free(hash);
		hash = NULL;
	}
	rc = make_meta(&o, &m, &hash);
	if (rc != EG_CLI_OK)
		return rc;
	rc = build(o.dir, &m, fill_rows, &f, "create");
	eg_hash_free(hash);
	eg_meta_clear(&m);
	return rc;
}

/* ---- import ----------------------------------------------------------- */

static int fill_from(void *arg, const eg_meta *m, uint64_t first, uint64_t n,
                     void *dst)
{
	return eg_cli_rows_convert(arg, first, n, m, dst);
}

int eg_cli_table_import(int argc, char **argv)
{
	struct opts o;
	eg_cli_rows rows;
	eg_meta m;
	eg_hash *hash = NULL;
	uint64_t width = 0;
	eg_dtype target;
	int rc = parse_opts(argc, argv, &o, 1);

	if (rc < 0)
		return EG_CLI_OK;
	if (rc != EG_CLI_OK)
		return rc;
	if (!o.from)
		return eg_cli_usage_error(o.cmd, "--from ROWS is required");
	if (o.have_src && o.src == EG_DTYPE_E4M3)
		return eg_cli_usage_error(o.cmd, "--source-dtype must be f32, f16, bf16 or u8");
	/* A raw file's row width follows from --dim and the target layout:
	 * raw u8 into e4m3 is the stored bytes, scales included. */
	target = o.have_dtype ? o.dtype : o.src;
	if (o.have_dim)
		width = o.src == EG_DTYPE_U8 && target == EG_DTYPE_E4M3
		            ? eg_row_bytes(target, o.dim, o.scale_block) : o.dim;
	rc = eg_cli_rows_open(&rows, o.cmd, o.from, o.have_src ? o.src : 0,
	                      o.have_src ? o.src : 0, width);
	if (rc != EG_CLI_OK)
		return rc;
	if (!o.have_dtype)
		o.dtype = rows.type;
	if (!o.have_dim) {
		o.dim = (uint32_t)rows.width;
		if (rows.type == EG_DTYPE_U8 && o.dtype == EG_DTYPE_E4M3 && o.scale_block)
			o.dim = (uint32_t)(rows.width * o.scale_block / (o.scale_block + 1));
	}
	o.slots = rows.n;
	if (rows.n == 0 || rows.width == 0 || rows.width > UINT32_MAX) {
		rc = eg_cli_fail("%s: no rows to import (shape %llu x %llu)", o.from,
		                 (unsigned long long)rows.n, (unsigned long long)rows.width);
		goto out;
	}
	rc = make_meta(&o, &m, &hash);
	if (rc != EG_CLI_OK)
		goto out;
	rc = eg_cli_rows_check(&rows, &m);
	if (rc == EG_CLI_OK)
		rc = build(o.dir, &m, fill_from, &rows, "import");
	eg_hash_free(hash);
	eg_meta_clear(&m);
out:
	eg_cli_rows_close(&rows);
	return rc;
}
