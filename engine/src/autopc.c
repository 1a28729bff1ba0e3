/* x-postcopy-auto's judgement: see autopc.h for the model. */
#include "autopc.h"

double mig_autopc_bandwidth(MigAutoPc *a, guint64 bw)
{
	/* half the weight on the newest pass: a link that changed shows within two
	 * passes, a single outlier moves the figure by half */
	a->bw = a->bw > 0 ? (a->bw + (double)bw) / 2 : (double)bw;
	return a->bw;
}

gboolean mig_autopc_judge(MigAutoPc *a, const MigAutoPcPass *p, guint64 limit_ms, char *why, gsize why_len)
{
	guint64 expected_ms = p->expected_ms, dirty_rate = p->dirty_rate;
	double q, left, sent;
	guint more;
	guint pass = ++a->passes;
	/* a ratio to an empty pass is a convention, not a measured shrink */
	gboolean measured = a->prev_ms != 0;

	/* after a pass that left nothing, anything is growth; after nothing and nothing,
	 * steady at zero (which fits any limit below) */
	if (a->prev_ms)
		q = (double)expected_ms / (double)a->prev_ms;
	else
		q = expected_ms ? 1.0 : 0.0;
	a->prev_ms = expected_ms;
	if (pass == 1) {
		/* The bulk pass sent every page once. Its rest counts each page written
		 * meanwhile once, so it can show the guest at most as fast as the pass; a
		 * guest rewriting all it has shows as a rate just under the link's (the
		 * link's bytes carry the framing too), and a rest of a smaller working set
		 * says nothing yet about the guest's rate. Only a rest of nearly the whole
		 * guest decides here; the comparison is with the RAM the pass went over,
		 * not with its bytes on the wire, which zero pages shrink. */
		if (expected_ms <= limit_ms || !p->ram || (double)p->dirty < MIG_AUTOPC_STALL * (double)p->ram)
			return FALSE;
		g_snprintf(why, why_len, "pass 1: the guest dirtied %.0f %% of its RAM during the first pass, %.1f MB/s "
			   "against the link's %.1f MB/s: precopy cannot catch up", 100.0 * (double)p->dirty / (double)p->ram,
			   (double)dirty_rate / 1e6, a->bw / 1e6);
		return TRUE;
	}
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
	/* passes still needed at this rate, counted only as far as the verdict needs;
	 * precopy from here sends the rest, then each pass's smaller rest, the last one
	 * in the downtime: sent = expected_ms x (1 + q + ... + q^more) */
	for (more = 0, left = (double)expected_ms, sent = left; left > (double)limit_ms && more <= MIG_AUTOPC_MAX_MORE;
	     more++) {
		left *= a->shrink;
		sent += left;
	}
	if (more > MIG_AUTOPC_MAX_MORE) {
		g_snprintf(why, why_len, "pass %u: expected downtime %" G_GUINT64_FORMAT " ms would take more than %u "
			   "passes at %.2fx per pass to reach downtime-limit %" G_GUINT64_FORMAT " ms", pass, expected_ms,
			   MIG_AUTOPC_MAX_MORE, a->shrink, limit_ms);
		return TRUE;
	}
	/* postcopy sends the rest once; precopy's further passes are its extra time.
	 * Only on a measured ratio: growth from an empty pass says nothing of how the
	 * rest shrinks. */
	if (measured && sent > MIG_AUTOPC_MARGIN * (double)expected_ms) {
		g_snprintf(why, why_len, "pass %u: precopy expects %u more passes (q=%.2f), about %.0f ms, postcopy "
			   "about %" G_GUINT64_FORMAT " ms", pass, more, a->shrink, sent, expected_ms);
		return TRUE;
	}
	return FALSE;
}
