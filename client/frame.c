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

/* Per frame: what the row parser learnt besides what goes into the ticket. */
struct rows_state {
	egc_ticket *t;
	uint64_t id, status;
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
		return egc__proto(c, "a field of wire type 3, 4, 6 or 7 (not in proto3)");
	}
	if (*used - start > limit || v > limit - (*used - start))
		return egc__proto(c, "a field runs past the end of its message");
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
	return *used >= len ? egc__proto(c, "a field key without its value") : 0;
}

/* RowBlock.table, compared with the name asked as it streams in; the first
 * bytes are kept for the message when they differ. */
static int read_table_name(eg_client *c, struct egc_out *o, uint64_t v)
{
	size_t want = strlen(o->table), k;
	uint64_t off = 0;
	char buf[64];
	int err;

	o->got_len = v;
	if (v != want)
		o->name_bad = 1;
	while (off < v) {
		if (off && o->name_bad)
			return egc__skip(c, v - off);
		k = v - off < sizeof(buf) ? (size_t)(v - off) : sizeof(buf);
		err = egc__read_exact(c, buf, k);
		if (err < 0)
			return err;
		if (off == 0) {
			memcpy(o->got_table, buf, k < sizeof(o->got_table) ? k : sizeof(o->got_table) - 1);
			o->got_table[k < sizeof(o->got_table) ? k : sizeof(o->got_table) - 1] = '\0';
		}
		if (!o->name_bad && memcmp(buf, o->table + off, k) != 0)
			o->name_bad = 1;
		off += k;
	}
	return 0;
}

/* RowBlock.data: into the caller's buffer when it is a socket request, the
 * first data field of the block, and fits; skipped otherwise (check.c then
 * tells which). */
static int read_data(eg_client *c, egc_ticket *t, struct egc_out *o, uint64_t dlen)
{
	if (!o)
		return egc__skip(c, dlen);
	o->data_len = dlen;
	if (o->ndata++ || t->shm)
		return egc__skip(c, dlen);
	if (dlen > o->size || t->too_big) {
		if (!t->too_big) {
			t->too_big = dlen;
			t->room = o->size;
		}
		return egc__skip(c, dlen);
	}
	return egc__read_exact(c, o->buf, (size_t)dlen);
}

static int read_block(eg_client *c, struct rows_state *st, uint64_t len)
{
	egc_ticket *t = st->t;
	size_t idx = t->nblocks_got++;
	struct egc_out *o = idx < t->nouts ? &t->outs[idx] : NULL;
	eg_client_rows rows = { 0 };
	uint64_t used = 0, key, v, shm_offset = 0;
	int err, in_shm = 0;

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
				rows.row_bytes = (uint32_t)v; /* uint32 on the wire: the low bits */
			else
				rows.count = v;
		} else if (key == (5 << 3 | WT_LEN) || key == (1 << 3 | WT_LEN)) {
			err = egc__varint(c, &v, &used);
			if (err < 0)
				return err;
			if (used > len || v > len - used)
				return egc__proto(c, "a row block field runs past the end of the block");
			used += v;
			if (key >> 3 == 5)
				err = read_data(c, t, o, v);
			else if (o)
				err = read_table_name(c, o, v);
			else
				err = egc__skip(c, v);
			if (err < 0)
				return err;
		} else {
			err = skip_field(c, key, len - used, &used);
			if (err < 0)
				return err;
		}
	}
	if (used != len)
		return egc__proto(c, "a varint runs past the end of a row block");
	if (o) {
		o->in_shm = in_shm;
		o->shm_offset = shm_offset;
		o->rows = rows;
	}
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
		case 9 << 3 | WT_VARINT:
			err = egc__varint(c, &st->t->got_tokens, &used);
			break;
		case 10 << 3 | WT_VARINT:
			err = egc__varint(c, &st->t->got_rpt, &used);
			st->t->got_rpt &= UINT32_MAX; /* uint32 on the wire */
			break;
		case 12 << 3 | WT_VARINT: /* reads_fixed_slots */
			err = egc__varint(c, &v, &used);
			if (err == 0 && v)
				__atomic_store_n(&c->reads_fixed_slots, 1, __ATOMIC_RELAXED);
			break;
		case 3 << 3 | WT_LEN:
		case 8 << 3 | WT_LEN:
			err = egc__varint(c, &v, &used);
			if (err < 0)
				return err;
			if (used > len || v > len - used)
				return egc__proto(c, "a field runs past the end of the response");
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
	return used == len ? 0 : egc__proto(c, "a varint runs past the end of the response");
}

static int read_msg(eg_client *c, egc_ticket *t, uint64_t len, uint64_t *id, uint64_t *status)
{
	unsigned char *buf;
	Engram__V1__Response *r;
	int err;

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
		return egc__proto(c, "protobuf-c cannot unpack it as a Response");
	*id = r->id;
	*status = (uint64_t)r->status;
	if (r->error)
		snprintf(t->msg, sizeof(t->msg), "%s", r->error);
	t->resp = r;
	return 0;
}

/* Drops the connection after a failure inside a frame (the stream is out of
 * step), with a message that says what went wrong. */
static int drop_in_frame(eg_client *c, int err)
{
	char why[EGC_MSG_MAX];

	if (err == -ECONNRESET) {
		err = EGC_EPROTOCOL;
		snprintf(why, sizeof(why), "%s closed the connection in the middle of a response "
		         "(a truncated frame)", c->addr);
	} else if (err == -ETIMEDOUT) {
		snprintf(why, sizeof(why), "no complete response from %s within %d ms "
		         "(it stopped or trickled in the middle of a frame)", c->addr, c->timeout_ms);
	} else if (err == EGC_EPROTOCOL) {
		snprintf(why, sizeof(why), "malformed response from %s: %s", c->addr,
		         c->proto_why ? c->proto_why : "unparseable");
	} else {
		snprintf(why, sizeof(why), "reading from %s: %s", c->addr, eg_client_strerror(err));
	}
	egc__drop(c, err, why);
	return err;
}

int egc__read_response(eg_client *c)
{
	egc_ticket *t = egc__head(c);
	struct rows_state st = { .t = t };
	uint64_t len, used = 0, id = 0, status = 0;
	unsigned char b;
	int err;
	char why[EGC_MSG_MAX];

	if (!t) {
		egc__drop(c, EGC_EPROTOCOL, "daemon sent a response nobody asked for");
		return EGC_EPROTOCOL;
	}
	err = egc__byte(c, &b);
	if (err == -ETIMEDOUT)
		return err; /* nothing consumed: the connection stays usable */
	if (err < 0) {
		if (err == -ECONNRESET)
			snprintf(why, sizeof(why), "connection to %s closed by the daemon", c->addr);
		else
			snprintf(why, sizeof(why), "reading from %s: %s", c->addr,
			         eg_client_strerror(err));
		egc__drop(c, err, why);
		return err;
	}
	c->rpos--;
	c->proto_why = NULL;
	err = egc__varint(c, &len, &used);
	if (err < 0)
		return drop_in_frame(c, err);
	if (t->kind == EGC_KIND_ROWS) /* by the layouts known now, on this connection */
		t->max_frame = egc__rows_frame_max(c, t);
	if (len > t->max_frame) {
		snprintf(why, sizeof(why),
		         "daemon announced a response of %llu bytes to request %llu; "
		         "a true answer has at most %llu",
		         (unsigned long long)len, (unsigned long long)t->id,
		         (unsigned long long)t->max_frame);
		egc__drop(c, EGC_EPROTOCOL, why);
		return EGC_EPROTOCOL;
	}
	t->msg[0] = '\0';
	if (t->kind == EGC_KIND_MSG) {
		err = read_msg(c, t, len, &id, &status);
	} else {
		err = parse_rows(c, &st, len);
		id = st.id;
		status = st.status;
	}
	if (err < 0)
		return drop_in_frame(c, err);
	if (id != t->id && !(id == 0 && status != 0)) {
		snprintf(why, sizeof(why), "daemon answered request %llu with id %llu",
		         (unsigned long long)t->id, (unsigned long long)id);
		egc__drop(c, EGC_EPROTOCOL, why);
		return EGC_EPROTOCOL;
	}
	t->done = 1;
	t->err = egc__status_err((int)(status > 1000 ? 1000 : status));
	if (t->err == 0 && t->kind == EGC_KIND_ROWS)
		egc__check_rows(c, t);
	if (t->err != 0 && !t->msg[0])
		snprintf(t->msg, sizeof(t->msg), "daemon: %s", eg_client_strerror(t->err));
	if (id == 0 && status != 0) {
		/* an answer to no request (an unreadable frame): the daemon
		 * closes the connection after it */
		egc__drop(c, -ECONNRESET, t->msg);
	}
	egc__reap(c);
	return 0;
}
