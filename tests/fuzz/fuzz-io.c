/* Socket feeding for the harnesses (fuzz-io.h). */
#include "fuzz-io.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

gboolean fuzz_io_step(int fd, const uint8_t *data, size_t size, size_t *off, int timeout_ms)
{
	static uint8_t sink[65536];
	struct pollfd p = { .fd = fd, .events = *off < size ? POLLIN | POLLOUT : POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return TRUE;
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return FALSE;
	}
	if (*off < size && (p.revents & POLLOUT)) {
		n = send(fd, data + *off, size - *off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			*off += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			*off = size;   /* the engine stopped reading: the rest is not for it */
		if (*off == size)
			shutdown(fd, SHUT_WR);
	}
	return TRUE;
}

void fuzz_io_deadline(gint64 end, const char *what)
{
	if (g_get_monotonic_time() > end) {
		fprintf(stderr, "fuzz: the engine hung: %s\n", what);
		abort();
	}
}
