/* The main channel's frame types and payloads (docs/protocol.md has every byte). */
#pragma once
#include <stdint.h>

enum {
	/* source -> destination */
	MIG_F_SETUP = 1,     /* be32 nblocks, then per block: u8 len, name, be64 size, be64 page size */
	MIG_F_PAGES = 2,     /* be32 block, be32 count, be64 offset[count], count pages of data */
	MIG_F_ZEROS = 3,     /* be32 block, be32 count, be64 offset[count] */
	MIG_F_PASS = 4,      /* be64 pass number: everything of that pass was sent */
	MIG_F_STATE = 5,     /* u8 len, id, state bytes */
	MIG_F_COMPLETE = 6,  /* end of the stream: start the guest */
	MIG_F_ABORT = 7,     /* the source gives up; payload is the reason */
	/* destination -> source (return path, same socket) */
	MIG_F_RP_RUNNING = 0x41, /* the guest runs on the destination */
	MIG_F_RP_ERROR = 0x42,   /* the destination failed; payload is the reason */
	MIG_F_RP_PASS = 0x49,    /* be64 pass number: all of that pass is in place here */
};

#define MIG_PAGES_HDR_LEN 8u
#define MIG_BATCH_BYTES (512u << 10)   /* page data per PAGES frame (or one huge page) */
