/* Session lifecycle, state machine, events and query-migrate. */
#include "engine/session_int.h"
#include "channels/uri.h"
#include "engine/multifd.h"
#include "engine/device_int.h"
#include "engine/devlane.h"
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
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
	static const char *const names[] = { "running", "paused", "inmigrate", "postmigrate", "finish-migrate" };

	return (guint)r < G_N_ELEMENTS(names) ? names[r] : "?";
}

gboolean mig_status_is_active(MigStatus st)
{
	switch (st) {
	case MIG_STATUS_SETUP:
	case MIG_STATUS_ACTIVE:
	case MIG_STATUS_DEVICE:
	case MIG_STATUS_CANCELLING:
	case MIG_STATUS_PRE_SWITCHOVER:
	case MIG_STATUS_POSTCOPY_DEVICE:
	case MIG_STATUS_POSTCOPY_ACTIVE:
	case MIG_STATUS_POSTCOPY_PAUSED:
	case MIG_STATUS_POSTCOPY_RECOVER_SETUP:
	case MIG_STATUS_POSTCOPY_RECOVER:
		return TRUE;
	default:
		return FALSE;
	}
}

MigSession *mig_session_new(const char *name)
{
	MigSession *s = g_new0(MigSession, 1);

	s->name = g_strdup(name ? name : "mig");
	g_mutex_init(&s->lock);
	mig_params_init(&s->params);
	s->ram = g_ptr_array_new();
	s->devices = g_ptr_array_new_with_free_func((GDestroyNotify)mig_device_free);
	s->caps[MIG_CAP_X_DEVICE_STATE_LANE] = TRUE;   /* used whenever multifd is on */
	g_mutex_init(&s->mf_lock);
	g_mutex_init(&s->rp_lock);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		s->urgent_fd[i] = -1;
	g_cond_init(&s->mf_cond);
	s->mf_recv = g_ptr_array_new();
	s->src_fd = s->dst_fd = s->listen_fd = -1;
	s->listen_wake[0] = s->listen_wake[1] = -1;
	s->runstate = MIG_RUN_RUNNING;
	s->dst_autostart = TRUE;
	return s;
}

void mig_session_free(MigSession *s)
{
	if (!s)
		return;
	mig_session_cancel(s, NULL);
	if (s->src_thread)
		g_thread_join(s->src_thread);
	mig_dst_shutdown(s);
	mig_params_clear(&s->params);
	g_ptr_array_free(s->ram, TRUE);
	g_ptr_array_free(s->devices, TRUE);
	g_ptr_array_free(s->mf_recv, TRUE);
	g_mutex_clear(&s->mf_lock);
	g_mutex_clear(&s->rp_lock);
	g_cond_clear(&s->mf_cond);
	g_free(s->error);
	g_free(s->src_uri);
	g_free(s->name);
	g_mutex_clear(&s->lock);
	g_free(s);
}

void mig_session_set_vm(MigSession *s, const MigVmOps *ops, gpointer opaque, MigRunState initial)
{
	s->vm = ops;
	s->vm_opaque = opaque;
	s->runstate = initial;
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

void mig_emit(MigSession *s, const char *name, JsonNode *data)
{
	if (s->event_fn)
		s->event_fn(s->event_opaque, name, data);
	else if (data)
		json_node_unref(data);
}

static JsonNode *status_data(MigStatus st)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	JsonObject *o = json_object_new();

	json_object_set_string_member(o, "status", mig_status_str(st));
	json_node_take_object(n, o);
	return n;
}

void mig_set_status_locked(MigSession *s, MigStatus st)
{
	if (s->status == st)
		return;
	s->status = st;
	if (s->caps[MIG_CAP_EVENTS])
		mig_emit(s, "MIGRATION", status_data(st));
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
		mig_emit(s, "STOP", NULL);
	else if (!was && r == MIG_RUN_RUNNING)
		mig_emit(s, "RESUME", NULL);
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
		mig_dev_dst_run(s);   /* stopped devices run again with the vCPUs */
		s->vm->cont(s->vm_opaque);
		mig_set_runstate_locked(s, MIG_RUN_RUNNING);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

gboolean mig_session_migrate(MigSession *s, const char *uri, GError **err)
{
	MigUri parsed;

	if (mig_uri_parse(uri, &parsed) < 0) {
		g_set_error(err, MIG_ERROR, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT or unix:PATH)", uri);
		return FALSE;
	}
	g_mutex_lock(&s->lock);
	if (mig_status_is_active(s->status)) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "There's a migration process in progress");
		return FALSE;
	}
	if (s->runstate == MIG_RUN_INMIGRATE || s->listen_thread) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Guest is waiting for an incoming migration");
		return FALSE;
	}
	if (!mig_params_check_lanes(s, err)) {
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (s->src_thread) {
		GThread *t = s->src_thread;

		s->src_thread = NULL;
		g_mutex_unlock(&s->lock);
		g_thread_join(t);
		g_mutex_lock(&s->lock);
	}
	g_clear_pointer(&s->error, g_free);
	g_free(s->src_uri);
	s->src_uri = g_strdup(uri);
	s->cancel = FALSE;
	s->start_postcopy = FALSE;
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.t_start = g_get_monotonic_time();
	for (guint i = 0; i < s->ram->len; i++)   /* nothing is sent yet: all of it remains */
		s->stats.remaining += ((MigRamBlock *)g_ptr_array_index(s->ram, i))->size;
	for (int i = 0; i < 16; i++)
		s->session_id[i] = (guint8)g_random_int();
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	s->src_thread = g_thread_new("mig/src/main", mig_src_thread, s);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_session_incoming(MigSession *s, const char *uri, GError **err)
{
	gboolean ok;

	g_mutex_lock(&s->lock);
	ok = mig_params_check_lanes(s, err);
	g_mutex_unlock(&s->lock);
	return ok && mig_dst_listen(s, uri, err);
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

gboolean mig_session_cancel(MigSession *s, GError **err)
{
	g_mutex_lock(&s->lock);
	if (s->status == MIG_STATUS_POSTCOPY_ACTIVE || s->status == MIG_STATUS_POSTCOPY_DEVICE) {
		/* the guest runs on the destination: the source cannot take it back */
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Postcopy migration in progress, cannot cancel.");
		return FALSE;
	}
	if (s->status == MIG_STATUS_SETUP || s->status == MIG_STATUS_ACTIVE ||
	    s->status == MIG_STATUS_DEVICE || s->status == MIG_STATUS_PRE_SWITCHOVER) {
		s->cancel = TRUE;
		mig_set_status_locked(s, MIG_STATUS_CANCELLING);
		/* unblocks a send or receive stuck on the peer */
		if (s->src_fd >= 0)
			shutdown(s->src_fd, SHUT_RDWR);
		if (s->src_mf)
			mig_mf_src_abort(s->src_mf);
	}
	g_mutex_unlock(&s->lock);
	return TRUE;
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

static void add_int(JsonBuilder *b, const char *name, gint64 v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, v);
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

static void add_ram_stats(MigSession *s, JsonBuilder *b, gboolean done)
{
	MigStats *st = &s->stats;
	guint64 total = 0, psize = 0;

	for (guint i = 0; i < s->ram->len; i++) {
		MigRamBlock *blk = g_ptr_array_index(s->ram, i);

		total += blk->size;
		psize = MAX(psize, blk->page_size);
	}
	json_builder_set_member_name(b, "ram");
	json_builder_begin_object(b);
	add_int(b, "transferred", (gint64)mig_atomic_get(&st->transferred));
	if (!done) {
		add_int(b, "remaining", (gint64)mig_atomic_get(&st->remaining));
		add_int(b, "dirty-pages-rate", (gint64)mig_atomic_get(&st->dirty_pages_rate));
	}
	add_int(b, "total", (gint64)total);
	add_int(b, "duplicate", (gint64)mig_atomic_get(&st->duplicate));
	add_int(b, "normal", (gint64)mig_atomic_get(&st->normal));
	add_int(b, "normal-bytes", (gint64)mig_atomic_get(&st->normal_bytes));
	json_builder_set_member_name(b, "mbps");
	json_builder_add_double_value(b, (double)current_bandwidth(st) * 8.0 / 1e6);
	add_int(b, "dirty-sync-count", (gint64)mig_atomic_get(&st->dirty_sync_count));
	add_int(b, "page-size", (gint64)psize);
	add_int(b, "multifd-bytes", (gint64)mig_atomic_get(&st->multifd_bytes));
	add_int(b, "pages-per-second", psize ? (gint64)(mig_atomic_get(&st->bandwidth) / psize) : 0);
	add_int(b, "precopy-bytes", (gint64)mig_atomic_get(&st->precopy_bytes));
	add_int(b, "downtime-bytes", (gint64)mig_atomic_get(&st->downtime_bytes));
	add_int(b, "postcopy-bytes", (gint64)mig_atomic_get(&st->postcopy_bytes));
	add_int(b, "postcopy-requests", (gint64)mig_atomic_get(&st->postcopy_requests));
	add_int(b, "x-bulk-pacing", (gint64)mig_atomic_get(&st->x_bulk_pacing));
	add_int(b, "x-device-chunks-in-flight-peak", (gint64)mig_atomic_get(&st->x_device_in_flight_peak));
	add_int(b, "x-break-huge-drops", (gint64)mig_atomic_get(&st->x_break_huge_drops));
	add_int(b, "x-urgent-skipped", (gint64)mig_atomic_get(&st->x_urgent_skipped));
	if (mig_preempt_channels(s)) {
		json_builder_set_member_name(b, "x-preempt-channel-requests");
		json_builder_begin_array(b);
		for (guint i = 0; i < mig_preempt_channels(s); i++)
			json_builder_add_int_value(b, (gint64)mig_atomic_get(&st->x_urgent_lane_requests[i]));
		json_builder_end_array(b);
	}
	add_int(b, "dirty-sync-missed-zero-copy", 0);
	json_builder_end_object(b);
}

/* Where the downtime went: the devices (stopped until the destination loaded them
 * all), the final RAM pass, and the rest (state, handshakes). Devices and RAM overlap
 * when the device lane is on, so the rest is what neither explains. */
static void add_downtime_split(JsonBuilder *b, const MigStats *st, gint64 down_us)
{
	gint64 dev = st->t_dev_loaded > st->t_stop ? st->t_dev_loaded - st->t_stop : 0;
	gint64 ram = st->t_ram_done > st->t_stop ? st->t_ram_done - st->t_stop : 0;

	json_builder_set_member_name(b, "x-downtime-split");
	json_builder_begin_object(b);
	add_int(b, "devices-ms", dev / 1000);
	add_int(b, "ram-ms", ram / 1000);
	add_int(b, "other-ms", MAX(down_us - MAX(dev, ram), 0) / 1000);
	json_builder_end_object(b);
}

JsonNode *mig_session_query_migrate(MigSession *s)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	MigStats *st = &s->stats;
	gint64 now = g_get_monotonic_time();

	json_builder_begin_object(b);
	g_mutex_lock(&s->lock);
	if (s->status != MIG_STATUS_NONE || s->listen_thread) {
		gboolean src = s->src_thread != NULL;
		gboolean done = s->status == MIG_STATUS_COMPLETED;

		json_builder_set_member_name(b, "status");
		json_builder_add_string_value(b, mig_status_str(s->status));
		if (src && s->status != MIG_STATUS_NONE) {
			gint64 end = st->t_end ? st->t_end : now;

			add_ram_stats(s, b, done);
			add_int(b, "total-time", (end - st->t_start) / 1000);
			if (st->t_setup_done)
				add_int(b, "setup-time", (st->t_setup_done - st->t_start) / 1000);
			if (done && st->t_stop) {
				gint64 down = st->downtime_us ? st->downtime_us : st->t_end - st->t_stop;

				add_int(b, "downtime", down / 1000);
				add_downtime_split(b, st, down);
			}
			if (st->t_end)
				add_int(b, "x-migration-thread-cpu-ms", st->src_thread_cpu_us / 1000);
			if (s->status == MIG_STATUS_ACTIVE)
				add_int(b, "expected-downtime", (gint64)mig_atomic_get(&st->expected_downtime));
			if (st->downtime_us && s->status == MIG_STATUS_POSTCOPY_ACTIVE)
				add_int(b, "downtime", st->downtime_us / 1000);
			if (s->status == MIG_STATUS_ACTIVE && mig_atomic_get(&st->dirty_sync_count) > 1) {
				json_builder_set_member_name(b, "x-converging");
				json_builder_add_boolean_value(b, st->converging);
			}
		}
		if (!src)
			mig_dst_query(s, b);
		mig_dev_query(s, src, b);
		if (src || s->incoming_started) {
			char hex[33];

			for (int i = 0; i < 16; i++)
				g_snprintf(hex + 2 * i, 3, "%02x", s->session_id[i]);
			json_builder_set_member_name(b, "x-session-id");
			json_builder_add_string_value(b, hex);
		}
		if (s->error && (s->status == MIG_STATUS_FAILED || s->status == MIG_STATUS_CANCELLED)) {
			json_builder_set_member_name(b, "error-desc");
			json_builder_add_string_value(b, s->error);
		}
	}
	g_mutex_unlock(&s->lock);
	if (s->vm && s->vm->query)
		s->vm->query(s->vm_opaque, b);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}
