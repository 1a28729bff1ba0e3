/* x-postcopy-auto: judging, pass by pass, whether precopy will ever fit the downtime
 * limit, so a migration that would not converge switches to postcopy by itself.
 *
 * The model: each pass of a guest that dirties memory at rate R over a link at rate B
 * leaves a dirty rest that shrinks by about R/B per pass, until it reaches the guest's
 * working set, where it stops shrinking. So the figure to watch is the ratio of one
 * pass's expected downtime to the one before (smoothed over passes), and the bandwidth
 * it is computed against is smoothed too: one slow pass must not decide. The first
 * pass (the bulk copy) sets the baseline: what the guest dirtied during it says how
 * much it dirties in that long, not how the rest shrinks, since a pass that long
 * catches the whole working set. It decides alone when that rest is nearly the whole
 * guest: the guest rewrote what the pass sent as fast as the pass sent it, and the
 * dirty bitmap, which counts a page once however often it is written, cannot show a
 * faster guest than that; or when the rest's share of the RAM, a lower bound of the
 * next ratio, already makes precopy the later finish. Of a guest that will converge,
 * the judge picks the sooner finish: precopy sends the rest again and again as it
 * shrinks, postcopy sends it once. */
#pragma once

#include <glib.h>

typedef struct MigAutoPc {
	double bw;          /* smoothed bandwidth, bytes/s; 0 until the first pass */
	double shrink;      /* smoothed expected(pass) / expected(pass - 1) */
	guint64 prev_ms;    /* the last pass's expected downtime */
	guint passes;       /* passes seen */
} MigAutoPc;

/* A smoothed expected downtime shrinking slower than this per pass has stalled; so has
 * a first pass that left this much of the guest dirty. */
#define MIG_AUTOPC_STALL 0.9
/* More passes than this still needed at the current shrink rate: switch now. */
#define MIG_AUTOPC_MAX_MORE 4
/* Precopy's remaining sending (the rest, each further pass's rest, the final copy)
 * against postcopy's (the rest once): switch when it is more than this many times
 * as long. Postcopy's faults stall the guest and cost round trips, so a near tie
 * stays in precopy. */
#define MIG_AUTOPC_MARGIN 1.5
/* How far the first pass's verdict counts passes: its ratio is below MIG_AUTOPC_STALL,
 * so the sum has nearly reached its limit by then. */
#define MIG_AUTOPC_MAX_PASSES 64

/* Feeds one pass's measured bandwidth (bytes/s); returns the smoothed figure. */
double mig_autopc_bandwidth(MigAutoPc *a, guint64 bw);

/* What one pass left, as the judge sees it. */
typedef struct MigAutoPcPass {
	guint64 expected_ms;    /* the rest's expected downtime against the smoothed bandwidth */
	guint64 dirty;          /* the rest, bytes */
	guint64 dirty_rate;     /* what the guest dirtied during the pass, bytes/s */
	guint64 ram;            /* the guest's RAM, bytes: what the first pass went over */
} MigAutoPcPass;

/* One pass's verdict: TRUE means switch to postcopy now, and why says why (for
 * query-migrate). Never TRUE while expected_ms fits limit_ms; on the first pass only
 * when the rest is MIG_AUTOPC_STALL of the guest's RAM or more, or when precopy at a
 * ratio of the rest's share of the RAM would take over MIG_AUTOPC_MARGIN x postcopy. */
gboolean mig_autopc_judge(MigAutoPc *a, const MigAutoPcPass *p, guint64 limit_ms, char *why, gsize why_len);

/* The first pass looks at itself at each MIG_AUTOPC_PROBES-th of the RAM it went over
 * (a dirty collection, about 0.5 ms per GiB of 4 KiB pages; none at its end, which
 * collects anyway): a guest that precopy cannot move shows already then, and waiting
 * for the pass's end would only send, for nothing, the rest of a pass postcopy sends
 * anyway. */
#define MIG_AUTOPC_PROBES 8

/* Where the first pass stands at a probe. */
typedef struct MigAutoPcProbe {
	guint64 done;           /* RAM behind the pass's cursor, bytes: what it has sent */
	guint64 redirtied;      /* of that, dirty again at the probe, bytes */
	guint64 ram;            /* the guest's RAM, bytes */
	guint64 expected_ms;    /* redirtied's expected downtime (devices too) at the pass's bandwidth */
	guint64 bw;             /* the pass's bandwidth so far, bytes/s */
	guint64 dirty_rate;     /* pages the guest wrote since the last collection, anywhere, bytes/s */
} MigAutoPcProbe;

/* A probe's verdict: TRUE (why set) means cut the pass and switch now. Only when
 * redirtied alone does not fit limit_ms, and then when the guest dirties as fast as
 * the pass sends, or when precopy at a ratio of dirty_rate / bw per pass would take
 * over MIG_AUTOPC_MARGIN x postcopy. */
gboolean mig_autopc_probe(const MigAutoPcProbe *p, guint64 limit_ms, char *why, gsize why_len);
