/* The source's heartbeat: a NOP on the main channel every quarter of x-channel-timeout
 * and at least every second, from the hello until COMPLETE / PC_RUN, and again in
 * postcopy from RP_RUNNING (or a recovery's RP_RESUME_ACK) until PC_END. The
 * destination bounds its reads by that timeout, so a source that stops (SIGSTOP, a
 * wedged host) is noticed there even while its kernel still acknowledges; and a
 * healthy source that has nothing to send for a while (rate limit, a slow device,
 * waiting for a pass to drain) is not taken for a dead one. The second: on a cut link
 * TCP_USER_TIMEOUT counts from the first byte left unacknowledged, which for a source
 * with nothing else to send is the next NOP; so the source notices within the timeout
 * + 1 s whatever the timeout. */
#include "engine/src/src_int.h"
#include "channels/frame.h"

static gpointer beat_main(gpointer opaque)
{
	Src *src = opaque;
	gint64 period = MIN((gint64)src->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND / 4, G_TIME_SPAN_SECOND);

	g_mutex_lock(&src->beat_lock);
	while (!src->beat_quit) {
		gint64 end = g_get_monotonic_time() + period;
		int rc;

		while (!src->beat_quit && g_cond_wait_until(&src->beat_cond, &src->beat_lock, end))
			;
		if (src->beat_quit)
			break;
		g_mutex_unlock(&src->beat_lock);
		/* the main channel's writer lock: a NOP goes between frames, never inside one.
		 * Not accounted in the statistics, which belong to mig/src/main */
		g_mutex_lock(&src->wlock);
		rc = mig_frame_send(src->fd, MIG_F_NOP, 0, NULL, 0);
		g_mutex_unlock(&src->wlock);
		g_mutex_lock(&src->beat_lock);
		if (rc < 0)
			break;   /* mig/src/main meets the same error on its next write */
	}
	g_mutex_unlock(&src->beat_lock);
	return NULL;
}

void mig_src_beat_start(Src *src)
{
	if (src->beat_thread || src->inline_run)
		return;   /* a recovery inside the postcopy run already started it; an inline run
			   * has no thread but the caller's */
	src->beat_quit = FALSE;
	src->beat_thread = g_thread_new("mig/src/beat", beat_main, src);
}

void mig_src_beat_stop(Src *src)
{
	if (!src->beat_thread)
		return;
	g_mutex_lock(&src->beat_lock);
	src->beat_quit = TRUE;
	g_cond_broadcast(&src->beat_cond);
	g_mutex_unlock(&src->beat_lock);
	g_thread_join(src->beat_thread);
	src->beat_thread = NULL;
}
