/* A migd pair: start both, talk QMP to them, wait for the migration and for the
 * destination to verify every page, then stop both. */
#include "tools/bench/runner.h"
#include <string.h>

static BenchChild *spawn_migd(Bench *b, const MigdSpec *m, const char *name, const char *sock, GError **err)
{
	g_autofree char *qmp = g_strdup_printf("unix:%s", sock);
	g_autofree char *mem = g_strdup_printf("%" G_GUINT64_FORMAT "M", m->guest_bytes >> 20);
	g_autofree char *seedstr = g_strdup_printf("%u", m->seed);
	g_autofree char *vcpus = g_strdup_printf("%u", m->vcpus);
	g_autoptr(GPtrArray) argv = g_ptr_array_new();

	g_ptr_array_add(argv, b->migd);
	g_ptr_array_add(argv, "--name");
	g_ptr_array_add(argv, (char *)name);
	g_ptr_array_add(argv, "--qmp");
	g_ptr_array_add(argv, qmp);
	g_ptr_array_add(argv, "-m");
	g_ptr_array_add(argv, mem);
	g_ptr_array_add(argv, "--mem-backend");
	g_ptr_array_add(argv, (char *)m->backend);
	if (m->huge) {
		g_ptr_array_add(argv, "--hugepage-size");
		g_ptr_array_add(argv, "2M");
	}
	if (m->vcpus) {
		g_ptr_array_add(argv, "--vcpus");
		g_ptr_array_add(argv, vcpus);
	}
	if (m->workload) {
		g_ptr_array_add(argv, "--workload");
		g_ptr_array_add(argv, (char *)m->workload);
	}
	if (m->seed) {
		g_ptr_array_add(argv, "--seed");
		g_ptr_array_add(argv, seedstr);
	}
	if (m->prealloc)
		g_ptr_array_add(argv, "--mem-prealloc");
	if (m->thp)
		g_ptr_array_add(argv, "--mem-thp");
	if (m->dirty_log)
		g_ptr_array_add(argv, "--dirty-log");
	if (m->incoming) {
		g_ptr_array_add(argv, "--incoming");
		g_ptr_array_add(argv, (char *)m->incoming);
	}
	for (guint i = 0; m->devices && m->devices[i]; i++) {
		g_ptr_array_add(argv, "--device");
		g_ptr_array_add(argv, (char *)m->devices[i]);
	}
	if (m->trace_latency)
		g_ptr_array_add(argv, "--trace-latency");
	g_ptr_array_add(argv, NULL);
	return bench_spawn_on(b, m->side, name, (const char *const *)argv->pdata, err);
}

/* Connects to a starting migd, retrying until its socket exists; fails early if it dies. */
static QmpClient *qmp_open(Bench *b, BenchChild *c, const char *sock, GError **err)
{
	gint64 end = g_get_monotonic_time() + (gint64)T_QMP_READY_MS * 1000;

	for (int i = 0; i <= T_QMP_READY_MS / POLL_MS; i++) {
		g_autoptr(GError) e = NULL;
		gint64 left_ms = (end - g_get_monotonic_time()) / 1000;
		QmpClient *q;

		if (!bench_child_alive(b->procs, c)) {
			bench_child_error(b, c, err, "migd exited at start");
			return NULL;
		}
		q = qmpc_connect(sock, (int)MAX(left_ms, 1), &e);
		if (q)
			return q;
		if (!g_error_matches(e, QMPC_ERROR, QMPC_ERROR_NOT_READY)) {
			bench_child_error(b, c, err, "QMP %s: %s", sock, e->message);
			return NULL;
		}
		if (left_ms <= 0)
			break;
		g_usleep(POLL_MS * 1000);
	}
	bench_child_error(b, c, err, "no QMP on %s within %d s", sock, T_QMP_READY_MS / 1000);
	return NULL;
}

gboolean bench_qmp_run(QmpClient *q, const char *side, const char *cmd, const char *args, GError **err)
{
	g_autoptr(JsonNode) r = qmpc_execute(q, cmd, args, T_QMP_CMD_MS, err);

	if (!r)
		g_prefix_error(err, "%s %s: ", side, cmd);
	return r != NULL;
}

/* multifd on with N channels, or explicitly off for the "main" row. */
gboolean bench_set_multifd(QmpClient *q, const char *side, guint channels, GError **err)
{
	g_autofree char *caps = g_strdup_printf("{\"capabilities\":[{\"capability\":\"multifd\",\"state\":%s}]}",
						channels ? "true" : "false");
	g_autofree char *params = g_strdup_printf("{\"multifd-channels\":%u}", MAX(channels, 1));

	return bench_qmp_run(q, side, "migrate-set-capabilities", caps, err) &&
	       (!channels || bench_qmp_run(q, side, "migrate-set-parameters", params, err));
}

char *bench_dst_port(Bench *b, MigPair *p, GError **err)
{
	for (int i = 0; i <= T_PORT_MS / POLL_MS; i++) {
		g_autoptr(JsonObject) o = bench_query_migrate(p->qdst, err);
		JsonNode *sa;

		if (!o)
			return NULL;
		sa = json_object_get_member(o, "socket-address");
		if (sa && JSON_NODE_HOLDS_ARRAY(sa) && json_array_get_length(json_node_get_array(sa)) > 0) {
			JsonNode *first = json_array_get_element(json_node_get_array(sa), 0);
			const char *port = JSON_NODE_HOLDS_OBJECT(first) ? bench_obj_str(json_node_get_object(first), "port") : NULL;

			if (port)
				return g_strdup(port);
		}
		if (bench_interrupted(b, err))
			return NULL;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination reported no socket-address in %d s",
		    T_PORT_MS / 1000);
	return NULL;
}

gboolean bench_mig_sample(JsonObject *o, MigSample *s, GError **err)
{
	JsonObject *ram = bench_obj_obj(o, "ram");
	gint64 active_ms;

	s->total_ms = bench_obj_int(o, "total-time", -1);
	s->setup_ms = bench_obj_int(o, "setup-time", 0);
	s->downtime_ms = bench_obj_int(o, "downtime", -1);
	s->cpu_ms = bench_obj_int(o, "x-migration-thread-cpu-ms", -1);
	s->ram_total = (guint64)bench_obj_int(ram, "total", 0);
	s->ram_transferred = (guint64)bench_obj_int(ram, "transferred", 0);
	active_ms = s->total_ms - s->setup_ms;
	if (!s->ram_total || active_ms <= 0) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED,
			    "completed without usable figures (ram.total %" G_GUINT64_FORMAT ", total-time %" G_GINT64_FORMAT
			    " ms, setup-time %" G_GINT64_FORMAT " ms)", s->ram_total, s->total_ms, s->setup_ms);
		return FALSE;
	}
	s->gbps = (double)s->ram_total / ((double)active_ms / 1e3) / 1e9;
	return TRUE;
}

/* Polls the source until the migration ends; returns its last query-migrate if it
 * completed. */
JsonObject *bench_wait_source(Bench *b, MigPair *p, GError **err)
{
	for (int i = 0; i <= T_MIGRATE_MS / POLL_MS; i++) {
		g_autoptr(GError) e = NULL;
		g_autoptr(JsonObject) o = bench_query_migrate(p->qsrc, &e);
		const char *st;

		if (!o) {
			bench_child_error(b, p->src, err, "source query-migrate: %s", e->message);
			return NULL;
		}
		st = bench_obj_str(o, "status");
		if (!g_strcmp0(st, "completed"))
			return g_steal_pointer(&o);
		if (!g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled")) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "migration %s: %s", st,
				    bench_obj_str(o, "error-desc") ? bench_obj_str(o, "error-desc") : "no error-desc");
			return NULL;
		}
		if (bench_interrupted(b, err))
			return NULL;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "migration not done in %d s", T_MIGRATE_MS / 1000);
	return NULL;
}

/* The destination must complete and verify every page: a run that fails integrity is an
 * error, never a figure. */
gboolean bench_wait_integrity(Bench *b, MigPair *p, MigSample *s, GError **err)
{
	g_autofree char *last_status = NULL;   /* outlives each reply, for the timeout message */

	for (int i = 0; i <= T_INTEGRITY_MS / POLL_MS; i++) {
		g_autoptr(JsonObject) o = bench_query_migrate(p->qdst, err);
		const char *st;
		JsonObject *in;

		if (!o) {
			g_prefix_error(err, "destination: ");
			return FALSE;
		}
		st = bench_obj_str(o, "status");
		g_free(last_status);
		last_status = g_strdup(st ? st : "?");
		in = bench_obj_obj(o, "x-integrity");
		s->checked = (guint64)bench_obj_int(in, "checked", 0);
		s->failed = (guint64)bench_obj_int(in, "failed", 0);
		s->units = (guint64)bench_obj_int(in, "total", 0);
		if (!g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled")) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination %s: %s", st,
				    bench_obj_str(o, "error-desc") ? bench_obj_str(o, "error-desc") : "no error-desc");
			return FALSE;
		}
		if (s->failed) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "integrity: %" G_GUINT64_FORMAT " of %"
				    G_GUINT64_FORMAT " checked pages differ", s->failed, s->checked);
			return FALSE;
		}
		if (!g_strcmp0(st, "completed") && in && s->units && s->checked == s->units)
			return TRUE;
		if (bench_interrupted(b, err))
			return FALSE;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination not verified in %d s (status %s, x-integrity %"
		    G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT ")", T_INTEGRITY_MS / 1000, last_status ? last_status : "?",
		    s->checked, s->units);
	return FALSE;
}

/* Starts one migd and connects to it over QMP: p->src/qsrc for a source, p->dst/qdst
 * for a destination (m->incoming), the other side left empty (bench_pair_stop takes it). */
gboolean bench_migd_start(Bench *b, const MigdSpec *m, MigPair *p, GError **err)
{
	gboolean dst = m->incoming != NULL;
	g_autofree char *name = g_strdup_printf("%03u-mig-%s", b->seq, dst ? "dst" : "src");
	char *sock = g_strdup_printf("%s/%s.sock", b->tmpdir, name);
	BenchChild *c;
	QmpClient *q;

	if (m->huge && !bench_huge_ensure(b, m->guest_bytes / HUGEPAGE_BYTES, err)) {
		g_free(sock);
		return FALSE;
	}
	*(dst ? &p->sock_dst : &p->sock_src) = sock;
	c = spawn_migd(b, m, name, sock, err);
	*(dst ? &p->dst : &p->src) = c;
	if (!c || !(q = qmp_open(b, c, sock, err)))
		return FALSE;
	*(dst ? &p->qdst : &p->qsrc) = q;
	return TRUE;
}

/* Starts a destination and a source, and connects to both over QMP. */
gboolean bench_pair_start(Bench *b, const MigdSpec *src, const MigdSpec *dst, MigPair *p, GError **err)
{
	guint seq = b->seq;
	g_autofree char *name_s = g_strdup_printf("%03u-mig-src", seq);
	g_autofree char *name_d = g_strdup_printf("%03u-mig-dst", seq);

	if (src->huge && !bench_huge_ensure(b, 2 * (src->guest_bytes / HUGEPAGE_BYTES), err))
		return FALSE;
	p->sock_src = g_strdup_printf("%s/%s.sock", b->tmpdir, name_s);
	p->sock_dst = g_strdup_printf("%s/%s.sock", b->tmpdir, name_d);
	/* both allocate their guest at once; the QMP greetings wait for that */
	if (!(p->dst = spawn_migd(b, dst, name_d, p->sock_dst, err)) ||
	    !(p->src = spawn_migd(b, src, name_s, p->sock_src, err)) ||
	    !(p->qdst = qmp_open(b, p->dst, p->sock_dst, err)) || !(p->qsrc = qmp_open(b, p->src, p->sock_src, err)))
		return FALSE;
	if (b->tcp_cc) {
		g_autofree char *args = g_strdup_printf("{\"x-tcp-congestion\":\"%s\"}", b->tcp_cc);

		return bench_qmp_run(p->qdst, "destination", "migrate-set-parameters", args, err) &&
		       bench_qmp_run(p->qsrc, "source", "migrate-set-parameters", args, err);
	}
	return TRUE;
}

/* Asks each migd to quit, then makes sure both are gone. */
void bench_pair_stop(Bench *b, MigPair *p)
{
	QmpClient *q[2] = { p->qsrc, p->qdst };
	BenchChild *c[2] = { p->src, p->dst };

	for (int i = 0; i < 2; i++) {
		g_autoptr(JsonNode) r = NULL;

		if (q[i])
			r = qmpc_execute(q[i], "quit", NULL, T_QMP_CMD_MS, NULL);
		qmpc_free(q[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (c[i] && !bench_child_wait(b->procs, c[i], T_QUIT_MS))
			bench_child_stop(b->procs, c[i], 1000);
		bench_child_free(b->procs, c[i]);
	}
	g_free(p->sock_src);
	g_free(p->sock_dst);
	memset(p, 0, sizeof(*p));
}
