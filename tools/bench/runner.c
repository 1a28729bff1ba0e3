/* migbench's runner: notes, errors, reading QMP replies, huge pages, and the bounded
 * waits on the children a scenario starts. */
#include "tools/bench/runner.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

G_DEFINE_QUARK(migbench-error, bench_error)

const char *const bench_status_names[] = { "ok", "error", "skipped", "interrupted" };

void bench_note(Bench *b, const char *fmt, ...)
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

gboolean bench_interrupted(Bench *b, GError **err)
{
	if (!bench_procs_interrupted(b->procs))
		return FALSE;
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_INTERRUPTED, "interrupted");
	return TRUE;
}

void bench_child_error(Bench *b, BenchChild *c, GError **err, const char *fmt, ...)
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

gint64 bench_obj_int(JsonObject *o, const char *name, gint64 dflt)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 ? json_node_get_int(n)
											    : dflt;
}

const char *bench_obj_str(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n)
											     : NULL;
}

JsonObject *bench_obj_obj(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

/* query-migrate as an object (NULL with err on failure). */
JsonObject *bench_query_migrate(QmpClient *q, GError **err)
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

RowStatus bench_status_of(const GError *e)
{
	static const RowStatus by_code[] = {
		[BENCH_ERROR_FAILED] = ROW_ERROR,
		[BENCH_ERROR_SKIPPED] = ROW_SKIPPED,
		[BENCH_ERROR_INTERRUPTED] = ROW_INTERRUPTED,
	};

	return e->domain == BENCH_ERROR && (guint)e->code < G_N_ELEMENTS(by_code) ? by_code[e->code] : ROW_ERROR;
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
gboolean bench_huge_ensure(Bench *b, guint64 pages, GError **err)
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
	bench_note(b, "raised " HUGE_SYSFS "nr_hugepages by %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
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
void bench_huge_restore(Bench *b)
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

/* ---- children ----------------------------------------------------------------------- */

/* Reads the child's stdout once it has `lines` complete lines; bounded by timeout_ms. */
char **bench_wait_lines(Bench *b, BenchChild *c, guint lines, int timeout_ms, GError **err)
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
			bench_child_error(b, c, err, "%s ended before printing %u lines", c->name, lines);
			return NULL;
		}
		if (g_get_monotonic_time() >= end)
			break;
		g_usleep(POLL_MS * 1000);
	}
	bench_child_error(b, c, err, "%s printed nothing in %d s", c->name, timeout_ms / 1000);
	return NULL;
}

gboolean bench_wait_exit_ok(Bench *b, BenchChild *c, int timeout_ms, GError **err)
{
	if (!bench_child_wait(b->procs, c, timeout_ms)) {
		bench_child_error(b, c, err, "%s did not finish in %d s", c->name, timeout_ms / 1000);
		return FALSE;
	}
	if (c->status != 0) {
		bench_child_error(b, c, err, "%s failed", c->name);
		return FALSE;
	}
	return TRUE;
}

/* Waits until the child's stderr holds `text`; bounded by timeout_ms. */
gboolean bench_wait_err_text(Bench *b, BenchChild *c, const char *text, int timeout_ms, GError **err)
{
	for (int i = 0; i <= timeout_ms / POLL_MS; i++) {
		g_autofree char *all = NULL;
		gboolean alive = bench_child_alive(b->procs, c);

		if (g_file_get_contents(c->err_path, &all, NULL, NULL) && strstr(all, text))
			return TRUE;
		if (!alive) {
			bench_child_error(b, c, err, "%s ended before printing \"%s\"", c->name, text);
			return FALSE;
		}
		g_usleep(POLL_MS * 1000);
	}
	bench_child_error(b, c, err, "%s did not print \"%s\" in %d s", c->name, text, timeout_ms / 1000);
	return FALSE;
}

/* The JSON object a child printed on one line (owned by p), or NULL with *err. */
JsonObject *bench_line_object(JsonParser *p, const char *line, const char *who, GError **err)
{
	JsonNode *root;

	if (!json_parser_load_from_data(p, line, -1, NULL) || !(root = json_parser_get_root(p)) ||
	    !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s printed %.200s", who, line);
		return NULL;
	}
	return json_node_get_object(root);
}

/* Starts argv on the host (side < 0) or inside the bed's namespace for side. */
BenchChild *bench_spawn_on(Bench *b, int side, const char *name, const char *const *argv, GError **err)
{
	g_autofree const char **wrapped = NULL;

	if (side < 0)
		return bench_child_spawn(b->procs, b->tmpdir, name, argv, err);
	wrapped = bench_net_wrap(b->net, (BenchNetSide)side, argv);
	return bench_child_spawn(b->procs, b->tmpdir, name, wrapped, err);
}

/* The address the destination side listens on: loopback, or its end of the bed. */
const char *bench_dst_host(Bench *b, gboolean bed)
{
	return bed ? b->net->addr[BENCH_NET_DST] : "127.0.0.1";
}
