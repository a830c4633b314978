/* check_daemon.c - the real engramd over real sockets, spoken to with
 * protobuf-c directly (not libengram): rows byte-exact against an in-process
 * eg_snapshot_gather, pipelining, concurrent clients, every malformed input
 * (each followed by a check that another client is still served), token
 * lookups, reload by request, SIGHUP and --watch, and SIGTERM. */
#include <check.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "eg_hash.h"
#include "eg_table.h"
#include "egtest.h"
#include "engram.pb-c.h"

typedef Engram__V1__Request Request;
typedef Engram__V1__Response Response;

/* ---- a tiny framed client ------------------------------------------------ */

struct cl {
	int fd;
	uint8_t *buf;
	size_t len, cap;
};

static void cl_open(struct cl *c, const char *addr)
{
	memset(c, 0, sizeof(*c));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 5);
		c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	} else {
		char host[64];
		const char *colon = strrchr(addr + 4, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;

		ck_assert_ptr_nonnull(colon);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr - 4), addr + 4);
		ck_assert_int_eq(getaddrinfo(host, colon + 1, &hints, &ai), 0);
		c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
		ck_assert_int_eq(connect(c->fd, ai->ai_addr, ai->ai_addrlen), 0);
		freeaddrinfo(ai);
	}
	ck_assert_int_ge(c->fd, 0);
}

static void cl_close(struct cl *c)
{
	close(c->fd);
	free(c->buf);
}

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static void cl_send(struct cl *c, const Request *r)
{
	size_t n = engram__v1__request__get_packed_size(r);
	uint8_t *b = malloc(n + 10);
	size_t h = egt_varint_put(b, n);

	engram__v1__request__pack(r, b + h);
	send_all(c->fd, b, h + n);
	free(b);
}

/* The next response, or NULL at EOF. Fails the test after 20 s. */
static Response *cl_recv(struct cl *c)
{
	for (;;) {
		uint64_t len;
		size_t h;

		if (egt_frame_parse(c->buf, c->len, &h, &len)) {
			Response *r = engram__v1__response__unpack(NULL, len, c->buf + h);

			ck_assert_msg(r != NULL, "response does not unpack");
			memmove(c->buf, c->buf + h + len, c->len - h - len);
			c->len -= h + len;
			return r;
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? 2 * c->cap : 1 << 20;
			c->buf = realloc(c->buf, c->cap);
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ck_assert_msg(poll(&p, 1, 20000) == 1, "no response within 20 s");
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return NULL;
		ck_assert_msg(n > 0, "read: %s", strerror(errno));
		c->len += (size_t)n;
	}
}

static void req_lookup(Request *r, Engram__V1__LookupRequest *lr, uint64_t id,
                       const char *table, uint64_t *slots, size_t n)
{
	engram__v1__request__init(r);
	engram__v1__lookup_request__init(lr);
	lr->table = (char *)table;
	lr->slots = slots;
	lr->n_slots = n;
	r->id = id;
	r->body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	r->lookup = lr;
}

static Response *lookup(struct cl *c, uint64_t id, const char *table, uint64_t *slots, size_t n)
{
	Request r;
	Engram__V1__LookupRequest lr;

	req_lookup(&r, &lr, id, table, slots, n);
	cl_send(c, &r);
	return cl_recv(c);
}

static Response *simple(struct cl *c, uint64_t id, Engram__V1__Request__BodyCase body)
{
	static Engram__V1__PingRequest ping = ENGRAM__V1__PING_REQUEST__INIT;
	static Engram__V1__InfoRequest info = ENGRAM__V1__INFO_REQUEST__INIT;
	static Engram__V1__StatsRequest stats = ENGRAM__V1__STATS_REQUEST__INIT;
	Request r = ENGRAM__V1__REQUEST__INIT;

	r.id = id;
	r.body_case = body;
	if (body == ENGRAM__V1__REQUEST__BODY_PING)
		r.ping = &ping;
	else if (body == ENGRAM__V1__REQUEST__BODY_INFO)
		r.info = &info;
	else if (body == ENGRAM__V1__REQUEST__BODY_STATS)
		r.stats = &stats;
	cl_send(c, &r);
	return cl_recv(c);
}

static Response *reload(struct cl *c, uint64_t id, const char *table)
{
	Engram__V1__ReloadRequest rr = ENGRAM__V1__RELOAD_REQUEST__INIT;
	Request r = ENGRAM__V1__REQUEST__INIT;

	rr.table = (char *)table;
	r.id = id;
	r.body_case = ENGRAM__V1__REQUEST__BODY_RELOAD;
	r.reload = &rr;
	cl_send(c, &r);
	return cl_recv(c);
}

/* ---- fixtures ---------------------------------------------------------- */

struct table_ref {
	const char *name;
	char *dir;
	uint64_t slots;
	uint32_t row_bytes;
};

static struct table_ref tab_a, tab_b;

/* Two tables with different row sizes and chunk sizes (a short last chunk). */
static void make_tables(void)
{
	if (tab_a.dir)
		return; /* once per test process */
	tab_a = (struct table_ref){ "a", egt_path("a"), 50000, 64 };
	tab_b = (struct table_ref){ "b", egt_path("b"), 3001, 24 };
	egt_make_table(tab_a.dir, "a", tab_a.slots, tab_a.row_bytes, 4096, 11);
	egt_make_table(tab_b.dir, "b", tab_b.slots, tab_b.row_bytes, 256, 22);
}

static char arg_a[300], arg_b[300];

static void start(egt_daemon *d, int tcp, const char *extra1, const char *extra2)
{
	const char *args[10] = { "--table", arg_a, "--table", arg_b, "--threads", "2" };
	size_t n = 6;

	make_tables();
	snprintf(arg_a, sizeof(arg_a), "a=%s", tab_a.dir);
	snprintf(arg_b, sizeof(arg_b), "b=%s", tab_b.dir);
	if (extra1)
		args[n++] = extra1;
	if (extra2)
		args[n++] = extra2;
	args[n] = NULL;
	egt_daemon_start(d, tcp, args);
}

/* Rows of slots as an in-process snapshot of dir gathers them. */
static uint8_t *expected(const char *dir, const uint64_t *slots, size_t n, uint64_t *gen)
{
	eg_table *t;
	eg_snapshot *s;
	uint8_t *out;
	int rc;

	rc = eg_table_open(dir, &t);
	ck_assert_msg(rc == 0, "eg_table_open: %s", eg_strerror(rc));
	ck_assert_int_eq(eg_snapshot_open(t, 0, &s), 0);
	out = malloc(n * eg_snapshot_meta(s)->row_bytes + 1);
	ck_assert_int_eq(eg_snapshot_gather(s, slots, n, out, NULL), 0);
	if (gen)
		*gen = eg_snapshot_meta(s)->generation;
	eg_snapshot_close(s);
	eg_table_close(t);
	return out;
}

static void check_rows(const Response *r, uint64_t id, const struct table_ref *t,
                       const uint64_t *slots, size_t n)
{
	uint8_t *want = expected(t->dir, slots, n, NULL);
	const Engram__V1__RowBlock *b;

	ck_assert_msg(r->status == ENGRAM__V1__STATUS__OK, "status %d: %s", r->status, r->error);
	ck_assert_uint_eq(r->id, id);
	ck_assert_uint_eq(r->n_blocks, 1);
	b = r->blocks[0];
	ck_assert_str_eq(b->table, t->name);
	ck_assert_uint_eq(b->count, n);
	ck_assert_uint_eq(b->row_bytes, t->row_bytes);
	ck_assert_uint_ge(b->generation, 1);
	ck_assert_uint_eq(b->data.len, n * t->row_bytes);
	ck_assert_msg(n == 0 || memcmp(b->data.data, want, n * t->row_bytes) == 0,
	              "rows differ from eg_snapshot_gather");
	free(want);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random slots, duplicates, both ends and chunk edges of t. */
static size_t pick_slots(const struct table_ref *t, uint64_t *seed, uint64_t *slots, size_t n)
{
	size_t k = 0;
	const uint64_t edges[] = { 0, 255, 256, 4095, 4096, 4097, 8191, 8192 };

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) && k < n; i++)
		if (edges[i] < t->slots)
			slots[k++] = edges[i];
	if (k < n)
		slots[k++] = t->slots - 1;
	while (k < n) {
		slots[k] = k % 7 == 3 ? slots[k - 1] : rnd(seed) % t->slots; /* duplicates */
		k++;
	}
	return k;
}

/* A ping on a new connection answers: the daemon is alive for others. */
static void assert_served(const egt_daemon *d)
{
	struct cl c;
	Response *r;
	uint64_t slots[3] = { 7, 0, 7 };

	cl_open(&c, d->addr);
	r = simple(&c, 99, ENGRAM__V1__REQUEST__BODY_PING);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_PONG);
	ck_assert_uint_eq(r->pong->protocol_version, 1);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, 100, "a", slots, 3);
	check_rows(r, 100, &tab_a, slots, 3);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
}

/* ---- rows --------------------------------------------------------------- */

static void exact_rows_over(const char *addr)
{
	uint64_t seed = 88172645463325252ull, slots[5000];
	struct cl c;

	cl_open(&c, addr);
	for (int round = 0; round < 6; round++) {
		const struct table_ref *t = round % 2 ? &tab_b : &tab_a;
		size_t n = pick_slots(t, &seed, slots, round < 2 ? 17 : 5000);
		Response *r = lookup(&c, (uint64_t)round + 1, t->name, slots, n);

		check_rows(r, (uint64_t)round + 1, t, slots, n);
		engram__v1__response__free_unpacked(r, NULL);
	}
	/* no slots: an empty block, not an error */
	Response *r = lookup(&c, 50, "b", slots, 0);
	check_rows(r, 50, &tab_b, slots, 0);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
}

START_TEST(rows_exact_unix_and_tcp)
{
	egt_daemon d;

	start(&d, 1, NULL, NULL);
	exact_rows_over(d.addr);
	exact_rows_over(d.tcp_addr);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Many outstanding requests, small ones and ones large enough to be gathered
 * on the thread pool, answered in order. */
START_TEST(pipelining_keeps_order)
{
	enum { N = 300 };
	static uint64_t slots[N][20000];
	static size_t counts[N];
	uint64_t seed = 12345;
	egt_daemon d;
	struct cl c;

	start(&d, 0, NULL, NULL);
	cl_open(&c, d.addr);
	for (int i = 0; i < N; i++) {
		Request r;
		Engram__V1__LookupRequest lr;

		counts[i] = pick_slots(&tab_a, &seed, slots[i], i % 10 == 0 ? 20000 : 1 + (size_t)i % 40);
		req_lookup(&r, &lr, 1000 + (uint64_t)i, "a", slots[i], counts[i]);
		cl_send(&c, &r);
	}
	for (int i = 0; i < N; i++) {
		Response *r = cl_recv(&c);

		ck_assert_ptr_nonnull(r);
		check_rows(r, 1000 + (uint64_t)i, &tab_a, slots[i], counts[i]);
		engram__v1__response__free_unpacked(r, NULL);
	}
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

struct client_arg {
	const char *addr;
	int index;
	int ok;
};

static void *client_thread(void *p)
{
	struct client_arg *a = p;
	uint64_t seed = 777 + (uint64_t)a->index, slots[600];
	struct cl c;

	cl_open(&c, a->addr);
	for (int i = 0; i < 40; i++) {
		const struct table_ref *t = (i + a->index) % 2 ? &tab_a : &tab_b;
		size_t n = pick_slots(t, &seed, slots, 1 + (size_t)(rnd(&seed) % 600));
		Response *r = lookup(&c, (uint64_t)i, t->name, slots, n);

		check_rows(r, (uint64_t)i, t, slots, n);
		engram__v1__response__free_unpacked(r, NULL);
	}
	cl_close(&c);
	a->ok = 1;
	return NULL;
}

START_TEST(concurrent_clients)
{
	enum { T = 8 };
	struct client_arg args[T];
	pthread_t th[T];
	egt_daemon d;

	start(&d, 1, NULL, NULL);
	for (int i = 0; i < T; i++) {
		args[i] = (struct client_arg){ i % 2 ? d.addr : d.tcp_addr, i, 0 };
		pthread_create(&th[i], NULL, client_thread, &args[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(args[i].ok, "client %d failed", i);
	}
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- bad input ---------------------------------------------------------- */

static void expect_error(Response *r, Engram__V1__Status st, const char *words)
{
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->status == st, "status %d, want %d (%s)", r->status, st, r->error);
	ck_assert_msg(strstr(r->error, words), "error '%s' lacks '%s'", r->error, words);
	ck_assert_uint_eq(r->n_blocks, 0);
	engram__v1__response__free_unpacked(r, NULL);
}

START_TEST(bad_frames)
{
	egt_daemon d;
	struct cl c;
	uint8_t b[64];
	size_t n;

	start(&d, 0, "--max-frame", "4096");

	/* bytes that are no Request: BAD_REQUEST, and the connection stays */
	cl_open(&c, d.addr);
	send_all(c.fd, "\x05\xff\xff\xff\xff\xff", 6);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "not a valid");
	Response *r = simple(&c, 5, ENGRAM__V1__REQUEST__BODY_PING);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_PONG);
	engram__v1__response__free_unpacked(r, NULL);
	/* an empty request and one with only an unknown field (15, varint) */
	send_all(c.fd, "\x02\x08\x07", 3);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "no body");
	send_all(c.fd, "\x04\x08\x09\x78\x01", 5);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "no body");
	send_all(c.fd, "\x00", 1); /* zero-length frame: an empty Request */
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "no body");
	cl_close(&c);
	assert_served(&d);

	/* truncated frame, then close */
	cl_open(&c, d.addr);
	send_all(c.fd, "\x64\x08\x01\x1a", 4);
	cl_close(&c);
	assert_served(&d);

	/* a length over --max-frame: TOO_LARGE, id 0, then EOF */
	cl_open(&c, d.addr);
	n = egt_varint_put(b, 1ull << 40);
	send_all(c.fd, b, n);
	r = cl_recv(&c);
	ck_assert_uint_eq(r->id, 0);
	expect_error(r, ENGRAM__V1__STATUS__TOO_LARGE, "over the limit");
	ck_assert_ptr_null(cl_recv(&c));
	cl_close(&c);
	assert_served(&d);

	/* a length that is no varint (11 continuation bytes) */
	cl_open(&c, d.addr);
	memset(b, 0xff, 11);
	send_all(c.fd, b, 11);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "varint");
	ck_assert_ptr_null(cl_recv(&c));
	cl_close(&c);
	assert_served(&d);

	/* a frame just over the limit, announced but never sent in full */
	cl_open(&c, d.addr);
	n = egt_varint_put(b, 4097);
	send_all(c.fd, b, n);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__TOO_LARGE, "4097");
	cl_close(&c);
	assert_served(&d);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

START_TEST(bad_lookups)
{
	uint64_t slots[1001];
	egt_daemon d;
	struct cl c;

	start(&d, 0, "--max-rows", "1000");
	cl_open(&c, d.addr);
	slots[0] = 1;
	expect_error(lookup(&c, 1, "nope", slots, 1), ENGRAM__V1__STATUS__NOT_FOUND, "'nope'");
	slots[0] = 0;
	slots[1] = 3000;
	slots[2] = 3001;
	slots[3] = UINT64_MAX;
	Response *r = lookup(&c, 2, "b", slots, 4);
	ck_assert_uint_eq(r->id, 2);
	expect_error(r, ENGRAM__V1__STATUS__OUT_OF_RANGE, "slots[2] = 3001");
	for (int i = 0; i < 1001; i++)
		slots[i] = (uint64_t)i;
	expect_error(lookup(&c, 3, "a", slots, 1001), ENGRAM__V1__STATUS__TOO_LARGE, "1001 slots");
	/* exactly the limit is fine, on the same connection */
	r = lookup(&c, 4, "a", slots, 1000);
	check_rows(r, 4, &tab_a, slots, 1000);
	engram__v1__response__free_unpacked(r, NULL);
	/* tokens against a table without a hash spec */
	{
		Engram__V1__TokensRequest tr = ENGRAM__V1__TOKENS_REQUEST__INIT;
		Request rq = ENGRAM__V1__REQUEST__INIT;
		char *names[] = { (char *)"a" };
		int64_t toks[] = { 1, 2, 3 };

		tr.tables = names;
		tr.n_tables = 1;
		tr.tokens = toks;
		tr.n_tokens = 3;
		rq.id = 5;
		rq.body_case = ENGRAM__V1__REQUEST__BODY_TOKENS;
		rq.tokens = &tr;
		cl_send(&c, &rq);
		expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST, "no hash spec");
	}
	expect_error(reload(&c, 6, "zzz"), ENGRAM__V1__STATUS__NOT_FOUND, "'zzz'");
	cl_close(&c);
	assert_served(&d);

	/* stats counted the errors */
	cl_open(&c, d.addr);
	r = simple(&c, 7, ENGRAM__V1__REQUEST__BODY_STATS);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_STATS);
	ck_assert_uint_ge(r->stats->errors, 5);
	ck_assert_uint_ge(r->stats->requests, 8);
	ck_assert_uint_ge(r->stats->rows, 1000);
	ck_assert_uint_ge(r->stats->connections, 1);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* A client that sends but never reads: the daemon stops reading from it at
 * --max-output and keeps serving others; the client then gets every row. */
START_TEST(slow_reader_backpressure)
{
	enum { N = 200 };
	static uint64_t slots[4000];
	egt_daemon d;
	struct cl c;
	Request r;
	Engram__V1__LookupRequest lr;
	size_t sent = 0;

	start(&d, 0, "--max-output", "256K");
	for (int i = 0; i < 4000; i++)
		slots[i] = (uint64_t)(i * 7) % tab_a.slots;
	cl_open(&c, d.addr);
	req_lookup(&r, &lr, 0, "a", slots, 4000);
	/* 200 x 256 KB of answers: far beyond socket buffers plus the bound */
	for (int i = 0; i < N; i++) {
		r.id = (uint64_t)i;
		size_t n = engram__v1__request__get_packed_size(&r);
		uint8_t *b = malloc(n + 10);
		size_t h = egt_varint_put(b, n);
		engram__v1__request__pack(&r, b + h);
		struct pollfd p = { .fd = c.fd, .events = POLLOUT };
		if (poll(&p, 1, 200) != 1) { /* the daemon stopped reading: good */
			free(b);
			break;
		}
		send_all(c.fd, b, h + n);
		free(b);
		sent++;
	}
	assert_served(&d);
	for (size_t i = 0; i < sent; i++) {
		Response *resp = cl_recv(&c);

		ck_assert_ptr_nonnull(resp);
		ck_assert_uint_eq(resp->id, i);
		if (i % 37 == 0)
			check_rows(resp, i, &tab_a, slots, 4000);
		engram__v1__response__free_unpacked(resp, NULL);
	}
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- tokens -------------------------------------------------------------- */

static const char xxh3_spec[] =
	"{\"kind\":\"xxh3\",\"max_ngram\":3,\"heads\":2,\"pad\":0,\"seed\":5,"
	"\"rows\":[[97,101],[103,107]]}";

static void make_hashed_table(const char *dir, uint32_t row_bytes)
{
	eg_meta m;
	eg_builder *b;
	uint64_t slot = 0;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "h");
	m.slots = 97 + 101 + 103 + 107;
	m.dim = row_bytes;
	m.dtype = EG_DTYPE_U8;
	m.chunk_slots = 64;
	m.hash_spec = (char *)xxh3_spec;
	ck_assert_int_eq(eg_builder_open(dir, &m, &b), 0);
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint8_t *p;

		ck_assert_int_eq(eg_builder_next_chunk(b, (void **)&p), 0);
		for (uint64_t r = 0; r < eg_builder_chunk_rows(b, c); r++, slot++)
			egt_row_bytes(9, slot, row_bytes, p + r * row_bytes);
	}
	ck_assert_int_eq(eg_builder_finish(b), 0);
}

static Response *tokens(struct cl *c, uint64_t id, char **names, size_t nt, int64_t *toks,
                        size_t n, uint32_t *seq, size_t nseq, uint32_t *ctx, size_t nctx)
{
	Engram__V1__TokensRequest tr = ENGRAM__V1__TOKENS_REQUEST__INIT;
	Request rq = ENGRAM__V1__REQUEST__INIT;

	tr.tables = names;
	tr.n_tables = nt;
	tr.tokens = toks;
	tr.n_tokens = n;
	tr.seq_lens = seq;
	tr.n_seq_lens = nseq;
	tr.context = ctx;
	tr.n_context = nctx;
	rq.id = id;
	rq.body_case = ENGRAM__V1__REQUEST__BODY_TOKENS;
	rq.tokens = &tr;
	cl_send(c, &rq);
	return cl_recv(c);
}

START_TEST(token_lookups)
{
	static char *h1, *h2; /* static: egt_path strings stay reachable (LSan) */
	char a1[300], a2[300];
	const char *args[] = { "--table", a1, "--table", a2, NULL };
	int64_t toks[] = { 5, 9, 2, 2, 77, 1000000, 3, 4 };
	uint32_t seq[] = { 3, 5 }, ctx[] = { 1, 2 };
	uint64_t want_slots[64];
	char *names[] = { (char *)"h1", (char *)"h2" };
	eg_hash *h;
	egt_daemon d;
	struct cl c;
	Response *r;

	h1 = egt_path("h1");
	h2 = egt_path("h2");
	make_hashed_table(h1, 16);
	make_hashed_table(h2, 40);
	snprintf(a1, sizeof(a1), "h1=%s", h1);
	snprintf(a2, sizeof(a2), "h2=%s", h2);
	egt_daemon_start(&d, 0, args);
	ck_assert_int_eq(eg_hash_parse(xxh3_spec, NULL, &h, NULL, 0), 0);
	ck_assert_int_eq(eg_hash_slots(h, toks, seq, ctx, 2, want_slots, NULL), 0);

	cl_open(&c, d.addr);
	r = tokens(&c, 1, names, 2, toks, 8, seq, 2, ctx, 2);
	ck_assert_msg(r->status == 0, "%s", r->error);
	ck_assert_uint_eq(r->tokens, 5);
	ck_assert_uint_eq(r->rows_per_token, 4);
	ck_assert_uint_eq(r->n_blocks, 2);
	for (int t = 0; t < 2; t++) {
		uint32_t rb = t ? 40 : 16;
		uint8_t *want = expected(t ? h2 : h1, want_slots, 20, NULL);

		ck_assert_str_eq(r->blocks[t]->table, names[t]);
		ck_assert_uint_eq(r->blocks[t]->count, 20);
		ck_assert_uint_eq(r->blocks[t]->row_bytes, rb);
		ck_assert_int_eq(memcmp(r->blocks[t]->data.data, want, 20 * rb), 0);
		free(want);
	}
	engram__v1__response__free_unpacked(r, NULL);

	/* no seq_lens: one sequence of every token */
	ck_assert_int_eq(eg_hash_slots(h, toks, (uint32_t[]){ 8 }, NULL, 1, want_slots, NULL), 0);
	r = tokens(&c, 2, names, 1, toks, 8, NULL, 0, NULL, 0);
	ck_assert_uint_eq(r->tokens, 8);
	{
		uint8_t *want = expected(h1, want_slots, 32, NULL);
		ck_assert_int_eq(memcmp(r->blocks[0]->data.data, want, 32 * 16), 0);
		free(want);
	}
	engram__v1__response__free_unpacked(r, NULL);

	expect_error(tokens(&c, 3, names, 1, toks, 8, (uint32_t[]){ 3, 4 }, 2, NULL, 0),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "add up to 7 but 8 tokens");
	expect_error(tokens(&c, 4, names, 1, toks, 8, seq, 2, (uint32_t[]){ 4, 0 }, 2),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "context[0] = 4 exceeds seq_lens[0] = 3");
	expect_error(tokens(&c, 5, names, 1, toks, 8, seq, 2, ctx, 1),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "context has 1 entries");
	expect_error(tokens(&c, 6, names, 0, toks, 8, NULL, 0, NULL, 0),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "names no table");
	expect_error(tokens(&c, 7, (char *[]){ (char *)"h1", (char *)"x" }, 2, toks, 8, NULL, 0, NULL, 0),
	             ENGRAM__V1__STATUS__NOT_FOUND, "tables[1]");
	r = simple(&c, 8, ENGRAM__V1__REQUEST__BODY_INFO);
	ck_assert_uint_eq(r->info->n_tables, 2);
	ck_assert_str_eq(r->info->tables[1]->hash_kind, "xxh3");
	ck_assert_uint_eq(r->info->tables[1]->rows_per_token, 4);
	ck_assert_uint_eq(r->info->tables[1]->row_bytes, 40);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	eg_hash_free(h);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- reload ------------------------------------------------------------- */

static uint64_t patch(const char *dir, uint64_t slot, uint32_t row_bytes, uint8_t fill)
{
	uint8_t row[256];
	uint64_t gen = 0;

	memset(row, fill, row_bytes);
	ck_assert_int_eq(eg_table_update(dir, &slot, 1, row, NULL, &gen), 0);
	return gen;
}

static uint64_t served_generation(const egt_daemon *d, uint8_t *first_byte)
{
	uint64_t slot = 5, g;
	struct cl c;
	Response *r;

	cl_open(&c, d->addr);
	r = lookup(&c, 1, "a", &slot, 1);
	ck_assert_int_eq(r->status, 0);
	g = r->blocks[0]->generation;
	*first_byte = r->blocks[0]->data.data[0];
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	return g;
}

START_TEST(reload_by_request)
{
	egt_daemon d;
	struct cl c;
	Response *r;
	uint8_t byte;
	uint64_t gen;

	start(&d, 0, NULL, NULL);
	cl_open(&c, d.addr);
	gen = patch(tab_a.dir, 5, tab_a.row_bytes, 0xab);
	ck_assert_uint_eq(gen, 2);
	/* not reloaded yet: still generation 1 */
	ck_assert_uint_eq(served_generation(&d, &byte), 1);
	r = reload(&c, 9, "a");
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_RELOAD);
	ck_assert_uint_eq(r->reload->n_results, 1);
	ck_assert_uint_eq(r->reload->results[0]->old_generation, 1);
	ck_assert_uint_eq(r->reload->results[0]->new_generation, 2);
	ck_assert(r->reload->results[0]->reloaded);
	/* timed: opening the snapshot took some us; the swap far under a second */
	ck_assert_uint_gt(r->reload->results[0]->build_us + r->reload->results[0]->swap_ns, 0);
	ck_assert_uint_lt(r->reload->results[0]->swap_ns, 1000000000u);
	engram__v1__response__free_unpacked(r, NULL);
	ck_assert_uint_eq(served_generation(&d, &byte), 2);
	ck_assert_uint_eq(byte, 0xab);

	/* all tables, nothing new: answered, nothing swapped */
	r = reload(&c, 10, "");
	ck_assert_uint_eq(r->reload->n_results, 2);
	ck_assert(!r->reload->results[0]->reloaded && !r->reload->results[1]->reloaded);
	ck_assert_str_eq(r->reload->results[0]->error, "");
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* A symlinked table: publishing a new version is a rename of the link. A
 * version with another row layout is refused and the old one keeps serving. */
START_TEST(reload_publish_and_refuse)
{
	static char *link, *v2, *bad, *tmp; /* static: reachable for LSan */
	char arg[300];
	const char *args[] = { "--table", arg, NULL };
	egt_daemon d;
	struct cl c;
	Response *r;
	uint64_t slot = 3;

	link = egt_path("cur");
	v2 = egt_path("v2");
	bad = egt_path("bad");
	tmp = egt_path("cur.tmp");
	make_tables();
	ck_assert_int_eq(symlink(tab_a.dir, link), 0);
	egt_make_table(v2, "a", tab_a.slots, tab_a.row_bytes, 1024, 99);
	egt_make_table(bad, "a", tab_a.slots, 32, 1024, 99);
	snprintf(arg, sizeof(arg), "a=%s", link);
	egt_daemon_start(&d, 0, args);
	cl_open(&c, d.addr);

	ck_assert_int_eq(symlink(v2, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
	r = reload(&c, 1, "a");
	ck_assert(r->reload->results[0]->reloaded);
	ck_assert_str_eq(r->reload->results[0]->path, v2);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, 2, "a", &slot, 1);
	{
		uint8_t *want = expected(v2, &slot, 1, NULL);
		ck_assert_int_eq(memcmp(r->blocks[0]->data.data, want, tab_a.row_bytes), 0);
		free(want);
	}
	engram__v1__response__free_unpacked(r, NULL);

	ck_assert_int_eq(symlink(bad, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
	r = reload(&c, 3, "a");
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->reload->results[0]->reloaded);
	ck_assert_msg(strstr(r->reload->results[0]->error, "dim differs"), "%s",
	              r->reload->results[0]->error);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, 4, "a", &slot, 1);
	ck_assert_uint_eq(r->blocks[0]->row_bytes, tab_a.row_bytes);
	engram__v1__response__free_unpacked(r, NULL);
	r = simple(&c, 5, ENGRAM__V1__REQUEST__BODY_STATS);
	ck_assert_uint_eq(r->stats->reloads, 1);
	ck_assert_uint_eq(r->stats->reload_failures, 1);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

static void wait_generation(const egt_daemon *d, uint64_t gen, uint8_t byte)
{
	uint8_t got = 0;

	for (int i = 0; i < 500; i++) {
		if (served_generation(d, &got) == gen) {
			ck_assert_uint_eq(got, byte);
			return;
		}
		usleep(10000);
	}
	ck_abort_msg("generation %llu never served", (unsigned long long)gen);
}

START_TEST(reload_on_sighup)
{
	egt_daemon d;

	start(&d, 0, NULL, NULL);
	patch(tab_a.dir, 5, tab_a.row_bytes, 0x42);
	kill(d.pid, SIGHUP);
	wait_generation(&d, 2, 0x42);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

START_TEST(reload_on_watch)
{
	egt_daemon d;

	start(&d, 0, "--watch", "1");
	patch(tab_a.dir, 5, tab_a.row_bytes, 0x17);
	wait_generation(&d, 2, 0x17);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- lifecycle ----------------------------------------------------------- */

START_TEST(sigterm_exits_zero)
{
	egt_daemon d;
	struct cl c;
	struct stat st;
	Response *r;

	start(&d, 0, NULL, NULL);
	cl_open(&c, d.addr); /* an idle open connection must not hold up the exit */
	r = simple(&c, 1, ENGRAM__V1__REQUEST__BODY_PING);
	engram__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	ck_assert_ptr_null(cl_recv(&c));
	cl_close(&c);
	ck_assert_int_ne(stat(d.sock, &st), 0); /* socket file removed */
	start(&d, 0, NULL, NULL);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGINT), 0);
}
END_TEST

START_TEST(bad_command_lines)
{
	char *bin = getenv("ENGRAMD");
	char cmd[1024];

	ck_assert_ptr_nonnull(bin);
	snprintf(cmd, sizeof(cmd), "%s --table a=/nonexistent --listen unix:/tmp/x 2>/dev/null", bin);
	ck_assert_int_ne(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s --bogus 2>/dev/null", bin);
	ck_assert_int_ne(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s --listen unix:/tmp/x 2>/dev/null", bin); /* no table */
	ck_assert_int_ne(system(cmd), 0);
}
END_TEST

/* The config file mirrors the flags: tables and limits from `key = value`. */
START_TEST(config_file)
{
	static char *conf;
	char arg[300];
	const char *args[] = { "--config", arg, NULL };
	uint64_t slots[3] = { 1, 2, 3 };
	egt_daemon d;
	struct cl c;
	FILE *f;

	make_tables();
	conf = egt_path("engramd.conf");
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "# test config\n\ntable = b=%s\nmax-rows = 2   # tiny\nthreads=1\n"
	        "log-level = debug\n", tab_b.dir);
	fclose(f);
	snprintf(arg, sizeof(arg), "%s", conf);
	egt_daemon_start(&d, 0, args);
	cl_open(&c, d.addr);
	expect_error(lookup(&c, 1, "b", slots, 3), ENGRAM__V1__STATUS__TOO_LARGE, "limit is 2");
	Response *r = lookup(&c, 2, "b", slots, 2);
	check_rows(r, 2, &tab_b, slots, 2);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *t = tcase_create("daemon");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, rows_exact_unix_and_tcp);
	tcase_add_test(t, pipelining_keeps_order);
	tcase_add_test(t, concurrent_clients);
	tcase_add_test(t, bad_frames);
	tcase_add_test(t, bad_lookups);
	tcase_add_test(t, slow_reader_backpressure);
	tcase_add_test(t, token_lookups);
	tcase_add_test(t, reload_by_request);
	tcase_add_test(t, reload_publish_and_refuse);
	tcase_add_test(t, reload_on_sighup);
	tcase_add_test(t, reload_on_watch);
	tcase_add_test(t, sigterm_exits_zero);
	tcase_add_test(t, bad_command_lines);
	tcase_add_test(t, config_file);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return egt_run_suite(suite());
}
