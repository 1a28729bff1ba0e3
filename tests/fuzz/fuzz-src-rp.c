/* Fuzz target: the source's return path. A source session (fuzz-src.h: a 2 MiB
 * synthetic guest, the migration on the harness's thread) migrates to the harness,
 * which answers its hello and then gives the input, frame by frame, whenever the
 * source waits for the destination: RP_PASS, RP_DEVICES, RP_READY, RP_RUNNING,
 * RP_ERROR, RP_REQ_PAGE, RP_DONE, whatever comes. Built twice: fuzz-src-rp reads them
 * in precopy (the migration thread's polls and its switchover waits),
 * fuzz-src-rp-postcopy in postcopy from its first pass on (what mig/src/return reads:
 * RP_READY before GO, RP_RUNNING, page requests among the push's batches, RP_DONE).
 * Whatever the bytes, the migration ends, completed or failed with the source guest
 * running unless GO left, and the session frees cleanly.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include "fuzz-src.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzSrc f;

#ifdef FUZZ_SRC_RP_POSTCOPY
	fuzz_src_init(&f, FUZZ_SRC_POSTCOPY);
#else
	fuzz_src_init(&f, 0);
#endif
	fuzz_src_run(&f, data, size, NULL, 0);
	fuzz_src_free(&f);
	return 0;
}

#ifdef FUZZ_SRC_RP_POSTCOPY
const char fuzz_name[] = "fuzz-src-rp-postcopy";
#else
const char fuzz_name[] = "fuzz-src-rp";
#endif
