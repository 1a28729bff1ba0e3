/* Fuzz target: the destination's admission of a connection, its typed hello and what
 * follows. A hello that names a main channel is the migration's first connection;
 * any other comes while a main channel of the session (with its SETUP) is in, so a
 * multifd or preempt hello can be admitted or refused on its merits (session, index,
 * duplicates). Whatever the bytes, the destination replies or drops the connection,
 * and an admitted channel's thread ends when its bytes run out.
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
	size_t hlen = size < MIG_HELLO_LEN ? size : MIG_HELLO_LEN;
	gboolean first = size >= 8 && mig_get_be16(data + 6) == MIG_CHAN_MAIN;
	int main_fd = -1, fd;

	fuzz_dst_init(&f, FUZZ_DST_MULTIFD | FUZZ_DST_PREEMPT);
	if (!first) {
		uint8_t hello[MIG_HELLO_LEN];
		g_autoptr(GByteArray) setup = NULL;

		fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
		main_fd = fuzz_dst_connect(&f, hello, sizeof(hello), FALSE);
		setup = fuzz_dst_setup_frame(&f);
		CHECK(fuzz_write(main_fd, setup->data, setup->len) == setup->len);
	}
	fd = fuzz_dst_connect(&f, data, hlen, size <= MIG_HELLO_LEN);
	if (size > MIG_HELLO_LEN) {
		fuzz_write(fd, data + hlen, size - hlen);
		shutdown(fd, SHUT_WR);
	}
	if (first) {
		fuzz_drain(fd);
	} else {
		/* a multifd or preempt channel ends when the main one does: let it read
		 * what it will, then end the main channel */
		fuzz_dst_settle(&f, main_fd, fd);
		close(main_fd);
	}
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-admit";
