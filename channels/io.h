/* Whole-buffer socket I/O: short reads and writes and EINTR are handled here once.
 * A socket with a TLS session (channels/tls.h) goes through it transparently. */
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* 0 on success; -EPIPE when the peer closed before everything was read; -errno otherwise.
 * An expired SO_RCVTIMEO/SO_SNDTIMEO is reported as -ETIMEDOUT; data already
 * transferred by then is lost to the caller, so treat it as fatal. Either timeout
 * counts from the peer's last progress (the last byte received: TCP_INFO's on TCP,
 * the time this reader took it on a unix socket; the last room freed in the send
 * buffer), not from the start of the call: a peer silent for the timeout in the middle
 * of a buffer is noticed then, not a timeout later, and one that sends slowly but
 * steadily is never cut. A socket without SO_SNDTIMEO waits for room at most
 * MIG_IO_TIMEOUT_DEFAULT_MS (mig_io_send_wait_ms).
 * Writes use MSG_NOSIGNAL: a dead peer is -EPIPE, never SIGPIPE; an fd that is no
 * socket (a streamed file: URI's file) is written with plain write/writev. Reads work
 * on any fd. */
int mig_io_read_full(int fd, void *buf, size_t len);
int mig_io_write_full(int fd, const void *buf, size_t len);
/* iov is consumed (modified) as data goes out or comes in: on success every
 * entry has iov_len == 0. Any iovcnt is fine (chunked by IOV_MAX). */
int mig_io_writev_full(int fd, struct iovec *iov, int iovcnt);
int mig_io_readv_full(int fd, struct iovec *iov, int iovcnt);
/* Moves exactly len bytes from in to out with splice(2) (one of them a pipe), never
 * through user memory; a non-blocking end is waited for with poll. 0, -EPIPE when in
 * ends first, or -errno (-EINVAL: these fds cannot splice). Splicing into a socket
 * whose peer left raises SIGPIPE: callers block it in their thread. */
int mig_io_splice_full(int in, int out, size_t len, unsigned int flags);
/* Splices up to len bytes from in into the pipe pipe_w: fewer when in ends (EOF) or
 * the pipe has no buffer left (a pipe counts buffers, not bytes, so small fragments
 * fill it early). A blocking in is waited for inside splice(2), a non-blocking one with
 * poll. Bytes moved, or -errno when none were (-EINVAL: in cannot splice). */
ssize_t mig_io_splice_fill(int in, int pipe_w, size_t len);
/* Blocks SIGPIPE in the calling thread: a thread that writes or splices into pipes
 * (which have no MSG_NOSIGNAL) then sees EPIPE instead of a signal that would kill an
 * embedder that never ignored it. */
void mig_io_block_sigpipe(void);
/* write_full with MSG_MORE: the bytes wait for what the caller sends next. */
int mig_io_write_more(int fd, const void *buf, size_t len);
/* Whether fd carries TLS (channels/tls.h): its bytes are ciphertext, so a caller that
 * would splice() from it directly must read through this module instead. */
int mig_io_is_tls(int fd);
/* Closes a channel's fd, ending its TLS session first if it has one. */
int mig_io_close(int fd);
/* A socket's SO_RCVTIMEO (events POLLIN) or SO_SNDTIMEO (POLLOUT) in ms; -1 when it
 * has none (or fd is no socket). */
int mig_io_timeout_ms(int fd, short events);
/* x-channel-timeout's default, and what a write waits for room on a socket that has no
 * SO_SNDTIMEO: no wait on a peer is for ever. */
#define MIG_IO_TIMEOUT_DEFAULT_MS 15000
/* How long a write on fd waits for room without progress: its SO_SNDTIMEO, else
 * MIG_IO_TIMEOUT_DEFAULT_MS on a socket; -1 (as long as it takes) on an fd that is
 * no socket (a pipe or a file: a local reader, no peer). */
int mig_io_send_wait_ms(int fd);
/* Waits until fd is ready for events (poll(2)) or timeout_ms passes (-1: forever).
 * 0, -ETIMEDOUT, or -errno. */
int mig_io_wait(int fd, short events, int timeout_ms);
/* How long ago (ms) the last byte came in on a TCP socket (TCP_INFO: the kernel's
 * count, whether or not anyone read it yet); -1 when fd is no TCP socket. Lets a wait
 * on bytes that another thread reads count the peer's silence from its last progress. */
long mig_io_idle_ms(int fd);
/* Applies SO_RCVTIMEO/SO_SNDTIMEO; 0 means block forever. */
int mig_io_set_timeout(int fd, int timeout_ms);
/* SO_RCVTIMEO alone; 0 means block forever. */
int mig_io_set_recv_timeout(int fd, int timeout_ms);
/* A peer that stops acknowledging or answering for timeout_ms is dead: on TCP,
 * keepalive probes (idle, interval and count derived so that a silent peer is declared
 * dead within timeout_ms + 1 s) and TCP_USER_TIMEOUT = timeout_ms (unacknowledged data
 * or window probes); on any socket, SO_SNDTIMEO = timeout_ms, so a write that makes no
 * progress for that long fails with -ETIMEDOUT (a peer that is alive but stopped keeps
 * acknowledging and only this catches it). Reads are left alone: an idle channel is
 * not a dead one (mig_io_set_recv_timeout). 0 or -errno. */
int mig_io_set_liveness(int fd, int timeout_ms);
/* The keepalive settings mig_io_set_liveness derives, in seconds (exposed for tests). */
void mig_io_keepalive_for(int timeout_ms, int *idle_s, int *intvl_s, int *cnt);

/* What mig's channels use unless x-tcp-congestion says otherwise (engine/params.c
 * says why); migbench gives its raw baseline the same. */
#define MIG_TCP_CONGESTION_DEFAULT "cubic"

/* TCP congestion control by name ("" leaves the system's). A socket that is not TCP
 * (unix) has none and is left alone. 0 or -errno. */
int mig_io_set_congestion(int fd, const char *algo);
/* Whether this process may use algo: -ENOENT if the kernel has no such algorithm,
 * -EPERM if it is not in net.ipv4.tcp_allowed_congestion_control. */
int mig_io_congestion_usable(const char *algo);
/* MIG_TCP_CONGESTION_DEFAULT if this process may use it, else "" (the system's). */
const char *mig_io_congestion_default(void);

/* Appends [base, base + len) to iov[0..*n), growing the last entry instead when the
 * range starts where it ends: the pages of a sequential pass lie back to back, and
 * one 512 KiB entry costs the kernel less than 128 of 4 KiB. */
static inline void mig_iov_append(struct iovec *iov, int *n, void *base, size_t len)
{
	if (*n > 0 && (char *)iov[*n - 1].iov_base + iov[*n - 1].iov_len == (char *)base) {
		iov[*n - 1].iov_len += len;
		return;
	}
	iov[(*n)++] = (struct iovec){ base, len };
}
