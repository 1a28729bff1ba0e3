/* The device registry: ids, wire numbers and state transitions. */
#include "engine/device_int.h"
#include "engine/session_int.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

const char *mig_dev_state_str(MigDevState st)
{
	static const char *const names[] = {
		"error", "stop", "running", "stop-copy", "resuming", "running-p2p", "pre-copy", "pre-copy-p2p",
	};

	return (guint)st < G_N_ELEMENTS(names) ? names[st] : "?";
}

gboolean mig_session_add_device(MigSession *s, const char *id, const MigDeviceOps *ops, gpointer opaque,
				GError **err)
{
	MigDevice *d;
	gsize len = id ? strlen(id) : 0;

	if (len == 0 || len > 63) {
		g_set_error(err, MIG_ERROR, EINVAL, "device id must be 1 to 63 bytes");
		return FALSE;
	}
	if (!ops || !ops->set_state || !ops->data_size) {
		g_set_error(err, MIG_ERROR, EINVAL, "device '%s': set_state and data_size are required", id);
		return FALSE;
	}
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < s->devices->len; i++) {
		if (!strcmp(((MigDevice *)g_ptr_array_index(s->devices, i))->id, id)) {
			g_mutex_unlock(&s->lock);
			g_set_error(err, MIG_ERROR, EEXIST, "duplicate device id '%s'", id);
			return FALSE;
		}
	}
	if (s->status != MIG_STATUS_NONE) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "device '%s': devices register before the migration starts", id);
		return FALSE;
	}
	d = g_new0(MigDevice, 1);
	d->id = g_strdup(id);
	d->index = s->devices->len;
	d->ops = ops;
	d->opaque = opaque;
	d->state = MIG_DEV_RUNNING;
	g_ptr_array_add(s->devices, d);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_device_set_state(MigDevice *d, MigDevState st, int *fd, GError **err)
{
	int dummy = -1;
	GError *e = NULL;

	if (!fd)
		fd = &dummy;
	*fd = -1;
	if (!d->ops->set_state(d->opaque, st, fd, &e)) {
		g_set_error(err, MIG_ERROR, e ? e->code : EIO, "device '%s': %s -> %s: %s", d->id,
			    mig_dev_state_str(d->state), mig_dev_state_str(st), e ? e->message : "failed");
		g_clear_error(&e);
		d->state = MIG_DEV_ERROR;
		return FALSE;
	}
	d->state = st;
	if (fd == &dummy && dummy >= 0)
		close(dummy);
	return TRUE;
}

void mig_device_free(MigDevice *d)
{
	if (!d)
		return;
	g_free(d->id);
	g_free(d);
}

static void device_info_free(MigDeviceInfo *di)
{
	g_free(di->id);
	mig_value_free(di->extra);
	g_free(di);
}

/* One entry per device with the lane's figures, then the device's own. */
void mig_dev_query(MigSession *s, gboolean source, MigInfo *info)
{
	if (!s->devices->len)
		return;
	info->devices = g_ptr_array_new_with_free_func((GDestroyNotify)device_info_free);
	for (guint i = 0; i < s->devices->len; i++) {
		MigDevice *d = g_ptr_array_index(s->devices, i);
		MigDeviceInfo *di = g_new0(MigDeviceInfo, 1);

		di->id = g_strdup(d->id);
		di->state = d->state;
		di->bytes = d->bytes;
		/* the destination knows only what it received and how long loading took */
		di->precopy_bytes = source ? d->precopy_bytes : 0;
		di->save_ms = source ? d->save_us / 1000 : -1;
		di->transfer_ms = source ? d->transfer_us / 1000 : -1;
		di->load_ms = d->load_us / 1000;
		di->extra = mig_value_new_object();
		if (d->ops->query)
			d->ops->query(d->opaque, di->extra);
		g_ptr_array_add(info->devices, di);
	}
}

typedef struct DevJob {
	MigDevice *d;
	guint index;
	MigDevJobFn fn;
	gpointer opaque;
	GError *err;
} DevJob;

static gpointer dev_job_thread(gpointer opaque)
{
	DevJob *j = opaque;

	j->fn(j->d, j->index, j->opaque, &j->err);
	return NULL;
}

gboolean mig_devices_parallel(GPtrArray *devices, const char *name_prefix, MigDevJobFn fn, gpointer opaque,
			      gint64 *wall_us, GError **err)
{
	guint n = devices->len;
	g_autofree DevJob *jobs = g_new0(DevJob, MAX(n, 1u));
	g_autofree GThread **threads = g_new0(GThread *, MAX(n, 1u));
	gint64 t0 = g_get_monotonic_time();
	gboolean ok = TRUE;

	for (guint i = 0; i < n; i++) {
		char name[16];

		jobs[i] = (DevJob){ g_ptr_array_index(devices, i), i, fn, opaque, NULL };
		g_snprintf(name, sizeof(name), "%s%u", name_prefix, i);
		threads[i] = g_thread_new(name, dev_job_thread, &jobs[i]);
	}
	for (guint i = 0; i < n; i++)
		g_thread_join(threads[i]);
	if (wall_us)
		*wall_us = g_get_monotonic_time() - t0;
	for (guint i = 0; i < n; i++) {
		if (jobs[i].err && ok) {
			g_propagate_error(err, g_steal_pointer(&jobs[i].err));
			ok = FALSE;
		}
		g_clear_error(&jobs[i].err);
	}
	return ok;
}
