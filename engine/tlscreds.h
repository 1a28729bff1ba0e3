/* The session's objects (TLS credentials, authorization lists) and what a migration
 * takes from them: an SSL_CTX per side, the authz decision, and what each channel
 * negotiated (query-migrate's x-tls). <mig/object.h> is the public half. */
#pragma once
#include "engine/session_int.h"
#include <mig/object.h>

typedef struct ssl_ctx_st SSL_CTX;

/* The TLS settings one migration runs with, taken at its start. */
typedef struct MigTlsRun {
	SSL_CTX *ctx;          /* NULL: plain channels */
	char *host;            /* client: the name the server's certificate must carry ("": none) */
	char *authz;           /* server: the authz object's id ("": any verified peer) */
} MigTlsRun;

/* Fills run from p's tls-creds (endpoint client or server), tls-hostname (else
 * uri_host) and tls-authz; checks that the objects exist and fit. Call with s->lock
 * held. FALSE with err naming the object and what is wrong. */
gboolean mig_tls_run_init(MigSession *s, const MigParams *p, gboolean server, const char *uri_host,
			  MigTlsRun *run, GError **err);
void mig_tls_run_clear(MigTlsRun *run);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MigTlsRun, mig_tls_run_clear)

/* Whether the authz object id allows identity (a certificate's DN, a PSK username).
 * Call without s->lock. FALSE with a reason in why (static text or formatted into
 * buf). */
gboolean mig_tls_authz_allows(MigSession *s, const char *authz, const char *identity, char *why, gsize len);

/* Records what the channel on fd negotiated, for x-tls (either side); a channel
 * re-opened by a postcopy recovery replaces its entry. */
void mig_tls_note_channel(MigSession *s, int fd, int type, guint index);
/* Forgets the last migration's channels (a new one begins). Call with s->lock held. */
void mig_tls_forget_channels_locked(MigSession *s);
/* query-migrate's x-tls, when channels are encrypted. Call with s->lock held. */
void mig_tls_query_locked(MigSession *s, MigValue *extra);

void mig_objects_free(MigSession *s);
