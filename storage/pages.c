/* pages.c - the structural check of data.mdb: LMDB's pages read with
 * pread, never through a mapping and never through LMDB, so a damaged file
 * is described instead of followed into a fault.
 *
 * LMDB (0.9, 64-bit) trusts its file: a branch node pointing at a meta page
 * trips an assertion, a leaf node flagged as duplicates in a database
 * without them dereferences a cursor that does not exist, an overflow value
 * running past the end of the file faults when read. What LMDB's readers
 * rely on is checked here, for the meta page a reader of txnid uses and
 * every tree under it (the free list, the main DB and the named DBs meta,
 * rows and sums):
 *   - both meta pages are meta pages LMDB accepts, with one page size;
 *     the file holds every page the current one says is in use;
 *   - every page of a tree is in use (2 .. last page), is reached once (no
 *     loop, no two owners), carries its own number, is a branch page above
 *     the tree's depth and a leaf page at it; its node offsets, keys and
 *     inline values lie inside the page; branch pages have two keys (one
 *     in the free list), integer keys are 8 bytes; leaf keys increase;
 *   - node flags are ones the database can have (no DUPDATA: engram
 *     databases have no duplicates; SUBDATA only in the main DB, with a
 *     48-byte record);
 *   - an overflow value starts at an overflow page of enough pages, all in
 *     use (so a chunk never runs past the end of the file);
 *   - free-list entries list pages in use by nobody else.
 * The page layout follows lmdb.h's format notes and LMDB's page header,
 * node and meta definitions; only what readers depend on is checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "table_int.h"

_Static_assert(sizeof(size_t) == 8, "LMDB's 64-bit page layout");

#define PAGE_HDR 16              /* page number, pad, flags, lower/upper */
#define NODE_HDR 8               /* lo, hi, flags, key size */
#define META_OFF PAGE_HDR        /* the meta record follows the page header */
#define DB_BYTES 48              /* MDB_db */
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define P_KINDS 0x6f             /* branch, leaf, overflow, meta, leaf2, subp */
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04
#define MAGIC 0xBEEFC0DEu
#define DATA_VERSION 1
#define NO_PAGE UINT64_MAX       /* P_INVALID: an empty tree */
#define MAX_DEPTH 32             /* LMDB's cursor stack */
#define MAX_KEY 511

enum { FREE_DB, MAIN_DB, META_DB, ROWS_DB, SUMS_DB, NDBS };
static const char *const db_names[NDBS] = { "free list", "main DB", EG__DB_META,
                                            EG__DB_ROWS, EG__DB_SUMS };

struct db {            /* MDB_db */
	uint16_t flags, depth;
	uint64_t entries, root;
};

struct meta {          /* MDB_meta, the parts a reader uses */
	uint32_t magic, version, psize;
	struct db dbs[2];  /* free list, main DB */
	uint64_t last_pg, txnid;
};

struct walk {
	int fd;
	uint64_t file_bytes;
	uint32_t psize;
	uint64_t last_pg;
	uint8_t *seen;                    /* a bit per page 0 .. last_pg */
	uint8_t *page;                    /* MAX_DEPTH pages, one per level */
	struct eg__report *r;
	struct db named[NDBS];            /* found in the main DB */
	int have[NDBS];
};

struct tree {
	int id;                           /* FREE_DB .. SUMS_DB */
	int intkey;                       /* keys are 8-byte integers */
	struct db db;
	uint64_t entries;                 /* leaf nodes seen */
	uint8_t last[MAX_KEY];            /* the previous leaf key */
	size_t last_len;
	int have_last;
};

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void get_db(const uint8_t *p, struct db *d)
{
	d->flags = get16(p + 4);
	d->depth = get16(p + 6);
	d->entries = get64(p + 32);
	d->root = get64(p + 40);
}

/* pread of exactly len bytes at off; -EIO on a short read. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* ---- meta pages ------------------------------------------------------- */

static int read_meta(int fd, uint64_t off, struct meta *m)
{
	uint8_t b[META_OFF + 136];
	int rc = read_at(fd, b, sizeof b, off);

	if (rc)
		return rc;
	if (!(get16(b + 10) & P_META))
		return EG_ECORRUPT;
	m->magic = get32(b + META_OFF);
	m->version = get32(b + META_OFF + 4);
	m->psize = get32(b + META_OFF + 24); /* the free list's md_pad */
	get_db(b + META_OFF + 24, &m->dbs[0]);
	get_db(b + META_OFF + 24 + DB_BYTES, &m->dbs[1]);
	m->last_pg = get64(b + META_OFF + 120);
	m->txnid = get64(b + META_OFF + 128);
	return 0;
}

/* What mdb_env_open reads of meta page i (page 0 at offset 0, page 1 at
 * page 0's page size), checked before LMDB sees it. */
static int check_meta(int fd, uint64_t file_bytes, unsigned i, uint32_t psize0,
                      struct meta *m, struct eg__report *r)
{
	int rc = read_meta(fd, (uint64_t)i * psize0, m);

	if (rc == EG_ECORRUPT || (rc == 0 && (m->magic != MAGIC || m->version != DATA_VERSION))) {
		eg__problem(r, "meta page %u: not an LMDB meta page (magic 0x%x, version %u)", i,
		            rc ? 0 : m->magic, rc ? 0 : m->version);
		return EG_ECORRUPT;
	}
	if (rc) {
		eg__problem(r, "meta page %u: cannot be read: %s", i, strerror(-rc));
		return EG_ECORRUPT;
	}
	if (m->psize < 512 || m->psize > 32768 || (m->psize & (m->psize - 1)) ||
	    (i == 1 && m->psize != psize0)) {
		eg__problem(r, "meta page %u: page size %u", i, m->psize);
		return EG_ECORRUPT;
	}
	if (m->last_pg < 1 || m->last_pg >= file_bytes / m->psize) {
		eg__problem(r, "meta page %u: %llu pages in use, the file holds %llu pages of %u bytes",
		            i, (unsigned long long)m->last_pg + 1,
		            (unsigned long long)(file_bytes / m->psize), m->psize);
		return EG_ECORRUPT;
	}
	return 0;
}

/* Whether any meta page of an LMDB file lies where meta page 1 of page
 * size psize would: then a bad meta page 0 is damage, not a foreign file. */
static int meta1_intact(int fd)
{
	struct meta m;

	for (uint32_t psize = 512; psize <= 32768; psize *= 2)
		if (read_meta(fd, psize, &m) == 0 && m.magic == MAGIC && m.psize == psize)
			return 1;
	return 0;
}

int eg__check_metas(int fd, struct eg__report *r)
{
	struct stat st;
	struct meta m0, m1;
	int rc;

	if (fstat(fd, &st))
		return -errno;
	rc = read_meta(fd, 0, &m0);
	if ((rc || m0.magic != MAGIC) && !meta1_intact(fd))
		return EG_ENOTTABLE; /* no LMDB file at all, as LMDB would say */
	if ((rc = check_meta(fd, (uint64_t)st.st_size, 0, 0, &m0, r)))
		return rc;
	return check_meta(fd, (uint64_t)st.st_size, 1, m0.psize, &m1, r);
}

/* ---- pages and nodes -------------------------------------------------- */

/* Marks pages [pg, pg + n) as reached; 0, or the first one reached before. */
static uint64_t mark(struct walk *w, uint64_t pg, uint64_t n)
{
	for (uint64_t p = pg; p < pg + n; p++) {
		if (w->seen[p >> 3] & (1u << (p & 7)))
			return p;
		w->seen[p >> 3] |= (uint8_t)(1u << (p & 7));
	}
	return 0;
}

static int in_use(const struct walk *w, uint64_t pg, uint64_t n)
{
	return pg >= 2 && pg <= w->last_pg && n <= w->last_pg - pg + 1;
}

/* The name of a leaf node in problems: rows and sums name the chunk. */
static void node_name(const struct tree *t, uint64_t pg, unsigned i, const uint8_t *key,
                      unsigned ksize, char *buf, size_t len)
{
	if ((t->id == ROWS_DB || t->id == SUMS_DB) && ksize == 8)
		snprintf(buf, len, "chunk %llu (%s, page %llu node %u)",
		         (unsigned long long)get64(key), db_names[t->id], (unsigned long long)pg, i);
	else
		snprintf(buf, len, "%s: page %llu node %u", db_names[t->id],
		         (unsigned long long)pg, i);
}

/* An overflow value of len bytes at page ov: all of it in the pages in use,
 * behind an overflow page header that owns enough pages. */
static int check_overflow(struct walk *w, const char *who, uint64_t ov, uint64_t len)
{
	uint64_t need = (PAGE_HDR - 1 + len) / w->psize + 1, again;
	uint8_t h[PAGE_HDR];
	uint32_t pages;

	if (!in_use(w, ov, need)) {
		uint64_t file_pages = w->file_bytes / w->psize;

		eg__problem(w->r, "%s: its %llu bytes at page %llu run past the %s (%llu pages)", who,
		            (unsigned long long)len, (unsigned long long)ov,
		            ov >= file_pages || need > file_pages - ov ? "end of the file"
		                                                       : "last page in use",
		            (unsigned long long)w->last_pg + 1);
		return EG_ECORRUPT;
	}
	if (read_at(w->fd, h, sizeof h, ov * w->psize)) {
		eg__problem(w->r, "%s: overflow page %llu cannot be read", who, (unsigned long long)ov);
		return EG_ECORRUPT;
	}
	pages = get32(h + 12);
	if (get64(h) != ov || (get16(h + 10) & P_KINDS) != P_OVERFLOW || pages < need ||
	    !in_use(w, ov, pages)) {
		eg__problem(w->r, "%s: page %llu is not an overflow page of %llu pages", who,
		            (unsigned long long)ov, (unsigned long long)need);
		return EG_ECORRUPT;
	}
	if ((again = mark(w, ov, pages))) {
		eg__problem(w->r, "%s: overflow page %llu is used twice", who,
		            (unsigned long long)again);
		return EG_ECORRUPT;
	}
	return 0;
}

/* A free-list value: a count, then that many page numbers, none in use. */
static int check_free_list(struct walk *w, const char *who, const uint8_t *inline_data,
                           uint64_t ov, uint64_t len)
{
	uint8_t buf[4096];
	uint64_t n = 0, done = 0, off = ov * w->psize + PAGE_HDR;

	while (done < len / 8) {
		size_t k = (size_t)(len / 8 - done < sizeof buf / 8 ? len / 8 - done : sizeof buf / 8);

		if (inline_data)
			memcpy(buf, inline_data + done * 8, k * 8);
		else if (read_at(w->fd, buf, k * 8, off + done * 8))
			return EG_ECORRUPT;
		for (size_t j = 0; j < k; j++, done++) {
			uint64_t pg = get64(buf + 8 * j), again;

			if (done == 0) {
				n = pg;
				if (n > len / 8 - 1) {
					eg__problem(w->r, "%s: lists %llu pages in %llu bytes", who,
					            (unsigned long long)n, (unsigned long long)len);
					return EG_ECORRUPT;
				}
				continue;
			}
			if (done > n)
				return 0;
			if (!in_use(w, pg, 1) || (again = mark(w, pg, 1))) {
				eg__problem(w->r, "%s: lists page %llu as free, which is %s", who,
				            (unsigned long long)pg, in_use(w, pg, 1) ? "also in use"
				                                                     : "not a page in use");
				return EG_ECORRUPT;
			}
		}
	}
	return 0;
}

static int key_order(const struct tree *t, const uint8_t *k, size_t len)
{
	int c;

	if (!t->have_last)
		return 1;
	if (t->intkey)
		return get64(k) > get64(t->last);
	c = memcmp(t->last, k, len < t->last_len ? len : t->last_len);
	return c < 0 || (c == 0 && t->last_len < len);
}

static int walk_page(struct walk *w, struct tree *t, uint64_t pg, unsigned level,
                     uint64_t parent);

/* A named DB's record in the main DB. */
static int check_named(struct walk *w, const char *who, const uint8_t *key, unsigned ksize,
                       const uint8_t *data, uint64_t len)
{
	struct db d;
	int id;

	for (id = META_DB; id < NDBS; id++)
		if (ksize == strlen(db_names[id]) && memcmp(key, db_names[id], ksize) == 0)
			break;
	if (len != DB_BYTES) {
		eg__problem(w->r, "%s: a DB record of %llu bytes", who, (unsigned long long)len);
		return EG_ECORRUPT;
	}
	if (id == NDBS)
		return 0; /* not one of ours: left to eg_table_open */
	get_db(data, &d);
	if (d.flags != (id == META_DB ? 0 : MDB_INTEGERKEY)) {
		eg__problem(w->r, "DB %s: flags 0x%x, not those of an engram table", db_names[id],
		            d.flags);
		return EG_ECORRUPT;
	}
	w->named[id] = d;
	w->have[id] = 1;
	return 0;
}

/* One node of a leaf page: flags, key order, its value. */
static int check_leaf_node(struct walk *w, struct tree *t, uint64_t pg, unsigned i,
                           const uint8_t *node, const uint8_t *end)
{
	unsigned flags = get16(node + 4), ksize = get16(node + 6);
	uint64_t len = get16(node) | (uint64_t)get16(node + 2) << 16;
	const uint8_t *key = node + NODE_HDR, *data = key + ksize;
	char who[160];

	node_name(t, pg, i, key, (unsigned)(end - key) >= ksize ? ksize : 0, who, sizeof who);
	if ((size_t)(end - key) < ksize || ksize > MAX_KEY || (t->intkey && ksize != 8)) {
		eg__problem(w->r, "%s: a key of %u bytes", who, ksize);
		return EG_ECORRUPT;
	}
	if (flags & ~(unsigned)(F_BIGDATA | (t->id == MAIN_DB ? F_SUBDATA : 0)) ||
	    (flags & F_BIGDATA && flags & F_SUBDATA)) {
		eg__problem(w->r, "%s: node flags 0x%x%s", who, flags,
		            flags & F_DUPDATA ? " (DUPDATA, in a database without duplicates)" : "");
		return EG_ECORRUPT;
	}
	if (!key_order(t, key, ksize)) {
		eg__problem(w->r, "%s: keys out of order", who);
		return EG_ECORRUPT;
	}
	memcpy(t->last, key, ksize);
	t->last_len = ksize;
	t->have_last = 1;
	t->entries++;
	if (flags & F_BIGDATA) {
		if ((size_t)(end - data) < 8) {
			eg__problem(w->r, "%s: runs past its page", who);
			return EG_ECORRUPT;
		}
		if (check_overflow(w, who, get64(data), len))
			return EG_ECORRUPT;
		return t->id == FREE_DB ? check_free_list(w, who, NULL, get64(data), len) : 0;
	}
	if ((uint64_t)(end - data) < len) {
		eg__problem(w->r, "%s: a value of %llu bytes runs past its page", who,
		            (unsigned long long)len);
		return EG_ECORRUPT;
	}
	if (flags & F_SUBDATA)
		return check_named(w, who, key, ksize, data, len);
	return t->id == FREE_DB ? check_free_list(w, who, data, 0, len) : 0;
}

/* Asks the kernel for the pages this page's nodes lead to (children of a
 * branch, the first page of each overflow value), all at once: they are
 * then read one after the other from the page cache, not from the disk (a
 * table of 32,768 chunks is walked in a fraction of a second, not one
 * random read at a time). Offsets are only hints here: check_nodes checks
 * everything. */
static void prefetch(const struct walk *w, const uint8_t *buf, unsigned n, int branch)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned off = get16(buf + PAGE_HDR + 2 * i);
		const uint8_t *node = buf + off;
		uint64_t pg;

		if (off > w->psize - NODE_HDR)
			continue;
		if (branch) {
			pg = get16(node) | (uint64_t)get16(node + 2) << 16 | (uint64_t)get16(node + 4) << 32;
		} else {
			unsigned ksize = get16(node + 6);

			if (!(get16(node + 4) & F_BIGDATA) || off + NODE_HDR + ksize + 8 > w->psize)
				continue;
			pg = get64(node + NODE_HDR + ksize);
		}
		if (pg >= 2 && pg <= w->last_pg)
			posix_fadvise(w->fd, (off_t)(pg * w->psize), (off_t)w->psize, POSIX_FADV_WILLNEED);
	}
}

/* The nodes of a page (in buf): offsets inside the page, then each node. */
static int check_nodes(struct walk *w, struct tree *t, uint64_t pg, unsigned level,
                       const uint8_t *buf, int branch)
{
	uint16_t lower = get16(buf + 12), upper = get16(buf + 14);
	unsigned n, i;

	if (lower < PAGE_HDR || (lower & 1) || lower > upper || upper > w->psize) {
		eg__problem(w->r, "%s: page %llu: free space bounds %u..%u", db_names[t->id],
		            (unsigned long long)pg, lower, upper);
		return EG_ECORRUPT;
	}
	n = (lower - PAGE_HDR) / 2;
	if (n < (branch ? (t->id == FREE_DB ? 1u : 2u) : 1u)) {
		eg__problem(w->r, "%s: page %llu: %u keys", db_names[t->id],
		            (unsigned long long)pg, n);
		return EG_ECORRUPT;
	}
	prefetch(w, buf, n, branch);
	for (i = 0; i < n; i++) {
		unsigned off = get16(buf + PAGE_HDR + 2 * i);
		const uint8_t *node = buf + off, *end = buf + w->psize;

		if (off < upper || off > w->psize - NODE_HDR) {
			eg__problem(w->r, "%s: page %llu: node %u at offset %u, outside its page",
			            db_names[t->id], (unsigned long long)pg, i, off);
			return EG_ECORRUPT;
		}
		if (!branch) {
			if (check_leaf_node(w, t, pg, i, node, end))
				return EG_ECORRUPT;
			continue;
		}
		if ((unsigned)(end - node - NODE_HDR) < get16(node + 6) ||
		    (t->intkey && i > 0 && get16(node + 6) != 8)) {
			eg__problem(w->r, "%s: page %llu: node %u has a key of %u bytes",
			            db_names[t->id], (unsigned long long)pg, i, get16(node + 6));
			return EG_ECORRUPT;
		}
		if (walk_page(w, t, get16(node) | (uint64_t)get16(node + 2) << 16 |
		                    (uint64_t)get16(node + 4) << 32, level + 1, pg))
			return EG_ECORRUPT;
	}
	return 0;
}

/* Page pg at level (0 = the root) of tree t, reached from parent. */
static int walk_page(struct walk *w, struct tree *t, uint64_t pg, unsigned level,
                     uint64_t parent)
{
	uint8_t *buf = w->page + (size_t)level * w->psize;
	int leaf = level + 1 == t->db.depth;
	unsigned kind;

	if (!in_use(w, pg, 1)) {
		eg__problem(w->r, "%s: page %llu (reached from page %llu) is %s", db_names[t->id],
		            (unsigned long long)pg, (unsigned long long)parent,
		            pg < 2 ? "a meta page" : "not a page in use");
		return EG_ECORRUPT;
	}
	if (mark(w, pg, 1)) {
		eg__problem(w->r, "%s: page %llu (reached from page %llu) is used twice",
		            db_names[t->id], (unsigned long long)pg, (unsigned long long)parent);
		return EG_ECORRUPT;
	}
	if (read_at(w->fd, buf, w->psize, pg * w->psize)) {
		eg__problem(w->r, "%s: page %llu cannot be read", db_names[t->id],
		            (unsigned long long)pg);
		return EG_ECORRUPT;
	}
	kind = get16(buf + 10) & P_KINDS;
	if (get64(buf) != pg || kind != (leaf ? P_LEAF : P_BRANCH)) {
		eg__problem(w->r, "%s: page %llu (reached from page %llu) is not the %s page it "
		            "should be (number %llu, flags 0x%x)", db_names[t->id],
		            (unsigned long long)pg, (unsigned long long)parent,
		            leaf ? "leaf" : "branch", (unsigned long long)get64(buf), kind);
		return EG_ECORRUPT;
	}
	return check_nodes(w, t, pg, level, buf, !leaf);
}

static int walk_tree(struct walk *w, int id, const struct db *d)
{
	struct tree t = { .id = id, .db = *d, .intkey = id != MAIN_DB && id != META_DB };

	if (d->root == NO_PAGE) {
		if (d->depth || d->entries) {
			eg__problem(w->r, "%s: empty, with depth %u and %llu entries", db_names[id],
			            d->depth, (unsigned long long)d->entries);
			return EG_ECORRUPT;
		}
		return 0;
	}
	if (d->depth < 1 || d->depth > MAX_DEPTH) {
		eg__problem(w->r, "%s: depth %u", db_names[id], d->depth);
		return EG_ECORRUPT;
	}
	if (walk_page(w, &t, d->root, 0, 0))
		return EG_ECORRUPT;
	if (t.entries != d->entries) {
		eg__problem(w->r, "%s: %llu entries, its record says %llu", db_names[id],
		            (unsigned long long)t.entries, (unsigned long long)d->entries);
		return EG_ECORRUPT;
	}
	return 0;
}

/* The meta page a reader of txnid uses (a writer of txnid writes page
 * txnid & 1), or with txnid 0 the newer one. -EAGAIN when neither holds
 * txnid: a writer has moved on. */
static int pick_meta(int fd, uint64_t txnid, struct meta *m, struct eg__report *r)
{
	struct meta m0, m1;
	int rc;

	if ((rc = read_meta(fd, 0, &m0)) || (rc = read_meta(fd, m0.psize, &m1)))
		return rc;
	if (txnid == 0) {
		*m = m1.txnid > m0.txnid ? m1 : m0;
		return 0;
	}
	*m = txnid & 1 ? m1 : m0;
	if (m->txnid == txnid)
		return 0;
	if ((txnid & 1 ? m0 : m1).txnid != txnid)
		return -EAGAIN;
	eg__problem(r, "meta page %u: holds transaction %llu, which LMDB reads from meta page %u",
	            (unsigned)!(txnid & 1), (unsigned long long)txnid, (unsigned)(txnid & 1));
	return EG_ECORRUPT;
}

int eg__check_trees(int fd, uint64_t txnid, struct eg__report *r)
{
	struct walk w = { .fd = fd, .r = r };
	struct meta m;
	struct stat st;
	int rc;

	if (fstat(fd, &st))
		return -errno;
	w.file_bytes = (uint64_t)st.st_size;
	if ((rc = pick_meta(fd, txnid, &m, r)))
		return rc;
	w.psize = m.psize;
	w.last_pg = m.last_pg;
	if (w.psize < 512 || w.psize > 32768 || w.last_pg >= w.file_bytes / w.psize)
		return EG_ECORRUPT; /* eg__check_metas says why */
	w.seen = calloc(w.last_pg / 8 + 1, 1);
	w.page = malloc((size_t)MAX_DEPTH * w.psize);
	if (!w.seen || !w.page) {
		rc = -ENOMEM;
		goto out;
	}
	mark(&w, 0, 2);
	rc = walk_tree(&w, FREE_DB, &m.dbs[0]);
	if (!rc)
		rc = walk_tree(&w, MAIN_DB, &m.dbs[1]);
	for (int id = META_DB; id < NDBS && !rc; id++)
		if (w.have[id])
			rc = walk_tree(&w, id, &w.named[id]);
out:
	free(w.seen);
	free(w.page);
	return rc;
}
