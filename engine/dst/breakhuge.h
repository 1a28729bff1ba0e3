/* Break-huge at the destination (engine/breakhuge.h has the design and the frame):
 * each lane assembles its huge page and places it once whole. */
#pragma once
#include "engine/dst/dst_int.h"
#include "engine/breakhuge.h"

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
