/* mig-faultlat --stages: from the per-request stage timestamps the BPF side hands over
 * (bpf/faultstages.h) to the per-hop breakdown, as text or JSON. No BPF here, so the unit
 * tests can link it alone. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bpf/faultstages.h"

/* A growing array of records. */
struct fs_records {
	struct fs_record *v;
	size_t n;
	size_t cap;
};

/* 0, or -ENOMEM (the record is dropped). */
int fs_records_add(struct fs_records *rs, const struct fs_record *r);
void fs_records_free(struct fs_records *rs);

/* Nearest-rank percentiles of one hop, in µs; hops across processes can be negative. */
struct fs_dist {
	uint64_t count;
	double p50_us;
	double p90_us;
	double p99_us;
	double min_us;
	double max_us;
	double mean_us;
};

#define FS_NR_MASKS	(1U << FS_NR_STAGES)

struct fs_summary {
	uint64_t complete;	/* placed from the urgent copy, every stage seen: these
				 * make the tables */
	uint64_t early;		/* every stage seen, but the copy placed was read before
				 * the urgent one left (page_received before page_sent):
				 * another copy (bulk) answered the fault */
	uint64_t incomplete;	/* placed, some stage not seen */
	uint64_t unfinished;	/* never placed while traced */
	/* Incomplete and unfinished requests by the set of stages they were seen at
	 * (bit s: stage s). */
	uint64_t by_seen[FS_NR_MASKS];
	struct fs_dist hop[FS_NR_HOPS];		/* stage h -> h + 1, complete requests */
	struct fs_dist total;			/* fault_read -> page_placed, complete */
	struct fs_dist total_placed;		/* the same over every placed request */
	double sum_hop_p50_us;
	/* Percentiles do not add up, means do: over the complete requests whose total lies
	 * between its p40 and p60, the mean of each hop, which sum to their mean total.
	 * Where the typical request spends its time. */
	struct {
		uint64_t count;
		double lo_us, hi_us;		/* the total's p40 and p60 */
		double hop_mean_us[FS_NR_HOPS];
		double total_mean_us;
	} typical;
};

struct fs_report {
	pid_t src;
	pid_t dst;
	const char *method;
	double seconds;
	uint64_t counters[FS_NR_COUNTERS];
	struct fs_summary sum;
};

/* The stages a record was seen at, as a mask (bit s: stage s). */
unsigned int fs_seen_mask(const struct fs_record *r);

/* placed: requests that reached page_placed; open: those that did not. 0 or -ENOMEM. */
int fs_summarize(const struct fs_records *placed, const struct fs_records *open,
		 struct fs_summary *out);

/* Nearest-rank percentile p (0 < p <= 100) of n sorted values. */
int64_t fs_percentile(const int64_t *sorted, size_t n, double p);

void fs_report_text(FILE *out, const struct fs_report *r);
/* One JSON object on one line. */
void fs_report_json(FILE *out, const struct fs_report *r);
