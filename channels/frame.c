/* Length-prefixed frames. The header is tiny and the payload is usually guest
 * RAM, so the payload is never copied: header and caller iovecs go to the
 * kernel together in one gather write. */
#include "channels/frame.h"

#include <errno.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "channels/io.h"

/* Enough for header + a handful of payload pieces without touching malloc
 * on the hot path. */
#define FRAME_STACK_IOV 9

/* Sums the payload, refusing what the 32-bit length field cannot describe,
 * so a bad frame fails here with nothing written instead of desyncing the
 * stream. Each step is bounded, so the sum cannot wrap. */
static int payload_len(const struct iovec *payload, int n, uint32_t *out)
{
	size_t total = 0;

	for (int i = 0; i < n; i++) {
		if (payload[i].iov_len > UINT32_MAX - total)
			return -EMSGSIZE;
		total += payload[i].iov_len;
	}
	*out = (uint32_t)total;
	return 0;
}

int mig_frame_send(int fd, uint16_t type, uint16_t flags, const struct iovec *payload, int n)
{
	struct iovec stack_iov[FRAME_STACK_IOV];
	struct iovec *iov = stack_iov;
	uint8_t hdr[MIG_FRAME_HDR_LEN];
	MigFrameHdr h = { .type = type, .flags = flags };
	int ret;

	if (n < 0 || (n > 0 && !payload) || n == INT_MAX)
		return -EINVAL;
	ret = payload_len(payload, n, &h.len);
	if (ret < 0)
		return ret;
	mig_frame_hdr_pack(&h, hdr);

	/* The writev loop consumes its iovecs; the caller's are const, so it
	 * gets a copy of the descriptors (not of the data). */
	if (n + 1 > FRAME_STACK_IOV) {
		iov = calloc((size_t)n + 1, sizeof(*iov));
		if (!iov)
			return -ENOMEM;
	}
	iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	if (n > 0)
		memcpy(iov + 1, payload, (size_t)n * sizeof(*iov));

	ret = mig_io_writev_full(fd, iov, n + 1);
	if (iov != stack_iov)
		free(iov);
	return ret;
}

int mig_frame_recv_hdr(int fd, MigFrameHdr *h, uint32_t max_len)
{
	uint8_t hdr[MIG_FRAME_HDR_LEN];
	int ret = mig_io_read_full(fd, hdr, sizeof(hdr));

	if (ret < 0)
		return ret;
	mig_frame_hdr_unpack(hdr, h);
	/* Checked before anyone sizes a buffer from it: a corrupt or hostile
	 * length must not become a huge allocation. */
	if (h->len > max_len)
		return -EPROTO;
	return 0;
}

int mig_frame_send_spliced(int fd, uint16_t type, uint16_t flags, const void *head, uint32_t head_len,
			   int pipe_fd, uint32_t tail_len)
{
	uint8_t buf[MIG_FRAME_HDR_LEN + MIG_FRAME_SPLICE_HEAD_MAX];
	MigFrameHdr h = { .len = head_len + tail_len, .type = type, .flags = flags };
	size_t len = MIG_FRAME_HDR_LEN + head_len;
	int ret;

	if (head_len > MIG_FRAME_SPLICE_HEAD_MAX || (uint64_t)head_len + tail_len > UINT32_MAX)
		return -EMSGSIZE;
	mig_frame_hdr_pack(&h, buf);
	memcpy(buf + MIG_FRAME_HDR_LEN, head, head_len);
	/* MSG_MORE: the head waits for the spliced tail instead of leaving as its own segment */
	ret = mig_io_write_more(fd, buf, len);
	if (ret < 0)
		return ret;
	return mig_io_splice_full(pipe_fd, fd, tail_len, 0);
}

char *mig_peer_text(const void *p, size_t len, char out[MIG_PEER_TEXT_MAX + 4])
{
	const unsigned char *in = p;
	size_t n = len < MIG_PEER_TEXT_MAX ? len : MIG_PEER_TEXT_MAX, i;

	for (i = 0; i < n; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
	if (len > n) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}
