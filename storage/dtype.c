/* dtype.c - float32 to and from the stored value types, bit-exact with
 * NumPy (f16), ml_dtypes (bf16) and the e4m3fn / ue8m0 conventions. */
#include <math.h>
#include <string.h>
#include "eg_dtype.h"

static uint32_t f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static float u2f(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* IEEE binary16, round to nearest even; NaN keeps the top of its payload
 * (and stays a NaN) like numpy's npy_floatbits_to_halfbits. */
uint16_t eg_f32_to_f16(float f)
{
	uint32_t x = f2u(f), a = x & 0x7fffffffu;
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);

	if (a >= 0x7f800000u) {
		uint16_t h = (uint16_t)(0x7c00u + ((a & 0x007fffffu) >> 13));

		if (a != 0x7f800000u && h == 0x7c00u)
			h++; /* a NaN whose payload lies below bit 13 */
		return sign | h;
	}
	if (a >= 0x477ff000u) /* >= 65520 rounds to inf */
		return sign | 0x7c00u;
	if (a < 0x38800000u) { /* below 2^-14: subnormal or zero */
		if (a < 0x33000000u) /* below 2^-25: rounds to zero */
			return sign;
		uint32_t e = a >> 23, m = (a & 0x007fffffu) | 0x00800000u;
		unsigned shift = 126 - e; /* 14 + (113 - e) - 1 */
		uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);

		if (rem > half || (rem == half && (h & 1)))
			h++;
		return sign | (uint16_t)h; /* h may carry into the exponent: right */
	}
	uint32_t h = ((a - 0x38000000u) >> 13), rem = a & 0x1fffu;

	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++;
	return sign | (uint16_t)h;
}

float eg_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;

	if (e == 0x1f)
		return u2f(sign | 0x7f800000u | (m << 13));
	if (e == 0) {
		float v = (float)m * 0x1p-24f;

		return sign ? -v : v;
	}
	return u2f(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t eg_f32_to_bf16(float f)
{
	uint32_t x = f2u(f);

	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) & 0x8000u) | 0x7fc0u;
	x += 0x7fffu + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

float eg_bf16_to_f32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

/* e4m3fn: bias 7, no inf, 0x7f/0xff are NaN, max 448; saturating. */
uint8_t eg_f32_to_e4m3(float f)
{
	uint32_t x = f2u(f), a = x & 0x7fffffffu;
	uint8_t sign = (uint8_t)((x >> 24) & 0x80u);

	if (a > 0x7f800000u)
		return 0x7f;
	if (a >= 0x43e80000u) /* >= 464: rounds past 448, saturate (also inf) */
		return sign | 0x7e;
	if (a < 0x3c800000u) { /* below 2^-6: subnormal steps of 2^-9 */
		float q = nearbyintf(u2f(a) * 512.0f); /* exact scaling, RNE */

		return sign | (uint8_t)q; /* q == 8 is the smallest normal */
	}
	uint32_t h = (a - 0x3c000000u) >> 20, rem = a & 0xfffffu; /* rebias 127 -> 7 */

	if (rem > 0x80000u || (rem == 0x80000u && (h & 1)))
		h++;
	return sign | (uint8_t)(h > 0x7e ? 0x7e : h);
}

float eg_e4m3_to_f32(uint8_t v)
{
	uint32_t e = (v >> 3) & 0xf, m = v & 7;
	float r;

	if ((v & 0x7f) == 0x7f)
		return u2f(0x7fc00000u | ((uint32_t)(v & 0x80) << 24));
	if (e == 0)
		r = (float)m * 0x1p-9f;
	else
		r = u2f(((e + 120) << 23) | (m << 20));
	return v & 0x80 ? -r : r;
}

/* The ue8m0 byte of a block: the smallest e with amax / 2^(e-127) <= 448. */
static uint8_t block_scale(const float *v, uint32_t n)
{
	double amax = 0;
	int k;

	for (uint32_t i = 0; i < n; i++) {
		double a = fabs((double)v[i]);

		if (a > amax) /* NaN compares false: ignored */
			amax = a;
	}
	if (amax == 0)
		return 0;
	if (isinf(amax))
		return 254;
	k = (int)ceil(log2(amax / 448.0));
	/* log2 may be off by one ulp near powers of two: settle exactly */
	while (k > -127 && amax <= ldexp(448.0, k - 1))
		k--;
	while (amax > ldexp(448.0, k))
		k++;
	k += 127;
	return (uint8_t)(k < 0 ? 0 : k > 254 ? 254 : k);
}

static int encode_row(eg_dtype dtype, uint32_t dim, uint32_t sb,
                      const float *src, uint8_t *dst)
{
	switch (dtype) {
	case EG_DTYPE_F32:
		memcpy(dst, src, (size_t)dim * 4);
		return 0;
	case EG_DTYPE_F16:
	case EG_DTYPE_BF16:
		for (uint32_t i = 0; i < dim; i++) {
			uint16_t h = dtype == EG_DTYPE_F16 ? eg_f32_to_f16(src[i])
			                                   : eg_f32_to_bf16(src[i]);

			memcpy(dst + 2 * (size_t)i, &h, 2);
		}
		return 0;
	case EG_DTYPE_E4M3:
		if (!sb) {
			for (uint32_t i = 0; i < dim; i++)
				dst[i] = eg_f32_to_e4m3(src[i]);
			return 0;
		}
		for (uint32_t b = 0; b < dim / sb; b++) {
			uint8_t e = block_scale(src + (size_t)b * sb, sb);
			double inv = ldexp(1.0, 127 - e); /* exact power of two */

			dst[dim + b] = e;
			for (uint32_t i = b * sb; i < (b + 1) * sb; i++)
				dst[i] = eg_f32_to_e4m3((float)(src[i] * inv));
		}
		return 0;
	case EG_DTYPE_U8:
		for (uint32_t i = 0; i < dim; i++) {
			float f = src[i];

			dst[i] = f >= 255.0f ? 255 : f > 0.0f ? (uint8_t)f : 0;
		}
		return 0;
	}
	return EG_EINVAL;
}

static void decode_row(eg_dtype dtype, uint32_t dim, uint32_t sb,
                       const uint8_t *src, float *dst)
{
	uint16_t h;

	for (uint32_t i = 0; i < dim; i++) {
		switch (dtype) {
		case EG_DTYPE_F32:
			memcpy(&dst[i], src + 4 * (size_t)i, 4);
			break;
		case EG_DTYPE_F16:
			memcpy(&h, src + 2 * (size_t)i, 2);
			dst[i] = eg_f16_to_f32(h);
			break;
		case EG_DTYPE_BF16:
			memcpy(&h, src + 2 * (size_t)i, 2);
			dst[i] = eg_bf16_to_f32(h);
			break;
		case EG_DTYPE_E4M3:
			dst[i] = eg_e4m3_to_f32(src[i]);
			if (sb)
				dst[i] = (float)ldexp(dst[i], src[dim + i / sb] - 127);
			break;
		default:
			dst[i] = src[i];
			break;
		}
	}
}

int eg_rows_from_f32(eg_dtype dtype, uint32_t dim, uint32_t scale_block,
                     const float *src, size_t n, void *dst)
{
	uint32_t rb = eg_row_bytes(dtype, dim, scale_block);
	uint8_t *out = dst;

	if (rb == 0)
		return EG_EINVAL;
	for (size_t r = 0; r < n; r++)
		encode_row(dtype, dim, scale_block, src + r * dim, out + r * rb);
	return 0;
}

int eg_rows_to_f32(eg_dtype dtype, uint32_t dim, uint32_t scale_block,
                   const void *src, size_t n, float *dst)
{
	uint32_t rb = eg_row_bytes(dtype, dim, scale_block);
	const uint8_t *in = src;

	if (rb == 0)
		return EG_EINVAL;
	for (size_t r = 0; r < n; r++)
		decode_row(dtype, dim, scale_block, in + r * rb, dst + r * dim);
	return 0;
}
