/* The source's main channel: frames, page batches, pass ends and the switchover steps
 * precopy (migrate.c), postcopy (postcopy.c) and the device lane (devlane.c) share.
 * The bottom of the half: it calls none of them. */
#include "engine/src/src_int.h"
#include "engine/bitmap.h"
#include "engine/dirty_int.h"
#include "engine/holes.h"
#include "channels/wire.h"
#include "channels/frame.h"
#include "channels/io.h"
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>

gboolean mig_src_cancelled(Src *src)
{
	return __atomic_load_n(&src->s->cancel, __ATOMIC_ACQUIRE);
}

gboolean mig_src_stopping(Src *src)
{
	return mig_src_cancelled(src) || __atomic_load_n(&src->quit, __ATOMIC_ACQUIRE);
}

gboolean mig_src_send_go(Src *src, GError **err)
{
	__atomic_store_n(&src->go_sent, TRUE, __ATOMIC_RELEASE);
	return mig_src_send_frame(src, MIG_F_GO, NULL, 0, err);
}

/* A NOP between frames, never inside one: under the main channel's writer lock. Not
 * accounted in the statistics, which belong to mig/src/main. The destination bounds
 * its reads by x-channel-timeout, so a source that stops (SIGSTOP, a wedged host) is
 * noticed there even while its kernel still acknowledges, and a healthy source with
 * nothing to send for a while (rate limit, a slow device, a pass draining) is not
 * taken for a dead one. */
static int beat_send(gpointer opaque)
{
	Src *src = opaque;
	int rc;

	g_mutex_lock(&src->wlock);
	rc = mig_frame_send(src->fd, MIG_F_NOP, 0, NULL, 0);
	g_mutex_unlock(&src->wlock);
	return rc;
}

void mig_src_beat_start(Src *src)
{
	/* an inline run (the fuzz harnesses) has no thread but the caller's */
	if (!src->inline_run)
		mig_beat_start(&src->beat, "mig/src/beat", src->p.x_channel_timeout, beat_send, src);
}

void mig_src_beat_stop(Src *src)
{
	mig_beat_stop(&src->beat);
}

void mig_src_rp_bound(Src *src)
{
	src->rp_heard = g_get_monotonic_time();
	mig_io_set_recv_timeout(src->fd, src->inline_run ? 0 : (int)src->p.x_channel_timeout);
}

gboolean mig_src_dst_draining(Src *src, int *outq)
{
	int q = 0;
	gboolean moved;

	if (ioctl(src->fd, SIOCOUTQ, &q) < 0)
		return FALSE;
	moved = q < *outq;
	*outq = q;
	return moved;
}

static void account(Src *src, guint64 bytes)
{
	MigStats *st = &src->s->stats;

	mig_atomic_add(&st->transferred, bytes);
	mig_atomic_add(src->in_downtime ? &st->downtime_bytes : &st->precopy_bytes, bytes);
	src->win_bytes += bytes;
}

gboolean mig_src_send_frame(Src *src, guint16 type, const struct iovec *iov, int n, GError **err)
{
	guint64 len = MIG_FRAME_HDR_LEN;
	int rc;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	g_mutex_lock(&src->wlock);
	rc = mig_frame_send(src->fd, type, 0, iov, n);
	g_mutex_unlock(&src->wlock);
	if (rc < 0) {
		if (src->no_rp)
			g_set_error(err, MIG_ERROR, -rc, "writing to '%s': %s", src->uri.file, g_strerror(-rc));
		else
			g_set_error(err, MIG_ERROR, -rc, "sending to destination: %s", g_strerror(-rc));
		return FALSE;
	}
	account(src, len);
	return TRUE;
}

gboolean mig_src_send_pages(Src *src, guint bi, const gsize *pages, guint n, GError **err)
{
	SrcBlock *b = &src->blocks[bi];
	gsize ps = b->rb->page_size;
	guint8 data_off[MAX_BATCH_PAGES * 8], zero_off[MAX_BATCH_PAGES * 8];
	struct iovec iov[MAX_BATCH_PAGES + 2];
	guint nd = 0, nz = 0;
	guint8 hdr[MIG_PAGES_HDR_LEN];
	/* a batch is ascending (a bitmap walk, or one page): the pages that hold nothing
	 * are zero without the read that would populate them (as multifd.c's senders) */
	gulong empty[MAX_BATCH_PAGES * 4 / (8 * sizeof(gulong))];
	gsize span = n ? pages[n - 1] - pages[0] + 1 : 0;
	gboolean holes = src->zero_mode && src->holes && n && pages[n - 1] >= pages[0] &&
			 span <= MAX_BATCH_PAGES * 4 && mig_holes_find(src->holes, b->rb, pages[0], span, empty) > 0;

	g_assert(n <= MAX_BATCH_PAGES);
	for (guint k = 0; k < n; k++) {
		guint8 *p = b->rb->host + pages[k] * ps;

		if (src->zero_mode && ((holes && pages[k] >= pages[0] && pages[k] - pages[0] < span &&
					mig_bitmap_test(empty, pages[k] - pages[0])) || mig_mem_is_zero(p, ps))) {
			mig_put_be64(zero_off + 8 * nz++, pages[k] * ps);
		} else {
			iov[2 + nd] = (struct iovec){ p, ps };
			mig_put_be64(data_off + 8 * nd++, pages[k] * ps);
		}
	}
	if (nz) {
		mig_put_pages_hdr(hdr, bi, nz);
		iov[0] = (struct iovec){ hdr, sizeof(hdr) };
		iov[1] = (struct iovec){ zero_off, nz * 8u };
		if (!mig_src_send_frame(src, MIG_F_ZEROS, iov, 2, err))
			return FALSE;
		mig_atomic_add(&src->s->stats.duplicate, nz);
	}
	if (nd) {
		mig_put_pages_hdr(hdr, bi, nd);
		iov[0] = (struct iovec){ hdr, sizeof(hdr) };
		iov[1] = (struct iovec){ data_off, nd * 8u };
		if (!mig_src_send_frame(src, MIG_F_PAGES, iov, (int)nd + 2, err))
			return FALSE;
		mig_atomic_add(&src->s->stats.normal, nd);
		mig_atomic_add(&src->s->stats.normal_bytes, nd * ps);
	}
	mig_atomic_set(&src->s->stats.remaining,
		       mig_atomic_get(&src->s->stats.remaining) - MIN(mig_atomic_get(&src->s->stats.remaining), (guint64)n * ps));
	return TRUE;
}

/* Collects dirty pages from every tracker; returns dirty bytes. */
gboolean mig_src_sync_dirty(Src *src, guint64 *bytes, GError **err)
{
	*bytes = 0;
	for (guint bi = 0; bi < src->nblocks; bi++) {
		SrcBlock *b = &src->blocks[bi];
		guint64 n = 0;

		if (!mig_dirty_sync_marked(b->tracker, b->dirty, b->groups, b->npages, &n, err))
			return FALSE;
		*bytes += (guint64)mig_groups_count(b->dirty, b->groups, b->npages) * b->rb->page_size;
	}
	mig_atomic_add(&src->s->stats.dirty_sync_count, 1);
	mig_atomic_set(&src->s->stats.remaining, *bytes);
	return TRUE;
}

/* Ends a pass: every multifd channel syncs first, so the destination has all of this
 * pass in place before anything of the next one can land. */
gboolean mig_src_pass_end(Src *src, GError **err)
{
	guint8 pass[8];
	struct iovec iov = { pass, sizeof(pass) };

	src->pass++;
	mig_put_be64(pass, src->pass);
	if (src->mf && !mig_mf_src_sync(src->mf, src->pass, err))
		return FALSE;
	return mig_src_send_frame(src, MIG_F_PASS, &iov, 1, err);
}

gboolean mig_src_stop_vm(Src *src, GError **err)
{
	MigSession *s = src->s;

	g_mutex_lock(&s->lock);
	if (s->cancel) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
		return FALSE;
	}
	s->stats.t_stop = g_get_monotonic_time();
	src->vm_was_running = s->runstate == MIG_RUN_RUNNING;
	/* QEMU's order: STOP, then [pre-switchover,] device */
	mig_set_runstate_locked(s, MIG_RUN_FINISH_MIGRATE);
	g_mutex_unlock(&s->lock);
	s->vm->stop(s->vm_opaque);   /* not under the lock: see mig_session_vm_stop */
	src->stopped = TRUE;
	src->in_downtime = TRUE;
	g_mutex_lock(&s->lock);
	if (s->caps[MIG_CAP_PAUSE_BEFORE_SWITCHOVER] && !s->cancel) {
		/* the management's moment (libvirt: its own switchover work) with both guests
		 * stopped; it may cancel here, and the source then runs again */
		mig_set_status_locked(s, MIG_STATUS_PRE_SWITCHOVER);
		while (!s->switchover_go && !s->cancel)
			g_cond_wait(&s->switchover_cond, &s->lock);
	}
	if (s->cancel) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
		return FALSE;
	}
	mig_set_status_locked(s, MIG_STATUS_DEVICE);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_src_send_live(Src *src, GError **err)
{
	MigSession *s = src->s;
	g_autoptr(GByteArray) part = NULL;
	gboolean more = TRUE;

	if (!s->vm_live)
		return TRUE;
	part = g_byte_array_sized_new(MIG_STATE_PART_MAX);
	while (more) {
		struct iovec iov;

		g_byte_array_set_size(part, 0);
		more = s->vm_live->save_part(s->vm_opaque, part, MIG_STATE_PART_MAX);
		if (!part->len)
			break;
		if (part->len > MIG_STATE_PART_MAX) {
			g_set_error(err, MIG_ERROR, EOVERFLOW, "the VM handed out a state part of %u bytes, more than %u",
				    part->len, MIG_STATE_PART_MAX);
			return FALSE;
		}
		iov = (struct iovec){ part->data, part->len };
		if (!mig_src_send_frame(src, MIG_F_STATE_PART, &iov, 1, err))
			return FALSE;
	}
	return TRUE;
}

gboolean mig_src_send_state(Src *src, GError **err)
{
	static const char id[] = "guest";
	MigSession *s = src->s;
	g_autoptr(GBytes) state = s->vm->save_state(s->vm_opaque, err);
	guint8 idlen = sizeof(id) - 1;

	if (!state)
		return FALSE;
	{
		struct iovec iov[3] = {
			{ &idlen, 1 },
			{ (void *)id, idlen },
			{ (void *)g_bytes_get_data(state, NULL), g_bytes_get_size(state) },
		};

		return mig_src_send_frame(src, MIG_F_STATE, iov, 3, err);
	}
}

void mig_src_feed(Src *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLIN };

	if (src->inline_run && src->inl.feed && src->fd >= 0 && poll(&p, 1, 0) == 0)
		src->inl.feed(src->inl.opaque, src->fd);
}
