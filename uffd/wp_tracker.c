/* Dirty tracking with async userfaultfd write-protect + PAGEMAP_SCAN.
 *
 * How it works
 *   The range is registered for UFFDIO_REGISTER_MODE_WP on a userfaultfd opened with
 *   UFFD_FEATURE_WP_ASYNC: a write to a protected page is resolved inside the kernel
 *   (the uffd-wp bit is dropped and the write proceeds) and nobody is woken, so the
 *   cost of tracking is one minor fault per page per round. "Written" is simply "the
 *   pte has lost its uffd-wp bit". WP_UNPOPULATED (anon) and WP_HUGETLBFS_SHMEM
 *   (memfd/hugetlb) make protection stick to ptes that do not exist yet, as pte
 *   markers, so a first-ever write to a page is caught like any other.
 *   Anon THP: the first write to a protected huge pmd splits it and is resolved per
 *   pte, so reports stay at 4 KiB granularity; the cost is that the THP is gone.
 *
 *   arm     PAGEMAP_SCAN with PM_SCAN_WP_MATCHING and no output vector (4 KiB pages)
 *           or UFFDIO_WRITEPROTECT (huge pages); mig_wp_tracker_arm says why.
 *   collect PAGEMAP_SCAN with PM_SCAN_WP_MATCHING, category_mask = return_mask =
 *           PAGE_IS_WRITTEN: one walk that reports every unprotected pte and
 *           re-protects it, i.e. get-and-clear.
 *
 * Ordering guarantees (what a migration loop may rely on)
 *   1. A write that completes after mig_wp_tracker_arm() returns is reported by a later
 *      collect. Writes that race with arm itself may or may not be; the caller copies
 *      the whole range after arm anyway (the bulk pass), so they are covered.
 *   2. collect tests and re-protects each pte atomically under its page-table lock.
 *      A concurrent write therefore lands either before that point (the page is
 *      reported now) or after it (it faults, drops the bit again, and the page is
 *      reported by the next collect). A write is never lost, and it is reported by
 *      this collect or the next one.
 *   3. Other CPUs may keep writing through a stale writable TLB entry for a page this
 *      collect already reported, until the kernel flushes the TLB, which it does
 *      before the ioctl returns. Such writes therefore happen before collect returns,
 *      so a copy of the reported pages taken after collect returns contains them.
 *      Hence: copy only after collect returns.
 *   4. After being reported a page stays unreported until written again. Reads, and
 *      the zero page a read maps in, never count as writes. One store can be reported
 *      twice, by consecutive collects: it faults, the kernel unprotects the pte, collect
 *      takes the page-table lock next and re-protects it before the CPU retries the
 *      store, and the retry faults again. Under a writer hammering the range this is
 *      routine (thousands per 200 ms run of tests/unit/uffd). It is harmless: the page
 *      is merely sent twice.
 *   5. Page migration (compaction, NUMA balancing) racing with collect can also make a
 *      page report again without a write: PAGEMAP_SCAN puts uffd-wp on a *writable*
 *      migration entry without making it read-only, and remove_migration_pte() turns
 *      such an entry back into a writable pte without the bit (seen on 6.18 under
 *      compaction). The page then looks written and is reported by the next collect:
 *      again an over-report, never a loss.
 *   6. A failed collect sets every bit: the kernel may already have re-protected pages
 *      whose report we never saw, and "everything is dirty" is the only answer that
 *      cannot lose a write.
 *   What it does NOT see: changes that bypass this mm's ptes, e.g. pwrite() or
 *   fallocate(PUNCH_HOLE) on a memfd, another process's mapping of the same memfd, or
 *   DMA. MADV_DONTNEED on tracked anon memory does get reported (as of 6.18 the zap
 *   leaves empty ptes, and the scan's fast path counts an empty pte as written).
 *
 * Neither arm nor collect may run concurrently with each other on one tracker: the
 * vec buffer is per tracker, and an arm racing a collect would lose reports.
 */
#include "uffd/wp_tracker.h"
#include "uffd/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* 512 regions = 12 KiB, and 512 is also the kernel's internal bounce-buffer length
 * (PAGEMAP_WALK_SIZE >> PAGE_SHIFT), so a larger vector only saves syscalls, not
 * page-table walks. */
#define WP_VEC_LEN 512

#define WP_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | \
		     UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

#define BITS_PER_ULONG (sizeof(unsigned long) * CHAR_BIT)

struct MigWpTracker {
	int uffd;
	int pagemap;		/* /proc/self/pagemap, the fd PAGEMAP_SCAN lives on */
	uintptr_t start;
	size_t len;
	size_t page_size;
	size_t npages;
	int armed;
	struct page_region vec[WP_VEC_LEN];
};

static void set_bits(unsigned long *map, size_t first, size_t n)
{
	size_t i = first, end = first + n;

	/* Runs can be long (a fully written GiB is one region), so go word-wise. */
	while (i < end && i % BITS_PER_ULONG)
		map[i / BITS_PER_ULONG] |= 1UL << (i % BITS_PER_ULONG), i++;
	while (end - i >= BITS_PER_ULONG)
		map[i / BITS_PER_ULONG] = ~0UL, i += BITS_PER_ULONG;
	while (i < end)
		map[i / BITS_PER_ULONG] |= 1UL << (i % BITS_PER_ULONG), i++;
}

static int pm_scan(const MigWpTracker *t, struct pm_scan_arg *arg)
{
	long n = ioctl(t->pagemap, PAGEMAP_SCAN, arg);

	return n < 0 ? -errno : (int)n;
}

/* Is PAGEMAP_SCAN there, and does it agree that this memory is async-WP capable?
 * Checking one page is enough: registration already forced all VMAs in the range to
 * the same uffd context, and CHECK_WPASYNC without WP_MATCHING modifies nothing. */
static int check_pagemap_scan(const MigWpTracker *t)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_CHECK_WPASYNC,
		.start = t->start,
		.end = t->start + t->page_size,
	};
	int ret = pm_scan(t, &arg);

	/* ENOTTY: no ioctl on pagemap (< 6.7). EINVAL: a flag it does not know.
	 * EPERM: the VMA is not async-WP (e.g. kernel without markers for this type). */
	if (ret == -ENOTTY || ret == -EINVAL || ret == -EPERM)
		return -EOPNOTSUPP;
	return ret < 0 ? ret : 0;
}

static int open_uffd(int *dropped_shmem)
{
	MigUffdInfo info = { 0 };
	int fd;

	*dropped_shmem = 0;
	fd = mig_uffd_open(WP_FEATURES, O_NONBLOCK, &info);
	/* A kernel without WP on shmem/hugetlb can still track anon memory; find out at
	 * UFFDIO_REGISTER time whether that matters for this range. */
	if (fd == -EOPNOTSUPP &&
	    (WP_FEATURES & ~info.features) == UFFD_FEATURE_WP_HUGETLBFS_SHMEM) {
		*dropped_shmem = 1;
		fd = mig_uffd_open(WP_FEATURES & ~UFFD_FEATURE_WP_HUGETLBFS_SHMEM, O_NONBLOCK,
				   &info);
	}
	return fd;
}

int mig_wp_tracker_new(void *addr, size_t len, size_t page_size, MigWpTracker **out)
{
	uintptr_t start = (uintptr_t)addr;
	MigWpTracker *t;
	int dropped_shmem, ret;

	*out = NULL;
	if (mig_uffd_check_range(addr, len, page_size) < 0)
		return -EINVAL;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->start = start;
	t->len = len;
	t->page_size = page_size;
	t->npages = len / page_size;
	t->uffd = -1;

	t->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (t->pagemap < 0) {
		ret = -errno;
		goto err;
	}

	t->uffd = open_uffd(&dropped_shmem);
	if (t->uffd < 0) {
		ret = t->uffd;
		goto err;
	}

	ret = mig_uffd_register_wp(t->uffd, addr, len, !dropped_shmem);
	if (ret < 0)
		goto err;

	ret = check_pagemap_scan(t);
	if (ret < 0)
		goto err_unregister;

	*out = t;
	return 0;

err_unregister:
	mig_uffd_unregister(t->uffd, addr, len);
err:
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->pagemap >= 0)
		close(t->pagemap);
	free(t);
	return ret;
}

int mig_wp_tracker_arm(MigWpTracker *t)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = t->start,
		.end = t->start + t->len,
	};
	int ret;

	/* Two ways to protect everything; tests/unit/uffd/uffd-probe measures them on
	 * 1 GiB (Linux 6.18, x86-64):
	 *                          UFFDIO_WRITEPROTECT   PAGEMAP_SCAN(WP_MATCHING, no vec)
	 *   4K, never touched           2.4-4.2 ms          2.5-4.1 ms
	 *   4K, all written             16-20 ms            7-9 ms
	 *   4K, already protected       16-27 ms            0.3-0.4 ms
	 *   2M hugetlb, all written     0.05 ms             0.17 ms
	 * The scan only touches ptes that are not yet protected, and without a vector the
	 * kernel takes a fast path that also puts markers on empty ptes and holes. Its
	 * hugetlb path, though, protects only entries it classifies as written, so an
	 * empty huge pte stays unprotected, and a later read fault would map a page that
	 * then looks written (seen on 6.18: hugetlb-2M/exact fails that way). UFFDIO_WRITEPROTECT marks everything and is cheaper there
	 * anyway, so huge pages use it.
	 * Re-arming is allowed and forgets writes not yet collected. */
	if (t->page_size == (size_t)sysconf(_SC_PAGESIZE)) {
		ret = pm_scan(t, &arg);
		ret = ret < 0 ? ret : 0;
	} else {
		ret = mig_uffd_wp(t->uffd, (void *)t->start, t->len, 1);
	}
	if (ret == 0)
		t->armed = 1;
	return ret;
}

int mig_wp_tracker_collect(MigWpTracker *t, unsigned long *bitmap, uint64_t *ndirty)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = t->start,
		.end = t->start + t->len,
		.vec = (uintptr_t)t->vec,
		.vec_len = WP_VEC_LEN,
		/* Exactly WRITTEN in both masks, nothing inverted: the kernel has a fast
		 * path for this combination that skips the per-pte category work. */
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	const uint64_t end = arg.end;
	uint64_t found = 0;
	int ret = 0;

	/* Before arm, ptes that never got a marker would read as "written" (and anything
	 * written before registering too): the answer would be meaningless. */
	if (!t->armed)
		return -EINVAL;

	for (;;) {
		int n = pm_scan(t, &arg);

		if (n < 0) {
			ret = n;
			break;
		}
		for (int i = 0; i < n; i++) {
			const struct page_region *r = &t->vec[i];
			size_t first, last;

			/* Cannot happen; but never trust it with our bitmap, and never drop it
			 * silently either (those pages are already re-protected). */
			if (r->start < t->start || r->end > end || r->end <= r->start) {
				ret = -EIO;
				break;
			}
			/* hugetlb regions cover whole huge pages and are in bytes like the rest;
			 * rounding outwards can only over-report. */
			first = (r->start - t->start) / t->page_size;
			last = (r->end - t->start + t->page_size - 1) / t->page_size;
			set_bits(bitmap, first, last - first);
			found += last - first;
		}
		if (ret < 0)
			break;
		/* The vector filled up before the range was done: the pages that did not fit
		 * were neither reported nor re-protected, so resume where the walk stopped. */
		if (arg.walk_end >= end)
			break;
		if (arg.walk_end <= arg.start) {
			ret = -EIO;	/* no progress; refuse to spin */
			break;
		}
		arg.start = arg.walk_end;
	}

	if (ret < 0) {
		set_bits(bitmap, 0, t->npages);
		found = t->npages;
	}
	if (ndirty)
		*ndirty = found;
	return ret;
}

void mig_wp_tracker_free(MigWpTracker *t)
{
	if (!t)
		return;
	/* UFFDIO_UNREGISTER removes the uffd-wp bits and markers; closing alone would too,
	 * but only once the last reference to the fd goes away. */
	mig_uffd_unregister(t->uffd, (void *)t->start, t->len);
	close(t->uffd);
	close(t->pagemap);
	free(t);
}
