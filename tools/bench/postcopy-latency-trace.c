/* postcopy-latency's traced row: mig-faultlat --stages attached to the pair before the
 * migration starts, stopped after it, its per-stage breakdown kept with the run. */
#include "tools/bench/postcopy-latency.h"
#include <signal.h>

#define PC_STAGES_MAX_S "600"       /* mig-faultlat --stages -d: a bound; it is stopped once migrated */
#define T_ATTACH_MS 30000           /* mig-faultlat attaching its probes */

/* A tool that cannot attach (no BPF, no uprobes) makes the traced row skipped, with its
 * reason; the migration's own figures are in the other rows. */
static void stages_skipped(GError **err)
{
	if (*err && (*err)->code == BENCH_ERROR_FAILED)
		(*err)->code = BENCH_ERROR_SKIPPED;
	g_prefix_error(err, "mig-faultlat --stages: ");
}

/* mig-faultlat --stages on the pair, attached before the migration starts. */
BenchChild *pc_stages_start(Bench *b, MigPair *p, GError **err)
{
	g_autofree char *name = g_strdup_printf("%03u-faultlat-stages", b->seq);
	g_autofree char *src = g_strdup_printf("%d", (int)p->src->pid), *dst = g_strdup_printf("%d", (int)p->dst->pid);
	const char *argv[] = { b->faultlat, "--stages", "--src", src, "--dst", dst, "-d", PC_STAGES_MAX_S, "--json", NULL };
	BenchChild *c;

	if (!b->faultlat) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "mig-faultlat was not built beside migd");
		return NULL;
	}
	c = bench_child_spawn(b->procs, b->tmpdir, name, argv, err);
	if (c && !bench_wait_err_text(b, c, "Tracing", T_ATTACH_MS, err)) {
		bench_child_free(b->procs, c);
		c = NULL;
	}
	if (!c)
		stages_skipped(err);
	return c;
}

/* Stops the tool (SIGINT: it prints its summary) and keeps the breakdown. */
gboolean pc_stages_finish(Bench *b, BenchChild *c, PcSample *s, GError **err)
{
	g_autofree char *out = NULL;

	kill(c->pid, SIGINT);
	if (!bench_wait_exit_ok(b, c, T_QUIT_MS * 3, err))   /* unregistering the uprobes takes ~1 s */
		return FALSE;
	if (!g_file_get_contents(c->out_path, &out, NULL, err) || !bench_stages_parse(out, &s->stages, err)) {
		/* Requests, but none took the urgent path end to end (their pages were already
		 * on the bulk stream; on loopback, with a few dozen faults, that can be all of
		 * them): nothing to break down, which is not the tool failing. */
		if (*err && s->stages.complete == 0 && s->stages.incomplete > 0) {
			g_clear_error(err);
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED,
				    "no request passed every stage (%.0f incomplete, %.0f unfinished)",
				    s->stages.incomplete, s->stages.unfinished);
		}
		stages_skipped(err);
		return FALSE;
	}
	s->has_stages = TRUE;
	return TRUE;
}
