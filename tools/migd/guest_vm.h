/* The synthetic guest as the engine's VM (MigVmOps, MigVmLiveOps): stop and cont are
 * the vCPUs, the state is the generation record (live, then its last changes at the
 * switchover), and the destination starts its integrity sweep once every page is in. The one adapter migd and the tests both use. */
#pragma once
#include <mig/session.h>
#include "tools/migd/guest.h"

/* opaque is the MigdGuest. query adds x-integrity {checked, failed, total}. */
extern const MigVmOps migd_guest_vm_ops;
/* The generation record sent live: only what the vCPUs wrote since the last pass is
 * left for the downtime. */
extern const MigVmLiveOps migd_guest_vm_live_ops;

/* x-integrity for a host that wraps query with members of its own. */
void migd_guest_vm_query(gpointer guest, MigValue *obj);
