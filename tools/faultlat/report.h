/* mig-faultlat's output: percentiles from the fine histogram, the log2 display
 * histogram, as text or JSON. No BPF here, so the unit tests can link it alone. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bpf/faultlat.h"

struct fl_summary {
	uint64_t count;
	double p50_us;
	double p90_us;
	double p99_us;
	double max_us;
	double mean_us;
};

struct fl_report {
	pid_t pid;
	const char *method;		/* "fentry" or "tracepoints" */
	double seconds;			/* length of the period the histograms cover */
	struct fl_hist hist[FL_NR_PS];
};

const char *fl_page_size_name(enum fl_page_size ps);

/* Nearest-rank percentile p (0 < p <= 100), in ns: the midpoint of the bucket holding
 * that rank, never above the largest wait seen. 0 when the histogram is empty. */
double fl_percentile_ns(const struct fl_hist *h, double p);

void fl_summarize(const struct fl_hist *h, struct fl_summary *s);

void fl_report_text(FILE *out, const struct fl_report *r);
/* One JSON object on one line. */
void fl_report_json(FILE *out, const struct fl_report *r);
