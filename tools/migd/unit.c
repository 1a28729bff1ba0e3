/* Unit encoding: a 32-byte header (tag, index, generation, header check) and a body
 * of 64-bit words derived from a per-(seed, index, generation) key. Each body word
 * also depends on its position, so a unit shifted or half-overwritten is caught. */
#include "tools/migd/unit.h"
#include <string.h>

#define UNIT_TAG   0x6d69672d756e6974ull   /* "mig-unit" */
#define WORD_STEP  0x9e3779b97f4a7c15ull
#define HDR_WORDS  4u
#define UNIT_WORDS (MIGD_UNIT_SIZE / 8u)

struct unit_hdr {
	uint64_t tag;      /* UNIT_TAG ^ mix(seed): a foreign seed shows up here */
	uint64_t index;
	uint64_t gen;
	uint64_t check;    /* mix of the three above, so a header torn on its own is caught */
};

static inline uint64_t body_key(uint64_t seed, uint64_t index, uint64_t gen)
{
	return migd_mix64(migd_mix64(seed ^ migd_mix64(index)) ^ (gen * 0xd1b54a32d192ed03ull));
}

const char *migd_unit_verdict_str(MigdUnitVerdict v)
{
	switch (v) {
	case MIGD_UNIT_OK: return "ok";
	case MIGD_UNIT_ZERO: return "zero unit where data was expected";
	case MIGD_UNIT_TORN: return "torn (body does not match header)";
	case MIGD_UNIT_STALE: return "stale (older generation than recorded)";
	case MIGD_UNIT_AHEAD: return "generation newer than recorded";
	case MIGD_UNIT_FOREIGN: return "foreign (wrong seed or index)";
	case MIGD_UNIT_UNEXPECTED_DATA: return "data where a zero unit was recorded";
	}
	return "?";
}

void migd_unit_write(void *unit, uint64_t seed, uint64_t index, uint32_t gen)
{
	uint64_t *w = unit;
	uint64_t k = body_key(seed, index, gen);
	struct unit_hdr h = {
		.tag = UNIT_TAG ^ migd_mix64(seed),
		.index = index,
		.gen = gen,
	};

	h.check = migd_mix64(h.tag ^ migd_mix64(h.index ^ migd_mix64(h.gen)));
	for (uint32_t i = HDR_WORDS; i < UNIT_WORDS; i++)
		w[i] = k + i * WORD_STEP;
	/* header last: a reader racing the writer sees the old header with a new body,
	 * which is reported as torn rather than passing as the new generation */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(w, &h, sizeof(h));
}

uint32_t migd_unit_gen(const void *unit)
{
	const struct unit_hdr *h = unit;

	if (mig_mem_is_zero(unit, MIGD_UNIT_SIZE))
		return MIGD_UNIT_ZERO_GEN;
	return (uint32_t)h->gen;
}

static MigdUnitVerdict check_body(const uint64_t *w, uint64_t seed, uint64_t index, uint64_t gen)
{
	uint64_t k = body_key(seed, index, gen);
	uint64_t diff = 0;

	for (uint32_t i = HDR_WORDS; i < UNIT_WORDS; i++)
		diff |= w[i] ^ (k + i * WORD_STEP);
	return diff ? MIGD_UNIT_TORN : MIGD_UNIT_OK;
}

MigdUnitVerdict migd_unit_check_self(const void *unit, uint64_t seed, uint64_t index)
{
	const struct unit_hdr *h = unit;

	if (h->tag == 0 && h->index == 0 && h->gen == 0 && h->check == 0)
		return mig_mem_is_zero(unit, MIGD_UNIT_SIZE) ? MIGD_UNIT_ZERO : MIGD_UNIT_TORN;
	if (h->tag != (UNIT_TAG ^ migd_mix64(seed)) || h->index != index)
		return MIGD_UNIT_FOREIGN;
	if (h->check != migd_mix64(h->tag ^ migd_mix64(h->index ^ migd_mix64(h->gen))) || h->gen >= MIGD_UNIT_ZERO_GEN)
		return MIGD_UNIT_TORN;
	return check_body(unit, seed, index, h->gen);
}

MigdUnitVerdict migd_unit_check(const void *unit, uint64_t seed, uint64_t index, uint32_t expected)
{
	const struct unit_hdr *h = unit;
	MigdUnitVerdict v = migd_unit_check_self(unit, seed, index);

	if (expected == MIGD_UNIT_ZERO_GEN)
		return v == MIGD_UNIT_ZERO ? MIGD_UNIT_OK : (v == MIGD_UNIT_OK ? MIGD_UNIT_UNEXPECTED_DATA : v);
	if (v != MIGD_UNIT_OK)
		return v;
	if (h->gen < expected)
		return MIGD_UNIT_STALE;
	if (h->gen > expected)
		return MIGD_UNIT_AHEAD;
	return MIGD_UNIT_OK;
}
