/* The source's postcopy recovery handshake (docs/protocol.md, Postcopy recovery). */
#pragma once
#include "engine/src/src_int.h"

/* Connects a main channel to src->uri_text with a RESUME hello, sends PC_RECOVER and
 * reads the destination's received bitmaps: every page it lacks is dirty again
 * (*missing: their bytes, also ram.remaining) and src->pass is the destination's last pass in place. */
gboolean mig_src_recover_begin(Src *src, guint64 *missing, GError **err);
/* Once every other channel is back: PC_RESUME, then RP_RESUME_ACK (bounded). */
gboolean mig_src_recover_end(Src *src, GError **err);
