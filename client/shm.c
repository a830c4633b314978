/* shm.c - the same-host fast path: a shared buffer (a memfd) the daemon
 * writes rows into, so that a response carries only where they are.
 *
 * The memfd is passed with SCM_RIGHTS along with an AttachShmRequest, the
 * first frame of a fresh unix connection; egc__dial calls egc__shm_reattach
 * after every connect, so a reconnect attaches the same buffer again. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egc_int.h"

void egc__shm_release(eg_client *c)
{
	if (c->shm_base)
		munmap(c->shm_base, c->shm_size);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	c->shm_base = NULL;
	c->shm_size = 0;
	c->shm_fd = -1;
}

/* Sends frame with the memfd as SCM_RIGHTS on its first byte. */
static int send_with_fd(eg_client *c, const unsigned char *frame, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)frame, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int first = 1, err;
	ssize_t r;

	while (iov.iov_len > 0) {
		if (first) {
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &c->shm_fd, sizeof(int));
		} else {
			msg.msg_control = NULL;
			msg.msg_controllen = 0;
		}
		r = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			first = 0;
			iov.iov_base = (char *)iov.iov_base + r;
			iov.iov_len -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		err = egc__poll(c, POLLOUT, NULL);
		if (err < 0)
			return err;
	}
	return 0;
}

int egc__shm_reattach(eg_client *c)
{
	Engram__V1__AttachShmRequest a = ENGRAM__V1__ATTACH_SHM_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	unsigned char frame[64], *p = frame;
	size_t body;
	egc_ticket *t;
	uint64_t v;
	int err;

	if (c->shm_fd < 0 || c->fd < 0)
		return 0;
	t = egc__ticket_new(c, EGC_KIND_MSG, 0, NULL);
	if (!t) {
		err = -ENOMEM;
		egc__set_msg(c, "out of memory");
		goto fail;
	}
	t->max_frame = EGC_SMALL_FRAME_MAX;
	a.size = c->shm_size;
	req.id = t->id;
	req.body_case = ENGRAM__V1__REQUEST__BODY_ATTACH_SHM;
	req.attach_shm = &a;
	body = engram__v1__request__get_packed_size(&req);
	for (v = body; v >= 0x80; v >>= 7)
		*p++ = (unsigned char)(v | 0x80);
	*p++ = (unsigned char)v;
	engram__v1__request__pack(&req, p);
	err = egc__push(c, t);
	if (err < 0) {
		egc__ticket_free(t);
		egc__set_msg(c, "out of memory");
		goto fail;
	}
	err = send_with_fd(c, frame, (size_t)(p - frame) + body);
	if (err < 0) {
		egc__drop_call(c, err, "sending attach_shm");
		egc__collect(c, req.id, &t);
		egc__ticket_free(t);
		egc__set_msg(c, "attaching the shared buffer on %s: %s", c->addr,
		             eg_client_strerror(err));
		goto fail;
	}
	err = egc__collect(c, req.id, &t);
	if (err < 0) {
		/* timeout (message set): this connection is out of step */
		egc__drop_call(c, err, "no answer to attach_shm");
		if (egc__collect(c, req.id, &t) == 0)
			egc__ticket_free(t);
		goto fail;
	}
	err = t->err;
	if (err < 0)
		egc__set_msg(c, "attaching the shared buffer on %s: %s", c->addr, t->msg);
	/* a daemon that predates shm_slots answers with no body */
	c->shm_reads_slots = err == 0 && t->resp &&
	                     t->resp->body_case == ENGRAM__V1__RESPONSE__BODY_ATTACH_SHM &&
	                     t->resp->attach_shm->reads_slots;
	egc__ticket_free(t);
	if (err == 0)
		return 0;
fail:
	if (c->fd >= 0)
		egc__drop_call(c, err, "the shared buffer could not be attached");
	return err;
}

static int attach_shm(eg_client *c, size_t size, void **base)
{
	void *p;
	int fd, err;

	if (!base || size == 0) {
		egc__set_msg(c, "eg_client_attach_shm: NULL base or size 0");
		return -EINVAL;
	}
	*base = NULL;
	if (c->fleet) {
		egc__set_msg(c, "a shared buffer needs a client of one unix address, not a list");
		return -EINVAL;
	}
	if (strncmp(c->addr, "unix:", 5) != 0) {
		egc__set_msg(c, "a shared buffer needs a unix socket address, not %s", c->addr);
		return -EINVAL;
	}
	if (c->shm_fd >= 0) {
		egc__set_msg(c, "a shared buffer is already attached");
		return -EBUSY;
	}
	if (egc__head(c)) {
		egc__set_msg(c, "collect every outstanding ticket before attaching a shared buffer");
		return -EBUSY;
	}
	fd = memfd_create("engram-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		err = -errno;
		egc__set_msg(c, "memfd_create: %s", strerror(errno));
		return err;
	}
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		err = -errno;
		egc__set_msg(c, "sizing the shared buffer (%zu bytes): %s", size, strerror(errno));
		close(fd);
		return err;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		egc__set_msg(c, "mapping the shared buffer (%zu bytes): %s", size, strerror(errno));
		close(fd);
		return err;
	}
	c->shm_fd = fd;
	c->shm_base = p;
	c->shm_size = size;
	/* the attach must be the first frame of a connection: start afresh */
	if (c->fd >= 0)
		egc__drop(c, -ECONNRESET, "reconnecting to attach a shared buffer");
	egc__start_call(c);
	err = egc__dial(c);
	if (err < 0) {
		egc__shm_release(c);
		return err;
	}
	*base = p;
	return 0;
}

int eg_client_attach_shm(eg_client *c, size_t size, void **base)
{
	int err;

	if (!c)
		return -EINVAL;
	egc__lock(c);
	err = attach_shm(c, size, base);
	egc__unlock(c);
	return err;
}

static int no_shm(eg_client *c)
{
	if (c->shm_fd >= 0)
		return 0;
	egc__set_msg(c, "no shared buffer: call eg_client_attach_shm first");
	return -EINVAL;
}

int eg_client_send_lookup_shm(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                              uint64_t offset, uint64_t *ticket)
{
	int err;

	if (!c)
		return -EINVAL;
	if (!table || !ticket || (n && !slots)) {
		egc__set_msg(c, "eg_client_send_lookup_shm: NULL argument");
		return -EINVAL;
	}
	err = no_shm(c);
	if (err < 0)
		return err;
	return egc__send_lookup(c, table, slots, n, NULL, 0, 1, offset, ticket);
}

int eg_client_send_tokens_shm(eg_client *c, const char *const *tables, size_t ntables,
                              const int64_t *tokens, size_t ntokens, const uint32_t *seq_lens,
                              const uint32_t *context, size_t nseq, uint64_t offset,
                              uint64_t *ticket)
{
	int err;

	if (!c)
		return -EINVAL;
	err = no_shm(c);
	if (err < 0)
		return err;
	return egc__send_tokens(c, tables, ntables, tokens, ntokens, seq_lens, context, nseq, NULL,
	                        NULL, 1, offset, ticket);
}

int eg_client_wait_shm(eg_client *c, uint64_t ticket, eg_client_rows *blocks,
                       const void **data, size_t nblocks)
{
	if (!c)
		return -EINVAL;
	if (nblocks && (!blocks || !data)) {
		egc__set_msg(c, "eg_client_wait_shm: NULL blocks or data");
		return -EINVAL;
	}
	return egc__wait(c, ticket, blocks, data, nblocks, 1);
}

int eg_client_lookup_shm(eg_client *c, const char *table, const uint64_t *slots, size_t n,
                         uint64_t offset, eg_client_rows *rows, const void **data)
{
	eg_client_rows r;
	const void *d;
	uint64_t ticket;
	int err;

	err = eg_client_send_lookup_shm(c, table, slots, n, offset, &ticket);
	if (err < 0)
		return err;
	err = eg_client_wait_shm(c, ticket, &r, &d, 1);
	if (err == 0) {
		if (rows)
			*rows = r;
		if (data)
			*data = d;
	}
	return err;
}
