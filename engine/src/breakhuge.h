/* Break-huge at the source (engine/breakhuge.h has the design and the frame): a bulk
 * lane sends a huge page in chunks, yielding to urgent work between them. */
#pragma once
#include "engine/breakhuge.h"
#include <mig/ram.h>

/* Between chunks: waits while urgent work is pending; TRUE when the page was served
 * by the urgent lane meanwhile, so the rest of it is not worth sending. */
typedef gboolean (*MigYieldFn)(gpointer opaque, guint block, gsize page);

/* Sends page `page` of rb on fd in chunks. 0 sent, 1 dropped, or -errno. *bytes gets
 * what went on the wire. */
int mig_huge_send(int fd, guint block, MigRamBlock *rb, gsize page, MigYieldFn yield, gpointer opaque,
		  guint64 *bytes);

