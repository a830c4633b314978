/* eg_dtype.h - converting rows between float32 and the stored row layouts.
 *
 * Rounding matches NumPy: f32 -> f16 is IEEE round-to-nearest-even with
 * overflow to inf (numpy astype(float16)); f32 -> bf16 is round-to-nearest-even
 * on the top 16 bits, NaN kept quiet (as ml_dtypes/torch do). f32 -> e4m3 is
 * e4m3fn (no inf, max 448, saturating), round-to-nearest-even; with block
 * scales, each block of scale_block values gets the ue8m0 scale 2^(e-127)
 * chosen as the smallest power of two with amax / scale <= 448, stored as
 * the byte e after the row's dim value bytes.
 */
#ifndef EG_DTYPE_H
#define EG_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include "eg_table.h"

#ifdef __cplusplus
extern "C" {
#endif

uint16_t eg_f32_to_f16(float f);
float eg_f16_to_f32(uint16_t h);
uint16_t eg_f32_to_bf16(float f);
float eg_bf16_to_f32(uint16_t h);
uint8_t eg_f32_to_e4m3(float f);
float eg_e4m3_to_f32(uint8_t v);

/* Encodes n rows of dim float32 values (src, n*dim floats) into the layout
 * (dtype, dim, scale_block) at dst (n * eg_row_bytes(...) bytes). For
 * EG_DTYPE_U8 the floats are truncated to 0..255 (use eg_rows_copy_u8 for
 * raw bytes). Returns 0 or EG_EINVAL for an invalid layout. */
int eg_rows_from_f32(eg_dtype dtype, uint32_t dim, uint32_t scale_block,
                     const float *src, size_t n, void *dst);

/* Decodes n rows of the layout at src into float32 (n*dim floats at dst).
 * Returns 0 or EG_EINVAL (EG_DTYPE_U8 decodes each byte as its value). */
int eg_rows_to_f32(eg_dtype dtype, uint32_t dim, uint32_t scale_block,
                   const void *src, size_t n, float *dst);

#ifdef __cplusplus
}
#endif
#endif
