/* channels/frame.c: header layout, send/recv over a socket. */
#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channels/frame.h"
#include "channels/io.h"
#include "chan-test.h"

static void test_hdr_layout(void)
{
	const MigFrameHdr h = { .len = 0x01020304, .type = 0x0506, .flags = 0x0708 };
	const uint8_t want[MIG_FRAME_HDR_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[MIG_FRAME_HDR_LEN];
	MigFrameHdr back;

	mig_frame_hdr_pack(&h, out);
	g_assert_cmpmem(out, sizeof(out), want, sizeof(want));
	mig_frame_hdr_unpack(want, &back);
	g_assert_cmpuint(back.len, ==, h.len);
	g_assert_cmpuint(back.type, ==, h.type);
	g_assert_cmpuint(back.flags, ==, h.flags);
}

static void test_hdr_roundtrip(void)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(42);
	const MigFrameHdr edge[] = {
		{ 0, 0, 0 }, { UINT32_MAX, UINT16_MAX, UINT16_MAX }, { 0x80000000u, 0x8000, 0x8000 },
	};

	for (int i = 0; i < 1000 + (int)G_N_ELEMENTS(edge); i++) {
		MigFrameHdr h, back;
		uint8_t buf[MIG_FRAME_HDR_LEN];

		if (i < (int)G_N_ELEMENTS(edge)) {
			h = edge[i];
		} else {
			h.len = g_rand_int(rand);
			h.type = (uint16_t)g_rand_int(rand);
			h.flags = (uint16_t)g_rand_int(rand);
		}
		mig_frame_hdr_pack(&h, buf);
		mig_frame_hdr_unpack(buf, &back);
		g_assert_cmpuint(back.len, ==, h.len);
		g_assert_cmpuint(back.type, ==, h.type);
		g_assert_cmpuint(back.flags, ==, h.flags);
	}
}

static void expect_frame(int fd, uint16_t type, uint16_t flags, const void *payload, size_t len)
{
	g_autofree uint8_t *got = g_malloc(len ? len : 1);
	MigFrameHdr h;

	g_assert_cmpint(mig_frame_recv_hdr(fd, &h, MIG_FRAME_MAX_LEN), ==, 0);
	g_assert_cmpuint(h.len, ==, len);
	g_assert_cmpuint(h.type, ==, type);
	g_assert_cmpuint(h.flags, ==, flags);
	g_assert_cmpint(mig_io_read_full(fd, got, len), ==, 0);
	g_assert_cmpmem(got, len, payload, len);
}

static void test_send_iovecs(void)
{
	char a[] = "head", b[] = "", c[] = "-middle-", d[] = "tail";
	const struct iovec iov[] = {
		{ a, 4 }, { b, 0 }, { c, 8 }, { d, 4 },
	};
	struct iovec copy[G_N_ELEMENTS(iov)];
	uint8_t raw[MIG_FRAME_HDR_LEN];
	int sv[2];

	memcpy(copy, iov, sizeof(iov));
	chan_socketpair(sv);
	g_assert_cmpint(mig_frame_send(sv[0], 0xbeef, 0x0102, iov, 4), ==, 0);
	/* The caller's iovecs are const: they must come back untouched. */
	g_assert_cmpmem(copy, sizeof(copy), iov, sizeof(iov));

	/* Check the wire bytes themselves, not just that recv agrees with send. */
	g_assert_cmpint(mig_io_read_full(sv[1], raw, sizeof(raw)), ==, 0);
	g_assert_cmpmem(raw, sizeof(raw), "\x00\x00\x00\x10\xbe\xef\x01\x02", 8);
	char body[16];
	g_assert_cmpint(mig_io_read_full(sv[1], body, 16), ==, 0);
	g_assert_cmpmem(body, 16, "head-middle-tail", 16);

	/* And again through recv_hdr. */
	g_assert_cmpint(mig_frame_send(sv[0], 7, 0, iov, 4), ==, 0);
	expect_frame(sv[1], 7, 0, "head-middle-tail", 16);
	chan_close_pair(sv);
}

static void test_send_empty(void)
{
	struct iovec empty = { NULL, 0 };
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_frame_send(sv[0], 1, 2, NULL, 0), ==, 0);
	g_assert_cmpint(mig_frame_send(sv[0], 3, 4, &empty, 1), ==, 0);
	expect_frame(sv[1], 1, 2, "", 0);
	expect_frame(sv[1], 3, 4, "", 0);
	chan_close_pair(sv);
}

typedef struct {
	int fd;
	const struct iovec *iov;
	int n;
	int ret;
} Sender;

static gpointer send_thread(gpointer opaque)
{
	Sender *s = opaque;

	s->ret = mig_frame_send(s->fd, 0x4242, 1, s->iov, s->n);
	return NULL;
}

/* Sends buf as one frame cut into n pieces from another thread (the socket
 * buffer holds far less than the frame) and checks what arrives. */
static void send_big(size_t len, int n)
{
	g_autofree uint8_t *src = g_malloc(len);
	g_autofree struct iovec *iov = g_new0(struct iovec, n);
	Sender s = { .iov = iov, .n = n, .ret = 1 };
	size_t off = 0;
	int sv[2];
	GThread *t;

	chan_pattern(src, len, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		size_t piece = i == n - 1 ? len - off : len / (size_t)n;

		iov[i] = (struct iovec){ src + off, piece };
		off += piece;
	}
	chan_socketpair(sv);
	s.fd = sv[0];
	t = g_thread_new("sender", send_thread, &s);
	expect_frame(sv[1], 0x4242, 1, src, len);
	g_thread_join(t);
	g_assert_cmpint(s.ret, ==, 0);
	chan_close_pair(sv);
}

static void test_send_4mib(void)
{
	send_big(4u << 20, 4);
}

/* Past the on-stack iovec array, and past IOV_MAX. */
static void test_send_many_iovecs(void)
{
	send_big(1u << 20, 20);
	send_big((1u << 20) + 3, IOV_MAX + 5);
}

static void test_send_too_big(void)
{
	static uint8_t dummy;
	/* Never dereferenced: the size check comes before any I/O. */
	const struct iovec huge[] = { { &dummy, UINT32_MAX }, { &dummy, 1 } };
	const struct iovec wrap[] = { { &dummy, SIZE_MAX }, { &dummy, 2 } };
	const struct iovec wide[] = { { &dummy, (size_t)UINT32_MAX + 1 } };
	uint8_t b;
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_frame_send(sv[0], 1, 0, huge, 2), ==, -EMSGSIZE);
	g_assert_cmpint(mig_frame_send(sv[0], 1, 0, wrap, 2), ==, -EMSGSIZE);
	if (sizeof(size_t) > 4)
		g_assert_cmpint(mig_frame_send(sv[0], 1, 0, wide, 1), ==, -EMSGSIZE);
	g_assert_cmpint(mig_frame_send(sv[0], 1, 0, NULL, 1), ==, -EINVAL);
	g_assert_cmpint(mig_frame_send(sv[0], 1, 0, huge, -1), ==, -EINVAL);
	/* Nothing may have reached the wire. */
	g_assert_cmpint(recv(sv[1], &b, 1, MSG_DONTWAIT), ==, -1);
	g_assert_cmpint(errno, ==, EAGAIN);
	chan_close_pair(sv);
}

static void put_hdr(int fd, uint32_t len, uint16_t type, uint16_t flags)
{
	const MigFrameHdr h = { len, type, flags };
	uint8_t buf[MIG_FRAME_HDR_LEN];

	mig_frame_hdr_pack(&h, buf);
	chan_put_raw(fd, buf, sizeof(buf));
}

static void test_recv_oversize(void)
{
	MigFrameHdr h;
	int sv[2];

	chan_socketpair(sv);
	put_hdr(sv[0], 100, 9, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 100), ==, 0);
	put_hdr(sv[0], 101, 9, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 100), ==, -EPROTO);
	g_assert_cmpuint(h.len, ==, 101);	/* reported for the error message */
	g_assert_cmpuint(h.type, ==, 9);
	put_hdr(sv[0], MIG_FRAME_MAX_LEN, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, MIG_FRAME_MAX_LEN), ==, 0);
	put_hdr(sv[0], MIG_FRAME_MAX_LEN + 1, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, MIG_FRAME_MAX_LEN), ==, -EPROTO);
	put_hdr(sv[0], UINT32_MAX, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, MIG_FRAME_MAX_LEN), ==, -EPROTO);
	g_assert_cmpuint(h.len, ==, UINT32_MAX);
	/* The limit is the caller's: nothing is hardwired below it. */
	put_hdr(sv[0], UINT32_MAX, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, UINT32_MAX), ==, 0);
	put_hdr(sv[0], 0, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 0), ==, 0);
	put_hdr(sv[0], 1, 1, 0);
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 0), ==, -EPROTO);
	chan_close_pair(sv);
}

static void test_recv_truncated(void)
{
	uint8_t payload[100];
	MigFrameHdr h;
	int sv[2];

	/* Clean EOF before any byte. */
	chan_socketpair(sv);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 1024), ==, -EPIPE);
	chan_close_pair(sv);

	/* EOF inside the header. */
	chan_socketpair(sv);
	chan_put_raw(sv[0], "\0\0\0\x10\0", 5);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 1024), ==, -EPIPE);
	chan_close_pair(sv);

	/* EOF inside the payload. */
	chan_socketpair(sv);
	put_hdr(sv[0], sizeof(payload), 1, 0);
	chan_put_raw(sv[0], "0123456789", 10);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, 1024), ==, 0);
	g_assert_cmpuint(h.len, ==, sizeof(payload));
	g_assert_cmpint(mig_io_read_full(sv[1], payload, h.len), ==, -EPIPE);
	chan_close_pair(sv);
}

static void test_send_dead_peer(void)
{
	struct iovec iov = { "x", 1 };
	int sv[2];

	chan_socketpair(sv);
	close(sv[1]);
	sv[1] = -1;
	g_assert_cmpint(mig_frame_send(sv[0], 1, 0, &iov, 1), ==, -EPIPE);
	chan_close_pair(sv);
}

/* Peer text for a log: printable ASCII only, control bytes and non-ASCII as '?',
 * cut at MIG_PEER_TEXT_MAX with "...". */
static void test_peer_text(void)
{
	char out[MIG_PEER_TEXT_MAX + 4];
	char big[MIG_PEER_TEXT_MAX + 100];

	g_assert_cmpstr(mig_peer_text("ok: fine", 8, out), ==, "ok: fine");
	g_assert_cmpstr(mig_peer_text("a\nb\x1b[31mc\xc3\xa9\x00" "d", 13, out), ==, "a?b?[31mc???d");
	g_assert_cmpstr(mig_peer_text("", 0, out), ==, "");
	memset(big, 'x', sizeof(big));
	mig_peer_text(big, sizeof(big), out);
	g_assert_cmpuint(strlen(out), ==, MIG_PEER_TEXT_MAX + 3);
	g_assert_true(g_str_has_suffix(out, "x..."));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/channels/frame/hdr-layout", test_hdr_layout);
	g_test_add_func("/channels/frame/hdr-roundtrip", test_hdr_roundtrip);
	g_test_add_func("/channels/frame/send-iovecs", test_send_iovecs);
	g_test_add_func("/channels/frame/send-empty", test_send_empty);
	g_test_add_func("/channels/frame/send-4mib", test_send_4mib);
	g_test_add_func("/channels/frame/send-many-iovecs", test_send_many_iovecs);
	g_test_add_func("/channels/frame/send-too-big", test_send_too_big);
	g_test_add_func("/channels/frame/recv-oversize", test_recv_oversize);
	g_test_add_func("/channels/frame/recv-truncated", test_recv_truncated);
	g_test_add_func("/channels/frame/send-dead-peer", test_send_dead_peer);
	g_test_add_func("/channels/frame/peer-text", test_peer_text);
	return g_test_run();
}
