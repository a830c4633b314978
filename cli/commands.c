/* commands.c - the command table: one entry per command (words, positional
 * arguments, options, usage, run), and the help made from it. */
#include "query.h"
#include "table.h"

#include <stdlib.h>

#define OPTS(...) ((const enum cli_opt_id[]){ __VA_ARGS__, O_NONE })

const struct cli_group cli_table_group = {
	.word = "table",
	.head = "Tables (a table version is a directory holding an LMDB environment):\n",
	.notes =
"  --generation G: the new table's first generation (default 1). A version\n"
"      that will replace a published one should start above the generation\n"
"      served now (engram table info LINK), so generations never go back.\n"
"  Dtypes: f32 f16 bf16 e4m3 u8. --chunk-slots: a power of two (default 65536).\n",
};

/* A query's address: --connect, else $ENGRAM_CONNECT, else the installed
 * service's socket (engram.h's EGC_DEFAULT_ADDR). */
static int query_check(struct cli_args *a)
{
	if (!a->connect || !*a->connect)
		a->connect = getenv("ENGRAM_CONNECT");
	if (!a->connect || !*a->connect)
		a->connect = EGC_DEFAULT_ADDR;
	return CLI_OK;
}

const struct cli_group cli_query_group = {
	.head = "Query a running engramd (ADDR: unix:PATH or tcp:HOST:PORT; default\n"
	        "$ENGRAM_CONNECT, else " EGC_DEFAULT_ADDR "):\n",
	.notes = "Every query takes --timeout MS (default 30000; 0 = none).\n",
	.opts = OPTS(O_CONNECT, O_TIMEOUT),
	.check = query_check,
};

#define TABLE .group = &cli_table_group
#define QUERY .group = &cli_query_group

const struct cli_cmd cli_commands[] = {
	{ TABLE, "create", "DIR", OPTS(O_NSLOTS, O_DIM, O_DTYPE, O_CHUNK_SLOTS, O_FILL, O_NAME,
	                               O_SCALE_BLOCK, O_HASH, O_GENERATION), .run = cli_table_create,
	  .usage =
"  engram table create DIR --slots N --dim D [--dtype T] [--chunk-slots K]\n"
"                      [--fill zero|random[:SEED]] [--name NAME]\n"
"                      [--scale-block B] [--hash SPEC.json] [--generation G]\n"
"      New table of zero rows, or of deterministic pseudo-random rows: values\n"
"      near N(0,1) (u8: uniform bytes) that depend only on SEED (default 0),\n"
"      the slot and the value's index, not on the chunk size. With --hash\n"
"      the slot count comes from the spec (--slots, if given, must agree).\n" },
	{ TABLE, "import", "DIR", OPTS(O_FROM, O_DIM, O_DTYPE, O_SOURCE_DTYPE, O_CHUNK_SLOTS, O_NAME,
	                               O_SCALE_BLOCK, O_HASH, O_GENERATION, O_TENSOR,
	                               O_SCALE_TENSOR), .run = cli_table_import,
	  .usage =
"  engram table import DIR --from ROWS.npy [--dtype T] [--name NAME]\n"
"                      [--chunk-slots K] [--scale-block B] [--hash SPEC.json]\n"
"                      [--generation G]\n"
"  engram table import DIR --from ROWS.bin --dim D --source-dtype S [...]\n"
"      New table from a 2-D C-order .npy (<f4, <f2, |u1; <u2 with\n"
"      --source-dtype bf16|f16) or a raw little-endian file of rows.\n"
"      The dtype defaults to the source's. Floats convert to f32, f16, bf16\n"
"      or e4m3 (round to nearest even; e4m3 saturates at 448, and with\n"
"      --scale-block gets one ue8m0 scale per B values). u8 rows are opaque\n"
"      bytes: they are copied as is into u8 tables, or into e4m3 tables as\n"
"      the stored fp8 bytes (scales included, as export writes them); floats\n"
"      are never converted to u8 nor u8 to floats.\n"
"  engram table import DIR --from CKPT --tensor NAME [--scale-tensor NAME]\n"
"                      [--scale-block B] [--dtype T] [...]\n"
"      New table from a 2-D tensor [rows, dim] of a safetensors checkpoint:\n"
"      CKPT is a .safetensors file, a model.safetensors.index.json (the\n"
"      tensor's shard is found in its weight_map) or a directory holding\n"
"      one. BF16, F16 and F32 convert to any float dtype (default: the\n"
"      tensor's), U8 copies into u8, F8_E4M3 into e4m3; --scale-tensor names\n"
"      its block scales [rows, dim / B] (F8_E8M0, or F32 or BF16 powers of\n"
"      two), stored as the rows' ue8m0 bytes; any other scale is refused.\n" },
	{ TABLE, "info", "DIR", OPTS(O_JSON), .run = cli_table_info, .usage =
"  engram table info DIR [--json]\n"
"      The table's metadata as 'key: value' lines, or one JSON object.\n" },
	{ TABLE, "verify", "DIR", NULL, .run = cli_table_verify, .usage =
"  engram table verify DIR\n"
"      Recompute every chunk checksum; exit 1 with one line per bad chunk.\n" },
	{ TABLE, "export", "DIR", OPTS(O_SLOTS, O_SLOTS_FILE, O_ALL, O_OUT, O_TENSOR, O_SCALE_TENSOR),
	  .run = cli_table_export, .usage =
"  engram table export DIR --slots 1,5,9|0-99|SLOTS.npy | --slots-file SLOTS.npy | --all\n"
"                      [--out ROWS.npy | --out ROWS.safetensors\n"
"                       [--tensor NAME] [--scale-tensor NAME]]\n"
"      Rows of the given slots (--all: every row, streamed) to a .npy (f32\n"
"      <f4, f16 <f2, bf16 <u2 raw bits, e4m3 and u8 |u1 of row_bytes\n"
"      columns), to a safetensors file (one tensor [rows, dim] named by\n"
"      --tensor, default the table's name, of F32, F16, BF16, F8_E4M3 or\n"
"      U8; scaled e4m3 adds its ue8m0 scales as an F8_E8M0 tensor [rows,\n"
"      dim / B], default NAME_scale_inv), or as text lines 'SLOT: values...'\n"
"      (decoded to float; u8 as byte values).\n" },
	{ TABLE, "update", "DIR", OPTS(O_SLOTS, O_SLOTS_FILE, O_ROWS, O_SOURCE_DTYPE),
	  .run = cli_table_update, .usage =
"  engram table update DIR --slots LIST|SLOTS.npy --rows ROWS.npy|ROWS.bin\n"
"                      [--source-dtype S]\n"
"      Patch rows in place in one transaction and bump the generation;\n"
"      readers keep their snapshot. Raw rows default to the table's layout.\n" },
	{ TABLE, "publish", "LINK NEWDIR", NULL, .run = cli_table_publish, .usage =
"  engram table publish LINK NEWDIR\n"
"      Point the symlink LINK at the table NEWDIR atomically, remembering the\n"
"      old target in LINK.prev.\n" },
	{ TABLE, "rollback", "LINK", NULL, .run = cli_table_rollback, .usage =
"  engram table rollback LINK\n"
"      Point LINK back at LINK.prev (and LINK.prev at the version just left).\n" },

	{ QUERY, "info", NULL, OPTS(O_JSON), .run = cli_query_info, .usage =
"  engram info    [--connect ADDR] [--json]      tables served\n" },
	{ QUERY, "stats", NULL, OPTS(O_JSON), .run = cli_query_stats, .usage =
"  engram stats   [--connect ADDR] [--json]      daemon counters\n" },
	{ QUERY, "ping", NULL, NULL, .run = cli_query_ping, .usage =
"  engram ping    [--connect ADDR]               round trip\n" },
	{ QUERY, "lookup", NULL, OPTS(O_TABLE, O_SLOTS, O_SLOTS_FILE, O_OUT), .run = cli_query_lookup,
	  .usage =
"  engram lookup  [--connect ADDR] --table NAME (--slots 1,2,5-9 | --slots-file S.npy)\n"
"                 [--out ROWS.npy]               rows, as `engram table export` writes them\n" },
	{ QUERY, "tokens", NULL, OPTS(O_TABLES, O_TOKENS, O_SEQ_LENS, O_CONTEXT, O_OUT),
	  .run = cli_query_tokens, .usage =
"  engram tokens  [--connect ADDR] --tables a,b --tokens 1,2,3 [--seq-lens 2,1]\n"
"                 [--context 0,0] [--out PREFIX] rows of token n-grams hashed by the\n"
"                                                daemon; --out writes PREFIX.TABLE.npy of\n"
"                                                [tokens * rows_per_token, width]\n" },
	{ QUERY, "reload", NULL, OPTS(O_TABLE), .run = cli_query_reload, .usage =
"  engram reload  [--connect ADDR] [--table NAME] reopen tables from disk\n" },
	{ QUERY, "bench", NULL, OPTS(O_TABLE, O_BATCH, O_SECONDS, O_DEPTH), .run = cli_query_bench,
	  .usage =
"  engram bench   [--connect ADDR] --table NAME [--batch 4096] [--seconds 3]\n"
"                 [--depth 1]                    random lookups: rows/s, latency;\n"
"                                                --depth lookups in flight at once\n" },
};

const size_t cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];

void cli_group_help(FILE *f, const struct cli_group *g)
{
	fputs(g->head, f);
	for (size_t i = 0; i < cli_ncommands; i++)
		if (cli_commands[i].group == g)
			fputs(cli_commands[i].usage, f);
	fputs(g->notes, f);
}

void cli_help(FILE *f, const struct cli_cmd *cmd)
{
	if (cmd) {
		fputs(cmd->group->head, f);
		fputs(cmd->usage, f);
		fputs(cmd->group->notes, f);
		return;
	}
	fputs("usage: engram COMMAND [ARGS...]\n"
	      "\n"
	      "       engram --version\n"
	      "\n"
	      "Build, inspect and patch engram tables, and query a running engramd.\n"
	      "Exit status: 0 ok, 1 failure (one line on stderr), 2 bad command line.\n"
	      "\n", f);
	cli_group_help(f, &cli_table_group);
	fputc('\n', f);
	cli_group_help(f, &cli_query_group);
}
