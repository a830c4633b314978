/* registry.h - the served tables and their current snapshots.
 *
 * Each table has one current ed_snap. A request pins the snapshot it starts
 * with (ed_table_pin) and unpins it when its response has been written; the
 * row pointers it takes stay valid in between. A reload builds the next
 * snapshot off the serving loops and swaps the current pointer with one
 * atomic store; the old snapshot closes when its last pin goes. */
#ifndef ED_REGISTRY_H
#define ED_REGISTRY_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "eg_hash.h"
#include "eg_table.h"

struct ed_env;
struct ed_pager;
struct ed_rowcache;

/* One served version of a table; immutable while pinned. */
struct ed_snap {
	atomic_uint_fast64_t refs;  /* pins + 1 while current */
	struct ed_env *env;         /* the open environment it reads */
	eg_snapshot *snap;
	const eg_meta *meta;
	eg_hash *hash;              /* parsed meta->hash_spec; NULL without one */
	uint32_t rows_per_token;    /* 0 without a hash spec */
	const char *path;           /* resolved directory */
	/* the I/O path (gather.h) */
	eg_rowdir dir;              /* where rows are in the data file */
	struct ed_pager *pager;     /* page residency of the data file, or NULL */
	int direct_fd;              /* data file opened O_DIRECT, or -1 */
	uint32_t dio_align;         /* offset and length alignment of direct reads */
	struct ed_rowcache *cache;  /* the table's row cache, or NULL (page-cache mode) */
	uint32_t *epochs;           /* with a cache: per chunk, equal epoch = equal bytes */
	struct ed_table *owner;     /* the table served (a reference: its row cache) */
};

struct ed_table;
struct ed_table_arg;

/* Opens every configured table (ed_cfg), with its row cache when it has a
 * budget. Logs and returns <0 on failure. */
int ed_registry_open(void);
/* Drops the tables and their current snapshots; call after every pin is
 * gone. */
void ed_registry_close(void);

/* The start-up load is done (every configured table serves). Any thread. */
int ed_registry_ready(void);
/* Tables loaded so far by ed_registry_open (its progress). Any thread. */
size_t ed_registry_loaded(void);
/* Tables the configuration names (at start, or as last applied). */
size_t ed_registry_configured(void);
/* Tables served now. Any thread. */
size_t ed_registry_count(void);
/* The tables served now, in configuration order, each with a reference:
 * *out is a malloc'd array for ed_registry_list_put. Returns their count
 * (0 with *out still to be put when none, or out of memory). Any thread. */
size_t ed_registry_list(struct ed_table ***out);
void ed_registry_list_put(struct ed_table **list, size_t n);
/* The table served as name, with a reference for ed_table_put; NULL when
 * none is. Any thread. */
struct ed_table *ed_registry_get(const char *name);
void ed_table_put(struct ed_table *t);
/* ed_registry_get and ed_table_pin in one: NULL when no table of that name
 * serves. */
struct ed_snap *ed_registry_pin(const char *name);
const char *ed_table_name(const struct ed_table *t);

/* Makes the served tables those of want[0..n) (NAME=DIR, from a config
 * read again): opens the new ones (own cache-bytes/page-budget only; the
 * shared budgets are divided at start), points a table whose DIR changed
 * at it (a reload: the row layout must stay; on a refusal it keeps serving
 * the old one), and removes the others: their requests in flight finish on
 * their pinned snapshot, new ones get NULL from ed_table_pin. A table that
 * fails to open is left out, logged. Blocks (opens LMDB); off the loops.
 * Returns the number of tables that failed. */
int ed_registry_apply(const struct ed_table_arg *want, size_t n);

/* Pins t's current snapshot; NULL once t was removed. Any thread. */
struct ed_snap *ed_table_pin(struct ed_table *t);
/* Releases a pin; the last one closes the snapshot. Any thread. */
void ed_snap_unpin(struct ed_snap *s);

struct ed_reload_result {
	uint64_t old_generation;
	uint64_t new_generation;
	int reloaded;           /* a new snapshot was swapped in */
	int failed;             /* a version was refused; error says why */
	uint64_t build_us;      /* opening and checking the new snapshot */
	uint64_t swap_ns;       /* swapping the current pointer (reloaded only) */
	char error[256];
	char path[PATH_MAX];
};

/* Looks at t's directory again and swaps in a new snapshot when the
 * generation or the symlink target changed. Blocks (opens LMDB, builds the
 * chunk directory): call it off the serving loops. Reloads are serialized.
 * quiet: do not log or count a refusal of the version refused last time
 * (for the --watch poll). */
void ed_table_reload(struct ed_table *t, int quiet, struct ed_reload_result *res);

/* The table's row cache, or NULL. */
struct ed_rowcache *ed_table_cache(const struct ed_table *t);

#endif
