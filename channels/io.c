/* Whole-buffer socket I/O. Every caller in mig wants "all of it or an error",
 * so partial transfers, EINTR and the EAGAIN-means-timeout convention are
 * handled here once instead of at each call site. */
#include "channels/io.h"
#include "channels/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int mig_io_timeout_ms(int fd, short events)
{
	struct timeval tv = { 0 };
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, events == POLLIN ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, &l) < 0)
		return -1;
	if (!tv.tv_sec && !tv.tv_usec)
		return -1;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

int mig_io_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int rc = poll(&p, 1, timeout_ms);

		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The kernel counts a receive timeout over the whole call, not from the last byte: a
 * MSG_WAITALL read that got part of what it asked for returns once the waits of the
 * call add up to the timeout, however recently bytes came, and a plain retry would wait
 * a whole timeout more (a source that stopped in the middle of a frame was noticed
 * after twice the timeout). So after a short read on a TCP socket with a receive
 * timeout t, the wait goes on only for what is left of it since the last byte arrived,
 * which TCP_INFO knows. 0: read on; -ETIMEDOUT: the peer has been silent for the whole
 * timeout. */
static int wait_rest_of_timeout(int fd, int t)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	int left = t;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	    l >= offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof(ti.tcpi_last_data_recv))
		left = ti.tcpi_last_data_recv >= (uint32_t)t ? 0 : t - (int)ti.tcpi_last_data_recv;
	return left > 0 ? mig_io_wait(fd, POLLIN, left) : -ETIMEDOUT;
}

long mig_io_idle_ms(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 ||
	    l < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof(ti.tcpi_last_data_recv))
		return -1;
	return (long)ti.tcpi_last_data_recv;
}

int mig_io_send_wait_ms(int fd)
{
	struct timeval tv = { 0 };
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l) < 0)
		return -1;   /* no socket: a pipe or a file, whose reader is local */
	if (!tv.tv_sec && !tv.tv_usec)
		return MIG_IO_TIMEOUT_DEFAULT_MS;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* A blocking send counts its send timeout over the whole call as well, so sockets are
 * written without blocking and the wait for room is a poll bounded by the timeout,
 * counted again from each wake: room freed is the peer's progress, and a peer that
 * takes nothing (stopped, its window closed) is noticed the timeout after it last did.
 * A socket without a send timeout waits as long as a channel would by default: never
 * for ever on a peer. 0 when there is room, -ETIMEDOUT, or -errno. */
static int wait_room(int fd)
{
	return mig_io_wait(fd, POLLOUT, mig_io_send_wait_ms(fd));
}

/* One whole read's view of its fd, learnt as it goes: a socket whose bytes are all
 * there needs nothing more than one non-blocking recvmsg (the common case, a busy
 * stream); only a read that has to wait asks how its wait is bounded. */
typedef enum RdMode {
	RD_NEW,     /* not asked yet: a non-blocking try first */
	RD_FILE,    /* no socket: plain blocking reads */
	RD_PLAIN,   /* a socket without a receive timeout: blocking, unbounded */
	RD_TCP,     /* TCP with a receive timeout: the kernel bounds each call, TCP_INFO
		     * the rest of it after a short one (wait_rest_of_timeout) */
	RD_POLLED,  /* any other socket with a receive timeout (unix): no TCP_INFO, so
		     * the silence since the last byte is counted here, a poll per wait */
} RdMode;

typedef struct IoRd {
	RdMode mode;
	int timeout_ms;   /* the receive timeout (RD_TCP, RD_POLLED) */
	int64_t last_ms;  /* RD_POLLED: when the last byte came (the read's start before) */
	int partial;      /* RD_TCP: a blocking call came back short, so the next wait is
			   * what is left of the timeout since the last byte */
} IoRd;

static IoRd rd_new(void)
{
	return (IoRd){ .mode = RD_NEW, .last_ms = now_ms() };
}

/* One or two getsockopt calls per whole read that has to wait, not cached: they run
 * only once a non-blocking try found nothing, when the thread is about to sleep, so
 * they cost CPU in its idle gap rather than latency on a postcopy fault's path; a
 * cache would need state beside every fd, kept true by every caller that changes the
 * timeout, and a stale one turns into false timeouts. */
static void rd_probe(int fd, IoRd *r)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	r->timeout_ms = mig_io_timeout_ms(fd, POLLIN);
	if (r->timeout_ms < 0)
		r->mode = RD_PLAIN;
	else if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0)
		r->mode = RD_TCP;
	else
		r->mode = RD_POLLED;
}

/* The next bytes of a whole read into iov: how many (> 0), 0 at EOF, or -errno
 * (-ETIMEDOUT: the peer was silent for the receive timeout, counted from the last byte
 * it sent, not from the start of the call). MSG_WAITALL where the kernel may wait: it
 * keeps copying as segments arrive instead of returning to us after each one (a 512
 * KiB multifd packet took dozens of readv calls and wakeups without it). */
static ssize_t rd_step(int fd, struct iovec *iov, int iovcnt, IoRd *r)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };

	for (;;) {
		ssize_t n;
		int rc, left;

		if (r->mode == RD_FILE) {
			n = readv(fd, iov, iovcnt);
			if (n < 0 && errno == EINTR)
				continue;
			return n < 0 ? -errno : n;
		}
		if (r->mode == RD_TCP && r->partial && (rc = wait_rest_of_timeout(fd, r->timeout_ms)) < 0)
			return rc;
		n = recvmsg(fd, &msg, r->mode == RD_NEW || r->mode == RD_POLLED ? MSG_DONTWAIT : MSG_WAITALL);
		if (n > 0) {
			/* only a blocking call came back short: a non-blocking try took what
			 * was queued, maybe long ago while the window was shut (a busy
			 * reader), and the kernel's next wait starts afresh */
			r->partial = r->mode == RD_TCP;
			r->last_ms = now_ms();
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == ENOTSOCK) {
			r->mode = RD_FILE;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (r->mode == RD_NEW) {
			rd_probe(fd, r);
			continue;
		}
		if (r->mode != RD_POLLED)
			return -ETIMEDOUT;   /* the kernel's receive timeout (or an O_NONBLOCK fd) */
		left = r->timeout_ms - (int)(now_ms() - r->last_ms);
		if (left <= 0)
			return -ETIMEDOUT;
		if ((rc = mig_io_wait(fd, POLLIN, left)) < 0)
			return rc;
	}
}

int mig_io_read_full(int fd, void *buf, size_t len)
{
	MigTls *tls = mig_tls_of(fd);

	if (tls)
		return mig_tls_read_full(tls, buf, len);
	uint8_t *p = buf;
	IoRd r = rd_new();

	while (len > 0) {
		struct iovec iov = { p, len };
		ssize_t n = rd_step(fd, &iov, 1, &r);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_io_write_full(int fd, const void *buf, size_t len)
{
	MigTls *tls = mig_tls_of(fd);

	if (tls)
		return mig_tls_write_full(tls, buf, len);
	const uint8_t *p = buf;

	while (len > 0) {
		/* MSG_NOSIGNAL: a vanished peer must be an error return, not a
		 * process-killing SIGPIPE in a daemon that never asked for it. */
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);   /* a streamed file: URI */
		if (n < 0) {
			int rc;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if ((rc = wait_room(fd)) < 0)
				return rc;
			continue;
		}
		if (n == 0)	/* cannot happen for len > 0; don't spin if it does */
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Drops fully transferred entries off the front and trims the first partial
 * one. Consumed entries are zeroed so the caller can see what went through. */
static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (*iovcnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + (*iov)->iov_len;
		(*iov)->iov_len = 0;
		(*iov)++;
		(*iovcnt)--;
	}
	if (*iovcnt > 0 && n > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* Skipping empty entries up front guarantees each syscall has at least one
 * byte to move, so a 0 return from readv really is EOF. */
static void iov_skip_empty(struct iovec **iov, int *iovcnt)
{
	while (*iovcnt > 0 && (*iov)->iov_len == 0) {
		(*iov)++;
		(*iovcnt)--;
	}
}

/* The kernel rejects more than IOV_MAX entries with EINVAL rather than doing
 * a partial transfer, so longer arrays go out in IOV_MAX-sized windows. */
static int iov_window(int iovcnt)
{
	return iovcnt > IOV_MAX ? IOV_MAX : iovcnt;
}

int mig_io_writev_full(int fd, struct iovec *iov, int iovcnt)
{
	MigTls *tls = mig_tls_of(fd);

	if (tls)
		return mig_tls_writev_full(tls, iov, iovcnt);
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;

	for (iov_skip_empty(&iov, &iovcnt); iovcnt > 0; iov_skip_empty(&iov, &iovcnt)) {
		/* sendmsg rather than writev: writev has no MSG_NOSIGNAL. */
		struct msghdr msg = {
			.msg_iov = iov,
			.msg_iovlen = (size_t)iov_window(iovcnt),
		};
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = writev(fd, iov, iov_window(iovcnt));   /* a streamed file: URI */
		if (n < 0) {
			int rc;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if ((rc = wait_room(fd)) < 0)
				return rc;
			continue;
		}
		if (n == 0)
			return -EIO;
		iov_advance(&iov, &iovcnt, (size_t)n);
	}
	return 0;
}

int mig_io_readv_full(int fd, struct iovec *iov, int iovcnt)
{
	MigTls *tls = mig_tls_of(fd);

	if (tls)
		return mig_tls_readv_full(tls, iov, iovcnt);
	IoRd r = rd_new();

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;

	for (iov_skip_empty(&iov, &iovcnt); iovcnt > 0; iov_skip_empty(&iov, &iovcnt)) {
		ssize_t n = rd_step(fd, iov, iov_window(iovcnt), &r);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		iov_advance(&iov, &iovcnt, (size_t)n);
	}
	return 0;
}

int mig_io_write_more(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	MigTls *tls = mig_tls_of(fd);

	if (tls)
		return mig_tls_write_full(tls, buf, len);
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_MORE | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);   /* a streamed file: URI */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_room(fd);

			if (rc < 0)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_io_is_tls(int fd)
{
	return mig_tls_of(fd) != NULL;
}

int mig_io_close(int fd)
{
	mig_tls_detach(fd);
	return close(fd);
}

static int set_tv(int fd, int opt, int timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};

	if (timeout_ms < 0)
		return -EINVAL;
	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

int mig_io_set_timeout(int fd, int timeout_ms)
{
	return set_tv(fd, SO_RCVTIMEO, timeout_ms) ?: set_tv(fd, SO_SNDTIMEO, timeout_ms);
}

int mig_io_set_recv_timeout(int fd, int timeout_ms)
{
	return set_tv(fd, SO_RCVTIMEO, timeout_ms);
}

/* Keepalive counts in whole seconds: half the budget idle, the rest in probes at least
 * a second apart, so idle + cnt * intvl <= max(timeout, 2 s). */
static int at_least_1(int v)
{
	return v < 1 ? 1 : v;
}

void mig_io_keepalive_for(int timeout_ms, int *idle_s, int *intvl_s, int *cnt)
{
	int t = at_least_1(timeout_ms / 1000);

	*idle_s = at_least_1(t / 2);
	*intvl_s = at_least_1(t / 6);
	*cnt = at_least_1((t - *idle_s) / *intvl_s);
}

int mig_io_set_liveness(int fd, int timeout_ms)
{
	int domain = 0, one = 1, idle, intvl, cnt, rc;
	unsigned int uto = (unsigned int)timeout_ms;
	socklen_t len = sizeof(domain);

	if (timeout_ms <= 0)
		return -EINVAL;
	if ((rc = set_tv(fd, SO_SNDTIMEO, timeout_ms)) < 0)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	if (domain != AF_INET && domain != AF_INET6)
		return 0;   /* a unix socket's peer cannot vanish without the kernel knowing */
	mig_io_keepalive_for(timeout_ms, &idle, &intvl, &cnt);
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)) < 0)
		return -errno;
	return 0;
}

int mig_io_splice_full(int in, int out, size_t len, unsigned int flags)
{
	MigTls *tls = mig_tls_of(out);

	if (tls)   /* the record layer needs the bytes in user memory */
		return mig_tls_from_pipe(tls, in, len);
	while (len > 0) {
		ssize_t n = splice(in, NULL, out, NULL, len, flags | SPLICE_F_MOVE);

		if (n > 0) {
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		/* one end is non-blocking: wait for the one that is not ready */
		{
			struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = out, .events = POLLOUT } };
			int rc = poll(p, 2, 0);

			if (rc < 0 && errno != EINTR)
				return -errno;
			/* in is a local pipe; out may be a peer's socket (wait_room's bound) */
			rc = !(p[0].revents & (POLLIN | POLLHUP)) ? mig_io_wait(in, POLLIN, -1) :
			     !(p[1].revents & (POLLOUT | POLLERR)) ? mig_io_wait(out, POLLOUT, mig_io_send_wait_ms(out)) : 0;
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

void mig_io_block_sigpipe(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

ssize_t mig_io_splice_fill(int in, int pipe_w, size_t len)
{
	size_t got = 0;

	/* ciphertext must not reach the pipe: nothing spliced, the caller reads the rest */
	if (mig_tls_of(in))
		return 0;

	while (got < len) {
		struct pollfd p = { .fd = pipe_w, .events = POLLOUT };
		ssize_t n;

		/* a full pipe would make the splice below wait for a reader that is us */
		if (poll(&p, 1, 0) == 0)
			break;
		/* blocking on in: the kernel waits for its data, which costs no round trip
		 * through poll per arrival; it returns as soon as it moved any */
		n = splice(in, NULL, pipe_w, NULL, len - got, SPLICE_F_MOVE);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return got ? (ssize_t)got : -errno;
		/* a non-blocking in */
		{
			int rc = mig_io_wait(in, POLLIN, -1);

			if (rc < 0)
				return got ? (ssize_t)got : rc;
		}
	}
	return (ssize_t)got;
}

static int set_cc(int fd, const char *algo)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, algo, (socklen_t)strlen(algo)) < 0 ? -errno : 0;
}

int mig_io_set_congestion(int fd, const char *algo)
{
	int rc;

	if (!algo || !*algo)
		return 0;
	rc = set_cc(fd, algo);
	return rc == -EOPNOTSUPP || rc == -ENOPROTOOPT ? 0 : rc;
}

int mig_io_congestion_usable(const char *algo)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = set_cc(fd, algo);
	close(fd);
	return rc;
}

const char *mig_io_congestion_default(void)
{
	return mig_io_congestion_usable(MIG_TCP_CONGESTION_DEFAULT) == 0 ? MIG_TCP_CONGESTION_DEFAULT : "";
}
