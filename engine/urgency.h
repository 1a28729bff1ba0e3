/* The engine's threads on a postcopy fault's path (the destination's fault thread and
 * urgent receivers, the source's return path and urgent senders) sleep until a page
 * is wanted and then must run at once. On a host with fewer CPUs than busy vCPU
 * threads they wait for a CPU behind the vCPUs that are not faulting: with 8 vCPUs on
 * 2 CPUs that wait was most of a 4K fault, with 32 nearly all of it (docs/design.md,
 * Postcopy). */
#pragma once
#include <glib.h>
#include <mig/session.h>

typedef enum MigUrgency {
	MIG_URGENCY_NONE,    /* left as it was: already real-time or batch, or refused */
	MIG_URGENCY_SLICE,   /* the shortest fair slice */
	MIG_URGENCY_RT,      /* SCHED_FIFO at the priority asked */
} MigUrgency;

/* For the calling thread. rt_priority 0 (x-postcopy-rt-priority's default): asks the
 * scheduler for the shortest time slice it grants (EEVDF's per-task slice, Linux
 * 6.12+; 100 µs): its share of CPU is unchanged, but on waking it gets an earlier
 * deadline than a thread with the default slice, and runs first when its share allows.
 * 1..99: SCHED_FIFO at that priority, so it runs the moment it wakes whatever the fair
 * threads' shares; refused (no CAP_SYS_NICE, no RLIMIT_RTPRIO), it takes the slice and
 * *rt_errno says why. A thread already real-time or batch is left alone; older kernels
 * ignore or refuse the slice, and nothing else changes. */
MigUrgency mig_thread_set_urgent(guint rt_priority, int *rt_errno);

/* mig_thread_set_urgent() for a postcopy thread of s (who names it), with s's
 * x-postcopy-rt-priority; a refused real-time policy is a warning in s's log. */
void mig_thread_set_urgent_for(MigSession *s, guint rt_priority, const char *who);
