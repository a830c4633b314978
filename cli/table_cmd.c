/* table_cmd.c - `engram table SUBCOMMAND`: dispatch and help. */
#include "table.h"

#include <string.h>

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} subcommands[] = {
	{"create", eg_cli_table_create},
	{"import", eg_cli_table_import},
	{"info", eg_cli_table_info},
	{"verify", eg_cli_table_verify},
	{"export", eg_cli_table_export},
	{"update", eg_cli_table_update},
	{"publish", eg_cli_table_publish},
	{"rollback", eg_cli_table_rollback},
};

void eg_cli_table_usage(FILE *f)
{
	fputs(
"Tables (a table version is a directory holding an LMDB environment):\n"
"  engram table create DIR --slots N --dim D [--dtype T] [--chunk-slots K]\n"
"                      [--fill zero|random[:SEED]] [--name NAME]\n"
"                      [--scale-block B] [--hash SPEC.json] [--generation G]\n"
"      New table of zero rows, or of deterministic pseudo-random rows: values\n"
"      near N(0,1) (u8: uniform bytes) that depend only on SEED (default 0),\n"
"      the slot and the value's index, not on the chunk size. With --hash\n"
"      the slot count comes from the spec (--slots, if given, must agree).\n"
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
"  engram table info DIR [--json]\n"
"      The table's metadata as 'key: value' lines, or one JSON object.\n"
"  engram table verify DIR\n"
"      Recompute every chunk checksum; exit 1 with one line per bad chunk.\n"
"  engram table export DIR --slots 1,5,9|0-99|SLOTS.npy | --slots-file SLOTS.npy\n"
"                      [--out ROWS.npy]\n"
"      Rows of the given slots to a .npy (f32 <f4, f16 <f2, bf16 <u2 raw\n"
"      bits, e4m3 and u8 |u1 of row_bytes columns), or as text lines\n"
"      'SLOT: values...' (decoded to float; u8 as byte values).\n"
"  engram table update DIR --slots LIST|SLOTS.npy --rows ROWS.npy|ROWS.bin\n"
"                      [--source-dtype S]\n"
"      Patch rows in place in one transaction and bump the generation;\n"
"      readers keep their snapshot. Raw rows default to the table's layout.\n"
"  engram table publish LINK NEWDIR\n"
"      Point the symlink LINK at the table NEWDIR atomically, remembering the\n"
"      old target in LINK.prev.\n"
"  engram table rollback LINK\n"
"      Point LINK back at LINK.prev (and LINK.prev at the version just left).\n"
"  --generation G: the new table's first generation (default 1). A version\n"
"      that will replace a published one should start above the generation\n"
"      served now (engram table info LINK), so generations never go back.\n"
"  Dtypes: f32 f16 bf16 e4m3 u8. --chunk-slots: a power of two (default 65536).\n",
	      f);
}

int eg_cli_table(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (!sub) {
		eg_cli_error("table: no subcommand given (see engram table --help)");
		return EG_CLI_USAGE;
	}
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "help") == 0) {
		eg_cli_table_usage(stdout);
		return EG_CLI_OK;
	}
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		if (strcmp(sub, subcommands[i].name) == 0) {
			/* messages then name the whole command: "table create: ..." */
			char name[32];

			snprintf(name, sizeof name, "table %s", sub);
			argv[1] = name;
			return subcommands[i].run(argc - 1, argv + 1);
		}
	eg_cli_error("table: unknown subcommand '%s' (see engram table --help)", sub);
	return EG_CLI_USAGE;
}
