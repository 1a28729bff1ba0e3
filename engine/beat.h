/* A heartbeat: a thread that sends one small frame every period until stopped or until
 * a send fails (beat.c). Each half beats on the direction of the main channel it
 * writes, so that the peer, which bounds its reads by x-channel-timeout, can tell a
 * quiet side from a dead one: engine/src sends NOPs, engine/dst RP_NOPs. */
#pragma once
#include <glib.h>

/* Sends one beat under the caller's writer lock; < 0 ends the beat (the owner of the
 * channel meets the same error on its next write). */
typedef int (*MigBeatSend)(gpointer opaque);

typedef struct MigBeat {
	GThread *thread;
	GMutex lock;        /* quit; never held across a send */
	GCond cond;
	gboolean quit;
	gint64 period;      /* µs, set before the thread starts */
	MigBeatSend send;
	gpointer opaque;
} MigBeat;

void mig_beat_init(MigBeat *b);
void mig_beat_clear(MigBeat *b);
/* Starts the thread NAME: one send every quarter of TIMEOUT_MS, at least every second.
 * Why at least every second: on a cut link TCP_USER_TIMEOUT counts from the first byte
 * left unacknowledged, which on an otherwise quiet channel is the next beat, so the
 * sender notices within the timeout + 1 s whatever the timeout. Idempotent. */
void mig_beat_start(MigBeat *b, const char *name, guint timeout_ms, MigBeatSend send, gpointer opaque);
/* Stops and joins it; idempotent. */
void mig_beat_stop(MigBeat *b);
