/* The heartbeat thread both halves run (beat.h). It waits out its period on a
 * condition, so a stop request ends the wait at once, and sends with its own lock
 * dropped, so that lock never nests around a channel's writer lock. */
#include "engine/beat.h"

#include <string.h>

static gpointer beat_main(gpointer opaque)
{
	MigBeat *b = opaque;

	g_mutex_lock(&b->lock);
	while (!b->quit) {
		gint64 end = g_get_monotonic_time() + b->period;
		int rc;

		while (!b->quit && g_cond_wait_until(&b->cond, &b->lock, end))
			;
		if (b->quit)
			break;
		g_mutex_unlock(&b->lock);
		rc = b->send(b->opaque);
		g_mutex_lock(&b->lock);
		if (rc < 0)
			break;
	}
	g_mutex_unlock(&b->lock);
	return NULL;
}

void mig_beat_init(MigBeat *b)
{
	memset(b, 0, sizeof(*b));
	g_mutex_init(&b->lock);
	g_cond_init(&b->cond);
}

void mig_beat_clear(MigBeat *b)
{
	mig_beat_stop(b);
	g_mutex_clear(&b->lock);
	g_cond_clear(&b->cond);
}

void mig_beat_start(MigBeat *b, const char *name, guint timeout_ms, MigBeatSend send, gpointer opaque)
{
	if (b->thread)
		return;
	b->period = MIN((gint64)timeout_ms * G_TIME_SPAN_MILLISECOND / 4, G_TIME_SPAN_SECOND);
	b->send = send;
	b->opaque = opaque;
	b->quit = FALSE;
	b->thread = g_thread_new(name, beat_main, b);
}

void mig_beat_stop(MigBeat *b)
{
	if (!b->thread)
		return;
	g_mutex_lock(&b->lock);
	b->quit = TRUE;
	g_cond_broadcast(&b->cond);
	g_mutex_unlock(&b->lock);
	g_thread_join(b->thread);
	b->thread = NULL;
}
