/* The destination's side of the postcopy recovery handshake (docs/protocol.md,
 * Postcopy recovery). */
#pragma once
#include "engine/dst/dst_int.h"

/* On the resumed main channel fd: PC_RECOVER in, one RP_RECV_BITMAP per RAM block and
 * RP_RECV_END out, PC_RESUME in, a wait for the other channels the source re-opens,
 * then RP_RESUME_ACK and the outstanding page requests out (*asked: how many). Every
 * read and wait is bounded. */
gboolean mig_dst_recover_handshake(MigSession *s, int fd, guint64 *asked, GError **err);
