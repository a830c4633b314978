/* main.c - the `engram` command: picks the half that handles argv[1]. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: engram COMMAND [ARGS...]\n"
	      "\n"
	      "Build, inspect and patch engram tables, and query a running engramd.\n"
	      "Exit status: 0 ok, 1 failure (one line on stderr), 2 bad command line.\n"
	      "\n", f);
	eg_cli_table_usage(f);
	fputc('\n', f);
	eg_cli_query_usage(f);
}

void eg_cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("engram: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int rc;

	if (!cmd) {
		eg_cli_error("no command given (see engram --help)");
		return EG_CLI_USAGE;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EG_CLI_OK;
	}
	if (strcmp(cmd, "table") == 0)
		rc = eg_cli_table(argc - 1, argv + 1);
	else
		rc = eg_cli_query(argc - 1, argv + 1);
	/* A failed flush of stdout (full disk, closed pipe) is a failure too. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == EG_CLI_OK)
			eg_cli_error("writing standard output: %s", strerror(errno));
		return rc == EG_CLI_OK ? EG_CLI_FAIL : rc;
	}
	return rc;
}
