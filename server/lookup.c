/* lookup.c - rows by slot (Lookup) and by token n-gram (Tokens): checks,
 * hashing, and laying out the response frame that gather.c fills. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gather.h"
#include "handlers.h"
#include "log.h"
#include "registry.h"

/* A shm request: whether the connection has a shared buffer; 0, or -1 once
 * answered. */
static int check_shm_attached(struct ed_req *req, uint64_t id)
{
	if (req->shm)
		return 0;
	ed_req_fail(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
	            "shm is set but this connection has no shared buffer: send attach_shm "
	            "with a memfd first (unix sockets only)");
	return -1;
}

/* A snapshot older than the client accepts: answered UNAVAILABLE, so that a
 * client with several replicas asks one that has loaded the version (a
 * rollout reaches replicas one after the other). 0, or -1 once answered. */
static int check_generation(struct ed_req *req, uint64_t id, const char *name,
                            const struct ed_snap *s, uint64_t min)
{
	if (s->meta->generation >= min)
		return 0;
	ed_req_failf(req, id, ENGRAM__V1__STATUS__UNAVAILABLE,
	             "table '%s' is at generation %llu here, below the min_generation %llu asked: "
	             "this replica has not loaded that version yet; ask another",
	             name, (unsigned long long)s->meta->generation, (unsigned long long)min);
	return -1;
}

/* The blocks of a rows response; with shm their rows go to the shared
 * buffer from shm_offset on, block after block. NULL once answered. */
static struct ed_block *layout(struct ed_req *req, uint64_t id, const struct ed_fill *f,
                               const char *const *names, size_t n, int shm, uint64_t shm_offset)
{
	struct ed_block *b;

	if (shm) {
		uint64_t need = 0;

		for (size_t i = 0; i < n; i++)
			need += (uint64_t)f[i].n * f[i].s->meta->row_bytes; /* <= max_rows rows */
		if (shm_offset > req->shm_size || need > req->shm_size - shm_offset) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__OUT_OF_RANGE,
			             "rows of %llu bytes at shm_offset %llu do not fit the shared buffer of %zu bytes",
			             (unsigned long long)need, (unsigned long long)shm_offset,
			             req->shm_size);
			return NULL;
		}
	}
	b = calloc(n, sizeof(*b));
	if (!b) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory for the response");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		b[i].table = names[i];
		b[i].generation = f[i].s->meta->generation;
		b[i].row_bytes = f[i].s->meta->row_bytes;
		b[i].count = f[i].n;
		if (shm) {
			b[i].shm = 1;
			b[i].shm_offset = shm_offset;
			b[i].rows = req->shm + shm_offset;
			shm_offset += (uint64_t)f[i].n * b[i].row_bytes;
		}
	}
	return b;
}

/* Asks the owner for what answering will hold: the frame of blocks b and
 * 8 bytes per id (the slots asked, or the tokens and their hashed slots).
 * Returns 0 to go on, or -1 once req is answered TOO_LARGE or WAITs. */
static int admit(struct ed_req *req, uint64_t id, uint64_t tokens, uint32_t rpt,
                 const struct ed_block *b, size_t n, uint64_t ids)
{
	uint64_t frame = ed_encode_rows_size(id, tokens, rpt, b, n);
	uint64_t bytes = frame && ids <= (UINT64_MAX - frame) / 8 ? frame + 8 * ids : UINT64_MAX;

	if (bytes > ed_cfg.max_output_total) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__TOO_LARGE,
		             "the answer needs %llu bytes, more than engramd holds for all answers together "
		             "(%llu, --max-output-total); ask for fewer rows",
		             (unsigned long long)bytes, (unsigned long long)ed_cfg.max_output_total);
		return -1;
	}
	if (req->reserve && req->reserve(req, bytes) < 0) {
		ed__req_to(req, ED_REQ_WAIT); /* the owner dispatches it again */
		return -1;
	}
	return 0;
}

/* Allocates the frame and gathers the rows into it (or the shared buffer). */
static void fill_rows(struct ed_req *req, uint64_t id, uint64_t tokens, uint32_t rpt,
                      const struct ed_fill *f, struct ed_block *b, size_t n, int shm)
{
	uint64_t rows = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		rows += f[i].n;
	rc = ed_encode_rows(&req->out, id, tokens, rpt, b, n);
	if (rc) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__TOO_LARGE,
		             "cannot allocate the response (%llu rows): %s; ask for fewer rows",
		             (unsigned long long)rows, strerror(-rc));
		return;
	}
	req->rows = rows;
	ed_gather(req, f, b, n, shm);
}

/* A lookup whose slots are in the shared buffer (shm_slots): they come with
 * shm and fit the buffer from shm_offset. 0, or -1 once answered. */
static int check_shm_slots(struct ed_req *req, uint64_t id, const Engram__V1__LookupRequest *lr)
{
	uint64_t n = lr->shm_slots, off = lr->shm_offset;

	if (!lr->shm) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
		            "shm_slots is set without shm: slots in the shared buffer go with shm and "
		            "shm_offset");
		return -1;
	}
	if (off > req->shm_size || n > (req->shm_size - off) / sizeof(uint64_t)) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__OUT_OF_RANGE,
		             "%llu slots at shm_offset %llu do not fit the shared buffer of %zu bytes",
		             (unsigned long long)n, (unsigned long long)off, req->shm_size);
		return -1;
	}
	return 0;
}

/* Copies a checked shm_slots lookup's slots (little-endian) out of the
 * shared buffer into req's own memory, before any row is written there: the
 * client may change the buffer at any time, so they are checked only after
 * the copy. NULL once answered. */
static const uint64_t *copy_shm_slots(struct ed_req *req, uint64_t id,
                                      const Engram__V1__LookupRequest *lr)
{
	const unsigned char *src = req->shm + lr->shm_offset;
	size_t n = (size_t)lr->shm_slots;
	uint64_t *dst;

	req->slot_bufs = calloc(1, sizeof(*req->slot_bufs));
	dst = req->slot_bufs ? malloc(n ? n * sizeof(uint64_t) : 1) : NULL;
	if (!dst) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory for the request");
		return NULL;
	}
	req->slot_bufs[0] = dst;
	req->n_slot_bufs = 1;
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		memcpy(&v, src + i * sizeof(v), sizeof(v));
		dst[i] = le64toh(v);
	}
	return dst;
}

/* Every slot inside the table; 0, or -1 once answered OUT_OF_RANGE. */
static int check_slots(struct ed_req *req, uint64_t id, const char *name,
                       const struct ed_snap *s, const uint64_t *slots, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= s->meta->slots) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__OUT_OF_RANGE,
			             "slots[%zu] = %llu is out of range: table '%s' has %llu slots (generation %llu)",
			             i, (unsigned long long)slots[i], name,
			             (unsigned long long)s->meta->slots,
			             (unsigned long long)s->meta->generation);
			return -1;
		}
	}
	return 0;
}

/* The slots a lookup lists in its frame: slots or fixed_slots (*n of them
 * at *slots; none when they are in the shared buffer, shm_slots). 0, or -1
 * once answered BAD_REQUEST for slots given in two of the three places. */
static int listed_slots(struct ed_req *req, uint64_t id, const Engram__V1__LookupRequest *lr,
                        const uint64_t **slots, size_t *n)
{
	static const char *const where[] = { "slots", "fixed_slots", "shm_slots" };
	const uint64_t count[] = { lr->n_slots, lr->n_fixed_slots, lr->shm_slots };
	int first = -1;

	for (int i = 0; i < 3; i++) {
		if (!count[i])
			continue;
		if (first >= 0) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
			             "both %s (%llu) and %s (%llu) are set: give the slots in one place",
			             where[first], (unsigned long long)count[first], where[i],
			             (unsigned long long)count[i]);
			return -1;
		}
		first = i;
	}
	*slots = lr->n_fixed_slots ? lr->fixed_slots : lr->slots;
	*n = lr->n_fixed_slots ? lr->n_fixed_slots : lr->n_slots;
	return 0;
}

void ed_do_lookup(struct ed_req *req, uint64_t id, const Engram__V1__LookupRequest *lr)
{
	const char *name = lr->table;
	const uint64_t *listed;
	size_t n_listed;
	uint64_t n;
	struct ed_block *b;
	struct ed_snap *s;
	struct ed_fill f;

	if (listed_slots(req, id, lr, &listed, &n_listed) < 0)
		return;
	n = lr->shm_slots ? lr->shm_slots : n_listed;

	s = ed_registry_pin(lr->table);
	if (!s) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__NOT_FOUND, "no table named '%s' is served",
		             lr->table);
		return;
	}
	if (ed_req_add_pin(req, s)) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory");
		return;
	}
	if (lr->shm && check_shm_attached(req, id) < 0)
		return;
	if (n > ed_cfg.max_rows) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__TOO_LARGE,
		             "%llu slots asked, the limit is %llu rows per request (--max-rows); split the request",
		             (unsigned long long)n, (unsigned long long)ed_cfg.max_rows);
		return;
	}
	if (lr->shm_slots && check_shm_slots(req, id, lr) < 0)
		return;
	if (check_generation(req, id, lr->table, s, lr->min_generation) < 0)
		return;
	if (!lr->shm_slots && check_slots(req, id, name, s, listed, n_listed) < 0)
		return;
	f.s = s;
	f.slots = listed;
	f.n = (size_t)n;
	b = layout(req, id, &f, &name, 1, lr->shm, lr->shm_offset);
	if (!b || admit(req, id, 0, 0, b, 1, n) < 0)
		goto out;
	if (lr->shm_slots) {
		f.slots = copy_shm_slots(req, id, lr);
		if (!f.slots || check_slots(req, id, name, s, f.slots, f.n) < 0)
			goto out;
	}
	fill_rows(req, id, 0, 0, &f, b, 1, lr->shm);
out:
	free(b);
}

/* Checks the sequence layout; returns the number of returned tokens or -1
 * after answering BAD_REQUEST. */
static int64_t check_sequences(struct ed_req *req, uint64_t id, const Engram__V1__TokensRequest *tr,
                               const uint32_t *seq, size_t nseq)
{
	uint64_t sum = 0;

	if (tr->n_context && tr->n_context != nseq) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
		             "context has %zu entries but there are %zu sequences; give one per sequence or none",
		             tr->n_context, nseq);
		return -1;
	}
	for (size_t i = 0; i < nseq; i++) {
		sum += seq[i];
		if (tr->n_context && tr->context[i] > seq[i]) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
			             "context[%zu] = %u exceeds seq_lens[%zu] = %u", i, tr->context[i], i,
			             seq[i]);
			return -1;
		}
	}
	if (sum != tr->n_tokens) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
		             "seq_lens add up to %llu but %zu tokens were sent",
		             (unsigned long long)sum, tr->n_tokens);
		return -1;
	}
	return eg_hash_count_out(seq, tr->n_context ? tr->context : NULL, nseq);
}

/* Pins every table of tr and sizes its block; 0, or -1 once answered. */
static int pin_tables(struct ed_req *req, uint64_t id, const Engram__V1__TokensRequest *tr,
                      int64_t out_tokens, struct ed_fill *f)
{
	uint64_t total_rows = 0;

	if (tr->n_min_generation && tr->n_min_generation != tr->n_tables) {
		ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
		             "min_generation has %zu entries for %zu tables; give one per table or none",
		             tr->n_min_generation, tr->n_tables);
		return -1;
	}
	for (size_t i = 0; i < tr->n_tables; i++) {
		f[i].s = ed_registry_pin(tr->tables[i]);
		if (!f[i].s) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__NOT_FOUND,
			             "tables[%zu]: no table named '%s' is served", i, tr->tables[i]);
			return -1;
		}
		if (ed_req_add_pin(req, f[i].s)) {
			ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory");
			return -1;
		}
		if (!f[i].s->hash) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
			             "table '%s' has no hash spec; look its rows up by slot (LookupRequest)",
			             tr->tables[i]);
			return -1;
		}
		if (tr->n_min_generation &&
		    check_generation(req, id, tr->tables[i], f[i].s, tr->min_generation[i]) < 0)
			return -1;
		f[i].n = (size_t)out_tokens * f[i].s->rows_per_token;
		total_rows += f[i].n;
		if (total_rows > ed_cfg.max_rows) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__TOO_LARGE,
			             "%lld tokens over %zu tables need more than %llu rows (--max-rows); split the request",
			             (long long)out_tokens, tr->n_tables,
			             (unsigned long long)ed_cfg.max_rows);
			return -1;
		}
	}
	return 0;
}

void ed_do_tokens(struct ed_req *req, uint64_t id, const Engram__V1__TokensRequest *tr)
{
	uint32_t one_seq = (uint32_t)tr->n_tokens;
	const uint32_t *seq = tr->n_seq_lens ? tr->seq_lens : &one_seq;
	size_t nseq = tr->n_seq_lens ? tr->n_seq_lens : 1;
	const uint32_t *ctx = tr->n_context ? tr->context : NULL;
	struct ed_fill *f = NULL;
	struct ed_block *b = NULL;
	int64_t out_tokens;
	uint64_t ids = 0;
	uint32_t rpt;
	size_t n = tr->n_tables;

	if (n == 0) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__BAD_REQUEST, "tokens request names no table");
		return;
	}
	if (tr->shm && check_shm_attached(req, id) < 0)
		return;
	if (tr->n_tokens > UINT32_MAX) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "too many tokens in one request");
		return;
	}
	out_tokens = check_sequences(req, id, tr, seq, nseq);
	if (out_tokens < 0)
		return;
	f = calloc(n, sizeof(*f));
	req->slot_bufs = calloc(n, sizeof(*req->slot_bufs));
	if (!f || !req->slot_bufs) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory for the request");
		goto out;
	}
	req->n_slot_bufs = n;
	/* pin, check and admit every table before hashing anything */
	if (pin_tables(req, id, tr, out_tokens, f) < 0)
		goto out;
	rpt = f[0].s->rows_per_token;
	b = layout(req, id, f, (const char *const *)tr->tables, n, tr->shm, tr->shm_offset);
	for (size_t i = 0; i < n; i++)
		ids += f[i].n;
	if (!b || admit(req, id, (uint64_t)out_tokens, rpt, b, n, ids + tr->n_tokens) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t bad = 0;
		int rc;

		req->slot_bufs[i] = malloc(f[i].n ? f[i].n * sizeof(uint64_t) : 1);
		if (!req->slot_bufs[i]) {
			ed_req_fail(req, id, ENGRAM__V1__STATUS__TOO_LARGE, "out of memory hashing the tokens");
			goto out;
		}
		rc = eg_hash_slots(f[i].s->hash, tr->tokens, seq, ctx, nseq, req->slot_bufs[i], &bad);
		if (rc == EG_ETOKEN) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
			             "tokens[%zu] = %lld is outside table '%s''s vocabulary map",
			             bad, (long long)(bad < tr->n_tokens ? tr->tokens[bad] : -1),
			             tr->tables[i]);
			goto out;
		}
		if (rc) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
			             "hashing for table '%s' failed: %s", tr->tables[i], eg_strerror(rc));
			goto out;
		}
		f[i].slots = req->slot_bufs[i];
	}
	fill_rows(req, id, (uint64_t)out_tokens, rpt, f, b, n, tr->shm);
out:
	free(b);
	free(f);
}
