/* lmdbfile.c - LMDB pages of a table's data.mdb, found and damaged by hand
 * (see lmdbfile.h). Page: page number (8), pad (2), flags (2), lower and
 * upper bounds of its free space (2 + 2, or the page count of an overflow
 * page), node offsets from byte 16. Node: data size or child page (lo,
 * hi, and for a branch the flags word as the top 16 bits), flags, key
 * size, key, data (an overflow page number when flagged BIGDATA). Meta
 * page: header, magic, version, fixed address, map size, the free list's
 * and the main DB's records (48 bytes: pad = page size for the free list,
 * flags, depth, page counts, entries, root), last page, txnid. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdbfile.h"

#define HDR 16
#define BRANCH 0x01
#define BIGDATA 0x01
#define SUBDATA 0x02
#define DUPDATA 0x04

struct file {
	char path[512];
	uint8_t *b;
	size_t len;
	uint32_t psize;
	uint64_t last_pg;
	uint64_t main_root;
};

static uint16_t u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void load(const char *dir, struct file *f)
{
	struct stat st;
	int fd;
	const uint8_t *m0, *m1, *m;

	snprintf(f->path, sizeof f->path, "%s/data.mdb", dir);
	fd = open(f->path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	f->len = (size_t)st.st_size;
	f->b = malloc(f->len);
	ck_assert_ptr_nonnull(f->b);
	ck_assert_int_eq(pread(fd, f->b, f->len, 0), (ssize_t)f->len);
	close(fd);
	m0 = f->b + HDR;
	ck_assert_uint_eq(u32(m0), 0xBEEFC0DEu);
	f->psize = u32(m0 + 24);
	m1 = f->b + f->psize + HDR;
	m = u64(m1 + 128) > u64(m0 + 128) ? m1 : m0; /* the newer txnid */
	f->last_pg = u64(m + 120);
	f->main_root = u64(m + 24 + 48 + 40);
}

static void store(struct file *f)
{
	int fd = open(f->path, O_WRONLY | O_TRUNC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, f->b, f->len, 0), (ssize_t)f->len);
	close(fd);
	free(f->b);
	f->b = NULL;
}

static uint8_t *page(struct file *f, uint64_t pg)
{
	ck_assert_uint_lt((pg + 1) * f->psize, f->len + 1);
	return f->b + pg * f->psize;
}

static unsigned nkeys(const uint8_t *p) { return (u16(p + 12) - HDR) / 2; }
static uint8_t *node(uint8_t *p, unsigned i) { return p + u16(p + HDR + 2 * i); }
static uint64_t child(const uint8_t *n)
{
	return u16(n) | (uint64_t)u16(n + 2) << 16 | (uint64_t)u16(n + 4) << 32;
}

/* Root and depth of a named DB, from its record in the main DB's leaf. */
static uint64_t db_root(struct file *f, const char *name, unsigned *depth)
{
	uint8_t *p = page(f, f->main_root);

	ck_assert_msg(!(u16(p + 10) & BRANCH), "a main DB deeper than one page");
	for (unsigned i = 0; i < nkeys(p); i++) {
		uint8_t *n = node(p, i);

		if (u16(n + 6) == strlen(name) && memcmp(n + 8, name, strlen(name)) == 0) {
			ck_assert(u16(n + 4) & SUBDATA);
			*depth = u16(n + 8 + u16(n + 6) + 6);
			return u64(n + 8 + u16(n + 6) + 40);
		}
	}
	ck_abort_msg("no DB %s", name);
	return 0;
}

/* The leaf node of integer key in DB name; *pg its page, *idx its index. */
static uint8_t *find(struct file *f, const char *name, uint64_t key, uint64_t *pg,
                     unsigned *idx)
{
	unsigned depth;
	uint64_t at = db_root(f, name, &depth);

	for (unsigned level = 0; level + 1 < depth; level++) {
		uint8_t *p = page(f, at);
		unsigned i = 0;

		while (i + 1 < nkeys(p) && u64(node(p, i + 1) + 8) <= key)
			i++;
		at = child(node(p, i));
	}
	for (unsigned i = 0; i < nkeys(page(f, at)); i++) {
		uint8_t *n = node(page(f, at), i);

		if (u16(n + 6) == 8 && u64(n + 8) == key) {
			*pg = at;
			*idx = i;
			return n;
		}
	}
	ck_abort_msg("no key %llu in %s", (unsigned long long)key, name);
	return NULL;
}

const char *egt_damage_name(enum egt_damage kind)
{
	static const char *const names[EGT_NDAMAGE] = {
		"chunk-past-eof", "dupdata", "branch-to-meta", "branch-loop", "node-outside",
		"truncated", "zero-meta", "chunk-garbage",
	};
	return names[kind];
}

int egt_damage_fits(const char *dir, enum egt_damage kind)
{
	struct file f;
	unsigned depth;
	uint64_t pg;
	unsigned idx;
	int fits = 1;

	load(dir, &f);
	db_root(&f, "rows", &depth);
	if (kind == EGT_BRANCH_TO_META || kind == EGT_BRANCH_LOOP)
		fits = depth >= 2;
	if (kind == EGT_CHUNK_PAST_EOF) {
		uint8_t *n = find(&f, "rows", 0, &pg, &idx);

		fits = (u16(n + 4) & BIGDATA) && (HDR + (u16(n) | (uint64_t)u16(n + 2) << 16)) >
		                                 f.psize;
	}
	free(f.b);
	return fits;
}

void egt_damage(const char *dir, enum egt_damage kind, uint64_t chunk, char *expect,
                size_t len)
{
	struct file f;
	uint64_t pg, root;
	unsigned idx, depth;
	uint8_t *n;

	load(dir, &f);
	switch (kind) {
	case EGT_CHUNK_PAST_EOF: /* as a half-copied or bit-flipped file has it */
		n = find(&f, "rows", chunk, &pg, &idx);
		ck_assert(u16(n + 4) & BIGDATA);
		f.len = (f.last_pg + 1) * f.psize;
		put64(n + 8 + 8, f.last_pg);
		snprintf(expect, len, "chunk %llu", (unsigned long long)chunk);
		break;
	case EGT_DUPDATA:
		n = find(&f, "rows", chunk, &pg, &idx);
		put16(n + 4, u16(n + 4) | DUPDATA);
		snprintf(expect, len, "chunk %llu", (unsigned long long)chunk);
		break;
	case EGT_BRANCH_TO_META:
	case EGT_BRANCH_LOOP:
		root = db_root(&f, "rows", &depth);
		ck_assert_uint_ge(depth, 2);
		n = node(page(&f, root), 1);
		pg = kind == EGT_BRANCH_LOOP ? root : 0;
		put16(n, (uint16_t)pg);
		put16(n + 2, (uint16_t)(pg >> 16));
		put16(n + 4, (uint16_t)(pg >> 32));
		snprintf(expect, len, "page %llu (reached from page %llu)", (unsigned long long)pg,
		         (unsigned long long)root);
		break;
	case EGT_NODE_OUTSIDE:
		find(&f, "rows", chunk, &pg, &idx);
		put16(page(&f, pg) + HDR + 2 * idx, (uint16_t)(f.psize - 4));
		snprintf(expect, len, "page %llu: node %u", (unsigned long long)pg, idx);
		break;
	case EGT_TRUNCATED:
		f.len = (f.len / f.psize / 2) * f.psize;
		snprintf(expect, len, "the file holds %llu pages",
		         (unsigned long long)(f.len / f.psize));
		break;
	case EGT_ZERO_META:
		memset(page(&f, 0), 0, f.psize);
		snprintf(expect, len, "meta page 0");
		break;
	case EGT_CHUNK_GARBAGE:
		n = find(&f, "rows", chunk, &pg, &idx);
		{
			uint8_t *rows = u16(n + 4) & BIGDATA ? page(&f, u64(n + 16)) + HDR : n + 16;

			for (int i = 0; i < 8; i++)
				rows[i] ^= 0x5a;
		}
		snprintf(expect, len, "chunk %llu does not match its checksum",
		         (unsigned long long)chunk);
		break;
	default:
		ck_abort_msg("damage %d", kind);
	}
	store(&f);
}
