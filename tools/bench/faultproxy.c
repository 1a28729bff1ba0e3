/* migbench faults' proxy; see faultproxy.h. */
#include "tools/bench/faultproxy.h"
#include "channels/wire.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FPROXY_TICK_MS 100       /* longest a thread waits before looking at `closing` */
#define FPROXY_START_MS 10000    /* the acceptor's listener, in its namespace */
#define CHUNK (256 << 10)
#define NETNS_DIR "/var/run/netns"

typedef struct FpConn {
	int fd[2];                  /* 0: to the source, 1: to the destination */
	gboolean main;
} FpConn;

struct BenchFProxy {
	BenchFProxySpec spec;       /* the strings are ours */
	int lfd;
	guint16 port;
	GMutex lock;
	GCond cond;
	gboolean started, closing, held, hold_hit, corrupt_next, corrupted, main_taken;
	GError *start_err;
	GThread *acceptor;
	GPtrArray *conns;           /* FpConn * */
	GPtrArray *openers;         /* GThread *: one per connection, its hello (the acceptor's) */
	GPtrArray *pumps;           /* GThread *, under lock (the openers add them) */
};

typedef struct FpPump {
	BenchFProxy *p;
	FpConn *c;
	int dir;                    /* 0: source to destination */
} FpPump;

static gboolean fp_closing(BenchFProxy *p)
{
	gboolean c;

	g_mutex_lock(&p->lock);
	c = p->closing;
	g_mutex_unlock(&p->lock);
	return c;
}

/* Waits until fd is ready for events; FALSE once the proxy closes. */
static gboolean fp_wait_fd(BenchFProxy *p, int fd, short events)
{
	while (!fp_closing(p)) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int n = poll(&pfd, 1, FPROXY_TICK_MS);

		if (n > 0 || (n < 0 && errno != EINTR))
			return TRUE;
	}
	return FALSE;
}

/* Some bytes (> 0), 0 at EOF, -1 on an error or once the proxy closes. */
static ssize_t fp_read_some(BenchFProxy *p, int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);

		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if (!fp_wait_fd(p, fd, POLLIN))
			return -1;
	}
}

static gboolean fp_read_exact(BenchFProxy *p, int fd, guint8 *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = fp_read_some(p, fd, buf + got, n - got);

		if (r <= 0)
			return FALSE;
		got += (size_t)r;
	}
	return TRUE;
}

/* Forwards, unless the proxy holds: then it waits for the release first. */
static gboolean fp_write_all(BenchFProxy *p, int fd, const guint8 *buf, size_t n)
{
	gboolean closing;

	g_mutex_lock(&p->lock);
	while (p->held && !p->closing)
		g_cond_wait_until(&p->cond, &p->lock, g_get_monotonic_time() + FPROXY_TICK_MS * 1000);
	closing = p->closing;
	g_mutex_unlock(&p->lock);
	if (closing)   /* held bytes die with the proxy: a reset must not let them out first */
		return FALSE;
	for (size_t off = 0; off < n;) {
		ssize_t w = send(fd, buf + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return FALSE;
		if (!fp_wait_fd(p, fd, POLLOUT))
			return FALSE;
	}
	return TRUE;
}

static void fp_hold(BenchFProxy *p)
{
	g_mutex_lock(&p->lock);
	p->held = p->hold_hit = TRUE;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
}

/* The main channel one way, frame by frame: the points of hold and corrupt are frames. */
static gboolean fp_frames(BenchFProxy *p, int in, int out, int dir)
{
	g_autofree guint8 *buf = g_malloc(CHUNK);

	if (dir == 1) {   /* the hello reply first */
		guint8 head[MIG_HELLO_REPLY_HDR_LEN];
		size_t len;

		if (!fp_read_exact(p, in, head, sizeof(head)))
			return FALSE;
		len = mig_get_be16(head + 8);   /* msglen; the proxy forwards whatever it says */
		if (!fp_read_exact(p, in, buf, len) || !fp_write_all(p, out, head, sizeof(head)) ||
		    !fp_write_all(p, out, buf, len))
			return FALSE;
	}
	for (;;) {
		guint8 head[MIG_FRAME_HDR_LEN];
		MigFrameHdr h;
		guint32 left;
		int type;
		gboolean bad = FALSE;

		if (!fp_read_exact(p, in, head, sizeof(head)))
			return FALSE;
		mig_frame_hdr_unpack(head, &h);
		left = h.len;
		type = h.type;
		if (dir == 0) {
			g_mutex_lock(&p->lock);
			bad = p->corrupt_next || type == p->spec.corrupt_at;
			p->corrupt_next = FALSE;
			g_mutex_unlock(&p->lock);
		}
		if (bad) {
			h.type = FPROXY_BAD_TYPE;
			mig_frame_hdr_pack(&h, head);
		}
		if (!fp_write_all(p, out, head, sizeof(head)))
			return FALSE;
		while (left) {
			ssize_t r = fp_read_some(p, in, buf, MIN(left, CHUNK));

			if (r <= 0 || !fp_write_all(p, out, buf, (size_t)r))
				return FALSE;
			left -= (guint32)r;
		}
		if (bad) {
			g_mutex_lock(&p->lock);
			p->corrupted = TRUE;
			g_cond_broadcast(&p->cond);
			g_mutex_unlock(&p->lock);
		}
		if (type == p->spec.hold_at)
			fp_hold(p);
	}
}

static gboolean fp_raw(BenchFProxy *p, int in, int out)
{
	g_autofree guint8 *buf = g_malloc(CHUNK);

	for (;;) {
		ssize_t r = fp_read_some(p, in, buf, CHUNK);

		if (r == 0)
			return TRUE;
		if (r < 0 || !fp_write_all(p, out, buf, (size_t)r))
			return FALSE;
	}
}

static gpointer fp_pump(gpointer data)
{
	FpPump *pu = data;
	BenchFProxy *p = pu->p;
	int in = pu->c->fd[pu->dir], out = pu->c->fd[!pu->dir];
	gboolean eof = pu->c->main ? fp_frames(p, in, out, pu->dir) : fp_raw(p, in, out);

	/* a peer's FIN goes on as a FIN; anything else ends the connection both ways */
	if (!fp_closing(p)) {
		if (eof)
			shutdown(out, SHUT_WR);
		else {
			shutdown(in, SHUT_RDWR);
			shutdown(out, SHUT_RDWR);
		}
	}
	g_free(pu);
	return NULL;
}

/* A non-blocking connection to the destination, or -1. */
static int fp_connect(BenchFProxy *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->spec.up_port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (fd < 0 || inet_pton(AF_INET, p->spec.up_addr, &sa.sin_addr) != 1)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		goto fail;
	if (!fp_wait_fd(p, fd, POLLOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr)
		goto fail;
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static void fp_start_pumps(BenchFProxy *p, FpConn *c)
{
	for (int dir = 0; dir < 2; dir++) {
		FpPump *pu = g_new0(FpPump, 1);

		pu->p = p;
		pu->c = c;
		pu->dir = dir;
		g_mutex_lock(&p->lock);
		g_ptr_array_add(p->pumps, g_thread_new("migbench/proxy", fp_pump, pu));
		g_mutex_unlock(&p->lock);
	}
}

typedef struct FpOpen {
	BenchFProxy *p;
	FpConn *c;
} FpOpen;

/* A connection's hello, on its own thread: a source may connect several channels and
 * say hello on one only once another is answered (a recovery's channels wait for the
 * main one's), so a hello not yet sent must not hold up the next accept. */
static gpointer fp_opener(gpointer data)
{
	FpOpen *o = data;
	BenchFProxy *p = o->p;
	FpConn *c = o->c;
	guint8 hello[MIG_HELLO_LEN];

	g_free(o);
	if (!fp_read_exact(p, c->fd[0], hello, sizeof(hello)))
		return NULL;
	g_mutex_lock(&p->lock);
	c->main = mig_get_be16(hello + 6) == MIG_CHAN_MAIN && !p->main_taken;   /* 6:2 type */
	p->main_taken |= c->main;
	g_mutex_unlock(&p->lock);
	if (c->main && p->spec.corrupt_hello)
		hello[0] ^= 0xff;
	if (!fp_write_all(p, c->fd[1], hello, sizeof(hello)))
		return NULL;
	if (c->main && p->spec.corrupt_hello) {
		g_mutex_lock(&p->lock);
		p->corrupted = TRUE;
		g_cond_broadcast(&p->cond);
		g_mutex_unlock(&p->lock);
	}
	fp_start_pumps(p, c);
	if (c->main && p->spec.hold_at == FPROXY_HELLO)
		fp_hold(p);
	return NULL;
}

/* The connection to the destination is made here, in the namespace (setns holds for
 * the acceptor's thread only); the hello is read on a thread of its own. */
static void fp_accept_one(BenchFProxy *p, int cfd)
{
	FpConn *c = g_new0(FpConn, 1);
	FpOpen *o;

	c->fd[0] = cfd;
	c->fd[1] = fp_connect(p);
	g_mutex_lock(&p->lock);
	g_ptr_array_add(p->conns, c);   /* closed by bench_fproxy_free, whatever happens here */
	g_mutex_unlock(&p->lock);
	if (c->fd[1] < 0) {
		/* as the destination's refusal would: a RST, not a connection left silent */
		struct linger rst = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(cfd);
		c->fd[0] = -1;
		return;
	}
	o = g_new0(FpOpen, 1);
	o->p = p;
	o->c = c;
	g_ptr_array_add(p->openers, g_thread_new("migbench/proxy", fp_opener, o));
}

static gboolean fp_listen(BenchFProxy *p, GError **err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	if (p->spec.netns) {
		g_autofree char *path = g_build_filename(NETNS_DIR, p->spec.netns, NULL);
		int ns = open(path, O_RDONLY | O_CLOEXEC);
		int rc = ns < 0 ? -1 : setns(ns, CLONE_NEWNET);   /* this thread only */

		if (ns >= 0)
			close(ns);
		if (rc < 0) {
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "proxy: enter %s: %s", path,
				    g_strerror(errno));
			return FALSE;
		}
	}
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(p->lfd, 16) < 0 ||
	    getsockname(p->lfd, (struct sockaddr *)&sa, &len) < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "proxy: listen: %s", g_strerror(errno));
		return FALSE;
	}
	p->port = ntohs(sa.sin_port);
	return TRUE;
}

/* Opens its sockets in the namespace (setns holds for this thread only), then accepts. */
static gpointer fp_acceptor(gpointer data)
{
	BenchFProxy *p = data;
	GError *err = NULL;
	gboolean ok = fp_listen(p, &err);

	g_mutex_lock(&p->lock);
	p->started = TRUE;
	p->start_err = err;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
	while (ok && fp_wait_fd(p, p->lfd, POLLIN)) {
		int cfd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= 0)
			fp_accept_one(p, cfd);
	}
	return NULL;
}

BenchFProxy *bench_fproxy_new(const BenchFProxySpec *spec, GError **err)
{
	BenchFProxy *p = g_new0(BenchFProxy, 1);
	gint64 end = g_get_monotonic_time() + (gint64)FPROXY_START_MS * 1000;

	p->spec = *spec;
	p->spec.netns = g_strdup(spec->netns);
	p->spec.up_addr = g_strdup(spec->up_addr);
	p->lfd = -1;
	g_mutex_init(&p->lock);
	g_cond_init(&p->cond);
	p->conns = g_ptr_array_new();
	p->openers = g_ptr_array_new();
	p->pumps = g_ptr_array_new();
	p->acceptor = g_thread_new("migbench/proxy", fp_acceptor, p);
	g_mutex_lock(&p->lock);
	while (!p->started && g_cond_wait_until(&p->cond, &p->lock, end))
		;
	g_mutex_unlock(&p->lock);
	if (!p->started || p->start_err) {
		if (p->start_err)
			g_propagate_error(err, g_steal_pointer(&p->start_err));
		else
			g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "proxy: no listener in %d s",
				    FPROXY_START_MS / 1000);
		bench_fproxy_free(p, FALSE);
		return NULL;
	}
	return p;
}

guint16 bench_fproxy_port(const BenchFProxy *p)
{
	return p->port;
}

static gboolean fp_wait_flag(BenchFProxy *p, const gboolean *flag, int timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	gboolean v;

	g_mutex_lock(&p->lock);
	while (!*flag && g_cond_wait_until(&p->cond, &p->lock, end))
		;
	v = *flag;
	g_mutex_unlock(&p->lock);
	return v;
}

gboolean bench_fproxy_wait_held(BenchFProxy *p, int timeout_ms)
{
	return fp_wait_flag(p, &p->hold_hit, timeout_ms);
}

gboolean bench_fproxy_wait_corrupted(BenchFProxy *p, int timeout_ms)
{
	return fp_wait_flag(p, &p->corrupted, timeout_ms);
}

void bench_fproxy_release(BenchFProxy *p)
{
	g_mutex_lock(&p->lock);
	p->held = FALSE;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
}

void bench_fproxy_corrupt_next(BenchFProxy *p)
{
	g_mutex_lock(&p->lock);
	p->corrupt_next = TRUE;
	g_mutex_unlock(&p->lock);
}

void bench_fproxy_free(BenchFProxy *p, gboolean reset)
{
	if (!p)
		return;
	g_mutex_lock(&p->lock);
	p->closing = TRUE;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
	/* every thread sees `closing` within a tick; the acceptor first, so no opener is
	 * added, then the openers, so no pump is */
	g_thread_join(p->acceptor);
	for (guint i = 0; i < p->openers->len; i++)
		g_thread_join(g_ptr_array_index(p->openers, i));
	for (guint i = 0; i < p->pumps->len; i++)
		g_thread_join(g_ptr_array_index(p->pumps, i));
	for (guint i = 0; i < p->conns->len; i++) {
		FpConn *c = g_ptr_array_index(p->conns, i);

		for (int k = 0; k < 2; k++) {
			struct linger rst = { .l_onoff = 1, .l_linger = 0 };

			if (c->fd[k] < 0)
				continue;
			if (reset)   /* a close with a zero linger sends a RST, never a FIN */
				setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			else
				shutdown(c->fd[k], SHUT_RDWR);
			close(c->fd[k]);
		}
		g_free(c);
	}
	if (p->lfd >= 0)
		close(p->lfd);
	g_ptr_array_unref(p->openers);
	g_ptr_array_unref(p->pumps);
	g_ptr_array_unref(p->conns);
	g_cond_clear(&p->cond);
	g_mutex_clear(&p->lock);
	g_free((char *)p->spec.netns);
	g_free((char *)p->spec.up_addr);
	g_free(p);
}
