/* What every migbench scenario shares (docs/benchmarks.md): the run's state, the
 * samples and row statuses, the helpers that start, watch and stop the processes a
 * scenario measures (runner.c: children, waits, huge pages; raw.c: the mig-rawxfer
 * baseline; pair.c: a migd pair over QMP) and those that write its report (report.c).
 *
 * A scenario is one file defining a BenchScenario; migbench.c lists them. Every wait is
 * bounded, and every helper that fails says why in a BENCH_ERROR whose code becomes the
 * row's status. */
#pragma once
#include "tools/bench/netns.h"
#include "tools/bench/proc.h"
#include "tools/qmpc/qmpc.h"
#include "tools/bench/stats.h"
#include <json-glib/json-glib.h>

#define GiB ((guint64)1 << 30)
#define HUGEPAGE_BYTES ((guint64)2 << 20)

/* Bounds of every wait, in ms. Generous: the machine is shared, and a 2 GiB
 * --mem-prealloc destination takes seconds before it greets. */
#define T_QMP_READY_MS 120000
#define T_QMP_CMD_MS 10000
#define T_PORT_MS 10000
#define T_RAW_READY_MS 120000   /* mig-rawxfer recv --distinct touches the whole size first */
#define T_MIGRATE_MS 300000
#define T_INTEGRITY_MS 60000
#define T_QUIT_MS 10000
#define T_RAW_MS 300000
#define POLL_MS 50

#define BENCH_ERROR (bench_error_quark())
GQuark bench_error_quark(void);

typedef enum {
	BENCH_ERROR_FAILED,       /* a real failure: the row is an error row */
	BENCH_ERROR_SKIPPED,      /* the host lacks what the row needs (huge pages) */
	BENCH_ERROR_INTERRUPTED,
} BenchError;

typedef enum { ROW_OK, ROW_ERROR, ROW_SKIPPED, ROW_INTERRUPTED } RowStatus;

extern const char *const bench_status_names[];   /* by RowStatus, as printed and in the JSON */

typedef struct RawSample {
	guint64 bytes;
	double seconds, gbps;
} RawSample;

typedef struct MigSample {
	double gbps;                /* ram.total / (total-time - setup-time), 1e9 bytes/s */
	gint64 total_ms, setup_ms, downtime_ms;
	gint64 cpu_ms;              /* x-migration-thread-cpu-ms; -1 when absent */
	guint64 ram_total, ram_transferred;
	guint64 checked, failed, units;   /* the destination's x-integrity */
} MigSample;

/* What mig-rawxfer sends from and receives into. */
typedef enum {
	RAW_HOT,                    /* one reused 512 KiB buffer per connection, cache-hot */
	RAW_DISTINCT,               /* the whole size, pre-touched, each byte once (--distinct) */
	RAW_DISTINCT_HUGE,          /* the same in 2M huge pages (--distinct --hugetlb) */
} RawMem;

#define PC_DST_VCPUS 2              /* postcopy-latency: the default of --dst-vcpus */
#define PC_VCPU_ROWS_MAX 4          /* postcopy-latency: most --vcpu-rows values */
#define DS_SIZES_MAX 8              /* downtime-size: most --sizes values */
#define DS_BUSY "seq,rate=256M"     /* downtime-size: --workload busy */

typedef struct Bench {
	char *migd, *rawxfer;       /* the binaries under test */
	char *tcp_cc;               /* --tcp-congestion: every migd's x-tcp-congestion; NULL: migd's default */
	char *raw_cc;               /* "--congestion=ALGO": mig-rawxfer's TCP as mig's channels */
	char *faultlat;             /* mig-faultlat beside them; NULL when not built */
	char *tmpdir;
	char *command;              /* our command line, for the JSON */
	const char *scenario;
	const char *json_path;
	int runs;
	gboolean quick, keep_tmp;
	gboolean unplotted;         /* set by a scenario tools/bench/plot has no plots of: --json is not plotted */
	guint preempt_channels;     /* postcopy-latency: x-preempt-channels of ARM_CHANNELS (1: no such arm) */
	guint dst_vcpus;            /* postcopy-latency: the destination's faulting vCPUs */
	guint rt_priority;          /* postcopy-latency: x-postcopy-rt-priority on both sides; file: on the lazy restore (0: fair) */
	guint vcpu_rows[PC_VCPU_ROWS_MAX];   /* postcopy-latency: --vcpu-rows, the many-vCPU rows' counts */
	guint n_vcpu_rows;
	guint64 guest_bytes;        /* precopy-throughput, file: --guest-mib; 0: the scenario's size */
	const char *file_dir;       /* file: --dir, where the saved file goes (a real file system) */
	gboolean lazy_only;         /* file: --lazy-only, no rows, only the lazy restore */
	guint cut_ms;               /* postcopy-recovery: the link is cut this long into postcopy-active */
	guint outage_s;             /* postcopy-recovery: and mended this long after */
	const char *cells;          /* faults: --cells GLOB, only the cells FAULT@PHASE it matches */
	guint ds_sizes[DS_SIZES_MAX];   /* downtime-size: --sizes, GiB */
	guint n_ds_sizes;           /* 0: the scenario's sizes */
	const char *ds_workload;    /* downtime-size: --workload, the source's; NULL: idle */
	guint64 ds_used;            /* downtime-size: --used, what every row's source writes; 0: all that fits */
	const char *auto_rows;      /* --rows (comma list; NULL: all): postcopy-auto's workloads, downtime-size's pages */
	BenchProcs *procs;
	GPtrArray *notes;           /* char *: what the reader of the table must know */
	guint seq;                  /* numbers per-run file names */
	guint64 huge_added;         /* 2M huge pages we added to nr_hugepages */
	BenchNet *net;              /* the netns bed while a scenario uses it */
	char *tls_dir;              /* tls: the openssl-made credentials, QEMU's file names */
} Bench;

typedef struct BenchScenario {
	const char *name;
	const char *summary;        /* one line of usage */
	int (*run)(Bench *b);       /* the exit status: 0, 1 a row failed, 130 interrupted */
	int runs;                   /* runs per cell unless --runs says; 0: 3 */
} BenchScenario;

/* the scenarios, one file each */
extern const BenchScenario bench_precopy_throughput, bench_postcopy_latency, bench_device_downtime, bench_file,
	bench_postcopy_recovery, bench_postcopy_auto, bench_tls, bench_faults, bench_downtime_size;

/* ---- runner.c ---- */

/* A note for the reader of the table, printed now and once in the report. */
void bench_note(Bench *b, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* TRUE, with err, once a signal asked us to stop. */
gboolean bench_interrupted(Bench *b, GError **err);
/* Adds the child's fate and last stderr line to an error about it. */
void bench_child_error(Bench *b, BenchChild *c, GError **err, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
RowStatus bench_status_of(const GError *e);

/* Members of a QMP reply, tolerant of their absence. */
gint64 bench_obj_int(JsonObject *o, const char *name, gint64 dflt);
const char *bench_obj_str(JsonObject *o, const char *name);
JsonObject *bench_obj_obj(JsonObject *o, const char *name);
JsonObject *bench_query_migrate(QmpClient *q, GError **err);

gboolean bench_huge_ensure(Bench *b, guint64 pages, GError **err);
void bench_huge_restore(Bench *b);

/* Starts argv on the host (side < 0) or inside the bed's namespace for side. */
BenchChild *bench_spawn_on(Bench *b, int side, const char *name, const char *const *argv, GError **err);
const char *bench_dst_host(Bench *b, gboolean bed);
char **bench_wait_lines(Bench *b, BenchChild *c, guint lines, int timeout_ms, GError **err);
gboolean bench_wait_exit_ok(Bench *b, BenchChild *c, int timeout_ms, GError **err);
gboolean bench_wait_err_text(Bench *b, BenchChild *c, const char *text, int timeout_ms, GError **err);
JsonObject *bench_line_object(JsonParser *p, const char *line, const char *who, GError **err);

/* ---- raw.c: the mig-rawxfer baseline ---- */

char *bench_raw_congestion(const Bench *b);
gboolean bench_raw_run(Bench *b, gboolean bed, guint conns, guint64 bytes, RawMem mem, RawSample *out,
		       GError **err);

/* ---- pair.c: two migd over QMP ---- */

typedef struct MigPair {
	BenchChild *src, *dst;
	QmpClient *qsrc, *qdst;
	char *sock_src, *sock_dst;
} MigPair;

/* One migd to start. */
typedef struct MigdSpec {
	const char *backend;        /* --mem-backend */
	gboolean huge;              /* --hugepage-size 2M */
	guint64 guest_bytes;
	const char *workload;       /* --workload; NULL: none given */
	guint vcpus;                /* --vcpus; 0: none given */
	guint seed;                 /* --seed; 0: none given */
	gboolean prealloc;          /* --mem-prealloc */
	gboolean thp;               /* --mem-thp */
	gboolean dirty_log;         /* --dirty-log (a source's dirty tracking by sync uffd-wp faults) */
	const char *incoming;       /* --incoming URI of a destination; NULL for a source */
	gboolean trace_latency;     /* --trace-latency: x-fault-latency-bpf in query-migrate */
	int side;                   /* -1 on the host, else the BenchNetSide of the bed to run in */
	const char *const *devices; /* --device SPEC each; NULL-terminated, or NULL */
} MigdSpec;

gboolean bench_pair_start(Bench *b, const MigdSpec *src, const MigdSpec *dst, MigPair *p, GError **err);
gboolean bench_migd_start(Bench *b, const MigdSpec *m, MigPair *p, GError **err);
void bench_pair_stop(Bench *b, MigPair *p);
gboolean bench_qmp_run(QmpClient *q, const char *side, const char *cmd, const char *args, GError **err);
gboolean bench_set_multifd(QmpClient *q, const char *side, guint channels, GError **err);
char *bench_dst_port(Bench *b, MigPair *p, GError **err);
JsonObject *bench_wait_source(Bench *b, MigPair *p, GError **err);
/* A completed migration's figures from the source's last query-migrate. */
gboolean bench_mig_sample(JsonObject *o, MigSample *s, GError **err);
gboolean bench_wait_integrity(Bench *b, MigPair *p, MigSample *s, GError **err);

/* ---- tls.c ---- */

/* TLS on the pair before it migrates: x509 credentials from b->tls_dir (verify-peer
 * on both ends), the source checking the server's certificate as "localhost". */
gboolean bench_tls_enable(Bench *b, MigPair *p, GError **err);

/* ---- report.c ---- */

char *bench_fmt_num(double v, int decimals);
char *bench_fmt_size(guint64 bytes);        /* whole GiB, else MiB */
void bench_json_double(JsonBuilder *j, const char *name, double v);   /* NAN: null */
void bench_json_int(JsonBuilder *j, const char *name, gint64 v);
void bench_json_str(JsonBuilder *j, const char *name, const char *v); /* NULL: null */
void bench_json_status(JsonBuilder *j, RowStatus status, const char *error);
void bench_json_head(Bench *b, JsonBuilder *j, guint64 guest_bytes);
gboolean bench_json_save(Bench *b, JsonBuilder *j, GError **err);
