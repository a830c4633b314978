/* egc_int.h - libengram internals shared by the files of client/; not installed.
 *
 * Layout of the library:
 *   conn.c    address parsing, connect with timeout, raw socket I/O with a
 *             deadline, buffered reads, dropping a broken connection
 *   encode.c  request frames; lookups encoded by hand in one pass
 *   frame.c   reading one Response frame: lookups are parsed by hand and their
 *             row bytes land straight in the caller's buffer; every other
 *             response is read whole and unpacked with protobuf-c
 *   check.c   what a response must match before its rows are trusted: the
 *             request (blocks, tables, counts, shm ranges) and the layouts
 *             the daemon described on this connection
 *   ticket.c  the queue of outstanding requests, sending a request, waiting
 *   client.c  the public calls: connect, lookups, waits
 *   admin.c   the public calls: info, stats, ping, reload
 *   shm.c     the same-host fast path: the shared buffer and its lookups
 *   reader.c  the reader thread (eg_client_start_reader) and the lock
 *   errors.c  eg_client_strerror and the detail message
 *   floor.c   the lowest generation accepted per table (min_generation)
 *   spec.c    parsing an address list or table routes (egc_fleet.h)
 *   fleet.c   a client over several daemons: replica choice, backoff,
 *             the calls other than lookups
 *   fleet_rows.c  lookups over several daemons: fan-out and retries
 *
 * Threads: every public call holds c->mu while it runs. With the reader
 * thread on, that thread holds it too while it parses, and each side lets it
 * go only while it waits: on the socket (poll, recv) or on c->cv. Only the
 * reader thread reads the socket then; a caller waits on c->cv for its
 * ticket. A socket in use by a thread waiting outside the lock is never
 * closed under it: it is shut down and closed by the last one out.
 */
#ifndef EGC_INT_H
#define EGC_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "engram.h"
#include "engram.pb-c.h"

/* Frames other than row blocks are read whole: info and reload answers up to
 * EGC_MSG_FRAME_MAX (engram.h), stats, ping and attach answers up to this. */
#define EGC_SMALL_FRAME_MAX (64u << 10)
/* Room in a rows frame for everything but the row bytes: the top-level
 * fields and an error text, plus per block its header and the table name. */
#define EGC_FRAME_SLACK (64u << 10)
#define EGC_BLOCK_SLACK 128u
#define EGC_RBUF_SIZE (64u << 10)
/* Bytes one recv may copy (conn.c says why). */
#define EGC_RECV_MAX (1u << 20)
#define EGC_MSG_MAX 384
/* Table layouts remembered per connection (see check.c). */
#define EGC_LAYOUTS_MAX 256
/* A token request whose seq_lens/context do not add up: no OK answer fits. */
#define EGC_TOKENS_INVALID UINT64_MAX

enum egc_kind {
	EGC_KIND_ROWS, /* lookup or tokens: blocks go to the caller's buffers */
	EGC_KIND_MSG,  /* anything else: the Response is unpacked whole */
};

/* One request sent (or being sent) and not yet collected. */
typedef struct egc_ticket {
	uint64_t id;
	enum egc_kind kind;
	int done;          /* the response was read (or the connection dropped) */
	int orphan;        /* its caller gave up (timeout): free it once done */
	int shm;           /* rows go to the client's shared buffer */
	int err;           /* result once done */
	char msg[EGC_MSG_MAX]; /* detail when err != 0 */
	uint64_t max_frame; /* longest frame a true answer can be */
	Engram__V1__Response *resp; /* EGC_KIND_MSG: the response, owned here */

	/* EGC_KIND_ROWS: what was asked ... */
	int tokens;          /* a TokensRequest (else a LookupRequest) */
	uint64_t want_count; /* lookup: slots asked */
	uint64_t want_tokens; /* tokens: tokens returned, or EGC_TOKENS_INVALID */
	uint64_t shm_offset; /* shm: where the rows were asked for */
	/* ... and what the frame said */
	uint64_t got_tokens, got_rpt; /* Response.tokens, .rows_per_token */
	uint64_t too_big, room; /* a block that did not fit (bytes) and its buffer */
	size_t nblocks_got;
	size_t nouts;
	struct egc_out {
		const char *table;    /* the name asked for (copied into the ticket) */
		void *buf;
		size_t size;
		eg_client_rows rows;
		uint64_t data_len;    /* bytes of RowBlock.data */
		int ndata;            /* data fields seen (more than one is a lie) */
		int in_shm;           /* the block said its rows are in the shared buffer */
		uint64_t shm_offset;  /* ... at this offset */
		uint64_t got_len;     /* length of the block's table name */
		int name_bad;         /* ... and its bytes differ from the name asked */
		char got_table[64];   /* its first bytes (NUL-terminated) */
	} outs[];          /* EGC_KIND_ROWS: one per expected block */
} egc_ticket;

/* The lowest generation of a table the client accepts (floor.c). */
struct egc_floor {
	char *name;
	uint64_t generation;
};

struct egc_fleet;

/* A table's row layout as the daemon described it on this connection. */
struct egc_layout {
	char *name;
	uint32_t row_bytes;
	uint32_t rows_per_token; /* valid when rpt_known */
	int rpt_known;
};

struct eg_client {
	char *addr;
	int fd;              /* -1 when not connected */
	int timeout_ms;      /* 0 = no limit */
	int64_t deadline;    /* monotonic ms of the current call; -1 = none */
	int64_t rd_deadline; /* the same for reads: the call's, or -1 for the reader thread */
	uint64_t next_id;

	/* outstanding tickets in send order; answered ones form a prefix */
	egc_ticket **q;
	size_t qlen, qcap;

	/* read buffer: bytes rbuf[rpos..rlen) are received, not yet parsed */
	unsigned char *rbuf;
	size_t rpos, rlen;

	/* request being encoded */
	unsigned char *wbuf;
	size_t wcap;

	/* same-host fast path (unix only): the shared buffer, mapped here and
	 * attached on every fresh connection; shm_fd -1 when none */
	int shm_fd;
	void *shm_base;
	size_t shm_size;
	/* the daemon on this connection reads a lookup's slots from the shared
	 * buffer (LookupRequest.shm_slots; its attach answer said so) */
	int shm_reads_slots;
	/* an answer on this connection said reads_fixed_slots: lookups send
	 * LookupRequest.fixed_slots (a copy) instead of varints; set by the
	 * thread reading answers, hence atomic (__atomic_*, relaxed) */
	int reads_fixed_slots;

	/* layouts learnt on the current connection (info, earlier blocks);
	 * forgotten when it closes: another daemon may serve other tables */
	struct egc_layout layouts[EGC_LAYOUTS_MAX];
	size_t nlayouts;

	/* min_generation per table, sent with every lookup of it; with
	 * EGC_MONOTONIC raised to each generation received */
	struct egc_floor *floors;
	size_t nfloors, floorcap;
	unsigned flags;      /* EGC_FAILOVER, EGC_MONOTONIC */

	/* an address list or routes: the calls go to single-address clients,
	 * one per replica (fleet.c); NULL for a plain connection */
	struct egc_fleet *fleet;
	int try_timeout_ms;  /* fleet: one replica's share of a call; 0 = default */

	const char *proto_why; /* static text: why the frame being read is malformed */
	char errmsg[512];

	/* threads (reader.c) */
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a ticket done, a ticket queued, the reader idle */
	pthread_t reader;
	int reader_on;       /* the reader thread runs; set once, by a caller */
	int rd_active;       /* the reader is inside a frame */
	int rd_stop;         /* eg_client_close: the reader must end */
	int fd_users;        /* threads waiting on fd outside the lock */
	int zombie;          /* a dropped fd still waited on (closed when fd_users is 0), or -1 */
	int kill_err;        /* a caller's reason for the drop the reader is asked to do */
	char kill_why[EGC_MSG_MAX];
};

/* errors.c */
void egc__set_msg(eg_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int egc__status_err(int status);
/* Sets c->proto_why (a static string); returns EGC_EPROTOCOL. */
int egc__proto(eg_client *c, const char *why);

/* reader.c */
int egc__lock_init(eg_client *c);
void egc__lock(eg_client *c);
void egc__unlock(eg_client *c);
/* Around a wait on c->fd: lets the lock go when the reader thread runs. */
void egc__fd_wait_begin(eg_client *c);
void egc__fd_wait_end(eg_client *c);
/* Waits on c->cv until woken or the call's deadline: 0 or -ETIMEDOUT. */
int egc__cv_wait(eg_client *c);
/* Drops the connection from a caller (lock held): when the reader thread is
 * inside a frame it is woken (the socket shut down) and drops it with err
 * and why; the call returns once it has. */
void egc__drop_call(eg_client *c, int err, const char *why);
/* eg_client_close: ends the reader thread (lock not held). */
void egc__reader_stop(eg_client *c);

/* conn.c */
int egc__dial(eg_client *c);
int egc__ensure_connected(eg_client *c);
void egc__start_call(eg_client *c);
int64_t egc__now_ms(void);
int egc__poll(eg_client *c, short events, short *revents);
int egc__recv_some(eg_client *c, void *dst, size_t n, size_t *got);
int egc__byte(eg_client *c, unsigned char *out);
int egc__read_exact(eg_client *c, void *dst, size_t n);
int egc__skip(eg_client *c, uint64_t n);
int egc__varint(eg_client *c, uint64_t *out, uint64_t *used);
void egc__drop(eg_client *c, int err, const char *why);

/* frame.c */
int egc__read_response(eg_client *c);

/* encode.c: a request frame in c->wbuf (valid until the next encode) */
int egc__encode_msg(eg_client *c, Engram__V1__Request *req, const unsigned char **frame,
                    size_t *len);
/* a LookupRequest; with shm set, LookupRequest.shm and shm_offset too;
 * min_generation and shm_slots (the slots are in the shared buffer: n is 0)
 * when not 0 */
int egc__encode_lookup(eg_client *c, uint64_t id, const char *table, const uint64_t *slots,
                          size_t n, int shm, uint64_t shm_offset, uint64_t min_generation,
                          uint64_t shm_slots, const unsigned char **frame, size_t *len);

/* floor.c */
/* The floor of table (0: none). */
uint64_t egc__floor(const eg_client *c, const char *table);
/* Raises the floor of table to generation (never lowers it); -ENOMEM. */
int egc__floor_raise(eg_client *c, const char *table, uint64_t generation);
/* With EGC_MONOTONIC: raises the floors to the generations of t's blocks. */
void egc__floor_learn(eg_client *c, const egc_ticket *t);
void egc__floor_free(eg_client *c);

/* shm.c: after a fresh connect, attaches the client's shared buffer again
 * (a no-op without one) */
int egc__shm_reattach(eg_client *c);
/* unmaps and closes the shared buffer */
void egc__shm_release(eg_client *c);

/* check.c */
/* Checks a parsed rows frame of t against its request (and the layouts
 * known); on a mismatch sets t->err = EGC_EPROTOCOL and t->msg. On success
 * remembers the blocks' layouts. */
void egc__check_rows(eg_client *c, egc_ticket *t);
/* The longest frame a true answer to t can be, by the layouts known. */
uint64_t egc__rows_frame_max(const eg_client *c, const egc_ticket *t);
/* Checks every table of an info answer; 0 or EGC_EPROTOCOL with the detail
 * in c->errmsg. On success the layouts replace those known. */
int egc__check_info(eg_client *c, const Engram__V1__InfoResponse *info);
/* Tokens returned by a token request (seq_lens NULL: one sequence of
 * every token), or EGC_TOKENS_INVALID. */
uint64_t egc__tokens_out(size_t ntokens, const uint32_t *seq_lens, const uint32_t *context,
                         size_t nseq);
/* Forgets the layouts learnt on the connection that just closed. */
void egc__forget_layouts(eg_client *c);
/* The row bytes of table as learnt on this connection; 0 when not known. */
uint32_t egc__known_row_bytes(const eg_client *c, const char *table);

/* ticket.c; egc__send frees t when it fails. tables (nouts names, may be
 * NULL) are copied into the ticket. */
egc_ticket *egc__ticket_new(eg_client *c, enum egc_kind kind, size_t nouts,
                            const char *const *tables);
void egc__ticket_free(egc_ticket *t);
int egc__send(eg_client *c, egc_ticket *t, const unsigned char *frame, size_t len);
int egc__push(eg_client *c, egc_ticket *t);

/* client.c: a client of addr, not connected (no read buffer yet); NULL when
 * out of memory */
eg_client *egc__client_new(const char *addr, int timeout_ms, unsigned flags);
/* client.c: eg_client_send_lookup (arguments checked), or with shm the rows
 * into the shared buffer at shm_offset (out and out_size unused) */
int egc__send_lookup(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                     void *out, size_t out_size, int shm, uint64_t shm_offset, uint64_t *ticket);
/* client.c: collects ticket into blocks[0..nblocks); with data (shm requests)
 * also where each block's rows lie in the shared buffer; with shm set, a
 * ticket that was not a shared-buffer request is EGC_ETICKET. */
int egc__wait(eg_client *c, uint64_t ticket, eg_client_rows *blocks, const void **data,
              size_t nblocks, int shm);
/* client.c: whether the arguments of a token lookup are complete (else
 * -EINVAL with a message); outs and out_sizes are not used with shm */
int egc__tokens_args(eg_client *c, const char *const *tables, size_t ntables,
                     const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                     const uint32_t *context, size_t nseq, void *const *outs,
                     const size_t *out_sizes, int shm, uint64_t *ticket);
/* client.c: eg_client_send_tokens, or with shm the rows into the shared
 * buffer from shm_offset (outs and out_sizes unused) */
int egc__send_tokens(eg_client *c, const char *const *tables, size_t ntables,
                     const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                     const uint32_t *context, size_t nseq, void *const *outs,
                     const size_t *out_sizes, int shm, uint64_t shm_offset, uint64_t *ticket);
int egc__collect(eg_client *c, uint64_t ticket, egc_ticket **out);
egc_ticket *egc__head(eg_client *c);
void egc__reap(eg_client *c);

/* fleet.c and fleet_rows.c: the public calls of a client made from an
 * address list or routes (c->fleet set); same contracts as in engram.h. */
int egc__fleet_open(const char *spec, int timeout_ms, unsigned flags, eg_client **out);
void egc__fleet_free(eg_client *c);
int egc__fleet_info(eg_client *c, eg_client_table **tables, size_t *n);
int egc__fleet_stats(eg_client *c, eg_client_stats *out);
int egc__fleet_ping(eg_client *c);
int egc__fleet_reload(eg_client *c, const char *table, eg_client_reload *res, size_t nres,
                      size_t *nout);
/* A rows request as the caller gave it (arguments checked). */
struct egc_rows_req {
	const char *const *tables;
	size_t ntables;
	int tokens;                 /* a TokensRequest, else a lookup of tables[0] */
	const uint64_t *slots;      /* lookup */
	size_t nslots;
	const int64_t *toks;        /* tokens, as eg_client_send_tokens takes them */
	size_t ntoks;
	const uint32_t *seq_lens, *context;
	size_t nseq;
	void *const *outs;          /* one buffer per table */
	const size_t *sizes;
};
int egc__fleet_send(eg_client *c, const struct egc_rows_req *rq, uint64_t *ticket);
int egc__fleet_wait(eg_client *c, uint64_t ticket, eg_client_rows *blocks, size_t nblocks);
/* send and wait within one deadline */
int egc__fleet_lookup(eg_client *c, const struct egc_rows_req *rq, eg_client_rows *rows);
/* spec.c: whether spec names more than one daemon or routes tables (else
 * it is one address, served by a plain connection) */
int egc__spec_is_fleet(const char *spec);

#endif
