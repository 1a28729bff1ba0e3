/* The destination half's entry points: all the engine core knows of it. The half itself
 * (engine/dst/dst_int.h) runs on its own threads from migrate-incoming on. */
#pragma once
#include "engine/session_int.h"

/* migrate-incoming: listens on uri and admits channels until the session is freed. */
gboolean mig_dst_listen(MigSession *s, const char *uri, gboolean exit_on_error, GError **err);
/* migrate-pause on the destination (postcopy-active or recovering): cuts every
 * channel; the loader pauses. A lazy restore pauses its reads of the file. Without
 * s->lock. */
gboolean mig_dst_pause(MigSession *s, GError **err);
/* migrate-recover: a paused destination listens on uri (replacing its listener) for
 * the source's resumed channels; a paused lazy restore takes uri's file if it is the
 * same save. Without s->lock. */
gboolean mig_dst_recover(MigSession *s, const char *uri, GError **err);
/* migrate_cancel on a destination (before the switchover: stops everything, status
 * cancelled; refused from the switchover on). Without s->lock. */
gboolean mig_dst_cancel(MigSession *s, GError **err);
/* Stops every thread of the half and frees it (s->dst becomes NULL). */
void mig_dst_shutdown(MigSession *s);
/* yank: shuts down the main, preempt and multifd channels; has_channels: the main
 * channel is open. Both with s->lock held. */
void mig_dst_yank(MigSession *s);
gboolean mig_dst_has_channels(MigSession *s);
/* query-migrate's destination members. Call with s->lock held. */
void mig_dst_query(MigSession *s, MigInfo *info);
/* A main channel was admitted: the migration runs, with the parameters of that
 * moment. Call with s->lock held. */
gboolean mig_dst_started(MigSession *s);
/* cont after an incoming migration: the stopped devices run again with the vCPUs.
 * Call with s->lock held. */
void mig_dst_cont(MigSession *s);
