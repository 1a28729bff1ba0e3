/* Page placement ioctls. UFFDIO_COPY may copy part of a range and report -EAGAIN
 * (the mm changed under it); the loop finishes the rest, so callers see all or error. */
#include "uffd/place.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

int mig_uffd_copy(int uffd, void *dst, const void *src, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = (uint64_t)(uintptr_t)dst + done,
			.src = (uint64_t)(uintptr_t)src + done,
			.len = len - done,
		};

		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (errno != EAGAIN)
			return -errno;
		if (c.copy > 0)
			done += (size_t)c.copy;
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
