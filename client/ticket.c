/* ticket.c - the queue of outstanding requests: sending one, collecting one.
 *
 * A ticket is the request id. The queue keeps tickets in send order; since
 * responses come in that order, the answered ones form a prefix and the
 * oldest unanswered one owns the next frame on the wire. Waiting for a later
 * ticket reads the earlier responses on the way (their rows go straight to
 * their own buffers) and keeps them until they are collected. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egc_int.h"

egc_ticket *egc__ticket_new(eg_client *c, enum egc_kind kind, size_t nouts,
                            const char *const *tables)
{
	egc_ticket *t;
	size_t names = 0, i, k;
	char *p;

	if (nouts > ((size_t)-1 / 2 - sizeof(*t)) / sizeof(t->outs[0]))
		return NULL;
	for (i = 0; tables && i < nouts; i++) {
		k = strlen(tables[i]) + 1;
		if (k > (size_t)-1 / 2 - names)
			return NULL;
		names += k;
	}
	t = calloc(1, sizeof(*t) + nouts * sizeof(t->outs[0]) + names);
	if (!t)
		return NULL;
	t->id = c->next_id++;
	t->kind = kind;
	t->nouts = nouts;
	t->max_frame = EGC_MSG_FRAME_MAX;
	p = (char *)&t->outs[nouts];
	for (i = 0; tables && i < nouts; i++) {
		k = strlen(tables[i]) + 1;
		memcpy(p, tables[i], k);
		t->outs[i].table = p;
		p += k;
	}
	return t;
}

void egc__ticket_free(egc_ticket *t)
{
	if (!t)
		return;
	if (t->resp)
		engram__v1__response__free_unpacked(t->resp, NULL);
	free(t);
}

egc_ticket *egc__head(eg_client *c)
{
	size_t i;

	for (i = 0; i < c->qlen; i++)
		if (!c->q[i]->done)
			return c->q[i];
	return NULL;
}

/* Frees answered tickets nobody will collect. */
void egc__reap(eg_client *c)
{
	size_t i, j = 0;

	for (i = 0; i < c->qlen; i++) {
		if (c->q[i]->orphan && c->q[i]->done)
			egc__ticket_free(c->q[i]);
		else
			c->q[j++] = c->q[i];
	}
	c->qlen = j;
}

int egc__push(eg_client *c, egc_ticket *t)
{
	egc_ticket **q;
	size_t cap;

	if (c->qlen == c->qcap) {
		cap = c->qcap ? c->qcap * 2 : 16;
		q = realloc(c->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		c->q = q;
		c->qcap = cap;
	}
	c->q[c->qlen++] = t;
	pthread_cond_broadcast(&c->cv); /* the reader thread: a ticket to read */
	return 0;
}

static void unlink_ticket(eg_client *c, egc_ticket *t)
{
	size_t i;

	for (i = 0; i < c->qlen; i++) {
		if (c->q[i] == t) {
			memmove(c->q + i, c->q + i + 1, (c->qlen - i - 1) * sizeof(*c->q));
			c->qlen--;
			return;
		}
	}
}

/* Writes the frame of t. While the socket is full it reads responses (or
 * lets the reader thread read them), so a daemon that stops reading until
 * its answers are taken cannot deadlock with us. */
static int write_frame(eg_client *c, egc_ticket *t, const unsigned char *p, size_t n)
{
	ssize_t r;
	short rev;
	int err;

	while (n > 0) {
		if (c->fd < 0) /* dropped by the reader thread meanwhile */
			return t->done && t->err ? t->err : -ECONNRESET;
		r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		err = egc__poll(c, c->reader_on ? POLLOUT : POLLOUT | POLLIN, &rev);
		if (err < 0)
			return err;
		if (c->reader_on && t->done)
			return t->err ? t->err : EGC_EPROTOCOL;
		if (!c->reader_on && (rev & POLLIN) && !(rev & POLLOUT)) {
			err = egc__read_response(c);
			if (err < 0)
				return err;
			if (t->done) /* answered before it was whole: refused */
				return t->err ? t->err : EGC_EPROTOCOL;
		}
	}
	return 0;
}

/* After a failed write: an answer the daemon sent before closing (a frame it
 * refused, say) says more than EPIPE does. Reads what is already there, or
 * gives the reader thread a moment to (more when the daemon has closed: it
 * then sees the end soon). */
static void read_leftovers(eg_client *c, const egc_ticket *t, int closed)
{
	int64_t saved = c->deadline;

	/* a moment, not zero: reads check the deadline by the millisecond */
	c->deadline = egc__now_ms() + (c->reader_on && closed ? 1000 : 2);
	if (c->reader_on) {
		while (!t->done && c->fd >= 0 && egc__cv_wait(c) == 0)
			;
	} else {
		c->rd_deadline = c->deadline;
		while (c->fd >= 0 && egc__head(c) && egc__read_response(c) == 0)
			;
		c->rd_deadline = saved;
	}
	c->deadline = saved;
}

static int only_pending(eg_client *c, const egc_ticket *t)
{
	return egc__head(c) == t && c->q[c->qlen - 1] == t;
}

int egc__send(eg_client *c, egc_ticket *t, const unsigned char *frame, size_t len)
{
	int err, attempt, alone, refused;

	for (attempt = 0;; attempt++) {
		err = egc__ensure_connected(c);
		if (err < 0)
			goto fail; /* message set by the dial */
		err = egc__push(c, t);
		if (err < 0) {
			egc__set_msg(c, "out of memory queueing a request");
			goto fail;
		}
		alone = only_pending(c, t);
		err = write_frame(c, t, frame, len);
		if (err == 0)
			return 0;
		if (!t->done && c->fd >= 0)
			read_leftovers(c, t, err == -EPIPE || err == -ECONNRESET);
		refused = t->done && t->err <= EGC_EBADREQUEST && t->err >= EGC_EINTERNAL;
		if (!refused) /* after it no thread touches t: it may go */
			egc__drop_call(c, err == -EPIPE ? -ECONNRESET : err,
			               "connection lost while sending");
		unlink_ticket(c, t);
		if (refused) {
			/* the daemon's own answer (frame refused) */
			err = t->err;
			egc__set_msg(c, "%s", t->msg);
			goto fail;
		}
		/* a daemon restarted under an idle client: one fresh try */
		if (attempt == 0 && alone && (err == -EPIPE || err == -ECONNRESET)) {
			t->done = 0;
			t->err = 0;
			t->msg[0] = '\0';
			continue;
		}
		egc__set_msg(c, "sending to %s: %s", c->addr, eg_client_strerror(err));
		goto fail;
	}
fail:
	egc__ticket_free(t);
	return err;
}

int egc__collect(eg_client *c, uint64_t ticket, egc_ticket **out)
{
	egc_ticket *t = NULL;
	size_t i;
	int err;

	for (i = 0; i < c->qlen; i++) {
		if (c->q[i]->id == ticket) {
			t = c->q[i];
			break;
		}
	}
	if (!t) {
		egc__set_msg(c, "ticket %llu is unknown or was already collected",
		             (unsigned long long)ticket);
		return EGC_ETICKET;
	}
	while (!t->done) {
		/* with the reader thread on, it reads; a timeout leaves the
		 * ticket outstanding, its frame still read when it comes */
		err = c->reader_on ? egc__cv_wait(c) : egc__read_response(c);
		if (err == -ETIMEDOUT && !t->done) {
			egc__set_msg(c, "no response from %s within %d ms (ticket %llu still pending)",
			             c->addr, c->timeout_ms, (unsigned long long)ticket);
			return err;
		}
	}
	unlink_ticket(c, t);
	*out = t;
	return 0;
}
