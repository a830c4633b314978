/* config.h - the daemon's settings, from flags and an optional config file. */
#ifndef ED_CONFIG_H
#define ED_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ED_VERSION ENGRAM_VERSION /* from the file VERSION, via the Makefile */
#define ED_PROTOCOL_VERSION 1

/* --verify: recompute every chunk checksum of a snapshot before serving it */
enum { ED_VERIFY_NONE, ED_VERIFY_NEW, ED_VERIFY_ALL };

struct ed_table_arg {
	char *name;
	char *dir;
	uint64_t cache_bytes;   /* --cache-bytes NAME=SIZE; 0 = a share of the global one */
	uint64_t page_budget;   /* --page-budget NAME=SIZE; 0 = a share of the global one */
};

struct ed_config {
	struct ed_table_arg *tables;
	size_t n_tables;
	char **listen;          /* "unix:PATH" or "tcp:HOST:PORT" */
	size_t n_listen;
	unsigned threads;       /* event-loop threads; 0 = one per core */
	uint64_t max_frame;     /* largest request frame accepted, bytes */
	uint64_t max_rows;      /* rows per request (all blocks together) */
	uint64_t max_output;    /* answer bytes in memory per connection before reading pauses */
	uint64_t max_output_total; /* answer bytes in memory over all connections */
	uint64_t max_shm;       /* largest shared buffer a connection may attach */
	unsigned watch;         /* seconds between generation polls; 0 = off */
	mode_t socket_mode;     /* unix socket file mode */
	int verify;             /* ED_VERIFY_*: when to recompute every chunk checksum */
	unsigned drain_timeout; /* seconds SIGTERM waits for in-flight work */
	unsigned drain_delay;   /* seconds SIGTERM serves on with /healthz at 503 first */
	char *http;             /* "HOST:PORT" for /metrics and /healthz; NULL = off */
	uint64_t cache_bytes;   /* row cache DRAM shared by tables without their own; 0 = none */
	uint64_t page_budget;   /* page-cache mode: pages kept resident, shared the same way */
	unsigned io_depth;      /* reads in flight at once */
	uint64_t urgent_rows;   /* requests of at most this many rows go first */
	unsigned busy_poll;     /* microseconds a loop polls on after a small answer; 0 = off */
	int log_level;          /* enum ed_log_level given, or -1 */
	char *config;           /* the first config file read, or NULL */
};

/* The settings in force; filled once by ed_config_parse, read-only after,
 * except tables and n_tables, which the config reload (reconfig.c) replaces
 * on its thread (nothing else reads them after the start). */
extern struct ed_config ed_cfg;

/* Whether a lookup of max_rows slots fits max_frame with its slots as
 * LookupRequest.fixed_slots (8 bytes each, plus room for the rest of the
 * request): only then do rows answers say reads_fixed_slots, so a client
 * never sends as words a lookup that would have fitted as varints. */
int ed_cfg_fixed_slots_fit(void);

/* Parses argv (and any --config file) into ed_cfg, and keeps argv for
 * ed_config_reread. Returns 0 to run, 1 when it printed help or version
 * (exit 0), -1 on a usage error (already logged; an error in a config file
 * as "FILE:LINE: what"). */
int ed_config_parse(int argc, char **argv);
/* Parses the command line kept by ed_config_parse again, reading its config
 * files afresh, into *out (freed with ed_config_free). 0, or -1 with the
 * error logged and *out empty. Not thread-safe: one caller at a time. */
int ed_config_reread(struct ed_config *out);
void ed_config_free(struct ed_config *c);
/* Logs each setting that differs between now and next and cannot change
 * without a restart (every one but the tables and log-level); their count. */
size_t ed_config_restart_needed(const struct ed_config *now, const struct ed_config *next);
/* engramd --check-config FILE: parses FILE as --config FILE would, opens
 * nothing else, prints a summary. 0 when it is good, 1 after the error. */
int ed_config_check(const char *path);

#endif
