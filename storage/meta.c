/* meta.c - the "meta" DB: table description encoding, layouts, error names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "eg_table.h"
#include "table_int.h"

const char *eg_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case EG_ENOTTABLE: return "not an engram table (or its build never finished)";
	case EG_EFORMAT: return "table metadata is malformed or of an unknown format version";
	case EG_ERANGE: return "slot out of range";
	case EG_ECHECKSUM: return "chunk checksum mismatch";
	case EG_EINVAL: return "invalid argument";
	case EG_EEXIST: return "destination already holds a table";
	case EG_EHASH: return "invalid hash spec";
	case EG_ETOKEN: return "token id outside the vocabulary map";
	case EG_ECORRUPT: return "the table's file is damaged";
	case EG_ECKPT: return "malformed checkpoint file, or no such tensor in it";
	}
	if (err >= -39999 && err <= -39900)
		return "unknown engram error";
	if (err >= MDB_KEYEXIST && err <= MDB_LAST_ERRCODE)
		return mdb_strerror(err);
	/* errno values; a positive one never comes from this library, but
	 * naming it costs nothing */
	return strerror(err < 0 ? -err : err);
}

static const char *const dtype_names[] = {
	[EG_DTYPE_F32] = "f32", [EG_DTYPE_F16] = "f16", [EG_DTYPE_BF16] = "bf16",
	[EG_DTYPE_E4M3] = "e4m3", [EG_DTYPE_U8] = "u8",
};

const char *eg_dtype_name(eg_dtype t)
{
	if ((unsigned)t >= sizeof dtype_names / sizeof dtype_names[0])
		return NULL;
	return dtype_names[t];
}

int eg_dtype_parse(const char *name, eg_dtype *out)
{
	if (!name)
		return EG_EINVAL;
	for (unsigned i = 1; i < sizeof dtype_names / sizeof dtype_names[0]; i++) {
		if (dtype_names[i] && strcmp(name, dtype_names[i]) == 0) {
			*out = (eg_dtype)i;
			return 0;
		}
	}
	return EG_EINVAL;
}

uint32_t eg_row_bytes(eg_dtype dtype, uint32_t dim, uint32_t scale_block)
{
	uint64_t b;

	if (dim == 0)
		return 0;
	if (scale_block && (dtype != EG_DTYPE_E4M3 || dim % scale_block))
		return 0;
	switch (dtype) {
	case EG_DTYPE_F32: b = (uint64_t)dim * 4; break;
	case EG_DTYPE_F16:
	case EG_DTYPE_BF16: b = (uint64_t)dim * 2; break;
	case EG_DTYPE_E4M3: b = (uint64_t)dim + (scale_block ? dim / scale_block : 0); break;
	case EG_DTYPE_U8: b = dim; break;
	default: return 0;
	}
	return b > UINT32_MAX ? 0 : (uint32_t)b;
}

void eg_meta_clear(eg_meta *meta)
{
	free(meta->hash_spec);
	meta->hash_spec = NULL;
}

uint64_t eg__nchunks(const eg_meta *m)
{
	return m->slots / m->chunk_slots + (m->slots % m->chunk_slots != 0);
}

uint64_t eg__chunk_rows(const eg_meta *m, uint64_t chunk)
{
	uint64_t first = chunk * m->chunk_slots;

	if (first >= m->slots)
		return 0;
	return m->slots - first < m->chunk_slots ? m->slots - first : m->chunk_slots;
}

void eg__put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t eg__get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

char *eg__join(const char *dir, const char *file)
{
	size_t a = strlen(dir), b = strlen(file);
	char *p = malloc(a + b + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, file, b + 1);
	return p;
}

int eg__meta_check(eg_meta *m)
{
	uint64_t first_chunk;

	if (strnlen(m->name, sizeof m->name) > EG_NAME_MAX)
		return EG_EINVAL;
	m->row_bytes = eg_row_bytes(m->dtype, m->dim, m->scale_block);
	if (m->row_bytes == 0 || m->slots == 0)
		return EG_EINVAL;
	if (m->chunk_slots == 0 || (m->chunk_slots & (m->chunk_slots - 1)) ||
	    m->chunk_slots > (UINT64_C(1) << 32))
		return EG_EINVAL;
	if (m->slots > UINT64_MAX / m->row_bytes)
		return EG_EINVAL;
	/* LMDB keeps a value's size in 32 bits */
	first_chunk = m->slots < m->chunk_slots ? m->slots : m->chunk_slots;
	if (first_chunk * m->row_bytes > UINT32_MAX)
		return EG_EINVAL;
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static int get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *v)
{
	MDB_val k = { strlen(key), (void *)key };

	return eg__mdb(mdb_get(txn, dbi, &k, v));
}

static int get_uint(MDB_txn *txn, MDB_dbi dbi, const char *key, size_t width,
                    uint64_t *out)
{
	MDB_val v;
	uint8_t b[8] = { 0 };
	int rc = get(txn, dbi, key, &v);

	if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != width))
		return EG_EFORMAT;
	if (rc)
		return rc;
	memcpy(b, v.mv_data, width);
	*out = eg__get_le64(b);
	return 0;
}

static int get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
{
	uint64_t v;
	int rc = get_uint(txn, dbi, key, 4, &v);

	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* A string value (UTF-8, no NUL inside) into buf of cap bytes (with NUL). */
static int get_str(MDB_txn *txn, MDB_dbi dbi, const char *key, char *buf, size_t cap)
{
	MDB_val v;
	int rc = get(txn, dbi, key, &v);

	if (rc == MDB_NOTFOUND)
		return EG_EFORMAT;
	if (rc)
		return rc;
	if (v.mv_size >= cap || memchr(v.mv_data, 0, v.mv_size))
		return EG_EFORMAT;
	memcpy(buf, v.mv_data, v.mv_size);
	buf[v.mv_size] = 0;
	return 0;
}

int eg__meta_read(MDB_txn *txn, MDB_dbi dbi, eg_meta *out)
{
	eg_meta m;
	char dtype[16];
	uint64_t created;
	uint32_t row_bytes;
	MDB_val v;
	int rc;

	memset(&m, 0, sizeof m);
	rc = get_u32(txn, dbi, "format_version", &m.format_version);
	if (rc == EG_EFORMAT)
		return EG_ENOTTABLE; /* written last: its absence is a dead build */
	if (rc)
		return rc;
	if (m.format_version != EG_FORMAT_VERSION)
		return EG_EFORMAT;
	if ((rc = get_str(txn, dbi, "name", m.name, sizeof m.name)) ||
	    (rc = get_uint(txn, dbi, "slots", 8, &m.slots)) ||
	    (rc = get_u32(txn, dbi, "dim", &m.dim)) ||
	    (rc = get_str(txn, dbi, "dtype", dtype, sizeof dtype)) ||
	    (rc = get_u32(txn, dbi, "scale_block", &m.scale_block)) ||
	    (rc = get_u32(txn, dbi, "row_bytes", &row_bytes)) ||
	    (rc = get_uint(txn, dbi, "chunk_slots", 8, &m.chunk_slots)) ||
	    (rc = get_uint(txn, dbi, "generation", 8, &m.generation)) ||
	    (rc = get_uint(txn, dbi, "created", 8, &created)))
		return rc;
	m.created = (int64_t)created;
	if (eg_dtype_parse(dtype, &m.dtype) || eg__meta_check(&m) ||
	    m.row_bytes != row_bytes || m.generation == 0)
		return EG_EFORMAT;
	rc = get(txn, dbi, "hash_spec", &v);
	if (rc == 0) {
		if (memchr(v.mv_data, 0, v.mv_size))
			return EG_EFORMAT;
		m.hash_spec = malloc(v.mv_size + 1);
		if (!m.hash_spec)
			return -ENOMEM;
		memcpy(m.hash_spec, v.mv_data, v.mv_size);
		m.hash_spec[v.mv_size] = 0;
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	*out = m;
	return 0;
}

static int put_bytes(MDB_txn *txn, MDB_dbi dbi, const char *key,
                     const void *data, size_t len)
{
	MDB_val k = { strlen(key), (void *)key };
	MDB_val v = { len, (void *)data };

	return eg__mdb(eg__put(txn, dbi, &k, &v, 0));
}

static int put_uint(MDB_txn *txn, MDB_dbi dbi, const char *key, size_t width,
                    uint64_t val)
{
	uint8_t b[8];

	eg__put_le64(b, val);
	return put_bytes(txn, dbi, key, b, width);
}

int eg__meta_put_generation(MDB_txn *txn, MDB_dbi dbi, uint64_t gen)
{
	return put_uint(txn, dbi, "generation", 8, gen);
}

int eg__meta_write(MDB_txn *txn, MDB_dbi dbi, const eg_meta *m)
{
	const char *dt = eg_dtype_name(m->dtype);
	int rc;

	if ((rc = put_bytes(txn, dbi, "name", m->name, strlen(m->name))) ||
	    (rc = put_uint(txn, dbi, "slots", 8, m->slots)) ||
	    (rc = put_uint(txn, dbi, "dim", 4, m->dim)) ||
	    (rc = put_bytes(txn, dbi, "dtype", dt, strlen(dt))) ||
	    (rc = put_uint(txn, dbi, "scale_block", 4, m->scale_block)) ||
	    (rc = put_uint(txn, dbi, "row_bytes", 4, m->row_bytes)) ||
	    (rc = put_uint(txn, dbi, "chunk_slots", 8, m->chunk_slots)) ||
	    (rc = put_uint(txn, dbi, "generation", 8, m->generation)) ||
	    (rc = put_uint(txn, dbi, "created", 8, (uint64_t)m->created)))
		return rc;
	if (m->hash_spec &&
	    (rc = put_bytes(txn, dbi, "hash_spec", m->hash_spec, strlen(m->hash_spec))))
		return rc;
	/* the marker of a finished table; same transaction as the rest */
	return put_uint(txn, dbi, "format_version", 4, m->format_version);
}
