/* check_lying_server.c - libengram and `engram lookup|tokens` against a
 * server that lies. A fake engramd (egtest_liar.c: a real unix socket, the
 * real framing) answers every request truthfully except one kind, which gets
 * the lie of the case: no row block, one row for four slots, another table's
 * block, a wrong id, a layout that cannot be, a truncated or endless frame, a
 * shared-buffer range outside the buffer, ... The client must refuse each
 * with EGC_EPROTOCOL naming the mismatch (or time out, for the endless
 * frame), stay usable, and the CLI must exit 1 with one line and write no
 * --out file. A truthful case of each kind shows the fake server itself is
 * believed when it tells the truth. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "egtest_liar.h"
#include "engram.h"

#define ROW_A 16   /* table "a": u8, 16-byte rows, 100 slots, no hash spec */
#define ROW_H 8    /* tables "h", "h2": u8, 8-byte rows, 4 rows per token */
#define RPT_H 4
#define SHM_SIZE 4096

enum lie {
	TRUTH, NO_BLOCK, SHORT_COUNT, EXTRA_BLOCK, WRONG_TABLE, WRONG_ID, SHORT_DATA,
	HUGE_ROW, ZERO_ROW, TRUNCATED, HUGE_FRAME, GARBAGE, ROW_BYTES_CHANGED, IN_SHM,
	INFO_HUGE_ROW, INFO_LAYOUT, INFO_HASHLESS_RPT, BIG_FRAME, WRONG_BODY,
	TOKENS_COUNT, BLOCK_COUNT, SWAPPED, SHM_OUTSIDE, SHM_ELSEWHERE, SHM_WITH_DATA,
	NOT_SHM, ENDLESS,
};

/* The lie the server tells, to the first request with body `target`. */
struct scenario {
	enum lie lie;
	Engram__V1__Request__BodyCase target;
	int told;
};

/* ---- the server's side ------------------------------------------------------- */

static uint8_t pattern(uint64_t slot, uint32_t j)
{
	return (uint8_t)(slot * 31 + j + 1);
}

/* One block as the server will describe it. */
struct blk {
	const char *table;
	uint32_t row_bytes;
	uint64_t count;
	uint64_t data_len;
	int shm;
	uint64_t shm_offset;
	uint8_t *data;
};

static void send_rows(struct egt_reply *out, uint64_t id, uint64_t tokens, uint32_t rpt,
                      struct blk *b, size_t n)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	Engram__V1__RowBlock rb[4], *rp[4];

	for (size_t i = 0; i < n; i++) {
		engram__v1__row_block__init(&rb[i]);
		rb[i].table = (char *)b[i].table;
		rb[i].generation = 1;
		rb[i].row_bytes = b[i].row_bytes;
		rb[i].count = b[i].count;
		rb[i].data.len = b[i].data_len;
		rb[i].data.data = b[i].data;
		rb[i].shm = b[i].shm;
		rb[i].shm_offset = b[i].shm_offset;
		rp[i] = &rb[i];
	}
	r.id = id;
	r.tokens = tokens;
	r.rows_per_token = rpt;
	r.n_blocks = n;
	r.blocks = rp;
	egt_reply_msg(out, &r);
}

static void info_answer(struct egt_reply *out, uint64_t id, enum lie lie)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	Engram__V1__InfoResponse info = ENGRAM__V1__INFO_RESPONSE__INIT;
	Engram__V1__TableInfo t[3], *tp[3];
	const char *names[3] = { "a", "h", "h2" };

	for (int i = 0; i < 3; i++) {
		engram__v1__table_info__init(&t[i]);
		t[i].name = (char *)names[i];
		t[i].slots = i ? 4062 : 100;
		t[i].dim = i ? ROW_H : ROW_A;
		t[i].dtype = (char *)"u8";
		t[i].row_bytes = i ? ROW_H : ROW_A;
		t[i].generation = 1;
		t[i].hash_kind = (char *)(i ? "engram-v1" : "");
		t[i].rows_per_token = i ? RPT_H : 0;
		t[i].path = (char *)"/nowhere";
		t[i].chunk_slots = 1024;
		tp[i] = &t[i];
	}
	if (lie == INFO_HUGE_ROW)
		t[0].dim = t[0].row_bytes = UINT32_MAX;
	else if (lie == INFO_LAYOUT)
		t[0].dtype = (char *)"f32"; /* 16 values of f32 are 64 bytes, not 16 */
	else if (lie == INFO_HASHLESS_RPT)
		t[0].rows_per_token = 16;
	info.n_tables = 3;
	info.tables = tp;
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_INFO;
	r.info = &info;
	egt_reply_msg(out, &r);
}

/* Lies that are no Response at all; 1 when lie was one of them. */
static int raw_lie(struct egt_reply *out, uint64_t id, enum lie lie)
{
	uint8_t body[16];
	size_t n = 0;

	switch (lie) {
	case TRUNCATED: /* a frame of 40 bytes cut after 3 */
		egt_reply_varint(out, 40);
		body[n++] = 0x08;
		body[n++] = (uint8_t)id; /* ids stay small here */
		body[n++] = 0x42;
		egt_reply_raw(out, body, n);
		out->close_after = 1;
		return 1;
	case HUGE_FRAME:
		egt_reply_varint(out, UINT64_C(1) << 40);
		out->endless = UINT64_C(1) << 40;
		return 1;
	case GARBAGE:
		egt_reply_varint(out, 8);
		egt_reply_raw(out, "\x08\x01\x0f\xff\xff\xff\xff\xff", 8);
		return 1;
	case BIG_FRAME: /* 1 MiB of error text: no stats answer is that long */
		egt_reply_varint(out, (1u << 20) + 5);
		body[n++] = 0x08;
		body[n++] = (uint8_t)id;
		body[n++] = 0x1a;
		ck_assert_uint_eq(egt_varint_put(body + n, (1u << 20) - 1), 3);
		egt_reply_raw(out, body, n + 3);
		out->endless = (1u << 20) - 1;
		return 1;
	default:
		return 0;
	}
}

/* A lookup answer of 2^40 bytes (65536 rows of EGC_ROW_BYTES_MAX could be
 * that long) whose one block's data never ends. */
static void endless_rows(struct egt_reply *out, uint64_t id)
{
	static const uint8_t blk[] = { 0x0a, 1, 'a', 0x18, 16, 0x20, 0x80, 0x80, 0x04, 0x2a };
	uint64_t total = UINT64_C(1) << 40, top, blen;
	uint8_t v[10];

	top = 2 + egt_varint_put(v, id) + 6;  /* id, blocks tag, 6-byte length */
	blen = total - top;
	egt_reply_varint(out, total);
	egt_reply_raw(out, "\x08", 1);
	egt_reply_varint(out, id);
	egt_reply_raw(out, "\x42", 1);
	ck_assert_uint_eq(egt_varint_put(v, blen), 6);
	egt_reply_varint(out, blen);
	egt_reply_raw(out, blk, sizeof(blk));
	ck_assert_uint_eq(egt_varint_put(v, blen - sizeof(blk) - 6), 6);
	egt_reply_varint(out, blen - sizeof(blk) - 6);
	out->endless = blen - sizeof(blk) - 6;
}

static void lookup_answer(struct egt_reply *out, uint64_t id, const Engram__V1__LookupRequest *lr,
                          enum lie lie)
{
	static uint8_t data[2][4096];
	struct blk b[2] = { { .table = lr->table, .row_bytes = ROW_A, .count = lr->n_slots,
	                      .shm = lr->shm, .shm_offset = lr->shm_offset, .data = data[0] } };
	size_t n = 1;

	if (lie == ENDLESS) {
		endless_rows(out, id);
		return;
	}
	if (raw_lie(out, id, lie))
		return;
	for (size_t i = 0; i < lr->n_slots && i < 4096 / ROW_A; i++)
		for (uint32_t j = 0; j < ROW_A; j++)
			data[0][i * ROW_A + j] = pattern(lr->slots[i], j);
	b[0].data_len = lr->shm ? 0 : lr->n_slots * ROW_A;
	switch (lie) {
	case NO_BLOCK: n = 0; break;
	case SHORT_COUNT: b[0].count = 1; b[0].data_len = ROW_A; break;
	case EXTRA_BLOCK: b[1] = b[0]; n = 2; break;
	case WRONG_TABLE: b[0].table = "b"; break;
	case WRONG_ID: id += 98; break;
	case SHORT_DATA: b[0].data_len = 2 * ROW_A; break;
	case HUGE_ROW: b[0].row_bytes = UINT32_MAX; b[0].data_len = 0; break;
	case ZERO_ROW: b[0].row_bytes = 0; b[0].data_len = 0; break;
	case ROW_BYTES_CHANGED: b[0].row_bytes = ROW_A / 2; b[0].data_len /= 2; break;
	case IN_SHM: b[0].shm = 1; b[0].data_len = 0; break;
	case SHM_ELSEWHERE: b[0].shm_offset = UINT64_C(1) << 40; break;
	case SHM_WITH_DATA: b[0].data_len = lr->n_slots * ROW_A; break;
	case NOT_SHM: b[0].shm = 0; b[0].data_len = lr->n_slots * ROW_A; break;
	default: break;
	}
	send_rows(out, id, 0, 0, b, n);
}

static void tokens_answer(struct egt_reply *out, uint64_t id, const Engram__V1__TokensRequest *tr,
                          enum lie lie)
{
	static uint8_t data[4][4096];
	struct blk b[4];
	uint64_t ntok = tr->n_tokens, off = tr->shm_offset;
	size_t n = tr->n_tables < 4 ? tr->n_tables : 4;

	for (size_t i = 0; i < tr->n_context; i++)
		ntok -= tr->context[i];
	for (size_t i = 0; i < n; i++) {
		b[i] = (struct blk){ .table = tr->tables[i], .row_bytes = ROW_H, .count = ntok * RPT_H,
		                     .data_len = tr->shm ? 0 : ntok * RPT_H * ROW_H,
		                     .shm = tr->shm, .shm_offset = off, .data = data[i] };
		memset(data[i], (int)i + 1, sizeof(data[i]));
		if (tr->shm)
			off += ntok * RPT_H * ROW_H;
	}
	if (lie == NO_BLOCK)
		n--;
	else if (lie == TOKENS_COUNT)
		ntok--;
	else if (lie == BLOCK_COUNT)
		b[1].count++, b[1].data_len += ROW_H;
	else if (lie == SWAPPED)
		b[0].table = tr->tables[1], b[1].table = tr->tables[0];
	send_rows(out, id, ntok, RPT_H, b, n);
}

static void answer(void *arg, unsigned conn, unsigned nreq, const Engram__V1__Request *req,
                   struct egt_reply *out)
{
	struct scenario *sc = arg;
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	Engram__V1__Pong pong = ENGRAM__V1__PONG__INIT;
	Engram__V1__StatsResponse st = ENGRAM__V1__STATS_RESPONSE__INIT;
	enum lie lie = TRUTH;

	(void)conn;
	(void)nreq;
	if (!req) {
		out->close_after = 1;
		return;
	}
	if (req->body_case == sc->target && !sc->told) {
		lie = sc->lie;
		sc->told = 1;
	}
	r.id = req->id;
	switch (req->body_case) {
	case ENGRAM__V1__REQUEST__BODY_ATTACH_SHM:
		egt_reply_ok(out, req->id);
		return;
	case ENGRAM__V1__REQUEST__BODY_INFO:
		if (!raw_lie(out, req->id, lie))
			info_answer(out, req->id, lie);
		return;
	case ENGRAM__V1__REQUEST__BODY_LOOKUP:
		lookup_answer(out, req->id, req->lookup, lie);
		return;
	case ENGRAM__V1__REQUEST__BODY_TOKENS:
		tokens_answer(out, req->id, req->tokens, lie);
		return;
	case ENGRAM__V1__REQUEST__BODY_STATS:
		if (raw_lie(out, req->id, lie))
			return;
		st.requests = 7;
		r.body_case = ENGRAM__V1__RESPONSE__BODY_STATS;
		r.stats = &st;
		break;
	default: /* ping, and a lie: stats for a ping */
		if (lie == WRONG_BODY) {
			r.body_case = ENGRAM__V1__RESPONSE__BODY_STATS;
			r.stats = &st;
		} else {
			pong.protocol_version = 1;
			r.body_case = ENGRAM__V1__RESPONSE__BODY_PONG;
			r.pong = &pong;
		}
	}
	egt_reply_msg(out, &r);
}

static struct scenario sc;
static egt_liar *liar;
static char addr[300];

static void liar_up(enum lie lie, Engram__V1__Request__BodyCase target)
{
	char *sock = egt_path("liar.sock");

	sc = (struct scenario){ .lie = lie, .target = target };
	ck_assert_int_eq(egt_liar_start(&liar, sock, answer, &sc), 0);
	snprintf(addr, sizeof(addr), "unix:%s", sock);
}

/* ---- libengram's side -------------------------------------------------------- */

enum op { LOOKUP, INFO_THEN_LOOKUP, INFO, STATS, PING, TOKENS, TOKENS_BAD_SEQ, LOOKUP_SHM,
          LOOKUP_SHM_END, LOOKUP_BIG };

static const struct client_case {
	enum op op;
	enum lie lie;
	int err;
	const char *says; /* in eg_client_errmsg() */
} client_cases[] = {
	{ LOOKUP, TRUTH, 0, "" },
	{ LOOKUP, NO_BLOCK, EGC_EPROTOCOL, "0 row blocks for 1 table asked" },
	{ LOOKUP, SHORT_COUNT, EGC_EPROTOCOL, "holds 1 rows; the request asked for 4" },
	{ LOOKUP, EXTRA_BLOCK, EGC_EPROTOCOL, "2 row blocks for 1 table asked" },
	{ LOOKUP, WRONG_TABLE, EGC_EPROTOCOL, "block 0 is for table 'b'; the request asked for 'a'" },
	{ LOOKUP, WRONG_ID, EGC_EPROTOCOL, "with id 99" },
	{ LOOKUP, SHORT_DATA, EGC_EPROTOCOL, "32 bytes of data for 4 rows of 16 bytes" },
	{ LOOKUP, HUGE_ROW, EGC_EPROTOCOL, "row_bytes 4294967295 is not a real row size" },
	{ LOOKUP, ZERO_ROW, EGC_EPROTOCOL, "row_bytes 0 is not a real row size" },
	{ LOOKUP, TRUNCATED, EGC_EPROTOCOL, "truncated frame" },
	{ LOOKUP, HUGE_FRAME, EGC_EPROTOCOL, "announced a response of 1099511627776 bytes" },
	{ LOOKUP, GARBAGE, EGC_EPROTOCOL, "malformed response" },
	{ LOOKUP, IN_SHM, EGC_EPROTOCOL, "says its rows are in the shared buffer" },
	{ INFO_THEN_LOOKUP, ROW_BYTES_CHANGED, EGC_EPROTOCOL,
	  "has rows of 8 bytes; the daemon described the table with rows of 16 bytes" },
	{ INFO, TRUTH, 0, "" },
	{ INFO, INFO_HUGE_ROW, EGC_EPROTOCOL, "row_bytes 4294967295 is not a real row size" },
	{ INFO, INFO_LAYOUT, EGC_EPROTOCOL, "does not match its layout (f32, dim 16" },
	{ INFO, INFO_HASHLESS_RPT, EGC_EPROTOCOL, "16 rows per token with hash kind ''" },
	{ INFO, HUGE_FRAME, EGC_EPROTOCOL, "announced a response of 1099511627776 bytes" },
	{ STATS, TRUTH, 0, "" },
	{ STATS, BIG_FRAME, EGC_EPROTOCOL, "announced a response of 1048581 bytes" },
	{ PING, WRONG_BODY, EGC_EPROTOCOL, "wrong kind of response" },
	{ TOKENS, TRUTH, 0, "" },
	{ TOKENS, NO_BLOCK, EGC_EPROTOCOL, "1 row blocks for 2 tables asked" },
	{ TOKENS, TOKENS_COUNT, EGC_EPROTOCOL, "returned 2 tokens; the request returns 3" },
	{ TOKENS, BLOCK_COUNT, EGC_EPROTOCOL, "holds 13 rows: not 3 tokens times 1..3840" },
	{ TOKENS, SWAPPED, EGC_EPROTOCOL, "block 0 is for table 'h2'; the request asked for 'h'" },
	{ TOKENS_BAD_SEQ, TRUTH, EGC_EPROTOCOL, "seq_lens and context do not add up" },
	{ LOOKUP_SHM, TRUTH, 0, "" },
	{ LOOKUP_SHM, SHM_ELSEWHERE, EGC_EPROTOCOL,
	  "is at shm_offset 1099511627776; the request puts it at 64" },
	{ LOOKUP_SHM, SHM_WITH_DATA, EGC_EPROTOCOL, "carries 64 bytes of data" },
	{ LOOKUP_SHM, NOT_SHM, EGC_EPROTOCOL, "is not in the shared buffer" },
	{ LOOKUP_SHM_END, TRUTH, EGC_EPROTOCOL,
	  "64 bytes at shm_offset 4064 lie outside the shared buffer of 4096 bytes" },
	{ LOOKUP_BIG, ENDLESS, -ETIMEDOUT, "no complete response" },
};

static Engram__V1__Request__BodyCase target_of(enum op op)
{
	switch (op) {
	case INFO: return ENGRAM__V1__REQUEST__BODY_INFO;
	case STATS: return ENGRAM__V1__REQUEST__BODY_STATS;
	case PING: return ENGRAM__V1__REQUEST__BODY_PING;
	case TOKENS: case TOKENS_BAD_SEQ: return ENGRAM__V1__REQUEST__BODY_TOKENS;
	default: return ENGRAM__V1__REQUEST__BODY_LOOKUP;
	}
}

static int do_tokens(eg_client *c, int bad_seq)
{
	static const char *const tables[] = { "h", "h2" };
	int64_t tokens[4] = { 5, 9, 2, 7 };
	uint32_t seq[2] = { 2, bad_seq ? 3 : 2 }, ctx[2] = { 1, 0 };
	static uint8_t b0[4096], b1[4096];
	void *outs[2] = { b0, b1 };
	size_t sizes[2] = { sizeof(b0), sizeof(b1) };
	eg_client_rows blocks[2];
	uint64_t ticket;
	int err;

	err = eg_client_send_tokens(c, tables, 2, tokens, 4, seq, ctx, 2, outs, sizes, &ticket);
	if (err == 0)
		err = eg_client_wait_blocks(c, ticket, blocks, 2);
	if (err == 0) {
		ck_assert_uint_eq(blocks[0].count, 3 * RPT_H);
		ck_assert_uint_eq(blocks[1].row_bytes, ROW_H);
		ck_assert_uint_eq(b1[0], 2);
	}
	return err;
}

static int do_shm(eg_client *c, uint64_t offset)
{
	uint64_t slots[4] = { 3, 1, 4, 1 };
	eg_client_rows r;
	const void *data;
	void *base;
	int err;

	ck_assert_msg(eg_client_attach_shm(c, SHM_SIZE, &base) == 0, "%s", eg_client_errmsg(c));
	/* twice: the second with the layout known, and still the slots in the
	 * frame (this server's attach answer has no body: no shm_slots) */
	for (int k = 0; k < 2; k++) {
		err = eg_client_lookup_shm(c, "a", slots, 4, offset, &r, &data);
		if (err != 0)
			return err;
		ck_assert_ptr_eq(data, (char *)base + offset);
		ck_assert_uint_eq(r.count, 4);
	}
	return 0;
}

static int run_op(eg_client *c, enum op op)
{
	uint64_t slots[4] = { 3, 1, 4, 1 };
	static uint8_t big[4096];
	uint8_t buf[4 * ROW_A];
	eg_client_rows r;
	eg_client_table *t = NULL;
	eg_client_stats st;
	size_t n = 0;
	int err;

	switch (op) {
	case INFO_THEN_LOOKUP:
		ck_assert_int_eq(eg_client_info(c, &t, &n), 0);
		eg_client_info_free(t, n);
		/* fall through */
	case LOOKUP:
		memset(buf, 0, sizeof(buf));
		err = eg_client_lookup(c, "a", slots, 4, buf, sizeof(buf), &r);
		if (err == 0) {
			ck_assert_uint_eq(r.count, 4);
			ck_assert_uint_eq(r.row_bytes, ROW_A);
			for (int i = 0; i < 4; i++)
				ck_assert_uint_eq(buf[i * ROW_A + 5], pattern(slots[i], 5));
		}
		return err;
	case LOOKUP_BIG: { /* 65536 slots: a frame of 2^40 bytes may be true */
		uint64_t *many = calloc(65536, sizeof(*many));

		ck_assert_ptr_nonnull(many);
		eg_client_set_timeout(c, 300);
		err = eg_client_lookup(c, "a", many, 65536, big, sizeof(big), &r);
		eg_client_set_timeout(c, 5000);
		free(many);
		return err;
	}
	case INFO:
		err = eg_client_info(c, &t, &n);
		if (err == 0) {
			ck_assert_uint_eq(n, 3);
			ck_assert_uint_eq(t[1].rows_per_token, RPT_H);
			eg_client_info_free(t, n);
		}
		return err;
	case STATS:
		err = eg_client_stats_get(c, &st);
		if (err == 0)
			ck_assert_uint_eq(st.requests, 7);
		return err;
	case PING:
		return eg_client_ping(c);
	case TOKENS:
	case TOKENS_BAD_SEQ:
		return do_tokens(c, op == TOKENS_BAD_SEQ);
	case LOOKUP_SHM:
		return do_shm(c, 64);
	case LOOKUP_SHM_END:
		return do_shm(c, SHM_SIZE - 32);
	}
	return -1;
}

START_TEST(client_refuses)
{
	const struct client_case *k = &client_cases[_i];
	eg_client *c = NULL;
	double t0;
	int err;

	liar_up(k->lie, target_of(k->op));
	ck_assert_int_eq(eg_client_connect(addr, 5000, &c), 0);
	t0 = egt_now_ms();
	err = run_op(c, k->op);
	ck_assert_msg(err == k->err, "case %d: got %d (%s: %s), want %d", _i, err,
	              eg_client_strerror(err), eg_client_errmsg(c), k->err);
	ck_assert_msg(strstr(eg_client_errmsg(c), k->says), "case %d: message '%s' lacks '%s'", _i,
	              eg_client_errmsg(c), k->says);
	ck_assert_msg(!strchr(eg_client_errmsg(c), '\n'), "message of two lines");
	/* refused at once (the 300 ms timeout of LOOKUP_BIG included) */
	ck_assert_msg(egt_now_ms() - t0 < 3000, "case %d took %.0f ms", _i, egt_now_ms() - t0);
	/* and the client goes on: the next call reconnects if it had to */
	ck_assert_msg(k->op == PING || eg_client_ping(c) == 0, "after case %d: %s", _i,
	              eg_client_errmsg(c));
	eg_client_close(c);
	egt_liar_stop(liar);
}
END_TEST

/* ---- the CLI's side ---------------------------------------------------------- */

static const struct cli_case {
	int tokens;     /* `engram tokens` (else `engram lookup`) */
	enum lie lie;
	Engram__V1__Request__BodyCase target;
} cli_cases[] = {
	{ 0, TRUTH, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, NO_BLOCK, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, SHORT_COUNT, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, WRONG_TABLE, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, SHORT_DATA, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, ROW_BYTES_CHANGED, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, TRUNCATED, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, HUGE_FRAME, ENGRAM__V1__REQUEST__BODY_LOOKUP },
	{ 0, INFO_HUGE_ROW, ENGRAM__V1__REQUEST__BODY_INFO },
	{ 0, INFO_LAYOUT, ENGRAM__V1__REQUEST__BODY_INFO },
	{ 1, TRUTH, ENGRAM__V1__REQUEST__BODY_TOKENS },
	{ 1, TOKENS_COUNT, ENGRAM__V1__REQUEST__BODY_TOKENS },
	{ 1, BLOCK_COUNT, ENGRAM__V1__REQUEST__BODY_TOKENS },
	{ 1, NO_BLOCK, ENGRAM__V1__REQUEST__BODY_TOKENS },
};

/* Runs $ENGRAM argv with stderr to errpath; its exit status. */
static int run_cli(char *const argv[], const char *errpath)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int null = open("/dev/null", O_WRONLY);

		if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* The truthful lookup's rows at the end of the .npy written. */
static void check_npy_rows(const char *path)
{
	uint64_t slots[4] = { 3, 1, 4, 1 };
	uint8_t buf[4096];
	FILE *f = fopen(path, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	ck_assert_uint_ge(n, 4 * ROW_A);
	for (int i = 0; i < 4; i++)
		for (uint32_t j = 0; j < ROW_A; j++)
			ck_assert_uint_eq(buf[n - 4 * ROW_A + i * ROW_A + j], pattern(slots[i], j));
}

START_TEST(cli_refuses)
{
	const struct cli_case *k = &cli_cases[_i];
	const char *engram = getenv("ENGRAM") ? getenv("ENGRAM") : "build/engram";
	char *outdir = egt_path("out"), *errpath = egt_path("stderr"), out[600], text[4096];
	char *lookup[] = { (char *)engram, (char *)"lookup", (char *)"--connect", addr,
	                   (char *)"--table", (char *)"a", (char *)"--slots", (char *)"3,1,4,1",
	                   (char *)"--out", out, (char *)"--timeout", (char *)"2000", NULL };
	char *tokens[] = { (char *)engram, (char *)"tokens", (char *)"--connect", addr,
	                   (char *)"--tables", (char *)"h,h2", (char *)"--tokens", (char *)"5,9,2",
	                   (char *)"--out", out, (char *)"--timeout", (char *)"2000", NULL };
	double t0;
	FILE *f;
	size_t n;
	int rc, lines = 0;

	liar_up(k->lie, k->target);
	ck_assert_int_eq(mkdir(outdir, 0755), 0);
	snprintf(out, sizeof(out), "%s/%s", outdir, k->tokens ? "rows" : "rows.npy");
	t0 = egt_now_ms();
	rc = run_cli(k->tokens ? tokens : lookup, errpath);
	f = fopen(errpath, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		lines += text[i] == '\n';
	if (k->lie == TRUTH) {
		ck_assert_msg(rc == 0, "truthful case %d: exit %d: %s", _i, rc, text);
		ck_assert_int_eq(count_files(outdir), k->tokens ? 2 : 1);
		if (!k->tokens)
			check_npy_rows(out);
	} else {
		ck_assert_msg(rc == 1, "case %d: exit %d, stderr: %s", _i, rc, text);
		ck_assert_msg(lines == 1, "case %d: %d lines on stderr: %s", _i, lines, text);
		ck_assert_msg(count_files(outdir) == 0, "case %d: files were written", _i);
	}
	/* well inside --timeout 2000: refused, not waited out */
	ck_assert_msg(egt_now_ms() - t0 < 1900, "case %d took %.0f ms", _i, egt_now_ms() - t0);
	egt_liar_stop(liar);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("lying_server");
	TCase *tc = tcase_create("lies");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, client_refuses, 0, sizeof(client_cases) / sizeof(client_cases[0]));
	tcase_add_loop_test(tc, cli_refuses, 0, sizeof(cli_cases) / sizeof(cli_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return egt_run_suite(suite());
}
