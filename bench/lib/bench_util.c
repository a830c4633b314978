/* bench_util.c - see bench_util.h. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "engram.h"

static char tmpdir[256];
static pid_t owner;
static pid_t children[16];
static int n_children;

double bu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void cleanup(void)
{
	if (getpid() != owner)
		return;
	for (int i = 0; i < n_children; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
		}
	}
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_signal(int sig)
{
	(void)sig;
	exit(1); /* runs cleanup */
}

void bu_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

const char *bu_tmpdir(void)
{
	const char *base = getenv("BENCH_DIR");

	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/engram-bench.XXXXXX", base ? base : "/var/tmp");
	if (!mkdtemp(tmpdir))
		bu_die("mkdtemp %s: %s", tmpdir, strerror(errno));
	owner = getpid();
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	return tmpdir;
}

char *bu_path(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", bu_tmpdir(), name) < 0)
		bu_die("out of memory");
	return p;
}

/* $env, or name in the nearest directory above the bench binary that has it
 * (build/bench/x and build/bench/scale/x both find build/NAME). */
static const char *binary(const char *env, const char *name)
{
	static char buf[2][4200];
	const char *e = getenv(env);
	char dir[4096];
	int k = strcmp(name, "engramd") == 0;
	ssize_t n;

	if (e)
		return e;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0)
		bu_die("cannot find %s: set $%s", name, env);
	dir[n] = '\0';
	for (char *slash; (slash = strrchr(dir, '/')) && slash != dir;) {
		*slash = '\0';
		snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
		if (access(buf[k], X_OK) == 0)
			return buf[k];
	}
	bu_die("cannot find %s above the bench binary: set $%s", name, env);
}

const char *bu_engramd(void)
{
	return binary("ENGRAMD", "engramd");
}

const char *bu_engram(void)
{
	return binary("ENGRAM", "engram");
}

static pid_t spawn(const char *const *argv, const char *out_path)
{
	pid_t pid = fork();

	if (pid < 0)
		bu_die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* argv with its output in log (NULL: inherited) */
static void run_to(const char *const *argv, const char *log)
{
	int st;
	pid_t pid = spawn(argv, log);

	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bu_die("%s failed%s%s", argv[0], log ? "; see " : "", log ? log : "");
}

void bu_run(const char *const *argv)
{
	run_to(argv, NULL);
}

/* engram table create DIR ... --fill random:SEED, with --slots N unless a
 * hash spec file sets them; its output in log (NULL: inherited) */
static void create_table(const char *dir, uint64_t slots, uint32_t row_bytes, unsigned seed,
                         const char *hash_file, const char *log)
{
	char n[32], d[16], fill[32];
	const char *argv[16] = { bu_engram(), "table", "create", dir, "--dim", d, "--dtype", "u8",
	                         "--fill", fill };
	int k = 10;

	snprintf(d, sizeof(d), "%u", row_bytes);
	snprintf(fill, sizeof(fill), "random:%u", seed);
	if (hash_file) {
		argv[k++] = "--hash";
		argv[k++] = hash_file;
	} else {
		snprintf(n, sizeof(n), "%llu", (unsigned long long)slots);
		argv[k++] = "--slots";
		argv[k++] = n;
	}
	argv[k] = NULL;
	run_to(argv, log);
}

void bu_create_table(const char *dir, uint64_t slots, uint32_t row_bytes, unsigned seed)
{
	create_table(dir, slots, row_bytes, seed, NULL, NULL);
}

void bu_create_table_quiet(const char *dir, uint64_t slots, uint32_t row_bytes, unsigned seed,
                           const char *spec)
{
	char log[4200], hash[4200];
	FILE *f;

	snprintf(log, sizeof(log), "%s.log", dir);
	snprintf(hash, sizeof(hash), "%s.hash.json", dir);
	if (spec) {
		f = fopen(hash, "w");
		if (!f || fputs(spec, f) < 0 || fclose(f))
			bu_die("writing %s: %s", hash, strerror(errno));
	}
	create_table(dir, slots, row_bytes, seed, spec ? hash : NULL, log);
}

void bu_evict(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		bu_die("open %s: %s", path, strerror(errno));
	fdatasync(fd);
	if (posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		bu_die("posix_fadvise %s failed", path);
	close(fd);
}

int bu_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		bu_die("no free port");
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void bu_daemon_start(bu_daemon *d, const char *const *extra)
{
	static int serial;
	const char *argv[64];
	char listen[320], http[64], log[300];
	int n = 0;

	snprintf(d->addr, sizeof(d->addr), "unix:%s/engramd%d.sock", bu_tmpdir(), serial);
	snprintf(log, sizeof(log), "%s/engramd%d.log", bu_tmpdir(), serial++);
	snprintf(listen, sizeof(listen), "--listen=%s", d->addr);
	d->http_port = bu_free_port();
	snprintf(http, sizeof(http), "--http=127.0.0.1:%d", d->http_port);
	argv[n++] = bu_engramd();
	argv[n++] = listen;
	argv[n++] = http;
	argv[n++] = "--log-level=warn";
	for (; extra && *extra && n < 62; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	d->pid = spawn(argv, log);
	if (n_children < 16)
		children[n_children++] = d->pid;
	for (double t0 = bu_now(); bu_now() - t0 < 120;) {
		eg_client *c;
		int st;

		if (waitpid(d->pid, &st, WNOHANG) == d->pid)
			bu_die("engramd exited at start; see %s", log);
		if (eg_client_connect(d->addr, 1000, &c) == 0) {
			int rc = eg_client_ping(c);

			eg_client_close(c);
			if (rc == 0)
				return;
		}
		usleep(10000);
	}
	bu_die("engramd did not answer within 120 s; see %s", log);
}

void bu_daemon_stop(bu_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, NULL, 0);
	for (int i = 0; i < n_children; i++)
		if (children[i] == d->pid)
			children[i] = 0;
	d->pid = 0;
}

double bu_metric(const bu_daemon *d, const char *name)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d->http_port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
	static char buf[1 << 18];
	size_t got = 0, nl = strlen(name);
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		bu_die("GET /metrics: %s", strerror(errno));
	while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	buf[got] = '\0';
	for (char *p = buf; (p = strstr(p, name)); p += nl) {
		if ((p == buf || p[-1] == '\n') && (p[nl] == ' ' || p[nl] == '{'))
			return atof(strchr(p, ' ') + 1);
	}
	return -1;
}

uint64_t bu_rss_anon(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

double bu_fio_randread_n(const char *file, unsigned qd, int direct, uint64_t n_ios)
{
	char fn[4200], depth[32], dir[32], rt[48], out[4096];
	const char *argv[] = { "fio", "--name=randread", fn, "--rw=randread", "--bs=4k",
	                       "--ioengine=io_uring", depth, dir, rt, "--readonly",
	                       "--norandommap", "--output-format=json", NULL };
	char *slash, *evict_dir;
	json_error_t err;
	json_t *root, *job;
	double iops;
	pid_t pid;
	int st;

	snprintf(fn, sizeof(fn), "--filename=%s", file);
	snprintf(depth, sizeof(depth), "--iodepth=%u", qd);
	snprintf(dir, sizeof(dir), "--direct=%d", direct);
	snprintf(rt, sizeof(rt), "--number_ios=%llu", (unsigned long long)n_ios);
	snprintf(out, sizeof(out), "%s/fio.json", bu_tmpdir());
	evict_dir = strdup(file);
	slash = strrchr(evict_dir, '/');
	*slash = '\0';
	bu_evict(evict_dir);
	free(evict_dir);
	pid = spawn(argv, out);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bu_die("fio failed (is Debian's fio installed?); see %s", out);
	root = json_load_file(out, 0, &err);
	job = root ? json_array_get(json_object_get(root, "jobs"), 0) : NULL;
	if (!job)
		bu_die("cannot read fio's output %s: %s", out, err.text);
	iops = json_number_value(json_object_get(json_object_get(job, "read"), "iops"));
	json_decref(root);
	return iops;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bu_percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 1; i < n && v[i - 1] <= v[i]; i++)
		;
	if (i < n) /* not sorted yet (several percentiles of one array sort it once) */
		qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

uint64_t bu_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static double uniform(uint64_t *s)
{
	return (double)(bu_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* (exp(x) - 1) / x and log1p(x) / x, accurate near 0 */
static double expm1_x(double x)
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3.0 * (1 + x * 0.25));
}

static double log1p_x(double x)
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double zh(const bu_zipf *z, double x) /* integral of x^-s */
{
	double lx = log(x);

	return expm1_x((1 - z->s) * lx) * lx;
}

static double zh_inv(const bu_zipf *z, double x)
{
	double t = x * (1 - z->s);

	if (t < -1)
		t = -1; /* rounding at the far end */
	return exp(log1p_x(t) * x);
}

static double zpow(const bu_zipf *z, double x)
{
	return exp(-z->s * log(x));
}

void bu_zipf_init(bu_zipf *z, uint64_t n, double s, uint64_t seed)
{
	z->n = n;
	z->s = s;
	z->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	z->hx0 = zh(z, 1.5) - 1;
	z->hn = zh(z, (double)n + 0.5);
	z->c = 2 - zh_inv(z, zh(z, 2.5) - zpow(z, 2));
}

uint64_t bu_zipf_next(bu_zipf *z)
{
	for (;;) {
		double u = z->hn + uniform(&z->rng) * (z->hx0 - z->hn);
		double x = zh_inv(z, u);
		double k = floor(x + 0.5);

		if (k < 1)
			k = 1;
		else if (k > (double)z->n)
			k = (double)z->n;
		if (k - x <= z->c || u >= zh(z, k + 0.5) - zpow(z, k))
			return (uint64_t)k - 1;
	}
}

uint64_t bu_scatter(uint64_t rank, uint64_t n)
{
	/* a prime above any table size: multiplication by it permutes Z_n */
	const unsigned __int128 p = 2305843009213693951ull; /* 2^61 - 1 */

	return (uint64_t)(((unsigned __int128)rank * p + 12345) % n);
}

uint64_t bu_uniform_next(void *arg)
{
	struct bu_uniform *u = arg;

	return bu_rand(&u->rng) % u->n;
}

uint64_t bu_zipf_scattered(void *arg)
{
	bu_zipf *z = arg;

	return bu_scatter(bu_zipf_next(z), z->n);
}

static void drive_send(struct eg_client *c, struct bu_drive *d, uint64_t *slots, uint8_t *rows,
                       uint64_t *ticket, double *t_sent)
{
	for (size_t i = 0; i < d->batch; i++)
		slots[i] = d->next(d->arg);
	*t_sent = bu_now();
	if (eg_client_send_lookup(c, d->table, slots, d->batch, rows, d->batch * d->row_bytes,
	                          ticket))
		bu_die("send: %s", eg_client_errmsg(c));
}

void bu_drive(struct eg_client *c, struct bu_drive *d)
{
	unsigned depth = d->depth < 1 ? 1 : d->depth > 2 ? 2 : d->depth;
	uint64_t *slots[2], ticket[2], asked = 0;
	uint8_t *rows[2];
	double sent[2], t0 = bu_now(), until = t0 + d->seconds;
	unsigned k = 0, out = 0;

	d->rows = 0;
	d->n_lat = 0;
	for (unsigned i = 0; i < depth; i++) {
		slots[i] = malloc(d->batch * sizeof(uint64_t));
		rows[i] = malloc(d->batch * d->row_bytes);
		if (!slots[i] || !rows[i])
			bu_die("out of memory");
		drive_send(c, d, slots[i], rows[i], &ticket[i], &sent[i]);
		asked += d->batch;
		out++;
	}
	while (out > 0) {
		if (eg_client_wait(c, ticket[k], NULL))
			bu_die("wait: %s", eg_client_errmsg(c));
		out--;
		d->rows += (double)d->batch;
		if (d->lat && d->n_lat < d->lat_cap)
			d->lat[d->n_lat++] = (bu_now() - sent[k]) * 1e3;
		if (bu_now() < until && (!d->max_rows || asked < d->max_rows)) {
			drive_send(c, d, slots[k], rows[k], &ticket[k], &sent[k]);
			asked += d->batch;
			out++;
		}
		k = (k + 1) % depth;
	}
	d->elapsed = bu_now() - t0;
	for (unsigned i = 0; i < depth; i++) {
		free(slots[i]);
		free(rows[i]);
	}
}

void bu_options(int argc, char **argv, const struct bu_opt *opts, const char *usage)
{
	struct option lo[32];
	size_t n = 0;
	int o;

	for (; opts[n].name && n < 31; n++)
		lo[n] = (struct option){ opts[n].name, required_argument, NULL, (int)n };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const struct bu_opt *b = o >= 0 && (size_t)o < n ? &opts[o] : NULL;

		if (!b) {
			fprintf(stderr, "usage: %s\n", usage);
			exit(2);
		}
		switch (b->kind) {
		case BU_U64: *(uint64_t *)b->var = strtoull(optarg, NULL, 0); break;
		case BU_U32: *(uint32_t *)b->var = (uint32_t)strtoul(optarg, NULL, 0); break;
		case BU_DOUBLE: *(double *)b->var = atof(optarg); break;
		case BU_STR: *(const char **)b->var = optarg; break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: %s\n", usage);
		exit(2);
	}
}
