/* Page requests packed as whole frames for one write: see reqbatch.h. */
#include "engine/dst/reqbatch.h"

gboolean mig_req_batch_add(MigReqBatch *b, guint32 block, guint64 off)
{
	MigFrameHdr h = { .len = MIG_PAGE_REQ_LEN, .type = MIG_F_RP_REQ_PAGE, .flags = 0 };
	guint8 *p;

	if (b->n >= MIG_REQ_BATCH_MAX)
		return FALSE;
	p = b->buf + (gsize)b->n * MIG_REQ_FRAME_LEN;
	mig_frame_hdr_pack(&h, p);
	mig_put_head16(p + MIG_FRAME_HDR_LEN, block, 0, off);
	b->n++;
	return TRUE;
}
