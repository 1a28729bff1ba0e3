/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* What faultlat.bpf.c and mig-faultlat share: the histogram a wait lands in, the math
 * that picks its bucket, and the userfaultfd ioctl numbers. Keeping the bucket math here,
 * as inline functions both sides compile, means the tool reads buckets back exactly as
 * the kernel side filled them. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Page sizes a wait is filed under (the faulting VMA's, else the resolving ioctl's). */
enum fl_page_size {
	FL_PS_4K,
	FL_PS_2M,
	FL_PS_1G,
	FL_PS_OTHER,
	FL_NR_PS,
};

/* The hists map holds two histograms per page size: key ps, a wait until its thread ran
 * again (what the guest lost), and key FL_WOKEN + ps, the same wait until the wakeup
 * (tracepoint method only): the part the handler controls, without the woken thread's
 * wait for a CPU, which on a loaded host can be longer than the rest. */
#define FL_WOKEN	FL_NR_PS
#define FL_NR_HISTS	(2 * FL_NR_PS)

/* runqlat-style display histogram: slot k holds [2^k, 2^(k+1)) µs, slot 0 also 0 µs. */
#define FL_LOG2_SLOTS	32

/* Percentiles need more than factor-2 buckets: each power of two of nanoseconds is split
 * into 2^FL_SUB_BITS linear sub-buckets, so a bucket is at most 1/32 of its value wide
 * and its midpoint is within 1.6 % of anything in it. */
#define FL_SUB_BITS	5
#define FL_SUB		(1U << FL_SUB_BITS)
#define FL_MAX_EXP	40	/* 2^41 ns (~37 min) and longer share the last bucket */
#define FL_FINE_SLOTS	((FL_MAX_EXP - FL_SUB_BITS + 2) * FL_SUB)

struct fl_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u32 log2_us[FL_LOG2_SLOTS];
	__u32 fine[FL_FINE_SLOTS];
};

/* Kernel stack depth searched for handle_userfault() when a wait has no fault address. */
#define FL_STACK_DEPTH	32

/* Branch-only floor(log2(v)) (0 for v == 0): the verifier has nothing to unroll. */
static inline __u32 fl_log2_32(__u32 v)
{
	__u32 r, shift;

	r = (__u32)(v > 0xFFFF) << 4;
	v >>= r;
	shift = (__u32)(v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (__u32)(v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (__u32)(v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (v >> 1);
}

static inline __u32 fl_log2(__u64 v)
{
	__u32 hi = (__u32)(v >> 32);

	return hi ? fl_log2_32(hi) + 32 : fl_log2_32((__u32)v);
}

static inline __u32 fl_log2_slot(__u64 ns)
{
	__u32 slot = fl_log2(ns / 1000);

	return slot < FL_LOG2_SLOTS ? slot : FL_LOG2_SLOTS - 1;
}

/* Values below FL_SUB get a bucket each; above, bucket = (octave, top FL_SUB_BITS bits
 * after the leading one). */
static inline __u32 fl_fine_slot(__u64 ns)
{
	__u32 e;

	if (ns < FL_SUB)
		return (__u32)ns;
	e = fl_log2(ns);
	if (e > FL_MAX_EXP)
		return FL_FINE_SLOTS - 1;
	return (e - FL_SUB_BITS + 1) * FL_SUB + (__u32)((ns >> (e - FL_SUB_BITS)) & (FL_SUB - 1));
}

/* Smallest value that lands in `slot`, and the slot's width. */
static inline __u64 fl_fine_lo(__u32 slot)
{
	__u32 e;

	if (slot < FL_SUB)
		return slot;
	e = slot / FL_SUB + FL_SUB_BITS - 1;
	return (__u64)(FL_SUB + slot % FL_SUB) << (e - FL_SUB_BITS);
}

static inline __u64 fl_fine_width(__u32 slot)
{
	return slot < FL_SUB ? 1 : 1ULL << (slot / FL_SUB - 1);
}

static inline enum fl_page_size fl_page_size_of(__u32 shift)
{
	switch (shift) {
	case 12:
		return FL_PS_4K;
	case 21:
		return FL_PS_2M;
	case 30:
		return FL_PS_1G;
	default:
		return FL_PS_OTHER;
	}
}

/* The userfaultfd ioctls that resolve a wait (include/uapi/linux/userfaultfd.h): type
 * 0xAA, which no other driver uses, so the command alone says "this is a uffd". The
 * loader checks them against the uAPI header at compile time. */
#define FL_IOC(dir, nr, size)	(((__u32)(dir) << 30) | ((__u32)(size) << 16) | (0xAAU << 8) | (nr))
#define FL_UFFDIO_WAKE		FL_IOC(2, 0x02, 16)	/* struct uffdio_range */
#define FL_UFFDIO_COPY		FL_IOC(3, 0x03, 40)	/* dst, src, len, ... */
#define FL_UFFDIO_ZEROPAGE	FL_IOC(3, 0x04, 32)	/* range first */
#define FL_UFFDIO_MOVE		FL_IOC(3, 0x05, 40)	/* dst, src, len, ... */
#define FL_UFFDIO_WRITEPROTECT	FL_IOC(3, 0x06, 24)	/* range first */
#define FL_UFFDIO_CONTINUE	FL_IOC(3, 0x07, 32)	/* range first */
#define FL_UFFDIO_POISON	FL_IOC(3, 0x08, 32)	/* range first */

/* x86_64's ioctl(2) number, which the tp_btf programs filter system calls on. */
#define FL_NR_IOCTL		16
