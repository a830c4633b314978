/* table.h - pieces shared by the `engram table` subcommands (cli/table_*.c).
 *
 * Every function returning an exit status (EG_CLI_OK, EG_CLI_FAIL,
 * EG_CLI_USAGE) has already printed its one error line when it fails.
 */
#ifndef EG_CLI_TABLE_H
#define EG_CLI_TABLE_H

#include <stdint.h>
#include <stddef.h>

#include "cli.h"
#include "eg_table.h"
#include "eg_hash.h"
#include "eg_npy.h"

/* Subcommands; argv[0] is the subcommand's name. */
int eg_cli_table_create(int argc, char **argv);
int eg_cli_table_import(int argc, char **argv);
int eg_cli_table_info(int argc, char **argv);
int eg_cli_table_verify(int argc, char **argv);
int eg_cli_table_export(int argc, char **argv);
int eg_cli_table_update(int argc, char **argv);
int eg_cli_table_publish(int argc, char **argv);
int eg_cli_table_rollback(int argc, char **argv);

/* ---- table_util.c ---------------------------------------------------- */

/* Prints "engram: <message>"; returns EG_CLI_FAIL. */
int eg_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message for getopt's '?' / ':' results, as a usage error. */
int eg_cli_bad_option(const char *cmd, char **argv, int optind_now, int optopt_now);

/* Strict decimal parse of a whole string; 0 or -1. */
int eg_cli_parse_u64(const char *s, uint64_t *out);
int eg_cli_parse_u32(const char *s, uint32_t *out);

/* Slots from a list ("1,5,9", ranges "10-19" allowed) or from a .npy of
 * integers (<i4 <i8 <u8 |u1, any shape, flattened). A list argument that
 * ends in ".npy" is read as a file. *out is malloc'd. Returns an exit status. */
int eg_cli_load_slots(const char *cmd, const char *list, const char *file,
                      uint64_t **out, size_t *n);

/* Reads and parses a hash spec file; relative vocab_map names resolve
 * against the spec's directory. Returns an exit status. */
int eg_cli_load_hash(const char *path, eg_hash **out);

/* Opens dir and a snapshot (verify off), printing the error. Exit status. */
int eg_cli_open_table(const char *dir, eg_table **t, eg_snapshot **s);

/* ---- table_rows.c: rows from a .npy or a raw .bin file ---------------- */

typedef struct eg_cli_rows {
	const char *path;
	eg_dtype type;        /* source values: F32, F16, BF16 or U8 (raw bytes) */
	uint64_t n;           /* rows */
	uint64_t width;       /* values per row (bytes for U8) */
	size_t stride;        /* bytes per source row */
	const unsigned char *data;
	eg_npy npy;           /* when the file is a .npy */
	void *map;            /* when it is a raw file */
	size_t map_len;
} eg_cli_rows;

/* Opens path. A file with the .npy magic or name is a .npy: its dtype
 * gives the type (<f4 f32, <f2 f16, |u1 u8; <u2 needs src = f16 or bf16);
 * src (the user's --source-dtype), when not 0, must agree. Any other file
 * is raw little-endian rows of bin_width values of type raw_src (both
 * required: else EG_CLI_USAGE). Returns an exit status. */
int eg_cli_rows_open(eg_cli_rows *r, const char *cmd, const char *path,
                     eg_dtype src, eg_dtype raw_src, uint64_t bin_width);
void eg_cli_rows_close(eg_cli_rows *r);

/* Checks rows can become the layout (dtype, dim, scale_block) of m:
 * float sources need width == dim and a float dtype; u8 sources are copied
 * as raw bytes into u8 (width == dim) or e4m3 (width == row_bytes) rows.
 * Returns an exit status. */
int eg_cli_rows_check(const eg_cli_rows *r, const eg_meta *m);

/* Converts rows [first, first + n) into m's layout at dst
 * (n * m->row_bytes bytes). eg_cli_rows_check must have passed. 0 or EG_EINVAL. */
int eg_cli_rows_convert(const eg_cli_rows *r, uint64_t first, uint64_t n,
                        const eg_meta *m, void *dst);

#endif
