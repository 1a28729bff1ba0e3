/* The migration commands of QMP, bound to one session. */
#pragma once
#include "engine/qmp/qmp.h"
#include <mig/session.h>

/* Registers query-status, stop, cont, migrate*, query-migrate*, migrate_cancel, and
 * routes the session's events to the server. quit and query-version stay the host's. */
void mig_qmp_add_session_commands(MigQmpServer *q, MigSession *s);
