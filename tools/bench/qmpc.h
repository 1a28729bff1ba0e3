/* A tiny synchronous QMP client for migbench: one unix-socket connection, commands sent
 * one at a time, every read and write bounded by a deadline. Events are skipped. */
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

/* One connection attempt: connects, reads the greeting and negotiates capabilities,
 * waiting at most timeout_ms for the greeting (migd sends it only once its guest
 * memory is allocated, which --mem-prealloc makes take seconds). */
QmpClient *qmpc_connect(const char *path, int timeout_ms, GError **err);
/* Runs a command. args_json is the "arguments" object as JSON text, or NULL. Returns
 * the reply's "return" value (free with json_node_unref) or NULL with err set. */
JsonNode *qmpc_execute(QmpClient *c, const char *command, const char *args_json,
		       int timeout_ms, GError **err);
void qmpc_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmpc_free)
