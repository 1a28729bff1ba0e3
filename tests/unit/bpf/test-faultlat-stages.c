/* mig-faultlat --stages' summary (tools/faultlat/stages.c): which requests make the
 * table, nearest-rank percentiles of signed hops, the typical-request breakdown that adds
 * up, and JSON that parses. */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/faultlat/stages.h"

#define US 1000ULL

/* A request whose hops take the given µs (negative allowed), starting at t0 ns. */
static struct fs_record chain(uint64_t block, uint64_t offset, uint64_t t0, const int hops_us[FS_NR_HOPS])
{
	struct fs_record r = { .key = { block, offset } };
	int64_t t = (int64_t)t0;

	r.ts[0] = t0;
	for (int h = 0; h < FS_NR_HOPS; h++) {
		t += hops_us[h] * (int64_t)US;
		r.ts[h + 1] = (uint64_t)t;
	}
	r.nstamped = FS_NR_STAGES;
	return r;
}

static void test_percentile_nearest_rank(void)
{
	int64_t v[100];

	for (int i = 0; i < 100; i++)
		v[i] = i + 1;
	g_assert_cmpint(fs_percentile(v, 100, 50), ==, 50);
	g_assert_cmpint(fs_percentile(v, 100, 90), ==, 90);
	g_assert_cmpint(fs_percentile(v, 100, 99), ==, 99);
	g_assert_cmpint(fs_percentile(v, 100, 100), ==, 100);
	g_assert_cmpint(fs_percentile(v, 1, 50), ==, 1);
	g_assert_cmpint(fs_percentile(v, 3, 50), ==, 2);	/* rank ceil(1.5) = 2 */
	g_assert_cmpint(fs_percentile(v, 0, 50), ==, 0);
	v[0] = -5;
	g_assert_cmpint(fs_percentile(v, 2, 50), ==, -5);
}

static void test_summary(void)
{
	struct fs_records placed = { 0 }, open = { 0 };
	struct fs_summary s;
	struct fs_record r;
	/* Five requests that passed every stage. The last one's page_received comes before
	 * its page_sent: the destination read a copy that left before the urgent one (bulk,
	 * already on its way), so it is early, not complete, and stays out of the hops,
	 * which therefore cannot be negative there. */
	static const int hops[5][FS_NR_HOPS] = {
		{ 10, 20, 1, 15, 30, 5 },
		{ 12, 25, 1, 14, 35, 6 },
		{ 8, 22, 2, 16, 28, 4 },
		{ 11, 500, 1, 15, 31, 5 },	/* a slow return path */
		{ 9, 21, 1, 17, -3, 5 },
	};

	for (int i = 0; i < 5; i++) {
		r = chain(0, (uint64_t)i << 12, 1000000 * (uint64_t)(i + 1), hops[i]);
		g_assert_cmpint(fs_records_add(&placed, &r), ==, 0);
	}
	/* Placed without page_queued/page_sent: the source skipped it, bulk had sent it. */
	r = chain(0, 100 << 12, 9000000, hops[0]);
	r.ts[FS_PAGE_QUEUED] = r.ts[FS_PAGE_SENT] = 0;
	g_assert_cmpint(fs_records_add(&placed, &r), ==, 0);
	/* Never placed: fault_read and request_sent only. */
	r = chain(1, 7 << 12, 9500000, hops[0]);
	for (int st = FS_REQUEST_RECEIVED; st < FS_NR_STAGES; st++)
		r.ts[st] = 0;
	g_assert_cmpint(fs_records_add(&open, &r), ==, 0);

	g_assert_cmpint(fs_summarize(&placed, &open, &s), ==, 0);
	g_assert_cmpuint(s.complete, ==, 4);
	g_assert_cmpuint(s.early, ==, 1);
	g_assert_cmpuint(s.incomplete, ==, 1);
	g_assert_cmpuint(s.unfinished, ==, 1);
	g_assert_cmpuint(s.by_seen[FS_ALL_STAGES & ~((1U << FS_PAGE_QUEUED) | (1U << FS_PAGE_SENT))], ==, 1);
	g_assert_cmpuint(s.by_seen[(1U << FS_FAULT_READ) | (1U << FS_REQUEST_SENT)], ==, 1);

	/* Hops over the complete requests only. */
	for (int h = 0; h < FS_NR_HOPS; h++)
		g_assert_cmpuint(s.hop[h].count, ==, 4);
	g_assert_cmpfloat(s.hop[0].p50_us, ==, 10);
	g_assert_cmpfloat(s.hop[1].p50_us, ==, 22);
	g_assert_cmpfloat(s.hop[1].max_us, ==, 500);
	g_assert_cmpfloat(s.hop[4].p50_us, ==, 30);
	g_assert_cmpfloat(s.hop[4].min_us, ==, 28);
	/* totals 81 93 80 563 (and the early one's 50, left out) */
	g_assert_cmpfloat(s.total.p50_us, ==, 81);
	g_assert_cmpfloat(s.total.max_us, ==, 563);
	g_assert_cmpfloat(s.sum_hop_p50_us, ==, 10 + 22 + 1 + 15 + 30 + 5);
	/* every placed request, the early one and the one the source skipped too */
	g_assert_cmpuint(s.total_placed.count, ==, 6);
	g_assert_cmpfloat(s.total_placed.min_us, ==, 50);
	/* Typical: totals between p40 (81) and p60 (93): requests 0 and 1. */
	g_assert_cmpuint(s.typical.count, ==, 2);
	g_assert_cmpfloat(s.typical.total_mean_us, ==, 87);
	{
		double sum = 0;

		for (int h = 0; h < FS_NR_HOPS; h++)
			sum += s.typical.hop_mean_us[h];
		g_assert_cmpfloat(sum, >, 87 - 1e-9);
		g_assert_cmpfloat(sum, <, 87 + 1e-9);
	}

	/* The JSON parses and says the same. */
	{
		struct fs_report rep = { .src = 1, .dst = 2, .method = "usdt", .seconds = 1, .sum = s };
		g_autoptr(JsonParser) p = json_parser_new();
		g_autoptr(GError) err = NULL;
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		JsonObject *o, *req;
		JsonArray *hopsa, *nc;

		rep.counters[FS_FAULT_READ] = 7;
		fs_report_json(f, &rep);
		fclose(f);
		g_assert_true(json_parser_load_from_data(p, buf, (gssize)len, &err));
		o = json_node_get_object(json_parser_get_root(p));
		req = json_object_get_object_member(o, "requests");
		g_assert_cmpint(json_object_get_int_member(req, "complete"), ==, 4);
		g_assert_cmpint(json_object_get_int_member(req, "early"), ==, 1);
		g_assert_cmpint(json_object_get_int_member(req, "incomplete"), ==, 1);
		g_assert_cmpint(json_object_get_int_member(req, "unfinished"), ==, 1);
		nc = json_object_get_array_member(req, "not_complete");
		g_assert_cmpuint(json_array_get_length(nc), ==, 2);
		hopsa = json_object_get_array_member(o, "hops");
		g_assert_cmpuint(json_array_get_length(hopsa), ==, FS_NR_HOPS);
		g_assert_cmpstr(json_object_get_string_member(json_array_get_object_element(hopsa, 0), "from"),
				==, "fault_read");
		g_assert_cmpfloat(json_object_get_double_member(json_array_get_object_element(hopsa, 4),
								"min_us"), ==, 28);
		g_assert_cmpfloat(json_object_get_double_member(o, "total_p50_us"), ==, 81);
		g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(o, "probe_hits"),
							   "fault_read"), ==, 7);
		free(buf);

		/* and the text report does not trip over anything */
		f = fopen("/dev/null", "w");
		fs_report_text(f, &rep);
		fclose(f);
	}
	fs_records_free(&placed);
	fs_records_free(&open);
}

static void test_empty(void)
{
	struct fs_records none = { 0 };
	struct fs_summary s;

	g_assert_cmpint(fs_summarize(&none, &none, &s), ==, 0);
	g_assert_cmpuint(s.complete + s.incomplete + s.unfinished, ==, 0);
	g_assert_cmpfloat(s.total.p50_us, ==, 0);
	g_assert_cmpuint(s.typical.count, ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/faultstages/percentile", test_percentile_nearest_rank);
	g_test_add_func("/faultstages/summary", test_summary);
	g_test_add_func("/faultstages/empty", test_empty);
	return g_test_run();
}
