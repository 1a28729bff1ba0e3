/* multifd senders (engine/multifd.h has the frames): mig/src/send/N, one per channel,
 * each writing batches of pages, or device chunks ahead of them, straight from guest
 * memory. */
#pragma once
#include "engine/session_int.h"
#include "engine/multifd.h"
#include "engine/src/breakhuge.h"
#include "channels/uri.h"
#include <sys/socket.h>

typedef struct MfSrc MfSrc;

/* Connects n channels (after the main channel was accepted, all at once) and starts
 * their senders. detect_zero: the senders look for zero pages
 * (zero-page-detection=multifd); p: the migration's parameters (x-tcp-congestion,
 * x-channel-timeout). */
MfSrc *mig_mf_src_start(MigSession *s, const MigUri *uri, const MigParams *p, guint n, gboolean detect_zero,
			 GError **err);
/* The senders on n channels already open (fds[i] for index i), which it now owns. */
MfSrc *mig_mf_src_adopt(MigSession *s, const int *fds, guint n, gboolean detect_zero);
/* Hands a batch of pages of one block to a free sender, waiting for one if all are
 * busy. FALSE (with *err) once any channel failed. */
gboolean mig_mf_src_queue(MfSrc *m, guint block, MigRamBlock *rb, const gsize *pages, guint n, GError **err);
/* A device-state chunk (engine/src/devlane.c): hdr (copied) then len bytes of buf, or
 * with buf NULL len bytes spliced from pipe_fd, on the first free sender, ahead of any
 * RAM batch waiting for one. done(data, buf, rc) runs on the sender thread once the
 * chunk was written (rc 0) or failed, and owns buf and the pipe's contents; on FALSE
 * the caller keeps both. */
typedef void (*MigMfDoneFn)(gpointer data, guint8 *buf, int rc);
/* At most max device chunks queued or being sent at once (0: no limit). Every chunk in
 * flight is a sender and a receiver pushing bytes: more of them than there are CPUs
 * to run them only add switching (docs/benchmarks.md, device-downtime). */
void mig_mf_src_limit_dev(MfSrc *m, guint max);
gboolean mig_mf_src_queue_dev(MfSrc *m, const void *hdr, guint hdr_len, guint8 *buf, int pipe_fd,
			      guint32 len, MigMfDoneFn done, gpointer done_data, GError **err);
/* Device chunks waiting for a sender now (for tests). */
guint mig_mf_src_dev_waiting(MfSrc *m);
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
/* shutdown(2) on every sender's socket, and nothing else: the senders find out. */
void mig_mf_src_yank(MfSrc *m);
void mig_mf_src_free(MfSrc *m);

