/* The destination's side of the postcopy recovery handshake (docs/protocol.md,
 * Postcopy recovery). */
#pragma once
#include "engine/dst/dst_int.h"

/* The answer to PC_RECOVER: one RP_RECV_BITMAP per RAM block and RP_RECV_END, whole
 * frames. Built once paused, when every thread that places pages is joined: nothing
 * changes the received bitmaps until the answer has left (docs/protocol.md). */
GByteArray *mig_dst_recover_answer(MigSession *s);
/* On the resumed main channel fd: PC_RECOVER in, answer out (one write), PC_RESUME in,
 * a wait for the other channels the source re-opens, then RP_RESUME_ACK and the
 * outstanding page requests out (*asked: how many). Every read and wait is bounded. */
gboolean mig_dst_recover_handshake(MigSession *s, int fd, const GByteArray *answer, guint64 *asked, GError **err);
