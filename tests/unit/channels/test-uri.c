/* channels/uri.c: parsing, listen, local address, connect. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channels/uri.h"
#include "chan-test.h"

typedef struct {
	const char *uri;
	MigUriKind kind;
	const char *host;	/* or path for unix */
	const char *port;
} GoodUri;

static const GoodUri good_uris[] = {
	{ "tcp:localhost:4444", MIG_URI_TCP, "localhost", "4444" },
	{ "tcp:127.0.0.1:0", MIG_URI_TCP, "127.0.0.1", "0" },
	{ "tcp:[::1]:5555", MIG_URI_TCP, "::1", "5555" },
	{ "tcp:[fe80::1%lo]:1", MIG_URI_TCP, "fe80::1%lo", "1" },
	{ "tcp:dest.example.org:65535", MIG_URI_TCP, "dest.example.org", "65535" },
	{ "tcp:h:007", MIG_URI_TCP, "h", "7" },
	{ "tcp:h:0000000000000080", MIG_URI_TCP, "h", "80" },
	{ "unix:/tmp/mig.sock", MIG_URI_UNIX, "/tmp/mig.sock", NULL },
	{ "unix:relative/x", MIG_URI_UNIX, "relative/x", NULL },
	{ "unix:/with:colon", MIG_URI_UNIX, "/with:colon", NULL },
	{ "fd:migrate", MIG_URI_FD, "migrate", NULL },
	{ "fd:a1", MIG_URI_FD, "a1", NULL },
};

static void test_parse_good(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(good_uris); i++) {
		const GoodUri *g = &good_uris[i];
		MigUri u;

		g_test_message("%s", g->uri);
		memset(&u, 0xa5, sizeof(u));
		g_assert_cmpint(mig_uri_parse(g->uri, &u), ==, 0);
		g_assert_cmpint(u.kind, ==, g->kind);
		if (g->kind == MIG_URI_TCP) {
			g_assert_cmpstr(u.host, ==, g->host);
			g_assert_cmpstr(u.port, ==, g->port);
		} else {
			g_assert_cmpstr(u.path, ==, g->host);
		}
	}
}

static void test_parse_bad(void)
{
	g_autofree char *long_path = g_strnfill(108, 'p');	/* needs 109 with NUL */
	g_autofree char *long_unix = g_strconcat("unix:/", long_path, NULL);
	g_autofree char *long_host = g_strnfill(256, 'h');
	g_autofree char *long_tcp = g_strconcat("tcp:", long_host, ":1", NULL);
	const char *bad[] = {
		"", "tcp", "tcp:", "tcp::80", "tcp:host", "tcp:host:", "tcp:host:65536",
		"tcp:host:99999999999999999999", "tcp:host:-1", "tcp:host:+1", "tcp:host: 1",
		"tcp:host:1 ", "tcp:host:8x", "tcp:host:0x10", "tcp:host:1:2", "tcp:::1:80",
		"tcp:[::1]", "tcp:[::1]80", "tcp:[::1:80", "tcp:[]:80", "tcp:[::1]:",
		"unix:", "fd:", "fd:3", "udp:host:1", "TCP:host:1", "tcp6:host:1", "host:1", ":1",
		"file:", "file:,offset=1", "file:/x,offset=", "file:/x,offset=-1", "file:/x,offset=1x",
		"file:/x,offset=99999999999999999999999", "file:/x,offset=+1", "file:/x,offset= 1",
		"file:/x,offset=1 ", "file:/x,offset=1e3", "file:/x,offset=1.5", "file:/x,offset=0x",
		"file:/x,offset=0x1.8", "file:/x,offset=0x20M", "file:/x,offset=1MB", "file:/x,offset=16E",
		"file:/x,offset=0x10000000000000000", "file:/x,offset=18446744073709551616",
		"file:/x,offset=17179869184G",
		long_unix, long_tcp,
	};
	MigUri u;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_test_message("'%s'", bad[i]);
		g_assert_cmpint(mig_uri_parse(bad[i], &u), ==, -EINVAL);
	}
	g_assert_cmpint(mig_uri_parse(NULL, &u), ==, -EINVAL);
	g_assert_cmpint(mig_uri_parse("tcp:h:1", NULL), ==, -EINVAL);
}

/* QEMU's file:PATH[,offset=N], N a size as qemu_strtosz reads it; the first ",offset="
 * ends the path, which may hold other commas. */
static void test_parse_file(void)
{
	static const struct {
		const char *uri, *file;
		unsigned long long offset;
	} good[] = {
		{ "file:/tmp/vm.img", "/tmp/vm.img", 0 },
		{ "file:/tmp/a,b.img", "/tmp/a,b.img", 0 },
		{ "file:/tmp/a,size=1", "/tmp/a,size=1", 0 },
		{ "file:rel/x:y,offset=4096", "rel/x:y", 4096 },
		{ "file:/a,b,offset=8", "/a,b", 8 },
		{ "file:/x,offset=0x1000", "/x", 4096 },
		{ "file:/x,offset=0XfF", "/x", 255 },
		{ "file:/x,offset=010", "/x", 10 },
		{ "file:/x,offset=0", "/x", 0 },
		{ "file:/x,offset=1M", "/x", 1ULL << 20 },
		{ "file:/x,offset=4k", "/x", 4096 },
		{ "file:/x,offset=2G", "/x", 2ULL << 30 },
		{ "file:/x,offset=7b", "/x", 7 },
		{ "file:/x,offset=1.5M", "/x", 3ULL << 19 },
		{ "file:/x,offset=0.5K", "/x", 512 },
		{ "file:/x,offset=1.k", "/x", 1024 },
		{ "file:/x,offset=1.0", "/x", 1 },
		{ "file:/x,offset=15E", "/x", 15ULL << 60 },
		{ "file:/x,offset=0xffffffffffffffff", "/x", 0xffffffffffffffffULL },
		{ "file:/x,offset=18446744073709551615", "/x", 0xffffffffffffffffULL },
	};
	MigUri u;

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		g_test_message("'%s'", good[i].uri);
		g_assert_cmpint(mig_uri_parse(good[i].uri, &u), ==, 0);
		g_assert_cmpint(u.kind, ==, MIG_URI_FILE);
		g_assert_cmpstr(u.file, ==, good[i].file);
		g_assert_cmpuint(u.offset, ==, good[i].offset);
	}
	/* a file is not a socket */
	g_assert_cmpint(mig_uri_parse("file:/x", &u), ==, 0);
	g_assert_cmpint(mig_uri_listen(&u, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_connect(&u, 10), ==, -EINVAL);
}

/* The limits are exactly the buffer sizes, not one less or more. */
static void test_parse_limits(void)
{
	g_autofree char *path = g_strnfill(107, 'p');
	g_autofree char *uri = g_strconcat("unix:", path, NULL);
	g_autofree char *host = g_strnfill(255, 'h');
	g_autofree char *turi = g_strconcat("tcp:", host, ":65535", NULL);
	MigUri u;

	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);
	g_assert_cmpuint(strlen(u.path), ==, 107);
	g_assert_cmpint(mig_uri_parse(turi, &u), ==, 0);
	g_assert_cmpuint(strlen(u.host), ==, 255);
}

/* One byte each way proves the two fds are the ends of one connection. */
static void assert_connected(int a, int b)
{
	char c = 0;

	g_assert_cmpint(write(a, "x", 1), ==, 1);
	g_assert_cmpint(read(b, &c, 1), ==, 1);
	g_assert_cmpint(c, ==, 'x');
	g_assert_cmpint(write(b, "y", 1), ==, 1);
	g_assert_cmpint(read(a, &c, 1), ==, 1);
	g_assert_cmpint(c, ==, 'y');
}

static void assert_cloexec(int fd)
{
	g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void tcp_roundtrip(const char *listen_uri, const char *prefix)
{
	char local[128];
	MigUri u, lu;
	int lfd, cfd, afd, one = 0;
	socklen_t len = sizeof(one);

	g_assert_cmpint(mig_uri_parse(listen_uri, &u), ==, 0);
	lfd = mig_uri_listen(&u, 4);
	if (lfd == -EAFNOSUPPORT || lfd == -EADDRNOTAVAIL || lfd == -ENXIO) {
		g_test_skip("address family not available here");
		return;
	}
	g_assert_cmpint(lfd, >=, 0);
	assert_cloexec(lfd);

	g_assert_cmpint(mig_uri_local(lfd, local, sizeof(local)), ==, 0);
	g_test_message("listening on %s", local);
	g_assert_true(g_str_has_prefix(local, prefix));
	g_assert_cmpint(mig_uri_parse(local, &lu), ==, 0);
	g_assert_cmpstr(lu.port, !=, "0");

	cfd = mig_uri_connect(&lu, 1000);
	g_assert_cmpint(cfd, >=, 0);
	assert_cloexec(cfd);
	g_assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);
	g_assert_cmpint(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, &len), ==, 0);
	g_assert_cmpint(one, !=, 0);

	afd = accept(lfd, NULL, NULL);
	g_assert_cmpint(afd, >=, 0);
	assert_connected(cfd, afd);

	/* Too small a buffer must be an error, not a silently cut URI. */
	g_assert_cmpint(mig_uri_local(lfd, local, 8), ==, -ERANGE);
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_tcp_v4(void)
{
	tcp_roundtrip("tcp:127.0.0.1:0", "tcp:127.0.0.1:");
}

static void test_tcp_v6(void)
{
	tcp_roundtrip("tcp:[::1]:0", "tcp:[::1]:");
}

/* A wildcard address is reported as bound (0.0.0.0, ::), not as loopback: a
 * remote source could not use that. Bound but never listening, so nothing is
 * exposed. */
static void test_local_wildcard(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	socklen_t len = sizeof(sin);
	char local[128], want[128];
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sin, &len), ==, 0);
	g_assert_cmpint(mig_uri_local(fd, local, sizeof(local)), ==, 0);
	g_snprintf(want, sizeof(want), "tcp:0.0.0.0:%u", ntohs(sin.sin_port));
	g_assert_cmpstr(local, ==, want);
	close(fd);

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		if (fd >= 0)
			close(fd);
		g_test_message("no IPv6 here, v4 part only");
		return;
	}
	len = sizeof(sin6);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sin6, &len), ==, 0);
	g_assert_cmpint(mig_uri_local(fd, local, sizeof(local)), ==, 0);
	g_snprintf(want, sizeof(want), "tcp:[::]:%u", ntohs(sin6.sin6_port));
	g_assert_cmpstr(local, ==, want);
	close(fd);
}

/* SO_REUSEADDR: a port with a connection in TIME_WAIT can be listened on
 * again right away. The side that closes first holds TIME_WAIT. */
static void test_tcp_reuseaddr(void)
{
	char local[128];
	MigUri u;
	int lfd, cfd, afd, one = 0;
	socklen_t len = sizeof(one);

	g_assert_cmpint(mig_uri_parse("tcp:127.0.0.1:0", &u), ==, 0);
	lfd = mig_uri_listen(&u, 4);
	g_assert_cmpint(lfd, >=, 0);
	g_assert_cmpint(getsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, &len), ==, 0);
	g_assert_cmpint(one, !=, 0);
	g_assert_cmpint(mig_uri_local(lfd, local, sizeof(local)), ==, 0);
	g_assert_cmpint(mig_uri_parse(local, &u), ==, 0);
	cfd = mig_uri_connect(&u, 1000);
	g_assert_cmpint(cfd, >=, 0);
	afd = accept(lfd, NULL, NULL);
	g_assert_cmpint(afd, >=, 0);
	close(afd);
	close(lfd);
	close(cfd);

	lfd = mig_uri_listen(&u, 4);
	g_assert_cmpint(lfd, >=, 0);
	close(lfd);
}

static void test_unix(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("mig-uri-XXXXXX", &err);
	g_autofree char *path = NULL, *uri = NULL;
	char local[256];
	struct stat st;
	MigUri u;
	int lfd, cfd, afd;

	g_assert_no_error(err);
	path = g_build_filename(dir, "s", NULL);
	uri = g_strconcat("unix:", path, NULL);
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);

	/* A socket file left behind by a dead listener is replaced. */
	lfd = mig_uri_listen(&u, 4);
	g_assert_cmpint(lfd, >=, 0);
	close(lfd);
	g_assert_cmpint(lstat(path, &st), ==, 0);
	g_assert_true(S_ISSOCK(st.st_mode));
	lfd = mig_uri_listen(&u, 4);
	g_assert_cmpint(lfd, >=, 0);
	assert_cloexec(lfd);

	g_assert_cmpint(mig_uri_local(lfd, local, sizeof(local)), ==, 0);
	g_assert_cmpstr(local, ==, uri);

	cfd = mig_uri_connect(&u, 1000);
	g_assert_cmpint(cfd, >=, 0);
	assert_cloexec(cfd);
	g_assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);
	afd = accept(lfd, NULL, NULL);
	g_assert_cmpint(afd, >=, 0);
	assert_connected(cfd, afd);
	close(afd);
	close(cfd);
	close(lfd);
	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* Only sockets count as stale: a regular file at the path is left alone. */
static void test_unix_keeps_regular_file(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("mig-uri-XXXXXX", &err);
	g_autofree char *path = NULL, *uri = NULL, *content = NULL;
	MigUri u;

	g_assert_no_error(err);
	path = g_build_filename(dir, "precious", NULL);
	g_assert_true(g_file_set_contents(path, "data", -1, NULL));
	uri = g_strconcat("unix:", path, NULL);
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);
	g_assert_cmpint(mig_uri_listen(&u, 4), ==, -EADDRINUSE);
	g_assert_true(g_file_get_contents(path, &content, NULL, NULL));
	g_assert_cmpstr(content, ==, "data");
	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* A live socket (something listens on it) is never removed nor taken over. */
static void test_unix_keeps_live_socket(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("mig-uri-XXXXXX", &err);
	g_autofree char *path = NULL, *uri = NULL;
	MigUri u;
	int lfd, cfd, afd;

	g_assert_no_error(err);
	path = g_build_filename(dir, "live", NULL);
	uri = g_strconcat("unix:", path, NULL);
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);
	lfd = mig_uri_listen(&u, 4);
	g_assert_cmpint(lfd, >=, 0);
	g_assert_cmpint(mig_uri_listen(&u, 4), ==, -EADDRINUSE);
	/* the first listener still owns the path */
	cfd = mig_uri_connect(&u, 1000);
	g_assert_cmpint(cfd, >=, 0);
	afd = accept(lfd, NULL, NULL);
	g_assert_cmpint(afd, >=, 0);
	close(afd);
	close(cfd);
	close(lfd);
	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void test_unix_connect_missing(void)
{
	MigUri u;

	g_assert_cmpint(mig_uri_parse("unix:/nonexistent-mig-dir/s", &u), ==, 0);
	g_assert_cmpint(mig_uri_connect(&u, 500), ==, -ENOENT);
}

/* A bound but not listening port answers SYN with RST; unlike a closed port
 * it cannot be grabbed by anyone else while the test runs. */
static void test_connect_refused(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char uri[64];
	gint64 t0;
	MigUri u;
	int ret;

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sin, &len), ==, 0);
	g_snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);

	t0 = chan_now_ms();
	ret = mig_uri_connect(&u, 5000);
	g_assert_cmpint(ret, ==, -ECONNREFUSED);
	g_assert_cmpint(chan_now_ms() - t0, <, 1000);
	close(fd);
}

/* With the accept queue full the kernel drops SYNs, so connect() would sit
 * in SYN retransmits for a second or more; ours must stop at the deadline. */
static void test_connect_timeout_tcp(void)
{
	char local[128];
	int lfd, fds[8], nfds = 0, ret = 0;
	MigUri u;

	g_assert_cmpint(mig_uri_parse("tcp:127.0.0.1:0", &u), ==, 0);
	lfd = mig_uri_listen(&u, 0);
	g_assert_cmpint(lfd, >=, 0);
	g_assert_cmpint(mig_uri_local(lfd, local, sizeof(local)), ==, 0);
	g_assert_cmpint(mig_uri_parse(local, &u), ==, 0);

	while (nfds < (int)G_N_ELEMENTS(fds)) {
		gint64 t0 = chan_now_ms();

		ret = mig_uri_connect(&u, 150);
		if (ret < 0) {
			gint64 dt = chan_now_ms() - t0;

			g_assert_cmpint(ret, ==, -ETIMEDOUT);
			g_assert_cmpint(dt, >=, 140);
			g_assert_cmpint(dt, <, 1000);
			break;
		}
		fds[nfds++] = ret;
	}
	g_assert_cmpint(ret, ==, -ETIMEDOUT);
	while (nfds > 0)
		close(fds[--nfds]);
	close(lfd);
}

/* A full unix backlog fails connect() with EAGAIN rather than waiting. */
static void test_connect_timeout_unix(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("mig-uri-XXXXXX", &err);
	g_autofree char *path = NULL, *uri = NULL;
	int lfd, fds[8], nfds = 0, ret = 0;
	MigUri u;

	g_assert_no_error(err);
	path = g_build_filename(dir, "s", NULL);
	uri = g_strconcat("unix:", path, NULL);
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);
	lfd = mig_uri_listen(&u, 0);
	g_assert_cmpint(lfd, >=, 0);

	while (nfds < (int)G_N_ELEMENTS(fds)) {
		gint64 t0 = chan_now_ms();

		ret = mig_uri_connect(&u, 100);
		if (ret < 0) {
			gint64 dt = chan_now_ms() - t0;

			g_assert_cmpint(ret, ==, -ETIMEDOUT);
			g_assert_cmpint(dt, >=, 90);
			g_assert_cmpint(dt, <, 1000);
			break;
		}
		fds[nfds++] = ret;
	}
	g_assert_cmpint(ret, ==, -ETIMEDOUT);
	while (nfds > 0)
		close(fds[--nfds]);
	close(lfd);
	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void test_bad_args(void)
{
	MigUri u = { .kind = 99 };
	char buf[64];
	int sv[2];

	g_assert_cmpint(mig_uri_listen(NULL, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_connect(NULL, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_listen(&u, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_connect(&u, 1), ==, -EINVAL);

	/* A hand-filled unix MigUri with an unterminated path is refused. */
	u.kind = MIG_URI_UNIX;
	memset(u.path, 'a', sizeof(u.path));
	g_assert_cmpint(mig_uri_listen(&u, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_connect(&u, 1), ==, -EINVAL);

	g_assert_cmpint(mig_uri_local(-1, buf, sizeof(buf)), ==, -EBADF);
	g_assert_cmpint(mig_uri_local(0, NULL, 0), ==, -EINVAL);
	/* An unnamed unix socket has no URI. */
	chan_socketpair(sv);
	g_assert_cmpint(mig_uri_local(sv[0], buf, sizeof(buf)), ==, -EAFNOSUPPORT);
	chan_close_pair(sv);

	/* fd: has nothing to listen on or connect to: the socket is passed */
	g_assert_cmpint(mig_uri_parse("fd:m", &u), ==, 0);
	g_assert_cmpint(mig_uri_listen(&u, 1), ==, -EINVAL);
	g_assert_cmpint(mig_uri_connect(&u, 1), ==, -EINVAL);
}

/* fd: takes a connected stream socket as it comes (libvirt's may be non-blocking) and
 * makes it blocking and close-on-exec; a pipe cannot carry a return path. */
static void test_adopt_fd(void)
{
	int sv[2], p[2];

	chan_socketpair(sv);
	g_assert_cmpint(fcntl(sv[0], F_SETFL, O_NONBLOCK), ==, 0);
	g_assert_cmpint(fcntl(sv[0], F_SETFD, 0), ==, 0);
	g_assert_cmpint(mig_uri_adopt_fd(sv[0]), ==, 0);
	g_assert_cmpint(fcntl(sv[0], F_GETFL) & O_NONBLOCK, ==, 0);
	g_assert_cmpint(fcntl(sv[0], F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
	chan_close_pair(sv);
	g_assert_cmpint(pipe(p), ==, 0);
	g_assert_cmpint(mig_uri_adopt_fd(p[0]), ==, -ENOTSOCK);
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/channels/uri/parse-good", test_parse_good);
	g_test_add_func("/channels/uri/adopt-fd", test_adopt_fd);
	g_test_add_func("/channels/uri/parse-bad", test_parse_bad);
	g_test_add_func("/channels/uri/parse-limits", test_parse_limits);
	g_test_add_func("/channels/uri/parse-file", test_parse_file);
	g_test_add_func("/channels/uri/tcp-v4", test_tcp_v4);
	g_test_add_func("/channels/uri/tcp-v6", test_tcp_v6);
	g_test_add_func("/channels/uri/local-wildcard", test_local_wildcard);
	g_test_add_func("/channels/uri/unix-keeps-live-socket", test_unix_keeps_live_socket);
	g_test_add_func("/channels/uri/tcp-reuseaddr", test_tcp_reuseaddr);
	g_test_add_func("/channels/uri/unix", test_unix);
	g_test_add_func("/channels/uri/unix-keeps-regular-file", test_unix_keeps_regular_file);
	g_test_add_func("/channels/uri/unix-connect-missing", test_unix_connect_missing);
	g_test_add_func("/channels/uri/connect-refused", test_connect_refused);
	g_test_add_func("/channels/uri/connect-timeout-tcp", test_connect_timeout_tcp);
	g_test_add_func("/channels/uri/connect-timeout-unix", test_connect_timeout_unix);
	g_test_add_func("/channels/uri/bad-args", test_bad_args);
	return g_test_run();
}
