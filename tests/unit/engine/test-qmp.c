/* The QMP server driven over a real unix socket by a raw client, so framing, CRLF
 * and byte-level splitting are exercised exactly as a monitor client sees them. The
 * server runs in its own thread, as in mig. */
#include "engine/qmp/qmp.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Long enough for a loaded CI box, short enough that a missing reply fails the
 * test instead of hanging it. */
#define RECV_TIMEOUT_S 5

typedef struct {
	char *dir;
	char *path;
	MigQmpServer *srv;
	GThread *thread;
	/* "slow" runs until the test opens the gate (bounded, so a failing test ends) */
	GMutex gate_lock;
	GCond gate_cond;
	gboolean gate_open;
	gboolean slow_running;
} Fixture;

typedef struct {
	int fd;
	GString *buf; /* bytes received but not yet returned as a message */
} Client;

/* ---- handlers ------------------------------------------------------------------- */

static JsonNode *h_echo(JsonObject *args, gpointer opaque, GError **err)
{
	return json_node_init_object(json_node_alloc(), args);
}

static JsonNode *h_fail(JsonObject *args, gpointer opaque, GError **err)
{
	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "nothing to do here");
	return NULL;
}

static JsonNode *h_no_device(JsonObject *args, gpointer opaque, GError **err)
{
	g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_DEVICE_NOT_FOUND, "Device 'vda' not found");
	return NULL;
}

static JsonNode *h_quit(JsonObject *args, gpointer opaque, GError **err)
{
	mig_qmp_server_stop(opaque);
	return NULL;
}

/* Emitting from inside a handler must not deadlock on the server's own lock. */
static JsonNode *h_emit(JsonObject *args, gpointer opaque, GError **err)
{
	JsonObject *data = json_object_new();

	json_object_set_int_member(data, "n", 7);
	mig_qmp_emit_event(opaque, "FROM_HANDLER", json_node_init_object(json_node_alloc(), data));
	json_object_unref(data);
	return json_node_init_int(json_node_alloc(), 42);
}

/* take {fdname}: what an fd: URI does with a name, writing "ok" into the descriptor. */
static JsonNode *h_take(JsonObject *args, gpointer opaque, GError **err)
{
	int fd = mig_qmp_take_fd(opaque, json_object_get_string_member(args, "fdname"), err);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = write(fd, "ok", 2);
	close(fd);
	return json_node_init_int(json_node_alloc(), n);
}

static JsonNode *h_slow(JsonObject *args, gpointer opaque, GError **err)
{
	Fixture *f = opaque;
	gint64 end = g_get_monotonic_time() + 2 * RECV_TIMEOUT_S * G_USEC_PER_SEC;

	g_mutex_lock(&f->gate_lock);
	f->slow_running = TRUE;
	g_cond_broadcast(&f->gate_cond);
	while (!f->gate_open && g_cond_wait_until(&f->gate_cond, &f->gate_lock, end))
		;
	f->slow_running = FALSE;
	g_mutex_unlock(&f->gate_lock);
	return json_node_init_string(json_node_alloc(), "slow done");
}

/* Registered as "yank", which the server lets run out-of-band by its name. */
static JsonNode *h_oob(JsonObject *args, gpointer opaque, GError **err)
{
	return json_node_init_string(json_node_alloc(), "oob done");
}

/* ---- fixture -------------------------------------------------------------------- */

static gpointer run_server(gpointer p)
{
	mig_qmp_server_run(p);
	return NULL;
}

static void setup(Fixture *f, gconstpointer data)
{
	static const MigQmpVersion v = { 9, 2, 1, "mig-test" };
	g_autoptr(GError) err = NULL;

	f->dir = g_dir_make_tmp("test-qmp-XXXXXX", &err);
	g_assert_no_error(err);
	f->path = g_build_filename(f->dir, "qmp.sock", NULL);
	f->srv = mig_qmp_server_new(f->path, &v, &err);
	g_assert_no_error(err);
	g_assert_nonnull(f->srv);
	mig_qmp_register(f->srv, "echo", h_echo, NULL);
	mig_qmp_register(f->srv, "fail", h_fail, NULL);
	mig_qmp_register(f->srv, "no-device", h_no_device, NULL);
	mig_qmp_register(f->srv, "quit", h_quit, f->srv);
	mig_qmp_register(f->srv, "emit", h_emit, f->srv);
	mig_qmp_register(f->srv, "take", h_take, f->srv);
	mig_qmp_register(f->srv, "slow", h_slow, f);
	mig_qmp_register(f->srv, "yank", h_oob, f);
	g_mutex_init(&f->gate_lock);
	g_cond_init(&f->gate_cond);
	f->thread = g_thread_new("qmp", run_server, f->srv);
}

static void teardown(Fixture *f, gconstpointer data)
{
	if (f->thread) {
		mig_qmp_server_stop(f->srv);
		g_thread_join(f->thread);
	}
	mig_qmp_server_free(f->srv);
	g_mutex_clear(&f->gate_lock);
	g_cond_clear(&f->gate_cond);
	/* free removes the socket it created. */
	g_assert_false(g_file_test(f->path, G_FILE_TEST_EXISTS));
	g_assert_cmpint(g_rmdir(f->dir), ==, 0);
	g_free(f->path);
	g_free(f->dir);
}

/* ---- raw client ----------------------------------------------------------------- */

static Client *client_connect(Fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
	Client *c = g_new0(Client, 1);

	g_assert_cmpuint(strlen(f->path), <, sizeof(sa.sun_path));
	strcpy(sa.sun_path, f->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(c->fd, >=, 0);
	g_assert_cmpint(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	g_assert_cmpint(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), ==, 0);
	g_assert_cmpint(setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), ==, 0);
	c->buf = g_string_new(NULL);
	return c;
}

static void client_close(Client *c)
{
	close(c->fd);
	g_string_free(c->buf, TRUE);
	g_free(c);
}

static void client_write(Client *c, const char *data, gsize len)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		g_assert_cmpint(n, >, 0);
		data += n;
		len -= (gsize)n;
	}
}

static void client_send(Client *c, const char *s)
{
	client_write(c, s, strlen(s));
}

/* Next server message, which must be a JSON object terminated by CRLF. */
static JsonObject *client_recv(Client *c)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) err = NULL;
	JsonNode *root;
	char *eol;

	while (!(eol = strstr(c->buf->str, "\r\n"))) {
		char chunk[4096];
		ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);

		if (n <= 0)
			g_error("recv: %s", n ? g_strerror(errno) : "connection closed");
		/* Output is ASCII, never NUL, so the buffer stays a C string. */
		g_assert_null(memchr(chunk, 0, (gsize)n));
		g_string_append_len(c->buf, chunk, n);
	}
	json_parser_load_from_data(parser, c->buf->str, eol - c->buf->str, &err);
	g_assert_no_error(err);
	g_string_erase(c->buf, 0, eol + 2 - c->buf->str);
	root = json_parser_get_root(parser);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
	return json_object_ref(json_node_get_object(root));
}

/* Waits for the server to close the connection, discarding what comes first. */
static void client_expect_eof(Client *c)
{
	char chunk[65536];
	ssize_t n;

	while ((n = recv(c->fd, chunk, sizeof(chunk), 0)) > 0)
		;
	if (n < 0)
		g_assert_cmpint(errno, ==, ECONNRESET);
}

static void expect_error(JsonObject *m, const char *klass, const char *desc)
{
	JsonObject *e;

	g_assert_true(json_object_has_member(m, "error"));
	g_assert_false(json_object_has_member(m, "return"));
	e = json_object_get_object_member(m, "error");
	g_assert_cmpstr(json_object_get_string_member(e, "class"), ==, klass);
	if (desc)
		g_assert_cmpstr(json_object_get_string_member(e, "desc"), ==, desc);
}

static void recv_error(Client *c, const char *klass, const char *desc)
{
	g_autoptr(JsonObject) m = client_recv(c);

	expect_error(m, klass, desc);
}

static void recv_parse_error(Client *c)
{
	g_autoptr(JsonObject) m = client_recv(c);
	JsonObject *e;

	expect_error(m, "GenericError", NULL);
	e = json_object_get_object_member(m, "error");
	g_assert_true(g_str_has_prefix(json_object_get_string_member(e, "desc"),
				       "JSON parse error, "));
	/* The id could not have been read. */
	g_assert_false(json_object_has_member(m, "id"));
}

static JsonObject *recv_return(Client *c)
{
	JsonObject *m = client_recv(c);

	g_assert_false(json_object_has_member(m, "error"));
	g_assert_true(json_object_has_member(m, "return"));
	return m;
}

static void recv_return_id(Client *c, gint64 id)
{
	g_autoptr(JsonObject) m = recv_return(c);

	g_assert_cmpint(json_object_get_int_member(m, "id"), ==, id);
}

static void recv_greeting(Client *c)
{
	g_autoptr(JsonObject) m = client_recv(c);

	g_assert_true(json_object_has_member(m, "QMP"));
}

static Client *client_ready(Fixture *f)
{
	Client *c = client_connect(f);
	g_autoptr(JsonObject) m = NULL;

	recv_greeting(c);
	client_send(c, "{\"execute\":\"qmp_capabilities\"}");
	m = recv_return(c);
	return c;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_greeting(Fixture *f, gconstpointer data)
{
	Client *c = client_connect(f);
	g_autoptr(JsonObject) m = client_recv(c);
	JsonObject *qmp, *ver, *qemu;
	JsonArray *caps;

	g_assert_cmpuint(json_object_get_size(m), ==, 1);
	qmp = json_object_get_object_member(m, "QMP");
	g_assert_nonnull(qmp);
	ver = json_object_get_object_member(qmp, "version");
	g_assert_nonnull(ver);
	qemu = json_object_get_object_member(ver, "qemu");
	g_assert_nonnull(qemu);
	g_assert_cmpint(json_object_get_int_member(qemu, "major"), ==, 9);
	g_assert_cmpint(json_object_get_int_member(qemu, "minor"), ==, 2);
	g_assert_cmpint(json_object_get_int_member(qemu, "micro"), ==, 1);
	g_assert_cmpstr(json_object_get_string_member(ver, "package"), ==, "mig-test");
	g_assert_true(JSON_NODE_HOLDS_ARRAY(json_object_get_member(qmp, "capabilities")));
	caps = json_object_get_array_member(qmp, "capabilities");
	g_assert_cmpuint(json_array_get_length(caps), ==, 1);
	g_assert_cmpstr(json_array_get_string_element(caps, 0), ==, "oob");
	client_close(c);
}

static void test_negotiation(Fixture *f, gconstpointer data)
{
	static const char expecting[] = "Expecting capabilities negotiation with 'qmp_capabilities'";
	Client *c = client_connect(f);
	g_autoptr(JsonObject) m = NULL;

	recv_greeting(c);
	/* A registered command and an unknown one look the same before negotiation. */
	client_send(c, "{\"execute\":\"echo\",\"id\":1}");
	recv_error(c, "CommandNotFound", expecting);
	client_send(c, "{\"execute\":\"no-such-command\"}");
	recv_error(c, "CommandNotFound", expecting);
	client_send(c, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"bogus\"]}}");
	recv_error(c, "GenericError", "Parameter 'enable' does not accept value 'bogus'");
	client_send(c, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"what\":1}}");
	recv_error(c, "GenericError", "Parameter 'what' is unexpected");
	/* Failed negotiation leaves the client where it was. */
	client_send(c, "{\"execute\":\"echo\"}");
	recv_error(c, "CommandNotFound", expecting);

	client_send(c, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},"
		       "\"id\":\"neg\"}");
	m = recv_return(c);
	g_assert_cmpstr(json_object_get_string_member(m, "id"), ==, "neg");
	g_assert_cmpuint(json_object_get_size(json_object_get_object_member(m, "return")), ==, 0);

	client_send(c, "{\"execute\":\"qmp_capabilities\"}");
	recv_error(c, "CommandNotFound",
		   "Capabilities negotiation is already complete, command ignored");
	client_send(c, "{\"execute\":\"echo\",\"id\":2}");
	recv_return_id(c, 2);
	client_close(c);
}

static void test_id_echo(Fixture *f, gconstpointer data)
{
	static const char *const ids[] = {
		"\"abc\"", "17", "-3.5", "{\"a\":[1,{\"b\":null}]}", "[1,\"x\"]", "null", "true",
	};
	Client *c = client_ready(f);

	for (gsize i = 0; i < G_N_ELEMENTS(ids); i++) {
		/* Once with a success, once with an error: both echo the id. */
		const char *cmd[] = { "echo", "fail" };

		for (gsize k = 0; k < 2; k++) {
			g_autofree char *req = g_strdup_printf("{\"id\":%s,\"execute\":\"%s\"}",
							       ids[i], cmd[k]);
			g_autoptr(JsonObject) m = NULL;
			g_autofree char *got = NULL;

			client_send(c, req);
			m = client_recv(c);
			g_assert_true(json_object_has_member(m, k ? "error" : "return"));
			g_assert_true(json_object_has_member(m, "id"));
			got = json_to_string(json_object_get_member(m, "id"), FALSE);
			g_assert_cmpstr(got, ==, ids[i]);
		}
	}
	/* No id in, no id out. */
	{
		g_autoptr(JsonObject) m = NULL;

		client_send(c, "{\"execute\":\"echo\"}");
		m = recv_return(c);
		g_assert_false(json_object_has_member(m, "id"));
	}
	client_close(c);
}

static void test_errors(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f);
	g_autoptr(JsonObject) m = NULL;
	g_autoptr(JsonObject) m2 = NULL;

	client_send(c, "{\"execute\":\"fail\"}");
	recv_error(c, "GenericError", "nothing to do here");
	client_send(c, "{\"execute\":\"no-device\"}");
	recv_error(c, "DeviceNotFound", "Device 'vda' not found");
	client_send(c, "{\"execute\":\"bogus\",\"id\":5}");
	m = client_recv(c);
	expect_error(m, "CommandNotFound", "The command bogus has not been found");
	g_assert_cmpint(json_object_get_int_member(m, "id"), ==, 5);

	client_send(c, "{\"id\":1}");
	recv_error(c, "GenericError", "QMP input lacks member 'execute'");
	client_send(c, "{\"execute\":3}");
	recv_error(c, "GenericError", "QMP input member 'execute' must be a string");
	client_send(c, "{\"execute\":\"echo\",\"arguments\":[1]}");
	recv_error(c, "GenericError", "QMP input member 'arguments' must be an object");
	client_send(c, "{\"execute\":\"echo\",\"arguments\":\"x\"}");
	recv_error(c, "GenericError", "QMP input member 'arguments' must be an object");
	client_send(c, "{\"execute\":\"echo\",\"foo\":1}");
	recv_error(c, "GenericError", "QMP input member 'foo' is unexpected");
	/* Without the oob capability exec-oob is just an unknown member, as in QEMU,
	 * even for a command that allows OOB. */
	client_send(c, "{\"exec-oob\":\"echo\"}");
	recv_error(c, "GenericError", "QMP input member 'exec-oob' is unexpected");
	client_send(c, "{\"exec-oob\":\"yank\",\"id\":3}");
	m2 = client_recv(c);
	expect_error(m2, "GenericError", "QMP input member 'exec-oob' is unexpected");
	g_assert_cmpint(json_object_get_int_member(m2, "id"), ==, 3);

	/* Arguments reach the handler intact; single quotes are accepted. */
	{
		g_autoptr(JsonObject) r = NULL;
		JsonObject *ret;

		client_send(c, "{'execute':'echo','arguments':{'s':'it\\'s \"q\"','n':[1,2]}}");
		r = recv_return(c);
		ret = json_object_get_object_member(r, "return");
		g_assert_cmpstr(json_object_get_string_member(ret, "s"), ==, "it's \"q\"");
		g_assert_cmpuint(json_array_get_length(json_object_get_array_member(ret, "n")), ==, 2);
	}
	client_close(c);
}

static void test_non_object(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f);

	client_send(c, "[1,2]");
	recv_error(c, "GenericError", "QMP input must be a JSON object");
	client_send(c, "\"str\"");
	recv_error(c, "GenericError", "QMP input must be a JSON object");
	/* A bare number only ends at a delimiter. */
	client_send(c, "42\n");
	recv_error(c, "GenericError", "QMP input must be a JSON object");
	client_send(c, "{\"execute\":\"echo\",\"id\":9}");
	recv_return_id(c, 9);
	client_close(c);
}

static void test_garbage(Fixture *f, gconstpointer data)
{
	static const char nul_msg[] = "{\"execute\":\"echo\",\0{\"execute\":\"echo\",\"id\":2}";
	Client *c = client_ready(f);

	client_send(c, "garbage\n");
	recv_parse_error(c);
	client_send(c, "{\"execute\": }");
	recv_parse_error(c);
	client_send(c, "}");
	recv_parse_error(c);
	client_send(c, "{\"execute\":\"echo\",\"id\":1}");
	recv_return_id(c, 1);

	/* A NUL (any control character) drops the half-read message silently: the
	 * next reply must be for id 2. */
	client_write(c, nul_msg, sizeof(nul_msg) - 1);
	recv_return_id(c, 2);
	client_send(c, "{\"execute\":\"echo\",\x1b{\"execute\":\"echo\",\"id\":3}");
	recv_return_id(c, 3);

	/* Invalid UTF-8 inside a string is json-glib's to reject. */
	client_send(c, "{\"execute\":\"echo\",\"arguments\":{\"s\":\"\xff\"}}");
	recv_parse_error(c);
	client_send(c, "{\"execute\":\"echo\",\"id\":4}");
	recv_return_id(c, 4);
	client_close(c);
}

static void test_split(Fixture *f, gconstpointer data)
{
	/* Braces, quotes and escapes inside strings must not confuse the splitter. */
	static const char req[] = "{\"execute\":\"echo\",\"arguments\":{\"s\":\"a}b{\\\"c\\\\\",\"t\":'}'},"
				  "\"id\":\"x\\\"}\"}";
	Client *c = client_ready(f);
	g_autoptr(JsonObject) m = NULL;
	JsonObject *ret;

	for (gsize i = 0; i < sizeof(req) - 1; i++) {
		client_write(c, &req[i], 1);
		/* Give the server a chance to read each byte on its own. */
		g_usleep(500);
	}
	m = recv_return(c);
	g_assert_cmpstr(json_object_get_string_member(m, "id"), ==, "x\"}");
	ret = json_object_get_object_member(m, "return");
	g_assert_cmpstr(json_object_get_string_member(ret, "s"), ==, "a}b{\"c\\");
	g_assert_cmpstr(json_object_get_string_member(ret, "t"), ==, "}");
	client_close(c);
}

static void test_batch(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f);

	client_send(c, "{\"execute\":\"echo\",\"id\":1}{\"execute\":\"echo\",\"id\":2}\r\n  \n\t"
		       "{\"execute\":\"fail\",\"id\":3}\n{\"execute\":\"echo\",\"id\":4}\r\n");
	recv_return_id(c, 1);
	recv_return_id(c, 2);
	{
		g_autoptr(JsonObject) m = client_recv(c);

		expect_error(m, "GenericError", "nothing to do here");
		g_assert_cmpint(json_object_get_int_member(m, "id"), ==, 3);
	}
	recv_return_id(c, 4);
	client_close(c);
}

static void test_oversized(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) big = g_string_new("{\"execute\":\"echo\",\"arguments\":{\"s\":\"");
	g_autoptr(GString) deep = g_string_new(NULL);
	Client *c = client_ready(f);

	/* 2 MiB with braces inside the string: the splitter must skip the rest of the
	 * value after the error, then find the next request exactly. */
	for (int i = 0; i < (2 << 20) / 4; i++)
		g_string_append(big, "a{[}");
	g_string_append(big, "\"},\"id\":1}{\"execute\":\"echo\",\"id\":2}");
	client_write(c, big->str, big->len);
	recv_error(c, "GenericError", "JSON parse error, message exceeds 1048576 bytes");
	recv_return_id(c, 2);

	/* Nesting deep enough to hurt a recursive parser. */
	for (int i = 0; i < 100000; i++)
		g_string_append_c(deep, '[');
	for (int i = 0; i < 100000; i++)
		g_string_append_c(deep, ']');
	g_string_append(deep, "{\"execute\":\"echo\",\"id\":3}");
	client_write(c, deep->str, deep->len);
	recv_error(c, "GenericError", "JSON parse error, nesting exceeds 1024 levels");
	recv_return_id(c, 3);

	/* An endless top-level token costs one error and no memory, and a delimiter
	 * ends it. */
	g_string_set_size(big, 3 << 20);
	memset(big->str, 'z', big->len);
	client_write(c, big->str, big->len);
	client_send(c, " {\"execute\":\"echo\",\"id\":4}");
	recv_error(c, "GenericError", "JSON parse error, message exceeds 1048576 bytes");
	recv_return_id(c, 4);
	client_close(c);
}

static void expect_event(Client *c, const char *name, const char *status)
{
	g_autoptr(JsonObject) m = client_recv(c);
	JsonObject *ts, *d;
	gint64 sec, usec;

	g_assert_cmpstr(json_object_get_string_member(m, "event"), ==, name);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(json_object_get_member(m, "data")));
	d = json_object_get_object_member(m, "data");
	if (status)
		g_assert_cmpstr(json_object_get_string_member(d, "status"), ==, status);
	else
		g_assert_cmpuint(json_object_get_size(d), ==, 0);
	ts = json_object_get_object_member(m, "timestamp");
	g_assert_nonnull(ts);
	sec = json_object_get_int_member(ts, "seconds");
	usec = json_object_get_int_member(ts, "microseconds");
	/* Within a minute of now, and a valid microsecond count. */
	g_assert_cmpint(ABS(sec - g_get_real_time() / G_USEC_PER_SEC), <, 60);
	g_assert_cmpint(usec, >=, 0);
	g_assert_cmpint(usec, <, G_USEC_PER_SEC);
}

static void emit_status(Fixture *f, const char *status)
{
	JsonObject *d = json_object_new();

	json_object_set_string_member(d, "status", status);
	mig_qmp_emit_event(f->srv, "MIGRATION", json_node_init_object(json_node_alloc(), d));
	json_object_unref(d);
}

static void test_events(Fixture *f, gconstpointer data)
{
	Client *a = client_ready(f);
	Client *b = client_ready(f);
	Client *neg = client_connect(f);
	g_autoptr(JsonObject) m = NULL;

	recv_greeting(neg);
	/* From this (non-server) thread. */
	emit_status(f, "active");
	mig_qmp_emit_event(f->srv, "STOP", NULL);
	expect_event(a, "MIGRATION", "active");
	expect_event(a, "STOP", NULL);
	expect_event(b, "MIGRATION", "active");
	expect_event(b, "STOP", NULL);

	/* The events were queued before neg negotiated, so the first thing it
	 * reads must be the reply, not an event. */
	client_send(neg, "{\"execute\":\"qmp_capabilities\",\"id\":1}");
	recv_return_id(neg, 1);
	emit_status(f, "completed");
	expect_event(neg, "MIGRATION", "completed");
	expect_event(a, "MIGRATION", "completed");

	/* From a handler: the event is queued before the reply. */
	client_send(b, "{\"execute\":\"emit\"}");
	expect_event(b, "MIGRATION", "completed");
	m = client_recv(b);
	g_assert_cmpstr(json_object_get_string_member(m, "event"), ==, "FROM_HANDLER");
	g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(m, "data"), "n"),
			==, 7);
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(b);
	g_assert_cmpint(json_object_get_int_member(m, "return"), ==, 42);

	client_close(a);
	client_close(b);
	client_close(neg);
}

static void test_query_commands(Fixture *f, gconstpointer data)
{
	static const char *const want[] = {
		"qmp_capabilities", "query-commands", "getfd", "closefd", "add-fd", "remove-fd", "query-fdsets", "echo", "fail", "no-device", "quit", "emit", "take",
		"slow", "yank",
	};
	Client *c = client_ready(f);
	g_autoptr(JsonObject) m = NULL;
	JsonArray *a;

	client_send(c, "{\"execute\":\"query-commands\"}");
	m = recv_return(c);
	a = json_object_get_array_member(m, "return");
	g_assert_nonnull(a);
	g_assert_cmpuint(json_array_get_length(a), ==, G_N_ELEMENTS(want));
	for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
		JsonObject *o = json_array_get_object_element(a, i);

		g_assert_cmpuint(json_object_get_size(o), ==, 1);
		g_assert_cmpstr(json_object_get_string_member(o, "name"), ==, want[i]);
	}
	client_close(c);
}

/* Sends s with fd attached (SCM_RIGHTS), as libvirt sends getfd. */
static void client_send_fd(Client *c, const char *s, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = { 0 };
	struct iovec iov = { (void *)s, strlen(s) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	g_assert_cmpint(sendmsg(c->fd, &mh, 0), ==, (ssize_t)strlen(s));
}

/* read() on a pipe, bounded: the server closes its end on its own thread */
static ssize_t read_bounded(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	g_assert_cmpint(poll(&p, 1, RECV_TIMEOUT_S * 1000), ==, 1);
	return read(fd, buf, len);
}

/* getfd names the passed descriptor; take (an fd: URI) gets it once; closefd and a
 * client's close give it back; names are per client, as QEMU's are per monitor. */
static void test_getfd(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f), *other = client_ready(f);
	g_autoptr(JsonObject) m = NULL;
	int p[2];
	char buf[8];

	client_send(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"m\"}}");
	recv_error(c, "GenericError", "No file descriptor supplied via SCM_RIGHTS");
	client_send(c, "{\"execute\":\"closefd\",\"arguments\":{\"fdname\":\"m\"}}");
	recv_error(c, "GenericError", "File descriptor named 'm' not found");

	g_assert_cmpint(pipe(p), ==, 0);
	client_send_fd(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"1x\"}}", p[1]);
	recv_error(c, "GenericError", "File descriptor name may not start with a digit");
	client_send_fd(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"m\"}}", p[1]);
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(c);
	close(p[1]);
	/* another client does not see it */
	client_send(other, "{\"execute\":\"take\",\"arguments\":{\"fdname\":\"m\"}}");
	recv_error(other, "GenericError", "File descriptor named 'm' has not been found");
	client_send(c, "{\"execute\":\"take\",\"arguments\":{\"fdname\":\"m\"}}");
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(c);
	g_assert_cmpint(json_object_get_int_member(m, "return"), ==, 2);
	g_assert_cmpint(read_bounded(p[0], buf, sizeof(buf)), ==, 2);
	g_assert_cmpint(memcmp(buf, "ok", 2), ==, 0);
	/* taken: the name is gone, and with it the server's last copy of the write end */
	client_send(c, "{\"execute\":\"take\",\"arguments\":{\"fdname\":\"m\"}}");
	recv_error(c, "GenericError", "File descriptor named 'm' has not been found");
	g_assert_cmpint(read_bounded(p[0], buf, sizeof(buf)), ==, 0);
	close(p[0]);

	/* a named descriptor dies with its client */
	g_assert_cmpint(pipe(p), ==, 0);
	client_send_fd(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"n\"}}", p[1]);
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(c);
	close(p[1]);
	client_close(c);
	g_assert_cmpint(read_bounded(p[0], buf, sizeof(buf)), ==, 0);   /* EOF once the server closed it */
	close(p[0]);
	client_close(other);
}

static int dup_flags(MigQmpServer *srv, gint64 id, int flags, const char *want_error)
{
	g_autoptr(GError) err = NULL;
	int fd = mig_qmp_fdset_dup(srv, id, flags, &err), got;

	if (want_error) {
		g_assert_cmpint(fd, ==, -1);
		g_assert_nonnull(strstr(err->message, want_error));
		return -1;
	}
	g_assert_no_error(err);
	got = fcntl(fd, F_GETFL);
	close(fd);
	return got & (O_ACCMODE | O_DIRECT);
}

/* add-fd's sets are the server's: another client sees them; a file open takes a dup of
 * the newest descriptor whose access mode and O_DIRECT are the ones asked for. */
static void test_fdsets(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f), *other = client_ready(f);
	g_autofree char *path = g_build_filename(f->dir, "file", NULL);
	g_autoptr(JsonObject) m = NULL;
	int wr = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600), rd = open(path, O_RDONLY | O_CLOEXEC);

	g_assert_cmpint(wr, >=, 0);
	g_assert_cmpint(rd, >=, 0);
	dup_flags(f->srv, 5, O_RDONLY, "Failed to find fdset /dev/fdset/5");
	client_send_fd(c, "{\"execute\":\"add-fd\",\"arguments\":{\"fdset-id\":5}}", wr);
	m = recv_return(c);
	g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(m, "return"), "fdset-id"), ==, 5);
	dup_flags(f->srv, 5, O_RDONLY, "it has none opened O_RDONLY without O_DIRECT");
	dup_flags(f->srv, 5, O_WRONLY | O_DIRECT, "it has none opened O_WRONLY with O_DIRECT");
	client_send_fd(other, "{\"execute\":\"add-fd\",\"arguments\":{\"fdset-id\":5,\"opaque\":\"r\"}}", rd);
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(other);
	g_assert_cmpint(dup_flags(f->srv, 5, O_RDONLY, NULL), ==, O_RDONLY);
	g_assert_cmpint(dup_flags(f->srv, 5, O_WRONLY, NULL), ==, O_WRONLY);
	dup_flags(f->srv, 5, O_RDWR, "it has none opened O_RDWR");
	/* removed by the first client: gone for everyone */
	client_send(c, "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":5}}");
	g_clear_pointer(&m, json_object_unref);
	m = recv_return(c);
	dup_flags(f->srv, 5, O_WRONLY, "Failed to find fdset /dev/fdset/5");
	close(wr);
	close(rd);
	g_assert_cmpint(g_unlink(path), ==, 0);
	client_close(c);
	client_close(other);
}

static void test_disconnect(Fixture *f, gconstpointer data)
{
	Client *c;

	/* Gone mid-message. */
	c = client_ready(f);
	client_send(c, "{\"execute\":\"echo\",\"argum");
	client_close(c);
	/* Gone before the greeting is read. */
	c = client_connect(f);
	client_close(c);
	/* Gone with replies and events still to deliver: the server's writes hit
	 * EPIPE/ECONNRESET and must not raise SIGPIPE. */
	for (int i = 0; i < 20; i++) {
		c = client_ready(f);
		client_send(c, "{\"execute\":\"echo\"}{\"execute\":\"echo\"}{\"execute\":\"emit\"}");
		client_close(c);
		emit_status(f, "active");
	}
	c = client_ready(f);
	client_send(c, "{\"execute\":\"echo\",\"id\":1}");
	recv_return_id(c, 1);
	client_close(c);
}

/* A client that never reads is dropped, and emitting to it never blocks. */
static void test_slow_reader(Fixture *f, gconstpointer data)
{
	Client *slow = client_ready(f);
	Client *ok = client_ready(f);
	g_autofree char *pad = g_strnfill(64 * 1024, 'p');
	gint64 longest = 0;

	/* 20 MiB of events, well past the 8 MiB cap plus socket buffers. An emit that
	 * waited for slow would wait for good: one emit taking seconds means it blocked,
	 * whereas the whole loop's time is only the machine's speed (ASan, load). */
	for (int i = 0; i < 320; i++) {
		JsonObject *d = json_object_new();
		gint64 t0 = g_get_monotonic_time();

		json_object_set_string_member(d, "pad", pad);
		mig_qmp_emit_event(f->srv, "BIG", json_node_init_object(json_node_alloc(), d));
		longest = MAX(longest, g_get_monotonic_time() - t0);
		json_object_unref(d);
		/* Keep ok drained so only slow overflows. */
		json_object_unref(client_recv(ok));
	}
	g_assert_cmpint(longest, <, RECV_TIMEOUT_S * G_USEC_PER_SEC);
	client_expect_eof(slow);
	client_send(ok, "{\"execute\":\"echo\",\"id\":1}");
	recv_return_id(ok, 1);
	client_close(slow);
	client_close(ok);
}

/* 10 MB of random bytes (NULs, control characters, invalid UTF-8, stray quotes and
 * braces): every byte is read and answered with well-formed ASCII error lines
 * (client_recv checks each one), and the connection keeps working. The garbage goes
 * in 64 KiB pieces, each followed by a marker request we wait for, so the replies
 * (several bytes per garbage byte) never pile up past the slow-reader cap however
 * slow this reader is. */
static void test_flood(Fixture *f, gconstpointer data)
{
	g_autoptr(GRand) r = g_rand_new_with_seed(1234);
	Client *c = client_ready(f);
	guint errors = 0;
	guint32 chunk[16384];

	for (gint64 n = 0; n < (10 << 20) / (gint64)sizeof(chunk); n++) {
		g_autofree char *mark = NULL;

		for (gsize i = 0; i < G_N_ELEMENTS(chunk); i++)
			chunk[i] = g_rand_int(r);
		client_write(c, (const char *)chunk, sizeof(chunk));
		/* \x01 resets whatever state the garbage left the parser in. */
		mark = g_strdup_printf("\x01{\"execute\":\"echo\",\"id\":%" G_GINT64_FORMAT "}", n);
		client_send(c, mark);
		for (;;) {
			g_autoptr(JsonObject) m = client_recv(c);

			if (json_object_has_member(m, "return")) {
				g_assert_cmpint(json_object_get_int_member(m, "id"), ==, n);
				break;
			}
			expect_error(m, "GenericError", NULL);
			errors++;
		}
	}
	g_test_message("%u error replies", errors);
	g_assert_cmpuint(errors, >, 1000);
	client_close(c);
}

static void open_gate(Fixture *f)
{
	g_mutex_lock(&f->gate_lock);
	f->gate_open = TRUE;
	g_cond_broadcast(&f->gate_cond);
	g_mutex_unlock(&f->gate_lock);
}

static void wait_slow_running(Fixture *f)
{
	gint64 end = g_get_monotonic_time() + RECV_TIMEOUT_S * G_USEC_PER_SEC;

	g_mutex_lock(&f->gate_lock);
	while (!f->slow_running && g_cond_wait_until(&f->gate_cond, &f->gate_lock, end))
		;
	g_assert_true(f->slow_running);
	g_mutex_unlock(&f->gate_lock);
}

/* QEMU's out-of-band rules: negotiated with qmp_capabilities, "exec-oob" only for
 * commands that allow it, and such a command overtakes an in-band one still running,
 * on the same client and on another. */
static void test_oob(Fixture *f, gconstpointer data)
{
	Client *a = client_connect(f), *b = client_ready(f);
	g_autoptr(JsonObject) m = NULL;

	recv_greeting(a);
	/* Before negotiation only qmp_capabilities exists, exec-oob or not. */
	client_send(a, "{\"exec-oob\":\"yank\",\"id\":0}");
	recv_error(a, "GenericError", "QMP input member 'exec-oob' is unexpected");
	client_send(a, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}");
	json_object_unref(recv_return(a));

	client_send(a, "{\"exec-oob\":\"echo\",\"id\":1}");
	recv_error(a, "GenericError", "The command echo does not support OOB");
	client_send(a, "{\"exec-oob\":\"no-such\",\"id\":1}");
	recv_error(a, "CommandNotFound", "The command no-such has not been found");
	client_send(a, "{\"exec-oob\":\"yank\",\"execute\":\"yank\"}");
	recv_error(a, "GenericError", NULL);

	/* a's in-band "slow" runs; a's and b's out-of-band yank answer meanwhile, a's
	 * in-band echo waits its turn behind slow, and so does b's: one dispatcher. */
	client_send(a, "{\"execute\":\"slow\",\"id\":10}{\"execute\":\"echo\",\"id\":11}");
	wait_slow_running(f);
	client_send(a, "{\"exec-oob\":\"yank\",\"id\":12}");
	m = recv_return(a);
	g_assert_cmpint(json_object_get_int_member(m, "id"), ==, 12);
	g_assert_cmpstr(json_object_get_string_member(m, "return"), ==, "oob done");
	g_clear_pointer(&m, json_object_unref);
	/* b did not negotiate oob: its exec-oob is refused, but at once */
	client_send(b, "{\"exec-oob\":\"yank\",\"id\":20}{\"execute\":\"echo\",\"id\":21}");
	m = client_recv(b);
	expect_error(m, "GenericError", "QMP input member 'exec-oob' is unexpected");
	g_assert_cmpint(json_object_get_int_member(m, "id"), ==, 20);
	g_clear_pointer(&m, json_object_unref);
	open_gate(f);
	m = recv_return(a);
	g_assert_cmpint(json_object_get_int_member(m, "id"), ==, 10);
	g_assert_cmpstr(json_object_get_string_member(m, "return"), ==, "slow done");
	recv_return_id(a, 11);
	recv_return_id(b, 21);
	client_close(a);
	client_close(b);
}

/* A client that queues in-band requests faster than they run, and a half-sent one
 * after them, holds back only itself: past its queue's room its input waits in the
 * socket, the other client is served, and its own requests all run, in order. */
static void test_queue_full(Fixture *f, gconstpointer data)
{
	Client *a = client_ready(f), *b = client_ready(f);
	g_autoptr(GString) burst = g_string_new(NULL);

	client_send(a, "{\"execute\":\"slow\",\"id\":0}");
	wait_slow_running(f);
	for (int i = 1; i <= 200; i++)
		g_string_append_printf(burst, "{\"execute\":\"echo\",\"id\":%d}", i);
	g_string_append(burst, "{\"execute\":\"echo\",\"id\":");
	client_send(a, burst->str);
	client_send(b, "{\"execute\":\"echo\",\"id\":1000}");
	open_gate(f);
	recv_return_id(b, 1000);
	for (int i = 0; i <= 200; i++)
		recv_return_id(a, i);
	client_send(a, "201}");
	recv_return_id(a, 201);
	client_close(a);
	client_close(b);
}

static void test_stop_flushes(Fixture *f, gconstpointer data)
{
	Client *c = client_ready(f);
	g_autoptr(JsonObject) m = NULL;

	/* Commands after quit in the same write are not run. */
	client_send(c, "{\"execute\":\"quit\",\"id\":\"bye\"}{\"execute\":\"echo\",\"id\":\"late\"}");
	/* run() has returned, but the server is not freed yet: the reply must
	 * already be in the socket. */
	g_thread_join(f->thread);
	f->thread = NULL;
	m = recv_return(c);
	g_assert_cmpstr(json_object_get_string_member(m, "id"), ==, "bye");
	g_assert_cmpstr(c->buf->str, ==, "");
	client_close(c);
}

/* Not a fixture test: these are about creating the server. */
static void test_socket_path(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("test-qmp-XXXXXX", &err);
	g_autofree char *path = g_build_filename(dir, "s", NULL);
	g_autofree char *uri = g_strconcat("unix:", path, NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	MigQmpServer *s, *s2;
	int fd;

	/* A stale socket file left by a dead server is replaced. */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	close(fd);
	g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
	s = mig_qmp_server_new(uri, NULL, &err);
	g_assert_no_error(err);
	g_assert_nonnull(s);

	/* A live one is not. */
	s2 = mig_qmp_server_new(path, NULL, &err);
	g_assert_null(s2);
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST);
	g_clear_error(&err);
	mig_qmp_server_free(s);

	/* Neither is something that is not a socket. */
	g_assert_true(g_file_set_contents(path, "x", 1, NULL));
	s = mig_qmp_server_new(path, NULL, &err);
	g_assert_null(s);
	g_assert_nonnull(err);
	g_clear_error(&err);
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static gint64 cpu_usec(void)
{
	struct rusage ru;

	g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

/* Out of fds, accept() fails while the connection stays pending, so the listener
 * stays readable: the loop must not spin on it, and must pick the client up once
 * fds are available again. In a subprocess because it lowers RLIMIT_NOFILE. */
static void test_emfile(void)
{
	Fixture f = { 0 };
	struct rlimit saved, low;
	Client *c;
	gint64 cpu;
	int probe;

	if (!g_test_subprocess()) {
		g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
		g_test_trap_assert_passed();
		return;
	}
	setup(&f, NULL);
	c = client_ready(&f);
	g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &saved), ==, 0);
	/* Room for exactly one more fd: the client's socket, not the server's end. */
	probe = dup(0);
	g_assert_cmpint(probe, >=, 0);
	close(probe);
	low = saved;
	low.rlim_cur = (rlim_t)probe + 1;
	g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &low), ==, 0);
	{
		Client *late = client_connect(&f);

		cpu = cpu_usec();
		g_usleep(500 * 1000);
		/* A spinning loop burns most of these 500 ms; a backing-off one next to none. */
		g_assert_cmpint(cpu_usec() - cpu, <, 100 * 1000);
		/* Clients already connected are still served meanwhile. */
		client_send(c, "{\"execute\":\"echo\",\"id\":1}");
		recv_return_id(c, 1);
		g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &saved), ==, 0);
		recv_greeting(late);
		client_close(late);
	}
	client_close(c);
	teardown(&f, NULL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/qmp/" name, Fixture, NULL, setup, fn, teardown)
	ADD("greeting", test_greeting);
	ADD("negotiation", test_negotiation);
	ADD("id-echo", test_id_echo);
	ADD("errors", test_errors);
	ADD("non-object", test_non_object);
	ADD("garbage", test_garbage);
	ADD("split", test_split);
	ADD("batch", test_batch);
	ADD("oversized", test_oversized);
	ADD("events", test_events);
	ADD("query-commands", test_query_commands);
	ADD("getfd", test_getfd);
	ADD("fdsets", test_fdsets);
	ADD("disconnect", test_disconnect);
	ADD("slow-reader", test_slow_reader);
	ADD("flood", test_flood);
	ADD("stop-flushes", test_stop_flushes);
	ADD("oob", test_oob);
	ADD("queue-full", test_queue_full);
#undef ADD
	g_test_add_func("/qmp/socket-path", test_socket_path);
	g_test_add_func("/qmp/emfile", test_emfile);
	return g_test_run();
}
