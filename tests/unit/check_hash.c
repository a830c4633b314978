/* check_hash.c - hash specs: parsing, errors, golden vectors, and the C
 * hashing against the independent NumPy reference (tests/python/engram_ref.py,
 * run at test time to produce random cases with their expected slots). */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eg_hash.h"
#include "eg_table.h"
#include "egtest.h"

static eg_hash *parse_ok(const char *json, const char *base_dir)
{
	char err[256] = "";
	eg_hash *h = NULL;
	int rc = eg_hash_parse(json, base_dir, &h, err, sizeof(err));

	ck_assert_msg(rc == 0, "parse failed (%d): %s\n  spec: %.200s", rc, err, json);
	return h;
}

/* ---- parsing errors --------------------------------------------------------- */

static const struct bad_spec {
	const char *json;
	const char *why; /* must appear in the message */
} bad_specs[] = {
	{"", "invalid JSON"},
	{"[1,2]", "must be a JSON object"},
	{"{\"max_ngram\":3}", "missing field \"kind\""},
	{"{\"kind\":\"md5\"}", "\"kind\" must be"},
	{"{\"kind\":\"engram-v1\",\"heads\":1,\"pad\":0,\"multipliers\":[1,1],\"moduli\":[[2]]}",
	 "missing field \"max_ngram\""},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":1,\"heads\":1,\"pad\":0}", "\"max_ngram\" is 1"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":17,\"heads\":1,\"pad\":0}", "must be in 2..16"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2.0,\"heads\":1,\"pad\":0}",
	 "\"max_ngram\" must be an integer"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":0,\"pad\":0}", "\"heads\" is 0"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"multipliers\":[1,1],\"moduli\":[[2]]}",
	 "missing field \"pad\""},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"moduli\":[[2]]}",
	 "missing field \"multipliers\""},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":3,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2],[3]]}", "\"multipliers\" must be a list of 3"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,\"a\"],"
	 "\"moduli\":[[2]]}", "\"multipliers\"[1] must be an integer"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1]}",
	 "missing field \"moduli\""},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":3,\"heads\":1,\"pad\":0,\"multipliers\":[1,1,1],"
	 "\"moduli\":[[2]]}", "must be a list of 2 lists"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":3,\"heads\":2,\"pad\":0,\"multipliers\":[1,1,1],"
	 "\"moduli\":[[2,3],[5]]}", "\"moduli\"[1] (order 3) must be a list of 2 integers"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":2,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2,0]]}", "\"moduli\"[0][1] must be a positive integer"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[-7]]}", "must be a positive integer"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":2,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[9223372036854775807,1]]}", "sum to more than"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2]],\"seed\":0}", "unknown field \"seed\""},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"pad\":1,"
	 "\"multipliers\":[1,1],\"moduli\":[[2]]}", "duplicate"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2]],\"vocab_map\":[]}", "\"vocab_map\" must be a non-empty list"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2]],\"vocab_map\":[1,true]}", "\"vocab_map\"[1] must be an integer"},
	{"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"multipliers\":[1,1],"
	 "\"moduli\":[[2]],\"vocab_map\":\"no-such-map.npy\"}", "no-such-map.npy: No such file"},
	{"{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"rows\":[[2]]}",
	 "missing field \"seed\""},
	{"{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"seed\":0}",
	 "missing field \"rows\""},
	{"{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":1,\"pad\":0,\"seed\":0,\"rows\":[[2]],"
	 "\"multipliers\":[1,1]}", "unknown field \"multipliers\""},
};

START_TEST(test_parse_errors)
{
	const struct bad_spec *b = &bad_specs[_i];
	char err[256];
	eg_hash *h = (eg_hash *)1;
	int rc;

	memset(err, 'x', sizeof(err));
	rc = eg_hash_parse(b->json, egt_tmpdir(), &h, err, sizeof(err));
	ck_assert_msg(rc == EG_EHASH, "spec %s: rc %d", b->json, rc);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(err, b->why) != NULL, "spec %s: message \"%s\" lacks \"%s\"",
	              b->json, err, b->why);
	ck_assert_msg(strncmp(err, "hash spec: ", 11) == 0 && strchr(err, '\n') == NULL,
	              "message \"%s\" is not one line starting \"hash spec: \"", err);
}
END_TEST

START_TEST(test_parse_error_small_buffers)
{
	char err[8];
	eg_hash *h;

	ck_assert_int_eq(eg_hash_parse("{", NULL, &h, err, sizeof(err)), EG_EHASH);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(eg_hash_parse("{", NULL, &h, NULL, 0), EG_EHASH);
	ck_assert_int_eq(eg_hash_parse(NULL, NULL, &h, NULL, 0), EG_EHASH);
}
END_TEST

/* A .npy file dir/name, written byte by byte (independent of numpy). */
static void write_npy(const char *dir, const char *name, const char *descr,
                      const char *shape, const void *data, size_t bytes)
{
	char path[512];
	char hdr[128];
	int hl = snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
	                  descr, shape);
	size_t total = 10 + (size_t)hl + 1;
	size_t padn = (64 - total % 64) % 64;
	unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	pre[8] = (unsigned char)((hl + 1 + padn) & 0xff);
	pre[9] = (unsigned char)((hl + 1 + padn) >> 8);
	fwrite(pre, 1, 10, f);
	fwrite(hdr, 1, (size_t)hl, f);
	for (size_t i = 0; i < padn; i++)
		fputc(' ', f);
	fputc('\n', f);
	fwrite(data, 1, bytes, f);
	ck_assert_int_eq(fclose(f), 0);
}

static const char SMALL_ENGRAM[] =
	"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":3,\"pad\":1,\"multipliers\":[3,-5],"
	"\"moduli\":[[7,11,13]],\"vocab_map\":%s}";

START_TEST(test_npy_maps)
{
	int32_t m4[5] = {4, 3, 2, 1, 0};
	int64_t m8[5] = {4, 3, 2, 1, 0};
	int64_t tokens[3] = {0, 4, -9};
	uint32_t len = 3;
	uint64_t slots[9];
	/* golden: engram_ref.py, map [4,3,2,1,0] */
	const uint64_t want[9] = {5, 9, 22, 1, 9, 24, 1, 13, 30};
	char json[512], err[256];
	const char *names[] = {"\"m4.npy\"", "\"m8.npy\"", "[4,3,2,1,0]"};
	const char *dir = egt_tmpdir(); /* a fresh one each call */
	eg_hash *h;

	write_npy(dir, "m4.npy", "<i4", "(5,)", m4, sizeof(m4));
	write_npy(dir, "m8.npy", "<i8", "(5,)", m8, sizeof(m8));
	for (size_t i = 0; i < 3; i++) {
		snprintf(json, sizeof(json), SMALL_ENGRAM, names[i]);
		h = parse_ok(json, dir);
		ck_assert_int_eq(eg_hash_slots(h, tokens, &len, NULL, 1, slots, NULL), 0);
		for (size_t j = 0; j < 9; j++)
			ck_assert_uint_eq(slots[j], want[j]);
		eg_hash_free(h);
	}

	/* refused files */
	write_npy(dir, "f4.npy", "<f4", "(5,)", m4, sizeof(m4));
	write_npy(dir, "be.npy", ">i8", "(5,)", m8, sizeof(m8));
	write_npy(dir, "2d.npy", "<i4", "(5, 1)", m4, sizeof(m4));
	write_npy(dir, "short.npy", "<i8", "(6,)", m8, sizeof(m8));
	const char *bad[][2] = {
		{"\"f4.npy\"", "int64 or int32"}, {"\"be.npy\"", "big-endian"},
		{"\"2d.npy\"", "must be a 1-D array"}, {"\"short.npy\"", "shorter than its header"},
	};
	for (size_t i = 0; i < 4; i++) {
		snprintf(json, sizeof(json), SMALL_ENGRAM, bad[i][0]);
		ck_assert_int_eq(eg_hash_parse(json, dir, &h, err, sizeof(err)), EG_EHASH);
		ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
	}
}
END_TEST

/* ---- accessors and canonical JSON ------------------------------------------ */

/* deepseek-ai/Engram demo, layer 1: vocab 129280 compressed ids, seed 0,
 * engram_vocab_size [646400, 646400], 8 heads, pad 2 (client spec.py) */
static const char LAYER1[] =
	"{\"kind\": \"engram-v1\", \"max_ngram\": 3, \"heads\": 8, \"pad\": 2, "
	"\"multipliers\": [58737837727525, 3709723095905, 27562777300965], "
	"\"moduli\": [[646403, 646411, 646421, 646423, 646433, 646453, 646519, 646523], "
	"[646537, 646543, 646549, 646571, 646573, 646577, 646609, 646619]]}";

START_TEST(test_accessors_and_json)
{
	eg_hash *h = parse_ok(LAYER1, NULL), *h2;
	const char *dir = egt_tmpdir();
	char *j1, *j2;

	ck_assert_str_eq(eg_hash_kind(h), "engram-v1");
	ck_assert_uint_eq(eg_hash_rows_per_token(h), 16);
	ck_assert_uint_eq(eg_hash_table_slots(h), 10344164);
	j1 = eg_hash_to_json(h);
	ck_assert_ptr_nonnull(j1);
	ck_assert_str_eq(j1,
		"{\"kind\":\"engram-v1\",\"max_ngram\":3,\"heads\":8,\"pad\":2,"
		"\"multipliers\":[58737837727525,3709723095905,27562777300965],"
		"\"moduli\":[[646403,646411,646421,646423,646433,646453,646519,646523],"
		"[646537,646543,646549,646571,646573,646577,646609,646619]]}");
	h2 = parse_ok(j1, NULL);
	j2 = eg_hash_to_json(h2);
	ck_assert_str_eq(j1, j2);
	free(j1);
	free(j2);
	eg_hash_free(h);
	eg_hash_free(h2);

	/* a file map becomes inline; xxh3 with a negative seed round-trips */
	int64_t m8[3] = {2, 0, 1};
	write_npy(dir, "rt.npy", "<i8", "(3,)", m8, sizeof(m8));
	h = parse_ok("{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":2,\"pad\":-1,\"seed\":-5,"
	             "\"rows\":[[3,4]],\"vocab_map\":\"rt.npy\"}", dir);
	ck_assert_str_eq(eg_hash_kind(h), "xxh3");
	ck_assert_uint_eq(eg_hash_table_slots(h), 7);
	j1 = eg_hash_to_json(h);
	ck_assert_str_eq(j1, "{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":2,\"pad\":-1,"
	                     "\"seed\":-5,\"rows\":[[3,4]],\"vocab_map\":[2,0,1]}");
	free(j1);
	eg_hash_free(h);
	eg_hash_free(NULL);
}
END_TEST

/* ---- golden vectors (computed with tests/python/engram_ref.py) ------------- */

START_TEST(test_golden_layer1)
{
	eg_hash *h = parse_ok(LAYER1, NULL);
	int64_t tokens[5] = {5, 1000, 129279, 7, 7};
	uint32_t lens[2] = {3, 2}, ctx[2] = {1, 0};
	uint64_t out[5 * 16];
	static const uint64_t want[5][16] = {
		{47058, 1129132, 1639838, 2276146, 2957144, 3451974, 3939817, 5127994,
		 5311489, 6142139, 7033311, 7154868, 7970388, 8975031, 9574770, 9832227},
		{512908, 722814, 1408633, 2464049, 2635477, 3302783, 4059923, 5029577,
		 5247726, 5831228, 6827905, 7547285, 7828694, 8528763, 9069441, 10097049},
		{602715, 795102, 1882752, 2092003, 3022613, 3765638, 4235622, 4707053,
		 5365502, 6159614, 6802104, 7128278, 7773811, 8736754, 9158489, 9871013},
		{7531, 1092545, 1655076, 2308169, 3105192, 3346119, 4061565, 4848629,
		 5477665, 6251297, 7085811, 7649273, 7799856, 8767887, 9080490, 9896936},
		{364852, 895310, 1403057, 2561266, 2646424, 3376280, 4225075, 4694329,
		 5701735, 5959007, 6926518, 7570715, 8200751, 8835482, 9113049, 9773324},
	};

	ck_assert_int_eq(eg_hash_count_out(lens, NULL, 2), 5);
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, NULL, 2, out, NULL), 0);
	for (size_t t = 0; t < 5; t++)
		for (size_t j = 0; j < 16; j++)
			ck_assert_msg(out[t * 16 + j] == want[t][j], "token %zu row %zu: %" PRIu64
			              " != %" PRIu64, t, j, out[t * 16 + j], want[t][j]);
	/* decode context: first token of sequence 0 is history only */
	ck_assert_int_eq(eg_hash_count_out(lens, ctx, 2), 4);
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 2, out, NULL), 0);
	for (size_t t = 1; t < 5; t++)
		for (size_t j = 0; j < 16; j++)
			ck_assert_uint_eq(out[(t - 1) * 16 + j], want[t][j]);
	eg_hash_free(h);
}
END_TEST

START_TEST(test_golden_xxh3)
{
	eg_hash *h = parse_ok("{\"kind\":\"xxh3\",\"max_ngram\":3,\"heads\":2,\"pad\":0,\"seed\":0,"
	                      "\"rows\":[[1000,1003],[999,65536]]}", NULL);
	int64_t tokens[4] = {1, 2, 3, -1};
	uint32_t len = 4, ctx = 1;
	uint64_t out[3 * 4];
	static const uint64_t want[3 * 4] = {31, 1917, 2230, 44268, 288, 1538, 2558, 10066,
	                                     669, 1536, 2860, 65124};

	ck_assert_int_eq(eg_hash_slots(h, tokens, &len, &ctx, 1, out, NULL), 0);
	for (size_t i = 0; i < 12; i++)
		ck_assert_uint_eq(out[i], want[i]);
	eg_hash_free(h);
}
END_TEST

/* ---- errors while hashing ----------------------------------------------------- */

START_TEST(test_token_errors)
{
	char json[512];
	eg_hash *h;
	int64_t tokens[6] = {0, 4, -9, 1, 5, 2};
	uint32_t lens[2] = {3, 3}, ctx[2] = {0, 2};
	uint64_t out[6 * 3];
	size_t bad = 99;

	snprintf(json, sizeof(json), SMALL_ENGRAM, "[4,3,2,1,0]");
	h = parse_ok(json, NULL);
	/* 5 is past the 5-entry map, even as history only */
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 2, out, &bad), EG_ETOKEN);
	ck_assert_uint_eq(bad, 4);
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 2, out, NULL), EG_ETOKEN);
	tokens[4] = INT64_MAX;
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, NULL, 2, out, &bad), EG_ETOKEN);
	ck_assert_uint_eq(bad, 4);
	/* negative ids are passed through, as the published module does */
	tokens[4] = INT64_MIN;
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, NULL, 2, out, &bad), 0);
	eg_hash_free(h);
}
END_TEST

START_TEST(test_context_errors)
{
	eg_hash *h = parse_ok(LAYER1, NULL);
	int64_t tokens[4] = {1, 2, 3, 4};
	uint32_t lens[2] = {2, 2}, ctx[2] = {2, 3};
	uint64_t out[4 * 16];

	ck_assert_int_eq(eg_hash_count_out(lens, ctx, 2), EG_EINVAL);
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 2, out, NULL), EG_EINVAL);
	ctx[1] = 2; /* all context: nothing returned, nothing written */
	out[0] = 12345;
	ck_assert_int_eq(eg_hash_count_out(lens, ctx, 2), 0);
	ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 2, out, NULL), 0);
	ck_assert_uint_eq(out[0], 12345);
	ck_assert_int_eq(eg_hash_count_out(NULL, NULL, 0), 0);
	ck_assert_int_eq(eg_hash_slots(h, NULL, NULL, NULL, 0, out, NULL), 0);
	eg_hash_free(h);
}
END_TEST

/* ---- the modulus: floor semantics for every int64 and modulus ------------ */

static uint64_t rnd64(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t floor_mod(int64_t x, uint64_t d)
{
	int64_t r = x % (int64_t)d;

	return (uint64_t)(r < 0 ? r + (int64_t)d : r);
}

START_TEST(test_modulus)
{
	/* spec: max_ngram 2, one head, multipliers [1, 0]: slot = x0 mod d */
	static const int64_t edge_x[] = {0, 1, -1, 2, -2, INT64_MAX, INT64_MIN, INT64_MIN + 1,
	                                 INT64_MAX - 1, 1LL << 32, -(1LL << 32), 646403, -646403};
	uint64_t ds[64] = {1, 2, 3, 7, 8, 646403, 1ULL << 31, (1ULL << 32) + 15,
	                   (1ULL << 62) + 1, INT64_MAX, INT64_MAX - 1, 1ULL << 62};
	uint64_t seed = 42;
	size_t nd = 12;
	int64_t x[256];
	uint64_t out[256];
	uint32_t len = 256;
	char json[256];

	while (nd < 64) {
		unsigned bits = 1 + (unsigned)(rnd64(&seed) % 63);
		uint64_t d = rnd64(&seed) >> (64 - bits);

		if (d > 0)
			ds[nd++] = d;
	}
	for (size_t i = 0; i < nd; i++) {
		snprintf(json, sizeof(json), "{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,"
		         "\"pad\":0,\"multipliers\":[1,0],\"moduli\":[[%" PRIu64 "]]}", ds[i]);
		eg_hash *h = parse_ok(json, NULL);

		for (int round = 0; round < 20; round++) {
			for (size_t k = 0; k < 256; k++) {
				uint64_t r = rnd64(&seed);

				x[k] = k < sizeof(edge_x) / sizeof(edge_x[0]) && round == 0 ? edge_x[k] :
				       (int64_t)(r >> (r & 63));
				if (round & 1)
					x[k] = -x[k] - (round & 2);
			}
			ck_assert_int_eq(eg_hash_slots(h, x, &len, NULL, 1, out, NULL), 0);
			for (size_t k = 0; k < 256; k++)
				ck_assert_msg(out[k] == floor_mod(x[k], ds[i]),
				              "%" PRId64 " mod %" PRIu64 ": got %" PRIu64, x[k], ds[i],
				              out[k]);
		}
		eg_hash_free(h);
	}
}
END_TEST

/* ---- sequences, pads and context, as properties ----------------------------- */

START_TEST(test_sequences_independent)
{
	const char *specs[] = {LAYER1,
		"{\"kind\":\"xxh3\",\"max_ngram\":4,\"heads\":3,\"pad\":7,\"seed\":9,"
		"\"rows\":[[5,6,7],[11,12,13],[1000,1001,1002]]}"};

	for (size_t s = 0; s < 2; s++) {
		eg_hash *h = parse_ok(specs[s], NULL);
		uint32_t rpt = eg_hash_rows_per_token(h);
		int64_t tokens[30];
		uint32_t lens[3] = {10, 0, 20}, ctx[3] = {4, 0, 19};
		uint64_t all[30 * 16], part[30 * 16], dec[30 * 16];
		uint64_t seed = s;

		for (size_t i = 0; i < 30; i++)
			tokens[i] = (int64_t)(rnd64(&seed) % 50);
		ck_assert_int_eq(eg_hash_slots(h, tokens, lens, NULL, 3, all, NULL), 0);
		/* each sequence alone gives the same rows: pads restart at each */
		ck_assert_int_eq(eg_hash_slots(h, tokens, &lens[0], NULL, 1, part, NULL), 0);
		ck_assert_int_eq(memcmp(part, all, 10 * rpt * 8), 0);
		ck_assert_int_eq(eg_hash_slots(h, tokens + 10, &lens[2], NULL, 1, part, NULL), 0);
		ck_assert_int_eq(memcmp(part, all + 10 * rpt, 20 * rpt * 8), 0);
		/* a decode step returns the tail of a full prefill */
		ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, 3, dec, NULL), 0);
		ck_assert_int_eq(memcmp(dec, all + 4 * rpt, 6 * rpt * 8), 0);
		ck_assert_int_eq(memcmp(dec + 6 * rpt, all + 29 * rpt, rpt * 8), 0);
		/* every slot is inside the table */
		for (size_t i = 0; i < 30 * rpt; i++)
			ck_assert_uint_lt(all[i], eg_hash_table_slots(h));
		eg_hash_free(h);
	}
}
END_TEST

/* ---- against the NumPy reference, on random cases it generates ------------- */

static void next_word(FILE *f, const char *want)
{
	char word[16];

	ck_assert_msg(fscanf(f, "%15s", word) == 1 && strcmp(word, want) == 0,
	              "reference output: expected \"%s\"", want);
}

static uint64_t next_u64(FILE *f)
{
	unsigned long long v;

	ck_assert_int_eq(fscanf(f, "%llu", &v), 1);
	return v;
}

static int64_t next_i64(FILE *f)
{
	long long v;

	ck_assert_int_eq(fscanf(f, "%lld", &v), 1);
	return v;
}

static void compare_with_reference(int gen_seed, int cases)
{
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	const char *script = "tests/python/engram_ref.py";
	const char *dir = egt_tmpdir();
	char cmd[1024];
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int done = 0;

	ck_assert_msg(access(script, R_OK) == 0, "%s not found (run from the repository root)",
	              script);
	snprintf(cmd, sizeof(cmd), "'%s' %s --gen %d --cases %d --dir '%s'", py, script,
	         gen_seed, cases, dir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (getdelim(&line, &cap, ' ', f) > 0) {
		ck_assert_str_eq(line, "spec ");
		ck_assert_int_ge(getline(&line, &cap, f), 2);
		eg_hash *h = parse_ok(line, dir);
		uint32_t rpt = eg_hash_rows_per_token(h);

		next_word(f, "seqs");
		size_t nseq = (size_t)next_u64(f);
		uint32_t *lens = calloc(nseq, sizeof(*lens)), *ctx = calloc(nseq, sizeof(*ctx));

		for (size_t i = 0; i < nseq; i++) {
			lens[i] = (uint32_t)next_u64(f);
			ctx[i] = (uint32_t)next_u64(f);
		}
		next_word(f, "tokens");
		size_t nt = (size_t)next_u64(f);
		int64_t *tokens = calloc(nt + 1, sizeof(*tokens));

		for (size_t i = 0; i < nt; i++)
			tokens[i] = next_i64(f);
		next_word(f, "slots");
		size_t ns = (size_t)next_u64(f);
		uint64_t *want = calloc(ns + 1, sizeof(*want)), *got = calloc(ns + 1, sizeof(*got));

		for (size_t i = 0; i < ns; i++)
			want[i] = next_u64(f);
		int c;

		while ((c = fgetc(f)) == ' ')
			;
		ck_assert_int_eq(c, '\n');
		ck_assert_int_eq(eg_hash_count_out(lens, ctx, nseq) * (int64_t)rpt, (int64_t)ns);
		ck_assert_int_eq(eg_hash_slots(h, tokens, lens, ctx, nseq, got, NULL), 0);
		for (size_t i = 0; i < ns; i++)
			ck_assert_msg(got[i] == want[i],
			              "case %d (gen %d): slot %zu (token %zu row %zu): C %" PRIu64
			              ", NumPy %" PRIu64 "\n  spec: %.300s", done, gen_seed, i, i / rpt,
			              i % rpt, got[i], want[i], line);
		free(lens);
		free(ctx);
		free(tokens);
		free(want);
		free(got);
		eg_hash_free(h);
		done++;
	}
	free(line);
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_int_eq(done, cases);
}

START_TEST(test_reference_random)
{
	compare_with_reference(1000 + _i, 150);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("hash");
	TCase *ref = tcase_create("reference");

	tcase_add_loop_test(tc, test_parse_errors, 0,
	                    (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
	tcase_add_test(tc, test_parse_error_small_buffers);
	tcase_add_test(tc, test_npy_maps);
	tcase_add_test(tc, test_accessors_and_json);
	tcase_add_test(tc, test_golden_layer1);
	tcase_add_test(tc, test_golden_xxh3);
	tcase_add_test(tc, test_token_errors);
	tcase_add_test(tc, test_context_errors);
	tcase_add_test(tc, test_modulus);
	tcase_add_test(tc, test_sequences_independent);
	/* starts Python: allow for a loaded machine and sanitizers */
	tcase_set_timeout(ref, 120);
	tcase_add_loop_test(ref, test_reference_random, 0, 4);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, ref);
	return egt_run_suite(s);
}
