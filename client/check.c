/* check.c - what an answer must match before the caller sees its rows.
 *
 * Whatever answers on the daemon's socket can send any bytes. frame.c only
 * keeps the stream in step; here each block of a rows answer is held against
 * its request: one block per table asked, in order, named as asked; count =
 * the slots asked (lookup) or tokens x rows per token (tokens); data = count
 * x row_bytes bytes; row_bytes a real row size and the one this connection
 * already knows for the table; for the shared buffer, no data, the offset
 * asked for and a range inside the buffer. An info answer is checked the
 * same way before a caller sizes buffers by it. A mismatch is EGC_EPROTOCOL
 * with a message naming it.
 *
 * A block older than the client's floor for its table (floor.c) is
 * EGC_EUNAVAILABLE, as the daemon itself would have answered.
 *
 * Layouts (row_bytes, rows per token) are learnt per connection, from info
 * and from checked blocks: one daemon never changes a served table's layout
 * (a reload with another layout is refused), another daemon may. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egc_int.h"

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- layouts known on this connection ------------------------------------ */

static const struct egc_layout *find_layout(const eg_client *c, const char *name)
{
	for (size_t i = 0; i < c->nlayouts; i++)
		if (strcmp(c->layouts[i].name, name) == 0)
			return &c->layouts[i];
	return NULL;
}

uint32_t egc__known_row_bytes(const eg_client *c, const char *table)
{
	const struct egc_layout *l = find_layout(c, table);

	return l ? l->row_bytes : 0;
}

/* Remembers name's layout (a full table forgets nothing and learns no more). */
static void learn(eg_client *c, const char *name, uint32_t row_bytes, int rpt_known,
                  uint32_t rpt)
{
	struct egc_layout *l = (struct egc_layout *)find_layout(c, name);

	if (!l) {
		if (c->nlayouts == EGC_LAYOUTS_MAX)
			return;
		l = &c->layouts[c->nlayouts];
		l->name = strdup(name);
		if (!l->name)
			return;
		c->nlayouts++;
		l->row_bytes = row_bytes;
		l->rpt_known = 0;
	}
	if (rpt_known) {
		l->rows_per_token = rpt;
		l->rpt_known = 1;
	}
}

void egc__forget_layouts(eg_client *c)
{
	for (size_t i = 0; i < c->nlayouts; i++)
		free(c->layouts[i].name);
	c->nlayouts = 0;
}

/* ---- rows answers ---------------------------------------------------------- */

static int fail(egc_ticket *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(egc_ticket *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	t->err = EGC_EPROTOCOL;
	return -1;
}

/* Rows block i must hold: lookups the slots asked, token lookups the
 * tokens times the table's rows per token. */
static int check_count(const eg_client *c, egc_ticket *t, size_t i)
{
	const struct egc_out *o = &t->outs[i];
	const struct egc_layout *l = find_layout(c, o->table);
	uint64_t count = o->rows.count, want;

	if (!t->tokens)
		want = t->want_count;
	else if (i == 0)
		want = t->got_tokens * t->got_rpt; /* both checked: no overflow */
	else if (l && l->rpt_known)
		want = t->want_tokens * l->rows_per_token;
	else if (t->want_tokens == 0 ? count == 0 :
	         count % t->want_tokens == 0 && count / t->want_tokens >= 1 &&
	         count / t->want_tokens <= EGC_ROWS_PER_TOKEN_MAX)
		return 0;
	else
		return fail(t, "block %zu (table '%s') holds %llu rows: not %llu tokens times 1..%u "
		            "rows per token", i, o->table, (unsigned long long)count,
		            (unsigned long long)t->want_tokens, EGC_ROWS_PER_TOKEN_MAX);
	if (t->tokens && i == 0 && l && l->rpt_known && l->rows_per_token != t->got_rpt)
		return fail(t, "daemon says %llu rows per token, table '%s' has %u",
		            (unsigned long long)t->got_rpt, o->table, l->rows_per_token);
	if (count != want)
		return fail(t, "block %zu (table '%s') holds %llu rows; the request asked for %llu",
		            i, o->table, (unsigned long long)count, (unsigned long long)want);
	return 0;
}

/* Where block i's bytes are: in the frame, or in the shared buffer at the
 * offset the request implies (*next_shm: blocks lie back to back). */
static int check_place(const eg_client *c, egc_ticket *t, size_t i, uint64_t *next_shm)
{
	const struct egc_out *o = &t->outs[i];
	uint64_t bytes = o->rows.count * o->rows.row_bytes; /* checked: no overflow */

	if (!t->shm) {
		if (o->in_shm)
			return fail(t, "block %zu (table '%s') says its rows are in the shared buffer; "
			            "the request asked for them in the response", i, o->table);
		if (o->ndata > 1)
			return fail(t, "block %zu (table '%s') has %d data fields", i, o->table, o->ndata);
		if (o->data_len != bytes)
			return fail(t, "block %zu (table '%s') has %llu bytes of data for %llu rows "
			            "of %u bytes", i, o->table, (unsigned long long)o->data_len,
			            (unsigned long long)o->rows.count, o->rows.row_bytes);
		return 0;
	}
	if (!o->in_shm)
		return fail(t, "block %zu (table '%s') is not in the shared buffer; the request "
		            "asked for it there", i, o->table);
	if (o->ndata)
		return fail(t, "block %zu (table '%s') carries %llu bytes of data besides its "
		            "shared-buffer rows", i, o->table, (unsigned long long)o->data_len);
	if (o->shm_offset != *next_shm)
		return fail(t, "block %zu (table '%s') is at shm_offset %llu; the request puts it "
		            "at %llu", i, o->table, (unsigned long long)o->shm_offset,
		            (unsigned long long)*next_shm);
	if (*next_shm > c->shm_size || bytes > c->shm_size - *next_shm)
		return fail(t, "block %zu (table '%s'): %llu bytes at shm_offset %llu lie outside "
		            "the shared buffer of %zu bytes", i, o->table, (unsigned long long)bytes,
		            (unsigned long long)*next_shm, c->shm_size);
	*next_shm += bytes;
	return 0;
}

static int check_block(const eg_client *c, egc_ticket *t, size_t i, uint64_t *next_shm)
{
	const struct egc_out *o = &t->outs[i];
	const struct egc_layout *l = find_layout(c, o->table);
	uint32_t rb = o->rows.row_bytes;

	if (o->name_bad || o->got_len != strlen(o->table))
		return fail(t, "block %zu is for table '%s'%s; the request asked for '%s'", i,
		            o->got_table, o->got_len >= sizeof(o->got_table) ? "..." : "",
		            o->table);
	if (rb == 0 || rb > EGC_ROW_BYTES_MAX)
		return fail(t, "block %zu (table '%s'): row_bytes %u is not a real row size "
		            "(1..%u)", i, o->table, rb, EGC_ROW_BYTES_MAX);
	if (l && l->row_bytes != rb)
		return fail(t, "block %zu (table '%s') has rows of %u bytes; the daemon described "
		            "the table with rows of %u bytes", i, o->table, rb, l->row_bytes);
	if (o->rows.count > UINT64_MAX / rb)
		return fail(t, "block %zu (table '%s'): %llu rows of %u bytes cannot be", i,
		            o->table, (unsigned long long)o->rows.count, rb);
	if (check_count(c, t, i) < 0)
		return -1;
	return check_place(c, t, i, next_shm);
}

void egc__check_rows(eg_client *c, egc_ticket *t)
{
	uint64_t next_shm = t->shm_offset;
	size_t i;

	if (t->nblocks_got != t->nouts) {
		fail(t, "daemon sent %zu row blocks for %zu table%s asked", t->nblocks_got, t->nouts,
		     t->nouts == 1 ? "" : "s");
		return;
	}
	if (t->tokens) {
		if (t->want_tokens == EGC_TOKENS_INVALID) {
			fail(t, "daemon accepted a token request whose seq_lens and context do not "
			     "add up");
			return;
		}
		if (t->got_tokens != t->want_tokens) {
			fail(t, "daemon returned %llu tokens; the request returns %llu",
			     (unsigned long long)t->got_tokens, (unsigned long long)t->want_tokens);
			return;
		}
		if (t->got_rpt == 0 || t->got_rpt > EGC_ROWS_PER_TOKEN_MAX) {
			fail(t, "daemon says %llu rows per token (1..%u are real)",
			     (unsigned long long)t->got_rpt, EGC_ROWS_PER_TOKEN_MAX);
			return;
		}
	}
	for (i = 0; i < t->nouts; i++)
		if (check_block(c, t, i, &next_shm) < 0)
			return;
	for (i = 0; i < t->nouts; i++) {
		uint64_t floor = egc__floor(c, t->outs[i].table);

		if (t->outs[i].rows.generation < floor) {
			/* a daemon that ignores min_generation (older than it) */
			t->err = EGC_EUNAVAILABLE;
			snprintf(t->msg, sizeof(t->msg), "table '%s' came at generation %llu, below the "
			         "min_generation %llu asked", t->outs[i].table,
			         (unsigned long long)t->outs[i].rows.generation,
			         (unsigned long long)floor);
			return;
		}
	}
	if (t->too_big) {
		t->err = EGC_EBUFSIZE;
		snprintf(t->msg, sizeof(t->msg),
		         "rows of %llu bytes do not fit the caller's buffer of %llu bytes",
		         (unsigned long long)t->too_big, (unsigned long long)t->room);
		return;
	}
	for (i = 0; i < t->nouts; i++) {
		uint64_t per = t->want_tokens ? t->outs[i].rows.count / t->want_tokens : 0;

		learn(c, t->outs[i].table, t->outs[i].rows.row_bytes, t->tokens && t->want_tokens,
		      (uint32_t)per);
	}
}

uint64_t egc__rows_frame_max(const eg_client *c, const egc_ticket *t)
{
	uint64_t total = EGC_FRAME_SLACK, rows, row;

	for (size_t i = 0; i < t->nouts; i++) {
		const struct egc_layout *l = find_layout(c, t->outs[i].table);

		row = l ? l->row_bytes : EGC_ROW_BYTES_MAX;
		if (!t->tokens)
			rows = t->want_count;
		else if (t->want_tokens == EGC_TOKENS_INVALID)
			rows = 0; /* only an error can be true */
		else
			rows = sat_mul(t->want_tokens, l && l->rpt_known ? l->rows_per_token
			                                                  : EGC_ROWS_PER_TOKEN_MAX);
		total = sat_add(total, EGC_BLOCK_SLACK + strlen(t->outs[i].table));
		if (!t->shm)
			total = sat_add(total, sat_mul(rows, row));
	}
	return total;
}

uint64_t egc__tokens_out(size_t ntokens, const uint32_t *seq_lens, const uint32_t *context,
                         size_t nseq)
{
	uint64_t sum = 0, out = 0;
	uint32_t one;

	if (ntokens > UINT32_MAX)
		return EGC_TOKENS_INVALID;
	if (!seq_lens) {
		one = (uint32_t)ntokens;
		seq_lens = &one;
		nseq = 1;
	}
	for (size_t i = 0; i < nseq; i++) {
		if (context && context[i] > seq_lens[i])
			return EGC_TOKENS_INVALID;
		sum += seq_lens[i];
		out += seq_lens[i] - (context ? context[i] : 0);
	}
	return sum == ntokens ? out : EGC_TOKENS_INVALID;
}

/* ---- info answers ------------------------------------------------------------ */

/* Bytes of a row of dtype (0: a layout that cannot be), or -1 for a dtype
 * this build does not know (a newer daemon's: not held against it). */
static int64_t layout_bytes(const char *dtype, uint32_t dim, uint32_t scale_block)
{
	static const struct {
		const char *name;
		uint32_t width;
	} widths[] = { {"f32", 4}, {"f16", 2}, {"bf16", 2}, {"e4m3", 1}, {"u8", 1} };

	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		if (strcmp(dtype, widths[i].name) != 0)
			continue;
		if (dim == 0 || (scale_block && (strcmp(dtype, "e4m3") != 0 || dim % scale_block)))
			return 0;
		return (int64_t)dim * widths[i].width + (scale_block ? dim / scale_block : 0);
	}
	return -1;
}

static int check_table(eg_client *c, size_t i, const Engram__V1__TableInfo *ti)
{
	const char *name = ti->name ? ti->name : "", *kind = ti->hash_kind ? ti->hash_kind : "";
	int64_t want = layout_bytes(ti->dtype ? ti->dtype : "", ti->dim, ti->scale_block);

	if (!*name)
		egc__set_msg(c, "daemon's info: table %zu has no name", i);
	else if (ti->row_bytes == 0 || ti->row_bytes > EGC_ROW_BYTES_MAX)
		egc__set_msg(c, "daemon's info: table '%s': row_bytes %u is not a real row size (1..%u)",
		             name, ti->row_bytes, EGC_ROW_BYTES_MAX);
	else if (want >= 0 && want != ti->row_bytes)
		egc__set_msg(c, "daemon's info: table '%s': row_bytes %u does not match its layout "
		             "(%s, dim %u, scale_block %u: %lld bytes)", name, ti->row_bytes,
		             ti->dtype, ti->dim, ti->scale_block, (long long)want);
	else if (ti->slots == 0 || ti->slots > UINT64_MAX / ti->row_bytes)
		egc__set_msg(c, "daemon's info: table '%s': %llu slots of %u bytes cannot be", name,
		             (unsigned long long)ti->slots, ti->row_bytes);
	else if (ti->rows_per_token > EGC_ROWS_PER_TOKEN_MAX || !*kind != !ti->rows_per_token)
		egc__set_msg(c, "daemon's info: table '%s': %u rows per token with hash kind '%s' "
		             "(0 without a hash spec, else 1..%u)", name, ti->rows_per_token, kind,
		             EGC_ROWS_PER_TOKEN_MAX);
	else if (ti->chunk_slots & (ti->chunk_slots - 1))
		egc__set_msg(c, "daemon's info: table '%s': chunk_slots %llu is not a power of two",
		             name, (unsigned long long)ti->chunk_slots);
	else
		return 0;
	return EGC_EPROTOCOL;
}

int egc__check_info(eg_client *c, const Engram__V1__InfoResponse *info)
{
	size_t i;
	int err;

	for (i = 0; i < info->n_tables; i++) {
		err = check_table(c, i, info->tables[i]);
		if (err < 0)
			return err;
	}
	egc__forget_layouts(c);
	for (i = 0; i < info->n_tables; i++) {
		const Engram__V1__TableInfo *ti = info->tables[i];

		learn(c, ti->name, ti->row_bytes, 1, ti->rows_per_token);
	}
	return 0;
}
