/* userfaultfd: open with a feature handshake, register ranges, place pages.
 * Everything here returns negative errno; no GLib, so it stays usable from any thread. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "uffd/compat.h"

typedef struct MigUffdInfo {
	uint64_t features;   /* what the kernel granted */
	uint64_t ioctls;     /* UFFDIO_API ioctls bitmask */
} MigUffdInfo;

/* Opens a userfaultfd (O_CLOEXEC | flags), via /dev/userfaultfd when the syscall is not
 * permitted, and negotiates `features`. -EOPNOTSUPP when the kernel lacks a wanted
 * feature (*info still says what exists). fd or -errno. */
int mig_uffd_open(uint64_t features, int flags, MigUffdInfo *info);

/* Which of `features` the running kernel offers (probe on a throwaway fd). */
uint64_t mig_uffd_probe_features(void);

/* UFFDIO_REGISTER; mode is UFFDIO_REGISTER_MODE_*. *range_ioctls may be NULL. */
int mig_uffd_register(int uffd, void *addr, size_t len, uint64_t mode, uint64_t *range_ioctls);
int mig_uffd_unregister(int uffd, void *addr, size_t len);

/* Registers a range for write-protect faults and checks that UFFDIO_WRITEPROTECT is
 * offered on it; nothing stays registered on failure. -EOPNOTSUPP where the kernel
 * cannot protect this memory: a shmem/hugetlb range on a uffd opened without
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM (`shmem_ok` 0), or no WRITEPROTECT ioctl. */
int mig_uffd_register_wp(int uffd, void *addr, size_t len, int shmem_ok);

/* Is [addr, addr+len) a non-empty range of whole pages of page_size (a power of two,
 * at least the base page)? 0 or -EINVAL. */
int mig_uffd_check_range(const void *addr, size_t len, size_t page_size);

/* Write-protect (wp = 1) or un-protect a range. */
int mig_uffd_wp(int uffd, void *addr, size_t len, int wp);

/* The dirty trackers' summary of what they report (wp_tracker.h, wp_log.h): sets bit
 * p >> shift of groups for every page p of [first, first + n), n > 0. */
static inline void mig_uffd_mark_groups(unsigned long *groups, unsigned shift, size_t first, size_t n)
{
	const size_t bits = 8 * sizeof(unsigned long);

	for (size_t g = first >> shift; g <= (first + n - 1) >> shift; g++)
		groups[g / bits] |= 1UL << (g % bits);
}
