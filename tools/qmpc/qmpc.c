/* mig's QMP client; see qmpc.h. Server messages are one JSON object per line
 * (docs/qmp.md section 1), so reading is line based. */
#include "tools/qmpc/qmpc.h"
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define MAX_PENDING (64u << 20)    /* more unparsed output than this is not QMP */
#define MAX_MESSAGES 100000        /* per timed wait: bounds the read loop in count */

G_DEFINE_QUARK(qmpc-error, qmpc_error)

struct QmpClient {
	int fd;
	GString *in;      /* bytes read but not yet consumed as lines */
	guint next_id;
};

/* -1: no deadline */
static gint64 deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : g_get_monotonic_time() + (gint64)timeout_ms * 1000;
}

/* Waits for events on the fd until the deadline; EINTR just polls again. */
static gboolean wait_fd(int fd, short events, gint64 deadline, GError **err)
{
	for (int i = 0; i < 1000; i++) {
		gint64 left = deadline < 0 ? -1 : deadline - g_get_monotonic_time();
		struct pollfd pfd = { .fd = fd, .events = events };
		int r;

		if (deadline >= 0 && left <= 0)
			break;
		r = poll(&pfd, 1, left < 0 ? -1 : (int)MIN(left / 1000 + 1, G_MAXINT));
		if (r > 0)
			return TRUE;
		if (r < 0 && errno != EINTR) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "poll: %s", g_strerror(errno));
			return FALSE;
		}
	}
	g_set_error(err, QMPC_ERROR, QMPC_ERROR_TIMEOUT, "QMP: no answer in time");
	return FALSE;
}

static gboolean write_all(QmpClient *c, const char *buf, gsize len, gint64 deadline, GError **err)
{
	gsize done = 0;

	/* each pass writes at least one byte or waits; the deadline bounds the waits */
	for (gsize pass = 0; done < len && pass <= len; pass++) {
		ssize_t n = send(c->fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			done += (gsize)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(c->fd, POLLOUT, deadline, err))
				return FALSE;
		} else {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "QMP write: %s", g_strerror(errno));
			return FALSE;
		}
	}
	if (done < len) {
		g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "QMP write did not progress");
		return FALSE;
	}
	return TRUE;
}

/* The next line the server sent (without its CR LF), waiting until the deadline. */
static char *read_line(QmpClient *c, gint64 deadline, GError **err)
{
	char buf[READ_CHUNK];

	for (guint i = 0; i < MAX_PENDING / 1024; i++) {
		char *nl = memchr(c->in->str, '\n', c->in->len);
		ssize_t n;

		if (nl) {
			gsize len = (gsize)(nl - c->in->str);
			char *line = g_strndup(c->in->str, len);

			g_string_erase(c->in, 0, (gssize)len + 1);
			return line;
		}
		if (c->in->len > MAX_PENDING) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "QMP: over %u bytes without a line end", MAX_PENDING);
			return NULL;
		}
		if (!wait_fd(c->fd, POLLIN, deadline, err))
			return NULL;
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "QMP: the server closed the connection");
			return NULL;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "QMP read: %s", g_strerror(errno));
			return NULL;
		}
		if (n > 0)
			g_string_append_len(c->in, buf, n);
	}
	g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "QMP: read loop bound reached");
	return NULL;
}

/* The next message as a JSON object (a blank line is skipped). */
static JsonObject *read_message(QmpClient *c, gint64 deadline, GError **err)
{
	for (int i = 0; i < MAX_MESSAGES; i++) {
		g_autofree char *line = read_line(c, deadline, err);
		g_autoptr(JsonParser) parser = NULL;
		JsonNode *root;

		if (!line)
			return NULL;
		g_strstrip(line);
		if (!*line)
			continue;
		parser = json_parser_new();
		if (!json_parser_load_from_data(parser, line, -1, NULL) ||
		    !(root = json_parser_get_root(parser)) || !JSON_NODE_HOLDS_OBJECT(root)) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "QMP: not a JSON object: %.200s", line);
			return NULL;
		}
		return json_object_ref(json_node_get_object(root));
	}
	g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "QMP: only blank lines");
	return NULL;
}

JsonObject *qmpc_read(QmpClient *c, int timeout_ms, GError **err)
{
	return read_message(c, deadline_after(timeout_ms), err);
}

QmpClient *qmpc_open(const char *path, GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	QmpClient *c;
	int fd;

	if (g_str_has_prefix(path, "unix:"))
		path += strlen("unix:");
	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(err, QMPC_ERROR, QMPC_ERROR_IO, "%s: path too long", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		g_set_error(err, QMPC_ERROR, e == ENOENT || e == ECONNREFUSED ? QMPC_ERROR_NOT_READY : QMPC_ERROR_IO,
			    "cannot connect to %s: %s", path, g_strerror(e));
		return NULL;
	}
	c = g_new0(QmpClient, 1);
	c->fd = fd;
	c->in = g_string_new(NULL);
	return c;
}

JsonObject *qmpc_greet(QmpClient *c, int timeout_ms, GError **err)
{
	g_autoptr(GError) e = NULL;
	g_autoptr(JsonObject) greeting = read_message(c, deadline_after(timeout_ms), &e);

	if (!greeting || !json_object_has_member(greeting, "QMP")) {
		g_set_error(err, QMPC_ERROR, e ? e->code : QMPC_ERROR_PROTOCOL, "no QMP greeting%s%s", e ? ": " : "",
			    e ? e->message : "");
		return NULL;
	}
	return qmpc_call(c, "qmp_capabilities", NULL, timeout_ms, NULL, NULL, err);
}

/* Turns a reply into its "return" value, or into err. */
static JsonNode *reply_value(JsonObject *reply, GError **err)
{
	JsonObject *e;

	if (json_object_has_member(reply, "return"))
		return json_node_copy(json_object_get_member(reply, "return"));
	e = json_object_get_object_member(reply, "error");
	g_set_error(err, QMPC_ERROR, QMPC_ERROR_COMMAND, "%s",
		    e && json_object_has_member(e, "desc") ? json_object_get_string_member(e, "desc") : "error without desc");
	return NULL;
}

QmpClient *qmpc_connect(const char *path, int timeout_ms, GError **err)
{
	g_autoptr(QmpClient) c = qmpc_open(path, err);
	g_autoptr(JsonObject) reply = NULL;
	g_autoptr(JsonNode) ret = NULL;

	if (!c || !(reply = qmpc_greet(c, timeout_ms, err)) || !(ret = reply_value(reply, err)))
		return NULL;
	return g_steal_pointer(&c);
}

/* The request as one line. The arguments are parsed, not pasted: a command or its
 * arguments are then never able to break the framing. */
static char *request(const char *command, const char *args_json, guint id, GError **err)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(JsonObject) req = json_object_new();
	g_autoptr(JsonNode) node = NULL;
	g_autofree char *text = NULL;
	JsonNode *args;

	json_object_set_string_member(req, "execute", command);
	if (args_json) {
		if (!json_parser_load_from_data(parser, args_json, -1, NULL) || !(args = json_parser_get_root(parser)) ||
		    !JSON_NODE_HOLDS_OBJECT(args)) {
			g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "%s: arguments are not a JSON object: %.200s",
				    command, args_json);
			return NULL;
		}
		json_object_set_member(req, "arguments", json_node_copy(args));
	}
	json_object_set_int_member(req, "id", id);
	node = json_node_init_object(json_node_alloc(), req);
	text = json_to_string(node, FALSE);
	return g_strconcat(text, "\r\n", NULL);
}

/* Our reply: it carries our id; an id-less error is the server failing to parse what
 * we sent, which is still the answer to this request. */
static gboolean is_reply_to(JsonObject *m, guint id)
{
	JsonNode *idn = json_object_get_member(m, "id");

	if (!json_object_has_member(m, "return") && !json_object_has_member(m, "error"))
		return FALSE;
	if (!idn)
		return json_object_has_member(m, "error");
	return JSON_NODE_HOLDS_VALUE(idn) && json_node_get_value_type(idn) == G_TYPE_INT64 &&
	       json_node_get_int(idn) == id;
}

guint qmpc_send(QmpClient *c, const char *command, const char *args_json, int timeout_ms, GError **err)
{
	guint id = ++c->next_id;
	g_autofree char *msg = request(command, args_json, id, err);

	if (!msg || !write_all(c, msg, strlen(msg), deadline_after(timeout_ms), err))
		return 0;
	return id;
}

JsonObject *qmpc_wait_reply(QmpClient *c, guint id, const char *command, int timeout_ms, QmpcEventFn on_event,
			    gpointer opaque, GError **err)
{
	gint64 deadline = deadline_after(timeout_ms);

	/* with no deadline, a long watch may see any number of events */
	for (int i = 0; timeout_ms < 0 || i < MAX_MESSAGES; i++) {
		g_autoptr(JsonObject) m = read_message(c, deadline, err);

		if (!m)
			return NULL;
		if (json_object_has_member(m, "event")) {
			if (on_event)
				on_event(m, opaque);
			continue;
		}
		if (is_reply_to(m, id))
			return g_steal_pointer(&m);
		/* somebody else's reply, or unknown: skipped */
	}
	g_set_error(err, QMPC_ERROR, QMPC_ERROR_PROTOCOL, "QMP: no reply to %s among %d messages", command, MAX_MESSAGES);
	return NULL;
}

JsonObject *qmpc_call(QmpClient *c, const char *command, const char *args_json, int timeout_ms,
		      QmpcEventFn on_event, gpointer opaque, GError **err)
{
	guint id = qmpc_send(c, command, args_json, timeout_ms, err);

	return id ? qmpc_wait_reply(c, id, command, timeout_ms, on_event, opaque, err) : NULL;
}

JsonNode *qmpc_execute(QmpClient *c, const char *command, const char *args_json, int timeout_ms, GError **err)
{
	g_autoptr(JsonObject) reply = qmpc_call(c, command, args_json, timeout_ms, NULL, NULL, err);

	return reply ? reply_value(reply, err) : NULL;
}

void qmpc_free(QmpClient *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->in)
		g_string_free(c->in, TRUE);
	g_free(c);
}
