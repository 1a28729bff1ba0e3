/* Where the engine's messages go. The engine never writes to stderr itself: an embedder
 * routes messages into its own log with mig_session_set_log_cb. Without a callback
 * they go to g_log() in the "mig" domain: errors and warnings as G_LOG_LEVEL_MESSAGE
 * (printed by GLib's default handler, never fatal: a failed migration is reported
 * through its status and error-desc, not by aborting a program that runs with
 * fatal warnings), info and debug as G_LOG_LEVEL_INFO / DEBUG (shown with
 * G_MESSAGES_DEBUG=mig). */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;

typedef enum MigLogLevel {
	MIG_LOG_ERROR,     /* the migration failed */
	MIG_LOG_WARNING,   /* something was refused or degraded; the migration goes on */
	MIG_LOG_INFO,
	MIG_LOG_DEBUG,
} MigLogLevel;

/* session is the name given to mig_session_new; msg has no trailing newline. Called
 * from the engine's threads, possibly several at once and with the session's lock
 * held: the callback must not call back into the session. */
typedef void (*MigLogFn)(gpointer opaque, MigLogLevel level, const char *session, const char *msg);

/* Set before migrate or incoming; fn NULL restores the default. */
void mig_session_set_log_cb(MigSession *s, MigLogFn fn, gpointer opaque);
const char *mig_log_level_str(MigLogLevel level);

MIG_END_PUBLIC
