/* multifd: bulk RAM over N extra connections, each with its own named thread on both
 * sides. A page rides one channel per pass and a huge page is never split; at the end
 * of every pass all channels meet at a sync point, so the destination never applies an
 * older copy of a page over a newer one. */
#pragma once
#include "engine/session_int.h"
#include "channels/uri.h"
#include "engine/breakhuge.h"
#include "channels/wire.h"
#include <sys/socket.h>

/* the channels' frames are in channels/wire.h */
/* ---- source ---- */
typedef struct MfSrc MfSrc;

/* Connects n channels (after the main channel was accepted) and starts their senders.
 * detect_zero: the senders look for zero pages (zero-page-detection=multifd). */
MfSrc *mig_mf_src_start(MigSession *s, const MigUri *uri, guint n, gboolean detect_zero, GError **err);
/* Hands a batch of pages of one block to a free sender, waiting for one if all are
 * busy. FALSE (with *err) once any channel failed. */
gboolean mig_mf_src_queue(MfSrc *m, guint block, MigRamBlock *rb, const gsize *pages, guint n, GError **err);
/* A device-state chunk (engine/devlane.c): hdr (copied) then len bytes of buf, or
 * with buf NULL len bytes spliced from pipe_fd, on the first free sender, ahead of any
 * RAM batch waiting for one. done(data, buf, rc) runs on the sender thread once the
 * chunk was written (rc 0) or failed, and owns buf and the pipe's contents; on FALSE
 * the caller keeps both. */
#define MIG_MF_DEV_HDR_MAX 32u
typedef void (*MigMfDoneFn)(gpointer data, guint8 *buf, int rc);
/* At most max device chunks queued or being sent at once (0: no limit). Every chunk in
 * flight is a sender and a receiver pushing bytes: more of them than there are CPUs
 * to run them only add switching (docs/benchmarks.md, device-downtime). */
void mig_mf_src_limit_dev(MfSrc *m, guint max);
gboolean mig_mf_src_queue_dev(MfSrc *m, const void *hdr, guint hdr_len, guint8 *buf, int pipe_fd,
			      guint32 len, MigMfDoneFn done, gpointer done_data, GError **err);
/* Waits until every batch is on the wire, then sends SYNC(pass) on every channel. */
gboolean mig_mf_src_sync(MfSrc *m, guint64 pass, GError **err);
/* Applies a socket option to every channel (postcopy pacing). */
guint mig_mf_src_channels(MfSrc *m);
/* Postcopy break-huge: senders chunk huge pages and call yield between chunks. */
void mig_mf_src_break_huge(MfSrc *m, MigYieldFn yield, gpointer opaque);
/* Postcopy: senders mark each page in maps[block] once it is written. */
void mig_mf_src_mark_sent(MfSrc *m, gulong **maps);
void mig_mf_src_setsockopt(MfSrc *m, int level, int opt, const void *val, socklen_t len);
/* Unblocks everything (cancel); safe from any thread. */
void mig_mf_src_abort(MfSrc *m);
void mig_mf_src_free(MfSrc *m);

/* ---- destination ---- */
/* The listener hands an admitted multifd connection over; starts mig/dst/recv/N. */
void mig_mf_dst_add(MigSession *s, guint index, int fd);
/* Main thread, on PASS(pass): wait for every channel's SYNC(pass) and release them. */
gboolean mig_mf_dst_barrier(MigSession *s, guint64 pass, GError **err);
/* Stops receivers (after an error or at teardown) and joins them. */
void mig_mf_dst_abort(MigSession *s);
void mig_mf_dst_join(MigSession *s);
