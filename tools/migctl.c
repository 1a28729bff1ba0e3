/* migctl: a small QMP client for mig (and QEMU).
 *
 *   migctl SOCKET COMMAND [JSON-ARGS]   run one command, print its "return" as JSON
 *   migctl SOCKET watch [--interval MS] [--until-done]
 *                                       poll query-migrate and show progress
 *
 * SOCKET is a path or "unix:PATH". Exit status: 0 success, 1 the command (or the
 * watched migration) failed, 2 usage, connection or protocol trouble.
 *
 * The QMP client is tools/qmpc (migbench's too), without timeouts here: watch mode
 * waits for either the next poll tick or an asynchronous event, one read bounded by
 * the time left to the tick. */
#include "tools/qmpc/qmpc.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: migctl SOCKET COMMAND [JSON-ARGS]\n"
		"       migctl SOCKET watch [--interval MS] [--until-done]\n"
		"SOCKET is a unix socket path, optionally prefixed with \"unix:\".\n"
		"Exit status: 0 ok, 1 command or migration failed, 2 usage/connection error.\n");
}

/* Prints "error: CLASS: DESC" when reply is an error; returns whether it was. */
static bool report_error(JsonObject *reply)
{
	JsonObject *e;

	if (!json_object_has_member(reply, "error"))
		return false;
	e = json_object_get_object_member(reply, "error");
	fprintf(stderr, "error: %s: %s\n",
		e ? json_object_get_string_member_with_default(e, "class", "?") : "?",
		e ? json_object_get_string_member_with_default(e, "desc", "?") : "?");
	return true;
}

/* Greeting, then capabilities negotiation: afterwards any command may run. */
static int conn_handshake(QmpClient *c)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonObject) reply = qmpc_greet(c, -1, &err);

	if (!reply) {
		fprintf(stderr, "migctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	return report_error(reply) ? EXIT_FAILED : EXIT_OK;
}

static int run_command(QmpClient *c, const char *cmd, const char *args_json)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonObject) reply = NULL;
	g_autoptr(JsonGenerator) gen = NULL;
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *ret;

	if (args_json) {
		JsonNode *root;

		if (!json_parser_load_from_data(parser, args_json, -1, &err)) {
			fprintf(stderr, "migctl: JSON-ARGS: %s\n", err->message);
			return EXIT_USAGE;
		}
		root = json_parser_get_root(parser);
		if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
			fprintf(stderr, "migctl: JSON-ARGS must be a JSON object\n");
			return EXIT_USAGE;
		}
	}

	reply = qmpc_call(c, cmd, args_json, -1, NULL, NULL, &err);
	if (!reply) {
		fprintf(stderr, "migctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	if (report_error(reply))
		return EXIT_FAILED;
	ret = json_object_get_member(reply, "return");
	gen = json_generator_new();
	json_generator_set_pretty(gen, TRUE);
	json_generator_set_indent(gen, 2);
	json_generator_set_root(gen, ret);
	out = json_generator_to_data(gen, NULL);
	printf("%s\n", out);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
}

/* ---- watch --------------------------------------------------------------------- */

typedef struct {
	bool tty;
	bool line_open;      /* a progress line without newline is on screen */
	bool poll_now;       /* an event announced a terminal status */
} Watch;

static bool is_terminal(const char *status)
{
	return !g_strcmp0(status, "completed") || !g_strcmp0(status, "failed") ||
	       !g_strcmp0(status, "cancelled");
}

/* Ends an open progress line so the next output starts on a clean one. */
static void watch_break_line(Watch *w)
{
	if (w->line_open) {
		fputs("\r\033[K", stdout);
		w->line_open = false;
	}
}

static void watch_event(JsonObject *ev, gpointer opaque)
{
	Watch *w = opaque;
	const char *name = json_object_get_string_member_with_default(ev, "event", "");
	JsonNode *data = json_object_get_member(ev, "data");
	JsonObject *ts = json_object_get_object_member(ev, "timestamp");
	g_autofree char *json = data ? json_to_string(data, FALSE) : g_strdup("{}");
	char when[32] = "?";

	if (!g_str_has_prefix(name, "MIGRATION"))
		return;
	if (ts) {
		time_t sec = (time_t)json_object_get_int_member_with_default(ts, "seconds", 0);
		gint64 usec = json_object_get_int_member_with_default(ts, "microseconds", 0);
		struct tm tm;

		if (localtime_r(&sec, &tm)) {
			size_t n = strftime(when, sizeof(when), "%H:%M:%S", &tm);

			g_snprintf(when + n, sizeof(when) - n, ".%03d", (int)(usec / 1000));
		}
	}
	watch_break_line(w);
	printf("[%s] %s %s\n", when, name, json);
	fflush(stdout);
	if (!strcmp(name, "MIGRATION") && data && JSON_NODE_HOLDS_OBJECT(data) &&
	    is_terminal(json_object_get_string_member_with_default(json_node_get_object(data),
								  "status", NULL)))
		w->poll_now = true;
}

/* Numbers in MigrationInfo are integers except "mbps"; accept either anywhere. */
static bool get_num(JsonObject *o, const char *name, double *out)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	if (!n || !JSON_NODE_HOLDS_VALUE(n))
		return false;
	switch (json_node_get_value_type(n)) {
	case G_TYPE_INT64:
		*out = (double)json_node_get_int(n);
		return true;
	case G_TYPE_DOUBLE:
		*out = json_node_get_double(n);
		return true;
	default:
		return false;
	}
}

static void watch_print(Watch *w, JsonObject *info)
{
	const char *status = json_object_get_string_member_with_default(info, "status", "none");
	JsonObject *ram = json_object_has_member(info, "ram") ?
			  json_object_get_object_member(info, "ram") : NULL;
	JsonObject *integ = json_object_has_member(info, "x-integrity") ?
			    json_object_get_object_member(info, "x-integrity") : NULL;
	g_autoptr(GString) line = g_string_new(NULL);
	double total, remaining, v, f;

	g_string_append_printf(line, "%-15s", status);
	if (get_num(ram, "total", &total) && total > 0) {
		/* "remaining" is dropped from ram once the migration completes. */
		if (!get_num(ram, "remaining", &remaining))
			remaining = !strcmp(status, "completed") ? 0 : total;
		/* Clamped: remaining can briefly exceed total while dirtying outpaces
		 * the sender, and a percentage outside 0..100 only confuses. */
		v = CLAMP(100.0 * (total - remaining) / total, 0.0, 100.0);
		g_string_append_printf(line, " %5.1f%%", v);
	} else {
		g_string_append(line, "     -%");
	}
	if (get_num(ram, "mbps", &v))
		g_string_append_printf(line, "  %8.1f Mbit/s", v);
	if (get_num(info, "expected-downtime", &v))
		g_string_append_printf(line, "  downtime %.0f ms", v);
	else if (get_num(info, "downtime", &v))
		g_string_append_printf(line, "  downtime %.0f ms (actual)", v);
	if (get_num(ram, "transferred", &v))
		g_string_append_printf(line, "  %.1f MiB sent", v / (1024.0 * 1024.0));
	if (get_num(integ, "checked", &v) && get_num(integ, "total", &total)) {
		g_string_append_printf(line, "  verified %.0f/%.0f", v, total);
		if (get_num(integ, "failed", &f) && f > 0)
			g_string_append_printf(line, " (%.0f FAILED)", f);
	}

	if (w->tty) {
		printf("\r%s\033[K", line->str);
		w->line_open = true;
	} else {
		printf("%s\n", line->str);
	}
	fflush(stdout);
}

static int run_watch(QmpClient *c, unsigned interval_ms, bool until_done)
{
	Watch w = { .tty = isatty(STDOUT_FILENO) == 1 };

	for (;;) {
		g_autoptr(GError) err = NULL;
		g_autoptr(JsonObject) reply = qmpc_call(c, "query-migrate", NULL, -1, watch_event, &w, &err);
		gint64 deadline;
		JsonObject *info;
		const char *status;

		if (!reply) {
			watch_break_line(&w);
			fprintf(stderr, "migctl: %s\n", err->message);
			return EXIT_USAGE;
		}
		if (report_error(reply))
			return EXIT_FAILED;
		info = json_object_get_object_member(reply, "return");
		if (!info) {
			fprintf(stderr, "migctl: query-migrate returned a non-object\n");
			return EXIT_USAGE;
		}
		watch_print(&w, info);
		status = json_object_get_string_member_with_default(info, "status", "none");
		if (until_done && is_terminal(status)) {
			if (w.tty)
				putchar('\n');
			if (json_object_has_member(info, "error-desc"))
				fprintf(stderr, "migctl: %s\n",
					json_object_get_string_member(info, "error-desc"));
			return strcmp(status, "completed") ? EXIT_FAILED : EXIT_OK;
		}

		/* Sleep until the next tick, showing events as they come. */
		w.poll_now = false;
		deadline = g_get_monotonic_time() + interval_ms * 1000ll;
		while (!w.poll_now) {
			gint64 left = deadline - g_get_monotonic_time();
			JsonObject *m;

			if (left <= 0)
				break;
			m = qmpc_read(c, (int)((left + 999) / 1000), &err);
			if (!m) {
				if (g_error_matches(err, QMPC_ERROR, QMPC_ERROR_TIMEOUT))
					break;
				watch_break_line(&w);
				fprintf(stderr, "migctl: %s\n", err->message);
				return EXIT_USAGE;
			}
			if (json_object_has_member(m, "event"))
				watch_event(m, &w);
			json_object_unref(m);
		}
	}
}

static bool parse_ms(const char *s, unsigned *out)
{
	guint64 v;

	if (!g_ascii_string_to_unsigned(s, 10, 1, 3600 * 1000, &v, NULL))
		return false;
	*out = (unsigned)v;
	return true;
}

int main(int argc, char **argv)
{
	g_autoptr(QmpClient) c = NULL;
	g_autoptr(GError) err = NULL;
	unsigned interval = 1000;
	bool until_done = false, watch;
	int ret;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc < 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	watch = !strcmp(argv[2], "watch");
	if (watch) {
		for (int i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--until-done")) {
				until_done = true;
			} else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
				if (!parse_ms(argv[++i], &interval))
					goto bad_interval;
			} else if (g_str_has_prefix(argv[i], "--interval=")) {
				if (!parse_ms(argv[i] + strlen("--interval="), &interval))
					goto bad_interval;
			} else {
				usage(stderr);
				return EXIT_USAGE;
			}
		}
	} else if (argc > 4) {
		usage(stderr);
		return EXIT_USAGE;
	}

	c = qmpc_open(argv[1], &err);
	if (!c) {
		fprintf(stderr, "migctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	ret = conn_handshake(c);
	if (ret == EXIT_OK)
		ret = watch ? run_watch(c, interval, until_done)
			    : run_command(c, argv[2], argc > 3 ? argv[3] : NULL);
	return ret;

bad_interval:
	fprintf(stderr, "migctl: --interval wants milliseconds (1..3600000)\n");
	return EXIT_USAGE;
}
