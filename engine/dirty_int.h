/* The engine's side of the dirty trackers (mig/dirty.h), beside the public sync. */
#pragma once
#include <mig/dirty.h>

/* t's sync into bitmap, marking in groups (engine/bitmap.h, MIG_GROUP_SHIFT) every page
 * it sets: the uffd trackers mark what they report, so a sync that found nothing costs
 * no read of the bitmap; another tracker's sync may have set anything, and marks all. */
gboolean mig_dirty_sync_marked(MigDirtyTracker *t, gulong *bitmap, gulong *groups, gsize npages, guint64 *ndirty,
			       GError **err);
