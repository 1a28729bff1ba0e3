/* Opening a source channel: connect, then this session's typed hello. One place, so
 * the main, multifd and preempt channels fail with the same words. The multifd and
 * preempt channels open all at once, each on its own thread: their round trips
 * (connect, TLS, hello) overlap instead of adding up. */
#include "engine/session_int.h"
#include "channels/hello.h"
#include "channels/uri.h"
#include "channels/io.h"
#include <errno.h>
#include "channels/tls.h"
#include "engine/tlscreds.h"
#include "engine/filelock.h"
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *chan_name(int type, guint index)
{
	return type == MIG_CHAN_MAIN ? g_strdup("main channel")
				     : g_strdup_printf("%s channel %u", mig_chan_type_str(type), index);
}

/* The URI as the user wrote it, near enough for an error message. */
static char *uri_str(const MigUri *uri)
{
	if (uri->kind == MIG_URI_UNIX)
		return g_strdup_printf("unix:%s", uri->path);
	if (uri->kind == MIG_URI_FD)
		return g_strdup_printf("fd:%s", uri->path);
	return g_strdup_printf(strchr(uri->host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s", uri->host, uri->port);
}

int mig_chan_connect(MigSession *s, const MigUri *uri, const MigParams *p, int type, guint index, GError **err)
{
	int fd = mig_uri_connect(uri, (int)p->x_channel_timeout);

	if (fd < 0) {
		g_autofree char *name = chan_name(type, index);
		g_autofree char *where = uri_str(uri);

		g_set_error(err, MIG_ERROR, -fd, "Failed to connect the %s to '%s': %s", name, where, g_strerror(-fd));
		return fd;
	}
	mig_chan_set_congestion(s, fd, p->x_tcp_congestion);
	mig_chan_set_liveness(s, fd, p->x_channel_timeout);
	return fd;
}

void mig_chan_set_liveness(MigSession *s, int fd, guint64 timeout_ms)
{
	int rc = mig_io_set_liveness(fd, (int)timeout_ms);

	/* a socket that refuses them still works; it only notices a dead peer later */
	if (rc < 0)
		mig_log(s, MIG_LOG_WARNING, "x-channel-timeout on a channel: %s", g_strerror(-rc));
}

void mig_chan_set_congestion(MigSession *s, int fd, const char *algo)
{
	int rc;

	/* checked when it was set: failing now (a module unloaded since) costs speed, not data */
	rc = mig_io_set_congestion(fd, algo);
	if (rc < 0)
		mig_log(s, MIG_LOG_WARNING, "x-tcp-congestion '%s': %s; the channel keeps the system's", algo, g_strerror(-rc));
}

/* With tls-creds the channel is TLS from its first byte, the hello inside it. */
static gboolean chan_tls(MigSession *s, int fd, const char *name, int timeout_ms, GError **err)
{
	SSL_CTX *ctx = NULL;
	g_autofree char *host = NULL;
	char why[512];
	int rc;

	g_mutex_lock(&s->lock);
	if (s->tls_src && s->tls_src->ctx) {
		ctx = s->tls_src->ctx;
		host = g_strdup(s->tls_src->host);
	}
	g_mutex_unlock(&s->lock);
	if (!ctx)
		return TRUE;
	/* the run holds its reference to ctx until the next migrate, which joins us first */
	rc = mig_tls_client(fd, ctx, host, timeout_ms, 0, why, sizeof(why));
	if (rc < 0)
		g_set_error(err, MIG_ERROR, -rc, "%s: TLS handshake failed: %s", name, why);
	return rc == 0;
}

gboolean mig_chan_hello(MigSession *s, int fd, const MigParams *p, int type, guint index, guint32 flags,
			GError **err)
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = (guint16)type, .index = index, .flags = flags };
	g_autofree char *name = chan_name(type, index);
	MigTls *tls;
	char msg[600];
	int rc;

	if (!chan_tls(s, fd, name, (int)p->x_channel_timeout, err))
		return FALSE;
	memcpy(h.session, s->session_id, sizeof(h.session));
	/* the reply is bounded like every wait on the peer; the send timeout stays */
	mig_io_set_recv_timeout(fd, (int)p->x_channel_timeout);
	rc = mig_hello_connect(fd, &h, msg, sizeof(msg));
	mig_io_set_recv_timeout(fd, 0);
	if (rc == 0) {
		mig_tls_note_channel(s, fd, type, index);
		return TRUE;
	}
	tls = mig_tls_of(fd);
	if (MIG_HELLO_REFUSED(rc)) {
		g_set_error(err, MIG_ERROR, EPROTO, "destination refused the %s: %s", name, msg);
	} else if (tls && (mig_tls_last_error(tls, msg, sizeof(msg)), msg[0])) {
		/* TLS 1.3 finishes the client's handshake before the server has checked the
		 * client's certificate: a refusal arrives as an alert on the first read */
		g_set_error(err, MIG_ERROR, -rc, "%s: the destination refused the TLS session: %s", name, msg);
	} else if (tls) {
		g_set_error(err, MIG_ERROR, -rc, "%s: the destination closed the TLS session before its reply (%s): "
			    "it may have refused this source's certificate, see its log", name, g_strerror(-rc));
	} else {
		g_set_error(err, MIG_ERROR, -rc, "%s: handshake failed: %s", name, g_strerror(-rc));
	}
	return FALSE;
}

int mig_session_take_fd(MigSession *s, const MigUri *uri, GError **err)
{
	int fd, rc;

	if (!s->fd_lookup) {
		g_set_error(err, MIG_ERROR, ENOTSUP, "fd:%s: this host passes no file descriptors", uri->path);
		return -1;
	}
	fd = s->fd_lookup(s->fd_opaque, uri->path, err);
	if (fd < 0)
		return -1;
	if ((rc = mig_uri_adopt_fd(fd)) < 0) {
		close(fd);
		g_set_error(err, MIG_ERROR, -rc, "fd:%s: %s (a migration needs a connected stream socket)", uri->path,
			    g_strerror(-rc));
		return -1;
	}
	return fd;
}

int mig_chan_file_out(MigSession *s, const MigUri *uri, GError **err)
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = MIG_CHAN_MAIN };
	guint8 buf[MIG_HELLO_LEN];
	int fd = mig_file_open(s, uri->file, O_WRONLY | O_CREAT, err), rc;

	if (fd < 0)
		return -1;
	if (!mig_file_lock(fd, uri->file, uri->offset, TRUE, err)) {
		close(fd);
		return -1;
	}
	/* an older save behind the offset is no longer there to be read as this one's tail */
	if (ftruncate(fd, (off_t)uri->offset) < 0 || lseek(fd, (off_t)uri->offset, SEEK_SET) < 0) {
		g_set_error(err, MIG_ERROR, errno, "cannot cut '%s' at offset %llu: %s", uri->file, uri->offset,
			    g_strerror(errno));
		mig_file_close(fd, uri->offset);
		return -1;
	}
	memcpy(h.session, s->session_id, sizeof(h.session));
	mig_hello_pack(&h, buf);
	if ((rc = mig_io_write_full(fd, buf, sizeof(buf))) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "writing to '%s': %s", uri->file, g_strerror(-rc));
		mig_file_close(fd, uri->offset);
		return -1;
	}
	return fd;
}

int mig_chan_file_in(MigSession *s, const MigUri *uri, GError **err)
{
	guint8 buf[MIG_HELLO_LEN];
	MigHello h;
	int fd = mig_file_open(s, uri->file, O_RDONLY, err), rc, status = 0;

	if (fd < 0)
		return -1;
	if (!mig_file_lock(fd, uri->file, uri->offset, FALSE, err)) {
		close(fd);
		return -1;
	}
	if (lseek(fd, (off_t)uri->offset, SEEK_SET) < 0) {
		g_set_error(err, MIG_ERROR, errno, "cannot seek '%s' to offset %llu: %s", uri->file, uri->offset,
			    g_strerror(errno));
		mig_file_close(fd, uri->offset);
		return -1;
	}
	rc = mig_io_read_full(fd, buf, sizeof(buf));
	if (rc == 0)
		rc = mig_hello_parse(buf, &h, &status);
	if (rc == 0 && (h.type != MIG_CHAN_MAIN || h.index || h.flags))
		rc = -EPROTO, status = MIG_HELLO_BAD_TYPE;
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, rc == -EPIPE ? EINVAL : -rc, "'%s' holds no migration stream at offset %llu: %s",
			    uri->file, uri->offset,
			    rc == -EPIPE ? "the file ends first (empty or truncated)"
			    : rc == -EPROTO ? (status == MIG_HELLO_BAD_TYPE ? "not a main channel's beginning"
									       : mig_hello_status_str(status))
			    : g_strerror(-rc));
		mig_file_close(fd, uri->offset);
		return -1;
	}
	memcpy(s->session_id, h.session, sizeof(h.session));
	return fd;
}

/* At most this many channels of a batch open at once: a destination says hello to 8
 * connections at a time (MIG_DST_OPENERS) and lets the rest wait for a while, and the
 * main channel's opener may still hold one of them. 7 is every channel of a migration
 * with up to 6 multifd channels and preempt in one round of round trips (a postcopy
 * recovery's count of them, docs/protocol.md). */
#define BATCH_PARALLEL 7

typedef struct BatchChan {
	int type;
	guint index;
	int fd;
	GError *err;
} BatchChan;

struct MigChanBatch {
	MigSession *s;
	/* gated: the channels wait for mig_chan_batch_aim before they connect, then for
	 * mig_chan_batch_gate before their hellos (gate 0 closed, 1 open, -1 the caller
	 * failed: close, say nothing) */
	gboolean gated;
	GMutex gate_lock;
	GCond gate_cond;
	gboolean aimed;     /* under gate_lock: uri is set */
	int gate;
	int watch_fd;       /* shut when a channel fails once the gate is open; -1: none */
	MigUri uri;
	const MigParams *p;
	guint32 flags;      /* every channel's hello flags */
	guint nmf, n;
	BatchChan *ch;      /* nmf multifd, then the preempt ones */
	guint next;         /* atomic: the next channel a worker takes */
	gint failed;        /* atomic: a channel failed, open no more */
	GThread *workers[BATCH_PARALLEL];
};

/* TRUE once the batch has its address; FALSE when the caller gave up before. */
static gboolean aim_passed(MigChanBatch *b)
{
	gboolean go;

	if (!b->gated)
		return TRUE;
	g_mutex_lock(&b->gate_lock);
	while (!b->aimed && b->gate >= 0)
		g_cond_wait(&b->gate_cond, &b->gate_lock);
	go = b->aimed && b->gate >= 0;
	g_mutex_unlock(&b->gate_lock);
	return go;
}

static gboolean gate_passed(MigChanBatch *b)
{
	gboolean go;

	if (!b->gated)
		return TRUE;
	g_mutex_lock(&b->gate_lock);
	while (!b->gate)
		g_cond_wait(&b->gate_cond, &b->gate_lock);
	go = b->gate > 0;
	g_mutex_unlock(&b->gate_lock);
	return go;
}

/* A mig/src/open worker: opens channels of the batch until none is left. */
static gpointer batch_worker(gpointer opaque)
{
	MigChanBatch *b = opaque;
	guint i;

	while ((i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED)) < b->n &&
	       !__atomic_load_n(&b->failed, __ATOMIC_RELAXED)) {
		BatchChan *c = &b->ch[i];
		int fd = aim_passed(b) ? mig_chan_connect(b->s, &b->uri, b->p, c->type, c->index, &c->err) : -1;

		if (fd >= 0 && (!gate_passed(b) || !mig_chan_hello(b->s, fd, b->p, c->type, c->index, b->flags, &c->err))) {
			mig_io_close(fd);
			fd = -1;
		}
		c->fd = fd;
		if (fd < 0) {
			__atomic_store_n(&b->failed, 1, __ATOMIC_RELAXED);
			g_mutex_lock(&b->gate_lock);
			if (b->watch_fd >= 0)
				shutdown(b->watch_fd, SHUT_RDWR);
			g_mutex_unlock(&b->gate_lock);
		}
	}
	return NULL;
}

static MigChanBatch *batch_start(MigSession *s, const MigUri *uri, const MigParams *p, guint nmf, guint npre,
				 guint32 flags, gboolean gated)
{
	MigChanBatch *b = g_new0(MigChanBatch, 1);

	b->s = s;
	if (uri)
		b->uri = *uri;
	b->p = p;
	b->flags = flags;
	b->nmf = nmf;
	b->n = nmf + npre;
	b->ch = g_new0(BatchChan, b->n);
	for (guint i = 0; i < b->n; i++) {
		b->ch[i].type = i < nmf ? MIG_CHAN_MULTIFD : MIG_CHAN_PREEMPT;
		b->ch[i].index = i < nmf ? i : i - nmf;
		b->ch[i].fd = -1;
	}
	b->gated = gated;
	b->watch_fd = -1;
	g_mutex_init(&b->gate_lock);
	g_cond_init(&b->gate_cond);
	/* the joining thread is the first worker (one channel costs no thread), unless
	 * the caller is busy with its main channel meanwhile */
	for (guint w = gated ? 0 : 1; w < MIN(b->n, BATCH_PARALLEL); w++)
		b->workers[w] = g_thread_new("mig/src/open", batch_worker, b);
	return b;
}

MigChanBatch *mig_chan_batch_start(MigSession *s, const MigUri *uri, const MigParams *p, guint nmf, guint npre,
				   guint32 flags)
{
	return batch_start(s, uri, p, nmf, npre, flags, FALSE);
}

MigChanBatch *mig_chan_batch_start_gated(MigSession *s, const MigParams *p, guint nmf, guint npre, guint32 flags)
{
	return batch_start(s, NULL, p, nmf, npre, flags, TRUE);
}

void mig_chan_batch_aim(MigChanBatch *b, const MigUri *uri)
{
	g_mutex_lock(&b->gate_lock);
	b->uri = *uri;
	b->aimed = TRUE;
	g_cond_broadcast(&b->gate_cond);
	g_mutex_unlock(&b->gate_lock);
}

void mig_chan_batch_gate(MigChanBatch *b, gboolean go, int watch_fd)
{
	g_mutex_lock(&b->gate_lock);
	b->gate = go ? 1 : -1;
	if (go) {
		b->watch_fd = watch_fd;
		if (watch_fd >= 0 && __atomic_load_n(&b->failed, __ATOMIC_RELAXED))
			shutdown(watch_fd, SHUT_RDWR);
	}
	g_cond_broadcast(&b->gate_cond);
	g_mutex_unlock(&b->gate_lock);
}

gboolean mig_chan_batch_join(MigChanBatch *b, int *mf_fds, int *pre_fds, GError **err)
{
	GError *first = NULL;

	batch_worker(b);
	for (guint w = 0; w < BATCH_PARALLEL; w++)
		if (b->workers[w])
			g_thread_join(b->workers[w]);
	for (guint i = 0; i < b->n; i++) {
		if (!first && b->ch[i].err)
			first = g_steal_pointer(&b->ch[i].err);
		g_clear_error(&b->ch[i].err);
	}
	/* closed by the caller's failure: the caller has the cause */
	if (!first && b->gate < 0 && b->n)
		first = g_error_new(MIG_ERROR, ECANCELED, "the main channel failed before the other channels' hellos");
	/* all or nothing: a channel that came up beside a failed one is closed again */
	for (guint i = 0; i < b->n; i++) {
		if (first) {
			if (b->ch[i].fd >= 0)
				mig_io_close(b->ch[i].fd);
		} else if (i < b->nmf) {
			mf_fds[i] = b->ch[i].fd;
		} else {
			pre_fds[i - b->nmf] = b->ch[i].fd;
		}
	}
	g_free(b->ch);
	g_mutex_clear(&b->gate_lock);
	g_cond_clear(&b->gate_cond);
	g_free(b);
	if (first)
		g_propagate_error(err, first);
	return first == NULL;
}
