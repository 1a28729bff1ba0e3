/* Devices: THE plug point for device state. Devices with migratable state, shaped like the VFIO migration uAPI v2 so a real VFIO
 * device can sit behind these ops: the engine moves the device between states at the
 * right phases and streams its state through a file descriptor the device hands out.
 *
 * Source:      RUNNING -> PRE_COPY (live, optional) -> STOP_COPY (vCPUs stopped) -> STOP
 * Destination: STOP -> RESUMING (state written in order) -> STOP (loaded) -> RUNNING
 *
 * One difference from VFIO: every entry into PRE_COPY, STOP_COPY or RESUMING returns a
 * new fd (VFIO keeps PRE_COPY's fd through STOP_COPY; an adapter dup()s it). */
#pragma once
#include <mig/common.h>
#include <mig/value.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;

/* VFIO's enum vfio_device_mig_state values, so an adapter passes them through. */
typedef enum MigDevState {
	MIG_DEV_ERROR = 0,
	MIG_DEV_STOP = 1,
	MIG_DEV_RUNNING = 2,
	MIG_DEV_STOP_COPY = 3,
	MIG_DEV_RESUMING = 4,
	MIG_DEV_RUNNING_P2P = 5,
	MIG_DEV_PRE_COPY = 6,
	MIG_DEV_PRE_COPY_P2P = 7,
} MigDevState;
const char *mig_dev_state_str(MigDevState st);

typedef struct MigDeviceOps {
	/* Moves the device to st. Entering PRE_COPY or STOP_COPY sets *data_fd to a new fd
	 * (the caller closes it) that reads the state: in STOP_COPY until read() returns 0;
	 * in PRE_COPY as many bytes as precopy_info announced. Entering RESUMING sets a
	 * new fd that takes the state by write(), in order. Leaving RESUMING for STOP is
	 * the device's verdict: FALSE means the state did not load. Every other transition
	 * sets *data_fd to -1. */
	gboolean (*set_state)(gpointer opaque, MigDevState st, int *data_fd, GError **err);
	/* PRE_COPY: bytes of initial state not yet read and bytes dirtied since
	 * (VFIO_MIG_GET_PRECOPY_INFO). NULL: the device has no pre-copy phase. */
	gboolean (*precopy_info)(gpointer opaque, guint64 *initial_bytes, guint64 *dirty_bytes, GError **err);
	/* Bytes STOP_COPY would produce if entered now, pre-copy data not yet read
	 * included (VFIO_DEVICE_FEATURE_MIG_DATA_SIZE). */
	gboolean (*data_size)(gpointer opaque, guint64 *stop_copy_bytes, GError **err);
	/* Optional: how fast the device reads out and loads state, bytes/s (0 unknown), so
	 * the switchover estimate includes device time, not only wire time. */
	void (*rates)(gpointer opaque, guint64 *read_bps, guint64 *load_bps);
	/* Optional: the device's own figures for a query, added to obj (its object in
	 * query-migrate's x-devices). Called with the session's lock held. */
	void (*query)(gpointer opaque, MigValue *obj);
} MigDeviceOps;

/* One device in a query (MigInfo.devices). */
typedef struct MigDeviceInfo {
	char *id;
	MigDevState state;        /* as the engine last set it */
	guint64 bytes;            /* state bytes moved, pre-copy and stop-copy */
	guint64 precopy_bytes;    /* source only */
	gint64 save_ms;           /* source: reading stop-copy state out of the device */
	gint64 transfer_ms;       /* source: first stop-copy chunk handed over to the last one written */
	gint64 load_ms;           /* destination: first stop-copy byte written to the device's verdict */
	MigValue *extra;          /* the device's own members (MigDeviceOps.query); an OBJECT */
} MigDeviceInfo;

/* Registers a device under id (1..63 bytes, unique). Both sides register the same ids;
 * the destination refuses a stream whose devices differ. Call before migrate or
 * migrate-incoming; ops and opaque outlive the session. */
gboolean mig_session_add_device(MigSession *s, const char *id, const MigDeviceOps *ops, gpointer opaque,
				GError **err);

MIG_END_PUBLIC
