/* Fuzz target: the destination's main channel after an accepted hello. The input is
 * what the source would send next (SETUP, PAGES, ZEROS, PASS, STATE, DEV_DATA,
 * DEV_END, CHUNK, the postcopy frames, COMPLETE, ABORT), read by the engine's own
 * loader thread into a 2 MiB synthetic guest with one simulated device, postcopy
 * allowed (LISTEN registers the guest with userfaultfd). Whatever the bytes, the
 * loader must end (a clear failure or a completed migration) and close the channel,
 * and teardown must leave nothing behind (run under ASan/LSan).
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "fuzz-session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	uint8_t hello[MIG_HELLO_LEN];
	int fd;

	fuzz_dst_init(&f, FUZZ_DST_POSTCOPY);
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	/* the loader runs on this thread until the input is used up */
	fd = fuzz_dst_connect_inline(&f, hello, sizeof(hello), data, size);
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-main";
