/* check_npy.c - the .npy reader and writer (eg_npy.h) on files written
 * byte by byte here, independent of NumPy and of the code under test:
 * format versions, dtypes, shapes, header dicts as Python writes them, and
 * every refusal with its reason and error code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "egtest.h"
#include "eg_npy.h"

/* Writes magic, version, header length (2 or 4 bytes), dict padded with
 * spaces and a newline to a multiple of 64, then data; returns the path. */
static char *write_raw(const char *name, int major, const char *dict, const void *data,
                       size_t bytes)
{
	char *path = egt_path(name);
	size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
	size_t total = (pre + dl + 1 + 63) / 64 * 64, hl = total - pre;
	unsigned char head[12] = { 0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0 };
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < pre - 8; i++)
		head[8 + i] = (unsigned char)(hl >> (8 * i));
	ck_assert_uint_eq(fwrite(head, 1, pre, f), pre);
	ck_assert_uint_eq(fwrite(dict, 1, dl, f), dl);
	for (size_t i = pre + dl; i + 1 < total; i++)
		fputc(' ', f);
	fputc('\n', f);
	if (bytes)
		ck_assert_uint_eq(fwrite(data, 1, bytes, f), bytes);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static void expect_refused(const char *path, int code, const char *why)
{
	eg_npy a;
	char err[256] = "";

	ck_assert_int_eq(eg_npy_open(path, &a, err, sizeof err), code);
	ck_assert_msg(strstr(err, why) != NULL, "%s: '%s' lacks '%s'", path, err, why);
	ck_assert_ptr_null(a.map);
	eg_npy_close(&a); /* harmless on a failed open */
}

START_TEST(test_versions_and_dtypes)
{
	static const struct { const char *descr; eg_npy_type t; size_t size; } types[] = {
		{ "<f4", EG_NPY_F4, 4 }, { "<f2", EG_NPY_F2, 2 }, { "|u1", EG_NPY_U1, 1 },
		{ "<u2", EG_NPY_U2, 2 }, { "<i4", EG_NPY_I4, 4 }, { "<i8", EG_NPY_I8, 8 },
		{ "<u8", EG_NPY_U8, 8 }, { "u1", EG_NPY_U1, 1 }, { "=f4", EG_NPY_F4, 4 },
		{ "<u1", EG_NPY_U1, 1 },
	};
	uint8_t data[3 * 5 * 8];
	char dict[128];

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	for (int major = 1; major <= 3; major++) {
		for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
			eg_npy a;
			char err[128];
			char *path;

			snprintf(dict, sizeof dict,
			         "{'descr': '%s', 'fortran_order': False, 'shape': (3, 5), }",
			         types[k].descr);
			path = write_raw("a.npy", major, dict, data, 15 * types[k].size);
			ck_assert_int_eq(eg_npy_open(path, &a, err, sizeof err), 0);
			ck_assert_int_eq(a.type, types[k].t);
			ck_assert_uint_eq(a.itemsize, types[k].size);
			ck_assert_uint_eq(eg_npy_itemsize(a.type), types[k].size);
			ck_assert_int_eq(a.ndim, 2);
			ck_assert_uint_eq(a.rows, 3);
			ck_assert_uint_eq(a.cols, 5);
			ck_assert_mem_eq(a.data, data, 15 * types[k].size);
			ck_assert_uint_eq(((const uint8_t *)a.data - (const uint8_t *)a.map) % 64, 0);
			eg_npy_close(&a);
			ck_assert_ptr_null(a.map);
		}
	}
	ck_assert_str_eq(eg_npy_descr(EG_NPY_U1), "|u1");
	ck_assert_ptr_null(eg_npy_descr((eg_npy_type)99));
	ck_assert_uint_eq(eg_npy_itemsize((eg_npy_type)99), 0);
}
END_TEST

/* Header dicts as other writers produce them. */
START_TEST(test_header_dicts)
{
	static const struct { const char *dict; int ndim; uint64_t rows, cols; } ok[] = {
		{ "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", 1, 4, 1 },
		{ "{'shape': (4,), 'fortran_order': False, 'descr': '<i8'}", 1, 4, 1 },
		{ "{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (2, 2)}", 2, 2, 2 },
		{ "{'descr':'<i8','fortran_order':False,'shape':(4L,)}", 1, 4, 1 },
		{ "{ 'descr' : '<i8' , 'fortran_order' : False , 'shape' : ( 1 , 4 ) , }", 2, 1, 4 },
		{ "{'descr': '<i8', 'fortran_order': False, 'shape': (0,), }", 1, 0, 1 },
	};
	int64_t data[4] = { 1, -2, 3, -4 };

	for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
		eg_npy a;
		char err[128];
		char *path = write_raw("d.npy", 1, ok[k].dict, data, sizeof data);

		ck_assert_msg(eg_npy_open(path, &a, err, sizeof err) == 0, "%s: %s", ok[k].dict, err);
		ck_assert_int_eq(a.ndim, ok[k].ndim);
		ck_assert_uint_eq(a.rows, ok[k].rows);
		ck_assert_uint_eq(a.cols, ok[k].cols);
		eg_npy_close(&a);
	}
}
END_TEST

START_TEST(test_refusals)
{
	int64_t data[6] = { 0 };
	char *p;

	p = write_raw("fortran.npy", 1, "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "Fortran-order");
	p = write_raw("be.npy", 1, "{'descr': '>i8', 'fortran_order': False, 'shape': (6,), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "big-endian");
	p = write_raw("c8.npy", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (6,), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "unsupported .npy dtype '<c8'");
	p = write_raw("rec.npy", 1,
	              "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (6,), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "structured");
	p = write_raw("0d.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
	              data, 8);
	expect_refused(p, EG_EFORMAT, "0-D");
	p = write_raw("3d.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2, 3), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "3-D");
	p = write_raw("short.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (7,), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "shorter than its header says");
	p = write_raw("huge.npy", 1,
	              "{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "too large");
	p = write_raw("nokey.npy", 1, "{'descr': '<i8', 'shape': (6,), }", data, sizeof data);
	expect_refused(p, EG_EFORMAT, "malformed");
	p = write_raw("extra.npy", 1,
	              "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'x': 1}",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "malformed");
	p = write_raw("v4.npy", 4, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }",
	              data, sizeof data);
	expect_refused(p, EG_EFORMAT, "version 4.0");
	p = write_raw("magic.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }",
	              data, sizeof data);
	{
		FILE *f = fopen(p, "r+b");

		ck_assert_ptr_nonnull(f);
		fputc('X', f);
		fclose(f);
	}
	expect_refused(p, EG_EFORMAT, "magic");
	expect_refused(egt_path("missing.npy"), -ENOENT, "No such file");
	expect_refused(egt_tmpdir(), EG_EFORMAT, "not a .npy file");
}
END_TEST

/* A header longer than the file it claims to start. */
START_TEST(test_truncated_header)
{
	char *p = egt_path("t.npy");
	unsigned char head[12] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0x7f };
	FILE *f = fopen(p, "wb");

	ck_assert_ptr_nonnull(f);
	fwrite(head, 1, 12, f);
	fclose(f);
	expect_refused(p, EG_EFORMAT, "truncated");
}
END_TEST

/* What eg_npy_write_header writes reads back, data 64-byte aligned. */
START_TEST(test_write_roundtrip)
{
	float v[6] = { 1.5f, -2, 3, 4, 5, 6 };

	for (int ndim = 1; ndim <= 2; ndim++) {
		char *p = egt_path("w.npy"), err[128];
		FILE *f = fopen(p, "wb");
		eg_npy a;

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(eg_npy_write_header(f, "<f4", ndim, ndim == 1 ? 6 : 2, 3), 0);
		ck_assert_uint_eq(ftell(f) % 64, 0);
		fwrite(v, 1, sizeof v, f);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_int_eq(eg_npy_open(p, &a, err, sizeof err), 0);
		ck_assert_int_eq(a.type, EG_NPY_F4);
		ck_assert_int_eq(a.ndim, ndim);
		ck_assert_uint_eq(a.rows * a.cols, 6);
		ck_assert_mem_eq(a.data, v, sizeof v);
		eg_npy_close(&a);
	}
}
END_TEST

/* eg_npy_parse: the same image in memory reads the same, its rows point
 * into the caller's buffer, and any prefix of it shorter than the whole is
 * refused (10 bytes or more: as truncated), leaving the struct zeroed. */
START_TEST(test_parse_in_memory)
{
	uint16_t v[6] = { 1, 2, 3, 4, 5, 0xffff };
	char *img = NULL, err[128];
	size_t len = 0;
	FILE *f = open_memstream(&img, &len);
	eg_npy a;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(eg_npy_write_header(f, "<u2", 2, 2, 3), 0);
	fwrite(v, 1, sizeof v, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(eg_npy_parse(img, len, &a, err, sizeof err), 0);
	ck_assert_int_eq(a.type, EG_NPY_U2);
	ck_assert_uint_eq(a.rows, 2);
	ck_assert_uint_eq(a.cols, 3);
	ck_assert_ptr_eq(a.data, img + len - sizeof v);
	ck_assert_ptr_null(a.map);
	eg_npy_close(&a); /* owns nothing: a no-op */
	for (size_t cut = 0; cut < len; cut++) {
		err[0] = '\0';
		ck_assert_int_eq(eg_npy_parse(img, cut, &a, err, sizeof err), EG_EFORMAT);
		ck_assert_msg(strstr(err, cut < 10 ? "not a .npy" : "truncated") != NULL,
		              "%zu bytes: '%s'", cut, err);
		ck_assert_ptr_null(a.data);
	}
	free(img);
}
END_TEST

/* A failed write reports its errno. */
START_TEST(test_write_error)
{
	FILE *f = fopen("/dev/full", "wb");

	ck_assert_ptr_nonnull(f);
	setvbuf(f, NULL, _IONBF, 0);
	ck_assert_int_eq(eg_npy_write_header(f, "<f4", 1, 6, 1), -ENOSPC);
	fclose(f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("npy");
	TCase *tc = tcase_create("npy");

	tcase_add_test(tc, test_versions_and_dtypes);
	tcase_add_test(tc, test_header_dicts);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_truncated_header);
	tcase_add_test(tc, test_write_roundtrip);
	tcase_add_test(tc, test_parse_in_memory);
	tcase_add_test(tc, test_write_error);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
