/* main.c - the `engram` command: finds the command table's entry for
 * argv, parses its options and runs it; every error line goes out here. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("engram: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cli_error("%s", msg);
	return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cli_error("%s: %s (see engram %s --help)", cmd, msg, cmd);
	return CLI_USAGE;
}

static int is_help(const char *word)
{
	return strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 ||
	       strcmp(word, "help") == 0;
}

static const struct cli_cmd *find(const struct cli_group *g, const char *name)
{
	for (size_t i = 0; i < cli_ncommands; i++)
		if (cli_commands[i].group == g && strcmp(cli_commands[i].name, name) == 0)
			return &cli_commands[i];
	return NULL;
}

/* The entry argv names, with *words set to how many words named it ("table
 * create": 2); NULL after a group's help or an error (*rc says which). */
static const struct cli_cmd *lookup(int argc, char **argv, int *words, int *rc)
{
	const struct cli_group *g = &cli_table_group;
	const struct cli_cmd *cmd;
	const char *sub = argc > 2 ? argv[2] : NULL;

	*rc = CLI_USAGE;
	if (strcmp(argv[1], g->word) != 0) {
		*words = 1;
		cmd = find(&cli_query_group, argv[1]);
		if (!cmd)
			cli_error("unknown command '%s'", argv[1]);
		return cmd;
	}
	*words = 2;
	if (!sub) {
		cli_error("%s: no subcommand given (see engram %s --help)", g->word, g->word);
		return NULL;
	}
	if (is_help(sub)) {
		cli_group_help(stdout, g);
		*rc = CLI_OK;
		return NULL;
	}
	cmd = find(g, sub);
	if (!cmd)
		cli_error("%s: unknown subcommand '%s' (see engram %s --help)", g->word, sub, g->word);
	return cmd;
}

static int run(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	struct cli_args a;
	int words, rc;

	if (argc < 2) {
		cli_error("no command given (see engram --help)");
		return CLI_USAGE;
	}
	if (is_help(argv[1])) {
		cli_help(stdout, NULL);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("engram %s\n", ENGRAM_VERSION); /* from the file VERSION, as engramd's */
		return CLI_OK;
	}
	cmd = lookup(argc, argv, &words, &rc);
	if (!cmd)
		return rc;
	rc = cli_parse(cmd, argc - words, argv + words, &a);
	if (rc == CLI_HELP)
		return CLI_OK;
	return rc == CLI_OK ? cmd->run(&a) : rc;
}

int main(int argc, char **argv)
{
	int rc = run(argc, argv);

	/* A failed flush of stdout (full disk, closed pipe) is a failure too. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == CLI_OK)
			cli_error("writing standard output: %s", strerror(errno));
		return rc == CLI_OK ? CLI_FAIL : rc;
	}
	return rc;
}
