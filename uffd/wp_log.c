/* Dirty tracking with synchronous userfaultfd write-protect faults (see wp_log.h).
 *
 * Why not switch wp_tracker's async context to this one late in a migration: the
 * async/sync choice belongs to the userfaultfd context (UFFD_FEATURE_WP_ASYNC at
 * UFFDIO_API), a range can be registered with one context only, and UFFDIO_UNREGISTER
 * clears every uffd-wp bit of the range. A switch therefore has a window, between the
 * old context's unregister and the new one's write-protect, in which writes are seen
 * by nobody; without soft-dirty (CONFIG_MEM_SOFT_DIRTY, off on many kernels) nothing
 * else records them. So this tracker is sync for its whole life.
 *
 * How it works
 *   A page is "logged" when its bit is set in `logged`; the words of `logged` that hold
 *   any bit are listed in `words`, so a collect visits only those. The thread mig/wplog
 *   reads fault messages and, for each page, under `lock`: logs it, then un-protects it
 *   (UFFDIO_WRITEPROTECT without DONTWAKE, which wakes the writer). collect, under the
 *   same lock: takes every logged page, re-protects it, reports it (one ioctl per
 *   run of consecutive logged pages).
 *
 * Ordering guarantees (wp_tracker.c's, restated for this mechanism)
 *   1. A write after arm returns faults (the pte, or its marker, is protected), so its
 *      page is logged before the write can proceed, i.e. before any later collect can
 *      miss it: log and un-protect happen in one critical section.
 *   2. A collect takes a logged page and re-protects it in one critical section: a
 *      write that lands before the re-protect is in the copy taken after collect
 *      returns; one after it faults and is logged for the next collect.
 *   3. UFFDIO_WRITEPROTECT flushes the TLB before it returns, so no stale writable
 *      entry outlives the collect that re-protected the page.
 *   4. A fault message for a page that a collect re-protected in between only logs it
 *      again: an over-report. One store can be reported twice (as with wp_tracker).
 *   5. If un-protecting or reading the faults fails (neither should), writers would
 *      wait for ever; the thread then unregisters the range, which wakes every writer
 *      and leaves the memory writable, and every later collect reports all pages and
 *      fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "uffd/wp_log.h"
#include "uffd/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BITS_PER_ULONG (sizeof(unsigned long) * CHAR_BIT)
#define MSG_BATCH 64	/* fault messages read at once */

struct MigWpLog {
	int uffd;
	int stopfd;		/* eventfd: the thread returns when it is readable */
	uintptr_t start;
	size_t len;
	size_t page_size;
	size_t npages;
	size_t nwords;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;	/* logged, words, nlisted, failed, armed */
	unsigned long *logged;	/* bit per page written since the last collect */
	size_t *words;		/* indices of the non-zero words of logged */
	size_t nlisted;
	int failed;		/* -errno from the thread; the range is unregistered */
	int armed;
};

/* UFFDIO_WRITEPROTECT on [first, first+n) pages. EAGAIN comes only from
 * non-cooperative events, which this context does not enable: retry, but not for ever. */
static int wp_pages(MigWpLog *l, size_t first, size_t n, int wp)
{
	int ret, tries = 0;

	do
		ret = mig_uffd_wp(l->uffd, (void *)(l->start + first * l->page_size),
				  n * l->page_size, wp);
	while (ret == -EAGAIN && ++tries < 1000);
	return ret;
}

/* With lock held: give up tracking. Unregistering drops the protection and wakes every
 * writer waiting on a fault, which nobody would otherwise answer; collect then reports
 * everything and fails. */
static void fail_locked(MigWpLog *l, int err)
{
	if (!l->failed) {
		l->failed = err;
		mig_uffd_unregister(l->uffd, (void *)l->start, l->len);
	}
}

static void log_fault(MigWpLog *l, uint64_t addr)
{
	size_t p, w;
	unsigned long bit;
	int ret;

	/* The kernel only reports addresses in registered ranges; never trust it with
	 * our bitmap anyway. */
	if (addr < l->start || addr >= l->start + l->len)
		return;
	p = (size_t)(addr - l->start) / l->page_size;
	w = p / BITS_PER_ULONG;
	bit = 1UL << (p % BITS_PER_ULONG);
	pthread_mutex_lock(&l->lock);
	if (!l->failed) {
		if (!l->logged[w])
			l->words[l->nlisted++] = w;
		l->logged[w] |= bit;
		ret = wp_pages(l, p, 1, 0);
		if (ret < 0 && ret != -ENOENT)	/* ENOENT: free() unregistered it already */
			fail_locked(l, ret);
	}
	pthread_mutex_unlock(&l->lock);
}

static void *log_thread(void *arg)
{
	MigWpLog *l = arg;
	struct uffd_msg msg[MSG_BATCH];
	int err = 0;

	pthread_setname_np(pthread_self(), "mig/wplog");
	while (!err) {
		struct pollfd pfd[2] = {
			{ .fd = l->uffd, .events = POLLIN },
			{ .fd = l->stopfd, .events = POLLIN },
		};
		ssize_t n;

		/* No timeout: the only peer is this process's writers, and free() wakes us. */
		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				err = -errno;
			continue;
		}
		if (pfd[1].revents)
			return NULL;
		n = read(l->uffd, msg, sizeof(msg));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				err = -errno;
			continue;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				log_fault(l, msg[i].arg.pagefault.address);
	}
	pthread_mutex_lock(&l->lock);
	fail_locked(l, err);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int mig_wp_log_new(void *addr, size_t len, size_t page_size, MigWpLog **out)
{
	uintptr_t start = (uintptr_t)addr;
	uint64_t features;
	MigUffdInfo info = { 0 };
	MigWpLog *l;
	int ret;

	*out = NULL;
	if (mig_uffd_check_range(addr, len, page_size) < 0)
		return -EINVAL;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->start = start;
	l->len = len;
	l->page_size = page_size;
	l->npages = len / page_size;
	l->nwords = (l->npages + BITS_PER_ULONG - 1) / BITS_PER_ULONG;
	l->uffd = l->stopfd = -1;
	pthread_mutex_init(&l->lock, NULL);
	l->logged = calloc(l->nwords, sizeof(*l->logged));
	l->words = calloc(l->nwords, sizeof(*l->words));
	if (!l->logged || !l->words) {
		ret = -ENOMEM;
		goto err;
	}

	/* Markers on never-touched ptes are what makes a first-ever write fault: anon
	 * needs WP_UNPOPULATED, shmem and hugetlb WP_HUGETLBFS_SHMEM. Which one this
	 * range needs is only known at UFFDIO_REGISTER, so ask for what exists. */
	features = mig_uffd_probe_features() &
		   (UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	if (!(features & UFFD_FEATURE_WP_UNPOPULATED)) {
		ret = -EOPNOTSUPP;
		goto err;
	}
	l->uffd = mig_uffd_open(features, O_NONBLOCK, &info);
	if (l->uffd < 0) {
		ret = l->uffd;
		goto err;
	}
	ret = mig_uffd_register_wp(l->uffd, addr, len, !!(features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
	if (ret < 0)
		goto err;
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stopfd < 0) {
		ret = -errno;
		goto err_unregister;
	}
	ret = -pthread_create(&l->thread, NULL, log_thread, l);
	if (ret < 0)
		goto err_unregister;
	l->thread_started = 1;
	*out = l;
	return 0;

err_unregister:
	mig_uffd_unregister(l->uffd, addr, len);
err:
	if (l->stopfd >= 0)
		close(l->stopfd);
	if (l->uffd >= 0)
		close(l->uffd);
	pthread_mutex_destroy(&l->lock);
	free(l->logged);
	free(l->words);
	free(l);
	return ret;
}

/* With lock held: forget every logged page. */
static void clear_log(MigWpLog *l)
{
	for (size_t i = 0; i < l->nlisted; i++)
		l->logged[l->words[i]] = 0;
	l->nlisted = 0;
}

int mig_wp_log_arm(MigWpLog *l)
{
	int ret;

	pthread_mutex_lock(&l->lock);
	ret = l->failed;
	if (!ret) {
		/* Protect first, then forget: a page logged while this runs was written
		 * before it finished, and re-arming forgets such writes by contract. */
		ret = wp_pages(l, 0, l->npages, 1);
		clear_log(l);
		if (!ret)
			l->armed = 1;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* With lock held: re-protects every logged page, one ioctl per run of consecutive
 * pages (runs may span words: the words are taken in address order), and moves the
 * log into bitmap. */
static int reprotect_log(MigWpLog *l, unsigned long *bitmap, unsigned long *groups, unsigned shift,
			 uint64_t *found)
{
	size_t run = 0, run_end = 0;	/* pending run [run, run_end), empty if equal */
	int ret = 0;

	qsort(l->words, l->nlisted, sizeof(*l->words), cmp_size);
	for (size_t i = 0; !ret && i < l->nlisted; i++) {
		size_t w = l->words[i];
		unsigned long bits = l->logged[w];

		while (bits && !ret) {
			unsigned b = (unsigned)__builtin_ctzl(bits);
			unsigned e = b;

			while (e < BITS_PER_ULONG && (bits >> e & 1))
				e++;
			if (w * BITS_PER_ULONG + b != run_end) {
				if (run_end > run)
					ret = wp_pages(l, run, run_end - run, 1);
				run = w * BITS_PER_ULONG + b;
			}
			run_end = w * BITS_PER_ULONG + e;
			if (groups)
				mig_uffd_mark_groups(groups, shift, w * BITS_PER_ULONG + b, e - b);
			bits &= e < BITS_PER_ULONG ? ~0UL << e : 0;
		}
		bitmap[w] |= l->logged[w];
		*found += (uint64_t)__builtin_popcountl(l->logged[w]);
		l->logged[w] = 0;
	}
	if (!ret && run_end > run)
		ret = wp_pages(l, run, run_end - run, 1);
	return ret;
}

int mig_wp_log_collect(MigWpLog *l, unsigned long *bitmap, uint64_t *ndirty)
{
	return mig_wp_log_collect_marked(l, bitmap, NULL, 0, ndirty);
}

int mig_wp_log_collect_marked(MigWpLog *l, unsigned long *bitmap, unsigned long *groups, unsigned group_shift,
			      uint64_t *ndirty)
{
	uint64_t found = 0;
	int ret;

	pthread_mutex_lock(&l->lock);
	ret = l->failed ? l->failed : l->armed ? 0 : -EINVAL;
	if (!ret)
		ret = reprotect_log(l, bitmap, groups, group_shift, &found);
	if (ret) {
		/* Some pages may be re-protected and not reported, or reported and not
		 * re-protected: report everything. */
		for (size_t w = 0; w < l->nwords; w++)
			bitmap[w] |= w + 1 < l->nwords || !(l->npages % BITS_PER_ULONG)
					     ? ~0UL : (1UL << (l->npages % BITS_PER_ULONG)) - 1;
		if (groups)
			mig_uffd_mark_groups(groups, group_shift, 0, l->npages);
		found = l->npages;
		clear_log(l);
	}
	l->nlisted = 0;
	pthread_mutex_unlock(&l->lock);
	if (ndirty)
		*ndirty = found;
	return ret;
}

void mig_wp_log_free(MigWpLog *l)
{
	uint64_t one = 1;

	if (!l)
		return;
	/* Unregister first: it drops the protection and wakes every blocked writer, so
	 * none is left waiting for a thread that is about to stop. */
	mig_uffd_unregister(l->uffd, (void *)l->start, l->len);
	if (l->thread_started) {
		if (write(l->stopfd, &one, sizeof(one)) != sizeof(one))
			abort();	/* an eventfd write of 1 cannot fail; never leak a thread */
		pthread_join(l->thread, NULL);
	}
	close(l->stopfd);
	close(l->uffd);
	pthread_mutex_destroy(&l->lock);
	free(l->logged);
	free(l->words);
	free(l);
}
