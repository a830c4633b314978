/* table_int.h - internals shared by the storage files (not installed).
 *
 * Names here are eg__ (internal, non-static). Nothing outside storage/ and
 * its own tests may include this header.
 */
#ifndef EG_TABLE_INT_H
#define EG_TABLE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include "eg_table.h"

/* Names of the named DBs and of the "meta" keys (docs/FORMAT.md). */
#define EG__DB_ROWS "rows"
#define EG__DB_META "meta"
#define EG__DB_SUMS "sums"

#define EG__MAXDBS 4
/* The daemon holds several snapshots (read transactions) per table at once,
 * across threads; every one takes a reader slot. */
#define EG__MAXREADERS 1024

struct eg_table {
	MDB_env *env;
	MDB_dbi rows, meta_dbi, sums;
	char *path;            /* resolved directory */
	eg_meta meta;          /* as read at open: the layout never changes */
	pthread_mutex_t lock;  /* guards live and remapping */
	unsigned live;         /* snapshots open or being opened */
	const uint8_t *map;    /* where LMDB mapped data.mdb, once a snapshot found
	                          it; NULL again after a remap; under lock */
};

struct eg_snapshot {
	eg_table *t;
	MDB_txn *txn;
	eg_meta meta;
	uint64_t nchunks;
	uint64_t mask;         /* chunk_slots - 1 */
	unsigned shift;        /* log2(chunk_slots) */
	uint32_t row_bytes;
	const uint8_t **dir;   /* chunk i's rows, inside the map */
	uint64_t *sums;        /* stored checksum of chunk i */
	const uint8_t *map;    /* the map's start */
	uint64_t file_bytes;   /* of the file mapped there, at begin */
};

/* Failure seams: every write of the builder and of eg_table_update goes
 * through these, so tests can inject what LMDB returns on a full disk or
 * map (ENOSPC, positive, or MDB_MAP_FULL). They default to mdb_put and
 * mdb_txn_commit; their results pass through eg__mdb like any LMDB call. */
extern int (*eg__put)(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
                      unsigned int flags);
extern int (*eg__commit)(MDB_txn *txn);
/* Builder tunables (tests shrink them to exercise the large-build paths). */
extern uint64_t eg__build_commit_bytes; /* commit after this many chunk bytes */
extern uint64_t eg__build_writemap_min; /* MDB_WRITEMAP from this table size */
extern int eg__build_reserve;           /* allocate the file's blocks first (1) */

/* The one conversion of LMDB's error convention: LMDB returns errno values
 * positive (ENOSPC, EIO, ENOENT...) and its own MDB_* codes negative; this
 * library returns errno values negative (eg_table.h). Every int an mdb_*
 * call (or a seam above) returns goes through eg__mdb right where it is
 * returned, before it is compared with anything, so inside storage/ an
 * error is always in the library's range and never positive. */
static inline int eg__mdb(int rc)
{
	return rc > 0 ? -rc : rc;
}

/* Validates a layout (slots, dim, dtype, scale_block, chunk_slots, name) and
 * fills row_bytes. Returns 0 or EG_EINVAL. */
int eg__meta_check(eg_meta *m);
/* Reads the whole "meta" DB into *out (hash_spec malloc'd). EG_ENOTTABLE when
 * the table's build never finished (no format_version), EG_EFORMAT when a
 * key is missing, of the wrong size or out of range. */
int eg__meta_read(MDB_txn *txn, MDB_dbi dbi, eg_meta *out);
/* Writes every meta key of m. */
int eg__meta_write(MDB_txn *txn, MDB_dbi dbi, const eg_meta *m);
/* Writes only the generation key. */
int eg__meta_put_generation(MDB_txn *txn, MDB_dbi dbi, uint64_t gen);

/* EG_EFORMAT when data.mdb is shorter than the pages its newest meta page
 * says are in use (a truncated or half-copied file): reading those pages
 * through the map would fault (SIGBUS) instead of failing. Sets *size (may
 * be NULL) to the file's size in bytes. */
int eg__check_file_size(MDB_env *env, uint64_t *size);

/* ---- checking a table (pages.c, check.c) ------------------------------- */

/* Problems found by a check go to the caller's eg_check_fn, the first
 * EG__MAX_PROBLEMS of them; count has them all. */
#define EG__MAX_PROBLEMS 64
struct eg__report {
	eg_check_fn fn;
	void *arg;
	uint64_t count;
};
void eg__problem(struct eg__report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Tells the caller how many problems were not listed, if any. */
void eg__report_end(struct eg__report *r);

/* The two meta pages of the data.mdb open at fd, as mdb_env_open will read
 * them: 0, or EG_ECORRUPT with the problem reported, or -errno. */
int eg__check_metas(int fd, struct eg__report *r);

/* Walks every B-tree under the meta page of txnid (0: the newer meta
 * page) with pread, checking what LMDB's readers rely on (pages.c says
 * what). 0, EG_ECORRUPT with the problems reported, -EAGAIN when no meta
 * page holds txnid any more (a writer committed twice since), -errno. */
int eg__check_trees(int fd, uint64_t txnid, struct eg__report *r);

/* Sets *base to the start of the mapping of env's data.mdb that holds
 * inside (a pointer LMDB returned); EG_EFORMAT when it cannot be found. */
int eg__find_map(MDB_env *env, const void *inside, const uint8_t **base);

/* Remaps t's environment to the file's current size plus headroom; call
 * with t->lock held and no other snapshot open (table.c). */
int eg__table_adopt_map(eg_table *t);

/* Number of chunks and rows in chunk i for a layout. */
uint64_t eg__nchunks(const eg_meta *m);
uint64_t eg__chunk_rows(const eg_meta *m, uint64_t chunk);

/* Little-endian fixed-width integers. */
void eg__put_le64(uint8_t *p, uint64_t v);
uint64_t eg__get_le64(const uint8_t *p);

/* "<dir>/<file>", malloc'd; NULL on allocation failure. */
char *eg__join(const char *dir, const char *file);

#endif
