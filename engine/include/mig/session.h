/* A migration session: one source or destination, with its channels, threads and
 * statistics. No global state: a source and a destination can share one process. */
#pragma once
#include <mig/common.h>
#include <mig/ram.h>
#include <mig/log.h>
#include <mig/config.h>
#include <mig/device.h>
#include <mig/value.h>
#include <sys/types.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;

/* QEMU's MigrationStatus names, in QEMU's order. */
typedef enum MigStatus {
	MIG_STATUS_NONE,
	MIG_STATUS_SETUP,
	MIG_STATUS_CANCELLING,
	MIG_STATUS_CANCELLED,
	MIG_STATUS_ACTIVE,
	MIG_STATUS_POSTCOPY_DEVICE,
	MIG_STATUS_POSTCOPY_ACTIVE,
	MIG_STATUS_POSTCOPY_PAUSED,
	MIG_STATUS_POSTCOPY_RECOVER_SETUP,
	MIG_STATUS_POSTCOPY_RECOVER,
	MIG_STATUS_COMPLETED,
	MIG_STATUS_FAILED,
	MIG_STATUS_COLO,
	MIG_STATUS_PRE_SWITCHOVER,
	MIG_STATUS_DEVICE,
	MIG_STATUS_WAIT_UNPLUG,
} MigStatus;
const char *mig_status_str(MigStatus s);

/* QEMU's RunState names that a migration host can be in. */
typedef enum MigRunState {
	MIG_RUN_RUNNING,
	MIG_RUN_PAUSED,
	MIG_RUN_INMIGRATE,
	MIG_RUN_POSTMIGRATE,
	MIG_RUN_FINISH_MIGRATE,
	MIG_RUN_PRELAUNCH,         /* started paused (QEMU's -S), never run yet */
} MigRunState;
const char *mig_runstate_str(MigRunState r);

/* The VM: THE plug point for the guest a session migrates. The embedder's vCPUs,
 * its non-iterative state and its run state sit behind these ops; its memory is the
 * MigRamBlocks it adds (ram.h), its devices the MigDeviceOps it registers (device.h),
 * and its dirty pages come from a MigDirtyTracker (dirty.h). stop and cont are called
 * from the migration threads and from mig_session_vm_stop / _cont. */
typedef struct MigVmOps {
	void (*stop)(gpointer opaque);     /* returns once no vCPU can write guest memory */
	void (*cont)(gpointer opaque);
	/* Non-iterative state, saved at switchover with the vCPUs stopped. */
	GBytes *(*save_state)(gpointer opaque, GError **err);
	gboolean (*load_state)(gpointer opaque, GBytes *state, GError **err);
	/* Adds the VM's own members to a query (MigInfo.extra; may be NULL). */
	void (*query)(gpointer opaque, MigValue *obj);
	/* Destination: every page is in place (may be NULL). A precopy over a connection
	 * calls it after RP_RUNNING is out, so what it does is not downtime. */
	void (*incoming_done)(gpointer opaque);
} MigVmOps;

/* Optional, beside MigVmOps: VM state that can travel while the guest runs (QEMU's
 * iterative sections), so that the downtime carries only what changed since. Without
 * it all of the VM's state is save_state's, in the downtime. With it, save_state
 * returns what the parts did not carry (all of it when no part was taken, as in a
 * migration to a file) and load_state comes after every part. */
typedef struct MigVmLiveOps {
	/* Source: a migration begins; nothing has been handed out yet. */
	void (*save_begin)(gpointer opaque);
	/* Source, the guest running: appends to out at most max bytes of state changed
	 * since it was last handed out (since save_begin: all of it). Returns TRUE when
	 * out filled before the VM had walked all its state; the engine calls again. */
	gboolean (*save_part)(gpointer opaque, GByteArray *out, gsize max);
	/* Destination: a migration begins (forget parts of an earlier one), then each
	 * part in order. A part is a peer's bytes: check them. */
	void (*load_begin)(gpointer opaque);
	gboolean (*load_part)(gpointer opaque, const guint8 *data, gsize len, GError **err);
} MigVmLiveOps;

/* Events, named as QEMU's QMP events. MIGRATION and MIGRATION_PASS come only with the
 * events capability on; STOP and RESUME always. */
typedef enum MigEventType {
	MIG_EVENT_MIGRATION,       /* the status changed: status */
	MIG_EVENT_MIGRATION_PASS,  /* a dirty-page pass began: pass */
	MIG_EVENT_STOP,            /* the VM stopped */
	MIG_EVENT_RESUME,          /* the VM runs again */
} MigEventType;

typedef struct MigEvent {
	MigEventType type;
	MigStatus status;          /* MIGRATION */
	guint64 pass;              /* MIGRATION_PASS: QEMU's dirty-sync-count */
} MigEvent;

/* "MIGRATION", "MIGRATION_PASS", "STOP", "RESUME". */
const char *mig_event_name(MigEventType type);

/* Called from the engine's threads, with the session's lock held: do not call back
 * into the session; hand the event to another thread if it needs more. */
typedef void (*MigEventFn)(gpointer opaque, const MigEvent *ev);

MigSession *mig_session_new(const char *name);
void mig_session_free(MigSession *s);

/* Before migrate or incoming: the VM (ops and opaque outlive the session; initial is
 * MIG_RUN_RUNNING for a source, MIG_RUN_INMIGRATE for a destination) and its RAM blocks
 * (not owned; both sides add blocks of the same names and sizes, in the same order). */
void mig_session_set_vm(MigSession *s, const MigVmOps *ops, gpointer opaque, MigRunState initial);
void mig_session_add_ram(MigSession *s, MigRamBlock *block);
/* Before migrate or incoming, after mig_session_set_vm: the VM's live state (ops
 * outlive the session; NULL: none). Both sides set it, or neither. */
void mig_session_set_vm_live(MigSession *s, const MigVmLiveOps *ops);
/* The VM's vCPU threads (vCPU i is tids[i]): with the postcopy-blocktime capability a
 * destination attributes its postcopy waits to them, as QEMU does. Call before
 * incoming; later calls replace the list. */
void mig_session_set_vcpus(MigSession *s, const pid_t *tids, guint n);
void mig_session_set_event_cb(MigSession *s, MigEventFn fn, gpointer opaque);
/* Destination: run the guest once an incoming migration completes (QEMU's autostart,
 * the default) or keep it paused until mig_session_vm_cont (QEMU's -S). */
void mig_session_set_autostart(MigSession *s, gboolean autostart);

/* fd:NAME URIs: how the session gets the file descriptor called NAME (QMP's getfd).
 * Called from mig_session_migrate / _incoming in the caller's thread; returns a
 * connected stream socket the session then owns, or -1 with *err set. */
typedef int (*MigFdLookupFn)(gpointer opaque, const char *name, GError **err);
void mig_session_set_fd_lookup(MigSession *s, MigFdLookupFn fn, gpointer opaque);
/* file:/dev/fdset/N URIs (QMP's add-fd): a new descriptor of fd set N whose access mode
 * and O_DIRECT are those of flags (a dup, sharing the set's open file description; the
 * session closes it). Called from the migration's threads while the session lives;
 * -1 with *err set when the set has none. Without it such paths are refused. */
typedef int (*MigFdsetDupFn)(gpointer opaque, gint64 fdset_id, int flags, GError **err);
void mig_session_set_fdset_dup(MigSession *s, MigFdsetDupFn fn, gpointer opaque);

/* Capabilities and parameters: config.h. */

gboolean mig_session_migrate(MigSession *s, const char *uri, GError **err);
gboolean mig_session_incoming(MigSession *s, const char *uri, GError **err);
/* mig_session_incoming with QEMU's migrate-incoming exit-on-error, which the engine only
 * hands to the incoming-failed callback below should this incoming migration fail
 * (mig_session_incoming passes FALSE). */
gboolean mig_session_incoming_full(MigSession *s, const char *uri, gboolean exit_on_error, GError **err);
/* Destination: called once when an incoming migration fails while the guest never ran
 * here (not when it is cancelled), after the failure is reported (status failed,
 * error-desc set), from an engine thread without the session's lock. A host that follows
 * QEMU ends the process with an error status when exit_on_error is TRUE; the session
 * must then not be freed from inside the callback. */
typedef void (*MigIncomingFailedFn)(gpointer opaque, const char *error, gboolean exit_on_error);
void mig_session_set_incoming_failed_cb(MigSession *s, MigIncomingFailedFn fn, gpointer opaque);
gboolean mig_session_cancel(MigSession *s, GError **err);
/* Source with postcopy-ram on: switch to postcopy at the next chance (QEMU's
 * migrate-start-postcopy). */
gboolean mig_session_start_postcopy(MigSession *s, GError **err);
/* Source with pause-before-switchover: leave status state (QEMU's migrate-continue;
 * only MIG_STATUS_PRE_SWITCHOVER waits today) and switch over. */
gboolean mig_session_continue(MigSession *s, MigStatus state, GError **err);

/* Postcopy recovery, QEMU's way (docs/design.md, Postcopy recovery). Once the guest
 * ran on the destination a lost channel pauses both sides (postcopy-paused) instead of
 * failing. pause (either side, postcopy-active or a recovery): cuts every channel, so
 * the migration pauses now (migrate-pause). recover (a paused destination): listens on
 * uri for the source's new channels (migrate-recover; again after a failed try).
 * resume (a paused source): reconnects to uri (migrate with resume: true). */
gboolean mig_session_pause(MigSession *s, GError **err);
gboolean mig_session_recover(MigSession *s, const char *uri, GError **err);
gboolean mig_session_resume(MigSession *s, const char *uri, GError **err);

/* A source's RAM figures: QEMU's MigrationStats and mig's x- members. */
#define MIG_INFO_PREEMPT_MAX 8
typedef struct MigRamInfo {
	guint64 transferred;       /* bytes on the wire, headers included (both sides) */
	guint64 remaining;         /* dirty bytes still to send */
	guint64 total;
	guint64 duplicate;         /* zero pages */
	guint64 normal;            /* pages sent with data */
	guint64 normal_bytes;
	double mbps;               /* the last pass; the average so far during the first */
	guint64 dirty_sync_count;
	guint64 dirty_pages_rate;  /* pages/s over the last pass */
	guint64 page_size;
	guint64 multifd_bytes;
	guint64 pages_per_second;
	guint64 precopy_bytes, downtime_bytes, postcopy_bytes, postcopy_requests;
	guint64 bulk_pacing;       /* bytes/s bulk was paced at in postcopy, 0 if not */
	guint64 device_chunks_in_flight_peak;
	guint64 break_huge_drops;  /* huge pages whose bulk remainder was dropped */
	guint64 urgent_skipped;    /* requests bulk had already fully written */
	guint preempt_channels;    /* entries of preempt_channel_requests in use */
	guint64 preempt_channel_requests[MIG_INFO_PREEMPT_MAX];
} MigRamInfo;

/* A snapshot of a session for query-migrate. Set size to sizeof(MigInfo) before
 * mig_session_query: members are only ever added at the end, and the engine fills no
 * more than size bytes, so a program built against an older header keeps working.
 * Times are in ms; -1 means "not known (yet)", and the member is not reported. */
typedef struct MigInfo {
	gsize size;
	gboolean started;          /* FALSE: no migration and no incoming one; nothing else is set */
	gboolean source;
	MigStatus status;
	MigRamInfo ram;            /* source; the destination sets transferred only */
	gint64 total_time_ms;      /* source */
	gint64 setup_time_ms;
	gint64 downtime_ms;        /* when completed, or in postcopy once the guest runs there */
	gint64 downtime_devices_ms, downtime_ram_ms, downtime_other_ms;  /* completed: where it went */
	gint64 expected_downtime_ms;  /* active */
	gint64 thread_cpu_ms;      /* CPU time of the migration thread, once it ended */
	gint converging;           /* -1 unknown (first pass), else whether dirtying slows down */
	char *listen_host, *listen_port;  /* destination: the address bound, TCP */
	char *listen_path;         /* destination: the socket bound, unix */
	gint64 device_queued_peak; /* destination with devices: the reorder queue's high-water mark */
	GPtrArray *devices;        /* MigDeviceInfo*, in registration order; NULL without devices */
	char session_id[33];       /* hex; "" until the migration identified itself */
	char *error;               /* failed, cancelled or postcopy paused: why; else NULL */
	MigValue *extra;           /* an OBJECT: the destination's postcopy figures, then the VM's
				    * own members (MigVmOps.query), even when not started */
} MigInfo;

/* Fills *info (info->size set by the caller); free its contents with mig_info_clear. */
gboolean mig_session_query(MigSession *s, MigInfo *info);
void mig_info_clear(MigInfo *info);
MigStatus mig_session_status(MigSession *s);

/* stop / cont from the user, and the run state for query-status. */
gboolean mig_session_vm_stop(MigSession *s, GError **err);
gboolean mig_session_vm_cont(MigSession *s, GError **err);
MigRunState mig_session_runstate(MigSession *s);

/* QMP's yank, migration instance. has_channels: the session has migration channels open
 * (query-yank lists the instance only then). yank: shutdown(2) on every one of them, both
 * directions, at once, without telling the migration: its threads see their channels
 * fail and it reacts as to a broken link. For a QMP server's out-of-band path: any
 * thread, bounded (short locks only), never waits on the peer. */
gboolean mig_session_has_channels(MigSession *s);
void mig_session_yank(MigSession *s);

/* A failure found after the fact (e.g. an integrity check on the destination). */
void mig_session_report_error(MigSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

MIG_END_PUBLIC
