/* libFuzzer harness: the daemon's input path. The input is the byte stream a
 * client sends on one connection; it is split into frames by the daemon's
 * own splitter (server/frame.c) and every frame goes through ed_dispatch
 * against three small real tables (built at start-up in a temporary
 * directory), gathers on the gather threads, cold reads through the I/O
 * thread into a row cache too small for its table, and reloads included. Every request
 * has a shared buffer (the same-host fast path) holding slot ids, some past
 * the tables' ends, for lookups that read their slots there (shm_slots).
 * Every answer must be one well-formed Response frame, and the rows of an OK
 * answer must be the rows the tables hold, in the frame or in the buffer. */
// fuzz-sources: server/shm.c server/frame.c server/dispatch.c server/lookup.c server/gather.c server/pool.c server/io.c server/pager.c server/fault.c server/rowcache.c server/info.c server/reload.c server/encode.c server/registry.c server/snap.c server/config.c server/log.c server/stats.c storage/*.c $BUILD/gen/engram.pb-c.c
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "eg_hash.h"
#include "eg_table.h"
#include "engram.pb-c.h"
#include "frame.h"
#include "gather.h"
#include "io.h"
#include "log.h"
#include "pager.h"
#include "pool.h"
#include "registry.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The served tables: name, slots, row bytes, chunk slots, hash spec. */
static const struct {
	const char *name;
	uint64_t slots;
	uint32_t row_bytes;
	uint64_t chunk_slots;
	const char *spec;
} tables[] = {
	{ "plain", 3001, 16, 1024, NULL },
	{ "hashed", 60, 64, 16,
	  "{\"kind\": \"engram-v1\", \"max_ngram\": 3, \"heads\": 2, \"pad\": 2, "
	  "\"multipliers\": [3, 5, 7], \"moduli\": [[11, 13], [17, 19]]}" },
	{ "xx", 300, 8, 64,
	  "{\"kind\": \"xxh3\", \"max_ngram\": 2, \"heads\": 2, \"pad\": 0, \"seed\": 7, "
	  "\"rows\": [[100, 200]]}" },
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static char tmpdir[] = "/tmp/fuzz_request.XXXXXX";
/* the shared buffer each request gets, refilled from shm_fill before each */
#define SHM_BYTES (64u << 10)
static uint8_t shm_buf[SHM_BYTES], shm_fill[SHM_BYTES];
static eg_hash *hashes[N_TABLES];
static uint8_t *want_rows[N_TABLES]; /* every row of each table, as built */
static uv_loop_t loop;
static struct ed_mailbox mailbox;

static uint8_t pattern(size_t table, uint64_t slot, uint32_t j)
{
	return (uint8_t)(slot * 31 + j * 7 + table * 101 + (slot >> 8));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	ed_pool_stop();
	ed_io_stop();
	ed_pager_stop();
	ed_registry_close();
	for (size_t i = 0; i < N_TABLES; i++) {
		eg_hash_free(hashes[i]);
		free(want_rows[i]);
	}
	uv_loop_close(&loop);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void build(size_t k, const char *dir)
{
	eg_meta m = { 0 };
	eg_builder *b;
	uint64_t slot = 0;

	snprintf(m.name, sizeof(m.name), "%s", tables[k].name);
	m.slots = tables[k].slots;
	m.dim = tables[k].row_bytes;
	m.dtype = EG_DTYPE_U8;
	m.chunk_slots = tables[k].chunk_slots;
	m.hash_spec = (char *)tables[k].spec;
	want_rows[k] = malloc(m.slots * m.dim);
	if (!want_rows[k] || eg_builder_open(dir, &m, &b))
		abort();
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint8_t *rows;

		if (eg_builder_next_chunk(b, (void **)&rows))
			abort();
		for (uint64_t r = 0; r < eg_builder_chunk_rows(b, c); r++, slot++)
			for (uint32_t j = 0; j < tables[k].row_bytes; j++)
				rows[r * tables[k].row_bytes + j] =
					want_rows[k][slot * m.dim + j] = pattern(k, slot, j);
	}
	if (eg_builder_finish(b))
		abort();
	if (tables[k].spec && eg_hash_parse(tables[k].spec, NULL, &hashes[k], NULL, 0))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *args[2 * N_TABLES + 8];
	char dirs[N_TABLES][128];
	int n = 0;

	/* the registry checks new tables in a re-executed copy of this program,
	 * as engramd does (server/main.c) */
	if (*argc == 5 && strcmp((*argv)[1], "--check-table") == 0)
		exit(eg_table_check_child((*argv)[2], atoi((*argv)[4]), STDOUT_FILENO));
	if (!mkdtemp(tmpdir))
		abort();
	args[n++] = (char *)"engramd";
	for (size_t k = 0; k < N_TABLES; k++) {
		char dir[96];

		snprintf(dir, sizeof(dir), "%s/%s", tmpdir, tables[k].name);
		build(k, dir);
		snprintf(dirs[k], sizeof(dirs[k]), "%s=%s", tables[k].name, dir);
		args[n++] = (char *)"--table";
		args[n++] = dirs[k];
	}
	/* small limits keep an execution fast; big enough for thread-pool gathers */
	args[n++] = (char *)"--max-rows=65536";
	args[n++] = (char *)"--max-frame=1M";
	args[n++] = (char *)"--log-level=error";
	args[n++] = (char *)"--cache-bytes=plain=16K";
	args[n] = NULL;
	if (ed_config_parse(n, args) != 0 || ed_io_start(8, ED_GATHER_MAX_READ) ||
	    ed_pager_start() || ed_pool_start(2) || ed_registry_open() != 0)
		abort();
	if (uv_loop_init(&loop) || ed_mailbox_init(&loop, &mailbox))
		abort();
	for (size_t i = 0; i < SHM_BYTES / 8; i++) {
		/* slots every table has, and every 97th past the end of all */
		uint64_t v = i % 97 == 96 ? 5000 + i : (i * 2654435761u) % 60;

		memcpy(shm_fill + 8 * i, &v, 8);
	}
	atexit(cleanup);
	return 0;
}

static size_t table_index(const char *name)
{
	for (size_t k = 0; k < N_TABLES; k++)
		if (strcmp(tables[k].name, name) == 0)
			return k;
	abort(); /* an OK answer for a table that is not served */
}

/* The rows of b: in its data, or (shm) in the shared buffer. */
static void check_block(const Engram__V1__RowBlock *b, const uint64_t *slots, size_t n)
{
	size_t k = table_index(b->table);
	uint32_t rb = tables[k].row_bytes;
	const uint8_t *rows = b->data.data;

	if (b->generation != 1 || b->row_bytes != rb || b->count != n)
		abort();
	if (b->shm) {
		if (b->data.len || b->shm_offset > SHM_BYTES || n * (uint64_t)rb > SHM_BYTES - b->shm_offset)
			abort(); /* rows outside the buffer */
		rows = shm_buf + b->shm_offset;
	} else if (b->data.len != n * (size_t)rb) {
		abort();
	}
	for (size_t i = 0; i < n; i++)
		if (memcmp(rows + i * rb, want_rows[k] + slots[i] * rb, rb) != 0)
			abort(); /* a wrong or torn row */
}

/* A lookup's slots: in the request (slots or fixed_slots), or (shm_slots) as
 * the buffer held them. */
static void check_lookup(const Engram__V1__LookupRequest *lr, const Engram__V1__Response *r)
{
	uint64_t *slots = lr->n_fixed_slots ? lr->fixed_slots : lr->slots;
	size_t n = lr->n_fixed_slots ? lr->n_fixed_slots : lr->n_slots;

	if ((lr->n_slots && lr->n_fixed_slots) || r->reads_fixed_slots != ed_cfg_fixed_slots_fit())
		abort(); /* served with its slots given twice, or the answer hides the field */
	if (r->n_blocks != 1 || strcmp(r->blocks[0]->table, lr->table) != 0 ||
	    r->blocks[0]->shm != lr->shm || (lr->shm && r->blocks[0]->shm_offset != lr->shm_offset))
		abort();
	if (lr->shm_slots) {
		if (n || lr->shm_offset > SHM_BYTES ||
		    lr->shm_slots > (SHM_BYTES - lr->shm_offset) / 8)
			abort(); /* served although its slots are not all in the buffer */
		n = (size_t)lr->shm_slots;
		slots = malloc(n * sizeof(*slots) + 1);
		if (!slots)
			abort();
		memcpy(slots, shm_fill + lr->shm_offset, n * sizeof(*slots));
	}
	check_block(r->blocks[0], slots, n);
	if (lr->shm_slots)
		free(slots);
}

static void check_tokens(const Engram__V1__TokensRequest *tr, const Engram__V1__Response *r)
{
	uint32_t one = (uint32_t)tr->n_tokens;
	const uint32_t *seq = tr->n_seq_lens ? tr->seq_lens : &one;
	size_t nseq = tr->n_seq_lens ? tr->n_seq_lens : 1;
	int64_t out = eg_hash_count_out(seq, tr->n_context ? tr->context : NULL, nseq);

	if (out < 0 || r->n_blocks != tr->n_tables || r->tokens != (uint64_t)out)
		abort();
	for (size_t i = 0; i < tr->n_tables; i++) {
		size_t k = table_index(tr->tables[i]);
		size_t n = (size_t)out * eg_hash_rows_per_token(hashes[k]);
		uint64_t *slots = malloc(n * sizeof(*slots) + 1);

		if (strcmp(r->blocks[i]->table, tr->tables[i]) != 0)
			abort();
		if (eg_hash_slots(hashes[k], tr->tokens, seq, tr->n_context ? tr->context : NULL,
		                  nseq, slots, NULL))
			abort();
		check_block(r->blocks[i], slots, n);
		free(slots);
	}
}

/* The answer to one frame must be one Response frame that says the truth. */
static void check_answer(const struct ed_req *req)
{
	const Engram__V1__Request *m = req->msg;
	Engram__V1__Response *r;
	size_t hdr = 0;
	uint64_t len = 0;

	if (ed_frame_split(req->out.data, req->out.len, UINT64_MAX, &hdr, &len) != ED_SPLIT_FRAME ||
	    hdr + len != req->out.len)
		abort();
	r = engram__v1__response__unpack(NULL, len, req->out.data + hdr);
	if (!r || (int)r->status != req->status || (r->status != 0) != (req->status != 0))
		abort();
	if (r->id != (m ? m->id : 0))
		abort();
	if (r->status != ENGRAM__V1__STATUS__OK) {
		if (!r->error[0] || r->n_blocks)
			abort(); /* an error says why and carries no rows */
	} else if (m->body_case == ENGRAM__V1__REQUEST__BODY_LOOKUP) {
		check_lookup(m->lookup, r);
	} else if (m->body_case == ENGRAM__V1__REQUEST__BODY_TOKENS) {
		check_tokens(m->tokens, r);
	} else if (m->body_case == ENGRAM__V1__REQUEST__BODY_RELOAD) {
		/* nothing changed on disk: nothing may be swapped in */
		if (r->body_case != ENGRAM__V1__RESPONSE__BODY_RELOAD)
			abort();
		for (size_t i = 0; i < r->reload->n_results; i++)
			if (r->reload->results[i]->reloaded || r->reload->results[i]->error[0])
				abort();
	}
	engram__v1__response__free_unpacked(r, NULL);
}

static void finished(struct ed_req *req)
{
	(void)req; /* DONE (or ABANDONED); the loop below notices */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	for (;;) {
		size_t hdr = 0;
		uint64_t len = 0;
		struct ed_req *req;

		/* MORE, or an error the connection would answer and close on */
		if (ed_frame_split(data + off, size - off, ed_cfg.max_frame, &hdr, &len) !=
		    ED_SPLIT_FRAME)
			break;
		req = calloc(1, sizeof(*req));
		if (!req)
			abort();
		req->loop = &loop;
		req->mailbox = &mailbox;
		req->finish = finished;
		memcpy(shm_buf, shm_fill, SHM_BYTES);
		req->shm = shm_buf;
		req->shm_size = SHM_BYTES;
		ed_dispatch(req, data + off + hdr, (size_t)len);
		while (req->state == ED_REQ_PENDING)
			uv_run(&loop, UV_RUN_ONCE); /* gather pieces, reloads */
		if (req->state != ED_REQ_DONE || req->pending)
			abort();
		check_answer(req);
		ed_req_free(req);
		off += hdr + (size_t)len;
	}
	return 0;
}
