/* The migbench smoke test: `migbench precopy-throughput --quick --runs 1 --json FILE`
 * against the built tree, then checks that the JSON parses and that every row completed
 * with every page verified. The one exception is a hugetlb row "skipped" because the
 * host has no 2M huge pages to give (not root): that is the host, not mig. A "pending"
 * row (the engine refused a capability, as multifd did before it landed) fails. Speeds
 * are never checked: they are benchmark figures, not test assertions.
 * Usage: test-migbench PATH-TO-migbench */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>

/* rows --quick must produce, in order */
static const struct {
	const char *backend;
	gint64 channels;   /* 0: "main" */
} expected_rows[] = {
	{ "anon", 0 }, { "anon", 1 }, { "anon", 4 }, { "hugetlb", 0 }, { "hugetlb", 1 }, { "hugetlb", 4 },
};

static JsonObject *run_migbench(const char *migbench, const char *json_path)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(GSubprocess) p = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();

	p = g_subprocess_new(G_SUBPROCESS_FLAGS_NONE, &err, migbench, "precopy-throughput", "--quick", "--runs", "1",
			     "--json", json_path, NULL);
	g_assert_no_error(err);
	/* migbench bounds every wait itself; meson's timeout bounds this one */
	g_subprocess_wait(p, NULL, &err);
	g_assert_no_error(err);
	g_assert_true(g_subprocess_get_if_exited(p));
	g_assert_cmpint(g_subprocess_get_exit_status(p), ==, 0);
	json_parser_load_from_file(parser, json_path, &err);
	g_assert_no_error(err);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
	return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void check_completed_row(JsonObject *row, gint64 runs, gint64 guest_bytes)
{
	JsonObject *rawo = json_object_get_object_member(row, "raw");
	JsonArray *raw = json_object_get_array_member(rawo, "samples");
	JsonArray *hot = json_object_get_array_member(json_object_get_object_member(row, "raw_hot"), "samples");
	JsonArray *mig = json_object_get_array_member(json_object_get_object_member(row, "mig"), "samples");
	const char *backend = json_object_get_string_member(row, "backend");

	g_assert_cmpint(json_array_get_length(raw), ==, runs);
	g_assert_cmpint(json_array_get_length(hot), ==, runs);
	g_assert_cmpint(json_array_get_length(mig), ==, runs);
	/* the baseline moves distinct memory of the guest's page size */
	g_assert_cmpstr(json_object_get_string_member(rawo, "memory"), ==,
			!g_strcmp0(backend, "hugetlb") ? "distinct-2m" : "distinct-4k");
	for (guint i = 0; i < json_array_get_length(raw); i++) {
		g_assert_cmpint(json_object_get_int_member(json_array_get_object_element(raw, i), "bytes"), ==, guest_bytes);
		g_assert_cmpint(json_object_get_int_member(json_array_get_object_element(hot, i), "bytes"), ==, guest_bytes);
	}
	for (guint i = 0; i < json_array_get_length(mig); i++) {
		JsonObject *s = json_array_get_object_element(mig, i);
		JsonObject *in = json_object_get_object_member(s, "integrity");

		g_assert_cmpstr(json_object_get_string_member(s, "status"), ==, "completed");
		g_assert_cmpint(json_object_get_int_member(s, "ram_total"), ==, guest_bytes);
		g_assert_nonnull(in);
		g_assert_cmpint(json_object_get_int_member(in, "failed"), ==, 0);
		g_assert_cmpint(json_object_get_int_member(in, "total"), >, 0);
		g_assert_cmpint(json_object_get_int_member(in, "checked"), ==, json_object_get_int_member(in, "total"));
	}
}

static void check_row(JsonObject *row, guint index, gint64 runs, gint64 guest_bytes)
{
	const char *status = json_object_get_string_member(row, "status");
	JsonNode *ch = json_object_get_member(row, "channels");
	gint64 channels = JSON_NODE_HOLDS_VALUE(ch) && json_node_get_value_type(ch) == G_TYPE_INT64 ? json_node_get_int(ch) : 0;
	gboolean multifd = json_object_get_boolean_member(row, "multifd");

	g_assert_cmpstr(json_object_get_string_member(row, "backend"), ==, expected_rows[index].backend);
	g_assert_cmpint(channels, ==, expected_rows[index].channels);
	if (!channels)
		g_assert_cmpstr(json_node_get_string(ch), ==, "main");
	g_assert_true(multifd == (channels > 0));
	if (!strcmp(status, "ok")) {
		check_completed_row(row, runs, guest_bytes);
		/* every ratio of an ok row is a number: none of its medians may be missing */
		g_assert_cmpfloat(json_object_get_double_member(row, "ratio"), >, 0);
		g_assert_cmpfloat(json_object_get_double_member(row, "ratio_paired"), >, 0);
		g_assert_cmpfloat(json_object_get_double_member(row, "ratio_hot"), >, 0);
		return;
	}
	g_test_message("%s/%" G_GINT64_FORMAT ": %s: %s", expected_rows[index].backend, channels, status,
		       json_object_get_string_member_with_default(row, "error", "?"));
	if (!strcmp(status, "skipped") && !strcmp(expected_rows[index].backend, "hugetlb"))
		return;
	g_error("row %s/%" G_GINT64_FORMAT " is %s: %s", expected_rows[index].backend, channels, status,
		json_object_get_string_member_with_default(row, "error", "?"));
}

static void test_quick(gconstpointer migbench)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *json_path = NULL;
	g_autoptr(JsonObject) top = NULL;
	JsonArray *rows;
	gint64 runs, guest;
	int fd = g_file_open_tmp("migbench-test-XXXXXX.json", &json_path, &err);

	g_assert_no_error(err);
	close(fd);
	top = run_migbench(migbench, json_path);
	g_unlink(json_path);
	g_assert_cmpstr(json_object_get_string_member(top, "scenario"), ==, "precopy-throughput");
	g_assert_true(json_object_get_boolean_member(top, "quick"));
	runs = json_object_get_int_member(top, "runs");
	guest = json_object_get_int_member(top, "guest_bytes");
	g_assert_cmpint(runs, ==, 1);
	g_assert_cmpint(guest, ==, 1 << 30);
	rows = json_object_get_array_member(top, "rows");
	g_assert_cmpuint(json_array_get_length(rows), ==, G_N_ELEMENTS(expected_rows));
	for (guint i = 0; i < json_array_get_length(rows); i++)
		check_row(json_array_get_object_element(rows, i), i, runs, guest);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	if (argc != 2) {
		g_printerr("usage: test-migbench PATH-TO-migbench\n");
		return 2;
	}
	g_test_add_data_func("/migbench/precopy-throughput-quick", argv[1], test_quick);
	return g_test_run();
}
