/* update.c - patching rows of a live table in place, from any process. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "eg_table.h"
#include "table_int.h"

/* (chunk, input index) pairs: sorting them groups the writes per chunk and
 * keeps input order inside a chunk, so a later duplicate slot wins. */
struct edit {
	uint64_t chunk;
	size_t idx;
};

static int edit_cmp(const void *a, const void *b)
{
	const struct edit *x = a, *y = b;

	if (x->chunk != y->chunk)
		return x->chunk < y->chunk ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Opens the environment read-write and reads its metadata. */
static int open_env(const char *path, MDB_env **env, eg_meta *m)
{
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	char *data = eg__join(path, "data.mdb");
	struct stat st;
	int rc;

	if (!data)
		return -ENOMEM;
	/* a short file would be initialised as a new environment by LMDB */
	rc = stat(data, &st) || !S_ISREG(st.st_mode) || st.st_size < 8192 ? EG_ENOTTABLE : 0;
	free(data);
	if (rc)
		return rc;
	if ((rc = eg__mdb(mdb_env_create(env))))
		return rc;
	mdb_env_set_maxdbs(*env, EG__MAXDBS);
	mdb_env_set_maxreaders(*env, EG__MAXREADERS);
	rc = eg__mdb(mdb_env_open(*env, path, MDB_NORDAHEAD, 0644));
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
		rc = EG_ENOTTABLE;
		goto out;
	}
	/* a reader that died (a table check that crashed, say) keeps its slot
	 * and with it old pages from reuse until someone clears it */
	if (rc == 0)
		mdb_reader_check(*env, NULL);
	if (rc || (rc = eg__mdb(mdb_txn_begin(*env, NULL, MDB_RDONLY, &txn))))
		goto out;
	rc = eg__mdb(mdb_dbi_open(txn, EG__DB_META, 0, &dbi));
	if (rc == MDB_NOTFOUND) {
		rc = EG_ENOTTABLE;
		goto out;
	}
	if (rc == 0)
		rc = eg__meta_read(txn, dbi, m);
out:
	if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

/* Copy-on-write needs room for a fresh copy of every touched chunk while
 * the old one may still be held by readers. That room is allocated on disk
 * first: a commit that runs out of space half-way through a write is
 * reported by LMDB as EIO, a reservation that does not fit is -ENOSPC and
 * nothing was written. The map grows too when the file could outgrow it. */
static int ensure_room(MDB_env *env, const eg_meta *m, uint64_t touched)
{
	MDB_envinfo info;
	MDB_stat st;
	uint64_t psize, need, used, chunk_pages;
	int rc, fd;

	if ((rc = eg__mdb(mdb_env_info(env, &info))) || (rc = eg__mdb(mdb_env_stat(env, &st))) ||
	    (rc = eg__mdb(mdb_env_get_fd(env, &fd))))
		return rc;
	psize = st.ms_psize;
	chunk_pages = (m->chunk_slots * m->row_bytes + 16 + psize - 1) / psize + 2;
	used = ((uint64_t)info.me_last_pgno + 1) * psize;
	need = used + (touched * (chunk_pages + 4) + 256) * psize;
	if ((rc = posix_fallocate(fd, (off_t)used, (off_t)(need - used))))
		return -rc; /* the errno value itself, positive */
	if (need <= info.me_mapsize)
		return 0;
	need += need / 8;
	need = (need + psize - 1) / psize * psize;
	return eg__mdb(mdb_env_set_mapsize(env, (size_t)need));
}

static int apply(MDB_env *env, const eg_meta *m, const struct edit *e, size_t n,
                 const uint64_t *slots, const uint8_t *rows, uint64_t *gen)
{
	MDB_txn *txn = NULL;
	MDB_dbi rdb, sdb, mdb;
	uint8_t *buf, sum[8];
	const size_t rb = m->row_bytes;
	int rc;

	buf = malloc((m->slots < m->chunk_slots ? m->slots : m->chunk_slots) * rb);
	if (!buf)
		return -ENOMEM;
	if ((rc = eg__mdb(mdb_txn_begin(env, NULL, 0, &txn))) ||
	    (rc = eg__mdb(mdb_dbi_open(txn, EG__DB_ROWS, MDB_INTEGERKEY, &rdb))) ||
	    (rc = eg__mdb(mdb_dbi_open(txn, EG__DB_SUMS, MDB_INTEGERKEY, &sdb))) ||
	    (rc = eg__mdb(mdb_dbi_open(txn, EG__DB_META, 0, &mdb))))
		goto out;
	for (size_t i = 0; i < n;) {
		uint64_t chunk = e[i].chunk;
		MDB_val k = { sizeof chunk, &chunk }, v;
		MDB_val sv = { sizeof sum, sum };

		if ((rc = eg__mdb(mdb_get(txn, rdb, &k, &v))))
			goto out;
		if (v.mv_size != eg__chunk_rows(m, chunk) * rb) {
			rc = EG_EFORMAT;
			goto out;
		}
		/* a private copy: v points into the map (or a page this
		 * transaction may rewrite) */
		memcpy(buf, v.mv_data, v.mv_size);
		for (; i < n && e[i].chunk == chunk; i++) {
			uint64_t row = slots[e[i].idx] & (m->chunk_slots - 1);

			memcpy(buf + row * rb, rows + e[i].idx * rb, rb);
		}
		eg__put_le64(sum, XXH3_64bits(buf, v.mv_size));
		v.mv_data = buf;
		if ((rc = eg__mdb(eg__put(txn, rdb, &k, &v, 0))) ||
		    (rc = eg__mdb(eg__put(txn, sdb, &k, &sv, 0))))
			goto out;
	}
	if ((rc = eg__meta_put_generation(txn, mdb, m->generation + 1)))
		goto out;
	rc = eg__mdb(eg__commit(txn));
	txn = NULL;
	if (rc == 0)
		*gen = m->generation + 1;
out:
	if (txn)
		mdb_txn_abort(txn);
	free(buf);
	return rc;
}

int eg_table_update(const char *dir, const uint64_t *slots, size_t n,
                    const void *rows, size_t *bad, uint64_t *new_generation)
{
	MDB_env *env = NULL;
	struct edit *e = NULL;
	char *path;
	eg_meta m = { 0 };
	uint64_t gen = 0, touched = 0;
	int rc;

	path = realpath(dir, NULL);
	if (!path)
		return -errno;
	if ((rc = open_env(path, &env, &m)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] >= m.slots) {
			if (bad)
				*bad = i;
			rc = EG_ERANGE;
			goto out;
		}
	}
	if (n) {
		e = malloc(n * sizeof *e);
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		e[i].chunk = slots[i] / m.chunk_slots;
		e[i].idx = i;
	}
	if (n)
		qsort(e, n, sizeof *e, edit_cmp);
	for (size_t i = 0; i < n; i++)
		touched += i == 0 || e[i].chunk != e[i - 1].chunk;
	if ((rc = ensure_room(env, &m, touched)) ||
	    (rc = apply(env, &m, e, n, slots, rows, &gen)))
		goto out;
	if (new_generation)
		*new_generation = gen;
out:
	free(e);
	eg_meta_clear(&m);
	if (env)
		mdb_env_close(env);
	free(path);
	return rc;
}
