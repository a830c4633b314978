/* shm.h - shared buffers of the same-host fast path (see docs/PROTOCOL.md). */
#ifndef ED_SHM_H
#define ED_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engram.pb-c.h"

/* Takes the fds out of msg's SCM_RIGHTS control messages: a lone fd goes to
 * *pass_fd (when it holds none yet, -1); any other is closed, and so is a
 * lone one that came with others (one buffer per connection). */
void ed_shm_take_fd(struct msghdr *msg, int *pass_fd);

/* Checks that fd is a memfd sealed against shrinking, of at least size bytes,
 * size within 1 .. --max-shm, and maps it shared read-write at *base.
 * Always closes fd. Returns ENGRAM__V1__STATUS__OK, or the status to answer
 * with and a message for the client in msg. */
int ed_shm_map(int fd, uint64_t size, void **base, char *msg, size_t msg_len);

#endif
