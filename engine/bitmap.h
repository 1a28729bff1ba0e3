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
