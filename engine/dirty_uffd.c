/* The uffd MigDirtyTrackers: a GLib face on uffd/wp_tracker (async uffd-wp +
 * PAGEMAP_SCAN, the default) and uffd/wp_log (sync uffd-wp faults logged by a thread:
 * a sync costs what was written, not a walk of all RAM). The only real work here is
 * turning -EOPNOTSUPP into a message that says which kernel feature is missing,
 * because that is what an operator can act on, and the log's fall-back to the scan. */
#include "engine/dirty_int.h"
#include "engine/bitmap.h"
#include "uffd/uffd.h"
#include "uffd/wp_log.h"
#include "uffd/wp_tracker.h"

#include <errno.h>

/* Codes are errno values, like the other mig error domains. */
GQuark mig_dirty_uffd_error_quark(void);
G_DEFINE_QUARK(mig-dirty-uffd-error-quark, mig_dirty_uffd_error)
#define DIRTY_ERROR mig_dirty_uffd_error_quark()

typedef struct {
	MigDirtyTracker base;
	MigWpTracker *wp;
	MigWpLog *log;
	gboolean want_log;	/* try wp_log first; base.ops then says which one runs */
} UffdDirty;

static const MigDirtyTrackerOps uffd_ops, uffd_log_ops;

static const char *missing_feature(void)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} need[] = {
		{ UFFD_FEATURE_WP_ASYNC, "UFFD_FEATURE_WP_ASYNC" },
		{ UFFD_FEATURE_WP_UNPOPULATED, "UFFD_FEATURE_WP_UNPOPULATED" },
		{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "UFFD_FEATURE_WP_HUGETLBFS_SHMEM" },
	};
	uint64_t have = mig_uffd_probe_features();

	if (!have)
		return "userfaultfd";
	for (gsize i = 0; i < G_N_ELEMENTS(need); i++)
		if (!(have & need[i].bit))
			return need[i].name;
	/* All uffd features are there, so it was the pagemap side (< 6.7) or this kind
	 * of memory cannot carry async WP markers. */
	return "PAGEMAP_SCAN with PM_SCAN_CHECK_WPASYNC for this memory";
}

static void set_errno_error(GError **err, int neg, const char *what)
{
	if (neg == -EOPNOTSUPP)
		g_set_error(err, DIRTY_ERROR, EOPNOTSUPP, "%s: kernel lacks %s", what,
			    missing_feature());
	else if (neg == -EPERM)
		g_set_error(err, DIRTY_ERROR, EPERM,
			    "%s: userfaultfd not permitted (need CAP_SYS_PTRACE, "
			    "vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd)", what);
	else
		g_set_error(err, DIRTY_ERROR, -neg, "%s: %s", what, g_strerror(-neg));
}

/* The log's start; FALSE with *ret = -EOPNOTSUPP asks for the scan instead. */
static gboolean log_start(UffdDirty *t, void *host, gsize len, gsize page_size, int *ret)
{
	*ret = mig_wp_log_new(host, len, page_size, &t->log);
	if (*ret < 0)
		return FALSE;
	*ret = mig_wp_log_arm(t->log);
	if (*ret < 0) {
		mig_wp_log_free(t->log);
		t->log = NULL;
		return FALSE;
	}
	t->base.ops = &uffd_log_ops;
	return TRUE;
}

static gboolean uffd_start(MigDirtyTracker *base, void *host, gsize len, gsize page_size,
			   GError **err)
{
	UffdDirty *t = (UffdDirty *)base;
	int ret;

	if (t->wp || t->log) {
		g_set_error(err, DIRTY_ERROR, EBUSY, "dirty tracker already started");
		return FALSE;
	}
	if (t->want_log) {
		if (log_start(t, host, len, page_size, &ret))
			return TRUE;
		if (ret != -EOPNOTSUPP) {
			set_errno_error(err, ret, "uffd-wp dirty log");
			return FALSE;
		}
	}
	t->base.ops = &uffd_ops;	/* the scan: what a kernel without the log uses */
	ret = mig_wp_tracker_new(host, len, page_size, &t->wp);
	if (ret < 0) {
		set_errno_error(err, ret, "uffd-wp dirty tracking");
		return FALSE;
	}
	ret = mig_wp_tracker_arm(t->wp);
	if (ret < 0) {
		mig_wp_tracker_free(t->wp);
		t->wp = NULL;
		set_errno_error(err, ret, "write-protecting guest memory");
		return FALSE;
	}
	return TRUE;
}

static gboolean uffd_sync_marked(UffdDirty *t, gulong *bitmap, gulong *groups, guint64 *ndirty, GError **err)
{
	uint64_t n = 0;
	int ret;

	if (!t->wp && !t->log) {
		g_set_error(err, DIRTY_ERROR, EINVAL, "dirty tracker not started");
		return FALSE;
	}
	/* On failure the tracker has already marked every page dirty in bitmap, so a
	 * caller that chooses to continue anyway stays correct. */
	ret = t->log ? mig_wp_log_collect_marked(t->log, bitmap, groups, MIG_GROUP_SHIFT, &n)
		     : mig_wp_tracker_collect_marked(t->wp, bitmap, groups, MIG_GROUP_SHIFT, &n);
	if (ndirty)
		*ndirty = n;
	if (ret < 0) {
		set_errno_error(err, ret, "collecting dirty pages");
		return FALSE;
	}
	return TRUE;
}

static gboolean uffd_sync(MigDirtyTracker *base, gulong *bitmap, guint64 *ndirty, GError **err)
{
	return uffd_sync_marked((UffdDirty *)base, bitmap, NULL, ndirty, err);
}

static void uffd_stop(MigDirtyTracker *base)
{
	UffdDirty *t = (UffdDirty *)base;

	mig_wp_tracker_free(t->wp);
	t->wp = NULL;
	mig_wp_log_free(t->log);
	t->log = NULL;
}

static void uffd_free(MigDirtyTracker *base)
{
	uffd_stop(base);
	g_free(base);
}

static const MigDirtyTrackerOps uffd_ops = {
	.name = "uffd-wp",
	.start = uffd_start,
	.sync = uffd_sync,
	.stop = uffd_stop,
	.free = uffd_free,
};

static const MigDirtyTrackerOps uffd_log_ops = {
	.name = "uffd-wp-log",
	.start = uffd_start,
	.sync = uffd_sync,
	.stop = uffd_stop,
	.free = uffd_free,
};

MigDirtyTracker *mig_dirty_tracker_uffd_new(void)
{
	UffdDirty *t = g_new0(UffdDirty, 1);

	t->base.ops = &uffd_ops;
	return &t->base;
}

MigDirtyTracker *mig_dirty_tracker_uffd_log_new(void)
{
	UffdDirty *t = g_new0(UffdDirty, 1);

	t->base.ops = &uffd_log_ops;
	t->want_log = TRUE;
	return &t->base;
}

gboolean mig_dirty_sync_marked(MigDirtyTracker *t, gulong *bitmap, gulong *groups, gsize npages, guint64 *ndirty,
			       GError **err)
{
	gboolean ok;

	if (t->ops == &uffd_ops || t->ops == &uffd_log_ops)
		return uffd_sync_marked((UffdDirty *)t, bitmap, groups, ndirty, err);
	ok = t->ops->sync(t, bitmap, ndirty, err);
	mig_groups_fill(groups, npages);
	return ok;
}
