/* check_fleet.c - libengram over several daemons. Two "hosts" are two
 * directories with a copy of the table and two engramd on 127.0.0.1 ports.
 * Readers check every row against the table's fill (egt_rows, not the code
 * under test) while one replica is SIGKILLed and restarted and the other
 * drained with SIGTERM, once with the client's own address list and once
 * through HAProxy (examples/haproxy/haproxy.cfg); routes fan a token lookup
 * out to the hosts holding each table; min_generation keeps a client off a
 * replica behind a rollout. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "egc_int.h"
#include "egtest.h"
#include "egtest_haproxy.h"
#include "engram.pb-c.h"

#define SLOTS 20000
#define ROW 24
#define SEED 77
#define TIMEOUT_MS 2000
#define BATCH 300
#define PHASES 5

/* ---- replicas ------------------------------------------------------------- */

struct replica {
	char dir[256];       /* its copy of the table */
	int port, http;
	char tcp[64];        /* "tcp:127.0.0.1:<port>" */
	const char *delay;   /* --drain-delay */
	char sock[256];      /* a unix socket kept across restarts ("": none) */
	egt_daemon d;
};

static void replica_init(struct replica *r, const char *name, uint64_t generation,
                         const char *delay)
{
	char *p = egt_path(name);

	snprintf(r->dir, sizeof(r->dir), "%s", p);
	egt_make_table_gen(r->dir, "t", SLOTS, ROW, 1024, SEED, generation);
	r->port = egt_free_port();
	r->http = egt_free_port();
	snprintf(r->tcp, sizeof(r->tcp), "tcp:127.0.0.1:%d", r->port);
	r->delay = delay;
	r->sock[0] = '\0';
}

static void replica_start(struct replica *r)
{
	char table[300], listen[64], http[64], sock[270];
	const char *args[] = { "--table", table, "--listen", listen, "--http", http,
	                       "--drain-delay", r->delay, "--threads", "2",
	                       r->sock[0] ? "--listen" : NULL, sock, NULL };

	snprintf(table, sizeof(table), "t=%s", r->dir);
	snprintf(listen, sizeof(listen), "%s", r->tcp);
	snprintf(http, sizeof(http), "127.0.0.1:%d", r->http);
	snprintf(sock, sizeof(sock), "unix:%s", r->sock);
	egt_daemon_start(&r->d, 0, args);
}

/* Whether something accepts connections on 127.0.0.1:port. */
static int accepts(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	ck_assert_int_ge(fd, 0);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* ---- readers: every row checked ------------------------------------------ */

struct reader {
	const char *spec;
	unsigned flags;
	int pipelined;          /* two lookups in flight, else blocking calls */
	atomic_int *phase, stop;
	atomic_uint_least64_t ok[PHASES];
	atomic_uint_least64_t wrong_rows, fails, early_fails;
	atomic_int open_err;
	char why[512];          /* the first failure before its deadline */
	pthread_t thread;
};

static void fill_slots(uint64_t *rng, uint64_t *slots)
{
	for (size_t i = 0; i < BATCH; i++) {
		*rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
		slots[i] = (*rng >> 20) % SLOTS;
	}
}

/* One call's outcome: the rows of an answer are held against the fill; a
 * failure is allowed only past the call's deadline. */
static void outcome(struct reader *rd, eg_client *c, int err, double t0, int phase,
                    const uint64_t *slots, const uint8_t *got, const eg_client_rows *rows)
{
	double took = egt_now_ms() - t0;
	uint8_t *want;

	if (err < 0) {
		atomic_fetch_add(&rd->fails, 1);
		if (took < TIMEOUT_MS - 1 && atomic_fetch_add(&rd->early_fails, 1) == 0)
			snprintf(rd->why, sizeof(rd->why), "%s (%s) after %.0f ms", eg_client_errmsg(c),
			         eg_client_strerror(err), took);
		return;
	}
	want = egt_rows(SEED, slots, BATCH, ROW);
	for (size_t i = 0; i < BATCH; i++)
		if (memcmp(got + i * ROW, want + i * ROW, ROW) != 0)
			atomic_fetch_add(&rd->wrong_rows, 1);
	if (rows->count != BATCH || rows->row_bytes != ROW)
		atomic_fetch_add(&rd->wrong_rows, BATCH);
	free(want);
	atomic_fetch_add(&rd->ok[phase], 1);
}

static void read_pipelined(struct reader *rd, eg_client *c, uint64_t *rng, uint8_t *out)
{
	uint64_t slots[2][BATCH], ticket[2];
	int phase = atomic_load(rd->phase), err[2];
	eg_client_rows rows;
	double t0;

	for (int k = 0; k < 2; k++) {
		fill_slots(rng, slots[k]);
		t0 = egt_now_ms();
		err[k] = eg_client_send_lookup(c, "t", slots[k], BATCH, out + k * BATCH * ROW,
		                               BATCH * ROW, &ticket[k]);
		if (err[k] < 0)
			outcome(rd, c, err[k], t0, phase, NULL, NULL, NULL);
	}
	for (int k = 0; k < 2; k++) {
		if (err[k] < 0)
			continue;
		t0 = egt_now_ms();
		err[k] = eg_client_wait(c, ticket[k], &rows);
		outcome(rd, c, err[k], t0, phase, slots[k], out + k * BATCH * ROW, &rows);
	}
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t rng = (uint64_t)(uintptr_t)rd ^ 0x9e3779b97f4a7c15ULL, slots[BATCH];
	uint8_t *out = malloc(2 * BATCH * ROW);
	eg_client_rows rows;
	eg_client *c;
	double t0;
	int err;

	err = eg_client_open(rd->spec, TIMEOUT_MS, rd->flags, &c);
	atomic_store(&rd->open_err, err);
	while (err == 0 && !atomic_load(&rd->stop)) {
		int phase = atomic_load(rd->phase);

		if (rd->pipelined) {
			read_pipelined(rd, c, &rng, out);
			continue;
		}
		fill_slots(&rng, slots);
		t0 = egt_now_ms();
		outcome(rd, c, eg_client_lookup(c, "t", slots, BATCH, out, BATCH * ROW, &rows), t0,
		        phase, slots, out, &rows);
	}
	if (err == 0)
		eg_client_close(c);
	free(out);
	return NULL;
}

/* Waits until every reader has n answers in phase (else fails the test). */
static void wait_answers(struct reader *rd, size_t nrd, int phase, uint64_t n)
{
	double deadline = egt_now_ms() + 15000;

	for (size_t i = 0; i < nrd; i++) {
		while (atomic_load(&rd[i].ok[phase]) < n) {
			ck_assert_msg(atomic_load(&rd[i].open_err) == 0, "reader %zu: open: %s", i,
			              eg_client_strerror(atomic_load(&rd[i].open_err)));
			ck_assert_msg(egt_now_ms() < deadline, "reader %zu: %llu answers in phase %d after "
			              "15 s (first early failure: %s)", i,
			              (unsigned long long)atomic_load(&rd[i].ok[phase]), phase, rd[i].why);
			usleep(10000);
		}
	}
}

static void wait_lb_state(const egt_haproxy *lb, const char *server, const char *want)
{
	double deadline = egt_now_ms() + 10000;
	char st[32] = "";

	while (egt_haproxy_status(lb, server, st, sizeof(st)) < 0 || strcmp(st, want) != 0) {
		ck_assert_msg(egt_now_ms() < deadline, "haproxy: %s is '%s', not %s after 10 s", server,
		              st, want);
		usleep(10000);
	}
}

static void restart(struct replica *r, const egt_haproxy *lb, const char *server)
{
	replica_start(r);
	if (lb)
		wait_lb_state(lb, server, "UP");
}

/* Replica 0 SIGKILLed and restarted, replica 1 drained with SIGTERM and
 * restarted, replica 0 (where the readers are now) SIGKILLed again, while
 * the readers read; each phase must answer. Through a balancer, the drained
 * replica must be marked down while it still accepts connections. */
static void kill_and_drain(struct replica r[2], struct reader *rd, size_t nrd,
                           const egt_haproxy *lb)
{
	atomic_int phase = 0;

	for (size_t i = 0; i < nrd; i++) {
		rd[i].phase = &phase;
		ck_assert_int_eq(pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]), 0);
	}
	wait_answers(rd, nrd, 0, 20);
	atomic_store(&phase, 1);
	egt_daemon_stop(&r[0].d, SIGKILL);
	wait_answers(rd, nrd, 1, 20);
	restart(&r[0], lb, "r1");
	atomic_store(&phase, 2);
	kill(r[1].d.pid, SIGTERM);
	if (lb) {
		wait_lb_state(lb, "r2", "DOWN");
		ck_assert_msg(kill(r[1].d.pid, 0) == 0 && accepts(r[1].port),
		              "haproxy marked the draining replica down only after it closed");
	}
	ck_assert_int_eq(egt_daemon_stop(&r[1].d, 0), 0);
	wait_answers(rd, nrd, 2, 20);
	restart(&r[1], lb, "r2");
	atomic_store(&phase, 3);
	egt_daemon_stop(&r[0].d, SIGKILL);
	wait_answers(rd, nrd, 3, 20);
	restart(&r[0], lb, "r1");
	atomic_store(&phase, 4);
	wait_answers(rd, nrd, 4, 20);
	for (size_t i = 0; i < nrd; i++) {
		atomic_store(&rd[i].stop, 1);
		pthread_join(rd[i].thread, NULL);
		ck_assert_msg(atomic_load(&rd[i].wrong_rows) == 0, "reader %zu: %llu wrong rows", i,
		              (unsigned long long)atomic_load(&rd[i].wrong_rows));
		ck_assert_msg(atomic_load(&rd[i].early_fails) == 0,
		              "reader %zu: %llu of %llu failures before the deadline, first: %s", i,
		              (unsigned long long)atomic_load(&rd[i].early_fails),
		              (unsigned long long)atomic_load(&rd[i].fails), rd[i].why);
	}
	egt_daemon_stop(&r[0].d, SIGTERM);
	egt_daemon_stop(&r[1].d, SIGTERM);
}

START_TEST(address_list_kill_and_drain)
{
	struct replica r[2];
	struct reader rd[2];
	char spec[160];

	replica_init(&r[0], "host1", 1, "1");
	replica_init(&r[1], "host2", 1, "1");
	replica_start(&r[0]);
	replica_start(&r[1]);
	snprintf(spec, sizeof(spec), "%s,%s", r[0].tcp, r[1].tcp);
	memset(rd, 0, sizeof(rd));
	for (int i = 0; i < 2; i++) {
		rd[i].spec = spec;
		rd[i].pipelined = i;
	}
	kill_and_drain(r, rd, 2, NULL);
}
END_TEST

START_TEST(haproxy_kill_and_drain)
{
	struct replica r[2];
	struct reader rd[2];
	egt_haproxy lb;
	char spec[64], err[300];
	const char *servers[2];
	int https[2];

	if (!egt_haproxy_bin()) {
		egt_skip("haproxy_kill_and_drain", "haproxy is not installed (scripts/deps.sh installs it)");
		return;
	}
	replica_init(&r[0], "host1", 1, "3");
	replica_init(&r[1], "host2", 1, "3");
	replica_start(&r[0]);
	replica_start(&r[1]);
	servers[0] = r[0].tcp + 4;
	servers[1] = r[1].tcp + 4;
	https[0] = r[0].http;
	https[1] = r[1].http;
	ck_assert_msg(egt_haproxy_start(&lb, egt_tmpdir(), egt_free_port(), servers, https, err,
	                                sizeof(err)) == 0, "%s", err);
	snprintf(spec, sizeof(spec), "tcp:%s", lb.bind);
	memset(rd, 0, sizeof(rd));
	for (int i = 0; i < 2; i++) {
		rd[i].spec = spec;
		rd[i].flags = EGC_FAILOVER;
		rd[i].pipelined = i;
	}
	kill_and_drain(r, rd, 2, &lb);
	egt_haproxy_stop(&lb);
}
END_TEST

/* ---- routes: a token lookup fanned out ------------------------------------ */

static void lookup_tokens(eg_client *c, const char *const *tables, size_t n, const int64_t *tok,
                          size_t ntok, const uint32_t *lens, const uint32_t *ctx, size_t nseq,
                          uint8_t **outs, eg_client_rows *blocks)
{
	size_t sizes[4];
	uint64_t ticket;
	int err;

	for (size_t i = 0; i < n; i++) {
		sizes[i] = ntok * EGT_HASH_RPT * 16;
		outs[i] = calloc(1, sizes[i]);
	}
	err = eg_client_send_tokens(c, tables, n, tok, ntok, lens, ctx, nseq, (void *const *)outs,
	                            sizes, &ticket);
	ck_assert_msg(err == 0, "send_tokens: %s", eg_client_errmsg(c));
	err = eg_client_wait_blocks(c, ticket, blocks, n);
	ck_assert_msg(err == 0, "wait_blocks: %s", eg_client_errmsg(c));
}

/* The fan-out over routes returns what one daemon of both tables returns,
 * and the rows of the reference hashing. */
static void check_routed(const char *spec, const egt_daemon *both)
{
	static const int64_t tok[] = { 5, 17, 3, 9000, 42, 7, 7, 123 };
	static const uint32_t lens[] = { 5, 3 }, ctx[] = { 2, 0 };
	const char *orders[2][2] = { { "l1", "l2" }, { "l2", "l1" } };
	uint64_t slots[8 * EGT_HASH_RPT];
	size_t nslots = egt_hash_spec_slots(tok, lens, ctx, 2, slots);
	eg_client *c, *one;

	ck_assert_int_eq(eg_client_open(spec, 5000, 0, &c), 0);
	ck_assert_int_eq(eg_client_connect(both->addr, 5000, &one), 0);
	for (int o = 0; o < 2; o++) {
		uint8_t *got[2], *ref[2];
		eg_client_rows gb[2], rb[2];

		lookup_tokens(c, orders[o], 2, tok, 8, lens, ctx, 2, got, gb);
		lookup_tokens(one, orders[o], 2, tok, 8, lens, ctx, 2, ref, rb);
		for (int i = 0; i < 2; i++) {
			uint8_t *want = egt_rows(strcmp(orders[o][i], "l1") == 0 ? 11 : 12, slots,
			                         nslots, 16);

			ck_assert_uint_eq(gb[i].count, nslots);
			ck_assert_uint_eq(gb[i].count, rb[i].count);
			ck_assert_uint_eq(gb[i].row_bytes, rb[i].row_bytes);
			ck_assert_uint_eq(gb[i].generation, rb[i].generation);
			ck_assert(memcmp(got[i], ref[i], nslots * 16) == 0);
			ck_assert(memcmp(got[i], want, nslots * 16) == 0);
			free(want);
			free(got[i]);
			free(ref[i]);
		}
	}
	eg_client_close(one);
	eg_client_close(c);
}

START_TEST(routes_fan_out)
{
	char *d1 = egt_path("l1"), *d2 = egt_path("l2"), a1[300], a2[300], spec[700];
	const char *args1[] = { "--table", a1, NULL }, *args2[] = { "--table", a2, NULL };
	const char *args12[] = { "--table", a1, "--table", a2, NULL };
	egt_daemon h1, h2, both;
	eg_client_table *tables;
	size_t n;
	eg_client *c;
	uint8_t row[16];
	uint64_t slot = 4000;
	char *json = egt_path("routes.json");
	FILE *f;

	egt_make_hash_table(d1, "l1", 16, 11, NULL);
	egt_make_hash_table(d2, "l2", 16, 12, NULL);
	snprintf(a1, sizeof(a1), "l1=%s", d1);
	snprintf(a2, sizeof(a2), "l2=%s", d2);
	egt_daemon_start(&h1, 0, args1);
	egt_daemon_start(&h2, 0, args2);
	egt_daemon_start(&both, 0, args12);

	snprintf(spec, sizeof(spec), "l1=%s;l2=%s", h1.addr, h2.addr);
	check_routed(spec, &both);
	snprintf(spec, sizeof(spec), "l1=%s;%s", h1.addr, h2.addr); /* l2 by the default group */
	check_routed(spec, &both);
	f = fopen(json, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "{\"tables\": {\"l1\": [\"%s\"], \"l2\": \"%s\"}}\n", h1.addr, h2.addr);
	fclose(f);
	snprintf(spec, sizeof(spec), "@%s", json);
	check_routed(spec, &both);

	/* info lists each table once, from the host serving it; a lookup by
	 * slot goes there; a table without a route is NOT_FOUND here */
	ck_assert_int_eq(eg_client_open(spec, 5000, 0, &c), 0);
	ck_assert_int_eq(eg_client_info(c, &tables, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(strcmp(tables[0].name, "l1") == 0 || strcmp(tables[1].name, "l1") == 0);
	ck_assert(strcmp(tables[0].name, "l2") == 0 || strcmp(tables[1].name, "l2") == 0);
	eg_client_info_free(tables, n);
	ck_assert_int_eq(eg_client_lookup(c, "l2", &slot, 1, row, sizeof(row), NULL), 0);
	{
		uint8_t *want = egt_rows(12, &slot, 1, 16);

		ck_assert(memcmp(row, want, 16) == 0);
		free(want);
	}
	ck_assert_int_eq(eg_client_lookup(c, "zz", &slot, 1, row, sizeof(row), NULL), EGC_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(eg_client_errmsg(c), "no route for table 'zz'"));
	ck_assert_int_eq(eg_client_ping(c), 0);
	ck_assert_int_eq(eg_client_reload_tables(c, NULL, NULL, 0, NULL), -EINVAL);
	eg_client_close(c);
	egt_daemon_stop(&h1, SIGTERM);
	egt_daemon_stop(&h2, SIGTERM);
	egt_daemon_stop(&both, SIGTERM);
}
END_TEST

/* ---- min_generation --------------------------------------------------------- */

static Engram__V1__Response *raw_lookup(egt_conn *k, uint64_t min_generation)
{
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	uint64_t slot = 3;

	lr.table = (char *)"t";
	lr.n_slots = 1;
	lr.slots = &slot;
	lr.min_generation = min_generation;
	req.id = EGT_ID(min_generation);
	req.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	req.lookup = &lr;
	egt_conn_send(k, &req);
	return egt_conn_recv(k, 5000);
}

static Engram__V1__Response *raw_tokens(egt_conn *k, const char **tables, size_t n,
                                        uint64_t *mins, size_t nmins)
{
	Engram__V1__TokensRequest tr = ENGRAM__V1__TOKENS_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	int64_t tok[] = { 1, 2, 3 };

	tr.tables = (char **)tables;
	tr.n_tables = n;
	tr.tokens = tok;
	tr.n_tokens = 3;
	tr.min_generation = mins;
	tr.n_min_generation = nmins;
	req.id = EGT_ID(100 + nmins);
	req.body_case = ENGRAM__V1__REQUEST__BODY_TOKENS;
	req.tokens = &tr;
	egt_conn_send(k, &req);
	return egt_conn_recv(k, 5000);
}

/* A daemon behind the generation asked answers UNAVAILABLE naming both. */
START_TEST(min_generation_daemon)
{
	char *dt = egt_path("t"), *dh = egt_path("h"), at[300], ah[300];
	const char *args[] = { "--table", at, "--table", ah, NULL }, *both[] = { "h", "h" };
	egt_daemon d;
	egt_conn k;
	Engram__V1__Response *r;
	uint64_t mins[2] = { 1, 2 };

	egt_make_table_gen(dt, "t", 100, 8, 64, 3, 3);
	egt_make_hash_table(dh, "h", 16, 4, NULL);
	snprintf(at, sizeof(at), "t=%s", dt);
	snprintf(ah, sizeof(ah), "h=%s", dh);
	egt_daemon_start(&d, 0, args);
	egt_conn_open(&k, &d);
	r = raw_lookup(&k, 4);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__UNAVAILABLE);
	ck_assert_uint_eq(r->id, EGT_ID(4));
	ck_assert_uint_eq(r->n_blocks, 0);
	ck_assert_msg(strstr(r->error, "generation 3") && strstr(r->error, "min_generation 4"),
	              "%s", r->error);
	engram__v1__response__free_unpacked(r, NULL);
	r = raw_lookup(&k, 3);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__OK);
	ck_assert_uint_eq(r->blocks[0]->generation, 3);
	engram__v1__response__free_unpacked(r, NULL);
	r = raw_tokens(&k, both, 2, mins, 2); /* h is at 1: the second asks 2 */
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__UNAVAILABLE);
	ck_assert_msg(strstr(r->error, "generation 1") && strstr(r->error, "min_generation 2"),
	              "%s", r->error);
	engram__v1__response__free_unpacked(r, NULL);
	r = raw_tokens(&k, both, 1, mins, 2);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(r->error, "min_generation has 2 entries for 1 tables"));
	engram__v1__response__free_unpacked(r, NULL);
	r = raw_tokens(&k, both, 2, mins, 1);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__BAD_REQUEST);
	engram__v1__response__free_unpacked(r, NULL);
	r = raw_tokens(&k, both, 1, mins, 1);
	ck_assert_int_eq(r->status, ENGRAM__V1__STATUS__OK);
	engram__v1__response__free_unpacked(r, NULL);
	egt_conn_close(&k);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* One lookup of slot 5 through c; its error, the generation in *gen. */
static int lookup_gen(eg_client *c, uint64_t *gen)
{
	uint64_t slot = 5;
	uint8_t row[ROW];
	eg_client_rows rows = { 0 };
	int err = eg_client_lookup(c, "t", &slot, 1, row, sizeof(row), &rows);

	*gen = rows.generation;
	return err;
}

/* A plain client sends its floor; with EGC_MONOTONIC a client of two
 * replicas that saw generation 2 never takes 1 again, and fails (past its
 * deadline) while only the replica behind is up. */
START_TEST(min_generation_clients)
{
	struct replica r[2];
	eg_client *c;
	uint64_t gen;
	double t0;
	char spec[160];

	replica_init(&r[0], "old", 1, "0");
	replica_init(&r[1], "new", 2, "0");
	replica_start(&r[0]);
	replica_start(&r[1]);

	ck_assert_int_eq(eg_client_connect(r[0].tcp, 2000, &c), 0);
	ck_assert_int_eq(eg_client_set_min_generation(c, "t", 2), 0);
	ck_assert_uint_eq(eg_client_min_generation(c, "t"), 2);
	ck_assert_int_eq(lookup_gen(c, &gen), EGC_EUNAVAILABLE);
	ck_assert_msg(strstr(eg_client_errmsg(c), "generation 1"), "%s", eg_client_errmsg(c));
	ck_assert_int_eq(eg_client_set_min_generation(c, "t", 0), 0);
	ck_assert_int_eq(lookup_gen(c, &gen), 0);
	ck_assert_uint_eq(gen, 1);
	eg_client_close(c);

	/* a floor keeps a client of both on the replica that has it */
	snprintf(spec, sizeof(spec), "%s,%s", r[0].tcp, r[1].tcp);
	ck_assert_int_eq(eg_client_open(spec, 2000, 0, &c), 0);
	ck_assert_int_eq(eg_client_set_min_generation(c, "t", 2), 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(lookup_gen(c, &gen), 0);
		ck_assert_uint_eq(gen, 2);
	}
	eg_client_close(c);

	ck_assert_int_eq(eg_client_open(spec, 600, EGC_MONOTONIC, &c), 0);
	egt_daemon_stop(&r[0].d, SIGKILL);
	ck_assert_int_eq(lookup_gen(c, &gen), 0);
	ck_assert_uint_eq(gen, 2);
	ck_assert_uint_eq(eg_client_min_generation(c, "t"), 2);
	replica_start(&r[0]);
	egt_daemon_stop(&r[1].d, SIGKILL);
	t0 = egt_now_ms();
	ck_assert_int_eq(lookup_gen(c, &gen), -ETIMEDOUT);
	ck_assert_double_ge(egt_now_ms() - t0, 599);
	ck_assert_msg(strstr(eg_client_errmsg(c), "no replica answered within 600 ms") &&
	              strstr(eg_client_errmsg(c), "min_generation 2"), "%s", eg_client_errmsg(c));
	replica_start(&r[1]);
	ck_assert_int_eq(lookup_gen(c, &gen), 0);
	ck_assert_uint_eq(gen, 2);
	eg_client_close(c);
	egt_daemon_stop(&r[0].d, SIGTERM);
	egt_daemon_stop(&r[1].d, SIGTERM);
}
END_TEST

/* A replica on this host (unix:) is chosen whatever a client started at,
 * and taken again once it is back after a failure. */
START_TEST(local_first)
{
	struct replica local, remote;
	char spec[400];
	eg_client *c;
	uint64_t gen = 0;
	double t0;

	replica_init(&local, "local", 5, "0");
	replica_init(&remote, "remote", 3, "0");
	snprintf(local.sock, sizeof(local.sock), "%s", egt_path("local.sock"));
	replica_start(&local);
	replica_start(&remote);
	snprintf(spec, sizeof(spec), "%s,unix:%s", remote.tcp, local.sock);
	for (int k = 0; k < 8; k++) {
		ck_assert_int_eq(eg_client_open(spec, 2000, 0, &c), 0);
		for (int i = 0; i < 5; i++) {
			ck_assert_int_eq(lookup_gen(c, &gen), 0);
			ck_assert_uint_eq(gen, 5);
		}
		eg_client_close(c);
	}
	ck_assert_int_eq(eg_client_open(spec, 2000, 0, &c), 0);
	egt_daemon_stop(&local.d, SIGKILL);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(lookup_gen(c, &gen), 0);
		ck_assert_uint_eq(gen, 3);
	}
	replica_start(&local);
	t0 = egt_now_ms();
	while (lookup_gen(c, &gen) == 0 && gen == 3)
		ck_assert_msg(egt_now_ms() - t0 < 3000, "still on the remote replica after 3 s");
	ck_assert_uint_eq(gen, 5);
	eg_client_close(c);
	egt_daemon_stop(&local.d, SIGTERM);
	egt_daemon_stop(&remote.d, SIGTERM);
}
END_TEST

/* ---- specs and deadlines ----------------------------------------------------- */

static void spec_bad(const char *spec, const char *why_has)
{
	char why[256];

	ck_assert_int_eq(eg_client_check_spec(spec, why, sizeof(why)), EGC_EADDR);
	ck_assert_msg(strstr(why, why_has), "'%s': %s", spec, why);
}

START_TEST(specs)
{
	ck_assert_int_eq(eg_client_check_spec("tcp:a:1,tcp:b:2", NULL, 0), 0);
	ck_assert_int_eq(eg_client_check_spec("l1,l2=tcp:a:1;l3=tcp:b:2,unix:/x;unix:/y", NULL, 0), 0);
	/* one address is a plain connection, also with ',' or ';' in a path */
	ck_assert_int_eq(egc__spec_is_fleet("unix:/tmp/a,b.sock"), 0);
	ck_assert_int_eq(egc__spec_is_fleet("unix:/tmp/a;b"), 0);
	ck_assert_int_eq(egc__spec_is_fleet("tcp:127.0.0.1:7070"), 0);
	ck_assert_int_eq(egc__spec_is_fleet("tcp:a:1,tcp:a:1"), 1);
	ck_assert_int_eq(egc__spec_is_fleet("t=tcp:a:1"), 1);
	spec_bad("l1=tcp:a:1;l1=tcp:b:1", "table 'l1' is routed twice");
	spec_bad("unix:/a;unix:/b", "more than one group without table names");
	spec_bad("layer1=", "expected unix:PATH or tcp:HOST:PORT");
	spec_bad("l1,=tcp:a:1", "an empty table name");
	spec_bad("@/nonexistent/routes.json", "routes file /nonexistent/routes.json");
}
END_TEST

/* With nothing to answer, a call fails with -ETIMEDOUT, at its deadline. */
START_TEST(deadline)
{
	char spec[128];
	eg_client *c;
	uint64_t gen;
	double t0;
	struct replica r;

	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d,tcp:127.0.0.1:%d", egt_free_port(),
	         egt_free_port());
	t0 = egt_now_ms();
	ck_assert_int_eq(eg_client_open(spec, 300, 0, &c), -ETIMEDOUT);
	ck_assert_double_ge(egt_now_ms() - t0, 299);
	ck_assert_double_lt(egt_now_ms() - t0, 2000);

	replica_init(&r, "one", 1, "0");
	replica_start(&r);
	snprintf(spec, sizeof(spec), "%s,tcp:127.0.0.1:%d", r.tcp, egt_free_port());
	ck_assert_int_eq(eg_client_open(spec, 400, 0, &c), 0);
	ck_assert_int_eq(lookup_gen(c, &gen), 0);
	egt_daemon_stop(&r.d, SIGKILL);
	t0 = egt_now_ms();
	ck_assert_int_eq(lookup_gen(c, &gen), -ETIMEDOUT);
	ck_assert_double_ge(egt_now_ms() - t0, 399);
	ck_assert_double_lt(egt_now_ms() - t0, 2000);
	ck_assert_msg(strstr(eg_client_errmsg(c), "no replica answered within 400 ms"), "%s",
	              eg_client_errmsg(c));
	eg_client_close(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fleet");
	TCase *t = tcase_create("fleet");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, address_list_kill_and_drain);
	tcase_add_test(t, haproxy_kill_and_drain);
	tcase_add_test(t, routes_fan_out);
	tcase_add_test(t, min_generation_daemon);
	tcase_add_test(t, min_generation_clients);
	tcase_add_test(t, local_first);
	tcase_add_test(t, specs);
	tcase_add_test(t, deadline);
	suite_add_tcase(s, t);
	return egt_run_suite(s);
}
