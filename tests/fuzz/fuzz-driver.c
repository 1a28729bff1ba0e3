/* The fuzz harnesses' stand-alone driver: it replays each file named (a directory
 * names every file in it, as a libFuzzer corpus does) as one input, then runs a
 * deterministic set of those inputs put through libFuzzer-style byte mutations; a
 * harness with built-in seeds (fuzz_seed) gets those mutated too. It is how the
 * committed corpus runs as a regression test in every build. Not built with
 * libFuzzer (MIG_FUZZ_LIBFUZZER), which brings its own main(). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef MIG_FUZZ_LIBFUZZER

#define CORPUS_RUNS 200
#define FILE_MAX (1u << 20)
#define MUTATED_FILE_RUNS 16   /* mutated corpus inputs: the engine harnesses are slow */

/* Harnesses without built-in seeds leave this undefined. */
size_t fuzz_seed(uint8_t buf[FUZZ_INPUT_MAX], unsigned which) __attribute__((weak));

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Byte-level mutations in the style of libFuzzer's: the interesting values
 * sit on the boundaries the parsers test (0, max, sign bit, 512, 64 MiB). */
static size_t mutate(uint8_t *buf, size_t len, size_t cap, uint32_t *rng)
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
			while (len < cap && rng_next(rng) % 8)
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
				len = mutate(buf, len, FUZZ_INPUT_MAX, &rng);
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%s: %d built-in inputs ok\n", fuzz_name, CORPUS_RUNS);
}

typedef struct Input {
	uint8_t *data;
	size_t len;
} Input;

static Input *inputs;
static size_t ninputs;

static int load_file(const char *path)
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
	inputs = realloc(inputs, (ninputs + 1) * sizeof(*inputs));
	CHECK(inputs != NULL);
	inputs[ninputs++] = (Input){ buf, len };
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files, in name order (the runs are then repeatable). */
static int load_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int ret = 0;

	if (!d) {
		perror(path);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		CHECK(names != NULL);
		CHECK(asprintf(&names[n++], "%s/%s", path, e->d_name) > 0);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (load_file(names[i]) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	return ret;
}

static void run_inputs(void)
{
	uint32_t rng = 0x66757a7a;

	for (size_t i = 0; i < ninputs; i++)
		LLVMFuzzerTestOneInput(inputs[i].data, inputs[i].len);
	for (unsigned i = 0; ninputs && i < MUTATED_FILE_RUNS; i++) {
		const Input *in = &inputs[rng_next(&rng) % ninputs];
		size_t cap = in->len + 256;
		uint8_t *buf = malloc(cap);
		size_t len;

		CHECK(buf != NULL);
		memcpy(buf, in->data, in->len);
		len = mutate(buf, in->len, cap, &rng);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
	}
	printf("%s: %zu corpus inputs and %d mutations of them ok\n", fuzz_name, ninputs,
	       ninputs ? MUTATED_FILE_RUNS : 0);
}

int main(int argc, char **argv)
{
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			ret |= load_dir(argv[i]) < 0;
		else
			ret |= load_file(argv[i]) < 0;
	}
	run_inputs();
	if (fuzz_seed)
		run_corpus();
	for (size_t i = 0; i < ninputs; i++)
		free(inputs[i].data);
	free(inputs);
	return ret;
}

#endif
