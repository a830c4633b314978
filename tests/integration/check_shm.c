/* check_shm.c - the same-host fast path against the real engramd: a memfd
 * passed with SCM_RIGHTS, rows gathered into it (lookups and tokens,
 * byte-exact against the tables' fill and the engram-v1 formula of
 * egtest's reference.c), bounds, refusals (TCP too), reconnects. Request ids
 * start above 2^32. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "egtest.h"
#include "egc_int.h"
#include "engram.h"
#include "engram.pb-c.h"

#define ROW 160
#define SLOTS 20000
#define CHUNK 1024
#define SHM (8u << 20)

static char *table_dir;
static egt_daemon daemon_;

/* engramd serving table a (rows egt_row_bytes(7, slot)); with --max-shm
 * max_shm when it is not NULL, and on TCP too when with_tcp. */
static void start(const char *max_shm, int with_tcp)
{
	char arg[4096];
	const char *args[] = { "--table", arg, max_shm ? "--max-shm" : NULL, max_shm, NULL };

	table_dir = egt_path("ta");
	egt_make_table(table_dir, "a", SLOTS, ROW, CHUNK, 7);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	egt_daemon_start(&daemon_, with_tcp, args);
}

/* A client whose request ids start above 2^32 (set in its internal state). */
static eg_client *dial(const char *addr)
{
	eg_client *c = NULL;
	int err = eg_client_connect(addr, 5000, &c);

	ck_assert_msg(err == 0, "connect %s: %s", addr, eg_client_strerror(err));
	c->next_id = EGT_ID(1);
	return c;
}

static void check_shm_lookup(eg_client *c, void *base, size_t n, uint64_t offset)
{
	uint64_t *slots = malloc((n + 1) * sizeof(*slots));
	unsigned char *want;
	const void *data = NULL;
	eg_client_rows r;
	int err;

	for (size_t i = 0; i < n; i++)
		slots[i] = egt_rnd() % SLOTS;
	want = egt_rows(7, slots, n, ROW);
	memset((char *)base + offset, 0xee, n * ROW);
	err = eg_client_lookup_shm(c, "a", slots, n, offset, &r, &data);
	ck_assert_msg(err == 0, "lookup_shm of %zu at %llu: %s", n, (unsigned long long)offset,
	              eg_client_errmsg(c));
	ck_assert_ptr_eq(data, (char *)base + offset);
	ck_assert_uint_eq(r.count, n);
	ck_assert_uint_eq(r.row_bytes, ROW);
	ck_assert_uint_eq(r.generation, 1);
	ck_assert(memcmp(data, want, n * ROW) == 0);
	free(slots);
	free(want);
}

START_TEST(lookup_through_shm)
{
	eg_client *c;
	void *base = NULL, *other;
	unsigned char buf[ROW], want[ROW];
	uint64_t slot = 5, t1, t2, s1[3] = { 1, 2, 3 }, s2[2] = { 19999, 0 };
	eg_client_rows r[1];
	const void *d[1];

	start(NULL, 0);
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, SHM, &base) == 0, "%s", eg_client_errmsg(c));
	ck_assert_ptr_nonnull(base);
	check_shm_lookup(c, base, 1, 0);
	check_shm_lookup(c, base, 1000, 4096);
	check_shm_lookup(c, base, 20000, 100); /* gathered on the thread pool */
	check_shm_lookup(c, base, 3, SHM - 3 * ROW); /* the very end */
	check_shm_lookup(c, base, 0, SHM);
	/* pipelined, into separate ranges */
	ck_assert_int_eq(eg_client_send_lookup_shm(c, "a", s1, 3, 0, &t1), 0);
	ck_assert_int_eq(eg_client_send_lookup_shm(c, "a", s2, 2, 1 << 20, &t2), 0);
	ck_assert_int_eq(eg_client_wait_shm(c, t2, r, d, 1), 0);
	ck_assert_ptr_eq(d[0], (char *)base + (1 << 20));
	egt_row_bytes(7, 19999, ROW, want);
	ck_assert(memcmp(d[0], want, ROW) == 0);
	ck_assert_int_eq(eg_client_wait_shm(c, t1, r, d, 1), 0);
	egt_row_bytes(7, 3, ROW, want);
	ck_assert(memcmp((const char *)d[0] + 2 * ROW, want, ROW) == 0);
	/* plain lookups still work on the same connection */
	ck_assert_int_eq(eg_client_lookup(c, "a", &slot, 1, buf, ROW, r), 0);
	egt_row_bytes(7, 5, ROW, want);
	ck_assert(memcmp(buf, want, ROW) == 0);
	/* bounds: one byte past the end, an offset past it, overflow */
	ck_assert_int_eq(eg_client_lookup_shm(c, "a", s1, 3, SHM - 3 * ROW + 1, r, d),
	                 EGC_EOUTOFRANGE);
	ck_assert_ptr_nonnull(strstr(eg_client_errmsg(c), "shared buffer"));
	ck_assert_int_eq(eg_client_lookup_shm(c, "a", s1, 1, SHM + 1, r, d), EGC_EOUTOFRANGE);
	ck_assert_int_eq(eg_client_lookup_shm(c, "a", s1, 1, UINT64_MAX - 10, r, d),
	                 EGC_EOUTOFRANGE);
	/* a second attach on the same client is refused locally */
	ck_assert_int_eq(eg_client_attach_shm(c, SHM, &other), -EBUSY);
	ck_assert_ptr_null(other);
	check_shm_lookup(c, base, 77, 12345);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* ---- tokens ---------------------------------------------------------------- */

START_TEST(tokens_through_shm)
{
	char a1[4096], a2[4096];
	const char *args[] = { "--table", a1, "--table", a2, NULL };
	const char *tables[2] = { "h1", "h2" };
	eg_client *c;
	enum { NTOK = 3000 };
	int64_t *tokens = malloc(NTOK * sizeof(*tokens));
	uint32_t lens[3] = { 1000, 1500, 500 }, ctx[3] = { 10, 0, 499 };
	size_t nrows, i;
	uint64_t *slots = malloc(NTOK * EGT_HASH_RPT * sizeof(*slots)), ticket, off = 777;
	unsigned char *want1, *want2;
	eg_client_rows blocks[2];
	const void *data[2];
	void *base;
	char *d1 = egt_path("h1"), *d2 = egt_path("h2");

	for (i = 0; i < NTOK; i++)
		tokens[i] = (int64_t)(egt_rnd() % 100000);
	egt_make_hash_table(d1, "h1", 64, 11, NULL);
	egt_make_hash_table(d2, "h2", 32, 12, NULL);
	snprintf(a1, sizeof(a1), "h1=%s", d1);
	snprintf(a2, sizeof(a2), "h2=%s", d2);
	egt_daemon_start(&daemon_, 0, args);
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, SHM, &base) == 0, "%s", eg_client_errmsg(c));
	nrows = egt_hash_spec_slots(tokens, lens, ctx, 3, slots);
	ck_assert_uint_eq(nrows, (990 + 1500 + 1) * EGT_HASH_RPT);
	want1 = egt_rows(11, slots, nrows, 64);
	want2 = egt_rows(12, slots, nrows, 32);
	ck_assert_msg(eg_client_send_tokens_shm(c, tables, 2, tokens, NTOK, lens, ctx, 3, off,
	                                        &ticket) == 0, "%s", eg_client_errmsg(c));
	ck_assert_msg(eg_client_wait_shm(c, ticket, blocks, data, 2) == 0, "%s", eg_client_errmsg(c));
	ck_assert_uint_eq(blocks[0].count, nrows);
	ck_assert_uint_eq(blocks[0].row_bytes, 64);
	ck_assert_uint_eq(blocks[0].generation, 1);
	ck_assert_uint_eq(blocks[1].count, nrows);
	ck_assert_uint_eq(blocks[1].row_bytes, 32);
	/* back to back from the offset */
	ck_assert_ptr_eq(data[0], (char *)base + off);
	ck_assert_ptr_eq(data[1], (char *)base + off + nrows * 64);
	ck_assert(memcmp(data[0], want1, nrows * 64) == 0);
	ck_assert(memcmp(data[1], want2, nrows * 32) == 0);
	/* too little room for both blocks */
	ck_assert_int_eq(eg_client_send_tokens_shm(c, tables, 2, tokens, NTOK, lens, ctx, 3,
	                                           SHM - nrows * 64, &ticket), 0);
	ck_assert_int_eq(eg_client_wait_shm(c, ticket, blocks, data, 2), EGC_EOUTOFRANGE);
	free(slots);
	free(want1);
	free(want2);
	free(tokens);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* ---- refusals, by hand on a raw socket ------------------------------------- */

static int raw_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(daemon_.sock), sizeof(sun.sun_path));
	memcpy(sun.sun_path, daemon_.sock, strlen(daemon_.sock) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* A raw connection to the daemon's TCP listener (127.0.0.1:PORT). */
static int raw_connect_tcp(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const char *port = strrchr(daemon_.tcp_addr, ':');
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_ptr_nonnull(port);
	ck_assert_int_ge(fd, 0);
	sin.sin_port = htons((uint16_t)atoi(port + 1));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Sends req, with pass_fd as SCM_RIGHTS when >= 0. */
static void raw_send(int fd, Engram__V1__Request *req, int pass_fd)
{
	unsigned char buf[4096];
	size_t body = engram__v1__request__get_packed_size(req), hl;
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	ck_assert_uint_lt(body, sizeof(buf) - 10);
	hl = egt_varint_put(buf, body);
	engram__v1__request__pack(req, buf + hl);
	iov.iov_base = buf;
	iov.iov_len = hl + body;
	if (pass_fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	ck_assert_int_eq(sendmsg(fd, &msg, MSG_NOSIGNAL), (ssize_t)(hl + body));
}

static Engram__V1__Response *raw_recv(int fd)
{
	static unsigned char buf[1 << 16];
	size_t len = 0, hl;
	uint64_t body;
	Engram__V1__Response *r;

	for (;;) {
		ssize_t n;

		if (egt_frame_parse(buf, len, &hl, &body))
			break;
		n = read(fd, buf + len, sizeof(buf) - len);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
	}
	ck_assert_uint_eq(len, hl + body); /* one answer per request */
	r = engram__v1__response__unpack(NULL, body, buf + hl);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* Attaches pass_fd on fd; the status, its error text in err, and (when
 * reads_slots is not NULL) whether the answer says the daemon reads
 * LookupRequest.shm_slots. */
static int attach_raw_answer(int fd, uint64_t size, int pass_fd, char *err, size_t errlen,
                             int *reads_slots)
{
	Engram__V1__AttachShmRequest a = ENGRAM__V1__ATTACH_SHM_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__Response *r;
	int st;

	a.size = size;
	req.id = 42;
	req.body_case = ENGRAM__V1__REQUEST__BODY_ATTACH_SHM;
	req.attach_shm = &a;
	raw_send(fd, &req, pass_fd);
	r = raw_recv(fd);
	ck_assert_uint_eq(r->id, 42);
	st = (int)r->status;
	snprintf(err, errlen, "%s", r->error ? r->error : "");
	if (reads_slots)
		*reads_slots = r->body_case == ENGRAM__V1__RESPONSE__BODY_ATTACH_SHM &&
		               r->attach_shm->reads_slots;
	engram__v1__response__free_unpacked(r, NULL);
	return st;
}

static int attach_raw(int fd, uint64_t size, int pass_fd, char *err, size_t errlen)
{
	return attach_raw_answer(fd, size, pass_fd, err, errlen, NULL);
}

static int ping_raw(int fd)
{
	Engram__V1__PingRequest p = ENGRAM__V1__PING_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__Response *r;
	int st;

	req.id = 7;
	req.body_case = ENGRAM__V1__REQUEST__BODY_PING;
	req.ping = &p;
	raw_send(fd, &req, -1);
	r = raw_recv(fd);
	st = r->id == 7 ? (int)r->status : -1;
	engram__v1__response__free_unpacked(r, NULL);
	return st;
}

/* One attach on a fresh connection; the connection stays usable after. */
static void expect_refused(uint64_t size, int pass_fd, int status, const char *words)
{
	char err[512];
	int fd = raw_connect();

	ck_assert_int_eq(attach_raw(fd, size, pass_fd, err, sizeof(err)), status);
	ck_assert_msg(strstr(err, words) != NULL, "'%s' lacks '%s'", err, words);
	ck_assert_int_eq(ping_raw(fd), 0);
	close(fd);
}

static int memfd(size_t size, int seal)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	if (seal)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

START_TEST(refusals)
{
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__Response *r;
	uint64_t slot = 3;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC), sp[2], fd, good;
	char err[512];
	eg_client *c;
	void *base;

	start("16M", 1);
	ck_assert_int_ge(devnull, 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	/* a shm lookup without a buffer */
	fd = raw_connect();
	lr.table = (char *)"a";
	lr.n_slots = 1;
	lr.slots = &slot;
	lr.shm = 1;
	req.id = 9;
	req.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	req.lookup = &lr;
	raw_send(fd, &req, -1);
	r = raw_recv(fd);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(r->error, "attach_shm"));
	engram__v1__response__free_unpacked(r, NULL);
	/* an attach without an fd; then (not first) with one */
	ck_assert_int_eq(attach_raw(fd, 4096, -1, err, sizeof(err)),
	                 ENGRAM__V1__STATUS__BAD_REQUEST);
	good = memfd(4096, 1);
	ck_assert_int_eq(attach_raw(fd, 4096, good, err, sizeof(err)),
	                 ENGRAM__V1__STATUS__BAD_REQUEST);
	ck_assert_int_eq(ping_raw(fd), 0);
	close(fd);
	expect_refused(4096, -1, ENGRAM__V1__STATUS__BAD_REQUEST, "SCM_RIGHTS");
	expect_refused(4096, devnull, ENGRAM__V1__STATUS__BAD_REQUEST, "not a memfd");
	expect_refused(4096, sp[0], ENGRAM__V1__STATUS__BAD_REQUEST, "not a memfd");
	fd = memfd(4096, 0);
	expect_refused(4096, fd, ENGRAM__V1__STATUS__BAD_REQUEST, "F_SEAL_SHRINK");
	close(fd);
	expect_refused(8192, good, ENGRAM__V1__STATUS__BAD_REQUEST, "fewer than");
	expect_refused(0, good, ENGRAM__V1__STATUS__BAD_REQUEST, "1 ..");
	expect_refused(32u << 20, good, ENGRAM__V1__STATUS__TOO_LARGE, "--max-shm");
	/* the client library sees the daemon's refusal */
	c = dial(daemon_.addr);
	ck_assert_int_eq(eg_client_attach_shm(c, 32u << 20, &base), EGC_ETOOLARGE);
	ck_assert_ptr_null(base);
	ck_assert_int_eq(eg_client_ping(c), 0);
	ck_assert_int_eq(eg_client_lookup_shm(c, "a", &slot, 1, 0, NULL, NULL), -EINVAL);
	eg_client_close(c);
	/* the daemon still serves a second client, through shm too */
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, 16u << 20, &base) == 0, "%s", eg_client_errmsg(c));
	check_shm_lookup(c, base, 500, 64);
	eg_client_close(c);
	/* a TCP connection cannot attach: the daemon refuses the request, and
	 * libengram refuses a tcp: address before asking */
	fd = raw_connect_tcp();
	ck_assert_int_eq(attach_raw(fd, 4096, -1, err, sizeof(err)), ENGRAM__V1__STATUS__BAD_REQUEST);
	ck_assert_msg(strstr(err, "only on a unix socket"), "%s", err);
	ck_assert_int_eq(ping_raw(fd), 0);
	close(fd);
	c = dial(daemon_.tcp_addr);
	ck_assert_int_eq(eg_client_attach_shm(c, 4096, &base), -EINVAL);
	ck_assert_ptr_null(base);
	ck_assert_msg(strstr(eg_client_errmsg(c), "needs a unix socket address"), "%s",
	              eg_client_errmsg(c));
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	close(good);
	close(devnull);
	close(sp[0]);
	close(sp[1]);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* ---- slots in the shared buffer (LookupRequest.shm_slots) -------------------- */

/* Sends a lookup of table a on fd; the answer (the caller frees it). */
static Engram__V1__Response *lookup_raw(int fd, const Engram__V1__LookupRequest *lr)
{
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;

	req.id = 11;
	req.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	req.lookup = (Engram__V1__LookupRequest *)lr;
	raw_send(fd, &req, -1);
	return raw_recv(fd);
}

/* A lookup that must be refused with status, its error naming words; the
 * connection keeps serving. */
static void expect_lookup_refused(int fd, const Engram__V1__LookupRequest *lr, int status,
                                  const char *words)
{
	Engram__V1__Response *r = lookup_raw(fd, lr);

	ck_assert_int_eq(r->status, status);
	ck_assert_msg(r->error && strstr(r->error, words), "'%s' lacks '%s'", r->error, words);
	engram__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(ping_raw(fd), 0);
}

START_TEST(slots_in_the_shared_buffer)
{
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	Engram__V1__Response *r;
	enum { N = 3000, OFF = 4096 };
	uint64_t slots[N], one = 1;
	unsigned char *base, *want;
	int mfd, fd, reads = 0;
	char err[512];
	eg_client *c;
	void *cbase;

	start("16M", 0);
	mfd = memfd(1u << 20, 1);
	base = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ck_assert_ptr_ne(base, MAP_FAILED);
	fd = raw_connect();
	ck_assert_int_eq(attach_raw_answer(fd, 1u << 20, mfd, err, sizeof(err), &reads), 0);
	ck_assert_msg(reads, "the attach answer does not say the daemon reads shm_slots");
	for (size_t i = 0; i < N; i++)
		slots[i] = egt_rnd() % SLOTS;
	slots[0] = SLOTS - 1;
	want = egt_rows(7, slots, N, ROW);
	memcpy(base + OFF, slots, sizeof(slots)); /* little-endian: this host's order */
	lr.table = (char *)"a";
	lr.shm = 1;
	lr.shm_offset = OFF;
	lr.shm_slots = N;
	r = lookup_raw(fd, &lr);
	ck_assert_msg(r->status == 0, "%s", r->error);
	ck_assert_uint_eq(r->n_blocks, 1);
	ck_assert_uint_eq(r->blocks[0]->count, N);
	ck_assert_int_eq(r->blocks[0]->shm, 1);
	ck_assert_uint_eq(r->blocks[0]->shm_offset, OFF);
	engram__v1__response__free_unpacked(r, NULL);
	/* the rows went over the slots they were read from */
	ck_assert(memcmp(base + OFF, want, (size_t)N * ROW) == 0);

	/* refusals, each answered alone */
	lr.shm = 0;
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__BAD_REQUEST, "without shm");
	lr.shm = 1;
	lr.n_slots = 1;
	lr.slots = &one;
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__BAD_REQUEST, "in one place");
	lr.n_slots = 0;
	lr.slots = NULL;
	lr.n_fixed_slots = 1;
	lr.fixed_slots = &one;
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__BAD_REQUEST,
	                      "both fixed_slots (1) and shm_slots");
	lr.n_fixed_slots = 0;
	lr.fixed_slots = NULL;
	lr.shm_offset = (1u << 20) - 8 * N + 1; /* the last slot one byte past the end */
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__OUT_OF_RANGE, "do not fit");
	lr.shm_offset = UINT64_MAX - 3;
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__OUT_OF_RANGE, "do not fit");
	lr.shm_offset = 0;
	lr.shm_slots = UINT64_MAX / 4;
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__TOO_LARGE, "--max-rows");
	/* slots fit, rows do not: nothing written */
	lr.shm_slots = N;
	lr.shm_offset = (1u << 20) - 8 * N;
	memset(base + lr.shm_offset, 0, 8 * N);
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__OUT_OF_RANGE, "rows of");
	/* a slot outside the table, read from the buffer */
	lr.shm_offset = OFF;
	slots[1] = SLOTS;
	memcpy(base + OFF, slots, sizeof(slots));
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__OUT_OF_RANGE, "slots[1] = 20000");
	ck_assert(memcmp(base + OFF + 16, slots + 2, 8 * (N - 2)) == 0); /* nothing written */
	close(fd);
	/* shm_slots on a connection without a buffer */
	fd = raw_connect();
	expect_lookup_refused(fd, &lr, ENGRAM__V1__STATUS__BAD_REQUEST, "attach_shm");
	close(fd);
	/* another client is served, through its own shared buffer too */
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, SHM, &cbase) == 0, "%s", eg_client_errmsg(c));
	check_shm_lookup(c, cbase, 10, 0);
	check_shm_lookup(c, cbase, 2000, 4096);
	eg_client_close(c);
	munmap(base, 1u << 20);
	close(mfd);
	free(want);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* libengram puts a shm lookup's slots in the buffer once it knows the
 * table's layout: with --max-frame 2048, 4096 slots get through only that
 * way. A second request in flight over the same range (the caller's
 * mistake) sends its slots in the frame, so that its own rows stay right. */
START_TEST(client_puts_slots_in_the_buffer)
{
	char arg[4096];
	const char *args[] = { "--table", arg, "--max-frame", "2048", NULL };
	enum { N = 100 };
	uint64_t sa[N], sb[N], ta, tb, *in_place;
	unsigned char *want;
	eg_client_rows r;
	const void *d;
	eg_client *c;
	void *base;

	table_dir = egt_path("ta");
	egt_make_table(table_dir, "a", SLOTS, ROW, CHUNK, 7);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	egt_daemon_start(&daemon_, 0, args);
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, SHM, &base) == 0, "%s", eg_client_errmsg(c));
	check_shm_lookup(c, base, 10, 0); /* learns the layout */
	check_shm_lookup(c, base, 4096, 64);
	check_shm_lookup(c, base, 5000, SHM - 5000 * ROW);
	/* slots the caller wrote at the rows' offset itself: used in place */
	in_place = (uint64_t *)((unsigned char *)base + 64);
	for (size_t i = 0; i < 4096; i++)
		in_place[i] = egt_rnd() % SLOTS;
	want = egt_rows(7, in_place, 4096, ROW);
	ck_assert_msg(eg_client_lookup_shm(c, "a", in_place, 4096, 64, &r, &d) == 0, "%s",
	              eg_client_errmsg(c));
	ck_assert(r.count == 4096 && d == in_place && memcmp(d, want, 4096 * ROW) == 0);
	free(want);
	for (size_t i = 0; i < N; i++) {
		sa[i] = egt_rnd() % SLOTS;
		sb[i] = egt_rnd() % SLOTS;
	}
	want = egt_rows(7, sb, N, ROW);
	egt_stop_process(daemon_.pid); /* neither request is read before both are sent */
	ck_assert_int_eq(eg_client_send_lookup_shm(c, "a", sa, N, 0, &ta), 0);
	ck_assert_int_eq(eg_client_send_lookup_shm(c, "a", sb, N, 0, &tb), 0);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	ck_assert_msg(eg_client_wait_shm(c, tb, &r, &d, 1) == 0, "%s", eg_client_errmsg(c));
	ck_assert_ptr_eq(d, base);
	ck_assert(memcmp(d, want, N * ROW) == 0);
	ck_assert_int_eq(eg_client_wait_shm(c, ta, &r, &d, 1), 0);
	eg_client_close(c);
	free(want);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(reattach_after_restart)
{
	eg_client *c;
	void *base;
	char arg[4096];
	const char *args[] = { "--table", arg, "--listen", NULL, NULL };
	egt_daemon d2;

	start(NULL, 0);
	c = dial(daemon_.addr);
	ck_assert_msg(eg_client_attach_shm(c, 1u << 20, &base) == 0, "%s", eg_client_errmsg(c));
	check_shm_lookup(c, base, 100, 0);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	args[3] = daemon_.addr;
	egt_daemon_start(&d2, 0, args);
	/* the client reconnects and attaches the same buffer again */
	check_shm_lookup(c, base, 100, 4096);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d2, SIGTERM), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("shm");
	TCase *tc = tcase_create("daemon");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lookup_through_shm);
	tcase_add_test(tc, tokens_through_shm);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, slots_in_the_shared_buffer);
	tcase_add_test(tc, client_puts_slots_in_the_buffer);
	tcase_add_test(tc, reattach_after_restart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return egt_run_suite(suite());
}
