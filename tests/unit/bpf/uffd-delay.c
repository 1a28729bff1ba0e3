/* uffd-delay: userfaultfd faults with a known, injected resolution delay, and the true
 * latency of each, as ground truth for mig-faultlat.
 *
 * Memory (anonymous 4K or hugetlb 2M memfd) is registered in MISSING mode. Faulting
 * threads touch fresh pages, timing each touch with CLOCK_MONOTONIC right around the
 * instruction; a handler thread answers each fault with UFFDIO_COPY `delay` after it
 * read it. Pages are dropped between passes so every touch is a fresh fault.
 *
 *   uffd-delay --mem 4k|2m --threads N --delay-us D [--faults F] [--rounds R] [--wait]
 *              [--gup] [--perf-wait]
 *
 * Prints one JSON line per round: count and p50/p90/p99/max of the true latencies. With
 * --wait it prints "ready PID ROUND" and reads a line from stdin before each round, so a
 * driver can attach a tracer first (or detach it, for the overhead comparison). --gup
 * touches through process_vm_readv(), so the faults come from get_user_pages() in the
 * kernel, as KVM's do, instead of a user-mode access.
 *
 * --perf-wait also times each wait the way mig-faultlat defines one, from the page
 * fault to the thread's first switch-in after it blocked, with the kernel's own records
 * (perf-wait.h), and checks that each lies inside its stopwatch interval. The round's
 * JSON then has a "wait" object with the same figures for those, and "unslept": touches
 * whose thread never blocked (the page came first), timed to the stopwatch's end.
 * Exit 77 with a SKIP-REASON line when the kernel lacks userfaultfd or huge pages. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "perf-wait.h"
#include "uffd/uffd.h"
#include "uffd/testmem.h"

#define EXIT_SKIP	77
#define PAGES_PER_PASS	64	/* also the most huge pages a run needs */
#define HUGE_2M		(2UL << 20)
#define MAX_THREADS	16
#define QUEUE_CAP	(PAGES_PER_PASS * 2)

struct opts {
	size_t pgsz;
	int threads;
	long delay_us;
	int faults;
	int rounds;
	bool wait;
	bool gup;
	bool perf_wait;
};

struct region {
	char *base;
	size_t len;
	size_t pgsz;
	int memfd;	/* hugetlb only, else -1 */
	TmHugeResv huge;	/* what reserving 2M pages changed, to undo exactly that */
};

/* Faults waiting for their delay to pass. One delay for all, so due times arrive in
 * order and a FIFO is a deadline queue. */
struct pending {
	uint64_t addr;
	uint64_t due_ns;
};

struct handler {
	pthread_t th;
	int uffd;
	int stopfd;
	size_t pgsz;
	const char *src;	/* page-sized contents every fault gets */
	uint64_t delay_ns;
	struct pending q[QUEUE_CAP];
	unsigned int head, tail;
	int err;		/* first error, negative errno */
};

struct faulter {
	pthread_t th;
	int idx;
	const struct opts *o;
	struct region *mem;
	pthread_barrier_t *start, *done;
	int passes;		/* per round */
	uint64_t *lat;		/* this round's latencies, ns */
	size_t nlat;
	uint64_t *wlat;		/* the same touches' waits (--perf-wait), ns */
	size_t unslept;
	int err;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --mem 4k|2m --threads N --delay-us D [--faults F] "
		"[--rounds R] [--wait] [--gup] [--perf-wait]\n", argv0);
	exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ "faults", required_argument, NULL, 'f' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "wait", no_argument, NULL, 'w' },
		{ "gup", no_argument, NULL, 'g' },
		{ "perf-wait", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .pgsz = 4096, .threads = 1, .faults = 256, .rounds = 1 };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "4k"))
				o->pgsz = 4096;
			else if (!strcmp(optarg, "2m"))
				o->pgsz = HUGE_2M;
			else
				usage(argv[0]);
			break;
		case 't':
			o->threads = atoi(optarg);
			break;
		case 'd':
			o->delay_us = atol(optarg);
			break;
		case 'f':
			o->faults = atoi(optarg);
			break;
		case 'r':
			o->rounds = atoi(optarg);
			break;
		case 'w':
			o->wait = true;
			break;
		case 'g':
			o->gup = true;
			break;
		case 'P':
			o->perf_wait = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	/* Every thread gets the same share of a pass. */
	if (o->threads < 1 || o->threads > MAX_THREADS || PAGES_PER_PASS % o->threads ||
	    o->delay_us < 0 || o->faults < 1 || o->rounds < 1)
		usage(argv[0]);
}

static int map_region(struct region *r, size_t pgsz)
{
	*r = (struct region){ .pgsz = pgsz, .len = pgsz * PAGES_PER_PASS, .memfd = -1,
			      .huge = { -1, -1 } };
	if (pgsz == 4096) {
		r->base = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		return r->base == MAP_FAILED ? -errno : 0;
	}
	if (tm_reserve_huge(PAGES_PER_PASS, &r->huge))
		return -ENOMEM;
	r->memfd = memfd_create("uffd-delay", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	if (r->memfd < 0)
		return -errno;
	if (ftruncate(r->memfd, (off_t)r->len))
		return -errno;
	r->base = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	return r->base == MAP_FAILED ? -errno : 0;
}

/* Drops every page, so each next touch is a MISSING fault again. */
static int zap_region(const struct region *r)
{
	if (r->memfd < 0)
		return madvise(r->base, r->len, MADV_DONTNEED) ? -errno : 0;
	return fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			 (off_t)r->len) ? -errno : 0;
}

static void unmap_region(struct region *r)
{
	if (r->base && r->base != MAP_FAILED)
		munmap(r->base, r->len);
	if (r->memfd >= 0)
		close(r->memfd);
	tm_release_huge(&r->huge);
}

/* ---- the handler thread ---- */

static int resolve(struct handler *h, uint64_t addr)
{
	struct uffdio_copy c = { .dst = addr, .src = (uintptr_t)h->src, .len = h->pgsz };

	while (ioctl(h->uffd, UFFDIO_COPY, &c)) {
		if (errno == EAGAIN)	/* the mm is changing under us: try again */
			continue;
		if (errno != EEXIST)
			return -errno;
		/* Already there (cannot happen here, but must not strand the thread). */
		struct uffdio_range rg = { .start = addr, .len = h->pgsz };

		return ioctl(h->uffd, UFFDIO_WAKE, &rg) ? -errno : 0;
	}
	return 0;
}

static int take_faults(struct handler *h)
{
	struct uffd_msg msg[16];
	ssize_t n;

	for (;;) {
		n = read(h->uffd, msg, sizeof(msg));
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (h->tail - h->head == QUEUE_CAP)
				return -ENOSPC;
			h->q[h->tail++ % QUEUE_CAP] = (struct pending){
				.addr = msg[i].arg.pagefault.address & ~(uint64_t)(h->pgsz - 1),
				.due_ns = now_ns() + h->delay_ns,
			};
		}
	}
}

static int resolve_due(struct handler *h)
{
	int err;

	while (h->head != h->tail && h->q[h->head % QUEUE_CAP].due_ns <= now_ns()) {
		err = resolve(h, h->q[h->head % QUEUE_CAP].addr);
		if (err)
			return err;
		h->head++;
	}
	return 0;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->stopfd, .events = POLLIN },
	};
	struct timespec ts, *tmo;
	uint64_t now, due;

	/* The default 50 us timer slack would be added to every 100 us delay. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	while (!h->err) {
		tmo = NULL;
		if (h->head != h->tail) {
			due = h->q[h->head % QUEUE_CAP].due_ns;
			now = now_ns();
			due = due > now ? due - now : 0;
			ts = (struct timespec){ .tv_sec = (time_t)(due / 1000000000ULL),
						.tv_nsec = (long)(due % 1000000000ULL) };
			tmo = &ts;
		}
		if (ppoll(pfd, 2, tmo, NULL) < 0 && errno != EINTR) {
			h->err = -errno;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents)
			h->err = take_faults(h);
		if (!h->err)
			h->err = resolve_due(h);
	}
	return NULL;
}

/* ---- the faulting threads ---- */

/* One fresh page, timed around the access itself: t[0] before, t[1] after. */
static int touch(char *p, bool gup, uint64_t t[2])
{
	struct iovec local, remote = { .iov_base = p, .iov_len = 1 };
	char c;
	ssize_t n = 1;

	local = (struct iovec){ .iov_base = &c, .iov_len = 1 };
	t[0] = now_ns();
	__asm__ __volatile__("" ::: "memory");
	if (gup)
		n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	else
		*(volatile char *)p = 1;
	__asm__ __volatile__("" ::: "memory");
	t[1] = now_ns();
	return n == 1 ? 0 : -errno;
}

/* The kernel's view of the touch just timed: from the fault to the return to running.
 * It must lie inside the stopwatch's interval, which holds the exception entry before
 * it and the retry and return to user mode after it. */
static int touch_wait(struct faulter *f, struct perf_wait *pw, char *p, const uint64_t t[2])
{
	struct perf_wait_span w;
	int err;

	err = perf_wait_span(pw, (uintptr_t)p, f->mem->pgsz, f->o->gup, &w);
	if (err) {
		fprintf(stderr, "uffd-delay: %s\n", err == -ENOENT ? "no fault event for a touched page"
			: err == -EOVERFLOW ? "perf records lost" : "bad perf record");
		return err;
	}
	/* Never blocked: the page came first. The stopwatch is all there is to time it. */
	if (!w.end) {
		f->unslept++;
		w.start = w.start ? w.start : t[0];
		w.end = t[1];
	}
	if (w.start < t[0] || w.end > t[1] || w.end < w.start) {
		fprintf(stderr, "uffd-delay: wait %" PRIu64 "..%" PRIu64 " outside its touch %" PRIu64
			"..%" PRIu64 "\n", w.start, w.end, t[0], t[1]);
		return -ERANGE;
	}
	f->wlat[f->nlat] = w.end - w.start;
	return 0;
}

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	size_t per = PAGES_PER_PASS / (size_t)f->o->threads, first = per * (size_t)f->idx;
	struct perf_wait pw = { .fd = -1, .ring = MAP_FAILED };
	uint64_t t[2];
	char *p;

	if (f->o->perf_wait)
		f->err = perf_wait_open(&pw);
	for (int r = 0; r < f->o->rounds; r++) {
		for (int pass = 0; pass < f->passes; pass++) {
			pthread_barrier_wait(f->start);
			/* main() read last round's lat[] before letting us past start. */
			if (!pass) {
				f->nlat = 0;
				f->unslept = 0;
			}
			for (size_t i = 0; i < per && !f->err; i++) {
				p = f->mem->base + (first + i) * f->mem->pgsz;
				if (f->o->perf_wait)
					perf_wait_drain(&pw);
				f->err = touch(p, f->o->gup, t);
				if (!f->err && f->o->perf_wait)
					f->err = touch_wait(f, &pw, p, t);
				if (!f->err)
					f->lat[f->nlat++] = t[1] - t[0];
			}
			pthread_barrier_wait(f->done);
		}
	}
	perf_wait_close(&pw);
	return NULL;
}

/* ---- results ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, as mig-faultlat reports it. */
static double pct_us(const uint64_t *sorted, size_t n, double p)
{
	double want = p / 100.0 * (double)n;
	size_t rank = (size_t)want;

	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	return (double)sorted[rank - 1] / 1e3;
}

/* "count", the percentiles, max and mean of every thread's lat[] (or wlat[]). */
static void print_stats(struct faulter *f, int threads, bool waits, uint64_t *all)
{
	double sum = 0;
	size_t n = 0;

	for (int t = 0; t < threads; t++)
		for (size_t i = 0; i < f[t].nlat; i++)
			all[n++] = waits ? f[t].wlat[i] : f[t].lat[i];
	qsort(all, n, sizeof(*all), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)all[i];
	printf("\"count\":%zu,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f,"
	       "\"mean_us\":%.3f", n, n ? pct_us(all, n, 50) : 0, n ? pct_us(all, n, 90) : 0,
	       n ? pct_us(all, n, 99) : 0, n ? (double)all[n - 1] / 1e3 : 0,
	       n ? sum / (double)n / 1e3 : 0);
}

static void print_round(const struct opts *o, int round, struct faulter *f, uint64_t *all)
{
	size_t unslept = 0;

	printf("{\"mem\":\"%s\",\"threads\":%d,\"delay_us\":%ld,\"gup\":%s,\"round\":%d,",
	       o->pgsz == 4096 ? "4K" : "2M", o->threads, o->delay_us, o->gup ? "true" : "false",
	       round);
	print_stats(f, o->threads, false, all);
	if (o->perf_wait) {
		for (int t = 0; t < o->threads; t++)
			unslept += f[t].unslept;
		printf(",\"wait\":{");
		print_stats(f, o->threads, true, all);
		printf(",\"unslept\":%zu}", unslept);
	}
	printf("}\n");
	fflush(stdout);
}

/* "ready PID ROUND", then a line from the driver; false on EOF. */
static bool wait_go(int round)
{
	char line[64];

	printf("ready %d %d\n", (int)getpid(), round);
	fflush(stdout);
	return fgets(line, sizeof(line), stdin) != NULL;
}

static int start_threads(const struct opts *o, struct handler *h, struct faulter *f)
{
	char name[24];	/* pthread_setname_np takes 15 chars + NUL */
	int err;

	err = pthread_create(&h->th, NULL, handler_main, h);
	if (err)
		return -err;
	pthread_setname_np(h->th, "ud-handler");
	for (int t = 0; t < o->threads; t++) {
		err = pthread_create(&f[t].th, NULL, faulter_main, &f[t]);
		if (err)
			return -err;	/* main() cannot unwind half a barrier: it exits */
		snprintf(name, sizeof(name), "ud-fault-%d", t % MAX_THREADS);
		pthread_setname_np(f[t].th, name);
	}
	return 0;
}

/* Drives the barriers: per pass, release the faulters, wait, drop the pages. */
static int run_rounds(const struct opts *o, struct region *mem, pthread_barrier_t *start,
		      pthread_barrier_t *done, struct faulter *f, uint64_t *all, int passes)
{
	int err = 0, r;

	for (r = 0; r < o->rounds; r++) {
		bool go = !o->wait || wait_go(r);

		for (int pass = 0; pass < passes; pass++) {
			/* Without a go the threads still have to be walked through. */
			pthread_barrier_wait(start);
			pthread_barrier_wait(done);
			if (!err)
				err = zap_region(mem);
		}
		for (int t = 0; t < o->threads && !err; t++)
			err = f[t].err;
		if (!err && go)
			print_round(o, r, f, all);
	}
	return err;
}

int main(int argc, char **argv)
{
	struct faulter f[MAX_THREADS] = { 0 };
	pthread_barrier_t start, done;
	struct handler *h = NULL;
	struct region mem = { .memfd = -1, .huge = { -1, -1 } };
	struct opts o;
	uint64_t *all = NULL, one = 1;
	char *src = NULL;
	int passes, err;
	size_t per_thread;

	parse_opts(argc, argv, &o);
	passes = (o.faults + PAGES_PER_PASS - 1) / PAGES_PER_PASS;
	per_thread = (size_t)passes * PAGES_PER_PASS / (size_t)o.threads;

	err = map_region(&mem, o.pgsz);
	if (err) {
		printf("SKIP-REASON: kernel lacks %s memory (%s)\n",
		       o.pgsz == 4096 ? "anonymous" : "free 2M hugetlb", strerror(-err));
		unmap_region(&mem);
		return EXIT_SKIP;
	}
	h = calloc(1, sizeof(*h));
	all = calloc((size_t)passes * PAGES_PER_PASS, sizeof(*all));
	src = aligned_alloc(o.pgsz, o.pgsz);
	if (!h || !all || !src) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	memset(src, 0x5a, o.pgsz);

	/* Kernel-mode faults (--gup) need a uffd without UFFD_USER_MODE_ONLY: root. */
	h->uffd = mig_uffd_open(0, O_NONBLOCK, NULL);
	if (h->uffd < 0) {
		printf("SKIP-REASON: kernel lacks userfaultfd (%s)\n", strerror(-h->uffd));
		unmap_region(&mem);
		return EXIT_SKIP;
	}
	err = mig_uffd_register(h->uffd, mem.base, mem.len, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (err) {
		printf("SKIP-REASON: kernel lacks userfaultfd on %s memory (%s)\n",
		       o.pgsz == 4096 ? "anonymous" : "hugetlb", strerror(-err));
		unmap_region(&mem);
		return EXIT_SKIP;
	}
	if (o.perf_wait) {
		struct perf_wait pw;

		err = perf_wait_open(&pw);
		if (err) {
			printf("SKIP-REASON: kernel lacks perf software events (%s)\n", strerror(-err));
			unmap_region(&mem);
			return EXIT_SKIP;
		}
		perf_wait_close(&pw);
	}
	h->stopfd = eventfd(0, EFD_CLOEXEC);
	h->pgsz = o.pgsz;
	h->src = src;
	h->delay_ns = (uint64_t)o.delay_us * 1000;

	pthread_barrier_init(&start, NULL, (unsigned int)o.threads + 1);
	pthread_barrier_init(&done, NULL, (unsigned int)o.threads + 1);
	for (int t = 0; t < o.threads; t++) {
		f[t] = (struct faulter){ .idx = t, .o = &o, .mem = &mem, .start = &start,
					 .done = &done, .passes = passes };
		f[t].lat = calloc(per_thread, sizeof(uint64_t));
		f[t].wlat = calloc(per_thread, sizeof(uint64_t));
		if (!f[t].lat || !f[t].wlat)
			return 1;
	}
	err = start_threads(&o, h, f);
	if (err) {
		fprintf(stderr, "pthread_create: %s\n", strerror(-err));
		return 1;
	}

	err = run_rounds(&o, &mem, &start, &done, f, all, passes);

	for (int t = 0; t < o.threads; t++) {
		pthread_join(f[t].th, NULL);
		free(f[t].lat);
		free(f[t].wlat);
	}
	if (write(h->stopfd, &one, sizeof(one)) != sizeof(one))
		err = err ? err : -errno;
	pthread_join(h->th, NULL);
	if (!err)
		err = h->err;
	if (err)
		fprintf(stderr, "uffd-delay: %s\n", strerror(-err));

	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&done);
	close(h->stopfd);
	close(h->uffd);
	unmap_region(&mem);
	free(src);
	free(all);
	free(h);
	return err ? 1 : 0;
}
