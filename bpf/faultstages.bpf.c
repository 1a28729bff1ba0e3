// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* faultstages: where a postcopy page request spends its time, hop by hop.
 *
 * migd fires a USDT probe (provider "mig", args block index and host page offset) at
 * every stage of a request (bpf/faultstages.h). The loader attaches one program per
 * stage, each only in the process that fires it: the destination's fault_read,
 * request_sent, page_received, page_placed and the source's request_received,
 * page_queued, page_sent. Both processes run on this host, so bpf_ktime_get_ns() is one
 * clock for all of them.
 *
 * fault_read opens a request in `chains`, keyed by (block, offset); later stages stamp
 * it if it is open, each stage only the first time. A request is finished when every
 * stage has stamped it, in whatever order: the record goes to userspace through the ring
 * buffer and the entry is deleted. The order of the probe hits is not to be relied on:
 * on loopback the destination may place a page before the source's send() has returned,
 * and a bulk copy of the page already on its way may arrive before the urgent one is
 * sent, so page_placed cannot be what closes a request. The probes that precede a
 * write fire before it, so no stage is stamped after one it caused. Requests
 * that never pass every stage (the source skips a page the bulk lane already sent)
 * stay in the map, where userspace finds them at the end; there are at most as many as
 * pages requested. Events of pages nobody requested (every bulk page passes
 * page_received/page_placed) find no entry and cost one hash lookup. Percentiles are
 * left to userspace: hops across processes can be negative, which a histogram of
 * unsigned buckets cannot hold.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
#include "faultstages.h"

#define FS_EEXIST	17

/* Requests in flight; NO_PREALLOC: a few in flight is the rule, so the size costs only
 * when that many are really open. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 17);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fs_key);
	__type(value, struct fs_record);
} chains SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} done SEC(".maps");

__u64 counters[FS_NR_COUNTERS];
/* Set by userspace (the .bss is mmapped) to end recording at once: detaching the
 * uprobes takes about 0.1 s per probe site. */
__u32 stopped;

static __always_inline void count(int which)
{
	__sync_fetch_and_add(&counters[which], 1);
}

static __always_inline int stage(enum fs_stage s, long block, long offset)
{
	struct fs_key key = { .block = (__u64)block, .offset = (__u64)offset };
	__u64 now = bpf_ktime_get_ns();
	struct fs_record *r, *out;
	long err;

	if (stopped)
		return 0;
	count(s);
	if (s == FS_FAULT_READ) {
		struct fs_record fresh = { .key = key };

		/* Later faults on a page already asked for (another thread, or the same
		 * one retrying) keep the first: that is when the request began. */
		fresh.ts[FS_FAULT_READ] = now;
		fresh.nstamped = 1;
		err = bpf_map_update_elem(&chains, &key, &fresh, BPF_NOEXIST);
		if (err == -FS_EEXIST)
			count(FS_CNT_REFAULT);
		else if (err)
			count(FS_CNT_MAP_FULL);
		return 0;
	}
	r = bpf_map_lookup_elem(&chains, &key);
	if (!r)
		return 0;
	/* Two copies of a page (urgent and bulk) can be received at once on two
	 * threads: only the first stamp counts, and only its writer counts it. */
	if (__sync_val_compare_and_swap(&r->ts[s], 0, now))
		return 0;
	if (__sync_add_and_fetch(&r->nstamped, 1) != FS_NR_STAGES)
		return 0;
	out = bpf_ringbuf_reserve(&done, sizeof(*out), 0);
	if (out) {
		*out = *r;
		bpf_ringbuf_submit(out, 0);
	} else {
		count(FS_CNT_LOST);
	}
	bpf_map_delete_elem(&chains, &key);
	return 0;
}

SEC("usdt")
int BPF_USDT(fault_read, long block, long offset)
{
	return stage(FS_FAULT_READ, block, offset);
}

SEC("usdt")
int BPF_USDT(request_sent, long block, long offset)
{
	return stage(FS_REQUEST_SENT, block, offset);
}

SEC("usdt")
int BPF_USDT(request_received, long block, long offset)
{
	return stage(FS_REQUEST_RECEIVED, block, offset);
}

SEC("usdt")
int BPF_USDT(page_queued, long block, long offset)
{
	return stage(FS_PAGE_QUEUED, block, offset);
}

SEC("usdt")
int BPF_USDT(page_sent, long block, long offset)
{
	return stage(FS_PAGE_SENT, block, offset);
}

SEC("usdt")
int BPF_USDT(page_received, long block, long offset)
{
	return stage(FS_PAGE_RECEIVED, block, offset);
}

SEC("usdt")
int BPF_USDT(page_placed, long block, long offset)
{
	return stage(FS_PAGE_PLACED, block, offset);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
