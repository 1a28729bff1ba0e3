/* Scenario postcopy-recovery: on the netns bed, a postcopy migration (postcopy-ram +
 * postcopy-preempt) whose link is cut --cut-ms into postcopy-active and mended
 * --outage-s later, then recovered QEMU's way (migrate-recover on the destination at a
 * new port, migrate resume:true on the source). Per run: how long each side took to
 * notice the cut by itself (x-channel-timeout short, so that it does within the
 * outage), from the resume command to postcopy-active on each side (the MIGRATION
 * event's own timestamp, so neither polling nor the client's wake-up counts), the bytes sent
 * after the resume against what the destination lacked, the guest's longest stall and
 * the integrity check; next to the same migration without the cut in the same run.
 * docs/benchmarks.md explains the method and the targets. */
#include "tools/bench/postcopy-latency.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PR_BED_PORT 4444            /* the destination's first listener inside the bed */
#define PR_RECOVER_PORT 4445        /* and the one migrate-recover opens */
#define PR_CHANNEL_TIMEOUT_MS 3000  /* x-channel-timeout on both sides */
#define PR_DETECT_SLACK_MS 1000     /* the target: noticed within the timeout + 1 s */
#define PR_RESUME_TRIPS 10          /* target: resume in <= 10 round trips + the bitmaps at link rate */
#define PR_RESENT_RATIO 1.05        /* target: re-sent <= 1.05 x what the destination lacked */
#define PR_PAUSE_MS 30000           /* bound on both sides pausing after a forced migrate-pause */
#define PR_FAST_POLL_US 1000        /* polling while timing detection and resume */
#define PR_HANDS_OFF_MS 20          /* migbench idle after the resume command (a resume takes ~2 ms) */
#define PR_LACKS_LOG "postcopy recovery: the destination lacks "

typedef enum { PR_BASELINE, PR_CUT, PR_ARMS } PrArm;

static const char *const pr_arm_names[PR_ARMS] = { "baseline", "cut" };

typedef struct PrSample {
	double detect_ms[2];        /* by BenchNetSide: cut to postcopy-paused seen; NAN: not within the outage */
	gboolean forced;            /* a side had not noticed: migrate-pause ended the wait */
	double resume_ms[2];        /* by BenchNetSide: resume command sent to the postcopy-active event's timestamp */
	gint64 lacked;              /* bytes the destination lacked (its bitmaps, the source's log); -1 unknown */
	gint64 resent;              /* the source's ram.transferred after the resume minus before */
	gint64 max_stall_us;        /* the destination's x-postcopy-latency max over page sizes */
	gint64 total_ms;            /* the source's total-time */
	guint64 checked, failed, units;
} PrSample;

typedef struct PrRow {
	PrArm arm;
	GArray *samples;            /* PrSample */
	RowStatus status;
	char *error;
} PrRow;

typedef struct PrCtx {
	guint64 guest;
	double rtt_us;              /* the bed's 4K page round trip (mig-rawxfer pingpong), NAN unknown */
	guint64 bitmap_bytes;       /* the received bitmaps' size: one bit per 4K page */
	PrRow rows[PR_ARMS];
} PrCtx;

static double pr_since_ms(gint64 t0)
{
	return (double)(g_get_monotonic_time() - t0) / 1e3;
}

/* The side's status now, or NULL with err. */
static char *pr_status(QmpClient *q, const char *side, GError **err)
{
	g_autoptr(JsonObject) o = bench_query_migrate(q, err);

	if (!o) {
		g_prefix_error(err, "%s: ", side);
		return NULL;
	}
	return g_strdup(bench_obj_str(o, "status") ? bench_obj_str(o, "status") : "?");
}

static gboolean pr_over(const char *st)
{
	return !g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled") || !g_strcmp0(st, "completed");
}

/* Waits for the source's postcopy-active; a migration that ends first leaves nothing to cut. */
static gboolean pr_wait_postcopy(Bench *b, MigPair *p, GError **err)
{
	gint64 end = g_get_monotonic_time() + (gint64)T_MIGRATE_MS * 1000;

	while (g_get_monotonic_time() < end) {
		g_autofree char *st = pr_status(p->qsrc, "source", err);

		if (!st)
			return FALSE;
		if (!strcmp(st, "postcopy-active"))
			return TRUE;
		if (pr_over(st)) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the source reached %s before postcopy-active", st);
			return FALSE;
		}
		if (bench_interrupted(b, err))
			return FALSE;
		g_usleep(PR_FAST_POLL_US * 5);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "no postcopy-active in %d s", T_MIGRATE_MS / 1000);
	return FALSE;
}

/* Polls both sides until deadline_us (monotonic) or until both have st_want; the first
 * time each is seen in it, in ms since t0, goes to at[] (NAN: not seen). */
static gboolean pr_watch(Bench *b, MigPair *p, const char *want, gint64 t0, gint64 deadline_us,
			 double at[2], GError **err)
{
	QmpClient *q[2] = { p->qsrc, p->qdst };
	static const char *const names[2] = { "source", "destination" };

	at[0] = at[1] = NAN;
	while (g_get_monotonic_time() < deadline_us && (isnan(at[0]) || isnan(at[1]))) {
		for (int s = 0; s < 2; s++) {
			g_autofree char *st = NULL;

			if (!isnan(at[s]))
				continue;
			if (!(st = pr_status(q[s], names[s], err)))
				return FALSE;
			if (!strcmp(st, want))
				at[s] = pr_since_ms(t0);
			else if (pr_over(st)) {
				g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the %s reached %s while waiting for %s",
					    names[s], st, want);
				return FALSE;
			}
		}
		if (bench_interrupted(b, err))
			return FALSE;
		g_usleep(PR_FAST_POLL_US);
	}
	return TRUE;
}

/* A MIGRATION event's status into *st and its timestamp (wall clock, µs) into *ts;
 * FALSE for any other message. */
static gboolean pr_migration_event(JsonObject *ev, const char **st, gint64 *ts)
{
	JsonObject *t = bench_obj_obj(ev, "timestamp");

	if (g_strcmp0(bench_obj_str(ev, "event"), "MIGRATION") || !t)
		return FALSE;
	*st = bench_obj_str(bench_obj_obj(ev, "data"), "status");
	*ts = bench_obj_int(t, "seconds", 0) * G_USEC_PER_SEC + bench_obj_int(t, "microseconds", 0);
	return *st != NULL;
}

/* The resume's end on one side: its first postcopy-active event stamped at or after
 * t0 (wall clock, µs), in ms after t0. */
typedef struct PrResume {
	gint64 t0;
	double *at;
	const char *over;           /* a status that ends the migration, seen first */
} PrResume;

static void pr_on_event(JsonObject *ev, gpointer opaque)
{
	PrResume *r = opaque;
	const char *st;
	gint64 ts;

	if (!isnan(*r->at) || r->over || !pr_migration_event(ev, &st, &ts) || ts < r->t0)
		return;
	if (!strcmp(st, "postcopy-active"))
		*r->at = (double)(ts - r->t0) / 1e3;
	else if (pr_over(st))
		r->over = g_intern_string(st);
}

/* Reads side's events (after the command that started the resume, which saw some)
 * until its postcopy-active; bounded by deadline_us (monotonic). */
static gboolean pr_wait_resumed(Bench *b, QmpClient *q, const char *side, PrResume *r, gint64 deadline_us,
				GError **err)
{
	while (isnan(*r->at) && !r->over) {
		g_autoptr(GError) e = NULL;
		g_autoptr(JsonObject) ev = NULL;

		if (g_get_monotonic_time() >= deadline_us) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the %s: no postcopy-active event in %d s", side,
				    T_MIGRATE_MS / 1000);
			return FALSE;
		}
		if (bench_interrupted(b, err))
			return FALSE;
		ev = qmpc_read(q, 200, &e);
		if (ev)
			pr_on_event(ev, r);
		else if (!g_error_matches(e, QMPC_ERROR, QMPC_ERROR_TIMEOUT)) {
			g_propagate_prefixed_error(err, g_steal_pointer(&e), "%s: ", side);
			return FALSE;
		}
	}
	if (r->over) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the %s reached %s while resuming", side, r->over);
		return FALSE;
	}
	return TRUE;
}

/* The source's last "the destination lacks N bytes" (its log of the recovery). */
static gint64 pr_lacked(const BenchChild *src)
{
	g_autofree char *all = NULL;
	const char *at = NULL, *p;

	if (!g_file_get_contents(src->err_path, &all, NULL, NULL))
		return -1;
	for (p = all; (p = strstr(p, PR_LACKS_LOG)) != NULL; p++)
		at = p;
	return at ? (gint64)g_ascii_strtoull(at + strlen(PR_LACKS_LOG), NULL, 10) : -1;
}

static gint64 pr_transferred(QmpClient *q, GError **err)
{
	g_autoptr(JsonObject) o = bench_query_migrate(q, err);

	return o ? bench_obj_int(bench_obj_obj(o, "ram"), "transferred", -1) : -1;
}

/* The cut, the pause (noticed, or forced once the outage is over), the recovery. */
static gboolean pr_cut_and_recover(Bench *b, MigPair *p, PrSample *s, GError **err)
{
	g_autofree char *rec = g_strdup_printf("{\"uri\":\"tcp:%s:%u\"}", bench_dst_host(b, TRUE), PR_RECOVER_PORT);
	g_autofree char *res = g_strdup_printf("{\"uri\":\"tcp:%s:%u\",\"resume\":true}", bench_dst_host(b, TRUE),
					       PR_RECOVER_PORT);
	QmpClient *q[2] = { p->qsrc, p->qdst };
	PrResume res_src = { .at = &s->resume_ms[0] }, res_dst = { .at = &s->resume_ms[1] };
	g_autoptr(JsonObject) reply = NULL;
	double paused[2];
	gint64 t_cut, before, end;
	gboolean ok;
	guint id;

	g_usleep((gulong)b->cut_ms * 1000);
	if (!bench_net_set_link(b->net, FALSE, err))
		return FALSE;
	t_cut = g_get_monotonic_time();
	ok = pr_watch(b, p, "postcopy-paused", t_cut, t_cut + (gint64)b->outage_s * G_USEC_PER_SEC, s->detect_ms, err);
	/* the link is mended on every path: the bed outlives this run */
	while (g_get_monotonic_time() < t_cut + (gint64)b->outage_s * G_USEC_PER_SEC)
		g_usleep(PR_FAST_POLL_US * 10);
	if (!bench_net_set_link(b->net, TRUE, ok ? err : NULL) || !ok)
		return FALSE;
	for (int side = 0; side < 2; side++) {
		const char *name = side ? "destination" : "source";
		g_autoptr(GError) e = NULL;
		g_autofree char *st = NULL;

		if (!isnan(s->detect_ms[side]))
			continue;
		s->forced = TRUE;
		/* refused only if the side paused by itself since the last look */
		if (!bench_qmp_run(q[side], name, "migrate-pause", NULL, &e) &&
		    g_strcmp0(st = pr_status(q[side], name, NULL), "postcopy-paused")) {
			g_propagate_error(err, g_steal_pointer(&e));
			return FALSE;
		}
	}
	if (s->forced) {
		if (!pr_watch(b, p, "postcopy-paused", t_cut, g_get_monotonic_time() + (gint64)PR_PAUSE_MS * 1000,
			      paused, err))
			return FALSE;
		if (isnan(paused[0]) || isnan(paused[1])) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "not both sides in postcopy-paused %d s after migrate-pause",
				    PR_PAUSE_MS / 1000);
			return FALSE;
		}
	}
	if ((before = pr_transferred(p->qsrc, err)) < 0 ||
	    !bench_qmp_run(p->qdst, "destination", "migrate-recover", rec, err))
		return FALSE;
	/* nothing polls either side until both are back: on a busy host the queries would
	 * take CPU from what they time */
	res_src.t0 = res_dst.t0 = g_get_real_time();
	end = g_get_monotonic_time() + (gint64)T_MIGRATE_MS * 1000;
	/* nor does migbench read until the resume is likely over: traced, its parsing of
	 * the reply and the first events took the source's main thread's CPU for about
	 * 0.2 ms of the resume; the events carry the engine's own time, so reading them
	 * late changes no figure */
	if ((id = qmpc_send(p->qsrc, "migrate", res, T_QMP_CMD_MS, err)) != 0) {
		g_usleep(PR_HANDS_OFF_MS * 1000);
		reply = qmpc_wait_reply(p->qsrc, id, "migrate", T_QMP_CMD_MS, pr_on_event, &res_src, err);
	}
	if (!reply) {
		g_prefix_error(err, "source migrate: ");
		return FALSE;
	}
	if (json_object_has_member(reply, "error")) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "source migrate resume:true: %s",
			    bench_obj_str(bench_obj_obj(reply, "error"), "desc"));
		return FALSE;
	}
	if (!pr_wait_resumed(b, p->qsrc, "source", &res_src, end, err) ||
	    !pr_wait_resumed(b, p->qdst, "destination", &res_dst, end, err))
		return FALSE;
	s->resent = -before;   /* the rest once the source has completed */
	return TRUE;
}

/* The guest's longest stall: the longest placement wait of any page size. */
static gint64 pr_max_stall(JsonObject *dst)
{
	JsonObject *lat = bench_obj_obj(dst, "x-postcopy-latency");
	g_autoptr(GList) classes = lat ? json_object_get_members(lat) : NULL;
	gint64 max = -1;

	for (GList *l = classes; l; l = l->next)
		max = MAX(max, bench_obj_int(bench_obj_obj(lat, l->data), "max", -1));
	return max;
}

static gboolean pr_run(Bench *b, PrCtx *c, PrArm arm, PrSample *s, GError **err)
{
	guint seq = ++b->seq;
	g_autofree char *incoming = g_strdup_printf("tcp:%s:%u", bench_dst_host(b, TRUE), PR_BED_PORT);
	g_autofree char *uri = g_strdup_printf("{\"uri\":\"%s\"}", incoming);
	g_autofree char *timeout = g_strdup_printf("{\"x-channel-timeout\":%d}", PR_CHANNEL_TIMEOUT_MS);
	static const char caps[] = "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true},"
				   "{\"capability\":\"postcopy-preempt\",\"state\":true},"
				   "{\"capability\":\"events\",\"state\":true}]}";
	/* the source keeps dirtying so precopy cannot converge; the destination's vCPUs fault
	 * all over the guest as soon as they run, so the cut finds them waiting */
	MigdSpec src = { .backend = "anon", .guest_bytes = c->guest, .workload = PC_SRC_WORKLOAD, .seed = seq,
			 .side = BENCH_NET_SRC };
	MigdSpec dst = { .backend = "anon", .guest_bytes = c->guest, .workload = PC_DST_WORKLOAD, .vcpus = b->dst_vcpus,
			 .incoming = incoming, .side = BENCH_NET_DST };
	g_autoptr(JsonObject) done = NULL, dq = NULL;
	MigSample integ = { 0 };
	MigPair p = { 0 };
	gboolean ok;

	for (int i = 0; i < 2; i++)
		s->detect_ms[i] = s->resume_ms[i] = NAN;
	s->lacked = s->resent = -1;
	/* capabilities on the destination first: it must know before the source connects */
	ok = bench_pair_start(b, &src, &dst, &p, err) &&
	     bench_qmp_run(p.qdst, "destination", "migrate-set-capabilities", caps, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-capabilities", caps, err) &&
	     bench_qmp_run(p.qdst, "destination", "migrate-set-parameters", timeout, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", timeout, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters",
			   "{\"max-bandwidth\":0,\"downtime-limit\":1,\"x-postcopy-after-passes\":1}", err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate", uri, err);
	if (ok && arm == PR_CUT)
		ok = pr_wait_postcopy(b, &p, err) && pr_cut_and_recover(b, &p, s, err);
	ok = ok && (done = bench_wait_source(b, &p, err)) != NULL && bench_wait_integrity(b, &p, &integ, err) &&
	     (dq = bench_query_migrate(p.qdst, err)) != NULL;
	if (ok) {
		s->max_stall_us = pr_max_stall(dq);
		s->total_ms = bench_obj_int(done, "total-time", -1);
		if (arm == PR_CUT) {
			s->resent += bench_obj_int(bench_obj_obj(done, "ram"), "transferred", -1);
			s->lacked = pr_lacked(p.src);
			if (s->lacked < 0)
				bench_note(b, "the source logged no \"" PR_LACKS_LOG "N bytes\": no re-sent ratio");
		}
	}
	s->checked = integ.checked;
	s->failed = integ.failed;
	s->units = integ.units;
	bench_pair_stop(b, &p);
	return ok;
}

/* Each target, per run: TRUE met, FALSE missed; a run without the figure misses it. */
static gboolean pr_detect_met(const PrSample *s)
{
	return !s->forced && s->detect_ms[0] <= PR_CHANNEL_TIMEOUT_MS + PR_DETECT_SLACK_MS &&
	       s->detect_ms[1] <= PR_CHANNEL_TIMEOUT_MS + PR_DETECT_SLACK_MS;
}

static double pr_resume_target_ms(const PrCtx *c)
{
	double bitmaps_us = (double)c->bitmap_bytes * 8 / BENCH_NET_RATE_BPS * 1e6;

	return isnan(c->rtt_us) ? NAN : (PR_RESUME_TRIPS * c->rtt_us + bitmaps_us) / 1e3;
}

static gboolean pr_resume_met(const PrCtx *c, const PrSample *s)
{
	return MAX(s->resume_ms[0], s->resume_ms[1]) <= pr_resume_target_ms(c);
}

static double pr_ratio(const PrSample *s)
{
	return s->lacked > 0 && s->resent >= 0 ? (double)s->resent / (double)s->lacked : NAN;
}

static gboolean pr_resent_met(const PrSample *s)
{
	return pr_ratio(s) <= PR_RESENT_RATIO || (s->lacked == 0 && s->resent == 0);
}

/* The median over a row's runs of one figure; NAN unless every run has it. */
typedef double (*PrGet)(const PrSample *s);
static double get_det_src(const PrSample *s) { return s->detect_ms[0]; }
static double get_det_dst(const PrSample *s) { return s->detect_ms[1]; }
static double get_res_src(const PrSample *s) { return s->resume_ms[0]; }
static double get_res_dst(const PrSample *s) { return s->resume_ms[1]; }
static double get_lacked(const PrSample *s) { return s->lacked < 0 ? NAN : (double)s->lacked / (1 << 20); }
static double get_resent(const PrSample *s) { return s->resent < 0 ? NAN : (double)s->resent / (1 << 20); }
static double get_stall(const PrSample *s) { return s->max_stall_us < 0 ? NAN : (double)s->max_stall_us / 1e3; }
static double get_total(const PrSample *s) { return s->total_ms < 0 ? NAN : (double)s->total_ms; }

static double pr_median(const PrRow *r, PrGet get)
{
	g_autofree double *v = g_new0(double, r->samples->len + 1);

	if (r->status != ROW_OK || !r->samples->len)
		return NAN;
	for (guint i = 0; i < r->samples->len; i++) {
		v[i] = get(&g_array_index(r->samples, PrSample, i));
		if (isnan(v[i]))
			return NAN;
	}
	return bench_median(v, r->samples->len);
}

static void pr_cell(Bench *b, PrCtx *c, PrRow *row, int run)
{
	g_autoptr(GError) err = NULL;
	PrSample s = { 0 };

	if (row->status != ROW_OK)
		return;
	if (bench_interrupted(b, &err) || !pr_run(b, c, row->arm, &s, &err)) {
		row->status = bench_status_of(err);
		row->error = g_strdup(err->message);
		g_printerr("migbench: %s run %d/%d: %s: %s\n", pr_arm_names[row->arm], run + 1, b->runs,
			   bench_status_names[row->status], err->message);
		return;
	}
	g_array_append_val(row->samples, s);
	if (row->arm == PR_BASELINE)
		g_printerr("migbench: baseline run %d/%d: longest stall %.1f ms, total %" G_GINT64_FORMAT " ms, integrity %"
			   G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "\n", run + 1, b->runs, get_stall(&s), s.total_ms,
			   s.checked - s.failed, s.units);
	else
		g_printerr("migbench: cut run %d/%d: noticed src %.0f dst %.0f ms%s, resume src %.1f dst %.1f ms, re-sent %"
			   G_GINT64_FORMAT " of %" G_GINT64_FORMAT " lacked, longest stall %.1f ms, integrity %" G_GUINT64_FORMAT
			   "/%" G_GUINT64_FORMAT "\n", run + 1, b->runs, s.detect_ms[0], s.detect_ms[1],
			   s.forced ? " (migrate-pause)" : "", s.resume_ms[0], s.resume_ms[1], s.resent, s.lacked,
			   get_stall(&s), s.checked - s.failed, s.units);
}

static const char *pr_mark(gboolean measured, gboolean met)
{
	return !measured ? "not measured" : met ? "met" : "MISSED";
}

/* A target is met when every run of the cut row meets it. */
static void pr_targets(const PrCtx *c, gboolean met[3], gboolean *measured)
{
	const PrRow *r = &c->rows[PR_CUT];

	*measured = r->status == ROW_OK && r->samples->len > 0;
	met[0] = met[1] = met[2] = *measured;
	for (guint i = 0; *measured && i < r->samples->len; i++) {
		const PrSample *s = &g_array_index(r->samples, PrSample, i);

		met[0] &= pr_resume_met(c, s);
		met[1] &= pr_resent_met(s);
		met[2] &= pr_detect_met(s);
	}
}

static void pr_print(Bench *b, const PrCtx *c)
{
	static const struct { const char *head; PrGet get; int dec; } cols[] = {
		{ "noticed src ms", get_det_src, 0 }, { "noticed dst ms", get_det_dst, 0 },
		{ "resume src ms", get_res_src, 1 }, { "resume dst ms", get_res_dst, 1 },
		{ "lacked MiB", get_lacked, 1 }, { "re-sent MiB", get_resent, 1 },
		{ "stall ms", get_stall, 1 }, { "total ms", get_total, 0 },
	};
	g_autofree char *size = bench_fmt_size(c->guest);
	gboolean met[3], measured;

	printf("\n%s: %s anon guest, postcopy-ram + postcopy-preempt, netns bed (%s), link cut %u ms into "
	       "postcopy-active for %u s, x-channel-timeout %d ms, median of %d run%s, %u CPUs\n", b->scenario, size,
	       BENCH_NET_RATE, b->cut_ms, b->outage_s, PR_CHANNEL_TIMEOUT_MS, b->runs, b->runs == 1 ? "" : "s",
	       g_get_num_processors());
	printf("%-9s", "arm");
	for (guint k = 0; k < G_N_ELEMENTS(cols); k++)
		printf(" %s", cols[k].head);
	printf(" %9s %s\n", "re-sent/x", "integrity");
	for (int a = 0; a < PR_ARMS; a++) {
		const PrRow *r = &c->rows[a];
		g_autofree double *ratios = g_new0(double, r->samples->len + 1);
		g_autofree char *ratio = NULL, *integ = NULL;
		guint64 failed = 0;

		printf("%-9s", pr_arm_names[a]);
		for (guint k = 0; k < G_N_ELEMENTS(cols); k++) {
			g_autofree char *v = r->status == ROW_OK ? bench_fmt_num(pr_median(r, cols[k].get), cols[k].dec)
								 : g_strdup(bench_status_names[r->status]);

			printf(" %*s", (int)strlen(cols[k].head), v);
		}
		for (guint i = 0; i < r->samples->len; i++) {
			ratios[i] = pr_ratio(&g_array_index(r->samples, PrSample, i));
			failed += g_array_index(r->samples, PrSample, i).failed;
		}
		ratio = bench_fmt_num(r->samples->len ? bench_median(ratios, r->samples->len) : NAN, 3);
		integ = r->samples->len ? g_strdup_printf("%" G_GUINT64_FORMAT " failed", failed) : g_strdup("-");
		printf(" %9s %s\n", a == PR_CUT ? ratio : "-", integ);
	}
	pr_targets(c, met, &measured);
	{
		g_autofree char *rtt = bench_fmt_num(c->rtt_us / 1e3, 3), *lim = bench_fmt_num(pr_resume_target_ms(c), 1);

		printf("targets (every cut run): resume to postcopy-active on both sides <= %d round trips (%s ms each) + "
		       "the bitmaps (%" G_GUINT64_FORMAT " bytes) at %s = %s ms: %s; re-sent <= %.2fx lacked: %s; "
		       "noticed <= x-channel-timeout + %d s = %d ms: %s\n", PR_RESUME_TRIPS, rtt, c->bitmap_bytes,
		       BENCH_NET_RATE, lim, pr_mark(measured && !isnan(c->rtt_us), met[0]), PR_RESENT_RATIO,
		       pr_mark(measured, met[1]), PR_DETECT_SLACK_MS / 1000, PR_CHANNEL_TIMEOUT_MS + PR_DETECT_SLACK_MS,
		       pr_mark(measured, met[2]));
	}
	for (int a = 0; a < PR_ARMS; a++) {
		if (c->rows[a].status != ROW_OK)
			printf("%s %s: %s\n", pr_arm_names[a], bench_status_names[c->rows[a].status], c->rows[a].error);
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static gboolean pr_write_json(Bench *b, const PrCtx *c, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();
	gboolean met[3], measured;

	bench_json_head(b, j, c->guest);
	bench_json_int(j, "cut_ms", b->cut_ms);
	bench_json_int(j, "outage_s", b->outage_s);
	bench_json_int(j, "channel_timeout_ms", PR_CHANNEL_TIMEOUT_MS);
	bench_json_double(j, "rtt_us", c->rtt_us);
	bench_json_int(j, "bitmap_bytes", (gint64)c->bitmap_bytes);
	bench_json_double(j, "resume_target_ms", pr_resume_target_ms(c));
	pr_targets(c, met, &measured);
	json_builder_set_member_name(j, "targets");
	json_builder_begin_object(j);
	bench_json_str(j, "resume", pr_mark(measured && !isnan(c->rtt_us), met[0]));
	bench_json_str(j, "resent", pr_mark(measured, met[1]));
	bench_json_str(j, "detect", pr_mark(measured, met[2]));
	json_builder_end_object(j);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (int a = 0; a < PR_ARMS; a++) {
		const PrRow *r = &c->rows[a];

		json_builder_begin_object(j);
		bench_json_str(j, "arm", pr_arm_names[a]);
		bench_json_status(j, r->status, r->error);
		json_builder_set_member_name(j, "samples");
		json_builder_begin_array(j);
		for (guint i = 0; i < r->samples->len; i++) {
			const PrSample *s = &g_array_index(r->samples, PrSample, i);

			json_builder_begin_object(j);
			if (a == PR_CUT) {
				bench_json_double(j, "detect_src_ms", s->detect_ms[0]);
				bench_json_double(j, "detect_dst_ms", s->detect_ms[1]);
				json_builder_set_member_name(j, "forced_pause");
				json_builder_add_boolean_value(j, s->forced);
				bench_json_double(j, "resume_src_ms", s->resume_ms[0]);
				bench_json_double(j, "resume_dst_ms", s->resume_ms[1]);
				bench_json_int(j, "lacked_bytes", s->lacked);
				bench_json_int(j, "resent_bytes", s->resent);
				bench_json_double(j, "resent_ratio", pr_ratio(s));
			}
			bench_json_int(j, "max_stall_us", s->max_stall_us);
			bench_json_int(j, "total_ms", s->total_ms);
			bench_json_int(j, "checked", (gint64)s->checked);
			bench_json_int(j, "failed", (gint64)s->failed);
			bench_json_int(j, "units", (gint64)s->units);
			json_builder_end_object(j);
		}
		json_builder_end_array(j);
		bench_json_double(j, "median_max_stall_ms", pr_median(r, get_stall));
		bench_json_double(j, "median_total_ms", pr_median(r, get_total));
		if (a == PR_CUT) {
			bench_json_double(j, "median_resume_src_ms", pr_median(r, get_res_src));
			bench_json_double(j, "median_resume_dst_ms", pr_median(r, get_res_dst));
		}
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	return bench_json_save(b, j, err);
}

static int run_postcopy_recovery(Bench *b)
{
	PrCtx c = { .guest = b->quick ? 256 << 20 : 1 * GiB, .rtt_us = NAN };
	PcNet net = { .name = "netns", .bed = TRUE };
	g_autoptr(GError) err = NULL, bed_err = NULL, floor_err = NULL;
	int rc = 0;

	b->unplotted = TRUE;
	c.bitmap_bytes = c.guest / 4096 / 8;
	for (int a = 0; a < PR_ARMS; a++) {
		c.rows[a].arm = (PrArm)a;
		c.rows[a].samples = g_array_new(FALSE, TRUE, sizeof(PrSample));
	}
	if (!(b->net = bench_net_new(NULL, &bed_err))) {
		for (int a = 0; a < PR_ARMS; a++) {
			c.rows[a].status = ROW_ERROR;
			c.rows[a].error = g_strdup(bed_err->message);
		}
	} else {
		/* the round trip the resume target counts in: one 4K page fetched over the bed */
		if (pc_floor(b, &net, 1, &floor_err))
			c.rtt_us = net.floor[0].median_us;
		else
			bench_note(b, "no round trip measured (%s): the resume target is not judged", floor_err->message);
		/* the arms take turns, starting one further each run, so drift spreads over both */
		for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++) {
			for (int k = 0; k < PR_ARMS; k++)
				pr_cell(b, &c, &c.rows[(k + run) % PR_ARMS], run);
		}
	}
	bench_net_free(b->net);   /* every child of this net was reaped by now */
	b->net = NULL;
	pr_print(b, &c);
	if (b->json_path && !pr_write_json(b, &c, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (int a = 0; a < PR_ARMS; a++) {
		rc |= c.rows[a].status == ROW_ERROR;
		g_array_unref(c.rows[a].samples);
		g_free(c.rows[a].error);
	}
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_postcopy_recovery = {
	"postcopy-recovery", "postcopy with the netns link cut and mended, then recovered: resume time, re-sent bytes, stall",
	run_postcopy_recovery, 0,
};
