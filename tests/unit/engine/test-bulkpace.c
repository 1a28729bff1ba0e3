/* Postcopy bulk pacing (engine/src/bulkpace.h): bulk yields the link to urgent traffic at
 * once, takes it back slowly, never starves, and is left alone between windows. */
#include "engine/src/bulkpace.h"
#include <glib.h>

#define LINK 125000000ull   /* 1 Gbit/s in bytes/s */
#define W MIG_BULK_PACE_WINDOW_US

/* Feeds one window in which urgent_bps of urgent traffic flowed. */
static guint64 window(MigBulkPace *p, guint64 *bytes, gint64 *now, guint64 urgent_bps, gboolean *changed)
{
	*now += W;
	*bytes += urgent_bps * W / G_USEC_PER_SEC;
	return mig_bulk_pace_update(p, *bytes, *now, changed);
}

static void test_idle_link(void)
{
	MigBulkPace p;
	guint64 bytes = 1000;
	gint64 now = 10 * G_USEC_PER_SEC;
	gboolean changed;

	mig_bulk_pace_init(&p, LINK, bytes, now);
	/* no urgent traffic: 90 % of the link, and nothing to apply */
	g_assert_cmpuint(p.rate, ==, LINK / 100 * 90);
	for (int i = 0; i < 10; i++) {
		g_assert_cmpuint(window(&p, &bytes, &now, 0, &changed), ==, LINK / 100 * 90);
		g_assert_false(changed);
	}
}

static void test_yields_at_once(void)
{
	MigBulkPace p;
	guint64 bytes = 0, rate;
	gint64 now = 0;
	gboolean changed;

	mig_bulk_pace_init(&p, LINK, bytes, now);
	/* 15 % of the link in urgent pages: bulk drops by twice that in the same window */
	rate = window(&p, &bytes, &now, LINK / 100 * 15, &changed);
	g_assert_true(changed);
	g_assert_cmpuint(rate, <=, LINK / 100 * 61);
	g_assert_cmpuint(rate, >=, LINK / 100 * 59);
	/* the same again: no change worth a setsockopt */
	g_assert_cmpuint(window(&p, &bytes, &now, LINK / 100 * 15, &changed), ==, rate);
	g_assert_false(changed);
}

static void test_recovers_slowly(void)
{
	MigBulkPace p;
	guint64 bytes = 0, low, prev;
	gint64 now = 0;
	gboolean changed;
	int windows = 0;

	mig_bulk_pace_init(&p, LINK, bytes, now);
	low = window(&p, &bytes, &now, LINK / 100 * 30, &changed);
	/* the burst ends: bulk climbs back, never in one step, never above 90 % */
	prev = low;
	for (; windows < 400 && prev < LINK / 100 * 89; windows++) {
		guint64 r = window(&p, &bytes, &now, 0, &changed);

		g_assert_cmpuint(r, >=, prev);
		g_assert_cmpuint(r, <=, LINK / 100 * 90);
		prev = r;
	}
	g_assert_cmpuint(prev, >=, LINK / 100 * 89);
	/* slowly: not within the first 4 windows (20 ms), but within 2 s */
	g_assert_cmpint(windows, >, 4);
	g_assert_cmpint(windows, <, 400);
}

static void test_never_starves(void)
{
	MigBulkPace p;
	guint64 bytes = 0;
	gint64 now = 0;
	gboolean changed;

	mig_bulk_pace_init(&p, LINK, bytes, now);
	/* urgent traffic above the link rate (a 2 MiB page in a short window) */
	g_assert_cmpuint(window(&p, &bytes, &now, LINK * 3, &changed), ==, LINK / 100 * 20);
	g_assert_cmpuint(window(&p, &bytes, &now, LINK * 3, &changed), ==, LINK / 100 * 20);
}

static void test_between_windows(void)
{
	MigBulkPace p;
	gboolean changed;

	mig_bulk_pace_init(&p, LINK, 0, 0);
	/* a huge burst seen before the window is over changes nothing yet */
	g_assert_cmpuint(mig_bulk_pace_update(&p, 100 << 20, W - 1, &changed), ==, LINK / 100 * 90);
	g_assert_false(changed);
	g_assert_cmpuint(mig_bulk_pace_update(&p, 100 << 20, W, &changed), ==, LINK / 100 * 20);
	g_assert_true(changed);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bulkpace/idle-link", test_idle_link);
	g_test_add_func("/bulkpace/yields-at-once", test_yields_at_once);
	g_test_add_func("/bulkpace/recovers-slowly", test_recovers_slowly);
	g_test_add_func("/bulkpace/never-starves", test_never_starves);
	g_test_add_func("/bulkpace/between-windows", test_between_windows);
	return g_test_run();
}
