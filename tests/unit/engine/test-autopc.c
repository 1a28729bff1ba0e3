/* x-postcopy-auto's judge on known pass sequences: a guest whose dirty rest shrinks
 * fast is left to precopy, one whose rest stalls at its working set, or that dirties
 * as fast as the link moves, or would need many more passes, is switched, and so is
 * one whose further passes would take longer than postcopy moving the rest once; on
 * the first pass only a guest that rewrote nearly all of itself, never while the
 * rest fits the limit. Inside the first pass, a probe switches a guest dirtying as
 * fast as the pass sends or one precopy would move later than postcopy, never while
 * what it found dirty fits the limit, and never an idle one. */
#include "engine/src/autopc.h"

#define MB 1000000ull

#define GUEST (1024 * MB)   /* the RAM of every sequence here */

typedef struct Pass {
	guint64 bw, expected_ms, dirty_rate, dirty;   /* dirty 0: a tenth of the guest */
} Pass;

/* Runs the passes; returns the 1-based pass that switched, 0 if none did. */
static guint run(const Pass *p, guint n, guint64 limit_ms, char *why, gsize len)
{
	MigAutoPc a = { 0 };

	for (guint i = 0; i < n; i++) {
		MigAutoPcPass in = { .expected_ms = p[i].expected_ms, .dirty_rate = p[i].dirty_rate,
				     .dirty = p[i].dirty ? p[i].dirty : GUEST / 10, .ram = GUEST };

		mig_autopc_bandwidth(&a, p[i].bw);
		if (mig_autopc_judge(&a, &in, limit_ms, why, len))
			return i + 1;
	}
	return 0;
}

static void test_converging(void)
{
	/* a fifth per pass: 3200 -> 640 -> 128; at pass 2 precopy expects one more pass,
	 * 640 + 128 ms against postcopy's 640 (x1.5 margin): stays, then fits */
	const Pass p[] = { { 100 * MB, 3200, 10 * MB, 0 }, { 100 * MB, 640, 10 * MB, 0 }, { 100 * MB, 128, 10 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 0);
	g_assert_cmpstr(why, ==, "");
}

static void test_halving(void)
{
	/* halving per pass converges in three more, but 1600 + 800 + 400 + 200 ms of
	 * precopy is more than 1.5 x postcopy's 1600: the sooner finish is postcopy */
	const Pass p[] = { { 100 * MB, 3200, 10 * MB, 0 }, { 100 * MB, 1600, 10 * MB, 0 }, { 100 * MB, 800, 10 * MB, 0 },
			   { 100 * MB, 400, 10 * MB, 0 }, { 100 * MB, 200, 10 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 2);
	g_assert_cmpstr(why, ==, "pass 2: precopy expects 3 more passes (q=0.50), about 3000 ms, postcopy about 1600 ms");
}

static void test_hot(void)
{
	/* migbench postcopy-auto's hot guest, half its RAM rewritten at random: the bulk
	 * pass leaves that half, so the next ratio is 0.5 or more, and 2200 + 1100 + 550
	 * + 275 ms of precopy is more than 1.5 x postcopy's 2200 */
	const Pass p[] = { { 250 * MB, 2200, 60 * MB, GUEST / 2 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, 1, 300, why, sizeof(why)), ==, 1);
	g_assert_cmpstr(why, ==, "pass 1: precopy expects 3 more passes (q=0.50 or more: the guest dirtied 50 % of its "
			"RAM during the first pass), about 4125 ms, postcopy about 2200 ms");
}

static void test_slow_shrink(void)
{
	/* a guest whose bulk pass left little: the ratio to it looks fast (0.30:
	 * 1500 + 450 + 135 ms, under 1.5 x 1500), pass 3 shows the real shrink (0.67,
	 * averaged 0.48): 1000 + 483 + 234 ms against postcopy's 1000 switches, though
	 * precopy would converge within MIG_AUTOPC_MAX_MORE passes */
	const Pass p[] = { { 100 * MB, 5000, 30 * MB, 0 }, { 100 * MB, 1500, 30 * MB, 0 }, { 100 * MB, 1000, 30 * MB, 0 },
			   { 100 * MB, 700, 30 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 3);
	g_assert_cmpstr(why, ==, "pass 3: precopy expects 2 more passes (q=0.48), about 1717 ms, postcopy about 1000 ms");
}

static void test_working_set(void)
{
	/* the rest stays at its working set: 900 ms every pass against 300 */
	const Pass p[] = { { 100 * MB, 5000, 30 * MB, 0 }, { 100 * MB, 900, 30 * MB, 0 }, { 100 * MB, 900, 30 * MB, 0 },
			   { 100 * MB, 900, 30 * MB, 0 } };
	char why[256] = "";

	/* pass 2's ratio to the bulk pass is small; pass 3 brings the average to 0.59,
	 * which needs three passes: 900 + 531 + 313 + 185 ms against postcopy's 900 */
	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 3);
	g_assert_nonnull(strstr(why, "pass 3: precopy expects 3 more passes (q=0.59)"));
	g_assert_nonnull(strstr(why, "postcopy about 900 ms"));
}

static void test_stalled_from_start(void)
{
	/* the bulk pass's rest is already the working set: a ratio of 1 at pass 2 */
	const Pass p[] = { { 100 * MB, 900, 30 * MB, 0 }, { 100 * MB, 900, 30 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 2);
	g_assert_nonnull(strstr(why, "shrinking only 1.00x"));
}

static void test_dirty_faster_than_link(void)
{
	/* shrinking, but the guest dirties faster than the smoothed link (100, then 20:
	 * 60 MB/s) */
	const Pass p[] = { { 100 * MB, 5000, 10 * MB, 0 }, { 20 * MB, 1000, 70 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 2);
	g_assert_nonnull(strstr(why, "70.0 MB/s"));
	g_assert_nonnull(strstr(why, "60.0 MB/s"));
}

static void test_fits_limit(void)
{
	/* stalled, but under the limit: precopy completes now */
	const Pass p[] = { { 100 * MB, 200, 90 * MB, 0 }, { 100 * MB, 200, 99 * MB, 0 }, { 100 * MB, 200, 99 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 0);
}

static void test_first_pass_working_set(void)
{
	/* a first pass whose rest is a working set smaller than the guest decides only
	 * by what the rest will cost, however fast that rest was dirtied against however
	 * slow a link: a quarter of the guest, 1100 + 275 ms of precopy, is under 1.5 x
	 * postcopy's 1100 (at q=0.25 no rest ever reaches it); 40 % of it, 10 s at q=0.4,
	 * 10000 + 4000 + 1600 + 640 + 256 ms, is over */
	const Pass small[] = { { 1 * MB, 1100, 500 * MB, GUEST / 4 } };
	const Pass big[] = { { 1 * MB, 10000, 500 * MB, GUEST / 5 * 2 } };
	char why[256] = "";

	g_assert_cmpuint(run(small, 1, 300, why, sizeof(why)), ==, 0);
	g_assert_cmpstr(why, ==, "");
	g_assert_cmpuint(run(big, 1, 300, why, sizeof(why)), ==, 1);
	g_assert_nonnull(strstr(why, "pass 1: precopy expects 4 more passes (q=0.40 or more"));
}

static void test_first_pass_rewrote_all(void)
{
	/* the stream guest of migbench postcopy-auto: every page dirty again after the
	 * bulk pass, at a rate just under the link's (its bytes carry the framing) */
	const Pass all[] = { { 191 * MB, 5617, 190 * MB, GUEST } };
	/* 90 % of the guest is the threshold of a stall; 89 % is switched by what its
	 * further passes would cost */
	const Pass most[] = { { 191 * MB, 5000, 170 * MB, GUEST / 10 * 9 } };
	const Pass less[] = { { 191 * MB, 5000, 170 * MB, GUEST / 100 * 89 } };
	/* all dirty, but it fits the limit: precopy completes */
	const Pass fits[] = { { 191 * MB, 300, 190 * MB, GUEST } };
	char why[256] = "";

	g_assert_cmpuint(run(all, 1, 300, why, sizeof(why)), ==, 1);
	g_assert_nonnull(strstr(why, "pass 1"));
	g_assert_nonnull(strstr(why, "100 % of its RAM"));
	g_assert_nonnull(strstr(why, "190.0 MB/s"));
	g_assert_nonnull(strstr(why, "191.0 MB/s"));
	g_assert_cmpuint(run(most, 1, 300, why, sizeof(why)), ==, 1);
	g_assert_cmpuint(run(less, 1, 300, why, sizeof(why)), ==, 1);
	g_assert_nonnull(strstr(why, "(q=0.89 or more"));
	why[0] = '\0';
	g_assert_cmpuint(run(fits, 1, 300, why, sizeof(why)), ==, 0);
	g_assert_cmpstr(why, ==, "");
}

static void test_first_pass_zero_pages(void)
{
	/* a guest of zero pages: the bulk pass moved few bytes, so its measured link is
	 * slow, and a modest writer's rate is above it; its rest is small against the
	 * RAM, so pass 2, on a real link figure, decides (and here converges) */
	const Pass p[] = { { 30 * MB, 500, 50 * MB, 15 * MB }, { 250 * MB, 20, 50 * MB, 3 * MB } };
	char why[256] = "";

	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 0);
	g_assert_cmpstr(why, ==, "");
}

static void test_after_empty_pass(void)
{
	/* nothing left after pass 2, then the guest wakes: one pass of growth from zero
	 * is not a verdict (its ratio is no measured shrink), the same rest again is: at
	 * the smoothed 0.75, four more passes, about 2441 ms against postcopy's 800 */
	const Pass p[] = { { 100 * MB, 3000, 1 * MB, 0 }, { 100 * MB, 0, 1 * MB, 0 }, { 100 * MB, 800, 1 * MB, 0 },
			   { 100 * MB, 800, 1 * MB, 0 }, { 100 * MB, 800, 1 * MB, 0 } };
	char why[256] = "";

	g_assert_cmpuint(run(p, 3, 300, why, sizeof(why)), ==, 0);
	g_assert_cmpuint(run(p, G_N_ELEMENTS(p), 300, why, sizeof(why)), ==, 4);
	g_assert_nonnull(strstr(why, "pass 4: precopy expects 4 more passes (q=0.75)"));
}

/* The first pass's probe at an eighth of the guest: 128 MB sent. */
static gboolean probe(guint64 redirtied, guint64 expected_ms, guint64 dirty_rate, guint64 bw, char *why, gsize len)
{
	MigAutoPcProbe p = { .done = GUEST / 8, .redirtied = redirtied, .ram = GUEST, .expected_ms = expected_ms,
			     .bw = bw, .dirty_rate = dirty_rate };

	return mig_autopc_probe(&p, 300, why, len);
}

static void test_probe_stream(void)
{
	/* migbench postcopy-auto's stream guest an eighth into the bulk pass (a smoke
	 * run's figures): it dirties faster than the pass sends, and what it rewrote
	 * behind the cursor alone is over the limit: switch now, not after the pass */
	char why[256] = "";

	g_assert_true(probe(82 * MB, 654, 169 * MB, 125 * MB, why, sizeof(why)));
	g_assert_cmpstr(why, ==, "pass 1 at 12 %: the guest dirties 169.0 MB/s, as fast as the pass's 125.0 MB/s moves "
			"it, and what it rewrote of the 128 MB sent already takes 654 ms: precopy cannot catch up");
}

static void test_probe_hot(void)
{
	/* the hot guest (half its RAM at random) at its first probe, smoke figures: q =
	 * 46 / 64 = 0.72; from the rest already found, 393 ms, precopy needs one more pass,
	 * 393 + 282 ms, over 1.5 x postcopy's 393: the sooner finish is postcopy, now.
	 * At q = 0.25 the same rest stays in precopy (393 + 98 ms) */
	char why[256] = "";

	g_assert_true(probe(90 * MB, 393, 46 * MB, 64 * MB, why, sizeof(why)));
	g_assert_cmpstr(why, ==, "pass 1 at 12 %: precopy expects 1 more passes (q=0.72: the guest dirties 46.0 MB/s, "
			"the pass moves 64.0 MB/s), about 675 ms, postcopy about 393 ms");
	why[0] = '\0';
	g_assert_false(probe(90 * MB, 393, 16 * MB, 64 * MB, why, sizeof(why)));
	g_assert_cmpstr(why, ==, "");
}

static void test_probe_fits(void)
{
	/* as fast, but what it rewrote fits the limit (a working set of 50 MB, wherever
	 * it lies): the pass's end decides on the whole rest */
	char why[256] = "";

	g_assert_false(probe(50 * MB, 250, 400 * MB, 200 * MB, why, sizeof(why)));
	g_assert_cmpstr(why, ==, "");
}

static void test_probe_idle(void)
{
	/* an idle guest dirties nothing: however long its devices take, no verdict */
	char why[256] = "";

	g_assert_false(probe(0, 900, 0, 200 * MB, why, sizeof(why)));
	g_assert_false(probe(0, 0, 0, 0, why, sizeof(why)));
	g_assert_cmpstr(why, ==, "");
}

static void test_smoothed_bandwidth(void)
{
	MigAutoPc a = { 0 };

	g_assert_cmpfloat(mig_autopc_bandwidth(&a, 100), ==, 100.0);
	g_assert_cmpfloat(mig_autopc_bandwidth(&a, 300), ==, 200.0);
	g_assert_cmpfloat(mig_autopc_bandwidth(&a, 0), ==, 100.0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/autopc/converging", test_converging);
	g_test_add_func("/autopc/halving", test_halving);
	g_test_add_func("/autopc/hot", test_hot);
	g_test_add_func("/autopc/slow-shrink", test_slow_shrink);
	g_test_add_func("/autopc/working-set", test_working_set);
	g_test_add_func("/autopc/stalled-from-start", test_stalled_from_start);
	g_test_add_func("/autopc/dirty-faster-than-link", test_dirty_faster_than_link);
	g_test_add_func("/autopc/fits-limit", test_fits_limit);
	g_test_add_func("/autopc/first-pass-working-set", test_first_pass_working_set);
	g_test_add_func("/autopc/first-pass-rewrote-all", test_first_pass_rewrote_all);
	g_test_add_func("/autopc/first-pass-zero-pages", test_first_pass_zero_pages);
	g_test_add_func("/autopc/after-empty-pass", test_after_empty_pass);
	g_test_add_func("/autopc/smoothed-bandwidth", test_smoothed_bandwidth);
	g_test_add_func("/autopc/probe-stream", test_probe_stream);
	g_test_add_func("/autopc/probe-hot", test_probe_hot);
	g_test_add_func("/autopc/probe-fits", test_probe_fits);
	g_test_add_func("/autopc/probe-idle", test_probe_idle);
	return g_test_run();
}
