/* query_rows.c - `engram lookup` and `engram tokens`: rows from the daemon,
 * written as `engram table export` writes rows read from disk. */
#include "query.h"
#include "eg_dtype.h"
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lookups are split into requests of this many slots, a few in flight, so a
 * million-slot query stays under the daemon's per-request limits. */
#define BATCH_SLOTS 65536
#define WINDOW 4

/* f32 -> <f4, f16 -> <f2, bf16 -> <u2 (raw bits), e4m3 and u8 -> |u1 of
 * row_bytes columns, as table export does. */
static const char *descr_of(const eg_client_table *t, uint64_t *cols)
{
	*cols = t->dim;
	if (strcmp(t->dtype, "f32") == 0)
		return "<f4";
	if (strcmp(t->dtype, "f16") == 0)
		return "<f2";
	if (strcmp(t->dtype, "bf16") == 0)
		return "<u2";
	*cols = t->row_bytes;
	return "|u1";
}

/* Writes a temporary file renamed over path (a non-regular path such as a
 * pipe is written in place), so a failed write leaves no half file. */
int eg_query_save_npy(const struct eg_query_opts *o, const char *path, const eg_client_table *t,
                    uint64_t nrows, const void *rows)
{
	struct stat st;
	char tmp[4096];
	uint64_t cols;
	const char *descr = descr_of(t, &cols);
	int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode), e;
	FILE *f;

	if (in_place)
		snprintf(tmp, sizeof tmp, "%s", path);
	else if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
		goto toolong;
	f = fopen(tmp, "wb");
	if (!f) {
		eg_cli_error("%s: %s: %s", o->cmd, path, strerror(errno));
		return EG_CLI_FAIL;
	}
	if (eg_npy_write_header(f, descr, 2, nrows, cols) < 0 ||
	    (nrows && fwrite(rows, t->row_bytes, nrows, f) != nrows) || fflush(f) != 0 ||
	    (!in_place && fsync(fileno(f)) != 0)) {
		e = errno;
		fclose(f);
		if (!in_place)
			unlink(tmp);
		eg_cli_error("%s: writing %s: %s", o->cmd, path, strerror(e));
		return EG_CLI_FAIL;
	}
	if (fclose(f) != 0 || (!in_place && rename(tmp, path) != 0)) {
		e = errno;
		if (!in_place)
			unlink(tmp);
		eg_cli_error("%s: writing %s: %s", o->cmd, path, strerror(e));
		return EG_CLI_FAIL;
	}
	return EG_CLI_OK;
toolong:
	eg_cli_error("%s: %s: path too long", o->cmd, path);
	return EG_CLI_FAIL;
}

/* Prints one row's values after the caller's label, as table export does. */
void eg_query_print_row(const eg_client_table *t, eg_dtype dt, const unsigned char *row,
                      float *vals)
{
	if (dt == EG_DTYPE_U8 || !vals) {
		for (uint32_t j = 0; j < t->row_bytes; j++)
			printf(" %u", row[j]);
	} else {
		eg_rows_to_f32(dt, t->dim, t->scale_block, row, 1, vals);
		for (uint32_t j = 0; j < t->dim; j++)
			printf(" %.9g", (double)vals[j]);
	}
	putchar('\n');
}

float *eg_query_values_buf(const eg_client_table *t, eg_dtype *dt)
{
	if (eg_dtype_parse(t->dtype, dt) != 0)
		*dt = EG_DTYPE_U8; /* unknown to this build: show the bytes */
	if (*dt == EG_DTYPE_U8)
		return NULL;
	return malloc((size_t)(t->dim ? t->dim : 1) * sizeof(float));
}

static int fetch_rows(const struct eg_query_opts *o, eg_client *c, const eg_client_table *t,
                      const uint64_t *slots, size_t n, unsigned char *rows)
{
	uint64_t tickets[WINDOW];
	size_t nb = (n + BATCH_SLOTS - 1) / BATCH_SLOTS, sent = 0, done = 0;
	eg_client_rows r;
	int err = 0;

	while (done < nb) {
		if (sent < nb && sent - done < WINDOW) {
			size_t first = sent * BATCH_SLOTS, k = n - first;

			if (k > BATCH_SLOTS)
				k = BATCH_SLOTS;
			err = eg_client_send_lookup(c, t->name, slots + first, k,
			                            rows + first * t->row_bytes,
			                            k * t->row_bytes, &tickets[sent % WINDOW]);
			if (err < 0)
				return eg_query_fail(o, c, err);
			sent++;
			continue;
		}
		err = eg_client_wait(c, tickets[done % WINDOW], &r);
		if (err < 0)
			return eg_query_fail(o, c, err);
		done++;
	}
	return EG_CLI_OK;
}

int eg_query_lookup(int argc, char **argv)
{
	static const int allowed[] = { O_TABLE, O_SLOTS, O_SLOTS_FILE, O_OUT, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	const eg_client_table *t;
	size_t nall = 0, n = 0;
	uint64_t *slots = NULL;
	unsigned char *rows = NULL;
	float *vals = NULL;
	eg_dtype dt;
	int rc;

	rc = eg_query_parse(argc, argv, &o, allowed);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	if (!o.table)
		return eg_cli_usage_error(o.cmd, "--table NAME is required");
	if (!o.slots == !o.slots_file)
		return eg_cli_usage_error(o.cmd, "give one of --slots LIST or --slots-file SLOTS.npy");
	rc = eg_cli_load_slots(o.cmd, o.slots, o.slots_file, &slots, &n);
	if (rc != EG_CLI_OK)
		return rc;
	rc = eg_query_connect(&o, &c);
	if (rc != EG_CLI_OK)
		goto out;
	rc = eg_query_find_table(&o, c, o.table, &all, &nall, &t);
	if (rc != EG_CLI_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= t->slots) {
			eg_cli_error("%s: slot %llu (index %zu) is out of range: table '%s' has %llu slots",
			             o.cmd, (unsigned long long)slots[i], i, t->name,
			             (unsigned long long)t->slots);
			rc = EG_CLI_FAIL;
			goto out;
		}
	}
	if (!t->row_bytes || n > SIZE_MAX / t->row_bytes || !(rows = malloc(n * t->row_bytes))) {
		eg_cli_error("%s: out of memory for %zu rows", o.cmd, n);
		rc = EG_CLI_FAIL;
		goto out;
	}
	rc = fetch_rows(&o, c, t, slots, n, rows);
	if (rc != EG_CLI_OK)
		goto out;
	if (o.out) {
		rc = eg_query_save_npy(&o, o.out, t, n, rows);
		goto out;
	}
	vals = eg_query_values_buf(t, &dt);
	for (size_t i = 0; i < n; i++) {
		printf("%llu:", (unsigned long long)slots[i]);
		eg_query_print_row(t, dt, rows + i * t->row_bytes, vals);
	}
out:
	free(vals);
	free(rows);
	free(slots);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}

/* Parses "a,b,c" into n items with parse(item) -> 0/-1; *out malloc'd. */
static int split_list(const char *s, size_t item, int (*parse)(const char *, void *),
                      void **out, size_t *n)
{
	char *copy = strdup(s), *save = NULL, *tok;
	unsigned char *v = NULL, *nv;
	size_t k = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		nv = realloc(v, (k + 1) * item);
		if (!nv)
			goto fail;
		v = nv;
		if (parse(tok, v + k * item) < 0)
			goto fail;
		k++;
	}
	free(copy);
	if (k == 0) {
		free(v);
		return -1;
	}
	*out = v;
	*n = k;
	return 0;
fail:
	free(copy);
	free(v);
	return -1;
}

static int parse_i64(const char *s, void *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*(int64_t *)out = v;
	return 0;
}

static int parse_u32(const char *s, void *out)
{
	return eg_cli_parse_u32(s, out);
}

/* Names are copied: the list they were cut from is freed by split_list. */
static int parse_name(const char *s, void *out)
{
	*(char **)out = *s ? strdup(s) : NULL;
	return *(char **)out ? 0 : -1;
}

/* Output of one table's block: PREFIX.TABLE.npy or printed rows. */
static int emit_block(const struct eg_query_opts *o, const eg_client_table *t, size_t ntok,
                      const unsigned char *data)
{
	uint64_t nrows = (uint64_t)ntok * t->rows_per_token;
	float *vals;
	eg_dtype dt;
	char path[4096];

	if (o->out) {
		if ((size_t)snprintf(path, sizeof path, "%s.%s.npy", o->out, t->name) >= sizeof path) {
			eg_cli_error("%s: --out prefix too long", o->cmd);
			return EG_CLI_FAIL;
		}
		return eg_query_save_npy(o, path, t, nrows, data);
	}
	vals = eg_query_values_buf(t, &dt);
	for (uint64_t i = 0; i < nrows; i++) {
		printf("%s[%llu,%llu]:", t->name, (unsigned long long)(i / t->rows_per_token),
		       (unsigned long long)(i % t->rows_per_token));
		eg_query_print_row(t, dt, data + i * t->row_bytes, vals);
	}
	free(vals);
	return EG_CLI_OK;
}

int eg_query_tokens(int argc, char **argv)
{
	static const int allowed[] = { O_TABLES, O_TOKENS, O_SEQ_LENS, O_CONTEXT, O_OUT, 0 };
	struct eg_query_opts o;
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	const eg_client_table **tabs = NULL;
	const char **names = NULL;
	int64_t *tokens = NULL;
	uint32_t *lens = NULL, *ctx = NULL;
	size_t ntab = 0, ntokens = 0, nlens = 0, nctx = 0, nall = 0, ntok_out = 0, i;
	void **outs = NULL;
	size_t *sizes = NULL;
	eg_client_rows *blocks = NULL;
	uint64_t ticket, sum = 0;
	int rc, err;

	rc = eg_query_parse(argc, argv, &o, allowed);
	if (rc != EG_CLI_OK)
		return rc < 0 ? EG_CLI_OK : rc;
	if (!o.tables || split_list(o.tables, sizeof(char *), parse_name, (void **)&names, &ntab) < 0)
		return eg_cli_usage_error(o.cmd, "--tables a,b is required (table names)");
	if (!o.tokens || split_list(o.tokens, sizeof(int64_t), parse_i64, (void **)&tokens, &ntokens) < 0) {
		rc = eg_cli_usage_error(o.cmd, "--tokens 1,2,3 is required (integer token ids)");
		goto out;
	}
	if (o.seq_lens && split_list(o.seq_lens, 4, parse_u32, (void **)&lens, &nlens) < 0) {
		rc = eg_cli_usage_error(o.cmd, "bad --seq-lens '%s'", o.seq_lens);
		goto out;
	}
	if (o.context && split_list(o.context, 4, parse_u32, (void **)&ctx, &nctx) < 0) {
		rc = eg_cli_usage_error(o.cmd, "bad --context '%s'", o.context);
		goto out;
	}
	if (!lens) {
		if (ntokens > UINT32_MAX) {
			rc = eg_cli_usage_error(o.cmd, "too many tokens for one sequence");
			goto out;
		}
		lens = malloc(sizeof(*lens));
		if (!lens)
			goto nomem;
		lens[0] = (uint32_t)ntokens;
		nlens = 1;
	}
	if (ctx && nctx != nlens) {
		rc = eg_cli_usage_error(o.cmd, "--context needs one value per sequence (%zu), got %zu",
		                 nlens, nctx);
		goto out;
	}
	for (i = 0; i < nlens; i++) {
		sum += lens[i];
		if (ctx && ctx[i] > lens[i]) {
			rc = eg_cli_usage_error(o.cmd, "context %u of sequence %zu exceeds its length %u",
			                 ctx[i], i, lens[i]);
			goto out;
		}
		ntok_out += lens[i] - (ctx ? ctx[i] : 0);
	}
	if (sum != ntokens) {
		rc = eg_cli_usage_error(o.cmd, "--seq-lens add up to %llu, but %zu tokens were given",
		                 (unsigned long long)sum, ntokens);
		goto out;
	}
	rc = eg_query_connect(&o, &c);
	if (rc != EG_CLI_OK)
		goto out;
	tabs = calloc(ntab, sizeof(*tabs));
	outs = calloc(ntab, sizeof(*outs));
	sizes = calloc(ntab, sizeof(*sizes));
	blocks = calloc(ntab, sizeof(*blocks));
	if (!tabs || !outs || !sizes || !blocks)
		goto nomem;
	for (i = 0; i < ntab; i++) {
		if (i == 0) {
			rc = eg_query_find_table(&o, c, names[0], &all, &nall, &tabs[0]);
			if (rc != EG_CLI_OK)
				goto out;
		} else {
			size_t j;

			for (j = 0; j < nall && strcmp(all[j].name, names[i]) != 0; j++)
				;
			if (j == nall) {
				eg_cli_error("%s: the daemon at %s serves no table '%s'", o.cmd,
				             o.connect, names[i]);
				rc = EG_CLI_FAIL;
				goto out;
			}
			tabs[i] = &all[j];
		}
		if (!tabs[i]->rows_per_token) {
			eg_cli_error("%s: table '%s' has no hash spec: look it up by slots",
			             o.cmd, names[i]);
			rc = EG_CLI_FAIL;
			goto out;
		}
		sizes[i] = ntok_out * tabs[i]->rows_per_token * (size_t)tabs[i]->row_bytes;
		outs[i] = malloc(sizes[i] ? sizes[i] : 1);
		if (!outs[i])
			goto nomem;
	}
	err = eg_client_send_tokens(c, names, ntab, tokens, ntokens, lens, ctx, nlens,
	                            outs, sizes, &ticket);
	if (err == 0)
		err = eg_client_wait_blocks(c, ticket, blocks, ntab);
	if (err < 0) {
		rc = eg_query_fail(&o, c, err);
		goto out;
	}
	for (i = 0; i < ntab && rc == EG_CLI_OK; i++)
		rc = emit_block(&o, tabs[i], ntok_out, outs[i]);
	goto out;
nomem:
	eg_cli_error("%s: out of memory", o.cmd);
	rc = EG_CLI_FAIL;
out:
	for (i = 0; outs && i < ntab; i++)
		free(outs[i]);
	free(outs);
	free(sizes);
	free(blocks);
	free(tabs);
	for (i = 0; names && i < ntab; i++)
		free((char *)names[i]);
	free(names);
	free(tokens);
	free(lens);
	free(ctx);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}

