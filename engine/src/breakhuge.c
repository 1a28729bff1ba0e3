/* Chunked huge pages on the source's bulk lanes (engine/dst/breakhuge.c assembles them). */
#include "engine/src/breakhuge.h"
#include "channels/frame.h"

int mig_huge_send(int fd, guint block, MigRamBlock *rb, gsize page, MigYieldFn yield, gpointer opaque,
		  guint64 *bytes)
{
	gsize ps = rb->page_size;
	guint8 *base = rb->host + page * ps;

	*bytes = 0;
	for (gsize off = 0; off < ps; off += MIG_CHUNK_SIZE) {
		gsize len = MIN((gsize)MIG_CHUNK_SIZE, ps - off);
		guint8 hdr[MIG_CHUNK_HDR_LEN];
		struct iovec iov[2] = { { hdr, sizeof(hdr) }, { base + off, len } };
		int rc;

		if (off && yield(opaque, block, page))
			return 1;
		mig_put_head16(hdr, block, (guint32)off, (guint64)page * ps);
		rc = mig_frame_send(fd, MIG_F_CHUNK, 0, iov, 2);
		if (rc < 0)
			return rc;
		*bytes += MIG_FRAME_HDR_LEN + sizeof(hdr) + len;
	}
	return 0;
}
