/* Unit encoding: a 32-byte header (tag, index, generation, header check) and a body
 * of 64-bit words derived from a per-(seed, index, generation) key. Each body word
 * also depends on its position, so a unit shifted or half-overwritten is caught. */
#include "tools/migd/unit.h"
#include <string.h>

#define UNIT_TAG   0x6d69672d756e6974ull   /* "mig-unit" */
#define WORD_STEP  0x9e3779b97f4a7c15ull
#define HDR_WORDS  4u
#define UNIT_WORDS (MIG_UNIT_SIZE / 8u)

struct unit_hdr {
	uint64_t tag;      /* UNIT_TAG ^ mix(seed): a foreign seed shows up here */
	uint64_t index;
	uint64_t gen;
	uint64_t check;    /* mix of the three above, so a header torn on its own is caught */
};

static inline uint64_t body_key(uint64_t seed, uint64_t index, uint64_t gen)
{
	return mig_mix64(mig_mix64(seed ^ mig_mix64(index)) ^ (gen * 0xd1b54a32d192ed03ull));
}

const char *mig_unit_verdict_str(MigUnitVerdict v)
{
	switch (v) {
	case MIG_UNIT_OK: return "ok";
	case MIG_UNIT_ZERO: return "zero unit where data was expected";
	case MIG_UNIT_TORN: return "torn (body does not match header)";
	case MIG_UNIT_STALE: return "stale (older generation than recorded)";
	case MIG_UNIT_AHEAD: return "generation newer than recorded";
	case MIG_UNIT_FOREIGN: return "foreign (wrong seed or index)";
	case MIG_UNIT_UNEXPECTED_DATA: return "data where a zero unit was recorded";
	}
	return "?";
}

void mig_unit_write(void *unit, uint64_t seed, uint64_t index, uint32_t gen)
{
	uint64_t *w = unit;
	uint64_t k = body_key(seed, index, gen);
	struct unit_hdr h = {
		.tag = UNIT_TAG ^ mig_mix64(seed),
		.index = index,
		.gen = gen,
	};

	h.check = mig_mix64(h.tag ^ mig_mix64(h.index ^ mig_mix64(h.gen)));
	for (uint32_t i = HDR_WORDS; i < UNIT_WORDS; i++)
		w[i] = k + i * WORD_STEP;
	/* header last: a reader racing the writer sees the old header with a new body,
	 * which is reported as torn rather than passing as the new generation */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(w, &h, sizeof(h));
}

uint32_t mig_unit_gen(const void *unit)
{
	const struct unit_hdr *h = unit;

	if (mig_mem_is_zero(unit, MIG_UNIT_SIZE))
		return MIG_UNIT_ZERO_GEN;
	return (uint32_t)h->gen;
}

static MigUnitVerdict check_body(const uint64_t *w, uint64_t seed, uint64_t index, uint64_t gen)
{
	uint64_t k = body_key(seed, index, gen);
	uint64_t diff = 0;

	for (uint32_t i = HDR_WORDS; i < UNIT_WORDS; i++)
		diff |= w[i] ^ (k + i * WORD_STEP);
	return diff ? MIG_UNIT_TORN : MIG_UNIT_OK;
}

MigUnitVerdict mig_unit_check_self(const void *unit, uint64_t seed, uint64_t index)
{
	const struct unit_hdr *h = unit;

	if (h->tag == 0 && h->index == 0 && h->gen == 0 && h->check == 0)
		return mig_mem_is_zero(unit, MIG_UNIT_SIZE) ? MIG_UNIT_ZERO : MIG_UNIT_TORN;
	if (h->tag != (UNIT_TAG ^ mig_mix64(seed)) || h->index != index)
		return MIG_UNIT_FOREIGN;
	if (h->check != mig_mix64(h->tag ^ mig_mix64(h->index ^ mig_mix64(h->gen))) || h->gen >= MIG_UNIT_ZERO_GEN)
		return MIG_UNIT_TORN;
	return check_body(unit, seed, index, h->gen);
}

MigUnitVerdict mig_unit_check(const void *unit, uint64_t seed, uint64_t index, uint32_t expected)
{
	const struct unit_hdr *h = unit;
	MigUnitVerdict v = mig_unit_check_self(unit, seed, index);

	if (expected == MIG_UNIT_ZERO_GEN)
		return v == MIG_UNIT_ZERO ? MIG_UNIT_OK : (v == MIG_UNIT_OK ? MIG_UNIT_UNEXPECTED_DATA : v);
	if (v != MIG_UNIT_OK)
		return v;
	if (h->gen < expected)
		return MIG_UNIT_STALE;
	if (h->gen > expected)
		return MIG_UNIT_AHEAD;
	return MIG_UNIT_OK;
}
