/* safetensors_int.h - shared by the files of the safetensors module
 * (safetensors.c reading, safetensors_index.c locating, safetensors_write.c
 * writing); not installed. */
#ifndef EG_SAFETENSORS_INT_H
#define EG_SAFETENSORS_INT_H

#include <stddef.h>
#include <stdint.h>

/* Writes the printf message into err (when err and errlen are set) and
 * returns EG_ECKPT. */
int eg__st_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The product of shape[0..ndim-1], or UINT64_MAX when it overflows. */
uint64_t eg__st_elems(const uint64_t *shape, int ndim);

#endif
