/* check_corrupt.c - a damaged table version never kills engramd or the
 * engram command. Each damage of tests/support/lmdbfile.c is made from a
 * good table here and:
 *   - published to a running engramd (the link repointed, then a Reload
 *     request or SIGHUP), at --verify none, new and all: the daemon refuses
 *     it naming the chunk or page, and keeps serving the old version's rows
 *     exactly (against egt_row_bytes, not against code under test);
 *   - served at start-up: engramd exits 1 with one line naming it;
 *   - given to `engram table verify` (exit 1, one line per problem, one of
 *     them naming it), `info` and `publish` (exit 1, one line).
 * Damage only checksums can see (EGT_CHUNK_GARBAGE) is refused where the
 * --verify level promises checksums, and by verify. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engram.h"
#include "egtest.h"
#include "lmdbfile.h"

/* Chunks of two overflow pages, enough of them for a rows tree of depth 2:
 * every damage of lmdbfile.h fits. */
#define SLOTS 5120
#define CHUNK 32
#define RB 255
#define DAMAGED_CHUNK 77

static const char *const modes[] = { "none", "new", "all" };

/* Whether text names expect ("chunk 7" but not "chunk 77"). */
static int names(const char *text, const char *expect)
{
	for (const char *p = text ? strstr(text, expect) : NULL; p; p = strstr(p + 1, expect))
		if (p[strlen(expect)] < '0' || p[strlen(expect)] > '9')
			return 1;
	return 0;
}

static char *damaged_version(enum egt_damage kind, uint64_t seed, char *expect, size_t len)
{
	char name[32], *dir;

	snprintf(name, sizeof name, "v%llu", (unsigned long long)seed);
	dir = egt_path(name);
	egt_make_table(dir, "t", SLOTS, RB, CHUNK, seed);
	ck_assert(egt_damage_fits(dir, kind));
	egt_damage(dir, kind, DAMAGED_CHUNK, expect, len);
	return dir;
}

/* Points link at dir atomically, as `engram table publish` does. */
static void repoint(const char *link, const char *dir)
{
	char tmp[600];

	snprintf(tmp, sizeof tmp, "%s.tmp", link);
	unlink(tmp);
	ck_assert_int_eq(symlink(dir, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
}

/* Every row of table t is version seed's, read through the daemon. */
static void expect_rows(const char *addr, uint64_t seed)
{
	eg_client *c;
	uint64_t slots[1024];
	uint8_t *out = malloc(1024 * RB), want[RB];
	eg_client_rows rows;

	ck_assert_int_eq(eg_client_connect(addr, 10000, &c), 0);
	for (uint64_t first = 0; first < SLOTS; first += 1024) {
		for (int i = 0; i < 1024; i++)
			slots[i] = first + (uint64_t)(i * 389) % 1024;
		ck_assert_int_eq(eg_client_lookup(c, "t", slots, 1024, out, 1024 * RB, &rows), 0);
		ck_assert_uint_eq(rows.count, 1024);
		for (int i = 0; i < 1024; i++) {
			egt_row_bytes(seed, slots[i], RB, want);
			ck_assert_msg(memcmp(out + i * RB, want, RB) == 0, "slot %llu is not version %llu's",
			              (unsigned long long)slots[i], (unsigned long long)seed);
		}
	}
	free(out);
	eg_client_close(c);
}

static eg_client_reload reload(const char *addr)
{
	eg_client *c;
	eg_client_reload res;
	size_t n = 0;

	memset(&res, 0, sizeof res);
	ck_assert_int_eq(eg_client_connect(addr, 30000, &c), 0);
	ck_assert_int_eq(eg_client_reload_tables(c, "t", &res, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	eg_client_close(c);
	return res;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);

	ck_assert_ptr_nonnull(buf);
	if (f) {
		size_t n = fread(buf, 1, (1 << 16) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static unsigned count_lines(const char *text)
{
	unsigned n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Runs argv with stdout and stderr to files; returns the exit status, or
 * 128 + the signal that killed it; one still running after 30 s is killed
 * (an engramd that served what it should have refused). */
static int run(const char *const *argv, char **out, char **err)
{
	char *op = egt_path("out"), *ep = egt_path("err");
	int status;
	time_t until = time(NULL) + 30;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(o, STDOUT_FILENO);
		dup2(e, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (time(NULL) > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("%s did not exit within 30 s", argv[0]);
		}
		usleep(10000);
	}
	*out = read_text(op);
	*err = read_text(ep);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *engram_bin(void)
{
	return getenv("ENGRAM") ? getenv("ENGRAM") : "build/engram";
}

static const char *engramd_bin(void)
{
	return getenv("ENGRAMD") ? getenv("ENGRAMD") : "build/engramd";
}

/* ---- a running daemon ------------------------------------------------------- */

START_TEST(test_reload_refuses_damage)
{
	enum egt_damage kind = (enum egt_damage)_i;

	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		char *v1 = egt_path("v1"), *link = egt_path("live"), table[600], expect[128], *v2;
		const char *args[] = { "--table", table, "--verify", modes[m], NULL };
		int sums_only = kind == EGT_CHUNK_GARBAGE, promised = strcmp(modes[m], "none") != 0;
		egt_daemon d;
		eg_client_reload res;

		egt_make_table(v1, "t", SLOTS, RB, CHUNK, 1);
		ck_assert_int_eq(symlink(v1, link), 0);
		snprintf(table, sizeof table, "t=%s", link);
		egt_daemon_start(&d, 0, args);
		expect_rows(d.addr, 1);

		v2 = damaged_version(kind, 2, expect, sizeof expect);
		repoint(link, v2);
		res = reload(d.addr);
		if (sums_only && !promised) {
			/* --verify none promises no checksums: the version is served */
			ck_assert_msg(res.reloaded, "%s", res.error);
			repoint(link, v1);
			ck_assert(reload(d.addr).reloaded);
		} else {
			ck_assert_msg(!res.reloaded, "--verify %s: %s was served", modes[m],
			              egt_damage_name(kind));
			ck_assert_msg(names(res.error, expect) && strstr(res.error, "damaged"),
			              "--verify %s %s: '%s' not in '%s'", modes[m], egt_damage_name(kind),
			              expect, res.error);
			ck_assert_uint_eq(res.new_generation, 1);
		}
		expect_rows(d.addr, 1);

		/* SIGHUP takes the same road; the refusal is logged once */
		if (!(sums_only && !promised)) {
			char *log;
			double until = (double)time(NULL) + 20;

			repoint(link, v2);
			kill(d.pid, SIGHUP);
			do {
				usleep(20000);
				log = read_text(d.log);
				if (strstr(log, "reload:"))
					break;
				free(log);
				log = NULL;
			} while ((double)time(NULL) < until);
			/* the second refusal, after the Reload request's */
			ck_assert_msg(log && strstr(log, "reload refused") &&
			              names(strstr(strstr(log, "reload refused") + 1, "reload refused"),
			                    expect), "%s", log);
			free(log);
			expect_rows(d.addr, 1);
		}
		ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	}
}
END_TEST

/* At start-up a damaged table makes engramd exit 1 with one line. */
START_TEST(test_startup_refuses_damage)
{
	enum egt_damage kind = (enum egt_damage)_i;
	char expect[128], table[600], sock[600], *out, *err;
	char *dir = damaged_version(kind, 3, expect, sizeof expect);
	/* start-up checksums are promised by --verify all only */
	const char *verify = kind == EGT_CHUNK_GARBAGE ? "all" : "new";
	const char *argv[] = { engramd_bin(), "--listen", sock, "--table", table, "--verify",
	                       verify, NULL };

	snprintf(table, sizeof table, "t=%s", dir);
	snprintf(sock, sizeof sock, "unix:%s", egt_path("s.sock"));
	ck_assert_int_eq(run(argv, &out, &err), 1);
	ck_assert_msg(count_lines(err) == 1 && names(err, expect) && strstr(err, "table t:"),
	              "'%s' not the one line of '%s'", expect, err);
	free(out);
	free(err);
}
END_TEST

/* ---- the engram command ----------------------------------------------------------- */

START_TEST(test_cli_refuses_damage)
{
	enum egt_damage kind = (enum egt_damage)_i;
	char expect[128], *out, *err, prefix[700];
	char *dir = damaged_version(kind, 4, expect, sizeof expect);
	char *good = egt_path("good"), *link = egt_path("live"), target[600];
	const char *verify[] = { engram_bin(), "table", "verify", dir, NULL };
	const char *info[] = { engram_bin(), "table", "info", dir, NULL };
	const char *publish[] = { engram_bin(), "table", "publish", link, dir, NULL };
	int structural = kind != EGT_CHUNK_GARBAGE;
	ssize_t n;

	ck_assert_int_eq(run(verify, &out, &err), 1);
	ck_assert_msg(names(err, expect), "'%s' not in '%s'", expect, err);
	ck_assert_str_eq(out, "");
	snprintf(prefix, sizeof prefix, "engram: %s: ", dir);
	for (char *line = err; *line; line = strchr(line, '\n') + 1)
		ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0, "%s", line);
	free(out);
	free(err);

	ck_assert_int_eq(run(info, &out, &err), structural ? 1 : 0);
	if (structural)
		ck_assert_msg(count_lines(err) == 1 && names(err, expect), "%s", err);
	free(out);
	free(err);

	egt_make_table(good, "t", SLOTS, RB, CHUNK, 1);
	ck_assert_int_eq(symlink(good, link), 0);
	ck_assert_int_eq(run(publish, &out, &err), structural ? 1 : 0);
	n = readlink(link, target, sizeof target - 1);
	ck_assert_int_gt(n, 0);
	target[n] = '\0';
	if (structural) {
		ck_assert_msg(count_lines(err) == 1 && names(err, expect), "%s", err);
		ck_assert_str_eq(target, good); /* the link was left alone */
	}
	free(out);
	free(err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("corrupt");
	TCase *tc = tcase_create("corrupt");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_reload_refuses_damage, 0, EGT_NDAMAGE);
	tcase_add_loop_test(tc, test_startup_refuses_damage, 0, EGT_NDAMAGE);
	tcase_add_loop_test(tc, test_cli_refuses_damage, 0, EGT_NDAMAGE);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
