/* cli.h - the `engram` command: how main.c hands a command line to its halves.
 *
 *   engram table ...                         cli/table_*.c  (build, inspect, patch, publish)
 *   engram info|stats|lookup|tokens|bench .. cli/query.c    (talk to a running engramd)
 *
 * main.c owns argv[0] and the top-level help; it passes each half the
 * command line from the command word on (argv[0] = "table", "lookup", ...).
 * Each half returns the process exit status:
 *   EG_CLI_OK (0), EG_CLI_FAIL (1: bad input, I/O or server error, after
 *   exactly one line on stderr from eg_cli_error), EG_CLI_USAGE (2: bad
 *   command line, after one line on stderr and a hint to use --help).
 */
#ifndef EG_CLI_H
#define EG_CLI_H

#include <stdio.h>

#define EG_CLI_OK    0
#define EG_CLI_FAIL  1
#define EG_CLI_USAGE 2

/* `engram table SUBCOMMAND ...` (cli/table.c). argv[0] is "table". */
int eg_cli_table(int argc, char **argv);
/* Writes the table half's usage text to f. */
void eg_cli_table_usage(FILE *f);

/* Every other command word (cli/query.c): argv[0] is the word, e.g.
 * "lookup". Unknown words are its to refuse: it prints
 * "engram: unknown command 'X'" via eg_cli_error and returns EG_CLI_USAGE. */
int eg_cli_query(int argc, char **argv);
/* Writes the query half's usage text to f. */
void eg_cli_query_usage(FILE *f);

/* Prints "engram: <message>\n" to stderr (printf format). Implemented in
 * main.c; every error a user sees goes through it so each is one line. */
void eg_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "engram: CMD: <message> (see engram CMD --help)", CMD being the
 * command words ("lookup", "table create"); returns EG_CLI_USAGE.
 * Implemented in table_util.c. */
int eg_cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
