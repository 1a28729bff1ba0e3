/* A migration file's descriptors: opened by path or from an fd set, one migration at a
 * time on a file's region (filelock.h). */
#include "engine/filelock.h"
#include "engine/session_int.h"
#include "mig/common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define FDSET_PREFIX "/dev/fdset/"

int mig_file_open(MigSession *s, const char *path, int flags, GError **err)
{
	guint64 id;
	int fd;

	if (!g_str_has_prefix(path, FDSET_PREFIX)) {
		fd = open(path, flags | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (flags & O_DIRECT)
			g_set_error(err, MIG_ERROR, errno, "direct-io: cannot open '%s' with O_DIRECT (%s): its file system does "
				    "not support direct I/O; turn direct-io off", path, g_strerror(errno));
		else
			g_set_error(err, MIG_ERROR, errno, "cannot open '%s'%s: %s", path,
				    (flags & O_ACCMODE) == O_RDONLY ? "" : " for writing", g_strerror(errno));
		return -1;
	}
	/* QEMU's qemu_open: the rest is the set's id, and a dup stands for the open */
	if (!g_ascii_string_to_unsigned(path + strlen(FDSET_PREFIX), 10, 0, G_MAXINT64, &id, NULL)) {
		g_set_error(err, MIG_ERROR, EINVAL, "Could not parse fdset %s", path);
		return -1;
	}
	/* set once by the host before any migration, as fd_lookup; read without s->lock,
	 * which a streamed load holds while it opens its file */
	if (!s->fdset_dup) {
		g_set_error(err, MIG_ERROR, ENOTSUP, "%s: this host has no fd sets", path);
		return -1;
	}
	return s->fdset_dup(s->fdset_opaque, (gint64)id, flags & (O_ACCMODE | O_DIRECT), err);
}

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

	if (offset > G_MAXINT64) {
		/* qemu_strtosz takes up to 2^64 - 1, but a file's offsets are an off_t */
		g_set_error(err, MIG_ERROR, EFBIG, "'%s': offset %" G_GUINT64_FORMAT " is past the largest offset a file "
			    "can have (%" G_GINT64_FORMAT ")", path, offset, G_MAXINT64);
		return FALSE;
	}
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
	if (fd >= 0 && offset <= G_MAXINT64)   /* else never locked */
		(void)set_lock(fd, offset, F_UNLCK);
}

void mig_file_close(int fd, guint64 offset)
{
	if (fd < 0)
		return;
	mig_file_unlock(fd, offset);
	close(fd);
}
