/* Scenario device-downtime: downtime of a small idle guest with N simulated devices of
 * 100 MiB each whose load costs device time (load-rate=1G): with the device-state lane
 * their state is read, moved and loaded in parallel, so downtime should follow the
 * slowest device, not the sum. Arms: the lane (multifd on, the lane on by default),
 * serial (capability x-device-state-lane off: device state on the main channel, the
 * baseline), and the lane across channel counts. Each lane row is held against a floor
 * measured in the same run: the slower of one device's load time and a raw transfer of
 * all its devices' bytes over as many connections as it has channels. */
#include "tools/bench/runner.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DD_GUEST ((guint64)256 << 20)
#define DD_DEV_MIB 100
#define DD_DEV_OPTS "size=" G_STRINGIFY(DD_DEV_MIB) "M,load-rate=1G"   /* both sides; load-rate matters on the destination */
#define DD_LANE_CAP "x-device-state-lane"
#define DD_MAX_DEVICES 8
#define DD_CHANNELS 4               /* the device-count sweep's channels */
#define DD_FLOOR_TARGET 1.2         /* lane, 4 devices: downtime / floor at most this */
#define DD_TARGET_DEVICES 4

typedef enum { DD_LANE, DD_SERIAL } DdArm;

static const char *const dd_arm_names[] = { "lane", "serial" };

typedef struct DdSample {
	gint64 downtime_ms;
	gint64 ram_ms, devices_ms, other_ms;   /* source x-downtime-split; -1 absent */
	gint64 max_load_ms;                    /* the slowest destination device's load-ms */
	gint64 raw_us;                         /* lane: the raw transfer of the devices' bytes; -1 none */
	double raw_gbps;
} DdSample;

typedef struct DdRow {
	DdArm arm;
	guint channels, devices;
	gboolean sweep;             /* part of the channel sweep (4 devices, 2..32 channels) */
	GArray *samples;            /* DdSample */
	RowStatus status;
	char *error;
} DdRow;

static DdRow *dd_row_new(DdArm arm, guint channels, guint devices)
{
	DdRow *r = g_new0(DdRow, 1);

	r->arm = arm;
	r->channels = channels;
	r->devices = devices;
	r->samples = g_array_new(FALSE, TRUE, sizeof(DdSample));
	return r;
}

static void dd_row_free(gpointer p)
{
	DdRow *r = p;

	g_array_unref(r->samples);
	g_free(r->error);
	g_free(r);
}

/* The median of one gint64 member of the row's samples; NAN unless every run has it. */
static double dd_median_of(const DdRow *r, gsize field)
{
	g_autofree double *v = g_new0(double, r->samples->len + 1);

	if (r->status != ROW_OK || !r->samples->len)
		return NAN;
	for (guint i = 0; i < r->samples->len; i++) {
		gint64 x = G_STRUCT_MEMBER(gint64, &g_array_index(r->samples, DdSample, i), field);

		if (x < 0)
			return NAN;
		v[i] = (double)x;
	}
	return bench_median(v, r->samples->len);
}

static double dd_median(const DdRow *r)
{
	return dd_median_of(r, G_STRUCT_OFFSET(DdSample, downtime_ms));
}

/* The destination's x-devices: every device there, loaded and verified. */
static gboolean dd_check_devices(JsonObject *dst, guint ndev, DdSample *s, GError **err)
{
	JsonNode *n = json_object_get_member(dst, "x-devices");
	JsonArray *a;

	if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the destination's query-migrate has no x-devices");
		return FALSE;
	}
	a = json_node_get_array(n);
	if (json_array_get_length(a) != ndev) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination x-devices lists %u devices, not %u",
			    json_array_get_length(a), ndev);
		return FALSE;
	}
	s->max_load_ms = -1;
	for (guint i = 0; i < ndev; i++) {
		JsonObject *d = JSON_NODE_HOLDS_OBJECT(json_array_get_element(a, i)) ? json_array_get_object_element(a, i)
										       : NULL;
		const char *id = bench_obj_str(d, "id");
		gint64 want = bench_obj_int(d, "expected-bytes", -1), got = bench_obj_int(d, "verified-bytes", -2);

		if (g_strcmp0(bench_obj_str(d, "result"), "ok") || want != got) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "device %s not verified: result %s, %" G_GINT64_FORMAT
				    " of %" G_GINT64_FORMAT " bytes%s%s", id ? id : "?", bench_obj_str(d, "result") ? bench_obj_str(d, "result") : "?",
				    got, want, bench_obj_str(d, "error") ? ": " : "", bench_obj_str(d, "error") ? bench_obj_str(d, "error") : "");
			return FALSE;
		}
		s->max_load_ms = MAX(s->max_load_ms, bench_obj_int(d, "load-ms", -1));
	}
	return TRUE;
}

/* The serial arm turns the lane off. */
static gboolean dd_set_lane(QmpClient *q, const char *side, gboolean on, GError **err)
{
	g_autofree char *caps = g_strdup_printf("{\"capabilities\":[{\"capability\":\"" DD_LANE_CAP "\",\"state\":%s}]}",
						on ? "true" : "false");

	return bench_qmp_run(q, side, "migrate-set-capabilities", caps, err);
}

static gboolean dd_run(Bench *b, const DdRow *row, DdSample *s, GError **err)
{
	char *devs[DD_MAX_DEVICES + 1] = { NULL };
	g_autofree char *port = NULL, *uri = NULL;
	g_autoptr(JsonObject) src_done = NULL, dst = NULL;
	guint seq = ++b->seq;
	MigdSpec src = { .backend = "anon", .guest_bytes = DD_GUEST, .workload = "idle", .seed = seq, .side = -1,
			 .devices = (const char *const *)devs };
	MigdSpec dsts = { .backend = "anon", .guest_bytes = DD_GUEST, .prealloc = TRUE,
			  .incoming = "tcp:127.0.0.1:0", .side = -1, .devices = (const char *const *)devs };
	MigSample ms = { 0 };
	MigPair p = { 0 };
	JsonObject *split;
	gboolean ok;

	for (guint i = 0; i < row->devices; i++)
		devs[i] = g_strdup_printf("sim,id=dev%u," DD_DEV_OPTS, i);
	/* downtime is what is measured here, not convergence: a limit that the device state
	 * alone exceeds would keep the source from ever switching over */
	ok = bench_pair_start(b, &src, &dsts, &p, err) && bench_set_multifd(p.qdst, "destination", row->channels, err) &&
	     bench_set_multifd(p.qsrc, "source", row->channels, err) &&
	     (row->arm == DD_LANE || (dd_set_lane(p.qdst, "destination", FALSE, err) &&
				      dd_set_lane(p.qsrc, "source", FALSE, err))) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":60000}", err) &&
	     (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (src_done = bench_wait_source(b, &p, err)) &&
		     bench_wait_integrity(b, &p, &ms, err) && (dst = bench_query_migrate(p.qdst, err)) &&
		     dd_check_devices(dst, row->devices, s, err);
	}
	if (ok) {
		split = bench_obj_obj(src_done, "x-downtime-split");
		s->downtime_ms = bench_obj_int(src_done, "downtime", -1);
		s->ram_ms = bench_obj_int(split, "ram-ms", -1);
		s->devices_ms = bench_obj_int(split, "devices-ms", -1);
		s->other_ms = bench_obj_int(split, "other-ms", -1);
	}
	for (guint i = 0; i < row->devices; i++)
		g_free(devs[i]);
	bench_pair_stop(b, &p);
	/* the floor's wire part, right after the migration it is held against: the same
	 * bytes over as many loopback connections, cache-hot at both ends, which is the
	 * least a transfer of them costs (the lane itself copies nothing on the way) */
	s->raw_us = -1;
	if (ok && row->arm == DD_LANE) {
		RawSample raw;

		ok = bench_raw_run(b, FALSE, row->channels, ((guint64)row->devices * DD_DEV_MIB) << 20, RAW_HOT, &raw, err);
		if (ok) {
			s->raw_us = (gint64)(raw.seconds * 1e6 + 0.5);
			s->raw_gbps = raw.gbps;
		}
	}
	return ok;
}

/* One run of a row that has not failed yet. */
static void dd_cell(Bench *b, DdRow *row, int run)
{
	g_autoptr(GError) err = NULL;
	DdSample s = { 0 };

	if (row->status != ROW_OK)
		return;
	if (bench_interrupted(b, &err) || !dd_run(b, row, &s, &err)) {
		row->status = bench_status_of(err);
		row->error = g_strdup(err->message);
		g_printerr("migbench: %s/%u ch/%u dev run %d/%d: %s: %s\n", dd_arm_names[row->arm], row->channels,
			   row->devices, run + 1, b->runs, bench_status_names[row->status], err->message);
		return;
	}
	g_array_append_val(row->samples, s);
	g_printerr("migbench: %s/%u ch/%u dev run %d/%d: downtime %" G_GINT64_FORMAT " ms\n", dd_arm_names[row->arm],
		   row->channels, row->devices, run + 1, b->runs, s.downtime_ms);
}

static DdRow *dd_find(GPtrArray *rows, DdArm arm, guint channels, guint devices)
{
	for (guint i = 0; i < rows->len; i++) {
		DdRow *r = g_ptr_array_index(rows, i);

		if (r->arm == arm && r->channels == channels && r->devices == devices)
			return r;
	}
	return NULL;
}

/* The ratios the device lane's first targets were about: against 1 device (same arm and
 * channels), lane against serial (same devices), and across the channel sweep against
 * its best. They depend on the machine (two CPUs share the lane's work with the
 * devices); the floor below does not. */
static void dd_ratios(GPtrArray *rows, const DdRow *r, double *vs_one, double *vs_serial, double *vs_best)
{
	const DdRow *one = dd_find(rows, r->arm, r->channels, 1);
	const DdRow *serial = dd_find(rows, DD_SERIAL, r->channels, r->devices);
	double best = NAN;

	for (guint i = 0; i < rows->len; i++) {
		const DdRow *x = g_ptr_array_index(rows, i);

		double m = dd_median(x);

		if (x->sweep && x->arm == r->arm && x->devices == r->devices && !isnan(m) && !(m >= best))
			best = m;
	}
	*vs_one = one && one != r ? dd_median(r) / dd_median(one) : NAN;
	*vs_serial = r->arm == DD_LANE && serial ? dd_median(r) / dd_median(serial) : NAN;
	*vs_best = r->sweep ? dd_median(r) / best : NAN;
}

/* One device's load time in this run: the slowest-device load-ms of the lane's 1-device
 * row (alone, a device loads at its own rate plus what one stream costs). */
static double dd_one_load_ms(GPtrArray *rows)
{
	const DdRow *one = dd_find(rows, DD_LANE, DD_CHANNELS, 1);

	return one ? dd_median_of(one, G_STRUCT_OFFSET(DdSample, max_load_ms)) : NAN;
}

static double dd_raw_ms(const DdRow *r)
{
	return dd_median_of(r, G_STRUCT_OFFSET(DdSample, raw_us)) / 1000.0;
}

/* What the machine allows a lane row: its devices cannot load faster than one device
 * does alone, nor their bytes cross faster than a raw transfer of them over as many
 * connections. NAN for serial rows, or when either part is missing. */
static double dd_floor(GPtrArray *rows, const DdRow *r)
{
	double one = dd_one_load_ms(rows), raw = dd_raw_ms(r);

	return r->arm != DD_LANE || isnan(one) || isnan(raw) ? NAN : MAX(one, raw);
}

static double dd_vs_floor(GPtrArray *rows, const DdRow *r)
{
	return dd_median(r) / dd_floor(rows, r);
}

/* The row the floor target is about: the lane, 4 devices, 4 channels. */
static const DdRow *dd_target_row(GPtrArray *rows)
{
	return dd_find(rows, DD_LANE, DD_CHANNELS, DD_TARGET_DEVICES);
}

static const char *dd_verdict(double v, double limit)
{
	return isnan(v) ? "not measured" : v <= limit ? "met" : "MISSED";
}

static void dd_print(Bench *b, GPtrArray *rows)
{
	const DdRow *t = dd_target_row(rows);
	double tv = t ? dd_vs_floor(rows, t) : NAN, one_load = dd_one_load_ms(rows);
	double t_one = NAN, t_ser = NAN, worst_best = NAN;
	g_autofree char *one_s = bench_fmt_num(one_load, 0), *tv_s = bench_fmt_num(tv, 2);

	printf("\n%s: %" G_GUINT64_FORMAT " MiB idle guest + N x sim," DD_DEV_OPTS ", loopback TCP, median of %d run%s, "
	       "%u CPUs\n", b->scenario, DD_GUEST >> 20, b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("%-7s %8s %7s %11s %7s %8s %8s %7s %7s %7s %8s %9s %7s\n", "arm", "channels", "devices", "downtime ms",
	       "raw ms", "floor ms", "vs floor", "ram ms", "dev ms", "load ms", "vs 1 dev", "vs serial", "vs best");
	for (guint i = 0; i < rows->len; i++) {
		DdRow *r = g_ptr_array_index(rows, i);
		double one, ser, best;
		g_autofree char *dt = r->status == ROW_OK ? bench_fmt_num(dd_median(r), 0) : g_strdup(bench_status_names[r->status]);
		g_autofree char *raw = bench_fmt_num(dd_raw_ms(r), 0), *fl = bench_fmt_num(dd_floor(rows, r), 0);
		g_autofree char *vf = bench_fmt_num(dd_vs_floor(rows, r), 2);
		g_autofree char *ram = bench_fmt_num(dd_median_of(r, G_STRUCT_OFFSET(DdSample, ram_ms)), 0);
		g_autofree char *dev = bench_fmt_num(dd_median_of(r, G_STRUCT_OFFSET(DdSample, devices_ms)), 0);
		g_autofree char *load = bench_fmt_num(dd_median_of(r, G_STRUCT_OFFSET(DdSample, max_load_ms)), 0);
		g_autofree char *s1 = NULL, *s2 = NULL, *s3 = NULL;

		dd_ratios(rows, r, &one, &ser, &best);
		if (r == t) {
			t_one = one;
			t_ser = ser;
		}
		if (r->sweep && !isnan(best) && !(best <= worst_best))
			worst_best = best;
		s1 = bench_fmt_num(one, 2);
		s2 = bench_fmt_num(ser, 2);
		s3 = bench_fmt_num(best, 2);
		printf("%-7s %8u %7u %11s %7s %8s %8s %7s %7s %7s %8s %9s %7s\n", dd_arm_names[r->arm], r->channels,
		       r->devices, dt, raw, fl, vf, ram, dev, load, s1, s2, s3);
	}
	printf("floor = max(one device's load, %s ms: load ms of lane/%u/1; raw ms: the row's device bytes over as many "
	       "loopback connections, cache-hot, by mig-rawxfer)\n", one_s, DD_CHANNELS);
	printf("target: lane, %u devices, %u channels <= %.1f x floor: %s %s\n", DD_TARGET_DEVICES, DD_CHANNELS,
	       DD_FLOOR_TARGET, tv_s, dd_verdict(tv, DD_FLOOR_TARGET));
	{
		g_autofree char *a = bench_fmt_num(t_one, 2), *c = bench_fmt_num(t_ser, 2), *d = bench_fmt_num(worst_best, 2);

		printf("for reference (machine-dependent): lane 4 dev / 1 dev <= 1.3: %s %s; lane / serial at 4 dev <= 0.4: "
		       "%s %s; channel sweep within 1.10 of its best: %s %s\n", a, dd_verdict(t_one, 1.3), c,
		       dd_verdict(t_ser, 0.4), d, dd_verdict(worst_best, 1.10));
	}
	for (guint i = 0; i < rows->len; i++) {
		DdRow *r = g_ptr_array_index(rows, i);

		if (r->status != ROW_OK)
			printf("%s/%u/%u %s: %s\n", dd_arm_names[r->arm], r->channels, r->devices, bench_status_names[r->status],
			       r->error);
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static gboolean dd_write_json(Bench *b, GPtrArray *rows, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();
	const DdRow *t = dd_target_row(rows);
	double tv = t ? dd_vs_floor(rows, t) : NAN;

	bench_json_head(b, j, DD_GUEST);
	json_builder_set_member_name(j, "device_spec");
	json_builder_add_string_value(j, "sim,id=devK," DD_DEV_OPTS);
	bench_json_int(j, "device_bytes", (gint64)DD_DEV_MIB << 20);
	bench_json_double(j, "one_device_load_ms", dd_one_load_ms(rows));
	json_builder_set_member_name(j, "floor_target");
	json_builder_begin_object(j);
	bench_json_int(j, "devices", DD_TARGET_DEVICES);
	bench_json_int(j, "channels", DD_CHANNELS);
	bench_json_double(j, "limit", DD_FLOOR_TARGET);
	bench_json_double(j, "vs_floor", tv);
	json_builder_set_member_name(j, "met");
	if (isnan(tv))
		json_builder_add_null_value(j);
	else
		json_builder_add_boolean_value(j, tv <= DD_FLOOR_TARGET);
	json_builder_end_object(j);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++) {
		DdRow *r = g_ptr_array_index(rows, i);
		double one, ser, best;

		dd_ratios(rows, r, &one, &ser, &best);
		json_builder_begin_object(j);
		json_builder_set_member_name(j, "arm");
		json_builder_add_string_value(j, dd_arm_names[r->arm]);
		bench_json_int(j, "channels", r->channels);
		bench_json_int(j, "devices", r->devices);
		bench_json_status(j, r->status, r->error);
		json_builder_set_member_name(j, "samples");
		json_builder_begin_array(j);
		for (guint k = 0; k < r->samples->len; k++) {
			const DdSample *s = &g_array_index(r->samples, DdSample, k);

			json_builder_begin_object(j);
			bench_json_int(j, "downtime_ms", s->downtime_ms);
			bench_json_int(j, "ram_ms", s->ram_ms);
			bench_json_int(j, "devices_ms", s->devices_ms);
			bench_json_int(j, "other_ms", s->other_ms);
			bench_json_int(j, "max_load_ms", s->max_load_ms);
			bench_json_double(j, "raw_ms", s->raw_us < 0 ? NAN : (double)s->raw_us / 1000.0);
			bench_json_double(j, "raw_gbps", s->raw_us < 0 ? NAN : s->raw_gbps);
			json_builder_end_object(j);
		}
		json_builder_end_array(j);
		bench_json_double(j, "median_downtime_ms", dd_median(r));
		bench_json_double(j, "median_raw_ms", dd_raw_ms(r));
		bench_json_double(j, "floor_ms", dd_floor(rows, r));
		bench_json_double(j, "vs_floor", dd_vs_floor(rows, r));
		bench_json_double(j, "vs_one_device", one);
		bench_json_double(j, "vs_serial", ser);
		bench_json_double(j, "vs_best_channels", best);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

static int run_device_downtime(Bench *b)
{
	static const guint full_devices[] = { 1, 2, 4, 8 }, quick_devices[] = { 1, 4 };
	static const guint full_channels[] = { 2, 4, 8, 16, 32 }, quick_channels[] = { 4 };
	const guint *devices = b->quick ? quick_devices : full_devices;
	const guint *channels = b->quick ? quick_channels : full_channels;
	guint ndevices = b->quick ? G_N_ELEMENTS(quick_devices) : G_N_ELEMENTS(full_devices);
	guint nchannels = b->quick ? G_N_ELEMENTS(quick_channels) : G_N_ELEMENTS(full_channels);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(dd_row_free);
	g_autoptr(GError) err = NULL;
	g_autofree guint *order = NULL;
	int rc = 0;

	for (DdArm arm = DD_LANE; arm <= DD_SERIAL; arm++) {
		for (guint i = 0; i < ndevices; i++)
			g_ptr_array_add(rows, dd_row_new(arm, DD_CHANNELS, devices[i]));
	}
	for (guint i = 0; i < nchannels; i++) {
		DdRow *r = dd_find(rows, DD_LANE, channels[i], 4);

		if (!r) {
			r = dd_row_new(DD_LANE, channels[i], 4);
			g_ptr_array_add(rows, r);
		}
		r->sweep = TRUE;
	}
	/* Round by round, every row once per round: the ratios compare rows, and a host
	 * whose load drifts over minutes then weighs on all of them alike. Each round
	 * takes the rows in another order (seeded: repeatable), so no row always follows
	 * the same one (the 4-channel row, always after the 2-device one, came out the
	 * slowest of the sweep in two runs of two in the fixed order). */
	order = g_new(guint, rows->len);
	for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++) {
		g_autoptr(GRand) rng = g_rand_new_with_seed((guint32)run + 1);

		for (guint i = 0; i < rows->len; i++)
			order[i] = i;
		for (guint i = rows->len; i > 1; i--) {
			guint j = (guint)g_rand_int_range(rng, 0, (gint32)i), t = order[i - 1];

			order[i - 1] = order[j];
			order[j] = t;
		}
		for (guint i = 0; i < rows->len && !bench_procs_interrupted(b->procs); i++)
			dd_cell(b, g_ptr_array_index(rows, order[i]), run);
	}
	dd_print(b, rows);
	if (b->json_path && !dd_write_json(b, rows, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (guint i = 0; i < rows->len; i++)
		rc |= ((DdRow *)g_ptr_array_index(rows, i))->status == ROW_ERROR;
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

/* 9 runs: a run takes about a second and one row's runs spread by +-15 % here, wider
 * than the 10 % the channel sweep is judged by; a median of 3 is mostly noise */
const BenchScenario bench_device_downtime = {
	"device-downtime", "downtime with 1..8 simulated 100 MiB devices: device-state lane vs a same-run floor and serial, and across channels",
	run_device_downtime, 9,
};
