/* build.c - writing a new table chunk by chunk, straight into the map. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "eg_hash.h"
#include "eg_table.h"
#include "table_int.h"

int (*eg__put)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int) = mdb_put;
int (*eg__commit)(MDB_txn *) = mdb_txn_commit;
/* Committing now and then bounds what one transaction holds (dirty page
 * list, spill); the chunk count bound matters for small chunks. */
uint64_t eg__build_commit_bytes = UINT64_C(1) << 30;
#define COMMIT_CHUNKS 32768
/* Below this the dirty pages of a transaction are cheap to keep in memory;
 * above, MDB_WRITEMAP lets the kernel write them back as it likes. */
uint64_t eg__build_writemap_min = UINT64_C(64) << 20;
/* A write through a shared mapping into a block the filesystem cannot
 * allocate is SIGBUS, not an error: the builder allocates the whole map on
 * disk before it writes (tests of huge sparse tables turn this off). */
int eg__build_reserve = 1;

struct eg_builder {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi rows, sums;
	char *path;
	eg_meta meta;
	uint64_t nchunks;
	uint64_t next;        /* chunks reserved so far */
	void *cur;            /* the last reserved chunk, not yet summed */
	size_t cur_bytes;
	uint64_t txn_bytes, txn_chunks;
	uint64_t used_bytes;  /* of data.mdb, known once finished */
	int err;              /* sticky: the builder must be aborted */
	int writemap;         /* rows are written through a shared map of the file */
	eg_progress_fn progress;
	void *progress_arg;
};

/* Bytes a chunk value of len bytes takes in the map: overflow pages (with
 * their header) for large values, else a share of leaf pages that may be
 * only half full. */
static uint64_t chunk_space(uint64_t len, uint64_t psize)
{
	if (len * 4 > psize)
		return (len + 16 + psize - 1) / psize * psize;
	return 2 * (len + 24);
}

static size_t map_size(const eg_meta *m)
{
	uint64_t psize = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t n = eg__nchunks(m), full = m->slots / m->chunk_slots;
	uint64_t total = full * chunk_space(m->chunk_slots * m->row_bytes, psize);

	if (n > full)
		total += chunk_space(eg__chunk_rows(m, full) * m->row_bytes, psize);
	/* rows and sums leaf entries plus branch pages, then slack for the
	 * pages the periodic commits free and the free list itself */
	total += n * 128;
	total += total / 64 + 64 * psize + (UINT64_C(1) << 20);
	return (size_t)((total + psize - 1) / psize * psize);
}

enum { DIR_EMPTY, DIR_DEAD_BUILD, DIR_OCCUPIED };

/* What data.mdb in path is: absent, an engram build that never finished
 * (safe to remove), or anything else (a table, a foreign LMDB env, junk),
 * which is never touched. */
static int classify(const char *path, const char *data)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_stat st;
	MDB_val k = { 14, (void *)"format_version" }, v;
	struct stat fst;
	int rc, kind = DIR_OCCUPIED;

	if (stat(data, &fst))
		return errno == ENOENT ? DIR_EMPTY : DIR_OCCUPIED;
	if (!S_ISREG(fst.st_mode))
		return DIR_OCCUPIED;
	if (fst.st_size == 0)
		return DIR_DEAD_BUILD;
	if (mdb_env_create(&env))
		return DIR_OCCUPIED;
	mdb_env_set_maxdbs(env, EG__MAXDBS);
	if (mdb_env_open(env, path, MDB_RDONLY, 0644) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		goto out;
	if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 &&
	    mdb_stat(txn, dbi, &st) == 0 && st.ms_entries == 0) {
		kind = DIR_DEAD_BUILD; /* died before its first commit */
		goto out;
	}
	if (mdb_dbi_open(txn, EG__DB_ROWS, MDB_INTEGERKEY, &dbi))
		goto out;
	rc = eg__mdb(mdb_dbi_open(txn, EG__DB_META, 0, &dbi));
	if (rc == MDB_NOTFOUND ||
	    (rc == 0 && eg__mdb(mdb_get(txn, dbi, &k, &v)) == MDB_NOTFOUND))
		kind = DIR_DEAD_BUILD;
out:
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return kind;
}

/* Makes dir (one level) and clears a dead build out of it. */
static int prepare_dir(const char *dir, char **path_out)
{
	char *path = NULL, *data = NULL, *lock = NULL;
	int rc = 0;

	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	path = realpath(dir, NULL);
	if (!path)
		return -errno;
	data = eg__join(path, "data.mdb");
	lock = eg__join(path, "lock.mdb");
	if (!data || !lock) {
		rc = -ENOMEM;
		goto out;
	}
	switch (classify(path, data)) {
	case DIR_OCCUPIED:
		rc = EG_EEXIST;
		goto out;
	case DIR_DEAD_BUILD:
		if (unlink(data) || (unlink(lock) && errno != ENOENT))
			rc = -errno;
		break;
	}
out:
	free(data);
	free(lock);
	if (rc)
		free(path);
	else
		*path_out = path;
	return rc;
}

/* Checks and canonicalises the hash spec; the table must have its slots. */
static int check_hash(const eg_meta *m, char **out)
{
	eg_hash *h;
	int rc = 0;

	*out = NULL;
	if (!m->hash_spec)
		return 0;
	if (eg_hash_parse(m->hash_spec, NULL, &h, NULL, 0))
		return EG_EHASH;
	if (eg_hash_table_slots(h) != m->slots)
		rc = EG_EHASH;
	else if (!(*out = eg_hash_to_json(h)))
		rc = -ENOMEM;
	eg_hash_free(h);
	return rc;
}

static void remove_files(const char *path)
{
	char *data = eg__join(path, "data.mdb"), *lock = eg__join(path, "lock.mdb");

	if (data)
		unlink(data);
	if (lock)
		unlink(lock);
	free(data);
	free(lock);
}

/* Allocates the file's blocks for the whole map, so that a full disk is
 * -ENOSPC here and never a fault while rows are written through the map
 * (MDB_WRITEMAP) or a short write in a commit (reported by LMDB as EIO).
 * The unused tail is given back by finish. */
static int reserve(eg_builder *b, size_t size)
{
	int fd, rc;

	if (!eg__build_reserve)
		return 0;
	if ((rc = eg__mdb(mdb_env_get_fd(b->env, &fd))))
		return rc;
	rc = posix_fallocate(fd, 0, (off_t)size);
	return -rc; /* posix_fallocate returns the errno value itself */
}

static void builder_free(eg_builder *b)
{
	if (b->txn)
		mdb_txn_abort(b->txn);
	if (b->env)
		mdb_env_close(b->env);
	eg_meta_clear(&b->meta);
	free(b->path);
	free(b);
}

int eg_builder_open(const char *dir, const eg_meta *meta, eg_builder **out)
{
	eg_builder *b;
	unsigned flags = MDB_NOSYNC; /* read-ahead helps the checksum pass */
	size_t size;
	int rc;

	b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->meta = *meta;
	b->meta.hash_spec = NULL;
	if (b->meta.chunk_slots == 0)
		b->meta.chunk_slots = EG_DEFAULT_CHUNK_SLOTS;
	b->meta.format_version = EG_FORMAT_VERSION;
	b->meta.generation = meta->generation ? meta->generation : 1;
	b->meta.created = (int64_t)time(NULL);
	if (memchr(meta->name, 0, sizeof meta->name) == NULL) {
		rc = EG_EINVAL;
		goto fail;
	}
	if ((rc = eg__meta_check(&b->meta)) || (rc = check_hash(meta, &b->meta.hash_spec)))
		goto fail;
	b->nchunks = eg__nchunks(&b->meta);
	if ((rc = prepare_dir(dir, &b->path)))
		goto fail;
	size = map_size(&b->meta);
	if (b->meta.slots * b->meta.row_bytes >= eg__build_writemap_min) {
		flags |= MDB_WRITEMAP;
		b->writemap = 1;
	}
	if ((rc = eg__mdb(mdb_env_create(&b->env))))
		goto fail_files;
	mdb_env_set_maxdbs(b->env, EG__MAXDBS);
	mdb_env_set_maxreaders(b->env, EG__MAXREADERS);
	if ((rc = eg__mdb(mdb_env_set_mapsize(b->env, size))) ||
	    (rc = eg__mdb(mdb_env_open(b->env, b->path, flags, 0644))) ||
	    (rc = reserve(b, size)) ||
	    (rc = eg__mdb(mdb_txn_begin(b->env, NULL, 0, &b->txn))) ||
	    (rc = eg__mdb(mdb_dbi_open(b->txn, EG__DB_ROWS, MDB_CREATE | MDB_INTEGERKEY,
	                               &b->rows))) ||
	    (rc = eg__mdb(mdb_dbi_open(b->txn, EG__DB_SUMS, MDB_CREATE | MDB_INTEGERKEY,
	                               &b->sums))))
		goto fail_files;
	*out = b;
	return 0;
fail_files:
	remove_files(b->path);
fail:
	builder_free(b);
	return rc;
}

void eg_builder_set_progress(eg_builder *b, eg_progress_fn fn, void *arg)
{
	b->progress = fn;
	b->progress_arg = arg;
}

uint64_t eg_builder_chunks(const eg_builder *b)
{
	return b->nchunks;
}

uint64_t eg_builder_chunk_rows(const eg_builder *b, uint64_t chunk)
{
	return eg__chunk_rows(&b->meta, chunk);
}

/* Unmaps the whole pages of a written chunk from this process: they stay in
 * the page cache (a shared file mapping loses nothing), so a build's RSS
 * does not grow with the table. The chunk's first page, which holds LMDB's
 * page header, stays mapped. */
static void release_chunk(const void *p, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)p + len) & ~(page - 1);

	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Checksums the chunk the caller just filled (before any later put can
 * move a small value inside its leaf page). */
static int seal_chunk(eg_builder *b)
{
	uint64_t key = b->next - 1;
	uint8_t sum[8];
	MDB_val k = { sizeof key, &key }, v = { sizeof sum, sum };
	int rc;

	if (!b->cur)
		return 0;
	eg__put_le64(sum, XXH3_64bits(b->cur, b->cur_bytes));
	if (b->writemap)
		release_chunk(b->cur, b->cur_bytes);
	b->cur = NULL;
	if ((rc = eg__mdb(eg__put(b->txn, b->sums, &k, &v, MDB_APPEND))))
		return rc;
	if (b->progress)
		b->progress(b->progress_arg, b->next, b->nchunks);
	return 0;
}

static int commit(eg_builder *b)
{
	int rc = eg__mdb(eg__commit(b->txn));

	b->txn = NULL; /* a failed commit has freed the transaction too */
	b->txn_bytes = b->txn_chunks = 0;
	return rc;
}

int eg_builder_next_chunk(eg_builder *b, void **rows)
{
	uint64_t key = b->next;
	MDB_val k = { sizeof key, &key }, v;
	int rc;

	if (b->err)
		return b->err;
	if ((rc = seal_chunk(b)))
		goto fail;
	if (b->next == b->nchunks)
		return EG_EINVAL;
	if (b->txn_bytes >= eg__build_commit_bytes || b->txn_chunks >= COMMIT_CHUNKS) {
		if ((rc = commit(b)) ||
		    (rc = eg__mdb(mdb_txn_begin(b->env, NULL, 0, &b->txn))))
			goto fail;
	}
	v.mv_size = eg__chunk_rows(&b->meta, key) * b->meta.row_bytes;
	v.mv_data = NULL;
	if ((rc = eg__mdb(eg__put(b->txn, b->rows, &k, &v, MDB_APPEND | MDB_RESERVE))))
		goto fail;
	b->cur = v.mv_data;
	b->cur_bytes = v.mv_size;
	b->txn_bytes += v.mv_size;
	b->txn_chunks++;
	b->next++;
	*rows = v.mv_data;
	return 0;
fail:
	b->err = rc;
	return rc;
}

/* The rows are made durable before the commit that writes the metadata, so
 * a crash can never leave metadata that points at rows not on disk. */
static int finish(eg_builder *b)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_dbi meta;
	int rc, fd;

	if (b->err)
		return b->err;
	if (b->next != b->nchunks)
		return EG_EINVAL;
	if ((rc = seal_chunk(b)) || (rc = commit(b)) ||
	    (rc = eg__mdb(mdb_env_sync(b->env, 1))) ||
	    (rc = eg__mdb(mdb_txn_begin(b->env, NULL, 0, &b->txn))) ||
	    (rc = eg__mdb(mdb_dbi_open(b->txn, EG__DB_META, MDB_CREATE, &meta))) ||
	    (rc = eg__meta_write(b->txn, meta, &b->meta)) ||
	    (rc = commit(b)) ||
	    (rc = eg__mdb(mdb_env_sync(b->env, 1))) ||
	    (rc = eg__mdb(mdb_env_info(b->env, &info))) ||
	    (rc = eg__mdb(mdb_env_stat(b->env, &st))))
		return rc;
	b->used_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	fd = open(b->path, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd); /* the new files' directory entries */
		close(fd);
	}
	return 0;
}

/* Gives back the map beyond the last page in use (reserved, or a sparse
 * tail LMDB made for MDB_WRITEMAP) once the environment is closed and
 * nothing maps the file. A failure only leaves the file bigger. */
static void trim(const char *path, uint64_t used)
{
	char *data = eg__join(path, "data.mdb");

	if (data && truncate(data, (off_t)used) == 0) {
		int fd = open(data, O_RDONLY);

		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	free(data);
}

int eg_builder_finish(eg_builder *b)
{
	int rc = finish(b);

	if (rc) {
		eg_builder_abort(b);
		return rc;
	}
	mdb_env_close(b->env);
	b->env = NULL;
	trim(b->path, b->used_bytes);
	builder_free(b);
	return 0;
}

void eg_builder_abort(eg_builder *b)
{
	if (!b)
		return;
	if (b->txn) {
		mdb_txn_abort(b->txn);
		b->txn = NULL;
	}
	mdb_env_close(b->env);
	b->env = NULL;
	remove_files(b->path);
	builder_free(b);
}
