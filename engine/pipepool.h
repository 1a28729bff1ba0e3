/* Pipes kept for reuse as chunk carriers: the device lane splices a chunk of state into
 * one and out of it again, so the bytes never pass through user memory. */
#pragma once
#include <glib.h>

typedef struct MigPipe {
	int r, w;            /* read and write ends, -1 for none */
} MigPipe;

typedef struct MigPipePool MigPipePool;

/* Pipes of at least capacity bytes; at most keep held while free. */
MigPipePool *mig_pipe_pool_new(gsize capacity, guint keep);
/* An empty pipe; 0 or -errno. Any thread. */
int mig_pipe_get(MigPipePool *p, MigPipe *out);
/* Back to the pool; empty says it holds no data (else it is closed). */
void mig_pipe_put(MigPipePool *p, MigPipe *pipe, gboolean empty);
void mig_pipe_pool_free(MigPipePool *p);
