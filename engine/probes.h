/* USDT probes (provider "mig") at every stage of a postcopy page fault, so a tracer
 * (mig-faultlat --stages, bpftrace, perf) can time each hop from outside, on one
 * clock. Each probe takes (block index, byte offset of the host page). A probe site is
 * a nop until a tracer attaches. A probe that stands for a write fires before the write:
 * the peer may read and act on the bytes before the writer runs again, and a later stage
 * must not be stamped before the one that caused it. Stages, in order:
 *   dst: fault_read -> request_sent
 *   src: request_received -> page_queued -> page_sent
 *   dst: page_received -> page_placed */
#pragma once
#ifdef MIG_HAVE_SDT
#include <sys/sdt.h>
#define MIG_PROBE(name, block, offset) DTRACE_PROBE2(mig, name, block, offset)
#else
#define MIG_PROBE(name, block, offset) do { (void)(block); (void)(offset); } while (0)
#endif
