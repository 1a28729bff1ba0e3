/* uffd-probe: what does this kernel offer, does async uffd-wp dirty tracking work on
 * each memory type, and what does it cost, against the sync fault log (wp_log). Not a
 * test; run by hand:
 *
 *   uffd-probe [MiB]      (default 1024; hugetlb is measured only if enough 2 MiB
 *                          pages are free, see /proc/sys/vm/nr_hugepages)
 *   uffd-probe MiB log    the scan against the sync log only
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>

#include "uffd/wp_log.h"
#include "uffd/wp_tracker.h"
#include "uffd/testmem.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static const char *kind_name(TmKind k)
{
	static const char *const names[] = { "anon", "anon-thp", "memfd", "hugetlb-2M" };

	return names[k];
}

static void print_features(void)
{
	uint64_t f = mig_uffd_probe_features();

	printf("mig_uffd_probe_features() = 0x%" PRIx64 "\n ", f);
	for (int i = 0; i < 64; i++) {
		const char *n = tm_feature_name(1ULL << i);

		if (f & (1ULL << i))
			printf(" %s", n ? n : "?");
	}
	printf("\n");
}

/* Does arm / write / collect report exactly the written page on this memory? */
static void functional(TmKind kind)
{
	size_t len = kind == TM_HUGETLB ? 4 * TM_HUGE_2M : 4UL << 20;
	unsigned long map[64] = { 0 };
	MigWpTracker *t;
	uint64_t n1 = 0, n2 = 0;
	TmMem m;
	int ret;

	ret = tm_map(kind, len, &m);
	if (ret < 0) {
		printf("  %-10s  cannot map: %s\n", kind_name(kind), strerror(-ret));
		return;
	}
	/* THP populated, so the write splits a protected huge page: a first write where
	 * there is no page table yet maps a whole huge page, reported whole (wp_tracker.c). */
	if (kind == TM_ANON_THP)
		memset(m.base, 0, m.len);
	ret = mig_wp_tracker_new(m.base, m.len, m.page_size, &t);
	if (ret < 0) {
		printf("  %-10s  WP_ASYNC tracker: NO (%s)\n", kind_name(kind), strerror(-ret));
		tm_unmap(&m);
		return;
	}
	mig_wp_tracker_arm(t);
	m.base[m.len - 1] = 1;
	ret = mig_wp_tracker_collect(t, map, &n1);
	mig_wp_tracker_collect(t, map, &n2);
	printf("  %-10s  WP_ASYNC tracker: %s (ret %d, first collect %" PRIu64
	       " page(s), second %" PRIu64 ")\n", kind_name(kind),
	       ret == 0 && n1 == 1 && n2 == 0 && tm_test_bit(map, m.npages - 1) ? "yes" : "BROKEN",
	       ret, n1, n2);
	mig_wp_tracker_free(t);
	tm_unmap(&m);
}

#define ROUNDS 7

/* PAGEMAP_SCAN straight from here, to compare arm strategies and vector sizes. */
static long raw_scan(int pm, const TmMem *m, uint64_t flags, uint64_t cat, struct page_region *vec,
		     size_t vec_len, uint64_t *pages)
{
	struct pm_scan_arg a = {
		.size = sizeof(a), .flags = flags,
		.start = (uintptr_t)m->base, .end = (uintptr_t)m->base + m->len,
		.vec = (uintptr_t)vec, .vec_len = vec_len,
		.category_mask = cat, .return_mask = cat,
	};
	long calls = 0;

	*pages = 0;
	for (;;) {
		long n = ioctl(pm, PAGEMAP_SCAN, &a);

		calls++;
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			*pages += (vec[i].end - vec[i].start) / m->page_size;
		if (a.walk_end >= a.end || !vec_len)
			return calls;
		a.start = a.walk_end;
	}
}

/* The two ways to arm, on a raw async-WP uffd: UFFDIO_WRITEPROTECT over the range, or
 * PAGEMAP_SCAN(PM_SCAN_WP_MATCHING) without an output vector. */
static void arm_compare(TmKind kind, size_t len)
{
	const uint64_t feat = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
			      UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	double fresh[2], wp[ROUNDS], scan[ROUNDS], t0;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t pages;

	for (int way = 0; way < 2; way++) {
		TmMem m;
		int fd;

		if (tm_map(kind, len, &m) < 0)
			goto out;
		fd = mig_uffd_open(feat, 0, NULL);
		if (fd < 0 || mig_uffd_register(fd, m.base, m.len, UFFDIO_REGISTER_MODE_WP, NULL) < 0) {
			tm_unmap(&m);
			goto out;
		}
		t0 = now_ms();
		if (way == 0)
			mig_uffd_wp(fd, m.base, m.len, 1);
		else
			raw_scan(pm, &m, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, NULL, 0, &pages);
		fresh[way] = now_ms() - t0;
		if (way == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				memset(m.base, 0x5b + r, m.len);
				t0 = now_ms();
				mig_uffd_wp(fd, m.base, m.len, 1);
				wp[r] = now_ms() - t0;
				memset(m.base, 0x6b + r, m.len);
				t0 = now_ms();
				raw_scan(pm, &m, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, NULL, 0,
					 &pages);
				scan[r] = now_ms() - t0;
			}
		}
		close(fd);
		tm_unmap(&m);
	}
	qsort(wp, ROUNDS, sizeof(double), cmp_double);
	qsort(scan, ROUNDS, sizeof(double), cmp_double);
	printf("    arm never-touched:  UFFDIO_WRITEPROTECT %7.2f ms   PAGEMAP_SCAN %7.2f ms\n",
	       fresh[0], fresh[1]);
	printf("    arm all written:    UFFDIO_WRITEPROTECT %7.2f ms   PAGEMAP_SCAN %7.2f ms (medians)\n",
	       wp[ROUNDS / 2], scan[ROUNDS / 2]);
out:
	close(pm);
}

static void bench(TmKind kind, size_t len)
{
	size_t nlongs, ndirty;
	unsigned long *map;
	double t0, arm_first, arm_again, coll[ROUNDS], coll0[ROUNDS], big[ROUNDS];
	struct page_region *vec;
	MigWpTracker *t;
	uint64_t n = 0, pages;
	uint32_t x = 0x9e3779b9;
	long calls = 0;
	int pm, ret;
	TmMem m;

	ret = tm_map(kind, len, &m);
	if (ret < 0) {
		printf("  %-10s  cannot map %zu MiB: %s\n", kind_name(kind), len >> 20, strerror(-ret));
		return;
	}
	nlongs = tm_bitmap_longs(m.npages);
	map = calloc(nlongs, sizeof(long));
	vec = calloc(4096, sizeof(*vec));
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ndirty = m.npages / 100;

	/* Unpopulated first: arm finds no page table to protect (wp_tracker.c, "Untouched
	 * memory"), so the collect after the memset walks a gap; hugetlb arms it whole. */
	if (mig_wp_tracker_new(m.base, m.len, m.page_size, &t) < 0) {
		printf("  %-10s  no tracker\n", kind_name(kind));
		goto out;
	}
	t0 = now_ms();
	mig_wp_tracker_arm(t);
	arm_first = now_ms() - t0;
	memset(m.base, 0x5a, m.len);	/* now everything is populated and written */
	t0 = now_ms();
	mig_wp_tracker_collect(t, map, &n);
	printf("  %-10s  %zu MiB, %zu pages of %zu KiB\n", kind_name(kind), len >> 20, m.npages,
	       m.page_size >> 10);
	printf("    mig_wp_tracker_arm, never-touched:                    %6.2f ms\n", arm_first);
	printf("    collect, 100%% written:                                %6.2f ms (%" PRIu64 " pages)\n",
	       now_ms() - t0, n);

	t0 = now_ms();
	mig_wp_tracker_arm(t);
	arm_again = now_ms() - t0;
	printf("    arm, nothing written since:                           %6.2f ms\n", arm_again);

	for (int r = 0; r < ROUNDS; r++) {
		memset(map, 0, nlongs * sizeof(long));
		for (size_t i = 0; i < ndirty; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			m.base[(x % m.npages) * m.page_size + (x % 64)]++;
		}
		t0 = now_ms();
		mig_wp_tracker_collect(t, map, &n);
		coll[r] = now_ms() - t0;

		t0 = now_ms();
		mig_wp_tracker_collect(t, map, &n);
		coll0[r] = now_ms() - t0;

		/* same 1% again, collected with a 4096-region vector */
		for (size_t i = 0; i < ndirty; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			m.base[(x % m.npages) * m.page_size + (x % 64)]++;
		}
		t0 = now_ms();
		calls = raw_scan(pm, &m, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, PAGE_IS_WRITTEN,
				 vec, 4096, &pages);
		big[r] = now_ms() - t0;
	}
	qsort(coll, ROUNDS, sizeof(double), cmp_double);
	qsort(coll0, ROUNDS, sizeof(double), cmp_double);
	qsort(big, ROUNDS, sizeof(double), cmp_double);
	printf("    collect, 1%% random (%zu writes), 512-vec:    median %6.2f ms  (min %.2f max %.2f)\n",
	       ndirty, coll[ROUNDS / 2], coll[0], coll[ROUNDS - 1]);
	printf("    collect, 1%% random, raw 4096-vec (%ld ioctl):  median %6.2f ms\n", calls,
	       big[ROUNDS / 2]);
	printf("    collect, nothing written:                      median %6.2f ms\n",
	       coll0[ROUNDS / 2]);
	mig_wp_tracker_free(t);
	arm_compare(kind, len);
out:
	close(pm);
	free(vec);
	free(map);
	tm_unmap(&m);
}

/* This thread's CPU time in ms: what preemption by others does not add to. */
static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Writes one byte in each of n random pages; returns ms, and the writer's CPU ms in *cpu. */
static double scatter(const TmMem *m, size_t n, uint32_t *x, double *cpu)
{
	double t0 = now_ms(), c0 = cpu_ms();

	for (size_t i = 0; i < n; i++) {
		*x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
		m->base[(*x % m->npages) * m->page_size + (*x % 64)]++;
	}
	*cpu = cpu_ms() - c0;
	return now_ms() - t0;
}

/* The scan's collect against the log's, with 0, 100 and 1% of the pages written since
 * the previous one (what the last collect of a migration costs), and what a first
 * write costs the writer under each. All memory populated and written beforehand. */
static void bench_log(TmKind kind, size_t len)
{
	static const size_t fixed[] = { 0, 100 };
	size_t nlongs, sizes[3];
	double scan[3][ROUNDS], logc[3][ROUNDS], wscan[ROUNDS], wlog[ROUNDS], wnone[ROUNDS], t0, c;
	double cscan[ROUNDS], clog[ROUNDS], cnone[ROUNDS];
	unsigned long *map;
	MigWpTracker *t;
	MigWpLog *l;
	uint32_t x = 0x2545f491;
	uint64_t n = 0;
	TmMem m;
	int ret;

	ret = tm_map(kind, len, &m);
	if (ret < 0) {
		printf("  %-10s  cannot map %zu MiB: %s\n", kind_name(kind), len >> 20, strerror(-ret));
		return;
	}
	memset(m.base, 0x5a, m.len);
	nlongs = tm_bitmap_longs(m.npages);
	map = calloc(nlongs, sizeof(long));
	sizes[0] = fixed[0];
	sizes[1] = fixed[1];
	sizes[2] = m.npages / 100;

	if (mig_wp_tracker_new(m.base, m.len, m.page_size, &t) < 0 || mig_wp_tracker_arm(t) < 0) {
		printf("  %-10s  no scan tracker\n", kind_name(kind));
		goto out;
	}
	for (int r = 0; r < ROUNDS; r++)
		for (int k = 0; k < 3; k++) {
			double w = scatter(&m, sizes[k], &x, &c);

			if (k == 2)
				wscan[r] = w, cscan[r] = c;
			t0 = now_ms();
			mig_wp_tracker_collect(t, map, &n);
			scan[k][r] = now_ms() - t0;
		}
	mig_wp_tracker_free(t);

	if (mig_wp_log_new(m.base, m.len, m.page_size, &l) < 0) {
		printf("  %-10s  no log tracker\n", kind_name(kind));
		goto out;
	}
	t0 = now_ms();
	mig_wp_log_arm(l);
	printf("  %-10s  %zu MiB, all written; scan = wp_tracker, log = wp_log; median of %d\n",
	       kind_name(kind), len >> 20, ROUNDS);
	printf("    log arm (UFFDIO_WRITEPROTECT of all):                  %7.3f ms\n", now_ms() - t0);
	for (int r = 0; r < ROUNDS; r++)
		for (int k = 0; k < 3; k++) {
			double w = scatter(&m, sizes[k], &x, &c);

			if (k == 2)
				wlog[r] = w, clog[r] = c;
			t0 = now_ms();
			mig_wp_log_collect(l, map, &n);
			logc[k][r] = now_ms() - t0;
		}
	mig_wp_log_free(l);
	/* the same writes with nothing tracking: the floor both are measured against (the
	 * cache and TLB misses of random pages) */
	for (int r = 0; r < ROUNDS; r++)
		wnone[r] = scatter(&m, sizes[2], &x, &cnone[r]);
	for (int k = 0; k < 3; k++) {
		qsort(scan[k], ROUNDS, sizeof(double), cmp_double);
		qsort(logc[k], ROUNDS, sizeof(double), cmp_double);
		printf("    collect, %6zu pages written since:  scan %7.3f ms   log %7.3f ms\n", sizes[k],
		       scan[k][ROUNDS / 2], logc[k][ROUNDS / 2]);
	}
	qsort(wscan, ROUNDS, sizeof(double), cmp_double);
	qsort(wlog, ROUNDS, sizeof(double), cmp_double);
	qsort(wnone, ROUNDS, sizeof(double), cmp_double);
	qsort(cscan, ROUNDS, sizeof(double), cmp_double);
	qsort(clog, ROUNDS, sizeof(double), cmp_double);
	qsort(cnone, ROUNDS, sizeof(double), cmp_double);
	/* the least of the rounds beside the median: preemption only ever adds, so on a
	 * shared machine the least is the nearer to what the write itself costs */
	printf("    first write to a page, the writer's cost:  scan %6.2f us   log %6.2f us   untracked %6.2f us\n",
	       wscan[ROUNDS / 2] * 1000 / (double)sizes[2], wlog[ROUNDS / 2] * 1000 / (double)sizes[2],
	       wnone[ROUNDS / 2] * 1000 / (double)sizes[2]);
	printf("                          least of %d rounds:  scan %6.2f us   log %6.2f us   untracked %6.2f us\n",
	       ROUNDS, wscan[0] * 1000 / (double)sizes[2], wlog[0] * 1000 / (double)sizes[2],
	       wnone[0] * 1000 / (double)sizes[2]);
	/* the writer's own CPU: all of an async fault's cost, of the log's only the trap
	 * and the wake-up, not the wait for mig/wplog's answer */
	printf("                    the writer's CPU, median:  scan %6.2f us   log %6.2f us   untracked %6.2f us\n",
	       cscan[ROUNDS / 2] * 1000 / (double)sizes[2], clog[ROUNDS / 2] * 1000 / (double)sizes[2],
	       cnone[ROUNDS / 2] * 1000 / (double)sizes[2]);
out:
	free(map);
	tm_unmap(&m);
}

/* Corner: MADV_DONTNEED on tracked anon memory changes contents (to zero). */
static void dontneed(void)
{
	size_t len = 8 * TM_HUGE_2M;
	unsigned long map[64];
	MigWpTracker *t;
	uint64_t n = 0;
	TmMem m;

	if (tm_map(TM_ANON, len, &m) < 0)
		return;
	memset(m.base, 1, len);
	if (mig_wp_tracker_new(m.base, len, m.page_size, &t) < 0) {
		tm_unmap(&m);
		return;
	}
	mig_wp_tracker_arm(t);
	madvise(m.base + 5 * 4096, 4096, MADV_DONTNEED);
	memset(map, 0, sizeof(map));
	mig_wp_tracker_collect(t, map, &n);
	printf("  MADV_DONTNEED of 1 page after arm:      reported %" PRIu64 " page(s)\n", n);
	madvise(m.base + TM_HUGE_2M, TM_HUGE_2M, MADV_DONTNEED);
	memset(map, 0, sizeof(map));
	mig_wp_tracker_collect(t, map, &n);
	printf("  MADV_DONTNEED of a whole 2 MiB table:   reported %" PRIu64 " page(s) of 512\n", n);
	mig_wp_tracker_free(t);
	tm_unmap(&m);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 1024;
	long huge_free = tm_read_long(TM_HUGE_SYSFS "free_hugepages");

	if (argc > 2 && !strcmp(argv[2], "log"))
		goto log;
	print_features();
	printf("functional check:\n");
	functional(TM_ANON);
	functional(TM_ANON_THP);
	functional(TM_MEMFD);
	if (huge_free >= 4)
		functional(TM_HUGETLB);
	else
		printf("  hugetlb-2M  skipped: %ld free 2 MiB pages\n", huge_free);
	printf("corner cases:\n");
	dontneed();
	printf("cost:\n");
	bench(TM_ANON, mib << 20);
	bench(TM_MEMFD, mib << 20);
	if (huge_free >= (long)(mib / 2))
		bench(TM_HUGETLB, mib << 20);
	else
		printf("  hugetlb-2M  skipped: %ld free 2 MiB pages, need %zu\n", huge_free, mib / 2);
log:
	printf("the scan against the sync log:\n");
	bench_log(TM_ANON, mib << 20);
	bench_log(TM_MEMFD, mib << 20);
	return 0;
}
