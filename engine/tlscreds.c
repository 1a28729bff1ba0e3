/* TLS credentials and authorization objects, QEMU's: tls-creds-x509 reads ca-cert.pem,
 * server-cert.pem, server-key.pem, client-cert.pem and client-key.pem from its dir;
 * tls-creds-psk reads keys.psk (lines "username:hexkey"); authz-simple allows one
 * identity, authz-list walks its rules. Each credentials object becomes an SSL_CTX
 * when it is created, so a bad file is reported at object-add, not mid-migration. */
#include "engine/tlscreds.h"
#include "channels/tls.h"
#include "channels/wire.h"
#include "channels/hello.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

typedef enum { K_X509, K_PSK, K_AUTHZ_SIMPLE, K_AUTHZ_LIST } ObjKind;

typedef struct AuthzRule {
	char *match;
	gboolean allow, glob;
} AuthzRule;

typedef struct MigObject {
	ObjKind kind;
	char *id;
	gboolean server;        /* creds: endpoint=server */
	SSL_CTX *ctx;           /* creds */
	char *identity;         /* authz-simple */
	GArray *rules;          /* authz-list: AuthzRule */
	gboolean allow_default; /* authz-list: policy */
} MigObject;

/* What one channel negotiated. */
typedef struct TlsChan {
	int type;
	guint index;
	MigTlsInfo info;
} TlsChan;

static const char *const kind_names[] = { "tls-creds-x509", "tls-creds-psk", "authz-simple", "authz-list" };

static void rule_clear(gpointer p)
{
	g_free(((AuthzRule *)p)->match);
}

static void object_free(MigObject *o)
{
	if (!o)
		return;
	SSL_CTX_free(o->ctx);
	g_free(o->identity);
	if (o->rules)
		g_array_unref(o->rules);
	g_free(o->id);
	g_free(o);
}

static MigObject *find_locked(MigSession *s, const char *id)
{
	for (guint i = 0; s->objects && i < s->objects->len; i++) {
		MigObject *o = g_ptr_array_index(s->objects, i);

		if (!strcmp(o->id, id))
			return o;
	}
	return NULL;
}

/* ---- properties ---- */

static const char *prop(const char *const *props, const char *key)
{
	for (guint i = 0; props && props[i] && props[i + 1]; i += 2)
		if (!strcmp(props[i], key))
			return props[i + 1];
	return NULL;
}

static gboolean prop_bool(const char *type, const char *id, const char *key, const char *v, gboolean dflt,
			  gboolean *out, GError **err)
{
	if (!v) {
		*out = dflt;
		return TRUE;
	}
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = TRUE;
		return TRUE;
	}
	if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = FALSE;
		return TRUE;
	}
	g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': property '%s' expects on or off, not '%s'", type, id, key, v);
	return FALSE;
}

/* Every key must be one the type knows (rules.N.* for authz-list). */
static gboolean props_known(const char *type, const char *id, const char *const *props, const char *const *known,
			    GError **err)
{
	for (guint i = 0; props && props[i]; i += 2) {
		if (!props[i + 1]) {
			g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': property '%s' has no value", type, id, props[i]);
			return FALSE;
		}
		if (!g_strv_contains(known, props[i]) && !(g_str_has_prefix(props[i], "rules.") && g_strv_contains(known, "rules"))) {
			g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': unknown property '%s'", type, id, props[i]);
			return FALSE;
		}
	}
	return TRUE;
}

/* ---- credentials ---- */

static int openssl_errno_text(char *buf, gsize len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	g_strlcpy(buf, r ? r : "unreadable", len);
	ERR_clear_error();
	return 0;
}

/* The file's path if it exists, else NULL with err (when required). */
static char *creds_file(const char *type, const char *id, const char *dir, const char *name, gboolean required,
			GError **err)
{
	char *path = g_build_filename(dir, name, NULL);

	if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
		return path;
	if (required)
		g_set_error(err, MIG_ERROR, ENOENT, "%s '%s': cannot read '%s': no such file", type, id, path);
	g_free(path);
	return NULL;
}

/* QEMU refuses credentials whose own certificate is out of date (unless
 * sanity-check=off): the peer would refuse them anyway, with a less helpful message. */
static gboolean cert_times_ok(const char *type, const char *id, const char *path, GError **err)
{
	FILE *f = fopen(path, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	gboolean ok = FALSE;

	if (f)
		fclose(f);
	if (!x) {
		char why[128];

		openssl_errno_text(why, sizeof(why));
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': '%s' is not a PEM certificate (%s)", type, id, path, why);
		return FALSE;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': the certificate '%s' has expired", type, id, path);
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': the certificate '%s' is not valid yet", type, id, path);
	else
		ok = TRUE;
	X509_free(x);
	return ok;
}

static SSL_CTX *ctx_new(gboolean server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	/* TLS 1.3 only: every peer is mig, and 1.3 has no renegotiation, whose mid-stream
	 * handshakes a channel read and written by two threads could not survive */
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* resumption tickets are of no use to channels that each live once */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (mig_tls_kernel_has_ulp())
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	return ctx;
}

static SSL_CTX *x509_ctx(const char *id, const char *dir, gboolean server, gboolean verify, gboolean sanity,
			 GError **err)
{
	const char *type = kind_names[K_X509];
	g_autofree char *ca = creds_file(type, id, dir, "ca-cert.pem", verify, err);
	g_autofree char *cert = NULL, *key = NULL;
	SSL_CTX *ctx;
	char why[128];

	if (verify && !ca)
		return NULL;
	cert = creds_file(type, id, dir, server ? "server-cert.pem" : "client-cert.pem", server, err);
	if (server && !cert)
		return NULL;
	key = creds_file(type, id, dir, server ? "server-key.pem" : "client-key.pem", cert != NULL, err);
	if (cert && !key)
		return NULL;
	if (cert && sanity && !cert_times_ok(type, id, cert, err))
		return NULL;
	ctx = ctx_new(server);
	if (!ctx) {
		g_set_error(err, MIG_ERROR, ENOMEM, "%s '%s': cannot create a TLS context", type, id);
		return NULL;
	}
	if (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		openssl_errno_text(why, sizeof(why));
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': cannot load the CA '%s': %s", type, id, ca, why);
		goto fail;
	}
	if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_errno_text(why, sizeof(why));
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': cannot load the certificate '%s': %s", type, id, cert, why);
		goto fail;
	}
	if (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_errno_text(why, sizeof(why));
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': cannot load the private key '%s': %s", type, id, key, why);
		goto fail;
	}
	if (key && SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': the private key '%s' does not match the certificate '%s'",
			    type, id, key, cert);
		goto fail;
	}
	if (verify)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- PSK: keys.psk is read at each handshake, as QEMU does, so keys can rotate ---- */

typedef struct PskConf {
	char *file;
	char *username;   /* client */
} PskConf;

static void psk_conf_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	PskConf *c = ptr;

	if (c) {
		g_free(c->file);
		g_free(c->username);
		g_free(c);
	}
}

static int psk_ex_index(void)
{
	static gsize idx;

	if (g_once_init_enter(&idx)) {
		int i = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, psk_conf_free);

		g_once_init_leave(&idx, (gsize)i + 1);
	}
	return (int)idx - 1;
}

/* The key of username in the file: its length, or 0 when absent or malformed. */
static unsigned int psk_lookup(const char *file, const char *username, unsigned char *out, unsigned int max)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents(file, &text, NULL, NULL))
		return 0;
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		char *colon = strchr(lines[i], ':');
		gsize n = 0;

		g_strchomp(lines[i]);
		if (!colon || (gsize)(colon - lines[i]) != strlen(username) || strncmp(lines[i], username, strlen(username)))
			continue;
		n = strlen(colon + 1) / 2;
		if (!n || n > max || strlen(colon + 1) != 2 * n)
			return 0;
		for (gsize k = 0; k < n; k++) {
			int hi = g_ascii_xdigit_value(colon[1 + 2 * k]), lo = g_ascii_xdigit_value(colon[2 + 2 * k]);

			if (hi < 0 || lo < 0)
				return 0;
			out[k] = (unsigned char)(hi << 4 | lo);
		}
		return (unsigned int)n;
	}
	return 0;
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max)
{
	PskConf *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_ex_index());
	unsigned int n = c && identity ? psk_lookup(c->file, identity, psk, max) : 0;

	if (n) {   /* the peer's identity for tls-authz (channels/tls.h) */
		free(SSL_get_app_data(ssl));
		SSL_set_app_data(ssl, strdup(identity));
	}
	return n;
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_id,
				  unsigned char *psk, unsigned int max)
{
	PskConf *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_ex_index());

	if (!c || strlen(c->username) + 1 > max_id)
		return 0;
	strcpy(identity, c->username);
	return psk_lookup(c->file, c->username, psk, max);
}

static SSL_CTX *psk_ctx(const char *id, const char *dir, gboolean server, const char *username, GError **err)
{
	const char *type = kind_names[K_PSK];
	g_autofree char *file = creds_file(type, id, dir, "keys.psk", TRUE, err);
	unsigned char key[256];
	PskConf *c;
	SSL_CTX *ctx;

	if (!file)
		return NULL;
	if (!server && !psk_lookup(file, username, key, sizeof(key))) {
		g_set_error(err, MIG_ERROR, EINVAL, "%s '%s': '%s' has no valid key for username '%s' (lines are username:hexkey)",
			    type, id, file, username);
		return NULL;
	}
	ctx = ctx_new(server);
	if (!ctx) {
		g_set_error(err, MIG_ERROR, ENOMEM, "%s '%s': cannot create a TLS context", type, id);
		return NULL;
	}
	c = g_new0(PskConf, 1);
	c->file = g_strdup(file);
	c->username = g_strdup(username);
	SSL_CTX_set_ex_data(ctx, psk_ex_index(), c);
	if (server)
		SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
	else
		SSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* ---- authz ---- */

static gboolean authz_list_rules(const char *id, const char *const *props, MigObject *o, GError **err)
{
	const char *type = kind_names[K_AUTHZ_LIST];

	o->rules = g_array_new(FALSE, TRUE, sizeof(AuthzRule));
	g_array_set_clear_func(o->rules, rule_clear);
	for (guint n = 0;; n++) {
		g_autofree char *km = g_strdup_printf("rules.%u.match", n);
		g_autofree char *kp = g_strdup_printf("rules.%u.policy", n);
		g_autofree char *kf = g_strdup_printf("rules.%u.format", n);
		const char *m = prop(props, km), *pol = prop(props, kp), *fmt = prop(props, kf);
		AuthzRule r = { 0 };

		if (!m && !pol && !fmt)
			break;
		if (!m || !pol || (strcmp(pol, "allow") && strcmp(pol, "deny")) ||
		    (fmt && strcmp(fmt, "exact") && strcmp(fmt, "glob"))) {
			g_set_error(err, MIG_ERROR, EINVAL,
				    "%s '%s': rule %u needs match, policy allow|deny and, optionally, format exact|glob",
				    type, id, n);
			return FALSE;
		}
		r.match = g_strdup(m);
		r.allow = !strcmp(pol, "allow");
		r.glob = fmt && !strcmp(fmt, "glob");
		g_array_append_val(o->rules, r);
	}
	return TRUE;
}

gboolean mig_tls_authz_allows(MigSession *s, const char *authz, const char *identity, char *why, gsize len)
{
	gboolean ok = FALSE;
	MigObject *o;

	g_mutex_lock(&s->lock);
	o = find_locked(s, authz);
	if (!o || (o->kind != K_AUTHZ_SIMPLE && o->kind != K_AUTHZ_LIST)) {
		g_snprintf(why, len, "tls-authz '%s' is not an authz object any more", authz);
	} else if (!*identity) {
		g_snprintf(why, len, "the client presented no identity (certificate) and tls-authz '%s' requires one", authz);
	} else if (o->kind == K_AUTHZ_SIMPLE) {
		ok = !strcmp(o->identity, identity);
	} else {
		guint i;

		for (i = 0; i < o->rules->len; i++) {
			AuthzRule *r = &g_array_index(o->rules, AuthzRule, i);

			if (r->glob ? g_pattern_match_simple(r->match, identity) : !strcmp(r->match, identity))
				break;
		}
		ok = i < o->rules->len ? g_array_index(o->rules, AuthzRule, i).allow : o->allow_default;
	}
	if (o && !ok && *identity)
		g_snprintf(why, len, "TLS client identity '%s' is not allowed by tls-authz '%s'", identity, authz);
	g_mutex_unlock(&s->lock);
	return ok;
}

/* ---- objects ---- */

gboolean mig_session_object_add(MigSession *s, const char *qom_type, const char *id, const char *const *props,
				GError **err)
{
	static const char *const x509_keys[] = { "dir", "endpoint", "verify-peer", "sanity-check", "priority", NULL };
	static const char *const psk_keys[] = { "dir", "endpoint", "username", "priority", NULL };
	static const char *const simple_keys[] = { "identity", NULL };
	static const char *const list_keys[] = { "policy", "rules", NULL };
	g_autoptr(GError) e = NULL;
	MigObject *o;
	int kind = -1;

	for (guint i = 0; qom_type && i < G_N_ELEMENTS(kind_names); i++)
		if (!strcmp(qom_type, kind_names[i]))
			kind = (int)i;
	if (kind < 0) {
		g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for 'qom-type', expected: one of "
			    "tls-creds-x509, tls-creds-psk, authz-simple, authz-list");
		return FALSE;
	}
	if (!id || !*id || !g_ascii_isalpha(id[0])) {
		g_set_error(err, MIG_ERROR, EINVAL, "%s: an id starting with a letter is required", qom_type);
		return FALSE;
	}
	o = g_new0(MigObject, 1);
	o->kind = (ObjKind)kind;
	o->id = g_strdup(id);
	switch (o->kind) {
	case K_X509:
	case K_PSK: {
		const char *dir = prop(props, "dir"), *ep = prop(props, "endpoint");
		gboolean verify = TRUE;

		if (!props_known(qom_type, id, props, kind == K_X509 ? x509_keys : psk_keys, &e))
			break;
		if (!dir) {
			g_set_error(&e, MIG_ERROR, EINVAL, "%s '%s': property 'dir' is required", qom_type, id);
			break;
		}
		if (ep && strcmp(ep, "server") && strcmp(ep, "client")) {
			g_set_error(&e, MIG_ERROR, EINVAL, "%s '%s': endpoint must be server or client, not '%s'", qom_type, id, ep);
			break;
		}
		o->server = ep && !strcmp(ep, "server");
		if (kind == K_X509) {
			gboolean sanity = TRUE;

			if (prop_bool(qom_type, id, "verify-peer", prop(props, "verify-peer"), TRUE, &verify, &e) &&
			    prop_bool(qom_type, id, "sanity-check", prop(props, "sanity-check"), TRUE, &sanity, &e))
				o->ctx = x509_ctx(id, dir, o->server, verify, sanity, &e);
		} else {
			const char *user = prop(props, "username");

			o->ctx = psk_ctx(id, dir, o->server, user ? user : "qemu", &e);
		}
		break;
	}
	case K_AUTHZ_SIMPLE:
		if (!props_known(qom_type, id, props, simple_keys, &e))
			break;
		if (!prop(props, "identity"))
			g_set_error(&e, MIG_ERROR, EINVAL, "%s '%s': property 'identity' is required", qom_type, id);
		else
			o->identity = g_strdup(prop(props, "identity"));
		break;
	case K_AUTHZ_LIST: {
		const char *pol = prop(props, "policy");

		if (!props_known(qom_type, id, props, list_keys, &e))
			break;
		if (pol && strcmp(pol, "allow") && strcmp(pol, "deny")) {
			g_set_error(&e, MIG_ERROR, EINVAL, "%s '%s': policy must be allow or deny", qom_type, id);
			break;
		}
		o->allow_default = pol && !strcmp(pol, "allow");
		authz_list_rules(id, props, o, &e);
		break;
	}
	}
	if (e) {
		object_free(o);
		g_propagate_error(err, g_steal_pointer(&e));
		return FALSE;
	}
	g_mutex_lock(&s->lock);
	if (find_locked(s, id)) {
		g_mutex_unlock(&s->lock);
		object_free(o);
		g_set_error(err, MIG_ERROR, EEXIST, "attempt to add duplicate property '%s' to object (type 'container')", id);
		return FALSE;
	}
	if (!s->objects)
		s->objects = g_ptr_array_new_with_free_func((GDestroyNotify)object_free);
	g_ptr_array_add(s->objects, o);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_session_object_del(MigSession *s, const char *id, GError **err)
{
	MigObject *o;

	g_mutex_lock(&s->lock);
	o = id ? find_locked(s, id) : NULL;
	if (o)
		g_ptr_array_remove(s->objects, o);
	g_mutex_unlock(&s->lock);
	if (!o)
		g_set_error(err, MIG_ERROR, ENOENT, "object '%s' not found", id ? id : "");
	return o != NULL;
}

void mig_objects_free(MigSession *s)
{
	if (s->objects)
		g_ptr_array_free(g_steal_pointer(&s->objects), TRUE);
	if (s->tls_chans)
		g_array_free(g_steal_pointer(&s->tls_chans), TRUE);
}

/* ---- a migration's TLS ---- */

gboolean mig_tls_run_init(MigSession *s, const MigParams *p, gboolean server, const char *uri_host,
			  MigTlsRun *run, GError **err)
{
	MigObject *o;

	memset(run, 0, sizeof(*run));
	if (!p->tls_creds || !*p->tls_creds)
		return TRUE;
	o = find_locked(s, p->tls_creds);
	if (!o || (o->kind != K_X509 && o->kind != K_PSK)) {
		g_set_error(err, MIG_ERROR, ENOENT, "No TLS credentials with id '%s'", p->tls_creds);
		return FALSE;
	}
	if (o->server != server) {
		g_set_error(err, MIG_ERROR, EINVAL, "Expecting TLS credentials with a %s endpoint, but '%s' has %s",
			    server ? "server" : "client", p->tls_creds, o->server ? "server" : "client");
		return FALSE;
	}
	if (server && p->tls_authz && *p->tls_authz) {
		MigObject *a = find_locked(s, p->tls_authz);

		if (!a || (a->kind != K_AUTHZ_SIMPLE && a->kind != K_AUTHZ_LIST)) {
			g_set_error(err, MIG_ERROR, ENOENT, "No authz object with id '%s' (tls-authz)", p->tls_authz);
			return FALSE;
		}
	}
	if (!server && o->kind == K_X509 && !(p->tls_hostname && *p->tls_hostname) && !(uri_host && *uri_host)) {
		g_set_error(err, MIG_ERROR, EINVAL, "tls-hostname is required for a migration to a unix: or fd: URI "
			    "with x509 credentials");
		return FALSE;
	}
	SSL_CTX_up_ref(o->ctx);
	run->ctx = o->ctx;
	run->host = g_strdup(o->kind == K_PSK ? "" : p->tls_hostname && *p->tls_hostname ? p->tls_hostname : uri_host);
	run->authz = g_strdup(server && p->tls_authz ? p->tls_authz : "");
	return TRUE;
}

void mig_tls_run_clear(MigTlsRun *run)
{
	SSL_CTX_free(run->ctx);
	g_free(run->host);
	g_free(run->authz);
	memset(run, 0, sizeof(*run));
}

void mig_tls_note_channel(MigSession *s, int fd, int type, guint index)
{
	MigTls *t = mig_tls_of(fd);
	TlsChan c = { .type = type, .index = index };

	if (!t)
		return;
	mig_tls_info(t, &c.info);
	g_mutex_lock(&s->lock);
	if (!s->tls_chans)
		s->tls_chans = g_array_new(FALSE, TRUE, sizeof(TlsChan));
	/* a channel re-opened by a postcopy recovery takes its predecessor's place */
	for (guint i = 0; i < s->tls_chans->len; i++) {
		TlsChan *old = &g_array_index(s->tls_chans, TlsChan, i);

		if (old->type == c.type && old->index == c.index) {
			*old = c;
			g_mutex_unlock(&s->lock);
			return;
		}
	}
	g_array_append_val(s->tls_chans, c);
	g_mutex_unlock(&s->lock);
}

void mig_tls_forget_channels_locked(MigSession *s)
{
	if (s->tls_chans)
		g_array_set_size(s->tls_chans, 0);
}

void mig_tls_query_locked(MigSession *s, MigValue *extra)
{
	MigValue *x, *arr;
	gboolean all_ktls = TRUE;

	if (!s->tls_chans || !s->tls_chans->len)
		return;
	for (guint i = 0; i < s->tls_chans->len; i++) {
		TlsChan *c = &g_array_index(s->tls_chans, TlsChan, i);

		all_ktls &= c->info.ktls_send && c->info.ktls_recv;
	}
	x = mig_value_add_object(extra, "x-tls");
	/* the summary is the main channel's; every channel is listed below */
	mig_value_add_str(x, "mode", all_ktls ? "ktls" : "openssl");
	mig_value_add_str(x, "version", g_array_index(s->tls_chans, TlsChan, 0).info.version);
	mig_value_add_str(x, "cipher", g_array_index(s->tls_chans, TlsChan, 0).info.cipher);
	arr = mig_value_add_array(x, "channels");
	for (guint i = 0; i < s->tls_chans->len; i++) {
		TlsChan *c = &g_array_index(s->tls_chans, TlsChan, i);
		MigValue *ch = mig_value_add_object(arr, NULL);

		mig_value_add_str(ch, "type", mig_chan_type_str(c->type));
		mig_value_add_int(ch, "index", c->index);
		mig_value_add_str(ch, "mode", c->info.ktls_send && c->info.ktls_recv ? "ktls" : "openssl");
		mig_value_add_str(ch, "version", c->info.version);
		mig_value_add_str(ch, "cipher", c->info.cipher);
	}
}
