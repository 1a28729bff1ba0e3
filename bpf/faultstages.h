/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* What faultstages.bpf.c and mig-faultlat --stages share: the stages of a postcopy page
 * request (engine/probes.h, USDT provider "mig"), the key a request is matched by across
 * the source and destination processes, and the record of one finished request. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* In the order a request passes them; each is a USDT probe of that name. */
enum fs_stage {
	FS_FAULT_READ,		/* dst: the fault thread read the fault */
	FS_REQUEST_SENT,	/* dst: the request is about to be written to the return path */
	FS_REQUEST_RECEIVED,	/* src: the return-path thread parsed it */
	FS_PAGE_QUEUED,		/* src: the page is taken for an urgent send */
	FS_PAGE_SENT,		/* src: the urgent copy is about to be written */
	FS_PAGE_RECEIVED,	/* dst: a copy of the page was read */
	FS_PAGE_PLACED,		/* dst: UFFDIO_COPY/ZEROPAGE returned */
	FS_NR_STAGES,
};

#define FS_NR_HOPS	(FS_NR_STAGES - 1)
#define FS_ALL_STAGES	((1U << FS_NR_STAGES) - 1)

/* Which process fires a stage's probe. */
static inline int fs_stage_on_source(enum fs_stage s)
{
	return s == FS_REQUEST_RECEIVED || s == FS_PAGE_QUEUED || s == FS_PAGE_SENT;
}

/* The probe name of a stage. */
static inline const char *fs_stage_name(enum fs_stage s)
{
	switch (s) {
	case FS_FAULT_READ:
		return "fault_read";
	case FS_REQUEST_SENT:
		return "request_sent";
	case FS_REQUEST_RECEIVED:
		return "request_received";
	case FS_PAGE_QUEUED:
		return "page_queued";
	case FS_PAGE_SENT:
		return "page_sent";
	case FS_PAGE_RECEIVED:
		return "page_received";
	case FS_PAGE_PLACED:
		return "page_placed";
	default:
		return "?";
	}
}

/* A page is requested at most once per migration, so (block, host page offset) names a
 * request. Both are the probes' arguments. */
struct fs_key {
	__u64 block;
	__u64 offset;
};

/* One request: bpf_ktime_get_ns() at each stage it passed, 0 for the ones it did not. */
struct fs_record {
	struct fs_key key;
	__u64 ts[FS_NR_STAGES];
	__u32 nstamped;		/* how many of ts[] are set */
	__u32 pad;
};

/* Counters in the program's .bss: probe hits per stage, and what was lost. */
#define FS_CNT_LOST		FS_NR_STAGES		/* ring buffer full: a record dropped */
#define FS_CNT_MAP_FULL		(FS_NR_STAGES + 1)	/* no room to open a request */
#define FS_CNT_REFAULT		(FS_NR_STAGES + 2)	/* fault_read of a request already open */
#define FS_NR_COUNTERS		(FS_NR_STAGES + 3)
