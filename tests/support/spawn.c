/* spawn.c - starting a test's helper process (engramd, haproxy) without
 * fork(). A fork of a threaded test, instrumented by ThreadSanitizer, can
 * hang in the child before it reaches exec (seen: a restarted replica that
 * never ran while reader threads were busy); posix_spawn runs none of this
 * process's code in the child. The child's set-up that posix_spawn cannot
 * do is done by util-linux tools that exec in place, so the pid stays the
 * program's: setpriv --pdeathsig (the child gets SIGTERM when the spawning
 * thread ends, so a test that fails half-way leaves nothing behind) and
 * prlimit (an RLIMIT_NOFILE of the test's choosing). The child keeps
 * descriptors 0 - 2 only (as systemd starts a service): a descriptor the
 * test holds without close-on-exec, Check's own temporary file among them,
 * would otherwise be the daemon's too and keep a file open under it. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egtest.h"

extern char **environ;

pid_t egt_spawn(const char *const *argv, const egt_spawn_opts *o)
{
	const char *full[80];
	char nofile[64];
	size_t n = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	full[n++] = "/usr/bin/setpriv";
	full[n++] = "--pdeathsig";
	full[n++] = "TERM";
	full[n++] = "--";
	if (o->nofile_hard) {
		snprintf(nofile, sizeof(nofile), "--nofile=%lu:%lu", o->nofile_soft, o->nofile_hard);
		full[n++] = "/usr/bin/prlimit";
		full[n++] = nofile;
		full[n++] = "--";
	}
	for (size_t i = 0; argv[i]; i++) {
		if (n + 1 >= sizeof(full) / sizeof(full[0]))
			return -E2BIG;
		full[n++] = argv[i];
	}
	full[n] = NULL;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (o->log) {
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, o->log,
		                                 O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (o->stdout_to_log)
			posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	}
	if (!o->log || !o->stdout_to_log)
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	rc = posix_spawn(&pid, full[0], &fa, NULL, (char *const *)full,
	                 o->envp ? o->envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -rc;
}
