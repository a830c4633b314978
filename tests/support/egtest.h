/* egtest.h - helpers shared by the Check tests: temporary directories,
 * tables with known rows, and a real engramd on a temporary socket. */
#ifndef EGTEST_H
#define EGTEST_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "eg_table.h"

/* Runs suite s in fork mode; returns the process exit status for main. */
int egt_run_suite(Suite *s);

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp), removed with
 * its contents at process exit. Returns a static-lifetime string. */
const char *egt_tmpdir(void);

/* Path inside a fresh temporary directory: egt_path("t1") -> "/tmp/x/t1".
 * The returned string is malloc'd and leaked on purpose (test process). */
char *egt_path(const char *name);

/* The reference row value: a deterministic byte pattern of (seed, slot). */
void egt_row_bytes(uint64_t seed, uint64_t slot, uint32_t row_bytes, void *out);

/* The reference rows of slots[0..n) of a table filled with egt_row_bytes(seed,
 * .), back to back: what a correct lookup returns, computed without the
 * table library. malloc'd (at least 1 byte); the caller frees it. */
uint8_t *egt_rows(uint64_t seed, const uint64_t *slots, size_t n, uint32_t row_bytes);

/* Request ids for the tests that choose their own: above 2^32, so that an id
 * cut to 32 bits anywhere on the way fails the id checks. */
#define EGT_ID(n) (UINT64_C(0x5eed00000000) + (uint64_t)(n))

/* A field of /proc/PID/status in kB ("RssAnon", "VmRSS"); aborts the test
 * when it cannot be read. */
long egt_proc_status_kb(pid_t pid, const char *field);

/* Open file descriptors of pid (entries of /proc/PID/fd); with path, only
 * those open on the file at path. */
int egt_fd_count(pid_t pid);
int egt_fd_count_on(pid_t pid, const char *path);

/* Builds a u8-agnostic table in dir whose row of slot s is
 * egt_row_bytes(seed, s, row_bytes); dtype U8, dim = row_bytes. Aborts the
 * test (ck_assert) on failure. */
void egt_make_table(const char *dir, const char *name, uint64_t slots,
                    uint32_t row_bytes, uint64_t chunk_slots, uint64_t seed);

/* egt_make_table with the table's generation set (0 means 1). */
void egt_make_table_gen(const char *dir, const char *name, uint64_t slots, uint32_t row_bytes,
                        uint64_t chunk_slots, uint64_t seed, uint64_t generation);

/* Records that test case name of this program is skipped, and why: a line
 * on stderr, and one in $EGT_SKIPS for tests/run.sh (which fails CI on
 * skips tests/expected-skips does not declare). The caller then returns. */
void egt_skip(const char *name, const char *why);

/* Runs a shell command line; returns its exit status, failing the test when
 * it did not exit normally (a crash is never the expected refusal). */
int egt_exit_status(const char *cmd);

/* ---- egtest_wire.c: the framing, by hand --------------------------------- */

/* Writes v as a varint at p (at most 10 bytes); returns the bytes written. */
size_t egt_varint_put(uint8_t *p, uint64_t v);

/* Whether buf[0..len) starts with one whole varint-prefixed frame: then 1,
 * *hdr = prefix bytes and *body = message bytes (at buf + *hdr); else 0
 * (more bytes needed; a prefix over 10 bytes never completes). */
int egt_frame_parse(const uint8_t *buf, size_t len, size_t *hdr, uint64_t *body);

/* ---- daemon.c ------------------------------------------------------------ */

/* A loopback TCP port nobody listens on right now (bound to 0, read back,
 * released). Aborts the test on failure. */
int egt_free_port(void);

/* A table like egt_make_table's (dtype U8, dim = row_bytes, rows
 * egt_row_bytes(seed, slot)) carrying the hash spec JSON spec, with as many
 * slots as the spec needs. */
void egt_make_spec_table(const char *dir, const char *name, const char *spec,
                         uint32_t row_bytes, uint64_t chunk_slots, uint64_t seed);

/* egt_make_spec_table with EGT_HASH_SPEC, an engram-v1 spec of orders 2-3 and
 * 2 heads (4062 slots, 4 per token), in 1024-slot chunks. When hash is not
 * NULL it receives the parsed spec (the caller eg_hash_free()s it). */
#define EGT_HASH_SPEC \
	"{\"kind\":\"engram-v1\",\"max_ngram\":3,\"heads\":2,\"pad\":0," \
	"\"multipliers\":[1000003,998244353,7340033]," \
	"\"moduli\":[[1009,1013],[1019,1021]]}"
#define EGT_HASH_RPT 4
struct eg_hash;
void egt_make_hash_table(const char *dir, const char *name, uint32_t row_bytes,
                         uint64_t seed, struct eg_hash **hash);

/* The slots EGT_HASH_SPEC gives tokens (nseq sequences of lens[i] tokens,
 * the first ctx[i] of each history only; ctx may be NULL), EGT_HASH_RPT per
 * returned token, computed here from the published engram-v1 formula and not
 * by storage/hash.c: the reference the token tests compare the daemon with.
 * Returns the number of slots written. */
size_t egt_hash_spec_slots(const int64_t *tokens, const uint32_t *lens, const uint32_t *ctx,
                           size_t nseq, uint64_t *out);

/* CLOCK_MONOTONIC in seconds, in milliseconds. */
double egt_now(void);
double egt_now_ms(void);

/* A fixed xorshift64 sequence, the same in every run (one state per process). */
uint64_t egt_rnd(void);

/* How egt_spawn starts a program. */
typedef struct egt_spawn_opts {
	const char *log;      /* stderr appended here (NULL: inherited) */
	int stdout_to_log;    /* stdout into the log too (else /dev/null) */
	char *const *envp;    /* the environment (NULL: this process's) */
	/* RLIMIT_NOFILE of the program (soft, hard); 0: inherited */
	unsigned long nofile_soft, nofile_hard;
} egt_spawn_opts;

/* Starts argv (argv[0] a path) with stdin from /dev/null, without fork()
 * (see spawn.c): the program gets SIGTERM when the calling thread ends.
 * Returns its pid, or a negative errno; a program that cannot be executed
 * exits 127 (setpriv's report in the log). */
pid_t egt_spawn(const char *const *argv, const egt_spawn_opts *o);

/* A running engramd. */
typedef struct egt_daemon {
	pid_t pid;
	char sock[256];      /* unix socket path */
	char addr[300];      /* "unix:<sock>" */
	char tcp_addr[64];   /* "tcp:127.0.0.1:<port>" when tcp was asked, else "" */
	char log[256];       /* stderr of the daemon */
} egt_daemon;

/* Starts $ENGRAMD with the given extra arguments (NULL-terminated argv tail,
 * e.g. "--table", "a=/tmp/x/t1", NULL) listening on a temporary unix socket
 * (and on TCP 127.0.0.1 with a free port when with_tcp), and waits until it
 * answers a ping. Aborts the test on failure. */
void egt_daemon_start(egt_daemon *d, int with_tcp, const char *const *args);

/* How egt_daemon_start_with starts it; zero fields keep egt_daemon_start's
 * behaviour. */
typedef struct egt_daemon_opts {
	int with_tcp;
	/* RLIMIT_NOFILE set in the child before exec (soft, hard); 0: inherited */
	unsigned long nofile_soft, nofile_hard;
} egt_daemon_opts;
void egt_daemon_start_with(egt_daemon *d, const egt_daemon_opts *o, const char *const *args);

/* A blocking connection to the daemon's unix socket, spoken to by hand:
 * requests are packed here, responses unpacked as they complete. */
typedef struct egt_conn {
	int fd;
	uint8_t *buf;
	size_t len, cap;
} egt_conn;
struct Engram__V1__Request;
struct Engram__V1__Response;

/* Connects to d; aborts the test on failure. */
void egt_conn_open(egt_conn *c, const egt_daemon *d);
/* Sends r as one frame (blocking until every byte is in the socket). */
void egt_conn_send(egt_conn *c, const struct Engram__V1__Request *r);
/* The next response (the caller frees it with
 * engram__v1__response__free_unpacked), or NULL at EOF; aborts the test
 * when none completes within timeout_ms. */
struct Engram__V1__Response *egt_conn_recv(egt_conn *c, int timeout_ms);
/* Whether a whole response arrived within timeout_ms (it is kept for
 * egt_conn_recv); 0 also at EOF. */
int egt_conn_ready(egt_conn *c, int timeout_ms);
void egt_conn_close(egt_conn *c);

/* Sends sig and waits for exit; returns the exit status (WEXITSTATUS) or
 * -1 when it died from a signal. A daemon that exits otherwise than 0 has
 * any sanitizer report in its log shown on stderr. */
int egt_daemon_stop(egt_daemon *d, int sig);

/* Lines of the file at path (a daemon's log) that contain needle; aborts
 * the test when it cannot be read. */
size_t egt_count_lines(const char *path, const char *needle);

/* SIGSTOPs pid and returns once every thread of it is stopped (the signal
 * is asynchronous: a request sent right after kill() may still be answered). */
void egt_stop_process(pid_t pid);

#endif
