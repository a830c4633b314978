/* npy.c - NumPy .npy reader (mmap) and writer; see eg_npy.h. */
#include "eg_npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eg_table.h"

static const struct {
	eg_npy_type type;
	const char *descr;
	size_t size;
} types[] = {
	{EG_NPY_F4, "<f4", 4}, {EG_NPY_F2, "<f2", 2}, {EG_NPY_U1, "|u1", 1},
	{EG_NPY_U2, "<u2", 2}, {EG_NPY_I4, "<i4", 4}, {EG_NPY_I8, "<i8", 8},
	{EG_NPY_U8, "<u8", 8},
};

const char *eg_npy_descr(eg_npy_type t)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].type == t)
			return types[i].descr;
	return NULL;
}

size_t eg_npy_itemsize(eg_npy_type t)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].type == t)
			return types[i].size;
	return 0;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "<u1", "=f4" and "u1" mean what "|u1" and "<f4" mean on this
 * (little-endian) machine; ">" is refused by the caller. */
static int parse_descr(const char *d, eg_npy_type *out)
{
	char norm[40];

	if (strlen(d) < 2 || strlen(d) > 4)
		return -1;
	if (d[0] == '<' || d[0] == '|' || d[0] == '=')
		d++;
	else if (d[0] == '>')
		return -1;
	snprintf(norm, sizeof norm, "%c%s", strcmp(d, "u1") == 0 ? '|' : '<', d);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (strcmp(types[i].descr, norm) == 0) {
			*out = types[i].type;
			return 0;
		}
	}
	return -1;
}

/* A tiny reader for the header's Python dict literal. */
struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'))
		s->p++;
}

static int eat(struct scan *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return 1;
	}
	return 0;
}

static int quoted(struct scan *s, char *buf, size_t len)
{
	char q;
	size_t n = 0;

	skip_ws(s);
	if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
		return -1;
	q = *s->p++;
	while (s->p < s->end && *s->p != q) {
		if (n + 1 >= len)
			return -1;
		buf[n++] = *s->p++;
	}
	if (s->p >= s->end)
		return -1;
	s->p++;
	buf[n] = '\0';
	return 0;
}

static int word(struct scan *s, const char *w)
{
	size_t n = strlen(w);

	skip_ws(s);
	if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
		s->p += n;
		return 1;
	}
	return 0;
}

/* Parses "(a,)", "(a, b)" or "()" into dims; returns the count or -1. */
static int shape(struct scan *s, uint64_t *dims, int max)
{
	int n = 0;

	if (!eat(s, '('))
		return -1;
	for (;;) {
		uint64_t v = 0;
		int digits = 0;

		if (eat(s, ')'))
			return n;
		skip_ws(s);
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return -1;
			v = v * 10 + (uint64_t)(*s->p++ - '0');
			digits++;
		}
		if (s->p < s->end && *s->p == 'L') /* Python 2 long */
			s->p++;
		if (!digits || n == max)
			return -1;
		dims[n++] = v;
		if (!eat(s, ',')) {
			if (eat(s, ')'))
				return n;
			return -1;
		}
	}
}

static int parse_header(const char *h, size_t len, eg_npy *out, char *err,
                        size_t errlen)
{
	struct scan s = {h, h + len};
	char key[32], descr[32] = "";
	uint64_t dims[3];
	int have_shape = 0, fortran = -1, nd = 0;

	if (!eat(&s, '{'))
		goto bad;
	while (!eat(&s, '}')) {
		if (quoted(&s, key, sizeof key) < 0 || !eat(&s, ':'))
			goto bad;
		if (strcmp(key, "descr") == 0) {
			if (quoted(&s, descr, sizeof descr) < 0) {
				errf(err, errlen, "unsupported .npy dtype (structured or too long)");
				return -1;
			}
		} else if (strcmp(key, "fortran_order") == 0) {
			if (word(&s, "True"))
				fortran = 1;
			else if (word(&s, "False"))
				fortran = 0;
			else
				goto bad;
		} else if (strcmp(key, "shape") == 0) {
			nd = shape(&s, dims, 3);
			if (nd < 0)
				goto bad;
			have_shape = 1;
		} else {
			goto bad;
		}
		if (!eat(&s, ',')) {
			if (eat(&s, '}'))
				break;
			goto bad;
		}
	}
	if (!descr[0] || fortran < 0 || !have_shape)
		goto bad;
	if (fortran) {
		errf(err, errlen, "Fortran-order .npy arrays are not supported; save a C-order array (numpy.ascontiguousarray)");
		return -1;
	}
	if (descr[0] == '>') {
		errf(err, errlen, "big-endian .npy data ('%s') is not supported; save it as '<%s'",
		     descr, descr + 1);
		return -1;
	}
	if (parse_descr(descr, &out->type) < 0) {
		errf(err, errlen, "unsupported .npy dtype '%s' (supported: <f4 <f2 |u1 <u2 <i4 <i8 <u8)", descr);
		return -1;
	}
	if (nd != 1 && nd != 2) {
		errf(err, errlen, "a %d-D .npy array; expected 1-D or 2-D", nd);
		return -1;
	}
	out->itemsize = eg_npy_itemsize(out->type);
	out->ndim = nd;
	out->rows = dims[0];
	out->cols = nd == 2 ? dims[1] : 1;
	return 0;
bad:
	errf(err, errlen, "malformed .npy header");
	return -1;
}

/* Opens and maps path; 0 or -errno with the reason in err. */
static int map_file(const char *path, eg_npy *out, char *err, size_t errlen)
{
	struct stat st;
	void *m;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		errf(err, errlen, "%s", strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 10) {
		close(fd);
		errf(err, errlen, "not a .npy file");
		return EG_EFORMAT;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	e = errno;
	close(fd);
	if (m == MAP_FAILED) {
		errf(err, errlen, "%s", strerror(e));
		return -e;
	}
	out->map = m;
	out->map_len = (size_t)st.st_size;
	return 0;
}

/* Fills *out but for map and map_len from the .npy image m[0..len); 0 or
 * EG_EFORMAT with the reason in err. */
static int parse(const unsigned char *m, size_t len, eg_npy *out, char *err, size_t errlen)
{
	size_t hlen, off;
	uint64_t need;

	if (len < 10 || memcmp(m, "\x93NUMPY", 6) != 0) {
		errf(err, errlen, "not a .npy file (no \\x93NUMPY magic)");
		return EG_EFORMAT;
	}
	if (m[6] == 1) {
		hlen = (size_t)m[8] | (size_t)m[9] << 8;
		off = 10;
	} else if (m[6] == 2 || m[6] == 3) {
		if (len < 12)
			goto short_file;
		hlen = (size_t)m[8] | (size_t)m[9] << 8 | (size_t)m[10] << 16 |
		       (size_t)m[11] << 24;
		off = 12;
	} else {
		errf(err, errlen, "unsupported .npy format version %u.%u", m[6], m[7]);
		return EG_EFORMAT;
	}
	if (hlen > len - off)
		goto short_file;
	if (parse_header((const char *)m + off, hlen, out, err, errlen) < 0)
		return EG_EFORMAT;
	off += hlen;
	if (out->cols && out->rows > UINT64_MAX / out->cols / out->itemsize) {
		errf(err, errlen, "shape too large");
		return EG_EFORMAT;
	}
	need = out->rows * out->cols * out->itemsize;
	if (need > len - off)
		goto short_file;
	out->data = m + off;
	return 0;
short_file:
	errf(err, errlen, "truncated .npy file (shorter than its header says)");
	return EG_EFORMAT;
}

int eg_npy_parse(const void *buf, size_t len, eg_npy *out, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof *out);
	rc = parse(buf, len, out, err, errlen);
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}

int eg_npy_open(const char *path, eg_npy *out, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = map_file(path, out, err, errlen)))
		return rc;
	rc = parse(out->map, out->map_len, out, err, errlen);
	if (rc)
		eg_npy_close(out);
	return rc;
}

void eg_npy_close(eg_npy *npy)
{
	if (npy->map)
		munmap(npy->map, npy->map_len);
	memset(npy, 0, sizeof *npy);
}

/* stdio leaves errno set by the failed write (EIO if it did not). */
static int write_error(void)
{
	if (errno == 0)
		errno = EIO;
	return -errno;
}

int eg_npy_write_header(FILE *f, const char *descr, int ndim, uint64_t rows,
                        uint64_t cols)
{
	char dict[256];
	unsigned char pre[12];
	size_t n, prelen = 10, total;

	if (ndim == 1)
		n = (size_t)snprintf(dict, sizeof dict,
		                     "{'descr': '%s', 'fortran_order': False, 'shape': (%llu,), }",
		                     descr, (unsigned long long)rows);
	else
		n = (size_t)snprintf(dict, sizeof dict,
		                     "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %llu), }",
		                     descr, (unsigned long long)rows, (unsigned long long)cols);
	/* Version 1.0 always fits our short dicts. Pad with spaces and a final
	 * newline so the data starts 64-byte aligned. */
	total = (prelen + n + 1 + 63) / 64 * 64;
	errno = 0;
	memcpy(pre, "\x93NUMPY\x01\x00", 8);
	pre[8] = (unsigned char)((total - prelen) & 0xff);
	pre[9] = (unsigned char)((total - prelen) >> 8);
	if (fwrite(pre, 1, prelen, f) != prelen || fwrite(dict, 1, n, f) != n)
		return write_error();
	for (size_t i = prelen + n; i + 1 < total; i++)
		if (putc(' ', f) == EOF)
			return write_error();
	if (putc('\n', f) == EOF)
		return write_error();
	return 0;
}
