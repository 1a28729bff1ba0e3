/* The engine's threads on a postcopy fault's path (the destination's fault thread and
 * urgent receivers, the source's return path and urgent senders) sleep until a page
 * is wanted and then must run at once. On a host with fewer CPUs than busy vCPU
 * threads they used to wait for a CPU behind the vCPUs that were not faulting: with 8
 * vCPUs on 2 CPUs that wait was most of a 4K fault (docs/design.md, Postcopy). */
#pragma once
#include <glib.h>

/* Asks the scheduler, for the calling thread, for the shortest time slice it grants
 * (EEVDF's per-task slice, Linux 6.12+; 100 µs): its share of CPU is unchanged, but on
 * waking it gets an earlier deadline than a thread with the default slice and so runs
 * first. TRUE when the kernel took it; older kernels ignore or refuse it, and nothing
 * else changes. */
gboolean mig_thread_set_urgent(void);
