/* table_util.c - loading shared by the table commands (slots, hash specs,
 * tables) and by `engram lookup` (slots). */
#include "table.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		uint64_t *nv = realloc(*v, nc * sizeof **v);

		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int slots_from_list(const char *cmd, const char *list, uint64_t **out,
                           size_t *n)
{
	uint64_t *v = NULL;
	size_t cap = 0;
	const char *p = list;

	*n = 0;
	while (*p) {
		unsigned long long a, b;
		char *end;

		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		a = b = strtoull(p, &end, 10);
		if (errno)
			goto bad;
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				goto bad;
			b = strtoull(p, &end, 10);
			if (errno || b < a)
				goto bad;
			if (b - a >= (1ull << 32))
				goto bad;
		}
		for (unsigned long long x = a;; x++) {
			if (push(&v, n, &cap, x) < 0) {
				free(v);
				return cli_fail("out of memory");
			}
			if (x == b)
				break;
		}
		p = end;
		if (*p == ',')
			p++;
		else if (*p)
			goto bad;
	}
	if (*n == 0)
		goto bad;
	*out = v;
	return CLI_OK;
bad:
	free(v);
	return cli_usage_error(cmd, "bad slot list '%s' (want e.g. 1,5,9 or 0-99)", list);
}

static int slots_from_file(const char *path, uint64_t **out, size_t *n)
{
	eg_npy a;
	char err[256];
	uint64_t count, *v;

	if (eg_npy_open(path, &a, err, sizeof err) < 0)
		return cli_fail("%s: %s", path, err);
	count = a.rows * a.cols;
	if (a.type != EG_NPY_I4 && a.type != EG_NPY_I8 && a.type != EG_NPY_U8 &&
	    a.type != EG_NPY_U1) {
		eg_npy_close(&a);
		return cli_fail("%s: slots must be integers (<i4, <i8, <u8), not %s",
		                path, eg_npy_descr(a.type));
	}
	if (count == 0) {
		eg_npy_close(&a);
		return cli_fail("%s: no slots in the file", path);
	}
	v = malloc(count * sizeof *v);
	if (!v) {
		eg_npy_close(&a);
		return cli_fail("out of memory");
	}
	for (uint64_t i = 0; i < count; i++) {
		const unsigned char *p = (const unsigned char *)a.data + i * a.itemsize;
		int64_t s;

		switch (a.type) {
		case EG_NPY_I4: { int32_t x; memcpy(&x, p, 4); s = x; break; }
		case EG_NPY_U1: s = *p; break;
		default: memcpy(&s, p, 8); break;
		}
		if (s < 0 && a.type != EG_NPY_U8) {
			free(v);
			eg_npy_close(&a);
			return cli_fail("%s: slot %lld (index %llu) is negative", path,
			                (long long)s, (unsigned long long)i);
		}
		v[i] = (uint64_t)s;
	}
	eg_npy_close(&a);
	*out = v;
	*n = count;
	return CLI_OK;
}

int cli_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int cli_load_slots(const char *cmd, const char *list, const char *file,
                   uint64_t **out, size_t *n)
{
	if (list && file)
		return cli_usage_error(cmd, "give --slots or --slots-file, not both");
	if (!list && !file)
		return cli_usage_error(cmd, "--slots or --slots-file is required");
	if (list && cli_ends_with(list, ".npy"))
		file = list;
	if (file)
		return slots_from_file(file, out, n);
	return slots_from_list(cmd, list, out, n);
}

static char *read_file(const char *path, size_t max, const char **why)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	*why = NULL;
	if (!f)
		return NULL;
	for (;;) {
		size_t got;

		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > max + 1) {
				*why = "file too large";
				goto fail;
			}
			nb = realloc(buf, cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	buf[len] = '\0';
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

int cli_load_hash(const char *path, eg_hash **out)
{
	const char *why;
	char *json, *copy, err[512];
	int rc;

	json = read_file(path, (size_t)1 << 31, &why);
	if (!json)
		return cli_fail("%s: %s", path, why ? why : strerror(errno ? errno : ENOMEM));
	copy = strdup(path);
	if (!copy) {
		free(json);
		return cli_fail("out of memory");
	}
	err[0] = '\0';
	rc = eg_hash_parse(json, dirname(copy), out, err, sizeof err);
	free(copy);
	free(json);
	if (rc != 0)
		return cli_fail("%s: bad hash spec: %s", path, err[0] ? err : eg_strerror(rc));
	return CLI_OK;
}

struct first_problem {
	char text[400];
	unsigned long count;
};

static void keep_first(void *arg, const char *problem)
{
	struct first_problem *f = arg;

	if (f->count++ == 0)
		snprintf(f->text, sizeof f->text, "%s", problem);
}

int cli_open_table(const char *dir, eg_table **t, eg_snapshot **s)
{
	struct first_problem f = { "", 0 };
	int rc;

	*s = NULL;
	/* LMDB trusts the file: look at its pages in a child process first */
	rc = eg_table_check_isolated(dir, EG_CHECK_STRUCTURE, NULL, keep_first, &f);
	if (rc != 0 && f.count)
		return cli_fail("%s: damaged table: %s%s", dir, f.text,
		                f.count > 1 ? " (engram table verify lists every problem)" : "");
	if (rc == 0)
		rc = eg_table_open(dir, t);
	if (rc != 0)
		return cli_fail("%s: %s", dir, eg_strerror(rc));
	rc = eg_snapshot_open(*t, 0, s);
	if (rc != 0) {
		eg_table_close(*t);
		*t = NULL;
		return cli_fail("%s: %s", dir, eg_strerror(rc));
	}
	return CLI_OK;
}
