/* The session's shared state, the floor both halves stand on: creation, the host's
 * hooks, status and runstate with their events, and the error a half reports. It calls
 * neither half (engine/control.c and engine/query.c do, from above). */
#include "engine/session_int.h"
#include "engine/device_int.h"
#include <errno.h>
#include <stdarg.h>
#include <string.h>

G_DEFINE_QUARK(mig-error-quark, mig_error)

static const char *const status_names[] = {
	"none", "setup", "cancelling", "cancelled", "active", "postcopy-device", "postcopy-active",
	"postcopy-paused", "postcopy-recover-setup", "postcopy-recover", "completed", "failed",
	"colo", "pre-switchover", "device", "wait-unplug",
};

const char *mig_status_str(MigStatus s)
{
	return (guint)s < G_N_ELEMENTS(status_names) ? status_names[s] : "?";
}

const char *mig_runstate_str(MigRunState r)
{
	static const char *const names[] = { "running", "paused", "inmigrate", "postmigrate", "finish-migrate", "prelaunch" };

	return (guint)r < G_N_ELEMENTS(names) ? names[r] : "?";
}

MigSession *mig_session_new(const char *name)
{
	MigSession *s = g_new0(MigSession, 1);

	s->name = g_strdup(name ? name : "mig");
	g_mutex_init(&s->lock);
	g_cond_init(&s->switchover_cond);
	mig_params_init(&s->params);
	s->ram = g_ptr_array_new();
	s->devices = g_ptr_array_new_with_free_func((GDestroyNotify)mig_device_free);
	s->caps[MIG_CAP_X_DEVICE_STATE_LANE] = TRUE;   /* used whenever multifd is on */
	s->runstate = MIG_RUN_RUNNING;
	s->dst_autostart = TRUE;
	return s;
}

void mig_session_set_vm(MigSession *s, const MigVmOps *ops, gpointer opaque, MigRunState initial)
{
	s->vm = ops;
	s->vm_opaque = opaque;
	s->runstate = initial;
}

void mig_session_set_vm_live(MigSession *s, const MigVmLiveOps *ops)
{
	s->vm_live = ops;
}

void mig_session_set_vcpus(MigSession *s, const pid_t *tids, guint n)
{
	g_mutex_lock(&s->lock);
	if (s->vcpu_tids)
		g_array_unref(s->vcpu_tids);
	s->vcpu_tids = g_array_sized_new(FALSE, FALSE, sizeof(pid_t), n);
	g_array_append_vals(s->vcpu_tids, tids, n);
	g_mutex_unlock(&s->lock);
}

void mig_session_add_ram(MigSession *s, MigRamBlock *block)
{
	g_ptr_array_add(s->ram, block);
}

void mig_session_set_dirty_tracker(MigSession *s, MigDirtyTrackerNewFn fn, gpointer opaque)
{
	g_mutex_lock(&s->lock);
	s->tracker_new = fn;
	s->tracker_opaque = opaque;
	g_mutex_unlock(&s->lock);
}

MigDirtyTracker *mig_tracker_new(MigSession *s, const MigRamBlock *block, GError **err)
{
	MigDirtyTracker *t;

	if (!s->tracker_new)
		return mig_dirty_tracker_uffd_new();
	t = s->tracker_new(s->tracker_opaque, block, err);
	if (!t && err && !*err)
		g_set_error(err, MIG_ERROR, EINVAL, "the dirty tracker for RAM block '%s' could not be created", block->name);
	return t;
}

void mig_session_set_event_cb(MigSession *s, MigEventFn fn, gpointer opaque)
{
	s->event_fn = fn;
	s->event_opaque = opaque;
}

void mig_session_set_autostart(MigSession *s, gboolean autostart)
{
	g_mutex_lock(&s->lock);
	s->dst_autostart = autostart;
	g_mutex_unlock(&s->lock);
}

void mig_session_set_fd_lookup(MigSession *s, MigFdLookupFn fn, gpointer opaque)
{
	g_mutex_lock(&s->lock);
	s->fd_lookup = fn;
	s->fd_opaque = opaque;
	g_mutex_unlock(&s->lock);
}

void mig_session_set_fdset_dup(MigSession *s, MigFdsetDupFn fn, gpointer opaque)
{
	g_mutex_lock(&s->lock);
	s->fdset_dup = fn;
	s->fdset_opaque = opaque;
	g_mutex_unlock(&s->lock);
}

const char *mig_event_name(MigEventType type)
{
	static const char *const names[] = { "MIGRATION", "MIGRATION_PASS", "STOP", "RESUME" };

	return (guint)type < G_N_ELEMENTS(names) ? names[type] : "?";
}

void mig_emit(MigSession *s, const MigEvent *ev)
{
	if (s->event_fn)
		s->event_fn(s->event_opaque, ev);
}

void mig_set_status_locked(MigSession *s, MigStatus st)
{
	if (s->status == st)
		return;
	s->status = st;
	if (s->caps[MIG_CAP_EVENTS])
		mig_emit(s, &(MigEvent){ .type = MIG_EVENT_MIGRATION, .status = st });
}

void mig_set_status(MigSession *s, MigStatus st)
{
	g_mutex_lock(&s->lock);
	mig_set_status_locked(s, st);
	g_mutex_unlock(&s->lock);
}

void mig_set_runstate_locked(MigSession *s, MigRunState r)
{
	gboolean was = s->runstate == MIG_RUN_RUNNING;

	s->runstate = r;
	if (was && r != MIG_RUN_RUNNING)
		mig_emit(s, &(MigEvent){ .type = MIG_EVENT_STOP });
	else if (!was && r == MIG_RUN_RUNNING)
		mig_emit(s, &(MigEvent){ .type = MIG_EVENT_RESUME });
}

MigStatus mig_session_status(MigSession *s)
{
	MigStatus st;

	g_mutex_lock(&s->lock);
	st = s->status;
	g_mutex_unlock(&s->lock);
	return st;
}

MigRunState mig_session_runstate(MigSession *s)
{
	MigRunState r;

	g_mutex_lock(&s->lock);
	r = s->runstate;
	g_mutex_unlock(&s->lock);
	return r;
}

void mig_session_set_incoming_failed_cb(MigSession *s, MigIncomingFailedFn fn, gpointer opaque)
{
	g_mutex_lock(&s->lock);
	s->incoming_failed_fn = fn;
	s->incoming_failed_opaque = opaque;
	g_mutex_unlock(&s->lock);
}

void mig_session_incoming_failed(MigSession *s)
{
	MigIncomingFailedFn fn;
	gpointer opaque;
	gboolean exit_on_error;
	g_autofree char *why = NULL;

	g_mutex_lock(&s->lock);
	/* a guest that ran here (or may: the switchover's outcome unknown, all of it here)
	 * is the operator's to decide on, not thrown away with the process */
	if (s->status != MIG_STATUS_FAILED || s->runstate != MIG_RUN_INMIGRATE || s->dst_failure_told) {
		g_mutex_unlock(&s->lock);
		return;
	}
	s->dst_failure_told = TRUE;
	fn = s->incoming_failed_fn;
	opaque = s->incoming_failed_opaque;
	exit_on_error = s->dst_exit_on_error;
	why = g_strdup(s->error ? s->error : "unknown error");
	g_mutex_unlock(&s->lock);
	if (fn)
		fn(opaque, why, exit_on_error);
}

void mig_session_report_error(MigSession *s, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *msg = NULL;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_mutex_lock(&s->lock);
	if (!s->error)
		s->error = g_strdup(msg);
	if (s->status != MIG_STATUS_FAILED) {
		mig_log(s, MIG_LOG_ERROR, "migration failed: %s", msg);
		mig_set_status_locked(s, MIG_STATUS_FAILED);
	}
	g_mutex_unlock(&s->lock);
}

