/* bench_overlap.c - how much of a fetch libengram hides behind the caller's
 * compute: bench_python.py's overlap figure, for the C client.
 *
 *   bench_overlap [--slots N] [--row-bytes B] [--rounds R] [--busy-poll LIST]
 *
 * Builds a table of N (default 4 Mi) random rows of B (default 160) bytes
 * with `engram table create` and starts $ENGRAMD on it, once for each
 * --busy-poll value of LIST (microseconds, default "0,200": the daemon's
 * default, and a loop that polls on for 200 us after each small request's
 * answer, so that a send finds it awake instead of waking it). For a
 * prefill batch (1 M rows) and a decode batch (4096 rows), over the socket
 * (with the library's reader thread, eg_client_start_reader) and through
 * the shared buffer: times the blocking lookup (median of R), then runs R rounds of
 * send, a stand-in for the model's compute as long as that fetch, and wait.
 * The stand-in sleeps (the model's work runs on an accelerator while the
 * thread waits), with the thread's timer slack set to 1 us; a sleep still
 * overruns what it asks for, so it asks for the fetch's time less the
 * median overrun of R sleeps measured alone. R rounds warm up, R more are
 * measured. A third way, "shm, slots in place", writes the slots into the
 * shared buffer at the rows' offset before each call (untimed, as a
 * caller's hashing would), so the library copies none.
 * hidden = 1 - (what the round took beyond the stand-in's length) / the
 * blocking fetch: the send, the wait, and the stand-in running over next
 * to the fetch (a core busy) are the caller's loss;
 * target >= 90%; medians of R. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "bench_util.h"
#include "engram.h"

static const size_t batches[] = { 1u << 20, 4096 };
#define NBATCH (sizeof(batches) / sizeof(batches[0]))

static struct {
	uint64_t slots;
	uint32_t row_bytes, rounds;
	const char *busy_poll;
} opt = { 4u << 20, 160, 21, "0,200" };

/* One way of fetching: a client, and whether its rows go to its shared
 * buffer (else into out, over the socket); in_place: the slots are put at
 * the buffer's start first. */
struct path {
	const char *name;
	eg_client *c;
	int shm;
	unsigned char *out;
	uint64_t *in_place;
};

/* The slots a call sends: slots, or their copy put in place (untimed). */
static const uint64_t *placed(const struct path *p, const uint64_t *slots, size_t n)
{
	if (!p->in_place)
		return slots;
	memcpy(p->in_place, slots, n * sizeof(*slots));
	return p->in_place;
}

static int send_rows(const struct path *p, const uint64_t *slots, size_t n, uint64_t *tk)
{
	if (p->shm)
		return eg_client_send_lookup_shm(p->c, "bench", slots, n, 0, tk);
	return eg_client_send_lookup(p->c, "bench", slots, n, p->out, n * opt.row_bytes, tk);
}

static int wait_rows(const struct path *p, uint64_t tk)
{
	eg_client_rows r;
	const void *data;

	if (p->shm)
		return eg_client_wait_shm(p->c, tk, &r, &data, 1);
	return eg_client_wait(p->c, tk, &r);
}

static double fetch_once(const struct path *p, const uint64_t *slots, size_t n)
{
	const uint64_t *s = placed(p, slots, n);
	double t0 = bu_now();
	uint64_t tk;
	int e = send_rows(p, s, n, &tk);

	if (e == 0)
		e = wait_rows(p, tk);
	if (e != 0)
		bu_die("%s lookup of %zu rows: %s", p->name, n, eg_client_errmsg(p->c));
	return bu_now() - t0;
}

/* A sleep of seconds: it asks for seconds less the median overrun of R
 * sleeps measured alone, before any fetch (the thread's timer slack is 1 us,
 * see main). What more it takes next to a fetch is the caller's loss. */
struct stand_in {
	double seconds, ask;
};

static void stand_in_run(const struct stand_in *s)
{
	struct timespec ts = { (time_t)s->ask, (long)((s->ask - (double)(time_t)s->ask) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void stand_in_init(struct stand_in *s, double seconds, double *scratch, size_t R)
{
	s->seconds = s->ask = seconds;
	for (size_t r = 0; r < R; r++) {
		double t0 = bu_now();

		stand_in_run(s);
		scratch[r] = bu_now() - t0 - seconds;
	}
	s->ask = seconds - bu_percentile(scratch, R, 50);
	if (s->ask < 0)
		s->ask = 0;
}

/* One round: send, stand-in, wait; the three times in seconds. */
static void round_once(const struct path *p, const uint64_t *slots, size_t n,
                       const struct stand_in *s, double *issue, double *stand, double *waited)
{
	const uint64_t *sl = placed(p, slots, n);
	uint64_t tk;
	double t0 = bu_now(), t1, t2;
	int e = send_rows(p, sl, n, &tk);

	if (e != 0)
		bu_die("%s send: %s", p->name, eg_client_errmsg(p->c));
	t1 = bu_now();
	stand_in_run(s);
	t2 = bu_now();
	if (wait_rows(p, tk) != 0)
		bu_die("%s wait: %s", p->name, eg_client_errmsg(p->c));
	*issue = t1 - t0;
	*stand = t2 - t1;
	*waited = bu_now() - t2;
}

static void overlap(const struct path *p, const uint64_t *slots, size_t n)
{
	size_t r, R = opt.rounds;
	double *v = calloc(5 * R, sizeof(double)), *fetch = v, *issue = v + R, *stand = v + 2 * R,
	       *waited = v + 3 * R, *hidden = v + 4 * R, f, mid, unused;
	struct stand_in s;

	if (!v)
		bu_die("out of memory");
	fetch_once(p, slots, n); /* warm: pages, layouts */
	for (r = 0; r < R; r++)
		fetch[r] = fetch_once(p, slots, n);
	f = bu_percentile(fetch, R, 50);
	stand_in_init(&s, f, hidden, R);
	for (r = 0; r < R; r++) /* warm: the reader thread, the caches */
		round_once(p, slots, n, &s, &unused, &unused, &unused);
	for (r = 0; r < R; r++) {
		round_once(p, slots, n, &s, &issue[r], &stand[r], &waited[r]);
		/* what the round took beyond the stand-in's length */
		hidden[r] = 1 - (issue[r] + stand[r] + waited[r] - f) / f;
		if (hidden[r] < 0)
			hidden[r] = 0;
		if (hidden[r] > 1) /* the stand-in ran short */
			hidden[r] = 1;
	}
	mid = bu_percentile(hidden, R, 50);
	printf("  %-19s blocking fetch %9.3f ms; stand-in %9.3f ms; in send %7.3f ms, in wait %8.3f ms;"
	       " hidden %5.1f%% (target >= 90%%: %s)\n",
	       p->name, f * 1e3, bu_percentile(stand, R, 50) * 1e3,
	       bu_percentile(issue, R, 50) * 1e3, bu_percentile(waited, R, 50) * 1e3, 100 * mid,
	       mid >= 0.9 ? "met" : "MISSED");
	free(v);
}

/* Every figure against a daemon started with --busy-poll=usec. */
static void run_with(const char *dir, const char *usec, const uint64_t *slots, unsigned char *out)
{
	char targ[4200], parg[64];
	const char *args[] = { targ, parg, NULL };
	struct path paths[3] = { { "socket", NULL, 0, out, NULL }, { "shm", NULL, 1, NULL, NULL },
	                         { "shm, slots in place", NULL, 1, NULL, NULL } };
	bu_daemon dm = { 0 };
	void *base;
	int e;

	snprintf(targ, sizeof(targ), "--table=bench=%s", dir);
	snprintf(parg, sizeof(parg), "--busy-poll=%s", usec);
	prctl(PR_SET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL); /* the daemon: the default slack */
	bu_daemon_start(&dm, args);
	/* the stand-in's sleeps: 1 us timer slack, not 50 */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
	for (int k = 0; k < 2; k++) {
		e = eg_client_connect(dm.addr, 300000, &paths[k].c);
		if (e != 0)
			bu_die("connect %s: %s", dm.addr, eg_client_strerror(e));
	}
	e = eg_client_start_reader(paths[0].c);
	if (e == 0)
		e = eg_client_attach_shm(paths[1].c, batches[0] * opt.row_bytes, &base);
	if (e != 0)
		bu_die("reader / shared buffer: %s", eg_client_strerror(e));
	paths[2].c = paths[1].c;
	paths[2].in_place = base;
	for (size_t b = 0; b < NBATCH; b++) {
		printf("libengram, engramd --busy-poll=%s: fetch of %zu rows (%.1f MB) overlapped with "
		       "a sleep as long as the blocking fetch (medians of %u):\n", usec, batches[b],
		       (double)batches[b] * opt.row_bytes / 1e6, opt.rounds);
		for (int k = 0; k < 3; k++)
			overlap(&paths[k], slots, batches[b]);
	}
	for (int k = 0; k < 2; k++)
		eg_client_close(paths[k].c);
	bu_daemon_stop(&dm);
}

int main(int argc, char **argv)
{
	const struct bu_opt opts[] = {
		{ "slots", BU_U64, &opt.slots },
		{ "row-bytes", BU_U32, &opt.row_bytes },
		{ "rounds", BU_U32, &opt.rounds },
		{ "busy-poll", BU_STR, &opt.busy_poll },
		{ NULL, BU_STR, NULL },
	};
	char list[256], *usec, *save;
	const char *dir;
	size_t most = batches[0];
	uint64_t *slots, rng = 0x9E3779B97F4A7C15ull;
	unsigned char *out;

	bu_options(argc, argv, opts,
	           "bench_overlap [--slots N] [--row-bytes B] [--rounds R] [--busy-poll LIST]");
	if (opt.row_bytes == 0 || opt.slots == 0 || opt.rounds < 1)
		bu_die("--row-bytes, --slots and --rounds must be > 0");
	if (strlen(opt.busy_poll) >= sizeof(list) || !*opt.busy_poll)
		bu_die("--busy-poll: a list of microseconds such as 0,200");
	signal(SIGPIPE, SIG_IGN);
	dir = bu_path("bench");
	bu_create_table_quiet(dir, opt.slots, opt.row_bytes, 1, NULL);
	slots = malloc(most * sizeof(*slots));
	out = malloc(most * opt.row_bytes);
	if (!slots || !out)
		bu_die("out of memory");
	for (size_t i = 0; i < most; i++)
		slots[i] = bu_rand(&rng) % opt.slots;
	strcpy(list, opt.busy_poll);
	for (usec = strtok_r(list, ",", &save); usec; usec = strtok_r(NULL, ",", &save))
		run_with(dir, usec, slots, out);
	free(slots);
	free(out);
	return 0;
}
