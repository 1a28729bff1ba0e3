/* Scenario downtime-size: an idle guest's downtime against its size (1, 2, 4, 8 and
 * 16 GiB; --quick 1 and 4), multifd 4 on loopback. Nothing is dirty at the stop, so
 * whatever grows with the size is work on all of RAM in the downtime (the last dirty
 * scan, the guest's state, the destination's checks). Both guests of a row are in
 * memory at once, whole: a row whose pair does not fit the memory available now is
 * skipped, saying so (16 GiB does not on a 24 GiB host). */
#include "tools/bench/runner.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DS_WORKLOAD "idle"
#define DS_CHANNELS 4
#define DS_MARGIN ((guint64)2 << 30) /* memory left to everyone else */

typedef struct DsSample {
	gint64 downtime_ms, ram_ms, other_ms, total_ms;
	gint64 downtime_bytes;
} DsSample;

typedef struct DsRow {
	guint64 bytes;
	GArray *samples;            /* DsSample */
	RowStatus status;
	char *error;
} DsRow;

static void ds_row_free(gpointer p)
{
	DsRow *r = p;

	g_array_unref(r->samples);
	g_free(r->error);
	g_free(r);
}

static double ds_median_of(const DsRow *r, gsize field)
{
	g_autofree double *v = g_new0(double, r->samples->len + 1);

	if (r->status != ROW_OK || !r->samples->len)
		return NAN;
	for (guint i = 0; i < r->samples->len; i++) {
		gint64 x = G_STRUCT_MEMBER(gint64, &g_array_index(r->samples, DsSample, i), field);

		if (x < 0)
			return NAN;
		v[i] = (double)x;
	}
	return bench_median(v, r->samples->len);
}

static double ds_median(const DsRow *r)
{
	return ds_median_of(r, G_STRUCT_OFFSET(DsSample, downtime_ms));
}

/* MemAvailable in bytes, 0 if unknown. */
static guint64 mem_available(void)
{
	g_autofree char *text = NULL;
	const char *p;

	if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL) || !(p = strstr(text, "MemAvailable:")))
		return 0;
	return g_ascii_strtoull(p + 13, NULL, 10) << 10;
}

static gboolean ds_fits(guint64 bytes, GError **err)
{
	guint64 need = 2 * bytes + DS_MARGIN, have = mem_available();

	if (have && have < need) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "two %" G_GUINT64_FORMAT " GiB guests need about %"
			    G_GUINT64_FORMAT " MiB, %" G_GUINT64_FORMAT " MiB are available", bytes >> 30, need >> 20,
			    have >> 20);
		return FALSE;
	}
	return TRUE;
}

static gboolean ds_run(Bench *b, const DsRow *row, DsSample *s, GError **err)
{
	g_autofree char *port = NULL, *uri = NULL;
	g_autoptr(JsonObject) src_done = NULL;
	guint seq = ++b->seq;
	MigdSpec src = { .backend = "anon", .guest_bytes = row->bytes, .workload = DS_WORKLOAD, .seed = seq, .side = -1 };
	MigdSpec dst = { .backend = "anon", .guest_bytes = row->bytes, .incoming = "tcp:127.0.0.1:0", .side = -1 };
	MigSample ms = { 0 };
	MigPair p = { 0 };
	gboolean ok;

	ok = ds_fits(row->bytes, err) && bench_pair_start(b, &src, &dst, &p, err) &&
	     bench_set_multifd(p.qdst, "destination", DS_CHANNELS, err) &&
	     bench_set_multifd(p.qsrc, "source", DS_CHANNELS, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":300}", err) &&
	     (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (src_done = bench_wait_source(b, &p, err)) &&
		     bench_wait_integrity(b, &p, &ms, err);
	}
	if (ok) {
		JsonObject *split = bench_obj_obj(src_done, "x-downtime-split");

		s->downtime_ms = bench_obj_int(src_done, "downtime", -1);
		s->total_ms = bench_obj_int(src_done, "total-time", -1);
		s->ram_ms = bench_obj_int(split, "ram-ms", -1);
		s->other_ms = bench_obj_int(split, "other-ms", -1);
		s->downtime_bytes = bench_obj_int(bench_obj_obj(src_done, "ram"), "downtime-bytes", -1);
	}
	bench_pair_stop(b, &p);
	return ok;
}

static void ds_cell(Bench *b, DsRow *row, int run)
{
	g_autoptr(GError) err = NULL;
	DsSample s = { 0 };

	if (row->status != ROW_OK)
		return;
	if (bench_interrupted(b, &err) || !ds_run(b, row, &s, &err)) {
		row->status = bench_status_of(err);
		row->error = g_strdup(err->message);
		g_printerr("migbench: %" G_GUINT64_FORMAT " GiB run %d/%d: %s: %s\n", row->bytes >> 30, run + 1, b->runs,
			   bench_status_names[row->status], err->message);
		return;
	}
	g_array_append_val(row->samples, s);
	g_printerr("migbench: %" G_GUINT64_FORMAT " GiB run %d/%d: downtime %" G_GINT64_FORMAT " ms, %" G_GINT64_FORMAT
		   " bytes\n", row->bytes >> 30, run + 1, b->runs, s.downtime_ms, s.downtime_bytes);
}

static double ds_vs_first(GPtrArray *rows, const DsRow *r)
{
	const DsRow *first = g_ptr_array_index(rows, 0);

	return first != r ? ds_median(r) / ds_median(first) : NAN;
}

static void ds_print(Bench *b, GPtrArray *rows)
{
	printf("\n%s: idle guest (" DS_WORKLOAD "), %u multifd channels, loopback TCP, median of %d run%s, %u CPUs\n",
	       b->scenario, DS_CHANNELS, b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("%-8s %12s %8s %9s %15s %10s %10s\n", "guest", "downtime ms", "ram ms", "other ms", "downtime bytes",
	       "total s", "vs 1 GiB");
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);
		g_autofree char *size = bench_fmt_size(r->bytes);
		g_autofree char *dt = r->status == ROW_OK ? bench_fmt_num(ds_median(r), 0) : g_strdup(bench_status_names[r->status]);
		g_autofree char *ram = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, ram_ms)), 0);
		g_autofree char *other = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, other_ms)), 0);
		g_autofree char *bytes = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, downtime_bytes)), 0);
		g_autofree char *total = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, total_ms)) / 1000, 1);
		g_autofree char *vs = bench_fmt_num(ds_vs_first(rows, r), 2);

		printf("%-8s %12s %8s %9s %15s %10s %10s\n", size, dt, ram, other, bytes, total, vs);
	}
	printf("target: the largest guest's downtime <= 1.2 x the 1 GiB one's\n");
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);

		if (r->status != ROW_OK)
			printf("%" G_GUINT64_FORMAT " GiB %s: %s\n", r->bytes >> 30, bench_status_names[r->status], r->error);
	}
	fflush(stdout);
}

static gboolean ds_write_json(Bench *b, GPtrArray *rows, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, 0);
	bench_json_str(j, "workload", DS_WORKLOAD);
	bench_json_int(j, "channels", DS_CHANNELS);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);

		json_builder_begin_object(j);
		bench_json_int(j, "guest_bytes", (gint64)r->bytes);
		bench_json_status(j, r->status, r->error);
		json_builder_set_member_name(j, "samples");
		json_builder_begin_array(j);
		for (guint k = 0; k < r->samples->len; k++) {
			const DsSample *s = &g_array_index(r->samples, DsSample, k);

			json_builder_begin_object(j);
			bench_json_int(j, "downtime_ms", s->downtime_ms);
			bench_json_int(j, "ram_ms", s->ram_ms);
			bench_json_int(j, "other_ms", s->other_ms);
			bench_json_int(j, "downtime_bytes", s->downtime_bytes);
			bench_json_int(j, "total_ms", s->total_ms);
			json_builder_end_object(j);
		}
		json_builder_end_array(j);
		bench_json_double(j, "median_downtime_ms", ds_median(r));
		bench_json_double(j, "vs_first", ds_vs_first(rows, r));
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

static int run_downtime_size(Bench *b)
{
	static const guint full[] = { 1, 2, 4, 8, 16 }, quick[] = { 1, 4 };
	const guint *gib = b->quick ? quick : full;
	guint n = b->quick ? G_N_ELEMENTS(quick) : G_N_ELEMENTS(full);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(ds_row_free);
	g_autoptr(GError) err = NULL;
	int rc = 0;

	b->unplotted = TRUE;
	for (guint i = 0; i < n; i++) {
		DsRow *r = g_new0(DsRow, 1);

		r->bytes = (guint64)gib[i] * GiB;
		r->samples = g_array_new(FALSE, TRUE, sizeof(DsSample));
		g_ptr_array_add(rows, r);
	}
	/* round by round, so a load that drifts over minutes weighs on every size alike */
	for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++)
		for (guint i = 0; i < rows->len && !bench_procs_interrupted(b->procs); i++)
			ds_cell(b, g_ptr_array_index(rows, i), run);
	ds_print(b, rows);
	if (b->json_path && !ds_write_json(b, rows, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (guint i = 0; i < rows->len; i++)
		rc |= ((DsRow *)g_ptr_array_index(rows, i))->status == ROW_ERROR;
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_downtime_size = {
	.name = "downtime-size",
	.summary = "an idle guest's downtime against its size (1..16 GiB)",
	.run = run_downtime_size,
};
