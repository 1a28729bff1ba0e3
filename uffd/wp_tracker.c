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
 *           or UFFDIO_WRITEPROTECT (huge pages); mig_wp_tracker_arm says why. On
 *           4 KiB pages only where a page table exists: see "Untouched memory".
 *   collect PAGEMAP_SCAN with PM_SCAN_WP_MATCHING, category_mask = return_mask =
 *           PAGE_IS_WRITTEN: one walk that reports every unprotected pte and
 *           re-protects it, i.e. get-and-clear.
 *
 * Untouched memory (4 KiB pages: anon, anon THP, memfd)
 *   Protecting a range with no page table allocates one and fills it with markers
 *   (WP_UNPOPULATED), and every collect then reads those 512 entries per 2 MiB: for
 *   an idle guest that never touched half its RAM, the last collect's whole cost.
 *   So arm protects only the page tables that exist (category_anyof_mask PRESENT |
 *   SWAPPED: the fast path still marks every entry of an existing table, and skips a
 *   range without one) and records them, 2 MiB-aligned, as `armed` ranges. collect
 *   walks the armed ranges as above, and the rest ("gaps") with category_anyof_mask
 *   PRESENT | SWAPPED too: an unprotected present or swapped entry is reported and
 *   re-protected, an empty one and a range without a table are not. The kernel (6.18)
 *   needs the mask there: without it, it counts an empty entry (pte_none) as written
 *   and, where the VMA is uffd-wp, a range without a page table too, and would report
 *   and arm the whole untouched tail at the first collect.
 *   Why a write in a gap is never lost: nothing there carries uffd-wp except entries a
 *   collect re-protected, so a write either creates an entry without the bit (a page
 *   fault on an empty entry or a missing table maps the page as the VMA allows; no
 *   marker means no uffd-wp) or clears the bit (the async fault): either way a present
 *   entry without uffd-wp, PRESENT | WRITTEN, which the gap's walk reports (rules 1-2
 *   below hold as in the armed ranges). Swapped out before the collect, it keeps "no
 *   uffd-wp" in its swap entry (SWAPPED | WRITTEN). A read of an empty entry maps a page
 *   without uffd-wp, reported once though not written (over-report); on THP a write
 *   where there is no table may fault in a whole huge page, reported whole.
 *   Arm against a writer: a table the guest makes between protecting and the look-up
 *   that follows is recorded as armed with its empty entries unprotected; the first
 *   collect reads them as written (the fast path), reports them once and marks them.
 *   One made after the look-up is in a gap. Either way its written page is reported.
 *   The price: in a gap, a page the guest discards (MADV_DONTNEED on anon) turns to
 *   zero without a report, where an armed range reports it (the empty entry reads as
 *   written there). A gap's pages are ones first written after arm; the destination
 *   keeps what it was sent of them. That is KVM's dirty log's view too (it sees
 *   writes, not discards): a guest that discards a page (a balloon) has given it up.
 *   On shared memory a discard does not change the file's content, so nothing is lost.
 *   Cost: the gaps' walk skips a missing table in one step; a table made after arm is
 *   read per entry in the slower categorised path (about 3 x the fast one here), so a
 *   gap shorter than WP_GAP_MIN is armed like the tables around it instead of being
 *   walked alone (one ioctl more costs about what a few tables' walk does).
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
 *      the zero page a read maps in, never count as writes (but the first read of an
 *      empty entry in a gap, above). One store can be reported
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
 *   DMA; and a discard in a gap (above). MADV_DONTNEED on anon memory of an armed range
 *   does get reported (as of 6.18 the zap leaves empty ptes, or frees a table it
 *   emptied, and the scan's fast path counts both as written).
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

/* What one last-level page table maps (512 entries of 4 KiB): armed ranges are whole
 * tables. Rounding only has to be generous: an armed range that strays into memory
 * without a table costs one report of it, never a loss. */
#define WP_TABLE_SPAN (2UL << 20)
/* A gap shorter than this between armed ranges is armed too (4 tables: their walk
 * costs about what a separate ioctl does). */
#define WP_GAP_MIN (8UL << 20)

#define PRESENT_OR_SWAPPED (PAGE_IS_PRESENT | PAGE_IS_SWAPPED)

struct MigWpTracker {
	int uffd;
	int pagemap;		/* /proc/self/pagemap, the fd PAGEMAP_SCAN lives on */
	uintptr_t start;
	size_t len;
	size_t page_size;
	size_t npages;
	int armed;
	uintptr_t *ranges;	/* armed ranges, [ranges[2i], ranges[2i+1]), ascending */
	size_t nranges, cap;
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

/* Write-protects [start, end): every entry of every page table there (empty ones get
 * a marker), and where there is no table, nothing if `tabled_only`, else a table full
 * of markers. 0 or -errno. */
static int protect(const MigWpTracker *t, uintptr_t start, uintptr_t end, int tabled_only)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.category_anyof_mask = tabled_only ? PRESENT_OR_SWAPPED : 0,
	};
	int ret = pm_scan(t, &arg);

	return ret < 0 ? ret : 0;
}

static int add_range(MigWpTracker *t, uintptr_t start, uintptr_t end)
{
	if (t->nranges && start <= t->ranges[2 * t->nranges - 1] + WP_GAP_MIN) {
		uintptr_t *last = &t->ranges[2 * t->nranges - 1];
		int ret = 0;

		if (start > *last)
			ret = protect(t, *last, start, 0);
		if (end > *last)
			*last = end;
		return ret;
	}
	if (t->nranges == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		uintptr_t *r = realloc(t->ranges, cap * 2 * sizeof(*r));

		if (!r)
			return -ENOMEM;
		t->ranges = r;
		t->cap = cap;
	}
	t->ranges[2 * t->nranges] = start;
	t->ranges[2 * t->nranges + 1] = end;
	t->nranges++;
	return 0;
}

/* Records where page tables exist, after protect(tabled_only) filled them: each of
 * their entries is now present or swapped (a marker reads as swapped). */
static int find_armed(MigWpTracker *t)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = t->start,
		.end = t->start + t->len,
		.vec = (uintptr_t)t->vec,
		.vec_len = WP_VEC_LEN,
		.category_anyof_mask = PRESENT_OR_SWAPPED,
		.return_mask = PRESENT_OR_SWAPPED,
	};
	const uintptr_t end = arg.end;

	t->nranges = 0;
	for (;;) {
		int n = pm_scan(t, &arg);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			uintptr_t a = t->vec[i].start & ~(WP_TABLE_SPAN - 1);
			uintptr_t b = (t->vec[i].end + WP_TABLE_SPAN - 1) & ~(WP_TABLE_SPAN - 1);
			int ret = add_range(t, a < t->start ? t->start : a, b > end ? end : b);

			if (ret < 0)
				return ret;
		}
		if (arg.walk_end >= end)
			return 0;
		if (arg.walk_end <= arg.start)
			return -EIO;
		arg.start = arg.walk_end;
	}
}

int mig_wp_tracker_arm(MigWpTracker *t)
{
	int ret;

	/* Two ways to protect everything; tests/unit/uffd/uffd-probe measures them on
	 * 1 GiB (Linux 6.18, x86-64):
	 *                          UFFDIO_WRITEPROTECT   PAGEMAP_SCAN(WP_MATCHING, no vec)
	 *   4K, never touched           2.4-4.2 ms          2.5-4.1 ms
	 *   4K, all written             16-20 ms            7-9 ms
	 *   4K, already protected       16-27 ms            0.3-0.4 ms
	 *   2M hugetlb, all written     0.05 ms             0.17 ms
	 * The scan only touches ptes that are not yet protected, and without a vector the
	 * kernel takes a fast path that also puts markers on empty ptes (and, without the
	 * anyof mask protect() gives it here, on ranges without a table). Its
	 * hugetlb path, though, protects only entries it classifies as written, so an
	 * empty huge pte stays unprotected, and a later read fault would map a page that
	 * then looks written (seen on 6.18: hugetlb-2M/exact fails that way). UFFDIO_WRITEPROTECT marks everything and is cheaper there
	 * anyway, so huge pages use it, over the whole range (hugetlb has no gaps: the
	 * kernel reads a missing huge page table as not written).
	 * Re-arming is allowed and forgets writes not yet collected. */
	t->armed = 0;
	t->nranges = 0;
	if (t->page_size == (size_t)sysconf(_SC_PAGESIZE)) {
		ret = protect(t, t->start, t->start + t->len, 1);
		if (ret == 0)
			ret = find_armed(t);
	} else {
		ret = mig_uffd_wp(t->uffd, (void *)t->start, t->len, 1);
		if (ret == 0)
			ret = add_range(t, t->start, t->start + t->len);
	}
	if (ret == 0)
		t->armed = 1;
	return ret;
}

/* One get-and-clear walk of [start, end), its reports ORed into bitmap. `gap`: see
 * "Untouched memory" above. 0 or -errno. */
/* Where collect puts what it finds: the caller's bitmap and, if any, its summary. */
typedef struct {
	unsigned long *bitmap;
	unsigned long *groups;
	unsigned shift;
} CollectOut;

static int collect_range(MigWpTracker *t, uintptr_t start, uintptr_t end, int gap,
			 const CollectOut *out, uint64_t *found)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.vec = (uintptr_t)t->vec,
		.vec_len = WP_VEC_LEN,
		/* Exactly WRITTEN in both masks, nothing else: the kernel has a fast path
		 * for this combination that skips the per-pte category work. A gap's
		 * anyof mask leaves it, as it must (see "Untouched memory"). */
		.category_mask = PAGE_IS_WRITTEN,
		.category_anyof_mask = gap ? PRESENT_OR_SWAPPED : 0,
		.return_mask = PAGE_IS_WRITTEN,
	};

	for (;;) {
		int n = pm_scan(t, &arg);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			const struct page_region *r = &t->vec[i];
			size_t first, last;

			/* Cannot happen; but never trust it with our bitmap, and never drop it
			 * silently either (those pages are already re-protected). */
			if (r->start < start || r->end > end || r->end <= r->start)
				return -EIO;
			/* hugetlb regions cover whole huge pages and are in bytes like the rest;
			 * rounding outwards can only over-report. */
			first = (r->start - t->start) / t->page_size;
			last = (r->end - t->start + t->page_size - 1) / t->page_size;
			set_bits(out->bitmap, first, last - first);
			if (out->groups)
				mig_uffd_mark_groups(out->groups, out->shift, first, last - first);
			*found += last - first;
		}
		/* The vector filled up before the range was done: the pages that did not fit
		 * were neither reported nor re-protected, so resume where the walk stopped. */
		if (arg.walk_end >= end)
			return 0;
		if (arg.walk_end <= arg.start)
			return -EIO;	/* no progress; refuse to spin */
		arg.start = arg.walk_end;
	}
}

int mig_wp_tracker_collect(MigWpTracker *t, unsigned long *bitmap, uint64_t *ndirty)
{
	return mig_wp_tracker_collect_marked(t, bitmap, NULL, 0, ndirty);
}

int mig_wp_tracker_collect_marked(MigWpTracker *t, unsigned long *bitmap, unsigned long *groups,
				  unsigned group_shift, uint64_t *ndirty)
{
	const CollectOut out = { bitmap, groups, group_shift };
	const uintptr_t end = t->start + t->len;
	uintptr_t pos = t->start;
	uint64_t found = 0;
	int ret = 0;

	/* Before arm, ptes that never got a marker would read as "written" (and anything
	 * written before registering too): the answer would be meaningless. */
	if (!t->armed)
		return -EINVAL;

	for (size_t i = 0; i <= t->nranges && ret == 0; i++) {
		uintptr_t a = i < t->nranges ? t->ranges[2 * i] : end;

		if (pos < a)
			ret = collect_range(t, pos, a, 1, &out, &found);
		if (ret == 0 && i < t->nranges) {
			ret = collect_range(t, a, t->ranges[2 * i + 1], 0, &out, &found);
			pos = t->ranges[2 * i + 1];
		}
	}

	if (ret < 0) {
		set_bits(bitmap, 0, t->npages);
		if (groups)
			mig_uffd_mark_groups(groups, group_shift, 0, t->npages);
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
	free(t->ranges);
	free(t);
}
