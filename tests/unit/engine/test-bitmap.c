/* mig_bitmap_count against a bit-by-bit count: empty, full and mixed words, and a
 * last word only partly inside the bitmap. */
#include "engine/bitmap.h"

static gsize count_bits(const gulong *map, gsize nbits)
{
	gsize c = 0;

	for (gsize i = 0; i < nbits; i++)
		c += mig_bitmap_test(map, i) ? 1 : 0;
	return c;
}

static void test_count(void)
{
	static const gsize sizes[] = { 1, 63, 64, 65, 1000, 4096 };
	guint32 x = 0x9e3779b9;

	for (gsize k = 0; k < G_N_ELEMENTS(sizes); k++) {
		gsize n = sizes[k];
		g_autofree gulong *map = mig_bitmap_new(n);

		g_assert_cmpuint(mig_bitmap_count(map, n), ==, 0);
		mig_bitmap_fill(map, n);
		g_assert_cmpuint(mig_bitmap_count(map, n), ==, n);
		/* mixed: every word a different pattern, some empty, some full */
		for (gsize w = 0; w < mig_bitmap_longs(n); w++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			map[w] = w % 3 == 0 ? 0 : w % 3 == 1 ? ~0ul : ((gulong)x << 32 | x);
		}
		if (n % MIG_BITS_PER_LONG)   /* bits past n stay clear, as every user keeps them */
			map[n / MIG_BITS_PER_LONG] &= (1ul << (n % MIG_BITS_PER_LONG)) - 1;
		g_assert_cmpuint(mig_bitmap_count(map, n), ==, count_bits(map, n));
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bitmap/count", test_count);
	return g_test_run();
}
