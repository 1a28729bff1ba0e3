/* uAPI pieces newer than the build host's kernel headers.
 *
 * We build against Debian 12 (linux-libc-dev 6.1) but run on whatever kernel the host
 * has; async write-protect (6.7), PAGEMAP_SCAN (6.7), UFFDIO_POISON (6.6) and
 * UFFDIO_MOVE (6.8) are all decided at run time by UFFDIO_API / ENOTTY, so we only need
 * the numbers and layouts here. Values are the kernel's ABI (include/uapi/linux/
 * userfaultfd.h and fs.h) and can never change; every definition is guarded so a newer
 * header simply wins. */
#pragma once
#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <linux/fs.h>

/* ---- userfaultfd features (uffdio_api.features) ---- */

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM		/* 6.1: WP on shmem and hugetlbfs */
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM		(1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED		/* 6.4: markers on never-faulted anon ptes */
#define UFFD_FEATURE_WP_UNPOPULATED		(1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON			/* 6.6 */
#define UFFD_FEATURE_POISON			(1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC			/* 6.7: kernel resolves WP faults itself */
#define UFFD_FEATURE_WP_ASYNC			(1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE			/* 6.8 */
#define UFFD_FEATURE_MOVE			(1 << 16)
#endif

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#ifndef USERFAULTFD_IOC_NEW			/* /dev/userfaultfd, 6.1 */
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP			/* 6.2: map the continued page WP'd */
#define UFFDIO_CONTINUE_MODE_WP			((__u64)1 << 1)
#endif

/* ---- UFFDIO_POISON ---- */
#ifndef UFFDIO_POISON
#define MIG_COMPAT_UFFDIO_POISON 1
#define _UFFDIO_POISON				(0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE		((__u64)1 << 0)
	__u64 mode;
	/* written by the kernel, must stay last */
	__s64 updated;
};
#define UFFDIO_POISON	_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

/* ---- UFFDIO_MOVE ---- */
#ifndef UFFDIO_MOVE
#define MIG_COMPAT_UFFDIO_MOVE 1
#define _UFFDIO_MOVE				(0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1 << 1)
	__u64 mode;
	/* written by the kernel, must stay last */
	__s64 move;
};
#define UFFDIO_MOVE	_IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* ---- PAGEMAP_SCAN on /proc/<pid>/pagemap (6.7) ---- */
#ifndef PAGEMAP_SCAN
#define MIG_COMPAT_PAGEMAP_SCAN 1

/* A run of pages [start, end) (bytes, end exclusive) sharing `categories`. */
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

/* The kernel insists size == sizeof(struct pm_scan_arg); it writes back only walk_end
 * (where the scan stopped; == end when the whole range was walked). */
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;		/* 0 = unlimited; counted in base pages */
	__u64 category_inverted;
	__u64 category_mask;		/* all of these must match */
	__u64 category_anyof_mask;	/* at least one of these must match */
	__u64 return_mask;		/* categories copied into page_region */
};

#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef PAGE_IS_WPALLOWED
#define PAGE_IS_WPALLOWED	(1 << 0)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN		(1 << 1)
#endif
#ifndef PAGE_IS_FILE
#define PAGE_IS_FILE		(1 << 2)
#endif
#ifndef PAGE_IS_PRESENT
#define PAGE_IS_PRESENT		(1 << 3)
#endif
#ifndef PAGE_IS_SWAPPED
#define PAGE_IS_SWAPPED		(1 << 4)
#endif
#ifndef PAGE_IS_PFNZERO
#define PAGE_IS_PFNZERO		(1 << 5)
#endif
#ifndef PAGE_IS_HUGE
#define PAGE_IS_HUGE		(1 << 6)
#endif
#ifndef PAGE_IS_SOFT_DIRTY	/* 6.8; a 6.7 kernel rejects it with EINVAL */
#define PAGE_IS_SOFT_DIRTY	(1 << 7)
#endif

#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING	(1 << 0)	/* write-protect the pages reported */
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)	/* EPERM on a VMA without async uffd-wp */
#endif
