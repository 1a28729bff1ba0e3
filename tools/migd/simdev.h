/* A simulated device with migratable state (MigDeviceOps), for migd --device and the
 * tests: its state is a deterministic byte stream of (seed, id, version) that the source
 * serves through a pipe at a device-like read rate, and that the destination verifies
 * (by add-only block sums, byte by byte where one is off) while spending device time
 * (not CPU) on loading it.
 *
 * The state stream is pre-copy data (version 0, `precopy` bytes) followed by stop-copy
 * data (version 1, `size` bytes). Whatever the engine has not read of the pre-copy part
 * when it enters STOP_COPY is served again at the head of the stop-copy fd, so the
 * destination always receives exactly precopy + size bytes, in order. docs/devices.md
 * describes the timing model and the failure injection. */
#pragma once
#include <mig/device.h>

typedef enum MigdSimDevFailMode {
	MIGD_SIMDEV_FAIL_VERDICT,  /* keep taking the stream; RESUMING -> STOP fails */
	MIGD_SIMDEV_FAIL_ABORT,    /* stop reading and close the pipe: the engine's writes fail */
} MigdSimDevFailMode;

typedef struct MigdSimDevConfig {
	char id[64];
	guint64 size;             /* stop-copy bytes */
	guint64 precopy;          /* pre-copy bytes (0: no pre-copy phase) */
	guint64 read_rate;        /* source: bytes/s the state is served at, 0 unlimited */
	guint64 load_rate;        /* destination: bytes/s loading takes, 0 unlimited */
	guint64 load_latency_us;  /* destination: device time per started load chunk */
	guint64 load_chunk;       /* bytes per load-latency charge (default 1 MiB) */
	guint64 seed;
	gint64 fail_at;           /* destination: reject the stream at this byte; -1 never */
	MigdSimDevFailMode fail_mode;
	/* generate every chunk when it is served or checked instead of keeping the whole
	 * state in memory (what states above 1 GiB always do) */
	gboolean stream_only;
} MigdSimDevConfig;

typedef struct MigdSimDev MigdSimDev;

GQuark migd_simdev_error_quark(void);

/* "sim,id=ID,size=SIZE[,precopy=SIZE][,read-rate=RATE][,load-rate=RATE]
 * [,load-latency=US][,load-chunk=SIZE][,seed=N][,fail-at=OFFSET][,fail-mode=verdict|abort]";
 * sizes and rates take K/M/G/T suffixes (powers of 1024; rates are bytes/s). */
gboolean migd_simdev_parse(const char *spec, MigdSimDevConfig *cfg, GError **err);

MigdSimDev *migd_simdev_new(const MigdSimDevConfig *cfg);
/* Stops and joins the device's thread, if any, and closes its pipe ends. */
void migd_simdev_free(MigdSimDev *d);
const char *migd_simdev_id(const MigdSimDev *d);

/* The ops for mig_session_add_device, with the MigdSimDev as opaque. */
extern const MigDeviceOps migd_simdev_ops;
