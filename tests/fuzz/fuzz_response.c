/* libFuzzer harness: libengram's reading and checking of answers
 * (client/frame.c, client/check.c). The input is what a daemon answers:
 * byte 0 picks the request (lookups, token lookups, both through the shared
 * buffer, info, stats, ping, reload, a pipeline), the rest is sent back as
 * the answer by a fake engramd (tests/support/egtest_liar.c) on a real unix
 * socket, which then closes the connection. Whatever the bytes, the call
 * must return without a crash or a leak, with a one-line message when it
 * fails, and an answer it accepts must fit the request: as many rows as
 * asked, real row sizes inside the caller's buffer, shm rows inside the
 * shared buffer where they were asked for. */
// fuzz-sources: client/*.c tests/support/egtest_liar.c tests/support/egtest_wire.c $BUILD/gen/engram.pb-c.c
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/egtest_liar.h"
#include "engram.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum kind { LOOKUP, LOOKUP_EMPTY, INFO_THEN_LOOKUP, TOKENS, SHM_LOOKUP, SHM_TOKENS, INFO, STATS,
            PING, RELOAD, PIPELINE, LOOKUP_SMALL, NKINDS };

#define ROW 16        /* the truthful info's table "a" */
#define SHM_SIZE 4096
#define SHM_OFFSET 64

/* The answer of the current input; a copy, so that the server thread never
 * reads libFuzzer's buffer after the input is done with. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *answer_data;
static size_t answer_len, answer_cap;
static enum kind answer_kind;
static char addr[64];

#define need(cond)                                                              \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_response: %s accepted: %s\n",    \
			        #cond, eg_client_errmsg(c));                    \
			abort();                                                \
		}                                                               \
	} while (0)

/* The truthful info of INFO_THEN_LOOKUP: table "a", u8 rows of ROW bytes. */
static void true_info(struct egt_reply *out, uint64_t id)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	Engram__V1__InfoResponse info = ENGRAM__V1__INFO_RESPONSE__INIT;
	Engram__V1__TableInfo t = ENGRAM__V1__TABLE_INFO__INIT, *tp = &t;

	t.name = (char *)"a";
	t.slots = 100;
	t.dim = ROW;
	t.dtype = (char *)"u8";
	t.row_bytes = ROW;
	t.generation = 1;
	t.chunk_slots = 64;
	info.n_tables = 1;
	info.tables = &tp;
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_INFO;
	r.info = &info;
	egt_reply_msg(out, &r);
}

static void serve(void *arg, unsigned conn, unsigned nreq, const Engram__V1__Request *req,
                  struct egt_reply *out)
{
	(void)arg;
	(void)conn;
	(void)nreq;
	if (req && req->body_case == ENGRAM__V1__REQUEST__BODY_ATTACH_SHM) {
		egt_reply_ok(out, req->id);
		return;
	}
	pthread_mutex_lock(&lock);
	if (req && req->body_case == ENGRAM__V1__REQUEST__BODY_INFO &&
	    answer_kind == INFO_THEN_LOOKUP) {
		true_info(out, req->id);
	} else {
		egt_reply_raw(out, answer_data, answer_len);
		out->close_after = 1;
	}
	pthread_mutex_unlock(&lock);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static egt_liar *liar; /* serves until the process ends */

	(void)argc;
	(void)argv;
	snprintf(addr, sizeof(addr), "@fuzz_response.%ld", (long)getpid());
	if (egt_liar_start(&liar, addr, serve, NULL) != 0)
		abort();
	snprintf(addr, sizeof(addr), "unix:@fuzz_response.%ld", (long)getpid());
	return 0;
}

static const uint64_t slots[4] = { 3, 1, 4, 1 };

static void lookup(eg_client *c, size_t n, size_t room, uint32_t want_row)
{
	uint8_t buf[4 * ROW];
	eg_client_rows r;

	if (eg_client_lookup(c, "a", slots, n, buf, room, &r) != 0)
		return;
	need(r.count == n);
	need(r.row_bytes >= 1 && r.row_bytes <= EGC_ROW_BYTES_MAX);
	need(!want_row || r.row_bytes == want_row);
	need(r.count * r.row_bytes <= room);
}

static void pipeline(eg_client *c)
{
	uint8_t b1[2 * ROW], b2[3 * ROW];
	eg_client_rows r;
	uint64_t t1, t2;

	if (eg_client_send_lookup(c, "a", slots, 2, b1, sizeof(b1), &t1) != 0 ||
	    eg_client_send_lookup(c, "a", slots, 3, b2, sizeof(b2), &t2) != 0)
		return;
	if (eg_client_wait(c, t2, &r) == 0)
		need(r.count == 3 && r.count * r.row_bytes <= sizeof(b2));
	if (eg_client_wait(c, t1, &r) == 0)
		need(r.count == 2 && r.count * r.row_bytes <= sizeof(b1));
}

/* 4 tokens in two sequences, the first token of the first one context: 3
 * tokens return rows. */
static void tokens(eg_client *c, int shm)
{
	static const char *const tables[2] = { "h", "h2" };
	static const int64_t ids[4] = { 5, 9, 2, 7 };
	static const uint32_t seq[2] = { 2, 2 }, ctx[2] = { 1, 0 };
	static uint8_t b0[1024], b1[1024];
	void *outs[2] = { b0, b1 };
	size_t sizes[2] = { sizeof(b0), sizeof(b1) };
	eg_client_rows blocks[2];
	const void *data[2];
	void *base = NULL;
	uint64_t ticket, end = 0;
	int err;

	if (shm) {
		if (eg_client_attach_shm(c, SHM_SIZE, &base) != 0)
			return;
		err = eg_client_send_tokens_shm(c, tables, 2, ids, 4, seq, ctx, 2, 0, &ticket);
	} else {
		err = eg_client_send_tokens(c, tables, 2, ids, 4, seq, ctx, 2, outs, sizes, &ticket);
	}
	if (err != 0)
		return;
	err = shm ? eg_client_wait_shm(c, ticket, blocks, data, 2)
	          : eg_client_wait_blocks(c, ticket, blocks, 2);
	if (err != 0)
		return;
	for (int i = 0; i < 2; i++) {
		need(blocks[i].count % 3 == 0 && blocks[i].count / 3 >= 1 &&
		     blocks[i].count / 3 <= EGC_ROWS_PER_TOKEN_MAX);
		need(blocks[i].row_bytes >= 1 && blocks[i].row_bytes <= EGC_ROW_BYTES_MAX);
		if (shm) {
			need((const uint8_t *)data[i] == (const uint8_t *)base + end);
			end += blocks[i].count * blocks[i].row_bytes;
			need(end <= SHM_SIZE);
		} else {
			need(blocks[i].count * blocks[i].row_bytes <= sizes[i]);
		}
	}
}

static void shm_lookup(eg_client *c)
{
	eg_client_rows r;
	const void *data;
	void *base;

	if (eg_client_attach_shm(c, SHM_SIZE, &base) != 0 ||
	    eg_client_lookup_shm(c, "a", slots, 4, SHM_OFFSET, &r, &data) != 0)
		return;
	need(r.count == 4 && r.row_bytes >= 1);
	need(data == (const uint8_t *)base + SHM_OFFSET);
	need(SHM_OFFSET + r.count * r.row_bytes <= SHM_SIZE);
}

static void info(eg_client *c)
{
	eg_client_table *t;
	size_t n;

	if (eg_client_info(c, &t, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		need(t[i].name[0] && t[i].slots >= 1);
		need(t[i].row_bytes >= 1 && t[i].row_bytes <= EGC_ROW_BYTES_MAX);
		need(t[i].rows_per_token <= EGC_ROWS_PER_TOKEN_MAX);
	}
	eg_client_info_free(t, n);
}

static void run(eg_client *c, enum kind k)
{
	eg_client_table *t;
	eg_client_stats st;
	eg_client_reload res[4];
	size_t n;

	switch (k) {
	case LOOKUP: lookup(c, 4, 4 * ROW, 0); break;
	case LOOKUP_EMPTY: lookup(c, 0, 0, 0); break;
	case LOOKUP_SMALL: lookup(c, 4, ROW, 0); break;
	case INFO_THEN_LOOKUP:
		if (eg_client_info(c, &t, &n) != 0)
			abort(); /* the truthful info must be believed */
		eg_client_info_free(t, n);
		lookup(c, 4, 4 * ROW, ROW);
		break;
	case TOKENS: tokens(c, 0); break;
	case SHM_TOKENS: tokens(c, 1); break;
	case SHM_LOOKUP: shm_lookup(c); break;
	case INFO: info(c); break;
	case STATS: eg_client_stats_get(c, &st); break;
	case PING: eg_client_ping(c); break;
	case RELOAD: eg_client_reload_tables(c, "a", res, 4, &n); break;
	case PIPELINE: pipeline(c); break;
	case NKINDS: break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	eg_client *c;
	const char *msg;

	if (size < 1)
		return 0;
	pthread_mutex_lock(&lock);
	if (size > answer_cap) {
		answer_data = realloc(answer_data, size);
		if (!answer_data)
			abort();
		answer_cap = size;
	}
	answer_kind = (enum kind)(data[0] % NKINDS);
	memcpy(answer_data, data + 1, size - 1);
	answer_len = size - 1;
	pthread_mutex_unlock(&lock);
	if (eg_client_connect(addr, 5000, &c) != 0)
		abort();
	run(c, answer_kind);
	msg = eg_client_errmsg(c);
	if (strchr(msg, '\n'))
		abort();
	eg_client_close(c);
	return 0;
}
