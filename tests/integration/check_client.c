/* check_client.c - libengram against the real engramd on real sockets:
 * byte-exact rows (against the tables' fill, egt_row_bytes), token rows
 * (against slots from the NumPy reference), pipelining, error mapping,
 * timeouts, reconnects. Request ids start above 2^32. recv is wrapped at
 * link time (-Wl,--wrap=recv) to see how much the library asks one call
 * for. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "egc_int.h"
#include "engram.h"

#define ROW 160
#define SLOTS 20000
#define CHUNK 1024

/* The largest length one recv was asked for since the test reset it. */
static size_t recv_max;

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);
ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
	if (n > recv_max)
		recv_max = n;
	return __real_recv(fd, buf, n, flags);
}

/* A table "a" of SLOTS rows served by a fresh daemon with two event loops. */
static char *table_dir;
static egt_daemon daemon_;
#define LOOPS 2

static void start(int with_tcp)
{
	char arg[4096];
	const char *args[] = { "--table", arg, "--threads", "2", NULL };

	table_dir = egt_path("ta");
	egt_make_table(table_dir, "a", SLOTS, ROW, CHUNK, 7);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	egt_daemon_start(&daemon_, with_tcp, args);
}

/* A client whose request ids (its tickets) start above 2^32, through the
 * library's internal state: a 32-bit id on the way fails every call. */
static eg_client *dial(const char *addr)
{
	eg_client *c = NULL;
	int err = eg_client_connect(addr, 5000, &c);

	ck_assert_msg(err == 0, "connect %s: %s", addr, eg_client_strerror(err));
	c->next_id = EGT_ID(1);
	return c;
}

/* dial, and with reader set the client's reader thread on: the loop tests
 * below run once each way (_i 0 and 1). */
static eg_client *dial_mode(const char *addr, int reader)
{
	eg_client *c = dial(addr);

	if (reader)
		ck_assert_int_eq(eg_client_start_reader(c), 0);
	return c;
}

/* Rows of slots of table a: its fill, not read through the table library. */
static unsigned char *want_rows(const uint64_t *slots, size_t n)
{
	return egt_rows(7, slots, n, ROW);
}

static uint64_t *random_slots(size_t n)
{
	uint64_t *v = malloc((n + 1) * sizeof(*v));

	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < n; i++)
		v[i] = egt_rnd() % SLOTS;
	if (n > 2)
		v[n - 1] = v[0]; /* a duplicate */
	return v;
}

static void check_lookup(eg_client *c, size_t n)
{
	uint64_t *slots = random_slots(n);
	unsigned char *want = want_rows(slots, n);
	unsigned char *got = malloc(n * ROW + 1);
	eg_client_rows r;
	int err;

	err = eg_client_lookup(c, "a", slots, n, got, n * ROW, &r);
	ck_assert_msg(err == 0, "lookup: %s", eg_client_errmsg(c));
	ck_assert_uint_eq(r.count, n);
	ck_assert_uint_eq(r.row_bytes, ROW);
	ck_assert_uint_eq(r.generation, 1);
	ck_assert(memcmp(got, want, n * ROW) == 0);
	free(slots);
	free(want);
	free(got);
}

START_TEST(lookup_unix_exact)
{
	eg_client *c;

	start(0);
	c = dial(daemon_.addr);
	check_lookup(c, 1);
	check_lookup(c, 777);
	recv_max = 0;
	check_lookup(c, 70000); /* bigger than the client's read buffer */
	/* an 11 MB answer is read a bounded piece per call (conn.c says why) */
	ck_assert_uint_le(recv_max, EGC_RECV_MAX);
	ck_assert_uint_ge(recv_max, EGC_RBUF_SIZE);
	check_lookup(c, 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(lookup_tcp_exact)
{
	eg_client *c;

	start(1);
	ck_assert(daemon_.tcp_addr[0]);
	c = dial(daemon_.tcp_addr);
	check_lookup(c, 1);
	check_lookup(c, 4096);
	check_lookup(c, 65536);
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

#define NPIPE 64

START_TEST(pipelined_out_of_order)
{
	eg_client *c;
	uint64_t *slots[NPIPE], *kept[NPIPE], tickets[NPIPE];
	unsigned char *bufs[NPIPE];
	size_t sizes[NPIPE];
	int order[NPIPE];

	start(0);
	c = dial_mode(daemon_.addr, _i);
	for (int i = 0; i < NPIPE; i++) {
		sizes[i] = 1 + egt_rnd() % (i % 8 == 0 ? 20000 : 300);
		slots[i] = random_slots(sizes[i]);
		bufs[i] = malloc(sizes[i] * ROW);
		ck_assert_int_eq(eg_client_send_lookup(c, "a", slots[i], sizes[i], bufs[i],
		                                       sizes[i] * ROW, &tickets[i]), 0);
		/* the request is encoded on send: the caller may reuse slots */
		kept[i] = malloc(sizes[i] * sizeof(uint64_t));
		memcpy(kept[i], slots[i], sizes[i] * sizeof(uint64_t));
		memset(slots[i], 0xFF, sizes[i] * sizeof(uint64_t));
		order[i] = i;
		if (i % 9 == 0) /* blocking calls in between */
			ck_assert_int_eq(eg_client_ping(c), 0);
	}
	for (int i = NPIPE - 1; i > 0; i--) { /* shuffle */
		int j = (int)(egt_rnd() % (uint64_t)(i + 1)), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	for (int k = 0; k < NPIPE; k++) {
		int i = order[k];
		eg_client_rows r;
		unsigned char *want = want_rows(kept[i], sizes[i]);

		ck_assert_msg(eg_client_wait(c, tickets[i], &r) == 0, "%s", eg_client_errmsg(c));
		ck_assert_uint_eq(r.count, sizes[i]);
		ck_assert(memcmp(bufs[i], want, sizes[i] * ROW) == 0);
		ck_assert_int_eq(eg_client_wait(c, tickets[i], &r), EGC_ETICKET);
		free(want);
		free(bufs[i]);
		free(slots[i]);
		free(kept[i]);
	}
	ck_assert_int_eq(eg_client_wait(c, 123456, NULL), EGC_ETICKET);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* errmsg of c names what went wrong */
static void errmsg_has(eg_client *c, const char *words)
{
	ck_assert_msg(strstr(eg_client_errmsg(c), words), "'%s' lacks '%s'", eg_client_errmsg(c),
	              words);
}

START_TEST(errors_mapped)
{
	eg_client *c;
	uint64_t slots[3] = { 1, SLOTS, 2 }, ticket, t2;
	unsigned char buf[3 * ROW], small[ROW], *want;
	eg_client_rows r;

	start(0);
	c = dial(daemon_.addr);
	ck_assert_int_eq(eg_client_lookup(c, "nope", slots, 1, buf, sizeof(buf), &r),
	                 EGC_ENOTFOUND);
	errmsg_has(c, "no table named 'nope'");
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 3, buf, sizeof(buf), &r),
	                 EGC_EOUTOFRANGE);
	errmsg_has(c, "slots[1] = 20000");
	/* too small a buffer: nothing written, the connection stays in step */
	memset(small, 0xAB, sizeof(small));
	slots[1] = 3;
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 3, small, sizeof(small), &r),
	                 EGC_EBUFSIZE);
	errmsg_has(c, "rows of 480 bytes do not fit the caller's buffer of 160 bytes");
	for (size_t i = 0; i < sizeof(small); i++)
		ck_assert_uint_eq(small[i], 0xAB);
	/* an error in the middle of a pipeline fails only its own ticket */
	ck_assert_int_eq(eg_client_send_lookup(c, "nope", slots, 1, buf, ROW, &ticket), 0);
	ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 3, buf, sizeof(buf), &t2), 0);
	ck_assert_int_eq(eg_client_wait(c, t2, &r), 0);
	ck_assert_uint_eq(r.count, 3);
	ck_assert_uint_eq(r.row_bytes, ROW);
	ck_assert_uint_eq(r.generation, 1);
	want = want_rows(slots, 3);
	ck_assert(memcmp(buf, want, sizeof(buf)) == 0);
	free(want);
	ck_assert_int_eq(eg_client_wait(c, ticket, &r), EGC_ENOTFOUND);
	errmsg_has(c, "'nope'");
	ck_assert_int_eq(eg_client_ping(c), 0);
	ck_assert_str_eq(eg_client_strerror(EGC_EOUTOFRANGE), "slot out of range");
	ck_assert_str_eq(eg_client_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(bad_addresses)
{
	eg_client *c = NULL;
	char path[300], *sock = egt_path("no-such.sock");

	ck_assert_int_eq(eg_client_connect("http://x", 1000, &c), EGC_EADDR);
	ck_assert_int_eq(eg_client_connect("tcp:nohostport", 1000, &c), EGC_EADDR);
	ck_assert_int_eq(eg_client_connect("unix:", 1000, &c), EGC_EADDR);
	snprintf(path, sizeof(path), "unix:%s", sock);
	ck_assert_int_eq(eg_client_connect(path, 1000, &c), -ENOENT);
	ck_assert_ptr_null(c);
	free(sock);
}
END_TEST

/* NULL and "" mean the installed service's socket: what happens is what
 * happens when that address is named (no service here: the same error). */
START_TEST(default_address)
{
	const char *const addrs[] = { NULL, "" };
	eg_client *c = NULL;
	int named;

	ck_assert_str_eq(EGC_DEFAULT_ADDR, "unix:/run/engramd/engramd.sock");
	named = eg_client_connect(EGC_DEFAULT_ADDR, 1000, &c);
	eg_client_close(c);
	for (size_t i = 0; i < 2; i++) {
		c = NULL;
		ck_assert_int_eq(eg_client_connect(addrs[i], 1000, &c), named);
		ck_assert_int_eq(c != NULL, named == 0);
		eg_client_close(c);
		c = NULL;
		ck_assert_int_eq(eg_client_open(addrs[i], 1000, 0, &c), named);
		eg_client_close(c);
	}
	ck_assert_int_eq(eg_client_connect(NULL, 1000, NULL), -EINVAL);
}
END_TEST

START_TEST(timeouts)
{
	eg_client *c;
	uint64_t slots[2] = { 5, 6 }, ticket;
	unsigned char buf[2 * ROW], want[ROW];
	eg_client_rows r;
	double t0, dt;

	start(0);
	c = dial_mode(daemon_.addr, _i);
	eg_client_set_timeout(c, 200);
	egt_stop_process(daemon_.pid);
	ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 2, buf, sizeof(buf), &ticket), 0);
	t0 = egt_now_ms();
	ck_assert_int_eq(eg_client_wait(c, ticket, &r), -ETIMEDOUT);
	dt = egt_now_ms() - t0;
	ck_assert_msg(dt >= 150 && dt < 2000, "timed out after %.0f ms", dt);
	ck_assert(strstr(eg_client_errmsg(c), "200 ms"));
	ck_assert_int_eq(eg_client_ping(c), -ETIMEDOUT); /* blocking calls too */
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	/* the ticket survived the timeout: its answer is still collected */
	eg_client_set_timeout(c, 5000);
	ck_assert_msg(eg_client_wait(c, ticket, &r) == 0, "%s", eg_client_errmsg(c));
	egt_row_bytes(7, 6, ROW, want);
	ck_assert(memcmp(buf + ROW, want, ROW) == 0);
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(reconnect_after_restart)
{
	eg_client *c;
	uint64_t slots[1] = { 9 }, ticket;
	unsigned char buf[ROW], want[ROW];
	eg_client_rows r;
	char arg[4096];
	const char *args[] = { "--table", arg, "--listen", daemon_.addr, NULL };
	egt_daemon d2;

	start(0);
	c = dial_mode(daemon_.addr, _i);
	egt_row_bytes(7, 9, ROW, want);
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 1, buf, ROW, &r), 0);
	/* the daemon restarts under an idle client: the next call just works */
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	/* (the new daemon also listens on the old socket) */
	egt_daemon_start(&d2, 0, args);
	memset(buf, 0, ROW);
	ck_assert_msg(eg_client_lookup(c, "a", slots, 1, buf, ROW, &r) == 0, "%s",
	              eg_client_errmsg(c));
	ck_assert(memcmp(buf, want, ROW) == 0);
	/* a ticket outstanding when the daemon dies fails; the next call
	 * reconnects */
	egt_stop_process(d2.pid);
	ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 1, buf, ROW, &ticket), 0);
	ck_assert_int_eq(kill(d2.pid, SIGKILL), 0);
	ck_assert_int_eq(egt_daemon_stop(&d2, 0), -1);
	ck_assert_int_eq(eg_client_wait(c, ticket, &r), -ECONNRESET);
	ck_assert_int_ne(eg_client_ping(c), 0); /* nobody listens now */
	egt_daemon_start(&d2, 0, args);
	ck_assert_msg(eg_client_ping(c) == 0, "%s", eg_client_errmsg(c));
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d2, SIGTERM), 0);
}
END_TEST

/* Closing a client with answers outstanding frees what it held: this
 * process's descriptors are back to what they were, the daemon drops the
 * connection (its descriptors too), and it serves the next client. */
START_TEST(close_with_outstanding)
{
	eg_client *c;
	uint64_t *slots = random_slots(5000), ticket;
	unsigned char *buf = malloc(5000 * ROW);
	int mine, theirs, now = -1;

	start(0);
	/* connections go to the event loops in turn, and each loop opens a
	 * reserve descriptor (libuv's, for EMFILE) on its first one */
	for (int i = 0; i < 2 * LOOPS; i++) {
		c = dial(daemon_.addr);
		ck_assert_int_eq(eg_client_ping(c), 0);
		eg_client_close(c);
	}
	mine = egt_fd_count(getpid());
	/* the daemon may still be closing those connections */
	theirs = egt_fd_count(daemon_.pid);
	for (int i = 0; i < 20; i++, usleep(10000))
		if ((now = egt_fd_count(daemon_.pid)) < theirs)
			theirs = now;
	for (int round = 0; round < 3; round++) {
		c = dial(daemon_.addr);
		for (int i = 0; i < 8; i++)
			ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 5000, buf, 5000 * ROW,
			                                       &ticket), 0);
		ck_assert_int_eq(egt_fd_count(getpid()), mine + 1);
		eg_client_close(c); /* drops the 8 tickets, 6 MB of answers unread */
		ck_assert_int_eq(egt_fd_count(getpid()), mine);
	}
	for (int i = 0; i < 500 && (now = egt_fd_count(daemon_.pid)) > theirs; i++)
		usleep(10000);
	ck_assert_msg(now <= theirs, "engramd holds %d descriptors, %d before the clients", now,
	              theirs);
	c = dial(daemon_.addr);
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	free(buf);
	free(slots);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(info_stats_reload)
{
	eg_client *c;
	eg_client_table *t = NULL;
	eg_client_stats s0, s1;
	eg_client_reload res[4];
	size_t n = 0, nres = 0;
	uint64_t slots[2] = { 1, 2 };
	unsigned char buf[2 * ROW];

	start(0);
	c = dial(daemon_.addr);
	ck_assert_int_eq(eg_client_info(c, &t, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(t[0].name, "a");
	ck_assert_uint_eq(t[0].slots, SLOTS);
	ck_assert_uint_eq(t[0].row_bytes, ROW);
	ck_assert_uint_eq(t[0].dim, ROW);
	ck_assert_str_eq(t[0].dtype, "u8");
	ck_assert_str_eq(t[0].hash_kind, "");
	ck_assert_uint_eq(t[0].chunk_slots, CHUNK);
	ck_assert_uint_eq(t[0].generation, 1);
	eg_client_info_free(t, n);
	ck_assert_int_eq(eg_client_stats_get(c, &s0), 0);
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 2, buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(eg_client_stats_get(c, &s1), 0);
	ck_assert_uint_ge(s1.requests, s0.requests + 2);
	ck_assert_uint_ge(s1.rows, s0.rows + 2);
	ck_assert_uint_ge(s1.connections, 1);
	/* patch a row in place, reload, and see the new bytes */
	memset(buf, 0x5A, ROW);
	ck_assert_int_eq(eg_table_update(table_dir, slots, 1, buf, NULL, NULL), 0);
	ck_assert_int_eq(eg_client_reload_tables(c, "a", res, 4, &nres), 0);
	ck_assert_uint_eq(nres, 1);
	ck_assert_str_eq(res[0].table, "a");
	ck_assert_str_eq(res[0].error, "");
	ck_assert_uint_eq(res[0].new_generation, 2);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 1, buf, ROW, NULL), 0);
	for (int i = 0; i < ROW; i++)
		ck_assert_uint_eq(buf[i], 0x5A);
	ck_assert_int_eq(eg_client_reload_tables(c, "nope", res, 4, &nres), EGC_ENOTFOUND);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* ---- the query half of the engram CLI --------------------------------------- */

/* Runs a shell command line; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return egt_exit_status(cmd);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

static int same_file(const char *a, const char *b)
{
	size_t la, lb;
	unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
	int same = la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

static const char *engram_bin(void)
{
	const char *e = getenv("ENGRAM");

	return e && *e ? e : "build/engram";
}

/* ---- token lookups --------------------------------------------------------- */

/* EGT_HASH_SPEC's slots for tok_ids, computed by the NumPy reference
 * (tests/python/engram_ref.py: slots(spec, tok_ids, [4, 5, 1], [1, 2, 0])
 * and slots(spec, tok_ids[:2], [2])), written down: 7 and 2 tokens x 4. */
static int64_t tok_ids[10] = { 5, 17, 99, 3, 3, 42, 7, 11, 0, 1234567 };
static const uint64_t tok_slots[28] = {
	736, 1653, 2095, 3115, 477, 1236, 2483, 3059, 877, 1148, 2609, 3578, 786, 1218,
	2057, 3418, 382, 1979, 2149, 3981, 196, 1882, 2595, 3234, 626, 1473, 2353, 3456,
};
static const uint64_t tok_slots_two[8] = { 420, 1869, 2823, 3219, 736, 1653, 2095, 3115 };

/* The in-test formula (egtest's egt_hash_spec_slots, used where tokens are
 * too many to write down) agrees with the NumPy reference. */
START_TEST(hash_reference_matches_numpy)
{
	uint32_t lens[3] = { 4, 5, 1 }, ctx[3] = { 1, 2, 0 };
	uint64_t got[40];

	ck_assert_uint_eq(egt_hash_spec_slots(tok_ids, lens, ctx, 3, got), 28);
	ck_assert(memcmp(got, tok_slots, sizeof(tok_slots)) == 0);
	ck_assert_uint_eq(egt_hash_spec_slots(tok_ids, (uint32_t[]){ 2 }, NULL, 1, got), 8);
	ck_assert(memcmp(got, tok_slots_two, sizeof(tok_slots_two)) == 0);
}
END_TEST

/* out holds the rows of slots[0..n) of a table of row_bytes filled with seed. */
static void check_token_rows(const unsigned char *out, uint64_t seed, uint32_t row_bytes,
                             const uint64_t *slots, size_t n)
{
	unsigned char *want = egt_rows(seed, slots, n, row_bytes);

	ck_assert(memcmp(out, want, n * row_bytes) == 0);
	free(want);
}

START_TEST(token_lookup_matches_slots)
{
	char a1[4096], a2[4096];
	const char *args[] = { "--table", a1, "--table", a2, NULL };
	const char *tables[2] = { "h1", "h2" };
	eg_client *c;
	uint32_t lens[3] = { 4, 5, 1 }, ctx[3] = { 1, 2, 0 };
	uint64_t ticket;
	unsigned char *out[2];
	size_t sizes[2] = { 28 * 64, 28 * 32 }, i;
	eg_client_rows blocks[2];
	char *d1 = egt_path("h1"), *d2 = egt_path("h2");

	egt_make_hash_table(d1, "h1", 64, 11, NULL);
	egt_make_hash_table(d2, "h2", 32, 12, NULL);
	snprintf(a1, sizeof(a1), "h1=%s", d1);
	snprintf(a2, sizeof(a2), "h2=%s", d2);
	egt_daemon_start(&daemon_, 0, args);
	c = dial(daemon_.addr);
	out[0] = malloc(sizes[0]);
	out[1] = malloc(sizes[1]);
	ck_assert_msg(eg_client_send_tokens(c, tables, 2, tok_ids, 10, lens, ctx, 3,
	                                    (void *const *)out, sizes, &ticket) == 0,
	              "%s", eg_client_errmsg(c));
	ck_assert_msg(eg_client_wait_blocks(c, ticket, blocks, 2) == 0, "%s", eg_client_errmsg(c));
	ck_assert_uint_eq(blocks[0].count, 28);
	ck_assert_uint_eq(blocks[0].row_bytes, 64);
	ck_assert_uint_eq(blocks[0].generation, 1);
	ck_assert_uint_eq(blocks[1].count, 28);
	ck_assert_uint_eq(blocks[1].row_bytes, 32);
	/* both tables share the spec, so the same slots */
	check_token_rows(out[0], 11, 64, tok_slots, 28);
	check_token_rows(out[1], 12, 32, tok_slots, 28);
	/* the CLI writes the same blocks as .npy files */
	{
		char *pre = egt_path("tok"), path[4200];
		size_t flen, hl;
		unsigned char *f;

		ck_assert_int_eq(sh("%s tokens --connect %s --tables h1,h2 --tokens "
		                    "5,17,99,3,3,42,7,11,0,1234567 --seq-lens 4,5,1 --context 1,2,0 "
		                    "--out %s", engram_bin(), daemon_.addr, pre), 0);
		for (i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s.%s.npy", pre, tables[i]);
			f = slurp(path, &flen);
			hl = 10 + (size_t)f[8] + ((size_t)f[9] << 8);
			ck_assert_uint_eq(flen, hl + sizes[i]);
			ck_assert(memcmp(f + hl, out[i], sizes[i]) == 0);
			free(f);
		}
		free(pre);
	}
	/* one sequence, no context, through the NULL shortcuts */
	ck_assert_int_eq(eg_client_send_tokens(c, tables, 1, tok_ids, 2, NULL, NULL, 0,
	                                       (void *const *)out, sizes, &ticket), 0);
	ck_assert_int_eq(eg_client_wait(c, ticket, blocks), 0);
	ck_assert_uint_eq(blocks[0].count, 8);
	check_token_rows(out[0], 11, 64, tok_slots_two, 8);
	/* a table that is not served: a mapped daemon error */
	tables[1] = "nope";
	ck_assert_int_eq(eg_client_send_tokens(c, tables, 2, tok_ids, 2, NULL, NULL, 0,
	                                       (void *const *)out, sizes, &ticket), 0);
	ck_assert_int_eq(eg_client_wait_blocks(c, ticket, blocks, 2), EGC_ENOTFOUND);
	errmsg_has(c, "tables[1]: no table named 'nope'");
	eg_client_close(c);
	free(out[0]);
	free(out[1]);
	free(d1);
	free(d2);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* The hand-written lookup encoder writes a message protobuf-c reads as the
 * one asked for, every slot at the width of the widest, or (once the daemon
 * said it reads them) as fixed_slots, 8 bytes a slot. */
START_TEST(lookup_encoding_matches_protobuf_c)
{
	static const size_t sizes[] = { 0, 1, 3, 127, 128, 5000 };
	static const char *names[] = { "a", "", "a-much-longer-table-name-of-sixty-three-bytes-xxxxxxxxxxxxxxxxxx" };
	eg_client *c;
	uint64_t *slots = malloc(5000 * sizeof(*slots));

	start(0);
	c = dial(daemon_.addr);
	for (size_t i = 0; i < 5000; i++)
		slots[i] = i % 5 == 0 ? UINT64_MAX - i : egt_rnd() >> (egt_rnd() % 64);
	slots[1] = 0; /* the shortest next to the longest */
	for (size_t k = 0; k < 2 * sizeof(sizes) / sizeof(sizes[0]); k++) {
		int fixed = k % 2;

		c->reads_fixed_slots = fixed;
		for (size_t m = 0; m < 3; m++) {
			uint64_t id = k * 1000003 + (m << 40) + 1, top = 0;
			uint64_t min_generation = m ? (uint64_t)k << 40 | 7 : 0;
			uint64_t shm_offset = m == 2 ? (uint64_t)k << 35 | 3 : 0;
			uint64_t shm_slots = m == 1 ? k * 77777 + 1 : 0;
			const unsigned char *got;
			size_t len, hdr, width = 1;
			uint64_t v;
			Engram__V1__Request *back;

			ck_assert_int_eq(egc__encode_lookup(c, id, names[m], slots, sizes[k / 2], m == 2,
			                                    shm_offset, min_generation, shm_slots, &got,
			                                    &len), 0);
			ck_assert(egt_frame_parse(got, len, &hdr, &v));
			ck_assert_uint_eq(v, len - hdr);
			back = engram__v1__request__unpack(NULL, len - hdr, got + hdr);
			ck_assert_ptr_nonnull(back);
			ck_assert_uint_eq(back->id, id);
			ck_assert_int_eq(back->body_case, ENGRAM__V1__REQUEST__BODY_LOOKUP);
			ck_assert_str_eq(back->lookup->table, names[m]);
			ck_assert_uint_eq(back->lookup->n_slots, fixed ? 0 : sizes[k / 2]);
			ck_assert_uint_eq(back->lookup->n_fixed_slots, fixed ? sizes[k / 2] : 0);
			for (size_t i = 0; i < sizes[k / 2]; i++) {
				ck_assert_uint_eq(fixed ? back->lookup->fixed_slots[i] :
				                          back->lookup->slots[i], slots[i]);
				top |= slots[i];
			}
			ck_assert_uint_eq(back->lookup->min_generation, min_generation);
			ck_assert_int_eq(back->lookup->shm, m == 2);
			ck_assert_uint_eq(back->lookup->shm_offset, shm_offset);
			ck_assert_uint_eq(back->lookup->shm_slots, shm_slots);
			engram__v1__request__free_unpacked(back, NULL);
			while (width < 10 && top >> (7 * width))
				width++;
			if (fixed)
				width = 8;
			/* header, then exactly width bytes a slot, then the tail */
			ck_assert_uint_ge(len, sizes[k / 2] * width);
			ck_assert_uint_le(len, sizes[k / 2] * width + 200);
		}
	}
	/* the daemon takes the empty slots field too, either one */
	c->reads_fixed_slots = 0;
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 0, NULL, 0, NULL), 0);
	ck_assert_int_eq(c->reads_fixed_slots, 1); /* engramd's answer said it reads words */
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 0, NULL, 0, NULL), 0);
	eg_client_close(c);
	free(slots);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

START_TEST(cli_lookup_writes_what_export_writes)
{
	const char *e = engram_bin(), *d;
	char *out = egt_path("out"), *err = egt_path("err"), p1[4200], p2[4200];
	size_t n;
	unsigned char *text;

	start(0);
	d = daemon_.addr;
	snprintf(p1, sizeof(p1), "%s.l.npy", out);
	snprintf(p2, sizeof(p2), "%s.e.npy", out);
	ck_assert_int_eq(sh("%s lookup --connect %s --table a --slots 5,1,19999,0-99 --out %s",
	                    e, d, p1), 0);
	ck_assert_int_eq(sh("%s table export %s --slots 5,1,19999,0-99 --out %s",
	                    e, table_dir, p2), 0);
	ck_assert(same_file(p1, p2));
	snprintf(p1, sizeof(p1), "%s.l.txt", out);
	snprintf(p2, sizeof(p2), "%s.e.txt", out);
	ck_assert_int_eq(sh("%s lookup --connect %s --table a --slots 7,3 > %s", e, d, p1), 0);
	ck_assert_int_eq(sh("%s table export %s --slots 7,3 > %s", e, table_dir, p2), 0);
	ck_assert(same_file(p1, p2));
	/* failures: one line on stderr, exit 1 (2 for a bad command line) */
	ck_assert_int_eq(sh("%s lookup --connect %s --table a --slots 20000 2> %s", e, d, err), 1);
	text = slurp(err, &n);
	ck_assert_msg(n > 0 && strchr((char *)text, '\n') == (char *)text + n - 1 &&
	              strstr((char *)text, "out of range"), "stderr: %s", text);
	free(text);
	ck_assert_int_eq(sh("%s lookup --connect %s --table nope --slots 1 2>/dev/null", e, d), 1);
	ck_assert_int_eq(sh("%s ping --connect unix:/nonexistent/x.sock 2>/dev/null", e), 1);
	ck_assert_int_eq(sh("%s lookup --connect %s --slots 1 2>/dev/null", e, d), 2);
	ck_assert_int_eq(sh("%s ping --connect %s > /dev/null", e, d), 0);
	ck_assert_int_eq(sh("%s stats --connect %s > /dev/null", e, d), 0);
	snprintf(p1, sizeof(p1), "%s.json", out);
	ck_assert_int_eq(sh("%s info --connect %s --json > %s", e, d, p1), 0);
	text = slurp(p1, &n);
	ck_assert_msg(strstr((char *)text, "\"name\": \"a\"") && strstr((char *)text, "\"slots\": 20000"),
	              "info --json: %s", text);
	free(text);
	ck_assert_int_eq(sh("%s reload --connect %s --table a > /dev/null", e, d), 0);
	free(out);
	free(err);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("daemon");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lookup_unix_exact);
	tcase_add_test(tc, lookup_tcp_exact);
	tcase_add_loop_test(tc, pipelined_out_of_order, 0, 2);
	tcase_add_test(tc, errors_mapped);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, default_address);
	tcase_add_loop_test(tc, timeouts, 0, 2);
	tcase_add_loop_test(tc, reconnect_after_restart, 0, 2);
	tcase_add_test(tc, close_with_outstanding);
	tcase_add_test(tc, info_stats_reload);
	tcase_add_test(tc, hash_reference_matches_numpy);
	tcase_add_test(tc, token_lookup_matches_slots);
	tcase_add_test(tc, lookup_encoding_matches_protobuf_c);
	tcase_add_test(tc, cli_lookup_writes_what_export_writes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return egt_run_suite(suite());
}
