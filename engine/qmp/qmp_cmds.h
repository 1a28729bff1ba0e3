/* The migration commands of QMP, bound to one session. */
#pragma once
#include "engine/qmp/qmp.h"
#include <mig/mig.h>

/* Registers query-status, stop, cont, migrate*, query-migrate*, migrate_cancel, yank,
 * query-yank, and
 * routes the session's events to the server. quit and query-version stay the host's. */
void mig_qmp_add_session_commands(MigQmpServer *q, MigSession *s);

/* The members of a MigValue OBJECT into the object b is building (the JSON of query
 * extras: MigVmOps.query, MigDeviceOps.query). */
void mig_qmp_add_value_members(JsonBuilder *b, const MigValue *obj);
