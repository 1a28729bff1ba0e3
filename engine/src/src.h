/* The source half's entry points: all the engine core knows of it. The half itself
 * (engine/src/src_int.h) runs on its own thread from migrate to completion. */
#pragma once
#include "engine/session_int.h"

struct Src;

/* migrate: snapshots the parameters and starts mig/src/main towards uri (already
 * checked to parse); fd is the main channel for an fd: URI (taken), else -1. Call
 * with s->lock held. */
struct Src *mig_src_start(MigSession *s, const char *uri, int fd);
/* The same without the thread, for mig_session_migrate_inline (in: its feed and
 * resume_fd, taken); then mig_src_run_inline, without s->lock, runs the migration on
 * the caller's thread until it ends. */
struct Src *mig_src_new_inline(MigSession *s, const char *uri, int fd, const MigSrcInline *in);
void mig_src_run_inline(struct Src *src);
/* migrate_cancel: cuts the channels so a thread stuck on the peer wakes up. Call with
 * s->lock held. */
void mig_src_cancel(struct Src *src);
/* yank: shuts down the main channel (and with it the return path) and the multifd
 * channels; the preempt channels end with the postcopy the main channel's failure
 * stops. has_channels: the main channel is open. Both with s->lock held. */
void mig_src_yank(struct Src *src);
gboolean mig_src_has_channels(struct Src *src);
/* migrate-pause: cuts every channel, so the migration thread pauses. Call with
 * s->lock held, in postcopy-active or a recovery. */
void mig_src_pause(struct Src *src);
/* migrate resume:true in postcopy-paused: reconnect to uri (already checked to parse).
 * Call with s->lock held, then mig_src_resume_announce without it: the migration
 * thread connects while the postcopy-recover-setup event is built and sent. */
void mig_src_resume(struct Src *src, const char *uri);
void mig_src_resume_announce(struct Src *src);
/* `cont` in postcopy-paused: when the destination never said RP_RUNNING, the operator
 * (who saw it failed, its switchover outcome unknown) takes the guest back: the
 * migration ends failed, then the guest may run here. Refused once it ran there.
 * Call with s->lock held. */
gboolean mig_src_abandon(struct Src *src, GError **err);
/* After mig_src_abandon: waits, s->lock released meanwhile, until the migration thread
 * has ended the migration (the status leaves postcopy-paused), the session quits, or
 * end (monotonic µs) passes. Call with s->lock held. */
void mig_src_wait_abandoned(struct Src *src, gint64 end);
/* The session is going away (quit): like cancel, and in postcopy too, so that every
 * thread of the half ends. Call with s->lock held. */
void mig_src_quit(struct Src *src);
/* Joins the migration thread (it ends by itself) and frees what is left. Without
 * s->lock. */
void mig_src_free(struct Src *src);
