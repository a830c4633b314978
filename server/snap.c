/* snap.c - the open environments and the snapshots read from them: a
 * version checked in a child before it is mapped, its chunk directory, its
 * hash spec and the row cache epochs of its chunks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "pager.h"
#include "registry_int.h"

/* An open LMDB environment, shared by every snapshot read from it: LMDB
 * forbids opening one environment twice in a process. */
struct ed_env {
	struct ed_env *next;
	unsigned refs;          /* snapshots using it; under env_lock */
	eg_table *table;
	struct ed_pager *pager; /* NULL without the I/O thread */
	int direct_fd;          /* -1 when O_DIRECT is refused (tmpfs) */
	uint32_t dio_align;
};

static struct ed_env *envs;
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
uint64_t ed__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The I/O path's view of a new environment: page residency, and the file
 * opened again for direct reads. Without them rows are read through the
 * map, as before; that is slower, never wrong. */
static void io_open(struct ed_env *e, uint64_t page_budget)
{
	struct statx sx;
	int rc;

	e->direct_fd = -1;
	e->dio_align = 4096;
	if (!ed_io_running())
		return;
	if ((rc = ed_pager_new(e->table, page_budget, &e->pager)))
		ed_warn("%s: no page residency tracking: %s", eg_table_path(e->table), strerror(-rc));
	rc = eg_table_open_data(e->table, O_DIRECT);
	if (rc < 0) {
		ed_debug("%s: no direct reads: %s", eg_table_path(e->table), strerror(-rc));
		return;
	}
	e->direct_fd = rc;
	if (statx(rc, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align &&
	    sx.stx_dio_mem_align <= 4096)
		e->dio_align = sx.stx_dio_offset_align;
}

/* Finds the open environment of resolved dir, or opens it. */
static int env_get(const char *resolved, uint64_t page_budget, struct ed_env **out)
{
	struct ed_env *e;
	int rc = 0;

	pthread_mutex_lock(&env_lock);
	for (e = envs; e; e = e->next) {
		if (strcmp(eg_table_path(e->table), resolved) == 0) {
			e->refs++;
			goto out;
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto out;
	}
	rc = eg_table_open(resolved, &e->table);
	if (rc) {
		free(e);
		e = NULL;
		goto out;
	}
	io_open(e, page_budget);
	e->refs = 1;
	e->next = envs;
	envs = e;
out:
	pthread_mutex_unlock(&env_lock);
	*out = e;
	return rc;
}

static void env_put(struct ed_env *e)
{
	struct ed_env **p;

	pthread_mutex_lock(&env_lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&env_lock);
		return;
	}
	for (p = &envs; *p != e; p = &(*p)->next)
		;
	*p = e->next;
	pthread_mutex_unlock(&env_lock);
	ed_info("closed table environment %s", eg_table_path(e->table));
	ed_pager_free(e->pager);
	if (e->direct_fd >= 0)
		close(e->direct_fd);
	eg_table_close(e->table);
	free(e);
}

void ed__snap_free(struct ed_snap *s)
{
	struct ed_table *owner = s->owner;

	free(s->epochs);
	if (s->hash)
		eg_hash_free(s->hash);
	if (s->snap)
		eg_snapshot_close(s->snap);
	if (s->env)
		env_put(s->env);
	free(s);
	if (owner)
		ed__table_put(owner); /* last: the table's row cache served s */
}

/* Row-cache epochs of s's chunks: a chunk keeps its epoch while its rows
 * stay where they were in the same environment (LMDB copies a patched chunk
 * to new pages, and cannot reuse the old ones while old, the current
 * snapshot, is open); every other chunk gets a fresh one. Called with
 * reload_lock held, or before serving. */
int ed__snap_epochs(struct ed_table *t, struct ed_snap *s, const struct ed_snap *old)
{
	uint32_t fresh;

	if (!t->cache)
		return 0;
	s->epochs = malloc((s->dir.nchunks ? s->dir.nchunks : 1) * sizeof(*s->epochs));
	if (!s->epochs)
		return -ENOMEM;
	fresh = ++t->epoch;
	for (uint64_t c = 0; c < s->dir.nchunks; c++) {
		int same = old && old->env == s->env && old->epochs && c < old->dir.nchunks &&
		           old->dir.chunks[c] == s->dir.chunks[c];

		s->epochs[c] = same ? old->epochs[c] : fresh;
	}
	s->cache = t->cache;
	return 0;
}

struct damage {
	char first[200];
	unsigned count;
};

static void note_damage(void *arg, const char *problem)
{
	struct damage *d = arg;

	if (d->count++ == 0)
		snprintf(d->first, sizeof(d->first), "%s", problem);
}

/* Checks a version this process has not mapped yet at level EG_CHECK_*, in
 * a re-executed copy of engramd (main.c: --check-table). LMDB trusts its
 * file and a damaged B-tree can make it crash: in the child that only
 * refuses the version. posix_spawn, not fork: this process has threads,
 * and a forked copy could inherit a lock one of them holds. */
static int check_version(const char *resolved, int level, char *err, size_t errlen)
{
	char exe[] = "/proc/self/exe", flag[] = "--check-table", lflag[] = "--level", lvl[8];
	char *argv[] = { exe, flag, (char *)resolved, lflag, lvl, NULL };
	struct damage d = { "", 0 };
	int rc;

	snprintf(lvl, sizeof(lvl), "%d", level);
	rc = eg_table_check_isolated(resolved, level, argv, note_damage, &d);
	if (rc && d.count)
		snprintf(err, errlen, "%.100s is damaged: %s%s", resolved, d.first,
		         d.count > 1 ? " (and more)" : "");
	else if (rc)
		snprintf(err, errlen, "cannot check %s: %s", resolved, eg_strerror(rc));
	return rc;
}

/* Opens a snapshot of the table at resolved dir and parses its hash spec;
 * check (EG_CHECK_*, or 0 for a version already checked) first. */
int ed__snap_open(const char *resolved, int check, int verify, uint64_t page_budget,
                     struct ed_snap **out,
                     char *err, size_t errlen)
{
	struct ed_snap *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (check && (rc = check_version(resolved, check, err, errlen)))
		goto fail;
	rc = env_get(resolved, page_budget, &s->env);
	if (rc) {
		snprintf(err, errlen, "cannot open %s: %s", resolved, eg_strerror(rc));
		goto fail;
	}
	rc = eg_snapshot_open(s->env->table, verify, &s->snap);
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", resolved, eg_strerror(rc));
		goto fail;
	}
	s->meta = eg_snapshot_meta(s->snap);
	s->path = eg_table_path(s->env->table);
	eg_snapshot_rowdir(s->snap, &s->dir);
	s->pager = s->env->pager;
	s->direct_fd = s->env->direct_fd;
	s->dio_align = s->env->dio_align;
	if (s->meta->hash_spec) {
		char why[200] = "";

		rc = eg_hash_parse(s->meta->hash_spec, NULL, &s->hash, why, sizeof(why));
		if (rc) {
			snprintf(err, errlen, "%s: bad hash spec: %s", resolved, why);
			goto fail;
		}
		if (eg_hash_table_slots(s->hash) != s->meta->slots) {
			snprintf(err, errlen, "%s: hash spec covers %llu slots, table has %llu",
			         resolved, (unsigned long long)eg_hash_table_slots(s->hash),
			         (unsigned long long)s->meta->slots);
			rc = EG_EHASH;
			goto fail;
		}
		s->rows_per_token = eg_hash_rows_per_token(s->hash);
	}
	atomic_init(&s->refs, 1);
	*out = s;
	return 0;
fail:
	ed__snap_free(s);
	return rc;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* Why a new version cannot replace the served one, or NULL. */
const char *ed__snap_incompatible(const eg_meta *a, const eg_meta *b)
{
	if (a->dim != b->dim)
		return "dim differs";
	if (a->dtype != b->dtype)
		return "dtype differs";
	if (a->scale_block != b->scale_block || a->row_bytes != b->row_bytes)
		return "row layout differs";
	if (strcmp(nz(a->hash_spec), nz(b->hash_spec)) != 0)
		return "hash spec differs";
	return NULL;
}

