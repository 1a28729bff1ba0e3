/* postcopy-latency's report: medians over the runs, the ratios to the preempt-off arm
 * and to the floor, the targets, the kernel tracer's cost, the stage breakdown; printed
 * as one table per link and written as JSON. */
#include "tools/bench/postcopy-latency.h"
#include <stdio.h>

#define PC_TARGETS 5

typedef struct PcTarget {
	const char *key, *what;     /* JSON name; as printed */
	double value, limit;        /* value NAN: not measured */
	const char *unit;           /* "x" (a ratio) or "ms" */
	RowStatus why;              /* when not measured: the status of the row it needs */
} PcTarget;

static const char *const pc_arm_keys[N_ARMS] = { "off", "preempt", "preempt-break-huge", "preempt-break-huge-channels" };

gboolean pc_ok(const PcRow *r)
{
	return r && r->status == ROW_OK && r->samples->len > 0;
}

/* Median over the runs of one figure; NAN unless the row is ok. */
static double pc_median(const PcRow *r, PcGet get)
{
	g_autofree double *v = NULL;
	guint n = 0;

	if (!pc_ok(r))
		return NAN;
	v = g_new0(double, r->samples->len);
	for (guint i = 0; i < r->samples->len; i++) {
		double x = get(&g_array_index(r->samples, PcSample, i));

		if (!isnan(x))   /* a run without this figure (no BPF) */
			v[n++] = x;
	}
	return bench_median(v, n);
}

/* The row's median p50 over the same backend's preempt-off median p50. */
static double pc_over_off(const PcNet *net, const PcRow *r)
{
	return r->arm == ARM_OFF ? NAN : pc_median(r, get_p50) / pc_median(net->rows[r->bi][ARM_OFF], get_p50);
}

static double pc_over_floor(const PcNet *net, const PcRow *r)
{
	const PcFloor *f = &net->floor[r->bi];

	return f->count ? pc_median(r, get_p50) / f->median_us : NAN;
}

static void pc_targets(const PcNet *net, PcTarget *t)
{
	const PcRow *off4 = net->rows[0][ARM_OFF], *pre4 = net->rows[0][ARM_PREEMPT];
	const PcRow *off2 = net->rows[1][ARM_OFF], *bh2 = net->rows[1][ARM_BREAK_HUGE];
	const PcRow *need[PC_TARGETS] = { pc_ok(off4) ? pre4 : off4, pre4, pre4, bh2, pc_ok(off2) ? bh2 : off2 };

	t[0] = (PcTarget){ "4k_preempt_p50_over_off", "4K preempt p50 <= 1/20 of preempt off",
			   pc_median(pre4, get_p50) / pc_median(off4, get_p50), 1.0 / 20, "x", 0 };
	t[1] = (PcTarget){ "4k_preempt_p50_over_floor", "4K preempt p50 <= 3 x the 4K floor",
			   pre4 ? pc_over_floor(net, pre4) : NAN, 3, "x", 0 };
	t[2] = (PcTarget){ "4k_preempt_p99_ms", "4K preempt p99 <= 2 ms", pc_median(pre4, get_p99) / 1e3, 2, "ms", 0 };
	t[3] = (PcTarget){ "2m_break_huge_p50_ms", "2M preempt+break-huge p50 <= 1.3 x 16.8 ms",
			   pc_median(bh2, get_p50) / 1e3, 1.3 * PC_HUGE_AT_LINK_MS, "ms", 0 };
	t[4] = (PcTarget){ "2m_break_huge_p50_over_off", "2M preempt+break-huge p50 <= 1/2 of preempt off",
			   pc_median(bh2, get_p50) / pc_median(off2, get_p50), 0.5, "x", 0 };
	for (int i = 0; i < PC_TARGETS; i++)
		t[i].why = need[i] ? need[i]->status : ROW_SKIPPED;
}

/* The many-vCPU rows' targets (issue 18): with 8 vCPUs 4K p50 <= 5 x the floor and
 * p99 <= 2 ms, with 32 vCPUs p99 <= 5 ms. Fills up to 2 per row; the count. */
static guint pc_many_targets(const PcNet *net, const PcRow *r, PcTarget *t)
{
	guint n = 0;

	if (r->vcpus == 8) {
		t[n++] = (PcTarget){ "4k_8vcpus_p50_over_floor", "4K, 8 vCPUs: p50 <= 5 x the 4K floor", pc_over_floor(net, r),
				     5, "x", r->status };
		t[n++] = (PcTarget){ "4k_8vcpus_p99_ms", "4K, 8 vCPUs: p99 <= 2 ms", pc_median(r, get_p99) / 1e3, 2, "ms",
				     r->status };
	} else if (r->vcpus == 32) {
		t[n++] = (PcTarget){ "4k_32vcpus_p99_ms", "4K, 32 vCPUs: p99 <= 5 ms", pc_median(r, get_p99) / 1e3, 5, "ms",
				     r->status };
	}
	return n;
}

static const char *pc_verdict(const PcTarget *t)
{
	if (!isnan(t->value))
		return t->value <= t->limit ? "met" : "MISSED";
	return t->why == ROW_OK ? "not measured" : bench_status_names[t->why];
}

static char *fmt_ms(double us)
{
	return isnan(us) ? g_strdup("-") : g_strdup_printf("%.3f", us / 1e3);
}

/* A kernel-side figure: "no-bpf" when no run of the row had x-fault-latency-bpf. */
static char *fmt_k(const PcRow *r, PcGet get)
{
	for (guint i = 0; pc_ok(r) && i < r->samples->len; i++)
		if (g_array_index(r->samples, PcSample, i).k.ok)
			return fmt_ms(pc_median(r, get));
	return g_strdup(pc_ok(r) ? "no-bpf" : "-");
}

#define PC_ROW_FMT "%-8s %-4s %-19s %8s %9s %9s %9s %9s %9s %9s %8s %9s %9s\n"

static void pc_print_row(const PcNet *net, const PcRow *r)
{
	gboolean ok = pc_ok(r);
	g_autofree char *faults = bench_fmt_num(pc_median(r, get_faults), 0);
	g_autofree char *p50 = ok ? fmt_ms(pc_median(r, get_p50))
			     : g_strdup(r->status == ROW_OK ? "not run" : bench_status_names[r->status]);
	g_autofree char *p90 = fmt_ms(pc_median(r, get_p90)), *p99 = fmt_ms(pc_median(r, get_p99));
	g_autofree char *k50 = fmt_k(r, get_k_p50), *k90 = fmt_k(r, get_k_p90), *k99 = fmt_k(r, get_k_p99);
	g_autofree char *over_off = bench_fmt_num(pc_over_off(net, r), 3);
	g_autofree char *over_floor = bench_fmt_num(pc_over_floor(net, r), 1);
	g_autofree char *down = bench_fmt_num(pc_median(r, get_downtime), 0);

	printf(PC_ROW_FMT, pc_backends[r->bi].backend, pc_backends[r->bi].page, pc_arm_name(r), faults, p50, p90, p99,
	       k50, k90, k99, over_off, over_floor, down);
}

static void pc_print_row_error(const PcRow *r)
{
	if (!pc_ok(r) && r->error)
		printf("%s %s: %s: %s\n", pc_backends[r->bi].page, pc_arm_name(r), bench_status_names[r->status], r->error);
}

/* The preempt arm's p50 over the same arm's without migd --trace-latency: the median of
 * the runs' ratios, each run's two migrations being back to back. A failed run ends its
 * row, so the i-th samples of two rows that are both ok are from the same run. */
static double pc_tracer_cost(const PcNet *net, guint bi)
{
	const PcRow *with = net->rows[bi][ARM_PREEMPT], *without = net->untraced[bi];
	g_autofree double *v = NULL;
	guint n = 0, len;

	if (!pc_ok(with) || !pc_ok(without))
		return NAN;
	len = MIN(with->samples->len, without->samples->len);
	v = g_new0(double, len);
	for (guint i = 0; i < len; i++) {
		double a = g_array_index(with->samples, PcSample, i).p50_us;
		double b = g_array_index(without->samples, PcSample, i).p50_us;

		if (a > 0 && b > 0)
			v[n++] = a / b;
	}
	return bench_median(v, n);
}

static void pc_print_tracer_cost(const PcNet *net, guint nback)
{
	printf("\nkernel tracer's cost (the preempt arm's p50 with migd --trace-latency over the same arm's without it, "
	       "run right after: median of the runs' ratios; target <= 1.05):\n");
	for (guint bi = 0; bi < nback; bi++) {
		double with = pc_median(net->rows[bi][ARM_PREEMPT], get_p50), without = pc_median(net->untraced[bi], get_p50);
		double r = pc_tracer_cost(net, bi);
		g_autofree char *w = fmt_ms(with), *wo = fmt_ms(without), *rs = bench_fmt_num(r, 3);

		printf("  %s: p50 %s ms with, %s ms without (medians); ratio %s x  %s\n", pc_backends[bi].page, w, wo, rs,
		       isnan(r) ? "not measured" : r <= 1.05 ? "met" : "MISSED");
	}
}

/* The traced rows' breakdown, median over their runs. */
static void pc_print_stages(const PcNet *net, guint nback)
{
	printf("\nstage breakdown (the \"preempt, --stages\" rows: mig-faultlat --stages --src SRC --dst DST beside "
	       "the migration; median over runs; \"typical\" is the mean per hop of the requests from p40 to p60 of "
	       "the total, which adds up)\n");
	for (guint bi = 0; bi < nback; bi++) {
		const PcRow *r = net->traced[bi];
		g_autofree BenchStages *v = NULL;
		BenchStages med;
		guint n = 0;

		if (!pc_ok(r)) {
			printf("  %s: %s\n", pc_backends[bi].page, r->status == ROW_OK ? "not run" : bench_status_names[r->status]);
			continue;
		}
		v = g_new0(BenchStages, r->samples->len);
		for (guint i = 0; i < r->samples->len; i++)
			v[n++] = g_array_index(r->samples, PcSample, i).stages;
		bench_stages_median(v, n, &med);
		printf("  %s, %u run%s:\n", pc_backends[bi].page, n, n == 1 ? "" : "s");
		bench_stages_print(stdout, &med, "    ");
	}
}

void pc_print_net(Bench *b, const PcNet *net, guint nback, guint64 guest)
{
	g_autofree char *gs = bench_fmt_size(guest);
	gboolean footnotes = FALSE;

	printf("\npostcopy-latency, %s: %s guests (source " PC_SRC_WORKLOAD ", destination " PC_DST_WORKLOAD
	       " on %d vCPUs), median of %d run%s, %u CPUs\n", net->name, gs, b->dst_vcpus, b->runs, b->runs == 1 ? "" : "s",
	       g_get_num_processors());
	if (net->bed) {
		g_autofree char *raw = bench_fmt_num(net->raw.bytes ? net->raw.gbps * 8 : NAN, 3);

		printf("link: veth %s <-> %s, each end %s; raw %s Gbit/s (1 connection)\n", net->ns[0] ? net->ns[0] : "-",
		       net->ns[1] ? net->ns[1] : "-", BENCH_NET_SHAPING, raw);
	} else {
		printf("link: loopback TCP, unshaped\n");
	}
	printf("floor: one idle page fetch, median of %s round trips:", PC_FLOOR_TRIPS);
	for (guint bi = 0; bi < nback; bi++) {
		g_autofree char *ms = fmt_ms(net->floor[bi].count ? net->floor[bi].median_us : NAN);

		printf(" %s %s ms%s", pc_backends[bi].page, ms, bi + 1 < nback ? "," : "");
	}
	if (net->bed && nback > 1)
		printf("; 2 MiB at %g Gbit/s: %.1f ms", BENCH_NET_RATE_BPS / 1e9, PC_HUGE_AT_LINK_MS);
	printf("\nlatency: the destination's x-postcopy-latency, fault read to page placed, every faulting thread "
	       "(its %d vCPUs; the integrity sweep starts once postcopy is over);\nk-: its x-fault-latency-bpf, the "
	       "kernel's view of the same waits (migd --trace-latency), page fault to the thread's return to running\n", b->dst_vcpus);
	printf("the threads on a fault's path: x-postcopy-rt-priority %u on both sides (%s)\n", b->rt_priority,
	       b->rt_priority ? "SCHED_FIFO" : "the fair class with a short slice");
	if (b->preempt_channels > 1)
		printf("preempt+bh+channels: preempt+break-huge over x-preempt-channels=%u (the other preempt arms use 1)\n",
		       b->preempt_channels);
	if (net->nmany)
		printf("N vCPUs: the destination with N faulting vCPUs (--vcpu-rows), %s\n",
		       b->preempt_channels > 1 ? "preempt+break-huge over x-preempt-channels (\"ch\")" : "preempt");
	printf(PC_ROW_FMT, "backend", "page", "arm", "faults", "p50 ms", "p90 ms", "p99 ms", "k-p50 ms", "k-p90 ms",
	       "k-p99 ms", "p50/off", "p50/floor", "downtime");
	for (guint bi = 0; bi < nback; bi++) {
		for (int a = 0; a < N_ARMS; a++) {
			if (!net->rows[bi][a])
				continue;
			pc_print_row(net, net->rows[bi][a]);
			footnotes |= !pc_ok(net->rows[bi][a]);
		}
		pc_print_row(net, net->untraced[bi]);
		footnotes |= !pc_ok(net->untraced[bi]);
		pc_print_row(net, net->traced[bi]);
		footnotes |= !pc_ok(net->traced[bi]);
	}
	for (guint i = 0; i < net->nmany; i++) {
		pc_print_row(net, net->many[i]);
		footnotes |= !pc_ok(net->many[i]);
	}
	if (footnotes || net->error)
		printf("\n");
	if (net->error)
		printf("%s: error: %s\n", net->name, net->error);
	for (guint bi = 0; bi < nback; bi++) {
		for (int a = 0; a < N_ARMS; a++)
			if (net->rows[bi][a])
				pc_print_row_error(net->rows[bi][a]);
		pc_print_row_error(net->untraced[bi]);
		pc_print_row_error(net->traced[bi]);
	}
	for (guint i = 0; i < net->nmany; i++)
		pc_print_row_error(net->many[i]);
	pc_print_tracer_cost(net, nback);
	pc_print_stages(net, nback);
	if (net->bed) {
		PcTarget t[PC_TARGETS];

		pc_targets(net, t);
		printf("\ntargets (printed, not asserted):\n");
		for (guint i = 0; i < (nback > 1 ? PC_TARGETS : 3u); i++) {
			g_autofree char *v = bench_fmt_num(t[i].value, 3);

			printf("  %-50s %8s %-2s  limit %.3f %-2s  %s\n", t[i].what, v, t[i].unit, t[i].limit, t[i].unit,
			       pc_verdict(&t[i]));
		}
		for (guint m = 0; m < net->nmany; m++) {
			PcTarget mt[2];
			guint n = pc_many_targets(net, net->many[m], mt);

			for (guint i = 0; i < n; i++) {
				g_autofree char *v = bench_fmt_num(mt[i].value, 3);

				printf("  %-50s %8s %-2s  limit %.3f %-2s  %s\n", mt[i].what, v, mt[i].unit, mt[i].limit,
				       mt[i].unit, pc_verdict(&mt[i]));
			}
		}
	}
}

static void json_floor(JsonBuilder *j, const char *name, const PcFloor *f)
{
	json_builder_set_member_name(j, name);
	if (!f->count) {
		json_builder_add_null_value(j);
		return;
	}
	json_builder_begin_object(j);
	bench_json_int(j, "count", f->count);
	bench_json_double(j, "median_us", f->median_us);
	bench_json_double(j, "p10_us", f->p10_us);
	bench_json_double(j, "p90_us", f->p90_us);
	bench_json_double(j, "min_us", f->min_us);
	bench_json_double(j, "max_us", f->max_us);
	json_builder_end_object(j);
}

static void json_pc_sample(JsonBuilder *j, const PcSample *s)
{
	json_builder_begin_object(j);
	bench_json_double(j, "p50_us", s->p50_us);
	bench_json_double(j, "p90_us", s->p90_us);
	bench_json_double(j, "p99_us", s->p99_us);
	bench_json_double(j, "max_us", s->max_us);
	bench_json_int(j, "faults", (gint64)s->faults);
	bench_json_int(j, "requests", s->requests);
	bench_json_int(j, "source_requests", s->src_requests);
	bench_json_int(j, "downtime_ms", s->downtime_ms);
	bench_json_int(j, "total_time_ms", s->total_ms);
	bench_json_int(j, "postcopy_bytes", s->postcopy_bytes);
	bench_json_int(j, "break_huge_drops", s->huge_drops);
	json_builder_set_member_name(j, "latency_dist");
	json_builder_begin_array(j);
	for (int i = 0; i < PC_LAT_BUCKETS; i++)
		json_builder_add_int_value(j, s->dist[i]);
	json_builder_end_array(j);
	json_builder_set_member_name(j, "integrity");
	json_builder_begin_object(j);
	bench_json_int(j, "checked", (gint64)s->checked);
	bench_json_int(j, "failed", (gint64)s->failed);
	bench_json_int(j, "total", (gint64)s->units);
	json_builder_end_object(j);
	/* null: migd could not load its BPF programs (the notes say why) */
	json_builder_set_member_name(j, "kernel");
	if (s->k.ok) {
		json_builder_begin_object(j);
		bench_json_double(j, "count", s->k.count);
		bench_json_double(j, "p50_us", s->k.p50_us);
		bench_json_double(j, "p90_us", s->k.p90_us);
		bench_json_double(j, "p99_us", s->k.p99_us);
		bench_json_double(j, "max_us", s->k.max_us);
		json_builder_end_object(j);
	} else {
		json_builder_add_null_value(j);
	}
	if (s->has_stages) {
		json_builder_set_member_name(j, "stages");
		bench_stages_json(j, &s->stages);
	}
	json_builder_end_object(j);
}

static void json_pc_row(JsonBuilder *j, const PcNet *net, const PcRow *r)
{
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "backend");
	json_builder_add_string_value(j, pc_backends[r->bi].backend);
	json_builder_set_member_name(j, "page");
	json_builder_add_string_value(j, pc_backends[r->bi].cls);
	json_builder_set_member_name(j, "arm");
	json_builder_add_string_value(j, pc_arm_keys[r->arm]);
	json_builder_set_member_name(j, "preempt");
	json_builder_add_boolean_value(j, r->arm != ARM_OFF);
	json_builder_set_member_name(j, "traced");   /* mig-faultlat --stages attached */
	json_builder_add_boolean_value(j, r->traced);
	json_builder_set_member_name(j, "kernel_tracer");   /* migd --trace-latency on the destination */
	json_builder_add_boolean_value(j, !r->untraced);
	/* null: not set, the arm has no preempt */
	json_builder_set_member_name(j, "break_huge");
	if (r->arm == ARM_OFF)
		json_builder_add_null_value(j);
	else
		json_builder_add_boolean_value(j, r->arm >= ARM_BREAK_HUGE);
	bench_json_int(j, "preempt_channels", r->arm == ARM_OFF ? 0 : r->arm == ARM_CHANNELS ? (gint64)net->preempt_channels : 1);
	if (r->vcpus)
		bench_json_int(j, "vcpus", r->vcpus);
	bench_json_status(j, r->status, r->error);
	json_builder_set_member_name(j, "samples");
	json_builder_begin_array(j);
	for (guint i = 0; i < r->samples->len; i++)
		json_pc_sample(j, &g_array_index(r->samples, PcSample, i));
	json_builder_end_array(j);
	json_builder_set_member_name(j, "median");
	if (pc_ok(r)) {
		json_builder_begin_object(j);
		bench_json_double(j, "p50_us", pc_median(r, get_p50));
		bench_json_double(j, "p90_us", pc_median(r, get_p90));
		bench_json_double(j, "p99_us", pc_median(r, get_p99));
		bench_json_double(j, "faults", pc_median(r, get_faults));
		bench_json_double(j, "downtime_ms", pc_median(r, get_downtime));
		bench_json_double(j, "kernel_count", pc_median(r, get_k_count));
		bench_json_double(j, "kernel_p50_us", pc_median(r, get_k_p50));
		bench_json_double(j, "kernel_p90_us", pc_median(r, get_k_p90));
		bench_json_double(j, "kernel_p99_us", pc_median(r, get_k_p99));
		json_builder_end_object(j);
	} else {
		json_builder_add_null_value(j);
	}
	if (r->traced) {
		json_builder_set_member_name(j, "stages_median");
		if (pc_ok(r)) {
			g_autofree BenchStages *v = g_new0(BenchStages, r->samples->len);
			BenchStages med;

			for (guint i = 0; i < r->samples->len; i++)
				v[i] = g_array_index(r->samples, PcSample, i).stages;
			bench_stages_median(v, r->samples->len, &med);
			bench_stages_json(j, &med);
		} else {
			json_builder_add_null_value(j);
		}
	}
	bench_json_double(j, "p50_over_off", pc_over_off(net, r));
	bench_json_double(j, "p50_over_floor", pc_over_floor(net, r));
	json_builder_end_object(j);
}

/* The targets, judged on the bed only: loopback is not the link they are about. */
static void json_pc_target(JsonBuilder *j, const PcTarget *t)
{
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "key");
	json_builder_add_string_value(j, t->key);
	json_builder_set_member_name(j, "what");
	json_builder_add_string_value(j, t->what);
	bench_json_double(j, "value", t->value);
	bench_json_double(j, "limit", t->limit);
	json_builder_set_member_name(j, "unit");
	json_builder_add_string_value(j, t->unit);
	json_builder_set_member_name(j, "verdict");
	json_builder_add_string_value(j, pc_verdict(t));
	json_builder_end_object(j);
}

static void json_pc_targets(JsonBuilder *j, const PcNet *net, guint nback)
{
	PcTarget t[PC_TARGETS];

	json_builder_set_member_name(j, "targets");
	json_builder_begin_array(j);
	if (net->bed) {
		pc_targets(net, t);
		for (guint i = 0; i < (nback > 1 ? PC_TARGETS : 3u); i++)
			json_pc_target(j, &t[i]);
		for (guint m = 0; m < net->nmany; m++) {
			PcTarget mt[2];
			guint n = pc_many_targets(net, net->many[m], mt);

			for (guint i = 0; i < n; i++)
				json_pc_target(j, &mt[i]);
		}
	}
	json_builder_end_array(j);
}

static void json_pc_net(JsonBuilder *j, const PcNet *net, guint nback)
{
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "net");
	json_builder_add_string_value(j, net->name);
	json_builder_set_member_name(j, "shaping");
	if (net->bed)
		json_builder_add_string_value(j, BENCH_NET_SHAPING);
	else
		json_builder_add_null_value(j);
	json_builder_set_member_name(j, "namespaces");
	json_builder_begin_array(j);
	for (int i = 0; i < 2 && net->ns[i]; i++)
		json_builder_add_string_value(j, net->ns[i]);
	json_builder_end_array(j);
	json_builder_set_member_name(j, "addresses");
	json_builder_begin_array(j);
	for (int i = 0; i < 2 && net->addr[i]; i++)
		json_builder_add_string_value(j, net->addr[i]);
	json_builder_end_array(j);
	bench_json_str(j, "error", net->error);
	json_builder_set_member_name(j, "raw");
	if (net->raw.bytes) {
		json_builder_begin_object(j);
		bench_json_int(j, "bytes", (gint64)net->raw.bytes);
		bench_json_double(j, "seconds", net->raw.seconds);
		bench_json_double(j, "gbit_per_s", net->raw.gbps * 8);
		json_builder_end_object(j);
	} else {
		json_builder_add_null_value(j);
	}
	json_builder_set_member_name(j, "floor");
	json_builder_begin_object(j);
	for (guint bi = 0; bi < PC_BACKENDS; bi++)
		json_floor(j, pc_backends[bi].cls, &net->floor[bi]);
	json_builder_end_object(j);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint bi = 0; bi < nback; bi++)
		for (int a = 0; a < N_ARMS; a++)
			if (net->rows[bi][a])
				json_pc_row(j, net, net->rows[bi][a]);
	json_builder_end_array(j);
	json_builder_set_member_name(j, "traced");
	json_builder_begin_array(j);
	for (guint bi = 0; bi < nback; bi++)
		json_pc_row(j, net, net->traced[bi]);
	json_builder_end_array(j);
	json_builder_set_member_name(j, "untraced");
	json_builder_begin_array(j);
	for (guint bi = 0; bi < nback; bi++)
		json_pc_row(j, net, net->untraced[bi]);
	json_builder_end_array(j);
	json_builder_set_member_name(j, "vcpu_rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < net->nmany; i++)
		json_pc_row(j, net, net->many[i]);
	json_builder_end_array(j);
	/* the preempt arm's p50 over the untraced one's, by page size */
	json_builder_set_member_name(j, "kernel_tracer_cost");
	json_builder_begin_object(j);
	for (guint bi = 0; bi < nback; bi++)
		bench_json_double(j, pc_backends[bi].cls, pc_tracer_cost(net, bi));
	json_builder_end_object(j);
	json_pc_targets(j, net, nback);
	json_builder_end_object(j);
}

gboolean pc_write_json(Bench *b, const PcNet *nets, guint nnets, guint nback, guint64 guest, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, guest);
	bench_json_double(j, "link_rate_bps", BENCH_NET_RATE_BPS);
	bench_json_double(j, "huge_page_at_link_ms", PC_HUGE_AT_LINK_MS);
	json_builder_set_member_name(j, "source_workload");
	json_builder_add_string_value(j, PC_SRC_WORKLOAD);
	json_builder_set_member_name(j, "destination_workload");
	json_builder_add_string_value(j, PC_DST_WORKLOAD);
	bench_json_int(j, "destination_vcpus", b->dst_vcpus);
	bench_json_int(j, "rt_priority", b->rt_priority);
	json_builder_set_member_name(j, "nets");
	json_builder_begin_array(j);
	for (guint i = 0; i < nnets; i++)
		json_pc_net(j, &nets[i], nback);
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}
