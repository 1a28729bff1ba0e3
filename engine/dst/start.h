/* The end of an incoming migration, on every path that ends one (network precopy,
 * the postcopy switch, a mapped-ram file loaded whole or lazily): the guest starts here
 * unless migd -S or a `stop` said to keep it paused (QEMU's autostart), and the status
 * becomes what the path reached unless the migration failed meanwhile. */
#pragma once
#include "engine/dst/dst_int.h"

/* With s->lock held. done: COMPLETED, or POSTCOPY_ACTIVE while pages still come. */
void mig_dst_start_guest_locked(MigSession *s, MigStatus done);
