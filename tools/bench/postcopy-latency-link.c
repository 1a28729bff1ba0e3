/* postcopy-latency's link: the netns bed's rate check, and the floor every arm's
 * latency is held against (mig-rawxfer pingpong: one page fetched at a time over the
 * same link, nothing else on it). */
#include "tools/bench/postcopy-latency.h"

#define PC_FLOOR_WARMUP "10"
#define PC_BED_CHECK_BYTES ((guint64)256 << 20)   /* the bed's rate check: ~2 s at 1 Gbit/s */

/* The bed must really be shaped: a raw transfer across it runs at about its rate. */
gboolean pc_bed_check(Bench *b, PcNet *net, GError **err)
{
	double gbit;

	if (!bench_raw_run(b, TRUE, 1, PC_BED_CHECK_BYTES, RAW_HOT, &net->raw, err)) {
		g_prefix_error(err, "the bed's rate check: ");
		return FALSE;
	}
	gbit = net->raw.gbps * 8;
	g_printerr("migbench: netns bed: raw %.3f Gbit/s over 1 connection (shaped to %s)\n", gbit, BENCH_NET_RATE);
	if (gbit < 0.5 * BENCH_NET_RATE_BPS / 1e9 || gbit > 1.1 * BENCH_NET_RATE_BPS / 1e9)
		bench_note(b, "the netns bed moved %.2f Gbit/s raw, outside 0.5 to 1.1 times its shaped rate (%s): its shaping is "
		     "suspect", gbit, BENCH_NET_RATE);
	return TRUE;
}

static gboolean parse_floor(const char *line, PcFloor *f, GError **err)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonObject *o = bench_line_object(p, line, "mig-rawxfer pingpong", err);

	if (!o)
		return FALSE;
	f->count = (guint)bench_obj_int(o, "count", 0);
	f->median_us = json_object_get_double_member_with_default(o, "median_us", NAN);
	f->p10_us = json_object_get_double_member_with_default(o, "p10_us", NAN);
	f->p90_us = json_object_get_double_member_with_default(o, "p90_us", NAN);
	f->min_us = json_object_get_double_member_with_default(o, "min_us", NAN);
	f->max_us = json_object_get_double_member_with_default(o, "max_us", NAN);
	if (!f->count || !(f->median_us > 0)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "mig-rawxfer pingpong printed %.200s", line);
		return FALSE;
	}
	return TRUE;
}

/* The floor: the page server where mig's source is, the client (one request at a time)
 * where its destination is, so the pages flow the way postcopy's do. */
gboolean pc_floor(Bench *b, PcNet *net, guint nback, GError **err)
{
	guint seq = ++b->seq;
	g_autofree char *name_s = g_strdup_printf("%03u-ping-server", seq);
	g_autofree char *name_c = g_strdup_printf("%03u-ping-client", seq);
	const char *host = net->bed ? b->net->addr[BENCH_NET_SRC] : "127.0.0.1";
	g_autofree char *listen = g_strdup_printf("tcp:%s:0", host);
	g_autofree char *uri = NULL;
	const char *srv_argv[] = { b->rawxfer, "pingpong", b->raw_cc, "--listen", listen, "--timeout", "300", NULL };
	g_auto(GStrv) port = NULL, lines = NULL;
	BenchChild *srv = NULL, *cli = NULL;
	gboolean ok = FALSE;

	srv = bench_spawn_on(b, net->bed ? BENCH_NET_SRC : -1, name_s, srv_argv, err);
	if (!srv || !(port = bench_wait_lines(b, srv, 1, T_PORT_MS, err)))
		goto out;
	uri = g_strdup_printf("tcp:%s:%s", host, port[0]);
	{
		const char *cli_argv[] = { b->rawxfer, "pingpong", b->raw_cc, "--connect", uri, "--sizes", nback > 1 ? "4K,2M" : "4K",
					   "--count", PC_FLOOR_TRIPS, "--warmup", PC_FLOOR_WARMUP, "--timeout", "300", NULL };

		cli = bench_spawn_on(b, net->bed ? BENCH_NET_DST : -1, name_c, cli_argv, err);
	}
	if (!cli || !bench_wait_exit_ok(b, cli, T_RAW_MS, err) || !bench_wait_exit_ok(b, srv, T_QUIT_MS, err) ||
	    !(lines = bench_wait_lines(b, cli, nback, T_QUIT_MS, err)))
		goto out;
	for (guint i = 0; i < nback; i++) {
		if (!parse_floor(lines[i], &net->floor[i], err))
			goto out;
		g_printerr("migbench: %s floor: %s page in %.3f ms (median of %u round trips)\n", net->name,
			   pc_backends[i].page, net->floor[i].median_us / 1e3, net->floor[i].count);
	}
	ok = TRUE;
out:
	bench_child_free(b->procs, cli);
	bench_child_free(b->procs, srv);
	if (!ok)
		g_prefix_error(err, "the floor: ");
	return ok;
}
