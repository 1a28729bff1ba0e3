/* Postcopy: the guest runs on the destination before all of its memory is there.
 * Destination: guest RAM is registered with userfaultfd; a fault thread asks the
 * source for each missing page; every page that arrives afterwards is placed
 * atomically (UFFDIO_COPY), never written in place. Source: a return-path thread
 * serves requests at once (on the preempt channel when there is one) while the
 * migration thread pushes the rest in the background. */
#pragma once
#include "engine/session_int.h"
#include <sys/uio.h>

enum {
	/* main channel, source -> destination */
	MIG_F_PC_LISTEN = 8,    /* register guest RAM with userfaultfd, start the fault thread */
	MIG_F_PC_DISCARD = 9,   /* be32 block, be32 count, count x (be64 first page, be64 pages) */
	MIG_F_PC_RUN = 10,      /* start the guest; answer RP_RUNNING */
	MIG_F_PC_END = 11,      /* every page was sent; answer RP_DONE once all are placed */
	/* return path */
	MIG_F_RP_REQ_PAGE = 0x43, /* be32 block, be32 0, be64 offset: send this page now */
	MIG_F_RP_DONE = 0x44,     /* postcopy finished on the destination */
};

/* ---- destination (postcopy_dst.c) ---- */
gboolean mig_pc_dst_listen(MigSession *s, GError **err);
gboolean mig_pc_dst_discard(MigSession *s, guint block, guint64 first, guint64 n, GError **err);
/* Places one whole host page (data NULL: a zero page). Safe from any thread; a page
 * already present is left alone. */
gboolean mig_pc_dst_place(MigSession *s, guint block, gsize page, const void *data, GError **err);
gboolean mig_pc_dst_placing(MigSession *s);
/* After END: every page present? Then unregister and stop the fault thread. */
gboolean mig_pc_dst_finish(MigSession *s, GError **err);
void mig_pc_dst_stop(MigSession *s);
void mig_pc_dst_free(MigSession *s);
void mig_pc_dst_query(MigSession *s, MigValue *b);
/* Sends a return-path frame on the main channel (fault thread and loader share it). */
int mig_dst_rp_send(MigSession *s, guint16 type, const struct iovec *iov, int n);
