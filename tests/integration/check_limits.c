/* check_limits.c - what abusive clients can cost the real engramd: memory
 * with clients that pipeline large lookups and never read (--max-output per
 * connection, --max-output-total over all), answers that could never fit
 * (TOO_LARGE before anything is allocated), and the accept loop at the
 * open-file limit. Memory is the daemon's own figure from /proc (RssAnon,
 * VmHWM); rows are checked against egt_row_bytes, the builder's formula. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eg_hash.h"
#include "egtest.h"
#include "engram.pb-c.h"

typedef Engram__V1__Request Request;
typedef Engram__V1__Response Response;

#define ROW 4096u                  /* bytes per row of both tables */
#define SLOTS 16384u               /* rows of the plain table */
#define SEED_R 31u                 /* egt_row_bytes seeds of the two tables */
#define SEED_H 41u
#define BIG_ROWS 4096u             /* a big answer: 16 MiB, more than a socket buffer */
#define MiB (1024.0 * 1024.0)

/* Sanitizers shadow what the daemon touches: its memory grows by a factor. */
#if defined(__SANITIZE_THREAD__)
#define MEM_FACTOR 6
#elif defined(__SANITIZE_ADDRESS__)
#define MEM_FACTOR 2
#else
#define MEM_FACTOR 1
#endif

static char *dir_r, *dir_h, arg_r[300], arg_h[300];
static eg_hash *hash;

/* A plain table r of SLOTS rows and a hashed table h, both of ROW-byte rows. */
static void make_tables(void)
{
	dir_r = egt_path("r");
	dir_h = egt_path("h");
	egt_make_table(dir_r, "r", SLOTS, ROW, 1024, SEED_R);
	egt_make_hash_table(dir_h, "h", ROW, SEED_H, &hash);
	snprintf(arg_r, sizeof(arg_r), "r=%s", dir_r);
	snprintf(arg_h, sizeof(arg_h), "h=%s", dir_h);
}

static void start(egt_daemon *d, const char *const *extra)
{
	const char *args[16] = { "--table", arg_r, "--table", arg_h, "--threads", "2" };
	size_t n = 6;

	make_tables();
	for (size_t i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	egt_daemon_start(d, 0, args);
}

/* A "Key:   N kB" line of /proc/pid/status, in bytes. */
static double proc_status(pid_t pid, const char *key)
{
	char path[64], line[256];
	double v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
			v = strtod(line + strlen(key) + 1, NULL) * 1024;
	fclose(f);
	ck_assert_msg(v >= 0, "no %s in %s", key, path);
	return v;
}

/* User plus system CPU seconds the process has used. */
static double cpu_seconds(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	ck_assert_ptr_nonnull(p);
	/* after ")": state (3), then fields 4..13, utime (14), stime (15) */
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- requests and their exact answers ------------------------------------ */

/* A request of either kind, with its ids, so that its answer can be checked
 * once it comes (maybe much later). */
struct ask {
	Request r;
	Engram__V1__LookupRequest lr;
	Engram__V1__TokensRequest tr;
	char *tables[1];
	uint64_t *ids;     /* slots, or token ids (as int64) */
	size_t n;
};

/* A lookup of n slots of r (seeded), or with tokens a request for the rows
 * of n tokens of h (n * 4 rows). */
static void ask_init(struct ask *a, uint64_t id, int tokens, size_t n, uint64_t seed)
{
	memset(a, 0, sizeof(*a));
	a->ids = malloc(n * sizeof(uint64_t) + 1);
	ck_assert_ptr_nonnull(a->ids);
	a->n = n;
	for (size_t i = 0; i < n; i++)
		a->ids[i] = tokens ? rnd(&seed) % 50000 : rnd(&seed) % SLOTS;
	engram__v1__request__init(&a->r);
	a->r.id = id;
	if (tokens) {
		engram__v1__tokens_request__init(&a->tr);
		a->tables[0] = (char *)"h";
		a->tr.tables = a->tables;
		a->tr.n_tables = 1;
		a->tr.tokens = (int64_t *)a->ids;
		a->tr.n_tokens = n;
		a->r.body_case = ENGRAM__V1__REQUEST__BODY_TOKENS;
		a->r.tokens = &a->tr;
	} else {
		engram__v1__lookup_request__init(&a->lr);
		a->lr.table = (char *)"r";
		a->lr.slots = a->ids;
		a->lr.n_slots = n;
		a->r.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
		a->r.lookup = &a->lr;
	}
}

static void ask_free(struct ask *a)
{
	free(a->ids);
}

/* The answer to a: its id, and every row as the table was built. */
static void check_answer(const struct ask *a, const Response *r)
{
	int tokens = a->r.body_case == ENGRAM__V1__REQUEST__BODY_TOKENS;
	size_t rows = tokens ? a->n * eg_hash_rows_per_token(hash) : a->n;
	uint64_t *slots = a->ids;
	uint8_t want[ROW];

	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->status == ENGRAM__V1__STATUS__OK, "id %llu: status %d: %s",
	              (unsigned long long)a->r.id, r->status, r->error);
	ck_assert_uint_eq(r->id, a->r.id);
	ck_assert_uint_eq(r->n_blocks, 1);
	ck_assert_uint_eq(r->blocks[0]->count, rows);
	ck_assert_uint_eq(r->blocks[0]->row_bytes, ROW);
	ck_assert_uint_eq(r->blocks[0]->data.len, rows * ROW);
	if (tokens) {
		uint32_t seq = (uint32_t)a->n;

		slots = malloc(rows * sizeof(uint64_t));
		ck_assert_int_eq(eg_hash_slots(hash, (const int64_t *)a->ids, &seq, NULL, 1, slots,
		                               NULL), 0);
	}
	for (size_t i = 0; i < rows; i++) {
		egt_row_bytes(tokens ? SEED_H : SEED_R, slots[i], ROW, want);
		ck_assert_msg(memcmp(r->blocks[0]->data.data + i * ROW, want, ROW) == 0,
		              "id %llu: row %zu (slot %llu) differs", (unsigned long long)a->r.id, i,
		              (unsigned long long)slots[i]);
	}
	if (tokens)
		free(slots);
}

static void round_trip(egt_conn *c, uint64_t id, int tokens, size_t n, uint64_t seed)
{
	struct ask a;
	Response *r;

	ask_init(&a, id, tokens, n, seed);
	egt_conn_send(c, &a.r);
	r = egt_conn_recv(c, 20000);
	check_answer(&a, r);
	engram__v1__response__free_unpacked(r, NULL);
	ask_free(&a);
}

/* Reads every answer of asks[0..n) in order and checks it exactly. */
static void read_all(egt_conn *c, struct ask *asks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		Response *r = egt_conn_recv(c, 20000);

		check_answer(&asks[i], r);
		engram__v1__response__free_unpacked(r, NULL);
		ask_free(&asks[i]);
	}
}

/* Samples the daemon's anonymous memory for secs; returns the largest. */
static double peak_anon(const egt_daemon *d, double secs, double peak)
{
	double end = egt_now() + secs;

	do {
		double v = proc_status(d->pid, "RssAnon");

		if (v > peak)
			peak = v;
		usleep(50000);
	} while (egt_now() < end);
	return peak;
}

/* ---- memory -------------------------------------------------------------- */

/* One client pipelines 24 answers of 16 MiB (lookups and token lookups)
 * and reads none: the daemon holds about one of them (--max-output 16M),
 * not all 24, and keeps serving another client exactly. Then the slow
 * client reads and gets every answer, in order. */
START_TEST(slow_reader_bounded)
{
	enum { N = 24 };
	static struct ask asks[N];
	const char *extra[] = { "--max-output", "16M", NULL };
	double idle, peak, t0;
	egt_daemon d;
	egt_conn slow, other;

	start(&d, extra);
	egt_conn_open(&other, &d);
	round_trip(&other, 1, 0, 256, 1); /* warm: thread pool, arenas */
	round_trip(&other, 2, 1, 64, 2);
	idle = proc_status(d.pid, "RssAnon");

	egt_conn_open(&slow, &d);
	for (size_t i = 0; i < N; i++) {
		int tokens = i % 2;

		ask_init(&asks[i], 100 + i, tokens, tokens ? BIG_ROWS / 4 : BIG_ROWS, 7 + i);
		egt_conn_send(&slow, &asks[i].r);
	}
	t0 = egt_now();
	peak = idle;
	for (uint64_t i = 0; i < 20; i++) {
		round_trip(&other, 10 + i, (int)(i % 2), i % 2 ? 64 : 256, 50 + i);
		peak = peak_anon(&d, 0, peak);
	}
	peak = peak_anon(&d, 1.5 - (egt_now() - t0), peak); /* old code: every gather is done */
	ck_assert_msg(peak - idle < (16 + 16 + 16) * MiB * MEM_FACTOR,
	              "a client that never reads grew the daemon by %.1f MiB (bound: --max-output "
	              "16 MiB + one 16 MiB answer + 16 MiB)", (peak - idle) / MiB);
	read_all(&slow, asks, N);
	round_trip(&other, 99, 0, 16, 3);
	egt_conn_close(&slow);
	egt_conn_close(&other);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Four clients that never read hold one 16 MiB answer each; together they
 * fill --max-output-total 72M so far that a fifth answer of that size must
 * wait while a small one is served. Once the slow client that asked for one
 * answer only has read it, the waiting answer comes, exact; then the other
 * slow clients read all of theirs. */
START_TEST(total_bounded_over_connections)
{
	enum { SLOW = 4, EACH = 4 };
	static struct ask asks[SLOW][EACH];
	const char *extra[] = { "--max-output", "16M", "--max-output-total", "72M", NULL };
	double idle, peak;
	struct ask big;
	egt_daemon d;
	egt_conn slow[SLOW], c;

	start(&d, extra);
	egt_conn_open(&c, &d);
	round_trip(&c, 1, 0, 256, 1);
	idle = proc_status(d.pid, "RssAnon");
	for (size_t k = 0; k < SLOW; k++) {
		egt_conn_open(&slow[k], &d);
		/* slow[0] then holds nothing more the waiting answer would race for */
		for (size_t i = 0; i < (k ? EACH : 1); i++) {
			ask_init(&asks[k][i], 100 * k + i, (int)(i % 2), i % 2 ? BIG_ROWS / 4 : BIG_ROWS,
			         1000 * k + i);
			egt_conn_send(&slow[k], &asks[k][i].r);
		}
	}
	peak = peak_anon(&d, 1.5, idle);
	round_trip(&c, 2, 0, 16, 2); /* there is room for a small answer */
	ask_init(&big, 3, 0, BIG_ROWS, 3);
	egt_conn_send(&c, &big.r);
	ck_assert_msg(!egt_conn_ready(&c, 1000),
	              "a 16 MiB answer came although 4 x 16 MiB of a 72 MiB budget are held");
	peak = peak_anon(&d, 0, peak);
	ck_assert_msg(peak - idle < (72 + 16) * MiB * MEM_FACTOR,
	              "four clients that never read grew the daemon by %.1f MiB (bound: "
	              "--max-output-total 72 MiB + 16 MiB)", (peak - idle) / MiB);
	read_all(&slow[0], asks[0], 1);
	egt_conn_close(&slow[0]);
	{
		Response *r = egt_conn_recv(&c, 20000);

		check_answer(&big, r);
		engram__v1__response__free_unpacked(r, NULL);
		ask_free(&big);
	}
	for (size_t k = 1; k < SLOW; k++) {
		read_all(&slow[k], asks[k], EACH);
		egt_conn_close(&slow[k]);
	}
	egt_conn_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

static void expect_too_large(egt_conn *c, struct ask *a)
{
	Response *r;

	egt_conn_send(c, &a->r);
	r = egt_conn_recv(c, 20000);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->status == ENGRAM__V1__STATUS__TOO_LARGE, "id %llu: status %d, not TOO_LARGE",
	              (unsigned long long)a->r.id, r->status);
	ck_assert_uint_eq(r->id, a->r.id);
	ck_assert_uint_eq(r->n_blocks, 0);
	ck_assert_msg(strstr(r->error, "--max-output-total"), "message: %s", r->error);
	engram__v1__response__free_unpacked(r, NULL);
	ask_free(a);
}

/* Answers of 64 MiB can never fit a 32 MiB budget: TOO_LARGE at once, with
 * no 64 MiB allocated (the daemon's peak memory stays put), and the same
 * connection is served after. */
START_TEST(never_fits_too_large)
{
	const char *extra[] = { "--max-output-total", "32M", NULL };
	double hwm;
	struct ask a;
	egt_daemon d;
	egt_conn c;

	start(&d, extra);
	egt_conn_open(&c, &d);
	round_trip(&c, 1, 0, 256, 1);
	hwm = proc_status(d.pid, "VmHWM");
	ask_init(&a, 2, 0, SLOTS, 2); /* 64 MiB of rows */
	expect_too_large(&c, &a);
	ask_init(&a, 3, 1, SLOTS / 4, 3); /* 4096 tokens x 4 rows: 64 MiB */
	expect_too_large(&c, &a);
	ck_assert_msg(proc_status(d.pid, "VmHWM") - hwm < 16 * MiB,
	              "the daemon's peak grew by %.1f MiB answering TOO_LARGE",
	              (proc_status(d.pid, "VmHWM") - hwm) / MiB);
	round_trip(&c, 4, 0, 1024, 4);
	round_trip(&c, 5, 1, 256, 5);
	egt_conn_close(&c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* ---- file descriptors ---------------------------------------------------- */

static void ping(egt_conn *c, uint64_t id)
{
	Engram__V1__PingRequest pr = ENGRAM__V1__PING_REQUEST__INIT;
	Request r = ENGRAM__V1__REQUEST__INIT;
	Response *resp;

	r.id = id;
	r.body_case = ENGRAM__V1__REQUEST__BODY_PING;
	r.ping = &pr;
	egt_conn_send(c, &r);
	resp = egt_conn_recv(c, 5000);
	ck_assert_ptr_nonnull(resp);
	ck_assert_int_eq(resp->body_case, ENGRAM__V1__RESPONSE__BODY_PONG);
	ck_assert_uint_eq(resp->id, id);
	engram__v1__response__free_unpacked(resp, NULL);
}

/* A daemon with 64 fds and 150 clients: at the limit it idles (CPU, at most
 * about one log line a second) instead of spinning on accept, keeps serving
 * the clients it took, and takes new ones once fds are free again. */
START_TEST(fd_limit_no_spin)
{
	enum { CONNS = 150 };
	static egt_conn conns[CONNS];
	egt_daemon_opts o = { .nofile_soft = 40, .nofile_hard = 64 };
	const char *args[] = { "--table", arg_r, "--threads", "2", NULL };
	double cpu0, t0, secs, cpu;
	size_t lines0, lines;
	egt_daemon d;
	egt_conn c;

	make_tables();
	egt_daemon_start_with(&d, &o, args);
	for (size_t i = 0; i < CONNS; i++)
		egt_conn_open(&conns[i], &d); /* the backlog holds what is not accepted */
	usleep(300000);
	lines0 = egt_count_lines(d.log, "accept:");
	cpu0 = cpu_seconds(d.pid);
	t0 = egt_now();
	sleep(3);
	cpu = cpu_seconds(d.pid) - cpu0;
	secs = egt_now() - t0;
	lines = egt_count_lines(d.log, "accept:") - lines0;
	ck_assert_msg(cpu < 0.1 * secs, "at the fd limit the daemon used %.2f s of CPU in %.1f s",
	              cpu, secs);
	ck_assert_msg(lines <= (size_t)secs + 1, "%zu lines about accept in %.1f s", lines, secs);
	ck_assert_msg(lines0 + lines >= 1, "the daemon never reached its fd limit");
	ping(&conns[0], 1); /* accepted before the limit: still served */
	for (size_t i = 0; i < CONNS; i++)
		egt_conn_close(&conns[i]);
	egt_conn_open(&c, &d);
	ping(&c, 2);
	egt_conn_close(&c);
	ck_assert_uint_eq(egt_count_lines(d.log, "raised the open-file limit from 40 to 64"), 1);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("limits");
	TCase *t = tcase_create("limits");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, slow_reader_bounded);
	tcase_add_test(t, total_bounded_over_connections);
	tcase_add_test(t, never_fits_too_large);
	tcase_add_test(t, fd_limit_no_spin);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return egt_run_suite(suite());
}
