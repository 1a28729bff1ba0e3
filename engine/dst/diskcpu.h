/* The CPUs a file's disk delivers its completions to, when that is fewer than all: a
 * disk with one hardware queue interrupts the CPUs its interrupts are affine to, and a
 * thread that sleeps on a read elsewhere is woken from there, across CPUs
 * (docs/design.md, Migration to a file, has what that costs a lazy restore's fault). */
#pragma once
#include <glib.h>
#include <sched.h>

/* FALSE (set untouched) when it cannot be told or would not narrow anything: the file
 * is not on a block device with PCI MSI interrupts (tmpfs, a loop device, NFS), the
 * device has more than one hardware queue (NVMe: each CPU's requests complete on a
 * queue of its own), or its interrupts reach every CPU in allowed. Reads sysfs and
 * /proc/irq. */
gboolean mig_disk_irq_cpus(int fd, const cpu_set_t *allowed, cpu_set_t *set);
