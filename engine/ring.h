/* One worker's io_uring for file migration: reads and writes at file offsets straight
 * from or into guest memory, up to a queue depth in flight, completions reaped in
 * batches by the thread that submits (no thread per request). A ring belongs to one
 * thread; it takes no lock. */
#pragma once
#include "engine/session_int.h"

typedef struct MigRing MigRing;

#define MIG_RING_QD 32u              /* requests in flight per worker */
#define MIG_RING_MAX_IO (1u << 20)   /* bytes per request: larger runs are split */
#define MIG_RING_MAX_IOV 256u        /* pieces per vectored request (<= IOV_MAX) */
#define MIG_RING_ALIGN 4096u         /* O_DIRECT: every piece's address and length */
/* The largest gap between two runs of pages that one request spans, reading or
 * writing filler through it, rather than ending the request: up to about this many
 * bytes a request of this disk costs more than moving them (docs/benchmarks.md,
 * scenario file, "Gaps"). */
#define MIG_RING_FILL_MAX (64u << 10)

/* fd is registered with the ring (a fixed file: no fd lookup per request). */
MigRing *mig_ring_new(int fd, guint depth, GError **err);
void mig_ring_free(MigRing *r);
/* Queues len bytes at file offset off; when the ring is full it first reaps what has
 * completed (waiting for at least one). FALSE once any request failed: a short write
 * that cannot progress (full disk), ENOSPC, EIO, EINVAL from O_DIRECT... with the
 * error naming the offset. */
gboolean mig_ring_write(MigRing *r, const void *buf, gsize len, guint64 off, GError **err);
gboolean mig_ring_read(MigRing *r, void *buf, gsize len, guint64 off, GError **err);
/* A vectored request (readv/writev) at file offset off, gathered piece by piece at
 * consecutive file offsets: memory (adjacent pieces merge; gap: counted as filler,
 * bytes moved only to keep the request going) or filler, len bytes (<=
 * MIG_RING_FILL_MAX per call) of a zero buffer written / a discard buffer read into,
 * for bytes of the file whose contents do not matter. A request that reaches
 * the ring's request size or MIG_RING_MAX_IOV pieces is queued and the next goes on at
 * the following offset; vec_end queues the rest. With O_DIRECT every piece must be
 * MIG_RING_ALIGN-aligned. */
void mig_ring_vec_begin(MigRing *r, guint64 off, gboolean write);
gboolean mig_ring_vec_add(MigRing *r, void *buf, gsize len, gboolean gap, GError **err);
gboolean mig_ring_vec_fill(MigRing *r, gsize len, GError **err);
gboolean mig_ring_vec_end(MigRing *r, GError **err);
/* At most limit requests of at most max_io bytes in flight from now on (a lazy
 * restore's prefetch makes room for a fault's read); (MIG_RING_QD, MIG_RING_MAX_IO)
 * for full speed. */
void mig_ring_throttle(MigRing *r, guint limit, gsize max_io);
/* Waits (reaping) until one more request may go in flight under the limit, so that the
 * next read or write is submitted at once: a caller may wait for something else in
 * between. FALSE once the ring failed. */
gboolean mig_ring_reserve(MigRing *r, GError **err);
/* Waits for every request in flight. */
gboolean mig_ring_drain(MigRing *r, GError **err);
guint mig_ring_depth_peak(const MigRing *r);
guint64 mig_ring_bytes(const MigRing *r);
guint64 mig_ring_requests(const MigRing *r);
guint64 mig_ring_fill_bytes(const MigRing *r);   /* of mig_ring_bytes: filler */
