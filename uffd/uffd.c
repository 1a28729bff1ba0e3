/* userfaultfd plumbing: open + feature handshake, register, write-protect.
 *
 * Thin wrappers over the ioctls; they exist so the rest of mig never has to know about
 * the two ways to get a userfaultfd or the one-shot nature of UFFDIO_API. */
#include "uffd/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int uffd_create(int flags)
{
	int fd, devfd, saved;

	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | flags);
	if (fd >= 0)
		return fd;
	if (errno != EPERM)
		return -errno;

	/* vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE: the syscall refuses
	 * kernel-mode faults, but access to /dev/userfaultfd (6.1+) is governed by file
	 * permissions instead, which is how a deployment grants it to a non-root mig. */
	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd < 0)
		return -EPERM;	/* the real problem is the syscall's refusal, not ENOENT */
	fd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | flags);
	saved = errno;
	close(devfd);
	return fd >= 0 ? fd : -saved;
}

/* UFFDIO_API can succeed only once per fd, and on failure the kernel zeroes the reply,
 * so asking "what do you have" always needs a fresh fd with features = 0. */
static int uffd_query(MigUffdInfo *info)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd, ret = 0;

	/* User-mode-only needs no privilege on any kernel, and the answer to UFFDIO_API
	 * does not depend on the mode. */
	fd = uffd_create(UFFD_USER_MODE_ONLY);
	if (fd == -EINVAL)	/* pre-5.11 kernels know no UFFD_USER_MODE_ONLY */
		fd = uffd_create(0);
	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		ret = -errno;
	else {
		info->features = api.features;
		info->ioctls = api.ioctls;
	}
	close(fd);
	return ret;
}

uint64_t mig_uffd_probe_features(void)
{
	MigUffdInfo info = { 0 };

	return uffd_query(&info) < 0 ? 0 : info.features;
}

int mig_uffd_open(uint64_t features, int flags, MigUffdInfo *info)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	MigUffdInfo avail = { 0 };
	int fd, err;

	fd = uffd_create(flags);
	if (fd < 0)
		return fd;

	if (ioctl(fd, UFFDIO_API, &api) == 0) {
		/* The reply lists everything the kernel offers, but only what we asked for
		 * is enabled on this fd; report that, so "features & X" means X is live. */
		if (info) {
			info->features = features;
			info->ioctls = api.ioctls;
		}
		return fd;
	}
	err = errno;
	close(fd);

	/* EINVAL is also what an unknown feature bit gets, so find out which it was. */
	if (err != EINVAL || uffd_query(&avail) < 0)
		return -err;
	if (info)
		*info = avail;
	return (features & ~avail.features) ? -EOPNOTSUPP : -EINVAL;
}

int mig_uffd_register(int uffd, void *addr, size_t len, uint64_t mode, uint64_t *range_ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	if (range_ioctls)
		*range_ioctls = reg.ioctls;
	return 0;
}

int mig_uffd_register_wp(int uffd, void *addr, size_t len, int shmem_ok)
{
	uint64_t ioctls = 0;
	int ret = mig_uffd_register(uffd, addr, len, UFFDIO_REGISTER_MODE_WP, &ioctls);

	if (ret == -EINVAL && !shmem_ok)
		return -EOPNOTSUPP;
	if (ret < 0)
		return ret;
	if (!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		mig_uffd_unregister(uffd, addr, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int mig_uffd_unregister(int uffd, void *addr, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

	/* Unregistering a WP range also drops the protection and any markers. */
	return ioctl(uffd, UFFDIO_UNREGISTER, &range) < 0 ? -errno : 0;
}

int mig_uffd_check_range(const void *addr, size_t len, size_t page_size)
{
	long base = sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)addr;

	if (base <= 0 || page_size < (size_t)base || (page_size & (page_size - 1)) ||
	    !len || start % page_size || len % page_size || start + len < start)
		return -EINVAL;
	return 0;
}

int mig_uffd_wp(int uffd, void *addr, size_t len, int wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	/* EAGAIN only comes from non-cooperative events (fork/remap/remove) racing with
	 * us; the caller enabled those and knows whether retrying is sane, so pass it on. */
	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}
