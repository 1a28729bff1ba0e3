/* Dirty tracking with synchronous userfaultfd write-protect faults: a thread logs each
 * page on its first write since the last collect and un-protects it, so a collect
 * costs what was written (re-protect the logged pages), not a walk of every page-table
 * entry as wp_tracker's PAGEMAP_SCAN does. The price is the writer's: its first write
 * to a page in each round waits for that thread. Same contract as wp_tracker.h. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct MigWpLog MigWpLog;

/* Registers [addr, addr+len) (anon, memfd or hugetlb) for synchronous WP and starts
 * the logging thread (mig/wplog). -EOPNOTSUPP if the kernel cannot write-protect
 * never-touched pages of this memory (UFFD_FEATURE_WP_UNPOPULATED for anon,
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM otherwise). */
int mig_wp_log_new(void *addr, size_t len, size_t page_size, MigWpLog **out);

/* Write-protects the whole range and forgets what was logged. O(range). */
int mig_wp_log_arm(MigWpLog *l);

/* Get-and-clear, O(pages logged): ORs every page written since the last arm/collect
 * into bitmap, re-protects it, counts it in *ndirty (may be NULL). On failure every
 * bit is set (nothing can have been lost) and -errno is returned. */
int mig_wp_log_collect(MigWpLog *l, unsigned long *bitmap, uint64_t *ndirty);

/* The same, and marks in groups every page it sets in bitmap (mig_uffd_mark_groups;
 * on failure all of them), as mig_wp_tracker_collect_marked. */
int mig_wp_log_collect_marked(MigWpLog *l, unsigned long *bitmap, unsigned long *groups, unsigned group_shift,
			      uint64_t *ndirty);

/* Unregisters (the memory is left writable, blocked writers go on), stops and joins
 * the thread, frees. */
void mig_wp_log_free(MigWpLog *l);
