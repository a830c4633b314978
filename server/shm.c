/* shm.c - the same-host fast path's shared buffers: taking the memfd a
 * client passes with SCM_RIGHTS, and checking and mapping it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "shm.h"

void ed_shm_take_fd(struct msghdr *msg, int *pass_fd)
{
	int n_fds = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n_fds++ == 0 && *pass_fd < 0)
				*pass_fd = fd;
			else
				close(fd);
		}
	}
	if (n_fds > 1 && *pass_fd >= 0) {
		close(*pass_fd); /* one buffer per connection: refuse the lot */
		*pass_fd = -1;
	}
}

int ed_shm_map(int fd, uint64_t size, void **base, char *msg, size_t msg_len)
{
	int status = ENGRAM__V1__STATUS__BAD_REQUEST, seals;
	struct stat st;
	void *p;

	if (size == 0 || size > ed_cfg.max_shm || size > SIZE_MAX) {
		snprintf(msg, msg_len, "shared buffer of %llu bytes: give 1 .. %llu bytes (--max-shm)",
		         (unsigned long long)size, (unsigned long long)ed_cfg.max_shm);
		if (size != 0)
			status = ENGRAM__V1__STATUS__TOO_LARGE;
		goto refuse;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msg_len, "the fd passed with attach_shm is not a memfd");
		goto refuse;
	}
	/* a buffer the client could shrink under us would fault the daemon */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		snprintf(msg, msg_len,
		         "the memfd passed with attach_shm must be sealed with F_SEAL_SHRINK "
		         "(memfd_create with MFD_ALLOW_SEALING, then fcntl F_ADD_SEALS)");
		goto refuse;
	}
	if ((uint64_t)st.st_size < size) {
		snprintf(msg, msg_len, "the memfd has %lld bytes, fewer than the %llu asked",
		         (long long)st.st_size, (unsigned long long)size);
		goto refuse;
	}
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(msg, msg_len, "cannot map the shared buffer: %s", strerror(errno));
		goto refuse;
	}
	close(fd);
	*base = p;
	return ENGRAM__V1__STATUS__OK;
refuse:
	close(fd);
	return status;
}
