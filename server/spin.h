/* spin.h - busy polling (--busy-poll USEC): after the answer of a small
 * request (at most --urgent-rows rows: a decode step's) is written, a
 * worker loop polls its sockets without sleeping for USEC microseconds
 * more, so that the client's next step finds the thread running; a loop
 * that answers only large requests (prefill) sleeps as before. Waking a
 * sleeping thread costs the client's send an inter-processor interrupt
 * (some microseconds, more in a virtual machine); a running one does not.
 * The price: a core spins while steps come closer together than USEC.
 * 0 (default): never. */
#ifndef ED_SPIN_H
#define ED_SPIN_H

#include <stdint.h>
#include <uv.h>

/* One loop's poller; the caller owns the memory, valid until the close
 * callback of ed_spin_close has run (its loop ends). */
struct ed_spin {
	uv_idle_t idle;     /* active: the loop polls with a zero timeout */
	uint64_t until_ns;  /* uv_hrtime() at which it sleeps again */
	uint64_t window_ns; /* --busy-poll, 0 = off */
};

/* Sets s up on loop with a window of usec microseconds (0 = off).
 * Returns 0 or a libuv error. */
int ed_spin_init(struct ed_spin *s, uv_loop_t *loop, unsigned usec);
/* A small request's answer was written: poll on for the window from now
 * (nothing once ed_spin_close was called). Loop thread. */
void ed_spin_touch(struct ed_spin *s);
/* Stops and closes the poller (the loop is ending). Loop thread. */
void ed_spin_close(struct ed_spin *s);

#endif
