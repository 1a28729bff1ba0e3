/* QMP server: one poll() loop in the caller's thread (the reader) serves the listening
 * socket, every client and an eventfd that other threads kick when they queue output or
 * free room in a client's request queue.
 *
 * Input is a byte stream of JSON values with no framing, so a small lexer-level
 * splitter (brace/bracket depth, strings, escapes) finds where each value ends;
 * json-glib does the actual parsing. Output is queued per client and written
 * non-blocking, so neither the loop nor an event emitter ever waits on a peer.
 *
 * Execution follows QEMU's monitor: in-band commands of every client go to one FIFO run
 * by the dispatcher thread (qmp/dispatch), one at a time, so the reader never waits for
 * a command and a command that takes long delays other in-band commands but never the
 * reading, the events or out-of-band commands. A client has at most one in-band request
 * queued or running (eight once it negotiated "oob"); past that the reader leaves its
 * input in the socket, which keeps its replies in order. "exec-oob" requests of commands
 * that allow it run in the reader at once, overtaking queued in-band ones.
 *
 * Locking: s->lock protects the client array's membership and each client's output
 * buffer, mode and oob flag, because the dispatcher and emitters on other threads use
 * them, and the fd sets, which a migration's threads read when they open a file.
 * s->qlock protects the request queue and the dispatcher's state. The two are never
 * held together. Input state belongs to the reader; the command table is fixed
 * once the server runs. Handlers run with no lock held so they may emit events. */
#include "engine/qmp/qmp.h"
#include "engine/qmp/qmp_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* One JSON message, and so one client's pending input, may not exceed this: QMP
 * requests are small and the cap keeps a hostile client from growing us. */
#define QMP_MAX_MESSAGE (1u << 20)
/* json-glib's parser recurses per nesting level; bound it well below stack size. */
#define QMP_MAX_DEPTH 1024
/* A client that stops reading is dropped once this much output is waiting for it,
 * so events for a stuck monitor cannot grow memory without bound. */
#define QMP_MAX_OUTPUT (8u << 20)
/* How long to leave the listener alone after accept() ran out of resources. */
#define QMP_ACCEPT_BACKOFF_MS 100
/* How long run() keeps trying to deliver queued replies after a stop. */
#define QMP_STOP_FLUSH_MS 1000
/* How long run() waits, after a stop, for the command the dispatcher is running (a
 * "quit" queues its reply only when its handler returns). */
#define QMP_STOP_DRAIN_MS 1500
/* In-band requests a client may have queued or running: QEMU's one without "oob", its
 * QMP_REQ_QUEUE_LEN_MAX with it. */
#define QMP_QUEUE_MAX 1
#define QMP_QUEUE_MAX_OOB 8
#define QMP_READ_CHUNK 65536
/* File descriptors a client may hold (passed and not yet named, and named by getfd):
 * libvirt passes one per migration; the cap keeps a client from exhausting ours. */
#define QMP_MAX_FDS 16
/* Descriptors in all fd sets (add-fd): libvirt adds two per file (one O_DIRECT). */
#define QMP_MAX_FDSET_FDS 64

G_DEFINE_QUARK(mig-qmp-error-quark, mig_qmp_error)

typedef enum {
	SPLIT_MORE,     /* input consumed, no complete value yet */
	SPLIT_MESSAGE,  /* sp->msg holds one complete value */
	SPLIT_TOO_BIG,  /* value exceeded QMP_MAX_MESSAGE; the rest of it is skipped */
	SPLIT_TOO_DEEP, /* value nested beyond QMP_MAX_DEPTH; the rest of it is skipped */
} SplitResult;

/* Where the splitter is inside the current value. The copy in msg is already
 * normalised to what json-glib's strict grammar wants (double quotes only). */
typedef struct {
	GString *msg;
	gsize depth;   /* open { and [ */
	char quote;    /* the opening quote while inside a string, else 0 */
	bool escape;   /* previous byte was a backslash inside a string */
	bool bare;     /* inside a top-level scalar (number, literal or garbage) */
	bool discard;  /* over a limit: track structure but keep nothing */
} Splitter;

typedef struct {
	int fd;
	gint ref;           /* the client array's, and one per queued request */
	/* Reader only: */
	Splitter in;
	GByteArray *pending; /* read but left unsplit while the request queue was full */
	bool hup;           /* the socket hung up while its input was held back */
	/* Under s->lock: */
	GByteArray *out;
	gsize out_off;      /* bytes of out already sent */
	bool command_mode;  /* capabilities negotiated; events are delivered */
	gint oob;           /* negotiated "oob": exec-oob accepted, eight requests queue;
			     * written under s->lock, atomic so the reader's per-message
			     * room check needs no lock */
	gint queued;        /* in-band requests queued or running (atomic) */
	/* Set by whoever notices the client is unusable; the loop closes it. */
	gint dead;
	/* Under s->lock: descriptors passed with SCM_RIGHTS, oldest first, until getfd
	 * names the latest; and those named (name -> fd + 1). Closed with the client. */
	GArray *passed_fds;
	GHashTable *named_fds;
} QmpClient;

/* An fd set (add-fd): the server's, seen by every client, until remove-fd or the end. */
typedef struct {
	gint64 id;
	GArray *fds;        /* QmpFdsetFd, oldest first */
} QmpFdset;

typedef struct {
	int fd;
	char *opaque;
} QmpFdsetFd;

typedef struct {
	char *name;
	MigQmpHandler fn;   /* NULL for qmp_capabilities, which dispatch handles */
	gpointer opaque;
	bool allow_oob;     /* from qmp_oob_commands, by name */
} QmpCommand;

/* One in-band request waiting for the dispatcher: the parsed message, or the error the
 * reader found in it (QEMU queues those too, so they answer in order). */
typedef struct {
	QmpClient *c;       /* a reference */
	JsonNode *root;
	char *error;
} QmpRequest;

struct MigQmpServer {
	int listen_fd;
	int wake_fd;
	char *path;
	char *greeting;         /* serialised once, with its CRLF */
	gsize greeting_len;

	GPtrArray *commands;    /* QmpCommand, registration order for query-commands */
	GHashTable *by_name;    /* name -> QmpCommand, borrowed from commands */

	GMutex lock;
	GPtrArray *clients;     /* QmpClient; membership changes under lock */
	/* Under lock: QmpFdset by rising id, and their descriptors' count. The migration's
	 * threads read them (mig_qmp_fdset_dup) while a file is opened. */
	GPtrArray *fdsets;
	guint fdset_fds;
	guint max_clients;      /* set before run; see MIG_QMP_MAX_CLIENTS_DEFAULT */
	gint stopping;

	GThread *dispatcher;    /* qmp/dispatch */
	GMutex qlock;
	GCond qcond;
	GQueue queue;           /* QmpRequest, under qlock */
	bool dispatch_quit;     /* under qlock: take no more requests */
	bool dispatch_busy;     /* under qlock: a handler is running */
	bool dispatch_done;     /* under qlock: the thread returned */
	/* Loop thread only: accept() ran out of fds or memory. The pending connection
	 * keeps the listener readable, so poll() would spin; leave it out and retry
	 * on a timer instead. */
	bool accept_backoff;
	/* The client whose command runs now, for the commands that act on its own file
	 * descriptors (getfd, closefd, an fd: URI). Set around each handler: cur by
	 * qmp/dispatch (in-band), cur_oob by the reader (out-of-band), so that the two
	 * threads never see each other's. */
	QmpClient *cur;
	QmpClient *cur_oob;
	/* mig_qmp_server_run_inline: in-band commands run in the reader, as they come */
	bool inline_dispatch;

	char rbuf[QMP_READ_CHUNK];
};

/* ---- splitter -------------------------------------------------------------------- */

static void splitter_reset(Splitter *sp)
{
	g_string_truncate(sp->msg, 0);
	sp->depth = 0;
	sp->quote = 0;
	sp->escape = false;
	sp->bare = false;
	sp->discard = false;
}

/* Appends to the message being collected. Returns false exactly once per value, when
 * it first outgrows the limit; from then on the value is skipped, not stored. */
static bool splitter_put(Splitter *sp, const char *bytes, gsize n)
{
	if (sp->discard)
		return true;
	if (sp->msg->len + n > QMP_MAX_MESSAGE) {
		sp->discard = true;
		g_string_truncate(sp->msg, 0);
		return false;
	}
	g_string_append_len(sp->msg, bytes, n);
	return true;
}

static bool ends_bare_token(unsigned char ch)
{
	/* ch != 0: strchr would match the terminator. NUL never gets here anyway,
	 * control characters are handled first. */
	return ch && strchr(" \t\r\n{}[],:\"'", ch) != NULL;
}

/* Consumes input up to the end of the next complete top-level value, or all of it.
 * Returns how many bytes were consumed; *res says why it stopped. Top-level scalars
 * are delimited too so that "123" or stray garbage gets an error reply instead of
 * silently prefixing the next request. Single-quoted strings (a QEMU extension) are
 * rewritten with double quotes, and \' becomes ', so json-glib sees plain JSON. */
static gsize splitter_feed(Splitter *sp, const char *p, gsize len, SplitResult *res)
{
	for (gsize i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		char c = (char)ch;
		bool ok = true, done = false;

		/* QMP's documented recovery: a control character other than whitespace
		 * throws away whatever was half-read. JSON never contains one raw. */
		if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
			splitter_reset(sp);
			continue;
		}

		if (sp->quote) {
			if (sp->escape) {
				sp->escape = false;
				if (ch == '\'')
					ok = splitter_put(sp, "'", 1);
				else
					ok = splitter_put(sp, "\\", 1) && splitter_put(sp, &c, 1);
			} else if (ch == '\\') {
				sp->escape = true;
			} else if (ch == (unsigned char)sp->quote) {
				sp->quote = 0;
				ok = splitter_put(sp, "\"", 1);
				done = sp->depth == 0;
			} else if (ch == '"') {
				ok = splitter_put(sp, "\\\"", 2); /* inside a '...' string */
			} else {
				ok = splitter_put(sp, &c, 1);
			}
		} else if (sp->bare) {
			if (ends_bare_token(ch)) {
				/* The delimiter belongs to whatever follows: leave it unconsumed. */
				sp->bare = false;
				if (sp->discard) {
					splitter_reset(sp);
					continue;
				}
				*res = SPLIT_MESSAGE;
				return i;
			}
			ok = splitter_put(sp, &c, 1);
		} else {
			switch (ch) {
			case '"':
			case '\'':
				sp->quote = c;
				ok = splitter_put(sp, "\"", 1);
				break;
			case '{':
			case '[':
				if (++sp->depth > QMP_MAX_DEPTH && !sp->discard) {
					sp->discard = true;
					g_string_truncate(sp->msg, 0);
					*res = SPLIT_TOO_DEEP;
					return i + 1;
				}
				ok = splitter_put(sp, &c, 1);
				break;
			case '}':
			case ']':
				/* A stray closer at top level is passed on alone so the parser
				 * reports it; mismatched pairs are the parser's to find too. */
				ok = splitter_put(sp, &c, 1);
				if (sp->depth)
					sp->depth--;
				done = sp->depth == 0;
				break;
			case ' ':
			case '\t':
			case '\r':
			case '\n':
				if (sp->depth)
					ok = splitter_put(sp, &c, 1);
				break;
			default:
				if (!sp->depth)
					sp->bare = true;
				ok = splitter_put(sp, &c, 1);
			}
		}

		if (!ok) {
			*res = SPLIT_TOO_BIG;
			return i + 1;
		}
		if (done) {
			if (sp->discard) {
				splitter_reset(sp);
				continue;
			}
			*res = SPLIT_MESSAGE;
			return i + 1;
		}
	}
	*res = SPLIT_MORE;
	return len;
}

/* ---- output ------------------------------------------------------------------------ */

/* json-glib writes UTF-8; QMP output is ASCII. Non-ASCII bytes can only occur inside
 * strings, so each character is replaced by its \u escape (surrogate pairs above the
 * BMP). Invalid UTF-8 from a handler becomes U+FFFD rather than corrupt output. */
static void append_ascii(GString *out, const char *json, gsize len)
{
	const char *p = json, *end = json + len;

	while (p < end) {
		const char *run = p;
		gunichar u;

		while (p < end && !((unsigned char)*p & 0x80))
			p++;
		g_string_append_len(out, run, p - run);
		if (p == end)
			break;
		u = g_utf8_get_char_validated(p, end - p);
		if (u == (gunichar)-1 || u == (gunichar)-2) {
			u = 0xfffd;
			p++;
		} else {
			p = g_utf8_next_char(p);
		}
		if (u >= 0x10000) {
			u -= 0x10000;
			g_string_append_printf(out, "\\u%04x\\u%04x", 0xd800 + (u >> 10),
					       0xdc00 + (u & 0x3ff));
		} else {
			g_string_append_printf(out, "\\u%04x", u);
		}
	}
}

/* The wire form of one server message: compact JSON, ASCII, CRLF. */
static GString *serialize(JsonNode *node)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *json = NULL;
	gsize len = 0;
	GString *out;

	json_generator_set_root(gen, node);
	json_generator_set_pretty(gen, FALSE);
	json = json_generator_to_data(gen, &len);
	out = g_string_sized_new(len + 2);
	append_ascii(out, json, len);
	g_string_append(out, "\r\n");
	return out;
}

static GString *serialize_object(JsonObject *obj)
{
	g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);

	return serialize(node);
}

static void client_mark_dead(QmpClient *c)
{
	g_atomic_int_set(&c->dead, 1);
}

static bool client_is_dead(QmpClient *c)
{
	return g_atomic_int_get(&c->dead) != 0;
}

static bool client_has_output_locked(QmpClient *c)
{
	return c->out_off < c->out->len;
}

/* Caller holds s->lock. A client that let QMP_MAX_OUTPUT pile up is not reading;
 * dropping it is the only way to stay non-blocking without unbounded memory. */
static void client_append_locked(QmpClient *c, const char *data, gsize len)
{
	if (client_is_dead(c))
		return;
	if (c->out->len - c->out_off + len > QMP_MAX_OUTPUT) {
		g_debug("qmp: client fd %d is not reading, dropping it", c->fd);
		client_mark_dead(c);
		return;
	}
	g_byte_array_append(c->out, (const guint8 *)data, len);
}

/* Caller holds s->lock. Writes what the socket takes without blocking. */
static void client_flush_locked(QmpClient *c)
{
	while (client_has_output_locked(c) && !client_is_dead(c)) {
		ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				client_mark_dead(c); /* EPIPE, ECONNRESET: peer is gone */
			break;
		}
		c->out_off += (gsize)n;
	}
	/* Compact only once half the buffer is sent, so a slow reader costs
	 * amortised O(1) per byte instead of a memmove per partial write. */
	if (c->out_off == c->out->len) {
		g_byte_array_set_size(c->out, 0);
		c->out_off = 0;
	} else if (c->out_off > c->out->len / 2) {
		g_byte_array_remove_range(c->out, 0, (guint)c->out_off);
		c->out_off = 0;
	}
}

/* Queues one message for a client. negotiated (a successful qmp_capabilities, with
 * "oob" or not) flips the client's mode in the same critical section, so no event can
 * be delivered ahead of the reply that enables them. */
typedef enum { MODE_KEEP, MODE_COMMAND, MODE_COMMAND_OOB } ModeChange;

static void client_send(MigQmpServer *s, QmpClient *c, GString *msg, ModeChange mode)
{
	g_mutex_lock(&s->lock);
	client_append_locked(c, msg->str, msg->len);
	if (mode != MODE_KEEP) {
		c->command_mode = true;
		g_atomic_int_set(&c->oob, mode == MODE_COMMAND_OOB);
	}
	g_mutex_unlock(&s->lock);
}

static void client_mode(MigQmpServer *s, QmpClient *c, bool *command_mode, bool *oob)
{
	g_mutex_lock(&s->lock);
	*command_mode = c->command_mode;
	*oob = g_atomic_int_get(&c->oob);
	g_mutex_unlock(&s->lock);
}

static void wake(MigQmpServer *s)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is saturated, i.e. a wake-up is already pending. */
	while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* ---- replies ----------------------------------------------------------------------- */

static const char *error_class(const GError *err)
{
	if (err->domain == MIG_QMP_ERROR) {
		switch ((MigQmpErrorCode)err->code) {
		case MIG_QMP_ERROR_COMMAND_NOT_FOUND:
			return "CommandNotFound";
		case MIG_QMP_ERROR_DEVICE_NOT_FOUND:
			return "DeviceNotFound";
		case MIG_QMP_ERROR_GENERIC:
			break;
		}
	}
	return "GenericError";
}

/* id is the request's "id" member, echoed verbatim; NULL when there was none or the
 * request could not be read far enough to find it. */
static void reply(MigQmpServer *s, QmpClient *c, JsonNode *id, JsonNode *ret, const GError *err,
		  ModeChange mode)
{
	g_autoptr(JsonObject) obj = json_object_new();
	g_autoptr(GString) msg = NULL;

	if (err) {
		JsonObject *e = json_object_new();

		json_object_set_string_member(e, "class", error_class(err));
		json_object_set_string_member(e, "desc", err->message);
		json_object_set_object_member(obj, "error", e);
	} else if (ret) {
		json_object_set_member(obj, "return", json_node_ref(ret));
	} else {
		json_object_set_object_member(obj, "return", json_object_new());
	}
	if (id)
		json_object_set_member(obj, "id", json_node_copy(id));
	msg = serialize_object(obj);
	client_send(s, c, msg, mode);
}

G_GNUC_PRINTF(4, 5)
static void reply_error(MigQmpServer *s, QmpClient *c, JsonNode *id, const char *fmt, ...)
{
	g_autoptr(GError) err = NULL;
	va_list ap;

	va_start(ap, fmt);
	err = g_error_new_valist(MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, fmt, ap);
	va_end(ap);
	reply(s, c, id, NULL, err, MODE_KEEP);
}

/* ---- dispatch ---------------------------------------------------------------------- */

/* The commands QEMU's schema marks allow-oob that a mig host may register. By name, so a
 * handler registered under one of them runs out-of-band whoever registers it. Each must
 * return promptly and take only locks held for bounded times. */
static const char *const qmp_oob_commands[] = {
	"migrate-pause", "migrate-recover", "yank", "query-yank", NULL,
};

static bool node_is_string(JsonNode *n)
{
	return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING;
}

/* Where the calling thread keeps the client whose command it runs. */
static QmpClient **cur_slot(MigQmpServer *s)
{
	return g_thread_self() == s->dispatcher ? &s->cur : &s->cur_oob;
}

/* QEMU's test for an out-of-band request, made before anything else is checked. */
static bool request_is_oob(JsonNode *root)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;

	return o && json_object_has_member(o, "exec-oob") && !json_object_has_member(o, "execute");
}

/* qmp_capabilities needs the client, which handlers never see, so it lives here.
 * Returns the mode the client enters, MODE_KEEP on error. */
static ModeChange negotiate(bool command_mode, JsonObject *args, GError **err)
{
	g_autoptr(GList) keys = json_object_get_members(args);
	bool oob = false;

	if (command_mode) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_COMMAND_NOT_FOUND,
			    "Capabilities negotiation is already complete, command ignored");
		return MODE_KEEP;
	}
	for (GList *l = keys; l; l = l->next) {
		const char *key = l->data;
		JsonNode *n = json_object_get_member(args, key);
		JsonArray *a;

		if (strcmp(key, "enable") != 0) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "Parameter '%s' is unexpected", key);
			return MODE_KEEP;
		}
		if (!JSON_NODE_HOLDS_ARRAY(n)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "Invalid parameter type for 'enable', expected: array");
			return MODE_KEEP;
		}
		a = json_node_get_array(n);
		for (guint i = 0; i < json_array_get_length(a); i++) {
			JsonNode *cap = json_array_get_element(a, i);

			if (!node_is_string(cap)) {
				g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
					    "Invalid parameter type for 'enable[%u]', expected: string", i);
				return MODE_KEEP;
			}
			if (strcmp(json_node_get_string(cap), "oob") != 0) {
				g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
					    "Parameter 'enable' does not accept value '%s'",
					    json_node_get_string(cap));
				return MODE_KEEP;
			}
			oob = true;
		}
	}
	return oob ? MODE_COMMAND_OOB : MODE_COMMAND;
}

/* Validates the request envelope and runs the command, in QEMU's order of checks:
 * "exec-oob" is a member like any unknown one unless the client negotiated "oob".
 * Returns the "return" value (NULL meaning {}) or NULL with *err set. */
static JsonNode *dispatch(MigQmpServer *s, QmpClient *c, JsonObject *req, ModeChange *mode,
			  GError **err)
{
	g_autoptr(GList) keys = json_object_get_members(req);
	g_autoptr(JsonObject) no_args = NULL;
	const char *name = NULL, *exec_key = NULL;
	JsonObject *args = NULL;
	QmpCommand *cmd;
	JsonNode *ret;
	bool command_mode, oob;

	client_mode(s, c, &command_mode, &oob);
	for (GList *l = keys; l; l = l->next) {
		const char *key = l->data;
		JsonNode *n = json_object_get_member(req, key);

		if (!strcmp(key, "execute") || (!strcmp(key, "exec-oob") && oob)) {
			if (!node_is_string(n)) {
				g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
					    "QMP input member '%s' must be a string", key);
				return NULL;
			}
			if (exec_key) {
				g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
					    "QMP input member '%s' clashes with '%s'", key, exec_key);
				return NULL;
			}
			exec_key = key;
			name = json_node_get_string(n);
		} else if (!strcmp(key, "arguments")) {
			if (!JSON_NODE_HOLDS_OBJECT(n)) {
				g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
					    "QMP input member 'arguments' must be an object");
				return NULL;
			}
			args = json_node_get_object(n);
		} else if (strcmp(key, "id") != 0) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "QMP input member '%s' is unexpected", key);
			return NULL;
		}
	}
	if (!name) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    "QMP input lacks member 'execute'");
		return NULL;
	}

	/* Before negotiation only qmp_capabilities exists, as far as the client can
	 * tell; QEMU words that error so the client learns what it forgot. */
	cmd = g_hash_table_lookup(s->by_name, name);
	if (!command_mode && (!cmd || cmd->fn)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_COMMAND_NOT_FOUND,
			    "Expecting capabilities negotiation with 'qmp_capabilities'");
		return NULL;
	}
	if (!cmd) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_COMMAND_NOT_FOUND,
			    "The command %s has not been found", name);
		return NULL;
	}
	if (!strcmp(exec_key, "exec-oob") && !cmd->allow_oob) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    "The command %s does not support OOB", name);
		return NULL;
	}

	if (!args)
		args = no_args = json_object_new();
	if (!cmd->fn) {
		*mode = negotiate(command_mode, args, err);
		return NULL;
	}

	*cur_slot(s) = c;
	ret = cmd->fn(args, cmd->opaque, err);
	*cur_slot(s) = NULL;
	if (err && *err) {
		/* A handler that both returned a value and failed: the error wins. */
		g_clear_pointer(&ret, json_node_unref);
	}
	return ret;
}

/* Runs one parsed request and queues its reply: in the reader for exec-oob, in the
 * dispatcher for everything else. */
static void execute(MigQmpServer *s, QmpClient *c, JsonNode *root)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonNode) ret = NULL;
	ModeChange mode = MODE_KEEP;
	JsonObject *req;
	JsonNode *id;

	if (!JSON_NODE_HOLDS_OBJECT(root)) {
		reply_error(s, c, NULL, "QMP input must be a JSON object");
		return;
	}
	req = json_node_get_object(root);
	id = json_object_get_member(req, "id");
	ret = dispatch(s, c, req, &mode, &err);
	reply(s, c, id, ret, err, mode);
}

static QmpClient *client_ref(QmpClient *c)
{
	g_atomic_int_inc(&c->ref);
	return c;
}

static void close_fd_array(GArray *fds)
{
	for (guint i = 0; i < fds->len; i++)
		close(g_array_index(fds, int, i));
	g_array_set_size(fds, 0);
}

static void client_unref(gpointer p)
{
	QmpClient *c = p;
	GHashTableIter it;
	gpointer fd;

	if (!g_atomic_int_dec_and_test(&c->ref))
		return;
	close_fd_array(c->passed_fds);
	g_array_free(c->passed_fds, TRUE);
	g_hash_table_iter_init(&it, c->named_fds);
	while (g_hash_table_iter_next(&it, NULL, &fd))
		close(GPOINTER_TO_INT(fd) - 1);
	g_hash_table_unref(c->named_fds);
	close(c->fd);
	g_string_free(c->in.msg, TRUE);
	if (c->pending)
		g_byte_array_unref(c->pending);
	g_byte_array_unref(c->out);
	g_free(c);
}

static void request_free(QmpRequest *r)
{
	client_unref(r->c);
	if (r->root)
		json_node_unref(r->root);
	g_free(r->error);
	g_free(r);
}

/* Reader: hands an in-band request (or the error found in it) to the dispatcher. */
static void enqueue(MigQmpServer *s, QmpClient *c, JsonNode *root, char *error)
{
	QmpRequest *r;

	if (s->inline_dispatch) {
		if (error)
			reply_error(s, c, NULL, "%s", error);
		else
			execute(s, c, root);
		if (root)
			json_node_unref(root);
		g_free(error);
		return;
	}
	r = g_new0(QmpRequest, 1);
	r->c = client_ref(c);
	r->root = root;
	r->error = error;
	g_atomic_int_inc(&c->queued);
	g_mutex_lock(&s->qlock);
	g_queue_push_tail(&s->queue, r);
	g_cond_signal(&s->qcond);
	g_mutex_unlock(&s->qlock);
}

/* Commands of a client that hung up still run, only their replies go nowhere: a
 * "quit" written just before closing the socket must still quit. */
static gpointer dispatcher_main(gpointer opaque)
{
	MigQmpServer *s = opaque;

	g_mutex_lock(&s->qlock);
	for (;;) {
		QmpRequest *r;

		while (!s->dispatch_quit && g_queue_is_empty(&s->queue))
			g_cond_wait(&s->qcond, &s->qlock);
		if (s->dispatch_quit)
			break;
		r = g_queue_pop_head(&s->queue);
		s->dispatch_busy = true;
		g_mutex_unlock(&s->qlock);

		if (r->error)
			reply_error(s, r->c, NULL, "%s", r->error);
		else
			execute(s, r->c, r->root);
		g_atomic_int_dec_and_test(&r->c->queued);
		request_free(r);
		/* the reader flushes the reply and may read this client's input again */
		wake(s);

		g_mutex_lock(&s->qlock);
		s->dispatch_busy = false;
		g_cond_broadcast(&s->qcond);
	}
	s->dispatch_done = true;
	g_cond_broadcast(&s->qcond);
	g_mutex_unlock(&s->qlock);
	return NULL;
}

/* Reader: an error found in the input, answered in order with the in-band replies:
 * at once when none is pending (the common case, and the cheap one for a client that
 * sends garbage by the megabyte), else queued behind them. */
G_GNUC_PRINTF(3, 4)
static void input_error(MigQmpServer *s, QmpClient *c, const char *fmt, ...)
{
	g_autoptr(GError) err = NULL;
	va_list ap;

	va_start(ap, fmt);
	err = g_error_new_valist(MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, fmt, ap);
	va_end(ap);
	if (g_atomic_int_get(&c->queued))
		enqueue(s, c, NULL, g_steal_pointer(&err->message));
	else
		reply(s, c, NULL, NULL, err, MODE_KEEP);
}

/* Reader: one complete JSON value. */
static void handle_message(MigQmpServer *s, QmpClient *c, const char *json, gsize len)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) err = NULL;
	JsonNode *root;

	if (!json_parser_load_from_data(parser, json, (gssize)len, &err)) {
		input_error(s, c, "JSON parse error, %s", err->message);
		return;
	}
	root = json_parser_get_root(parser);
	if (!root) {
		/* Only possible for input that is all comments, which json-glib skips. */
		input_error(s, c, "JSON parse error, no value");
		return;
	}
	if (!JSON_NODE_HOLDS_OBJECT(root))
		input_error(s, c, "QMP input must be a JSON object");
	else if (request_is_oob(root))
		execute(s, c, root);
	else
		enqueue(s, c, json_node_copy(root), NULL);
}

/* Reader: whether the client may have another in-band request queued. */
static bool client_has_room(MigQmpServer *s, QmpClient *c)
{
	return g_atomic_int_get(&c->queued) < (g_atomic_int_get(&c->oob) ? QMP_QUEUE_MAX_OOB : QMP_QUEUE_MAX);
}

/* Feeds bytes through the splitter, answering or queueing each complete value. Stops
 * early if the server is stopping (the rest is not for us) or the client died under
 * us (say, its output overflowed); keeps the rest in c->pending when the client's
 * request queue is full, to go on once the dispatcher made room. */
static void client_consume(MigQmpServer *s, QmpClient *c, const char *data, gsize len)
{
	gsize off = 0;

	while (off < len && !g_atomic_int_get(&s->stopping) && !client_is_dead(c)) {
		SplitResult r;

		if (!client_has_room(s, c)) {
			if (!c->pending)
				c->pending = g_byte_array_new();
			g_byte_array_append(c->pending, (const guint8 *)data + off, (guint)(len - off));
			return;
		}
		off += splitter_feed(&c->in, data + off, len - off, &r);
		switch (r) {
		case SPLIT_MORE:
			break;
		case SPLIT_MESSAGE:
			handle_message(s, c, c->in.msg->str, c->in.msg->len);
			g_string_truncate(c->in.msg, 0);
			break;
		case SPLIT_TOO_BIG:
			input_error(s, c, "JSON parse error, message exceeds %u bytes", QMP_MAX_MESSAGE);
			break;
		case SPLIT_TOO_DEEP:
			input_error(s, c, "JSON parse error, nesting exceeds %u levels", QMP_MAX_DEPTH);
			break;
		}
	}
}

/* ---- clients ----------------------------------------------------------------------- */

/* Reader: whether to poll the client's socket for input now. */
static bool client_wants_input(MigQmpServer *s, QmpClient *c)
{
	return !c->pending && client_has_room(s, c);
}

/* Reader: goes on with input held back while the client's queue was full. */
static void client_resume(MigQmpServer *s, QmpClient *c)
{
	g_autoptr(GByteArray) held = NULL;

	if (!c->pending || !client_has_room(s, c))
		return;
	held = g_steal_pointer(&c->pending);
	client_consume(s, c, (const char *)held->data, held->len);
}

static guint client_fd_count_locked(QmpClient *c)
{
	return c->passed_fds->len + g_hash_table_size(c->named_fds);
}

/* Keeps the descriptors that came with a read (SCM_RIGHTS) for getfd; over the cap,
 * or when the kernel cut the list short, they are closed: the getfd that follows
 * then says no descriptor came. */
static void client_take_passed(MigQmpServer *s, QmpClient *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		int n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			g_mutex_lock(&s->lock);
			if (!(mh->msg_flags & MSG_CTRUNC) && client_fd_count_locked(c) < QMP_MAX_FDS) {
				g_array_append_val(c->passed_fds, fd);
				fd = -1;
			}
			g_mutex_unlock(&s->lock);
			if (fd >= 0) {
				g_debug("qmp: client fd %d passes more than %d descriptors, closing one", c->fd, QMP_MAX_FDS);
				close(fd);
			}
		}
	}
}

static void client_read(MigQmpServer *s, QmpClient *c)
{
	union {
		char buf[CMSG_SPACE(QMP_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { s->rbuf, sizeof(s->rbuf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n >= 0 && mh.msg_controllen)
		client_take_passed(s, c, &mh);

	if (n < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			client_mark_dead(c);
		return;
	}
	if (n == 0) {
		client_mark_dead(c);
		return;
	}
	client_consume(s, c, s->rbuf, (gsize)n);
}

static void accept_clients(MigQmpServer *s)
{
	s->accept_backoff = false;
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		QmpClient *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* EAGAIN: backlog drained. EMFILE and friends: leave the
			 * connection in the backlog and retry a little later. */
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				g_debug("qmp: accept: %s", g_strerror(errno));
				s->accept_backoff = true;
			}
			return;
		}
		if (s->clients->len >= s->max_clients) {
			char busy[160];
			int n = g_snprintf(busy, sizeof(busy), "{\"error\": {\"class\": \"GenericError\", \"desc\": "
					 "\"too many QMP clients: at most %u at once\"}}\r\n", s->max_clients);

			/* best effort: the socket is fresh and the message small */
			if (send(fd, busy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				g_debug("qmp: refusing a client: %s", g_strerror(errno));
			close(fd);
			continue;
		}
		c = g_new0(QmpClient, 1);
		c->fd = fd;
		c->ref = 1;
		c->in.msg = g_string_new(NULL);
		c->out = g_byte_array_new();
		c->passed_fds = g_array_new(FALSE, FALSE, sizeof(int));
		c->named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		g_mutex_lock(&s->lock);
		g_ptr_array_add(s->clients, c);
		client_append_locked(c, s->greeting, s->greeting_len);
		g_mutex_unlock(&s->lock);
	}
}

static void flush_all(MigQmpServer *s)
{
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < s->clients->len; i++) {
		QmpClient *c = s->clients->pdata[i];

		if (client_has_output_locked(c))
			client_flush_locked(c);
	}
	g_mutex_unlock(&s->lock);
}

/* Removes dead clients under the lock, then drops the array's references outside it:
 * once out of the array no emitter can reach them; a queued request may still hold
 * one, and the socket closes with the last. */
static void sweep_dead(MigQmpServer *s)
{
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(client_unref);

	g_mutex_lock(&s->lock);
	for (guint i = 0; i < s->clients->len;) {
		QmpClient *c = s->clients->pdata[i];

		if (client_is_dead(c))
			g_ptr_array_add(gone, g_ptr_array_steal_index(s->clients, i));
		else
			i++;
	}
	g_mutex_unlock(&s->lock);
}

/* ---- server ------------------------------------------------------------------------ */

static JsonNode *cmd_query_commands(JsonObject *args, gpointer opaque, GError **err)
{
	return mig_qmp_command_list(opaque);
}

/* ---- file descriptors (getfd, closefd) ---------------------------------------------- */

static const char *fdname_arg(JsonObject *args, GError **err)
{
	JsonNode *n = json_object_get_member(args, "fdname");
	g_autoptr(GList) keys = json_object_get_members(args);

	for (GList *l = keys; l; l = l->next) {
		if (strcmp(l->data, "fdname")) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected",
				    (const char *)l->data);
			return NULL;
		}
	}
	if (!n || !node_is_string(n)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    n ? "Invalid parameter type for 'fdname', expected: string" : "Parameter 'fdname' is missing");
		return NULL;
	}
	return json_node_get_string(n);
}

/* getfd {fdname}: names the descriptor that came last with SCM_RIGHTS, as QEMU does;
 * a name in use gets the new one and its old descriptor is closed. */
static JsonNode *cmd_getfd(JsonObject *args, gpointer opaque, GError **err)
{
	MigQmpServer *s = opaque;
	QmpClient *c = *cur_slot(s);
	const char *name = fdname_arg(args, err);
	gpointer old = NULL;
	int fd;

	if (!name)
		return NULL;
	if (g_ascii_isdigit(name[0])) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "File descriptor name may not start with a digit");
		return NULL;
	}
	g_mutex_lock(&s->lock);
	if (!c->passed_fds->len) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "No file descriptor supplied via SCM_RIGHTS");
		return NULL;
	}
	fd = g_array_index(c->passed_fds, int, c->passed_fds->len - 1);
	g_array_set_size(c->passed_fds, c->passed_fds->len - 1);
	/* the older ones were never named: nothing can claim them any more */
	close_fd_array(c->passed_fds);
	if (!g_hash_table_lookup_extended(c->named_fds, name, NULL, &old))
		old = NULL;
	g_hash_table_insert(c->named_fds, g_strdup(name), GINT_TO_POINTER(fd + 1));
	g_mutex_unlock(&s->lock);
	if (old)
		close(GPOINTER_TO_INT(old) - 1);
	return NULL;
}

static int steal_named_fd(MigQmpServer *s, QmpClient *c, const char *name)
{
	gpointer v = NULL;

	g_mutex_lock(&s->lock);
	if (c && g_hash_table_lookup_extended(c->named_fds, name, NULL, &v))
		g_hash_table_remove(c->named_fds, name);
	else
		v = NULL;
	g_mutex_unlock(&s->lock);
	return v ? GPOINTER_TO_INT(v) - 1 : -1;
}

static JsonNode *cmd_closefd(JsonObject *args, gpointer opaque, GError **err)
{
	MigQmpServer *s = opaque;
	const char *name = fdname_arg(args, err);
	int fd;

	if (!name)
		return NULL;
	fd = steal_named_fd(s, *cur_slot(s), name);
	if (fd < 0) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "File descriptor named '%s' not found", name);
		return NULL;
	}
	close(fd);
	return NULL;
}

/* ---- fd sets (add-fd, remove-fd, query-fdsets), QEMU's monitor/fds.c ------------------- */

static void fdset_free(gpointer p)
{
	QmpFdset *set = p;

	for (guint i = 0; i < set->fds->len; i++) {
		QmpFdsetFd *f = &g_array_index(set->fds, QmpFdsetFd, i);

		close(f->fd);
		g_free(f->opaque);
	}
	g_array_free(set->fds, TRUE);
	g_free(set);
}

/* The set's index in s->fdsets, or where a set of that id would go (*found FALSE). */
static guint fdset_index_locked(MigQmpServer *s, gint64 id, bool *found)
{
	guint i = 0;

	while (i < s->fdsets->len && ((QmpFdset *)s->fdsets->pdata[i])->id < id)
		i++;
	*found = i < s->fdsets->len && ((QmpFdset *)s->fdsets->pdata[i])->id == id;
	return i;
}

/* An optional integer argument: FALSE with *err set when it is there but no integer. */
static bool int_arg(JsonObject *args, const char *name, gint64 *out, bool *has, GError **err)
{
	JsonNode *n = json_object_get_member(args, name);

	*has = n != NULL;
	if (!n)
		return true;
	if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: integer", name);
		return false;
	}
	*out = json_node_get_int(n);
	return true;
}

static bool only_args(JsonObject *args, const char *const *allowed, GError **err)
{
	g_autoptr(GList) keys = json_object_get_members(args);

	for (GList *l = keys; l; l = l->next) {
		if (!g_strv_contains(allowed, l->data)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected",
				    (const char *)l->data);
			return false;
		}
	}
	return true;
}

/* add-fd {*fdset-id, *opaque}: the descriptor passed with the command joins set fdset-id
 * (made if new; without fdset-id, a new set of the lowest free id). */
static JsonNode *cmd_add_fd(JsonObject *args, gpointer opaque, GError **err)
{
	static const char *const ok[] = { "fdset-id", "opaque", NULL };
	MigQmpServer *s = opaque;
	QmpClient *c = *cur_slot(s);
	JsonNode *on = json_object_get_member(args, "opaque");
	QmpFdsetFd f = { .fd = -1 };
	QmpFdset *set;
	JsonObject *o;
	JsonNode *r;
	gint64 id = 0;
	bool has_id, found;
	guint at;

	if (!only_args(args, ok, err) || !int_arg(args, "fdset-id", &id, &has_id, err))
		return NULL;
	if (on && !node_is_string(on)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for 'opaque', expected: string");
		return NULL;
	}
	g_mutex_lock(&s->lock);
	if (c && c->passed_fds->len) {
		f.fd = g_array_index(c->passed_fds, int, c->passed_fds->len - 1);
		g_array_set_size(c->passed_fds, c->passed_fds->len - 1);
		close_fd_array(c->passed_fds);   /* as getfd: only the latest is claimed */
	}
	if (f.fd < 0) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "No file descriptor supplied via SCM_RIGHTS");
		return NULL;
	}
	if (has_id && id < 0) {
		g_mutex_unlock(&s->lock);
		close(f.fd);
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter 'fdset-id' expects a non-negative value");
		return NULL;
	}
	if (s->fdset_fds >= QMP_MAX_FDSET_FDS) {
		g_mutex_unlock(&s->lock);
		close(f.fd);
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    "Too many file descriptors in fd sets: at most %u in all; remove-fd some first", QMP_MAX_FDSET_FDS);
		return NULL;
	}
	if (!has_id) {   /* the first gap in the ids from 0 */
		for (at = 0; at < s->fdsets->len && ((QmpFdset *)s->fdsets->pdata[at])->id == (gint64)at; at++)
			;
		id = at;
		found = false;
	} else {
		at = fdset_index_locked(s, id, &found);
	}
	if (!found) {
		set = g_new0(QmpFdset, 1);
		set->id = id;
		set->fds = g_array_new(FALSE, FALSE, sizeof(QmpFdsetFd));
		g_ptr_array_insert(s->fdsets, (gint)at, set);
	}
	set = s->fdsets->pdata[at];
	f.opaque = on ? g_strdup(json_node_get_string(on)) : NULL;
	g_array_append_val(set->fds, f);
	s->fdset_fds++;
	g_mutex_unlock(&s->lock);

	o = json_object_new();
	json_object_set_int_member(o, "fdset-id", id);
	json_object_set_int_member(o, "fd", f.fd);
	r = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(r, o);
	return r;
}

/* remove-fd {fdset-id, *fd}: closes one descriptor of the set, or all; an empty set goes.
 * QEMU keeps a removed descriptor open while a dup of it is; here the dup alone keeps
 * the file open, so the set's is closed at once. */
static JsonNode *cmd_remove_fd(JsonObject *args, gpointer opaque, GError **err)
{
	static const char *const ok[] = { "fdset-id", "fd", NULL };
	MigQmpServer *s = opaque;
	g_autoptr(GArray) gone = g_array_new(FALSE, FALSE, sizeof(int));
	gint64 id = 0, fd = -1;
	bool has_id, has_fd, found;
	guint at;

	if (!only_args(args, ok, err) || !int_arg(args, "fdset-id", &id, &has_id, err) ||
	    !int_arg(args, "fd", &fd, &has_fd, err))
		return NULL;
	if (!has_id) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter 'fdset-id' is missing");
		return NULL;
	}
	g_mutex_lock(&s->lock);
	at = fdset_index_locked(s, id, &found);
	if (found) {
		QmpFdset *set = s->fdsets->pdata[at];

		for (guint i = 0; i < set->fds->len;) {
			QmpFdsetFd *f = &g_array_index(set->fds, QmpFdsetFd, i);

			if (has_fd && f->fd != fd) {
				i++;
				continue;
			}
			g_array_append_val(gone, f->fd);
			g_free(f->opaque);
			g_array_remove_index(set->fds, i);
		}
		s->fdset_fds -= gone->len;
		if (!set->fds->len)
			g_ptr_array_remove_index(s->fdsets, at);
	}
	g_mutex_unlock(&s->lock);
	for (guint i = 0; i < gone->len; i++)
		close(g_array_index(gone, int, i));
	if (!found || (has_fd && !gone->len)) {
		if (has_fd)
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "File descriptor named 'fdset-id:%" G_GINT64_FORMAT ", fd:%" G_GINT64_FORMAT "' not found", id, fd);
		else
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "File descriptor named 'fdset-id:%" G_GINT64_FORMAT "' not found", id);
	}
	return NULL;
}

/* query-fdsets: [{fdset-id, fds: [{fd, *opaque}]}], QEMU's order: the sets by falling
 * id, each one's descriptors as they were added */
static JsonNode *cmd_query_fdsets(JsonObject *args, gpointer opaque, GError **err)
{
	static const char *const ok[] = { NULL };
	MigQmpServer *s = opaque;
	JsonArray *sets;
	JsonNode *r;

	if (!only_args(args, ok, err))
		return NULL;
	sets = json_array_new();
	g_mutex_lock(&s->lock);
	for (guint i = s->fdsets->len; i-- > 0;) {
		QmpFdset *set = s->fdsets->pdata[i];
		JsonObject *so = json_object_new();
		JsonArray *fds = json_array_new();

		for (guint j = 0; j < set->fds->len; j++) {
			QmpFdsetFd *f = &g_array_index(set->fds, QmpFdsetFd, j);
			JsonObject *fo = json_object_new();

			json_object_set_int_member(fo, "fd", f->fd);
			if (f->opaque)
				json_object_set_string_member(fo, "opaque", f->opaque);
			json_array_add_object_element(fds, fo);
		}
		json_object_set_int_member(so, "fdset-id", set->id);
		json_object_set_array_member(so, "fds", fds);
		json_array_add_object_element(sets, so);
	}
	g_mutex_unlock(&s->lock);
	r = json_node_new(JSON_NODE_ARRAY);
	json_node_take_array(r, sets);
	return r;
}

static const char *accmode_str(int flags)
{
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		return "O_RDONLY";
	case O_WRONLY:
		return "O_WRONLY";
	default:
		return "O_RDWR";
	}
}

int mig_qmp_fdset_dup(MigQmpServer *s, gint64 id, int flags, GError **err)
{
	int want = flags & (O_ACCMODE | O_DIRECT), fd = -1, e = 0;
	bool found;
	guint at;

	g_mutex_lock(&s->lock);
	at = fdset_index_locked(s, id, &found);
	if (found) {
		QmpFdset *set = s->fdsets->pdata[at];

		/* the newest first, as QEMU's list; access mode and O_DIRECT as QEMU 9.1 match */
		for (guint i = set->fds->len; i-- > 0;) {
			int have = fcntl(g_array_index(set->fds, QmpFdsetFd, i).fd, F_GETFL);

			if (have >= 0 && (have & (O_ACCMODE | O_DIRECT)) == want) {
				fd = fcntl(g_array_index(set->fds, QmpFdsetFd, i).fd, F_DUPFD_CLOEXEC, 0);
				e = fd < 0 ? errno : 0;
				break;
			}
		}
	}
	g_mutex_unlock(&s->lock);
	if (!found)
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Failed to find fdset /dev/fdset/%" G_GINT64_FORMAT, id);
	else if (fd < 0 && e)
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Failed to dup() a descriptor of /dev/fdset/%" G_GINT64_FORMAT ": %s",
			    id, g_strerror(e));
	else if (fd < 0)
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    "Failed to find file descriptor with matching flags in /dev/fdset/%" G_GINT64_FORMAT
			    ": it has none opened %s%s (add-fd one)", id, accmode_str(flags),
			    flags & O_DIRECT ? " with O_DIRECT" : " without O_DIRECT");
	return fd;
}

int mig_qmp_take_fd(MigQmpServer *s, const char *name, GError **err)
{
	int fd = steal_named_fd(s, *cur_slot(s), name);

	if (fd < 0)
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "File descriptor named '%s' has not been found", name);
	return fd;
}

static void command_free(gpointer p)
{
	QmpCommand *cmd = p;

	g_free(cmd->name);
	g_free(cmd);
}

static void add_command(MigQmpServer *s, const char *name, MigQmpHandler fn, gpointer opaque)
{
	QmpCommand *cmd = g_hash_table_lookup(s->by_name, name);

	if (!cmd) {
		cmd = g_new0(QmpCommand, 1);
		cmd->name = g_strdup(name);
		g_ptr_array_add(s->commands, cmd);
		g_hash_table_insert(s->by_name, cmd->name, cmd);
	}
	cmd->fn = fn;
	cmd->opaque = opaque;
	cmd->allow_oob = g_strv_contains(qmp_oob_commands, name);
}

/* {"qemu": {"major", "minor", "micro"}, "package"}: query-version's reply and the
 * greeting's "version". */
static void add_version(JsonBuilder *b, const MigQmpVersion *v)
{
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "qemu");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "major");
	json_builder_add_int_value(b, v->major);
	json_builder_set_member_name(b, "minor");
	json_builder_add_int_value(b, v->minor);
	json_builder_set_member_name(b, "micro");
	json_builder_add_int_value(b, v->micro);
	json_builder_end_object(b);
	json_builder_set_member_name(b, "package");
	json_builder_add_string_value(b, v->package ? v->package : "");
	json_builder_end_object(b);
}

JsonNode *mig_qmp_version_json(const MigQmpVersion *v)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	add_version(b, v);
	return json_builder_get_root(b);
}

static char *build_greeting(const MigQmpVersion *v, gsize *len)
{
	static const MigQmpVersion none = { 0, 0, 0, "" };
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	GString *msg;

	if (!v)
		v = &none;
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "QMP");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "version");
	add_version(b, v);
	json_builder_set_member_name(b, "capabilities");
	json_builder_begin_array(b);
	json_builder_add_string_value(b, "oob");
	json_builder_end_array(b);
	json_builder_end_object(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	msg = serialize(root);
	*len = msg->len;
	return g_string_free(msg, FALSE);
}

/* Binds path, first removing a leftover socket from a previous run; a path that is
 * live (someone accepts on it) or is not a socket is left alone and reported. */
static int listen_unix(const char *path, GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
			    "QMP socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (probe < 0)
			goto fail;
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			close(fd);
			g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
				    "QMP socket %s is in use by another server", path);
			return -1;
		}
		e = errno;
		close(probe);
		if (e == ECONNREFUSED)
			unlink(path);
	}
	/* owner only, whatever the umask: QMP runs migrations, stops and starts the guest.
	 * Set between bind and listen, so nobody connects while it is looser. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0)
		goto fail;
	return fd;

fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "QMP socket %s: %s", path,
		    g_strerror(e));
	return -1;
}

MigQmpServer *mig_qmp_server_new(const char *unix_path, const MigQmpVersion *version,
				 GError **err)
{
	MigQmpServer *s;
	int lfd, wfd;

	g_return_val_if_fail(unix_path != NULL, NULL);
	if (g_str_has_prefix(unix_path, "unix:"))
		unix_path += strlen("unix:");

	lfd = listen_unix(unix_path, err);
	if (lfd < 0)
		return NULL;
	wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wfd < 0) {
		int e = errno;

		close(lfd);
		unlink(unix_path);
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "eventfd: %s",
			    g_strerror(e));
		return NULL;
	}

	s = g_new0(MigQmpServer, 1);
	s->listen_fd = lfd;
	s->wake_fd = wfd;
	s->path = g_strdup(unix_path);
	s->greeting = build_greeting(version, &s->greeting_len);
	s->commands = g_ptr_array_new_with_free_func(command_free);
	s->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	s->clients = g_ptr_array_new_with_free_func(client_unref);
	s->fdsets = g_ptr_array_new_with_free_func(fdset_free);
	s->max_clients = MIG_QMP_MAX_CLIENTS_DEFAULT;
	g_mutex_init(&s->lock);
	g_mutex_init(&s->qlock);
	g_cond_init(&s->qcond);
	g_queue_init(&s->queue);

	add_command(s, "qmp_capabilities", NULL, NULL);
	add_command(s, "query-commands", cmd_query_commands, s);
	add_command(s, "getfd", cmd_getfd, s);
	add_command(s, "closefd", cmd_closefd, s);
	add_command(s, "add-fd", cmd_add_fd, s);
	add_command(s, "remove-fd", cmd_remove_fd, s);
	add_command(s, "query-fdsets", cmd_query_fdsets, s);
	return s;
}

void mig_qmp_set_max_clients(MigQmpServer *s, guint n)
{
	g_return_if_fail(s != NULL && n >= 1 && n <= MIG_QMP_MAX_CLIENTS_LIMIT);
	s->max_clients = n;
}

void mig_qmp_register(MigQmpServer *s, const char *name, MigQmpHandler fn, gpointer opaque)
{
	g_return_if_fail(s != NULL && name != NULL && fn != NULL);
	/* Its semantics are the protocol's own; a handler could not implement them. */
	g_return_if_fail(strcmp(name, "qmp_capabilities") != 0);
	add_command(s, name, fn, opaque);
}

JsonNode *mig_qmp_command_list(MigQmpServer *s)
{
	JsonArray *a = json_array_sized_new(s->commands->len);

	for (guint i = 0; i < s->commands->len; i++) {
		QmpCommand *cmd = s->commands->pdata[i];
		JsonObject *o = json_object_new();

		json_object_set_string_member(o, "name", cmd->name);
		json_array_add_object_element(a, o);
	}
	return json_node_init_array(json_node_alloc(), a);
}

/* Fills pfds with the listener and wake fd (unless only_output) followed by one entry
 * per client, in s->clients order; returns how many clients are polled. A client whose
 * request queue is full is not polled for input: what it sends waits in the socket,
 * as QEMU suspends such a monitor. */
static guint build_pollfds(MigQmpServer *s, GArray *pfds, bool only_output)
{
	guint n = 0;

	g_array_set_size(pfds, 0);
	if (!only_output) {
		/* fd -1 is skipped by poll() but keeps the indices fixed. */
		struct pollfd l = { .fd = s->accept_backoff ? -1 : s->listen_fd, .events = POLLIN };
		struct pollfd w = { .fd = s->wake_fd, .events = POLLIN };

		g_array_append_val(pfds, l);
		g_array_append_val(pfds, w);
	}
	for (guint i = 0; i < s->clients->len; i++) {
		QmpClient *c = s->clients->pdata[i];
		bool input = !only_output && client_wants_input(s, c);
		struct pollfd p = { .fd = c->fd };

		if (input)
			p.events |= POLLIN;
		g_mutex_lock(&s->lock);
		if (client_has_output_locked(c))
			p.events |= POLLOUT;
		g_mutex_unlock(&s->lock);
		/* poll() skips negative fds, which keeps the indices aligned. A hang-up
		 * is reported whatever the events; while input is held back it would
		 * wake us in a loop, so such a client waits unpolled for its room. */
		if (!p.events || (!input && c->hup))
			p.fd = -1;
		g_array_append_val(pfds, p);
		n += p.fd >= 0 ? 1 : 0;
	}
	return n;
}

/* After a stop, give queued replies (the "quit" answer above all) a bounded
 * chance to reach their clients; a client that does not read cannot hold us. */
static void final_flush(MigQmpServer *s)
{
	g_autoptr(GArray) pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
	gint64 deadline = g_get_monotonic_time() + QMP_STOP_FLUSH_MS * G_TIME_SPAN_MILLISECOND;

	for (;;) {
		gint64 left;

		flush_all(s);
		sweep_dead(s);
		if (!build_pollfds(s, pfds, true))
			return;
		left = deadline - g_get_monotonic_time();
		if (left <= 0)
			return;
		if (poll((struct pollfd *)pfds->data, pfds->len,
			 (int)((left + 999) / G_TIME_SPAN_MILLISECOND)) < 0 && errno != EINTR)
			return;
	}
}

/* After a stop: the dispatcher takes no more requests; the one it runs (a "quit"
 * above all) gets a bounded time to finish and queue its reply. */
static bool drain_dispatcher(MigQmpServer *s)
{
	gint64 deadline = g_get_monotonic_time() + QMP_STOP_DRAIN_MS * G_TIME_SPAN_MILLISECOND;
	bool done;

	g_mutex_lock(&s->qlock);
	s->dispatch_quit = true;
	g_cond_broadcast(&s->qcond);
	while (!s->dispatch_done && g_cond_wait_until(&s->qcond, &s->qlock, deadline))
		;
	done = s->dispatch_done;
	g_mutex_unlock(&s->qlock);
	if (!done)
		g_warning("qmp: a command is still running %d ms after the stop; leaving it",
			  QMP_STOP_DRAIN_MS);
	return done;
}

/* One round of the reader's loop: waits for the listener, the wake-up or a client,
 * then reads, accepts, flushes and sweeps. FALSE when poll failed. */
static bool serve_once(MigQmpServer *s, GArray *pfds)
{
	struct pollfd *p;

	build_pollfds(s, pfds, false);
	if (poll((struct pollfd *)pfds->data, pfds->len, s->accept_backoff ? QMP_ACCEPT_BACKOFF_MS : -1) < 0) {
		if (errno == EINTR)
			return true;
		g_warning("qmp: poll: %s", g_strerror(errno));
		return false;
	}
	p = (struct pollfd *)pfds->data;
	if (p[1].revents) {
		uint64_t cnt;

		/* Only a wake-up: the work is whatever it left queued. */
		if (read(s->wake_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			g_debug("qmp: eventfd read: %s", g_strerror(errno));
	}
	/* Clients are only added below and removed in sweep_dead, both in this
	 * thread, so p[2 + i] still matches s->clients[i] here. */
	for (guint i = 0; i + 2 < pfds->len && !g_atomic_int_get(&s->stopping); i++) {
		QmpClient *c = s->clients->pdata[i];
		short ev = p[2 + i].revents;

		if (!(p[2 + i].events & POLLIN)) {
			if (ev & (POLLHUP | POLLERR))
				c->hup = true;
			client_resume(s, c);
		} else if (ev & (POLLIN | POLLHUP | POLLERR)) {
			client_read(s, c);
		}
	}
	if ((p[0].revents & POLLIN) || s->accept_backoff)
		accept_clients(s);
	flush_all(s);
	sweep_dead(s);
	return true;
}

gboolean mig_qmp_server_run(MigQmpServer *s)
{
	g_autoptr(GArray) pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
	bool quiet;

	g_return_val_if_fail(s != NULL, TRUE);
	s->dispatcher = g_thread_new("qmp/dispatch", dispatcher_main, s);
	while (!g_atomic_int_get(&s->stopping) && serve_once(s, pfds))
		;
	quiet = drain_dispatcher(s);
	final_flush(s);
	return quiet;
}

void mig_qmp_server_run_inline(MigQmpServer *s)
{
	g_autoptr(GArray) pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));

	s->inline_dispatch = true;
	accept_clients(s);
	while (s->clients->len && !g_atomic_int_get(&s->stopping) && serve_once(s, pfds))
		;
	s->inline_dispatch = false;
}

void mig_qmp_server_stop(MigQmpServer *s)
{
	g_return_if_fail(s != NULL);
	g_atomic_int_set(&s->stopping, 1);
	wake(s);
}

void mig_qmp_emit_event(MigQmpServer *s, const char *name, JsonNode *data)
{
	g_autoptr(JsonObject) obj = json_object_new();
	g_autoptr(GString) msg = NULL;
	JsonObject *ts = json_object_new();
	gint64 now = g_get_real_time();
	bool queued = false;

	g_return_if_fail(s != NULL && name != NULL);
	json_object_set_string_member(obj, "event", name);
	if (data)
		json_object_set_member(obj, "data", data);
	else
		json_object_set_object_member(obj, "data", json_object_new());
	json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
	json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
	json_object_set_object_member(obj, "timestamp", ts);
	/* Serialised once, outside the lock, however many clients there are. */
	msg = serialize_object(obj);

	g_mutex_lock(&s->lock);
	for (guint i = 0; i < s->clients->len; i++) {
		QmpClient *c = s->clients->pdata[i];

		if (c->command_mode && !client_is_dead(c)) {
			client_append_locked(c, msg->str, msg->len);
			queued = true;
		}
	}
	g_mutex_unlock(&s->lock);
	if (queued)
		wake(s);
}

void mig_qmp_server_free(MigQmpServer *s)
{
	if (!s)
		return;
	if (s->dispatcher) {
		/* run() returned: the dispatcher was told to quit; a handler it may still
		 * run is the caller's to have ended (run's return value) */
		g_thread_join(s->dispatcher);
	}
	g_queue_clear_full(&s->queue, (GDestroyNotify)request_free);
	g_ptr_array_unref(s->clients);
	g_ptr_array_unref(s->fdsets);
	close(s->listen_fd);
	close(s->wake_fd);
	unlink(s->path);
	g_free(s->path);
	g_free(s->greeting);
	g_hash_table_unref(s->by_name);
	g_ptr_array_unref(s->commands);
	g_mutex_clear(&s->lock);
	g_mutex_clear(&s->qlock);
	g_cond_clear(&s->qcond);
	g_free(s);
}
