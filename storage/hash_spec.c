/* hash_spec.c - hash specs: JSON in (with .npy vocabulary maps), canonical
 * JSON out, and the spec's accessors; see eg_hash.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "eg_npy.h"
#include "eg_table.h"
#include "hash_int.h"

/* ---- errors ---------------------------------------------------------------- */

static int spec_error(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int spec_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errbuf != NULL && errlen > 0) {
		n = snprintf(errbuf, errlen, "hash spec: ");
		if (n > 0 && (size_t)n < errlen) {
			va_start(ap, fmt);
			vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return EG_EHASH;
}

/* ---- .npy vocabulary maps (1-D <i4 or <i8, C order) ----------------------- */

static int load_npy_map(eg_hash *h, const char *name, const char *base_dir, char *errbuf,
                        size_t errlen)
{
	char path[4096], why[256];
	eg_npy a;
	int rc;

	if (name[0] == '/' || base_dir == NULL || base_dir[0] == '\0')
		rc = snprintf(path, sizeof(path), "%s", name);
	else
		rc = snprintf(path, sizeof(path), "%s/%s", base_dir, name);
	if (rc < 0 || (size_t)rc >= sizeof(path))
		return spec_error(errbuf, errlen, "vocab_map path is too long");
	if (eg_npy_open(path, &a, why, sizeof(why)) < 0)
		return spec_error(errbuf, errlen, "vocab_map %s: %s", path, why);
	if ((a.type != EG_NPY_I8 && a.type != EG_NPY_I4) || a.ndim != 1) {
		rc = spec_error(errbuf, errlen, "vocab_map %s: must be a 1-D array of little-endian "
		                "int64 or int32 ('<i8', '<i4'), not %s of %d dimensions", path,
		                eg_npy_descr(a.type), a.ndim);
	} else if (a.rows == 0) {
		rc = spec_error(errbuf, errlen, "vocab_map %s: empty map", path);
	} else if (!(h->vmap = malloc((size_t)a.rows * sizeof(*h->vmap)))) {
		rc = spec_error(errbuf, errlen, "vocab_map %s: out of memory", path);
	} else {
		h->vmap_len = (size_t)a.rows;
		for (size_t i = 0; i < h->vmap_len; i++) {
			int32_t v4;

			if (a.type == EG_NPY_I8) {
				memcpy(&h->vmap[i], (const char *)a.data + 8 * i, 8);
			} else {
				memcpy(&v4, (const char *)a.data + 4 * i, 4);
				h->vmap[i] = v4;
			}
		}
		rc = 0;
	}
	eg_npy_close(&a);
	return rc;
}

/* ---- parsing ----------------------------------------------------------------- */

static int get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   char *errbuf, size_t errlen)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return spec_error(errbuf, errlen, "missing field \"%s\"", key);
	if (!json_is_integer(v))
		return spec_error(errbuf, errlen, "\"%s\" must be an integer", key);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return spec_error(errbuf, errlen, "\"%s\" is %lld, must be in %lld..%lld", key,
		                  (long long)*out, (long long)lo, (long long)hi);
	return 0;
}

/* Reads "moduli"/"rows": max_ngram-1 lists of heads positive integers. */
static int get_sizes(eg_hash *h, const json_t *obj, const char *key, char *errbuf,
                     size_t errlen)
{
	const json_t *outer = json_object_get(obj, key);
	uint32_t orders = h->max_ngram - 1;
	uint64_t total = 0;

	if (outer == NULL)
		return spec_error(errbuf, errlen, "missing field \"%s\"", key);
	if (!json_is_array(outer) || json_array_size(outer) != orders)
		return spec_error(errbuf, errlen,
		                  "\"%s\" must be a list of %u lists (one per order 2..%u)", key,
		                  orders, h->max_ngram);
	for (uint32_t n = 0; n < orders; n++) {
		const json_t *inner = json_array_get(outer, n);

		if (!json_is_array(inner) || json_array_size(inner) != h->heads)
			return spec_error(errbuf, errlen,
			                  "\"%s\"[%u] (order %u) must be a list of %u integers (one per head)",
			                  key, n, n + 2, h->heads);
		for (uint32_t j = 0; j < h->heads; j++) {
			const json_t *v = json_array_get(inner, j);
			json_int_t d;

			if (!json_is_integer(v) || (d = json_integer_value(v)) <= 0)
				return spec_error(errbuf, errlen,
				                  "\"%s\"[%u][%u] must be a positive integer", key, n, j);
			struct head *hd = &h->head[n * h->heads + j];

			hd->off = total;
			eg__hash_div_init(hd, (uint64_t)d);
			if ((uint64_t)d > (uint64_t)INT64_MAX - total)
				return spec_error(errbuf, errlen, "\"%s\" sum to more than 2^63-1 slots",
				                  key);
			total += (uint64_t)d;
		}
	}
	h->total = total;
	return 0;
}

static int get_vocab_map(eg_hash *h, const json_t *obj, const char *base_dir, char *errbuf,
                         size_t errlen)
{
	const json_t *vm = json_object_get(obj, "vocab_map");

	if (vm == NULL || json_is_null(vm))
		return 0;
	if (json_is_string(vm))
		return load_npy_map(h, json_string_value(vm), base_dir, errbuf, errlen);
	if (!json_is_array(vm) || json_array_size(vm) == 0)
		return spec_error(errbuf, errlen,
		                  "\"vocab_map\" must be a non-empty list of integers or a .npy file name");
	h->vmap_len = json_array_size(vm);
	h->vmap = malloc(h->vmap_len * sizeof(*h->vmap));
	if (h->vmap == NULL)
		return spec_error(errbuf, errlen, "vocab_map: out of memory");
	for (size_t i = 0; i < h->vmap_len; i++) {
		const json_t *v = json_array_get(vm, i);

		if (!json_is_integer(v))
			return spec_error(errbuf, errlen, "\"vocab_map\"[%zu] must be an integer", i);
		h->vmap[i] = json_integer_value(v);
	}
	return 0;
}

static int check_fields(const json_t *obj, const char *const *allowed, char *errbuf,
                        size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		(void)v;
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++)
			;
		if (allowed[i] == NULL)
			return spec_error(errbuf, errlen, "unknown field \"%s\"", key);
	}
	return 0;
}

static int parse_obj(eg_hash *h, const json_t *obj, const char *base_dir, char *errbuf,
                     size_t errlen)
{
	static const char *const engram_fields[] = {"kind", "max_ngram", "heads", "pad",
		"multipliers", "moduli", "vocab_map", NULL};
	static const char *const xxh3_fields[] = {"kind", "max_ngram", "heads", "pad", "seed",
		"rows", "vocab_map", NULL};
	const json_t *kind = json_object_get(obj, "kind");
	int64_t v;
	int rc;

	if (kind == NULL)
		return spec_error(errbuf, errlen, "missing field \"kind\"");
	if (json_is_string(kind) && strcmp(json_string_value(kind), "engram-v1") == 0)
		h->kind = KIND_ENGRAM;
	else if (json_is_string(kind) && strcmp(json_string_value(kind), "xxh3") == 0)
		h->kind = KIND_XXH3;
	else
		return spec_error(errbuf, errlen, "\"kind\" must be \"engram-v1\" or \"xxh3\"");
	rc = check_fields(obj, h->kind == KIND_ENGRAM ? engram_fields : xxh3_fields, errbuf,
	                  errlen);
	if (rc != 0)
		return rc;
	if ((rc = get_int(obj, "max_ngram", 2, MAX_NGRAM, &v, errbuf, errlen)) != 0)
		return rc;
	h->max_ngram = (uint32_t)v;
	if ((rc = get_int(obj, "heads", 1, MAX_HEADS, &v, errbuf, errlen)) != 0)
		return rc;
	h->heads = (uint32_t)v;
	h->rows_per_token = (h->max_ngram - 1) * h->heads;
	if ((rc = get_int(obj, "pad", INT64_MIN, INT64_MAX, &h->pad, errbuf, errlen)) != 0)
		return rc;
	h->head = calloc(h->rows_per_token, sizeof(*h->head));
	if (h->head == NULL)
		return spec_error(errbuf, errlen, "out of memory");

	if (h->kind == KIND_ENGRAM) {
		const json_t *m = json_object_get(obj, "multipliers");

		if (m == NULL)
			return spec_error(errbuf, errlen, "missing field \"multipliers\"");
		if (!json_is_array(m) || json_array_size(m) != h->max_ngram)
			return spec_error(errbuf, errlen,
			                  "\"multipliers\" must be a list of %u integers (max_ngram)",
			                  h->max_ngram);
		for (uint32_t k = 0; k < h->max_ngram; k++) {
			const json_t *x = json_array_get(m, k);

			if (!json_is_integer(x))
				return spec_error(errbuf, errlen, "\"multipliers\"[%u] must be an integer",
				                  k);
			h->mult[k] = json_integer_value(x);
		}
		rc = get_sizes(h, obj, "moduli", errbuf, errlen);
	} else {
		if ((rc = get_int(obj, "seed", INT64_MIN, INT64_MAX, &v, errbuf, errlen)) != 0)
			return rc;
		h->seed = (uint64_t)v;
		rc = get_sizes(h, obj, "rows", errbuf, errlen);
	}
	if (rc != 0)
		return rc;
	return get_vocab_map(h, obj, base_dir, errbuf, errlen);
}

int eg_hash_parse(const char *json, const char *base_dir, eg_hash **out, char *errbuf,
                  size_t errlen)
{
	json_error_t jerr;
	json_t *obj;
	eg_hash *h;
	int rc;

	*out = NULL;
	if (json == NULL)
		return spec_error(errbuf, errlen, "no JSON text");
	obj = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL)
		return spec_error(errbuf, errlen, "invalid JSON at line %d column %d: %s", jerr.line,
		                  jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return spec_error(errbuf, errlen, "must be a JSON object");
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		json_decref(obj);
		return spec_error(errbuf, errlen, "out of memory");
	}
	rc = parse_obj(h, obj, base_dir, errbuf, errlen);
	json_decref(obj);
	if (rc != 0) {
		eg_hash_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void eg_hash_free(eg_hash *h)
{
	if (h == NULL)
		return;
	free(h->vmap);
	free(h->head);
	free(h);
}

/* ---- canonical JSON ------------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(obj, key, v);
}

static json_t *sizes_json(const eg_hash *h)
{
	json_t *outer = json_array();

	for (uint32_t n = 0; outer != NULL && n + 1 < h->max_ngram; n++) {
		json_t *inner = json_array();

		for (uint32_t j = 0; inner != NULL && j < h->heads; j++)
			if (json_array_append_new(inner, json_integer(
			        (json_int_t)h->head[n * h->heads + j].d)) != 0) {
				json_decref(inner);
				inner = NULL;
			}
		if (json_array_append_new(outer, inner) != 0) {
			json_decref(outer);
			outer = NULL;
		}
	}
	return outer;
}

char *eg_hash_to_json(const eg_hash *h)
{
	json_t *obj = json_object(), *arr;
	char *text = NULL;
	int bad = obj == NULL;

	bad = bad || set_new(obj, "kind", json_string(eg_hash_kind(h)));
	bad = bad || set_new(obj, "max_ngram", json_integer(h->max_ngram));
	bad = bad || set_new(obj, "heads", json_integer(h->heads));
	bad = bad || set_new(obj, "pad", json_integer(h->pad));
	if (h->kind == KIND_ENGRAM) {
		arr = bad ? NULL : json_array();
		for (uint32_t k = 0; arr != NULL && k < h->max_ngram; k++)
			if (json_array_append_new(arr, json_integer(h->mult[k])) != 0) {
				json_decref(arr);
				arr = NULL;
			}
		bad = bad || set_new(obj, "multipliers", arr);
		bad = bad || set_new(obj, "moduli", sizes_json(h));
	} else {
		bad = bad || set_new(obj, "seed", json_integer((json_int_t)(int64_t)h->seed));
		bad = bad || set_new(obj, "rows", sizes_json(h));
	}
	if (!bad && h->vmap != NULL) {
		arr = json_array();
		for (size_t i = 0; arr != NULL && i < h->vmap_len; i++)
			if (json_array_append_new(arr, json_integer(h->vmap[i])) != 0) {
				json_decref(arr);
				arr = NULL;
			}
		bad = set_new(obj, "vocab_map", arr);
	}
	if (!bad)
		text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	return text;
}

uint32_t eg_hash_rows_per_token(const eg_hash *h)
{
	return h->rows_per_token;
}

uint64_t eg_hash_table_slots(const eg_hash *h)
{
	return h->total;
}

const char *eg_hash_kind(const eg_hash *h)
{
	return h->kind == KIND_ENGRAM ? "engram-v1" : "xxh3";
}
