/* channels/hello.c: the channel handshake, both sides. */
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/io.h"
#include "chan-test.h"

static const uint8_t session[MIG_SESSION_LEN] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

static MigHello sample(uint16_t type, uint32_t index)
{
	MigHello h = {
		.version = MIG_PROTO_VERSION,
		.type = type,
		.index = index,
		.flags = 0xa1b2c3d4,
	};

	memcpy(h.session, session, sizeof(session));
	return h;
}

/* The byte layout is the contract with the other side; pin it. */
static void test_layout(void)
{
	const MigHello h = sample(MIG_CHAN_MULTIFD, 0x01020304);
	uint8_t out[MIG_HELLO_LEN];
	const uint8_t want[MIG_HELLO_LEN] = {
		'M', 'I', 'G', 'C', 0x00, 0x02, 0x00, 0x02,
		0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4,
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};
	MigHello back;
	int status = -1;

	mig_hello_pack(&h, out);
	g_assert_cmpmem(out, sizeof(out), want, sizeof(want));
	g_assert_cmpint(mig_hello_parse(want, &back, &status), ==, 0);
	g_assert_cmpint(status, ==, MIG_HELLO_OK);
	g_assert_cmpmem(&back, sizeof(back), &h, sizeof(h));
}

typedef struct {
	int fd;
	int reply_status;
	const char *reply_msg;
	MigHello got;
	int read_ret, read_status, reply_ret;
} Dest;

static gpointer dest_thread(gpointer opaque)
{
	Dest *d = opaque;

	/* What the engine does: refuse with the parse status, else answer as
	 * told (the engine would check session and index here). */
	d->read_ret = mig_hello_read(d->fd, &d->got, &d->read_status);
	if (d->read_ret == -EPROTO)
		d->reply_ret = mig_hello_reply(d->fd, d->read_status,
					       mig_hello_status_str(d->read_status));
	else if (d->read_ret == 0)
		d->reply_ret = mig_hello_reply(d->fd, d->reply_status, d->reply_msg);
	return NULL;
}

/* Runs a full handshake: mig_hello_connect here, mig_hello_read +
 * mig_hello_reply in a thread. Returns mig_hello_connect's result. */
static int handshake(const MigHello *h, Dest *d, char *msg, size_t msglen)
{
	int sv[2], ret;
	GThread *t;

	chan_socketpair(sv);
	d->fd = sv[1];
	d->read_ret = d->reply_ret = 1;
	t = g_thread_new("dest", dest_thread, d);
	ret = mig_hello_connect(sv[0], h, msg, msglen);
	g_thread_join(t);
	chan_close_pair(sv);
	return ret;
}

static void test_roundtrip(void)
{
	const int types[] = { MIG_CHAN_MAIN, MIG_CHAN_MULTIFD, MIG_CHAN_PREEMPT };

	for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
		MigHello h = sample((uint16_t)types[i], (uint32_t)i * 7);
		Dest d = { .reply_status = MIG_HELLO_OK, .read_status = -1 };
		char msg[64];

		memset(msg, 'z', sizeof(msg));
		g_assert_cmpint(handshake(&h, &d, msg, sizeof(msg)), ==, 0);
		g_assert_cmpstr(msg, ==, "");
		g_assert_cmpint(d.read_ret, ==, 0);
		g_assert_cmpint(d.read_status, ==, MIG_HELLO_OK);
		g_assert_cmpint(d.reply_ret, ==, 0);
		g_assert_cmpmem(&d.got, sizeof(d.got), &h, sizeof(h));
	}
}

/* Status 0 with a message: accepted, and the message still delivered. */
static void test_accept_with_message(void)
{
	MigHello h = sample(MIG_CHAN_MAIN, 0);
	Dest d = { .reply_status = MIG_HELLO_OK, .reply_msg = "welcome" };
	char msg[64];

	g_assert_cmpint(handshake(&h, &d, msg, sizeof(msg)), ==, 0);
	g_assert_cmpstr(msg, ==, "welcome");
}

/* A successful handshake leaves the stream right after the reply, so what
 * the destination sends next is not eaten by the source. */
static void test_stream_position(void)
{
	MigHello h = sample(MIG_CHAN_MAIN, 0);
	uint8_t reply[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 0, 0, 2, 'o', 'k', 'N', 'E', 'X', 'T' };
	uint8_t hello[MIG_HELLO_LEN], next[4];
	char msg[8];
	int sv[2];

	chan_socketpair(sv);
	chan_put_raw(sv[1], reply, sizeof(reply));
	g_assert_cmpint(mig_hello_connect(sv[0], &h, msg, sizeof(msg)), ==, 0);
	g_assert_cmpstr(msg, ==, "ok");
	g_assert_cmpint(mig_io_read_full(sv[0], next, 4), ==, 0);
	g_assert_cmpmem(next, 4, "NEXT", 4);
	/* What the source sent is exactly one packed hello. */
	g_assert_cmpint(mig_io_read_full(sv[1], hello, sizeof(hello)), ==, 0);
	g_assert_cmpmem(hello, 4, "MIGC", 4);
	chan_close_pair(sv);
}

static void expect_rejected(const uint8_t raw[MIG_HELLO_LEN], int want_status)
{
	MigHello h;
	int sv[2], status = -1;

	chan_socketpair(sv);
	chan_put_raw(sv[0], raw, MIG_HELLO_LEN);
	g_assert_cmpint(mig_hello_read(sv[1], &h, &status), ==, -EPROTO);
	g_assert_cmpint(status, ==, want_status);
	chan_close_pair(sv);
}

static void test_reject(void)
{
	const MigHello good = sample(MIG_CHAN_MAIN, 0);
	uint8_t raw[MIG_HELLO_LEN];

	mig_hello_pack(&good, raw);
	raw[3] = 'X';
	expect_rejected(raw, MIG_HELLO_BAD_MAGIC);

	/* The reply magic is not a hello magic either. */
	mig_hello_pack(&good, raw);
	raw[3] = 'A';
	expect_rejected(raw, MIG_HELLO_BAD_MAGIC);

	/* Plain HTTP hitting the port. */
	memcpy(raw, "GET / HTTP/1.1\r\nHost: x\r\n\r\n.....", MIG_HELLO_LEN);
	expect_rejected(raw, MIG_HELLO_BAD_MAGIC);

	const uint16_t versions[] = { 0, MIG_PROTO_VERSION + 1, 0x0100, 0xffff };
	for (size_t i = 0; i < G_N_ELEMENTS(versions); i++) {
		MigHello h = good;

		h.version = versions[i];
		mig_hello_pack(&h, raw);
		expect_rejected(raw, MIG_HELLO_BAD_VERSION);
	}

	const uint16_t types[] = { 0, 4, 0x0100, 0xffff };
	for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
		MigHello h = good;

		h.type = types[i];
		mig_hello_pack(&h, raw);
		expect_rejected(raw, MIG_HELLO_BAD_TYPE);
	}

	/* Both wrong: the version is what gets reported. */
	MigHello h = good;
	h.version = 9;
	h.type = 9;
	mig_hello_pack(&h, raw);
	expect_rejected(raw, MIG_HELLO_BAD_VERSION);
}

/* Bad magic, reported as -EPROTO, with the parsed fields still filled. */
static void test_reject_fills_fields(void)
{
	MigHello h = sample(MIG_CHAN_PREEMPT, 3), got;
	uint8_t raw[MIG_HELLO_LEN];
	int status = -1;

	h.version = 7;
	mig_hello_pack(&h, raw);
	g_assert_cmpint(mig_hello_parse(raw, &got, &status), ==, -EPROTO);
	g_assert_cmpint(status, ==, MIG_HELLO_BAD_VERSION);
	g_assert_cmpuint(got.version, ==, 7);
	g_assert_cmpuint(got.index, ==, 3);
	g_assert_cmpint(mig_hello_parse(raw, &got, NULL), ==, -EPROTO);
}

/* End to end: a version mismatch travels back to the source as a refusal. */
static void test_refused_by_dest(void)
{
	MigHello h = sample(MIG_CHAN_MAIN, 0);
	Dest d = { .reply_status = MIG_HELLO_OK };
	char msg[128];
	int ret;

	h.version = MIG_PROTO_VERSION + 1;
	ret = handshake(&h, &d, msg, sizeof(msg));
	g_assert_cmpint(d.read_ret, ==, -EPROTO);
	g_assert_cmpint(d.read_status, ==, MIG_HELLO_BAD_VERSION);
	g_assert_true(MIG_HELLO_REFUSED(ret));
	g_assert_cmpint(ret, ==, -(1000 + MIG_HELLO_BAD_VERSION));
	g_assert_cmpint(MIG_HELLO_STATUS(ret), ==, MIG_HELLO_BAD_VERSION);
	g_assert_cmpstr(msg, ==, "unsupported protocol version");
	g_assert_cmpint(d.reply_ret, ==, 0);
}

/* The engine-level refusals (session, index) travel the same way. */
static void test_refused_foreign_session(void)
{
	MigHello h = sample(MIG_CHAN_MULTIFD, 1);
	Dest d = { .reply_status = MIG_HELLO_FOREIGN_SESSION, .reply_msg = "foreign session" };
	char msg[128];
	int ret;

	ret = handshake(&h, &d, msg, sizeof(msg));
	g_assert_cmpint(d.read_ret, ==, 0);
	g_assert_cmpint(ret, ==, -(1000 + MIG_HELLO_FOREIGN_SESSION));
	g_assert_cmpstr(msg, ==, "foreign session");
}

/* A canned refusal from a raw peer, so the reply bytes are independent of
 * mig_hello_reply. */
static void test_refusal_raw(void)
{
	const uint8_t reply[] = {
		'M', 'I', 'G', 'A', 0, 0, 0, MIG_HELLO_FOREIGN_SESSION, 0, 15,
		'o', 't', 'h', 'e', 'r', ' ', 's', 'e', 's', 's', 'i', 'o', 'n', ' ', '7',
	};
	MigHello h = sample(MIG_CHAN_MULTIFD, 2);
	char msg[64], small[6];
	int sv[2], ret;

	chan_socketpair(sv);
	chan_put_raw(sv[1], reply, sizeof(reply));
	ret = mig_hello_connect(sv[0], &h, msg, sizeof(msg));
	g_assert_cmpint(ret, ==, -(1000 + MIG_HELLO_FOREIGN_SESSION));
	g_assert_true(MIG_HELLO_REFUSED(ret));
	g_assert_cmpstr(msg, ==, "other session 7");
	chan_close_pair(sv);

	/* Truncated into a small buffer, still NUL-terminated. */
	chan_socketpair(sv);
	chan_put_raw(sv[1], reply, sizeof(reply));
	memset(small, 'z', sizeof(small));
	g_assert_cmpint(mig_hello_connect(sv[0], &h, small, sizeof(small)), ==, ret);
	g_assert_cmpstr(small, ==, "other");
	chan_close_pair(sv);

	/* And with no buffer at all. */
	chan_socketpair(sv);
	chan_put_raw(sv[1], reply, sizeof(reply));
	g_assert_cmpint(mig_hello_connect(sv[0], &h, NULL, 0), ==, ret);
	chan_close_pair(sv);
}

static int connect_with_reply(const void *reply, size_t len, char *msg, size_t msglen)
{
	MigHello h = sample(MIG_CHAN_MAIN, 0);
	int sv[2], ret;

	chan_socketpair(sv);
	chan_put_raw(sv[1], reply, len);
	shutdown(sv[1], SHUT_WR);
	ret = mig_hello_connect(sv[0], &h, msg, msglen);
	chan_close_pair(sv);
	return ret;
}

/* Truncation never splits a UTF-8 character, and control bytes from the
 * peer do not reach the caller's log line. */
static void test_message_sanitised(void)
{
	const uint8_t utf8[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 8, 0, 4, 'h', 0xc3, 0xa9, '!' };
	const uint8_t ctl[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 8, 0, 5, 'a', '\n', 0, 0x1b, 'b' };
	char msg[8];

	g_assert_cmpint(connect_with_reply(utf8, sizeof(utf8), msg, 3), ==, -1008);
	g_assert_cmpstr(msg, ==, "h");		/* "h\xc3" would be half a character */
	g_assert_cmpint(connect_with_reply(utf8, sizeof(utf8), msg, 4), ==, -1008);
	g_assert_cmpstr(msg, ==, "h\xc3\xa9");
	g_assert_cmpint(connect_with_reply(ctl, sizeof(ctl), msg, sizeof(msg)), ==, -1008);
	g_assert_cmpstr(msg, ==, "a???b");

	/* A 4-byte character: three continuation bytes to back over. */
	const uint8_t four[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 8, 0, 6, 'a', 'b', 0xf0, 0x9f, 0x98, 0x80 };
	g_assert_cmpint(connect_with_reply(four, sizeof(four), msg, 6), ==, -1008);
	g_assert_cmpstr(msg, ==, "ab");
	g_assert_cmpint(connect_with_reply(four, sizeof(four), msg, 7), ==, -1008);
	g_assert_cmpstr(msg, ==, "ab\xf0\x9f\x98\x80");

	/* Not UTF-8 at all (a run of continuation bytes): plain byte cut. */
	const uint8_t junk[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 8, 0, 6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
	g_assert_cmpint(connect_with_reply(junk, sizeof(junk), msg, 6), ==, -1008);
	g_assert_cmpuint(strlen(msg), ==, 5);
}

static void test_bad_reply(void)
{
	const uint8_t wrong_magic[] = { 'M', 'I', 'G', 'C', 0, 0, 0, 0, 0, 0 };
	const uint8_t too_long[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 1, 0x02, 0x01 };	/* 513 */
	const uint8_t huge_status[] = { 'M', 'I', 'G', 'A', 0xff, 0xff, 0xff, 0xff, 0, 0 };
	const uint8_t short_hdr[] = { 'M', 'I', 'G', 'A', 0, 0 };
	const uint8_t short_msg[] = { 'M', 'I', 'G', 'A', 0, 0, 0, 1, 0, 9, 'a', 'b' };
	char msg[16];

	g_assert_cmpint(connect_with_reply(wrong_magic, sizeof(wrong_magic), msg, sizeof(msg)), ==, -EPROTO);
	g_assert_cmpint(connect_with_reply(too_long, sizeof(too_long), msg, sizeof(msg)), ==, -EPROTO);
	g_assert_cmpint(connect_with_reply(huge_status, sizeof(huge_status), msg, sizeof(msg)), ==, -EPROTO);
	g_assert_cmpint(connect_with_reply(short_hdr, sizeof(short_hdr), msg, sizeof(msg)), ==, -EPIPE);
	g_assert_cmpint(connect_with_reply(short_msg, sizeof(short_msg), msg, sizeof(msg)), ==, -EPIPE);
	g_assert_cmpint(connect_with_reply("", 0, msg, sizeof(msg)), ==, -EPIPE);
}

/* The reply's wire form, including the 512-byte cap. */
static void test_reply_wire(void)
{
	g_autofree char *long_msg = g_strnfill(600, 'm');
	uint8_t buf[MIG_HELLO_REPLY_HDR_LEN + MIG_HELLO_MSG_MAX], extra;
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_hello_reply(sv[0], MIG_HELLO_DUPLICATE, "dup 3"), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], buf, 15), ==, 0);
	g_assert_cmpmem(buf, 15, "MIGA\0\0\0\x05\0\x05" "dup 3", 15);

	g_assert_cmpint(mig_hello_reply(sv[0], MIG_HELLO_OK, NULL), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], buf, 10), ==, 0);
	g_assert_cmpmem(buf, 10, "MIGA\0\0\0\0\0\0", 10);

	g_assert_cmpint(mig_hello_reply(sv[0], MIG_HELLO_BUSY, long_msg), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, 0);
	g_assert_cmpmem(buf, 10, "MIGA\0\0\0\x08\x02\x00", 10);
	for (size_t i = MIG_HELLO_REPLY_HDR_LEN; i < sizeof(buf); i++)
		g_assert_cmpint(buf[i], ==, 'm');
	g_assert_cmpint(recv(sv[1], &extra, 1, MSG_DONTWAIT), ==, -1);	/* nothing past the cap */

	g_assert_cmpint(mig_hello_reply(sv[0], -1, "x"), ==, -EINVAL);
	chan_close_pair(sv);
}

/* The cap must not cut a multi-byte character in half either. */
static void test_reply_cap_utf8(void)
{
	char text[MIG_HELLO_MSG_MAX + 8];
	uint8_t buf[MIG_HELLO_REPLY_HDR_LEN + MIG_HELLO_MSG_MAX];
	int sv[2];

	memset(text, 'a', sizeof(text));
	/* A 3-byte character (U+20AC) straddling byte 512. */
	memcpy(text + MIG_HELLO_MSG_MAX - 1, "\xe2\x82\xac", 3);
	text[sizeof(text) - 1] = '\0';
	chan_socketpair(sv);
	g_assert_cmpint(mig_hello_reply(sv[0], 1, text), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], buf, MIG_HELLO_REPLY_HDR_LEN), ==, 0);
	g_assert_cmpuint((unsigned)buf[8] << 8 | buf[9], ==, MIG_HELLO_MSG_MAX - 1);
	chan_close_pair(sv);
}

static void test_peer_closes_mid_hello(void)
{
	const MigHello good = sample(MIG_CHAN_MAIN, 0);
	uint8_t raw[MIG_HELLO_LEN];
	MigHello h;
	int sv[2], status = 1234;

	mig_hello_pack(&good, raw);
	chan_socketpair(sv);
	chan_put_raw(sv[0], raw, 10);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_hello_read(sv[1], &h, &status), ==, -EPIPE);
	g_assert_cmpint(status, ==, 1234);	/* untouched: there is nothing to reply */
	chan_close_pair(sv);

	chan_socketpair(sv);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_hello_read(sv[1], &h, &status), ==, -EPIPE);
	chan_close_pair(sv);

	/* The source's view: destination gone before replying. */
	chan_socketpair(sv);
	close(sv[1]);
	sv[1] = -1;
	g_assert_cmpint(mig_hello_connect(sv[0], &good, NULL, 0), ==, -EPIPE);
	chan_close_pair(sv);
}

static void test_strings(void)
{
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int s = MIG_HELLO_OK; s <= MIG_HELLO_BUSY; s++) {
		const char *str = mig_hello_status_str(s);

		g_assert_nonnull(str);
		g_assert_cmpstr(str, !=, mig_hello_status_str(-1));
		g_assert_false(g_hash_table_contains(seen, str));
		g_hash_table_add(seen, (gpointer)str);
	}
	g_hash_table_destroy(seen);
	g_assert_cmpstr(mig_hello_status_str(MIG_HELLO_BAD_MAGIC), ==,
			"wrong magic (not a mig migration stream)");
	g_assert_cmpstr(mig_hello_status_str(MIG_HELLO_BAD_VERSION), ==, "unsupported protocol version");
	g_assert_cmpstr(mig_hello_status_str(MIG_HELLO_FOREIGN_SESSION), ==, "foreign session");
	g_assert_cmpstr(mig_hello_status_str(MIG_HELLO_DUPLICATE), ==, "duplicate channel index");
	g_assert_nonnull(mig_hello_status_str(9999));

	g_assert_cmpstr(mig_chan_type_str(MIG_CHAN_MAIN), ==, "main");
	g_assert_cmpstr(mig_chan_type_str(MIG_CHAN_MULTIFD), ==, "multifd");
	g_assert_cmpstr(mig_chan_type_str(MIG_CHAN_PREEMPT), ==, "preempt");
	g_assert_cmpstr(mig_chan_type_str(0), ==, "unknown");
	g_assert_cmpstr(mig_chan_type_str(4), ==, "unknown");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/channels/hello/layout", test_layout);
	g_test_add_func("/channels/hello/roundtrip", test_roundtrip);
	g_test_add_func("/channels/hello/accept-with-message", test_accept_with_message);
	g_test_add_func("/channels/hello/stream-position", test_stream_position);
	g_test_add_func("/channels/hello/reject", test_reject);
	g_test_add_func("/channels/hello/reject-fills-fields", test_reject_fills_fields);
	g_test_add_func("/channels/hello/refused-by-dest", test_refused_by_dest);
	g_test_add_func("/channels/hello/refused-foreign-session", test_refused_foreign_session);
	g_test_add_func("/channels/hello/refusal-raw", test_refusal_raw);
	g_test_add_func("/channels/hello/message-sanitised", test_message_sanitised);
	g_test_add_func("/channels/hello/bad-reply", test_bad_reply);
	g_test_add_func("/channels/hello/reply-wire", test_reply_wire);
	g_test_add_func("/channels/hello/reply-cap-utf8", test_reply_cap_utf8);
	g_test_add_func("/channels/hello/peer-closes-mid-hello", test_peer_closes_mid_hello);
	g_test_add_func("/channels/hello/strings", test_strings);
	return g_test_run();
}
