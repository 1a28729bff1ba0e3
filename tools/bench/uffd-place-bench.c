/* Postcopy placement on shared memory: UFFDIO_COPY against filling the page cache
 * through a second mapping and mapping it with UFFDIO_CONTINUE, for 4 KiB memfd and
 * 2 MiB hugetlb pages. A "vCPU" thread reads every page once, in order; a handler
 * thread resolves each fault the way the destination would with the page's bytes in
 * hand: COPY memcpys them into a receive buffer (what recv does today) and lets the
 * kernel copy that into a new page; CONTINUE memcpys them straight into the page cache
 * through the alias mapping (what recv into the alias would do) and maps that page.
 * Every placed page is compared with its source, so a wrong placement fails.
 *
 *   uffd-place-bench [--pages4k N] [--pages2m N] [--rounds N]   figures (docs/benchmarks.md)
 *   uffd-place-bench --check                                    small, as a test
 * Exit 77 when the kernel lacks a needed feature or huge pages. */
#include "uffd/place.h"
#include "uffd/testmem.h"
#include <poll.h>
#include <pthread.h>
#include <time.h>

#define SKIP 77

typedef enum { M_COPY, M_CONTINUE, N_METHODS } Method;
static const char *const method_names[N_METHODS] = { "copy", "continue" };

typedef struct {
	TmMem guest;
	char *alias;           /* the same file, mapped again, not registered */
	char *src, *buf;       /* the page bytes as they arrive; the receive buffer */
	int uffd;
	Method method;
	int error;             /* first handler failure, -errno */
	uint64_t handler_ns;   /* CPU time of the handler thread */
} Run;

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int resolve(Run *r, uint64_t addr)
{
	size_t ps = r->guest.page_size;
	size_t i = (addr - (uint64_t)(uintptr_t)r->guest.base) / ps;

	if (i >= r->guest.npages)
		return -EFAULT;
	if (r->method == M_COPY) {
		memcpy(r->buf, r->src + i * ps, ps);
		return mig_uffd_copy(r->uffd, r->guest.base + i * ps, r->buf, ps);
	}
	memcpy(r->alias + i * ps, r->src + i * ps, ps);
	return mig_uffd_continue(r->uffd, r->guest.base + i * ps, ps);
}

static void *handler(void *opaque)
{
	Run *r = opaque;
	size_t placed = 0;

	while (placed < r->guest.npages && !r->error) {
		struct pollfd p = { .fd = r->uffd, .events = POLLIN };
		struct uffd_msg msgs[16];
		int n;

		if (poll(&p, 1, 5000) <= 0) {
			r->error = -ETIMEDOUT;
			break;
		}
		n = mig_uffd_read_msgs(r->uffd, msgs, 16);
		if (n < 0)
			r->error = n;
		for (int k = 0; k < n && !r->error; k++) {
			int rc;

			if (msgs[k].event != UFFD_EVENT_PAGEFAULT)
				continue;
			rc = resolve(r, msgs[k].arg.pagefault.address);
			if (rc < 0 && rc != -EEXIST)
				r->error = rc;
			placed++;
		}
	}
	/* a failed handler must not leave the vCPU blocked: unregistering wakes it */
	if (r->error)
		mig_uffd_unregister(r->uffd, r->guest.base, r->guest.len);
	r->handler_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

typedef struct {
	double p50_us, p99_us, per_page_us, handler_us;
} Figures;

/* One round: fresh memory, every page faulted once. 0, SKIP or -errno. */
static int run_once(TmKind kind, size_t npages, Method m, const char *src, Figures *f)
{
	size_t ps = kind == TM_HUGETLB ? TM_HUGE_2M : (size_t)sysconf(_SC_PAGESIZE);
	uint64_t feat = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS |
			(m == M_CONTINUE ? (kind == TM_HUGETLB ? UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM) : 0);
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING | (m == M_CONTINUE ? UFFDIO_REGISTER_MODE_MINOR : 0);
	uint64_t *lat = calloc(npages, sizeof(*lat)), t0;
	Run r = { .method = m, .uffd = -1 };
	MigUffdInfo info;
	pthread_t th;
	int rc;

	if (!lat)
		return -ENOMEM;
	rc = tm_map(kind, npages * ps, &r.guest);
	if (rc < 0)
		goto out;
	r.alias = mmap(NULL, r.guest.len, PROT_READ | PROT_WRITE, MAP_SHARED, r.guest.fd, 0);
	r.buf = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	r.src = (char *)src;
	if (r.alias == MAP_FAILED || r.buf == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	r.uffd = mig_uffd_open(feat, O_NONBLOCK, &info);
	if (r.uffd == -EOPNOTSUPP) {
		rc = SKIP;
		goto out;
	}
	if (r.uffd < 0 || (rc = mig_uffd_register(r.uffd, r.guest.base, r.guest.len, mode, NULL)) < 0) {
		rc = r.uffd < 0 ? r.uffd : rc;
		goto out;
	}
	rc = -pthread_create(&th, NULL, handler, &r);
	if (rc < 0)
		goto out;
	pthread_setname_np(th, "uffdplace/fault");
	t0 = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < npages; i++) {
		uint64_t a = now_ns(CLOCK_MONOTONIC);

		(void)*(volatile char *)(r.guest.base + i * ps);
		lat[i] = now_ns(CLOCK_MONOTONIC) - a;
	}
	f->per_page_us = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e3 / (double)npages;
	pthread_join(th, NULL);
	rc = r.error;
	for (size_t i = 0; rc == 0 && i < npages; i++) {
		if (memcmp(r.guest.base + i * ps, src + i * ps, ps)) {
			fprintf(stderr, "%s: page %zu differs from its source after placement\n", method_names[m], i);
			rc = -EIO;
		}
	}
	qsort(lat, npages, sizeof(*lat), cmp_u64);
	f->p50_us = (double)lat[(npages - 1) / 2] / 1e3;
	f->p99_us = (double)lat[(npages - 1) * 99 / 100] / 1e3;
	f->handler_us = (double)r.handler_ns / 1e3 / (double)npages;
out:
	if (r.uffd >= 0)
		close(r.uffd);
	if (r.alias && r.alias != MAP_FAILED)
		munmap(r.alias, r.guest.len);
	if (r.buf && r.buf != MAP_FAILED)
		munmap(r.buf, ps);
	tm_unmap(&r.guest);
	free(lat);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The methods take turns, round after round; medians over the rounds. */
static int bench(TmKind kind, size_t npages, int rounds)
{
	size_t ps = kind == TM_HUGETLB ? TM_HUGE_2M : (size_t)sysconf(_SC_PAGESIZE);
	char *src = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double v[N_METHODS][4][64];
	int rc = 0;

	if (src == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < npages * ps / 8; i++)
		((uint64_t *)src)[i] = i * 0x9e3779b97f4a7c15ull + 1;
	for (int k = 0; k < rounds && rc == 0; k++) {
		for (int j = 0; j < N_METHODS && rc == 0; j++) {
			Method m = (Method)((j + k) % N_METHODS);
			Figures f = { 0 };

			rc = run_once(kind, npages, m, src, &f);
			v[m][0][k] = f.p50_us;
			v[m][1][k] = f.p99_us;
			v[m][2][k] = f.per_page_us;
			v[m][3][k] = f.handler_us;
		}
	}
	munmap(src, npages * ps);
	if (rc)
		return rc;
	for (int m = 0; m < N_METHODS; m++)
		printf("%-7s %-4s %-8s %7zu %10.2f %10.2f %12.2f %12.2f\n", kind == TM_HUGETLB ? "hugetlb" : "memfd",
		       kind == TM_HUGETLB ? "2M" : "4K", method_names[m], npages, median(v[m][0], rounds),
		       median(v[m][1], rounds), median(v[m][2], rounds), median(v[m][3], rounds));
	return 0;
}

int main(int argc, char **argv)
{
	size_t n4k = 16384, n2m = 64;
	int rounds = 5, check = 0, rc;
	TmHugeResv resv;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--check"))
			check = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--pages4k"))
			n4k = strtoul(argv[++i], NULL, 0);
		else if (i + 1 < argc && !strcmp(argv[i], "--pages2m"))
			n2m = strtoul(argv[++i], NULL, 0);
		else if (i + 1 < argc && !strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--check] [--pages4k N] [--pages2m N] [--rounds N (1..64)]\n", argv[0]);
			return 2;
		}
	}
	if (check) {
		n4k = 512;
		n2m = 8;
		rounds = 1;
	}
	if (rounds < 1 || rounds > 64 || !n4k || !n2m) {
		fprintf(stderr, "bad sizes or rounds\n");
		return 2;
	}
	printf("%-7s %-4s %-8s %7s %10s %10s %12s %12s\n", "backend", "page", "method", "pages", "p50 us", "p99 us",
	       "us/page", "handler us");
	rc = bench(TM_MEMFD, n4k, rounds);
	if (rc == 0) {
		if (tm_reserve_huge((long)n2m, &resv) < 0) {
			printf("SKIP-REASON: kernel lacks %zu free 2 MiB huge pages\n", n2m);
			return SKIP;
		}
		rc = bench(TM_HUGETLB, n2m, rounds);
		tm_release_huge(&resv);
	}
	if (rc == SKIP)
		printf("SKIP-REASON: kernel lacks userfaultfd MINOR faults on shared memory\n");
	else if (rc < 0)
		fprintf(stderr, "uffd-place-bench: %s\n", strerror(-rc));
	return rc == SKIP ? SKIP : rc < 0;
}
