/* Chunked huge pages on bulk lanes, and their assembly on the destination. */
#include "engine/breakhuge.h"
#include "engine/postcopy.h"
#include "channels/frame.h"
#include "channels/io.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>

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

void mig_huge_asm_clear(MigHugeAsm *a)
{
	g_clear_pointer(&a->buf, g_free);
	a->cap = 0;
	a->busy = FALSE;
}

static gboolean asm_fail(GError **err, int code, const char *what)
{
	g_set_error(err, MIG_ERROR, code, "huge page chunk: %s", what);
	return FALSE;
}

gboolean mig_huge_asm_chunk(MigSession *s, MigHugeAsm *a, int fd, guint32 len, GError **err)
{
	guint8 raw[MIG_CHUNK_HDR_LEN];
	guint32 block, off;
	guint64 pg_off;
	MigRamBlock *rb;
	gsize dlen;
	int rc;

	if (len <= MIG_CHUNK_HDR_LEN || !s->received)
		return asm_fail(err, EPROTO, "frame too short or before setup");
	if ((rc = mig_io_read_full(fd, raw, sizeof(raw))) < 0)
		return asm_fail(err, -rc, g_strerror(-rc));
	mig_get_head16(raw, &block, &off, &pg_off);
	dlen = len - MIG_CHUNK_HDR_LEN;
	if (block >= s->ram->len)
		return asm_fail(err, EPROTO, "unknown RAM block");
	rb = g_ptr_array_index(s->ram, block);
	if (pg_off % rb->page_size || pg_off >= rb->size || off + dlen > rb->page_size || !mig_pc_dst_placing(s))
		return asm_fail(err, EPROTO, "chunk outside its page, or outside postcopy");
	/* a new page: whatever was in progress was dropped by its sender */
	if (!a->busy || a->block != block || a->page != pg_off / rb->page_size) {
		if (off != 0)
			return asm_fail(err, EPROTO, "a page's chunks must start at offset 0");
		a->busy = TRUE;
		a->block = block;
		a->page = pg_off / rb->page_size;
		a->have = 0;
	}
	if (off != a->have)
		return asm_fail(err, EPROTO, "chunks out of order");
	if (a->cap < rb->page_size) {
		a->buf = g_realloc(a->buf, rb->page_size);
		a->cap = rb->page_size;
	}
	if ((rc = mig_io_read_full(fd, a->buf + off, dlen)) < 0)
		return asm_fail(err, -rc, g_strerror(-rc));
	mig_atomic_add(&s->stats.transferred, MIG_FRAME_HDR_LEN + len);
	a->have += dlen;
	if (a->have < rb->page_size)
		return TRUE;
	a->busy = FALSE;
	return mig_pc_dst_place(s, block, a->page, a->buf, err);
}
