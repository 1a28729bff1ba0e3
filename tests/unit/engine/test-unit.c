/* Unit encoding: every kind of damage a migration can do is told apart. */
#include "tools/migd/unit.h"
#include <glib.h>
#include <string.h>

static guint8 *unit_new(void)
{
	return g_malloc0(MIGD_UNIT_SIZE);
}

static void test_roundtrip(void)
{
	g_autofree guint8 *u = unit_new();

	for (guint32 gen = 0; gen < 5; gen++) {
		migd_unit_write(u, 42, 7, gen);
		g_assert_cmpint(migd_unit_check_self(u, 42, 7), ==, MIGD_UNIT_OK);
		g_assert_cmpint(migd_unit_check(u, 42, 7, gen), ==, MIGD_UNIT_OK);
		g_assert_cmpuint(migd_unit_gen(u), ==, gen);
	}
}

static void test_zero(void)
{
	g_autofree guint8 *u = unit_new();

	g_assert_cmpuint(migd_unit_gen(u), ==, MIGD_UNIT_ZERO_GEN);
	g_assert_cmpint(migd_unit_check_self(u, 1, 0), ==, MIGD_UNIT_ZERO);
	g_assert_cmpint(migd_unit_check(u, 1, 0, MIGD_UNIT_ZERO_GEN), ==, MIGD_UNIT_OK);
	g_assert_cmpint(migd_unit_check(u, 1, 0, 3), ==, MIGD_UNIT_ZERO);
	migd_unit_write(u, 1, 0, 1);
	g_assert_cmpint(migd_unit_check(u, 1, 0, MIGD_UNIT_ZERO_GEN), ==, MIGD_UNIT_UNEXPECTED_DATA);
}

static void test_stale_and_ahead(void)
{
	g_autofree guint8 *u = unit_new();

	migd_unit_write(u, 9, 100, 3);
	g_assert_cmpint(migd_unit_check(u, 9, 100, 4), ==, MIGD_UNIT_STALE);
	g_assert_cmpint(migd_unit_check(u, 9, 100, 2), ==, MIGD_UNIT_AHEAD);
}

static void test_foreign(void)
{
	g_autofree guint8 *u = unit_new();

	migd_unit_write(u, 9, 100, 3);
	g_assert_cmpint(migd_unit_check(u, 10, 100, 3), ==, MIGD_UNIT_FOREIGN);  /* other guest */
	g_assert_cmpint(migd_unit_check(u, 9, 101, 3), ==, MIGD_UNIT_FOREIGN);   /* misplaced */
}

/* Half of one generation and half of the next: what a copy racing a write produces. */
static void test_torn(void)
{
	g_autofree guint8 *a = unit_new();
	g_autofree guint8 *b = unit_new();

	migd_unit_write(a, 5, 8, 1);
	migd_unit_write(b, 5, 8, 2);
	for (gsize cut = 64; cut < MIGD_UNIT_SIZE; cut += 1000) {
		g_autofree guint8 *t = g_memdup2(a, MIGD_UNIT_SIZE);

		memcpy(t + cut, b + cut, MIGD_UNIT_SIZE - cut);
		g_assert_cmpint(migd_unit_check_self(t, 5, 8), ==, MIGD_UNIT_TORN);
	}
	/* one flipped bit anywhere in the body */
	a[MIGD_UNIT_SIZE - 1] ^= 1;
	g_assert_cmpint(migd_unit_check_self(a, 5, 8), ==, MIGD_UNIT_TORN);
	/* a header torn on its own (generation word replaced) */
	migd_unit_write(b, 5, 8, 2);
	b[16] ^= 1;
	g_assert_cmpint(migd_unit_check_self(b, 5, 8), ==, MIGD_UNIT_TORN);
	/* a unit zeroed except its tail */
	memset(b, 0, 64);
	g_assert_cmpint(migd_unit_check_self(b, 5, 8), ==, MIGD_UNIT_TORN);
}

static void test_is_zero(void)
{
	g_autofree guint8 *p = g_malloc0(1 << 21);

	g_assert_true(mig_mem_is_zero(p, 1 << 21));
	p[(1 << 21) - 1] = 1;
	g_assert_false(mig_mem_is_zero(p, 1 << 21));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/unit/roundtrip", test_roundtrip);
	g_test_add_func("/unit/zero", test_zero);
	g_test_add_func("/unit/stale-ahead", test_stale_and_ahead);
	g_test_add_func("/unit/foreign", test_foreign);
	g_test_add_func("/unit/torn", test_torn);
	g_test_add_func("/unit/is-zero", test_is_zero);
	return g_test_run();
}
