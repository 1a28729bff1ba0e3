/* Scenario faults: the fault matrix of docs/benchmarks.md. Each of five faults (the
 * link cut in the netns bed, a connection reset, the peer SIGKILLed, the peer
 * SIGSTOPped, a malformed frame) goes in at each of five moments (setup, precopy
 * active, the switchover, postcopy active, postcopy recover), one fresh migd pair per
 * cell, and the cell asserts where both sides end:
 *   - before the switchover (the peer hit is the destination): the source `failed`
 *     with its guest running and intact, the destination `failed` and not running (or
 *     gone; a malformed hello is refused as a stranger's, and the destination keeps
 *     waiting for its source);
 *   - after it (the peer hit is the source): both `postcopy-paused`, the destination's
 *     vCPUs waiting and no unit read wrong, then once mended a recovery (migrate-recover,
 *     migrate resume:true) that completes with every unit checked and none failed; a
 *     SIGKILLed source cannot be recovered: the destination must stay paused, its vCPUs
 *     waiting, never running on pages that never came;
 *   - and never two running guests (both sides' query-status, at every look).
 * The moments that a poll cannot hit (setup, the switchover, the recovery) are exact:
 * the traffic goes through tools/bench/faultproxy.h, which holds everything right
 * after the frame that marks the moment while the fault goes in. */
#include "tools/bench/faultproxy.h"
#include "channels/wire.h"
#include "tools/bench/runner.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define FX_CHANNEL_TIMEOUT_MS 2000
#define FX_BOUND_MS (4 * FX_CHANNEL_TIMEOUT_MS + 10000)   /* a side must notice within */
#define FX_MOMENT_MS 60000          /* to reach the moment of the fault */
#define FX_SETTLE_MS 500            /* into precopy / postcopy before the fault */
#define FX_STILL_PAUSED_MS 2000     /* an unrecoverable pause must hold at least this long */
#define FX_POLL_US 20000

typedef enum { FX_CUT, FX_RESET, FX_KILL, FX_STOP, FX_BAD, FX_FAULTS } FxFault;
typedef enum { FX_SETUP, FX_PRECOPY, FX_SWITCHOVER, FX_POSTCOPY, FX_RECOVER, FX_PHASES } FxPhase;
enum { SRC, DST };

static const char *const fx_fault_names[FX_FAULTS] = { "link-cut", "reset", "sigkill", "sigstop", "malformed" };
static const char *const fx_phase_names[FX_PHASES] = { "setup", "precopy-active", "switchover", "postcopy-active",
						       "postcopy-recover" };
static const char *const fx_side_names[2] = { "source", "destination" };

/* What a cell must end as (docs/benchmarks.md spells each out). */
#define FX_EXP_SRC_RUNS "source runs"          /* src failed + running, dst failed + stopped or gone */
#define FX_EXP_RECOVERED "paused, recovered"   /* both paused, then recovered and completed intact */
#define FX_EXP_DST_WAITS "dst paused, waits"   /* the source is gone: dst stays paused, vCPUs waiting */

typedef struct FxCell {
	FxFault fault;
	FxPhase phase;
	const char *expected;
	char *outcome;              /* what was seen, when it matched */
	char *error;                /* why it FAILed; NULL: PASS */
	double detect_ms[2];        /* by side: the fault to failed / postcopy-paused seen; NAN: n/a */
	gint64 checked, failed;     /* the units the integrity check read and found wrong; -1 unknown */
	double seconds;
} FxCell;

typedef struct FxRun {
	Bench *b;
	FxCell *cell;
	MigPair p;
	BenchFProxy *proxy;
	BenchChild *child[2];
	QmpClient *q[2];
	gboolean dead[2], stopped[2], link_down;
	gint64 t_fault;
} FxRun;

static gboolean fx_fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean fx_fail(GError **err, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s", msg);
	return FALSE;
}

static gboolean fx_here(const FxRun *r, int side)
{
	return !r->dead[side] && !r->stopped[side];
}

static char *fx_status(FxRun *r, int side, GError **err)
{
	g_autoptr(JsonObject) o = bench_query_migrate(r->q[side], err);

	if (!o) {
		g_prefix_error(err, "%s: ", fx_side_names[side]);
		return NULL;
	}
	return g_strdup(bench_obj_str(o, "status") ? bench_obj_str(o, "status") : "?");
}

/* 1 the side's guest runs, 0 it does not, -1 with err. */
static int fx_running(FxRun *r, int side, GError **err)
{
	g_autoptr(JsonNode) n = qmpc_execute(r->q[side], "query-status", NULL, T_QMP_CMD_MS, err);

	if (!n || !JSON_NODE_HOLDS_OBJECT(n)) {
		if (n)
			fx_fail(err, "%s: query-status returned no object", fx_side_names[side]);
		else
			g_prefix_error(err, "%s query-status: ", fx_side_names[side]);
		return -1;
	}
	return json_object_get_boolean_member_with_default(json_node_get_object(n), "running", FALSE);
}

/* Never two running guests: both sides that can answer are asked. */
static gboolean fx_one_guest(FxRun *r, GError **err)
{
	int run[2] = { 0, 0 };

	for (int s = 0; s < 2; s++) {
		if (fx_here(r, s) && (run[s] = fx_running(r, s, err)) < 0)
			return FALSE;
	}
	if (run[SRC] && run[DST])
		return fx_fail(err, "two running guests: both sides' query-status say running");
	return TRUE;
}

/* Polls the side until its status is want (the time since the fault goes to *at_ms);
 * an end that can never become want fails early. Looks at least once. */
static gboolean fx_wait(FxRun *r, int side, const char *want, int bound_ms, double *at_ms, GError **err)
{
	gint64 end = g_get_monotonic_time() + (gint64)bound_ms * 1000;
	g_autofree char *st = NULL;

	do {
		g_free(st);
		if (!(st = fx_status(r, side, err)))
			return FALSE;
		if (!strcmp(st, want)) {
			if (at_ms)
				*at_ms = (double)(g_get_monotonic_time() - r->t_fault) / 1e3;
			return TRUE;
		}
		if (!strcmp(st, "completed") || !strcmp(st, "cancelled") ||
		    (!strcmp(st, "failed") && strcmp(want, "failed")))
			return fx_fail(err, "the %s ended %s, not %s", fx_side_names[side], st, want);
		if (bench_interrupted(r->b, err))
			return FALSE;
		g_usleep(FX_POLL_US);
	} while (g_get_monotonic_time() < end);
	return fx_fail(err, "the %s is still %s %.0f s after the fault, not %s", fx_side_names[side], st,
		       (double)(g_get_monotonic_time() - r->t_fault) / 1e6, want);
}

static gboolean fx_qmp(FxRun *r, int side, const char *cmd, const char *args, GError **err)
{
	return bench_qmp_run(r->q[side], fx_side_names[side], cmd, args, err);
}

/* The side's x-integrity: units checked and failed so far. */
static gboolean fx_integrity(FxRun *r, gint64 *checked, gint64 *failed, GError **err)
{
	g_autoptr(JsonObject) o = bench_query_migrate(r->q[DST], err);
	JsonObject *in = o ? bench_obj_obj(o, "x-integrity") : NULL;

	if (!o)
		return FALSE;
	*checked = bench_obj_int(in, "checked", 0);
	*failed = bench_obj_int(in, "failed", 0);
	return TRUE;
}

static gboolean fx_proxy(FxRun *r, guint16 up_port, int hold_at, int corrupt_at, gboolean corrupt_hello,
			 guint16 *port, GError **err)
{
	BenchFProxySpec spec = { .netns = r->b->net->ns[BENCH_NET_SRC], .up_addr = r->b->net->addr[BENCH_NET_DST],
				 .up_port = up_port, .hold_at = hold_at, .corrupt_at = corrupt_at,
				 .corrupt_hello = corrupt_hello };

	if (!(r->proxy = bench_fproxy_new(&spec, err)))
		return FALSE;
	*port = bench_fproxy_port(r->proxy);
	return TRUE;
}

/* The destination's listening port (after --incoming or migrate-recover). */
static guint16 fx_dst_port(FxRun *r, GError **err)
{
	g_autofree char *port = bench_dst_port(r->b, &r->p, err);

	return port ? (guint16)g_ascii_strtoull(port, NULL, 10) : 0;
}

/* The moment a proxy marks: held right after its frame, or the frame corrupted. */
static gboolean fx_wait_marked(FxRun *r, gboolean corrupt, GError **err)
{
	gboolean ok = corrupt ? bench_fproxy_wait_corrupted(r->proxy, FX_MOMENT_MS)
			      : bench_fproxy_wait_held(r->proxy, FX_MOMENT_MS);

	return ok || fx_fail(err, "the proxy never reached the %s moment in %d s", fx_phase_names[r->cell->phase],
			     FX_MOMENT_MS / 1000);
}

static gboolean fx_wait_both(FxRun *r, const char *want, GError **err)
{
	return fx_wait(r, SRC, want, FX_MOMENT_MS, NULL, err) && fx_wait(r, DST, want, FX_MOMENT_MS, NULL, err);
}

/* The fault itself; the proxy, if it held, lets go once it is in. */
static gboolean fx_inject(FxRun *r, GError **err)
{
	FxCell *c = r->cell;
	int victim = c->phase < FX_POSTCOPY ? DST : SRC;

	r->t_fault = g_get_monotonic_time();
	switch (c->fault) {
	case FX_CUT:
		if (!bench_net_set_link(r->b->net, FALSE, err))
			return FALSE;
		r->link_down = TRUE;
		break;
	case FX_RESET:
		bench_fproxy_free(r->proxy, TRUE);
		r->proxy = NULL;
		break;
	case FX_KILL:
		kill(r->child[victim]->pid, SIGKILL);
		bench_child_wait(r->b->procs, r->child[victim], T_QUIT_MS);
		r->dead[victim] = TRUE;
		break;
	case FX_STOP:
		kill(r->child[victim]->pid, SIGSTOP);
		r->stopped[victim] = TRUE;
		break;
	case FX_BAD:
		if (!bench_fproxy_wait_corrupted(r->proxy, 0)) {
			bench_fproxy_corrupt_next(r->proxy);
			if (!bench_fproxy_wait_corrupted(r->proxy, FX_MOMENT_MS))
				return fx_fail(err, "no frame went through the proxy to corrupt");
		}
		r->t_fault = g_get_monotonic_time();   /* the fault is the bad frame, not the arming */
		break;
	default:
		g_assert_not_reached();
	}
	if (r->proxy)
		bench_fproxy_release(r->proxy);
	return TRUE;
}

/* The link up again, the stopped side continued. */
static gboolean fx_mend(FxRun *r, GError **err)
{
	if (r->link_down && !bench_net_set_link(r->b->net, TRUE, err))
		return FALSE;
	r->link_down = FALSE;
	for (int s = 0; s < 2; s++) {
		if (r->stopped[s])
			kill(r->child[s]->pid, SIGCONT);
		r->stopped[s] = FALSE;
	}
	return TRUE;
}

/* Before the switchover: the source fails and its guest runs on, intact; the
 * destination fails without ever running. */
static gboolean fx_expect_source_runs(FxRun *r, GError **err)
{
	FxCell *c = r->cell;
	g_autoptr(JsonNode) chk = NULL;
	JsonObject *o;

	if (!fx_wait(r, SRC, "failed", FX_BOUND_MS, &c->detect_ms[SRC], err) || !fx_one_guest(r, err) || !fx_mend(r, err))
		return FALSE;
	if (c->fault == FX_BAD && c->phase == FX_SETUP) {
		/* a hello that is not mig's is a stray connection, refused: the incoming side
		 * keeps waiting for its source, as it must (a stranger cannot fail it) */
		g_autofree char *st = fx_status(r, DST, err);

		if (!st)
			return FALSE;
		if (strcmp(st, "setup"))
			return fx_fail(err, "the destination is %s after refusing a bad hello, not still setup", st);
	} else if (!r->dead[DST] && !fx_wait(r, DST, "failed", FX_BOUND_MS, &c->detect_ms[DST], err)) {
		return FALSE;
	}
	if (fx_running(r, SRC, err) != 1)
		return *err ? FALSE : fx_fail(err, "the source's guest does not run after the failed migration");
	if (!r->dead[DST] && fx_running(r, DST, err) != 0)
		return *err ? FALSE : fx_fail(err, "the destination's guest runs after the failed migration");
	if (!(chk = qmpc_execute(r->q[SRC], "x-guest-check", NULL, T_INTEGRITY_MS, err)))
		return FALSE;
	o = JSON_NODE_HOLDS_OBJECT(chk) ? json_node_get_object(chk) : NULL;
	c->checked = bench_obj_int(o, "checked", -1);
	c->failed = bench_obj_int(o, "failed", -1);
	if (c->failed != 0)
		return fx_fail(err, "the source's guest check found %" G_GINT64_FORMAT " failed units", c->failed);
	c->outcome = g_strdup_printf("source failed, runs; destination %s", r->dead[DST] ? "gone"
				     : c->fault == FX_BAD && c->phase == FX_SETUP ? "refused the hello, still listens" : "failed");
	return TRUE;
}

/* migrate-recover at a new port, migrate resume:true, then completed and verified. */
static gboolean fx_recover(FxRun *r, GError **err)
{
	g_autofree char *rec = g_strdup_printf("{\"uri\":\"tcp:%s:0\"}", r->b->net->addr[BENCH_NET_DST]);
	g_autofree char *res = NULL;
	MigSample integ = { 0 };
	guint16 port;
	gboolean ok;

	if (!fx_qmp(r, DST, "migrate-recover", rec, err) || !(port = fx_dst_port(r, err)))
		return FALSE;
	res = g_strdup_printf("{\"uri\":\"tcp:%s:%u\",\"resume\":true}", r->b->net->addr[BENCH_NET_DST], port);
	if (!fx_qmp(r, SRC, "migrate", res, err) ||
	    !fx_qmp(r, SRC, "migrate-set-parameters", "{\"max-postcopy-bandwidth\":0}", err) ||
	    !bench_wait_source(r->b, &r->p, err))
		return FALSE;
	ok = bench_wait_integrity(r->b, &r->p, &integ, err);
	r->cell->checked = (gint64)integ.checked;
	r->cell->failed = (gint64)integ.failed;
	return ok && fx_one_guest(r, err);
}

/* After the switchover: both pause; the destination's vCPUs wait and read nothing
 * wrong; then recovered, unless the source is gone. */
static gboolean fx_expect_pause(FxRun *r, GError **err)
{
	FxCell *c = r->cell;
	gint64 checked, failed;

	if (!fx_wait(r, DST, "postcopy-paused", FX_BOUND_MS, &c->detect_ms[DST], err))
		return FALSE;
	if (r->dead[SRC]) {
		/* nothing can bring the missing pages: the pause must hold, the vCPUs wait */
		g_usleep(FX_STILL_PAUSED_MS * 1000);
		if (!fx_wait(r, DST, "postcopy-paused", 0, NULL, err) || !fx_integrity(r, &checked, &failed, err))
			return FALSE;
		c->checked = checked;
		c->failed = failed;
		if (failed)
			return fx_fail(err, "%" G_GINT64_FORMAT " units read wrong on the paused destination", failed);
		if (fx_running(r, DST, err) != 1)
			return *err ? FALSE : fx_fail(err, "the paused destination's guest was stopped");
		c->outcome = g_strdup_printf("destination paused, still after %d s; source gone", FX_STILL_PAUSED_MS / 1000);
		return TRUE;
	}
	if (!fx_mend(r, err) || !fx_wait(r, SRC, "postcopy-paused", FX_BOUND_MS, &c->detect_ms[SRC], err) ||
	    !fx_one_guest(r, err))
		return FALSE;
	if (fx_running(r, SRC, err) != 0)
		return *err ? FALSE : fx_fail(err, "the paused source's guest runs");
	if (!fx_integrity(r, &checked, &failed, err))
		return FALSE;
	if (failed)
		return fx_fail(err, "%" G_GINT64_FORMAT " units read wrong while paused", failed);
	bench_fproxy_free(r->proxy, FALSE);
	r->proxy = NULL;
	if (!fx_recover(r, err))
		return FALSE;
	c->outcome = g_strdup_printf("both paused; recovered, completed");
	return TRUE;
}

static gboolean fx_start(FxRun *r, GError **err)
{
	static const char caps[] = "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true},"
				   "{\"capability\":\"postcopy-preempt\",\"state\":true}]}";
	g_autofree char *timeout = g_strdup_printf("{\"x-channel-timeout\":%d}", FX_CHANNEL_TIMEOUT_MS);
	g_autofree char *incoming = g_strdup_printf("tcp:%s:0", r->b->net->addr[BENCH_NET_DST]);
	guint64 guest = r->b->quick ? 128 << 20 : 256 << 20;
	MigdSpec src = { .backend = "anon", .guest_bytes = guest, .workload = "seq", .seed = ++r->b->seq,
			 .side = BENCH_NET_SRC };
	MigdSpec dst = { .backend = "anon", .guest_bytes = guest, .workload = "random", .vcpus = 2,
			 .incoming = incoming, .side = BENCH_NET_DST };

	if (!bench_pair_start(r->b, &src, &dst, &r->p, err))
		return FALSE;
	r->child[SRC] = r->p.src;
	r->child[DST] = r->p.dst;
	r->q[SRC] = r->p.qsrc;
	r->q[DST] = r->p.qdst;
	/* the destination first: it must know before the source connects */
	return fx_qmp(r, DST, "migrate-set-capabilities", caps, err) && fx_qmp(r, SRC, "migrate-set-capabilities", caps, err) &&
	       fx_qmp(r, DST, "migrate-set-parameters", timeout, err) && fx_qmp(r, SRC, "migrate-set-parameters", timeout, err);
}

/* Starts the migration and waits for the cell's moment. */
static gboolean fx_reach(FxRun *r, GError **err)
{
	FxCell *c = r->cell;
	/* precopy is slow and never auto-switches; the postcopy cells switch after one pass
	 * and push slowly, so that postcopy is under way when the fault comes */
	const char *params = c->phase <= FX_PRECOPY ? "{\"max-bandwidth\":33554432,\"x-postcopy-after-passes\":0}"
				: "{\"max-bandwidth\":0,\"downtime-limit\":1,\"x-postcopy-after-passes\":1,"
				  "\"max-postcopy-bandwidth\":16777216}";
	gboolean bad = c->fault == FX_BAD;
	gboolean proxied = c->phase == FX_SETUP || c->phase == FX_SWITCHOVER ||
			   (c->phase != FX_RECOVER && (bad || c->fault == FX_RESET));
	guint16 port = fx_dst_port(r, err), pport = 0;
	g_autofree char *uri = NULL;

	if (!port || !fx_qmp(r, SRC, "migrate-set-parameters", params, err))
		return FALSE;
	if (proxied) {
		int hold = c->phase == FX_SETUP ? FPROXY_HELLO : c->phase == FX_SWITCHOVER ? MIG_F_PC_RUN : FPROXY_NONE;

		if (!fx_proxy(r, port, bad ? FPROXY_NONE : hold, bad && c->phase == FX_SWITCHOVER ? MIG_F_PC_RUN : FPROXY_NONE,
			      bad && c->phase == FX_SETUP, &pport, err))
			return FALSE;
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%u\"}", pport);
	} else {
		uri = g_strdup_printf("{\"uri\":\"tcp:%s:%u\"}", r->b->net->addr[BENCH_NET_DST], port);
	}
	if (!fx_qmp(r, SRC, "migrate", uri, err))
		return FALSE;
	switch (c->phase) {
	case FX_SETUP:
	case FX_SWITCHOVER:
		return fx_wait_marked(r, bad, err);
	case FX_PRECOPY:
		if (!fx_wait(r, SRC, "active", FX_MOMENT_MS, NULL, err))
			return FALSE;
		g_usleep(FX_SETTLE_MS * 1000);
		return fx_wait(r, SRC, "active", 0, NULL, err);
	case FX_POSTCOPY:
		if (!fx_wait_both(r, "postcopy-active", err))
			return FALSE;
		g_usleep(FX_SETTLE_MS * 1000);
		return fx_wait_both(r, "postcopy-active", err);
	case FX_RECOVER: {
		g_autofree char *rec = g_strdup_printf("{\"uri\":\"tcp:%s:0\"}", r->b->net->addr[BENCH_NET_DST]);
		g_autofree char *res = NULL;

		/* paused by the operator, then a recovery through the proxy, which marks its start */
		if (!fx_wait_both(r, "postcopy-active", err))
			return FALSE;
		g_usleep(FX_SETTLE_MS * 1000);
		if (!fx_qmp(r, SRC, "migrate-pause", NULL, err) || !fx_wait_both(r, "postcopy-paused", err) ||
		    !fx_qmp(r, DST, "migrate-recover", rec, err) || !(port = fx_dst_port(r, err)) ||
		    !fx_proxy(r, port, bad ? FPROXY_NONE : MIG_F_PC_RECOVER, bad ? MIG_F_PC_RECOVER : FPROXY_NONE, FALSE, &pport,
			      err))
			return FALSE;
		res = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%u\",\"resume\":true}", pport);
		return fx_qmp(r, SRC, "migrate", res, err) && fx_wait_marked(r, bad, err);
	}
	default:
		g_assert_not_reached();
	}
}

static void fx_cell_run(Bench *b, FxCell *c)
{
	g_autoptr(GError) err = NULL, mend_err = NULL;
	FxRun r = { .b = b, .cell = c };
	gint64 t0 = g_get_monotonic_time();
	gboolean ok;

	c->detect_ms[SRC] = c->detect_ms[DST] = NAN;
	c->checked = c->failed = -1;
	c->expected = c->phase < FX_POSTCOPY ? FX_EXP_SRC_RUNS : c->fault == FX_KILL ? FX_EXP_DST_WAITS : FX_EXP_RECOVERED;
	ok = fx_start(&r, &err) && fx_reach(&r, &err) && fx_inject(&r, &err) &&
	     (c->phase < FX_POSTCOPY ? fx_expect_source_runs(&r, &err) : fx_expect_pause(&r, &err));
	if (!ok)
		c->error = g_strdup(err ? err->message : "?");
	/* on every path: the bed outlives the cell, a stopped migd must be able to quit */
	bench_fproxy_free(r.proxy, FALSE);
	if (!fx_mend(&r, &mend_err) && ok)
		c->error = g_strdup(mend_err->message);
	bench_pair_stop(b, &r.p);
	c->seconds = (double)(g_get_monotonic_time() - t0) / 1e6;
}

static const char *fx_verdict(const FxCell *c)
{
	return c->error ? "FAIL" : "PASS";
}

static char *fx_fmt_ms(double ms)
{
	return isnan(ms) ? g_strdup("-") : g_strdup_printf("%.0f", ms);
}

static void fx_print(Bench *b, FxCell *cells, guint n)
{
	guint pass = 0;

	printf("\n%s: postcopy-ram + postcopy-preempt, %s anon guests in the netns bed (%s), x-channel-timeout %d ms, "
	       "bound to notice %d ms, %u CPUs\n", b->scenario, b->quick ? "128 MiB" : "256 MiB", BENCH_NET_RATE,
	       FX_CHANNEL_TIMEOUT_MS, FX_BOUND_MS, g_get_num_processors());
	printf("%-28s %-18s %9s %9s %13s %6s  %-6s %s\n", "cell", "expected", "src ms", "dst ms", "units failed", "s",
	       "result", "outcome");
	for (guint i = 0; i < n; i++) {
		const FxCell *c = &cells[i];
		g_autofree char *name = g_strdup_printf("%s@%s", fx_fault_names[c->fault], fx_phase_names[c->phase]);
		g_autofree char *ds = fx_fmt_ms(c->detect_ms[SRC]), *dd = fx_fmt_ms(c->detect_ms[DST]);
		g_autofree char *units = c->checked < 0 ? g_strdup("-")
				       : g_strdup_printf("%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, c->failed, c->checked);

		pass += !c->error;
		printf("%-28s %-18s %9s %9s %13s %6.1f  %-6s %s\n", name, c->expected, ds, dd, units, c->seconds,
		       fx_verdict(c), c->error ? c->error : c->outcome);
	}
	printf("%u of %u cells PASS. src/dst ms: from the fault to that side's failed or postcopy-paused "
	       "(\"-\": not that side's to notice); units failed/checked: the source's guest check before the "
	       "switchover, the destination's after it\n", pass, n);
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static gboolean fx_write_json(Bench *b, FxCell *cells, guint n, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, b->quick ? 128 << 20 : 256 << 20);
	bench_json_int(j, "channel_timeout_ms", FX_CHANNEL_TIMEOUT_MS);
	bench_json_int(j, "bound_ms", FX_BOUND_MS);
	json_builder_set_member_name(j, "cells");
	json_builder_begin_array(j);
	for (guint i = 0; i < n; i++) {
		const FxCell *c = &cells[i];

		json_builder_begin_object(j);
		bench_json_str(j, "fault", fx_fault_names[c->fault]);
		bench_json_str(j, "phase", fx_phase_names[c->phase]);
		bench_json_str(j, "expected", c->expected);
		bench_json_str(j, "result", fx_verdict(c));
		bench_json_str(j, "outcome", c->outcome);
		bench_json_str(j, "error", c->error);
		bench_json_double(j, "detect_src_ms", c->detect_ms[SRC]);
		bench_json_double(j, "detect_dst_ms", c->detect_ms[DST]);
		bench_json_int(j, "units_checked", c->checked);
		bench_json_int(j, "units_failed", c->failed);
		bench_json_double(j, "seconds", c->seconds);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

static int run_faults(Bench *b)
{
	FxCell cells[FX_FAULTS * FX_PHASES] = { 0 };
	g_autoptr(GError) err = NULL;
	guint n = 0;
	int rc = 0;

	b->unplotted = TRUE;
	if (!(b->net = bench_net_new(NULL, &err))) {
		g_printerr("migbench: faults needs the netns bed: %s\n", err->message);
		return 1;
	}
	for (int f = 0; f < FX_FAULTS; f++) {
		for (int ph = 0; ph < FX_PHASES; ph++) {
			FxCell *c = &cells[n];
			g_autofree char *name = g_strdup_printf("%s@%s", fx_fault_names[f], fx_phase_names[ph]);

			if (b->cells && !g_pattern_match_simple(b->cells, name))
				continue;
			if (bench_procs_interrupted(b->procs))
				break;
			c->fault = (FxFault)f;
			c->phase = (FxPhase)ph;
			fx_cell_run(b, c);
			g_printerr("migbench: %s: %s in %.1f s: %s\n", name, fx_verdict(c), c->seconds,
				   c->error ? c->error : c->outcome);
			rc |= c->error != NULL;
			n++;
		}
	}
	bench_net_free(b->net);
	b->net = NULL;
	fx_print(b, cells, n);
	if (b->json_path && !fx_write_json(b, cells, n, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (guint i = 0; i < n; i++) {
		g_free(cells[i].outcome);
		g_free(cells[i].error);
	}
	b->keep_tmp |= rc != 0;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_faults = {
	"faults", "the fault matrix: {link cut, reset, SIGKILL, SIGSTOP, malformed frame} x {setup .. postcopy-recover}",
	run_faults, 1,
};
