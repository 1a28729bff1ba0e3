/* Scenario downtime-size: an idle guest's downtime against its size (1, 2, 4, 8 and
 * 16 GiB; --quick 1 and 4), multifd 4 on loopback, each size with guest RAM in 4 KiB
 * pages and on transparent huge pages. Nothing is dirty at the stop, so whatever grows
 * with the size is work on all of RAM in the downtime (the last dirty scan, the guest's
 * state, the destination's checks); x-downtime-us says which step. Both guests of a row
 * are in memory at once, each holding what its source wrote: all of it where the pair
 * fits the memory available, else a contiguous head that fits (migd used=; the rest
 * is never touched and holds no memory), or --used for every row; a row that does not
 * fit even so is skipped, saying so. A third kind, 4K-log, is
 * 4 KiB pages with the source tracking writes by sync uffd-wp faults (migd --dirty-log),
 * whose last sync costs what was written instead of a walk of all RAM. --sizes picks the
 * sizes. --workload makes the source guest busy, with a 4K row (the scan) beside a
 * 4K-log row at each size: what the log costs a writing guest, in its own write rate
 * (migd's x-guest-writes) before and during precopy, passes, total time and downtime. */
#include "tools/bench/runner.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DS_IDLE "idle"
#define DS_UNIT_BYTES 4096u                /* migd's unit, what x-guest-writes counts (tools/migd/unit.h) */
#define DS_RATE_WINDOW_US G_USEC_PER_SEC   /* a busy guest's write rate before the migration */
#define DS_CHANNELS 4
#define DS_MARGIN ((guint64)2 << 30) /* memory left to everyone else */
#define DS_DRIFT ((guint64)1 << 30)  /* spare when a row's used is picked to fit */

/* x-downtime-us's steps, in its order (docs/qmp.md) */
static const char *const ds_steps[] = { "stop", "sync", "send", "pass", "state", "ready", "running" };
#define DS_NSTEPS G_N_ELEMENTS(ds_steps)

typedef struct DsSample {
	gint64 downtime_ms, ram_ms, other_ms, total_ms;
	gint64 downtime_bytes;
	gint64 downtime_us;          /* x-downtime-us total; -1 absent */
	gint64 step_us[DS_NSTEPS];   /* x-downtime-us's steps; -1 absent */
	gint64 huge_pct;             /* the source's AnonHugePages at the start, % of the guest; -1 unknown */
	gint64 passes;               /* ram.dirty-sync-count */
	gint64 wr_before_kibs;       /* the busy guest's writes, KiB/s, the second before migrate; -1 idle */
	gint64 wr_during_kibs;       /* and from migrate to the stop; -1 idle */
	gint64 src_rss, dst_rss;     /* each side's Rss in bytes once the destination verified; -1 unknown */
} DsSample;

typedef enum {
	DS_4K,                      /* guest RAM in 4 KiB pages, migd's defaults */
	DS_THP,                     /* guests on transparent huge pages (migd --mem-thp) */
	DS_4K_LOG,                  /* 4 KiB pages, the source's tracker the sync log (--dirty-log) */
	DS_NKINDS
} DsPages;

static const char *const ds_pages_names[DS_NKINDS] = { "4K", "THP", "4K-log" };
static const char *const ds_pages_json[DS_NKINDS] = { "4k", "thp", "4k-log" };

typedef struct DsRow {
	guint64 bytes;
	guint64 used;               /* what the source guest writes (migd used=), <= bytes */
	DsPages pages;
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

/* The downtime in ms from x-downtime-us, finer than query-migrate's whole ms. */
static double ds_median(const DsRow *r)
{
	return ds_median_of(r, G_STRUCT_OFFSET(DsSample, downtime_us)) / 1000;
}

/* A field of /proc/PID/smaps_rollup ("Rss:", "AnonHugePages:") in bytes; -1 unknown. */
static gint64 rollup_bytes(pid_t pid, const char *field)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)pid);
	g_autofree char *text = NULL;
	const char *p;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strstr(text, field)))
		return -1;
	return (gint64)g_ascii_strtoull(p + strlen(field), NULL, 10) << 10;
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

/* What a pair of guests of bytes, each holding used of them, needs: the written part
 * twice (a never-written tail gets no page on either side: the senders and the
 * verifier look it up in the page tables instead of reading it), the source's page
 * tables over all of it (4K-log's write-protection puts a marker in every entry, 8 bytes
 * per 4 KiB; the scan's only where the guest wrote) and migd's arrays, 9 bytes per
 * unit over the two sides
 * (generations, record, check state): about 1/256 of the guest in all. */
static guint64 ds_need(guint64 bytes, guint64 used)
{
	return 2 * used + bytes / 256 + DS_MARGIN;
}

static gboolean ds_fits(guint64 bytes, guint64 used, GError **err)
{
	guint64 need = ds_need(bytes, used), have = mem_available();

	if (have && have < need) {
		g_autofree char *u = bench_fmt_size(used);

		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "two %" G_GUINT64_FORMAT " GiB guests holding %s each "
			    "need about %" G_GUINT64_FORMAT " MiB, %" G_GUINT64_FORMAT " MiB are available", bytes >> 30, u,
			    need >> 20, have >> 20);
		return FALSE;
	}
	return TRUE;
}

/* What a row's source writes: --used, else all of it if the pair fits now, else the
 * most whole GiB that fit with DS_DRIFT to spare (at least 1); a row that does not fit
 * even so is skipped by ds_fits at its run. Decided once, before the first run, so
 * every run of a row holds the same; the spare is for what MemAvailable loses between
 * now and the row's run (page cache, the smaller rows' leftovers), which left a pick
 * made to the last GiB skipped at its own check. */
static guint64 ds_row_used(const Bench *b, guint64 bytes, guint64 have)
{
	guint64 fit;

	if (b->ds_used)
		return MIN(b->ds_used, bytes);
	if (!have || have >= ds_need(bytes, bytes))
		return bytes;
	fit = have > ds_need(bytes, 0) + DS_DRIFT ? (have - ds_need(bytes, 0) - DS_DRIFT) / 2 : 0;
	return MIN(MAX(fit / GiB, 1) * GiB, bytes);
}

/* The source guest's x-guest-writes (units) now, with the time it was read. */
static gboolean ds_writes(MigPair *p, guint64 *units, gint64 *at, GError **err)
{
	g_autoptr(JsonObject) o = bench_query_migrate(p->qsrc, err);

	if (!o)
		return FALSE;
	*at = g_get_monotonic_time();
	*units = (guint64)MAX(bench_obj_int(o, "x-guest-writes", 0), 0);
	return TRUE;
}

static gint64 kib_per_s(guint64 units, gint64 us)
{
	return us > 0 ? (gint64)((double)units * (DS_UNIT_BYTES >> 10) * G_USEC_PER_SEC / (double)us) : -1;
}

static gboolean ds_run(Bench *b, const DsRow *row, DsSample *s, GError **err)
{
	g_autofree char *port = NULL, *uri = NULL;
	g_autoptr(JsonObject) src_done = NULL;
	guint seq = ++b->seq;
	const char *base = b->ds_workload ? b->ds_workload : DS_IDLE;
	g_autofree char *workload = row->used < row->bytes ?
		g_strdup_printf("%s,used=%" G_GUINT64_FORMAT, base, row->used) : g_strdup(base);
	MigdSpec src = { .backend = "anon", .guest_bytes = row->bytes, .workload = workload, .seed = seq,
			 .thp = row->pages == DS_THP, .dirty_log = row->pages == DS_4K_LOG, .side = -1 };
	MigdSpec dst = { .backend = "anon", .guest_bytes = row->bytes, .incoming = "tcp:127.0.0.1:0",
			 .thp = row->pages == DS_THP, .side = -1 };
	MigSample ms = { 0 };
	MigPair p = { 0 };
	guint64 w0 = 0, w1 = 0;
	gint64 t0 = 0, t1 = 0;
	gboolean ok;

	ok = ds_fits(row->bytes, row->used, err) && bench_pair_start(b, &src, &dst, &p, err) &&
	     bench_set_multifd(p.qdst, "destination", DS_CHANNELS, err) &&
	     bench_set_multifd(p.qsrc, "source", DS_CHANNELS, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":300}", err) &&
	     (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		gint64 huge = rollup_bytes(p.src->pid, "AnonHugePages:");

		/* of what the guest wrote: a tail never written has no pages to be huge */
		s->huge_pct = huge < 0 ? -1 : (gint64)((guint64)huge * 100 / row->used);
		s->wr_before_kibs = s->wr_during_kibs = -1;
		if (b->ds_workload) {
			ok = ds_writes(&p, &w0, &t0, err) && (g_usleep(DS_RATE_WINDOW_US), ds_writes(&p, &w1, &t1, err));
			s->wr_before_kibs = kib_per_s(w1 - w0, t1 - t0);
		}
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		ok = ok && bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (src_done = bench_wait_source(b, &p, err)) &&
		     bench_wait_integrity(b, &p, &ms, err);
	}
	if (ok) {
		/* the verifier has read every unit: a tail that got pages shows here */
		s->src_rss = rollup_bytes(p.src->pid, "Rss:");
		s->dst_rss = rollup_bytes(p.dst->pid, "Rss:");
	}
	if (ok) {
		JsonObject *split = bench_obj_obj(src_done, "x-downtime-split");

		s->downtime_ms = bench_obj_int(src_done, "downtime", -1);
		s->total_ms = bench_obj_int(src_done, "total-time", -1);
		s->ram_ms = bench_obj_int(split, "ram-ms", -1);
		s->other_ms = bench_obj_int(split, "other-ms", -1);
		s->downtime_bytes = bench_obj_int(bench_obj_obj(src_done, "ram"), "downtime-bytes", -1);
		s->passes = bench_obj_int(bench_obj_obj(src_done, "ram"), "dirty-sync-count", -1);
		if (b->ds_workload) {
			guint64 w2 = (guint64)MAX(bench_obj_int(src_done, "x-guest-writes", 0), 0);

			/* migrate to the stop: total-time less the downtime, the guest stopped since */
			s->wr_during_kibs = kib_per_s(w2 - MIN(w1, w2), (s->total_ms - s->downtime_ms) * 1000);
		}
		split = bench_obj_obj(src_done, "x-downtime-us");
		s->downtime_us = bench_obj_int(split, "total", -1);
		for (guint i = 0; i < DS_NSTEPS; i++)
			s->step_us[i] = bench_obj_int(split, ds_steps[i], -1);
		if (s->downtime_us < 0) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the source's query-migrate has no x-downtime-us");
			ok = FALSE;
		}
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
	g_printerr("migbench: %" G_GUINT64_FORMAT " GiB %s run %d/%d: downtime %.3f ms, sync %.3f ms, %" G_GINT64_FORMAT
		   " bytes, %" G_GINT64_FORMAT " %% huge, %" G_GINT64_FORMAT " passes, total %" G_GINT64_FORMAT
		   " ms, Rss src %" G_GINT64_FORMAT " dst %" G_GINT64_FORMAT " MiB",
		   row->bytes >> 30, ds_pages_names[row->pages], run + 1, b->runs, (double)s.downtime_us / 1000,
		   (double)s.step_us[1] / 1000, s.downtime_bytes, s.huge_pct, s.passes, s.total_ms, s.src_rss >> 20,
		   s.dst_rss >> 20);
	if (b->ds_workload)
		g_printerr(", guest writes %.1f MiB/s before, %.1f during precopy", (double)s.wr_before_kibs / 1024,
			   (double)s.wr_during_kibs / 1024);
	g_printerr("\n");
}

/* Against the smallest guest of the same pages. */
static double ds_vs_first(GPtrArray *rows, const DsRow *r)
{
	for (guint i = 0; i < rows->len; i++) {
		const DsRow *first = g_ptr_array_index(rows, i);

		if (first->pages == r->pages)
			return first != r ? ds_median(r) / ds_median(first) : NAN;
	}
	return NAN;
}

static gboolean ds_any_tail(GPtrArray *rows)
{
	for (guint i = 0; i < rows->len; i++) {
		const DsRow *r = g_ptr_array_index(rows, i);

		if (r->used < r->bytes)
			return TRUE;
	}
	return FALSE;
}

static void ds_print(Bench *b, GPtrArray *rows)
{
	guint64 first_gib = rows->len ? ((DsRow *)g_ptr_array_index(rows, 0))->bytes >> 30 : 1;
	g_autofree char *vs_head = g_strdup_printf("vs %" G_GUINT64_FORMAT " GiB", first_gib);

	printf("\n%s: %s guest (%s), %u multifd channels, loopback TCP, median of %d run%s, %u CPUs\n",
	       b->scenario, b->ds_workload ? "busy" : "idle", b->ds_workload ? b->ds_workload : DS_IDLE, DS_CHANNELS,
	       b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("pages: 4K = guest RAM in 4 KiB pages (migd's default), THP = transparent huge pages (--mem-thp),\n"
	       "4K-log = 4 KiB pages tracked by sync uffd-wp faults (source migd --dirty-log);\n"
	       "huge: the source's AnonHugePages at the start; downtime and its steps (x-downtime-us) in ms\n");
	if (b->ds_workload)
		printf("wr before / during: the guest's own writes in MiB/s (x-guest-writes), the second before migrate\n"
		       "and from migrate to the stop\n");
	if (ds_any_tail(rows))
		printf("used: what the source guest wrote (migd used=), the rest of it zero, never touched by the\n"
		       "guest, holding no memory on either side, verified zero on the destination; huge: of the\n"
		       "used part. No row's sync walks the tail: the scan (4K, THP) protects only the page tables\n"
		       "there are and the tail has none; 4K-log reads its log\n");
	printf("%-7s %-7s %-6s %5s %9s", "guest", "used", "pages", "huge", "downtime");
	for (guint k = 0; k < DS_NSTEPS; k++)
		printf(" %7s", ds_steps[k]);
	printf(" %6s %8s %9s", "bytes", "total s", vs_head);
	if (b->ds_workload)
		printf(" %6s %9s %9s", "passes", "wr before", "wr during");
	printf("\n");
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);
		g_autofree char *size = bench_fmt_size(r->bytes);
		g_autofree char *used = bench_fmt_size(r->used);
		g_autofree char *dt = r->status == ROW_OK ? bench_fmt_num(ds_median(r), 2) : g_strdup(bench_status_names[r->status]);
		g_autofree char *huge = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, huge_pct)), 0);
		g_autofree char *bytes = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, downtime_bytes)), 0);
		g_autofree char *total = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, total_ms)) / 1000, 1);
		g_autofree char *vs = bench_fmt_num(ds_vs_first(rows, r), 2);

		printf("%-7s %-7s %-6s %4s%% %9s", size, used, ds_pages_names[r->pages], huge, dt);
		for (guint k = 0; k < DS_NSTEPS; k++) {
			g_autofree char *v = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, step_us) +
								      k * sizeof(gint64)) / 1000, 2);

			printf(" %7s", v);
		}
		printf(" %6s %8s %9s", bytes, total, vs);
		if (b->ds_workload) {
			g_autofree char *passes = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, passes)), 0);
			g_autofree char *wb = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, wr_before_kibs)) /
							    1024, 1);
			g_autofree char *wd = bench_fmt_num(ds_median_of(r, G_STRUCT_OFFSET(DsSample, wr_during_kibs)) /
							    1024, 1);

			printf(" %6s %9s %9s", passes, wb, wd);
		}
		printf("\n");
	}
	if (!b->ds_workload)
		printf("target: the largest guest's downtime <= 1.2 x the 1 GiB one's (each kind of pages against its own)\n");
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);

		if (r->status != ROW_OK)
			printf("%" G_GUINT64_FORMAT " GiB %s %s: %s\n", r->bytes >> 30, ds_pages_names[r->pages],
			       bench_status_names[r->status], r->error);
	}
	fflush(stdout);
}

static gboolean ds_write_json(Bench *b, GPtrArray *rows, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, 0);
	bench_json_str(j, "workload", b->ds_workload ? b->ds_workload : DS_IDLE);
	bench_json_int(j, "channels", DS_CHANNELS);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++) {
		DsRow *r = g_ptr_array_index(rows, i);

		json_builder_begin_object(j);
		bench_json_int(j, "guest_bytes", (gint64)r->bytes);
		bench_json_int(j, "used_bytes", (gint64)r->used);
		bench_json_str(j, "pages", ds_pages_json[r->pages]);
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
			bench_json_int(j, "downtime_us", s->downtime_us);
			for (guint m = 0; m < DS_NSTEPS; m++) {
				g_autofree char *name = g_strdup_printf("%s_us", ds_steps[m]);

				bench_json_int(j, name, s->step_us[m]);
			}
			bench_json_int(j, "huge_pct", s->huge_pct);
			bench_json_int(j, "passes", s->passes);
			bench_json_int(j, "src_rss_bytes", s->src_rss);
			bench_json_int(j, "dst_rss_bytes", s->dst_rss);
			if (b->ds_workload) {
				bench_json_int(j, "guest_write_kibs_before", s->wr_before_kibs);
				bench_json_int(j, "guest_write_kibs_during", s->wr_during_kibs);
			}
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

/* --rows NAME,...: the kinds of *kinds named (4k, thp, 4k-log), kept in their order in picked. */
static gboolean ds_pick_kinds(const char *names, const DsPages **kinds, guint *nk, DsPages *picked)
{
	g_auto(GStrv) only = g_strsplit(names, ",", -1);
	guint n = 0;

	for (guint i = 0; only[i]; i++) {
		gboolean known = FALSE;

		for (guint k = 0; k < *nk; k++)
			known |= !g_ascii_strcasecmp(only[i], ds_pages_json[(*kinds)[k]]);
		if (!known) {
			g_printerr("migbench: --rows: no row '%s' here (", only[i]);
			for (guint k = 0; k < *nk; k++)
				g_printerr("%s%s", k ? ", " : "", ds_pages_json[(*kinds)[k]]);
			g_printerr(")\n");
			return FALSE;
		}
	}
	for (guint k = 0; k < *nk; k++)
		for (guint i = 0; only[i]; i++)
			if (!g_ascii_strcasecmp(only[i], ds_pages_json[(*kinds)[k]])) {
				picked[n++] = (*kinds)[k];
				break;
			}
	if (!n) {
		g_printerr("migbench: --rows: no row named\n");
		return FALSE;
	}
	*kinds = picked;
	*nk = n;
	return TRUE;
}

static int run_downtime_size(Bench *b)
{
	static const guint full[] = { 1, 2, 4, 8, 16 }, quick[] = { 1, 4 }, busy[] = { 1, 4 }, busy_quick[] = { 1 };
	static const DsPages all_kinds[] = { DS_4K, DS_THP, DS_4K_LOG }, busy_kinds[] = { DS_4K, DS_4K_LOG };
	const DsPages *kinds = b->ds_workload ? busy_kinds : all_kinds;
	guint nk = b->ds_workload ? G_N_ELEMENTS(busy_kinds) : G_N_ELEMENTS(all_kinds);
	DsPages picked[DS_NKINDS];
	const guint *gib;
	guint n;
	guint64 have = mem_available();
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(ds_row_free);
	g_autoptr(GError) err = NULL;
	int rc = 0;

	if (b->n_ds_sizes) {
		gib = b->ds_sizes;
		n = b->n_ds_sizes;
	} else if (b->ds_workload) {
		gib = b->quick ? busy_quick : busy;
		n = b->quick ? G_N_ELEMENTS(busy_quick) : G_N_ELEMENTS(busy);
	} else {
		gib = b->quick ? quick : full;
		n = b->quick ? G_N_ELEMENTS(quick) : G_N_ELEMENTS(full);
	}
	if (b->ds_workload && !strcmp(b->ds_workload, "busy"))
		b->ds_workload = DS_BUSY;
	/* --rows: some kinds of pages only (each a run of its own at 16 GiB, the 4K scan's
	 * the longest), in the scenario's order */
	if (b->auto_rows && !ds_pick_kinds(b->auto_rows, &kinds, &nk, picked))
		return 2;
	b->unplotted = TRUE;
	/* idle: each size in 4 KiB pages, on THP and in 4 KiB pages with the sync log: the
	 * THP and 4K-log rows measure the walk's change, the 4K rows keep the figure
	 * comparable with tables taken before either existed here. Busy: the scan against
	 * the log, on the pages the log is for */
	for (guint i = 0; i < nk * n; i++) {
		DsRow *r = g_new0(DsRow, 1);

		r->bytes = (guint64)gib[i / nk] * GiB;
		r->used = ds_row_used(b, r->bytes, have);
		r->pages = kinds[i % nk];
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
	.summary = "an idle guest's downtime against its size (1..16 GiB); --workload: a busy one's, scan vs log",
	.run = run_downtime_size,
};
