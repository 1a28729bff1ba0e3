/* Fuzz target: the destination's admission of a connection, its typed hello and what
 * follows. A hello that names a main channel is the migration's first connection
 * (admitted, and its loader run, on this thread); any other comes while a main
 * channel of the session (with its SETUP) is in, so a multifd or preempt hello can be
 * admitted or refused on its merits (session, index, duplicates). Whatever the bytes,
 * the destination replies or drops the connection, and an admitted channel's thread
 * ends when its bytes run out.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/wire.h"
#include "fuzz-io.h"
#include "fuzz-session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzDst f;
	size_t hlen = size < MIG_HELLO_LEN ? size : MIG_HELLO_LEN;
	gboolean first = size >= 8 && mig_get_be16(data + 6) == MIG_CHAN_MAIN;
	uint8_t hello[MIG_HELLO_LEN];
	g_autoptr(GByteArray) main_in = g_byte_array_new();
	g_autoptr(GByteArray) setup = NULL;
	g_autoptr(GByteArray) passes = g_byte_array_new();
	gboolean multifd, preempt;
	int main_fd, fd;

	fuzz_dst_init(&f, FUZZ_DST_MULTIFD | FUZZ_DST_PREEMPT);
	if (first) {
		close(fuzz_dst_connect_inline(&f, data, hlen, data + hlen, size - hlen));
		fuzz_dst_free(&f);
		return 0;
	}
	fuzz_dst_hello(&f, MIG_CHAN_MAIN, 0, hello);
	g_byte_array_append(main_in, hello, sizeof(hello));
	setup = fuzz_dst_setup_frame(&f);
	g_byte_array_append(main_in, setup->data, setup->len);
	main_fd = fuzz_dst_connect(&f, main_in->data, main_in->len, FALSE);
	/* the whole connection is queued: admission reads the hello, its thread the rest */
	fd = fuzz_dst_connect(&f, data, size, TRUE);
	g_mutex_lock(&f.s->lock);
	multifd = f.s->dst->mf_connected != 0;
	preempt = f.s->dst->urgent_fd[0] >= 0;
	g_mutex_unlock(&f.s->lock);
	if (preempt) {
		/* before postcopy its first frame fails the migration: let it be read */
		gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;

		while (fuzz_unread(fd) > 0 && mig_session_status(f.s) != MIG_STATUS_FAILED) {
			fuzz_io_deadline(end, "a preempt channel's input was never read");
			g_usleep(100);
		}
	}
	/* a receiver parks at each sync point until the PASS that releases it */
	if (multifd)
		fuzz_dst_passes(passes, FUZZ_PASSES);
	/* (the loader may have failed and closed the channel already) */
	if (passes->len)
		(void)send(main_fd, passes->data, passes->len, MSG_NOSIGNAL);
	shutdown(main_fd, SHUT_WR);
	fuzz_drain(main_fd);   /* the loader ends the channel once it read all */
	close(main_fd);
	close(fd);
	fuzz_dst_free(&f);
	return 0;
}

const char fuzz_name[] = "fuzz-dst-admit";
