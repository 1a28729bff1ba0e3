/* Fuzz target: a preempt channel of the destination (urgent PAGES and ZEROS), read
 * once postcopy runs: the main channel brings the session's SETUP, its guest state,
 * LISTEN, RUN and GO, then the input goes to the engine's own urgent-channel thread, which
 * places pages through userfaultfd into the running guest. The input ends with its
 * channel, which pauses postcopy: the loader then closes the main channel, which is
 * all the harness waits for.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/wire.h"
#include "fuzz-session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	uint8_t hello[MIG_HELLO_LEN];
	g_autoptr(GByteArray) b = NULL;
	g_autoptr(GByteArray) state = NULL;
	int main_fd, fd;

	fuzz_dst_init(&f, FUZZ_DST_PREEMPT | FUZZ_DST_NODEV);
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	main_fd = fuzz_dst_connect(&f, hello, sizeof(hello), FALSE);
	/* admitted before LISTEN, as a source opens it */
	fuzz_dst_hello(&f, MIG_CHAN_PREEMPT, 0, hello);
	fd = fuzz_dst_connect(&f, hello, sizeof(hello), FALSE);
	b = fuzz_dst_setup_frame(&f);
	state = fuzz_dst_state_frame(&f);
	g_byte_array_append(b, state->data, state->len);
	fuzz_frame(b, MIG_F_PC_LISTEN, NULL, 0);
	fuzz_frame(b, MIG_F_PC_RUN, NULL, 0);
	/* the destination answers RP_READY and starts only on GO (read after it) */
	fuzz_frame(b, MIG_F_GO, NULL, 0);
	CHECK(send(main_fd, b->data, b->len, MSG_NOSIGNAL) == (ssize_t)b->len);
	fuzz_dst_wait_status(&f, main_fd, MIG_STATUS_POSTCOPY_ACTIVE);

	if (size)
		CHECK(send(fd, data, size, MSG_NOSIGNAL) == (ssize_t)size);
	shutdown(fd, SHUT_WR);
	fuzz_drain(main_fd);
	close(main_fd);
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-preempt";
