/* Postcopy bulk pacing: the background push gets what the link has left after the
 * urgent pages. Urgent and bulk bytes meet in the bottleneck's one queue (a token
 * bucket on the shaped test bed); while the two together stay under the link rate the
 * bucket keeps tokens and a requested page departs at once, but as soon as they exceed
 * it the bucket runs dry and every urgent page waits behind bulk bytes already queued.
 * So bulk is paced at a share of the link minus a margin over the recent urgent rate:
 * the urgent rate is taken up at once and let go slowly, because faults come in
 * bursts and a burst must find the bucket full. Pure arithmetic, no I/O: the caller
 * feeds it the urgent byte count and applies the rate. */
#pragma once
#include <glib.h>

typedef struct MigBulkPace {
	guint64 link;          /* the link's bytes/s (precopy's measure, or the user's cap) */
	guint64 urgent_rate;   /* recent urgent bytes/s: rises at once, decays slowly */
	guint64 last_bytes;    /* urgent bytes at the last window's end */
	gint64 last_us;        /* that window's end */
	guint64 rate;          /* bulk bytes/s last returned */
} MigBulkPace;

#define MIG_BULK_PACE_WINDOW_US 5000   /* how often the rate is reconsidered */

/* Starts with the whole bulk share: no urgent traffic seen yet. */
void mig_bulk_pace_init(MigBulkPace *p, guint64 link_bps, guint64 urgent_bytes, gint64 now_us);
/* The bulk rate (bytes/s, all bulk sockets together) for now; *changed says whether it
 * moved enough since the last answer to be worth applying. Between windows it keeps
 * the last answer. */
guint64 mig_bulk_pace_update(MigBulkPace *p, guint64 urgent_bytes, gint64 now_us, gboolean *changed);
