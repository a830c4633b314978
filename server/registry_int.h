/* registry_int.h - what registry.c and snap.c share: a served table, and
 * the snapshots' life cycle. Not for the rest of the daemon (registry.h). */
#ifndef ED_REGISTRY_INT_H
#define ED_REGISTRY_INT_H

#include <limits.h>
#include <pthread.h>

#include "registry.h"

struct ed_table {
	char name[EG_NAME_MAX + 1];
	atomic_uint refs;                 /* the set's, listers', snapshots' */
	char *dir;                        /* as configured; may be a symlink; under reload_lock */
	uint64_t page_budget;             /* --page-budget share; 0 = none */
	struct ed_rowcache *cache;        /* NULL: page-cache mode */
	uint32_t epoch;                   /* last epoch handed out; under reload_lock */
	pthread_mutex_t pin_lock;
	struct ed_snap *_Atomic cur;
	char refused_path[PATH_MAX];      /* last refused version, for quiet polls */
	uint64_t refused_generation;
};

/* CLOCK_MONOTONIC in ns. */
uint64_t ed__now_ns(void);
/* Drops a reference on t; the last one frees it and its row cache. */
void ed__table_put(struct ed_table *t);

/* Opens a snapshot of the table at resolved dir (check: EG_CHECK_* first in
 * a child, or 0 for a version already checked; verify: every checksum) and
 * parses its hash spec. 0 and *out (refs 1, no owner yet), or an error
 * with err filled. */
int ed__snap_open(const char *resolved, int check, int verify, uint64_t page_budget,
                  struct ed_snap **out, char *err, size_t errlen);
/* Frees s (its last reference went), then drops its owner's reference. */
void ed__snap_free(struct ed_snap *s);
/* The row cache epochs of s's chunks, carried over from old where the rows
 * did not move; with reload_lock held, or before serving. 0 or -ENOMEM. */
int ed__snap_epochs(struct ed_table *t, struct ed_snap *s, const struct ed_snap *old);
/* Why version b cannot replace a (dim, dtype, layout, hash spec), or NULL. */
const char *ed__snap_incompatible(const eg_meta *a, const eg_meta *b);

#endif
