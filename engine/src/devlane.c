/* The device lane's source half: pre-copy data in the live phase, then one save thread
 * per device at switchover, each handing its chunks to whichever multifd sender is
 * free before any RAM batch; or, with the lane off, every device after the other on
 * the main channel (the serial baseline). */
#include "engine/src/devlane.h"
#include "engine/bufpool.h"
#include "engine/pipepool.h"
#include "channels/io.h"
#include "channels/frame.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct DevOut {
	DevSrc *ds;
	MigDevice *d;
	int fd;                 /* the current phase's data fd, -1 between phases */
	gboolean precopy;       /* the device is in PRE_COPY */
	gboolean splice;        /* its fd splices: chunks go device -> pipe -> socket uncopied */
	guint64 seq;            /* chunks sent (the next chunk's sequence number) */
	guint64 bytes, precopy_bytes;
	GThread *thread;        /* mig/src/save/N, at switchover with the lane on */
	GError *error;
	guint inflight;         /* chunks with a sender (under ds->lock) */
	gint64 t_save0, t_saved, t_first, t_written;
	gint64 load_us;         /* from RP_DEVICES */
} DevOut;

struct DevSrc {
	Src *src;
	MigSession *s;
	gboolean lane;          /* chunks over multifd; else serial on the main channel */
	guint n;
	DevOut *out;
	GMutex lock;
	GCond cond;             /* a chunk was written */
	MigBufPool *bufs;       /* chunk buffers, back from the senders */
	MigPipePool *pipes;     /* chunk pipes, likewise */
};

/* One chunk on its way: in a buffer, or waiting in a pipe. */
typedef struct OutChunk {
	DevOut *o;
	guint8 *buf;
	MigPipe pipe;
} OutChunk;

static gint64 now_us(void)
{
	return g_get_monotonic_time();
}

/* Reads up to len bytes; short only at EOF. */
static gssize read_upto(int fd, guint8 *buf, gsize len)
{
	gsize got = 0;

	while (got < len) {
		gssize r = read(fd, buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (gsize)r;
	}
	return (gssize)got;
}

static void chunk_release(OutChunk *c, gboolean sent)
{
	mig_buf_put(c->o->ds->bufs, c->buf);
	mig_pipe_put(c->o->ds->pipes, &c->pipe, sent);
	g_free(c);
}

/* A sender wrote (or failed to write) one of o's chunks. */
static void chunk_done(gpointer data, guint8 *buf, int rc)
{
	OutChunk *c = data;
	DevOut *o = c->o;
	DevSrc *ds = o->ds;

	chunk_release(c, rc == 0);
	g_mutex_lock(&ds->lock);
	o->inflight--;
	o->t_written = now_us();
	if (rc < 0 && !o->error)
		o->error = g_error_new(MIG_ERROR, -rc, "device '%s': sending state: %s", o->d->id, g_strerror(-rc));
	g_cond_broadcast(&ds->cond);
	g_mutex_unlock(&ds->lock);
}

/* Sends one chunk; takes c. */
static gboolean send_chunk(OutChunk *c, guint32 len, guint32 flags, GError **err)
{
	DevOut *o = c->o;
	DevSrc *ds = o->ds;
	guint8 hdr[MIG_DEV_HDR_LEN];
	guint64 seq = o->seq++;

	mig_put_head16(hdr, o->d->index, flags, seq);
	if ((flags & MIG_DEV_F_STOP_COPY) && !o->t_first)
		o->t_first = now_us();
	o->bytes += len;
	if (!(flags & MIG_DEV_F_STOP_COPY))
		o->precopy_bytes += len;
	if (ds->lane) {
		g_mutex_lock(&ds->lock);
		o->inflight++;
		g_mutex_unlock(&ds->lock);
		if (!mig_mf_src_queue_dev(ds->src->mf, hdr, sizeof(hdr), c->buf, c->pipe.r, len, chunk_done, c, err)) {
			chunk_release(c, FALSE);
			g_mutex_lock(&ds->lock);
			o->inflight--;
			g_mutex_unlock(&ds->lock);
			return FALSE;
		}
		return TRUE;
	}
	{
		struct iovec iov[2] = { { hdr, sizeof(hdr) }, { c->buf, len } };
		gboolean ok;

		if (c->buf) {
			ok = mig_src_send_frame(ds->src, MIG_F_DEV_DATA, iov, 2, err);
		} else {
			int rc;

			g_mutex_lock(&ds->src->wlock);
			rc = mig_frame_send_spliced(ds->src->fd, MIG_F_DEV_DATA, 0, hdr, sizeof(hdr), c->pipe.r, len);
			g_mutex_unlock(&ds->src->wlock);
			ok = rc == 0;
			if (ok)
				mig_atomic_add(&ds->s->stats.transferred, MIG_FRAME_HDR_LEN + sizeof(hdr) + (guint64)len);
			else
				g_set_error(err, MIG_ERROR, -rc, "sending device state: %s", g_strerror(-rc));
		}
		chunk_release(c, ok);
		o->t_written = now_us();
		return ok;
	}
}

/* Takes the next chunk of the device's state into c (spliced where it can be). */
static gssize take_chunk(DevOut *o, OutChunk *c, gsize want)
{
	if (o->splice) {
		gssize n;
		int rc = mig_pipe_get(o->ds->pipes, &c->pipe);

		n = rc < 0 ? rc : mig_io_splice_fill(o->fd, c->pipe.w, want);
		if (n != -EINVAL && rc == 0)
			return n;
		/* not a pipe-like fd (or no pipe to be had): read() from now on */
		mig_pipe_put(o->ds->pipes, &c->pipe, TRUE);
		o->splice = FALSE;
	}
	c->buf = mig_buf_get(o->ds->bufs);
	return read_upto(o->fd, c->buf, want);
}

/* Reads the open phase's data until EOF (limit G_MAXUINT64) or limit bytes. */
static gboolean stream_out(DevOut *o, guint64 limit, guint32 flags, GError **err)
{
	while (limit) {
		gsize want = (gsize)MIN((guint64)MIG_DEV_CHUNK, limit);
		OutChunk *c = g_new0(OutChunk, 1);
		gssize n;

		c->o = o;
		c->pipe = (MigPipe){ -1, -1 };
		n = take_chunk(o, c, want);
		if (n <= 0) {
			chunk_release(c, n == 0);
			if (n == 0 && limit != G_MAXUINT64) {
				g_set_error(err, MIG_ERROR, EPROTO, "device '%s': pre-copy data ended %" G_GUINT64_FORMAT
					    " bytes early", o->d->id, limit);
				return FALSE;
			}
			if (n < 0) {
				g_set_error(err, MIG_ERROR, (int)-n, "device '%s': reading state: %s", o->d->id,
					    g_strerror((int)-n));
				return FALSE;
			}
			return TRUE;
		}
		if (limit != G_MAXUINT64)
			limit -= (guint64)n;
		if (mig_src_cancelled(o->ds->src)) {
			chunk_release(c, FALSE);
			g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
			return FALSE;
		}
		if (!send_chunk(c, (guint32)n, flags, err))
			return FALSE;
	}
	return TRUE;
}

DevSrc *mig_dev_src_new(Src *src, GError **err)
{
	MigSession *s = src->s;
	DevSrc *ds = g_new0(DevSrc, 1);

	ds->src = src;
	ds->s = s;
	ds->lane = src->mf && s->caps[MIG_CAP_X_DEVICE_STATE_LANE];
	ds->n = s->devices->len;
	ds->out = g_new0(DevOut, ds->n);
	g_mutex_init(&ds->lock);
	g_cond_init(&ds->cond);
	/* in flight at once: one chunk per sender, plus one being read per device */
	ds->bufs = mig_buf_pool_new(MIG_DEV_CHUNK, ds->n + (src->mf ? mig_mf_src_channels(src->mf) : 0) + 1);
	ds->pipes = mig_pipe_pool_new(MIG_DEV_CHUNK, ds->n + (src->mf ? mig_mf_src_channels(src->mf) : 0) + 1);
	mig_io_block_sigpipe();   /* serially, this thread splices into the main channel */
	if (ds->lane) {
		guint64 k = src->p.x_device_chunks_in_flight;

		/* the CPUs this process may run on: its affinity, not the machine's */
		mig_mf_src_limit_dev(src->mf, k ? (guint)k : (guint)MAX(g_get_num_processors(), 1));
	}
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		o->ds = ds;
		o->d = g_ptr_array_index(s->devices, i);
		o->fd = -1;
		o->splice = TRUE;
		o->d->bytes = o->d->precopy_bytes = 0;
		o->d->save_us = o->d->transfer_us = o->d->load_us = 0;
	}
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		if (!o->d->ops->precopy_info)
			continue;
		if (!mig_device_set_state(o->d, MIG_DEV_PRE_COPY, &o->fd, err)) {
			mig_dev_src_free(ds, TRUE);
			return NULL;
		}
		o->precopy = TRUE;
	}
	return ds;
}

gboolean mig_dev_src_precopy(DevSrc *ds, GError **err)
{
	for (guint i = 0; ds && i < ds->n; i++) {
		DevOut *o = &ds->out[i];
		guint64 initial = 0, dirty = 0;
		GError *e = NULL;

		if (!o->precopy)
			continue;
		if (!o->d->ops->precopy_info(o->d->opaque, &initial, &dirty, &e)) {
			g_set_error(err, MIG_ERROR, e ? e->code : EIO, "device '%s': pre-copy info: %s", o->d->id,
				    e ? e->message : "failed");
			g_clear_error(&e);
			return FALSE;
		}
		if (initial + dirty && !stream_out(o, initial + dirty, 0, err))
			return FALSE;
	}
	return TRUE;
}

static gpointer save_main(gpointer opaque)
{
	DevOut *o = opaque;
	GError *e = NULL;

	o->t_save0 = now_us();
	mig_io_block_sigpipe();
	if (!stream_out(o, G_MAXUINT64, MIG_DEV_F_STOP_COPY, &e)) {
		g_mutex_lock(&o->ds->lock);
		if (!o->error)
			o->error = e;
		else
			g_error_free(e);
		g_mutex_unlock(&o->ds->lock);
	}
	o->t_saved = now_us();
	return NULL;
}

gboolean mig_dev_src_stop_copy_begin(DevSrc *ds, GError **err)
{
	for (guint i = 0; ds && i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		if (o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
		/* VFIO goes RUNNING -> STOP -> STOP_COPY; PRE_COPY goes straight on */
		if (!o->precopy && !mig_device_set_state(o->d, MIG_DEV_STOP, NULL, err))
			return FALSE;
		o->precopy = FALSE;
		if (!mig_device_set_state(o->d, MIG_DEV_STOP_COPY, &o->fd, err))
			return FALSE;
		if (o->fd < 0) {
			g_set_error(err, MIG_ERROR, EPROTO, "device '%s': STOP_COPY gave no data fd", o->d->id);
			return FALSE;
		}
	}
	if (!ds || !ds->lane)
		return TRUE;
	for (guint i = 0; i < ds->n; i++) {
		g_autofree char *name = g_strdup_printf("mig/src/save/%u", i);

		ds->out[i].thread = g_thread_new(name, save_main, &ds->out[i]);
	}
	return TRUE;
}

void mig_dev_src_join(DevSrc *ds)
{
	for (guint i = 0; ds && i < ds->n; i++)
		if (ds->out[i].thread)
			g_thread_join(g_steal_pointer(&ds->out[i].thread));
}

gboolean mig_dev_src_stop_copy_end(DevSrc *ds, GError **err)
{
	g_autoptr(GByteArray) p = NULL;
	guint8 w[16];
	struct iovec iov;

	if (!ds || !ds->n)
		return TRUE;
	if (ds->lane) {
		mig_dev_src_join(ds);
	} else {
		for (guint i = 0; i < ds->n; i++) {
			DevOut *o = &ds->out[i];

			o->t_save0 = now_us();
			if (!stream_out(o, G_MAXUINT64, MIG_DEV_F_STOP_COPY, err))
				return FALSE;
			o->t_saved = now_us();
		}
	}
	/* every chunk on the wire before DEV_END counts them */
	g_mutex_lock(&ds->lock);
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		while (o->inflight && !o->error)
			g_cond_wait(&ds->cond, &ds->lock);
		if (o->error) {
			g_propagate_error(err, g_steal_pointer(&o->error));
			g_mutex_unlock(&ds->lock);
			return FALSE;
		}
	}
	g_mutex_unlock(&ds->lock);
	p = g_byte_array_new();
	mig_put_be32(w, ds->n);
	g_byte_array_append(p, w, 4);
	g_mutex_lock(&ds->s->lock);
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		mig_put_be64(w, o->seq);
		mig_put_be64(w + 8, o->bytes);
		g_byte_array_append(p, w, 16);
		o->d->bytes = o->bytes;
		o->d->precopy_bytes = o->precopy_bytes;
		o->d->save_us = o->t_saved - o->t_save0;
		o->d->transfer_us = o->t_first && o->t_written > o->t_first ? o->t_written - o->t_first : 0;
	}
	g_mutex_unlock(&ds->s->lock);
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		close(o->fd);
		o->fd = -1;
		if (!mig_device_set_state(o->d, MIG_DEV_STOP, NULL, err))
			return FALSE;
	}
	iov = (struct iovec){ p->data, p->len };
	return mig_src_send_frame(ds->src, MIG_F_DEV_END, &iov, 1, err);
}

guint64 mig_dev_src_expected_ms(DevSrc *ds, guint64 ram_bytes, guint64 bw)
{
	guint64 slowest = 0, sum = 0, total = 0;

	for (guint i = 0; ds && i < ds->n; i++) {
		DevOut *o = &ds->out[i];
		guint64 bytes = 0, rd = 0, ld = 0, ms = 0;

		/* what STOP_COPY would produce now, unread pre-copy bytes included */
		if (!o->d->ops->data_size(o->d->opaque, &bytes, NULL))
			continue;
		if (o->d->ops->rates)
			o->d->ops->rates(o->d->opaque, &rd, &ld);
		/* the device's own pace: reading out and loading overlap, the slower one rules */
		if (rd)
			ms = MAX(ms, bytes * 1000 / rd);
		if (ld)
			ms = MAX(ms, bytes * 1000 / ld);
		ms = MAX(ms, bytes * 1000 / MAX(bw, 1u));
		slowest = MAX(slowest, ms);
		sum += ms;
		total += bytes;
	}
	bw = MAX(bw, 1u);
	if (!ds || !ds->lane)
		return sum + ram_bytes * 1000 / bw;
	/* in parallel, sharing the wire with RAM: the slowest device, unless the wire is
	 * slower still */
	return MAX(slowest, (total + ram_bytes) * 1000 / bw);
}

gboolean mig_dev_src_loaded(DevSrc *ds, const guint8 *p, guint32 len, GError **err)
{
	MigWireRd r = mig_wire_rd(p, len);
	guint32 n;

	if (!ds || mig_rd_be32(&r, &n) < 0 || n != ds->n || r.left != 8ull * n) {
		g_set_error(err, MIG_ERROR, EPROTO, "malformed device report on the return path (%u bytes)", len);
		return FALSE;
	}
	g_mutex_lock(&ds->s->lock);
	for (guint i = 0; i < n; i++) {
		guint64 us = 0;

		mig_rd_be64(&r, &us);   /* cannot fail: the length was checked */
		ds->out[i].d->load_us = (gint64)us;
	}
	ds->s->stats.t_dev_loaded = now_us();
	g_mutex_unlock(&ds->s->lock);
	return TRUE;
}

void mig_dev_src_free(DevSrc *ds, gboolean resume)
{
	if (!ds)
		return;
	/* a save thread blocked on a sender returns once the senders are gone */
	mig_dev_src_join(ds);
	for (guint i = 0; i < ds->n; i++) {
		DevOut *o = &ds->out[i];

		if (o->fd >= 0)
			close(o->fd);
		/* the source VM runs again: so must its devices (VFIO: to RUNNING via STOP) */
		if (resume && o->d->state != MIG_DEV_RUNNING) {
			g_autoptr(GError) e = NULL;

			if (o->d->state != MIG_DEV_STOP && o->d->state != MIG_DEV_PRE_COPY)
				mig_device_set_state(o->d, MIG_DEV_STOP, NULL, &e);
			if (!e && !mig_device_set_state(o->d, MIG_DEV_RUNNING, NULL, &e))
				mig_log(ds->s, MIG_LOG_WARNING, "%s", e->message);
			else if (e)
				mig_log(ds->s, MIG_LOG_WARNING, "%s", e->message);
		}
		g_clear_error(&o->error);
	}
	g_free(ds->out);
	mig_buf_pool_free(ds->bufs);
	mig_pipe_pool_free(ds->pipes);
	g_mutex_clear(&ds->lock);
	g_cond_clear(&ds->cond);
	g_free(ds);
}

void mig_dev_setup_append(MigSession *s, GByteArray *p)
{
	guint8 n[4];

	mig_put_be32(n, s->devices->len);
	g_byte_array_append(p, n, 4);
	for (guint i = 0; i < s->devices->len; i++) {
		MigDevice *d = g_ptr_array_index(s->devices, i);
		guint8 len = (guint8)strlen(d->id);

		g_byte_array_append(p, &len, 1);
		g_byte_array_append(p, (guint8 *)d->id, len);
	}
}
