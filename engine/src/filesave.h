/* Saving to a mapped-ram file (file: URI with the mapped-ram capability): live passes
 * written by io_uring workers at each page's fixed offset, then stop-and-copy, the
 * bitmaps, the guest record and last the header's COMPLETE flag. */
#pragma once
#include "engine/src/src_int.h"

/* Runs the whole save on mig/src/main, dirty tracking already set up (every page
 * dirty). On failure the file stays marked incomplete and the caller resumes the
 * guest. */
gboolean mig_file_src_run(Src *src, GError **err);
