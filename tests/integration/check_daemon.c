/* check_daemon.c - the real engramd over real sockets, spoken to with
 * protobuf-c directly (not libengram): rows byte-exact against the fill
 * formula the tables were built from (egt_row_bytes), pipelining, concurrent
 * clients, every malformed input and limit (each followed by a check that
 * another client is still served), token lookups against slots from the
 * NumPy reference, reload by request, SIGHUP and --watch, and SIGTERM.
 * Request ids are above 2^32 (EGT_ID) so a 32-bit id anywhere fails. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <unistd.h>

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

/* A response already received in full, or NULL. */
static Response *cl_take(struct cl *c)
{
	uint64_t len;
	size_t h;
	Response *r;

	if (!egt_frame_parse(c->buf, c->len, &h, &len))
		return NULL;
	r = engram__v1__response__unpack(NULL, len, c->buf + h);
	ck_assert_msg(r != NULL, "response does not unpack");
	memmove(c->buf, c->buf + h + len, c->len - h - len);
	c->len -= h + len;
	return r;
}

/* Reads what has arrived, waiting up to 20 s (then fails the test); 0 at EOF. */
static int cl_fill(struct cl *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;

	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? 2 * c->cap : 1 << 20;
		c->buf = realloc(c->buf, c->cap);
	}
	ck_assert_msg(poll(&p, 1, 20000) == 1, "no response within 20 s");
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	ck_assert_msg(n > 0, "read: %s", strerror(errno));
	c->len += (size_t)n;
	return 1;
}

/* The next response, or NULL at EOF. */
static Response *cl_recv(struct cl *c)
{
	Response *r;

	while (!(r = cl_take(c)))
		if (!cl_fill(c))
			return NULL;
	return r;
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
	uint64_t seed;       /* rows are egt_row_bytes(seed, slot) */
	uint64_t generation; /* the one served: no test here patches a and b */
};

static struct table_ref tab_a, tab_b;

/* Two tables with different row sizes and chunk sizes (a short last chunk). */
static void make_tables(void)
{
	if (tab_a.dir)
		return; /* once per test process */
	tab_a = (struct table_ref){ "a", egt_path("a"), 50000, 64, 11, 1 };
	tab_b = (struct table_ref){ "b", egt_path("b"), 3001, 24, 22, 1 };
	egt_make_table(tab_a.dir, "a", tab_a.slots, tab_a.row_bytes, 4096, tab_a.seed);
	egt_make_table(tab_b.dir, "b", tab_b.slots, tab_b.row_bytes, 256, tab_b.seed);
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

/* Block b holds the rows of slots[0..n) of a table filled with seed. */
static void check_block(const Engram__V1__RowBlock *b, const char *table, uint64_t seed,
                        uint32_t row_bytes, uint64_t generation, const uint64_t *slots, size_t n)
{
	uint8_t *want = egt_rows(seed, slots, n, row_bytes);

	ck_assert_str_eq(b->table, table);
	ck_assert_uint_eq(b->count, n);
	ck_assert_uint_eq(b->row_bytes, row_bytes);
	ck_assert_uint_eq(b->generation, generation);
	ck_assert_uint_eq(b->data.len, n * row_bytes);
	ck_assert_msg(n == 0 || memcmp(b->data.data, want, n * row_bytes) == 0,
	              "rows of '%s' differ from the table's fill", table);
	free(want);
}

static void check_rows(const Response *r, uint64_t id, const struct table_ref *t,
                       const uint64_t *slots, size_t n)
{
	ck_assert_msg(r->status == ENGRAM__V1__STATUS__OK, "status %d: %s", r->status, r->error);
	ck_assert_uint_eq(r->id, id);
	ck_assert_uint_eq(r->n_blocks, 1);
	check_block(r->blocks[0], t->name, t->seed, t->row_bytes, t->generation, slots, n);
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
	r = simple(&c, EGT_ID(99), ENGRAM__V1__REQUEST__BODY_PING);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_PONG);
	ck_assert_uint_eq(r->pong->protocol_version, 1);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, EGT_ID(100), "a", slots, 3);
	check_rows(r, EGT_ID(100), &tab_a, slots, 3);
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
		Response *r = lookup(&c, EGT_ID(round + 1), t->name, slots, n);

		check_rows(r, EGT_ID(round + 1), t, slots, n);
		engram__v1__response__free_unpacked(r, NULL);
	}
	/* no slots: an empty block, not an error */
	Response *r = lookup(&c, EGT_ID(50), "b", slots, 0);
	check_rows(r, EGT_ID(50), &tab_b, slots, 0);
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
		req_lookup(&r, &lr, EGT_ID(1000 + i), "a", slots[i], counts[i]);
		cl_send(&c, &r);
	}
	for (int i = 0; i < N; i++) {
		Response *r = cl_recv(&c);

		ck_assert_ptr_nonnull(r);
		check_rows(r, EGT_ID(1000 + i), &tab_a, slots[i], counts[i]);
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
		Response *r = lookup(&c, EGT_ID(i), t->name, slots, n);

		check_rows(r, EGT_ID(i), t, slots, n);
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

/* A framing error: answered with id 0 (no request was read), then the
 * connection closes; other clients are still served. */
static void expect_closed_with(struct cl *c, const egt_daemon *d, Engram__V1__Status st,
                               const char *words)
{
	Response *r = cl_recv(c);

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, 0);
	expect_error(r, st, words);
	ck_assert_ptr_null(cl_recv(c));
	cl_close(c);
	assert_served(d);
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
	Response *r = simple(&c, EGT_ID(5), ENGRAM__V1__REQUEST__BODY_PING);
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
	expect_closed_with(&c, &d, ENGRAM__V1__STATUS__TOO_LARGE, "over the limit");

	/* a length that is no varint (11 continuation bytes) */
	cl_open(&c, d.addr);
	memset(b, 0xff, 11);
	send_all(c.fd, b, 11);
	expect_closed_with(&c, &d, ENGRAM__V1__STATUS__BAD_REQUEST, "varint");

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

/* A lookup of table a whose packed Request is exactly size bytes: slots of
 * one varint byte, and as many of two bytes as make up the rest. */
static size_t lookup_of_size(Request *r, Engram__V1__LookupRequest *lr, uint64_t id,
                             uint64_t *slots, size_t cap, size_t size)
{
	size_t n = 0, wide = 0;

	req_lookup(r, lr, id, "a", slots, 0);
	while (engram__v1__request__get_packed_size(r) < size) {
		ck_assert_uint_lt(n, cap);
		slots[n] = n % 100;
		req_lookup(r, lr, id, "a", slots, ++n);
	}
	/* one slot too many may overshoot by a byte (a longer length prefix) */
	if (engram__v1__request__get_packed_size(r) > size)
		req_lookup(r, lr, id, "a", slots, --n);
	while (engram__v1__request__get_packed_size(r) < size) {
		ck_assert_uint_lt(wide, n);
		slots[wide] = 300 + wide; /* two varint bytes */
		wide++;
	}
	ck_assert_uint_eq(engram__v1__request__get_packed_size(r), size);
	return n;
}

/* --max-frame is the largest frame taken: one of exactly that size is
 * answered, one a byte longer (sent in full) refused. */
START_TEST(frame_at_the_limit)
{
	static uint64_t slots[5000];
	egt_daemon d;
	struct cl c;
	Request r;
	Engram__V1__LookupRequest lr;
	size_t n;
	Response *resp;

	start(&d, 0, "--max-frame", "4096");
	cl_open(&c, d.addr);
	n = lookup_of_size(&r, &lr, EGT_ID(1), slots, 5000, 4096);
	cl_send(&c, &r);
	resp = cl_recv(&c);
	check_rows(resp, EGT_ID(1), &tab_a, slots, n);
	engram__v1__response__free_unpacked(resp, NULL);
	lookup_of_size(&r, &lr, EGT_ID(2), slots, 5000, 4097);
	cl_send(&c, &r);
	expect_closed_with(&c, &d, ENGRAM__V1__STATUS__TOO_LARGE,
	                   "frame of 4097 bytes is over the limit of 4096");
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* LookupRequest.fixed_slots: the same rows as slots, and the rows answer
 * says the daemon reads it; a slot outside the table, or slots given twice,
 * are refused and the connection goes on. A daemon whose --max-frame does
 * not hold --max-rows slots as words does not say it (clients keep
 * varints), and still reads words. */
/* Looks up slots of table a as varints (id) and as fixed_slots (id + 1),
 * checks both answers' rows, and returns whether they said
 * reads_fixed_slots (both alike). */
static int varints_then_words(struct cl *c, uint64_t id, uint64_t *slots, size_t n)
{
	Engram__V1__LookupRequest lr;
	Request r;
	Response *resp;
	int says[2];

	for (int k = 0; k < 2; k++) {
		req_lookup(&r, &lr, id + (uint64_t)k, "a", k ? NULL : slots, k ? 0 : n);
		if (k) {
			lr.fixed_slots = slots;
			lr.n_fixed_slots = n;
		}
		cl_send(c, &r);
		resp = cl_recv(c);
		check_rows(resp, id + (uint64_t)k, &tab_a, slots, n);
		says[k] = resp->reads_fixed_slots;
		engram__v1__response__free_unpacked(resp, NULL);
	}
	ck_assert_int_eq(says[0], says[1]);
	return says[0];
}

START_TEST(fixed_slots_lookup)
{
	uint64_t slots[500];
	Engram__V1__LookupRequest lr;
	egt_daemon d;
	struct cl c;
	Request r;

	start(&d, 0, NULL, NULL);
	cl_open(&c, d.addr);
	for (size_t i = 0; i < 500; i++)
		slots[i] = egt_rnd() % 50000;
	ck_assert_msg(varints_then_words(&c, EGT_ID(1), slots, 500),
	              "a rows answer does not say reads_fixed_slots");
	req_lookup(&r, &lr, EGT_ID(3), "a", NULL, 0);
	lr.fixed_slots = slots;
	lr.n_fixed_slots = 500;
	slots[7] = 50000;
	cl_send(&c, &r);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__OUT_OF_RANGE, "slots[7] = 50000");
	lr.slots = slots;
	lr.n_slots = 2;
	r.id = EGT_ID(4);
	cl_send(&c, &r);
	expect_error(cl_recv(&c), ENGRAM__V1__STATUS__BAD_REQUEST,
	             "both slots (2) and fixed_slots (500) are set");
	slots[7] = 1;
	ck_assert(varints_then_words(&c, EGT_ID(5), slots, 20)); /* and goes on */
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);

	start(&d, 0, "--max-frame", "1048576"); /* 4 Mi rows (the default) x 8 B do not fit */
	cl_open(&c, d.addr);
	ck_assert_msg(!varints_then_words(&c, EGT_ID(7), slots, 20),
	              "says reads_fixed_slots with --max-frame 1 MiB");
	cl_close(&c);
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
	expect_error(lookup(&c, EGT_ID(1), "nope", slots, 1), ENGRAM__V1__STATUS__NOT_FOUND, "'nope'");
	slots[0] = 0;
	slots[1] = 3000;
	slots[2] = 3001;
	slots[3] = UINT64_MAX;
	Response *r = lookup(&c, EGT_ID(2), "b", slots, 4);
	ck_assert_uint_eq(r->id, EGT_ID(2));
	expect_error(r, ENGRAM__V1__STATUS__OUT_OF_RANGE, "slots[2] = 3001");
	for (int i = 0; i < 1001; i++)
		slots[i] = (uint64_t)i;
	expect_error(lookup(&c, EGT_ID(3), "a", slots, 1001), ENGRAM__V1__STATUS__TOO_LARGE, "1001 slots");
	/* exactly the limit is fine, on the same connection */
	r = lookup(&c, EGT_ID(4), "a", slots, 1000);
	check_rows(r, EGT_ID(4), &tab_a, slots, 1000);
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
	expect_error(reload(&c, EGT_ID(6), "zzz"), ENGRAM__V1__STATUS__NOT_FOUND, "'zzz'");
	cl_close(&c);
	assert_served(&d);

	/* stats counted the errors */
	cl_open(&c, d.addr);
	r = simple(&c, EGT_ID(7), ENGRAM__V1__REQUEST__BODY_STATS);
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

/* Sends what the socket takes now from buf[*off..len); 0 when it took nothing. */
static int send_some(int fd, const uint8_t *buf, size_t *off, size_t len)
{
	ssize_t w = send(fd, buf + *off, len - *off, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (w < 0) {
		ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
		return 0;
	}
	*off += (size_t)w;
	return w > 0;
}

/* A client that sends but never reads: once --max-output bytes wait unsent
 * the daemon stops reading from it, so what it takes in and holds stays
 * bounded however much the client sends; it keeps serving others, and once
 * the client reads it answers every request, in order. */
START_TEST(slow_reader_backpressure)
{
	enum { N = 400, K = 4000 };
	static uint64_t slots[K];
	egt_daemon d;
	struct cl c;
	Request r;
	Engram__V1__LookupRequest lr;
	uint8_t *reqs;
	size_t one, total, off = 0, got = 0;
	long base_kb, grown_kb;

	start(&d, 0, "--max-output", "256K");
	for (int i = 0; i < K; i++)
		slots[i] = (uint64_t)(i * 7) % tab_a.slots;
	/* N requests of 256 KB answers each (100 MB in all), back to back */
	req_lookup(&r, &lr, EGT_ID(0), "a", slots, K);
	one = engram__v1__request__get_packed_size(&r);
	reqs = malloc(N * (one + 10));
	total = 0;
	for (int i = 0; i < N; i++) {
		r.id = EGT_ID(i); /* all of one varint length */
		total += egt_varint_put(reqs + total, one);
		total += engram__v1__request__pack(&r, reqs + total);
	}
	cl_open(&c, d.addr);
	base_kb = egt_proc_status_kb(d.pid, "RssAnon");
	/* send until the daemon has taken nothing for a second */
	while (off < total) {
		struct pollfd p = { .fd = c.fd, .events = POLLOUT };

		if (!send_some(c.fd, reqs, &off, total) && poll(&p, 1, 1000) == 0)
			break;
	}
	grown_kb = egt_proc_status_kb(d.pid, "RssAnon") - base_kb;
	ck_assert_msg(off < total / 2, "engramd took %zu of %zu request bytes from a client that "
	              "reads nothing (--max-output 256K)", off, total);
	ck_assert_msg(grown_kb < 32 * 1024, "engramd grew by %ld kB holding answers for a client "
	              "that reads nothing (--max-output 256K)", grown_kb);
	assert_served(&d);
	/* now read: the daemon takes the rest and answers all of it */
	while (got < N) {
		Response *resp = cl_take(&c);
		struct pollfd p = { .fd = c.fd, .events = POLLIN | (off < total ? POLLOUT : 0) };

		if (resp) {
			ck_assert_uint_eq(resp->id, EGT_ID(got));
			if (got % 37 == 0)
				check_rows(resp, EGT_ID(got), &tab_a, slots, K);
			engram__v1__response__free_unpacked(resp, NULL);
			got++;
			continue;
		}
		ck_assert_msg(poll(&p, 1, 20000) > 0, "stalled after %zu answers", got);
		if (p.revents & POLLOUT)
			send_some(c.fd, reqs, &off, total);
		if (p.revents & POLLIN)
			ck_assert_msg(cl_fill(&c), "EOF after %zu answers", got);
	}
	free(reqs);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- tokens -------------------------------------------------------------- */

/* The slots below were computed by the NumPy reference, independent of
 * storage/hash.c: tests/python/engram_ref.py slots(spec, toks, seq_lens,
 * context), and are written down here as the daemon's expected answers. */
static const char xxh3_spec[] =          /* 4 slots per token; 408 slots */
	"{\"kind\":\"xxh3\",\"max_ngram\":3,\"heads\":2,\"pad\":0,\"seed\":5,"
	"\"rows\":[[97,101],[103,107]]}";
static const char bigram_spec[] =        /* 1 slot per token; 31 slots */
	"{\"kind\":\"engram-v1\",\"max_ngram\":2,\"heads\":1,\"pad\":0,"
	"\"multipliers\":[7,13],\"moduli\":[[31]]}";
static int64_t toks[8] = { 5, 9, 2, 2, 77, 1000000, 3, 4 };
/* xxh3_spec, toks as one sequence: token t's slots at 4t..4t+3 */
static const uint64_t xxh3_one[32] = {
	44, 149, 252, 397, 60, 145, 296, 407, 15, 110, 203, 378, 64, 125, 200, 357,
	83, 137, 266, 383, 94, 133, 219, 311, 51, 188, 281, 302, 61, 160, 287, 317,
};
/* xxh3_spec, toks as sequences of 3 and 5 with context 1 and 2 */
static const uint64_t xxh3_seqs[20] = {
	60, 145, 296, 407, 15, 110, 203, 378, 94, 133, 219, 311, 51, 188, 281, 302,
	61, 160, 287, 317,
};
/* bigram_spec, the first 7 of toks as one sequence */
static const uint64_t bigram_seven[7] = { 4, 2, 30, 20, 17, 25, 16 };

static const struct hashed {
	const char *name, *spec;
	uint32_t row_bytes;
	uint64_t seed;
} hashed[3] = {
	{ "h1", xxh3_spec, 16, 9 }, { "h2", xxh3_spec, 40, 10 }, { "h3", bigram_spec, 8, 12 },
};

/* engramd serving h1, h2 and h3, with one more flag and value when given. */
static void start_hashed(egt_daemon *d, const char *flag, const char *value)
{
	static char arg[3][300]; /* static: egt_path strings stay reachable (LSan) */
	const char *args[9];
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		char *dir = egt_path(hashed[i].name);

		egt_make_spec_table(dir, hashed[i].name, hashed[i].spec, hashed[i].row_bytes, 64,
		                    hashed[i].seed);
		snprintf(arg[i], sizeof(arg[i]), "%s=%s", hashed[i].name, dir);
		args[n++] = "--table";
		args[n++] = arg[i];
	}
	if (flag) {
		args[n++] = flag;
		args[n++] = value;
	}
	args[n] = NULL;
	egt_daemon_start(d, 0, args);
}

/* Block i of r holds the rows of hashed[h] for slots[0..n). */
static void check_hashed(const Response *r, size_t i, int h, const uint64_t *slots, size_t n)
{
	ck_assert_uint_gt(r->n_blocks, i);
	check_block(r->blocks[i], hashed[h].name, hashed[h].seed, hashed[h].row_bytes, 1, slots, n);
}

static Response *tokens(struct cl *c, uint64_t id, char **names, size_t nt, int64_t *tk,
                        size_t n, uint32_t *seq, size_t nseq, uint32_t *ctx, size_t nctx)
{
	Engram__V1__TokensRequest tr = ENGRAM__V1__TOKENS_REQUEST__INIT;
	Request rq = ENGRAM__V1__REQUEST__INIT;

	tr.tables = names;
	tr.n_tables = nt;
	tr.tokens = tk;
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

static void expect_tokens_ok(const Response *r, uint64_t id, uint64_t ntok, uint32_t rpt,
                             size_t nblocks)
{
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->status == ENGRAM__V1__STATUS__OK, "status %d: %s", r->status, r->error);
	ck_assert_uint_eq(r->id, id);
	ck_assert_uint_eq(r->tokens, ntok);
	ck_assert_uint_eq(r->rows_per_token, rpt);
	ck_assert_uint_eq(r->n_blocks, nblocks);
}

START_TEST(token_lookups)
{
	uint32_t seq[] = { 3, 5 }, ctx[] = { 1, 2 };
	char *names[] = { (char *)"h1", (char *)"h2" };
	egt_daemon d;
	struct cl c;
	Response *r;

	start_hashed(&d, NULL, NULL);
	cl_open(&c, d.addr);
	r = tokens(&c, EGT_ID(1), names, 2, toks, 8, seq, 2, ctx, 2);
	expect_tokens_ok(r, EGT_ID(1), 5, 4, 2);
	check_hashed(r, 0, 0, xxh3_seqs, 20);
	check_hashed(r, 1, 1, xxh3_seqs, 20);
	engram__v1__response__free_unpacked(r, NULL);

	/* no seq_lens: one sequence of every token */
	r = tokens(&c, EGT_ID(2), names, 1, toks, 8, NULL, 0, NULL, 0);
	expect_tokens_ok(r, EGT_ID(2), 8, 4, 1);
	check_hashed(r, 0, 0, xxh3_one, 32);
	engram__v1__response__free_unpacked(r, NULL);

	expect_error(tokens(&c, EGT_ID(3), names, 1, toks, 8, (uint32_t[]){ 3, 4 }, 2, NULL, 0),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "add up to 7 but 8 tokens");
	expect_error(tokens(&c, EGT_ID(4), names, 1, toks, 8, seq, 2, (uint32_t[]){ 4, 0 }, 2),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "context[0] = 4 exceeds seq_lens[0] = 3");
	expect_error(tokens(&c, EGT_ID(5), names, 1, toks, 8, seq, 2, ctx, 1),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "context has 1 entries");
	expect_error(tokens(&c, EGT_ID(6), names, 0, toks, 8, NULL, 0, NULL, 0),
	             ENGRAM__V1__STATUS__BAD_REQUEST, "names no table");
	expect_error(tokens(&c, EGT_ID(7), (char *[]){ (char *)"h1", (char *)"x" }, 2, toks, 8,
	                    NULL, 0, NULL, 0),
	             ENGRAM__V1__STATUS__NOT_FOUND, "tables[1]");
	r = simple(&c, EGT_ID(8), ENGRAM__V1__REQUEST__BODY_INFO);
	ck_assert_uint_eq(r->info->n_tables, 3);
	ck_assert_str_eq(r->info->tables[1]->hash_kind, "xxh3");
	ck_assert_uint_eq(r->info->tables[1]->rows_per_token, 4);
	ck_assert_uint_eq(r->info->tables[1]->row_bytes, 40);
	ck_assert_str_eq(r->info->tables[2]->hash_kind, "engram-v1");
	ck_assert_uint_eq(r->info->tables[2]->rows_per_token, 1);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* --max-rows bounds the rows of a token request over all its tables
 * (tokens x the sum of their rows per token): 35 rows are answered, 36 or
 * 40 (20 a table) refused. */
START_TEST(token_max_rows)
{
	char *h1_h3[] = { (char *)"h1", (char *)"h3" };
	char *all[] = { (char *)"h1", (char *)"h2", (char *)"h3" };
	egt_daemon d;
	struct cl c;
	Response *r;

	start_hashed(&d, "--max-rows", "35");
	cl_open(&c, d.addr);
	r = tokens(&c, EGT_ID(1), h1_h3, 2, toks, 7, NULL, 0, NULL, 0); /* 7 x (4 + 1) */
	expect_tokens_ok(r, EGT_ID(1), 7, 4, 2);
	check_hashed(r, 0, 0, xxh3_one, 28);
	check_hashed(r, 1, 2, bigram_seven, 7);
	engram__v1__response__free_unpacked(r, NULL);
	expect_error(tokens(&c, EGT_ID(2), all, 3, toks, 4, NULL, 0, NULL, 0), /* 4 x 9 */
	             ENGRAM__V1__STATUS__TOO_LARGE, "4 tokens over 3 tables need more than 35 rows");
	expect_error(tokens(&c, EGT_ID(3), all, 2, toks, 5, NULL, 0, NULL, 0), /* 5 x 8 */
	             ENGRAM__V1__STATUS__TOO_LARGE, "--max-rows");
	r = tokens(&c, EGT_ID(4), all, 3, toks, 3, NULL, 0, NULL, 0); /* 3 x 9 */
	expect_tokens_ok(r, EGT_ID(4), 3, 4, 3);
	check_hashed(r, 0, 0, xxh3_one, 12);
	check_hashed(r, 1, 1, xxh3_one, 12);
	check_hashed(r, 2, 2, bigram_seven, 3);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&c);
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
	r = lookup(&c, EGT_ID(1), "a", &slot, 1);
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
	r = reload(&c, EGT_ID(9), "a");
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
	r = reload(&c, EGT_ID(10), "");
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
	r = reload(&c, EGT_ID(1), "a");
	ck_assert(r->reload->results[0]->reloaded);
	ck_assert_str_eq(r->reload->results[0]->path, v2);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, EGT_ID(2), "a", &slot, 1);
	ck_assert_int_eq(r->status, 0);
	check_block(r->blocks[0], "a", 99, tab_a.row_bytes, 1, &slot, 1); /* v2's own generation */
	engram__v1__response__free_unpacked(r, NULL);

	ck_assert_int_eq(symlink(bad, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
	r = reload(&c, EGT_ID(3), "a");
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->reload->results[0]->reloaded);
	ck_assert_msg(strstr(r->reload->results[0]->error, "dim differs"), "%s",
	              r->reload->results[0]->error);
	engram__v1__response__free_unpacked(r, NULL);
	r = lookup(&c, EGT_ID(4), "a", &slot, 1);
	ck_assert_uint_eq(r->blocks[0]->row_bytes, tab_a.row_bytes);
	engram__v1__response__free_unpacked(r, NULL);
	r = simple(&c, EGT_ID(5), ENGRAM__V1__REQUEST__BODY_STATS);
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
	r = simple(&c, EGT_ID(1), ENGRAM__V1__REQUEST__BODY_PING);
	engram__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	ck_assert_ptr_null(cl_recv(&c));
	cl_close(&c);
	ck_assert_int_ne(stat(d.sock, &st), 0); /* socket file removed */
	start(&d, 0, NULL, NULL);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGINT), 0);
}
END_TEST

/* The harness starts a daemon with descriptors 0 - 2 only: one the test
 * holds without close-on-exec is not the daemon's (it would keep a file
 * open under the daemon, as a table file once did in check_cold). */
START_TEST(daemon_inherits_no_test_descriptor)
{
	char *held = egt_path("held");
	int fd = open(held, O_RDWR | O_CREAT, 0600);
	egt_daemon d;

	ck_assert_int_ge(fd, 0);
	start(&d, 0, NULL, NULL);
	ck_assert_int_eq(egt_fd_count_on(d.pid, held), 0);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	close(fd);
	free(held);
}
END_TEST

/* The threads of pid whose names (/proc/PID/task/TID/comm) begin with
 * prefix: how many (*count) and the nanoseconds they have run on a CPU
 * (the first field of .../schedstat), summed. */
static uint64_t threads_cpu_ns(pid_t pid, const char *prefix, int *count)
{
	char dir[64], path[384], line[128];
	struct dirent *e;
	uint64_t ns = 0;
	DIR *d;

	*count = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		unsigned long long run;
		FILE *f;
		int named;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		if (!(f = fopen(path, "r")))
			continue; /* the thread ended */
		named = fgets(line, sizeof(line), f) && strncmp(line, prefix, strlen(prefix)) == 0;
		fclose(f);
		if (!named)
			continue;
		++*count;
		snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%llu", &run) == 1)
				ns += run;
			fclose(f);
		}
	}
	closedir(d);
	return ns;
}

/* Whether a thread of pid is named name. */
static int has_thread(pid_t pid, const char *name)
{
	int n;

	threads_cpu_ns(pid, name, &n);
	return n > 0;
}

/* The daemon's threads say what they are (top -H, perf, gdb). */
START_TEST(threads_are_named)
{
	const char *names[] = { "engramd-loop0", "engramd-urgent", "engramd-bulk" };
	egt_daemon d;

	start(&d, 0, NULL, NULL);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(has_thread(d.pid, names[i]), "no thread named %s", names[i]);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Milliseconds the event loops of pid run on a CPU over the next 300 ms. */
static double loops_busy_ms(pid_t pid)
{
	int n;
	uint64_t t0 = threads_cpu_ns(pid, "engramd-loop", &n);

	ck_assert_int_gt(n, 0);
	usleep(300 * 1000);
	return (double)(threads_cpu_ns(pid, "engramd-loop", &n) - t0) / 1e6;
}

/* --busy-poll: after a small request's answer the loops poll on (a core
 * spins) for the window, then sleep again; without it, or after a larger
 * request's answer (over --urgent-rows), they sleep at once. */
START_TEST(busy_poll_spins_for_its_window_only)
{
	egt_daemon d;
	struct cl c;
	Response *r;
	uint64_t slot = 7;
	double ms;

	start(&d, 0, NULL, NULL);
	assert_served(&d);
	ms = loops_busy_ms(d.pid);
	ck_assert_msg(ms < 30, "the loops ran %.1f ms of 300 after a request without --busy-poll",
	              ms);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);

	start(&d, 0, "--busy-poll=1000000", NULL); /* one second */
	assert_served(&d);
	ms = loops_busy_ms(d.pid);
	ck_assert_msg(ms > 60, "the loops ran only %.1f ms of 300 inside the window", ms);
	usleep(1000 * 1000); /* the window has passed */
	ms = loops_busy_ms(d.pid);
	ck_assert_msg(ms < 30, "the loops ran %.1f ms of 300 after the window", ms);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);

	start(&d, 0, "--busy-poll=1000000", "--urgent-rows=2");
	assert_served(&d); /* a ping and a 3-row lookup: not small here */
	ms = loops_busy_ms(d.pid);
	ck_assert_msg(ms < 30, "the loops ran %.1f ms of 300 after a large request", ms);
	cl_open(&c, d.addr);
	r = lookup(&c, EGT_ID(1), "a", &slot, 1);
	check_rows(r, EGT_ID(1), &tab_a, &slot, 1);
	engram__v1__response__free_unpacked(r, NULL);
	ms = loops_busy_ms(d.pid);
	ck_assert_msg(ms > 60, "the loops ran only %.1f ms of 300 after a small request", ms);
	cl_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Arms engramd-faults' frame hook once more (SIGUSR2) and waits until it
 * has taken it (the log line count reaches armed). */
static void frames_fail(const egt_daemon *d, size_t armed)
{
	ck_assert_int_eq(kill(d->pid, SIGUSR2), 0);
	for (int i = 0; i < 500 && egt_count_lines(d->log, "more response frames find no memory") <
	                                 armed; i++)
		usleep(10 * 1000);
	ck_assert_uint_eq(egt_count_lines(d->log, "more response frames find no memory"), armed);
}

/* No memory for an answer fails that answer alone: an INTERNAL error in its
 * place, or, when not even that can be framed, its connection closes; the
 * daemon serves on. */
START_TEST(no_memory_for_an_answer_fails_it_alone)
{
	egt_daemon d;
	struct cl c, other;
	Response *r;
	uint8_t byte;

	setenv("ENGRAMD", getenv("ENGRAMD_FAULTS"), 1);
	setenv("ENGRAMD_FAULT_FRAME_NOMEM", "1", 1);
	start(&d, 0, NULL, NULL);
	cl_open(&c, d.addr);
	cl_open(&other, d.addr);
	frames_fail(&d, 1);
	r = simple(&c, EGT_ID(1), ENGRAM__V1__REQUEST__BODY_STATS);
	ck_assert_msg(r != NULL, "the connection closed instead of answering INTERNAL");
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__INTERNAL);
	ck_assert_ptr_nonnull(strstr(r->error, "out of memory framing the answer"));
	engram__v1__response__free_unpacked(r, NULL);
	r = simple(&c, EGT_ID(2), ENGRAM__V1__REQUEST__BODY_STATS); /* the connection serves on */
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__OK);
	engram__v1__response__free_unpacked(r, NULL);

	frames_fail(&d, 2);
	frames_fail(&d, 3); /* the answer and the error in its place */
	r = simple(&c, EGT_ID(3), ENGRAM__V1__REQUEST__BODY_PING);
	ck_assert_ptr_null(r); /* closed */
	ck_assert_int_eq(recv(c.fd, &byte, 1, 0), 0);
	ck_assert_uint_eq(egt_count_lines(d.log, "no memory for an answer; closing the connection"), 1);
	r = simple(&other, EGT_ID(4), ENGRAM__V1__REQUEST__BODY_PING);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->body_case, ENGRAM__V1__RESPONSE__BODY_PONG);
	engram__v1__response__free_unpacked(r, NULL);
	cl_close(&other);
	cl_close(&c);
	assert_served(&d);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Shutting down waits for requests in flight; a second SIGTERM does not.
 * engramd-faults' wedge holds worker loop 0 for 20 s on SIGUSR1. */
START_TEST(second_sigterm_stops_at_once)
{
	egt_daemon d;
	double t0;

	setenv("ENGRAMD", getenv("ENGRAMD_FAULTS"), 1);
	setenv("ENGRAMD_FAULT_WEDGE", "0:20000", 1);
	start(&d, 0, NULL, NULL);
	ck_assert_int_eq(kill(d.pid, SIGUSR1), 0);
	usleep(200 * 1000);
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	usleep(700 * 1000);
	ck_assert_int_eq(waitpid(d.pid, NULL, WNOHANG), 0); /* still finishing */
	ck_assert_int_eq(egt_count_lines(d.log, "a second SIGTERM or SIGINT stops at once"), 1);
	t0 = egt_now();
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), -1); /* the signal's default action */
	ck_assert_double_lt(egt_now() - t0, 5.0);
}
END_TEST

/* The exit status of $ENGRAMD with args (stderr to /dev/null). */
static int engramd_status(const char *args)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", getenv("ENGRAMD"), args);
	return egt_exit_status(cmd);
}

/* Usage errors exit 2, a table that cannot be served 1. */
START_TEST(bad_command_lines)
{
	static char *sock; /* static: reachable for LSan */
	char args[600];

	ck_assert_ptr_nonnull(getenv("ENGRAMD"));
	sock = egt_path("x.sock");
	snprintf(args, sizeof(args), "--table a=/nonexistent --listen unix:%s", sock);
	ck_assert_int_eq(engramd_status(args), 1);
	ck_assert_int_eq(engramd_status("--bogus"), 2);
	/* no table is not an error: see tests/python/test_install.py */
	make_tables();
	snprintf(args, sizeof(args), "--table a=%s --listen unix:%s --max-rows lots", tab_a.dir, sock);
	ck_assert_int_eq(engramd_status(args), 2);
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
	expect_error(lookup(&c, EGT_ID(1), "b", slots, 3), ENGRAM__V1__STATUS__TOO_LARGE, "limit is 2");
	Response *r = lookup(&c, EGT_ID(2), "b", slots, 2);
	check_rows(r, EGT_ID(2), &tab_b, slots, 2);
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
	tcase_add_test(t, frame_at_the_limit);
	tcase_add_test(t, bad_lookups);
	tcase_add_test(t, fixed_slots_lookup);
	tcase_add_test(t, slow_reader_backpressure);
	tcase_add_test(t, token_lookups);
	tcase_add_test(t, token_max_rows);
	tcase_add_test(t, reload_by_request);
	tcase_add_test(t, reload_publish_and_refuse);
	tcase_add_test(t, reload_on_sighup);
	tcase_add_test(t, reload_on_watch);
	tcase_add_test(t, sigterm_exits_zero);
	tcase_add_test(t, daemon_inherits_no_test_descriptor);
	tcase_add_test(t, threads_are_named);
	tcase_add_test(t, busy_poll_spins_for_its_window_only);
	tcase_add_test(t, no_memory_for_an_answer_fails_it_alone);
	tcase_add_test(t, second_sigterm_stops_at_once);
	tcase_add_test(t, bad_command_lines);
	tcase_add_test(t, config_file);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return egt_run_suite(suite());
}
