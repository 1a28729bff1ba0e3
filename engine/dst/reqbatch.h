/* Page requests gathered into one write. The fault thread reads up to a batch of
 * userfaultfd events at once; with many vCPUs faulting, one frame and one system call
 * (and one take of the return path's lock) per request made it the queue. The requests
 * of one read are packed here as whole RP_REQ_PAGE frames, back to back, and written
 * together: the wire is unchanged, the source reads them as it always did. */
#pragma once
#include <glib.h>
#include "channels/wire.h"

#define MIG_REQ_BATCH_MAX 64u
/* One whole RP_REQ_PAGE frame: header and page request head. */
#define MIG_REQ_FRAME_LEN (MIG_FRAME_HDR_LEN + MIG_PAGE_REQ_LEN)

typedef struct MigReqBatch {
	guint n;
	guint8 buf[MIG_REQ_BATCH_MAX * MIG_REQ_FRAME_LEN];
} MigReqBatch;

static inline void mig_req_batch_reset(MigReqBatch *b)
{
	b->n = 0;
}

/* Appends a request for the host page at byte offset off of block; FALSE (nothing
 * added) when the batch is full: flush it first. */
gboolean mig_req_batch_add(MigReqBatch *b, guint32 block, guint64 off);

static inline gsize mig_req_batch_bytes(const MigReqBatch *b)
{
	return (gsize)b->n * MIG_REQ_FRAME_LEN;
}
