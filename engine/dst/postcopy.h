/* Postcopy at the destination (engine/postcopy.h has the frames and the design): the
 * fault thread asks the source for every page the guest touches before it arrived, and
 * every page lands whole through userfaultfd. */
#pragma once
#include "engine/dst/dst_int.h"
#include "engine/postcopy.h"

gboolean mig_pc_dst_listen(MigSession *s, GError **err);
/* Where a faulting page comes from when there is no source to ask: fetch reads it and
 * places it (mig_pc_dst_place) on the fault thread, returning 0 or -errno. Set after
 * listen and before the guest runs (the lazy restore from a file, fileload.c). */
typedef int (*MigPcFetchFn)(gpointer opaque, guint block, gsize page);
void mig_pc_dst_set_fetch(MigSession *s, MigPcFetchFn fetch, gpointer opaque);
/* Drops n ranges of a block (ranges[2i] first page, ranges[2i+1] count), all checked
 * before any is applied: they were dirtied after they were sent and will be faulted in. */
gboolean mig_pc_dst_discard(MigSession *s, guint block, const guint64 *ranges, guint n, GError **err);
/* Places one whole host page (data NULL: a zero page). Safe from any thread; a page
 * already present is left alone. */
gboolean mig_pc_dst_place(MigSession *s, guint block, gsize page, const void *data, GError **err);
/* npages whole host pages from page on, their bytes at data one after the other (a
 * lazy restore's prefetch): as mig_pc_dst_place for each, in one UFFDIO_COPY where no
 * other thread placed one of them first. */
gboolean mig_pc_dst_place_run(MigSession *s, guint block, gsize page, gsize npages, const void *data, GError **err);
gboolean mig_pc_dst_placing(MigSession *s);
/* The first page of block at or after from that a fault asked for and nothing placed
 * yet (the block's page count if none): what a recovered lazy restore serves first. */
gsize mig_pc_dst_next_pending(MigSession *s, guint block, gsize from);
/* After END: every page present? Then unregister and stop the fault thread. */
gboolean mig_pc_dst_finish(MigSession *s, GError **err);
void mig_pc_dst_stop(MigSession *s);
/* Recovery: RP_RESUME_ACK on fd (the resumed main channel), then every page asked for
 * and not yet in place is asked again (*asked: how many), and the fault thread may ask
 * by itself again. 0 or -errno. */
int mig_pc_dst_resume(MigSession *s, int fd, guint64 *asked);
void mig_pc_dst_free(MigSession *s);
void mig_pc_dst_query(MigSession *s, MigValue *b);
