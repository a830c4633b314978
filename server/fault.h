/* fault.h - fault hooks for the tests. They exist only in the tests'
 * build of the daemon (engramd-faults, compiled with ED_FAULT_HOOKS); in
 * engramd these calls do nothing and read no environment.
 *
 * In engramd-faults:
 *   ENGRAMD_FAULT_WEDGE=WORKER:MS  SIGUSR1 blocks worker loop WORKER for MS
 *                                  milliseconds (ed_worker_wedge)
 *   ENGRAMD_FAULT_SLOW_START=MS    the tables start loading MS later
 *   ENGRAMD_FAULT_SLOW_REFILL=MS   each read-back of a warm table's evicted
 *                                  pages (pager.c) starts MS later, as
 *                                  on a disk that hangs
 *   ENGRAMD_FAULT_FRAME_NOMEM=N    each SIGUSR2 makes N more allocations
 *                                  of a response frame fail (encode.c),
 *                                  as malloc does when memory runs out */
#ifndef ED_FAULT_H
#define ED_FAULT_H

#include <uv.h>

/* Before the tables load (main thread). */
void ed_fault_before_load(void);
/* Before the refresh thread reads evicted pages back (that thread). */
void ed_fault_before_refill(void);
/* Whether this allocation of a response frame is to fail (any thread). */
int ed_fault_frame_nomem(void);
/* Arms the signal hooks on the acceptor loop; ed_fault_stop closes them. */
void ed_fault_start(uv_loop_t *loop);
void ed_fault_stop(void);

#endif
