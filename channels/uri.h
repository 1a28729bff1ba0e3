/* Migration URIs ("tcp:HOST:PORT", "unix:PATH", "fd:NAME", "file:PATH[,offset=N]") and
 * the sockets behind the first three (a file is opened by its users: engine/mapfile.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef enum { MIG_URI_TCP = 1, MIG_URI_UNIX = 2, MIG_URI_FD = 3, MIG_URI_FILE = 4 } MigUriKind;

typedef struct MigUri {
	MigUriKind kind;
	char host[256];   /* tcp: host name or literal; "[::1]" brackets removed */
	char port[16];    /* tcp: decimal port, "0" lets the kernel choose */
	char path[108];   /* unix: socket path; fd: the descriptor's name (QMP getfd) */
	char file[4096];  /* file: the file's path (QEMU's "file:PATH[,offset=N]") */
	unsigned long long offset;  /* file: where the migration starts in it */
} MigUri;

/* Returns 0 or -EINVAL (unknown scheme, missing port, path too long...). A file's
 * offset is a size as QEMU takes it: decimal with an optional K/M/G... suffix, or
 * 0x-hex. */
int mig_uri_parse(const char *uri, MigUri *out);

/* fd:NAME: a socket someone else connected (QMP getfd), made fit for a channel:
 * blocking, close-on-exec, TCP_NODELAY when it is TCP. 0, or -ENOTSOCK when it is not
 * a stream socket (the channel needs both directions: a pipe or file will not do). */
int mig_uri_adopt_fd(int fd);

/* Listening socket, SOCK_CLOEXEC; unix paths are unlinked first. Returns fd or -errno.
 * tcp binds the first resolved address that works (SO_REUSEADDR). Only a stale
 * *socket* file (a connect() to it is refused) is unlinked; a live socket or any
 * other file makes it -EADDRINUSE.
 * Name resolution failures map to -ENXIO (unknown host), -EAGAIN (temporary),
 * -ENOMEM, -EAFNOSUPPORT, or -EINVAL. */
int mig_uri_listen(const MigUri *uri, int backlog);   /* -EINVAL for fd: */

/* The URI a listening fd actually answers on (port 0 resolved). Returns 0 or -errno.
 * A wildcard bind is reported as such (tcp:0.0.0.0:PORT, tcp:[::]:PORT), as QEMU
 * reports it. -ERANGE if buf is too small; -EAFNOSUPPORT for abstract or unnamed
 * unix sockets. */
int mig_uri_local(int listen_fd, char *buf, size_t len);

/* Connected stream socket, TCP_NODELAY set for tcp. Gives up after timeout_ms. fd or -errno.
 * timeout_ms <= 0 waits forever. The deadline covers all resolved addresses
 * (each is tried in turn; the last error is returned) but not the DNS lookup
 * itself. The returned fd is blocking and SOCK_CLOEXEC. -ETIMEDOUT on timeout. */
int mig_uri_connect(const MigUri *uri, int timeout_ms);   /* -EINVAL for fd: */
