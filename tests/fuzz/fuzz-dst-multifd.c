/* Fuzz target: a multifd channel of the destination (MF_PAGES, MF_SYNC, MF_DEV,
 * CHUNK), with the device-state lane on. The main channel carries the session's SETUP
 * and PASS 1 to FUZZ_PASSES, queued ahead: the loader releases the receiver at each
 * sync point once it reaches it, as a source's PASS would; so every byte of the input
 * is read by the engine's own receiver thread until it fails or the input ends. Both
 * channels' bytes are queued before the engine admits them: the harness only waits
 * for the loader to close the main channel, which it does once the receiver failed
 * (at the latest at the end of its input).
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <unistd.h>

#include "channels/hello.h"
#include "channels/wire.h"
#include "fuzz-session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	uint8_t hello[MIG_HELLO_LEN];
	g_autoptr(GByteArray) main_in = g_byte_array_new();
	g_autoptr(GByteArray) setup = NULL;
	g_autoptr(GByteArray) in = g_byte_array_new();
	int main_fd, fd;

	fuzz_dst_init(&f, FUZZ_DST_LANE);
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	g_byte_array_append(main_in, hello, sizeof(hello));
	setup = fuzz_dst_setup_frame(&f);
	g_byte_array_append(main_in, setup->data, setup->len);
	fuzz_dst_passes(main_in, FUZZ_PASSES);
	main_fd = fuzz_dst_connect(&f, main_in->data, main_in->len, TRUE);
	fuzz_dst_hello(&f, MIG_CHAN_MULTIFD, 0, hello);
	g_byte_array_append(in, hello, sizeof(hello));
	g_byte_array_append(in, data, (guint)size);
	fd = fuzz_dst_connect(&f, in->data, in->len, TRUE);
	fuzz_drain(main_fd);
	close(main_fd);
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-multifd";
