/* Fuzz target: the source's side of postcopy recovery. A source in postcopy
 * (fuzz-src.h) hears RP_READY and RP_RUNNING on its main channel, pushes, sends PC_END
 * and loses the channel there: postcopy pauses. Then `migrate resume` connects a new
 * main channel (a RESUME hello, answered) and the input is what the destination says
 * on it, frame by frame as the source waits: the handshake's replies (RP_RECV_BITMAP
 * per RAM block, RP_RECV_END, RP_RESUME_ACK; or RP_ERROR) and the return path of the
 * postcopy that follows (page requests among the batches the bitmaps made dirty,
 * RP_DONE). The migration ends completed, or failed with its guest stopped: GO left.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include "channels/wire.h"
#include "fuzz-src.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GByteArray) main_in = g_byte_array_new();
	FuzzSrc f;

	fuzz_src_init(&f, FUZZ_SRC_POSTCOPY);
	fuzz_src_frame(main_in, MIG_F_RP_READY, NULL, 0);
	fuzz_src_frame(main_in, MIG_F_RP_RUNNING, NULL, 0);
	fuzz_src_run(&f, main_in->data, main_in->len, data, size);
	/* the first channel was lost after GO: the source's guest never runs again */
	CHECK(mig_session_runstate(f.s) == MIG_RUN_POSTMIGRATE);
	fuzz_src_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-src-recover";
