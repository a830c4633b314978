/* check_reader.c - libengram's reader thread against the real engramd:
 * answers far larger than the socket buffers are read while the caller
 * does something else (and, as the control, are not without the thread),
 * and close with answers streaming in. check_client.c runs its pipeline,
 * timeout and restart tests with the thread on as well. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "engram.h"

#define ROW 160
#define SLOTS 20000
#define BIG 20000 /* slots per lookup: 3.2 MB of rows */

static char *table_dir;
static egt_daemon daemon_;

static void start(int with_tcp)
{
	char arg[4096];
	const char *args[] = { "--table", arg, NULL };

	table_dir = egt_path("ta");
	egt_make_table(table_dir, "a", SLOTS, ROW, 1024, 7);
	snprintf(arg, sizeof(arg), "a=%s", table_dir);
	egt_daemon_start(&daemon_, with_tcp, args);
}

static eg_client *dial(const char *addr, int reader)
{
	eg_client *c = NULL;
	int err = eg_client_connect(addr, 20000, &c);

	ck_assert_msg(err == 0, "connect %s: %s", addr, eg_client_strerror(err));
	if (reader)
		ck_assert_int_eq(eg_client_start_reader(c), 0);
	return c;
}

static uint64_t *slots_of(size_t n, uint64_t seed)
{
	uint64_t *v = malloc(n * sizeof(*v));

	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < n; i++)
		v[i] = (seed * 7919 + i * 104729) % SLOTS;
	return v;
}

static void check_rows(const unsigned char *got, const uint64_t *slots, size_t n)
{
	unsigned char *want = egt_rows(7, slots, n, ROW);

	ck_assert(memcmp(got, want, n * ROW) == 0);
	free(want);
}

/* Whether ticket becomes ready within ms while the caller only sleeps. */
static int ready_within(eg_client *c, uint64_t ticket, int ms)
{
	for (int i = 0; i < ms; i += 5) {
		int r = eg_client_ready(c, ticket);

		ck_assert_int_ge(r, 0);
		if (r)
			return 1;
		usleep(5000);
	}
	return 0;
}

START_TEST(answers_arrive_while_the_caller_sleeps)
{
	uint64_t *s = slots_of(BIG, 1), t[2];
	unsigned char *buf[2] = { malloc(BIG * ROW), malloc(BIG * ROW) };
	eg_client_rows r;

	start(1);
	for (int pass = 0; pass < 2; pass++) {
		eg_client *c = dial(pass ? daemon_.tcp_addr : daemon_.addr, 1);

		for (int i = 0; i < 2; i++)
			ck_assert_int_eq(eg_client_send_lookup(c, "a", s, BIG, buf[i], BIG * ROW,
			                                       &t[i]), 0);
		for (int i = 0; i < 2; i++)
			ck_assert_msg(ready_within(c, t[i], 20000), "ticket %d not read", i);
		for (int i = 0; i < 2; i++) {
			ck_assert_int_eq(eg_client_wait(c, t[i], &r), 0);
			ck_assert_uint_eq(r.count, BIG);
			check_rows(buf[i], s, BIG);
		}
		ck_assert_int_eq(eg_client_ready(c, t[0]), EGC_ETICKET);
		eg_client_close(c);
	}
	/* the control: without the thread the answer waits for a call */
	{
		eg_client *c = dial(daemon_.addr, 0);

		ck_assert_int_eq(eg_client_send_lookup(c, "a", s, BIG, buf[0], BIG * ROW, &t[0]), 0);
		ck_assert(!ready_within(c, t[0], 300));
		ck_assert_int_eq(eg_client_wait(c, t[0], &r), 0);
		check_rows(buf[0], s, BIG);
		eg_client_close(c);
	}
	free(buf[0]);
	free(buf[1]);
	free(s);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST



/* Closing while the thread streams answers in: it ends, the descriptors
 * go, and the daemon serves the next client. */
START_TEST(close_while_reading)
{
	uint64_t *s = slots_of(BIG, 3), ticket;
	unsigned char *buf = malloc(BIG * ROW);
	int mine;
	eg_client *c = NULL;

	start(0);
	c = dial(daemon_.addr, 0);
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	mine = egt_fd_count(getpid());
	for (int round = 0; round < 5; round++) {
		c = dial(daemon_.addr, 1);
		for (int i = 0; i < 6; i++)
			ck_assert_int_eq(eg_client_send_lookup(c, "a", s, BIG, buf, BIG * ROW,
			                                       &ticket), 0);
		usleep((useconds_t)(round * 2000));
		eg_client_close(c);
		ck_assert_int_eq(egt_fd_count(getpid()), mine);
	}
	c = dial(daemon_.addr, 1);
	ck_assert_int_eq(eg_client_ping(c), 0);
	eg_client_close(c);
	free(buf);
	free(s);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST


/* This process's libengram reader threads (named "eg-reader"; a sanitizer
 * may run threads of its own, which are not counted). */
static int my_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue; /* the thread has ended */
		if (fgets(comm, sizeof(comm), f) != NULL)
			n += strcmp(comm, "eg-reader\n") == 0;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* A client of several daemons (an address list, here the same daemon over
 * unix and TCP): each replica's connection reads in the background. */
START_TEST(fleet_members_read_in_the_background)
{
	uint64_t *s = slots_of(BIG, 5), t;
	unsigned char *buf = malloc(BIG * ROW);
	char spec[700];
	eg_client *c = NULL;
	eg_client_rows r;
	int threads;

	start(1);
	snprintf(spec, sizeof(spec), "%s,%s", daemon_.addr, daemon_.tcp_addr);
	ck_assert_int_eq(eg_client_open(spec, 20000, 0, &c), 0);
	threads = my_threads();
	ck_assert_int_eq(eg_client_start_reader(c), 0);
	for (int i = 0; i < 3; i++) {
		memset(buf, 0, BIG * ROW);
		ck_assert_int_eq(eg_client_send_lookup(c, "a", s, BIG, buf, BIG * ROW, &t), 0);
		ck_assert_int_eq(eg_client_ready(c, t), -ENOTSUP);
		usleep(50000);
		ck_assert_msg(eg_client_wait(c, t, &r) == 0, "%s", eg_client_errmsg(c));
		check_rows(buf, s, BIG);
		/* one replica in use (the unix one): one reader thread */
		ck_assert_int_eq(my_threads(), threads + 1);
	}
	eg_client_close(c);
	ck_assert_int_eq(my_threads(), threads);
	free(buf);
	free(s);
	ck_assert_int_eq(egt_daemon_stop(&daemon_, SIGTERM), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reader");
	TCase *tc = tcase_create("reader");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, answers_arrive_while_the_caller_sleeps);
	tcase_add_test(tc, close_while_reading);
	tcase_add_test(tc, fleet_members_read_in_the_background);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
