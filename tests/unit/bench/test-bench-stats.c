/* Unit tests of migbench's numeric helpers (tools/bench/stats.c). */
#include "tools/bench/stats.h"
#include <math.h>

static void test_median(void)
{
	const double odd[] = { 3.0, 1.0, 2.0 };
	const double even[] = { 4.0, 1.0, 3.0, 2.0 };
	const double one[] = { 7.5 };

	g_assert_cmpfloat(bench_median(odd, G_N_ELEMENTS(odd)), ==, 2.0);
	g_assert_cmpfloat(bench_median(even, G_N_ELEMENTS(even)), ==, 2.5);
	g_assert_cmpfloat(bench_median(one, 1), ==, 7.5);
	g_assert_true(isnan(bench_median(one, 0)));
	/* the caller's samples stay in run order (they go to the JSON as they are) */
	g_assert_cmpfloat(odd[0], ==, 3.0);
}

static void test_parse_size(void)
{
	guint64 v = 0;

	g_assert_true(bench_parse_size("64M", &v));
	g_assert_cmpuint(v, ==, 64u << 20);
	g_assert_true(bench_parse_size("2GiB", &v));
	g_assert_cmpuint(v, ==, 2ull << 30);
	g_assert_true(bench_parse_size("4096", &v));
	g_assert_cmpuint(v, ==, 4096);
	g_assert_true(bench_parse_size("1k", &v));
	g_assert_cmpuint(v, ==, 1024);
	g_assert_false(bench_parse_size("0", &v));
	g_assert_false(bench_parse_size("", &v));
	g_assert_false(bench_parse_size(NULL, &v));
	g_assert_false(bench_parse_size("-1M", &v));
	g_assert_false(bench_parse_size("12X", &v));
	g_assert_false(bench_parse_size("1Mx", &v));
	g_assert_false(bench_parse_size("99999999999T", &v));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bench/median", test_median);
	g_test_add_func("/bench/parse-size", test_parse_size);
	return g_test_run();
}
