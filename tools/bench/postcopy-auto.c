/* Scenario postcopy-auto: when to leave precopy. A guest that keeps writing moves over
 * the netns bed shaped at AUTO_BW, mig itself uncapped, three ways, in the same run:
 * pure precopy with an unlimited downtime-limit (stop after the first pass and copy the
 * rest stopped), postcopy after a fixed number of passes (x-postcopy-after-passes), and
 * the engine's own judgement (x-postcopy-auto) at downtime-limit. Per arm: total time, downtime, the guest's stall
 * (downtime plus the destination's postcopy-blocktime, the time all its vCPUs waited
 * at once) and the pass at which postcopy began. docs/benchmarks.md explains the
 * targets and why the link, not mig's caps, sets the rate: a cap would not hold the
 * stopped copy, so pure precopy's downtime would run at loopback speed. */
#include "tools/bench/runner.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define AUTO_LIMIT_MS 300           /* downtime-limit of the postcopy arms */
#define AUTO_FIXED_PASSES 2         /* the fixed policy */
#define AUTO_BW (256ull << 20)      /* the bed's rate, bytes/s */
#define AUTO_RATE "2147483648bit"   /* AUTO_BW for tc(8) */
#define AUTO_CHECK_BYTES (256ull << 20)   /* the bed's rate check: ~1 s at AUTO_BW */

typedef enum { ARM_PRECOPY, ARM_FIXED, ARM_AUTO, N_ARMS } Arm;
static const char *const arm_names[N_ARMS] = { "precopy", "after-2", "auto" };

typedef struct AutoSample {
	gint64 total_ms, downtime_ms, stall_ms, pass;   /* pass: postcopy began after it; 0 none */
	guint64 failed, checked;
} AutoSample;

typedef struct Row {
	const char *workload;       /* the row's name */
	const char *spec;           /* migd --workload on both sides */
	GArray *s[N_ARMS];          /* AutoSample per run */
	RowStatus status;
	char *error;
} Row;

static void row_free(gpointer p)
{
	Row *r = p;

	for (int a = 0; a < N_ARMS; a++)
		g_array_unref(r->s[a]);
	g_free(r->error);
	g_free(r);
}

static char *arm_params(Arm a)
{
	if (a == ARM_PRECOPY)
		return g_strdup("{\"max-bandwidth\":0,\"downtime-limit\":2000000}");
	return g_strdup_printf("{\"max-bandwidth\":0,\"max-postcopy-bandwidth\":0,\"downtime-limit\":%d,%s}",
			       AUTO_LIMIT_MS,
			       a == ARM_FIXED ? "\"x-postcopy-after-passes\":" G_STRINGIFY(AUTO_FIXED_PASSES) : "\"x-postcopy-auto\":true");
}

static gboolean one_run(Bench *b, const char *workload, Arm arm, guint64 guest, AutoSample *out, GError **err)
{
	g_autofree char *incoming = g_strdup_printf("tcp:%s:0", bench_dst_host(b, TRUE));
	MigdSpec src = { .backend = "anon", .guest_bytes = guest, .workload = workload, .vcpus = 2, .seed = ++b->seq,
			 .side = BENCH_NET_SRC };
	MigdSpec dst = { .backend = "anon", .guest_bytes = guest, .workload = workload, .vcpus = 2,
			 .incoming = incoming, .side = BENCH_NET_DST };
	const char *caps = arm == ARM_PRECOPY ? "{\"capabilities\":[{\"capability\":\"events\",\"state\":true}]}"
					      : "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true}]}";
	MigPair p = { 0 };
	MigSample ms = { 0 };
	g_autofree char *port = NULL, *uri = NULL, *params = arm_params(arm);
	g_autoptr(JsonObject) done = NULL, dq = NULL;
	gboolean ok;

	ok = bench_pair_start(b, &src, &dst, &p, err) && bench_qmp_run(p.qdst, "destination", "migrate-set-capabilities", caps, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-capabilities", caps, err) &&
	     (arm == ARM_PRECOPY || bench_qmp_run(p.qdst, "destination", "migrate-set-capabilities",
						  "{\"capabilities\":[{\"capability\":\"postcopy-blocktime\",\"state\":true}]}", err)) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", params, err) &&
	     (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:%s:%s\"}", bench_dst_host(b, TRUE), port);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (done = bench_wait_source(b, &p, err)) &&
		     bench_wait_integrity(b, &p, &ms, err) && (dq = bench_query_migrate(p.qdst, err));
	}
	if (ok) {
		JsonObject *a = bench_obj_obj(done, "x-postcopy-auto");

		out->total_ms = bench_obj_int(done, "total-time", -1);
		out->downtime_ms = bench_obj_int(done, "downtime", -1);
		out->stall_ms = out->downtime_ms + bench_obj_int(dq, "postcopy-blocktime", 0);
		out->pass = arm == ARM_AUTO ? bench_obj_int(a, "pass", 0)
			  : arm == ARM_FIXED && bench_obj_int(bench_obj_obj(done, "ram"), "postcopy-bytes", 0) ? AUTO_FIXED_PASSES : 0;
		out->failed = ms.failed;
		out->checked = ms.checked;
	}
	bench_pair_stop(b, &p);
	return ok;
}

static double med(const GArray *a, gsize off)
{
	g_autofree double *v = g_new0(double, a->len + 1);

	for (guint i = 0; i < a->len; i++)
		v[i] = (double)G_STRUCT_MEMBER(gint64, &g_array_index(a, AutoSample, i), off);
	return a->len ? bench_median(v, a->len) : NAN;
}

static void print_table(Bench *b, GPtrArray *rows, guint64 guest, const RawSample *raw)
{
	g_autofree char *size = bench_fmt_size(guest);
	g_autofree char *rate = bench_fmt_num(raw->seconds > 0 ? raw->bytes / raw->seconds / (1 << 20) : NAN, 0);

	printf("\n%s: %s guest, netns bed shaped at %llu MiB/s (raw %s MiB/s over it), no max-bandwidth, downtime-limit "
	       "%d ms (postcopy arms), median of %d run%s, %u CPUs\n", b->scenario, size, AUTO_BW >> 20,
	       raw->seconds > 0 ? rate : "-", AUTO_LIMIT_MS, b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("%-8s %-8s %9s %11s %9s %6s %16s %12s\n", "workload", "arm", "total ms", "downtime ms", "stall ms", "pass",
	       "auto/best total", "downtime ok");
	for (guint i = 0; i < rows->len; i++) {
		Row *r = g_ptr_array_index(rows, i);
		double best = MIN(med(r->s[ARM_PRECOPY], G_STRUCT_OFFSET(AutoSample, total_ms)),
				  med(r->s[ARM_FIXED], G_STRUCT_OFFSET(AutoSample, total_ms)));

		for (int a = 0; a < N_ARMS; a++) {
			const GArray *s = r->s[a];
			double total = med(s, G_STRUCT_OFFSET(AutoSample, total_ms));
			double down = med(s, G_STRUCT_OFFSET(AutoSample, downtime_ms));
			g_autofree char *t = bench_fmt_num(total, 0), *d = bench_fmt_num(down, 0);
			g_autofree char *st = bench_fmt_num(med(s, G_STRUCT_OFFSET(AutoSample, stall_ms)), 0);
			g_autofree char *ps = bench_fmt_num(med(s, G_STRUCT_OFFSET(AutoSample, pass)), 0);
			g_autofree char *ratio = bench_fmt_num(a == ARM_AUTO ? total / best : NAN, 2);
			const char *dok = a == ARM_PRECOPY || isnan(down) ? "-" : down <= AUTO_LIMIT_MS * 1.2 ? "yes" : "NO";

			printf("%-8s %-8s %9s %11s %9s %6s %16s %12s\n", r->workload, arm_names[a], s->len ? t : "-",
			       s->len ? d : "-", s->len ? st : "-", s->len ? ps : "-", ratio, dok);
		}
		if (r->status != ROW_OK)
			printf("%s %s: %s\n", r->workload, bench_status_names[r->status], r->error);
	}
	printf("targets: auto/best total <= 1.00 on every row; a postcopy arm's downtime <= downtime-limit + 20 %%\n");
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static gboolean write_json(Bench *b, GPtrArray *rows, guint64 guest, const RawSample *raw, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, guest);
	bench_json_int(j, "downtime_limit_ms", AUTO_LIMIT_MS);
	bench_json_int(j, "bandwidth", (gint64)AUTO_BW);   /* the bed's shaped rate */
	bench_json_double(j, "raw_bandwidth", raw->seconds > 0 ? raw->bytes / raw->seconds : NAN);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++) {
		Row *r = g_ptr_array_index(rows, i);

		json_builder_begin_object(j);
		bench_json_str(j, "workload", r->workload);
		bench_json_status(j, r->status, r->error);
		for (int a = 0; a < N_ARMS; a++) {
			json_builder_set_member_name(j, arm_names[a]);
			json_builder_begin_array(j);
			for (guint k = 0; k < r->s[a]->len; k++) {
				const AutoSample *s = &g_array_index(r->s[a], AutoSample, k);

				json_builder_begin_object(j);
				bench_json_int(j, "total_time_ms", s->total_ms);
				bench_json_int(j, "downtime_ms", s->downtime_ms);
				bench_json_int(j, "stall_ms", s->stall_ms);
				bench_json_int(j, "postcopy_after_pass", s->pass);
				bench_json_int(j, "integrity_checked", (gint64)s->checked);
				bench_json_int(j, "integrity_failed", (gint64)s->failed);
				json_builder_end_object(j);
			}
			json_builder_end_array(j);
		}
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

/* The bed must really run at AUTO_BW: a raw transfer across it, nothing else on it. */
static gboolean bed_check(Bench *b, RawSample *raw, GError **err)
{
	double rate;

	if (!bench_raw_run(b, TRUE, 1, AUTO_CHECK_BYTES, RAW_HOT, raw, err)) {
		g_prefix_error(err, "the bed's rate check: ");
		return FALSE;
	}
	rate = raw->bytes / raw->seconds;
	g_printerr("migbench: netns bed: raw %.0f MiB/s over 1 connection (shaped to %llu MiB/s)\n", rate / (1 << 20),
		   AUTO_BW >> 20);
	if (rate < 0.8 * AUTO_BW || rate > 1.1 * AUTO_BW)
		bench_note(b, "the netns bed moved %.0f MiB/s raw, outside 0.8 to 1.1 times its shaped rate (%llu MiB/s): "
			   "every arm is slower or faster than the link it models", rate / (1 << 20), AUTO_BW >> 20);
	return TRUE;
}

static int run_postcopy_auto(Bench *b)
{
	/* stream rewrites the whole guest in order as fast as it can, hot a random half of
	 * it: neither converges at the cap; idle does, and auto must leave it alone */
	guint64 guest = b->guest_bytes ? b->guest_bytes : b->quick ? 256ull << 20 : 1 * GiB;
	g_autofree char *hot = g_strdup_printf("random,wss=%" G_GUINT64_FORMAT "M,rate=0", guest / 2 >> 20);
	const char *const workloads[][2] = { { "stream", "seq,rate=0" }, { "hot", hot }, { "idle", "idle" } };
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(row_free);
	g_auto(GStrv) only = b->auto_rows ? g_strsplit(b->auto_rows, ",", -1) : NULL;
	g_autoptr(GError) bed_err = NULL;
	RawSample raw = { 0 };
	int rc = 0;

	b->unplotted = TRUE;
	for (guint i = 0; only && only[i]; i++) {
		guint w = 0;

		while (w < G_N_ELEMENTS(workloads) && strcmp(only[i], workloads[w][0]))
			w++;
		if (w == G_N_ELEMENTS(workloads)) {
			g_printerr("migbench: --rows: no row '%s' (stream, hot, idle)\n", only[i]);
			return 2;
		}
	}
	if (!(b->net = bench_net_new(AUTO_RATE, &bed_err)))
		g_printerr("migbench: postcopy-auto needs the netns bed: %s\n", bed_err->message);
	else if (!bed_check(b, &raw, &bed_err))
		g_printerr("migbench: postcopy-auto: %s\n", bed_err->message);
	for (guint w = 0; w < G_N_ELEMENTS(workloads) && !bench_procs_interrupted(b->procs); w++) {
		Row *r;

		if (only && !g_strv_contains((const char *const *)only, workloads[w][0]))
			continue;
		r = g_new0(Row, 1);
		r->workload = workloads[w][0];
		r->spec = workloads[w][1];
		for (int a = 0; a < N_ARMS; a++)
			r->s[a] = g_array_new(FALSE, TRUE, sizeof(AutoSample));
		g_ptr_array_add(rows, r);
		if (bed_err) {
			r->status = ROW_ERROR;
			r->error = g_strdup(bed_err->message);
			rc = 1;
		}
		/* arms alternate within a run, so drift on a shared machine hits all three */
		for (int run = 0; run < b->runs && r->status == ROW_OK; run++) {
			for (int a = 0; a < N_ARMS && r->status == ROW_OK; a++) {
				g_autoptr(GError) err = NULL;
				AutoSample s = { 0 };

				if (bench_interrupted(b, &err) || !one_run(b, r->spec, a, guest, &s, &err)) {
					r->status = bench_status_of(err);
					r->error = g_strdup_printf("%s run %d: %s", arm_names[a], run + 1, err->message);
					rc = r->status == ROW_INTERRUPTED ? 130 : 1;
					break;
				}
				g_array_append_val(r->s[a], s);
				g_printerr("migbench: %s/%s run %d/%d: total %" G_GINT64_FORMAT " ms, downtime %" G_GINT64_FORMAT
					   " ms, stall %" G_GINT64_FORMAT " ms, postcopy after pass %" G_GINT64_FORMAT "\n",
					   r->workload, arm_names[a], run + 1, b->runs, s.total_ms, s.downtime_ms, s.stall_ms, s.pass);
			}
		}
	}
	bench_net_free(b->net);   /* every child of this net was reaped by now */
	b->net = NULL;
	print_table(b, rows, guest, &raw);
	if (b->json_path) {
		g_autoptr(GError) err = NULL;

		if (!write_json(b, rows, guest, &raw, &err)) {
			g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
			return 1;
		}
	}
	b->keep_tmp |= rc == 1;
	return rc;
}

const BenchScenario bench_postcopy_auto = {
	"postcopy-auto", "when to leave precopy: x-postcopy-auto against pure precopy and a fixed pass count",
	run_postcopy_auto, 0,
};
