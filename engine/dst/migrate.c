/* The destination: a listener thread that admits channels by their typed hello, and a
 * loader thread that reads the main channel straight into guest memory. */
#include "engine/dst/dst_int.h"
#include "engine/filelock.h"
#include "engine/dst/fileload.h"
#include "engine/dst/start.h"
#include "engine/dst/multifd.h"
#include "engine/dst/postcopy.h"
#include "engine/dst/breakhuge.h"
#include "engine/dst/devlane.h"
#include "engine/dst/recover.h"
#include "engine/bitmap.h"
#include "engine/urgency.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/wire.h"
#include "channels/io.h"
#include "channels/uri.h"
#include "channels/tls.h"
#include "engine/tlscreds.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdarg.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The longest a connection may take to say hello (its TLS handshake, if any, and the
 * hello's bytes): shorter still when x-channel-timeout is (hello_ms). Openers are few
 * (MIG_DST_OPENERS), so a flood of slow peers must not hold them long whatever the
 * timeout says. */
#define HELLO_TIMEOUT_MS 2000
/* Connections saying hello at once (mig/dst/open threads); more wait in the backlog. */
#define MIG_DST_OPENERS 8
/* The listen backlog: connections the kernel completes while every opener is busy. The
 * kernel holds at most this many (plus one) in the accept queue, costing migd nothing;
 * further SYNs are dropped and the peer's TCP retries them (a unix peer's connect
 * blocks or fails with EAGAIN). So a flood costs at most MIG_DST_OPENERS threads and
 * fds here, and a bounded queue in the kernel. */
#define MIG_DST_BACKLOG 16

static gpointer dst_main_thread(gpointer opaque);
static gpointer urgent_thread(gpointer opaque);

typedef struct UrgentArg {
	MigSession *s;
	guint index;
	gboolean ahead;     /* started by a paused loader: waits for its channel (urgent_go) */
} UrgentArg;

static UrgentArg *urgent_arg_new(MigSession *s, guint index, gboolean ahead)
{
	UrgentArg *a = g_new(UrgentArg, 1);

	*a = (UrgentArg){ s, index, ahead };
	return a;
}

static gboolean fail(GError **err, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean fail(GError **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err)
		*err = g_error_new_valist(MIG_ERROR, code, fmt, ap);
	va_end(ap);
	return FALSE;
}

/* A multifd channel joins only the running session, once per index, and only while
 * the channels are still being set up. Call with s->lock held. */
static int admit_multifd(MigSession *s, const MigHello *h, const char **why)
{
	if (!s->dst->incoming_started) {
		*why = "no main channel yet: multifd channels follow the main channel";
		return MIG_HELLO_NOT_EXPECTED;
	}
	if (memcmp(h->session, s->session_id, sizeof(h->session))) {
		*why = "multifd channel of another migration session";
		return MIG_HELLO_FOREIGN_SESSION;
	}
	if (!s->dst->mf_expected) {
		*why = "multifd is not enabled on the destination";
		return MIG_HELLO_NOT_EXPECTED;
	}
	if (h->index >= s->dst->mf_expected) {
		*why = "multifd channel index out of range of multifd-channels";
		return MIG_HELLO_BAD_INDEX;
	}
	if (s->dst->mf_connected & (1ull << h->index)) {
		*why = "duplicate multifd channel index";
		return MIG_HELLO_DUPLICATE;
	}
	if (h->flags & MIG_HELLO_F_RESUME) {
		if (s->status != MIG_STATUS_POSTCOPY_RECOVER) {
			*why = "a resumed multifd channel, but no postcopy recovery under way";
			return MIG_HELLO_NO_RECOVERY;
		}
	} else if (s->status != MIG_STATUS_ACTIVE || s->dst->mf_released) {
		*why = "the migration is past setting up its channels";
		return MIG_HELLO_NOT_EXPECTED;
	}
	s->dst->mf_connected |= 1ull << h->index;
	return MIG_HELLO_OK;
}

/* Preempt channels join like multifd ones: the running session, once per index below
 * x-preempt-channels, before postcopy starts (the source opens them all, each waiting
 * for its reply, before it sends a page). Call with s->lock held. */
static int admit_preempt(MigSession *s, const MigHello *h, const char **why)
{
	if (!s->dst->incoming_started || memcmp(h->session, s->session_id, sizeof(h->session))) {
		*why = "preempt channel of no running migration session";
		return s->dst->incoming_started ? MIG_HELLO_FOREIGN_SESSION : MIG_HELLO_NOT_EXPECTED;
	}
	if (!s->dst->urgent_expected) {
		*why = "postcopy-preempt is not enabled on the destination";
		return MIG_HELLO_NOT_EXPECTED;
	}
	if (h->index >= s->dst->urgent_expected) {
		*why = "preempt channel index out of range of x-preempt-channels";
		return MIG_HELLO_BAD_INDEX;
	}
	if (s->dst->urgent_fd[h->index] >= 0) {
		*why = "duplicate preempt channel index";
		return MIG_HELLO_DUPLICATE;
	}
	if (h->flags & MIG_HELLO_F_RESUME) {
		if (s->status != MIG_STATUS_POSTCOPY_RECOVER) {
			*why = "a resumed preempt channel, but no postcopy recovery under way";
			return MIG_HELLO_NO_RECOVERY;
		}
	} else if (s->status != MIG_STATUS_ACTIVE || s->dst->pc) {
		*why = "the migration is past setting up its channels";
		return MIG_HELLO_NOT_EXPECTED;
	}
	return MIG_HELLO_OK;
}

/* A resumed main channel: the same session, paused, migrate-recover listening, and
 * the old channels all gone. Call with s->lock held. */
static int admit_resume(MigSession *s, const MigHello *h, const char **why)
{
	Dst *d = s->dst;

	if (!d->incoming_started || memcmp(h->session, s->session_id, sizeof(h->session))) {
		*why = d->incoming_started ? "a resumed main channel of another migration session"
					   : "a resumed main channel, but no migration ever started here";
		return d->incoming_started ? MIG_HELLO_FOREIGN_SESSION : MIG_HELLO_NO_RECOVERY;
	}
	if (h->index != 0) {
		*why = "main channel must have index 0";
		return MIG_HELLO_BAD_INDEX;
	}
	/* migrate-recover may come before the loader has joined the old channels' threads:
	 * that takes moments, so wait for it rather than refuse. For half of the hello's
	 * bound: the source waits for this reply as long as that bound (x-channel-timeout,
	 * set alike), and a refusal it times out before reading says nothing of why. */
	{
		guint64 ms = MIN((guint64)HELLO_TIMEOUT_MS, d->p.x_channel_timeout) / 2;
		gint64 end = g_get_monotonic_time() + (gint64)ms * G_TIME_SPAN_MILLISECOND;

		while (s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP && !d->paused_ready && !d->quit &&
		       g_cond_wait_until(&d->recover_cond, &s->lock, end))
			;
	}
	if (s->status != MIG_STATUS_POSTCOPY_RECOVER_SETUP || !d->paused_ready || d->fd >= 0 || d->resume_claimed) {
		*why = s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP ? "the destination is still tearing down its old channels; try again"
			: "the destination is not in postcopy-paused with migrate-recover listening";
		return MIG_HELLO_NO_RECOVERY;
	}
	d->resume_claimed = TRUE;
	/* before the reply: the source opens the other channels as soon as it has it, and
	 * they are admitted only in postcopy-recover. A reply that fails leaves the loader
	 * a dead channel, whose handshake fails and pauses again. */
	mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER);
	return MIG_HELLO_OK;
}

/* How long a connection has for its hello: HELLO_TIMEOUT_MS, or x-channel-timeout when
 * that is shorter (a peer silent that long is dead): the bound migration's own, else
 * the setting of the moment. */
static int hello_ms(MigSession *s)
{
	guint64 t;

	g_mutex_lock(&s->lock);
	t = s->dst->incoming_started ? s->dst->p.x_channel_timeout : s->params.x_channel_timeout;
	g_mutex_unlock(&s->lock);
	return (int)MIN((guint64)HELLO_TIMEOUT_MS, t);
}

/* With tls-creds every channel is TLS from its first byte: the handshake comes before
 * the hello, within hello_ms. FALSE when the connection is refused (and answered, when
 * it can be). */
static gboolean admit_tls(MigSession *s, int fd, MigTlsRun *tls, int ms)
{
	g_autoptr(GError) e = NULL;
	char why[512];
	gboolean ok;
	int rc;

	g_mutex_lock(&s->lock);
	ok = mig_tls_run_init(s, s->dst->incoming_started ? &s->dst->p : &s->params, TRUE, NULL, tls, &e);
	g_mutex_unlock(&s->lock);
	if (!ok) {
		mig_log(s, MIG_LOG_WARNING, "refused an incoming connection: %s", e->message);
		return FALSE;
	}
	if (!tls->ctx)
		return TRUE;
	rc = mig_tls_server(fd, tls->ctx, ms, MIG_HELLO_MAGIC, 0, why, sizeof(why));
	if (rc == -EPROTONOSUPPORT) {
		/* a plain mig source: tell it why, in its own language */
		mig_log(s, MIG_LOG_WARNING, "refused a plain-text channel: tls-creds is set, every channel must use TLS");
		mig_hello_reply(fd, MIG_HELLO_NOT_AUTHORIZED,
				"this destination requires TLS (tls-creds is set): plain-text channels are refused");
		return FALSE;
	}
	if (rc < 0) {
		mig_log(s, MIG_LOG_WARNING, "refused an incoming connection: TLS handshake failed: %s", why);
		return FALSE;
	}
	return TRUE;
}

/* tls-authz: the client's identity (certificate DN or PSK username) must be allowed. */
static gboolean authorized(MigSession *s, int fd, const MigTlsRun *tls, char *why, gsize len)
{
	char id[512];
	MigTls *t = mig_tls_of(fd);

	if (!t || !tls->authz || !*tls->authz)
		return TRUE;
	mig_tls_peer_identity(t, id, sizeof(id));
	return mig_tls_authz_allows(s, tls->authz, id, why, len);
}

/* Reads the hello by one deadline (ms from now) for all its bytes, so a peer trickling
 * them cannot hold an opener longer whatever its pace (a per-read timeout restarts
 * with every byte). 0, -EPROTO with *status (as mig_hello_read), -errno. */
static int read_hello(MigSession *s, int fd, int ms, MigHello *h, int *status)
{
	guint8 buf[MIG_HELLO_LEN];
	gsize got = 0;
	gint64 end = g_get_monotonic_time() + ms * (gint64)1000;

	while (got < sizeof(buf)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		gint64 left = end - g_get_monotonic_time();
		gboolean quit;
		ssize_t n;

		g_mutex_lock(&s->lock);
		quit = s->dst->open_quit;
		g_mutex_unlock(&s->lock);
		if (quit)
			return -ECANCELED;
		if (left <= 0)
			return -ETIMEDOUT;
		/* wakes at least every 100 ms to see open_quit */
		if (poll(&p, 1, (int)MIN(left / 1000 + 1, 100)) < 0 && errno != EINTR)
			return -errno;
		n = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return -errno;
		}
		got += (gsize)n;
	}
	return mig_hello_parse(buf, h, status);
}

static void start_channel(MigSession *s, int type, guint index, int fd, gboolean resumed);

/* Decides whether a connection may join, replies, and starts the channel's thread.
 * Returns TRUE when the channel took fd, FALSE when it was refused (with a reason the
 * peer can print) or dropped: the caller closes fd. Runs on a mig/dst/open thread;
 * deciding and starting are one step under open_lock. */
static gboolean admit(MigSession *s, int fd)
{
	MigHello h;
	int status = MIG_HELLO_OK, rc;
	const char *why = NULL;
	int ok = 0;
	g_auto(MigTlsRun) tls = { 0 };
	char authz_why[700];
	gboolean locked = FALSE;
	int hello = hello_ms(s);

	if (!admit_tls(s, fd, &tls, hello))
		return FALSE;
	if (tls.ctx) {
		/* the hello comes through the TLS session, whose handshake had its deadline */
		mig_io_set_timeout(fd, hello);
		rc = mig_hello_read(fd, &h, &status);
	} else {
		rc = read_hello(s, fd, hello, &h, &status);
	}
	if (rc == -EPROTO) {
		why = mig_hello_status_str(status);
	} else if (rc < 0) {
		mig_log(s, MIG_LOG_WARNING, "incoming connection dropped before its hello: %s", g_strerror(-rc));
		return FALSE;
	} else if (!authorized(s, fd, &tls, authz_why, sizeof(authz_why))) {
		status = MIG_HELLO_NOT_AUTHORIZED;
		why = authz_why;
	} else {
		g_mutex_lock(&s->dst->open_lock);
		locked = TRUE;
		g_mutex_lock(&s->lock);
		if (h.type == MIG_CHAN_MULTIFD) {
			status = admit_multifd(s, &h, &why);
			ok = status == MIG_HELLO_OK ? MIG_CHAN_MULTIFD : 0;
		} else if (h.type == MIG_CHAN_PREEMPT) {
			status = admit_preempt(s, &h, &why);
			if (status == MIG_HELLO_OK) {
				s->dst->urgent_fd[h.index] = fd;
				ok = MIG_CHAN_PREEMPT;
				/* a recovery's channels_back counts it from here: its ack may go
				 * while this reply and the channel's thread are under way (the
				 * source sends on it only after both) */
				g_cond_broadcast(&s->dst->recover_cond);
			}
		} else if (h.type != MIG_CHAN_MAIN) {
			status = MIG_HELLO_NOT_EXPECTED;
			why = "this channel type is not enabled on the destination";
		} else if (h.flags & MIG_HELLO_F_RESUME) {
			status = admit_resume(s, &h, &why);
			ok = status == MIG_HELLO_OK ? -MIG_CHAN_MAIN : 0;
		} else if (s->dst->incoming_started) {
			int foreign = memcmp(h.session, s->session_id, sizeof(h.session)) != 0;

			status = foreign ? MIG_HELLO_FOREIGN_SESSION : MIG_HELLO_DUPLICATE;
			why = foreign ? "an incoming migration from another session is already running"
				      : "duplicate main channel";
		} else if (h.index != 0) {
			status = MIG_HELLO_BAD_INDEX;
			why = "main channel must have index 0";
		} else {
			memcpy(s->session_id, h.session, sizeof(s->session_id));
			/* capabilities and parameters are latched here, when the migration begins */
			mig_params_copy(&s->dst->p, &s->params);
			s->dst->incoming_started = TRUE;
			/* the source sends SETUP right after its hello: silence for
			 * x-channel-timeout is a dead or foreign peer, as anywhere else; one
			 * deadline, not a read timeout, so NOPs or a trickle cannot stretch it */
			s->dst->setup_deadline = g_get_monotonic_time() +
						 (gint64)s->dst->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND;
			s->dst->setup_overdue = FALSE;
			s->dst->fd = fd;
			s->dst->mf_expected = s->caps[MIG_CAP_MULTIFD] ? (guint)s->dst->p.multifd_channels : 0;
			s->dst->urgent_expected = mig_preempt_channels(s, &s->dst->p);
			mig_set_status_locked(s, MIG_STATUS_ACTIVE);
			ok = MIG_CHAN_MAIN;
		}
		g_mutex_unlock(&s->lock);
	}
	if (!ok) {
		if (locked)
			g_mutex_unlock(&s->dst->open_lock);
		mig_log(s, MIG_LOG_WARNING, "refused a %s channel: %s",
			rc == 0 ? mig_chan_type_str(h.type) : "incoming", why);
		/* the peer may not read: a reply is small, but never wait on it for long */
		mig_io_set_timeout(fd, hello);
		mig_hello_reply(fd, status, why);
		return FALSE;
	}
	/* on a failed reply the channel's thread finds the dead socket and fails cleanly */
	mig_io_set_timeout(fd, hello);
	mig_hello_reply(fd, MIG_HELLO_OK, "welcome");
	mig_tls_note_channel(s, fd, ABS(ok), h.index);   /* -MIG_CHAN_MAIN: a resumed main channel */
	mig_io_set_timeout(fd, 0);
	{
		guint64 t;

		g_mutex_lock(&s->lock);
		t = s->dst->p.x_channel_timeout;   /* latched with the main channel */
		g_mutex_unlock(&s->lock);
		mig_chan_set_liveness(s, fd, t);
		/* the main channel's reads are bounded until the guest runs here (precopy) or
		 * until PC_END (postcopy, where a silent source must pause this side): the
		 * source sends at least a NOP every quarter of this (or second); the other channels
		 * may idle */
		if (ok == MIG_CHAN_MAIN)
			mig_io_set_recv_timeout(fd, (int)t);
	}
	start_channel(s, ok, h.index, fd, (h.flags & MIG_HELLO_F_RESUME) != 0);
	g_mutex_unlock(&s->dst->open_lock);
	return TRUE;
}

/* Until a migration starts, the setting of the moment; then the migration's own. */
static void set_congestion(MigSession *s, int fd)
{
	g_autofree char *algo = NULL;

	g_mutex_lock(&s->lock);
	algo = g_strdup(s->dst->incoming_started ? s->dst->p.x_tcp_congestion : s->params.x_tcp_congestion);
	g_mutex_unlock(&s->lock);
	mig_chan_set_congestion(s, fd, algo);
}

/* A resumed channel was admitted to a recovery that has failed since (the loader's
 * teardown did not see it). Call with s->lock held. */
static gboolean recovery_failed(MigSession *s)
{
	return s->status == MIG_STATUS_POSTCOPY_PAUSED || s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP ||
	       s->dst->quit;
}

/* Starts the thread of a channel admit() just accepted, or hands a resumed main channel
 * (-MIG_CHAN_MAIN) to the paused loader. Call with open_lock held. */
static void start_channel(MigSession *s, int type, guint index, int fd, gboolean resumed)
{
	if (type == -MIG_CHAN_MAIN) {
		/* the paused loader takes it over (after the reply, so its reads and timeouts
		 * are its own) */
		g_mutex_lock(&s->lock);
		s->dst->resume_claimed = FALSE;
		s->dst->fd = fd;
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER);
		g_cond_broadcast(&s->dst->recover_cond);
		g_mutex_unlock(&s->lock);
	} else if (type == MIG_CHAN_MAIN) {
		GThread *old;

		/* a loader that gave up a silent peer (unbind_overdue) has finished its work */
		g_mutex_lock(&s->lock);
		old = s->dst->stale_main ? g_steal_pointer(&s->dst->main_thread) : NULL;
		s->dst->stale_main = FALSE;
		g_mutex_unlock(&s->lock);
		if (old)
			g_thread_join(old);
		g_mutex_lock(&s->lock);
		if (!s->dst->inline_main)   /* else mig_dst_accept_inline runs it */
			s->dst->main_thread = g_thread_new("mig/dst/main", dst_main_thread, s);
		g_mutex_unlock(&s->lock);
	} else if (type == MIG_CHAN_MULTIFD) {
		g_mutex_lock(&s->lock);
		if (resumed && recovery_failed(s))
			mig_io_close(fd);
		else
			mig_mf_dst_add(s, index, fd);
		g_cond_broadcast(&s->dst->recover_cond);   /* a recovery's channels_back counts them */
		g_mutex_unlock(&s->lock);
	} else {
		char name[16];

		g_snprintf(name, sizeof(name), "mig/dst/urg/%u", index);
		g_mutex_lock(&s->lock);
		if (resumed && recovery_failed(s)) {
			/* the teardown may have closed it already */
			if (s->dst->urgent_fd[index] == fd) {
				s->dst->urgent_fd[index] = -1;
				mig_io_close(fd);
			}
		} else if (resumed && s->dst->urgent_thread[index]) {
			/* the paused loader started it (pause_and_recover) */
			s->dst->urgent_go[index] = TRUE;
			g_cond_broadcast(&s->dst->urgent_cond);
		} else {
			s->dst->urgent_thread[index] = g_thread_new(name, urgent_thread, urgent_arg_new(s, index, FALSE));
		}
		g_mutex_unlock(&s->lock);
	}
}

/* One accepted connection saying hello, on its own thread (mig/dst/open) so that a
 * slow or silent peer never holds the listener. */
typedef struct Opener {
	MigSession *s;
	int fd;
	GThread *thread;
	gboolean done;      /* under s->lock: the listener may join it */
	GCond cond;         /* one started ahead: its connection, or open_quit (s->lock) */
} Opener;

void mig_dst_accept(MigSession *s, int fd)
{
	int one = 1;

	/* page requests are tiny writes on the return path: with Nagle they wait for the
	 * source's delayed ACK, 40 ms (unix sockets just refuse this) */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* the destination sends too: the return path, and its acks */
	set_congestion(s, fd);
	if (!admit(s, fd))
		mig_io_close(fd);
}

void mig_dst_accept_inline(MigSession *s, int fd, int resume_fd)
{
	gboolean run;

	g_mutex_lock(&s->lock);
	s->dst->inline_main = TRUE;
	s->dst->inline_resume_fd = resume_fd;
	g_mutex_unlock(&s->lock);
	mig_dst_accept(s, fd);
	g_mutex_lock(&s->lock);
	run = s->dst->fd == fd && !s->dst->main_thread;
	g_mutex_unlock(&s->lock);
	if (run)
		dst_main_thread(s);
	g_mutex_lock(&s->lock);
	s->dst->inline_main = FALSE;
	if (s->dst->inline_resume_fd >= 0)
		mig_io_close(s->dst->inline_resume_fd);   /* postcopy never paused */
	s->dst->inline_resume_fd = -1;
	g_mutex_unlock(&s->lock);
}

static gpointer opener_thread(gpointer opaque)
{
	Opener *o = opaque;
	MigSession *s = o->s;
	int fd;

	/* one started ahead (mig_dst_recover) waits for its connection */
	g_mutex_lock(&s->lock);
	while (o->fd < 0 && !s->dst->open_quit)
		g_cond_wait(&o->cond, &s->lock);
	fd = o->fd;
	g_mutex_unlock(&s->lock);
	if (fd >= 0)
		mig_dst_accept(s, fd);
	g_mutex_lock(&s->lock);
	o->done = TRUE;
	g_mutex_unlock(&s->lock);
	return NULL;
}

static Opener *opener_new(MigSession *s, int fd)
{
	Opener *o = g_new0(Opener, 1);

	o->s = s;
	o->fd = fd;
	g_cond_init(&o->cond);
	return o;
}

static void opener_free(Opener *o)
{
	g_cond_clear(&o->cond);
	g_free(o);
}

/* Joins the openers that finished (all of them with all = TRUE, after open_quit);
 * returns how many still run. Listener thread only: it alone adds and removes. */
static guint reap_openers(MigSession *s, gboolean all)
{
	GPtrArray *ops = s->dst->openers;
	guint i = 0, n;

	while (i < ops->len) {
		Opener *o = g_ptr_array_index(ops, i);
		gboolean done;

		g_mutex_lock(&s->lock);
		done = o->done;
		g_mutex_unlock(&s->lock);
		if (!done && !all) {
			i++;
			continue;
		}
		g_thread_join(o->thread);
		g_ptr_array_remove_index_fast(ops, i);
		opener_free(o);
	}
	g_mutex_lock(&s->lock);
	n = ops->len;
	g_mutex_unlock(&s->lock);
	return n;
}

/* Milliseconds until the admitted main channel's SETUP is overdue (-1: no deadline);
 * past it, cuts that channel so its loader unbinds. */
static int watch_setup(MigSession *s)
{
	int ms = -1;

	g_mutex_lock(&s->lock);
	if (s->dst->setup_deadline) {
		gint64 left = s->dst->setup_deadline - g_get_monotonic_time();

		if (left <= 0) {
			s->dst->setup_deadline = 0;
			s->dst->setup_overdue = TRUE;
			if (s->dst->fd >= 0)
				shutdown(s->dst->fd, SHUT_RDWR);
		} else {
			ms = (int)MIN(left / 1000 + 1, G_MAXINT);
		}
	}
	g_mutex_unlock(&s->lock);
	return ms;
}

/* Hands a connection to a new opener thread (listener thread only). */
static void start_opener(MigSession *s, int fd)
{
	Opener *o = opener_new(s, fd);

	g_mutex_lock(&s->lock);
	g_ptr_array_add(s->dst->openers, o);
	g_mutex_unlock(&s->lock);
	o->thread = g_thread_new("mig/dst/open", opener_thread, o);
}

/* migrate-recover starts an opener ahead for every channel the recovery expects (the
 * resumed main channel, then its multifd and preempt channels), each waiting under
 * s->lock for its connection or open_quit: no thread's creation (0.05 to 0.3 ms on a
 * busy host) lies between an accept and its hello's read on the resume's path. At most
 * MIG_DST_OPENERS - 1, so that with those the listener starts openers hold no more
 * than MIG_DST_OPENERS threads. Call with s->lock held; the next listener takes them. */
static void openers_ahead(MigSession *s)
{
	Dst *d = s->dst;
	guint n = MIN(1 + d->mf_expected + d->urgent_expected, MIG_DST_OPENERS - 1);

	while (d->ahead->len < n) {
		Opener *o = opener_new(s, -1);

		o->thread = g_thread_new("mig/dst/open", opener_thread, o);
		g_ptr_array_add(d->ahead, o);
	}
}

/* Hands a connection to the first opener started ahead, which joins the others. */
static void hand_opener(MigSession *s, GPtrArray *ahead, int fd)
{
	Opener *o = g_ptr_array_steal_index(ahead, 0);

	g_mutex_lock(&s->lock);
	o->fd = fd;
	g_ptr_array_add(s->dst->openers, o);
	g_cond_signal(&o->cond);
	g_mutex_unlock(&s->lock);
}

/* Once the bound session has every channel it announced, nothing more may join: the
 * listener closes its socket (a port left open is one more thing to attack). */
static int all_in(MigSession *s)   /* -1: no session yet, 0: not yet, 1: all in */
{
	Dst *d = s->dst;
	int in;

	g_mutex_lock(&s->lock);
	in = !d->incoming_started ? -1 : d->bound && (guint)__builtin_popcountll(d->mf_connected) == d->mf_expected;
	/* a recovery listens for the resumed main channel, then its other channels */
	if (in > 0 && (s->status == MIG_STATUS_POSTCOPY_PAUSED || s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP))
		in = 0;
	for (guint i = 0; in > 0 && i < d->urgent_expected; i++)
		in = d->urgent_fd[i] >= 0;
	g_mutex_unlock(&s->lock);
	return in;
}

/* Accepts, and hands each connection to an opener; at most MIG_DST_OPENERS say hello
 * at once, each within hello_ms, and further connections wait in the kernel's
 * backlog meanwhile: a flood of silent peers costs threads and fds only up to that
 * bound and delays the real source by at most a hello's deadline per round. */
static gpointer listen_thread(gpointer opaque)
{
	MigSession *s = opaque;
	gboolean starved = FALSE;   /* out of fds: accept again only after a pause */
	g_autoptr(GPtrArray) ahead = g_ptr_array_new();

	/* fd: the one connection there will be (listen_fd is -1, which poll skips) */
	if (s->dst->given_fd >= 0)
		start_opener(s, g_steal_fd(&s->dst->given_fd));
	g_mutex_lock(&s->lock);
	g_ptr_array_extend_and_steal(ahead, g_steal_pointer(&s->dst->ahead));
	s->dst->ahead = g_ptr_array_new();
	g_mutex_unlock(&s->lock);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = s->dst->listen_fd, .events = POLLIN },
			{ .fd = s->dst->listen_wake[0], .events = POLLIN },
		};
		int timeout = watch_setup(s), fd, n, in;
		guint opening = reap_openers(s, FALSE);

		if (s->dst->listen_fd >= 0 && (in = all_in(s)) >= 0) {
			if (!opening && in) {
				g_mutex_lock(&s->lock);
				close(s->dst->listen_fd);
				s->dst->listen_fd = -1;
				g_mutex_unlock(&s->lock);
				mig_log(s, MIG_LOG_INFO, "every channel is in: the listener is closed");
			} else {
				/* look again soon: SETUP and the last channels come on other threads */
				timeout = timeout < 0 ? 200 : MIN(timeout, 200);
			}
		}
		p[0].fd = s->dst->listen_fd;

		/* while openers run, look in on them now and then to join the finished ones;
		 * with all of them busy, further connections wait in the backlog (delayed,
		 * not refused: the real source may be among them) */
		if (opening) {
			timeout = timeout < 0 ? 50 : MIN(timeout, 50);
			if (s->dst->openers->len >= MIG_DST_OPENERS)
				p[0].fd = -1;
		}
		if (starved) {
			/* the pending connection stays readable: polling it would spin a CPU */
			p[0].fd = -1;
			timeout = timeout < 0 ? 100 : MIN(timeout, 100);
		}
		if ((n = poll(p, 2, timeout)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (starved && n == 0) {
			starved = FALSE;
			continue;
		}
		if (n == 0 || !p[0].revents)
			continue;
		fd = accept4(s->dst->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				mig_log(s, MIG_LOG_WARNING, "cannot accept a migration connection: %s; retrying in 100 ms",
					g_strerror(errno));
				starved = TRUE;
			}
			continue;
		}
		if (ahead->len)
			hand_opener(s, ahead, fd);
		else
			start_opener(s, fd);
	}
	g_mutex_lock(&s->lock);
	s->dst->open_quit = TRUE;
	for (guint i = 0; i < ahead->len; i++)
		g_cond_signal(&((Opener *)ahead->pdata[i])->cond);
	g_mutex_unlock(&s->lock);
	for (guint i = 0; i < ahead->len; i++) {
		Opener *o = ahead->pdata[i];

		g_thread_join(o->thread);
		opener_free(o);
	}
	reap_openers(s, TRUE);
	return NULL;
}

/* exit-on-error false: after a failed or cancelled incoming migration a new
 * migrate-incoming replaces it, as long as the guest never ran here. Its memory goes
 * back to the kernel first, so the next migration starts from zero pages as the
 * first one did (a page it sends as zero must not keep the old data). A failure
 * once postcopy began is final: the guest may have run here. */
static gboolean discard_guest_ram(MigSession *s, GError **err)
{
	for (guint i = 0; i < s->ram->len; i++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, i);

		if (mig_ram_block_discard(rb, 0, mig_ram_block_pages(rb)) < 0)
			return fail(err, errno, "discarding the failed migration's pages of '%s': %s", rb->name, g_strerror(errno));
	}
	return TRUE;
}

static gboolean retry_after_failure(MigSession *s, GError **err)
{
	gboolean again, stopped;

	g_mutex_lock(&s->lock);
	again = (s->status == MIG_STATUS_FAILED || s->status == MIG_STATUS_CANCELLED) && s->runstate == MIG_RUN_INMIGRATE;
	stopped = !s->dst;   /* a cancel stopped it and gave the memory back already */
	if (again && !stopped && s->dst->pc_began) {
		g_mutex_unlock(&s->lock);
		return fail(err, EBUSY, "The failed incoming migration had entered postcopy: this guest cannot take another one");
	}
	g_mutex_unlock(&s->lock);
	if (!again)
		return TRUE;
	if (!stopped) {
		mig_dst_shutdown(s);
		if (!discard_guest_ram(s, err))
			return FALSE;
	}
	g_mutex_lock(&s->lock);
	s->status = MIG_STATUS_NONE;   /* QEMU has no event for this either */
	g_clear_pointer(&s->error, g_free);
	memset(s->session_id, 0, sizeof(s->session_id));
	g_mutex_unlock(&s->lock);
	return TRUE;
}

/* A streamed file (file: without mapped-ram): no listener, the file is the main
 * channel as if admitted, and the loader reads it to its COMPLETE; nothing is sent
 * back. Call with s->lock held. */
static gboolean stream_file_start(MigSession *s, const MigUri *u, GError **err)
{
	int fd = mig_chan_file_in(s, u, err);
	Dst *d;

	if (fd < 0)
		return FALSE;
	d = mig_dst_new(s);
	s->dst = d;
	d->stream_file = g_strdup(u->file);
	d->stream_offset = u->offset;
	mig_params_copy(&d->p, &s->params);
	d->incoming_started = TRUE;
	d->fd = fd;
	/* a retried incoming migration (after a failed one) counts afresh */
	s->stats.transferred = 0;
	s->stats.x_file = s->stats.x_file_streamed = TRUE;
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	mig_set_status_locked(s, MIG_STATUS_ACTIVE);
	d->main_thread = g_thread_new("mig/dst/main", dst_main_thread, s);
	return TRUE;
}

gboolean mig_dst_listen(MigSession *s, const char *uri, gboolean exit_on_error, GError **err)
{
	MigUri u;
	char local[300];
	Dst *d;
	int fd;

	if (mig_uri_parse(uri, &u) < 0)
		return fail(err, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT, unix:PATH, fd:NAME or file:PATH[,offset=N])", uri);
	if (!retry_after_failure(s, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	if (!s->dst && s->status == MIG_STATUS_NONE) {   /* else refused below: the running one keeps its own */
		s->dst_exit_on_error = exit_on_error;
		s->dst_failure_told = FALSE;
	}
	g_mutex_unlock(&s->lock);
	if (u.kind == MIG_URI_FILE && s->caps[MIG_CAP_MAPPED_RAM])
		return mig_file_dst_start(s, &u, err);
	g_mutex_lock(&s->lock);
	if (s->dst || s->status != MIG_STATUS_NONE) {
		g_mutex_unlock(&s->lock);
		return fail(err, EBUSY, "The incoming migration has already been started");
	}
	if (s->runstate != MIG_RUN_INMIGRATE) {
		g_mutex_unlock(&s->lock);
		return fail(err, EINVAL, "'-incoming' was not specified on the command line");
	}
	if (!mig_params_check_fd_uri(s, &u, err)) {
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (u.kind == MIG_URI_FILE) {
		gboolean ok = stream_file_start(s, &u, err);

		g_mutex_unlock(&s->lock);
		return ok;
	}
	fd = u.kind == MIG_URI_FD ? mig_session_take_fd(s, &u, err) : mig_uri_listen(&u, MIG_DST_BACKLOG);
	if (fd == -EADDRINUSE && u.kind == MIG_URI_UNIX) {
		g_mutex_unlock(&s->lock);
		return fail(err, EADDRINUSE, "Failed to listen on '%s': the path is in use: a process listens on "
			    "that socket (a live socket is never removed) or it is not a socket", uri);
	}
	if (fd < 0) {
		g_mutex_unlock(&s->lock);
		return u.kind == MIG_URI_FD ? FALSE : fail(err, -fd, "Failed to listen on '%s': %s", uri, g_strerror(-fd));
	}
	d = mig_dst_new(s);
	if (!g_unix_open_pipe(d->listen_wake, FD_CLOEXEC, NULL)) {
		close(fd);
		mig_dst_free(d);
		g_mutex_unlock(&s->lock);
		return fail(err, EMFILE, "cannot create a pipe");
	}
	s->dst = d;
	if (u.kind == MIG_URI_FD) {
		/* no address to report: QEMU lists socket-address only for what it listens on */
		s->dst->given_fd = fd;
	} else {
		s->dst->listen_fd = fd;
		s->dst->listen_uri = g_strdup(mig_uri_local(fd, local, sizeof(local)) == 0 ? local : uri);
	}
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	s->dst->listen_thread = g_thread_new("mig/dst/listen", listen_thread, s);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

/* migrate_cancel on a destination. Until RP_READY nothing of the guest ran here and the
 * source still holds it (it gives it up only on our RP_READY), so the incoming migration
 * stops for real: every thread joined, every channel closed (the source hears RP_ERROR
 * or a closed channel and keeps its guest), the memory given back, status cancelled,
 * ready for another migrate-incoming. From RP_READY on (or once postcopy registered the
 * memory) the source may have handed its guest over: refused, as QEMU refuses a cancel
 * in postcopy. Nothing running: nothing to do, as QEMU's. Without s->lock. */
gboolean mig_dst_cancel(MigSession *s, GError **err)
{
	gboolean ok;

	g_mutex_lock(&s->lock);
	if (!s->dst || !(s->status == MIG_STATUS_SETUP || s->status == MIG_STATUS_ACTIVE || s->status == MIG_STATUS_DEVICE)) {
		g_mutex_unlock(&s->lock);
		return TRUE;
	}
	if (s->dst->switching || s->dst->pc_began) {
		g_mutex_unlock(&s->lock);
		return fail(err, EBUSY, "The incoming migration is switching over (%s), cannot cancel.",
			    s->dst->pc_began ? "postcopy began" : "the source may have handed its guest over");
	}
	s->dst->cancelled = TRUE;
	g_free(s->error);
	s->error = g_strdup("the incoming migration was cancelled (migrate_cancel)");
	mig_set_status_locked(s, MIG_STATUS_CANCELLING);
	g_mutex_unlock(&s->lock);
	mig_log(s, MIG_LOG_INFO, "migrate_cancel: stopping the incoming migration");
	{
		static const char why[] = "the destination cancelled the incoming migration (migrate_cancel)";
		struct iovec iov = { (void *)why, sizeof(why) - 1 };

		/* the source's clear reason (no main channel yet, or gone: -EPIPE, nothing sent) */
		mig_dst_rp_send(s, MIG_F_RP_ERROR, &iov, 1);
	}
	mig_dst_shutdown(s);
	ok = discard_guest_ram(s, err);
	g_mutex_lock(&s->lock);
	mig_set_status_locked(s, MIG_STATUS_CANCELLED);
	memset(s->session_id, 0, sizeof(s->session_id));
	g_mutex_unlock(&s->lock);
	return ok;
}

void mig_dst_yank(MigSession *s)
{
	if (s->dst->fd >= 0)
		shutdown(s->dst->fd, SHUT_RDWR);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		if (s->dst->urgent_fd[i] >= 0)
			shutdown(s->dst->urgent_fd[i], SHUT_RDWR);
	mig_mf_dst_yank(s);
}

gboolean mig_dst_has_channels(MigSession *s)
{
	return s->dst->fd >= 0;
}

gboolean mig_dst_pause(MigSession *s, GError **err)
{
	if (s->dst && s->dst->file)
		return mig_file_dst_pause(s, err);
	if (s->dst)
		mig_dst_postcopy_lost(s, "paused by migrate-pause");
	return TRUE;
}

gboolean mig_dst_recover(MigSession *s, const char *uri, GError **err)
{
	Dst *d;
	GThread *lt;
	MigUri u;
	char local[300];
	int fd, wake[2];

	if (mig_uri_parse(uri, &u) < 0)
		return fail(err, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT or unix:PATH)", uri);
	if (s->dst && s->dst->file)
		return mig_file_dst_recover(s, &u, err);
	if (u.kind == MIG_URI_FD || u.kind == MIG_URI_FILE)
		return fail(err, EINVAL, "postcopy recovery needs a tcp: or unix: address, not '%s'", uri);
	g_mutex_lock(&s->lock);
	d = s->dst;
	if (!d || s->status != MIG_STATUS_POSTCOPY_PAUSED) {
		g_mutex_unlock(&s->lock);
		return fail(err, EINVAL, "Migrate recover can only be run when postcopy is paused.");
	}
	/* the old listener goes first: the new address may be the same */
	lt = g_steal_pointer(&d->listen_thread);
	if (d->listen_wake[1] >= 0 && write(d->listen_wake[1], "q", 1) < 0) {
		/* a full pipe already wakes it */
	}
	g_mutex_unlock(&s->lock);
	if (lt)
		g_thread_join(lt);   /* at most one hello's timeout */
	if (!g_unix_open_pipe(wake, FD_CLOEXEC, NULL))
		return fail(err, EMFILE, "cannot create a pipe");
	g_mutex_lock(&s->lock);
	for (int i = 0; i < 2; i++) {
		if (d->listen_wake[i] >= 0)
			close(d->listen_wake[i]);
		d->listen_wake[i] = wake[i];
	}
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	fd = mig_uri_listen(&u, MIG_DST_BACKLOG);
	if (fd < 0) {
		g_mutex_unlock(&s->lock);
		return fail(err, -fd, "Failed to listen on '%s': %s", uri, g_strerror(-fd));
	}
	d->listen_fd = fd;
	g_free(d->listen_uri);
	d->listen_uri = g_strdup(mig_uri_local(fd, local, sizeof(local)) == 0 ? local : uri);
	/* a pause or a failure may have come while we joined: still paused? */
	if (s->status == MIG_STATUS_POSTCOPY_PAUSED)
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER_SETUP);
	d->open_quit = FALSE;   /* the old listener's openers are joined */
	if (s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP)
		openers_ahead(s);
	d->listen_thread = g_thread_new("mig/dst/listen", listen_thread, s);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

void mig_dst_shutdown(MigSession *s)
{
	GThread *lt, *dt;

	if (!s->dst)
		return;
	g_mutex_lock(&s->lock);
	lt = g_steal_pointer(&s->dst->listen_thread);
	dt = g_steal_pointer(&s->dst->main_thread);
	s->dst->quit = TRUE;
	g_cond_broadcast(&s->dst->recover_cond);
	g_cond_broadcast(&s->dst->urgent_cond);   /* those a paused loader started */
	if (s->dst->fd >= 0)
		shutdown(s->dst->fd, SHUT_RDWR);
	if (s->dst->listen_wake[1] >= 0 && write(s->dst->listen_wake[1], "q", 1) < 0) {
		/* the listener also stops when the pipe closes below */
	}
	g_mutex_unlock(&s->lock);
	mig_mf_dst_abort(s);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		if (s->dst->urgent_fd[i] >= 0)
			shutdown(s->dst->urgent_fd[i], SHUT_RDWR);
	if (lt)
		g_thread_join(lt);
	if (dt)
		g_thread_join(dt);
	mig_mf_dst_join(s);
	mig_dev_dst_free(s);
	/* the listener is joined: no channel is admitted any more */
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++) {
		if (s->dst->urgent_thread[i])
			g_thread_join(s->dst->urgent_thread[i]);
		s->dst->urgent_thread[i] = NULL;
		if (s->dst->urgent_fd[i] >= 0)
			mig_io_close(s->dst->urgent_fd[i]);
		s->dst->urgent_fd[i] = -1;
	}
	mig_pc_dst_free(s);
	if (s->dst->file_free)
		s->dst->file_free(g_steal_pointer(&s->dst->file));
	for (int i = 0; i < 2; i++)
		if (s->dst->listen_wake[i] >= 0)
			close(s->dst->listen_wake[i]);
	if (s->dst->listen_fd >= 0)
		close(s->dst->listen_fd);
	g_mutex_lock(&s->lock);
	mig_dst_free(g_steal_pointer(&s->dst));
	g_mutex_unlock(&s->lock);
}

gboolean mig_dst_started(MigSession *s)
{
	return s->dst && s->dst->incoming_started;
}

void mig_dst_cont(MigSession *s)
{
	if (s->dst)
		mig_dev_dst_run(s);
}

void mig_dst_query(MigSession *s, MigInfo *info)
{
	MigUri u;

	if (!s->dst)
		return;
	if (s->dst->listen_uri && mig_uri_parse(s->dst->listen_uri, &u) == 0) {
		if (u.kind == MIG_URI_TCP) {
			info->listen_host = g_strdup(u.host);
			info->listen_port = g_strdup(u.port);
		} else {
			info->listen_path = g_strdup(u.path);
		}
	}
	mig_pc_dst_query(s, info->extra);
	/* the reorder queue's high-water mark, which x-device-max-queued bounds */
	if (s->devices->len)
		info->device_queued_peak = (gint64)mig_dev_dst_queued_peak(s);
	info->ram.transferred = mig_atomic_get(&s->stats.transferred);
}

/* ---- the loader ---- */

typedef struct Loader {
	MigSession *s;
	int fd;
	gboolean have_setup, have_state;
	gboolean ready;         /* RP_READY sent: the source may have sent GO (switchover) */
	guint32 max_frame;      /* grows to one huge page once SETUP named the blocks */
	MigHugeAsm hasm;        /* break-huge: the huge page being assembled */
	gboolean inline_run;    /* on mig_dst_accept_inline's thread: a pause takes its
				 * resumed channel or ends it */
	guint8 *buf;
	gsize buflen;
} Loader;

static gboolean read_payload(Loader *d, guint32 len, GError **err)
{
	int rc;

	if (len > d->buflen) {
		d->buf = g_realloc(d->buf, len);
		d->buflen = len;
	}
	rc = mig_io_read_full(d->fd, d->buf, len);
	if (rc < 0)
		return fail(err, -rc, "migration stream truncated: %s", g_strerror(-rc));
	mig_atomic_add(&d->s->stats.transferred, len);
	return TRUE;
}

static gboolean load_setup(Loader *d, guint32 len, GError **err)
{
	MigSession *s = d->s;
	MigWireRd r;
	gsize off;
	guint32 n, mf;

	if (!read_payload(d, len, err))
		return FALSE;
	r = mig_wire_rd(d->buf, len);
	if (mig_rd_be32(&r, &n) < 0)
		return fail(err, EPROTO, "setup frame too short");
	if (n != s->ram->len)
		return fail(err, EINVAL, "source has %u RAM blocks, destination %u", n, s->ram->len);
	for (guint i = 0; i < n; i++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, i);
		const guint8 *name;
		guint64 size, ps;
		guint8 nl;

		if (mig_rd_str8(&r, &name, &nl) < 0 || mig_rd_be64(&r, &size) < 0 || mig_rd_be64(&r, &ps) < 0)
			return fail(err, EPROTO, "setup frame truncated");
		if (nl != strlen(rb->name) || memcmp(name, rb->name, nl))
			return fail(err, EINVAL, "RAM block %u is '%.*s' on the source, '%s' here", i, nl,
				    (const char *)name, rb->name);
		if (size != rb->size)
			return fail(err, EINVAL, "RAM block '%s' is %" G_GUINT64_FORMAT " bytes on the source, %" G_GSIZE_FORMAT " here",
				    rb->name, size, rb->size);
		if (ps != rb->page_size)
			return fail(err, EINVAL, "RAM block '%s' has %" G_GUINT64_FORMAT "-byte pages on the source, %" G_GSIZE_FORMAT " here",
				    rb->name, ps, rb->page_size);
	}
	if (mig_rd_be32(&r, &mf) < 0)
		return fail(err, EPROTO, "setup frame truncated");
	if (mf != s->dst->mf_expected)
		return fail(err, EINVAL, "the source uses %u multifd channels, this destination %u%s", mf,
			    s->dst->mf_expected, s->dst->mf_expected ? "" : " (set the multifd capability on both sides)");
	if (mig_rd_be32(&r, &mf) < 0)
		return fail(err, EPROTO, "setup frame truncated");
	if (mf != s->dst->urgent_expected)
		return fail(err, EINVAL, "the source uses %u preempt channels, this destination %u (set postcopy-preempt "
			    "and x-preempt-channels alike on both sides)", mf, s->dst->urgent_expected);
	/* before the receivers are let go below: they may carry device chunks */
	off = len - r.left;
	if (!mig_dev_dst_setup(s, d->buf, len, &off, err))
		return FALSE;
	d->max_frame = MAX(d->max_frame, MIG_DEV_HDR_LEN + MIG_DEV_CHUNK);
	mig_dst_received_new(s);
	for (guint i = 0; i < n; i++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, i);

		d->max_frame = (guint32)MIN((guint64)G_MAXUINT32, MAX((guint64)d->max_frame, MIG_PAGES_HDR_LEN + 8 + rb->page_size));
	}
	d->have_setup = TRUE;
	if (s->vm_live)
		s->vm_live->load_begin(s->vm_opaque);
	g_mutex_lock(&s->lock);
	s->dst->setup_deadline = 0;   /* the peer is bound now */
	s->dst->bound = TRUE;
	g_mutex_unlock(&s->lock);
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->mf_setup_done = TRUE;
	g_cond_broadcast(&s->dst->mf_cond);
	g_mutex_unlock(&s->dst->mf_lock);
	return TRUE;
}

/* Reads the (block, count) head and the offsets of a PAGES or ZEROS frame, checking
 * every offset before a byte lands in guest memory. */
static gboolean read_page_list(Loader *d, guint32 len, gboolean with_data, MigRamBlock **rbp,
			       guint *bip, guint64 *offs, guint *countp, GError **err)
{
	guint8 raw[MIG_PAGES_HDR_LEN];
	guint32 bi, count;
	MigRamBlock *rb;
	guint64 need;
	int rc;

	if (!d->have_setup)
		return fail(err, EPROTO, "page data before the setup frame");
	if (len < MIG_PAGES_HDR_LEN)
		return fail(err, EPROTO, "page frame too short");
	if ((rc = mig_io_read_full(d->fd, raw, sizeof(raw))) < 0)
		return fail(err, -rc, "migration stream truncated: %s", g_strerror(-rc));
	mig_get_pages_hdr(raw, &bi, &count);
	if (bi >= d->s->ram->len)
		return fail(err, EPROTO, "page frame names RAM block %u of %u", bi, d->s->ram->len);
	rb = g_ptr_array_index(d->s->ram, bi);
	if (count == 0 || count > MIG_PAGES_MAX)
		return fail(err, EPROTO, "page frame with %u pages", count);
	need = MIG_PAGES_HDR_LEN + (guint64)count * 8 + (with_data ? (guint64)count * rb->page_size : 0);
	if (need != len)
		return fail(err, EPROTO, "page frame length %u does not match %u pages", len, count);
	if ((rc = mig_io_read_full(d->fd, offs, count * 8u)) < 0)
		return fail(err, -rc, "migration stream truncated: %s", g_strerror(-rc));
	mig_be64_decode_array(offs, count);
	for (guint i = 0; i < count; i++) {
		if (offs[i] % rb->page_size || offs[i] >= rb->size)
			return fail(err, EPROTO, "page offset 0x%" G_GINT64_MODIFIER "x outside RAM block '%s'", offs[i], rb->name);
	}
	mig_atomic_add(&d->s->stats.transferred, MIG_PAGES_HDR_LEN + count * 8u);
	*rbp = rb;
	*bip = bi;
	*countp = count;
	return TRUE;
}

static gboolean load_pages(Loader *d, guint32 len, GError **err)
{
	guint64 offs[MIG_PAGES_MAX];
	struct iovec iov[MIG_PAGES_MAX];
	MigRamBlock *rb;
	guint bi, count, got = 0;
	int rc;

	if (!read_page_list(d, len, TRUE, &rb, &bi, offs, &count, err))
		return FALSE;
	mig_atomic_add(&d->s->stats.transferred, (guint64)count * rb->page_size);
	if (mig_pc_dst_placing(d->s)) {
		/* the guest may be running: pages land whole, through userfaultfd, never
		 * byte by byte where a vCPU could see them half written */
		if (!read_payload(d, (guint32)(count * rb->page_size), err))
			return FALSE;
		for (guint i = 0; i < count; i++)
			if (!mig_pc_dst_place(d->s, bi, offs[i] / rb->page_size, d->buf + i * rb->page_size, err))
				return FALSE;
		return TRUE;
	}
	for (guint i = 0; i < count; i++)
		iov[i] = (struct iovec){ rb->host + offs[i], rb->page_size };
	rc = mig_io_readv_full(d->fd, iov, (int)count);
	if (rc < 0)
		return fail(err, -rc, "migration stream truncated: %s", g_strerror(-rc));
	for (guint i = 0; i < count; i++)
		got += mig_bitmap_set_atomic_new(d->s->dst->received[bi], offs[i] / rb->page_size);
	mig_dst_received_add(d->s->dst, bi, got);
	return TRUE;
}

static gboolean load_zeros(Loader *d, guint32 len, GError **err)
{
	guint64 offs[MIG_PAGES_MAX];
	MigRamBlock *rb;
	guint bi, count, got = 0;

	if (!read_page_list(d, len, FALSE, &rb, &bi, offs, &count, err))
		return FALSE;
	for (guint i = 0; i < count; i++) {
		gsize pg = offs[i] / rb->page_size;

		if (mig_pc_dst_placing(d->s)) {
			if (!mig_pc_dst_place(d->s, bi, pg, NULL, err))
				return FALSE;
			continue;
		}
		/* fresh memory is already zero; only a page that got data earlier needs it */
		if (mig_bitmap_test(d->s->dst->received[bi], pg))
			memset(rb->host + offs[i], 0, rb->page_size);
		got += mig_bitmap_set_atomic_new(d->s->dst->received[bi], pg);
	}
	mig_dst_received_add(d->s->dst, bi, got);
	return TRUE;
}

static gboolean load_state(Loader *d, guint32 len, GError **err)
{
	MigSession *s = d->s;
	g_autoptr(GBytes) state = NULL;
	const guint8 *id;
	guint8 idlen;
	MigWireRd r;

	if (!d->have_setup)
		return fail(err, EPROTO, "device state before the setup frame");
	if (!read_payload(d, len, err))
		return FALSE;
	r = mig_wire_rd(d->buf, len);
	if (mig_rd_str8(&r, &id, &idlen) < 0)
		return fail(err, EPROTO, "state frame truncated");
	if (idlen != 5 || memcmp(id, "guest", 5))
		return fail(err, EINVAL, "unknown state section '%.*s'", idlen, (const char *)id);
	if (d->have_state)
		return fail(err, EPROTO, "state section 'guest' sent twice");
	state = g_bytes_new(r.p, r.left);
	if (!s->vm->load_state(s->vm_opaque, state, err))
		return FALSE;
	d->have_state = TRUE;
	return TRUE;
}

/* A part of the guest's state sent while it ran (MigVmLiveOps): the VM checks it. */
static gboolean load_state_part(Loader *d, guint32 len, GError **err)
{
	MigSession *s = d->s;

	if (!d->have_setup)
		return fail(err, EPROTO, "guest state part before the setup frame");
	if (d->have_state)
		return fail(err, EPROTO, "guest state part after the guest state");
	if (!s->vm_live)
		return fail(err, EPROTO, "guest state part, but this destination's VM takes its state whole");
	if (!len || len > MIG_STATE_PART_MAX)
		return fail(err, EPROTO, "guest state part of %u bytes (1..%u)", len, MIG_STATE_PART_MAX);
	if (!read_payload(d, len, err))
		return FALSE;
	return s->vm_live->load_part(s->vm_opaque, d->buf, len, err);
}

/* After RP_READY only GO may come (or the source's ABORT). The read is bounded by
 * x-channel-timeout (the main channel's receive timeout); the caller turns a failure
 * into "outcome unknown". */
static gboolean wait_go(Loader *d, GError **err)
{
	MigFrameHdr h;
	int rc = mig_frame_recv_hdr(d->fd, &h, d->max_frame);

	if (rc < 0)
		return fail(err, -rc, "%s", rc == -EPIPE ? "the source closed the connection" : g_strerror(-rc));
	if (h.type == MIG_F_ABORT) {
		char text[MIG_PEER_TEXT_MAX + 4];

		if (!read_payload(d, MIN(h.len, 4096u), err))
			return FALSE;
		return fail(err, ECANCELED, "source aborted: %s", mig_peer_text(d->buf, MIN(h.len, 4096u), text));
	}
	if (h.type != MIG_F_GO || h.len)
		return fail(err, EPROTO, "frame type %u of %u bytes where GO was due", h.type, h.len);
	return TRUE;
}

/* COMPLETE (precopy) or PC_RUN (postcopy): everything must be here. The guest starts
 * only on the source's GO, which the source sends only after our RP_READY: so the
 * source knows, before it gives its guest up, that ours can run (docs/design.md,
 * Switchover). */
static gboolean complete(Loader *d, gboolean postcopy, GError **err)
{
	MigSession *s = d->s;
	static const char msg[] = "running", rmsg[] = "ready";
	struct iovec iov = { (void *)msg, sizeof(msg) - 1 };
	struct iovec riov = { (void *)rmsg, sizeof(rmsg) - 1 };
	g_autoptr(GError) why = NULL;
	g_autofree char *fault = NULL;
	int rc;

	if (!d->have_setup || !d->have_state)
		return fail(err, EPROTO, "stream completed without %s", d->have_setup ? "the guest state" : "a setup frame");
	if (!mig_dev_dst_complete_ok(s))
		return fail(err, EPROTO, "stream completed before the devices' state ended");
	if (!postcopy) {
		/* the guest may run from here on: nothing written in place any more, and
		 * it starts only on a complete image (postcopy fetches what is missing) */
		mig_mf_dst_seal(s);
		if (!mig_dst_all_received(s, err))
			return FALSE;
	}
	/* from the first byte of RP_READY on, the source may send GO and give its guest up:
	 * a cancel either came first or is refused from here on */
	g_mutex_lock(&s->lock);
	if (s->dst->cancelled) {
		g_mutex_unlock(&s->lock);
		return fail(err, ECANCELED, "the incoming migration was cancelled");
	}
	/* a channel failed first: its cut may not stop a GO already queued, so no READY */
	if (s->status == MIG_STATUS_FAILED) {
		g_autofree char *why_failed = g_strdup(s->error ? s->error : "the incoming migration failed");

		g_mutex_unlock(&s->lock);
		return fail(err, EIO, "%s", why_failed);
	}
	s->dst->switching = TRUE;
	g_mutex_unlock(&s->lock);
	d->ready = TRUE;
	/* a streamed file is read to its end: a save to it may come next (the descriptor
	 * stays open until the incoming side is torn down) */
	if (s->dst->stream_file)
		mig_file_unlock(d->fd, s->dst->stream_offset);
	rc = mig_dst_rp_send(s, MIG_F_RP_READY, &riov, 1);
	/* a file's source is gone: its COMPLETE is the whole switchover */
	if (!s->dst->stream_file && (rc < 0 || !wait_go(d, &why))) {
		g_autofree char *cause = NULL;

		g_mutex_lock(&s->lock);
		fault = g_steal_pointer(&s->dst->switch_fault);
		g_mutex_unlock(&s->lock);
		cause = g_strdup_printf("%s%s%s", rc < 0 ? g_strerror(-rc) : why->message,
					fault ? "; a channel was lost meanwhile: " : "", fault ? fault : "");

		if (postcopy)
			return fail(err, EIO, "switchover outcome unknown: no GO from the source after RP_READY (%s); "
				    "the guest stays stopped here and this side lacks pages (postcopy), so only the "
				    "source can run it: check it and `cont` it there", cause);
		return fail(err, EIO, "switchover outcome unknown: no GO from the source after RP_READY (%s); "
			    "the guest stays stopped here and may be running on the source: check the source, "
			    "then `cont` the guest on one side only", cause);
	}
	if (s->dst->test_after_go)
		s->dst->test_after_go(s);
	g_mutex_lock(&s->lock);
	mig_dst_start_guest_locked(s, postcopy ? MIG_STATUS_POSTCOPY_ACTIVE : MIG_STATUS_COMPLETED);
	/* from here the guest may touch missing pages: a lost channel pauses */
	__atomic_store_n(&s->dst->pc_running, postcopy && s->status != MIG_STATUS_FAILED, __ATOMIC_RELEASE);
	fault = g_steal_pointer(&s->dst->switch_fault);
	g_mutex_unlock(&s->lock);
	if (postcopy) {
		mig_dst_rp_send(s, MIG_F_RP_RUNNING, &iov, 1);
		/* a channel lost since RP_READY pauses now, as one lost a moment later */
		if (fault)
			mig_dst_postcopy_lost(s, fault);
		return TRUE;
	}
	/* precopy: RP_RUNNING is the return path's last frame, the source reads no more.
	 * The source's guest stays stopped until it reads it, so it goes first: joining
	 * the beat (a thread to wake) and the VM's incoming_done (the synthetic guest
	 * starts a verifier that walks all of RAM and takes a CPU) come after. */
	mig_dst_rp_send_last(s, MIG_F_RP_RUNNING, &iov, 1);
	/* every page is here: the guest needs no channel any more */
	if (fault)
		mig_log(s, MIG_LOG_INFO, "the guest runs here whole despite a channel lost after RP_READY (%s)", fault);
	mig_dst_beat_stop(s);
	if (s->vm->incoming_done)
		s->vm->incoming_done(s->vm_opaque);
	return TRUE;
}

static gboolean load_discard(Loader *d, guint32 len, GError **err)
{
	g_autofree guint64 *ranges = NULL;
	guint32 bi, count;
	MigWireRd r;

	if (!read_payload(d, len, err))
		return FALSE;
	if (len < MIG_PAGES_HDR_LEN)
		return fail(err, EPROTO, "discard frame too short");
	mig_get_pages_hdr(d->buf, &bi, &count);
	if (len != MIG_PAGES_HDR_LEN + 16ull * count)
		return fail(err, EPROTO, "discard frame length %u does not match %u ranges", len, count);
	ranges = g_new(guint64, 2ull * count);
	r = mig_wire_rd(d->buf + MIG_PAGES_HDR_LEN, len - MIG_PAGES_HDR_LEN);
	for (guint i = 0; i < 2 * count; i++)
		if (mig_rd_be64(&r, &ranges[i]) < 0)
			return fail(err, EPROTO, "discard frame truncated");
	return mig_pc_dst_discard(d->s, bi, ranges, count, err);
}

static gboolean postcopy_end(Loader *d, GError **err)
{
	MigSession *s = d->s;
	static const char msg[] = "done";
	struct iovec iov = { (void *)msg, sizeof(msg) - 1 };

	if (!s->dst->pc || !d->have_state)
		return fail(err, EPROTO, "postcopy END without a postcopy");
	if (!mig_pc_dst_finish(s, err))
		return FALSE;
	mig_mf_dst_seal(s);
	mig_set_status(s, MIG_STATUS_COMPLETED);
	if (s->vm->incoming_done)
		s->vm->incoming_done(s->vm_opaque);
	mig_dst_beat_stop(s);   /* RP_DONE is the last frame the source reads */
	mig_dst_rp_send(s, MIG_F_RP_DONE, &iov, 1);
	return TRUE;
}

static gboolean load_loop(Loader *d, GError **err)
{
	for (;;) {
		MigFrameHdr h;
		int rc = mig_frame_recv_hdr(d->fd, &h, d->max_frame);

		if (rc == -EPROTO)
			return fail(err, EPROTO, "malformed frame header (length %u)", h.len);
		if (rc < 0)
			return fail(err, -rc, "migration stream truncated: %s",
				    rc == -EPIPE ? "the source closed the connection" : g_strerror(-rc));
		if (d->s->dst->stream_file && __atomic_load_n(&d->s->dst->quit, __ATOMIC_ACQUIRE))
			return fail(err, ECANCELED, "the incoming migration was stopped");
		mig_atomic_add(&d->s->stats.transferred, MIG_FRAME_HDR_LEN);
		switch (h.type) {
		case MIG_F_SETUP:
			if (d->have_setup)
				return fail(err, EPROTO, "setup frame sent twice");
			if (!load_setup(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_PAGES:
			if (!load_pages(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_ZEROS:
			if (!load_zeros(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_PASS: {
			guint64 pass;

			if (h.len != 8 || !read_payload(d, h.len, err))
				return h.len == 8 ? FALSE : fail(err, EPROTO, "pass frame of %u bytes", h.len);
			/* passes end in order, one after the other: the barrier releases the
			 * multifd channels' next pass by this number, the source waits for it to
			 * come back, and a recovery restarts from it */
			pass = mig_get_be64(d->buf);
			if (pass != d->s->dst->pass_done + 1)
				return fail(err, EPROTO, "end of pass %" G_GUINT64_FORMAT " where pass %" G_GUINT64_FORMAT
					    " was due", pass, d->s->dst->pass_done + 1);
			if (!mig_mf_dst_barrier(d->s, pass, err))
				return FALSE;
			d->s->dst->pass_done = pass;
			/* the source waits for this before it stops the guest (see precopy()): the
			 * same be64 pass number goes back */
			{
				struct iovec iov = { d->buf, 8 };

				mig_dst_rp_send(d->s, MIG_F_RP_PASS, &iov, 1);
			}
			break;
		}
		case MIG_F_STATE:
			if (!load_state(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_STATE_PART:
			if (!load_state_part(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_DEV_DATA:
			if (!mig_dev_dst_chunk_serial(d->s, d->fd, h.len, err))
				return FALSE;
			break;
		case MIG_F_DEV_END:
			if (!d->have_setup)
				return fail(err, EPROTO, "device end before the setup frame");
			if (!read_payload(d, h.len, err) || !mig_dev_dst_end(d->s, d->buf, h.len, err))
				return FALSE;
			break;
		case MIG_F_COMPLETE:
			return complete(d, FALSE, err);
		case MIG_F_PC_LISTEN:
			g_mutex_lock(&d->s->lock);
			d->s->dst->pc_began = TRUE;
			g_mutex_unlock(&d->s->lock);
			if (!d->have_setup || !mig_pc_dst_listen(d->s, err))
				return d->have_setup ? FALSE : fail(err, EPROTO, "postcopy LISTEN before setup");
			break;
		case MIG_F_PC_DISCARD:
			if (!load_discard(d, h.len, err))
				return FALSE;
			break;
		case MIG_F_PC_RUN:
			if (!d->s->dst->pc)
				return fail(err, EPROTO, "postcopy RUN before LISTEN");
			if (!complete(d, TRUE, err))
				return FALSE;
			break;
		case MIG_F_PC_END:
			return postcopy_end(d, err);
		case MIG_F_CHUNK:
			if (!mig_huge_asm_chunk(d->s, &d->hasm, d->fd, h.len, err))
				return FALSE;
			break;
		case MIG_F_NOP:
			if (h.len)
				return fail(err, EPROTO, "NOP frame of %u bytes", h.len);
			break;
		case MIG_F_GO:
			return fail(err, EPROTO, "GO before the stream completed");
		case MIG_F_ABORT: {
			char text[MIG_PEER_TEXT_MAX + 4];

			if (!read_payload(d, MIN(h.len, 4096u), err))
				return FALSE;
			return fail(err, ECANCELED, "source aborted: %s", mig_peer_text(d->buf, MIN(h.len, 4096u), text));
		}
		default:
			return fail(err, EPROTO, "unknown frame type %u", h.type);
		}
	}
}

/* The preempt channel carries only urgent pages, in the main channel's PAGES/ZEROS
 * frames; they are placed the moment they arrive. */
static gpointer urgent_thread(gpointer opaque)
{
	UrgentArg *a = opaque;
	MigSession *s = a->s;
	Dst *dst = s->dst;
	guint index = a->index;
	gboolean ahead = a->ahead, go = TRUE;
	Loader d = { .s = s, .have_setup = TRUE, .max_frame = MIG_FRAME_MAX_LEN + (1u << 30) };
	g_autoptr(GError) err = NULL;

	g_free(a);
	{
		char name[16];

		g_snprintf(name, sizeof(name), "mig/dst/urg/%u", index);
		mig_thread_set_urgent_for(s, (guint)dst->p.x_postcopy_rt_priority, name);
	}
	g_mutex_lock(&s->lock);
	/* started ahead: a thread's creation (0.05 to 0.3 ms on a busy host, under s->lock)
	 * is not on the resume's path; a teardown or the session's end stops it unused */
	while (ahead && !dst->urgent_go[index] && !dst->urgent_stop && !dst->quit)
		g_cond_wait(&dst->urgent_cond, &s->lock);
	if (ahead) {
		go = dst->urgent_go[index] && !dst->urgent_stop && !dst->quit;
		dst->urgent_go[index] = FALSE;
	}
	d.fd = dst->urgent_fd[index];
	g_mutex_unlock(&s->lock);
	if (!go)
		return NULL;
	for (;;) {
		MigFrameHdr h;
		int rc = mig_frame_recv_hdr(d.fd, &h, d.max_frame);
		gboolean ok;

		if (rc < 0) {
			MigStatus st = mig_session_status(s);

			/* a source that closes it after a failed precopy says why on the main
			 * channel; in postcopy every lost channel pauses */
			if (st != MIG_STATUS_COMPLETED && (rc != -EPIPE || mig_status_is_postcopy_run(st)))
				g_set_error(&err, MIG_ERROR, -rc, "preempt channel %u: %s", index,
					    rc == -EPIPE ? "the source closed the connection" : g_strerror(-rc));
			break;
		}
		if (!s->dst->received || !mig_pc_dst_placing(s)) {
			g_set_error(&err, MIG_ERROR, EPROTO, "preempt channel %u: a page before postcopy started", index);
			break;
		}
		if (h.type == MIG_F_PAGES)
			ok = load_pages(&d, h.len, &err);
		else if (h.type == MIG_F_ZEROS)
			ok = load_zeros(&d, h.len, &err);
		else
			ok = fail(&err, EPROTO, "preempt channel %u: unexpected frame type %u", index, h.type);
		if (!ok)
			break;
	}
	if (err && mig_session_status(s) != MIG_STATUS_COMPLETED)
		mig_dst_fail(s, err->message);
	g_free(d.buf);
	return NULL;
}

/* A main channel whose SETUP did not come in time (the listener cut it at the
 * deadline, or silent, the loader's own read timed out first: both count
 * x-channel-timeout from the hello): nothing of that peer touched the guest, so forget
 * its session, stop and join its other channels and listen again (status setup, not
 * failed); this thread itself is joined when the next main channel starts. Under
 * open_lock, so no channel is admitted meanwhile. Returns FALSE, doing nothing, for
 * any other failure. */
static gboolean unbind_overdue(MigSession *s, gboolean silent)
{
	Dst *d = s->dst;
	gboolean overdue;
	guint64 waited;

	g_mutex_lock(&d->open_lock);
	g_mutex_lock(&s->lock);
	/* an fd: incoming has no listener to go back to: there the peer just failed */
	overdue = (d->setup_overdue || silent) && !d->received && d->listen_fd >= 0;
	for (guint i = 0; overdue && i < MIG_PREEMPT_MAX; i++) {
		if (d->urgent_fd[i] >= 0)
			shutdown(d->urgent_fd[i], SHUT_RDWR);
	}
	g_mutex_unlock(&s->lock);
	if (!overdue) {
		g_mutex_unlock(&d->open_lock);
		return FALSE;
	}
	mig_mf_dst_abort(s);
	mig_mf_dst_join(s);
	g_mutex_lock(&d->mf_lock);
	d->mf_quit = FALSE;
	d->mf_synced = 0;
	d->mf_released = 0;
	g_mutex_unlock(&d->mf_lock);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++) {
		if (d->urgent_thread[i])
			g_thread_join(d->urgent_thread[i]);
		d->urgent_thread[i] = NULL;
	}
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++) {
		if (d->urgent_fd[i] >= 0)
			mig_io_close(d->urgent_fd[i]);
		d->urgent_fd[i] = -1;
	}
	g_mutex_lock(&d->rp_lock);
	if (d->stream_file)   /* a dup from an fd set shares the set's lock (filelock.h) */
		mig_file_unlock(d->fd, d->stream_offset);
	mig_io_close(d->fd);
	d->fd = -1;
	g_mutex_unlock(&d->rp_lock);
	waited = d->p.x_channel_timeout;
	mig_params_clear(&d->p);
	memset(&d->p, 0, sizeof(d->p));
	memset(s->session_id, 0, sizeof(s->session_id));
	d->incoming_started = FALSE;
	d->pass_done = 0;
	d->setup_deadline = 0;
	d->setup_overdue = FALSE;
	d->mf_connected = 0;
	d->stale_main = TRUE;
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	g_mutex_unlock(&s->lock);
	g_mutex_unlock(&d->open_lock);
	mig_log(s, MIG_LOG_WARNING, "the main channel's peer sent no setup frame within %" G_GUINT64_FORMAT
		" ms of its hello (x-channel-timeout): dropped it, listening again", waited);
	return TRUE;
}

/* The channels and threads of a postcopy that broke: shut, joined, closed; their
 * half-assembled huge pages dropped (the received bitmap never counted them). The
 * fault thread and userfaultfd stay: vCPUs on missing pages wait. */
static void pause_teardown(Loader *d)
{
	MigSession *s = d->s;
	Dst *dst = s->dst;
	GThread *ut[MIG_PREEMPT_MAX];

	mig_dst_beat_stop(s);   /* it writes on the main channel, closed below */
	g_mutex_lock(&s->lock);
	dst->urgent_stop = TRUE;   /* those started ahead and still unused */
	g_cond_broadcast(&dst->urgent_cond);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++) {
		ut[i] = g_steal_pointer(&dst->urgent_thread[i]);
		if (dst->urgent_fd[i] >= 0)
			shutdown(dst->urgent_fd[i], SHUT_RDWR);
	}
	g_mutex_unlock(&s->lock);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		if (ut[i])
			g_thread_join(ut[i]);
	mig_mf_dst_abort(s);
	mig_mf_dst_join(s);
	/* last: every old thread that could report its channel lost (which sets
	 * mf_quit) is joined, so the resumed receivers start clean */
	g_mutex_lock(&dst->mf_lock);
	dst->mf_quit = FALSE;
	dst->mf_synced = 0;
	g_mutex_unlock(&dst->mf_lock);
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++) {
		if (dst->urgent_fd[i] >= 0)
			mig_io_close(dst->urgent_fd[i]);
		dst->urgent_fd[i] = -1;
		dst->urgent_go[i] = FALSE;
	}
	dst->urgent_stop = FALSE;
	dst->mf_connected = 0;
	g_mutex_lock(&dst->rp_lock);
	if (dst->fd >= 0)
		mig_io_close(dst->fd);
	dst->fd = d->fd = -1;
	g_mutex_unlock(&dst->rp_lock);
	g_mutex_unlock(&s->lock);
	mig_huge_asm_clear(&d->hasm);
}

/* Paused: waits for migrate-recover and the source's resumed main channel, then runs
 * the handshake; a failure there pauses again, as often as it takes. FALSE when the
 * session goes away meanwhile. */
static gboolean pause_and_recover(Loader *d)
{
	MigSession *s = d->s;
	Dst *dst = s->dst;

	for (;;) {
		g_autoptr(GError) err = NULL;
		g_autoptr(GByteArray) answer = NULL;
		gboolean quit;
		guint64 asked;

		pause_teardown(d);
		/* every thread that places pages is joined: the received bitmaps hold still
		 * until the answer has left, so it is built here, not on the resume's path */
		answer = mig_dst_recover_answer(s);
		if (dst->test_before_ready)
			dst->test_before_ready(s);
		g_mutex_lock(&s->lock);
		/* as the answer, the preempt channels' threads: started here, they wait for
		 * their channel (start_channel), and the next teardown joins them */
		for (guint i = 0; i < dst->urgent_expected && !d->inline_run; i++) {
			char name[16];

			g_snprintf(name, sizeof(name), "mig/dst/urg/%u", i);
			dst->urgent_thread[i] = g_thread_new(name, urgent_thread, urgent_arg_new(s, i, TRUE));
		}
		dst->paused_ready = TRUE;
		g_cond_broadcast(&dst->recover_cond);
		if (d->inline_run && dst->inline_resume_fd >= 0) {
			int fd = dst->inline_resume_fd;

			/* what migrate-recover and its listener would do, on this thread */
			dst->inline_resume_fd = -1;
			if (s->status == MIG_STATUS_POSTCOPY_PAUSED)
				mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER_SETUP);
			g_mutex_unlock(&s->lock);
			mig_dst_accept(s, fd);
			g_mutex_lock(&s->lock);
		}
		while (!dst->quit && dst->fd < 0 && !d->inline_run)
			g_cond_wait(&dst->recover_cond, &s->lock);
		/* inline, no channel came back: nothing else will */
		quit = dst->quit || dst->fd < 0;
		dst->paused_ready = FALSE;
		d->fd = dst->fd;
		g_mutex_unlock(&s->lock);
		if (quit)
			return FALSE;
		if (mig_dst_recover_handshake(s, d->fd, answer, &asked, &err)) {
			g_mutex_lock(&s->lock);
			/* a pause may have come meanwhile: then the loop below finds the
			 * channel shut and pauses again */
			if (s->status == MIG_STATUS_POSTCOPY_RECOVER) {
				g_clear_pointer(&s->error, g_free);
				mig_set_status_locked(s, MIG_STATUS_POSTCOPY_ACTIVE);
			}
			g_mutex_unlock(&s->lock);
			/* the source bounds its return path's reads again from RP_RESUME_ACK */
			if (!d->inline_run)
				mig_dst_beat_start(s);
			/* after the status: a log line is the host's work, not the resume's */
			mig_log(s, MIG_LOG_INFO, "postcopy resumed: %" G_GUINT64_FORMAT " outstanding page requests asked again",
				asked);
			return TRUE;
		}
		mig_dst_postcopy_lost(s, err->message);
	}
}

static gpointer dst_main_thread(gpointer opaque)
{
	Loader d = { .s = opaque, .max_frame = MIG_FRAME_MAX_LEN };
	MigSession *s = d.s;
	g_autoptr(GError) err = NULL;
	gboolean paused = FALSE;

	g_mutex_lock(&s->lock);
	d.fd = s->dst->fd;
	d.inline_run = s->dst->inline_main;
	g_mutex_unlock(&s->lock);
	/* the source bounds its reads of the return path from its hello on (an inline run
	 * has its caller's thread only, and a harness reads nothing back in time) */
	if (!d.inline_run)
		mig_dst_beat_start(s);
	while (!load_loop(&d, &err)) {
		/* a silent peer whose SETUP never came: nothing of it touched the guest */
		if (unbind_overdue(s, !d.have_setup && err->code == ETIMEDOUT)) {
			mig_dst_beat_stop(s);
			g_free(d.buf);
			return NULL;
		}
		/* the guest ran here: it waits for its pages, whatever broke */
		if (mig_dst_postcopy_lost(s, err->message)) {
			g_clear_error(&err);
			if (pause_and_recover(&d))
				continue;
			paused = TRUE;   /* and the session goes away */
			break;
		}
		{
			g_autofree char *why = NULL;
			struct iovec iov;

			/* the first failure is the cause (a multifd receiver may have stopped us);
			 * a cancel's own doing is no failure, but the source hears of it; a file
			 * that ends early: every read says so in its own words */
			if (!mig_dst_cancelled(s) && s->dst->stream_file && err->code == EPIPE)
				mig_session_report_error(s, "'%s' is truncated: the file ends before the migration stream "
							 "does (%s)", s->dst->stream_file, err->message);
			if (!mig_dst_cancelled(s))
				mig_session_report_error(s, "%s", err->message);
			if (d.ready && !mig_pc_dst_placing(s)) {
				/* precopy, the outcome unknown: every page and the state are here,
				 * so the operator may `cont` this side (never both) */
				g_mutex_lock(&s->lock);
				mig_set_runstate_locked(s, MIG_RUN_PAUSED);
				g_mutex_unlock(&s->lock);
				/* complete as far as this side knows: the VM's own checks
				 * (migd's integrity sweep) must run if the operator picks
				 * this side */
				if (s->vm->incoming_done)
					s->vm->incoming_done(s->vm_opaque);
			}
			mig_mf_dst_abort(s);
			mig_dst_beat_stop(s);   /* RP_ERROR is the last frame */
			g_mutex_lock(&s->lock);
			why = g_strdup(s->error ? s->error : err->message);
			g_mutex_unlock(&s->lock);
			iov = (struct iovec){ why, strlen(why) };
			mig_dst_rp_send(s, MIG_F_RP_ERROR, &iov, 1);
			mig_session_incoming_failed(s);
		}
		break;
	}
	/* never while paused: the guest would read zeros where pages are missing (the
	 * session's teardown stops it once no vCPU runs) */
	if (!paused)
		mig_pc_dst_stop(s);
	mig_dst_beat_stop(s);
	g_free(d.buf);
	mig_huge_asm_clear(&d.hasm);
	g_mutex_lock(&s->lock);
	g_mutex_lock(&s->dst->rp_lock);
	if (s->dst->fd >= 0) {
		shutdown(s->dst->fd, SHUT_RDWR);
		mig_io_close(s->dst->fd);
	}
	s->dst->fd = -1;
	g_mutex_unlock(&s->dst->rp_lock);
	g_mutex_unlock(&s->lock);
	return NULL;
}
