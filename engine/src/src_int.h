/* The source's migration state, shared by precopy (migrate.c), postcopy (postcopy.c)
 * and the device lane (devlane.c); created by migrate, freed by the next one or with
 * the session. The main channel's common steps live in send.c, the bottom of the half. */
#pragma once
#include "engine/src/src.h"
#include "engine/src/multifd.h"
#include "engine/src/bulkpace.h"
#include "engine/src/autopc.h"
#include "engine/beat.h"
#include "channels/uri.h"
#include <sys/uio.h>

#define MAX_BATCH_PAGES 128u
#define MIG_BATCH_BYTES (512u << 10)   /* page data per PAGES frame (or one huge page) */

typedef struct SrcBlock {
	MigRamBlock *rb;
	gsize npages;
	gulong *dirty;
	gulong *groups;         /* dirty's summary (engine/bitmap.h), this thread's */
	MigDirtyTracker *tracker;
} SrcBlock;

typedef struct Src {
	MigSession *s;
	/* the parameters this migration runs with, copied at migrate; the few QEMU lets
	 * change mid-migration (max-bandwidth, downtime-limit, max-postcopy-bandwidth,
	 * avail-switchover-bandwidth) and x-postcopy-after-passes are read live from
	 * s->params, atomically */
	MigParams p;
	char *uri_text;         /* as migrate was given it */
	GThread *thread;        /* mig/src/main */
	int fd;
	int given_fd;           /* fd: URI: the passed socket until connect_main takes it */
	/* under s->lock: what migrate_cancel cuts (the main channel, the senders) */
	int cancel_fd;
	MfSrc *cancel_mf;
	gboolean vm_was_running; /* before the migration stopped it */
	SrcBlock *blocks;
	guint nblocks;
	gboolean stopped;       /* vCPUs stopped by us */
	gboolean in_downtime;
	guint64 drop_left;      /* x-debug-drop-pages still to lose */
	guint64 pass;           /* passes begun; numbers PASS frames and multifd syncs */
	guint64 pass_acked;     /* the last pass the destination has in place (RP_PASS) */
	gboolean pass_cut;      /* this live pass stopped early for migrate-start-postcopy (mig/src/main) */
	guint zero_mode;        /* zero-page-detection: 0 none, 1 legacy, 2 multifd */
	struct MigHoles *holes; /* pages that hold nothing are zero without a read (send.c) */
	MfSrc *mf;              /* multifd senders, NULL when multifd is off */
	struct DevSrc *dev;     /* the device lane (devlane.c) */
	MigUri uri;
	guint32 chan_flags;     /* its channels' hello flags: RESUME while it recovers (mig/src/main) */
	gboolean no_rp;         /* a streamed file: URI: a main channel with no return path */
	gint64 rp_heard;        /* monotonic µs: the return path's last frame, in precopy (mig/src/main) */
	GMutex wlock;           /* main channel writes: the return-path thread sends too */
	int pre_fds[MIG_PREEMPT_MAX]; /* postcopy-preempt channels (x-preempt-channels) */
	guint npre;             /* how many are open; 0 without preempt */
	struct MigUrgent *urgent; /* their senders, while postcopy runs */
	gboolean postcopy;      /* switched to postcopy */
	/* GO may have left (set before its first byte is written): the guest never runs
	 * here again (docs/design.md, Switchover). Atomic: the return path reads it */
	gboolean go_sent;
	gboolean quit;          /* the session is going away: every wait ends (atomic) */
	gboolean dst_ready;     /* RP_READY seen (postcopy; precopy reads it inline) */
	gboolean dst_running;   /* RP_RUNNING seen */
	gboolean dst_done;      /* RP_DONE seen */
	char *rp_error;         /* what the return path reported, if it failed */
	GThread *rp_thread;
	GMutex rp_lock;
	GMutex urgent_lock;      /* a request's take-and-send, against END overtaking it */
	GCond rp_cond;
	gsize *hint;            /* per block: where the background push continues (locality) */
	guint urgent_pending;   /* requests received and not yet sent (atomic) */
	gboolean bw_capped;      /* the last pass's bandwidth was max-bandwidth's, not the link's */
	gulong **urgent_sent;   /* per block: pages the urgent lane sent (atomic) */
	gulong **bulk_sent;     /* per block: pages bulk finished writing in postcopy (atomic) */
	gboolean break_huge;    /* bulk sends huge pages in chunks, yielding between */
	gboolean pre_fd_paced;  /* bulk yields to urgent work (preempt on, postcopy running) */
	gint64 yield_window;    /* when the yield budget's window began, µs (atomic; postcopy.c) */
	gint64 yield_spent;     /* µs bulk waited for urgent pages in that window (atomic) */
	gboolean pace_adapt;    /* bulk's pacing rate follows the urgent traffic (bulkpace.h) */
	guint64 pc_cap;         /* max-postcopy-bandwidth as the bulk sockets have it (0: none) */
	MigBulkPace pace;
	MigAutoPc autopc;       /* x-postcopy-auto's view of the passes so far */
	/* x-postcopy-auto's probes of the first pass (mig/src/main): how many were taken,
	 * where the pass began, the last collection, and a verdict that cut it */
	guint probes;
	gint64 pass_t0, probe_t;
	guint64 pass_sent0;
	gboolean auto_cut;
	char auto_why[256];
	/* postcopy recovery, under s->lock: the address `migrate resume:true` gave, a
	 * migrate-pause asked for (and quit, above); resume_cond wakes the paused
	 * migration thread */
	GCond resume_cond;
	char *resume_uri;
	gboolean pause_req;
	gboolean abandon;       /* `cont` here: the destination never ran the guest */
	/* postcopy-recover-setup is the status, its event not yet sent: the migration
	 * thread's next status waits for it (setup_announced, on resume_cond) */
	gboolean setup_unannounced;
	GCond end_cond;         /* the migration ended (finish) or the session quits: `cont`
				 * waits on it for an abandoned migration's end */
	/* mig/src/beat: NOPs on the main channel until COMPLETE / PC_RUN, and in
	 * postcopy-active until PC_END */
	MigBeat beat;
	/* mig_session_migrate_inline (the fuzz harnesses): no thread of the half, the
	 * return path read on this thread (rp_ended: it said its last), the harness asked
	 * for the destination's bytes (mig_src_feed) */
	gboolean inline_run;
	gboolean rp_ended;
	MigSrcInline inl;
	/* rate limiting over 100 ms windows */
	gint64 win_start;
	guint64 win_bytes;
} Src;

gboolean mig_src_cancelled(Src *src);
/* An inline run (mig_session_migrate_inline) where the source waits for the
 * destination: if the main channel has nothing to read, the harness's feed writes the
 * destination's next bytes (or ends the channel). Nothing otherwise. */
void mig_src_feed(Src *src);
/* Every channel failure once the guest ran on the destination comes here (main channel,
 * return path, multifd, preempt; a migrate-pause too): tears the channels and their
 * threads down, keeps the guest stopped and every page, and enters postcopy-paused
 * with why as error-desc. Then waits for `migrate resume:true` and recovers, pausing
 * again on failure, as often as it takes. FALSE (with *err) only when the session goes
 * away meanwhile. (engine/src/postcopy.c) */
gboolean mig_src_postcopy_lost(Src *src, const GError *why, GError **err);
/* Before the migration thread's next status after a resume: the dispatcher's
 * postcopy-recover-setup event is out (bounded by 1 s). Call with s->lock held. */
void mig_src_setup_announced(Src *src);
gboolean mig_src_send_frame(Src *src, guint16 type, const struct iovec *iov, int n, GError **err);
/* Sends these pages of a block on the main channel: zero pages as offsets, the rest
 * as data straight from guest memory. */
gboolean mig_src_send_pages(Src *src, guint bi, const gsize *pages, guint n, GError **err);
gboolean mig_src_sync_dirty(Src *src, guint64 *bytes, GError **err);
gboolean mig_src_pass_end(Src *src, GError **err);
/* Stops the vCPUs for the switchover (status device, run state finish-migrate). */
gboolean mig_src_stop_vm(Src *src, GError **err);
/* The VM's live state (MigVmLiveOps) changed since it was last handed out, in
 * STATE_PART frames; nothing without live ops. Once per pass, the guest running, so
 * that STATE carries only what changed after the last pass. */
gboolean mig_src_send_live(Src *src, GError **err);
gboolean mig_src_send_state(Src *src, GError **err);
/* Whether the migration must stop waiting: cancelled, or the session quits. */
gboolean mig_src_stopping(Src *src);
/* Whether the destination took in more of what was sent on the main channel since
 * *outq (its unacknowledged bytes, SIOCOUTQ, start with G_MAXINT): a destination still
 * working through the stream is not a dead one, so the switchover's waits count their
 * x-channel-timeout from its last progress. */
gboolean mig_src_dst_draining(Src *src, int *outq);
/* Sends GO: from here on the source's guest never runs again, even if the write
 * fails (part of it may have left); the caller's error must say so. */
gboolean mig_src_send_go(Src *src, GError **err);
/* The heartbeat (engine/beat.h), from the main channel's hello until COMPLETE / PC_RUN
 * and during postcopy's push; stop is idempotent and joins mig/src/beat. (send.c) */
void mig_src_beat_start(Src *src);
void mig_src_beat_stop(Src *src);
/* From a main channel's hello (or a recovery's RP_RESUME_ACK) on, the return path's
 * reads are bounded by x-channel-timeout: the destination beats on it (RP_NOP). Not
 * in an inline run, whose harness answers only when asked. (send.c) */
void mig_src_rp_bound(Src *src);

