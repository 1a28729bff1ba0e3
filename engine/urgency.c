/* How the threads on a fault's path are scheduled: see urgency.h. */
#include "engine/urgency.h"
#include "engine/session_int.h"
#include <errno.h>
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

MigUrgency mig_thread_set_urgent(guint rt_priority, int *rt_errno)
{
	struct mig_sched_attr a;

	if (rt_errno)
		*rt_errno = 0;
	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0 || a.sched_policy != SCHED_OTHER)
		return MIG_URGENCY_NONE;   /* a real-time or batch thread was placed so on purpose */
	if (rt_priority) {
		struct mig_sched_attr rt;

		memset(&rt, 0, sizeof(rt));
		rt.size = sizeof(rt);
		rt.sched_policy = SCHED_FIFO;
		rt.sched_priority = MIN(rt_priority, 99u);
		if (syscall(SYS_sched_setattr, 0, &rt, 0) == 0)
			return MIG_URGENCY_RT;
		/* no CAP_SYS_NICE nor RLIMIT_RTPRIO: the slice is what is left */
		if (rt_errno)
			*rt_errno = errno;
	}
	/* sched_runtime of a SCHED_NORMAL thread is its slice; everything else stays
	 * (nice included, which sched_setattr would otherwise reset) */
	a.size = sizeof(a);
	a.sched_flags = 0;
	a.sched_runtime = URGENT_SLICE_NS;
	return syscall(SYS_sched_setattr, 0, &a, 0) == 0 ? MIG_URGENCY_SLICE : MIG_URGENCY_NONE;
}

void mig_thread_set_urgent_for(MigSession *s, guint rt_priority, const char *who)
{
	int why = 0;

	if (mig_thread_set_urgent(rt_priority, &why) != MIG_URGENCY_RT && why)
		mig_log(s, MIG_LOG_WARNING, "x-postcopy-rt-priority %u: SCHED_FIFO refused for %s (%s; it needs "
			"CAP_SYS_NICE or RLIMIT_RTPRIO): it keeps the normal policy with a short slice",
			rt_priority, who, g_strerror(why));
}
