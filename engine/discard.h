/* Discards: many page ranges of one RAM block given back to the kernel in few system
 * calls. Postcopy's switchover drops every page dirtied since it was sent, often one
 * page per range; a madvise(MADV_DONTNEED) each costs a TLB flush (an IPI to every CPU
 * running the process), so a busy guest's tens of thousands of ranges made the
 * downtime seconds long. process_madvise() takes up to IOV_MAX ranges and flushes
 * once per call where the kernel allows MADV_DONTNEED through it (6.13 on); the
 * per-range madvise stays as the fallback. */
#pragma once

#include "mig/ram.h"
#include <glib.h>

typedef struct MigDiscarder MigDiscarder;

/* Probes the kernel once: process_madvise(MADV_DONTNEED) on this process, or not. */
MigDiscarder *mig_discarder_new(void);
/* The fallback alone, madvise per range: what a kernel without the batch gets. */
MigDiscarder *mig_discarder_new_per_range(void);
void mig_discarder_free(MigDiscarder *d);

/* "process_madvise" or "madvise": how anonymous memory is discarded here. */
const char *mig_discarder_method(const MigDiscarder *d);

/* Discards n ranges of b, ranges[2i] the first page and ranges[2i+1] the count of
 * range i; every range must lie inside b (the caller checked). Memory with a file
 * behind it (memfd, hugetlbfs) is punched range by range, as mig_ram_block_discard
 * does. 0, or -errno. */
int mig_discarder_apply(MigDiscarder *d, MigRamBlock *b, const guint64 *ranges, guint n);
