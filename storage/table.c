/* table.c - opening a table environment read-only. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "eg_table.h"
#include "table_int.h"

/* The reader maps twice the file plus 1 GiB: a writer (eg_table_update) that
 * grows the file then rarely outgrows the map, and adopting a grown map
 * needs no remap under snapshots that still hold row pointers. Address
 * space only; nothing is read until touched. */
static size_t reader_map_size(off_t file_size)
{
	uint64_t s = (uint64_t)file_size * 2 + (UINT64_C(1) << 30);
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (size_t)((s + page - 1) / page * page);
}

/* Maps LMDB's "this is no environment" answers to EG_ENOTTABLE. */
static int not_table(int rc)
{
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == -ENOENT ||
	    rc == MDB_INCOMPATIBLE || rc == MDB_NOTFOUND)
		return EG_ENOTTABLE;
	return rc;
}

/* Bytes of data.mdb that env's newest version uses: its pages up to the
 * last one. Returns 0 or EG_EFORMAT. */
static int used_bytes(MDB_env *env, uint64_t *out)
{
	MDB_envinfo info;
	MDB_stat st;

	if (mdb_env_info(env, &info) || mdb_env_stat(env, &st))
		return EG_EFORMAT;
	*out = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	return 0;
}

int eg__check_file_size(MDB_env *env, uint64_t *size)
{
	struct stat fst;
	uint64_t used;
	int fd;

	if (used_bytes(env, &used) || mdb_env_get_fd(env, &fd) || fstat(fd, &fst))
		return EG_EFORMAT;
	if ((uint64_t)fst.st_size < used)
		return EG_EFORMAT;
	if (size)
		*size = (uint64_t)fst.st_size;
	return 0;
}

/* Where LMDB mapped data.mdb. LMDB does not say (MDB_envinfo.me_mapaddr is
 * the address of a fixed map, 0 here); the kernel does: the mapping of
 * that file at offset 0 holding a pointer LMDB returned. */
int eg__find_map(MDB_env *env, const void *inside, const uint8_t **base)
{
	uintptr_t p = (uintptr_t)inside;
	struct stat st;
	char line[512];
	FILE *f;
	int fd, rc = EG_EFORMAT;

	if (mdb_env_get_fd(env, &fd) || fstat(fd, &st) || !(f = fopen("/proc/self/maps", "re")))
		return EG_EFORMAT;
	while (rc && fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off, ino;
		unsigned maj, min;

		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &min, &ino) == 6 &&
		    off == 0 && ino == st.st_ino && makedev(maj, min) == st.st_dev &&
		    p >= lo && p < hi) {
			*base = (const uint8_t *)lo;
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* What is refused before LMDB sees the directory: LMDB would create
 * lock.mdb in any directory, and initialise a data.mdb shorter than its two
 * meta pages as a new environment. */
static int check_files(const char *path, off_t *data_size)
{
	struct stat st;
	char *data;
	int rc = 0;

	if (stat(path, &st) || !S_ISDIR(st.st_mode))
		return EG_ENOTTABLE;
	if (!(data = eg__join(path, "data.mdb")))
		return -ENOMEM;
	if (stat(data, &st) || !S_ISREG(st.st_mode) || st.st_size < 8192)
		rc = EG_ENOTTABLE;
	else
		*data_size = st.st_size;
	free(data);
	return rc;
}

static int env_open(eg_table *t, off_t data_size)
{
	int rc;

	if ((rc = eg__mdb(mdb_env_create(&t->env))))
		return rc;
	mdb_env_set_maxdbs(t->env, EG__MAXDBS);
	mdb_env_set_maxreaders(t->env, EG__MAXREADERS);
	mdb_env_set_mapsize(t->env, reader_map_size(data_size));
	rc = eg__mdb(mdb_env_open(t->env, t->path, MDB_RDONLY | MDB_NORDAHEAD | MDB_NOTLS, 0644));
	if (rc)
		return not_table(rc);
	return eg__check_file_size(t->env, NULL);
}

/* Reads the metadata and opens the DBs; the read-only commit keeps the DBI
 * handles open in the environment. */
static int read_layout(eg_table *t)
{
	MDB_txn *txn;
	int rc;

	if ((rc = eg__mdb(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn))))
		return rc;
	if ((rc = not_table(eg__mdb(mdb_dbi_open(txn, EG__DB_META, 0, &t->meta_dbi)))) ||
	    (rc = eg__meta_read(txn, t->meta_dbi, &t->meta)))
		goto fail;
	rc = eg__mdb(mdb_dbi_open(txn, EG__DB_ROWS, MDB_INTEGERKEY, &t->rows));
	if (rc == 0)
		rc = eg__mdb(mdb_dbi_open(txn, EG__DB_SUMS, MDB_INTEGERKEY, &t->sums));
	if (rc) {
		rc = rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ? EG_EFORMAT : rc;
		goto fail;
	}
	return eg__mdb(mdb_txn_commit(txn));
fail:
	mdb_txn_abort(txn);
	return rc;
}

int eg_table_open(const char *dir, eg_table **out)
{
	eg_table *t = calloc(1, sizeof *t);
	off_t size = 0;
	int rc;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	if (!(t->path = realpath(dir, NULL)))
		rc = -errno;
	else if ((rc = check_files(t->path, &size)) == 0 && (rc = env_open(t, size)) == 0)
		rc = read_layout(t);
	if (rc) {
		eg_table_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

void eg_table_close(eg_table *t)
{
	if (!t)
		return;
	if (t->env)
		mdb_env_close(t->env);
	eg_meta_clear(&t->meta);
	pthread_mutex_destroy(&t->lock);
	free(t->path);
	free(t);
}

const char *eg_table_path(const eg_table *t)
{
	return t->path;
}

int eg_table_disk_bytes(const eg_table *t, uint64_t *out)
{
	char *data = eg__join(t->path, "data.mdb");
	struct stat st;
	int rc = 0;

	if (!data)
		return -ENOMEM;
	if (stat(data, &st))
		rc = -errno;
	else
		*out = (uint64_t)st.st_blocks * 512;
	free(data);
	return rc;
}

int eg_table_used_bytes(eg_table *t, uint64_t *out)
{
	int rc;

	pthread_mutex_lock(&t->lock); /* not while a snapshot remaps */
	rc = used_bytes(t->env, out);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Called with t->lock held when a writer grew the file past our map and no
 * other snapshot holds pointers into it: remap with fresh headroom. */
int eg__table_adopt_map(eg_table *t)
{
	char *data = eg__join(t->path, "data.mdb");
	struct stat st;
	int rc;

	if (!data)
		return -ENOMEM;
	rc = stat(data, &st) ? -errno : 0;
	free(data);
	if (rc)
		return rc;
	t->map = NULL; /* found again by the next snapshot */
	return eg__mdb(mdb_env_set_mapsize(t->env, reader_map_size(st.st_size)));
}
