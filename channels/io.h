/* Whole-buffer socket I/O: short reads and writes and EINTR are handled here once. */
#pragma once
#include <stddef.h>
#include <sys/uio.h>

/* 0 on success; -EPIPE when the peer closed before everything was read; -errno otherwise.
 * An expired SO_RCVTIMEO/SO_SNDTIMEO (EAGAIN) is reported as -ETIMEDOUT; data
 * already transferred by then is lost to the caller, so treat it as fatal.
 * Writes use MSG_NOSIGNAL: a dead peer is -EPIPE, never SIGPIPE (fd must be a
 * socket; reads work on any fd). */
int mig_io_read_full(int fd, void *buf, size_t len);
int mig_io_write_full(int fd, const void *buf, size_t len);
/* iov is consumed (modified) as data goes out or comes in: on success every
 * entry has iov_len == 0. Any iovcnt is fine (chunked by IOV_MAX). */
int mig_io_writev_full(int fd, struct iovec *iov, int iovcnt);
int mig_io_readv_full(int fd, struct iovec *iov, int iovcnt);
/* Applies SO_RCVTIMEO/SO_SNDTIMEO; 0 means block forever. */
int mig_io_set_timeout(int fd, int timeout_ms);

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
