/* safetensors_write.c - the header of a safetensors file to write (see
 * eg_st_header in eg_safetensors.h); the caller streams the data after it. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "eg_safetensors.h"
#include "eg_table.h"
#include "safetensors_int.h"

uint64_t eg_st_spec_bytes(const eg_st_spec *s)
{
	uint64_t elems = eg__st_elems(s->shape, s->ndim), size = eg_st_dtype_size(s->dtype);

	if (!size || elems > UINT64_MAX / size)
		return 0;
	return elems * size;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} */
static json_t *entry(const eg_st_spec *s, uint64_t begin, uint64_t end)
{
	json_t *e = json_object(), *shape = json_array();

	for (int i = 0; shape && i < s->ndim; i++)
		json_array_append_new(shape, json_integer((json_int_t)s->shape[i]));
	if (!e || !shape || json_array_size(shape) != (size_t)s->ndim ||
	    json_object_set_new(e, "dtype", json_string(eg_st_dtype_name(s->dtype))) ||
	    json_object_set_new(e, "shape", shape) ||
	    json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)begin,
	                                                     (json_int_t)end))) {
		json_decref(e);
		return NULL;
	}
	return e;
}

static int add_tensors(json_t *root, const eg_st_spec *t, size_t n)
{
	uint64_t off = 0, bytes;
	json_t *e;

	for (size_t i = 0; i < n; i++) {
		bytes = eg_st_spec_bytes(&t[i]);
		if (!t[i].name || !eg_st_dtype_name(t[i].dtype) || t[i].ndim < 0 || t[i].ndim > 8 ||
		    strcmp(t[i].name, "__metadata__") == 0 || json_object_get(root, t[i].name) ||
		    (!bytes && eg__st_elems(t[i].shape, t[i].ndim) != 0) ||
		    bytes > (uint64_t)INT64_MAX - off)
			return EG_EINVAL;
		if (!(e = entry(&t[i], off, off + bytes)) || json_object_set_new(root, t[i].name, e))
			return -ENOMEM;
		off += bytes;
	}
	return 0;
}

static int add_metadata(json_t *root, const char *const *meta, size_t nmeta)
{
	json_t *m;

	if (!nmeta)
		return 0;
	if (!(m = json_object()) || json_object_set_new(root, "__metadata__", m))
		return -ENOMEM;
	for (size_t i = 0; i < nmeta; i++) {
		if (!meta[2 * i] || !meta[2 * i + 1])
			return EG_EINVAL;
		if (json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1])))
			return EG_EINVAL; /* not UTF-8 */
	}
	return 0;
}

int eg_st_header(const eg_st_spec *t, size_t n, const char *const *meta, size_t nmeta,
                 unsigned char **out, size_t *len)
{
	json_t *root = json_object();
	char *text = NULL;
	size_t k, padded;
	unsigned char *buf;
	int rc;

	*out = NULL;
	if (!root)
		return -ENOMEM;
	/* metadata first: readers that print the header show it on top */
	if ((rc = add_metadata(root, meta, nmeta)) || (rc = add_tensors(root, t, n)))
		goto out;
	if (!(text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
		rc = -ENOMEM;
		goto out;
	}
	k = strlen(text);
	padded = (k + 7) / 8 * 8;
	if (!(buf = malloc(8 + padded))) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
	memcpy(buf + 8, text, k);
	memset(buf + 8 + k, ' ', padded - k);
	*out = buf;
	*len = 8 + padded;
out:
	free(text);
	json_decref(root);
	return rc;
}
