/* One migration at a time on a file's region: a save holds a write lock on the region
 * it writes (from its offset to the end of the file), a load a read lock on the region
 * it reads, until it has read what it needs. A save to a file another migration still
 * reads (a lazy restore takes its pages from it for seconds) or writes is refused
 * before it truncates a byte. Open file description locks: advisory, released with the
 * descriptor, and they conflict between two descriptors of one process as between two
 * processes, so a source and a destination in one process are kept apart too. */
#pragma once
#include <glib.h>

/* Takes the lock on fd's [offset, end of file) without waiting. FALSE with an error
 * naming the file when another migration holds a conflicting one; TRUE without a lock
 * where the file system has none (the lock is a courtesy, never a condition). */
gboolean mig_file_lock(int fd, const char *path, guint64 offset, gboolean write, GError **err);
/* Lets go of what mig_file_lock took on fd, the descriptor staying open. */
void mig_file_unlock(int fd, guint64 offset);
