/* Discards in batches: process_madvise where the kernel takes MADV_DONTNEED through it,
 * madvise per range otherwise (see discard.h). */
#include "engine/discard.h"
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 1024   /* the kernel's UIO_MAXIOV: the most one call takes */

struct MigDiscarder {
	int pidfd;   /* this process, for process_madvise; -1: madvise per range */
};

static long pmadvise(int pidfd, const struct iovec *iov, size_t n)
{
	return syscall(SYS_process_madvise, pidfd, iov, n, MADV_DONTNEED, 0u);
}

/* A real discard of one scratch page tells whether the kernel takes MADV_DONTNEED
 * through process_madvise (it refuses it with EINVAL before 6.13). */
static gboolean probe(int pidfd)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov;
	gboolean ok;

	if (p == MAP_FAILED)
		return FALSE;
	*(volatile char *)p = 1;
	iov = (struct iovec){ p, (size_t)ps };
	ok = pmadvise(pidfd, &iov, 1) == ps && *(volatile char *)p == 0;
	munmap(p, (size_t)ps);
	return ok;
}

MigDiscarder *mig_discarder_new(void)
{
	MigDiscarder *d = g_new0(MigDiscarder, 1);

	d->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0u);
	if (d->pidfd >= 0 && !probe(d->pidfd)) {
		close(d->pidfd);
		d->pidfd = -1;
	}
	return d;
}

MigDiscarder *mig_discarder_new_per_range(void)
{
	MigDiscarder *d = g_new0(MigDiscarder, 1);

	d->pidfd = -1;
	return d;
}

void mig_discarder_free(MigDiscarder *d)
{
	if (!d)
		return;
	if (d->pidfd >= 0)
		close(d->pidfd);
	g_free(d);
}

const char *mig_discarder_method(const MigDiscarder *d)
{
	return d->pidfd >= 0 ? "process_madvise" : "madvise";
}

static int one_by_one(MigRamBlock *b, const guint64 *ranges, guint n)
{
	for (guint i = 0; i < n; i++)
		if (mig_ram_block_discard(b, ranges[2 * i], ranges[2 * i + 1]) < 0)
			return -errno;
	return 0;
}

int mig_discarder_apply(MigDiscarder *d, MigRamBlock *b, const guint64 *ranges, guint n)
{
	struct iovec iov[BATCH];
	gsize ps = b->page_size;

	if (b->fd >= 0 || d->pidfd < 0)
		return one_by_one(b, ranges, n);
	for (guint at = 0; at < n;) {
		guint k = MIN(n - at, BATCH);
		size_t want = 0;
		long got;

		for (guint i = 0; i < k; i++) {
			iov[i].iov_base = b->host + ranges[2 * (at + i)] * ps;
			iov[i].iov_len = ranges[2 * (at + i) + 1] * ps;
			want += iov[i].iov_len;
		}
		/* the kernel caps one call's bytes at SSIZE_MAX and may stop short on an
		 * error: whatever it did not take goes again one range at a time, which
		 * names the error if there is one (discarding twice is harmless) */
		got = want <= SSIZE_MAX ? pmadvise(d->pidfd, iov, k) : -1;
		if (got < 0 || (size_t)got != want) {
			int rc = one_by_one(b, ranges + 2 * at, k);

			if (rc < 0)
				return rc;
		}
		at += k;
	}
	return 0;
}
