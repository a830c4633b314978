/* npy.h - NumPy .npy files: read (memory-mapped) and write.
 *
 * Reads format versions 1.0, 2.0 and 3.0, 1-D and 2-D arrays in C order of
 * the little-endian dtypes below. Anything else (Fortran order, big-endian,
 * object arrays, 0-D or 3-D shapes, a file shorter than its header says) is
 * refused with a one-line reason. See numpy.lib.format for the format.
 */
#ifndef EG_NPY_H
#define EG_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
 * whole file and stays valid until eg_npy_close(). */
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

/* Opens and maps path. On failure returns -1 and writes a one-line reason
 * (without the path) into err; out is then left closed (safe to close). */
int eg_npy_open(const char *path, eg_npy *out, char *err, size_t errlen);
void eg_npy_close(eg_npy *npy);

/* The descr string of a type ("<f4", "|u1", ...). */
const char *eg_npy_descr(eg_npy_type t);
size_t eg_npy_itemsize(eg_npy_type t);

/* Writes a .npy header for a C-order array of descr with shape (rows,) when
 * ndim is 1 or (rows, cols) when 2; the caller then writes the data.
 * Returns 0, or -1 with errno set by the failed write. */
int eg_npy_write_header(FILE *f, const char *descr, int ndim, uint64_t rows,
                        uint64_t cols);

#endif
