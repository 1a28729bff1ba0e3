/* The device-state lane. At switchover every device's state is read out by its own
 * save thread, cut into chunks tagged (device, sequence) and spread over all multifd
 * channels ahead of RAM; the destination puts each device's chunks back in order,
 * holding at most x-device-max-queued bytes, and loads the devices in parallel in a
 * bounded pool. Downtime then tends to the slowest device instead of the sum. With
 * the lane off (or without multifd) the state goes serially on the main channel: the
 * baseline the lane is measured against.
 *
 * No deadlock by construction: each channel carries chunks in the order the source
 * handed them out, so the oldest chunk not yet delivered heads its channel and is the
 * next one its device needs; in-order chunks always find room, because out-of-order
 * ones may fill the queue only up to one chunk short of the cap. */
#pragma once
#include "engine/src_int.h"
#include "engine/device_int.h"
#include "channels/wire.h"

/* its frames (DEV_DATA, MF_DEV, DEV_END, RP_DEVICES), the chunk header and
 * MIG_DEV_CHUNK are in channels/wire.h */

/* ---- source ---- */
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

/* ---- destination ---- */
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
/* The guest starts (after an incoming migration, or a later cont): stopped devices to
 * RUNNING. */
void mig_dev_dst_run(MigSession *s);
void mig_dev_dst_abort(MigSession *s);
void mig_dev_dst_free(MigSession *s);
