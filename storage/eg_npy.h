/* eg_npy.h - NumPy .npy files: read (memory-mapped) and write.
 *
 * The one .npy reader of the project: the hash spec's vocabulary maps
 * (eg_hash.h) and the engram command's rows and slots files come through
 * it. It reads format versions 1.0, 2.0 and 3.0 (see numpy.lib.format):
 * 1-D and 2-D arrays in C order of the little-endian dtypes of eg_npy_type,
 * with the header dict parsed as the Python literal it is (keys in any
 * order, either quote, trailing commas). Anything else (Fortran order,
 * big-endian or structured dtypes, 0-D or 3-D shapes, a file shorter than
 * its header says) is refused with a one-line reason.
 *
 * Errors: functions return 0 or a negative value, as eg_table.h says: a
 * negative errno for the file (-ENOENT, -EACCES, -ENOMEM...) or EG_EFORMAT
 * for a file that is not a .npy this reader accepts. Threads: an open
 * eg_npy is read-only; any thread may read it.
 */
#ifndef EG_NPY_H
#define EG_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eg_npy_type {
	EG_NPY_F4 = 1, /* <f4 */
	EG_NPY_F2,     /* <f2 */
	EG_NPY_U1,     /* |u1 */
	EG_NPY_U2,     /* <u2 (raw 16-bit values, e.g. bf16 bits) */
	EG_NPY_I4,     /* <i4 */
	EG_NPY_I8,     /* <i8 */
	EG_NPY_U8,     /* <u8 */
} eg_npy_type;

/* An open .npy file. data points into a read-only private mapping of the
 * whole file, owned by the struct, valid until eg_npy_close() (or, from
 * eg_npy_parse, into the caller's buffer: map is then NULL). */
typedef struct eg_npy {
	eg_npy_type type;
	size_t itemsize;
	int ndim;          /* 1 or 2 */
	uint64_t rows;     /* shape[0] */
	uint64_t cols;     /* shape[1], or 1 for a 1-D array */
	const void *data;  /* rows * cols * itemsize bytes */
	void *map;
	size_t map_len;
} eg_npy;

/* Opens and maps path into *out. On failure returns -errno or EG_EFORMAT,
 * writes a one-line reason without the path into err (errlen bytes,
 * truncated) and leaves *out closed (eg_npy_close on it is a no-op). */
int eg_npy_open(const char *path, eg_npy *out, char *err, size_t errlen);

/* The same checks on a .npy image already in memory, buf[0..len): data
 * points into buf, which the caller keeps alive and unchanged while *out is
 * used (*out owns no mapping). Returns 0 or EG_EFORMAT with the reason in
 * err, and leaves *out zeroed on failure. */
int eg_npy_parse(const void *buf, size_t len, eg_npy *out, char *err, size_t errlen);

/* Unmaps npy and zeroes it; a closed or zeroed struct is a no-op. */
void eg_npy_close(eg_npy *npy);

/* The descr string of a type ("<f4", "|u1", ...) and its item size; NULL
 * and 0 for a value outside eg_npy_type. */
const char *eg_npy_descr(eg_npy_type t);
size_t eg_npy_itemsize(eg_npy_type t);

/* Writes a version 1.0 .npy header for a C-order array of descr with shape
 * (rows,) when ndim is 1 or (rows, cols) when 2, padded so the data starts
 * 64-byte aligned; the caller then writes the data. Returns 0, or -errno
 * of the failed write (errno is left set too). */
int eg_npy_write_header(FILE *f, const char *descr, int ndim, uint64_t rows,
                        uint64_t cols);

#ifdef __cplusplus
}
#endif
#endif
