/* The typed channel handshake. Layouts are in channels/wire.h and docs/protocol.md. */
#include "channels/hello.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "channels/io.h"

void mig_hello_pack(const MigHello *h, uint8_t out[MIG_HELLO_LEN])
{
	mig_put_be32(out, MIG_HELLO_MAGIC);
	mig_put_be16(out + 4, h->version);
	mig_put_be16(out + 6, h->type);
	mig_put_be32(out + 8, h->index);
	mig_put_be32(out + 12, h->flags);
	memcpy(out + 16, h->session, MIG_SESSION_LEN);
}

static int chan_type_valid(uint16_t type)
{
	return type == MIG_CHAN_MAIN || type == MIG_CHAN_MULTIFD || type == MIG_CHAN_PREEMPT;
}

int mig_hello_parse(const uint8_t in[MIG_HELLO_LEN], MigHello *h, int *status)
{
	int st = MIG_HELLO_OK;

	/* Filled even when invalid so the caller can log what arrived. */
	h->version = mig_get_be16(in + 4);
	h->type = mig_get_be16(in + 6);
	h->index = mig_get_be32(in + 8);
	h->flags = mig_get_be32(in + 12);
	memcpy(h->session, in + 16, MIG_SESSION_LEN);

	/* Version before type: a later version may define new types, and
	 * "unsupported version" is the more useful thing to tell its sender. */
	if (mig_get_be32(in) != MIG_HELLO_MAGIC)
		st = MIG_HELLO_BAD_MAGIC;
	else if (h->version != MIG_PROTO_VERSION)
		st = MIG_HELLO_BAD_VERSION;
	else if (!chan_type_valid(h->type))
		st = MIG_HELLO_BAD_TYPE;
	if (status)
		*status = st;
	return st == MIG_HELLO_OK ? 0 : -EPROTO;
}

int mig_hello_read(int fd, MigHello *h, int *status)
{
	uint8_t buf[MIG_HELLO_LEN];
	int ret;

	if (!h)
		return -EINVAL;
	ret = mig_io_read_full(fd, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return mig_hello_parse(buf, h, status);
}

/* Length of the longest prefix of s[0..n) that fits max bytes without
 * splitting a UTF-8 sequence. At most 3 continuation bytes are backed over:
 * past that the text is not UTF-8 and any cut is as good as another. */
static size_t utf8_clip(const char *s, size_t n, size_t max)
{
	size_t k;

	if (n <= max)
		return n;
	for (k = max; k > 0 && max - k < 3; k--)
		if (((unsigned char)s[k] & 0xc0) != 0x80)
			return k;
	return ((unsigned char)s[k] & 0xc0) != 0x80 ? k : max;
}

int mig_hello_reply(int fd, int status, const char *msg)
{
	uint8_t buf[MIG_HELLO_REPLY_HDR_LEN + MIG_HELLO_MSG_MAX];
	size_t n = 0;

	if (status < 0)
		return -EINVAL;
	if (msg)
		n = utf8_clip(msg, strnlen(msg, MIG_HELLO_MSG_MAX + 1), MIG_HELLO_MSG_MAX);
	mig_put_be32(buf, MIG_HELLO_REPLY);
	mig_put_be32(buf + 4, (uint32_t)status);
	mig_put_be16(buf + 8, (uint16_t)n);
	memcpy(buf + MIG_HELLO_REPLY_HDR_LEN, msg ? msg : "", n);
	/* One buffer, one send: the reply should not straddle segments. */
	return mig_io_write_full(fd, buf, MIG_HELLO_REPLY_HDR_LEN + n);
}

/* The message comes off the network and is headed for logs and terminals:
 * control bytes (including NUL) become '?' so it cannot forge log lines or
 * drive a terminal, and truncation keeps whole UTF-8 characters. */
static void copy_msg(char *dst, size_t dstlen, const uint8_t *src, size_t n)
{
	size_t k, i;

	if (!dst || dstlen == 0)
		return;
	k = utf8_clip((const char *)src, n, dstlen - 1);
	for (i = 0; i < k; i++)
		dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
	dst[k] = '\0';
}

static int refused(uint32_t status)
{
	/* Not a status anyone defines, and -(1000 + it) would overflow. */
	if (status > (uint32_t)(INT_MAX - 1000))
		return -EPROTO;
	return -(1000 + (int)status);
}

int mig_hello_connect(int fd, const MigHello *h, char *msg, size_t msglen)
{
	uint8_t hello[MIG_HELLO_LEN];
	uint8_t rep[MIG_HELLO_REPLY_HDR_LEN];
	uint8_t text[MIG_HELLO_MSG_MAX];
	uint32_t status;
	uint16_t n;
	int ret;

	if (msg && msglen > 0)
		msg[0] = '\0';
	if (!h)
		return -EINVAL;
	mig_hello_pack(h, hello);
	ret = mig_io_write_full(fd, hello, sizeof(hello));
	if (ret < 0)
		return ret;

	ret = mig_io_read_full(fd, rep, sizeof(rep));
	if (ret < 0)
		return ret;
	if (mig_get_be32(rep) != MIG_HELLO_REPLY)
		return -EPROTO;
	status = mig_get_be32(rep + 4);
	n = mig_get_be16(rep + 8);
	if (n > MIG_HELLO_MSG_MAX)
		return -EPROTO;
	/* Consumed even on success: the stream must be left exactly at the
	 * first byte after the reply for whatever the channel carries next. */
	ret = mig_io_read_full(fd, text, n);
	if (ret < 0)
		return ret;
	copy_msg(msg, msglen, text, n);
	return status == MIG_HELLO_OK ? 0 : refused(status);
}

const char *mig_hello_status_str(int status)
{
	switch (status) {
	case MIG_HELLO_OK:
		return "accepted";
	case MIG_HELLO_BAD_MAGIC:
		return "wrong magic (not a mig migration stream)";
	case MIG_HELLO_BAD_VERSION:
		return "unsupported protocol version";
	case MIG_HELLO_BAD_TYPE:
		return "unknown channel type";
	case MIG_HELLO_FOREIGN_SESSION:
		return "foreign session";
	case MIG_HELLO_DUPLICATE:
		return "duplicate channel index";
	case MIG_HELLO_BAD_INDEX:
		return "channel index out of range";
	case MIG_HELLO_NOT_EXPECTED:
		return "no incoming migration expected";
	case MIG_HELLO_BUSY:
		return "destination busy";
	case MIG_HELLO_NO_RECOVERY:
		return "no paused postcopy to recover";
	case MIG_HELLO_NOT_AUTHORIZED:
		return "not authorized";
	}
	return "unknown status";
}

const char *mig_chan_type_str(int type)
{
	switch (type) {
	case MIG_CHAN_MAIN:
		return "main";
	case MIG_CHAN_MULTIFD:
		return "multifd";
	case MIG_CHAN_PREEMPT:
		return "preempt";
	}
	return "unknown";
}
