/* The typed channel handshake: every connection opens with a hello naming what it is.
 * Its layout, the reply's, the channel types and the status codes are in channels/wire.h. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "channels/wire.h"

typedef struct MigHello {
	uint16_t version;
	uint16_t type;        /* MigChanType */
	uint32_t index;       /* 0 for main; multifd/preempt channel number */
	uint32_t flags;
	uint8_t session[MIG_SESSION_LEN];
} MigHello;

const char *mig_hello_status_str(int status);
const char *mig_chan_type_str(int type);

/* Source side: send the hello, wait for the reply. Returns 0, -errno on I/O, or
 * -(1000 + status) when refused; the destination's message lands in msg.
 * h->version is sent as given (set it to MIG_PROTO_VERSION). msg may be NULL;
 * otherwise it always ends up NUL-terminated (empty when there was no
 * message), truncated on a UTF-8 character boundary, with control bytes
 * replaced by '?'. -EPROTO when the reply magic is wrong, its message is longer
 * than MIG_HELLO_MSG_MAX, or the status is too large to encode. On success the
 * fd is positioned right after the reply. */
int mig_hello_connect(int fd, const MigHello *h, char *msg, size_t msglen);
#define MIG_HELLO_REFUSED(rc) ((rc) <= -1000)
/* The destination's MigHelloStatus behind a refusal; only when MIG_HELLO_REFUSED(rc). */
#define MIG_HELLO_STATUS(rc) (-(rc) - 1000)

/* Destination side: read and parse a hello. Returns 0, -EPROTO with *status set to
 * BAD_MAGIC / BAD_VERSION / BAD_TYPE (the caller replies), or -errno on I/O.
 * Checked in that order. *status (may be NULL) is written only when 0 or
 * -EPROTO is returned; on -EPROTO h still holds the decoded fields for
 * logging. Session and index are the caller's to check. */
int mig_hello_read(int fd, MigHello *h, int *status);
/* Reply: be32 MIGA, be32 status, be16 msg length, msg (no NUL). 0 or -errno.
 * msg may be NULL; it is cut to MIG_HELLO_MSG_MAX bytes on a UTF-8 character
 * boundary. -EINVAL for a negative status. */
int mig_hello_reply(int fd, int status, const char *msg);

/* The socket-free halves of the above, for callers that already hold the
 * bytes (and for tests and fuzzing). pack writes MIG_HELLO_MAGIC itself;
 * parse behaves like mig_hello_read after the read. */
void mig_hello_pack(const MigHello *h, uint8_t out[MIG_HELLO_LEN]);
int mig_hello_parse(const uint8_t in[MIG_HELLO_LEN], MigHello *h, int *status);
