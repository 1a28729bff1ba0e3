/* Fixed-size buffers kept for reuse. The device lane moves hundreds of MiB in 1 MiB
 * chunks across threads; fresh allocations that size come from mmap (or return to it
 * on free), and faulting in and zeroing every chunk's pages cost as much CPU as
 * copying the state itself. */
#pragma once
#include <glib.h>

typedef struct MigBufPool MigBufPool;

/* Buffers of size bytes; at most keep of them are held while free. */
MigBufPool *mig_buf_pool_new(gsize size, guint keep);
/* A buffer of the pool's size (recycled when one is free). Any thread. */
guint8 *mig_buf_get(MigBufPool *p);
/* Returns buf to the pool (or frees it when the pool holds enough). Any thread. */
void mig_buf_put(MigBufPool *p, guint8 *buf);
void mig_buf_pool_free(MigBufPool *p);
