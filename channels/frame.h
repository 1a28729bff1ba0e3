/* Sending and receiving length-prefixed frames; the header layout (MigFrameHdr) and
 * every frame type are in channels/wire.h. */
#pragma once
#include <stdint.h>
#include <sys/uio.h>

#include "channels/wire.h"

/* Sends header + payload iovecs in one writev loop (no staging copy). 0 or -errno.
 * -EMSGSIZE, with nothing written, when the payload does not fit the 32-bit
 * length. payload may be NULL when n == 0; the caller's iovecs are not modified. */
int mig_frame_send(int fd, uint16_t type, uint16_t flags, const struct iovec *payload, int n);
/* A frame whose payload is head (at most MIG_FRAME_SPLICE_HEAD_MAX bytes) followed by
 * tail_len bytes spliced from pipe_fd straight into the socket. 0 or -errno; after a
 * failure the pipe may still hold part of the tail. */
#define MIG_FRAME_SPLICE_HEAD_MAX 64u
int mig_frame_send_spliced(int fd, uint16_t type, uint16_t flags, const void *head, uint32_t head_len,
			   int pipe_fd, uint32_t tail_len);
/* Reads a header; -EPROTO if len > max_len. -EPIPE on clean EOF before any byte.
 * On -EPROTO *h holds the decoded header (for the error message); the payload
 * is not consumed. max_len is the caller's policy (typically MIG_FRAME_MAX_LEN,
 * plus whatever its largest legitimate frame needs). */
int mig_frame_recv_hdr(int fd, MigFrameHdr *h, uint32_t max_len);

/* Text a peer sent (an error reason) made safe to log or report: printable ASCII
 * kept, every other byte '?', cut to MIG_PEER_TEXT_MAX bytes (then "..."), always
 * NUL-terminated. out must hold MIG_PEER_TEXT_MAX + 4 bytes. Returns out. */
#define MIG_PEER_TEXT_MAX 512u
char *mig_peer_text(const void *p, size_t len, char out[MIG_PEER_TEXT_MAX + 4]);
