/* Memory on the three backends mig runs guests on, plus huge page reservation, for the
 * programs that exercise userfaultfd outside a migration: the uffd and bpf unit tests and
 * tools/bench's uffd-place-bench. Here, below both, so a tool need not include tests/.
 * Header-only (static functions) so each program stays one file; libmig does not use it. */
#pragma once
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffd/uffd.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

typedef enum { TM_ANON, TM_ANON_THP, TM_MEMFD, TM_HUGETLB } TmKind;

typedef struct {
	TmKind kind;
	const char *name;
} TmBackend;

typedef struct {
	TmKind kind;
	char *base;
	size_t len;
	size_t page_size;
	size_t npages;
	int fd;
} TmMem;

#define TM_HUGE_2M (2UL << 20)
#define TM_HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

static inline long tm_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static inline int tm_write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -errno;
	ok = fprintf(f, "%ld\n", v) > 0;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : -EIO;
}

/* Make sure at least `want` 2 MiB pages are free, raising nr_hugepages only when
 * needed. Remembers what it did in *r so tm_release_huge() can undo exactly that. */
typedef struct {
	long orig;	/* nr_hugepages before, or -1 if we did not touch it */
	long set;	/* what we wrote */
} TmHugeResv;

static inline int tm_reserve_huge(long want, TmHugeResv *r)
{
	long nr = tm_read_long(TM_HUGE_SYSFS "nr_hugepages");
	/* pages another process reserved (mapped, not yet touched) are not ours to use */
	long fr = tm_read_long(TM_HUGE_SYSFS "free_hugepages") - tm_read_long(TM_HUGE_SYSFS "resv_hugepages");

	r->orig = r->set = -1;
	if (nr < 0 || fr < 0)
		return -ENOENT;
	if (fr >= want)
		return 0;
	if (tm_write_long(TM_HUGE_SYSFS "nr_hugepages", nr + (want - fr)) < 0)
		return -EACCES;
	r->orig = nr;
	r->set = nr + (want - fr);
	/* The kernel may grant fewer than asked if memory is fragmented. */
	return tm_read_long(TM_HUGE_SYSFS "free_hugepages") - tm_read_long(TM_HUGE_SYSFS "resv_hugepages") >= want
		       ? 0 : -ENOMEM;
}

/* Give back what tm_reserve_huge added, unless someone else changed the pool since:
 * other suites may be sizing it concurrently, and their value wins. */
static inline void tm_release_huge(const TmHugeResv *r)
{
	if (r->orig >= 0 && tm_read_long(TM_HUGE_SYSFS "nr_hugepages") == r->set)
		tm_write_long(TM_HUGE_SYSFS "nr_hugepages", r->orig);
}

static inline int tm_map(TmKind kind, size_t len, TmMem *m)
{
	memset(m, 0, sizeof(*m));
	m->kind = kind;
	m->fd = -1;
	m->len = len;
	m->page_size = (size_t)sysconf(_SC_PAGESIZE);

	switch (kind) {
	case TM_ANON:
	case TM_ANON_THP:
		/* Over-map so a THP-eligible 2 MiB-aligned start exists. */
		m->base = mmap(NULL, len + TM_HUGE_2M, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m->base == MAP_FAILED)
			return -errno;
		{
			uintptr_t b = (uintptr_t)m->base;
			uintptr_t a = (b + TM_HUGE_2M - 1) & ~(TM_HUGE_2M - 1);

			if (a > b)
				munmap(m->base, a - b);
			if (a + len < b + len + TM_HUGE_2M)
				munmap((void *)(a + len), b + len + TM_HUGE_2M - (a + len));
			m->base = (char *)a;
		}
		madvise(m->base, len, kind == TM_ANON_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		break;
	case TM_MEMFD:
	case TM_HUGETLB:
		if (kind == TM_HUGETLB)
			m->page_size = TM_HUGE_2M;
		m->fd = memfd_create("mig-uffd-test",
				     MFD_CLOEXEC | (kind == TM_HUGETLB ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
		if (m->fd < 0)
			return -errno;
		if (ftruncate(m->fd, (off_t)len) < 0) {
			int e = errno;

			close(m->fd);
			return -e;
		}
		m->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
		if (m->base == MAP_FAILED) {
			int e = errno;

			close(m->fd);
			return -e;
		}
		break;
	}
	m->npages = len / m->page_size;
	return 0;
}

static inline void tm_unmap(TmMem *m)
{
	if (m->base)
		munmap(m->base, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->fd = -1;
}

static inline const char *tm_feature_name(uint64_t bit)
{
	switch (bit) {
	case UFFD_FEATURE_PAGEFAULT_FLAG_WP: return "PAGEFAULT_FLAG_WP";
	case UFFD_FEATURE_EVENT_FORK: return "EVENT_FORK";
	case UFFD_FEATURE_EVENT_REMAP: return "EVENT_REMAP";
	case UFFD_FEATURE_EVENT_REMOVE: return "EVENT_REMOVE";
	case UFFD_FEATURE_MISSING_HUGETLBFS: return "MISSING_HUGETLBFS";
	case UFFD_FEATURE_MISSING_SHMEM: return "MISSING_SHMEM";
	case UFFD_FEATURE_EVENT_UNMAP: return "EVENT_UNMAP";
	case UFFD_FEATURE_SIGBUS: return "SIGBUS";
	case UFFD_FEATURE_THREAD_ID: return "THREAD_ID";
	case UFFD_FEATURE_MINOR_HUGETLBFS: return "MINOR_HUGETLBFS";
	case UFFD_FEATURE_MINOR_SHMEM: return "MINOR_SHMEM";
	case UFFD_FEATURE_EXACT_ADDRESS: return "EXACT_ADDRESS";
	case UFFD_FEATURE_WP_HUGETLBFS_SHMEM: return "WP_HUGETLBFS_SHMEM";
	case UFFD_FEATURE_WP_UNPOPULATED: return "WP_UNPOPULATED";
	case UFFD_FEATURE_POISON: return "POISON";
	case UFFD_FEATURE_WP_ASYNC: return "WP_ASYNC";
	case UFFD_FEATURE_MOVE: return "MOVE";
	default: return NULL;
	}
}

/* Name of the first tracker feature the kernel lacks, for skip messages. */
static inline const char *tm_missing_wp_feature(TmKind kind)
{
	uint64_t have = mig_uffd_probe_features();

	if (!(have & UFFD_FEATURE_WP_ASYNC))
		return "UFFD_FEATURE_WP_ASYNC";
	if (!(have & UFFD_FEATURE_WP_UNPOPULATED))
		return "UFFD_FEATURE_WP_UNPOPULATED";
	if ((kind == TM_MEMFD || kind == TM_HUGETLB) && !(have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return "UFFD_FEATURE_WP_HUGETLBFS_SHMEM";
	return "PAGEMAP_SCAN (PM_SCAN_CHECK_WPASYNC)";
}

/* Pages the kernel has migrated so far (compaction, NUMA balancing). A migration that
 * races with collect can re-report an unwritten page; tests use this to tell that
 * apart from a tracker bug. */
static inline unsigned long long tm_pgmigrate_success(void)
{
	char key[64];
	unsigned long long v, r = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fscanf(f, "%63s %llu", key, &v) == 2)
		if (!strcmp(key, "pgmigrate_success"))
			r = v;
	fclose(f);
	return r;
}

static inline int tm_test_bit(const unsigned long *map, size_t i)
{
	return (map[i / (8 * sizeof(long))] >> (i % (8 * sizeof(long)))) & 1;
}

static inline size_t tm_bitmap_longs(size_t nbits)
{
	return (nbits + 8 * sizeof(long) - 1) / (8 * sizeof(long));
}
