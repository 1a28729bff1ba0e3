/* The peer's silence on the channels a destination wait depends on (silence.h). */
#include "engine/dst/silence.h"
#include "channels/io.h"

static guint64 progress(MigSession *s)
{
	return mig_atomic_get(&s->stats.transferred) + mig_atomic_get(&s->dst->dev_fed);
}

void mig_dst_silence_init(MigDstSilence *w, MigSession *s, gboolean urgent)
{
	g_mutex_lock(&s->lock);
	w->span = (gint64)s->dst->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND;
	g_mutex_unlock(&s->lock);
	w->s = s;
	w->urgent = urgent;
	w->last = g_get_monotonic_time();
	w->mark = progress(s);
}

void mig_dst_silence_touch(MigDstSilence *w)
{
	w->last = g_get_monotonic_time();
}

/* The least of idle and the fds' mig_io_idle_ms (-1: none can tell). */
static long least_idle_ms(const int *fds, guint n, long idle)
{
	for (guint i = 0; i < n; i++) {
		long t = fds[i] >= 0 ? mig_io_idle_ms(fds[i]) : -1;

		if (t >= 0 && (idle < 0 || t < idle))
			idle = t;
	}
	return idle;
}

/* ms since the last byte on the channels waited for, -1 when none can tell */
static long channels_idle_ms(MigDstSilence *w)
{
	Dst *d = w->s->dst;
	long idle;

	g_mutex_lock(&d->mf_lock);
	idle = least_idle_ms(d->mf_fd, MIG_DST_MF_MAX, -1);
	g_mutex_unlock(&d->mf_lock);
	if (!w->urgent)
		return idle;
	g_mutex_lock(&w->s->lock);
	idle = least_idle_ms(d->urgent_fd, MIG_PREEMPT_MAX, idle);
	g_mutex_unlock(&w->s->lock);
	return idle;
}

gint64 mig_dst_silence_left(MigDstSilence *w)
{
	gint64 now = g_get_monotonic_time();
	guint64 mark = progress(w->s);
	long idle = channels_idle_ms(w);

	if (mark != w->mark) {
		w->mark = mark;
		w->last = now;
	}
	if (idle >= 0)
		w->last = MAX(w->last, now - (gint64)idle * G_TIME_SPAN_MILLISECOND);
	return MAX(w->last + w->span - now, 0);
}

gint64 mig_dst_silence_slice_us(const MigDstSilence *w, gint64 left)
{
	return MAX(MIN(left, w->span / 4), 1);
}

guint64 mig_dst_silence_ms(const MigDstSilence *w)
{
	return (guint64)(w->span / G_TIME_SPAN_MILLISECOND);
}
