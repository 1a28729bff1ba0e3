/* One migration at a time on a file's region (filelock.h). */
#include "engine/filelock.h"
#include "mig/common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int set_lock(int fd, guint64 offset, short type)
{
	struct flock l;

	memset(&l, 0, sizeof(l));
	l.l_type = type;
	l.l_whence = SEEK_SET;
	l.l_start = (off_t)offset;
	l.l_len = 0;   /* to the end, however far the file grows */
	return fcntl(fd, F_OFD_SETLK, &l) < 0 ? -errno : 0;
}

gboolean mig_file_lock(int fd, const char *path, guint64 offset, gboolean write, GError **err)
{
	int rc;

	if (offset > G_MAXINT64)
		return TRUE;   /* no such region: the file's own calls will say why */
	rc = set_lock(fd, offset, write ? F_WRLCK : F_RDLCK);
	if (rc == -EAGAIN || rc == -EACCES) {
		if (write)
			g_set_error(err, MIG_ERROR, EBUSY, "'%s' is in use by another migration, saving to it or restoring from it "
				    "(a lock on the file from offset %" G_GUINT64_FORMAT " on): save elsewhere, or once it has ended",
				    path, offset);
		else
			g_set_error(err, MIG_ERROR, EBUSY, "'%s' is being saved to by another migration (a lock on the file from "
				    "offset %" G_GUINT64_FORMAT " on): restore it once the save has ended", path, offset);
		return FALSE;
	}
	return TRUE;
}

void mig_file_unlock(int fd, guint64 offset)
{
	if (fd >= 0 && offset <= G_MAXINT64)
		(void)set_lock(fd, offset, F_UNLCK);
}
