/* Fuzz target: the destination's postcopy recovery. A main channel brings SETUP, the
 * guest's state, LISTEN, RUN and GO, and ends: postcopy pauses. Then the input comes
 * on a resumed main channel (a RESUME hello of the session, admitted as
 * migrate-recover's listener would): the handshake the source starts (PC_RECOVER,
 * answered with the received bitmaps and RECV_END; PC_RESUME, answered with
 * RESUME_ACK) and whatever follows it on the main channel in postcopy (PAGES, ZEROS
 * placed through userfaultfd, PC_END, NOP). Everything is queued first and the
 * loader runs on this thread (mig_dst_accept_inline), until the resumed channel ends
 * too (or the migration completed).
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include "channels/hello.h"
#include "channels/wire.h"
#include "fuzz-session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	uint8_t hello[MIG_HELLO_LEN];
	g_autoptr(GByteArray) b = g_byte_array_new();
	g_autoptr(GByteArray) setup = NULL;
	g_autoptr(GByteArray) state = NULL;

	fuzz_dst_init(&f, FUZZ_DST_POSTCOPY | FUZZ_DST_NODEV);
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	g_byte_array_append(b, hello, sizeof(hello));
	setup = fuzz_dst_setup_frame(&f);
	g_byte_array_append(b, setup->data, setup->len);
	state = fuzz_dst_state_frame(&f);
	g_byte_array_append(b, state->data, state->len);
	fuzz_frame(b, MIG_F_PC_LISTEN, NULL, 0);
	fuzz_frame(b, MIG_F_PC_RUN, NULL, 0);
	fuzz_frame(b, MIG_F_GO, NULL, 0);
	fuzz_dst_run_recovery(&f, b, data, size);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-recover";
