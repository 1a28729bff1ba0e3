/* x-postcopy-auto's judgement: see autopc.h for the model. */
#include "autopc.h"

double mig_autopc_bandwidth(MigAutoPc *a, guint64 bw)
{
	/* half the weight on the newest pass: a link that changed shows within two
	 * passes, a single outlier moves the figure by half */
	a->bw = a->bw > 0 ? (a->bw + (double)bw) / 2 : (double)bw;
	return a->bw;
}

gboolean mig_autopc_judge(MigAutoPc *a, guint64 expected_ms, guint64 limit_ms, guint64 dirty_rate,
			  char *why, gsize why_len)
{
	double q, left;
	guint more;
	guint pass = ++a->passes;

	/* after a pass that left nothing, anything is growth; after nothing and nothing,
	 * steady at zero (which fits any limit below) */
	if (a->prev_ms)
		q = (double)expected_ms / (double)a->prev_ms;
	else
		q = expected_ms ? 1.0 : 0.0;
	a->prev_ms = expected_ms;
	if (pass == 1)
		return FALSE;
	a->shrink = pass == 2 ? q : (a->shrink + q) / 2;
	if (expected_ms <= limit_ms)
		return FALSE;
	if ((double)dirty_rate >= a->bw) {
		g_snprintf(why, why_len, "pass %u: the guest dirties %.1f MB/s, as fast as the link's %.1f MB/s "
			   "moves it: precopy cannot catch up", pass, (double)dirty_rate / 1e6, a->bw / 1e6);
		return TRUE;
	}
	if (a->shrink >= MIG_AUTOPC_STALL) {
		g_snprintf(why, why_len, "pass %u: expected downtime %" G_GUINT64_FORMAT " ms over downtime-limit %"
			   G_GUINT64_FORMAT " ms and shrinking only %.2fx per pass", pass, expected_ms, limit_ms, a->shrink);
		return TRUE;
	}
	/* passes still needed at this rate, counted only as far as the verdict needs */
	for (more = 0, left = (double)expected_ms; left > (double)limit_ms && more <= MIG_AUTOPC_MAX_MORE; more++)
		left *= a->shrink;
	if (more > MIG_AUTOPC_MAX_MORE) {
		g_snprintf(why, why_len, "pass %u: expected downtime %" G_GUINT64_FORMAT " ms would take more than %u "
			   "passes at %.2fx per pass to reach downtime-limit %" G_GUINT64_FORMAT " ms", pass, expected_ms,
			   MIG_AUTOPC_MAX_MORE, a->shrink, limit_ms);
		return TRUE;
	}
	return FALSE;
}
