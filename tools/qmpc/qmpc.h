/* qmpc: mig's QMP client, shared by migctl and migbench. One unix-socket connection,
 * commands sent one at a time, every read and write bounded by a timeout in ms (-1:
 * none, for an interactive client). Events that arrive while a command waits for its
 * reply go to a callback, or are skipped. */
#pragma once
#include <glib.h>
#include <json-glib/json-glib.h>

#define QMPC_ERROR (qmpc_error_quark())
GQuark qmpc_error_quark(void);

typedef enum {
	QMPC_ERROR_NOT_READY,   /* nothing listens on the path yet: try again */
	QMPC_ERROR_IO,          /* socket error or the server closed the connection */
	QMPC_ERROR_TIMEOUT,
	QMPC_ERROR_PROTOCOL,    /* not QMP */
	QMPC_ERROR_COMMAND,     /* the server answered {"error":...}; the message is its desc */
} QmpcError;

typedef struct QmpClient QmpClient;
typedef void (*QmpcEventFn)(JsonObject *event, gpointer opaque);

/* Connects to PATH (or "unix:PATH"), reading nothing yet. */
QmpClient *qmpc_open(const char *path, GError **err);
/* Reads the greeting and runs qmp_capabilities, whose whole reply it returns (the
 * server may refuse it). migd greets only once its guest memory is allocated, which
 * --mem-prealloc makes take seconds: timeout_ms bounds that wait. */
JsonObject *qmpc_greet(QmpClient *c, int timeout_ms, GError **err);
/* qmpc_open and qmpc_greet, a refusal being an error. */
QmpClient *qmpc_connect(const char *path, int timeout_ms, GError **err);

/* Runs a command and returns its whole reply, "return" or "error". args_json is the
 * "arguments" object as JSON text, or NULL. */
JsonObject *qmpc_call(QmpClient *c, const char *command, const char *args_json, int timeout_ms,
		      QmpcEventFn on_event, gpointer opaque, GError **err);
/* qmpc_call in two halves, for a caller that must not read while the command runs:
 * qmpc_send returns the request's id (0 with err), qmpc_wait_reply reads up to its
 * reply (events to on_event). */
guint qmpc_send(QmpClient *c, const char *command, const char *args_json, int timeout_ms, GError **err);
JsonObject *qmpc_wait_reply(QmpClient *c, guint id, const char *command, int timeout_ms, QmpcEventFn on_event,
			    gpointer opaque, GError **err);
/* qmpc_call for the "return" value (free with json_node_unref); an "error" reply is a
 * QMPC_ERROR_COMMAND. Events are skipped. */
JsonNode *qmpc_execute(QmpClient *c, const char *command, const char *args_json, int timeout_ms, GError **err);
/* The next message from the server (an event, between commands), or NULL with err:
 * QMPC_ERROR_TIMEOUT when none came in timeout_ms. */
JsonObject *qmpc_read(QmpClient *c, int timeout_ms, GError **err);

void qmpc_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmpc_free)
