/* What the engine-level fuzz harnesses share: a small destination session (migd's
 * synthetic guest, one simulated device) whose channels are socketpairs handed to the
 * listener's own per-connection code (mig_dst_accept), and a pump that feeds a
 * channel while it drains what the engine writes back. Every wait is bounded: a
 * harness that would hang aborts instead, which is what a fuzzer reports. */
#pragma once
#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/dst/dst_int.h"
#include "fuzz-io.h"
#include "tools/migd/guest.h"

/* What the recorded seeds were made with (tools/fuzz-record, whose device is
 * "sim,id=dev0,size=4K,precopy=2K"): keep them alike. */
#define FUZZ_MEM_SIZE (2u << 20)
#define FUZZ_DEV_ID "dev0"
#define FUZZ_DEV_SIZE 6144u   /* the 2 KiB of pre-copy state and the 4 KiB of stop-copy */

enum {
	FUZZ_DST_POSTCOPY = 1u << 0,  /* postcopy-ram */
	FUZZ_DST_MULTIFD = 1u << 1,   /* multifd, one channel */
	FUZZ_DST_PREEMPT = 1u << 2,   /* postcopy-preempt, one channel */
	FUZZ_DST_LANE = 1u << 3,      /* x-device-state-lane (with multifd) */
	FUZZ_DST_NODEV = 1u << 4,     /* no device (then no device state has to end) */
};

/* The harnesses' device: its state goes into a pipe big enough for any input and is
 * counted, on this thread, when the engine ends the load (migd's simulated device
 * checks it on a load thread of its own: a thread per input). Loaded means exactly
 * FUZZ_DEV_SIZE bytes. */
typedef struct FuzzDev {
	MigDevState st;
	int rd;            /* the pipe's read end while RESUMING, else -1 */
} FuzzDev;

typedef struct FuzzDst {
	MigSession *s;
	MigdGuest *guest;
	FuzzDev dev;
	guint flags;
	guint8 session_id[16];
} FuzzDst;

/* A destination in migrate-incoming's state (status setup) without a listening socket. */
void fuzz_dst_init(FuzzDst *f, guint flags);
/* Stops every thread of the destination and frees it all. */
void fuzz_dst_free(FuzzDst *f);

/* A connection to the destination: the first hello_len bytes of data are queued (with
 * the write side shut when that is all), the engine admits it on this thread as the
 * listener would, and the harness's end is returned. */
int fuzz_dst_connect(FuzzDst *f, const uint8_t *data, size_t hello_len, gboolean last);
/* A connection whose whole input, hello first, is queued (and the write side shut)
 * before the engine admits it on this thread and, if it is an admitted main channel,
 * runs its loader here too until it ends (mig_dst_accept_inline): no thread and no
 * handoff per input. The engine's end may queue a few MiB of replies meanwhile.
 * Returns the harness's end. */
int fuzz_dst_connect_inline(FuzzDst *f, const uint8_t *hello, size_t hello_len, const uint8_t *data,
			    size_t size);
/* Postcopy recovery, inline: main_in (a hello, then frames up to GO and what
 * follows) is loaded until its end pauses postcopy; then a resumed main channel (its
 * hello, then data) is admitted as migrate-recover's listener would, and the loader
 * runs the recovery handshake and what follows on it, until that ends too. */
void fuzz_dst_run_recovery(FuzzDst *f, const GByteArray *main_in, const uint8_t *data, size_t size);
/* A well-formed hello of this session for a channel (32 bytes). */
void fuzz_dst_hello(const FuzzDst *f, int type, guint index, uint8_t out[32]);
/* The SETUP frame (header included) that matches this destination. */
GByteArray *fuzz_dst_setup_frame(const FuzzDst *f);
/* The STATE frame of a guest whose units are all at generation 0. */
GByteArray *fuzz_dst_state_frame(const FuzzDst *f);

/* Appends PASS frames 1 to n: queued ahead on a main channel, each releases the
 * multifd receivers once they all reached that sync point (a source sends it once
 * they did), and the loader fails at the end of them at the latest. */
void fuzz_dst_passes(GByteArray *b, guint n);
/* How many: more than an input of a few KiB has sync points. */
#define FUZZ_PASSES 256
/* Drains fd until the engine closes it; aborts after FUZZ_WAIT_MS. */
void fuzz_drain(int fd);
/* Unread bytes in the socket's send queue: the engine has not read them yet. */
int fuzz_unread(int fd);
/* Drains main_fd until the session has status want; aborts if it failed instead or
 * after FUZZ_WAIT_MS. */
void fuzz_dst_wait_status(FuzzDst *f, int main_fd, MigStatus want);

/* The frame helpers. */
void fuzz_frame(GByteArray *b, guint16 type, const void *payload, guint32 len);
