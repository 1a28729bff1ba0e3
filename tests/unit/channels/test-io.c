/* channels/io.c: whole-buffer reads and writes. */
#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channels/io.h"
#include "chan-test.h"

#define BIG (4u << 20)

typedef struct {
	int fd;
	const uint8_t *buf;
	size_t len;
	int ret;
} Writer;

static gpointer write_thread(gpointer opaque)
{
	Writer *w = opaque;

	w->ret = mig_io_write_full(w->fd, w->buf, w->len);
	return NULL;
}

/* 4 MiB is far beyond the socket buffer, so both sides see short
 * transfers and the loops have to carry on from the middle. */
static void test_big_roundtrip(void)
{
	g_autofree uint8_t *src = g_malloc(BIG), *dst = g_malloc0(BIG);
	Writer w = { .buf = src, .len = BIG, .ret = 1 };
	int sv[2];
	GThread *t;

	chan_pattern(src, BIG, 1);
	chan_socketpair(sv);
	w.fd = sv[0];
	t = g_thread_new("writer", write_thread, &w);
	g_assert_cmpint(mig_io_read_full(sv[1], dst, BIG), ==, 0);
	g_thread_join(t);
	g_assert_cmpint(w.ret, ==, 0);
	g_assert_true(memcmp(src, dst, BIG) == 0);
	chan_close_pair(sv);
}

static void test_zero_len(void)
{
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_write_full(sv[0], NULL, 0), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], NULL, 0), ==, 0);
	g_assert_cmpint(mig_io_writev_full(sv[0], NULL, 0), ==, 0);
	g_assert_cmpint(mig_io_readv_full(sv[1], NULL, 0), ==, 0);
	chan_close_pair(sv);
}

static void test_eof(void)
{
	uint8_t buf[16];
	int sv[2];

	/* Clean EOF, nothing read. */
	chan_socketpair(sv);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, -EPIPE);
	chan_close_pair(sv);

	/* EOF part way. */
	chan_socketpair(sv);
	chan_put_raw(sv[0], "abcde", 5);
	close(sv[0]);
	sv[0] = -1;
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, -EPIPE);
	g_assert_cmpmem(buf, 5, "abcde", 5);
	chan_close_pair(sv);

	/* Same through readv. */
	chan_socketpair(sv);
	chan_put_raw(sv[0], "abc", 3);
	close(sv[0]);
	sv[0] = -1;
	struct iovec iov[2] = { { buf, 2 }, { buf + 2, 8 } };
	g_assert_cmpint(mig_io_readv_full(sv[1], iov, 2), ==, -EPIPE);
	chan_close_pair(sv);
}

/* SIGPIPE is left at its default (terminate) on purpose: if a write path
 * forgot MSG_NOSIGNAL this test dies instead of passing. */
static void test_dead_peer_no_sigpipe(void)
{
	uint8_t buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 32 }, { buf + 32, 32 } };
	int sv[2];

	g_assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	chan_socketpair(sv);
	close(sv[1]);
	sv[1] = -1;
	g_assert_cmpint(mig_io_write_full(sv[0], buf, sizeof(buf)), ==, -EPIPE);
	g_assert_cmpint(mig_io_writev_full(sv[0], iov, 2), ==, -EPIPE);
	chan_close_pair(sv);
}

typedef struct {
	int fd;
	struct iovec *iov;
	int iovcnt;
	int ret;
} VWriter;

static gpointer writev_thread(gpointer opaque)
{
	VWriter *w = opaque;

	w->ret = mig_io_writev_full(w->fd, w->iov, w->iovcnt);
	return NULL;
}

/* Splits buf into n iovecs of pseudo-random sizes (some empty); the last
 * one takes the remainder, which is most of it. */
static struct iovec *split(uint8_t *buf, size_t len, int n, uint32_t seed)
{
	struct iovec *iov = g_new0(struct iovec, n);
	g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		size_t want = i == n - 1 ? len - off : (size_t)g_rand_int_range(rand, 0, 40);

		if (want > len - off)
			want = len - off;
		iov[i].iov_base = buf + off;
		iov[i].iov_len = want;
		off += want;
	}
	g_assert_cmpuint(off, ==, len);
	return iov;
}

static void assert_consumed(const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		g_assert_cmpuint(iov[i].iov_len, ==, 0);
}

/* More iovecs than IOV_MAX on both sides, cut differently on each, with a
 * tail large enough to force partial transfers mid-iovec. */
static void test_vectors_beyond_iov_max(void)
{
	const int nw = IOV_MAX * 2 + 17, nr = IOV_MAX + 3;
	const size_t len = 3 * 1024 * 1024 + 11;
	g_autofree uint8_t *src = g_malloc(len), *dst = g_malloc0(len);
	g_autofree struct iovec *wv = NULL, *rv = NULL;
	VWriter w = { .iovcnt = nw, .ret = 1 };
	int sv[2];
	GThread *t;

	g_test_message("IOV_MAX=%d", IOV_MAX);
	chan_pattern(src, len, 2);
	wv = split(src, len, nw, 3);
	rv = split(dst, len, nr, 5);
	chan_socketpair(sv);
	w.fd = sv[0];
	w.iov = wv;
	t = g_thread_new("writer", writev_thread, &w);
	g_assert_cmpint(mig_io_readv_full(sv[1], rv, nr), ==, 0);
	g_thread_join(t);
	g_assert_cmpint(w.ret, ==, 0);
	g_assert_true(memcmp(src, dst, len) == 0);
	assert_consumed(wv, nw);
	assert_consumed(rv, nr);
	chan_close_pair(sv);
}

/* Only the head of the data is available: readv_full has to stop
 * partway through an iovec and resume there when the rest arrives. */
static void test_readv_resumes_mid_iovec(void)
{
	uint8_t src[10], dst[10] = { 0 };
	struct iovec iov[3] = { { dst, 3 }, { dst + 3, 5 }, { dst + 8, 2 } };
	int sv[2];
	GThread *t;
	Writer w = { .buf = src + 5, .len = 5, .ret = 1 };

	chan_pattern(src, sizeof(src), 9);
	chan_socketpair(sv);
	chan_put_raw(sv[0], src, 5);
	w.fd = sv[0];
	t = g_thread_new("writer", write_thread, &w);
	g_assert_cmpint(mig_io_readv_full(sv[1], iov, 3), ==, 0);
	g_thread_join(t);
	g_assert_cmpint(w.ret, ==, 0);
	g_assert_cmpmem(src, sizeof(src), dst, sizeof(dst));
	assert_consumed(iov, 3);
	g_assert_true(iov[2].iov_base == dst + 10);
	chan_close_pair(sv);
}

static void test_bad_iovcnt(void)
{
	struct iovec iov = { NULL, 0 };
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_writev_full(sv[0], &iov, -1), ==, -EINVAL);
	g_assert_cmpint(mig_io_readv_full(sv[0], &iov, -1), ==, -EINVAL);
	g_assert_cmpint(mig_io_writev_full(sv[0], NULL, 1), ==, -EINVAL);
	chan_close_pair(sv);
	g_assert_cmpint(mig_io_write_full(-1, "x", 1), ==, -EBADF);
	g_assert_cmpint(mig_io_read_full(-1, &iov, 1), ==, -EBADF);
}

static void test_set_timeout(void)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_set_timeout(sv[0], 1500), ==, 0);
	g_assert_cmpint(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 1);
	g_assert_cmpint(tv.tv_usec, ==, 500000);
	g_assert_cmpint(getsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 1);
	g_assert_cmpint(tv.tv_usec, ==, 500000);

	g_assert_cmpint(mig_io_set_timeout(sv[0], 0), ==, 0);
	g_assert_cmpint(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 0);
	g_assert_cmpint(tv.tv_usec, ==, 0);

	g_assert_cmpint(mig_io_set_timeout(sv[0], -1), ==, -EINVAL);
	g_assert_cmpint(mig_io_set_timeout(-1, 10), ==, -EBADF);
	chan_close_pair(sv);
}

static int sockopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	g_assert_cmpint(getsockopt(fd, level, name, &v, &len), ==, 0);
	return v;
}

/* A TCP channel gets keepalive and a user timeout that declare a silent peer dead
 * within the timeout + 1 s, and a send timeout; a unix one only the send timeout. */
static void test_liveness(void)
{
	static const int timeouts[] = { 1000, 2000, 2500, 15000, 600000 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv;
	socklen_t len = sizeof(tv);
	int sv[2];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	for (size_t i = 0; i < G_N_ELEMENTS(timeouts); i++) {
		int idle, intvl, cnt, t = timeouts[i];

		mig_io_keepalive_for(t, &idle, &intvl, &cnt);
		g_assert_cmpint(idle, >=, 1);
		g_assert_cmpint(intvl, >=, 1);
		g_assert_cmpint(cnt, >=, 1);
		g_assert_cmpint((idle + cnt * intvl) * 1000, <=, t + 1000);
	}
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	g_assert_cmpint(mig_io_set_liveness(fd, 2000), ==, 0);
	g_assert_cmpint(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), ==, 1);
	g_assert_cmpint(sockopt_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), ==, 2000);
	g_assert_cmpint(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) +
			sockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT) * sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), <=, 3);
	g_assert_cmpint(getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 2);
	g_assert_cmpint(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 0);   /* an idle channel is not a dead one */
	close(fd);

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_set_liveness(sv[0], 1500), ==, 0);
	g_assert_cmpint(getsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_sec, ==, 1);
	g_assert_cmpint(tv.tv_usec, ==, 500000);
	g_assert_cmpint(mig_io_set_liveness(sv[0], 0), ==, -EINVAL);
	g_assert_cmpint(mig_io_set_recv_timeout(sv[1], 300), ==, 0);
	g_assert_cmpint(getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, &len), ==, 0);
	g_assert_cmpint(tv.tv_usec, ==, 300000);
	chan_close_pair(sv);
}

/* How long this thread has waited for a CPU, in ms (run_delay in
 * /proc/thread-self/schedstat): a loaded host's doing, not the code's. The upper
 * bounds below say the code waited its timeout and not more (not for ever, not twice),
 * so they leave that out: run at idle priority beside two busy loops at nice -5 (load
 * 5 to 7, 2 CPUs), a 100 ms write timeout took 1260 to 1654 ms in 3 of 5 runs of this
 * file. 0 where the kernel keeps no such count. */
static gint64 cpu_wait_ms(void)
{
	unsigned long long run = 0, delay = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");

	if (f) {
		if (fscanf(f, "%llu %llu", &run, &delay) != 2)
			delay = 0;
		fclose(f);
	}
	return (gint64)(delay / 1000000);
}

/* The time since t0 (ms) that this thread was running or waiting on what it asked
 * for, not for a CPU (w0: cpu_wait_ms() at t0). */
static gint64 own_ms(gint64 t0, gint64 w0)
{
	return chan_now_ms() - t0 - (cpu_wait_ms() - w0);
}

static void test_read_timeout(void)
{
	uint8_t buf[4];
	gint64 t0, w0, dt;
	int sv[2];

	chan_socketpair(sv);
	chan_put_raw(sv[0], "ab", 2);	/* half arrives; waiting for the rest must time out */
	g_assert_cmpint(mig_io_set_timeout(sv[1], 100), ==, 0);
	w0 = cpu_wait_ms();
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, 90);
	g_assert_cmpint(own_ms(t0, w0), <, 1000);
	chan_close_pair(sv);
}

static void test_write_timeout(void)
{
	const size_t len = 16u << 20;	/* far more than any socket buffer */
	g_autofree uint8_t *buf = g_malloc0(len);
	struct iovec iov = { buf, len };
	gint64 t0, w0, dt;
	int sv[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_set_timeout(sv[0], 100), ==, 0);
	w0 = cpu_wait_ms();
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_write_full(sv[0], buf, len), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, 90);
	g_assert_cmpint(own_ms(t0, w0), <, 1000);
	g_assert_cmpint(mig_io_writev_full(sv[0], &iov, 1), ==, -ETIMEDOUT);
	chan_close_pair(sv);
}

/* A connected pair of TCP sockets on loopback: the timeouts below count from the
 * peer's last progress, which io.c reads from TCP_INFO. */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_assert_cmpint(l, >=, 0);
	g_assert_cmpint(bind(l, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	g_assert_cmpint(listen(l, 1), ==, 0);
	g_assert_cmpint(getsockname(l, (struct sockaddr *)&a, &len), ==, 0);
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(connect(sv[0], (struct sockaddr *)&a, sizeof(a)), ==, 0);
	sv[1] = accept(l, NULL, NULL);
	g_assert_cmpint(sv[1], >=, 0);
	close(l);
}

/* The kernel counts a receive timeout over one whole MSG_WAITALL call: a read that
 * got part of its buffer came back after the timeout and a retry waited a whole
 * timeout more, twice the timeout after the last byte. Now it is the timeout after
 * the last byte (and 2 s of margin still ends before twice), on a pair made by
 * make_pair. */
static void check_read_timeout_from_last_byte(void (*make_pair)(int sv[2]))
{
	const int t = 2000;
	uint8_t buf[64];
	struct iovec iov[2] = { { buf, 32 }, { buf + 32, 32 } };
	gint64 t0, w0, dt;
	int sv[2];

	make_pair(sv);
	g_assert_cmpint(mig_io_set_recv_timeout(sv[1], t), ==, 0);
	chan_put_raw(sv[0], "half", 4);
	w0 = cpu_wait_ms();
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, t - 50);
	g_assert_cmpint(own_ms(t0, w0), <, 2 * t - 250);
	chan_put_raw(sv[0], "half", 4);
	w0 = cpu_wait_ms();
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_readv_full(sv[1], iov, 2), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, t - 50);
	g_assert_cmpint(own_ms(t0, w0), <, 2 * t - 250);
	chan_close_pair(sv);
}

/* TCP: the last byte's time is TCP_INFO's */
static void test_read_timeout_from_last_byte(void)
{
	check_read_timeout_from_last_byte(tcp_pair);
}

/* A peer that writes a byte every gap_ms, n times, noting when each write began and
 * ended (monotonic µs): the byte reached the reader's socket in between. */
#define TRICKLE_BYTES 12

typedef struct {
	int fd;
	guint n, gap_ms;
	gint64 began[TRICKLE_BYTES], ended[TRICKLE_BYTES];
} Trickle;

static gpointer trickle_thread(gpointer opaque)
{
	Trickle *w = opaque;

	for (guint i = 0; i < w->n; i++) {
		g_usleep(w->gap_ms * 1000);
		w->began[i] = g_get_monotonic_time();
		chan_put_raw(w->fd, "x", 1);
		w->ended[i] = g_get_monotonic_time();
	}
	return NULL;
}

/* The longest the reader can have gone without a byte from start to end (µs): before
 * the first byte, between two, after the last one before end, each from the earliest
 * the earlier byte can have come to the latest the later one can. */
static gint64 longest_silence(const Trickle *w, gint64 start, gint64 end)
{
	gint64 from = start, most = 0;

	for (guint i = 0; i < w->n && w->began[i] < end; i++) {
		most = MAX(most, MIN(w->ended[i], end) - from);
		from = w->began[i];
	}
	return MAX(most, end - from);
}

typedef int (*SlowRead)(int fd, uint8_t *buf);

static int slow_read(int fd, uint8_t *buf)
{
	return mig_io_read_full(fd, buf, TRICKLE_BYTES);
}

static int slow_readv(int fd, uint8_t *buf)
{
	struct iovec iov[2] = { { buf, 5 }, { buf + 5, TRICKLE_BYTES - 5 } };

	return mig_io_readv_full(fd, iov, 2);
}

/* A peer that keeps sending, a byte every quarter of the timeout (3 timeouts in all),
 * is alive: the read, of more than the peer sends in a timeout, goes on as long as
 * bytes come, however the kernel counts one call's waits; it may end -ETIMEDOUT only if
 * the peer was in fact silent for the timeout. A loaded host can make it so by holding
 * the peer's thread off the CPU (the tests run at idle priority: beside two busy loops
 * at nice -5, load 5 to 7 on 2 CPUs, gaps of 1.0 to 2.1 s came in most runs of this
 * file): that attempt tells nothing, and another is made. TRUE when the read took
 * every byte. */
#define SLOW_TIMEOUT_MS 1000
#define SLOW_ATTEMPTS 5

static gboolean slow_peer_attempt(void (*make_pair)(int sv[2]), SlowRead rd)
{
	Trickle w = { .n = TRICKLE_BYTES, .gap_ms = SLOW_TIMEOUT_MS / 4 };
	uint8_t buf[TRICKLE_BYTES] = { 0 };
	gint64 start, end, silent;
	GThread *th;
	int sv[2], rc;

	make_pair(sv);
	g_assert_cmpint(mig_io_set_recv_timeout(sv[1], SLOW_TIMEOUT_MS), ==, 0);
	w.fd = sv[0];
	start = g_get_monotonic_time();
	th = g_thread_new("trickle", trickle_thread, &w);
	rc = rd(sv[1], buf);
	end = g_get_monotonic_time();
	g_thread_join(th);
	chan_close_pair(sv);
	if (rc == 0) {
		g_assert_cmpmem(buf, TRICKLE_BYTES, "xxxxxxxxxxxx", TRICKLE_BYTES);
		return TRUE;
	}
	g_assert_cmpint(rc, ==, -ETIMEDOUT);
	silent = longest_silence(&w, start, end);
	if (silent < SLOW_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND)
		g_error("the read timed out after %" G_GINT64_FORMAT " ms, though its peer was never silent for more "
			"than %" G_GINT64_FORMAT " ms (the timeout: %d ms)", (end - start) / 1000, silent / 1000,
			SLOW_TIMEOUT_MS);
	g_test_message("the peer's thread was held off for up to %" G_GINT64_FORMAT " ms, more than the %d ms "
		       "timeout: the read rightly timed out; again", silent / 1000, SLOW_TIMEOUT_MS);
	return FALSE;
}

static void check_slow_peer_lives(void (*make_pair)(int sv[2]), SlowRead rd)
{
	for (guint i = 0; i < SLOW_ATTEMPTS; i++)
		if (slow_peer_attempt(make_pair, rd))
			return;
	g_error("the peer's thread was held off the CPU for more than the %d ms timeout in each of %d attempts",
		SLOW_TIMEOUT_MS, SLOW_ATTEMPTS);
}

/* TCP: the kernel's count of a call's waits ran out while bytes still came */
static void test_read_slow_peer_lives(void)
{
	check_slow_peer_lives(tcp_pair, slow_read);
}

/* A peer that reads nothing (stopped; its kernel still acknowledges): a write times
 * out the send timeout after the buffers filled, not twice that (a blocking send that
 * moved part of its buffer came back after the timeout, and a retry waited again). */
static void test_write_timeout_from_last_room(void)
{
	const int t = 2000;
	const size_t len = 64u << 20;	/* far more than both socket buffers */
	g_autofree uint8_t *buf = g_malloc0(len);
	gint64 t0, w0, dt;
	int sv[2];

	tcp_pair(sv);
	/* the send timeout alone: TCP_USER_TIMEOUT would also end a window closed for
	 * that long, which mig_io_set_liveness adds on every channel */
	g_assert_cmpint(mig_io_set_timeout(sv[0], t), ==, 0);
	w0 = cpu_wait_ms();
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_write_full(sv[0], buf, len), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, t - 50);
	g_assert_cmpint(own_ms(t0, w0), <, 2 * t - 250);
	chan_close_pair(sv);
}

/* A unix socket has no TCP_INFO: the reader counts the silence since the last byte it
 * took itself (with the kernel's count alone, twice the timeout). */
static void test_unix_read_timeout_from_last_byte(void)
{
	check_read_timeout_from_last_byte(chan_socketpair);
}

/* ... and a unix peer that sends slowly but steadily is never cut either; a read
 * whose bytes are all queued takes them without waiting. */
static void test_unix_read_slow_peer_lives(void)
{
	uint8_t buf[12];
	int sv[2];

	check_slow_peer_lives(chan_socketpair, slow_read);
	check_slow_peer_lives(chan_socketpair, slow_readv);
	chan_socketpair(sv);
	chan_put_raw(sv[0], "0123456789ab", 12);
	g_assert_cmpint(mig_io_set_recv_timeout(sv[1], SLOW_TIMEOUT_MS), ==, 0);
	g_assert_cmpint(mig_io_read_full(sv[1], buf, sizeof(buf)), ==, 0);
	g_assert_cmpmem(buf, 12, "0123456789ab", 12);
	chan_close_pair(sv);
}

/* What a write waits for room: the socket's send timeout, the default channel timeout
 * on a socket without one (never for ever on a peer), no bound on a pipe (a local
 * reader). */
/* mig_io_idle_ms: the time since the last byte came in, whether or not it was read
 * (TCP_INFO), so a waiter on another thread's channel can count the peer's silence;
 * -1 where the kernel cannot tell (a unix socket). */
static void test_idle_ms(void)
{
	gint64 t0;
	long idle;
	char c;
	int sv[2];

	tcp_pair(sv);
	chan_put_raw(sv[0], "x", 1);
	t0 = chan_now_ms();
	g_usleep(300 * G_TIME_SPAN_MILLISECOND);
	idle = mig_io_idle_ms(sv[1]);
	/* nothing read: the byte still counts; the clock's tick is a few ms */
	g_assert_cmpint(idle, >=, 250);
	g_assert_cmpint(idle, <=, chan_now_ms() - t0 + 1000);
	g_assert_cmpint(mig_io_read_full(sv[1], &c, 1), ==, 0);
	/* a new byte starts the count again: no more than the time since it was sent, and
	 * a tick of the kernel's clock (at most 10 ms), however long a loaded host keeps
	 * this thread from asking */
	t0 = chan_now_ms();
	chan_put_raw(sv[0], "y", 1);
	g_assert_cmpint(mig_io_wait(sv[1], POLLIN, 10000), ==, 0);
	g_assert_cmpint(mig_io_idle_ms(sv[1]), <=, chan_now_ms() - t0 + 10);
	chan_close_pair(sv);
	chan_socketpair(sv);
	g_assert_cmpint(mig_io_idle_ms(sv[1]), ==, -1);
	chan_close_pair(sv);
}

static void test_send_wait_bound(void)
{
	int sv[2], p[2];

	chan_socketpair(sv);
	g_assert_cmpint(mig_io_send_wait_ms(sv[0]), ==, MIG_IO_TIMEOUT_DEFAULT_MS);
	g_assert_cmpint(mig_io_set_timeout(sv[0], 1500), ==, 0);
	g_assert_cmpint(mig_io_send_wait_ms(sv[0]), ==, 1500);
	g_assert_cmpint(mig_io_set_timeout(sv[0], 0), ==, 0);
	g_assert_cmpint(mig_io_send_wait_ms(sv[0]), ==, MIG_IO_TIMEOUT_DEFAULT_MS);
	chan_close_pair(sv);
	g_assert_cmpint(pipe(p), ==, 0);
	g_assert_cmpint(mig_io_send_wait_ms(p[1]), ==, -1);
	close(p[0]);
	close(p[1]);
}

/* A peer that reads nothing, on a socket nobody gave a send timeout: the write still
 * ends, -ETIMEDOUT the default timeout after the buffer filled (it waited for ever). */
static void test_write_without_timeout_ends(void)
{
	const size_t len = 16u << 20;	/* far more than any socket buffer */
	g_autofree uint8_t *buf = g_malloc0(len);
	gint64 t0, dt;
	int sv[2];

	chan_socketpair(sv);
	t0 = chan_now_ms();
	g_assert_cmpint(mig_io_write_full(sv[0], buf, len), ==, -ETIMEDOUT);
	dt = chan_now_ms() - t0;
	g_assert_cmpint(dt, >=, MIG_IO_TIMEOUT_DEFAULT_MS - 50);
	g_assert_cmpint(dt, <, 2 * MIG_IO_TIMEOUT_DEFAULT_MS + 3000);
	chan_close_pair(sv);
}

/* A signal handler installed without SA_RESTART makes a blocked read
 * return EINTR; the loop has to swallow it and keep reading. */
static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = 1;
}

typedef struct {
	int fd;
	uint8_t buf[8];
	int ret;
} Reader;

static void *read_thread(void *opaque)
{
	Reader *r = opaque;

	r->ret = mig_io_read_full(r->fd, r->buf, sizeof(r->buf));
	return NULL;
}

static void test_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 }, old;
	Reader r = { .ret = 1 };
	int sv[2];
	pthread_t t;

	sigemptyset(&sa.sa_mask);
	g_assert_cmpint(sigaction(SIGUSR1, &sa, &old), ==, 0);
	chan_socketpair(sv);
	r.fd = sv[1];
	chan_put_raw(sv[0], "0123", 4);
	g_assert_cmpint(pthread_create(&t, NULL, read_thread, &r), ==, 0);
	/* Best effort at landing the signal while the reader is blocked; if it
	 * arrives early the test still checks the result, just not EINTR. */
	for (int i = 0; i < 50 && !got_usr1; i++) {
		g_usleep(2000);
		pthread_kill(t, SIGUSR1);
	}
	g_usleep(20000);
	chan_put_raw(sv[0], "4567", 4);
	g_assert_cmpint(pthread_join(t, NULL), ==, 0);
	g_assert_true(got_usr1);
	g_assert_cmpint(r.ret, ==, 0);
	g_assert_cmpmem(r.buf, 8, "01234567", 8);
	chan_close_pair(sv);
	g_assert_cmpint(sigaction(SIGUSR1, &old, NULL), ==, 0);
}

/* The cases that wait out a timeout (or a slow peer) each wait on their own socket
 * pair and share nothing else, so they wait at the same time: a whole run starts each
 * on its own thread before the cases run, and the case of that name joins it and
 * asserts what it waited for. Each keeps its own bounds, measured on its own thread
 * from its own start, so waiting side by side changes no bound; the run then takes
 * about the longest wait (write-without-timeout-ends, the 15 s default) instead of
 * their sum. An assertion that fails on such a thread aborts the run with its
 * function and line, as on the main thread. A run that picks cases (-p, -s) runs them
 * in place (-l lists them without starting any). */
typedef struct {
	const char *path;
	GTestFunc fn;
	GThread *th;
} Waiter;

static Waiter waiters[] = {
	{ "/channels/io/read-timeout-from-last-byte", test_read_timeout_from_last_byte, NULL },
	{ "/channels/io/read-slow-peer-lives", test_read_slow_peer_lives, NULL },
	{ "/channels/io/write-timeout-from-last-room", test_write_timeout_from_last_room, NULL },
	{ "/channels/io/unix-read-timeout-from-last-byte", test_unix_read_timeout_from_last_byte, NULL },
	{ "/channels/io/unix-read-slow-peer-lives", test_unix_read_slow_peer_lives, NULL },
	{ "/channels/io/write-without-timeout-ends", test_write_without_timeout_ends, NULL },
};

static gpointer waiter_thread(gpointer opaque)
{
	((Waiter *)opaque)->fn();
	return NULL;
}

static void join_waiter(gconstpointer opaque)
{
	Waiter *w = (Waiter *)opaque;

	if (!w->th) {
		w->fn();
		return;
	}
	g_thread_join(w->th);
	w->th = NULL;
}

static gboolean picks_cases(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "-s") || !strcmp(argv[i], "-l") ||
		    g_str_has_prefix(argv[i], "--GTestSkip"))
			return TRUE;
	return FALSE;
}

int main(int argc, char **argv)
{
	gboolean at_once = !picks_cases(argc, argv);

	g_test_init(&argc, &argv, NULL);
	if (at_once && !g_test_subprocess())
		for (size_t i = 0; i < G_N_ELEMENTS(waiters); i++)
			waiters[i].th = g_thread_new("io-waiter", waiter_thread, &waiters[i]);
	g_test_add_func("/channels/io/big-roundtrip", test_big_roundtrip);
	g_test_add_func("/channels/io/zero-len", test_zero_len);
	g_test_add_func("/channels/io/eof", test_eof);
	g_test_add_func("/channels/io/dead-peer-no-sigpipe", test_dead_peer_no_sigpipe);
	g_test_add_func("/channels/io/vectors-beyond-iov-max", test_vectors_beyond_iov_max);
	g_test_add_func("/channels/io/readv-resumes-mid-iovec", test_readv_resumes_mid_iovec);
	g_test_add_func("/channels/io/bad-iovcnt", test_bad_iovcnt);
	g_test_add_func("/channels/io/set-timeout", test_set_timeout);
	g_test_add_func("/channels/io/read-timeout", test_read_timeout);
	g_test_add_func("/channels/io/liveness", test_liveness);
	g_test_add_func("/channels/io/write-timeout", test_write_timeout);
	g_test_add_func("/channels/io/idle-ms", test_idle_ms);
	g_test_add_func("/channels/io/send-wait-bound", test_send_wait_bound);
	g_test_add_func("/channels/io/eintr", test_eintr);
	for (size_t i = 0; i < G_N_ELEMENTS(waiters); i++)
		g_test_add_data_func(waiters[i].path, &waiters[i], join_waiter);
	return g_test_run();
}
