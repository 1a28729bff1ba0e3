/* The bound of a destination's wait for bytes that other threads read (the multifd
 * receivers, the preempt channels' loaders): x-channel-timeout of the peer's silence
 * on those channels, counted from its last progress on any of them, so a slow but live
 * source is never cut and a stopped one (or a cut link) is noticed. Progress is a byte
 * the kernel took in on one of their TCP sockets (TCP_INFO: a frame long in coming
 * counts as it comes), or a step the engine made (bytes it read: a unix socket has no
 * TCP_INFO; state bytes a device took: a destination busy loading waits on itself, not
 * on the peer). */
#pragma once
#include "engine/dst/dst_int.h"

typedef struct MigDstSilence {
	MigSession *s;
	gboolean urgent;   /* the preempt channels count too (else multifd's alone) */
	gint64 span;       /* x-channel-timeout, µs */
	gint64 last;       /* monotonic µs: the last progress seen */
	guint64 mark;      /* the engine's counters then */
} MigDstSilence;

/* From now, x-channel-timeout as latched with the main channel. Takes s->lock. */
void mig_dst_silence_init(MigDstSilence *w, MigSession *s, gboolean urgent);
/* The waiter itself saw progress (or waits on its own side meanwhile): from now. */
void mig_dst_silence_touch(MigDstSilence *w);
/* µs of silence left before the wait is over, 0 once the channels have been silent for
 * the whole timeout. Waiters ask again at least every mig_dst_silence_slice_us. Takes
 * s->lock and mf_lock, one after the other: never with either held. */
gint64 mig_dst_silence_left(MigDstSilence *w);
/* How long to sleep before asking again: a quarter of the timeout at most, so progress
 * the engine counts is seen well before the timeout runs out. */
gint64 mig_dst_silence_slice_us(const MigDstSilence *w, gint64 left);
/* The timeout in ms, for error messages. */
guint64 mig_dst_silence_ms(const MigDstSilence *w);
