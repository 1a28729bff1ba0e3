/* Assembling the chunks of a huge page a bulk lane sent (engine/src/breakhuge.c). */
#include "engine/dst/breakhuge.h"
#include "engine/dst/postcopy.h"
#include "channels/frame.h"
#include "channels/io.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>

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

	if (len <= MIG_CHUNK_HDR_LEN || !s->dst->received)
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
