/* Unit tests of migbench's reading of the BPF tools (tools/bench/faultview.c): the
 * kernel's x-fault-latency-bpf, with and without BPF, and mig-faultlat --stages --json. */
#include "tools/bench/faultview.h"
#include <math.h>
#include <string.h>

static JsonObject *object_of(JsonParser *p, const char *text)
{
	g_assert_true(json_parser_load_from_data(p, text, -1, NULL));
	return json_node_get_object(json_parser_get_root(p));
}

static void test_klat(void)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonObject *qm = object_of(p, "{\"status\":\"completed\",\"x-fault-latency-bpf\":{\"method\":\"tracepoints\","
				      "\"4k\":{\"count\":468,\"p50\":103.4,\"p90\":2785.3,\"p99\":33292.3,\"max\":36903},"
				      "\"hist\":[0,1]}}");
	BenchKernelLat k;
	g_autofree char *why = NULL;

	g_assert_true(bench_klat_parse(qm, "4k", &k, &why));
	g_assert_null(why);
	g_assert_true(k.ok);
	g_assert_cmpfloat(k.count, ==, 468);
	g_assert_cmpfloat(k.p50_us, ==, 103.4);
	g_assert_cmpfloat(k.p99_us, ==, 33292.3);
	g_assert_cmpfloat(k.max_us, ==, 36903);   /* an integer in the JSON is a number too */
	/* a class with no waits is a figure (zero waits), not a failure */
	g_assert_true(bench_klat_parse(qm, "2m", &k, &why));
	g_assert_true(k.ok);
	g_assert_cmpfloat(k.count, ==, 0);
	g_assert_true(isnan(k.p50_us));
}

/* Without BPF the column must say why, never stay blank. */
static void test_klat_unavailable(void)
{
	g_autoptr(JsonParser) p = json_parser_new();
	g_autoptr(JsonParser) q = json_parser_new();
	JsonObject *err = object_of(p, "{\"x-fault-latency-bpf\":{\"error\":\"loading the faultlat BPF programs: "
				       "Operation not permitted\"}}");
	JsonObject *none = object_of(q, "{\"status\":\"completed\"}");
	BenchKernelLat k;
	char *why = NULL;

	g_assert_false(bench_klat_parse(err, "4k", &k, &why));
	g_assert_false(k.ok);
	g_assert_nonnull(strstr(why, "Operation not permitted"));
	g_free(why);
	why = NULL;
	g_assert_false(bench_klat_parse(none, "4k", &k, &why));
	g_assert_nonnull(strstr(why, "--trace-latency"));
	g_free(why);
}

/* The shape mig-faultlat --stages --json prints (tools/faultlat/stages.c). */
static char *stages_json(double scale, int complete)
{
	GString *s = g_string_new(NULL);
	static const char *const st[] = { "fault_read", "request_sent", "request_received", "page_queued",
					  "page_sent", "page_received", "page_placed" };
	double sum = 0;

	g_string_append_printf(s, "{\"src_pid\":1,\"dst_pid\":2,\"method\":\"usdt\",\"seconds\":4.4,"
			       "\"requests\":{\"complete\":%d,\"incomplete\":48,\"unfinished\":0,\"not_complete\":"
			       "[{\"placed\":true,\"count\":48,\"missing\":[\"page_queued\",\"page_sent\"]}]},\"hops\":[",
			       complete);
	for (int h = 0; h < BENCH_STAGE_HOPS; h++) {
		g_string_append_printf(s, "%s{\"from\":\"%s\",\"to\":\"%s\",\"count\":%d,\"p50_us\":%.3f,\"p90_us\":1,"
				       "\"p99_us\":2,\"min_us\":-3,\"max_us\":4,\"mean_us\":5}", h ? "," : "", st[h],
				       st[h + 1], complete, (h + 1) * scale);
		sum += (h + 1) * scale;
	}
	g_string_append_printf(s, "],\"total\":{},\"total_all_placed\":{},\"sum_hop_p50_us\":%.3f,"
			       "\"total_p50_us\":%.3f,\"typical\":{\"count\":85,\"total_lo_us\":72.9,\"total_hi_us\":89,"
			       "\"total_mean_us\":%.3f,\"hop_mean_us\":[1,2,3,4,5,%.3f]},\"probe_hits\":{},"
			       "\"repeated_faults\":0,\"lost\":0,\"map_full\":0}\n", sum, sum * 1.25, 15 + scale, scale);
	return g_string_free(s, FALSE);
}

static void test_stages(void)
{
	BenchStages v[3], med;
	g_autoptr(GError) err = NULL;

	for (int i = 0; i < 3; i++) {
		g_autofree char *text = stages_json(10.0 * (i + 1), 400 + i);

		g_assert_true(bench_stages_parse(text, &v[i], &err));
		g_assert_no_error(err);
	}
	g_assert_cmpstr(v[0].hop_name[0], ==, "fault_read -> request_sent");
	g_assert_cmpstr(v[0].hop_name[5], ==, "page_received -> page_placed");
	g_assert_cmpfloat(v[0].complete, ==, 400);
	g_assert_cmpfloat(v[0].incomplete, ==, 48);
	g_assert_cmpfloat(v[0].hop_p50_us[2], ==, 30);
	g_assert_cmpfloat(v[0].sum_hop_p50_us, ==, 210);
	g_assert_cmpfloat(v[0].total_p50_us, ==, 262.5);
	g_assert_cmpfloat(v[0].typical_total_us, ==, 25);
	g_assert_cmpfloat(v[0].typical_hop_us[5], ==, 10);
	g_assert_cmpfloat(v[0].typical_count, ==, 85);

	/* per figure over the runs, in any order */
	bench_stages_median((BenchStages[]){ v[2], v[0], v[1] }, 3, &med);
	g_assert_cmpstr(med.hop_name[3], ==, "page_queued -> page_sent");
	g_assert_cmpfloat(med.complete, ==, 401);
	g_assert_cmpfloat(med.hop_p50_us[0], ==, 20);
	g_assert_cmpfloat(med.hop_p50_us[5], ==, 120);
	g_assert_cmpfloat(med.typical_hop_us[5], ==, 20);
	g_assert_cmpfloat(med.total_p50_us, ==, 525);
}

static void test_stages_bad(void)
{
	g_autofree char *none = stages_json(1, 0);
	g_autofree char *cut = stages_json(1, 3);
	BenchStages s;
	GError *err = NULL;

	g_assert_false(bench_stages_parse(none, &s, &err));   /* no complete request: nothing to break down */
	g_assert_nonnull(strstr(err->message, "every stage"));
	g_clear_error(&err);
	cut[strlen(cut) / 2] = 0;
	g_assert_false(bench_stages_parse(cut, &s, &err));
	g_clear_error(&err);
	g_assert_false(bench_stages_parse("", &s, &err));
	g_clear_error(&err);
	g_assert_false(bench_stages_parse("{\"requests\":{\"complete\":1},\"hops\":[],\"typical\":{\"hop_mean_us\":[]}}",
					  &s, &err));
	g_assert_nonnull(strstr(err->message, "6 hops"));
	g_clear_error(&err);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bench/faultview/klat", test_klat);
	g_test_add_func("/bench/faultview/klat-unavailable", test_klat_unavailable);
	g_test_add_func("/bench/faultview/stages", test_stages);
	g_test_add_func("/bench/faultview/stages-bad", test_stages_bad);
	return g_test_run();
}
