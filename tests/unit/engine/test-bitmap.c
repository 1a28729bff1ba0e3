/* mig_bitmap_count against a bit-by-bit count, and the wire form (to and from bytes)
 * against the protocol's definition bit by bit: empty, full and mixed words, and a
 * last word (and byte) only partly inside the bitmap. */
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

static void test_bytes(void)
{
	static const gsize sizes[] = { 1, 7, 8, 9, 63, 64, 65, 127, 1000, 4096, 4099 };
	guint32 x = 0x2545f491;

	for (gsize k = 0; k < G_N_ELEMENTS(sizes); k++) {
		gsize n = sizes[k], nbytes = (n + 7) / 8;
		g_autofree gulong *map = mig_bitmap_new(n), *back = mig_bitmap_new(n), *inv = mig_bitmap_new(n);
		g_autofree guint8 *bytes = g_malloc(nbytes), *noisy = g_malloc(nbytes);

		for (gsize i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			if (x & 1)
				mig_bitmap_set(map, i);
		}
		mig_bitmap_to_bytes(map, n, bytes);
		for (gsize i = 0; i < n; i++)
			g_assert_cmpuint((bytes[i / 8] >> (i % 8)) & 1, ==, mig_bitmap_test(map, i));
		if (n % 8)   /* the last byte's bits past n are sent clear */
			g_assert_cmpuint(bytes[nbytes - 1] >> (n % 8), ==, 0);
		/* bits past n in the input are ignored, inverted or not */
		memcpy(noisy, bytes, nbytes);
		if (n % 8)
			noisy[nbytes - 1] |= (guint8)(0xff << (n % 8));
		mig_bitmap_from_bytes(back, n, noisy, FALSE);
		mig_bitmap_from_bytes(inv, n, noisy, TRUE);
		for (gsize i = 0; i < n; i++) {
			g_assert_cmpuint(mig_bitmap_test(back, i), ==, mig_bitmap_test(map, i));
			g_assert_cmpuint(mig_bitmap_test(inv, i), !=, mig_bitmap_test(map, i));
		}
		g_assert_cmpuint(mig_bitmap_count(back, n), ==, count_bits(back, n));
		g_assert_cmpuint(mig_bitmap_count(inv, n), ==, n - count_bits(map, n));
		if (n % MIG_BITS_PER_LONG) {
			g_assert_cmpuint(back[n / MIG_BITS_PER_LONG] >> (n % MIG_BITS_PER_LONG), ==, 0);
			g_assert_cmpuint(inv[n / MIG_BITS_PER_LONG] >> (n % MIG_BITS_PER_LONG), ==, 0);
		}
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bitmap/count", test_count);
	g_test_add_func("/bitmap/bytes", test_bytes);
	return g_test_run();
}
