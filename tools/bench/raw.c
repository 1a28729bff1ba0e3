/* The raw baseline: the same bytes over the same kind of TCP connections, moved by
 * mig-rawxfer, which does nothing else. */
#include "tools/bench/runner.h"
#include "channels/io.h"

/* The algorithm migd gives its channels (--tcp-congestion, else migd's default), so
 * the raw baseline runs the same TCP: "" (the system's) where the kernel lacks the
 * default, as migd does. */
char *bench_raw_congestion(const Bench *b)
{
	return g_strdup_printf("--congestion=%s", b->tcp_cc ? b->tcp_cc : mig_io_congestion_default());
}

static gboolean parse_raw_result(const char *line, RawSample *out, GError **err)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonObject *o = bench_line_object(p, line, "mig-rawxfer recv", err);

	if (!o)
		return FALSE;
	out->bytes = (guint64)bench_obj_int(o, "bytes", 0);
	out->seconds = json_object_get_double_member_with_default(o, "seconds", 0);
	out->gbps = json_object_get_double_member_with_default(o, "gbps", 0);
	return TRUE;
}

/* A raw transfer over loopback or, with bed, from the bed's source namespace to its
 * destination namespace. */
gboolean bench_raw_run(Bench *b, gboolean bed, guint conns, guint64 bytes, RawMem mem, RawSample *out, GError **err)
{
	guint seq = ++b->seq;
	g_autofree char *name_r = g_strdup_printf("%03u-raw-recv", seq);
	g_autofree char *name_s = g_strdup_printf("%03u-raw-send", seq);
	g_autofree char *nconns = g_strdup_printf("%u", conns);
	g_autofree char *nbytes = g_strdup_printf("%" G_GUINT64_FORMAT, bytes);
	g_autofree char *uri = NULL;
	g_auto(GStrv) port = NULL, result = NULL;
	BenchChild *recv = NULL, *send = NULL;
	gboolean ok = FALSE;
	g_autofree char *listen = g_strdup_printf("tcp:%s:0", bench_dst_host(b, bed));
	const char *recv_argv[] = { b->rawxfer, "recv", b->raw_cc, "--listen", listen, "--conns", nconns, "--bytes",
				    nbytes, mem == RAW_HOT ? NULL : "--distinct", "--hugetlb", NULL };

	if (mem != RAW_DISTINCT_HUGE)   /* the argument lists end early */
		recv_argv[10] = NULL;

	recv = bench_spawn_on(b, bed ? BENCH_NET_DST : -1, name_r, recv_argv, err);
	if (!recv || !(port = bench_wait_lines(b, recv, 1, mem == RAW_HOT ? T_PORT_MS : T_RAW_READY_MS, err)))
		goto out;
	uri = g_strdup_printf("tcp:%s:%s", bench_dst_host(b, bed), port[0]);
	{
		const char *send_argv[] = { b->rawxfer, "send", b->raw_cc, "--connect", uri, "--conns", nconns,
					    "--bytes", nbytes, recv_argv[9], recv_argv[10], NULL };

		send = bench_spawn_on(b, bed ? BENCH_NET_SRC : -1, name_s, send_argv, err);
	}
	if (!send || !bench_wait_exit_ok(b, send, T_RAW_MS, err) || !bench_wait_exit_ok(b, recv, T_QUIT_MS, err) ||
	    !(result = bench_wait_lines(b, recv, 2, T_QUIT_MS, err)) || !parse_raw_result(result[1], out, err))
		goto out;
	if (out->bytes != bytes || out->gbps <= 0) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "received %" G_GUINT64_FORMAT " of %"
			    G_GUINT64_FORMAT " bytes (%.3f GB/s)", out->bytes, bytes, out->gbps);
		goto out;
	}
	ok = TRUE;
out:
	bench_child_free(b->procs, send);
	bench_child_free(b->procs, recv);
	return ok;
}
