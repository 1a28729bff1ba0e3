/* What the fuzz harnesses share: the failure check, the libFuzzer entry point
 * each one defines, and the hooks of the stand-alone driver (fuzz-driver.c). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts on a failed check: that is what a fuzzer (or the test) reports. */
#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
			abort();                                                 \
		}                                                                \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest input the driver builds. */
#define FUZZ_INPUT_MAX 512
/* Shown in the driver's output. */
extern const char fuzz_name[];
/* Writes seed number which (any value; seeds repeat) into buf, returns its length. */
size_t fuzz_seed(uint8_t buf[FUZZ_INPUT_MAX], unsigned which);
