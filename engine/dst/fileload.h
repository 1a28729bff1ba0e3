/* Loading a mapped-ram file (migrate-incoming with a file: URI): the whole file is
 * checked first, then io_uring workers read the present pages straight into guest
 * memory, then the guest record, and the guest runs; with postcopy-ram the guest runs
 * first and its pages come in through userfaultfd (lazy restore). */
#pragma once
#include "engine/dst/dst_int.h"
#include "channels/uri.h"

/* migrate-incoming file:PATH: starts mig/dst/file. Takes s->lock itself. */
gboolean mig_file_dst_start(MigSession *s, const MigUri *u, GError **err);
