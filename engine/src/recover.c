/* The source's side of the postcopy recovery handshake (docs/protocol.md, Postcopy
 * recovery): a new main channel with a RESUME hello, PC_RECOVER and PC_RESUME at once
 * (the other channels open meanwhile, and the destination waits for them before its
 * ack), then the destination's received bitmaps (everything it lacks becomes dirty
 * again, so the push re-sends exactly that) and RP_RESUME_ACK. Neither the bitmaps nor
 * the other channels' hellos cost the handshake a round trip of their own. postcopy.c
 * tears down, waits and restarts the threads around it. */
#include "engine/src/recover.h"
#include "engine/bitmap.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/io.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* every error of the handshake says so first */
#define rfail(err, code, fmt, ...) \
	(g_set_error((err), MIG_ERROR, (code), "postcopy recovery: " fmt, ##__VA_ARGS__), FALSE)

/* One return-path frame into a fresh buffer, at most max bytes of payload. */
static guint8 *read_rp(Src *src, MigFrameHdr *h, guint32 max, GError **err)
{
	g_autofree guint8 *buf = NULL;
	int rc;

	mig_src_feed(src);
	rc = mig_frame_recv_hdr(src->fd, h, max);

	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "postcopy recovery: reading the destination's reply: %s",
			    rc == -EPROTO ? "frame too long" : rc == -EPIPE ? "the destination closed the connection"
							    : g_strerror(-rc));
		return NULL;
	}
	buf = g_malloc(h->len + 1);
	if (h->len && (rc = mig_io_read_full(src->fd, buf, h->len)) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "postcopy recovery: reading the destination's reply: %s", g_strerror(-rc));
		return NULL;
	}
	buf[h->len] = 0;
	return g_steal_pointer(&buf);
}

/* A received bitmap: every field checked; the pages it lacks become dirty. */
static gboolean take_bitmap(Src *src, const guint8 *p, guint32 len, gboolean *seen, GError **err)
{
	MigWireRd r = mig_wire_rd(p, len);
	const guint8 *name, *bits;
	guint32 bi;
	guint64 npages;
	guint8 nl;
	SrcBlock *b;

	if (mig_rd_be32(&r, &bi) < 0 || mig_rd_str8(&r, &name, &nl) < 0 || mig_rd_be64(&r, &npages) < 0)
		return rfail(err, EPROTO, "received bitmap truncated");
	if (bi >= src->nblocks)
		return rfail(err, EPROTO, "received bitmap for RAM block %u of %u", bi, src->nblocks);
	b = &src->blocks[bi];
	if (nl != strlen(b->rb->name) || memcmp(name, b->rb->name, nl))
		return rfail(err, EPROTO, "received bitmap %u names '%.*s', here '%s'", bi, nl, (const char *)name, b->rb->name);
	if (npages != b->npages)
		return rfail(err, EPROTO, "received bitmap of '%s' has %" G_GUINT64_FORMAT " pages, here %" G_GSIZE_FORMAT,
			     b->rb->name, npages, b->npages);
	if (seen[bi])
		return rfail(err, EPROTO, "received bitmap of '%s' sent twice", b->rb->name);
	if (mig_rd_bytes(&r, (b->npages + 7) / 8, &bits) < 0 || r.left)
		return rfail(err, EPROTO, "received bitmap of '%s' is %u bytes, want %" G_GSIZE_FORMAT, b->rb->name,
			     len, (gsize)(len - r.left) + (b->npages + 7) / 8);
	seen[bi] = TRUE;
	/* the bits that land here are only ever set by this thread's push, which is not
	 * running: a plain rewrite is safe */
	mig_bitmap_from_bytes(b->dirty, b->npages, bits, TRUE);
	mig_groups_fill(b->groups, b->npages);
	return TRUE;
}

void mig_src_setup_announced(Src *src)
{
	MigSession *s = src->s;
	/* the dispatcher's own work, no peer's: a bound only against a stuck host */
	gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;

	while (src->setup_unannounced && g_cond_wait_until(&src->resume_cond, &s->lock, end))
		;
}

gboolean mig_src_recover_uri(Src *src, GError **err)
{
	if (mig_uri_parse(src->uri_text, &src->uri) < 0)
		return rfail(err, EINVAL, "invalid migration URI '%s'", src->uri_text);
	src->chan_flags = MIG_HELLO_F_RESUME;
	return TRUE;
}

gboolean mig_src_recover_begin(Src *src, MigChanBatch *lanes, GError **err)
{
	MigSession *s = src->s;
	gboolean ok;
	int fd;

	if (src->inline_run && src->inl.resume_fd >= 0) {
		fd = src->inl.resume_fd;   /* the harness's, once */
		src->inl.resume_fd = -1;
	} else {
		fd = mig_chan_connect(s, &src->uri, &src->p, MIG_CHAN_MAIN, 0, err);
	}
	if (fd < 0)
		return FALSE;
	/* the other channels connect once this one has: first, it is the first the
	 * destination accepts, and its connect does not share this host's CPUs with
	 * theirs; their connects then overlap this one's hello */
	mig_chan_batch_aim(lanes, &src->uri);
	/* registered before the hello, so migrate-pause can cut a stuck handshake */
	g_mutex_lock(&s->lock);
	src->fd = src->cancel_fd = fd;
	if (src->pause_req)
		shutdown(fd, SHUT_RDWR);
	g_mutex_unlock(&s->lock);
	if (!mig_chan_hello(s, fd, &src->p, MIG_CHAN_MAIN, 0, src->chan_flags, err))
		return FALSE;
	/* every reply of the handshake is bounded as any wait on the peer: a destination
	 * that took the channel and says nothing more pauses this side again (its send
	 * timeout is the channel's own, x-channel-timeout too) */
	mig_io_set_recv_timeout(fd, (int)src->p.x_channel_timeout);
	/* PC_RESUME at once: the destination waits for the other channels itself, so
	 * their hellos cost no round trip of their own on this channel */
	ok = mig_src_send_frame(src, MIG_F_PC_RECOVER, NULL, 0, err) &&
	     mig_src_send_frame(src, MIG_F_PC_RESUME, NULL, 0, err);
	/* the frames and the other channels' hellos first: the status's event is the
	 * host's work, not the handshake's. A channel that fails shuts this one, whose
	 * reads of the answer come before the lanes' join */
	if (ok)
		mig_chan_batch_gate(lanes, TRUE, fd);
	g_mutex_lock(&s->lock);
	mig_src_setup_announced(src);
	mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER);
	g_mutex_unlock(&s->lock);
	return ok;
}

/* RP_RECV_BITMAP x nblocks, then RP_RECV_END. */
static gboolean read_bitmaps(Src *src, guint64 *missing, GError **err)
{
	g_autofree gboolean *seen = g_new0(gboolean, src->nblocks);
	guint32 max = 16;

	*missing = 0;
	for (guint i = 0; i < src->nblocks; i++)
		max = (guint32)MAX((guint64)max, 4 + 1 + 255 + 8 + (src->blocks[i].npages + 7) / 8);
	for (;;) {
		MigFrameHdr h;
		g_autofree guint8 *p = read_rp(src, &h, max, err);

		if (!p)
			return FALSE;
		if (h.type == MIG_F_RP_RECV_BITMAP) {
			if (!take_bitmap(src, p, h.len, seen, err))
				return FALSE;
			continue;
		}
		if (h.type == MIG_F_RP_ERROR)
			return rfail(err, EIO, "the destination refused: %.*s", (int)h.len, (const char *)p);
		if (h.type != MIG_F_RP_RECV_END || h.len != 12)
			return rfail(err, EPROTO, "unexpected return-path frame type %u (%u bytes) instead of a received bitmap",
				     h.type, h.len);
		if (mig_get_be32(p) != src->nblocks)
			return rfail(err, EPROTO, "the destination counts %u RAM blocks, here %u", mig_get_be32(p), src->nblocks);
		for (guint i = 0; i < src->nblocks; i++)
			if (!seen[i])
				return rfail(err, EPROTO, "no received bitmap for '%s'", src->blocks[i].rb->name);
		/* the next pass sync must be the one the destination waits for; a pass end
		 * cut by the failure is simply done again */
		if (mig_get_be64(p + 4) > src->pass)
			return rfail(err, EPROTO, "the destination has pass %" G_GUINT64_FORMAT " in place, this source sent %"
				     G_GUINT64_FORMAT, mig_get_be64(p + 4), src->pass);
		src->pass = mig_get_be64(p + 4);
		break;
	}
	for (guint i = 0; i < src->nblocks; i++)
		*missing += (guint64)mig_bitmap_count(src->blocks[i].dirty, src->blocks[i].npages) * src->blocks[i].rb->page_size;
	mig_atomic_set(&src->s->stats.remaining, *missing);
	return TRUE;
}

gboolean mig_src_recover_end(Src *src, guint64 *missing, GError **err)
{
	MigFrameHdr h;
	g_autofree guint8 *p = NULL;

	src->chan_flags = 0;
	if (!read_bitmaps(src, missing, err))
		return FALSE;
	p = read_rp(src, &h, 4096, err);
	if (!p)
		return FALSE;
	if (h.type == MIG_F_RP_ERROR)
		return rfail(err, EIO, "the destination refused: %.*s", (int)h.len, (const char *)p);
	if (h.type != MIG_F_RP_RESUME_ACK || h.len)
		return rfail(err, EPROTO, "unexpected return-path frame type %u (%u bytes) instead of RESUME_ACK", h.type, h.len);
	/* the destination beats on the return path from here on, as on the first channel */
	mig_src_rp_bound(src);
	return TRUE;
}
