/* The fuzz harnesses' stand-alone driver: with file arguments it replays
 * each file as one input, without it runs a deterministic corpus of the
 * harness's seeds put through libFuzzer-style byte mutations. Not built
 * with libFuzzer (MIG_FUZZ_LIBFUZZER), which brings its own main(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

#ifndef MIG_FUZZ_LIBFUZZER

#define CORPUS_RUNS 200
#define FILE_MAX (1u << 20)

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Byte-level mutations in the style of libFuzzer's: the interesting values
 * sit on the boundaries the parsers test (0, max, sign bit, 512, 64 MiB). */
static size_t mutate(uint8_t *buf, size_t len, uint32_t *rng)
{
	static const uint8_t interesting[] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x7f, 0x80, 0xff };
	int rounds = (int)(rng_next(rng) % 4) + 1;

	for (int r = 0; r < rounds; r++) {
		size_t pos = len ? rng_next(rng) % len : 0;

		switch (rng_next(rng) % 5) {
		case 0:
			if (len)
				buf[pos] ^= (uint8_t)(1u << (rng_next(rng) % 8));
			break;
		case 1:
			if (len)
				buf[pos] = interesting[rng_next(rng) % sizeof(interesting)];
			break;
		case 2:
			len = len ? rng_next(rng) % (len + 1) : 0;
			break;
		case 3:
			while (len < FUZZ_INPUT_MAX && rng_next(rng) % 8)
				buf[len++] = (uint8_t)rng_next(rng);
			break;
		case 4:
			if (len)
				buf[pos] = (uint8_t)rng_next(rng);
			break;
		}
	}
	return len;
}

static void run_corpus(void)
{
	uint32_t rng = 0x6d696763;
	uint8_t buf[FUZZ_INPUT_MAX];

	for (unsigned i = 0; i < CORPUS_RUNS; i++) {
		size_t len;

		if (i % 10 == 9) {	/* pure noise now and then */
			len = rng_next(&rng) % 96;
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)rng_next(&rng);
		} else {
			len = fuzz_seed(buf, i);
			if (i >= 8)	/* the first few run unmodified */
				len = mutate(buf, len, &rng);
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%s: %d built-in inputs ok\n", fuzz_name, CORPUS_RUNS);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t len;

	if (!f) {
		perror(path);
		return -1;
	}
	buf = malloc(FILE_MAX);
	CHECK(buf != NULL);
	len = fread(buf, 1, FILE_MAX, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("%s: %s ok (%zu bytes)\n", fuzz_name, path, len);
	return 0;
}

int main(int argc, char **argv)
{
	int ret = 0;

	if (argc < 2) {
		run_corpus();
		return 0;
	}
	for (int i = 1; i < argc; i++)
		if (run_file(argv[i]) < 0)
			ret = 1;
	return ret;
}

#endif
