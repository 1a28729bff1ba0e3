/* MigSession internals shared by the engine's modules; not for embedders. */
#pragma once
#include <mig/session.h>
#include <mig/dirty.h>
#include <mig/log.h>
#include <mig/config.h>

#define MIG_PREEMPT_MAX 8          /* x-preempt-channels' upper bound */
#define MIG_CHANNEL_TIMEOUT_MIN 1000u    /* x-channel-timeout's bounds, ms */
#define MIG_CHANNEL_TIMEOUT_MAX 600000u

typedef struct MigParams {
	guint64 downtime_limit;        /* ms */
	guint64 max_bandwidth;         /* bytes/s, 0 = unlimited */
	guint64 avail_switchover_bandwidth;
	guint64 max_postcopy_bandwidth;
	guint64 multifd_channels;
	guint64 announce_initial, announce_max, announce_rounds, announce_step;
	guint64 throttle_trigger_threshold, cpu_throttle_initial, cpu_throttle_increment;
	guint64 max_cpu_throttle;
	gboolean cpu_throttle_tailslow;
	guint64 xbzrle_cache_size;
	guint64 zero_page_detection;   /* index into the enum's names */
	guint64 multifd_compression;
	guint64 mode;
	guint64 x_debug_drop_pages;   /* testing the integrity checker: lose N pages */
	guint64 x_postcopy_after_passes; /* switch to postcopy after N passes (0: manual) */
	gboolean x_postcopy_pace;     /* preempt: pace bulk under the measured bandwidth */
	gboolean x_postcopy_preempt_break_huge; /* preempt: bulk sends huge pages in chunks */
	guint64 x_device_max_queued;  /* destination: device bytes held for reordering, at most */
	guint64 x_device_load_threads;/* destination: devices loading at once */
	guint64 x_preempt_channels;   /* preempt: urgent channels (1..MIG_PREEMPT_MAX) */
	guint64 x_device_chunks_in_flight; /* source: device chunks multifd holds at once; 0: a CPU each */
	char *tls_creds, *tls_hostname, *tls_authz;
	char *x_tcp_congestion;       /* the channels' TCP congestion control; "": the system's */
	gboolean direct_io;           /* mapped-ram file: pages with O_DIRECT */
	guint64 x_channel_timeout;    /* ms: a peer silent this long is dead (channels/io.h) */
	gboolean x_postcopy_auto;     /* source: switch to postcopy when precopy will not converge */
	guint64 x_postcopy_rt_priority; /* SCHED_FIFO priority of the fault path's threads; 0: fair */
} MigParams;

/* Counters read by query-migrate while the migration threads update them. */
typedef struct MigStats {
	guint64 transferred;      /* bytes on the wire, headers included */
	guint64 remaining;        /* dirty bytes still to send */
	guint64 duplicate;        /* zero pages */
	guint64 normal;           /* pages sent with data */
	guint64 normal_bytes;
	guint64 dirty_sync_count;
	guint64 dirty_pages_rate; /* pages/s over the last pass */
	guint64 bandwidth;        /* bytes/s over the last pass */
	guint64 expected_downtime;/* ms */
	guint64 precopy_bytes, downtime_bytes;
	guint64 multifd_bytes;
	guint64 postcopy_bytes, postcopy_requests;
	gint64 downtime_us;        /* set when the downtime ends before t_end (postcopy) */
	guint64 x_bulk_pacing;     /* bytes/s bulk was paced at in postcopy, 0 if not */
	guint64 x_device_in_flight_peak; /* the most device chunks multifd held at once */
	guint64 x_break_huge_drops;/* huge pages whose bulk remainder was dropped */
	guint64 x_urgent_skipped;  /* requests bulk had already fully written */
	guint64 x_urgent_lane_requests[MIG_PREEMPT_MAX]; /* requests each preempt channel served */
	gint64 t_start, t_setup_done, t_stop, t_end;   /* monotonic µs */
	gint64 t_ram_done;         /* the final RAM pass was on the wire */
	gint64 t_dev_loaded;       /* the destination reported every device loaded */
	/* precopy's stop-and-copy, each step's end (query-migrate's x-downtime-us) */
	gint64 t_vm_stopped, t_synced, t_pass_done, t_state_sent, t_ready;
	gboolean converging;
	gint64 src_thread_cpu_us;  /* CPU time of mig/src/main, set when it ends */
	/* a file migration (query-migrate's x-file), mapped-ram or streamed */
	gboolean x_file, x_file_direct;
	gboolean x_file_streamed;  /* file: without mapped-ram: the stream's bytes are the file's */
	gboolean x_file_prealloc;  /* source: the pages' region was allocated up front */
	guint64 x_file_bytes;      /* written (source) or read (destination) */
	guint64 x_file_fill_bytes; /* of x_file_bytes: gaps between runs of pages, moved to make requests large */
	guint64 x_file_requests;   /* I/O requests the io_uring workers queued */
	guint64 x_file_depth_peak; /* the most requests one worker's io_uring had in flight */
	gint64 x_file_running_us;  /* lazy restore: migrate-incoming until the guest ran */
	gint64 x_file_checked_us;  /* lazy restore: migrate-incoming until all but the pages was checked */
	gint64 x_file_vm_load_us;  /* lazy restore: the VM's load of the guest record */
	gint64 x_file_all_in_us;   /* lazy restore: migrate-incoming until every page was in */
	guint64 x_file_fault_reads; /* lazy restore: faults read from the file (atomic) */
	guint64 x_file_fault_read_p50_us, x_file_fault_read_p99_us; /* lazy restore: of their reads alone, once all in */
	gint64 x_file_devices_us;  /* the devices' state, all of them in parallel: first start to last end */
	/* x-postcopy-auto switched (under lock): at which pass, and why */
	guint64 x_auto_pass;
	char x_auto_reason[256];
} MigStats;

struct MigSession {
	char *name;
	GMutex lock;               /* status, runstate, error, fds, threads */
	MigStatus status;
	MigRunState runstate;
	gboolean dst_autostart;    /* run the guest once incoming completes (stop clears it) */
	char *error;
	gboolean cancel;           /* set by migrate_cancel; threads poll it */
	gboolean start_postcopy;   /* migrate-start-postcopy was called */
	gboolean switchover_go;    /* migrate-continue left pre-switchover (under lock) */
	GCond switchover_cond;     /* with lock: migrate-continue or cancel happened */
	/* the destination's, yet here: migrate-incoming sets them before its Dst exists,
	 * and mig_session_incoming_failed (core, which cannot see Dst) reads them */
	gboolean dst_exit_on_error;   /* the running incoming's exit-on-error */
	gboolean dst_failure_told;    /* its failure went to incoming_failed_fn */
	MigIncomingFailedFn incoming_failed_fn;
	gpointer incoming_failed_opaque;

	gboolean caps[MIG_CAP__MAX];
	MigParams params;

	const MigVmOps *vm;
	gpointer vm_opaque;
	const MigVmLiveOps *vm_live;   /* NULL: all VM state is save_state's */
	GPtrArray *ram;            /* MigRamBlock*, not owned */
	GPtrArray *devices;        /* MigDevice*, owned; by registration order */

	MigEventFn event_fn;
	gpointer event_opaque;
	MigLogFn log_fn;           /* NULL: g_log (log.c) */
	gpointer log_opaque;
	MigFdLookupFn fd_lookup;   /* fd:NAME URIs; NULL: refused */
	gpointer fd_opaque;
	MigFdsetDupFn fdset_dup;   /* file:/dev/fdset/N; NULL: refused */
	gpointer fdset_opaque;
	MigDirtyTrackerNewFn tracker_new;  /* NULL: uffd-wp */
	gpointer tracker_opaque;
	GArray *vcpu_tids;         /* pid_t of each vCPU thread (mig_session_set_vcpus) */
	/* test only: a file save's fdatasync of what ("pages", "guest record", "header")
	 * fails with this negative errno instead (0: the real one) */
	int (*test_file_sync)(MigSession *s, const char *what);

	MigStats stats;
	guint8 session_id[16];

	/* the running half (engine/src/src.h, engine/dst/dst.h), set under lock; each owns
	 * its threads, channels and a snapshot of params taken when the migration began */
	struct Src *src;
	struct Dst *dst;

	/* engine/tlscreds.c: the objects (-object / object-add), the TLS settings the
	 * source's migration took at its start, and what each channel negotiated. tls_src
	 * is the source's, yet here: migrate sets it before its Src exists and chanopen.c
	 * (core, which cannot see Src) reads it for every channel */
	GPtrArray *objects;
	struct MigTlsRun *tls_src;
	GArray *tls_chans;
};

static inline void mig_bitmap_set_atomic(gulong *map, gsize i)
{
	__atomic_fetch_or(&map[i / (8 * sizeof(gulong))], 1ul << (i % (8 * sizeof(gulong))), __ATOMIC_RELAXED);
}

/* Sets bit i; 1 if it was clear. The same one locked instruction as the set (x86: bts). */
static inline guint mig_bitmap_set_atomic_new(gulong *map, gsize i)
{
	gulong bit = 1ul << (i % (8 * sizeof(gulong)));

	return !(__atomic_fetch_or(&map[i / (8 * sizeof(gulong))], bit, __ATOMIC_RELAXED) & bit);
}

static inline guint64 mig_atomic_get(const guint64 *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void mig_atomic_add(guint64 *p, guint64 v) { __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
static inline void mig_atomic_set(guint64 *p, guint64 v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Urgent channels a migration uses: x-preempt-channels with postcopy-preempt, else 0. */
static inline guint mig_preempt_channels(const MigSession *s, const MigParams *p)
{
	return s->caps[MIG_CAP_POSTCOPY_PREEMPT] ? (guint)p->x_preempt_channels : 0;
}

/* State changes (emit MIGRATION when the events capability is on). Call with lock held. */
void mig_set_status_locked(MigSession *s, MigStatus st);
/* A destination's incoming migration failed and is reported: the host's incoming-failed
 * callback, once, while the guest never ran here. Without s->lock. */
void mig_session_incoming_failed(MigSession *s);
/* The fuzz harnesses' source (tests/fuzz, fuzz-src-*): mig_session_migrate with the
 * migration thread's work on the caller's thread until the migration ends, and no
 * other thread of the source half: no heartbeat (its NOPs are writes only), the
 * return path read where the migration waits for it. Where the source waits for the
 * destination and its channel has nothing to read, feed is called with the engine's
 * end of that channel (fd) and must make it readable: write the destination's next
 * bytes into the other end, or shut that end. A postcopy that pauses resumes once on
 * resume_fd (a connected socket, as if `migrate resume` had connected it: its hello
 * reply queued) or, with -1, ends failed as if the session went away. resume_fd is
 * taken in any case. */
typedef struct MigSrcInline {
	void (*feed)(gpointer opaque, int fd);
	gpointer opaque;
	int resume_fd;
} MigSrcInline;
gboolean mig_session_migrate_inline(MigSession *s, const char *uri, const MigSrcInline *in, GError **err);
void mig_set_status(MigSession *s, MigStatus st);
void mig_emit(MigSession *s, const MigEvent *ev);
/* A message for the embedder's log (log.c); never stderr directly. */
void mig_log(MigSession *s, MigLogLevel level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
void mig_set_runstate_locked(MigSession *s, MigRunState r);

static inline gboolean mig_status_is_active(MigStatus st)
{
	switch (st) {
	case MIG_STATUS_SETUP:
	case MIG_STATUS_ACTIVE:
	case MIG_STATUS_DEVICE:
	case MIG_STATUS_CANCELLING:
	case MIG_STATUS_PRE_SWITCHOVER:
	case MIG_STATUS_POSTCOPY_DEVICE:
	case MIG_STATUS_POSTCOPY_ACTIVE:
	case MIG_STATUS_POSTCOPY_PAUSED:
	case MIG_STATUS_POSTCOPY_RECOVER_SETUP:
	case MIG_STATUS_POSTCOPY_RECOVER:
		return TRUE;
	default:
		return FALSE;
	}
}

void mig_params_init(MigParams *p);
void mig_params_clear(MigParams *p);
/* A migration's own copy (strings duplicated): what it runs with from its start. */
void mig_params_copy(MigParams *to, const MigParams *from);
/* Checks v against the parameter table and, with to, stores it in to's field. */
gboolean mig_params_apply(const MigParamSetting *v, MigParams *to, GError **err);
/* fd:NAME: the named descriptor, adopted as a channel socket; -1 with *err set. */
struct MigUri;
int mig_session_take_fd(MigSession *s, const struct MigUri *uri, GError **err);
/* At migrate / migrate-incoming: parameters that need a capability, and what an fd:
 * URI cannot carry (it is one socket). Call with lock held. */
gboolean mig_params_check_lanes(MigSession *s, GError **err);
gboolean mig_params_check_auto(MigSession *s, GError **err);
gboolean mig_params_check_fd_uri(MigSession *s, const struct MigUri *uri, GError **err);
/* At migrate / migrate-incoming: what a file: URI, mapped-ram and direct-io allow
 * together. Call with lock held. */
gboolean mig_params_check_file(MigSession *s, const char *uri, gboolean source, GError **err);

/* The dirty tracker for one block: the embedder's, else uffd-wp. */
MigDirtyTracker *mig_tracker_new(MigSession *s, const MigRamBlock *block, GError **err);

/* Postcopy after the guest ran on the destination: a lost channel pauses (both sides),
 * never fails. */
static inline gboolean mig_status_is_postcopy_run(MigStatus st)
{
	return st == MIG_STATUS_POSTCOPY_ACTIVE || st == MIG_STATUS_POSTCOPY_PAUSED ||
	       st == MIG_STATUS_POSTCOPY_RECOVER_SETUP || st == MIG_STATUS_POSTCOPY_RECOVER;
}

/* chanopen.c: a source channel is a connect plus this session's typed hello, both
 * bounded by the migration's x-channel-timeout; the socket gets its x-tcp-congestion
 * and x-channel-timeout's liveness settings. */
int mig_chan_connect(MigSession *s, const struct MigUri *uri, const MigParams *p, int type, guint index, GError **err);
/* x-tcp-congestion onto a channel's socket (either side). */
void mig_chan_set_congestion(MigSession *s, int fd, const char *algo);
/* x-channel-timeout onto a channel's socket (either side): channels/io.h,
 * mig_io_set_liveness. */
void mig_chan_set_liveness(MigSession *s, int fd, guint64 timeout_ms);
/* flags: the hello's (the source's Src.chan_flags: RESUME while it recovers). */
gboolean mig_chan_hello(MigSession *s, int fd, const MigParams *p, int type, guint index, guint32 flags,
			GError **err);
/* A streamed file: URI (no mapped-ram) as the main channel, one way, no return path.
 * The source opens the file (created, cut at the URI's offset, the bytes before it
 * kept) and writes this session's main hello there; the destination opens it, reads
 * that hello at the offset and checks it is a main channel's, and adopts the saving
 * session's id. The fd, or -1 with *err naming the file and the cause. */
int mig_chan_file_out(MigSession *s, const struct MigUri *uri, GError **err);
int mig_chan_file_in(MigSession *s, const struct MigUri *uri, GError **err);
/* nmf multifd channels (indexes 0..nmf-1) and npre preempt channels opened at once,
 * each connected and said hello as mig_chan_connect and mig_chan_hello do, by up to 6
 * mig/src/open threads and, once it joins, the caller's, each hello with flags. uri
 * is copied; p must outlive the batch. Join it exactly once: TRUE with every fd in
 * mf_fds and pre_fds, or FALSE with the first failure (in multifd, then preempt
 * order) and none of them open. */
typedef struct MigChanBatch MigChanBatch;
MigChanBatch *mig_chan_batch_start(MigSession *s, const struct MigUri *uri, const MigParams *p, guint nmf,
				   guint npre, guint32 flags);
gboolean mig_chan_batch_join(MigChanBatch *b, int *mf_fds, int *pre_fds, GError **err);
/* The same, but its threads (mig/src/open, up to the batch's parallelism) start now
 * and wait: the channels connect once mig_chan_batch_aim gives them uri (a postcopy
 * recovery's threads start when it pauses, so that the resume does not wait for
 * their creation), and say hello only once mig_chan_batch_gate(b, TRUE) lets them:
 * they connect while the caller's main channel has its own hello answered (a
 * recovery's resumed channels are admitted only after the resumed main channel). With
 * FALSE (the main channel failed, or no address came) they close without a hello, or
 * end without connecting; join then fails too. With TRUE, a channel that failed or
 * fails later shuts watch_fd (-1: none), so the caller may wait on its main channel
 * before the join: that wait ends too. watch_fd stays open until the join. Aim at most
 * once; gate exactly once, before the join. */
MigChanBatch *mig_chan_batch_start_gated(MigSession *s, const MigParams *p, guint nmf, guint npre, guint32 flags);
void mig_chan_batch_aim(MigChanBatch *b, const struct MigUri *uri);
void mig_chan_batch_gate(MigChanBatch *b, gboolean go, int watch_fd);
