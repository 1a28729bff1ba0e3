/* QMP yank and query-yank over one session's migration channels. */
#pragma once
#include "engine/qmp/qmp.h"
#include <mig/mig.h>

void mig_qmp_add_yank_commands(MigQmpServer *q, MigSession *s);
