/* check_safetensors.c - the safetensors reader refuses every lie a header
 * can tell (each with its own reason), reads what a correct file holds, and
 * reads back what its writer wrote; eg_st_locate follows an index. Files are
 * assembled here byte by byte, not by the writer under test. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "egtest.h"
#include "eg_safetensors.h"

/* A file: the 8-byte length of json, json, then data_len bytes 0, 1, 2... */
static unsigned char *file_of(const char *json, size_t data_len, size_t *size)
{
	size_t n = strlen(json);
	unsigned char *f = malloc(8 + n + data_len + 1);

	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 8; i++)
		f[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(f + 8, json, n);
	for (size_t i = 0; i < data_len; i++)
		f[8 + n + i] = (unsigned char)i;
	*size = 8 + n + data_len;
	return f;
}

/* Loads json + data and expects EG_ECKPT with a reason containing why. */
static void refused(const char *json, size_t data_len, const char *why)
{
	size_t size;
	unsigned char *f = file_of(json, data_len, &size);
	char err[512] = "";
	eg_st *st = (eg_st *)1;

	ck_assert_int_eq(eg_st_load(f, size, &st, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, why), "want '%s' in '%s'", why, err);
	ck_assert_ptr_null(strchr(err, '\n'));
	free(f);
}

START_TEST(test_reads_tensors)
{
	const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]},"
		"\"a\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
		"\"empty\":{\"dtype\":\"U8\",\"shape\":[0,7],\"data_offsets\":[8,8]},"
		"\"new\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[40,42]}}  ";
	size_t size;
	unsigned char *f = file_of(json, 42, &size);
	char err[256];
	eg_st *st;
	const eg_st_tensor *t;

	ck_assert_int_eq(eg_st_load(f, size, &st, err, sizeof err), 0);
	ck_assert_uint_eq(eg_st_count(st), 4);
	ck_assert_str_eq(eg_st_tensor_at(st, 0)->name, "a"); /* in data order */
	t = eg_st_find(st, "b");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(t->dtype, EG_ST_F32);
	ck_assert_int_eq(t->ndim, 2);
	ck_assert_uint_eq(t->shape[0], 2);
	ck_assert_uint_eq(t->shape[1], 3);
	ck_assert_uint_eq(eg_st_data(st, t)[0], 16); /* data section byte 16 */
	t = eg_st_find(st, "new");
	ck_assert_int_eq(t->dtype, EG_ST_UNKNOWN);
	ck_assert_str_eq(t->dtype_name, "F4");
	ck_assert_ptr_null(eg_st_find(st, "c"));
	ck_assert_str_eq(eg_st_metadata(st, "format"), "pt");
	ck_assert_ptr_null(eg_st_metadata(st, "nope"));
	eg_st_close(st);
	free(f);
}
END_TEST

START_TEST(test_refuses_lies)
{
	static const unsigned char short_file[] = { 200, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
	eg_st *st;
	char err[256];

	ck_assert_int_eq(eg_st_load(short_file, 5, &st, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "too short"));
	ck_assert_int_eq(eg_st_load(short_file, sizeof short_file, &st, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "header length 200 runs past the end of the file"));

	refused("[1,2]", 0, "does not start with '{'");
	refused("{\"a\":", 0, "not valid JSON");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
	        "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "not valid JSON");
	refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "'a': no dtype");
	refused("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "'a': no shape");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1,
	        "shape is not an array of non-negative integers");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
	        "shape is not an array");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
	        "data_offsets is not [begin, end]");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,1]}}", 2,
	        "end before they begin");
	/* a truncated file: the offsets run past the data */
	refused("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4,2],\"data_offsets\":[0,16]}}", 10,
	        "run past the end of the data section (10 bytes)");
	/* offsets that do not hold dtype x shape */
	refused("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4,2],\"data_offsets\":[0,12]}}", 16,
	        "hold 12 bytes, but BF16 of 8 elements needs 16");
	refused("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
	        "\"data_offsets\":[0,8]}}", 8, "needs 18446744073709551615");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
	        "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}", 10,
	        "'a' [0, 8] and 'b' [6, 10] overlap");
	refused("{\"__metadata__\":{\"x\":1}}", 0, "__metadata__ 'x' is not a string");
	refused("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
	refused("{\"a\":7}", 0, "'a': not an object");
}
END_TEST

START_TEST(test_writer_round_trip)
{
	eg_st_spec t[2] = {
		{ "values", EG_ST_F8_E4M3, 2, { 3, 8 } },
		{ "values_scale_inv", EG_ST_F8_E8M0, 2, { 3, 2 } },
	};
	const char *meta[] = { "format", "pt" };
	unsigned char *hdr, *f;
	size_t len;
	char err[256];
	eg_st *st;

	ck_assert_int_eq(eg_st_header(t, 2, meta, 1, &hdr, &len), 0);
	ck_assert_uint_eq(len % 8, 0);
	f = calloc(1, len + 30);
	memcpy(f, hdr, len);
	ck_assert_int_eq(eg_st_load(f, len + 30, &st, err, sizeof err), 0);
	ck_assert_uint_eq(eg_st_tensor_at(st, 0)->begin, 0);
	ck_assert_uint_eq(eg_st_tensor_at(st, 0)->end, 24);
	ck_assert_str_eq(eg_st_tensor_at(st, 1)->name, "values_scale_inv");
	ck_assert_uint_eq(eg_st_tensor_at(st, 1)->end, 30);
	ck_assert_str_eq(eg_st_metadata(st, "format"), "pt");
	eg_st_close(st);
	free(f);
	free(hdr);
	t[1].name = "values"; /* a repeated name */
	ck_assert_int_eq(eg_st_header(t, 2, NULL, 0, &hdr, &len), EG_EINVAL);
	t[1].name = "x";
	t[1].dtype = EG_ST_UNKNOWN;
	ck_assert_int_eq(eg_st_header(t, 2, NULL, 0, &hdr, &len), EG_EINVAL);
}
END_TEST

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_locate)
{
	char *dir = egt_path("ckpt"), *index, *path, err[256];
	char cmd[4096];

	snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
	ck_assert_int_eq(egt_exit_status(cmd), 0);
	/* a directory with one file and no index: that file */
	snprintf(cmd, sizeof cmd, "touch %s/only.safetensors", dir);
	ck_assert_int_eq(egt_exit_status(cmd), 0);
	ck_assert_int_eq(eg_st_locate(dir, "x", &path, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(path, "/only.safetensors"));
	free(path);
	snprintf(cmd, sizeof cmd, "touch %s/two.safetensors", dir);
	ck_assert_int_eq(egt_exit_status(cmd), 0);
	ck_assert_int_eq(eg_st_locate(dir, "x", &path, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "holds 2 .safetensors files"));
	/* with an index: the shard it names */
	index = malloc(strlen(dir) + 64);
	sprintf(index, "%s/model.safetensors.index.json", dir);
	write_text(index, "{\"metadata\":{},\"weight_map\":{\"w\":\"two.safetensors\","
	                  "\"up\":\"../x.safetensors\",\"n\":5}}");
	ck_assert_int_eq(eg_st_locate(dir, "w", &path, err, sizeof err), 0);
	ck_assert_str_eq(strrchr(path, '/'), "/two.safetensors");
	free(path);
	ck_assert_int_eq(eg_st_locate(index, "w", &path, err, sizeof err), 0);
	free(path);
	ck_assert_int_eq(eg_st_locate(dir, "missing", &path, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "tensor 'missing' is not in the index's weight_map (3"));
	ck_assert_int_eq(eg_st_locate(dir, "up", &path, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "a file next to the index"));
	ck_assert_int_eq(eg_st_locate(dir, "n", &path, err, sizeof err), EG_ECKPT);
	write_text(index, "{\"weight_map\": 3}");
	ck_assert_int_eq(eg_st_locate(dir, "w", &path, err, sizeof err), EG_ECKPT);
	ck_assert_ptr_nonnull(strstr(err, "no weight_map object"));
	ck_assert_int_eq(eg_st_locate("/nonexistent/x.safetensors", "w", &path, err, sizeof err),
	                 -ENOENT);
	free(index);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("safetensors");

	tcase_add_test(tc, test_reads_tensors);
	tcase_add_test(tc, test_refuses_lies);
	tcase_add_test(tc, test_writer_round_trip);
	tcase_add_test(tc, test_locate);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
