/* bench_util.h - what the benchmarks share: a temporary directory removed
 * at exit, tables built with the real `engram` command, a real engramd,
 * the page cache evicted for one file, fio and redis-server as peers, /metrics
 * values, percentiles and a Zipf sampler.
 *
 * Every function that can fail prints why and exits 1: a benchmark that
 * cannot set itself up has nothing to report. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under $BENCH_DIR (default /var/tmp), removed with its
 * contents at exit or on SIGINT/SIGTERM. */
const char *bu_tmpdir(void);
/* "<tmpdir>/<name>", malloc'd. */
char *bu_path(const char *name);

double bu_now(void);
void bu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* $ENGRAMD / $ENGRAM, or the binaries next to the bench directory. */
const char *bu_engramd(void);
const char *bu_engram(void);

/* Runs argv (NULL-terminated) and waits; exits when it fails. */
void bu_run(const char *const *argv);

/* `engram table create DIR --slots N --dim ROW --dtype u8 --fill random:SEED`
 * (rows are deterministic: the same seed gives the same bytes). */
void bu_create_table(const char *dir, uint64_t slots, uint32_t row_bytes, unsigned seed);
/* The same with engram's output in DIR.log, not on stdout; and when spec (a
 * hash spec's JSON) is not NULL, `--hash` with it (written to DIR.hash.json)
 * in place of --slots: the spec sets the slot count. */
void bu_create_table_quiet(const char *dir, uint64_t slots, uint32_t row_bytes, unsigned seed,
                           const char *spec);

/* Drops dir/data.mdb from the page cache (posix_fadvise DONTNEED). */
void bu_evict(const char *dir);

/* A loopback TCP port nobody listens on now. */
int bu_free_port(void);

/* A running engramd serving tables on a unix socket (and --http). */
typedef struct bu_daemon {
	pid_t pid;
	char addr[300];   /* unix:PATH */
	int http_port;
} bu_daemon;
/* Starts engramd with extra (NULL-terminated) arguments after its
 * --listen/--http; returns once it answers a ping. */
void bu_daemon_start(bu_daemon *d, const char *const *extra);
void bu_daemon_stop(bu_daemon *d);
/* The first sample of metric name (exact name, any labels) from /metrics;
 * -1 when absent. */
double bu_metric(const bu_daemon *d, const char *name);
/* Anonymous resident memory of a process (RssAnon), bytes. */
uint64_t bu_rss_anon(pid_t pid);

/* fio: n_ios 4 KiB random reads of file at queue depth qd (io_uring;
 * buffered or O_DIRECT), after evicting it; IOPS. */
double bu_fio_randread_n(const char *file, unsigned qd, int direct, uint64_t n_ios);

/* The p-th percentile (0..100) of v[0..n-1] (sorts v unless it is sorted). */
double bu_percentile(double *v, size_t n, double p);

/* Zipf(s) over 0..n-1 (rank 0 the most popular), by rejection-inversion
 * (Hormann and Derflinger 1996): O(1) per draw, any n. */
typedef struct bu_zipf {
	double s, hx0, hn, c;
	uint64_t n;
	uint64_t rng;
} bu_zipf;
void bu_zipf_init(bu_zipf *z, uint64_t n, double s, uint64_t seed);
uint64_t bu_zipf_next(bu_zipf *z);
/* A fixed pseudo-random permutation of 0..n-1 (rank -> slot), so hot
 * rows are spread over the table as hashed n-grams are. */
uint64_t bu_scatter(uint64_t rank, uint64_t n);

/* Lookups of one table through c, depth requests in flight, batch rows
 * each, slots from next(arg), until seconds pass or max_rows rows were
 * asked (0: no limit). With lat (cap entries), each request's latency in
 * ms is recorded (a request's time from send to its response). */
struct bu_drive {
	const char *table;
	size_t batch;
	unsigned depth;             /* 1 or 2 */
	uint32_t row_bytes;
	double seconds;
	uint64_t max_rows;
	uint64_t (*next)(void *arg);
	void *arg;
	double *lat;
	size_t lat_cap;
	/* results */
	double rows, elapsed;
	size_t n_lat;
};
struct eg_client;
void bu_drive(struct eg_client *c, struct bu_drive *d);

/* Uniform random slots below n (for bu_drive). */
struct bu_uniform {
	uint64_t n, rng;
};
uint64_t bu_uniform_next(void *arg);
/* Zipf ranks scattered over the slots (for bu_drive). */
uint64_t bu_zipf_scattered(void *arg);

/* A bench's command line: one row per --NAME VALUE flag, parsed into the
 * variable it points at (strtoull / strtoul / atof, or the string). */
enum bu_opt_kind { BU_U64, BU_U32, BU_DOUBLE, BU_STR };
struct bu_opt {
	const char *name;
	enum bu_opt_kind kind;
	void *var;
};
/* Parses argv by opts (ended by a row with name NULL); on anything else
 * prints usage and exits 2. */
void bu_options(int argc, char **argv, const struct bu_opt *opts, const char *usage);

/* xorshift64* */
uint64_t bu_rand(uint64_t *state);

#endif
