/* The device lane's load side (engine/devlane.h has the design and the frames): chunks
 * put back in order per device, loaded in a bounded pool of threads. */
#pragma once
#include "engine/dst/dst_int.h"
#include "engine/devlane.h"
#include "engine/device_int.h"

/* Checks the source's device list (at *off in the setup frame) and enters RESUMING. */
gboolean mig_dev_dst_setup(MigSession *s, const guint8 *p, gsize len, gsize *off, GError **err);
/* A multifd receiver's MF_DEV frame (payload len bytes, still in the socket). */
gboolean mig_dev_dst_chunk_mf(MigSession *s, int fd, guint32 len, GError **err);
/* The main channel's DEV_DATA (serial): loaded before the next frame is read. */
gboolean mig_dev_dst_chunk_serial(MigSession *s, int fd, guint32 len, GError **err);
/* DEV_END: waits for every device's chunks to load, then the devices' verdicts;
 * answers RP_DEVICES. */
gboolean mig_dev_dst_end(MigSession *s, const guint8 *p, guint32 len, GError **err);
/* COMPLETE or RUN may come: the devices (if any) were loaded. */
gboolean mig_dev_dst_complete_ok(MigSession *s);
/* The most state bytes the reorder queue ever held. */
guint64 mig_dev_dst_queued_peak(MigSession *s);
/* The state bytes the reorder queue holds now (arrived, not yet loaded). */
guint64 mig_dev_dst_held(MigSession *s);
/* The guest starts (after an incoming migration, or a later cont): stopped devices to
 * RUNNING. */
void mig_dev_dst_run(MigSession *s);
void mig_dev_dst_abort(MigSession *s);
void mig_dev_dst_free(MigSession *s);
