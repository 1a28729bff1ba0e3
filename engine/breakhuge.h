/* Break-huge: in postcopy, a bulk lane sends a huge page in chunks and lets urgent
 * work go first between chunks, so a requested page never waits for a whole 2 MiB
 * (16.8 ms at 1 Gbit/s) of bulk. The destination assembles each lane's chunks and
 * places the page only when it is whole; a page the urgent lane served meanwhile is
 * dropped by bulk (the sender stops, the receiver's partial copy is discarded).
 *
 * The CHUNK frame and its size (MIG_CHUNK_SIZE) are in channels/wire.h;
 * engine/src/breakhuge.h and engine/dst/breakhuge.h declare the two sides. */
#pragma once
#include "channels/wire.h"   /* its frame: CHUNK */
