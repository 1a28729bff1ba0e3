/* Scenario precopy-throughput: how fast an idle guest's memory moves by precopy, in
 * GB/s, by memory backend and multifd channels, against the same bytes moved by
 * mig-rawxfer over the same connections (the raw baseline, run alternately with the
 * migrations so drift on a shared machine hits both). docs/benchmarks.md explains the
 * columns. */
#include "tools/bench/runner.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const raw_mem_names[] = { "hot", "distinct-4k", "distinct-2m" };
#define RAW_HUGE_SLACK 8u   /* 2M pages beyond 2 x guest size: 8 connections' slack, rounded */

typedef struct Row {
	char *backend;
	guint channels;             /* multifd channels; 0 = multifd off ("main") */
	RawMem raw_mem;             /* memory of the baseline, raw */
	GArray *raw;                /* RawSample, in run order: the baseline */
	GArray *raw_hot;            /* RawSample: the same transfer from one hot buffer */
	GArray *mig;                /* MigSample, in run order */
	RowStatus status;
	char *error;
} Row;

typedef struct MigCell {
	const char *backend;        /* migd --mem-backend */
	gboolean huge;              /* 2M huge pages */
	guint channels;             /* 0: multifd off */
	guint64 guest_bytes;
} MigCell;

/* Waits for the migration to end; fills the sample when it completed. */
static gboolean wait_migration(Bench *b, MigPair *p, MigSample *s, GError **err)
{
	g_autoptr(JsonObject) o = bench_wait_source(b, p, err);

	return o && bench_mig_sample(o, s, err);
}

/* precopy-throughput's pair: an idle source, a destination on loopback. */
static gboolean precopy_pair_start(Bench *b, const MigCell *cell, MigPair *p, GError **err)
{
	guint seq = ++b->seq;
	MigdSpec src = { .backend = cell->backend, .huge = cell->huge, .guest_bytes = cell->guest_bytes,
			 .workload = "idle", .seed = seq, .side = -1 };
	MigdSpec dst = { .backend = cell->backend, .huge = cell->huge, .guest_bytes = cell->guest_bytes,
			 .prealloc = TRUE, .incoming = "tcp:127.0.0.1:0", .side = -1 };

	return bench_pair_start(b, &src, &dst, p, err);
}

static gboolean precopy_run(Bench *b, const MigCell *cell, MigSample *s, GError **err)
{
	MigPair p = { 0 };
	g_autofree char *port = NULL, *uri = NULL;
	gboolean ok;

	/* multifd goes on the destination first: it must know before the source connects */
	ok = precopy_pair_start(b, cell, &p, err) && bench_set_multifd(p.qdst, "destination", cell->channels, err) &&
	     bench_set_multifd(p.qsrc, "source", cell->channels, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":300}", err) &&
	     (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && wait_migration(b, &p, s, err) &&
		     bench_wait_integrity(b, &p, s, err);
	}
	bench_pair_stop(b, &p);
	return ok;
}

static Row *row_new(const char *backend, guint channels)
{
	Row *r = g_new0(Row, 1);

	r->backend = g_strdup(backend);
	r->channels = channels;
	r->raw = g_array_new(FALSE, TRUE, sizeof(RawSample));
	r->raw_hot = g_array_new(FALSE, TRUE, sizeof(RawSample));
	r->mig = g_array_new(FALSE, TRUE, sizeof(MigSample));
	return r;
}

static void row_free(gpointer p)
{
	Row *r = p;

	g_array_unref(r->raw);
	g_array_unref(r->raw_hot);
	g_array_unref(r->mig);
	g_free(r->backend);
	g_free(r->error);
	g_free(r);
}

static void row_fail(Row *r, const char *what, const GError *e)
{
	r->status = bench_status_of(e);
	r->error = g_strdup_printf("%s: %s", what, e->message);
}

static char *row_channels(const Row *r)
{
	return r->channels ? g_strdup_printf("%u", r->channels) : g_strdup("main");
}

static double raw_median(const GArray *raw)
{
	g_autofree double *v = g_new0(double, raw->len + 1);

	for (guint i = 0; i < raw->len; i++)
		v[i] = g_array_index(raw, RawSample, i).gbps;
	return raw->len ? bench_median(v, raw->len) : NAN;
}

static double mig_median(const Row *r)
{
	g_autofree double *v = g_new0(double, r->mig->len + 1);

	for (guint i = 0; i < r->mig->len; i++)
		v[i] = g_array_index(r->mig, MigSample, i).gbps;
	return bench_median(v, r->mig->len);
}

/* Median over the runs of mig / raw of the same run: a run's raw and mig figures are
 * taken seconds apart, so a burst of other load on the host tends to hit both. */
static double paired_median(const Row *r)
{
	guint n = MIN(r->mig->len, r->raw->len);
	g_autofree double *v = g_new0(double, n + 1);

	for (guint i = 0; i < n; i++)
		v[i] = g_array_index(r->mig, MigSample, i).gbps / g_array_index(r->raw, RawSample, i).gbps;
	return n ? bench_median(v, n) : NAN;
}

/* Median CPU ms per GiB of guest memory; NAN unless every run reported it. */
static double cpu_median(const Row *r)
{
	g_autofree double *v = g_new0(double, r->mig->len + 1);

	for (guint i = 0; i < r->mig->len; i++) {
		const MigSample *s = &g_array_index(r->mig, MigSample, i);

		if (s->cpu_ms < 0)
			return NAN;
		v[i] = (double)s->cpu_ms / ((double)s->ram_total / (double)GiB);
	}
	return bench_median(v, r->mig->len);
}

static void print_table(Bench *b, GPtrArray *rows, guint64 guest_bytes)
{
	gboolean footnotes = FALSE;

	g_autofree char *size = bench_fmt_size(guest_bytes);

	printf("\n%s: %s idle guest, loopback TCP, median of %d run%s, %u CPUs\n", b->scenario, size, b->runs,
	       b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("%-8s %-8s %9s %11s %8s %7s %13s %8s %11s\n", "backend", "channels", "raw GB/s", "mig GB/s", "mig/raw",
	       "paired", "raw-hot GB/s", "mig/hot", "CPU ms/GiB");
	for (guint i = 0; i < rows->len; i++) {
		Row *r = g_ptr_array_index(rows, i);
		gboolean ok = r->status == ROW_OK;
		double raw = raw_median(r->raw), hot = raw_median(r->raw_hot), mig = ok ? mig_median(r) : NAN;
		g_autofree char *ch = row_channels(r), *raws = bench_fmt_num(raw, 2), *hots = bench_fmt_num(hot, 2);
		g_autofree char *migs = ok ? bench_fmt_num(mig, 2) : g_strdup(bench_status_names[r->status]);
		g_autofree char *ratio = bench_fmt_num(ok ? mig / raw : NAN, 2), *ratio_hot = bench_fmt_num(ok ? mig / hot : NAN, 2);
		g_autofree char *cpu = bench_fmt_num(ok ? cpu_median(r) : NAN, 0), *paired = bench_fmt_num(ok ? paired_median(r) : NAN, 2);

		printf("%-8s %-8s %9s %11s %8s %7s %13s %8s %11s\n", r->backend, ch, raws, migs, ratio, paired, hots, ratio_hot,
		       cpu);
		footnotes |= !ok;
	}
	printf("raw: mig-rawxfer --distinct, from and into pre-touched memory of the guest's page size, each byte once;\n"
	       "raw-hot: one reused cache-hot 512 KiB buffer per connection on both ends (docs/benchmarks.md)\n");
	printf("TCP congestion control of raw and mig alike: %s\n",
	       b->raw_cc[strlen("--congestion=")] ? b->raw_cc + strlen("--congestion=") : "the system's");
	if (footnotes)
		printf("\n");
	for (guint i = 0; i < rows->len; i++) {
		Row *r = g_ptr_array_index(rows, i);
		g_autofree char *ch = row_channels(r);

		if (r->status != ROW_OK)
			printf("%s/%s %s: %s\n", r->backend, ch, bench_status_names[r->status], r->error);
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static void json_raw_samples(JsonBuilder *j, const char *name, RawMem mem, const GArray *raw)
{
	json_builder_set_member_name(j, name);
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "memory");
	json_builder_add_string_value(j, raw_mem_names[mem]);
	json_builder_set_member_name(j, "samples");
	json_builder_begin_array(j);
	for (guint i = 0; i < raw->len; i++) {
		const RawSample *s = &g_array_index(raw, RawSample, i);

		json_builder_begin_object(j);
		bench_json_int(j, "bytes", (gint64)s->bytes);
		bench_json_double(j, "seconds", s->seconds);
		bench_json_double(j, "gbps", s->gbps);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	bench_json_double(j, "median_gbps", raw_median(raw));
	json_builder_end_object(j);
}

static void json_mig_sample(JsonBuilder *j, const MigSample *s)
{
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "status");
	json_builder_add_string_value(j, "completed");   /* only completed runs become samples */
	bench_json_double(j, "gbps", s->gbps);
	bench_json_int(j, "total_time_ms", s->total_ms);
	bench_json_int(j, "setup_time_ms", s->setup_ms);
	bench_json_int(j, "downtime_ms", s->downtime_ms);
	bench_json_int(j, "ram_total", (gint64)s->ram_total);
	bench_json_int(j, "ram_transferred", (gint64)s->ram_transferred);
	json_builder_set_member_name(j, "migration_thread_cpu_ms");
	if (s->cpu_ms < 0)
		json_builder_add_null_value(j);
	else
		json_builder_add_int_value(j, s->cpu_ms);
	json_builder_set_member_name(j, "integrity");
	json_builder_begin_object(j);
	bench_json_int(j, "checked", (gint64)s->checked);
	bench_json_int(j, "failed", (gint64)s->failed);
	bench_json_int(j, "total", (gint64)s->units);
	json_builder_end_object(j);
	json_builder_end_object(j);
}

static void json_row(JsonBuilder *j, const Row *r)
{
	gboolean ok = r->status == ROW_OK;

	json_builder_begin_object(j);
	json_builder_set_member_name(j, "backend");
	json_builder_add_string_value(j, r->backend);
	json_builder_set_member_name(j, "channels");
	if (r->channels)
		json_builder_add_int_value(j, r->channels);
	else
		json_builder_add_string_value(j, "main");
	json_builder_set_member_name(j, "multifd");
	json_builder_add_boolean_value(j, r->channels > 0);
	bench_json_status(j, r->status, r->error);
	json_raw_samples(j, "raw", r->raw_mem, r->raw);
	json_raw_samples(j, "raw_hot", RAW_HOT, r->raw_hot);
	json_builder_set_member_name(j, "mig");
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "samples");
	json_builder_begin_array(j);
	for (guint i = 0; i < r->mig->len; i++)
		json_mig_sample(j, &g_array_index(r->mig, MigSample, i));
	json_builder_end_array(j);
	bench_json_double(j, "median_gbps", ok ? mig_median(r) : NAN);
	bench_json_double(j, "median_cpu_ms_per_gib", ok ? cpu_median(r) : NAN);
	json_builder_end_object(j);
	bench_json_double(j, "ratio", ok ? mig_median(r) / raw_median(r->raw) : NAN);
	bench_json_double(j, "ratio_paired", ok ? paired_median(r) : NAN);
	bench_json_double(j, "ratio_hot", ok ? mig_median(r) / raw_median(r->raw_hot) : NAN);
	json_builder_end_object(j);
}

static gboolean write_json(Bench *b, GPtrArray *rows, guint64 guest_bytes, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, guest_bytes);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++)
		json_row(j, g_ptr_array_index(rows, i));
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

/* 0 all rows measured or skipped by the host, 1 a row failed, 130 interrupted */
static int rows_exit_status(Bench *b, GPtrArray *rows)
{
	int rc = 0;

	for (guint i = 0; i < rows->len; i++) {
		Row *r = g_ptr_array_index(rows, i);

		if (r->status == ROW_INTERRUPTED)
			return 130;
		if (r->status == ROW_ERROR)
			rc = 1;
	}
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

static int finish_scenario(Bench *b, GPtrArray *rows, guint64 guest_bytes)
{
	g_autoptr(GError) err = NULL;
	int rc = rows_exit_status(b, rows);

	print_table(b, rows, guest_bytes);
	if (b->json_path && !write_json(b, rows, guest_bytes, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		return 1;
	}
	b->keep_tmp |= rc == 1;
	return rc;
}

static void report_run(const MigCell *cell, const Row *row, int run, int runs, const RawSample *rs,
		       const RawSample *hot, const MigSample *ms, const GError *mig_err)
{
	g_autofree char *ch = row_channels(row);
	g_autofree char *mig = ms ? g_strdup_printf("%.2f GB/s", ms->gbps)
				  : mig_err ? g_strdup_printf("%s: %s", bench_status_names[row->status], mig_err->message)
					    : g_strdup_printf("not run (%s)", bench_status_names[row->status]);

	g_autofree char *hots = hot ? g_strdup_printf(", raw-hot %.2f GB/s", hot->gbps) : g_strdup("");

	g_printerr("migbench: %s/%s run %d/%d: raw %.2f GB/s, mig %s%s\n", cell->backend, ch, run + 1, runs, rs->gbps,
		   mig, hots);
}

/* The baseline moves the guest's size from and into pre-touched memory of the guest's
 * page size, as a migration does; on a hugetlb row that needs the huge pages now. */
static RawMem raw_mem_for(Bench *b, const MigCell *cell)
{
	g_autoptr(GError) e = NULL;

	if (!cell->huge)
		return RAW_DISTINCT;
	/* sender and receiver buffers; the receiver's has 512 KiB more per connection */
	if (bench_huge_ensure(b, 2 * (cell->guest_bytes / HUGEPAGE_BYTES) + RAW_HUGE_SLACK, &e))
		return RAW_DISTINCT_HUGE;
	bench_note(b, "raw baseline of the hugetlb rows in 4K pages: %s", e->message);
	return RAW_DISTINCT;
}

/* One cell: raw and mig runs alternate, so drift on a shared machine hits both. A row
 * the host cannot migrate (skipped: no huge pages to give) still measures its raw
 * baseline. A failed run ends the row. */
static void precopy_cell(Bench *b, const MigCell *cell, Row *row)
{
	row->raw_mem = raw_mem_for(b, cell);
	for (int run = 0; run < b->runs; run++) {
		g_autoptr(GError) err = NULL;
		RawSample rs = { 0 }, hot = { 0 };
		MigSample ms = { 0 };
		guint conns = MAX(cell->channels, 1);

		if (bench_interrupted(b, &err) || !bench_raw_run(b, FALSE, conns, cell->guest_bytes, row->raw_mem, &rs, &err)) {
			g_clear_pointer(&row->error, g_free);
			row_fail(row, "raw", err);
			return;
		}
		g_array_append_val(row->raw, rs);
		if (row->status == ROW_OK && !precopy_run(b, cell, &ms, &err)) {
			row_fail(row, "mig", err);
			report_run(cell, row, run, b->runs, &rs, NULL, NULL, err);
			if (row->status == ROW_SKIPPED)
				continue;
			return;
		}
		/* the old cache-hot baseline, kept beside the fair one so nothing is hidden */
		if (bench_interrupted(b, &err) || !bench_raw_run(b, FALSE, conns, cell->guest_bytes, RAW_HOT, &hot, &err)) {
			g_clear_pointer(&row->error, g_free);
			row_fail(row, "raw-hot", err);
			return;
		}
		g_array_append_val(row->raw_hot, hot);
		if (row->status != ROW_OK) {
			report_run(cell, row, run, b->runs, &rs, &hot, NULL, NULL);
			continue;
		}
		g_array_append_val(row->mig, ms);
		report_run(cell, row, run, b->runs, &rs, &hot, &ms, NULL);
	}
}

static int run_precopy_throughput(Bench *b)
{
	static const guint full_channels[] = { 0, 1, 2, 4, 8 };
	static const guint quick_channels[] = { 0, 1, 4 };
	static const struct { const char *backend; gboolean huge; } backends[] = {
		{ "anon", FALSE },
		{ "hugetlb", TRUE },
	};
	const guint *channels = b->quick ? quick_channels : full_channels;
	guint n_channels = b->quick ? G_N_ELEMENTS(quick_channels) : G_N_ELEMENTS(full_channels);
	guint64 guest = b->guest_bytes ? b->guest_bytes : b->quick ? 1 * GiB : 2 * GiB;
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(row_free);

	for (guint bi = 0; bi < G_N_ELEMENTS(backends); bi++) {
		for (guint ci = 0; ci < n_channels && !bench_procs_interrupted(b->procs); ci++) {
			MigCell cell = { backends[bi].backend, backends[bi].huge, channels[ci], guest };
			Row *row = row_new(cell.backend, cell.channels);

			g_ptr_array_add(rows, row);
			precopy_cell(b, &cell, row);
		}
	}
	return finish_scenario(b, rows, guest);
}

const BenchScenario bench_precopy_throughput = {
	"precopy-throughput", "idle-guest precopy GB/s against raw loopback TCP, by backend and channels",
	run_precopy_throughput, 0,
};
