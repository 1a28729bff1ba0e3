/* x-postcopy-auto's judgement: see autopc.h for the model. */
#include "autopc.h"

double mig_autopc_bandwidth(MigAutoPc *a, guint64 bw)
{
	/* half the weight on the newest pass: a link that changed shows within two
	 * passes, a single outlier moves the figure by half */
	a->bw = a->bw > 0 ? (a->bw + (double)bw) / 2 : (double)bw;
	return a->bw;
}

/* What precopy sends from a pass whose rest is expected_ms until the rest fits limit_ms
 * at q per pass: the rest, then each further pass's smaller rest, the last one in the
 * downtime, expected_ms x (1 + q + ... + q^more). Counts passes only up to cap. */
static double precopy_sent(guint64 expected_ms, double q, guint64 limit_ms, guint cap, guint *more)
{
	double left = (double)expected_ms, sent = left;

	for (*more = 0; left > (double)limit_ms && *more < cap; (*more)++) {
		left *= q;
		sent += left;
	}
	return sent;
}

gboolean mig_autopc_judge(MigAutoPc *a, const MigAutoPcPass *p, guint64 limit_ms, char *why, gsize why_len)
{
	guint64 expected_ms = p->expected_ms, dirty_rate = p->dirty_rate;
	double q, sent, share;
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
		 * link's bytes carry the framing too). A rest of nearly the whole guest
		 * has stalled; the comparison is with the RAM the pass went over, not with
		 * its bytes on the wire, which zero pages shrink. */
		if (expected_ms <= limit_ms || !p->ram)
			return FALSE;
		share = (double)p->dirty / (double)p->ram;
		if (share >= MIG_AUTOPC_STALL) {
			g_snprintf(why, why_len, "pass 1: the guest dirtied %.0f %% of its RAM during the first pass, %.1f MB/s "
				   "against the link's %.1f MB/s: precopy cannot catch up", 100.0 * share,
				   (double)dirty_rate / 1e6, a->bw / 1e6);
			return TRUE;
		}
		/* A smaller rest still bounds the next ratio from below: a guest that
		 * dirtied that share of its RAM over the whole pass dirties at least that
		 * share of it over a shorter one (pages already dirty are not counted
		 * twice, so the count grows slower than the time), and the pass over all
		 * the RAM took no less than one over the rest would. */
		sent = precopy_sent(expected_ms, share, limit_ms, MIG_AUTOPC_MAX_PASSES, &more);
		if (sent <= MIG_AUTOPC_MARGIN * (double)expected_ms)
			return FALSE;
		g_snprintf(why, why_len, "pass 1: precopy expects %u more passes (q=%.2f or more: the guest dirtied %.0f %% "
			   "of its RAM during the first pass), about %.0f ms, postcopy about %" G_GUINT64_FORMAT " ms", more,
			   share, 100.0 * share, sent, expected_ms);
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
	sent = precopy_sent(expected_ms, a->shrink, limit_ms, MIG_AUTOPC_MAX_MORE + 1, &more);
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

gboolean mig_autopc_probe(const MigAutoPcProbe *p, guint64 limit_ms, char *why, gsize why_len)
{
	double q, sent;
	guint more;

	/* The pages behind the cursor keep their bits to the pass's end, so its rest is
	 * at least what the probe found there: only a rest that does not fit already is
	 * judged. A working set that fits the limit never gets this far, wherever it
	 * lies. */
	if (!p->done || !p->bw || p->expected_ms <= limit_ms)
		return FALSE;
	/* The rate, not the share of the sent part found dirty: that share depends on
	 * where the guest's working set lies against the cursor (one at the front of the
	 * RAM shows whole however slowly it was written), and a guest that sweeps its RAM
	 * shows only the part the sweep has reached. The tracker's count of pages written
	 * since the last collection, anywhere, over that interval is the R of the model,
	 * and the pass's own rate its B: each further pass would leave R/B of the one
	 * before. */
	q = (double)p->dirty_rate / (double)p->bw;
	if (q >= 1.0) {
		g_snprintf(why, why_len, "pass 1 at %.0f %%: the guest dirties %.1f MB/s, as fast as the pass's %.1f MB/s "
			   "moves it, and what it rewrote of the %.0f MB sent already takes %" G_GUINT64_FORMAT " ms: "
			   "precopy cannot catch up", 100.0 * (double)p->done / (double)MAX(p->ram, 1u),
			   (double)p->dirty_rate / 1e6, (double)p->bw / 1e6, (double)p->done / 1e6, p->expected_ms);
		return TRUE;
	}
	/* Of a guest that will converge, the sooner finish, as at a pass's end: the rest
	 * at this pass's end is at least expected_ms, so counting further passes from
	 * there counts no more than precopy would need. migbench's hot guest (q about
	 * 0.7 to 0.9 on the bed) is switched at the first probe instead of the pass's
	 * end, which saves the rest of the bulk pass: postcopy sends those pages anyway. */
	sent = precopy_sent(p->expected_ms, q, limit_ms, MIG_AUTOPC_MAX_PASSES, &more);
	if (sent > MIG_AUTOPC_MARGIN * (double)p->expected_ms) {
		g_snprintf(why, why_len, "pass 1 at %.0f %%: precopy expects %u more passes (q=%.2f: the guest dirties "
			   "%.1f MB/s, the pass moves %.1f MB/s), about %.0f ms, postcopy about %" G_GUINT64_FORMAT " ms",
			   100.0 * (double)p->done / (double)MAX(p->ram, 1u), more, q, (double)p->dirty_rate / 1e6,
			   (double)p->bw / 1e6, sent, p->expected_ms);
		return TRUE;
	}
	return FALSE;
}
