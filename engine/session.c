/* Session lifecycle, state machine, events and query-migrate. */
#include "engine/session_int.h"
#include "engine/device_int.h"
#include "engine/src/src.h"
#include "engine/dst/dst.h"
#include "engine/tlscreds.h"
#include "channels/uri.h"
#include "channels/wire.h"
#include <sys/random.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

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

static gboolean src_cancel(MigSession *s, GError **err);

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

void mig_session_free(MigSession *s)
{
	if (!s)
		return;
	src_cancel(s, NULL);
	g_mutex_lock(&s->lock);
	if (s->src)
		mig_src_quit(s->src);
	g_mutex_unlock(&s->lock);
	if (s->src)
		mig_src_free(g_steal_pointer(&s->src));
	mig_dst_shutdown(s);
	if (s->tls_src)
		mig_tls_run_clear(s->tls_src);
	g_free(s->tls_src);
	mig_objects_free(s);
	mig_params_clear(&s->params);
	g_ptr_array_free(s->ram, TRUE);
	g_ptr_array_free(s->devices, TRUE);
	if (s->vcpu_tids)
		g_array_unref(s->vcpu_tids);
	g_free(s->error);
	g_free(s->name);
	g_cond_clear(&s->switchover_cond);
	g_mutex_clear(&s->lock);
	g_free(s);
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

gboolean mig_session_vm_stop(MigSession *s, GError **err)
{
	g_mutex_lock(&s->lock);
	if (s->runstate == MIG_RUN_RUNNING) {
		/* vm->stop waits for vCPUs, which may themselves need the session lock to
		 * report an integrity failure: never wait for them while holding it */
		mig_set_runstate_locked(s, MIG_RUN_PAUSED);
		g_mutex_unlock(&s->lock);
		s->vm->stop(s->vm_opaque);
		return TRUE;
	} else if (s->runstate == MIG_RUN_INMIGRATE) {
		/* like QEMU: stopping an incoming guest keeps it paused once migrated */
		s->dst_autostart = FALSE;
	}
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_session_vm_cont(MigSession *s, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (s->runstate == MIG_RUN_INMIGRATE) {
		g_set_error(err, MIG_ERROR, EBUSY, "Guest is waiting for an incoming migration");
		ok = FALSE;
	} else if (s->runstate == MIG_RUN_FINISH_MIGRATE || (mig_status_is_active(s->status) && s->runstate != MIG_RUN_RUNNING && s->runstate != MIG_RUN_PAUSED)) {
		g_set_error(err, MIG_ERROR, EBUSY, "Migration is not finished yet");
		ok = FALSE;
	} else if (s->runstate != MIG_RUN_RUNNING) {
		mig_dst_cont(s);   /* stopped devices run again with the vCPUs */
		s->vm->cont(s->vm_opaque);
		mig_set_runstate_locked(s, MIG_RUN_RUNNING);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

static gboolean uri_ok(const char *uri, MigUri *parsed, GError **err)
{
	if (mig_uri_parse(uri, parsed) < 0) {
		g_set_error(err, MIG_ERROR, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT, unix:PATH, fd:NAME or file:PATH[,offset=N])", uri);
		return FALSE;
	}
	return TRUE;
}

static gboolean migrate(MigSession *s, const char *uri, const MigSrcInline *in, GError **err)
{
	struct Src *src;
	MigUri parsed;
	int fd = -1;
	MigTlsRun tls;

	if (!uri_ok(uri, &parsed, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	if (mig_status_is_active(s->status)) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "There's a migration process in progress");
		return FALSE;
	}
	if (s->runstate == MIG_RUN_INMIGRATE || s->dst) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Guest is waiting for an incoming migration");
		return FALSE;
	}
	if (!mig_params_check_lanes(s, err) || !mig_params_check_fd_uri(s, &parsed, err) ||
	    !mig_params_check_file(s, uri, TRUE, err) || !mig_params_check_auto(s, err) ||
	    !mig_tls_run_init(s, &s->params, FALSE, parsed.kind == MIG_URI_TCP ? parsed.host : "", &tls, err)) {
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (parsed.kind == MIG_URI_FD && (fd = mig_session_take_fd(s, &parsed, err)) < 0) {
		mig_tls_run_clear(&tls);
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (s->src) {
		struct Src *old = g_steal_pointer(&s->src);

		g_mutex_unlock(&s->lock);
		mig_src_free(old);
		g_mutex_lock(&s->lock);
	}
	g_clear_pointer(&s->error, g_free);
	s->cancel = FALSE;
	s->start_postcopy = FALSE;
	s->switchover_go = FALSE;
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.t_start = g_get_monotonic_time();
	for (guint i = 0; i < s->ram->len; i++)   /* nothing is sent yet: all of it remains */
		s->stats.remaining += ((MigRamBlock *)g_ptr_array_index(s->ram, i))->size;
	/* a CSPRNG: the id is what binds every channel of the migration to its main one */
	if (getrandom(s->session_id, sizeof(s->session_id), 0) != (ssize_t)sizeof(s->session_id)) {
		for (gsize i = 0; i < sizeof(s->session_id); i++)   /* no getrandom: ENOSYS */
			s->session_id[i] = (guint8)g_random_int();
	}
	/* the old run's channels are gone with its Src: nothing uses its TLS any more */
	if (!s->tls_src)
		s->tls_src = g_new0(MigTlsRun, 1);
	mig_tls_run_clear(s->tls_src);
	*s->tls_src = tls;
	mig_tls_forget_channels_locked(s);
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	s->src = src = in ? mig_src_new_inline(s, uri, fd, in) : mig_src_start(s, uri, fd);
	g_mutex_unlock(&s->lock);
	if (in)
		mig_src_run_inline(src);
	return TRUE;
}

gboolean mig_session_migrate(MigSession *s, const char *uri, GError **err)
{
	return migrate(s, uri, NULL, err);
}

gboolean mig_session_migrate_inline(MigSession *s, const char *uri, const MigSrcInline *in, GError **err)
{
	if (migrate(s, uri, in, err))
		return TRUE;
	if (in->resume_fd >= 0)
		close(in->resume_fd);
	return FALSE;
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

gboolean mig_session_incoming(MigSession *s, const char *uri, GError **err)
{
	return mig_session_incoming_full(s, uri, FALSE, err);
}

gboolean mig_session_incoming_full(MigSession *s, const char *uri, gboolean exit_on_error, GError **err)
{
	gboolean ok;
	MigTlsRun tls;

	g_mutex_lock(&s->lock);
	/* the credentials are taken again per channel; this only says early what is missing */
	ok = mig_params_check_lanes(s, err) && mig_params_check_file(s, uri, FALSE, err) &&
	     mig_tls_run_init(s, &s->params, TRUE, NULL, &tls, err);
	if (ok) {
		mig_tls_run_clear(&tls);
		mig_tls_forget_channels_locked(s);   /* a retry after a failed incoming */
	}
	g_mutex_unlock(&s->lock);
	return ok && mig_dst_listen(s, uri, exit_on_error, err);
}

gboolean mig_session_start_postcopy(MigSession *s, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (!s->caps[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "Enable postcopy with migrate_set_capability before the start of migration");
		ok = FALSE;
	} else if (s->status == MIG_STATUS_NONE) {
		g_set_error(err, MIG_ERROR, EINVAL, "Postcopy must be started after migration has been started");
		ok = FALSE;
	} else {
		/* a migration that already finished makes this a no-op, as in QEMU */
		__atomic_store_n(&s->start_postcopy, TRUE, __ATOMIC_RELEASE);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

gboolean mig_session_continue(MigSession *s, MigStatus state, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (s->status != state || state != MIG_STATUS_PRE_SWITCHOVER) {
		g_set_error(err, MIG_ERROR, EINVAL, "Migration not in expected state: %s", mig_status_str(s->status));
		ok = FALSE;
	} else {
		s->switchover_go = TRUE;
		g_cond_broadcast(&s->switchover_cond);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

/* The source's cancel; also what the session's teardown uses. */
static gboolean src_cancel(MigSession *s, GError **err)
{
	g_mutex_lock(&s->lock);
	if (mig_status_is_postcopy_run(s->status) || s->status == MIG_STATUS_POSTCOPY_DEVICE) {
		/* the guest runs on the destination: the source cannot take it back */
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Postcopy migration in progress, cannot cancel.");
		return FALSE;
	}
	if (s->status == MIG_STATUS_SETUP || s->status == MIG_STATUS_ACTIVE ||
	    s->status == MIG_STATUS_DEVICE || s->status == MIG_STATUS_PRE_SWITCHOVER) {
		s->cancel = TRUE;
		g_cond_broadcast(&s->switchover_cond);   /* out of pre-switchover */
		mig_set_status_locked(s, MIG_STATUS_CANCELLING);
		/* unblocks a send or receive stuck on the peer */
		if (s->src)
			mig_src_cancel(s->src);
	}
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_session_cancel(MigSession *s, GError **err)
{
	gboolean incoming;

	g_mutex_lock(&s->lock);
	incoming = s->dst && !s->src && !mig_status_is_postcopy_run(s->status) && s->status != MIG_STATUS_POSTCOPY_DEVICE;
	g_mutex_unlock(&s->lock);
	return incoming ? mig_dst_cancel(s, err) : src_cancel(s, err);
}

gboolean mig_session_has_channels(MigSession *s)
{
	gboolean any;

	g_mutex_lock(&s->lock);
	any = (s->src && mig_src_has_channels(s->src)) || (s->dst && mig_dst_has_channels(s));
	g_mutex_unlock(&s->lock);
	return any;
}

void mig_session_yank(MigSession *s)
{
	g_mutex_lock(&s->lock);
	if (s->src)
		mig_src_yank(s->src);
	if (s->dst)
		mig_dst_yank(s);
	g_mutex_unlock(&s->lock);
	mig_log(s, MIG_LOG_WARNING, "yank: migration channels shut down");
}

gboolean mig_session_pause(MigSession *s, GError **err)
{
	gboolean ok;

	g_mutex_lock(&s->lock);
	ok = s->status == MIG_STATUS_POSTCOPY_ACTIVE || s->status == MIG_STATUS_POSTCOPY_RECOVER ||
	     (s->src && s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP);
	if (!ok)
		g_set_error(err, MIG_ERROR, EINVAL, "migrate-pause is currently only supported during postcopy-active "
			    "or postcopy-recover state (now %s)", mig_status_str(s->status));
	else if (s->src)
		mig_src_pause(s->src);
	g_mutex_unlock(&s->lock);
	/* the destination's own lock order: its channels' locks are taken without ours */
	if (ok && !s->src)
		mig_dst_pause(s);
	return ok;
}

/* Recovery opens new channels itself: an address, not a passed descriptor. */
static gboolean recovery_uri_ok(const char *uri, GError **err)
{
	MigUri parsed;

	if (!uri_ok(uri, &parsed, err))
		return FALSE;
	if (parsed.kind == MIG_URI_FD || parsed.kind == MIG_URI_FILE) {
		g_set_error(err, MIG_ERROR, EINVAL, "postcopy recovery needs a tcp: or unix: address, not '%s'", uri);
		return FALSE;
	}
	return TRUE;
}

gboolean mig_session_recover(MigSession *s, const char *uri, GError **err)
{
	return recovery_uri_ok(uri, err) && mig_dst_recover(s, uri, err);
}

gboolean mig_session_resume(MigSession *s, const char *uri, GError **err)
{
	gboolean ok;

	if (!recovery_uri_ok(uri, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	ok = s->src && s->status == MIG_STATUS_POSTCOPY_PAUSED;
	if (ok)
		mig_src_resume(s->src, uri);
	else
		g_set_error(err, MIG_ERROR, EINVAL, "Cannot resume if there is no paused migration");
	g_mutex_unlock(&s->lock);
	return ok;
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

/* Bytes/s of the last pass; during the first pass, the average so far. */
static guint64 current_bandwidth(MigStats *st)
{
	guint64 bw = mig_atomic_get(&st->bandwidth);
	gint64 since = st->t_setup_done;

	if (bw || !since)
		return bw;
	return mig_atomic_get(&st->transferred) * G_USEC_PER_SEC / (guint64)MAX(g_get_monotonic_time() - since, 1);
}

/* every preempt channel has its slot in the public snapshot */
G_STATIC_ASSERT(MIG_INFO_PREEMPT_MAX >= MIG_PREEMPT_MAX);

static void ram_info(MigSession *s, MigRamInfo *r)
{
	MigStats *st = &s->stats;

	for (guint i = 0; i < s->ram->len; i++) {
		MigRamBlock *blk = g_ptr_array_index(s->ram, i);

		r->total += blk->size;
		r->page_size = MAX(r->page_size, blk->page_size);
	}
	r->transferred = mig_atomic_get(&st->transferred);
	r->remaining = mig_atomic_get(&st->remaining);
	r->dirty_pages_rate = mig_atomic_get(&st->dirty_pages_rate);
	r->duplicate = mig_atomic_get(&st->duplicate);
	r->normal = mig_atomic_get(&st->normal);
	r->normal_bytes = mig_atomic_get(&st->normal_bytes);
	r->mbps = (double)current_bandwidth(st) * 8.0 / 1e6;
	r->dirty_sync_count = mig_atomic_get(&st->dirty_sync_count);
	r->multifd_bytes = mig_atomic_get(&st->multifd_bytes);
	r->pages_per_second = r->page_size ? mig_atomic_get(&st->bandwidth) / r->page_size : 0;
	r->precopy_bytes = mig_atomic_get(&st->precopy_bytes);
	r->downtime_bytes = mig_atomic_get(&st->downtime_bytes);
	r->postcopy_bytes = mig_atomic_get(&st->postcopy_bytes);
	r->postcopy_requests = mig_atomic_get(&st->postcopy_requests);
	r->bulk_pacing = mig_atomic_get(&st->x_bulk_pacing);
	r->device_chunks_in_flight_peak = mig_atomic_get(&st->x_device_in_flight_peak);
	r->break_huge_drops = mig_atomic_get(&st->x_break_huge_drops);
	r->urgent_skipped = mig_atomic_get(&st->x_urgent_skipped);
	r->preempt_channels = mig_preempt_channels(s, &s->params);
	for (guint i = 0; i < r->preempt_channels; i++)
		r->preempt_channel_requests[i] = mig_atomic_get(&st->x_urgent_lane_requests[i]);
}

/* The source's times. Where the downtime went: the devices (stopped until the
 * destination loaded them all), the final RAM pass, and the rest (state, handshakes).
 * Devices and RAM overlap when the device lane is on, so the rest is what neither
 * explains. */
static void src_times(MigSession *s, MigInfo *info)
{
	MigStats *st = &s->stats;
	gint64 end = st->t_end ? st->t_end : g_get_monotonic_time();

	info->total_time_ms = (end - st->t_start) / 1000;
	if (st->t_setup_done)
		info->setup_time_ms = (st->t_setup_done - st->t_start) / 1000;
	if (s->status == MIG_STATUS_COMPLETED && st->t_stop) {
		gint64 down = st->downtime_us ? st->downtime_us : st->t_end - st->t_stop;
		gint64 dev = st->t_dev_loaded > st->t_stop ? st->t_dev_loaded - st->t_stop : 0;
		gint64 ram = st->t_ram_done > st->t_stop ? st->t_ram_done - st->t_stop : 0;

		info->downtime_ms = down / 1000;
		info->downtime_devices_ms = dev / 1000;
		info->downtime_ram_ms = ram / 1000;
		info->downtime_other_ms = MAX(down - MAX(dev, ram), 0) / 1000;
	}
	if (st->t_end)
		info->thread_cpu_ms = st->src_thread_cpu_us / 1000;
	if (s->status == MIG_STATUS_ACTIVE)
		info->expected_downtime_ms = (gint64)mig_atomic_get(&st->expected_downtime);
	if (st->downtime_us && s->status == MIG_STATUS_POSTCOPY_ACTIVE)
		info->downtime_ms = st->downtime_us / 1000;
	if (s->status == MIG_STATUS_ACTIVE && mig_atomic_get(&st->dirty_sync_count) > 1)
		info->converging = st->converging;
}

/* x-postcopy-auto: the pass at which the engine chose postcopy, and why. */
static void auto_query(MigSession *s, MigValue *extra)
{
	MigValue *a;

	if (!s->stats.x_auto_pass)
		return;
	a = mig_value_add_object(extra, "x-postcopy-auto");
	mig_value_add_int(a, "pass", (gint64)s->stats.x_auto_pass);
	mig_value_add_str(a, "reason", s->stats.x_auto_reason);
}

/* x-file: what a file migration moved, and how. A streamed file is one stream written
 * or read in order, one request at a time: its bytes are the stream's, hello included. */
static void file_query(MigSession *s, gboolean source, MigValue *extra)
{
	MigValue *f = mig_value_add_object(extra, "x-file");
	MigStats *st = &s->stats;
	gboolean streamed = st->x_file_streamed;
	guint64 bytes = streamed ? MIG_HELLO_LEN + mig_atomic_get(&st->transferred) : mig_atomic_get(&st->x_file_bytes);

	mig_value_add_bool(f, "mapped-ram", !streamed);
	mig_value_add_int(f, source ? "bytes-written" : "bytes-read", (gint64)bytes);
	mig_value_add_int(f, "queue-depth-reached", streamed ? 1 : (gint64)mig_atomic_get(&st->x_file_depth_peak));
	mig_value_add_bool(f, "direct", st->x_file_direct);
	if (!streamed) {
		mig_value_add_int(f, "requests", (gint64)mig_atomic_get(&st->x_file_requests));
		mig_value_add_int(f, "fill-bytes", (gint64)mig_atomic_get(&st->x_file_fill_bytes));
	}
	if (source && !streamed)
		mig_value_add_bool(f, "preallocated", st->x_file_prealloc);
	if (st->x_file_running_us)
		mig_value_add_double(f, "running-after-ms", (double)st->x_file_running_us / 1000.0);
	if (st->x_file_all_in_us)
		mig_value_add_double(f, "all-in-after-ms", (double)st->x_file_all_in_us / 1000.0);
	if (st->x_file_devices_us)
		mig_value_add_double(f, "devices-ms", (double)st->x_file_devices_us / 1000.0);
}

gboolean mig_session_query(MigSession *s, MigInfo *out)
{
	MigInfo info = {
		.size = sizeof(MigInfo),
		.total_time_ms = -1, .setup_time_ms = -1, .downtime_ms = -1, .expected_downtime_ms = -1,
		.downtime_devices_ms = -1, .downtime_ram_ms = -1, .downtime_other_ms = -1,
		.thread_cpu_ms = -1, .converging = -1, .device_queued_peak = -1,
		.extra = mig_value_new_object(),
	};
	gsize size = out->size;

	/* every member up to extra is the first version's */
	g_return_val_if_fail(size >= G_STRUCT_OFFSET(MigInfo, extra) + sizeof(MigValue *), FALSE);
	g_mutex_lock(&s->lock);
	info.started = s->status != MIG_STATUS_NONE || s->dst;
	if (info.started) {
		info.source = s->src != NULL;
		info.status = s->status;
		if (info.source && s->status != MIG_STATUS_NONE) {
			ram_info(s, &info.ram);
			src_times(s, &info);
			auto_query(s, info.extra);
		}
		if (!info.source)
			mig_dst_query(s, &info);
		mig_tls_query_locked(s, info.extra);
		mig_dev_query(s, info.source, &info);
		if (s->stats.x_file)
			file_query(s, info.source, info.extra);
		if (info.source || mig_dst_started(s))
			for (int i = 0; i < 16; i++)
				g_snprintf(info.session_id + 2 * i, 3, "%02x", s->session_id[i]);
		if (s->error && (s->status == MIG_STATUS_FAILED || s->status == MIG_STATUS_CANCELLED ||
				 s->status == MIG_STATUS_POSTCOPY_PAUSED || s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP ||
				 s->status == MIG_STATUS_POSTCOPY_RECOVER))
			info.error = g_strdup(s->error);
	}
	g_mutex_unlock(&s->lock);
	if (s->vm && s->vm->query)
		s->vm->query(s->vm_opaque, info.extra);
	memcpy(out, &info, MIN(size, sizeof(info)));
	out->size = size;
	return TRUE;
}

void mig_info_clear(MigInfo *info)
{
	if (!info)
		return;
	g_clear_pointer(&info->listen_host, g_free);
	g_clear_pointer(&info->listen_port, g_free);
	g_clear_pointer(&info->listen_path, g_free);
	g_clear_pointer(&info->devices, g_ptr_array_unref);
	g_clear_pointer(&info->error, g_free);
	g_clear_pointer(&info->extra, mig_value_free);
}
