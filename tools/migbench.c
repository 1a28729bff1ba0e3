/* migbench: mig's benchmark runner (docs/benchmarks.md).
 *
 *   migbench SCENARIO [--json FILE] [--runs N] [--build DIR] [--quick] [--keep-tmp]
 *
 * It starts every process it measures (migd pairs, mig-rawxfer pairs) in a temporary
 * directory, waits for each with a bounded wait, and kills and reaps them on every exit
 * path, SIGINT included. Each scenario prints a table, and --json writes every per-run
 * sample next to the medians. Scenarios live in the table at the end of this file.
 *
 * Exit status: 0 every row measured (rows the engine cannot run yet, "pending", and rows
 * the host cannot run, "skipped", are reported but do not fail), 1 some row failed,
 * 2 usage or setup error, 130 interrupted. */
#include "tools/bench/proc.h"
#include "tools/bench/qmpc.h"
#include "tools/bench/stats.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define GiB ((guint64)1 << 30)
#define HUGEPAGE_BYTES ((guint64)2 << 20)
#define HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

/* Bounds of every wait, in ms. Generous: the machine is shared, and a 2 GiB
 * --mem-prealloc destination takes seconds before it greets. */
#define T_QMP_READY_MS 120000
#define T_QMP_CMD_MS 10000
#define T_PORT_MS 10000
#define T_MIGRATE_MS 300000
#define T_INTEGRITY_MS 60000
#define T_QUIT_MS 10000
#define T_RAW_MS 300000
#define POLL_MS 50

#define BENCH_ERROR (bench_error_quark())
static G_DEFINE_QUARK(migbench-error, bench_error)

typedef enum {
	BENCH_ERROR_FAILED,       /* a real failure: the row is an error row */
	BENCH_ERROR_PENDING,      /* the engine does not implement what the row needs yet */
	BENCH_ERROR_SKIPPED,      /* the host lacks what the row needs (huge pages) */
	BENCH_ERROR_INTERRUPTED,
} BenchError;

typedef enum { ROW_OK, ROW_ERROR, ROW_PENDING, ROW_SKIPPED, ROW_INTERRUPTED } RowStatus;

static const char *const row_status_names[] = { "ok", "error", "pending", "skipped", "interrupted" };

typedef struct RawSample {
	guint64 bytes;
	double seconds, gbps;
} RawSample;

typedef struct MigSample {
	double gbps;                /* ram.total / (total-time - setup-time), 1e9 bytes/s */
	gint64 total_ms, setup_ms, downtime_ms;
	gint64 cpu_ms;              /* x-migration-thread-cpu-ms; -1 when absent */
	guint64 ram_total, ram_transferred;
	guint64 checked, failed, units;   /* the destination's x-integrity */
} MigSample;

typedef struct Row {
	char *backend;
	guint channels;             /* multifd channels; 0 = multifd off ("main") */
	GArray *raw;                /* RawSample, in run order */
	GArray *mig;                /* MigSample, in run order */
	RowStatus status;
	char *error;
} Row;

typedef struct Bench {
	char *migd, *rawxfer;       /* the binaries under test */
	char *tmpdir;
	char *command;              /* our command line, for the JSON */
	const char *scenario;
	const char *json_path;
	int runs;
	gboolean quick, keep_tmp, prealloc;
	BenchProcs *procs;
	GPtrArray *notes;           /* char *: what the reader of the table must know */
	GPtrArray *rows;            /* Row * */
	guint seq;                  /* numbers per-run file names */
	guint64 huge_added;         /* 2M huge pages we added to nr_hugepages */
} Bench;

/* ---- small helpers --------------------------------------------------------------- */

static void note(Bench *b, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void note(Bench *b, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	for (guint i = 0; i < b->notes->len; i++) {
		if (!strcmp(g_ptr_array_index(b->notes, i), msg)) {
			g_free(msg);
			return;
		}
	}
	g_printerr("migbench: note: %s\n", msg);
	g_ptr_array_add(b->notes, msg);
}

static gboolean check_interrupted(Bench *b, GError **err)
{
	if (!bench_procs_interrupted(b->procs))
		return FALSE;
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_INTERRUPTED, "interrupted");
	return TRUE;
}

/* Adds the child's fate and last stderr line to an error about it. */
static void child_error(Bench *b, BenchChild *c, GError **err, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static void child_error(Bench *b, BenchChild *c, GError **err, const char *fmt, ...)
{
	g_autofree char *what = NULL, *fate = NULL, *tail = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (bench_procs_interrupted(b->procs)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_INTERRUPTED, "interrupted");
		return;
	}
	bench_child_wait(b->procs, c, 1000);   /* a dying child: let its status be known */
	fate = bench_child_describe(c);
	tail = bench_child_err_tail(c);
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s (%s %s%s%s)", what, c->name, fate,
		    *tail ? ": " : "", tail);
}

static gint64 obj_int(JsonObject *o, const char *name, gint64 dflt)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 ? json_node_get_int(n)
											    : dflt;
}

static const char *obj_str(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n)
											     : NULL;
}

static JsonObject *obj_obj(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

/* query-migrate as an object (NULL with err on failure). */
static JsonObject *query_migrate(QmpClient *q, GError **err)
{
	g_autoptr(JsonNode) n = qmpc_execute(q, "query-migrate", NULL, T_QMP_CMD_MS, err);

	if (!n)
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(n)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "query-migrate did not return an object");
		return NULL;
	}
	return json_object_ref(json_node_get_object(n));
}

/* ---- huge pages --------------------------------------------------------------------- */

static gboolean read_u64_file(const char *path, guint64 *v)
{
	g_autofree char *text = NULL;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return FALSE;
	*v = g_ascii_strtoull(text, NULL, 10);
	return TRUE;
}

/* sysfs files take a plain write(); g_file_set_contents would rename over them */
static gboolean write_u64_file(const char *path, guint64 v, GError **err)
{
	FILE *f = fopen(path, "w");
	gboolean ok;

	if (!f) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	ok = fprintf(f, "%" G_GUINT64_FORMAT "\n", v) > 0;
	ok = fclose(f) == 0 && ok;
	if (!ok)
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "writing %s: %s", path, g_strerror(errno));
	return ok;
}

/* Makes sure `pages` free 2M huge pages exist, raising nr_hugepages if needed. */
static gboolean huge_ensure(Bench *b, guint64 pages, GError **err)
{
	guint64 free_pages = 0, nr = 0, want;

	if (!read_u64_file(HUGE_SYSFS "free_hugepages", &free_pages) || !read_u64_file(HUGE_SYSFS "nr_hugepages", &nr)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "kernel lacks 2M huge pages (%s)", HUGE_SYSFS);
		return FALSE;
	}
	if (free_pages >= pages)
		return TRUE;
	want = nr + (pages - free_pages);
	if (!write_u64_file(HUGE_SYSFS "nr_hugepages", want, err)) {
		g_prefix_error(err, "only %" G_GUINT64_FORMAT " free 2M huge pages of %" G_GUINT64_FORMAT " needed: ",
			       free_pages, pages);
		return FALSE;
	}
	/* count what the kernel really gave: it may fall short of the request */
	read_u64_file(HUGE_SYSFS "nr_hugepages", &want);
	b->huge_added += want > nr ? want - nr : 0;
	note(b, "raised " HUGE_SYSFS "nr_hugepages by %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
	     " (src + dst need 2 x guest size free); the increment is taken back at exit",
	     want > nr ? want - nr : 0, want);
	if (!read_u64_file(HUGE_SYSFS "free_hugepages", &free_pages) || free_pages < pages) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED,
			    "only %" G_GUINT64_FORMAT " free 2M huge pages of %" G_GUINT64_FORMAT
			    " needed after raising nr_hugepages", free_pages, pages);
		return FALSE;
	}
	return TRUE;
}

/* Takes back the pages we added. Other tools on this machine raise nr_hugepages too,
 * so we subtract our own increment rather than write back an old absolute value. */
static void huge_restore(Bench *b)
{
	guint64 now = 0, ours = b->huge_added;
	g_autoptr(GError) err = NULL;

	if (!ours || !read_u64_file(HUGE_SYSFS "nr_hugepages", &now))
		return;
	if (now < ours) {
		g_printerr("migbench: nr_hugepages is %" G_GUINT64_FORMAT ", below the %" G_GUINT64_FORMAT
			   " pages we added: leaving it\n", now, ours);
		return;
	}
	if (!write_u64_file(HUGE_SYSFS "nr_hugepages", now - ours, &err))
		g_printerr("migbench: could not lower nr_hugepages: %s\n", err->message);
}

/* ---- raw baseline (mig-rawxfer) ------------------------------------------------------ */

/* Reads the child's stdout once it has `lines` complete lines; bounded by timeout_ms. */
static char **wait_lines(Bench *b, BenchChild *c, guint lines, int timeout_ms, GError **err)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (int i = 0; i <= timeout_ms / POLL_MS; i++) {
		g_autofree char *text = NULL;
		gboolean alive = bench_child_alive(b->procs, c);

		if (g_file_get_contents(c->out_path, &text, NULL, NULL)) {
			g_auto(GStrv) v = g_strsplit(text, "\n", -1);

			/* the last element is what follows the last newline */
			if (g_strv_length(v) > lines)
				return g_steal_pointer(&v);
		}
		if (!alive) {
			child_error(b, c, err, "%s ended before printing %u lines", c->name, lines);
			return NULL;
		}
		if (g_get_monotonic_time() >= end)
			break;
		g_usleep(POLL_MS * 1000);
	}
	child_error(b, c, err, "%s printed nothing in %d s", c->name, timeout_ms / 1000);
	return NULL;
}

static gboolean wait_exit_ok(Bench *b, BenchChild *c, int timeout_ms, GError **err)
{
	if (!bench_child_wait(b->procs, c, timeout_ms)) {
		child_error(b, c, err, "%s did not finish in %d s", c->name, timeout_ms / 1000);
		return FALSE;
	}
	if (c->status != 0) {
		child_error(b, c, err, "%s failed", c->name);
		return FALSE;
	}
	return TRUE;
}

static gboolean parse_raw_result(const char *line, RawSample *out, GError **err)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonNode *root;
	JsonObject *o;

	if (!json_parser_load_from_data(p, line, -1, NULL) || !(root = json_parser_get_root(p)) ||
	    !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "mig-rawxfer recv printed %.200s", line);
		return FALSE;
	}
	o = json_node_get_object(root);
	out->bytes = (guint64)obj_int(o, "bytes", 0);
	out->seconds = json_object_get_double_member_with_default(o, "seconds", 0);
	out->gbps = json_object_get_double_member_with_default(o, "gbps", 0);
	return TRUE;
}

static gboolean raw_run(Bench *b, guint conns, guint64 bytes, RawSample *out, GError **err)
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
	const char *recv_argv[] = { b->rawxfer, "recv", "--listen", "tcp:127.0.0.1:0", "--conns", nconns, NULL };

	recv = bench_child_spawn(b->procs, b->tmpdir, name_r, recv_argv, err);
	if (!recv || !(port = wait_lines(b, recv, 1, T_PORT_MS, err)))
		goto out;
	uri = g_strdup_printf("tcp:127.0.0.1:%s", port[0]);
	{
		const char *send_argv[] = { b->rawxfer, "send", "--connect", uri, "--conns", nconns,
					    "--bytes", nbytes, NULL };

		send = bench_child_spawn(b->procs, b->tmpdir, name_s, send_argv, err);
	}
	if (!send || !wait_exit_ok(b, send, T_RAW_MS, err) || !wait_exit_ok(b, recv, T_QUIT_MS, err) ||
	    !(result = wait_lines(b, recv, 2, T_QUIT_MS, err)) || !parse_raw_result(result[1], out, err))
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

/* ---- mig runs ------------------------------------------------------------------------ */

typedef struct MigCell {
	const char *backend;        /* migd --mem-backend */
	gboolean huge;              /* 2M huge pages */
	guint channels;             /* 0: multifd off */
	guint64 guest_bytes;
} MigCell;

typedef struct MigPair {
	BenchChild *src, *dst;
	QmpClient *qsrc, *qdst;
	char *sock_src, *sock_dst;
} MigPair;

static BenchChild *start_migd(Bench *b, const MigCell *cell, const char *name, const char *sock,
			      gboolean incoming, guint seed, GError **err)
{
	g_autofree char *qmp = g_strdup_printf("unix:%s", sock);
	g_autofree char *mem = g_strdup_printf("%" G_GUINT64_FORMAT "M", cell->guest_bytes >> 20);
	g_autofree char *seedstr = g_strdup_printf("%u", seed);
	g_autoptr(GPtrArray) argv = g_ptr_array_new();

	g_ptr_array_add(argv, b->migd);
	g_ptr_array_add(argv, "--name");
	g_ptr_array_add(argv, (char *)name);
	g_ptr_array_add(argv, "--qmp");
	g_ptr_array_add(argv, qmp);
	g_ptr_array_add(argv, "-m");
	g_ptr_array_add(argv, mem);
	g_ptr_array_add(argv, "--mem-backend");
	g_ptr_array_add(argv, (char *)cell->backend);
	if (cell->huge) {
		g_ptr_array_add(argv, "--hugepage-size");
		g_ptr_array_add(argv, "2M");
	}
	if (incoming) {
		if (b->prealloc)
			g_ptr_array_add(argv, "--mem-prealloc");
		g_ptr_array_add(argv, "--incoming");
		g_ptr_array_add(argv, "tcp:127.0.0.1:0");
	} else {
		g_ptr_array_add(argv, "--workload");
		g_ptr_array_add(argv, "idle");
		g_ptr_array_add(argv, "--seed");
		g_ptr_array_add(argv, seedstr);
	}
	g_ptr_array_add(argv, NULL);
	return bench_child_spawn(b->procs, b->tmpdir, name, (const char *const *)argv->pdata, err);
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
			child_error(b, c, err, "migd exited at start");
			return NULL;
		}
		q = qmpc_connect(sock, (int)MAX(left_ms, 1), &e);
		if (q)
			return q;
		if (!g_error_matches(e, QMPC_ERROR, QMPC_ERROR_NOT_READY)) {
			child_error(b, c, err, "QMP %s: %s", sock, e->message);
			return NULL;
		}
		if (left_ms <= 0)
			break;
		g_usleep(POLL_MS * 1000);
	}
	child_error(b, c, err, "no QMP on %s within %d s", sock, T_QMP_READY_MS / 1000);
	return NULL;
}

static gboolean qmp_run(QmpClient *q, const char *side, const char *cmd, const char *args, GError **err)
{
	g_autoptr(JsonNode) r = qmpc_execute(q, cmd, args, T_QMP_CMD_MS, err);

	if (!r)
		g_prefix_error(err, "%s %s: ", side, cmd);
	return r != NULL;
}

/* multifd on with N channels, or explicitly off for the "main" row. An engine that does
 * not implement multifd yet makes the row pending, not failed: clients must not parse
 * desc in general, but this one sentence is the engine's documented way of saying it. */
static gboolean set_multifd(QmpClient *q, const char *side, guint channels, GError **err)
{
	g_autofree char *caps = g_strdup_printf("{\"capabilities\":[{\"capability\":\"multifd\",\"state\":%s}]}",
						channels ? "true" : "false");
	g_autofree char *params = g_strdup_printf("{\"multifd-channels\":%u}", MAX(channels, 1));
	g_autoptr(GError) e = NULL;
	g_autoptr(JsonNode) r = qmpc_execute(q, "migrate-set-capabilities", caps, T_QMP_CMD_MS, &e);

	if (!r) {
		gboolean pending = g_error_matches(e, QMPC_ERROR, QMPC_ERROR_COMMAND) && strstr(e->message, "not supported");

		g_set_error(err, BENCH_ERROR, pending ? BENCH_ERROR_PENDING : BENCH_ERROR_FAILED, "%s: multifd: %s", side,
			    e->message);
		return FALSE;
	}
	return !channels || qmp_run(q, side, "migrate-set-parameters", params, err);
}

static char *dst_port(Bench *b, MigPair *p, GError **err)
{
	for (int i = 0; i <= T_PORT_MS / POLL_MS; i++) {
		g_autoptr(JsonObject) o = query_migrate(p->qdst, err);
		JsonNode *sa;

		if (!o)
			return NULL;
		sa = json_object_get_member(o, "socket-address");
		if (sa && JSON_NODE_HOLDS_ARRAY(sa) && json_array_get_length(json_node_get_array(sa)) > 0) {
			JsonNode *first = json_array_get_element(json_node_get_array(sa), 0);
			const char *port = JSON_NODE_HOLDS_OBJECT(first) ? obj_str(json_node_get_object(first), "port") : NULL;

			if (port)
				return g_strdup(port);
		}
		if (check_interrupted(b, err))
			return NULL;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination reported no socket-address in %d s",
		    T_PORT_MS / 1000);
	return NULL;
}

static gboolean sample_from_source(JsonObject *o, MigSample *s, GError **err)
{
	JsonObject *ram = obj_obj(o, "ram");
	gint64 active_ms;

	s->total_ms = obj_int(o, "total-time", -1);
	s->setup_ms = obj_int(o, "setup-time", 0);
	s->downtime_ms = obj_int(o, "downtime", -1);
	s->cpu_ms = obj_int(o, "x-migration-thread-cpu-ms", -1);
	s->ram_total = (guint64)obj_int(ram, "total", 0);
	s->ram_transferred = (guint64)obj_int(ram, "transferred", 0);
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

/* Polls the source until the migration ends; fills the sample when it completed. */
static gboolean wait_migration(Bench *b, MigPair *p, MigSample *s, GError **err)
{
	for (int i = 0; i <= T_MIGRATE_MS / POLL_MS; i++) {
		g_autoptr(GError) e = NULL;
		g_autoptr(JsonObject) o = query_migrate(p->qsrc, &e);
		const char *st;

		if (!o) {
			child_error(b, p->src, err, "source query-migrate: %s", e->message);
			return FALSE;
		}
		st = obj_str(o, "status");
		if (!g_strcmp0(st, "completed"))
			return sample_from_source(o, s, err);
		if (!g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled")) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "migration %s: %s", st,
				    obj_str(o, "error-desc") ? obj_str(o, "error-desc") : "no error-desc");
			return FALSE;
		}
		if (check_interrupted(b, err))
			return FALSE;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "migration not done in %d s", T_MIGRATE_MS / 1000);
	return FALSE;
}

/* The destination must complete and verify every page: a run that fails integrity is an
 * error, never a figure. */
static gboolean wait_integrity(Bench *b, MigPair *p, MigSample *s, GError **err)
{
	g_autofree char *last_status = NULL;   /* outlives each reply, for the timeout message */

	for (int i = 0; i <= T_INTEGRITY_MS / POLL_MS; i++) {
		g_autoptr(JsonObject) o = query_migrate(p->qdst, err);
		const char *st;
		JsonObject *in;

		if (!o) {
			g_prefix_error(err, "destination: ");
			return FALSE;
		}
		st = obj_str(o, "status");
		g_free(last_status);
		last_status = g_strdup(st ? st : "?");
		in = obj_obj(o, "x-integrity");
		s->checked = (guint64)obj_int(in, "checked", 0);
		s->failed = (guint64)obj_int(in, "failed", 0);
		s->units = (guint64)obj_int(in, "total", 0);
		if (!g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled")) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination %s: %s", st,
				    obj_str(o, "error-desc") ? obj_str(o, "error-desc") : "no error-desc");
			return FALSE;
		}
		if (s->failed) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "integrity: %" G_GUINT64_FORMAT " of %"
				    G_GUINT64_FORMAT " checked pages differ", s->failed, s->checked);
			return FALSE;
		}
		if (!g_strcmp0(st, "completed") && in && s->units && s->checked == s->units)
			return TRUE;
		if (check_interrupted(b, err))
			return FALSE;
		g_usleep(POLL_MS * 1000);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "destination not verified in %d s (status %s, x-integrity %"
		    G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT ")", T_INTEGRITY_MS / 1000, last_status ? last_status : "?",
		    s->checked, s->units);
	return FALSE;
}

static gboolean mig_pair_start(Bench *b, const MigCell *cell, MigPair *p, GError **err)
{
	guint seq = ++b->seq;
	g_autofree char *name_s = g_strdup_printf("%03u-mig-src", seq);
	g_autofree char *name_d = g_strdup_printf("%03u-mig-dst", seq);

	if (cell->huge && !huge_ensure(b, 2 * (cell->guest_bytes / HUGEPAGE_BYTES), err))
		return FALSE;
	p->sock_src = g_strdup_printf("%s/%s.sock", b->tmpdir, name_s);
	p->sock_dst = g_strdup_printf("%s/%s.sock", b->tmpdir, name_d);
	/* both allocate their guest at once; the QMP greetings wait for that */
	return (p->dst = start_migd(b, cell, name_d, p->sock_dst, TRUE, seq, err)) &&
	       (p->src = start_migd(b, cell, name_s, p->sock_src, FALSE, seq, err)) &&
	       (p->qdst = qmp_open(b, p->dst, p->sock_dst, err)) &&
	       (p->qsrc = qmp_open(b, p->src, p->sock_src, err));
}

/* Asks each migd to quit, then makes sure both are gone. */
static void mig_pair_stop(Bench *b, MigPair *p)
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

static gboolean mig_run(Bench *b, const MigCell *cell, MigSample *s, GError **err)
{
	MigPair p = { 0 };
	g_autofree char *port = NULL, *uri = NULL;
	gboolean ok;

	/* multifd goes on the destination first: it must know before the source connects */
	ok = mig_pair_start(b, cell, &p, err) && set_multifd(p.qdst, "destination", cell->channels, err) &&
	     set_multifd(p.qsrc, "source", cell->channels, err) &&
	     qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":300}", err) &&
	     (port = dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		ok = qmp_run(p.qsrc, "source", "migrate", uri, err) && wait_migration(b, &p, s, err) &&
		     wait_integrity(b, &p, s, err);
	}
	mig_pair_stop(b, &p);
	return ok;
}

/* ---- rows, tables, JSON ---------------------------------------------------------------- */

static Row *row_new(const char *backend, guint channels)
{
	Row *r = g_new0(Row, 1);

	r->backend = g_strdup(backend);
	r->channels = channels;
	r->raw = g_array_new(FALSE, TRUE, sizeof(RawSample));
	r->mig = g_array_new(FALSE, TRUE, sizeof(MigSample));
	return r;
}

static void row_free(gpointer p)
{
	Row *r = p;

	g_array_unref(r->raw);
	g_array_unref(r->mig);
	g_free(r->backend);
	g_free(r->error);
	g_free(r);
}

static void row_fail(Row *r, const char *what, const GError *e)
{
	static const RowStatus by_code[] = {
		[BENCH_ERROR_FAILED] = ROW_ERROR,
		[BENCH_ERROR_PENDING] = ROW_PENDING,
		[BENCH_ERROR_SKIPPED] = ROW_SKIPPED,
		[BENCH_ERROR_INTERRUPTED] = ROW_INTERRUPTED,
	};

	r->status = e->domain == BENCH_ERROR && (guint)e->code < G_N_ELEMENTS(by_code) ? by_code[e->code] : ROW_ERROR;
	r->error = g_strdup_printf("%s: %s", what, e->message);
}

static char *row_channels(const Row *r)
{
	return r->channels ? g_strdup_printf("%u", r->channels) : g_strdup("main");
}

static double raw_median(const Row *r)
{
	g_autofree double *v = g_new0(double, r->raw->len + 1);

	for (guint i = 0; i < r->raw->len; i++)
		v[i] = g_array_index(r->raw, RawSample, i).gbps;
	return bench_median(v, r->raw->len);
}

static double mig_median(const Row *r)
{
	g_autofree double *v = g_new0(double, r->mig->len + 1);

	for (guint i = 0; i < r->mig->len; i++)
		v[i] = g_array_index(r->mig, MigSample, i).gbps;
	return bench_median(v, r->mig->len);
}

/* Median CPU ms per GiB of guest memory; NAN unless every run reported it. */
static double cpu_median(const Row *r)
{
	g_autofree double *v = g_new0(double, r->mig->len + 1);

	for (guint i = 0; i < r->mig->len; i++) {
		const MigSample *s = &g_array_index(r->mig, MigSample, i);

		if (s->cpu_ms < 0)
			return NAN;
		v[i] = (double)s->cpu_ms / ((double)s->ram_total / (double)GiB);
	}
	return bench_median(v, r->mig->len);
}

static char *fmt_num(double v, int decimals)
{
	return isnan(v) ? g_strdup("-") : g_strdup_printf("%.*f", decimals, v);
}

static void print_table(Bench *b, guint64 guest_bytes)
{
	gboolean footnotes = FALSE;

	printf("\n%s: %" G_GUINT64_FORMAT " GiB idle guest, loopback TCP, median of %d run%s, %u CPUs\n", b->scenario,
	       guest_bytes / GiB, b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("%-8s %-8s %9s %11s %8s %11s\n", "backend", "channels", "raw GB/s", "mig GB/s", "mig/raw", "CPU ms/GiB");
	for (guint i = 0; i < b->rows->len; i++) {
		Row *r = g_ptr_array_index(b->rows, i);
		gboolean ok = r->status == ROW_OK;
		double raw = raw_median(r), mig = ok ? mig_median(r) : NAN;
		g_autofree char *ch = row_channels(r), *raws = fmt_num(raw, 2);
		g_autofree char *migs = ok ? fmt_num(mig, 2) : g_strdup(row_status_names[r->status]);
		g_autofree char *ratio = fmt_num(ok ? mig / raw : NAN, 2);
		g_autofree char *cpu = fmt_num(ok ? cpu_median(r) : NAN, 0);

		printf("%-8s %-8s %9s %11s %8s %11s\n", r->backend, ch, raws, migs, ratio, cpu);
		footnotes |= !ok;
	}
	if (footnotes)
		printf("\n");
	for (guint i = 0; i < b->rows->len; i++) {
		Row *r = g_ptr_array_index(b->rows, i);
		g_autofree char *ch = row_channels(r);

		if (r->status != ROW_OK)
			printf("%s/%s %s: %s\n", r->backend, ch, row_status_names[r->status], r->error);
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static void json_double_or_null(JsonBuilder *j, const char *name, double v)
{
	json_builder_set_member_name(j, name);
	if (isnan(v))
		json_builder_add_null_value(j);
	else
		json_builder_add_double_value(j, v);
}

static void json_int(JsonBuilder *j, const char *name, gint64 v)
{
	json_builder_set_member_name(j, name);
	json_builder_add_int_value(j, v);
}

static void json_raw_samples(JsonBuilder *j, const Row *r)
{
	json_builder_set_member_name(j, "raw");
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "samples");
	json_builder_begin_array(j);
	for (guint i = 0; i < r->raw->len; i++) {
		const RawSample *s = &g_array_index(r->raw, RawSample, i);

		json_builder_begin_object(j);
		json_int(j, "bytes", (gint64)s->bytes);
		json_double_or_null(j, "seconds", s->seconds);
		json_double_or_null(j, "gbps", s->gbps);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	json_double_or_null(j, "median_gbps", raw_median(r));
	json_builder_end_object(j);
}

static void json_mig_sample(JsonBuilder *j, const MigSample *s)
{
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "status");
	json_builder_add_string_value(j, "completed");   /* only completed runs become samples */
	json_double_or_null(j, "gbps", s->gbps);
	json_int(j, "total_time_ms", s->total_ms);
	json_int(j, "setup_time_ms", s->setup_ms);
	json_int(j, "downtime_ms", s->downtime_ms);
	json_int(j, "ram_total", (gint64)s->ram_total);
	json_int(j, "ram_transferred", (gint64)s->ram_transferred);
	json_builder_set_member_name(j, "migration_thread_cpu_ms");
	if (s->cpu_ms < 0)
		json_builder_add_null_value(j);
	else
		json_builder_add_int_value(j, s->cpu_ms);
	json_builder_set_member_name(j, "integrity");
	json_builder_begin_object(j);
	json_int(j, "checked", (gint64)s->checked);
	json_int(j, "failed", (gint64)s->failed);
	json_int(j, "total", (gint64)s->units);
	json_builder_end_object(j);
	json_builder_end_object(j);
}

static void json_row(JsonBuilder *j, const Row *r)
{
	gboolean ok = r->status == ROW_OK;

	json_builder_begin_object(j);
	json_builder_set_member_name(j, "backend");
	json_builder_add_string_value(j, r->backend);
	json_builder_set_member_name(j, "channels");
	if (r->channels)
		json_builder_add_int_value(j, r->channels);
	else
		json_builder_add_string_value(j, "main");
	json_builder_set_member_name(j, "multifd");
	json_builder_add_boolean_value(j, r->channels > 0);
	json_builder_set_member_name(j, "status");
	json_builder_add_string_value(j, row_status_names[r->status]);
	json_builder_set_member_name(j, "error");
	if (r->error)
		json_builder_add_string_value(j, r->error);
	else
		json_builder_add_null_value(j);
	json_raw_samples(j, r);
	json_builder_set_member_name(j, "mig");
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "samples");
	json_builder_begin_array(j);
	for (guint i = 0; i < r->mig->len; i++)
		json_mig_sample(j, &g_array_index(r->mig, MigSample, i));
	json_builder_end_array(j);
	json_double_or_null(j, "median_gbps", ok ? mig_median(r) : NAN);
	json_double_or_null(j, "median_cpu_ms_per_gib", ok ? cpu_median(r) : NAN);
	json_builder_end_object(j);
	json_double_or_null(j, "ratio", ok ? mig_median(r) / raw_median(r) : NAN);
	json_builder_end_object(j);
}

static gboolean write_json(Bench *b, guint64 guest_bytes, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL;
	struct utsname u;

	uname(&u);
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "scenario");
	json_builder_add_string_value(j, b->scenario);
	json_builder_set_member_name(j, "command");
	json_builder_add_string_value(j, b->command);
	json_builder_set_member_name(j, "quick");
	json_builder_add_boolean_value(j, b->quick);
	json_int(j, "runs", b->runs);
	json_int(j, "guest_bytes", (gint64)guest_bytes);
	json_builder_set_member_name(j, "mem_prealloc");
	json_builder_add_boolean_value(j, b->prealloc);
	json_builder_set_member_name(j, "host");
	json_builder_begin_object(j);
	json_int(j, "cpus", g_get_num_processors());
	json_builder_set_member_name(j, "kernel");
	json_builder_add_string_value(j, u.release);
	json_builder_end_object(j);
	json_builder_set_member_name(j, "notes");
	json_builder_begin_array(j);
	for (guint i = 0; i < b->notes->len; i++)
		json_builder_add_string_value(j, g_ptr_array_index(b->notes, i));
	json_builder_end_array(j);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < b->rows->len; i++)
		json_row(j, g_ptr_array_index(b->rows, i));
	json_builder_end_array(j);
	json_builder_end_object(j);
	root = json_builder_get_root(j);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	text = json_generator_to_data(gen, NULL);
	return g_file_set_contents(b->json_path, text, -1, err);
}

/* 0 all rows measured or legitimately pending/skipped, 1 a row failed, 130 interrupted */
static int rows_exit_status(Bench *b)
{
	int rc = 0;

	for (guint i = 0; i < b->rows->len; i++) {
		Row *r = g_ptr_array_index(b->rows, i);

		if (r->status == ROW_INTERRUPTED)
			return 130;
		if (r->status == ROW_ERROR)
			rc = 1;
	}
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

static int finish_scenario(Bench *b, guint64 guest_bytes)
{
	g_autoptr(GError) err = NULL;
	int rc = rows_exit_status(b);

	print_table(b, guest_bytes);
	if (b->json_path && !write_json(b, guest_bytes, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		return 1;
	}
	b->keep_tmp |= rc == 1;
	return rc;
}

/* ---- scenario: precopy-throughput -------------------------------------------------- */

static void report_run(const MigCell *cell, const Row *row, int run, int runs, const RawSample *rs,
		       const MigSample *ms, const GError *mig_err)
{
	g_autofree char *ch = row_channels(row);
	g_autofree char *mig = ms ? g_strdup_printf("%.2f GB/s", ms->gbps)
				  : mig_err ? g_strdup_printf("%s: %s", row_status_names[row->status], mig_err->message)
					    : g_strdup_printf("not run (%s)", row_status_names[row->status]);

	g_printerr("migbench: %s/%s run %d/%d: raw %.2f GB/s, mig %s\n", cell->backend, ch, run + 1, runs, rs->gbps, mig);
}

/* One cell: raw and mig runs alternate, so drift on a shared machine hits both. A row
 * that cannot run mig yet (pending, skipped) still measures its raw baseline: that is
 * the figure the missing feature will be held against. A failed run ends the row. */
static void precopy_cell(Bench *b, const MigCell *cell, Row *row)
{
	for (int run = 0; run < b->runs; run++) {
		g_autoptr(GError) err = NULL;
		RawSample rs = { 0 };
		MigSample ms = { 0 };

		if (check_interrupted(b, &err) || !raw_run(b, MAX(cell->channels, 1), cell->guest_bytes, &rs, &err)) {
			g_clear_pointer(&row->error, g_free);
			row_fail(row, "raw", err);
			return;
		}
		g_array_append_val(row->raw, rs);
		if (row->status != ROW_OK) {
			report_run(cell, row, run, b->runs, &rs, NULL, NULL);
			continue;
		}
		if (!mig_run(b, cell, &ms, &err)) {
			row_fail(row, "mig", err);
			report_run(cell, row, run, b->runs, &rs, NULL, err);
			if (row->status == ROW_PENDING || row->status == ROW_SKIPPED)
				continue;
			return;
		}
		g_array_append_val(row->mig, ms);
		report_run(cell, row, run, b->runs, &rs, &ms, NULL);
	}
}

static int run_precopy_throughput(Bench *b)
{
	static const guint full_channels[] = { 0, 1, 2, 4, 8 };
	static const guint quick_channels[] = { 0, 1, 4 };
	static const struct { const char *backend; gboolean huge; } backends[] = {
		{ "anon", FALSE },
		{ "hugetlb", TRUE },
	};
	const guint *channels = b->quick ? quick_channels : full_channels;
	guint n_channels = b->quick ? G_N_ELEMENTS(quick_channels) : G_N_ELEMENTS(full_channels);
	guint64 guest = b->quick ? 1 * GiB : 2 * GiB;

	for (guint bi = 0; bi < G_N_ELEMENTS(backends); bi++) {
		for (guint ci = 0; ci < n_channels && !bench_procs_interrupted(b->procs); ci++) {
			MigCell cell = { backends[bi].backend, backends[bi].huge, channels[ci], guest };
			Row *row = row_new(cell.backend, cell.channels);

			g_ptr_array_add(b->rows, row);
			precopy_cell(b, &cell, row);
		}
	}
	return finish_scenario(b, guest);
}

/* ---- scenario table and main ------------------------------------------------------- */

struct scenario {
	const char *name;
	const char *summary;
	int (*run)(Bench *b);
};

/* Later scenarios (postcopy-latency, device-downtime) plug in here. */
static const struct scenario scenarios[] = {
	{ "precopy-throughput", "idle-guest precopy GB/s against raw loopback TCP, by backend and channels",
	  run_precopy_throughput },
};

static const struct scenario *find_scenario(const char *name)
{
	for (gsize i = 0; name && i < G_N_ELEMENTS(scenarios); i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}

static int usage(const char *why)
{
	if (why)
		g_printerr("migbench: %s\n", why);
	g_printerr("usage: migbench SCENARIO [--json FILE] [--runs N] [--build DIR] [--quick] [--keep-tmp]\n"
		   "scenarios:\n");
	for (gsize i = 0; i < G_N_ELEMENTS(scenarios); i++)
		g_printerr("  %-20s %s\n", scenarios[i].name, scenarios[i].summary);
	return 2;
}

/* DIR holding migd and mig-rawxfer: --build (a build root or its tools/), or where we are. */
static gboolean find_binaries(Bench *b, const char *build, GError **err)
{
	g_autofree char *self = NULL, *dir = NULL;

	if (!build) {
		self = g_file_read_link("/proc/self/exe", err);
		if (!self)
			return FALSE;
		build = dir = g_path_get_dirname(self);
	}
	for (int i = 0; i < 2; i++) {
		g_autofree char *d = i ? g_build_filename(build, "tools", NULL) : g_strdup(build);
		g_autofree char *migd = g_build_filename(d, "migd", NULL);
		g_autofree char *raw = g_build_filename(d, "mig-rawxfer", NULL);

		if (g_file_test(migd, G_FILE_TEST_IS_EXECUTABLE) && g_file_test(raw, G_FILE_TEST_IS_EXECUTABLE)) {
			b->migd = g_steal_pointer(&migd);
			b->rawxfer = g_steal_pointer(&raw);
			return TRUE;
		}
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "no migd and mig-rawxfer in %s or %s/tools", build, build);
	return FALSE;
}

/* Whether migd takes --mem-prealloc: asked once, from its --help. */
static gboolean probe_prealloc(Bench *b, GError **err)
{
	const char *argv[] = { b->migd, "--help", NULL };
	BenchChild *c = bench_child_spawn(b->procs, b->tmpdir, "000-migd-help", argv, err);
	g_autofree char *text = NULL;

	if (!c)
		return FALSE;
	if (bench_child_wait(b->procs, c, T_QUIT_MS))
		g_file_get_contents(c->out_path, &text, NULL, NULL);
	bench_child_free(b->procs, c);
	b->prealloc = text && strstr(text, "--mem-prealloc");
	if (!b->prealloc)
		note(b, "migd lacks --mem-prealloc: destinations ran without pre-faulted memory");
	return TRUE;
}

/* Signals are taken by this thread alone (sigwait): it kills the children, and the main
 * thread, whose every wait is bounded and watches them, unwinds and reaps. */
static gpointer signal_thread(gpointer opaque)
{
	Bench *b = opaque;
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigwait(&set, &sig);
	if (sig != SIGUSR1) {
		g_printerr("migbench: %s: killing the processes under test\n", g_strsignal(sig));
		bench_procs_interrupt(b->procs);
	}
	return NULL;
}

static void remove_tmpdir(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *f = g_build_filename(path, name, NULL);

		unlink(f);
	}
	rmdir(path);
}

static void bench_clear(Bench *b)
{
	g_free(b->migd);
	g_free(b->rawxfer);
	g_free(b->tmpdir);
	g_free(b->command);
	g_ptr_array_unref(b->notes);
	g_ptr_array_unref(b->rows);
}

static int run_scenario(Bench *b, const struct scenario *sc)
{
	g_autoptr(GError) err = NULL;
	GThread *sigt;
	sigset_t set;
	int rc;

	/* before any thread exists, so that every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);   /* a dead migd must be an error on its socket */
	b->procs = bench_procs_new();
	sigt = g_thread_new("migbench/sig", signal_thread, b);

	b->tmpdir = g_dir_make_tmp("migbench-XXXXXX", &err);
	if (!b->tmpdir || !probe_prealloc(b, &err)) {
		g_printerr("migbench: %s\n", err->message);
		rc = 2;
	} else {
		rc = sc->run(b);
	}

	bench_procs_free(b->procs);   /* kills and reaps whatever is left */
	huge_restore(b);
	kill(getpid(), SIGUSR1);      /* releases the signal thread if no signal came */
	g_thread_join(sigt);
	if (b->tmpdir && b->keep_tmp)
		g_printerr("migbench: logs kept in %s\n", b->tmpdir);
	else if (b->tmpdir)
		remove_tmpdir(b->tmpdir);
	return rc;
}

int main(int argc, char **argv)
{
	g_autofree char *json = NULL, *build = NULL;
	gint runs = -1;   /* unset */
	gboolean quick = FALSE, keep = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_FILENAME, &json, "Write every sample and the medians to FILE", "FILE" },
		{ "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Runs per cell (default 3; 1 with --quick)", "N" },
		{ "build", 0, 0, G_OPTION_ARG_FILENAME, &build, "Where migd and mig-rawxfer are (default: beside migbench)",
		  "DIR" },
		{ "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "CI smoke: 1 GiB guest, channels 1 and 4, 1 run", NULL },
		{ "keep-tmp", 0, 0, G_OPTION_ARG_NONE, &keep, "Keep the temporary directory with every log", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("SCENARIO - mig benchmarks");
	g_autofree char *command = g_strjoinv(" ", argv);
	g_autoptr(GError) err = NULL;
	const struct scenario *sc;
	Bench b = { 0 };
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage(err->message);
	if (argc != 2)
		return usage("expected one SCENARIO");
	sc = find_scenario(argv[1]);
	if (!sc) {
		g_autofree char *why = g_strdup_printf("unknown scenario '%s'", argv[1]);

		return usage(why);
	}
	if (runs != -1 && (runs < 1 || runs > 99))
		return usage("--runs must be 1..99");
	b.runs = runs > 0 ? runs : quick ? 1 : 3;
	b.quick = quick;
	b.keep_tmp = keep;
	b.json_path = json;
	b.scenario = sc->name;
	b.command = g_steal_pointer(&command);
	b.notes = g_ptr_array_new_with_free_func(g_free);
	b.rows = g_ptr_array_new_with_free_func(row_free);
	if (!find_binaries(&b, build, &err)) {
		g_printerr("migbench: %s\n", err->message);
		bench_clear(&b);
		return 2;
	}
	rc = run_scenario(&b, sc);
	bench_clear(&b);
	return rc;
}
