/* client.c - public calls of libengram: the connection and lookups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egc_int.h"

eg_client *egc__client_new(const char *addr, int timeout_ms, unsigned flags)
{
	eg_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (egc__lock_init(c) < 0) {
		free(c);
		return NULL;
	}
	c->fd = -1;
	c->shm_fd = -1;
	c->zombie = -1;
	c->next_id = 1;
	c->flags = flags;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	c->addr = strdup(addr);
	if (!c->addr) {
		free(c);
		return NULL;
	}
	return c;
}

int eg_client_open(const char *addr, int timeout_ms, unsigned flags, eg_client **out)
{
	eg_client *c;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!addr || !*addr)
		addr = EGC_DEFAULT_ADDR;
	if ((flags & EGC_FAILOVER) || egc__spec_is_fleet(addr))
		return egc__fleet_open(addr, timeout_ms, flags, out);
	c = egc__client_new(addr, timeout_ms, flags);
	if (!c)
		return -ENOMEM;
	c->rbuf = malloc(EGC_RBUF_SIZE);
	if (!c->rbuf) {
		err = -ENOMEM;
		goto fail;
	}
	egc__start_call(c);
	err = egc__dial(c);
	if (err < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	eg_client_close(c);
	return err;
}

int eg_client_connect(const char *addr, int timeout_ms, eg_client **out)
{
	return eg_client_open(addr, timeout_ms, 0, out);
}

void eg_client_close(eg_client *c)
{
	size_t i;

	if (!c)
		return;
	egc__reader_stop(c); /* first: it reads the state freed below */
	egc__fleet_free(c);
	egc__floor_free(c);
	if (c->fd >= 0)
		close(c->fd);
	egc__shm_release(c);
	egc__forget_layouts(c);
	for (i = 0; i < c->qlen; i++)
		egc__ticket_free(c->q[i]);
	free(c->q);
	free(c->rbuf);
	free(c->wbuf);
	free(c->addr);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void eg_client_set_timeout(eg_client *c, int timeout_ms)
{
	if (!c)
		return;
	egc__lock(c);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	egc__unlock(c);
}

/* Whether n rows of rb bytes at off fit the shared buffer, and *end where
 * they end; 0 when they do not or rb is 0 (the layout is not known). */
static int rows_range(const eg_client *c, uint32_t rb, uint64_t n, uint64_t off, uint64_t *end)
{
	if (!rb || off > c->shm_size || n > (c->shm_size - off) / rb)
		return 0;
	*end = off + n * rb;
	return 1;
}

/* Whether a request in flight may still have the daemon write rows into
 * [start, end) of the shared buffer. Two requests at one range is the
 * caller's mistake; the slots of the later one then go in the frame, so that
 * only the earlier one's rows are overwritten, as without shm_slots. */
static int shm_in_use(const eg_client *c, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < c->qlen; i++) {
		const egc_ticket *t = c->q[i];
		uint64_t stop;

		if (t->kind != EGC_KIND_ROWS || !t->shm || t->done || t->shm_offset >= c->shm_size)
			continue; /* (rows past the buffer are refused, nothing written) */
		if (t->tokens || !rows_range(c, egc__known_row_bytes(c, t->outs[0].table),
		                             t->want_count, t->shm_offset, &stop))
			stop = c->shm_size; /* a token lookup's blocks, or a layout not known */
		if (t->shm_offset < end && start < stop)
			return 1;
	}
	return 0;
}

/* Whether the slots of a shm lookup go in the shared buffer instead of the
 * frame (LookupRequest.shm_slots): the daemon reads them there, and they
 * fit the request's own rows range (known once the table's layout is; a row
 * is at least as long as a slot), which no other request in flight may use,
 * so the copy overwrites nothing that is not the caller's. */
static int slots_in_shm(const eg_client *c, const char *table, size_t n, uint64_t off)
{
	uint32_t rb;
	uint64_t end;

	if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ || !c->shm_reads_slots || n == 0)
		return 0;
	rb = egc__known_row_bytes(c, table);
	return rb >= sizeof(uint64_t) && rows_range(c, rb, n, off, &end) &&
	       !shm_in_use(c, off, end);
}

/* The n slots at off in the shared buffer as the daemon reads them,
 * little-endian: the host's order (slots_in_shm), so one memmove (the
 * slots may lie in the buffer themselves, overlapping the copy), and none
 * when the caller wrote them at off itself. */
static void put_shm_slots(eg_client *c, const uint64_t *slots, size_t n, uint64_t off)
{
	unsigned char *at = (unsigned char *)c->shm_base + off;

	if ((const void *)slots != at)
		memmove(at, slots, n * sizeof(*slots));
}

static int send_lookup(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                       void *out, size_t out_size, int shm, uint64_t shm_offset,
                       uint64_t *ticket)
{
	const unsigned char *frame;
	uint64_t in_shm = 0;
	size_t len;
	egc_ticket *t;
	int err;

	t = egc__ticket_new(c, EGC_KIND_ROWS, 1, &table);
	if (!t) {
		egc__set_msg(c, "out of memory");
		return -ENOMEM;
	}
	t->shm = shm;
	t->shm_offset = shm_offset;
	t->want_count = n;
	t->outs[0].buf = out;
	t->outs[0].size = out_size;
	if (shm && slots_in_shm(c, table, n, shm_offset)) {
		put_shm_slots(c, slots, n, shm_offset);
		in_shm = n;
		n = 0;
	}
	err = egc__encode_lookup(c, t->id, table, slots, n, shm, shm_offset, egc__floor(c, table),
	                         in_shm, &frame, &len);
	if (err < 0) {
		egc__ticket_free(t);
		egc__set_msg(c, "out of memory encoding a lookup of %zu slots", n);
		return err;
	}
	egc__start_call(c);
	*ticket = t->id;
	return egc__send(c, t, frame, len);
}

int egc__send_lookup(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                     void *out, size_t out_size, int shm, uint64_t shm_offset, uint64_t *ticket)
{
	int err;

	egc__lock(c);
	err = send_lookup(c, table, slots, n, out, out_size, shm, shm_offset, ticket);
	egc__unlock(c);
	return err;
}

int eg_client_send_lookup(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                          void *out, size_t out_size, uint64_t *ticket)
{
	if (!c)
		return -EINVAL;
	if (!table || !ticket || (n && !slots) || (out_size && !out)) {
		egc__set_msg(c, "eg_client_send_lookup: NULL argument");
		return -EINVAL;
	}
	if (c->fleet) {
		struct egc_rows_req rq = { .tables = &table, .ntables = 1, .slots = slots,
		                           .nslots = n, .outs = &out, .sizes = &out_size };

		return egc__fleet_send(c, &rq, ticket);
	}
	return egc__send_lookup(c, table, slots, n, out, out_size, 0, 0, ticket);
}

int egc__tokens_args(eg_client *c, const char *const *tables, size_t ntables,
                     const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                     const uint32_t *context, size_t nseq, void *const *outs,
                     const size_t *out_sizes, int shm, uint64_t *ticket)
{
	if (!tables || !ntables || !ticket || (!shm && (!outs || !out_sizes)) || (ntokens && !tokens) ||
	    ((seq_lens || context) && !nseq)) {
		egc__set_msg(c, "eg_client_send_tokens: NULL or empty argument");
		return -EINVAL;
	}
	for (size_t i = 0; i < ntables; i++) {
		if (!tables[i] || (!shm && out_sizes[i] && !outs[i])) {
			egc__set_msg(c, "eg_client_send_tokens: NULL table name or buffer");
			return -EINVAL;
		}
	}
	return 0;
}

/* TokensRequest.min_generation: *out NULL when no table has a floor, else
 * one per table (malloc'd). */
static int tokens_floors(const eg_client *c, const char *const *tables, size_t ntables,
                         uint64_t **out)
{
	size_t i;

	*out = NULL;
	for (i = 0; i < ntables && !egc__floor(c, tables[i]); i++)
		;
	if (i == ntables)
		return 0;
	*out = malloc(ntables * sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < ntables; i++)
		(*out)[i] = egc__floor(c, tables[i]);
	return 0;
}

static int send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                       const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                       const uint32_t *context, size_t nseq, void *const *outs,
                       const size_t *out_sizes, int shm, uint64_t shm_offset, uint64_t *ticket)
{
	Engram__V1__TokensRequest tr = ENGRAM__V1__TOKENS_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	const unsigned char *frame;
	uint64_t *floors = NULL;
	uint32_t one_seq;
	egc_ticket *t;
	size_t i, len;
	int err;

	if (!c)
		return -EINVAL;
	if (egc__tokens_args(c, tables, ntables, tokens, ntokens, seq_lens, context, nseq, outs,
	                     out_sizes, shm, ticket) < 0)
		return -EINVAL;
	t = egc__ticket_new(c, EGC_KIND_ROWS, ntables, tables);
	if (!t) {
		egc__set_msg(c, "out of memory");
		return -ENOMEM;
	}
	t->shm = shm;
	t->shm_offset = shm_offset;
	t->tokens = 1;
	for (i = 0; !shm && i < ntables; i++) {
		t->outs[i].buf = outs[i];
		t->outs[i].size = out_sizes[i];
	}
	tr.shm = shm != 0;
	tr.shm_offset = shm_offset;
	tr.n_tables = ntables;
	tr.tables = (char **)tables;
	tr.n_tokens = ntokens;
	tr.tokens = (int64_t *)tokens;
	if (seq_lens) {
		tr.n_seq_lens = nseq;
		tr.seq_lens = (uint32_t *)seq_lens;
	} else if (context) {
		/* one sequence with a context: name its length explicitly */
		one_seq = (uint32_t)ntokens;
		tr.n_seq_lens = 1;
		tr.seq_lens = &one_seq;
		nseq = 1;
	}
	if (context) {
		tr.n_context = nseq;
		tr.context = (uint32_t *)context;
	}
	t->want_tokens = egc__tokens_out(ntokens, tr.seq_lens, context, tr.n_seq_lens);
	req.body_case = ENGRAM__V1__REQUEST__BODY_TOKENS;
	req.tokens = &tr;
	req.id = t->id;
	err = tokens_floors(c, tables, ntables, &floors);
	tr.n_min_generation = floors ? ntables : 0;
	tr.min_generation = floors;
	if (err < 0 || egc__encode_msg(c, &req, &frame, &len) < 0) {
		free(floors);
		egc__ticket_free(t);
		egc__set_msg(c, "out of memory encoding a token lookup");
		return -ENOMEM;
	}
	free(floors);
	egc__start_call(c);
	*ticket = t->id;
	return egc__send(c, t, frame, len);
}

int egc__send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                     const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                     const uint32_t *context, size_t nseq, void *const *outs,
                     const size_t *out_sizes, int shm, uint64_t shm_offset, uint64_t *ticket)
{
	int err;

	if (!c)
		return -EINVAL;
	egc__lock(c);
	err = send_tokens(c, tables, ntables, tokens, ntokens, seq_lens, context, nseq, outs,
	                  out_sizes, shm, shm_offset, ticket);
	egc__unlock(c);
	return err;
}

int eg_client_send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                          const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                          const uint32_t *context, size_t nseq, void *const *outs,
                          const size_t *out_sizes, uint64_t *ticket)
{
	if (c && c->fleet) {
		struct egc_rows_req rq = { .tables = tables, .ntables = ntables, .tokens = 1,
		                           .toks = tokens, .ntoks = ntokens, .seq_lens = seq_lens,
		                           .context = context, .nseq = nseq, .outs = outs,
		                           .sizes = out_sizes };

		if (egc__tokens_args(c, tables, ntables, tokens, ntokens, seq_lens, context, nseq,
		                     outs, out_sizes, 0, ticket) < 0)
			return -EINVAL;
		return egc__fleet_send(c, &rq, ticket);
	}
	return egc__send_tokens(c, tables, ntables, tokens, ntokens, seq_lens, context, nseq, outs,
	                        out_sizes, 0, 0, ticket);
}

static int wait_ticket(eg_client *c, uint64_t ticket, eg_client_rows *blocks,
                       const void **data, size_t nblocks, int shm)
{
	egc_ticket *t;
	size_t i;
	int err;

	egc__start_call(c);
	err = egc__collect(c, ticket, &t);
	if (err < 0)
		return err;
	err = t->err;
	if (err == 0 && shm && !t->shm) {
		err = EGC_ETICKET;
		snprintf(t->msg, sizeof(t->msg), "ticket %llu is not a shared-buffer request",
		         (unsigned long long)ticket);
	}
	if (err < 0) {
		egc__set_msg(c, "%s", t->msg);
	} else {
		egc__floor_learn(c, t);
		for (i = 0; i < nblocks; i++) {
			if (i < t->nouts)
				blocks[i] = t->outs[i].rows;
			else
				memset(&blocks[i], 0, sizeof(blocks[i]));
			if (data)
				data[i] = i < t->nouts ? (const unsigned char *)c->shm_base +
				                         t->outs[i].shm_offset : NULL;
		}
	}
	egc__ticket_free(t);
	return err;
}

int egc__wait(eg_client *c, uint64_t ticket, eg_client_rows *blocks, const void **data,
              size_t nblocks, int shm)
{
	int err;

	egc__lock(c);
	err = wait_ticket(c, ticket, blocks, data, nblocks, shm);
	egc__unlock(c);
	return err;
}

int eg_client_wait_blocks(eg_client *c, uint64_t ticket, eg_client_rows *blocks,
                          size_t nblocks)
{
	if (!c)
		return -EINVAL;
	if (nblocks && !blocks) {
		egc__set_msg(c, "eg_client_wait_blocks: NULL blocks");
		return -EINVAL;
	}
	if (c->fleet)
		return egc__fleet_wait(c, ticket, blocks, nblocks);
	return egc__wait(c, ticket, blocks, NULL, nblocks, 0);
}

int eg_client_wait(eg_client *c, uint64_t ticket, eg_client_rows *rows)
{
	return eg_client_wait_blocks(c, ticket, rows, rows ? 1 : 0);
}

int eg_client_lookup(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                     void *out, size_t out_size, eg_client_rows *rows)
{
	uint64_t ticket;
	int err;

	if (c && c->fleet && table && (!n || slots) && (!out_size || out)) {
		struct egc_rows_req rq = { .tables = &table, .ntables = 1, .slots = slots,
		                           .nslots = n, .outs = &out, .sizes = &out_size };

		return egc__fleet_lookup(c, &rq, rows);
	}
	err = eg_client_send_lookup(c, table, slots, n, out, out_size, &ticket);
	if (err < 0)
		return err;
	return eg_client_wait(c, ticket, rows);
}
