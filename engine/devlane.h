/* The device-state lane. At switchover every device's state is read out by its own
 * save thread, cut into chunks tagged (device, sequence) and spread over all multifd
 * channels ahead of RAM; the destination puts each device's chunks back in order,
 * holding at most x-device-max-queued bytes, and loads the devices in parallel in a
 * bounded pool. Downtime then tends to the slowest device instead of the sum. With
 * the lane off (or without multifd) the state goes serially on the main channel: the
 * baseline the lane is measured against.
 *
 * No deadlock by construction: each channel carries chunks in the order the source
 * handed them out, so the oldest chunk not yet delivered heads its channel and is the
 * next one its device needs; in-order chunks always find room, because out-of-order
 * ones may fill the queue only up to one chunk short of the cap.
 *
 * This header holds the frames; engine/src/devlane.h and engine/dst/devlane.h
 * declare the two sides. */
#pragma once

#define MIG_DEV_CHUNK (1u << 20)          /* state bytes per chunk */
#define MIG_DEV_HDR_LEN 16u               /* be32 device, be32 flags, be64 sequence */
#define MIG_DEV_F_STOP_COPY 1u            /* chunk flag: stop-copy data, not pre-copy */

/* main channel frames (docs/protocol.md) */
enum {
	MIG_F_DEV_DATA = 0x20,   /* serial lane: device header, then the chunk */
	MIG_F_DEV_END = 0x21,    /* be32 n, n x (be64 chunks, be64 bytes): all state was sent */
	MIG_F_RP_DEVICES = 0x48, /* return path: be32 n, n x (be64 load µs): devices loaded */
};
