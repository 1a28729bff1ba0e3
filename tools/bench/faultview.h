/* The BPF tools' view of one postcopy run, for migbench postcopy-latency: the kernel's
 * fault waits from the destination's x-fault-latency-bpf (migd --trace-latency), and the
 * per-hop breakdown that `mig-faultlat --stages --json` prints. Parsing and medians
 * only, so the unit tests reach them without BPF. docs/benchmarks.md has the format. */
#pragma once
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>

#define BENCH_STAGE_HOPS 6      /* fault_read -> ... -> page_placed: 7 stages, 6 hops */

/* x-fault-latency-bpf for one page size class. */
typedef struct BenchKernelLat {
	gboolean ok;                /* FALSE: the field is missing or holds an error */
	double count;               /* waits of this class; 0 when it had none */
	double p50_us, p90_us, p99_us, max_us;   /* NAN when count is 0 */
} BenchKernelLat;

/* Reads query-migrate's x-fault-latency-bpf for class cls ("4k", "2m"). FALSE with
 * *why (allocated) when there is no figure: no such field, or its "error". */
gboolean bench_klat_parse(JsonObject *query_migrate, const char *cls, BenchKernelLat *out, char **why);

/* The summary of mig-faultlat --stages --json (one object). */
typedef struct BenchStages {
	double complete, incomplete, unfinished;           /* requests */
	char hop_name[BENCH_STAGE_HOPS][48];               /* "fault_read -> request_sent" */
	double hop_p50_us[BENCH_STAGE_HOPS];               /* over the complete requests */
	double total_p50_us, sum_hop_p50_us;               /* fault_read -> page_placed */
	double typical_count, typical_total_us;            /* the requests from p40 to p60 of the total */
	double typical_hop_us[BENCH_STAGE_HOPS];           /* their mean per hop: adds up to typical_total_us */
} BenchStages;

/* Parses the tool's stdout. FALSE with *err when it is not the expected object or no
 * request passed every stage. */
gboolean bench_stages_parse(const char *text, BenchStages *out, GError **err);

/* Each figure's median over n runs (hop names from the first). n > 0. */
void bench_stages_median(const BenchStages *v, guint n, BenchStages *out);

/* The breakdown as a small table, every line starting with indent. */
void bench_stages_print(FILE *f, const BenchStages *s, const char *indent);

/* The summary as a JSON object (the builder is inside an object, after a member name). */
void bench_stages_json(JsonBuilder *j, const BenchStages *s);
