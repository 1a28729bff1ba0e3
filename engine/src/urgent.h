/* The source's urgent lanes: one sender thread (mig/src/urg/N) per preempt channel.
 * The return-path thread decides and queues; the page goes out on the least busy lane,
 * so a request never waits behind another request's huge page in one socket. A small
 * page for an idle lane the return-path thread writes itself, saving a wakeup. */
#pragma once
#include "engine/session_int.h"

typedef struct MigUrgent MigUrgent;

/* After each queued page is sent (err NULL) or its lane failed (err set; the lane then
 * stops). Called on the lane's thread, or within mig_urgent_queue() for a page it
 * wrote itself. */
typedef void (*MigUrgentDoneFn)(gpointer opaque, const GError *err);

/* Starts one sender per fd, each scheduled as mig_thread_set_urgent_for() with
 * rt_priority (engine/urgency.h); the fds stay the caller's. */
MigUrgent *mig_urgent_new(MigSession *s, const int *fds, guint n, guint rt_priority, MigUrgentDoneFn done,
			  gpointer opaque);
/* Queues one whole host page of block bi on the least busy lane: 1 (done will be
 * called), 0 when that page is queued already (no second copy, no call), -E2BIG when
 * mig_urgent_pending_max() requests are queued (a destination asking for that many
 * at once is broken or hostile). */
int mig_urgent_queue(MigUrgent *u, guint bi, MigRamBlock *rb, gsize page);
guint mig_urgent_pending_max(void);
/* Urgent bytes written so far, over all lanes (what bulk pacing leaves room for). */
guint64 mig_urgent_bytes(MigUrgent *u);
/* Urgent bytes queued or not yet acknowledged by the destination, over all lanes. */
guint64 mig_urgent_in_flight(MigUrgent *u);
/* Stops the senders, dropping what is still queued (every page is present by then, or
 * the migration failed), and joins them. The lanes stay readable (in_flight) until
 * freed: a bulk sender may still be yielding to them. */
void mig_urgent_stop(MigUrgent *u);
void mig_urgent_free(MigUrgent *u);
