/* touch-init: the whole userspace of the guest that tools/bench/qemu-postcopy-compare boots in
 * QEMU. As /init of an initramfs it fills touch_mb MiB (from the kernel command line)
 * with self-describing 4 KiB pages, says "filled", then rewrites random pages as fast as
 * it can, checking each one before it rewrites it, and sweeps the whole area once every
 * sweep_s seconds. Every page holds its index and generation in every word, so a page
 * that migration lost, duplicated or delivered stale shows up as "bad". It prints one
 * line per second and one per sweep on the console, which the host script reads.
 *
 * Built by the script with `cc -static -O2`; it runs only inside that guest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t word_of(uint64_t page, uint64_t gen, uint64_t w)
{
	uint64_t x = (page << 24) ^ (gen << 8) ^ w ^ 0x9e3779b97f4a7c15ull;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Word 0 holds the generation; the rest follow from it and the page index. */
static void fill(uint64_t *p, uint64_t page, uint64_t gen)
{
	p[0] = gen;
	for (uint64_t w = 1; w < WORDS; w++)
		p[w] = word_of(page, gen, w);
}

static int check(const uint64_t *p, uint64_t page, uint64_t want_gen)
{
	if (p[0] != want_gen)
		return 0;
	for (uint64_t w = 1; w < WORDS; w++)
		if (p[w] != word_of(page, want_gen, w))
			return 0;
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	const char *mb_s = getenv("touch_mb"), *sw_s = getenv("sweep_s");
	uint64_t pages = (mb_s ? strtoull(mb_s, NULL, 10) : 256) << 8;   /* MiB -> 4K pages */
	double sweep_every = sw_s ? atof(sw_s) : 2;
	uint64_t *gen, touched = 0, bad = 0, sweeps = 0, rng = 88172645463325252ull;
	unsigned char *mem;
	double last_tick, last_sweep;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(pages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen) {
		printf("touch-init: cannot allocate %llu pages\n", (unsigned long long)pages);
		for (;;)
			pause();
	}
	for (uint64_t i = 0; i < pages; i++)
		fill((uint64_t *)(mem + i * PAGE), i, 0);
	printf("touch-init: filled %llu pages\n", (unsigned long long)pages);
	last_tick = last_sweep = now_s();
	for (;;) {
		for (int k = 0; k < 256; k++) {
			uint64_t i;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			i = rng % pages;
			bad += !check((uint64_t *)(mem + i * PAGE), i, gen[i]);
			fill((uint64_t *)(mem + i * PAGE), i, ++gen[i]);
			touched++;
		}
		if (now_s() - last_sweep >= sweep_every) {
			uint64_t sweep_bad = 0;

			for (uint64_t i = 0; i < pages; i++)
				sweep_bad += !check((uint64_t *)(mem + i * PAGE), i, gen[i]);
			bad += sweep_bad;
			printf("touch-init: sweep %llu checked %llu bad %llu\n", (unsigned long long)++sweeps,
			       (unsigned long long)pages, (unsigned long long)sweep_bad);
			last_sweep = now_s();
		}
		if (now_s() - last_tick >= 1) {
			printf("touch-init: touched %llu bad %llu\n", (unsigned long long)touched, (unsigned long long)bad);
			last_tick = now_s();
		}
	}
}
