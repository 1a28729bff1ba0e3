/* The destination's migration state, shared by the listener and loader (migrate.c),
 * the multifd receivers, postcopy's fault thread and the device lane; it mirrors the
 * source's Src (engine/src/src_int.h). Created by migrate-incoming, freed when the
 * session is. */
#pragma once
#include "engine/dst/dst.h"
#include "engine/beat.h"
#include <sys/uio.h>

#define MIG_DST_MF_MAX 64   /* multifd-channels' most (mf_connected's bits) */

typedef struct Dst {
	MigSession *s;
	/* the parameters this migration runs with, copied when its main channel is
	 * admitted (the listener alone may still be reconfigured, as in QEMU) */
	MigParams p;
	GThread *listen_thread;
	/* mig/dst/open: one per connection still saying hello (Opener* in migrate.c; the
	 * list under s->lock, at most MIG_DST_OPENERS); open_lock makes admitting a
	 * channel and starting its thread one step, and an unbind another (taken before
	 * s->lock, never inside it) */
	GPtrArray *openers;
	GMutex open_lock;
	gboolean open_quit;        /* openers give up (under s->lock) */
	/* Opener*: started ahead by migrate-recover, one per channel the recovery expects,
	 * for its listener to take (under s->lock) */
	GPtrArray *ahead;
	GThread *main_thread;      /* mig/dst/main: the loader */
	int listen_fd;             /* -1 with an fd: URI */
	int given_fd;              /* fd: URI: the passed socket until the listener admits it */
	int listen_wake[2];        /* pipe: wakes the listener to quit */
	int fd;                    /* the main channel (under s->lock; rp_lock for writes) */
	char *listen_uri;          /* the address actually bound */
	char *stream_file;         /* a streamed file: URI's path: the main channel is that file,
				    * read one way, with no return path (nothing answers) */
	guint64 stream_offset;     /* where its read lock starts (filelock.h) */
	gboolean incoming_started; /* a main channel was accepted (under s->lock) */
	/* The main channel's peer is bound only once its SETUP arrives: until then the
	 * listener watches the deadline (monotonic µs, 0: none; x-channel-timeout after
	 * the hello) and, past it, cuts the channel (setup_overdue) so the loader unbinds
	 * the session and the destination listens again; the listener reaps that loader
	 * (stale_main). Under s->lock. */
	gint64 setup_deadline;
	gboolean setup_overdue;
	gboolean stale_main;
	gboolean bound;            /* SETUP arrived: the peer is bound (under s->lock) */
	gulong **received;         /* per block: pages received (set atomically) */
	/* per block, under mf_lock: the bits of received that the loader and the receivers
	 * set, each once, so that COMPLETE need not count them (mig_dst_all_received);
	 * received_cleared: a discard cleared some, the counts say nothing any more */
	guint64 *received_n;
	gboolean received_cleared;

	/* multifd (multifd.c); mf_lock nests inside s->lock, never around it */
	GMutex mf_lock;
	GCond mf_cond;
	GPtrArray *mf_recv;        /* MfRecv*, by arrival */
	guint mf_expected;         /* channels this destination takes (0: multifd off) */
	guint64 mf_connected;      /* bit i: multifd channel i was admitted (under s->lock) */
	guint mf_synced;           /* channels parked at the current sync point */
	guint64 mf_released;       /* last pass every channel was released from */
	gboolean mf_setup_done;    /* SETUP was loaded: receivers may place pages */
	gboolean mf_quit;
	gboolean mf_sealed;        /* the guest may run: no receiver writes into it any more */
	guint mf_writing;          /* receivers between their seal check and their last write */
	int mf_fd[MIG_DST_MF_MAX]; /* receiver i's socket while it runs, else -1: the channels'
				    * silence (silence.c) reads it without calling into multifd.c */

	struct PcDst *pc;          /* postcopy (postcopy.c) */
	gboolean pc_began;         /* LISTEN was loaded: memory is registered (under s->lock) */
	gboolean switching;        /* RP_READY may be out: the source may give its guest up (under s->lock) */
	/* the first channel lost since switching (under s->lock): the loader alone decides
	 * the switchover and takes it when it starts the guest (complete()) */
	char *switch_fault;
	/* tests only: runs on the loader between GO and the guest's start, the moment a
	 * channel lost is the switchover's to settle */
	void (*test_after_go)(MigSession *s);
	/* tests only: mig/dst/fault asks it before each read of userfaultfd (reading) and
	 * after each fault it handled; a negative errno stands in for that step's result */
	int (*test_fault_step)(MigSession *s, gboolean reading);
	/* tests only: runs on the paused loader after its teardown, before it may admit a
	 * resumed main channel (paused_ready): a teardown that takes long */
	void (*test_before_ready)(MigSession *s);
	gboolean cancelled;        /* migrate_cancel stops it: failures are its doing (under s->lock) */
	struct DevDst *devdst;     /* the device lane (devlane.c) */
	guint64 dev_fed;           /* state bytes written to the devices so far (atomic) */
	GMutex rp_lock;            /* return-path writes: loader, fault thread and beat */
	gboolean rp_last;          /* the return path's last frame is out: the beat sends no
				    * more (under rp_lock) */
	MigBeat beat;              /* mig/dst/beat, started and stopped by the loader */
	GThread *urgent_thread[MIG_PREEMPT_MAX];  /* mig/dst/urg/N: preempt channel N's loader */
	int urgent_fd[MIG_PREEMPT_MAX];
	guint urgent_expected;     /* preempt channels this destination takes (0: preempt off) */
	/* a paused postcopy's mig/dst/urg/N, started by the loader, wait for their resumed
	 * channel (urgent_go[N]) or for urgent_stop or quit, on urgent_cond (s->lock) */
	GCond urgent_cond;
	gboolean urgent_go[MIG_PREEMPT_MAX];
	gboolean urgent_stop;
	/* a file migration's state (fileload.c): the lazy restore's fault thread reads
	 * the file until postcopy is freed, so it is freed after that */
	gpointer file;
	GDestroyNotify file_free;

	/* postcopy recovery (under s->lock unless said otherwise) */
	gboolean pc_running;       /* postcopy: GO came and the guest may run here, a lost channel
				    * pauses (set under s->lock, read atomically too) */
	gboolean paused_ready;     /* paused, and every old channel and thread is gone */
	gboolean resume_claimed;   /* the listener is admitting a resumed main channel */
	gboolean quit;             /* the session goes away: the paused loader ends */
	GCond recover_cond;        /* wakes the paused loader: a main channel is back, a resumed multifd channel joined, or quit */
	gboolean rp_hold;          /* under rp_lock: page requests wait for RP_RESUME_ACK */
	guint64 pass_done;         /* the loader's last PASS in place (told at recovery) */
	/* mig_dst_accept_inline is admitting a channel or running its loader on the
	 * caller's thread, with the resumed main channel a pause takes (under s->lock) */
	gboolean inline_main;
	int inline_resume_fd;
} Dst;

/* migrate.c: one accepted connection, from its hello on (what an opener thread does;
 * the fuzz harnesses hand it one end of a socketpair). Takes fd. */
void mig_dst_accept(MigSession *s, int fd);
/* The same, but an admitted main channel's loader runs on this thread until it ends.
 * A postcopy that pauses is recovered once, as if migrate-recover had been run and
 * resume_fd had connected to its listener (a hello first), or ends it (resume_fd -1,
 * or used); resume_fd is taken in any case. For the fuzz harnesses, which queue a
 * whole input before: no thread per input, no handoff. */
void mig_dst_accept_inline(MigSession *s, int fd, int resume_fd);

/* dst.c: what every part of the half may do. */
Dst *mig_dst_new(MigSession *s);
void mig_dst_free(Dst *d);
/* Sends a return-path frame on the main channel (loader and fault thread share it). */
int mig_dst_rp_send(MigSession *s, guint16 type, const struct iovec *iov, int n);
/* Whole RP_REQ_PAGE frames, back to back (reqbatch.h), in one write under the same
 * lock; held (nothing written, 0) while postcopy is paused. */
int mig_dst_rp_send_reqs(MigSession *s, const void *frames, gsize len);
/* The return path's heartbeat (engine/beat.h): mig/dst/beat, an RP_NOP every quarter
 * of x-channel-timeout, at least every second; nothing for a streamed file. Started by
 * the loader; stopped (and joined) before the return path's last frame (RP_RUNNING in
 * precopy, RP_DONE in postcopy), on a pause and at its end. Both idempotent. */
void mig_dst_beat_start(MigSession *s);
void mig_dst_beat_stop(MigSession *s);
/* Sends the return path's last frame (precopy's RP_RUNNING): the beat, which may still
 * be between two NOPs, sends nothing after it, so it can be joined afterwards. */
int mig_dst_rp_send_last(MigSession *s, guint16 type, const struct iovec *iov, int n);
/* Every page of every RAM block arrived (the received bitmaps; a zero page counts,
 * and in postcopy a placed page): else an error naming how many are missing and the
 * first of them. A guest may start only on a complete memory image. */
gboolean mig_dst_all_received(MigSession *s, GError **err);

/* The received bitmaps, all clear, and their counts: at SETUP, before any receiver
 * may place a page. */
void mig_dst_received_new(MigSession *s);

/* Counts n bits of block bi's received bitmap that the caller set (received_n). */
void mig_dst_received_add(Dst *d, guint bi, guint n);
/* A part of the half failed: records why, wakes the receivers and cuts the main
 * channel's reading, so the loader notices, stops the rest and answers the source.
 * Once the guest may run in postcopy this is mig_dst_postcopy_lost; from RP_READY
 * until then only the cause is left to the loader (Dst.switch_fault). */
void mig_dst_fail(MigSession *s, const char *msg);
/* Every channel failure once the guest ran here comes through this (main channel,
 * return path, multifd, preempt, migrate-pause; from any thread): enters
 * postcopy-paused with why as error-desc and cuts every channel, so each thread
 * notices; the loader then joins them and waits for a recovery. userfaultfd stays
 * registered and the fault thread keeps its requests. FALSE when not in postcopy (the
 * caller fails the migration as before). */
gboolean mig_dst_postcopy_lost(MigSession *s, const char *why);
/* migrate_cancel is stopping this incoming migration: what fails now is not reported. */
gboolean mig_dst_cancelled(MigSession *s);
/* Whether the guest may run here while pages are still missing (postcopy after GO). */
gboolean mig_dst_pc_running(Dst *d);
