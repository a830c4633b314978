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
};

/* The settings in force; filled once by ed_config_parse, read-only after. */
extern struct ed_config ed_cfg;

/* Parses argv (and any --config file). Returns 0 to run, 1 when it printed
 * help or version (exit 0), -1 on a usage error (already logged). */
int ed_config_parse(int argc, char **argv);

#endif
