/* multifd: bulk RAM over N extra connections, each with its own named thread on both
 * sides. A page rides one channel per pass and a huge page is never split; at the end
 * of every pass all channels meet at a sync point, so the destination never applies an
 * older copy of a page over a newer one.
 *
 * This header holds the channel's frames; engine/src/multifd.h declares the senders,
 * engine/dst/multifd.h the receivers. */
#pragma once

/* multifd channel frames (docs/protocol.md) */
enum {
	MIG_F_MF_PAGES = 0x10, /* be32 block, be32 flags, be64 seq, be32 nnormal, be32 nzero,
				* be64 offsets[nnormal + nzero], nnormal pages of data */
	MIG_F_MF_SYNC = 0x11,  /* be64 pass: everything of that pass went before this */
	MIG_F_MF_DEV = 0x13,   /* device-state chunk: be32 device, be32 flags, be64 seq, data
				* (engine/devlane.h) */
};
#define MIG_MF_HDR_LEN 24u
#define MIG_MF_MAX_PAGES 128u
/* the longest device-chunk header a sender takes (mig_mf_src_queue_dev) */
#define MIG_MF_DEV_HDR_MAX 32u
