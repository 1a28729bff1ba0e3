/* multifd: bulk RAM over N extra connections, each with its own named thread on both
 * sides. A page rides one channel per pass and a huge page is never split; at the end
 * of every pass all channels meet at a sync point, so the destination never applies an
 * older copy of a page over a newer one.
 *
 * This header holds the channel's frames; engine/src/multifd.h declares the senders,
 * engine/dst/multifd.h the receivers. */
#pragma once
#include "channels/wire.h"   /* its frames: MF_PAGES, MF_SYNC, MF_DEV */

/* the longest device-chunk header a sender takes (mig_mf_src_queue_dev) */
#define MIG_MF_DEV_HDR_MAX 32u
