/* registry.c - the served tables: the set of them, pins, hot reload and
 * the config's table changes (the snapshots themselves: snap.c).
 *
 * Pinning takes a per-table mutex only around "load current, add a pin": a
 * bare atomic load followed by an increment could race with a reload
 * dropping the last reference in between. The swap itself is one atomic
 * store under that mutex; it is held for nanoseconds, once per request.
 *
 * The set of tables changes when the config file is read again (SIGHUP):
 * finding a table takes a read lock on the set and a reference on the
 * table; a table taken out of the set loses its current snapshot at once
 * (new pins fail) and is freed when its last reference goes: the set's,
 * a lister's, or one of its snapshots' (their row cache is the table's). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "log.h"
#include "pager.h"
#include "registry_int.h"
#include "rowcache.h"
#include "stats.h"

/* the tables served, in configuration order; under set_lock */
static struct ed_table **set;
static size_t n_set;
static pthread_rwlock_t set_lock = PTHREAD_RWLOCK_INITIALIZER;
/* tables loaded at start so far (progress), and whether that start is done */
static atomic_size_t n_loaded, n_configured;
static atomic_int started;
/* One reload or config change at a time: tables' dirs, epochs and refusal
 * memory stay simple. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t table_bytes(const struct ed_table *t)
{
	const struct ed_snap *s = atomic_load(&t->cur);

	return s->meta->slots * s->meta->row_bytes;
}

/* A table's share of a budget: its own (NAME=SIZE), or a part of the
 * daemon-wide one in proportion to its size among the tables without one. */
static uint64_t share(uint64_t own, uint64_t total, uint64_t bytes, uint64_t pool_bytes)
{
	if (own)
		return own;
	if (!total || !pool_bytes)
		return 0;
	return (uint64_t)((double)total * (double)bytes / (double)pool_bytes);
}

/* t's row cache (c bytes) or page budget; t serves its first snapshot. */
static int table_budget(struct ed_table *t, uint64_t c, uint64_t page_budget)
{
	struct ed_snap *s = atomic_load(&t->cur);
	int rc;

	t->page_budget = page_budget;
	if (c && ed_io_running()) {
		if ((rc = ed_rowcache_new(s->meta->row_bytes, c, &t->cache)) ||
		    (rc = ed__snap_epochs(t, s, NULL))) {
			ed_error("table %s: cannot make a row cache of %llu bytes: %s", t->name,
			         (unsigned long long)c, strerror(-rc));
			return rc;
		}
		if (s->pager)
			ed_pager_no_read_back(s->pager);
		ed_info("table %s: row cache of %llu MiB", t->name, (unsigned long long)(c >> 20));
	} else if (t->page_budget && s->pager) {
		ed_pager_set_budget(s->pager, t->page_budget);
		ed_info("table %s: page budget of %llu MiB", t->name,
		        (unsigned long long)(t->page_budget >> 20));
	}
	return 0;
}

/* Row caches and page budgets, once every table's size is known. */
static int setup_budgets(size_t n)
{
	uint64_t cache_pool = 0, page_pool = 0;

	for (size_t i = 0; i < n; i++) {
		cache_pool += ed_cfg.tables[i].cache_bytes ? 0 : table_bytes(set[i]);
		page_pool += ed_cfg.tables[i].page_budget ? 0 : table_bytes(set[i]);
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t bytes = table_bytes(set[i]);
		int rc = table_budget(set[i],
		                      share(ed_cfg.tables[i].cache_bytes, ed_cfg.cache_bytes, bytes,
		                            cache_pool),
		                      share(ed_cfg.tables[i].page_budget, ed_cfg.page_budget, bytes,
		                            page_pool));

		if (rc)
			return rc;
	}
	return 0;
}

void ed__table_put(struct ed_table *t)
{
	if (atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	ed_rowcache_free(t->cache);
	pthread_mutex_destroy(&t->pin_lock);
	free(t->dir);
	free(t);
}

void ed_table_put(struct ed_table *t)
{
	ed__table_put(t);
}

/* A table serving the table in a->dir as a->name, not yet in the set;
 * check: EG_CHECK_* of its first version. NULL (logged) on failure. */
static struct ed_table *table_new(const struct ed_table_arg *a, int check)
{
	struct ed_table *t = calloc(1, sizeof(*t));
	char resolved[PATH_MAX], err[PATH_MAX + 200];
	struct ed_snap *s;

	if (!t || !(t->dir = strdup(a->dir))) {
		ed_error("table %s: out of memory", a->name);
		free(t);
		return NULL;
	}
	snprintf(t->name, sizeof(t->name), "%s", a->name);
	atomic_init(&t->refs, 1);
	pthread_mutex_init(&t->pin_lock, NULL);
	if (!realpath(t->dir, resolved)) {
		ed_error("table %s: cannot resolve %s: %s", t->name, t->dir, strerror(errno));
		ed__table_put(t);
		return NULL;
	}
	if (ed__snap_open(resolved, check, 0, 0, &s, err, sizeof(err))) {
		ed_error("table %s: %s", t->name, err);
		ed__table_put(t);
		return NULL;
	}
	s->owner = t;
	atomic_fetch_add(&t->refs, 1);
	atomic_store(&t->cur, s);
	ed_info("table %s: serving %s generation %llu, %llu slots x %u bytes (%s dim %u)%s%s",
	        t->name, s->path, (unsigned long long)s->meta->generation,
	        (unsigned long long)s->meta->slots, s->meta->row_bytes,
	        eg_dtype_name(s->meta->dtype), s->meta->dim,
	        s->hash ? ", hash " : "", s->hash ? eg_hash_kind(s->hash) : "");
	return t;
}

/* Takes t's current snapshot away (new pins get NULL) and the set's
 * reference; pins already taken finish on their snapshot. */
static void table_retire(struct ed_table *t)
{
	struct ed_snap *s;

	pthread_mutex_lock(&t->pin_lock);
	s = atomic_exchange(&t->cur, NULL);
	pthread_mutex_unlock(&t->pin_lock);
	if (s)
		ed_snap_unpin(s);
	ed__table_put(t);
}

int ed_registry_open(void)
{
	int check = ed_cfg.verify == ED_VERIFY_ALL ? EG_CHECK_CHECKSUMS : EG_CHECK_STRUCTURE;

	/* no table is a valid state: a fresh install serves nothing until
	 * tables are configured (calloc(0) may return NULL) */
	if (ed_cfg.n_tables == 0)
		ed_info("no table configured: serving nothing until tables are added");
	set = calloc(ed_cfg.n_tables ? ed_cfg.n_tables : 1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	atomic_store(&n_configured, ed_cfg.n_tables);
	/* set[] is published (n_set) once the budgets are set up too: until
	 * then the HTTP thread sees no table, only the progress */
	for (size_t i = 0; i < ed_cfg.n_tables; i++) {
		struct ed_table *t = table_new(&ed_cfg.tables[i], check);

		if (!t)
			goto fail;
		set[i] = t;
		atomic_store(&n_loaded, i + 1);
	}
	if (setup_budgets(ed_cfg.n_tables) < 0)
		goto fail;
	pthread_rwlock_wrlock(&set_lock);
	n_set = ed_cfg.n_tables;
	pthread_rwlock_unlock(&set_lock);
	atomic_store(&started, 1);
	return 0;
fail:
	for (size_t i = 0; i < ed_cfg.n_tables && set[i]; i++)
		table_retire(set[i]);
	free(set);
	set = NULL;
	return -1;
}

struct ed_rowcache *ed_table_cache(const struct ed_table *t)
{
	return t->cache;
}

void ed_registry_close(void)
{
	struct ed_table **old;
	size_t n;

	atomic_store(&started, 0);
	pthread_rwlock_wrlock(&set_lock);
	old = set;
	n = n_set;
	set = NULL;
	n_set = 0;
	pthread_rwlock_unlock(&set_lock);
	for (size_t i = 0; i < n; i++)
		table_retire(old[i]);
	free(old);
}

size_t ed_registry_loaded(void)
{
	return atomic_load(&n_loaded);
}

size_t ed_registry_configured(void)
{
	return atomic_load(&n_configured);
}

int ed_registry_ready(void)
{
	return atomic_load(&started);
}

size_t ed_registry_count(void)
{
	size_t n;

	pthread_rwlock_rdlock(&set_lock);
	n = n_set;
	pthread_rwlock_unlock(&set_lock);
	return n;
}

size_t ed_registry_list(struct ed_table ***out)
{
	size_t n;

	pthread_rwlock_rdlock(&set_lock);
	n = n_set;
	*out = malloc((n ? n : 1) * sizeof(**out));
	if (!*out)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		atomic_fetch_add(&set[i]->refs, 1);
		(*out)[i] = set[i];
	}
	pthread_rwlock_unlock(&set_lock);
	return n;
}

void ed_registry_list_put(struct ed_table **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ed__table_put(list[i]);
	free(list);
}

/* Under set_lock. */
static struct ed_table *find(const char *name)
{
	for (size_t i = 0; i < n_set; i++)
		if (strcmp(set[i]->name, name) == 0)
			return set[i];
	return NULL;
}

struct ed_table *ed_registry_get(const char *name)
{
	struct ed_table *t;

	pthread_rwlock_rdlock(&set_lock);
	t = find(name);
	if (t)
		atomic_fetch_add(&t->refs, 1);
	pthread_rwlock_unlock(&set_lock);
	return t;
}

struct ed_snap *ed_registry_pin(const char *name)
{
	struct ed_table *t = ed_registry_get(name);
	struct ed_snap *s;

	if (!t)
		return NULL;
	s = ed_table_pin(t);
	ed__table_put(t);
	return s;
}

const char *ed_table_name(const struct ed_table *t)
{
	return t->name;
}

struct ed_snap *ed_table_pin(struct ed_table *t)
{
	struct ed_snap *s;

	pthread_mutex_lock(&t->pin_lock);
	s = atomic_load_explicit(&t->cur, memory_order_acquire);
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&t->pin_lock);
	return s;
}

void ed_snap_unpin(struct ed_snap *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		ed_debug("closing snapshot of %s generation %llu", s->path,
		         (unsigned long long)s->meta->generation);
		ed__snap_free(s);
	}
}

static void refuse(struct ed_table *t, int quiet, const char *resolved, uint64_t gen,
                   struct ed_reload_result *res)
{
	int repeat = strcmp(t->refused_path, resolved) == 0 && t->refused_generation == gen;

	res->failed = 1;
	if (quiet && repeat)
		return;
	snprintf(t->refused_path, sizeof(t->refused_path), "%s", resolved);
	t->refused_generation = gen;
	ed_stat_add(reload_failures, 1);
	ed_error("table %s: reload refused, still serving generation %llu: %s", t->name,
	         (unsigned long long)res->old_generation, res->error);
}

/* ed_table_reload with reload_lock held. */
static void table_reload(struct ed_table *t, int quiet, struct ed_reload_result *res)
{
	char resolved[PATH_MAX];
	struct ed_snap *old, *s = NULL;
	const char *why;
	uint64_t t0, t1, t2;
	int fresh, check, verify;

	memset(res, 0, sizeof(*res));
	/* only reloads store t->cur, and they hold reload_lock: no pin needed */
	old = atomic_load(&t->cur);
	if (!old) {
		snprintf(res->error, sizeof(res->error), "table %s was removed from the configuration",
		         t->name);
		res->failed = 1;
		return;
	}
	res->old_generation = res->new_generation = old->meta->generation;
	snprintf(res->path, sizeof(res->path), "%s", old->path);

	t0 = ed__now_ns();
	if (!realpath(t->dir, resolved)) {
		snprintf(res->error, sizeof(res->error), "cannot resolve %s: %s", t->dir,
		         strerror(errno));
		refuse(t, quiet, t->dir, 0, res);
		return;
	}
	/* A new version directory is checked before it is mapped (docs/FORMAT.md:
	 * "Checking a table"). A patch in place of the served version was
	 * written by LMDB into a file already checked, and its writer
	 * checksummed every chunk it wrote: its chunks' places are checked here
	 * (eg_snapshot_open does, always), its checksums with --verify all. */
	fresh = strcmp(resolved, old->path) != 0;
	check = !fresh ? 0 : ed_cfg.verify == ED_VERIFY_NONE ? EG_CHECK_STRUCTURE
	                                                    : EG_CHECK_CHECKSUMS;
	verify = !fresh && ed_cfg.verify == ED_VERIFY_ALL;
	if (ed__snap_open(resolved, check, verify, t->page_budget, &s, res->error,
	              sizeof(res->error))) {
		refuse(t, quiet, resolved, 0, res);
		return;
	}
	t1 = ed__now_ns();
	res->build_us = (t1 - t0) / 1000;
	if (strcmp(s->path, old->path) == 0 && s->meta->generation == old->meta->generation) {
		ed__snap_free(s); /* nothing new */
		return;
	}
	if ((why = ed__snap_incompatible(old->meta, s->meta))) {
		snprintf(res->error, sizeof(res->error),
		         "%.150s generation %llu: %s from the served version", resolved,
		         (unsigned long long)s->meta->generation, why);
		refuse(t, quiet, resolved, s->meta->generation, res);
		ed__snap_free(s);
		return;
	}

	if (t->cache && s->pager)
		ed_pager_no_read_back(s->pager);
	if (ed__snap_epochs(t, s, old)) {
		snprintf(res->error, sizeof(res->error), "out of memory for the row cache epochs");
		refuse(t, quiet, resolved, s->meta->generation, res);
		ed__snap_free(s);
		return;
	}
	s->owner = t;
	atomic_fetch_add(&t->refs, 1);
	/* the swap as pinning readers see it: waiting for the lock included */
	t2 = ed__now_ns();
	pthread_mutex_lock(&t->pin_lock);
	atomic_store_explicit(&t->cur, s, memory_order_release);
	pthread_mutex_unlock(&t->pin_lock);
	t2 = ed__now_ns() - t2;

	res->reloaded = 1;
	res->swap_ns = t2;
	res->new_generation = s->meta->generation;
	snprintf(res->path, sizeof(res->path), "%s", s->path);
	t->refused_path[0] = '\0';
	ed_stat_add(reloads, 1);
	ed_info("table %s: reloaded generation %llu -> %llu from %s (build %.3f ms%s, swap %llu ns)",
	        t->name, (unsigned long long)res->old_generation,
	        (unsigned long long)res->new_generation, s->path, (double)(t1 - t0) * 1e-6,
	        verify || check == EG_CHECK_CHECKSUMS ? " with checksums"
	                                               : check ? " checked" : "",
	        (unsigned long long)t2);
	ed_snap_unpin(old); /* the registry's reference; pins keep it open */
}

void ed_table_reload(struct ed_table *t, int quiet, struct ed_reload_result *res)
{
	pthread_mutex_lock(&reload_lock);
	table_reload(t, quiet, res);
	pthread_mutex_unlock(&reload_lock);
}

/* Points t at dir and reloads it from there; on a refusal t stays where it
 * was. 0 when it serves dir now. */
static int table_repoint(struct ed_table *t, const char *dir)
{
	struct ed_reload_result *res = malloc(sizeof(*res));
	char *old = t->dir, *nd = strdup(dir);
	int rc = -1;

	if (!res || !nd) {
		ed_error("table %s: out of memory", t->name);
		goto out;
	}
	ed_info("table %s: re-pointed from %s to %s", t->name, old, dir);
	t->dir = nd;
	table_reload(t, 0, res);
	if (res->failed) {
		ed_error("table %s: stays at %s", t->name, old);
		t->dir = old;
		old = nd;
	} else {
		rc = 0;
	}
	nd = NULL;
	free(old);
out:
	free(nd);
	free(res);
	return rc;
}

static const struct ed_table_arg *arg_of(const char *name, const struct ed_table_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].name, name) == 0)
			return &a[i];
	return NULL;
}

int ed_registry_apply(const struct ed_table_arg *want, size_t n)
{
	struct ed_table **next = calloc(n ? n : 1, sizeof(*next)), **gone, **cur;
	int check = ed_cfg.verify == ED_VERIFY_NONE ? EG_CHECK_STRUCTURE : EG_CHECK_CHECKSUMS;
	size_t n_cur, n_gone = 0, n_next = 0;
	int errors = 0;

	if (!next)
		return 1;
	pthread_mutex_lock(&reload_lock);
	atomic_store(&n_configured, n);
	n_cur = ed_registry_list(&cur);
	gone = calloc(n_cur ? n_cur : 1, sizeof(*gone));
	if (!gone || (n_cur == 0 && ed_registry_count())) {
		pthread_mutex_unlock(&reload_lock);
		ed_registry_list_put(cur, n_cur);
		free(next);
		free(gone);
		return 1;
	}
	/* in the new order: kept (re-pointed when the directory changed) or new */
	for (size_t i = 0; i < n; i++) {
		struct ed_table *t = NULL;

		for (size_t k = 0; k < n_cur && !t; k++)
			if (strcmp(cur[k]->name, want[i].name) == 0)
				t = cur[k];
		if (t) {
			/* the list's reference becomes next's */
			if (strcmp(t->dir, want[i].dir) != 0 && table_repoint(t, want[i].dir) < 0)
				errors++;
		} else if ((t = table_new(&want[i], check))) {
			if (table_budget(t, want[i].cache_bytes, want[i].page_budget) < 0)
				errors++;
			ed_info("table %s: added", t->name);
		} else {
			errors++;
			continue;
		}
		next[n_next++] = t;
	}
	for (size_t k = 0; k < n_cur; k++)
		if (!arg_of(cur[k]->name, want, n))
			gone[n_gone++] = cur[k];
	pthread_rwlock_wrlock(&set_lock);
	free(set);
	set = next;
	n_set = n_next;
	pthread_rwlock_unlock(&set_lock);
	/* the old set's references; a kept table's list reference is next's */
	for (size_t k = 0; k < n_cur; k++)
		ed__table_put(cur[k]);
	for (size_t k = 0; k < n_gone; k++) {
		ed_info("table %s: removed; requests in flight on it finish", gone[k]->name);
		table_retire(gone[k]); /* drops the list's reference */
	}
	free(gone);
	free(cur);
	pthread_mutex_unlock(&reload_lock);
	return errors;
}
