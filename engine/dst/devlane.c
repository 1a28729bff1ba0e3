/* The device lane's destination half: chunks from any channel are put back in order
 * per device (holding at most x-device-max-queued bytes; a receiver whose chunk does
 * not fit waits with the chunk still in its socket, so TCP pushes back on the source)
 * and written to each device by a bounded pool of load threads, devices in parallel. */
#include "engine/dst/devlane.h"
#include "engine/dst/silence.h"
#include "engine/bufpool.h"
#include "engine/pipepool.h"
#include "engine/multifd.h"
#include "channels/frame.h"
#include "channels/wire.h"
#include "channels/io.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define END_WAIT_S 300   /* DEV_END waits this long at most for the loads to finish */

typedef struct Chunk {
	guint64 seq;
	guint32 len, flags;
	/* The chunk's first plen[0] bytes, spliced from the socket, then plen[1] more in a
	 * second pipe: a pipe counts buffers, and the socket's fragments fill one before
	 * 1 MiB (about 5 % of a chunk is left over), which memory would cost two copies. */
	MigPipe pipe[2];
	guint32 plen[2];
	guint8 *data;           /* the rest (all of it without a pipe), read into memory */
} Chunk;

typedef struct DevIn {
	struct DevDst *dd;
	MigDevice *d;
	int fd;                 /* RESUMING's write end (non-blocking), -1 once closed */
	gboolean splice;        /* fd is a pipe: chunks go socket -> pipe -> device uncopied */
	guint64 next_in;        /* the next sequence number to go to ready */
	GHashTable *pending;    /* seq -> Chunk*: arrived ahead of its turn */
	GQueue ready;           /* Chunk*, in order, for the load pool */
	gboolean loading;       /* a pool thread owns ready now */
	guint64 loaded_bytes;
	gint64 t_first_sc, t_done;
	gboolean ended;         /* DEV_END's verdict was taken */
} DevIn;

typedef struct DevDst {
	MigSession *s;
	guint n;
	DevIn *in;
	GMutex lock;
	GCond cond;             /* room in the queue, a chunk loaded, or quit */
	guint64 held, cap;      /* bytes in pending and ready, and their limit */
	guint64 peak;           /* the most ever held (x-device-queued-peak) */
	GThreadPool *pool;      /* exclusive: its threads are ours alone and end with it */
	gboolean quit;
	gboolean have_end;
	MigBufPool *bufs;       /* chunk payloads, recycled */
	MigPipePool *pipes;     /* chunk pipes, likewise */
} DevDst;

static gint64 now_us(void)
{
	return g_get_monotonic_time();
}

/* sent: the chunk reached its device, so its pipe (if any) is empty */
static void chunk_free(Chunk *c, DevDst *dd, gboolean sent)
{
	if (c) {
		mig_buf_put(dd->bufs, c->data);
		mig_pipe_put(dd->pipes, &c->pipe[0], sent);
		mig_pipe_put(dd->pipes, &c->pipe[1], sent);
		g_free(c);
	}
}

static DevDst *lane(MigSession *s)
{
	return s->dst ? s->dst->devdst : NULL;
}

/* Hands len bytes to the device: spliced from the pipe pr, or written from p when pr
 * is -1. Waits for the device to take them, but gives up when the migration is torn
 * down (a device that stopped reading must not hang us). */
static int feed_device(DevDst *dd, int fd, int pr, const guint8 *p, gsize len)
{
	while (len) {
		ssize_t n = pr >= 0 ? splice(pr, NULL, fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
				    : write(fd, p, len);

		if (n > 0) {
			__atomic_fetch_add(&dd->s->dst->dev_fed, (guint64)n, __ATOMIC_RELAXED);
			if (pr < 0)   /* p is NULL when splicing: no arithmetic on it */
				p += n;
			len -= (gsize)n;
			continue;
		}
		if (n == 0)
			return -ENODATA;   /* the source of a splice ended (a write never returns 0) */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		{
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			if (__atomic_load_n(&dd->quit, __ATOMIC_ACQUIRE))
				return -ECANCELED;
			if (poll(&pf, 1, 100) < 0 && errno != EINTR)
				return -errno;
		}
	}
	return 0;
}

static void stop_lane(DevDst *dd);

/* The loader notices, stops the receivers and answers the source. The cause is
 * recorded (and the receivers told to quit) before the lane stops: a receiver woken
 * by the stop must find it, not report "the device lane stopped" as the first error. */
static void fail_migration(DevDst *dd, const char *msg)
{
	mig_dst_fail(dd->s, msg);
	stop_lane(dd);
}

/* A device that stopped taking its state (EPIPE) knows why: its verdict says it. */
static char *why_load_failed(DevIn *in, int rc)
{
	g_autoptr(GError) e = NULL;

	if (rc == -EPIPE && in->d->state == MIG_DEV_RESUMING &&
	    !mig_device_set_state(in->d, MIG_DEV_STOP, NULL, &e))
		return g_strdup(e->message);
	return g_strdup_printf("device '%s': loading state: %s", in->d->id, g_strerror(-rc));
}

/* Pool job: loads what is ready for one device, in order. */
static void load_job(gpointer data, gpointer user)
{
	DevIn *in = data;
	DevDst *dd = user;

	pthread_setname_np(pthread_self(), "mig/dst/load");
	mig_io_block_sigpipe();
	g_mutex_lock(&dd->lock);
	for (;;) {
		Chunk *c = g_queue_pop_head(&in->ready);
		int rc;

		if (!c || dd->quit) {
			chunk_free(c, dd, FALSE);
			break;
		}
		g_mutex_unlock(&dd->lock);
		if ((c->flags & MIG_DEV_F_STOP_COPY) && !in->t_first_sc)
			in->t_first_sc = now_us();
		rc = c->plen[0] ? feed_device(dd, in->fd, c->pipe[0].r, NULL, c->plen[0]) : 0;
		if (rc == 0 && c->plen[1])
			rc = feed_device(dd, in->fd, c->pipe[1].r, NULL, c->plen[1]);
		if (rc == 0 && c->len > c->plen[0] + c->plen[1])
			rc = feed_device(dd, in->fd, -1, c->data, c->len - c->plen[0] - c->plen[1]);
		g_mutex_lock(&dd->lock);
		dd->held -= c->len;
		if (rc == 0) {
			in->loaded_bytes += c->len;
		}
		chunk_free(c, dd, rc == 0);
		g_cond_broadcast(&dd->cond);
		if (rc < 0) {
			g_autofree char *msg = why_load_failed(in, rc);

			/* the cause is recorded before anyone is woken to report a consequence */
			g_mutex_unlock(&dd->lock);
			if (rc != -ECANCELED)
				fail_migration(dd, msg);
			g_mutex_lock(&dd->lock);
			dd->quit = TRUE;
			break;
		}
	}
	in->loading = FALSE;
	g_cond_broadcast(&dd->cond);
	g_mutex_unlock(&dd->lock);
}

/* Moves the chunks that are next in line to ready and gets a loader on them. Call with
 * dd->lock held. */
static void promote(DevDst *dd, DevIn *in)
{
	Chunk *c;

	while ((c = g_hash_table_lookup(in->pending, &in->next_in))) {
		g_hash_table_steal(in->pending, &in->next_in);
		g_queue_push_tail(&in->ready, c);
		in->next_in++;
	}
	if (!in->loading && !g_queue_is_empty(&in->ready)) {
		in->loading = TRUE;
		/* made for the first chunk the lane brings: a serial stream never needs it */
		if (!dd->pool)
			dd->pool = g_thread_pool_new(load_job, dd, (gint)MIN((guint64)dd->n, dd->s->dst->p.x_device_load_threads),
						     TRUE, NULL);
		g_thread_pool_push(dd->pool, in, NULL);
	}
}

gboolean mig_dev_dst_setup(MigSession *s, const guint8 *p, gsize len, gsize *off, GError **err)
{
	MigWireRd r = mig_wire_rd(p + *off, *off <= len ? len - *off : 0);
	DevDst *dd;
	guint32 n;

	if (mig_rd_be32(&r, &n) < 0) {
		g_set_error(err, MIG_ERROR, EPROTO, "setup frame truncated (device list)");
		return FALSE;
	}
	if (n != s->devices->len) {
		g_set_error(err, MIG_ERROR, EINVAL, "the source has %u devices, this destination %u", n, s->devices->len);
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		MigDevice *d = g_ptr_array_index(s->devices, i);
		const guint8 *id;
		guint8 l;

		if (mig_rd_str8(&r, &id, &l) < 0) {
			g_set_error(err, MIG_ERROR, EPROTO, "setup frame truncated (device list)");
			return FALSE;
		}
		if (l != strlen(d->id) || memcmp(id, d->id, l)) {
			g_set_error(err, MIG_ERROR, EINVAL, "device %u is '%.*s' on the source, '%s' here", i, l,
				    (const char *)id, d->id);
			return FALSE;
		}
	}
	*off = len - r.left;
	dd = g_new0(DevDst, 1);
	dd->s = s;
	dd->n = n;
	dd->in = g_new0(DevIn, n);
	dd->cap = MAX(s->dst->p.x_device_max_queued, 2ull * MIG_DEV_CHUNK);
	/* what the queue can hold, plus a chunk per receiver reading one */
	dd->bufs = mig_buf_pool_new(MIG_DEV_CHUNK, (guint)MIN(dd->cap / MIG_DEV_CHUNK + 64, 1024u));
	dd->pipes = mig_pipe_pool_new(MIG_DEV_CHUNK, (guint)MIN(2 * (dd->cap / MIG_DEV_CHUNK) + 16, 512u));
	mig_io_block_sigpipe();   /* serially, this (loader) thread writes to the devices */
	g_mutex_init(&dd->lock);
	g_cond_init(&dd->cond);
	for (guint i = 0; i < n; i++) {
		dd->in[i].dd = dd;
		dd->in[i].d = g_ptr_array_index(s->devices, i);
		dd->in[i].fd = -1;
		dd->in[i].pending = g_hash_table_new(g_int64_hash, g_int64_equal);
		dd->in[i].d->bytes = dd->in[i].d->load_us = 0;
	}
	s->dst->devdst = dd;
	if (!n)
		return TRUE;
	for (guint i = 0; i < n; i++) {
		DevIn *in = &dd->in[i];

		if (!mig_device_set_state(in->d, MIG_DEV_RESUMING, &in->fd, err))
			return FALSE;
		if (in->fd < 0) {
			g_set_error(err, MIG_ERROR, EPROTO, "device '%s': RESUMING gave no data fd", in->d->id);
			return FALSE;
		}
		fcntl(in->fd, F_SETFL, fcntl(in->fd, F_GETFL) | O_NONBLOCK);
		{
			struct stat st;

			in->splice = fstat(in->fd, &st) == 0 && S_ISFIFO(st.st_mode);
		}
	}
	return TRUE;
}

static gboolean read_hdr(DevDst *dd, int fd, guint32 len, DevIn **inp, guint64 *seq, guint32 *flags,
			 const char *where, GError **err)
{
	guint8 raw[MIG_DEV_HDR_LEN];
	guint32 dev;
	int rc;

	if (!dd) {
		g_set_error(err, MIG_ERROR, EPROTO, "%s: device state before the setup frame", where);
		return FALSE;
	}
	if (len < MIG_DEV_HDR_LEN || len - MIG_DEV_HDR_LEN > MIG_DEV_CHUNK || len == MIG_DEV_HDR_LEN) {
		g_set_error(err, MIG_ERROR, EPROTO, "%s: device chunk of %u bytes", where, len);
		return FALSE;
	}
	if ((rc = mig_io_read_full(fd, raw, sizeof(raw))) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "%s: stream truncated: %s", where, g_strerror(-rc));
		return FALSE;
	}
	mig_get_head16(raw, &dev, flags, seq);
	if (dev >= dd->n) {
		g_set_error(err, MIG_ERROR, EPROTO, "%s: chunk for device %u of %u", where, dev, dd->n);
		return FALSE;
	}
	*inp = &dd->in[dev];
	if ((*inp)->ended || (*inp)->fd < 0) {
		g_set_error(err, MIG_ERROR, EPROTO, "%s: device '%s': chunk after its end", where, (*inp)->d->id);
		return FALSE;
	}
	return TRUE;
}

gboolean mig_dev_dst_chunk_mf(MigSession *s, int fd, guint32 len, GError **err)
{
	DevDst *dd = lane(s);
	DevIn *in;
	Chunk *c;
	guint64 seq;
	guint32 flags, n = len - MIG_DEV_HDR_LEN;
	int rc;

	if (!read_hdr(dd, fd, len, &in, &seq, &flags, "multifd", err))
		return FALSE;
	g_mutex_lock(&dd->lock);
	if (seq < in->next_in || g_hash_table_contains(in->pending, &seq)) {
		g_mutex_unlock(&dd->lock);
		g_set_error(err, MIG_ERROR, EPROTO, "device '%s': chunk %" G_GUINT64_FORMAT " arrived twice", in->d->id, seq);
		return FALSE;
	}
	/* the next chunk in line always fits (see devlane.h); others leave it room */
	while (!dd->quit && dd->held + n > dd->cap - (seq == in->next_in ? 0 : MIG_DEV_CHUNK))
		g_cond_wait(&dd->cond, &dd->lock);
	if (dd->quit) {
		g_mutex_unlock(&dd->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "device lane stopped");
		return FALSE;
	}
	dd->held += n;
	dd->peak = MAX(dd->peak, dd->held);
	g_mutex_unlock(&dd->lock);

	c = g_new0(Chunk, 1);
	c->seq = seq;
	c->len = n;
	c->flags = flags;
	c->pipe[0] = c->pipe[1] = (MigPipe){ -1, -1 };
	rc = 0;
	/* what two pipes do not take (tiny fragments) is read into memory */
	for (guint k = 0, left = n; rc == 0 && in->splice && left && k < 2; k++) {
		gssize got;

		if (mig_pipe_get(dd->pipes, &c->pipe[k]) < 0)
			break;
		got = mig_io_splice_fill(fd, c->pipe[k].w, left);
		rc = got < 0 ? (int)got : 0;
		c->plen[k] = got < 0 ? 0 : (guint32)got;
		left -= c->plen[k];
	}
	if (rc == 0 && c->plen[0] + c->plen[1] < n) {
		c->data = mig_buf_get(dd->bufs);
		rc = mig_io_read_full(fd, c->data, n - c->plen[0] - c->plen[1]);
	}
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "multifd: device chunk truncated: %s", g_strerror(-rc));
		g_mutex_lock(&dd->lock);
		dd->held -= n;
		g_cond_broadcast(&dd->cond);
		g_mutex_unlock(&dd->lock);
		chunk_free(c, dd, FALSE);
		return FALSE;
	}
	mig_atomic_add(&s->stats.transferred, MIG_FRAME_HDR_LEN + (guint64)len);
	g_mutex_lock(&dd->lock);
	/* checked again with the insert: the same chunk may have been read on another
	 * channel meanwhile, and a second insert would drop the first (leaked, counted) */
	if (seq < in->next_in || g_hash_table_contains(in->pending, &seq)) {
		dd->held -= n;
		g_cond_broadcast(&dd->cond);
		g_mutex_unlock(&dd->lock);
		chunk_free(c, dd, FALSE);
		g_set_error(err, MIG_ERROR, EPROTO, "device '%s': chunk %" G_GUINT64_FORMAT " arrived twice", in->d->id, seq);
		return FALSE;
	}
	g_hash_table_insert(in->pending, &c->seq, c);
	promote(dd, in);
	g_mutex_unlock(&dd->lock);
	return TRUE;
}

gboolean mig_dev_dst_chunk_serial(MigSession *s, int fd, guint32 len, GError **err)
{
	DevDst *dd = lane(s);
	DevIn *in;
	guint64 seq;
	guint32 flags, n = len - MIG_DEV_HDR_LEN;
	guint8 *buf = NULL;
	int rc;

	if (!read_hdr(dd, fd, len, &in, &seq, &flags, "main channel", err))
		return FALSE;
	if (seq != in->next_in) {
		g_set_error(err, MIG_ERROR, EPROTO, "device '%s': chunk %" G_GUINT64_FORMAT " where %" G_GUINT64_FORMAT
			    " was due", in->d->id, seq, in->next_in);
		return FALSE;
	}
	/* serial: the loader itself loads, and reads nothing else meanwhile */
	if ((flags & MIG_DEV_F_STOP_COPY) && !in->t_first_sc)
		in->t_first_sc = now_us();
	if (in->splice && !mig_io_is_tls(fd)) {
		/* straight from the socket into the device: the same single copy as the lane
		 * (TLS has to decrypt in user memory first) */
		rc = feed_device(dd, in->fd, fd, NULL, n);
	} else {
		buf = mig_buf_get(dd->bufs);
		rc = mig_io_read_full(fd, buf, n);
		if (rc < 0)
			rc = -ENODATA;
		else
			rc = feed_device(dd, in->fd, -1, buf, n);
		mig_buf_put(dd->bufs, buf);
	}
	if (rc == -ENODATA) {
		g_set_error(err, MIG_ERROR, EPIPE, "device '%s': chunk truncated", in->d->id);
		return FALSE;
	}
	mig_atomic_add(&s->stats.transferred, (guint64)len);
	if (rc < 0) {
		g_autofree char *msg = why_load_failed(in, rc);

		g_set_error(err, MIG_ERROR, -rc, "%s", msg);
		return FALSE;
	}
	in->next_in++;
	in->loaded_bytes += n;
	return TRUE;
}

/* Every chunk the source counted has been loaded (or the lane stopped). Bounded by
 * the source's silence on the multifd channels while chunks are due from it
 * (silence.h), and by END_WAIT_S while a device takes its time loading what came; a
 * cancel or quit stops the lane (dd->quit). */
static gboolean wait_loaded(DevDst *dd, DevIn *in, guint64 chunks, GError **err)
{
	gint64 end = g_get_monotonic_time() + END_WAIT_S * G_TIME_SPAN_SECOND;
	MigDstSilence w;
	gboolean ok = TRUE;

	mig_dst_silence_init(&w, dd->s, FALSE);
	g_mutex_lock(&dd->lock);
	while (!dd->quit && (in->next_in < chunks || in->loading || !g_queue_is_empty(&in->ready))) {
		gboolean local = in->loading || !g_queue_is_empty(&in->ready);
		gint64 left;

		g_mutex_unlock(&dd->lock);
		/* a load under way waits on this side, not on the peer */
		if (local)
			mig_dst_silence_touch(&w);
		left = mig_dst_silence_left(&w);
		g_mutex_lock(&dd->lock);
		if (dd->quit || (in->next_in >= chunks && !in->loading && g_queue_is_empty(&in->ready)))
			break;
		if (!left) {
			g_set_error(err, MIG_ERROR, ETIMEDOUT, "device '%s': %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
				    " chunks arrived: nothing came on the multifd channels for %" G_GUINT64_FORMAT
				    " ms (x-channel-timeout)", in->d->id, in->next_in, chunks, mig_dst_silence_ms(&w));
			ok = FALSE;
			break;
		}
		if (!g_cond_wait_until(&dd->cond, &dd->lock, MIN(end, g_get_monotonic_time() + mig_dst_silence_slice_us(&w, left))) &&
		    g_get_monotonic_time() >= end) {
			g_set_error(err, MIG_ERROR, ETIMEDOUT, "device '%s': %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
				    " chunks after %d s", in->d->id, in->next_in, chunks, END_WAIT_S);
			ok = FALSE;
			break;
		}
	}
	g_mutex_unlock(&dd->lock);
	if (ok && dd->quit) {
		MigSession *s = dd->s;

		/* whoever stopped the lane left the reason */
		g_mutex_lock(&s->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "%s", s->error ? s->error : "the device lane stopped");
		g_mutex_unlock(&s->lock);
		ok = FALSE;
	}
	return ok;
}

static gboolean any_chunk(gpointer key, gpointer value, gpointer data)
{
	return TRUE;
}

gboolean mig_dev_dst_end(MigSession *s, const guint8 *p, guint32 len, GError **err)
{
	DevDst *dd = lane(s);
	g_autoptr(GByteArray) rp = g_byte_array_new();
	MigWireRd r = mig_wire_rd(p, len);
	guint8 w[8];
	guint32 n;
	Chunk *stray;

	if (!dd || mig_rd_be32(&r, &n) < 0 || n != dd->n || r.left != 16ull * n) {
		g_set_error(err, MIG_ERROR, EPROTO, "malformed device end frame (%u bytes)", len);
		return FALSE;
	}
	if (dd->have_end) {
		g_set_error(err, MIG_ERROR, EPROTO, "device end frame sent twice");
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		DevIn *in = &dd->in[i];
		guint64 chunks = 0, bytes = 0;

		/* cannot fail: the length was checked */
		mig_rd_be64(&r, &chunks);
		mig_rd_be64(&r, &bytes);
		/* without multifd every chunk came on the main channel, which this thread
		 * reads: none is on its way, and waiting for a count the peer made up would
		 * hold the loader END_WAIT_S */
		if (s->dst->mf_expected && !wait_loaded(dd, in, chunks, err))
			return FALSE;
		if (in->next_in != chunks || in->loaded_bytes != bytes) {
			g_set_error(err, MIG_ERROR, EPROTO, "device '%s': loaded %" G_GUINT64_FORMAT " chunks (%" G_GUINT64_FORMAT
				    " bytes), the source sent %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " bytes)", in->d->id,
				    in->next_in, in->loaded_bytes, chunks, bytes);
			return FALSE;
		}
		/* a chunk past the count would otherwise sit in the queue unnoticed */
		g_mutex_lock(&dd->lock);
		stray = g_hash_table_find(in->pending, any_chunk, NULL);
		if (stray)
			g_set_error(err, MIG_ERROR, EPROTO, "device '%s': chunk %" G_GUINT64_FORMAT " is beyond the %"
				    G_GUINT64_FORMAT " the source sent", in->d->id, stray->seq, in->next_in);
		g_mutex_unlock(&dd->lock);
		if (stray)
			return FALSE;
	}
	/* every byte is with the devices: the write ends close, and each gives its verdict */
	for (guint i = 0; i < n; i++) {
		DevIn *in = &dd->in[i];

		close(in->fd);
		in->fd = -1;
		in->ended = TRUE;
		if (!mig_device_set_state(in->d, MIG_DEV_STOP, NULL, err))
			return FALSE;
		in->t_done = now_us();
	}
	mig_put_be32(w, n);
	g_byte_array_append(rp, w, 4);
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < dd->n; i++) {
		DevIn *in = &dd->in[i];
		guint64 us = in->t_first_sc ? (guint64)(in->t_done - in->t_first_sc) : 0;

		in->d->bytes = in->loaded_bytes;
		in->d->load_us = (gint64)us;
		mig_put_be64(w, us);
		g_byte_array_append(rp, w, 8);
	}
	g_mutex_unlock(&s->lock);
	dd->have_end = TRUE;
	{
		struct iovec iov = { rp->data, rp->len };

		mig_dst_rp_send(s, MIG_F_RP_DEVICES, &iov, 1);
	}
	return TRUE;
}

gboolean mig_dev_dst_complete_ok(MigSession *s)
{
	return !s->devices->len || (lane(s) && lane(s)->have_end);
}

/* The queue's peak or what it holds now, 0 before setup. */
static guint64 queued(MigSession *s, gboolean peak)
{
	DevDst *dd = lane(s);
	guint64 v;

	if (!dd)
		return 0;
	g_mutex_lock(&dd->lock);
	v = peak ? dd->peak : dd->held;
	g_mutex_unlock(&dd->lock);
	return v;
}

guint64 mig_dev_dst_queued_peak(MigSession *s)
{
	return queued(s, TRUE);
}

guint64 mig_dev_dst_held(MigSession *s)
{
	return queued(s, FALSE);
}

void mig_dev_dst_run(MigSession *s)
{
	for (guint i = 0; i < s->devices->len; i++) {
		MigDevice *d = g_ptr_array_index(s->devices, i);
		g_autoptr(GError) e = NULL;

		if (d->state == MIG_DEV_STOP && !mig_device_set_state(d, MIG_DEV_RUNNING, NULL, &e))
			mig_log(s, MIG_LOG_WARNING, "%s", e->message);
	}
}

static void stop_lane(DevDst *dd)
{
	if (!dd)
		return;
	g_mutex_lock(&dd->lock);
	dd->quit = TRUE;
	g_cond_broadcast(&dd->cond);
	g_mutex_unlock(&dd->lock);
}

void mig_dev_dst_abort(MigSession *s)
{
	stop_lane(lane(s));
}

void mig_dev_dst_free(MigSession *s)
{
	DevDst *dd = g_steal_pointer(&s->dst->devdst);

	if (!dd)
		return;
	stop_lane(dd);
	if (dd->pool)
		g_thread_pool_free(dd->pool, FALSE, TRUE);
	for (guint i = 0; i < dd->n; i++) {
		DevIn *in = &dd->in[i];

		if (in->fd >= 0) {
			g_autoptr(GError) e = NULL;

			/* an unfinished stream: the device says why it is incomplete, and is reset */
			close(in->fd);
			in->fd = -1;
			if (in->d->state == MIG_DEV_RESUMING)
				mig_device_set_state(in->d, MIG_DEV_STOP, NULL, &e);
		}
		{
			GHashTableIter it;
			gpointer c;
			Chunk *r;

			while ((r = g_queue_pop_head(&in->ready)))
				chunk_free(r, dd, FALSE);
			g_hash_table_iter_init(&it, in->pending);
			while (g_hash_table_iter_next(&it, NULL, &c))
				chunk_free(c, dd, FALSE);
			g_hash_table_destroy(in->pending);
		}
	}
	g_free(dd->in);
	mig_buf_pool_free(dd->bufs);
	mig_pipe_pool_free(dd->pipes);
	g_mutex_clear(&dd->lock);
	g_cond_clear(&dd->cond);
	g_free(dd);
}
