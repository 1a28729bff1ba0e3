/* Fuzz target: a multifd channel of the destination (MF_PAGES, MF_SYNC, MF_DEV,
 * CHUNK), with the device-state lane on. The main channel carries the session's SETUP
 * and, whenever the receiver parks at a sync point, the PASS that releases it, as the
 * source would; so every byte of the input is read by the engine's own receiver thread
 * until it fails or the input ends.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/wire.h"
#include "fuzz-session.h"
#include "fuzz-io.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	uint8_t hello[MIG_HELLO_LEN];
	g_autoptr(GByteArray) setup = NULL;
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	guint64 released = 0;
	size_t off = 0;
	int main_fd, fd;

	fuzz_dst_init(&f, FUZZ_DST_LANE);
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	main_fd = fuzz_dst_connect(&f, hello, sizeof(hello), FALSE);
	setup = fuzz_dst_setup_frame(&f);
	CHECK(fuzz_write(main_fd, setup->data, setup->len) == setup->len);
	fuzz_dst_hello(&f, MIG_CHAN_MULTIFD, 0, hello);
	fd = fuzz_dst_connect(&f, hello, sizeof(hello), FALSE);

	/* until the loader closes the main channel: it does once the receiver failed,
	 * which it does at the latest at the end of its input */
	if (!size)
		shutdown(fd, SHUT_WR);
	for (;;) {
		size_t none = 0;

		fuzz_io_deadline(end, "a multifd channel's input was never read");
		fuzz_io_step(fd, data, size, &off, 5);
		fuzz_dst_release(&f, main_fd, &released);
		if (!fuzz_io_step(main_fd, NULL, 0, &none, 5))
			break;
	}
	close(main_fd);
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-multifd";
