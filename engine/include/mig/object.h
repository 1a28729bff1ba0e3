/* User-created objects, QEMU's `-object` / `object-add`: TLS credentials
 * (`tls-creds-x509`, `tls-creds-psk`) and client authorization lists (`authz-simple`,
 * `authz-list`). The parameters tls-creds and tls-authz name them by id. Properties
 * are strings, QEMU's names and values: a boolean is on/off (or true/false, yes/no);
 * authz-list's rules are flattened as rules.N.match, rules.N.policy (allow|deny) and
 * rules.N.format (exact|glob), N from 0. */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;

/* props: key, value, key, value, ..., NULL. Credentials are loaded and checked now
 * (files present and parseable, key matching certificate, certificate within its
 * validity period), so a bad file is an error here, naming the file and the cause.
 * An id may be used once. */
gboolean mig_session_object_add(MigSession *s, const char *qom_type, const char *id, const char *const *props,
				GError **err);
/* Removes an object; a migration already running keeps what it took from it. */
gboolean mig_session_object_del(MigSession *s, const char *id, GError **err);

MIG_END_PUBLIC
