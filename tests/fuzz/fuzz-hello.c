/* Fuzz target for the bytes a mig destination (and source) read off the wire
 * before trusting the peer: the hello, the hello reply, and frame headers.
 *
 * Input goes through a real socketpair so the read loops are exercised too,
 * not just the parsers. Every result is checked against an independent
 * decoding of the same bytes (its own offsets and rules; the byte order comes
 * from channels/wire.h's helpers, the one encoding); any mismatch aborts, which is what a fuzzer
 * (or the test harness) reports.
 *
 * libFuzzer: build with -fsanitize=fuzzer -DMIG_FUZZ_LIBFUZZER.
 * Otherwise the built-in main() (fuzz-driver.c) replays the files named on
 * the command line, or with none, a deterministic built-in corpus of mutated
 * inputs. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/io.h"
#include "channels/wire.h"
#include "fuzz.h"

#define FRAME_LIMIT 4096u
#define MAX_FRAMES 64

/* Queues as much of the input as the socket takes without blocking, then
 * half-closes so every read ends in data or EOF, never a hang. Returns the
 * number of bytes queued; sv[0] is the end to read from. */
static size_t feed(int sv[2], const uint8_t *data, size_t size)
{
	ssize_t n = 0;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	if (size > 0)
		n = send(sv[1], data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
	CHECK(n >= 0);
	CHECK(shutdown(sv[1], SHUT_WR) == 0);
	return (size_t)n;
}

static void unfeed(int sv[2])
{
	close(sv[0]);
	close(sv[1]);
}

/* Status the destination must report for these 32 bytes. */
static int expected_hello_status(const uint8_t *p)
{
	uint16_t type = mig_get_be16(p + 6);

	if (mig_get_be32(p) != MIG_HELLO_MAGIC)
		return MIG_HELLO_BAD_MAGIC;
	if (mig_get_be16(p + 4) != MIG_PROTO_VERSION)
		return MIG_HELLO_BAD_VERSION;
	if (type < MIG_CHAN_MAIN || type > MIG_CHAN_PREEMPT)
		return MIG_HELLO_BAD_TYPE;
	return MIG_HELLO_OK;
}

static size_t check_hello_read(int fd, const uint8_t *data, size_t size)
{
	MigHello h;
	int status = -1;
	int ret = mig_hello_read(fd, &h, &status);

	if (size < MIG_HELLO_LEN) {
		CHECK(ret == -EPIPE);
		CHECK(status == -1);
		return size;
	}
	int want = expected_hello_status(data);
	CHECK(status == want);
	CHECK(ret == (want == MIG_HELLO_OK ? 0 : -EPROTO));
	CHECK(h.version == mig_get_be16(data + 4));
	CHECK(h.type == mig_get_be16(data + 6));
	CHECK(h.index == mig_get_be32(data + 8));
	CHECK(h.flags == mig_get_be32(data + 12));
	CHECK(memcmp(h.session, data + 16, MIG_SESSION_LEN) == 0);
	return MIG_HELLO_LEN;
}

/* Walks frames the way a receiver would: header, then skip the payload. */
static void check_frames(int fd, const uint8_t *data, size_t size)
{
	static uint8_t sink[FRAME_LIMIT];
	size_t off = 0;

	for (int i = 0; i < MAX_FRAMES; i++) {
		MigFrameHdr h;
		int ret = mig_frame_recv_hdr(fd, &h, FRAME_LIMIT);

		if (size - off < MIG_FRAME_HDR_LEN) {
			CHECK(ret == -EPIPE);
			return;
		}
		CHECK(h.len == mig_get_be32(data + off));
		CHECK(h.type == mig_get_be16(data + off + 4));
		CHECK(h.flags == mig_get_be16(data + off + 6));
		off += MIG_FRAME_HDR_LEN;
		if (h.len > FRAME_LIMIT) {
			CHECK(ret == -EPROTO);
			return;
		}
		CHECK(ret == 0);
		ret = mig_io_read_full(fd, sink, h.len);
		if (size - off < h.len) {
			CHECK(ret == -EPIPE);
			return;
		}
		CHECK(ret == 0);
		CHECK(memcmp(sink, data + off, h.len) == 0);
		off += h.len;
	}
}

/* Destination side: a hello, then frames on whatever follows. */
static void fuzz_destination(const uint8_t *data, size_t size)
{
	int sv[2];
	size_t n = feed(sv, data, size);
	size_t used = check_hello_read(sv[0], data, n);

	check_frames(sv[0], data + used, n - used);
	unfeed(sv);
}

/* Source side: the input is the destination's reply. */
static void fuzz_source(const uint8_t *data, size_t size)
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = MIG_CHAN_MAIN };
	char msg[64];
	int sv[2];
	size_t n = feed(sv, data, size);
	int ret;

	memset(msg, 'Z', sizeof(msg));
	ret = mig_hello_connect(sv[0], &h, msg, sizeof(msg));
	/* Sent exactly one well-formed hello whatever came back. */
	{
		uint8_t sent[MIG_HELLO_LEN + 1];
		CHECK(recv(sv[1], sent, sizeof(sent), MSG_DONTWAIT) == MIG_HELLO_LEN);
		CHECK(mig_get_be32(sent) == MIG_HELLO_MAGIC);
	}
	CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	for (const char *p = msg; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);

	if (n < MIG_HELLO_REPLY_HDR_LEN) {
		CHECK(ret == -EPIPE);
	} else if (mig_get_be32(data) != MIG_HELLO_REPLY || mig_get_be16(data + 8) > MIG_HELLO_MSG_MAX) {
		CHECK(ret == -EPROTO);
	} else if (n - MIG_HELLO_REPLY_HDR_LEN < mig_get_be16(data + 8)) {
		CHECK(ret == -EPIPE);
	} else {
		uint32_t status = mig_get_be32(data + 4);
		size_t mlen = mig_get_be16(data + 8);

		if (status == 0)
			CHECK(ret == 0);
		else if (status > (uint32_t)(INT_MAX - 1000))
			CHECK(ret == -EPROTO);
		else
			CHECK(MIG_HELLO_REFUSED(ret) && (uint32_t)MIG_HELLO_STATUS(ret) == status);
		CHECK(strlen(msg) <= mlen);
	}
	unfeed(sv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_destination(data, size);
	fuzz_source(data, size);
	return 0;
}

const char fuzz_name[] = "fuzz-hello";

/* A hello reply of msglen (which may lie about msg's length) and msg. */
static size_t seed_reply(uint8_t *buf, uint32_t status, uint16_t msglen, const char *msg)
{
	size_t n = strlen(msg);

	mig_put_be32(buf, MIG_HELLO_REPLY);
	mig_put_be32(buf + 4, status);
	mig_put_be16(buf + 8, msglen);
	memcpy(buf + MIG_HELLO_REPLY_HDR_LEN, msg, n);
	return MIG_HELLO_REPLY_HDR_LEN + n;
}

/* Seeds sit on the decision boundaries: frames one byte over the limit,
 * reply messages one byte over the cap. */
size_t fuzz_seed(uint8_t buf[FUZZ_INPUT_MAX], unsigned which)
{
	const MigHello h = {
		.version = MIG_PROTO_VERSION,
		.type = (uint16_t)(which % 3 + 1),
		.index = which,
		.session = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
	};
	MigFrameHdr f = { .len = 5, .type = 1, .flags = 0 };
	size_t len;

	switch (which % 4) {
	case 1:
		return seed_reply(buf, MIG_HELLO_FOREIGN_SESSION, 3, "bad");
	case 3:   /* says one byte more than a message may have */
		return seed_reply(buf, MIG_HELLO_OK, MIG_HELLO_MSG_MAX + 1, "x");
	}
	mig_hello_pack(&h, buf);
	len = MIG_HELLO_LEN;
	for (int i = 0; i < 3; i++) {
		mig_frame_hdr_pack(&f, buf + len);
		memcpy(buf + len + MIG_FRAME_HDR_LEN, "hello", 5);
		len += MIG_FRAME_HDR_LEN + 5;
	}
	if (which % 4 == 2) {
		f.len = FRAME_LIMIT + 1;
		mig_frame_hdr_pack(&f, buf + len);
		len += MIG_FRAME_HDR_LEN;
	}
	return len;
}
