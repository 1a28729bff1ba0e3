/* Break-huge: in postcopy, a bulk lane sends a huge page in chunks and lets urgent
 * work go first between chunks, so a requested page never waits for a whole 2 MiB
 * (16.8 ms at 1 Gbit/s) of bulk. The destination assembles each lane's chunks and
 * places the page only when it is whole; a page the urgent lane served meanwhile is
 * dropped by bulk (the sender stops, the receiver's partial copy is discarded). */
#pragma once
#include "engine/session_int.h"

/* CHUNK frames (channels/wire.h) carry at most this much of a page each */
#define MIG_CHUNK_SIZE (64u << 10)

/* Between chunks: waits while urgent work is pending; TRUE when the page was served
 * by the urgent lane meanwhile, so the rest of it is not worth sending. */
typedef gboolean (*MigYieldFn)(gpointer opaque, guint block, gsize page);

/* Sends page `page` of rb on fd in chunks. 0 sent, 1 dropped, or -errno. *bytes gets
 * what went on the wire. */
int mig_huge_send(int fd, guint block, MigRamBlock *rb, gsize page, MigYieldFn yield, gpointer opaque,
		  guint64 *bytes);

/* One lane's assembly of the huge page in progress. */
typedef struct MigHugeAsm {
	guint8 *buf;
	gsize cap;
	guint block;
	gsize page;
	gsize have;     /* bytes assembled, in order */
	gboolean busy;
} MigHugeAsm;

/* Reads a CHUNK frame's payload (len bytes) from fd; places the page once whole. */
gboolean mig_huge_asm_chunk(MigSession *s, MigHugeAsm *a, int fd, guint32 len, GError **err);
void mig_huge_asm_clear(MigHugeAsm *a);
