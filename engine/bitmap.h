/* Page bitmaps: gulong words, bit i = page i. */
#pragma once
#include <glib.h>
#include <string.h>

#define MIG_BITS_PER_LONG (8 * sizeof(gulong))

static inline gsize mig_bitmap_longs(gsize nbits)
{
	return (nbits + MIG_BITS_PER_LONG - 1) / MIG_BITS_PER_LONG;
}

static inline gulong *mig_bitmap_new(gsize nbits)
{
	return g_new0(gulong, mig_bitmap_longs(nbits));
}

static inline void mig_bitmap_set(gulong *map, gsize i)
{
	map[i / MIG_BITS_PER_LONG] |= 1ul << (i % MIG_BITS_PER_LONG);
}

static inline void mig_bitmap_clear(gulong *map, gsize i)
{
	map[i / MIG_BITS_PER_LONG] &= ~(1ul << (i % MIG_BITS_PER_LONG));
}

static inline gboolean mig_bitmap_test(const gulong *map, gsize i)
{
	return (map[i / MIG_BITS_PER_LONG] >> (i % MIG_BITS_PER_LONG)) & 1;
}

static inline void mig_bitmap_fill(gulong *map, gsize nbits)
{
	gsize n = nbits / MIG_BITS_PER_LONG;

	memset(map, 0xff, n * sizeof(gulong));
	if (nbits % MIG_BITS_PER_LONG)
		map[n] = (1ul << (nbits % MIG_BITS_PER_LONG)) - 1;
}

/* Index of the first set bit at or after `from`, or nbits. */
static inline gsize mig_bitmap_next(const gulong *map, gsize nbits, gsize from)
{
	gsize w = from / MIG_BITS_PER_LONG;
	gulong cur;

	if (from >= nbits)
		return nbits;
	cur = map[w] & (~0ul << (from % MIG_BITS_PER_LONG));
	for (;;) {
		if (cur) {
			gsize i = w * MIG_BITS_PER_LONG + (gsize)__builtin_ctzl(cur);

			return MIN(i, nbits);
		}
		if (++w >= mig_bitmap_longs(nbits))
			return nbits;
		cur = map[w];
	}
}

static inline gsize mig_bitmap_count(const gulong *map, gsize nbits)
{
	gsize c = 0;

	for (gsize w = 0; w < mig_bitmap_longs(nbits); w++)
		c += (gsize)__builtin_popcountl(map[w]);
	return c;
}
