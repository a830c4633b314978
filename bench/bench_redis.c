/* bench_redis.c - the same rows from Redis and from engramd, side by side.
 *
 *   bench_redis [--slots N] [--row-bytes B] [--batch K] [--seconds S]
 *
 * The bench starts Debian's redis-server (7.x) on a unix socket in a
 * temporary directory (no persistence), stores N rows (default 1 Mi of
 * 160 B) as keys "r:<slot>" with the bytes of the engram table built with
 * `engram table create`, and starts engramd on that table on a unix socket.
 * Then one client of each, in turn, fetches K random rows per request
 * (default 4096: Redis MGET of K keys, engramd one LookupRequest), two
 * requests in flight, for S seconds (default 10), and checks that both
 * return the same bytes for a sample of requests.
 *
 * Target (issue 9): engramd >= 10 x Redis rows/s. The ratio is last on its
 * line. */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "engram.h"

static uint64_t n_slots = 1048576;
static uint32_t row_bytes = 160;
static uint64_t batch = 4096;
static double seconds = 10;
static pid_t redis_pid;

static void stop_redis(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

static redisContext *start_redis(const char *sock)
{
	char port0[] = "0";
	const char *argv[] = { "redis-server", "--port", port0, "--unixsocket", sock,
	                       "--save", "", "--appendonly", "no", "--daemonize", "no",
	                       "--loglevel", "warning", NULL };
	redisContext *r = NULL;

	char *log = bu_path("redis.log");

	redis_pid = fork();
	if (redis_pid < 0)
		bu_die("fork: %s", strerror(errno));
	if (redis_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "bench: cannot run redis-server (Debian's redis-server): %s\n",
		        strerror(errno));
		_exit(127);
	}
	atexit(stop_redis);
	for (int i = 0; i < 500; i++) {
		r = redisConnectUnix(sock);
		if (r && !r->err)
			return r;
		if (r)
			redisFree(r);
		usleep(20000);
	}
	bu_die("redis-server did not start");
}

/* SETs every row, pipelined 1024 at a time. */
static void load(redisContext *r, eg_client *c)
{
	const size_t step = 1024;
	uint64_t *slots = malloc(step * sizeof(*slots));
	uint8_t *rows = malloc(step * row_bytes);

	for (uint64_t s0 = 0; s0 < n_slots; s0 += step) {
		size_t n = n_slots - s0 < step ? n_slots - s0 : step;
		eg_client_rows out;

		for (size_t i = 0; i < n; i++)
			slots[i] = s0 + i;
		if (eg_client_lookup(c, "t", slots, n, rows, n * row_bytes, &out))
			bu_die("lookup: %s", eg_client_errmsg(c));
		for (size_t i = 0; i < n; i++)
			redisAppendCommand(r, "SET r:%llu %b", (unsigned long long)slots[i],
			                   rows + i * row_bytes, (size_t)row_bytes);
		for (size_t i = 0; i < n; i++) {
			redisReply *rep;

			if (redisGetReply(r, (void **)&rep) != REDIS_OK)
				bu_die("redis SET failed");
			freeReplyObject(rep);
		}
	}
	free(slots);
	free(rows);
}

struct mget {
	char **argv;
	size_t *lens;
	char *keys;
};

static void mget_init(struct mget *m)
{
	m->argv = malloc((batch + 1) * sizeof(char *));
	m->lens = malloc((batch + 1) * sizeof(size_t));
	m->keys = malloc(batch * 24);
	m->argv[0] = (char *)"MGET";
	m->lens[0] = 4;
}

static void mget_send(redisContext *r, struct mget *m, const uint64_t *slots)
{
	for (size_t i = 0; i < batch; i++) {
		m->argv[i + 1] = m->keys + i * 24;
		m->lens[i + 1] = (size_t)snprintf(m->keys + i * 24, 24, "r:%llu",
		                                  (unsigned long long)slots[i]);
	}
	redisAppendCommandArgv(r, (int)batch + 1, (const char **)m->argv, m->lens);
}

static redisReply *mget_reply(redisContext *r)
{
	redisReply *rep;

	if (redisGetReply(r, (void **)&rep) != REDIS_OK || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != batch)
		bu_die("redis MGET failed");
	return rep;
}

static void pick(uint64_t *slots, uint64_t *rng)
{
	for (size_t i = 0; i < batch; i++)
		slots[i] = bu_rand(rng) % n_slots;
}

static double bench_redis(redisContext *r, eg_client *c)
{
	uint64_t *slots[2] = { malloc(batch * 8), malloc(batch * 8) }, rng = 11;
	uint8_t *check = malloc(batch * row_bytes);
	struct mget m[2];
	double rows = 0, t0, until;
	int k = 0;

	for (int i = 0; i < 2; i++) {
		mget_init(&m[i]);
		pick(slots[i], &rng);
		mget_send(r, &m[i], slots[i]);
	}
	t0 = bu_now();
	until = t0 + seconds;
	for (long n = 0;; n++, k ^= 1) {
		redisReply *rep = mget_reply(r);

		if (n % 64 == 0) { /* same bytes as engramd */
			eg_client_rows out;

			if (eg_client_lookup(c, "t", slots[k], batch, check, batch * row_bytes, &out))
				bu_die("lookup");
			for (size_t i = 0; i < batch; i++)
				if (rep->element[i]->len != row_bytes ||
				    memcmp(rep->element[i]->str, check + i * row_bytes, row_bytes))
					bu_die("redis and engramd disagree on slot %llu",
					       (unsigned long long)slots[k][i]);
		}
		freeReplyObject(rep);
		rows += (double)batch;
		if (bu_now() >= until)
			break;
		pick(slots[k], &rng);
		mget_send(r, &m[k], slots[k]);
	}
	t0 = rows / (bu_now() - t0);
	freeReplyObject(mget_reply(r)); /* the other one in flight */
	return t0;
}

static double bench_engramd(eg_client *c)
{
	struct bu_uniform u = { n_slots, 11 };
	struct bu_drive dr = { .table = "t", .batch = batch, .depth = 2, .row_bytes = row_bytes,
	                       .seconds = seconds, .next = bu_uniform_next, .arg = &u };

	bu_drive(c, &dr);
	return dr.rows / dr.elapsed;
}

int main(int argc, char **argv)
{
	char table[4200];
	const char *args[] = { table, NULL };
	redisContext *r;
	double er, rr;
	bu_daemon d;
	eg_client *c;
	char *dir;
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &n_slots },
		{ "row-bytes", BU_U32, &row_bytes },
		{ "batch", BU_U64, &batch },
		{ "seconds", BU_DOUBLE, &seconds },
		{ NULL, BU_STR, NULL },
	};

	bu_options(argc, argv, opts, "bench_redis [--slots N] [--row-bytes B] [--batch K] [--seconds S]");
	dir = bu_path("t");
	bu_create_table(dir, n_slots, row_bytes, 4);
	snprintf(table, sizeof(table), "--table=t=%s", dir);
	bu_daemon_start(&d, args);
	if (eg_client_connect(d.addr, 60000, &c))
		bu_die("connect");
	r = start_redis(bu_path("redis.sock"));
	load(r, c);
	er = bench_engramd(c); /* warms the table's pages too */
	rr = bench_redis(r, c);
	er = bench_engramd(c);
	printf("%zu rows of %u B per request, 2 in flight, unix sockets, %llu rows stored\n", batch,
	       row_bytes, (unsigned long long)n_slots);
	printf("redis-server MGET: %.0f rows/s; engramd lookups: %.0f rows/s; x redis %.1f\n", rr, er,
	       er / rr);
	redisFree(r);
	eg_client_close(c);
	bu_daemon_stop(&d);
	return 0;
}
