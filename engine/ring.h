/* One worker's io_uring for file migration: reads and writes at file offsets straight
 * from or into guest memory, up to a queue depth in flight, completions reaped in
 * batches by the thread that submits (no thread per request). A ring belongs to one
 * thread; it takes no lock. */
#pragma once
#include "engine/session_int.h"

typedef struct MigRing MigRing;

#define MIG_RING_QD 32u              /* requests in flight per worker */
#define MIG_RING_MAX_IO (1u << 20)   /* bytes per request: larger runs are split */

/* fd is registered with the ring (a fixed file: no fd lookup per request). */
MigRing *mig_ring_new(int fd, guint depth, GError **err);
void mig_ring_free(MigRing *r);
/* Queues len bytes at file offset off; when the ring is full it first reaps what has
 * completed (waiting for at least one). FALSE once any request failed: a short write
 * that cannot progress (full disk), ENOSPC, EIO, EINVAL from O_DIRECT... with the
 * error naming the offset. */
gboolean mig_ring_write(MigRing *r, const void *buf, gsize len, guint64 off, GError **err);
gboolean mig_ring_read(MigRing *r, void *buf, gsize len, guint64 off, GError **err);
/* Waits for every request in flight. */
gboolean mig_ring_drain(MigRing *r, GError **err);
guint mig_ring_depth_peak(const MigRing *r);
guint64 mig_ring_bytes(const MigRing *r);
guint64 mig_ring_requests(const MigRing *r);
