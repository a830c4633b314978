/* engram.h - libengram, the C client of engramd.
 *
 * One eg_client is one connection to a daemon (unix:/path or tcp:host:port),
 * or, made from an address list or table routes, a client of several
 * daemons that fails over between replicas (see "Several daemons" below).
 * It is not thread-safe: use one client per thread, or lock around it.
 * Requests may be pipelined: eg_client_send_lookup() writes a request now and
 * returns a ticket; eg_client_wait() collects that response later, so a model
 * process can overlap the fetch with its own compute. Blocking calls are the
 * send and the wait in one.
 *
 * Who reads: by default the library reads the socket only inside its calls,
 * so a response larger than the socket buffers waits for the next call. After
 * eg_client_start_reader(c) a thread of the library reads every response as
 * it arrives, into its ticket's buffer, while the caller computes; a wait
 * then only waits for that thread. The rules stay the same for the caller:
 * one thread at a time calls the functions of c, and a ticket's buffer
 * belongs to the library (written by the reader thread) until the wait for
 * that ticket returns. Do not fork() a process whose client runs a reader.
 *
 * Errors: functions return 0 on success or a negative code: a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT, -ENOMEM, ...) or one of EGC_E* below.
 * eg_client_strerror() names the code; eg_client_errmsg() gives the last
 * error in detail (including the daemon's message). The library never aborts
 * and never prints.
 *
 * Trust: nothing the daemon sends is believed before it is checked against
 * the request. A rows answer must hold one block per table asked, in order,
 * named as asked, with the number of rows asked (slots, or tokens x rows per
 * token), data of count x row_bytes bytes, and row_bytes within
 * EGC_ROW_BYTES_MAX and equal to what the daemon described for the table on
 * this connection (by an info answer or an earlier block); a shared-buffer
 * answer must place its rows where they were asked, inside the buffer. An
 * info answer must describe real layouts (row_bytes consistent with dtype,
 * dim and scale_block, within the limits below). A frame longer than any true
 * answer to its request is refused as soon as its length arrives. Any of
 * these is EGC_EPROTOCOL, with eg_client_errmsg() naming what did not match;
 * no size the daemon sends is allocated before it is checked. After
 * EGC_EPROTOCOL the caller's row buffer holds undefined bytes.
 *
 * Timeouts: the client's timeout bounds each call as a whole, also while a
 * frame keeps arriving; a call that times out in the middle of a frame drops
 * the connection (the stream is out of step). With the reader thread on, a
 * wait that times out leaves its ticket outstanding (the thread still reads
 * its frame, however late; wait again, or close the client).
 *
 * Reconnect: when the connection breaks, outstanding tickets fail with
 * -ECONNRESET (or -EPIPE); the next call reconnects to the same address once
 * before failing. A client of several daemons retries instead (below).
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
#define EGC_EPROTOCOL    (-29950) /* the daemon sent something unparseable, or an answer
                                     that does not match the request (see Trust) */
#define EGC_EADDR        (-29951) /* address string not unix:PATH or tcp:HOST:PORT */
#define EGC_EBUFSIZE     (-29952) /* caller buffer too small for the rows */
#define EGC_ETICKET      (-29953) /* unknown or already collected ticket */

/* Limits the library holds answers to (beyond them no table engramd serves
 * can be): larger values are EGC_EPROTOCOL. */
#define EGC_ROW_BYTES_MAX      (16u << 20) /* bytes of one row */
#define EGC_ROWS_PER_TOKEN_MAX 3840u       /* (max_ngram - 1) x heads = 15 x 256 */
#define EGC_MSG_FRAME_MAX      (64u << 20) /* an info or reload answer; stats,
                                              ping: 64 KiB */

/* The address of the daemon installed as a service (engramd.socket): what
 * eg_client_connect() and eg_client_open() use for a NULL or empty addr. */
#define EGC_DEFAULT_ADDR "unix:/run/engramd/engramd.sock"

/* A connection to one daemon; opaque. */
typedef struct eg_client eg_client;

/* Connects to a daemon.
 * @param addr "unix:/run/engramd/engramd.sock", "unix:@abstract" or
 *             "tcp:127.0.0.1:7070" (tcp:[::1]:7070 for IPv6); copied; NULL
 *             or "" means EGC_DEFAULT_ADDR. An address list or routes make
 *             a client of several daemons, as
 *             eg_client_open(addr, timeout_ms, 0, out) does.
 * @param timeout_ms bounds the connect and, later, every call (0 = no
 *             limit; change it with eg_client_set_timeout()).
 * @param[out] out the new client, owned by the caller and freed with
 *             eg_client_close(); NULL on failure.
 * @return 0, or EGC_EADDR (malformed or unresolvable address), -ETIMEDOUT,
 *         a negative errno of socket()/connect() (-ECONNREFUSED, -ENOENT),
 *         -ENOMEM, -EINVAL (out NULL). On failure there is no client
 *         to ask for a message. */
ENGRAM_EXPORT int eg_client_connect(const char *addr, int timeout_ms, eg_client **out);

/* ---- several daemons: replicas, routes, failover ---------------------------
 *
 * A spec names the daemons and which tables each serves:
 *   tcp:h1:7070,tcp:h2:7070    replicas of the same tables
 *   layer1=tcp:h1:7070,tcp:h2:7070;layer14=tcp:h3:7070;unix:/run/e.sock
 *                              tables routed to groups of replicas; the group
 *                              without names serves every other table
 *   @/etc/engram/routes.json   the same from a JSON file:
 *                              {"tables": {"layer1": ["tcp:h1:7070", ...], ...},
 *                               "default": ["unix:/run/e.sock"]}
 * ',' and ';' separate only where an address (unix:, tcp:) or, after ';',
 * NAMES= follows; table names in a spec hold no ':', ';' or '='. Groups
 * with the same addresses are one group.
 *
 * Such a client keeps one connection per replica it has used (made on first
 * use) and sends each request to a replica of the group serving its table:
 * a unix: one (on this host: the fastest) whenever it is not backing off,
 * else the one in use while it answers, else the next that is not backing
 * off. Clients start at a random replica, so a pool spreads its load. A
 * replica that cannot be reached, breaks the connection, exceeds the try
 * timeout, answers UNAVAILABLE (behind min_generation), INTERNAL (its disk
 * failed) or a truncated frame backs off: it is tried again at once after
 * its first failure in a row, then not for 25, 50, ... up to 1000 ms or a
 * quarter of the client's timeout (with jitter); a local replica is tried
 * again each time its back-off ends, so a client returns to it once it is
 * back. Lookups, token lookups, info, stats and ping are sent again to the
 * next replica, until one answers or the call's deadline (the client's
 * timeout) passes: such a call fails with -ETIMEDOUT only past its deadline
 * (eg_client_errmsg() gives each replica's last error), or at once with an
 * error no other replica would answer differently (EGC_EBADREQUEST,
 * EGC_ENOTFOUND, EGC_EOUTOFRANGE, EGC_ETOOLARGE, EGC_EBUFSIZE, -EINVAL,
 * -ENOMEM). Without a timeout each replica is tried once per call. Reload
 * is never sent twice: it goes to the replica in use, of a single group.
 *
 * A token lookup over tables of several groups goes to each group at once
 * (its tables, in the order asked) and is collected as one answer: the
 * same blocks, each with its own generation, as one daemon would return.
 * A lookup's request is copied into its ticket (8 bytes per slot or token)
 * so it can be sent again; its buffers may be written by a failed try and
 * then by the next; they are never written after its wait returns. A
 * ticket is collected once, whatever the result (also after -ETIMEDOUT).
 * info lists each table from the group serving it; stats come from the
 * replica in use of the group without names (else the first); ping asks
 * one replica of every group. The shared buffer needs a plain unix client.
 * Thread rules are those of any eg_client: one thread at a time. */

/* Opens a client of spec.
 * @param spec one address (a plain connection, as eg_client_connect), an
 *             address list, routes or @FILE (above); copied; NULL or ""
 *             means EGC_DEFAULT_ADDR.
 * @param timeout_ms the deadline of every call, retries included (0 = none)
 * @param flags EGC_FAILOVER: a client of several daemons even for one
 *             address (a load balancer in front of replicas: a failed
 *             request is sent again through it); EGC_MONOTONIC: never
 *             return a table's rows of an older generation than this
 *             client returned before (each answer raises the table's
 *             min_generation, eg_client_set_min_generation).
 * @param[out] out as eg_client_connect(); one connection per group is made
 *             before this returns.
 * @return as eg_client_connect(); EGC_EADDR also for a spec or routes file
 *         that does not parse (eg_client_check_spec() says why). */
#define EGC_FAILOVER  1u
#define EGC_MONOTONIC 2u
ENGRAM_EXPORT int eg_client_open(const char *spec, int timeout_ms, unsigned flags,
                                 eg_client **out);

/* Checks spec without connecting: 0, or EGC_EADDR with why (may be NULL)
 * receiving one line of whylen bytes at most, -ENOMEM, -EINVAL (spec NULL). */
ENGRAM_EXPORT int eg_client_check_spec(const char *spec, char *why, size_t whylen);

/* Sets the most one replica may take of a call before the next is asked
 * (ms; 0 or negative = half the client's timeout, the default). A client of
 * one daemon ignores it. NULL c is a no-op. */
ENGRAM_EXPORT void eg_client_set_try_timeout(eg_client *c, int try_timeout_ms);

/* Sets the lowest generation of table this client accepts (0 = any),
 * sent as min_generation with every lookup of it: a daemon still on an
 * older version answers EGC_EUNAVAILABLE (a client of several daemons then
 * asks another replica), and an answer of an older generation from a
 * daemon that ignores the field is refused as EGC_EUNAVAILABLE. After a
 * rollback to a lower generation, lower the floor again. table is copied.
 * @return 0, -EINVAL (c or table NULL), -ENOMEM. */
ENGRAM_EXPORT int eg_client_set_min_generation(eg_client *c, const char *table,
                                               uint64_t generation);
/* The floor of table now (0: none; also for NULL arguments). */
ENGRAM_EXPORT uint64_t eg_client_min_generation(const eg_client *c, const char *table);

/* Closes the connection and frees c (NULL is a no-op). Outstanding tickets
 * are dropped: their buffers are no longer written once this returns. A
 * shared buffer is unmapped: pointers into it become invalid. */
ENGRAM_EXPORT void eg_client_close(eg_client *c);

/* Sets the per-call timeout in ms (0 or negative = no limit); applies from
 * the next call on. NULL c is a no-op. */
ENGRAM_EXPORT void eg_client_set_timeout(eg_client *c, int timeout_ms);

/* Names an error code.
 * @param err any code a libengram function returns (0, a negative errno or
 *            EGC_E*); other values give "unknown error".
 * @return a static string (never NULL, never freed, safe from any thread). */
ENGRAM_EXPORT const char *eg_client_strerror(int err);

/* Detail of the last failed call on c, in one line (the daemon's message,
 * or what in an answer did not match its request).
 * @return a string owned by c, valid until the next call on c or
 *         eg_client_close(); "" when no call failed yet; "no client" when c
 *         is NULL. */
ENGRAM_EXPORT const char *eg_client_errmsg(const eg_client *c);

/* Description of one served table. */
typedef struct eg_client_table {
	char *name;
	uint64_t slots;        /* >= 1 */
	uint32_t dim;
	char *dtype;           /* "f32", "f16", "bf16", "e4m3", "u8" (or a newer name) */
	uint32_t scale_block;
	uint32_t row_bytes;    /* 1 .. EGC_ROW_BYTES_MAX, consistent with dtype and dim */
	uint64_t generation;
	char *hash_kind;       /* "" when the table has no hash spec */
	uint32_t rows_per_token; /* 0 without a hash spec, else 1 .. EGC_ROWS_PER_TOKEN_MAX */
	uint64_t chunk_slots;
	char *path;
} eg_client_table;

/* Describes every served table (blocking). The layouts are remembered for
 * this connection, so later answers are checked against them.
 * @param[out] tables an array of *n tables, owned by the caller (strings
 *             included) and freed with eg_client_info_free(); untouched on
 *             failure.
 * @param[out] n number of tables (may be 0).
 * @return 0, or -EINVAL (a NULL argument), -ENOMEM, -ETIMEDOUT,
 *         -ECONNRESET and other negative errnos of the connection, the
 *         daemon's status as EGC_E*, EGC_EPROTOCOL (a table whose layout
 *         cannot be; see eg_client_errmsg()). */
ENGRAM_EXPORT int eg_client_info(eg_client *c, eg_client_table **tables, size_t *n);

/* Frees an array from eg_client_info() (tables NULL is a no-op); n must be
 * the count it returned. */
ENGRAM_EXPORT void eg_client_info_free(eg_client_table *tables, size_t n);

/* The daemon's counters (StatsResponse in proto/engram.proto). */
typedef struct eg_client_stats {
	uint64_t uptime_seconds, connections, requests, errors, rows, bytes_out,
	         reloads, reload_failures;
	/* the I/O path: rows found in memory / read from disk first, reads of
	 * table files, reads in flight now */
	uint64_t rows_warm, rows_cold, disk_reads, disk_read_bytes, disk_reads_inflight;
	/* row caches, summed over the tables that have one */
	uint64_t cache_hits, cache_misses, cache_evictions, cache_rows, cache_bytes;
	/* disk read latency: the bucket bound (us) at or below which half and
	 * 99% of the reads since start took; 0 before the first read,
	 * UINT64_MAX when past the largest bound */
	uint64_t disk_read_p50_us, disk_read_p99_us;
} eg_client_stats;

/* Reads the daemon's counters (blocking).
 * @param[out] out filled on success; owned by the caller; untouched on
 *             failure.
 * @return 0, or -EINVAL (c or out NULL), -ENOMEM, -ETIMEDOUT, -ECONNRESET
 *         and other negative errnos of the connection, the daemon's status
 *         as EGC_E*, EGC_EPROTOCOL (not a stats answer, or a frame over
 *         64 KiB). */
ENGRAM_EXPORT int eg_client_stats_get(eg_client *c, eg_client_stats *out);

/* One round trip to the daemon (blocking), e.g. to check it is alive or to
 * reconnect an idle client.
 * @return 0 when the daemon answered with a Pong; otherwise as
 *         eg_client_stats_get() (-EINVAL when c is NULL). */
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
 * ticket returns (or the client is closed).
 * @return 0, or -EINVAL (c, table or ticket NULL; slots NULL with n > 0;
 *         out NULL with out_size > 0), -ENOMEM, a negative errno of the
 *         connection, or the daemon's status as EGC_E* when it refused the
 *         request before it was sent whole. On failure no ticket exists. */
ENGRAM_EXPORT int eg_client_send_lookup(eg_client *c, const char *table,
                                        const uint64_t *slots, size_t n,
                                        void *out, size_t out_size, uint64_t *ticket);

/* Sends a token lookup over ntables tables (see TokensRequest in
 * proto/engram.proto). outs[i]/out_sizes[i] receive table i's block
 * [tokens x rows_per_token x row_bytes]; same lifetime rule as above.
 * seq_lens may be NULL (one sequence), context may be NULL (none); with
 * either, nseq is the number of sequences (1 when seq_lens is NULL).
 * The arrays may be reused as soon as this returns.
 * @return as eg_client_send_lookup() (-EINVAL also for ntables 0, a NULL
 *         table name, or seq_lens/context without nseq). */
ENGRAM_EXPORT int eg_client_send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                                        const int64_t *tokens, size_t ntokens,
                                        const uint32_t *seq_lens, const uint32_t *context,
                                        size_t nseq, void *const *outs, const size_t *out_sizes,
                                        uint64_t *ticket);

/* Waits for the response of ticket (responses of earlier tickets are read
 * and kept on the way). rows (may be NULL) receives the first block's
 * description; for token lookups blocks receives one per table (nblocks;
 * entries past the request's tables are zeroed). A ticket is collected once,
 * whatever the result, except after -ETIMEDOUT before its response began:
 * it may be waited for again.
 * Errors: the daemon's status as EGC_E*, -ETIMEDOUT, -ECONNRESET,
 * EGC_EBUFSIZE (the rows did not fit; nothing written), EGC_ETICKET,
 * EGC_EPROTOCOL (the answer does not match the request: see Trust),
 * -EINVAL (c NULL, blocks NULL with nblocks > 0). */
ENGRAM_EXPORT int eg_client_wait(eg_client *c, uint64_t ticket, eg_client_rows *rows);
ENGRAM_EXPORT int eg_client_wait_blocks(eg_client *c, uint64_t ticket,
                                        eg_client_rows *blocks, size_t nblocks);

/* Starts the reader thread of c (see "Who reads" above); a no-op when it
 * runs. It ends in eg_client_close(), which waits for it. For a client over
 * several daemons, each replica's connection gets its own, now or when it
 * is first made.
 * @return 0, or -EINVAL (c NULL), or the negative errno of pthread_create. */
ENGRAM_EXPORT int eg_client_start_reader(eg_client *c);

/* Whether ticket's response has been read (a wait for it will not block).
 * Reads nothing itself: without the reader thread only calls move tickets.
 * @return 1 or 0, EGC_ETICKET (unknown or collected ticket), -EINVAL,
 *         -ENOTSUP for a client over several daemons. */
ENGRAM_EXPORT int eg_client_ready(eg_client *c, uint64_t ticket);

/* Blocking lookup: send + wait; errors of both. */
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
 * collected). Collect with eg_client_wait_shm(). -EINVAL without a buffer.
 * The range is the request's from this call on: once the table's layout is
 * known on the connection (rows of 8 bytes or more) the slots are copied to
 * its start and the daemon reads them there (slots may point into the buffer
 * themselves; slots already at base + offset, written there by the caller,
 * are not copied), unless another request in flight may still write there. */
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
 * at its rows inside the shared buffer (count x row_bytes bytes, checked to
 * lie where the request put them; not owned by the caller). Errors as
 * eg_client_wait(); EGC_ETICKET also for a ticket that is not an shm
 * request. */
ENGRAM_EXPORT int eg_client_wait_shm(eg_client *c, uint64_t ticket, eg_client_rows *blocks,
                                     const void **data, size_t nblocks);

/* Blocking shm lookup: send + wait. rows and data may be NULL; *data is
 * base + offset. */
ENGRAM_EXPORT int eg_client_lookup_shm(eg_client *c, const char *table, const uint64_t *slots,
                                       size_t n, uint64_t offset, eg_client_rows *rows,
                                       const void **data);

/* Outcome of a reload for one table. */
typedef struct eg_client_reload {
	char table[64];        /* truncated if longer */
	uint64_t old_generation, new_generation;
	int reloaded;          /* a new snapshot was swapped in */
	char error[256];       /* why a version was refused ("" if not; truncated) */
} eg_client_reload;

/* Asks the daemon to reload table (NULL or "" = all) and waits for the
 * outcome (blocking).
 * @param res room for nres results (may be NULL when nres is 0), owned by
 *            the caller; the first min(nres, count) are filled.
 * @param[out] nout (may be NULL) how many results the daemon sent, which
 *            may exceed nres.
 * @return 0 when the daemon answered (a refused version is a result with
 *         error set, not a failure); otherwise -EINVAL (c NULL, res NULL
 *         with nres > 0) or as eg_client_stats_get(). */
ENGRAM_EXPORT int eg_client_reload_tables(eg_client *c, const char *table,
                                          eg_client_reload *res, size_t nres, size_t *nout);

#ifdef __cplusplus
}
#endif
#endif
