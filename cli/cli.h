/* cli.h - the `engram` command: its command table, its option table and
 * its exit statuses.
 *
 *   engram table create|import|info|...  cli/table_*.c  (build, inspect, patch, publish)
 *   engram info|stats|lookup|tokens|...  cli/query*.c   (talk to a running engramd)
 *
 * Every command is one entry of cli_commands[] (commands.c): its words,
 * positional arguments, options, usage text and run function. Every option
 * is one row of cli_options[] (options.c): its name, type, bounds and the
 * field of struct cli_args it fills. main.c finds the entry, cli_parse fills
 * a struct cli_args from the command line (or prints the help), and the
 * entry's run function does the work. A new option: an id below, a row in
 * options.c, a field in struct cli_args, and its id in the entries taking it.
 *
 * Every function returning an exit status has already printed its one error
 * line when it fails:
 *   CLI_OK (0), CLI_FAIL (1: bad input, I/O or server error, after exactly
 *   one line on stderr from cli_error), CLI_USAGE (2: bad command line, after
 *   one line on stderr ending in a hint to use --help).
 */
#ifndef CLI_H
#define CLI_H

#include <stdint.h>
#include <stdio.h>

#include "eg_table.h"

#define CLI_OK    0
#define CLI_FAIL  1
#define CLI_USAGE 2
#define CLI_HELP  (-1) /* cli_parse printed the help: exit 0 */

/* Option ids: the index of an option's row in cli_options[]. */
enum cli_opt_id {
	O_NONE, /* ends an entry's option list */
	/* building and reading tables */
	O_NSLOTS, O_DIM, O_DTYPE, O_SOURCE_DTYPE, O_CHUNK_SLOTS, O_FILL, O_NAME,
	O_SCALE_BLOCK, O_HASH, O_FROM, O_GENERATION, O_SLOTS, O_SLOTS_FILE, O_ROWS,
	O_OUT, O_JSON, O_TENSOR, O_SCALE_TENSOR, O_ALL,
	/* talking to a daemon */
	O_CONNECT, O_TIMEOUT, O_TABLE, O_TABLES, O_TOKENS, O_SEQ_LENS, O_CONTEXT,
	O_BATCH, O_SECONDS, O_DEPTH,
	O_MAX
};

/* A parsed command line. Options not given keep their row's default: 0 or
 * NULL unless the row says otherwise (so 0 means "not given" for every
 * option whose bounds refuse 0). */
struct cli_args {
	char cmd[32];          /* the command's words, for messages: "table create" */
	char **pos;            /* positional arguments, as many as the entry names */
	int npos;
	/* building and reading tables */
	uint64_t slots;        /* --slots N of create */
	const char *slots_list, *slots_file; /* --slots LIST|SLOTS.npy, --slots-file */
	uint32_t dim, scale_block;
	eg_dtype dtype, source_dtype;
	uint64_t chunk_slots, generation;
	const char *fill, *name, *hash, *from, *rows, *out;
	const char *tensor, *scale_tensor; /* checkpoint tensors (import, export) */
	int json, all;
	/* talking to a daemon */
	const char *connect, *table, *tables, *tokens, *seq_lens, *context;
	uint32_t timeout_ms, batch, depth;
	double seconds;
};

/* How an option's value is read. */
enum cli_opt_type {
	CLI_FLAG,        /* no value; sets an int to 1 */
	CLI_STR,         /* a string (min..max bytes when max is set) */
	CLI_U32,         /* decimal, min..max (max 0: UINT32_MAX) */
	CLI_U64,         /* decimal, min..max (max 0: UINT64_MAX) */
	CLI_POW2,        /* CLI_U64 that is also a power of two */
	CLI_DTYPE,       /* a table dtype: f32 f16 bf16 e4m3 u8 */
	CLI_SOURCE_DTYPE,/* a dtype rows can be read as: f32 f16 bf16 u8 */
	CLI_SECONDS,     /* a double, more than 0 and at most max */
};

/* One row of the option table. */
struct cli_opt {
	const char *name;      /* --NAME */
	enum cli_opt_type type;
	size_t field;          /* offsetof(struct cli_args, ...), of the type's C type */
	uint64_t min, max, def;
	/* the usage error for a bad value, "%s" standing for the value;
	 * NULL: "bad value '%s' for --NAME" */
	const char *bad;
};

extern const struct cli_opt cli_options[O_MAX];

/* Commands printed and checked together: `engram table ...`, the queries. */
struct cli_group {
	const char *word;      /* the command word before the entry's ("table"), or NULL */
	const char *head;      /* the first line of the group's help */
	const char *notes;     /* help lines after the entries' */
	const enum cli_opt_id *opts; /* options every entry of the group takes */
	int (*check)(struct cli_args *a); /* run after parsing, before run; may be NULL */
};

/* One entry of the command table. */
struct cli_cmd {
	const struct cli_group *group;
	const char *name;      /* "create", "lookup" */
	const char *args;      /* positional arguments ("DIR", "LINK NEWDIR"), or NULL */
	const enum cli_opt_id *opts; /* the options it takes, ending in O_NONE */
	const char *usage;     /* its help lines */
	int (*run)(struct cli_args *a);
};

extern const struct cli_cmd cli_commands[];
extern const size_t cli_ncommands;
extern const struct cli_group cli_table_group, cli_query_group;

/* Writes the help of everything (cmd NULL) or of cmd, to f (commands.c). */
void cli_help(FILE *f, const struct cli_cmd *cmd);
/* Writes the help of a group: its head, every entry's usage, its notes. */
void cli_group_help(FILE *f, const struct cli_group *g);

/* Fills *a from argv (argv[0]: the command's last word) for cmd: options,
 * bounds, positional arguments, then the group's check. Returns CLI_OK, an
 * exit status, or CLI_HELP after printing cmd's help for -h/--help. */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a);

/* Strict decimal parse of a whole string; 0 or -1. */
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_u32(const char *s, uint32_t *out);

/* Prints "engram: <message>\n" to stderr (printf format). Every error a
 * user sees goes through it so each is one line (main.c). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cli_error, then returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "engram: CMD: <message> (see engram CMD --help)", CMD being the
 * command words ("lookup", "table create"); returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
