/* eg_safetensors.h - safetensors checkpoint files: read (validated, mapped),
 * find a tensor in a sharded checkpoint, and write headers.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the data section. The JSON is one object: each tensor's
 * name maps to {"dtype": "BF16", "shape": [rows, dim], "data_offsets":
 * [begin, end]}, offsets relative to the data section, the tensor's bytes
 * little-endian in C order; an optional "__metadata__" maps strings to
 * strings. A sharded checkpoint adds model.safetensors.index.json, whose
 * "weight_map" names the shard file of every tensor.
 *
 * Nothing in a file is trusted: the header length must fit the file (and
 * at most EG_ST_HEADER_MAX), the JSON must parse with no repeated name,
 * every tensor must have a dtype string, a shape of non-negative integers
 * and data_offsets [begin, end] with begin <= end <= the data section's
 * size, a known dtype's end - begin must equal its size times the shape's
 * product, and no two non-empty tensors may overlap. A file that fails
 * any of these is refused whole, with a one-line reason naming the check
 * and the tensor. A dtype this library does not know (a newer one) is kept
 * with its name and EG_ST_UNKNOWN: such a tensor is still placed and
 * checked for overlap, but its size cannot be checked, and callers refuse
 * to read it.
 *
 * The data is memory-mapped read-only; a file truncated by someone else
 * while mapped faults (SIGBUS) when the missing pages are read, as any
 * mapped file does.
 *
 * Errors: 0, or a negative errno (-ENOENT, -ENOMEM, ...) or EG_ECKPT (a
 * malformed file, a missing tensor, an unusable index), with a reason in
 * err (errlen bytes, may be NULL) that does not repeat the path.
 */
#ifndef EG_SAFETENSORS_H
#define EG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest header accepted (the reference implementation's limit). */
#define EG_ST_HEADER_MAX 100000000u

/* The dtypes of the safetensors format whose elements are whole bytes. */
typedef enum eg_st_dtype {
	EG_ST_UNKNOWN = 0, /* a dtype this library does not know (name kept) */
	EG_ST_BOOL, EG_ST_U8, EG_ST_I8, EG_ST_F8_E4M3, EG_ST_F8_E5M2, EG_ST_F8_E8M0,
	EG_ST_I16, EG_ST_U16, EG_ST_F16, EG_ST_BF16,
	EG_ST_I32, EG_ST_U32, EG_ST_F32,
	EG_ST_I64, EG_ST_U64, EG_ST_F64,
} eg_st_dtype;

/* The format's name of t ("BF16", "F8_E4M3", ...); NULL for EG_ST_UNKNOWN. */
const char *eg_st_dtype_name(eg_st_dtype t);
/* Bytes per element of t; 0 for EG_ST_UNKNOWN. */
size_t eg_st_dtype_size(eg_st_dtype t);

/* One tensor of a file. Strings and shape are owned by the eg_st. */
typedef struct eg_st_tensor {
	const char *name;
	const char *dtype_name;  /* as the header spells it */
	eg_st_dtype dtype;
	int ndim;
	const uint64_t *shape;   /* ndim sizes */
	uint64_t begin, end;     /* byte range in the data section */
} eg_st_tensor;

/* A parsed, checked safetensors file; opaque. */
typedef struct eg_st eg_st;

/* Opens path, checks it as described above and maps it. *out is owned by
 * the caller, freed by eg_st_close. Errors: a negative errno of open,
 * fstat, read or mmap; EG_ECKPT (not a regular file, or malformed). */
int eg_st_open(const char *path, eg_st **out, char *err, size_t errlen);

/* The same over a whole file already in memory (size bytes at file, owned
 * by the caller and kept until eg_st_close): for tests and fuzzing. */
int eg_st_load(const void *file, uint64_t size, eg_st **out, char *err, size_t errlen);

/* Unmaps and frees st (NULL is a no-op); every pointer taken from it dies. */
void eg_st_close(eg_st *st);

/* Tensors, in data-section order (by begin). i < eg_st_count(st). */
size_t eg_st_count(const eg_st *st);
const eg_st_tensor *eg_st_tensor_at(const eg_st *st, size_t i);

/* The tensor called name, or NULL. */
const eg_st_tensor *eg_st_find(const eg_st *st, const char *name);

/* Where t's bytes start in the mapping (t->end - t->begin of them). */
const unsigned char *eg_st_data(const eg_st *st, const eg_st_tensor *t);

/* The value of key in __metadata__, or NULL; owned by st. */
const char *eg_st_metadata(const eg_st *st, const char *key);

/* Finds the file holding tensor in a checkpoint: ckpt is a .safetensors
 * file (returned as it is), a model.safetensors.index.json (the shard its
 * weight_map names, relative to the index's directory; a name with a '/'
 * or "..", or absolute, is refused), or a directory holding either (the
 * index when there is one, else its only .safetensors file). *path is
 * malloc'd. Errors: -ENOENT and other negative errnos, -ENOMEM, EG_ECKPT
 * (an index without weight_map or without the tensor, a directory with no
 * or several .safetensors files and no index). A single file is not
 * opened here: eg_st_find tells whether it holds the tensor. */
int eg_st_locate(const char *ckpt, const char *tensor, char **path, char *err, size_t errlen);

/* ---- writing ------------------------------------------------------------ */

/* One tensor to write: its bytes follow the previous tensor's. */
typedef struct eg_st_spec {
	const char *name;
	eg_st_dtype dtype;       /* not EG_ST_UNKNOWN */
	int ndim;                /* 0 .. 8 */
	uint64_t shape[8];
} eg_st_spec;

/* Builds the start of a file holding tensors t[0..n-1] back to back in
 * that order, and __metadata__ from nmeta key/value pairs (meta[2i] key,
 * meta[2i+1] value; may be NULL when nmeta is 0): the 8-byte length and the
 * JSON, padded with spaces so the data section starts 8-byte aligned.
 * *out (malloc'd, *len bytes) is the caller's; the caller then writes each
 * tensor's bytes, which eg_st_spec_bytes() counts.
 * Errors: EG_EINVAL (a bad spec, a repeated name, sizes that overflow),
 * -ENOMEM. */
int eg_st_header(const eg_st_spec *t, size_t n, const char *const *meta, size_t nmeta,
                 unsigned char **out, size_t *len);

/* Bytes of a tensor of spec s (0 when they overflow 64 bits). */
uint64_t eg_st_spec_bytes(const eg_st_spec *s);

#ifdef __cplusplus
}
#endif
#endif
