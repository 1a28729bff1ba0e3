/* The dirty tracker: THE plug point for how the source learns which guest pages
 * changed. The engine asks "which pages changed since last time" once per pass; by
 * default userfaultfd write-protect answers (mig_dirty_tracker_uffd_new), and an
 * embedder whose vCPUs write through something else (a KVM dirty log or ring, a
 * device's own log) supplies its own with mig_session_set_dirty_tracker.
 *
 * A tracker is a struct whose first member is a MigDirtyTracker (ops set), e.g.
 *     typedef struct { MigDirtyTracker base; int slot; } KvmTracker;
 * The engine creates one per RAM block when a migration starts, calls start, then
 * sync once per pass, and stop and free when the migration ends, all from the
 * migration thread. */
#pragma once
#include <mig/common.h>
#include <mig/ram.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;
typedef struct MigDirtyTracker MigDirtyTracker;

typedef struct MigDirtyTrackerOps {
	const char *name;
	/* Start recording writes to [host, host+len); pages are page_size each. */
	gboolean (*start)(MigDirtyTracker *t, void *host, gsize len, gsize page_size, GError **err);
	/* OR every page written since start or the previous sync into bitmap and forget them. */
	gboolean (*sync)(MigDirtyTracker *t, gulong *bitmap, guint64 *ndirty, GError **err);
	void (*stop)(MigDirtyTracker *t);
	void (*free)(MigDirtyTracker *t);
} MigDirtyTrackerOps;

struct MigDirtyTracker {
	const MigDirtyTrackerOps *ops;
};

/* The default tracker: userfaultfd async write-protect + PAGEMAP_SCAN. A write costs
 * the writer a minor fault; a sync walks every page-table entry of the block (about
 * 0.4 ms per GiB of 4 KiB pages), dirty or not, also the last one, in the downtime. */
MigDirtyTracker *mig_dirty_tracker_uffd_new(void);

/* userfaultfd synchronous write-protect: a thread (mig/wplog) logs each page on its
 * first write since the last sync and un-protects it, so a sync costs what was
 * written, not the block's size. A write costs the writer a round trip through that
 * thread. On a kernel that cannot write-protect never-touched pages of the block's
 * memory it runs as mig_dirty_tracker_uffd_new's tracker: ops->name says which runs
 * ("uffd-wp-log" or "uffd-wp") once start succeeded. */
MigDirtyTracker *mig_dirty_tracker_uffd_log_new(void);

/* Makes the tracker for block (NULL with *err set to fail the migration). */
typedef MigDirtyTracker *(*MigDirtyTrackerNewFn)(gpointer opaque, const MigRamBlock *block, GError **err);

/* Source: the trackers of the next migrations come from fn (NULL: uffd-wp again).
 * Set while no migration runs; opaque outlives the session. */
void mig_session_set_dirty_tracker(MigSession *s, MigDirtyTrackerNewFn fn, gpointer opaque);

static inline void mig_dirty_tracker_free(MigDirtyTracker *t)
{
	if (t)
		t->ops->free(t);
}

MIG_END_PUBLIC
