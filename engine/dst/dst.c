/* The destination's shared state: its lifetime, the return path and failing. The
 * bottom of the half: every other part of it may call these, they call none of them. */
#include "engine/dst/dst_int.h"
#include "engine/bitmap.h"
#include "channels/frame.h"
#include "channels/io.h"
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

Dst *mig_dst_new(MigSession *s)
{
	Dst *d = g_new0(Dst, 1);

	d->s = s;
	d->fd = d->listen_fd = d->given_fd = d->inline_resume_fd = -1;
	d->listen_wake[0] = d->listen_wake[1] = -1;
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		d->urgent_fd[i] = -1;
	for (guint i = 0; i < MIG_DST_MF_MAX; i++)
		d->mf_fd[i] = -1;
	g_mutex_init(&d->mf_lock);
	g_cond_init(&d->mf_cond);
	g_cond_init(&d->recover_cond);
	g_cond_init(&d->urgent_cond);
	g_mutex_init(&d->rp_lock);
	mig_beat_init(&d->beat);
	g_mutex_init(&d->open_lock);
	d->openers = g_ptr_array_new();
	d->ahead = g_ptr_array_new();
	d->mf_recv = g_ptr_array_new();
	return d;
}

void mig_dst_free(Dst *d)
{
	if (d->received) {
		for (guint i = 0; i < d->s->ram->len; i++)
			g_free(d->received[i]);
		g_free(d->received);
	}
	g_free(d->received_n);
	if (d->incoming_started)
		mig_params_clear(&d->p);
	g_ptr_array_free(d->mf_recv, TRUE);
	g_mutex_clear(&d->mf_lock);
	g_cond_clear(&d->mf_cond);
	g_cond_clear(&d->recover_cond);
	g_cond_clear(&d->urgent_cond);
	g_mutex_clear(&d->rp_lock);
	mig_beat_clear(&d->beat);
	if (d->given_fd >= 0)
		close(d->given_fd);
	g_mutex_clear(&d->open_lock);
	g_ptr_array_free(d->openers, TRUE);
	g_ptr_array_free(d->ahead, TRUE);
	g_free(d->listen_uri);
	g_free(d->switch_fault);
	g_free(d->stream_file);
	g_free(d);
}

static int rp_send(MigSession *s, guint16 type, const struct iovec *iov, int n, gboolean last)
{
	Dst *d = s->dst;
	int rc = 0;

	if (d->stream_file)
		return 0;   /* a file has no way back */
	g_mutex_lock(&d->rp_lock);
	if (!d->rp_last || type != MIG_F_RP_NOP)
		rc = d->fd >= 0 ? mig_frame_send(d->fd, type, 0, iov, n) : -EPIPE;
	d->rp_last |= last;
	g_mutex_unlock(&d->rp_lock);
	return rc;
}

int mig_dst_rp_send(MigSession *s, guint16 type, const struct iovec *iov, int n)
{
	return rp_send(s, type, iov, n, FALSE);
}

int mig_dst_rp_send_last(MigSession *s, guint16 type, const struct iovec *iov, int n)
{
	return rp_send(s, type, iov, n, TRUE);
}

/* Under Dst.rp_lock, as every return-path write: between frames, never inside one.
 * The source bounds its return-path reads by x-channel-timeout, so it notices a
 * destination that stopped (SIGSTOP, a wedged host) whether or not a page request is
 * pending. Its own thread, not the loader's nor the fault thread's: both may wait for
 * long (a device loading, vCPUs on pages that do not come) while the destination
 * lives. */
static int beat_send(gpointer opaque)
{
	return mig_dst_rp_send(opaque, MIG_F_RP_NOP, NULL, 0);
}

void mig_dst_beat_start(MigSession *s)
{
	Dst *d = s->dst;
	guint timeout;

	if (d->stream_file)
		return;
	g_mutex_lock(&s->lock);
	timeout = d->p.x_channel_timeout;
	g_mutex_unlock(&s->lock);
	mig_beat_start(&d->beat, "mig/dst/beat", timeout, beat_send, s);
}

void mig_dst_beat_stop(MigSession *s)
{
	mig_beat_stop(&s->dst->beat);
}

int mig_dst_rp_send_reqs(MigSession *s, const void *frames, gsize len)
{
	Dst *d = s->dst;
	int rc;

	g_mutex_lock(&d->rp_lock);
	if (d->rp_hold)
		rc = 0;   /* paused: asked again after RP_RESUME_ACK (the bits stay set) */
	else
		rc = d->fd >= 0 ? mig_io_write_full(d->fd, frames, len) : -EPIPE;
	g_mutex_unlock(&d->rp_lock);
	return rc;
}

gboolean mig_dst_cancelled(MigSession *s)
{
	gboolean c;

	g_mutex_lock(&s->lock);
	c = s->dst && s->dst->cancelled;
	g_mutex_unlock(&s->lock);
	return c;
}

/* From RP_READY on the source may give its guest up, and only the loader knows whether
 * GO came: a channel lost now must end as it would an instant after the guest's start
 * (postcopy: paused, the guest started; precopy, every page here: completed), never
 * failed with a guest that runs, or that nobody runs. So it only leaves its cause to
 * the loader, and the main channel, where GO may be coming, open; without GO the
 * loader fails the migration itself (outcome unknown). After the start a precopy's
 * guest needs no channel, and a postcopy's pauses before this is asked. */
static gboolean left_to_switchover(MigSession *s, const char *msg)
{
	Dst *d = s->dst;
	gboolean left;

	g_mutex_lock(&s->lock);
	left = d->switching;
	if (left && !d->switch_fault)
		d->switch_fault = g_strdup(msg);
	g_mutex_unlock(&s->lock);
	if (left)
		mig_log(s, MIG_LOG_WARNING, "after RP_READY, left to the switchover: %s", msg);
	return left;
}

static void fail_now(MigSession *s, const char *msg)
{
	Dst *d = s->dst;

	if (mig_dst_postcopy_lost(s, msg) || left_to_switchover(s, msg))
		return;
	if (!mig_dst_cancelled(s))
		mig_session_report_error(s, "%s", msg);
	g_mutex_lock(&d->mf_lock);
	d->mf_quit = TRUE;
	g_cond_broadcast(&d->mf_cond);
	g_mutex_unlock(&d->mf_lock);
	g_mutex_lock(&s->lock);
	if (d->fd >= 0)
		shutdown(d->fd, SHUT_RD);
	g_mutex_unlock(&s->lock);
}

void mig_dst_received_new(MigSession *s)
{
	Dst *d = s->dst;

	d->received = g_new0(gulong *, s->ram->len);
	for (guint i = 0; i < s->ram->len; i++)
		d->received[i] = mig_bitmap_new(mig_ram_block_pages(g_ptr_array_index(s->ram, i)));
	g_mutex_lock(&d->mf_lock);
	d->received_n = g_new0(guint64, s->ram->len);
	d->received_cleared = FALSE;
	g_mutex_unlock(&d->mf_lock);
}

void mig_dst_received_add(Dst *d, guint bi, guint n)
{
	if (!n)
		return;
	g_mutex_lock(&d->mf_lock);
	d->received_n[bi] += n;
	g_mutex_unlock(&d->mf_lock);
}

/* Whether the counts say every page is in; a page only ever counted once, and none
 * cleared, so a block's count at its size is the whole block. */
static gboolean all_counted(MigSession *s)
{
	Dst *d = s->dst;
	gboolean all;

	g_mutex_lock(&d->mf_lock);
	all = d->received_n && !d->received_cleared;
	for (guint i = 0; all && i < s->ram->len; i++)
		all = d->received_n[i] == mig_ram_block_pages(g_ptr_array_index(s->ram, i));
	g_mutex_unlock(&d->mf_lock);
	return all;
}

gboolean mig_dst_all_received(MigSession *s, GError **err)
{
	Dst *d = s->dst;
	guint64 missing = 0, total = 0;
	const char *first_block = NULL;
	gsize first_page = 0;

	if (!d->received) {
		g_set_error(err, MIG_ERROR, EPROTO, "no page can have arrived before the setup frame");
		return FALSE;
	}
	/* in the downtime: the counts, not a read of every word (16 GiB: 64 Ki of them);
	 * the read below is for what is missing, and for pages set some other way */
	if (all_counted(s))
		return TRUE;
	for (guint i = 0; i < s->ram->len; i++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, i);
		gsize n = mig_ram_block_pages(rb), have = mig_bitmap_count(d->received[i], n);

		total += n;
		if (have == n)
			continue;
		missing += n - have;
		for (gsize pg = 0; !first_block && pg < n; pg++) {
			if (!mig_bitmap_test(d->received[i], pg)) {
				first_block = rb->name;
				first_page = pg;
			}
		}
	}
	if (!missing)
		return TRUE;
	g_set_error(err, MIG_ERROR, EPROTO, "%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " guest pages never arrived "
		    "(the first: page %" G_GSIZE_FORMAT " of RAM block '%s'); the guest is not started", missing, total,
		    first_page, first_block);
	return FALSE;
}

gboolean mig_dst_pc_running(Dst *d)
{
	return __atomic_load_n(&d->pc_running, __ATOMIC_ACQUIRE);
}

gboolean mig_dst_postcopy_lost(MigSession *s, const char *why)
{
	Dst *d = s->dst;

	g_mutex_lock(&s->lock);
	if (!d->pc_running || !mig_status_is_postcopy_run(s->status)) {
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	/* migrate-recover may come before every thread of this pause saw its channel die
	 * (the loader's next read, on a loaded host, comes late): until the loader has torn
	 * the old channels down (paused_ready), what they report is this pause, not a
	 * failed recovery, and must not undo the recover */
	if (s->status != MIG_STATUS_POSTCOPY_PAUSED &&
	    !(s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP && !d->paused_ready)) {
		g_free(s->error);
		s->error = g_strdup(why);
		mig_log(s, MIG_LOG_WARNING, "postcopy paused: %s", why);
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_PAUSED);
	}
	if (d->fd >= 0)
		shutdown(d->fd, SHUT_RDWR);
	for (guint i = 0; i < MIG_PREEMPT_MAX; i++)
		if (d->urgent_fd[i] >= 0)
			shutdown(d->urgent_fd[i], SHUT_RDWR);
	g_mutex_unlock(&s->lock);
	g_mutex_lock(&d->rp_lock);
	d->rp_hold = TRUE;
	g_mutex_unlock(&d->rp_lock);
	/* the receivers' sockets: the loader shuts them as it tears down */
	g_mutex_lock(&d->mf_lock);
	d->mf_quit = TRUE;
	g_cond_broadcast(&d->mf_cond);
	g_mutex_unlock(&d->mf_lock);
	return TRUE;
}

void mig_dst_fail(MigSession *s, const char *msg)
{
	if (!mig_dst_postcopy_lost(s, msg))
		fail_now(s, msg);
}
