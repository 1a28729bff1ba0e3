/* What the source-side fuzz harnesses share: a small source session (migd's synthetic
 * guest, no device) that migrates over a socketpair with the migration thread's work
 * on the harness's thread (mig_session_migrate_inline): no thread, no connect, no
 * timer per input. The harness plays the destination: its
 * hello replies are queued ahead, and whenever the source waits for the destination
 * with nothing to read, the next frame of the input is written (its header's length
 * says how much; a header that does not fit what is left sends the rest), or the
 * channel is ended once the input is used up. What the source sends is never read:
 * the socket buffers hold it. */
#pragma once
#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/session_int.h"
#include "tools/migd/guest.h"

/* The recorded seeds' guest (tools/fuzz-record; fuzz-session.h's FUZZ_MEM_SIZE). */
#define FUZZ_SRC_MEM_SIZE (2u << 20)

enum {
	FUZZ_SRC_POSTCOPY = 1u << 0,  /* postcopy-ram, switched to after the first pass */
};

typedef struct FuzzSrcChan {
	int peer;                /* the destination's end (the harness's) */
	int eng;                 /* the source's end, until the engine takes it */
	const uint8_t *data;     /* what is left to feed */
	size_t left;
} FuzzSrcChan;

typedef struct FuzzSrc {
	MigSession *s;
	MigdGuest *guest;
	FuzzSrcChan main, resume;
} FuzzSrc;

void fuzz_src_init(FuzzSrc *f, guint flags);
/* Migrates: main_in is what the destination says on the main channel after its hello
 * reply; resume_in (NULL: no recovery) what it says on the channel `migrate resume`
 * opens once postcopy paused, after that hello's reply. Returns when the migration
 * ended; checks that it ended (completed or failed) and that the source's guest runs
 * unless GO left. */
void fuzz_src_run(FuzzSrc *f, const uint8_t *main_in, size_t main_len, const uint8_t *resume_in,
		  size_t resume_len);
void fuzz_src_free(FuzzSrc *f);

/* Frame helpers for the harnesses' scripts. */
void fuzz_src_frame(GByteArray *b, guint16 type, const void *payload, guint32 len);
