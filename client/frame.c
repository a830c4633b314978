/* frame.c - reading one Response frame for the oldest unanswered ticket.
 *
 * Responses arrive in request order, so the next frame always belongs to the
 * oldest ticket not yet done. A lookup's frame is parsed field by field as it
 * streams in, and the bytes of each RowBlock.data go from the socket straight
 * into the caller's buffer: no scratch copy of a response that may be
 * hundreds of MB. Every other frame is small; it is read whole and unpacked
 * with protobuf-c.
 *
 * A frame read only in part leaves the stream out of step, so any failure
 * after the first byte of a frame drops the connection. A timeout before that
 * byte keeps it: the response may still come and be waited for again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egc_int.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Per frame: what the row parser learnt. */
struct rows_state {
	egc_ticket *t;
	uint64_t id, status;
	uint64_t too_big, room; /* a block that did not fit (bytes) and its buffer */
	int bad;                /* a block inconsistent with itself */
};

/* Skips the value of a field with key within limit bytes of the enclosing
 * message (used counts what was consumed). */
static int skip_field(eg_client *c, uint64_t key, uint64_t limit, uint64_t *used)
{
	uint64_t v, start = *used;
	int err;

	switch (key & 7) {
	case WT_VARINT:
		return egc__varint(c, &v, used);
	case WT_I64:
		v = 8;
		break;
	case WT_I32:
		v = 4;
		break;
	case WT_LEN:
		err = egc__varint(c, &v, used);
		if (err < 0)
			return err;
		break;
	default:
		return EGC_EPROTOCOL;
	}
	if (*used - start > limit || v > limit - (*used - start))
		return EGC_EPROTOCOL;
	*used += v;
	return egc__skip(c, v);
}

/* The next field key of a message of len bytes, of which *used are read;
 * a key at the very end, without its value, is a protocol error. */
static int read_key(eg_client *c, uint64_t *key, uint64_t *used, uint64_t len)
{
	int err = egc__varint(c, key, used);

	if (err < 0)
		return err;
	return *used >= len ? EGC_EPROTOCOL : 0;
}

static int read_block(eg_client *c, struct rows_state *st, uint64_t len)
{
	egc_ticket *t = st->t;
	size_t idx = t->nblocks_got++;
	struct egc_out *o = idx < t->nouts ? &t->outs[idx] : NULL;
	eg_client_rows rows = { 0 };
	uint64_t used = 0, key, v, dlen = 0, shm_offset = 0;
	int err, wrote = 0, in_shm = 0;

	while (used < len) {
		err = read_key(c, &key, &used, len);
		if (err < 0)
			return err;
		if ((key & 7) == WT_VARINT && (key >> 3) >= 2 && (key >> 3) <= 7 && (key >> 3) != 5) {
			err = egc__varint(c, &v, &used);
			if (err < 0)
				return err;
			if (key >> 3 == 6)
				in_shm = v != 0;
			else if (key >> 3 == 7)
				shm_offset = v;
			else if (key >> 3 == 2)
				rows.generation = v;
			else if (key >> 3 == 3)
				rows.row_bytes = (uint32_t)v;
			else
				rows.count = v;
		} else if (key == (5 << 3 | WT_LEN)) {
			err = egc__varint(c, &dlen, &used);
			if (err < 0)
				return err;
			if (used > len || dlen > len - used)
				return EGC_EPROTOCOL;
			used += dlen;
			if (o && dlen <= o->size && !st->too_big) {
				err = egc__read_exact(c, o->buf, (size_t)dlen);
				wrote = 1;
			} else {
				if (o && !st->too_big) {
					st->too_big = dlen;
					st->room = o->size;
				}
				err = egc__skip(c, dlen);
			}
			if (err < 0)
				return err;
		} else {
			err = skip_field(c, key, len - used, &used);
			if (err < 0)
				return err;
		}
	}
	if (used != len)
		return EGC_EPROTOCOL;
	if (!o)
		return 0;
	o->in_shm = in_shm;
	o->shm_offset = shm_offset;
	if (t->shm) {
		/* rows in the shared buffer: inside it, and no data besides */
		if (!in_shm || dlen != 0 || (rows.row_bytes && rows.count > UINT64_MAX / rows.row_bytes) ||
		    shm_offset > c->shm_size ||
		    rows.count * rows.row_bytes > c->shm_size - shm_offset)
			st->bad = 1;
		o->rows = rows;
		return 0;
	}
	if (in_shm)
		st->bad = 1;
	if (wrote && rows.row_bytes == 0 && dlen != 0)
		st->bad = 1;
	if (wrote && rows.row_bytes != 0 &&
	    (dlen % rows.row_bytes != 0 || rows.count != dlen / rows.row_bytes))
		st->bad = 1;
	if (!wrote && !st->too_big && rows.count != 0)
		st->bad = 1;
	o->rows = rows;
	return 0;
}

static int read_error_text(eg_client *c, egc_ticket *t, uint64_t len)
{
	size_t k = len < sizeof(t->msg) - 1 ? (size_t)len : sizeof(t->msg) - 1;
	int err;

	err = egc__read_exact(c, t->msg, k);
	if (err < 0)
		return err;
	t->msg[k] = '\0';
	return egc__skip(c, len - k);
}

static int parse_rows(eg_client *c, struct rows_state *st, uint64_t len)
{
	uint64_t used = 0, key, v;
	int err;

	while (used < len) {
		err = read_key(c, &key, &used, len);
		if (err < 0)
			return err;
		switch (key) {
		case 1 << 3 | WT_VARINT:
			err = egc__varint(c, &st->id, &used);
			break;
		case 2 << 3 | WT_VARINT:
			err = egc__varint(c, &st->status, &used);
			break;
		case 3 << 3 | WT_LEN:
		case 8 << 3 | WT_LEN:
			err = egc__varint(c, &v, &used);
			if (err < 0)
				return err;
			if (used > len || v > len - used)
				return EGC_EPROTOCOL;
			used += v;
			if (key >> 3 == 3)
				err = read_error_text(c, st->t, v);
			else
				err = read_block(c, st, v);
			break;
		default:
			err = skip_field(c, key, len - used, &used);
		}
		if (err < 0)
			return err;
	}
	return used == len ? 0 : EGC_EPROTOCOL;
}

/* The ticket's result from a parsed rows frame (the stream is in step). */
static void finish_rows(egc_ticket *t, const struct rows_state *st)
{
	if (st->status != 0)
		return;
	if (st->too_big) {
		t->err = EGC_EBUFSIZE;
		snprintf(t->msg, sizeof(t->msg),
		         "rows of %llu bytes do not fit the caller's buffer of %llu bytes",
		         (unsigned long long)st->too_big, (unsigned long long)st->room);
	} else if (st->bad || t->nblocks_got > t->nouts) {
		t->err = EGC_EPROTOCOL;
		snprintf(t->msg, sizeof(t->msg),
		         "daemon sent a row block inconsistent with the request");
	}
}

static int read_msg(eg_client *c, egc_ticket *t, uint64_t len, uint64_t *id, uint64_t *status)
{
	unsigned char *buf;
	Engram__V1__Response *r;
	int err;

	if (len > EGC_MSG_FRAME_MAX)
		return EGC_EPROTOCOL;
	buf = malloc(len ? (size_t)len : 1);
	if (!buf)
		return -ENOMEM;
	err = egc__read_exact(c, buf, (size_t)len);
	if (err < 0) {
		free(buf);
		return err;
	}
	r = engram__v1__response__unpack(NULL, (size_t)len, buf);
	free(buf);
	if (!r)
		return EGC_EPROTOCOL;
	*id = r->id;
	*status = (uint64_t)r->status;
	if (r->error)
		snprintf(t->msg, sizeof(t->msg), "%s", r->error);
	t->resp = r;
	return 0;
}

int egc__read_response(eg_client *c)
{
	egc_ticket *t = egc__head(c);
	struct rows_state st = { .t = t };
	uint64_t len, used = 0, id = 0, status = 0;
	unsigned char b;
	int err;
	char why[160];

	if (!t) {
		egc__drop(c, EGC_EPROTOCOL, "daemon sent a response nobody asked for");
		return EGC_EPROTOCOL;
	}
	err = egc__byte(c, &b);
	if (err == -ETIMEDOUT)
		return err; /* nothing consumed: the connection stays usable */
	if (err < 0)
		goto drop;
	c->rpos--;
	err = egc__varint(c, &len, &used);
	if (err < 0)
		goto drop;
	t->msg[0] = '\0';
	if (t->kind == EGC_KIND_MSG) {
		err = read_msg(c, t, len, &id, &status);
	} else {
		err = parse_rows(c, &st, len);
		id = st.id;
		status = st.status;
	}
	if (err < 0)
		goto drop;
	if (id != t->id && !(id == 0 && status != 0)) {
		snprintf(why, sizeof(why), "daemon answered request %llu with id %llu",
		         (unsigned long long)t->id, (unsigned long long)id);
		egc__drop(c, EGC_EPROTOCOL, why);
		return EGC_EPROTOCOL;
	}
	t->done = 1;
	t->err = egc__status_err((int)(status > 1000 ? 1000 : status));
	if (t->err == 0 && t->kind == EGC_KIND_ROWS)
		finish_rows(t, &st);
	if (t->err != 0 && !t->msg[0])
		snprintf(t->msg, sizeof(t->msg), "daemon: %s", eg_client_strerror(t->err));
	if (id == 0 && status != 0) {
		/* an answer to no request (an unreadable frame): the daemon
		 * closes the connection after it */
		egc__drop(c, -ECONNRESET, t->msg);
	}
	egc__reap(c);
	return 0;
drop:
	if (err == -ECONNRESET)
		snprintf(why, sizeof(why), "connection to %s closed by the daemon", c->addr);
	else if (err == EGC_EPROTOCOL)
		snprintf(why, sizeof(why), "daemon sent a malformed response");
	else
		snprintf(why, sizeof(why), "reading from %s: %s", c->addr, eg_client_strerror(err));
	egc__drop(c, err, why);
	return err;
}
