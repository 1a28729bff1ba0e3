/* The source's postcopy recovery handshake (docs/protocol.md, Postcopy recovery). */
#pragma once
#include "engine/src/src_int.h"

/* src->uri_text into src->uri, and the RESUME flag for every channel's hello. */
gboolean mig_src_recover_uri(Src *src, GError **err);
/* Connects a main channel to src->uri with a RESUME hello and sends PC_RECOVER and
 * PC_RESUME; the other channels (lanes, gated) connect once it has connected (this
 * aims them), and say hello once those frames are sent: this opens their gate then.
 * FALSE: the gate stays shut. */
gboolean mig_src_recover_begin(Src *src, MigChanBatch *lanes, GError **err);
/* Once every other channel is back: the destination's received bitmaps (every page it
 * lacks is dirty again; *missing: their bytes, also ram.remaining; src->pass: the
 * destination's last pass in place) and RP_RESUME_ACK, each bounded. */
gboolean mig_src_recover_end(Src *src, guint64 *missing, GError **err);
