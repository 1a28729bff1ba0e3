/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* Getting faultlat.bpf.c running: choose the method the kernel allows, fill in the
 * knobs, attach, and read the histograms back. Negative errno everywhere. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/faultlat.h"

struct faultlat_bpf;

enum fl_method {
	FL_METHOD_AUTO,		/* fentry if it loads and attaches, else tracepoints */
	FL_METHOD_FENTRY,
	FL_METHOD_TRACEPOINTS,	/* TP_BTF if it loads and attaches, else TP_CLASSIC */
	/* The tracepoint method with its page fault programs on BTF raw
	 * tracepoints, or on the classic (perf) ones, which cost more per event. */
	FL_METHOD_TP_BTF,
	FL_METHOD_TP_CLASSIC,
};

struct fl_config {
	pid_t tgid;
	pid_t tid;		/* 0: all threads of tgid */
	uint64_t min_ns;	/* shorter waits are not recorded */
	enum fl_method method;
	bool verbose;		/* libbpf's debug output, and why fentry was given up */
	bool hooks_only;	/* attach everything, record nothing: the hooks' own cost */
};

/* "fentry" / "tracepoints (tp_btf)" / ...: what the tool prints after "method: ". */
const char *fl_method_desc(enum fl_method m);

/* Opens, loads and attaches; *used says which method is running: FENTRY, TP_BTF or
 * TP_CLASSIC. */
int fl_load(const struct fl_config *cfg, struct faultlat_bpf **skel, enum fl_method *used);
void fl_unload(struct faultlat_bpf *skel);

/* The histogram of one page size, summed over CPUs. */
int fl_read_hist(struct faultlat_bpf *skel, enum fl_page_size ps, struct fl_hist *out);
/* The same waits ended at their wakeup instead of their thread's next run (faultlat.h,
 * FL_WOKEN); empty with the fentry method, which sees no wakeup. */
int fl_read_hist_woken(struct faultlat_bpf *skel, enum fl_page_size ps, struct fl_hist *out);
/* Zeroes every histogram (interval mode). Waits recorded meanwhile may be lost. */
int fl_reset_hists(struct faultlat_bpf *skel);

/* Text range [start, end) of a kernel function, from /proc/kallsyms. */
int fl_kallsyms_range(const char *name, uint64_t *start, uint64_t *end);

/* Mounts tracefs at /sys/kernel/tracing unless a tracefs is reachable already. */
int fl_ensure_tracefs(void);
