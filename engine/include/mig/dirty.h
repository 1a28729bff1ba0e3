/* The dirty-tracker interface. The engine asks "which pages changed since last time";
 * an embedder may plug in its own source (a KVM dirty log, a ring) instead of uffd-wp. */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

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

/* The default tracker: userfaultfd async write-protect + PAGEMAP_SCAN. */
MigDirtyTracker *mig_dirty_tracker_uffd_new(void);

static inline void mig_dirty_tracker_free(MigDirtyTracker *t)
{
	if (t)
		t->ops->free(t);
}

MIG_END_PUBLIC
