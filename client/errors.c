/* errors.c - naming libengram's error codes, and the per-client detail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "egc_int.h"

const char *eg_client_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case EGC_EBADREQUEST:
		return "bad request";
	case EGC_ENOTFOUND:
		return "unknown table";
	case EGC_EOUTOFRANGE:
		return "slot out of range";
	case EGC_ETOOLARGE:
		return "request or response too large for the daemon";
	case EGC_EUNAVAILABLE:
		return "daemon unavailable (shutting down or table not loaded)";
	case EGC_EINTERNAL:
		return "internal error in the daemon";
	case EGC_EPROTOCOL:
		return "protocol error: the daemon sent something unparseable";
	case EGC_EADDR:
		return "bad address (expected unix:PATH or tcp:HOST:PORT)";
	case EGC_EBUFSIZE:
		return "buffer too small for the rows";
	case EGC_ETICKET:
		return "unknown or already collected ticket";
	}
	if (err < 0 && err > -4096)
		return strerror(-err); /* glibc: thread-safe, static text */
	return "unknown error";
}

/* Status (proto enum) to an EGC_E* code; unknown values are a protocol error. */
int egc__status_err(int status)
{
	if (status == 0)
		return 0;
	if (status >= 1 && status <= 6)
		return -29900 - status;
	return EGC_EPROTOCOL;
}

int egc__proto(eg_client *c, const char *why)
{
	c->proto_why = why;
	return EGC_EPROTOCOL;
}

void egc__set_msg(eg_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	/* one line of text whatever a daemon put into names and messages */
	for (char *p = c->errmsg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

const char *eg_client_errmsg(const eg_client *c)
{
	if (!c)
		return "no client";
	return c->errmsg;
}
