/* Page placement ioctls. UFFDIO_COPY may copy part of a range and report -EAGAIN
 * (the mm changed under it); the loop finishes the rest, so callers see all or error. */
#include "uffd/place.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* One UFFDIO_COPY: 0 when all of len is in, else -errno and *copied the bytes that
 * went in before it stopped (with -EAGAIN). */
static int copy_once(int uffd, uint8_t *dst, const uint8_t *src, size_t len, size_t *copied)
{
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
	};

	*copied = 0;
	if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
		return 0;
	if (errno == EAGAIN && c.copy > 0)
		*copied = (size_t)c.copy;
	return -errno;
}

int mig_uffd_copy(int uffd, void *dst, const void *src, size_t len)
{
	size_t done = 0, n;

	while (done < len) {
		int rc = copy_once(uffd, (uint8_t *)dst + done, (const uint8_t *)src + done, len - done, &n);

		if (rc == 0)
			return 0;
		if (rc != -EAGAIN)
			return rc;   /* -EEXIST included */
		done += n;
	}
	return 0;
}

int mig_uffd_copy_pages(int uffd, void *dst, const void *src, size_t ps, size_t npages)
{
	size_t done = 0, len = ps * npages, n;

	while (done < len) {
		int rc = copy_once(uffd, (uint8_t *)dst + done, (const uint8_t *)src + done, len - done, &n);

		if (rc == 0)
			return 0;
		if (rc == -EAGAIN) {
			/* the pages before a present one (or before the mm changed) are in, and
			 * their waiters woken */
			done += n;
			continue;
		}
		if (rc != -EEXIST)
			return rc;
		/* as mig_uffd_copy's callers do: wake whoever faulted between the copy that
		 * won and now */
		mig_uffd_wake(uffd, (uint8_t *)dst + done, ps);
		done += ps;
	}
	return 0;
}

int mig_uffd_zeropage(int uffd, void *dst, size_t len)
{
	for (;;) {
		struct uffdio_zeropage z = {
			.range = { .start = (uint64_t)(uintptr_t)dst, .len = len },
		};

		if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
}

int mig_uffd_continue(int uffd, void *dst, size_t len)
{
	for (;;) {
		struct uffdio_continue c = {
			.range = { .start = (uint64_t)(uintptr_t)dst, .len = len },
		};

		if (ioctl(uffd, UFFDIO_CONTINUE, &c) == 0)
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (errno != EAGAIN)
			return -errno;
	}
}

int mig_uffd_wake(int uffd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)addr, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) == 0 ? 0 : -errno;
}

int mig_uffd_read_msgs(int uffd, struct uffd_msg *msgs, int n)
{
	ssize_t r = read(uffd, msgs, sizeof(*msgs) * (size_t)n);

	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	return (int)(r / (ssize_t)sizeof(*msgs));
}
