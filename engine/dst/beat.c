/* The destination's heartbeat: an RP_NOP on the return path every quarter of
 * x-channel-timeout and at least every second, while the source reads that path, so
 * the source can bound its reads by the timeout (engine/src) and notice a destination
 * that stopped (SIGSTOP, a wedged host) whether or not a page request is pending.
 * Its own thread, not the loader's nor the fault thread's: both may wait for long
 * (a device loading, vCPUs stuck on pages that do not come) while the destination is
 * alive; it beats until its loader says the return path is over or paused. The second:
 * on a cut link TCP_USER_TIMEOUT counts from the first byte left unacknowledged, which
 * on an otherwise quiet return path is the next NOP (as the source's beat, beat.c in
 * engine/src). */
#include "engine/dst/beat.h"
#include "channels/frame.h"

static gpointer beat_main(gpointer opaque)
{
	MigSession *s = opaque;
	Dst *d = s->dst;
	gint64 period;

	g_mutex_lock(&d->beat_lock);
	period = d->beat_period;
	while (!d->beat_quit) {
		gint64 end = g_get_monotonic_time() + period;
		int rc;

		while (!d->beat_quit && g_cond_wait_until(&d->beat_cond, &d->beat_lock, end))
			;
		if (d->beat_quit)
			break;
		g_mutex_unlock(&d->beat_lock);
		/* under Dst.rp_lock, as every return-path write: between frames, never inside
		 * one; a write that fails means a dead channel, which the loader meets too */
		rc = mig_dst_rp_send(s, MIG_F_RP_NOP, NULL, 0);
		g_mutex_lock(&d->beat_lock);
		if (rc < 0)
			break;
	}
	g_mutex_unlock(&d->beat_lock);
	return NULL;
}

void mig_dst_beat_start(MigSession *s)
{
	Dst *d = s->dst;

	if (d->beat_thread || d->stream_file)
		return;
	g_mutex_lock(&s->lock);
	d->beat_period = MIN((gint64)d->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND / 4, G_TIME_SPAN_SECOND);
	g_mutex_unlock(&s->lock);
	d->beat_quit = FALSE;
	d->beat_thread = g_thread_new("mig/dst/beat", beat_main, s);
}

void mig_dst_beat_stop(MigSession *s)
{
	Dst *d = s->dst;

	if (!d->beat_thread)
		return;
	g_mutex_lock(&d->beat_lock);
	d->beat_quit = TRUE;
	g_cond_broadcast(&d->beat_cond);
	g_mutex_unlock(&d->beat_lock);
	g_thread_join(d->beat_thread);
	d->beat_thread = NULL;
}
