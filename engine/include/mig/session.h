/* A migration session: one source or destination, with its channels, threads and
 * statistics. No global state: a source and a destination can share one process. */
#pragma once
#include <mig/common.h>
#include <json-glib/json-glib.h>
#include <mig/ram.h>
#include <mig/log.h>
#include <mig/config.h>

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
	/* Adds mig's x- members to the destination's query-migrate (may be NULL). */
	void (*query)(gpointer opaque, JsonBuilder *b);
	/* Destination: every page is in place (may be NULL). */
	void (*incoming_done)(gpointer opaque);
} MigVmOps;

/* Receives every event; data is transfer full (may be NULL). */
typedef void (*MigEventFn)(gpointer opaque, const char *name, JsonNode *data);

MigSession *mig_session_new(const char *name);
void mig_session_free(MigSession *s);

void mig_session_set_vm(MigSession *s, const MigVmOps *ops, gpointer opaque, MigRunState initial);
void mig_session_add_ram(MigSession *s, MigRamBlock *block);
void mig_session_set_event_cb(MigSession *s, MigEventFn fn, gpointer opaque);

/* Capabilities and parameters: config.h. */

gboolean mig_session_migrate(MigSession *s, const char *uri, GError **err);
gboolean mig_session_incoming(MigSession *s, const char *uri, GError **err);
gboolean mig_session_cancel(MigSession *s, GError **err);
/* Source with postcopy-ram on: switch to postcopy at the next chance (QEMU's
 * migrate-start-postcopy). */
gboolean mig_session_start_postcopy(MigSession *s, GError **err);
JsonNode *mig_session_query_migrate(MigSession *s);
MigStatus mig_session_status(MigSession *s);

/* stop / cont from the user, and the run state for query-status. */
gboolean mig_session_vm_stop(MigSession *s, GError **err);
gboolean mig_session_vm_cont(MigSession *s, GError **err);
MigRunState mig_session_runstate(MigSession *s);

/* A failure found after the fact (e.g. an integrity check on the destination). */
void mig_session_report_error(MigSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

MIG_END_PUBLIC
