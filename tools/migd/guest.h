/* The synthetic guest: RAM made of self-describing units and vCPU threads running a
 * workload over it. It stands in for a VM so that every migration can be verified
 * unit by unit at the destination. */
#pragma once
#include <glib.h>
#include <mig/ram.h>

typedef enum MigWorkloadKind {
	MIG_WORKLOAD_IDLE = 0,
	MIG_WORKLOAD_SEQ,
	MIG_WORKLOAD_RANDOM,
} MigWorkloadKind;

typedef struct MigWorkload {
	MigWorkloadKind kind;
	guint64 wss;        /* random: working set in bytes from the start of RAM (0 = all) */
	guint64 rate;       /* units touched per second, in bytes, whole guest (0 = unlimited) */
	double zero;        /* fraction of units left zero at generation 0 */
	guint read_pct;     /* random: share of touches that only read */
} MigWorkload;

typedef struct MigGuestConfig {
	guint64 mem_size;
	MigMemBackend backend;
	gsize hugepage_size;
	guint vcpus;
	MigWorkload workload;
	guint64 seed;
	gboolean incoming;  /* memory left empty, vCPUs parked until the migration hands over */
	gboolean prealloc;  /* fault every page in up front, like QEMU's -mem-prealloc */
} MigGuestConfig;

typedef struct MigGuest MigGuest;
GQuark mig_guest_error_quark(void);

/* Called (from a vCPU or the verify thread) for each unit that fails its check. */
typedef void (*MigGuestFailFn)(gpointer opaque, guint64 unit, const char *what);

/* "seq", "random,wss=64M,rate=0", "idle", "seq,zero=0.25". */
gboolean mig_workload_parse(const char *s, MigWorkload *out, GError **err);

MigGuest *mig_guest_new(const MigGuestConfig *cfg, GError **err);
void mig_guest_free(MigGuest *g);

MigRamBlock *mig_guest_ram(MigGuest *g);
guint64 mig_guest_units(MigGuest *g);
void mig_guest_set_fail_cb(MigGuest *g, MigGuestFailFn fn, gpointer opaque);

/* vCPUs: start or resume; stop returns once every vCPU is parked between touches. */
void mig_guest_cont(MigGuest *g);
void mig_guest_stop(MigGuest *g);
gboolean mig_guest_running(MigGuest *g);

/* Source, vCPUs stopped: the generation of every unit (and the seed) as bytes. */
GBytes *mig_guest_save_record(MigGuest *g);
/* Destination: adopt the record; from now on each unit is checked against it on its
 * first touch by a vCPU. */
gboolean mig_guest_load_record(MigGuest *g, const guint8 *data, gsize len, GError **err);
/* Destination, once every page is in place: a background thread ("guest/verify")
 * checks the units no vCPU touched. Not earlier: in postcopy its faults would be
 * counted as the guest's, and it would compete with the guest for missing pages. */
void mig_guest_start_verifier(MigGuest *g);
/* Progress of the record check; total is 0 before a record was loaded. */
void mig_guest_integrity(MigGuest *g, guint64 *checked, guint64 *failed, guint64 *total);
/* Waits (bounded) for the sweep to finish; TRUE if every unit was checked. */
gboolean mig_guest_wait_verified(MigGuest *g, gint64 timeout_us);

/* Stops the vCPUs, checks every unit is self-consistent (and zero only where it may
 * be), resumes them if they ran. For "is the source intact after a cancel". */
void mig_guest_self_check(MigGuest *g, guint64 *checked, guint64 *failed);
