/* migctl: a small QMP client for mig (and QEMU).
 *
 *   migctl SOCKET COMMAND [JSON-ARGS]   run one command, print its "return" as JSON
 *   migctl SOCKET watch [--interval MS] [--until-done]
 *                                       poll query-migrate and show progress
 *
 * SOCKET is a path or "unix:PATH". Exit status: 0 success, 1 the command (or the
 * watched migration) failed, 2 usage, connection or protocol trouble.
 *
 * Plain blocking-free sockets and poll(): watch mode has to wait for either the
 * next poll tick or an asynchronous event, which is one poll() with a timeout. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Server messages are single lines; anything longer than this is not QMP. */
#define MAX_LINE (64u << 20)

typedef struct {
	int fd;
	GString *in;     /* received bytes not yet split into messages */
	unsigned seq;    /* for request ids */
} Conn;

typedef void (*EventFn)(JsonObject *ev, gpointer opaque);

static void usage(FILE *out)
{
	fprintf(out,
		"usage: migctl SOCKET COMMAND [JSON-ARGS]\n"
		"       migctl SOCKET watch [--interval MS] [--until-done]\n"
		"SOCKET is a unix socket path, optionally prefixed with \"unix:\".\n"
		"Exit status: 0 ok, 1 command or migration failed, 2 usage/connection error.\n");
}

static bool conn_open(Conn *c, const char *path, GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (g_str_has_prefix(path, "unix:"))
		path += strlen("unix:");
	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG, "%s: path too long", path);
		return false;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "cannot connect to %s: %s",
			    path, g_strerror(e));
		return false;
	}
	c->in = g_string_new(NULL);
	return true;
}

static void conn_close(Conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->in)
		g_string_free(c->in, TRUE);
}

/* Returns the next message, or NULL: with *err set on EOF/error/bad input, without
 * it when timeout_ms (-1: forever) passed first. */
static JsonObject *conn_read(Conn *c, int timeout_ms, GError **err)
{
	gint64 deadline = timeout_ms < 0 ? -1 : g_get_monotonic_time() + timeout_ms * 1000ll;

	for (;;) {
		char *eol = memchr(c->in->str, '\n', c->in->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		char chunk[65536];
		int wait_ms = -1;
		ssize_t n;

		if (eol) {
			g_autoptr(JsonParser) parser = json_parser_new();
			gsize len = (gsize)(eol - c->in->str);
			JsonNode *root;
			bool ok;

			ok = json_parser_load_from_data(parser, c->in->str, (gssize)len, err);
			g_string_erase(c->in, 0, (gssize)len + 1);
			if (!ok)
				return NULL;
			root = json_parser_get_root(parser);
			if (!root) /* a blank line */
				continue;
			if (!JSON_NODE_HOLDS_OBJECT(root)) {
				g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
					    "server sent a non-object message");
				return NULL;
			}
			return json_object_ref(json_node_get_object(root));
		}
		if (c->in->len > MAX_LINE) {
			g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "server message too long");
			return NULL;
		}
		if (deadline >= 0) {
			gint64 left = deadline - g_get_monotonic_time();

			if (left <= 0)
				return NULL;
			wait_ms = (int)((left + 999) / 1000);
		}
		n = poll(&p, 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "poll: %s",
				    g_strerror(errno));
			return NULL;
		}
		if (n <= 0)
			continue;
		n = recv(c->fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "connection closed%s%s",
				    n ? ": " : "", n ? g_strerror(errno) : "");
			return NULL;
		}
		g_string_append_len(c->in, chunk, n);
	}
}

static bool conn_write(Conn *c, const char *data, gsize len, GError **err)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "send: %s",
				    g_strerror(errno));
			return false;
		}
		data += n;
		len -= (gsize)n;
	}
	return true;
}

/* Runs one command and returns the whole reply object ("return" or "error"). Events
 * that arrive first are handed to on_event (or dropped when it is NULL). */
static JsonObject *conn_call(Conn *c, const char *cmd, JsonObject *args, EventFn on_event,
			     gpointer opaque, GError **err)
{
	g_autoptr(JsonObject) req = json_object_new();
	g_autoptr(JsonNode) node = NULL;
	g_autofree char *id = g_strdup_printf("migctl-%u", ++c->seq);
	g_autofree char *line = NULL;
	g_autofree char *json = NULL;

	json_object_set_string_member(req, "execute", cmd);
	if (args)
		json_object_set_object_member(req, "arguments", json_object_ref(args));
	json_object_set_string_member(req, "id", id);
	node = json_node_init_object(json_node_alloc(), req);
	json = json_to_string(node, FALSE);
	line = g_strconcat(json, "\r\n", NULL);
	if (!conn_write(c, line, strlen(line), err))
		return NULL;

	for (;;) {
		JsonObject *m = conn_read(c, -1, err);
		JsonNode *rid;

		if (!m)
			return NULL;
		if (json_object_has_member(m, "event")) {
			if (on_event)
				on_event(m, opaque);
			json_object_unref(m);
			continue;
		}
		/* Replies carry our id; an id-less error is the server failing to
		 * parse what we sent, which is still the answer to this request. */
		rid = json_object_get_member(m, "id");
		if ((json_object_has_member(m, "return") || json_object_has_member(m, "error")) &&
		    (!rid || (JSON_NODE_HOLDS_VALUE(rid) &&
			      json_node_get_value_type(rid) == G_TYPE_STRING &&
			      !strcmp(json_node_get_string(rid), id))))
			return m;
		json_object_unref(m); /* somebody else's, or unknown: ignore */
	}
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
static int conn_handshake(Conn *c)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonObject) greeting = conn_read(c, -1, &err);
	g_autoptr(JsonObject) reply = NULL;

	if (!greeting || !json_object_has_member(greeting, "QMP")) {
		fprintf(stderr, "migctl: no QMP greeting%s%s\n", err ? ": " : "",
			err ? err->message : "");
		return EXIT_USAGE;
	}
	reply = conn_call(c, "qmp_capabilities", NULL, NULL, NULL, &err);
	if (!reply) {
		fprintf(stderr, "migctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	return report_error(reply) ? EXIT_FAILED : EXIT_OK;
}

static int run_command(Conn *c, const char *cmd, const char *args_json)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonObject) reply = NULL;
	g_autoptr(JsonGenerator) gen = NULL;
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonObject *args = NULL;
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
		args = json_node_get_object(root);
	}

	reply = conn_call(c, cmd, args, NULL, NULL, &err);
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

static int run_watch(Conn *c, unsigned interval_ms, bool until_done)
{
	Watch w = { .tty = isatty(STDOUT_FILENO) == 1 };

	for (;;) {
		g_autoptr(GError) err = NULL;
		g_autoptr(JsonObject) reply = conn_call(c, "query-migrate", NULL, watch_event, &w, &err);
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
			m = conn_read(c, (int)((left + 999) / 1000), &err);
			if (!m) {
				if (!err)
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
	Conn c = { .fd = -1 };
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

	if (!conn_open(&c, argv[1], &err)) {
		fprintf(stderr, "migctl: %s\n", err->message);
		conn_close(&c);
		return EXIT_USAGE;
	}
	ret = conn_handshake(&c);
	if (ret == EXIT_OK)
		ret = watch ? run_watch(&c, interval, until_done)
			    : run_command(&c, argv[2], argc > 3 ? argv[3] : NULL);
	conn_close(&c);
	return ret;

bad_interval:
	fprintf(stderr, "migctl: --interval wants milliseconds (1..3600000)\n");
	return EXIT_USAGE;
}
