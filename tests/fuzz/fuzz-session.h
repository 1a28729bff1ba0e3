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
#include "tools/migd/simdev.h"

/* What the recorded seeds were made with (tools/fuzz-record): keep them alike. */
#define FUZZ_MEM_SIZE (2u << 20)
#define FUZZ_DEV_SPEC "sim,id=dev0,size=4K,precopy=2K"

enum {
	FUZZ_DST_POSTCOPY = 1u << 0,  /* postcopy-ram */
	FUZZ_DST_MULTIFD = 1u << 1,   /* multifd, one channel */
	FUZZ_DST_PREEMPT = 1u << 2,   /* postcopy-preempt, one channel */
	FUZZ_DST_LANE = 1u << 3,      /* x-device-state-lane (with multifd) */
	FUZZ_DST_NODEV = 1u << 4,     /* no device (then no device state has to end) */
};

typedef struct FuzzDst {
	MigSession *s;
	MigdGuest *guest;
	MigdSimDev *dev;
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
/* A well-formed hello of this session for a channel (32 bytes). */
void fuzz_dst_hello(const FuzzDst *f, int type, guint index, uint8_t out[32]);
/* The SETUP frame (header included) that matches this destination. */
GByteArray *fuzz_dst_setup_frame(const FuzzDst *f);
/* The STATE frame of a guest whose units are all at generation 0. */
GByteArray *fuzz_dst_state_frame(const FuzzDst *f);

/* Writes len bytes to fd while reading (and dropping) what comes back; returns the
 * bytes written (fewer when the peer closed). Aborts after FUZZ_WAIT_MS. */
size_t fuzz_write(int fd, const uint8_t *data, size_t len);
/* Drains fd until the engine closes it; aborts after FUZZ_WAIT_MS. */
void fuzz_drain(int fd);
/* Unread bytes in the socket's send queue: the engine has not read them yet. */
int fuzz_unread(int fd);

/* After a multifd or preempt channel's input was queued (and its write side shut):
 * waits until the engine read all of it or the migration failed, sending on the main
 * channel the PASS that releases a multifd receiver parked at its sync point, as the
 * source would. Then ends the main channel and waits for the loader to close it. */
void fuzz_dst_settle(FuzzDst *f, int main_fd, int fd);
/* The pass a parked multifd receiver waits for, or 0. */
guint64 fuzz_dst_parked(FuzzDst *f);
/* Sends that pass on the main channel, once (*released: the last one sent). */
void fuzz_dst_release(FuzzDst *f, int main_fd, guint64 *released);

/* Polls pred until true; aborts naming what after FUZZ_WAIT_MS. */
void fuzz_wait(gboolean (*pred)(FuzzDst *f), FuzzDst *f, const char *what);
/* Status of the session. */
MigStatus fuzz_status(FuzzDst *f);

/* The frame helpers. */
void fuzz_frame(GByteArray *b, guint16 type, const void *payload, guint32 len);
