/* safetensors.c - reading a safetensors file: the header checked against
 * the file before any offset in it is used (see eg_safetensors.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eg_safetensors.h"
#include "eg_table.h"
#include "safetensors_int.h"

struct eg_st {
	json_t *root;          /* the header; names and dtypes point into it */
	eg_st_tensor *t;       /* sorted by begin */
	size_t n;
	uint64_t *shapes;      /* every tensor's shape, back to back */
	const unsigned char *data; /* the data section */
	uint64_t data_bytes;
	void *map;             /* eg_st_open's mapping of the whole file */
	size_t map_len;
};

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[EG_ST_BOOL] = { "BOOL", 1 }, [EG_ST_U8] = { "U8", 1 }, [EG_ST_I8] = { "I8", 1 },
	[EG_ST_F8_E4M3] = { "F8_E4M3", 1 }, [EG_ST_F8_E5M2] = { "F8_E5M2", 1 },
	[EG_ST_F8_E8M0] = { "F8_E8M0", 1 },
	[EG_ST_I16] = { "I16", 2 }, [EG_ST_U16] = { "U16", 2 }, [EG_ST_F16] = { "F16", 2 },
	[EG_ST_BF16] = { "BF16", 2 },
	[EG_ST_I32] = { "I32", 4 }, [EG_ST_U32] = { "U32", 4 }, [EG_ST_F32] = { "F32", 4 },
	[EG_ST_I64] = { "I64", 8 }, [EG_ST_U64] = { "U64", 8 }, [EG_ST_F64] = { "F64", 8 },
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

const char *eg_st_dtype_name(eg_st_dtype t)
{
	return (unsigned)t < NDTYPES ? dtypes[t].name : NULL;
}

size_t eg_st_dtype_size(eg_st_dtype t)
{
	return (unsigned)t < NDTYPES ? dtypes[t].size : 0;
}

static eg_st_dtype dtype_of(const char *name)
{
	for (size_t i = 1; i < NDTYPES; i++)
		if (strcmp(dtypes[i].name, name) == 0)
			return (eg_st_dtype)i;
	return EG_ST_UNKNOWN;
}

int eg__st_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return EG_ECKPT;
}

uint64_t eg__st_elems(const uint64_t *shape, int ndim)
{
	uint64_t n = 1;

	for (int i = 0; i < ndim; i++)
		if (shape[i] == 0)
			return 0;
	for (int i = 0; i < ndim; i++) {
		if (n > UINT64_MAX / shape[i])
			return UINT64_MAX;
		n *= shape[i];
	}
	return n;
}

/* A JSON integer that is >= 0 (jansson holds them as long long). */
static int get_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int check_metadata(const json_t *meta, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(meta))
		return eg__st_fail(err, errlen, "__metadata__ is not an object");
	json_object_foreach((json_t *)meta, key, v)
		if (!json_is_string(v))
			return eg__st_fail(err, errlen, "__metadata__ '%s' is not a string", key);
	return 0;
}

/* Fills *t from the header's entry for name; shape points at room for
 * json_array_size(shape) values. */
static int read_tensor(const char *name, const json_t *v, uint64_t data_bytes,
                       eg_st_tensor *t, uint64_t *shape, char *err, size_t errlen)
{
	const json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
	const json_t *off = json_object_get(v, "data_offsets");
	uint64_t elems, want, size;

	if (!json_is_object(v))
		return eg__st_fail(err, errlen, "tensor '%s': not an object", name);
	if (!json_is_string(dt))
		return eg__st_fail(err, errlen, "tensor '%s': no dtype string", name);
	if (!json_is_array(sh))
		return eg__st_fail(err, errlen, "tensor '%s': no shape array", name);
	if (!json_is_array(off) || json_array_size(off) != 2 ||
	    get_u64(json_array_get(off, 0), &t->begin) || get_u64(json_array_get(off, 1), &t->end))
		return eg__st_fail(err, errlen, "tensor '%s': data_offsets is not [begin, end] "
		                   "of two non-negative integers", name);
	t->name = name;
	t->dtype_name = json_string_value(dt);
	t->dtype = dtype_of(t->dtype_name);
	t->ndim = (int)json_array_size(sh);
	t->shape = shape;
	for (size_t i = 0; i < json_array_size(sh); i++)
		if (get_u64(json_array_get(sh, i), &shape[i]))
			return eg__st_fail(err, errlen, "tensor '%s': shape is not an array of "
			                   "non-negative integers", name);
	if (t->begin > t->end)
		return eg__st_fail(err, errlen, "tensor '%s': data_offsets [%llu, %llu] end before "
		                   "they begin", name, (unsigned long long)t->begin,
		                   (unsigned long long)t->end);
	if (t->end > data_bytes)
		return eg__st_fail(err, errlen, "tensor '%s': data_offsets [%llu, %llu] run past the "
		                   "end of the data section (%llu bytes): the file is truncated or "
		                   "its header lies", name, (unsigned long long)t->begin,
		                   (unsigned long long)t->end, (unsigned long long)data_bytes);
	size = eg_st_dtype_size(t->dtype);
	if (!size)
		return 0; /* unknown dtype: placed, not sized */
	elems = eg__st_elems(shape, t->ndim);
	want = elems > UINT64_MAX / size ? UINT64_MAX : elems * size;
	if (want != t->end - t->begin)
		return eg__st_fail(err, errlen, "tensor '%s': data_offsets [%llu, %llu] hold %llu "
		                   "bytes, but %s of %llu elements needs %llu", name,
		                   (unsigned long long)t->begin, (unsigned long long)t->end,
		                   (unsigned long long)(t->end - t->begin), t->dtype_name,
		                   (unsigned long long)elems, (unsigned long long)want);
	return 0;
}

static int by_begin(const void *a, const void *b)
{
	const eg_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int check_overlap(const eg_st *st, char *err, size_t errlen)
{
	const eg_st_tensor *prev = NULL;

	for (size_t i = 0; i < st->n; i++) {
		const eg_st_tensor *t = &st->t[i];

		if (t->begin == t->end)
			continue;
		if (prev && t->begin < prev->end)
			return eg__st_fail(err, errlen, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] "
			                   "overlap in the data section", prev->name,
			                   (unsigned long long)prev->begin, (unsigned long long)prev->end,
			                   t->name, (unsigned long long)t->begin,
			                   (unsigned long long)t->end);
		prev = t;
	}
	return 0;
}

/* Reads the tensors of root into st. */
static int read_tensors(eg_st *st, char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	size_t dims = 0, used = 0;
	int rc;

	json_object_foreach(st->root, name, v) {
		if (strcmp(name, "__metadata__") == 0)
			continue;
		st->n++;
		if (json_is_array(json_object_get(v, "shape")))
			dims += json_array_size(json_object_get(v, "shape"));
	}
	st->t = calloc(st->n ? st->n : 1, sizeof *st->t);
	st->shapes = calloc(dims ? dims : 1, sizeof *st->shapes);
	if (!st->t || !st->shapes)
		return -ENOMEM;
	st->n = 0;
	json_object_foreach(st->root, name, v) {
		if (strcmp(name, "__metadata__") == 0) {
			if ((rc = check_metadata(v, err, errlen)))
				return rc;
			continue;
		}
		if ((rc = read_tensor(name, v, st->data_bytes, &st->t[st->n], st->shapes + used,
		                      err, errlen)))
			return rc;
		used += (size_t)st->t[st->n++].ndim;
	}
	qsort(st->t, st->n, sizeof *st->t, by_begin);
	return check_overlap(st, err, errlen);
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Checks the header length against the file; 0 and *n, or EG_ECKPT. */
static int header_length(const unsigned char first[8], uint64_t size, uint64_t *n,
                         char *err, size_t errlen)
{
	if (size < 8)
		return eg__st_fail(err, errlen, "%llu bytes: too short for a safetensors header "
		                   "length", (unsigned long long)size);
	*n = le64(first);
	if (*n > size - 8)
		return eg__st_fail(err, errlen, "header length %llu runs past the end of the file "
		                   "(%llu bytes): truncated, or not a safetensors file",
		                   (unsigned long long)*n, (unsigned long long)size);
	if (*n > EG_ST_HEADER_MAX)
		return eg__st_fail(err, errlen, "header length %llu is over the %u-byte limit",
		                   (unsigned long long)*n, EG_ST_HEADER_MAX);
	if (*n < 2)
		return eg__st_fail(err, errlen, "header length %llu is too short for a JSON object",
		                   (unsigned long long)*n);
	return 0;
}

int eg_st_load(const void *file, uint64_t size, eg_st **out, char *err, size_t errlen)
{
	const unsigned char *p = file;
	json_error_t jerr;
	eg_st *st;
	uint64_t n = 0;
	int rc;

	*out = NULL;
	if ((rc = header_length(p, size, &n, err, errlen)))
		return rc;
	if (p[8] != '{')
		return eg__st_fail(err, errlen, "the header does not start with '{'");
	st = calloc(1, sizeof *st);
	if (!st)
		return -ENOMEM;
	st->data = p + 8 + n;
	st->data_bytes = size - 8 - n;
	st->root = json_loadb((const char *)p + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (!st->root) {
		rc = eg__st_fail(err, errlen, "the header is not valid JSON: %s (byte %d)",
		                 jerr.text, jerr.position);
		goto fail;
	}
	if (!json_is_object(st->root)) {
		rc = eg__st_fail(err, errlen, "the header is not a JSON object");
		goto fail;
	}
	if ((rc = read_tensors(st, err, errlen)))
		goto fail;
	*out = st;
	return 0;
fail:
	eg_st_close(st);
	return rc;
}

int eg_st_open(const char *path, eg_st **out, char *err, size_t errlen)
{
	struct stat sb;
	void *map = NULL;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		rc = -errno;
		eg__st_fail(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = eg__st_fail(err, errlen, "not a regular file");
		goto out;
	}
	if (sb.st_size > 0) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			rc = -errno;
			eg__st_fail(err, errlen, "mmap: %s", strerror(errno));
			goto out;
		}
	}
	rc = eg_st_load(map ? map : "", (uint64_t)sb.st_size, out, err, errlen);
	if (rc == 0) {
		(*out)->map = map;
		(*out)->map_len = (size_t)sb.st_size;
	} else if (map) {
		munmap(map, (size_t)sb.st_size);
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

void eg_st_close(eg_st *st)
{
	if (!st)
		return;
	if (st->map)
		munmap(st->map, st->map_len);
	json_decref(st->root);
	free(st->t);
	free(st->shapes);
	free(st);
}

size_t eg_st_count(const eg_st *st)
{
	return st->n;
}

const eg_st_tensor *eg_st_tensor_at(const eg_st *st, size_t i)
{
	return i < st->n ? &st->t[i] : NULL;
}

const eg_st_tensor *eg_st_find(const eg_st *st, const char *name)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0)
			return &st->t[i];
	return NULL;
}

const unsigned char *eg_st_data(const eg_st *st, const eg_st_tensor *t)
{
	return st->data + t->begin;
}

const char *eg_st_metadata(const eg_st *st, const char *key)
{
	return json_string_value(json_object_get(json_object_get(st->root, "__metadata__"), key));
}
