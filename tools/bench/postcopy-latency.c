/* Scenario postcopy-latency: how long a vCPU of the destination waits for a page it
 * faults on right after the switchover, while the source's background push fills the
 * link: preempt off, preempt on, and preempt with huge pages broken up, next to the
 * floor (one fetch of the same page over the same link with nothing else on it). On
 * the netns bed first, the point of the scenario, then on loopback.
 * docs/benchmarks.md explains the design. This file runs the arms; the link, the
 * tracing and the report have theirs (postcopy-latency.h). */
#include "tools/bench/postcopy-latency.h"
#include <stdio.h>
#include <string.h>

#define PC_BED_PORT 4444            /* the destination's fixed port inside the bed */
#define BREAK_HUGE "x-postcopy-preempt-break-huge"

const PcBackend pc_backends[PC_BACKENDS] = {
	{ "anon", "4K", "4k", FALSE },
	{ "hugetlb", "2M", "2m", TRUE },
};

static const char *const arm_names[N_ARMS] = { "preempt off", "preempt", "preempt+break-huge", "preempt+bh+channels" };

PcRow *pc_row_new(guint bi, PcArm arm)
{
	PcRow *r = g_new0(PcRow, 1);

	r->bi = bi;
	r->arm = arm;
	r->samples = g_array_new(FALSE, TRUE, sizeof(PcSample));
	return r;
}

void pc_row_free(PcRow *r)
{
	if (!r)
		return;
	g_array_unref(r->samples);
	g_free(r->error);
	g_free(r);
}

/* Arm (b) turns break-huge off and arm (c) on, on both sides; arm (d) is (c) with
 * several urgent channels. */
static gboolean pc_set_break_huge(Bench *b, MigPair *p, const PcRow *row, GError **err)
{
	g_autofree char *args = row->arm == ARM_CHANNELS
		? g_strdup_printf("{\"" BREAK_HUGE "\":true,\"x-preempt-channels\":%u}", b->preempt_channels)
		: g_strdup_printf("{\"" BREAK_HUGE "\":%s}", row->arm == ARM_BREAK_HUGE ? "true" : "false");

	return row->arm == ARM_OFF || (bench_qmp_run(p->qdst, "destination", "migrate-set-parameters", args, err) &&
				       bench_qmp_run(p->qsrc, "source", "migrate-set-parameters", args, err));
}

/* The figures of a completed, verified run: the destination's latency for the row's page
 * size, and the request counts, which must agree (a lost or doubled request would make
 * the latencies a lie). */
static gboolean pc_figures(Bench *b, const PcRow *row, JsonObject *src_done, JsonObject *dst, PcSample *s,
			   GError **err)
{
	g_autofree char *no_k = NULL;
	const char *cls = pc_backends[row->bi].cls;
	JsonObject *lat = bench_obj_obj(dst, "x-postcopy-latency"), *c = bench_obj_obj(lat, cls);
	JsonNode *dist = json_object_get_member(dst, "x-postcopy-request-latency-dist");
	g_autoptr(GList) classes = lat ? json_object_get_members(lat) : NULL;
	gint64 timed = 0;

	s->requests = bench_obj_int(dst, "x-postcopy-requests", -1);
	s->src_requests = bench_obj_int(bench_obj_obj(src_done, "ram"), "postcopy-requests", -1);
	s->postcopy_bytes = bench_obj_int(bench_obj_obj(src_done, "ram"), "postcopy-bytes", -1);
	s->huge_drops = bench_obj_int(bench_obj_obj(src_done, "ram"), "x-break-huge-drops", -1);
	s->downtime_ms = bench_obj_int(src_done, "downtime", -1);
	s->total_ms = bench_obj_int(src_done, "total-time", -1);
	if (!lat || !dist || !JSON_NODE_HOLDS_ARRAY(dist) ||
	    json_array_get_length(json_node_get_array(dist)) != PC_LAT_BUCKETS) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED,
			    "the destination's query-migrate lacks x-postcopy-latency or a %d-bucket x-postcopy-request-latency-dist",
			    PC_LAT_BUCKETS);
		return FALSE;
	}
	for (guint i = 0; i < PC_LAT_BUCKETS; i++)
		s->dist[i] = json_array_get_int_element(json_node_get_array(dist), i);
	for (GList *l = classes; l; l = l->next)
		timed += bench_obj_int(bench_obj_obj(lat, l->data), "count", 0);
	if (bench_obj_int(c, "count", 0) <= 0) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "no %s fault was timed: did the run switch to postcopy?",
			    pc_backends[row->bi].page);
		return FALSE;
	}
	s->faults = (guint64)bench_obj_int(c, "count", 0);
	s->p50_us = (double)bench_obj_int(c, "p50", -1);
	s->p90_us = (double)bench_obj_int(c, "p90", -1);
	s->p99_us = (double)bench_obj_int(c, "p99", -1);
	s->max_us = (double)bench_obj_int(c, "max", -1);
	/* the kernel's view is a second opinion: without BPF the run still counts, and the
	 * table says why that column is empty */
	if (!row->untraced && !bench_klat_parse(dst, cls, &s->k, &no_k))
		bench_note(b, "no kernel-side latency (k- columns): %s", no_k);
	if (s->requests != timed || s->src_requests != s->requests) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED,
			    "the destination made %" G_GINT64_FORMAT " requests and timed %" G_GINT64_FORMAT
			    " placements, the source served %" G_GINT64_FORMAT ": a request was lost or doubled",
			    s->requests, timed, s->src_requests);
		return FALSE;
	}
	return TRUE;
}

gboolean pc_run(Bench *b, const PcNet *net, PcRow *row, guint64 guest, PcSample *s, GError **err)
{
	guint seq = ++b->seq;
	gboolean huge = pc_backends[row->bi].huge;
	int src_side = net->bed ? BENCH_NET_SRC : -1, dst_side = net->bed ? BENCH_NET_DST : -1;
	g_autofree char *incoming = g_strdup_printf("tcp:%s:%u", bench_dst_host(b, net->bed), net->bed ? PC_BED_PORT : 0);
	/* the source's vCPU keeps dirtying so precopy cannot converge; the destination's
	 * two fault on pages all over the guest as soon as they run */
	MigdSpec src = { .backend = pc_backends[row->bi].backend, .huge = huge, .guest_bytes = guest,
			 .workload = PC_SRC_WORKLOAD, .seed = seq, .side = src_side };
	MigdSpec dst = { .backend = pc_backends[row->bi].backend, .huge = huge, .guest_bytes = guest,
			 .workload = PC_DST_WORKLOAD, .vcpus = row->vcpus ? row->vcpus : b->dst_vcpus,
			 .incoming = incoming, .side = dst_side,
			 .trace_latency = !row->untraced };
	g_autofree char *caps = g_strdup_printf("{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true},"
						"{\"capability\":\"postcopy-preempt\",\"state\":%s}]}",
						row->arm == ARM_OFF ? "false" : "true");
	/* the threads on a fault's path (docs/design.md, Postcopy): with vCPU threads
	 * outnumbering the CPUs, what decides how long a fault waits */
	g_autofree char *rt = g_strdup_printf("{\"x-postcopy-rt-priority\":%u}", b->rt_priority);
	g_autofree char *port = NULL, *uri = NULL;
	g_autoptr(JsonObject) done = NULL, dq = NULL;
	MigPair p = { 0 };
	MigSample integ = { 0 };
	BenchChild *tool = NULL;
	gboolean ok;

	/* capabilities on the destination first: it must know before the source connects.
	 * Inside the bed the port is fixed: the URI is then ours, not query-migrate's view
	 * of the listener, which may name an address the source cannot reach. */
	ok = bench_pair_start(b, &src, &dst, &p, err) && bench_qmp_run(p.qdst, "destination", "migrate-set-capabilities", caps, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-capabilities", caps, err) && pc_set_break_huge(b, &p, row, err) &&
	     (!row->tls || bench_tls_enable(b, &p, err)) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters",
		     "{\"max-bandwidth\":0,\"downtime-limit\":1,\"x-postcopy-after-passes\":1}", err) &&
	     bench_qmp_run(p.qdst, "destination", "migrate-set-parameters", rt, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", rt, err) &&
	     (port = net->bed ? g_strdup_printf("%u", PC_BED_PORT) : bench_dst_port(b, &p, err)) != NULL;
	if (ok && row->traced)
		ok = (tool = pc_stages_start(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:%s:%s\"}", bench_dst_host(b, net->bed), port);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (done = bench_wait_source(b, &p, err)) != NULL &&
		     bench_wait_integrity(b, &p, &integ, err) && (dq = bench_query_migrate(p.qdst, err)) != NULL &&
		     pc_figures(b, row, done, dq, s, err) && (!tool || pc_stages_finish(b, tool, s, err));
	}
	s->checked = integ.checked;
	s->failed = integ.failed;
	s->units = integ.units;
	bench_child_free(b->procs, tool);   /* before the pair: it traces them */
	bench_pair_stop(b, &p);
	return ok;
}

const char *pc_arm_name(const PcRow *r)
{
	return r->vcpus ? r->name : r->traced ? "preempt, --stages" : r->untraced ? "preempt, untraced" : arm_names[r->arm];
}

static void pc_cell(Bench *b, const PcNet *net, PcRow *row, guint64 guest, int run)
{
	g_autoptr(GError) err = NULL;
	PcSample s = { 0 };
	const char *page;
	g_autofree char *extra = NULL;

	if (!row || row->status != ROW_OK)
		return;
	page = pc_backends[row->bi].page;
	if (bench_interrupted(b, &err) || !pc_run(b, net, row, guest, &s, &err)) {
		row->status = bench_status_of(err);
		row->error = g_strdup(err->message);
		g_printerr("migbench: %s %s %s run %d/%d: %s: %s\n", net->name, page, pc_arm_name(row), run + 1, b->runs,
			   bench_status_names[row->status], err->message);
		return;
	}
	g_array_append_val(row->samples, s);
	extra = s.has_stages ? g_strdup_printf("; stages: sum of hop p50s %.1f us, total p50 %.1f us",
					       s.stages.sum_hop_p50_us, s.stages.total_p50_us)
			     : g_strdup("");
	g_printerr("migbench: %s %s %s run %d/%d: p50 %.3f p90 %.3f p99 %.3f ms over %" G_GUINT64_FORMAT
		   " faults (kernel: p50 %.3f ms over %.0f), downtime %" G_GINT64_FORMAT " ms%s\n", net->name, page,
		   pc_arm_name(row), run + 1, b->runs, s.p50_us / 1e3, s.p90_us / 1e3, s.p99_us / 1e3, s.faults,
		   get_k_p50(&s) / 1e3, get_k_count(&s), s.downtime_ms, extra);
}

static void pc_net(Bench *b, PcNet *net, guint nback, guint64 guest)
{
	g_autoptr(GError) err = NULL;

	net->preempt_channels = b->preempt_channels;
	for (guint bi = 0; bi < nback; bi++) {
		for (int a = 0; a < N_ARMS; a++)
			net->rows[bi][a] = a != ARM_CHANNELS || b->preempt_channels > 1 ? pc_row_new(bi, (PcArm)a) : NULL;
		net->traced[bi] = pc_row_new(bi, ARM_PREEMPT);
		net->traced[bi]->traced = TRUE;
		net->untraced[bi] = pc_row_new(bi, ARM_PREEMPT);
		net->untraced[bi]->untraced = TRUE;
	}
	/* many faulting vCPUs: 4K, over every preempt channel there is (what such a
	 * host would use), after the other rows of each run */
	for (guint i = 0; i < b->n_vcpu_rows; i++) {
		PcRow *r = pc_row_new(0, b->preempt_channels > 1 ? ARM_CHANNELS : ARM_PREEMPT);

		r->vcpus = b->vcpu_rows[i];
		if (b->preempt_channels > 1)
			g_snprintf(r->name, sizeof(r->name), "%u ch, %u vCPUs", b->preempt_channels, r->vcpus);
		else
			g_snprintf(r->name, sizeof(r->name), "preempt, %u vCPUs", r->vcpus);
		net->many[net->nmany++] = r;
	}
	if (net->bed) {
		if (!(b->net = bench_net_new(NULL, &err))) {
			net->error = g_strdup(err->message);
			return;
		}
		for (int i = 0; i < 2; i++) {
			net->ns[i] = g_strdup(b->net->ns[i]);
			net->addr[i] = g_strdup(b->net->addr[i]);
		}
	}
	if ((net->bed && !pc_bed_check(b, net, &err)) || !pc_floor(b, net, nback, &err)) {
		net->error = g_strdup(err->message);
	} else {
		/* the arms take turns, starting one further each run, so drift on a shared
		 * machine spreads over all three. The preempt arm without the kernel tracer
		 * runs right after the preempt arm, so the pair sees the same machine. The
		 * traced run comes last: its probes slow the migration, so it is kept out of
		 * the arms' medians. */
		for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++) {
			for (guint bi = 0; bi < nback; bi++) {
				for (int k = 0; k < N_ARMS; k++) {
					pc_cell(b, net, net->rows[bi][(k + run) % N_ARMS], guest, run);
					if ((k + run) % N_ARMS == ARM_PREEMPT)
						pc_cell(b, net, net->untraced[bi], guest, run);
				}
				pc_cell(b, net, net->traced[bi], guest, run);
			}
			for (guint i = 0; i < net->nmany; i++)
				pc_cell(b, net, net->many[i], guest, run);
		}
	}
	bench_net_free(b->net);   /* every child of this net was reaped by now */
	b->net = NULL;
}

static int run_postcopy_latency(Bench *b)
{
	PcNet nets[2] = { { .name = "netns", .bed = TRUE }, { .name = "loopback", .bed = FALSE } };
	guint nback = b->quick ? 1 : PC_BACKENDS;
	guint64 guest = b->quick ? 256 << 20 : 1 * GiB;
	g_autoptr(GError) err = NULL;
	int rc = 0;

	for (guint i = 0; i < G_N_ELEMENTS(nets) && !bench_procs_interrupted(b->procs); i++)
		pc_net(b, &nets[i], nback, guest);
	for (guint i = 0; i < G_N_ELEMENTS(nets); i++) {
		if (!nets[i].rows[0][0])
			continue;   /* interrupted before it started */
		pc_print_net(b, &nets[i], nback, guest);
		rc |= nets[i].error != NULL;
		for (guint bi = 0; bi < nback; bi++) {
			for (int a = 0; a < N_ARMS; a++)
				rc |= nets[i].rows[bi][a] && nets[i].rows[bi][a]->status == ROW_ERROR;
			rc |= nets[i].traced[bi]->status == ROW_ERROR;
			rc |= nets[i].untraced[bi]->status == ROW_ERROR;
		}
		for (guint m = 0; m < nets[i].nmany; m++)
			rc |= nets[i].many[m]->status == ROW_ERROR;
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
	if (b->json_path && !pc_write_json(b, nets, G_N_ELEMENTS(nets), nback, guest, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (guint i = 0; i < G_N_ELEMENTS(nets); i++) {
		for (guint bi = 0; bi < PC_BACKENDS; bi++) {
			for (int a = 0; a < N_ARMS; a++)
				pc_row_free(nets[i].rows[bi][a]);
			pc_row_free(nets[i].traced[bi]);
			pc_row_free(nets[i].untraced[bi]);
		}
		for (guint m = 0; m < nets[i].nmany; m++)
			pc_row_free(nets[i].many[m]);
		for (int s = 0; s < 2; s++) {
			g_free(nets[i].ns[s]);
			g_free(nets[i].addr[s]);
		}
		g_free(nets[i].error);
	}
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_postcopy_latency = {
	"postcopy-latency", "postcopy page-fault latency with and without preempt, on a shaped netns link and loopback",
	run_postcopy_latency, 0,
};
