/* The BPF tools' view of a postcopy run, parsed for migbench; see faultview.h. */
#include "tools/bench/faultview.h"
#include "tools/bench/stats.h"
#include <math.h>
#include <string.h>

#define FV_ERROR (fv_error_quark())
static G_DEFINE_QUARK(bench-faultview-error, fv_error)

/* A JSON number (int or double) member, or NAN. */
static double num(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	if (!n || !JSON_NODE_HOLDS_VALUE(n))
		return NAN;
	switch (json_node_get_value_type(n)) {
	case G_TYPE_INT64:
		return (double)json_node_get_int(n);
	case G_TYPE_DOUBLE:
		return json_node_get_double(n);
	default:
		return NAN;
	}
}

static JsonObject *member_obj(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

gboolean bench_klat_parse(JsonObject *qm, const char *cls, BenchKernelLat *out, char **why)
{
	JsonObject *k = member_obj(qm, "x-fault-latency-bpf"), *c;
	const char *e;

	*out = (BenchKernelLat){ .p50_us = NAN, .p90_us = NAN, .p99_us = NAN, .max_us = NAN };
	if (!k) {
		*why = g_strdup("the destination's query-migrate has no x-fault-latency-bpf (migd without --trace-latency?)");
		return FALSE;
	}
	e = json_object_has_member(k, "error") ? json_object_get_string_member_with_default(k, "error", "?") : NULL;
	if (e) {
		*why = g_strdup_printf("x-fault-latency-bpf: %s", e);
		return FALSE;
	}
	/* a class appears only once it has waits */
	c = member_obj(k, cls);
	out->ok = TRUE;
	out->count = c ? num(c, "count") : 0;
	if (c && out->count > 0) {
		out->p50_us = num(c, "p50");
		out->p90_us = num(c, "p90");
		out->p99_us = num(c, "p99");
		out->max_us = num(c, "max");
	}
	return TRUE;
}

static gboolean fail(GError **err, const char *what)
{
	g_set_error(err, FV_ERROR, 0, "mig-faultlat --stages --json: %s", what);
	return FALSE;
}

gboolean bench_stages_parse(const char *text, BenchStages *out, GError **err)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonNode *root, *hops, *th;
	JsonObject *o, *req, *typ;
	JsonArray *ha, *tha;

	memset(out, 0, sizeof(*out));
	if (!text || !json_parser_load_from_data(p, text, -1, NULL) || !(root = json_parser_get_root(p)) ||
	    !JSON_NODE_HOLDS_OBJECT(root))
		return fail(err, "no JSON object on stdout");
	o = json_node_get_object(root);
	req = member_obj(o, "requests");
	typ = member_obj(o, "typical");
	hops = json_object_get_member(o, "hops");
	th = typ ? json_object_get_member(typ, "hop_mean_us") : NULL;
	if (!req || !typ || !hops || !JSON_NODE_HOLDS_ARRAY(hops) || !th || !JSON_NODE_HOLDS_ARRAY(th))
		return fail(err, "no requests, hops or typical member");
	ha = json_node_get_array(hops);
	tha = json_node_get_array(th);
	if (json_array_get_length(ha) != BENCH_STAGE_HOPS || json_array_get_length(tha) != BENCH_STAGE_HOPS)
		return fail(err, "expected 6 hops");
	out->complete = num(req, "complete");
	out->incomplete = num(req, "incomplete");
	out->unfinished = num(req, "unfinished");
	if (!(out->complete > 0))
		return fail(err, "no request passed every stage");
	for (guint h = 0; h < BENCH_STAGE_HOPS; h++) {
		JsonNode *hn = json_array_get_element(ha, h);
		JsonObject *ho = JSON_NODE_HOLDS_OBJECT(hn) ? json_node_get_object(hn) : NULL;
		JsonNode *tn = json_array_get_element(tha, h);

		if (!ho || !JSON_NODE_HOLDS_VALUE(tn))
			return fail(err, "a hop is not an object");
		g_snprintf(out->hop_name[h], sizeof(out->hop_name[h]), "%s -> %s",
			   json_object_get_string_member_with_default(ho, "from", "?"),
			   json_object_get_string_member_with_default(ho, "to", "?"));
		out->hop_p50_us[h] = num(ho, "p50_us");
		out->typical_hop_us[h] = json_node_get_double(tn);
	}
	out->total_p50_us = num(o, "total_p50_us");
	out->sum_hop_p50_us = num(o, "sum_hop_p50_us");
	out->typical_count = num(typ, "count");
	out->typical_total_us = num(typ, "total_mean_us");
	if (isnan(out->total_p50_us) || isnan(out->sum_hop_p50_us) || isnan(out->typical_total_us))
		return fail(err, "no total_p50_us, sum_hop_p50_us or typical.total_mean_us");
	return TRUE;
}

/* The median over runs of the double at `off` in each BenchStages. */
static double median_at(const BenchStages *v, guint n, gsize off)
{
	g_autofree double *x = g_new(double, n);

	for (guint i = 0; i < n; i++)
		x[i] = *(const double *)((const char *)&v[i] + off);
	return bench_median(x, n);
}

#define MEDIAN(field) (out->field = median_at(v, n, G_STRUCT_OFFSET(BenchStages, field)))

void bench_stages_median(const BenchStages *v, guint n, BenchStages *out)
{
	memcpy(out->hop_name, v[0].hop_name, sizeof(out->hop_name));
	MEDIAN(complete);
	MEDIAN(incomplete);
	MEDIAN(unfinished);
	MEDIAN(total_p50_us);
	MEDIAN(sum_hop_p50_us);
	MEDIAN(typical_count);
	MEDIAN(typical_total_us);
	for (guint h = 0; h < BENCH_STAGE_HOPS; h++) {
		gsize at = h * sizeof(double);

		out->hop_p50_us[h] = median_at(v, n, G_STRUCT_OFFSET(BenchStages, hop_p50_us) + at);
		out->typical_hop_us[h] = median_at(v, n, G_STRUCT_OFFSET(BenchStages, typical_hop_us) + at);
	}
}

void bench_stages_print(FILE *f, const BenchStages *s, const char *indent)
{
	double sum_typ = 0;

	fprintf(f, "%s%-36s %9s %12s\n", indent, "hop", "p50 us", "typical us");
	for (guint h = 0; h < BENCH_STAGE_HOPS; h++) {
		fprintf(f, "%s%-36s %9.1f %12.1f\n", indent, s->hop_name[h], s->hop_p50_us[h], s->typical_hop_us[h]);
		sum_typ += s->typical_hop_us[h];
	}
	fprintf(f, "%s%-36s %9.1f %12.1f\n", indent, "sum of the hops", s->sum_hop_p50_us, sum_typ);
	fprintf(f, "%s%-36s %9.1f %12.1f\n", indent, "total fault_read -> page_placed", s->total_p50_us,
		s->typical_total_us);
	fprintf(f, "%ssum/total: p50s %+.1f %%, typical %+.1f %%; %.0f complete requests (%.0f typical), "
		"%.0f incomplete, %.0f unfinished\n", indent, (s->sum_hop_p50_us / s->total_p50_us - 1) * 100,
		(sum_typ / s->typical_total_us - 1) * 100, s->complete, s->typical_count, s->incomplete, s->unfinished);
}

static void member_double(JsonBuilder *j, const char *name, double v)
{
	json_builder_set_member_name(j, name);
	if (isnan(v))
		json_builder_add_null_value(j);
	else
		json_builder_add_double_value(j, v);
}

void bench_stages_json(JsonBuilder *j, const BenchStages *s)
{
	json_builder_begin_object(j);
	member_double(j, "complete", s->complete);
	member_double(j, "incomplete", s->incomplete);
	member_double(j, "unfinished", s->unfinished);
	json_builder_set_member_name(j, "hops");
	json_builder_begin_array(j);
	for (guint h = 0; h < BENCH_STAGE_HOPS; h++) {
		json_builder_begin_object(j);
		json_builder_set_member_name(j, "hop");
		json_builder_add_string_value(j, s->hop_name[h]);
		member_double(j, "p50_us", s->hop_p50_us[h]);
		member_double(j, "typical_mean_us", s->typical_hop_us[h]);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	member_double(j, "sum_hop_p50_us", s->sum_hop_p50_us);
	member_double(j, "total_p50_us", s->total_p50_us);
	member_double(j, "typical_count", s->typical_count);
	member_double(j, "typical_total_us", s->typical_total_us);
	json_builder_end_object(j);
}
