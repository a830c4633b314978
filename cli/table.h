/* table.h - pieces shared by the `engram table` subcommands (cli/table_*.c).
 *
 * Every function returning an exit status (CLI_OK, CLI_FAIL, CLI_USAGE) has
 * already printed its one error line when it fails.
 */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include <stdint.h>
#include <stddef.h>

#include "cli.h"
#include "eg_table.h"
#include "eg_hash.h"
#include "eg_npy.h"

/* The subcommands' run functions (entries of cli_commands[]); exit status. */
int cli_table_create(struct cli_args *a);
int cli_table_import(struct cli_args *a);
int cli_table_info(struct cli_args *a);
int cli_table_verify(struct cli_args *a);
int cli_table_export(struct cli_args *a);
int cli_table_update(struct cli_args *a);
int cli_table_publish(struct cli_args *a);
int cli_table_rollback(struct cli_args *a);

/* ---- table_create.c: the build every new table goes through ------------ */

/* Writes rows [first, first + n) in m's layout at dst (n * m->row_bytes
 * bytes); 0 or an error code. */
typedef int (*cli_fill_fn)(void *arg, const eg_meta *m, uint64_t first, uint64_t n,
                           void *dst);

/* Builds the table m describes in dir chunk by chunk, each filled by fill,
 * with a progress bar named label. On failure nothing that opens as a table
 * is left, and the one error line is why when the fill wrote a reason
 * there (why may be NULL), else the error code's. Returns an exit status. */
int cli_build_table(const char *dir, eg_meta *m, cli_fill_fn fill, void *arg,
                    const char *label, const char *why);

/* Fills *m from the options of a (a->slots, dim, dtype, ...; the name
 * defaults to DIR's last component) and checks the layout; with --hash it
 * loads the spec into *hash (freed by the caller) and checks its slot
 * count against a->slots, rows_of naming where that count came from
 * ("--slots", a file, a tensor). m->hash_spec is then the caller's to
 * clear (eg_meta_clear). Returns an exit status. */
int cli_table_meta(const struct cli_args *a, eg_meta *m, eg_hash **hash,
                   const char *rows_of);

/* ---- table_ckpt.c: import from a safetensors checkpoint ----------------- */

/* Whether `table import` reads a checkpoint: --tensor or --scale-tensor
 * given, or --from a .safetensors file, a .json index or a directory. */
int cli_is_checkpoint(const struct cli_args *a);
/* `table import DIR --from CKPT --tensor NAME ...`; exit status. */
int cli_import_checkpoint(struct cli_args *a);

/* ---- table_util.c ---------------------------------------------------- */

/* Slots from a list ("1,5,9", ranges "10-19" allowed) or from a .npy of
 * integers (<i4 <i8 <u8 |u1, any shape, flattened). A list argument that
 * ends in ".npy" is read as a file. *out is malloc'd. Returns an exit status. */
int cli_load_slots(const char *cmd, const char *list, const char *file,
                      uint64_t **out, size_t *n);

/* Reads and parses a hash spec file; relative vocab_map names resolve
 * against the spec's directory. Returns an exit status. */
int cli_load_hash(const char *path, eg_hash **out);

/* Whether s ends in suffix. */
int cli_ends_with(const char *s, const char *suffix);

/* Opens dir and a snapshot (verify off), printing the error. Exit status. */
int cli_open_table(const char *dir, eg_table **t, eg_snapshot **s);

/* ---- table_rows.c: rows from a .npy or a raw .bin file ---------------- */

typedef struct cli_rows {
	const char *path;
	eg_dtype type;        /* source values: F32, F16, BF16 or U8 (raw bytes) */
	uint64_t n;           /* rows */
	uint64_t width;       /* values per row (bytes for U8) */
	size_t stride;        /* bytes per source row */
	const unsigned char *data;
	eg_npy npy;           /* when the file is a .npy */
	void *map;            /* when it is a raw file */
	size_t map_len;
} cli_rows;

/* Opens path. A file with the .npy magic or name is a .npy: its dtype
 * gives the type (<f4 f32, <f2 f16, |u1 u8; <u2 needs src = f16 or bf16);
 * src (the user's --source-dtype), when not 0, must agree. Any other file
 * is raw little-endian rows of bin_width values of type raw_src (both
 * required: else CLI_USAGE). Returns an exit status. */
int cli_rows_open(cli_rows *r, const char *cmd, const char *path,
                     eg_dtype src, eg_dtype raw_src, uint64_t bin_width);
void cli_rows_close(cli_rows *r);

/* Checks rows can become the layout (dtype, dim, scale_block) of m:
 * float sources need width == dim and a float dtype; u8 sources are copied
 * as raw bytes into u8 (width == dim) or e4m3 (width == row_bytes) rows.
 * Returns an exit status. */
int cli_rows_check(const cli_rows *r, const eg_meta *m);

/* Converts rows [first, first + n) into m's layout at dst
 * (n * m->row_bytes bytes). cli_rows_check must have passed. 0 or EG_EINVAL. */
int cli_rows_convert(const cli_rows *r, uint64_t first, uint64_t n,
                        const eg_meta *m, void *dst);

#endif
