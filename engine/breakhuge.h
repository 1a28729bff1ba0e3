/* Break-huge: in postcopy, a bulk lane sends a huge page in chunks and lets urgent
 * work go first between chunks, so a requested page never waits for a whole 2 MiB
 * (16.8 ms at 1 Gbit/s) of bulk. The destination assembles each lane's chunks and
 * places the page only when it is whole; a page the urgent lane served meanwhile is
 * dropped by bulk (the sender stops, the receiver's partial copy is discarded).
 *
 * This header holds the frames; engine/src/breakhuge.h and engine/dst/breakhuge.h
 * declare the two sides. */
#pragma once

#define MIG_F_CHUNK 0x12    /* be32 block, be32 offset in page, be64 page offset, data */
#define MIG_CHUNK_HDR_LEN 16u
#define MIG_CHUNK_SIZE (64u << 10)
