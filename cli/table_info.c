/* table_info.c - `engram table info` and `engram table verify`. */
#include "table.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t chunk_count(const eg_meta *m)
{
	return (m->slots + m->chunk_slots - 1) / m->chunk_slots;
}

static int print_json(const char *path, const eg_meta *m, uint64_t disk,
                      const char *created, const char *kind, uint32_t rpt)
{
	json_t *o = json_object();
	json_t *spec = NULL;
	char *text;

	if (m->hash_spec)
		spec = json_loads(m->hash_spec, 0, NULL);
	json_object_set_new(o, "path", json_string(path));
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "format_version", json_integer(m->format_version));
	json_object_set_new(o, "slots", json_integer((json_int_t)m->slots));
	json_object_set_new(o, "dim", json_integer(m->dim));
	json_object_set_new(o, "dtype", json_string(eg_dtype_name(m->dtype)));
	json_object_set_new(o, "scale_block", json_integer(m->scale_block));
	json_object_set_new(o, "row_bytes", json_integer(m->row_bytes));
	json_object_set_new(o, "chunk_slots", json_integer((json_int_t)m->chunk_slots));
	json_object_set_new(o, "chunks", json_integer((json_int_t)chunk_count(m)));
	json_object_set_new(o, "generation", json_integer((json_int_t)m->generation));
	json_object_set_new(o, "bytes_on_disk", json_integer((json_int_t)disk));
	json_object_set_new(o, "created", json_string(created));
	json_object_set_new(o, "hash", kind ? json_string(kind) : json_null());
	json_object_set_new(o, "rows_per_token", json_integer(rpt));
	json_object_set_new(o, "hash_spec", spec ? spec : json_null());
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return cli_fail("out of memory");
	puts(text);
	free(text);
	return CLI_OK;
}

int cli_table_info(struct cli_args *a)
{
	const char *dir = a->pos[0], *kind = NULL;
	eg_table *t;
	eg_snapshot *s;
	const eg_meta *m;
	eg_hash *h = NULL;
	uint64_t disk = 0;
	uint32_t rpt = 0;
	char created[32], err[256];
	struct tm tm;
	time_t when;
	int rc = cli_open_table(dir, &t, &s);

	if (rc != CLI_OK)
		return rc;
	m = eg_snapshot_meta(s);
	if (m->hash_spec) {
		if (eg_hash_parse(m->hash_spec, NULL, &h, err, sizeof err) != 0) {
			rc = cli_fail("%s: the stored hash spec is invalid: %s", dir, err);
			goto out;
		}
		kind = eg_hash_kind(h);
		rpt = eg_hash_rows_per_token(h);
	}
	rc = eg_table_disk_bytes(t, &disk);
	if (rc != 0) {
		rc = cli_fail("%s: %s", dir, eg_strerror(rc));
		goto out;
	}
	when = (time_t)m->created;
	gmtime_r(&when, &tm);
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (a->json) {
		rc = print_json(eg_table_path(t), m, disk, created, kind, rpt);
		goto out;
	}
	printf("path: %s\n", eg_table_path(t));
	printf("name: %s\n", m->name);
	printf("format_version: %u\n", m->format_version);
	printf("slots: %llu\n", (unsigned long long)m->slots);
	printf("dim: %u\n", m->dim);
	printf("dtype: %s\n", eg_dtype_name(m->dtype));
	printf("scale_block: %u\n", m->scale_block);
	printf("row_bytes: %u\n", m->row_bytes);
	printf("chunk_slots: %llu\n", (unsigned long long)m->chunk_slots);
	printf("chunks: %llu\n", (unsigned long long)chunk_count(m));
	printf("generation: %llu\n", (unsigned long long)m->generation);
	printf("bytes_on_disk: %llu\n", (unsigned long long)disk);
	printf("created: %s\n", created);
	printf("hash: %s\n", kind ? kind : "none");
	printf("rows_per_token: %u\n", rpt);
	rc = CLI_OK;
out:
	eg_hash_free(h);
	eg_snapshot_close(s);
	eg_table_close(t);
	return rc;
}

struct bad {
	const char *dir;
	uint64_t count;
};

static void on_problem(void *arg, const char *problem)
{
	struct bad *b = arg;

	b->count++;
	cli_error("%s: %s", b->dir, problem);
}

/* Every page, chunk place and checksum, in a child process (a damaged
 * table must not take the command down); one line per problem. */
int cli_table_verify(struct cli_args *a)
{
	struct bad bad = { a->pos[0], 0 };
	eg_table *t;
	eg_snapshot *s;
	const eg_meta *m;
	int rc = eg_table_check_isolated(bad.dir, EG_CHECK_CHECKSUMS, NULL, on_problem, &bad);

	if (rc != 0)
		return bad.count ? CLI_FAIL : cli_fail("%s: %s", bad.dir, eg_strerror(rc));
	rc = cli_open_table(bad.dir, &t, &s);
	if (rc != CLI_OK)
		return rc;
	m = eg_snapshot_meta(s);
	printf("%s: ok, %llu chunks (%llu slots) match their checksums\n", bad.dir,
	       (unsigned long long)chunk_count(m), (unsigned long long)m->slots);
	eg_snapshot_close(s);
	eg_table_close(t);
	return CLI_OK;
}
