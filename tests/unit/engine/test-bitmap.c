/* mig_bitmap_count against a bit-by-bit count, and the wire form (to and from bytes)
 * against the protocol's definition bit by bit: empty, full and mixed words, and a
 * last word (and byte) only partly inside the bitmap; the groups' count and walk
 * against the plain ones. */
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

/* The groups: a count and a walk through them agree with the plain ones on the map,
 * whatever the marks hold beyond the groups with bits (marked empty groups, bits
 * cleared under a mark), and drop the marks of the groups they find empty; the
 * source's pass (walk, clear each bit found) leaves no mark. */
static void test_groups(void)
{
	static const gsize sizes[] = { 1, 4095, 4096, 4097, 3 * 4096 + 100, 40000 };
	const gsize gp = (gsize)1 << MIG_GROUP_SHIFT;
	guint32 x = 0x6c078965;

	for (gsize k = 0; k < G_N_ELEMENTS(sizes); k++) {
		gsize n = sizes[k], ng = mig_groups_n(n), found = 0;
		g_autofree gulong *map = mig_bitmap_new(n), *groups = mig_groups_new(n);

		g_assert_cmpuint(ng, ==, (n + gp - 1) / gp);
		/* sparse bits, a full group where there is one, and every group marked */
		for (gsize i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			if (x % 97 == 0 || (n > 2 * gp && i >= gp && i < 2 * gp))
				mig_bitmap_set(map, i);
		}
		mig_groups_fill(groups, n);
		g_assert_cmpuint(mig_bitmap_count(groups, ng), ==, ng);
		g_assert_cmpuint(mig_groups_count(map, groups, n), ==, count_bits(map, n));
		for (gsize g = 0; g < ng; g++) {
			gsize lo = g * gp, hi = MIN(lo + gp, n);

			g_assert_cmpuint(mig_bitmap_test(groups, g), ==, mig_bitmap_next(map, hi, lo) < hi);
		}
		/* the walk finds what the plain one does, from any start */
		for (gsize from = 0; from <= n; from += 1 + from / 3)
			g_assert_cmpuint(mig_groups_next(map, groups, n, from), ==, mig_bitmap_next(map, n, from));
		/* a bit set in a marked group is found; cleared again, its group stays
		 * marked until a walk passes it whole */
		mig_bitmap_set(map, n - 1);
		mig_bitmap_set(groups, (n - 1) >> MIG_GROUP_SHIFT);
		g_assert_cmpuint(mig_groups_next(map, groups, n, n - 1), ==, n - 1);
		g_assert_cmpuint(mig_groups_count(map, groups, n), ==, count_bits(map, n));
		/* a pass: take every bit the walk returns */
		for (gsize i = mig_groups_next(map, groups, n, 0); i < n; i = mig_groups_next(map, groups, n, i + 1)) {
			g_assert_true(mig_bitmap_test(map, i));
			mig_bitmap_clear(map, i);
			found++;
		}
		g_assert_cmpuint(count_bits(map, n), ==, 0);
		g_assert_cmpuint(found, >, 0);
		g_assert_cmpuint(mig_bitmap_count(groups, ng), ==, 0);
		g_assert_cmpuint(mig_groups_count(map, groups, n), ==, 0);
		g_assert_cmpuint(mig_groups_next(map, groups, n, 0), ==, n);
		/* what is not marked is not read: a bit without its mark is a broken promise
		 * the walk does not see */
		mig_bitmap_set(map, 0);
		g_assert_cmpuint(mig_groups_next(map, groups, n, 0), ==, n);
		g_assert_cmpuint(mig_groups_count(map, groups, n), ==, 0);
		mig_bitmap_set(groups, 0);
		g_assert_cmpuint(mig_groups_next(map, groups, n, 0), ==, 0);
		g_assert_cmpuint(mig_groups_count(map, groups, n), ==, 1);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bitmap/count", test_count);
	g_test_add_func("/bitmap/bytes", test_bytes);
	g_test_add_func("/bitmap/groups", test_groups);
	return g_test_run();
}
