/* Self-describing 4 KiB memory units of the synthetic guest.
 *
 * Every unit carries its index and a generation, and its body is a pure function of
 * (seed, index, generation), so a reader can tell a good unit from a torn one (body and
 * header disagree), a stale one (older generation than recorded), a misplaced or foreign
 * one (wrong index or seed). A unit that was never written is all zero. */
#pragma once
#include <mig/ram.h>     /* mig_mem_is_zero */
#include <stdbool.h>
#include <stdint.h>

#define MIGD_UNIT_SIZE 4096u
#define MIGD_UNIT_ZERO_GEN UINT32_MAX   /* in a generation record: "expected all zero" */

typedef enum MigdUnitVerdict {
	MIGD_UNIT_OK = 0,
	MIGD_UNIT_ZERO,      /* all zero (fine only if zero was expected) */
	MIGD_UNIT_TORN,      /* header valid, body from another write */
	MIGD_UNIT_STALE,     /* older generation than expected */
	MIGD_UNIT_AHEAD,     /* newer generation than expected: impossible, so corrupt */
	MIGD_UNIT_FOREIGN,   /* wrong seed or index: another guest's or another unit's data */
	MIGD_UNIT_UNEXPECTED_DATA, /* data where the record expected a zero unit */
} MigdUnitVerdict;

const char *migd_unit_verdict_str(MigdUnitVerdict v);

/* Writes unit `index` at generation `gen` (gen >= 0; the record reserves UINT32_MAX). */
void migd_unit_write(void *unit, uint64_t seed, uint64_t index, uint32_t gen);

/* The generation in the unit's header, or MIGD_UNIT_ZERO_GEN if the unit is all zero.
 * Only meaningful for a unit that passes migd_unit_check_self. */
uint32_t migd_unit_gen(const void *unit);

/* Is the unit internally consistent (a zero unit, or header and body agree)? */
MigdUnitVerdict migd_unit_check_self(const void *unit, uint64_t seed, uint64_t index);

/* Does the unit match the generation recorded for it (MIGD_UNIT_ZERO_GEN: all zero)? */
MigdUnitVerdict migd_unit_check(const void *unit, uint64_t seed, uint64_t index, uint32_t expected);

/* splitmix64: cheap and avalanches every input bit; a bijection, so the simulated
 * devices (tools/migd/simdev.c) can tell where a misplaced word of their state came from. */
static inline uint64_t migd_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}
