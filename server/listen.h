/* listen.h - listening sockets (unix, TCP, systemd-activated) and accept. */
#ifndef ED_LISTEN_H
#define ED_LISTEN_H

#include <uv.h>

/* Opens every --listen address and takes systemd's sockets, then accepts on
 * loop and passes each connected fd to on_fd. Returns 0, or -1 after logging
 * (also when there is no listener at all). */
int ed_listen_open(uv_loop_t *loop, void (*on_fd)(int fd));

/* Stops accepting, closes the listeners, removes the unix socket files this
 * process created. */
void ed_listen_close(void);

#endif
