/* The guest's start at the end of an incoming migration (start.h). */
#include "engine/dst/start.h"
#include "engine/dst/devlane.h"

void mig_dst_start_guest_locked(MigSession *s, MigStatus done)
{
	if (s->dst_autostart) {
		mig_dev_dst_run(s);   /* the devices run again with the vCPUs */
		s->vm->cont(s->vm_opaque);
		mig_set_runstate_locked(s, MIG_RUN_RUNNING);
	} else {
		mig_set_runstate_locked(s, MIG_RUN_PAUSED);
	}
	if (s->status != MIG_STATUS_FAILED)
		mig_set_status_locked(s, done);
}
