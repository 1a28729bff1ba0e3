/* Migration URIs and the sockets behind them. */
#include "channels/uri.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A unix connect() that finds the backlog full fails with EAGAIN instead of
 * waiting, and poll() cannot wait for room; retry at this period instead. */
#define UNIX_RETRY_MS 10

#define URI_PATH_MAX sizeof(((MigUri *)0)->path)

_Static_assert(URI_PATH_MAX <= sizeof(((struct sockaddr_un *)0)->sun_path),
	       "a parsed unix path must always fit a sockaddr_un");

/* --- parsing ------------------------------------------------------------ */

static int copy_field(char *dst, size_t dstlen, const char *src, size_t n)
{
	if (n == 0 || n >= dstlen)
		return -EINVAL;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* Digits only: strtoul would accept sign, whitespace and hex prefixes that
 * getaddrinfo would then interpret in its own way. Normalised so "007" and
 * "7" compare equal. */
static int parse_port(const char *s, char *out, size_t outlen)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 65535)
			return -EINVAL;
	}
	snprintf(out, outlen, "%lu", v);
	return 0;
}

/* "[v6]:port" or "host:port". An unbracketed host cannot contain ':', or
 * "::1:80" would be ambiguous; the port parser rejects the leftover ':'. */
static int parse_tcp(const char *s, MigUri *out)
{
	const char *host = s, *host_end, *port;

	if (*s == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (!host_end || host_end[1] != ':')
			return -EINVAL;
		port = host_end + 2;
	} else {
		host_end = strchr(s, ':');
		if (!host_end)
			return -EINVAL;
		port = host_end + 1;
	}
	if (copy_field(out->host, sizeof(out->host), host, (size_t)(host_end - host)) < 0)
		return -EINVAL;
	if (parse_port(port, out->port, sizeof(out->port)) < 0)
		return -EINVAL;
	out->kind = MIG_URI_TCP;
	return 0;
}

static int parse_unix(const char *s, MigUri *out)
{
	if (copy_field(out->path, sizeof(out->path), s, strlen(s)) < 0)
		return -EINVAL;
	out->kind = MIG_URI_UNIX;
	return 0;
}

/* QEMU's rule for getfd names: one starting with a digit would read as a number */
static int parse_fd(const char *s, MigUri *out)
{
	if (*s >= '0' && *s <= '9')
		return -EINVAL;
	if (copy_field(out->path, sizeof(out->path), s, strlen(s)) < 0)
		return -EINVAL;
	out->kind = MIG_URI_FD;
	return 0;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A size as QEMU's file: offset takes it (qemu_strtosz): decimal, with an optional
 * binary suffix B K M G T P E (either case) and then a fraction of it ("1.5M", cut to
 * the byte); or 0x-hex with neither fraction nor suffix. No sign, no octal ("010" is
 * ten), no exponent, nothing after. */
static int parse_size(const char *v, unsigned long long *out)
{
	static const char suffixes[] = "bkmgtpe";
	uint64_t val = 0, frac_num = 0, frac_den = 1;
	const char *p = v, *sfx;
	unsigned shift;

	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		if (hex_digit(v[2]) < 0)
			return -EINVAL;
		for (p = v + 2; hex_digit(*p) >= 0; p++) {
			if (val >> 60)
				return -EINVAL;
			val = val << 4 | (uint64_t)hex_digit(*p);
		}
		if (*p)
			return -EINVAL;
		*out = val;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (val > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		val = val * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		/* digits past the 18th cannot move a result cut to the byte by more than
		 * the suffix's unit over 1e18: they are read and dropped */
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (frac_den < 1000000000000000000ULL) {
				frac_num = frac_num * 10 + (uint64_t)(*p - '0');
				frac_den *= 10;
			}
	}
	if (!*p) {
		if (frac_num)
			return -EINVAL;   /* a fraction of a byte */
		*out = val;
		return 0;
	}
	sfx = strchr(suffixes, *p | 0x20);
	if (!sfx || p[1])
		return -EINVAL;
	shift = 10 * (unsigned)(sfx - suffixes);
	if (shift && val > UINT64_MAX >> shift)
		return -EINVAL;
	val <<= shift;
	if (frac_num) {
		/* frac_num / frac_den < 1: adds less than one unit */
		uint64_t add = (uint64_t)(((unsigned __int128)frac_num << shift) / frac_den);

		if (val > UINT64_MAX - add)
			return -EINVAL;
		val += add;
	}
	*out = val;
	return 0;
}

/* "PATH" or "PATH,offset=N": QEMU's only option of a file URI. As QEMU, the first
 * ",offset=" ends the path, and a path may hold other commas. */
static int parse_file(const char *s, MigUri *out)
{
	const char *opt = strstr(s, ",offset=");
	size_t n = opt ? (size_t)(opt - s) : strlen(s);

	if (n == 0 || copy_field(out->file, sizeof(out->file), s, n) < 0)
		return -EINVAL;
	if (opt && parse_size(opt + 8, &out->offset) < 0)
		return -EINVAL;
	out->kind = MIG_URI_FILE;
	return 0;
}

int mig_uri_parse(const char *uri, MigUri *out)
{
	if (!uri || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (strncmp(uri, "tcp:", 4) == 0)
		return parse_tcp(uri + 4, out);
	if (strncmp(uri, "unix:", 5) == 0)
		return parse_unix(uri + 5, out);
	if (strncmp(uri, "fd:", 3) == 0)
		return parse_fd(uri + 3, out);
	if (strncmp(uri, "file:", 5) == 0)
		return parse_file(uri + 5, out);
	return -EINVAL;
}

/* --- shared helpers ----------------------------------------------------- */

/* getaddrinfo has its own error space; fold it into errno so every function
 * here keeps the one "negative errno" contract. */
static int gai_errno(int rc)
{
	switch (rc) {
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_FAMILY:
		return -EAFNOSUPPORT;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENXIO;
	default:
		return -EINVAL;
	}
}

static int resolve(const MigUri *uri, int flags, struct addrinfo **res)
{
	const struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		/* The port was validated as numeric; never consult services. */
		.ai_flags = flags | AI_NUMERICSERV,
	};
	int rc = getaddrinfo(uri->host, uri->port, &hints, res);

	return rc ? gai_errno(rc) : 0;
}

/* The MigUri may have been filled by hand rather than by mig_uri_parse, so
 * the path is re-checked before it is copied. */
static int fill_sun(struct sockaddr_un *sun, const char *path)
{
	size_t n = strnlen(path, URI_PATH_MAX);

	if (n == 0 || n == URI_PATH_MAX)
		return -EINVAL;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	return 0;
}

/* --- listen ------------------------------------------------------------- */

static int listen_one(int family, const struct sockaddr *sa, socklen_t salen, int backlog)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, err;

	if (fd < 0)
		return -errno;
	/* Without it a restarted destination cannot rebind while the previous
	 * run's connections sit in TIME_WAIT. */
	if (family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

static int listen_tcp(const MigUri *uri, int backlog)
{
	struct addrinfo *res, *ai;
	int ret = resolve(uri, AI_PASSIVE, &res);

	if (ret < 0)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = listen_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, backlog);
		if (ret >= 0)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

/* Whether a process listens on the socket at sun: a connect() is the only way to
 * tell. Only a refusal (nobody listening) makes it stale; a full backlog or any
 * doubt counts as live. */
static int socket_is_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), live;

	if (fd < 0)
		return -errno;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return live;
}

/* A socket file left by a crashed run would make bind() fail forever. Only
 * stale sockets are removed: a typo'd path must not delete someone's regular
 * file, nor a live socket (another migd's QMP socket, say) be taken over;
 * bind then reports EADDRINUSE instead. */
static int remove_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int live;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	if ((live = socket_is_live(sun)) != 0)
		return live < 0 ? live : -EADDRINUSE;
	if (unlink(sun->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int listen_unix(const MigUri *uri, int backlog)
{
	struct sockaddr_un sun;
	int ret = fill_sun(&sun, uri->path);

	if (ret == 0)
		ret = remove_stale(&sun);
	if (ret < 0)
		return ret;
	return listen_one(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), backlog);
}

int mig_uri_listen(const MigUri *uri, int backlog)
{
	if (!uri)
		return -EINVAL;
	switch (uri->kind) {
	case MIG_URI_TCP:
		return listen_tcp(uri, backlog);
	case MIG_URI_UNIX:
		return listen_unix(uri, backlog);
	case MIG_URI_FD:
	case MIG_URI_FILE:   /* a file is opened, not listened on */
		break;
	}
	return -EINVAL;
}

/* --- local address ------------------------------------------------------ */

static int fmt_result(int n, size_t len)
{
	if (n < 0)
		return -EINVAL;
	return (size_t)n >= len ? -ERANGE : 0;
}

/* The address really bound, a wildcard included: reporting a wildcard as
 * loopback told a remote source an address it cannot reach, and hid that the
 * port is open on every interface. */
static int local_in(const struct sockaddr_in *sin, char *buf, size_t len)
{
	char addr[INET_ADDRSTRLEN];
	struct in_addr a = sin->sin_addr;

	if (!inet_ntop(AF_INET, &a, addr, sizeof(addr)))
		return -errno;
	return fmt_result(snprintf(buf, len, "tcp:%s:%u", addr, ntohs(sin->sin_port)), len);
}

static int local_in6(const struct sockaddr_in6 *sin6, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	struct in6_addr a = sin6->sin6_addr;

	if (!inet_ntop(AF_INET6, &a, addr, sizeof(addr)))
		return -errno;
	return fmt_result(snprintf(buf, len, "tcp:[%s]:%u", addr, ntohs(sin6->sin6_port)), len);
}

static int local_un(const struct sockaddr_un *sun, socklen_t salen, char *buf, size_t len)
{
	size_t max = salen > offsetof(struct sockaddr_un, sun_path) ?
		     salen - offsetof(struct sockaddr_un, sun_path) : 0;
	size_t n = strnlen(sun->sun_path, max);

	/* Unnamed and abstract sockets have no path a "unix:" URI can name. */
	if (n == 0)
		return -EAFNOSUPPORT;
	return fmt_result(snprintf(buf, len, "unix:%.*s", (int)n, sun->sun_path), len);
}

int mig_uri_local(int listen_fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t salen = sizeof(ss);

	if (!buf || len == 0)
		return -EINVAL;
	if (getsockname(listen_fd, (struct sockaddr *)&ss, &salen) < 0)
		return -errno;
	switch (ss.ss_family) {
	case AF_INET:
		return local_in((const struct sockaddr_in *)&ss, buf, len);
	case AF_INET6:
		return local_in6((const struct sockaddr_in6 *)&ss, buf, len);
	case AF_UNIX:
		return local_un((const struct sockaddr_un *)&ss, salen, buf, len);
	}
	return -EAFNOSUPPORT;
}

/* --- connect ------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One deadline for the whole call, however many addresses are tried. -1 is
 * "no deadline", which is also what poll() takes to mean forever. */
static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms > 0 ? now_ms() + timeout_ms : -1;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int wait_connected(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int n, err = 0;

	do
		n = poll(&pfd, 1, remaining_ms(deadline));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

/* Nonblocking connect so the timeout is ours, not the kernel's SYN retry
 * schedule (which runs to minutes). */
static int start_connect(int fd, int family, const struct sockaddr *sa, socklen_t salen,
			 int64_t deadline)
{
	for (;;) {
		int ms;

		if (connect(fd, sa, salen) == 0)
			return 0;
		/* EINTR on a nonblocking connect leaves it in progress, like
		 * EINPROGRESS; calling connect() again would say EALREADY. */
		if (errno == EINPROGRESS || errno == EINTR)
			return wait_connected(fd, deadline);
		if (errno != EAGAIN || family != AF_UNIX)
			return -errno;
		ms = remaining_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		poll(NULL, 0, ms < 0 || ms > UNIX_RETRY_MS ? UNIX_RETRY_MS : ms);
	}
}

static int set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Migration streams are many small control frames between bulk pages; Nagle
 * would hold the control frames back waiting for an ACK. */
static int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static int connect_one(int family, const struct sockaddr *sa, socklen_t salen, int64_t deadline)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int ret;

	if (fd < 0)
		return -errno;
	ret = start_connect(fd, family, sa, salen, deadline);
	if (ret == 0)
		ret = set_blocking(fd);
	if (ret == 0 && family != AF_UNIX)
		ret = set_nodelay(fd);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Every resolved address is tried (a name may map to ::1 first while the
 * listener is on 127.0.0.1); the last error is the one reported. */
static int connect_tcp(const MigUri *uri, int64_t deadline)
{
	struct addrinfo *res, *ai;
	int ret = resolve(uri, 0, &res);

	if (ret < 0)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
		if (ret >= 0 || remaining_ms(deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

static int connect_unix(const MigUri *uri, int64_t deadline)
{
	struct sockaddr_un sun;
	int ret = fill_sun(&sun, uri->path);

	if (ret < 0)
		return ret;
	return connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), deadline);
}

int mig_uri_connect(const MigUri *uri, int timeout_ms)
{
	int64_t deadline = deadline_from(timeout_ms);

	if (!uri)
		return -EINVAL;
	switch (uri->kind) {
	case MIG_URI_TCP:
		return connect_tcp(uri, deadline);
	case MIG_URI_UNIX:
		return connect_unix(uri, deadline);
	case MIG_URI_FD:
	case MIG_URI_FILE:
		break;
	}
	return -EINVAL;
}

int mig_uri_adopt_fd(int fd)
{
	int type = 0, rc;
	socklen_t len = sizeof(type);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return errno == ENOTSOCK ? -ENOTSOCK : -errno;
	if (type != SOCK_STREAM)
		return -ENOTSOCK;
	if ((rc = set_blocking(fd)) < 0)
		return rc;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		return set_nodelay(fd);
	return 0;
}
