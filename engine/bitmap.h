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

/* Empty and full words counted without a popcount: without -mpopcnt that is a libgcc
 * call per word, and the counts in a downtime (the source's last dirty bitmap, the
 * destination's received one) are mostly of one or the other. */
static inline gsize mig_bitmap_count(const gulong *map, gsize nbits)
{
	gsize c = 0, n = mig_bitmap_longs(nbits);

	for (gsize w = 0; w < n; w++) {
		gulong v = map[w];

		if (v == ~0ul)
			c += MIG_BITS_PER_LONG;
		else if (v)
			c += (gsize)__builtin_popcountl(v);
	}
	return c;
}

/* A page bitmap's summary, for the source's dirty bitmaps: bit g of the groups is set
 * when group g, pages [g << MIG_GROUP_SHIFT, (g + 1) << MIG_GROUP_SHIFT), may hold a
 * set bit, and clear only when it holds none. Counting and walking then read the
 * marked groups, not all of the map: the last dirty bitmap of an idle 16 GiB guest is
 * 64 Ki words, its groups 16. Whoever sets bits of the map marks their groups; clearing
 * a bit leaves the mark, and the count and the walk below drop the marks of groups
 * they find empty. The marks belong to one thread (the source's migration thread): it
 * marks and drops; others may clear bits of the map, never set them. */
#define MIG_GROUP_SHIFT 12u   /* 4096 pages, 64 words of the map */

static inline gsize mig_groups_n(gsize nbits)
{
	return (nbits + (1u << MIG_GROUP_SHIFT) - 1) >> MIG_GROUP_SHIFT;
}

static inline gulong *mig_groups_new(gsize nbits)
{
	return mig_bitmap_new(mig_groups_n(nbits));
}

/* Every group marked: the map may hold anything (its fill, a rewrite). */
static inline void mig_groups_fill(gulong *groups, gsize nbits)
{
	mig_bitmap_fill(groups, mig_groups_n(nbits));
}

/* Group g's words of a map of nbits: [*w0, *w1). */
static inline void mig_group_words(gsize g, gsize nbits, gsize *w0, gsize *w1)
{
	*w0 = (g << MIG_GROUP_SHIFT) / MIG_BITS_PER_LONG;
	*w1 = MIN(*w0 + ((1u << MIG_GROUP_SHIFT) / MIG_BITS_PER_LONG), mig_bitmap_longs(nbits));
}

/* mig_bitmap_count of a map with groups; drops the marks of empty groups. */
static inline gsize mig_groups_count(const gulong *map, gulong *groups, gsize nbits)
{
	gsize c = 0, ng = mig_groups_n(nbits);

	for (gsize g = mig_bitmap_next(groups, ng, 0); g < ng; g = mig_bitmap_next(groups, ng, g + 1)) {
		gsize w0, w1, n;

		mig_group_words(g, nbits, &w0, &w1);
		n = mig_bitmap_count(map + w0, (w1 - w0) * MIG_BITS_PER_LONG);
		if (!n)
			mig_bitmap_clear(groups, g);
		c += n;
	}
	return c;
}

/* Drops group g's mark if the group is empty. */
static inline void mig_groups_drop(const gulong *map, gulong *groups, gsize nbits, gsize g)
{
	gsize w0, w1;

	mig_group_words(g, nbits, &w0, &w1);
	if (mig_bitmap_test(groups, g) && !mig_bitmap_count(map + w0, (w1 - w0) * MIG_BITS_PER_LONG))
		mig_bitmap_clear(groups, g);
}

/* mig_bitmap_next of a map with groups: skips unmarked groups, and drops the mark of a
 * group it leaves empty. */
static inline gsize mig_groups_next(const gulong *map, gulong *groups, gsize nbits, gsize from)
{
	gsize ng = mig_groups_n(nbits);

	/* a walk whose last find was a group's last bit goes on from the next group's
	 * first, or from the end: that group is behind it now */
	if (from && from <= nbits && (from % (1u << MIG_GROUP_SHIFT) == 0 || from == nbits))
		mig_groups_drop(map, groups, nbits, (from - 1) >> MIG_GROUP_SHIFT);
	while (from < nbits) {
		gsize g = mig_bitmap_next(groups, ng, from >> MIG_GROUP_SHIFT), w0, w1, i;

		if (g >= ng)
			break;
		from = MAX(from, g << MIG_GROUP_SHIFT);
		mig_group_words(g, nbits, &w0, &w1);
		i = mig_bitmap_next(map, MIN(w1 * MIG_BITS_PER_LONG, nbits), from);
		if (i < MIN(w1 * MIG_BITS_PER_LONG, nbits))
			return i;
		/* nothing from `from` on; the words before it may still hold bits */
		mig_groups_drop(map, groups, nbits, g);
		from = w1 * MIG_BITS_PER_LONG;
	}
	return nbits;
}

/* The wire's form of a bitmap (docs/protocol.md, RP_RECV_BITMAP): bit i is bit i mod 8,
 * least significant first, of byte i / 8; (nbits + 7) / 8 bytes. A word at a time:
 * a 1 TiB guest's bitmap is 2^28 bits. Each word is read once, atomically (other
 * threads may be setting bits). */
static inline void mig_bitmap_to_bytes(const gulong *map, gsize nbits, guint8 *out)
{
	gsize nbytes = (nbits + 7) / 8, whole = nbytes / sizeof(gulong);

	/* a whole word's bytes are its little-endian form: one store each, not eight */
	for (gsize w = 0; w < whole; w++) {
		gulong v = GULONG_TO_LE(__atomic_load_n(&map[w], __ATOMIC_ACQUIRE));

		memcpy(out + w * sizeof(gulong), &v, sizeof(v));
	}
	if (whole * sizeof(gulong) < nbytes) {
		gulong v = __atomic_load_n(&map[whole], __ATOMIC_ACQUIRE);

		for (gsize k = 0; whole * sizeof(gulong) + k < nbytes; k++)
			out[whole * sizeof(gulong) + k] = (guint8)(v >> (8 * k));
	}
	if (nbits % 8)
		out[nbytes - 1] &= (guint8)((1u << (nbits % 8)) - 1);
}

/* The other way, inverted when invert: bits past nbits stay clear whatever in has. */
static inline void mig_bitmap_from_bytes(gulong *map, gsize nbits, const guint8 *in, gboolean invert)
{
	gsize nbytes = (nbits + 7) / 8, longs = mig_bitmap_longs(nbits), whole = nbytes / sizeof(gulong);

	for (gsize w = 0; w < whole; w++) {
		gulong v;

		memcpy(&v, in + w * sizeof(gulong), sizeof(v));
		v = GULONG_FROM_LE(v);
		map[w] = invert ? ~v : v;
	}
	if (whole < longs) {
		gulong v = 0;

		for (gsize k = 0; whole * sizeof(gulong) + k < nbytes; k++)
			v |= (gulong)in[whole * sizeof(gulong) + k] << (8 * k);
		map[whole] = invert ? ~v : v;
	}
	if (longs && nbits % MIG_BITS_PER_LONG)
		map[longs - 1] &= (1ul << (nbits % MIG_BITS_PER_LONG)) - 1;
}
