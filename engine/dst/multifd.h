/* multifd receivers (engine/multifd.h has the frames): mig/dst/recv/N, one per channel,
 * reading pages straight into guest memory and parking at every sync point. */
#pragma once
#include "engine/dst/dst_int.h"
#include "engine/multifd.h"

/* The listener hands an admitted multifd connection over; starts mig/dst/recv/N. */
void mig_mf_dst_add(MigSession *s, guint index, int fd);
/* Main thread, on PASS(pass): wait for every channel's SYNC(pass) and release them. */
gboolean mig_mf_dst_barrier(MigSession *s, guint64 pass, GError **err);
/* The guest may start: from now on no receiver writes into guest memory; every
 * channel is shut and a frame that still arrives is refused. Waits for a receiver
 * that is mid-write (its socket is shut, so that is bounded). */
void mig_mf_dst_seal(MigSession *s);
/* Stops receivers (after an error or at teardown) and joins them. */
void mig_mf_dst_abort(MigSession *s);
/* shutdown(2) on every receiver's socket, and nothing else: the receivers find out. */
void mig_mf_dst_yank(MigSession *s);
void mig_mf_dst_join(MigSession *s);
