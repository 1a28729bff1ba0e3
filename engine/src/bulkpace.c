/* Postcopy bulk pacing: see bulkpace.h. */
#include "engine/src/bulkpace.h"

/* Shares of the link, in percent. Bulk alone takes at most BULK_MAX: the rest is the
 * bucket's refill for the first request of a burst. It never falls under BULK_MIN,
 * so the push keeps moving (the guest's missing pages end only when it is done). */
#define BULK_MAX 90u
#define BULK_MIN 20u
/* The margin kept over the recent urgent rate: a burst of faults may need twice it. */
#define URGENT_MARGIN 2u
/* The urgent rate's decay per window, in 1/8ths kept: about 40 ms to halve. */
#define DECAY_KEEP 7u
/* Changes smaller than 1/16 of the rate are not applied (a setsockopt per socket). */
#define APPLY_SHIFT 4

static guint64 share(guint64 link, guint pct)
{
	return link / 100 * pct;
}

void mig_bulk_pace_init(MigBulkPace *p, guint64 link_bps, guint64 urgent_bytes, gint64 now_us)
{
	*p = (MigBulkPace){ .link = link_bps, .last_bytes = urgent_bytes, .last_us = now_us,
			    .rate = share(link_bps, BULK_MAX) };
}

guint64 mig_bulk_pace_update(MigBulkPace *p, guint64 urgent_bytes, gint64 now_us, gboolean *changed)
{
	gint64 dt = now_us - p->last_us;
	guint64 seen, want, lo = share(p->link, BULK_MIN), hi = share(p->link, BULK_MAX), reserve;

	*changed = FALSE;
	if (dt < MIG_BULK_PACE_WINDOW_US || !p->link)
		return p->rate;
	seen = (urgent_bytes - p->last_bytes) * G_USEC_PER_SEC / (guint64)dt;
	p->last_bytes = urgent_bytes;
	p->last_us = now_us;
	if (seen >= p->urgent_rate)
		p->urgent_rate = seen;
	else
		p->urgent_rate = (p->urgent_rate * DECAY_KEEP + seen) / (DECAY_KEEP + 1);

	reserve = p->urgent_rate * URGENT_MARGIN;
	want = hi > lo + reserve ? hi - reserve : lo;
	if (want > p->rate ? want - p->rate > p->rate >> APPLY_SHIFT : p->rate - want > p->rate >> APPLY_SHIFT) {
		p->rate = want;
		*changed = TRUE;
	}
	return p->rate;
}
