/* reader.c - the client's lock and its optional reader thread, which reads
 * responses as they arrive so that a ticket sent early is complete when the
 * caller comes back for it (see eg_client_start_reader in engram.h and the
 * thread rules in egc_int.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "egc_fleet.h"

int egc__lock_init(eg_client *c)
{
	pthread_condattr_t a;
	int rc;

	if ((rc = pthread_mutex_init(&c->mu, NULL)) != 0)
		return -rc;
	/* waits are bounded by monotonic deadlines, as every other wait here */
	if ((rc = pthread_condattr_init(&a)) == 0) {
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		rc = pthread_cond_init(&c->cv, &a);
		pthread_condattr_destroy(&a);
	}
	if (rc != 0) {
		pthread_mutex_destroy(&c->mu);
		return -rc;
	}
	return 0;
}

void egc__lock(eg_client *c)
{
	pthread_mutex_lock(&c->mu);
}

void egc__unlock(eg_client *c)
{
	pthread_mutex_unlock(&c->mu);
}

void egc__fd_wait_begin(eg_client *c)
{
	if (!c->reader_on)
		return;
	c->fd_users++;
	pthread_mutex_unlock(&c->mu);
}

void egc__fd_wait_end(eg_client *c)
{
	if (!c->reader_on)
		return;
	pthread_mutex_lock(&c->mu);
	if (--c->fd_users == 0 && c->zombie >= 0) {
		close(c->zombie);
		c->zombie = -1;
	}
}

int egc__cv_wait(eg_client *c)
{
	struct timespec ts;
	int64_t d = c->deadline;

	if (d < 0)
		return -pthread_cond_wait(&c->cv, &c->mu);
	if (egc__now_ms() >= d)
		return -ETIMEDOUT;
	ts.tv_sec = (time_t)(d / 1000);
	ts.tv_nsec = (long)(d % 1000) * 1000000;
	return pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void egc__drop_call(eg_client *c, int err, const char *why)
{
	if (c->reader_on && c->rd_active && c->fd >= 0) {
		c->kill_err = err;
		snprintf(c->kill_why, sizeof(c->kill_why), "%s", why);
		shutdown(c->fd, SHUT_RDWR);
		while (c->rd_active)
			pthread_cond_wait(&c->cv, &c->mu);
		c->kill_err = 0;
	}
	egc__drop(c, err, why);
}

static void *reader_main(void *arg)
{
	eg_client *c = arg;

	pthread_setname_np(pthread_self(), "eg-reader"); /* as top -H shows it */
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->rd_stop && (c->fd < 0 || !egc__head(c)))
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->rd_stop)
			break;
		c->rd_active = 1;
		/* a failure drops the connection: the tickets carry it */
		egc__read_response(c);
		c->rd_active = 0;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int eg_client_start_reader(eg_client *c)
{
	int rc = 0;

	if (!c)
		return -EINVAL;
	if (c->fleet)
		return egc__fleet_start_readers(c);
	egc__lock(c);
	if (!c->reader_on) {
		c->reader_on = 1;
		c->rd_deadline = -1; /* the thread reads whatever comes, however late */
		rc = -pthread_create(&c->reader, NULL, reader_main, c);
		if (rc < 0) {
			c->reader_on = 0;
			c->rd_deadline = c->deadline;
			egc__set_msg(c, "starting the reader thread: %s", strerror(-rc));
		}
	}
	egc__unlock(c);
	return rc;
}

void egc__reader_stop(eg_client *c)
{
	if (!c->reader_on)
		return;
	pthread_mutex_lock(&c->mu);
	c->rd_stop = 1;
	if (c->rd_active && c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->reader, NULL);
	c->reader_on = 0;
}

int eg_client_ready(eg_client *c, uint64_t ticket)
{
	int rc = EGC_ETICKET;

	if (!c)
		return -EINVAL;
	if (c->fleet)
		return -ENOTSUP;
	egc__lock(c);
	for (size_t i = 0; i < c->qlen; i++)
		if (c->q[i]->id == ticket && !c->q[i]->orphan)
			rc = c->q[i]->done;
	if (rc == EGC_ETICKET)
		egc__set_msg(c, "ticket %llu is unknown or was already collected",
		             (unsigned long long)ticket);
	egc__unlock(c);
	return rc;
}
