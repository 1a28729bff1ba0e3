/* Loading a mapped-ram file (migrate-incoming with a file: URI): the whole file is
 * checked first, then io_uring workers read the present pages straight into guest
 * memory, then the guest record, and the guest runs; with postcopy-ram the guest runs
 * first and its pages come in through userfaultfd (lazy restore). */
#pragma once
#include "engine/dst/dst_int.h"
#include "channels/uri.h"

/* migrate-incoming file:PATH: starts mig/dst/file. Takes s->lock itself. */
gboolean mig_file_dst_start(MigSession *s, const MigUri *u, GError **err);
/* A lazy restore's migrate-pause: postcopy-paused, the file closed once no read is out.
 * Without s->lock. */
gboolean mig_file_dst_pause(MigSession *s, GError **err);
/* A paused lazy restore's migrate-recover: u (a file: URI, else refused) opened, locked
 * and its header checked to be the same save's, else refused naming why, still paused;
 * accepted, mig/dst/file takes it and goes on. Without s->lock. */
gboolean mig_file_dst_recover(MigSession *s, const MigUri *u, GError **err);
