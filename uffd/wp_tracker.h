/* Dirty tracking with asynchronous userfaultfd write-protect and PAGEMAP_SCAN:
 * the kernel un-protects a page on its first write without waking anyone, and one
 * PAGEMAP_SCAN call both reports the written pages and re-protects them. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct MigWpTracker MigWpTracker;

/* Registers [addr, addr+len) (anon, memfd or hugetlb memory) for async WP.
 * page_size is the mapping's page size (4 KiB or the huge page size).
 * -EOPNOTSUPP if the kernel lacks WP_ASYNC / PAGEMAP_SCAN for this memory. */
int mig_wp_tracker_new(void *addr, size_t len, size_t page_size, MigWpTracker **out);

/* Write-protects the range: from now on every write is recorded. On 4 KiB pages only
 * the page tables that exist are protected; the rest is watched without protection
 * (wp_tracker.c, "Untouched memory"), so a guest's untouched RAM costs no walk. */
int mig_wp_tracker_arm(MigWpTracker *t);

/* Get-and-clear: for every page written since the last arm/collect, sets its bit in
 * `bitmap` (bit i = page i of page_size; bits are ORed in, never cleared) and
 * re-protects it. *ndirty (may be NULL) counts the pages found. 0 or -errno. */
int mig_wp_tracker_collect(MigWpTracker *t, unsigned long *bitmap, uint64_t *ndirty);

/* The same, and marks in groups (mig_uffd_mark_groups) every page it sets in bitmap,
 * on failure all of them: a caller keeping a summary of its bitmap learns what
 * changed without reading all of it. */
int mig_wp_tracker_collect_marked(MigWpTracker *t, unsigned long *bitmap, unsigned long *groups,
				  unsigned group_shift, uint64_t *ndirty);

/* Unregisters and frees; the memory is left writable. */
void mig_wp_tracker_free(MigWpTracker *t);
