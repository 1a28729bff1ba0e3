/* The device lane's save side (engine/devlane.h has the design and the frames): a save
 * thread per device reads its state out and hands chunks to the multifd senders. */
#pragma once
#include "engine/src/src_int.h"
#include "engine/devlane.h"
#include "engine/device_int.h"

typedef struct DevSrc DevSrc;

/* Setup: enters PRE_COPY on the devices that have one. */
DevSrc *mig_dev_src_new(Src *src, GError **err);
/* Live phase: sends the pre-copy data the devices have now. */
gboolean mig_dev_src_precopy(DevSrc *d, GError **err);
/* Switchover, vCPUs stopped: STOP_COPY, save threads start streaming. */
gboolean mig_dev_src_stop_copy_begin(DevSrc *d, GError **err);
/* Waits for every save thread; then DEV_END on the main channel (after the channels
 * that carried chunks were drained by the caller's pass sync, or on their own). */
gboolean mig_dev_src_stop_copy_end(DevSrc *d, GError **err);
/* Expected downtime in ms for ram_bytes of dirty RAM plus the devices' remaining
 * state, at bandwidth bw (bytes/s) and the devices' own read and load rates. */
guint64 mig_dev_src_expected_ms(DevSrc *d, guint64 ram_bytes, guint64 bw);
/* RP_DEVICES payload from the destination. */
gboolean mig_dev_src_loaded(DevSrc *d, const guint8 *p, guint32 len, GError **err);
/* Joins the save threads (after the senders were aborted, before they are freed). */
void mig_dev_src_join(DevSrc *d);
/* On failure: devices back to RUNNING if the VM runs again; always joins threads. */
void mig_dev_src_free(DevSrc *d, gboolean resume);
/* Setup frame tail: be32 n, n x (u8 len, id) */
void mig_dev_setup_append(MigSession *s, GByteArray *p);

