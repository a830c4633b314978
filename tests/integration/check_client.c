/* check_client.c - libengram against the real engramd on real sockets:
 * byte-exact rows, pipelining, error mapping, timeouts, reconnects. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "eg_hash.h"
#include "egc_int.h"
#include "engram.h"

#define ROW 160
#define SLOTS 20000
#define CHUNK 1024

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A table "a" of SLOTS rows served by a fresh daemon. */
static char *table_dir;
static egt_daemon daemon_;

static void start(int with_tcp)
{
	char arg[4096];
	const char *args[] = { "--table", arg, NULL };

	table_dir = egt_path("ta");
	egt_make_table(table_dir, "a", SLOTS, ROW, CHUNK, 7);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	egt_daemon_start(&daemon_, with_tcp, args);
}

static eg_client *dial(const char *addr)
{
	eg_client *c = NULL;
	int err = eg_client_connect(addr, 5000, &c);

	ck_assert_msg(err == 0, "connect %s: %s", addr, eg_client_strerror(err));
	return c;
}

/* Rows of slots as the table library reads them in this process. */
static unsigned char *gather_local(const uint64_t *slots, size_t n)
{
	eg_table *t;
	eg_snapshot *s;
	unsigned char *out = malloc(n * ROW + 1);

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(eg_table_open(table_dir, &t), 0);
	ck_assert_int_eq(eg_snapshot_open(t, 0, &s), 0);
	ck_assert_int_eq(eg_snapshot_gather(s, slots, n, out, NULL), 0);
	eg_snapshot_close(s);
	eg_table_close(t);
	return out;
}

static uint64_t *random_slots(size_t n)
{
	uint64_t *v = malloc((n + 1) * sizeof(*v));

	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < n; i++)
		v[i] = rnd() % SLOTS;
	if (n > 2)
		v[n - 1] = v[0]; /* a duplicate */
	return v;
}

static void check_lookup(eg_client *c, size_t n)
{
	uint64_t *slots = random_slots(n);
	unsigned char *want = gather_local(slots, n);
	unsigned char *got = malloc(n * ROW + 1);
	eg_client_rows r;
	int err;

	err = eg_client_lookup(c, "a", slots, n, got, n * ROW, &r);
	ck_assert_msg(err == 0, "lookup: %s", eg_client_errmsg(c));
	ck_assert_uint_eq(r.count, n);
	ck_assert_uint_eq(r.row_bytes, ROW);
	ck_assert_uint_eq(r.generation, 1);
	ck_assert(memcmp(got, want, n * ROW) == 0);
	/* and the reference bytes, independent of the table library */
	for (size_t i = 0; i < n; i += 97) {
		unsigned char ref[ROW];

		egt_row_bytes(7, slots[i], ROW, ref);
		ck_assert(memcmp(got + i * ROW, ref, ROW) == 0);
	}
	free(slots);
	free(want);
	free(got);
}

/* SIGSTOP is delivered asynchronously: wait until every thread of pid is
 * really stopped, or a request sent next may still be answered. */
static int all_threads_stopped(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int stopped = 1;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	ck_assert_ptr_nonnull(d = opendir(path));
	while (stopped && (e = readdir(d)) != NULL) {
		char stat_path[640], state = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", path, e->d_name);
		if ((f = fopen(stat_path, "r")) == NULL)
			continue; /* the thread just exited */
		if (fscanf(f, "%*d %*s %c", &state) != 1 || state != 'T')
			stopped = 0;
		fclose(f);
	}
	closedir(d);
	return stopped;
}

static void stop_process(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	for (int i = 0; i < 5000 && !all_threads_stopped(pid); i++)
		usleep(1000);
	ck_assert(all_threads_stopped(pid));
}

START_TEST(lookup_unix_exact)
{
	eg_client *c;

	start(0);
	c = dial(daemon_.addr);
	check_lookup(c, 1);
	check_lookup(c, 777);
	check_lookup(c, 70000); /* bigger than the client's read buffer */
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
	c = dial(daemon_.addr);
	for (int i = 0; i < NPIPE; i++) {
		sizes[i] = 1 + rnd() % (i % 8 == 0 ? 20000 : 300);
		slots[i] = random_slots(sizes[i]);
		bufs[i] = malloc(sizes[i] * ROW);
		ck_assert_int_eq(eg_client_send_lookup(c, "a", slots[i], sizes[i], bufs[i],
		                                       sizes[i] * ROW, &tickets[i]), 0);
		/* the request is encoded on send: the caller may reuse slots */
		kept[i] = malloc(sizes[i] * sizeof(uint64_t));
		memcpy(kept[i], slots[i], sizes[i] * sizeof(uint64_t));
		memset(slots[i], 0xFF, sizes[i] * sizeof(uint64_t));
		order[i] = i;
	}
	for (int i = NPIPE - 1; i > 0; i--) { /* shuffle */
		int j = (int)(rnd() % (uint64_t)(i + 1)), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	for (int k = 0; k < NPIPE; k++) {
		int i = order[k];
		eg_client_rows r;
		unsigned char *want = gather_local(kept[i], sizes[i]);

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

START_TEST(errors_mapped)
{
	eg_client *c;
	uint64_t slots[3] = { 1, SLOTS, 2 }, ticket, t2;
	unsigned char buf[3 * ROW], small[ROW];
	eg_client_rows r;

	start(0);
	c = dial(daemon_.addr);
	ck_assert_int_eq(eg_client_lookup(c, "nope", slots, 1, buf, sizeof(buf), &r),
	                 EGC_ENOTFOUND);
	ck_assert(strlen(eg_client_errmsg(c)) > 0);
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 3, buf, sizeof(buf), &r),
	                 EGC_EOUTOFRANGE);
	ck_assert(strlen(eg_client_errmsg(c)) > 0);
	/* too small a buffer: nothing written, the connection stays in step */
	memset(small, 0xAB, sizeof(small));
	slots[1] = 3;
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 3, small, sizeof(small), &r),
	                 EGC_EBUFSIZE);
	for (size_t i = 0; i < sizeof(small); i++)
		ck_assert_uint_eq(small[i], 0xAB);
	/* an error in the middle of a pipeline fails only its own ticket */
	ck_assert_int_eq(eg_client_send_lookup(c, "nope", slots, 1, buf, ROW, &ticket), 0);
	ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 3, buf, sizeof(buf), &t2), 0);
	ck_assert_int_eq(eg_client_wait(c, t2, &r), 0);
	ck_assert_uint_eq(r.count, 3);
	ck_assert_int_eq(eg_client_wait(c, ticket, &r), EGC_ENOTFOUND);
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

START_TEST(timeouts)
{
	eg_client *c;
	uint64_t slots[2] = { 5, 6 }, ticket;
	unsigned char buf[2 * ROW], want[ROW];
	eg_client_rows r;
	double t0, dt;

	start(0);
	c = dial(daemon_.addr);
	eg_client_set_timeout(c, 200);
	stop_process(daemon_.pid);
	ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 2, buf, sizeof(buf), &ticket), 0);
	t0 = now_ms();
	ck_assert_int_eq(eg_client_wait(c, ticket, &r), -ETIMEDOUT);
	dt = now_ms() - t0;
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
	c = dial(daemon_.addr);
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
	stop_process(d2.pid);
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

START_TEST(close_with_outstanding)
{
	eg_client *c;
	uint64_t *slots = random_slots(5000), ticket;
	unsigned char *buf = malloc(5000 * ROW);

	start(0);
	c = dial(daemon_.addr);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(eg_client_send_lookup(c, "a", slots, 5000, buf, 5000 * ROW,
		                                       &ticket), 0);
	eg_client_close(c); /* drops them; ASan checks nothing leaks */
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
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	ck_assert_msg(st != -1 && WIFEXITED(st), "%s: did not run", cmd);
	return WEXITSTATUS(st);
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

START_TEST(token_lookup_matches_slots)
{
	char a1[4096], a2[4096];
	const char *args[] = { "--table", a1, "--table", a2, NULL };
	const char *tables[2] = { "h1", "h2" };
	eg_hash *h1, *h2;
	eg_client *c;
	int64_t tokens[10] = { 5, 17, 99, 3, 3, 42, 7, 11, 0, 1234567 };
	uint32_t lens[3] = { 4, 5, 1 }, ctx[3] = { 1, 2, 0 };
	size_t ntok = 0, rpt, i;
	uint64_t *slots, ticket;
	unsigned char *out[2];
	size_t sizes[2];
	eg_client_rows blocks[2];
	char *d1 = egt_path("h1"), *d2 = egt_path("h2");

	egt_make_hash_table(d1, "h1", 64, 11, &h1);
	egt_make_hash_table(d2, "h2", 32, 12, &h2);
	snprintf(a1, sizeof(a1), "h1=%s", d1);
	snprintf(a2, sizeof(a2), "h2=%s", d2);
	egt_daemon_start(&daemon_, 0, args);
	c = dial(daemon_.addr);
	for (i = 0; i < 3; i++)
		ntok += lens[i] - ctx[i];
	rpt = eg_hash_rows_per_token(h1);
	ck_assert_uint_eq(rpt, 4);
	slots = malloc(ntok * rpt * sizeof(*slots));
	ck_assert_int_eq(eg_hash_slots(h1, tokens, lens, ctx, 3, slots, NULL), 0);
	sizes[0] = ntok * rpt * 64;
	sizes[1] = ntok * rpt * 32;
	out[0] = malloc(sizes[0]);
	out[1] = malloc(sizes[1]);
	ck_assert_msg(eg_client_send_tokens(c, tables, 2, tokens, 10, lens, ctx, 3,
	                                    (void *const *)out, sizes, &ticket) == 0,
	              "%s", eg_client_errmsg(c));
	ck_assert_msg(eg_client_wait_blocks(c, ticket, blocks, 2) == 0, "%s", eg_client_errmsg(c));
	ck_assert_uint_eq(blocks[0].count, ntok * rpt);
	ck_assert_uint_eq(blocks[0].row_bytes, 64);
	ck_assert_uint_eq(blocks[1].count, ntok * rpt);
	ck_assert_uint_eq(blocks[1].row_bytes, 32);
	/* both tables share the spec, so the same slots */
	for (i = 0; i < ntok * rpt; i++) {
		unsigned char r1[64], r2[32];

		egt_row_bytes(11, slots[i], 64, r1);
		egt_row_bytes(12, slots[i], 32, r2);
		ck_assert(memcmp(out[0] + i * 64, r1, 64) == 0);
		ck_assert(memcmp(out[1] + i * 32, r2, 32) == 0);
	}
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
	ck_assert_int_eq(eg_client_send_tokens(c, tables, 1, tokens, 2, NULL, NULL, 0,
	                                       (void *const *)out, sizes, &ticket), 0);
	ck_assert_int_eq(eg_client_wait(c, ticket, blocks), 0);
	ck_assert_uint_eq(blocks[0].count, 2 * rpt);
	ck_assert_int_eq(eg_hash_slots(h1, tokens, (uint32_t[]){ 2 }, NULL, 1, slots, NULL), 0);
	for (i = 0; i < 2 * rpt; i++) {
		unsigned char r1[64];

		egt_row_bytes(11, slots[i], 64, r1);
		ck_assert(memcmp(out[0] + i * 64, r1, 64) == 0);
	}
	/* a table without a spec cannot take tokens: a mapped daemon error */
	tables[1] = "nope";
	ck_assert_int_eq(eg_client_send_tokens(c, tables, 2, tokens, 2, NULL, NULL, 0,
	                                       (void *const *)out, sizes, &ticket), 0);
	ck_assert_int_eq(eg_client_wait_blocks(c, ticket, blocks, 2), EGC_ENOTFOUND);
	eg_client_close(c);
	free(out[0]);
	free(out[1]);
	free(slots);
	eg_hash_free(h1);
	eg_hash_free(h2);
	free(d1);
	free(d2);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

/* The hand-written lookup encoder writes what protobuf-c would. */
START_TEST(lookup_encoding_matches_protobuf_c)
{
	static const size_t sizes[] = { 0, 1, 3, 127, 128, 5000 };
	static const char *names[] = { "a", "", "a-much-longer-table-name-of-sixty-three-bytes-xxxxxxxxxxxxxxxxxx" };
	eg_client *c;
	uint64_t *slots = malloc(5000 * sizeof(*slots));
	unsigned char *want = malloc(5000 * 10 + 200);

	start(0);
	c = dial(daemon_.addr);
	for (size_t i = 0; i < 5000; i++)
		slots[i] = i % 5 == 0 ? UINT64_MAX - i : rnd() >> (rnd() % 64);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (size_t m = 0; m < 3; m++) {
			uint64_t id = k * 1000003 + (m << 40) + 1;
			Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
			Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
			const unsigned char *got;
			size_t len, body, hdr;
			uint64_t v;

			lr.table = (char *)names[m];
			lr.n_slots = sizes[k];
			lr.slots = slots;
			req.id = id;
			req.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
			req.lookup = &lr;
			body = engram__v1__request__pack(&req, want);
			ck_assert_int_eq(egc__encode_lookup(c, id, names[m], slots, sizes[k], 0, 0, &got, &len), 0);
			ck_assert(egt_frame_parse(got, len, &hdr, &v));
			ck_assert_uint_eq(v, len - hdr);
			if (sizes[k] && names[m][0]) {
				ck_assert_uint_eq(len - hdr, body);
				ck_assert(memcmp(got + hdr, want, body) == 0);
			} else {
				/* proto3 leaves empty fields out; we write them empty:
				 * same message once parsed */
				Engram__V1__Request *back = engram__v1__request__unpack(NULL, len - hdr, got + hdr);

				ck_assert_ptr_nonnull(back);
				ck_assert_uint_eq(back->id, id);
				ck_assert_str_eq(back->lookup->table, names[m]);
				ck_assert_uint_eq(back->lookup->n_slots, sizes[k]);
				engram__v1__request__free_unpacked(back, NULL);
			}
		}
	}
	/* the daemon takes the empty slots field too */
	ck_assert_int_eq(eg_client_lookup(c, "a", slots, 0, NULL, 0, NULL), 0);
	eg_client_close(c);
	free(slots);
	free(want);
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
	tcase_add_test(tc, pipelined_out_of_order);
	tcase_add_test(tc, errors_mapped);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, timeouts);
	tcase_add_test(tc, reconnect_after_restart);
	tcase_add_test(tc, close_with_outstanding);
	tcase_add_test(tc, info_stats_reload);
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
