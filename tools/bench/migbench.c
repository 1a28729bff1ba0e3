/* migbench: mig's benchmark runner (docs/benchmarks.md).
 *
 *   migbench SCENARIO [--json FILE] [--runs N] [--build DIR] [--quick] [--keep-tmp] [--tcp-congestion ALGO]
 *            [--preempt-channels N] [--dst-vcpus N] [--vcpu-rows N,...]   (postcopy-latency)
 *            [--guest-mib N]   (precopy-throughput, file, tls, postcopy-auto)
 *            [--dir DIR] [--lazy-only]                (file)
 *            [--cut-ms N] [--outage-s N]              (postcopy-recovery)
 *            [--cells GLOB]                           (faults)
 *            [--sizes N,...] [--workload SPEC] [--used SIZE]   (downtime-size)
 *            [--rows NAME,...]                        (postcopy-auto, downtime-size)
 *
 * It starts every process it measures (migd pairs, mig-rawxfer pairs) in a temporary
 * directory, on the host or inside its shaped netns bed (tools/bench/netns.h), waits for
 * each with a bounded wait, and kills and reaps them on every exit path, SIGINT
 * included; then it deletes the bed. Each scenario prints a table, and --json writes
 * every per-run sample next to the medians. Each scenario is a file of its own, listed
 * in the table below; what they share is runner.h.
 *
 * It runs against the migd it was built with: a parameter or field migd lacks is an
 * error, not a row to skip.
 *
 * Exit status: 0 every row measured (rows the host cannot run, "skipped", are reported
 * but do not fail), 1 some row failed, 2 usage or setup error, 130 interrupted. */
#include "tools/bench/runner.h"
#include "channels/io.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const BenchScenario *const scenarios[] = {
	&bench_precopy_throughput,
	&bench_postcopy_latency,
	&bench_device_downtime,
	&bench_file,
	&bench_postcopy_recovery,
	&bench_postcopy_auto,
	&bench_tls,
	&bench_faults,
	&bench_downtime_size,
};

static const BenchScenario *find_scenario(const char *name)
{
	for (gsize i = 0; name && i < G_N_ELEMENTS(scenarios); i++)
		if (!strcmp(scenarios[i]->name, name))
			return scenarios[i];
	return NULL;
}

static int usage(const char *why)
{
	if (why)
		g_printerr("migbench: %s\n", why);
	g_printerr("usage: migbench SCENARIO [--json FILE] [--runs N] [--build DIR] [--quick] [--keep-tmp] [--tcp-congestion ALGO]\n"
		   "                [--preempt-channels N] [--dst-vcpus N] [--vcpu-rows N,...]   (postcopy-latency)\n"
		   "                [--guest-mib N]   (precopy-throughput, file, tls, postcopy-auto)\n"
		   "                [--dir DIR] [--lazy-only]                (file)\n"
		   "                [--cut-ms N] [--outage-s N]              (postcopy-recovery)\n"
		   "                [--cells GLOB]                           (faults)\n"
		   "                [--sizes N,...] [--workload SPEC] [--used SIZE]   (downtime-size)\n"
		   "                [--rows NAME,...]                        (postcopy-auto, downtime-size)\n"
		   "scenarios:\n");
	for (gsize i = 0; i < G_N_ELEMENTS(scenarios); i++)
		g_printerr("  %-20s %s\n", scenarios[i]->name, scenarios[i]->summary);
	return 2;
}

/* DIR holding migd and mig-rawxfer: --build (a build root or its tools/), or where we are. */
static gboolean find_binaries(Bench *b, const char *build, GError **err)
{
	g_autofree char *self = NULL, *dir = NULL;

	if (!build) {
		self = g_file_read_link("/proc/self/exe", err);
		if (!self)
			return FALSE;
		build = dir = g_path_get_dirname(self);
	}
	for (int i = 0; i < 2; i++) {
		g_autofree char *d = i ? g_build_filename(build, "tools", NULL) : g_strdup(build);
		g_autofree char *migd = g_build_filename(d, "migd", NULL);
		g_autofree char *raw = g_build_filename(d, "mig-rawxfer", NULL);

		if (g_file_test(migd, G_FILE_TEST_IS_EXECUTABLE) && g_file_test(raw, G_FILE_TEST_IS_EXECUTABLE)) {
			g_autofree char *fl = g_build_filename(d, "mig-faultlat", NULL);

			if (g_file_test(fl, G_FILE_TEST_IS_EXECUTABLE))
				b->faultlat = g_steal_pointer(&fl);
			b->migd = g_steal_pointer(&migd);
			b->rawxfer = g_steal_pointer(&raw);
			b->raw_cc = bench_raw_congestion(b);
			return TRUE;
		}
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "no migd and mig-rawxfer in %s or %s/tools", build, build);
	return FALSE;
}

/* Signals are taken by this thread alone (sigwait): it kills the children, and the main
 * thread, whose every wait is bounded and watches them, unwinds and reaps. */
static gpointer signal_thread(gpointer opaque)
{
	Bench *b = opaque;
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigwait(&set, &sig);
	if (sig != SIGUSR1) {
		g_printerr("migbench: %s: killing the processes under test\n", g_strsignal(sig));
		bench_procs_interrupt(b->procs);
	}
	return NULL;
}

static void remove_tmpdir(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *f = g_build_filename(path, name, NULL);

		if (unlink(f) < 0 && errno == EISDIR)
			remove_tmpdir(f);   /* a scenario's own directory (tls: its credentials) */
	}
	rmdir(path);
}

static void bench_clear(Bench *b)
{
	g_free(b->migd);
	g_free(b->rawxfer);
	g_free(b->raw_cc);
	g_free(b->tcp_cc);
	g_free(b->faultlat);
	g_free(b->tmpdir);
	g_free(b->tls_dir);
	g_free(b->command);
	g_ptr_array_unref(b->notes);
}

static int run_scenario(Bench *b, const BenchScenario *sc)
{
	g_autoptr(GError) err = NULL;
	GThread *sigt;
	sigset_t set;
	int rc;

	/* before any thread exists, so that every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);   /* a dead migd must be an error on its socket */
	b->procs = bench_procs_new();
	sigt = g_thread_new("migbench/sig", signal_thread, b);

	b->tmpdir = g_dir_make_tmp("migbench-XXXXXX", &err);
	if (!b->tmpdir) {
		g_printerr("migbench: %s\n", err->message);
		rc = 2;
	} else {
		rc = sc->run(b);
	}

	bench_procs_free(b->procs);   /* kills and reaps whatever is left */
	bench_net_free(b->net);       /* after the children: a namespace lives while they do */
	b->net = NULL;
	bench_huge_restore(b);
	kill(getpid(), SIGUSR1);      /* releases the signal thread if no signal came */
	g_thread_join(sigt);
	if (b->tmpdir && b->keep_tmp)
		g_printerr("migbench: logs kept in %s\n", b->tmpdir);
	else if (b->tmpdir)
		remove_tmpdir(b->tmpdir);
	return rc;
}

/* "8,32" into out, at most max counts, each lo..hi; "" is none. */
static gboolean parse_counts(const char *list, guint max, guint64 lo, guint64 hi, guint *out, guint *n)
{
	g_auto(GStrv) parts = *list ? g_strsplit(list, ",", -1) : g_new0(char *, 1);

	*n = 0;
	for (guint i = 0; parts[i]; i++) {
		guint64 v;

		if (*n == max || !g_ascii_string_to_unsigned(parts[i], 10, lo, hi, &v, NULL))
			return FALSE;
		out[(*n)++] = (guint)v;
	}
	return TRUE;
}

int main(int argc, char **argv)
{
	g_autofree char *json = NULL, *build = NULL, *dir = NULL, *cells = NULL;
	gint runs = -1;   /* unset */
	gboolean quick = FALSE, keep = FALSE, lazy_only = FALSE;
	gint preempt_channels = 1, dst_vcpus = PC_DST_VCPUS, guest_mib = 0, cut_ms = 500, outage_s = 5;
	gint rt_priority = -1;   /* not given: each scenario's default */
	g_autofree char *tcp_cc = NULL, *vcpu_rows = NULL, *sizes = NULL, *workload = NULL, *rows = NULL;
	g_autofree char *used = NULL;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_FILENAME, &json, "Write every sample and the medians to FILE", "FILE" },
		{ "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Runs per cell (default 3, device-downtime 9; 1 with --quick)", "N" },
		{ "build", 0, 0, G_OPTION_ARG_FILENAME, &build, "Where migd and mig-rawxfer are (default: beside migbench)",
		  "DIR" },
		{ "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "CI smoke: a smaller scenario, 1 run (docs/benchmarks.md)", NULL },
		{ "keep-tmp", 0, 0, G_OPTION_ARG_NONE, &keep, "Keep the temporary directory with every log", NULL },
		{ "preempt-channels", 0, 0, G_OPTION_ARG_INT, &preempt_channels,
		  "postcopy-latency: add an arm with x-preempt-channels=N (2..8)", "N" },
		{ "dst-vcpus", 0, 0, G_OPTION_ARG_INT, &dst_vcpus,
		  "postcopy-latency, postcopy-recovery: the destination's vCPUs (default 2)", "N" },
		{ "rt-priority", 0, 0, G_OPTION_ARG_INT, &rt_priority,
		  "postcopy-latency: x-postcopy-rt-priority on both sides (0..99, default 1; 0: the fair class); "
		  "file: on the lazy restore's destination (default 0)", "N" },
		{ "vcpu-rows", 0, 0, G_OPTION_ARG_STRING, &vcpu_rows,
		  "postcopy-latency: 4K rows with this many faulting vCPUs (default 8,32; \"\": none)", "N,..." },
		{ "guest-mib", 0, 0, G_OPTION_ARG_INT, &guest_mib,
		  "precopy-throughput, file, tls, postcopy-auto: guest memory in MiB (64..65536, even; default 2048, "
		  "1024 with --quick; file: 4096, 256; tls: 2048, 512; postcopy-auto: 1024, 256)", "N" },
		{ "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
		  "file: where the saved file goes, on a real file system, not tmpfs (default /var/tmp)", "DIR" },
		{ "lazy-only", 0, 0, G_OPTION_ARG_NONE, &lazy_only,
		  "file: only the lazy restore, none of the save/restore rows (about a minute)", NULL },
		{ "cut-ms", 0, 0, G_OPTION_ARG_INT, &cut_ms,
		  "postcopy-recovery: cut the link N ms into postcopy-active (0..60000, default 500)", "N" },
		{ "outage-s", 0, 0, G_OPTION_ARG_INT, &outage_s,
		  "postcopy-recovery: mend it N s later (1..600, default 5)", "N" },
		{ "cells", 0, 0, G_OPTION_ARG_STRING, &cells,
		  "faults: only the cells FAULT@PHASE that GLOB matches (e.g. 'sigstop@*', '*@switchover')", "GLOB" },
		{ "sizes", 0, 0, G_OPTION_ARG_STRING, &sizes,
		  "downtime-size: the guests' sizes in GiB (default 1,2,4,8,16; 1,4 with --quick)", "N,..." },
		{ "workload", 0, 0, G_OPTION_ARG_STRING, &workload,
		  "downtime-size: a busy source guest (migd --workload SPEC; \"busy\": " DS_BUSY "), "
		  "4K scan against 4K-log rows", "SPEC" },
		{ "used", 0, 0, G_OPTION_ARG_STRING, &used,
		  "downtime-size: every row's source guest writes only its first SIZE of RAM (migd used=; "
		  "default: all of it, or what fits where a fully written pair does not)", "SIZE" },
		{ "rows", 0, 0, G_OPTION_ARG_STRING, &rows,
		  "postcopy-auto: only these rows (stream, hot, idle; default all); downtime-size: only these pages "
		  "(4k, thp, 4k-log; default all)", "NAME,..." },
		{ "tcp-congestion", 0, 0, G_OPTION_ARG_STRING, &tcp_cc,
		  "Every migd's x-tcp-congestion and the raw baselines' (default: migd's, cubic; \"\": the system's)",
		  "ALGO" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("SCENARIO - mig benchmarks");
	g_autofree char *command = g_strjoinv(" ", argv);
	g_autoptr(GError) err = NULL;
	const BenchScenario *sc;
	Bench b = { 0 };
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage(err->message);
	if (argc != 2)
		return usage("expected one SCENARIO");
	sc = find_scenario(argv[1]);
	if (!sc) {
		g_autofree char *why = g_strdup_printf("unknown scenario '%s'", argv[1]);

		return usage(why);
	}
	if (runs != -1 && (runs < 1 || runs > 99))
		return usage("--runs must be 1..99");
	if (preempt_channels < 1 || preempt_channels > 8)
		return usage("--preempt-channels must be 1..8");
	b.preempt_channels = (guint)preempt_channels;
	if (dst_vcpus < 1 || dst_vcpus > 64)
		return usage("--dst-vcpus must be 1..64");
	b.dst_vcpus = (guint)dst_vcpus;
	if (rt_priority < -1 || rt_priority > 99)
		return usage("--rt-priority must be 0..99");
	/* file's lazy restore: the fair class unless asked, its figures comparable across
	 * commits (docs/benchmarks.md, Scenario file) */
	b.rt_priority = rt_priority >= 0 ? (guint)rt_priority : !strcmp(sc->name, "file") ? 0 : 1;
	/* --quick is CI's smoke run: the many-vCPU rows (minutes, and a QMP that a 32-vCPU
	 * storm on 2 CPUs can starve) only when asked for */
	if (!parse_counts(vcpu_rows ? vcpu_rows : quick ? "" : "8,32", PC_VCPU_ROWS_MAX, 1, 64, b.vcpu_rows,
			  &b.n_vcpu_rows))
		return usage("--vcpu-rows must be up to 4 counts, each 1..64, separated by commas");
	if (sizes && (!parse_counts(sizes, DS_SIZES_MAX, 1, 1024, b.ds_sizes, &b.n_ds_sizes) || !b.n_ds_sizes))
		return usage("--sizes must be 1 to 8 sizes in GiB, each 1..1024, separated by commas");
	b.ds_workload = workload;
	if (used && (!bench_parse_size(used, &b.ds_used) || b.ds_used < (1u << 20) || b.ds_used % 4096))
		return usage("--used must be a size of at least 1M, a multiple of 4K (e.g. 6G)");
	b.auto_rows = rows;
	/* even: the hugetlb rows are in 2 MiB pages */
	if (guest_mib && (guest_mib < 64 || guest_mib > 65536 || guest_mib % 2))
		return usage("--guest-mib must be 64..65536 and even");
	b.guest_bytes = (guint64)guest_mib << 20;
	if (cut_ms < 0 || cut_ms > 60000)
		return usage("--cut-ms must be 0..60000");
	if (outage_s < 1 || outage_s > 600)
		return usage("--outage-s must be 1..600");
	b.cut_ms = (guint)cut_ms;
	b.outage_s = (guint)outage_s;
	if (tcp_cc && *tcp_cc && mig_io_congestion_usable(tcp_cc) < 0)
		return usage("--tcp-congestion: not an algorithm this kernel lets us use "
			     "(net.ipv4.tcp_available_congestion_control)");
	b.tcp_cc = g_steal_pointer(&tcp_cc);
	b.runs = runs > 0 ? runs : quick ? 1 : sc->runs ? sc->runs : 3;
	b.quick = quick;
	b.keep_tmp = keep;
	b.json_path = json;
	b.file_dir = dir ? dir : "/var/tmp";
	b.lazy_only = lazy_only;
	b.cells = cells;
	b.scenario = sc->name;
	b.command = g_steal_pointer(&command);
	b.notes = g_ptr_array_new_with_free_func(g_free);
	if (!find_binaries(&b, build, &err)) {
		g_printerr("migbench: %s\n", err->message);
		bench_clear(&b);
		return 2;
	}
	rc = run_scenario(&b, sc);
	bench_clear(&b);
	return rc;
}
