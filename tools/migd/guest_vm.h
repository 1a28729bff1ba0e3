/* The synthetic guest as the engine's VM (MigVmOps): stop and cont are the vCPUs, the
 * non-iterative state is the generation record, and the destination starts its integrity
 * sweep once every page is in. The one adapter migd and the tests both use. */
#pragma once
#include <mig/session.h>
#include "tools/migd/guest.h"

/* opaque is the MigdGuest. query adds x-integrity {checked, failed, total}. */
extern const MigVmOps migd_guest_vm_ops;

/* x-integrity for a host that wraps query with members of its own. */
void migd_guest_vm_query(gpointer guest, MigValue *obj);
