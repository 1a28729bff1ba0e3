/* query-migrate: the shared statistics, and the running half's own members (the
 * destination's through engine/dst/dst.h). */
#include "engine/session_int.h"
#include "engine/device_int.h"
#include "engine/dst/dst.h"
#include "engine/tlscreds.h"
#include "channels/wire.h"
#include <string.h>


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

/* x-downtime-us: precopy's stop-and-copy step by step, in µs, each step from the end
 * of the one before (their sum is the downtime): x-downtime-split's whole ms cannot
 * show which step grows with the guest. Only a completed precopy that waited for the
 * destination has every step. */
static void downtime_us_query(MigSession *s, MigValue *extra)
{
	const MigStats *st = &s->stats;
	const struct { const char *name; gint64 t; } step[] = {
		{ "stop", st->t_vm_stopped }, { "sync", st->t_synced }, { "send", st->t_ram_done },
		{ "pass", st->t_pass_done }, { "state", st->t_state_sent }, { "ready", st->t_ready },
		{ "running", st->t_end },
	};
	gint64 prev = st->t_stop;
	MigValue *d;

	if (s->status != MIG_STATUS_COMPLETED || !st->t_stop || st->downtime_us)
		return;
	for (gsize i = 0; i < G_N_ELEMENTS(step); i++)
		if (step[i].t < prev || !(prev = step[i].t))
			return;
	d = mig_value_add_object(extra, "x-downtime-us");
	prev = st->t_stop;
	for (gsize i = 0; i < G_N_ELEMENTS(step); i++) {
		mig_value_add_int(d, step[i].name, step[i].t - prev);
		prev = step[i].t;
	}
	mig_value_add_int(d, "total", st->t_end - st->t_stop);
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
	if (st->x_file_checked_us)
		mig_value_add_double(f, "checked-after-ms", (double)st->x_file_checked_us / 1000.0);
	if (st->x_file_vm_load_us)
		mig_value_add_double(f, "vm-load-ms", (double)st->x_file_vm_load_us / 1000.0);
	if (st->x_file_all_in_us)
		mig_value_add_double(f, "all-in-after-ms", (double)st->x_file_all_in_us / 1000.0);
	if (st->x_file_running_us)
		mig_value_add_int(f, "fault-reads", (gint64)mig_atomic_get(&st->x_file_fault_reads));
	if (st->x_file_all_in_us && mig_atomic_get(&st->x_file_fault_reads)) {
		mig_value_add_int(f, "fault-read-p50-us", (gint64)st->x_file_fault_read_p50_us);
		mig_value_add_int(f, "fault-read-p99-us", (gint64)st->x_file_fault_read_p99_us);
	}
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
			downtime_us_query(s, info.extra);
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
