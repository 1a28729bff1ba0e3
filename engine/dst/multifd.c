/* multifd receivers: each channel's thread reads packets straight into guest memory
 * and parks at every sync point until the main channel says the whole pass is in. */
#include "engine/dst/multifd.h"
#include "engine/dst/postcopy.h"
#include "engine/dst/devlane.h"
#include "engine/dst/breakhuge.h"
#include "engine/dst/silence.h"
#include "engine/bitmap.h"
#include "channels/frame.h"
#include "channels/io.h"
#include "channels/wire.h"
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct MfRecv {
	MigSession *s;
	guint index;
	int fd;
	GThread *thread;
	guint8 *buf;       /* postcopy: pages land here before they are placed */
	gsize buflen;
	MigHugeAsm hasm;   /* break-huge: the huge page being assembled on this channel */
} MfRecv;

static gboolean recv_fail(MfRecv *r, GError **err, int code, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static gboolean recv_fail(MfRecv *r, GError **err, int code, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *msg = NULL;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(err, MIG_ERROR, code, "multifd channel %u: %s", r->index, msg);
	return FALSE;
}

static gboolean wait_setup(MfRecv *r)
{
	MigSession *s = r->s;
	gboolean ok;

	g_mutex_lock(&s->dst->mf_lock);
	while (!s->dst->mf_setup_done && !s->dst->mf_quit)
		g_cond_wait(&s->dst->mf_cond, &s->dst->mf_lock);
	ok = !s->dst->mf_quit;
	g_mutex_unlock(&s->dst->mf_lock);
	return ok;
}

static gboolean recv_pages(MfRecv *r, guint32 len, GError **err)
{
	MigSession *s = r->s;
	guint8 raw[MIG_MF_HDR_LEN];
	MigMfHdr hdr;
	guint64 offs[MIG_MF_MAX_PAGES];
	struct iovec iov[MIG_MF_MAX_PAGES];
	guint bi, nn, nz, got = 0;
	MigRamBlock *rb;
	int rc, niov = 0;

	if (len < MIG_MF_HDR_LEN)
		return recv_fail(r, err, EPROTO, "packet too short (%u bytes)", len);
	if ((rc = mig_io_read_full(r->fd, raw, sizeof(raw))) < 0)
		return recv_fail(r, err, -rc, "stream truncated: %s", g_strerror(-rc));
	mig_mf_hdr_unpack(raw, &hdr);
	bi = hdr.block;
	nn = hdr.nnormal;
	nz = hdr.nzero;
	if (bi >= s->ram->len)
		return recv_fail(r, err, EPROTO, "packet names RAM block %u of %u", bi, s->ram->len);
	rb = g_ptr_array_index(s->ram, bi);
	if (nn + nz == 0 || nn > MIG_MF_MAX_PAGES || nz > MIG_MF_MAX_PAGES || nn + nz > MIG_MF_MAX_PAGES)
		return recv_fail(r, err, EPROTO, "packet with %u normal and %u zero pages", nn, nz);
	if ((guint64)len != MIG_MF_HDR_LEN + (guint64)(nn + nz) * 8 + (guint64)nn * rb->page_size)
		return recv_fail(r, err, EPROTO, "packet length %u does not match its %u+%u pages", len, nn, nz);
	if ((rc = mig_io_read_full(r->fd, offs, (nn + nz) * 8u)) < 0)
		return recv_fail(r, err, -rc, "stream truncated: %s", g_strerror(-rc));
	mig_be64_decode_array(offs, nn + nz);
	for (guint i = 0; i < nn + nz; i++) {
		if (offs[i] % rb->page_size || offs[i] >= rb->size)
			return recv_fail(r, err, EPROTO, "page offset 0x%" G_GINT64_MODIFIER "x outside RAM block '%s'", offs[i], rb->name);
	}
	if (mig_pc_dst_placing(s)) {
		/* postcopy: the guest runs, so a page is placed whole or not at all */
		gsize need = (gsize)nn * rb->page_size;

		if (need > r->buflen) {
			r->buf = g_realloc(r->buf, need);
			r->buflen = need;
		}
		if (nn && (rc = mig_io_read_full(r->fd, r->buf, need)) < 0)
			return recv_fail(r, err, -rc, "stream truncated: %s", g_strerror(-rc));
		for (guint i = 0; i < nn + nz; i++) {
			GError *e = NULL;

			if (!mig_pc_dst_place(s, bi, offs[i] / rb->page_size, i < nn ? r->buf + i * rb->page_size : NULL, &e)) {
				recv_fail(r, err, e->code, "%s", e->message);
				g_error_free(e);
				return FALSE;
			}
		}
		mig_atomic_add(&s->stats.transferred, MIG_FRAME_HDR_LEN + len);
		return TRUE;
	}
	/* precopy writes in place: only until the guest may start (mig_mf_dst_seal) */
	g_mutex_lock(&s->dst->mf_lock);
	if (s->dst->mf_sealed) {
		g_mutex_unlock(&s->dst->mf_lock);
		return recv_fail(r, err, EPROTO, "pages after the migration completed");
	}
	s->dst->mf_writing++;
	g_mutex_unlock(&s->dst->mf_lock);
	for (guint i = 0; i < nn; i++)
		mig_iov_append(iov, &niov, rb->host + offs[i], rb->page_size);
	if (nn && (rc = mig_io_readv_full(r->fd, iov, niov)) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "multifd channel %u: stream truncated: %s", r->index, g_strerror(-rc));
	} else {
		for (guint i = 0; i < nn + nz; i++) {
			gsize pg = offs[i] / rb->page_size;

			/* fresh memory is zero already; only a page that got data earlier needs it */
			if (i >= nn && mig_bitmap_test(s->dst->received[bi], pg))
				memset(rb->host + offs[i], 0, rb->page_size);
			got += mig_bitmap_set_atomic_new(s->dst->received[bi], pg);
		}
		mig_atomic_add(&s->stats.transferred, MIG_FRAME_HDR_LEN + len);
	}
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->received_n[bi] += got;   /* the lock this frame takes anyway */
	s->dst->mf_writing--;
	g_cond_broadcast(&s->dst->mf_cond);
	g_mutex_unlock(&s->dst->mf_lock);
	return rc >= 0;
}

static gboolean recv_sync(MfRecv *r, guint32 len, GError **err)
{
	MigSession *s = r->s;
	guint8 raw[8];
	guint64 pass;
	int rc;

	if (len != sizeof(raw))
		return recv_fail(r, err, EPROTO, "sync packet of %u bytes", len);
	if ((rc = mig_io_read_full(r->fd, raw, sizeof(raw))) < 0)
		return recv_fail(r, err, -rc, "stream truncated: %s", g_strerror(-rc));
	pass = mig_get_be64(raw);
	g_mutex_lock(&s->dst->mf_lock);
	if (pass != s->dst->mf_released + 1) {
		g_mutex_unlock(&s->dst->mf_lock);
		return recv_fail(r, err, EPROTO, "sync for pass %" G_GUINT64_FORMAT " while pass %" G_GUINT64_FORMAT " is due",
				 pass, s->dst->mf_released + 1);
	}
	s->dst->mf_synced++;
	g_cond_broadcast(&s->dst->mf_cond);
	/* nothing of the next pass may land before every channel finished this one */
	while (s->dst->mf_released < pass && !s->dst->mf_quit)
		g_cond_wait(&s->dst->mf_cond, &s->dst->mf_lock);
	g_mutex_unlock(&s->dst->mf_lock);
	return TRUE;
}

static gpointer recv_main(gpointer opaque)
{
	MfRecv *r = opaque;
	MigSession *s = r->s;
	g_autoptr(GError) err = NULL;

	if (!wait_setup(r))
		return NULL;
	for (;;) {
		MigFrameHdr h;
		int rc = mig_frame_recv_hdr(r->fd, &h, MIG_FRAME_MAX_LEN + (1u << 30));
		gboolean ok, sealed;

		g_mutex_lock(&s->dst->mf_lock);
		sealed = s->dst->mf_sealed;
		g_mutex_unlock(&s->dst->mf_lock);
		if (sealed && rc == 0)
			mig_log(s, MIG_LOG_WARNING, "multifd channel %u: a frame (type %u) after the migration completed; "
				"channel closed", r->index, h.type);
		if (sealed)
			break;   /* the channel's work is over; seal shut the socket */
		if (rc == -EPIPE && mig_session_status(s) == MIG_STATUS_COMPLETED)
			break;   /* the source closes its channels after completing */
		if (rc < 0) {
			recv_fail(r, &err, -rc, "%s", rc == -EPROTO ? "malformed frame header" :
				  rc == -EPIPE ? "the source closed the connection" : g_strerror(-rc));
			break;
		}
		if (h.type == MIG_F_MF_PAGES)
			ok = recv_pages(r, h.len, &err);
		else if (h.type == MIG_F_MF_SYNC)
			ok = recv_sync(r, h.len, &err);
		else if (h.type == MIG_F_MF_DEV)
			ok = mig_dev_dst_chunk_mf(s, r->fd, h.len, &err);
		else if (h.type == MIG_F_CHUNK)
			ok = mig_huge_asm_chunk(s, &r->hasm, r->fd, h.len, &err);
		else
			ok = recv_fail(r, &err, EPROTO, "unknown packet type %u", h.type);
		if (!ok)
			break;
		g_mutex_lock(&s->dst->mf_lock);
		ok = !s->dst->mf_quit;
		g_mutex_unlock(&s->dst->mf_lock);
		if (!ok)
			break;
	}
	if (err) {
		gboolean quitting;

		g_mutex_lock(&s->dst->mf_lock);
		quitting = s->dst->mf_quit || s->dst->mf_sealed;
		g_mutex_unlock(&s->dst->mf_lock);
		if (!quitting) {
			mig_dst_fail(s, err->message);
			mig_mf_dst_abort(s);
		}
	}
	return NULL;
}

void mig_mf_dst_add(MigSession *s, guint index, int fd)
{
	MfRecv *r = g_new0(MfRecv, 1);
	g_autofree char *name = g_strdup_printf("mig/dst/recv/%u", index);

	r->s = s;
	r->index = index;
	r->fd = fd;
	g_mutex_lock(&s->dst->mf_lock);
	g_ptr_array_add(s->dst->mf_recv, r);
	if (index < MIG_DST_MF_MAX)
		s->dst->mf_fd[index] = fd;
	r->thread = g_thread_new(name, recv_main, r);
	g_mutex_unlock(&s->dst->mf_lock);
}

gboolean mig_mf_dst_barrier(MigSession *s, guint64 pass, GError **err)
{
	MigDstSilence w;
	gboolean ok = TRUE;

	if (!s->dst->mf_expected)
		return TRUE;
	/* the main channel is not read meanwhile: the source's silence on the channels
	 * whose SYNC is due bounds the wait (a cancel, pause or quit sets mf_quit) */
	mig_dst_silence_init(&w, s, FALSE);
	g_mutex_lock(&s->dst->mf_lock);
	while (s->dst->mf_synced < s->dst->mf_expected && !s->dst->mf_quit) {
		gint64 left;

		g_mutex_unlock(&s->dst->mf_lock);
		left = mig_dst_silence_left(&w);
		g_mutex_lock(&s->dst->mf_lock);
		if (s->dst->mf_synced >= s->dst->mf_expected || s->dst->mf_quit)
			break;
		if (!left) {
			g_set_error(err, MIG_ERROR, ETIMEDOUT,
				    "pass %" G_GUINT64_FORMAT ": only %u of %u multifd channels reached the sync point: "
				    "nothing came on them for %" G_GUINT64_FORMAT " ms (x-channel-timeout)",
				    pass, s->dst->mf_synced, s->dst->mf_expected, mig_dst_silence_ms(&w));
			ok = FALSE;
			break;
		}
		g_cond_wait_until(&s->dst->mf_cond, &s->dst->mf_lock,
				  g_get_monotonic_time() + mig_dst_silence_slice_us(&w, left));
	}
	if (ok && s->dst->mf_quit) {
		g_set_error(err, MIG_ERROR, EIO, "a multifd channel failed");
		ok = FALSE;
	}
	if (ok) {
		s->dst->mf_synced = 0;
		s->dst->mf_released = pass;
		g_cond_broadcast(&s->dst->mf_cond);
	}
	g_mutex_unlock(&s->dst->mf_lock);
	return ok;
}

void mig_mf_dst_yank(MigSession *s)
{
	g_mutex_lock(&s->dst->mf_lock);
	for (guint i = 0; s->dst->mf_recv && i < s->dst->mf_recv->len; i++)
		shutdown(((MfRecv *)g_ptr_array_index(s->dst->mf_recv, i))->fd, SHUT_RDWR);
	g_mutex_unlock(&s->dst->mf_lock);
}

void mig_mf_dst_abort(MigSession *s)
{
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->mf_quit = TRUE;
	for (guint i = 0; s->dst->mf_recv && i < s->dst->mf_recv->len; i++)
		shutdown(((MfRecv *)g_ptr_array_index(s->dst->mf_recv, i))->fd, SHUT_RDWR);
	g_cond_broadcast(&s->dst->mf_cond);
	g_mutex_unlock(&s->dst->mf_lock);
	/* a receiver may be waiting for room in the device lane */
	mig_dev_dst_abort(s);
}

void mig_mf_dst_seal(MigSession *s)
{
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->mf_sealed = TRUE;
	/* a legitimate source sends nothing more here (its last SYNC came before the final
	 * PASS); a receiver mid-packet wakes up at once and gives up its write */
	for (guint i = 0; s->dst->mf_recv && i < s->dst->mf_recv->len; i++)
		shutdown(((MfRecv *)g_ptr_array_index(s->dst->mf_recv, i))->fd, SHUT_RDWR);
	while (s->dst->mf_writing)
		g_cond_wait(&s->dst->mf_cond, &s->dst->mf_lock);
	g_mutex_unlock(&s->dst->mf_lock);
}

void mig_mf_dst_join(MigSession *s)
{
	GPtrArray *recv = s->dst->mf_recv;

	if (!recv)
		return;
	/* Every receiver is joined before any is freed: one that fails meanwhile walks the
	 * list to shut the others' sockets down (mig_mf_dst_abort). */
	for (guint i = 0; i < recv->len; i++)
		g_thread_join(((MfRecv *)g_ptr_array_index(recv, i))->thread);
	g_mutex_lock(&s->dst->mf_lock);
	for (guint i = 0; i < recv->len; i++) {
		MfRecv *r = g_ptr_array_index(recv, i);

		if (r->index < MIG_DST_MF_MAX)
			s->dst->mf_fd[r->index] = -1;
		mig_io_close(r->fd);
		g_free(r->buf);
		mig_huge_asm_clear(&r->hasm);
		g_free(r);
	}
	g_ptr_array_set_size(recv, 0);
	g_mutex_unlock(&s->dst->mf_lock);
}
