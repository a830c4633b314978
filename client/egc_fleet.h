/* egc_fleet.h - internals of a client over several daemons (spec.c,
 * fleet.c, fleet_rows.c); not installed. */
#ifndef EGC_FLEET_H
#define EGC_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include "egc_int.h"

/* ---- spec.c: what an address spec names ---------------------------------- */

/* Replicas of the same tables. */
struct egc_spec_group {
	char **tables;   /* the tables routed here (may be none) */
	size_t ntables;
	int dflt;        /* also every table no group names */
	char **addrs;    /* single addresses, in the order given */
	size_t naddrs;
};

struct egc_spec {
	struct egc_spec_group *groups;
	size_t ngroups;
};

/* Parses spec (engram.h, eg_client_open) into out; groups with the same
 * addresses are merged. 0, EGC_EADDR with why filled, or -ENOMEM. */
int egc__spec_parse(const char *spec, struct egc_spec *out, char *why, size_t whylen);
void egc__spec_free(struct egc_spec *s);
void egc__spec_group_free(struct egc_spec_group *g);

/* ---- fleet.c: replicas and their health ----------------------------------- */

struct egc_replica {
	char *addr;
	int local;           /* a unix: address: chosen first when it answers */
	eg_client *conn;     /* plain client of addr; NULL until first used */
	int64_t down_until;  /* monotonic ms: not chosen before (backing off) */
	unsigned fails;      /* failures in a row */
	char why[200];       /* the last one, "" after an answer */
};

struct egc_group {
	struct egc_spec_group spec;
	struct egc_replica *reps;
	size_t cur;          /* the replica in use */
};

struct egc_fticket;

struct egc_fleet {
	struct egc_group *groups;
	size_t ngroups;
	uint64_t rng;
	/* tickets sent and not collected (fleet_rows.c) */
	struct egc_fticket **q;
	size_t qlen, qcap;
	int readers;         /* eg_client_start_reader: every replica's client runs one */
};

/* The deadline of a call starting now (monotonic ms), -1 without one. */
int64_t egc__fleet_deadline(const eg_client *c);
/* Timeout for one try on a replica: the try timeout, within the deadline
 * (0: no limit). */
int egc__fleet_try_ms(const eg_client *c, int64_t deadline);
/* The group serving table, or -1. */
long egc__fleet_group_of(const eg_client *c, const char *table);
/* Chooses the replica of g to try now (*out): a local one (unix:) not
 * backing off, else the one in use unless it is failing, else the next one
 * not backing off; when all back off, sleeps
 * until the first is back, or (nowait) returns -EAGAIN. -ETIMEDOUT (with
 * a message) once deadline has passed. */
int egc__fleet_pick(eg_client *c, struct egc_group *g, int64_t deadline, int nowait,
                    size_t *out);
/* eg_client_start_reader of a fleet: the replicas' clients, those made
 * and those to come, run reader threads. */
int egc__fleet_start_readers(eg_client *c);
/* r's client, connected (made on first use), its timeout set for one try. */
int egc__fleet_member(eg_client *c, struct egc_replica *r, int64_t deadline, eg_client **out);
/* After err from r: notes why in c's message; whether another replica may
 * be asked (then r backs off). */
int egc__fleet_failed(eg_client *c, struct egc_replica *r, int err);
void egc__fleet_ok(struct egc_replica *r);
/* Whether a call that failed on every try so far is over: without a
 * deadline, after one try of each replica. */
int egc__fleet_tries_over(const struct egc_group *g, int64_t deadline, size_t *tries);
/* Forgets ticket sub of m: a response still to come is not read into its
 * buffers (the connection is dropped when it is pending). */
void egc__fleet_cancel(eg_client *m, uint64_t sub);

/* fleet_rows.c */
void egc__fleet_tickets_free(eg_client *c);

#endif
