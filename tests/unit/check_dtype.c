/* check_dtype.c - conversions between float32 and the stored value types. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "egtest.h"
#include "eg_dtype.h"

/* f32 bits -> expected f16, bf16, e4m3 bits. f16 from numpy
 * (astype(float16)); bf16 and e4m3 from exact rational rounding (nearest,
 * ties to even), done apart from the code under test. Covers signed zero,
 * f32 subnormals, the f16/e4m3 subnormal range and its ties, overflow and
 * saturation edges, inf and NaNs (quiet, signalling, payloads). */
static const struct {
	uint32_t f;
	uint16_t f16, bf16;
	uint8_t e4m3;
} tricky[] = {
	{ 0x00000000, 0x0000, 0x0000, 0x00 },
	{ 0x80000000, 0x8000, 0x8000, 0x80 },
	{ 0x3f800000, 0x3c00, 0x3f80, 0x38 },
	{ 0xbf800000, 0xbc00, 0xbf80, 0xb8 },
	{ 0x00000001, 0x0000, 0x0000, 0x00 },
	{ 0x007fffff, 0x0000, 0x0080, 0x00 },
	{ 0x00800000, 0x0000, 0x0080, 0x00 },
	{ 0x477fe000, 0x7bff, 0x4780, 0x7e },
	{ 0x477fefff, 0x7bff, 0x4780, 0x7e },
	{ 0x477ff000, 0x7c00, 0x4780, 0x7e },
	{ 0x47800000, 0x7c00, 0x4780, 0x7e },
	{ 0x7f7fffff, 0x7c00, 0x7f80, 0x7e },
	{ 0xff7fffff, 0xfc00, 0xff80, 0xfe },
	{ 0x7f800000, 0x7c00, 0x7f80, 0x7e },
	{ 0xff800000, 0xfc00, 0xff80, 0xfe },
	{ 0x7fc00000, 0x7e00, 0x7fc0, 0x7f },
	{ 0xffc00000, 0xfe00, 0xffc0, 0x7f },
	{ 0x7f800001, 0x7c01, 0x7fc0, 0x7f },
	{ 0x7fa00000, 0x7d00, 0x7fc0, 0x7f },
	{ 0x38800000, 0x0400, 0x3880, 0x00 },
	{ 0x387fc000, 0x03ff, 0x3880, 0x00 },
	{ 0x33800000, 0x0001, 0x3380, 0x00 },
	{ 0x33000000, 0x0000, 0x3300, 0x00 },
	{ 0x33000001, 0x0001, 0x3300, 0x00 },
	{ 0x33400000, 0x0001, 0x3340, 0x00 },
	{ 0x33c00000, 0x0002, 0x33c0, 0x00 },
	{ 0x3f801000, 0x3c00, 0x3f80, 0x38 },
	{ 0x3f803000, 0x3c02, 0x3f80, 0x38 },
	{ 0x3f801001, 0x3c01, 0x3f80, 0x38 },
	{ 0x3f808000, 0x3c04, 0x3f80, 0x38 },
	{ 0x3f818000, 0x3c0c, 0x3f82, 0x38 },
	{ 0x3f808001, 0x3c04, 0x3f81, 0x38 },
	{ 0x7f7f8000, 0x7c00, 0x7f80, 0x7e },
	{ 0x7f7f7fff, 0x7c00, 0x7f7f, 0x7e },
	{ 0x00008000, 0x0000, 0x0000, 0x00 },
	{ 0x00018000, 0x0000, 0x0002, 0x00 },
	{ 0x80000001, 0x8000, 0x8000, 0x80 },
	{ 0x3dcccccd, 0x2e66, 0x3dcd, 0x1d },
	{ 0x40490fdb, 0x4248, 0x4049, 0x45 },
	{ 0x3727c5ac, 0x00a8, 0x3728, 0x00 },
	{ 0xc3e00000, 0xdf00, 0xc3e0, 0xfe },
	{ 0x43e00000, 0x5f00, 0x43e0, 0x7e },
	{ 0x43e7ffff, 0x5f40, 0x43e8, 0x7e },
	{ 0x43e80000, 0x5f40, 0x43e8, 0x7e },
	{ 0x43f00000, 0x5f80, 0x43f0, 0x7e },
	{ 0x3c800000, 0x2400, 0x3c80, 0x08 },
	{ 0x3b000000, 0x1800, 0x3b00, 0x01 },
	{ 0x3a800000, 0x1400, 0x3a80, 0x00 },
	{ 0x3ac00000, 0x1600, 0x3ac0, 0x01 },
	{ 0x3b400000, 0x1a00, 0x3b40, 0x02 },
	{ 0x3c700000, 0x2380, 0x3c70, 0x08 },
	{ 0x3c780000, 0x23c0, 0x3c78, 0x08 },
	{ 0x41100000, 0x4880, 0x4110, 0x51 },
	{ 0x41180000, 0x48c0, 0x4118, 0x52 },
	{ 0x41280000, 0x4940, 0x4128, 0x52 },
	{ 0xb8d00000, 0x8680, 0xb8d0, 0x80 },
};
#define NTRICKY (sizeof tricky / sizeof tricky[0])

static float bits_f(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

static uint32_t f_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

START_TEST(test_f16_tricky)
{
	for (size_t i = 0; i < NTRICKY; i++)
		ck_assert_msg(eg_f32_to_f16(bits_f(tricky[i].f)) == tricky[i].f16,
		              "f16(0x%08x) = 0x%04x, want 0x%04x", tricky[i].f,
		              eg_f32_to_f16(bits_f(tricky[i].f)), tricky[i].f16);
}
END_TEST

START_TEST(test_bf16_tricky)
{
	for (size_t i = 0; i < NTRICKY; i++)
		ck_assert_msg(eg_f32_to_bf16(bits_f(tricky[i].f)) == tricky[i].bf16,
		              "bf16(0x%08x) = 0x%04x, want 0x%04x", tricky[i].f,
		              eg_f32_to_bf16(bits_f(tricky[i].f)), tricky[i].bf16);
}
END_TEST

START_TEST(test_e4m3_tricky)
{
	for (size_t i = 0; i < NTRICKY; i++)
		ck_assert_msg(eg_f32_to_e4m3(bits_f(tricky[i].f)) == tricky[i].e4m3,
		              "e4m3(0x%08x) = 0x%02x, want 0x%02x", tricky[i].f,
		              eg_f32_to_e4m3(bits_f(tricky[i].f)), tricky[i].e4m3);
}
END_TEST

/* Every half value decodes exactly and encodes back to itself. */
START_TEST(test_f16_all_round_trip)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = eg_f16_to_f32((uint16_t)h);

		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
			ck_assert(isnan(f));
			continue;
		}
		ck_assert_msg(eg_f32_to_f16(f) == h, "0x%04x -> %a -> 0x%04x", h, f,
		              eg_f32_to_f16(f));
	}
	ck_assert(eg_f16_to_f32(0x3c00) == 1.0f);
	ck_assert(eg_f16_to_f32(0x0001) == 0x1p-24f);
	ck_assert(eg_f16_to_f32(0x7bff) == 65504.0f);
	ck_assert(f_bits(eg_f16_to_f32(0x8000)) == 0x80000000u);
}
END_TEST

START_TEST(test_bf16_all_round_trip)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = eg_bf16_to_f32((uint16_t)h);

		ck_assert(f_bits(f) == h << 16);
		if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
			continue; /* NaN: quieted */
		ck_assert(eg_f32_to_bf16(f) == h);
	}
}
END_TEST

START_TEST(test_e4m3_all_round_trip)
{
	for (uint32_t v = 0; v < 256; v++) {
		float f = eg_e4m3_to_f32((uint8_t)v);

		if ((v & 0x7f) == 0x7f) {
			ck_assert(isnan(f));
			continue;
		}
		ck_assert_msg(eg_f32_to_e4m3(f) == v, "0x%02x -> %a", v, f);
	}
	ck_assert(eg_e4m3_to_f32(0x7e) == 448.0f);
	ck_assert(eg_e4m3_to_f32(0x01) == 0x1p-9f);
	ck_assert(eg_e4m3_to_f32(0x08) == 0x1p-6f);
}
END_TEST

/* ue8m0: smallest power of two 2^(e-127) with amax / scale <= 448. */
START_TEST(test_e4m3_block_scales)
{
	static const struct { float amax; uint8_t e; } cases[] = {
		{ 448.0f, 127 }, { 449.0f, 128 }, { 896.0f, 128 }, { 897.0f, 129 },
		{ 0.5f, 118 }, { 224.0f, 126 }, { 1.0f, 119 }, { 0.0f, 0 },
		{ INFINITY, 254 }, { 0x1p-140f, 0 },
	};
	uint8_t row[8 + 2];
	float in[8], out[8];

	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_E4M3, 8, 4), 10);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (int i = 0; i < 8; i++)
			in[i] = i == 1 ? -cases[c].amax : cases[c].amax / (float)(i + 2);
		ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_E4M3, 8, 4, in, 1, row), 0);
		ck_assert_msg(row[8] == cases[c].e, "amax %a: e %u want %u", cases[c].amax,
		              row[8], cases[c].e);
	}
	/* decoding gives the values back within e4m3's precision (3 bits) */
	for (int i = 0; i < 8; i++)
		in[i] = (float)(i - 3) * 37.25f + (i > 4 ? 1000.0f : 0.0f);
	ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_E4M3, 8, 4, in, 1, row), 0);
	ck_assert_int_eq(eg_rows_to_f32(EG_DTYPE_E4M3, 8, 4, row, 1, out), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_msg(fabsf(out[i] - in[i]) <= fabsf(in[i]) / 16 + 1e-6f,
		              "%d: %g vs %g", i, out[i], in[i]);
}
END_TEST

START_TEST(test_rows_layouts)
{
	float in[6] = { 1.0f, -2.5f, 300.7f, 0.0f, 12.9f, -0.1f }, out[6];
	uint8_t buf[64];

	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_F32, 6, 0), 24);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_BF16, 6, 0), 12);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_F16, 6, 0), 12);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_E4M3, 6, 0), 6);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_E4M3, 6, 3), 8);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_U8, 6, 0), 6);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_E4M3, 6, 4), 0);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_BF16, 6, 3), 0);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_U8, 0, 0), 0);
	ck_assert_uint_eq(eg_row_bytes((eg_dtype)99, 6, 0), 0);
	ck_assert_uint_eq(eg_row_bytes(EG_DTYPE_F32, UINT32_MAX, 0), 0);
	ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_BF16, 6, 3, in, 1, buf), EG_EINVAL);
	ck_assert_int_eq(eg_rows_to_f32(EG_DTYPE_E4M3, 6, 4, buf, 1, out), EG_EINVAL);

	/* u8: truncated and clamped to 0..255 */
	ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_U8, 6, 0, in, 1, buf), 0);
	ck_assert_mem_eq(buf, ((uint8_t[]){ 1, 0, 255, 0, 12, 0 }), 6);
	ck_assert_int_eq(eg_rows_to_f32(EG_DTYPE_U8, 6, 0, buf, 1, out), 0);
	ck_assert(out[4] == 12.0f);

	/* f32 is the bytes; bf16 is little-endian u16 */
	ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_F32, 6, 0, in, 1, buf), 0);
	ck_assert_mem_eq(buf, in, 24);
	ck_assert_int_eq(eg_rows_from_f32(EG_DTYPE_BF16, 3, 0, in, 2, buf), 0);
	ck_assert_uint_eq(buf[0], 0x80);
	ck_assert_uint_eq(buf[1], 0x3f);
	ck_assert_int_eq(eg_rows_to_f32(EG_DTYPE_BF16, 3, 0, buf, 2, out), 0);
	for (int i = 0; i < 6; i++)
		ck_assert(out[i] == eg_bf16_to_f32(eg_f32_to_bf16(in[i])));
}
END_TEST

START_TEST(test_dtype_names)
{
	eg_dtype t;
	static const char *const names[] = { "f32", "f16", "bf16", "e4m3", "u8" };

	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(eg_dtype_parse(names[i], &t), 0);
		ck_assert_str_eq(eg_dtype_name(t), names[i]);
	}
	ck_assert_int_eq(eg_dtype_parse("fp8", &t), EG_EINVAL);
	ck_assert_int_eq(eg_dtype_parse(NULL, &t), EG_EINVAL);
	ck_assert_ptr_null(eg_dtype_name((eg_dtype)0));
	ck_assert_ptr_null(eg_dtype_name((eg_dtype)42));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dtype");
	TCase *tc = tcase_create("dtype");

	tcase_add_test(tc, test_f16_tricky);
	tcase_add_test(tc, test_bf16_tricky);
	tcase_add_test(tc, test_e4m3_tricky);
	tcase_add_test(tc, test_f16_all_round_trip);
	tcase_add_test(tc, test_bf16_all_round_trip);
	tcase_add_test(tc, test_e4m3_all_round_trip);
	tcase_add_test(tc, test_e4m3_block_scales);
	tcase_add_test(tc, test_rows_layouts);
	tcase_add_test(tc, test_dtype_names);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
