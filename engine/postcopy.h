/* Postcopy: the guest runs on the destination before all of its memory is there.
 * Destination: guest RAM is registered with userfaultfd; a fault thread asks the
 * source for each missing page; every page that arrives afterwards is placed
 * atomically (UFFDIO_COPY), never written in place. Source: a return-path thread
 * serves requests at once (on the preempt channel when there is one) while the
 * migration thread pushes the rest in the background.
 *
 * This header holds the frames; engine/src/postcopy.h and engine/dst/postcopy.h
 * declare the two sides. */
#pragma once

#include "channels/wire.h"   /* its frames: PC_*, RP_REQ_PAGE, RP_DONE */
