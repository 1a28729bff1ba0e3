/* MigSession internals shared by the engine's modules; not for embedders. */
#pragma once
#include <mig/session.h>
#include <mig/dirty.h>
#include <mig/log.h>
#include <mig/config.h>

#define MIG_PREEMPT_MAX 8          /* x-preempt-channels' upper bound */

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
	gboolean converging;
	gint64 src_thread_cpu_us;  /* CPU time of mig/src/main, set when it ends */
} MigStats;

struct MigSession {
	char *name;
	GMutex lock;               /* status, runstate, error, fds, threads */
	MigStatus status;
	MigRunState runstate;
	gboolean vm_was_running;   /* before the migration stopped it */
	gboolean dst_autostart;    /* run the guest once incoming completes (stop clears it) */
	char *error;
	gboolean cancel;           /* set by migrate_cancel; threads poll it */
	gboolean start_postcopy;   /* migrate-start-postcopy was called */

	gboolean caps[MIG_CAP__MAX];
	MigParams params;

	const MigVmOps *vm;
	gpointer vm_opaque;
	GPtrArray *ram;            /* MigRamBlock*, not owned */
	GPtrArray *devices;        /* MigDevice*, owned; by registration order */

	MigEventFn event_fn;
	gpointer event_opaque;
	MigLogFn log_fn;           /* NULL: g_log (log.c) */
	gpointer log_opaque;
	MigDirtyTrackerNewFn tracker_new;  /* NULL: uffd-wp */
	gpointer tracker_opaque;

	MigStats stats;
	guint8 session_id[16];

	/* source */
	GThread *src_thread;
	char *src_uri;
	int src_fd;

	/* destination */
	GThread *listen_thread;
	GThread *dst_thread;
	int listen_fd;
	int listen_wake[2];        /* pipe: wakes the listener to quit */
	int dst_fd;
	char *listen_uri;          /* the address actually bound */
	gboolean incoming_started; /* a main channel was accepted */
	gulong **received;         /* per block: pages received (set atomically) */

	/* destination multifd (multifd_dst.c); mf_lock nests inside lock, never around it */
	GMutex mf_lock;
	GCond mf_cond;
	GPtrArray *mf_recv;        /* MfRecv*, by arrival */
	guint mf_expected;         /* channels this destination takes (0: multifd off) */
	guint64 mf_connected;      /* bit i: multifd channel i was admitted (under lock) */
	guint mf_synced;           /* channels parked at the current sync point */
	guint64 mf_released;       /* last pass every channel was released from */
	gboolean mf_setup_done;    /* SETUP was loaded: receivers may place pages */
	gboolean mf_quit;
	struct MfSrc *src_mf;      /* source multifd senders, for cancel */

	/* destination postcopy (postcopy_dst.c) */
	struct PcDst *pc;
	struct DevDst *devdst;     /* destination device lane (devlane_dst.c) */
	GMutex rp_lock;            /* return-path writes: loader and fault thread */
	GThread *urgent_thread[MIG_PREEMPT_MAX];  /* mig/dst/urg/N: preempt channel N's loader */
	int urgent_fd[MIG_PREEMPT_MAX];
	guint urgent_expected;     /* preempt channels this destination takes (0: preempt off) */
};

static inline void mig_bitmap_set_atomic(gulong *map, gsize i)
{
	__atomic_fetch_or(&map[i / (8 * sizeof(gulong))], 1ul << (i % (8 * sizeof(gulong))), __ATOMIC_RELAXED);
}

static inline guint64 mig_atomic_get(const guint64 *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void mig_atomic_add(guint64 *p, guint64 v) { __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
static inline void mig_atomic_set(guint64 *p, guint64 v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Urgent channels a migration uses: x-preempt-channels with postcopy-preempt, else 0. */
static inline guint mig_preempt_channels(const MigSession *s)
{
	return s->caps[MIG_CAP_POSTCOPY_PREEMPT] ? (guint)s->params.x_preempt_channels : 0;
}

/* State changes (emit MIGRATION when the events capability is on). Call with lock held. */
void mig_set_status_locked(MigSession *s, MigStatus st);
void mig_set_status(MigSession *s, MigStatus st);
void mig_emit(MigSession *s, const MigEvent *ev);
/* A message for the embedder's log (log.c); never stderr directly. */
void mig_log(MigSession *s, MigLogLevel level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
void mig_set_runstate_locked(MigSession *s, MigRunState r);
gboolean mig_status_is_active(MigStatus st);

void mig_params_init(MigParams *p);
void mig_params_clear(MigParams *p);
/* At migrate / migrate-incoming: parameters that need a capability. Call with lock held. */
gboolean mig_params_check_lanes(MigSession *s, GError **err);

/* The dirty tracker for one block: the embedder's, else uffd-wp. */
MigDirtyTracker *mig_tracker_new(MigSession *s, const MigRamBlock *block, GError **err);

/* source (migrate_src.c) and destination (migrate_dst.c) entry points */
gpointer mig_src_thread(gpointer s);
gboolean mig_dst_listen(MigSession *s, const char *uri, GError **err);
void mig_dst_shutdown(MigSession *s);
void mig_dst_query(MigSession *s, MigInfo *info);

/* chanopen.c: a source channel is a connect plus this session's typed hello. */
struct MigUri;
int mig_chan_connect(MigSession *s, const struct MigUri *uri, int type, guint index, GError **err);
/* x-tcp-congestion onto a channel's socket (either side). */
void mig_chan_set_congestion(MigSession *s, int fd);
gboolean mig_chan_hello(MigSession *s, int fd, int type, guint index, GError **err);
int mig_chan_open(MigSession *s, const struct MigUri *uri, int type, guint index, GError **err);
