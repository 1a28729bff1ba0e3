/* mig-rawxfer moves exactly the bytes it is asked to: run a receiver and a sender on
 * loopback and check the receiver's count, from a hot buffer and with --distinct.
 * Usage: test-rawxfer PATH-TO-mig-rawxfer */
#include <gio/gio.h>
#include <json-glib/json-glib.h>

/* Runs recv, then send of `bytes` over `conns` (both with `mem`, NULL or "--distinct"),
 * and returns the receiver's JSON result. */
static JsonObject *transfer(const char *rawxfer, guint conns, guint64 bytes, const char *mem)
{
	g_autofree char *nconns = g_strdup_printf("%u", conns);
	g_autofree char *nbytes = g_strdup_printf("%" G_GUINT64_FORMAT, bytes);
	g_autofree char *port = NULL, *result = NULL, *uri = NULL;
	g_autoptr(GError) err = NULL;
	g_autoptr(GSubprocess) recv = NULL, send = NULL;
	g_autoptr(GDataInputStream) out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();

	/* --timeout bounds both sides, so a hang is a failure rather than a stuck test */
	recv = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE, &err, rawxfer, "recv", "--listen",
				"tcp:127.0.0.1:0", "--conns", nconns, "--timeout", "60", "--bytes", nbytes, mem, NULL);
	g_assert_no_error(err);
	out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(recv));
	port = g_data_input_stream_read_line_utf8(out, NULL, NULL, &err);
	g_assert_no_error(err);
	g_assert_nonnull(port);
	uri = g_strdup_printf("tcp:127.0.0.1:%s", port);
	send = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &err, rawxfer, "send", "--connect", uri,
				"--conns", nconns, "--bytes", nbytes, "--timeout", "60", mem, NULL);
	g_assert_no_error(err);
	g_subprocess_wait_check(send, NULL, &err);
	g_assert_no_error(err);
	result = g_data_input_stream_read_line_utf8(out, NULL, NULL, &err);
	g_assert_no_error(err);
	g_assert_nonnull(result);
	g_subprocess_wait_check(recv, NULL, &err);
	g_assert_no_error(err);
	g_test_message("recv: %s", result);
	json_parser_load_from_data(parser, result, -1, &err);
	g_assert_no_error(err);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
	return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void test_64m_2conns(gconstpointer rawxfer)
{
	g_autoptr(JsonObject) r = transfer(rawxfer, 2, 64u << 20, NULL);

	g_assert_cmpint(json_object_get_int_member(r, "bytes"), ==, 64 << 20);
	g_assert_cmpint(json_object_get_int_member(r, "conns"), ==, 2);
	g_assert_cmpfloat(json_object_get_double_member(r, "seconds"), >, 0);
	g_assert_cmpfloat(json_object_get_double_member(r, "gbps"), >, 0);
}

/* a total that neither the connection count nor the batch size divides */
static void test_uneven_split(gconstpointer rawxfer)
{
	guint64 bytes = (8u << 20) + 4097;
	g_autoptr(JsonObject) r = transfer(rawxfer, 3, bytes, NULL);

	g_assert_cmpint(json_object_get_int_member(r, "bytes"), ==, (gint64)bytes);
}

/* --distinct: each byte from and into memory of its own, the same count, uneven too */
static void test_distinct(gconstpointer rawxfer)
{
	guint64 bytes = (24u << 20) + 4097;
	g_autoptr(JsonObject) r = transfer(rawxfer, 3, bytes, "--distinct");

	g_assert_cmpint(json_object_get_int_member(r, "bytes"), ==, (gint64)bytes);
	g_assert_cmpfloat(json_object_get_double_member(r, "gbps"), >, 0);
}

static int run_status(const char *const *argv)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(GSubprocess) p = g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDERR_SILENCE, &err);

	g_assert_no_error(err);
	g_subprocess_wait(p, NULL, &err);
	g_assert_no_error(err);
	g_assert_true(g_subprocess_get_if_exited(p));
	return g_subprocess_get_exit_status(p);
}

/* the receiver must know the size to have room for it; --hugetlb means nothing alone */
static void test_distinct_usage(gconstpointer rawxfer)
{
	const char *no_size[] = { rawxfer, "recv", "--listen", "tcp:127.0.0.1:0", "--distinct", NULL };
	const char *huge_alone[] = { rawxfer, "send", "--connect", "tcp:127.0.0.1:1", "--bytes", "1M", "--hugetlb", NULL };

	g_assert_cmpint(run_status(no_size), ==, 2);
	g_assert_cmpint(run_status(huge_alone), ==, 2);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	if (argc != 2) {
		g_printerr("usage: test-rawxfer PATH-TO-mig-rawxfer\n");
		return 2;
	}
	g_test_add_data_func("/rawxfer/64m-2conns", argv[1], test_64m_2conns);
	g_test_add_data_func("/rawxfer/uneven-split", argv[1], test_uneven_split);
	g_test_add_data_func("/rawxfer/distinct", argv[1], test_distinct);
	g_test_add_data_func("/rawxfer/distinct-usage", argv[1], test_distinct_usage);
	return g_test_run();
}
