/* mig-rawxfer: the raw-TCP baseline of migbench. It answers "what does this machine's
 * loopback TCP stack do with N connections and no migration engine", moving bytes in the
 * same shape as a mig multifd channel (writev of 128 x 4 KiB from a pre-touched buffer),
 * so that migbench can put each mig figure next to the ceiling measured in the same run.
 *
 *   mig-rawxfer recv --listen tcp:HOST:PORT --conns N [--timeout S]
 *       prints the bound port on its first stdout line, receives until all N connections
 *       have closed, then prints {"bytes":B,"seconds":S,"gbps":G,"conns":N}, timed from the
 *       first byte received to the last. gbps is in GB/s (1e9 bytes per second), the unit
 *       of migbench's tables.
 *   mig-rawxfer send --connect tcp:HOST:PORT --conns N --bytes SIZE [--timeout S]
 *       sends SIZE bytes split evenly over N connections, one thread per connection, and
 *       prints the same JSON line as measured by the sender.
 *
 *   --distinct (both sides; recv then needs --bytes SIZE too): every byte comes from, and
 *       lands in, memory of its own, as when SIZE bytes of RAM move: the sender sends from
 *       a pre-touched SIZE-byte buffer and the receiver reads into a pre-touched one,
 *       instead of reusing one cache-hot 512 KiB buffer per connection. --hugetlb backs
 *       those buffers with 2M huge pages. docs/benchmarks.md says why migbench uses this.
 *
 * pingpong measures the floor of a postcopy page fetch instead: the time to ask for one
 * page and have all of it, over an otherwise idle link, with no engine in the way.
 *
 *   mig-rawxfer pingpong --listen tcp:HOST:PORT [--timeout S]
 *       the page server (mig's source): prints the bound port, takes one connection and
 *       answers every 16-byte request (be64 size, be64 sequence) with `size` bytes, the
 *       sequence number in their first 8, until the client closes.
 *   mig-rawxfer pingpong --connect tcp:HOST:PORT --sizes SIZE[,SIZE...] [--count N]
 *                        [--warmup W] [--timeout S]
 *       the faulting side (mig's destination): for each size, W untimed round trips and
 *       then N timed ones (defaults 10 and 200), one request in flight at a time; prints
 *       one line per size: {"size":B,"count":N,"median_us":M,"p10_us":..,"p90_us":..,
 *       "min_us":..,"max_us":..}, each round trip timed from before the request is
 *       written to after the last byte of the reply is read.
 *
 * Exit status: 0 all bytes moved, 1 a connection failed or timed out, 2 usage. */
#include "tools/bench/stats.h"
#include "channels/io.h"
#include <errno.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --congestion: set once in main, before any thread, then only read */
static const char *congestion;

/* An accepted connection inherits its listener's algorithm, so listeners get it too.
 * Checked in main: it cannot fail here. */
static void set_congestion(int fd)
{
	(void)mig_io_set_congestion(fd, congestion);
}

#define PAGE_BYTES 4096u
#define BATCH_IOVS 128u                          /* pages per writev: one multifd packet */
#define BATCH_BYTES (BATCH_IOVS * PAGE_BYTES)    /* 512 KiB */
#define RECV_BUF_BYTES (512u << 10)
#define MAX_CONNS 256
#define DEFAULT_TIMEOUT_S 300
#define PING_REQ_BYTES 16u                      /* as mig's return-path page request */
#define PING_MAX_SIZE (64u << 20)
#define PING_MAX_COUNT 100000
#define PING_MAX_SIZES 8
#define PING_MAX_REQUESTS (PING_MAX_SIZES * 2 * PING_MAX_COUNT)   /* bounds the server's loop */
#define HUGE_BYTES (2u << 20)

/* Where the bytes come from and go to: one reused hot buffer, or memory of their own. */
typedef struct MemOpts {
	gboolean distinct;
	gboolean hugetlb;
} MemOpts;

typedef struct Region {
	char *base;
	gsize len;      /* what the caller asked for */
	gsize maplen;   /* rounded up to the page size */
} Region;

/* Maps len bytes and touches every page (filled with fill), so page faults happen
 * before the clock starts, as they do for a guest's RAM and a pre-allocated destination. */
static gboolean region_map(Region *r, gsize len, const MemOpts *mo, int fill, char **error)
{
	gsize unit = mo->hugetlb ? HUGE_BYTES : PAGE_BYTES;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (mo->hugetlb ? MAP_HUGETLB : 0);

	r->len = len;
	r->maplen = (MAX(len, 1) + unit - 1) / unit * unit;
	r->base = mmap(NULL, r->maplen, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (r->base == MAP_FAILED) {
		r->base = NULL;
		*error = g_strdup_printf("mmap of %zu bytes%s: %s", r->maplen, mo->hugetlb ? " of 2M huge pages" : "",
					 g_strerror(errno));
		return FALSE;
	}
	if (!mo->hugetlb)   /* 4K pages, as mig's anon guests (they refuse THP for dirty tracking) */
		madvise(r->base, r->maplen, MADV_NOHUGEPAGE);
	memset(r->base, fill, r->maplen);
	return TRUE;
}

static void region_unmap(Region *r)
{
	if (r->base)
		munmap(r->base, r->maplen);
	r->base = NULL;
}

typedef struct Target {
	char *host;
	char *port;
} Target;

static void target_clear(Target *t)
{
	g_free(t->host);
	g_free(t->port);
}

/* "tcp:HOST:PORT", HOST possibly in brackets (IPv6). */
static gboolean parse_tcp_uri(const char *uri, Target *t)
{
	const char *rest, *colon;

	if (!uri || !g_str_has_prefix(uri, "tcp:"))
		return FALSE;
	rest = uri + 4;
	colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1])
		return FALSE;
	if (rest[0] == '[' && colon[-1] == ']')
		t->host = g_strndup(rest + 1, (gsize)(colon - rest - 2));
	else
		t->host = g_strndup(rest, (gsize)(colon - rest));
	t->port = g_strdup(colon + 1);
	return TRUE;
}

/* Bounds every blocking send/recv (and, on Linux, connect) of the socket. */
static void set_io_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void print_result(guint64 bytes, gint64 first_us, gint64 last_us, guint conns)
{
	double seconds = last_us > first_us ? (double)(last_us - first_us) / 1e6 : 0.0;

	printf("{\"bytes\":%" G_GUINT64_FORMAT ",\"seconds\":%.6f,\"gbps\":%.4f,\"conns\":%u}\n", bytes,
	       seconds, seconds > 0 ? (double)bytes / seconds / 1e9 : 0.0, conns);
	fflush(stdout);
}

/* ---- receiver ---------------------------------------------------------------------- */

typedef struct RecvConn {
	int fd;
	char *dest;                 /* --distinct: this connection's part of the target */
	gsize dest_len;
	gint64 deadline_us;
	guint64 bytes;
	gint64 first_us, last_us;   /* when the first and the last bytes arrived */
	char *error;
	GThread *thread;
} RecvConn;

static gpointer recv_conn_thread(gpointer opaque)
{
	RecvConn *rc = opaque;
	g_autofree char *hot = rc->dest ? NULL : g_malloc(RECV_BUF_BYTES);
	gsize at = 0;

	/* fault the buffer in before the first byte starts the clock; it is then reused */
	if (hot)
		memset(hot, 0, RECV_BUF_BYTES);
	for (;;) {
		char *buf = hot;

		if (rc->dest) {
			/* each byte to a place of its own; the part has room for the even split
			 * plus a block, so the wrap only guards against a sender sending more */
			if (at + RECV_BUF_BYTES > rc->dest_len)
				at = 0;
			buf = rc->dest + at;
		}
		/* Whole 512 KiB reads, as mig's destination reads whole packets: returning on
		 * every partial segment costs ~8% on loopback here, which would make the
		 * baseline a ceiling mig can beat. The first read returns at once so that the
		 * first byte's arrival is what starts the clock. */
		ssize_t n = recv(rc->fd, buf, RECV_BUF_BYTES, rc->bytes ? MSG_WAITALL : 0);
		gint64 now = g_get_monotonic_time();

		if (n > 0) {
			if (!rc->bytes)
				rc->first_us = now;
			rc->bytes += (guint64)n;
			at += (gsize)n;
			rc->last_us = now;
		} else if (n == 0) {
			break;
		} else if (errno != EINTR) {
			rc->error = g_strdup_printf("read: %s", errno == EAGAIN ? "timed out" : g_strerror(errno));
			break;
		}
		if (now > rc->deadline_us) {
			rc->error = g_strdup("timed out");
			break;
		}
	}
	close(rc->fd);
	return NULL;
}

static int listen_tcp(const Target *t, int backlog, guint *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;

	rc = getaddrinfo(t->host, t->port, &hints, &res);
	if (rc) {
		g_printerr("mig-rawxfer: %s:%s: %s\n", t->host, t->port, gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0)
			set_congestion(fd);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		g_printerr("mig-rawxfer: cannot listen on %s:%s: %s\n", t->host, t->port, g_strerror(errno));
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Accepts one connection, waiting until the deadline. */
static int accept_before(int lfd, gint64 deadline_us)
{
	for (int i = 0; i < 1000; i++) {
		gint64 left_ms = (deadline_us - g_get_monotonic_time()) / 1000;
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };

		if (left_ms <= 0)
			break;
		if (poll(&pfd, 1, (int)MIN(left_ms, G_MAXINT)) > 0)
			return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	errno = ETIMEDOUT;
	return -1;
}

static int run_recv(const Target *t, guint conns, guint64 total, const MemOpts *mo, int timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
	g_autofree RecvConn *rc = g_new0(RecvConn, conns);
	guint port = 0, accepted = 0, failed = 0;
	guint64 bytes = 0;
	gint64 first = G_MAXINT64, last = 0;
	gsize part = (gsize)(total / conns) + RECV_BUF_BYTES;
	Region dest = { 0 };
	int lfd;

	if (mo->distinct) {
		g_autofree char *error = NULL;

		if (!region_map(&dest, part * conns, mo, 0, &error)) {
			g_printerr("mig-rawxfer: receive buffer: %s\n", error);
			return 1;
		}
	}
	lfd = listen_tcp(t, (int)conns, &port);
	if (lfd < 0) {
		region_unmap(&dest);
		return 1;
	}
	printf("%u\n", port);
	fflush(stdout);
	for (; accepted < conns; accepted++) {
		g_autofree char *name = g_strdup_printf("rawxfer/r%u", accepted);
		RecvConn *c = &rc[accepted];

		c->fd = accept_before(lfd, deadline);
		if (c->fd < 0) {
			g_printerr("mig-rawxfer: accept %u of %u: %s\n", accepted + 1, conns, g_strerror(errno));
			break;
		}
		set_io_timeout(c->fd, timeout_s);
		c->deadline_us = deadline;
		if (dest.base) {
			c->dest = dest.base + (gsize)accepted * part;
			c->dest_len = part;
		}
		c->thread = g_thread_new(name, recv_conn_thread, c);
	}
	close(lfd);
	for (guint i = 0; i < accepted; i++) {
		g_thread_join(rc[i].thread);
		if (rc[i].error) {
			g_printerr("mig-rawxfer: connection %u: %s\n", i, rc[i].error);
			g_free(rc[i].error);
			failed++;
		}
		bytes += rc[i].bytes;
		if (rc[i].bytes) {
			first = MIN(first, rc[i].first_us);
			last = MAX(last, rc[i].last_us);
		}
	}
	print_result(bytes, bytes ? first : 0, last, conns);
	region_unmap(&dest);
	return failed || accepted < conns ? 1 : 0;
}

/* ---- sender ------------------------------------------------------------------------ */

typedef struct SendConn {
	const Target *target;
	guint index;
	int timeout_s;
	gint64 deadline_us;
	guint64 bytes;              /* this connection's share */
	gboolean zerocopy;          /* MSG_ZEROCOPY instead of writev */
	char *src;                  /* --distinct: this connection's share, pre-touched */
	guint64 zc_sent, zc_done, zc_copied; /* sends, completions, completions the kernel copied */
	gint64 start_us, end_us;    /* connected, and last byte handed to the kernel */
	char *error;
	GThread *thread;
} SendConn;

static int connect_tcp(const Target *t, int timeout_s, char **error)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int fd = -1, off = 0, rc, e = 0;

	rc = getaddrinfo(t->host, t->port, &hints, &res);
	if (rc) {
		*error = g_strdup_printf("%s:%s: %s", t->host, t->port, gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0)
			set_congestion(fd);
		if (fd < 0) {
			e = errno;
			continue;
		}
		set_io_timeout(fd, timeout_s);
		/* Nagle stays on, as on a mig channel: full batches make it moot anyway */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof(off));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		*error = g_strdup_printf("connect %s:%s: %s", t->host, t->port, g_strerror(e));
	return fd;
}

/* Points up to BATCH_IOVS iovecs at consecutive pages of buf, covering len bytes. */
static guint fill_batch(struct iovec *iov, char *buf, gsize len)
{
	guint n = 0;

	for (gsize off = 0; off < len; off += PAGE_BYTES, n++) {
		iov[n].iov_base = buf + off;
		iov[n].iov_len = MIN(PAGE_BYTES, len - off);
	}
	return n;
}

/* writev until the whole batch is out, stepping over what a short write took. */
static gboolean writev_all(int fd, struct iovec *iov, guint cnt, gint64 deadline_us, char **error)
{
	while (cnt) {
		ssize_t n = writev(fd, iov, (int)cnt);

		if (n < 0) {
			if (errno == EINTR && g_get_monotonic_time() < deadline_us)
				continue;
			*error = g_strdup_printf("writev: %s", errno == EAGAIN ? "timed out" : g_strerror(errno));
			return FALSE;
		}
		for (; cnt && (size_t)n >= iov->iov_len; cnt--, iov++)
			n -= (ssize_t)iov->iov_len;
		if (cnt) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return TRUE;
}

/* MSG_ZEROCOPY completions arrive on the error queue as ranges of send calls; until
 * they are read the kernel holds the pages pinned and charges optmem, so drain them
 * as we go. SO_EE_CODE_ZEROCOPY_COPIED says the kernel copied after all (loopback
 * always does: the receiver may not keep references to the sender's pages). */
static void zc_drain(int fd, SendConn *sc)
{
	for (;;) {
		char control[128];
		struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
		struct cmsghdr *cm;

		if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(cm);

			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			sc->zc_done += (guint64)(ee->ee_data - ee->ee_info) + 1;
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				sc->zc_copied += (guint64)(ee->ee_data - ee->ee_info) + 1;
		}
	}
}

static gboolean sendmsg_zc_all(int fd, SendConn *sc, struct iovec *iov, guint cnt, char **error)
{
	while (cnt) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
		ssize_t n = sendmsg(fd, &msg, MSG_ZEROCOPY);

		if (n < 0) {
			if (errno == ENOBUFS || errno == EINTR) {   /* optmem full: reap, retry */
				zc_drain(fd, sc);
				if (g_get_monotonic_time() < sc->deadline_us)
					continue;
			}
			*error = g_strdup_printf("sendmsg(MSG_ZEROCOPY): %s", g_strerror(errno));
			return FALSE;
		}
		sc->zc_sent++;
		zc_drain(fd, sc);
		for (; cnt && (size_t)n >= iov->iov_len; cnt--, iov++)
			n -= (ssize_t)iov->iov_len;
		if (cnt) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return TRUE;
}

static gpointer send_conn_thread(gpointer opaque)
{
	SendConn *sc = opaque;
	g_autofree char *hot = sc->src ? NULL : g_malloc(BATCH_BYTES);
	struct iovec iov[BATCH_IOVS];
	guint64 left = sc->bytes;
	char *buf = sc->src ? sc->src : hot;
	int fd;

	/* pre-touched and not zero, like guest pages that have to be sent */
	if (hot)
		memset(hot, 0x5a + (int)sc->index, BATCH_BYTES);
	fd = connect_tcp(sc->target, sc->timeout_s, &sc->error);
	if (fd < 0)
		return NULL;
	if (sc->zerocopy) {
		int one = 1;

		if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
			sc->error = g_strdup_printf("SO_ZEROCOPY: %s (kernel lacks MSG_ZEROCOPY?)", g_strerror(errno));
			close(fd);
			return NULL;
		}
	}
	sc->start_us = g_get_monotonic_time();
	while (left) {
		gsize len = (gsize)MIN(left, BATCH_BYTES);

		if (g_get_monotonic_time() > sc->deadline_us) {
			sc->error = g_strdup("timed out");
			break;
		}
		if (sc->zerocopy ? !sendmsg_zc_all(fd, sc, iov, fill_batch(iov, buf, len), &sc->error)
				 : !writev_all(fd, iov, fill_batch(iov, buf, len), sc->deadline_us, &sc->error))
			break;
		left -= len;
		if (sc->src)
			buf += len;
	}
	sc->end_us = g_get_monotonic_time();
	close(fd);
	return NULL;
}

static int run_send(const Target *t, guint conns, guint64 total, const MemOpts *mo, int timeout_s, gboolean zerocopy)
{
	g_autofree SendConn *sc = g_new0(SendConn, conns);
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
	gint64 first = G_MAXINT64, last = 0;
	guint failed = 0;
	Region src = { 0 };
	gsize off = 0;

	/* all of it touched before any connection starts, so no share's first byte waits on
	 * another share's page faults */
	if (mo->distinct) {
		g_autofree char *error = NULL;

		if (!region_map(&src, (gsize)total, mo, 0x5a, &error)) {
			g_printerr("mig-rawxfer: send buffer: %s\n", error);
			return 1;
		}
	}
	for (guint i = 0; i < conns; i++) {
		g_autofree char *name = g_strdup_printf("rawxfer/s%u", i);

		sc[i].target = t;
		sc[i].index = i;
		sc[i].timeout_s = timeout_s;
		sc[i].deadline_us = deadline;
		sc[i].zerocopy = zerocopy;
		/* even split; the first total % conns connections carry one byte more */
		sc[i].bytes = total / conns + (i < total % conns);
		if (src.base) {
			sc[i].src = src.base + off;
			off += (gsize)sc[i].bytes;
		}
		sc[i].thread = g_thread_new(name, send_conn_thread, &sc[i]);
	}
	for (guint i = 0; i < conns; i++) {
		g_thread_join(sc[i].thread);
		if (sc[i].error) {
			g_printerr("mig-rawxfer: connection %u: %s\n", i, sc[i].error);
			g_free(sc[i].error);
			failed++;
			continue;
		}
		first = MIN(first, sc[i].start_us);
		last = MAX(last, sc[i].end_us);
		if (zerocopy)
			g_printerr("mig-rawxfer: connection %u: MSG_ZEROCOPY sends %" G_GUINT64_FORMAT ", completions %"
				   G_GUINT64_FORMAT " (kernel copied %" G_GUINT64_FORMAT ")\n",
				   i, sc[i].zc_sent, sc[i].zc_done, sc[i].zc_copied);
	}
	if (!failed)
		print_result(total, first, last, conns);
	region_unmap(&src);
	return failed ? 1 : 0;
}

/* ---- pingpong ---------------------------------------------------------------------- */

/* Round trips of one small request each: Nagle would hold a request (and a reply's
 * tail) back until the previous segment is acknowledged, which is not what a page
 * fetch on mig's return path and preempt channel sees. */
static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static gint64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * G_GINT64_CONSTANT(1000000000) + ts.tv_nsec;
}

/* Whole-buffer I/O; the socket's SO_RCVTIMEO/SO_SNDTIMEO bound each call, and each call
 * moves at least one byte or ends the loop, so the count of calls is bounded by len. */
static gboolean send_all(int fd, const char *p, gsize len, char **error)
{
	for (gsize done = 0; done < len;) {
		ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error = g_strdup_printf("send: %s", n < 0 && errno == EAGAIN ? "timed out" : g_strerror(errno));
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

/* FALSE with *error NULL: the peer closed before the first byte (a clean end). */
static gboolean recv_all(int fd, char *p, gsize len, char **error)
{
	for (gsize done = 0; done < len;) {
		ssize_t n = recv(fd, p + done, len - done, MSG_WAITALL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && done == 0)
			return FALSE;
		if (n <= 0) {
			*error = n == 0 ? g_strdup_printf("connection closed after %zu of %zu bytes", done, len)
				       : g_strdup_printf("recv: %s", errno == EAGAIN ? "timed out" : g_strerror(errno));
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

static int run_ping_server(const Target *t, int timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
	g_autofree char *buf = NULL, *error = NULL;
	gsize buf_len = 0;
	guint port = 0;
	guint64 served = 0;
	int lfd = listen_tcp(t, 1, &port), fd;

	if (lfd < 0)
		return 1;
	printf("%u\n", port);
	fflush(stdout);
	fd = accept_before(lfd, deadline);
	close(lfd);
	if (fd < 0) {
		g_printerr("mig-rawxfer: accept: %s\n", g_strerror(errno));
		return 1;
	}
	set_io_timeout(fd, timeout_s);
	set_nodelay(fd);
	for (; served < PING_MAX_REQUESTS && g_get_monotonic_time() < deadline; served++) {
		guint64 req[2], size, seq;

		if (!recv_all(fd, (char *)req, sizeof(req), &error))
			break;
		size = GUINT64_FROM_BE(req[0]);
		seq = req[1];   /* echoed as it came, big-endian */
		if (size < 8 || size > PING_MAX_SIZE) {
			error = g_strdup_printf("request %" G_GUINT64_FORMAT " asks for %" G_GUINT64_FORMAT " bytes",
						served, size);
			break;
		}
		if (size > buf_len) {
			/* pre-touched and not zero, like a guest page the source sends */
			buf = g_realloc(buf, size);
			memset(buf, 0x5a, size);
			buf_len = size;
		}
		memcpy(buf, &seq, sizeof(seq));
		if (!send_all(fd, buf, size, &error))
			break;
	}
	close(fd);
	if (!error && served == PING_MAX_REQUESTS)
		error = g_strdup("too many requests");
	else if (!error && g_get_monotonic_time() >= deadline)
		error = g_strdup("timed out");
	if (error) {
		g_printerr("mig-rawxfer: pingpong server: %s\n", error);
		return 1;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank on a sorted copy (n > 0), as the engine's x-postcopy-latency percentiles. */
static double pct(const double *sorted, guint n, guint p)
{
	guint64 rank = ((guint64)n * p + 99) / 100;

	return sorted[MAX(rank, 1) - 1];
}

static gboolean ping_size(int fd, guint64 size, guint count, guint warmup, gint64 deadline_us, guint64 *seq,
			  char **error)
{
	g_autofree char *buf = g_malloc(size);
	g_autofree double *us = g_new0(double, count);

	memset(buf, 0, size);   /* faulted in before the first timed reply lands in it */
	for (guint i = 0; i < warmup + count; i++) {
		guint64 n = ++*seq;   /* not inside the byte-swap macro: it evaluates twice */
		guint64 req[2] = { GUINT64_TO_BE(size), GUINT64_TO_BE(n) }, got;
		gint64 t0;

		if (g_get_monotonic_time() > deadline_us) {
			*error = g_strdup("timed out");
			return FALSE;
		}
		t0 = now_ns();
		if (!send_all(fd, (const char *)req, sizeof(req), error))
			return FALSE;
		if (!recv_all(fd, buf, size, error)) {
			if (!*error)
				*error = g_strdup("the server closed the connection");
			return FALSE;
		}
		if (i >= warmup)
			us[i - warmup] = (double)(now_ns() - t0) / 1e3;
		memcpy(&got, buf, sizeof(got));
		if (got != req[1]) {
			*error = g_strdup_printf("reply %" G_GUINT64_FORMAT " answers another request", *seq);
			return FALSE;
		}
	}
	qsort(us, count, sizeof(*us), cmp_double);
	printf("{\"size\":%" G_GUINT64_FORMAT ",\"count\":%u,\"median_us\":%.2f,\"p10_us\":%.2f,\"p90_us\":%.2f,"
	       "\"min_us\":%.2f,\"max_us\":%.2f}\n", size, count, bench_median(us, count), pct(us, count, 10),
	       pct(us, count, 90), us[0], us[count - 1]);
	fflush(stdout);
	return TRUE;
}

static int run_ping_client(const Target *t, const guint64 *sizes, guint nsizes, guint count, guint warmup,
			   int timeout_s)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
	g_autofree char *error = NULL;
	guint64 seq = 0;
	gboolean ok = TRUE;
	int fd = connect_tcp(t, timeout_s, &error);

	if (fd < 0) {
		g_printerr("mig-rawxfer: %s\n", error);
		return 1;
	}
	set_nodelay(fd);
	for (guint i = 0; ok && i < nsizes; i++)
		ok = ping_size(fd, sizes[i], count, warmup, deadline, &seq, &error);
	close(fd);
	if (!ok) {
		g_printerr("mig-rawxfer: pingpong: %s\n", error);
		return 1;
	}
	return 0;
}

/* "4K,2M": up to PING_MAX_SIZES sizes of 8 bytes to 64 MiB. */
static guint parse_sizes(const char *s, guint64 *sizes)
{
	g_auto(GStrv) parts = s ? g_strsplit(s, ",", -1) : NULL;
	guint n = 0;

	if (!parts || !parts[0] || g_strv_length(parts) > PING_MAX_SIZES)
		return 0;
	for (; parts[n]; n++) {
		if (!bench_parse_size(parts[n], &sizes[n]) || sizes[n] < 8 || sizes[n] > PING_MAX_SIZE)
			return 0;
	}
	return n;
}

/* ---- command line ------------------------------------------------------------------ */

static int usage(const char *why)
{
	if (why)
		g_printerr("mig-rawxfer: %s\n", why);
	g_printerr("usage: mig-rawxfer recv --listen tcp:HOST:PORT --conns N [--distinct --bytes SIZE [--hugetlb]]"
		   " [--timeout S]\n"
		   "       mig-rawxfer send --connect tcp:HOST:PORT --conns N --bytes SIZE [--distinct [--hugetlb]]"
		   " [--timeout S]\n"
		   "       mig-rawxfer pingpong --listen tcp:HOST:PORT [--timeout S]\n"
		   "       mig-rawxfer pingpong --connect tcp:HOST:PORT --sizes SIZE[,SIZE...] [--count N]"
		   " [--warmup W] [--timeout S]\n");
	return 2;
}

int main(int argc, char **argv)
{
	g_autofree char *listen = NULL, *connect_to = NULL, *bytes = NULL, *sizes_arg = NULL;
	gint conns = 1, timeout_s = DEFAULT_TIMEOUT_S, count = 200, warmup = 10;
	gboolean zerocopy = FALSE;
	g_autofree char *cc = NULL;
	MemOpts mo = { 0 };
	GOptionEntry entries[] = {
		{ "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "recv, pingpong server: where to listen", "tcp:HOST:PORT" },
		{ "connect", 0, 0, G_OPTION_ARG_STRING, &connect_to, "send, pingpong client: where to connect",
		  "tcp:HOST:PORT" },
		{ "conns", 0, 0, G_OPTION_ARG_INT, &conns, "Number of connections (default 1)", "N" },
		{ "bytes", 0, 0, G_OPTION_ARG_STRING, &bytes, "send: total bytes, suffix K/M/G allowed", "SIZE" },
		{ "zerocopy", 0, 0, G_OPTION_ARG_NONE, &zerocopy, "send: MSG_ZEROCOPY instead of writev", NULL },
		{ "congestion", 0, 0, G_OPTION_ARG_STRING, &cc,
		  "TCP congestion control of every connection (default: the system's), as mig's x-tcp-congestion", "NAME" },
		{ "distinct", 0, 0, G_OPTION_ARG_NONE, &mo.distinct,
		  "send, recv: every byte from and to memory of its own (pre-touched SIZE buffers)", NULL },
		{ "hugetlb", 0, 0, G_OPTION_ARG_NONE, &mo.hugetlb, "with --distinct: 2M huge pages", NULL },
		{ "sizes", 0, 0, G_OPTION_ARG_STRING, &sizes_arg, "pingpong client: reply sizes, e.g. 4K,2M", "LIST" },
		{ "count", 0, 0, G_OPTION_ARG_INT, &count, "pingpong client: timed round trips per size (default 200)",
		  "N" },
		{ "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "pingpong client: untimed round trips first (default 10)",
		  "W" },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "Give up after S seconds (default 300)", "S" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("recv|send|pingpong - raw TCP baselines");
	g_autoptr(GError) err = NULL;
	Target t = { 0 };
	guint64 total = 0, sizes[PING_MAX_SIZES];
	guint nsizes = 0;
	gboolean is_recv, is_ping, ping_server;
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage(err->message);
	if (argc != 2 || (strcmp(argv[1], "recv") && strcmp(argv[1], "send") && strcmp(argv[1], "pingpong")))
		return usage("expected exactly one of recv, send, pingpong");
	is_recv = !strcmp(argv[1], "recv");
	is_ping = !strcmp(argv[1], "pingpong");
	ping_server = is_ping && listen != NULL;
	if (cc && *cc) {
		int e = mig_io_congestion_usable(cc);

		if (e < 0) {
			g_printerr("mig-rawxfer: --congestion %s: %s\n", cc, g_strerror(-e));
			return 2;
		}
		congestion = cc;
	}
	if (conns < 1 || conns > MAX_CONNS || timeout_s < 1)
		return usage("--conns must be 1..256 and --timeout positive");
	if (is_ping) {
		if (!listen == !connect_to)
			return usage("pingpong needs exactly one of --listen (server) and --connect (client)");
		if (!ping_server && (!(nsizes = parse_sizes(sizes_arg, sizes)) || count < 1 || count > PING_MAX_COUNT ||
				     warmup < 0 || warmup > PING_MAX_COUNT))
			return usage("pingpong --connect needs --sizes (1..8 sizes of 8 bytes to 64M), --count 1..100000 "
				     "and --warmup 0..100000");
	}
	if (!parse_tcp_uri(is_recv || ping_server ? listen : connect_to, &t))
		return usage(is_recv || ping_server ? "--listen tcp:HOST:PORT is required"
						    : "--connect tcp:HOST:PORT is required");
	if (!is_recv && !is_ping && !bench_parse_size(bytes, &total)) {
		target_clear(&t);
		return usage("send needs --bytes SIZE (a positive size)");
	}
	if (mo.hugetlb && !mo.distinct) {
		target_clear(&t);
		return usage("--hugetlb goes with --distinct");
	}
	if (is_recv && mo.distinct && !bench_parse_size(bytes, &total)) {
		target_clear(&t);
		return usage("recv --distinct needs --bytes SIZE (what the sender sends)");
	}
	if (mo.distinct && (is_ping || total > ((guint64)64 << 30))) {
		target_clear(&t);
		return usage("--distinct is for send and recv, up to 64G");
	}
	/* a receiver that went away must show up as an error, not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (ping_server)
		rc = run_ping_server(&t, timeout_s);
	else if (is_ping)
		rc = run_ping_client(&t, sizes, nsizes, (guint)count, (guint)warmup, timeout_s);
	else
		rc = is_recv ? run_recv(&t, (guint)conns, total, &mo, timeout_s)
			     : run_send(&t, (guint)conns, total, &mo, timeout_s, zerocopy);
	target_clear(&t);
	return rc;
}
