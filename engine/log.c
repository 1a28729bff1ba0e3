/* The session's log: the embedder's callback, or g_log in the "mig" domain. */
#include "engine/session_int.h"
#include <stdarg.h>

const char *mig_log_level_str(MigLogLevel level)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	return (guint)level < G_N_ELEMENTS(names) ? names[level] : "?";
}

void mig_session_set_log_cb(MigSession *s, MigLogFn fn, gpointer opaque)
{
	g_mutex_lock(&s->lock);
	s->log_fn = fn;
	s->log_opaque = opaque;
	g_mutex_unlock(&s->lock);
}

void mig_log(MigSession *s, MigLogLevel level, const char *fmt, ...)
{
	static const GLogLevelFlags glevel[] = {
		G_LOG_LEVEL_MESSAGE, G_LOG_LEVEL_MESSAGE, G_LOG_LEVEL_INFO, G_LOG_LEVEL_DEBUG,
	};
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	/* read without the lock: callers may hold it, and the callback is set before use */
	if (s->log_fn)
		s->log_fn(s->log_opaque, level, s->name, msg);
	else
		g_log("mig", glevel[MIN((guint)level, G_N_ELEMENTS(glevel) - 1)], "%s: %s", s->name, msg);
}
