/* output.h - rows out, the same from `engram table export` (read from disk)
 * and from `engram lookup` and `engram tokens` (read from a daemon). */
#ifndef CLI_OUTPUT_H
#define CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eg_table.h"

/* What the bytes of a row are. */
struct cli_layout {
	eg_dtype dtype;        /* EG_DTYPE_U8 also for a dtype this build does not know */
	uint32_t dim, scale_block, row_bytes;
};

/* Writes n rows as a 2-D .npy at path: f32 <f4, f16 <f2, bf16 <u2 (raw
 * bits), e4m3 and u8 |u1 of row_bytes columns (the stored bytes, scales
 * included). A regular path is written to a temporary file renamed over
 * it, so a failed write leaves no half file; a pipe or device is written in
 * place. Errors are "<who><path>: <reason>" (who: "" or "lookup: ").
 * Returns an exit status. */
int cli_save_rows(const char *who, const char *path, const struct cli_layout *l,
                  uint64_t n, const void *rows);

/* Writes path through put(f, arg) (0, or -1 with errno set) the way
 * cli_save_rows does: a regular path via a temporary file renamed over it
 * once flushed and synced, a pipe or device in place. Returns an exit
 * status; the error line names path and errno. */
int cli_save_file(const char *who, const char *path, int (*put)(FILE *f, void *arg),
                  void *arg);

/* The .npy descr of rows of l and their columns (*cols): see cli_save_rows. */
const char *cli_npy_descr(const struct cli_layout *l, uint64_t *cols);

/* Prints n rows as lines "SLOT: values...": floats decoded (%.9g), u8 rows
 * as byte values. Returns an exit status (CLI_FAIL: out of memory). */
int cli_print_rows(const struct cli_layout *l, const uint64_t *slots, size_t n,
                   const unsigned char *rows);

/* A buffer for one row's values as floats (free it), or NULL for u8 rows
 * (and when out of memory), which cli_print_row shows as bytes. */
float *cli_values_buf(const struct cli_layout *l);
/* Prints one row's values after the caller's label, and a newline: floats
 * decoded into vals, or the row_bytes byte values when vals is NULL. */
void cli_print_row(const struct cli_layout *l, const unsigned char *row, float *vals);

#endif
