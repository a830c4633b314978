/* query.h - pieces shared by the query commands of `engram` (cli/query*.c).
 *
 * Every function returning an exit status (CLI_OK, CLI_FAIL, CLI_USAGE) has
 * already printed its one error line, which starts with the command's words.
 */
#ifndef CLI_QUERY_H
#define CLI_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "engram.h"
#include "output.h"

/* Prints the failed call's detail (eg_client_errmsg, else the code's text);
 * returns CLI_FAIL. */
int cli_query_fail(const struct cli_args *a, eg_client *c, int err);
/* Connects to a->connect within a->timeout_ms. Exit status. */
int cli_query_connect(const struct cli_args *a, eg_client **c);
/* Every served table: *all (n *nall) is the caller's, freed with
 * eg_client_info_free. Exit status. */
int cli_query_tables(const struct cli_args *a, eg_client *c, eg_client_table **all,
                     size_t *nall);
/* *out: the table called name in all; else an error. Exit status. */
int cli_query_pick(const struct cli_args *a, const eg_client_table *all, size_t nall,
                   const char *name, const eg_client_table **out);
/* cli_query_tables, then cli_query_pick of name. */
int cli_query_find_table(const struct cli_args *a, eg_client *c, const char *name,
                         eg_client_table **all, size_t *nall, const eg_client_table **out);

/* The run functions (entries of cli_commands[]); exit status. */
int cli_query_info(struct cli_args *a);
int cli_query_stats(struct cli_args *a);
int cli_query_ping(struct cli_args *a);
int cli_query_reload(struct cli_args *a);
int cli_query_lookup(struct cli_args *a);
int cli_query_tokens(struct cli_args *a);
int cli_query_bench(struct cli_args *a);

#endif
