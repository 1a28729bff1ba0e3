/* The destination's postcopy recovery handshake. The received bitmap counts only
 * pages placed whole: a huge page half assembled when its channel broke is not in it,
 * and the source sends it again, whole. */
#include "engine/dst/recover.h"
#include "engine/dst/postcopy.h"
#include "engine/bitmap.h"
#include "channels/frame.h"
#include "channels/io.h"
#include "channels/wire.h"
#include <errno.h>
#include <poll.h>
#include <string.h>

/* every error of the handshake says so first */
#define rfail(err, code, fmt, ...) \
	(g_set_error((err), MIG_ERROR, (code), "postcopy recovery: " fmt, ##__VA_ARGS__), FALSE)

/* Both frames the source sends here are empty. */
static gboolean expect(int fd, guint16 type, const char *what, GError **err)
{
	MigFrameHdr h;
	int rc = mig_frame_recv_hdr(fd, &h, 0);

	if (rc < 0)
		return rfail(err, -rc, "waiting for %s: %s", what, rc == -EPROTO ? "frame with a payload" :
			     rc == -EPIPE ? "the source closed the connection" : g_strerror(-rc));
	if (h.type != type || h.len)
		return rfail(err, EPROTO, "frame type %u (%u bytes) instead of %s", h.type, h.len, what);
	return TRUE;
}

/* One frame appended to the answer: its header, and its len payload bytes returned
 * for the caller to fill. */
static guint8 *answer_frame(GByteArray *a, guint16 type, guint32 len)
{
	MigFrameHdr h = { .len = len, .type = type };
	guint off = a->len;

	g_byte_array_set_size(a, off + MIG_FRAME_HDR_LEN + len);
	mig_frame_hdr_pack(&h, a->data + off);
	return a->data + off + MIG_FRAME_HDR_LEN;
}

GByteArray *mig_dst_recover_answer(MigSession *s)
{
	gsize size = MIG_FRAME_HDR_LEN + 12;
	GByteArray *a;
	guint8 *p;

	for (guint bi = 0; bi < s->ram->len; bi++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, bi);

		size += MIG_FRAME_HDR_LEN + 4 + 1 + strlen(rb->name) + 8 + (mig_ram_block_pages(rb) + 7) / 8;
	}
	a = g_byte_array_sized_new((guint)size);
	for (guint bi = 0; bi < s->ram->len; bi++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, bi);
		gsize npages = mig_ram_block_pages(rb);
		guint8 nl = (guint8)strlen(rb->name);

		p = answer_frame(a, MIG_F_RP_RECV_BITMAP, (guint32)(4 + 1 + nl + 8 + (npages + 7) / 8));
		mig_put_be32(p, bi);
		p[4] = nl;
		memcpy(p + 5, rb->name, nl);
		mig_put_be64(p + 5 + nl, npages);
		mig_bitmap_to_bytes(s->dst->received[bi], npages, p + 5 + nl + 8);
	}
	p = answer_frame(a, MIG_F_RP_RECV_END, 12);
	mig_put_be32(p, s->ram->len);
	mig_put_be64(p + 4, s->dst->pass_done);
	return a;
}

/* How often channels_back looks at the main channel while no other channel comes: a
 * source that failed to open one closes it, and this side should pause again now, not
 * at x-channel-timeout. The channels' arrival wakes it at once. */
#define MAIN_WATCH_MS 10

/* Readable main channel after PC_RESUME: the source sends nothing more until it has
 * RESUME_ACK, so this is its end (or a frame out of turn, as bad). */
static gboolean main_ended(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) > 0;
}

/* Every channel the migration had is back. The source sends PC_RESUME right after
 * PC_RECOVER and opens the other channels meanwhile, so they come while this side
 * answers PC_RECOVER or after it; each one's admission wakes us (admit, start_channel).
 * The wait is bounded by x-channel-timeout, as every wait that involves the peer, and
 * ends early when the source closes the main channel (it could not open them). */
static gboolean channels_back(MigSession *s, int fd, guint64 timeout_ms, GError **err)
{
	Dst *d = s->dst;
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
	gboolean ok, ended = FALSE;
	guint mf, pre;

	g_mutex_lock(&s->lock);
	for (;;) {
		gint64 now;

		g_mutex_lock(&d->mf_lock);
		mf = d->mf_recv->len;
		g_mutex_unlock(&d->mf_lock);
		pre = 0;
		for (guint i = 0; i < d->urgent_expected; i++)
			pre += d->urgent_fd[i] >= 0;
		ok = mf == d->mf_expected && pre == d->urgent_expected;
		now = g_get_monotonic_time();
		if (ok || d->quit || now >= end || (ended = main_ended(fd)))
			break;
		g_cond_wait_until(&d->recover_cond, &s->lock, MIN(end, now + MAIN_WATCH_MS * G_TIME_SPAN_MILLISECOND));
	}
	g_mutex_unlock(&s->lock);
	if (ended)
		return rfail(err, EPIPE, "the source closed the main channel after PC_RESUME with %u of %u multifd and "
			     "%u of %u preempt channels back (it could not open the others)", mf, d->mf_expected, pre,
			     d->urgent_expected);
	if (!ok)
		return rfail(err, EPROTO, "PC_RESUME with %u of %u multifd and %u of %u preempt channels back", mf,
			     d->mf_expected, pre, d->urgent_expected);
	return TRUE;
}

gboolean mig_dst_recover_handshake(MigSession *s, int fd, const GByteArray *answer, guint64 *asked, GError **err)
{
	guint64 t;
	int rc;

	g_mutex_lock(&s->lock);
	t = s->dst->p.x_channel_timeout;
	g_mutex_unlock(&s->lock);
	/* a silent source (stopped, its link gone) is noticed within x-channel-timeout
	 * here as on the first main channel: every step of the source between two of its
	 * frames is bounded by it too */
	mig_io_set_timeout(fd, (int)t);
	if (!expect(fd, MIG_F_PC_RECOVER, "PC_RECOVER", err))
		return FALSE;

	/* one write: the frames leave in as few segments as TCP may send */
	if ((rc = mig_io_write_full(fd, answer->data, answer->len)) < 0)
		return rfail(err, -rc, "sending the received bitmaps: %s", g_strerror(-rc));

	if (!expect(fd, MIG_F_PC_RESUME, "PC_RESUME", err) || !channels_back(s, fd, t, err))
		return FALSE;
	/* as on the first main channel in postcopy: the source beats until PC_END, so
	 * reads stay bounded; writes are bounded as on every channel */
	if ((rc = mig_pc_dst_resume(s, fd, asked)) < 0)
		return rfail(err, -rc, "sending RESUME_ACK: %s", g_strerror(-rc));
	return TRUE;
}
