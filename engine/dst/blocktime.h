/* QEMU's postcopy blocktime and latency accounting, with QEMU 10.1's meaning: how long
 * each vCPU waited on missing pages, how long every vCPU waited at once, and the
 * latency of every fault, vCPU or not. The fault thread begins a wait per fault it
 * reads (with the faulting thread's id); placing the page ends every wait on it. Only
 * with the postcopy-blocktime capability: it costs a lock per fault and per requested
 * page placed. */
#pragma once
#include <glib.h>
#include <sys/types.h>
#include <mig/value.h>

#define MIG_BLOCKTIME_BUCKETS 24   /* bucket N: waits in [2^N, 2^(N+1)) µs; the last open */

typedef struct MigBlocktime MigBlocktime;

/* The vCPUs are the threads in tids, vCPU i being tids[i]; any other thread's fault is
 * a non-vCPU fault. */
MigBlocktime *mig_blocktime_new(const pid_t *tids, guint ntids);
void mig_blocktime_free(MigBlocktime *bt);

/* Thread tid faulted on the page at key at t_ns (CLOCK_MONOTONIC). */
void mig_blocktime_begin(MigBlocktime *bt, guint64 key, pid_t tid, gint64 t_ns);
/* The page at key is in place at t_ns: every wait on it ends (none: nothing happens). */
void mig_blocktime_end(MigBlocktime *bt, guint64 key, gint64 t_ns);

/* Adds postcopy-blocktime (ms), postcopy-vcpu-blocktime ([ms]), postcopy-latency (ns),
 * postcopy-vcpu-latency ([ns]), postcopy-non-vcpu-latency (ns) and
 * postcopy-latency-dist (counts per bucket) to obj. */
void mig_blocktime_query(MigBlocktime *bt, MigValue *obj);
