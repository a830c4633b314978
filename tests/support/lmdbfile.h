/* lmdbfile.h - finding and damaging the LMDB pages of a table's data.mdb,
 * for the corrupt-table tests and the fuzz corpus. Written from LMDB's
 * on-disk layout (0.9, 64-bit: page header, nodes, overflow pages, meta
 * pages) apart from storage/, so that the tests do not share the checker's
 * reading of the format. Helpers abort the test (ck_assert) on failure. */
#ifndef EGT_LMDBFILE_H
#define EGT_LMDBFILE_H

#include <stddef.h>
#include <stdint.h>

/* Damage of the kinds seen in the field. */
enum egt_damage {
	EGT_CHUNK_PAST_EOF,  /* a chunk's overflow page moved to the file's last page */
	EGT_DUPDATA,         /* a leaf node of rows flagged DUPDATA (no such DB here) */
	EGT_BRANCH_TO_META,  /* a branch node of rows pointing at page 0 */
	EGT_BRANCH_LOOP,     /* a branch node of rows pointing at its own page */
	EGT_NODE_OUTSIDE,    /* a leaf node of rows placed past the end of its page */
	EGT_TRUNCATED,       /* the file cut to half its pages */
	EGT_ZERO_META,       /* meta page 0 zeroed */
	EGT_CHUNK_GARBAGE,   /* bytes of a chunk's rows overwritten: only checksums see it */
	EGT_NDAMAGE
};

/* "chunk-past-eof", "dupdata", ... (for file names and messages). */
const char *egt_damage_name(enum egt_damage kind);

/* Whether kind applies to the table in dir: EGT_CHUNK_PAST_EOF needs
 * chunks of two or more overflow pages, the branch damages a rows tree of
 * depth 2 or more. */
int egt_damage_fits(const char *dir, enum egt_damage kind);

/* Damages the table in dir around chunk (a valid chunk index) and writes
 * into expect a piece of text the checker's description must contain
 * ("chunk 3", "reached from page 12", "meta page 0", ...). */
void egt_damage(const char *dir, enum egt_damage kind, uint64_t chunk, char *expect,
                size_t len);

#endif
