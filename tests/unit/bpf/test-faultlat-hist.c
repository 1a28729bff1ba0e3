/* The histogram math mig-faultlat shares with its BPF side (bpf/faultlat.h) and the
 * percentiles it derives (tools/faultlat/report.c): bucket bounds, and percentiles
 * within half a bucket (1.6 %) of the exact nearest-rank value. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "tools/faultlat/report.h"

static void test_fine_slots_cover_values(void)
{
	uint32_t prev = 0;

	/* Every value falls inside its slot, and slots only grow with the value. */
	for (uint64_t v = 0; v < (1ULL << 42); v = v < 4096 ? v + 1 : v + v / 97) {
		uint32_t s = fl_fine_slot(v);

		g_assert_cmpuint(s, <, FL_FINE_SLOTS);
		g_assert_cmpuint(s, >=, prev);
		prev = s;
		if (s == FL_FINE_SLOTS - 1 && v >= fl_fine_lo(s) + fl_fine_width(s))
			continue;	/* the overflow slot */
		g_assert_cmpuint(fl_fine_lo(s), <=, v);
		g_assert_cmpuint(v, <, fl_fine_lo(s) + fl_fine_width(s));
		/* Below FL_SUB every value has its own slot; above, a slot is at most 1/32
		 * of its value wide: the 1.6 % promise. */
		if (s >= FL_SUB)
			g_assert_cmpfloat((double)fl_fine_width(s) / (double)fl_fine_lo(s), <=, 1.0 / 32);
	}
}

static void test_log2_slots(void)
{
	g_assert_cmpuint(fl_log2_slot(0), ==, 0);
	g_assert_cmpuint(fl_log2_slot(1999), ==, 0);	/* 1 us */
	g_assert_cmpuint(fl_log2_slot(2000), ==, 1);
	g_assert_cmpuint(fl_log2_slot(100000), ==, 6);	/* 100 us: 64..127 */
	g_assert_cmpuint(fl_log2_slot(10000000), ==, 13);	/* 10 ms: 8192..16383 */
	g_assert_cmpuint(fl_log2_slot(~0ULL), ==, FL_LOG2_SLOTS - 1);
	for (int i = 0; i < 64; i++)
		g_assert_cmpuint(fl_log2(1ULL << i), ==, (uint32_t)i);
}

static void test_page_sizes(void)
{
	g_assert_cmpint(fl_page_size_of(12), ==, FL_PS_4K);
	g_assert_cmpint(fl_page_size_of(21), ==, FL_PS_2M);
	g_assert_cmpint(fl_page_size_of(30), ==, FL_PS_1G);
	g_assert_cmpint(fl_page_size_of(0), ==, FL_PS_OTHER);
	g_assert_cmpstr(fl_page_size_name(FL_PS_2M), ==, "2M");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void add(struct fl_hist *h, uint64_t ns)
{
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->fine[fl_fine_slot(ns)]++;
	h->log2_us[fl_log2_slot(ns)]++;
}

static void test_percentiles_match_exact(void)
{
	enum { N = 257 };
	static const double pcts[] = { 50, 90, 99, 100 };
	struct fl_hist *h = g_new0(struct fl_hist, 1);
	uint64_t v[N];

	/* Log-uniform between 5 us and 50 ms, like a mix of delays. */
	g_random_set_seed(6);
	for (int i = 0; i < N; i++) {
		v[i] = (uint64_t)(5000.0 * g_random_double_range(1, 10000));
		add(h, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	for (size_t i = 0; i < G_N_ELEMENTS(pcts); i++) {
		size_t rank = (size_t)(pcts[i] / 100.0 * N + 0.999999);
		double exact = (double)v[rank - 1], got = fl_percentile_ns(h, pcts[i]);

		g_assert_cmpfloat(got, <=, exact * 1.016 + 1);
		g_assert_cmpfloat(got, >=, exact * 0.984 - 1);
	}
	g_assert_cmpfloat(fl_percentile_ns(h, 100), <=, (double)h->max_ns);
	memset(h, 0, sizeof(*h));
	g_assert_cmpfloat(fl_percentile_ns(h, 50), ==, 0);
	g_free(h);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/faultlat/fine-slots", test_fine_slots_cover_values);
	g_test_add_func("/faultlat/log2-slots", test_log2_slots);
	g_test_add_func("/faultlat/page-sizes", test_page_sizes);
	g_test_add_func("/faultlat/percentiles", test_percentiles_match_exact);
	return g_test_run();
}
