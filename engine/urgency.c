/* A short scheduler slice for the threads on a fault's path: see urgency.h. */
#include "engine/urgency.h"
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The system call's argument (linux/sched/types.h, whose struct sched_param clashes
 * with libc's): the first version of it, which every kernel with the call takes. */
struct mig_sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

/* The kernel's floor for a custom slice (kernel/sched/syscalls.c clamps to it). */
#define URGENT_SLICE_NS 100000ull

gboolean mig_thread_set_urgent(void)
{
	struct mig_sched_attr a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0 || a.sched_policy != SCHED_OTHER)
		return FALSE;   /* a real-time or batch thread was placed so on purpose */
	/* sched_runtime of a SCHED_NORMAL thread is its slice; everything else stays
	 * (nice included, which sched_setattr would otherwise reset) */
	a.size = sizeof(a);
	a.sched_flags = 0;
	a.sched_runtime = URGENT_SLICE_NS;
	return syscall(SYS_sched_setattr, 0, &a, 0) == 0;
}
