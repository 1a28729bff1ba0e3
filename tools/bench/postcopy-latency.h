/* Scenario postcopy-latency, shared between its files: the arms and rows, a run's
 * sample, the link's floor. postcopy-latency.c runs the arms, postcopy-latency-link.c
 * measures the link, postcopy-latency-trace.c attaches mig-faultlat --stages, and
 * postcopy-latency-report.c prints the table and writes the JSON. */
#pragma once
#include "tools/bench/faultview.h"
#include "tools/bench/runner.h"
#include <math.h>

#define PC_FLOOR_TRIPS "200"
#define PC_LAT_BUCKETS 24
#define PC_SRC_WORKLOAD "seq"             /* keeps dirtying: precopy cannot converge */
#define PC_DST_WORKLOAD "random,rate=0"   /* faults all over the guest, unthrottled */
#define PC_BACKENDS 2
/* One 2 MiB page at the bed's rate: what no fetch of a huge page can beat. */
#define PC_HUGE_AT_LINK_MS ((double)HUGEPAGE_BYTES * 8 / BENCH_NET_RATE_BPS * 1e3)

/* ARM_CHANNELS (only with --preempt-channels N > 1): preempt+break-huge over N urgent
 * channels, beside the same arm over one, in the same run. */
typedef enum { ARM_OFF, ARM_PREEMPT, ARM_BREAK_HUGE, ARM_CHANNELS, N_ARMS } PcArm;

typedef struct PcSample {
	double p50_us, p90_us, p99_us, max_us;   /* the destination's x-postcopy-latency for the page size */
	guint64 faults;                          /* its count */
	gint64 requests, src_requests;           /* x-postcopy-requests; the source's ram.postcopy-requests */
	gint64 downtime_ms, total_ms;
	gint64 postcopy_bytes, huge_drops;       /* the source's ram.postcopy-bytes, ram.x-break-huge-drops */
	guint64 checked, failed, units;          /* the destination's x-integrity */
	gint64 dist[PC_LAT_BUCKETS];             /* x-postcopy-request-latency-dist, all page sizes */
	BenchKernelLat k;                        /* x-fault-latency-bpf for the page size: the kernel's view */
	gboolean has_stages;                     /* a traced run: */
	BenchStages stages;                      /* what mig-faultlat --stages saw */
} PcSample;

typedef struct PcRow {
	guint bi;                   /* index in pc_backends */
	PcArm arm;
	GArray *samples;            /* PcSample, in run order */
	RowStatus status;
	char *error;
	gboolean traced;            /* the preempt arm again, with mig-faultlat --stages attached */
	gboolean untraced;          /* the preempt arm again, its destination without --trace-latency */
	gboolean tls;               /* the tls scenario: over TLS (bench_tls_enable) */
	guint vcpus;                /* a many-vCPU row (--vcpu-rows): its vCPUs; 0: --dst-vcpus */
	char name[24];              /* a many-vCPU row's arm, as printed */
} PcRow;

typedef struct PcFloor {
	guint count;                /* round trips; 0: not measured */
	double median_us, p10_us, p90_us, min_us, max_us;
} PcFloor;

typedef struct PcNet {
	const char *name;           /* "netns", "loopback" */
	gboolean bed;
	char *ns[2], *addr[2];      /* the bed's namespaces and addresses, for the report */
	RawSample raw;              /* the bed's rate check; bytes 0 when not measured */
	PcFloor floor[PC_BACKENDS]; /* by backend: 4K, 2M */
	char *error;                /* the bed, its rate check or the floor failed */
	guint preempt_channels;     /* x-preempt-channels of the ARM_CHANNELS rows */
	PcRow *rows[PC_BACKENDS][N_ARMS];   /* NULL: not in this run (--quick has no hugetlb) */
	PcRow *traced[PC_BACKENDS];         /* the stage breakdown's runs, out of the medians above */
	PcRow *untraced[PC_BACKENDS];       /* the preempt arm without the kernel tracer: what it costs */
	PcRow *many[PC_VCPU_ROWS_MAX];      /* 4K with --vcpu-rows vCPUs, the channels arm if any */
	guint nmany;
} PcNet;


/* One figure of a sample, for medians over a row's runs; NAN: the run lacks it. */
typedef double (*PcGet)(const PcSample *s);
static inline double get_p50(const PcSample *s) { return s->p50_us; }
static inline double get_p90(const PcSample *s) { return s->p90_us; }
static inline double get_p99(const PcSample *s) { return s->p99_us; }
static inline double get_faults(const PcSample *s) { return (double)s->faults; }
static inline double get_downtime(const PcSample *s) { return (double)s->downtime_ms; }
static inline double get_k_p50(const PcSample *s) { return s->k.ok && s->k.count > 0 ? s->k.p50_us : NAN; }
static inline double get_k_p90(const PcSample *s) { return s->k.ok && s->k.count > 0 ? s->k.p90_us : NAN; }
static inline double get_k_p99(const PcSample *s) { return s->k.ok && s->k.count > 0 ? s->k.p99_us : NAN; }
static inline double get_k_count(const PcSample *s) { return s->k.ok ? s->k.count : NAN; }

typedef struct PcBackend {
	const char *backend, *page, *cls;   /* --mem-backend, as printed, x-postcopy-latency class */
	gboolean huge;
} PcBackend;

extern const PcBackend pc_backends[PC_BACKENDS];

/* postcopy-latency.c */
const char *pc_arm_name(const PcRow *r);
PcRow *pc_row_new(guint bi, PcArm arm);
void pc_row_free(PcRow *r);
/* One migration of row's arm on net (the bed: net->bed with b->net set), verified, its
 * figures in s. */
gboolean pc_run(Bench *b, const PcNet *net, PcRow *row, guint64 guest, PcSample *s, GError **err);

/* postcopy-latency-link.c: the bed's rate check and the floor */
gboolean pc_bed_check(Bench *b, PcNet *net, GError **err);
gboolean pc_floor(Bench *b, PcNet *net, guint nback, GError **err);

/* postcopy-latency-trace.c: mig-faultlat --stages beside a run */
BenchChild *pc_stages_start(Bench *b, MigPair *p, GError **err);
gboolean pc_stages_finish(Bench *b, BenchChild *c, PcSample *s, GError **err);

/* postcopy-latency-report.c */
gboolean pc_ok(const PcRow *r);
void pc_print_net(Bench *b, const PcNet *net, guint nback, guint64 guest);
gboolean pc_write_json(Bench *b, const PcNet *nets, guint nnets, guint nback, guint64 guest, GError **err);
