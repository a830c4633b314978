/* eg_table.h - the engram table format on LMDB: open, read, build, patch.
 *
 * A table version is one LMDB environment (a directory holding data.mdb and
 * lock.mdb). Rows of a fixed size are packed into chunks of chunk_slots
 * consecutive slots; named DB "rows" maps chunk index (u64, MDB_INTEGERKEY)
 * to the chunk's rows back to back, "meta" holds the table's description and
 * "sums" one xxh3-64 per chunk. docs/FORMAT.md describes the bytes.
 *
 * This library knows nothing of sockets. Threads: an eg_table and its
 * snapshots may be used from any thread; a snapshot is read-only and may be
 * read by many threads at once. A builder or an update belongs to one thread.
 *
 * Errors: every function that can fail returns int, 0 on success, and on
 * failure a negative value: a negative errno value (-ENOENT, -ENOSPC, -EIO,
 * ...), an LMDB MDB_* code (MDB_MAP_FULL, MDB_CORRUPTED, ...: negative, in
 * [MDB_KEYEXIST, MDB_LAST_ERRCODE] of lmdb.h) or one of the EG_E* codes
 * below. Never a positive value: what LMDB returns positive (errno values)
 * comes out negated. eg_strerror() names any of them.
 */
#ifndef EG_TABLE_H
#define EG_TABLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of this library; all lie in [-39999, -39900]. */
#define EG_ENOTTABLE  (-39900) /* directory is not an engram table (or its build never finished) */
#define EG_EFORMAT    (-39901) /* table metadata is malformed or of an unknown format version */
#define EG_ERANGE     (-39902) /* a slot is >= the table's slot count */
#define EG_ECHECKSUM  (-39903) /* a chunk does not match its stored checksum */
#define EG_EINVAL     (-39904) /* an argument is invalid (size, dtype, shape, power of two...) */
#define EG_EEXIST     (-39905) /* destination already holds a table */
#define EG_EHASH      (-39906) /* a hash spec is invalid or does not fit the table */
#define EG_ETOKEN     (-39907) /* a token id is outside the hash spec's vocabulary map */
#define EG_ECORRUPT   (-39908) /* the table's file is damaged: an LMDB page, a B-tree or a
                                  chunk's place in the file is invalid */
#define EG_ECKPT      (-39909) /* a checkpoint file (safetensors) is malformed or lacks
                                  the tensor asked for (eg_safetensors.h) */

/* Returns a static string describing err (any code a function here returns). */
const char *eg_strerror(int err);

#define EG_FORMAT_VERSION 1
#define EG_DEFAULT_CHUNK_SLOTS 65536u
#define EG_NAME_MAX 63

typedef enum eg_dtype {
	EG_DTYPE_F32 = 1,
	EG_DTYPE_F16 = 2,
	EG_DTYPE_BF16 = 3,
	EG_DTYPE_E4M3 = 4, /* fp8 e4m3fn; optional ue8m0 block scales, see eg_meta */
	EG_DTYPE_U8 = 5,   /* opaque bytes */
} eg_dtype;

/* "f32", "f16", "bf16", "e4m3", "u8"; NULL for an unknown value. */
const char *eg_dtype_name(eg_dtype t);
/* Parses a dtype name (as above); returns 0 and sets *out, or EG_EINVAL. */
int eg_dtype_parse(const char *name, eg_dtype *out);

/* A table's description, as stored in its "meta" DB. */
typedef struct eg_meta {
	uint32_t format_version; /* EG_FORMAT_VERSION */
	char name[EG_NAME_MAX + 1];
	uint64_t slots;        /* number of rows; slots are 0 .. slots-1 */
	uint32_t dim;          /* values per row */
	eg_dtype dtype;
	uint32_t scale_block;  /* e4m3 only: values per ue8m0 scale byte stored after
	                          the dim value bytes of each row; 0 = no scales */
	uint32_t row_bytes;    /* derived: eg_row_bytes(dtype, dim, scale_block) */
	uint64_t chunk_slots;  /* power of two */
	uint64_t generation;   /* starts at 1, bumped by every committed update */
	int64_t created;       /* unix seconds at build */
	char *hash_spec;       /* JSON text of the hash spec or NULL; owned by the
	                          struct's owner (see eg_meta_clear) */
} eg_meta;

/* Bytes of one row for a layout, or 0 when the layout is invalid
 * (dim 0, scale_block set for a dtype other than e4m3, or not dividing dim). */
uint32_t eg_row_bytes(eg_dtype dtype, uint32_t dim, uint32_t scale_block);

/* Frees meta->hash_spec and sets it NULL. */
void eg_meta_clear(eg_meta *meta);

/* ---- reading ---------------------------------------------------------- */

typedef struct eg_table eg_table;       /* an open environment (read-only) */
typedef struct eg_snapshot eg_snapshot; /* one read transaction + chunk directory */

/* Opens the table in directory dir read-only (MDB_RDONLY | MDB_NORDAHEAD |
 * MDB_NOTLS). dir may be a symlink; it is resolved once, here, and
 * eg_table_path() returns the resolved path. LMDB forbids opening one
 * environment twice per process: callers must not open the same resolved
 * directory twice at once.
 * Errors: -ENOENT, EG_ENOTTABLE, EG_EFORMAT, LMDB codes. On success *out is
 * owned by the caller and freed by eg_table_close(). */
int eg_table_open(const char *dir, eg_table **out);

/* Closes t. Every snapshot taken from t must have been closed first. */
void eg_table_close(eg_table *t);

/* The resolved directory t was opened from; valid until eg_table_close. */
const char *eg_table_path(const eg_table *t);

/* Begins a read transaction on t, reads the metadata and builds the chunk
 * directory (one mdb_get per chunk). When verify is non-zero every chunk's
 * checksum is recomputed as well (reads the whole table). Adopts a map grown
 * by a writer (MDB_MAP_RESIZED). *out is owned by the caller; it must be
 * closed with eg_snapshot_close() before eg_table_close(t).
 * Errors: EG_EFORMAT (meta malformed, chunk missing, of the wrong size or
 * not wholly inside the file), EG_ECHECKSUM, LMDB codes. */
int eg_snapshot_open(eg_table *t, int verify, eg_snapshot **out);

/* Called with a one-line description of each problem a check finds
 * ("chunk 3 does not match its checksum", "rows: page 17 ..."); the text
 * is valid only during the call. */
typedef void (*eg_check_fn)(void *arg, const char *problem);

/* eg_snapshot_open that also describes what it refuses through problem
 * (may be NULL): a chunk missing, of the wrong size, out of order or lying
 * outside the file, a checksum mismatch. Every chunk's place is checked
 * against the file's size whatever verify says, so no row pointer of an
 * open snapshot points past the end of the file. LMDB itself still trusts
 * the file's B-trees: open a version that was never checked only after
 * eg_table_check_isolated (below) passed. */
int eg_snapshot_open_report(eg_table *t, int verify, eg_check_fn problem, void *arg,
                            eg_snapshot **out);

/* Ends the read transaction; every row pointer taken from s becomes invalid. */
void eg_snapshot_close(eg_snapshot *s);

/* The snapshot's metadata; valid while s is open. */
const eg_meta *eg_snapshot_meta(const eg_snapshot *s);

/* Pointer to the row of slot (which must be < meta->slots), valid while s is
 * open. Never writes through it: the map is read-only. */
const void *eg_snapshot_row(const eg_snapshot *s, uint64_t slot);

/* Copies the rows of slots[0..n-1] back to back into out (n * row_bytes
 * bytes, caller-owned). Every slot is checked first; on EG_ERANGE nothing is
 * copied and *bad (if not NULL) is set to the index of the first bad slot. */
int eg_snapshot_gather(const eg_snapshot *s, const uint64_t *slots, size_t n,
                       void *out, size_t *bad);

/* Where a snapshot's rows live, for callers that read the data file
 * themselves instead of through the map (the daemon's I/O path). The row of
 * slot s starts at chunks[s >> shift] + (s & mask) * row_bytes; that address
 * minus map is its byte offset in data.mdb. Only addresses are computed from
 * it: nothing is read through the map. Valid while the snapshot is open. */
typedef struct eg_rowdir {
	const uint8_t *const *chunks;
	uint64_t nchunks;
	unsigned shift;
	uint64_t mask;
	uint32_t row_bytes;
	uint64_t slots;
	const uint8_t *map;    /* start of the data file's mapping; NULL when it
	                          could not be found (then offsets are unknown) */
	uint64_t file_bytes;   /* size of data.mdb when the snapshot began */
} eg_rowdir;

/* Fills *out for s. */
void eg_snapshot_rowdir(const eg_snapshot *s, eg_rowdir *out);

/* File offset of slot's row (slot < slots). */
static inline uint64_t eg_rowdir_offset(const eg_rowdir *d, uint64_t slot)
{
	return (uint64_t)(d->chunks[slot >> d->shift] - d->map) + (slot & d->mask) * d->row_bytes;
}

/* Opens t's data file (data.mdb) anew with open(2) flags (O_RDONLY is
 * implied; O_DIRECT for reads past the page cache). Returns the descriptor,
 * owned by the caller, or a negative errno. */
int eg_table_open_data(const eg_table *t, int flags);

/* Recomputes every chunk checksum. Calls bad_chunk(arg, chunk) for each
 * mismatch (may be NULL). Returns 0 when all match, EG_ECHECKSUM otherwise. */
int eg_snapshot_verify(const eg_snapshot *s,
                       void (*bad_chunk)(void *arg, uint64_t chunk), void *arg);

/* Bytes the table's files take on disk (data.mdb blocks allocated). */
int eg_table_disk_bytes(const eg_table *t, uint64_t *out);

/* Bytes at the start of data.mdb that the newest committed version uses
 * (LMDB's pages up to its last one; no older version uses more). A writer
 * sets room aside past them (eg_table_update preallocates), which holds no
 * row of any version. May run on any thread, also while snapshots begin.
 * Returns 0 or EG_EFORMAT (LMDB cannot say). */
int eg_table_used_bytes(eg_table *t, uint64_t *out);

/* ---- checking a table before trusting it --------------------------------
 *
 * LMDB trusts its file: a damaged B-tree page can make it abort or fault,
 * and a chunk that runs past the end of the file faults when read. The
 * check reads every page the current version uses with pread (no mapping,
 * no LMDB) and describes what is wrong; only then does it open the table
 * with LMDB and read the chunk directory (and, at EG_CHECK_CHECKSUMS,
 * every chunk). docs/FORMAT.md lists what is checked. */

#define EG_CHECK_STRUCTURE 1 /* meta pages, every B-tree page, every chunk's extent,
                                the metadata and the chunk directory */
#define EG_CHECK_CHECKSUMS 2 /* the above, and every chunk's checksum (reads every row) */

/* Checks the table in dir in this process at level EG_CHECK_*; problem
 * (may be NULL) receives each problem found (the first 64, then a count).
 * Returns 0 when the table can be opened and read safely, else
 * EG_ECORRUPT (pages or chunk places damaged), EG_ECHECKSUM, EG_EFORMAT,
 * EG_ENOTTABLE, -ENOENT, -EAGAIN (a writer kept committing during the
 * check), a negative errno or MDB_* code.
 * Not safe to call in a process that must survive a damaged table: the
 * page walk cannot fault, but the LMDB part after it runs on the
 * assumption that the walk saw everything LMDB relies on. Use
 * eg_table_check_isolated, which runs it in a child process.
 * The check registers as an LMDB reader (lock.mdb) while it walks, so a
 * concurrent eg_table_update cannot recycle the pages being read. */
int eg_table_check(const char *dir, int level, eg_check_fn problem, void *arg);

/* Runs eg_table_check in a child process and returns its result; a child
 * that dies of a signal or exits without a result means the table is
 * refused: EG_ECORRUPT, with problem() told "the check crashed (signal N:
 * ...)" and the first line the child printed. When argv is NULL the child
 * is a fork() of the caller: only for a process with one thread, since a
 * fork of a threaded process may inherit a lock another thread holds.
 * Otherwise argv (NULL-terminated, argv[0] a path) is started with
 * posix_spawn and must call eg_table_check_child(dir, level, 1) (the
 * daemon runs itself: /proc/self/exe --check-table DIR --level L). Blocks
 * until the child is done; no time limit (checksums read the whole table).
 * Errors of its own: negative errno (pipe, fork, spawn). */
int eg_table_check_isolated(const char *dir, int level, char *const argv[],
                            eg_check_fn problem, void *arg);

/* The child's side of eg_table_check_isolated: runs eg_table_check and
 * writes its problems and result to fd (the child's stdout); fatal signals
 * are set to their default first, so a crash is seen as one. Returns the
 * exit status for the child (0). */
int eg_table_check_child(const char *dir, int level, int fd);

/* ---- building --------------------------------------------------------- */

typedef struct eg_builder eg_builder;

/* Progress callback for long writes: done and total in chunks. */
typedef void (*eg_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* Creates a new table in dir (created if missing; must not hold a table:
 * EG_EEXIST). meta gives name, slots, dim, dtype, scale_block, chunk_slots,
 * hash_spec (copied) and generation (0 means 1: a version published to
 * replace another passes a higher one, so readers never see generations go
 * backwards); row_bytes, created and format_version are filled in. The map size is computed from the data size. Rows are
 * written chunk by chunk, in order, with MDB_APPEND | MDB_RESERVE straight
 * into the map. The metadata is written only by eg_builder_finish(): until
 * then the directory is not a table (eg_table_open gives EG_ENOTTABLE), so an
 * interrupted build never looks valid. *out is freed by finish or abort. */
int eg_builder_open(const char *dir, const eg_meta *meta, eg_builder **out);

/* Sets a progress callback (called after each chunk); optional. */
void eg_builder_set_progress(eg_builder *b, eg_progress_fn fn, void *arg);

/* Number of chunks the table will have, and rows in chunk i (the last chunk
 * may be short). */
uint64_t eg_builder_chunks(const eg_builder *b);
uint64_t eg_builder_chunk_rows(const eg_builder *b, uint64_t chunk);

/* Reserves the next chunk (chunks are written in order 0, 1, ...) and sets
 * *rows to its writable memory of chunk_rows * row_bytes bytes, valid until
 * the next call on b. The caller fills it completely. The previous chunk's
 * checksum is taken at this call. Errors: EG_EINVAL (all chunks written),
 * -ENOSPC / MDB_MAP_FULL, LMDB codes; the builder must then be aborted. */
int eg_builder_next_chunk(eg_builder *b, void **rows);

/* Writes checksums and metadata and commits. Fails with EG_EINVAL when not
 * every chunk was written. Frees b whatever the result. */
int eg_builder_finish(eg_builder *b);

/* Drops everything written; the directory keeps no table. Frees b. */
void eg_builder_abort(eg_builder *b);

/* ---- patching in place ------------------------------------------------ */

/* Rewrites the rows of slots[0..n-1] with rows (n * row_bytes, row layout of
 * the table) in one write transaction on the table in dir, from any process,
 * while readers serve: touched chunks are rewritten (copy-on-write), their
 * checksums updated, generation bumped; readers keep their snapshot until
 * they take a new one. A later duplicate slot wins. On success and when
 * new_generation is not NULL it receives the committed generation.
 * Errors: EG_ERANGE (*bad = index of first bad slot, nothing written),
 * EG_ENOTTABLE, LMDB codes (nothing written). */
int eg_table_update(const char *dir, const uint64_t *slots, size_t n,
                    const void *rows, size_t *bad, uint64_t *new_generation);

#ifdef __cplusplus
}
#endif
#endif
