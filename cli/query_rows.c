/* query_rows.c - `engram lookup` and `engram tokens`: rows from the daemon,
 * written as `engram table export` writes rows read from disk. */
#include "query.h"
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Lookups are split into requests of this many slots, a few in flight, so a
 * million-slot query stays under the daemon's per-request limits. */
#define BATCH_SLOTS 65536
#define WINDOW 4

static void layout_of(const eg_client_table *t, struct cli_layout *l)
{
	if (eg_dtype_parse(t->dtype, &l->dtype) != 0)
		l->dtype = EG_DTYPE_U8; /* unknown to this build: show the bytes */
	l->dim = t->dim;
	l->scale_block = t->scale_block;
	l->row_bytes = t->row_bytes;
}

static int save(const struct cli_args *a, const char *path, const eg_client_table *t,
                uint64_t nrows, const void *rows)
{
	struct cli_layout l;
	char who[sizeof a->cmd + 2];

	layout_of(t, &l);
	snprintf(who, sizeof who, "%s: ", a->cmd);
	return cli_save_rows(who, path, &l, nrows, rows);
}

/* The rows are what was asked of t (libengram checks this too; the CLI
 * holds them to the info it sized its buffers by, whatever the connection
 * went through since). */
static int block_ok(const struct cli_args *a, const eg_client_table *t, const eg_client_rows *r,
                    uint64_t want)
{
	if (r->count == want && r->row_bytes == t->row_bytes)
		return 1;
	cli_error("%s: the daemon answered with %llu rows of %u bytes for %llu rows of %u "
	          "bytes of table '%s'", a->cmd, (unsigned long long)r->count, r->row_bytes,
	          (unsigned long long)want, t->row_bytes, t->name);
	return 0;
}

/* Slots in batch b of a lookup of n. */
static size_t batch_len(size_t n, size_t b)
{
	return n - b * BATCH_SLOTS < BATCH_SLOTS ? n - b * BATCH_SLOTS : BATCH_SLOTS;
}

static int fetch_rows(const struct cli_args *a, eg_client *c, const eg_client_table *t,
                      const uint64_t *slots, size_t n, unsigned char *rows)
{
	uint64_t tickets[WINDOW];
	size_t nb = (n + BATCH_SLOTS - 1) / BATCH_SLOTS, sent = 0, done = 0;
	eg_client_rows r;
	int err = 0;

	while (done < nb) {
		if (sent < nb && sent - done < WINDOW) {
			size_t first = sent * BATCH_SLOTS, k = batch_len(n, sent);

			err = eg_client_send_lookup(c, t->name, slots + first, k,
			                            rows + first * t->row_bytes,
			                            k * t->row_bytes, &tickets[sent % WINDOW]);
			if (err < 0)
				return cli_query_fail(a, c, err);
			sent++;
			continue;
		}
		err = eg_client_wait(c, tickets[done % WINDOW], &r);
		if (err < 0)
			return cli_query_fail(a, c, err);
		if (!block_ok(a, t, &r, batch_len(n, done)))
			return CLI_FAIL;
		done++;
	}
	return CLI_OK;
}

/* Fetches the rows of slots from t, then writes them out. */
static int lookup(const struct cli_args *a, eg_client *c, const eg_client_table *t,
                  const uint64_t *slots, size_t n)
{
	struct cli_layout l;
	unsigned char *rows;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= t->slots) {
			cli_error("%s: slot %llu (index %zu) is out of range: table '%s' has %llu slots",
			          a->cmd, (unsigned long long)slots[i], i, t->name,
			          (unsigned long long)t->slots);
			return CLI_FAIL;
		}
	}
	if (!t->row_bytes || n > SIZE_MAX / t->row_bytes || !(rows = malloc(n * t->row_bytes))) {
		cli_error("%s: out of memory for %zu rows", a->cmd, n);
		return CLI_FAIL;
	}
	rc = fetch_rows(a, c, t, slots, n, rows);
	layout_of(t, &l);
	if (rc == CLI_OK)
		rc = a->out ? save(a, a->out, t, n, rows) : cli_print_rows(&l, slots, n, rows);
	free(rows);
	return rc;
}

int cli_query_lookup(struct cli_args *a)
{
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	const eg_client_table *t;
	size_t nall = 0, n = 0;
	uint64_t *slots = NULL;
	int rc;

	if (!a->table)
		return cli_usage_error(a->cmd, "--table NAME is required");
	if (!a->slots_list == !a->slots_file)
		return cli_usage_error(a->cmd, "give one of --slots LIST or --slots-file SLOTS.npy");
	rc = cli_load_slots(a->cmd, a->slots_list, a->slots_file, &slots, &n);
	if (rc != CLI_OK)
		return rc;
	rc = cli_query_connect(a, &c);
	if (rc == CLI_OK)
		rc = cli_query_find_table(a, c, a->table, &all, &nall, &t);
	if (rc == CLI_OK)
		rc = lookup(a, c, t, slots, n);
	free(slots);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}

/* ---- tokens --------------------------------------------------------------- */

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
	return cli_parse_u32(s, out);
}

/* Names are copied: the list they were cut from is freed by split_list. */
static int parse_name(const char *s, void *out)
{
	*(char **)out = *s ? strdup(s) : NULL;
	return *(char **)out ? 0 : -1;
}

/* A tokens request as the command line gives it. */
struct tokens_req {
	const char **names;    /* tables */
	size_t ntab;
	int64_t *tokens;
	size_t ntokens;
	uint32_t *lens, *ctx;  /* per sequence; ctx NULL: no context */
	size_t nlens, nctx;
	size_t nout;           /* tokens that get rows: those past each context */
};

static void tokens_req_free(struct tokens_req *r)
{
	for (size_t i = 0; r->names && i < r->ntab; i++)
		free((char *)r->names[i]);
	free(r->names);
	free(r->tokens);
	free(r->lens);
	free(r->ctx);
}

/* Without --seq-lens the tokens are one sequence. */
static int one_sequence(const struct cli_args *a, struct tokens_req *r)
{
	if (r->ntokens > UINT32_MAX)
		return cli_usage_error(a->cmd, "too many tokens for one sequence");
	r->lens = malloc(sizeof(*r->lens));
	if (!r->lens) {
		cli_error("%s: out of memory", a->cmd);
		return CLI_FAIL;
	}
	r->lens[0] = (uint32_t)r->ntokens;
	r->nlens = 1;
	return CLI_OK;
}

/* The sequences must cover the tokens, each context within its sequence. */
static int check_sequences(const struct cli_args *a, struct tokens_req *r)
{
	uint64_t sum = 0;

	if (r->ctx && r->nctx != r->nlens)
		return cli_usage_error(a->cmd, "--context needs one value per sequence (%zu), got %zu",
		                       r->nlens, r->nctx);
	for (size_t i = 0; i < r->nlens; i++) {
		sum += r->lens[i];
		if (r->ctx && r->ctx[i] > r->lens[i])
			return cli_usage_error(a->cmd, "context %u of sequence %zu exceeds its length %u",
			                       r->ctx[i], i, r->lens[i]);
		r->nout += r->lens[i] - (r->ctx ? r->ctx[i] : 0);
	}
	if (sum != r->ntokens)
		return cli_usage_error(a->cmd, "--seq-lens add up to %llu, but %zu tokens were given",
		                       (unsigned long long)sum, r->ntokens);
	return CLI_OK;
}

static int parse_tokens_req(const struct cli_args *a, struct tokens_req *r)
{
	memset(r, 0, sizeof *r);
	if (!a->tables || split_list(a->tables, sizeof(char *), parse_name, (void **)&r->names,
	                             &r->ntab) < 0)
		return cli_usage_error(a->cmd, "--tables a,b is required (table names)");
	if (!a->tokens || split_list(a->tokens, sizeof(int64_t), parse_i64, (void **)&r->tokens,
	                             &r->ntokens) < 0)
		return cli_usage_error(a->cmd, "--tokens 1,2,3 is required (integer token ids)");
	if (a->seq_lens && split_list(a->seq_lens, 4, parse_u32, (void **)&r->lens, &r->nlens) < 0)
		return cli_usage_error(a->cmd, "bad --seq-lens '%s'", a->seq_lens);
	if (a->context && split_list(a->context, 4, parse_u32, (void **)&r->ctx, &r->nctx) < 0)
		return cli_usage_error(a->cmd, "bad --context '%s'", a->context);
	if (!r->lens) {
		int rc = one_sequence(a, r);

		if (rc != CLI_OK)
			return rc;
	}
	return check_sequences(a, r);
}

/* Where the rows of each table go. */
struct tokens_out {
	const eg_client_table **tabs;
	void **bufs;
	size_t *sizes;
	eg_client_rows *blocks;
};

static void tokens_out_free(struct tokens_out *o, size_t ntab)
{
	for (size_t i = 0; o->bufs && i < ntab; i++)
		free(o->bufs[i]);
	free(o->bufs);
	free(o->sizes);
	free(o->blocks);
	free(o->tabs);
}

/* Finds each table (it must have a hash spec) and a buffer for its rows. */
static int tokens_out_alloc(const struct cli_args *a, eg_client *c, const struct tokens_req *r,
                            eg_client_table **all, size_t *nall, struct tokens_out *o)
{
	int rc = cli_query_tables(a, c, all, nall);

	if (rc != CLI_OK)
		return rc;
	o->tabs = calloc(r->ntab, sizeof(*o->tabs));
	o->bufs = calloc(r->ntab, sizeof(*o->bufs));
	o->sizes = calloc(r->ntab, sizeof(*o->sizes));
	o->blocks = calloc(r->ntab, sizeof(*o->blocks));
	if (!o->tabs || !o->bufs || !o->sizes || !o->blocks)
		goto nomem;
	for (size_t i = 0; i < r->ntab; i++) {
		const eg_client_table *t;

		rc = cli_query_pick(a, *all, *nall, r->names[i], &t);
		if (rc != CLI_OK)
			return rc;
		if (!t->rows_per_token) {
			cli_error("%s: table '%s' has no hash spec: look it up by slots",
			          a->cmd, r->names[i]);
			return CLI_FAIL;
		}
		o->tabs[i] = t;
		if (!t->row_bytes || r->nout > SIZE_MAX / t->rows_per_token / t->row_bytes)
			goto nomem;
		o->sizes[i] = r->nout * t->rows_per_token * (size_t)t->row_bytes;
		o->bufs[i] = malloc(o->sizes[i] ? o->sizes[i] : 1);
		if (!o->bufs[i])
			goto nomem;
	}
	return CLI_OK;
nomem:
	cli_error("%s: out of memory", a->cmd);
	return CLI_FAIL;
}

/* Output of one table's block: PREFIX.TABLE.npy or printed rows. */
static int emit_block(const struct cli_args *a, const eg_client_table *t, size_t ntok,
                      const unsigned char *data)
{
	uint64_t nrows = (uint64_t)ntok * t->rows_per_token;
	struct cli_layout l;
	float *vals;
	char path[4096];

	if (a->out) {
		if ((size_t)snprintf(path, sizeof path, "%s.%s.npy", a->out, t->name) >= sizeof path) {
			cli_error("%s: --out prefix too long", a->cmd);
			return CLI_FAIL;
		}
		return save(a, path, t, nrows, data);
	}
	layout_of(t, &l);
	vals = cli_values_buf(&l);
	for (uint64_t i = 0; i < nrows; i++) {
		printf("%s[%llu,%llu]:", t->name, (unsigned long long)(i / t->rows_per_token),
		       (unsigned long long)(i % t->rows_per_token));
		cli_print_row(&l, data + i * t->row_bytes, vals);
	}
	free(vals);
	return CLI_OK;
}

int cli_query_tokens(struct cli_args *a)
{
	struct tokens_req r;
	struct tokens_out o = { 0 };
	eg_client *c = NULL;
	eg_client_table *all = NULL;
	size_t nall = 0;
	uint64_t ticket;
	int rc = parse_tokens_req(a, &r), err;

	if (rc == CLI_OK)
		rc = cli_query_connect(a, &c);
	if (rc == CLI_OK)
		rc = tokens_out_alloc(a, c, &r, &all, &nall, &o);
	if (rc != CLI_OK)
		goto out;
	err = eg_client_send_tokens(c, r.names, r.ntab, r.tokens, r.ntokens, r.lens, r.ctx,
	                            r.nlens, o.bufs, o.sizes, &ticket);
	if (err == 0)
		err = eg_client_wait_blocks(c, ticket, o.blocks, r.ntab);
	if (err < 0)
		rc = cli_query_fail(a, c, err);
	for (size_t i = 0; i < r.ntab && rc == CLI_OK; i++)
		if (!block_ok(a, o.tabs[i], &o.blocks[i], (uint64_t)r.nout * o.tabs[i]->rows_per_token))
			rc = CLI_FAIL;
	for (size_t i = 0; i < r.ntab && rc == CLI_OK; i++)
		rc = emit_block(a, o.tabs[i], r.nout, o.bufs[i]);
out:
	tokens_out_free(&o, r.ntab);
	tokens_req_free(&r);
	eg_client_info_free(all, nall);
	eg_client_close(c);
	return rc;
}
