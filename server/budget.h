/* budget.h - the daemon-wide bound on answer bytes in memory
 * (--max-output-total). Every connection counts here what its answers hold,
 * from the moment a lookup is admitted (before its frame is allocated) or a
 * small answer is made, until the request is freed after its last byte was
 * written. Any thread. */
#ifndef ED_BUDGET_H
#define ED_BUDGET_H

#include <stdint.h>

struct ed_worker;

/* Counts n bytes when they fit under --max-output-total and returns 0;
 * else returns -EAGAIN, and w's loop is woken (ed_worker_budget_wake) the
 * next time bytes are given back. */
int ed_budget_take(uint64_t n, struct ed_worker *w);
/* Whether n bytes would fit now; when not, w is woken as after
 * ed_budget_take. Counts nothing. */
int ed_budget_fits(uint64_t n, struct ed_worker *w);
/* Counts n bytes, fitting or not: small answers already made. */
void ed_budget_force(uint64_t n);
/* Gives back n counted bytes and wakes the loops waiting for room. */
void ed_budget_give(uint64_t n);
/* Bytes counted now. */
uint64_t ed_budget_used(void);

#endif
