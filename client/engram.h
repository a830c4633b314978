/* engram.h - libengram, the C client of engramd.
 *
 * One eg_client is one connection to a daemon (unix:/path or tcp:host:port).
 * It is not thread-safe: use one client per thread, or lock around it.
 * Requests may be pipelined: eg_client_send_lookup() writes a request now and
 * returns a ticket; eg_client_wait() collects that response later, so a model
 * process can overlap the fetch with its own compute. Blocking calls are the
 * send and the wait in one.
 *
 * Errors: functions return 0 on success or a negative code: a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT, -ENOMEM, ...) or one of EGC_E* below.
 * eg_client_strerror() names the code; eg_client_errmsg() gives the last
 * error in detail (including the daemon's message). The library never aborts
 * and never prints.
 *
 * Reconnect: when the connection breaks, outstanding tickets fail with
 * -ECONNRESET (or -EPIPE); the next call reconnects to the same address once
 * before failing.
 */
#ifndef ENGRAM_H
#define ENGRAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENGRAM_EXPORT __attribute__((visibility("default")))

/* Errors of the daemon (its Status, negated and offset) and of the library;
 * all lie in [-29999, -29900]. */
#define EGC_EBADREQUEST  (-29901) /* daemon: BAD_REQUEST */
#define EGC_ENOTFOUND    (-29902) /* daemon: NOT_FOUND (unknown table) */
#define EGC_EOUTOFRANGE  (-29903) /* daemon: OUT_OF_RANGE */
#define EGC_ETOOLARGE    (-29904) /* daemon: TOO_LARGE */
#define EGC_EUNAVAILABLE (-29905) /* daemon: UNAVAILABLE */
#define EGC_EINTERNAL    (-29906) /* daemon: INTERNAL */
#define EGC_EPROTOCOL    (-29950) /* the daemon sent something unparseable */
#define EGC_EADDR        (-29951) /* address string not unix:PATH or tcp:HOST:PORT */
#define EGC_EBUFSIZE     (-29952) /* caller buffer too small for the rows */
#define EGC_ETICKET      (-29953) /* unknown or already collected ticket */

typedef struct eg_client eg_client;

/* Connects to addr ("unix:/run/engramd.sock", "tcp:127.0.0.1:7070").
 * timeout_ms bounds connect and every later wait (0 = no limit).
 * On success *out is owned by the caller, freed with eg_client_close(). */
ENGRAM_EXPORT int eg_client_connect(const char *addr, int timeout_ms, eg_client **out);

/* Closes the connection and frees c; outstanding tickets are dropped. */
ENGRAM_EXPORT void eg_client_close(eg_client *c);

/* Per-call timeout for waits, in ms (0 = no limit). */
ENGRAM_EXPORT void eg_client_set_timeout(eg_client *c, int timeout_ms);

ENGRAM_EXPORT const char *eg_client_strerror(int err);
/* Detail of the last failed call on c; valid until the next call on c. */
ENGRAM_EXPORT const char *eg_client_errmsg(const eg_client *c);

/* Description of one served table (strings owned by the eg_client_info
 * array they came in). */
typedef struct eg_client_table {
	char *name;
	uint64_t slots;
	uint32_t dim;
	char *dtype;          /* "f32", "f16", "bf16", "e4m3", "u8" */
	uint32_t scale_block;
	uint32_t row_bytes;
	uint64_t generation;
	char *hash_kind;      /* "" when the table has no hash spec */
	uint32_t rows_per_token;
	uint64_t chunk_slots;
	char *path;
} eg_client_table;

/* Describes every served table. On success *tables (n of them) is owned by
 * the caller and freed with eg_client_info_free(). */
ENGRAM_EXPORT int eg_client_info(eg_client *c, eg_client_table **tables, size_t *n);
ENGRAM_EXPORT void eg_client_info_free(eg_client_table *tables, size_t n);

typedef struct eg_client_stats {
	uint64_t uptime_seconds, connections, requests, errors, rows, bytes_out,
	         reloads, reload_failures;
} eg_client_stats;

ENGRAM_EXPORT int eg_client_stats_get(eg_client *c, eg_client_stats *out);
ENGRAM_EXPORT int eg_client_ping(eg_client *c);

/* What a completed lookup returned. */
typedef struct eg_client_rows {
	uint64_t generation;   /* table generation the rows came from */
	uint32_t row_bytes;
	uint64_t count;        /* rows written to the caller's buffer */
} eg_client_rows;

/* Sends a lookup of n slots of table now; returns a ticket in *ticket.
 * The slots array may be reused as soon as this returns.
 * out/out_size is the caller's buffer the rows will be written to when the
 * response is collected; it must stay valid until eg_client_wait() for this
 * ticket returns (or the client is closed). */
ENGRAM_EXPORT int eg_client_send_lookup(eg_client *c, const char *table,
                                        const uint64_t *slots, size_t n,
                                        void *out, size_t out_size, uint64_t *ticket);

/* Sends a token lookup over ntables tables (see TokensRequest in
 * proto/engram.proto). outs[i]/out_sizes[i] receive table i's block
 * [tokens x rows_per_token x row_bytes]; same lifetime rule as above.
 * seq_lens may be NULL (one sequence), context may be NULL (none). */
ENGRAM_EXPORT int eg_client_send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                                        const int64_t *tokens, size_t ntokens,
                                        const uint32_t *seq_lens, const uint32_t *context,
                                        size_t nseq, void *const *outs, const size_t *out_sizes,
                                        uint64_t *ticket);

/* Waits for the response of ticket (responses of earlier tickets are read
 * and kept on the way). rows (may be NULL) receives the first block's
 * description; for token lookups blocks receives one per table (nblocks).
 * Errors: the daemon's status as EGC_E*, -ETIMEDOUT, -ECONNRESET,
 * EGC_EBUFSIZE (the rows did not fit; nothing written), EGC_ETICKET. */
ENGRAM_EXPORT int eg_client_wait(eg_client *c, uint64_t ticket, eg_client_rows *rows);
ENGRAM_EXPORT int eg_client_wait_blocks(eg_client *c, uint64_t ticket,
                                        eg_client_rows *blocks, size_t nblocks);

/* Blocking lookup: send + wait. */
ENGRAM_EXPORT int eg_client_lookup(eg_client *c, const char *table, const uint64_t *slots,
                                   size_t n, void *out, size_t out_size, eg_client_rows *rows);

/* ---- same-host fast path (unix sockets only) ------------------------------
 *
 * The client creates a shared buffer (a sealed memfd), maps it and hands it
 * to the daemon; shm lookups then ask the daemon to write the rows straight
 * into it at a chosen offset, and the response carries only where they are:
 * no row bytes cross the socket. The buffer belongs to the eg_client: it is
 * attached again on every reconnect and unmapped by eg_client_close().
 * Rows of an shm request are complete when its wait returns; they stay there
 * until the caller (or a later shm request at an overlapping offset)
 * overwrites them. Several shm requests may be pipelined when their ranges
 * do not overlap. */

/* Creates a shared buffer of size bytes, maps it and attaches it to the
 * daemon (on a fresh connection: call it with no outstanding ticket). On
 * success *base is its start, owned by c and valid until eg_client_close().
 * Errors: -EINVAL (not a unix address, size 0), -EBUSY (already attached,
 * or tickets outstanding), a negative errno, or the daemon's refusal
 * (EGC_ETOOLARGE over its --max-shm, EGC_EBADREQUEST). */
ENGRAM_EXPORT int eg_client_attach_shm(eg_client *c, size_t size, void **base);

/* Sends a lookup whose rows the daemon writes into the shared buffer at
 * offset (offset + n x row_bytes must fit it, else EGC_EOUTOFRANGE when
 * collected). Collect with eg_client_wait_shm(). -EINVAL without a buffer. */
ENGRAM_EXPORT int eg_client_send_lookup_shm(eg_client *c, const char *table,
                                            const uint64_t *slots, size_t n, uint64_t offset,
                                            uint64_t *ticket);

/* Sends a token lookup (as eg_client_send_tokens) whose blocks the daemon
 * writes into the shared buffer back to back from offset. */
ENGRAM_EXPORT int eg_client_send_tokens_shm(eg_client *c, const char *const *tables,
                                            size_t ntables, const int64_t *tokens,
                                            size_t ntokens, const uint32_t *seq_lens,
                                            const uint32_t *context, size_t nseq,
                                            uint64_t offset, uint64_t *ticket);

/* Waits for an shm ticket: blocks[i] describes block i and data[i] points
 * at its rows inside the shared buffer (count x row_bytes bytes; not owned
 * by the caller). */
ENGRAM_EXPORT int eg_client_wait_shm(eg_client *c, uint64_t ticket, eg_client_rows *blocks,
                                     const void **data, size_t nblocks);

/* Blocking shm lookup: send + wait. rows and data may be NULL; *data is
 * base + offset. */
ENGRAM_EXPORT int eg_client_lookup_shm(eg_client *c, const char *table, const uint64_t *slots,
                                       size_t n, uint64_t offset, eg_client_rows *rows,
                                       const void **data);

/* Asks the daemon to reload table (NULL or "" = all). Fills up to nres
 * results (may be 0); *nout gets how many the daemon sent. */
typedef struct eg_client_reload {
	char table[64];
	uint64_t old_generation, new_generation;
	int reloaded;
	char error[256];
} eg_client_reload;
ENGRAM_EXPORT int eg_client_reload_tables(eg_client *c, const char *table,
                                          eg_client_reload *res, size_t nres, size_t *nout);

#ifdef __cplusplus
}
#endif
#endif
