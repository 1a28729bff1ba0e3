/* Postcopy at the source (engine/postcopy.h has the frames and the design): from the
 * end of a precopy pass to completion, with a return-path thread serving requests. */
#pragma once
#include "engine/src/src_int.h"
#include "engine/postcopy.h"

gboolean mig_pc_src_run(Src *src, GError **err);
gboolean mig_pc_src_connect_preempt(Src *src, GError **err);
void mig_pc_src_close_preempt(Src *src);
