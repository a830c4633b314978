/* query.h - pieces shared by the query commands of `engram` (cli/query*.c).
 *
 * Every function returning an exit status (EG_CLI_OK, EG_CLI_FAIL,
 * EG_CLI_USAGE) has already printed its one error line when it fails.
 */
#ifndef EG_CLI_QUERY_H
#define EG_CLI_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "eg_table.h"
#include "engram.h"

/* getopt codes of every query option */
enum {
	O_CONNECT = 256, O_TIMEOUT, O_JSON, O_TABLE, O_TABLES, O_SLOTS, O_SLOTS_FILE, O_OUT,
	O_TOKENS, O_SEQ_LENS, O_CONTEXT, O_BATCH, O_SECONDS, O_DEPTH, O_HELP,
};

/* A query command line: argv[0] and the options given (NULL / defaults when
 * absent). */
struct eg_query_opts {
	const char *cmd;
	const char *connect, *table, *tables, *slots, *slots_file, *out;
	const char *tokens, *seq_lens, *context;
	int json, timeout_ms;
	uint32_t batch, depth;
	double seconds;
};

/* Parses the options of argv[0]; allowed lists (0-terminated) the option
 * codes the command takes besides --connect and --timeout. Returns EG_CLI_OK,
 * an exit status, or -1 after printing --help. */
int eg_query_parse(int argc, char **argv, struct eg_query_opts *o, const int *allowed);
/* Prints the failed call's detail (eg_client_errmsg); returns EG_CLI_FAIL. */
int eg_query_fail(const struct eg_query_opts *o, eg_client *c, int err);
/* Connects to o->connect. Exit status. */
int eg_query_connect(const struct eg_query_opts *o, eg_client **c);
/* The served table called name; *all (n *nall) holds it, freed by the caller
 * with eg_client_info_free. Exit status. */
int eg_query_find_table(const struct eg_query_opts *o, eg_client *c, const char *name,
                        eg_client_table **all, size_t *nall, const eg_client_table **out);

/* ---- query_rows.c: rows out as `engram table export` writes them ------- */

/* Writes nrows rows of t as a 2-D .npy at path (temporary file + rename). */
int eg_query_save_npy(const struct eg_query_opts *o, const char *path, const eg_client_table *t,
                      uint64_t nrows, const void *rows);
/* Prints one row's values (after the caller's label) and a newline. */
void eg_query_print_row(const eg_client_table *t, eg_dtype dt, const unsigned char *row,
                        float *vals);
/* *dt for t, and a buffer of dim floats to decode into (NULL for u8). */
float *eg_query_values_buf(const eg_client_table *t, eg_dtype *dt);

/* The commands; argv[0] is the command word. Exit status. */
int eg_query_info(int argc, char **argv);
int eg_query_stats(int argc, char **argv);
int eg_query_ping(int argc, char **argv);
int eg_query_reload(int argc, char **argv);
int eg_query_lookup(int argc, char **argv);
int eg_query_tokens(int argc, char **argv);
int eg_query_bench(int argc, char **argv);

#endif
