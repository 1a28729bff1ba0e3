/* The synthetic guest: RAM made of self-describing units and vCPU threads running a
 * workload over it. It stands in for a VM so that every migration can be verified
 * unit by unit at the destination. */
#pragma once
#include <glib.h>
#include <mig/ram.h>
#include <sys/types.h>

typedef enum MigdWorkloadKind {
	MIGD_WORKLOAD_IDLE = 0,
	MIGD_WORKLOAD_SEQ,
	MIGD_WORKLOAD_RANDOM,
} MigdWorkloadKind;

typedef struct MigdWorkload {
	MigdWorkloadKind kind;
	guint64 wss;        /* random: working set in bytes from the start of RAM (0 = all) */
	guint64 rate;       /* units touched per second, in bytes, whole guest (0 = unlimited) */
	double zero;        /* fraction of units left zero at generation 0 */
	guint64 used;       /* bytes from the start of RAM the guest ever writes (0 = all):
			     * the units beyond start zero and no workload touches them */
	guint read_pct;     /* random: share of touches that only read */
} MigdWorkload;

typedef struct MigdGuestConfig {
	guint64 mem_size;
	MigMemBackend backend;
	gsize hugepage_size;
	guint vcpus;
	MigdWorkload workload;
	guint64 seed;
	gboolean incoming;  /* memory left empty, vCPUs parked until the migration hands over */
	gboolean prealloc;  /* fault every page in up front, like QEMU's -mem-prealloc */
	gboolean thp;       /* anon: transparent huge pages (MADV_HUGEPAGE) */
} MigdGuestConfig;

typedef struct MigdGuest MigdGuest;
GQuark migd_guest_error_quark(void);

/* Called (from a vCPU or the verify thread) for each unit that fails its check. */
typedef void (*MigdGuestFailFn)(gpointer opaque, guint64 unit, const char *what);

/* "seq", "random,wss=64M,rate=0", "idle", "seq,zero=0.25", "idle,used=6G". */
gboolean migd_workload_parse(const char *s, MigdWorkload *out, GError **err);

MigdGuest *migd_guest_new(const MigdGuestConfig *cfg, GError **err);
/* Tells the vCPUs to end and waits up to timeout_us for them: FALSE if one is still
 * waiting for a page (then neither its memory nor the guest may be freed). */
gboolean migd_guest_quit(MigdGuest *g, gint64 timeout_us);
void migd_guest_free(MigdGuest *g);

MigRamBlock *migd_guest_ram(MigdGuest *g);
guint64 migd_guest_units(MigdGuest *g);
/* Units the vCPUs have written since the guest started: the workload's own
 * throughput, which a dirty tracker's cost to the writer lowers. */
guint64 migd_guest_writes(MigdGuest *g);
/* The vCPU threads' ids, vCPU i first (at most max); returns how many. */
guint migd_guest_vcpu_tids(MigdGuest *g, pid_t *tids, guint max);
void migd_guest_set_fail_cb(MigdGuest *g, MigdGuestFailFn fn, gpointer opaque);

/* vCPUs: start or resume; stop returns once every vCPU is parked or waits inside a
 * read for a page (it then parks before anything else, should the page come). */
void migd_guest_cont(MigdGuest *g);
void migd_guest_stop(MigdGuest *g);
gboolean migd_guest_running(MigdGuest *g);

/* The generation record (MigVmLiveOps, docs/design.md): the guest keeps every unit's
 * generation as its vCPUs write, and hands out what changed since it last did.
 * save_begin: a migration begins, every unit is still to hand out. save_part: the
 * guest running, the next changes into out, at most max bytes; TRUE if more remain. */
void migd_guest_save_begin(MigdGuest *g);
gboolean migd_guest_save_part(MigdGuest *g, GByteArray *out, gsize max);
/* Source, vCPUs stopped: the seed and the generations not yet handed out, as bytes. */
GBytes *migd_guest_save_record(MigdGuest *g);
/* Destination: a migration begins (parts of an earlier one are dropped); a part as
 * save_part made it; the rest as save_record made it, after which every unit must
 * have a generation. Then each unit is checked against the record on its first touch
 * by a vCPU. */
void migd_guest_load_begin(MigdGuest *g);
gboolean migd_guest_load_part(MigdGuest *g, const guint8 *data, gsize len, GError **err);
gboolean migd_guest_load_record(MigdGuest *g, const guint8 *data, gsize len, GError **err);
/* Destination, once every page is in place: a background thread ("guest/verify")
 * checks the units no vCPU touched. Not earlier: in postcopy its faults would be
 * counted as the guest's, and it would compete with the guest for missing pages. */
void migd_guest_start_verifier(MigdGuest *g);
/* Progress of the record check; total is 0 before a record was loaded. */
void migd_guest_integrity(MigdGuest *g, guint64 *checked, guint64 *failed, guint64 *total);
/* Waits (bounded) for the sweep to finish; TRUE if every unit was checked. */
gboolean migd_guest_wait_verified(MigdGuest *g, gint64 timeout_us);

/* Stops the vCPUs, checks every unit is self-consistent (and zero only where it may
 * be), resumes them if they ran. For "is the source intact after a cancel". */
void migd_guest_self_check(MigdGuest *g, guint64 *checked, guint64 *failed);
