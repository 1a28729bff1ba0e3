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
#include "channels/wire.h"   /* its frames, the chunk header and MIG_DEV_CHUNK */
