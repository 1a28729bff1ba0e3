/* One migration at a time on a file's region: a save holds a write lock on the region
 * it writes (from its offset to the end of the file), a load a read lock on the region
 * it reads, until it has read what it needs. A save to a file another migration still
 * reads (a lazy restore takes its pages from it for seconds) or writes is refused
 * before it truncates a byte. Open file description locks: advisory, released with the
 * descriptor, and they conflict between two descriptors of one process as between two
 * processes, so a source and a destination in one process are kept apart too. */
#pragma once
#include <glib.h>

struct MigSession;

/* Every open of a migration file (file: URIs, both halves): a path, or "/dev/fdset/N"
 * for a dup of a descriptor of QMP's fd set N (add-fd) through the session's hook, as
 * QEMU's qemu_open. flags: O_RDONLY or O_WRONLY, O_CREAT, O_DIRECT. -1 with *err set
 * naming the file, or the set and the access wanted. */
int mig_file_open(struct MigSession *s, const char *path, int flags, GError **err);

/* Takes the lock on fd's [offset, end of file) without waiting. FALSE with an error
 * naming the file when another migration holds a conflicting one; TRUE without a lock
 * where the file system has none (the lock is a courtesy, never a condition). */
gboolean mig_file_lock(int fd, const char *path, guint64 offset, gboolean write, GError **err);
/* Lets go of what mig_file_lock took on fd, the descriptor staying open. */
void mig_file_unlock(int fd, guint64 offset);
/* Closes a migration file's descriptor, its lock let go first: a dup from an fd set
 * shares the open file description, and so the lock, with the set's descriptor, which
 * stays open after the dup is closed. */
void mig_file_close(int fd, guint64 offset);
