/* A QMP server (QEMU Machine Protocol) on a unix socket: greeting, capabilities
 * negotiation, command dispatch, out-of-band execution, events. It knows the protocol,
 * not the commands: the host registers handlers. The caller of mig_qmp_server_run reads
 * every client and runs their "exec-oob" requests; in-band commands run one at a time
 * on the server's thread qmp/dispatch, as QEMU's main loop runs them. Handlers are
 * called with no server lock held, from either thread; mig_qmp_emit_event may be called
 * from any thread. */
#pragma once
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct MigQmpServer MigQmpServer;

#define MIG_QMP_ERROR (mig_qmp_error_quark())
GQuark mig_qmp_error_quark(void);
typedef enum {
	MIG_QMP_ERROR_GENERIC,          /* "GenericError" */
	MIG_QMP_ERROR_COMMAND_NOT_FOUND,/* "CommandNotFound" */
	MIG_QMP_ERROR_DEVICE_NOT_FOUND, /* "DeviceNotFound" */
} MigQmpErrorCode;

/* A handler returns the "return" value (transfer full; NULL means {}), or NULL with *err
 * set. args is never NULL (an empty object when the client sent none). Any GError that
 * is not in MIG_QMP_ERROR is reported as GenericError with its message. */
typedef JsonNode *(*MigQmpHandler)(JsonObject *args, gpointer opaque, GError **err);

typedef struct MigQmpVersion {
	int major, minor, micro;
	const char *package;
} MigQmpVersion;

/* query-version's reply for this version (transfer full). */
JsonNode *mig_qmp_version_json(const MigQmpVersion *v);

MigQmpServer *mig_qmp_server_new(const char *unix_path, const MigQmpVersion *version, GError **err);
/* Clients connected at once; one more gets an error object instead of the greeting
 * and is disconnected. Each holds up to 1 MiB of input and 8 MiB of output, so the
 * number is what bounds QMP's memory; QEMU's users need one or two. Before
 * mig_qmp_server_run; 1 to MIG_QMP_MAX_CLIENTS_LIMIT. */
#define MIG_QMP_MAX_CLIENTS_DEFAULT 16u
#define MIG_QMP_MAX_CLIENTS_LIMIT 1024u
void mig_qmp_set_max_clients(MigQmpServer *s, guint n);
/* Before mig_qmp_server_run. The commands QEMU marks allow-oob (migrate-pause,
 * migrate-recover, yank, query-yank: a table in qmp.c) accept "exec-oob" and then run
 * in the reader: their handlers must return promptly whatever the guest or the peer do. */
void mig_qmp_register(MigQmpServer *s, const char *name, MigQmpHandler fn, gpointer opaque);

/* Serves until mig_qmp_server_stop() (from a handler, e.g. "quit", or any thread). The
 * command running then gets a bounded time to finish; replies queued are flushed
 * (bounded too) before returning. Returns FALSE if a handler was still running: the
 * server must then not be freed, as that handler uses it (and whatever the host gave
 * it); a host in that state exits instead. */
gboolean mig_qmp_server_run(MigQmpServer *s);
void mig_qmp_server_stop(MigQmpServer *s);
void mig_qmp_server_free(MigQmpServer *s);

/* Sends {"event":name,"data":data,"timestamp":{...}} to every client in command mode.
 * data is taken (transfer full) and may be NULL. Never blocks on a slow client. */
void mig_qmp_emit_event(MigQmpServer *s, const char *name, JsonNode *data);

/* The descriptor the client whose command runs now named with getfd (passed over the
 * socket with SCM_RIGHTS); the caller owns it. Only from inside a handler. -1 with
 * *err set when that client has no such name. */
int mig_qmp_take_fd(MigQmpServer *s, const char *name, GError **err);

/* file:/dev/fdset/N: a dup (close-on-exec) of the newest descriptor of fd set N (add-fd)
 * whose access mode and O_DIRECT are those of flags, as QEMU picks one. Any thread,
 * while the server is not freed. -1 with *err naming the set and what was wanted. */
int mig_qmp_fdset_dup(MigQmpServer *s, gint64 id, int flags, GError **err);

/* The names registered so far, for query-commands (array of {"name": ...}). */
JsonNode *mig_qmp_command_list(MigQmpServer *s);
