/* conn.c - a connection's life: the state machine drawn in conn_int.h,
 * opening, closing and freeing. The work is split by what it touches:
 * conn_shm.c reads a unix connection's first bytes (and a memfd sent with
 * them) and hands the socket to the pipe, conn_in.c frames and dispatches
 * requests, conn_out.c writes answers in order and says when output backs
 * up. */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "conn_int.h"
#include "log.h"
#include "loop.h"
#include "stats.h"

#define SEND_BUFFER_BYTES (4 << 20)

/* Every transition; an event its state does not list leaves it as it is. */
static const struct move {
	enum ed_conn_state from;
	enum ed_conn_ev ev;
	enum ed_conn_state to;
} moves[] = {
	{ ED_CONN_FIRST_READ, ED_CONN_EV_FIRST_BYTES, ED_CONN_HANDOVER },
	{ ED_CONN_FIRST_READ, ED_CONN_EV_EOF, ED_CONN_CLOSING },   /* nothing to answer */
	{ ED_CONN_FIRST_READ, ED_CONN_EV_DRAIN, ED_CONN_CLOSING },
	{ ED_CONN_FIRST_READ, ED_CONN_EV_CLOSE, ED_CONN_CLOSING },
	/* a drain during the hand-over is seen once the pipe is open */
	{ ED_CONN_HANDOVER, ED_CONN_EV_PIPE_OPEN, ED_CONN_OPEN },
	{ ED_CONN_HANDOVER, ED_CONN_EV_CLOSE, ED_CONN_CLOSING },
	{ ED_CONN_OPEN, ED_CONN_EV_EOF, ED_CONN_FINISHING },
	{ ED_CONN_OPEN, ED_CONN_EV_DRAIN, ED_CONN_FINISHING },
	{ ED_CONN_OPEN, ED_CONN_EV_BAD_FRAME, ED_CONN_BROKEN },
	{ ED_CONN_OPEN, ED_CONN_EV_CLOSE, ED_CONN_CLOSING },
	{ ED_CONN_FINISHING, ED_CONN_EV_BAD_FRAME, ED_CONN_BROKEN },
	{ ED_CONN_FINISHING, ED_CONN_EV_ANSWERED, ED_CONN_CLOSING },
	{ ED_CONN_FINISHING, ED_CONN_EV_CLOSE, ED_CONN_CLOSING },
	{ ED_CONN_BROKEN, ED_CONN_EV_ANSWERED, ED_CONN_CLOSING },
	{ ED_CONN_BROKEN, ED_CONN_EV_CLOSE, ED_CONN_CLOSING },
};

void ed__conn_free_if_idle(struct ed_conn *c)
{
	struct ed_req *r, *next;

	if (c->state != ED_CONN_CLOSING || c->handles > 0 || c->jobs > 0)
		return;
	for (r = c->head; r; r = next) {
		next = r->next;
		ed__conn_req_free(c, r);
	}
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->pass_fd >= 0)
		close(c->pass_fd);
	free(c->in);
	ed_worker_conn_del(c->w, &c->u.h);
	free(c);
}

static void on_close(uv_handle_t *h)
{
	struct ed_conn *c = h->data;

	c->handles--;
	ed_stat_add(connections, (uint_fast64_t)-1);
	ed__conn_free_if_idle(c);
}

int ed__conn_event(struct ed_conn *c, enum ed_conn_ev ev)
{
	enum ed_conn_state from = c->state, to = from;

	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++)
		if (moves[i].from == from && moves[i].ev == ev)
			to = moves[i].to;
	if (to == from)
		return 0;
	c->state = to;
	switch (to) {
	case ED_CONN_HANDOVER:
		ed__conn_close_poll(c);
		break;
	case ED_CONN_FINISHING:
	case ED_CONN_BROKEN:
		uv_read_stop(&c->u.s);
		break;
	case ED_CONN_CLOSING:
		if (from == ED_CONN_FIRST_READ)
			ed__conn_close_poll(c);
		uv_read_stop(&c->u.s);
		uv_close(&c->u.h, on_close);
		break;
	default:
		break;
	}
	return 1;
}

void ed_conn_open(struct ed_worker *w, int fd)
{
	struct ed_conn *c = calloc(1, sizeof(*c));
	uv_loop_t *loop = ed_worker_loop(w);
	int domain = AF_UNIX, rc;
	socklen_t sl = sizeof(domain);

	if (!c) {
		close(fd);
		return;
	}
	c->state = ED_CONN_OPEN; /* conn_shm.c makes a unix one FIRST_READ */
	c->fd = -1;
	c->pass_fd = -1;
	c->w = w;
	c->u.h.data = c;
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &sl);
	/* big responses leave in fewer, larger writes (the kernel caps it at
	 * net.core.wmem_max) */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ SEND_BUFFER_BYTES }, sizeof(int));
	if (domain == AF_UNIX) {
		/* opened on the pipe after the first read (conn_shm.c) */
		uv_pipe_init(loop, &c->u.pipe, 0);
		c->handles = 1;
		rc = ed__conn_first_read(c, loop, fd);
	} else {
		uv_tcp_init(loop, &c->u.tcp);
		c->handles = 1;
		rc = uv_tcp_open(&c->u.tcp, fd);
		if (rc == 0)
			uv_tcp_nodelay(&c->u.tcp, 1);
	}
	ed_worker_conn_add(w, &c->u.h);
	ed_stat_add(connections, 1);
	ed_stat_add(connections_total, 1);
	if (rc) {
		ed_warn("cannot take a connection: %s", uv_strerror(rc));
		if (c->state != ED_CONN_FIRST_READ)
			close(fd); /* else closed with the poll handle */
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	if (ed_worker_stopping(w)) {
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	ed__conn_set_reading(c);
}

void ed_conn_drain(uv_handle_t *h)
{
	struct ed_conn *c = h->data;

	if (ed__conn_event(c, ED_CONN_EV_DRAIN) && c->state == ED_CONN_FINISHING)
		ed__conn_process(c); /* closes once what was received is answered */
}

void ed_conn_abort(uv_handle_t *h)
{
	ed__conn_event(h->data, ED_CONN_EV_CLOSE);
}

void ed_conn_retry(uv_handle_t *h)
{
	struct ed_conn *c = h->data;

	if (c->want > 0)
		ed__conn_process(c);
}
