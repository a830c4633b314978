/* fleet.c - an eg_client over several daemons: replicas of the same tables
 * (an address list), tables routed to groups of replicas (spec.c), or one
 * address behind a load balancer with EGC_FAILOVER.
 *
 * The fleet keeps one plain eg_client per replica it has used and sends a
 * request through one replica of the group that serves its table: the
 * replica in use while it answers, else the next one not backing off. A
 * replica that fails (cannot be reached, breaks the connection, times out,
 * answers UNAVAILABLE, INTERNAL or a truncated frame) backs off: it is chosen again
 * at once for the first failure in a row (a daemon restarted under an idle
 * connection), then not for 25, 50, ... up to 1000 ms or a quarter of the
 * client's timeout (halved at random, so clients do not come back
 * together); an answer forgets its failures.
 * Requests that are safe to repeat (all but reload) are then sent to the
 * next replica, until one answers or the call's deadline passes.
 * fleet_rows.c does that for lookups, this file for info, stats and ping. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "egc_fleet.h"

#define BACKOFF_FIRST_MS 25
#define BACKOFF_MAX_MS 1000

static uint64_t next_rand(struct egc_fleet *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545F4914F6CDD1DULL;
}

int64_t egc__fleet_deadline(const eg_client *c)
{
	return c->timeout_ms > 0 ? egc__now_ms() + c->timeout_ms : -1;
}

int egc__fleet_try_ms(const eg_client *c, int64_t deadline)
{
	int try = c->try_timeout_ms > 0 ? c->try_timeout_ms : c->timeout_ms / 2;
	int64_t left;

	if (deadline < 0)
		return try;
	left = deadline - egc__now_ms();
	if (left < 1)
		left = 1;
	if (try > 0 && try < left)
		return try;
	return left > INT_MAX ? INT_MAX : (int)left;
}

long egc__fleet_group_of(const eg_client *c, const char *table)
{
	const struct egc_fleet *f = c->fleet;
	long dflt = -1;

	for (size_t i = 0; i < f->ngroups; i++) {
		const struct egc_spec_group *g = &f->groups[i].spec;

		for (size_t k = 0; k < g->ntables; k++)
			if (strcmp(g->tables[k], table) == 0)
				return (long)i;
		if (g->dflt)
			dflt = (long)i;
	}
	return dflt;
}

/* ---- choosing a replica ----------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* -ETIMEDOUT, with what each replica of g last failed with. */
static int timed_out(eg_client *c, const struct egc_group *g)
{
	char msg[sizeof(c->errmsg)];
	size_t len = (size_t)snprintf(msg, sizeof(msg), "no replica answered within %d ms",
	                              c->timeout_ms);

	for (size_t i = 0; i < g->spec.naddrs && len < sizeof(msg); i++)
		if (g->reps[i].why[0])
			len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s", len ? "; " : "",
			                        g->reps[i].why);
	egc__set_msg(c, "%s", msg);
	return -ETIMEDOUT;
}

/* The replica to try now, or SIZE_MAX when all back off (*soonest: when the
 * first is back): a local one (unix:, the fastest) not backing off, else the
 * one in use while it is healthy, the next healthy one, the next that fails
 * least. */
static size_t choose(const struct egc_group *g, int64_t now, int64_t *soonest)
{
	size_t n = g->spec.naddrs, best = SIZE_MAX, i, r;

	*soonest = INT64_MAX;
	for (i = 0; i < n; i++)
		if (g->reps[i].local && g->reps[i].down_until <= now)
			return i;
	for (i = 0; i < n; i++) {
		r = (g->cur + i) % n;
		if (g->reps[r].down_until > now) {
			*soonest = g->reps[r].down_until < *soonest ? g->reps[r].down_until : *soonest;
			continue;
		}
		if (g->reps[r].fails == 0)
			return r;
		if (best == SIZE_MAX || g->reps[r].fails < g->reps[best].fails ||
		    (g->reps[r].fails == g->reps[best].fails && best == g->cur))
			best = r;
	}
	return best;
}

int egc__fleet_pick(eg_client *c, struct egc_group *g, int64_t deadline, int nowait,
                    size_t *out)
{
	int64_t now, soonest;
	size_t best;

	for (;;) {
		now = egc__now_ms();
		if (deadline >= 0 && now >= deadline)
			return timed_out(c, g);
		best = choose(g, now, &soonest);
		if (best != SIZE_MAX) {
			g->cur = best;
			*out = best;
			return 0;
		}
		if (nowait)
			return -EAGAIN;
		sleep_ms((deadline >= 0 && deadline < soonest ? deadline : soonest) - now);
	}
}

int egc__fleet_start_readers(eg_client *c)
{
	struct egc_fleet *f = c->fleet;
	int err;

	f->readers = 1;
	for (size_t i = 0; i < f->ngroups; i++)
		for (size_t k = 0; k < f->groups[i].spec.naddrs; k++)
			if (f->groups[i].reps[k].conn &&
			    (err = eg_client_start_reader(f->groups[i].reps[k].conn)) < 0)
				return err;
	return 0;
}

int egc__fleet_member(eg_client *c, struct egc_replica *r, int64_t deadline, eg_client **out)
{
	int ms = egc__fleet_try_ms(c, deadline), err;

	if (!r->conn) {
		err = eg_client_connect(r->addr, ms, &r->conn);
		if (err == 0 && c->fleet->readers && (err = eg_client_start_reader(r->conn)) < 0) {
			eg_client_close(r->conn);
			r->conn = NULL;
		}
		if (err < 0) {
			snprintf(r->why, sizeof(r->why), "cannot connect to %s: %s", r->addr,
			         eg_client_strerror(err));
			egc__set_msg(c, "%s", r->why);
			return err;
		}
	}
	eg_client_set_timeout(r->conn, ms);
	*out = r->conn;
	return 0;
}

/* Errors another replica may not have: the connection, a timeout, a
 * replica behind (UNAVAILABLE) or one that died inside a frame (a
 * truncated frame is EGC_EPROTOCOL), its disk failing (INTERNAL), a name
 * that did not resolve. */
static int retryable(int err)
{
	if (err == EGC_EUNAVAILABLE || err == EGC_EPROTOCOL || err == EGC_EINTERNAL ||
	    err == EGC_EADDR)
		return 1;
	return err < 0 && err > -4096 && err != -EINVAL && err != -ENOMEM && err != -EBUSY;
}

int egc__fleet_failed(eg_client *c, struct egc_replica *r, int err)
{
	uint64_t ms = 0;

	if (r->conn) { /* else the connect failed, and said so */
		const char *m = eg_client_errmsg(r->conn);

		if (!*m)
			m = eg_client_strerror(err);
		snprintf(r->why, sizeof(r->why), "%s%s%s", strstr(m, r->addr) ? "" : r->addr,
		         strstr(m, r->addr) ? "" : ": ", m);
		egc__set_msg(c, "%s", r->why);
	}
	if (!retryable(err))
		return 0;
	if (r->fails++ > 0) {
		/* several tries fit in one call's deadline */
		uint64_t max = c->timeout_ms > 0 && c->timeout_ms / 4 < BACKOFF_MAX_MS ?
		               (uint64_t)c->timeout_ms / 4 : BACKOFF_MAX_MS;

		ms = (uint64_t)BACKOFF_FIRST_MS << (r->fails - 2 < 6 ? r->fails - 2 : 6);
		ms = ms > max ? max : ms;
		ms = ms / 2 + next_rand(c->fleet) % (ms / 2 + 1);
	}
	r->down_until = egc__now_ms() + (int64_t)ms;
	return 1;
}

void egc__fleet_ok(struct egc_replica *r)
{
	r->fails = 0;
	r->down_until = 0;
	r->why[0] = '\0';
}

int egc__fleet_tries_over(const struct egc_group *g, int64_t deadline, size_t *tries)
{
	return deadline < 0 && ++*tries >= g->spec.naddrs;
}

void egc__fleet_cancel(eg_client *m, uint64_t sub)
{
	egc_ticket *t;

	for (size_t i = 0; i < m->qlen; i++) {
		if (m->q[i]->id != sub)
			continue;
		if (!m->q[i]->done)
			egc__drop(m, -ECONNRESET, "connection dropped: a request on it was given up");
		if (egc__collect(m, sub, &t) == 0)
			egc__ticket_free(t);
		return;
	}
}

/* ---- calls that are not lookups ------------------------------------------- */

typedef int (*call_fn)(eg_client *m, void *arg);

/* fn on a replica of group g; with retry, on the next after a failure
 * another may not have, until the deadline. */
static int call(eg_client *c, struct egc_group *g, int64_t deadline, int retry, call_fn fn,
                void *arg)
{
	size_t r, tries = 0;
	eg_client *m;
	int err;

	for (;;) {
		err = egc__fleet_pick(c, g, deadline, 0, &r);
		if (err < 0)
			return err;
		err = egc__fleet_member(c, &g->reps[r], deadline, &m);
		if (err == 0 && (err = fn(m, arg)) == 0) {
			egc__fleet_ok(&g->reps[r]);
			return 0;
		}
		if (!egc__fleet_failed(c, &g->reps[r], err) || !retry ||
		    egc__fleet_tries_over(g, deadline, &tries))
			return err;
	}
}

struct info_arg {
	eg_client_table *t;
	size_t n;
};

static int info_fn(eg_client *m, void *arg)
{
	struct info_arg *a = arg;

	return eg_client_info(m, &a->t, &a->n);
}

/* Every group's tables, each from the group that serves it. */
int egc__fleet_info(eg_client *c, eg_client_table **tables, size_t *n)
{
	int64_t deadline = egc__fleet_deadline(c);
	eg_client_table *all = NULL, *grown;
	size_t nall = 0;
	int err = 0;

	for (size_t gi = 0; gi < c->fleet->ngroups && err == 0; gi++) {
		struct info_arg a = { 0 };

		err = call(c, &c->fleet->groups[gi], deadline, 1, info_fn, &a);
		if (err < 0)
			break;
		grown = realloc(all, (nall + a.n + 1) * sizeof(*all));
		if (!grown) {
			eg_client_info_free(a.t, a.n);
			egc__set_msg(c, "out of memory copying the table list");
			err = -ENOMEM;
			break;
		}
		all = grown;
		for (size_t k = 0; k < a.n; k++) {
			if (egc__fleet_group_of(c, a.t[k].name) != (long)gi)
				continue;
			all[nall++] = a.t[k];
			memset(&a.t[k], 0, sizeof(a.t[k])); /* moved */
		}
		eg_client_info_free(a.t, a.n);
	}
	if (err < 0) {
		eg_client_info_free(all, nall);
		return err;
	}
	*tables = all ? all : calloc(1, sizeof(*all));
	*n = nall;
	return *tables ? 0 : -ENOMEM;
}

static int stats_fn(eg_client *m, void *arg)
{
	return eg_client_stats_get(m, arg);
}

/* The daemon in use for the tables no group names (else the first group). */
int egc__fleet_stats(eg_client *c, eg_client_stats *out)
{
	long g = egc__fleet_group_of(c, ""); /* no table is named "": the default */

	return call(c, &c->fleet->groups[g < 0 ? 0 : g], egc__fleet_deadline(c), 1, stats_fn, out);
}

static int ping_fn(eg_client *m, void *arg)
{
	(void)arg;
	return eg_client_ping(m);
}

/* One replica of every group answers. */
int egc__fleet_ping(eg_client *c)
{
	int64_t deadline = egc__fleet_deadline(c);
	int err = 0;

	for (size_t gi = 0; gi < c->fleet->ngroups && err == 0; gi++)
		err = call(c, &c->fleet->groups[gi], deadline, 1, ping_fn, NULL);
	return err;
}

struct reload_arg {
	const char *table;
	eg_client_reload *res;
	size_t nres, *nout;
};

static int reload_fn(eg_client *m, void *arg)
{
	struct reload_arg *a = arg;

	return eg_client_reload_tables(m, a->table, a->res, a->nres, a->nout);
}

/* Not repeated: a reload is not safe to send twice. */
int egc__fleet_reload(eg_client *c, const char *table, eg_client_reload *res, size_t nres,
                      size_t *nout)
{
	struct reload_arg a = { table, res, nres, nout };

	if (c->fleet->ngroups != 1) {
		egc__set_msg(c, "reload one daemon at a time: connect to its own address");
		return -EINVAL;
	}
	return call(c, &c->fleet->groups[0], egc__fleet_deadline(c), 0, reload_fn, &a);
}

/* ---- open and close ------------------------------------------------------------ */

static int connect_fn(eg_client *m, void *arg)
{
	(void)m;
	(void)arg;
	return 0; /* egc__fleet_member connected it */
}

static int build(eg_client *c, struct egc_spec *s)
{
	struct egc_fleet *f = c->fleet;

	f->groups = calloc(s->ngroups, sizeof(*f->groups));
	if (!f->groups)
		return -ENOMEM;
	for (size_t i = 0; i < s->ngroups; i++) {
		struct egc_group *g = &f->groups[i];

		g->reps = calloc(s->groups[i].naddrs, sizeof(*g->reps));
		if (!g->reps)
			return -ENOMEM;
		g->spec = s->groups[i]; /* moved: the group owns the strings */
		memset(&s->groups[i], 0, sizeof(s->groups[i]));
		f->ngroups++;
		/* clients of a pool spread over its replicas */
		g->cur = (size_t)(next_rand(f) % g->spec.naddrs);
		for (size_t k = 0; k < g->spec.naddrs; k++) {
			g->reps[k].addr = g->spec.addrs[k];
			g->reps[k].local = strncmp(g->reps[k].addr, "unix:", 5) == 0;
		}
	}
	return 0;
}

int egc__fleet_open(const char *spec, int timeout_ms, unsigned flags, eg_client **out)
{
	struct egc_spec s = { 0 };
	int64_t deadline;
	eg_client *c;
	char why[256];
	int err;

	c = egc__client_new(spec, timeout_ms, flags);
	if (!c)
		return -ENOMEM;
	c->fleet = calloc(1, sizeof(*c->fleet));
	if (!c->fleet) {
		err = -ENOMEM;
		goto fail;
	}
	c->fleet->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)egc__now_ms() ^ (uintptr_t)c;
	c->fleet->rng |= 1;
	err = egc__spec_parse(spec, &s, why, sizeof(why));
	if (err == 0)
		err = build(c, &s);
	egc__spec_free(&s); /* what build did not move into the groups */
	deadline = egc__fleet_deadline(c);
	for (size_t i = 0; err == 0 && i < c->fleet->ngroups; i++)
		err = call(c, &c->fleet->groups[i], deadline, 1, connect_fn, NULL);
	if (err < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	eg_client_close(c);
	return err;
}

void egc__fleet_free(eg_client *c)
{
	struct egc_fleet *f = c->fleet;

	if (!f)
		return;
	egc__fleet_tickets_free(c);
	for (size_t i = 0; i < f->ngroups; i++) {
		for (size_t k = 0; k < f->groups[i].spec.naddrs; k++)
			eg_client_close(f->groups[i].reps[k].conn);
		free(f->groups[i].reps);
		egc__spec_group_free(&f->groups[i].spec);
	}
	free(f->groups);
	free(f);
	c->fleet = NULL;
}

void eg_client_set_try_timeout(eg_client *c, int try_timeout_ms)
{
	if (c)
		c->try_timeout_ms = try_timeout_ms > 0 ? try_timeout_ms : 0;
}
