/* The destination's heartbeat on the return path (beat.c). */
#pragma once
#include "engine/dst/dst_int.h"

/* Starts mig/dst/beat: an RP_NOP on the main channel every quarter of
 * x-channel-timeout, at least every second, until stopped; nothing for a streamed
 * file. Idempotent. */
void mig_dst_beat_start(MigSession *s);
/* Stops and joins it; idempotent. Called by the loader before the return path's last
 * frame (RP_RUNNING in precopy, RP_DONE in postcopy), on a pause and at its end. */
void mig_dst_beat_stop(MigSession *s);
