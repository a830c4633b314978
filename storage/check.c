/* check.c - checking a table before trusting it (eg_table.h): the page
 * walk of pages.c, then LMDB's own reading of the same version, in a
 * process of its own when the caller must survive a damaged table.
 *
 * Why a child process: the page walk reads with pread and cannot fault,
 * but what follows it is LMDB, which trusts the file; a damage the walk
 * does not know about would take the process with it. A daemon must not
 * fork() (another thread may hold malloc's or LMDB's locks in the copy), so
 * it passes a command line to posix_spawn and the child runs
 * eg_table_check_child; a single-threaded tool forks.
 *
 * Why a locked reader and not MDB_NOLOCK: the walk registers as an LMDB
 * reader for the version it reads, so a concurrent `engram table update`
 * cannot recycle those pages under it (with MDB_NOLOCK two commits during
 * the walk could). The version LMDB then opens must be the one walked; if
 * a writer committed in between, the check starts again. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "eg_table.h"
#include "table_int.h"

#define ATTEMPTS 5                 /* versions tried while writers commit */
#define TAG_PROBLEM "eg-check problem "
#define TAG_RESULT "eg-check result "

void eg__problem(struct eg__report *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->count++ >= EG__MAX_PROBLEMS || !r->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->fn(r->arg, msg);
}

void eg__report_end(struct eg__report *r)
{
	char msg[96];

	if (r->count <= EG__MAX_PROBLEMS || !r->fn)
		return;
	snprintf(msg, sizeof msg, "... and %llu more problems",
	         (unsigned long long)(r->count - EG__MAX_PROBLEMS));
	r->fn(r->arg, msg);
}

/* ---- in this process ------------------------------------------------------ */

/* Walks the pages of the newest version as a registered reader; *txnid
 * receives the version walked. */
static int walk_pinned(const char *path, int fd, uint64_t file_bytes,
                       struct eg__report *r, uint64_t *txnid)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = eg__mdb(mdb_env_create(&env))))
		return rc;
	mdb_env_set_maxdbs(env, EG__MAXDBS);
	mdb_env_set_maxreaders(env, EG__MAXREADERS);
	/* at least the file: LMDB never maps less than the pages in use */
	mdb_env_set_mapsize(env, (size_t)file_bytes);
	if (!(rc = eg__mdb(mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD,
	                                0644))) &&
	    !(rc = eg__mdb(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))) {
		*txnid = mdb_txn_id(txn);
		rc = eg__check_trees(fd, *txnid, r);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
		rc = EG_ENOTTABLE;
	return rc;
}

/* Opens the version walked with LMDB as a reader does and reads its chunk
 * directory (and checksums): -EAGAIN when it is not the version walked. */
static int open_walked(const char *path, int level, uint64_t txnid, struct eg__report *r)
{
	eg_table *t;
	eg_snapshot *s;
	int rc;

	if ((rc = eg_table_open(path, &t)))
		return rc;
	rc = eg_snapshot_open_report(t, level >= EG_CHECK_CHECKSUMS, r->fn, r->arg, &s);
	if (rc == 0) {
		if (mdb_txn_id(s->txn) != txnid)
			rc = -EAGAIN;
		eg_snapshot_close(s);
	}
	eg_table_close(t);
	return rc;
}

static int check_open_file(const char *path, int level, int fd, struct eg__report *r)
{
	struct stat st;
	uint64_t txnid = 0;
	int rc = -EAGAIN;

	for (int attempt = 0; attempt < ATTEMPTS && rc == -EAGAIN; attempt++) {
		if (fstat(fd, &st))
			return -errno;
		if (!S_ISREG(st.st_mode) || st.st_size < 8192)
			return EG_ENOTTABLE; /* as eg_table_open says */
		if ((rc = eg__check_metas(fd, r)) ||
		    (rc = walk_pinned(path, fd, (uint64_t)st.st_size, r, &txnid)))
			continue;
		rc = open_walked(path, level, txnid, r);
	}
	if (rc == -EAGAIN)
		eg__problem(r, "the table changed %d times while it was checked", ATTEMPTS);
	return rc;
}

int eg_table_check(const char *dir, int level, eg_check_fn problem, void *arg)
{
	struct eg__report r = { problem, arg, 0 };
	char *path = realpath(dir, NULL), *data = NULL;
	int fd = -1, rc;
	struct stat st;

	if (!path)
		return -errno;
	if (stat(path, &st) || !S_ISDIR(st.st_mode))
		rc = EG_ENOTTABLE;
	else if (!(data = eg__join(path, "data.mdb")))
		rc = -ENOMEM;
	else if ((fd = open(data, O_RDONLY | O_CLOEXEC)) < 0)
		rc = errno == ENOENT ? EG_ENOTTABLE : -errno;
	else
		rc = check_open_file(path, level, fd, &r);
	eg__report_end(&r);
	if (fd >= 0)
		close(fd);
	free(data);
	free(path);
	return rc;
}

/* ---- in a child process -------------------------------------------------------- */

/* One line to the parent; a short write on a pipe of less than PIPE_BUF
 * bytes does not happen, so lines never interleave with stderr's. */
static void put_line(int fd, const char *tag, const char *text)
{
	char line[600];
	int n = snprintf(line, sizeof line, "%s%s", tag, text);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof line - 1)
		n = (int)sizeof line - 2;
	for (char *p = line; p < line + n; p++)
		if (*p == '\n')
			*p = ' ';
	line[n++] = '\n';
	while (write(fd, line, (size_t)n) < 0 && errno == EINTR)
		;
}

static void child_problem(void *arg, const char *problem)
{
	put_line(*(int *)arg, TAG_PROBLEM, problem);
}

int eg_table_check_child(const char *dir, int level, int fd)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	char result[16];

	for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
		signal(fatal[i], SIG_DFL);
	snprintf(result, sizeof result, "%d",
	         eg_table_check(dir, level, child_problem, &fd));
	put_line(fd, TAG_RESULT, result);
	return 0;
}

static int spawn(char *const argv[], int out, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	if ((rc = posix_spawn_file_actions_init(&fa)))
		return -rc;
	if ((rc = posix_spawnattr_init(&attr))) {
		posix_spawn_file_actions_destroy(&fa);
		return -rc;
	}
	/* the child reports on stdout; what it prints on stderr (an LMDB
	 * assertion, a sanitizer) comes along; signals as a fresh process */
	if (!(rc = posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO)) &&
	    !(rc = posix_spawn_file_actions_adddup2(&fa, out, STDERR_FILENO)) &&
	    !(rc = posix_spawnattr_setsigmask(&attr, &none)) &&
	    !(rc = posix_spawnattr_setsigdefault(&attr, &all)) &&
	    !(rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
		rc = posix_spawn(pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return -rc; /* the posix_spawn family returns the errno value */
}

static int fork_check(const char *dir, int level, int out, int in, pid_t *pid)
{
	*pid = fork();
	if (*pid < 0)
		return -errno;
	if (*pid == 0) {
		close(in);
		dup2(out, STDERR_FILENO);
		_exit(eg_table_check_child(dir, level, out));
	}
	return 0;
}

/* What the parent read from the child. */
struct heard {
	struct eg__report *r;
	int have_result, result;
	char first_other[200];  /* the first other line: a crash's last words */
};

static void hear_line(struct heard *h, const char *line)
{
	if (strncmp(line, TAG_PROBLEM, strlen(TAG_PROBLEM)) == 0) {
		if (h->r->fn)
			h->r->fn(h->r->arg, line + strlen(TAG_PROBLEM));
		h->r->count++;
	} else if (strncmp(line, TAG_RESULT, strlen(TAG_RESULT)) == 0) {
		h->result = atoi(line + strlen(TAG_RESULT));
		h->have_result = 1;
	} else if (!h->first_other[0] && line[strspn(line, " \t")]) {
		snprintf(h->first_other, sizeof h->first_other, "%s", line);
	}
}

/* Reads the child's lines until it closes its end. */
static void hear(int in, struct heard *h)
{
	char buf[4096];
	size_t len = 0;

	for (;;) {
		ssize_t n = read(in, buf + len, sizeof buf - 1 - len);
		char *start = buf, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(start, '\n'))) {
			*nl = '\0';
			hear_line(h, start);
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len == sizeof buf - 1) { /* a line too long to be ours */
			buf[len] = '\0';
			hear_line(h, buf);
			len = 0;
		}
	}
	if (len) {
		buf[len] = '\0';
		hear_line(h, buf);
	}
}

/* A child that did not report a result refuses the table. */
static int verdict(const struct heard *h, int status)
{
	const char *tail = h->first_other[0] ? ": " : "";

	if (WIFSIGNALED(status)) {
		eg__problem(h->r, "the check crashed (signal %d: %s)%s%s", WTERMSIG(status),
		            strsignal(WTERMSIG(status)), tail, h->first_other);
		return EG_ECORRUPT;
	}
	if (!h->have_result || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) {
		eg__problem(h->r, "the check failed (exit status %d)%s%s",
		            WIFEXITED(status) ? WEXITSTATUS(status) : -1, tail, h->first_other);
		return EG_ECORRUPT;
	}
	return h->result > 0 ? -h->result : h->result;
}

int eg_table_check_isolated(const char *dir, int level, char *const argv[],
                            eg_check_fn problem, void *arg)
{
	struct eg__report r = { problem, arg, 0 };
	struct heard h = { .r = &r };
	int p[2], status, rc;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	rc = argv ? spawn(argv, p[1], &pid) : fork_check(dir, level, p[1], p[0], &pid);
	close(p[1]);
	if (rc == 0)
		hear(p[0], &h);
	close(p[0]);
	if (rc)
		return rc;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return verdict(&h, status);
}
