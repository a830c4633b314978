/* bench_reload.c - lookup latency through engramd while its table is patched
 * and reloaded continuously, against the same load in steady state.
 *
 *   bench_reload [ENGRAMD]
 *
 * One run: a table of 100 M slots x 16-byte u8 rows in chunks of 8192 slots
 * (1.6 GB; reused from $BENCH_DIR/engramd-reload-100m when it exists there,
 * else built in a temporary directory under $BENCH_DIR, default /var/tmp,
 * that is removed at the end), engramd (the argument, else $ENGRAMD, else
 * the one above the bench binary) serving it, and client threads doing
 * 4096-slot random lookups back to back over the Unix socket. Three phases
 * run one after the other:
 * steady state; then another thread patching a few rows in place
 * (eg_table_update) every 100 ms without reloading, which separates what
 * the writer's I/O costs the readers on a small machine from what the
 * reload costs; then the same patches each followed by a Reload request.
 *
 * Every row of every answer is checked. A row holds its slot number, then a
 * version: 0 as built, or the generation of the patch that wrote it. Each
 * lookup also asks for the rows the last HOT_PATCHES patches wrote, so an
 * answer served at generation G must hold each row as of G: its slot, a
 * version <= G, and for a row patched at generation P <= G a version >= P.
 * A misplaced row, or an answer mixing rows of generations either side of
 * one of those patches (a torn snapshot), fails the run and is reported.
 *
 * Targets (reported, not failures): p99 while reloading <= 2x steady p99;
 * a reload's pointer swap far under a second. The reload's snapshot build
 * time (chunk directory, off the serving path) is reported as measured by
 * the daemon (ReloadResult.build_us / swap_ns). $BENCH_RELOAD_SECONDS sets
 * the length of each phase (default 12), $BENCH_RELOAD_SLOTS the table's
 * size (default 100 M; smaller only to see that the bench runs),
 * $BENCH_RELOAD_CHUNK_SLOTS its chunks (default 8192).
 * $BENCH_RELOAD_PAGEOUT=N pages N random pages of the table out of the
 * daemon's memory a second through all three phases (process_madvise
 * MADV_PAGEOUT, bench_pageout.h), as a proactive reclaimer on the host
 * would: the table is then never known to be wholly resident for long. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench_pageout.h"
#include "bench_util.h"
#include "eg_table.h"
#include "egtest.h"
#include "engram.pb-c.h"

#define DEFAULT_SLOTS 100000000ull
#define ROW_BYTES 16u
#define BATCH 4096
#define CLIENTS 2
#define RELOAD_EVERY_MS 100
#define PATCH_ROWS 4
/* 128 KiB chunks: a patch rewrites (copy-on-write) and syncs every chunk it
 * touches, so a table patched this often wants small ones (compare with
 * $BENCH_RELOAD_CHUNK_SLOTS=65536, the table default: 1 MiB here). */
#define DEFAULT_CHUNK_SLOTS 8192u
#define MAX_SAMPLES (1u << 21)
#define HOT_PATCHES 4 /* the last patches whose rows every lookup asks for */

/* BETWEEN: the patch-only updater finishing its last patch; not counted */
enum { WARM, BETWEEN, STEADY, PATCHING, RELOADING, STOP };

static atomic_int phase = WARM;
/* eg_table_update in progress (its writes and fsync compete for the same
 * two cores and disk): samples that overlap one are also counted apart */
static atomic_int patching;
static char table_dir[512];
static bu_daemon daemon_;
static const char *sock_path; /* daemon_'s, without "unix:" */

/* ns for lookups and swaps, us for builds and patches */
struct samples {
	double *v;
	size_t n;
};

struct client {
	pthread_t thread;
	uint64_t seed;
	struct samples lat[4];     /* by phase - STEADY; [3]: reloading outside patch writes */
	uint64_t after_patch;      /* answers served at the newest hot patch's generation or later */
	uint64_t before_patch;     /* answers served before it (the daemon not reloaded yet) */
	int failed;
};

static struct samples build_us, swap_ns, patch_us;
static unsigned reloads_ok, reloads_refused;
static uint64_t table_generation; /* as last committed; the updater bumps it */
static unsigned pageout_per_s; /* $BENCH_RELOAD_PAGEOUT */
static bu_pageout pageout;
static uint64_t table_slots = DEFAULT_SLOTS; /* $BENCH_RELOAD_SLOTS: smaller for a smoke run */
static uint32_t chunk_slots = DEFAULT_CHUNK_SLOTS; /* $BENCH_RELOAD_CHUNK_SLOTS */

/* The last HOT_PATCHES patches of this run, for readers to ask for their
 * rows: generation and slots of each, a ring (n used, next to overwrite). */
static struct {
	pthread_mutex_t lock;
	size_t n, next;
	uint64_t generation[HOT_PATCHES];
	uint64_t slots[HOT_PATCHES][PATCH_ROWS];
} recent = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void add(struct samples *s, double v)
{
	if (!s->v && !(s->v = malloc(MAX_SAMPLES * sizeof(double))))
		bu_die("out of memory");
	if (s->n < MAX_SAMPLES)
		s->v[s->n++] = v;
}

/* ---- a framed connection ---------------------------------------------- */

struct conn {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	size_t used;    /* bytes of the last frame returned, dropped at the next recv */
};

static int conn_open(struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof(*c));
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		bu_die("socket path too long: set BENCH_DIR shorter");
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (c->fd >= 0)
			close(c->fd);
		return -1;
	}
	return 0;
}

static void conn_send(struct conn *c, const Engram__V1__Request *r)
{
	size_t n = engram__v1__request__get_packed_size(r), h, off = 0;
	uint8_t *b = malloc(n + 10);

	if (!b)
		bu_die("out of memory");
	h = egt_varint_put(b, n);
	engram__v1__request__pack(r, b + h);
	while (off < h + n) {
		ssize_t w = send(c->fd, b + off, h + n - off, MSG_NOSIGNAL);

		if (w <= 0)
			bu_die("send to engramd failed");
		off += (size_t)w;
	}
	free(b);
}

/* The next response, unpacked; dies on EOF or after 30 s. */
static Engram__V1__Response *conn_recv(struct conn *c)
{
	memmove(c->buf, c->buf + c->used, c->len - c->used);
	c->len -= c->used;
	c->used = 0;
	for (;;) {
		uint64_t len;
		size_t h;

		if (egt_frame_parse(c->buf, c->len, &h, &len)) {
			c->used = h + len;
			return engram__v1__response__unpack(NULL, len, c->buf + h);
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? 2 * c->cap : 1 << 20;
			if (!(c->buf = realloc(c->buf, c->cap)))
				bu_die("out of memory");
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, 30000) != 1)
			bu_die("no answer from engramd within 30 s");
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n <= 0)
			bu_die("engramd closed the connection");
		c->len += (size_t)n;
	}
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->buf);
}

/* ---- the table ---------------------------------------------------------- */

static int table_usable(const char *dir)
{
	eg_table *t;
	eg_snapshot *s;
	int ok = 0;

	if (eg_table_open(dir, &t))
		return 0;
	if (eg_snapshot_open(t, 0, &s) == 0) {
		ok = eg_snapshot_meta(s)->slots == table_slots &&
		     eg_snapshot_meta(s)->row_bytes == ROW_BYTES &&
		     eg_snapshot_meta(s)->chunk_slots == chunk_slots;
		eg_snapshot_close(s);
	}
	eg_table_close(t);
	return ok;
}

/* Row of slot s: its slot number, then a version (0 until patched). Built
 * here, not with bu_create_table: `engram table create` fills rows with
 * zeros or random bytes, not with their own slot numbers. */
static void build_table(const char *dir)
{
	eg_meta m = { .slots = table_slots, .dim = ROW_BYTES, .dtype = EG_DTYPE_U8,
	              .chunk_slots = chunk_slots };
	uint64_t slot = 0, chunks;
	double t0 = bu_now();
	eg_builder *b;
	int rc;

	snprintf(m.name, sizeof(m.name), "reload100m");
	rc = eg_builder_open(dir, &m, &b);
	if (rc)
		bu_die("cannot build in %s: %s", dir, eg_strerror(rc));
	chunks = eg_builder_chunks(b);
	for (uint64_t c = 0; c < chunks; c++) {
		uint64_t *rows;

		if ((rc = eg_builder_next_chunk(b, (void **)&rows))) {
			eg_builder_abort(b);
			bu_die("building chunk %llu: %s", (unsigned long long)c, eg_strerror(rc));
		}
		for (uint64_t r = 0; r < eg_builder_chunk_rows(b, c); r++, slot++) {
			rows[2 * r] = slot;
			rows[2 * r + 1] = 0;
		}
		if (chunks >= 4 && c % (chunks / 4) == 0 && c)
			printf("  building: %llu%%\n", (unsigned long long)(100 * c / chunks));
	}
	if ((rc = eg_builder_finish(b)))
		bu_die("build finish failed: %s", eg_strerror(rc));
	printf("table built in %.1f s\n", bu_now() - t0);
}

/* Reads data.mdb once so that both phases start with a warm page cache. */
static void warm_cache(const char *dir)
{
	char path[600];
	static char buf[1 << 20];
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* In-process: a snapshot's chunk directory alone, and with every checksum. */
static void snapshot_times(const char *dir, double *dir_ms, double *verify_ms)
{
	eg_table *t;
	eg_snapshot *s;
	double t0;

	if (eg_table_open(dir, &t))
		bu_die("cannot open the table");
	t0 = bu_now();
	if (eg_snapshot_open(t, 0, &s))
		bu_die("cannot open a snapshot");
	*dir_ms = (bu_now() - t0) * 1e3;
	table_generation = eg_snapshot_meta(s)->generation;
	eg_snapshot_close(s);
	t0 = bu_now();
	if (eg_snapshot_open(t, 1, &s))
		bu_die("cannot open a verified snapshot");
	*verify_ms = (bu_now() - t0) * 1e3;
	eg_snapshot_close(s);
	eg_table_close(t);
}

/* ---- load --------------------------------------------------------------- */

/* Puts the rows of the recent patches first in slots; their generations in
 * gens. Returns how many (0 before the first patch) and the newest one. */
static size_t ask_recent(uint64_t *slots, uint64_t *gens, uint64_t *newest)
{
	size_t k = 0;

	*newest = 0;
	pthread_mutex_lock(&recent.lock);
	for (size_t p = 0; p < recent.n; p++) {
		for (size_t i = 0; i < PATCH_ROWS; i++, k++) {
			slots[k] = recent.slots[p][i];
			gens[k] = recent.generation[p];
		}
		if (recent.generation[p] > *newest)
			*newest = recent.generation[p];
	}
	pthread_mutex_unlock(&recent.lock);
	return k;
}

/* Checks every row of an answer served at generation gen (see the top);
 * 0, or -1 after reporting the first wrong row. */
static int check_answer(const uint64_t *slots, const uint8_t *rows, uint64_t gen,
                        const uint64_t *gens, size_t nhot)
{
	for (size_t i = 0; i < BATCH; i++) {
		uint64_t w[2];
		const char *bad = NULL;

		memcpy(w, rows + i * ROW_BYTES, sizeof(w)); /* may be unaligned */
		if (w[0] != slots[i])
			bad = "holds another slot's row";
		else if (w[1] > gen)
			bad = "holds a version newer than the answer's generation";
		else if (i < nhot && gens[i] <= gen && w[1] < gens[i])
			bad = "misses a patch the answer's generation includes (torn snapshot)";
		if (bad) {
			fprintf(stderr, "bench_reload: row %zu (slot %llu asked; slot word %llu, version "
			        "%llu) of an answer at generation %llu %s\n", i,
			        (unsigned long long)slots[i], (unsigned long long)w[0],
			        (unsigned long long)w[1], (unsigned long long)gen, bad);
			return -1;
		}
	}
	return 0;
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	uint64_t *slots = malloc(BATCH * sizeof(uint64_t));
	uint64_t gens[HOT_PATCHES * PATCH_ROWS];
	Engram__V1__Request r = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	struct conn c;
	int ph;

	if (!slots || conn_open(&c) < 0)
		bu_die("client cannot connect");
	lr.table = (char *)"big";
	lr.slots = slots;
	lr.n_slots = BATCH;
	r.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	r.lookup = &lr;
	while ((ph = atomic_load(&phase)) != STOP) {
		Engram__V1__Response *resp;
		uint64_t newest, gen;
		double t0, t1;
		size_t nhot = ask_recent(slots, gens, &newest);

		for (size_t i = nhot; i < BATCH; i++)
			slots[i] = bu_rand(&cl->seed) % table_slots;
		r.id++;
		int patch0 = atomic_load(&patching);
		t0 = bu_now();
		conn_send(&c, &r);
		resp = conn_recv(&c);
		t1 = bu_now();
		patch0 |= atomic_load(&patching);
		if (!resp || resp->status != ENGRAM__V1__STATUS__OK || resp->n_blocks != 1 ||
		    resp->blocks[0]->count != BATCH || resp->blocks[0]->data.len != BATCH * ROW_BYTES) {
			fprintf(stderr, "bench_reload: bad answer: %s\n", resp ? resp->error : "unparsable");
			cl->failed = 1;
			if (resp)
				engram__v1__response__free_unpacked(resp, NULL);
			break;
		}
		gen = resp->blocks[0]->generation;
		if (check_answer(slots, resp->blocks[0]->data.data, gen, gens, nhot) < 0) {
			cl->failed = 1;
			atomic_store(&phase, STOP);
		} else if (nhot) {
			if (gen >= newest)
				cl->after_patch++;
			else
				cl->before_patch++;
		}
		engram__v1__response__free_unpacked(resp, NULL);
		if (ph >= STEADY && ph <= RELOADING)
			add(&cl->lat[ph - STEADY], (t1 - t0) * 1e9);
		if (ph == RELOADING && !patch0)
			add(&cl->lat[3], (t1 - t0) * 1e9);
	}
	conn_close(&c);
	free(slots);
	return NULL;
}

/* Patches PATCH_ROWS rows in place every RELOAD_EVERY_MS, and in phase
 * RELOADING sends a Reload after each patch. */
static void *updater_main(void *arg)
{
	int my_phase = *(int *)arg;
	Engram__V1__Request r = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__ReloadRequest rr = ENGRAM__V1__RELOAD_REQUEST__INIT;
	uint64_t seed = 0x2545F4914F6CDD1Dull;
	double next = bu_now();
	struct conn c;

	if (conn_open(&c) < 0)
		bu_die("updater cannot connect");
	rr.table = (char *)"big";
	r.body_case = ENGRAM__V1__REQUEST__BODY_RELOAD;
	r.reload = &rr;
	while (atomic_load(&phase) == my_phase) {
		uint64_t slots[PATCH_ROWS], rows[2 * PATCH_ROWS], gen = 0;
		double t0 = bu_now();
		Engram__V1__Response *resp;
		int rc;

		for (size_t i = 0; i < PATCH_ROWS; i++) {
			slots[i] = bu_rand(&seed) % table_slots;
			rows[2 * i] = slots[i]; /* still its own slot: readers check that */
			rows[2 * i + 1] = table_generation + 1; /* the generation this patch makes */
		}
		atomic_store(&patching, 1);
		rc = eg_table_update(table_dir, slots, PATCH_ROWS, rows, NULL, &gen);
		atomic_store(&patching, 0);
		if (rc)
			bu_die("eg_table_update: %s", eg_strerror(rc));
		if (gen != table_generation + 1)
			bu_die("the table's generation moved by more than this patch: another writer?");
		table_generation = gen;
		pthread_mutex_lock(&recent.lock);
		recent.generation[recent.next] = gen;
		memcpy(recent.slots[recent.next], slots, sizeof(slots));
		recent.next = (recent.next + 1) % HOT_PATCHES;
		if (recent.n < HOT_PATCHES)
			recent.n++;
		pthread_mutex_unlock(&recent.lock);
		add(&patch_us, (bu_now() - t0) * 1e6);
		if (my_phase != RELOADING)
			goto wait;
		r.id++;
		conn_send(&c, &r);
		resp = conn_recv(&c);
		if (!resp || resp->status != 0 || resp->body_case != ENGRAM__V1__RESPONSE__BODY_RELOAD ||
		    resp->reload->n_results != 1)
			bu_die("bad reload answer");
		if (resp->reload->results[0]->reloaded) {
			reloads_ok++;
			add(&build_us, (double)resp->reload->results[0]->build_us);
			add(&swap_ns, (double)resp->reload->results[0]->swap_ns);
		} else {
			reloads_refused++;
			fprintf(stderr, "bench_reload: reload not swapped: %s\n",
			        resp->reload->results[0]->error);
		}
		engram__v1__response__free_unpacked(resp, NULL);
wait:
		next += RELOAD_EVERY_MS * 1e-3;
		t0 = bu_now();
		if (next > t0)
			usleep((useconds_t)((next - t0) * 1e6));
		else
			next = t0; /* the patch took longer than the period: no catch-up burst */
	}
	conn_close(&c);
	return NULL;
}

/* Pages pageout_per_s random pages out every second, a tenth each 100 ms. */
static void *pageout_main(void *arg)
{
	uint64_t seed = 0xD1B54A32D192ED03ull;

	(void)arg;
	while (atomic_load(&phase) != STOP) {
		bu_pageout_random(&pageout, (pageout_per_s + 9) / 10, &seed);
		usleep(100000);
	}
	return NULL;
}

/* ---- report ------------------------------------------------------------- */

/* The p-th percentile (0..100) of s (sorts s). */
static double pct(struct samples *s, double p)
{
	return bu_percentile(s->v, s->n, p);
}

/* Merges the clients' samples of one phase. */
static struct samples merged(struct client *cl, int ph)
{
	struct samples m = { 0 };

	for (int i = 0; i < CLIENTS; i++)
		for (size_t k = 0; k < cl[i].lat[ph].n; k++)
			add(&m, cl[i].lat[ph].v[k]);
	return m;
}

static void report_phase(const char *name, struct samples *s, double seconds)
{
	printf("%-10s %7zu lookups of %d slots (%.0f/s): p50 %.0f us, p99 %.0f us, max %.0f us\n",
	       name, s->n, BATCH, (double)s->n / seconds, pct(s, 50) * 1e-3, pct(s, 99) * 1e-3,
	       pct(s, 100) * 1e-3);
}

int main(int argc, char **argv)
{
	const char *bench_dir = getenv("BENCH_DIR");
	const char *secs_env = getenv("BENCH_RELOAD_SECONDS");
	const char *slots_env = getenv("BENCH_RELOAD_SLOTS");
	const char *chunk_env = getenv("BENCH_RELOAD_CHUNK_SLOTS");
	const char *pageout_env = getenv("BENCH_RELOAD_PAGEOUT");
	double seconds = secs_env ? atof(secs_env) : 12.0, dir_ms, verify_ms, ratio;
	char table_arg[600];
	/* engramd's default level (bu_daemon_start asks for warn): a line a reload */
	const char *daemon_args[] = { table_arg, "--log-level=info", NULL };
	struct client cl[CLIENTS];
	struct samples steady, patching_only, reloading, quiet;
	pthread_t updater, pager;
	int patch_phase = PATCHING, reload_phase = RELOADING;
	double t_steady, t_patching, t_between, t_reloading, t_end;
	int failed = 0;
	uint64_t after_patch = 0, before_patch = 0;

	if (argc > 1 && setenv("ENGRAMD", argv[1], 1)) /* the argument wins over $ENGRAMD */
		bu_die("setenv failed");
	if (seconds <= 0)
		seconds = 12.0;
	if (slots_env && strtoull(slots_env, NULL, 10) >= BATCH)
		table_slots = strtoull(slots_env, NULL, 10);
	if (chunk_env && atoi(chunk_env) > 0)
		chunk_slots = (uint32_t)atoi(chunk_env);
	if (pageout_env && atoi(pageout_env) > 0)
		pageout_per_s = (unsigned)atoi(pageout_env);
	if (bench_dir) {
		if (table_slots == DEFAULT_SLOTS && chunk_slots == DEFAULT_CHUNK_SLOTS)
			snprintf(table_dir, sizeof(table_dir), "%s/engramd-reload-100m", bench_dir);
		else
			snprintf(table_dir, sizeof(table_dir), "%s/engramd-reload-%llu-%u", bench_dir,
			         (unsigned long long)table_slots, chunk_slots);
		mkdir(bench_dir, 0755);
	} else {
		snprintf(table_dir, sizeof(table_dir), "%s/table", bu_tmpdir());
	}
	if (bench_dir && table_usable(table_dir)) {
		printf("table: reusing %s\n", table_dir);
	} else {
		const char *rm[] = { "rm", "-rf", table_dir, NULL }; /* an unfinished build */

		bu_run(rm);
		printf("table: building %llu slots x %u B (%.2f GB), %u-slot chunks, in %s\n",
		       (unsigned long long)table_slots, ROW_BYTES,
		       (double)table_slots * ROW_BYTES * 1e-9, chunk_slots, table_dir);
		build_table(table_dir);
	}
	warm_cache(table_dir);
	snapshot_times(table_dir, &dir_ms, &verify_ms);
	printf("snapshot build in-process: chunk directory %.2f ms, with every checksum %.0f ms\n",
	       dir_ms, verify_ms);

	snprintf(table_arg, sizeof(table_arg), "--table=big=%s", table_dir);
	bu_daemon_start(&daemon_, daemon_args);
	sock_path = daemon_.addr + strlen("unix:");
	memset(cl, 0, sizeof(cl));
	for (int i = 0; i < CLIENTS; i++) {
		cl[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
		pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
	}
	sleep(2); /* warm-up: connections, page cache, allocator */
	if (pageout_per_s) {
		char data[600];

		snprintf(data, sizeof(data), "%s/data.mdb", table_dir);
		bu_pageout_open(&pageout, daemon_.pid, data);
		pthread_create(&pager, NULL, pageout_main, NULL);
	}
	atomic_store(&phase, STEADY);
	t_steady = bu_now();
	usleep((useconds_t)(seconds * 1e6));
	/* patches alone first: what the writes cost the readers without a reload */
	atomic_store(&phase, PATCHING);
	t_patching = bu_now();
	pthread_create(&updater, NULL, updater_main, &patch_phase);
	usleep((useconds_t)(seconds * 1e6));
	/* a slow last patch must not pass for reloads: lookups while it ends
	 * count in no phase, and each phase's rate is over its own length */
	atomic_store(&phase, BETWEEN);
	t_between = bu_now();
	pthread_join(updater, NULL);
	atomic_store(&phase, RELOADING);
	t_reloading = bu_now();
	pthread_create(&updater, NULL, updater_main, &reload_phase);
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&phase, STOP);
	t_end = bu_now();
	pthread_join(updater, NULL);
	if (pageout_per_s) {
		pthread_join(pager, NULL);
		bu_pageout_close(&pageout);
	}
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(cl[i].thread, NULL);
		failed |= cl[i].failed;
		after_patch += cl[i].after_patch;
		before_patch += cl[i].before_patch;
	}
	bu_daemon_stop(&daemon_);

	steady = merged(cl, 0);
	patching_only = merged(cl, 1);
	reloading = merged(cl, 2);
	quiet = merged(cl, 3);
	printf("%d clients, one lookup in flight each; phases of %.0f s (the last patch of the "
	       "patching phase ended %.1f s after it)\n", CLIENTS, seconds,
	       t_reloading - t_between);
	if (pageout_per_s)
		printf("paged out of the daemon: %u random pages a second (MADV_PAGEOUT), %llu in all\n",
		       pageout_per_s, (unsigned long long)pageout.done);
	report_phase("steady", &steady, t_patching - t_steady);
	report_phase("patching", &patching_only, t_between - t_patching);
	printf("  (rows patched in place every %d ms, no reload: the writer's cost alone)\n",
	       RELOAD_EVERY_MS);
	report_phase("reloading", &reloading, t_end - t_reloading);
	printf("  of which %zu not overlapping a patch write: p50 %.0f us, p99 %.0f us, max %.0f us\n",
	       quiet.n, pct(&quiet, 50) * 1e-3, pct(&quiet, 99) * 1e-3, pct(&quiet, 100) * 1e-3);
	printf("reloads: %u swapped, %u not, one per %.0f ms (patch of %d rows + Reload, "
	       "every %d ms at most; eg_table_update p50 %.1f ms, max %.1f ms)\n",
	       reloads_ok, reloads_refused,
	       reloads_ok + reloads_refused ? seconds * 1e3 / (reloads_ok + reloads_refused) : 0.0,
	       PATCH_ROWS, RELOAD_EVERY_MS, pct(&patch_us, 50) * 1e-3, pct(&patch_us, 100) * 1e-3);
	printf("reload snapshot build (daemon, %llu slots): p50 %.2f ms, max %.2f ms\n",
	       (unsigned long long)table_slots, pct(&build_us, 50) * 1e-3, pct(&build_us, 100) * 1e-3);
	printf("reload swap: p50 %llu ns, max %llu ns (target: well under 1 s: %s)\n",
	       (unsigned long long)pct(&swap_ns, 50), (unsigned long long)pct(&swap_ns, 100),
	       swap_ns.n && pct(&swap_ns, 100) < 1000000000u ? "met" : "MISSED");
	ratio = pct(&steady, 99) ? pct(&reloading, 99) / pct(&steady, 99) : 0;
	if (pct(&steady, 99))
		printf("p99 patching without reloads / steady: %.2f\n",
		       pct(&patching_only, 99) / pct(&steady, 99));
	printf("p99 reloading / steady: %.2f (target <= 2.00: %s)\n", ratio,
	       ratio > 0 && ratio <= 2.0 ? "met" : "MISSED");
	if (pct(&steady, 99))
		printf("p99 reloading outside patch writes / steady: %.2f\n",
		       pct(&quiet, 99) / pct(&steady, 99));

	printf("rows checked: slot and version word of every row; %llu answers held the rows of "
	       "the last %d patches, %llu served at or after the newest one's generation, %llu "
	       "before it; %s\n",
	       (unsigned long long)(after_patch + before_patch), HOT_PATCHES,
	       (unsigned long long)after_patch, (unsigned long long)before_patch,
	       failed ? "a WRONG ROW or failed lookup (above)" : "no misplaced row, no torn answer");

	/* bu_tmpdir goes at exit, the table too when it was built there; a
	 * $BENCH_DIR table is kept */
	if (failed)
		bu_die("a lookup returned a wrong row or failed");
	return 0;
}
