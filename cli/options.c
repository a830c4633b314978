/* options.c - the option table and the one parser every command goes
 * through (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A row: --NAME, its type, the field of struct cli_args, then any of
 * .min, .max, .def, .bad. */
#define OPT(name_, type_, field_, ...) \
	{ .name = name_, .type = type_, .field = offsetof(struct cli_args, field_), __VA_ARGS__ }
#define STR_(x) #x
#define STR(x) STR_(x)

const struct cli_opt cli_options[O_MAX] = {
	[O_NSLOTS]       = OPT("slots", CLI_U64, slots, .min = 1),
	[O_DIM]          = OPT("dim", CLI_U32, dim, .min = 1),
	[O_DTYPE]        = OPT("dtype", CLI_DTYPE, dtype),
	[O_SOURCE_DTYPE] = OPT("source-dtype", CLI_SOURCE_DTYPE, source_dtype,
	                       .bad = "--source-dtype must be f32, f16, bf16 or u8, not '%s'"),
	[O_CHUNK_SLOTS]  = OPT("chunk-slots", CLI_POW2, chunk_slots, .min = 1,
	                       .def = EG_DEFAULT_CHUNK_SLOTS,
	                       .bad = "--chunk-slots must be a power of two, not '%s'"),
	[O_FILL]         = OPT("fill", CLI_STR, fill),
	[O_NAME]         = OPT("name", CLI_STR, name, .min = 1, .max = EG_NAME_MAX,
	                       .bad = "--name must be 1 to " STR(EG_NAME_MAX) " bytes"),
	[O_SCALE_BLOCK]  = OPT("scale-block", CLI_U32, scale_block),
	[O_HASH]         = OPT("hash", CLI_STR, hash),
	[O_FROM]         = OPT("from", CLI_STR, from),
	[O_GENERATION]   = OPT("generation", CLI_U64, generation, .min = 1),
	[O_SLOTS]        = OPT("slots", CLI_STR, slots_list),
	[O_SLOTS_FILE]   = OPT("slots-file", CLI_STR, slots_file),
	[O_ROWS]         = OPT("rows", CLI_STR, rows),
	[O_OUT]          = OPT("out", CLI_STR, out),
	[O_JSON]         = OPT("json", CLI_FLAG, json),
	[O_TENSOR]       = OPT("tensor", CLI_STR, tensor, .min = 1,
	                       .bad = "--tensor needs a tensor name"),
	[O_SCALE_TENSOR] = OPT("scale-tensor", CLI_STR, scale_tensor, .min = 1,
	                       .bad = "--scale-tensor needs a tensor name"),
	[O_ALL]          = OPT("all", CLI_FLAG, all),
	[O_CONNECT]      = OPT("connect", CLI_STR, connect),
	[O_TIMEOUT]      = OPT("timeout", CLI_U32, timeout_ms, .max = 0x7fffffff, .def = 30000,
	                       .bad = "bad --timeout '%s' (milliseconds)"),
	[O_TABLE]        = OPT("table", CLI_STR, table),
	[O_TABLES]       = OPT("tables", CLI_STR, tables),
	[O_TOKENS]       = OPT("tokens", CLI_STR, tokens),
	[O_SEQ_LENS]     = OPT("seq-lens", CLI_STR, seq_lens),
	[O_CONTEXT]      = OPT("context", CLI_STR, context),
	[O_BATCH]        = OPT("batch", CLI_U32, batch, .min = 1, .def = 4096,
	                       .bad = "bad --batch '%s'"),
	[O_SECONDS]      = OPT("seconds", CLI_SECONDS, seconds, .max = 3600, .def = 3,
	                       .bad = "bad --seconds '%s'"),
	[O_DEPTH]        = OPT("depth", CLI_U32, depth, .min = 1, .max = 64, .def = 1,
	                       .bad = "bad --depth '%s' (1..64)"),
};

/* getopt_long's code for an option: clear of 'h', '?' and ':'. */
#define CODE(id) (256 + (int)(id))

int cli_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) < 0 || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static void *field(struct cli_args *a, const struct cli_opt *o)
{
	return (char *)a + o->field;
}

static uint64_t max_of(const struct cli_opt *o)
{
	if (o->max)
		return o->max;
	return o->type == CLI_U32 ? UINT32_MAX : UINT64_MAX;
}

/* Reads s into o's field; 0, or -1 when s is out of o's type or bounds. */
static int set_value(struct cli_args *a, const struct cli_opt *o, const char *s)
{
	uint64_t v;
	eg_dtype dt;
	char *end;
	double d;

	switch (o->type) {
	case CLI_FLAG:
		*(int *)field(a, o) = 1;
		return 0;
	case CLI_STR:
		if (strlen(s) < o->min || (o->max && strlen(s) > o->max))
			return -1;
		*(const char **)field(a, o) = s;
		return 0;
	case CLI_DTYPE:
	case CLI_SOURCE_DTYPE:
		if (eg_dtype_parse(s, &dt) != 0 ||
		    (o->type == CLI_SOURCE_DTYPE && dt == EG_DTYPE_E4M3))
			return -1;
		*(eg_dtype *)field(a, o) = dt;
		return 0;
	case CLI_SECONDS:
		d = strtod(s, &end);
		if (*end || !(d > 0 && d <= (double)o->max))
			return -1;
		*(double *)field(a, o) = d;
		return 0;
	case CLI_U32:
	case CLI_U64:
	case CLI_POW2:
		break;
	}
	if (cli_parse_u64(s, &v) < 0 || v < o->min || v > max_of(o) ||
	    (o->type == CLI_POW2 && (v & (v - 1)) != 0))
		return -1;
	if (o->type == CLI_U32)
		*(uint32_t *)field(a, o) = (uint32_t)v;
	else
		*(uint64_t *)field(a, o) = v;
	return 0;
}

static void set_default(struct cli_args *a, const struct cli_opt *o)
{
	if (!o->def)
		return;
	if (o->type == CLI_U32)
		*(uint32_t *)field(a, o) = (uint32_t)o->def;
	else if (o->type == CLI_SECONDS)
		*(double *)field(a, o) = (double)o->def;
	else
		*(uint64_t *)field(a, o) = o->def;
}

static int bad_value(const struct cli_args *a, const struct cli_opt *o, const char *s)
{
	const char *at = o->bad ? strstr(o->bad, "%s") : NULL;

	if (!o->bad)
		return cli_usage_error(a->cmd, "bad value '%s' for --%s", s, o->name);
	if (!at)
		return cli_usage_error(a->cmd, "%s", o->bad);
	return cli_usage_error(a->cmd, "%.*s%s%s", (int)(at - o->bad), o->bad, s, at + 2);
}

/* getopt's '?': an unknown option, a missing value, or a value given to a
 * flag. arg is the command-line word it stopped at. */
static int bad_option(const struct cli_args *a, const char *arg, int code)
{
	if (code > 0 && code < 256 && arg[0] == '-' && arg[1] != '-')
		return cli_usage_error(a->cmd, "bad option '-%c'", code);
	return cli_usage_error(a->cmd, "unknown option or missing value: '%s'", arg);
}

/* The getopt_long table of cmd's options and its group's, and --help. */
static void long_options(const struct cli_cmd *cmd, struct option *out)
{
	const enum cli_opt_id *lists[] = { cmd->opts, cmd->group->opts };
	size_t n = 0;

	for (size_t l = 0; l < 2; l++) {
		for (const enum cli_opt_id *id = lists[l]; id && *id; id++) {
			const struct cli_opt *o = &cli_options[*id];

			out[n++] = (struct option){ o->name,
				o->type == CLI_FLAG ? no_argument : required_argument,
				NULL, CODE(*id) };
		}
	}
	out[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	out[n] = (struct option){ NULL, 0, NULL, 0 };
}

/* Checks the positional arguments against cmd->args ("DIR", "LINK NEWDIR"). */
static int positional(const struct cli_cmd *cmd, struct cli_args *a)
{
	int want = 0;

	for (const char *p = cmd->args; p && *p; p++)
		want += *p != ' ' && (p[1] == ' ' || p[1] == '\0'); /* word ends */
	if (a->npos == want)
		return CLI_OK;
	if (want == 0)
		return cli_usage_error(a->cmd, "unexpected argument '%s'", a->pos[0]);
	if (want == 1)
		return cli_usage_error(a->cmd, a->npos ? "exactly one %s expected"
		                                       : "%s is required", cmd->args);
	return cli_usage_error(a->cmd, "expected %s", cmd->args);
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a)
{
	struct option lo[O_MAX * 2 + 2];
	int c;

	memset(a, 0, sizeof *a);
	if (cmd->group->word)
		snprintf(a->cmd, sizeof a->cmd, "%s %s", cmd->group->word, cmd->name);
	else
		snprintf(a->cmd, sizeof a->cmd, "%s", cmd->name);
	for (size_t i = 0; i < O_MAX; i++)
		set_default(a, &cli_options[i]);
	long_options(cmd, lo);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		const struct cli_opt *o;

		if (c == 'h') {
			cli_help(stdout, cmd);
			return CLI_HELP;
		}
		if (c < CODE(1) || c >= CODE(O_MAX))
			return bad_option(a, argv[optind - 1], optopt);
		o = &cli_options[c - CODE(0)];
		if (set_value(a, o, optarg) < 0)
			return bad_value(a, o, optarg);
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	c = positional(cmd, a);
	if (c == CLI_OK && cmd->group->check)
		c = cmd->group->check(a);
	return c;
}
