/* The engine's record of a registered device; engine-internal. */
#pragma once
#include <mig/session.h>

typedef struct MigDevice {
	char *id;
	guint index;              /* registration order: the device's number on the wire */
	const MigDeviceOps *ops;
	gpointer opaque;
	MigDevState state;        /* as the engine last set it */
	/* figures for query-migrate: set by the lane's threads, read under the session lock */
	guint64 bytes;            /* state bytes moved, pre-copy and stop-copy */
	guint64 precopy_bytes;
	gint64 save_us;           /* source: reading stop-copy state out of the device */
	gint64 transfer_us;       /* source: first stop-copy chunk handed over to the last one written */
	gint64 load_us;           /* destination: first stop-copy byte written to the device's verdict */
} MigDevice;

void mig_device_free(MigDevice *d);
/* query-migrate's x-devices (call with the session lock held). */
void mig_dev_query(MigSession *s, gboolean source, MigInfo *info);
/* Moves d to st; *fd gets the data fd where the state has one (else -1). The error
 * names the device. */
gboolean mig_device_set_state(MigDevice *d, MigDevState st, int *fd, GError **err);

/* Runs fn(device i, opaque) for each of the n devices at once, one thread per device
 * (named name_prefix and its index, joined here), and returns the first error in device
 * order. The file migration's device lane: each device's state is its own region. */
typedef gboolean (*MigDevJobFn)(MigDevice *d, guint i, gpointer opaque, GError **err);
gboolean mig_devices_parallel(GPtrArray *devices, const char *name_prefix, MigDevJobFn fn, gpointer opaque,
			      gint64 *wall_us, GError **err);
